//! The proxy against a fake Kubo node and an in-memory cluster: header extraction and its cache,
//! CORS copied from the node's pre-flight, relayed bodies both ways, `block/put?pin=true`,
//! `repo/gc` trailers, and pins made only for valid requests.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use cluster_api::{ApiStream, ServerOptions, WarpResponse, serve_http};
use cluster_proxy::{ProxyBackend, ProxyConfig, serve_proxy};
use cluster_types::{ApiError, Cid, GlobalRepoGc, IpfsRepoGc, Pin, PinOptions, RepoGc};
use futures::StreamExt;
use warp::{Filter, Reply};

const CID: &str = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o";

#[derive(Default)]
struct FakeCluster {
    pins: Mutex<BTreeMap<Cid, Pin>>,
}

fn cid_of(path: &str) -> Result<Cid, ApiError> {
    let root = path.trim_start_matches("/ipfs/").split('/').next().unwrap_or_default();
    Cid::try_from(root).map_err(|e| ApiError::bad_request(e.to_string()))
}

#[async_trait]
impl ProxyBackend for FakeCluster {
    async fn resolve(&self, path: &str) -> Result<Cid, ApiError> {
        cid_of(path)
    }
    async fn pin(&self, cid: Cid, opts: PinOptions) -> Result<Pin, ApiError> {
        let pin = Pin::with_options(cid, opts);
        self.pins.lock().unwrap().insert(cid, pin.clone());
        Ok(pin)
    }
    async fn pin_path(&self, path: &str, opts: PinOptions) -> Result<Pin, ApiError> {
        self.pin(cid_of(path)?, opts).await
    }
    async fn unpin(&self, cid: Cid) -> Result<Pin, ApiError> {
        self.pins.lock().unwrap().remove(&cid).ok_or_else(|| ApiError::not_found("not found"))
    }
    async fn unpin_path(&self, path: &str) -> Result<Pin, ApiError> {
        self.unpin(cid_of(path)?).await
    }
    fn pins(&self) -> ApiStream<Pin> {
        let pins: Vec<_> = self.pins.lock().unwrap().values().cloned().map(Ok).collect();
        futures::stream::iter(pins).boxed()
    }
    async fn pin_get(&self, cid: Cid) -> Result<Pin, ApiError> {
        self.pins.lock().unwrap().get(&cid).cloned().ok_or_else(|| ApiError::not_found("not found"))
    }
    async fn repo_stat(&self) -> Result<(u64, u64), ApiError> {
        Ok((10, 100))
    }
    async fn repo_gc(&self) -> Result<GlobalRepoGc, ApiError> {
        let mut peer_map = BTreeMap::new();
        let keys = vec![
            IpfsRepoGc { key: CID.into(), error: String::new() },
            IpfsRepoGc { key: String::new(), error: "block busy".into() },
        ];
        peer_map.insert("peerA".to_string(), RepoGc { peer: "peerA".into(), keys, ..Default::default() });
        Ok(GlobalRepoGc { peer_map })
    }

    fn add(
        &self,
        _content_type: &str,
        _body: futures::stream::BoxStream<'static, Result<Bytes, ApiError>>,
        _params: cluster_types::AddParams,
    ) -> Result<futures::stream::BoxStream<'static, Result<cluster_types::AddedOutput, ApiError>>, ApiError> {
        Err(ApiError::new(cluster_types::ErrorCode::Conflict, "the fake cluster does not add"))
    }
}

/// A fake node: `version` with CORS-related headers (counted), OPTIONS pre-flights, an echo,
/// and `block/put` that insists on `pin=false`.
async fn fake_node(versions: Arc<AtomicUsize>) -> SocketAddr {
    let version = warp::post().and(warp::path!("api" / "v0" / "version")).map(move || {
        versions.fetch_add(1, Ordering::SeqCst);
        let reply = warp::reply::json(&serde_json::json!({ "Version": "0.0-fake" }));
        let reply = warp::reply::with_header(reply, "Access-Control-Expose-Headers", "X-Stream-Output");
        warp::reply::with_header(reply, "X-Extra", "42").into_response()
    });
    let preflight = warp::options().and(warp::header::<String>("origin")).map(|origin: String| {
        let reply = warp::reply::with_header(warp::reply(), "Access-Control-Allow-Origin", origin);
        warp::reply::with_header(reply, "Vary", "Origin").into_response()
    });
    let echo = warp::post()
        .and(warp::path!("api" / "v0" / "echo"))
        .and(warp::body::bytes())
        .map(|b: Bytes| warp::reply::with_header(b.to_vec(), "X-Echo", "yes").into_response());
    let put = warp::post()
        .and(warp::path!("api" / "v0" / "block" / "put"))
        .and(warp::query::<BTreeMap<String, String>>())
        .and(warp::body::bytes())
        .map(|q: BTreeMap<String, String>, _b: Bytes| {
            if q.get("pin").map(String::as_str) != Some("false") {
                return warp::reply::with_status("pin must be false", warp::http::StatusCode::BAD_REQUEST).into_response();
            }
            format!("{{\"Key\":\"{CID}\",\"Size\":12}}\n").into_response()
        });
    let filter = version.or(preflight).unify().or(echo).unify().or(put).unify().map(|r: WarpResponse| r).boxed();
    let opts = ServerOptions {
        name: "fake-node",
        extra_headers: Default::default(),
        max_header_bytes: 8192,
        read_header_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(5),
    };
    let (addr, _task) = serve_http("127.0.0.1:0".parse().unwrap(), opts, filter, std::future::pending()).await.unwrap();
    addr
}

