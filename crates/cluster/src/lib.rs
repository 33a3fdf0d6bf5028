//! One cluster peer: the supervision tree that wires consensus, IPFS, tracker, monitor and allocator.
//!
//! Every component is an actor under the root supervisor (see `docs/architecture.md`):
//! `ipfs_connector`, `pin_tracker`, `consensus`, `monitor`, `informer` and `pinset_watcher`.
//! [`Cluster`] is the handle the APIs use; it turns requests into messages.

pub mod allocator;
mod cluster;
pub mod consensus_actor;
pub mod informer;
pub mod ipfs_actor;
pub mod monitor;
pub mod sync;
mod walk;

pub use cluster::{Cluster, ClusterError, ClusterSettings};
pub use informer::InformerSettings;
pub use ipfs_actor::IpfsTimeouts;
