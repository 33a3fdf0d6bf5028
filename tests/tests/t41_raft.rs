//! Three real peers with Raft consensus: joining through `--bootstrap`, continuous pinning
//! through every peer, kill -9 of the leader (peer 0, the cluster's founder), a new leader
//! within twice the election timeout, no acknowledged pin lost, and the old leader rejoining
//! and catching up.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster_tests::multi::{raft_consensus, TestCluster};
use cluster_tests::{http, identity_cid, wait_until};
use serde_json::Value;

/// `consensus.raft.election_timeout` of these peers.
const ELECTION_TIMEOUT: Duration = Duration::from_millis(600);

fn raft_config(cfg: &mut Value) {
    raft_consensus(cfg);
    cfg["consensus"]["raft"]["election_timeout"] = format!("{}ms", ELECTION_TIMEOUT.as_millis()).into();
    // Small enough that the restarted old leader is behind by more than trailing_logs.
    cfg["consensus"]["raft"]["snapshot_threshold"] = 200.into();
    cfg["consensus"]["raft"]["trailing_logs"] = 50.into();
}

fn cids_in(cluster: &TestCluster, i: usize) -> BTreeSet<String> {
    cluster.allocations(i).unwrap_or_default().iter().filter_map(|p| p["cid"].as_str().map(String::from)).collect()
}

/// The raft leader and term a peer's consensus actor reports in `/health/actors`.
fn raft_view(cluster: &TestCluster, i: usize) -> Option<(String, u64)> {
    let (200, body) = http("GET", &cluster.peers[i].url("/health/actors"))? else { return None };
    let actors: Value = serde_json::from_str(&body).ok()?;
    let consensus = actors.as_array()?.iter().find(|a| a["name"] == "consensus")?;
    let raft = &consensus["observable"]["consensus"];
    Some((raft["leader"].as_str()?.to_string(), raft["term"].as_u64()?))
}

#[test]
fn raft_leader_killed_under_load_loses_no_acknowledged_pin() {
    let mut cluster = TestCluster::start(3, |_, cfg| raft_config(cfg)).expect("3 raft peers");
    cluster.wait_peerset(&[0, 1, 2], 3, Duration::from_secs(60)).expect("3 voters");

    // Continuous ingestion through peers 1 and 2 (peer 0 is about to die).
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = [1usize, 2]
        .into_iter()
        .map(|w| {
            let url = cluster.peers[w].url("");
            let (acked, stop) = (Arc::clone(&acked), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut n = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    let cid = identity_cid(format!("raft-{w}-{n}").as_bytes());
                    n += 1;
                    if let Some((200, _)) = http("POST", &format!("{url}/pins/{cid}")) {
                        acked.lock().unwrap().push(cid);
                    }
                }
            })
        })
        .collect();
    assert!(wait_until(Duration::from_secs(60), || acked.lock().unwrap().len() >= 100), "ingestion did not start");

    // kill -9 the leader: the survivors elect a new one within twice the election timeout
    // (they poll `/health/actors` every 50 ms).
    let (old_leader, old_term) = raft_view(&cluster, 1).expect("peer 1 raft view");
    assert_eq!(old_leader, cluster.ids[0], "peer 0, the founder, should lead");
    let before = acked.lock().unwrap().len();
    let killed_at = Instant::now();
    cluster.peers[0].kill9();
    let elected = loop {
        let views = [raft_view(&cluster, 1), raft_view(&cluster, 2)];
        if let [Some((a, ta)), Some((b, tb))] = &views
            && a == b
            && *a != old_leader
            && *ta > old_term
            && *tb > old_term
        {
            break killed_at.elapsed();
        }
        assert!(killed_at.elapsed() < Duration::from_secs(30), "no new leader 30s after the kill: {views:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    eprintln!("a new leader was elected {elected:?} after the leader was killed (election timeout {ELECTION_TIMEOUT:?})");
    assert!(elected <= ELECTION_TIMEOUT * 2, "new leader after {elected:?}, more than twice the election timeout");
    // Writes resume.
    assert!(
        wait_until(Duration::from_secs(30), || acked.lock().unwrap().len() >= before + 20),
        "writes did not resume after the leader died"
    );
    let resumed = killed_at.elapsed();
    eprintln!("writes resumed {resumed:?} after the leader was killed");
    // Enough writes after the kill to snapshot and purge past what peer 0 has.
    assert!(wait_until(Duration::from_secs(60), || acked.lock().unwrap().len() >= before + 400), "too few writes after the kill");
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let acked: BTreeSet<String> = acked.lock().unwrap().iter().cloned().collect();
    // A pin is acknowledged once committed and applied by the peer that took it; the other
    // survivor applies it a moment later. A lost pin never shows up.
    for i in [1, 2] {
        let complete = wait_until(Duration::from_secs(20), || acked.is_subset(&cids_in(&cluster, i)));
        let have = cids_in(&cluster, i);
        let missing: Vec<_> = acked.difference(&have).collect();
        assert!(complete, "peer {i} lacks {} acknowledged pins, e.g. {:?}", missing.len(), missing.first());
    }

    // The old leader restarts from its own data and catches up (by snapshot: it is more
    // than trailing_logs behind).
    // kill -9 left no peerstore behind and the survivors cannot dial its new port: give it
    // their addresses, as an operator would (peer_addresses).
    let addrs: Vec<String> = [1, 2].iter().map(|&i| cluster_tests::multi::cluster_addr(&cluster.peers[i]).expect("addr")).collect();
    cluster.peers[0].edit_config(|cfg| cfg["cluster"]["peer_addresses"] = addrs.clone().into()).expect("edit config");
    cluster.peers[0].start().expect("restart peer 0");
    let ok = wait_until(Duration::from_secs(60), || acked.is_subset(&cids_in(&cluster, 0)));
    assert!(ok, "restarted peer did not catch up: has {} of {}", cids_in(&cluster, 0).len(), acked.len());
    assert!(cluster.peers[0].log().contains("installed raft snapshot"), "catch-up did not use a snapshot");
}
