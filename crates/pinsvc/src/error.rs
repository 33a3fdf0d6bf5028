//! Errors of the request index and of starting the server, and the spec's error body.

use std::net::SocketAddr;

use cluster_types::{ApiError, ErrorCode};
use serde::Serialize;

/// What can go wrong reading or writing the request index.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The storage engine failed (I/O, or another process holds the directory open).
    #[error("request index storage: {0}")]
    Storage(#[from] fjall::Error),

    /// The directory was written with a layout this build does not know.
    #[error(
        "request index format version {found} is not supported (this build reads version {supported}): \
         run the release that wrote it or move the directory away"
    )]
    UnsupportedFormat {
        /// The version found on disk.
        found: u32,
        /// The only version this build reads and writes.
        supported: u32,
    },

    /// A record carries a version byte this build does not know (written by a newer release).
    #[error("unsupported request record version {0}")]
    UnsupportedRecord(u8),

    /// Stored bytes do not decode: disk corruption or a bug; the message says where.
    #[error("corrupt request index: {0}")]
    Corrupt(String),
}

impl From<IndexError> for ApiError {
    /// Index failures are the service's fault, never the client's.
    fn from(e: IndexError) -> Self {
        ApiError::internal(e.to_string())
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// No listen address was configured.
    #[error("the pinning service api has no listen address")]
    NoListenAddress,
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

impl From<cluster_api::ApiServerError> for ServeError {
    fn from(e: cluster_api::ApiServerError) -> Self {
        match e {
            cluster_api::ApiServerError::Bind { addr, source } => ServeError::Bind { addr, source },
            cluster_api::ApiServerError::InvalidHeader { name, reason } => ServeError::InvalidHeader { name, reason },
            cluster_api::ApiServerError::Tls { path, reason } => ServeError::Tls { path, reason },
        }
    }
}

/// The spec's `Failure` object: `{"error":{"reason","details"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Failure {
    /// The error proper.
    pub error: FailureError,
}

/// The inside of a [`Failure`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct FailureError {
    /// A machine-readable code such as `BAD_REQUEST` or `NOT_FOUND`.
    pub reason: String,
    /// A human-readable explanation.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
}

impl Failure {
    /// The failure body for an error, with the spec's reason for its status.
    pub fn from_api_error(e: &ApiError) -> Self {
        Failure {
            error: FailureError {
                reason: reason_for(e.code).to_string(),
                details: e.message.clone(),
            },
        }
    }
}

/// The `reason` of a status: the spec's own names where it has one, else the status's name.
pub fn reason_for(status: u16) -> &'static str {
    match status {
        400 => "BAD_REQUEST",
        401 => "UNAUTHORIZED",
        404 => "NOT_FOUND",
        405 => "METHOD_NOT_ALLOWED",
        409 => "CONFLICT",
        413 => "PAYLOAD_TOO_LARGE",
        429 => "TOO_MANY_REQUESTS",
        503 => "SERVICE_UNAVAILABLE",
        504 => "GATEWAY_TIMEOUT",
        s if (400..500).contains(&s) => "BAD_REQUEST",
        _ => "INTERNAL_SERVER_ERROR",
    }
}

/// A 400 with this explanation.
pub(crate) fn bad_request(details: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::BadRequest, details)
}
