//! The built `ipfs-cluster-ctl` binary against fake REST servers with canned answers.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use tokio::net::TcpListener;
use warp::http::{Method, StatusCode};
use warp::Filter;
use warp::Reply as _;

const CID: &str = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi";
const CID2: &str = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o";
const PEER: &str = "12D3KooWRBy97UB99e3J6hiPesre1MZeuNQvfan4gBziswrRJsNK";
const PEER2: &str = "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N";

/// A request as the fake server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: String,
    authorization: Option<String>,
}

impl Seen {
    fn is(&self, method: &str, path: &str) -> bool {
        self.method == method && self.path == path
    }
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// Serves `answer(request) -> (status, body)`; a body starting with `\n` is streamed line by
/// line (NDJSON). Returns the multiaddr and the request log.
async fn fake_server(answer: impl Fn(&Seen) -> (u16, String) + Send + Sync + 'static) -> (String, Log) {
    let log: Log = Arc::default();
    let answer = Arc::new(answer);
    let log2 = log.clone();
    let route = warp::method()
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::optional::<String>("authorization"))
        .map(move |method: Method, path: warp::path::FullPath, query: String, authorization: Option<String>| {
            let seen = Seen { method: method.to_string(), path: path.as_str().to_string(), query, authorization };
            log2.lock().unwrap().push(seen.clone());
            let (status, body) = answer(&seen);
            if let Some(lines) = body.strip_prefix('\n') {
                let chunks: Vec<String> = lines.lines().map(|l| format!("{l}\n")).collect();
                let s = futures::stream::iter(chunks).then(|c| async move {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    Ok::<_, Infallible>(Bytes::from(c))
                });
                warp::reply::stream(s).into_response()
            } else {
                warp::reply::with_status(body, StatusCode::from_u16(status).unwrap()).into_response()
            }
        });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(warp::serve(route).incoming(listener).run());
    (format!("/ip4/127.0.0.1/tcp/{port}"), log)
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn ctl(args: &[&str]) -> Run {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_ipfs-cluster-ctl"))
        .args(args)
        .env_remove("CLUSTER_CREDENTIALS")
        .output()
        .await
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Asserts a failure with `code` and exactly one line on stderr.
fn assert_fails(r: &Run, code: i32) {
    assert_eq!(r.code, code, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "stderr should be one line: {:?}", r.stderr);
    assert!(r.stderr.starts_with("error"), "{:?}", r.stderr);
}

fn gpi(cid: &str, status: &str) -> String {
    format!(
        "{{\"cid\":\"{cid}\",\"name\":\"dataset-1\",\"allocations\":[\"{PEER}\"],\"origins\":[],\"created\":\"2024-05-06T10:00:00Z\",\"metadata\":null,\"peer_map\":{{\"{PEER}\":{{\"peername\":\"node-a\",\"ipfs_peer_id\":\"QmIpfsA\",\"status\":\"{status}\",\"timestamp\":\"2024-05-06T10:00:03Z\",\"error\":\"\",\"attempt_count\":1,\"priority_pin\":true}},\"{PEER2}\":{{\"peername\":\"node-c\",\"status\":\"remote\",\"timestamp\":\"2024-05-06T10:05:00Z\",\"error\":\"\",\"attempt_count\":0,\"priority_pin\":false}}}}}}"
    )
}

fn pin_json(cid: &str, rf: i32, mode: &str) -> String {
    let depth = if mode == "direct" { 0 } else { -1 };
    format!(
        "{{\"replication_factor_min\":{rf},\"replication_factor_max\":{rf},\"name\":\"dataset-1\",\"mode\":\"{mode}\",\"shard_size\":0,\"user_allocations\":null,\"expire_at\":\"0001-01-01T00:00:00Z\",\"metadata\":{{\"kind\":\"text\"}},\"pin_update\":null,\"origins\":[],\"cid\":\"{cid}\",\"type\":\"pin\",\"allocations\":[\"{PEER}\"],\"max_depth\":{depth},\"reference\":null,\"timestamp\":\"2024-05-06T10:00:00Z\"}}"
    )
}

fn id_json() -> String {
    format!(
        "{{\"id\":\"{PEER}\",\"addresses\":[\"/ip4/127.0.0.1/tcp/9096/p2p/{PEER}\",\"/ip4/10.0.0.1/tcp/9096/p2p/{PEER}\"],\"cluster_peers\":[\"{PEER}\",\"{PEER2}\"],\"cluster_peers_addresses\":null,\"version\":\"1.1.6\",\"commit\":\"abc\",\"rpc_protocol_version\":\"/ipfscluster/1.0/rpc\",\"error\":\"\",\"ipfs\":{{\"id\":\"QmIpfsA\",\"addresses\":[\"/ip4/127.0.0.1/tcp/4001\"]}},\"peername\":\"node-a\"}}"
    )
}

fn status_text(cid: &str, status: &str) -> String {
    format!(
        "{cid} | dataset-1:\n    > node-a               : {status} | 2024-05-06T10:00:03Z | Attempts: 1 | Priority: true\n    > node-c               : REMOTE | 2024-05-06T10:05:00Z | Attempts: 0 | Priority: false\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pin_add_prints_the_status() {
    let (host, log) = fake_server(|s| match s.method.as_str() {
        "POST" => (200, pin_json(CID, 2, "recursive")),
        _ => (200, gpi(CID, "pinned")),
    })
    .await;
    let r = ctl(&["--host", &host, "pin", "add", "-n", "dataset-1", "--rmin", "1", "--rmax", "2", "--metadata", "kind=text", CID]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, status_text(CID, "PINNED"));
    let log = log.lock().unwrap();
    assert!(log[0].is("POST", &format!("/pins/ipfs/{CID}")), "{log:?}");
    assert_eq!(log[0].query, "name=dataset-1&mode=recursive&replication-min=1&replication-max=2&meta-kind=text");
    assert!(log[1].is("GET", &format!("/pins/{CID}")), "{log:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pin_add_no_status_prints_the_pin() {
    let (host, log) = fake_server(|_| (200, pin_json(CID, -1, "direct"))).await;
    let sub = format!("/ipfs/{CID}/a/b");
    let r = ctl(&["--host", &host, "pin", "add", "--ns", "-r", "-1", "--mode", "direct", &sub]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        format!("{CID} | dataset-1 | PIN-DIRECT | Repl. Factor: -1 | Allocations: [everywhere] | Direct | Metadata: yes | Exp: ∞ | Added: 2024-05-06 10:00:00\n")
    );
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 1);
    assert!(log[0].is("POST", &format!("/pins/ipfs/{CID}/a/b")));
    assert!(log[0].query.contains("mode=direct&replication-min=-1&replication-max=-1"), "{}", log[0].query);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pin_rm_and_update() {
    let (host, log) = fake_server(|s| match s.method.as_str() {
        "GET" => (200, gpi(CID2, "unpinned")),
        _ => (200, pin_json(CID2, 1, "recursive")),
    })
    .await;
    let r = ctl(&["--host", &host, "pin", "rm", CID2]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, status_text(CID2, "UNPINNED"));
    let r = ctl(&["--host", &host, "pin", "update", "--no-status", CID, CID2]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let log = log.lock().unwrap();
    let update = log.iter().rfind(|s| s.method == "POST").unwrap();
    assert_eq!(update.path, format!("/pins/ipfs/{CID2}"));
    assert!(update.query.contains(&format!("pin-update={CID}")), "{}", update.query);
    assert!(log.iter().any(|s| s.is("DELETE", &format!("/pins/ipfs/{CID2}"))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_reaches_the_target_or_times_out() {
    let (host, _) = fake_server(|s| match s.method.as_str() {
        "POST" => (200, pin_json(CID, 1, "recursive")),
        _ => (200, gpi(CID, "pinned")),
    })
    .await;
    let r = ctl(&["--host", &host, "pin", "add", "--wait", CID]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, status_text(CID, "PINNED"));

    let (host, _) = fake_server(|s| match s.method.as_str() {
        "POST" => (200, pin_json(CID, 0, "recursive")),
        _ => (200, gpi(CID, "pinning")),
    })
    .await;
    let r = ctl(&["--host", &host, "pin", "add", "-w", "--wt", "1500ms", CID]).await;
    assert_fails(&r, 62);
    assert!(r.stderr.contains("waiting for pin status"), "{}", r.stderr);

    let (host, _) = fake_server(|s| match s.method.as_str() {
        "POST" => (200, pin_json(CID, 0, "recursive")),
        _ => (200, gpi(CID, "pin_error")),
    })
    .await;
    let r = ctl(&["--host", &host, "pin", "add", "--wait", CID]).await;
    assert_fails(&r, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpin_wait_counts_every_peer() {
    let both_unpinned = gpi(CID2, "unpinned").replace("\"remote\"", "\"unpinned\"");
    let (host, _) = fake_server(move |s| match s.method.as_str() {
        "GET" => (200, both_unpinned.clone()),
        _ => (200, pin_json(CID2, 1, "recursive")),
    })
    .await;
    let r = ctl(&["--host", &host, "pin", "rm", "--wait", "--wait-timeout", "5s", CID2]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("    > node-c               : UNPINNED |"), "{}", r.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_output_keeps_the_original_field_names() {
    let streamed = format!("\n{}\n{}\n", gpi(CID, "pinned"), gpi(CID2, "pin_error"));
    let (host, _) = fake_server(move |s| match s.path.as_str() {
        "/id" => (200, id_json()),
        _ => (200, streamed.clone()),
    })
    .await;
    let r = ctl(&["--host", &host, "--enc", "json", "id"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("{\n    \"id\": "), "{}", r.stdout);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    for key in ["id", "addresses", "cluster_peers", "cluster_peers_addresses", "version", "commit", "rpc_protocol_version", "error", "ipfs", "peername"] {
        assert!(v.get(key).is_some(), "missing {key} in {v}");
    }

    let r = ctl(&["--host", &host, "-enc=json", "status"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let objects: Vec<serde_json::Value> =
        serde_json::Deserializer::from_str(&r.stdout).into_iter().collect::<Result<_, _>>().unwrap();
    assert_eq!(objects.len(), 2);
    assert_eq!(objects[1]["peer_map"][PEER]["status"], "pin_error");
    assert_eq!(objects[0]["peer_map"][PEER]["attempt_count"], 1);
    assert!(objects[0].get("created").is_some() && objects[0].get("allocations").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_outputs() {
    let expire = chrono::Utc::now().timestamp_nanos_opt().unwrap() + 25_500_000_000;
    let metric = format!(
        "[{{\"name\":\"freespace\",\"peer\":\"{PEER}\",\"value\":\"12000000000\",\"expire\":{expire},\"valid\":true,\"weight\":12000000000,\"partitionable\":false,\"received_at\":1}}]"
    );
    let gc = format!(
        "{{\"peer_map\":{{\"{PEER}\":{{\"peer\":\"{PEER}\",\"peername\":\"node-a\",\"keys\":[{{\"key\":\"{CID}\"}}]}}}}}}"
    );
    let peers = format!("\n{}\n", id_json());
    let (host, _) = fake_server(move |s| match s.path.as_str() {
        "/monitor/metrics/freespace" => (200, metric.clone()),
        "/monitor/metrics" => (200, "[\"freespace\",\"ping\"]".into()),
        "/ipfs/gc" => (200, gc.clone()),
        "/peers" => (200, peers.clone()),
        "/version" => (200, "{\"version\":\"1.1.6\"}".into()),
        _ => (404, "{\"code\":404,\"message\":\"not found\"}".into()),
    })
    .await;
    let r = ctl(&["--host", &host, "health", "metrics", "freespace"]).await;
    assert_eq!(r.stdout, format!("{PEER} | freespace: 12 GB | Expires in: 25 seconds from now\n"), "{}", r.stderr);
    let r = ctl(&["--host", &host, "health", "metrics"]).await;
    assert_eq!(r.stdout, "freespace\nping\n");
    let r = ctl(&["--host", &host, "ipfs", "gc"]).await;
    assert_eq!(r.stdout, format!("node-a         \n  > CIDs:\n    - {CID}\n"));
    let r = ctl(&["--host", &host, "version"]).await;
    assert_eq!(r.stdout, "1.1.6\n");
    let r = ctl(&["--host", &host, "peers", "ls"]).await;
    assert_eq!(
        r.stdout,
        format!(
            "{PEER} | node-a | Sees 1 other peers\n  > Addresses:\n    - /ip4/10.0.0.1/tcp/9096/p2p/{PEER}\n    - /ip4/127.0.0.1/tcp/9096/p2p/{PEER}\n  > IPFS: QmIpfsA\n    - /ip4/127.0.0.1/tcp/4001\n"
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_of_several_cids_uses_the_cids_query() {
    let streamed = format!("\n{}\n{}\n", gpi(CID, "pinned"), gpi(CID2, "pinned"));
    let (host, log) = fake_server(move |_| (200, streamed.clone())).await;
    let r = ctl(&["--host", &host, "status", "--local", CID, CID2]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, format!("{}{}", status_text(CID, "PINNED"), status_text(CID2, "PINNED")));
    let seen = log.lock().unwrap()[0].clone();
    assert!(seen.is("GET", "/pins"));
    assert_eq!(seen.query, format!("local=true&cids={CID},{CID2}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_exit_2_with_one_line() {
    let (host, _) = fake_server(|_| (404, "{\"code\":404,\"message\":\"pin is not part of the pinset\"}".into())).await;
    let r = ctl(&["--host", &host, "status", CID]).await;
    assert_fails(&r, 2);
    assert!(r.stderr.contains("pin is not part of the pinset"), "{}", r.stderr);
    assert!(r.stdout.is_empty());

    let r = ctl(&["--host", &host, "--enc", "json", "pin", "ls", CID]).await;
    assert_fails(&r, 2);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v, serde_json::json!({"code": 404, "message": "pin is not part of the pinset"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_status_filter_is_left_to_the_server() {
    let (host, log) = fake_server(|_| (400, "{\"code\":400,\"message\":\"unknown tracker status 'bogus'\"}".into())).await;
    let r = ctl(&["--host", &host, "status", "--filter", "bogus"]).await;
    assert_fails(&r, 2);
    assert_eq!(log.lock().unwrap()[0].query, "local=false&filter=bogus");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_host_exits_1() {
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = format!("/ip4/127.0.0.1/tcp/{}", closed.local_addr().unwrap().port());
    drop(closed);
    let r = ctl(&["--host", &host, "id"]).await;
    assert_fails(&r, 1);
    let r = ctl(&["--host", "/ip4/nope/tcp/1", "id"]).await;
    assert_fails(&r, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_timeout_exits_62() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = format!("/ip4/127.0.0.1/tcp/{}", listener.local_addr().unwrap().port());
    // Accept and never answer.
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    let started = std::time::Instant::now();
    let r = ctl(&["--host", &host, "--timeout", "1", "id"]).await;
    assert_fails(&r, 62);
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_arguments_exit_1_before_any_request() {
    let (host, log) = fake_server(|_| (200, "{}".into())).await;
    let cases: Vec<Vec<&str>> = vec![
        vec!["pin", "add", "XXXinvalid"],
        vec!["pin", "add", "/foo/bar"],
        vec!["pin", "add", "--allocations", "nope", CID],
        vec!["pin", "add", "--metadata", "novalue", CID],
        vec!["pin", "add", "--expire-in", "5", CID],
        vec!["pin", "add", "--wait-timeout", "soon", CID],
        vec!["pin", "rm", "XXXinvalid"],
        vec!["pin", "update", "XXXinvalid", CID],
        vec!["pin", "ls", "XXXinvalid"],
        vec!["status", CID, "XXXinvalid"],
        vec!["recover", "XXXinvalid"],
        vec!["peers", "rm", "XXXinvalid"],
    ];
    for case in cases {
        let mut args = vec!["--host", host.as_str()];
        args.extend(case.iter().copied());
        let r = ctl(&args).await;
        assert_fails(&r, 1);
    }
    assert!(log.lock().unwrap().is_empty(), "{:?}", log.lock().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_exit_1() {
    for args in [
        vec!["peers", "add"],
        vec!["pin", "add"],
        vec!["--enc", "xml", "id"],
        vec!["add", "file.txt"],
        vec!["health", "graph"],
        vec!["health", "bandwidth"],
        vec!["--nope", "id"],
    ] {
        let r = ctl(&args).await;
        assert_fails(&r, 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_and_version() {
    let r = ctl(&["--help"]).await;
    assert_eq!(r.code, 0);
    for cmd in ["id", "peers", "pin", "status", "recover", "version", "health", "ipfs", "help"] {
        assert!(r.stdout.lines().any(|l| l.trim_start().starts_with(&format!("{cmd} "))), "{cmd} missing:\n{}", r.stdout);
    }
    assert!(!r.stdout.lines().any(|l| l.trim_start().starts_with("commands ")), "commands is hidden");
    for short in [vec!["-h"], vec!["help"], vec!["h"], vec![]] {
        let r = ctl(&short).await;
        assert_eq!(r.code, 0);
        assert!(r.stdout.contains("Usage: ipfs-cluster-ctl"), "{short:?}: {}", r.stdout);
    }
    let r = ctl(&["--version"]).await;
    assert_eq!((r.code, r.stdout.as_str()), (0, "ipfs-cluster-ctl version 1.1.6\n"));
    let r = ctl(&["help", "pin", "add"]).await;
    assert!(r.stdout.contains("Usage: ipfs-cluster-ctl pin add"), "{}", r.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_lists_the_tree_and_help_fits_120_columns() {
    let r = ctl(&["commands"]).await;
    assert_eq!(r.code, 0);
    let expected = [
        "id", "peers", "peers ls", "peers rm", "add", "pin", "pin add", "pin rm", "pin update", "pin ls", "status", "recover",
        "version", "health", "health metrics", "health alerts", "health graph", "ipfs", "ipfs gc", "commands", "help",
    ];
    let want: String = expected.iter().map(|c| format!("ipfs-cluster-ctl {c}\n")).collect();
    assert_eq!(r.stdout, want);
    for cmd in expected {
        let mut args: Vec<&str> = cmd.split(' ').collect();
        args.push("--help");
        let r = ctl(&args).await;
        assert_eq!(r.code, 0, "{cmd}: {}", r.stderr);
        for line in r.stdout.lines() {
            assert!(line.chars().count() <= 120, "{cmd} --help has a long line: {line}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_implies_https_unless_forced() {
    let (host, log) = fake_server(|_| (200, "{\"version\":\"1.1.6\"}".into())).await;
    // The credentials switch the client to HTTPS, which this plain server cannot speak: the
    // request fails before any credential is sent in clear.
    let r = ctl(&["--host", &host, "--timeout", "20", "--basic-auth", "testuser:testpass", "version"]).await;
    assert_fails(&r, 1);
    assert!(log.lock().unwrap().is_empty(), "a request reached the plain server");
    let r = ctl(&["--host", &host, "--basic-auth", "testuser:testpass", "--force-http", "version"]).await;
    assert_eq!((r.code, r.stdout.as_str()), (0, "1.1.6\n"), "{}", r.stderr);
    // dGVzdHVzZXI6dGVzdHBhc3M= is base64("testuser:testpass").
    assert_eq!(log.lock().unwrap()[0].authorization.as_deref(), Some("Basic dGVzdHVzZXI6dGVzdHBhc3M="));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupt_exits_125() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = format!("/ip4/127.0.0.1/tcp/{}", listener.local_addr().unwrap().port());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ipfs-cluster-ctl"))
        .args(["--host", &host, "id"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let pid = child.id().unwrap().to_string();
    let killed = tokio::process::Command::new("kill").args(["-INT", &pid]).status().await.unwrap();
    assert!(killed.success());
    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output()).await.unwrap().unwrap();
    assert_eq!(out.status.code(), Some(125), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "error: canceled\n");
}
