//! Unit tests of the store's memcached semantics (see also `tests/store.rs` for property tests).

use super::*;

const NOW: u64 = 1_700_000_000;

fn store() -> Store {
    Store::new(StoreConfig {
        mem_limit: 64 << 20,
        item_size_max: 1 << 20,
        shards: 4,
        reads_mutate: true,
    })
}

fn req<'a>(mode: StoreMode, key: &'a [u8], value: &'a [u8]) -> StoreReq<'a> {
    StoreReq {
        mode,
        ..StoreReq::set(key, value)
    }
}

fn set(s: &Store, key: &[u8], value: &[u8], now: u64) -> u64 {
    match s.store(&req(StoreMode::Set, key, value), now) {
        StoreOutcome::Stored { cas } => cas,
        o => panic!("set failed: {o:?}"),
    }
}

fn get(s: &Store, key: &[u8], now: u64) -> Option<Vec<u8>> {
    s.get(key, now, GetOpts::default(), |it| it.value.to_vec())
}

fn full(s: &Store, key: &[u8], now: u64) -> Option<(Vec<u8>, u32, u64, u64)> {
    s.get(key, now, GetOpts::default(), |it| {
        (it.value.to_vec(), it.flags, it.cas, it.expires_at)
    })
}

fn arith(s: &Store, key: &[u8], incr: bool, delta: u64) -> ArithOutcome {
    s.arith(
        &ArithReq {
            key,
            incr,
            delta,
            compare_cas: None,
            vivify: None,
            touch: None,
            new_cas: None,
        },
        NOW,
    )
}

#[test]
fn resolve_exptime_rules() {
    assert_eq!(resolve_exptime(0, NOW), 0);
    assert_eq!(resolve_exptime(-1, NOW), 1);
    assert_eq!(resolve_exptime(i64::MIN, NOW), 1);
    assert_eq!(resolve_exptime(1, NOW), NOW + 1);
    assert_eq!(
        resolve_exptime(REALTIME_MAXDELTA, NOW),
        NOW + REALTIME_MAXDELTA as u64
    );
    // One past 30 days is an absolute time: 2592001 is in 1970 => already expired.
    assert_eq!(resolve_exptime(REALTIME_MAXDELTA + 1, NOW), 1);
    assert_eq!(resolve_exptime(2_678_400, NOW), 1);
    assert_eq!(resolve_exptime(NOW as i64, NOW), 1);
    assert_eq!(resolve_exptime(NOW as i64 + 10, NOW), NOW + 10);
}

#[test]
fn set_get_flags_and_cas_counter() {
    let s = store();
    let c1 = set(&s, b"a", b"1", NOW);
    let mut r = req(StoreMode::Set, b"b", b"22");
    r.flags = u32::MAX;
    let StoreOutcome::Stored { cas: c2 } = s.store(&r, NOW) else {
        panic!()
    };
    assert_eq!((c1, c2), (1, 2));
    assert_eq!(full(&s, b"b", NOW), Some((b"22".to_vec(), u32::MAX, 2, 0)));
    let c3 = set(&s, b"a", b"x", NOW);
    assert_eq!(c3, 3);
    assert_eq!(get(&s, b"a", NOW), Some(b"x".to_vec()));
    assert_eq!(get(&s, b"zz", NOW), None);
    let st = s.stats();
    assert_eq!((st.curr_items, st.total_items), (2, 3));
    assert_eq!(
        st.bytes,
        (Store::item_charge(1, 1) + Store::item_charge(1, 2)) as u64
    );
    // empty value and empty key are fine
    set(&s, b"", b"", NOW);
    assert_eq!(get(&s, b"", NOW), Some(vec![]));
}

