//! [`JsIpfs`]: one js-ipfs daemon on loopback ports, killed when dropped.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::process::{Child, Command};
use tracing::{debug, info, warn};

use crate::TestNodeError;
use crate::install::{Installation, ensure_installed, tail_of};

/// js-ipfs is ready in 1-3 s when idle; parallel test binaries on two cores make that much slower.
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// `jsipfs init` generates a key and writes the repo.
const INIT_TIMEOUT: Duration = Duration::from_secs(120);
/// Free ports are found by binding port 0 and releasing it, so another process can take one
/// before the daemon binds it; a fresh set of ports is tried this many times.
const START_ATTEMPTS: usize = 3;
const POLL_INTERVAL: Duration = Duration::from_millis(150);
/// Lock js-ipfs leaves in the repo when it dies without cleaning up (e.g. `kill -9`).
const REPO_LOCK: &str = "repo.lock";
/// Daemon output, kept in the repo folder for post-mortems.
const DAEMON_LOG: &str = "daemon.log";

/// A running js-ipfs daemon bound to loopback only.
///
/// The process is killed (SIGKILL) when this value is dropped or [`JsIpfs::kill`] is called; the
/// repo survives, so [`JsIpfs::start`] on the same folder brings the same peer back (on new ports).
#[derive(Debug)]
pub struct JsIpfs {
    repo: PathBuf,
    child: Option<Child>,
    api_port: u16,
    peer_id: String,
    swarm_addrs: Vec<String>,
}

struct Ports {
    swarm: u16,
    api: u16,
    gateway: u16,
    rpc: u16,
}

enum StartFailure {
    /// The daemon lost a race for one of its ports; worth retrying with other ports.
    PortTaken(String),
    Fatal(TestNodeError),
}

impl JsIpfs {
    /// Starts a daemon on the repo at `repo`, creating the repo (with js-ipfs's `test` profile) if
    /// the folder holds none, and returns once the RPC API answers `id`.
    ///
    /// The first call in a cargo target dir installs js-ipfs from npm, which takes minutes.
    /// The caller owns `repo`: a `repo.lock` found there is taken to be stale and removed.
    pub async fn start(repo: impl AsRef<Path>) -> Result<JsIpfs, TestNodeError> {
        let repo = repo.as_ref().to_path_buf();
        let install = ensure_installed().await?;
        fs::create_dir_all(&repo).map_err(|e| io_error(&repo, "create repo folder", e))?;
        if !repo.join("config").exists() {
            init_repo(&install, &repo).await?;
        }
        remove_stale_lock(&repo)?;

        let mut last_clash = String::new();
        for attempt in 1..=START_ATTEMPTS {
            let ports = free_ports()?;
            write_config(&repo, &ports)?;
            match spawn_ready(&install, &repo, &ports).await {
                Ok(node) => return Ok(node),
                Err(StartFailure::PortTaken(detail)) => {
                    warn!(attempt, detail = %detail, "js-ipfs port was taken, retrying on other ports");
                    remove_stale_lock(&repo)?;
                    last_clash = detail;
                }
                Err(StartFailure::Fatal(e)) => return Err(e),
            }
        }
        Err(TestNodeError::Node(format!(
            "no free ports after {START_ATTEMPTS} attempts: {last_clash}"
        )))
    }

    /// The RPC API address, e.g. `/ip4/127.0.0.1/tcp/40123` (what `node_multiaddress` takes).
    pub fn api_multiaddr(&self) -> String {
        format!("/ip4/127.0.0.1/tcp/{}", self.api_port)
    }

