//! Importing a set of files and directories, with the entries `ipfs add` reports.

use std::collections::{BTreeMap, HashSet};
use std::io::Read;

use cid::Cid;

use crate::file::{FileImporter, FileRoot};
use crate::options::{HAMT_SHARDING_THRESHOLD, Settings};
use crate::pb::{self, DataType, PbLink, UnixfsData};
use crate::{AddOptions, Block, BlockSink, UnixfsError};

/// Deepest directory nesting accepted; keeps the recursive directory encoder far from the
/// stack limit whatever the input.
pub const MAX_PATH_DEPTH: usize = 1024;

/// One line of `ipfs add` output: a file, symlink or directory that was added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddedEntry {
    /// Path as given (`dir/sub/file`); the wrapping directory is `""`.
    pub name: String,
    /// The entry's root CID.
    pub cid: Cid,
    /// Cumulative DAG size, as Kubo's `Size` field reports it.
    pub size: u64,
    /// Content bytes: the file length, a symlink target's length, or for a directory the
    /// sum over the files below it.
    pub bytes: u64,
}

/// What an import produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportResult {
    /// The root: the wrapping directory with `wrap_with_directory`, otherwise the last
    /// top-level entry (as ipfs-cluster pins the last one it added).
    pub root: AddedEntry,
    /// The entries not yet taken with [`Importer::take_entries`], in `ipfs add` order.
    pub entries: Vec<AddedEntry>,
}

#[derive(Debug)]
enum Node {
    Dir(Dir),
    /// A finished file or symlink.
    Done {
        cid: Cid,
        size: u64,
        bytes: u64,
    },
}

#[derive(Debug, Default)]
struct Dir {
    /// Sorted by name bytes, the order Kubo's dag-pb encoder gives directory links.
    children: BTreeMap<String, Node>,
}

/// A file being imported into an [`Importer`]; created by [`Importer::begin_file`].
#[derive(Debug)]
pub struct FileWriter {
    path: Vec<String>,
    file: FileImporter,
}

impl FileWriter {
    /// Feeds the next bytes of the file.
    pub fn write(&mut self, data: &[u8], sink: &mut dyn BlockSink) -> Result<(), UnixfsError> {
        self.file.write(data, sink)
    }

    /// Feeds everything `reader` yields; returns how many bytes it read.
    pub fn write_from(&mut self, reader: &mut dyn Read, sink: &mut dyn BlockSink) -> Result<u64, UnixfsError> {
        self.file.write_from(reader, sink)
    }

    /// Bytes taken in so far.
    pub fn bytes_written(&self) -> u64 {
        self.file.bytes_written()
    }

    /// The file's path, as it will be reported.
    pub fn path(&self) -> String {
        self.path.join("/")
    }
}

/// Imports a tree of files, directories and symlinks the way `ipfs add` does.
///
/// Entries are given by relative `/`-separated paths, parents before or after children
/// (missing parent directories are created, as Kubo's MFS does). Files stream through
/// [`begin_file`](Importer::begin_file) / [`FileWriter::write`] /
/// [`finish_file`](Importer::finish_file) or [`add_file`](Importer::add_file); blocks go
/// to the sink as soon as they are complete. Directory nodes are built at the end, since a
/// directory's CID depends on all its entries.
///
/// Output follows Kubo: a file's entry appears when the file is complete; directory
/// entries come after the files of their top-level entry, children before parents, sorted
/// by name; with `wrap_with_directory` the wrapping directory comes last, named `""`.
/// Without wrapping, every top-level entry is its own root and is finished before the next
/// one starts (its entries must be contiguous).
///
/// Directories are basic (single-node) UnixFS directories. A directory large enough that
/// Kubo would shard it into a HAMT makes the import fail with
/// [`UnixfsError::DirectoryNeedsSharding`] instead of producing a different CID.
///
/// `hidden` is not applied here: like Kubo's daemon and ipfs-cluster's `/add` endpoint, the
/// importer takes entries as given; dotfiles are filtered where directories are walked
/// ([`crate::add_paths`]).
#[derive(Debug)]
pub struct Importer {
    settings: Settings,
    root: Dir,
    /// Without wrapping: the top-level entry being added now.
    current_top: Option<String>,
    /// Without wrapping: top-level entries already finished.
    finished_tops: HashSet<String>,
    last_root: Option<AddedEntry>,
    entries: Vec<AddedEntry>,
}

impl Importer {
    /// An importer with these options; fails on invalid option combinations.
    pub fn new(options: &AddOptions) -> Result<Importer, UnixfsError> {
        Ok(Importer {
            settings: options.settings()?,
            root: Dir::default(),
            current_top: None,
            finished_tops: HashSet::new(),
            last_root: None,
            entries: Vec::new(),
        })
    }

