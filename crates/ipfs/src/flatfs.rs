//! Batched, durable block writes into the embedded node's on-disk block store.
//!
//! rust-ipfs 0.16's `FsBlockStore` writes one block at a time under an exclusive lock: temp
//! file, fsync, link, each block waiting for its own sync (about 1.4 ms per 256 KiB block on
//! this project's machines, which capped a large add at under 200 MB/s). This writer keeps the
//! same layout and the same guarantee (a block is visible under its final name only once its
//! bytes are on disk) but overlaps the waiting: every block of a batch is written to its temp
//! file and its writeback started at once, then the files are synced (by then most data is on
//! its way, so the syncs are short), and only then are they renamed into place. Callers run
//! several batches at once. Block bytes skip the page cache where the file system allows it
//! (see [`write_temp`]), so DAG walks read as little of a stored block as they can
//! ([`read_for_walk`]).
//!
//! The layout is rust-ipfs 0.16's (`repo/paths.rs`, private there): `<repo>/blockstore/<shard>/
//! <key>.data`, where `key` is the block's CIDv1 in the default base (base32) and `shard` the
//! two characters before its last one. A test reads blocks written here back through
//! rust-ipfs, which pins that agreement down.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

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

/// What a DAG walk learns of a stored block.
pub(crate) enum Walked {
    /// Not in the store.
    Absent,
    /// There, and without links; its bytes were not read.
    NoLinks,
    /// Its bytes, as stored.
    Bytes(Vec<u8>),
}

