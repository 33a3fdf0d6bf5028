//! The embedded node's pin index: which CIDs are pinned as roots (recursive or direct), answered
//! without touching rust-ipfs's pin files.
//!
//! # Why it exists
//!
//! rust-ipfs 0.16 keeps an on-disk pin store of one file per pin
//! (`<repo>/pins/<shard>/<cid>.recursive|.direct`), so answering "how is this CID pinned" costs
//! two `stat`s on a blocking thread. Listing the status of a million cluster pins that way runs
//! at a few thousand CIDs per second. This index keeps the same answer in a fjall keyspace under
//! `<repo>/cluster-pin-index/` (key: the CID's bytes, value: one mode byte), so a batch of lookups
//! is a run of point reads under one snapshot. An in-memory node keeps it in a hash map instead:
//! its pin store is in memory too and starts empty, so there is nothing to persist or rebuild.
//!
//! Indirect pins are not indexed: rust-ipfs already keeps an in-memory reverse index of the
//! references of recursive pins, which `query_pins(.., Some(Indirect))` reads without any I/O.
//! The connector asks it only about CIDs this index does not know as roots.
//!
//! # Consistency rule
//!
//! rust-ipfs's pin store is the source of truth; the index mirrors it.
//!
//! * Every pin-store change the connector makes (pin, unpin, rolling back a cancelled pin) runs
//!   under the index's writer lock ([`PinIndex::writer`]), and the index entry is written right
//!   after the store change succeeds; after a failed change the entry is re-read from the store.
//!   Those changes run in tasks of their own, so a cancelled caller cannot leave the store changed
//!   and the index not.
//! * An orderly stop ([`PinIndex::close`]) refuses further changes, persists the index (fsync) and
//!   only then writes the `clean` marker file next to the database.
//! * A start that finds the marker, and the format version this build writes, trusts the index. It
//!   removes the marker (durably) before serving, so any later crash leaves no marker behind.
//! * A start without the marker (a crash or kill, a node dropped without stop, the first start on
//!   a repo that predates the index, a format change) empties the index and rebuilds it from
//!   rust-ipfs's `list_pins`: direct pins first, then recursive ones, so a root that has both files
//!   (an interrupted upgrade) ends up recursive, as rust-ipfs reports it. The listing is streamed
//!   into batched writes; rust-ipfs itself remembers the CIDs it has listed, so the rebuild's
//!   memory is that of rust-ipfs's listing, not a copy of the pinset.
//! * If the index cannot be read or written while running (or the rebuild fails), it is marked
//!   untrusted: lookups fall back to rust-ipfs's pin files, and the next stop writes no marker, so
//!   the next start rebuilds.
//! * Pins written behind the connector's back (through [`crate::EmbeddedIpfs::ipfs`]) are not
//!   seen until the next rebuild.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

use cid::Cid;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode, Readable};
use futures::StreamExt;
use rust_ipfs::Ipfs;
use tracing::{debug, error, info, warn};

use crate::{IpfsError, PinMode};

/// Folder of the pin index inside an on-disk repo.
pub const PIN_INDEX_DIR: &str = "cluster-pin-index";
/// File inside [`PIN_INDEX_DIR`] whose presence says the index was persisted by an orderly stop.
/// Deleting it forces a rebuild at the next start.
pub const PIN_INDEX_CLEAN_MARKER: &str = "clean";

/// The fjall database, in a folder of its own so the marker is not mixed with fjall's files.
const DB_DIR: &str = "db";
/// Layout version of the keyspaces below; a start that finds another one rebuilds.
const FORMAT_VERSION: u32 = 1;
const ROOTS_KEYSPACE: &str = "roots";
const META_KEYSPACE: &str = "meta";
const KEY_FORMAT_VERSION: &[u8] = b"format_version";
const MODE_RECURSIVE: u8 = 1;
const MODE_DIRECT: u8 = 2;
/// Entries per write batch during a rebuild.
const REBUILD_BATCH: usize = 4096;
/// Room for any CID's bytes on the stack (version, codec, multihash code and size varints plus a
/// digest of at most 64 bytes); larger encodings fall back to a heap buffer.
const KEY_BUF: usize = 96;

