//! The client against fake REST servers answering canned bodies.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use cluster_client::{Client, ClientConfig, ClientError, WaitParams};
use cluster_types::{PinMode, PinOptions, TrackerStatus};
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use warp::Filter;
use warp::http::{HeaderMap, Method, StatusCode};
use warp::Reply as _;

const CID: &str = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi";
const CID2: &str = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o";
const PEER: &str = "12D3KooWRBy97UB99e3J6hiPesre1MZeuNQvfan4gBziswrRJsNK";

/// A request as the fake server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: String,
    headers: HeaderMap,
}

/// What the fake server answers.
enum Answer {
    /// A status and a complete body.
    Body(u16, String),
    /// 200 with the body sent in pieces, each after a pause.
    Chunks(Vec<(u64, String)>),
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// Serves `answer` for every request on 127.0.0.1:<random>; returns the multiaddr and log.
async fn fake_server(answer: impl Fn(&Seen) -> Answer + Send + Sync + 'static) -> (String, Log) {
    let log: Log = Arc::default();
    let answer = Arc::new(answer);
    let log2 = log.clone();
    let route = warp::method()
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        .map(move |method: Method, path: warp::path::FullPath, query: String, headers: HeaderMap| {
            let seen = Seen { method: method.to_string(), path: path.as_str().to_string(), query, headers };
            log2.lock().unwrap().push(seen.clone());
            match answer(&seen) {
                Answer::Body(status, body) => {
                    warp::reply::with_status(body, StatusCode::from_u16(status).unwrap()).into_response()
                }
                Answer::Chunks(chunks) => {
                    let s = futures::stream::iter(chunks).then(|(ms, text)| async move {
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                        Ok::<_, Infallible>(Bytes::from(text))
                    });
                    warp::reply::stream(s).into_response()
                }
            }
        });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(warp::serve(route).incoming(listener).run());
    (format!("/ip4/127.0.0.1/tcp/{port}"), log)
}

/// A raw HTTP/1.1 server answering one request with `response` (or nothing when `None`,
/// keeping the connection open). Returns the multiaddr and the raw request text.
async fn raw_server(response: Option<String>) -> (String, Arc<Mutex<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let request = Arc::new(Mutex::new(String::new()));
    let req2 = request.clone();
    tokio::spawn(async move {
        let Ok((mut sock, _)) = listener.accept().await else { return };
        let mut buf = vec![0u8; 8192];
        let mut got = Vec::new();
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = sock.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                return;
            }
            got.extend_from_slice(&buf[..n]);
        }
        *req2.lock().unwrap() = String::from_utf8_lossy(&got).into_owned();
        match response {
            Some(r) => {
                let _ = sock.write_all(r.as_bytes()).await;
                let _ = sock.flush().await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            None => tokio::time::sleep(Duration::from_secs(30)).await,
        }
    });
    (format!("/ip4/127.0.0.1/tcp/{port}"), request)
}

fn client(host: &str) -> Client {
    Client::new(ClientConfig::for_host(host)).unwrap()
}

fn gpi(cid: &str, statuses: &[(&str, &str)]) -> String {
    let peers: Vec<String> = statuses
        .iter()
        .enumerate()
        .map(|(i, (name, st))| {
            format!(
                "\"P{i}\":{{\"peername\":\"{name}\",\"status\":\"{st}\",\"timestamp\":\"2024-05-06T10:00:03Z\",\"error\":\"\",\"attempt_count\":1,\"priority_pin\":false}}"
            )
        })
        .collect();
    format!(
        "{{\"cid\":\"{cid}\",\"name\":\"n\",\"allocations\":null,\"origins\":[],\"created\":\"2024-05-06T10:00:00Z\",\"metadata\":null,\"peer_map\":{{{}}}}}",
        peers.join(",")
    )
}

fn pin_json(cid: &str, rmin: i32) -> String {
    format!(
        "{{\"replication_factor_min\":{rmin},\"replication_factor_max\":{rmin},\"name\":\"x\",\"mode\":\"recursive\",\"shard_size\":0,\"user_allocations\":null,\"expire_at\":\"0001-01-01T00:00:00Z\",\"metadata\":null,\"pin_update\":null,\"origins\":[],\"cid\":\"{cid}\",\"type\":\"pin\",\"allocations\":[\"{PEER}\"],\"max_depth\":-1,\"reference\":null,\"timestamp\":\"2024-05-06T10:00:00Z\"}}"
    )
}

