//! Property tests of `cache_store::Store`: agreement with a simple HashMap model of memcached
//! (no eviction pressure), and determinism of two stores fed the same call sequence.

use std::collections::HashMap;

use cache_store::*;
use proptest::prelude::*;

const T0: u64 = 1_700_000_000;

#[derive(Clone, Debug)]
enum Op {
    Store {
        mode: u8,
        key: u8,
        val: Vec<u8>,
        flags: u32,
        ttl: i64,
        cas: Option<u8>,
    },
    Get {
        key: u8,
        touch: Option<i64>,
    },
    Delete {
        key: u8,
    },
    Arith {
        key: u8,
        incr: bool,
        delta: u64,
    },
    Touch {
        key: u8,
        ttl: i64,
    },
    Flush {
        delay: u64,
    },
    Tick {
        secs: u64,
    },
    Sweep,
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0u8..12;
    let val = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..40),
        (0u64..30).prop_map(|n| n.to_string().into_bytes()),
        Just(b"18446744073709551615".to_vec()),
    ];
    let ttl = prop_oneof![
        Just(0i64),
        Just(-1),
        1i64..20,
        Just(2_678_400),
        Just(T0 as i64 + 15)
    ];
    prop_oneof![
        6 => (0u8..5, key.clone(), val, any::<u32>(), ttl.clone(), proptest::option::weighted(0.2, 0u8..4))
            .prop_map(|(mode, key, val, flags, ttl, cas)| Op::Store { mode, key, val, flags, ttl, cas }),
        4 => (key.clone(), proptest::option::weighted(0.2, 0i64..20)).prop_map(|(key, touch)| Op::Get { key, touch }),
        1 => key.clone().prop_map(|key| Op::Delete { key }),
        2 => (key.clone(), any::<bool>(), prop_oneof![0u64..10, Just(u64::MAX)])
            .prop_map(|(key, incr, delta)| Op::Arith { key, incr, delta }),
        1 => (key, ttl).prop_map(|(key, ttl)| Op::Touch { key, ttl }),
        1 => prop_oneof![Just(0u64), 1u64..5].prop_map(|delay| Op::Flush { delay }),
        2 => (0u64..4).prop_map(|secs| Op::Tick { secs }),
        1 => Just(Op::Sweep),
    ]
}

fn k(key: u8) -> Vec<u8> {
    format!("key:{key}").into_bytes()
}

fn mode(m: u8) -> StoreMode {
    [
        StoreMode::Set,
        StoreMode::Add,
        StoreMode::Replace,
        StoreMode::Append,
        StoreMode::Prepend,
    ][m as usize % 5]
}

#[derive(Clone, Debug, PartialEq)]
struct MItem {
    val: Vec<u8>,
    flags: u32,
    exp: u64,
    cas: u64,
    /// Last store time (the model never reads with bumps: `reads_mutate = false`).
    time: u64,
}

/// The reference model: memcached semantics written as plainly as possible.
#[derive(Default)]
struct Model {
    items: HashMap<Vec<u8>, MItem>,
    cas: u64,
    /// memcached's oldest_live / oldest_cas, with the "already effective" rule kept separately.
    prev_live: Option<u64>,
    live: Option<u64>,
    cas_floor: u64,
}

impl Model {
    fn dead(&self, it: &MItem, now: u64) -> bool {
        if self.prev_live.is_some_and(|p| it.time <= p) {
            return true;
        }
        if self.live.is_some_and(|l| l <= now && it.time <= l) {
            return true;
        }
        if self.cas_floor != 0 && it.cas != 0 && it.cas < self.cas_floor {
            return true;
        }
        it.exp != 0 && it.exp <= now
    }

    fn peek(&self, key: &[u8], now: u64) -> Option<&MItem> {
        self.items.get(key).filter(|it| !self.dead(it, now))
    }

    fn live(&mut self, key: &[u8], now: u64) -> Option<&mut MItem> {
        let dead = match self.items.get(key) {
            Some(it) => self.dead(it, now),
            None => return None,
        };
        if dead {
            self.items.remove(key);
            return None;
        }
        self.items.get_mut(key)
    }

    fn next_cas(&mut self) -> u64 {
        self.cas += 1;
        self.cas
    }

