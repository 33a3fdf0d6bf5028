//! The cluster-RPC protocol: every method, its permission level, and the wire messages.
//!
//! The permission table is [`RpcMethod::policy`], an exhaustive `match`: adding a method
//! without deciding who may call it does not compile. [`RpcRequest::method`] maps every wire
//! request to its method, so the driver checks each inbound call against the table before
//! anything else sees it. Methods of the original's table that this implementation never
//! calls remotely are still listed (so the table can be audited against §1.4 of the
//! reference); they have no wire request and cannot be invoked.

use cluster_types::{ApiError, GlobalPinInfo, PinInfo, RepoGc, ID};
#[cfg(doc)]
use cluster_types::TrackerStatusFilter;
use serde::{Deserialize, Serialize};

/// Protocol id of the RPC protocol; the version changes with any incompatible change.
pub const RPC_PROTOCOL: &str = "/ipfs-cluster-rs/rpc/1.0.0";

/// Who may call a method (§1.4 of the reference).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Anyone who can connect (knows the swarm secret).
    Open,
    /// Trusted peers only (`trusted_peers`, or everyone with `*`).
    Trusted,
    /// The local peer only: never served to a remote caller.
    Closed,
}

macro_rules! methods {
    ($($variant:ident = $name:literal => $policy:ident,)*) => {
        /// Every RPC method of the original (`Service.Method`), plus this implementation's own.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum RpcMethod { $(#[doc = $name] $variant,)* }

        impl RpcMethod {
            /// Every method, for audits and tests.
            pub const ALL: &'static [RpcMethod] = &[$(RpcMethod::$variant,)*];

            /// The `Service.Method` name.
            pub fn name(self) -> &'static str {
                match self { $(RpcMethod::$variant => $name,)* }
            }

            /// The permission level: the one table every inbound call is checked against.
            pub fn policy(self) -> Policy {
                match self { $(RpcMethod::$variant => Policy::$policy,)* }
            }
        }
    };
}

methods! {
    ClusterId = "Cluster.ID" => Open,
    ClusterIdStream = "Cluster.IDStream" => Open,
    ClusterPeerAdd = "Cluster.PeerAdd" => Open,
    ClusterVersion = "Cluster.Version" => Open,
    ClusterPeerRemove = "Cluster.PeerRemove" => Trusted,
    ClusterPeers = "Cluster.Peers" => Trusted,
    ClusterRecoverAllLocal = "Cluster.RecoverAllLocal" => Trusted,
    ClusterRecoverLocal = "Cluster.RecoverLocal" => Trusted,
    ClusterRepoGcLocal = "Cluster.RepoGCLocal" => Trusted,
    PinTrackerRecover = "PinTracker.Recover" => Trusted,
    PinTrackerStatus = "PinTracker.Status" => Trusted,
    PinTrackerStatusAll = "PinTracker.StatusAll" => Trusted,
    IpfsBlockStream = "IPFSConnector.BlockStream" => Trusted,
    IpfsRepoStat = "IPFSConnector.RepoStat" => Trusted,
    IpfsSwarmPeers = "IPFSConnector.SwarmPeers" => Trusted,
    ConsensusAddPeer = "Consensus.AddPeer" => Trusted,
    ConsensusLogPin = "Consensus.LogPin" => Trusted,
    ConsensusLogUnpin = "Consensus.LogUnpin" => Trusted,
    ConsensusRmPeer = "Consensus.RmPeer" => Trusted,
    // This implementation's own methods: CRDT anti-entropy and paged streams.
    ConsensusDigest = "Consensus.Digest" => Trusted,
    ConsensusFetch = "Consensus.Fetch" => Trusted,
    // Raft: its own protocol (append entries, vote, snapshot) and batches forwarded to the leader.
    ConsensusRaft = "Consensus.Raft" => Trusted,
    ConsensusCommit = "Consensus.Commit" => Trusted,
    StreamNext = "Stream.Next" => Open,
    ClusterAlerts = "Cluster.Alerts" => Closed,
    ClusterBandwidthByProtocol = "Cluster.BandwidthByProtocol" => Closed,
    ClusterBlockAllocate = "Cluster.BlockAllocate" => Closed,
    ClusterConnectGraph = "Cluster.ConnectGraph" => Closed,
    ClusterIpfsId = "Cluster.IPFSID" => Closed,
    ClusterJoin = "Cluster.Join" => Closed,
    ClusterPeersWithFilter = "Cluster.PeersWithFilter" => Closed,
    ClusterPin = "Cluster.Pin" => Closed,
    ClusterPinGet = "Cluster.PinGet" => Closed,
    ClusterPinPath = "Cluster.PinPath" => Closed,
    ClusterPins = "Cluster.Pins" => Closed,
    ClusterRecover = "Cluster.Recover" => Closed,
    ClusterRecoverAll = "Cluster.RecoverAll" => Closed,
    ClusterRepoGc = "Cluster.RepoGC" => Closed,
    ClusterSendInformerMetrics = "Cluster.SendInformerMetrics" => Closed,
    ClusterSendInformersMetrics = "Cluster.SendInformersMetrics" => Closed,
    ClusterStatus = "Cluster.Status" => Closed,
    ClusterStatusAll = "Cluster.StatusAll" => Closed,
    ClusterStatusAllLocal = "Cluster.StatusAllLocal" => Closed,
    ClusterStatusLocal = "Cluster.StatusLocal" => Closed,
    ClusterUnpin = "Cluster.Unpin" => Closed,
    ClusterUnpinPath = "Cluster.UnpinPath" => Closed,
    PinTrackerPinQueueSize = "PinTracker.PinQueueSize" => Closed,
    PinTrackerRecoverAll = "PinTracker.RecoverAll" => Closed,
    PinTrackerTrack = "PinTracker.Track" => Closed,
    PinTrackerUntrack = "PinTracker.Untrack" => Closed,
    IpfsBlockGet = "IPFSConnector.BlockGet" => Closed,
    IpfsConfigKey = "IPFSConnector.ConfigKey" => Closed,
    IpfsPin = "IPFSConnector.Pin" => Closed,
    IpfsPinLs = "IPFSConnector.PinLs" => Closed,
    IpfsPinLsCid = "IPFSConnector.PinLsCid" => Closed,
    IpfsResolve = "IPFSConnector.Resolve" => Closed,
    IpfsUnpin = "IPFSConnector.Unpin" => Closed,
    ConsensusPeers = "Consensus.Peers" => Closed,
    PeerMonitorLatestMetrics = "PeerMonitor.LatestMetrics" => Closed,
    PeerMonitorMetricNames = "PeerMonitor.MetricNames" => Closed,
}

