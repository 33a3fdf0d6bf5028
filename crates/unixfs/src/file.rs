//! Importing one file: chunker → leaves → layout, streaming.

use std::io::{ErrorKind, Read};

use cid::Cid;

use crate::chunker::Splitter;
use crate::layout::{Balanced, FileLink, Trickle};
use crate::options::Settings;
use crate::pb::{self, DataType, UnixfsData};
use crate::{AddOptions, Block, BlockSink, Layout, UnixfsError};

/// How much `write_from` reads before handing bytes to the chunker: large enough that the
/// size chunker cuts straight from it without copying.
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
    splitter: Splitter,
    builder: Builder,
    bytes: u64,
}

impl FileImporter {
    /// A file importer with these options (the directory options are ignored).
    pub fn new(options: &AddOptions) -> Result<FileImporter, UnixfsError> {
        Ok(FileImporter::with_settings(options.settings()?))
    }

    pub(crate) fn with_settings(settings: Settings) -> FileImporter {
        let splitter = Splitter::checked(&settings.chunker);
        let builder = match settings.layout {
            Layout::Balanced => Builder::Balanced(Balanced::default()),
            Layout::Trickle => Builder::Trickle(Trickle::default()),
        };
        FileImporter { settings, splitter, builder, bytes: 0 }
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
        self.splitter.write(data, &mut |chunk| add_leaf(settings, builder, chunk, sink))
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
        self.splitter.finish(&mut |chunk| add_leaf(settings, builder, chunk, sink))?;
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

fn add_leaf(
    settings: &Settings,
    builder: &mut Builder,
    chunk: &[u8],
    sink: &mut dyn BlockSink,
) -> Result<(), UnixfsError> {
    // Kubo's trickle builder stores non-raw leaves as UnixFS "raw" nodes, the balanced one
    // as "file" nodes.
    let kind = match builder {
        Builder::Balanced(_) => DataType::File,
        Builder::Trickle(_) => DataType::Raw,
    };
    let (block, link) = make_leaf(settings, chunk, kind)?;
    sink.put_block(block)?;
    match builder {
        Builder::Balanced(b) => b.push(link, settings, sink),
        Builder::Trickle(t) => t.push(link, settings, sink),
    }
}

fn make_leaf(settings: &Settings, chunk: &[u8], kind: DataType) -> Result<(Block, FileLink), UnixfsError> {
    let filesize = chunk.len() as u64;
    if settings.raw_leaves {
        let cid = settings.raw_cid(chunk)?;
        let link = FileLink { cid, tsize: filesize, filesize };
        return Ok((Block { cid, data: pb::page_aligned(chunk.len(), |buf| buf.extend_from_slice(chunk)) }, link));
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
    let cid = settings.node_cid(&bytes)?;
    let link = FileLink { cid, tsize: bytes.len() as u64, filesize };
    Ok((Block { cid, data: bytes }, link))
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
