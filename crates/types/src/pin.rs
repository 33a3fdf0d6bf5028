//! Pins and their options (§2.4, §5 of the reference).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use cid::Cid;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::ApiError;
use crate::serde_helpers::{cid_string, null_vec, opt_cid_string, vec_or_null};
use crate::time::Timestamp;

/// How a pin is stored in IPFS: the whole DAG or only the root block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PinMode {
    /// The whole DAG (max_depth -1).
    #[default]
    Recursive,
    /// Only the root block (max_depth 0).
    Direct,
}

impl PinMode {
    /// The `max_depth` that encodes this mode.
    pub fn max_depth(self) -> i32 {
        match self {
            PinMode::Recursive => -1,
            PinMode::Direct => 0,
        }
    }

    /// The mode a stored `max_depth` implies (the original never stores the mode itself).
    pub fn from_max_depth(depth: i32) -> Self {
        if depth == 0 { PinMode::Direct } else { PinMode::Recursive }
    }

    /// The lowercase name used in JSON and query strings.
    pub fn as_str(self) -> &'static str {
        match self {
            PinMode::Recursive => "recursive",
            PinMode::Direct => "direct",
        }
    }
}

impl fmt::Display for PinMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PinMode {
    type Err = ApiError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "recursive" | "" => Ok(PinMode::Recursive),
            "direct" => Ok(PinMode::Direct),
            other => Err(ApiError::bad_request(format!("invalid pin mode '{other}': use recursive or direct"))),
        }
    }
}

impl Serialize for PinMode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for PinMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Option::<String>::deserialize(d)?.unwrap_or_default();
        s.parse().map_err(|e: ApiError| serde::de::Error::custom(e.message))
    }
}

/// The kind of a pin in the shared state; the numeric values are the original's bit flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PinType {
    /// A normal pin.
    #[default]
    Data = 2,
    /// The original root of a sharded DAG; never pinned in IPFS.
    Meta = 4,
    /// The CBOR node listing the shards of a sharded DAG.
    ClusterDag = 8,
    /// One shard of a sharded DAG.
    Shard = 16,
}

impl PinType {
    /// The JSON name ("pin", "meta-pin", ...).
    pub fn as_str(self) -> &'static str {
        match self {
            PinType::Data => "pin",
            PinType::Meta => "meta-pin",
            PinType::ClusterDag => "clusterdag-pin",
            PinType::Shard => "shard-pin",
        }
    }

    /// The bit flag.
    pub fn bits(self) -> u8 {
        self as u8
    }
}

impl fmt::Display for PinType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PinType {
    type Err = ApiError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pin" => Ok(PinType::Data),
            "meta-pin" => Ok(PinType::Meta),
            "clusterdag-pin" => Ok(PinType::ClusterDag),
            "shard-pin" => Ok(PinType::Shard),
            other => Err(ApiError::bad_request(format!("invalid pin type '{other}'"))),
        }
    }
}

impl Serialize for PinType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for PinType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(|e: ApiError| serde::de::Error::custom(e.message))
    }
}

/// A set of pin types, parsed from the `filter` of `GET /allocations` and `pin ls --filter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinTypeFilter(u8);

impl PinTypeFilter {
    /// Every type.
    pub const ALL: PinTypeFilter = PinTypeFilter(2 | 4 | 8 | 16);

    /// Parses a comma list of `pin`, `meta-pin`, `clusterdag-pin`, `shard-pin`, `all`.
    /// An empty list means all; an unknown name is an error.
    pub fn parse(list: &str) -> Result<Self, ApiError> {
        let mut bits = 0u8;
        for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part == "all" {
                bits |= Self::ALL.0;
            } else {
                bits |= part.parse::<PinType>()?.bits();
            }
        }
        Ok(if bits == 0 { Self::ALL } else { PinTypeFilter(bits) })
    }

    /// True when the filter lets this type through.
    pub fn matches(self, t: PinType) -> bool {
        self.0 & t.bits() != 0
    }
}

