//! Listeners of the Pinning Service API: one `cluster-api` HTTP/1 server per configured
//! address (the same loop, headers and timeouts as the REST API), stopped together.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use cluster_api::{
    ErrorRenderer, Guard, MultiaddrError, Security, SecurityConfig, ServerOptions, TlsFiles, header_map, load_tls,
    multiaddr_to_socketaddr, serve_all,
};
use cluster_types::ApiError;
use tokio::task::JoinHandle;
use warp::filters::BoxedFilter;

use crate::error::ServeError;
use crate::http::Response;
use crate::service::PinningService;

/// How the Pinning Service API listens. Defaults match the original's `pinsvcapi` section.
///
/// Build this with `..PinSvcConfig::default()` so fields added later do not break callers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinSvcConfig {
    /// Where to listen (`http_listen_multiaddress`, default `127.0.0.1:9097`); every address
    /// is served. Port 0 picks a free port; [`serve_pinsvc`] returns the bound addresses.
    pub listen: Vec<SocketAddr>,
    /// Extra headers added to every response that does not set them itself (`headers`).
    pub headers: BTreeMap<String, String>,
    /// Limit on the request head (`max_header_bytes`, default 4096); 4096 bytes of slack are
    /// allowed on top, as in Go's `net/http`.
    pub max_header_bytes: usize,
    /// Time to send a complete request head once started (`read_header_timeout`, default
    /// 5s). Zero disables it.
    pub read_header_timeout: Duration,
    /// Time a keep-alive connection may wait for its next request (`idle_timeout`, default
    /// 120s). Zero disables it.
    pub idle_timeout: Duration,
    /// Authentication (basic and JWT, with `POST /token`) and CORS, checked before routing;
    /// failures use the spec's error shape.
    pub security: SecurityConfig,
    /// HTTPS certificate and key; plain HTTP when `None`.
    pub tls: Option<TlsFiles>,
}

impl Default for PinSvcConfig {
    fn default() -> Self {
        PinSvcConfig {
            listen: vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 9097))],
            headers: BTreeMap::new(),
            max_header_bytes: 4096,
            read_header_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(120),
            security: SecurityConfig::default(),
            tls: None,
        }
    }
}

impl PinSvcConfig {
    /// Sets `listen` from configured multiaddrs (`/ip4|ip6|dns*/<host>/tcp/<port>`).
    ///
    /// DNS names are resolved here, blocking, so call this while loading the configuration.
    pub fn with_listen_multiaddrs<S: AsRef<str>>(
        mut self,
        addrs: &[S],
    ) -> Result<Self, MultiaddrError> {
        self.listen = addrs
            .iter()
            .map(|a| multiaddr_to_socketaddr(a.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(self)
    }
}

/// Serves the Pinning Service API on every configured address until `shutdown` resolves.
///
/// Returns the bound addresses (in configuration order; useful with port 0) and the server
/// task, which ends once open connections have finished (or after a grace period) following
/// shutdown. Fails when an address cannot be bound or a configured header is invalid.
pub async fn serve_pinsvc(
    cfg: PinSvcConfig,
    service: Arc<PinningService>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(Vec<SocketAddr>, JoinHandle<()>), ServeError> {
    serve_filter(cfg, service.filter(), shutdown).await
}

/// Serves any filter that answers every request with the listeners and timeouts of `cfg`.
///
/// This is how a wrapped [`PinningService::filter`] (authentication, CORS) is served. Every
/// address is bound before any is served, so a taken port fails the whole start. The
/// connections themselves are driven by `cluster-api`'s HTTP/1 loop, the one the REST API
/// uses.
pub async fn serve_filter(
    cfg: PinSvcConfig,
    filter: BoxedFilter<(Response,)>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(Vec<SocketAddr>, JoinHandle<()>), ServeError> {
    if cfg.listen.is_empty() {
        return Err(ServeError::NoListenAddress);
    }
    let extra_headers = header_map(&cfg.headers)?;
    let render: ErrorRenderer = Arc::new(|status, message: &str| {
        crate::http::error_response(&ApiError { code: status.as_u16(), message: message.to_string() })
    });
    let guard = Guard {
        tls: cfg.tls.as_ref().map(load_tls).transpose()?,
        security: Some(Security::new(cfg.security.clone(), render)),
    };
    let opts = ServerOptions {
        name: "pinsvc",
        extra_headers,
        max_header_bytes: cfg.max_header_bytes,
        read_header_timeout: cfg.read_header_timeout,
        idle_timeout: cfg.idle_timeout,
    };
    let shutdown = async move {
        shutdown.await;
        tracing::info!("pinning service api shutting down");
    };
    let (bound, servers) = serve_all(&cfg.listen, opts, guard, filter, shutdown).await?;
    let handle = tokio::spawn(async move {
        let _ = servers.await;
        tracing::info!("pinning service api stopped");
    });
    Ok((bound, handle))
}
