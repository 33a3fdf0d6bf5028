//! The seam between the Pinning Service API and the cluster.

use async_trait::async_trait;
use cluster_types::{ApiError, Cid, GlobalPinInfo, Pin, PinOptions};

/// What the Pinning Service API needs from the cluster. The peer implements it over its
/// cluster handle; tests use an in-memory fake.
///
/// The API keeps its own request index, so the backend only deals in CIDs: several requests
/// for one CID share one cluster pin, which is unpinned when the last of them is deleted.
/// Errors carry their HTTP status in [`ApiError::code`] and are answered with that status in
/// the spec's error shape.
#[async_trait]
pub trait PinningBackend: Send + Sync + 'static {
    /// Pins `cid` cluster-wide. `opts` carries the request's name, origins and meta as name,
    /// origins and metadata, recursive mode and default replication; for a replacement,
    /// `pin_update` names the CID being replaced so IPFS can reuse its blocks.
    async fn pin(&self, cid: Cid, opts: PinOptions) -> Result<Pin, ApiError>;

    /// Removes the cluster pin of `cid`. A CID that is not pinned may answer 404, which the
    /// API takes as "already done".
    async fn unpin(&self, cid: Cid) -> Result<(), ApiError>;

    /// The cluster-wide status of `cid` (a CID outside the pinset reports `unpinned` peers
    /// or an empty peer map). Delegates come from the `ipfs_peer_addresses` of the peers
    /// that hold or work on the pin, so the peer map should carry them.
    async fn status(&self, cid: Cid) -> Result<GlobalPinInfo, ApiError>;

    /// Multiaddrs of this peer's IPFS node, offered as `delegates` when the status names
    /// none (the spec wants at least one).
    async fn fallback_delegates(&self) -> Vec<String>;
}
