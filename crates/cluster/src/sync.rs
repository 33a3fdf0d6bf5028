//! The pinset watcher: periodic recovery of failed pins and removal of expired ones.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster_actors::{Actor, ActorError, ActorRef, Context};
use cluster_state::StateStore;
use cluster_tracker::TrackerMsg;
use tokio::sync::oneshot;

use crate::consensus_actor::ConsensusMsg;
use crate::walk::walk_state;

/// The pinset watcher takes no messages: it runs on its timer.
pub enum SyncMsg {}

/// The pinset watcher actor.
pub struct SyncActor {
    state: Arc<dyn StateStore>,
    consensus: ActorRef<ConsensusMsg>,
    tracker: ActorRef<TrackerMsg>,
    state_sync_interval: Duration,
    pin_recover_interval: Duration,
    last_sync: Instant,
    last_recover: Instant,
    expired_unpinned: u64,
}

impl SyncActor {
    /// Builds the watcher.
    pub fn new(
        state: Arc<dyn StateStore>,
        consensus: ActorRef<ConsensusMsg>,
        tracker: ActorRef<TrackerMsg>,
        state_sync_interval: Duration,
        pin_recover_interval: Duration,
    ) -> Self {
        SyncActor {
            state,
            consensus,
            tracker,
            state_sync_interval,
            pin_recover_interval,
            last_sync: Instant::now(),
            last_recover: Instant::now(),
            expired_unpinned: 0,
        }
    }

    async fn unpin_expired(&mut self, ctx: &Context<SyncMsg>) {
        let now = chrono::Utc::now();
        let mut expired = walk_state(Arc::clone(&self.state), move |pin| pin.is_expired(now));
        while let Some(item) = expired.recv().await {
            let pin = match item {
                Ok(pin) => pin,
                Err(e) => {
                    tracing::warn!(error = %e, "state sync could not read the state");
                    break;
                }
            };
            ctx.record_progress();
            let cid = pin.cid;
            let (reply, wait) = oneshot::channel();
            if self.consensus.send(ConsensusMsg::LogUnpin { pin, reply }).await.is_err() {
                break;
            }
            match wait.await {
                Ok(Ok(())) => {
                    self.expired_unpinned += 1;
                    tracing::info!(%cid, "unpinned expired pin");
                }
                Ok(Err(e)) => tracing::warn!(%cid, error = %e, "could not unpin expired pin"),
                Err(_) => tracing::warn!(%cid, "consensus restarted while unpinning an expired pin"),
            }
        }
    }
}

impl Actor for SyncActor {
    type Msg = SyncMsg;

    async fn handle(&mut self, msg: SyncMsg, _ctx: &Context<SyncMsg>) -> Result<(), ActorError> {
        match msg {}
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(self.state_sync_interval.min(self.pin_recover_interval).min(Duration::from_secs(1)).max(Duration::from_millis(10)))
    }

    async fn tick(&mut self, ctx: &Context<SyncMsg>) -> Result<(), ActorError> {
        if self.last_sync.elapsed() >= self.state_sync_interval {
            self.last_sync = Instant::now();
            self.unpin_expired(ctx).await;
        }
        if self.last_recover.elapsed() >= self.pin_recover_interval {
            self.last_recover = Instant::now();
            let _ = self.tracker.try_send(TrackerMsg::RecoverAllLocal);
        }
        Ok(())
    }

    fn observable_state(&self) -> serde_json::Value {
        serde_json::json!({
            "expired_unpinned": self.expired_unpinned,
            "seconds_to_next_state_sync": self.state_sync_interval.saturating_sub(self.last_sync.elapsed()).as_secs(),
            "seconds_to_next_recover": self.pin_recover_interval.saturating_sub(self.last_recover.elapsed()).as_secs(),
        })
    }
}
