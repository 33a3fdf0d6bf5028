//! The REST and metrics servers over real sockets, against a fake cluster with canned answers.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use cluster_api::{ApiStream, ClusterApi, RestApiConfig, serve_metrics, serve_rest};
use cluster_types::error::NOT_FOUND_MESSAGE;
use cluster_types::{
    Alert, ApiError, Cid, ErrorCode, GlobalPinInfo, GlobalRepoGc, ID, Metric, Pin, PinInfoShort,
    PinMode, PinOptions, PinTypeFilter, RepoGc, Timestamp, TrackerStatus, TrackerStatusFilter,
    Version,
};
use futures::{StreamExt, stream};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

const CID1: &str = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi";
const CID2: &str = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG";
const CID3: &str = "bafkqaaa";

/// How the fake answers `status_all`.
#[derive(Clone, Copy)]
enum StatusMode {
    Items(usize),
    ErrorFirst,
    ErrorAfter(usize),
    /// Many large items, counting how many were produced.
    Large(usize),
}

struct Fake {
    mode: StatusMode,
    produced: Arc<AtomicUsize>,
    calls: Mutex<Vec<String>>,
    last_opts: Mutex<Option<PinOptions>>,
}

impl Fake {
    fn new(mode: StatusMode) -> Arc<Self> {
        Arc::new(Fake {
            mode,
            produced: Arc::new(AtomicUsize::new(0)),
            calls: Mutex::new(Vec::new()),
            last_opts: Mutex::new(None),
        })
    }

