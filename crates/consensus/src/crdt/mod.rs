//! CRDT consensus (the default): every peer holds the whole pinset as a last-writer-wins map,
//! writes are broadcast as deltas over gossipsub, and anti-entropy repairs whatever gossip
//! missed.
//!
//! * **Writes** go through a bounded batching queue (`max_queue_size`; full → the original's
//!   "batching max_queue_size reached"). A committer applies a batch when it holds
//!   `max_batch_size` writes or its first write is `max_batch_age` old, as one atomic store
//!   batch, then publishes it as one delta and acknowledges every caller. With batching
//!   disabled (either knob 0) it commits whatever is queued at once. Shutdown commits the
//!   pending batch.
//! * **Deltas** carry entries authored by the publisher only; a delta is applied only when
//!   its signed gossip source is trusted (`trusted_peers`, `*` = everyone).
//! * **Anti-entropy** (catch-up for new, returning or partitioned peers): every
//!   `rebroadcast_interval`, and when a trusted peer connects, peers compare a root digest;
//!   when roots differ the peer pulls the other's 1,024 bucket digests, then only the entries
//!   of differing buckets, in pages. A peer joining a cluster with N pins copies N entries
//!   in N/page round trips instead of replaying history; two converged peers exchange one
//!   16-byte root. Entries are pulled only from trusted peers, and entries authored by
//!   untrusted peers are dropped on the way in.
//!
//! The merge rule (which write wins) is documented in [`entry`].

mod clock;
pub mod entry;
pub mod net_impl;
pub mod store;

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use cluster_net::TrustSet;
use cluster_state::{Durability, StateOp, StateStore};
use cluster_types::Pin;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

pub use self::entry::{Entry, Version, BUCKETS};
pub use self::store::CrdtStore;
use crate::{Consensus, ConsensusError, StateChange};

/// Gossip message tags.
const TAG_DELTA: u8 = 1;
const TAG_ROOT: u8 = 2;
/// Most entries in one gossip delta or one anti-entropy page.
const PAGE: usize = 2000;

/// How peers exchange CRDT data; implemented over the cluster's libp2p host, and in memory
/// for tests.
#[async_trait]
pub trait CrdtNetwork: Send + Sync + 'static {
    /// Broadcasts `data` on the consensus topic.
    fn publish(&self, data: Vec<u8>);
    /// `peer`'s bucket digests, as served by [`CrdtConsensus::serve_digest`].
    async fn digest(&self, peer: &str) -> Result<Vec<u8>, ConsensusError>;
    /// A page of `peer`'s entries, as served by [`CrdtConsensus::serve_fetch`].
    async fn fetch(&self, peer: &str, query: Vec<u8>) -> Result<Vec<u8>, ConsensusError>;
}

/// Tuning of [`CrdtConsensus`] (from `consensus.crdt`).
#[derive(Debug, Clone)]
pub struct CrdtSettings {
    /// This peer's id.
    pub peer_id: String,
    /// Most writes per batch (0 disables batching).
    pub max_batch_size: usize,
    /// Longest wait of a batch's first write (zero disables batching).
    pub max_batch_age: Duration,
    /// Capacity of the batching queue.
    pub max_queue_size: usize,
    /// How often the root digest is announced.
    pub rebroadcast_interval: Duration,
}

#[derive(Debug, Default)]
struct Counters {
    batches: AtomicU64,
    writes: AtomicU64,
    deltas_applied: AtomicU64,
    deltas_ignored: AtomicU64,
    syncs: AtomicU64,
    synced_entries: AtomicU64,
}

enum Command {
    Write(StateOp, oneshot::Sender<Result<(), ConsensusError>>),
    Shutdown(oneshot::Sender<Result<(), ConsensusError>>),
}

/// The CRDT consensus component.
pub struct CrdtConsensus {
    settings: CrdtSettings,
    store: Arc<CrdtStore>,
    net: Arc<dyn CrdtNetwork>,
    trust: TrustSet,
    peerset: RwLock<BTreeSet<String>>,
    queue: mpsc::Sender<Command>,
    sync_tx: mpsc::Sender<String>,
    sync_pending: Arc<Mutex<HashSet<String>>>,
    changes: mpsc::Sender<StateChange>,
    counters: Arc<Counters>,
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl std::fmt::Debug for CrdtConsensus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrdtConsensus").field("settings", &self.settings).finish()
    }
}

