//! Tracker statuses and the per-peer / cluster-wide pin status objects (§2.4, §5.5).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use cid::Cid;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::ApiError;
use crate::serde_helpers::{cid_string, null_vec};
use crate::time::Timestamp;

/// The state of a pin on one peer. Values are the original's bit flags so filters can OR them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
#[repr(u32)]
pub enum TrackerStatus {
    /// Unknown; as a filter, "all".
    #[default]
    Undefined = 0,
    /// The peer could not be asked, or a lookup failed.
    ClusterError = 1 << 1,
    /// The last pin attempt failed.
    PinError = 1 << 2,
    /// The last unpin attempt failed.
    UnpinError = 1 << 3,
    /// IPFS holds the pin.
    Pinned = 1 << 4,
    /// A pin operation is running.
    Pinning = 1 << 5,
    /// An unpin operation is running.
    Unpinning = 1 << 6,
    /// Neither pinned nor in the state.
    Unpinned = 1 << 7,
    /// In the state but allocated to other peers.
    Remote = 1 << 8,
    /// Waiting in the pin queue.
    PinQueued = 1 << 9,
    /// Waiting in the unpin queue.
    UnpinQueued = 1 << 10,
    /// A meta pin, tracked through its shards.
    Sharded = 1 << 11,
    /// In the state and allocated here, but IPFS does not hold it and nothing is in flight.
    UnexpectedlyUnpinned = 1 << 12,
}

const ALL_STATUSES: [TrackerStatus; 12] = [
    TrackerStatus::ClusterError,
    TrackerStatus::PinError,
    TrackerStatus::UnpinError,
    TrackerStatus::Pinned,
    TrackerStatus::Pinning,
    TrackerStatus::Unpinning,
    TrackerStatus::Unpinned,
    TrackerStatus::Remote,
    TrackerStatus::PinQueued,
    TrackerStatus::UnpinQueued,
    TrackerStatus::Sharded,
    TrackerStatus::UnexpectedlyUnpinned,
];

impl TrackerStatus {
    /// The JSON / text name.
    pub fn as_str(self) -> &'static str {
        match self {
            TrackerStatus::Undefined => "undefined",
            TrackerStatus::ClusterError => "cluster_error",
            TrackerStatus::PinError => "pin_error",
            TrackerStatus::UnpinError => "unpin_error",
            TrackerStatus::Pinned => "pinned",
            TrackerStatus::Pinning => "pinning",
            TrackerStatus::Unpinning => "unpinning",
            TrackerStatus::Unpinned => "unpinned",
            TrackerStatus::Remote => "remote",
            TrackerStatus::PinQueued => "pin_queued",
            TrackerStatus::UnpinQueued => "unpin_queued",
            TrackerStatus::Sharded => "sharded",
            TrackerStatus::UnexpectedlyUnpinned => "unexpectedly_unpinned",
        }
    }

    /// The bit flag.
    pub fn bits(self) -> u32 {
        self as u32
    }

    /// Every concrete status, for metrics and documentation.
    pub fn all() -> &'static [TrackerStatus] {
        &ALL_STATUSES
    }

    /// True for the statuses grouped under the `error` filter.
    pub fn is_error(self) -> bool {
        TrackerStatusFilter::ERROR.matches(self)
    }
}

impl fmt::Display for TrackerStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TrackerStatus {
    type Err = ApiError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "undefined" {
            return Ok(TrackerStatus::Undefined);
        }
        ALL_STATUSES
            .iter()
            .copied()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| ApiError::bad_request(format!("unknown tracker status '{s}'")))
    }
}

impl Serialize for TrackerStatus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for TrackerStatus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(|e: ApiError| serde::de::Error::custom(e.message))
    }
}

/// A set of statuses: the `filter` of `GET /pins` and `status --filter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TrackerStatusFilter(u32);

impl TrackerStatusFilter {
    /// The raw bit set (for wire encodings between peers).
    pub fn bits(self) -> u32 {
        self.0
    }

