//! Raft consensus (`consensus.raft`): one leader orders every write; a write is
//! acknowledged once a majority has it on stable storage and this peer has applied it.
//!
//! Built on openraft 0.9 (storage v2): the log and the pinset live in fjall ([`store`]),
//! messages travel over a [`RaftTransport`] (the cluster-RPC over libp2p in a daemon).
//!
//! * **Writes** (`log_pin`/`log_unpin`) go through a bounded queue; a committer takes
//!   whatever has queued up (up to `max_batch` operations) and commits it as *one* log
//!   entry, several entries in flight at once. A follower forwards the batch to the leader
//!   and then waits until it has applied the entry itself, so a caller reads its own write.
//!   With no leader known it waits up to `wait_for_leader_timeout`; a failed attempt is
//!   retried `commit_retries` times, `commit_retry_delay` apart.
//! * **Membership**: a new cluster starts with `init_peerset` + self as voters; a peer
//!   started with bootstrap peers asks them to add it (the leader adds it as a learner,
//!   waits for it to catch up, then makes it a voter). Removing a voter (the leader too) is
//!   a membership change; a peer that sees itself removed raises [`RaftConsensus::removed`].
//! * **Snapshots** every `snapshot_threshold` entries (and every `snapshot_interval` when
//!   anything was applied since the last one), keeping `trailing_logs` entries; a follower
//!   further behind receives the snapshot.

pub mod net_impl;
pub mod network;
pub mod store;
pub mod types;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use cluster_state::{FjallState, StateStore};
use cluster_types::Pin;
use openraft::error::{ClientWriteError, RaftError};
use openraft::{ChangeMembers, Config, Raft, RaftMetrics, ServerState, SnapshotPolicy};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tracing::{debug, info, warn};

pub use self::net_impl::NetRaftTransport;
pub use self::network::{CallKind, RaftTransport};
use self::network::{CommitAnswer, Factory, RaftAnswer, RaftMessage};
pub use self::types::{node_id, RaftOp, RaftRequest, TypeConfig};
use crate::{Consensus, ConsensusError, StateChange};

/// Tuning of [`RaftConsensus`] (from `consensus.raft`).
#[derive(Debug, Clone)]
pub struct RaftSettings {
    /// This peer's id.
    pub peer_id: String,
    /// The data folder (log, pinset, snapshots).
    pub data_folder: PathBuf,
    /// Voters of a new cluster besides this peer.
    pub init_peerset: Vec<String>,
    /// Peers to ask to add this one (joining with `--bootstrap`); empty = not joining.
    pub join: Vec<String>,
    /// Longest wait for a leader before a write fails.
    pub wait_for_leader_timeout: Duration,
    /// Timeout of one Raft message.
    pub network_timeout: Duration,
    /// Retries of a failed commit.
    pub commit_retries: u32,
    /// Pause between commit retries.
    pub commit_retry_delay: Duration,
    /// Leader heartbeat period is a tenth of this (as hashicorp raft does).
    pub heartbeat_timeout: Duration,
    /// A follower hearing no leader for this long (randomised between 0.8× and 1×) starts an
    /// election.
    pub election_timeout: Duration,
    /// Most entries per append request.
    pub max_append_entries: u64,
    /// Entries kept behind a snapshot.
    pub trailing_logs: u64,
    /// Period of the snapshot check.
    pub snapshot_interval: Duration,
    /// Entries since the last snapshot that trigger a new one.
    pub snapshot_threshold: u64,
    /// Most operations in one log entry.
    pub max_batch: usize,
    /// Capacity of the write queue.
    pub max_queue: usize,
}