impl CrdtConsensus {
    /// Starts the component: its committer, anti-entropy worker and announcer tasks.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with timers.
    pub fn start(
        settings: CrdtSettings,
        store: Arc<CrdtStore>,
        net: Arc<dyn CrdtNetwork>,
        trust: TrustSet,
        changes: mpsc::Sender<StateChange>,
    ) -> Arc<Self> {
        let (queue, queue_rx) = mpsc::channel(settings.max_queue_size.max(1));
        let (sync_tx, sync_rx) = mpsc::channel(1024);
        let this = Arc::new(CrdtConsensus {
            settings: settings.clone(),
            store,
            net,
            trust,
            peerset: RwLock::default(),
            queue,
            sync_tx,
            sync_pending: Arc::default(),
            changes,
            counters: Arc::default(),
            tasks: Mutex::default(),
        });
        let committer = tokio::spawn(Arc::clone(&this).commit_loop(queue_rx));
        let syncer = tokio::spawn(Arc::clone(&this).sync_loop(sync_rx));
        let announcer = {
            let weak = Arc::downgrade(&this);
            let every = settings.rebroadcast_interval.max(Duration::from_millis(100));
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                loop {
                    tick.tick().await;
                    let Some(this) = weak.upgrade() else { return };
                    this.announce();
                }
            })
        };
        this.tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend([committer.abort_handle(), syncer.abort_handle(), announcer.abort_handle()]);
        info!(peer = %settings.peer_id, pins = this.store.len().unwrap_or(0), "crdt consensus started");
        this
    }

    /// The store, for the cluster's state reads.
    pub fn store(&self) -> Arc<CrdtStore> {
        Arc::clone(&self.store)
    }

    /// Replaces the peerset (peers with a valid ping metric), maintained by the monitor.
    pub fn set_peerset(&self, peers: impl IntoIterator<Item = String>) {
        *self.peerset.write().unwrap_or_else(std::sync::PoisonError::into_inner) = peers.into_iter().collect();
    }

    fn counters_json(&self) -> serde_json::Value {
        let c = &self.counters;
        serde_json::json!({
            "pins": self.store.len().unwrap_or(0),
            "batches_total": c.batches.load(Ordering::Relaxed),
            "writes_total": c.writes.load(Ordering::Relaxed),
            "deltas_applied_total": c.deltas_applied.load(Ordering::Relaxed),
            "deltas_ignored_total": c.deltas_ignored.load(Ordering::Relaxed),
            "syncs_total": c.syncs.load(Ordering::Relaxed),
            "synced_entries_total": c.synced_entries.load(Ordering::Relaxed),
            "queued_writes": self.settings.max_queue_size.max(1) - self.queue.capacity(),
        })
    }

    fn announce(&self) {
        let mut msg = vec![TAG_ROOT];
        msg.extend_from_slice(&self.store.root());
        msg.extend_from_slice(&self.store.len().unwrap_or(0).to_be_bytes());
        self.net.publish(msg);
    }

    /// A trusted peer connected (or asked for attention): compare states with it soon.
    pub fn request_sync(&self, peer: &str) {
        if peer == self.settings.peer_id || !self.trust.is_trusted(peer) {
            return;
        }
        let fresh = self.sync_pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(peer.to_string());
        if fresh && self.sync_tx.try_send(peer.to_string()).is_err() {
            self.sync_pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(peer);
        }
    }

    /// Handles a message from the consensus gossip topic, authored by `source`.
    pub async fn handle_gossip(&self, source: &str, data: &[u8]) {
        if source == self.settings.peer_id {
            return;
        }
        let trusted = self.trust.is_trusted(source);
        match data.split_first() {
            Some((&TAG_DELTA, _)) if !trusted => {
                self.counters.deltas_ignored.fetch_add(1, Ordering::Relaxed);
                debug!(%source, "ignoring a crdt delta from an untrusted peer");
            }
            // An untrusted peer's root says nothing we would pull from it.
            Some((&TAG_ROOT, _)) if !trusted => {}
            Some((&TAG_DELTA, body)) => {
                let entries = match entry::decode_entries(body) {
                    Ok(e) => e,
                    Err(error) => {
                        warn!(%source, %error, "dropping malformed crdt delta");
                        return;
                    }
                };
                if entries.iter().any(|e| e.version.author != source) {
                    self.counters.deltas_ignored.fetch_add(1, Ordering::Relaxed);
                    warn!(%source, "dropping crdt delta carrying entries of another author");
                    return;
                }
                if self.merge(entries).await.is_ok() {
                    self.counters.deltas_applied.fetch_add(1, Ordering::Relaxed);
                }
            }
            Some((&TAG_ROOT, body)) if body.len() >= 16 => {
                if body[..16] != self.store.root() {
                    self.request_sync(source);
                }
            }
            _ => debug!(%source, "ignoring unknown crdt gossip"),
        }
    }

    /// Merges entries and relays the resulting changes to the tracker.
    async fn merge(&self, entries: Vec<Entry>) -> Result<usize, ConsensusError> {
        let store = Arc::clone(&self.store);
        let changes = tokio::task::spawn_blocking(move || store.merge(&entries))
            .await
            .map_err(|e| ConsensusError::Network(format!("merge task failed: {e}")))??;
        let n = changes.len();
        for c in changes {
            if self.changes.send(c).await.is_err() {
                return Err(ConsensusError::Closed);
            }
        }
        Ok(n)
    }

    /// Serves our digests: 1,024 × 16 bytes, then the pin count.
    pub fn serve_digest(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(BUCKETS as usize * 16 + 8);
        for d in self.store.digests() {
            out.extend_from_slice(&d);
        }
        out.extend_from_slice(&self.store.len().unwrap_or(0).to_be_bytes());
        out
    }

    /// Serves a page of entries for a query built by [`encode_fetch`].
    pub async fn serve_fetch(&self, query: &[u8]) -> Result<Vec<u8>, ConsensusError> {
        let (buckets, after, limit) = decode_fetch(query)?;
        let store = Arc::clone(&self.store);
        let (entries, next) = tokio::task::spawn_blocking(move || store.fetch(&buckets, after.as_deref(), limit.min(PAGE)))
            .await
            .map_err(|e| ConsensusError::Network(format!("fetch task failed: {e}")))??;
        let mut out = Vec::new();
        let cursor = next.unwrap_or_default();
        out.extend_from_slice(&(cursor.len() as u32).to_be_bytes());
        out.extend_from_slice(&cursor);
        out.extend_from_slice(&entry::encode_entries(&entries));
        Ok(out)
    }

    /// Pulls from `peer` every entry of the buckets where we differ.
    pub async fn sync_with(&self, peer: &str) -> Result<usize, ConsensusError> {
        let remote = self.net.digest(peer).await?;
        if remote.len() < BUCKETS as usize * 16 {
            return Err(ConsensusError::Network(format!("short digest from {peer}")));
        }
        let ours = self.store.digests();
        let differing: Vec<u16> = (0..BUCKETS)
            .filter(|b| {
                let i = *b as usize;
                remote[i * 16..(i + 1) * 16] != ours[i]
            })
            .collect();
        if differing.is_empty() {
            return Ok(0);
        }
        self.counters.syncs.fetch_add(1, Ordering::Relaxed);
        let mut cursor: Option<Vec<u8>> = None;
        let mut merged = 0usize;
        loop {
            let reply = self.net.fetch(peer, encode_fetch(&differing, cursor.as_deref(), PAGE)).await?;
            if reply.len() < 4 {
                return Err(ConsensusError::Network(format!("short fetch reply from {peer}")));
            }
            let n = u32::from_be_bytes([reply[0], reply[1], reply[2], reply[3]]) as usize;
            if reply.len() < 4 + n {
                return Err(ConsensusError::Network(format!("truncated fetch reply from {peer}")));
            }
            let next = (n > 0).then(|| reply[4..4 + n].to_vec());
            let entries: Vec<Entry> = entry::decode_entries(&reply[4 + n..])?
                .into_iter()
                .filter(|e| self.trust.is_trusted(&e.version.author))
                .collect();
            self.counters.synced_entries.fetch_add(entries.len() as u64, Ordering::Relaxed);
            merged += self.merge(entries).await?;
            match next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        debug!(%peer, buckets = differing.len(), changes = merged, "anti-entropy sync done");
        Ok(merged)
    }

    async fn sync_loop(self: Arc<Self>, mut rx: mpsc::Receiver<String>) {
        while let Some(peer) = rx.recv().await {
            self.sync_pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&peer);
            if let Err(error) = self.sync_with(&peer).await {
                debug!(%peer, %error, "anti-entropy sync failed");
            }
        }
    }

    async fn commit_loop(self: Arc<Self>, mut rx: mpsc::Receiver<Command>) {
        let batching = self.settings.max_batch_size > 0 && !self.settings.max_batch_age.is_zero();
        let max = if batching { self.settings.max_batch_size } else { 1024 };
        while let Some(first) = rx.recv().await {
            let mut writes = Vec::new();
            let mut shutdown = None;
            match first {
                Command::Write(op, done) => writes.push((op, done)),
                Command::Shutdown(done) => shutdown = Some(done),
            }
            if shutdown.is_none() {
                let deadline = tokio::time::Instant::now() + self.settings.max_batch_age;
                while writes.len() < max {
                    let next = if batching {
                        match tokio::time::timeout_at(deadline, rx.recv()).await {
                            Ok(n) => n,
                            Err(_) => break,
                        }
                    } else {
                        rx.try_recv().ok()
                    };
                    match next {
                        Some(Command::Write(op, done)) => writes.push((op, done)),
                        Some(Command::Shutdown(done)) => {
                            shutdown = Some(done);
                            break;
                        }
                        None => break,
                    }
                }
            }
            if shutdown.is_some() {
                // Commit everything already accepted before stopping.
                while let Ok(Command::Write(op, done)) = rx.try_recv() {
                    writes.push((op, done));
                }
            }
            if !writes.is_empty() {
                self.commit(writes).await;
            }
            if let Some(done) = shutdown {
                rx.close();
                let store = Arc::clone(&self.store);
                let r = tokio::task::spawn_blocking(move || store.persist(Durability::Sync))
                    .await
                    .map_err(|e| ConsensusError::Network(e.to_string()))
                    .and_then(|r| r.map_err(ConsensusError::from));
                let _ = done.send(r);
                return;
            }
        }
    }

    async fn commit(&self, writes: Vec<(StateOp, oneshot::Sender<Result<(), ConsensusError>>)>) {
        let (ops, dones): (Vec<StateOp>, Vec<_>) = writes.into_iter().unzip();
        let entries = self.store.local_entries(&ops);
        // Encoded before the merge takes the entries; published only once it succeeded.
        let deltas: Vec<Vec<u8>> = entries
            .chunks(PAGE)
            .map(|chunk| {
                let mut msg = vec![TAG_DELTA];
                msg.extend_from_slice(&entry::encode_entries(chunk));
                msg
            })
            .collect();
        let result = self.merge(entries).await;
        if result.is_ok() {
            self.counters.batches.fetch_add(1, Ordering::Relaxed);
            self.counters.writes.fetch_add(ops.len() as u64, Ordering::Relaxed);
            for msg in deltas {
                self.net.publish(msg);
            }
        }
        for done in dones {
            let _ = done.send(result.as_ref().map(|_| ()).map_err(|e| ConsensusError::Network(e.to_string())));
        }
    }

    async fn submit(&self, op: StateOp) -> Result<(), ConsensusError> {
        let (done, ack) = oneshot::channel();
        match self.queue.try_send(Command::Write(op, done)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => return Err(ConsensusError::BatchingQueueFull),
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(ConsensusError::Closed),
        }
        ack.await.unwrap_or(Err(ConsensusError::Closed))
    }
}

