//! Importing one file: chunker → leaves → layout, streaming.

use std::io::{ErrorKind, Read};

use bytes::Bytes;
use cid::Cid;

use crate::chunker::{Chunker, Splitter};
use crate::layout::{Balanced, FileLink, Trickle};
use crate::options::Settings;
use crate::pb::{self, DataType, UnixfsData};
use crate::{AddOptions, Block, BlockSink, Layout, UnixfsError};

/// How much `write_from` reads before handing bytes to the chunker: large enough that a
/// content-defined chunker cuts most chunks straight from it without copying.
const READ_BUFFER: usize = 1 << 20;

/// The root of an imported file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRoot {
    /// CID of the file's root block.
    pub cid: Cid,
    /// Cumulative DAG size: the root block plus every block below it (Kubo's `Size`).
    pub size: u64,
    /// Length of the file content.
    pub bytes: u64,
}

#[derive(Debug)]
enum Builder {
    Balanced(Balanced),
    Trickle(Trickle),
}

/// Imports one file from bytes pushed in any pieces, emitting blocks as they are complete.
///
/// Memory stays at one chunker window (at most 1 MiB) plus one open node per tree level,
/// whatever the file size.
///
/// ```
/// use cluster_unixfs::{AddOptions, FileImporter, NullSink};
/// let mut f = FileImporter::new(&AddOptions::default())?;
/// f.write(b"hello ", &mut NullSink)?;
/// f.write(b"world\n", &mut NullSink)?;
/// let root = f.finish(&mut NullSink)?;
/// assert_eq!(root.cid.to_string(), "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o");
/// assert_eq!(root.size, 20);
/// # Ok::<(), cluster_unixfs::UnixfsError>(())
/// ```
#[derive(Debug)]
pub struct FileImporter {
    settings: Settings,
    chunks: Chunks,
    builder: Builder,
    bytes: u64,
}

/// How the file's bytes become leaves.
#[derive(Debug)]
enum Chunks {
    /// Fixed-size chunks, each built in place in its leaf.
    Fixed(FixedLeaves),
    /// Content-defined chunks, cut by the splitter and then encoded.
    Cut(Splitter),
}

impl FileImporter {
    /// A file importer with these options (the directory options are ignored).
    pub fn new(options: &AddOptions) -> Result<FileImporter, UnixfsError> {
        Ok(FileImporter::with_settings(options.settings()?))
    }

    pub(crate) fn with_settings(settings: Settings) -> FileImporter {
        let builder = match settings.layout {
            Layout::Balanced => Builder::Balanced(Balanced::default()),
            Layout::Trickle => Builder::Trickle(Trickle::default()),
        };
        let chunks = match settings.chunker {
            Chunker::Size(size) => Chunks::Fixed(FixedLeaves::new(&settings, leaf_kind(&builder), size.max(1))),
            _ => Chunks::Cut(Splitter::checked(&settings.chunker)),
        };
        FileImporter { settings, chunks, builder, bytes: 0 }
    }

    /// Bytes taken in so far (for progress reports).
    pub fn bytes_written(&self) -> u64 {
        self.bytes
    }

    /// Feeds the next bytes of the file.
    pub fn write(&mut self, data: &[u8], sink: &mut dyn BlockSink) -> Result<(), UnixfsError> {
        self.bytes += data.len() as u64;
        let settings = &self.settings;
        let builder = &mut self.builder;
        match &mut self.chunks {
            Chunks::Fixed(leaves) => leaves.write(data, &mut |block, filesize| {
                let (block, link) = leaf_block(settings, block, filesize)?;
                push_leaf(settings, builder, block, link, sink)
            }),
            Chunks::Cut(splitter) => splitter.write(data, &mut |chunk| add_leaf(settings, builder, chunk, sink)),
        }
    }

