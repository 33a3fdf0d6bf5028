//! `add --format car` end to end: a CAR exported by a real IPFS node (js-ipfs `dag/export`)
//! imported through `ipfs-cluster-ctl add --format car` into a daemon is pinned with every
//! block in its IPFS repo, and a second one sharded (shard, cluster-DAG and meta pins); CARs
//! without exactly one root, cut short, with a block that does not match its CID or without
//! their root block are refused with 400 and a clear message, with nothing pinned and no IPFS
//! call left running.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use cid::Cid;
use cluster_core::add::car::encode_v1;
use cluster_testnodes::JsIpfs;
use cluster_tests::{http, ndjson, random_bytes, wait_until, Peer, Provider};
use multihash_codetable::{Code, MultihashDigest};
use serde_json::Value;

/// One POST to a js-ipfs node's RPC API; answers the body bytes.
fn ipfs_post(rt: &tokio::runtime::Runtime, url: &str, body: Option<(String, Vec<u8>)>) -> Result<Vec<u8>> {
    rt.block_on(async {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
        let mut req = client.post(url);
        if let Some((content_type, bytes)) = body {
            req = req.header("content-type", content_type).body(bytes);
        }
        let resp = req.send().await.with_context(|| format!("POST {url}"))?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await?.to_vec();
        if status != 200 {
            bail!("POST {url}: {status} {}", String::from_utf8_lossy(&bytes));
        }
        Ok(bytes)
    })
}

