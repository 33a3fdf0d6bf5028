//! `add` end to end with real daemons: a 1 GiB file (`ADD_TEST_BYTES` sets another size) to a
//! 3-peer cluster (rf 2) streamed to both allocations, and bad uploads answered with clear errors and nothing left behind.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use cluster_tests::multi::TestCluster;
use cluster_tests::{http, kubo_default_cid, ndjson, wait_until, write_random_file, Peer, Provider};
use serde_json::Value;

fn global_status(peer: &Peer, cid: &str) -> Option<Value> {
    let (200, body) = http("GET", &peer.url(&format!("/pins/{cid}")))? else { return None };
    serde_json::from_str(&body).ok()
}

#[test]
fn large_file_to_three_peers_lands_on_both_allocations() {
    let mut cluster = TestCluster::start(3, |_, cfg| {
        cfg["cluster"]["replication_factor_min"] = 2.into();
        cfg["cluster"]["replication_factor_max"] = 2.into();
    })
    .expect("cluster");
    cluster.wait_peerset(&[0, 1, 2], 3, Duration::from_secs(60)).expect("3 peers");
    // Allocation needs every peer's metrics.
    cluster.wait_freespace_metrics(0, 3, Duration::from_secs(30)).expect("allocation metrics");

    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("big.bin");
    // About two minutes with debug daemons on 2 cores; ADD_TEST_BYTES makes it quicker.
    let size: u64 = std::env::var("ADD_TEST_BYTES").ok().and_then(|s| s.parse().ok()).unwrap_or(1 << 30);
    write_random_file(&file, size, 0x5eed_1234);
    let expected = kubo_default_cid(&file);

    let started = Instant::now();
    let out = cluster.peers[0].ctl(&["add", "--quieter", file.to_str().unwrap()]);
    let took = started.elapsed();
    assert!(out.status.success(), "add failed: {}", String::from_utf8_lossy(&out.stderr));
    let cid = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(cid, expected, "root differs from Kubo's");
    eprintln!("added {size} bytes in {took:?} ({:.1} MB/s)", size as f64 / took.as_secs_f64() / 1e6);

    // Pinned right away on both allocations: the blocks were streamed there during the add.
    let (status, body) = http("GET", &cluster.peers[0].url(&format!("/allocations/{cid}"))).expect("pin");
    assert_eq!(status, 200, "{body}");
    let pin: Value = serde_json::from_str(&body).expect("pin json");
    let allocations: Vec<String> =
        pin["allocations"].as_array().expect("allocations").iter().map(|v| v.as_str().unwrap().to_string()).collect();
    assert_eq!(allocations.len(), 2, "{pin}");
    let pinned = wait_until(Duration::from_secs(60), || {
        global_status(&cluster.peers[2], &cid).is_some_and(|g| {
            let map = g["peer_map"].as_object().cloned().unwrap_or_default();
            allocations.iter().all(|a| map.get(a).is_some_and(|p| p["status"] == "pinned"))
                && map.values().filter(|p| p["status"] == "remote").count() == 1
        })
    });
    assert!(pinned, "not pinned on both allocations: {:?}", global_status(&cluster.peers[2], &cid));
    let ctl_status = cluster.peers[1].ctl(&["status", &cid]);
    assert_eq!(String::from_utf8_lossy(&ctl_status.stdout).matches("PINNED").count(), 2);

    // Each allocated peer's own IPFS holds every block (read offline from its repo, each
    // block checked against its CID, so the content is byte-identical to what was added).
    let mut counts = Vec::new();
    for a in &allocations {
        let i = cluster.ids.iter().position(|id| id == a).expect("allocated peer is a member");
        cluster.peers[i].stop();
        let node = Provider::start_at(&cluster.peers[i].path().join("ipfs")).expect("open repo");
        let held = node.walk_local(&cid);
        node.shutdown().expect("release repo");
        counts.push(held.unwrap_or_else(|e| panic!("peer {i}: {e}")));
    }
    let leaves = size.div_ceil(256 * 1024) as usize;
    assert!(counts.iter().all(|&n| n == counts[0] && n > leaves), "blocks held: {counts:?}");
}

