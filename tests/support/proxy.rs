//! A TCP proxy for partition tests (issue 15): stands in front of each node's Raft port and can
//! cut one node off from the others, both ways, and heal it.
//!
//! Raft peers find each other through the addresses in the cluster's membership, which every node
//! shares, so a proxy cannot be given per-sender addresses. Instead there is one [`Proxy`] per
//! node, listening where the membership says that node is (`127.0.0.2:P` in front of a node that
//! listens on `127.0.0.1:P`: same port, so the node's own peer entry still matches its `listen`),
//! and each accepted connection is attributed to the node *process* that opened it (Linux: the
//! connection's source socket is looked up in `/proc/net/tcp` and found among the file
//! descriptors of the processes registered with [`Partition::register`]). Cutting node `k` then
//! closes, and keeps refusing, every connection into `k`'s proxy and every connection `k` opens
//! to the others; connections between the other nodes flow on.
//!
//! A cut connection is closed (the peer sees a reset or end of stream and its Raft client reports
//! the peer unreachable), not held open silently: the tests stay bounded without depending on
//! timeouts.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Which nodes are cut off, and which process belongs to which node. Shared by the proxies of a
/// cluster; cheap to clone.
#[derive(Clone)]
pub struct Partition {
    inner: Arc<Mutex<PartitionState>>,
    changed: Arc<watch::Sender<u64>>,
}

#[derive(Default)]
struct PartitionState {
    cut: HashSet<u64>,
    pids: HashMap<u32, u64>,
    generation: u64,
}

impl Default for Partition {
    fn default() -> Self {
        Self::new()
    }
}

impl Partition {
    pub fn new() -> Self {
        let (tx, _) = watch::channel(0);
        Partition {
            inner: Arc::default(),
            changed: Arc::new(tx),
        }
    }

    /// Records that process `pid` is node `node` (call again after a restart).
    pub fn register(&self, node: u64, pid: u32) {
        let mut s = self.inner.lock().expect("partition lock");
        s.pids.retain(|_, n| *n != node);
        s.pids.insert(pid, node);
    }

    /// Cuts `node` off from every other node, both ways; open connections are closed.
    pub fn cut(&self, node: u64) {
        let generation = {
            let mut s = self.inner.lock().expect("partition lock");
            s.cut.insert(node);
            s.generation += 1;
            s.generation
        };
        self.changed.send_replace(generation);
    }

    /// Lets `node` talk to the others again.
    pub fn heal(&self, node: u64) {
        let generation = {
            let mut s = self.inner.lock().expect("partition lock");
            s.cut.remove(&node);
            s.generation += 1;
            s.generation
        };
        self.changed.send_replace(generation);
    }

    /// Whether a connection from `from` (when known) to `to` may carry bytes now.
    fn allows(&self, from: Option<u64>, to: u64) -> bool {
        let s = self.inner.lock().expect("partition lock");
        !s.cut.contains(&to) && from.is_none_or(|f| !s.cut.contains(&f))
    }

    fn node_of_pid(&self, pid: u32) -> Option<u64> {
        self.inner.lock().expect("partition lock").pids.get(&pid).copied()
    }

    fn pids(&self) -> Vec<u32> {
        self.inner
            .lock()
            .expect("partition lock")
            .pids
            .keys()
            .copied()
            .collect()
    }

    /// The node whose process holds the client end of the connection `peer` → `local`.
    fn sender(&self, peer: SocketAddr, local: SocketAddr) -> Option<u64> {
        // /proc/net/tcp is read in pieces and is not a snapshot: a socket can be skipped while
        // other connections open and close (a loaded cluster test), and an unresolved sender
        // would pass a cut. The client end exists (its connection was just accepted): read again.
        let inode = (0..5).find_map(|_| socket_inode(peer, local))?;
        let target = format!("socket:[{inode}]");
        for pid in self.pids() {
            let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
                continue;
            };
            for fd in fds.flatten() {
                if std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == target.as_str()) {
                    return self.node_of_pid(pid);
                }
            }
        }
        None
    }
}

/// `/proc/net/tcp` writes an IPv4 socket address as the address's 4 bytes in host order, hex,
/// then the port in hex.
fn proc_addr(a: SocketAddr) -> Option<String> {
    match a {
        SocketAddr::V4(v4) => Some(format!(
            "{:08X}:{:04X}",
            u32::from_ne_bytes(v4.ip().octets()),
            v4.port()
        )),
        SocketAddr::V6(_) => None,
    }
}

/// The inode of the socket whose local address is `local` and remote address `remote`.
fn socket_inode(local: SocketAddr, remote: SocketAddr) -> Option<u64> {
    let (l, r) = (proc_addr(local)?, proc_addr(remote)?);
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        (f.len() > 9 && f[1] == l && f[2] == r)
            .then(|| f[9].parse().ok())
            .flatten()
    })
}

/// One node's proxy: accepts on `addr()` and forwards to the node's real address.
pub struct Proxy {
    node: u64,
    addr: SocketAddr,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// Listens on `listen` (port 0: any) in front of node `node` at `target`; each connection's
    /// sender is found among the processes registered with the partition.
    pub async fn start(
        node: u64,
        listen: SocketAddr,
        target: SocketAddr,
        partition: Partition,
    ) -> std::io::Result<Proxy> {
        Self::spawn(None, node, listen, target, partition).await
    }

    /// A proxy that only node `from` sends through (for nodes sharing one process, which
    /// [`Proxy::start`] cannot tell apart): `from`'s route to node `to` at `target`.
    pub async fn link(
        from: u64,
        to: u64,
        listen: SocketAddr,
        target: SocketAddr,
        partition: Partition,
    ) -> std::io::Result<Proxy> {
        Self::spawn(Some(from), to, listen, target, partition).await
    }

    async fn spawn(
        fixed_from: Option<u64>,
        node: u64,
        listen: SocketAddr,
        target: SocketAddr,
        partition: Partition,
    ) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let accept = tokio::spawn(async move {
            loop {
                let Ok((inbound, peer)) = listener.accept().await else {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                };
                let p = partition.clone();
                tokio::spawn(async move {
                    let from = fixed_from.or_else(|| p.sender(peer, addr));
                    forward(inbound, from, node, target, p).await;
                });
            }
        });
        Ok(Proxy { node, addr, accept })
    }

    /// Where peers should send to reach the node.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn node(&self) -> u64 {
        self.node
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Copies bytes both ways between `inbound` and the node at `target` until either side closes or
/// the partition cuts `from` or `to`.
async fn forward(mut inbound: TcpStream, from: Option<u64>, to: u64, target: SocketAddr, p: Partition) {
    let mut changed = p.changed.subscribe();
    if !p.allows(from, to) {
        let _ = inbound.shutdown().await;
        return;
    }
    let Ok(mut outbound) = TcpStream::connect(target).await else {
        return;
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let copy = tokio::io::copy_bidirectional(&mut inbound, &mut outbound);
    tokio::pin!(copy);
    loop {
        tokio::select! {
            _ = &mut copy => return,
            r = changed.changed() => {
                if r.is_err() || !p.allows(from, to) {
                    // Dropping both streams closes them.
                    return;
                }
            }
        }
    }
}
