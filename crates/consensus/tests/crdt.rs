//! CRDT consensus over an in-memory network: conformance, convergence, partitions, trust.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use cluster_consensus::crdt::CrdtSettings;
use cluster_consensus::{conformance, Consensus, ConsensusError, CrdtConsensus, CrdtNetwork, CrdtStore, StateChange};
use cluster_net::TrustSet;
use cluster_state::conformance::test_pin;
use cluster_state::StateStore;
use tokio::sync::mpsc;

/// Routes gossip and calls between replicas; `cut` holds pairs that cannot talk.
#[derive(Default)]
struct Hub {
    peers: Mutex<Vec<(String, Weak<CrdtConsensus>)>>,
    cut: Mutex<HashSet<(String, String)>>,
}

impl Hub {
    fn linked(&self, a: &str, b: &str) -> bool {
        !self.cut.lock().unwrap().contains(&(a.to_string(), b.to_string()))
    }
    fn get(&self, id: &str) -> Option<Arc<CrdtConsensus>> {
        self.peers.lock().unwrap().iter().find(|(p, _)| p == id).and_then(|(_, w)| w.upgrade())
    }
    fn partition(&self, left: &[&str], right: &[&str]) {
        let mut cut = self.cut.lock().unwrap();
        for l in left {
            for r in right {
                cut.insert((l.to_string(), r.to_string()));
                cut.insert((r.to_string(), l.to_string()));
            }
        }
    }
    fn heal(&self) {
        self.cut.lock().unwrap().clear();
    }
}

struct HubNet {
    me: String,
    hub: Arc<Hub>,
}

#[async_trait]
impl CrdtNetwork for HubNet {
    fn publish(&self, data: Vec<u8>) {
        let peers: Vec<(String, Weak<CrdtConsensus>)> = self.hub.peers.lock().unwrap().clone();
        for (id, w) in peers {
            if id == self.me || !self.hub.linked(&self.me, &id) {
                continue;
            }
            if let Some(c) = w.upgrade() {
                let (me, data) = (self.me.clone(), data.clone());
                tokio::spawn(async move { c.handle_gossip(&me, &data).await });
            }
        }
    }
    async fn digest(&self, peer: &str) -> Result<Vec<u8>, ConsensusError> {
        if !self.hub.linked(&self.me, peer) {
            return Err(ConsensusError::Network("cut".into()));
        }
        Ok(self.hub.get(peer).ok_or(ConsensusError::Closed)?.serve_digest())
    }
    async fn fetch(&self, peer: &str, query: Vec<u8>) -> Result<Vec<u8>, ConsensusError> {
        if !self.hub.linked(&self.me, peer) {
            return Err(ConsensusError::Network("cut".into()));
        }
        self.hub.get(peer).ok_or(ConsensusError::Closed)?.serve_fetch(&query).await
    }
}

struct Replica {
    c: Arc<CrdtConsensus>,
    _changes: mpsc::Receiver<StateChange>,
    _dir: tempfile::TempDir,
}

