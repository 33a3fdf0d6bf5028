//! The connector against scripted HTTP servers standing in for a misbehaving node: one that never
//! answers, one that stalls mid-pin, one that is down and comes back, one on a unix socket.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cluster_ipfs::{Cid, IpfsConnector, IpfsError, PinMode};
use cluster_ipfs_http::{KuboConnector, KuboSettings};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::Instant;

const CID: &str = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o";
const ID_JSON: &str = r#"{"ID":"12D3KooWKY9htK8vtj3k9RZ2WJV6xL1rpHQcw4zS3Ce2KR9jz278","Addresses":["/ip4/127.0.0.1/tcp/4001"]}"#;

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// What the fake node does with one request.
#[derive(Clone)]
enum Reply {
    /// A complete JSON answer with this status.
    Json(u16, String),
    /// Streams these chunks, each after its delay, then keeps the connection open silently.
    StreamThenStall(Vec<(Duration, String)>),
    /// Streams these chunks, each after its delay, then ends the answer.
    Stream(Vec<(Duration, String)>),
    /// Never answers.
    Silence,
}

type Script = Arc<dyn Fn(&str) -> Reply + Send + Sync>;

/// Request targets ("/api/v0/id?…") the fake node saw, in order.
type Seen = Arc<Mutex<Vec<String>>>;

async fn handle<S: AsyncRead + AsyncWrite + Unpin>(mut conn: S, script: Script, seen: Seen) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match conn.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let target = head
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    assert!(
        head.starts_with("POST "),
        "kubo's api takes POST only: {head}"
    );
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    if conn.read_exact(&mut body).await.is_err() {
        return;
    }
    seen.lock().unwrap().push(target.clone());
    match script(&target) {
        Reply::Json(status, json) => {
            let answer = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{json}",
                json.len()
            );
            let _ = conn.write_all(answer.as_bytes()).await;
            let _ = conn.shutdown().await;
        }
        reply @ (Reply::Stream(_) | Reply::StreamThenStall(_)) => {
            let (chunks, stall) = match reply {
                Reply::Stream(chunks) => (chunks, false),
                Reply::StreamThenStall(chunks) => (chunks, true),
                Reply::Json(..) | Reply::Silence => return,
            };
            let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                        Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
            if conn.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            for (delay, chunk) in chunks {
                tokio::time::sleep(delay).await;
                let framed = format!("{:x}\r\n{chunk}\r\n", chunk.len());
                if conn.write_all(framed.as_bytes()).await.is_err() {
                    return;
                }
            }
            if stall {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            } else {
                let _ = conn.write_all(b"0\r\n\r\n").await;
                let _ = conn.shutdown().await;
            }
        }
        Reply::Silence => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    }
}

fn serve_tcp(listener: TcpListener, script: Script) -> Seen {
    let seen: Seen = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            tokio::spawn(handle(conn, script.clone(), log.clone()));
        }
    });
    seen
}

fn settings(addr: String) -> KuboSettings {
    KuboSettings {
        node_multiaddress: addr,
        request_timeout: Duration::from_millis(500),
        pin_timeout: Duration::from_millis(700),
        unpin_timeout: Duration::from_millis(500),
        repogc_timeout: Duration::from_millis(500),
        unpin_disable: false,
    }
}

async fn fake_node(
    script: impl Fn(&str) -> Reply + Send + Sync + 'static,
) -> (KuboConnector, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = serve_tcp(listener, Arc::new(script));
    let conn = KuboConnector::new(settings(format!("/ip4/127.0.0.1/tcp/{port}"))).unwrap();
    (conn, seen)
}

fn cid() -> Cid {
    CID.parse().unwrap()
}

#[tokio::test]
async fn every_call_on_a_silent_node_fails_within_its_timeout() {
    init_tracing();
    let (conn, seen) = fake_node(|_| Reply::Silence).await;
    let (tx, _rx) = tokio::sync::mpsc::channel(8);
    let started = Instant::now();
    assert_eq!(conn.id().await, Err(IpfsError::Timeout));
    assert_eq!(conn.block_get(&cid()).await, Err(IpfsError::Timeout));
    assert_eq!(conn.repo_stat().await, Err(IpfsError::Timeout));
    assert_eq!(conn.unpin(&cid()).await, Err(IpfsError::Timeout));
    assert_eq!(conn.repo_gc().await, Err(IpfsError::Timeout));
    // the pre-pin status check is an ordinary request, so it times out first
    assert_eq!(
        conn.pin(&cid(), PinMode::Recursive, tx).await,
        Err(IpfsError::Timeout)
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(6 * 500) && elapsed < Duration::from_secs(6),
        "six calls of 0.5 s each took {elapsed:?}"
    );
    assert_eq!(seen.lock().unwrap().len(), 6);
}