#[test]
fn add_replace_append_prepend() {
    let s = store();
    assert_eq!(
        s.store(&req(StoreMode::Replace, b"k", b"v"), NOW),
        StoreOutcome::NotStored
    );
    assert_eq!(
        s.store(&req(StoreMode::Append, b"k", b"v"), NOW),
        StoreOutcome::NotStored
    );
    assert_eq!(
        s.store(&req(StoreMode::Prepend, b"k", b"v"), NOW),
        StoreOutcome::NotStored
    );
    let mut a = req(StoreMode::Add, b"k", b"mid");
    a.flags = 7;
    a.expires_at = NOW + 100;
    assert!(matches!(s.store(&a, NOW), StoreOutcome::Stored { .. }));
    assert_eq!(
        s.store(&req(StoreMode::Add, b"k", b"other"), NOW),
        StoreOutcome::NotStored
    );
    // append/prepend keep flags and expiry
    let mut ap = req(StoreMode::Append, b"k", b"_end");
    ap.flags = 99;
    ap.expires_at = 5;
    assert!(matches!(s.store(&ap, NOW), StoreOutcome::Stored { .. }));
    assert!(matches!(
        s.store(&req(StoreMode::Prepend, b"k", b"start_"), NOW),
        StoreOutcome::Stored { .. }
    ));
    let (v, f, _, e) = full(&s, b"k", NOW).unwrap();
    assert_eq!((v.as_slice(), f, e), (&b"start_mid_end"[..], 7, NOW + 100));
    assert!(matches!(
        s.store(&req(StoreMode::Replace, b"k", b"r"), NOW),
        StoreOutcome::Stored { .. }
    ));
    assert_eq!(
        full(&s, b"k", NOW).unwrap().3,
        0,
        "replace sets the new expiry"
    );
    // append vivify creates
    let mut av = req(StoreMode::Append, b"new", b"abc");
    av.vivify = Some(NOW + 9);
    assert!(matches!(s.store(&av, NOW), StoreOutcome::Stored { .. }));
    assert_eq!(full(&s, b"new", NOW).unwrap().3, NOW + 9);
}

#[test]
fn cas_semantics() {
    let s = store();
    let mut c = req(StoreMode::Set, b"k", b"v2");
    c.compare_cas = Some(5);
    assert_eq!(s.store(&c, NOW), StoreOutcome::NotFound);
    let cas = set(&s, b"k", b"v1", NOW);
    assert_eq!(s.store(&c, NOW), StoreOutcome::Exists);
    c.compare_cas = Some(0);
    assert_eq!(
        s.store(&c, NOW),
        StoreOutcome::Exists,
        "cas 0 never matches an item"
    );
    c.compare_cas = Some(cas);
    let StoreOutcome::Stored { cas: cas2 } = s.store(&c, NOW) else {
        panic!()
    };
    assert!(cas2 > cas);
    assert_eq!(
        s.store(&c, NOW),
        StoreOutcome::Exists,
        "old cas no longer matches"
    );
    assert_eq!(get(&s, b"k", NOW), Some(b"v2".to_vec()));
    // append with a mismatching CAS
    let mut ap = req(StoreMode::Append, b"k", b"x");
    ap.compare_cas = Some(cas2 + 100);
    assert_eq!(s.store(&ap, NOW), StoreOutcome::Exists);
    ap.compare_cas = Some(cas2);
    assert!(matches!(s.store(&ap, NOW), StoreOutcome::Stored { .. }));
    // explicit new CAS does not consume the counter
    let before = s.current_cas();
    let mut e = req(StoreMode::Set, b"k", b"e");
    e.new_cas = Some(999_999);
    assert_eq!(s.store(&e, NOW), StoreOutcome::Stored { cas: 999_999 });
    assert_eq!(s.current_cas(), before);
    assert_eq!(full(&s, b"k", NOW).unwrap().2, 999_999);
}

