//! The `api` section: REST API, Pinning Service API and IPFS proxy. Only sections present in
//! service.json are started; `init` writes `restapi` alone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cluster_types::duration::serde_go;
use serde::{Deserialize, Serialize};

use crate::check;
use crate::error::ConfigErrors;
use crate::folder::resolve_path;
use crate::serde_util::{is_false, string_list, strings};

/// Smallest accepted `max_header_bytes` (same floor as the original).
pub const MIN_MAX_HEADER_BYTES: usize = 4096;

/// Headers the original exposes to CORS clients by default.
pub const DEFAULT_CORS_EXPOSED_HEADERS: [&str; 4] =
    ["Content-Type", "X-Stream-Output", "X-Chunked-Output", "X-Content-Length"];

/// `api` section. When missing entirely, a default REST API is configured so the peer stays
/// manageable; when present, only the listed APIs exist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    // Component keys are in alphabetical order because the original writes them from a Go map.
    /// IPFS proxy API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipfsproxy: Option<IpfsProxyConfig>,
    /// Pinning Service API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinsvcapi: Option<PinSvcApiConfig>,
    /// REST API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restapi: Option<RestApiConfig>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig { ipfsproxy: None, pinsvcapi: None, restapi: Some(RestApiConfig::default()) }
    }
}

impl ApiConfig {
    pub(crate) fn validate_into(&self, errs: &mut ConfigErrors) {
        if let Some(c) = &self.restapi {
            c.validate_into(errs);
        }
        if let Some(c) = &self.pinsvcapi {
            c.validate_into(errs);
        }
        if let Some(c) = &self.ipfsproxy {
            c.validate_into(errs);
        }
    }
}

