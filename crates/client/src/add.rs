//! Uploads for `POST /add`: the entries to send (walked from disk) and the multipart body,
//! streamed from the files as the request goes out, never held in memory.
//!
//! The body follows the go-ipfs-files convention the cluster reads: one part per entry,
//! its path (percent-encoded) as `filename`, directories as `application/x-directory`,
//! symlinks as `application/symlink` with the target as body.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::SinkExt;

use crate::error::ClientError;

/// One thing to upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddEntry {
    /// A directory (its entries follow as separate entries).
    Dir {
        /// Path in the upload.
        name: String,
    },
    /// A regular file, read from `source` while uploading.
    File {
        /// Path in the upload.
        name: String,
        /// Where to read it.
        source: PathBuf,
        /// Its size when walked (for progress).
        size: u64,
    },
    /// A symbolic link.
    Symlink {
        /// Path in the upload.
        name: String,
        /// The link target.
        target: String,
    },
}

impl AddEntry {
    /// File bytes this entry uploads.
    pub fn size(&self) -> u64 {
        match self {
            AddEntry::File { size, .. } => *size,
            _ => 0,
        }
    }
}

/// Walks `paths` into upload entries: directories need `recursive`; dotfiles inside
/// directories are skipped unless `hidden`. Entries of a directory come right after it,
/// sorted by name, so top-level entries stay contiguous.
pub fn collect_entries(paths: &[PathBuf], recursive: bool, hidden: bool) -> Result<Vec<AddEntry>, ClientError> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::symlink_metadata(p).map_err(|e| io_error(p, e))?;
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .or_else(|| std::fs::canonicalize(p).ok().and_then(|c| c.file_name().map(|n| n.to_string_lossy().into_owned())))
            .ok_or_else(|| ClientError::InvalidArgument(format!("cannot add '{}': it has no name", p.display())))?;
        if meta.is_dir() && !recursive {
            return Err(ClientError::InvalidArgument(format!("'{}' is a directory: use -r to add directories", p.display())));
        }
        walk(p, name, &meta, hidden, &mut out)?;
    }
    Ok(out)
}

fn walk(path: &Path, name: String, meta: &std::fs::Metadata, hidden: bool, out: &mut Vec<AddEntry>) -> Result<(), ClientError> {
    let ft = meta.file_type();
    if ft.is_symlink() {
        let target = std::fs::read_link(path).map_err(|e| io_error(path, e))?;
        out.push(AddEntry::Symlink { name, target: target.to_string_lossy().into_owned() });
    } else if ft.is_dir() {
        out.push(AddEntry::Dir { name: name.clone() });
        let mut children: Vec<(String, PathBuf)> = std::fs::read_dir(path)
            .map_err(|e| io_error(path, e))?
            .map(|e| e.map(|e| (e.file_name().to_string_lossy().into_owned(), e.path())))
            .collect::<Result<_, _>>()
            .map_err(|e| io_error(path, e))?;
        children.sort();
        for (child, p) in children {
            if !hidden && child.starts_with('.') {
                continue;
            }
            let m = std::fs::symlink_metadata(&p).map_err(|e| io_error(&p, e))?;
            walk(&p, format!("{name}/{child}"), &m, hidden, out)?;
        }
    } else if ft.is_file() {
        out.push(AddEntry::File { name, source: path.to_path_buf(), size: meta.len() });
    } else {
        return Err(ClientError::InvalidArgument(format!("cannot add '{}': not a file, directory or symlink", path.display())));
    }
    Ok(())
}

fn io_error(p: &Path, e: std::io::Error) -> ClientError {
    ClientError::InvalidArgument(format!("cannot read '{}': {e}", p.display()))
}

/// A boundary unlikely to appear in any file.
pub(crate) fn boundary() -> String {
    let n: u128 = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("cluster-add-{:032x}{:08x}", n, std::process::id())
}

fn part_header(boundary: &str, first: bool, name: &str, content_type: &str) -> Bytes {
    let lead = if first { "" } else { "\r\n" };
    Bytes::from(format!(
        "{lead}--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{}\"\r\nContent-Type: {content_type}\r\n\r\n",
        encode_filename(name)
    ))
}

