//! File DAG layouts, built incrementally as leaves arrive.
//!
//! Both builders keep only the links of the nodes that are still open (at most 174 per
//! tree level), emit every node the moment it is complete, and produce the same tree as
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
    let links: Vec<PbLink<'_>> =
        children.iter().map(|c| PbLink { cid: &c.cid, name: "", tsize: c.tsize }).collect();
    let blocksizes: Vec<u64> = children.iter().map(|c| c.filesize).collect();
    let filesize = blocksizes.iter().sum();
    let bytes = pb::encode_node(
        &links,
        &UnixfsData { kind: DataType::File, data: None, filesize: Some(filesize), blocksizes: &blocksizes },
    );
    let cid = settings.node_cid(&bytes)?;
    let tsize = bytes.len() as u64 + children.iter().map(|c| c.tsize).sum::<u64>();
    sink.put_block(Block { cid, data: bytes.into() })?;
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