/// How the pin index came up when the node started; logged, and visible to tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinIndexStart {
    /// In-memory node: the index starts empty, like rust-ipfs's in-memory pin store.
    Memory,
    /// The previous node stopped in order, so the persisted index was trusted as it was.
    Clean,
    /// The index was rebuilt from rust-ipfs's pin store, writing `roots` entries.
    Rebuilt {
        /// Direct and recursive pins listed by rust-ipfs (a root with both files counts twice).
        roots: u64,
    },
    /// The rebuild failed: lookups read rust-ipfs's pin files (slow) until a later start rebuilds.
    Untrusted,
}

/// Failures of the pin index itself. They never lose pins (rust-ipfs holds those); they only
/// make the connector fall back to the slow path or refuse to start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PinIndexError {
    /// The node was stopped; the index no longer answers.
    #[error("the pin index is closed")]
    Closed,
    /// fjall failed (I/O, corruption, or another process holding the database).
    #[error("pin index storage: {0}")]
    Storage(#[from] fjall::Error),
    /// A file operation on the index folder failed.
    #[error("pin index file {}: {source}", path.display())]
    File {
        /// The file or folder.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// An entry holds a value this build never writes.
    #[error("pin index entry is corrupt: {0}")]
    Corrupt(String),
    /// rust-ipfs's pin listing failed during a rebuild.
    #[error("listing rust-ipfs pins: {0}")]
    Listing(String),
    /// rust-ipfs's pin store could not say how a CID is pinned, so its entry cannot be fixed.
    #[error("reading the rust-ipfs pin store: {0}")]
    StoreRead(String),
    /// A blocking index task died.
    #[error("pin index task failed: {0}")]
    Task(String),
}

impl From<PinIndexError> for IpfsError {
    fn from(err: PinIndexError) -> Self {
        match err {
            PinIndexError::Closed => IpfsError::Closed,
            other => IpfsError::Backend(other.to_string()),
        }
    }
}

fn file_error(path: &Path) -> impl FnOnce(std::io::Error) -> PinIndexError + '_ {
    move |source| PinIndexError::File {
        path: path.to_path_buf(),
        source,
    }
}

/// Root pins of the embedded node, mirrored from rust-ipfs's pin store (see the module docs).
pub(crate) struct PinIndex {
    backend: Backend,
    /// Serialises pin-store changes with their index updates; `true` once the index is closed.
    writer: tokio::sync::Mutex<bool>,
    /// Set when the index may have diverged from the store: lookups must not trust it.
    untrusted: AtomicBool,
    start: PinIndexStart,
}

enum Backend {
    Memory(RwLock<HashMap<Cid, PinMode>>),
    Disk {
        dir: PathBuf,
        /// `None` once closed or abandoned, which also releases fjall's lock on the folder.
        store: RwLock<Option<DiskStore>>,
    },
}

struct DiskStore {
    db: Database,
    roots: Keyspace,
}

/// Permission to change the pin store and the index together; see [`PinIndex::writer`].
pub(crate) struct IndexWriter<'a> {
    index: &'a PinIndex,
    _guard: tokio::sync::MutexGuard<'a, bool>,
}

impl IndexWriter<'_> {
    /// Records that `cid` is now pinned as `mode` (`None`: not a root any more). A failed write
    /// marks the index untrusted rather than failing the pin: the store already changed.
    pub(crate) fn set(&self, cid: &Cid, mode: Option<PinMode>) {
        if let Err(e) = self.index.write_entry(cid, mode) {
            self.index.distrust(&e);
        }
    }

    /// Gives up on the index after the store could not tell what it holds for `cid`.
    pub(crate) fn distrust(&self, why: &PinIndexError) {
        self.index.distrust(why);
    }
}

impl PinIndex {
    /// The index of an in-memory node.
    pub(crate) fn memory() -> PinIndex {
        PinIndex {
            backend: Backend::Memory(RwLock::new(HashMap::new())),
            writer: tokio::sync::Mutex::new(false),
            untrusted: AtomicBool::new(false),
            start: PinIndexStart::Memory,
        }
    }

