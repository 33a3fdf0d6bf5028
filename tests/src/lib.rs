//! Black-box test harness: starts real `ipfs-cluster-service` daemons on OS-chosen ports and
//! drives them through the REST API and the real `ipfs-cluster-ctl` binary.
//!
//! The binaries are the ones `cargo test --workspace` builds into the target directory (the
//! service and ctl packages have integration tests, so cargo builds their executables first).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

pub mod history;
pub mod multi;

/// The directory holding the workspace's built binaries (`target/<profile>`).
pub fn bin_dir() -> PathBuf {
    // Test executables live in target/<profile>/deps.
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("deps dir");
    deps.parent().expect("profile dir").to_path_buf()
}

/// Path of a workspace binary, failing with instructions when it was not built.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} not found: run the suite with `cargo test --workspace` (or `cargo build --bins` first)",
        p.display()
    );
    p
}

/// Polls `cond` every 50 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A daemon's config folder (kept across restarts of the process).
pub struct Peer {
    /// The config folder (a temp dir owned by the peer).
    pub dir: tempfile::TempDir,
    /// REST API port.
    pub rest_port: u16,
    /// Prometheus port.
    pub metrics_port: u16,
    child: Option<Child>,
    extra_args: Vec<String>,
    /// `http`, or `https` once the REST API is configured with a certificate.
    scheme: &'static str,
}

fn port_of(ma: &str) -> Result<u16> {
    ma.rsplit('/').next().context("multiaddr without port")?.parse().context("bad port")
}

impl Peer {
    /// Initialises a config folder with random ports (without starting the daemon).
    pub fn init(extra_args: &[&str]) -> Result<Peer> {
        let dir = tempfile::tempdir()?;
        let out = Command::new(bin("ipfs-cluster-service"))
            .args(["--config", dir.path().to_str().unwrap(), "init", "--randomports"])
            .output()?;
        if !out.status.success() {
            bail!("init failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join("service.json"))?)?;
        let rest_port = port_of(cfg["api"]["restapi"]["http_listen_multiaddress"].as_str().context("restapi listen")?)?;
        let metrics_port =
            port_of(cfg["observations"]["metrics"]["prometheus_endpoint"].as_str().context("metrics endpoint")?)?;
        Ok(Peer {
            dir,
            rest_port,
            metrics_port,
            child: None,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            scheme: "http",
        })
    }

    /// Edits service.json in place (before `start`).
    pub fn edit_config(&self, f: impl FnOnce(&mut serde_json::Value)) -> Result<()> {
        let path = self.dir.path().join("service.json");
        let mut cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
        f(&mut cfg);
        std::fs::write(&path, serde_json::to_vec_pretty(&cfg)?)?;
        Ok(())
    }

    /// Initialises and starts a daemon, waiting until its API answers.
    /// Talks HTTPS to the REST API from now on (for a peer whose config sets a certificate).
    pub fn use_https(&mut self) {
        self.scheme = "https";
    }

    /// Adds daemon arguments for the next starts.
    pub fn add_args(&mut self, args: &[&str]) {
        self.extra_args.extend(args.iter().map(|s| s.to_string()));
    }

    pub fn start_new(extra_args: &[&str]) -> Result<Peer> {
        let mut p = Peer::init(extra_args)?;
        p.start()?;
        Ok(p)
    }

    /// Starts (or restarts) the daemon process and waits for `GET /health`.
    pub fn start(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.path().join("daemon.log"))?;
        let mut cmd = Command::new(bin("ipfs-cluster-service"));
        cmd.args(["--config", self.dir.path().to_str().unwrap(), "daemon"])
            .args(&self.extra_args)
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log));
        let child = cmd.spawn()?;
        self.child = Some(child);
        let url = self.url("/health");
        let ok = wait_until(Duration::from_secs(60), || {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(_)) = c.try_wait() {
                    return true; // exited: reported below
                }
            http_status("GET", &url) == Some(204)
        });
        if let Some(c) = self.child.as_mut()
            && let Ok(Some(st)) = c.try_wait() {
                bail!("daemon exited with {st}: {}", self.log());
            }
        if !ok {
            bail!("daemon did not become ready: {}", self.log());
        }
        Ok(())
    }

    /// The daemon's combined output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    /// Base URL of the REST API.
    pub fn url(&self, path: &str) -> String {
        format!("{}://127.0.0.1:{}{}", self.scheme, self.rest_port, path)
    }

    /// The `--host` multiaddr for ctl.
    pub fn host(&self) -> String {
        format!("/ip4/127.0.0.1/tcp/{}", self.rest_port)
    }

    /// Runs ipfs-cluster-ctl against this peer.
    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new(bin("ipfs-cluster-ctl"))
            .args(["--host", &self.host()])
            .args(args)
            .output()
            .expect("run ipfs-cluster-ctl")
    }

    /// Kills the daemon with SIGKILL (no clean shutdown).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the daemon with SIGTERM and waits for it to exit.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        // SAFETY: sending a signal to our own child process.
        unsafe {
            libc::kill(c.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = c.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        c.wait().ok()
    }

    /// Waits up to `timeout` for the daemon to exit on its own; None if it is still running
    /// (it is then left running) or was not started.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(st)) = self.child.as_mut()?.try_wait() {
                self.child = None;
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The config folder path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.kill9();
        // Keep the daemon's log for post-mortems when asked to (the folder itself is removed).
        if let Ok(dir) = std::env::var("CLUSTER_TEST_KEEP_LOGS") {
            let name = self.dir.path().file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let _ = std::fs::create_dir_all(&dir);
            let _ = std::fs::copy(self.dir.path().join("daemon.log"), Path::new(&dir).join(format!("{name}.log")));
        }
    }
}