#[test]
fn invalidate_and_win_tokens() {
    let s = store();
    let mut r = req(StoreMode::Set, b"k", b"v");
    r.expires_at = NOW + 1000;
    let StoreOutcome::Stored { cas } = s.store(&r, NOW) else {
        panic!()
    };
    // md k I T30: item stays, stale, new cas, new ttl
    let d = s.delete(
        b"k",
        DeleteOpts {
            invalidate: true,
            touch: Some(NOW + 30),
            ..Default::default()
        },
        NOW,
    );
    assert_eq!(d, DeleteOutcome::Deleted);
    // Plain reads (get, gat, binary) of a stale item neither win nor use up its token.
    for _ in 0..2 {
        let plain = s.get(b"k", NOW, GetOpts::default(), |it| {
            (it.stale, it.win, it.win_already_sent)
        });
        assert_eq!(plain, Some((true, false, false)));
    }
    let look = |s: &Store| {
        s.get_meta(
            b"k",
            NOW,
            GetOpts::default(),
            MetaOrder::default(),
            |it, _| (it.stale, it.win, it.win_already_sent, it.cas, it.expires_at),
        )
    };
    let (stale, win, already, cas2, exp) = look(&s).unwrap();
    assert!(stale && win && !already);
    assert!(cas2 > cas);
    assert_eq!(exp, NOW + 30);
    let (stale, win, already, _, _) = look(&s).unwrap();
    assert!(stale && !win && already, "second reader sees Z, not W");
    // ms with an older CAS + I stores a stale value keeping the TTL and token bit
    let mut ms = req(StoreMode::Set, b"k", b"recache");
    ms.compare_cas = Some(cas); // older than cas2
    ms.invalidate = true;
    ms.expires_at = NOW + 5000;
    assert!(matches!(s.store(&ms, NOW), StoreOutcome::Stored { .. }));
    let (stale, win, already, _, exp) = look(&s).unwrap();
    assert!(stale && !win && already);
    assert_eq!(exp, NOW + 30);
    // a newer/equal CAS stores a fresh item
    let cur = full(&s, b"k", NOW).unwrap().2;
    ms.compare_cas = Some(cur);
    assert!(matches!(s.store(&ms, NOW), StoreOutcome::Stored { .. }));
    let (stale, win, already, _, exp) = look(&s).unwrap();
    assert!(!stale && !win && !already);
    assert_eq!(exp, NOW + 5000);
    // a larger (future) CAS with I is just a mismatch
    ms.compare_cas = Some(u64::MAX);
    assert_eq!(s.store(&ms, NOW), StoreOutcome::Exists);

    // recache: win once when remaining TTL is below the threshold
    let ropts = GetOpts {
        recache_below: Some(6000),
        ..Default::default()
    };
    assert_eq!(
        s.get(b"k", NOW, ropts, |it| (it.win, it.win_already_sent)),
        Some((true, false))
    );
    assert_eq!(
        s.get(b"k", NOW, ropts, |it| (it.win, it.win_already_sent)),
        Some((false, true))
    );
    let ropts = GetOpts {
        recache_below: Some(10),
        ..Default::default()
    };
    set(&s, b"r", b"v", NOW);
    assert_eq!(
        s.get(b"r", NOW, ropts, |it| it.win),
        Some(false),
        "no TTL => no recache win"
    );

    // vivify
    let v = GetOpts {
        vivify: Some(NOW + 30),
        ..Default::default()
    };
    let got = s.get(b"viv", NOW, v, |it| {
        (
            it.value.to_vec(),
            it.win,
            it.win_already_sent,
            it.expires_at,
            it.flags,
        )
    });
    assert_eq!(got, Some((vec![], true, false, NOW + 30, 0)));
    let got = s.get(b"viv", NOW, v, |it| (it.win, it.win_already_sent));
    assert_eq!(got, Some((false, true)));
    assert_eq!(s.get(b"nope", NOW, GetOpts::default(), |_| ()), None);
}

