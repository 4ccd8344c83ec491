//! Tests of the chaos tests' own tools (issue 15): the linearizability checker
//! (`support/linearizable.rs`) on hand-made histories, accepted and refused; the partition proxy
//! (`support/proxy.rs`): bytes flow, a cut stops them both ways, a heal lets them flow again.

#[path = "support/linearizable.rs"]
#[allow(dead_code)]
mod linearizable;
#[path = "support/proxy.rs"]
#[allow(dead_code)]
mod proxy;

use linearizable::{Call, Limits, Op, Outcome, Verdict, check, check_with};

fn append(client: usize, req: &str, payload: &str, invoke: u64, ret: u64, outcome: Outcome) -> Op {
    Op {
        client,
        call: Call::Append {
            request_id: req.as_bytes().to_vec(),
            payload: payload.as_bytes().to_vec(),
        },
        outcome,
        invoke,
        ret,
    }
}

fn acked(client: usize, req: &str, payload: &str, invoke: u64, ret: u64, index: u64) -> Op {
    append(client, req, payload, invoke, ret, Outcome::Appended(index))
}

fn read(client: usize, index: u64, invoke: u64, ret: u64, found: Option<&str>) -> Op {
    Op {
        client,
        call: Call::Read { index },
        outcome: Outcome::Entry(found.map(|p| p.as_bytes().to_vec())),
        invoke,
        ret,
    }
}

fn size(client: usize, invoke: u64, ret: u64, n: u64) -> Op {
    Op {
        client,
        call: Call::Size,
        outcome: Outcome::Size(n),
        invoke,
        ret,
    }
}

fn assert_linearizable(h: &[Op]) -> Vec<usize> {
    match check(h) {
        Verdict::Linearizable { order } => order,
        other => panic!("expected linearizable, got {other:?}"),
    }
}

fn assert_violation(h: &[Op]) -> String {
    match check(h) {
        Verdict::Violation { why } => why,
        other => panic!("expected a violation, got {other:?}"),
    }
}

#[test]
fn sequential_and_concurrent_appends_and_reads_are_accepted() {
    // Two clients append concurrently; the index order is the reverse of the invocation order,
    // which is allowed because the calls overlap.
    let h = vec![
        acked(0, "a", "A", 0, 10, 1),
        acked(1, "b", "B", 1, 9, 0),
        read(0, 0, 11, 12, Some("B")),
        read(1, 1, 11, 13, Some("A")),
        read(1, 2, 14, 15, None),
        size(0, 14, 16, 2),
    ];
    let order = assert_linearizable(&h);
    assert_eq!(order.len(), h.len());
    // b (index 0) must precede a (index 1) in the order found.
    let pos = |i: usize| order.iter().position(|&x| x == i).expect("placed");
    assert!(pos(1) < pos(0));
}

#[test]
fn a_read_concurrent_with_an_append_may_see_it_or_not() {
    for found in [None, Some("A")] {
        let h = vec![acked(0, "a", "A", 0, 10, 0), read(1, 0, 5, 6, found)];
        assert_linearizable(&h);
    }
}

#[test]
fn a_stale_read_after_an_acknowledged_append_is_a_violation() {
    let h = vec![acked(0, "a", "A", 0, 10, 0), read(1, 0, 11, 12, None)];
    let why = assert_violation(&h);
    assert!(why.contains("read(0)"), "{why}");
    // The same with the size.
    let h = vec![acked(0, "a", "A", 0, 10, 0), size(1, 11, 12, 0)];
    assert_violation(&h);
}

#[test]
fn two_appends_given_the_same_index_is_a_violation() {
    let h = vec![acked(0, "a", "A", 0, 10, 0), acked(1, "b", "B", 0, 10, 0)];
    assert_violation(&h);
}

#[test]
fn an_index_whose_content_changes_is_a_violation() {
    let h = vec![
        acked(0, "a", "A", 0, 10, 0),
        read(1, 0, 11, 12, Some("A")),
        read(1, 0, 13, 14, Some("B")),
    ];
    assert_violation(&h);
    // Or content nobody appended.
    let h = vec![acked(0, "a", "A", 0, 10, 0), read(1, 0, 11, 12, Some("Z"))];
    assert_violation(&h);
}