/// A loopback port that was free a moment ago (bound, then released), for listeners a test
/// configures itself.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// Status code of a bodyless request, or None when the server does not answer.
pub fn http_status(method: &str, url: &str) -> Option<u16> {
    http(method, url).map(|(s, _)| s)
}

/// A blocking HTTP(S) request returning status and body (test certificates are accepted).
pub fn http(method: &str, url: &str) -> Option<(u16, String)> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
    rt.block_on(async {
        let client =
            reqwest::Client::builder().timeout(Duration::from_secs(30)).danger_accept_invalid_certs(true).build().ok()?;
        let m = reqwest::Method::from_bytes(method.as_bytes()).ok()?;
        let resp = client.request(m, url).send().await.ok()?;
        let status = resp.status().as_u16();
        let body = resp.text().await.ok()?;
        Some((status, body))
    })
}

/// Parses NDJSON (one object per line).
pub fn ndjson(body: &str) -> Vec<serde_json::Value> {
    body.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).expect("ndjson line")).collect()
}

/// Stdout of a ctl run, asserting success.
pub fn ok_stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "ctl failed ({}): stdout={} stderr={}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An in-process IPFS node that holds content the daemon under test can fetch over bitswap.
pub struct Provider {
    rt: tokio::runtime::Runtime,
    node: std::sync::Arc<dyn cluster_ipfs::IpfsConnector>,
    addr: String,
}

impl Provider {
    /// Starts an in-memory node on a loopback port.
    pub fn start() -> Result<Provider> {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let node = rt.block_on(cluster_ipfs::start_embedded(cluster_ipfs::EmbeddedConfig::loopback()))?;
        let id = rt.block_on(node.id())?;
        let addr = id
            .addresses
            .iter()
            .find(|a| a.contains("/ip4/127.0.0.1/"))
            .cloned()
            .context("provider has no loopback address")?;
        Ok(Provider { rt, node, addr })
    }

    /// Adds bytes as a UnixFS file (Kubo-default CIDv0) and returns the root CID.
    /// A node over an existing on-disk repo (e.g. a peer's, before the peer starts), so
    /// content added now is held by that peer's own IPFS once it runs.
    pub fn start_at(repo: &Path) -> Result<Provider> {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let node = rt.block_on(cluster_ipfs::start_embedded(cluster_ipfs::EmbeddedConfig::loopback().with_repo(repo)))?;
        Ok(Provider { rt, node, addr: String::new() })
    }

    /// Stops the node and releases its repo.
    pub fn shutdown(self) -> Result<()> {
        self.rt.block_on(self.node.shutdown())?;
        Ok(())
    }

    pub fn add(&self, data: Vec<u8>) -> Result<String> {
        Ok(self.rt.block_on(self.node.add_bytes(bytes::Bytes::from(data)))?.to_string())
    }

    /// Walks the DAG under `root` through this node's own block store (each block must come
    /// back within a few seconds, so a missing one is an error, not a network fetch) and
    /// returns how many blocks it holds. Blocks are checked against their CIDs on the way.
    pub fn walk_local(&self, root: &str) -> Result<usize> {
        let root: cid::Cid = root.parse()?;
        self.rt.block_on(async {
            let mut stack = vec![root];
            let mut seen = std::collections::HashSet::new();
            while let Some(c) = stack.pop() {
                if !seen.insert(c) {
                    continue;
                }
                let data = tokio::time::timeout(Duration::from_secs(5), self.node.block_get(&c))
                    .await
                    .map_err(|_| anyhow::anyhow!("block {c} is not held locally"))??;
                cluster_ipfs::verify_block(&c, &data)?;
                if c.codec() == cluster_ipfs::CODEC_DAG_PB {
                    let links = cluster_ipfs::conformance::dag_pb_links(&data).map_err(|e| anyhow::anyhow!(e.0))?;
                    stack.extend(links.into_iter().map(|(_, l)| l));
                }
            }
            Ok(seen.len())
        })
    }

