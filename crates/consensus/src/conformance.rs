//! Properties every [`Consensus`] must have, as async functions that panic on violation.
//!
//! They take the component and the receiving end of its [`StateChange`] channel, and only
//! touch CIDs of their own (distinct ranges of [`test_cid`]), removing them at the end, so
//! they can run against a state that already holds pins. The receiver must have no other
//! consumer. Every wait is bounded by [`STEP_TIMEOUT`].

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use cluster_state::conformance::{full_pin, test_cid, test_pin};
use cluster_types::{Cid, Pin};
use tokio::sync::mpsc;

use crate::{Consensus, StateChange};

/// The longest any single step may take before the check fails (generous for slow CI).
pub const STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs every check that leaves the component running.
pub async fn run_all(c: Arc<dyn Consensus>, changes: &mut mpsc::Receiver<StateChange>, self_id: &str) {
    ready_and_peerset(c.as_ref(), self_id).await;
    pin_is_readable_at_once(c.as_ref(), changes).await;
    unpin_removes(c.as_ref(), changes).await;
    changes_arrive_in_commit_order(c.as_ref(), changes).await;
    concurrent_pins_all_land(Arc::clone(&c), changes, 1000).await;
}

/// The component becomes ready, counts itself among the peers and trusts itself.
pub async fn ready_and_peerset(c: &dyn Consensus, self_id: &str) {
    bounded("ready", c.ready()).await.expect("ready");
    let peers = bounded("peers", c.peers()).await.expect("peers");
    assert!(peers.iter().any(|p| p == self_id), "peers {peers:?} do not contain self {self_id}");
    assert!(c.is_trusted_peer(self_id), "a peer must trust itself");
}

/// After `log_pin` returns, the state returns the pin as given, and a `Pinned` change for
/// it is waiting on the channel.
pub async fn pin_is_readable_at_once(c: &dyn Consensus, changes: &mut mpsc::Receiver<StateChange>) {
    let pin = full_pin(20_000_001);
    bounded("log_pin", c.log_pin(pin.clone())).await.expect("log_pin");
    assert_eq!(c.state().get(&pin.cid).expect("state get"), Some(pin.clone()));
    assert_eq!(next_change(changes).await, StateChange::Pinned(pin.clone()));

    // Re-pinning replaces (and is committed again: no short-circuit, §5.3).
    let mut renamed = pin.clone();
    renamed.options.name = "renamed".into();
    bounded("log_pin", c.log_pin(renamed.clone())).await.expect("log_pin again");
    assert_eq!(c.state().get(&pin.cid).expect("state get"), Some(renamed.clone()));
    assert_eq!(next_change(changes).await, StateChange::Pinned(renamed.clone()));

    cleanup(c, changes, &[renamed]).await;
}

/// `log_unpin` removes the pin from the state and emits `Unpinned` with the pin given.
pub async fn unpin_removes(c: &dyn Consensus, changes: &mut mpsc::Receiver<StateChange>) {
    let pin = test_pin(20_000_002);
    bounded("log_pin", c.log_pin(pin.clone())).await.expect("log_pin");
    assert_eq!(next_change(changes).await, StateChange::Pinned(pin.clone()));
    bounded("log_unpin", c.log_unpin(pin.clone())).await.expect("log_unpin");
    assert!(!c.state().has(&pin.cid).expect("state has"), "pin still in state after log_unpin");
    assert_eq!(next_change(changes).await, StateChange::Unpinned(pin));
}

/// Sequential writes produce changes in exactly their order.
pub async fn changes_arrive_in_commit_order(c: &dyn Consensus, changes: &mut mpsc::Receiver<StateChange>) {
    let (a, b, d) = (test_pin(20_000_010), test_pin(20_000_011), test_pin(20_000_012));
    bounded("log_pin a", c.log_pin(a.clone())).await.expect("log_pin a");
    bounded("log_pin b", c.log_pin(b.clone())).await.expect("log_pin b");
    bounded("log_unpin a", c.log_unpin(a.clone())).await.expect("log_unpin a");
    bounded("log_pin d", c.log_pin(d.clone())).await.expect("log_pin d");
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(next_change(changes).await);
    }
    assert_eq!(
        got,
        vec![
            StateChange::Pinned(a.clone()),
            StateChange::Pinned(b.clone()),
            StateChange::Unpinned(a),
            StateChange::Pinned(d.clone()),
        ]
    );
    cleanup(c, changes, &[b, d]).await;
}

/// `n` concurrent `log_pin`s all succeed, all land in the state and each emits exactly one
/// change, while the consumer drains the channel at the same time.
pub async fn concurrent_pins_all_land(c: Arc<dyn Consensus>, changes: &mut mpsc::Receiver<StateChange>, n: u64) {
    let base = 21_000_000;
    let pins: Vec<Pin> = (base..base + n).map(test_pin).collect();
    let writers = async {
        let handles: Vec<_> = pins
            .iter()
            .cloned()
            .map(|pin| {
                let c = Arc::clone(&c);
                tokio::spawn(async move { c.log_pin(pin).await })
            })
            .collect();
        for h in futures::future::join_all(handles).await {
            h.expect("log_pin task").expect("log_pin");
        }
    };
    let reader = async {
        let mut seen = HashSet::new();
        for _ in 0..n {
            match next_change(changes).await {
                StateChange::Pinned(p) => assert!(seen.insert(p.cid), "duplicate change for {}", p.cid),
                other => panic!("unexpected change {other:?}"),
            }
        }
        seen
    };
    let ((), seen) = bounded("concurrent pins", async { tokio::join!(writers, reader) }).await;
    let expected: HashSet<Cid> = (base..base + n).map(test_cid).collect();
    assert_eq!(seen, expected, "changes do not match the pins logged");
    let state = c.state();
    for p in &pins {
        assert!(state.has(&p.cid).expect("state has"), "pin {} missing from state", p.cid);
    }
    cleanup(c.as_ref(), changes, &pins).await;
}

/// After `shutdown`, writes fail instead of hanging, and a second `shutdown` is harmless.
/// Ends the component: run it last, on its own instance.
pub async fn shutdown_refuses_writes(c: &dyn Consensus) {
    bounded("shutdown", c.shutdown()).await.expect("shutdown");
    let result = bounded("log_pin after shutdown", c.log_pin(test_pin(20_000_099))).await;
    assert!(result.is_err(), "log_pin after shutdown succeeded");
    bounded("second shutdown", c.shutdown()).await.expect("second shutdown");
}

async fn cleanup(c: &dyn Consensus, changes: &mut mpsc::Receiver<StateChange>, pins: &[Pin]) {
    for p in pins {
        bounded("cleanup unpin", c.log_unpin(p.clone())).await.expect("cleanup unpin");
        assert_eq!(next_change(changes).await, StateChange::Unpinned(p.clone()));
    }
}

async fn next_change(changes: &mut mpsc::Receiver<StateChange>) -> StateChange {
    bounded("next state change", changes.recv()).await.expect("change channel closed")
}

async fn bounded<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(STEP_TIMEOUT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what} did not finish within {STEP_TIMEOUT:?}"),
    }
}
