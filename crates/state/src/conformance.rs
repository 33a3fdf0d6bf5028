//! Properties every [`StateStore`] must have, as plain functions that panic on violation.
//!
//! Each check expects an empty store and leaves it empty ([`run_all`] clears in between),
//! so a new implementation only needs `conformance::run_all(&store)` in a test, plus
//! [`persists_across_reopen`] if it is durable.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};

use cluster_types::{Cid, Pin, PinMode, PinType, Timestamp};

use crate::{Durability, StateOp, StateStore};

/// A deterministic, distinct CID for `n` (CIDv1, raw codec, sha2-256-shaped digest).
///
/// The digest bytes are spread with a multiplicative hash so that CID order differs from
/// numeric order, which makes the ordering checks meaningful.
pub fn test_cid(n: u64) -> Cid {
    let mut digest = [0u8; 32];
    let spread = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    digest[..8].copy_from_slice(&spread.to_be_bytes());
    digest[8..16].copy_from_slice(&n.to_be_bytes());
    // A 32-byte digest always fits the 64-byte multihash, so this cannot fail.
    let mh = cid::multihash::Multihash::<64>::wrap(0x12, &digest).expect("32-byte digest fits a multihash");
    Cid::new_v1(0x55, mh)
}

/// A data pin of [`test_cid`]`(n)` with a name, so records are not all identical.
pub fn test_pin(n: u64) -> Pin {
    let mut pin = Pin::new(test_cid(n));
    pin.options.name = format!("pin-{n}");
    pin
}

/// A pin with every field set to a non-default value.
pub fn full_pin(n: u64) -> Pin {
    let mut p = test_pin(n);
    p.pin_type = PinType::Shard;
    p.max_depth = 2;
    p.reference = Some(test_cid(n + 1_000_000));
    p.allocations = vec!["12D3KooWPeerA".into(), "12D3KooWPeerB".into()];
    p.timestamp = Timestamp::from_unix_nanos(1_714_989_600_123_456_789);
    p.options.replication_factor_min = 2;
    p.options.replication_factor_max = 3;
    p.options.mode = PinMode::Direct;
    p.options.shard_size = 1 << 20;
    p.options.user_allocations = vec!["12D3KooWPeerA".into()];
    p.options.expire_at = Timestamp::from_unix_nanos(4_000_000_000_000_000_000);
    p.options.metadata.insert("owner".into(), "alice".into());
    p.options.pin_update = Some(test_cid(n + 2_000_000));
    p.options.origins = vec!["/ip4/10.0.0.1/tcp/4001/p2p/12D3KooWPeerC".into()];
    p
}

/// Runs every in-process property against `store`, clearing it before each.
pub fn run_all(store: &dyn StateStore) {
    type Check = fn(&dyn StateStore);
    let checks: [(&str, Check); 8] = [
        ("get_put_remove", get_put_remove),
        ("full_pin_roundtrips", full_pin_roundtrips),
        ("batch_last_op_wins", batch_last_op_wins),
        ("batch_is_atomic_for_readers", batch_is_atomic_for_readers),
        ("list_in_cid_byte_order", list_in_cid_byte_order),
        ("list_streams_alongside_writes", list_streams_alongside_writes),
        ("len_and_clear", len_and_clear),
        ("ten_thousand_pins", ten_thousand_pins),
    ];
    for (name, check) in checks {
        store.clear().expect("clear before check");
        tracing::debug!(check = name, "state conformance check");
        check(store);
    }
    store.clear().expect("clear after checks");
}

/// Put, get, has and remove of single pins; removing an absent CID is not an error.
pub fn get_put_remove(store: &dyn StateStore) {
    let pin = test_pin(1);
    assert_eq!(store.get(&pin.cid).expect("get"), None);
    assert!(!store.has(&pin.cid).expect("has"));

    store.apply(&[StateOp::Put(pin.clone())]).expect("put");
    assert_eq!(store.get(&pin.cid).expect("get"), Some(pin.clone()));
    assert!(store.has(&pin.cid).expect("has"));

    let mut renamed = pin.clone();
    renamed.options.name = "renamed".into();
    store.apply(&[StateOp::Put(renamed.clone())]).expect("overwrite");
    assert_eq!(store.get(&pin.cid).expect("get"), Some(renamed));

    store.apply(&[StateOp::Remove(pin.cid)]).expect("remove");
    assert_eq!(store.get(&pin.cid).expect("get"), None);
    store.apply(&[StateOp::Remove(pin.cid)]).expect("removing an absent pin is fine");
    store.apply(&[]).expect("empty batch");
    assert!(store.is_empty().expect("is_empty"));
}

