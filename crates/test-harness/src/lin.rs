//! Linearizability checker for single-key histories of a memcached register (set, get/gets, cas,
//! incr), shared by the in-process cluster test and the real-process one.
//!
//! A Wing–Gong/Lowe depth-first search with memoisation over (linearized set, state), like
//! Knossos and Porcupine, on an explicit stack (histories are thousands of operations long), with
//! a budget of explored states so a pathological history fails the test with a clear verdict
//! instead of eating the machine.
//!
//! The register's value is missing or a number. The workloads write unique values and increment
//! by small amounts, and a `cas` (token from a `gets`) is modelled as compare-and-set on the value
//! that `gets` returned. An operation whose outcome is unknown (timeout, lost connection, an
//! ambiguous `SERVER_ERROR`) may have taken effect at any time after its call, or never.
//!
//! Exact reductions keep histories with many unknown operations tractable (each one keeps every
//! linearizable history linearizable and every non-linearizable one not):
//! * an unknown operation is only ever linearized as having **happened**; the search succeeds once
//!   every known operation is linearized (the unknown ones left did not happen);
//! * **hidden values**: an unknown write (set, or the new value of a cas) whose value, plus any
//!   number of the history's increments, is never observed by a known operation (a read, a cas'
//!   expected value, an incr result) leaves the register in one abstract state, "some value nobody
//!   saw": every known operation allowed on one such value is allowed on any other
//!   (a failed `cas` with EXISTS, an unknown incr), and no other is;
//! * **symmetry**: unknown operations with the same effect from every state (the same incr, any
//!   two hidden sets) are interchangeable, so they are linearized in call order only (the k-th
//!   one used can always be replaced by the k-th one called: it was called no later).
//!
//! [`redis`]: the same search over Redis keys (a `SET`/`GET` register, an `INCR` counter, an
//! `LPUSH`/`RPOP` list).

use std::collections::HashSet;

pub mod redis;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Set(u64),
    Get,
    Cas { expect: u64, new: u64 },
    Incr(u64),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ret {
    /// A `set` answered STORED.
    Ok,
    /// A read's answer (`None`: miss).
    Value(Option<u64>),
    Stored,
    Exists,
    NotFound,
    /// An incr's answer (`None`: NOT_FOUND).
    Incr(Option<u64>),
    /// Failed: may or may not have happened, at any time after its call.
    Unknown,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Monotonic time of the call.
    pub call: u64,
    /// Monotonic time of the answer; `u64::MAX` for unknown outcomes.
    pub ret: u64,
    pub op: Op,
    pub out: Ret,
}

/// The register: `None` is a missing key.
pub type State = Option<u64>;

/// The outcome of a check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    NotLinearizable,
    /// The search explored more than its budget of (set, state) pairs without an answer.
    GaveUp {
        explored: usize,
    },
}

/// The search's abstract register.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum S {
    Missing,
    Val(u64),
    /// A value written by an unknown operation that no known operation observes.
    Hidden,
}

impl S {
    fn of(s: State) -> S {
        s.map_or(S::Missing, S::Val)
    }
}

/// The state after linearizing `e` (with a known outcome, or as having happened) at `s`;
/// `None` when it cannot go there. `hidden`: `e` is an unknown write of an unobserved value.
fn step(s: S, e: &Event, hidden: bool) -> Option<S> {
    let written = |v: u64| if hidden { S::Hidden } else { S::Val(v) };
    match (&e.op, &e.out) {
        (Op::Set(x), Ret::Ok) => Some(S::Val(*x)),
        (Op::Set(x), Ret::Unknown) => Some(written(*x)),
        (Op::Get, Ret::Value(x)) => (s == S::of(*x)).then_some(s),
        (Op::Cas { expect, new }, out) => match (out, s) {
            (Ret::Stored, S::Val(v)) if v == *expect => Some(S::Val(*new)),
            (Ret::Unknown, S::Val(v)) if v == *expect => Some(written(*new)),
            (Ret::Exists, S::Val(v)) if v != *expect => Some(s),
            (Ret::Exists, S::Hidden) => Some(s),
            (Ret::NotFound, S::Missing) => Some(s),
            _ => None,
        },
        (Op::Incr(d), out) => match (out, s) {
            (Ret::Incr(Some(n)), S::Val(x)) if x.wrapping_add(*d) == *n => Some(S::Val(*n)),
            (Ret::Incr(None), S::Missing) => Some(s),
            (Ret::Unknown, S::Val(x)) => Some(S::Val(x.wrapping_add(*d))),
            (Ret::Unknown, S::Hidden) => Some(s),
            _ => None,
        },
        _ => None,
    }
}

