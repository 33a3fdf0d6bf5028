//! The errors a client call can end with.

use cluster_types::ApiError;

/// Why a call to the cluster API failed.
///
/// The variants follow what a caller does about them: [`ClientError::Api`] means the
/// cluster answered and refused, [`ClientError::Timeout`] that no answer came in time, and
/// the others that the request could not be made or its answer could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The cluster answered with an error object (`{"code","message"}`), or reported one in
    /// the `X-Stream-Error` trailer of a stream (then with code 500, like the original client).
    #[error("{} (code {})", .0.message, .0.code)]
    Api(ApiError),
    /// The request could not be sent or its answer could not be read (connection refused,
    /// reset, DNS failure...).
    #[error("{0}")]
    Transport(String),
    /// The request or the wait did not finish in the allowed time.
    #[error("{0}")]
    Timeout(String),
    /// The cluster answered with something that is not the expected JSON.
    #[error("invalid response from the cluster API: {0}")]
    Decode(String),
    /// An argument given to the client is malformed (host address, CID, path, peer id).
    #[error("{0}")]
    InvalidArgument(String),
    /// The request needs something this client does not support yet (HTTPS, libp2p or
    /// unix-socket endpoints).
    #[error("{0}")]
    Unsupported(String),
    /// A `wait_for` saw a peer in an error (or undefined) state.
    #[error("{0}")]
    WaitFailed(String),
}

impl ClientError {
    /// The API error object, when the cluster returned one.
    pub fn api_error(&self) -> Option<&ApiError> {
        match self {
            ClientError::Api(e) => Some(e),
            _ => None,
        }
    }

    /// True for [`ClientError::Timeout`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, ClientError::Timeout(_))
    }

    /// Maps a reqwest failure: timeouts apart, everything is a transport error whose message
    /// carries the whole cause chain on one line (reqwest's own message hides the cause).
    pub(crate) fn from_reqwest(e: reqwest::Error) -> Self {
        let message = error_chain(&e);
        if e.is_timeout() {
            ClientError::Timeout(message)
        } else if e.is_decode() {
            ClientError::Decode(message)
        } else {
            ClientError::Transport(message)
        }
    }
}

/// Joins an error and its sources into one line, skipping causes already contained in the
/// text so far (hyper and reqwest often repeat each other).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !text.is_empty() && !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out.replace(['\n', '\r'], " ")
}
