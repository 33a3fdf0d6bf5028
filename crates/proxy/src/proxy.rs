//! Request dispatch: the hijacked Kubo commands with cluster semantics, everything else relayed.

use std::sync::Arc;

use bytes::Bytes;
use cluster_api::WarpResponse;
use cluster_types::{AddParams, ApiError, Cid, Pin, PinMode, PinOptions};
use futures::{Stream, StreamExt};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use serde_json::{Value, json};
use warp::Filter;
use warp::filters::BoxedFilter;

use crate::backend::ProxyBackend;
use crate::body::{self, FrameSender, STREAM_ERROR};
use crate::upstream::{self, JsonValues, Upstream};

/// The IPFS proxy: hijacks pin commands, relays the rest to the node.
pub struct Proxy {
    backend: Arc<dyn ProxyBackend>,
    upstream: Upstream,
}

/// A request as the proxy sees it; the body is only read when relayed.
struct Request<S> {
    method: Method,
    path: String,
    query: String,
    headers: HeaderMap,
    body: S,
}

/// The commands the proxy answers itself, under `/api/v0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Command {
    PinAdd,
    PinRm,
    PinLs,
    PinUpdate,
    RepoStat,
    RepoGc,
    BlockPut,
    DagPut,
    Add,
}

/// Which command a path names, and the `{arg}` a path like `/pin/add/{arg}` carries.
fn route(method: &Method, path: &str) -> Option<(Command, Option<String>)> {
    if !matches!(*method, Method::POST | Method::GET | Method::PUT) {
        return None;
    }
    let rest = path.strip_prefix("/api/v0/")?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let with_arg = |prefix: &str, cmd: Command| -> Option<(Command, Option<String>)> {
        if rest == prefix {
            return Some((cmd, None));
        }
        let arg = rest.strip_prefix(prefix)?.strip_prefix('/')?;
        (!arg.is_empty()).then(|| (cmd, Some(percent_decode(arg))))
    };
    match rest {
        "pin/update" => Some((Command::PinUpdate, None)),
        "repo/stat" => Some((Command::RepoStat, None)),
        "repo/gc" => Some((Command::RepoGc, None)),
        "block/put" => Some((Command::BlockPut, None)),
        "dag/put" => Some((Command::DagPut, None)),
        "add" => Some((Command::Add, None)),
        _ => with_arg("pin/add", Command::PinAdd)
            .or_else(|| with_arg("pin/rm", Command::PinRm))
            .or_else(|| with_arg("pin/ls", Command::PinLs)),
    }
}

fn percent_decode(s: &str) -> String {
    form_urlencoded::parse(format!("a={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Parsed query parameters, in order.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(raw: &str) -> Query {
        Query(form_urlencoded::parse(raw.as_bytes()).into_owned().collect())
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn all(&self, key: &str) -> Vec<&str> {
        self.0.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect()
    }

    fn is_true(&self, key: &str) -> bool {
        self.get(key) == Some("true")
    }

    /// The query with `key` set to `value` (replacing every occurrence).
    fn with(&self, key: &str, value: &str) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        for (k, v) in self.0.iter().filter(|(k, _)| k != key) {
            out.append_pair(k, v);
        }
        out.append_pair(key, value);
        out.finish()
    }
}

/// `arg` as an IPFS path: a path as given, or a bare CID under `/ipfs/` (the original's rule).
fn ipfs_path(arg: &str) -> Result<String, String> {
    let arg = arg.trim();
    if arg.is_empty() {
        return Err("argument \"ipfs-path\" is required".into());
    }
    let path = if arg.starts_with('/') { arg.to_string() } else { format!("/ipfs/{arg}") };
    let mut parts = path.splitn(4, '/').skip(1);
    let namespace = parts.next().unwrap_or_default();
    let root = parts.next().unwrap_or_default();
    match namespace {
        "ipfs" | "ipld" => {
            Cid::try_from(root).map_err(|e| format!("invalid path {path:?}: invalid cid: {e}"))?;
        }
        "ipns" if !root.is_empty() => {}
        _ => return Err(format!("invalid path {path:?}: not an /ipfs/, /ipns/ or /ipld/ path")),
    }
    Ok(path)
}

/// The Kubo name of a pin's mode.
fn kubo_type(pin: &Pin) -> &'static str {
    match pin.options.mode {
        PinMode::Direct => "direct",
        PinMode::Recursive => "recursive",
    }
}

