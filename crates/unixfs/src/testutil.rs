//! Test helpers: an independent dag-pb/UnixFS reader to check what the importer wrote.

use std::collections::HashMap;

use cid::Cid;

use crate::options::{DAG_PB, RAW};
use crate::{Block, HashFunction};

/// A decoded dag-pb node.
#[derive(Debug)]
pub(crate) struct Node {
    pub links: Vec<(Cid, String, u64)>,
    pub kind: u64,
    pub data: Option<Vec<u8>>,
    pub filesize: Option<u64>,
    pub blocksizes: Vec<u64>,
}

fn varint(buf: &mut &[u8]) -> u64 {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = buf[0];
        *buf = &buf[1..];
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            break;
        }
    }
    v
}

/// Splits a protobuf message into (field, wire type, varint value or bytes).
fn fields(mut buf: &[u8]) -> Vec<(u64, Result<u64, Vec<u8>>)> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let key = varint(&mut buf);
        match key & 7 {
            0 => out.push((key >> 3, Ok(varint(&mut buf)))),
            2 => {
                let len = varint(&mut buf) as usize;
                out.push((key >> 3, Err(buf[..len].to_vec())));
                buf = &buf[len..];
            }
            w => panic!("unexpected wire type {w}"),
        }
    }
    out
}

pub(crate) fn decode(block: &[u8]) -> Node {
    let mut node = Node { links: Vec::new(), kind: 99, data: None, filesize: None, blocksizes: Vec::new() };
    let mut seen_data = false;
    for (field, value) in fields(block) {
        match (field, value) {
            (2, Err(link)) => {
                assert!(!seen_data, "links must come before data");
                let (mut cid, mut name, mut tsize) = (None, None, None);
                for (f, v) in fields(&link) {
                    match (f, v) {
                        (1, Err(b)) => cid = Some(Cid::try_from(b).unwrap()),
                        (2, Err(b)) => name = Some(String::from_utf8(b).unwrap()),
                        (3, Ok(t)) => tsize = Some(t),
                        other => panic!("unexpected link field {other:?}"),
                    }
                }
                node.links.push((cid.unwrap(), name.expect("Kubo always writes Name"), tsize.expect("and Tsize")));
            }
            (1, Err(data)) => {
                seen_data = true;
                let mut last = 0;
                for (f, v) in fields(&data) {
                    assert!(f >= last, "UnixFS fields out of order");
                    last = f;
                    match (f, v) {
                        (1, Ok(t)) => node.kind = t,
                        (2, Err(b)) => node.data = Some(b),
                        (3, Ok(s)) => node.filesize = Some(s),
                        (4, Ok(s)) => node.blocksizes.push(s),
                        other => panic!("unexpected UnixFS field {other:?}"),
                    }
                }
            }
            other => panic!("unexpected node field {other:?}"),
        }
    }
    node
}

/// The tree shape below a file root: leaves and internal nodes.
#[derive(Debug, PartialEq, Eq, Clone)]
pub(crate) enum Shape {
    Leaf,
    Node(Vec<Shape>),
}

/// Blocks by CID, each checked against its own hash.
pub(crate) fn index(blocks: &[Block], hash: HashFunction) -> HashMap<Cid, Vec<u8>> {
    blocks
        .iter()
        .map(|b| {
            assert_eq!(b.cid.hash(), &hash.digest(&b.data).unwrap(), "block does not hash to its CID");
            (b.cid, b.data.to_vec())
        })
        .collect()
}

/// Walks a file DAG: returns its shape, content, and cumulative size, checking every
/// invariant Kubo's importer keeps on the way.
/// `max_links` bounds the links per node (balanced); trickle nodes hold 174 leaves plus
/// their subtrees, so they pass `None`.
pub(crate) fn read_file(blocks: &HashMap<Cid, Vec<u8>>, cid: &Cid, max_links: Option<usize>) -> (Shape, Vec<u8>, u64) {
    let block = &blocks[cid];
    if cid.codec() == RAW {
        return (Shape::Leaf, block.clone(), block.len() as u64);
    }
    assert_eq!(cid.codec(), DAG_PB);
    let node = decode(block);
    assert!(node.kind == 2 || node.kind == 0, "file nodes are File or Raw, got {}", node.kind);
    assert!(max_links.is_none_or(|m| node.links.len() <= m));
    let mut content = node.data.clone().unwrap_or_default();
    if node.links.is_empty() && node.blocksizes.is_empty() {
        assert_eq!(node.filesize, Some(content.len() as u64));
        // An internal node with no children (empty trickle root) still reads as a node.
        let shape = if node.data.is_some() || node.kind == 0 { Shape::Leaf } else { Shape::Node(vec![]) };
        return (shape, content, block.len() as u64);
    }
    assert_eq!(node.blocksizes.len(), node.links.len());
    let mut shapes = Vec::new();
    let mut tsize = block.len() as u64;
    for ((child, name, link_tsize), &bs) in node.links.iter().zip(&node.blocksizes) {
        assert_eq!(name, "");
        let (shape, data, child_size) = read_file(blocks, child, max_links);
        assert_eq!(*link_tsize, child_size, "Tsize is the child's cumulative size");
        assert_eq!(bs, data.len() as u64, "blocksizes entry is the child's file size");
        content.extend_from_slice(&data);
        shapes.push(shape);
        tsize += child_size;
    }
    assert_eq!(node.filesize, Some(content.len() as u64));
    (Shape::Node(shapes), content, tsize)
}

pub(crate) fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
