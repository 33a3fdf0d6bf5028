//! The tracker actor under a real supervisor, against a scriptable in-memory IPFS.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use cluster_actors::{ActorHealth, ActorRef, RestartPolicy, Supervisor};
use cluster_ipfs::{IpfsConnector, IpfsError, IpfsId, IpfsPinStatus, PinMode, RepoStat};
use cluster_observe::Metrics;
use cluster_state::{MemState, StateOp, StateStore};
use cluster_types::{Cid, Pin, PinInfo, PinType, Timestamp, TrackerStatus, TrackerStatusFilter};
use futures::stream::BoxStream;
use tokio::sync::mpsc;

use super::{PinTrackerActor, TrackerConfig, TrackerMsg, QUEUE_FULL_MESSAGE};
use crate::test_support::cid;

const SELF: &str = "peer-self";
const OTHER: &str = "peer-other";
const ACTOR: &str = "pin_tracker";
const HEARTBEAT: Duration = Duration::from_millis(20);
/// Upper bound of every wait; waits return as soon as their condition holds.
const PATIENCE: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(10);

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// An IPFS node in a hash map, with knobs for delays, hangs, gates and injected failures.
#[derive(Default)]
struct FakeIpfs {
    pinned: Mutex<HashMap<Cid, IpfsPinStatus>>,
    pin_delay: Mutex<Duration>,
    /// Pins of these CIDs never report progress and never finish.
    hanging: Mutex<HashSet<Cid>>,
    /// Pins of these CIDs report progress but only finish once the gate opens.
    gated: Mutex<HashSet<Cid>>,
    gate_open: AtomicBool,
    /// Errors returned by the next pin calls of a CID, in order.
    pin_failures: Mutex<HashMap<Cid, VecDeque<IpfsError>>>,
    pin_starts: Mutex<Vec<Cid>>,
    pin_calls: AtomicUsize,
    pin_ls_calls: AtomicUsize,
    /// Batched lookups (`pin_ls_cids` calls); each also counts its CIDs in `pin_ls_calls`.
    pin_ls_batches: AtomicUsize,
    /// When set, every batched lookup fails with this error.
    lookup_failure: Mutex<Option<IpfsError>>,
    unpin_calls: AtomicUsize,
}

impl FakeIpfs {
    fn with_delay(delay: Duration) -> Arc<Self> {
        let fake = Self::default();
        *lock(&fake.pin_delay) = delay;
        Arc::new(fake)
    }

    fn holds(&self, cid: &Cid) -> bool {
        lock(&self.pinned).contains_key(cid)
    }

    fn pinned_count(&self) -> usize {
        lock(&self.pinned).len()
    }

    fn hang(&self, cid: Cid) {
        lock(&self.hanging).insert(cid);
    }

    fn gate(&self, cid: Cid) {
        lock(&self.gated).insert(cid);
    }

    fn open_gate(&self) {
        self.gate_open.store(true, Ordering::SeqCst);
    }

    fn fail_next_pins(&self, cid: Cid, errors: Vec<IpfsError>) {
        lock(&self.pin_failures).insert(cid, errors.into());
    }

    fn pin_starts(&self) -> Vec<Cid> {
        lock(&self.pin_starts).clone()
    }

    fn pin_calls_of(&self, cid: &Cid) -> usize {
        lock(&self.pin_starts).iter().filter(|started| *started == cid).count()
    }
}

#[async_trait]
impl IpfsConnector for FakeIpfs {
    async fn id(&self) -> Result<IpfsId, IpfsError> {
        Ok(IpfsId { id: "fake-ipfs".into(), addresses: Vec::new() })
    }

