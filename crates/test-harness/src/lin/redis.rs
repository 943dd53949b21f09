//! Linearizability of single-key Redis histories: a string register (`SET`/`GET`), a counter
//! (`INCR`/`GET`) and a list (`LPUSH`/`RPOP`/`LLEN`), checked with the same Wing–Gong/Lowe search
//! as the memcached register of [`super`] (depth-first on an explicit stack, memoised over
//! (linearized set, state), with a budget of explored states).
//!
//! The model is a whole Redis key: missing, a string holding an integer, or a non-empty list
//! (Redis deletes a list when its last element is popped). An operation whose outcome is unknown
//! (timeout, lost connection, an error that may come after the write reached the log) may have
//! taken effect at any time after its call, or never: it is only ever linearized as having
//! happened, and the search succeeds once every known operation is linearized. Unknown reads
//! have no effect and are dropped. Unknown operations that are the same operation (two `INCR`s,
//! two `RPOP`s) are interchangeable, so they are linearized in call order only.
//!
//! The workloads push unique values, so a list history pins down which push each pop returned.

use std::collections::{HashMap, HashSet, VecDeque};

pub use super::Verdict;

/// A Redis operation on one key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ROp {
    /// `SET key v` (answers `+OK`).
    Set(i64),
    /// `GET key`.
    Get,
    /// `INCR key` (a missing key counts as 0).
    Incr,
    /// `LPUSH key v` (answers the new length).
    LPush(u64),
    /// `RPOP key` (answers the element or nil).
    RPop,
    /// `LLEN key`.
    LLen,
}

/// What a Redis operation answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ROut {
    /// `+OK`.
    Ok,
    /// A string read (`None`: nil).
    Str(Option<i64>),
    /// An integer reply (`INCR`'s new value, `LPUSH`'s and `LLEN`'s length).
    Int(i64),
    /// An element popped (`None`: nil).
    Elem(Option<u64>),
    /// Failed: may or may not have happened, at any time after its call.
    Unknown,
}

/// One operation of a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct REvent {
    /// Monotonic time of the call.
    pub call: u64,
    /// Monotonic time of the answer; `u64::MAX` for unknown outcomes.
    pub ret: u64,
    pub op: ROp,
    pub out: ROut,
}

/// A Redis key's value, as far as the workloads use it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RState {
    Missing,
    Str(i64),
    /// Front = the head (`LPUSH` side); never empty.
    List(VecDeque<u64>),
}

impl ROp {
    /// Whether the operation leaves the key as it is.
    fn is_read(&self) -> bool {
        matches!(self, ROp::Get | ROp::LLen)
    }
}

/// The state after `op` answered `out` (or happened with an unknown answer) at `s`; `None` when
/// it cannot have. Type errors (a list op on a string) are not part of the workloads: they never
/// linearize.
pub fn step(s: &RState, op: &ROp, out: &ROut) -> Option<RState> {
    let unknown = *out == ROut::Unknown;
    match (op, s) {
        (ROp::Set(v), RState::Missing | RState::Str(_)) => {
            (unknown || *out == ROut::Ok).then_some(RState::Str(*v))
        }
        (ROp::Get, RState::Missing) => (*out == ROut::Str(None)).then(|| s.clone()),
        (ROp::Get, RState::Str(v)) => (*out == ROut::Str(Some(*v))).then(|| s.clone()),
        (ROp::Incr, RState::Missing | RState::Str(_)) => {
            let v = match s {
                RState::Str(v) => v.checked_add(1)?,
                _ => 1,
            };
            (unknown || *out == ROut::Int(v)).then_some(RState::Str(v))
        }
        (ROp::LPush(x), RState::Missing | RState::List(_)) => {
            let mut l = match s {
                RState::List(l) => l.clone(),
                _ => VecDeque::new(),
            };
            l.push_front(*x);
            (unknown || *out == ROut::Int(l.len() as i64)).then_some(RState::List(l))
        }
        (ROp::RPop, RState::Missing) => {
            (unknown || *out == ROut::Elem(None)).then_some(RState::Missing)
        }
        (ROp::RPop, RState::List(l)) => {
            let mut l = l.clone();
            let x = l.pop_back()?;
            if !unknown && *out != ROut::Elem(Some(x)) {
                return None;
            }
            Some(if l.is_empty() {
                RState::Missing
            } else {
                RState::List(l)
            })
        }
        (ROp::LLen, RState::Missing) => (*out == ROut::Int(0)).then(|| s.clone()),
        (ROp::LLen, RState::List(l)) => (*out == ROut::Int(l.len() as i64)).then(|| s.clone()),
        _ => None,
    }
}

