//! Errors of starting the HTTP servers and of reading listen addresses.

use std::net::SocketAddr;

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ApiServerError {
    /// The address is taken, not local, or not permitted.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address that was asked for.
        addr: SocketAddr,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A configured extra header has an invalid name or value.
    #[error("invalid configured header '{name}': {reason}")]
    InvalidHeader {
        /// The header name as configured.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The TLS certificate or key cannot be used.
    #[error("tls: {}: {reason}", path.display())]
    Tls {
        /// The offending file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// Why a multiaddr could not become a socket address.
#[derive(Debug, thiserror::Error)]
pub enum MultiaddrError {
    /// Not of the form `/ip4|ip6|dns|dns4|dns6/<host>/tcp/<port>`.
    #[error("unsupported multiaddr '{0}': expected /ip4|ip6|dns|dns4|dns6/<host>/tcp/<port>")]
    Unsupported(String),
    /// The host part is not a valid address for its protocol.
    #[error("invalid host '{host}' in multiaddr '{multiaddr}'")]
    InvalidHost {
        /// The whole multiaddr.
        multiaddr: String,
        /// The offending host part.
        host: String,
    },
    /// The port is not a number in 0..=65535.
    #[error("invalid tcp port '{port}' in multiaddr '{multiaddr}'")]
    InvalidPort {
        /// The whole multiaddr.
        multiaddr: String,
        /// The offending port part.
        port: String,
    },
    /// The DNS name did not resolve to an address of the wanted family.
    #[error("cannot resolve '{host}' in multiaddr '{multiaddr}': {reason}")]
    Resolve {
        /// The whole multiaddr.
        multiaddr: String,
        /// The name that was looked up.
        host: String,
        /// What went wrong.
        reason: String,
    },
}
