//! A Wing–Gong (WGL) linearizability checker for the ledger's log, for the cluster chaos tests
//! (issue 15).
//!
//! A [`History`] is what concurrent clients saw: every operation with the time it was invoked and
//! the time its answer came back. [`check`] searches for one total order of the operations that
//! (a) respects real time — an operation that returned before another was invoked comes first —
//! and (b) gives every operation the answer it got when run one at a time against the sequential
//! model: an append-only log with request-id de-duplication (the node's rule: a retry with the same
//! request id and the same payload answers the original index; with another payload it is refused
//! and changes nothing).
//!
//! Outcomes:
//! - an append acknowledged at an index, a read that found a payload or found nothing, a size: must
//!   fit the model at their place in the order;
//! - [`Outcome::Failed`]: a definite refusal (the node said no before doing anything): no effect,
//!   so the operation is left out;
//! - [`Outcome::Unknown`] (timeout, connection lost, the node killed mid-call): an append may have
//!   taken effect at any time after its invocation, or never; a read or size with an unknown answer
//!   constrains nothing and is left out.
//!
//! The search is the WGL depth-first search, with two prunings for this model (see [`frame`]): a
//! state from which some operation can never be placed is abandoned at once, and an append whose
//! outcome is unknown is only tried where the log must grow; and with its cache of (operations linearized, model state)
//! pairs already explored, both kept as 128-bit fingerprints (Zobrist hashing: a set of operations
//! and a log are sets of (position, item) pairs, so removing the last item is one XOR). Two
//! different states sharing a fingerprint would wrongly prune a branch; with 128 bits that is
//! negligible for the histories here. The search is bounded ([`Limits`]): a history too large or a
//! search too long is [`Verdict::Inconclusive`], never an accepted history.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash as _, Hasher as _};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Nanoseconds since the history's start.
pub type Time = u64;

/// What a client asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// Append `payload` under the idempotency key `request_id`.
    Append { request_id: Vec<u8>, payload: Vec<u8> },
    /// Read the entry at `index`.
    Read { index: u64 },
    /// The log's size (or a checkpoint's size).
    Size,
}

/// What it was told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// An append acknowledged at this index.
    Appended(u64),
    /// A read: the payload at the index, or `None` when the log was not that long.
    Entry(Option<Vec<u8>>),
    /// A size.
    Size(u64),
    /// A definite refusal: the call had no effect.
    Failed,
    /// No answer that says whether the call took effect.
    Unknown,
}

/// One operation of a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op {
    /// Which client (for messages only).
    pub client: usize,
    pub call: Call,
    pub outcome: Outcome,
    /// When the call was sent.
    pub invoke: Time,
    /// When its answer came back (ignored for [`Outcome::Unknown`]: such a call may take effect
    /// at any later time).
    pub ret: Time,
}

/// Bounds on the search.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Histories with more operations (after leaving out those that constrain nothing) are not
    /// searched.
    pub max_ops: usize,
    /// Search steps (an operation tried at a place) before giving up.
    pub max_steps: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_ops: 20_000,
            max_steps: 20_000_000,
        }
    }
}

/// The checker's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A linearization exists; `order` lists the history's operations (indices into the checked
    /// slice) in that order. Unknown appends that never took effect are not in it.
    Linearizable { order: Vec<usize> },
    /// No linearization exists. `why` describes the furthest point the search reached.
    Violation { why: String },
    /// The history is malformed or the search hit a limit; nothing is proved.
    Inconclusive { why: String },
}

impl Verdict {
    pub fn is_linearizable(&self) -> bool {
        matches!(self, Verdict::Linearizable { .. })
    }
}

/// Records a history from concurrent tasks: [`Recorder::invoke`] before sending,
/// [`Recorder::complete`] when the answer (or the lack of one) is known.
#[derive(Clone)]
pub struct Recorder {
    start: Instant,
    ops: Arc<Mutex<Vec<Op>>>,
}

