//! Settings of the REST API listener.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::security::SecurityConfig;
use crate::tls::TlsFiles;

/// How the REST API listens and answers. Defaults match the original's `restapi` section.
///
/// Build it with `..RestApiConfig::default()` so new fields do not break callers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestApiConfig {
    /// Where to listen (`http_listen_multiaddress`, default `127.0.0.1:9094`). Port 0 picks a
    /// free port; [`crate::serve_rest`] returns the bound address.
    pub listen: SocketAddr,
    /// Extra static headers added to every response (`headers`), unless the route already set
    /// a header of that name (so `Content-Type` stays correct).
    pub headers: BTreeMap<String, String>,
    /// Limit on the request head (`max_header_bytes`, default 4096). As in Go's `net/http`,
    /// 4096 bytes of slack are allowed on top; beyond that the answer is 431.
    pub max_header_bytes: usize,
    /// Whether the chaos hook `POST /health/actors/{name}/kill` exists. Off by default: when
    /// off the route answers 404 like any unknown path.
    pub chaos_enabled: bool,
    /// Time a client has to send a complete request head once it started one
    /// (`read_header_timeout`, default 5s). Zero disables it.
    pub read_header_timeout: Duration,
    /// Time a keep-alive connection may sit without a request before it is closed
    /// (`idle_timeout`, default 120s). Zero disables it.
    pub idle_timeout: Duration,
    /// Authentication and CORS (`basic_auth_credentials`, `cors_*`).
    pub security: SecurityConfig,
    /// HTTPS certificate and key (`ssl_cert_file`, `ssl_key_file`); plain HTTP when `None`.
    pub tls: Option<TlsFiles>,
}

impl Default for RestApiConfig {
    fn default() -> Self {
        RestApiConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 9094)),
            headers: BTreeMap::new(),
            max_header_bytes: 4096,
            chaos_enabled: false,
            read_header_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(120),
            security: SecurityConfig::default(),
            tls: None,
        }
    }
}