impl Proxy {
    /// A proxy forwarding to `upstream` and pinning through `backend`.
    pub(crate) fn new(backend: Arc<dyn ProxyBackend>, upstream: Upstream) -> Proxy {
        Proxy { backend, upstream }
    }

    /// The warp filter answering every request.
    pub fn filter(self: &Arc<Self>) -> BoxedFilter<(WarpResponse,)> {
        let proxy = Arc::clone(self);
        let query = warp::query::raw().or(warp::any().map(String::new)).unify();
        warp::method()
            .and(warp::path::full())
            .and(query)
            .and(warp::header::headers_cloned())
            .and(warp::body::stream())
            .then(move |method: Method, path: warp::path::FullPath, query: String, headers: HeaderMap, body| {
                let proxy = Arc::clone(&proxy);
                async move {
                    let req = Request { method, path: path.as_str().to_string(), query, headers, body };
                    proxy.handle(req).await
                }
            })
            .boxed()
    }

    async fn handle<S, B>(&self, req: Request<S>) -> WarpResponse
    where
        S: Stream<Item = Result<B, warp::Error>> + Send + 'static,
        B: bytes::Buf + Send + 'static,
    {
        let Some((command, path_arg)) = route(&req.method, &req.path) else {
            return self.relay(req).await;
        };
        let query = Query::parse(&req.query);
        if matches!(command, Command::BlockPut | Command::DagPut) && !query.is_true("pin") {
            // without pin=true there is nothing for the cluster to do
            return self.relay(req).await;
        }
        let headers = self.upstream.hijack_headers(&req.method, &req.path, &req.headers).await;
        tracing::debug!(?command, path = %req.path, "ipfs proxy hijacks request");
        let arg = path_arg.or_else(|| query.get("arg").map(str::to_string)).unwrap_or_default();
        match command {
            Command::PinAdd => self.pin_add(headers, &arg, &query).await,
            Command::PinRm => self.pin_rm(headers, &arg).await,
            Command::PinLs => self.pin_ls(headers, &arg, &query).await,
            Command::PinUpdate => self.pin_update(headers, &query).await,
            Command::RepoStat => self.repo_stat(headers).await,
            Command::RepoGc => self.repo_gc(headers, &query).await,
            Command::BlockPut => self.put_and_pin(headers, req, &query, "Key").await,
            Command::DagPut => self.put_and_pin(headers, req, &query, "Cid").await,
            Command::Add => self.add(headers, req, &query).await,
        }
    }

    async fn relay<S, B>(&self, req: Request<S>) -> WarpResponse
    where
        S: Stream<Item = Result<B, warp::Error>> + Send + 'static,
        B: bytes::Buf + Send + 'static,
    {
        let target = if req.query.is_empty() { req.path.clone() } else { format!("{}?{}", req.path, req.query) };
        let body = upstream::has_body(&req.headers).then(|| upstream::stream_body(req.body));
        match self.upstream.send(req.method, &target, &req.headers, body).await {
            Ok(resp) => Upstream::relay(resp),
            Err(e) => {
                tracing::warn!(error = %e, path = %req.path, "ipfs proxy cannot relay request");
                upstream::unreachable(&e)
            }
        }
    }

