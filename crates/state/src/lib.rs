//! The pinset state store: versioned pin records in fjall, streamed in CID order.
//!
//! The state is the cluster's shared pinset: one record per pinned CID. Consensus
//! implementations write it (through [`StateStore::apply`]) and everybody else reads it.
//! Two implementations exist:
//!
//! * [`FjallState`]: the durable store, an LSM tree on disk (keyspace `pins`, key = CID
//!   bytes, value = a versioned [`record`]). A `meta` keyspace carries the on-disk format
//!   version, checked on open, and a pin counter kept in step with every batch.
//! * [`MemState`]: a `BTreeMap` behind a lock, for tests and benchmarks.
//!
//! Both list pins in CID-bytes order and *stream*: [`StateStore::list`] never materialises
//! the pinset, so listing a million pins keeps memory flat. The [`conformance`] module holds
//! the properties every implementation must satisfy; it runs against both here, and any
//! future store (or a wrapper such as a CRDT-backed state) can run it too.
//!
//! The trait is synchronous because fjall is; async callers wrap calls in
//! `tokio::task::spawn_blocking` when a call may touch the disk for long (large batches,
//! `persist(Durability::Sync)`, or draining a listing).

#![warn(missing_docs)]

pub mod conformance;
mod error;
pub mod fjall_pins;
mod fjall_state;
mod mem_state;
pub mod record;

pub use error::StateError;
pub use fjall_state::FjallState;
pub use mem_state::MemState;

use cluster_types::{Cid, Pin};

/// One change to the pinset. A slice of them is applied atomically by [`StateStore::apply`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant, reason = "almost every op is a Put; boxing would add an allocation per pin")]
pub enum StateOp {
    /// Inserts the pin, replacing any existing pin of the same CID.
    Put(Pin),
    /// Removes the pin of this CID; removing an absent CID is not an error (idempotent
    /// replays of a consensus log must not fail).
    Remove(Cid),
}

impl StateOp {
    /// The CID the operation touches.
    pub fn cid(&self) -> &Cid {
        match self {
            StateOp::Put(pin) => &pin.cid,
            StateOp::Remove(cid) => cid,
        }
    }
}

/// How far [`StateStore::persist`] pushes written data, trading latency for safety.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Durability {
    /// Hands the data to the operating system: it survives the process being killed
    /// (`kill -9`, panic, OOM) but not a power loss or kernel crash. Costs a `write(2)`.
    Buffer,
    /// Forces the data to stable storage (fsync): it survives power loss. Costs an fsync,
    /// milliseconds on most disks, so callers batch before asking for it.
    Sync,
}

/// A boxed, owned iterator over pins in CID-bytes order.
///
/// It does not borrow the store, so it can be moved into a blocking task or a stream
/// adapter and drained at the consumer's pace.
pub type PinIter = Box<dyn Iterator<Item = Result<Pin, StateError>> + Send + 'static>;

/// The pinset: versioned pin records keyed by CID.
///
/// Methods are synchronous (fjall is); see the crate docs for use from async code.
/// Implementations must pass every check in [`conformance`].
pub trait StateStore: Send + Sync + 'static {
    /// Returns the pin of `cid`, if the pinset holds it.
    fn get(&self, cid: &Cid) -> Result<Option<Pin>, StateError>;

    /// Tells whether the pinset holds `cid`, without decoding the record.
    fn has(&self, cid: &Cid) -> Result<bool, StateError>;

    /// Applies the operations as one atomic batch: readers see all of them or none.
    ///
    /// Operations on the same CID take effect in slice order (the last one wins).
    fn apply(&self, ops: &[StateOp]) -> Result<(), StateError>;

    /// Streams every pin in CID-bytes order without collecting the pinset.
    ///
    /// Implementations backed by snapshots (fjall) list a consistent point in time;
    /// others may reflect writes made while the listing runs, but always yield each pin
    /// at most once and in order. Writers are never blocked by an open listing.
    fn list(&self) -> PinIter;

    /// The number of pins, in O(1) (implementations maintain a counter).
    fn len(&self) -> Result<u64, StateError>;

    /// Tells whether the pinset is empty.
    fn is_empty(&self) -> Result<bool, StateError> {
        Ok(self.len()? == 0)
    }

    /// Makes everything applied so far survive a process kill ([`Durability::Buffer`])
    /// or a power loss ([`Durability::Sync`]).
    fn persist(&self, durability: Durability) -> Result<(), StateError>;

    /// Removes every pin (used by `state cleanup` and by tests).
    fn clear(&self) -> Result<(), StateError>;
}
