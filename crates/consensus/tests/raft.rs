//! Raft consensus over an in-memory transport: the shared conformance suite (alone and on
//! a follower of a 3-peer cluster), leader failover, joining, removal and snapshot catch-up.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use cluster_consensus::raft::{CallKind, RaftConsensus, RaftSettings, RaftTransport};
use cluster_consensus::{conformance, Consensus, ConsensusError, StateChange};
use cluster_state::conformance::test_pin;
use tokio::sync::mpsc;

/// Routes calls between peers; a peer in `down` neither sends nor answers.
#[derive(Default)]
struct Hub {
    peers: Mutex<Vec<(String, Weak<RaftConsensus>)>>,
    down: Mutex<HashSet<String>>,
}

impl Hub {
    fn get(&self, id: &str) -> Option<Arc<RaftConsensus>> {
        self.peers.lock().unwrap().iter().rev().find(|(p, _)| p == id).and_then(|(_, w)| w.upgrade())
    }
}

struct HubNet {
    me: String,
    hub: Arc<Hub>,
}

#[async_trait]
impl RaftTransport for HubNet {
    async fn call(&self, peer: &str, kind: CallKind, msg: Vec<u8>, timeout: Duration) -> Result<Vec<u8>, ConsensusError> {
        {
            let down = self.hub.down.lock().unwrap();
            if down.contains(&self.me) || down.contains(peer) {
                return Err(ConsensusError::Network("peer down".into()));
            }
        }
        let target = self.hub.get(peer).ok_or_else(|| ConsensusError::Network(format!("no peer {peer}")))?;
        tokio::time::timeout(timeout, target.serve(kind, &msg)).await.map_err(|_| ConsensusError::Network("timeout".into()))?
    }
}

struct Peer {
    id: String,
    c: Arc<RaftConsensus>,
    changes: mpsc::Receiver<StateChange>,
}

fn settings(id: &str, dir: &std::path::Path) -> RaftSettings {
    let mut s = RaftSettings::new(id, &dir.join(id));
    s.heartbeat_timeout = Duration::from_millis(200);
    s.election_timeout = Duration::from_millis(300);
    s.wait_for_leader_timeout = Duration::from_secs(10);
    s.network_timeout = Duration::from_secs(2);
    s.commit_retries = 3;
    s
}

async fn start(hub: &Arc<Hub>, s: RaftSettings) -> Peer {
    let (tx, rx) = mpsc::channel(100_000);
    let net = Arc::new(HubNet { me: s.peer_id.clone(), hub: Arc::clone(hub) });
    let id = s.peer_id.clone();
    let c = RaftConsensus::start(s, net, tx).await.unwrap();
    hub.peers.lock().unwrap().push((id.clone(), Arc::downgrade(&c)));
    Peer { id, c, changes: rx }
}

async fn cluster(hub: &Arc<Hub>, dir: &std::path::Path, ids: &[&str]) -> Vec<Peer> {
    let mut peers = Vec::new();
    for id in ids {
        let mut s = settings(id, dir);
        s.init_peerset = ids.iter().filter(|p| *p != id).map(|p| p.to_string()).collect();
        peers.push(start(hub, s).await);
    }
    for p in &peers {
        tokio::time::timeout(Duration::from_secs(30), p.c.ready()).await.expect("ready in time").expect("ready");
    }
    peers
}