/// Defines an HTTP API section; restapi and pinsvcapi share every key and differ only in the
/// default port, which serde's per-type defaults cannot express with a single struct.
macro_rules! http_api_config {
    ($(#[$doc:meta])* $name:ident, $section:literal, $listen:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct $name {
            /// HTTP listen multiaddresses (a single string or a list; `/unix/…` allowed).
            #[serde(with = "strings")]
            pub http_listen_multiaddress: Vec<String>,
            /// TLS certificate file (relative to the config folder); HTTPS when set.
            pub ssl_cert_file: String,
            /// TLS key file (relative to the config folder).
            pub ssl_key_file: String,
            /// Whole-request read timeout (0 = none).
            #[serde(with = "serde_go")]
            pub read_timeout: Duration,
            /// Header read timeout.
            #[serde(with = "serde_go")]
            pub read_header_timeout: Duration,
            /// Response write timeout (0 = none).
            #[serde(with = "serde_go")]
            pub write_timeout: Duration,
            /// Keep-alive idle timeout.
            #[serde(with = "serde_go")]
            pub idle_timeout: Duration,
            /// Maximum request header size (at least 4096).
            pub max_header_bytes: usize,
            /// libp2p-HTTP listen addresses for a dedicated host (omitted while empty).
            #[serde(with = "strings", skip_serializing_if = "Vec::is_empty")]
            pub libp2p_listen_multiaddress: Vec<String>,
            /// Peer id of the dedicated libp2p host (omitted while empty).
            #[serde(skip_serializing_if = "String::is_empty")]
            pub id: String,
            /// Private key of the dedicated libp2p host (omitted while empty).
            #[serde(skip_serializing_if = "String::is_empty")]
            pub private_key: String,
            /// user → password; `null` disables authentication (an empty map is invalid).
            pub basic_auth_credentials: Option<BTreeMap<String, String>>,
            /// Request log file (relative to the config folder); empty = the logger.
            pub http_log_file: String,
            /// Extra static headers added to every response.
            pub headers: BTreeMap<String, Vec<String>>,
            /// CORS allowed origins.
            pub cors_allowed_origins: Vec<String>,
            /// CORS allowed methods.
            pub cors_allowed_methods: Vec<String>,
            /// CORS allowed request headers.
            pub cors_allowed_headers: Vec<String>,
            /// CORS exposed response headers.
            pub cors_exposed_headers: Vec<String>,
            /// CORS allow-credentials.
            pub cors_allow_credentials: bool,
            /// CORS pre-flight cache time.
            #[serde(with = "serde_go")]
            pub cors_max_age: Duration,
        }

        impl Default for $name {
            fn default() -> Self {
                $name {
                    http_listen_multiaddress: vec![$listen.to_string()],
                    ssl_cert_file: String::new(),
                    ssl_key_file: String::new(),
                    read_timeout: Duration::ZERO,
                    read_header_timeout: Duration::from_secs(5),
                    write_timeout: Duration::ZERO,
                    idle_timeout: Duration::from_secs(120),
                    max_header_bytes: MIN_MAX_HEADER_BYTES,
                    libp2p_listen_multiaddress: Vec::new(),
                    id: String::new(),
                    private_key: String::new(),
                    basic_auth_credentials: None,
                    http_log_file: String::new(),
                    headers: BTreeMap::new(),
                    cors_allowed_origins: vec!["*".into()],
                    cors_allowed_methods: vec!["GET".into()],
                    cors_allowed_headers: Vec::new(),
                    cors_exposed_headers: DEFAULT_CORS_EXPOSED_HEADERS.iter().map(|s| s.to_string()).collect(),
                    cors_allow_credentials: true,
                    cors_max_age: Duration::ZERO,
                }
            }
        }

        impl $name {
            /// Default HTTP listen multiaddress of this API.
            pub const DEFAULT_LISTEN: &'static str = $listen;

            /// Certificate and key paths resolved against the config folder, when HTTPS is on.
            pub fn ssl_paths(&self, dir: &Path) -> Option<(PathBuf, PathBuf)> {
                if self.ssl_cert_file.is_empty() && self.ssl_key_file.is_empty() {
                    return None;
                }
                Some((resolve_path(dir, &self.ssl_cert_file), resolve_path(dir, &self.ssl_key_file)))
            }

            /// Request log path resolved against the config folder, if one is set.
            pub fn http_log_path(&self, dir: &Path) -> Option<PathBuf> {
                (!self.http_log_file.is_empty()).then(|| resolve_path(dir, &self.http_log_file))
            }

            fn validate_into(&self, errs: &mut ConfigErrors) {
                validate_http_api(
                    errs,
                    $section,
                    HttpApiView {
                        listen: &self.http_listen_multiaddress,
                        libp2p_listen: &self.libp2p_listen_multiaddress,
                        id: &self.id,
                        private_key: &self.private_key,
                        ssl_cert_file: &self.ssl_cert_file,
                        ssl_key_file: &self.ssl_key_file,
                        max_header_bytes: self.max_header_bytes,
                        basic_auth_credentials: self.basic_auth_credentials.as_ref(),
                    },
                );
            }
        }
    };
}

http_api_config!(
    /// `api.restapi`: the REST API used by `ipfs-cluster-ctl`.
    RestApiConfig,
    "api.restapi",
    "/ip4/127.0.0.1/tcp/9094"
);

http_api_config!(
    /// `api.pinsvcapi`: the IPFS Pinning Service API.
    PinSvcApiConfig,
    "api.pinsvcapi",
    "/ip4/127.0.0.1/tcp/9097"
);

/// The fields of an HTTP API section that validation looks at, so one function serves both.
struct HttpApiView<'a> {
    listen: &'a [String],
    libp2p_listen: &'a [String],
    id: &'a str,
    private_key: &'a str,
    ssl_cert_file: &'a str,
    ssl_key_file: &'a str,
    max_header_bytes: usize,
    basic_auth_credentials: Option<&'a BTreeMap<String, String>>,
}