impl RaftSettings {
    /// Settings with the original's defaults for `peer_id` in `data_folder`.
    pub fn new(peer_id: &str, data_folder: &Path) -> Self {
        RaftSettings {
            peer_id: peer_id.to_string(),
            data_folder: data_folder.to_path_buf(),
            init_peerset: Vec::new(),
            join: Vec::new(),
            wait_for_leader_timeout: Duration::from_secs(15),
            network_timeout: Duration::from_secs(10),
            commit_retries: 1,
            commit_retry_delay: Duration::from_millis(200),
            heartbeat_timeout: Duration::from_secs(1),
            election_timeout: Duration::from_secs(1),
            max_append_entries: 64,
            trailing_logs: 10_240,
            snapshot_interval: Duration::from_secs(120),
            snapshot_threshold: 8192,
            max_batch: 500,
            max_queue: 50_000,
        }
    }

    /// `election_timeout` is when a follower that hears from no leader starts an election.
    /// openraft 0.9 waits for the leader's lease (`election_timeout_max`) *plus* the node's
    /// random timeout (`election_timeout_min..max`) when a leader was known: with
    /// max = E/2 and min = 3E/10 that is between 0.8E and E. A candidate whose election
    /// failed retries after min..max alone.
    fn openraft_config(&self) -> Result<Config, ConsensusError> {
        let ms = |d: Duration| d.as_millis().max(1) as u64;
        let election = ms(self.election_timeout).max(10);
        let (min, max) = (election * 3 / 10, election / 2);
        // openraft ticks (and so heartbeats) every 1.5 heartbeat intervals: keep a few
        // heartbeats inside the shortest timeout.
        let heartbeat = (ms(self.heartbeat_timeout) / 10).clamp(1, min / 3);
        let config = Config {
            cluster_name: "ipfs-cluster".into(),
            heartbeat_interval: heartbeat,
            election_timeout_min: min,
            election_timeout_max: max,
            install_snapshot_timeout: ms(self.network_timeout),
            max_payload_entries: self.max_append_entries.max(1),
            replication_lag_threshold: self.trailing_logs.max(1),
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_threshold.max(1)),
            snapshot_max_chunk_size: 1 << 20,
            max_in_snapshot_log_to_keep: self.trailing_logs,
            ..Config::default()
        };
        config.validate().map_err(|e| ConsensusError::NotReady(format!("invalid raft settings: {e}")))
    }
}

struct Pending {
    op: RaftOp,
    reply: oneshot::Sender<Result<(), ConsensusError>>,
}

/// The Raft consensus component.
pub struct RaftConsensus {
    settings: RaftSettings,
    id: u64,
    raft: Raft<TypeConfig>,
    state: Arc<FjallState>,
    transport: Arc<dyn RaftTransport>,
    queue: mpsc::Sender<Pending>,
    removed: watch::Sender<bool>,
    closed: AtomicBool,
    commits: AtomicU64,
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl std::fmt::Debug for RaftConsensus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftConsensus").field("peer", &self.settings.peer_id).finish()
    }
}

/// Most batches being committed at once by one peer.
const MAX_IN_FLIGHT: usize = 8;

fn not_ready(e: impl std::fmt::Display) -> ConsensusError {
    ConsensusError::NotReady(e.to_string())
}

