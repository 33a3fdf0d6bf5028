//! Errors of the state store.

use cluster_types::{ApiError, ErrorCode};

/// What can go wrong reading or writing the pinset.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The storage engine failed (I/O, a poisoned journal after a failed fsync, a locked
    /// directory because another process has the state open).
    #[error("state storage: {0}")]
    Storage(#[from] fjall::Error),

    /// A pin record carries a version byte this build does not know: it was written by a
    /// newer release, so it is refused instead of being misread.
    #[error("unsupported pin record version {0} (this build reads up to version {max})", max = crate::record::VERSION)]
    UnsupportedVersion(u8),

    /// The state directory was written by a newer release with an incompatible layout.
    #[error(
        "state format version {found} is newer than this build supports ({supported}): \
         run a newer release or restore a backup made by this one"
    )]
    UnsupportedFormat {
        /// The version found in the `meta` keyspace.
        found: u32,
        /// The newest version this build understands.
        supported: u32,
    },

    /// Stored bytes do not decode: disk corruption or a bug; the message says where.
    #[error("corrupt state: {0}")]
    Corrupt(String),
}

impl From<StateError> for ApiError {
    /// Every state failure is the cluster's fault from an API client's point of view.
    fn from(e: StateError) -> Self {
        ApiError::new(ErrorCode::Internal, e.to_string())
    }
}
