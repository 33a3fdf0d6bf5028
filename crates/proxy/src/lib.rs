//! The IPFS proxy (port 9095): a Kubo RPC API endpoint whose pin commands become cluster pins.
//!
//! Kubo clients point at the proxy instead of the node. `pin/add`, `pin/rm`, `pin/ls`,
//! `pin/update`, `repo/stat`, `repo/gc`, and `block/put`/`dag/put` with `pin=true` (POST, GET
//! or PUT under `/api/v0`) are answered with cluster semantics, in Kubo's JSON shapes and with
//! Kubo's `{"Message","Code","Type"}` errors; every other request is relayed to the node
//! unchanged, bodies streamed both ways. Hijacked answers copy the node's CORS headers for the
//! request's origin and the headers named by `extract_headers_extra` (learned from
//! `extract_headers_path`, cached for `extract_headers_ttl`), and name the proxy in `Server`.
//!
//! The cluster plugs in through [`ProxyBackend`]; connections are driven by `cluster-api`'s
//! HTTP/1 loop. `add` is not hijacked yet: it is relayed to the node like any other command.

#![warn(missing_docs)]

mod backend;
mod body;
mod proxy;
mod upstream;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cluster_api::{Guard, ServerOptions, multiaddr_to_socketaddr, serve_all};
use cluster_ipfs_http::NodeAddress;
use tokio::task::JoinHandle;

pub use backend::ProxyBackend;
pub use proxy::Proxy;

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The configuration cannot be served.
    #[error("api.ipfsproxy: {0}")]
    Config(String),
    /// A listen address could not be bound.
    #[error(transparent)]
    Serve(#[from] cluster_api::ApiServerError),
}

/// How the proxy listens and where it forwards: the `api.ipfsproxy` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    /// Listen addresses (`listen_multiaddress`); port 0 picks a free port.
    pub listen: Vec<SocketAddr>,
    /// The node's RPC API (`node_multiaddress`): TCP or `/unix/<path>`.
    pub node_multiaddress: String,
    /// Limit on the request head (`max_header_bytes`).
    pub max_header_bytes: usize,
    /// Time to send a complete request head once started (`read_header_timeout`).
    pub read_header_timeout: Duration,
    /// Time a keep-alive connection may wait for its next request (`idle_timeout`).
    pub idle_timeout: Duration,
    /// Node headers copied onto hijacked answers besides `Access-Control-Expose-Headers`.
    pub extract_headers_extra: Vec<String>,
    /// The node endpoint those headers are learned from.
    pub extract_headers_path: String,
    /// How long learned headers are reused.
    pub extract_headers_ttl: Duration,
}

impl ProxyConfig {
    /// The proxy settings of an `api.ipfsproxy` section.
    pub fn from_section(cfg: &cluster_config::IpfsProxyConfig) -> Result<ProxyConfig, ProxyError> {
        if cfg.node_https {
            return Err(ProxyError::Config("node_https is not supported: the proxy talks plain http to the node".into()));
        }
        let listen = cfg
            .listen_multiaddress
            .iter()
            .map(|a| multiaddr_to_socketaddr(a).map_err(|e| ProxyError::Config(format!("listen_multiaddress: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ProxyConfig {
            listen,
            node_multiaddress: cfg.node_multiaddress.clone(),
            max_header_bytes: cfg.max_header_bytes,
            read_header_timeout: cfg.read_header_timeout,
            idle_timeout: cfg.idle_timeout,
            extract_headers_extra: cfg.extract_headers_extra.clone(),
            extract_headers_path: cfg.extract_headers_path.clone(),
            extract_headers_ttl: cfg.extract_headers_ttl,
        })
    }
}

/// Builds the proxy for `cfg` (no connection to the node is made yet).
pub fn build(cfg: &ProxyConfig, backend: Arc<dyn ProxyBackend>) -> Result<Arc<Proxy>, ProxyError> {
    let node = NodeAddress::parse(&cfg.node_multiaddress)
        .map_err(|e| ProxyError::Config(format!("node_multiaddress: {e}")))?;
    let upstream = upstream::Upstream::new(&node, &cfg.extract_headers_extra, &cfg.extract_headers_path, cfg.extract_headers_ttl)
        .map_err(ProxyError::Config)?;
    Ok(Arc::new(Proxy::new(backend, upstream)))
}

/// Serves the proxy on every configured address until `shutdown` resolves. Returns the bound
/// addresses (in configuration order) and a task that ends when every listener has stopped.
pub async fn serve_proxy(
    cfg: ProxyConfig,
    backend: Arc<dyn ProxyBackend>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(Vec<SocketAddr>, JoinHandle<()>), ProxyError> {
    if cfg.listen.is_empty() {
        return Err(ProxyError::Config("listen_multiaddress is empty".into()));
    }
    let proxy = build(&cfg, backend)?;
    let filter = proxy.filter();
    let opts = ServerOptions {
        name: "ipfsproxy",
        extra_headers: http::HeaderMap::new(),
        max_header_bytes: cfg.max_header_bytes,
        read_header_timeout: cfg.read_header_timeout,
        idle_timeout: cfg.idle_timeout,
    };
    let (bound, task) = serve_all(&cfg.listen, opts, Guard::default(), filter, shutdown).await?;
    tracing::info!(listen = ?bound, node = %cfg.node_multiaddress, "ipfs proxy listening");
    Ok((bound, task))
}
