//! Blocks as they leave the importer, and where they go.

use bytes::Bytes;
use cid::Cid;

use crate::UnixfsError;

/// One encoded block and its CID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The block's CID.
    pub cid: Cid,
    /// The block's bytes (dag-pb or raw).
    pub data: Bytes,
}

/// Receives blocks as the importer produces them, children before parents.
///
/// Blocks are handed over the moment they are complete, so a sink that forwards them (to a
/// blockstore, to `block/put` streams) keeps the importer's memory bounded. An error from
/// the sink stops the import and is returned as [`UnixfsError::Sink`]; wrap foreign errors
/// with [`UnixfsError::sink`].
///
/// Closures `FnMut(Block) -> Result<(), UnixfsError>` are sinks, and so is `Vec<Block>`
/// (it collects everything, handy in tests).
pub trait BlockSink {
    /// Takes one block.
    fn put_block(&mut self, block: Block) -> Result<(), UnixfsError>;
}

impl<F> BlockSink for F
where
    F: FnMut(Block) -> Result<(), UnixfsError>,
{
    fn put_block(&mut self, block: Block) -> Result<(), UnixfsError> {
        self(block)
    }
}

impl BlockSink for Vec<Block> {
    fn put_block(&mut self, block: Block) -> Result<(), UnixfsError> {
        self.push(block);
        Ok(())
    }
}

/// A sink that drops every block: computing CIDs only, like `ipfs add --only-hash`.
#[derive(Debug, Clone, Copy, Default)]
pub struct NullSink;

impl BlockSink for NullSink {
    fn put_block(&mut self, _block: Block) -> Result<(), UnixfsError> {
        Ok(())
    }
}