impl RaftConsensus {
    /// Opens the data folder and starts Raft; a new cluster (no raft state, not joining) is
    /// initialised with `init_peerset` + self.
    pub async fn start(
        settings: RaftSettings,
        transport: Arc<dyn RaftTransport>,
        changes: mpsc::Sender<StateChange>,
    ) -> Result<Arc<Self>, ConsensusError> {
        let config = Arc::new(settings.openraft_config()?);
        std::fs::create_dir_all(&settings.data_folder).map_err(not_ready)?;
        let (log, sm, state) = store::open(&settings.data_folder, changes)?;
        let id = node_id(&settings.peer_id);
        let factory = Factory { transport: Arc::clone(&transport) };
        let raft = Raft::new(id, config, factory, log, sm).await.map_err(not_ready)?;
        let initialized = raft.is_initialized().await.map_err(not_ready)?;
        if !initialized && settings.join.is_empty() {
            let mut nodes = BTreeMap::new();
            for p in settings.init_peerset.iter().chain(std::iter::once(&settings.peer_id)) {
                nodes.insert(node_id(p), types::node(p));
            }
            info!(voters = ?nodes.values().map(|n| n.addr.clone()).collect::<Vec<_>>(), "initializing a new raft cluster");
            if let Err(e) = raft.initialize(nodes).await {
                // Another voter of the same peerset may have initialised us already.
                warn!(error = %e, "raft initialize");
            }
        }
        let (queue, queue_rx) = mpsc::channel(settings.max_queue.max(1));
        let (removed, _) = watch::channel(false);
        let this = Arc::new(RaftConsensus {
            settings: settings.clone(),
            id,
            raft,
            state,
            transport,
            queue,
            removed,
            closed: AtomicBool::new(false),
            commits: AtomicU64::new(0),
            tasks: Mutex::default(),
        });
        let committer = tokio::spawn(Arc::clone(&this).commit_loop(queue_rx));
        let watcher = tokio::spawn(Self::watch_membership(Arc::downgrade(&this), this.raft.metrics()));
        let snapshotter = {
            let weak = Arc::downgrade(&this);
            let every = settings.snapshot_interval.max(Duration::from_millis(100));
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let Some(this) = weak.upgrade() else { return };
                    let m = this.raft.metrics().borrow().clone();
                    if m.last_applied.map(|l| l.index) > m.snapshot.map(|l| l.index) {
                        let _ = this.raft.trigger().snapshot().await;
                    }
                }
            })
        };
        this.tasks.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend([
            committer.abort_handle(),
            watcher.abort_handle(),
            snapshotter.abort_handle(),
        ]);
        info!(peer = %settings.peer_id, node_id = id, "raft consensus started");
        Ok(this)
    }

    /// Becomes true when this peer has been removed from the cluster: the daemon then shuts
    /// down and moves the raft data aside.
    pub fn removed(&self) -> watch::Receiver<bool> {
        self.removed.subscribe()
    }

    /// The pinset (for reads).
    pub fn fjall_state(&self) -> Arc<FjallState> {
        Arc::clone(&self.state)
    }

    /// The current Raft metrics (for tests and `/health`).
    pub fn metrics(&self) -> RaftMetrics<u64, openraft::BasicNode> {
        self.raft.metrics().borrow().clone()
    }

    /// Counters, for `/health/actors`.
    pub fn stats(&self) -> serde_json::Value {
        let m = self.metrics();
        serde_json::json!({
            "state": format!("{:?}", m.state),
            "term": m.current_term,
            "last_log_index": m.last_log_index,
            "last_applied": m.last_applied.map(|l| l.index),
            "snapshot": m.snapshot.map(|l| l.index),
            "leader": m.current_leader.and_then(|l| peer_of(&m, l)),
            "pins": self.state.len().unwrap_or(0),
            "commits_total": self.commits.load(Ordering::Relaxed),
            "queued_writes": self.settings.max_queue.max(1) - self.queue.capacity(),
        })
    }

    async fn watch_membership(weak: std::sync::Weak<Self>, mut rx: watch::Receiver<RaftMetrics<u64, openraft::BasicNode>>) {
        let mut member_seen = false;
        loop {
            let (id, done) = {
                let m = rx.borrow_and_update();
                let Some(this) = weak.upgrade() else { return };
                let mem = m.membership_config.membership();
                let is_member = mem.voter_ids().any(|v| v == this.id);
                let applied = m.membership_config.log_id().is_some() && m.membership_config.log_id().as_ref() <= m.last_applied.as_ref();
                member_seen |= is_member;
                (this.id, member_seen && !is_member && applied)
            };
            if done {
                if let Some(this) = weak.upgrade() {
                    info!(node_id = id, "this peer was removed from the raft cluster");
                    this.removed.send_replace(true);
                    // openraft 0.9 lets a leader that removed itself keep leading: stop Raft
                    // here (after a few heartbeats carry the commit) so the rest elect a
                    // new leader. Writes now fail with `Closed`.
                    tokio::time::sleep(this.settings.heartbeat_timeout / 2).await;
                    this.closed.store(true, Ordering::Release);
                    if let Err(e) = this.raft.shutdown().await {
                        warn!(error = %e, "raft shutdown after removal");
                    }
                }
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// Waits for a leader (up to `wait_for_leader_timeout`) and returns its peer id.
    async fn wait_for_leader(&self) -> Result<String, ConsensusError> {
        let mut rx = self.raft.metrics();
        let wait = async {
            loop {
                {
                    let m = rx.borrow_and_update();
                    if let Some(l) = m.current_leader
                        && let Some(p) = peer_of(&m, l)
                    {
                        return Ok(p);
                    }
                }
                if rx.changed().await.is_err() {
                    return Err(ConsensusError::Closed);
                }
            }
        };
        tokio::time::timeout(self.settings.wait_for_leader_timeout, wait)
            .await
            .map_err(|_| ConsensusError::NotReady(format!("no raft leader within {:?}", self.settings.wait_for_leader_timeout)))?
    }

    /// Waits until this peer applied `index` (bounded: the entry is committed anyway).
    async fn wait_applied(&self, index: u64) {
        let timeout = self.settings.wait_for_leader_timeout;
        let _ = self.raft.wait(Some(timeout)).applied_index_at_least(Some(index), "forwarded commit").await;
    }

    async fn commit_loop(self: Arc<Self>, mut rx: mpsc::Receiver<Pending>) {
        let limit = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        while let Some(first) = rx.recv().await {
            let Ok(permit) = Arc::clone(&limit).acquire_owned().await else { return };
            let mut batch = vec![first];
            while batch.len() < self.settings.max_batch.max(1) {
                match rx.try_recv() {
                    Ok(p) => batch.push(p),
                    Err(_) => break,
                }
            }
            let this = Arc::clone(&self);
            tokio::spawn(async move {
                let _permit = permit;
                let (ops, replies): (Vec<RaftOp>, Vec<_>) = batch.into_iter().map(|p| (p.op, p.reply)).unzip();
                let n = ops.len();
                let result = this.commit_with_retries(RaftRequest { ops }).await;
                if result.is_ok() {
                    this.commits.fetch_add(1, Ordering::Relaxed);
                }
                debug!(ops = n, ok = result.is_ok(), "raft batch committed");
                for r in replies {
                    let _ = r.send(match &result {
                        Ok(()) => Ok(()),
                        Err(e) => Err(clone_err(e)),
                    });
                }
            });
        }
    }

    async fn commit_with_retries(&self, req: RaftRequest) -> Result<(), ConsensusError> {
        let mut last = ConsensusError::NotReady("no attempt".into());
        for attempt in 0..=self.settings.commit_retries {
            if attempt > 0 {
                tokio::time::sleep(self.settings.commit_retry_delay).await;
            }
            match self.commit_once(&req).await {
                Ok(index) => {
                    self.wait_applied(index).await;
                    return Ok(());
                }
                Err(ConsensusError::Closed) => return Err(ConsensusError::Closed),
                Err(e) => {
                    debug!(attempt, error = %e, "raft commit attempt failed");
                    last = e;
                }
            }
        }
        Err(last)
    }

    /// One attempt: waits for a leader (which may be us) and commits there.
    async fn commit_once(&self, req: &RaftRequest) -> Result<u64, ConsensusError> {
        let deadline = tokio::time::Instant::now() + self.settings.wait_for_leader_timeout;
        loop {
            if self.closed.load(Ordering::Acquire) {
                return Err(ConsensusError::Closed);
            }
            let leader = self.wait_for_leader().await?;
            let answer = if leader == self.settings.peer_id {
                self.commit_local(req.clone()).await
            } else {
                let bytes = types::encode(req);
                match self.transport.call(&leader, CallKind::Commit, bytes, self.settings.network_timeout).await {
                    Ok(b) => types::decode::<CommitAnswer>(&b).map_err(ConsensusError::Network)?,
                    Err(e) => CommitAnswer::Failed(e.to_string()),
                }
            };
            match answer {
                CommitAnswer::Committed(i) => return Ok(i),
                CommitAnswer::Failed(e) => return Err(ConsensusError::Network(e)),
                CommitAnswer::NotLeader(_) if tokio::time::Instant::now() < deadline => {
                    // Leadership is moving: wait a heartbeat for the metrics to catch up.
                    tokio::time::sleep(self.settings.heartbeat_timeout / 5).await;
                }
                CommitAnswer::NotLeader(_) => return Err(ConsensusError::NotReady("raft leadership kept moving".into())),
            }
        }
    }

    async fn commit_local(&self, req: RaftRequest) -> CommitAnswer {
        match self.raft.client_write(req).await {
            Ok(resp) => CommitAnswer::Committed(resp.log_id.index),
            Err(e) => write_error(e),
        }
    }

    /// Serves a call from another peer (the cluster's RPC server hands them over here).
    pub async fn serve(&self, kind: CallKind, msg: &[u8]) -> Result<Vec<u8>, ConsensusError> {
        match kind {
            CallKind::Raft => {
                let msg: RaftMessage = types::decode(msg).map_err(ConsensusError::Network)?;
                let answer = match msg {
                    RaftMessage::AppendEntries(r) => RaftAnswer::AppendEntries(self.raft.append_entries(r).await),
                    RaftMessage::Vote(r) => RaftAnswer::Vote(self.raft.vote(r).await),
                    RaftMessage::InstallSnapshot(r) => RaftAnswer::InstallSnapshot(self.raft.install_snapshot(r).await),
                };
                Ok(types::encode(&answer))
            }
            CallKind::Commit => {
                let req: RaftRequest = types::decode(msg).map_err(ConsensusError::Network)?;
                Ok(types::encode(&self.commit_local(req).await))
            }
            CallKind::AddPeer => {
                let peer: String = types::decode(msg).map_err(ConsensusError::Network)?;
                Ok(types::encode(&self.add_peer_local(&peer).await))
            }
            CallKind::RmPeer => {
                let peer: String = types::decode(msg).map_err(ConsensusError::Network)?;
                Ok(types::encode(&self.rm_peer_local(&peer).await))
            }
        }
    }

    async fn add_peer_local(&self, peer: &str) -> CommitAnswer {
        let id = node_id(peer);
        let m = self.metrics();
        if m.membership_config.membership().voter_ids().any(|v| v == id) {
            return CommitAnswer::Committed(m.last_applied.map(|l| l.index).unwrap_or(0));
        }
        // The learner must catch up before it can vote, or it would stall commits.
        let catch_up = self.settings.wait_for_leader_timeout * 4;
        match tokio::time::timeout(catch_up, self.raft.add_learner(id, types::node(peer), true)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return write_error(e),
            Err(_) => return CommitAnswer::Failed(format!("peer {peer} did not catch up within {catch_up:?}")),
        }
        match self.raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), true).await {
            Ok(r) => {
                info!(%peer, "added raft voter");
                CommitAnswer::Committed(r.log_id.index)
            }
            Err(e) => write_error(e),
        }
    }

    /// Removes a voter in two steps: demote it to learner (so it still receives, applies and
    /// notices the configuration without itself), then, once it has the entry, drop it.
    /// A leader removing itself stops at the first step: it steps down, and the asking peer
    /// finishes the job through the next leader.
    async fn rm_peer_local(&self, peer: &str) -> CommitAnswer {
        let id = node_id(peer);
        let m = self.metrics();
        let mem = m.membership_config.membership();
        if mem.get_node(&id).is_none() {
            return CommitAnswer::Failed(format!("peer {peer} is not part of the raft cluster"));
        }
        let voters: BTreeSet<u64> = mem.voter_ids().collect();
        if voters.len() == 1 && voters.contains(&id) {
            return CommitAnswer::Failed("cannot remove the last peer of the cluster".into());
        }
        let mut index = m.membership_config.log_id().map(|l| l.index).unwrap_or(0);
        if voters.contains(&id) {
            match self.raft.change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([id])), true).await {
                Ok(r) => index = r.log_id.index,
                Err(e) => return write_error(e),
            }
            info!(%peer, "raft voter demoted to learner");
            if id == self.id {
                return CommitAnswer::Committed(index);
            }
        }
        // Give the demoted peer a moment to receive and apply its demotion.
        let hb = self.settings.heartbeat_timeout / 10;
        let _ = self
            .raft
            .wait(Some(self.settings.network_timeout))
            .metrics(
                |m| m.replication.as_ref().and_then(|r| r.get(&id).cloned().flatten()).is_some_and(|l| l.index >= index),
                "demoted peer has its demotion",
            )
            .await;
        tokio::time::sleep(hb * 4).await;
        match self.raft.change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id])), false).await {
            Ok(r) => {
                info!(%peer, "removed raft peer");
                CommitAnswer::Committed(r.log_id.index)
            }
            Err(e) => write_error(e),
        }
    }

    /// Sends a membership change to the leader (forwarding like writes do).
    async fn membership_call(&self, kind: CallKind, peer: &str) -> Result<(), ConsensusError> {
        let mut last = ConsensusError::NotReady("no attempt".into());
        for attempt in 0..=self.settings.commit_retries {
            if attempt > 0 {
                tokio::time::sleep(self.settings.commit_retry_delay).await;
            }
            let leader = self.wait_for_leader().await?;
            let answer = if leader == self.settings.peer_id {
                match kind {
                    CallKind::AddPeer => self.add_peer_local(peer).await,
                    _ => self.rm_peer_local(peer).await,
                }
            } else {
                match self.transport.call(&leader, kind, types::encode(&peer.to_string()), self.settings.wait_for_leader_timeout * 5).await {
                    Ok(b) => types::decode::<CommitAnswer>(&b).map_err(ConsensusError::Network)?,
                    Err(e) => CommitAnswer::Failed(e.to_string()),
                }
            };
            match answer {
                CommitAnswer::Committed(_) if kind == CallKind::RmPeer => return self.finish_removal(peer).await,
                CommitAnswer::Committed(_) => return Ok(()),
                CommitAnswer::NotLeader(_) => last = ConsensusError::NotReady("raft leadership moved".into()),
                CommitAnswer::Failed(e) => last = ConsensusError::Unsupported(e),
            }
        }
        Err(last)
    }

    /// A removed leader only demoted itself: once a new leader is known, asks it to drop
    /// the node.
    async fn finish_removal(&self, peer: &str) -> Result<(), ConsensusError> {
        let id = node_id(peer);
        let deadline = tokio::time::Instant::now() + self.settings.wait_for_leader_timeout;
        while tokio::time::Instant::now() < deadline {
            let m = self.metrics();
            if m.membership_config.membership().get_node(&id).is_none() {
                return Ok(());
            }
            let leader = self.wait_for_leader().await?;
            if leader != peer {
                let answer = if leader == self.settings.peer_id {
                    self.rm_peer_local(peer).await
                } else {
                    match self.transport.call(&leader, CallKind::RmPeer, types::encode(&peer.to_string()), self.settings.wait_for_leader_timeout).await {
                        Ok(b) => types::decode::<CommitAnswer>(&b).map_err(ConsensusError::Network)?,
                        Err(e) => CommitAnswer::Failed(e.to_string()),
                    }
                };
                if let CommitAnswer::Committed(_) = answer {
                    return Ok(());
                }
            }
            tokio::time::sleep(self.settings.commit_retry_delay.max(Duration::from_millis(50))).await;
        }
        // The peer is out of the voters already; only a learner entry is left behind.
        warn!(%peer, "removed peer still listed as a raft learner");
        Ok(())
    }

    /// Asks the bootstrap peers to add this one until one of them succeeds.
    async fn join(&self) -> Result<(), ConsensusError> {
        let deadline = tokio::time::Instant::now() + self.settings.wait_for_leader_timeout * 4;
        let msg = types::encode(&self.settings.peer_id);
        loop {
            for peer in &self.settings.join {
                match self.transport.call(peer, CallKind::AddPeer, msg.clone(), self.settings.wait_for_leader_timeout * 4).await {
                    Ok(b) => match types::decode::<CommitAnswer>(&b) {
                        Ok(CommitAnswer::Committed(_)) => {
                            info!(via = %peer, "joined the raft cluster");
                            return Ok(());
                        }
                        other => debug!(via = %peer, answer = ?other, "join attempt refused"),
                    },
                    Err(e) => debug!(via = %peer, error = %e, "join attempt failed"),
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ConsensusError::NotReady("could not join the raft cluster through the bootstrap peers".into()));
            }
            tokio::time::sleep(self.settings.commit_retry_delay.max(Duration::from_millis(200))).await;
        }
    }
}