/// A call in flight (from [`Recorder::invoke`]).
#[must_use]
pub struct Pending {
    client: usize,
    call: Call,
    invoke: Time,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    pub fn new() -> Self {
        Recorder {
            start: Instant::now(),
            ops: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn now(&self) -> Time {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    pub fn invoke(&self, client: usize, call: Call) -> Pending {
        Pending {
            client,
            call,
            invoke: self.now(),
        }
    }

    pub fn complete(&self, p: Pending, outcome: Outcome) {
        let ret = self.now();
        let op = Op {
            client: p.client,
            call: p.call,
            outcome,
            invoke: p.invoke,
            ret,
        };
        self.ops.lock().expect("history lock").push(op);
    }

    /// The operations recorded so far.
    pub fn history(&self) -> Vec<Op> {
        self.ops.lock().expect("history lock").clone()
    }
}

/// A 128-bit fingerprint of one hashable thing, salted.
fn fp(salt: u64, parts: &[&[u8]], n: u64) -> u128 {
    let mut a = DefaultHasher::new();
    let mut b = DefaultHasher::new();
    (salt, 0x9e37_79b9_u64, n).hash(&mut a);
    (salt, 0x7f4a_7c15_u64, n).hash(&mut b);
    for p in parts {
        p.hash(&mut a);
        p.hash(&mut b);
    }
    (u128::from(a.finish()) << 64) | u128::from(b.finish())
}

/// The sequential model: an append-only log of (request id, payload).
struct Model<'a> {
    log: Vec<(&'a [u8], &'a [u8])>,
    by_request: HashMap<&'a [u8], u64>,
    fingerprint: u128,
}

/// What applying an operation changed, to undo it.
enum Undo {
    Nothing,
    Pushed,
}

impl<'a> Model<'a> {
    fn new() -> Self {
        Model {
            log: Vec::new(),
            by_request: HashMap::new(),
            fingerprint: 0,
        }
    }

    fn item_fp(pos: u64, request_id: &[u8], payload: &[u8]) -> u128 {
        fp(1, &[request_id, payload], pos)
    }

    /// Applies `op` if its outcome is what the model answers; `None` when it is not.
    fn step(&mut self, call: &'a Call, outcome: &Outcome) -> Option<Undo> {
        match call {
            Call::Append { request_id, payload } => {
                let size = self.log.len() as u64;
                let expect = match self.by_request.get(request_id.as_slice()) {
                    Some(&i) => {
                        // A retry: the original index with the same payload, a refusal otherwise.
                        let (_, p) = self.log[usize::try_from(i).ok()?];
                        if p != payload.as_slice() {
                            return None;
                        }
                        return match outcome {
                            Outcome::Appended(got) if *got == i => Some(Undo::Nothing),
                            Outcome::Unknown => Some(Undo::Nothing),
                            _ => None,
                        };
                    }
                    None => size,
                };
                match outcome {
                    Outcome::Appended(got) if *got == expect => {}
                    Outcome::Unknown => {}
                    _ => return None,
                }
                self.log.push((request_id, payload));
                self.by_request.insert(request_id, size);
                self.fingerprint ^= Self::item_fp(size, request_id, payload);
                Some(Undo::Pushed)
            }
            Call::Read { index } => {
                let found = usize::try_from(*index)
                    .ok()
                    .and_then(|i| self.log.get(i))
                    .map(|(_, p)| *p);
                match outcome {
                    Outcome::Entry(want) if want.as_deref() == found => Some(Undo::Nothing),
                    _ => None,
                }
            }
            Call::Size => match outcome {
                Outcome::Size(n) if *n == self.log.len() as u64 => Some(Undo::Nothing),
                _ => None,
            },
        }
    }

    fn undo(&mut self, u: Undo) {
        if let Undo::Pushed = u
            && let Some((request_id, payload)) = self.log.pop()
        {
            self.by_request.remove(request_id);
            self.fingerprint ^= Self::item_fp(self.log.len() as u64, request_id, payload);
        }
    }
}

fn describe(op: &Op) -> String {
    let call = match &op.call {
        Call::Append { request_id, .. } => format!("append(request {:?})", String::from_utf8_lossy(request_id)),
        Call::Read { index } => format!("read({index})"),
        Call::Size => "size()".to_string(),
    };
    let outcome = match &op.outcome {
        Outcome::Appended(i) => format!("index {i}"),
        Outcome::Entry(Some(p)) => format!("entry {:?}", String::from_utf8_lossy(&p[..p.len().min(40)])),
        Outcome::Entry(None) => "absent".to_string(),
        Outcome::Size(n) => format!("size {n}"),
        Outcome::Failed => "failed".to_string(),
        Outcome::Unknown => "unknown".to_string(),
    };
    format!("client {} {call} -> {outcome} [{} .. {}]", op.client, op.invoke, op.ret)
}

/// Whether `outcome` is the right kind of answer for `call`.
fn well_formed(op: &Op) -> bool {
    matches!(
        (&op.call, &op.outcome),
        (_, Outcome::Failed | Outcome::Unknown)
            | (Call::Append { .. }, Outcome::Appended(_))
            | (Call::Read { .. }, Outcome::Entry(_))
            | (Call::Size, Outcome::Size(_))
    )
}

/// Checks `history` with the default [`Limits`].
pub fn check(history: &[Op]) -> Verdict {
    check_with(history, Limits::default())
}

/// Checks `history` for linearizability against the append-only log model.
pub fn check_with(history: &[Op], limits: Limits) -> Verdict {
    if let Some(op) = history.iter().find(|op| !well_formed(op)) {
        return Verdict::Inconclusive {
            why: format!("malformed operation: {}", describe(op)),
        };
    }
    if let Some(op) = history
        .iter()
        .find(|op| op.outcome != Outcome::Unknown && op.ret < op.invoke)
    {
        return Verdict::Inconclusive {
            why: format!("returned before it was invoked: {}", describe(op)),
        };
    }
    // Keep what constrains: failed calls had no effect, reads with unknown answers say nothing.
    let kept: Vec<usize> = (0..history.len())
        .filter(|&i| match (&history[i].call, &history[i].outcome) {
            (_, Outcome::Failed) => false,
            (Call::Append { .. }, Outcome::Unknown) => true,
            (_, Outcome::Unknown) => false,
            _ => true,
        })
        .collect();
    if kept.len() > limits.max_ops {
        return Verdict::Inconclusive {
            why: format!("{} operations, more than the limit {}", kept.len(), limits.max_ops),
        };
    }
    let n = kept.len();
    let ops: Vec<&Op> = kept.iter().map(|&i| &history[i]).collect();
    // Operations by invocation time: candidates for the next place are a prefix of this order.
    let mut by_invoke: Vec<usize> = (0..n).collect();
    by_invoke.sort_by_key(|&i| (ops[i].invoke, i));
    let known = ops.iter().filter(|o| o.outcome != Outcome::Unknown).count();
    let op_fp: Vec<u128> = (0..n).map(|i| fp(2, &[], i as u64)).collect();

    let mut done = vec![false; n];
    let mut done_fp: u128 = 0;
    let mut known_done = 0usize;
    let mut model = Model::new();
    let mut seen: HashSet<(u128, u128)> = HashSet::new();
    // The search stack: for each place, the candidates and which one is being tried.
    // The furthest the search got: how many were placed, which, and what could not follow.
    let mut deepest = (0usize, Vec::<usize>::new(), Vec::<usize>::new());
    let mut stack = match frame(&ops, &by_invoke, &done, &model) {
        Ok(candidates) => vec![Frame {
            candidates,
            next: 0,
            tried: None,
        }],
        Err(never) => {
            deepest.2 = vec![never];
            Vec::new()
        }
    };
    let mut steps: u64 = 0;
    loop {
        if known_done == known {
            let order = stack
                .iter()
                .filter_map(|f| f.tried.as_ref().map(|(i, _)| kept[*i]))
                .collect();
            return Verdict::Linearizable { order };
        }
        let Some(top) = stack.last_mut() else {
            let (depth, placed, stuck) = &deepest;
            let mut why = format!(
                "no linearization: at most {depth} of {n} operations could be placed ({known} with known outcomes)"
            );
            if let Some(last) = placed.last() {
                why.push_str(&format!(
                    "\nlast placed: {}",
                    describe(history_op(history, &kept, *last))
                ));
            }
            why.push_str("\nnone of these could go next (or ever, after it):");
            for &i in stuck.iter().take(12) {
                why.push_str(&format!("\n  {}", describe(history_op(history, &kept, i))));
            }
            return Verdict::Violation { why };
        };
        // Undo whatever this place held before trying the next candidate.
        if let Some((i, u)) = top.tried.take() {
            model.undo(u);
            done[i] = false;
            done_fp ^= op_fp[i];
            if ops[i].outcome != Outcome::Unknown {
                known_done -= 1;
            }
        }
        let Some(&i) = top.candidates.get(top.next) else {
            let depth = stack.len() - 1;
            if depth >= deepest.0 {
                let placed = stack.iter().filter_map(|f| f.tried.as_ref().map(|(i, _)| *i)).collect();
                let stuck = stack.last().map(|f| f.candidates.clone()).unwrap_or_default();
                deepest = (depth, placed, stuck);
            }
            stack.pop();
            continue;
        };
        top.next += 1;
        steps += 1;
        if steps > limits.max_steps {
            return Verdict::Inconclusive {
                why: format!("search stopped after {} steps ({n} operations)", limits.max_steps),
            };
        }
        let Some(u) = model.step(&ops[i].call, &ops[i].outcome) else {
            continue;
        };
        done[i] = true;
        done_fp ^= op_fp[i];
        let next = if seen.insert((done_fp, model.fingerprint)) {
            frame(&ops, &by_invoke, &done, &model).map_err(Some)
        } else {
            Err(None)
        };
        let candidates = match next {
            Ok(c) => c,
            Err(never) => {
                if let Some(never) = never
                    && stack.len() > deepest.0
                {
                    let mut placed: Vec<usize> =
                        stack.iter().filter_map(|f| f.tried.as_ref().map(|(i, _)| *i)).collect();
                    placed.push(i);
                    deepest = (stack.len(), placed, vec![never]);
                }
                // Explored before, or a state no order can finish from.
                model.undo(u);
                done[i] = false;
                done_fp ^= op_fp[i];
                continue;
            }
        };
        if ops[i].outcome != Outcome::Unknown {
            known_done += 1;
        }
        top.tried = Some((i, u));
        stack.push(Frame {
            candidates,
            next: 0,
            tried: None,
        });
    }
}

/// A place in the search: the operations that may go there and the one being tried.
struct Frame {
    candidates: Vec<usize>,
    next: usize,
    tried: Option<(usize, Undo)>,
}

/// The operations that may go next from this state, or `Err` naming an operation not yet placed that
/// can never be placed (the log only grows and entries never change, so: an append acknowledged at
/// an index already taken by another entry, a read of an existing index that saw something else or
/// nothing, a size below the current one).
///
/// An append with an unknown outcome is offered only when some operation not yet placed needs a
/// longer log (an acknowledged index, a read that found an entry, or a size beyond the current
/// size): when nothing does, any order that places it now stays valid with it (and every later
/// unknown append) left out, so nothing is lost by not trying it. Without this rule every pending
/// unknown append would be tried at every place.
fn frame(ops: &[&Op], by_invoke: &[usize], done: &[bool], model: &Model<'_>) -> Result<Vec<usize>, usize> {
    let len = model.log.len() as u64;
    let mut needs_longer = false;
    let mut min_ret = Time::MAX;
    for (i, op) in ops.iter().enumerate() {
        if done[i] {
            continue;
        }
        if op.outcome != Outcome::Unknown {
            min_ret = min_ret.min(op.ret);
        }
        match (&op.call, &op.outcome) {
            (Call::Append { request_id, payload }, Outcome::Appended(at)) => {
                match model.by_request.get(request_id.as_slice()) {
                    Some(&j) => {
                        let same = usize::try_from(j).ok().and_then(|j| model.log.get(j)).map(|(_, p)| *p)
                            == Some(payload.as_slice());
                        if j != *at || !same {
                            return Err(i);
                        }
                    }
                    None if *at < len => return Err(i),
                    None => needs_longer |= *at > len,
                }
            }
            (Call::Read { index }, Outcome::Entry(found)) => {
                if *index < len {
                    let have = usize::try_from(*index)
                        .ok()
                        .and_then(|j| model.log.get(j))
                        .map(|(_, p)| *p);
                    if have != found.as_deref() {
                        return Err(i);
                    }
                } else {
                    needs_longer |= found.is_some();
                }
            }
            (Call::Size, Outcome::Size(size)) => {
                if *size < len {
                    return Err(i);
                }
                needs_longer |= *size > len;
            }
            _ => {}
        }
    }
    // An operation may go next only if no operation not yet placed returned before it was invoked.
    let mut c: Vec<usize> = by_invoke
        .iter()
        .copied()
        .take_while(|&i| ops[i].invoke <= min_ret)
        .filter(|&i| !done[i] && (needs_longer || ops[i].outcome != Outcome::Unknown))
        .collect();
    // Known outcomes first.
    c.sort_by_key(|&i| (ops[i].outcome == Outcome::Unknown, ops[i].invoke));
    Ok(c)
}

fn history_op<'h>(history: &'h [Op], kept: &[usize], i: usize) -> &'h Op {
    &history[kept[i]]
}
