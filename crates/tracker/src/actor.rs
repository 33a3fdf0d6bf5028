//! The pin tracker actor: turns Track/Untrack requests into queued IPFS operations, runs them
//! with bounded concurrency, and answers status questions (§1.6, §10 of the reference).
//!
//! # Why a killed or restarted tracker loses nothing
//!
//! The tracker keeps no state of its own worth saving. What must be pinned is in the shared
//! state; what is pinned is in IPFS. Each instance therefore owns only disposable things: the
//! operation tracker, the three job queues and the worker tasks (spawned with
//! [`Context::spawn_tracked`], so they die with the instance). When the supervisor restarts
//! the actor:
//!
//! * messages still waiting in the mailbox (Track, Untrack, status requests) survive, because
//!   the supervisor owns the mailbox;
//! * the new instance's [`Actor::started`] spawns fresh workers and walks the state (streaming,
//!   in chunks), queueing a pin for every pin allocated here that IPFS does not hold;
//! * completion reports of the dead instance's workers still in the mailbox are ignored,
//!   because operation generations are unique per process.
//!
//! What is lost is only bookkeeping the original also loses on restart: error messages and
//! attempt counts of failed operations, and unpins that were queued but not yet run for CIDs
//! that already left the state (their Untrack was consumed; IPFS keeps the pin until the next
//! Untrack or a garbage collection), which matches the original's behaviour.
//!
//! # Ordering contract with consensus
//!
//! Whoever sends Track/Untrack must write the shared state first. Recovery re-reads the state
//! under the same lock that Track/Untrack take, so a recovery running concurrently with an
//! Untrack can never resurrect the removed pin.
//!
//! # Deliberate differences from the original
//!
//! * Remote cleanups (unpinning content allocated elsewhere) go through the unpin queue
//!   instead of running inline in Track, so they are bounded like every other IPFS call.
//! * StatusAll never loads the IPFS pinset into memory: it walks the state in chunks and asks
//!   IPFS about each chunk in one batched lookup ([`IpfsConnector::pin_ls_cids`]), so a listing
//!   costs one connector round-trip per chunk instead of one per pin.
//! * An interrupted connector (restarted mid-call) re-queues the operation instead of
//!   reporting a pin error.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use cluster_actors::{Actor, ActorError, ActorRef, Context, WorkGuard};
use cluster_ipfs::{IpfsConnector, IpfsError, IpfsPinStatus};
use cluster_observe::{Metrics, QueueLabels, StatusLabels};
use cluster_state::{StateError, StateStore};
use cluster_types::{
    format_go_duration, ApiError, Cid, ErrorCode, Pin, PinInfo, PinInfoShort, PinMode, PinType, Timestamp,
    TrackerStatus, TrackerStatusFilter,
};
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::optracker::{Operation, OperationKind, OperationTracker, Phase, TrackOutcome};
use crate::queue::{Job, Lane, OpQueues};
use crate::status::{connector_mode, derive_status, is_priority, needs_ipfs_lookup};

/// The error stored on an operation that found its queue full; operators grep for it.
pub const QUEUE_FULL_MESSAGE: &str = "pin/unpin operation queue is full, try increasing max_pin_queue_size";

/// Pins read from the state per step of a listing: large enough to amortise the blocking-task
/// hand-off, small enough to keep memory flat on million-pin states.
const STATE_CHUNK: usize = 1024;

/// Batched IPFS status lookups the whole tracker runs at once, across all listings, recoveries
/// and status requests.
const MAX_CONCURRENT_LOOKUPS: usize = 64;

/// Bound of a single (batched) status lookup; the reference's default for "other IPFS calls" (§10).
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// Consecutive connector restarts an operation rides out before it is reported failed.
const MAX_CONNECTOR_RESTARTS: u32 = 10;

/// First wait before re-queueing an operation interrupted by a connector restart; doubles per
/// consecutive interruption, so a connector that takes a while to come back is waited for.
const CONNECTOR_RESTART_BACKOFF: Duration = Duration::from_millis(100);

/// Upper bound of that wait.
const CONNECTOR_RESTART_BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Period of the tick that refreshes metrics. Ticks only run while the mailbox loop is free,
/// so they are also the tracker's proof of life for the supervisor: workers are tracked
/// tasks that keep the instance "busy" forever, and a tick recording progress is what
/// separates an idle tracker from a stuck one.
const TICK: Duration = Duration::from_millis(500);

/// The statuses that come from operations, exported as `pins_by_status` after every change.
const OPERATION_STATUSES: [TrackerStatus; 6] = [
    TrackerStatus::PinQueued,
    TrackerStatus::Pinning,
    TrackerStatus::PinError,
    TrackerStatus::UnpinQueued,
    TrackerStatus::Unpinning,
    TrackerStatus::UnpinError,
];

/// Settings of the pin tracker (the `pintracker.stateless` section plus peer identity).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackerConfig {
    /// This cluster peer's id: allocations are compared against it.
    pub self_peer: String,
    /// This peer's human name, reported in every status.
    pub peername: String,
    /// Pin workers; each runs one IPFS pin at a time (0 is read as 1: a tracker that never
    /// pins would only fill its queue).
    pub concurrent_pins: usize,
    /// Bound of each of the three queues; a full queue fails the operation instead of growing
    /// (so 0 fails every operation).
    pub max_pin_queue_size: usize,
    /// Pins committed more recently than this go through the priority queue.
    pub priority_pin_max_age: Duration,
    /// Pins that failed more often than this lose their priority.
    pub priority_pin_max_retries: u32,
    /// A pin with no progress for this long is cancelled and reported failed.
    pub pin_timeout: Duration,
    /// An unpin taking longer than this is cancelled and reported failed.
    pub unpin_timeout: Duration,
    /// The IPFS node's peer id, reported in statuses.
    pub ipfs_peer_id: String,
    /// The IPFS node's addresses, reported in statuses.
    pub ipfs_addresses: Vec<String>,
}

