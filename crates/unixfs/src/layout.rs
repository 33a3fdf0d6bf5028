//! File DAG layouts, built incrementally as leaves arrive.
//!
//! Both builders keep only the links of the nodes that are still open (one node per tree
//! level: up to 174 links in balanced, 174 plus a few subtree links in trickle), emit every node the moment it is complete, and produce the same tree as
//! Kubo's recursive builders, which pull leaves on demand. The recursive shapes are
//! re-expressed as state machines because leaves are pushed in here.

use cid::Cid;

use crate::options::{MAX_LINKS, Settings};
use crate::pb::{self, DataType, PbLink, UnixfsData};
use crate::{Block, BlockSink, UnixfsError};

/// Depth repeat of Kubo's trickle layout.
const TRICKLE_REPEAT: u32 = 4;

/// A finished file node (leaf or internal) as seen from its parent.
#[derive(Debug, Clone)]
pub(crate) struct FileLink {
    pub cid: Cid,
    /// Cumulative size: the node's bytes plus all the blocks below it (dag-pb `Tsize`).
    pub tsize: u64,
    /// File bytes under the node (UnixFS `blocksizes` entry).
    pub filesize: u64,
}

/// Encodes and emits an internal file node over `children`.
pub(crate) fn emit_file_node(
    children: &[FileLink],
    settings: &Settings,
    sink: &mut dyn BlockSink,
) -> Result<FileLink, UnixfsError> {
    let links: Vec<PbLink<'_>> = children.iter().map(|c| PbLink { cid: &c.cid, name: "", tsize: c.tsize }).collect();
    let blocksizes: Vec<u64> = children.iter().map(|c| c.filesize).collect();
    let filesize = blocksizes.iter().sum();
    let bytes = pb::encode_node(
        &links,
        &UnixfsData { kind: DataType::File, data: None, filesize: Some(filesize), blocksizes: &blocksizes },
    );
    let cid = settings.node_cid(&bytes)?;
    let tsize = bytes.len() as u64 + children.iter().map(|c| c.tsize).sum::<u64>();
    sink.put_block(Block { cid, data: bytes })?;
    Ok(FileLink { cid, tsize, filesize })
}

/// Kubo's balanced layout.
///
/// Kubo grows the tree from the top: the first leaf is the root; when more data comes, the
/// root becomes the first child of a new root that is filled to 174 children of the same
/// depth, and so on. That is the same tree as filling level by level from the bottom,
/// closing a node as soon as it has 174 children, which needs only one open node per level.
#[derive(Debug, Default)]
pub(crate) struct Balanced {
    /// `levels[0]` holds leaves, `levels[n]` nodes of height `n`, all still without parent.
    levels: Vec<Vec<FileLink>>,
}

impl Balanced {
    pub fn push(&mut self, leaf: FileLink, settings: &Settings, sink: &mut dyn BlockSink) -> Result<(), UnixfsError> {
        let mut link = leaf;
        let mut level = 0;
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::with_capacity(MAX_LINKS));
            }
            self.levels[level].push(link);
            if self.levels[level].len() < MAX_LINKS {
                return Ok(());
            }
            link = emit_file_node(&self.levels[level], settings, sink)?;
            self.levels[level].clear();
            level += 1;
        }
    }

    /// Closes the open nodes. `None` when no leaf was ever pushed.
    pub fn finish(mut self, settings: &Settings, sink: &mut dyn BlockSink) -> Result<Option<FileLink>, UnixfsError> {
        let top = match self.levels.len() {
            0 => return Ok(None),
            n => n - 1,
        };
        for level in 0..top {
            // Below the top, any open node is the last child of its parent, even alone:
            // Kubo builds those nodes before knowing that the data has ended.
            if !self.levels[level].is_empty() {
                let link = emit_file_node(&self.levels[level], settings, sink)?;
                self.levels[level].clear();
                self.levels[level + 1].push(link);
            }
        }
        let roots = std::mem::take(&mut self.levels[top]);
        match roots.len() {
            0 => Ok(None),
            // A single leaf, or a tree that closed itself with exactly 174^n leaves.
            1 => Ok(roots.into_iter().next()),
            _ => emit_file_node(&roots, settings, sink).map(Some),
        }
    }
}

/// One node of the trickle DAG under construction.
#[derive(Debug)]
struct TrickleFrame {
    children: Vec<FileLink>,
    /// Kubo's `maxDepth` for this node: subtrees of depth `1..max_depth` hang below its
    /// leaves. `None` for the root, which grows without bound.
    max_depth: Option<u32>,
    /// 0 while the node still takes leaves directly, else the depth of the subtrees being
    /// added now.
    depth: u32,
    /// How many subtrees of `depth` were started.
    repeat: u32,
}

impl TrickleFrame {
    fn new(max_depth: Option<u32>) -> TrickleFrame {
        TrickleFrame { children: Vec::new(), max_depth, depth: 0, repeat: 0 }
    }
}

