//! Who may join and who may write: a peer with the wrong secret cannot connect, and updates
//! from an untrusted peer are not applied by peers that do not trust it.

use std::time::Duration;

use cluster_tests::multi::{actor_counter, cluster_addr, fast_timers, peer_count, TestCluster};
use cluster_tests::{http, identity_cid, wait_until, Peer};

#[test]
fn wrong_secret_cannot_connect_and_untrusted_writes_are_ignored() {
    let mut c = TestCluster::init(3, |_, _| {}).expect("init");
    // Peers 0 and 1 trust each other only; peer 2 trusts everyone.
    let trusted = serde_json::json!([c.ids[0], c.ids[1]]);
    for i in 0..2 {
        c.peers[i].edit_config(|cfg| cfg["consensus"]["crdt"]["trusted_peers"] = trusted.clone()).expect("edit");
    }
    c.launch().expect("launch");
    c.wait_peerset(&[0, 1, 2], 3, Duration::from_secs(60)).expect("3 peers");

    // Untrusted writes: peer 2 pins; peers 0 and 1 receive the delta and drop it.
    let ignored = |i: usize| actor_counter(&c.peers[i], "consensus", &["consensus", "deltas_ignored_total"]);
    let untrusted = identity_cid(b"written by an untrusted peer");
    assert_eq!(http("POST", &c.peers[2].url(&format!("/pins/{untrusted}"))).map(|r| r.0), Some(200));
    for i in 0..2 {
        assert!(wait_until(Duration::from_secs(30), || ignored(i) >= 1), "peer {i} never saw the untrusted delta");
        assert!(!c.pinset(i).expect("state").contains_key(&untrusted), "peer {i} applied an untrusted write");
    }
    assert!(c.pinset(2).expect("state").contains_key(&untrusted), "the writer keeps its own pin");
    // Trusted writes still flow everywhere, peer 2 included.
    let trusted_cid = identity_cid(b"written by a trusted peer");
    assert_eq!(http("POST", &c.peers[0].url(&format!("/pins/{trusted_cid}"))).map(|r| r.0), Some(200));
    for i in 0..3 {
        assert!(wait_until(Duration::from_secs(30), || c.pinset(i).is_ok_and(|s| s.contains_key(&trusted_cid))), "peer {i}");
    }
    assert!(!c.pinset(1).expect("state").contains_key(&untrusted));

    // Wrong secret: a fourth peer bootstrapping to peer 0 fails the handshake on both ends.
    let mut intruder = Peer::init(&["--enable-chaos"]).expect("init intruder");
    intruder
        .edit_config(|cfg| {
            cfg["cluster"]["listen_multiaddress"] = "/ip4/127.0.0.1/tcp/0".into();
            fast_timers(cfg);
        })
        .expect("edit");
    intruder.add_args(&["--bootstrap", &cluster_addr(&c.peers[0]).expect("addr")]);
    let incoming_before = actor_counter(&c.peers[0], "net", &["incoming_errors_total"]);
    intruder.start().expect("start intruder");
    assert!(wait_until(Duration::from_secs(30), || actor_counter(&intruder, "net", &["dial_errors_total"]) >= 1), "no failed dial");
    assert!(
        wait_until(Duration::from_secs(30), || actor_counter(&c.peers[0], "net", &["incoming_errors_total"]) > incoming_before),
        "peer 0 saw no failed handshake"
    );
    assert_eq!(actor_counter(&intruder, "net", &["connected_peers"]), 0);
    assert_eq!(peer_count(&intruder), Some(1));
    assert_eq!(peer_count(&c.peers[0]), Some(3));
}