async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn drain(p: &mut Peer) {
    while p.changes.try_recv().is_ok() {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_single_peer() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Arc::new(Hub::default());
    let mut p = start(&hub, settings("solo", dir.path())).await;
    conformance::run_all(Arc::clone(&p.c) as Arc<dyn Consensus>, &mut p.changes, "solo").await;
    conformance::shutdown_refuses_writes(p.c.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_on_a_follower_of_three() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Arc::new(Hub::default());
    let mut peers = cluster(&hub, dir.path(), &["A", "B", "C"]).await;
    let leader = peers[0].c.leader().await.unwrap();
    let follower = peers.iter_mut().find(|p| p.id != leader).unwrap();
    let id = follower.id.clone();
    conformance::run_all(Arc::clone(&follower.c) as Arc<dyn Consensus>, &mut follower.changes, &id).await;
    let all: Vec<String> = peers[0].c.peers().await.unwrap();
    assert_eq!(all, vec!["A", "B", "C"]);
    for p in &peers {
        p.c.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_failover_keeps_acknowledged_pins_and_old_leader_catches_up_by_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Arc::new(Hub::default());
    let ids = ["A", "B", "C"];
    let mut peers = Vec::new();
    for id in ids {
        let mut s = settings(id, dir.path());
        s.init_peerset = ids.iter().filter(|p| **p != id).map(|p| p.to_string()).collect();
        s.snapshot_threshold = 50;
        s.trailing_logs = 10;
        peers.push(start(&hub, s).await);
    }
    for p in &peers {
        p.c.ready().await.unwrap();
    }
    let old_leader = peers[0].c.leader().await.unwrap();
    for i in 0..100 {
        peers[i as usize % 3].c.log_pin(test_pin(i)).await.unwrap();
    }
    // The leader dies (stops talking) and its handle goes away.
    hub.down.lock().unwrap().insert(old_leader.clone());
    let pos = peers.iter().position(|p| p.id == old_leader).unwrap();
    let dead = peers.remove(pos);
    let killed_at = tokio::time::Instant::now();
    let survivor = Arc::clone(&peers[0].c);
    wait_for("a new leader", || survivor.metrics().current_leader.is_some_and(|l| l != cluster_consensus::raft::node_id(&old_leader))).await;
    assert!(killed_at.elapsed() < Duration::from_secs(3), "failover took {:?}", killed_at.elapsed());
    // Writes continue, enough to snapshot and purge past what the old leader has.
    for i in 100..400 {
        peers[i as usize % 2].c.log_pin(test_pin(i)).await.unwrap();
    }
    for p in &peers {
        let s = p.c.state();
        for i in 0..400 {
            assert!(s.has(&test_pin(i).cid).unwrap(), "{} lacks acknowledged pin {i}", p.id);
        }
    }
    // The old leader restarts from its data folder and catches up.
    dead.c.shutdown().await.unwrap();
    drop(dead);
    hub.down.lock().unwrap().clear();
    let mut s = settings(&old_leader, dir.path());
    s.snapshot_threshold = 50;
    s.trailing_logs = 10;
    let back = start(&hub, s).await;
    back.c.ready().await.unwrap();
    let st = back.c.state();
    wait_for("catch-up", || st.len().unwrap() == 400).await;
    assert!(back.c.metrics().snapshot.is_some(), "caught up without a snapshot");
    for p in peers.iter().chain(std::iter::once(&back)) {
        p.c.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_then_remove_follower_and_leader() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Arc::new(Hub::default());
    let mut peers = cluster(&hub, dir.path(), &["A"]).await;
    for id in ["B", "C", "D"] {
        let mut s = settings(id, dir.path());
        s.join = vec!["A".into()];
        let p = start(&hub, s).await;
        tokio::time::timeout(Duration::from_secs(30), p.c.ready()).await.unwrap().unwrap();
        peers.push(p);
    }
    for p in &mut peers {
        drain(p);
    }
    assert_eq!(peers[0].c.peers().await.unwrap(), vec!["A", "B", "C", "D"]);
    peers[3].c.log_pin(test_pin(1)).await.unwrap();

    // Remove a follower through another follower.
    let leader = peers[0].c.leader().await.unwrap();
    let follower = peers.iter().find(|p| p.id != leader).unwrap().id.clone();
    let asker = peers.iter().find(|p| p.id != leader && p.id != follower).unwrap();
    asker.c.rm_peer(&follower).await.unwrap();
    let removed = peers.iter().find(|p| p.id == follower).unwrap();
    let mut rx = removed.c.removed();
    tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|r| *r)).await.unwrap().unwrap();

    // Remove the leader through a follower.
    let asker = peers.iter().find(|p| p.id != leader && p.id != follower).unwrap();
    asker.c.rm_peer(&leader).await.unwrap();
    let old = peers.iter().find(|p| p.id == leader).unwrap();
    let mut rx = old.c.removed();
    tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|r| *r)).await.unwrap().unwrap();

    let rest: Vec<&Peer> = peers.iter().filter(|p| p.id != leader && p.id != follower).collect();
    wait_for("a leader among the rest", || rest[0].c.metrics().current_leader.is_some_and(|l| rest.iter().any(|p| cluster_consensus::raft::node_id(&p.id) == l))).await;
    rest[0].c.log_pin(test_pin(2)).await.unwrap();
    rest[1].c.log_unpin(test_pin(1)).await.unwrap();
    let mut expected: Vec<String> = rest.iter().map(|p| p.id.clone()).collect();
    expected.sort();
    assert_eq!(rest[0].c.peers().await.unwrap(), expected);
    // A write returns once its own peer applied it; the other one may apply it a moment later.
    for p in &rest {
        wait_for("the unpin applied everywhere", || !p.c.state().has(&test_pin(1).cid).unwrap()).await;
    }
    // The last peer cannot be removed.
    rest[0].c.rm_peer(&rest[1].id).await.unwrap();
    let err = rest[0].c.rm_peer(&rest[0].id).await.unwrap_err();
    assert!(err.to_string().contains("last peer"), "{err}");
}