    /// Takes the entries reported so far, for streaming them out before the import ends.
    pub fn take_entries(&mut self) -> Vec<AddedEntry> {
        std::mem::take(&mut self.entries)
    }

    /// Adds a directory (and any missing parents); adding an existing directory again is
    /// fine, as with `mkdir -p`.
    pub fn add_dir(&mut self, path: &str, sink: &mut dyn BlockSink) -> Result<(), UnixfsError> {
        let parts = split_path(path)?;
        self.enter_top(&parts[0], sink)?;
        let mut dir = &mut self.root;
        for (i, part) in parts.iter().enumerate() {
            let node = dir.children.entry(part.clone()).or_insert_with(|| Node::Dir(Dir::default()));
            dir = match node {
                Node::Dir(d) => d,
                Node::Done { .. } => return Err(UnixfsError::NotADirectory(parts[..=i].join("/"))),
            };
        }
        Ok(())
    }

    /// Starts a file at `path`; feed it through the returned writer, then hand it to
    /// [`finish_file`](Importer::finish_file).
    pub fn begin_file(&mut self, path: &str, sink: &mut dyn BlockSink) -> Result<FileWriter, UnixfsError> {
        let parts = split_path(path)?;
        self.enter_top(&parts[0], sink)?;
        // Check the place now, so a bad path fails before any byte is read.
        self.parent_dir(&parts)?;
        Ok(FileWriter { path: parts, file: FileImporter::with_settings(self.settings.clone()) })
    }

    /// Finishes a file started with [`begin_file`](Importer::begin_file) and reports it.
    pub fn finish_file(&mut self, writer: FileWriter, sink: &mut dyn BlockSink) -> Result<AddedEntry, UnixfsError> {
        let FileWriter { path, file } = writer;
        if !self.settings.wrap && self.current_top.as_deref() != Some(path[0].as_str()) {
            return Err(UnixfsError::NonContiguousEntry(path.join("/")));
        }
        let root = file.finish(sink)?;
        self.insert_done(&path, root)
    }

    /// Imports a whole file from `reader`.
    pub fn add_file(
        &mut self,
        path: &str,
        reader: &mut dyn Read,
        sink: &mut dyn BlockSink,
    ) -> Result<AddedEntry, UnixfsError> {
        let mut writer = self.begin_file(path, sink)?;
        writer.write_from(reader, sink)?;
        self.finish_file(writer, sink)
    }

    /// Adds a symlink (a UnixFS symlink node holding `target`, not what it points to).
    pub fn add_symlink(
        &mut self,
        path: &str,
        target: &str,
        sink: &mut dyn BlockSink,
    ) -> Result<AddedEntry, UnixfsError> {
        let parts = split_path(path)?;
        self.enter_top(&parts[0], sink)?;
        self.parent_dir(&parts)?;
        let bytes = pb::encode_node(
            &[],
            &UnixfsData { kind: DataType::Symlink, data: Some(target.as_bytes()), filesize: None, blocksizes: &[] },
        );
        let cid = self.settings.node_cid(&bytes)?;
        let size = bytes.len() as u64;
        sink.put_block(Block { cid, data: bytes })?;
        self.insert_done(&parts, FileRoot { cid, size, bytes: target.len() as u64 })
    }

    /// Builds the directories, emits their blocks, and returns the root and the entries not
    /// yet taken.
    pub fn finish(mut self, sink: &mut dyn BlockSink) -> Result<ImportResult, UnixfsError> {
        if self.settings.wrap {
            let root = std::mem::take(&mut self.root);
            let entry = emit_dir(root, String::new(), &self.settings, sink, &mut self.entries)?;
            self.last_root = Some(entry);
        } else {
            self.close_top(sink)?;
        }
        match self.last_root {
            Some(root) => Ok(ImportResult { root, entries: self.entries }),
            None => Err(UnixfsError::NothingAdded),
        }
    }

    /// Without wrapping, starting a new top-level entry finishes the previous one.
    fn enter_top(&mut self, top: &str, sink: &mut dyn BlockSink) -> Result<(), UnixfsError> {
        if self.settings.wrap || self.current_top.as_deref() == Some(top) {
            return Ok(());
        }
        if self.finished_tops.contains(top) {
            return Err(UnixfsError::NonContiguousEntry(top.to_string()));
        }
        self.close_top(sink)?;
        self.current_top = Some(top.to_string());
        Ok(())
    }

    fn close_top(&mut self, sink: &mut dyn BlockSink) -> Result<(), UnixfsError> {
        let Some(top) = self.current_top.take() else { return Ok(()) };
        let node = self.root.children.remove(&top);
        self.finished_tops.insert(top.clone());
        match node {
            Some(Node::Dir(dir)) => {
                let entry = emit_dir(dir, top, &self.settings, sink, &mut self.entries)?;
                self.last_root = Some(entry);
            }
            Some(Node::Done { cid, size, bytes }) => {
                self.last_root = Some(AddedEntry { name: top, cid, size, bytes });
            }
            // A file begun but never finished: nothing to report.
            None => {}
        }
        Ok(())
    }