/// memcached applies a meta command's T, N and R in the order the request lists them.
#[test]
fn meta_flag_order() {
    let s = store();
    let ord = |touch_after_vivify, recache_after_touch| MetaOrder {
        touch_after_vivify,
        recache_after_touch,
    };
    let look = |s: &Store, key: &[u8], opts: GetOpts, order: MetaOrder| {
        s.get_meta(key, NOW, opts, order, |it, info| {
            (it.win, it.expires_at, info)
        })
    };
    // R judged before T sees the old expiry (none: no win); after T it sees the new one.
    set(&s, b"k", b"v", NOW);
    let opts = GetOpts {
        touch: Some(NOW + 5),
        recache_below: Some(30),
        ..Default::default()
    };
    let info = MetaInfo {
        created: false,
        prior_expires_at: 0,
    };
    assert_eq!(
        look(&s, b"k", opts, ord(false, false)),
        Some((false, NOW + 5, info))
    );
    set(&s, b"k", b"v", NOW);
    assert_eq!(
        look(&s, b"k", opts, ord(false, true)),
        Some((true, NOW + 5, info))
    );
    // A vivified item: the expiry of whichever of N and T comes last; R never wins for it.
    let viv = GetOpts {
        touch: Some(NOW + 7),
        vivify: Some(NOW + 9),
        recache_below: Some(1000),
        ..Default::default()
    };
    let created = MetaInfo {
        created: true,
        prior_expires_at: 0,
    };
    assert_eq!(
        look(&s, b"v1", viv, ord(false, true)),
        Some((true, NOW + 9, created))
    );
    assert_eq!(
        look(&s, b"v2", viv, ord(true, true)),
        Some((true, NOW + 7, created))
    );
    let again = look(&s, b"v2", viv, ord(true, true)).unwrap();
    assert_eq!(
        again,
        (
            false,
            NOW + 7,
            MetaInfo {
                created: false,
                prior_expires_at: NOW + 7
            }
        )
    );

    // ma: N/T order for a created item; T is lost when the number grows into a new item.
    let mut a = ArithReq {
        key: b"n",
        incr: true,
        delta: 1,
        compare_cas: None,
        vivify: Some((9, NOW + 9)),
        touch: Some(NOW + 7),
        new_cas: None,
    };
    let (out, info) = s.arith_meta(&a, ord(false, false), false, NOW);
    assert!(matches!(out, ArithOutcome::Ok { value: 9, expires_at, .. } if expires_at == NOW + 9));
    assert!(info.created);
    let (out, info) = s.arith_meta(&a, ord(false, false), false, NOW);
    assert!(
        matches!(out, ArithOutcome::Ok { value: 10, expires_at, .. } if expires_at == NOW + 9),
        "{out:?}"
    );
    assert_eq!(
        info,
        MetaInfo {
            created: false,
            prior_expires_at: NOW + 9
        }
    );
    a.touch = Some(NOW + 3);
    let (out, _) = s.arith_meta(&a, ord(false, false), false, NOW);
    assert!(matches!(out, ArithOutcome::Ok { value: 11, expires_at, .. } if expires_at == NOW + 3));
    assert_eq!(full(&s, b"n", NOW).unwrap().3, NOW + 3);
    // Still referenced elsewhere: a new item even though "12" fits, so T is lost and the
    // shorter result is not padded.
    a.delta = 1;
    let (out, _) = s.arith_meta(&a, ord(false, false), true, NOW);
    assert!(matches!(out, ArithOutcome::Ok { value: 12, expires_at, .. } if expires_at == NOW + 3));
    a.incr = false;
    a.delta = 3;
    let (out, _) = s.arith_meta(&a, ord(false, false), true, NOW);
    assert!(matches!(out, ArithOutcome::Ok { value: 9, .. }));
    assert_eq!(full(&s, b"n", NOW).unwrap().0, b"9");

    // A chunked (over 512 KiB) value is non-numeric before the CAS is compared.
    let mut big = vec![b'0'; 600_000];
    big[599_999] = b'1';
    let cas = set(&s, b"big", &big, NOW);
    let mut a = ArithReq {
        key: b"big",
        incr: true,
        delta: 1,
        compare_cas: Some(cas + 1),
        vivify: None,
        touch: None,
        new_cas: None,
    };
    assert_eq!(s.arith(&a, NOW), ArithOutcome::NonNumeric);
    a.compare_cas = None;
    assert_eq!(s.arith(&a, NOW), ArithOutcome::NonNumeric);
}

#[test]
fn delete_variants() {
    let s = store();
    assert_eq!(
        s.delete(b"k", DeleteOpts::default(), NOW),
        DeleteOutcome::NotFound
    );
    let cas = set(&s, b"k", b"v", NOW);
    let wrong = DeleteOpts {
        compare_cas: Some(cas + 1),
        ..Default::default()
    };
    assert_eq!(s.delete(b"k", wrong, NOW), DeleteOutcome::Exists);
    let right = DeleteOpts {
        compare_cas: Some(cas),
        ..Default::default()
    };
    assert_eq!(s.delete(b"k", right, NOW), DeleteOutcome::Deleted);
    assert_eq!(get(&s, b"k", NOW), None);
    assert_eq!(s.stats().curr_items, 0);
    assert_eq!(s.stats().bytes, 0);
    // x: keep the item, empty value, flags zeroed, ttl kept
    let mut r = req(StoreMode::Set, b"k", b"value");
    r.flags = 3;
    r.expires_at = NOW + 50;
    s.store(&r, NOW);
    let x = DeleteOpts {
        remove_value_only: true,
        ..Default::default()
    };
    assert_eq!(s.delete(b"k", x, NOW), DeleteOutcome::Deleted);
    let (v, f, c, e) = full(&s, b"k", NOW).unwrap();
    assert_eq!((v.len(), f, e), (0, 0, NOW + 50));
    assert!(c > cas);
    assert_eq!(s.stats().bytes, Store::item_charge(1, 0) as u64);
    s.remove(b"k", NOW);
    assert_eq!(get(&s, b"k", NOW), None);
}

