//! Errors of consensus components.

use cluster_state::StateError;
use cluster_types::{ApiError, ErrorCode};

/// What can go wrong asking consensus to change or describe the pinset.
#[derive(Debug, thiserror::Error)]
pub enum ConsensusError {
    /// The operation makes no sense for this implementation (adding peers to a
    /// single-peer cluster, removing peers from a CRDT one).
    #[error("{0}")]
    Unsupported(String),

    /// The component is not (yet) able to serve: still syncing, or no leader known.
    #[error("consensus is not ready: {0}")]
    NotReady(String),

    /// Reading or writing the state failed.
    #[error(transparent)]
    State(#[from] StateError),

    /// The component was shut down (or its writer task died); the operation was not
    /// applied.
    #[error("consensus is shut down")]
    Closed,

    /// The CRDT batching queue is full (the original's message, which clients may match).
    #[error("batching max_queue_size reached")]
    BatchingQueueFull,

    /// A remote peer could not be reached or answered badly.
    #[error("consensus network error: {0}")]
    Network(String),

    /// The bounded commit queue stayed full for the whole wait: the peer is overloaded.
    #[error("consensus commit queue is full ({capacity} pending operations): retry later")]
    QueueFull {
        /// The queue's capacity.
        capacity: usize,
    },
}

impl From<ConsensusError> for ApiError {
    /// Maps onto the closed API error set: misuse is a conflict, overload asks the client
    /// to back off, a component that is starting or syncing is temporarily unavailable,
    /// anything else is internal.
    fn from(e: ConsensusError) -> Self {
        let kind = match &e {
            ConsensusError::Unsupported(_) => ErrorCode::Conflict,
            ConsensusError::QueueFull { .. } | ConsensusError::BatchingQueueFull => ErrorCode::Overloaded,
            ConsensusError::Network(_) => ErrorCode::Unavailable,
            ConsensusError::NotReady(_) => ErrorCode::Unavailable,
            ConsensusError::State(_) | ConsensusError::Closed => ErrorCode::Internal,
        };
        ApiError::new(kind, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_status_codes() {
        let code = |e: ConsensusError| ApiError::from(e).code;
        assert_eq!(code(ConsensusError::Unsupported("no".into())), 409);
        assert_eq!(code(ConsensusError::QueueFull { capacity: 1 }), 429);
        assert_eq!(code(ConsensusError::NotReady("syncing".into())), 503);
        assert_eq!(code(ConsensusError::Closed), 500);
        assert_eq!(code(ConsensusError::State(StateError::Corrupt("x".into()))), 500);
    }
}
