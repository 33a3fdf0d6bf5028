//! The CRDT's durable store: pins, versions (tombstones included) and bucket digests, in one
//! fjall database, every merge one atomic batch.
//!
//! Keyspaces:
//! * `pins`: CID bytes → pin [`record`](cluster_state::record) — only present pins, so the
//!   [`StateStore`] view (get, list in CID order, len) costs what the plain store costs;
//! * `clock`: bucket (2 bytes) + CID bytes → version and presence — every key ever written,
//!   tombstones included, grouped by anti-entropy bucket so a bucket is one range scan;
//! * `meta`: the layout version and the pin count.
//!
//! Bucket digests (XOR of entry fingerprints) live in memory, rebuilt by one scan of
//! `clock` at open and updated by every merge.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use cluster_state::{fjall_pins, record, Durability, PinIter, StateError, StateOp, StateStore};
use cluster_types::{Cid, Pin};
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode, Readable};
use tracing::info;

use super::clock::Hlc;
use super::entry::{self, Entry, Version, BUCKETS};
use crate::StateChange;

/// The on-disk layout version of the CRDT store.
pub const FORMAT_VERSION: u32 = 1;
const KEY_FORMAT: &[u8] = b"crdt_format_version";
const KEY_COUNT: &[u8] = b"pin_count";
/// The marker of the single-peer layout ([`cluster_state::FjallState`]).
const PLAIN_FORMAT_KEY: &[u8] = b"format_version";

/// Anti-entropy digests: one fingerprint per bucket.
pub type Digests = Vec<[u8; 16]>;

/// The CRDT store; also the cluster's [`StateStore`] in CRDT mode.
pub struct CrdtStore {
    db: Database,
    pins: Keyspace,
    clock: Keyspace,
    meta: Keyspace,
    inner: Mutex<Inner>,
    count: AtomicU64,
    author: String,
    hlc: Hlc,
    path: PathBuf,
}

struct Inner {
    digests: Digests,
}

fn clock_key(cid_bytes: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + cid_bytes.len());
    k.extend_from_slice(&entry::bucket(cid_bytes).to_be_bytes());
    k.extend_from_slice(cid_bytes);
    k
}

fn corrupt(what: impl std::fmt::Display) -> StateError {
    StateError::Corrupt(what.to_string())
}

impl CrdtStore {
    /// Opens (or creates) the store in `dir`; `author` is this peer's id, stamped on local writes.
    pub fn open(dir: &Path, author: &str) -> Result<Self, StateError> {
        let db = Database::builder(dir).open()?;
        let meta = db.keyspace("meta", KeyspaceCreateOptions::default)?;
        let pins = db.keyspace("pins", KeyspaceCreateOptions::default)?;
        let clock = db.keyspace("clock", KeyspaceCreateOptions::default)?;
        match meta.get(KEY_FORMAT)? {
            Some(v) => {
                let found = u32::from_be_bytes(v.as_ref().try_into().map_err(|_| corrupt("bad format version record"))?);
                if found != FORMAT_VERSION {
                    return Err(StateError::UnsupportedFormat { found, supported: FORMAT_VERSION });
                }
            }
            None => {
                meta.insert(KEY_FORMAT, FORMAT_VERSION.to_be_bytes())?;
                db.persist(PersistMode::SyncAll)?;
            }
        }
        // One scan rebuilds the digests, the clock high-water mark and (if missing) the count.
        let mut digests = vec![[0u8; 16]; BUCKETS as usize];
        let mut max_hlc = 0u64;
        let mut present = 0u64;
        let mut entries = 0u64;
        for guard in clock.iter() {
            let (k, v) = guard.into_inner()?;
            let (version, is_present) = entry::decode_version(&v).map_err(corrupt)?;
            if k.len() < 2 {
                return Err(corrupt("short clock key"));
            }
            let b = u16::from_be_bytes([k[0], k[1]]) as usize % BUCKETS as usize;
            entry::xor_into(&mut digests[b], &entry::fingerprint(&k[2..], &version, is_present));
            max_hlc = max_hlc.max(version.hlc);
            present += u64::from(is_present);
            entries += 1;
        }
        meta.insert(KEY_COUNT, present.to_be_bytes())?;
        info!(path = %dir.display(), pins = present, entries, "opened crdt store");
        let hlc = Hlc::default();
        hlc.observe(max_hlc);
        let store = CrdtStore {
            db,
            pins,
            clock,
            meta,
            inner: Mutex::new(Inner { digests }),
            count: AtomicU64::new(present),
            author: author.to_string(),
            hlc,
            path: dir.to_path_buf(),
        };
        store.migrate_plain_layout()?;
        Ok(store)
    }

