//! The durable pinset, in a fjall database.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use cluster_types::{Cid, Pin};
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use tracing::{debug, info, warn};

use crate::{Durability, PinIter, StateError, StateOp, StateStore, fjall_pins, record};

/// The on-disk layout version this build writes and reads (keyspaces, keys, meta entries).
/// Independent from the record version: records carry their own.
pub const FORMAT_VERSION: u32 = 1;

const PINS_KEYSPACE: &str = "pins";
const META_KEYSPACE: &str = "meta";
const KEY_FORMAT_VERSION: &[u8] = b"format_version";
/// The pin count, rewritten in every batch so `len` is O(1) and survives restarts.
const KEY_PIN_COUNT: &[u8] = b"pin_count";

/// The pinset stored in fjall: keyspace `pins` maps CID bytes to a [`record`].
///
/// Writes are serialised by an internal lock so that the pin counter (kept in the `meta`
/// keyspace, inside the same atomic batch as the pins) stays exact. Every committed batch
/// is already handed to the OS (fjall's default), so it survives a process kill;
/// [`Durability::Sync`] adds the fsync that makes it survive a power loss.
pub struct FjallState {
    db: Database,
    pins: Keyspace,
    meta: Keyspace,
    /// Serialises writers; held across "read existence, commit, update counter".
    write_lock: Mutex<()>,
    count: AtomicU64,
    path: PathBuf,
}

impl std::fmt::Debug for FjallState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FjallState")
            .field("path", &self.path)
            .field("pins", &self.count.load(Ordering::Relaxed))
            .finish()
    }
}

impl FjallState {
    /// Opens (or creates) the state in `dir`.
    ///
    /// Fails with [`StateError::UnsupportedFormat`] when the directory was written by a
    /// newer layout, and with a storage error when another process holds it open.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        let db = Database::builder(dir).open()?;
        let meta = db.keyspace(META_KEYSPACE, KeyspaceCreateOptions::default)?;
        let pins = db.keyspace(PINS_KEYSPACE, KeyspaceCreateOptions::default)?;

        match meta.get(KEY_FORMAT_VERSION)? {
            Some(v) => {
                let found = u32::from_be_bytes(
                    v.as_ref()
                        .try_into()
                        .map_err(|_| StateError::Corrupt(format!("format_version has {} bytes, want 4", v.len())))?,
                );
                if found != FORMAT_VERSION {
                    // There is no older layout to migrate from yet; version 0 never existed.
                    return Err(StateError::UnsupportedFormat { found, supported: FORMAT_VERSION });
                }
            }
            None => {
                if !pins.is_empty()? {
                    return Err(StateError::Corrupt("pins keyspace exists without a format_version".into()));
                }
                meta.insert(KEY_FORMAT_VERSION, FORMAT_VERSION.to_be_bytes())?;
                db.persist(PersistMode::SyncAll)?;
                info!(path = %dir.display(), format_version = FORMAT_VERSION, "created state store");
            }
        }

        let count = match meta.get(KEY_PIN_COUNT)? {
            Some(v) => u64::from_be_bytes(
                v.as_ref()
                    .try_into()
                    .map_err(|_| StateError::Corrupt(format!("pin_count has {} bytes, want 8", v.len())))?,
            ),
            None => {
                // Missing after an interrupted `clear` (it removes the counter first) or on
                // a fresh store: count once and write it back.
                let mut n = 0u64;
                for guard in pins.iter() {
                    guard.key()?;
                    n += 1;
                }
                meta.insert(KEY_PIN_COUNT, n.to_be_bytes())?;
                if n > 0 {
                    warn!(path = %dir.display(), pins = n, "pin counter was missing: recounted");
                }
                n
            }
        };
        debug!(path = %dir.display(), pins = count, "opened state store");

