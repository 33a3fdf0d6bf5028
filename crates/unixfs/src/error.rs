//! Errors of the importer.

use std::error::Error as StdError;

/// A boxed error, as returned by a [`BlockSink`](crate::BlockSink) that failed.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// What can go wrong while importing.
///
/// Everything a user can get wrong (option strings, paths, duplicate entries) is an error
/// here, never a panic.
#[derive(Debug, thiserror::Error)]
pub enum UnixfsError {
    /// The chunker string is not one Kubo accepts.
    #[error("invalid chunker {spec:?}: {reason}")]
    InvalidChunker {
        /// The string as given.
        spec: String,
        /// Why it was refused.
        reason: String,
    },

    /// The hash function name is unknown or not supported by this importer.
    #[error("unknown or unsupported hash function {0:?}")]
    UnknownHash(String),

    /// The layout is neither `balanced` nor `trickle`.
    #[error("unknown layout {0:?} (expected \"balanced\" or \"trickle\")")]
    UnknownLayout(String),

    /// CIDv0 was asked for explicitly together with a hash other than sha2-256 (Kubo refuses
    /// the same combination).
    #[error("CIDv0 only supports sha2-256 (got {0})")]
    CidV0NeedsSha256(String),

    /// A path given for an entry is empty, absolute, or has empty, `.` or `..` components.
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// Why it was refused.
        reason: &'static str,
    },

    /// Two entries were given the same path.
    #[error("duplicate entry {0:?}")]
    DuplicateEntry(String),

    /// A path goes through something that was added as a file or symlink.
    #[error("{0:?} is not a directory")]
    NotADirectory(String),

    /// Without `wrap-with-directory`, each top-level entry is finished before the next one
    /// starts (as Kubo and ipfs-cluster add them one after the other); an entry came in for
    /// a top-level directory that was already finished.
    #[error("entry {0:?} belongs to a top-level directory that was already finished")]
    NonContiguousEntry(String),

    /// A directory has so many entries that Kubo would store it as a HAMT-sharded directory,
    /// which this importer does not build. Failing is better than returning a CID Kubo would
    /// not produce.
    #[error(
        "directory {path:?} is too large for a basic UnixFS directory ({estimate} bytes of \
         links, Kubo shards from {threshold}); HAMT sharding is not supported"
    )]
    DirectoryNeedsSharding {
        /// The directory's path ("" for the wrapping directory).
        path: String,
        /// Kubo's size estimate: the sum of link name lengths and CID byte lengths.
        estimate: usize,
        /// Kubo's threshold for switching to a HAMT.
        threshold: usize,
    },

    /// `finish` was called without any entry having been added.
    #[error("nothing was added")]
    NothingAdded,

    /// A file on disk is neither a regular file, a directory nor a symlink.
    #[error("unsupported file type for {0:?}")]
    UnsupportedFileType(String),

    /// Reading the input failed.
    #[error("reading input: {0}")]
    Io(#[from] std::io::Error),

    /// The block sink refused a block.
    #[error("block sink: {0}")]
    Sink(#[source] BoxError),

    /// A CID could not be built (only reachable through a bug, kept as an error rather than
    /// a panic).
    #[error("building a CID: {0}")]
    Cid(#[from] cid::Error),
}

impl UnixfsError {
    /// Wraps any error of a block sink.
    pub fn sink<E: Into<BoxError>>(e: E) -> Self {
        UnixfsError::Sink(e.into())
    }
}
