//! The `ipfshttp` IPFS connector: drives an external Kubo daemon through its HTTP RPC API.
//!
//! [`KuboConnector`] implements [`cluster_ipfs::IpfsConnector`] with Kubo's `POST /api/v0/...`
//! commands over TCP or a unix socket, as the Go original's `ipfshttp` component does: every
//! call is bounded by the section's timeouts (pins by a no-progress watchdog), a node that keeps
//! failing is throttled to one request per second, and "not pinned" on unpin counts as done.
//! It also tolerates js-ipfs, which serves the same API with small differences.
//!
//! The daemon builds it from the config section:
//!
//! ```no_run
//! # fn demo(cfg: &cluster_config::IpfsHttpConfig) -> Result<(), cluster_ipfs::IpfsError> {
//! use std::sync::Arc;
//! let ipfs: Arc<dyn cluster_ipfs::IpfsConnector> =
//!     Arc::new(cluster_ipfs_http::KuboConnector::from_config(cfg)?);
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod address;
mod backoff;
mod connector;
mod rpc;

use cluster_ipfs::{IpfsConnector, IpfsError};
use futures::StreamExt;
use tracing::{debug, info, warn};

pub use address::{AddressFamily, NodeAddress};
pub use connector::{KuboConnector, KuboSettings};

/// Swarm connections attempted at once by [`connect_swarms`].
const CONNECT_CONCURRENCY: usize = 8;

/// Outcome of [`connect_swarms`] for one address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwarmConnectOutcome {
    /// The address as given.
    pub addr: String,
    /// What `swarm_connect` answered.
    pub result: Result<(), IpfsError>,
}

/// Connects the IPFS node to the given peers' IPFS addresses (each ending in `/p2p/<peer id>`),
/// as the cluster does `connect_swarms_delay` after start so content moves between its members
/// directly. Addresses of the node itself are skipped; failures are logged and reported, never
/// fatal. Works with any connector, not only [`KuboConnector`].
pub async fn connect_swarms(
    ipfs: &dyn IpfsConnector,
    addrs: impl IntoIterator<Item = String>,
) -> Vec<SwarmConnectOutcome> {
    // the cluster hands over every member's addresses, ours included
    let own = match ipfs.id().await {
        Ok(id) => Some(format!("/p2p/{}", id.id)),
        Err(e) => {
            debug!(error = %e, "cannot learn our own ipfs id, connecting to every address");
            None
        }
    };
    let targets: Vec<String> = addrs
        .into_iter()
        .filter(|a| {
            own.as_ref()
                .is_none_or(|own| !a.trim().ends_with(own.as_str()))
        })
        .collect();
    let outcomes: Vec<SwarmConnectOutcome> = futures::stream::iter(targets)
        .map(|addr| async move {
            let result = ipfs.swarm_connect(&addr).await;
            match &result {
                Ok(()) => debug!(%addr, "ipfs swarm connected"),
                Err(e) => warn!(%addr, error = %e, "ipfs swarm connect failed"),
            }
            SwarmConnectOutcome { addr, result }
        })
        .buffer_unordered(CONNECT_CONCURRENCY)
        .collect()
        .await;
    let connected = outcomes.iter().filter(|o| o.result.is_ok()).count();
    info!(
        connected,
        attempted = outcomes.len(),
        "ipfs swarm connections done"
    );
    outcomes
}
