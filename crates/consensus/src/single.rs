//! Single-peer consensus: the peer agrees with itself, with group commit.
//!
//! Every write goes through one committer task fed by a bounded queue. The committer takes
//! whatever is queued (up to [`SinglePeerConfig::max_batch`]), applies it as one atomic
//! batch, persists with [`Durability::Buffer`] once, emits the [`StateChange`]s in order and
//! only then acknowledges each caller. Under load that is one `write(2)` for a thousand
//! pins instead of one per pin.
//!
//! Durability trade-off: an acknowledged write survives the process being killed (the
//! data is in the OS page cache), but a power loss or kernel crash may lose up to
//! [`SinglePeerConfig::sync_interval`] of acknowledged writes, until the periodic
//! [`Durability::Sync`] (fsync) runs. [`SinglePeerConsensus::sync`] forces it now, and
//! [`Consensus::shutdown`] always does it. An fsync per pin would cap ingest at the disk's
//! fsync rate (often a few hundred per second); the Go Raft mode pays it per log entry.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use cluster_state::{Durability, StateOp, StateStore};
use cluster_types::Pin;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, info, warn};

use crate::{Consensus, ConsensusError, StateChange};

/// Tuning of [`SinglePeerConsensus`]; every queue and wait is bounded.
#[derive(Debug, Clone)]
pub struct SinglePeerConfig {
    /// Writes waiting for the committer. When full, callers wait up to `enqueue_timeout`.
    pub queue_capacity: usize,
    /// Most writes committed in one batch.
    pub max_batch: usize,
    /// How long a caller waits for room in a full queue before getting
    /// [`ConsensusError::QueueFull`].
    pub enqueue_timeout: Duration,
    /// How often written data is fsynced in the background; `None` leaves it to
    /// [`SinglePeerConsensus::sync`] and shutdown.
    pub sync_interval: Option<Duration>,
}

impl Default for SinglePeerConfig {
    fn default() -> Self {
        SinglePeerConfig {
            queue_capacity: 4096,
            max_batch: 1024,
            enqueue_timeout: Duration::from_secs(10),
            sync_interval: Some(Duration::from_secs(1)),
        }
    }
}

/// Counters of the committer, to observe group commit at work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Batches applied to the store.
    pub batches: u64,
    /// Writes applied to the store.
    pub writes: u64,
    /// Background or explicit fsyncs done by the committer.
    pub syncs: u64,
}

#[derive(Debug, Default)]
struct Counters {
    batches: AtomicU64,
    writes: AtomicU64,
    syncs: AtomicU64,
}

/// Consensus for a cluster of one: the local store is the agreed state.
///
/// Peers cannot be added; the peerset is this peer, which is also the leader. Build it
/// inside a tokio runtime: it spawns its committer task.
pub struct SinglePeerConsensus {
    peer_id: String,
    store: Arc<dyn StateStore>,
    queue: mpsc::Sender<Command>,
    config: SinglePeerConfig,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for SinglePeerConsensus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinglePeerConsensus").field("peer_id", &self.peer_id).field("config", &self.config).finish()
    }
}

type Reply = oneshot::Sender<Result<(), ConsensusError>>;

enum Write {
    Pin(Pin),
    Unpin(Pin),
}

#[allow(clippy::large_enum_variant, reason = "shutdown is sent once; writes are the traffic")]
enum Command {
    Write { write: Write, done: Reply },
    Shutdown { done: Reply },
}

impl SinglePeerConsensus {
    /// Starts single-peer consensus over `store`, reporting changes on `changes`, with the
    /// default [`SinglePeerConfig`].
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, or in one without the time driver (it spawns the committer
    /// task, which uses timers; build runtimes with `enable_all`).
    pub fn new(peer_id: String, store: Arc<dyn StateStore>, changes: mpsc::Sender<StateChange>) -> Self {
        Self::with_config(peer_id, store, changes, SinglePeerConfig::default())
    }

    /// Like [`SinglePeerConsensus::new`] with explicit tuning. Zero capacities are raised
    /// to one.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, or in one without the time driver (it spawns the committer
    /// task, which uses timers; build runtimes with `enable_all`).
    pub fn with_config(
        peer_id: String,
        store: Arc<dyn StateStore>,
        changes: mpsc::Sender<StateChange>,
        mut config: SinglePeerConfig,
    ) -> Self {
        config.queue_capacity = config.queue_capacity.max(1);
        config.max_batch = config.max_batch.max(1);
        let (queue, rx) = mpsc::channel(config.queue_capacity);
        let counters = Arc::new(Counters::default());
        let committer = Committer {
            store: Arc::clone(&store),
            changes,
            rx,
            max_batch: config.max_batch,
            dirty: false,
            counters: Arc::clone(&counters),
        };
        tokio::spawn(committer.run(config.sync_interval));
        info!(peer = %peer_id, "single-peer consensus started");
        SinglePeerConsensus { peer_id, store, queue, config, counters }
    }

    /// Forces everything acknowledged so far to stable storage (fsync), closing the
    /// power-loss window described in the module docs.
    pub async fn sync(&self) -> Result<(), ConsensusError> {
        persist_sync(Arc::clone(&self.store)).await?;
        self.counters.syncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Counters of the committer so far.
    pub fn stats(&self) -> CommitStats {
        CommitStats {
            batches: self.counters.batches.load(Ordering::Relaxed),
            writes: self.counters.writes.load(Ordering::Relaxed),
            syncs: self.counters.syncs.load(Ordering::Relaxed),
        }
    }

    async fn submit(&self, write: Write) -> Result<(), ConsensusError> {
        let (done, ack) = oneshot::channel();
        let cmd = Command::Write { write, done };
        match self.queue.try_send(cmd) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(ConsensusError::Closed),
            Err(mpsc::error::TrySendError::Full(cmd)) => {
                match tokio::time::timeout(self.config.enqueue_timeout, self.queue.send(cmd)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return Err(ConsensusError::Closed),
                    Err(_) => {
                        warn!(capacity = self.config.queue_capacity, "consensus commit queue full");
                        return Err(ConsensusError::QueueFull { capacity: self.config.queue_capacity });
                    }
                }
            }
        }
        // A dropped reply means the committer died before answering: report, never hang.
        ack.await.unwrap_or(Err(ConsensusError::Closed))
    }
}

#[async_trait]
impl Consensus for SinglePeerConsensus {
    async fn ready(&self) -> Result<(), ConsensusError> {
        if self.queue.is_closed() { Err(ConsensusError::Closed) } else { Ok(()) }
    }