    async fn pin_add(&self, headers: HeaderMap, arg: &str, query: &Query) -> WarpResponse {
        let path = match ipfs_path(arg) {
            Ok(p) => p,
            Err(e) => return body::error(headers, StatusCode::INTERNAL_SERVER_ERROR, &e),
        };
        let mode = if query.get("type") == Some("direct") { PinMode::Direct } else { PinMode::Recursive };
        let opts = PinOptions { mode, ..PinOptions::default() };
        match self.backend.pin_path(&path, opts).await {
            Ok(pin) => body::json(headers, &json!({ "Pins": [pin.cid.to_string()] })),
            Err(e) => cluster_error(headers, &e),
        }
    }

    async fn pin_rm(&self, headers: HeaderMap, arg: &str) -> WarpResponse {
        let path = match ipfs_path(arg) {
            Ok(p) => p,
            Err(e) => return body::error(headers, StatusCode::INTERNAL_SERVER_ERROR, &e),
        };
        match self.backend.unpin_path(&path).await {
            Ok(pin) => body::json(headers, &json!({ "Pins": [pin.cid.to_string()] })),
            Err(e) => cluster_error(headers, &e),
        }
    }

    /// `pin/ls` from the cluster's state (not from IPFS).
    async fn pin_ls(&self, mut headers: HeaderMap, arg: &str, query: &Query) -> WarpResponse {
        let stream = query.is_true("stream") || query.is_true("s");
        if !arg.is_empty() {
            let not_pinned = format!("path '{arg}' is not pinned");
            let Ok(cid) = Cid::try_from(arg.strip_prefix("/ipfs/").unwrap_or(arg)) else {
                return body::error(headers, StatusCode::INTERNAL_SERVER_ERROR, &not_pinned);
            };
            return match self.backend.pin_get(cid).await {
                Ok(pin) if stream => body::json(headers, &json!({ "Cid": pin.cid.to_string(), "Type": kubo_type(&pin) })),
                Ok(pin) => body::json(headers, &json!({ "Keys": { pin.cid.to_string(): { "Type": kubo_type(&pin) } } })),
                Err(e) if e.code == 404 => body::error(headers, StatusCode::INTERNAL_SERVER_ERROR, &not_pinned),
                Err(e) => cluster_error(headers, &e),
            };
        }
        let mut pins = self.backend.pins();
        // the first item decides between an error answer and a listing
        let first = match pins.next().await {
            Some(Err(e)) => return cluster_error(headers, &e),
            first => first.and_then(Result::ok),
        };
        headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if stream {
            headers.insert(http::header::TRAILER, HeaderValue::from_static(STREAM_ERROR));
        }
        let (tx, out) = body::channel();
        tokio::spawn(async move {
            let line = |pin: &Pin| format!("{}\n", json!({ "Cid": pin.cid.to_string(), "Type": kubo_type(pin) }));
            let entry = |pin: &Pin| format!("{}:{}", json!(pin.cid.to_string()), json!({ "Type": kubo_type(pin) }));
            if !stream && !tx.data(Bytes::from_static(b"{\"Keys\":{")).await {
                return;
            }
            let mut next: Option<Result<Pin, ApiError>> = first.map(Ok);
            let mut count = 0usize;
            while let Some(item) = next {
                match item {
                    Ok(pin) => {
                        let text = if stream {
                            line(&pin)
                        } else if count == 0 {
                            entry(&pin)
                        } else {
                            format!(",{}", entry(&pin))
                        };
                        count += 1;
                        if !tx.data(text).await {
                            return;
                        }
                    }
                    Err(e) if stream => return tx.finish(&[e.message]).await,
                    // a JSON object cannot be closed honestly after an error: cut it off
                    Err(e) => return tx.fail(e.message).await,
                }
                next = pins.next().await;
            }
            if stream {
                tx.finish(&[]).await;
            } else {
                tx.data(Bytes::from_static(b"}}\n")).await;
            }
        });
        body::respond(StatusCode::OK, headers, out)
    }

