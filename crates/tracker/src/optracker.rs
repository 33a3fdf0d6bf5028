//! The operation tracker: at most one pending IPFS operation per CID, and the rules that
//! decide what a new request does to the one already there (§1.6 of the reference).
//!
//! This module is pure bookkeeping: no IO, no clocks (callers pass timestamps), no tasks.
//! The actor owns one tracker per instance; workers learn whether the job they popped from a
//! queue is still wanted by comparing its [`Operation::generation`], so cancelling a queued
//! operation is just replacing it.
//!
//! # What an operation holds
//!
//! Up to a million operations can be queued at once, so an [`Operation`] keeps only what the
//! workers and the replacement rules need: kind, phase, generation, counters, the priority
//! flag, the last error, a timestamp, and the two facts a worker needs about the pin (its
//! [`PinMode`] and its expiry). It does not keep a copy of the [`Pin`]: the map key is the
//! only CID stored, and a status answer re-reads the pin's name, allocations, origins,
//! creation time and metadata from the shared state when it is built. For an unpin (the pin
//! already left the state) those fields are therefore empty; the CID, status, error and
//! counters are still reported.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};

use cluster_types::{Cid, Pin, PinMode, Timestamp, TrackerStatus};

/// Generations are unique across every tracker in the process, so a completion report sent by
/// a worker of a killed instance can never be mistaken for one of its successor's operations.
static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

fn next_generation() -> u64 {
    NEXT_GENERATION.fetch_add(1, Ordering::Relaxed)
}

/// What an operation does to IPFS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OperationKind {
    /// Pin the CID because it is allocated to this peer.
    Pin,
    /// Unpin the CID because it left the shared state.
    Unpin,
    /// Unpin the CID if IPFS holds it, because the pin is allocated to other peers.
    Remote,
}

impl OperationKind {
    /// Every kind, for counters and snapshots.
    pub const ALL: [OperationKind; 3] = [OperationKind::Pin, OperationKind::Unpin, OperationKind::Remote];

    /// The lowercase name used in snapshots and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            OperationKind::Pin => "pin",
            OperationKind::Unpin => "unpin",
            OperationKind::Remote => "remote",
        }
    }

    fn index(self) -> usize {
        match self {
            OperationKind::Pin => 0,
            OperationKind::Unpin => 1,
            OperationKind::Remote => 2,
        }
    }
}

/// Where an operation is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    /// Waiting in a queue for a worker.
    Queued,
    /// A worker is talking to IPFS about it.
    InProgress,
    /// The last attempt failed; kept so the status shows the error until a retry replaces it.
    Error,
    /// Finished; such operations are removed, the phase exists so snapshots can name it.
    Done,
}

impl Phase {
    /// Every phase, for counters and snapshots.
    pub const ALL: [Phase; 4] = [Phase::Queued, Phase::InProgress, Phase::Error, Phase::Done];

    /// The lowercase name used in snapshots and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Queued => "queued",
            Phase::InProgress => "in_progress",
            Phase::Error => "error",
            Phase::Done => "done",
        }
    }

    fn index(self) -> usize {
        match self {
            Phase::Queued => 0,
            Phase::InProgress => 1,
            Phase::Error => 2,
            Phase::Done => 3,
        }
    }
}

/// One pending, running or failed IPFS operation. Its CID is the tracker's key; everything
/// else about the pin lives in the shared state (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// Pin, unpin or remote cleanup.
    pub kind: OperationKind,
    /// Queued, in progress, failed or done.
    pub phase: Phase,
    /// Identifies this operation among all that ever existed for the CID; queue entries and
    /// completion reports carry it so stale ones are recognised and dropped.
    pub generation: u64,
    /// Failed attempts so far, inherited by a retry of the same kind (drives priority).
    pub attempt_count: u32,
    /// Consecutive attempts interrupted by a restart of the IPFS connector; they are retried
    /// without counting as failures, up to a bound.
    pub connector_restarts: u32,
    /// Whether the operation goes through the priority queue.
    pub priority: bool,
    /// The last error, empty unless the phase is [`Phase::Error`].
    pub error: String,
    /// When the operation last changed phase.
    pub timestamp: Timestamp,
    /// How the pin is to be stored in IPFS, as last requested.
    pub mode: PinMode,
    /// When the pin expires (unset for never), as last requested; a worker drops a pin
    /// operation whose pin expired while it was queued.
    pub expire_at: Timestamp,
}