/// User-facing options of a pin (§5.1). Serialized inline at the start of a [`Pin`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinOptions {
    /// Minimum number of peers that must pin; 0 takes the cluster default, -1 means everywhere.
    #[serde(default)]
    pub replication_factor_min: i32,
    /// Maximum number of peers that should pin; 0 takes the cluster default, -1 means everywhere.
    #[serde(default)]
    pub replication_factor_max: i32,
    /// Free-text name.
    #[serde(default)]
    pub name: String,
    /// Recursive or direct.
    #[serde(default)]
    pub mode: PinMode,
    /// Bytes per shard for sharded adds.
    #[serde(default)]
    pub shard_size: u64,
    /// Peers to try first when allocating.
    #[serde(default, with = "null_vec")]
    pub user_allocations: Vec<String>,
    /// When the pin expires and is unpinned by the cluster.
    #[serde(default)]
    pub expire_at: Timestamp,
    /// Free-form string metadata (kept sorted by key for a deterministic encoding).
    #[serde(default, deserialize_with = "de_metadata", serialize_with = "crate::serde_helpers::null_map::serialize")]
    pub metadata: BTreeMap<String, String>,
    /// CID of an existing pin whose allocations and options this one reuses.
    #[serde(default, with = "opt_cid_string")]
    pub pin_update: Option<Cid>,
    /// Multiaddrs (with `/p2p/`) IPFS connects to before pinning.
    #[serde(default, with = "vec_or_null_ser")]
    pub origins: Vec<String>,
}

fn de_metadata<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    Ok(Option::<BTreeMap<String, String>>::deserialize(d)?.unwrap_or_default())
}

/// Origins always serialize as an array (`[]` when empty), as in the original.
mod vec_or_null_ser {
    use super::*;
    pub fn serialize<S: Serializer>(v: &[String], s: S) -> Result<S::Ok, S::Error> {
        v.serialize(s)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        vec_or_null::deserialize(d)
    }
}

impl Default for PinOptions {
    fn default() -> Self {
        PinOptions {
            replication_factor_min: 0,
            replication_factor_max: 0,
            name: String::new(),
            mode: PinMode::Recursive,
            shard_size: 0,
            user_allocations: Vec::new(),
            expire_at: Timestamp::zero(),
            metadata: BTreeMap::new(),
            pin_update: None,
            origins: Vec::new(),
        }
    }
}

/// A pin in the shared state (§2.4), with options first as the original emits them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pin {
    /// The pin's options.
    #[serde(flatten)]
    pub options: PinOptions,
    /// The pinned content.
    #[serde(with = "cid_string")]
    pub cid: Cid,
    /// Data, meta, clusterdag or shard.
    #[serde(rename = "type", default)]
    pub pin_type: PinType,
    /// Peers that must pin it; empty with rf -1 means everywhere.
    #[serde(default, with = "null_vec")]
    pub allocations: Vec<String>,
    /// -1 recursive, 0 direct, N limited depth (shards).
    #[serde(default = "default_max_depth")]
    pub max_depth: i32,
    /// The related CID (meta → clusterdag, shard → previous shard).
    #[serde(default, with = "opt_cid_string")]
    pub reference: Option<Cid>,
    /// When this version of the pin was committed.
    #[serde(default)]
    pub timestamp: Timestamp,
}

fn default_max_depth() -> i32 {
    -1
}

impl Pin {
    /// A data pin of `cid` with default options.
    pub fn new(cid: Cid) -> Self {
        Pin::with_options(cid, PinOptions::default())
    }

    /// A data pin of `cid` with the given options; max_depth follows the mode.
    pub fn with_options(cid: Cid, options: PinOptions) -> Self {
        let max_depth = options.mode.max_depth();
        Pin {
            options,
            cid,
            pin_type: PinType::Data,
            allocations: Vec::new(),
            max_depth,
            reference: None,
            timestamp: Timestamp::zero(),
        }
    }

    /// The pin mode implied by `max_depth`.
    pub fn mode(&self) -> PinMode {
        PinMode::from_max_depth(self.max_depth)
    }

    /// True when the pin goes to every peer (rf -1 / no allocations).
    pub fn is_pin_everywhere(&self) -> bool {
        self.options.replication_factor_min == -1 && self.options.replication_factor_max == -1
    }

    /// True when `peer` must hold this pin.
    pub fn is_allocated_to(&self, peer: &str) -> bool {
        self.is_pin_everywhere() || self.allocations.iter().any(|p| p == peer)
    }