    async fn log_pin(&self, pin: Pin) -> Result<(), ConsensusError> {
        self.submit(Write::Pin(pin)).await
    }

    async fn log_unpin(&self, pin: Pin) -> Result<(), ConsensusError> {
        self.submit(Write::Unpin(pin)).await
    }

    async fn peers(&self) -> Result<Vec<String>, ConsensusError> {
        Ok(vec![self.peer_id.clone()])
    }

    async fn leader(&self) -> Result<String, ConsensusError> {
        Ok(self.peer_id.clone())
    }

    async fn add_peer(&self, peer: &str) -> Result<(), ConsensusError> {
        if peer == self.peer_id {
            return Ok(());
        }
        Err(ConsensusError::Unsupported(format!(
            "single-peer consensus cannot add peers (asked to add {peer}): run crdt or raft consensus to form a cluster"
        )))
    }

    async fn rm_peer(&self, peer: &str) -> Result<(), ConsensusError> {
        if peer == self.peer_id {
            return Err(ConsensusError::Unsupported("cannot remove the only peer of a single-peer cluster".into()));
        }
        Err(ConsensusError::Unsupported(format!("single-peer consensus has no peer {peer} to remove")))
    }

    fn is_trusted_peer(&self, peer: &str) -> bool {
        peer == self.peer_id
    }

    fn state(&self) -> Arc<dyn StateStore> {
        Arc::clone(&self.store)
    }

