//! Real IPFS daemons for tests: installs js-ipfs 0.66.1 from npm on first use and runs it on loopback.
//!
//! No Kubo binary can be installed on the project's machines, but js-ipfs serves a
//! Kubo-compatible RPC API (`POST /api/v0/...`) and speaks bitswap, so it stands in for Kubo when
//! testing the HTTP connector. Everything here is loopback-only: no bootstrap peers, no mDNS, no
//! delegates, no preload nodes, no NAT port mapping.
//!
//! ```no_run
//! # async fn demo() -> Result<(), cluster_testnodes::TestNodeError> {
//! let dir = tempfile::tempdir().unwrap();
//! let node = cluster_testnodes::JsIpfs::start(dir.path().join("ipfs")).await?;
//! println!("{} answers on {}", node.peer_id(), node.api_multiaddr());
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod install;
mod jsipfs;

pub use install::{CACHE_DIR_ENV, cache_root};
pub use jsipfs::JsIpfs;

/// Why a test node could not be installed or started.
#[derive(Debug, thiserror::Error)]
pub enum TestNodeError {
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, with the path involved.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// npm could not install js-ipfs.
    #[error("js-ipfs install failed: {0}")]
    Install(String),
    /// The daemon (or `jsipfs init`) failed or never became ready.
    #[error("js-ipfs node failed: {0}")]
    Node(String),
}
