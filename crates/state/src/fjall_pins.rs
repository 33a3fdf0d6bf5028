//! Reads and flushes over a fjall keyspace of pin records (CID bytes → [`record`]), shared by
//! every store that keeps its pinset that way ([`crate::FjallState`], the CRDT store).

use cluster_types::{Cid, Pin};
use fjall::{Database, Keyspace, PersistMode, Readable};

use crate::{Durability, PinIter, StateError, record};

/// The pin of `cid`. Point reads go through a snapshot: `Keyspace::get` reads at the newest
/// sequence number and can observe a batch that is half-way into the memtable.
pub fn get(db: &Database, pins: &Keyspace, cid: &Cid) -> Result<Option<Pin>, StateError> {
    match db.snapshot().get(pins, cid.to_bytes())? {
        None => Ok(None),
        Some(bytes) => record::decode(&bytes).map(Some),
    }
}

/// Whether `cid` has a pin (through a snapshot, as [`get`]).
pub fn has(db: &Database, pins: &Keyspace, cid: &Cid) -> Result<bool, StateError> {
    Ok(db.snapshot().contains_key(pins, cid.to_bytes())?)
}

/// Every pin, in CID-byte order. `Keyspace::iter` owns a snapshot: it sees the pinset as of
/// now, does not borrow the store, and reads blocks lazily, so memory stays flat however large
/// the pinset.
pub fn list(pins: &Keyspace) -> PinIter {
    Box::new(pins.iter().map(|guard| {
        let value = guard.value()?;
        record::decode(&value)
    }))
}

/// Flushes the database's journal: to the OS buffers, or synced to stable storage.
pub fn persist(db: &Database, durability: Durability) -> Result<(), StateError> {
    let mode = match durability {
        Durability::Buffer => PersistMode::Buffer,
        Durability::Sync => PersistMode::SyncAll,
    };
    db.persist(mode)?;
    Ok(())
}
