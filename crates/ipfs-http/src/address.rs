//! Parsing `node_multiaddress` into something an HTTP client can dial.
//!
//! Only the forms Kubo's RPC API listens on are accepted: `/ip4|ip6|dns|dns4|dns6/<host>/tcp/<port>`
//! (optionally followed by `/http`) and `/unix/<absolute path>`. Parsing is done by hand because a
//! unix path contains slashes, which generic multiaddr parsers split into separate components.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use cluster_ipfs::IpfsError;

/// Which address family a `/dns4` or `/dns6` name must resolve to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressFamily {
    /// IPv4 only (`/dns4`).
    V4,
    /// IPv6 only (`/dns6`).
    V6,
}

/// Where the Kubo RPC API listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeAddress {
    /// A TCP endpoint. `host` is an IP literal (IPv6 in brackets) or a DNS name.
    Tcp {
        /// Host part of the URL.
        host: String,
        /// TCP port.
        port: u16,
        /// Set for `/dns4` and `/dns6`, whose names must resolve to that family.
        family: Option<AddressFamily>,
    },
    /// A unix domain socket at this path.
    Unix(PathBuf),
}

impl NodeAddress {
    /// Parses a `node_multiaddress` value.
    pub fn parse(multiaddr: &str) -> Result<NodeAddress, IpfsError> {
        let text = multiaddr.trim();
        let bad = |why: &str| IpfsError::InvalidInput(format!("node_multiaddress {text:?}: {why}"));
        if let Some(path) = text.strip_prefix("/unix") {
            // like Go's multiaddr, the unix component takes the rest of the address as its path
            if !path.starts_with('/') || path.len() < 2 {
                return Err(bad(
                    "a unix socket needs an absolute path, e.g. /unix/run/ipfs.sock",
                ));
            }
            return Ok(NodeAddress::Unix(PathBuf::from(path)));
        }
        let parts: Vec<&str> = text.split('/').collect();
        if parts.first() != Some(&"") || parts.len() < 5 {
            return Err(bad(
                "expected /ip4|ip6|dns|dns4|dns6/<host>/tcp/<port> or /unix/<path>",
            ));
        }
        let (proto, value) = (parts[1], parts[2]);
        let (host, family) = match proto {
            "ip4" => {
                let ip: Ipv4Addr = value.parse().map_err(|_| bad("invalid ip4 address"))?;
                (ip.to_string(), None)
            }
            "ip6" => {
                let ip: Ipv6Addr = value.parse().map_err(|_| bad("invalid ip6 address"))?;
                (format!("[{ip}]"), None)
            }
            "dns" | "dns4" | "dns6" => {
                let valid = !value.is_empty()
                    && value
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_');
                if !valid {
                    return Err(bad("invalid dns name"));
                }
                let family = match proto {
                    "dns4" => Some(AddressFamily::V4),
                    "dns6" => Some(AddressFamily::V6),
                    _ => None,
                };
                (value.to_ascii_lowercase(), family)
            }
            other => return Err(bad(&format!("unsupported protocol /{other}"))),
        };
        if parts[3] != "tcp" {
            return Err(bad("the api is reached over /tcp"));
        }
        let port: u16 = parts[4].parse().map_err(|_| bad("invalid tcp port"))?;
        if port == 0 {
            return Err(bad("port 0 cannot be dialed"));
        }
        match &parts[5..] {
            [] | ["http"] => {}
            ["https"] | ["tls", "http"] => return Err(bad("tls to the ipfs api is not supported")),
            _ => return Err(bad("unexpected components after the tcp port")),
        }
        Ok(NodeAddress::Tcp { host, port, family })
    }

