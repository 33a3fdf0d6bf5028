//! The stateless pin tracker: queues IPFS pin/unpin operations and derives each pin's status.
//!
//! "Stateless" because nothing here is persisted: the truth is the shared state (what the
//! cluster wants pinned, and where) plus the IPFS pinset (what is pinned). The tracker only
//! remembers operations it has queued, is running, or saw fail, so a restarted tracker loses
//! nothing it cannot rebuild (see [`actor`]).
//!
//! Layout follows the house rule "pure cores, thin actors":
//! * [`optracker`]: the per-CID operation bookkeeping and its replacement rules;
//! * [`status`]: status derivation and queue priority, as plain functions;
//! * [`actor`]: the supervised actor with its queues and IPFS workers.

#![warn(missing_docs)]

pub mod actor;
pub mod optracker;
mod queue;
pub mod status;

#[cfg(test)]
mod test_support;

pub use actor::{OpOutcome, PinTrackerActor, TrackerConfig, TrackerError, TrackerMsg};
pub use optracker::{OpCounts, Operation, OperationKind, OperationTracker, Phase, TrackOutcome};
pub use status::{derive_status, is_priority, needs_ipfs_lookup};