    async fn shutdown(&self) -> Result<(), ConsensusError> {
        let (done, ack) = oneshot::channel();
        if self.queue.send(Command::Shutdown { done }).await.is_ok()
            && let Ok(result) = ack.await
        {
            return result;
        }
        // Already shut down, or the committer died: still leave the store synced.
        persist_sync(Arc::clone(&self.store)).await
    }
}

async fn persist_sync(store: Arc<dyn StateStore>) -> Result<(), ConsensusError> {
    match tokio::task::spawn_blocking(move || store.persist(Durability::Sync)).await {
        Ok(result) => Ok(result?),
        Err(e) => {
            error!(error = %e, "state sync task failed");
            Err(ConsensusError::Closed)
        }
    }
}

/// The single writer of the store.
struct Committer {
    store: Arc<dyn StateStore>,
    changes: mpsc::Sender<StateChange>,
    rx: mpsc::Receiver<Command>,
    max_batch: usize,
    /// Something was written since the last fsync.
    dirty: bool,
    counters: Arc<Counters>,
}

/// Why the committer loop stops.
enum Stop {
    /// The queue is closed (by shutdown, or every handle dropped) and fully drained.
    Drained,
    /// The store panicked: callers get errors from now on.
    Died,
}

impl Committer {
    async fn run(mut self, sync_interval: Option<Duration>) {
        let mut ticker = sync_interval.map(|d| {
            let mut t = tokio::time::interval(d);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        let mut shutdowns: Vec<Reply> = Vec::new();
        let stop = loop {
            let tick = async {
                match ticker.as_mut() {
                    Some(t) => t.tick().await,
                    None => std::future::pending().await,
                }
            };
            let first = tokio::select! {
                cmd = self.rx.recv() => cmd,
                _ = tick, if self.dirty => {
                    // A failure is logged and retried at the next tick (dirty stays set).
                    let _ = self.sync().await;
                    continue;
                }
            };
            let Some(first) = first else {
                break Stop::Drained;
            };
            let mut writes = Vec::new();
            let mut next = Some(first);
            while let Some(cmd) = next.take() {
                match cmd {
                    Command::Write { write, done } => writes.push((write, done)),
                    Command::Shutdown { done } => {
                        if shutdowns.is_empty() {
                            // Refuse new work; what is already queued is still received
                            // and committed, so nothing accepted is dropped.
                            self.rx.close();
                            debug!("committer draining for shutdown");
                        }
                        shutdowns.push(done);
                    }
                }
                if writes.len() < self.max_batch {
                    next = self.rx.try_recv().ok();
                }
            }
            if !writes.is_empty() && !self.commit(writes).await {
                break Stop::Died;
            }
        };

        match stop {
            Stop::Died => {
                for done in shutdowns {
                    let _ = done.send(Err(ConsensusError::Closed));
                }
            }
            Stop::Drained if shutdowns.is_empty() => {
                // Every handle dropped without shutdown: still leave the store synced.
                if self.dirty {
                    let _ = self.sync().await;
                }
                debug!("consensus handles dropped: committer stops");
            }
            Stop::Drained => {
                let result = self.sync().await;
                let ok = result.is_ok();
                info!(ok, "single-peer consensus shut down");
                let mut first = Some(result);
                for done in shutdowns {
                    // The first waiter gets the real error; later ones only learn it failed.
                    let reply = first.take().unwrap_or(if ok { Ok(()) } else { Err(ConsensusError::Closed) });
                    let _ = done.send(reply);
                }
            }
        }
    }

    /// Applies one batch and answers its callers. Returns false when the store panicked.
    async fn commit(&mut self, writes: Vec<(Write, Reply)>) -> bool {
        let n = writes.len();
        let ops: Vec<StateOp> = writes.iter().map(|(w, _)| to_op(w)).collect();
        match self.apply(ops).await {
            Some(Ok(())) => {
                self.dirty = true;
                self.counters.batches.fetch_add(1, Ordering::Relaxed);
                self.counters.writes.fetch_add(n as u64, Ordering::Relaxed);
                debug!(writes = n, "committed batch");
                for (write, done) in writes {
                    self.acknowledge(write, done).await;
                }
                true
            }
            Some(Err(e)) if n == 1 => {
                error!(error = %e, "commit failed");
                if let Some((_, done)) = writes.into_iter().next() {
                    let _ = done.send(Err(ConsensusError::State(e)));
                }
                true
            }
            Some(Err(e)) => {
                // Nothing of the batch was applied. Retry one by one so each caller gets
                // its own answer (and one bad write cannot fail the others).
                warn!(error = %e, writes = n, "batch commit failed: retrying writes one by one");
                for (write, done) in writes {
                    match self.apply(vec![to_op(&write)]).await {
                        Some(Ok(())) => {
                            self.dirty = true;
                            self.counters.batches.fetch_add(1, Ordering::Relaxed);
                            self.counters.writes.fetch_add(1, Ordering::Relaxed);
                            self.acknowledge(write, done).await;
                        }
                        Some(Err(e)) => {
                            error!(error = %e, cid = %write_pin(&write).cid, "commit failed");
                            let _ = done.send(Err(ConsensusError::State(e)));
                        }
                        None => {
                            let _ = done.send(Err(ConsensusError::Closed));
                            return false;
                        }
                    }
                }
                true
            }
            None => {
                for (_, done) in writes {
                    let _ = done.send(Err(ConsensusError::Closed));
                }
                false
            }
        }
    }

    /// Applies and buffers one batch on the blocking pool; `None` if the store panicked.
    async fn apply(&self, ops: Vec<StateOp>) -> Option<Result<(), cluster_state::StateError>> {
        let store = Arc::clone(&self.store);
        match tokio::task::spawn_blocking(move || {
            store.apply(&ops)?;
            store.persist(Durability::Buffer)
        })
        .await
        {
            Ok(result) => Some(result),
            Err(e) => {
                error!(error = %e, "state store panicked while committing: consensus stops");
                None
            }
        }
    }

    /// Emits the change, then acknowledges the caller, so a caller that got `Ok` knows
    /// the change is already queued for the tracker.
    async fn acknowledge(&self, write: Write, done: Reply) {
        let change = match write {
            Write::Pin(p) => StateChange::Pinned(p),
            Write::Unpin(p) => StateChange::Unpinned(p),
        };
        // A closed receiver means nobody tracks changes (tests, tools): not an error.
        let _ = self.changes.send(change).await;
        let _ = done.send(Ok(()));
    }

    async fn sync(&mut self) -> Result<(), ConsensusError> {
        let result = persist_sync(Arc::clone(&self.store)).await;
        match &result {
            Ok(()) => {
                self.dirty = false;
                self.counters.syncs.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => error!(error = %e, "state sync failed"),
        }
        result
    }
}

fn to_op(w: &Write) -> StateOp {
    match w {
        Write::Pin(p) => StateOp::Put(p.clone()),
        Write::Unpin(p) => StateOp::Remove(p.cid),
    }
}

fn write_pin(w: &Write) -> &Pin {
    match w {
        Write::Pin(p) | Write::Unpin(p) => p,
    }
}
