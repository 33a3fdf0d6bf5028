//! One cluster peer: the supervision tree that wires consensus, IPFS, tracker, monitor and allocator.
//!
//! Every component is an actor under the root supervisor (see `docs/architecture.md`):
//! `ipfs_connector`, `net` (the libp2p host), `rpc` (the cluster-RPC server), `pin_tracker`,
//! `consensus`, `monitor`, `informer`, `pinset_watcher` and `repinner`.
//! [`Cluster`] is the handle the APIs use; it turns requests into messages.

pub mod add;
pub mod allocator;
mod cluster;
pub mod consensus_actor;
mod global;
pub mod informer;
pub mod ipfs_actor;
pub mod monitor;
pub mod repin;
pub mod rpc_server;
pub mod sync;
mod walk;

pub use cluster::{Cluster, ClusterError, ClusterSettings, ConsensusMode};
pub use informer::InformerSettings;
pub use ipfs_actor::IpfsTimeouts;