    /// The directory that will hold `parts`' last component, creating missing parents;
    /// fails if the name is taken or a parent is not a directory.
    fn parent_dir(&mut self, parts: &[String]) -> Result<&mut Dir, UnixfsError> {
        let (name, parents) =
            parts.split_last().ok_or(UnixfsError::InvalidPath { path: String::new(), reason: "empty" })?;
        let mut dir = &mut self.root;
        for (i, part) in parents.iter().enumerate() {
            let node = dir.children.entry(part.clone()).or_insert_with(|| Node::Dir(Dir::default()));
            dir = match node {
                Node::Dir(d) => d,
                Node::Done { .. } => return Err(UnixfsError::NotADirectory(parts[..=i].join("/"))),
            };
        }
        if dir.children.contains_key(name) {
            return Err(UnixfsError::DuplicateEntry(parts.join("/")));
        }
        Ok(dir)
    }

    fn insert_done(&mut self, parts: &[String], root: FileRoot) -> Result<AddedEntry, UnixfsError> {
        let dir = self.parent_dir(parts)?;
        let name = parts[parts.len() - 1].clone();
        dir.children.insert(name, Node::Done { cid: root.cid, size: root.size, bytes: root.bytes });
        let entry = AddedEntry { name: parts.join("/"), cid: root.cid, size: root.size, bytes: root.bytes };
        self.entries.push(entry.clone());
        Ok(entry)
    }
}

/// Encodes `dir` and everything below it, children first, reporting each directory.
fn emit_dir(
    dir: Dir,
    path: String,
    settings: &Settings,
    sink: &mut dyn BlockSink,
    entries: &mut Vec<AddedEntry>,
) -> Result<AddedEntry, UnixfsError> {
    let mut links: Vec<(String, Cid, u64)> = Vec::with_capacity(dir.children.len());
    let mut bytes = 0u64;
    for (name, child) in dir.children {
        let (cid, size, child_bytes) = match child {
            Node::Done { cid, size, bytes } => (cid, size, bytes),
            Node::Dir(sub) => {
                let sub_path = if path.is_empty() { name.clone() } else { format!("{path}/{name}") };
                let e = emit_dir(sub, sub_path, settings, sink, entries)?;
                (e.cid, e.size, e.bytes)
            }
        };
        bytes += child_bytes;
        links.push((name, cid, size));
    }
    let estimate: usize = links.iter().map(|(name, cid, _)| name.len() + cid.encoded_len()).sum();
    if estimate >= HAMT_SHARDING_THRESHOLD {
        return Err(UnixfsError::DirectoryNeedsSharding { path, estimate, threshold: HAMT_SHARDING_THRESHOLD });
    }
    let pb_links: Vec<PbLink<'_>> = links.iter().map(|(name, cid, size)| PbLink { cid, name, tsize: *size }).collect();
    let block = pb::encode_node(
        &pb_links,
        &UnixfsData { kind: DataType::Directory, data: None, filesize: None, blocksizes: &[] },
    );
    let cid = settings.node_cid(&block)?;
    let size = block.len() as u64 + links.iter().map(|(_, _, s)| s).sum::<u64>();
    sink.put_block(Block { cid, data: block })?;
    let entry = AddedEntry { name: path, cid, size, bytes };
    entries.push(entry.clone());
    Ok(entry)
}