    async fn pin_update(&self, headers: HeaderMap, query: &Query) -> WarpResponse {
        let args = query.all("arg");
        let (from, to) = match args.as_slice() {
            [] => return body::error(headers, StatusCode::BAD_REQUEST, "argument \"from-path\" is required"),
            [_] => return body::error(headers, StatusCode::BAD_REQUEST, "argument \"to-path\" is required"),
            [from, to, ..] => (*from, *to),
        };
        let unpin = query.get("unpin") != Some("false");
        let from = match ipfs_path(from) {
            Ok(p) => p,
            Err(e) => return body::error(headers, StatusCode::INTERNAL_SERVER_ERROR, &format!("error parsing from-path: {e}")),
        };
        let to = match ipfs_path(to) {
            Ok(p) => p,
            Err(e) => return body::error(headers, StatusCode::INTERNAL_SERVER_ERROR, &format!("error parsing to-path: {e}")),
        };
        let from_cid = match self.backend.resolve(&from).await {
            Ok(c) => c,
            Err(e) => return cluster_error(headers, &e),
        };
        let opts = PinOptions { pin_update: Some(from_cid), ..PinOptions::default() };
        let pin = match self.backend.pin_path(&to, opts).await {
            Ok(p) => p,
            Err(e) => return cluster_error(headers, &e),
        };
        if unpin && pin.cid != from_cid
            && let Err(e) = self.backend.unpin(from_cid).await
        {
            return cluster_error(headers, &e);
        }
        body::json(headers, &json!({ "Pins": [from_cid.to_string(), pin.cid.to_string()] }))
    }

    async fn repo_stat(&self, headers: HeaderMap) -> WarpResponse {
        match self.backend.repo_stat().await {
            Ok((repo_size, storage_max)) => body::json(headers, &json!({ "RepoSize": repo_size, "StorageMax": storage_max })),
            Err(e) => cluster_error(headers, &e),
        }
    }

    async fn repo_gc(&self, mut headers: HeaderMap, query: &Query) -> WarpResponse {
        let stream_errors = query.is_true("stream-errors");
        let gc = match self.backend.repo_gc().await {
            Ok(gc) => gc,
            Err(e) => return cluster_error(headers, &e),
        };
        headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(http::header::TRAILER, HeaderValue::from_static(STREAM_ERROR));
        let (tx, out) = body::channel();
        tokio::spawn(async move {
            let mut errors = Vec::new();
            for (peer, result) in &gc.peer_map {
                let mut lines = String::new();
                for key in &result.keys {
                    let mut item = serde_json::Map::new();
                    if !key.key.is_empty() {
                        item.insert("Key".into(), json!({ "/": key.key }));
                    }
                    if !key.error.is_empty() {
                        if stream_errors {
                            item.insert("Error".into(), json!(key.error));
                        } else {
                            errors.push(key.error.clone());
                        }
                    }
                    if !item.is_empty() {
                        lines.push_str(&Value::Object(item).to_string());
                        lines.push('\n');
                    }
                }
                // a peer whose GC failed as a whole is reported too (the original dropped it)
                if !result.error.is_empty() {
                    let why = format!("{peer}: {}", result.error);
                    if stream_errors {
                        lines.push_str(&json!({ "Error": why }).to_string());
                        lines.push('\n');
                    } else {
                        errors.push(why);
                    }
                }
                if !lines.is_empty() && !tx.data(lines).await {
                    return;
                }
            }
            tx.finish(&errors).await;
        });
        body::respond(StatusCode::OK, headers, out)
    }