    /// The RPC API base URL, e.g. `http://127.0.0.1:40123`.
    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.api_port)
    }

    /// The node's peer id.
    pub fn peer_id(&self) -> &str {
        &self.peer_id
    }

    /// Loopback swarm addresses other nodes can dial, each ending in `/p2p/<peer id>`.
    pub fn swarm_multiaddrs(&self) -> Vec<String> {
        self.swarm_addrs.clone()
    }

    /// The repo folder.
    pub fn repo_path(&self) -> &Path {
        &self.repo
    }

    /// The file the daemon's stdout and stderr go to.
    pub fn log_path(&self) -> PathBuf {
        self.repo.join(DAEMON_LOG)
    }

    /// True until the daemon has been killed or has died.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Kills the daemon with SIGKILL (as a crash would) and waits for it to exit. The repo keeps
    /// its stale lock; the next [`JsIpfs::start`] removes it. Calling this twice is harmless.
    pub async fn kill(&mut self) -> Result<(), TestNodeError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if let Err(e) = child.start_kill() {
            // already exited: nothing to kill, only to reap
            debug!(error = %e, "js-ipfs was not running when killed");
        }
        child
            .wait()
            .await
            .map_err(|e| io_error(&self.repo, "wait for killed js-ipfs", e))?;
        info!(peer = %self.peer_id, "js-ipfs killed");
        Ok(())
    }
}

impl Drop for JsIpfs {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }
}

fn node_command(install: &Installation, repo: &Path) -> Command {
    let mut cmd = Command::new("node");
    cmd.arg(install.cli())
        .env("IPFS_PATH", repo)
        .env(
            "NODE_OPTIONS",
            format!("--require \"{}\"", install.polyfill().display()),
        )
        // js-ipfs prints debug output for any DEBUG pattern it matches; tests want it quiet
        .env_remove("DEBUG")
        // ipfs-core turns content preloading to public nodes off only in a test environment
        .env("NODE_ENV", "test")
        .stdin(Stdio::null());
    cmd
}