    /// Feeds everything `reader` yields until end of input; returns how many bytes it read.
    pub fn write_from(&mut self, reader: &mut dyn Read, sink: &mut dyn BlockSink) -> Result<u64, UnixfsError> {
        let mut buf = vec![0u8; READ_BUFFER];
        let mut total = 0u64;
        loop {
            // Fill the whole buffer when the reader allows, so chunks are cut in place.
            let mut filled = 0;
            while filled < buf.len() {
                match reader.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(e.into()),
                }
            }
            if filled == 0 {
                return Ok(total);
            }
            total += filled as u64;
            self.write(&buf[..filled], sink)?;
        }
    }

    /// Ends the file: emits the remaining leaves and nodes and returns the root.
    pub fn finish(mut self, sink: &mut dyn BlockSink) -> Result<FileRoot, UnixfsError> {
        let settings = &self.settings;
        let builder = &mut self.builder;
        match &mut self.chunks {
            // The last chunk is shorter than the leaf begun for it: encoded anew, as any chunk.
            Chunks::Fixed(leaves) => {
                if let Some(chunk) = leaves.partial() {
                    add_leaf(settings, builder, chunk, sink)?;
                }
            }
            Chunks::Cut(splitter) => splitter.finish(&mut |chunk| add_leaf(settings, builder, chunk, sink))?,
        }
        let root = match self.builder {
            Builder::Balanced(b) => match b.finish(&self.settings, sink)? {
                Some(root) => root,
                // Kubo's balanced layout turns an empty file into one empty leaf.
                None => {
                    let (block, link) = make_leaf(&self.settings, &[], DataType::File)?;
                    sink.put_block(block)?;
                    link
                }
            },
            Builder::Trickle(t) => t.finish(&self.settings, sink)?,
        };
        Ok(FileRoot { cid: root.cid, size: root.tsize, bytes: self.bytes })
    }
}

/// The UnixFS type of non-raw leaves: Kubo's trickle builder stores them as "raw" nodes, the
/// balanced one as "file" nodes.
fn leaf_kind(builder: &Builder) -> DataType {
    match builder {
        Builder::Balanced(_) => DataType::File,
        Builder::Trickle(_) => DataType::Raw,
    }
}

fn add_leaf(
    settings: &Settings,
    builder: &mut Builder,
    chunk: &[u8],
    sink: &mut dyn BlockSink,
) -> Result<(), UnixfsError> {
    let (block, link) = make_leaf(settings, chunk, leaf_kind(builder))?;
    push_leaf(settings, builder, block, link, sink)
}

/// Hands a finished leaf to the sink and links it into the tree.
fn push_leaf(
    settings: &Settings,
    builder: &mut Builder,
    block: Block,
    link: FileLink,
    sink: &mut dyn BlockSink,
) -> Result<(), UnixfsError> {
    sink.put_block(block)?;
    match builder {
        Builder::Balanced(b) => b.push(link, settings, sink),
        Builder::Trickle(t) => t.push(link, settings, sink),
    }
}

fn make_leaf(settings: &Settings, chunk: &[u8], kind: DataType) -> Result<(Block, FileLink), UnixfsError> {
    let filesize = chunk.len() as u64;
    if settings.raw_leaves {
        return leaf_block(settings, pb::page_aligned(chunk.len(), |buf| buf.extend_from_slice(chunk)), filesize);
    }
    let bytes = pb::encode_node(
        &[],
        &UnixfsData {
            kind,
            // Only the empty file's leaf has no data, and Kubo leaves the field out there.
            data: (!chunk.is_empty()).then_some(chunk),
            filesize: Some(filesize),
            blocksizes: &[],
        },
    );
    leaf_block(settings, bytes, filesize)
}

/// The block and link of an encoded leaf holding `filesize` bytes of the file.
fn leaf_block(settings: &Settings, bytes: Bytes, filesize: u64) -> Result<(Block, FileLink), UnixfsError> {
    let cid = if settings.raw_leaves { settings.raw_cid(&bytes)? } else { settings.node_cid(&bytes)? };
    let link = FileLink { cid, tsize: bytes.len() as u64, filesize };
    Ok((Block { cid, data: bytes }, link))
}

/// Leaves of a fixed-size chunker, assembled in place: each byte of the file is copied once,
/// straight into the block that holds it, between a leaf's protobuf head and tail (the same
/// for every full leaf of a file, so encoded once). Cutting chunks first and encoding them
/// after would copy every byte twice whenever input comes in pieces that do not hold whole
/// chunks, as an upload's do.
#[derive(Debug)]
struct FixedLeaves {
    /// Chunk size.
    size: usize,
    /// What comes before and after a full chunk in its leaf (nothing for raw leaves).
    head: Vec<u8>,
    tail: Vec<u8>,
    /// The leaf being filled: alignment padding, head, the chunk's bytes so far. Empty
    /// between leaves.
    leaf: Vec<u8>,
    /// Where the block starts in `leaf`.
    start: usize,
}