    fn store(&mut self, r: &StoreReq<'_>, now: u64) -> StoreOutcome {
        let cas_cmd =
            r.compare_cas.is_some() && matches!(r.mode, StoreMode::Set | StoreMode::Replace);
        let cmp = r.compare_cas.unwrap_or(0);
        let exists = self.live(r.key, now).cloned();
        let new = match (exists, r.mode) {
            (None, _) if cas_cmd => return StoreOutcome::NotFound,
            (None, StoreMode::Set | StoreMode::Add) => MItem {
                val: r.value.to_vec(),
                flags: r.flags,
                exp: r.expires_at,
                cas: 0,
                time: now,
            },
            (None, _) => return StoreOutcome::NotStored,
            (Some(old), _) if cas_cmd => {
                if cmp == 0 || cmp != old.cas {
                    return StoreOutcome::Exists;
                }
                MItem {
                    val: r.value.to_vec(),
                    flags: r.flags,
                    exp: r.expires_at,
                    cas: 0,
                    time: now,
                }
            }
            (Some(old), StoreMode::Add) => {
                self.items.get_mut(r.key).unwrap().time = now;
                let _ = old;
                return StoreOutcome::NotStored;
            }
            (Some(_), StoreMode::Set | StoreMode::Replace) => MItem {
                val: r.value.to_vec(),
                flags: r.flags,
                exp: r.expires_at,
                cas: 0,
                time: now,
            },
            (Some(old), m) => {
                if cmp != 0 && cmp != old.cas {
                    return StoreOutcome::Exists;
                }
                let val = if m == StoreMode::Append {
                    [&old.val[..], r.value].concat()
                } else {
                    [r.value, &old.val[..]].concat()
                };
                MItem {
                    val,
                    flags: old.flags,
                    exp: old.exp,
                    cas: 0,
                    time: now,
                }
            }
        };
        let cas = self.next_cas();
        self.items.insert(r.key.to_vec(), MItem { cas, ..new });
        StoreOutcome::Stored { cas }
    }

    fn arith(&mut self, key: &[u8], incr: bool, delta: u64, now: u64) -> ArithOutcome {
        let Some(it) = self.live(key, now).cloned() else {
            return ArithOutcome::NotFound;
        };
        let Some(v) = plain_number(&it.val) else {
            return ArithOutcome::NonNumeric;
        };
        let nv = if incr {
            v.wrapping_add(delta)
        } else {
            v.saturating_sub(delta)
        };
        let text = nv.to_string().into_bytes();
        let val = if text.len() <= it.val.len() {
            let mut t = text.clone();
            t.resize(it.val.len(), b' ');
            t
        } else {
            text
        };
        let cas = self.next_cas();
        self.items.insert(
            key.to_vec(),
            MItem {
                val,
                cas,
                time: now,
                ..it.clone()
            },
        );
        ArithOutcome::Ok {
            value: nv,
            cas,
            expires_at: it.exp,
        }
    }

    fn flush(&mut self, delay: u64, now: u64) {
        let target = if delay == 0 { now } else { now + delay };
        let ol = target - 1;
        if let Some(l) = self.live {
            if l <= now {
                self.prev_live = Some(self.prev_live.map_or(l, |p| p.max(l)));
            }
        }
        self.live = Some(ol);
        if ol <= now {
            self.cas_floor = self.next_cas();
        }
    }
}

