//! The error object every API returns, and the closed set of codes crates map their errors to.

use serde::{Deserialize, Serialize};

/// The closed set of error kinds at API edges. Each crate maps its own error enum onto one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Malformed or invalid input (400).
    BadRequest,
    /// Missing or wrong credentials (401).
    Unauthorized,
    /// The thing does not exist (404).
    NotFound,
    /// Not allowed in this state or mode (409).
    Conflict,
    /// A bounded queue or limit is full; retry later (429).
    Overloaded,
    /// Something failed inside the cluster (500).
    Internal,
    /// A dependency (IPFS, a peer) did not answer in time or at all (503).
    Unavailable,
    /// The request timed out (504).
    Timeout,
}

impl ErrorCode {
    /// The HTTP status for this kind.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::BadRequest => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::NotFound => 404,
            ErrorCode::Conflict => 409,
            ErrorCode::Overloaded => 429,
            ErrorCode::Internal => 500,
            ErrorCode::Unavailable => 503,
            ErrorCode::Timeout => 504,
        }
    }

    /// The kind for an HTTP status (used by clients that only see the status).
    pub fn from_http_status(status: u16) -> Self {
        match status {
            400 => ErrorCode::BadRequest,
            401 | 403 => ErrorCode::Unauthorized,
            404 => ErrorCode::NotFound,
            409 => ErrorCode::Conflict,
            429 => ErrorCode::Overloaded,
            503 => ErrorCode::Unavailable,
            504 => ErrorCode::Timeout,
            _ => ErrorCode::Internal,
        }
    }
}

/// The `{"code","message"}` body of every error response; `code` is the HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// Human-readable, lowercase, one line.
    pub message: String,
}

impl ApiError {
    /// An error of the given kind.
    pub fn new(kind: ErrorCode, message: impl Into<String>) -> Self {
        ApiError { code: kind.http_status(), message: message.into() }
    }

    /// A 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    /// A 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// A 500.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }

    /// The kind of this error.
    pub fn kind(&self) -> ErrorCode {
        ErrorCode::from_http_status(self.code)
    }
}

/// The message the original uses when a CID is not in the state; clients match on it.
pub const NOT_FOUND_MESSAGE: &str = "pin is not part of the pinset";
