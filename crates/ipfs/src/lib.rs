//! The IPFS connector: the trait every IPFS backend implements, and the embedded rust-ipfs node.
//!
//! The cluster never talks to an IPFS implementation directly: it goes through
//! [`IpfsConnector`], so the embedded node ([`EmbeddedIpfs`]) and a remote Kubo daemon (an HTTP
//! connector living elsewhere) are interchangeable. [`conformance`] holds the behavioural contract
//! as a reusable test suite that every backend is expected to pass.

mod embedded;
mod error;
mod flatfs;
mod pin_index;

pub mod conformance;

use std::fmt;

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

pub use cid::Cid;
pub use embedded::{EmbeddedConfig, EmbeddedIpfs, IDENTITY_FILE, start_embedded};
pub use error::IpfsError;
pub use pin_index::{PIN_INDEX_CLEAN_MARKER, PIN_INDEX_DIR, PinIndexStart};
/// Re-exported so callers can build an [`EmbeddedConfig`] without depending on libp2p
/// themselves; these are the very same types libp2p 0.56 exposes.
pub use rust_ipfs::{Keypair, Multiaddr, PeerId};

/// Multicodec of dag-pb, the only codec for which [`IpfsConnector::block_put`] produces a CIDv0.
pub const CODEC_DAG_PB: u64 = 0x70;
/// Multicodec of raw binary blocks.
pub const CODEC_RAW: u64 = 0x55;
/// Multicodec of dag-cbor.
pub const CODEC_DAG_CBOR: u64 = 0x71;
/// Multihash code of the identity "hash", whose digest is the block itself.
pub const MULTIHASH_IDENTITY: u64 = 0x00;

/// The CID `block_put` gives `data`: sha2-256, CIDv0 for dag-pb (as Kubo's `block put` does),
/// CIDv1 with `codec` otherwise. Public so backends and tests agree on it without a node.
pub fn block_cid(data: &[u8], codec: u64) -> Result<Cid, IpfsError> {
    use multihash_codetable::{Code, MultihashDigest};
    let hash = Code::Sha2_256.digest(data);
    if codec == CODEC_DAG_PB {
        Cid::new_v0(hash).map_err(|e| IpfsError::InvalidInput(format!("cannot build cidv0: {e}")))
    } else {
        Ok(Cid::new_v1(codec, hash))
    }
}

/// Checks that `data` hashes to `cid`'s multihash (identity CIDs must carry `data` itself).
///
/// Blocks whose CID someone else computed (the adder's, or a peer's over RPC) are checked
/// before they are stored, so a block store never holds a block under a wrong name.
pub fn verify_block(cid: &Cid, data: &[u8]) -> Result<(), IpfsError> {
    let mh = cid.hash();
    if mh.code() == MULTIHASH_IDENTITY {
        return if mh.digest() == data {
            Ok(())
        } else {
            Err(IpfsError::InvalidInput(format!("identity block {cid} does not hold its data")))
        };
    }
    let f = cluster_unixfs::HashFunction::from_code(mh.code())
        .ok_or_else(|| IpfsError::Unsupported(format!("block {cid}: unsupported hash function 0x{:x}", mh.code())))?;
    let got = f.digest(data).map_err(|e| IpfsError::InvalidInput(e.to_string()))?;
    if got.digest() == mh.digest() && got.size() == mh.size() {
        Ok(())
    } else {
        Err(IpfsError::InvalidInput(format!("block data does not hash to {cid}")))
    }
}

/// The go-multihash name of hash function `code` (`sha2-256`, `blake2b-256`, …), as
/// `block/put --mhtype` takes it; `None` for functions [`verify_block`] does not know.
pub fn multihash_name(code: u64) -> Option<String> {
    cluster_unixfs::HashFunction::from_code(code).map(|h| h.to_string())
}

/// How much of a DAG a pin protects.
///
/// Only the two modes Kubo exposes through `pin add` exist; depth-limited pins are not supported
/// by either backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PinMode {
    /// The root and every block reachable from it.
    Recursive,
    /// The root block only.
    Direct,
}

impl fmt::Display for PinMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PinMode::Recursive => "recursive",
            PinMode::Direct => "direct",
        })
    }
}

/// What the node knows about a single CID, as `ipfs pin ls --arg <cid>` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IpfsPinStatus {
    /// Pinned as the root of a recursive pin.
    Recursive,
    /// Pinned on its own, without its children.
    Direct,
    /// Kept alive only because a recursive pin reaches it.
    Indirect,
    /// Not protected from garbage collection.
    Unpinned,
}

