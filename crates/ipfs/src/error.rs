//! The one error type every connector returns, so the cluster can react to the kind of failure
//! (retry on timeout, give up on invalid input) without knowing the backend.

/// Why an IPFS operation failed.
///
/// Payloads are plain strings so the error is `Clone` and can be stored in pin status records
/// and sent over RPC unchanged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IpfsError {
    /// The operation did not finish within its time budget.
    #[error("ipfs operation timed out")]
    Timeout,
    /// The requested block, path or link does not exist (or could not be found).
    #[error("not found: {0}")]
    NotFound(String),
    /// The backend cannot do this at all (e.g. IPNS on an offline embedded node).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The backend failed for a reason the caller cannot fix by changing its input.
    #[error("ipfs backend error: {0}")]
    Backend(String),
    /// The caller passed something malformed (bad CID, path or multiaddr).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The connector was shut down.
    #[error("ipfs connector is closed")]
    Closed,
}

impl IpfsError {
    /// Builds a [`IpfsError::Backend`] from any displayable error, keeping its whole chain.
    pub(crate) fn backend(err: impl std::fmt::Display) -> Self {
        IpfsError::Backend(format!("{err:#}"))
    }
}
