//! `ipfs add` options and how Kubo combines them.

use std::fmt;
use std::str::FromStr;

use cid::{Cid, Version};

use crate::{Chunker, HashFunction, UnixfsError};

/// Multicodec code of dag-pb.
pub const DAG_PB: u64 = 0x70;
/// Multicodec code of raw blocks.
pub const RAW: u64 = 0x55;

/// Links per node in both layouts (Kubo's `DefaultLinksPerBlock`).
pub const MAX_LINKS: usize = 174;

/// Kubo's HAMT switch-over point for directories: the sum of link name lengths and CID
/// lengths (`Internal.UnixFSShardingSizeThreshold`, 256 KiB by default).
pub const HAMT_SHARDING_THRESHOLD: usize = 256 * 1024;

/// The DAG shape of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Layout {
    /// Kubo's default: a left-filled tree of up to 174 links per node.
    #[default]
    Balanced,
    /// Kubo's trickle DAG (`--trickle`): 174 leaves at the root, then subtrees of growing
    /// depth, each depth repeated 4 times; friendlier to streaming reads.
    Trickle,
}

impl FromStr for Layout {
    type Err = UnixfsError;

    /// Accepts ipfs-cluster's `layout` values: `balanced` (or empty) and `trickle`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "" | "balanced" => Ok(Layout::Balanced),
            "trickle" => Ok(Layout::Trickle),
            _ => Err(UnixfsError::UnknownLayout(s.to_string())),
        }
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layout::Balanced => "balanced",
            Layout::Trickle => "trickle",
        })
    }
}

/// Options of an import, with Kubo's `ipfs add` defaults.
///
/// `cid_version` and `raw_leaves` are optional because Kubo treats "not given" differently
/// from any value: a hash other than sha2-256 upgrades an unset CID version to 1, and CIDv1
/// turns raw leaves on unless they were set explicitly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddOptions {
    /// How files are cut into leaves (default `size-262144`).
    pub chunker: Chunker,
    /// File DAG shape (default balanced).
    pub layout: Layout,
    /// Store leaves as raw blocks; `None` means "as Kubo decides": yes for CIDv1, no for v0.
    pub raw_leaves: Option<bool>,
    /// CID version of dag-pb nodes; `None` means v0, or v1 when the hash is not sha2-256.
    pub cid_version: Option<Version>,
    /// Hash function for every block (default sha2-256).
    pub hash: HashFunction,
    /// Put the added entries into one more directory, whose CID becomes the root.
    pub wrap_with_directory: bool,
    /// Include dotfiles when walking local directories (see [`crate::add_paths`]).
    pub hidden: bool,
}

impl Default for AddOptions {
    fn default() -> Self {
        AddOptions {
            chunker: Chunker::default(),
            layout: Layout::Balanced,
            raw_leaves: None,
            cid_version: None,
            hash: HashFunction::Sha2_256,
            wrap_with_directory: false,
            hidden: false,
        }
    }
}

impl AddOptions {
    /// The CID version nodes get, after Kubo's rules; errors on CIDv0 with another hash.
    pub fn effective_cid_version(&self) -> Result<Version, UnixfsError> {
        match (self.cid_version, self.hash) {
            (None, HashFunction::Sha2_256) => Ok(Version::V0),
            (None, _) => Ok(Version::V1),
            (Some(Version::V0), HashFunction::Sha2_256) => Ok(Version::V0),
            (Some(Version::V0), h) => Err(UnixfsError::CidV0NeedsSha256(h.to_string())),
            (Some(Version::V1), _) => Ok(Version::V1),
        }
    }

    /// Whether leaves are raw blocks, after Kubo's rules.
    pub fn effective_raw_leaves(&self) -> Result<bool, UnixfsError> {
        let version = self.effective_cid_version()?;
        Ok(self.raw_leaves.unwrap_or(version == Version::V1))
    }

    pub(crate) fn settings(&self) -> Result<Settings, UnixfsError> {
        self.chunker.check()?;
        self.hash.check()?;
        Ok(Settings {
            chunker: self.chunker,
            layout: self.layout,
            raw_leaves: self.effective_raw_leaves()?,
            version: self.effective_cid_version()?,
            hash: self.hash,
            wrap: self.wrap_with_directory,
        })
    }
}

/// Options after validation and Kubo's defaulting rules.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub chunker: Chunker,
    pub layout: Layout,
    pub raw_leaves: bool,
    pub version: Version,
    pub hash: HashFunction,
    pub wrap: bool,
}

impl Settings {
    /// CID of a dag-pb block.
    pub fn node_cid(&self, block: &[u8]) -> Result<Cid, UnixfsError> {
        let mh = self.hash.digest(block)?;
        Ok(match self.version {
            Version::V0 => Cid::new_v0(mh)?,
            Version::V1 => Cid::new_v1(DAG_PB, mh),
        })
    }

    /// CID of a raw leaf: always v1, whatever the node version (as in Kubo).
    pub fn raw_cid(&self, block: &[u8]) -> Result<Cid, UnixfsError> {
        Ok(Cid::new_v1(RAW, self.hash.digest(block)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubo_defaulting_rules() {
        let o = AddOptions::default();
        assert_eq!(o.effective_cid_version().unwrap(), Version::V0);
        assert!(!o.effective_raw_leaves().unwrap());

        let v1 = AddOptions { cid_version: Some(Version::V1), ..AddOptions::default() };
        assert!(v1.effective_raw_leaves().unwrap());
        let v1_no_raw = AddOptions { raw_leaves: Some(false), ..v1.clone() };
        assert!(!v1_no_raw.effective_raw_leaves().unwrap());

        let blake = AddOptions { hash: HashFunction::Blake2b(32), ..AddOptions::default() };
        assert_eq!(blake.effective_cid_version().unwrap(), Version::V1);
        assert!(blake.effective_raw_leaves().unwrap());
        let bad = AddOptions { cid_version: Some(Version::V0), ..blake };
        assert!(matches!(bad.effective_cid_version(), Err(UnixfsError::CidV0NeedsSha256(_))));

        let v0_raw = AddOptions { raw_leaves: Some(true), ..AddOptions::default() };
        assert_eq!(v0_raw.effective_cid_version().unwrap(), Version::V0);
        assert!(v0_raw.effective_raw_leaves().unwrap());
    }

    #[test]
    fn hand_built_options_are_checked() {
        for chunker in [
            Chunker::Size(0),
            Chunker::Size(usize::MAX),
            Chunker::Rabin { min: 0, avg: 0, max: 0 },
            Chunker::Rabin { min: 64, avg: 32, max: 128 },
        ] {
            let o = AddOptions { chunker, ..AddOptions::default() };
            assert!(matches!(o.settings(), Err(UnixfsError::InvalidChunker { .. })), "{chunker:?}");
        }
        let o = AddOptions { hash: HashFunction::Blake2b(200), ..AddOptions::default() };
        assert!(matches!(o.settings(), Err(UnixfsError::UnknownHash(_))));
    }

    #[test]
    fn layouts_parse() {
        assert_eq!("".parse::<Layout>().unwrap(), Layout::Balanced);
        assert_eq!("trickle".parse::<Layout>().unwrap(), Layout::Trickle);
        assert!("flat".parse::<Layout>().is_err());
    }
}
