//! Shared pieces of the benchmarks: real daemons in temporary folders, synthetic CIDs,
//! process memory and actor counters read over the REST API.

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
        let dir = tempfile::tempdir()?;
        let p = dir.path().to_str().context("temp path")?.to_string();
        let out = Command::new(service).args(["--config", &p, "init", "--randomports"]).output()?;
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

/// Starts `n` peers forming one cluster on loopback: `tweak` edits every peer's service.json;
/// the others join the first. Returns once every peer lists all `n`.
pub async fn start_cluster(service: &Path, n: usize, tweak: impl Fn(&mut serde_json::Value)) -> Result<Vec<Daemon>> {
    let first = Daemon::start(service, |cfg| on_loopback(cfg, &tweak), &[])?;
    let contact = cluster_contact(&first).await?;
    let mut peers = vec![first];
    for _ in 1..n {
        peers.push(start_joiner(service, &contact, &tweak)?);
    }
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    for d in &peers {
        while peers_seen(&client, d).await < n {
            if Instant::now() > deadline {
                bail!("the peers did not form a cluster of {n}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(peers)
}

fn on_loopback(cfg: &mut serde_json::Value, tweak: &impl Fn(&mut serde_json::Value)) {
    cfg["cluster"]["listen_multiaddress"] = "/ip4/127.0.0.1/tcp/0".into();
    tweak(cfg);
}

/// What a new peer needs to join `peer`'s cluster: its secret and its loopback address.
pub struct Contact {
    secret: String,
    bootstrap: String,
}

/// The [`Contact`] of a running peer.
pub async fn cluster_contact(peer: &Daemon) -> Result<Contact> {
    let cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(peer.path().join("service.json"))?)?;
    let secret = cfg["cluster"]["secret"].as_str().context("secret")?.to_string();
    let id: serde_json::Value = reqwest::Client::new().get(peer.url("/id")).send().await?.json().await?;
    let bootstrap = id["addresses"]
        .as_array()
        .and_then(|a| a.iter().filter_map(|v| v.as_str()).find(|s| s.contains("/127.0.0.1/")))
        .context("no loopback cluster address")?
        .to_string();
    Ok(Contact { secret, bootstrap })
}

/// Starts a peer that joins the cluster of `contact` (on loopback, with `tweak` applied).
pub fn start_joiner(service: &Path, contact: &Contact, tweak: &impl Fn(&mut serde_json::Value)) -> Result<Daemon> {
    let joiner = |cfg: &mut serde_json::Value| {
        cfg["cluster"]["secret"] = contact.secret.clone().into();
        on_loopback(cfg, tweak);
    };
    Daemon::start(service, joiner, &["--bootstrap", &contact.bootstrap])
}

/// How many peers `GET /peers` lists (0 when it does not answer).
pub async fn peers_seen(client: &reqwest::Client, d: &Daemon) -> usize {
    match client.get(d.url("/peers")).send().await {
        Ok(r) => r.text().await.map(|t| t.lines().filter(|l| !l.trim().is_empty()).count()).unwrap_or(0),
        Err(_) => 0,
    }
}
