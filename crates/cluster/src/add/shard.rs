//! The pure part of sharded adds (§11): which blocks go into which shard, and the dag-cbor
//! nodes that list them.
//!
//! A shard node is a dag-cbor map `{"0": link, "1": link, …}` over the CIDs of the shard's
//! blocks (CIDv1, sha2-256). When a shard holds more than [`MAX_SHARD_LINKS`] blocks the
//! links are split over several such nodes and the shard's root is one more map over those;
//! its pin then reaches two levels down instead of one. The cluster-DAG node is the same kind
//! of map over the shard roots, in shard order.

use bytes::Bytes;
use cid::Cid;
use cluster_ipfs::CODEC_DAG_CBOR;

/// Most links in one shard node: the original's bound, which keeps a node under the 1 MiB
/// block limit (a CIDv1 link costs about 45 bytes, its key up to 5 more).
pub const MAX_SHARD_LINKS: usize = 5984;

/// Why a stored link map could not be read back.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed shard node: {0}")]
pub struct ShardNodeError(String);

fn malformed(why: impl Into<String>) -> ShardNodeError {
    ShardNodeError(why.into())
}

/// How much of the shard size a block uses: the file content it carries (a chunk's bytes),
/// or its whole length when it is not part of a file (directories, dag-cbor).
///
/// A file's inner nodes, which only link to its chunks, weigh nothing and ride along with the
/// shard being filled. So `shard-size` counts file bytes: a 200 MiB file cut at 50 MiB makes
/// four shards, each a little larger on disk (protobuf framing and inner nodes, about 0.02 %).
/// The original counted whole blocks, which left a small fifth shard.
pub fn shard_weight(cid: &Cid, data: &[u8]) -> u64 {
    super::car::file_content_len(cid, data).unwrap_or(data.len() as u64)
}

/// What one shard's blocks add up to while it fills: blocks go in while their
/// [`shard_weight`]s fit, and the first block that does not closes the shard (an empty shard
/// takes any block, so a block larger than the shard size gets a shard of its own instead of
/// failing the add).
#[derive(Debug, Clone, Default)]
pub struct ShardFill {
    /// Bytes of the blocks taken so far (what the shard occupies on disk).
    pub size: u64,
    /// Their weights, measured against the shard size.
    pub weight: u64,
    /// Their CIDs, in the order they came, without repeats.
    pub links: Vec<Cid>,
    seen: std::collections::HashSet<Cid>,
}

impl ShardFill {
    /// True when a block of this weight still fits under `limit`.
    pub fn fits(&self, weight: u64, limit: u64) -> bool {
        self.links.is_empty() || self.weight + weight <= limit
    }

    /// Takes a block; a block already in this shard is stored and counted once.
    pub fn take(&mut self, cid: Cid, len: u64, weight: u64) -> bool {
        if !self.seen.insert(cid) {
            return false;
        }
        self.size += len;
        self.weight += weight;
        self.links.push(cid);
        true
    }

    /// True before the first block.
    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }
}

/// The nodes of one shard: the blocks to store (leaf nodes first, the root last), the root, and
/// how deep its pin must reach.
#[derive(Debug, Clone)]
pub struct ShardDag {
    /// Every node block, the root last.
    pub blocks: Vec<(Cid, Bytes)>,
    /// The shard's root node.
    pub root: Cid,
    /// The shard pin's `max_depth`: 1, or 2 with an indirect level.
    pub max_depth: i32,
}

/// Builds the node(s) of a shard over `links` (at least one).
pub fn shard_dag(links: &[Cid]) -> ShardDag {
    if links.len() <= MAX_SHARD_LINKS {
        let (root, data) = link_map_block(links);
        return ShardDag { blocks: vec![(root, data)], root, max_depth: 1 };
    }
    let mut blocks: Vec<(Cid, Bytes)> = links.chunks(MAX_SHARD_LINKS).map(link_map_block).collect();
    let leaves: Vec<Cid> = blocks.iter().map(|(c, _)| *c).collect();
    let (root, data) = link_map_block(&leaves);
    blocks.push((root, data));
    ShardDag { blocks, root, max_depth: 2 }
}

/// The cluster-DAG node over the shard roots, in shard order.
pub fn cluster_dag(shards: &[Cid]) -> (Cid, Bytes) {
    link_map_block(shards)
}