/// A request on the wire. Streaming methods answer with the first page of a stream and the
/// caller pulls the rest with [`RpcRequest::StreamNext`], so neither side ever holds more
/// than a page per stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum RpcRequest {
    /// The peer's ID.
    Id,
    /// The peer's version string.
    Version,
    /// Asks the peer to add `peer` to the cluster (used when joining).
    PeerAdd {
        /// Peer id to add.
        peer: String,
    },
    /// Asks the peer to remove `peer` from the cluster.
    PeerRemove {
        /// Peer id to remove.
        peer: String,
    },
    /// The cluster peers this peer is connected to (for the connectivity graph).
    ConnectedPeers,
    /// Status of one CID on the peer.
    Status {
        /// CID string.
        cid: String,
    },
    /// Opens a stream of the peer's status of every pin passing `filter`.
    StatusAll {
        /// Status filter ([`TrackerStatusFilter::bits`]).
        filter: u32,
    },
    /// Re-queues one failed CID on the peer.
    Recover {
        /// CID string.
        cid: String,
    },
    /// Opens a stream of the items the peer re-queued.
    RecoverAllLocal,
    /// Runs IPFS garbage collection on the peer.
    RepoGcLocal,
    /// The peer's IPFS repo usage.
    RepoStat,
    /// The IPFS peers the peer's IPFS node is connected to.
    SwarmPeers,
    /// CRDT bucket digests.
    Digest,
    /// CRDT entries of some buckets, in key order, after a cursor.
    Fetch {
        /// Opaque request encoded by the consensus implementation.
        #[serde(with = "serde_bytes")]
        query: Vec<u8>,
    },
    /// A Raft protocol message (encoded by the consensus).
    Raft {
        /// Opaque message.
        #[serde(with = "serde_bytes")]
        msg: Vec<u8>,
    },
    /// A batch of pin/unpin operations forwarded to the Raft leader.
    RaftCommit {
        /// Opaque batch.
        #[serde(with = "serde_bytes")]
        msg: Vec<u8>,
    },
    /// Asks the Raft leader to add a peer (learner, then voter).
    RaftAddPeer {
        /// Opaque request.
        #[serde(with = "serde_bytes")]
        msg: Vec<u8>,
    },
    /// Asks the Raft leader to remove a peer.
    RaftRmPeer {
        /// Opaque request.
        #[serde(with = "serde_bytes")]
        msg: Vec<u8>,
    },
    /// Stores blocks in the peer's IPFS node: the adder streaming content to an allocation
    /// (the original's `IPFSConnector.BlockStream`, one bounded batch per call).
    BlockPut {
        /// The blocks, in DAG order.
        blocks: Vec<WireBlock>,
    },
    /// The next page of a stream opened by an earlier call.
    StreamNext {
        /// Stream id.
        id: u64,
    },
}