#[test]
fn incr_decr() {
    let s = store();
    assert_eq!(arith(&s, b"n", true, 1), ArithOutcome::NotFound);
    set(&s, b"n", b"1", NOW);
    assert!(matches!(
        arith(&s, b"n", true, 1),
        ArithOutcome::Ok { value: 2, .. }
    ));
    assert!(matches!(
        arith(&s, b"n", true, 8),
        ArithOutcome::Ok { value: 10, .. }
    ));
    assert_eq!(get(&s, b"n", NOW), Some(b"10".to_vec()));
    // shorter text keeps the length, padded with spaces
    assert!(matches!(
        arith(&s, b"n", false, 1),
        ArithOutcome::Ok { value: 9, .. }
    ));
    assert_eq!(get(&s, b"n", NOW), Some(b"9 ".to_vec()));
    assert!(matches!(
        arith(&s, b"n", false, 100),
        ArithOutcome::Ok { value: 0, .. }
    ));
    assert_eq!(get(&s, b"n", NOW), Some(b"0 ".to_vec()));
    // and the padded value is still numeric
    assert!(matches!(
        arith(&s, b"n", true, 123),
        ArithOutcome::Ok { value: 123, .. }
    ));
    assert_eq!(get(&s, b"n", NOW), Some(b"123".to_vec()));
    set(&s, b"n", b"18446744073709551615", NOW);
    assert!(matches!(
        arith(&s, b"n", true, 2),
        ArithOutcome::Ok { value: 1, .. }
    ));
    assert_eq!(get(&s, b"n", NOW), Some(b"1                   ".to_vec()));
    set(&s, b"t", b"hi", NOW);
    assert_eq!(arith(&s, b"t", true, 1), ArithOutcome::NonNumeric);
    set(&s, b"t", b"", NOW);
    assert_eq!(arith(&s, b"t", true, 1), ArithOutcome::NonNumeric);
    set(&s, b"t", b"-1", NOW);
    assert_eq!(arith(&s, b"t", false, 1), ArithOutcome::NonNumeric);
    set(&s, b"t", b"18446744073709551616", NOW);
    assert_eq!(arith(&s, b"t", true, 1), ArithOutcome::NonNumeric);
    // flags and cas
    let mut r = req(StoreMode::Set, b"f", b"99");
    r.flags = 42;
    r.expires_at = NOW + 77;
    let StoreOutcome::Stored { cas } = s.store(&r, NOW) else {
        panic!()
    };
    let ArithOutcome::Ok {
        value,
        cas: c2,
        expires_at,
    } = arith(&s, b"f", true, 1)
    else {
        panic!()
    };
    assert_eq!((value, expires_at), (100, NOW + 77));
    assert!(c2 > cas);
    assert_eq!(
        full(&s, b"f", NOW),
        Some((b"100".to_vec(), 42, c2, NOW + 77))
    );
    // compare cas / vivify / touch
    let mut a = ArithReq {
        key: b"f",
        incr: true,
        delta: 1,
        compare_cas: Some(cas),
        vivify: None,
        touch: None,
        new_cas: None,
    };
    assert_eq!(s.arith(&a, NOW), ArithOutcome::Exists);
    a.compare_cas = Some(c2);
    a.touch = Some(NOW + 5);
    assert!(
        matches!(s.arith(&a, NOW), ArithOutcome::Ok { value: 101, expires_at, .. } if expires_at == NOW + 5)
    );
    let v = ArithReq {
        key: b"v",
        incr: false,
        delta: 5,
        compare_cas: None,
        vivify: Some((10, NOW + 9)),
        touch: None,
        new_cas: None,
    };
    assert!(
        matches!(s.arith(&v, NOW), ArithOutcome::Ok { value: 10, expires_at, .. } if expires_at == NOW + 9)
    );
    assert!(matches!(
        s.arith(&v, NOW),
        ArithOutcome::Ok { value: 5, .. }
    ));
    assert_eq!(get(&s, b"v", NOW), Some(b"5 ".to_vec()));
}