fn peer_of(m: &RaftMetrics<u64, openraft::BasicNode>, id: u64) -> Option<String> {
    m.membership_config.membership().get_node(&id).map(|n| n.addr.clone())
}

fn write_error(e: RaftError<u64, ClientWriteError<u64, openraft::BasicNode>>) -> CommitAnswer {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => CommitAnswer::NotLeader(f.leader_node.map(|n| n.addr)),
        other => CommitAnswer::Failed(other.to_string()),
    }
}

fn clone_err(e: &ConsensusError) -> ConsensusError {
    match e {
        ConsensusError::Unsupported(s) => ConsensusError::Unsupported(s.clone()),
        ConsensusError::NotReady(s) => ConsensusError::NotReady(s.clone()),
        ConsensusError::Closed => ConsensusError::Closed,
        ConsensusError::BatchingQueueFull => ConsensusError::BatchingQueueFull,
        ConsensusError::QueueFull { capacity } => ConsensusError::QueueFull { capacity: *capacity },
        other => ConsensusError::Network(other.to_string()),
    }
}

#[async_trait]
impl Consensus for RaftConsensus {
    /// WaitForSync: joins first when asked to; then a leader is known, this peer is a voter
    /// and it has applied everything in its log.
    async fn ready(&self) -> Result<(), ConsensusError> {
        let me = self.id;
        if !self.settings.join.is_empty() && !self.metrics().membership_config.membership().voter_ids().any(|v| v == me) {
            self.join().await?;
        }
        let timeout = self.settings.wait_for_leader_timeout * 4;
        self.raft
            .wait(Some(timeout))
            .metrics(
                |m| {
                    m.current_leader.is_some()
                        && m.membership_config.membership().voter_ids().any(|v| v == me)
                        && m.last_applied.map(|l| l.index) >= m.last_log_index
                },
                "raft ready",
            )
            .await
            .map_err(|e| ConsensusError::NotReady(format!("raft did not become ready: {e}")))?;
        Ok(())
    }