/// A dag-cbor map from "0", "1", … to `links`, and its CIDv1 (sha2-256).
pub fn link_map_block(links: &[Cid]) -> (Cid, Bytes) {
    let data = Bytes::from(encode_link_map(links));
    // sha2-256 of bytes in memory cannot fail
    let cid = cluster_ipfs::block_cid(&data, CODEC_DAG_CBOR).unwrap_or_default();
    (cid, data)
}

/// Encodes the map in dag-cbor's canonical form: keys ordered by length, then bytewise, which
/// for decimal indexes is numeric order.
pub fn encode_link_map(links: &[Cid]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + links.len() * 48);
    head(&mut out, 5, links.len() as u64);
    for (i, link) in links.iter().enumerate() {
        let key = i.to_string();
        head(&mut out, 3, key.len() as u64);
        out.extend_from_slice(key.as_bytes());
        // tag 42: a CID link, as a byte string with the multibase identity prefix 0x00
        out.extend_from_slice(&[0xd8, 42]);
        let bytes = link.to_bytes();
        head(&mut out, 2, bytes.len() as u64 + 1);
        out.push(0);
        out.extend_from_slice(&bytes);
    }
    out
}

/// Reads back a map written by [`encode_link_map`]: its links in index order.
pub fn decode_link_map(data: &[u8]) -> Result<Vec<Cid>, ShardNodeError> {
    let mut r = Reader { data, pos: 0 };
    let n = r.head(5)?;
    // each entry takes at least 4 bytes, so a huge count in a small block is refused early
    if n > (data.len() / 4) as u64 {
        return Err(malformed(format!("{n} entries cannot fit in {} bytes", data.len())));
    }
    let mut links = Vec::with_capacity(n as usize);
    for i in 0..n {
        let key_len = r.head(3)?;
        let key = r.take(key_len)?;
        if key != i.to_string().as_bytes() {
            return Err(malformed(format!("entry {i} has key {:?}", String::from_utf8_lossy(key))));
        }
        if r.take(2)? != [0xd8, 42] {
            return Err(malformed(format!("entry {i} is not a link")));
        }
        let len = r.head(2)?;
        let bytes = r.take(len)?;
        let Some((0, cid)) = bytes.split_first() else {
            return Err(malformed(format!("entry {i} has no identity multibase prefix")));
        };
        links.push(Cid::try_from(cid).map_err(|e| malformed(format!("entry {i}: {e}")))?);
    }
    if r.pos != data.len() {
        return Err(malformed("trailing bytes after the map"));
    }
    Ok(links)
}