impl Operation {
    /// The tracker status this operation imposes on its CID, or `None` once it is done and
    /// the status must be derived from the state and IPFS instead.
    pub fn status(&self) -> Option<TrackerStatus> {
        let status = match (self.kind, self.phase) {
            (_, Phase::Done) => return None,
            (OperationKind::Pin, Phase::Queued) => TrackerStatus::PinQueued,
            (OperationKind::Pin, Phase::InProgress) => TrackerStatus::Pinning,
            (OperationKind::Pin, Phase::Error) => TrackerStatus::PinError,
            (OperationKind::Unpin, Phase::Queued) => TrackerStatus::UnpinQueued,
            (OperationKind::Unpin, Phase::InProgress) => TrackerStatus::Unpinning,
            (OperationKind::Unpin, Phase::Error) => TrackerStatus::UnpinError,
            // A remote cleanup never changes what the peer reports: the pin is somebody
            // else's, and a failed cleanup only shows up as the error message.
            (OperationKind::Remote, _) => TrackerStatus::Remote,
        };
        Some(status)
    }

    /// True when the pin expiry recorded with the operation is in the past.
    pub fn is_expired(&self, now: chrono::DateTime<chrono::Utc>) -> bool {
        matches!(self.expire_at.0, Some(at) if at <= now)
    }

    /// True while a worker still has to (or currently does) act on the operation.
    pub fn is_ongoing(&self) -> bool {
        matches!(self.phase, Phase::Queued | Phase::InProgress)
    }
}

/// What [`OperationTracker::track`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackOutcome {
    /// A new operation was recorded in [`Phase::Queued`]; the caller must put a job with this
    /// generation into the queue matching `priority`.
    Enqueue {
        /// Generation of the new operation.
        generation: u64,
        /// Whether it belongs in the priority queue.
        priority: bool,
        /// Generation of an ongoing operation of another kind that this one replaced; if a
        /// worker is running it, the caller should interrupt it.
        cancelled_generation: Option<u64>,
    },
    /// The same kind of operation is already queued or running; only its pin's mode and
    /// expiry were refreshed.
    AlreadyQueued,
}

/// Operation counts by kind and phase, kept up to date on every change so metrics and
/// snapshots never have to walk the tracker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpCounts {
    counts: [[usize; 4]; 3],
}

impl OpCounts {
    /// Operations of `kind` currently in `phase`.
    pub fn get(&self, kind: OperationKind, phase: Phase) -> usize {
        self.counts[kind.index()][phase.index()]
    }

    /// Operations in `phase`, whatever their kind.
    pub fn in_phase(&self, phase: Phase) -> usize {
        OperationKind::ALL.iter().map(|kind| self.get(*kind, phase)).sum()
    }

    /// All operations.
    pub fn total(&self) -> usize {
        self.counts.iter().flatten().sum()
    }

    /// How many CIDs currently report `status` because of an operation.
    pub fn with_status(&self, status: TrackerStatus) -> usize {
        let (kind, phase) = match status {
            TrackerStatus::PinQueued => (OperationKind::Pin, Phase::Queued),
            TrackerStatus::Pinning => (OperationKind::Pin, Phase::InProgress),
            TrackerStatus::PinError => (OperationKind::Pin, Phase::Error),
            TrackerStatus::UnpinQueued => (OperationKind::Unpin, Phase::Queued),
            TrackerStatus::Unpinning => (OperationKind::Unpin, Phase::InProgress),
            TrackerStatus::UnpinError => (OperationKind::Unpin, Phase::Error),
            TrackerStatus::Remote => {
                let remote = OperationKind::Remote;
                return Phase::ALL
                    .iter()
                    .filter(|phase| **phase != Phase::Done)
                    .map(|phase| self.get(remote, *phase))
                    .sum();
            }
            _ => return 0,
        };
        self.get(kind, phase)
    }