    fn record(&self, call: String) {
        self.calls.lock().unwrap().push(call);
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

fn cid(s: &str) -> Cid {
    s.parse().unwrap()
}

fn gpi(c: Cid, name: String, status: TrackerStatus) -> GlobalPinInfo {
    GlobalPinInfo {
        cid: c,
        name,
        allocations: vec!["12D3KooWPeerA".into()],
        origins: vec![],
        created: Timestamp::zero(),
        metadata: BTreeMap::new(),
        peer_map: BTreeMap::from([(
            "12D3KooWPeerA".to_string(),
            PinInfoShort {
                peername: "a".into(),
                ipfs_peer_id: String::new(),
                ipfs_peer_addresses: vec![],
                status,
                timestamp: Timestamp::zero(),
                error: String::new(),
                attempt_count: 0,
                priority_pin: false,
            },
        )]),
    }
}

fn peer_id(n: usize) -> ID {
    ID {
        id: format!("12D3KooWPeer{n}"),
        peername: format!("peer-{n}"),
        version: "1.1.6".into(),
        ..ID::default()
    }
}

#[async_trait]
impl ClusterApi for Fake {
    async fn id(&self) -> ID {
        peer_id(0)
    }

    async fn version(&self) -> Version {
        Version {
            version: "1.1.6".into(),
        }
    }

    fn peers(&self) -> ApiStream<ID> {
        stream::iter((0..2).map(|i| Ok(peer_id(i)))).boxed()
    }

    async fn peer_add(&self, peer: &str) -> Result<ID, ApiError> {
        self.record(format!("peer_add {peer}"));
        Ok(peer_id(0))
    }

    async fn peer_rm(&self, peer: &str) -> Result<(), ApiError> {
        self.record(format!("peer_rm {peer}"));
        Ok(())
    }

    async fn pin(&self, c: Cid, opts: PinOptions) -> Result<Pin, ApiError> {
        self.record(format!("pin {c} {}", opts.mode));
        *self.last_opts.lock().unwrap() = Some(opts.clone());
        Ok(Pin::with_options(c, opts))
    }

    async fn pin_path(&self, path: &str, opts: PinOptions) -> Result<Pin, ApiError> {
        self.record(format!("pin_path {path} {}", opts.mode));
        Ok(Pin::with_options(cid(CID1), opts))
    }

    async fn unpin(&self, c: Cid) -> Result<Pin, ApiError> {
        self.record(format!("unpin {c}"));
        if c == cid(CID3) {
            return Err(ApiError::not_found(NOT_FOUND_MESSAGE));
        }
        Ok(Pin::new(c))
    }

    async fn unpin_path(&self, path: &str) -> Result<Pin, ApiError> {
        self.record(format!("unpin_path {path}"));
        Ok(Pin::new(cid(CID1)))
    }

    fn allocations(&self, filter: PinTypeFilter) -> ApiStream<Pin> {
        self.record(format!("allocations {filter:?}"));
        stream::iter(vec![Ok(Pin::new(cid(CID1))), Ok(Pin::new(cid(CID2)))]).boxed()
    }

    async fn allocation(&self, c: Cid) -> Result<Pin, ApiError> {
        if c == cid(CID1) {
            Ok(Pin::new(c))
        } else {
            Err(ApiError::not_found(NOT_FOUND_MESSAGE))
        }
    }

    fn status_all(&self, filter: TrackerStatusFilter, local: bool) -> ApiStream<GlobalPinInfo> {
        self.record(format!("status_all {filter:?} {local}"));
        let item = |i: usize| gpi(cid(CID1), format!("item-{i}"), TrackerStatus::Pinned);
        match self.mode {
            StatusMode::Items(n) => stream::iter((0..n).map(move |i| Ok(item(i)))).boxed(),
            StatusMode::ErrorFirst => stream::iter(vec![Err(ApiError::new(
                ErrorCode::Unavailable,
                "ipfs is down",
            ))])
            .boxed(),
            StatusMode::ErrorAfter(n) => stream::iter((0..n).map(move |i| Ok(item(i))))
                .chain(stream::iter(vec![Err(ApiError::internal(
                    "peer lost mid-stream",
                ))]))
                .boxed(),
            StatusMode::Large(n) => {
                let produced = self.produced.clone();
                let padding = "x".repeat(700);
                stream::iter(0..n)
                    .map(move |i| {
                        produced.fetch_add(1, Ordering::SeqCst);
                        Ok(gpi(
                            cid(CID1),
                            format!("{i}-{padding}"),
                            TrackerStatus::Pinned,
                        ))
                    })
                    .boxed()
            }
        }
    }

    async fn status(&self, c: Cid, local: bool) -> Result<GlobalPinInfo, ApiError> {
        self.record(format!("status {c} {local}"));
        let status = if c == cid(CID2) {
            TrackerStatus::PinError
        } else {
            TrackerStatus::Pinned
        };
        Ok(gpi(c, "one".into(), status))
    }

    fn recover_all(&self, local: bool) -> ApiStream<GlobalPinInfo> {
        self.record(format!("recover_all {local}"));
        stream::iter(vec![Ok(gpi(
            cid(CID1),
            "r".into(),
            TrackerStatus::PinQueued,
        ))])
        .boxed()
    }

    async fn recover(&self, c: Cid, local: bool) -> Result<GlobalPinInfo, ApiError> {
        self.record(format!("recover {c} {local}"));
        Ok(gpi(c, "r".into(), TrackerStatus::PinQueued))
    }

    async fn repo_gc(&self, local: bool) -> Result<GlobalRepoGc, ApiError> {
        self.record(format!("repo_gc {local}"));
        Ok(GlobalRepoGc {
            peer_map: BTreeMap::from([(
                "P".to_string(),
                RepoGc {
                    peer: "P".into(),
                    peername: "p".into(),
                    keys: vec![],
                    error: String::new(),
                },
            )]),
        })
    }

    async fn metric_names(&self) -> Result<Vec<String>, ApiError> {
        Ok(vec!["ping".into(), "freespace".into()])
    }

    async fn metrics(&self, name: &str) -> Result<Vec<Metric>, ApiError> {
        Ok(vec![Metric {
            name: name.into(),
            peer: "P".into(),
            value: "1".into(),
            valid: true,
            ..metric()
        }])
    }

    async fn connect_graph(&self) -> Result<cluster_types::ConnectGraph, ApiError> {
        Ok(cluster_types::ConnectGraph { cluster_id: "QmFake".into(), ..Default::default() })
    }

    async fn chaos_block(&self, _peer: &str, _blocked: bool) -> Result<(), ApiError> {
        Ok(())
    }

    async fn alerts(&self) -> Result<Vec<Alert>, ApiError> {
        Ok(vec![Alert {
            metric: metric(),
            triggered_at: Timestamp::zero(),
        }])
    }

    fn actor_health(&self) -> Value {
        json!([{"name": "pin_tracker", "state": "running", "restarts": 0, "seconds_since_progress": 0.5, "mailbox_depth": 0}])
    }

    async fn kill_actor(&self, name: &str) -> Result<(), ApiError> {
        self.record(format!("kill {name}"));
        Ok(())
    }

    fn prometheus_text(&self) -> String {
        let m = cluster_observe::Metrics::new();
        m.pin_add.inc();
        m.render()
    }
}

fn metric() -> Metric {
    serde_json::from_value(
        json!({"name": "ping", "peer": "P", "value": "", "expire": 0, "valid": false,
        "weight": 0, "partitionable": false, "received_at": 0}),
    )
    .unwrap()
}

/// A running server and how to stop it.
struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<()>,
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(Duration::from_secs(15), &mut self.handle)
            .await
            .unwrap()
            .unwrap();
    }
}

