//! Single-peer consensus against the conformance suite, over both state stores, plus the
//! behaviour specific to it (peerset, group commit, queue bounds).

use std::sync::Arc;
use std::time::Duration;

use cluster_consensus::{Consensus, ConsensusError, SinglePeerConfig, SinglePeerConsensus, StateChange, conformance};
use cluster_state::conformance::test_pin;
use cluster_state::{FjallState, MemState, StateStore};
use tokio::sync::mpsc;

const SELF: &str = "12D3KooWSelf";

fn start(store: Arc<dyn StateStore>) -> (Arc<SinglePeerConsensus>, mpsc::Receiver<StateChange>) {
    let (tx, rx) = mpsc::channel(64);
    (Arc::new(SinglePeerConsensus::new(SELF.into(), store, tx)), rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_over_fjall() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn StateStore> = Arc::new(FjallState::open(dir.path()).expect("open"));
    let (c, mut rx) = start(store);
    conformance::run_all(c.clone(), &mut rx, SELF).await;
    conformance::shutdown_refuses_writes(c.as_ref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_over_mem() {
    let (c, mut rx) = start(Arc::new(MemState::new()));
    conformance::run_all(c.clone(), &mut rx, SELF).await;
    conformance::shutdown_refuses_writes(c.as_ref()).await;
}

#[tokio::test]
async fn conformance_on_current_thread_runtime() {
    let (c, mut rx) = start(Arc::new(MemState::new()));
    conformance::run_all(c, &mut rx, SELF).await;
}

#[tokio::test]
async fn peerset_is_self_only() {
    let (c, _rx) = start(Arc::new(MemState::new()));
    assert_eq!(c.peers().await.expect("peers"), vec![SELF.to_string()]);
    assert_eq!(c.leader().await.expect("leader"), SELF);
    c.add_peer(SELF).await.expect("adding self is a no-op");
    assert!(matches!(c.add_peer("12D3KooWOther").await, Err(ConsensusError::Unsupported(_))));
    assert!(matches!(c.rm_peer(SELF).await, Err(ConsensusError::Unsupported(_))));
    assert!(matches!(c.rm_peer("12D3KooWOther").await, Err(ConsensusError::Unsupported(_))));
    assert!(c.is_trusted_peer(SELF));
    assert!(!c.is_trusted_peer("12D3KooWOther"));
    let api: cluster_types::ApiError = c.add_peer("12D3KooWOther").await.expect_err("unsupported").into();
    assert_eq!(api.code, 409);
}

/// On a current-thread runtime every `log_pin` is queued before the committer first runs,
/// so the whole burst is committed in a handful of batches, not one per pin.
#[tokio::test]
async fn concurrent_pins_are_group_committed() {
    let (c, mut rx) = start(Arc::new(MemState::new()));
    let n = 1000u64;
    let drain = async {
        for _ in 0..n {
            rx.recv().await.expect("change");
        }
    };
    let pins = futures::future::join_all((0..n).map(|i| c.log_pin(test_pin(i))));
    let (results, ()) = tokio::time::timeout(Duration::from_secs(60), async { tokio::join!(pins, drain) })
        .await
        .expect("burst finishes");
    assert!(results.iter().all(Result::is_ok));
    let stats = c.stats();
    assert_eq!(stats.writes, n);
    assert!(stats.batches <= 4, "expected group commit, got {} batches for {n} writes", stats.batches);
    assert_eq!(c.state().len().expect("len"), n);
}

/// With a tiny queue, a stuck consumer of changes makes writers fail with `QueueFull`
/// after the enqueue timeout instead of piling up without bound.
#[tokio::test]
async fn full_queue_reports_overload() {
    let (tx, _rx_never_read) = mpsc::channel(1);
    let config = SinglePeerConfig {
        queue_capacity: 1,
        max_batch: 1,
        enqueue_timeout: Duration::from_millis(50),
        sync_interval: None,
    };
    let c = Arc::new(SinglePeerConsensus::with_config(SELF.into(), Arc::new(MemState::new()), tx, config));
    // One change fills the channel, the committer blocks sending the next, the queue
    // holds one more: of ten writers, the others must be refused.
    let mut writers = tokio::task::JoinSet::new();
    for i in 0..10 {
        let c = Arc::clone(&c);
        writers.spawn(async move { c.log_pin(test_pin(i)).await });
    }
    let overloaded = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(result) = writers.join_next().await {
            if let Err(ConsensusError::QueueFull { capacity: 1 }) = result.expect("task") {
                return true;
            }
        }
        false
    })
    .await
    .expect("some writer returns");
    assert!(overloaded, "a full queue never reported overload");
    let api: cluster_types::ApiError = ConsensusError::QueueFull { capacity: 1 }.into();
    assert_eq!(api.code, 429);
    writers.abort_all();
}

/// Dropping the receiver of changes does not block or fail writes.
#[tokio::test]
async fn writes_succeed_without_a_change_consumer() {
    let (c, rx) = start(Arc::new(MemState::new()));
    drop(rx);
    for i in 0..200 {
        c.log_pin(test_pin(i)).await.expect("log_pin");
    }
    assert_eq!(c.state().len().expect("len"), 200);
}

/// `sync` and `shutdown` fsync; shutdown commits what was queued before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_commits_queued_writes_and_syncs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn StateStore> = Arc::new(FjallState::open(dir.path()).expect("open"));
    let (tx, mut rx) = mpsc::channel(4096);
    let config = SinglePeerConfig { sync_interval: None, ..SinglePeerConfig::default() };
    let c = Arc::new(SinglePeerConsensus::with_config(SELF.into(), store.clone(), tx, config));
    c.log_pin(test_pin(1)).await.expect("log_pin");
    c.sync().await.expect("sync");
    assert_eq!(c.stats().syncs, 1);

    let writers: Vec<_> = (2..500)
        .map(|i| {
            let c = Arc::clone(&c);
            tokio::spawn(async move { c.log_pin(test_pin(i)).await })
        })
        .collect();
    c.shutdown().await.expect("shutdown");
    // Every write either landed (and is in the state) or was refused; none hangs.
    let mut landed = 1;
    for (i, w) in (2..500).zip(writers) {
        match w.await.expect("task") {
            Ok(()) => {
                landed += 1;
                assert!(store.has(&test_pin(i).cid).expect("has"));
            }
            Err(e) => assert!(matches!(e, ConsensusError::Closed), "unexpected error {e}"),
        }
    }
    assert_eq!(store.len().expect("len"), landed);
    assert!(c.ready().await.is_err(), "ready after shutdown");
    rx.close();
}
