//! A peer joining a cluster whose state holds 50,000 pins gets the whole state by anti-entropy
//! (bucket digests, paged fetches), not by replaying history, in well under 30 s.

use std::time::{Duration, Instant};

use cluster_tests::multi::{actor_counter, TestCluster};
use cluster_tests::{identity_cid, pin_many, wait_until};

const PINS: u64 = 50_000;

#[test]
fn joining_peer_gets_50k_pins_quickly() {
    let mut c = TestCluster::init(2, |_, cfg| {
        // Allocate to the first peer only, so the newcomer's tracker has no IPFS work to do.
        cfg["cluster"]["replication_factor_min"] = 1.into();
        cfg["cluster"]["replication_factor_max"] = 1.into();
        cfg["consensus"]["crdt"]["batching"]["max_batch_size"] = 1000.into();
        cfg["consensus"]["crdt"]["batching"]["max_batch_age"] = "50ms".into();
        cfg["consensus"]["crdt"]["batching"]["max_queue_size"] = 100_000.into();
    })
    .expect("init");
    c.peers[0].start().expect("start peer 0");
    let cids: Vec<String> = (0..PINS).map(|n| identity_cid(format!("join {n:08}").as_bytes())).collect();
    pin_many(&c.peers[0], &cids, 64).expect("ingest");
    let pins = |c: &TestCluster, i: usize| actor_counter(&c.peers[i], "consensus", &["consensus", "pins"]);
    // An acknowledged pin may still sit in the batching queue for up to max_batch_age.
    assert!(wait_until(Duration::from_secs(30), || pins(&c, 0) == PINS), "peer 0 holds {} pins", pins(&c, 0));

    let boot = cluster_tests::multi::cluster_addr(&c.peers[0]).expect("addr");
    c.peers[1].add_args(&["--bootstrap", &boot]);
    let started = Instant::now();
    c.peers[1].start().expect("start the newcomer");
    let complete = wait_until(Duration::from_secs(30), || pins(&c, 1) == PINS);
    let took = started.elapsed();
    eprintln!("newcomer had {} of {PINS} pins after {took:?}", pins(&c, 1));
    assert!(complete, "the newcomer did not get the full state within 30 s");
    let syncs = actor_counter(&c.peers[1], "consensus", &["consensus", "syncs_total"]);
    let deltas = actor_counter(&c.peers[1], "consensus", &["consensus", "deltas_applied_total"]);
    assert!(syncs >= 1, "state arrived without an anti-entropy sync");
    assert!(deltas < 50, "state arrived by replaying {deltas} deltas");
    // Spot-check content: the listing has every CID.
    let set = c.pinset(1).expect("state");
    assert_eq!(set.len() as u64, PINS);
    assert!(cids.iter().step_by(997).all(|cid| set.contains_key(cid)));
}