fn config() -> RestApiConfig {
    RestApiConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        headers: BTreeMap::from([("X-Custom".to_string(), "yes".to_string())]),
        ..RestApiConfig::default()
    }
}

async fn start_with(cfg: RestApiConfig, fake: Arc<Fake>) -> Server {
    let (tx, rx) = oneshot::channel::<()>();
    let (addr, handle) = serve_rest(cfg, fake, async move {
        let _ = rx.await;
    })
    .await
    .unwrap();
    Server {
        addr,
        stop: Some(tx),
        handle,
    }
}

async fn start(fake: Arc<Fake>) -> Server {
    start_with(config(), fake).await
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// Status, headers and body of a request.
async fn call(method: reqwest::Method, url: String) -> (u16, reqwest::header::HeaderMap, String) {
    let resp = client().request(method, url).send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.text().await.unwrap();
    (status, headers, body)
}

fn assert_json_error(
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: &str,
    want: u16,
) -> ApiError {
    assert_eq!(status, want, "{body}");
    assert_eq!(headers["content-type"], "application/json");
    assert!(body.ends_with('\n'));
    let err: ApiError =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not an error object: {body}: {e}"));
    assert_eq!(err.code, want);
    err
}

use reqwest::Method as M;

#[tokio::test]
async fn id_version_and_headers() {
    let s = start(Fake::new(StatusMode::Items(0))).await;
    let (st, h, body) = call(M::GET, s.url("/id")).await;
    assert_eq!(st, 200);
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(h["x-custom"], "yes");
    let v: Value = serde_json::from_str(&body).unwrap();
    for field in [
        "id",
        "addresses",
        "cluster_peers",
        "cluster_peers_addresses",
        "version",
        "commit",
        "rpc_protocol_version",
        "error",
        "ipfs",
        "peername",
    ] {
        assert!(v.get(field).is_some(), "missing {field} in {body}");
    }
    let (st, _, body) = call(M::GET, s.url("/version")).await;
    assert_eq!(st, 200);
    assert_eq!(body, "{\"version\":\"1.1.6\"}\n");
    // Configured headers are on errors too; trailing slashes reach the same route.
    let (st, h, _) = call(M::GET, s.url("/nope")).await;
    assert_eq!(st, 404);
    assert_eq!(h["x-custom"], "yes");
    let (st, _, _) = call(M::GET, s.url("/id/")).await;
    assert_eq!(st, 200);
    s.stop().await;
}

#[tokio::test]
async fn peers_stream_and_peer_rm() {
    let fake = Fake::new(StatusMode::Items(0));
    let s = start(fake.clone()).await;
    let (st, h, body) = call(M::GET, s.url("/peers")).await;
    assert_eq!(st, 200);
    assert_eq!(h["trailer"], "X-Stream-Error");
    let ids: Vec<ID> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[1].peername, "peer-1");
    let (st, h, body) = call(M::DELETE, s.url("/peers/12D3KooWGone")).await;
    assert_eq!((st, body.as_str()), (204, ""));
    assert_eq!(h["content-type"], "application/json");
    assert!(fake.calls().contains(&"peer_rm 12D3KooWGone".to_string()));
    s.stop().await;
}

