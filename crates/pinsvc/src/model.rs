//! The spec's JSON objects (`Pin`, `PinStatus`, `PinResults`, `Status`) and how a cluster
//! status becomes a request status.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::str::FromStr;

use cluster_types::serde_helpers::cid_string;
use cluster_types::{ApiError, Cid, GlobalPinInfo, TrackerStatus, parse_cid};
use serde::{Deserialize, Serialize};

use crate::error::bad_request;

/// Longest accepted `name`, in characters (the spec's `maxLength`).
pub const MAX_NAME_CHARS: usize = 255;
/// Most `origins` a pin may carry (the spec's `maxItems`).
pub const MAX_ORIGINS: usize = 20;
/// Most `meta` entries a pin may carry (the spec's `maxProperties`).
pub const MAX_META_ENTRIES: usize = 1000;
/// Most `delegates` returned (the spec's `maxItems`).
pub const MAX_DELEGATES: usize = 20;

/// The spec's `Pin` object: what a client asked to pin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinObject {
    /// The content to pin recursively.
    #[serde(with = "cid_string")]
    pub cid: Cid,
    /// Optional name, at most 255 characters; omitted from JSON when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Multiaddrs known to provide the data.
    #[serde(default)]
    pub origins: Vec<String>,
    /// Free-form string metadata.
    #[serde(default)]
    pub meta: BTreeMap<String, String>,
}

/// The request body as sent; every field is checked by [`PinObject::from_body`].
#[derive(Deserialize)]
struct PinBody {
    cid: Option<String>,
    name: Option<String>,
    origins: Option<Vec<String>>,
    meta: Option<BTreeMap<String, String>>,
}

impl PinObject {
    /// Parses and validates a `Pin` request body. Unknown fields are ignored, as the spec
    /// allows extensions; every problem with the known ones is a 400.
    pub fn from_body(body: &[u8]) -> Result<Self, ApiError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(bad_request("a JSON Pin object is required as request body"));
        }
        let body: PinBody = serde_json::from_slice(body)
            .map_err(|e| bad_request(format!("malformed Pin object: {e}")))?;
        let cid = match body.cid.as_deref() {
            None | Some("") => return Err(bad_request("the Pin object has no cid")),
            Some(c) => parse_cid(c)?,
        };
        let pin = PinObject {
            cid,
            name: body.name.unwrap_or_default(),
            origins: body.origins.unwrap_or_default(),
            meta: body.meta.unwrap_or_default(),
        };
        pin.validate()?;
        Ok(pin)
    }

    /// Checks the spec's limits on name, origins and meta.
    pub fn validate(&self) -> Result<(), ApiError> {
        check_name(&self.name)?;
        if self.origins.len() > MAX_ORIGINS {
            return Err(bad_request(format!(
                "too many origins: {} (at most {MAX_ORIGINS})",
                self.origins.len()
            )));
        }
        let mut seen = HashSet::new();
        for o in &self.origins {
            // Full multiaddr parsing is the cluster's job when it dials them; this only keeps
            // obvious garbage out of the stored request.
            if !o.starts_with('/') || o.len() < 2 || o.chars().any(char::is_whitespace) {
                return Err(bad_request(format!(
                    "invalid origin '{o}': expected a multiaddr"
                )));
            }
            if !seen.insert(o.as_str()) {
                return Err(bad_request(format!("duplicate origin '{o}'")));
            }
        }
        if self.meta.len() > MAX_META_ENTRIES {
            return Err(bad_request(format!(
                "too many meta entries: {} (at most {MAX_META_ENTRIES})",
                self.meta.len()
            )));
        }
        Ok(())
    }
}

/// Rejects names longer than the spec allows.
pub(crate) fn check_name(name: &str) -> Result<(), ApiError> {
    let n = name.chars().count();
    if n > MAX_NAME_CHARS {
        return Err(bad_request(format!(
            "name is {n} characters long (at most {MAX_NAME_CHARS})"
        )));
    }
    Ok(())
}

/// The state of a pin request, as the spec names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Waiting to be pinned.
    Queued,
    /// Being fetched and pinned.
    Pinning,
    /// Pinned.
    Pinned,
    /// The service could not pin it.
    Failed,
}

