//! Five real peers with Raft consensus: `peers rm` of a follower and then of the leader
//! both succeed, each removed daemon exits cleanly on its own, and the remaining peers keep
//! serving (a pin made afterwards reaches all of them).

use std::time::Duration;

use cluster_tests::multi::{actor_observable, raft_consensus, TestCluster};
use cluster_tests::{http, identity_cid, ok_stdout, wait_until};


/// The raft leader as peer `i` sees it.
fn leader_seen_by(cluster: &TestCluster, i: usize) -> Option<String> {
    actor_observable(&cluster.peers[i], "consensus")?["consensus"]["leader"].as_str().map(String::from)
}

/// The index of the leader every peer in `alive` agrees on.
fn agreed_leader(cluster: &TestCluster, alive: &[usize]) -> Option<usize> {
    let mut seen = None;
    let ok = wait_until(Duration::from_secs(30), || {
        let views: Vec<_> = alive.iter().map(|&i| leader_seen_by(cluster, i)).collect();
        let agree = views[0].is_some() && views.iter().all(|v| *v == views[0]);
        if agree {
            seen = cluster.ids.iter().position(|id| Some(id) == views[0].as_ref());
        }
        agree && seen.is_some_and(|l| alive.contains(&l))
    });
    if !ok {
        eprintln!("no agreed leader: {:?}", alive.iter().map(|&i| actor_observable(&cluster.peers[i], "consensus")).collect::<Vec<_>>());
    }
    ok.then_some(seen).flatten()
}

fn has_pin(cluster: &TestCluster, i: usize, cid: &str) -> bool {
    cluster.pinset(i).is_ok_and(|s| s.contains_key(cid))
}

#[test]
fn raft_peers_rm_of_follower_then_leader() {
    let mut cluster = TestCluster::start(5, |_, cfg| raft_consensus(cfg)).expect("5 raft peers");
    let mut alive: Vec<usize> = (0..5).collect();
    cluster.wait_peerset(&alive, 5, Duration::from_secs(90)).expect("5 voters");

    // A follower, removed through ctl on another follower.
    let leader = agreed_leader(&cluster, &alive).expect("a leader");
    let follower = *alive.iter().find(|&&i| i != leader).unwrap();
    let via = *alive.iter().find(|&&i| i != leader && i != follower).unwrap();
    ok_stdout(&cluster.peers[via].ctl(&["peers", "rm", &cluster.ids[follower]]));
    let st = cluster.peers[follower].wait_exit(Duration::from_secs(30)).expect("removed follower did not exit");
    assert!(st.success(), "removed follower exited with {st}: {}", cluster.peers[follower].log());
    alive.retain(|&i| i != follower);

    // The leader, removed through the REST API of a follower.
    let leader = agreed_leader(&cluster, &alive).expect("a leader after the first removal");
    let via = *alive.iter().find(|&&i| i != leader).unwrap();
    let url = cluster.peers[via].url(&format!("/peers/{}", cluster.ids[leader]));
    let answer = http("DELETE", &url);
    assert!(matches!(answer, Some((200 | 204, _))), "DELETE leader: {answer:?}");
    let st = cluster.peers[leader].wait_exit(Duration::from_secs(30)).expect("removed leader did not exit");
    assert!(st.success(), "removed leader exited with {st}: {}", cluster.peers[leader].log());
    alive.retain(|&i| i != leader);

    // The remaining three elect a leader among themselves and keep serving.
    let new_leader = agreed_leader(&cluster, &alive).expect("a new leader among the rest");
    assert!(alive.contains(&new_leader));
    let cid = identity_cid(b"after-peers-rm");
    let pinned = wait_until(Duration::from_secs(30), || {
        matches!(http("POST", &cluster.peers[alive[0]].url(&format!("/pins/{cid}"))), Some((200, _)))
    });
    assert!(pinned, "pin after the removals failed");
    for &i in &alive {
        assert!(wait_until(Duration::from_secs(20), || has_pin(&cluster, i, &cid)), "peer {i} lacks the new pin");
    }
    cluster.wait_peerset(&alive, 3, Duration::from_secs(30)).expect("3 peers listed");
}
