//! A partition of 2 peers from 3, with pins and unpins on both sides, then healed: every peer
//! converges to the pinset the documented CRDT rule predicts (an unpin removes the version it
//! saw, a concurrent pin wins; see docs/architecture.md). Also draws the healthy cluster with
//! `ctl health graph`.

use std::collections::BTreeMap;
use std::time::Duration;

use cluster_tests::multi::TestCluster;
use cluster_tests::{http, identity_cid, wait_until};
use serde_json::Value;

fn pin(c: &TestCluster, i: usize, cid: &str, query: &str) {
    let (status, body) = http("POST", &c.peers[i].url(&format!("/pins/{cid}{query}"))).expect("pin");
    assert_eq!(status, 200, "pin {cid} on peer {i}: {body}");
}

fn unpin(c: &TestCluster, i: usize, cid: &str) {
    let (status, body) = http("DELETE", &c.peers[i].url(&format!("/pins/{cid}"))).expect("unpin");
    assert_eq!(status, 200, "unpin {cid} on peer {i}: {body}");
}

/// CID → pin name on peer `i`.
fn names(c: &TestCluster, i: usize) -> Option<BTreeMap<String, String>> {
    let set = c.pinset(i).ok()?;
    Some(set.into_iter().map(|(cid, p): (String, Value)| (cid, p["name"].as_str().unwrap_or_default().to_string())).collect())
}

#[test]
fn partitioned_writes_converge_by_the_documented_rule() {
    let c = TestCluster::start(5, |_, _| {}).expect("cluster");
    c.wait_peerset(&[0, 1, 2, 3, 4], 5, Duration::from_secs(60)).expect("5 peers");
    // `ctl health graph`: every peer linked to its own IPFS daemon and to the others.
    let dot_file = c.peers[0].path().join("graph.dot");
    let out = c.peers[0].ctl(&["health", "graph", "-f", dot_file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let dot = std::fs::read_to_string(&dot_file).expect("dot file");
    for i in 0..5 {
        assert!(dot.contains(&format!("C{i} -> I{i}")), "C{i} -> I{i} missing:\n{dot}");
        let links = (0..5).filter(|j| dot.contains(&format!("C{i} -> C{j}\n"))).count();
        assert_eq!(links, 4, "C{i} should link to the 4 other peers:\n{dot}");
    }
    let cid = |tag: &str| identity_cid(format!("partition {tag}").as_bytes());
    let (c1, c2, c3, c4, c5) = (cid("c1"), cid("c2"), cid("c3"), cid("c4"), cid("c5"));

    for x in [&c1, &c2, &c5] {
        pin(&c, 0, x, "?name=before");
    }
    let before: BTreeMap<String, String> = [&c1, &c2, &c5].iter().map(|x| (x.to_string(), "before".to_string())).collect();
    for i in 0..5 {
        assert!(wait_until(Duration::from_secs(30), || names(&c, i).as_ref() == Some(&before)), "peer {i} before the cut");
    }

    let (left, right) = ([0, 1], [2, 3, 4]);
    c.partition(&left, &right).expect("cut");
    // Left: unpin c1, c2, c5; pin c3. Right: pin c1 again (concurrent with the unpin), pin c4,
    // unpin c5.
    unpin(&c, 0, &c1);
    unpin(&c, 1, &c2);
    pin(&c, 0, &c3, "?name=left");
    unpin(&c, 1, &c5);
    pin(&c, 3, &c1, "?name=right");
    pin(&c, 4, &c4, "?name=right");
    unpin(&c, 2, &c5);

    let left_view: BTreeMap<String, String> = [(c3.clone(), "left".to_string())].into();
    let right_view: BTreeMap<String, String> =
        [(c1.clone(), "right".to_string()), (c2.clone(), "before".to_string()), (c4.clone(), "right".to_string())].into();
    for i in left {
        assert!(wait_until(Duration::from_secs(30), || names(&c, i).as_ref() == Some(&left_view)), "left peer {i}: {:?}", names(&c, i));
    }
    for i in right {
        assert!(wait_until(Duration::from_secs(30), || names(&c, i).as_ref() == Some(&right_view)), "right peer {i}: {:?}", names(&c, i));
    }

    c.heal(&left, &right).expect("heal");
    // c1: the right side's pin is concurrent with the left side's unpin, so it stays (named
    // "right"); c2: unpinned on the left only, so it goes; c3, c4: pinned on one side; c5:
    // unpinned on both sides.
    let want: BTreeMap<String, String> =
        [(c1.clone(), "right".to_string()), (c3.clone(), "left".to_string()), (c4.clone(), "right".to_string())].into();
    for i in 0..5 {
        let ok = wait_until(Duration::from_secs(60), || names(&c, i).as_ref() == Some(&want));
        assert!(ok, "peer {i} after healing: {:?}, want {want:?}", names(&c, i));
    }
}