/// Whether `history` (one key's operations, any order) is linearizable from `init`, exploring
/// at most `budget` search states.
pub fn check(history: &[REvent], init: &RState, budget: usize) -> Verdict {
    let ev: Vec<&REvent> = history
        .iter()
        .filter(|e| !(e.out == ROut::Unknown && e.op.is_read()))
        .collect();
    let n = ev.len();
    let unknown_of = |i: usize| ev[i].out == ROut::Unknown;
    let mut known: Vec<usize> = (0..n).filter(|&i| !unknown_of(i)).collect();
    known.sort_by_key(|&i| (ev[i].call, i));
    let mut unknown: Vec<usize> = (0..n).filter(|&i| unknown_of(i)).collect();
    unknown.sort_by_key(|&i| (ev[i].call, i));
    // Each unknown operation may only go once the previous identical one has (its twin).
    let mut twin = vec![usize::MAX; n];
    let mut last: HashMap<&ROp, usize> = HashMap::new();
    for &i in &unknown {
        if let Some(p) = last.insert(&ev[i].op, i) {
            twin[i] = p;
        }
    }
    let mut rng = crate::Rng::new(0x5EED_4ED1);
    let zobrist: Vec<u128> = (0..n)
        .map(|_| (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64()))
        .collect();

    struct Frame {
        cands: Vec<usize>,
        pos: usize,
        /// The operation linearized from this frame, with the state and `first` before it.
        cur: Option<(usize, RState, usize)>,
    }
    let mut done = vec![false; n];
    let mut first = 0usize;
    let mut left = known.len();
    let mut hash = 0u128;
    let mut s = init.clone();
    let mut memo: HashSet<(u128, RState)> = HashSet::new();

    // What may go next: ops called before every pending known op returned.
    let candidates = |done: &[bool], first: usize| -> Vec<usize> {
        let mut min_ret = u64::MAX;
        let mut end = first;
        while end < known.len() && ev[known[end]].call <= min_ret {
            if !done[known[end]] {
                min_ret = min_ret.min(ev[known[end]].ret);
            }
            end += 1;
        }
        let mut c: Vec<usize> = known[first..end]
            .iter()
            .copied()
            .filter(|&i| !done[i] && ev[i].call <= min_ret)
            .collect();
        c.sort_by_key(|&i| (ev[i].ret, i));
        for &i in &unknown {
            if ev[i].call > min_ret {
                break;
            }
            if !done[i] && (twin[i] == usize::MAX || done[twin[i]]) {
                c.push(i);
            }
        }
        c
    };

    if left == 0 {
        return Verdict::Linearizable;
    }
    memo.insert((hash, s.clone()));
    let mut stack = vec![Frame {
        cands: candidates(&done, first),
        pos: 0,
        cur: None,
    }];
    while let Some(top) = stack.last_mut() {
        if let Some((i, before, first_before)) = top.cur.take() {
            done[i] = false;
            hash ^= zobrist[i];
            s = before;
            first = first_before;
            if !unknown_of(i) {
                left += 1;
            }
        }
        let mut pushed = false;
        while top.pos < top.cands.len() {
            let i = top.cands[top.pos];
            top.pos += 1;
            let Some(s2) = step(&s, &ev[i].op, &ev[i].out) else {
                continue;
            };
            let h2 = hash ^ zobrist[i];
            let known_op = !unknown_of(i);
            if known_op && left == 1 {
                return Verdict::Linearizable;
            }
            if !memo.insert((h2, s2.clone())) {
                continue;
            }
            if memo.len() > budget {
                return Verdict::GaveUp {
                    explored: memo.len(),
                };
            }
            let before = std::mem::replace(&mut s, s2);
            top.cur = Some((i, before, first));
            done[i] = true;
            hash = h2;
            if known_op {
                left -= 1;
                while first < known.len() && done[known[first]] {
                    first += 1;
                }
            }
            pushed = true;
            break;
        }
        if pushed {
            let cands = candidates(&done, first);
            stack.push(Frame {
                cands,
                pos: 0,
                cur: None,
            });
        } else {
            stack.pop();
        }
    }
    Verdict::NotLinearizable
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Rng;

    const M: u64 = u64::MAX;

    fn e(call: u64, ret: u64, op: ROp, out: ROut) -> REvent {
        REvent { call, ret, op, out }
    }

    fn lin(h: &[REvent]) -> bool {
        match check(h, &RState::Missing, 1_000_000) {
            Verdict::Linearizable => true,
            Verdict::NotLinearizable => false,
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn register_and_counter() {
        assert!(lin(&[
            e(0, 1, ROp::Incr, ROut::Int(1)),
            e(2, 3, ROp::Incr, ROut::Int(2)),
            e(4, 5, ROp::Get, ROut::Str(Some(2))),
            e(6, 7, ROp::Set(10), ROut::Ok),
            e(8, 9, ROp::Incr, ROut::Int(11)),
        ]));
        // A lost increment.
        assert!(!lin(&[
            e(0, 3, ROp::Incr, ROut::Int(1)),
            e(1, 4, ROp::Incr, ROut::Int(1)),
        ]));
        // A stale read.
        assert!(!lin(&[
            e(0, 1, ROp::Set(1), ROut::Ok),
            e(2, 3, ROp::Set(2), ROut::Ok),
            e(4, 5, ROp::Get, ROut::Str(Some(1))),
        ]));
        // Unknown increments explain a jump, but only forwards and after their call.
        assert!(lin(&[
            e(0, M, ROp::Incr, ROut::Unknown),
            e(1, M, ROp::Incr, ROut::Unknown),
            e(5, 6, ROp::Incr, ROut::Int(3)),
        ]));
        assert!(!lin(&[
            e(0, M, ROp::Incr, ROut::Unknown),
            e(5, 6, ROp::Incr, ROut::Int(3)),
        ]));
        assert!(!lin(&[
            e(0, 1, ROp::Incr, ROut::Int(1)),
            e(5, M, ROp::Incr, ROut::Unknown),
            e(2, 3, ROp::Get, ROut::Str(Some(2))),
        ]));
    }

    #[test]
    fn lists() {
        assert!(lin(&[
            e(0, 1, ROp::LPush(1), ROut::Int(1)),
            e(2, 3, ROp::LPush(2), ROut::Int(2)),
            e(4, 5, ROp::RPop, ROut::Elem(Some(1))),
            e(6, 7, ROp::RPop, ROut::Elem(Some(2))),
            e(8, 9, ROp::RPop, ROut::Elem(None)),
            e(10, 11, ROp::LLen, ROut::Int(0)),
        ]));
        // Delivered twice.
        assert!(!lin(&[
            e(0, 1, ROp::LPush(1), ROut::Int(1)),
            e(2, 5, ROp::RPop, ROut::Elem(Some(1))),
            e(3, 6, ROp::RPop, ROut::Elem(Some(1))),
        ]));
        // Out of order.
        assert!(!lin(&[
            e(0, 1, ROp::LPush(1), ROut::Int(1)),
            e(2, 3, ROp::LPush(2), ROut::Int(2)),
            e(4, 5, ROp::RPop, ROut::Elem(Some(2))),
        ]));
        // An unknown pop may have taken the element; an unknown push may have happened.
        assert!(lin(&[
            e(0, 1, ROp::LPush(1), ROut::Int(1)),
            e(2, M, ROp::RPop, ROut::Unknown),
            e(4, 5, ROp::RPop, ROut::Elem(None)),
            e(6, M, ROp::LPush(2), ROut::Unknown),
            e(8, 9, ROp::RPop, ROut::Elem(Some(2))),
        ]));
        // A lost acknowledged push.
        assert!(!lin(&[
            e(0, 1, ROp::LPush(1), ROut::Int(1)),
            e(4, 5, ROp::RPop, ROut::Elem(None)),
        ]));
    }

    /// Reference: every real-time-consistent order, each unknown operation optional.
    fn brute(h: &[REvent], s: &RState, done: &mut Vec<bool>) -> bool {
        if (0..h.len()).all(|i| done[i] || h[i].out == ROut::Unknown) {
            return true;
        }
        let min_ret = (0..h.len())
            .filter(|&i| !done[i])
            .map(|i| h[i].ret)
            .min()
            .unwrap();
        for i in 0..h.len() {
            if done[i] || h[i].call > min_ret {
                continue;
            }
            let Some(next) = step(s, &h[i].op, &h[i].out) else {
                continue;
            };
            done[i] = true;
            let ok = brute(h, &next, done);
            done[i] = false;
            if ok {
                return true;
            }
        }
        false
    }

    /// The search (with its twin reduction) agrees with brute force on random small histories.
    #[test]
    fn agrees_with_brute_force_on_random_histories() {
        let mut rng = Rng::new(7);
        let (mut yes, mut no) = (0, 0);
        for round in 0..20_000 {
            let lists = round % 2 == 0;
            let n = rng.range(1, 7) as usize;
            let mut h = Vec::new();
            for k in 0..n as u64 {
                let call = rng.range(0, 20);
                let unknown = rng.chance(1, 4);
                let ret = if unknown { M } else { call + rng.range(0, 8) };
                let (op, out) = if lists {
                    match rng.below(3) {
                        0 => (ROp::LPush(k + 1), ROut::Int(rng.range(1, 3) as i64)),
                        1 => {
                            let x = rng.range(0, 3);
                            (ROp::RPop, ROut::Elem((x > 0).then_some(x)))
                        }
                        _ => (ROp::LLen, ROut::Int(rng.range(0, 3) as i64)),
                    }
                } else {
                    match rng.below(3) {
                        0 => (ROp::Set(rng.range(0, 3) as i64), ROut::Ok),
                        1 => (ROp::Incr, ROut::Int(rng.range(1, 4) as i64)),
                        _ => {
                            let x = rng.range(0, 4);
                            (ROp::Get, ROut::Str((x > 0).then_some(x as i64)))
                        }
                    }
                };
                let out = if unknown { ROut::Unknown } else { out };
                h.push(e(call, ret, op, out));
            }
            let want = brute(&h, &RState::Missing, &mut vec![false; n]);
            let got = check(&h, &RState::Missing, 1_000_000);
            assert_eq!(
                got == Verdict::Linearizable,
                want,
                "{h:?}: brute force {want}, checker {got:?}"
            );
            if want {
                yes += 1
            } else {
                no += 1
            }
        }
        assert!(yes > 2000 && no > 2000, "{yes} linearizable, {no} not");
    }

    #[test]
    fn long_sequential_history_is_cheap() {
        let mut h = Vec::new();
        for i in 0..20_000u64 {
            h.push(e(4 * i, 4 * i + 1, ROp::LPush(i), ROut::Int(1)));
            h.push(e(4 * i + 2, 4 * i + 3, ROp::RPop, ROut::Elem(Some(i))));
        }
        assert!(lin(&h));
    }
}