    async fn pin(&self, cid: &Cid, mode: PinMode, progress: mpsc::Sender<u64>) -> Result<(), IpfsError> {
        self.pin_calls.fetch_add(1, Ordering::SeqCst);
        lock(&self.pin_starts).push(*cid);
        let failure = lock(&self.pin_failures).get_mut(cid).and_then(VecDeque::pop_front);
        if let Some(error) = failure {
            return Err(error);
        }
        if lock(&self.hanging).contains(cid) {
            std::future::pending::<()>().await;
        }
        let mut blocks = 0u64;
        if lock(&self.gated).contains(cid) {
            while !self.gate_open.load(Ordering::SeqCst) {
                blocks += 1;
                let _ = progress.try_send(blocks);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let delay = *lock(&self.pin_delay);
        if !delay.is_zero() {
            let _ = progress.try_send(blocks + 1);
            tokio::time::sleep(delay).await;
        }
        let status = match mode {
            PinMode::Recursive => IpfsPinStatus::Recursive,
            PinMode::Direct => IpfsPinStatus::Direct,
        };
        let mut pinned = lock(&self.pinned);
        if pinned.get(cid) != Some(&IpfsPinStatus::Recursive) {
            pinned.insert(*cid, status);
        }
        Ok(())
    }

    async fn unpin(&self, cid: &Cid) -> Result<(), IpfsError> {
        self.unpin_calls.fetch_add(1, Ordering::SeqCst);
        lock(&self.pinned).remove(cid);
        Ok(())
    }

    async fn pin_ls_cid(&self, cid: &Cid) -> Result<IpfsPinStatus, IpfsError> {
        self.pin_ls_calls.fetch_add(1, Ordering::SeqCst);
        Ok(lock(&self.pinned).get(cid).copied().unwrap_or(IpfsPinStatus::Unpinned))
    }

    async fn pin_ls_cids(&self, cids: &[Cid]) -> Result<Vec<IpfsPinStatus>, IpfsError> {
        self.pin_ls_batches.fetch_add(1, Ordering::SeqCst);
        if let Some(error) = lock(&self.lookup_failure).clone() {
            return Err(error);
        }
        let mut statuses = Vec::with_capacity(cids.len());
        for cid in cids {
            statuses.push(self.pin_ls_cid(cid).await?);
        }
        Ok(statuses)
    }

    fn pin_ls(&self, _recursive: bool, _direct: bool) -> BoxStream<'static, Result<(Cid, IpfsPinStatus), IpfsError>> {
        Box::pin(futures::stream::empty())
    }

    async fn repo_stat(&self) -> Result<RepoStat, IpfsError> {
        Ok(RepoStat::default())
    }

    async fn repo_gc(&self) -> Result<Vec<Cid>, IpfsError> {
        Err(IpfsError::Unsupported("fake".into()))
    }

    async fn block_put(&self, _data: bytes::Bytes, _codec: u64) -> Result<Cid, IpfsError> {
        Err(IpfsError::Unsupported("fake".into()))
    }

    async fn block_get(&self, _cid: &Cid) -> Result<bytes::Bytes, IpfsError> {
        Err(IpfsError::Unsupported("fake".into()))
    }

    async fn swarm_connect(&self, _addr: &str) -> Result<(), IpfsError> {
        Ok(())
    }

    async fn swarm_peers(&self) -> Result<Vec<String>, IpfsError> {
        Ok(Vec::new())
    }

    async fn resolve(&self, _path: &str) -> Result<Cid, IpfsError> {
        Err(IpfsError::Unsupported("fake".into()))
    }

    async fn add_bytes(&self, _data: bytes::Bytes) -> Result<Cid, IpfsError> {
        Err(IpfsError::Unsupported("fake".into()))
    }

    async fn cat(&self, _cid: &Cid) -> Result<bytes::Bytes, IpfsError> {
        Err(IpfsError::Unsupported("fake".into()))
    }
}

fn config() -> TrackerConfig {
    TrackerConfig {
        self_peer: SELF.into(),
        peername: "self".into(),
        concurrent_pins: 4,
        max_pin_queue_size: 10_000,
        priority_pin_max_age: Duration::from_secs(24 * 3600),
        priority_pin_max_retries: 5,
        pin_timeout: Duration::from_millis(300),
        unpin_timeout: Duration::from_secs(5),
        ipfs_peer_id: "fake-ipfs".into(),
        ipfs_addresses: vec!["/ip4/127.0.0.1/tcp/4001".into()],
    }
}

/// A pin allocated here, committed now (so it is a priority pin).
fn pin_here(n: u32) -> Pin {
    let mut pin = Pin::new(cid(n));
    pin.options.name = format!("pin-{n}");
    pin.allocations = vec![SELF.into(), OTHER.into()];
    pin.timestamp = Timestamp::now();
    pin
}

/// A pin allocated here, committed two days ago (so it goes to the normal queue).
fn old_pin_here(n: u32) -> Pin {
    let mut pin = pin_here(n);
    pin.timestamp = Timestamp(Some(chrono::Utc::now() - chrono::Duration::hours(48)));
    pin
}

fn pin_elsewhere(n: u32) -> Pin {
    let mut pin = pin_here(n);
    pin.allocations = vec![OTHER.into()];
    pin
}

struct Harness {
    supervisor: Supervisor,
    tracker: ActorRef<TrackerMsg>,
    ipfs: Arc<FakeIpfs>,
    state: MemState,
    metrics: Arc<Metrics>,
}

impl Harness {
    /// Starts the tracker on an empty state and waits for its startup recovery to finish.
    async fn start(cfg: TrackerConfig, ipfs: Arc<FakeIpfs>) -> Self {
        Self::start_with_state(cfg, ipfs, MemState::new()).await
    }

