use thiserror::Error;

/// Errors of the network layer.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum NetError {
    /// The peer could not be reached (no address, dial failure, connection lost).
    #[error("peer {peer} is unreachable: {reason}")]
    Unreachable {
        /// The peer.
        peer: String,
        /// What failed.
        reason: String,
    },
    /// The call did not complete in time.
    #[error("rpc to {peer} timed out")]
    Timeout {
        /// The peer.
        peer: String,
    },
    /// Too many calls are in flight.
    #[error("too many rpc calls in flight")]
    Busy,
    /// The remote peer refused or failed the call.
    #[error("{message}")]
    Remote {
        /// API error code (see `cluster_types::ErrorCode`).
        code: u16,
        /// The remote's message.
        message: String,
    },
    /// The network actor is restarting or gone.
    #[error("the network host is not available")]
    Closed,
    /// Bad configuration (listen address, secret).
    #[error("network configuration: {0}")]
    Config(String),
}

impl From<NetError> for cluster_types::ApiError {
    fn from(e: NetError) -> Self {
        use cluster_types::ErrorCode;
        match e {
            NetError::Remote { code, message } => {
                cluster_types::ApiError::new(ErrorCode::from_http_status(code), message)
            }
            NetError::Timeout { .. } => cluster_types::ApiError::new(ErrorCode::Timeout, e.to_string()),
            other => cluster_types::ApiError::new(ErrorCode::Unavailable, other.to_string()),
        }
    }
}