fn id_json(peername: &str) -> String {
    format!(
        "{{\"id\":\"{PEER}\",\"addresses\":[\"/ip4/127.0.0.1/tcp/9096\"],\"cluster_peers\":[\"{PEER}\"],\"cluster_peers_addresses\":null,\"version\":\"1.1.6\",\"commit\":\"\",\"rpc_protocol_version\":\"/ipfscluster/1.0/rpc\",\"error\":\"\",\"ipfs\":{{\"id\":\"QmIpfs\",\"addresses\":null}},\"peername\":\"{peername}\"}}"
    )
}

#[tokio::test]
async fn single_objects_decode() {
    let (host, log) = fake_server(|s| match s.path.as_str() {
        "/id" => Answer::Body(200, id_json("node-a")),
        "/version" => Answer::Body(200, "{\"version\":\"1.1.6\"}".into()),
        _ => Answer::Body(404, "{\"code\":404,\"message\":\"not found\"}".into()),
    })
    .await;
    let c = client(&host);
    let id = c.id().await.unwrap();
    assert_eq!(id.peername, "node-a");
    assert_eq!(id.id, PEER);
    assert_eq!(c.version().await.unwrap().version, "1.1.6");
    assert_eq!(log.lock().unwrap()[0].method, "GET");
}

#[tokio::test]
async fn stream_items_split_across_chunks() {
    let a = id_json("node-a");
    let b = id_json("node-b");
    let (first, second) = a.split_at(a.len() / 2);
    let chunks = vec![(0, first.to_string()), (80, format!("{second}\n")), (80, format!("{b}\n"))];
    let (host, log) = fake_server(move |_| Answer::Chunks(chunks.clone())).await;
    let items = client(&host).peers().await.unwrap().collect_all().await.unwrap();
    let names: Vec<_> = items.iter().map(|i| i.peername.as_str()).collect();
    assert_eq!(names, ["node-a", "node-b"]);
    let seen = log.lock().unwrap()[0].clone();
    assert_eq!(seen.path, "/peers");
    assert_eq!(seen.headers.get("te").unwrap(), "trailers");
}

#[tokio::test]
async fn items_arrive_before_the_stream_ends() {
    let a = id_json("node-a");
    let chunks = vec![(0, format!("{a}\n")), (2000, format!("{a}\n"))];
    let (host, _) = fake_server(move |_| Answer::Chunks(chunks.clone())).await;
    let mut s = client(&host).peers().await.unwrap();
    let first = tokio::time::timeout(Duration::from_millis(1000), s.next()).await;
    assert!(matches!(first, Ok(Some(Ok(_)))), "first item should not wait for the second");
}

#[tokio::test]
async fn no_content_is_an_empty_stream() {
    let (host, log) = fake_server(|_| Answer::Body(204, String::new())).await;
    let c = client(&host);
    assert!(c.status_all("", false).await.unwrap().collect_all().await.unwrap().is_empty());
    assert!(c.alerts().await.unwrap().is_empty());
    assert_eq!(log.lock().unwrap()[0].query, "local=false");
}

#[tokio::test]
async fn error_objects_and_other_failures_are_mapped() {
    let (host, _) = fake_server(|s| match s.path.as_str() {
        p if p.starts_with("/pins/") => {
            Answer::Body(404, "{\"code\":404,\"message\":\"pin is not part of the pinset\"}".into())
        }
        "/pins" => Answer::Body(500, "{\"code\":500,\"message\":\"state unavailable\"}".into()),
        "/id" => Answer::Body(401, "Unauthorized\n".into()),
        _ => Answer::Body(200, "{not json".into()),
    })
    .await;
    let c = client(&host);
    let cid = CID.parse().unwrap();
    match c.status(&cid, false).await {
        Err(ClientError::Api(e)) => {
            assert_eq!((e.code, e.message.as_str()), (404, "pin is not part of the pinset"));
        }
        other => panic!("unexpected {other:?}"),
    }
    match c.status_all("pinned", true).await {
        Err(ClientError::Api(e)) => assert_eq!(e.code, 500),
        other => panic!("unexpected {other:?}"),
    }
    match c.id().await {
        Err(ClientError::Api(e)) => assert_eq!((e.code, e.message.as_str()), (401, "Unauthorized")),
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(c.version().await, Err(ClientError::Decode(_))));
}