async fn init_repo(install: &Installation, repo: &Path) -> Result<(), TestNodeError> {
    info!(repo = %repo.display(), "initialising js-ipfs repo");
    let mut cmd = node_command(install, repo);
    // no readme files in the repo: tests expect an empty pin set
    cmd.args(["init", "--profile", "test", "--empty-repo"])
        .kill_on_drop(true);
    let output = tokio::time::timeout(INIT_TIMEOUT, cmd.output())
        .await
        .map_err(|_| {
            TestNodeError::Node(format!(
                "jsipfs init did not finish within {INIT_TIMEOUT:?}"
            ))
        })?
        .map_err(|e| TestNodeError::Node(format!("cannot run jsipfs init: {e}")))?;
    if !output.status.success() || !repo.join("config").exists() {
        return Err(TestNodeError::Node(format!(
            "jsipfs init failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    Ok(())
}

fn remove_stale_lock(repo: &Path) -> Result<(), TestNodeError> {
    let lock = repo.join(REPO_LOCK);
    let removed = match fs::symlink_metadata(&lock) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => Err(e),
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(&lock),
        Ok(_) => fs::remove_file(&lock),
    };
    removed.map_err(|e| io_error(&lock, "remove stale repo lock", e))?;
    debug!(path = %lock.display(), "removed stale js-ipfs repo lock");
    Ok(())
}

/// Four distinct free loopback ports: all are held at once so the OS cannot hand one out twice.
fn free_ports() -> Result<Ports, TestNodeError> {
    let mut held = Vec::with_capacity(4);
    for _ in 0..4 {
        let listener = TcpListener::bind("127.0.0.1:0")
            .map_err(|e| TestNodeError::Node(format!("cannot bind a loopback port: {e}")))?;
        let port = listener
            .local_addr()
            .map_err(|e| TestNodeError::Node(format!("cannot read a bound port: {e}")))?
            .port();
        held.push((listener, port));
    }
    Ok(Ports {
        swarm: held[0].1,
        api: held[1].1,
        gateway: held[2].1,
        rpc: held[3].1,
    })
}

/// Points every listener at loopback and turns off everything that would reach beyond it.
fn write_config(repo: &Path, ports: &Ports) -> Result<(), TestNodeError> {
    let path = repo.join("config");
    let text = fs::read_to_string(&path).map_err(|e| io_error(&path, "read repo config", e))?;
    let mut config: Value = serde_json::from_str(&text).map_err(|e| {
        TestNodeError::Node(format!("repo config {} is not json: {e}", path.display()))
    })?;
    let root = config.as_object_mut().ok_or_else(|| {
        TestNodeError::Node(format!("repo config {} is not an object", path.display()))
    })?;
    let loopback = |port: u16| format!("/ip4/127.0.0.1/tcp/{port}");
    root.insert(
        "Addresses".into(),
        json!({
            "Swarm": [loopback(ports.swarm)],
            "Announce": [],
            "NoAnnounce": [],
            "API": loopback(ports.api),
            "Gateway": loopback(ports.gateway),
            "RPC": loopback(ports.rpc),
            "Delegates": [],
        }),
    );
    root.insert("Bootstrap".into(), json!([]));
    root.insert(
        "Discovery".into(),
        json!({ "MDNS": { "Enabled": false, "Interval": 10 }, "webRTCStar": { "Enabled": false } }),
    );
    let swarm = root.entry("Swarm").or_insert_with(|| json!({}));
    if let Some(swarm) = swarm.as_object_mut() {
        swarm.insert("DisableNatPortMap".into(), json!(true));
        swarm.insert("EnableRelayHop".into(), json!(false));
    }
    let text = serde_json::to_string_pretty(&config)
        .map_err(|e| TestNodeError::Node(format!("cannot encode repo config: {e}")))?;
    fs::write(&path, text).map_err(|e| io_error(&path, "write repo config", e))
}

async fn spawn_ready(
    install: &Installation,
    repo: &Path,
    ports: &Ports,
) -> Result<JsIpfs, StartFailure> {
    let log_path = repo.join(DAEMON_LOG);
    let fatal = |e| StartFailure::Fatal(e);
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| fatal(io_error(&log_path, "open daemon log", e)))?;
    let log_err = log
        .try_clone()
        .map_err(|e| fatal(io_error(&log_path, "share daemon log", e)))?;
    let mut cmd = node_command(install, repo);
    // preloading would contact public nodes; the repo config has no switch for it
    cmd.args(["daemon", "--enable-preload=false"])
        .stdout(log)
        .stderr(log_err)
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| {
        fatal(TestNodeError::Node(format!(
            "cannot start jsipfs daemon: {e}"
        )))
    })?;
    let pid = child.id();
    debug!(
        ?pid,
        api = ports.api,
        swarm = ports.swarm,
        "js-ipfs daemon spawned"
    );

    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{}/api/v0/id", ports.api);
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let tail = tail_of(&log_path);
                let detail = format!("jsipfs daemon exited ({status}) before it was ready: {tail}");
                return Err(if tail.contains("EADDRINUSE") {
                    StartFailure::PortTaken(detail)
                } else {
                    fatal(TestNodeError::Node(detail))
                });
            }
            Ok(None) => {}
            Err(e) => return Err(fatal(io_error(&log_path, "poll jsipfs daemon", e))),
        }
        if let Some(id) = try_id(&client, &url).await {
            let (peer_id, swarm_addrs) = parse_id(&id).map_err(fatal)?;
            info!(
                peer = %peer_id,
                api = ports.api,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "js-ipfs daemon ready"
            );
            return Ok(JsIpfs {
                repo: repo.to_path_buf(),
                child: Some(child),
                api_port: ports.api,
                peer_id,
                swarm_addrs,
            });
        }
        if started.elapsed() > READY_TIMEOUT {
            let _ = child.start_kill();
            let _ = child.wait().await;
            return Err(fatal(TestNodeError::Node(format!(
                "jsipfs daemon not ready within {READY_TIMEOUT:?}: {}",
                tail_of(&log_path)
            ))));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

async fn try_id(client: &reqwest::Client, url: &str) -> Option<Value> {
    let response = client
        .post(url)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.json().await.ok()
}

fn parse_id(id: &Value) -> Result<(String, Vec<String>), TestNodeError> {
    let peer_id = id
        .get("ID")
        .and_then(Value::as_str)
        .ok_or_else(|| TestNodeError::Node(format!("id answer without ID: {id}")))?
        .to_string();
    let suffix = format!("/p2p/{peer_id}");
    let swarm_addrs = id
        .get("Addresses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|a| a.starts_with("/ip4/127.0.0.1/tcp/"))
        .map(|a| {
            if a.ends_with(&suffix) {
                a.to_string()
            } else {
                format!("{a}{suffix}")
            }
        })
        .collect();
    Ok((peer_id, swarm_addrs))
}

fn io_error(path: &Path, what: &str, source: std::io::Error) -> TestNodeError {
    TestNodeError::Io {
        what: format!("{what} {}", path.display()),
        source,
    }
}