impl Status {
    /// Every status, in the spec's order.
    pub const ALL: [Status; 4] = [
        Status::Queued,
        Status::Pinning,
        Status::Pinned,
        Status::Failed,
    ];

    /// The spec's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Pinning => "pinning",
            Status::Pinned => "pinned",
            Status::Failed => "failed",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = ApiError;
    fn from_str(s: &str) -> Result<Self, ApiError> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                bad_request(format!(
                    "invalid status '{s}': expected queued, pinning, pinned or failed"
                ))
            })
    }
}

/// The spec's `PinStatus`: a request with its current state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinStatus {
    /// The request's id.
    pub requestid: String,
    /// Its current state.
    pub status: Status,
    /// When the request was made (RFC 3339, millisecond precision, unique per index).
    pub created: String,
    /// What was asked for.
    pub pin: PinObject,
    /// IPFS multiaddrs of the peers that hold or will hold the data.
    pub delegates: Vec<String>,
    /// Extra details; `status_details` explains failures.
    #[serde(default)]
    pub info: BTreeMap<String, String>,
}

/// The spec's `PinResults`: one page of a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinResults {
    /// How many requests match the filters, across all pages.
    pub count: u64,
    /// This page, newest first.
    pub results: Vec<PinStatus>,
}

/// A request's state derived from the cluster, with an explanation when useful.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerivedStatus {
    /// The spec status.
    pub status: Status,
    /// Why, when it is `failed` or some peer reported an error.
    pub details: Option<String>,
    /// IPFS addresses of the peers that hold or work on the pin.
    pub delegates: Vec<String>,
}

/// Turns the cluster's view of a CID into the spec's status.
///
/// First match wins:
/// 1. any peer `pinning` → `pinning`; any peer `pin_queued` → `queued` (work in flight);
/// 2. any peer `pinned` (or `sharded`, a meta pin tracked through its shards) → `pinned`:
///    the service holds the data, and errors elsewhere are retried by the cluster;
/// 3. any peer `pin_error` or `cluster_error` → `failed`;
/// 4. nothing reported, only `remote` entries, or `unexpectedly_unpinned` → `queued`: the pin
///    is in the pinset and the cluster's recover loop will (re)queue it;
/// 5. anything else (`unpinned`, `unpinning`, `unpin_queued`, `unpin_error`) → `failed`: the
///    CID left the cluster pinset behind this request's back.
///
/// Unlike the original, an unreachable peer does not turn a pin held elsewhere into
/// `failed`, and states it could not map are not dropped from listings.
pub fn derive_status(gpi: &GlobalPinInfo) -> DerivedStatus {
    let has = |s: TrackerStatus| gpi.peer_map.values().any(|p| p.status == s);
    let errors: Vec<String> = gpi
        .peer_map
        .iter()
        .filter(|(_, p)| {
            matches!(
                p.status,
                TrackerStatus::PinError | TrackerStatus::ClusterError
            )
        })
        .map(|(peer, p)| {
            let who = if p.peername.is_empty() {
                peer.as_str()
            } else {
                p.peername.as_str()
            };
            if p.error.is_empty() {
                format!("{who}: {}", p.status)
            } else {
                format!("{who}: {}: {}", p.status, p.error)
            }
        })
        .collect();
    let only_waiting = gpi.peer_map.values().all(|p| {
        matches!(
            p.status,
            TrackerStatus::Remote | TrackerStatus::UnexpectedlyUnpinned | TrackerStatus::Undefined
        )
    });
    let (status, mut details) = if has(TrackerStatus::Pinning) {
        (Status::Pinning, None)
    } else if has(TrackerStatus::PinQueued) {
        (Status::Queued, None)
    } else if has(TrackerStatus::Pinned) || has(TrackerStatus::Sharded) {
        (Status::Pinned, None)
    } else if !errors.is_empty() {
        (Status::Failed, None)
    } else if only_waiting {
        (Status::Queued, None)
    } else {
        (
            Status::Failed,
            Some("the cid is no longer part of the cluster pinset".to_string()),
        )
    };
    if !errors.is_empty() {
        details = Some(errors.join("; "));
    }
    DerivedStatus {
        status,
        details,
        delegates: delegates_of(gpi),
    }
}