#[tokio::test]
async fn stream_error_trailer_comes_after_the_items() {
    let item = gpi(CID, &[("node-a", "pinned")]);
    let body = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTrailer: X-Stream-Error\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{item}\n\r\n0\r\nX-Stream-Error: peer P1 is down\r\n\r\n",
        item.len() + 1
    );
    let (host, request) = raw_server(Some(body)).await;
    let mut s = client(&host).status_all("", false).await.unwrap();
    assert!(matches!(s.next().await, Some(Ok(_))));
    match s.next().await {
        Some(Err(ClientError::Api(e))) => assert_eq!((e.code, e.message.as_str()), (500, "peer P1 is down")),
        other => panic!("unexpected {other:?}"),
    }
    assert!(s.next().await.is_none());
    assert!(request.lock().unwrap().to_lowercase().contains("te: trailers"));
}

#[tokio::test]
async fn empty_trailer_means_success() {
    let item = gpi(CID, &[("node-a", "pinned")]);
    let body = format!(
        "HTTP/1.1 200 OK\r\nTrailer: X-Stream-Error\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{item}\n\r\n0\r\nX-Stream-Error: \r\n\r\n",
        item.len() + 1
    );
    let (host, _) = raw_server(Some(body)).await;
    let items = client(&host).status_all("", false).await.unwrap().collect_all().await.unwrap();
    assert_eq!(items.len(), 1);
}

#[tokio::test]
async fn bad_stream_item_is_a_decode_error() {
    let good = gpi(CID, &[("node-a", "pinned")]);
    let chunks = vec![(0, format!("{good}\n{{\"cid\":42}}\n{good}\n"))];
    let (host, _) = fake_server(move |_| Answer::Chunks(chunks.clone())).await;
    let mut s = client(&host).status_all("", false).await.unwrap();
    assert!(matches!(s.next().await, Some(Ok(_))));
    assert!(matches!(s.next().await, Some(Err(ClientError::Decode(_)))));
    assert!(s.next().await.is_none());
}

#[tokio::test]
async fn refused_connections_are_transport_errors_and_fail_over() {
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = format!("/ip4/127.0.0.1/tcp/{}", closed.local_addr().unwrap().port());
    drop(closed);
    assert!(matches!(client(&dead).id().await, Err(ClientError::Transport(_))));

    let (live, _) = fake_server(|_| Answer::Body(200, "{\"version\":\"1.1.6\"}".into())).await;
    let c = client(&format!("{dead},{live}"));
    assert_eq!(c.version().await.unwrap().version, "1.1.6");
}

#[tokio::test]
async fn request_timeouts() {
    let (host, _) = raw_server(None).await;
    let config = ClientConfig { timeout: Some(Duration::from_millis(300)), ..ClientConfig::for_host(host) };
    let c = Client::new(config).unwrap();
    assert!(matches!(c.id().await, Err(ClientError::Timeout(_))));
}

#[tokio::test]
async fn pin_uses_the_path_endpoint_with_options() {
    let (host, log) = fake_server(|s| match s.method.as_str() {
        "POST" => Answer::Body(200, pin_json(CID, 2)),
        _ => Answer::Body(200, pin_json(CID, 2)),
    })
    .await;
    let c = client(&host);
    let mut o = PinOptions { name: "my pin".into(), mode: PinMode::Direct, ..PinOptions::default() };
    o.metadata.insert("kind".into(), "text".into());
    let pin = c.pin(&format!("/ipfs/{CID}/a b"), &o).await.unwrap();
    assert_eq!(pin.options.replication_factor_min, 2);
    c.unpin(CID2).await.unwrap();
    let log = log.lock().unwrap();
    assert_eq!(log[0].method, "POST");
    assert_eq!(log[0].path, format!("/pins/ipfs/{CID}/a%20b"));
    assert_eq!(
        log[0].query,
        "name=my%20pin&mode=direct&replication-min=0&replication-max=0&meta-kind=text"
    );
    assert_eq!((log[1].method.as_str(), log[1].path.as_str()), ("DELETE", format!("/pins/ipfs/{CID2}").as_str()));
}

#[tokio::test]
async fn invalid_arguments_never_reach_the_server() {
    let (host, log) = fake_server(|_| Answer::Body(200, "{}".into())).await;
    let c = client(&host);
    assert!(matches!(c.pin("XXXinvalid", &PinOptions::default()).await, Err(ClientError::InvalidArgument(_))));
    assert!(matches!(c.unpin("/foo/bar").await, Err(ClientError::InvalidArgument(_))));
    assert!(matches!(c.peer_rm("not-a-peer").await, Err(ClientError::InvalidArgument(_))));
    assert!(log.lock().unwrap().is_empty());
}