#[test]
fn expiry_boundaries() {
    let s = store();
    let mut r = req(StoreMode::Set, b"k", b"v");
    r.expires_at = resolve_exptime(10, NOW);
    s.store(&r, NOW);
    assert!(get(&s, b"k", NOW + 9).is_some());
    assert!(
        get(&s, b"k", NOW + 10).is_none(),
        "expires_at <= now is dead"
    );
    assert_eq!(s.stats().get_expired, 1);
    assert_eq!(s.stats().curr_items, 0, "lazily reclaimed");
    for exptime in [-1i64, 2_678_400, REALTIME_MAXDELTA + 1, NOW as i64] {
        r.expires_at = resolve_exptime(exptime, NOW);
        assert!(matches!(s.store(&r, NOW), StoreOutcome::Stored { .. }));
        assert!(get(&s, b"k", NOW).is_none(), "exptime {exptime}");
    }
    // add over an expired item succeeds
    r.expires_at = resolve_exptime(-1, NOW);
    s.store(&r, NOW);
    assert!(matches!(
        s.store(&req(StoreMode::Add, b"k", b"n"), NOW),
        StoreOutcome::Stored { .. }
    ));
    // 30 days exactly is relative
    r.expires_at = resolve_exptime(REALTIME_MAXDELTA, NOW);
    s.store(&r, NOW);
    assert!(get(&s, b"k", NOW + REALTIME_MAXDELTA as u64 - 1).is_some());
    // touch
    assert!(s.touch(b"k", NOW + 5, NOW));
    assert!(get(&s, b"k", NOW + 5).is_none());
    assert!(!s.touch(b"k", NOW + 5, NOW));
    // gat
    set(&s, b"g", b"v", NOW);
    let t = GetOpts {
        touch: Some(NOW + 3),
        ..Default::default()
    };
    assert_eq!(s.get(b"g", NOW, t, |it| it.expires_at), Some(NOW + 3));
    assert!(get(&s, b"g", NOW + 3).is_none());
}

#[test]
fn expire_shard_reclaims() {
    let s = store();
    for i in 0..1000u32 {
        let mut r = req(StoreMode::Set, b"", b"v");
        let k = format!("k{i}");
        r.key = k.as_bytes();
        r.expires_at = if i % 2 == 0 { NOW + 10 } else { 0 };
        s.store(&r, NOW);
    }
    // fetch one that will expire
    assert!(get(&s, b"k0", NOW).is_some());
    let n: usize = (0..s.shard_count())
        .map(|i| s.expire_shard(i, NOW + 10))
        .sum();
    assert_eq!(n, 500);
    assert_eq!(s.expire_shard(999, NOW), 0);
    let st = s.stats();
    assert_eq!(
        (st.curr_items, st.reclaimed, st.expired_unfetched),
        (500, 500, 499)
    );
    let mut bytes = 0u64;
    s.for_each_item(|it| bytes += Store::item_charge(it.key.len(), it.value.len()) as u64);
    assert_eq!(st.bytes, bytes);
    for i in 0..1000u32 {
        let k = format!("k{i}");
        assert_eq!(get(&s, k.as_bytes(), NOW + 10).is_some(), i % 2 == 1);
    }
}

#[test]
fn flush_all_immediate_and_delayed() {
    let s = store();
    set(&s, b"a", b"1", NOW);
    set(&s, b"b", b"2", NOW);
    s.flush_all(0, NOW);
    assert_eq!(get(&s, b"a", NOW), None);
    assert_eq!(s.stats().get_flushed, 1);
    // stored after the flush in the same second: alive
    set(&s, b"c", b"3", NOW);
    assert_eq!(get(&s, b"c", NOW), Some(b"3".to_vec()));
    // delayed flush: oldest_live = now + 10 - 1
    s.flush_all(10, NOW);
    set(&s, b"d", b"4", NOW + 5);
    assert!(get(&s, b"c", NOW + 8).is_some());
    assert!(
        get(&s, b"b", NOW + 8).is_none(),
        "an earlier flush stays in force"
    );
    assert!(
        get(&s, b"d", NOW + 9).is_none(),
        "flush takes effect at now + delay - 1"
    );
    assert!(get(&s, b"c", NOW + 9).is_none());
    set(&s, b"e", b"5", NOW + 10);
    assert!(get(&s, b"e", NOW + 10).is_some());
    // flushed items are reclaimed by the sweeper
    set(&s, b"f", b"6", NOW + 10);
    s.flush_all(0, NOW + 11);
    let n: usize = (0..s.shard_count())
        .map(|i| s.expire_shard(i, NOW + 11))
        .sum();
    assert_eq!(n, 2);
    assert_eq!(s.stats().curr_items, 0);
}