impl RpcRequest {
    /// The method this request invokes, for the permission check.
    pub fn method(&self) -> RpcMethod {
        match self {
            RpcRequest::Id => RpcMethod::ClusterId,
            RpcRequest::Version => RpcMethod::ClusterVersion,
            RpcRequest::PeerAdd { .. } => RpcMethod::ClusterPeerAdd,
            RpcRequest::PeerRemove { .. } => RpcMethod::ClusterPeerRemove,
            RpcRequest::ConnectedPeers => RpcMethod::ClusterPeers,
            RpcRequest::Status { .. } => RpcMethod::PinTrackerStatus,
            RpcRequest::StatusAll { .. } => RpcMethod::PinTrackerStatusAll,
            RpcRequest::Recover { .. } => RpcMethod::PinTrackerRecover,
            RpcRequest::RecoverAllLocal => RpcMethod::ClusterRecoverAllLocal,
            RpcRequest::RepoGcLocal => RpcMethod::ClusterRepoGcLocal,
            RpcRequest::RepoStat => RpcMethod::IpfsRepoStat,
            RpcRequest::SwarmPeers => RpcMethod::IpfsSwarmPeers,
            RpcRequest::Digest => RpcMethod::ConsensusDigest,
            RpcRequest::Fetch { .. } => RpcMethod::ConsensusFetch,
            RpcRequest::StreamNext { .. } => RpcMethod::StreamNext,
            RpcRequest::Raft { .. } => RpcMethod::ConsensusRaft,
            RpcRequest::RaftCommit { .. } => RpcMethod::ConsensusCommit,
            RpcRequest::RaftAddPeer { .. } => RpcMethod::ConsensusAddPeer,
            RpcRequest::RaftRmPeer { .. } => RpcMethod::ConsensusRmPeer,
            RpcRequest::BlockPut { .. } => RpcMethod::IpfsBlockStream,
        }
    }
}

/// Most block bytes one [`RpcRequest::BlockPut`] carries (requests are capped at 8 MiB; a
/// single block larger than this still travels alone).
pub const MAX_BLOCK_PUT_BYTES: usize = 2 << 20;

/// One block on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireBlock {
    /// CID string, as computed by the sender; the receiver checks the data against it.
    pub cid: String,
    /// Block bytes.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

/// One page of a stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamPage {
    /// Stream id, for [`RpcRequest::StreamNext`].
    pub id: u64,
    /// Items of this page.
    pub items: Vec<PinInfo>,
    /// True when the stream has ended (no further page).
    pub done: bool,
    /// Set when the stream ended with an error.
    pub error: Option<ApiError>,
}