#[test]
fn a_request_id_answered_with_two_indices_is_a_violation() {
    let h = vec![
        acked(0, "r", "A", 0, 10, 0),
        acked(1, "x", "X", 11, 12, 1),
        acked(0, "r", "A", 13, 14, 2),
    ];
    assert_violation(&h);
    // A retry answered with the original index is fine, whether the first call was acknowledged
    // or lost.
    let h = vec![
        acked(0, "r", "A", 0, 10, 0),
        acked(1, "x", "X", 11, 12, 1),
        acked(0, "r", "A", 13, 14, 0),
    ];
    assert_linearizable(&h);
    let h = vec![
        append(0, "r", "A", 0, 0, Outcome::Unknown),
        acked(1, "x", "X", 11, 12, 1),
        acked(0, "r", "A", 13, 14, 0),
    ];
    assert_linearizable(&h);
    // A retry with the same id but another payload must not be acknowledged.
    let h = vec![acked(0, "r", "A", 0, 10, 0), acked(0, "r", "B", 13, 14, 0)];
    assert_violation(&h);
}

#[test]
fn a_size_that_shrinks_is_a_violation() {
    let h = vec![
        acked(0, "a", "A", 0, 1, 0),
        acked(0, "b", "B", 2, 3, 1),
        size(1, 4, 5, 2),
        size(1, 6, 7, 1),
    ];
    assert_violation(&h);
    // A read that saw an index, then a size that does not cover it.
    let h = vec![
        append(0, "a", "A", 0, 0, Outcome::Unknown),
        read(1, 0, 4, 5, Some("A")),
        size(1, 6, 7, 0),
    ];
    assert_violation(&h);
}

#[test]
fn unknown_appends_may_take_effect_late_or_never() {
    // Lost answer, and the entry shows up much later (a new leader committed it).
    let h = vec![
        append(0, "a", "A", 0, 0, Outcome::Unknown),
        read(1, 0, 100, 101, None),
        acked(1, "b", "B", 102, 103, 0),
        read(1, 1, 200, 201, Some("A")),
        size(1, 202, 203, 2),
    ];
    assert_linearizable(&h);
    // Never took effect.
    let h = vec![
        append(0, "a", "A", 0, 0, Outcome::Unknown),
        acked(1, "b", "B", 102, 103, 0),
        size(1, 202, 203, 1),
    ];
    let order = assert_linearizable(&h);
    assert_eq!(order, vec![1, 2]);
    // But not before it was invoked.
    let h = vec![read(1, 0, 0, 1, Some("A")), append(0, "a", "A", 5, 0, Outcome::Unknown)];
    assert_violation(&h);
}

#[test]
fn definite_failures_and_unanswered_reads_constrain_nothing() {
    let h = vec![
        append(0, "a", "A", 0, 1, Outcome::Failed),
        Op {
            client: 1,
            call: Call::Read { index: 0 },
            outcome: Outcome::Unknown,
            invoke: 2,
            ret: 3,
        },
        size(1, 4, 5, 0),
        read(1, 0, 6, 7, None),
    ];
    assert_linearizable(&h);
    // A failed append whose payload is seen afterwards was not a failure.
    let h = vec![append(0, "a", "A", 0, 1, Outcome::Failed), read(1, 0, 2, 3, Some("A"))];
    assert_violation(&h);
}

#[test]
fn malformed_histories_and_exhausted_searches_are_inconclusive() {
    let bad = Op {
        client: 0,
        call: Call::Size,
        outcome: Outcome::Appended(0),
        invoke: 0,
        ret: 1,
    };
    assert!(matches!(check(&[bad]), Verdict::Inconclusive { .. }));
    let backwards = size(0, 5, 4, 0);
    assert!(matches!(check(&[backwards]), Verdict::Inconclusive { .. }));
    let h: Vec<Op> = (0..10)
        .map(|i| acked(i, &format!("r{i}"), "P", 0, 100, i as u64))
        .collect();
    let tight = Limits {
        max_ops: 5,
        max_steps: 1_000,
    };
    assert!(matches!(check_with(&h, tight), Verdict::Inconclusive { .. }));
    let tight = Limits {
        max_ops: 100,
        max_steps: 3,
    };
    assert!(matches!(check_with(&h, tight), Verdict::Inconclusive { .. }));
    assert_linearizable(&h);
}

