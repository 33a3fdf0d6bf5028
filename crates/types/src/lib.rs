//! API types of IPFS Cluster whose JSON is byte-compatible with the original (Go) implementation.
//!
//! Everything an operator's scripts or client libraries parse lives here: pins and their
//! options, tracker statuses, peer identities, metrics and alerts. CIDs serialize as plain
//! strings, times as RFC 3339 with `0001-01-01T00:00:00Z` standing for "unset", like Go.

pub mod add;
pub mod duration;
pub mod error;
pub mod id;
pub mod metric;
pub mod pin;
pub mod query;
pub mod serde_helpers;
pub mod status;
pub mod time;

pub use add::{AddFormat, AddParams};
pub use duration::{format_go_duration, parse_go_duration, DurationParseError};
pub use error::{ApiError, ErrorCode};
pub use id::{ConnectGraph, GlobalRepoGc, IpfsId, IpfsRepoGc, PeerId, RepoGc, Version, ID};
pub use metric::{Alert, Metric};
pub use pin::{AddedOutput, Pin, PinMode, PinOptions, PinType, PinTypeFilter};
pub use status::{GlobalPinInfo, PinInfo, PinInfoShort, TrackerStatus, TrackerStatusFilter};
pub use time::Timestamp;

/// Re-export of the CID type used across the workspace.
pub use cid::Cid;

/// The release this implementation is compatible with, reported by `/version`.
pub const VERSION: &str = "1.1.6";

/// The cluster RPC protocol identifier, decoupled from the release number like the original.
pub const RPC_PROTOCOL: &str = "/ipfscluster/1.0/rpc";

/// Parses a CID from user input, giving a message that names the offending text.
pub fn parse_cid(s: &str) -> Result<Cid, ApiError> {
    s.trim()
        .parse::<Cid>()
        .map_err(|e| ApiError::bad_request(format!("invalid CID '{s}': {e}")))
}