fn replica(hub: &Arc<Hub>, id: &str, trusted: &[&str], batch: usize) -> Replica {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(CrdtStore::open(dir.path(), id).unwrap());
    let (tx, rx) = mpsc::channel(100_000);
    let settings = CrdtSettings {
        peer_id: id.to_string(),
        max_batch_size: batch,
        max_batch_age: Duration::from_millis(if batch > 0 { 20 } else { 0 }),
        max_queue_size: 50_000,
        rebroadcast_interval: Duration::from_millis(200),
    };
    let trust = TrustSet::new(id, &trusted.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    let net = Arc::new(HubNet { me: id.to_string(), hub: Arc::clone(hub) });
    let c = CrdtConsensus::start(settings, store, net, trust, tx);
    hub.peers.lock().unwrap().push((id.to_string(), Arc::downgrade(&c)));
    Replica { c, _changes: rx, _dir: dir }
}

async fn converged(replicas: &[&Replica]) -> bool {
    let roots: HashSet<[u8; 16]> = replicas.iter().map(|r| r.c.store().root()).collect();
    roots.len() == 1
}

async fn wait_converged(replicas: &[&Replica]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !converged(replicas).await {
        assert!(tokio::time::Instant::now() < deadline, "replicas did not converge");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn conformance_single_replica() {
    let hub = Arc::new(Hub::default());
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(CrdtStore::open(dir.path(), "solo").unwrap());
    let (tx, mut rx) = mpsc::channel(100_000);
    let settings = CrdtSettings {
        peer_id: "solo".into(),
        max_batch_size: 100,
        max_batch_age: Duration::from_millis(5),
        max_queue_size: 50_000,
        rebroadcast_interval: Duration::from_secs(1),
    };
    let net = Arc::new(HubNet { me: "solo".into(), hub });
    let c = CrdtConsensus::start(settings, store, net, TrustSet::everyone("solo"), tx);
    conformance::run_all(Arc::clone(&c) as Arc<dyn Consensus>, &mut rx, "solo").await;
    conformance::shutdown_refuses_writes(c.as_ref()).await;
}

#[tokio::test]
async fn three_replicas_converge_and_partition_heals_by_the_rule() {
    let hub = Arc::new(Hub::default());
    let a = replica(&hub, "A", &["*"], 50);
    let b = replica(&hub, "B", &["*"], 0);
    let c = replica(&hub, "C", &["*"], 50);
    for i in 0..200 {
        let r = [&a, &b, &c][i as usize % 3];
        r.c.log_pin(test_pin(i)).await.unwrap();
    }
    wait_converged(&[&a, &b, &c]).await;
    assert_eq!(b.c.store().len().unwrap(), 200);

    // Partition {A} | {B, C}; conflicting writes on both sides.
    hub.partition(&["A"], &["B", "C"]);
    b.c.log_unpin(test_pin(7)).await.unwrap(); // B unpins 7 first…
    tokio::time::sleep(Duration::from_millis(5)).await;
    a.c.log_pin(test_pin(7)).await.unwrap(); // …A re-pins it later: the later write wins.
    a.c.log_unpin(test_pin(8)).await.unwrap(); // A unpins 8 first…
    tokio::time::sleep(Duration::from_millis(5)).await;
    c.c.log_pin(test_pin(8)).await.unwrap(); // …C re-pins it later.
    for i in 1000..1100 {
        a.c.log_pin(test_pin(i)).await.unwrap();
        c.c.log_pin(test_pin(i + 100)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!converged(&[&a, &b, &c]).await, "the partition must keep them apart");
    hub.heal();
    wait_converged(&[&a, &b, &c]).await;
    for r in [&a, &b, &c] {
        let s = r.c.store();
        assert!(s.has(&test_pin(7).cid).unwrap(), "later pin of 7 wins");
        assert!(s.has(&test_pin(8).cid).unwrap(), "later pin of 8 wins");
        assert_eq!(s.len().unwrap(), 400);
    }
}

#[tokio::test]
async fn untrusted_writes_are_ignored() {
    let hub = Arc::new(Hub::default());
    let a = replica(&hub, "A", &["B"], 0);
    let b = replica(&hub, "B", &["A"], 0);
    let u = replica(&hub, "U", &["*"], 0);
    u.c.log_pin(test_pin(1)).await.unwrap();
    b.c.log_pin(test_pin(2)).await.unwrap();
    // U trusts everyone, so it learns B's pin; A and B never take U's.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !u.c.store().has(&test_pin(2).cid).unwrap() || !a.c.store().has(&test_pin(2).cid).unwrap() {
        assert!(tokio::time::Instant::now() < deadline, "trusted write did not spread");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await; // several announce rounds
    assert!(!a.c.store().has(&test_pin(1).cid).unwrap());
    assert!(!b.c.store().has(&test_pin(1).cid).unwrap());
}

#[tokio::test]
async fn full_queue_gives_the_original_error() {
    let hub = Arc::new(Hub::default());
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(CrdtStore::open(dir.path(), "Q").unwrap());
    let (tx, _rx) = mpsc::channel(1_000_000);
    let settings = CrdtSettings {
        peer_id: "Q".into(),
        max_batch_size: 1000,
        max_batch_age: Duration::from_secs(5),
        max_queue_size: 3,
        rebroadcast_interval: Duration::from_secs(60),
    };
    let c = CrdtConsensus::start(settings, store, Arc::new(HubNet { me: "Q".into(), hub }), TrustSet::everyone("Q"), tx);
    let mut pending = Vec::new();
    for i in 0..6 {
        let c = Arc::clone(&c);
        pending.push(tokio::spawn(async move { c.log_pin(test_pin(i)).await }));
    }
    let mut full = 0;
    for p in pending {
        if let Err(ConsensusError::BatchingQueueFull) = p.await.unwrap() {
            full += 1;
        }
    }
    assert!(full >= 1, "a full batching queue must refuse writes");
    assert_eq!(ConsensusError::BatchingQueueFull.to_string(), "batching max_queue_size reached");
}