/// Every field of a pin survives the store, through `get` and through `list`.
pub fn full_pin_roundtrips(store: &dyn StateStore) {
    let pin = full_pin(7);
    store.apply(&[StateOp::Put(pin.clone())]).expect("put");
    assert_eq!(store.get(&pin.cid).expect("get"), Some(pin.clone()));
    let listed: Vec<Pin> = store.list().collect::<Result<_, _>>().expect("list");
    assert_eq!(listed, vec![pin]);
    store.clear().expect("clear");
}

/// Within one batch, operations on the same CID apply in order: the last one wins, and
/// the counter follows.
pub fn batch_last_op_wins(store: &dyn StateStore) {
    let (a, b, c) = (test_pin(10), test_pin(11), test_pin(12));
    let mut a2 = a.clone();
    a2.options.name = "second".into();

    store
        .apply(&[
            StateOp::Put(a.clone()),
            StateOp::Put(a2.clone()),
            StateOp::Put(b.clone()),
            StateOp::Remove(b.cid),
            StateOp::Remove(c.cid),
            StateOp::Put(c.clone()),
        ])
        .expect("apply");
    assert_eq!(store.get(&a.cid).expect("get"), Some(a2));
    assert_eq!(store.get(&b.cid).expect("get"), None);
    assert_eq!(store.get(&c.cid).expect("get"), Some(c.clone()));
    assert_eq!(store.len().expect("len"), 2);

    store.apply(&[StateOp::Remove(a.cid), StateOp::Put(a.clone()), StateOp::Remove(c.cid)]).expect("apply");
    assert_eq!(store.get(&a.cid).expect("get"), Some(a));
    assert!(!store.has(&c.cid).expect("has"));
    assert_eq!(store.len().expect("len"), 1);
    store.clear().expect("clear");
}

/// A concurrent reader never sees part of a batch: once the first pin of a batch is
/// visible, its last pin is too, and `len` only ever shows whole batches.
pub fn batch_is_atomic_for_readers(store: &dyn StateStore) {
    const BATCHES: u64 = 40;
    const SIZE: u64 = 100;
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            for b in 0..BATCHES {
                let ops: Vec<_> = (0..SIZE).map(|i| StateOp::Put(test_pin(100_000 + b * SIZE + i))).collect();
                store.apply(&ops).expect("apply batch");
            }
            done.store(true, Ordering::Release);
        });
        let mut b = 0;
        // Bounded: the writer finishes in finite time and then `done` stops the loop.
        while !done.load(Ordering::Acquire) {
            let first = test_cid(100_000 + b * SIZE);
            let last = test_cid(100_000 + b * SIZE + SIZE - 1);
            if store.has(&first).expect("has") {
                assert!(store.has(&last).expect("has"), "batch {b}: first pin visible but not the last");
                b = (b + 1).min(BATCHES - 1);
            }
            let len = store.len().expect("len");
            assert_eq!(len % SIZE, 0, "len {len} shows a partial batch");
        }
    });
    assert_eq!(store.len().expect("len"), BATCHES * SIZE);
    store.clear().expect("clear");
}

/// `list` yields every pin exactly once, in ascending CID-bytes order, including CIDv0.
pub fn list_in_cid_byte_order(store: &dyn StateStore) {
    let mut pins: Vec<Pin> = (0..300).map(test_pin).collect();
    // A CIDv0 and a dag-pb CIDv1 sort differently from the raw CIDv1s above.
    for s in [
        "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o",
        "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi",
    ] {
        pins.push(Pin::new(s.parse().expect("valid cid")));
    }
    let ops: Vec<_> = pins.iter().cloned().map(StateOp::Put).collect();
    store.apply(&ops).expect("apply");

    let listed: Vec<Pin> = store.list().collect::<Result<_, _>>().expect("list");
    let keys: Vec<Vec<u8>> = listed.iter().map(|p| p.cid.to_bytes()).collect();
    let expected: BTreeSet<Vec<u8>> = pins.iter().map(|p| p.cid.to_bytes()).collect();
    assert_eq!(keys, expected.into_iter().collect::<Vec<_>>(), "list is not in cid-bytes order");
    store.clear().expect("clear");
}