    /// Opens the index of the on-disk repo at `repo`, rebuilding it from `ipfs`'s pin store unless
    /// the previous node stopped in order. `wait` bounds how long a database still held by a
    /// previous node of this process is waited for. A failed rebuild leaves the index untrusted
    /// (the node still works, slowly); only a database that cannot be opened at all is an error.
    pub(crate) async fn open(
        repo: &Path,
        ipfs: &Ipfs,
        wait: Duration,
    ) -> Result<PinIndex, PinIndexError> {
        let dir = repo.join(PIN_INDEX_DIR);
        let opened = {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || open_store(&dir, wait))
                .await
                .map_err(|e| PinIndexError::Task(e.to_string()))??
        };
        let (store, start) = match opened {
            (store, None) => {
                info!(dir = %dir.display(), "pin index trusted after a clean stop");
                (store, PinIndexStart::Clean)
            }
            (store, Some(reason)) => {
                info!(dir = %dir.display(), %reason, "rebuilding the pin index from the ipfs pin store");
                let started = Instant::now();
                match rebuild(&store, ipfs).await {
                    Ok(roots) => {
                        info!(
                            dir = %dir.display(),
                            roots,
                            seconds = started.elapsed().as_secs_f64(),
                            "pin index rebuilt"
                        );
                        (store, PinIndexStart::Rebuilt { roots })
                    }
                    Err(e) => {
                        error!(dir = %dir.display(), error = %e, "pin index rebuild failed; pin lookups will read the pin files");
                        (store, PinIndexStart::Untrusted)
                    }
                }
            }
        };
        Ok(PinIndex {
            backend: Backend::Disk {
                dir,
                store: RwLock::new(Some(store)),
            },
            writer: tokio::sync::Mutex::new(false),
            untrusted: AtomicBool::new(start == PinIndexStart::Untrusted),
            start,
        })
    }

    /// How the index came up.
    pub(crate) fn start(&self) -> PinIndexStart {
        self.start
    }

    /// False once the index may have diverged from the pin store.
    pub(crate) fn is_trusted(&self) -> bool {
        !self.untrusted.load(Ordering::Acquire)
    }

    /// Marks the index untrusted (logged once): lookups fall back to the pin files, and the next
    /// stop writes no clean marker, so the next start rebuilds.
    pub(crate) fn distrust(&self, why: &PinIndexError) {
        if !self.untrusted.swap(true, Ordering::AcqRel) {
            error!(error = %why, "pin index no longer trusted; pin lookups will read the pin files until the next restart");
        }
    }

    /// The root mode of each CID, in order (`None`: not pinned as a root). Blocking for an
    /// on-disk index: one snapshot, one point read per CID.
    pub(crate) fn roots(&self, cids: &[Cid]) -> Result<Vec<Option<PinMode>>, PinIndexError> {
        match &self.backend {
            Backend::Memory(map) => {
                let map = map.read().unwrap_or_else(PoisonError::into_inner);
                Ok(cids.iter().map(|cid| map.get(cid).copied()).collect())
            }
            Backend::Disk { store, .. } => {
                let guard = store.read().unwrap_or_else(PoisonError::into_inner);
                let store = guard.as_ref().ok_or(PinIndexError::Closed)?;
                let snapshot = store.db.snapshot();
                let mut buf = [0u8; KEY_BUF];
                cids.iter()
                    .map(|cid| {
                        let value = with_key(cid, &mut buf, |key| snapshot.get(&store.roots, key))?;
                        value.map(|v| decode_mode(cid, &v)).transpose()
                    })
                    .collect()
            }
        }
    }

    /// Waits for the right to change the pin store; `None` once the index is closed, in which
    /// case nothing must be changed (the index was persisted without that change).
    pub(crate) async fn writer(&self) -> Option<IndexWriter<'_>> {
        let guard = self.writer.lock().await;
        if *guard {
            return None;
        }
        Some(IndexWriter {
            index: self,
            _guard: guard,
        })
    }

    fn write_entry(&self, cid: &Cid, mode: Option<PinMode>) -> Result<(), PinIndexError> {
        match &self.backend {
            Backend::Memory(map) => {
                let mut map = map.write().unwrap_or_else(PoisonError::into_inner);
                match mode {
                    Some(mode) => map.insert(*cid, mode),
                    None => map.remove(cid),
                };
                Ok(())
            }
            Backend::Disk { store, .. } => {
                let guard = store.read().unwrap_or_else(PoisonError::into_inner);
                let Some(store) = guard.as_ref() else {
                    // abandoned (dropped without stop): no marker will be written, the next start
                    // rebuilds from the store, which has this change
                    debug!(%cid, "pin index abandoned, change left to the next rebuild");
                    return Ok(());
                };
                let key = cid.to_bytes();
                match mode {
                    Some(mode) => store.roots.insert(key, [encode_mode(mode)])?,
                    None => store.roots.remove(key)?,
                }
                Ok(())
            }
        }
    }

    /// Orderly stop: refuses further changes (waiting for the one in progress), persists the index
    /// and writes the clean marker if the index is still trusted, then releases the database.
    /// Idempotent.
    pub(crate) async fn close(&self) {
        let mut closed = self.writer.lock().await;
        if *closed {
            return;
        }
        *closed = true;
        let Backend::Disk { dir, store } = &self.backend else {
            return;
        };
        let taken = store.write().unwrap_or_else(PoisonError::into_inner).take();
        let Some(taken) = taken else {
            return;
        };
        let trusted = self.is_trusted();
        let dir = dir.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            taken.db.persist(PersistMode::SyncAll)?;
            drop(taken);
            if trusted {
                write_marker(&dir)?;
            }
            Ok::<_, PinIndexError>(dir)
        })
        .await;
        match outcome {
            Ok(Ok(dir)) if trusted => {
                info!(dir = %dir.display(), "pin index persisted, marked clean")
            }
            Ok(Ok(dir)) => {
                warn!(dir = %dir.display(), "pin index persisted untrusted; the next start rebuilds it")
            }
            Ok(Err(e)) => {
                warn!(error = %e, "cannot mark the pin index clean; the next start rebuilds it")
            }
            Err(e) => warn!(error = %e, "pin index close task failed; the next start rebuilds it"),
        }
    }

    /// Unclean release (the node was dropped without stop): lets go of the database without
    /// writing the marker, so the next start rebuilds.
    pub(crate) fn abandon(&self) {
        if let Backend::Disk { store, .. } = &self.backend {
            let taken = store.write().unwrap_or_else(PoisonError::into_inner).take();
            if taken.is_some() {
                debug!("pin index released without a clean marker");
            }
        }
    }
}