impl Default for TrackerConfig {
    /// The original's defaults (§10): 10 pin workers, queues of a million, 24h / 5 retries for
    /// priority, 2m pin progress timeout, 3h unpin timeout.
    fn default() -> Self {
        Self {
            self_peer: String::new(),
            peername: String::new(),
            concurrent_pins: 10,
            max_pin_queue_size: 1_000_000,
            priority_pin_max_age: Duration::from_secs(24 * 3600),
            priority_pin_max_retries: 5,
            pin_timeout: Duration::from_secs(2 * 60),
            unpin_timeout: Duration::from_secs(3 * 3600),
            ipfs_peer_id: String::new(),
            ipfs_addresses: Vec::new(),
        }
    }
}

/// How a worker's IPFS call ended, reported back to the actor in [`TrackerMsg::OpDone`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpOutcome {
    /// IPFS did what was asked.
    Succeeded,
    /// IPFS failed or the call timed out; the message is what the status shows.
    Failed(String),
    /// The IPFS connector was restarted during the call: nothing is known to have failed,
    /// so the operation is retried.
    ConnectorRestarted,
}

/// Messages of the pin tracker. Replies travel on the channels the caller puts in.
#[derive(Debug)]
pub enum TrackerMsg {
    /// The pin was added to (or changed in) the shared state.
    Track(Pin),
    /// The pin was removed from the shared state.
    Untrack(Pin),
    /// Asks for one CID's status on this peer.
    Status {
        /// The CID.
        cid: Cid,
        /// Receives the status.
        reply: oneshot::Sender<PinInfo>,
    },
    /// Streams the status of every pin in the state (and of pending unpins) that passes
    /// `filter`. The caller sizes `out`; a slow reader slows the listing instead of growing
    /// memory. The stream ends when `out`'s receiver sees the sender dropped.
    StatusAll {
        /// Which statuses to send.
        filter: TrackerStatusFilter,
        /// Bounded output channel; an `Err` item means the listing stopped early.
        out: mpsc::Sender<Result<PinInfo, ApiError>>,
    },
    /// Retries one CID if it is in pin_error, unpin_error or unexpectedly_unpinned, and
    /// replies with its status afterwards.
    Recover {
        /// The CID.
        cid: Cid,
        /// Receives the status after recovery.
        reply: oneshot::Sender<PinInfo>,
    },
    /// Retries every failed or unexpectedly unpinned CID and streams only those re-queued.
    RecoverAll {
        /// Bounded output channel.
        out: mpsc::Sender<Result<PinInfo, ApiError>>,
    },
    /// Like [`TrackerMsg::RecoverAll`] without output: what the periodic recover timer
    /// (`pin_recover_interval`, owned by the composition root) sends. Skipped while a previous
    /// local recovery is still running.
    RecoverAllLocal,
    /// Asks how many pin operations are waiting (the `pinqueue` informer's metric).
    PinQueueSize {
        /// Receives the count.
        reply: oneshot::Sender<u64>,
    },
    /// A worker finished an operation. Internal: sent by the tracker's own workers.
    OpDone {
        /// The operation's CID.
        cid: Cid,
        /// The operation's generation; stale reports are ignored.
        generation: u64,
        /// What happened.
        outcome: OpOutcome,
    },
}

