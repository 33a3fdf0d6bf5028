//! Three peers on the Kubo HTTP connector, each beside its own js-ipfs daemon (a stand-in for
//! Kubo serving the same RPC API): pin, status, recover, pin update and unpin through ctl and
//! REST, `ctl add` streamed with block/put, then the IPFS proxy: pin/add, pin/ls, pin/rm,
//! pin/update, repo/stat, add, a relayed `version`, and bad input answered Kubo-style with
//! nothing pinned.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use cluster_testnodes::JsIpfs;
use cluster_tests::multi::TestCluster;
use cluster_tests::{free_port, http, ok_stdout, random_bytes, wait_until, Peer};
use serde_json::Value;

/// One HTTP request with an optional body, answering status, headers and body.
fn request(
    rt: &tokio::runtime::Runtime,
    method: &str,
    url: &str,
    body: Option<(String, Vec<u8>)>,
    headers: &[(&str, &str)],
) -> Result<(u16, reqwest::header::HeaderMap, String)> {
    rt.block_on(async {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
        let mut req = client.request(reqwest::Method::from_bytes(method.as_bytes())?, url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some((content_type, bytes)) = body {
            req = req.header("content-type", content_type).body(bytes);
        }
        let resp = req.send().await.with_context(|| format!("{method} {url}"))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        Ok((status, headers, resp.text().await?))
    })
}

/// A multipart body with one file, as Kubo's `add` and `block/put` take.
fn multipart(data: &[u8]) -> (String, Vec<u8>) {
    let boundary = "t50boundaryXq7";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Adds bytes to a js-ipfs node without pinning them there; returns the root CID.
fn add(rt: &tokio::runtime::Runtime, node: &JsIpfs, data: &[u8]) -> Result<String> {
    let url = format!("{}/api/v0/add?pin=false&cid-version=0", node.api_url());
    let (status, _, body) = request(rt, "POST", &url, Some(multipart(data)), &[])?;
    if status != 200 {
        bail!("add: {status} {body}");
    }
    let last = body.lines().filter(|l| !l.trim().is_empty()).last().context("add answered nothing")?;
    let v: Value = serde_json::from_str(last)?;
    Ok(v["Hash"].as_str().context("no Hash")?.to_string())
}

/// How a js-ipfs node reports `cid` in `pin/ls` (`None` when not pinned).
fn ipfs_pin_type(rt: &tokio::runtime::Runtime, node: &JsIpfs, cid: &str) -> Option<String> {
    let url = format!("{}/api/v0/pin/ls?arg={cid}", node.api_url());
    let (status, _, body) = request(rt, "POST", &url, None, &[]).ok()?;
    if status != 200 {
        return None;
    }
    let v: Value = serde_json::from_str(&body).ok()?;
    let keys = v["Keys"].as_object()?;
    keys.values().next()?["Type"].as_str().map(String::from)
}

/// Status of `cid` on every peer, as peer `p` reports cluster-wide.
fn statuses(p: &Peer, cid: &str) -> Vec<String> {
    let Some((200, body)) = http("GET", &p.url(&format!("/pins/{cid}"))) else { return Vec::new() };
    let Ok(v) = serde_json::from_str::<Value>(&body) else { return Vec::new() };
    v["peer_map"]
        .as_object()
        .map(|m| m.values().filter_map(|i| i["status"].as_str().map(String::from)).collect())
        .unwrap_or_default()
}

fn all_are(p: &Peer, cid: &str, n: usize, status: &str) -> bool {
    let s = statuses(p, cid);
    s.len() == n && s.iter().all(|x| x == status)
}

fn logs(cluster: &TestCluster) -> String {
    cluster.peers.iter().enumerate().map(|(i, p)| format!("--- peer {i}:\n{}", p.log())).collect()
}

#[test]
fn three_peers_on_js_ipfs_with_the_proxy() {
    let n = 3;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let repos = tempfile::tempdir().expect("tempdir");
    let nodes: Vec<JsIpfs> = (0..n)
        .map(|i| rt.block_on(JsIpfs::start(repos.path().join(format!("ipfs{i}")))).expect("js-ipfs starts"))
        .collect();
    let apis: Vec<String> = nodes.iter().map(JsIpfs::api_multiaddr).collect();
    let proxy_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
    let mut cluster = TestCluster::init(n, |i, cfg| {
        cfg["ipfs_connector"] = serde_json::json!({
            "ipfshttp": { "node_multiaddress": apis[i], "connect_swarms_delay": "1s", "pin_timeout": "30s" }
        });
        cfg["api"]["ipfsproxy"] = serde_json::json!({
            "listen_multiaddress": format!("/ip4/127.0.0.1/tcp/{}", proxy_ports[i]),
            "node_multiaddress": apis[i],
            "extract_headers_extra": ["X-Test-Absent"],
        });
    })
    .expect("cluster init");
    cluster.launch().expect("cluster starts");
    cluster.wait_peerset(&[0, 1, 2], n, Duration::from_secs(60)).expect("3 peers");
    let proxy = |i: usize, path: &str| format!("http://127.0.0.1:{}{path}", proxy_ports[i]);

    // /id reports the js-ipfs node behind each peer.
    let (_, id) = http("GET", &cluster.peers[1].url("/id")).expect("id");
    let id: Value = serde_json::from_str(&id).expect("id json");
    assert_eq!(id["ipfs"]["id"], nodes[1].peer_id(), "{id}");

    // ctl pin add: content held by node 0 only reaches every node over bitswap once the cluster
    // has swarm-connected them.
    let a = add(&rt, &nodes[0], &random_bytes(300_000)).expect("add a");
    ok_stdout(&cluster.peers[1].ctl(&["pin", "add", &a]));
    let pinned = wait_until(Duration::from_secs(90), || all_are(&cluster.peers[2], &a, n, "pinned"));
    assert!(pinned, "a not pinned everywhere: {:?}\n{}", statuses(&cluster.peers[2], &a), logs(&cluster));
    for node in &nodes {
        assert_eq!(ipfs_pin_type(&rt, node, &a).as_deref(), Some("recursive"));
    }
    let status = ok_stdout(&cluster.peers[0].ctl(&["status", &a]));
    assert_eq!(status.matches("PINNED").count(), n, "{status}");

    // Unpinned behind the cluster's back on node 2, then recovered through ctl.
    let (code, _, body) =
        request(&rt, "POST", &format!("{}/api/v0/pin/rm?arg={a}", nodes[2].api_url()), None, &[]).expect("pin/rm");
    assert_eq!(code, 200, "{body}");
    let noticed = wait_until(Duration::from_secs(30), || {
        statuses(&cluster.peers[2], &a).iter().any(|s| s == "unexpectedly_unpinned")
    });
    assert!(noticed, "{:?}", statuses(&cluster.peers[2], &a));
    ok_stdout(&cluster.peers[2].ctl(&["recover", &a]));
    assert!(wait_until(Duration::from_secs(30), || ipfs_pin_type(&rt, &nodes[2], &a).as_deref() == Some("recursive")));
    assert!(wait_until(Duration::from_secs(30), || all_are(&cluster.peers[0], &a, n, "pinned")));

    // ctl pin update a → b: js-ipfs has no pin/update, so the connector pins b afresh.
    let b = add(&rt, &nodes[1], &random_bytes(200_000)).expect("add b");
    ok_stdout(&cluster.peers[0].ctl(&["pin", "update", &a, &b]));
    assert!(
        wait_until(Duration::from_secs(60), || all_are(&cluster.peers[0], &b, n, "pinned")),
        "b: {:?}\n{}",
        statuses(&cluster.peers[0], &b),
        logs(&cluster)
    );
    for node in &nodes {
        assert_eq!(ipfs_pin_type(&rt, node, &b).as_deref(), Some("recursive"));
    }
    let (_, alloc) = http("GET", &cluster.peers[1].url(&format!("/allocations/{b}"))).expect("allocation");
    let alloc: Value = serde_json::from_str(&alloc).expect("pin json");
    assert_eq!(alloc["pin_update"], a.as_str(), "{alloc}");

    // Unpin through ctl: gone from every node.
    ok_stdout(&cluster.peers[1].ctl(&["pin", "rm", &a]));
    ok_stdout(&cluster.peers[1].ctl(&["pin", "rm", &b]));
    assert!(wait_until(Duration::from_secs(60), || nodes.iter().all(|nd| ipfs_pin_type(&rt, nd, &b).is_none())));

    // The proxy: a relayed command is answered by the node itself.
    let (code, headers, via_proxy) = request(&rt, "POST", &proxy(0, "/api/v0/version"), None, &[]).expect("version");
    assert_eq!(code, 200, "{via_proxy}");
    let (_, _, direct) = request(&rt, "POST", &format!("{}/api/v0/version", nodes[0].api_url()), None, &[]).expect("v");
    let (vp, vd): (Value, Value) = (serde_json::from_str(&via_proxy).unwrap(), serde_json::from_str(&direct).unwrap());
    assert_eq!(vp["Version"], vd["Version"], "{via_proxy} vs {direct}");
    assert!(headers.get("server").is_none_or(|s| !s.to_str().unwrap_or("").contains("ipfs-cluster")));

    // pin/add through the proxy is a cluster pin, replicated to every peer.
    let c = add(&rt, &nodes[2], &random_bytes(100_000)).expect("add c");
    let origin = [("Origin", "http://example.test")];
    let (code, headers, body) =
        request(&rt, "POST", &proxy(1, &format!("/api/v0/pin/add?arg={c}")), None, &origin).expect("proxy pin/add");
    assert_eq!(code, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), serde_json::json!({ "Pins": [c] }));
    let server = headers.get("server").and_then(|s| s.to_str().ok()).unwrap_or_default();
    assert!(server.starts_with("ipfs-cluster/ipfsproxy/"), "{headers:?}");
    assert!(wait_until(Duration::from_secs(60), || all_are(&cluster.peers[0], &c, n, "pinned")), "{}", logs(&cluster));

    // pin/ls answers from the cluster state: one CID, the whole listing, the streamed form.
    let (code, _, body) = request(&rt, "POST", &proxy(2, &format!("/api/v0/pin/ls?arg={c}")), None, &[]).expect("ls");
    assert_eq!(code, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["Keys"][&c]["Type"], "recursive");
    let (code, _, body) = request(&rt, "POST", &proxy(2, "/api/v0/pin/ls"), None, &[]).expect("ls all");
    assert_eq!(code, 200, "{body}");
    let keys = serde_json::from_str::<Value>(&body).unwrap()["Keys"].as_object().cloned().unwrap_or_default();
    assert_eq!(keys.keys().collect::<Vec<_>>(), vec![&c], "{body}");
    let (code, _, body) = request(&rt, "POST", &proxy(2, "/api/v0/pin/ls?stream=true"), None, &[]).expect("ls stream");
    assert_eq!(code, 200, "{body}");
    let lines: Vec<Value> = body.lines().map(|l| serde_json::from_str(l).expect("ndjson")).collect();
    assert_eq!(lines, vec![serde_json::json!({ "Cid": c, "Type": "recursive" })]);
    let (code, _, body) = request(&rt, "POST", &proxy(2, &format!("/api/v0/pin/ls?arg={a}")), None, &[]).expect("ls a");
    assert_eq!(code, 500);
    let err: Value = serde_json::from_str(&body).expect("kubo error");
    assert_eq!(err, serde_json::json!({ "Message": format!("path '{a}' is not pinned"), "Code": 0, "Type": "error" }));

    // repo/stat sums every member's node.
    let (code, _, body) = request(&rt, "POST", &proxy(0, "/api/v0/repo/stat"), None, &[]).expect("repo/stat");
    assert_eq!(code, 200, "{body}");
    let stat: Value = serde_json::from_str(&body).unwrap();
    assert!(stat["RepoSize"].as_u64().unwrap_or(0) > 300_000, "{body}");

    // Bad input: Kubo-shaped errors, nothing pinned.
    let before = cluster.allocations(0).expect("allocations").len();
    for (path, want) in [
        ("/api/v0/pin/add", 500),
        ("/api/v0/pin/add?arg=notacid", 500),
        ("/api/v0/pin/update", 400),
        (&format!("/api/v0/pin/update?arg={c}") as &str, 400),
    ] {
        let (code, _, body) = request(&rt, "POST", &proxy(0, path), None, &[]).expect("bad request");
        assert_eq!(code, want, "{path}: {body}");
        let err: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{path}: not json: {body}"));
        assert_eq!(err["Type"], "error", "{path}: {body}");
        assert!(err["Message"].as_str().is_some_and(|m| !m.is_empty()), "{path}: {body}");
    }
    // a malformed multipart body: the node refuses it, the proxy relays the refusal, no pin
    let (code, _, body) = request(
        &rt,
        "POST",
        &proxy(0, "/api/v0/block/put?pin=true"),
        Some(("multipart/form-data; boundary=nope".into(), b"garbage without parts".to_vec())),
        &[],
    )
    .expect("bad block/put");
    assert!(code >= 400, "{code} {body}");
    assert_eq!(cluster.allocations(0).expect("allocations").len(), before);

    // block/put with pin=true: stored through the node, pinned in the cluster.
    let (code, _, body) =
        request(&rt, "POST", &proxy(0, "/api/v0/block/put?pin=true&format=raw&cid-codec=raw"), Some(multipart(b"a block of its own")), &[])
            .expect("block/put");
    assert_eq!(code, 200, "{body}");
    let key = serde_json::from_str::<Value>(body.lines().next().unwrap_or_default()).unwrap()["Key"]
        .as_str()
        .map(String::from)
        .expect("Key");
    assert!(wait_until(Duration::from_secs(30), || cluster.allocations(0).map(|a| a.len()).unwrap_or(0) == before + 1));
    assert!(
        wait_until(Duration::from_secs(60), || all_are(&cluster.peers[1], &key, n, "pinned")),
        "{key} ({body}): {:?}\n{}",
        http("GET", &cluster.peers[1].url(&format!("/pins/{key}"))),
        logs(&cluster)
    );

    // ctl add: blocks streamed to the two allocated js-ipfs nodes with block/put, then pinned
    // there (the content exists nowhere else, so the pins complete from the put blocks).
    let file = repos.path().join("upload.bin");
    let data = random_bytes(1_500_000);
    std::fs::write(&file, &data).expect("write upload");
    let root = ok_stdout(&cluster.peers[2].ctl(&["add", "--quieter", "--rmin", "2", "--rmax", "2", file.to_str().unwrap()]));
    let root = root.trim().to_string();
    let (code, _, only_hash) =
        request(&rt, "POST", &format!("{}/api/v0/add?only-hash=true&cid-version=0", nodes[1].api_url()), Some(multipart(&data)), &[])
            .expect("only-hash");
    assert_eq!(code, 200);
    assert!(only_hash.contains(&format!("\"Hash\":\"{root}\"")), "cluster add gave {root}, js-ipfs says {only_hash}");
    assert!(
        wait_until(Duration::from_secs(60), || statuses(&cluster.peers[0], &root).iter().filter(|s| *s == "pinned").count() == 2),
        "{root}: {:?}\n{}",
        statuses(&cluster.peers[0], &root),
        logs(&cluster)
    );
    assert_eq!(nodes.iter().filter(|nd| ipfs_pin_type(&rt, nd, &root).as_deref() == Some("recursive")).count(), 2);

    // add through the proxy: the cluster's add, answered with Kubo's objects (with progress,
    // as Kubo's CLI asks on a terminal: `Bytes` every 256 KiB and at the end).
    let data = random_bytes(400_000);
    let (code, headers, body) =
        request(&rt, "POST", &proxy(1, "/api/v0/add?cid-version=0&progress=true"), Some(multipart(&data)), &[]).expect("proxy add");
    assert_eq!(code, 200, "{body}");
    assert!(headers.get("x-chunked-output").is_some());
    let progress: Vec<u64> = body
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("Hash").is_none())
        .map(|v| v["Bytes"].as_u64().unwrap_or_default())
        .collect();
    assert_eq!(progress, [262_144, 400_000], "{body}");
    let last: Value = serde_json::from_str(body.lines().filter(|l| !l.trim().is_empty()).last().expect("a line")).expect("json");
    let hash = last["Hash"].as_str().expect("Hash").to_string();
    assert!(last["Size"].is_string(), "Kubo reports Size as a string: {last}");
    let (_, _, only_hash) =
        request(&rt, "POST", &format!("{}/api/v0/add?only-hash=true&cid-version=0", nodes[2].api_url()), Some(multipart(&data)), &[])
            .expect("only-hash");
    assert!(only_hash.contains(&format!("\"Hash\":\"{hash}\"")), "proxy add gave {hash}, js-ipfs says {only_hash}");
    assert!(
        wait_until(Duration::from_secs(60), || all_are(&cluster.peers[2], &hash, n, "pinned")),
        "{hash}: {:?}\n{}",
        statuses(&cluster.peers[2], &hash),
        logs(&cluster)
    );
    // only-hash is refused rather than silently pinning nothing
    let (code, _, body) =
        request(&rt, "POST", &proxy(1, "/api/v0/add?only-hash=true"), Some(multipart(b"x")), &[]).expect("only-hash add");
    assert_eq!(code, 400, "{body}");

    // pin/update and pin/rm through the proxy.
    let d = add(&rt, &nodes[0], &random_bytes(50_000)).expect("add d");
    let (code, _, body) =
        request(&rt, "POST", &proxy(1, &format!("/api/v0/pin/update?arg={c}&arg={d}")), None, &[]).expect("update");
    assert_eq!(code, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), serde_json::json!({ "Pins": [c, d] }));
    assert!(wait_until(Duration::from_secs(60), || all_are(&cluster.peers[0], &d, n, "pinned")));
    assert!(http("GET", &cluster.peers[0].url(&format!("/allocations/{c}"))).is_some_and(|(s, _)| s == 404));
    let (code, _, body) = request(&rt, "POST", &proxy(1, &format!("/api/v0/pin/rm/{d}")), None, &[]).expect("rm");
    assert_eq!(code, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), serde_json::json!({ "Pins": [d] }));
    assert!(wait_until(Duration::from_secs(60), || nodes.iter().all(|nd| ipfs_pin_type(&rt, nd, &d).is_none())));

    drop(cluster);
    drop(nodes);
}

/// `init` configures the Kubo connector and the proxy when the environment names a node, as
/// the original's init applies env overrides before writing.
#[test]
fn init_honours_the_ipfshttp_node_env() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new(cluster_tests::bin("ipfs-cluster-service"))
        .args(["--config", dir.path().to_str().unwrap(), "init"])
        .env("CLUSTER_IPFSHTTP_NODEMULTIADDRESS", "/ip4/127.0.0.1/tcp/5011")
        .output()
        .expect("init");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cfg: Value = serde_json::from_slice(&std::fs::read(dir.path().join("service.json")).unwrap()).unwrap();
    assert_eq!(cfg["ipfs_connector"]["ipfshttp"]["node_multiaddress"], "/ip4/127.0.0.1/tcp/5011", "{cfg}");
    assert!(cfg["ipfs_connector"].get("embedded").is_none(), "{cfg}");
    assert_eq!(cfg["api"]["ipfsproxy"]["node_multiaddress"], "/ip4/127.0.0.1/tcp/5011");
    assert_eq!(cfg["api"]["ipfsproxy"]["listen_multiaddress"], "/ip4/127.0.0.1/tcp/9095");
}