        Ok(FjallState {
            db,
            pins,
            meta,
            write_lock: Mutex::new(()),
            count: AtomicU64::new(count),
            path: dir.to_path_buf(),
        })
    }

    /// The directory the state lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl StateStore for FjallState {
    fn get(&self, cid: &Cid) -> Result<Option<Pin>, StateError> {
        fjall_pins::get(&self.db, &self.pins, cid)
    }

    fn has(&self, cid: &Cid) -> Result<bool, StateError> {
        fjall_pins::has(&self.db, &self.pins, cid)
    }

    fn apply(&self, ops: &[StateOp]) -> Result<(), StateError> {
        if ops.is_empty() {
            return Ok(());
        }
        // Collapse to the last op per CID: writes to one key inside a fjall batch share a
        // sequence number, so their relative order would otherwise be undefined.
        let mut last: HashMap<Vec<u8>, Option<&Pin>> = HashMap::with_capacity(ops.len());
        for op in ops {
            match op {
                StateOp::Put(pin) => last.insert(pin.cid.to_bytes(), Some(pin)),
                StateOp::Remove(cid) => last.insert(cid.to_bytes(), None),
            };
        }

        let _writer = self.write_lock.lock().unwrap_or_else(PoisonError::into_inner);
        let mut count = self.count.load(Ordering::Acquire);
        let mut batch = self.db.batch();
        for (key, op) in last {
            // Reading at the newest sequence number is right here: we hold the write lock,
            // so no batch is in flight.
            let existed = self.pins.contains_key(&key)?;
            match op {
                Some(pin) => {
                    batch.insert(&self.pins, key, record::encode(pin));
                    count += u64::from(!existed);
                }
                None if existed => {
                    batch.remove(&self.pins, key);
                    count -= 1;
                }
                None => {}
            }
        }
        batch.insert(&self.meta, KEY_PIN_COUNT, count.to_be_bytes());
        batch.commit()?;
        self.count.store(count, Ordering::Release);
        Ok(())
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

    fn clear(&self) -> Result<(), StateError> {
        let _writer = self.write_lock.lock().unwrap_or_else(PoisonError::into_inner);
        // Drop the counter first: if we die between the two steps, `open` recounts.
        self.meta.remove(KEY_PIN_COUNT)?;
        self.pins.clear()?;
        self.meta.insert(KEY_PIN_COUNT, 0u64.to_be_bytes())?;
        self.count.store(0, Ordering::Release);
        info!(path = %self.path.display(), "cleared state store");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance;

    #[test]
    fn conformance_suite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FjallState::open(dir.path()).expect("open");
        conformance::run_all(&store);
    }

    #[test]
    fn persists_across_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let open = || FjallState::open(dir.path()).map(|s| Box::new(s) as Box<dyn StateStore>);
        conformance::persists_across_reopen(&open);
    }

    #[test]
    fn newer_format_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = FjallState::open(dir.path()).expect("open");
            store.meta.insert(KEY_FORMAT_VERSION, 2u32.to_be_bytes()).expect("write");
        }
        match FjallState::open(dir.path()) {
            Err(StateError::UnsupportedFormat { found: 2, supported: 1 }) => {}
            other => panic!("expected unsupported format, got {other:?}"),
        }
    }

    #[test]
    fn second_open_of_same_dir_fails() {
        let dir = tempfile::tempdir().expect("tempdir");
        let _store = FjallState::open(dir.path()).expect("open");
        assert!(matches!(FjallState::open(dir.path()), Err(StateError::Storage(_))));
    }

    #[test]
    fn missing_counter_is_recounted() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = FjallState::open(dir.path()).expect("open");
            let ops: Vec<_> = (0..25).map(|i| StateOp::Put(conformance::test_pin(i))).collect();
            store.apply(&ops).expect("apply");
            // What an interrupted `clear` leaves behind.
            store.meta.remove(KEY_PIN_COUNT).expect("remove counter");
        }
        let store = FjallState::open(dir.path()).expect("reopen");
        assert_eq!(store.len().expect("len"), 25);
    }
}
