//! The HTTP faces of a peer: the REST API (port 9094) and the Prometheus endpoint (port 8888).
//!
//! The REST API is a drop-in replacement for the original's `api/rest`: same paths, same JSON
//! field names, same NDJSON streaming with an `X-Stream-Error` trailer, same `{"code","message"}`
//! error objects. The cluster plugs in through the [`ClusterApi`] trait, so this crate knows
//! nothing about consensus, trackers or IPFS.
//!
//! Requests are routed by warp filters; connections are driven by hyper's HTTP/1 server directly
//! (not `warp::serve`) because three things need the connection itself: the per-request choice
//! of a streaming body that ends with trailers, the read-header and idle timeouts of the
//! original, and its header-size limit.

#![warn(missing_docs)]

mod config;
mod error;
mod metrics;
mod multiaddr;
mod rest;
mod seam;
mod security;
mod server;
mod stream;
mod tls;

pub use config::RestApiConfig;
pub use error::{ApiServerError, MultiaddrError};
pub use metrics::serve_metrics;
pub use multiaddr::multiaddr_to_socketaddr;
pub use rest::serve_rest;
pub use seam::{ApiStream, ClusterApi};
pub use security::{
    CorsConfig, DEFAULT_TOKEN_TTL, ErrorRenderer, REALM, Security, SecurityConfig, TokenError, issue_token,
    verify_token,
};
pub use server::{
    Guard, RawBody, ServerOptions, WarpResponse, header_map, raw_response, serve as serve_http, serve_all,
    serve_guarded,
};
pub use tls::{TlsFiles, load_tls};
pub use stream::STREAM_ERROR_TRAILER;