    /// A folder written by the single-peer store (same `pins` keyspace, no clock) is
    /// migrated once: every pin gets a version from this peer, then the old marker goes.
    fn migrate_plain_layout(&self) -> Result<(), StateError> {
        if self.meta.get(PLAIN_FORMAT_KEY)?.is_none() {
            return Ok(());
        }
        let mut batch = Vec::with_capacity(1024);
        let mut migrated = 0u64;
        for guard in self.pins.iter() {
            let value = guard.value()?;
            batch.push(StateOp::Put(record::decode(&value)?));
            if batch.len() == 1024 {
                migrated += batch.len() as u64;
                self.merge(&self.local_entries(&batch))?;
                batch.clear();
            }
        }
        migrated += batch.len() as u64;
        self.merge(&self.local_entries(&batch))?;
        self.meta.remove(PLAIN_FORMAT_KEY)?;
        self.db.persist(PersistMode::SyncAll)?;
        info!(path = %self.path.display(), pins = migrated, "migrated a single-peer state to the crdt layout");
        Ok(())
    }

    /// This peer's id, stamped on local writes.
    pub fn author(&self) -> &str {
        &self.author
    }

    /// The directory of the store.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Versions local writes: a pin gets a version newer than anything seen; a removal
    /// becomes a tombstone of the version it removes (see [`entry`] for why). Removing an
    /// absent pin yields nothing.
    pub fn local_entries(&self, ops: &[StateOp]) -> Vec<Entry> {
        // Within one batch, a removal after a put of the same CID removes that put.
        let mut pending: HashMap<Vec<u8>, Option<Version>> = HashMap::new();
        let mut out = Vec::with_capacity(ops.len());
        for op in ops {
            match op {
                StateOp::Put(pin) => {
                    let version = Version { hlc: self.hlc.now(), author: self.author.clone() };
                    pending.insert(pin.cid.to_bytes(), Some(version.clone()));
                    out.push(Entry { cid: pin.cid, version, pin: Some(pin.clone()) });
                }
                StateOp::Remove(cid) => {
                    let key = cid.to_bytes();
                    let seen = match pending.get(&key) {
                        Some(v) => v.clone(),
                        None => self.current_version(&key),
                    };
                    if let Some(version) = seen {
                        pending.insert(key, None);
                        out.push(Entry { cid: *cid, version, pin: None });
                    }
                }
            }
        }
        out
    }

    /// The version of the present pin of a CID, if any.
    fn current_version(&self, cid_bytes: &[u8]) -> Option<Version> {
        let v = self.clock.get(clock_key(cid_bytes)).ok()??;
        match entry::decode_version(&v) {
            Ok((version, true)) => Some(version),
            _ => None,
        }
    }