/// Failures of the tracker's own lookups, mapped to API errors at the edge.
#[derive(Debug, thiserror::Error)]
pub enum TrackerError {
    /// Reading the shared state failed.
    #[error("reading the shared state: {0}")]
    State(#[from] StateError),
    /// Asking IPFS failed.
    #[error("asking ipfs: {0}")]
    Ipfs(#[from] IpfsError),
}

impl From<TrackerError> for ApiError {
    fn from(error: TrackerError) -> Self {
        let code = match &error {
            TrackerError::State(_) => ErrorCode::Internal,
            TrackerError::Ipfs(IpfsError::Timeout) => ErrorCode::Timeout,
            TrackerError::Ipfs(_) => ErrorCode::Unavailable,
        };
        ApiError::new(code, error.to_string())
    }
}

/// Everything the actor and its tasks share: one per instance.
struct TrackerCore {
    cfg: TrackerConfig,
    ipfs: Arc<dyn IpfsConnector>,
    state: Arc<dyn StateStore>,
    metrics: Arc<Metrics>,
    shared: Mutex<Shared>,
    queues: OpQueues,
    lookups: Semaphore,
    local_recovery_running: AtomicBool,
}

/// The operation tracker plus the cancel switches of running jobs, under one lock so that
/// "replace the operation" and "interrupt its worker" cannot interleave with "start it".
#[derive(Default)]
struct Shared {
    ops: OperationTracker,
    cancels: HashMap<u64, oneshot::Sender<()>>,
}

/// A job a worker may run: a copy of what it needs, taken under the lock.
struct StartedJob {
    cid: Cid,
    generation: u64,
    kind: OperationKind,
    mode: PinMode,
    connector_restarts: u32,
}

/// Why a watched pin did not finish.
enum PinFailure {
    Ipfs(IpfsError),
    NoProgress,
}

impl TrackerCore {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        // Every mutation keeps the tracker consistent before anything can panic.
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn priority_of(&self, pin: &Pin, attempts: u32) -> bool {
        is_priority(pin, attempts, self.cfg.priority_pin_max_age, self.cfg.priority_pin_max_retries)
    }

    fn lane_of(op: &Operation) -> Lane {
        match (op.kind, op.priority) {
            (OperationKind::Pin, true) => Lane::Priority,
            (OperationKind::Pin, false) => Lane::Normal,
            (OperationKind::Unpin | OperationKind::Remote, _) => Lane::Unpin,
        }
    }

    /// Records the request and queues a job for it; the caller holds the lock.
    fn enqueue_locked(&self, shared: &mut Shared, kind: OperationKind, pin: &Pin) -> TrackOutcome {
        let cid = pin.cid;
        let outcome = shared.ops.track(kind, pin, Timestamp::now(), |pin, attempts| self.priority_of(pin, attempts));
        let TrackOutcome::Enqueue { generation, cancelled_generation, .. } = outcome else {
            tracing::trace!(%cid, kind = kind.as_str(), "operation already queued, pin refreshed");
            return outcome;
        };
        if let Some(cancelled) = cancelled_generation
            && let Some(cancel) = shared.cancels.remove(&cancelled)
        {
            tracing::debug!(%cid, kind = kind.as_str(), "interrupting running operation of another kind");
            let _ = cancel.send(());
        }
        let Some(lane) = shared.ops.get(&cid).map(Self::lane_of) else {
            return outcome;
        };
        if self.queues.push(lane, Job { cid, generation }).is_err() {
            tracing::warn!(%cid, kind = kind.as_str(), capacity = self.queues.capacity(), "operation queue full");
            shared.ops.fail(&cid, generation, QUEUE_FULL_MESSAGE.to_string(), false, Timestamp::now());
        }
        outcome
    }

    fn enqueue(&self, kind: OperationKind, pin: Pin) {
        {
            let mut shared = self.lock();
            self.enqueue_locked(&mut shared, kind, &pin);
        }
        self.refresh_metrics();
    }

    fn track(&self, pin: Pin) {
        let cid = pin.cid;
        if pin.pin_type == PinType::Meta {
            tracing::trace!(%cid, "meta pins are tracked through their shards");
            return;
        }
        if pin.is_expired(chrono::Utc::now()) {
            tracing::debug!(%cid, "not pinning an expired pin");
            return;
        }
        if pin.is_allocated_to(&self.cfg.self_peer) {
            self.enqueue(OperationKind::Pin, pin);
        } else {
            self.enqueue(OperationKind::Remote, pin);
        }
    }

    /// Takes a popped job if it is still wanted, marking its operation in progress.
    /// The receiver fires when a newer operation of another kind replaces this one.
    fn start_job(&self, job: Job) -> Option<(StartedJob, oneshot::Receiver<()>)> {
        let started = {
            let mut shared = self.lock();
            let op = shared.ops.start(&job.cid, job.generation, Timestamp::now())?;
            let kind = op.kind;
            let mode = op.mode;
            let connector_restarts = op.connector_restarts;
            if kind == OperationKind::Pin && op.is_expired(chrono::Utc::now()) {
                tracing::debug!(cid = %job.cid, "pin expired while queued, dropping it");
                shared.ops.finish(&job.cid, job.generation);
                None
            } else {
                let (cancel, cancelled) = oneshot::channel();
                shared.cancels.insert(job.generation, cancel);
                let started = StartedJob { cid: job.cid, generation: job.generation, kind, mode, connector_restarts };
                Some((started, cancelled))
            }
        };
        self.refresh_metrics();
        started
    }

    fn forget_cancel(&self, generation: u64) {
        self.lock().cancels.remove(&generation);
    }

    /// Applies a worker's report.
    fn complete(&self, cid: Cid, generation: u64, outcome: OpOutcome) {
        {
            let mut shared = self.lock();
            let Some(kind) = shared.ops.get(&cid).filter(|op| op.generation == generation).map(|op| op.kind) else {
                tracing::debug!(%cid, generation, "ignoring report of a replaced operation");
                return;
            };
            match outcome {
                OpOutcome::Succeeded => {
                    shared.ops.finish(&cid, generation);
                    match kind {
                        OperationKind::Pin => {
                            self.metrics.pin_add.inc();
                        }
                        OperationKind::Unpin => {
                            self.metrics.pin_rm.inc();
                        }
                        // Usually nothing was pinned; counting it would inflate unpin numbers.
                        OperationKind::Remote => {}
                    }
                    tracing::debug!(%cid, kind = kind.as_str(), "operation done");
                }
                OpOutcome::Failed(error) => {
                    self.record_failure(kind);
                    tracing::warn!(%cid, kind = kind.as_str(), %error, "operation failed");
                    shared.ops.fail(&cid, generation, error, true, Timestamp::now());
                }
                OpOutcome::ConnectorRestarted => self.requeue_interrupted(&mut shared, cid, generation, kind),
            }
        }
        self.refresh_metrics();
    }

    fn record_failure(&self, kind: OperationKind) {
        let counter = match kind {
            OperationKind::Pin => &self.metrics.pin_add_errors,
            OperationKind::Unpin | OperationKind::Remote => &self.metrics.pin_rm_errors,
        };
        counter.inc();
    }

    fn requeue_interrupted(&self, shared: &mut Shared, cid: Cid, generation: u64, kind: OperationKind) {
        let now = Timestamp::now();
        let Some(restarts) = shared.ops.requeue_after_connector_restart(&cid, generation, now) else {
            return;
        };
        if restarts > MAX_CONNECTOR_RESTARTS {
            self.record_failure(kind);
            let error = format!("ipfs connector restarted {restarts} times during the operation");
            tracing::warn!(%cid, kind = kind.as_str(), restarts, "giving up on interrupted operation");
            shared.ops.fail(&cid, generation, error, true, now);
            return;
        }
        tracing::debug!(%cid, kind = kind.as_str(), restarts, "ipfs connector restarted, re-queueing operation");
        let Some(lane) = shared.ops.get(&cid).map(Self::lane_of) else { return };
        if self.queues.push(lane, Job { cid, generation }).is_err() {
            shared.ops.fail(&cid, generation, QUEUE_FULL_MESSAGE.to_string(), false, now);
        }
    }

    /// Publishes queue depths and operation statuses; cheap (counters kept by the tracker).
    fn refresh_metrics(&self) {
        let counts = self.lock().ops.counts();
        let depths = self.queues.depths();
        for (queue, depth) in [("priority", depths.priority), ("normal", depths.normal), ("unpin", depths.unpin)] {
            self.metrics.queue_depth.get_or_create(&QueueLabels { queue: queue.to_string() }).set(gauge_value(depth));
        }
        for status in OPERATION_STATUSES {
            let labels = StatusLabels { status: status.as_str().to_string() };
            self.metrics.pins_by_status.get_or_create(&labels).set(gauge_value(counts.with_status(status)));
        }
    }

    /// The operation of `cid` if it decides the status (queued, running or failed).
    fn live_op(&self, cid: &Cid) -> Option<Operation> {
        self.lock().ops.get(cid).filter(|op| op.status().is_some()).cloned()
    }

    fn pin_info(&self, cid: Cid, pin: Option<&Pin>, op: Option<&Operation>, status: TrackerStatus, error: String) -> PinInfo {
        let error = match op {
            Some(op) if error.is_empty() => op.error.clone(),
            _ => error,
        };
        PinInfo {
            cid,
            name: pin.map(|pin| pin.options.name.clone()).unwrap_or_default(),
            peer: self.cfg.self_peer.clone(),
            allocations: pin.map(|pin| pin.allocations.clone()).unwrap_or_default(),
            origins: pin.map(|pin| pin.options.origins.clone()).unwrap_or_default(),
            created: pin.map(|pin| pin.timestamp).unwrap_or_default(),
            metadata: pin.map(|pin| pin.options.metadata.clone()).unwrap_or_default(),
            info: PinInfoShort {
                peername: self.cfg.peername.clone(),
                ipfs_peer_id: self.cfg.ipfs_peer_id.clone(),
                ipfs_peer_addresses: self.cfg.ipfs_addresses.clone(),
                status,
                timestamp: op.map(|op| op.timestamp).unwrap_or_else(Timestamp::now),
                error,
                attempt_count: op.map(|op| op.attempt_count).unwrap_or(0),
                priority_pin: op.is_some_and(|op| op.priority),
            },
        }
    }

    /// Status straight from a live operation, without asking IPFS. The operation keeps no copy
    /// of the pin: name, allocations, origins, creation time and metadata come from
    /// `state_pin`, the pin as the shared state has it (`None` for an unpin whose pin is gone,
    /// which leaves those fields empty).
    fn info_from_op(&self, cid: Cid, op: &Operation, state_pin: Option<&Pin>) -> Option<PinInfo> {
        let status = op.status()?;
        Some(self.pin_info(cid, state_pin, Some(op), status, String::new()))
    }

    /// The status of `cid` if a live operation decides it, with the pin's details read from
    /// the state (one point read, and only when there is such an operation).
    fn live_info(&self, cid: &Cid) -> Option<PinInfo> {
        let op = self.live_op(cid)?;
        let state_pin = self.read_state_pin(cid);
        self.info_from_op(*cid, &op, state_pin.as_ref())
    }

    /// The state's pin of `cid` for decorating an operation's status; a failed read only
    /// costs the decoration, so it is logged and treated as absent.
    fn read_state_pin(&self, cid: &Cid) -> Option<Pin> {
        self.state.get(cid).unwrap_or_else(|error| {
            tracing::debug!(%cid, %error, "state read failed, reporting the operation without pin details");
            None
        })
    }

    /// IPFS statuses of `cids`, in order, from one batched call: one connector round-trip per
    /// chunk is what lets a million-pin listing keep up. The batch succeeds or fails as a whole.
    async fn ipfs_statuses(&self, cids: &[Cid]) -> Result<Vec<IpfsPinStatus>, IpfsError> {
        // The semaphore is never closed, so acquiring only fails if it were; treat as closed.
        let _permit = self.lookups.acquire().await.map_err(|_| IpfsError::Closed)?;
        let statuses = match tokio::time::timeout(LOOKUP_TIMEOUT, self.ipfs.pin_ls_cids(cids)).await {
            Ok(result) => result?,
            Err(_) => return Err(IpfsError::Timeout),
        };
        if statuses.len() != cids.len() {
            return Err(IpfsError::Backend(format!(
                "ipfs answered {} statuses for {} cids",
                statuses.len(),
                cids.len()
            )));
        }
        Ok(statuses)
    }

    /// One CID's status: a live operation wins, then the state, then IPFS.
    async fn status(&self, cid: Cid) -> PinInfo {
        let op = self.live_op(&cid);
        let state_pin = match self.state.get(&cid) {
            Ok(state_pin) => state_pin,
            // A live operation still answers, only without the pin's details.
            Err(_) if op.is_some() => None,
            Err(error) => {
                let error = TrackerError::from(error).to_string();
                return self.pin_info(cid, None, None, TrackerStatus::ClusterError, error);
            }
        };
        if let Some(info) = op.as_ref().and_then(|op| self.info_from_op(cid, op, state_pin.as_ref())) {
            return info;
        }
        let mut infos = self.derive_chunk(state_pin.into_iter().collect(), true).await;
        infos.pop().unwrap_or_else(|| self.pin_info(cid, None, None, TrackerStatus::Unpinned, String::new()))
    }

    /// Statuses of a chunk of state pins. With `lookup` false IPFS is not asked, and pins
    /// whose status would need it are left out (callers pass false when their filter cannot
    /// match pinned, unexpectedly_unpinned or cluster_error).
    async fn derive_chunk(&self, pins: Vec<Pin>, lookup: bool) -> Vec<PinInfo> {
        let ops: Vec<Option<Operation>> = {
            let shared = self.lock();
            pins.iter().map(|pin| shared.ops.get(&pin.cid).filter(|op| op.status().is_some()).cloned()).collect()
        };
        let self_peer = self.cfg.self_peer.as_str();
        let needed: Vec<bool> = pins
            .iter()
            .zip(&ops)
            .map(|(pin, op)| lookup && needs_ipfs_lookup(op.as_ref(), Some(pin), self_peer))
            .collect();
        let wanted: Vec<Cid> = pins.iter().zip(&needed).filter(|(_, needed)| **needed).map(|(pin, _)| pin.cid).collect();
        // One batch for the whole chunk. If it fails, every pin it covered is a cluster_error
        // carrying the message, as a failed single lookup would have made it.
        let mut answers = if wanted.is_empty() {
            Ok(Vec::new().into_iter())
        } else {
            self.ipfs_statuses(&wanted).await.map(Vec::into_iter).map_err(|error| {
                tracing::warn!(cids = wanted.len(), %error, "ipfs status lookup failed for a chunk");
                error
            })
        };
        let lookups: Vec<Option<Result<IpfsPinStatus, IpfsError>>> = needed
            .iter()
            .map(|needed| {
                needed.then(|| match &mut answers {
                    Ok(statuses) => statuses
                        .next()
                        .ok_or_else(|| IpfsError::Backend("ipfs answered fewer statuses than asked".into())),
                    Err(error) => Err(error.clone()),
                })
            })
            .collect();
        let mut infos = Vec::with_capacity(pins.len());
        for ((pin, op), lookup_result) in pins.iter().zip(&ops).zip(lookups) {
            let info = match (lookup_result, op) {
                (Some(Err(error)), _) => {
                    let error = TrackerError::from(error).to_string();
                    self.pin_info(pin.cid, Some(pin), None, TrackerStatus::ClusterError, error)
                }
                (Some(Ok(ipfs_status)), _) => {
                    let status = derive_status(None, Some(pin), Some(ipfs_status), self_peer);
                    self.pin_info(pin.cid, Some(pin), None, status, String::new())
                }
                (None, Some(op)) => match self.info_from_op(pin.cid, op, Some(pin)) {
                    Some(info) => info,
                    None => continue,
                },
                (None, None) if needs_ipfs_lookup(None, Some(pin), self_peer) => continue,
                (None, None) => {
                    let status = derive_status(None, Some(pin), None, self_peer);
                    self.pin_info(pin.cid, Some(pin), None, status, String::new())
                }
            };
            infos.push(info);
        }
        infos
    }

    /// Streams the state in chunks from a blocking thread; the bounded channel makes the
    /// listing advance only as fast as the consumer.
    fn state_chunks(&self) -> mpsc::Receiver<Result<Vec<Pin>, StateError>> {
        let (chunks_tx, chunks_rx) = mpsc::channel(1);
        let state = Arc::clone(&self.state);
        tokio::task::spawn_blocking(move || {
            let mut chunk = Vec::with_capacity(STATE_CHUNK);
            for item in state.list() {
                match item {
                    Ok(pin) => {
                        chunk.push(pin);
                        if chunk.len() == STATE_CHUNK {
                            let full = std::mem::replace(&mut chunk, Vec::with_capacity(STATE_CHUNK));
                            // A closed channel means the consumer went away: stop reading.
                            if chunks_tx.blocking_send(Ok(full)).is_err() {
                                return;
                            }
                        }
                    }
                    Err(error) => {
                        let _ = chunks_tx.blocking_send(Err(error));
                        return;
                    }
                }
            }
            if !chunk.is_empty() {
                let _ = chunks_tx.blocking_send(Ok(chunk));
            }
        });
        chunks_rx
    }

    async fn status_all(self: Arc<Self>, filter: TrackerStatusFilter, out: mpsc::Sender<Result<PinInfo, ApiError>>) {
        if filter.only_operation_states() {
            self.stream_operations(out, |op| op.status().is_some_and(|status| filter.matches(status)), |_| true).await;
            return;
        }
        let lookup = [TrackerStatus::Pinned, TrackerStatus::UnexpectedlyUnpinned, TrackerStatus::ClusterError]
            .into_iter()
            .any(|status| filter.matches(status));
        let mut chunks = self.state_chunks();
        while let Some(chunk) = chunks.recv().await {
            let pins = match chunk {
                Ok(pins) => pins,
                Err(error) => {
                    tracing::warn!(%error, "status listing stopped: state read failed");
                    let _ = out.send(Err(TrackerError::from(error).into())).await;
                    return;
                }
            };
            for info in self.derive_chunk(pins, lookup).await {
                if filter.matches(info.info.status) && out.send(Ok(info)).await.is_err() {
                    return;
                }
            }
        }
        // CIDs being unpinned have left the state, so the walk above did not see them.
        let state = Arc::clone(&self.state);
        self.stream_operations(
            out,
            move |op| op.kind == OperationKind::Unpin && op.status().is_some_and(|status| filter.matches(status)),
            move |cid| !state.has(cid).unwrap_or(false),
        )
        .await;
    }

    /// Streams the operations passing `keep` (checked under the lock, so it must be cheap)
    /// and then `wanted` (checked outside it), a chunk at a time, never holding the lock while
    /// sending. Only kept operations are copied out, so a listing that wants a few of a
    /// million queued operations does not clone them all. Each streamed operation costs one
    /// state point read for the pin's details.
    async fn stream_operations(
        &self,
        out: mpsc::Sender<Result<PinInfo, ApiError>>,
        keep: impl Fn(&Operation) -> bool,
        wanted: impl Fn(&Cid) -> bool,
    ) {
        let mut cursor: Option<Cid> = None;
        loop {
            let (last, kept) = {
                let shared = self.lock();
                let mut last = None;
                let mut kept: Vec<(Cid, Operation)> = Vec::new();
                for (cid, op) in shared.ops.after(cursor.as_ref()).take(STATE_CHUNK) {
                    last = Some(*cid);
                    if keep(op) {
                        kept.push((*cid, op.clone()));
                    }
                }
                (last, kept)
            };
            let Some(last) = last else { return };
            cursor = Some(last);
            for (cid, op) in kept.iter().filter(|(cid, _)| wanted(cid)) {
                let state_pin = self.read_state_pin(cid);
                let Some(info) = self.info_from_op(*cid, op, state_pin.as_ref()) else { continue };
                if out.send(Ok(info)).await.is_err() {
                    return;
                }
            }
        }
    }

    /// Re-queues a pin in pin_error or unexpectedly_unpinned, after re-reading the state under
    /// the lock (see the module docs for why). Returns its new status if it was re-queued.
    fn requeue_pin(&self, cid: Cid) -> Option<PinInfo> {
        let mut shared = self.lock();
        if let Some(op) = shared.ops.get(&cid)
            && op.status() != Some(TrackerStatus::PinError)
        {
            return None;
        }
        let pin = match self.state.get(&cid) {
            Ok(Some(pin)) => pin,
            Ok(None) => return None,
            Err(error) => {
                tracing::warn!(%cid, %error, "recover skipped: state read failed");
                return None;
            }
        };
        let wanted_here = pin.pin_type != PinType::Meta
            && pin.is_allocated_to(&self.cfg.self_peer)
            && !pin.is_expired(chrono::Utc::now());
        if !wanted_here {
            return None;
        }
        self.enqueue_locked(&mut shared, OperationKind::Pin, &pin);
        let info = shared.ops.get(&cid).and_then(|op| self.info_from_op(cid, op, Some(&pin)));
        drop(shared);
        self.refresh_metrics();
        info
    }

    /// Re-queues a failed unpin unless the CID is back in the state.
    fn requeue_unpin(&self, cid: Cid) -> Option<PinInfo> {
        let mut shared = self.lock();
        let mode = shared.ops.get(&cid).filter(|op| op.status() == Some(TrackerStatus::UnpinError))?.mode;
        // Back in the state means a Track is on its way and will replace the operation.
        if self.state.has(&cid).unwrap_or(true) {
            return None;
        }
        // The pin left the state, so all an unpin can know of it is its CID and mode.
        let mut pin = Pin::new(cid);
        pin.max_depth = mode.max_depth();
        self.enqueue_locked(&mut shared, OperationKind::Unpin, &pin);
        let info = shared.ops.get(&cid).and_then(|op| self.info_from_op(cid, op, None));
        drop(shared);
        self.refresh_metrics();
        info
    }

    async fn recover(&self, cid: Cid) -> PinInfo {
        let current = self.status(cid).await;
        let recovered = match current.info.status {
            TrackerStatus::PinError | TrackerStatus::UnexpectedlyUnpinned => self.requeue_pin(cid),
            TrackerStatus::UnpinError => self.requeue_unpin(cid),
            _ => None,
        };
        recovered.unwrap_or(current)
    }

    /// Re-queues everything in pin_error, unpin_error or unexpectedly_unpinned, streaming
    /// the re-queued items to `out` if given.
    async fn recover_all(self: Arc<Self>, out: Option<mpsc::Sender<Result<PinInfo, ApiError>>>) {
        let mut requeued = 0usize;
        let mut chunks = self.state_chunks();
        while let Some(chunk) = chunks.recv().await {
            let pins = match chunk {
                Ok(pins) => pins,
                Err(error) => {
                    tracing::warn!(%error, "recovery stopped: state read failed");
                    if let Some(out) = &out {
                        let _ = out.send(Err(TrackerError::from(error).into())).await;
                    }
                    return;
                }
            };
            for info in self.derive_chunk(pins, true).await {
                let needs_pin = matches!(info.info.status, TrackerStatus::PinError | TrackerStatus::UnexpectedlyUnpinned);
                let Some(recovered) = needs_pin.then(|| self.requeue_pin(info.cid)).flatten() else { continue };
                requeued += 1;
                if let Some(out) = &out
                    && out.send(Ok(recovered)).await.is_err()
                {
                    return;
                }
            }
        }
        let mut cursor: Option<Cid> = None;
        loop {
            let failed_unpins: Vec<Cid> = {
                let shared = self.lock();
                let scanned: Vec<(&Cid, &Operation)> = shared.ops.after(cursor.as_ref()).take(STATE_CHUNK).collect();
                let Some((last, _)) = scanned.last() else { break };
                cursor = Some(**last);
                scanned
                    .iter()
                    .filter(|(_, op)| op.status() == Some(TrackerStatus::UnpinError))
                    .map(|(cid, _)| **cid)
                    .collect()
            };
            for cid in failed_unpins {
                let Some(recovered) = self.requeue_unpin(cid) else { continue };
                requeued += 1;
                if let Some(out) = &out
                    && out.send(Ok(recovered)).await.is_err()
                {
                    return;
                }
            }
        }
        tracing::info!(requeued, "recovery pass finished");
    }

    fn observable(&self) -> serde_json::Value {
        let counts = self.lock().ops.counts();
        let depths = self.queues.depths();
        let mut operations = serde_json::Map::new();
        for kind in OperationKind::ALL {
            let mut by_phase = serde_json::Map::new();
            for phase in [Phase::Queued, Phase::InProgress, Phase::Error] {
                by_phase.insert(phase.as_str().to_string(), counts.get(kind, phase).into());
            }
            operations.insert(kind.as_str().to_string(), by_phase.into());
        }
        serde_json::json!({
            "queues": {
                "priority": depths.priority,
                "normal": depths.normal,
                "unpin": depths.unpin,
                "capacity": self.queues.capacity(),
            },
            "operations": operations,
            "workers": { "pin": self.cfg.concurrent_pins.max(1), "unpin": 1 },
            "in_flight": counts.in_phase(Phase::InProgress),
            "local_recovery_running": self.local_recovery_running.load(Ordering::Relaxed),
        })
    }
}

fn gauge_value(count: usize) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// Clears the "local recovery running" flag however the recovery task ends.
struct RecoveryFlag(Arc<TrackerCore>);

impl Drop for RecoveryFlag {
    fn drop(&mut self) {
        self.0.local_recovery_running.store(false, Ordering::Relaxed);
    }
}

/// Runs pin jobs forever, priority lane first.
async fn pin_worker(core: Arc<TrackerCore>, myself: ActorRef<TrackerMsg>, liveness: WorkGuard) {
    loop {
        let job = core.queues.next_pin().await;
        if !run_one(&core, &myself, &liveness, job).await {
            return;
        }
    }
}

/// Runs unpin and remote-cleanup jobs forever, one at a time.
async fn unpin_worker(core: Arc<TrackerCore>, myself: ActorRef<TrackerMsg>, liveness: WorkGuard) {
    loop {
        let job = core.queues.next_unpin().await;
        if !run_one(&core, &myself, &liveness, job).await {
            return;
        }
    }
}

/// Runs one job and reports it; false when the actor's mailbox is gone for good.
async fn run_one(core: &Arc<TrackerCore>, myself: &ActorRef<TrackerMsg>, liveness: &WorkGuard, job: Job) -> bool {
    let Some((started, cancelled)) = core.start_job(job) else {
        return true;
    };
    let outcome = tokio::select! {
        _ = cancelled => {
            tracing::debug!(cid = %started.cid, kind = started.kind.as_str(), "operation interrupted by a newer one");
            core.refresh_metrics();
            return true;
        }
        outcome = execute(core, &started, liveness) => outcome,
    };
    core.forget_cancel(started.generation);
    if outcome == OpOutcome::ConnectorRestarted {
        let doublings = started.connector_restarts.min(5);
        let backoff = CONNECTOR_RESTART_BACKOFF.saturating_mul(1 << doublings).min(CONNECTOR_RESTART_BACKOFF_MAX);
        tokio::time::sleep(backoff).await;
    }
    let report = TrackerMsg::OpDone { cid: started.cid, generation: started.generation, outcome };
    myself.send(report).await.is_ok()
}

/// Talks to IPFS for one job.
async fn execute(core: &TrackerCore, job: &StartedJob, liveness: &WorkGuard) -> OpOutcome {
    let cid = job.cid;
    match job.kind {
        OperationKind::Pin => {
            tracing::debug!(%cid, mode = %job.mode, "pinning");
            let how = if job.mode == PinMode::Recursive { recursive_pin_of(core, &cid) } else { HowToPin::Plain };
            match pin_with_watchdog(core.ipfs.as_ref(), &cid, job.mode, how, core.cfg.pin_timeout, liveness).await {
                Ok(()) => OpOutcome::Succeeded,
                Err(PinFailure::Ipfs(IpfsError::Closed)) => OpOutcome::ConnectorRestarted,
                Err(PinFailure::Ipfs(error)) => OpOutcome::Failed(error.to_string()),
                Err(PinFailure::NoProgress) => OpOutcome::Failed(format!(
                    "pin timed out: no progress for {}",
                    format_go_duration(core.cfg.pin_timeout)
                )),
            }
        }
        OperationKind::Unpin => {
            tracing::debug!(%cid, "unpinning");
            bounded_unpin(core, &cid, core.ipfs.unpin(&cid)).await
        }
        OperationKind::Remote => {
            let cleanup = async {
                match core.ipfs.pin_ls_cid(&cid).await? {
                    IpfsPinStatus::Recursive | IpfsPinStatus::Direct => {
                        tracing::debug!(%cid, "unpinning content allocated to other peers");
                        core.ipfs.unpin(&cid).await
                    }
                    IpfsPinStatus::Indirect | IpfsPinStatus::Unpinned => Ok(()),
                }
            };
            bounded_unpin(core, &cid, cleanup).await
        }
    }
}

async fn bounded_unpin(
    core: &TrackerCore,
    cid: &Cid,
    unpin: impl std::future::Future<Output = Result<(), IpfsError>>,
) -> OpOutcome {
    match tokio::time::timeout(core.cfg.unpin_timeout, unpin).await {
        Ok(Ok(())) => OpOutcome::Succeeded,
        Ok(Err(IpfsError::Closed)) => OpOutcome::ConnectorRestarted,
        Ok(Err(error)) => OpOutcome::Failed(error.to_string()),
        Err(_) => {
            tracing::warn!(%cid, unpin_timeout = ?core.cfg.unpin_timeout, "unpin timed out");
            OpOutcome::Failed(format!("unpin timed out after {}", format_go_duration(core.cfg.unpin_timeout)))
        }
    }
}

/// How a recursive pin reaches IPFS beyond its mode.
enum HowToPin {
    /// An ordinary pin of the mode.
    Plain,
    /// An update of an earlier version (`pin_update` in the state), so IPFS can fetch only what
    /// differs.
    UpdateFrom(Cid),
    /// Only this many levels below the root (shards: `max_depth` 1 or 2).
    Depth(u32),
}

/// Reads what the state says beyond the mode at start, rather than keeping it in the
/// operation, which stays small.
fn recursive_pin_of(core: &TrackerCore, cid: &Cid) -> HowToPin {
    match core.state.get(cid) {
        Ok(Some(pin)) if pin.max_depth > 0 => HowToPin::Depth(pin.max_depth.unsigned_abs()),
        Ok(Some(pin)) => pin.options.pin_update.filter(|from| from != cid).map_or(HowToPin::Plain, HowToPin::UpdateFrom),
        Ok(None) => HowToPin::Plain,
        Err(e) => {
            tracing::debug!(%cid, error = %e, "cannot read the pin for its depth and pin_update; pinning from scratch");
            HowToPin::Plain
        }
    }
}

/// Pins under a no-progress watchdog: a big DAG may take hours, so only silence is fatal.
/// Dropping the connector's future is how a pin is cancelled.
async fn pin_with_watchdog(
    ipfs: &dyn IpfsConnector,
    cid: &Cid,
    mode: PinMode,
    how: HowToPin,
    pin_timeout: Duration,
    liveness: &WorkGuard,
) -> Result<(), PinFailure> {
    let (progress_tx, mut progress_rx) = mpsc::channel::<u64>(16);
    let pinning = match &how {
        // an update lets the backend reuse what the earlier version already holds (Kubo's pin/update)
        HowToPin::UpdateFrom(from) => ipfs.pin_update(from, cid, progress_tx),
        HowToPin::Depth(depth) => ipfs.pin_depth(cid, *depth, progress_tx),
        HowToPin::Plain => ipfs.pin(cid, connector_mode(mode), progress_tx),
    };
    tokio::pin!(pinning);
    let silence = tokio::time::sleep(pin_timeout);
    tokio::pin!(silence);
    let mut progress_open = true;
    loop {
        tokio::select! {
            result = &mut pinning => return result.map_err(PinFailure::Ipfs),
            progress = progress_rx.recv(), if progress_open => match progress {
                Some(blocks) => {
                    tracing::trace!(%cid, blocks, "pin progress");
                    liveness.record_progress();
                    silence.as_mut().reset(tokio::time::Instant::now() + pin_timeout);
                }
                // The connector stopped reporting; the watchdog still runs on the last report.
                None => progress_open = false,
            },
            () = &mut silence => {
                tracing::warn!(%cid, pin_timeout = ?pin_timeout, "pin made no progress, cancelling it");
                return Err(PinFailure::NoProgress);
            }
        }
    }
}

/// The supervised pin tracker. Build it from a supervisor factory; every restart builds a
/// fresh one, which is correct because everything it holds is rebuilt from the state.
pub struct PinTrackerActor {
    core: Arc<TrackerCore>,
}

impl PinTrackerActor {
    /// A tracker for this peer. Cheap: workers and the startup recovery only start in
    /// [`Actor::started`].
    pub fn new(
        cfg: TrackerConfig,
        ipfs: Arc<dyn IpfsConnector>,
        state: Arc<dyn StateStore>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let queues = OpQueues::new(cfg.max_pin_queue_size);
        let core = TrackerCore {
            cfg,
            ipfs,
            state,
            metrics,
            shared: Mutex::new(Shared::default()),
            queues,
            lookups: Semaphore::new(MAX_CONCURRENT_LOOKUPS),
            local_recovery_running: AtomicBool::new(false),
        };
        Self { core: Arc::new(core) }
    }

    fn start_local_recovery(&self, ctx: &Context<TrackerMsg>) {
        let core = &self.core;
        if core.local_recovery_running.swap(true, Ordering::Relaxed) {
            tracing::debug!("local recovery already running, skipping");
            return;
        }
        let flag = RecoveryFlag(Arc::clone(core));
        let core = Arc::clone(core);
        ctx.spawn_tracked(async move {
            let _flag = flag;
            core.recover_all(None).await;
        });
    }
}

impl Actor for PinTrackerActor {
    type Msg = TrackerMsg;

    async fn started(&mut self, ctx: &Context<TrackerMsg>) -> Result<(), ActorError> {
        let pin_workers = self.core.cfg.concurrent_pins.max(1);
        for _ in 0..pin_workers {
            let worker = pin_worker(Arc::clone(&self.core), ctx.myself(), ctx.work_guard());
            ctx.spawn_tracked(worker);
        }
        ctx.spawn_tracked(unpin_worker(Arc::clone(&self.core), ctx.myself(), ctx.work_guard()));
        tracing::info!(pin_workers, queue_capacity = self.core.queues.capacity(), "pin tracker started, recovering from the state");
        self.start_local_recovery(ctx);
        self.core.refresh_metrics();
        Ok(())
    }

    async fn handle(&mut self, msg: TrackerMsg, ctx: &Context<TrackerMsg>) -> Result<(), ActorError> {
        match msg {
            TrackerMsg::Track(pin) => self.core.track(pin),
            TrackerMsg::Untrack(pin) => self.core.enqueue(OperationKind::Unpin, pin),
            TrackerMsg::Status { cid, reply } => {
                // Answer from the operation when possible; anything needing IO runs beside
                // the mailbox loop so one slow IPFS call never delays other requests.
                // That takes one state point read for the pin's details, cheap enough here.
                if let Some(info) = self.core.live_info(&cid) {
                    let _ = reply.send(info);
                } else {
                    let core = Arc::clone(&self.core);
                    ctx.spawn_tracked(async move {
                        let _ = reply.send(core.status(cid).await);
                    });
                }
            }
            TrackerMsg::StatusAll { filter, out } => {
                ctx.spawn_tracked(Arc::clone(&self.core).status_all(filter, out));
            }
            TrackerMsg::Recover { cid, reply } => {
                let core = Arc::clone(&self.core);
                ctx.spawn_tracked(async move {
                    let _ = reply.send(core.recover(cid).await);
                });
            }
            TrackerMsg::RecoverAll { out } => {
                ctx.spawn_tracked(Arc::clone(&self.core).recover_all(Some(out)));
            }
            TrackerMsg::RecoverAllLocal => self.start_local_recovery(ctx),
            TrackerMsg::PinQueueSize { reply } => {
                let queued = self.core.lock().ops.counts().get(OperationKind::Pin, Phase::Queued);
                let _ = reply.send(u64::try_from(queued).unwrap_or(u64::MAX));
            }
            TrackerMsg::OpDone { cid, generation, outcome } => self.core.complete(cid, generation, outcome),
        }
        Ok(())
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(TICK)
    }

    async fn tick(&mut self, _ctx: &Context<TrackerMsg>) -> Result<(), ActorError> {
        self.core.refresh_metrics();
        Ok(())
    }

    fn observable_state(&self) -> serde_json::Value {
        self.core.observable()
    }
}

#[cfg(test)]
mod tests;