/// Opens the database at `<dir>/db`, consuming the clean marker. Returns the store and, unless the
/// index can be trusted, why it must be rebuilt (the store is then already emptied).
fn open_store(dir: &Path, wait: Duration) -> Result<(DiskStore, Option<String>), PinIndexError> {
    std::fs::create_dir_all(dir).map_err(file_error(dir))?;
    // The marker goes first and durably: from here on, a crash means "rebuild".
    let marker = dir.join(PIN_INDEX_CLEAN_MARKER);
    let was_clean = match std::fs::remove_file(&marker) {
        Ok(()) => {
            sync_dir(dir)?;
            true
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(file_error(&marker)(e)),
    };

    let db_dir = dir.join(DB_DIR);
    let (db, mut reason) = match open_db(&db_dir, wait) {
        Ok(db) => (db, None),
        Err(PinIndexError::Storage(fjall::Error::Locked)) => {
            return Err(PinIndexError::Storage(fjall::Error::Locked));
        }
        Err(e) => {
            // derived data: an unreadable database is thrown away and rebuilt
            warn!(dir = %db_dir.display(), error = %e, "pin index unreadable, recreating it");
            std::fs::remove_dir_all(&db_dir).map_err(file_error(&db_dir))?;
            (
                open_db(&db_dir, wait)?,
                Some(format!("the index could not be opened: {e}")),
            )
        }
    };
    let roots = db.keyspace(ROOTS_KEYSPACE, KeyspaceCreateOptions::default)?;
    let meta = db.keyspace(META_KEYSPACE, KeyspaceCreateOptions::default)?;

    let version = match meta.get(KEY_FORMAT_VERSION)? {
        Some(v) => <[u8; 4]>::try_from(v.as_ref()).ok().map(u32::from_be_bytes),
        None => None,
    };
    if reason.is_none() {
        reason = match (was_clean, version) {
            (true, Some(FORMAT_VERSION)) => None,
            (false, _) => {
                Some("no clean marker (crash, drop without stop, or first start)".to_string())
            }
            (true, found) => Some(format!(
                "format version {found:?}, this build uses {FORMAT_VERSION}"
            )),
        };
    }
    if reason.is_some() {
        roots.clear()?;
        meta.insert(KEY_FORMAT_VERSION, FORMAT_VERSION.to_be_bytes())?;
    }
    Ok((DiskStore { db, roots }, reason))
}

/// Opens fjall, waiting up to `wait` while another handle in this process still holds it (a node
/// dropped without stop releases it from a background task).
fn open_db(path: &Path, wait: Duration) -> Result<Database, PinIndexError> {
    let deadline = Instant::now() + wait;
    loop {
        match Database::builder(path).open() {
            Ok(db) => return Ok(db),
            Err(fjall::Error::Locked) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(25));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Refills an emptied index from rust-ipfs's pin store; returns the number of entries written.
async fn rebuild(store: &DiskStore, ipfs: &Ipfs) -> Result<u64, PinIndexError> {
    let mut written = 0u64;
    // direct first: a root with both files is recursive, and the later write wins
    for (kind, mode) in [
        (rust_ipfs::PinMode::Direct, MODE_DIRECT),
        (rust_ipfs::PinMode::Recursive, MODE_RECURSIVE),
    ] {
        let mut listing = ipfs.list_pins(Some(kind)).await;
        let mut batch = store.db.batch();
        while let Some(item) = listing.next().await {
            let (cid, _) = item.map_err(|e| PinIndexError::Listing(format!("{e:#}")))?;
            batch.insert(&store.roots, cid.to_bytes(), [mode]);
            written += 1;
            if batch.len() >= REBUILD_BATCH {
                std::mem::replace(&mut batch, store.db.batch()).commit()?;
            }
        }
        batch.commit()?;
    }
    store.db.persist(PersistMode::Buffer)?;
    Ok(written)
}

fn write_marker(dir: &Path) -> Result<(), PinIndexError> {
    let marker = dir.join(PIN_INDEX_CLEAN_MARKER);
    let mut file = std::fs::File::create(&marker).map_err(file_error(&marker))?;
    file.write_all(format!("{FORMAT_VERSION}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(file_error(&marker))?;
    sync_dir(dir)
}

/// Makes a file creation or removal in `dir` durable (no-op where directories cannot be synced).
fn sync_dir(dir: &Path) -> Result<(), PinIndexError> {
    match std::fs::File::open(dir) {
        Ok(handle) => {
            let _ = handle.sync_all();
            Ok(())
        }
        Err(e) => Err(file_error(dir)(e)),
    }
}

fn encode_mode(mode: PinMode) -> u8 {
    match mode {
        PinMode::Recursive => MODE_RECURSIVE,
        PinMode::Direct => MODE_DIRECT,
    }
}

fn decode_mode(cid: &Cid, value: &[u8]) -> Result<PinMode, PinIndexError> {
    match value {
        [MODE_RECURSIVE] => Ok(PinMode::Recursive),
        [MODE_DIRECT] => Ok(PinMode::Direct),
        other => Err(PinIndexError::Corrupt(format!("{cid} maps to {other:?}"))),
    }
}

/// Runs `read` with the CID's bytes, encoded on the stack when they fit.
fn with_key<T>(
    cid: &Cid,
    buf: &mut [u8; KEY_BUF],
    read: impl FnOnce(&[u8]) -> Result<T, fjall::Error>,
) -> Result<T, PinIndexError> {
    let len = cid.encoded_len();
    if len <= KEY_BUF
        && let Ok(written) = cid.write_bytes(&mut buf[..len])
    {
        return Ok(read(&buf[..written])?);
    }
    Ok(read(&cid.to_bytes())?)
}