    /// Merges entries (local or remote) in one atomic batch and returns the resulting
    /// changes of the pinset, in input order. Entries that lose are ignored.
    pub fn merge(&self, entries: &[Entry]) -> Result<Vec<StateChange>, StateError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        // Within one batch keep the winner per CID: writes to one key inside a fjall batch
        // share a sequence number, so two of them would race.
        let mut best: HashMap<Vec<u8>, &Entry> = HashMap::with_capacity(entries.len());
        let mut order: Vec<Vec<u8>> = Vec::with_capacity(entries.len());
        for e in entries {
            self.hlc.observe(e.version.hlc);
            let key = e.cid.to_bytes();
            match best.get(&key) {
                Some(cur) if !entry::wins(&e.version, e.pin.is_some(), Some((&cur.version, cur.pin.is_some()))) => {}
                Some(_) => {
                    best.insert(key, e);
                }
                None => {
                    order.push(key.clone());
                    best.insert(key, e);
                }
            }
        }
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let mut count = self.count.load(Ordering::Acquire);
        let mut batch = self.db.batch();
        let mut changes = Vec::new();
        let mut digest_updates: Vec<(usize, [u8; 16])> = Vec::new();
        for key in order {
            let e = best[&key];
            let ck = clock_key(&key);
            let current = match self.clock.get(&ck)? {
                Some(v) => Some(entry::decode_version(&v).map_err(corrupt)?),
                None => None,
            };
            if !entry::wins(&e.version, e.pin.is_some(), current.as_ref().map(|(v, p)| (v, *p))) {
                continue;
            }
            let b = entry::bucket(&key) as usize;
            if let Some((old_v, old_present)) = &current {
                digest_updates.push((b, entry::fingerprint(&key, old_v, *old_present)));
            }
            digest_updates.push((b, entry::fingerprint(&key, &e.version, e.pin.is_some())));
            let was_present = current.as_ref().is_some_and(|(_, p)| *p);
            batch.insert(&self.clock, ck, entry::encode_version(&e.version, e.pin.is_some()));
            match &e.pin {
                Some(pin) => {
                    batch.insert(&self.pins, key.clone(), record::encode(pin));
                    count += u64::from(!was_present);
                    changes.push(StateChange::Pinned(pin.clone()));
                }
                None if was_present => {
                    let old = match self.pins.get(&key)? {
                        Some(bytes) => record::decode(&bytes)?,
                        None => return Err(corrupt("clock says present but the pin is missing")),
                    };
                    batch.remove(&self.pins, key.clone());
                    count -= 1;
                    changes.push(StateChange::Unpinned(old));
                }
                None => {}
            }
        }
        if digest_updates.is_empty() {
            return Ok(changes);
        }
        batch.insert(&self.meta, KEY_COUNT, count.to_be_bytes());
        batch.commit()?;
        self.count.store(count, Ordering::Release);
        for (b, fp) in digest_updates {
            entry::xor_into(&mut inner.digests[b], &fp);
        }
        Ok(changes)
    }

    /// The current bucket digests.
    pub fn digests(&self) -> Digests {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).digests.clone()
    }

    /// A fingerprint of the whole map: equal roots mean (with overwhelming probability)
    /// equal maps, versions and tombstones included.
    pub fn root(&self) -> [u8; 16] {
        root_of(&self.digests())
    }

    /// Entries of the given buckets, in key order, strictly after `after` (a key returned as
    /// the cursor of an earlier page), at most `limit` of them. Returns the entries and the
    /// cursor of the next page (`None` when done).
    pub fn fetch(&self, buckets: &[u16], after: Option<&[u8]>, limit: usize) -> Result<(Vec<Entry>, Option<Vec<u8>>), StateError> {
        let mut sorted: Vec<u16> = buckets.iter().copied().filter(|b| *b < BUCKETS).collect();
        sorted.sort_unstable();
        sorted.dedup();
        let snapshot = self.db.snapshot();
        let mut out = Vec::new();
        for b in sorted {
            let prefix = b.to_be_bytes();
            if let Some(a) = after
                && a.len() >= 2
                && a[..2] > prefix[..]
            {
                continue;
            }
            for guard in snapshot.prefix(&self.clock, prefix) {
                let (k, v) = guard.into_inner()?;
                if after.is_some_and(|a| k.as_ref() <= a) {
                    continue;
                }
                let (version, present) = entry::decode_version(&v).map_err(corrupt)?;
                let cid_bytes = &k[2..];
                let cid = Cid::try_from(cid_bytes).map_err(|e| corrupt(format!("clock key cid: {e}")))?;
                let pin = if present {
                    match snapshot.get(&self.pins, cid_bytes)? {
                        Some(bytes) => Some(record::decode(&bytes)?),
                        None => return Err(corrupt("clock says present but the pin is missing")),
                    }
                } else {
                    None
                };
                out.push(Entry { cid, version, pin });
                if out.len() >= limit {
                    return Ok((out, Some(k.to_vec())));
                }
            }
        }
        Ok((out, None))
    }
}