    /// Rebuilds a filter from [`TrackerStatusFilter::bits`].
    pub fn from_bits(bits: u32) -> Self {
        TrackerStatusFilter(bits)
    }
}

impl TrackerStatusFilter {
    /// Matches everything.
    pub const ALL: TrackerStatusFilter = TrackerStatusFilter(0);
    /// The composite `error` filter.
    pub const ERROR: TrackerStatusFilter = TrackerStatusFilter(
        TrackerStatus::ClusterError as u32 | TrackerStatus::PinError as u32 | TrackerStatus::UnpinError as u32,
    );
    /// The composite `queued` filter.
    pub const QUEUED: TrackerStatusFilter =
        TrackerStatusFilter(TrackerStatus::PinQueued as u32 | TrackerStatus::UnpinQueued as u32);

    /// Parses a comma list of status names plus the composites `error` and `queued`.
    ///
    /// Unlike the original, an unknown name is an error rather than silently ignored, so a typo
    /// does not turn into "list everything".
    pub fn parse(list: &str) -> Result<Self, ApiError> {
        let mut bits = 0u32;
        for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            bits |= match part {
                "error" => Self::ERROR.0,
                "queued" => Self::QUEUED.0,
                other => other.parse::<TrackerStatus>()?.bits(),
            };
        }
        Ok(TrackerStatusFilter(bits))
    }

    /// True when everything passes.
    pub fn is_all(self) -> bool {
        self.0 == 0
    }

    /// True when `s` passes the filter.
    pub fn matches(self, s: TrackerStatus) -> bool {
        self.0 == 0 || self.0 & s.bits() != 0
    }

    /// True when every status in the filter can only come from an in-flight or failed operation,
    /// so the tracker can answer without asking IPFS for its pinset.
    pub fn only_operation_states(self) -> bool {
        let op_states = TrackerStatus::PinError as u32
            | TrackerStatus::UnpinError as u32
            | TrackerStatus::Pinning as u32
            | TrackerStatus::Unpinning as u32
            | TrackerStatus::PinQueued as u32
            | TrackerStatus::UnpinQueued as u32;
        self.0 != 0 && self.0 & !op_states == 0
    }
}

/// The status of a pin on one peer, as nested in `peer_map`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinInfoShort {
    /// The peer's name.
    #[serde(default)]
    pub peername: String,
    /// The peer's IPFS node id.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ipfs_peer_id: String,
    /// The peer's IPFS node addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ipfs_peer_addresses: Vec<String>,
    /// The status.
    pub status: TrackerStatus,
    /// When the status last changed.
    #[serde(default)]
    pub timestamp: Timestamp,
    /// The last error, empty when none.
    #[serde(default)]
    pub error: String,
    /// How many times the operation was tried.
    #[serde(default)]
    pub attempt_count: u32,
    /// Whether the pin goes through the priority queue.
    #[serde(default)]
    pub priority_pin: bool,
}

/// The status of a pin on one peer, with the pin's identity (the local form).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinInfo {
    /// The content.
    #[serde(with = "cid_string")]
    pub cid: Cid,
    /// The pin's name.
    #[serde(default)]
    pub name: String,
    /// The peer this status is about.
    #[serde(default)]
    pub peer: String,
    /// The pin's allocations.
    #[serde(default, with = "null_vec")]
    pub allocations: Vec<String>,
    /// The pin's origins.
    #[serde(default, deserialize_with = "crate::serde_helpers::vec_or_null::deserialize")]
    pub origins: Vec<String>,
    /// When the pin was created.
    #[serde(default)]
    pub created: Timestamp,
    /// The pin's metadata.
    #[serde(default, serialize_with = "crate::serde_helpers::null_map::serialize", deserialize_with = "de_map")]
    pub metadata: BTreeMap<String, String>,
    /// The status proper.
    #[serde(flatten)]
    pub info: PinInfoShort,
}

fn de_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    Ok(Option::<BTreeMap<String, String>>::deserialize(d)?.unwrap_or_default())
}

