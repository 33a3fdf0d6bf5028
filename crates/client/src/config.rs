//! Client configuration and the translation of API multiaddresses into base URLs.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use crate::error::ClientError;

/// The REST API address the original tools use when none is given.
pub const DEFAULT_HOST: &str = "/ip4/127.0.0.1/tcp/9094";

/// How to reach the cluster REST API.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// API endpoint: a multiaddress (`/ip4/127.0.0.1/tcp/9094`, `/ip6/::1/tcp/9094`,
    /// `/dns4/example.org/tcp/9094`) or a URL (`http://host:port`). Several endpoints can be
    /// given separated by commas: requests go to the first one and fail over to the next
    /// when a connection cannot be established.
    pub host: String,
    /// Use HTTPS for endpoints given as multiaddresses (`https://` URLs and `/https`, `/tls/http`
    /// multiaddress suffixes always do).
    pub https: bool,
    /// Time limit of each request, body included (`None`: no limit).
    pub timeout: Option<Duration>,
    /// Basic-auth user and password sent with every request.
    pub basic_auth: Option<(String, String)>,
    /// Do not verify the server's TLS certificate (only meaningful with HTTPS).
    pub no_check_certificate: bool,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password stays out of logs.
        f.debug_struct("ClientConfig")
            .field("host", &self.host)
            .field("https", &self.https)
            .field("timeout", &self.timeout)
            .field("basic_auth_user", &self.basic_auth.as_ref().map(|(u, _)| u))
            .field("no_check_certificate", &self.no_check_certificate)
            .finish()
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            host: DEFAULT_HOST.to_string(),
            https: false,
            timeout: None,
            basic_auth: None,
            no_check_certificate: false,
        }
    }
}

impl ClientConfig {
    /// A configuration for one endpoint with every other option at its default.
    pub fn for_host(host: impl Into<String>) -> Self {
        ClientConfig { host: host.into(), ..ClientConfig::default() }
    }

    /// The base URLs (`http://ip:port`, no trailing slash) of every endpoint in `host`.
    pub fn endpoint_urls(&self) -> Result<Vec<String>, ClientError> {
        let mut urls = Vec::new();
        for part in self.host.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            urls.push(endpoint_url(part, self.https)?);
        }
        if urls.is_empty() {
            return Err(ClientError::InvalidArgument("no API endpoint given".into()));
        }
        Ok(urls)
    }
}

/// Translates one API address (multiaddress or URL) into a base URL.
///
/// HTTP and HTTPS over TCP are supported (HTTPS when asked for with `https`, a `https://`
/// URL or a `/https` / `/tls/http` multiaddress suffix); unix sockets, `/dnsaddr` and libp2p
/// (`/p2p/...`) endpoints give [`ClientError::Unsupported`]. An explicit `http://` URL stays
/// plain HTTP.
pub fn endpoint_url(addr: &str, https: bool) -> Result<String, ClientError> {
    let addr = addr.trim();
    if let Some(rest) = addr.strip_prefix("http://") {
        return url_host_port(addr, rest).map(|hp| format!("http://{hp}"));
    }
    if let Some(rest) = addr.strip_prefix("https://") {
        return url_host_port(addr, rest).map(|hp| format!("https://{hp}"));
    }
    let invalid = |why: &str| ClientError::InvalidArgument(format!("invalid API multiaddress '{addr}': {why}"));
    if !addr.starts_with('/') {
        return Err(invalid("must start with '/' (for example /ip4/127.0.0.1/tcp/9094)"));
    }
    let mut parts = addr[1..].split('/');
    let host = match (parts.next(), parts.next()) {
        (Some("ip4"), Some(ip)) => ip.parse::<Ipv4Addr>().map_err(|_| invalid("bad IPv4 address"))?.to_string(),
        (Some("ip6"), Some(ip)) => format!("[{}]", ip.parse::<Ipv6Addr>().map_err(|_| invalid("bad IPv6 address"))?),
        (Some("dns" | "dns4" | "dns6"), Some(name)) if valid_dns_name(name) => name.to_string(),
        (Some("dns" | "dns4" | "dns6"), _) => return Err(invalid("bad DNS name")),
        (Some("dnsaddr"), _) => {
            return Err(ClientError::Unsupported(format!(
                "/dnsaddr API addresses are not supported yet ('{addr}')"
            )));
        }
        (Some("unix"), _) => {
            return Err(ClientError::Unsupported(format!(
                "unix socket API endpoints are not supported yet ('{addr}')"
            )));
        }
        (Some("p2p" | "ipfs"), _) => return Err(libp2p_unsupported(addr)),
        _ => return Err(invalid("expected /ip4, /ip6, /dns, /dns4 or /dns6")),
    };
    let port = match (parts.next(), parts.next()) {
        (Some("tcp"), Some(port)) => port.parse::<u16>().map_err(|_| invalid("bad TCP port"))?,
        _ => return Err(invalid("expected /tcp/<port> after the host")),
    };
    let mut secure = https;
    match (parts.next(), parts.next()) {
        (None, _) | (Some("http"), None) => {}
        (Some("https"), None) | (Some("tls"), Some("http")) => secure = true,
        (Some("p2p" | "ipfs"), _) => return Err(libp2p_unsupported(addr)),
        _ => return Err(invalid("unexpected protocol after /tcp/<port>")),
    }
    if parts.next().is_some() {
        return Err(invalid("unexpected protocol after /tcp/<port>"));
    }
    let scheme = if secure { "https" } else { "http" };
    Ok(format!("{scheme}://{host}:{port}"))
}

