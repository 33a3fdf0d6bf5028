//! The Raft type configuration, the log payload (a batch of pin/unpin operations) and the
//! versioned encodings used on disk and on the wire.


use cluster_state::record;
use cluster_types::Pin;
use openraft::{AnyError, BasicNode, StorageError, StorageIOError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

openraft::declare_raft_types!(
    /// The type configuration of the cluster's Raft: node ids are hashes of libp2p peer ids,
    /// a node's address is its peer id string, and a log entry carries a batch of pin ops.
    pub TypeConfig:
        D = RaftRequest,
        R = RaftResponse,
        NodeId = u64,
        Node = BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The Raft node id of a cluster peer: the first 8 bytes of SHA-256 of its peer id string.
/// The peer id itself travels as the node's address, so the mapping never has to be undone.
pub fn node_id(peer: &str) -> u64 {
    let h = Sha256::digest(peer.as_bytes());
    u64::from_be_bytes(h[..8].try_into().expect("8 bytes"))
}

/// The Raft node entry of a cluster peer.
pub fn node(peer: &str) -> BasicNode {
    BasicNode { addr: peer.to_string() }
}

/// One pinset operation in a log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RaftOp {
    /// Adds or replaces the pin.
    Pin(Pin),
    /// Removes the pin (its CID); the whole pin travels so that `Unpinned` carries it.
    Unpin(Pin),
}

impl RaftOp {
    /// The pin the operation is about.
    pub fn pin(&self) -> &Pin {
        match self {
            RaftOp::Pin(p) | RaftOp::Unpin(p) => p,
        }
    }
}

/// On the wire and on disk an op is a tag plus a versioned pin record
/// ([`cluster_state::record`]), so pins round-trip exactly and old records stay readable.
#[derive(Serialize, Deserialize)]
struct WireOp {
    unpin: bool,
    #[serde(with = "serde_bytes")]
    pin: Vec<u8>,
}

impl Serialize for RaftOp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        WireOp { unpin: matches!(self, RaftOp::Unpin(_)), pin: record::encode(self.pin()) }.serialize(s)
    }
}

impl<'de> Deserialize<'de> for RaftOp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = WireOp::deserialize(d)?;
        let pin = record::decode(&w.pin).map_err(serde::de::Error::custom)?;
        Ok(if w.unpin { RaftOp::Unpin(pin) } else { RaftOp::Pin(pin) })
    }
}

/// The application payload of a log entry: operations applied in order, atomically.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftRequest {
    /// The operations.
    pub ops: Vec<RaftOp>,
}

impl std::fmt::Display for RaftRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ops", self.ops.len())
    }
}

/// What applying an entry answers (nothing: the caller only needs the commit).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftResponse {}

/// The version byte in front of every encoded log entry, vote or metadata value.
pub const ENCODING_VERSION: u8 = 1;

/// Encodes a value: version byte + CBOR.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = vec![ENCODING_VERSION];
    // Writing into a Vec cannot fail, and every type encoded here is plain data.
    cbor4ii::serde::to_writer(&mut out, value).expect("cbor encoding of plain data");
    out
}

/// Decodes a value written by [`encode`].
pub fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, String> {
    match bytes.split_first() {
        Some((&ENCODING_VERSION, body)) => cbor4ii::serde::from_slice(body).map_err(|e| e.to_string()),
        Some((v, _)) => Err(format!("unsupported encoding version {v} (this build reads {ENCODING_VERSION})")),
        None => Err("empty value".into()),
    }
}

pub(crate) fn io_err(e: impl std::fmt::Display) -> StorageError<u64> {
    StorageIOError::write(AnyError::error(e.to_string())).into()
}

pub(crate) fn read_err(e: impl std::fmt::Display) -> StorageError<u64> {
    StorageIOError::read(AnyError::error(e.to_string())).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster_state::conformance::full_pin;

    #[test]
    fn ops_round_trip_and_versions_are_checked() {
        let req = RaftRequest { ops: vec![RaftOp::Pin(full_pin(1)), RaftOp::Unpin(full_pin(2))] };
        let bytes = encode(&req);
        assert_eq!(decode::<RaftRequest>(&bytes).unwrap(), req);
        let mut newer = bytes.clone();
        newer[0] = 9;
        assert!(decode::<RaftRequest>(&newer).unwrap_err().contains("unsupported encoding version 9"));
        assert!(decode::<RaftRequest>(&[]).is_err());
    }

    #[test]
    fn node_ids_are_stable() {
        assert_eq!(node_id("a"), node_id("a"));
        assert_ne!(node_id("a"), node_id("b"));
    }
}
