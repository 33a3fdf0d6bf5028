//! Consensus: how peers agree on the pinset. The trait, and the single-peer, CRDT and Raft implementations.
//!
//! A [`Consensus`] is the only writer of the shared pinset ([`cluster_state::StateStore`]).
//! Cluster code asks it to log pins and unpins; once a change is durable the implementation
//! reports it as a [`StateChange`] on a bounded channel, which is how the pin tracker learns
//! what to pin (the equivalent of the Go CRDT put/delete hooks and Raft's apply callbacks).
//!
//! [`SinglePeerConsensus`] is the trivial agreement of one peer with itself: every write
//! goes straight to the local store through a group-committing writer task. It is what a
//! standalone peer runs, and the reference behaviour the CRDT and Raft implementations must
//! match: the [`conformance`] suite checks any implementation against it.

#![warn(missing_docs)]

pub mod conformance;
pub mod crdt;
pub mod raft;
mod error;
mod single;

pub use error::ConsensusError;
pub use crdt::{CrdtConsensus, CrdtNetwork, CrdtSettings, CrdtStore};
pub use crdt::net_impl::NetCrdtNetwork;
pub use single::{SinglePeerConfig, SinglePeerConsensus};
pub use raft::{RaftConsensus, RaftSettings, RaftTransport};

use std::sync::Arc;

use async_trait::async_trait;
use cluster_state::StateStore;
use cluster_types::Pin;

/// A change to the pinset, emitted after it is durable, in commit order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateChange {
    /// The pin was added or replaced: the tracker should make IPFS match it.
    Pinned(Pin),
    /// The pin was removed: the tracker should unpin it if it was allocated here.
    Unpinned(Pin),
}

impl StateChange {
    /// The pin the change is about.
    pub fn pin(&self) -> &Pin {
        match self {
            StateChange::Pinned(p) | StateChange::Unpinned(p) => p,
        }
    }
}

/// How peers agree on the pinset (the Go `Consensus` component contract, §1.5 and §9 of
/// the reference).
///
/// Writes return only when the change is durable under the implementation's rules, so an
/// acknowledged pin is never lost by a process crash. Callers read the agreed state
/// through [`Consensus::state`] and must never write it directly.
#[async_trait]
pub trait Consensus: Send + Sync + 'static {
    /// Resolves when the state is usable (synced with the cluster for replicated
    /// implementations); API handlers wait on it before serving reads.
    async fn ready(&self) -> Result<(), ConsensusError>;

    /// Adds or replaces a pin. When this returns `Ok` the pin is in the state and survives
    /// a process kill, and a [`StateChange::Pinned`] has been queued.
    async fn log_pin(&self, pin: Pin) -> Result<(), ConsensusError>;

    /// Removes a pin (by its CID). The caller checks existence first; removing an absent
    /// pin succeeds so that retries are harmless. Emits [`StateChange::Unpinned`].
    async fn log_unpin(&self, pin: Pin) -> Result<(), ConsensusError>;

    /// The peers taking part in consensus, this one included.
    async fn peers(&self) -> Result<Vec<String>, ConsensusError>;

    /// The peer that orders writes; implementations without a leader return an error.
    async fn leader(&self) -> Result<String, ConsensusError>;

    /// Adds a peer to the consensus peerset.
    async fn add_peer(&self, peer: &str) -> Result<(), ConsensusError>;

    /// Removes a peer from the consensus peerset.
    async fn rm_peer(&self, peer: &str) -> Result<(), ConsensusError>;

    /// Tells whether `peer` may write to the shared state; always true for this peer.
    fn is_trusted_peer(&self, peer: &str) -> bool;

    /// The agreed pinset, for reading only.
    fn state(&self) -> Arc<dyn StateStore>;

    /// Implementation counters for `/health/actors` (null when there are none).
    fn stats(&self) -> serde_json::Value {
        serde_json::Value::Null
    }

    /// Commits everything already accepted, syncs it to stable storage and refuses
    /// further writes. Calling it again is harmless.
    async fn shutdown(&self) -> Result<(), ConsensusError>;
}