/// Writes a CBOR head: major type and argument, in the shortest form.
pub(super) fn head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    if n < 24 {
        out.push(m | n as u8);
    } else if let Ok(n) = u8::try_from(n) {
        out.extend_from_slice(&[m | 24, n]);
    } else if let Ok(n) = u16::try_from(n) {
        out.push(m | 25);
        out.extend_from_slice(&n.to_be_bytes());
    } else if let Ok(n) = u32::try_from(n) {
        out.push(m | 26);
        out.extend_from_slice(&n.to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: u64) -> Result<&'a [u8], ShardNodeError> {
        let n = usize::try_from(n).map_err(|_| malformed("length overflows"))?;
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len()).ok_or_else(|| malformed("truncated"))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn head(&mut self, major: u8) -> Result<u64, ShardNodeError> {
        let b = self.take(1)?[0];
        if b >> 5 != major {
            return Err(malformed(format!("expected CBOR major type {major}, found {}", b >> 5)));
        }
        let n = match b & 0x1f {
            n @ 0..=23 => u64::from(n),
            24 => u64::from(self.take(1)?[0]),
            25 => u64::from(u16::from_be_bytes(self.take(2)?.try_into().unwrap_or_default())),
            26 => u64::from(u32::from_be_bytes(self.take(4)?.try_into().unwrap_or_default())),
            27 => u64::from_be_bytes(self.take(8)?.try_into().unwrap_or_default()),
            other => return Err(malformed(format!("unsupported CBOR argument {other}"))),
        };
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cid_of(i: u64) -> Cid {
        cluster_ipfs::block_cid(&i.to_le_bytes(), cluster_ipfs::CODEC_RAW).unwrap()
    }

    #[test]
    fn small_map_has_the_canonical_bytes() {
        let link = cid_of(1);
        let data = encode_link_map(&[link]);
        let mut expected = vec![0xa1, 0x61, b'0', 0xd8, 0x2a, 0x58, 37, 0x00];
        expected.extend_from_slice(&link.to_bytes());
        assert_eq!(data, expected);
    }

    #[test]
    fn rust_ipfs_sees_the_links_of_a_shard_node() {
        let links: Vec<Cid> = (0..30).map(cid_of).collect();
        let (cid, data) = link_map_block(&links);
        assert_eq!(cid.codec(), CODEC_DAG_CBOR);
        let block = rust_ipfs::Block::new(cid, data.to_vec()).expect("valid block");
        let mut seen = Vec::new();
        block.references(&mut seen).expect("dag-cbor decodes");
        // the decoder walks map keys in its own order; the set is what matters
        seen.sort();
        let mut want = links.clone();
        want.sort();
        assert_eq!(seen, want);
    }

    #[test]
    fn big_shards_get_an_indirect_level() {
        let links: Vec<Cid> = (0..(MAX_SHARD_LINKS as u64 * 2 + 5)).map(cid_of).collect();
        let dag = shard_dag(&links);
        assert_eq!(dag.max_depth, 2);
        assert_eq!(dag.blocks.len(), 4);
        assert_eq!(dag.blocks.last().unwrap().0, dag.root);
        let leaves = decode_link_map(&dag.blocks[3].1).unwrap();
        assert_eq!(leaves, dag.blocks[..3].iter().map(|(c, _)| *c).collect::<Vec<_>>());
        let mut all = Vec::new();
        for (_, data) in &dag.blocks[..3] {
            all.extend(decode_link_map(data).unwrap());
        }
        assert_eq!(all, links);
        assert!(dag.blocks.iter().all(|(_, d)| d.len() < 1 << 20));
        let small = shard_dag(&links[..10]);
        assert_eq!((small.max_depth, small.blocks.len()), (1, 1));
    }

    #[test]
    fn fill_closes_on_the_first_block_that_does_not_fit() {
        let mut fill = ShardFill::default();
        assert!(fill.fits(500, 100), "an empty shard takes an oversized block");
        assert!(fill.take(cid_of(0), 70, 60));
        assert!(fill.fits(40, 100));
        assert!(!fill.fits(41, 100));
        assert!(!fill.take(cid_of(0), 70, 60), "a repeated block is taken once");
        assert!(fill.take(cid_of(1), 900, 0), "a block without file content always fits");
        assert!(fill.fits(40, 100));
        assert_eq!((fill.size, fill.weight, fill.links.len()), (970, 60, 2));
    }

    #[test]
    fn weights_count_file_bytes_only() {
        use cluster_unixfs::{AddOptions, Block, Chunker, Importer};
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for raw_leaves in [false, true] {
            let options = AddOptions {
                chunker: Chunker::Size(1000),
                raw_leaves: Some(raw_leaves),
                wrap_with_directory: true,
                ..AddOptions::default()
            };
            let mut importer = Importer::new(&options).unwrap();
            let mut blocks: Vec<Block> = Vec::new();
            importer.add_file("f", &mut &data[..], &mut blocks).unwrap();
            importer.finish(&mut blocks).unwrap();
            let weights: Vec<u64> = blocks.iter().map(|b| shard_weight(&b.cid, &b.data)).collect();
            // Ten chunks, the file's root over them, the wrapping directory.
            assert_eq!(blocks.len(), 12, "raw leaves {raw_leaves}");
            assert!(weights[..10].iter().all(|&w| w == 1000), "{weights:?}");
            assert_eq!(weights[10], 0, "the file's root carries no content");
            assert_eq!(weights[11], blocks[11].data.len() as u64, "a directory weighs its bytes");
        }
        let cbor = link_map_block(&[cid_of(1)]);
        assert_eq!(shard_weight(&cbor.0, &cbor.1), cbor.1.len() as u64);
    }

    #[test]
    fn bad_maps_are_refused() {
        let data = encode_link_map(&[cid_of(1), cid_of(2)]);
        for cut in 0..data.len() {
            assert!(decode_link_map(&data[..cut]).is_err(), "cut at {cut}");
        }
        let mut extra = data.clone();
        extra.push(0);
        assert!(decode_link_map(&extra).is_err());
        assert!(decode_link_map(&[0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err());
        let mut wrong_key = data;
        wrong_key[2] = b'1';
        assert!(decode_link_map(&wrong_key).is_err());
    }

    proptest! {
        #[test]
        fn maps_round_trip(n in 0usize..400, seed in any::<u64>()) {
            let links: Vec<Cid> = (0..n as u64).map(|i| cid_of(i ^ seed)).collect();
            prop_assert_eq!(decode_link_map(&encode_link_map(&links)).unwrap(), links);
        }

        #[test]
        fn decoding_garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_link_map(&data);
        }
    }
}
