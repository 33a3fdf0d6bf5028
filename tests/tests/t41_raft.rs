//! Three real peers with Raft consensus: joining through `--bootstrap`, continuous pinning
//! through the followers, kill -9 of the leader (usually peer 0, the cluster's founder), a new
//! leader within twice the election timeout, no acknowledged pin lost, and the old leader
//! rejoining and catching up.

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
    let leader_index = |cluster: &TestCluster| {
        let views: Vec<_> = (0..3).map(|i| raft_view(cluster, i)).collect();
        let (leader, _) = views[0].clone()?;
        let agreed = views.iter().all(|v| v.as_ref().is_some_and(|(l, _)| *l == leader));
        cluster.ids.iter().position(|id| *id == leader).filter(|_| agreed)
    };
    let mut leader = None;
    assert!(wait_until(Duration::from_secs(30), || { leader = leader_index(&cluster); leader.is_some() }), "no agreed leader");
    let leader = leader.unwrap_or_default();

    // Continuous ingestion through the two followers (the leader is about to die).
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..3usize)
        .filter(|&w| w != leader)
        .map(|w| {
            let url = cluster.peers[w].url("");
            let (acked, stop) = (Arc::clone(&acked), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut n = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    let cid = identity_cid(format!("raft-{w}-{n}").as_bytes());
                    n += 1;
                    match http("POST", &format!("{url}/pins/{cid}")) {
                        Some((200, _)) => acked.lock().unwrap().push(cid),
                        // the peer is the one killed (leadership moved to it meanwhile)
                        None => std::thread::sleep(Duration::from_millis(20)),
                        Some(_) => {}
                    }
                }
            })
        })
        .collect();
    assert!(wait_until(Duration::from_secs(60), || acked.lock().unwrap().len() >= 100), "ingestion did not start");

    // kill -9 whichever peer leads now (on a loaded machine leadership may have moved): the
    // survivors elect a new one within twice the election timeout (they poll
    // `/health/actors` every 50 ms).
    let mut dead = None;
    assert!(wait_until(Duration::from_secs(30), || { dead = leader_index(&cluster); dead.is_some() }), "no agreed leader under load");
    let dead = dead.unwrap_or_default();
    let survivors: Vec<usize> = (0..3).filter(|&i| i != dead).collect();
    let (old_leader, old_term) = raft_view(&cluster, survivors[0]).expect("survivor raft view");
    let before = acked.lock().unwrap().len();
    let killed_at = Instant::now();
    cluster.peers[dead].kill9();
    let elected = loop {
        let views = [raft_view(&cluster, survivors[0]), raft_view(&cluster, survivors[1])];
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
    // Enough writes after the kill to snapshot and purge past what the old leader has.
    assert!(wait_until(Duration::from_secs(60), || acked.lock().unwrap().len() >= before + 400), "too few writes after the kill");
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let acked: BTreeSet<String> = acked.lock().unwrap().iter().cloned().collect();
    // A pin is acknowledged once committed and applied by the peer that took it; the other
    // survivor applies it a moment later. A lost pin never shows up.
    for &i in &survivors {
        let complete = wait_until(Duration::from_secs(20), || acked.is_subset(&cids_in(&cluster, i)));
        let have = cids_in(&cluster, i);
        let missing: Vec<_> = acked.difference(&have).collect();
        assert!(complete, "peer {i} lacks {} acknowledged pins, e.g. {:?}", missing.len(), missing.first());
    }

    // The old leader restarts from its own data and catches up (by snapshot: it is more
    // than trailing_logs behind).
    // kill -9 left no peerstore behind and the survivors cannot dial its new port: give it
    // their addresses, as an operator would (peer_addresses).
    let addrs: Vec<String> = survivors.iter().map(|&i| cluster_tests::multi::cluster_addr(&cluster.peers[i]).expect("addr")).collect();
    cluster.peers[dead].edit_config(|cfg| cfg["cluster"]["peer_addresses"] = addrs.clone().into()).expect("edit config");
    cluster.peers[dead].start().expect("restart the old leader");
    let ok = wait_until(Duration::from_secs(60), || acked.is_subset(&cids_in(&cluster, dead)));
    assert!(ok, "restarted peer did not catch up: has {} of {}", cids_in(&cluster, dead).len(), acked.len());
    assert!(cluster.peers[dead].log().contains("installed raft snapshot"), "catch-up did not use a snapshot");
}