    /// An HTTP client builder that dials this address: through the unix socket, or over TCP
    /// resolving `/dns4` and `/dns6` names to their family only. No proxy from the environment
    /// is used: the API is local or on a private network.
    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        let builder = reqwest::Client::builder().no_proxy().tcp_nodelay(true);
        match self {
            NodeAddress::Unix(path) => builder.unix_socket(path.clone()),
            NodeAddress::Tcp { family: Some(family), .. } => {
                builder.dns_resolver(FamilyResolver::shared(*family))
            }
            NodeAddress::Tcp { family: None, .. } => builder,
        }
    }

    /// The base URL requests go to (for a unix socket the host is a placeholder).
    pub fn base_url(&self) -> String {
        match self {
            NodeAddress::Tcp { host, port, .. } => format!("http://{host}:{port}"),
            NodeAddress::Unix(_) => "http://localhost".to_string(),
        }
    }
}

impl fmt::Display for NodeAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeAddress::Tcp { host, port, .. } => write!(f, "{host}:{port}"),
            NodeAddress::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// Resolves names keeping only addresses of one family, so `/dns4/…` never dials IPv6.
#[derive(Debug)]
pub(crate) struct FamilyResolver(pub(crate) AddressFamily);

impl reqwest::dns::Resolve for FamilyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let family = self.0;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let kept: Vec<SocketAddr> = found
                .filter(|addr| match family {
                    AddressFamily::V4 => addr.is_ipv4(),
                    AddressFamily::V6 => addr.is_ipv6(),
                })
                .collect();
            if kept.is_empty() {
                let err: Box<dyn std::error::Error + Send + Sync> =
                    format!("{host} has no {family:?} address").into();
                return Err(err);
            }
            Ok(Box::new(kept.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

impl FamilyResolver {
    pub(crate) fn shared(family: AddressFamily) -> Arc<FamilyResolver> {
        Arc::new(FamilyResolver(family))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tcp_forms() {
        assert_eq!(
            NodeAddress::parse("/ip4/127.0.0.1/tcp/5001").unwrap(),
            NodeAddress::Tcp {
                host: "127.0.0.1".into(),
                port: 5001,
                family: None
            }
        );
        assert_eq!(
            NodeAddress::parse("/ip6/::1/tcp/5001/http")
                .unwrap()
                .base_url(),
            "http://[::1]:5001"
        );
        assert_eq!(
            NodeAddress::parse(" /dns4/ipfs.Local/tcp/80 ").unwrap(),
            NodeAddress::Tcp {
                host: "ipfs.local".into(),
                port: 80,
                family: Some(AddressFamily::V4)
            }
        );
        assert!(matches!(
            NodeAddress::parse("/dns6/ipfs/tcp/80").unwrap(),
            NodeAddress::Tcp {
                family: Some(AddressFamily::V6),
                ..
            }
        ));
        assert!(matches!(
            NodeAddress::parse("/dns/ipfs/tcp/80").unwrap(),
            NodeAddress::Tcp { family: None, .. }
        ));
    }

    #[test]
    fn parses_unix_paths_with_slashes() {
        assert_eq!(
            NodeAddress::parse("/unix/var/run/ipfs/api.sock").unwrap(),
            NodeAddress::Unix(PathBuf::from("/var/run/ipfs/api.sock"))
        );
        assert_eq!(
            NodeAddress::parse("/unix/tmp/x.sock").unwrap().base_url(),
            "http://localhost"
        );
    }

    #[test]
    fn rejects_what_cannot_be_dialed() {
        for bad in [
            "",
            "127.0.0.1:5001",
            "/ip4/127.0.0.1",
            "/ip4/300.0.0.1/tcp/5001",
            "/ip4/127.0.0.1/udp/5001",
            "/ip4/127.0.0.1/tcp/notaport",
            "/ip4/127.0.0.1/tcp/0",
            "/ip4/127.0.0.1/tcp/5001/https",
            "/ip4/127.0.0.1/tcp/5001/ws",
            "/dns4/bad host/tcp/1",
            "/unix",
            "/unix/",
            "/onion3/x/tcp/1",
        ] {
            assert!(
                matches!(NodeAddress::parse(bad), Err(IpfsError::InvalidInput(_))),
                "{bad:?} should be rejected"
            );
        }
    }
}