    /// True when the pin has an expiry in the past.
    pub fn is_expired(&self, now: chrono::DateTime<chrono::Utc>) -> bool {
        matches!(self.options.expire_at.0, Some(t) if t <= now)
    }

    /// Checks the rules of §5.1 that do not need the cluster's state.
    pub fn validate(&self) -> Result<(), ApiError> {
        let (min, max) = (self.options.replication_factor_min, self.options.replication_factor_max);
        if min < -1 || max < -1 {
            return Err(ApiError::bad_request("replication factors must be -1 or greater"));
        }
        if (min == -1) != (max == -1) {
            return Err(ApiError::bad_request(
                "replication_factor_min and replication_factor_max must both be -1 for pin-everywhere",
            ));
        }
        if max != -1 && max != 0 && min > max {
            return Err(ApiError::bad_request(format!(
                "replication_factor_min ({min}) is greater than replication_factor_max ({max})"
            )));
        }
        if self.max_depth < -1 {
            return Err(ApiError::bad_request("max_depth must be -1 or greater"));
        }
        Ok(())
    }
}

/// One line of `/add` output (§2.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddedOutput {
    /// File or directory name (path relative to the add).
    pub name: String,
    /// The resulting CID; `None` (`null`) on a progress line, which only reports `bytes`.
    #[serde(default, with = "opt_cid_string")]
    pub cid: Option<Cid>,
    /// Bytes of the file read so far (progress lines) or stored (a CAR import's line).
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub bytes: u64,
    /// Cumulative DAG size.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub size: u64,
    /// Peers the content went to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allocations: Vec<String>,
}

fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const CID: &str = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi";

    #[test]
    fn pin_json_has_original_fields_in_order() {
        let mut p = Pin::new(CID.parse().unwrap());
        p.options.replication_factor_min = 2;
        p.options.replication_factor_max = 3;
        p.options.name = "dataset-1".into();
        p.options.metadata.insert("owner".into(), "alice".into());
        p.allocations = vec!["A".into(), "B".into()];
        p.timestamp = Timestamp::parse("2024-05-06T10:00:00Z").unwrap();
        let s = serde_json::to_string(&p).unwrap();
        assert_eq!(
            s,
            format!(
                "{{\"replication_factor_min\":2,\"replication_factor_max\":3,\"name\":\"dataset-1\",\"mode\":\"recursive\",\"shard_size\":0,\"user_allocations\":null,\"expire_at\":\"0001-01-01T00:00:00Z\",\"metadata\":{{\"owner\":\"alice\"}},\"pin_update\":null,\"origins\":[],\"cid\":\"{CID}\",\"type\":\"pin\",\"allocations\":[\"A\",\"B\"],\"max_depth\":-1,\"reference\":null,\"timestamp\":\"2024-05-06T10:00:00Z\"}}"
            )
        );
        let back: Pin = serde_json::from_str(&s).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn pin_accepts_legacy_cid_objects_and_nulls() {
        let s = format!("{{\"cid\":{{\"/\":\"{CID}\"}},\"type\":\"pin\",\"allocations\":null,\"metadata\":null,\"origins\":null}}");
        let p: Pin = serde_json::from_str(&s).unwrap();
        assert_eq!(p.cid.to_string(), CID);
        assert_eq!(p.max_depth, -1);
    }

    #[test]
    fn validate_rejects_bad_factors() {
        let mut p = Pin::new(CID.parse().unwrap());
        p.options.replication_factor_min = -1;
        assert!(p.validate().is_err());
        p.options.replication_factor_max = -1;
        assert!(p.validate().is_ok());
        p.options.replication_factor_min = 3;
        p.options.replication_factor_max = 2;
        assert!(p.validate().is_err());
    }

    #[test]
    fn type_filter() {
        let f = PinTypeFilter::parse("pin,shard-pin").unwrap();
        assert!(f.matches(PinType::Data));
        assert!(!f.matches(PinType::Meta));
        assert!(PinTypeFilter::parse("").unwrap().matches(PinType::Meta));
        assert!(PinTypeFilter::parse("bogus").is_err());
    }
}