#[test]
fn too_large_removes_old_value() {
    let s = Store::new(StoreConfig {
        mem_limit: 64 << 20,
        item_size_max: 1 << 20,
        shards: 64,
        reads_mutate: true,
    });
    // memcached rule: 56 + key + 1 + value + 2 <= 1 MiB (flags 0)
    let max_v = (1 << 20) - 56 - 3 - 3;
    assert!(s.item_fits(3, max_v));
    assert!(!s.item_fits(3, max_v + 1));
    assert!(
        !s.item_fits_with_flags(3, max_v, 1),
        "non-zero flags cost 4 bytes"
    );
    assert!(s.item_fits_with_flags(3, max_v - 4, 1));
    set(&s, b"big", b"old", NOW);
    let v = vec![b'x'; max_v + 1];
    assert_eq!(
        s.store(&req(StoreMode::Set, b"big", &v), NOW),
        StoreOutcome::TooLarge
    );
    assert_eq!(get(&s, b"big", NOW), None);
    let v = vec![b'x'; max_v];
    assert!(matches!(
        s.store(&req(StoreMode::Set, b"big", &v), NOW),
        StoreOutcome::Stored { .. }
    ));
    assert_eq!(get(&s, b"big", NOW).map(|v| v.len()), Some(max_v));
    // appending past the limit is NOT_STORED and keeps the value
    assert_eq!(
        s.store(&req(StoreMode::Append, b"big", b"y"), NOW),
        StoreOutcome::NotStored
    );
    assert_eq!(get(&s, b"big", NOW).map(|v| v.len()), Some(max_v));
    // larger than the whole memory limit
    let tiny = Store::new(StoreConfig {
        mem_limit: 1000,
        item_size_max: 1 << 20,
        shards: 4,
        reads_mutate: true,
    });
    assert!(!tiny.item_fits(1, 2000));
    assert_eq!(
        tiny.store(&req(StoreMode::Set, b"k", &[0u8; 2000]), NOW),
        StoreOutcome::TooLarge
    );
    // over-long keys are never stored
    let long = [b'k'; 300];
    assert_eq!(
        s.store(&req(StoreMode::Set, &long, b"v"), NOW),
        StoreOutcome::TooLarge
    );
}

#[test]
fn big_items_fit_with_many_shards() {
    // -m 64 with 64 shards: 1 MiB items must still work once the cache is full of small ones.
    let s = Store::new(StoreConfig {
        mem_limit: 64 << 20,
        item_size_max: 1 << 20,
        shards: 64,
        reads_mutate: true,
    });
    let small = vec![b's'; 1000];
    for i in 0..80_000u32 {
        let k = format!("small:{i}");
        set(&s, k.as_bytes(), &small, NOW);
    }
    let big = vec![b'B'; (1 << 20) - 200];
    for i in 0..100u32 {
        let k = format!("big:{i}");
        set(&s, k.as_bytes(), &big, NOW);
        assert_eq!(get(&s, k.as_bytes(), NOW).map(|v| v.len()), Some(big.len()));
        assert!(s.stats().bytes <= 64 << 20);
    }
    assert!(s.stats().evictions > 0);
}

#[test]
fn eviction_respects_limit_and_prefers_old_unreferenced() {
    let limit = 100 * Store::item_charge(8, 100);
    let s = Store::new(StoreConfig {
        mem_limit: limit,
        item_size_max: 1 << 20,
        shards: 1,
        reads_mutate: true,
    });
    let v = [b'v'; 100];
    for i in 0..1000u32 {
        let k = format!("key:{i:04}");
        set(&s, k.as_bytes(), &v, NOW);
        let st = s.stats();
        assert!(st.bytes <= limit as u64);
        if i % 10 == 0 {
            // keep one hot key referenced
            assert!(
                get(&s, b"key:0000", NOW).is_some(),
                "hot key evicted at {i}"
            );
        }
    }
    let st = s.stats();
    assert_eq!(st.curr_items, 100);
    assert_eq!(st.evictions, 900);
    assert_eq!(st.evicted_unfetched, 900);
    // the most recent items survive
    for i in 995..1000u32 {
        let k = format!("key:{i:04}");
        assert!(get(&s, k.as_bytes(), NOW).is_some());
    }
    // expired items are reclaimed before anything is evicted
    let s = Store::new(StoreConfig {
        mem_limit: limit,
        item_size_max: 1 << 20,
        shards: 1,
        reads_mutate: true,
    });
    for i in 0..100u32 {
        let k = format!("key:{i:04}");
        let mut r = req(StoreMode::Set, k.as_bytes(), &v);
        r.expires_at = if i % 2 == 0 { NOW + 1 } else { 0 };
        s.store(&r, NOW);
    }
    for i in 100..150u32 {
        let k = format!("key:{i:04}");
        set(&s, k.as_bytes(), &v, NOW + 1);
    }
    // Like memcached's tail search, each eviction samples a few slots and reclaims a dead item
    // among them before evicting a live one.
    let st = s.stats();
    assert_eq!(st.curr_items, 100);
    assert_eq!(st.reclaimed + st.evictions, 50);
    assert_eq!(st.expired_unfetched, st.reclaimed);
    assert!(st.reclaimed >= 40, "{st:?}");
}