/// IPFS addresses of the peers that hold or work on the pin, deduplicated, at most 20.
fn delegates_of(gpi: &GlobalPinInfo) -> Vec<String> {
    let mut seen = HashSet::new();
    gpi.peer_map
        .values()
        .filter(|p| {
            matches!(
                p.status,
                TrackerStatus::Pinned
                    | TrackerStatus::Pinning
                    | TrackerStatus::PinQueued
                    | TrackerStatus::PinError
                    | TrackerStatus::UnexpectedlyUnpinned
            )
        })
        .flat_map(|p| p.ipfs_peer_addresses.iter())
        .filter(|a| seen.insert(a.as_str()))
        .take(MAX_DELEGATES)
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster_types::{PinInfoShort, Timestamp};

    fn gpi(statuses: &[TrackerStatus]) -> GlobalPinInfo {
        let peer_map = statuses
            .iter()
            .enumerate()
            .map(|(i, s)| {
                (
                    format!("peer{i}"),
                    PinInfoShort {
                        peername: format!("p{i}"),
                        ipfs_peer_id: String::new(),
                        ipfs_peer_addresses: vec![format!("/ip4/10.0.0.{i}/tcp/4001")],
                        status: *s,
                        timestamp: Timestamp::zero(),
                        error: if s.is_error() {
                            "boom".into()
                        } else {
                            String::new()
                        },
                        attempt_count: 0,
                        priority_pin: false,
                    },
                )
            })
            .collect();
        GlobalPinInfo {
            cid: "bafkqaaa".parse().unwrap(),
            name: String::new(),
            allocations: vec![],
            origins: vec![],
            created: Timestamp::zero(),
            metadata: BTreeMap::new(),
            peer_map,
        }
    }

    #[test]
    fn mapping() {
        use TrackerStatus::*;
        let st = |s: &[TrackerStatus]| derive_status(&gpi(s)).status;
        assert_eq!(st(&[Pinned, Pinned]), Status::Pinned);
        assert_eq!(st(&[Pinned, Pinning]), Status::Pinning);
        assert_eq!(st(&[PinQueued, Remote]), Status::Queued);
        assert_eq!(st(&[Pinned, ClusterError]), Status::Pinned);
        assert_eq!(st(&[PinError, Remote]), Status::Failed);
        assert_eq!(st(&[ClusterError]), Status::Failed);
        assert_eq!(st(&[]), Status::Queued);
        assert_eq!(st(&[Remote, UnexpectedlyUnpinned]), Status::Queued);
        assert_eq!(st(&[Unpinned, Unpinned]), Status::Failed);
        assert_eq!(st(&[Sharded]), Status::Pinned);
        let d = derive_status(&gpi(&[Pinned, PinError, Remote]));
        assert!(d.details.unwrap().contains("p1: pin_error: boom"));
        assert_eq!(
            d.delegates,
            vec!["/ip4/10.0.0.0/tcp/4001", "/ip4/10.0.0.1/tcp/4001"]
        );
    }

    #[test]
    fn body_validation() {
        let ok = PinObject::from_body(br#"{"cid":"bafkqaaa","name":"n","meta":{"a":"b"},"x":1}"#)
            .unwrap();
        assert_eq!(ok.name, "n");
        for bad in [
            &b""[..],
            b"{",
            b"[]",
            br#"{"name":"n"}"#,
            br#"{"cid":"nope"}"#,
            br#"{"cid":"bafkqaaa","meta":{"a":1}}"#,
            br#"{"cid":"bafkqaaa","origins":["x"]}"#,
            br#"{"cid":"bafkqaaa","origins":["/a","/a"]}"#,
        ] {
            let e = PinObject::from_body(bad).unwrap_err();
            assert_eq!(e.code, 400, "{}", String::from_utf8_lossy(bad));
        }
        let long = format!(r#"{{"cid":"bafkqaaa","name":"{}"}}"#, "é".repeat(256));
        assert_eq!(PinObject::from_body(long.as_bytes()).unwrap_err().code, 400);
        let fits = format!(r#"{{"cid":"bafkqaaa","name":"{}"}}"#, "é".repeat(255));
        assert!(PinObject::from_body(fits.as_bytes()).is_ok());
    }
}