/// Reads `cid`'s block from `blockstore` for a DAG walk, without checking it against the CID.
/// Raw blocks cannot link and dag-pb leaves are one data field, which their first bytes and
/// size tell: neither is read whole, so walking a large file reads a few bytes per leaf instead
/// of the file (blocks are written past the page cache, so it would come from disk).
pub(crate) fn read_for_walk(blockstore: &Path, cid: &Cid) -> std::io::Result<Walked> {
    use std::io::Read as _;
    use std::os::unix::fs::FileExt as _;
    let path = block_path(blockstore, cid);
    let not_found = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
    if cid.codec() == cluster_unixfs::RAW {
        return match std::fs::metadata(&path) {
            Ok(_) => Ok(Walked::NoLinks),
            Err(e) if not_found(&e) => Ok(Walked::Absent),
            Err(e) => Err(e),
        };
    }
    let mut file = match std::fs::File::open(&path) {
        Ok(file) => file,
        Err(e) if not_found(&e) => return Ok(Walked::Absent),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    if cid.codec() == cluster_unixfs::DAG_PB {
        let mut prefix = [0u8; cluster_unixfs::DATA_ONLY_PREFIX];
        let n = file.read_at(&mut prefix, 0)?;
        if cluster_unixfs::dag_pb_is_data_only(&prefix[..n], len) {
            return Ok(Walked::NoLinks);
        }
    }
    let mut data = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.read_to_end(&mut data)?;
    Ok(Walked::Bytes(data))
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
    let mut scratch = AlignedScratch::default();
    for (cid, data) in blocks {
        let target = block_path(blockstore, cid);
        if target.is_file() || pending.iter().any(|p| p.target == target) {
            continue;
        }
        let mut temp = target.clone().into_os_string();
        temp.push(format!(".{}.{}.tmp", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)));
        let temp = PathBuf::from(temp);
        match write_temp(&temp, &target, data, &mut scratch) {
            Ok(file) => pending.push(Pending { file, temp, target }),
            Err(e) => {
                let _ = std::fs::remove_file(&temp);
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

/// Creates `temp` (and its shard folder when missing) holding `data`, its writeback started.
///
/// Where the file system allows it, the block's whole 4 KiB pages bypass the page cache
/// (`O_DIRECT`): a buffered write copies every byte into the cache and leaves the kernel's
/// flusher to write it out again, which on this project's machines held a large add to the
/// page cache's speed (about 390 MB/s buffered against 820 MB/s direct for the same 256 KiB
/// writes). The last partial page, and whole blocks under a page, are written through the cache.
/// A file system that refuses direct writes switches this off for the rest of the process.
fn write_temp(temp: &Path, target: &Path, data: &[u8], scratch: &mut AlignedScratch) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::FileExt as _;
    let head = if direct_writes_enabled() { data.len() / DIRECT_ALIGN * DIRECT_ALIGN } else { 0 };
    let file = match create_temp(temp, target, head > 0) {
        Err(e) if head > 0 && is_direct_refusal(&e) => {
            disable_direct_writes(&e);
            // Linux checks for O_DIRECT support after creating the file
            let _ = std::fs::remove_file(temp);
            return write_temp(temp, target, data, scratch);
        }
        other => other?,
    };
    let mut written = 0;
    if head > 0 {
        // the importer's blocks come aligned; others (from peers) are copied
        let aligned = if data.as_ptr().align_offset(DIRECT_ALIGN) == 0 {
            &data[..head]
        } else {
            scratch.holding(&data[..head])
        };
        match file.write_all_at(aligned, 0) {
            Ok(()) => written = head,
            Err(e) if is_direct_refusal(&e) => disable_direct_writes(&e),
            Err(e) => return Err(e),
        }
        if written < data.len() {
            clear_direct(&file)?;
        }
    }
    file.write_all_at(&data[written..], written as u64)?;
    start_writeback(&file);
    Ok(file)
}

/// Opens a new file at `temp`, creating the shard folder of `target` when it is missing.
fn create_temp(temp: &Path, target: &Path, direct: bool) -> std::io::Result<std::fs::File> {
    let create = || {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        if direct {
            request_direct(&mut options);
        }
        options.open(temp)
    };
    match create() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(shard) = target.parent() {
                std::fs::create_dir_all(shard)?;
            }
            create()
        }
        other => other,
    }
}

/// Alignment of direct writes (memory, offset and length): a multiple of every logical block
/// size in common use, and the alignment the importer gives the blocks it builds.
const DIRECT_ALIGN: usize = cluster_unixfs::BLOCK_ALIGN;

/// Cleared once a file system refuses a direct write; later writes go through the page cache.
static DIRECT_WRITES: AtomicBool = AtomicBool::new(cfg!(target_os = "linux"));

fn direct_writes_enabled() -> bool {
    DIRECT_WRITES.load(Ordering::Relaxed)
}

fn disable_direct_writes(cause: &std::io::Error) {
    if DIRECT_WRITES.swap(false, Ordering::Relaxed) {
        tracing::info!(error = %cause, "block store refuses direct writes, writing through the page cache");
    }
}

/// Whether `e` is a file system's refusal of `O_DIRECT` (or of its alignment), rather than a
/// failure any write could meet.
fn is_direct_refusal(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::InvalidInput
}

/// A reusable buffer whose contents start on a [`DIRECT_ALIGN`] boundary, as direct writes
/// need; block data arrives at whatever address its allocation got.
#[derive(Default)]
struct AlignedScratch {
    buf: Vec<u8>,
}

impl AlignedScratch {
    /// `data` copied to an aligned address.
    fn holding(&mut self, data: &[u8]) -> &[u8] {
        if self.buf.len() < data.len() + DIRECT_ALIGN {
            self.buf = vec![0; data.len() + DIRECT_ALIGN];
        }
        let start = self.buf.as_ptr().align_offset(DIRECT_ALIGN);
        let aligned = &mut self.buf[start..start + data.len()];
        aligned.copy_from_slice(data);
        aligned
    }
}

#[cfg(target_os = "linux")]
fn request_direct(options: &mut std::fs::OpenOptions) {
    use std::os::unix::fs::OpenOptionsExt as _;
    options.custom_flags(libc::O_DIRECT);
}

#[cfg(not(target_os = "linux"))]
fn request_direct(_options: &mut std::fs::OpenOptions) {}

/// Switches `O_DIRECT` off for an open file: the tail of a block, under a page, must go through
/// the page cache.
#[cfg(target_os = "linux")]
fn clear_direct(file: &std::fs::File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd as _;
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own, with integer arguments only.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_DIRECT) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn clear_direct(_file: &std::fs::File) -> std::io::Result<()> {
    Ok(())
}

/// Starts writing the file's cached data (a direct write's tail, or all of a buffered one) to
/// disk without waiting, so that by the time the batch is synced most of it is there.
#[cfg(target_os = "linux")]
fn start_writeback(file: &std::fs::File) {
    use std::os::fd::AsRawFd as _;
    // SAFETY: a plain syscall on an open descriptor we own; it reads no memory of ours. A
    // failure only loses the head start: the sync that follows still makes the data durable.
    let _ = unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &std::fs::File) {}