impl FixedLeaves {
    fn new(settings: &Settings, kind: DataType, size: usize) -> FixedLeaves {
        let (head, tail) = if settings.raw_leaves { (Vec::new(), Vec::new()) } else { pb::leaf_frame(kind, size) };
        FixedLeaves { size, head, tail, leaf: Vec::new(), start: 0 }
    }

    /// Takes in `data`, calling `on_leaf` with each full leaf's bytes and chunk size.
    fn write<E>(&mut self, mut data: &[u8], on_leaf: &mut dyn FnMut(Bytes, u64) -> Result<(), E>) -> Result<(), E> {
        while !data.is_empty() {
            if self.leaf.is_empty() {
                let (mut leaf, start) = pb::aligned_buffer(self.head.len() + self.size + self.tail.len());
                leaf.extend_from_slice(&self.head);
                (self.leaf, self.start) = (leaf, start);
            }
            let filled = self.leaf.len() - self.start - self.head.len();
            let take = (self.size - filled).min(data.len());
            self.leaf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if filled + take == self.size {
                self.leaf.extend_from_slice(&self.tail);
                let leaf = Bytes::from(std::mem::take(&mut self.leaf)).slice(self.start..);
                on_leaf(leaf, self.size as u64)?;
            }
        }
        Ok(())
    }

    /// The bytes of a chunk begun and not completed: at the end of input, the last chunk.
    fn partial(&self) -> Option<&[u8]> {
        let data = self.leaf.get(self.start + self.head.len()..)?;
        (!data.is_empty()).then_some(data)
    }
}

/// Imports everything `reader` yields as one file.
pub fn import_reader(
    reader: &mut dyn Read,
    options: &AddOptions,
    sink: &mut dyn BlockSink,
) -> Result<FileRoot, UnixfsError> {
    let mut f = FileImporter::new(options)?;
    f.write_from(reader, sink)?;
    f.finish(sink)
}

/// Imports a byte slice as one file.
pub fn import_bytes(data: &[u8], options: &AddOptions, sink: &mut dyn BlockSink) -> Result<FileRoot, UnixfsError> {
    let mut f = FileImporter::new(options)?;
    f.write(data, sink)?;
    f.finish(sink)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::testutil::pseudo_random;
    use crate::{BLOCK_ALIGN, CidVersion};

    /// Imports `data` with the chunks cut first and each encoded on its own: the general path,
    /// which in-place leaves must agree with.
    fn cut_then_encoded(data: &[u8], options: &AddOptions) -> (Vec<Block>, FileRoot) {
        let mut f = FileImporter::new(options).unwrap();
        f.chunks = Chunks::Cut(Splitter::checked(&f.settings.chunker));
        let mut blocks = Vec::new();
        f.write(data, &mut blocks).unwrap();
        let root = f.finish(&mut blocks).unwrap();
        (blocks, root)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn in_place_leaves_equal_cut_then_encoded_ones(
            size in 1usize..9000,
            len in 0usize..40_000,
            pieces in proptest::collection::vec(1usize..6000, 1..8),
            raw_leaves: bool,
            trickle: bool,
            v1: bool,
        ) {
            let options = AddOptions {
                chunker: Chunker::Size(size),
                raw_leaves: Some(raw_leaves),
                layout: if trickle { Layout::Trickle } else { Layout::Balanced },
                cid_version: Some(if v1 { CidVersion::V1 } else { CidVersion::V0 }),
                ..AddOptions::default()
            };
            let data = pseudo_random(len, size as u64);
            let mut f = FileImporter::new(&options).unwrap();
            prop_assert!(matches!(f.chunks, Chunks::Fixed(_)));
            let mut blocks = Vec::new();
            let mut rest = &data[..];
            for piece in pieces.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (now, later) = rest.split_at((*piece).min(rest.len()));
                f.write(now, &mut blocks).unwrap();
                rest = later;
            }
            let root = f.finish(&mut blocks).unwrap();
            let (want_blocks, want_root) = cut_then_encoded(&data, &options);
            prop_assert_eq!(root, want_root);
            prop_assert_eq!(&blocks, &want_blocks);
            for b in blocks.iter().filter(|b| b.data.len() >= BLOCK_ALIGN) {
                prop_assert_eq!(b.data.as_ptr().align_offset(BLOCK_ALIGN), 0);
            }
        }
    }
}
