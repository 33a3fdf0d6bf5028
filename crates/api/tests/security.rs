//! Authentication, CORS, tokens and HTTPS of the REST API over real sockets.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use cluster_api::{
    ApiStream, ClusterApi, RestApiConfig, SecurityConfig, TlsFiles, issue_token, load_tls,
    serve_rest,
};
use cluster_types::{
    Alert, ApiError, Cid, ConnectGraph, GlobalPinInfo, GlobalRepoGc, ID, Metric, Pin, PinOptions,
    PinTypeFilter, Timestamp, TrackerStatusFilter, Version,
};
use reqwest::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PINNED: &str = "bafkqaaa";
const ABSENT: &str = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG";

/// A cluster that holds one pin and counts how often it was asked anything.
#[derive(Default)]
struct Fake {
    calls: AtomicUsize,
}

impl Fake {
    fn touch(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
}

fn nope<T>() -> Result<T, ApiError> {
    Err(ApiError::internal("not used by these tests"))
}

#[async_trait]
impl ClusterApi for Fake {
    async fn id(&self) -> ID {
        self.touch();
        serde_json::from_value(serde_json::json!({"id": "12D3KooWTest", "peername": "fake"}))
            .unwrap()
    }
    async fn version(&self) -> Version {
        self.touch();
        Version {
            version: "1.1.6".into(),
        }
    }
    fn peers(&self) -> ApiStream<ID> {
        Box::pin(futures::stream::empty())
    }
    async fn peer_add(&self, _peer: &str) -> Result<ID, ApiError> {
        self.touch();
        nope()
    }
    async fn peer_rm(&self, _peer: &str) -> Result<(), ApiError> {
        nope()
    }
    async fn pin(&self, _cid: Cid, _opts: PinOptions) -> Result<Pin, ApiError> {
        nope()
    }
    async fn pin_path(&self, _path: &str, _opts: PinOptions) -> Result<Pin, ApiError> {
        nope()
    }
    async fn unpin(&self, _cid: Cid) -> Result<Pin, ApiError> {
        nope()
    }
    async fn unpin_path(&self, _path: &str) -> Result<Pin, ApiError> {
        nope()
    }
    fn allocations(&self, _filter: PinTypeFilter) -> ApiStream<Pin> {
        Box::pin(futures::stream::empty())
    }
    async fn allocation(&self, _cid: Cid) -> Result<Pin, ApiError> {
        nope()
    }
    fn status_all(&self, _f: TrackerStatusFilter, _local: bool) -> ApiStream<GlobalPinInfo> {
        Box::pin(futures::stream::empty())
    }
    async fn status(&self, cid: Cid, _local: bool) -> Result<GlobalPinInfo, ApiError> {
        self.touch();
        if cid.to_string() != PINNED {
            return Err(ApiError::not_found(cluster_types::error::NOT_FOUND_MESSAGE));
        }
        Ok(GlobalPinInfo {
            cid,
            name: "held".into(),
            allocations: vec![],
            origins: vec![],
            created: Timestamp::now(),
            metadata: BTreeMap::new(),
            peer_map: BTreeMap::new(),
        })
    }
    fn recover_all(&self, _local: bool) -> ApiStream<GlobalPinInfo> {
        Box::pin(futures::stream::empty())
    }
    async fn recover(&self, _cid: Cid, _local: bool) -> Result<GlobalPinInfo, ApiError> {
        nope()
    }
    async fn repo_gc(&self, _local: bool) -> Result<GlobalRepoGc, ApiError> {
        nope()
    }
    async fn metric_names(&self) -> Result<Vec<String>, ApiError> {
        nope()
    }
    async fn metrics(&self, _name: &str) -> Result<Vec<Metric>, ApiError> {
        nope()
    }
    async fn alerts(&self) -> Result<Vec<Alert>, ApiError> {
        nope()
    }
    async fn connect_graph(&self) -> Result<ConnectGraph, ApiError> {
        nope()
    }
    async fn chaos_block(&self, _peer: &str, _blocked: bool) -> Result<(), ApiError> {
        nope()
    }
    fn actor_health(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
    async fn kill_actor(&self, _name: &str) -> Result<(), ApiError> {
        nope()
    }
    fn prometheus_text(&self) -> String {
        String::new()
    }
}

fn secured(tls: Option<TlsFiles>) -> RestApiConfig {
    RestApiConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        security: SecurityConfig {
            basic_auth: Some(BTreeMap::from([(
                "alice".to_string(),
                "s3cret".to_string(),
            )])),
            ..SecurityConfig::default()
        },
        tls,
        ..RestApiConfig::default()
    }
}

async fn start(cfg: RestApiConfig, fake: Arc<Fake>) -> SocketAddr {
    let (addr, _handle) = serve_rest(cfg, fake, std::future::pending()).await.unwrap();
    addr
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

async fn send(req: reqwest::RequestBuilder) -> Answer {
    let resp = req.send().await.unwrap();
    Answer {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: resp.text().await.unwrap(),
    }
}

fn challenges(a: &Answer) -> Vec<String> {
    a.headers
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn credentials_tokens_and_cors() {
    let fake = Arc::new(Fake::default());
    let addr = start(secured(None), fake.clone()).await;
    let http = reqwest::Client::new();
    let url = |p: &str| format!("http://{addr}{p}");

    // Missing credentials: both challenges, the REST error object, and the cluster untouched.
    let a = send(http.get(url("/id"))).await;
    assert_eq!(a.status, 401, "{}", a.body);
    assert_eq!(
        challenges(&a),
        vec![
            "Bearer realm=\"Restricted IPFS Cluster API\"",
            "Basic realm=\"Restricted IPFS Cluster API\""
        ]
    );
    let err: ApiError = serde_json::from_str(&a.body).unwrap();
    assert_eq!(err.code, 401);

    // A 401 says nothing about the pinset: same answer for a held and an absent pin.
    for auth in [None, Some(("alice", "wrong")), Some(("mallory", "s3cret"))] {
        let mut answers = Vec::new();
        for cid in [PINNED, ABSENT] {
            let mut req = http.get(url(&format!("/pins/{cid}")));
            if let Some((u, p)) = auth {
                req = req.basic_auth(u, Some(p));
            }
            let a = send(req).await;
            assert_eq!(a.status, 401);
            answers.push((challenges(&a), a.body));
        }
        assert_eq!(answers[0], answers[1]);
    }
    assert_eq!(
        fake.calls.load(Ordering::SeqCst),
        0,
        "unauthenticated requests reached the cluster"
    );
    let a = send(http.get(url("/id")).basic_auth("alice", Some("wrong"))).await;
    assert_eq!(
        challenges(&a),
        vec!["Basic realm=\"Restricted IPFS Cluster API\""]
    );

    // Right credentials reach the routes.
    let ok = |p: &str| http.get(url(p)).basic_auth("alice", Some("s3cret"));
    assert_eq!(send(ok(&format!("/pins/{PINNED}"))).await.status, 200);
    assert_eq!(send(ok(&format!("/pins/{ABSENT}"))).await.status, 404);

    // Open without credentials: health and CORS pre-flights.
    assert_eq!(send(http.get(url("/health"))).await.status, 204);
    assert_eq!(send(http.head(url("/health/"))).await.status, 204);
    assert_eq!(send(http.get(url("/health/graph"))).await.status, 401);
    let pre = send(
        http.request(Method::OPTIONS, url("/id"))
            .header("Origin", "https://app.example")
            .header("Access-Control-Request-Method", "GET"),
    )
    .await;
    assert_eq!(pre.status, 204);
    assert_eq!(
        pre.headers["access-control-allow-origin"],
        "https://app.example"
    );
    assert_eq!(pre.headers["access-control-allow-methods"], "GET");
    assert_eq!(pre.headers["access-control-allow-credentials"], "true");
    // A method outside cors_allowed_methods gets no allowance.
    let pre = send(
        http.request(Method::OPTIONS, url("/pins/x"))
            .header("Origin", "https://app.example")
            .header("Access-Control-Request-Method", "DELETE"),
    )
    .await;
    assert_eq!(pre.status, 204);
    assert!(!pre.headers.contains_key("access-control-allow-origin"));
    // Actual cross-origin requests carry the CORS headers, on errors too.
    let a = send(ok("/version").header("Origin", "https://app.example")).await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.headers["access-control-allow-origin"],
        "https://app.example"
    );
    assert!(
        a.headers["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .contains("X-Stream-Output")
    );
    let a = send(
        http.get(url("/version"))
            .header("Origin", "https://app.example"),
    )
    .await;
    assert_eq!(a.status, 401);
    assert!(a.headers.contains_key("access-control-allow-origin"));

    // Tokens: issued with basic auth, accepted as bearer; forged, expired and refreshed ones not.
    let a = send(http.post(url("/token")).basic_auth("alice", Some("s3cret"))).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let token = serde_json::from_str::<serde_json::Value>(&a.body).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        send(http.get(url("/version")).bearer_auth(&token))
            .await
            .status,
        200
    );
    let forged = issue_token("alice", "guess", now() + 3600);
    let expired = issue_token("alice", "s3cret", now() - 1);
    for bad in [forged.as_str(), expired.as_str(), "not.a.token"] {
        let a = send(http.get(url("/version")).bearer_auth(bad)).await;
        assert_eq!(a.status, 401, "{bad}");
        assert_eq!(
            challenges(&a),
            vec!["Bearer realm=\"Restricted IPFS Cluster API\", error=\"invalid_token\""]
        );
    }
    assert_eq!(
        send(http.post(url("/token")).bearer_auth(&token))
            .await
            .status,
        401
    );
    assert_eq!(send(http.post(url("/token"))).await.status, 401);

    // Limits: an oversized body is 413; an oversized head is 431 before any auth.
    let a = send(
        http.post(url("/peers"))
            .basic_auth("alice", Some("s3cret"))
            .body(vec![b' '; (1 << 20) + 1]),
    )
    .await;
    assert_eq!(a.status, 413, "{}", a.body);
    let big = format!(
        "GET /id HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(10_000)
    );
    assert!(raw(addr, big.as_bytes()).await.starts_with("HTTP/1.1 431"));
}

fn write_cert(dir: &Path) -> (TlsFiles, reqwest::Certificate) {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let files = TlsFiles {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    std::fs::write(&files.cert, ck.cert.pem()).unwrap();
    std::fs::write(&files.key, ck.key_pair.serialize_pem()).unwrap();
    (
        files,
        reqwest::Certificate::from_pem(ck.cert.pem().as_bytes()).unwrap(),
    )
}

#[tokio::test]
async fn https_listener() {
    let dir = tempfile::tempdir().unwrap();
    let (files, root) = write_cert(dir.path());
    let addr = start(secured(Some(files.clone())), Arc::new(Fake::default())).await;

    let trusting = reqwest::Client::builder()
        .add_root_certificate(root)
        .build()
        .unwrap();
    let a = send(
        trusting
            .get(format!("https://127.0.0.1:{}/version", addr.port()))
            .basic_auth("alice", Some("s3cret")),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let a = send(trusting.get(format!("https://localhost:{}/version", addr.port()))).await;
    assert_eq!(a.status, 401);
    // Without trusting the self-signed certificate the handshake fails.
    let strict = reqwest::Client::new();
    assert!(
        strict
            .get(format!("https://127.0.0.1:{}/health", addr.port()))
            .send()
            .await
            .is_err()
    );

    // Plain HTTP is refused, as Go's server does it.
    let answer = raw(addr, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.0 400"), "{answer}");
    assert!(
        reqwest::get(format!("http://{addr}/health"))
            .await
            .map(|r| !r.status().is_success())
            .unwrap_or(true)
    );

    // Unusable files are a startup error naming the file.
    let missing = TlsFiles {
        cert: dir.path().join("nope.pem"),
        key: files.key.clone(),
    };
    assert!(
        load_tls(&missing)
            .unwrap_err()
            .to_string()
            .contains("nope.pem")
    );
    let other = rcgen::generate_simple_self_signed(vec!["x".into()]).unwrap();
    std::fs::write(dir.path().join("other.pem"), other.key_pair.serialize_pem()).unwrap();
    let mismatched = TlsFiles {
        cert: files.cert.clone(),
        key: dir.path().join("other.pem"),
    };
    assert!(load_tls(&mismatched).is_err());
}