#[tokio::test]
async fn status_of_several_cids() {
    let chunks = vec![(0, format!("{}\n{}\n", gpi(CID, &[("a", "pinned")]), gpi(CID2, &[("a", "pinned")])))];
    let (host, log) = fake_server(move |_| Answer::Chunks(chunks.clone())).await;
    let cids = [CID.parse().unwrap(), CID2.parse().unwrap()];
    let items = client(&host).status_cids(&cids, true).await.unwrap().collect_all().await.unwrap();
    assert_eq!(items.len(), 2);
    let seen = log.lock().unwrap()[0].clone();
    assert_eq!((seen.path.as_str(), seen.query.as_str()), ("/pins", format!("local=true&cids={CID},{CID2}").as_str()));
}

#[tokio::test]
async fn lists_as_arrays() {
    let (host, _) = fake_server(|s| match s.path.as_str() {
        "/monitor/metrics" => Answer::Body(200, "[\"ping\",\"freespace\"]".into()),
        "/monitor/metrics/freespace" => Answer::Body(
            200,
            format!("[{{\"name\":\"freespace\",\"peer\":\"{PEER}\",\"value\":\"12000000000\",\"expire\":1,\"valid\":true,\"weight\":12000000000,\"partitionable\":false,\"received_at\":1}}]"),
        ),
        "/health/actors" => Answer::Body(200, "{\"actors\":[]}".into()),
        _ => Answer::Body(200, "[]".into()),
    })
    .await;
    let c = client(&host);
    assert_eq!(c.metric_names().await.unwrap(), ["ping", "freespace"]);
    assert_eq!(c.metrics("freespace").await.unwrap()[0].weight, 12_000_000_000);
    assert!(c.alerts().await.unwrap().is_empty());
    assert_eq!(c.health_actors().await.unwrap()["actors"], serde_json::json!([]));
}

fn wait_params(target: TrackerStatus) -> WaitParams {
    WaitParams { interval: Duration::from_millis(30), ..WaitParams::new(CID.parse().unwrap(), target) }
}

#[tokio::test]
async fn wait_for_polls_until_reached() {
    let calls = Arc::new(Mutex::new(0));
    let calls2 = calls.clone();
    let (host, _) = fake_server(move |_| {
        let mut n = calls2.lock().unwrap();
        *n += 1;
        let st = if *n < 3 { "pinning" } else { "pinned" };
        Answer::Body(200, gpi(CID, &[("a", st), ("b", "remote")]))
    })
    .await;
    let status = client(&host).wait_for(&wait_params(TrackerStatus::Pinned)).await.unwrap();
    assert_eq!(status.peer_map["P0"].status, TrackerStatus::Pinned);
    assert_eq!(*calls.lock().unwrap(), 3);
}

#[tokio::test]
async fn wait_for_limits_errors_and_timeouts() {
    let (host, _) = fake_server(|_| Answer::Body(200, gpi(CID, &[("a", "pinned"), ("b", "pinning")]))).await;
    let c = client(&host);
    let limited = WaitParams { limit: 1, ..wait_params(TrackerStatus::Pinned) };
    assert!(c.wait_for(&limited).await.is_ok());
    let all = WaitParams { timeout: Some(Duration::from_millis(200)), ..wait_params(TrackerStatus::Pinned) };
    assert!(matches!(c.wait_for(&all).await, Err(ClientError::Timeout(_))));

    let (host, _) = fake_server(|_| Answer::Body(200, gpi(CID, &[("a", "pinned"), ("b", "pin_error")]))).await;
    assert!(matches!(client(&host).wait_for(&wait_params(TrackerStatus::Pinned)).await, Err(ClientError::WaitFailed(_))));

    let (host, _) = fake_server(|_| Answer::Body(404, "{\"code\":404,\"message\":\"gone\"}".into())).await;
    assert!(matches!(client(&host).wait_for(&wait_params(TrackerStatus::Unpinned)).await, Err(ClientError::Api(_))));
}

#[test]
fn unsupported_transports_are_refused_up_front() {
    for host in ["/unix/tmp/cluster.sock", "/ip4/127.0.0.1/tcp/9096/p2p/12D3KooWA"] {
        assert!(matches!(Client::new(ClientConfig::for_host(host)), Err(ClientError::Unsupported(_))));
    }
    let https = ClientConfig { https: true, ..ClientConfig::default() };
    assert_eq!(Client::new(https).unwrap().endpoints(), ["https://127.0.0.1:9094"]);
}