impl IpfsPinStatus {
    /// True for every status that protects the block from garbage collection.
    pub fn is_pinned(self) -> bool {
        !matches!(self, IpfsPinStatus::Unpinned)
    }
}

impl fmt::Display for IpfsPinStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IpfsPinStatus::Recursive => "recursive",
            IpfsPinStatus::Direct => "direct",
            IpfsPinStatus::Indirect => "indirect",
            IpfsPinStatus::Unpinned => "unpinned",
        })
    }
}

/// The identity of the IPFS node (not of the cluster peer: the two have separate keys).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpfsId {
    /// The IPFS peer id, base58 (`12D3Koo…` for ed25519 keys).
    pub id: String,
    /// Multiaddrs other IPFS nodes can dial, each ending in `/p2p/<id>`.
    pub addresses: Vec<String>,
}

/// Disk usage of the node's block store, what the cluster's free-space informer needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoStat {
    /// Bytes currently used by blocks.
    pub repo_size: u64,
    /// Configured upper bound; 0 means the backend reports no limit.
    pub storage_max: u64,
}

/// Everything the cluster needs from an IPFS node.
///
/// Implementations must be cheap to share (`Arc<dyn IpfsConnector>`) and safe to call
/// concurrently. Every method is cancel-safe: dropping a returned future abandons the operation
/// (for [`IpfsConnector::pin`] this is the documented way to cancel).
#[async_trait]
pub trait IpfsConnector: Send + Sync + 'static {
    /// Returns the node's peer id and dialable addresses.
    async fn id(&self) -> Result<IpfsId, IpfsError>;

    /// Pins `cid`, fetching missing blocks from the network.
    ///
    /// `progress` receives the running count of blocks fetched so far (blocks already local count
    /// too). Values are cumulative, so the implementation may skip some when the channel is full;
    /// the caller runs the no-progress watchdog (`pin_timeout`) and drops the future to cancel.
    /// A cancelled pin records nothing. Pinning something already pinned at least as strongly is
    /// a no-op, and a direct pin of a recursively pinned CID succeeds without downgrading it.
    async fn pin(
        &self,
        cid: &Cid,
        mode: PinMode,
        progress: tokio::sync::mpsc::Sender<u64>,
    ) -> Result<(), IpfsError>;

    /// Pins `cid` and the blocks at most `depth` links below it (`depth` ≥ 1), fetching what is
    /// missing: the depth-limited pins of shards, whose nodes link to every block of the shard
    /// but whose blocks link on into other shards that live elsewhere. The pin reports as
    /// recursive. The default pins the whole DAG recursively, which is what backends without
    /// depth-limited pins (Kubo) do, as the original does with them.
    async fn pin_depth(
        &self,
        cid: &Cid,
        depth: u32,
        progress: tokio::sync::mpsc::Sender<u64>,
    ) -> Result<(), IpfsError> {
        let _ = depth;
        self.pin(cid, PinMode::Recursive, progress).await
    }

    /// Pins `to` recursively when `from` (an earlier version of the same content) is pinned here,
    /// so a backend can fetch and walk only what differs: Kubo's `pin/update`. `from` stays pinned;
    /// unpinning it is the caller's decision. The default is an ordinary recursive pin of `to`,
    /// which is also what backends do when `from` is not pinned recursively.
    async fn pin_update(
        &self,
        from: &Cid,
        to: &Cid,
        progress: tokio::sync::mpsc::Sender<u64>,
    ) -> Result<(), IpfsError> {
        let _ = from;
        self.pin(to, PinMode::Recursive, progress).await
    }

    /// Removes the recursive or direct pin on `cid`. A CID that is not pinned (or only pinned
    /// indirectly) is not an error: the desired state already holds.
    async fn unpin(&self, cid: &Cid) -> Result<(), IpfsError>;

    /// Reports how `cid` is pinned.
    async fn pin_ls_cid(&self, cid: &Cid) -> Result<IpfsPinStatus, IpfsError>;

    /// Reports how each of `cids` is pinned, in the order given (duplicates answered each time).
    ///
    /// Status listings ask about thousands of CIDs at once; one call per batch lets a backend
    /// answer them together (the embedded node from its pin index, Kubo's `pin/ls` with many
    /// `arg`s) instead of paying a round-trip per CID. The default asks [`Self::pin_ls_cid`] once
    /// per CID, so every backend works unchanged. The batch fails as a whole: on error no status
    /// is known for any of the CIDs.
    async fn pin_ls_cids(&self, cids: &[Cid]) -> Result<Vec<IpfsPinStatus>, IpfsError> {
        let mut statuses = Vec::with_capacity(cids.len());
        for cid in cids {
            statuses.push(self.pin_ls_cid(cid).await?);
        }
        Ok(statuses)
    }

    /// Streams every pin of the requested kinds. When both are asked, both are listed (the Go
    /// original listed only recursive pins in that case; that quirk is deliberately not kept).
    /// Indirect pins are never listed.
    fn pin_ls(
        &self,
        recursive: bool,
        direct: bool,
    ) -> BoxStream<'static, Result<(Cid, IpfsPinStatus), IpfsError>>;

    /// Reports block store usage.
    async fn repo_stat(&self) -> Result<RepoStat, IpfsError>;

    /// Removes every block that no pin protects and returns the removed CIDs.
    /// Backends without garbage collection return [`IpfsError::Unsupported`].
    async fn repo_gc(&self) -> Result<Vec<Cid>, IpfsError>;

    /// Stores one block hashed with sha2-256. The CID is v1 with the given multicodec, except for
    /// dag-pb (0x70), which gets a CIDv0 as Kubo's `block put` does.
    async fn block_put(&self, data: bytes::Bytes, codec: u64) -> Result<Cid, IpfsError>;

    /// Stores blocks under the CIDs the caller computed: any codec, CID version and hash function
    /// [`verify_block`] knows (the adder's blocks). The batch is stored in order and fails as a
    /// whole on the first block refused; blocks stored before it stay (unpinned, so GC takes
    /// them). A block whose data does not hash to its CID is refused with
    /// [`IpfsError::InvalidInput`].
    ///
    /// The default checks each block and stores it through [`Self::block_put`], which only
    /// works for sha2-256; backends override it to take the other hashes too.
    async fn put_blocks(&self, blocks: Vec<(Cid, bytes::Bytes)>) -> Result<(), IpfsError> {
        for (cid, data) in blocks {
            verify_block(&cid, &data)?;
            if cid.hash().code() != 0x12 {
                return Err(IpfsError::Unsupported(format!("block {cid}: only sha2-256 blocks can be stored here")));
            }
            let got = self.block_put(data, cid.codec()).await?;
            if got.hash() != cid.hash() {
                return Err(IpfsError::Backend(format!("stored block came back as {got}, expected {cid}")));
            }
        }
        Ok(())
    }

    /// [`Self::put_blocks`] for blocks this process built and hashed itself (the adder's
    /// importer output): backends may skip checking the data against the CIDs, which would hash
    /// everything a second time. Never use it for blocks received from elsewhere.
    async fn put_own_blocks(&self, blocks: Vec<(Cid, bytes::Bytes)>) -> Result<(), IpfsError> {
        self.put_blocks(blocks).await
    }

    /// Returns one block, fetching it from the network if it is not local.
    async fn block_get(&self, cid: &Cid) -> Result<bytes::Bytes, IpfsError>;

    /// Connects to a peer; `addr` is a multiaddr ending in `/p2p/<peer id>`.
    async fn swarm_connect(&self, addr: &str) -> Result<(), IpfsError>;

    /// Returns the peer ids of connected peers.
    async fn swarm_peers(&self) -> Result<Vec<String>, IpfsError>;

    /// Resolves `/ipfs/<cid>/a/b` to the CID of the node at that path by walking dag-pb/UnixFS
    /// directory links. Backends that cannot resolve `/ipns/` return [`IpfsError::Unsupported`].
    async fn resolve(&self, path: &str) -> Result<Cid, IpfsError>;

    /// Adds bytes as a UnixFS file with Kubo's defaults (CIDv0, 256 KiB chunks, balanced layout)
    /// and returns the root. Nothing is pinned: the cluster decides about pins separately.
    async fn add_bytes(&self, data: bytes::Bytes) -> Result<Cid, IpfsError>;

    /// Reads a whole UnixFS file into memory; meant for tests and small files.
    async fn cat(&self, cid: &Cid) -> Result<bytes::Bytes, IpfsError>;

    /// Releases the backend. The embedded node stops its swarm and releases its repo lock so a
    /// new node can be started on the same repo; remote backends have nothing to release.
    /// Calls made after shutdown fail with [`IpfsError::Closed`] where the backend can tell.
    async fn shutdown(&self) -> Result<(), IpfsError> {
        Ok(())
    }
}