/// Splits a relative `/`-separated path, refusing anything that could not be a name in a
/// UnixFS directory.
fn split_path(path: &str) -> Result<Vec<String>, UnixfsError> {
    let bad = |reason| UnixfsError::InvalidPath { path: path.to_string(), reason };
    if path.is_empty() {
        return Err(bad("empty path"));
    }
    if path.starts_with('/') {
        return Err(bad("absolute path"));
    }
    // A trailing slash names the same entry (multipart directory parts often carry one).
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    let parts: Vec<String> = trimmed.split('/').map(str::to_string).collect();
    if parts.iter().any(String::is_empty) {
        return Err(bad("empty path component"));
    }
    if parts.iter().any(|p| p == "." || p == "..") {
        return Err(bad("`.` and `..` are not allowed"));
    }
    if parts.len() > MAX_PATH_DEPTH {
        return Err(bad("too deeply nested"));
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NullSink;

    fn importer(wrap: bool) -> Importer {
        Importer::new(&AddOptions { wrap_with_directory: wrap, ..AddOptions::default() }).unwrap()
    }

    fn add(i: &mut Importer, path: &str, data: &[u8]) -> Result<AddedEntry, UnixfsError> {
        i.add_file(path, &mut &data[..], &mut NullSink)
    }

    #[test]
    fn refuses_clashing_entries() {
        let mut i = importer(true);
        add(&mut i, "d/f", b"1").unwrap();
        assert!(matches!(add(&mut i, "d/f", b"2"), Err(UnixfsError::DuplicateEntry(p)) if p == "d/f"));
        assert!(matches!(add(&mut i, "d/f/g", b"2"), Err(UnixfsError::NotADirectory(p)) if p == "d/f"));
        assert!(matches!(i.add_dir("d/f", &mut NullSink), Err(UnixfsError::NotADirectory(_))));
        assert!(matches!(add(&mut i, "d", b"2"), Err(UnixfsError::DuplicateEntry(_))));
        i.add_dir("d", &mut NullSink).unwrap();
        i.add_dir("d/e/f", &mut NullSink).unwrap();
        assert!(matches!(add(&mut i, "/abs", b""), Err(UnixfsError::InvalidPath { .. })));
        i.finish(&mut NullSink).unwrap();
    }

    #[test]
    fn top_level_entries_must_be_contiguous_without_wrapping() {
        let mut i = importer(false);
        add(&mut i, "a/x", b"1").unwrap();
        add(&mut i, "b", b"2").unwrap();
        assert!(matches!(add(&mut i, "a/y", b"3"), Err(UnixfsError::NonContiguousEntry(_))));
        // The finished directory was reported when `b` began, before `b` itself.
        let names: Vec<String> = i.take_entries().into_iter().map(|e| e.name).collect();
        assert_eq!(names, ["a/x", "a", "b"]);
        let result = i.finish(&mut NullSink).unwrap();
        assert_eq!(result.root.name, "b");
        assert!(result.entries.is_empty());

        // With wrapping, any order goes: everything lands in one directory.
        let mut i = importer(true);
        add(&mut i, "a/x", b"1").unwrap();
        add(&mut i, "b", b"2").unwrap();
        add(&mut i, "a/y", b"3").unwrap();
        let result = i.finish(&mut NullSink).unwrap();
        let names: Vec<String> = result.entries.iter().map(|e| e.name.clone()).collect();
        assert_eq!(names, ["a/x", "b", "a/y", "a", ""]);
        assert_eq!(result.root.bytes, 3);
    }

    #[test]
    fn interleaved_files_stream_independently() {
        let mut i = importer(true);
        let mut a = i.begin_file("a", &mut NullSink).unwrap();
        let mut b = i.begin_file("b", &mut NullSink).unwrap();
        a.write(b"hello ", &mut NullSink).unwrap();
        b.write(b"other", &mut NullSink).unwrap();
        a.write(b"world\n", &mut NullSink).unwrap();
        assert_eq!(a.bytes_written(), 12);
        assert_eq!(a.path(), "a");
        let ea = i.finish_file(a, &mut NullSink).unwrap();
        i.finish_file(b, &mut NullSink).unwrap();
        assert_eq!(ea.cid.to_string(), "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o");
    }

    #[test]
    fn nothing_added() {
        assert!(matches!(importer(false).finish(&mut NullSink), Err(UnixfsError::NothingAdded)));
        // Wrapping nothing gives the empty directory, as Kubo wraps an empty upload.
        let r = importer(true).finish(&mut NullSink).unwrap();
        assert_eq!(r.root.cid.to_string(), "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn");
        assert_eq!(r.root.size, 4);
    }

    #[test]
    fn directories_kubo_would_shard_are_refused() {
        // Each link counts its name plus a 34-byte CIDv0 towards Kubo's 256 KiB estimate.
        let name_len = 222;
        let per_link = name_len + 34;
        let fits = HAMT_SHARDING_THRESHOLD / per_link - 1;
        for (count, ok) in [(fits, true), (HAMT_SHARDING_THRESHOLD / per_link, false)] {
            let mut i = importer(false);
            for n in 0..count {
                let path = format!("big/{n:0>width$}", width = name_len);
                i.add_symlink(&path, "t", &mut NullSink).unwrap();
            }
            let result = i.finish(&mut NullSink);
            assert_eq!(result.is_ok(), ok, "{count} entries");
            if !ok {
                assert!(matches!(result, Err(UnixfsError::DirectoryNeedsSharding { path, .. }) if path == "big"));
            }
        }
    }

    #[test]
    fn paths() {
        assert_eq!(split_path("a/b/c").unwrap(), ["a", "b", "c"]);
        assert_eq!(split_path("a/").unwrap(), ["a"]);
        for bad in ["", "/a", "a//b", "a/./b", "../a", "a/..", "//"] {
            assert!(split_path(bad).is_err(), "{bad}");
        }
        let deep = vec!["d"; MAX_PATH_DEPTH + 1].join("/");
        assert!(split_path(&deep).is_err());
    }
}