/// Encodes a fetch query: buckets, an optional cursor and a page size.
pub fn encode_fetch(buckets: &[u16], after: Option<&[u8]>, limit: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + buckets.len() * 2);
    out.extend_from_slice(&(buckets.len() as u32).to_be_bytes());
    for b in buckets {
        out.extend_from_slice(&b.to_be_bytes());
    }
    let after = after.unwrap_or_default();
    out.extend_from_slice(&(after.len() as u32).to_be_bytes());
    out.extend_from_slice(after);
    out.extend_from_slice(&(limit as u32).to_be_bytes());
    out
}

/// Decodes [`encode_fetch`].
pub fn decode_fetch(q: &[u8]) -> Result<(Vec<u16>, Option<Vec<u8>>, usize), ConsensusError> {
    let bad = || ConsensusError::Network("malformed fetch query".into());
    let u32_at = |i: usize| -> Result<usize, ConsensusError> {
        let b = q.get(i..i + 4).ok_or_else(bad)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let n = u32_at(0)?;
    if n > BUCKETS as usize {
        return Err(bad());
    }
    let mut i = 4;
    let mut buckets = Vec::with_capacity(n);
    for _ in 0..n {
        let b = q.get(i..i + 2).ok_or_else(bad)?;
        buckets.push(u16::from_be_bytes([b[0], b[1]]));
        i += 2;
    }
    let alen = u32_at(i)?;
    i += 4;
    let after = q.get(i..i + alen).ok_or_else(bad)?.to_vec();
    i += alen;
    let limit = u32_at(i)?.max(1);
    Ok((buckets, (!after.is_empty()).then_some(after), limit))
}

#[async_trait]
impl Consensus for CrdtConsensus {
    fn stats(&self) -> serde_json::Value {
        self.counters_json()
    }

    async fn ready(&self) -> Result<(), ConsensusError> {
        if self.queue.is_closed() { Err(ConsensusError::Closed) } else { Ok(()) }
    }

    async fn log_pin(&self, pin: Pin) -> Result<(), ConsensusError> {
        self.submit(StateOp::Put(pin)).await
    }

    async fn log_unpin(&self, pin: Pin) -> Result<(), ConsensusError> {
        self.submit(StateOp::Remove(pin.cid)).await
    }

    async fn peers(&self) -> Result<Vec<String>, ConsensusError> {
        let mut set = self.peerset.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        set.insert(self.settings.peer_id.clone());
        Ok(set.into_iter().collect())
    }

    async fn leader(&self) -> Result<String, ConsensusError> {
        Err(ConsensusError::Unsupported("crdt consensus has no leader".into()))
    }

    /// Peers join a CRDT cluster by connecting; there is nothing to agree on.
    async fn add_peer(&self, _peer: &str) -> Result<(), ConsensusError> {
        Ok(())
    }

    /// Drops the peer from the peerset until it publishes a ping metric again.
    async fn rm_peer(&self, peer: &str) -> Result<(), ConsensusError> {
        if peer == self.settings.peer_id {
            return Err(ConsensusError::Unsupported("a crdt peer cannot remove itself: shut it down instead".into()));
        }
        self.peerset.write().unwrap_or_else(std::sync::PoisonError::into_inner).remove(peer);
        Ok(())
    }

    fn is_trusted_peer(&self, peer: &str) -> bool {
        self.trust.is_trusted(peer)
    }

    fn state(&self) -> Arc<dyn StateStore> {
        Arc::clone(&self.store) as Arc<dyn StateStore>
    }

    async fn shutdown(&self) -> Result<(), ConsensusError> {
        let (done, ack) = oneshot::channel();
        let result = if self.queue.send(Command::Shutdown(done)).await.is_ok() {
            ack.await.unwrap_or(Ok(()))
        } else {
            Ok(())
        };
        for t in self.tasks.lock().unwrap_or_else(std::sync::PoisonError::into_inner).drain(..) {
            t.abort();
        }
        result
    }
}
