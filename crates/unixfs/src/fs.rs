//! Adding files and directories from the local filesystem, as `ipfs add -r` walks them.

use std::fs;
use std::path::Path;

use crate::{AddOptions, BlockSink, ImportResult, Importer, UnixfsError};

/// Adds local paths the way `ipfs add -r [-w] [-H] <paths>` does.
///
/// Each path becomes a top-level entry named after its last component. Directories are
/// walked in name order; inside them, names starting with `.` are skipped unless
/// `options.hidden` is set (the paths given explicitly are always added, as in Kubo).
/// Symlinks are stored as symlink nodes, not followed. Without `wrap_with_directory`, the
/// result's root is the last path's.
pub fn add_paths<P: AsRef<Path>>(
    paths: &[P],
    options: &AddOptions,
    sink: &mut dyn BlockSink,
) -> Result<ImportResult, UnixfsError> {
    let mut importer = Importer::new(options)?;
    for path in paths {
        let path = path.as_ref();
        let name = match path.file_name() {
            Some(n) => utf8(n, path)?.to_string(),
            // `.` or `/`: name the entry after the directory it stands for.
            None => {
                let abs = fs::canonicalize(path)?;
                match abs.file_name() {
                    Some(n) => utf8(n, path)?.to_string(),
                    None => {
                        return Err(UnixfsError::InvalidPath { path: path.display().to_string(), reason: "no name" });
                    }
                }
            }
        };
        add_entry(&mut importer, path, &name, options.hidden, sink)?;
    }
    importer.finish(sink)
}

fn utf8<'a>(name: &'a std::ffi::OsStr, path: &Path) -> Result<&'a str, UnixfsError> {
    name.to_str().ok_or_else(|| UnixfsError::InvalidPath { path: path.display().to_string(), reason: "not UTF-8" })
}

fn add_entry(
    importer: &mut Importer,
    path: &Path,
    name: &str,
    hidden: bool,
    sink: &mut dyn BlockSink,
) -> Result<(), UnixfsError> {
    let meta = fs::symlink_metadata(path)?;
    let kind = meta.file_type();
    if kind.is_symlink() {
        let target = fs::read_link(path)?;
        let target = target.to_str().ok_or_else(|| UnixfsError::InvalidPath {
            path: path.display().to_string(),
            reason: "symlink target is not UTF-8",
        })?;
        importer.add_symlink(name, target, sink)?;
    } else if kind.is_file() {
        let mut file = fs::File::open(path)?;
        importer.add_file(name, &mut file, sink)?;
    } else if kind.is_dir() {
        importer.add_dir(name, sink)?;
        let mut children = Vec::new();
        for entry in fs::read_dir(path)? {
            let entry = entry?;
            let child_name = utf8(&entry.file_name(), &entry.path())?.to_string();
            if !hidden && child_name.starts_with('.') {
                continue;
            }
            children.push((child_name, entry.path()));
        }
        children.sort();
        for (child_name, child_path) in children {
            add_entry(importer, &child_path, &format!("{name}/{child_name}"), hidden, sink)?;
        }
    } else {
        return Err(UnixfsError::UnsupportedFileType(path.display().to_string()));
    }
    Ok(())
}
