//! Helpers shared by the unit tests of several modules.

use cid::multihash::Multihash;
use cluster_types::Cid;

/// Multicodec of raw blocks.
const RAW: u64 = 0x55;
/// Multihash code of the identity "hash".
const IDENTITY: u64 = 0x00;

/// A distinct, valid CID for every `n`, without hashing anything.
pub(crate) fn cid(n: u32) -> Cid {
    let digest = Multihash::<64>::wrap(IDENTITY, &n.to_be_bytes()).expect("four bytes fit an identity digest");
    Cid::new_v1(RAW, digest)
}