/// The status of a pin on every relevant peer: one object per line of `GET /pins`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlobalPinInfo {
    /// The content.
    #[serde(with = "cid_string")]
    pub cid: Cid,
    /// The pin's name.
    #[serde(default)]
    pub name: String,
    /// The pin's allocations.
    #[serde(default, with = "null_vec")]
    pub allocations: Vec<String>,
    /// The pin's origins.
    #[serde(default, deserialize_with = "crate::serde_helpers::vec_or_null::deserialize")]
    pub origins: Vec<String>,
    /// When the pin was created.
    #[serde(default)]
    pub created: Timestamp,
    /// The pin's metadata.
    #[serde(default, serialize_with = "crate::serde_helpers::null_map::serialize", deserialize_with = "de_map")]
    pub metadata: BTreeMap<String, String>,
    /// Status per peer id.
    #[serde(default)]
    pub peer_map: BTreeMap<String, PinInfoShort>,
}

impl GlobalPinInfo {
    /// Wraps one peer's status.
    pub fn from_pin_info(pi: PinInfo) -> Self {
        let mut peer_map = BTreeMap::new();
        peer_map.insert(pi.peer.clone(), pi.info);
        GlobalPinInfo {
            cid: pi.cid,
            name: pi.name,
            allocations: pi.allocations,
            origins: pi.origins,
            created: pi.created,
            metadata: pi.metadata,
            peer_map,
        }
    }

    /// True when any peer's status passes the filter.
    pub fn matches(&self, filter: TrackerStatusFilter) -> bool {
        filter.is_all() || self.peer_map.values().any(|p| filter.matches(p.status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composite_filters() {
        let f = TrackerStatusFilter::parse("error").unwrap();
        assert!(f.matches(TrackerStatus::PinError));
        assert!(f.matches(TrackerStatus::ClusterError));
        assert!(!f.matches(TrackerStatus::Pinned));
        let q = TrackerStatusFilter::parse("queued,pinned").unwrap();
        assert!(q.matches(TrackerStatus::UnpinQueued));
        assert!(q.matches(TrackerStatus::Pinned));
        assert!(!q.only_operation_states());
        assert!(TrackerStatusFilter::parse("queued,pinning").unwrap().only_operation_states());
        assert!(TrackerStatusFilter::parse("").unwrap().is_all());
        assert!(TrackerStatusFilter::parse("pinnned").is_err());
    }

    #[test]
    fn status_names_roundtrip() {
        for s in TrackerStatus::all() {
            assert_eq!(s.as_str().parse::<TrackerStatus>().unwrap(), *s);
            let j = serde_json::to_string(s).unwrap();
            assert_eq!(serde_json::from_str::<TrackerStatus>(&j).unwrap(), *s);
        }
    }

    #[test]
    fn global_pin_info_shape() {
        let g = GlobalPinInfo {
            cid: "bafkqaaa".parse().unwrap(),
            name: "n".into(),
            allocations: vec![],
            origins: vec![],
            created: Timestamp::zero(),
            metadata: BTreeMap::new(),
            peer_map: BTreeMap::from([(
                "P".to_string(),
                PinInfoShort {
                    peername: "p".into(),
                    ipfs_peer_id: String::new(),
                    ipfs_peer_addresses: vec![],
                    status: TrackerStatus::Remote,
                    timestamp: Timestamp::zero(),
                    error: String::new(),
                    attempt_count: 0,
                    priority_pin: false,
                },
            )]),
        };
        let s = serde_json::to_string(&g).unwrap();
        assert_eq!(
            s,
            "{\"cid\":\"bafkqaaa\",\"name\":\"n\",\"allocations\":null,\"origins\":[],\"created\":\"0001-01-01T00:00:00Z\",\"metadata\":null,\"peer_map\":{\"P\":{\"peername\":\"p\",\"status\":\"remote\",\"timestamp\":\"0001-01-01T00:00:00Z\",\"error\":\"\",\"attempt_count\":0,\"priority_pin\":false}}}"
        );
        assert_eq!(serde_json::from_str::<GlobalPinInfo>(&s).unwrap(), g);
    }
}
