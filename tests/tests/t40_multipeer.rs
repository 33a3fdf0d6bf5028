//! Five real peers over libp2p with CRDT consensus: allocation and replication over bitswap,
//! a peer killed (alert, re-allocation, catch-up after restart), peers listing.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use cluster_tests::multi::TestCluster;
use cluster_tests::{http, ndjson, random_bytes, wait_until, Provider};
use serde_json::Value;

fn live_allocations(pin: &Value, dead: &str) -> usize {
    pin["allocations"].as_array().map(|a| a.iter().filter(|p| p.as_str() != Some(dead)).count()).unwrap_or(0)
}

#[test]
fn five_peers_replicate_survive_a_kill_and_catch_up() {
    let n = 5;
    let mut cluster = TestCluster::init(n, |_, cfg| {
        cfg["cluster"]["disable_repinning"] = false.into();
        cfg["cluster"]["replication_factor_min"] = 2.into();
        cfg["cluster"]["replication_factor_max"] = 3.into();
    })
    .expect("cluster");

    // The content lives in peer 0's own IPFS repo, filled before the peer starts.
    let provider = Provider::start_at(&cluster.peers[0].path().join("ipfs")).expect("provider over peer 0's repo");
    let cids: Vec<String> = (0..500).map(|_| provider.add(random_bytes(2048)).expect("add")).collect();
    provider.shutdown().expect("release repo");
    cluster.launch().expect("launch");
    cluster.wait_peerset(&[0, 1, 2, 3, 4], n, Duration::from_secs(60)).expect("5 peers");

    // Pin all 500 through peer 1 with rf 2..3.
    for cid in &cids {
        let (status, body) = http("POST", &cluster.peers[1].url(&format!("/pins/{cid}?replication-min=2&replication-max=3")))
            .expect("pin");
        assert_eq!(status, 200, "{body}");
    }
    // Every pin: 2-3 allocations, PINNED there (fetched over bitswap), remote elsewhere.
    let ok = wait_until(Duration::from_secs(180), || {
        let Some((200, body)) = http("GET", &cluster.peers[2].url("/pins")) else { return false };
        let items = ndjson(&body);
        items.len() == 500
            && items.iter().all(|g| {
                let allocs = g["allocations"].as_array().map(Vec::len).unwrap_or(0);
                let map = g["peer_map"].as_object().expect("peer_map");
                let pinned = map.values().filter(|p| p["status"] == "pinned").count();
                let remote = map.values().filter(|p| p["status"] == "remote").count();
                (2..=3).contains(&allocs) && pinned == allocs && remote == n - allocs
            })
    });
    assert!(ok, "pins did not reach pinned on their allocations");
    let peers = ndjson(&http("GET", &cluster.peers[3].url("/peers")).expect("peers").1);
    assert_eq!(peers.len(), 5);
    let out = cluster.peers[4].ctl(&["peers", "ls"]);
    assert!(out.status.success());

    // kill -9 peer 4: a ping alert within 2 × monitor_ping_interval (2 s).
    let dead = cluster.ids[4].clone();
    let killed_at = Instant::now();
    cluster.peers[4].kill9();
    let alerted = wait_until(Duration::from_secs(10), || {
        let Some((200, body)) = http("GET", &cluster.peers[0].url("/health/alerts")) else { return false };
        let alerts: Vec<Value> = serde_json::from_str(&body).unwrap_or_default();
        alerts.iter().any(|a| a["name"] == "ping" && a["peer"] == dead.as_str())
    });
    let alert_delay = killed_at.elapsed();
    assert!(alerted, "no ping alert for the killed peer");
    assert!(alert_delay < Duration::from_secs(4), "alert took {alert_delay:?}, more than 2 × ping interval");

    // Its pins are re-allocated: none stays below rf min on live peers.
    let repinned = wait_until(Duration::from_secs(60), || {
        cluster.allocations(0).is_ok_and(|pins| pins.len() == 500 && pins.iter().all(|p| live_allocations(p, &dead) >= 2))
    });
    assert!(repinned, "pins of the dead peer were not re-allocated");

    // Changes while it is down, then restart: it catches up with all of them.
    for cid in cids.iter().take(10) {
        assert_eq!(http("DELETE", &cluster.peers[1].url(&format!("/pins/{cid}"))).map(|r| r.0), Some(200));
    }
    let fresh: Vec<String> = (0..20u8).map(|i| cluster_tests::identity_cid(&[b'x', i])).collect();
    for cid in &fresh {
        assert_eq!(http("POST", &cluster.peers[2].url(&format!("/pins/{cid}"))).map(|r| r.0), Some(200));
    }
    cluster.peers[4].start().expect("restart peer 4");
    let want: BTreeSet<String> = cluster.allocations(0).unwrap().iter().map(|p| p["cid"].as_str().unwrap().to_string()).collect();
    assert_eq!(want.len(), 510);
    let caught_up = wait_until(Duration::from_secs(60), || {
        cluster.allocations(4).is_ok_and(|pins| {
            pins.iter().map(|p| p["cid"].as_str().unwrap_or_default().to_string()).collect::<BTreeSet<_>>() == want
        })
    });
    assert!(caught_up, "restarted peer did not catch up");
}