    fn add(&mut self, op: &Operation) {
        self.counts[op.kind.index()][op.phase.index()] += 1;
    }

    fn sub(&mut self, op: &Operation) {
        let slot = &mut self.counts[op.kind.index()][op.phase.index()];
        debug_assert!(*slot > 0, "operation counts went negative");
        *slot = slot.saturating_sub(1);
    }
}

/// CID → operation, with the replacement rules of the original's `optracker`.
#[derive(Debug, Default)]
pub struct OperationTracker {
    // Ordered so that listings can resume after the last CID seen without holding a lock
    // across sends (see [`OperationTracker::after`]).
    operations: BTreeMap<Cid, Operation>,
    counts: OpCounts,
}

impl OperationTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a request to run `kind` on `pin.cid` and says whether it must be queued.
    ///
    /// * nothing tracked, or an errored/done operation of another kind → a fresh operation;
    /// * an errored/done operation of the same kind → replaced, inheriting its attempt count
    ///   (so repeated failures eventually lose priority);
    /// * an ongoing operation of the same kind → only its pin's mode and expiry are refreshed;
    /// * an ongoing operation of another kind → replaced, and its generation returned so a
    ///   running worker can be interrupted.
    ///
    /// `priority_of` gets the pin and the inherited attempt count and decides the queue.
    /// Only the CID, mode and expiry of `pin` are kept (see the module docs).
    pub fn track(
        &mut self,
        kind: OperationKind,
        pin: &Pin,
        now: Timestamp,
        priority_of: impl FnOnce(&Pin, u32) -> bool,
    ) -> TrackOutcome {
        let cid = pin.cid;
        let mut inherited_attempts = 0;
        let mut cancelled_generation = None;
        if let Some(existing) = self.operations.get_mut(&cid) {
            if existing.kind == kind {
                if existing.is_ongoing() {
                    existing.mode = pin.mode();
                    existing.expire_at = pin.options.expire_at;
                    return TrackOutcome::AlreadyQueued;
                }
                inherited_attempts = existing.attempt_count;
            } else if existing.is_ongoing() {
                cancelled_generation = Some(existing.generation);
            }
        }
        if let Some(replaced) = self.operations.remove(&cid) {
            self.counts.sub(&replaced);
        }
        let priority = kind == OperationKind::Pin && priority_of(pin, inherited_attempts);
        let generation = next_generation();
        let operation = Operation {
            kind,
            phase: Phase::Queued,
            generation,
            attempt_count: inherited_attempts,
            connector_restarts: 0,
            priority,
            error: String::new(),
            timestamp: now,
            mode: pin.mode(),
            expire_at: pin.options.expire_at,
        };
        self.counts.add(&operation);
        self.operations.insert(cid, operation);
        TrackOutcome::Enqueue { generation, priority, cancelled_generation }
    }

    /// The operation tracked for `cid`, in whatever phase.
    pub fn get(&self, cid: &Cid) -> Option<&Operation> {
        self.operations.get(cid)
    }

    /// True when `generation` is still the operation tracked for `cid`.
    pub fn is_current(&self, cid: &Cid, generation: u64) -> bool {
        self.operations.get(cid).is_some_and(|op| op.generation == generation)
    }

    /// Moves a queued operation to [`Phase::InProgress`] for a worker that popped its job.
    ///
    /// Returns `None` when the job is stale (replaced, removed, or not queued any more), in
    /// which case the worker must drop it.
    pub fn start(&mut self, cid: &Cid, generation: u64, now: Timestamp) -> Option<&Operation> {
        let counts = &mut self.counts;
        let op = self.operations.get_mut(cid)?;
        if op.generation != generation || op.phase != Phase::Queued {
            return None;
        }
        counts.sub(op);
        op.phase = Phase::InProgress;
        op.timestamp = now;
        counts.add(op);
        Some(op)
    }

    /// Removes a finished operation; returns it, or `None` when `generation` is stale.
    pub fn finish(&mut self, cid: &Cid, generation: u64) -> Option<Operation> {
        if !self.is_current(cid, generation) {
            return None;
        }
        let op = self.operations.remove(cid)?;
        self.counts.sub(&op);
        Some(op)
    }

    /// Marks the operation failed with `error`. `count_attempt` is false when no IPFS call was
    /// made (a full queue), so the attempt count only reflects real failures.
    ///
    /// Returns false when `generation` is stale.
    pub fn fail(&mut self, cid: &Cid, generation: u64, error: String, count_attempt: bool, now: Timestamp) -> bool {
        let counts = &mut self.counts;
        let Some(op) = self.operations.get_mut(cid) else { return false };
        if op.generation != generation {
            return false;
        }
        counts.sub(op);
        op.phase = Phase::Error;
        op.error = error;
        op.connector_restarts = 0;
        if count_attempt {
            op.attempt_count = op.attempt_count.saturating_add(1);
        }
        op.timestamp = now;
        counts.add(op);
        true
    }

    /// Puts an interrupted operation back in [`Phase::Queued`] without counting a failure, and
    /// returns how many consecutive interruptions it has now seen (`None` when stale).
    pub fn requeue_after_connector_restart(&mut self, cid: &Cid, generation: u64, now: Timestamp) -> Option<u32> {
        let counts = &mut self.counts;
        let op = self.operations.get_mut(cid)?;
        if op.generation != generation {
            return None;
        }
        counts.sub(op);
        op.phase = Phase::Queued;
        op.connector_restarts = op.connector_restarts.saturating_add(1);
        op.timestamp = now;
        counts.add(op);
        Some(op.connector_restarts)
    }

    /// Forgets the operation of `cid` whatever its state; returns it if there was one.
    pub fn remove(&mut self, cid: &Cid) -> Option<Operation> {
        let op = self.operations.remove(cid)?;
        self.counts.sub(&op);
        Some(op)
    }

    /// Counts by kind and phase.
    pub fn counts(&self) -> OpCounts {
        self.counts
    }

    /// Number of tracked operations.
    pub fn len(&self) -> usize {
        self.operations.len()
    }

    /// True when nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.operations.is_empty()
    }

    /// Every operation with its CID, in CID order.
    pub fn iter(&self) -> impl Iterator<Item = (&Cid, &Operation)> {
        self.operations.iter()
    }

    /// Operations whose CID sorts after `after` (all of them for `None`), in CID order.
    ///
    /// Lets a listing take a bounded chunk, release the lock, send it, and resume where it
    /// stopped, even if operations were added or removed meanwhile.
    pub fn after(&self, after: Option<&Cid>) -> impl Iterator<Item = (&Cid, &Operation)> {
        let lower = match after {
            Some(cid) => Bound::Excluded(*cid),
            None => Bound::Unbounded,
        };
        self.operations.range((lower, Bound::Unbounded))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cid(n: u8) -> Cid {
        crate::test_support::cid(u32::from(n))
    }

    fn pin(n: u8) -> Pin {
        Pin::new(cid(n))
    }

    fn never_priority(_: &Pin, _: u32) -> bool {
        false
    }

    fn now() -> Timestamp {
        Timestamp::now()
    }

    fn enqueue_generation(outcome: TrackOutcome) -> u64 {
        match outcome {
            TrackOutcome::Enqueue { generation, .. } => generation,
            TrackOutcome::AlreadyQueued => panic!("expected a new operation"),
        }
    }

    #[test]
    fn ongoing_same_kind_only_refreshes_mode_and_expiry() {
        let mut tracker = OperationTracker::new();
        let first = enqueue_generation(tracker.track(OperationKind::Pin, &pin(1), now(), never_priority));
        let mut changed = pin(1);
        changed.max_depth = PinMode::Direct.max_depth();
        changed.options.expire_at = Timestamp(Some(chrono::Utc::now() - chrono::Duration::hours(1)));
        assert_eq!(tracker.track(OperationKind::Pin, &changed, now(), never_priority), TrackOutcome::AlreadyQueued);
        let op = tracker.get(&cid(1)).expect("tracked");
        assert_eq!(op.generation, first);
        assert_eq!(op.mode, PinMode::Direct);
        assert!(op.is_expired(chrono::Utc::now()));

        tracker.start(&cid(1), first, now()).expect("job is current");
        assert_eq!(tracker.track(OperationKind::Pin, &pin(1), now(), never_priority), TrackOutcome::AlreadyQueued);
        assert_eq!(tracker.get(&cid(1)).map(|op| op.phase), Some(Phase::InProgress));
    }

    #[test]
    fn errored_same_kind_is_replaced_and_inherits_attempts() {
        let mut tracker = OperationTracker::new();
        let first = enqueue_generation(tracker.track(OperationKind::Pin, &pin(1), now(), never_priority));
        tracker.start(&cid(1), first, now()).expect("current");
        assert!(tracker.fail(&cid(1), first, "boom".into(), true, now()));
        assert_eq!(tracker.get(&cid(1)).map(|op| op.status()), Some(Some(TrackerStatus::PinError)));

        let mut seen_attempts = None;
        let outcome = tracker.track(OperationKind::Pin, &pin(1), now(), |_, attempts| {
            seen_attempts = Some(attempts);
            true
        });
        let TrackOutcome::Enqueue { generation, priority, cancelled_generation } = outcome else {
            panic!("expected a retry to be queued")
        };
        assert_ne!(generation, first);
        assert!(priority);
        assert_eq!(cancelled_generation, None);
        assert_eq!(seen_attempts, Some(1));
        let op = tracker.get(&cid(1)).expect("tracked");
        assert_eq!((op.phase, op.attempt_count, op.error.as_str()), (Phase::Queued, 1, ""));
    }

    #[test]
    fn other_kind_cancels_ongoing_operation() {
        let mut tracker = OperationTracker::new();
        let pin_generation = enqueue_generation(tracker.track(OperationKind::Pin, &pin(1), now(), never_priority));
        tracker.start(&cid(1), pin_generation, now()).expect("current");
        let outcome = tracker.track(OperationKind::Unpin, &pin(1), now(), |_, _| true);
        let TrackOutcome::Enqueue { generation, priority, cancelled_generation } = outcome else {
            panic!("expected the unpin to be queued")
        };
        assert_eq!(cancelled_generation, Some(pin_generation));
        assert!(!priority, "only pins are prioritised");
        assert!(!tracker.is_current(&cid(1), pin_generation));
        assert!(tracker.is_current(&cid(1), generation));
        // The cancelled worker's report is ignored.
        assert!(tracker.finish(&cid(1), pin_generation).is_none());
        assert!(!tracker.fail(&cid(1), pin_generation, "late".into(), true, now()));
        assert_eq!(tracker.get(&cid(1)).map(|op| op.status()), Some(Some(TrackerStatus::UnpinQueued)));
    }

    #[test]
    fn errored_other_kind_is_replaced_without_cancelling_or_inheriting() {
        let mut tracker = OperationTracker::new();
        let unpin_generation = enqueue_generation(tracker.track(OperationKind::Unpin, &pin(1), now(), never_priority));
        assert!(tracker.fail(&cid(1), unpin_generation, "boom".into(), true, now()));
        let outcome = tracker.track(OperationKind::Pin, &pin(1), now(), never_priority);
        assert!(matches!(outcome, TrackOutcome::Enqueue { cancelled_generation: None, .. }));
        assert_eq!(tracker.get(&cid(1)).map(|op| op.attempt_count), Some(0));
    }

    #[test]
    fn stale_jobs_do_not_start() {
        let mut tracker = OperationTracker::new();
        let first = enqueue_generation(tracker.track(OperationKind::Pin, &pin(1), now(), never_priority));
        let second = enqueue_generation(tracker.track(OperationKind::Unpin, &pin(1), now(), never_priority));
        assert!(tracker.start(&cid(1), first, now()).is_none());
        assert!(tracker.start(&cid(1), second, now()).is_some());
        assert!(tracker.start(&cid(1), second, now()).is_none(), "a job starts once");
    }

    #[test]
    fn connector_restarts_requeue_without_failing() {
        let mut tracker = OperationTracker::new();
        let generation = enqueue_generation(tracker.track(OperationKind::Pin, &pin(1), now(), never_priority));
        tracker.start(&cid(1), generation, now()).expect("current");
        assert_eq!(tracker.requeue_after_connector_restart(&cid(1), generation, now()), Some(1));
        tracker.start(&cid(1), generation, now()).expect("requeued job starts again");
        assert_eq!(tracker.requeue_after_connector_restart(&cid(1), generation, now()), Some(2));
        let op = tracker.get(&cid(1)).expect("tracked");
        assert_eq!((op.phase, op.attempt_count), (Phase::Queued, 0));
    }

    #[test]
    fn after_resumes_listing() {
        let mut tracker = OperationTracker::new();
        for n in 0..10 {
            tracker.track(OperationKind::Pin, &pin(n), now(), never_priority);
        }
        let first_half: Vec<Cid> = tracker.after(None).take(5).map(|(cid, _)| *cid).collect();
        let rest: Vec<Cid> = tracker.after(first_half.last()).map(|(cid, _)| *cid).collect();
        assert_eq!(first_half.len() + rest.len(), 10);
        let all: Vec<Cid> = tracker.iter().map(|(cid, _)| *cid).collect();
        assert_eq!([first_half, rest].concat(), all);
    }

    /// An operation is a handful of scalars plus an (empty unless failed) error string: no
    /// pin, no second CID. It used to embed a whole `Pin` (520 bytes).
    #[test]
    fn operations_are_small() {
        let size = std::mem::size_of::<Operation>();
        assert!(size <= 80, "Operation grew to {size} bytes");
        assert!(size < std::mem::size_of::<Pin>() / 4);
    }

    /// 100k queued operations of pins with a name, metadata, origins and allocations cost the
    /// tracker about the map entry (CID key + operation) each, nothing proportional to the pin.
    #[test]
    fn queued_operations_do_not_copy_pins() {
        const OPS: u32 = 100_000;
        let mut tracker = OperationTracker::new();
        let mut tracked_bytes: isize = 0;
        for n in 0..OPS {
            let mut pin = Pin::new(crate::test_support::cid(n));
            pin.options.name = format!("a pin with a fairly long name, number {n:>10}");
            pin.options.metadata.insert("owner".into(), "somebody@example.org".into());
            pin.options.origins = vec!["/ip4/10.0.0.1/tcp/4001/p2p/12D3KooWExampleOriginPeer".into()];
            pin.allocations = vec!["12D3KooWPeerOne".into(), "12D3KooWPeerTwo".into()];
            // Only the tracker's own allocations are counted, not building the pin.
            let before = crate::test_support::thread_net_allocated();
            tracker.track(OperationKind::Pin, &pin, now(), never_priority);
            tracked_bytes += crate::test_support::thread_net_allocated() - before;
        }
        assert_eq!(tracker.len(), OPS as usize);
        let per_op = tracked_bytes / OPS as isize;
        let entry = (std::mem::size_of::<Cid>() + std::mem::size_of::<Operation>()) as isize;
        // A B-tree node holds 5 to 11 entries: at most 11/5 of an entry each, plus headers.
        assert!(per_op <= entry * 11 / 5 + 32, "{per_op} bytes per queued operation (entry is {entry})");
        // A copy of the pin alone (its inline size, before any of its heap data) would not fit.
        let pin_size = std::mem::size_of::<Pin>() as isize;
        assert!(per_op < pin_size, "{per_op} bytes per queued operation, a Pin is {pin_size}");
        eprintln!("{per_op} bytes per queued operation; entry {entry}, operation {}", std::mem::size_of::<Operation>());
    }

    #[derive(Debug, Clone)]
    enum Step {
        Track(OperationKind, u8),
        Start(u8),
        Finish(u8),
        Fail(u8),
        Requeue(u8),
        Remove(u8),
    }

    fn kind_strategy() -> impl Strategy<Value = OperationKind> {
        prop_oneof![Just(OperationKind::Pin), Just(OperationKind::Unpin), Just(OperationKind::Remote)]
    }

    fn step_strategy() -> impl Strategy<Value = Step> {
        let cid_index = 0u8..6;
        prop_oneof![
            (kind_strategy(), cid_index.clone()).prop_map(|(kind, n)| Step::Track(kind, n)),
            cid_index.clone().prop_map(Step::Start),
            cid_index.clone().prop_map(Step::Finish),
            cid_index.clone().prop_map(Step::Fail),
            cid_index.clone().prop_map(Step::Requeue),
            cid_index.prop_map(Step::Remove),
        ]
    }

    proptest! {
        /// Counts always equal a recount, generations only grow, and the replacement rules
        /// hold after any sequence of requests and worker reports.
        #[test]
        fn counts_and_rules_hold(steps in proptest::collection::vec(step_strategy(), 1..80)) {
            let mut tracker = OperationTracker::new();
            for step in steps {
                match step {
                    Step::Track(kind, n) => {
                        let before = tracker.get(&cid(n)).cloned();
                        let outcome = tracker.track(kind, &pin(n), now(), |_, _| true);
                        let after = tracker.get(&cid(n)).cloned().expect("tracked after track");
                        match (before, outcome) {
                            (Some(old), TrackOutcome::AlreadyQueued) => {
                                prop_assert!(old.kind == kind && old.is_ongoing());
                                prop_assert_eq!(old.generation, after.generation);
                            }
                            (None, TrackOutcome::AlreadyQueued) => prop_assert!(false, "nothing to refresh"),
                            (old_opt, TrackOutcome::Enqueue { generation, priority, cancelled_generation }) => {
                                prop_assert_eq!(after.generation, generation);
                                prop_assert_eq!(after.phase, Phase::Queued);
                                prop_assert_eq!(priority, kind == OperationKind::Pin);
                                if let Some(old) = old_opt {
                                    prop_assert!(generation > old.generation);
                                    prop_assert!(!(old.kind == kind && old.is_ongoing()));
                                    let expected_cancel = (old.kind != kind && old.is_ongoing()).then_some(old.generation);
                                    prop_assert_eq!(cancelled_generation, expected_cancel);
                                    let expected_attempts = if old.kind == kind { old.attempt_count } else { 0 };
                                    prop_assert_eq!(after.attempt_count, expected_attempts);
                                } else {
                                    prop_assert_eq!(cancelled_generation, None);
                                    prop_assert_eq!(after.attempt_count, 0);
                                }
                            }
                        }
                    }
                    Step::Start(n) => {
                        if let Some(generation) = tracker.get(&cid(n)).map(|op| op.generation) {
                            let was_queued = tracker.get(&cid(n)).map(|op| op.phase) == Some(Phase::Queued);
                            prop_assert_eq!(tracker.start(&cid(n), generation, now()).is_some(), was_queued);
                        }
                    }
                    Step::Finish(n) => {
                        if let Some(generation) = tracker.get(&cid(n)).map(|op| op.generation) {
                            prop_assert!(tracker.finish(&cid(n), generation).is_some());
                            prop_assert!(tracker.get(&cid(n)).is_none());
                        }
                    }
                    Step::Fail(n) => {
                        if let Some(op) = tracker.get(&cid(n)).cloned() {
                            prop_assert!(tracker.fail(&cid(n), op.generation, "e".into(), true, now()));
                            let failed = tracker.get(&cid(n)).expect("still tracked");
                            prop_assert_eq!(failed.attempt_count, op.attempt_count + 1);
                            prop_assert_eq!(failed.phase, Phase::Error);
                        }
                    }
                    Step::Requeue(n) => {
                        if let Some(generation) = tracker.get(&cid(n)).map(|op| op.generation) {
                            prop_assert!(tracker.requeue_after_connector_restart(&cid(n), generation, now()).is_some());
                        }
                    }
                    Step::Remove(n) => {
                        tracker.remove(&cid(n));
                    }
                }
                let mut recount = OpCounts::default();
                for (_, op) in tracker.iter() {
                    recount.add(op);
                }
                prop_assert_eq!(recount, tracker.counts());
                prop_assert_eq!(tracker.counts().total(), tracker.len());
            }
        }
    }
}