#[tokio::test]
async fn allocations() {
    let fake = Fake::new(StatusMode::Items(0));
    let s = start(fake.clone()).await;
    let (st, _, body) = call(M::GET, s.url("/allocations?filter=pin,meta-pin")).await;
    assert_eq!(st, 200);
    let pins: Vec<Pin> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(pins.len(), 2);
    assert!(fake.calls().iter().any(|c| c.starts_with("allocations")));
    let (st, h, body) = call(M::GET, s.url("/allocations?filter=bogus")).await;
    assert_json_error(st, &h, &body, 400);

    let (st, _, body) = call(M::GET, s.url(&format!("/allocations/{CID1}"))).await;
    assert_eq!(st, 200);
    let pin: Pin = serde_json::from_str(&body).unwrap();
    assert_eq!(pin.cid, cid(CID1));
    let (st, h, body) = call(M::GET, s.url(&format!("/allocations/{CID2}"))).await;
    let e = assert_json_error(st, &h, &body, 404);
    assert_eq!(e.message, NOT_FOUND_MESSAGE);
    let (st, h, body) = call(M::GET, s.url("/allocations/not-a-cid")).await;
    let e = assert_json_error(st, &h, &body, 400);
    assert!(e.message.contains("not-a-cid"), "{}", e.message);
    s.stop().await;
}

#[tokio::test]
async fn pins_stream_of_three() {
    let fake = Fake::new(StatusMode::Items(3));
    let s = start(fake.clone()).await;
    let (st, h, body) = call(M::GET, s.url("/pins?local=true&filter=pinned,error")).await;
    assert_eq!(st, 200);
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(h["trailer"], "X-Stream-Error");
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), 3);
    for (i, l) in lines.iter().enumerate() {
        let g: GlobalPinInfo = serde_json::from_str(l).unwrap();
        assert_eq!(g.name, format!("item-{i}"));
    }
    let call = fake
        .calls()
        .into_iter()
        .find(|c| c.starts_with("status_all"))
        .unwrap();
    assert!(call.ends_with("true"), "{call}");
    s.stop().await;
}

#[tokio::test]
async fn pins_stream_empty_is_204() {
    let s = start(Fake::new(StatusMode::Items(0))).await;
    let (st, _, body) = call(M::GET, s.url("/pins")).await;
    assert_eq!((st, body.as_str()), (204, ""));
    s.stop().await;
}

#[tokio::test]
async fn pins_stream_error_first_is_error_response() {
    let s = start(Fake::new(StatusMode::ErrorFirst)).await;
    let (st, h, body) = call(M::GET, s.url("/pins")).await;
    let e = assert_json_error(st, &h, &body, 503);
    assert_eq!(e.message, "ipfs is down");
    s.stop().await;
}

#[tokio::test]
async fn pins_bad_parameters() {
    let s = start(Fake::new(StatusMode::Items(3))).await;
    let (st, h, body) = call(M::GET, s.url("/pins?filter=pinnned")).await;
    let e = assert_json_error(st, &h, &body, 400);
    assert!(e.message.contains("pinnned"));
    let (st, h, body) = call(M::GET, s.url("/pins?local=perhaps")).await;
    assert_json_error(st, &h, &body, 400);
    let (st, h, body) = call(M::GET, s.url(&format!("/pins?cids={CID1},bad-cid"))).await;
    let e = assert_json_error(st, &h, &body, 400);
    assert!(e.message.contains("bad-cid"));
    let (st, h, body) = call(M::GET, s.url("/pins/bad-cid")).await;
    let e = assert_json_error(st, &h, &body, 400);
    assert!(e.message.contains("bad-cid"));
    s.stop().await;
}