#[tokio::test]
async fn pin_watchdog_cancels_only_when_progress_stops() {
    init_tracing();
    let not_pinned =
        format!(r#"{{"Message":"path '{CID}' is not pinned","Code":0,"Type":"error"}}"#);
    let calls = Arc::new(Mutex::new(0));
    let pins = calls.clone();
    let (conn, seen) = fake_node(move |target| {
        if target.starts_with("/api/v0/pin/ls") {
            return Reply::Json(500, not_pinned.clone());
        }
        let step = Duration::from_millis(300);
        let progress: Vec<(Duration, String)> = (1..=4)
            .map(|n| (step, format!("{{\"Progress\":{n}}}\n")))
            .collect();
        let mut pins = pins.lock().unwrap();
        *pins += 1;
        if *pins == 1 {
            // grows for 1.2 s (longer than pin_timeout), then stalls
            Reply::StreamThenStall(progress)
        } else {
            let mut done = progress;
            done.push((
                step,
                format!("{{\"Progress\":4}}\n{{\"Pins\":[\"{CID}\"]}}\n"),
            ));
            Reply::Stream(done)
        }
    })
    .await;

    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let started = Instant::now();
    let outcome = conn.pin(&cid(), PinMode::Recursive, tx).await;
    let elapsed = started.elapsed();
    assert_eq!(outcome, Err(IpfsError::Timeout));
    assert!(
        elapsed >= Duration::from_millis(1900) && elapsed < Duration::from_secs(4),
        "stalled pin should end 0.7 s after its last progress at 1.2 s, took {elapsed:?}"
    );
    let mut last = 0;
    while let Ok(n) = rx.try_recv() {
        last = n;
    }
    assert_eq!(last, 4);

    // progress that keeps coming (with an unchanged value in between) carries a pin past
    // pin_timeout to its end
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    conn.pin(&cid(), PinMode::Recursive, tx)
        .await
        .expect("pin with steady progress");
    let mut values = Vec::new();
    while let Ok(n) = rx.try_recv() {
        values.push(n);
    }
    assert_eq!(values, [1, 2, 3, 4]);
    let seen = seen.lock().unwrap();
    let adds: Vec<&String> = seen
        .iter()
        .filter(|t| t.starts_with("/api/v0/pin/add"))
        .collect();
    assert_eq!(adds.len(), 2);
    assert!(
        adds[0].contains("progress=true") && adds[0].contains("recursive=true"),
        "{adds:?}"
    );
}

#[tokio::test]
async fn unpin_tolerates_not_pinned_and_honours_unpin_disable() {
    init_tracing();
    let (conn, seen) = fake_node(|target| {
        if target.starts_with("/api/v0/pin/rm") {
            Reply::Json(
                500,
                r#"{"Message":"not pinned or pinned indirectly","Code":0,"Type":"error"}"#.into(),
            )
        } else {
            Reply::Json(
                500,
                r#"{"Message":"disk on fire","Code":0,"Type":"error"}"#.into(),
            )
        }
    })
    .await;
    conn.unpin(&cid())
        .await
        .expect("not pinned counts as unpinned");
    match conn.repo_stat().await {
        Err(IpfsError::Backend(msg)) => assert!(msg.contains("disk on fire"), "{msg}"),
        other => panic!("a node error should be a backend error, got {other:?}"),
    }

    let mut disabled = settings(conn.settings().node_multiaddress.clone());
    disabled.unpin_disable = true;
    let disabled = KuboConnector::new(disabled).unwrap();
    let before = seen.lock().unwrap().len();
    assert!(matches!(
        disabled.unpin(&cid()).await,
        Err(IpfsError::Unsupported(_))
    ));
    assert_eq!(
        seen.lock().unwrap().len(),
        before,
        "a disabled unpin must not reach the node"
    );
}

#[tokio::test]
async fn failing_node_is_throttled_to_one_request_per_second_until_it_answers() {
    init_tracing();
    // a port nobody listens on: every request is refused at once
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    // waiting for a release slot counts against the request budget, so give it room
    let mut patient = settings(format!("/ip4/127.0.0.1/tcp/{port}"));
    patient.request_timeout = Duration::from_secs(10);
    let conn = KuboConnector::new(patient).unwrap();
    for _ in 0..11 {
        assert!(matches!(conn.id().await, Err(IpfsError::Backend(_))));
    }
    assert!(
        conn.is_throttled(),
        "{} failures",
        conn.consecutive_failures()
    );

    let started = Instant::now();
    let calls: Vec<_> = (0..3).map(|_| conn.id()).collect();
    for outcome in futures::future::join_all(calls).await {
        assert!(outcome.is_err());
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1900),
        "three throttled requests should be spread over two seconds, took {elapsed:?}"
    );

    // the node comes back on the same port: the first success lifts the throttle
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    serve_tcp(listener, Arc::new(|_| Reply::Json(200, ID_JSON.into())));
    let id = conn.id().await.expect("node is back");
    assert!(
        id.addresses[0].ends_with(&format!("/p2p/{}", id.id)),
        "{id:?}"
    );
    assert!(!conn.is_throttled());
    let started = Instant::now();
    let calls: Vec<_> = (0..5).map(|_| conn.id()).collect();
    for outcome in futures::future::join_all(calls).await {
        outcome.expect("unthrottled call");
    }
    assert!(
        started.elapsed() < Duration::from_millis(800),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn node_on_a_unix_socket() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("api.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let script: Script = Arc::new(|target| {
        if target.starts_with("/api/v0/id") {
            Reply::Json(200, ID_JSON.into())
        } else {
            Reply::Json(
                200,
                r#"{"RepoSize":"1234","StorageMax":10000000000}"#.into(),
            )
        }
    });
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            tokio::spawn(handle(conn, script.clone(), log.clone()));
        }
    });

    let addr = format!("/unix{}", path.display());
    let conn = KuboConnector::new(settings(addr)).unwrap();
    assert!(matches!(conn.node_address(), cluster_ipfs_http::NodeAddress::Unix(p) if *p == path));
    let id = conn.id().await.expect("id over the unix socket");
    assert_eq!(
        id.id,
        "12D3KooWKY9htK8vtj3k9RZ2WJV6xL1rpHQcw4zS3Ce2KR9jz278"
    );
    let stat = conn
        .repo_stat()
        .await
        .expect("repo stat with a string number");
    assert_eq!((stat.repo_size, stat.storage_max), (1234, 10_000_000_000));
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0], "/api/v0/id");
    assert_eq!(seen[1], "/api/v0/repo/stat?size-only=true");
}