/// A response on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[allow(clippy::large_enum_variant, reason = "responses are moved once, never stored in bulk")]
pub enum RpcResponse {
    /// The call failed (or was refused) with an API error.
    Error(ApiError),
    /// Success without a value.
    Done,
    /// A peer's ID.
    Id(ID),
    /// A string (version).
    Text(String),
    /// Peer ids.
    Peers(Vec<String>),
    /// One status.
    PinInfo(PinInfo),
    /// A cluster-wide status (unused by peers, kept for symmetry with the API).
    GlobalPinInfo(GlobalPinInfo),
    /// A stream page.
    Page(StreamPage),
    /// GC result.
    RepoGc(RepoGc),
    /// Repo usage: (repo size, storage max) in bytes.
    RepoStat {
        /// Bytes used.
        repo_size: u64,
        /// Bytes allowed.
        storage_max: u64,
    },
    /// Opaque bytes (CRDT digests and entries).
    Blob(#[serde(with = "serde_bytes")] Vec<u8>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster_types::TrackerStatusFilter;
    use std::collections::HashSet;

    /// The original's table (§1.4 of the reference), level by level.
    const OPEN: &[&str] = &["Cluster.ID", "Cluster.IDStream", "Cluster.PeerAdd", "Cluster.Version"];
    const TRUSTED: &[&str] = &[
        "Cluster.PeerRemove",
        "Cluster.Peers",
        "Cluster.RecoverAllLocal",
        "Cluster.RecoverLocal",
        "Cluster.RepoGCLocal",
        "PinTracker.Recover",
        "PinTracker.Status",
        "PinTracker.StatusAll",
        "IPFSConnector.BlockStream",
        "IPFSConnector.RepoStat",
        "IPFSConnector.SwarmPeers",
        "Consensus.AddPeer",
        "Consensus.LogPin",
        "Consensus.LogUnpin",
        "Consensus.RmPeer",
    ];
    const CLOSED: &[&str] = &[
        "Cluster.Alerts", "Cluster.BandwidthByProtocol", "Cluster.BlockAllocate", "Cluster.ConnectGraph",
        "Cluster.IPFSID", "Cluster.Join", "Cluster.PeersWithFilter", "Cluster.Pin", "Cluster.PinGet",
        "Cluster.PinPath", "Cluster.Pins", "Cluster.Recover", "Cluster.RecoverAll", "Cluster.RepoGC",
        "Cluster.SendInformerMetrics", "Cluster.SendInformersMetrics", "Cluster.Status", "Cluster.StatusAll",
        "Cluster.StatusAllLocal", "Cluster.StatusLocal", "Cluster.Unpin", "Cluster.UnpinPath",
        "PinTracker.PinQueueSize", "PinTracker.RecoverAll", "PinTracker.Track", "PinTracker.Untrack",
        "IPFSConnector.BlockGet", "IPFSConnector.ConfigKey", "IPFSConnector.Pin", "IPFSConnector.PinLs",
        "IPFSConnector.PinLsCid", "IPFSConnector.Resolve", "IPFSConnector.Unpin", "Consensus.Peers",
        "PeerMonitor.LatestMetrics", "PeerMonitor.MetricNames",
    ];
    /// Methods this implementation added, with the level it chose.
    const OWN: &[(&str, Policy)] =
        &[
        ("Consensus.Digest", Policy::Trusted),
        ("Consensus.Fetch", Policy::Trusted),
        ("Consensus.Raft", Policy::Trusted),
        ("Consensus.Commit", Policy::Trusted),
        ("Stream.Next", Policy::Open),
    ];

    #[test]
    fn table_matches_the_original_and_leaves_nothing_out() {
        let mut expected: Vec<(&str, Policy)> = Vec::new();
        expected.extend(OPEN.iter().map(|m| (*m, Policy::Open)));
        expected.extend(TRUSTED.iter().map(|m| (*m, Policy::Trusted)));
        expected.extend(CLOSED.iter().map(|m| (*m, Policy::Closed)));
        expected.extend(OWN.iter().copied());
        let names: HashSet<&str> = RpcMethod::ALL.iter().map(|m| m.name()).collect();
        assert_eq!(names.len(), RpcMethod::ALL.len(), "duplicate method names");
        for (name, policy) in &expected {
            let m = RpcMethod::ALL.iter().find(|m| m.name() == *name).unwrap_or_else(|| panic!("{name} missing"));
            assert_eq!(m.policy(), *policy, "{name}");
        }
        assert_eq!(expected.len(), RpcMethod::ALL.len(), "a method is not in the audited table");
    }

    #[test]
    fn every_wire_request_maps_to_a_non_closed_method() {
        let requests = [
            RpcRequest::Id,
            RpcRequest::Version,
            RpcRequest::PeerAdd { peer: String::new() },
            RpcRequest::PeerRemove { peer: String::new() },
            RpcRequest::ConnectedPeers,
            RpcRequest::Status { cid: String::new() },
            RpcRequest::StatusAll { filter: TrackerStatusFilter::default().bits() },
            RpcRequest::Recover { cid: String::new() },
            RpcRequest::RecoverAllLocal,
            RpcRequest::RepoGcLocal,
            RpcRequest::RepoStat,
            RpcRequest::SwarmPeers,
            RpcRequest::Digest,
            RpcRequest::Fetch { query: Vec::new() },
            RpcRequest::StreamNext { id: 0 },
            RpcRequest::Raft { msg: Vec::new() },
            RpcRequest::RaftCommit { msg: Vec::new() },
            RpcRequest::RaftAddPeer { msg: Vec::new() },
            RpcRequest::RaftRmPeer { msg: Vec::new() },
            RpcRequest::BlockPut { blocks: Vec::new() },
        ];
        for r in requests {
            assert_ne!(r.method().policy(), Policy::Closed, "{:?} is closed but has a wire request", r.method());
        }
    }
}
