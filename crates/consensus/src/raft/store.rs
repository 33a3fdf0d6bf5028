//! Raft's durable storage in a data folder (`consensus.raft.data_folder`, default
//! `<config>/raft`):
//!
//! * `log/`: a fjall database holding the log (`log` keyspace, big-endian index → encoded
//!   entry) and `meta` (format version, vote, committed id, last purged id, and the state
//!   machine's applied id and membership as of the latest snapshot). Appends and votes are
//!   fsynced before openraft is told they are durable.
//! * `state/`: the pinset, a [`FjallState`] the cluster reads through [`StateStore`].
//! * `snapshots/`: the current snapshot file (`snap-<term>-<index>.bin`) and `current.json`
//!   naming it with its metadata.
//!
//! The state machine writes pins without fsync and records its applied id only when a
//! snapshot is taken (after syncing the pins). After a crash openraft re-applies the log
//! from that id: replaying a suffix of put/remove operations in order yields the same
//! pinset, so nothing acknowledged is lost and nothing is applied twice in effect.
//!
//! A snapshot file is a magic header followed by length-prefixed pin records in CID-bytes
//! order, written from a point-in-time listing and streamed, never held in memory whole.
//! Installing a received snapshot merge-joins it with the current pinset, so the pin
//! tracker hears exactly the pins that were added, changed or removed.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use cluster_state::{record, Durability, FjallState, PinIter, StateOp, StateStore};
use cluster_types::Pin;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use openraft::storage::{LogFlushed, RaftLogStorage, RaftStateMachine};
use openraft::{
    CommittedLeaderId, Entry, EntryPayload, LogId, LogState, Membership, RaftLogReader, RaftSnapshotBuilder, Snapshot,
    SnapshotMeta, StorageError, StoredMembership, Vote,
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tracing::{debug, info};

use super::types::{self, decode, encode, io_err, read_err, RaftOp, RaftResponse, TypeConfig};
use crate::StateChange;

/// The on-disk layout version of the raft data folder.
pub const FORMAT_VERSION: u32 = 1;
const SNAPSHOT_MAGIC: &[u8] = b"ipfs-cluster-rs raft snapshot\x01";

const KEY_FORMAT: &[u8] = b"format_version";
const KEY_VOTE: &[u8] = b"vote";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_PURGED: &[u8] = b"last_purged";
const KEY_SM_APPLIED: &[u8] = b"sm_applied";
const KEY_SM_MEMBERSHIP: &[u8] = b"sm_membership";

type Sto = StorageError<u64>;
type Nid = u64;
type Node = openraft::BasicNode;

/// Opens the raft data folder: the log store, the state machine, and the pinset the
/// cluster reads.
pub fn open(dir: &Path, changes: mpsc::Sender<StateChange>) -> Result<(LogStore, StateMachine, Arc<FjallState>), crate::ConsensusError> {
    let log = LogStore::open(&dir.join("log"))?;
    let state = Arc::new(FjallState::open(&dir.join("state"))?);
    let sm = StateMachine::open(log.clone(), Arc::clone(&state), dir.join("snapshots"), changes)?;
    Ok((log, sm, state))
}

fn storage(e: impl std::fmt::Display) -> crate::ConsensusError {
    crate::ConsensusError::State(cluster_state::StateError::Corrupt(e.to_string()))
}

/// The raft log and hard state in fjall.
#[derive(Clone)]
pub struct LogStore {
    db: Database,
    log: Keyspace,
    meta: Keyspace,
}

impl LogStore {
    /// Opens (or creates) the log database in `dir`.
    pub fn open(dir: &Path) -> Result<Self, crate::ConsensusError> {
        let db = Database::builder(dir).open().map_err(cluster_state::StateError::from)?;
        let log = db.keyspace("log", KeyspaceCreateOptions::default).map_err(cluster_state::StateError::from)?;
        let meta = db.keyspace("meta", KeyspaceCreateOptions::default).map_err(cluster_state::StateError::from)?;
        match meta.get(KEY_FORMAT).map_err(cluster_state::StateError::from)? {
            Some(v) => {
                let found = u32::from_be_bytes(v.as_ref().try_into().map_err(|_| storage("bad raft format version record"))?);
                if found != FORMAT_VERSION {
                    return Err(cluster_state::StateError::UnsupportedFormat { found, supported: FORMAT_VERSION }.into());
                }
            }
            None => {
                meta.insert(KEY_FORMAT, FORMAT_VERSION.to_be_bytes()).map_err(cluster_state::StateError::from)?;
                db.persist(PersistMode::SyncAll).map_err(cluster_state::StateError::from)?;
            }
        }
        Ok(LogStore { db, log, meta })
    }

    fn get_meta<T: for<'de> Deserialize<'de>>(&self, key: &[u8]) -> Result<Option<T>, Sto> {
        match self.meta.get(key).map_err(read_err)? {
            Some(v) => decode(&v).map(Some).map_err(read_err),
            None => Ok(None),
        }
    }

    fn put_meta<T: Serialize>(&self, key: &[u8], value: &T) -> Result<(), Sto> {
        self.meta.insert(key, encode(value)).map_err(io_err)
    }

    async fn sync(&self) -> Result<(), Sto> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.persist(PersistMode::SyncAll)).await.map_err(io_err)?.map_err(io_err)
    }

    /// The state machine's applied id and membership as of its latest snapshot.
    fn sm_meta(&self) -> Result<(Option<LogId<Nid>>, StoredMembership<Nid, Node>), Sto> {
        Ok((self.get_meta(KEY_SM_APPLIED)?.flatten(), self.get_meta(KEY_SM_MEMBERSHIP)?.unwrap_or_default()))
    }

    fn set_sm_meta(&self, applied: &Option<LogId<Nid>>, membership: &StoredMembership<Nid, Node>) -> Result<(), Sto> {
        self.put_meta(KEY_SM_APPLIED, applied)?;
        self.put_meta(KEY_SM_MEMBERSHIP, membership)?;
        self.db.persist(PersistMode::SyncAll).map_err(io_err)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(&mut self, range: RB) -> Result<Vec<Entry<TypeConfig>>, Sto> {
        use std::ops::Bound;
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let mut out = Vec::new();
        for guard in self.log.range(start.to_be_bytes()..) {
            let (k, v) = guard.into_inner().map_err(read_err)?;
            let idx = u64::from_be_bytes(k.as_ref().try_into().map_err(|_| read_err("bad log key"))?);
            if !range.contains(&idx) {
                break;
            }
            out.push(decode(&v).map_err(read_err)?);
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, Sto> {
        let last_purged: Option<LogId<Nid>> = self.get_meta(KEY_PURGED)?;
        let last = match self.log.last_key_value() {
            Some(g) => {
                let v = g.value().map_err(read_err)?;
                let e: Entry<TypeConfig> = decode(&v).map_err(read_err)?;
                Some(e.log_id)
            }
            None => last_purged,
        };
        Ok(LogState { last_purged_log_id: last_purged, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<Nid>) -> Result<(), Sto> {
        self.put_meta(KEY_VOTE, vote)?;
        self.sync().await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<Nid>>, Sto> {
        self.get_meta(KEY_VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId<Nid>>) -> Result<(), Sto> {
        // Not synced: losing it only means re-learning the commit index from the leader.
        self.put_meta(KEY_COMMITTED, &committed)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<Nid>>, Sto> {
        Ok(self.get_meta::<Option<LogId<Nid>>>(KEY_COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), Sto>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut batch = self.db.batch();
        for e in entries {
            batch.insert(&self.log, e.log_id.index.to_be_bytes(), encode(&e));
        }
        batch.commit().map_err(io_err)?;
        let db = self.db.clone();
        // Acknowledge only once the entries are on stable storage: an acknowledged pin must
        // survive a crash of a majority.
        tokio::task::spawn_blocking(move || {
            let res = db.persist(PersistMode::SyncAll).map_err(std::io::Error::other);
            callback.log_io_completed(res);
        });
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<Nid>) -> Result<(), Sto> {
        let keys: Vec<_> = self.log.range(log_id.index.to_be_bytes()..).map(|g| g.key()).collect::<Result<_, _>>().map_err(io_err)?;
        let mut batch = self.db.batch();
        for k in keys {
            batch.remove(&self.log, k);
        }
        batch.commit().map_err(io_err)?;
        self.sync().await
    }

    async fn purge(&mut self, log_id: LogId<Nid>) -> Result<(), Sto> {
        // Record the purge point first: entries at or below it are never read again.
        self.put_meta(KEY_PURGED, &Some(log_id))?;
        let end = log_id.index.saturating_add(1).to_be_bytes();
        let keys: Vec<_> = self.log.range(..end).map(|g| g.key()).collect::<Result<_, _>>().map_err(io_err)?;
        let mut batch = self.db.batch();
        for k in keys {
            batch.remove(&self.log, k);
        }
        batch.commit().map_err(io_err)?;
        self.sync().await
    }
}

/// `current.json` in the snapshots folder.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CurrentSnapshot {
    format_version: u32,
    file: String,
    meta: SnapshotMeta<Nid, Node>,
}

/// The state machine: applies committed batches to the pinset and reports the changes.
pub struct StateMachine {
    log: LogStore,
    state: Arc<FjallState>,
    snap_dir: PathBuf,
    changes: mpsc::Sender<StateChange>,
    applied: Option<LogId<Nid>>,
    membership: StoredMembership<Nid, Node>,
}

impl StateMachine {
    fn open(log: LogStore, state: Arc<FjallState>, snap_dir: PathBuf, changes: mpsc::Sender<StateChange>) -> Result<Self, crate::ConsensusError> {
        std::fs::create_dir_all(&snap_dir).map_err(storage)?;
        let (applied, membership) = log.sm_meta().map_err(storage)?;
        info!(applied = ?applied, pins = state.len().unwrap_or(0), "opened raft state machine");
        Ok(StateMachine { log, state, snap_dir, changes, applied, membership })
    }

    async fn emit(&self, changes: Vec<StateChange>) {
        for c in changes {
            // A closed receiver means the peer is shutting down; the state is what matters.
            let _ = self.changes.send(c).await;
        }
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId<Nid>>, StoredMembership<Nid, Node>), Sto> {
        Ok((self.applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<RaftResponse>, Sto>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut ops = Vec::new();
        let mut changes = Vec::new();
        let mut replies = Vec::new();
        for e in entries {
            self.applied = Some(e.log_id);
            match e.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(req) => {
                    for op in req.ops {
                        match op {
                            RaftOp::Pin(p) => {
                                ops.push(StateOp::Put(p.clone()));
                                changes.push(StateChange::Pinned(p));
                            }
                            RaftOp::Unpin(p) => {
                                ops.push(StateOp::Remove(p.cid));
                                changes.push(StateChange::Unpinned(p));
                            }
                        }
                    }
                }
                EntryPayload::Membership(m) => self.membership = StoredMembership::new(Some(e.log_id), m),
            }
            replies.push(RaftResponse {});
        }
        if !ops.is_empty() {
            let state = Arc::clone(&self.state);
            tokio::task::spawn_blocking(move || state.apply(&ops)).await.map_err(io_err)?.map_err(io_err)?;
        }
        self.emit(changes).await;
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        // The listing is taken now, between two applies, so it matches `applied` exactly.
        SnapshotBuilder {
            log: self.log.clone(),
            state: Arc::clone(&self.state),
            snap_dir: self.snap_dir.clone(),
            listing: Mutex::new(Some(self.state.list())),
            applied: self.applied,
            membership: self.membership.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, Sto> {
        let path = self.snap_dir.join("incoming.tmp");
        let f = tokio::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).await.map_err(io_err)?;
        Ok(Box::new(f))
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta<Nid, Node>, snapshot: Box<tokio::fs::File>) -> Result<(), Sto> {
        let file = snapshot.into_std().await;
        let state = Arc::clone(&self.state);
        let changes = self.changes.clone();
        let (n_put, n_rm) = tokio::task::spawn_blocking(move || install_from_file(file, state.as_ref(), &changes))
            .await
            .map_err(io_err)?
            .map_err(io_err)?;
        let name = snapshot_file_name(meta);
        std::fs::rename(self.snap_dir.join("incoming.tmp"), self.snap_dir.join(&name)).map_err(io_err)?;
        write_current(&self.snap_dir, &name, meta).map_err(io_err)?;
        self.applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.log.set_sm_meta(&self.applied, &self.membership)?;
        info!(snapshot = %meta.snapshot_id, added_or_changed = n_put, removed = n_rm, "installed raft snapshot");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, Sto> {
        let Some(cur) = read_current(&self.snap_dir).map_err(read_err)? else { return Ok(None) };
        let f = tokio::fs::File::open(self.snap_dir.join(&cur.file)).await.map_err(read_err)?;
        Ok(Some(Snapshot { meta: cur.meta, snapshot: Box::new(f) }))
    }
}

/// Builds a snapshot from a listing taken between two applies.
pub struct SnapshotBuilder {
    log: LogStore,
    state: Arc<FjallState>,
    snap_dir: PathBuf,
    listing: Mutex<Option<PinIter>>,
    applied: Option<LogId<Nid>>,
    membership: StoredMembership<Nid, Node>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, Sto> {
        let listing = self.listing.lock().unwrap_or_else(PoisonError::into_inner).take().ok_or_else(|| io_err("snapshot builder used twice"))?;
        let meta = SnapshotMeta {
            last_log_id: self.applied,
            last_membership: self.membership.clone(),
            snapshot_id: format!("{}-{}", self.applied.map(|l| l.leader_id.term).unwrap_or(0), self.applied.map(|l| l.index).unwrap_or(0)),
        };
        let (dir, state, log, m) = (self.snap_dir.clone(), Arc::clone(&self.state), self.log.clone(), meta.clone());
        let path = tokio::task::spawn_blocking(move || -> Result<PathBuf, Sto> {
            let path = write_snapshot(&dir, listing, &m).map_err(io_err)?;
            // The pins up to `applied` must be durable before the log below them may go.
            state.persist(Durability::Sync).map_err(io_err)?;
            log.set_sm_meta(&m.last_log_id, &m.last_membership)?;
            Ok(path)
        })
        .await
        .map_err(io_err)??;
        debug!(snapshot = %meta.snapshot_id, "built raft snapshot");
        let f = tokio::fs::File::open(&path).await.map_err(read_err)?;
        Ok(Snapshot { meta, snapshot: Box::new(f) })
    }
}

fn snapshot_file_name(meta: &SnapshotMeta<Nid, Node>) -> String {
    format!("snap-{}.bin", meta.snapshot_id)
}

fn read_current(dir: &Path) -> std::io::Result<Option<CurrentSnapshot>> {
    match std::fs::read(dir.join("current.json")) {
        Ok(b) => {
            let cur: CurrentSnapshot = serde_json::from_slice(&b).map_err(std::io::Error::other)?;
            if cur.format_version != FORMAT_VERSION {
                return Err(std::io::Error::other(format!("unsupported snapshot format version {}", cur.format_version)));
            }
            Ok(Some(cur))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Points `current.json` at `file` (atomically), then removes every other snapshot file.
fn write_current(dir: &Path, file: &str, meta: &SnapshotMeta<Nid, Node>) -> std::io::Result<()> {
    let cur = CurrentSnapshot { format_version: FORMAT_VERSION, file: file.to_string(), meta: meta.clone() };
    let tmp = dir.join("current.json.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec(&cur).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join("current.json"))?;
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().to_string();
        if name.starts_with("snap-") && name != file {
            let _ = std::fs::remove_file(dir.join(name));
        }
    }
    Ok(())
}

/// Streams `listing` into a new snapshot file and makes it current; returns its path.
fn write_snapshot(dir: &Path, listing: PinIter, meta: &SnapshotMeta<Nid, Node>) -> std::io::Result<PathBuf> {
    let name = snapshot_file_name(meta);
    let tmp = dir.join(format!("{name}.tmp"));
    {
        let mut w = BufWriter::new(std::fs::File::create(&tmp)?);
        w.write_all(SNAPSHOT_MAGIC)?;
        for pin in listing {
            let rec = record::encode(&pin.map_err(std::io::Error::other)?);
            w.write_all(&(rec.len() as u32).to_be_bytes())?;
            w.write_all(&rec)?;
        }
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    }
    let path = dir.join(&name);
    std::fs::rename(&tmp, &path)?;
    write_current(dir, &name, meta)?;
    Ok(path)
}

/// Reads the pins of a snapshot file one at a time.
struct SnapshotReader<R: Read> {
    r: R,
}

impl<R: Read> SnapshotReader<R> {
    fn new(mut r: R) -> std::io::Result<Self> {
        let mut magic = vec![0u8; SNAPSHOT_MAGIC.len()];
        r.read_exact(&mut magic)?;
        if magic != SNAPSHOT_MAGIC {
            return Err(std::io::Error::other("not a raft snapshot of this format version"));
        }
        Ok(SnapshotReader { r })
    }

    fn next_pin(&mut self) -> std::io::Result<Option<Pin>> {
        let mut len = [0u8; 4];
        match self.r.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let mut rec = vec![0u8; u32::from_be_bytes(len) as usize];
        self.r.read_exact(&mut rec)?;
        record::decode(&rec).map(Some).map_err(std::io::Error::other)
    }
}

/// Makes `state` equal to the snapshot in `file` by a merge-join of the two CID-ordered
/// streams, emitting a change for every difference. Returns (puts, removes).
fn install_from_file(mut file: std::fs::File, state: &FjallState, changes: &mpsc::Sender<StateChange>) -> std::io::Result<(u64, u64)> {
    file.seek(SeekFrom::Start(0))?;
    let mut incoming = SnapshotReader::new(BufReader::new(file))?;
    let mut current = state.list().peekable();
    let (mut puts, mut removes) = (0u64, 0u64);
    let mut ops = Vec::with_capacity(1024);
    let mut out = Vec::with_capacity(1024);
    let flush = |ops: &mut Vec<StateOp>, out: &mut Vec<StateChange>| -> std::io::Result<()> {
        state.apply(ops).map_err(std::io::Error::other)?;
        ops.clear();
        for c in out.drain(..) {
            let _ = changes.blocking_send(c);
        }
        Ok(())
    };
    let mut next_new = incoming.next_pin()?;
    loop {
        let cur_key = match current.peek() {
            Some(Ok(p)) => Some(p.cid.to_bytes()),
            Some(Err(_)) => return Err(std::io::Error::other(current.next().and_then(Result::err).map(|e| e.to_string()).unwrap_or_default())),
            None => None,
        };
        let new_key = next_new.as_ref().map(|p| p.cid.to_bytes());
        match (cur_key, new_key) {
            (None, None) => break,
            (Some(c), n) if n.as_ref().is_none_or(|n| &c < n) => {
                let Some(Ok(old)) = current.next() else { unreachable!("peeked") };
                ops.push(StateOp::Remove(old.cid));
                out.push(StateChange::Unpinned(old));
                removes += 1;
            }
            (c, Some(n)) => {
                let same_key = c.as_ref() == Some(&n);
                let old = if same_key { current.next().and_then(Result::ok) } else { None };
                let new = next_new.take().expect("peeked");
                if old.as_ref() != Some(&new) {
                    ops.push(StateOp::Put(new.clone()));
                    out.push(StateChange::Pinned(new));
                    puts += 1;
                }
                next_new = incoming.next_pin()?;
            }
            (Some(_), None) => unreachable!("covered above"),
        }
        if ops.len() >= 1024 {
            flush(&mut ops, &mut out)?;
        }
    }
    flush(&mut ops, &mut out)?;
    state.persist(Durability::Sync).map_err(std::io::Error::other)?;
    Ok((puts, removes))
}

/// Writes a fresh raft data folder holding `pins` as a snapshot at log index 0 with
/// `peers` as voters (what `state import` does for raft). Every peer importing the same
/// file with the same peerset ends up with identical raft state. `dir` must not hold raft
/// data.
pub fn import_snapshot(dir: &Path, pins: impl Iterator<Item = Pin>, peers: &[String]) -> Result<u64, crate::ConsensusError> {
    let (tx, _rx) = mpsc::channel(1);
    let (log, sm, state) = open(dir, tx)?;
    if log.log.last_key_value().is_some() || sm.applied.is_some() || !state.is_empty()? {
        return Err(storage(format!("{} already holds raft data: clean it first", dir.display())));
    }
    let mut n = 0u64;
    let mut batch = Vec::with_capacity(1024);
    for p in pins {
        batch.push(StateOp::Put(p));
        n += 1;
        if batch.len() == 1024 {
            state.apply(&batch)?;
            batch.clear();
        }
    }
    state.apply(&batch)?;
    let log_id = LogId::new(CommittedLeaderId::new(0, 0), 0);
    let nodes: BTreeMap<Nid, Node> = peers.iter().map(|p| (types::node_id(p), types::node(p))).collect();
    let voters = nodes.keys().copied().collect();
    let membership = StoredMembership::new(Some(log_id), Membership::new(vec![voters], nodes));
    let meta = SnapshotMeta { last_log_id: Some(log_id), last_membership: membership.clone(), snapshot_id: "0-0-import".into() };
    write_snapshot(&sm.snap_dir, state.list(), &meta).map_err(storage)?;
    state.persist(Durability::Sync)?;
    log.put_meta(KEY_PURGED, &Some(log_id)).map_err(storage)?;
    log.set_sm_meta(&Some(log_id), &membership).map_err(storage)?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::testing::{StoreBuilder, Suite};

    struct Builder;

    impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Builder {
        async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), Sto> {
            let dir = tempfile::tempdir().map_err(io_err)?;
            let (tx, mut rx) = mpsc::channel(1024);
            tokio::spawn(async move { while rx.recv().await.is_some() {} });
            let (log, sm, _state) = open(dir.path(), tx).map_err(io_err)?;
            Ok((dir, log, sm))
        }
    }

    #[test]
    fn openraft_storage_suite() {
        Suite::test_all(Builder).unwrap();
    }
}