/// Kubo's trickle layout: each node takes up to 174 leaves, then `TRICKLE_REPEAT`
/// subtrees of depth 1, 4 of depth 2, and so on up to its own depth limit.
#[derive(Debug)]
pub(crate) struct Trickle {
    /// The path from the root (index 0) to the node taking leaves now.
    stack: Vec<TrickleFrame>,
}

impl Default for Trickle {
    fn default() -> Self {
        Trickle { stack: vec![TrickleFrame::new(None)] }
    }
}

impl Trickle {
    pub fn push(&mut self, leaf: FileLink, settings: &Settings, sink: &mut dyn BlockSink) -> Result<(), UnixfsError> {
        loop {
            let open = self.stack.len();
            let Some(top) = self.stack.last_mut() else {
                // The root frame is never popped before `finish`; rebuild rather than panic.
                self.stack.push(TrickleFrame::new(None));
                continue;
            };
            if top.depth == 0 {
                if top.children.len() < MAX_LINKS {
                    top.children.push(leaf);
                    return Ok(());
                }
                top.depth = 1;
                top.repeat = 0;
            }
            if top.repeat == TRICKLE_REPEAT {
                top.depth += 1;
                top.repeat = 0;
            }
            if top.max_depth.is_some_and(|max| top.depth >= max) && open > 1 {
                // This subtree is full; it becomes a child of its parent, which decides
                // where the leaf goes next.
                self.close_top(settings, sink)?;
                continue;
            }
            top.repeat += 1;
            let depth = top.depth;
            self.stack.push(TrickleFrame::new(Some(depth)));
        }
    }

    fn close_top(&mut self, settings: &Settings, sink: &mut dyn BlockSink) -> Result<(), UnixfsError> {
        if let Some(frame) = self.stack.pop() {
            let link = emit_file_node(&frame.children, settings, sink)?;
            match self.stack.last_mut() {
                Some(parent) => parent.children.push(link),
                None => self.stack.push(TrickleFrame { children: vec![link], ..TrickleFrame::new(None) }),
            }
        }
        Ok(())
    }