    async fn start_with_state(cfg: TrackerConfig, ipfs: Arc<FakeIpfs>, state: MemState) -> Self {
        let supervisor = Supervisor::new("tracker-test", HEARTBEAT);
        let metrics = Arc::new(Metrics::new());
        let factory = {
            let ipfs = Arc::clone(&ipfs);
            let state = state.clone();
            let metrics = Arc::clone(&metrics);
            move || {
                let ipfs: Arc<dyn IpfsConnector> = ipfs.clone();
                let state: Arc<dyn StateStore> = Arc::new(state.clone());
                PinTrackerActor::new(cfg.clone(), ipfs, state, Arc::clone(&metrics))
            }
        };
        // A short stuck timeout proves the tracker keeps itself alive while workers idle or
        // wait on IPFS: any stuck-kill shows up as a restart, which tests assert against.
        let policy = RestartPolicy { stuck_timeout: Duration::from_secs(1), ..RestartPolicy::default() };
        let tracker = supervisor.spawn(ACTOR, 4096, policy, factory);
        let harness = Self { supervisor, tracker, ipfs, state, metrics };
        harness.wait_recovery_idle().await;
        harness
    }

    fn health(&self) -> ActorHealth {
        self.supervisor
            .snapshot()
            .into_iter()
            .find(|health| health.name == ACTOR)
            .expect("tracker is supervised")
    }

    async fn wait_recovery_idle(&self) {
        wait_until("startup recovery to finish", || {
            let observable = self.health().observable;
            observable.get("local_recovery_running") == Some(&serde_json::Value::Bool(false))
        })
        .await;
    }

    fn put(&self, pin: &Pin) {
        self.state.apply(&[StateOp::Put(pin.clone())]).expect("memory state accepts writes");
    }

    /// Commits the pin to the state, then tells the tracker, like consensus does.
    async fn add(&self, pin: &Pin) {
        self.put(pin);
        self.tracker.send(TrackerMsg::Track(pin.clone())).await.expect("tracker mailbox open");
    }

    async fn remove(&self, pin: &Pin) {
        self.state.apply(&[StateOp::Remove(pin.cid)]).expect("memory state accepts writes");
        self.tracker.send(TrackerMsg::Untrack(pin.clone())).await.expect("tracker mailbox open");
    }

    async fn status(&self, cid: Cid) -> PinInfo {
        self.tracker
            .ask_timeout(|reply| TrackerMsg::Status { cid, reply }, Duration::from_secs(5))
            .await
            .expect("status answered")
    }

    async fn wait_status(&self, cid: Cid, expected: TrackerStatus) -> PinInfo {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let info = self.status(cid).await;
            if info.info.status == expected {
                return info;
            }
            assert!(Instant::now() < deadline, "{cid} stayed {} instead of {expected}", info.info.status);
            tokio::time::sleep(POLL).await;
        }
    }

    async fn status_all(&self, filter: &str) -> Vec<PinInfo> {
        let filter = TrackerStatusFilter::parse(filter).expect("valid filter");
        let (out, mut results) = mpsc::channel(8);
        self.tracker.send(TrackerMsg::StatusAll { filter, out }).await.expect("tracker mailbox open");
        collect(&mut results).await
    }