/// A listing in progress neither blocks writers nor loses pins that nobody touched:
/// consumers may write while they iterate (e.g. unpin expired pins during a sweep).
pub fn list_streams_alongside_writes(store: &dyn StateStore) {
    let n = 1_000;
    let ops: Vec<_> = (0..n).map(|i| StateOp::Put(test_pin(i))).collect();
    store.apply(&ops).expect("apply");

    let mut it = store.list();
    let mut seen = Vec::new();
    for _ in 0..10 {
        seen.push(it.next().expect("item").expect("pin").cid);
    }
    // Write while the iterator is open: this would deadlock a lock-holding iterator.
    store.apply(&[StateOp::Put(test_pin(n + 1)), StateOp::Remove(seen[0])]).expect("write during listing");
    for p in it {
        seen.push(p.expect("pin").cid);
    }
    let keys: Vec<Vec<u8>> = seen.iter().map(Cid::to_bytes).collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "listing is not strictly ascending");
    let seen: BTreeSet<Cid> = seen.into_iter().collect();
    for i in 0..n {
        assert!(seen.contains(&test_cid(i)), "pin {i} missing from listing");
    }
    store.clear().expect("clear");
}

/// `len` counts distinct pins through overwrites and no-op removes; `clear` empties.
pub fn len_and_clear(store: &dyn StateStore) {
    assert_eq!(store.len().expect("len"), 0);
    let ops: Vec<_> = (0..50).map(|i| StateOp::Put(test_pin(i))).collect();
    store.apply(&ops).expect("apply");
    assert_eq!(store.len().expect("len"), 50);
    store.apply(&ops[..10]).expect("overwrite");
    assert_eq!(store.len().expect("len"), 50);
    store.apply(&[StateOp::Remove(test_cid(999)), StateOp::Remove(test_cid(0))]).expect("remove");
    assert_eq!(store.len().expect("len"), 49);
    store.persist(Durability::Buffer).expect("persist buffer");
    store.persist(Durability::Sync).expect("persist sync");

    store.clear().expect("clear");
    assert_eq!(store.len().expect("len"), 0);
    assert!(store.is_empty().expect("is_empty"));
    assert_eq!(store.list().count(), 0);
    assert!(!store.has(&test_cid(1)).expect("has"));
    store.apply(&[StateOp::Put(test_pin(1))]).expect("put after clear");
    assert_eq!(store.len().expect("len"), 1);
    store.clear().expect("clear");
}

/// Ten thousand pins, written in batches of 1000, all list back and are counted.
pub fn ten_thousand_pins(store: &dyn StateStore) {
    let n = 10_000u64;
    for start in (0..n).step_by(1_000) {
        let ops: Vec<_> = (start..start + 1_000).map(|i| StateOp::Put(test_pin(i))).collect();
        store.apply(&ops).expect("apply");
    }
    assert_eq!(store.len().expect("len"), n);
    let mut count = 0u64;
    let mut prev: Option<Vec<u8>> = None;
    for p in store.list() {
        let key = p.expect("pin").cid.to_bytes();
        assert!(prev.as_ref().is_none_or(|prev| *prev < key), "not ascending at item {count}");
        prev = Some(key);
        count += 1;
    }
    assert_eq!(count, n);
    store.clear().expect("clear");
}

/// Pins applied and persisted survive dropping the store and opening it again, and so
/// do removals and the counter. `open` must open the same location each time.
pub fn persists_across_reopen(open: &dyn Fn() -> Result<Box<dyn StateStore>, crate::StateError>) {
    {
        let store = open().expect("first open");
        store.clear().expect("clear");
        let ops: Vec<_> = (0..500).map(|i| StateOp::Put(test_pin(i))).collect();
        store.apply(&ops).expect("apply");
        store.apply(&[StateOp::Put(full_pin(1)), StateOp::Remove(test_cid(2))]).expect("apply");
        store.persist(Durability::Buffer).expect("persist");
    }
    let store = open().expect("reopen");
    assert_eq!(store.len().expect("len"), 499);
    assert_eq!(store.get(&test_cid(1)).expect("get"), Some(full_pin(1)));
    assert!(!store.has(&test_cid(2)).expect("has"));
    assert_eq!(store.list().count(), 499);
    store.clear().expect("clear");
}
