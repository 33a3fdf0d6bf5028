//! Shared pieces of the benchmarks: real daemons in temporary folders, synthetic CIDs,
//! process memory and actor counters read over the REST API; [`cluster`] runs multi-peer
//! clusters and the ingestion measurements taken on them.

pub mod cluster;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// A daemon started for one measurement, killed on drop.
pub struct Daemon {
    /// The daemon process.
    pub child: Child,
    /// REST API port.
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `ipfs-cluster-service` binary next to the running benchmark, unless given.
pub fn service_binary(given: Option<PathBuf>) -> Result<PathBuf> {
    match given {
        Some(s) => Ok(s),
        None => Ok(std::env::current_exe()?.with_file_name("ipfs-cluster-service")),
    }
}

impl Daemon {
    /// Inits a peer with random ports, lets `tweak` edit its service.json, starts it with
    /// `extra` daemon arguments and waits until `GET /health` answers.
    pub fn start(service: &Path, tweak: impl FnOnce(&mut serde_json::Value), extra: &[&str]) -> Result<Daemon> {
        Self::start_with(service, &[], tweak, extra)
    }

    /// Like [`Daemon::start`], with more `init` arguments (e.g. `--consensus raft`).
    pub fn start_with(
        service: &Path,
        init: &[&str],
        tweak: impl FnOnce(&mut serde_json::Value),
        extra: &[&str],
    ) -> Result<Daemon> {
        Self::launch(tempfile::tempdir()?, service, init, tweak, extra)
    }

    /// Like [`Daemon::start`], with the peer's folder (and so its IPFS repo) under `parent`:
    /// a storage benchmark measures the disk it was pointed at, not the system temp folder's.
    pub fn start_in(
        parent: &Path,
        service: &Path,
        tweak: impl FnOnce(&mut serde_json::Value),
        extra: &[&str],
    ) -> Result<Daemon> {
        Self::launch(tempfile::tempdir_in(parent)?, service, &[], tweak, extra)
    }

    fn launch(
        dir: tempfile::TempDir,
        service: &Path,
        init: &[&str],
        tweak: impl FnOnce(&mut serde_json::Value),
        extra: &[&str],
    ) -> Result<Daemon> {
        let p = dir.path().to_str().context("temp path")?.to_string();
        let out = Command::new(service).args(["--config", &p, "init", "--randomports"]).args(init).output()?;
        if !out.status.success() {
            bail!("init failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let cfg_path = dir.path().join("service.json");
        let mut cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg_path)?)?;
        tweak(&mut cfg);
        std::fs::write(&cfg_path, serde_json::to_vec_pretty(&cfg)?)?;
        let listen = cfg["api"]["restapi"]["http_listen_multiaddress"].clone();
        let listen = listen.as_str().or_else(|| listen[0].as_str()).context("rest listen")?.to_string();
        let port: u16 = listen.rsplit('/').next().context("port")?.parse()?;
        let child = Command::new(service)
            .args(["--config", &p, "--loglevel", "warn", "daemon"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let d = Daemon { child, dir, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        while health_status(d.port).ok() != Some(204) {
            if Instant::now() > deadline {
                bail!("daemon did not start");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(d)
    }

    /// Leaves the peer's folder on disk when the daemon is dropped; the caller removes it
    /// (or a folder holding it) later.
    pub fn keep_files(&mut self) {
        self.dir.disable_cleanup(true);
    }

    /// The config folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Base URL of the REST API.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

/// Status of `GET /health`, over a raw socket (no blocking HTTP client in the workspace).
pub fn health_status(port: u16) -> std::io::Result<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    Ok(buf.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0))
}

/// Resident and peak memory of a process, in KiB, from /proc.
pub fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// CPU time the process has used so far, user and system, in seconds (Linux `/proc`; 0 where
/// unreadable). Clock ticks are 1/100 s on every Linux the benchmarks run on.
pub fn cpu_secs(pid: u32) -> (f64, f64) {
    // utime and stime are fields 14 and 15 of stat(5); 12 and 13 counted after the name.
    let [user, sys] = stat_fields(pid, [11, 12]);
    (user as f64 / 100.0, sys as f64 / 100.0)
}

/// Fields of `/proc/<pid>/stat` by index, counted from 0 after the command name; 0 where
/// unreadable.
fn stat_fields<const N: usize>(pid: u32, indexes: [usize; N]) -> [u64; N] {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name may hold spaces; the fields after its closing parenthesis do not.
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    indexes.map(|i| fields.get(i).and_then(|v| v.parse().ok()).unwrap_or(0))
}

/// Minor page faults the process has taken so far (Linux `/proc`; 0 where unreadable): each is
/// a page of fresh memory touched, which costs kernel time when buffers are not reused.
pub fn minor_faults(pid: u32) -> u64 {
    // minflt is field 10 of stat(5); 8 counted after the name.
    let [minflt] = stat_fields(pid, [7]);
    minflt
}

/// The n-th synthetic CID: an identity CID, so pinning it needs no content from anywhere.
pub fn identity_cid(n: u64) -> String {
    let data = format!("bench pin {n:012}");
    let mh = cid::multihash::Multihash::<64>::wrap(0x00, data.as_bytes()).expect("fits");
    cid::Cid::new_v1(0x55, mh).to_string()
}

/// One actor's observable state from `GET /health/actors`.
pub async fn actor_state(client: &reqwest::Client, port: u16, actor: &str) -> Result<serde_json::Value> {
    let actors: serde_json::Value =
        client.get(format!("http://127.0.0.1:{port}/health/actors")).send().await?.json().await?;
    let found = actors
        .as_array()
        .and_then(|a| a.iter().find(|x| x["name"] == actor))
        .with_context(|| format!("no {actor} in /health/actors"))?;
    Ok(found["observable"].clone())
}

/// Percentile (0..=100) of sorted samples.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}