    /// Closes every open node; the root is always a node, even over zero or one leaf.
    pub fn finish(mut self, settings: &Settings, sink: &mut dyn BlockSink) -> Result<FileLink, UnixfsError> {
        while self.stack.len() > 1 {
            self.close_top(settings, sink)?;
        }
        let children = self.stack.pop().map(|f| f.children).unwrap_or_default();
        emit_file_node(&children, settings, sink)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use crate::testutil::{Shape, index, pseudo_random, read_file};
    use crate::{AddOptions, Block, Chunker, HashFunction, Layout, MAX_LINKS, import_bytes};

    /// Kubo's balanced builder, transcribed as a recursive shape generator over `n` leaves:
    /// the first leaf is the root, then each round wraps the root as the first child of a
    /// new root filled with subtrees one level shallower.
    fn balanced_reference(n: usize) -> Shape {
        fn fill(children: &mut Vec<Shape>, depth: u32, remaining: &mut usize) {
            while children.len() < MAX_LINKS && *remaining > 0 {
                if depth == 1 {
                    children.push(Shape::Leaf);
                    *remaining -= 1;
                } else {
                    let mut sub = Vec::new();
                    fill(&mut sub, depth - 1, remaining);
                    children.push(Shape::Node(sub));
                }
            }
        }
        let mut remaining = n - 1;
        let mut root = Shape::Leaf;
        let mut depth = 1;
        while remaining > 0 {
            let mut children = vec![root];
            fill(&mut children, depth, &mut remaining);
            root = Shape::Node(children);
            depth += 1;
        }
        root
    }

    /// Kubo's trickle builder, transcribed the same way: a node takes up to 174 leaves,
    /// then 4 subtrees of each depth below its own limit.
    fn trickle_reference(n: usize) -> Shape {
        fn fill(max_depth: Option<u32>, remaining: &mut usize) -> Vec<Shape> {
            let mut children = Vec::new();
            while children.len() < MAX_LINKS && *remaining > 0 {
                children.push(Shape::Leaf);
                *remaining -= 1;
            }
            let mut depth = 1;
            while max_depth.is_none_or(|m| depth < m) && *remaining > 0 {
                for _ in 0..4 {
                    if *remaining == 0 {
                        break;
                    }
                    children.push(Shape::Node(fill(Some(depth), remaining)));
                }
                depth += 1;
            }
            children
        }
        let mut remaining = n;
        Shape::Node(fill(None, &mut remaining))
    }

    /// Imports `data` and reads the DAG back, checking every block and link on the way.
    fn import_and_read(data: &[u8], options: &AddOptions) -> (Shape, u64, usize) {
        let mut blocks: Vec<Block> = Vec::new();
        let root = import_bytes(data, options, &mut blocks).unwrap();
        let index = index(&blocks, options.hash);
        assert_eq!(index.len(), blocks.len().min(index.len()));
        let max_links = (options.layout == Layout::Balanced).then_some(MAX_LINKS);
        let (shape, content, size) = read_file(&index, &root.cid, max_links);
        assert_eq!(content, data, "the DAG reads back as the input");
        assert_eq!(size, root.size, "reported size is the cumulative size");
        assert_eq!(root.bytes, data.len() as u64);
        // Children are emitted before their parents, and the root last.
        assert_eq!(blocks.last().unwrap().cid, root.cid);
        (shape, root.size, blocks.len())
    }

    fn one_byte_chunks(layout: Layout, raw_leaves: bool) -> AddOptions {
        AddOptions { chunker: Chunker::Size(1), layout, raw_leaves: Some(raw_leaves), ..AddOptions::default() }
    }

    #[test]
    fn balanced_shapes_at_the_boundaries() {
        let m = MAX_LINKS;
        for n in [1, 2, m - 1, m, m + 1, 2 * m, 5 * m + 3, m * m - 1, m * m, m * m + 1, m * m + m, m * m + m + 1] {
            let data = pseudo_random(n, n as u64);
            let (shape, _, _) = import_and_read(&data, &one_byte_chunks(Layout::Balanced, false));
            assert_eq!(shape, balanced_reference(n), "{n} leaves");
        }
    }

    #[test]
    fn trickle_shapes_at_the_boundaries() {
        // 174 leaves fill the root's own layer; 4 depth-1 subtrees take 696 more; a depth-2
        // subtree holds 870 leaves, so depth 2 completes at 174 + 696 + 3480 = 4350.
        for n in [0, 1, 2, 174, 175, 870, 871, 1044, 1045, 4350, 4351, 9000] {
            let data = pseudo_random(n, n as u64);
            for raw in [false, true] {
                let (shape, _, _) = import_and_read(&data, &one_byte_chunks(Layout::Trickle, raw));
                assert_eq!(shape, trickle_reference(n), "{n} leaves, raw leaves {raw}");
            }
        }
    }

    #[test]
    fn empty_file() {
        // Balanced: one empty leaf (an empty raw block with raw leaves); trickle: an empty root.
        let (shape, size, blocks) = import_and_read(b"", &AddOptions::default());
        assert_eq!((shape, size, blocks), (Shape::Node(vec![]), 6, 1));
        let raw = AddOptions { raw_leaves: Some(true), ..AddOptions::default() };
        assert_eq!(import_and_read(b"", &raw), (Shape::Leaf, 0, 1));
        let trickle = AddOptions { layout: Layout::Trickle, ..raw };
        assert_eq!(import_and_read(b"", &trickle), (Shape::Node(vec![]), 6, 1));
    }

    #[test]
    fn chunk_boundaries_with_real_chunk_sizes() {
        let c = 256;
        for layout in [Layout::Balanced, Layout::Trickle] {
            for len in [0, 1, c - 1, c, c + 1, 174 * c - 1, 174 * c, 174 * c + 1] {
                let data = pseudo_random(len, 3);
                let options = AddOptions { chunker: Chunker::Size(c), layout, ..AddOptions::default() };
                let (shape, _, blocks) = import_and_read(&data, &options);
                let leaves = len.div_ceil(c).max(1);
                let want = match layout {
                    Layout::Balanced => balanced_reference(leaves),
                    Layout::Trickle if len == 0 => Shape::Node(vec![]),
                    Layout::Trickle => trickle_reference(leaves),
                };
                if len > 0 {
                    assert_eq!(shape, want, "{layout} {len} B");
                }
                assert!(blocks >= leaves);
            }
        }
    }

    #[test]
    fn other_hashes_read_back() {
        let data = pseudo_random(3000, 5);
        for hash in [HashFunction::Sha2_512, HashFunction::Sha3_256, HashFunction::Blake2b(32), HashFunction::Blake3] {
            let options = AddOptions { chunker: Chunker::Size(100), hash, ..AddOptions::default() };
            let (shape, _, _) = import_and_read(&data, &options);
            assert_eq!(shape, balanced_reference(30));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]

        /// The streaming builders give Kubo's recursive shapes for any leaf count, and the
        /// DAG always reads back as the input.
        #[test]
        fn streaming_layouts_match_the_recursive_definitions(n in 1usize..6000, raw in any::<bool>(), trickle in any::<bool>()) {
            let layout = if trickle { Layout::Trickle } else { Layout::Balanced };
            let data = pseudo_random(n, n as u64 * 7);
            let (shape, _, _) = import_and_read(&data, &one_byte_chunks(layout, raw));
            let want = if trickle { trickle_reference(n) } else { balanced_reference(n) };
            prop_assert_eq!(shape, want);
        }
    }
}
