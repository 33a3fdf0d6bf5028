//! Typed configuration: service.json sections with the original's keys, identity.json, env overrides and validation.
//!
//! Files written here can be read by the original IPFS Cluster and vice versa, except for the
//! sections this implementation adds or replaces: `ipfs_connector.embedded` (an in-process IPFS
//! node, the default) and `datastore.fjall` (instead of pebble/badger/leveldb).
//!
//! Typical use by the daemon:
//! ```no_run
//! # fn main() -> Result<(), cluster_config::ConfigError> {
//! let env = cluster_config::process_env();
//! let dir = cluster_config::default_config_dir(&env);
//! let _lock = cluster_config::acquire_lock(&dir)?;
//! let loaded = cluster_config::load_folder(&dir, &env)?;
//! println!("peer {} listening on {:?}", loaded.identity.peer_id(), loaded.config.cluster.listen_multiaddress);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod api;
mod check;
pub mod cluster;
pub mod components;
pub mod consensus;
pub mod datastore;
mod env;
pub mod error;
pub mod folder;
pub mod identity;
pub mod ipfs_connector;
pub mod observations;
mod schema;
pub mod serde_util;
pub mod service;

pub use api::{ApiConfig, IpfsProxyConfig, PinSvcApiConfig, RestApiConfig};
pub use cluster::{ClusterConfig, ConnMgrConfig, PubsubConfig, ResourceMgrConfig};
pub use components::{
    AllocatorConfig, BalancedConfig, DiskInformerConfig, InformerConfig, MonitorConfig, PinQueueInformerConfig,
    PinTrackerConfig, PubsubmonConfig, StatelessConfig, TagsInformerConfig,
};
pub use consensus::{ConsensusConfig, ConsensusKind, CrdtBatchingConfig, CrdtConfig, RaftConfig};
pub use datastore::{DatastoreConfig, FjallConfig};
pub use error::{ConfigError, ConfigErrors};
pub use folder::{
    acquire_lock, default_config_dir, init_folder, load_folder, load_identity, process_env, read_peerstore,
    resolve_path, save_service_json, write_peerstore, FolderLock, InitOptions, InitReport, Loaded,
};
pub use identity::Identity;
pub use ipfs_connector::{ConnectorTimings, EmbeddedIpfsConfig, IpfsConnectorConfig, IpfsHttpConfig};
pub use observations::{MetricsConfig, ObservationsConfig, TracingConfig};
pub use service::ServiceConfig;