#[test]
fn reads_do_not_mutate_when_disabled() {
    let s = Store::new(StoreConfig {
        reads_mutate: false,
        shards: 2,
        ..StoreConfig::default()
    });
    let mut r = req(StoreMode::Set, b"k", b"v");
    r.expires_at = NOW + 5;
    s.store(&r, NOW);
    s.delete(b"k2", DeleteOpts::default(), NOW);
    let a = s
        .get(b"k", NOW + 1, GetOpts::default(), |it| {
            (it.fetched_before, it.last_access)
        })
        .unwrap();
    let b = s
        .get(b"k", NOW + 2, GetOpts::default(), |it| {
            (it.fetched_before, it.last_access)
        })
        .unwrap();
    assert_eq!(a, (false, NOW));
    assert_eq!(a, b);
    // an expired item is a miss but stays until a write or the sweeper reclaims it
    assert!(get(&s, b"k", NOW + 5).is_none());
    assert_eq!(s.stats().curr_items, 1);
    assert_eq!(s.expire_shard(0, NOW + 5) + s.expire_shard(1, NOW + 5), 1);
}

#[test]
fn reads_mutate_fetched_and_last_access() {
    let s = store();
    set(&s, b"k", b"v", NOW);
    let look = |now| {
        s.get(b"k", now, GetOpts::default(), |it| {
            (it.fetched_before, it.last_access)
        })
        .unwrap()
    };
    assert_eq!(look(NOW + 1), (false, NOW));
    assert_eq!(look(NOW + 2), (true, NOW + 1));
    let u = GetOpts {
        no_lru_bump: true,
        ..Default::default()
    };
    assert_eq!(s.get(b"k", NOW + 3, u, |it| it.last_access), Some(NOW + 2));
    assert_eq!(look(NOW + 4), (true, NOW + 2));
}

#[test]
fn reset_stats_keeps_gauges() {
    let s = store();
    set(&s, b"a", b"1", NOW);
    set(&s, b"a", b"2", NOW);
    s.reset_stats();
    let st = s.stats();
    assert_eq!((st.curr_items, st.total_items), (1, 0));
    assert!(st.bytes > 0);
}

#[test]
fn concurrent_use_is_safe_and_bounded() {
    let limit = 2 << 20;
    let s = std::sync::Arc::new(Store::new(StoreConfig {
        mem_limit: limit,
        item_size_max: 1 << 20,
        shards: 8,
        reads_mutate: true,
    }));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                let v = vec![b'x'; 300];
                for i in 0..20_000u32 {
                    let k = format!("t{t}:{}", i % 5000);
                    match i % 4 {
                        0 | 1 => {
                            s.store(&req(StoreMode::Set, k.as_bytes(), &v), NOW);
                        }
                        2 => {
                            s.get(k.as_bytes(), NOW, GetOpts::default(), |it| it.value.len());
                        }
                        _ => {
                            s.arith(
                                &ArithReq {
                                    key: k.as_bytes(),
                                    incr: true,
                                    delta: 1,
                                    compare_cas: None,
                                    vivify: Some((0, 0)),
                                    touch: None,
                                    new_cas: None,
                                },
                                NOW,
                            );
                        }
                    }
                    assert!(s.stats().bytes <= limit as u64);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut n = 0u64;
    let mut bytes = 0u64;
    s.for_each_item(|it| {
        n += 1;
        bytes += Store::item_charge(it.key.len(), it.value.len()) as u64;
    });
    let st = s.stats();
    assert_eq!(st.curr_items, n);
    assert_eq!(st.bytes, bytes);
}

/// Prefetch hints change nothing: not the image, not a lookup, not the counters; for present
/// keys, absent keys and keys whose home slot holds another item.
#[test]
fn prefetch_changes_nothing() {
    let s = store();
    for i in 0..2000u32 {
        set(&s, format!("k{i}").as_bytes(), b"v", NOW);
    }
    let before = s.export();
    let stats = format!("{:?}", s.stats());
    for i in 0..4000u32 {
        let k = format!("k{i}");
        s.prefetch(k.as_bytes(), 0);
        s.prefetch(k.as_bytes(), 1);
    }
    assert_eq!(s.export(), before);
    assert_eq!(format!("{:?}", s.stats()), stats);
    assert_eq!(get(&s, b"k1999", NOW).as_deref(), Some(&b"v"[..]));
    assert_eq!(get(&s, b"k2000", NOW), None);
}