/// Whether `history` (one key's operations, any order) is linearizable from `init`, exploring
/// at most `budget` search states (each costs about 40 bytes of memo).
pub fn check(history: &[Event], init: State, budget: usize) -> Verdict {
    // Unknown reads have no effect: drop them.
    let ev: Vec<&Event> = history
        .iter()
        .filter(|e| !(e.out == Ret::Unknown && e.op == Op::Get))
        .collect();
    let n = ev.len();
    let unknown_of = |i: usize| ev[i].out == Ret::Unknown;

    // Values some known operation observes, and how far increments can carry a written value.
    let mut observed: Vec<u64> = init.into_iter().collect();
    let mut reach = 0u64;
    for e in &ev {
        match (&e.op, &e.out) {
            (Op::Get, Ret::Value(Some(x))) | (Op::Incr(_), Ret::Incr(Some(x))) => observed.push(*x),
            (Op::Cas { expect, .. }, _) => observed.push(*expect),
            _ => {}
        }
        if let Op::Incr(d) = e.op {
            reach = reach.saturating_add(d);
        }
    }
    observed.sort_unstable();
    let seen = |v: u64| -> bool {
        let i = observed.partition_point(|&o| o < v);
        i < observed.len() && observed[i] - v <= reach
    };
    let hidden: Vec<bool> = (0..n)
        .map(|i| {
            unknown_of(i)
                && match ev[i].op {
                    Op::Set(v) | Op::Cas { new: v, .. } => !seen(v),
                    _ => false,
                }
        })
        .collect();

    // Known operations by call time; unknown ones by call time, each chained to the previous
    // one with the same effect (its "twin"): it may only go once that one has.
    let mut known: Vec<usize> = (0..n).filter(|&i| !unknown_of(i)).collect();
    known.sort_by_key(|&i| (ev[i].call, i));
    let mut unknown: Vec<usize> = (0..n).filter(|&i| unknown_of(i)).collect();
    unknown.sort_by_key(|&i| (ev[i].call, i));
    #[derive(PartialEq, Eq, Hash)]
    enum Effect {
        Set(u64),
        HiddenSet,
        Cas(u64, Option<u64>),
        Incr(u64),
    }
    let effect = |i: usize| match ev[i].op {
        Op::Set(_) if hidden[i] => Effect::HiddenSet,
        Op::Set(v) => Effect::Set(v),
        Op::Cas { expect, new } => Effect::Cas(expect, (!hidden[i]).then_some(new)),
        Op::Incr(d) => Effect::Incr(d),
        Op::Get => unreachable!("unknown reads were dropped"),
    };
    let mut twin = vec![usize::MAX; n];
    let mut last: std::collections::HashMap<Effect, usize> = std::collections::HashMap::new();
    for &i in &unknown {
        if let Some(p) = last.insert(effect(i), i) {
            twin[i] = p;
        }
    }

    let mut rng = crate::Rng::new(0x11AE_A512);
    let zobrist: Vec<u128> = (0..n)
        .map(|_| (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64()))
        .collect();

    struct Frame {
        cands: Vec<usize>,
        pos: usize,
        /// The operation linearized from this frame, with the state and `first` before it.
        cur: Option<(usize, S, usize)>,
    }
    let mut done = vec![false; n];
    let mut first = 0usize; // position in `known` of the first known op not linearized
    let mut left = known.len();
    let mut hash = 0u128;
    let mut s = S::of(init);
    let mut memo: HashSet<(u128, S)> = HashSet::new();

    // What may go next: ops called before every pending known op returned. Known ops are
    // scanned in call order from `first` only while they could lower that bound.
    let candidates = |done: &[bool], first: usize| -> Vec<usize> {
        let mut min_ret = u64::MAX;
        let mut end = first;
        while end < known.len() && ev[known[end]].call <= min_ret {
            if !done[known[end]] {
                min_ret = min_ret.min(ev[known[end]].ret);
            }
            end += 1;
        }
        // Earliest return first: the most constrained op is the likeliest next one.
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
    memo.insert((hash, s));
    let mut stack = vec![Frame {
        cands: candidates(&done, first),
        pos: 0,
        cur: None,
    }];
    while let Some(top) = stack.last_mut() {
        // Undo what this frame linearized last.
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
            let Some(s2) = step(s, ev[i], hidden[i]) else {
                continue;
            };
            let h2 = hash ^ zobrist[i];
            let known_op = !unknown_of(i);
            if known_op && left == 1 {
                return Verdict::Linearizable;
            }
            if !memo.insert((h2, s2)) {
                continue;
            }
            if memo.len() > budget {
                return Verdict::GaveUp {
                    explored: memo.len(),
                };
            }
            top.cur = Some((i, s, first));
            done[i] = true;
            hash = h2;
            s = s2;
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

/// One event per line, tab-separated: `call ret op out` with `op`/`out` in `Debug` form (what
/// `LIN_DUMP` directories hold).
pub fn format_dump(history: &[Event]) -> String {
    history
        .iter()
        .map(|e| format!("{}\t{}\t{:?}\t{:?}\n", e.call, e.ret, e.op, e.out))
        .collect()
}

/// Parse [`format_dump`]'s text.
pub fn parse_dump(text: &str) -> Result<Vec<Event>, String> {
    let nums = |s: &str| -> Vec<u64> {
        s.split(|c: char| !c.is_ascii_digit())
            .filter(|x| !x.is_empty())
            .filter_map(|x| x.parse().ok())
            .collect()
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            if f.len() != 4 {
                return Err(format!("expected 4 tab-separated fields: {l:?}"));
            }
            let bad = || format!("cannot parse {l:?}");
            let n = nums(f[2]);
            let op = match f[2] {
                "Get" => Op::Get,
                o if o.starts_with("Set(") && n.len() == 1 => Op::Set(n[0]),
                o if o.starts_with("Incr(") && n.len() == 1 => Op::Incr(n[0]),
                o if o.starts_with("Cas") && n.len() == 2 => Op::Cas {
                    expect: n[0],
                    new: n[1],
                },
                _ => return Err(bad()),
            };
            let n = nums(f[3]);
            let out = match f[3] {
                "Ok" => Ret::Ok,
                "Unknown" => Ret::Unknown,
                "Stored" => Ret::Stored,
                "Exists" => Ret::Exists,
                "NotFound" => Ret::NotFound,
                "Value(None)" => Ret::Value(None),
                "Incr(None)" => Ret::Incr(None),
                o if o.starts_with("Value(Some(") && n.len() == 1 => Ret::Value(Some(n[0])),
                o if o.starts_with("Incr(Some(") && n.len() == 1 => Ret::Incr(Some(n[0])),
                _ => return Err(bad()),
            };
            Ok(Event {
                call: f[0].parse().map_err(|_| bad())?,
                ret: f[1].parse().map_err(|_| bad())?,
                op,
                out,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Rng;

    const BUDGET: usize = 10_000_000;

    fn e(call: u64, ret: u64, op: Op, out: Ret) -> Event {
        Event { call, ret, op, out }
    }

    fn lin(h: &[Event]) -> bool {
        match check(h, None, BUDGET) {
            Verdict::Linearizable => true,
            Verdict::NotLinearizable => false,
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn accepts_and_rejects() {
        let h = vec![
            e(0, 1, Op::Set(5), Ret::Ok),
            e(2, 3, Op::Get, Ret::Value(Some(5))),
            e(4, 5, Op::Incr(1), Ret::Incr(Some(6))),
            e(6, 7, Op::Cas { expect: 6, new: 9 }, Ret::Stored),
            e(8, 9, Op::Get, Ret::Value(Some(9))),
        ];
        assert!(lin(&h));
        // Stale read after a completed write.
        assert!(!lin(&[
            e(0, 1, Op::Set(5), Ret::Ok),
            e(2, 3, Op::Set(7), Ret::Ok),
            e(4, 5, Op::Get, Ret::Value(Some(5)))
        ]));
        // Concurrent write and read: either value is fine.
        assert!(lin(&[
            e(0, 10, Op::Set(5), Ret::Ok),
            e(2, 3, Op::Get, Ret::Value(None))
        ]));
        // Lost increment.
        assert!(!lin(&[
            e(0, 1, Op::Set(5), Ret::Ok),
            e(2, 5, Op::Incr(1), Ret::Incr(Some(6))),
            e(3, 6, Op::Incr(1), Ret::Incr(Some(6))),
        ]));
        // An unknown write may or may not have happened, but cannot un-happen.
        let m = u64::MAX;
        assert!(lin(&[
            e(0, m, Op::Set(5), Ret::Unknown),
            e(2, 3, Op::Get, Ret::Value(None)),
            e(4, 5, Op::Get, Ret::Value(Some(5)))
        ]));
        assert!(!lin(&[
            e(0, m, Op::Set(5), Ret::Unknown),
            e(2, 3, Op::Get, Ret::Value(Some(5))),
            e(4, 5, Op::Get, Ret::Value(None))
        ]));
        // An unknown write nobody read explains a failed cas (a hidden value)...
        assert!(lin(&[
            e(0, 1, Op::Set(1 << 20), Ret::Ok),
            e(2, 3, Op::Get, Ret::Value(Some(1 << 20))),
            e(4, m, Op::Set(2 << 20), Ret::Unknown),
            e(
                6,
                7,
                Op::Cas {
                    expect: 1 << 20,
                    new: 3 << 20
                },
                Ret::Exists
            ),
        ]));
        // ... but not a read of a value nobody wrote, nor one of a later incr.
        assert!(!lin(&[
            e(0, 1, Op::Set(1 << 20), Ret::Ok),
            e(4, m, Op::Set(2 << 20), Ret::Unknown),
            e(6, 7, Op::Get, Ret::Value(Some(7)))
        ]));
        assert!(!lin(&[
            e(0, m, Op::Set(2 << 20), Ret::Unknown),
            e(1, 2, Op::Incr(1), Ret::Incr(None)),
            e(3, 4, Op::Incr(1), Ret::Incr(Some((2 << 20) + 2))),
        ]));
        assert!(lin(&[
            e(0, m, Op::Set(2 << 20), Ret::Unknown),
            e(1, m, Op::Incr(1), Ret::Unknown),
            e(3, 4, Op::Incr(1), Ret::Incr(Some((2 << 20) + 2))),
        ]));
    }

    #[test]
    fn more_shapes() {
        let m = u64::MAX;
        // A read cannot see a write that starts after it returned.
        assert!(!lin(&[
            e(4, 10, Op::Set(5), Ret::Ok),
            e(2, 3, Op::Get, Ret::Value(Some(5)))
        ]));
        assert!(lin(&[
            e(0, 10, Op::Set(5), Ret::Ok),
            e(2, 3, Op::Get, Ret::Value(Some(5)))
        ]));
        // A cas that lost (EXISTS) is explained by an unknown write in between.
        assert!(lin(&[
            e(0, 1, Op::Set(5), Ret::Ok),
            e(2, m, Op::Set(7), Ret::Unknown),
            e(3, 4, Op::Get, Ret::Value(Some(5))),
            e(5, 6, Op::Cas { expect: 5, new: 9 }, Ret::Exists),
        ]));
        // A concurrent pair of increments from 5 gives 6 and 7.
        assert!(lin(&[
            e(0, 1, Op::Set(5), Ret::Ok),
            e(2, 5, Op::Incr(1), Ret::Incr(Some(7))),
            e(3, 6, Op::Incr(1), Ret::Incr(Some(6))),
            e(7, 8, Op::Get, Ret::Value(Some(7))),
        ]));
        // Long sequential history: linear work, no recursion.
        let mut h = Vec::new();
        for i in 0..50_000u64 {
            h.push(e(4 * i, 4 * i + 1, Op::Set(i << 20), Ret::Ok));
            h.push(e(4 * i + 2, 4 * i + 3, Op::Get, Ret::Value(Some(i << 20))));
        }
        assert!(lin(&h));
        h.push(e(m - 2, m - 1, Op::Get, Ret::Value(Some(3))));
        assert!(!lin(&h));
    }

    /// Many unknown increments and hidden sets between reads: linear, not exponential.
    #[test]
    fn many_unknown_operations_stay_tractable() {
        let m = u64::MAX;
        let mut h = vec![e(0, 1, Op::Set(1 << 20), Ret::Ok)];
        let mut t = 10;
        for k in 0..60u64 {
            h.push(e(t, m, Op::Incr(1), Ret::Unknown));
            h.push(e(t + 1, m, Op::Set((100 + k) << 20), Ret::Unknown));
            h.push(e(
                t + 2,
                t + 3,
                Op::Cas {
                    expect: 1 << 20,
                    new: (200 + k) << 20,
                },
                Ret::Exists,
            ));
            t += 10;
        }
        h.push(e(t, t + 1, Op::Set(7 << 20), Ret::Ok));
        h.push(e(t + 2, t + 3, Op::Incr(1), Ret::Incr(Some((7 << 20) + 1))));
        h.push(e(t + 4, t + 5, Op::Get, Ret::Value(Some((7 << 20) + 1))));
        assert_eq!(check(&h, None, 200_000), Verdict::Linearizable);
        // Refuting needs the whole (frontier x unknowns used) space: polynomial, not 2^120.
        h.push(e(t + 6, t + 7, Op::Get, Ret::Value(Some(7 << 20))));
        assert_eq!(check(&h, None, 5_000_000), Verdict::NotLinearizable);
    }

    #[test]
    fn budget_is_reported() {
        let h: Vec<Event> = (0..40)
            .map(|k| e(0, 100, Op::Set(k << 20), Ret::Ok))
            .chain([e(200, 201, Op::Get, Ret::Value(Some(99)))])
            .collect();
        assert!(matches!(check(&h, None, 1000), Verdict::GaveUp { .. }));
    }

    /// Reference: every order consistent with real time, each unknown operation optional, no
    /// reductions (feasible for a handful of operations).
    fn brute(h: &[Event], s: State, done: &mut Vec<bool>) -> bool {
        if (0..h.len()).all(|i| done[i] || h[i].out == Ret::Unknown) {
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
            let next = match step(S::of(s), &h[i], false) {
                Some(S::Val(v)) => Some(v),
                Some(S::Missing) => None,
                Some(S::Hidden) => unreachable!(),
                None => continue,
            };
            done[i] = true;
            let ok = brute(h, next, done);
            done[i] = false;
            if ok {
                return true;
            }
        }
        false
    }

    /// The reductions never change the verdict: random small histories against brute force.
    #[test]
    fn agrees_with_brute_force_on_random_histories() {
        let mut rng = Rng::new(42);
        let (mut yes, mut no) = (0, 0);
        for _ in 0..20_000 {
            let n = rng.range(1, 7) as usize;
            let mut h = Vec::new();
            for k in 0..n as u64 {
                let call = rng.range(0, 20);
                let ret = call + rng.range(0, 8);
                let val = |rng: &mut Rng| rng.range(1, 3) << 20;
                let small = |rng: &mut Rng| rng.range(0, 2);
                let (op, out) = match rng.below(4) {
                    0 => (
                        Op::Set((10 + k) << 20),
                        if rng.chance(1, 3) {
                            Ret::Unknown
                        } else {
                            Ret::Ok
                        },
                    ),
                    1 => {
                        let v = if rng.chance(1, 4) {
                            None
                        } else {
                            Some(val(&mut rng) + small(&mut rng))
                        };
                        (Op::Get, Ret::Value(v))
                    }
                    2 => {
                        let out = [Ret::Stored, Ret::Exists, Ret::NotFound, Ret::Unknown]
                            [rng.below(4) as usize]
                            .clone();
                        (
                            Op::Cas {
                                expect: val(&mut rng),
                                new: (20 + k) << 20,
                            },
                            out,
                        )
                    }
                    _ => {
                        let out = match rng.below(3) {
                            0 => Ret::Unknown,
                            1 => Ret::Incr(None),
                            _ => Ret::Incr(Some(val(&mut rng) + small(&mut rng))),
                        };
                        (Op::Incr(1), out)
                    }
                };
                let ret = if out == Ret::Unknown { u64::MAX } else { ret };
                h.push(e(call, ret, op, out));
            }
            let init = if rng.chance(1, 2) {
                None
            } else {
                Some(1 << 20)
            };
            let want = brute(&h, init, &mut vec![false; n]);
            let got = check(&h, init, BUDGET);
            assert_eq!(
                got == Verdict::Linearizable,
                want,
                "{h:?} from {init:?}: brute force {want}, checker {got:?}"
            );
            if want {
                yes += 1
            } else {
                no += 1
            }
        }
        assert!(
            yes > 2000 && no > 2000,
            "both verdicts exercised: {yes} linearizable, {no} not"
        );
    }

    /// Offline check of dumped histories (`LIN_DUMP=dir` in the cluster tests writes them):
    /// `LIN_CHECK=dir-or-file cargo test -p test-harness --release -- --ignored check_dumped`.
    #[test]
    #[ignore]
    fn check_dumped() {
        let Some(root) = std::env::var_os("LIN_CHECK") else {
            return;
        };
        let mut files = vec![std::path::PathBuf::from(root)];
        let mut failed = Vec::new();
        while let Some(p) = files.pop() {
            if p.is_dir() {
                files.extend(std::fs::read_dir(&p).unwrap().map(|d| d.unwrap().path()));
                continue;
            }
            let Ok(h) = parse_dump(&std::fs::read_to_string(&p).unwrap()) else {
                continue;
            };
            let t = std::time::Instant::now();
            let v = check(&h, None, 20_000_000);
            let unknown = h.iter().filter(|e| e.out == Ret::Unknown).count();
            eprintln!(
                "{}: {} ops, {unknown} unknown: {v:?} in {:.3} s",
                p.display(),
                h.len(),
                t.elapsed().as_secs_f64()
            );
            if v == Verdict::NotLinearizable {
                // The shortest prefix by call time (later calls dropped) that is not linearizable.
                let mut calls: Vec<u64> = h.iter().map(|e| e.call).collect();
                calls.sort_unstable();
                let prefix =
                    |t: u64| -> Vec<Event> { h.iter().filter(|e| e.call <= t).cloned().collect() };
                let (mut lo, mut hi) = (0, calls.len() - 1);
                while lo < hi {
                    let mid = (lo + hi) / 2;
                    if check(&prefix(calls[mid]), None, 20_000_000) == Verdict::NotLinearizable {
                        hi = mid
                    } else {
                        lo = mid + 1
                    }
                }
                let mut p = prefix(calls[lo]);
                p.sort_by_key(|e| e.call);
                eprintln!(
                    "shortest failing prefix ends at call {}; its last 40 events:",
                    calls[lo]
                );
                for e in p.iter().rev().take(40).rev() {
                    eprintln!("  {e:?}");
                }
            }
            if v != Verdict::Linearizable {
                failed.push(p);
            }
        }
        assert!(failed.is_empty(), "{failed:?}");
    }

    #[test]
    fn dump_round_trips() {
        let h = vec![
            e(1, 2, Op::Set(5), Ret::Ok),
            e(3, u64::MAX, Op::Cas { expect: 5, new: 6 }, Ret::Unknown),
            e(4, 5, Op::Incr(1), Ret::Incr(Some(7))),
            e(6, 7, Op::Get, Ret::Value(None)),
            e(8, 9, Op::Incr(2), Ret::Incr(None)),
            e(8, 9, Op::Cas { expect: 5, new: 6 }, Ret::Exists),
        ];
        assert_eq!(parse_dump(&format_dump(&h)).unwrap(), h);
        assert!(parse_dump("1\t2\tFoo\tOk\n").is_err());
    }
}