/// Folds bucket digests into one root.
pub fn root_of(digests: &Digests) -> [u8; 16] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for d in digests {
        h.update(d);
    }
    let full = h.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    out
}

impl StateStore for CrdtStore {
    fn get(&self, cid: &Cid) -> Result<Option<Pin>, StateError> {
        fjall_pins::get(&self.db, &self.pins, cid)
    }

    fn has(&self, cid: &Cid) -> Result<bool, StateError> {
        fjall_pins::has(&self.db, &self.pins, cid)
    }

    /// Local writes (imports, tests): versioned now and merged like any write.
    fn apply(&self, ops: &[StateOp]) -> Result<(), StateError> {
        self.merge(&self.local_entries(ops)).map(|_| ())
    }

    fn list(&self) -> PinIter {
        fjall_pins::list(&self.pins)
    }

    fn len(&self) -> Result<u64, StateError> {
        Ok(self.count.load(Ordering::Acquire))
    }

    fn persist(&self, durability: Durability) -> Result<(), StateError> {
        fjall_pins::persist(&self.db, durability)
    }

    /// Forgets everything, tombstones included (`state cleanup`): this replica then
    /// re-learns the pinset from its peers.
    fn clear(&self) -> Result<(), StateError> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        self.pins.clear()?;
        self.clock.clear()?;
        self.meta.insert(KEY_COUNT, 0u64.to_be_bytes())?;
        self.count.store(0, Ordering::Release);
        inner.digests = vec![[0u8; 16]; BUCKETS as usize];
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let store = CrdtStore::open(dir.path(), "me").unwrap();
        cluster_state::conformance::run_all(&store);
    }

    #[test]
    fn persists_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let open = || CrdtStore::open(dir.path(), "me").map(|s| Box::new(s) as Box<dyn StateStore>);
        cluster_state::conformance::persists_across_reopen(&open);
    }

    #[test]
    fn replicas_converge_through_fetch_and_digests_agree() {
        let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = CrdtStore::open(da.path(), "A").unwrap();
        let b = CrdtStore::open(db.path(), "B").unwrap();
        let pins: Vec<StateOp> = (0..300).map(|i| StateOp::Put(cluster_state::conformance::test_pin(i))).collect();
        a.apply(&pins).unwrap();
        a.apply(&[StateOp::Remove(*pins[0].cid())]).unwrap();
        b.apply(&[StateOp::Put(cluster_state::conformance::test_pin(1000))]).unwrap();
        // Pull everything a has into b, in small pages.
        let all: Vec<u16> = (0..BUCKETS).collect();
        let mut cursor: Option<Vec<u8>> = None;
        loop {
            let (entries, next) = a.fetch(&all, cursor.as_deref(), 37).unwrap();
            b.merge(&entries).unwrap();
            match next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        let (entries, _) = b.fetch(&all, None, usize::MAX).unwrap();
        a.merge(&entries).unwrap();
        assert_eq!(a.root(), b.root());
        assert_eq!(a.len().unwrap(), 300);
        assert_eq!(b.len().unwrap(), 300);
        assert!(!b.has(pins[0].cid()).unwrap(), "the tombstone travelled");
        // Digests survive a reopen.
        let root = a.root();
        drop(a);
        let a = CrdtStore::open(da.path(), "A").unwrap();
        assert_eq!(a.root(), root);
    }
}