fn validate_http_api(errs: &mut ConfigErrors, section: &str, v: HttpApiView<'_>) {
    let key = |k: &str| format!("{section}.{k}");
    if v.listen.is_empty() && v.libp2p_listen.is_empty() {
        errs.push(&key("http_listen_multiaddress"), "at least one http or libp2p listen address is required");
    }
    check::multiaddrs(errs, &key("http_listen_multiaddress"), v.listen);
    check::multiaddrs(errs, &key("libp2p_listen_multiaddress"), v.libp2p_listen);
    if !v.id.is_empty() {
        check::peer_id(errs, &key("id"), v.id);
        if v.private_key.is_empty() {
            errs.push(&key("private_key"), "is required when id is set");
        }
    }
    if v.ssl_cert_file.is_empty() != v.ssl_key_file.is_empty() {
        errs.push(&key("ssl_cert_file"), "ssl_cert_file and ssl_key_file must be set together");
    }
    if v.max_header_bytes < MIN_MAX_HEADER_BYTES {
        errs.push(&key("max_header_bytes"), format_args!("must be at least {MIN_MAX_HEADER_BYTES}"));
    }
    if v.basic_auth_credentials.is_some_and(|c| c.is_empty()) {
        errs.push(
            &key("basic_auth_credentials"),
            "must not be an empty map (use null to disable authentication)",
        );
    }
}

/// `api.ipfsproxy`: a Kubo-compatible reverse proxy that turns pin requests into cluster pins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IpfsProxyConfig {
    /// Proxy listen multiaddresses.
    #[serde(with = "strings")]
    pub listen_multiaddress: Vec<String>,
    /// Kubo RPC API address requests are forwarded to.
    pub node_multiaddress: String,
    /// Talk HTTPS to the node (experimental; omitted while false).
    #[serde(skip_serializing_if = "is_false")]
    pub node_https: bool,
    /// Request log file (relative to the config folder); empty = the logger.
    pub log_file: String,
    /// Whole-request read timeout (0 = none).
    #[serde(with = "serde_go")]
    pub read_timeout: Duration,
    /// Header read timeout.
    #[serde(with = "serde_go")]
    pub read_header_timeout: Duration,
    /// Response write timeout (0 = none).
    #[serde(with = "serde_go")]
    pub write_timeout: Duration,
    /// Keep-alive idle timeout.
    #[serde(with = "serde_go")]
    pub idle_timeout: Duration,
    /// Maximum request header size (at least 4096).
    pub max_header_bytes: usize,
    /// Extra IPFS response headers copied onto hijacked responses.
    #[serde(with = "string_list")]
    pub extract_headers_extra: Vec<String>,
    /// IPFS endpoint queried to learn those headers.
    pub extract_headers_path: String,
    /// How long learned headers are cached.
    #[serde(with = "serde_go")]
    pub extract_headers_ttl: Duration,
}

impl Default for IpfsProxyConfig {
    fn default() -> Self {
        IpfsProxyConfig {
            listen_multiaddress: vec!["/ip4/127.0.0.1/tcp/9095".into()],
            node_multiaddress: "/ip4/127.0.0.1/tcp/5001".into(),
            node_https: false,
            log_file: String::new(),
            read_timeout: Duration::ZERO,
            read_header_timeout: Duration::from_secs(5),
            write_timeout: Duration::ZERO,
            idle_timeout: Duration::from_secs(60),
            max_header_bytes: MIN_MAX_HEADER_BYTES,
            extract_headers_extra: Vec::new(),
            extract_headers_path: "/api/v0/version".into(),
            extract_headers_ttl: Duration::from_secs(300),
        }
    }
}

impl IpfsProxyConfig {
    /// Request log path resolved against the config folder, if one is set.
    pub fn log_path(&self, dir: &Path) -> Option<PathBuf> {
        (!self.log_file.is_empty()).then(|| resolve_path(dir, &self.log_file))
    }

    fn validate_into(&self, errs: &mut ConfigErrors) {
        if self.listen_multiaddress.is_empty() {
            errs.push("api.ipfsproxy.listen_multiaddress", "at least one listen address is required");
        }
        check::multiaddrs(errs, "api.ipfsproxy.listen_multiaddress", &self.listen_multiaddress);
        check::node_multiaddr(errs, "api.ipfsproxy.node_multiaddress", &self.node_multiaddress);
        if self.max_header_bytes < MIN_MAX_HEADER_BYTES {
            errs.push("api.ipfsproxy.max_header_bytes", format_args!("must be at least {MIN_MAX_HEADER_BYTES}"));
        }
        check::non_empty(errs, "api.ipfsproxy.extract_headers_path", &self.extract_headers_path);
    }
}