    /// Connects to another IPFS node (a multiaddr ending in `/p2p/<id>`).
    pub fn connect(&self, addr: &str) -> Result<()> {
        Ok(self.rt.block_on(self.node.swarm_connect(addr))?)
    }

    /// Reads a UnixFS file, fetching over bitswap what this node does not hold, within `timeout`.
    pub fn cat(&self, root: &str, timeout: Duration) -> Result<bytes::Bytes> {
        let root: cid::Cid = root.parse()?;
        self.rt.block_on(async {
            tokio::time::timeout(timeout, self.node.cat(&root)).await.map_err(|_| anyhow::anyhow!("cat {root} timed out"))?.map_err(Into::into)
        })
    }

    /// The provider's multiaddr with `/p2p/`, for the daemon's `bootstrap` list.
    pub fn addr(&self) -> &str {
        &self.addr
    }
}

/// Pseudo-random bytes.
pub fn random_bytes(n: usize) -> Vec<u8> {
    use rand::RngCore;
    let mut v = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut v);
    v
}

/// A CID of inline (identity-hashed) data: pinnable without any network.
pub fn identity_cid(data: &[u8]) -> String {
    let mh = cid::multihash::Multihash::<64>::wrap(0x00, data).expect("inline data fits");
    cid::Cid::new_v1(0x55, mh).to_string()
}

/// A CID of random content that nobody can provide.
pub fn unavailable_cid() -> String {
    use rand::RngCore;
    let mut digest = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut digest);
    let mh = cid::multihash::Multihash::<64>::wrap(0x12, &digest).expect("sha2-256 digest");
    cid::Cid::new_v1(0x55, mh).to_string()
}

/// The status of `cid` on the (single) peer, via the REST API.
pub fn peer_status(peer: &Peer, cid: &str) -> Option<String> {
    let (code, body) = http("GET", &peer.url(&format!("/pins/{cid}")))?;
    if code != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    let map = v["peer_map"].as_object()?;
    map.values().next()?["status"].as_str().map(String::from)
}

/// Waits until every CID reaches `status`, returning the ones that did not.
pub fn wait_all_status(peer: &Peer, cids: &[String], status: &str, timeout: Duration) -> Vec<String> {
    let mut pending: Vec<String> = cids.to_vec();
    wait_until(timeout, || {
        pending.retain(|c| peer_status(peer, c).as_deref() != Some(status));
        pending.is_empty()
    });
    pending
}

/// Pins every CID through `peer`'s REST API with `concurrency` requests in flight; fails on
/// the first refused pin.
pub fn pin_many(peer: &Peer, cids: &[String], concurrency: usize) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let base = peer.url("");
    rt.block_on(async move {
        let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build()?;
        let mut set = tokio::task::JoinSet::new();
        for cid in cids {
            if set.len() >= concurrency
                && let Some(r) = set.join_next().await {
                    r??;
                }
            let (client, url) = (client.clone(), format!("{base}/pins/{cid}"));
            set.spawn(async move {
                let resp = client.post(&url).send().await?;
                if !resp.status().is_success() {
                    bail!("POST {url}: {}", resp.status());
                }
                Ok::<_, anyhow::Error>(())
            });
        }
        while let Some(r) = set.join_next().await {
            r??;
        }
        Ok(())
    })
}

/// Writes `len` pseudo-random bytes (xorshift, seeded) to `path` a chunk at a time.
pub fn write_random_file(path: &Path, len: u64, seed: u64) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    let mut x = seed | 1;
    let mut chunk = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        for w in chunk.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.copy_from_slice(&x.to_le_bytes()[..w.len()]);
        }
        let n = left.min(chunk.len() as u64) as usize;
        f.write_all(&chunk[..n]).expect("write");
        left -= n as u64;
    }
    f.flush().expect("flush");
}

/// The CID Kubo gives the file with default settings, computed here without storing blocks.
pub fn kubo_default_cid(path: &Path) -> String {
    let mut f = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(path).expect("open"));
    let root = cluster_unixfs::import_reader(&mut f, &cluster_unixfs::AddOptions::default(), &mut cluster_unixfs::NullSink)
        .expect("import");
    root.cid.to_string()
}