fn form(name: &str, data: &[u8]) -> (String, Vec<u8>) {
    let mut body = format!(
        "--BB\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(data);
    body.extend_from_slice(b"\r\n--BB--\r\n");
    ("multipart/form-data; boundary=BB".into(), body)
}

fn raw_block(data: &[u8]) -> (Cid, Vec<u8>) {
    (Cid::new_v1(0x55, Code::Sha2_256.digest(data)), data.to_vec())
}

/// `POST /add?format=car` with `body` as raw HTTP/1.1; answers the whole response text.
fn post_car(port: u16, body: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let head = format!(
        "POST /add?format=car HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: multipart/form-data; boundary=BB\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).expect("head");
    s.write_all(body).expect("body");
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn car_from_a_real_node_is_pinned_and_bad_cars_are_refused() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");

    // js-ipfs makes the CAR: a 600 kB file as CIDv1 (raw leaves under a dag-pb root), exported.
    let mut node = rt.block_on(JsIpfs::start(dir.path().join("jsipfs"))).expect("js-ipfs starts");
    let content = random_bytes(600_000);
    let added = ipfs_post(&rt, &format!("{}/api/v0/add?cid-version=1&cid-base=base32&pin=false", node.api_url()), Some(form("f", &content)))
        .expect("js-ipfs add");
    let added: Value = serde_json::from_slice(added.split(|&b| b == b'\n').next().unwrap_or_default()).expect("add json");
    let root = added["Hash"].as_str().expect("Hash").to_string();
    let car = ipfs_post(&rt, &format!("{}/api/v0/dag/export?arg={root}", node.api_url()), None).expect("dag export");
    // A second DAG, for a sharded CAR import.
    let other = ipfs_post(&rt, &format!("{}/api/v0/add?pin=false", node.api_url()), Some(form("g", &random_bytes(700_000)))).expect("add");
    let other: Value = serde_json::from_slice(other.split(|&b| b == b'\n').next().unwrap_or_default()).expect("add json");
    let other_root = other["Hash"].as_str().expect("Hash").to_string();
    let other_car = ipfs_post(&rt, &format!("{}/api/v0/dag/export?arg={other_root}", node.api_url()), None).expect("dag export");
    rt.block_on(node.kill()).expect("stop js-ipfs");
    let root_cid: Cid = root.parse().expect("root cid");
    assert!(car.len() > content.len(), "export too small: {} bytes", car.len());

    let mut peer = Peer::start_new(&[]).expect("peer");
    let port = peer.rest_port;

    // Bad CARs: 400 with a message naming the problem.
    let a = raw_block(b"block a");
    let b = raw_block(b"block b");
    let mut two_parts = form("one.car", &encode_v1(&[a.0], std::slice::from_ref(&a))).1;
    two_parts.truncate(two_parts.len() - b"--BB--\r\n".len());
    two_parts.extend(form("two.car", &encode_v1(&[a.0], std::slice::from_ref(&a))).1);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("no root", form("x.car", &encode_v1(&[], std::slice::from_ref(&a))).1, "has no root"),
        ("two roots", form("x.car", &encode_v1(&[a.0, b.0], &[a.clone(), b.clone()])).1, "has 2 roots"),
        ("truncated", form("x.car", &car[..car.len() / 2]).1, "truncated"),
        ("wrong block", form("x.car", &encode_v1(&[a.0], &[(a.0, b.1.clone())])).1, "does not match its cid"),
        ("root not in the car", form("x.car", &encode_v1(&[root_cid], std::slice::from_ref(&a))).1, "is not in the car"),
        ("not a car", form("x.car", b"hello, not a car").1, "not a valid car"),
        ("two files", two_parts, "second part"),
    ];
    for (what, body, needle) in &cases {
        let answer = post_car(port, body);
        assert!(answer.starts_with("HTTP/1.1 400"), "{what}: {answer}");
        assert!(answer.to_lowercase().contains(needle), "{what}: message should say '{needle}': {answer}");
    }
    // ctl reports the server's message and fails.
    let bad = dir.path().join("two-roots.car");
    std::fs::write(&bad, encode_v1(&[a.0, b.0], &[a.clone(), b.clone()])).expect("write");
    let out = peer.ctl(&["add", "--format", "car", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 roots"), "{}", String::from_utf8_lossy(&out.stderr));
    let (status, body) = http("GET", &peer.url("/allocations")).expect("allocations");
    assert!(status == 204 || ndjson(&body).is_empty(), "pins left behind: {body}");

    // The real node's CAR through ctl: one output line for the root, pinned, blocks stored.
    let file = dir.path().join("export.car");
    std::fs::write(&file, &car).expect("write car");
    let out = peer.ctl(&["--enc", "json", "add", "--format", "car", file.to_str().unwrap()]);
    assert!(out.status.success(), "add failed: {}", String::from_utf8_lossy(&out.stderr));
    // ctl prints each JSON object indented, one after the other.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<Value> = serde_json::Deserializer::from_str(&stdout).into_iter::<Value>().map(|v| v.expect("json")).collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["cid"], root.as_str());
    assert_eq!(lines[0]["name"], "export.car", "named after the CAR file, as the original");
    assert_eq!(lines[0]["size"], content.len() as u64, "UnixFS size of the root");
    let bytes = lines[0]["bytes"].as_u64().expect("bytes");
    assert!(bytes > content.len() as u64 && bytes < car.len() as u64, "bytes {bytes}");
    let (status, body) = http("GET", &peer.url(&format!("/allocations/{root}"))).expect("pin");
    assert_eq!(status, 200, "{body}");
    let pinned = wait_until(Duration::from_secs(30), || {
        let out = peer.ctl(&["status", &root]);
        String::from_utf8_lossy(&out.stdout).contains("PINNED")
    });
    assert!(pinned, "not pinned: {}", String::from_utf8_lossy(&peer.ctl(&["status", &root]).stdout));
    let (_, body) = http("GET", &peer.url("/allocations")).expect("allocations");
    assert_eq!(ndjson(&body).len(), 1, "only the good CAR is pinned: {body}");

    // A CAR goes through sharding like any add: shard pins, the cluster DAG, a meta pin on
    // its root.
    let file = dir.path().join("other.car");
    std::fs::write(&file, &other_car).expect("write car");
    let out = peer.ctl(&["add", "--quieter", "--format", "car", "--shard", "--shard-size", "300KiB", "--name", "c", file.to_str().unwrap()]);
    assert!(out.status.success(), "sharded car add failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), other_root);
    let (_, body) = http("GET", &peer.url("/allocations?filter=all")).expect("allocations");
    let pins = ndjson(&body);
    let of = |t: &str| pins.iter().filter(|p| p["type"] == t).count();
    assert_eq!((of("meta-pin"), of("clusterdag-pin")), (1, 1), "{body}");
    assert!(of("shard-pin") >= 2, "700 kB in 300 KiB shards: {body}");
    assert!(pins.iter().any(|p| p["type"] == "meta-pin" && p["cid"] == other_root.as_str()), "{body}");

    // None of the failed adds left IPFS calls running. (The count is the actor's snapshot,
    // which follows its calls as they end; it once waited for the next message, ~15 s here.)
    let idle = wait_until(Duration::from_secs(60), || {
        let Some((200, actors)) = http("GET", &peer.url("/health/actors")) else { return false };
        let actors: Value = serde_json::from_str(&actors).unwrap_or_default();
        let ipfs = actors.as_array().and_then(|a| a.iter().find(|x| x["name"] == "ipfs_connector")).cloned().unwrap_or_default();
        ipfs["observable"]["calls_in_flight"].as_u64() == Some(0)
    });
    assert!(
        idle,
        "ipfs calls still in flight after the adds: {:?}",
        http("GET", &peer.url("/health/actors"))
    );

    // Every block of the DAG is in the peer's own repo (600 kB in 256 KiB chunks: 3 leaves
    // and the root), read offline and checked against its CID.
    peer.stop();
    let repo = Provider::start_at(&peer.path().join("ipfs")).expect("open repo");
    let held = repo.walk_local(&root);
    repo.shutdown().expect("release repo");
    assert_eq!(held.expect("walk"), 4);
}