fn url_host_port(addr: &str, rest: &str) -> Result<String, ClientError> {
    let hp = rest.trim_end_matches('/');
    if hp.is_empty() || hp.contains('/') || hp.contains('?') || hp.contains('@') {
        return Err(ClientError::InvalidArgument(format!(
            "invalid API URL '{addr}': expected http[s]://host:port"
        )));
    }
    Ok(hp.to_string())
}

fn valid_dns_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
}

fn libp2p_unsupported(addr: &str) -> ClientError {
    ClientError::Unsupported(format!("libp2p API endpoints (/p2p/...) are not supported yet ('{addr}')"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiaddrs_become_urls() {
        assert_eq!(endpoint_url("/ip4/127.0.0.1/tcp/9094", false).unwrap(), "http://127.0.0.1:9094");
        assert_eq!(endpoint_url("/ip6/::1/tcp/9094", false).unwrap(), "http://[::1]:9094");
        assert_eq!(endpoint_url("/dns4/cluster.example/tcp/80", false).unwrap(), "http://cluster.example:80");
        assert_eq!(endpoint_url("/ip4/10.0.0.1/tcp/9094/http", false).unwrap(), "http://10.0.0.1:9094");
        assert_eq!(endpoint_url("http://localhost:9094/", false).unwrap(), "http://localhost:9094");
        assert_eq!(endpoint_url("/ip4/1.2.3.4/tcp/9094", true).unwrap(), "https://1.2.3.4:9094");
        assert_eq!(endpoint_url("/ip4/1.2.3.4/tcp/9094/https", false).unwrap(), "https://1.2.3.4:9094");
        assert_eq!(endpoint_url("/dns/x.example/tcp/1/tls/http", false).unwrap(), "https://x.example:1");
        assert_eq!(endpoint_url("https://localhost:9094", false).unwrap(), "https://localhost:9094");
    }

    #[test]
    fn unsupported_and_invalid() {
        assert!(matches!(endpoint_url("/unix/tmp/api.sock", false), Err(ClientError::Unsupported(_))));
        assert!(matches!(endpoint_url("/ip4/1.2.3.4/tcp/9096/p2p/12D3KooW", false), Err(ClientError::Unsupported(_))));
        assert!(matches!(endpoint_url("/ip4/1.2.3/tcp/9094", false), Err(ClientError::InvalidArgument(_))));
        assert!(matches!(endpoint_url("/ip4/1.2.3.4/udp/9094", false), Err(ClientError::InvalidArgument(_))));
        assert!(matches!(endpoint_url("localhost:9094", false), Err(ClientError::InvalidArgument(_))));
    }

    #[test]
    fn comma_lists() {
        let c = ClientConfig::for_host("/ip4/127.0.0.1/tcp/1, /ip4/127.0.0.1/tcp/2");
        assert_eq!(c.endpoint_urls().unwrap(), vec!["http://127.0.0.1:1", "http://127.0.0.1:2"]);
    }
}
