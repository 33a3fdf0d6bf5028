//! Peer identity objects: `GET /id`, `GET /peers`, `GET /version`.

use serde::{Deserialize, Serialize};

use crate::serde_helpers::null_vec;

/// A libp2p peer id in its string form (base58 `12D3Koo…` or `Qm…`).
pub type PeerId = String;

/// The IPFS daemon a cluster peer drives.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IpfsId {
    /// IPFS peer id.
    #[serde(default)]
    pub id: String,
    /// IPFS swarm addresses.
    #[serde(default, with = "null_vec")]
    pub addresses: Vec<String>,
    /// Why the IPFS node could not be reached, empty when fine.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
}

/// A cluster peer's identity (§2.4).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ID {
    /// Cluster peer id.
    pub id: String,
    /// Cluster swarm addresses.
    #[serde(default, with = "null_vec")]
    pub addresses: Vec<String>,
    /// Peer ids of the cluster members.
    #[serde(default, with = "null_vec")]
    pub cluster_peers: Vec<String>,
    /// Addresses of the cluster members.
    #[serde(default, with = "null_vec")]
    pub cluster_peers_addresses: Vec<String>,
    /// Release version.
    #[serde(default)]
    pub version: String,
    /// Build commit.
    #[serde(default)]
    pub commit: String,
    /// Cluster RPC protocol id.
    #[serde(default)]
    pub rpc_protocol_version: String,
    /// Why the peer could not be reached, empty when fine.
    #[serde(default)]
    pub error: String,
    /// The peer's IPFS node.
    #[serde(default)]
    pub ipfs: IpfsId,
    /// Human-readable peer name.
    #[serde(default)]
    pub peername: String,
}

/// `GET /version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// Release version.
    pub version: String,
}

/// One key removed by an IPFS garbage collection.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IpfsRepoGc {
    /// The removed block.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
    /// Why removing it failed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
}

/// The garbage collection run on one peer.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RepoGc {
    /// Peer id.
    pub peer: String,
    /// Peer name.
    #[serde(default)]
    pub peername: String,
    /// Removed keys.
    #[serde(default, with = "null_vec")]
    pub keys: Vec<IpfsRepoGc>,
    /// Why the run failed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
}

/// `POST /ipfs/gc`: the run on every peer.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GlobalRepoGc {
    /// Result per peer id.
    pub peer_map: std::collections::BTreeMap<String, RepoGc>,
}

/// `GET /health/graph`: the cluster's connectivity (field names of the original).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectGraph {
    /// The peer that drew the graph.
    pub cluster_id: String,
    /// Peer id → peer name.
    #[serde(default)]
    pub id_to_peername: std::collections::BTreeMap<String, String>,
    /// IPFS peer id → IPFS peers it is connected to (among the cluster's IPFS nodes).
    #[serde(default)]
    pub ipfs_links: std::collections::BTreeMap<String, Vec<String>>,
    /// Cluster peer → cluster peers it is connected to.
    #[serde(default)]
    pub cluster_links: std::collections::BTreeMap<String, Vec<String>>,
    /// Cluster peer → whether the drawing peer trusts it.
    #[serde(default)]
    pub cluster_trust_links: std::collections::BTreeMap<String, bool>,
    /// Cluster peer → its IPFS peer id.
    #[serde(default)]
    pub cluster_to_ipfs: std::collections::BTreeMap<String, String>,
}
