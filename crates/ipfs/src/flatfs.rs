//! Batched, durable block writes into the embedded node's on-disk block store.
//!
//! rust-ipfs 0.16's `FsBlockStore` writes one block at a time under an exclusive lock: temp
//! file, fsync, link, each block waiting for its own sync (about 1.4 ms per 256 KiB block on
//! this project's machines, which capped a large add at under 200 MB/s). This writer keeps the
//! same layout and the same guarantee (a block is visible under its final name only once its
//! bytes are on disk) but overlaps the waiting: every block of a batch is written to its temp
//! file and its writeback started at once, then the files are synced (by then most data is on
//! its way, so the syncs are short), and only then are they renamed into place. Callers run
//! several batches at once.
//!
//! The layout is rust-ipfs 0.16's (`repo/paths.rs`, private there): `<repo>/blockstore/<shard>/
//! <key>.data`, where `key` is the block's CIDv1 in the default base (base32) and `shard` the
//! two characters before its last one. A test reads blocks written here back through
//! rust-ipfs, which pins that agreement down.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use cid::Cid;

/// Sub-folder of the repo holding the blocks.
pub(crate) const BLOCKSTORE_DIR: &str = "blockstore";

/// Where rust-ipfs keeps `cid` under `blockstore`.
pub(crate) fn block_path(blockstore: &Path, cid: &Cid) -> PathBuf {
    let key = Cid::new_v1(cid.codec(), *cid.hash()).to_string();
    let mut path = blockstore.to_path_buf();
    match key.len().checked_sub(3) {
        Some(start) => path.push(&key[start..start + 2]),
        None => path.push("_"),
    }
    path.push(format!("{key}.data"));
    path
}

/// Reads `cid`'s block from `blockstore` as stored, without checking it against the CID;
/// `None` when it is not there.
pub(crate) fn read_block(blockstore: &Path, cid: &Cid) -> std::io::Result<Option<Vec<u8>>> {
    match std::fs::read(block_path(blockstore, cid)) {
        Ok(data) => Ok(Some(data)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// A block being written: its temp file (open) and final name.
struct Pending {
    file: std::fs::File,
    temp: PathBuf,
    target: PathBuf,
}

/// Stores `blocks` under `blockstore`. Blocks already present are left alone. On error, temp
/// files are removed; blocks renamed into place before the error stay (like a partial batch of
/// rust-ipfs's own writes).
///
/// Each block costs one file creation and one rename: the shard folder is only created when
/// the first creation in it fails, and a rename onto a block someone else stored meanwhile
/// replaces it with the same bytes. The batch is synced on the calling thread: callers run
/// several batches at once, which overlaps the waiting without a thread per file.
pub(crate) fn write_blocks(blockstore: &Path, blocks: &[(Cid, Bytes)]) -> std::io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut pending: Vec<Pending> = Vec::with_capacity(blocks.len());
    let cleanup = |pending: &[Pending]| {
        for p in pending {
            let _ = std::fs::remove_file(&p.temp);
        }
    };
    for (cid, data) in blocks {
        let target = block_path(blockstore, cid);
        if target.is_file() || pending.iter().any(|p| p.target == target) {
            continue;
        }
        let write = || -> std::io::Result<Pending> {
            let mut temp = target.clone().into_os_string();
            temp.push(format!(".{}.{}.tmp", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)));
            let temp = PathBuf::from(temp);
            let create = || std::fs::OpenOptions::new().write(true).create_new(true).open(&temp);
            let mut file = match create() {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if let Some(shard) = target.parent() {
                        std::fs::create_dir_all(shard)?;
                    }
                    create()?
                }
                other => other?,
            };
            if let Err(e) = file.write_all(data) {
                let _ = std::fs::remove_file(&temp);
                return Err(e);
            }
            start_writeback(&file);
            Ok(Pending { file, temp, target: target.clone() })
        };
        match write() {
            Ok(p) => pending.push(p),
            Err(e) => {
                cleanup(&pending);
                return Err(e);
            }
        }
    }
    if let Err(e) = pending.iter().try_for_each(|p| p.file.sync_data()) {
        cleanup(&pending);
        return Err(e);
    }
    for (i, p) in pending.iter().enumerate() {
        if let Err(e) = std::fs::rename(&p.temp, &p.target) {
            cleanup(&pending[i..]);
            return Err(e);
        }
    }
    Ok(())
}

/// Starts writing the file's data to disk without waiting, so that by the time the batch is
/// synced most of it is there and the sync mostly waits for the journal commit.
#[cfg(target_os = "linux")]
fn start_writeback(file: &std::fs::File) {
    use std::os::fd::AsRawFd as _;
    // SAFETY: a plain syscall on an open descriptor we own; it reads no memory of ours. A
    // failure only loses the head start: the sync that follows still makes the data durable.
    let _ = unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &std::fs::File) {}