fn encode_filename(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Bytes read from a file per piece of the request body.
const READ_CHUNK: u64 = 1 << 20;

/// Reads the file's next piece (empty at the end) straight into the buffer that is sent: no
/// zero-filling and no copy out of an async file's own buffer. That halves the client's CPU
/// time on a large add (to about what curl spends), and the client shares the machine with
/// the peer more often than not.
fn read_chunk(mut file: std::fs::File) -> std::io::Result<(std::fs::File, Vec<u8>)> {
    use std::io::Read as _;
    let mut chunk = Vec::with_capacity(READ_CHUNK as usize);
    (&mut file).take(READ_CHUNK).read_to_end(&mut chunk)?;
    Ok((file, chunk))
}

/// Streams the multipart body of `entries`; `sent` counts file bytes read so far.
pub(crate) fn body(entries: Vec<AddEntry>, boundary: String, sent: Arc<AtomicU64>) -> reqwest::Body {
    let (mut tx, rx) = futures::channel::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        let res: Result<(), std::io::Error> = async {
            let send = |tx: &mut futures::channel::mpsc::Sender<_>, b: Bytes| {
                let mut tx = tx.clone();
                async move { tx.send(Ok(b)).await.map_err(|_| std::io::Error::other("upload aborted")) }
            };
            for (i, e) in entries.iter().enumerate() {
                match e {
                    AddEntry::Dir { name } => send(&mut tx, part_header(&boundary, i == 0, name, "application/x-directory")).await?,
                    AddEntry::Symlink { name, target } => {
                        send(&mut tx, part_header(&boundary, i == 0, name, "application/symlink")).await?;
                        send(&mut tx, Bytes::from(target.clone().into_bytes())).await?;
                    }
                    AddEntry::File { name, source, .. } => {
                        send(&mut tx, part_header(&boundary, i == 0, name, "application/octet-stream")).await?;
                        let mut file = Some(tokio::fs::File::open(source).await?.into_std().await);
                        while let Some(f) = file.take() {
                            let (f, chunk) = tokio::task::spawn_blocking(move || read_chunk(f))
                                .await
                                .map_err(std::io::Error::other)??;
                            if chunk.is_empty() {
                                break;
                            }
                            sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                            send(&mut tx, Bytes::from(chunk)).await?;
                            file = Some(f);
                        }
                    }
                }
            }
            let close = if entries.is_empty() { format!("--{boundary}--\r\n") } else { format!("\r\n--{boundary}--\r\n") };
            send(&mut tx, Bytes::from(close)).await
        }
        .await;
        if let Err(e) = res {
            // The request fails with this instead of sending a body that looks complete.
            let _ = tx.send(Err(e)).await;
        }
    });
    reqwest::Body::wrap_stream(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_directories_in_order_and_skips_dotfiles() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("top");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("b.txt"), b"bb").unwrap();
        std::fs::write(root.join("a.txt"), b"a").unwrap();
        std::fs::write(root.join(".hidden"), b"h").unwrap();
        std::fs::write(root.join("sub/c"), b"ccc").unwrap();
        let names = |v: &[AddEntry]| -> Vec<String> {
            v.iter()
                .map(|e| match e {
                    AddEntry::Dir { name } | AddEntry::File { name, .. } | AddEntry::Symlink { name, .. } => name.clone(),
                })
                .collect()
        };
        assert!(collect_entries(std::slice::from_ref(&root), false, false).is_err());
        let e = collect_entries(std::slice::from_ref(&root), true, false).unwrap();
        assert_eq!(names(&e), ["top", "top/a.txt", "top/b.txt", "top/sub", "top/sub/c"]);
        assert_eq!(e.iter().map(AddEntry::size).sum::<u64>(), 6);
        let e = collect_entries(&[root], true, true).unwrap();
        assert!(names(&e).contains(&"top/.hidden".to_string()));
        assert_eq!(encode_filename("a b/ü"), "a%20b%2F%C3%BC");
    }
}