    /// `block/put` and `dag/put` with `pin=true`: stored with `pin=false`, then each stored CID
    /// is pinned in the cluster as the node reports it.
    async fn put_and_pin<S, B>(&self, mut headers: HeaderMap, req: Request<S>, query: &Query, field: &'static str) -> WarpResponse
    where
        S: Stream<Item = Result<B, warp::Error>> + Send + 'static,
        B: bytes::Buf + Send + 'static,
    {
        let target = format!("{}?{}", req.path, query.with("pin", "false"));
        let body = upstream::has_body(&req.headers).then(|| upstream::stream_body(req.body));
        let resp = match self.upstream.send(req.method, &target, &req.headers, body).await {
            Ok(r) => r,
            Err(e) => return body::error(headers, StatusCode::INTERNAL_SERVER_ERROR, &e),
        };
        if resp.status() != StatusCode::OK {
            return Upstream::relay(resp);
        }
        headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(http::header::TRAILER, HeaderValue::from_static(STREAM_ERROR));
        let backend = Arc::clone(&self.backend);
        let (tx, out) = body::channel();
        tokio::spawn(async move {
            let mut values = JsonValues::new(resp);
            let mut errors = Vec::new();
            while let Some(value) = values.next().await {
                let value = match value {
                    Ok(v) => v,
                    Err(e) => {
                        errors.push(e);
                        break;
                    }
                };
                match stored_cid(&value, field) {
                    Some(cid) => {
                        if let Err(e) = backend.pin(cid, PinOptions::default()).await {
                            tracing::warn!(%cid, error = %e, "ipfs proxy cannot pin a put block");
                            errors.push(e.message);
                        }
                    }
                    None => errors.push(format!("the node answered without a cid: {value}")),
                }
                if !send_line(&tx, &value).await {
                    return;
                }
            }
            tx.finish(&errors).await;
        });
        body::respond(StatusCode::OK, headers, out)
    }
}

impl Proxy {
    /// `add`: the cluster's add with the same query (Kubo's `trickle=true` and `pin=false`
    /// spelled the cluster's way), answered with Kubo's output objects.
    async fn add<S, B>(&self, mut headers: HeaderMap, req: Request<S>, query: &Query) -> WarpResponse
    where
        S: Stream<Item = Result<B, warp::Error>> + Send + 'static,
        B: bytes::Buf + Send + 'static,
    {
        if query.is_true("only-hash") {
            return body::error(headers, StatusCode::BAD_REQUEST, "only-hash is not supported by the cluster proxy");
        }
        let mut pairs: Vec<(&str, &str)> = query.0.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        if query.is_true("trickle") {
            pairs.push(("layout", "trickle"));
        }
        if query.get("pin") == Some("false") {
            pairs.push(("no-pin", "true"));
        }
        let params = match AddParams::from_query(pairs.iter().copied()) {
            Ok(p) => p,
            Err(e) => return body::error(headers, StatusCode::BAD_REQUEST, &e.message),
        };
        let content_type = req.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let upload = req
            .body
            .map(|chunk| chunk.map(|mut b| b.copy_to_bytes(b.remaining())).map_err(|e| ApiError::bad_request(format!("reading the upload: {e}"))))
            .boxed();
        let mut added = match self.backend.add(&content_type, upload, params) {
            Ok(s) => s,
            Err(e) if e.code == 400 => return body::error(headers, StatusCode::BAD_REQUEST, &e.message),
            Err(e) => return cluster_error(headers, &e),
        };
        headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(http::header::TRAILER, HeaderValue::from_static(STREAM_ERROR));
        headers.insert("X-Chunked-Output", HeaderValue::from_static("1"));
        let (tx, out) = body::channel();
        tokio::spawn(async move {
            while let Some(item) = added.next().await {
                match item {
                    Ok(o) => {
                        // Kubo's objects: progress (`progress=true`, the default of its CLI on a
                        // terminal) carries `Bytes`, a finished entry `Hash` and `Size`.
                        let line = match o.cid {
                            Some(cid) => json!({ "Name": o.name, "Hash": cid.to_string(), "Size": o.size.to_string() }),
                            None => json!({ "Name": o.name, "Bytes": o.bytes }),
                        };
                        if !send_line(&tx, &line).await {
                            return;
                        }
                    }
                    Err(e) => return tx.finish(&[e.message]).await,
                }
            }
            tx.finish(&[]).await;
        });
        body::respond(StatusCode::OK, headers, out)
    }
}

/// The CID a `block/put` (`{"Key":"<cid>"}`) or `dag/put` (`{"Cid":{"/":"<cid>"}}`) answer names.
fn stored_cid(value: &Value, field: &str) -> Option<Cid> {
    let v = value.get(field)?;
    let text = v.as_str().or_else(|| v.get("/").and_then(Value::as_str))?;
    Cid::try_from(text).ok()
}

async fn send_line(tx: &FrameSender, value: &Value) -> bool {
    let mut line = value.to_string();
    line.push('\n');
    tx.data(line).await
}

/// A cluster error as the original's proxy reports it: 500 with the message.
fn cluster_error(headers: HeaderMap, e: &ApiError) -> WarpResponse {
    body::error(headers, StatusCode::INTERNAL_SERVER_ERROR, &e.message)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CID: &str = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o";

    #[test]
    fn routes() {
        let post = Method::POST;
        assert_eq!(route(&post, "/api/v0/pin/add"), Some((Command::PinAdd, None)));
        assert_eq!(route(&post, &format!("/api/v0/pin/add/{CID}")), Some((Command::PinAdd, Some(CID.into()))));
        assert_eq!(route(&Method::GET, "/api/v0/pin/ls/"), Some((Command::PinLs, None)));
        assert_eq!(route(&Method::PUT, "/api/v0/pin/rm"), Some((Command::PinRm, None)));
        assert_eq!(route(&post, "/api/v0/pin/update"), Some((Command::PinUpdate, None)));
        assert_eq!(route(&post, "/api/v0/repo/gc"), Some((Command::RepoGc, None)));
        assert_eq!(route(&post, "/api/v0/block/put"), Some((Command::BlockPut, None)));
        assert_eq!(route(&post, "/api/v0/add"), Some((Command::Add, None)));
        // others are relayed
        assert_eq!(route(&Method::OPTIONS, "/api/v0/pin/add"), None);
        assert_eq!(route(&Method::HEAD, "/api/v0/pin/add"), None);
        assert_eq!(route(&post, "/api/v0/version"), None);
        assert_eq!(route(&post, "/api/v0/pin/addx"), None);
        assert_eq!(route(&post, "/api/v0/addx"), None);
        assert_eq!(route(&post, "/pin/add"), None);
    }

    #[test]
    fn paths() {
        assert_eq!(ipfs_path(CID).unwrap(), format!("/ipfs/{CID}"));
        assert_eq!(ipfs_path(&format!("/ipfs/{CID}/a/b")).unwrap(), format!("/ipfs/{CID}/a/b"));
        assert_eq!(ipfs_path("/ipns/example.org").unwrap(), "/ipns/example.org");
        assert!(ipfs_path("").is_err());
        assert!(ipfs_path("nope").is_err());
        assert!(ipfs_path("/ipfs/").is_err());
        assert!(ipfs_path("/foo/bar").is_err());
        assert!(ipfs_path("/ipns/").is_err());
    }

    #[test]
    fn queries() {
        let q = Query::parse("arg=a&arg=b&pin=true&x=%2F");
        assert_eq!(q.all("arg"), vec!["a", "b"]);
        assert!(q.is_true("pin"));
        assert_eq!(q.get("x"), Some("/"));
        let rebuilt = Query::parse(&q.with("pin", "false"));
        assert_eq!(rebuilt.get("pin"), Some("false"));
        assert_eq!(rebuilt.all("arg"), vec!["a", "b"]);
        assert_eq!(percent_decode("%2Fipfs%2Fx"), "/ipfs/x");
    }

    #[test]
    fn stored_cids() {
        let key = json!({ "Key": CID, "Size": 3 });
        assert_eq!(stored_cid(&key, "Key").unwrap().to_string(), CID);
        let dag = json!({ "Cid": { "/": CID } });
        assert_eq!(stored_cid(&dag, "Cid").unwrap().to_string(), CID);
        assert!(stored_cid(&dag, "Key").is_none());
    }
}