    async fn log_pin(&self, pin: Pin) -> Result<(), ConsensusError> {
        self.submit(RaftOp::Pin(pin)).await
    }

    async fn log_unpin(&self, pin: Pin) -> Result<(), ConsensusError> {
        self.submit(RaftOp::Unpin(pin)).await
    }

    async fn peers(&self) -> Result<Vec<String>, ConsensusError> {
        let m = self.metrics();
        let mem = m.membership_config.membership();
        let mut peers: Vec<String> = mem.voter_ids().filter_map(|v| mem.get_node(&v).map(|n| n.addr.clone())).collect();
        peers.sort();
        if !peers.contains(&self.settings.peer_id) {
            peers.push(self.settings.peer_id.clone());
        }
        Ok(peers)
    }

    async fn leader(&self) -> Result<String, ConsensusError> {
        let m = self.metrics();
        m.current_leader.and_then(|l| peer_of(&m, l)).ok_or_else(|| ConsensusError::NotReady("no raft leader".into()))
    }

    async fn add_peer(&self, peer: &str) -> Result<(), ConsensusError> {
        self.membership_call(CallKind::AddPeer, peer).await
    }

    async fn rm_peer(&self, peer: &str) -> Result<(), ConsensusError> {
        self.membership_call(CallKind::RmPeer, peer).await
    }