    async fn recover_all(&self) -> Vec<PinInfo> {
        let (out, mut results) = mpsc::channel(8);
        self.tracker.send(TrackerMsg::RecoverAll { out }).await.expect("tracker mailbox open");
        collect(&mut results).await
    }

    fn assert_never_restarted(&self) {
        let health = self.health();
        assert_eq!(health.restarts, 0, "unexpected restart: {:?}", health.last_restart_reason);
    }
}

async fn collect(results: &mut mpsc::Receiver<Result<PinInfo, cluster_types::ApiError>>) -> Vec<PinInfo> {
    let mut infos = Vec::new();
    loop {
        match tokio::time::timeout(PATIENCE, results.recv()).await {
            Ok(Some(item)) => infos.push(item.expect("listing succeeds")),
            Ok(None) => return infos,
            Err(_) => panic!("listing did not finish"),
        }
    }
}

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(POLL).await;
    }
}

fn statuses(infos: &[PinInfo]) -> HashMap<Cid, TrackerStatus> {
    infos.iter().map(|info| (info.cid, info.info.status)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracked_pins_all_end_pinned() {
    let harness = Harness::start(config(), FakeIpfs::with_delay(Duration::from_millis(2))).await;
    let pins: Vec<Pin> = (0..200).map(pin_here).collect();
    for pin in &pins {
        harness.add(pin).await;
    }
    wait_until("200 pins in ipfs", || harness.ipfs.pinned_count() == 200).await;
    for pin in &pins {
        let info = harness.wait_status(pin.cid, TrackerStatus::Pinned).await;
        assert_eq!(info.peer, SELF);
        assert_eq!(info.name, pin.options.name);
        assert_eq!(info.allocations, pin.allocations);
        assert_eq!(info.created, pin.timestamp);
        assert_eq!(info.info.ipfs_peer_id, "fake-ipfs");
    }
    let all = harness.status_all("pinned").await;
    assert_eq!(all.len(), 200);
    assert!(harness.metrics.pin_add.get() >= 200);
    let rendered = harness.metrics.render();
    assert!(rendered.contains("pins_by_status{status=\"pin_queued\"} 0"), "{rendered}");
    assert!(rendered.contains("pins_queue_depth{queue=\"priority\"}"), "{rendered}");
    let observable = harness.health().observable;
    assert_eq!(observable["workers"]["pin"], 4);
    assert_eq!(observable["in_flight"], 0);
    harness.assert_never_restarted();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pin_without_progress_times_out_while_status_stays_fast() {
    let harness = Harness::start(config(), FakeIpfs::with_delay(Duration::ZERO)).await;
    let stuck = pin_here(1);
    let fine = pin_here(2);
    harness.ipfs.hang(stuck.cid);
    harness.add(&fine).await;
    harness.wait_status(fine.cid, TrackerStatus::Pinned).await;

    let tracked_at = Instant::now();
    harness.add(&stuck).await;
    // Operations keep no copy of the pin: its details come from the state.
    let pinning = harness.wait_status(stuck.cid, TrackerStatus::Pinning).await;
    assert_eq!(
        (&pinning.name, &pinning.allocations, pinning.created),
        (&stuck.options.name, &stuck.allocations, stuck.timestamp)
    );
    let asked_at = Instant::now();
    let other = harness.status(fine.cid).await;
    assert_eq!(other.info.status, TrackerStatus::Pinned);
    assert!(asked_at.elapsed() < Duration::from_millis(200), "status took {:?}", asked_at.elapsed());

    let failed = harness.wait_status(stuck.cid, TrackerStatus::PinError).await;
    assert!(tracked_at.elapsed() >= Duration::from_millis(300));
    assert_eq!(failed.info.error, "pin timed out: no progress for 300ms");
    assert_eq!(failed.info.attempt_count, 1);
    assert_eq!(failed.name, stuck.options.name);
    let listed = harness.status_all("pin_error").await;
    let listed: Vec<(Cid, &str)> = listed.iter().map(|info| (info.cid, info.name.as_str())).collect();
    assert_eq!(listed, [(stuck.cid, stuck.options.name.as_str())]);
    assert!(!harness.ipfs.holds(&stuck.cid));
    assert_eq!(harness.metrics.pin_add_errors.get(), 1);
    harness.assert_never_restarted();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priority_queue_drains_before_normal_queue() {
    let cfg = TrackerConfig { concurrent_pins: 1, ..config() };
    let harness = Harness::start(cfg, FakeIpfs::with_delay(Duration::ZERO)).await;
    let blocker = pin_here(100);
    harness.ipfs.gate(blocker.cid);
    harness.add(&blocker).await;
    harness.wait_status(blocker.cid, TrackerStatus::Pinning).await;

    let normal: Vec<Pin> = (0..5).map(old_pin_here).collect();
    let priority: Vec<Pin> = (10..15).map(pin_here).collect();
    for (old, fresh) in normal.iter().zip(&priority) {
        harness.add(old).await;
        harness.add(fresh).await;
    }
    let queued_fresh = harness.wait_status(priority[0].cid, TrackerStatus::PinQueued).await;
    assert!(queued_fresh.info.priority_pin);
    let queued_old = harness.wait_status(normal[0].cid, TrackerStatus::PinQueued).await;
    assert!(!queued_old.info.priority_pin);
    let observable = harness.health().observable;
    assert_eq!(observable["queues"]["priority"], 5);
    assert_eq!(observable["queues"]["normal"], 5);

    harness.ipfs.open_gate();
    for pin in normal.iter().chain(&priority) {
        harness.wait_status(pin.cid, TrackerStatus::Pinned).await;
    }
    let order = harness.ipfs.pin_starts();
    let position = |cid: &Cid| order.iter().position(|started| started == cid).expect("pin started");
    let last_priority = priority.iter().map(|pin| position(&pin.cid)).max().expect("five pins");
    let first_normal = normal.iter().map(|pin| position(&pin.cid)).min().expect("five pins");
    assert!(last_priority < first_normal, "pin order: {order:?}");
    harness.assert_never_restarted();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queue_fails_the_operation() {
    let cfg = TrackerConfig { concurrent_pins: 1, max_pin_queue_size: 2, ..config() };
    let harness = Harness::start(cfg, FakeIpfs::with_delay(Duration::ZERO)).await;
    let blocker = pin_here(100);
    harness.ipfs.gate(blocker.cid);
    harness.add(&blocker).await;
    harness.wait_status(blocker.cid, TrackerStatus::Pinning).await;

    let pins: Vec<Pin> = (0..4).map(old_pin_here).collect();
    for pin in &pins {
        harness.add(pin).await;
    }
    harness.wait_status(pins[0].cid, TrackerStatus::PinQueued).await;
    harness.wait_status(pins[1].cid, TrackerStatus::PinQueued).await;
    for rejected in &pins[2..] {
        let info = harness.wait_status(rejected.cid, TrackerStatus::PinError).await;
        assert_eq!(info.info.error, QUEUE_FULL_MESSAGE);
        assert_eq!(info.info.attempt_count, 0, "no ipfs attempt was made");
    }
    let size = harness
        .tracker
        .ask_timeout(|reply| TrackerMsg::PinQueueSize { reply }, Duration::from_secs(5))
        .await
        .expect("queue size answered");
    assert_eq!(size, 2);
    let rendered = harness.metrics.render();
    assert!(rendered.contains("pins_by_status{status=\"pin_error\"} 2"), "{rendered}");
    assert!(rendered.contains("pins_queue_depth{queue=\"normal\"} 2"), "{rendered}");

    harness.ipfs.open_gate();
    harness.wait_status(pins[0].cid, TrackerStatus::Pinned).await;
    harness.wait_status(pins[1].cid, TrackerStatus::Pinned).await;
    assert_eq!(harness.status(pins[2].cid).await.info.status, TrackerStatus::PinError);
    assert!(!harness.ipfs.holds(&pins[2].cid));
    harness.assert_never_restarted();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untracked_pin_ends_unpinned() {
    let harness = Harness::start(config(), FakeIpfs::with_delay(Duration::ZERO)).await;
    let pin = pin_here(1);
    harness.add(&pin).await;
    harness.wait_status(pin.cid, TrackerStatus::Pinned).await;
    harness.remove(&pin).await;
    let info = harness.wait_status(pin.cid, TrackerStatus::Unpinned).await;
    assert!(info.info.error.is_empty());
    assert!(!harness.ipfs.holds(&pin.cid));
    assert_eq!(harness.metrics.pin_rm.get(), 1);
    harness.assert_never_restarted();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_tracker_restarts_and_pins_everything_in_the_state() {
    let cfg = TrackerConfig { concurrent_pins: 2, ..config() };
    let harness = Harness::start(cfg, FakeIpfs::with_delay(Duration::from_millis(20))).await;
    let pins: Vec<Pin> = (0..200).map(pin_here).collect();
    for pin in &pins {
        harness.add(pin).await;
    }
    wait_until("a few pins done", || harness.ipfs.pinned_count() >= 10).await;
    harness.supervisor.kill(ACTOR).expect("tracker is running");
    let pinned_at_kill = harness.ipfs.pinned_count();
    assert!(pinned_at_kill < 200, "everything was pinned before the kill; the test proves nothing");

    wait_until("the tracker to restart", || harness.health().restarts == 1).await;
    wait_until("200 pins in ipfs after the restart", || harness.ipfs.pinned_count() == 200).await;
    for pin in &pins {
        harness.wait_status(pin.cid, TrackerStatus::Pinned).await;
    }
    let health = harness.health();
    assert_eq!(health.kills, 1);
    assert_eq!(health.stuck_kills, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connector_restart_mid_pin_requeues_instead_of_failing() {
    let harness = Harness::start(config(), FakeIpfs::with_delay(Duration::from_millis(5))).await;
    let pin = pin_here(1);
    harness.ipfs.fail_next_pins(pin.cid, vec![IpfsError::Closed, IpfsError::Closed, IpfsError::Closed]);
    harness.add(&pin).await;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let info = harness.status(pin.cid).await;
        assert_ne!(info.info.status, TrackerStatus::PinError, "interrupted pin reported failed: {}", info.info.error);
        if info.info.status == TrackerStatus::Pinned {
            break;
        }
        assert!(Instant::now() < deadline, "pin never completed, status {}", info.info.status);
        tokio::time::sleep(POLL).await;
    }
    assert_eq!(harness.ipfs.pin_calls_of(&pin.cid), 4);
    assert_eq!(harness.metrics.pin_add_errors.get(), 0);
    harness.assert_never_restarted();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operation_only_listing_does_not_ask_ipfs() {
    let cfg = TrackerConfig { concurrent_pins: 1, ..config() };
    let harness = Harness::start(cfg, FakeIpfs::with_delay(Duration::ZERO)).await;
    let done = pin_here(1);
    harness.add(&done).await;
    harness.wait_status(done.cid, TrackerStatus::Pinned).await;
    let blocker = pin_here(2);
    harness.ipfs.gate(blocker.cid);
    harness.add(&blocker).await;
    harness.wait_status(blocker.cid, TrackerStatus::Pinning).await;
    let queued: Vec<Pin> = (10..13).map(pin_here).collect();
    for pin in &queued {
        harness.add(pin).await;
    }
    harness.wait_status(queued[2].cid, TrackerStatus::PinQueued).await;

    let calls_before = harness.ipfs.pin_ls_calls.load(Ordering::SeqCst);
    let listed = statuses(&harness.status_all("queued,pinning,pin_error").await);
    assert_eq!(harness.ipfs.pin_ls_calls.load(Ordering::SeqCst), calls_before, "op-only listing asked ipfs");
    assert_eq!(listed.len(), 4, "{listed:?}");
    assert_eq!(listed.get(&blocker.cid), Some(&TrackerStatus::Pinning));
    for pin in &queued {
        assert_eq!(listed.get(&pin.cid), Some(&TrackerStatus::PinQueued));
    }

    // The full listing has to ask IPFS about the pin without an operation.
    let everything = statuses(&harness.status_all("").await);
    assert!(harness.ipfs.pin_ls_calls.load(Ordering::SeqCst) > calls_before);
    assert_eq!(everything.len(), 5);
    assert_eq!(everything.get(&done.cid), Some(&TrackerStatus::Pinned));
    harness.ipfs.open_gate();
    harness.assert_never_restarted();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_all_requeues_failed_and_unexpectedly_unpinned_pins() {
    let harness = Harness::start(config(), FakeIpfs::with_delay(Duration::ZERO)).await;
    let failing = pin_here(1);
    let lost = pin_here(2);
    let healthy = pin_here(3);
    harness.ipfs.fail_next_pins(failing.cid, vec![IpfsError::Backend("no providers".into())]);
    harness.add(&failing).await;
    harness.add(&healthy).await;
    let failed = harness.wait_status(failing.cid, TrackerStatus::PinError).await;
    assert_eq!(failed.info.attempt_count, 1);
    assert!(failed.info.error.contains("no providers"), "{}", failed.info.error);
    harness.wait_status(healthy.cid, TrackerStatus::Pinned).await;
    // In the state, allocated here, never tracked: what a lost Track or an external
    // `ipfs pin rm` looks like.
    harness.put(&lost);
    harness.wait_status(lost.cid, TrackerStatus::UnexpectedlyUnpinned).await;

    let recovered = statuses(&harness.recover_all().await);
    assert_eq!(recovered.len(), 2, "only re-queued items are streamed: {recovered:?}");
    assert!(recovered.contains_key(&failing.cid));
    assert!(recovered.contains_key(&lost.cid));
    assert!(recovered.values().all(|status| matches!(status, TrackerStatus::PinQueued | TrackerStatus::Pinning)));

    harness.wait_status(failing.cid, TrackerStatus::Pinned).await;
    harness.wait_status(lost.cid, TrackerStatus::Pinned).await;
    assert_eq!(harness.ipfs.pin_calls_of(&failing.cid), 2);
    assert!(harness.recover_all().await.is_empty(), "nothing left to recover");
    harness.assert_never_restarted();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_one_cid_requeues_it() {
    let harness = Harness::start(config(), FakeIpfs::with_delay(Duration::ZERO)).await;
    let pin = pin_here(1);
    harness.ipfs.fail_next_pins(pin.cid, vec![IpfsError::Timeout]);
    harness.add(&pin).await;
    harness.wait_status(pin.cid, TrackerStatus::PinError).await;
    let recovered = harness
        .tracker
        .ask_timeout(|reply| TrackerMsg::Recover { cid: pin.cid, reply }, Duration::from_secs(5))
        .await
        .expect("recover answered");
    assert!(matches!(recovered.info.status, TrackerStatus::PinQueued | TrackerStatus::Pinning));
    assert_eq!(recovered.info.attempt_count, 1, "the retry inherits the attempt count");
    harness.wait_status(pin.cid, TrackerStatus::Pinned).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_pins_are_reported_remote_and_cleaned_from_ipfs() {
    let harness = Harness::start(config(), FakeIpfs::with_delay(Duration::ZERO)).await;
    let remote = pin_elsewhere(1);
    lock(&harness.ipfs.pinned).insert(remote.cid, IpfsPinStatus::Recursive);
    harness.add(&remote).await;
    wait_until("the remote pin to leave ipfs", || !harness.ipfs.holds(&remote.cid)).await;
    assert_eq!(harness.wait_status(remote.cid, TrackerStatus::Remote).await.info.error, "");

    let mut meta = pin_here(2);
    meta.pin_type = PinType::Meta;
    harness.add(&meta).await;
    assert_eq!(harness.status(meta.cid).await.info.status, TrackerStatus::Sharded);
    assert!(!harness.ipfs.holds(&meta.cid));
    assert_eq!(harness.status(cid(999)).await.info.status, TrackerStatus::Unpinned);
    harness.assert_never_restarted();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_pins_are_not_pinned() {
    let cfg = TrackerConfig { concurrent_pins: 1, ..config() };
    let harness = Harness::start(cfg, FakeIpfs::with_delay(Duration::ZERO)).await;
    let mut expired = pin_here(1);
    expired.options.expire_at = Timestamp(Some(chrono::Utc::now() - chrono::Duration::seconds(5)));
    let fresh = pin_here(2);
    harness.add(&expired).await;
    harness.add(&fresh).await;
    harness.wait_status(fresh.cid, TrackerStatus::Pinned).await;
    // One worker, FIFO queues: had the expired pin been queued it would have started first.
    assert_eq!(harness.ipfs.pin_calls_of(&expired.cid), 0);
    assert!(harness.recover_all().await.is_empty(), "recovery must not pin expired content");
    assert_eq!(harness.ipfs.pin_calls_of(&expired.cid), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_walks_a_large_state_in_chunks() {
    let state = MemState::new();
    let ops: Vec<StateOp> = (0..2500)
        .map(|n| if n % 2 == 0 { StateOp::Put(pin_elsewhere(n)) } else { StateOp::Put(old_pin_here(n)) })
        .collect();
    state.apply(&ops).expect("memory state accepts writes");
    let harness = Harness::start_with_state(config(), FakeIpfs::with_delay(Duration::ZERO), state).await;
    wait_until("every local pin to be recovered", || harness.ipfs.pinned_count() == 1250).await;
    let calls_before = harness.ipfs.pin_ls_calls.load(Ordering::SeqCst);
    let remote = harness.status_all("remote").await;
    assert_eq!(remote.len(), 1250);
    assert_eq!(harness.ipfs.pin_ls_calls.load(Ordering::SeqCst), calls_before, "remote pins need no ipfs lookup");
    let pinned = harness.status_all("pinned").await;
    assert_eq!(pinned.len(), 1250);
    assert_eq!(harness.ipfs.pin_calls.load(Ordering::SeqCst), 1250, "each local pin pinned once");
    harness.assert_never_restarted();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_asks_ipfs_once_per_chunk() {
    let state = MemState::new();
    let ops: Vec<StateOp> = (0..2500).map(|n| StateOp::Put(old_pin_here(n))).collect();
    state.apply(&ops).expect("memory state accepts writes");
    let ipfs = FakeIpfs::with_delay(Duration::ZERO);
    for n in 0..2500 {
        lock(&ipfs.pinned).insert(cid(n), IpfsPinStatus::Recursive);
    }
    let harness = Harness::start_with_state(config(), ipfs, state).await;
    assert_eq!(harness.ipfs.pin_calls.load(Ordering::SeqCst), 0, "everything was pinned already");

    let batches_before = harness.ipfs.pin_ls_batches.load(Ordering::SeqCst);
    let calls_before = harness.ipfs.pin_ls_calls.load(Ordering::SeqCst);
    let pinned = harness.status_all("pinned").await;
    assert_eq!(pinned.len(), 2500);
    assert_eq!(
        harness.ipfs.pin_ls_batches.load(Ordering::SeqCst) - batches_before,
        3,
        "2500 pins in chunks of 1024 make three batched lookups"
    );
    assert_eq!(harness.ipfs.pin_ls_calls.load(Ordering::SeqCst) - calls_before, 2500);
    harness.assert_never_restarted();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_batch_lookup_makes_its_pins_cluster_errors() {
    let harness = Harness::start(config(), FakeIpfs::with_delay(Duration::ZERO)).await;
    let pins: Vec<Pin> = (0..3).map(pin_here).collect();
    for pin in &pins {
        harness.add(pin).await;
    }
    for pin in &pins {
        harness.wait_status(pin.cid, TrackerStatus::Pinned).await;
    }
    let remote = pin_elsewhere(10);
    harness.add(&remote).await;
    harness.wait_status(remote.cid, TrackerStatus::Remote).await;

    *lock(&harness.ipfs.lookup_failure) = Some(IpfsError::Backend("ipfs is down".into()));
    let listed = harness.status_all("").await;
    let by_cid: HashMap<Cid, &PinInfo> = listed.iter().map(|info| (info.cid, info)).collect();
    for pin in &pins {
        let info = by_cid.get(&pin.cid).expect("listed");
        assert_eq!(info.info.status, TrackerStatus::ClusterError);
        assert!(info.info.error.contains("ipfs is down"), "{}", info.info.error);
    }
    assert_eq!(by_cid.get(&remote.cid).map(|info| info.info.status), Some(TrackerStatus::Remote), "no lookup needed");
    assert_eq!(harness.status(pins[0].cid).await.info.status, TrackerStatus::ClusterError);

    *lock(&harness.ipfs.lookup_failure) = None;
    assert!(statuses(&harness.status_all("").await).values().all(|s| matches!(s, TrackerStatus::Pinned | TrackerStatus::Remote)));
    harness.assert_never_restarted();
}