/// A larger history like the failover rounds make: several clients appending in turn with
/// overlapping calls, some answers lost (half of those took effect), reads of earlier indices;
/// then the same history with one acknowledged entry missing from the final reads.
#[test]
fn a_generated_concurrent_history_is_accepted_and_one_lost_entry_is_found() {
    let clients = 6usize;
    let per_client = 60usize;
    let mut h = Vec::new();
    let mut log: Vec<String> = Vec::new();
    let mut t = 0u64;
    // Clients take turns in rounds; within a round all calls overlap ([t, t + 50]) and their
    // indices are assigned in a shuffled order.
    for round in 0..per_client {
        let start = t;
        for k in 0..clients {
            let c = (k * 5 + round * 7) % clients;
            let req = format!("c{c}-{round}");
            let lost = (round + c).is_multiple_of(17);
            let took_effect = !lost || round.is_multiple_of(2);
            if took_effect {
                log.push(req.clone());
                let idx = (log.len() - 1) as u64;
                if lost {
                    h.push(append(c, &req, &req, start + k as u64, 0, Outcome::Unknown));
                } else {
                    h.push(acked(c, &req, &req, start + k as u64, start + 50, idx));
                }
            } else {
                h.push(append(c, &req, &req, start + k as u64, 0, Outcome::Unknown));
            }
            if round > 0 && c == 0 {
                let i = (round * 3 % log.len()) as u64;
                let p = log[i as usize].clone();
                h.push(read(c, i, start + 1, start + 40, Some(&p)));
            }
        }
        t = start + 60;
    }
    // Final reads of every index and the size, after everything.
    for (i, p) in log.iter().enumerate() {
        h.push(read(0, i as u64, t + 2 * i as u64, t + 2 * i as u64 + 1, Some(p)));
    }
    t += 2 * log.len() as u64 + 10;
    h.push(size(0, t, t + 1, log.len() as u64));
    assert_linearizable(&h);

    // Now make one acknowledged entry disappear from the final view: the size says one fewer and
    // the last index reads as absent.
    let n = h.len();
    h[n - 1] = size(0, t, t + 1, log.len() as u64 - 1);
    let last = log.len() - 1;
    let pos = h
        .iter()
        .position(|o| matches!(&o.call, Call::Read { index } if *index == last as u64) && o.invoke >= t - 200)
        .expect("final read of the last index");
    h[pos].outcome = Outcome::Entry(None);
    assert_violation(&h);
}

/// An echo server standing in for a node's Raft port.
async fn echo_server() -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// Connects through the proxy, sends `msg`, and returns what came back within 2 s (`None`: the
/// connection was closed or nothing came back).
async fn round_trip(addr: std::net::SocketAddr, msg: &[u8]) -> Option<Vec<u8>> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        s.write_all(msg).await.ok()?;
        let mut buf = vec![0u8; msg.len()];
        s.read_exact(&mut buf).await.ok()?;
        Some(buf)
    };
    tokio::time::timeout(std::time::Duration::from_secs(2), attempt)
        .await
        .ok()
        .flatten()
}

#[tokio::test]
async fn the_proxy_forwards_cuts_both_ways_and_heals() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let target = echo_server().await;
    let partition = proxy::Partition::new();
    // This test process plays node 1, sending to node 2 behind the proxy (on 127.0.0.2, the port
    // the partition tests use for proxies).
    partition.register(1, std::process::id());
    let p = proxy::Proxy::start(2, "127.0.0.2:0".parse().expect("addr"), target, partition.clone())
        .await
        .expect("proxy");
    assert_eq!(p.node(), 2);
    assert_eq!(round_trip(p.addr(), b"hello").await.as_deref(), Some(&b"hello"[..]));

    // A long-lived connection (as a Raft channel is) carries bytes, then is closed by a cut.
    let mut open = tokio::net::TcpStream::connect(p.addr()).await.expect("connect");
    open.write_all(b"ping").await.expect("write");
    let mut buf = [0u8; 4];
    open.read_exact(&mut buf).await.expect("echo");
    assert_eq!(&buf, b"ping");

    // Cutting the receiving node stops new and open connections.
    partition.cut(2);
    assert_eq!(round_trip(p.addr(), b"lost").await, None);
    let _ = open.write_all(b"more").await;
    let n = tokio::time::timeout(std::time::Duration::from_secs(2), open.read(&mut buf))
        .await
        .expect("the cut connection is closed, not left hanging");
    assert!(matches!(n, Ok(0) | Err(_)), "a cut connection carried bytes: {n:?}");
    partition.heal(2);
    assert_eq!(round_trip(p.addr(), b"again").await.as_deref(), Some(&b"again"[..]));

    // Cutting the sending node (this process, found through /proc) stops its connections too;
    // cutting a node that is neither end changes nothing.
    partition.cut(1);
    assert_eq!(round_trip(p.addr(), b"from 1").await, None);
    partition.heal(1);
    assert_eq!(round_trip(p.addr(), b"healed").await.as_deref(), Some(&b"healed"[..]));
    partition.cut(3);
    assert_eq!(
        round_trip(p.addr(), b"others").await.as_deref(),
        Some(&b"others"[..]),
        "cutting an uninvolved node changes nothing"
    );
}