    fn is_trusted_peer(&self, _peer: &str) -> bool {
        // As in the original, every raft peer is trusted.
        true
    }

    fn stats(&self) -> serde_json::Value {
        RaftConsensus::stats(self)
    }

    fn state(&self) -> Arc<dyn StateStore> {
        Arc::clone(&self.state) as Arc<dyn StateStore>
    }

    async fn shutdown(&self) -> Result<(), ConsensusError> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        // Leave a snapshot behind so a restart replays little.
        if self.metrics().state != ServerState::Shutdown {
            let _ = self.raft.trigger().snapshot().await;
            let _ = self.raft.wait(Some(Duration::from_secs(5))).metrics(|m| m.snapshot == m.last_applied, "shutdown snapshot").await;
        }
        if let Err(e) = self.raft.shutdown().await {
            warn!(error = %e, "raft shutdown");
        }
        for t in self.tasks.lock().unwrap_or_else(std::sync::PoisonError::into_inner).drain(..) {
            t.abort();
        }
        self.state.persist(cluster_state::Durability::Sync)?;
        Ok(())
    }
}

impl RaftConsensus {
    async fn submit(&self, op: RaftOp) -> Result<(), ConsensusError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(ConsensusError::Closed);
        }
        let (reply, rx) = oneshot::channel();
        self.queue.try_send(Pending { op, reply }).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => ConsensusError::QueueFull { capacity: self.settings.max_queue },
            mpsc::error::TrySendError::Closed(_) => ConsensusError::Closed,
        })?;
        rx.await.map_err(|_| ConsensusError::Closed)?
    }
}

