//! Installs js-ipfs from npm once per cache directory, shared by every test process.
//!
//! Test binaries run in parallel, each possibly with many tests starting nodes at once, so the
//! install is guarded twice: a mutex for the threads of one process and an exclusive file lock
//! for the processes. A marker written only after a successful install (holding a fingerprint of
//! the committed npm files) tells later runs the cache is complete and current.

use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::TestNodeError;

const PACKAGE_JSON: &str = include_str!("../jsipfs/package.json");
const PACKAGE_LOCK: &str = include_str!("../jsipfs/package-lock.json");
const POLYFILL: &str = include_str!("../jsipfs/polyfill.cjs");

/// Written last, so its presence means node_modules is whole.
const MARKER: &str = ".installed";
/// npm needs about three minutes on a cold cache; past this something is wrong.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Environment variable naming the folder that holds installed test dependencies; by default
/// `<cargo target dir>/test-deps`.
pub const CACHE_DIR_ENV: &str = "CLUSTER_TESTNODES_CACHE";

/// A finished js-ipfs install.
#[derive(Clone, Debug)]
pub(crate) struct Installation {
    dir: PathBuf,
}

impl Installation {
    /// The js-ipfs command line entry point (a node script).
    pub(crate) fn cli(&self) -> PathBuf {
        self.dir.join("node_modules").join(".bin").join("jsipfs")
    }

    /// The `Promise.withResolvers` polyfill to preload with `--require`.
    pub(crate) fn polyfill(&self) -> PathBuf {
        self.dir.join("polyfill.cjs")
    }
}

/// Installs js-ipfs unless a complete install of the same files is cached, and returns it.
pub(crate) async fn ensure_installed() -> Result<Installation, TestNodeError> {
    tokio::task::spawn_blocking(install_blocking)
        .await
        .map_err(|e| TestNodeError::Install(format!("install task failed: {e}")))?
}

fn install_blocking() -> Result<Installation, TestNodeError> {
    static DONE: Mutex<Option<Installation>> = Mutex::new(None);
    let mut done = DONE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(install) = done.as_ref() {
        return Ok(install.clone());
    }

    let root = cache_root();
    fs::create_dir_all(&root).map_err(|e| io_error(&root, "create cache folder", e))?;
    let lock_path = root.join("jsipfs.lock");
    let lock = fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| io_error(&lock_path, "open install lock", e))?;
    lock.lock()
        .map_err(|e| io_error(&lock_path, "take install lock", e))?;

    let dir = root.join("jsipfs");
    let install = Installation { dir: dir.clone() };
    let fingerprint = fingerprint();
    let marker = dir.join(MARKER);
    let current = fs::read_to_string(&marker).is_ok_and(|m| m.trim() == fingerprint);
    if current && install.cli().exists() {
        *done = Some(install.clone());
        return Ok(install);
    }

    info!(dir = %dir.display(), "installing js-ipfs from npm (a few minutes, cached afterwards)");
    let started = Instant::now();
    // A half-finished or outdated install must never look complete, whatever happens below.
    match fs::remove_file(&marker) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error(&marker, "remove install marker", e)),
    }
    fs::create_dir_all(&dir).map_err(|e| io_error(&dir, "create install folder", e))?;
    for (name, content) in [
        ("package.json", PACKAGE_JSON),
        ("package-lock.json", PACKAGE_LOCK),
        ("polyfill.cjs", POLYFILL),
    ] {
        let path = dir.join(name);
        fs::write(&path, content).map_err(|e| io_error(&path, "write npm file", e))?;
    }
    run_npm(&dir)?;
    if !install.cli().exists() {
        return Err(TestNodeError::Install(format!(
            "npm finished but {} is missing",
            install.cli().display()
        )));
    }
    fs::write(&marker, &fingerprint).map_err(|e| io_error(&marker, "write install marker", e))?;
    info!(elapsed_s = started.elapsed().as_secs(), "js-ipfs installed");
    *done = Some(install.clone());
    Ok(install)
}

/// Runs `npm ci` (exact versions from the committed lock file) with its output in `npm.log`.
fn run_npm(dir: &Path) -> Result<(), TestNodeError> {
    let log_path = dir.join("npm.log");
    let log = fs::File::create(&log_path).map_err(|e| io_error(&log_path, "create npm log", e))?;
    let log_err = log
        .try_clone()
        .map_err(|e| io_error(&log_path, "share npm log", e))?;
    let mut child = Command::new("npm")
        // optional deps are only the webrtc transports, which tests do not use
        .args([
            "ci",
            "--omit=optional",
            "--no-audit",
            "--no-fund",
            "--loglevel=warn",
        ])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .map_err(|e| TestNodeError::Install(format!("cannot run npm (is node installed?): {e}")))?;
    let deadline = Instant::now() + INSTALL_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                return Err(TestNodeError::Install(format!(
                    "npm ci failed ({status}): {}",
                    tail_of(&log_path)
                )));
            }
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(TestNodeError::Install(format!(
                    "npm ci did not finish within {INSTALL_TIMEOUT:?}: {}",
                    tail_of(&log_path)
                )));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(500)),
            Err(e) => return Err(TestNodeError::Install(format!("cannot wait for npm: {e}"))),
        }
    }
}

/// FNV-1a over the committed npm files: stable across Rust versions, unlike std's hasher.
fn fingerprint() -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [PACKAGE_JSON, "\0", PACKAGE_LOCK, "\0", POLYFILL] {
        for byte in part.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

/// Where installed test dependencies live: [`CACHE_DIR_ENV`], else `<target dir>/test-deps`.
pub fn cache_root() -> PathBuf {
    if let Some(dir) = std::env::var_os(CACHE_DIR_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    target_dir().join("test-deps")
}

/// The cargo target dir of the running test: test binaries live in `<target>/<profile>/deps`.
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        if dir.is_absolute() {
            return dir;
        }
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(deps) = exe
            .ancestors()
            .find(|a| a.file_name().is_some_and(|n| n == "deps"))
        && let Some(target) = deps.parent().and_then(Path::parent)
    {
        return target.to_path_buf();
    }
    warn!("cannot locate the cargo target dir from the test binary; using the workspace's");
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target")
}

/// The last lines of a log file, for error messages.
pub(crate) fn tail_of(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut file) = fs::File::open(path) {
        let _ = file.read_to_string(&mut text);
    }
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(20);
    format!(
        "(last lines of {}) {}",
        path.display(),
        lines[start..].join("\n")
    )
}

fn io_error(path: &Path, what: &str, source: std::io::Error) -> TestNodeError {
    TestNodeError::Io {
        what: format!("{what} {}", path.display()),
        source,
    }
}