async fn start() -> (String, Arc<FakeCluster>, Arc<AtomicUsize>) {
    let versions = Arc::new(AtomicUsize::new(0));
    let node = fake_node(Arc::clone(&versions)).await;
    let cluster = Arc::new(FakeCluster::default());
    let cfg = ProxyConfig {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        node_multiaddress: format!("/ip4/127.0.0.1/tcp/{}", node.port()),
        max_header_bytes: 4096,
        read_header_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(60),
        extract_headers_extra: vec!["X-Extra".into()],
        extract_headers_path: "/api/v0/version".into(),
        extract_headers_ttl: Duration::from_secs(300),
    };
    let backend: Arc<dyn ProxyBackend> = cluster.clone();
    let (bound, _task) = serve_proxy(cfg, backend, std::future::pending()).await.unwrap();
    (format!("http://{}", bound[0]), cluster, versions)
}

#[tokio::test]
async fn hijacked_answers_carry_the_nodes_headers() {
    let (proxy, cluster, versions) = start().await;
    let client = reqwest::Client::new();
    for _ in 0..2 {
        let resp = client
            .post(format!("{proxy}/api/v0/pin/add?arg={CID}"))
            .header("Origin", "http://app.test")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let h = resp.headers().clone();
        assert_eq!(h["access-control-allow-origin"], "http://app.test");
        assert_eq!(h["vary"], "Origin");
        assert_eq!(h["access-control-expose-headers"], "X-Stream-Output");
        assert_eq!(h["x-extra"], "42");
        assert!(h["server"].to_str().unwrap().starts_with("ipfs-cluster/ipfsproxy/"));
        assert_eq!(resp.json::<serde_json::Value>().await.unwrap(), serde_json::json!({ "Pins": [CID] }));
    }
    // learned once, then cached for the ttl
    assert_eq!(versions.load(Ordering::SeqCst), 1);
    assert_eq!(cluster.pins.lock().unwrap().len(), 1);

    // relayed: the node's own answer, with its headers, body intact both ways
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let resp = client.post(format!("{proxy}/api/v0/echo")).body(big.clone()).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-echo"], "yes");
    assert!(resp.headers().get("server").is_none());
    assert_eq!(resp.bytes().await.unwrap().as_ref(), big.as_slice());
    // the node's refusal of an unknown command comes back as the node gave it (warp says 405)
    let resp = client.post(format!("{proxy}/api/v0/nope")).send().await.unwrap();
    assert_eq!(resp.status(), 405);
}

#[tokio::test]
async fn put_pins_and_gc_reports_errors() {
    let (proxy, cluster, _) = start().await;
    let client = reqwest::Client::new();
    // without pin=true block/put is relayed untouched (the fake refuses pin != false)
    let resp = client.post(format!("{proxy}/api/v0/block/put")).body("x").send().await.unwrap();
    assert_eq!(resp.status(), 400);
    assert!(cluster.pins.lock().unwrap().is_empty());
    let resp = client.post(format!("{proxy}/api/v0/block/put?pin=true")).body("x").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert_eq!(serde_json::from_str::<serde_json::Value>(text.trim()).unwrap()["Key"], CID);
    assert!(cluster.pins.lock().unwrap().contains_key(&Cid::try_from(CID).unwrap()));

    let resp = client.post(format!("{proxy}/api/v0/repo/gc?stream-errors=true")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let lines: Vec<serde_json::Value> =
        resp.text().await.unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines, vec![serde_json::json!({ "Key": { "/": CID } }), serde_json::json!({ "Error": "block busy" })]);

    let resp = client.post(format!("{proxy}/api/v0/repo/stat")).send().await.unwrap();
    assert_eq!(resp.json::<serde_json::Value>().await.unwrap(), serde_json::json!({ "RepoSize": 10, "StorageMax": 100 }));

    // bad input: Kubo-shaped errors, nothing pinned
    for (path, status) in [("/api/v0/pin/add", 500), ("/api/v0/pin/add?arg=bad", 500), ("/api/v0/pin/update?arg=x", 400)] {
        let resp = client.post(format!("{proxy}{path}")).send().await.unwrap();
        assert_eq!(resp.status(), status, "{path}");
        let err: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(err["Type"], "error");
        assert_eq!(err["Code"], 0);
    }
    assert_eq!(cluster.pins.lock().unwrap().len(), 1);
}