/// Moves a raft data folder aside as `<folder>.old.0`, shifting older backups up and
/// keeping at most `rotate` of them (what `state cleanup` and a removed peer do).
/// Returns the backup's path, or `None` when there was nothing to move.
pub fn backup_data_folder(folder: &Path, rotate: u32) -> std::io::Result<Option<PathBuf>> {
    if !folder.exists() {
        return Ok(None);
    }
    let name = folder.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "raft".into());
    let parent = folder.parent().unwrap_or_else(|| Path::new("."));
    let backup = |i: u32| parent.join(format!("{name}.old.{i}"));
    let rotate = rotate.max(1);
    let oldest = backup(rotate - 1);
    if oldest.exists() {
        std::fs::remove_dir_all(&oldest)?;
    }
    for i in (0..rotate - 1).rev() {
        if backup(i).exists() {
            std::fs::rename(backup(i), backup(i + 1))?;
        }
    }
    std::fs::rename(folder, backup(0))?;
    Ok(Some(backup(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backups_rotate() {
        let dir = tempfile::tempdir().unwrap();
        let raft = dir.path().join("raft");
        for i in 0..5 {
            std::fs::create_dir_all(&raft).unwrap();
            std::fs::write(raft.join("mark"), i.to_string()).unwrap();
            assert_eq!(backup_data_folder(&raft, 3).unwrap(), Some(dir.path().join("raft.old.0")));
        }
        assert!(!raft.exists());
        let read = |i: u32| std::fs::read_to_string(dir.path().join(format!("raft.old.{i}/mark"))).unwrap();
        assert_eq!((read(0), read(1), read(2)), ("4".into(), "3".into(), "2".into()));
        assert!(!dir.path().join("raft.old.3").exists());
        assert_eq!(backup_data_folder(&raft, 3).unwrap(), None);
    }

    #[test]
    fn default_settings_make_a_valid_openraft_config() {
        let s = RaftSettings::new("p", Path::new("/tmp/x"));
        let c = s.openraft_config().unwrap();
        assert_eq!(c.heartbeat_interval, 100);
        assert_eq!((c.election_timeout_min, c.election_timeout_max), (300, 500));
        assert_eq!(c.max_in_snapshot_log_to_keep, 10_240);
    }
}