/// A raw HTTP/1.1 request; returns the whole answer (status line, headers, body) as text.
fn raw_request(port: u16, head: &str, body: &[u8], close_early: bool) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    s.write_all(head.as_bytes()).expect("head");
    s.write_all(body).expect("body");
    if close_early {
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

fn multipart_head(port: u16, query: &str, len: usize) -> String {
    format!(
        "POST /add{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: multipart/form-data; boundary=BB\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
    )
}

fn file_part(name: &str, data: &[u8]) -> Vec<u8> {
    let mut b = format!("--BB\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n").into_bytes();
    b.extend_from_slice(data);
    b
}

#[test]
fn bad_uploads_are_refused_and_leave_nothing_behind() {
    let peer = Peer::start_new(&[]).expect("peer");
    let port = peer.rest_port;
    let mut whole = file_part("f.txt", b"some content");
    whole.extend_from_slice(b"\r\n--BB--\r\n");
    let cases: Vec<(&str, String, Vec<u8>, &str)> = vec![
        ("no file", String::new(), b"--BB--\r\n".to_vec(), "no file"),
        ("unknown chunker", "?chunker=size-x".into(), whole.clone(), "chunker"),
        ("unsupported hash", "?hash=md5".into(), whole.clone(), "hash"),
        ("cid v0 with another hash", "?hash=sha3-256&cid-version=0".into(), whole.clone(), "cid"),
        ("not multipart", String::new(), b"{}".to_vec(), "multipart"),
        ("car import of a file that is no car", "?format=car".into(), whole.clone(), "not a valid car"),
        ("sharding without pinning", "?shard=true&no-pin=true".into(), whole.clone(), "no-pin"),
    ];
    for (what, query, body, needle) in &cases {
        let head = if *what == "not multipart" {
            "POST /add HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n".to_string()
        } else {
            multipart_head(port, query, body.len())
        };
        let answer = raw_request(port, &head, body, false);
        assert!(answer.starts_with("HTTP/1.1 400"), "{what}: {answer}");
        assert!(answer.to_lowercase().contains(needle), "{what}: message should mention '{needle}': {answer}");
    }

    // Cut mid-stream: the client promises more than it sends and goes away.
    let big = vec![7u8; 3 << 20];
    let part = file_part("cut.bin", &big);
    let head = multipart_head(port, "", part.len() + 1000);
    let answer = raw_request(port, &head, &part, true);
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 400"), "cut upload: {answer}");
    // Cut inside the body of a well-formed length: the closing boundary is missing.
    let head = multipart_head(port, "", part.len());
    let answer = raw_request(port, &head, &part, false);
    assert!(answer.starts_with("HTTP/1.1 400") && answer.contains("closing boundary"), "truncated body: {answer}");
    // A sharded add whose client goes away after shards were pinned: they are unpinned again.
    let varied = file_part("cut.bin", &cluster_tests::random_bytes(3 << 20));
    let head = multipart_head(port, "?shard=true&shard-size=1048576&name=cut", varied.len() + 1000);
    let mut conn = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    conn.write_all(head.as_bytes()).and_then(|()| conn.write_all(&varied)).expect("send");
    let shards_pinned = wait_until(Duration::from_secs(30), || {
        http("GET", &peer.url("/allocations?filter=shard-pin")).is_some_and(|(s, b)| s == 200 && ndjson(&b).len() >= 2)
    });
    assert!(shards_pinned, "the sharded upload pinned no shard");
    drop(conn);
    let rolled_back = wait_until(Duration::from_secs(30), || {
        http("GET", &peer.url("/allocations")).is_some_and(|(s, b)| s == 204 || ndjson(&b).is_empty())
    });
    assert!(rolled_back, "shards of the abandoned add left behind: {:?}", http("GET", &peer.url("/allocations")));

    // Nothing was pinned by any of them, and the peer still adds fine afterwards.
    let (status, body) = http("GET", &peer.url("/allocations")).expect("allocations");
    assert!(status == 204 || ndjson(&body).is_empty(), "pins left behind: {body}");
    let answer = raw_request(port, &multipart_head(port, "", whole.len()), &whole, false);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"name\":\"f.txt\""), "{answer}");
    let (_, body) = http("GET", &peer.url("/allocations")).expect("allocations");
    assert_eq!(ndjson(&body).len(), 1);
    // progress=true: a line without a CID every 256 KiB of the file, then the file's own line.
    let mut upload = file_part("p.bin", &cluster_tests::random_bytes(1 << 20));
    upload.extend_from_slice(b"\r\n--BB--\r\n");
    let answer = raw_request(port, &multipart_head(port, "?progress=true", upload.len()), &upload, false);
    let lines: Vec<Value> = answer.lines().filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok()).filter(Value::is_object).collect();
    let (progress, entries): (Vec<&Value>, Vec<&Value>) = lines.iter().partition(|v| v["cid"].is_null());
    let read: Vec<u64> = progress.iter().map(|v| v["bytes"].as_u64().unwrap_or(0)).collect();
    assert_eq!(read, [1u64, 2, 3, 4].map(|n| n << 18), "{answer}");
    assert!(progress.iter().all(|v| v["name"] == "p.bin"), "{answer}");
    assert_eq!(entries.len(), 1, "{answer}");
    assert!(entries[0]["name"] == "p.bin" && entries[0]["cid"].is_string(), "{answer}");
    // The add tasks of the failed uploads are gone: no IPFS calls are left running.
    let idle = wait_until(Duration::from_secs(10), || {
        let Some((200, actors)) = http("GET", &peer.url("/health/actors")) else { return false };
        let actors: Value = serde_json::from_str(&actors).unwrap_or_default();
        let ipfs = actors.as_array().and_then(|a| a.iter().find(|x| x["name"] == "ipfs_connector")).cloned().unwrap_or_default();
        ipfs["observable"]["calls_in_flight"].as_u64() == Some(0)
    });
    assert!(idle, "ipfs calls still in flight after the failed adds");
}