#[tokio::test]
async fn pins_by_cids_in_order() {
    let fake = Fake::new(StatusMode::Items(0));
    let s = start(fake.clone()).await;
    let (st, _, body) = call(
        M::GET,
        s.url(&format!("/pins?cids={CID1},{CID2},{CID3}&local=true")),
    )
    .await;
    assert_eq!(st, 200);
    let got: Vec<Cid> = body
        .lines()
        .map(|l| serde_json::from_str::<GlobalPinInfo>(l).unwrap().cid)
        .collect();
    assert_eq!(got, vec![cid(CID1), cid(CID2), cid(CID3)]);
    assert_eq!(
        fake.calls()
            .iter()
            .filter(|c| c.starts_with("status ") && c.ends_with("true"))
            .count(),
        3
    );
    // The filter applies to the per-CID answers too.
    let (st, _, body) = call(
        M::GET,
        s.url(&format!("/pins?cids={CID1},{CID2}&filter=error")),
    )
    .await;
    assert_eq!(st, 200);
    let got: Vec<Cid> = body
        .lines()
        .map(|l| serde_json::from_str::<GlobalPinInfo>(l).unwrap().cid)
        .collect();
    assert_eq!(got, vec![cid(CID2)]);
    s.stop().await;
}

#[tokio::test]
async fn pin_status_unpin_recover_gc() {
    let fake = Fake::new(StatusMode::Items(0));
    let s = start(fake.clone()).await;
    let (st, _, body) = call(M::GET, s.url(&format!("/pins/{CID1}?local=true"))).await;
    assert_eq!(st, 200);
    serde_json::from_str::<GlobalPinInfo>(&body).unwrap();
    assert!(fake.calls().contains(&format!("status {CID1} true")));

    let (st, _, body) = call(M::DELETE, s.url(&format!("/pins/{CID2}"))).await;
    assert_eq!(st, 200);
    assert_eq!(serde_json::from_str::<Pin>(&body).unwrap().cid, cid(CID2));
    let (st, h, body) = call(M::DELETE, s.url(&format!("/pins/{CID3}"))).await;
    assert_eq!(
        assert_json_error(st, &h, &body, 404).message,
        NOT_FOUND_MESSAGE
    );

    let (st, h, body) = call(M::POST, s.url("/pins/recover?local=true")).await;
    assert_eq!(st, 200);
    assert_eq!(h["trailer"], "X-Stream-Error");
    assert_eq!(body.lines().count(), 1);
    assert!(fake.calls().contains(&"recover_all true".to_string()));

    let (st, _, body) = call(M::POST, s.url(&format!("/pins/{CID1}/recover"))).await;
    assert_eq!(st, 200);
    serde_json::from_str::<GlobalPinInfo>(&body).unwrap();
    assert!(fake.calls().contains(&format!("recover {CID1} false")));

    let (st, _, body) = call(M::POST, s.url("/ipfs/gc?local=true")).await;
    assert_eq!(st, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(v["peer_map"]["P"].get("keys").is_some(), "{body}");
    assert!(fake.calls().contains(&"repo_gc true".to_string()));
    s.stop().await;
}

#[tokio::test]
async fn pin_with_options_honours_direct_mode() {
    let fake = Fake::new(StatusMode::Items(0));
    let s = start(fake.clone()).await;
    let url = s.url(&format!(
        "/pins/{CID1}?mode=direct&name=my+pin&replication-min=1&replication-max=2&meta-owner=alice&user-allocations=A,B"
    ));
    // A body where none is expected is ignored.
    let resp = client()
        .post(url)
        .body("ignored body")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let pin: Pin = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(pin.max_depth, 0);
    let opts = fake.last_opts.lock().unwrap().clone().unwrap();
    assert_eq!(opts.mode, PinMode::Direct);
    assert_eq!(opts.name, "my pin");
    assert_eq!(
        (opts.replication_factor_min, opts.replication_factor_max),
        (1, 2)
    );
    assert_eq!(opts.metadata["owner"], "alice");
    assert_eq!(
        opts.user_allocations,
        vec!["A".to_string(), "B".to_string()]
    );

    let (st, h, body) = call(M::POST, s.url(&format!("/pins/{CID1}?replication-min=x"))).await;
    let e = assert_json_error(st, &h, &body, 400);
    assert!(e.message.contains("replication-min"));
    let (st, h, body) = call(M::POST, s.url(&format!("/pins/{CID1}?mode=sideways"))).await;
    assert_json_error(st, &h, &body, 400);
    // Trailing slash on a POST is served, not redirected.
    let (st, _, _) = call(M::POST, s.url(&format!("/pins/{CID1}/"))).await;
    assert_eq!(st, 200);
    s.stop().await;
}

#[tokio::test]
async fn pin_and_unpin_by_path() {
    let fake = Fake::new(StatusMode::Items(0));
    let s = start(fake.clone()).await;
    let (st, _, _) = call(
        M::POST,
        s.url(&format!("/pins/ipfs/{CID1}/a/b?mode=direct")),
    )
    .await;
    assert_eq!(st, 200);
    assert!(
        fake.calls()
            .contains(&format!("pin_path /ipfs/{CID1}/a/b direct")),
        "{:?}",
        fake.calls()
    );
    let (st, _, _) = call(M::DELETE, s.url("/pins/ipns/example.com/x")).await;
    assert_eq!(st, 200);
    assert!(
        fake.calls()
            .contains(&"unpin_path /ipns/example.com/x".to_string())
    );
    let (st, h, body) = call(M::POST, s.url("/pins/ipfs/not-a-cid/a")).await;
    assert_json_error(st, &h, &body, 400);
    let (st, h, body) = call(M::GET, s.url(&format!("/pins/ipfs/{CID1}/a"))).await;
    assert_json_error(st, &h, &body, 405);
    s.stop().await;
}

#[tokio::test]
async fn monitor_and_health() {
    let s = start(Fake::new(StatusMode::Items(0))).await;
    let (st, _, body) = call(M::GET, s.url("/monitor/metrics")).await;
    assert_eq!(st, 200);
    assert_eq!(
        serde_json::from_str::<Vec<String>>(&body).unwrap(),
        vec!["ping", "freespace"]
    );
    let (st, _, body) = call(M::GET, s.url("/monitor/metrics/freespace")).await;
    assert_eq!(st, 200);
    let metrics: Vec<Metric> = serde_json::from_str(&body).unwrap();
    assert_eq!(metrics[0].name, "freespace");
    let (st, _, body) = call(M::GET, s.url("/health/alerts")).await;
    assert_eq!(st, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(v[0].get("triggered_at").is_some(), "{body}");
    let (st, _, body) = call(M::GET, s.url("/health")).await;
    assert_eq!((st, body.as_str()), (204, ""));
    let (st, _, body) = call(M::GET, s.url("/health/actors")).await;
    assert_eq!(st, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v[0]["name"], "pin_tracker");
    s.stop().await;
}

#[tokio::test]
async fn unknown_route_and_wrong_method() {
    let s = start(Fake::new(StatusMode::Items(0))).await;
    for path in [
        "/nope",
        "/health/bandwidth",
        "/token",
        "/",
    ] {
        let (st, h, body) = call(M::POST, s.url(path)).await;
        assert_eq!(body, "{\"code\":404,\"message\":\"not found\"}\n", "{path}");
        assert_json_error(st, &h, &body, 404);
    }
    let (st, h, body) = call(M::PUT, s.url("/id")).await;
    assert_json_error(st, &h, &body, 405);
    assert_eq!(h["allow"], "GET");
    // `/add` exists; a peer without an add pipeline (this fake) answers 409, GET is 405.
    let (st, h, body) = call(M::POST, s.url("/add")).await;
    assert_json_error(st, &h, &body, 409);
    let (st, h, body) = call(M::GET, s.url("/add")).await;
    assert_json_error(st, &h, &body, 405);
    let (st, h, body) = call(M::POST, s.url("/health/graph")).await;
    assert_json_error(st, &h, &body, 405);
    let (st, _, body) = call(M::GET, s.url("/health/graph")).await;
    assert_eq!(st, 200);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["cluster_id"], "QmFake");
    // The chaos link hook is routed only with chaos enabled.
    let (st, _, _) = call(M::POST, s.url("/health/net/block/QmFake")).await;
    assert_eq!(st, 404);
    let (st, h, body) = call(M::GET, s.url("/ipfs/gc")).await;
    assert_json_error(st, &h, &body, 405);
    let (st, h, body) = call(M::GET, s.url("/pins/%zz")).await;
    assert_json_error(st, &h, &body, 400);
    s.stop().await;
}

#[tokio::test]
async fn kill_route_only_with_chaos() {
    let fake = Fake::new(StatusMode::Items(0));
    let s = start(fake.clone()).await;
    let (st, h, body) = call(M::POST, s.url("/health/actors/pin_tracker/kill")).await;
    assert_json_error(st, &h, &body, 404);
    assert!(!fake.calls().iter().any(|c| c.starts_with("kill")));
    s.stop().await;

    let s = start_with(
        RestApiConfig {
            chaos_enabled: true,
            ..config()
        },
        fake.clone(),
    )
    .await;
    let (st, _, body) = call(M::POST, s.url("/health/actors/pin_tracker/kill")).await;
    assert_eq!((st, body.as_str()), (204, ""));
    assert!(fake.calls().contains(&"kill pin_tracker".to_string()));
    let (st, h, body) = call(M::GET, s.url("/health/actors/pin_tracker/kill")).await;
    assert_json_error(st, &h, &body, 405);
    s.stop().await;
}

#[tokio::test]
async fn metrics_endpoint() {
    let (tx, rx) = oneshot::channel::<()>();
    let (addr, handle) = serve_metrics(
        "127.0.0.1:0".parse().unwrap(),
        Fake::new(StatusMode::Items(0)),
        async move {
            let _ = rx.await;
        },
    )
    .await
    .unwrap();
    let (st, h, body) = call(M::GET, format!("http://{addr}/metrics")).await;
    assert_eq!(st, 200);
    let ct = h["content-type"].to_str().unwrap();
    assert!(
        ct.starts_with("application/openmetrics-text") || ct.starts_with("text/plain"),
        "{ct}"
    );
    assert!(body.contains("ipfscluster_pins_pin_add_total 1"), "{body}");
    let (st, _, _) = call(M::GET, format!("http://{addr}/other")).await;
    assert_eq!(st, 404);
    let _ = tx.send(());
    tokio::time::timeout(Duration::from_secs(15), handle)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn port_taken_is_an_error_naming_the_address() {
    let s = start(Fake::new(StatusMode::Items(0))).await;
    let cfg = RestApiConfig {
        listen: s.addr,
        ..config()
    };
    let err = serve_rest(cfg, Fake::new(StatusMode::Items(0)), async {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains(&s.addr.to_string()), "{err}");
    s.stop().await;
}

#[tokio::test]
async fn invalid_configured_header_is_an_error() {
    let cfg = RestApiConfig {
        headers: BTreeMap::from([("bad name".into(), "v".into())]),
        ..config()
    };
    assert!(
        serve_rest(cfg, Fake::new(StatusMode::Items(0)), async {})
            .await
            .is_err()
    );
}

#[tokio::test]
async fn large_stream_follows_the_reader() {
    const N: usize = 100_000;
    let fake = Fake::new(StatusMode::Large(N));
    let s = start(fake.clone()).await;
    let resp = client().get(s.url("/pins")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let mut body = resp.bytes_stream();
    let mut pending = Vec::new();
    let mut lines = 0usize;
    // Read a few lines, then stop reading for a while: the server must stop pulling items.
    while lines < 10 {
        let chunk = body.next().await.unwrap().unwrap();
        pending.extend_from_slice(&chunk);
        lines += count_lines(&mut pending);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let produced_while_paused = fake.produced.load(Ordering::SeqCst);
    assert!(
        produced_while_paused < N / 2,
        "server pulled {produced_while_paused} items ahead of a paused reader"
    );
    while let Some(chunk) = body.next().await {
        pending.extend_from_slice(&chunk.unwrap());
        lines += count_lines(&mut pending);
    }
    assert!(pending.is_empty());
    assert_eq!(lines, N);
    assert_eq!(fake.produced.load(Ordering::SeqCst), N);
    s.stop().await;
}

/// Counts and removes the complete lines in `buf`, checking each is a `GlobalPinInfo`.
fn count_lines(buf: &mut Vec<u8>) -> usize {
    let mut n = 0;
    while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
        let line: Vec<u8> = buf.drain(..=pos).collect();
        serde_json::from_slice::<GlobalPinInfo>(&line[..line.len() - 1]).unwrap();
        n += 1;
    }
    n
}

/// Sends a raw HTTP/1.1 request and reads until the server closes the connection.
async fn raw(addr: SocketAddr, request: &str) -> (String, bool) {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let clean = tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut out))
        .await
        .unwrap()
        .is_ok();
    (String::from_utf8_lossy(&out).into_owned(), clean)
}

#[tokio::test]
async fn trailer_reports_stream_errors() {
    let s = start(Fake::new(StatusMode::Items(2))).await;
    let (resp, _) = raw(
        s.addr,
        "GET /pins HTTP/1.1\r\nHost: x\r\nTE: trailers\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(
        resp.to_ascii_lowercase()
            .contains("trailer: x-stream-error"),
        "{resp}"
    );
    assert!(resp.ends_with("0\r\nx-stream-error: \r\n\r\n"), "{resp}");
    s.stop().await;

    let s = start(Fake::new(StatusMode::ErrorAfter(2))).await;
    let (resp, _) = raw(
        s.addr,
        "GET /pins HTTP/1.1\r\nHost: x\r\nTE: trailers\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.contains("item-1"), "{resp}");
    assert!(
        resp.ends_with("0\r\nx-stream-error: peer lost mid-stream\r\n\r\n"),
        "{resp}"
    );

    // Without TE: trailers the error cannot be sent, so the transfer is cut before its end.
    let (resp, _) = raw(
        s.addr,
        "GET /pins HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.contains("item-1"), "{resp}");
    assert!(!resp.ends_with("0\r\n\r\n"), "{resp}");
    s.stop().await;
}

#[tokio::test]
async fn idle_and_header_timeouts() {
    let cfg = RestApiConfig {
        idle_timeout: Duration::from_millis(300),
        read_header_timeout: Duration::from_millis(300),
        ..config()
    };
    let s = start_with(cfg, Fake::new(StatusMode::Items(0))).await;

    // A keep-alive connection is served, then closed once idle.
    let mut conn = TcpStream::connect(s.addr).await.unwrap();
    conn.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = conn.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 204"));
    let started = std::time::Instant::now();
    let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "idle connection should be closed");
    assert!(started.elapsed() >= Duration::from_millis(200));

    // A request head that never completes is cut without an answer.
    let mut conn = TcpStream::connect(s.addr).await.unwrap();
    conn.write_all(b"GET /id HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "slow request head should be cut");
    s.stop().await;
}

#[tokio::test]
async fn oversized_headers_are_refused() {
    let s = start(Fake::new(StatusMode::Items(0))).await;
    let big = "a".repeat(10_000);
    let (resp, _) = raw(
        s.addr,
        &format!("GET /id HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 431"), "{resp}");
    // Go's slack: a head a bit over max_header_bytes is still fine.
    let medium = "a".repeat(5_000);
    let (resp, _) = raw(
        s.addr,
        &format!("GET /id HTTP/1.1\r\nHost: x\r\nX-Big: {medium}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    s.stop().await;
}

#[tokio::test]
async fn shutdown_finishes_the_server_task() {
    let s = start(Fake::new(StatusMode::Items(0))).await;
    // An idle keep-alive connection must not hold shutdown up.
    let c = client();
    assert_eq!(
        c.get(s.url("/health"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        204
    );
    let addr = s.addr;
    s.stop().await;
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn peer_add_parses_its_json_body() {
    let fake = Fake::new(StatusMode::Items(0));
    let s = start(Arc::clone(&fake)).await;
    let (st, h, body) = call(M::POST, s.url("/peers")).await;
    let err = assert_json_error(st, &h, &body, 400);
    assert!(err.message.contains("body"), "{}", err.message);
    for bad in ["{\"peer_id\": ", "[]", "{\"peer\": \"x\"}"] {
        let resp = client().post(s.url("/peers")).body(bad.to_string()).send().await.unwrap();
        let st = resp.status().as_u16();
        let h = resp.headers().clone();
        let body = resp.text().await.unwrap();
        let err = assert_json_error(st, &h, &body, 400);
        assert!(err.message.starts_with("malformed JSON body"), "{}", err.message);
    }
    let resp = client().post(s.url("/peers")).body("{\"peer_id\":\"12D3KooWNew\"}").send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let id: ID = resp.json().await.unwrap();
    assert_eq!(id, peer_id(0));
    assert!(fake.calls().contains(&"peer_add 12D3KooWNew".to_string()));
}
