//! Linearizability of pin/unpin under Raft: four concurrent clients pin and unpin the same
//! few CIDs through all three peers for a few seconds; the recorded history and the final
//! state (identical on every peer) must fit one real-time-consistent order per CID.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster_tests::history::{check, Kind, Outcome, Recorder};
use cluster_tests::multi::{raft_consensus, TestCluster};
use cluster_tests::{http, identity_cid, wait_until};
use rand::{Rng, SeedableRng};


fn cids_in(cluster: &TestCluster, i: usize) -> Option<BTreeSet<String>> {
    Some(cluster.allocations(i).ok()?.iter().filter_map(|p| p["cid"].as_str().map(String::from)).collect())
}

#[test]
fn concurrent_pin_unpin_history_is_linearizable() {
    let cluster = TestCluster::start(3, |_, cfg| raft_consensus(cfg)).expect("3 raft peers");
    cluster.wait_peerset(&[0, 1, 2], 3, Duration::from_secs(60)).expect("3 voters");

    let cids: Vec<String> = (0..3).map(|i| identity_cid(format!("history-{i}").as_bytes())).collect();
    let recorder = Arc::new(Recorder::default());
    let run_for = Duration::from_secs(4);
    let clients: Vec<_> = (0..4usize)
        .map(|c| {
            let url = cluster.peers[c % 3].url("");
            let (recorder, cids) = (Arc::clone(&recorder), cids.clone());
            std::thread::spawn(move || {
                let mut rng = rand::rngs::StdRng::seed_from_u64(c as u64);
                let start = Instant::now();
                while start.elapsed() < run_for {
                    let cid = &cids[rng.gen_range(0..cids.len())];
                    let kind = if rng.gen_bool(0.5) { Kind::Pin } else { Kind::Unpin };
                    let method = if kind == Kind::Pin { "POST" } else { "DELETE" };
                    recorder.run(c, kind, cid, || match http(method, &format!("{url}/pins/{cid}")) {
                        Some((200, _)) => Outcome::Acked,
                        // Unpinning an absent CID is refused before anything is committed.
                        Some((404, _)) if kind == Kind::Unpin => Outcome::Rejected,
                        _ => Outcome::Unknown,
                    });
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let ops = recorder.ops();
    let acked = ops.iter().filter(|o| o.response.is_some()).count();
    eprintln!("{} ops recorded, {acked} acknowledged", ops.len());
    assert!(acked >= 20, "too few acknowledged operations to say anything: {acked}");

    // Every peer applies the same log: wait until all three agree, then check.
    let mut finals = None;
    let agreed = wait_until(Duration::from_secs(20), || {
        let states: Vec<_> = (0..3).filter_map(|i| cids_in(&cluster, i)).collect();
        let same = states.len() == 3 && states.iter().all(|s| *s == states[0]);
        if same {
            finals = Some(states[0].clone());
        }
        same
    });
    assert!(agreed, "peers did not converge: {:?}", (0..3).map(|i| cids_in(&cluster, i)).collect::<Vec<_>>());
    let finals = finals.unwrap();
    if let Err(violations) = check(&ops, &finals) {
        panic!("history is not linearizable: {violations:#?}");
    }
}
