//! The consensus actor: commits pin/unpin operations and relays committed changes to the tracker.
//!
//! Commits run as tasks of the instance, so many are in flight at once and the consensus
//! implementation can group them into one durable write. Committed changes arrive on a channel
//! whose receiver outlives instances, so a restart never drops a change on the floor.

use std::sync::Arc;
use std::time::Duration;

use cluster_actors::{Actor, ActorError, ActorRef, Context};
use cluster_consensus::{Consensus, ConsensusError, StateChange};
use cluster_tracker::TrackerMsg;
use cluster_types::Pin;
use tokio::sync::{mpsc, oneshot, Mutex, Semaphore};

/// How many commits may be in flight at once.
const MAX_IN_FLIGHT_COMMITS: usize = 4096;

/// Messages of the consensus actor.
pub enum ConsensusMsg {
    /// Commits a pin.
    LogPin {
        /// The pin, fully allocated.
        pin: Pin,
        /// Answered once the pin is durable.
        reply: oneshot::Sender<Result<(), ConsensusError>>,
    },
    /// Commits an unpin.
    LogUnpin {
        /// The pin being removed.
        pin: Pin,
        /// Answered once the removal is durable.
        reply: oneshot::Sender<Result<(), ConsensusError>>,
    },
}

/// The consensus actor.
pub struct ConsensusActor {
    consensus: Arc<dyn Consensus>,
    changes: Arc<Mutex<mpsc::Receiver<StateChange>>>,
    tracker: ActorRef<TrackerMsg>,
    limiter: Arc<Semaphore>,
    restarted: Arc<std::sync::atomic::AtomicBool>,
    committed: u64,
}

impl ConsensusActor {
    /// Builds an instance; `changes` and `restarted` are shared by every instance of this actor.
    pub fn new(
        consensus: Arc<dyn Consensus>,
        changes: Arc<Mutex<mpsc::Receiver<StateChange>>>,
        tracker: ActorRef<TrackerMsg>,
        restarted: Arc<std::sync::atomic::AtomicBool>,
    ) -> Self {
        ConsensusActor {
            consensus,
            changes,
            tracker,
            limiter: Arc::new(Semaphore::new(MAX_IN_FLIGHT_COMMITS)),
            restarted,
            committed: 0,
        }
    }
}

impl Actor for ConsensusActor {
    type Msg = ConsensusMsg;

    async fn started(&mut self, ctx: &Context<ConsensusMsg>) -> Result<(), ActorError> {
        let changes = Arc::clone(&self.changes);
        let tracker = self.tracker.clone();
        // A change taken off the channel by a killed instance may not have reached the tracker;
        // after a restart, ask the tracker to reconcile with the state so nothing is missed.
        if self.restarted.swap(true, std::sync::atomic::Ordering::SeqCst) {
            let _ = self.tracker.try_send(TrackerMsg::RecoverAllLocal);
        }
        // The relay idles on the channel most of the time: a background task, so waiting is
        // never mistaken for a stuck actor.
        ctx.spawn_background(async move {
            let mut rx = changes.lock().await;
            while let Some(change) = rx.recv().await {
                let msg = match change {
                    StateChange::Pinned(pin) => TrackerMsg::Track(pin),
                    StateChange::Unpinned(pin) => TrackerMsg::Untrack(pin),
                };
                // Waiting here is the backpressure from a busy tracker to the commit path.
                if tracker.send(msg).await.is_err() {
                    tracing::warn!("pin tracker mailbox closed: state change not relayed");
                }
            }
        });
        Ok(())
    }

    async fn handle(&mut self, msg: ConsensusMsg, ctx: &Context<ConsensusMsg>) -> Result<(), ActorError> {
        let permit = Arc::clone(&self.limiter).acquire_owned().await.map_err(ActorError::failure)?;
        let consensus = Arc::clone(&self.consensus);
        let guard = ctx.work_guard();
        self.committed += 1;
        ctx.spawn_tracked(async move {
            let _permit = permit;
            let _guard = guard;
            match msg {
                ConsensusMsg::LogPin { pin, reply } => {
                    let _ = reply.send(consensus.log_pin(pin).await);
                }
                ConsensusMsg::LogUnpin { pin, reply } => {
                    let _ = reply.send(consensus.log_unpin(pin).await);
                }
            }
        });
        Ok(())
    }

    // Gossip and anti-entropy run outside the mailbox: a tick keeps their counters current.
    fn tick_interval(&self) -> Option<Duration> {
        Some(Duration::from_secs(1))
    }

    fn observable_state(&self) -> serde_json::Value {
        serde_json::json!({
            "commits_total": self.committed,
            "commits_in_flight": MAX_IN_FLIGHT_COMMITS - self.limiter.available_permits(),
            "consensus": self.consensus.stats(),
        })
    }
}