#[tokio::test]
async fn calls_after_shutdown_are_refused() {
    let (conn, seen) = fake_node(|_| Reply::Json(200, ID_JSON.into())).await;
    conn.id().await.expect("id");
    conn.shutdown().await.expect("shutdown");
    assert_eq!(conn.id().await, Err(IpfsError::Closed));
    assert_eq!(conn.unpin(&cid()).await, Err(IpfsError::Closed));
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn kubo_style_block_put_answers_are_accepted_as_they_come() {
    init_tracing();
    let dir_block = cluster_ipfs::conformance::dag_pb_directory(&[]);
    let dir_v0 = cluster_ipfs::block_cid(&dir_block, cluster_ipfs::CODEC_DAG_PB).unwrap();
    // Kubo answers cid-codec=dag-pb with a CIDv1, where the cluster expects Kubo-add's CIDv0
    let dir_v1 = Cid::new_v1(cluster_ipfs::CODEC_DAG_PB, *dir_v0.hash()).to_string();
    let hello = bytes::Bytes::from_static(b"hello world\n");
    let raw = cluster_ipfs::block_cid(&hello, cluster_ipfs::CODEC_RAW)
        .unwrap()
        .to_string();
    let (conn, seen) = fake_node(move |target| {
        let key = if target.contains("cid-codec=dag-pb") {
            &dir_v1
        } else {
            &raw
        };
        Reply::Json(200, format!(r#"{{"Key":"{key}","Size":4}}"#))
    })
    .await;

    let cid = conn
        .block_put(dir_block, cluster_ipfs::CODEC_DAG_PB)
        .await
        .expect("dag-pb put");
    assert_eq!(cid, dir_v0);
    for _ in 0..2 {
        let cid = conn
            .block_put(hello.clone(), cluster_ipfs::CODEC_RAW)
            .await
            .expect("raw put");
        assert_eq!(
            cid.to_string(),
            cluster_ipfs::conformance::HELLO_WORLD_RAW_CID
        );
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3, "one request per block, no retries: {seen:?}");
    assert!(
        seen.iter()
            .all(|t| t.contains("cid-codec=") && !t.contains("format=")),
        "{seen:?}"
    );
    assert!(
        seen[1].contains("mhtype=sha2-256") && seen[1].contains("pin=false"),
        "{seen:?}"
    );
}