/// The model's notion of a number: digits, optionally padded with trailing spaces (what incr
/// writes), fitting in a u64.
fn plain_number(v: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(v).ok()?.trim_end_matches(' ');
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Values memcached's strtoull-based parser may read differently from `plain_number`
/// (leading blanks, signs, NUL, "12 x"); those are covered by the unit tests.
fn ambiguous_numeric(v: &[u8]) -> bool {
    plain_number(v).is_none()
        && v.iter()
            .any(|&b| b.is_ascii_whitespace() || b == 0x0b || b == b'+' || b == b'-' || b == 0)
}

fn big_store(reads_mutate: bool, limit: usize, shards: usize) -> Store {
    Store::new(StoreConfig {
        mem_limit: limit,
        item_size_max: 1 << 20,
        shards,
        reads_mutate,
    })
}

/// key, value, flags, cas, expiry, last access, fetched, stale, token sent.
type Dumped = (Vec<u8>, Vec<u8>, u32, u64, u64, u64, bool, bool, bool);
/// key, value, flags, cas, expiry.
type Live = (Vec<u8>, Vec<u8>, u32, u64, u64);

fn dump(s: &Store) -> Vec<Dumped> {
    let mut v = Vec::new();
    s.for_each_item(|it| {
        v.push((
            it.key.to_vec(),
            it.value.to_vec(),
            it.flags,
            it.cas,
            it.expires_at,
            it.last_access,
            it.fetched_before,
            it.stale,
            it.win_already_sent,
        ))
    });
    v
}

/// Apply one op; returns a printable outcome so two stores can be compared call by call.
fn apply(s: &Store, op: &Op, now: &mut u64) -> String {
    match op {
        Op::Store {
            mode: m,
            key,
            val,
            flags,
            ttl,
            cas,
        } => {
            let key = k(*key);
            let r = StoreReq {
                mode: mode(*m),
                key: &key,
                value: val,
                flags: *flags,
                expires_at: resolve_exptime(*ttl, *now),
                compare_cas: cas.map(|c| c as u64),
                invalidate: false,
                new_cas: None,
                vivify: None,
            };
            format!("{:?}", s.store(&r, *now))
        }
        Op::Get { key, touch } => {
            let opts = GetOpts {
                touch: touch.map(|t| resolve_exptime(t, *now)),
                ..Default::default()
            };
            format!(
                "{:?}",
                s.get(&k(*key), *now, opts, |it| (
                    it.value.to_vec(),
                    it.flags,
                    it.cas,
                    it.expires_at
                ))
            )
        }
        Op::Delete { key } => format!("{:?}", s.delete(&k(*key), DeleteOpts::default(), *now)),
        Op::Arith { key, incr, delta } => format!(
            "{:?}",
            s.arith(
                &ArithReq {
                    key: &k(*key),
                    incr: *incr,
                    delta: *delta,
                    compare_cas: None,
                    vivify: None,
                    touch: None,
                    new_cas: None
                },
                *now
            )
        ),
        Op::Touch { key, ttl } => {
            format!("{:?}", s.touch(&k(*key), resolve_exptime(*ttl, *now), *now))
        }
        Op::Flush { delay } => {
            s.flush_all(*delay, *now);
            String::new()
        }
        Op::Tick { secs } => {
            *now += secs;
            String::new()
        }
        Op::Sweep => format!(
            "{}",
            (0..s.shard_count())
                .map(|i| s.expire_shard(i, *now))
                .sum::<usize>()
        ),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Without memory pressure the store behaves exactly like the HashMap model.
    #[test]
    fn matches_hashmap_model(ops in proptest::collection::vec(op(), 1..200), shards in prop_oneof![Just(1usize), Just(4), Just(64)]) {
        let s = big_store(false, 64 << 20, shards);
        let mut m = Model::default();
        let mut now = T0;
        for op in &ops {
            match op {
                Op::Store { mode: md, key, val, flags, ttl, cas } => {
                    let key = k(*key);
                    let r = StoreReq {
                        mode: mode(*md), key: &key, value: val, flags: *flags,
                        expires_at: resolve_exptime(*ttl, now), compare_cas: cas.map(|c| c as u64),
                        invalidate: false, new_cas: None, vivify: None,
                    };
                    prop_assert_eq!(s.store(&r, now), m.store(&r, now), "{:?}", op);
                }
                Op::Get { key, touch } => {
                    let key = k(*key);
                    let t = touch.map(|t| resolve_exptime(t, now));
                    let got = s.get(&key, now, GetOpts { touch: t, ..Default::default() }, |it| (it.value.to_vec(), it.flags, it.cas, it.expires_at));
                    let want = if t.is_none() { m.peek(&key, now).cloned() } else { m.live(&key, now).cloned() };
                    let want = want.map(|mut it| {
                        if let Some(t) = t { it.exp = t; m.items.get_mut(&key).unwrap().exp = t; }
                        (it.val.clone(), it.flags, it.cas, it.exp)
                    });
                    prop_assert_eq!(got, want, "{:?}", op);
                }
                Op::Delete { key } => {
                    let key = k(*key);
                    let want = if m.live(&key, now).is_some() { m.items.remove(&key); DeleteOutcome::Deleted } else { DeleteOutcome::NotFound };
                    prop_assert_eq!(s.delete(&key, DeleteOpts::default(), now), want);
                }
                Op::Arith { key, incr, delta } => {
                    let key = k(*key);
                    let skip = m.live(&key, now).is_some_and(|it| ambiguous_numeric(&it.val));
                    let got = s.arith(&ArithReq { key: &key, incr: *incr, delta: *delta, compare_cas: None, vivify: None, touch: None, new_cas: None }, now);
                    if skip {
                        // Resynchronise the model from the store for values whose parse is
                        // memcached-specific (covered by unit tests).
                        match got {
                            ArithOutcome::Ok { cas, .. } => {
                                let v = s.get(&key, now, GetOpts::default(), |it| it.value.to_vec()).unwrap();
                                m.cas = cas;
                                let it = m.items.get_mut(&key).unwrap();
                                it.val = v; it.cas = cas; it.time = now;
                            }
                            other => prop_assert_eq!(other, ArithOutcome::NonNumeric),
                        }
                    } else {
                        prop_assert_eq!(got, m.arith(&key, *incr, *delta, now), "{:?}", op);
                    }
                }
                Op::Touch { key, ttl } => {
                    let key = k(*key);
                    let e = resolve_exptime(*ttl, now);
                    let want = match m.live(&key, now) { Some(it) => { it.exp = e; true } None => false };
                    prop_assert_eq!(s.touch(&key, e, now), want);
                }
                Op::Flush { delay } => { s.flush_all(*delay, now); m.flush(*delay, now); }
                Op::Tick { secs } => now += secs,
                Op::Sweep => {
                    let n: usize = (0..s.shard_count()).map(|i| s.expire_shard(i, now)).sum();
                    let before = m.items.len();
                    let dead: Vec<Vec<u8>> = m.items.iter().filter(|(_, it)| m.dead(it, now)).map(|(k, _)| k.clone()).collect();
                    for d in &dead { m.items.remove(d); }
                    prop_assert_eq!(n, before - m.items.len());
                }
            }
            // Live contents agree after every step.
            let mut live: Vec<Live> = Vec::new();
            s.for_each_item(|it| live.push((it.key.to_vec(), it.value.to_vec(), it.flags, it.cas, it.expires_at)));
            live.retain(|(key, ..)| m.items.get(key).is_some_and(|mi| !m.dead(mi, now)));
            let mut want: Vec<Live> = m.items.iter()
                .filter(|(_, it)| !m.dead(it, now))
                .map(|(k, it)| (k.clone(), it.val.clone(), it.flags, it.cas, it.exp)).collect();
            live.sort();
            want.sort();
            prop_assert_eq!(live, want);
        }
        let st = s.stats();
        let mut bytes = 0u64;
        s.for_each_item(|it| bytes += Store::item_charge(it.key.len(), it.value.len()) as u64);
        prop_assert_eq!(st.bytes, bytes);
    }

    /// Two stores fed the same calls end up identical (contents, CAS values, evictions), also
    /// under heavy eviction pressure and with reads not mutating.
    #[test]
    fn deterministic_replicas(
        ops in proptest::collection::vec(op(), 1..300),
        limit in prop_oneof![Just(2_000usize), Just(5_000), Just(64 << 20)],
        shards in prop_oneof![Just(1usize), Just(4), Just(16)],
        reads_mutate in any::<bool>(),
    ) {
        let a = big_store(reads_mutate, limit, shards);
        let b = big_store(reads_mutate, limit, shards);
        let (mut na, mut nb) = (T0, T0);
        for op in &ops {
            let ra = apply(&a, op, &mut na);
            let rb = apply(&b, op, &mut nb);
            prop_assert_eq!(ra, rb);
            prop_assert!(a.stats().bytes <= limit as u64);
        }
        prop_assert_eq!(dump(&a), dump(&b));
        let (sa, sb) = (a.stats(), b.stats());
        prop_assert_eq!(sa, sb);
        prop_assert_eq!(a.current_cas(), b.current_cas());
    }

    /// With `reads_mutate = false`, interleaving any reads changes nothing.
    #[test]
    fn reads_change_nothing(ops in proptest::collection::vec(op(), 1..200), limit in prop_oneof![Just(3_000usize), Just(64 << 20)]) {
        let a = big_store(false, limit, 4);
        let b = big_store(false, limit, 4);
        let (mut na, mut nb) = (T0, T0);
        for op in &ops {
            if let Op::Get { touch: Some(_), .. } = op { continue; }
            apply(&a, op, &mut na);
            apply(&b, op, &mut nb);
            // b also gets a burst of reads of every key
            for key in 0..12u8 {
                b.get(&k(key), nb, GetOpts::default(), |it| it.value.len());
            }
            prop_assert_eq!(dump(&a), dump(&b));
        }
    }
}

fn cfg(reads_mutate: bool, limit: usize, shards: usize) -> StoreConfig {
    StoreConfig {
        mem_limit: limit,
        item_size_max: 1 << 20,
        shards,
        reads_mutate,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// export → import gives an exact replica: the same dump, stats, CAS counter and image, and
    /// the same outcomes and final state for any further calls — under eviction pressure too
    /// (slot order, CLOCK hand and reference bits carry over). Both a fresh store and an
    /// in-place import over a store holding other data are checked.
    #[test]
    fn export_import_is_an_exact_replica(
        before in proptest::collection::vec(op(), 0..250),
        after in proptest::collection::vec(op(), 1..250),
        limit in prop_oneof![Just(2_000usize), Just(5_000), Just(64 << 20)],
        shards in prop_oneof![Just(1usize), Just(4), Just(16)],
        reads_mutate in any::<bool>(),
    ) {
        let a = big_store(reads_mutate, limit, shards);
        let mut now = T0;
        for op in &before {
            apply(&a, op, &mut now);
        }
        let img = a.export();
        let b = Store::from_export(cfg(reads_mutate, limit, shards), &img).unwrap();
        // In place, over unrelated contents and flush state.
        let c = big_store(reads_mutate, limit, shards);
        let mut junk_now = T0 + 5;
        for i in 0..20u8 {
            apply(&c, &Op::Store { mode: 0, key: i % 12, val: vec![i; 30], flags: 1, ttl: 0, cas: None }, &mut junk_now);
        }
        c.flush_all(3, junk_now);
        let info = c.import(&img).unwrap();
        prop_assert!(info.exact);
        prop_assert_eq!(info.bytes, a.stats().bytes);
        for r in [&b, &c] {
            prop_assert_eq!(dump(&a), dump(r));
            prop_assert_eq!(a.stats(), r.stats());
            prop_assert_eq!(a.current_cas(), r.current_cas());
            prop_assert!(r.export() == img, "re-export differs");
        }
        let (mut na, mut nb, mut nc) = (now, now, now);
        for op in &after {
            let ra = apply(&a, op, &mut na);
            prop_assert_eq!(&ra, &apply(&b, op, &mut nb), "{:?}", op);
            prop_assert_eq!(&ra, &apply(&c, op, &mut nc), "{:?}", op);
        }
        prop_assert_eq!(dump(&a), dump(&b));
        prop_assert_eq!(dump(&a), dump(&c));
        prop_assert_eq!(a.stats(), b.stats());
        prop_assert_eq!(a.stats(), c.stats());
        prop_assert!(a.export() == b.export() && a.export() == c.export());
    }
}

/// Many items, steady eviction with `reads_mutate = false` (the cluster's configuration): a
/// replica rebuilt from an image mid-run evicts exactly the same items afterwards.
#[test]
fn exact_replica_under_eviction_pressure() {
    let limit = 400_000;
    let a = big_store(false, limit, 8);
    let mut now = T0;
    let set = |s: &Store, i: u32, now: u64| {
        let key = format!("key:{i:07}");
        let val = vec![b'a' + (i % 26) as u8; 20 + (i % 90) as usize];
        let r = StoreReq {
            flags: i,
            expires_at: if i % 7 == 3 { now + 3 } else { 0 },
            ..StoreReq::set(key.as_bytes(), &val)
        };
        s.store(&r, now)
    };
    for i in 0..20_000u32 {
        set(&a, i, now);
        if i % 1000 == 0 {
            now += 1;
        }
    }
    assert!(a.stats().evictions > 10_000, "{:?}", a.stats());
    let img = a.export();
    let b = Store::from_export(cfg(false, limit, 8), &img).unwrap();
    assert_eq!(dump(&a), dump(&b));
    for i in 20_000..40_000u32 {
        let (ra, rb) = (set(&a, i % 25_000, now), set(&b, i % 25_000, now));
        assert_eq!(ra, rb);
        if i % 3 == 0 {
            let key = format!("key:{:07}", i / 2);
            let d = DeleteOpts::default();
            assert_eq!(
                a.delete(key.as_bytes(), d, now),
                b.delete(key.as_bytes(), d, now)
            );
        }
        if i % 1000 == 0 {
            now += 1;
            assert_eq!(
                a.expire_shard((i / 1000) as usize % 8, now),
                b.expire_shard((i / 1000) as usize % 8, now)
            );
        }
    }
    assert_eq!(dump(&a), dump(&b));
    assert_eq!(a.stats(), b.stats());
    assert!(a.stats().bytes <= limit as u64);
}

/// A damaged image is refused (never a panic) and leaves the store as it was.
#[test]
fn damaged_images_are_refused_and_change_nothing() {
    let a = big_store(false, 64 << 20, 4);
    let mut now = T0;
    for i in 0..40u8 {
        apply(
            &a,
            &Op::Store {
                mode: 0,
                key: i % 12,
                val: vec![i; i as usize],
                flags: 7,
                ttl: 0,
                cas: None,
            },
            &mut now,
        );
    }
    a.flush_all(100, now);
    let img = a.export();
    let target = big_store(false, 64 << 20, 4);
    apply(
        &target,
        &Op::Store {
            mode: 0,
            key: 1,
            val: b"keep".to_vec(),
            flags: 0,
            ttl: 0,
            cas: None,
        },
        &mut now,
    );
    let before = dump(&target);
    for len in 0..img.len() {
        assert!(target.import(&img[..len]).is_err(), "truncated at {len}");
        assert_eq!(dump(&target), before);
    }
    let mut longer = img.clone();
    longer.push(0);
    assert_eq!(target.import(&longer), Err(SnapshotError::Trailing));
    // Flip every byte in turn: refused, or accepted as some valid store; never a panic, and the
    // table invariants hold (every key readable).
    for i in 0..img.len() {
        let mut bad = img.clone();
        bad[i] ^= 0x5a;
        let s = big_store(false, 64 << 20, 4);
        if s.import(&bad).is_ok() {
            let mut keys = Vec::new();
            s.for_each_item(|it| keys.push(it.key.to_vec()));
            for k in keys {
                s.get(&k, now, GetOpts::default(), |_| ());
            }
            apply(
                &s,
                &Op::Store {
                    mode: 0,
                    key: 3,
                    val: b"x".to_vec(),
                    flags: 0,
                    ttl: 0,
                    cas: None,
                },
                &mut now.clone(),
            );
        }
    }
    assert_eq!(dump(&target), before);
    target.import(&img).unwrap();
    assert_eq!(dump(&target), dump(&a));
}

/// An image from a store with another shard count imports its contents (not slot-exact).
#[test]
fn import_with_other_shard_count_keeps_contents() {
    let a = big_store(false, 64 << 20, 16);
    let mut now = T0;
    for i in 0..200u32 {
        let key = format!("k{i}");
        let r = StoreReq {
            mode: StoreMode::Set,
            key: key.as_bytes(),
            value: b"v",
            flags: i,
            expires_at: 0,
            compare_cas: None,
            invalidate: false,
            new_cas: None,
            vivify: None,
        };
        a.store(&r, now);
    }
    now += 1;
    let b = big_store(false, 64 << 20, 4);
    let info = b.import(&a.export()).unwrap();
    assert!(!info.exact);
    assert_eq!(info.items, 200);
    let (mut da, mut db) = (dump(&a), dump(&b));
    da.sort();
    db.sort();
    assert_eq!(da, db);
    assert_eq!(a.current_cas(), b.current_cas());
    assert_eq!(a.stats().bytes, b.stats().bytes);
    assert_eq!(
        b.get(b"k5", now, GetOpts::default(), |it| it.flags),
        Some(5)
    );
}
