//! The REST API (§2.1): routes, parameters, and the response rules of §2.2.
//!
//! Routing is one warp filter that hands method, path and query to a route table, because the
//! original's answers for near-misses are easier to keep exact in one match than across a tree
//! of combined warp filters:
//! * an unknown path is `404 {"code":404,"message":"not found"}`;
//! * a known path with the wrong method is `405` with a JSON error and an `Allow` header;
//! * a trailing slash (or doubled slashes) reaches the same route as the clean path. The
//!   original redirected with 307/301 instead, which turned POSTs into GETs in some clients
//!   (#1415); answering directly avoids that.
//!
//! Every response is `Content-Type: application/json` (plus the configured headers, added by
//! the server). Errors are `{"code","message"}` with the code as status. Lists are NDJSON
//! streams (see [`crate::stream`]).
//!
//! Unlike the original, `POST /pins/{cid}?mode=direct` pins directly: the original forced
//! `max_depth=-1` on that form, honouring `mode` only on the path form.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use cluster_types::{
    ApiError, Cid, GlobalPinInfo, PinTypeFilter, TrackerStatusFilter, parse_cid,
    query::pin_options_from_query,
};
use futures::StreamExt;
use http::header::{ALLOW, CONTENT_TYPE, TRAILER};
use http::{HeaderValue, Method, StatusCode};
use serde::Serialize;
use tokio::task::JoinHandle;
use warp::Filter;
use warp::filters::BoxedFilter;

use crate::config::RestApiConfig;
use crate::error::ApiServerError;
use crate::seam::ClusterApi;
use crate::security::{ErrorRenderer, Security};
use crate::server::{self, Guard, ServerOptions, StreamSlot, WarpResponse};
use crate::tls::load_tls;
use crate::stream::{self, Chunk, ChunkStream, Opening};

/// How many per-CID status requests of `GET /pins?cids=...` run at once.
const CIDS_CONCURRENCY: usize = 16;

const JSON: &str = "application/json";

/// Starts the REST API on `cfg.listen` and serves it until `shutdown` resolves.
///
/// Returns the bound address (useful with port 0) and the server task, which ends once open
/// connections have finished (or after a grace period) following shutdown. Fails when the
/// address cannot be bound or a configured header is invalid.
pub async fn serve_rest(
    cfg: RestApiConfig,
    api: Arc<dyn ClusterApi>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, JoinHandle<()>), ApiServerError> {
    let opts = ServerOptions {
        name: "rest",
        extra_headers: server::header_map(&cfg.headers)?,
        max_header_bytes: cfg.max_header_bytes,
        read_header_timeout: cfg.read_header_timeout,
        idle_timeout: cfg.idle_timeout,
    };
    let render: ErrorRenderer =
        Arc::new(|status: StatusCode, message: &str| error_response(&ApiError { code: status.as_u16(), message: message.to_string() }));
    let guard = Guard {
        tls: cfg.tls.as_ref().map(load_tls).transpose()?,
        security: Some(Security::new(cfg.security, render)),
    };
    server::serve_guarded(
        cfg.listen,
        opts,
        guard,
        rest_filter(api, cfg.chaos_enabled),
        shutdown,
    )
    .await
}

/// The body of `POST /peers`.
#[derive(serde::Deserialize)]
struct PeerAddBody {
    peer_id: String,
}

/// Shared state of the route handlers.
struct Rest {
    api: Arc<dyn ClusterApi>,
    chaos_enabled: bool,
}

/// The whole REST API as one filter.
///
/// Its error type is `Infallible` (checked by [`never_rejects`]): no warp rejection (missing
/// query, bad header, ...) can escape as warp's plain-text answer; every outcome, including
/// bad input, is a JSON response built by the handler.
fn rest_filter(api: Arc<dyn ClusterApi>, chaos_enabled: bool) -> BoxedFilter<(WarpResponse,)> {
    let rest = Arc::new(Rest { api, chaos_enabled });
    let raw_query = warp::query::raw().or(warp::any().map(String::new)).unify();
    // Bodies are only read up to MAX_BODY_BYTES with a declared length; anything else reaches
    // the handler as `Err(declared length)`, which routes that need a body answer with 413
    // (too large) or 400 (no length).
    let body = warp::body::content_length_limit(MAX_BODY_BYTES)
        .and(warp::body::bytes())
        .map(Ok)
        .or(warp::header::optional::<u64>("content-length").map(Err))
        .unify()
        .or(warp::any().map(|| Err(None)))
        .unify();
    // `POST /add` takes its body as a stream (uploads are any size); it is picked out first.
    let add = {
        let rest = rest.clone();
        warp::post()
            .and(warp::path::full())
            .and_then(|path: warp::path::FullPath| async move {
                match decode_path(path.as_str()) {
                    Ok(segs) if segs == ["add"] => Ok(()),
                    _ => Err(warp::reject::not_found()),
                }
            })
            .untuple_one()
            .and(warp::query::raw().or(warp::any().map(String::new)).unify())
            .and(warp::header::optional::<String>("content-type"))
            .and(warp::body::stream())
            .then(move |query: String, content_type: Option<String>, body| {
                let rest = rest.clone();
                async move { rest.add(&query, content_type.unwrap_or_default(), body).await }
            })
    };
    let rest_routes = warp::method().and(warp::path::full()).and(raw_query).and(body).then(
        move |method: Method, path: warp::path::FullPath, query: String, body: Body| {
            let rest = rest.clone();
            async move { rest.handle(method, path.as_str(), &query, body).await }
        },
    );
    never_rejects(add.or(rest_routes).unify()).boxed()
}

/// Largest request body accepted (only `POST /peers` takes one).
const MAX_BODY_BYTES: u64 = 1 << 20;

/// A request body read whole, or the declared length of one that was not read.
type Body = Result<bytes::Bytes, Option<u64>>;

/// Compile-time proof that a filter cannot reject.
fn never_rejects<F: Filter<Error = Infallible>>(f: F) -> F {
    f
}

/// Every endpoint in scope, with its path parameters still as text.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Id,
    Version,
    Peers,
    PeerAdd,
    PeerRm(String),
    Allocations,
    Allocation(String),
    StatusAll,
    Status(String),
    Pin(String),
    PinPath(String),
    Unpin(String),
    UnpinPath(String),
    RecoverAll,
    Recover(String),
    RepoGc,
    MetricNames,
    Metrics(String),
    Alerts,
    Graph,
    Block(String, bool),
    Health,
    ActorHealth,
    KillActor(String),
    Add,
}

/// Why no route matched.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Miss {
    NotFound,
    MethodNotAllowed(Vec<Method>),
}

/// Picks the route for `method` among those a path offers.
fn one_of(method: &Method, offers: Vec<(Method, Route)>) -> Result<Route, Miss> {
    let allowed: Vec<Method> = offers.iter().map(|(m, _)| m.clone()).collect();
    offers
        .into_iter()
        .find(|(m, _)| m == method)
        .map(|(_, r)| r)
        .ok_or(Miss::MethodNotAllowed(allowed))
}

/// The route table (§2.1) over decoded, non-empty path segments.
fn resolve(method: &Method, segs: &[String], chaos_enabled: bool) -> Result<Route, Miss> {
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let (get, post, delete) = (Method::GET, Method::POST, Method::DELETE);
    match s.as_slice() {
        ["id"] => one_of(method, vec![(get, Route::Id)]),
        ["add"] => one_of(method, vec![(Method::POST, Route::Add)]),
        ["version"] => one_of(method, vec![(get, Route::Version)]),
        ["peers"] => one_of(method, vec![(get.clone(), Route::Peers), (post.clone(), Route::PeerAdd)]),
        ["peers", p] => one_of(method, vec![(delete, Route::PeerRm(p.to_string()))]),
        ["allocations"] => one_of(method, vec![(get, Route::Allocations)]),
        ["allocations", c] => one_of(method, vec![(get, Route::Allocation(c.to_string()))]),
        ["pins"] => one_of(method, vec![(get, Route::StatusAll)]),
        // Only POST names the recover-all action; other methods see "recover" as a (bad) CID,
        // as the original's router did.
        ["pins", "recover"] if *method == Method::POST => Ok(Route::RecoverAll),
        ["pins", ns @ ("ipfs" | "ipns" | "ipld"), rest @ ..] if !rest.is_empty() => {
            let path = format!("/{ns}/{}", rest.join("/"));
            one_of(
                method,
                vec![
                    (post, Route::PinPath(path.clone())),
                    (delete, Route::UnpinPath(path)),
                ],
            )
        }
        ["pins", c] => one_of(
            method,
            vec![
                (get, Route::Status(c.to_string())),
                (post, Route::Pin(c.to_string())),
                (delete, Route::Unpin(c.to_string())),
            ],
        ),
        ["pins", c, "recover"] => one_of(method, vec![(post, Route::Recover(c.to_string()))]),
        ["ipfs", "gc"] => one_of(method, vec![(post, Route::RepoGc)]),
        ["monitor", "metrics"] => one_of(method, vec![(get, Route::MetricNames)]),
        ["monitor", "metrics", name] => {
            one_of(method, vec![(get, Route::Metrics(name.to_string()))])
        }
        ["health"] => one_of(
            method,
            vec![(get, Route::Health), (Method::HEAD, Route::Health)],
        ),
        ["health", "alerts"] => one_of(method, vec![(get, Route::Alerts)]),
        ["health", "graph"] => one_of(method, vec![(get, Route::Graph)]),
        ["health", "net", "block", peer] if chaos_enabled => one_of(
            method,
            vec![(Method::POST, Route::Block(peer.to_string(), true)), (Method::DELETE, Route::Block(peer.to_string(), false))],
        ),
        ["health", "actors"] => one_of(method, vec![(get, Route::ActorHealth)]),
        ["health", "actors", name, "kill"] if chaos_enabled => {
            one_of(method, vec![(post, Route::KillActor(name.to_string()))])
        }
        _ => Err(Miss::NotFound),
    }
}

impl Rest {
    /// Answers one request; every outcome, including bad input, is a response.
    async fn handle(&self, method: Method, raw_path: &str, raw_query: &str, body: Body) -> WarpResponse {
        let segs = match decode_path(raw_path) {
            Ok(segs) => segs,
            Err(e) => return error_response(&e),
        };
        let route = match resolve(&method, &segs, self.chaos_enabled) {
            Ok(route) => route,
            Err(Miss::NotFound) => return error_response(&ApiError::not_found("not found")),
            Err(Miss::MethodNotAllowed(allowed)) => return method_not_allowed(&allowed),
        };
        tracing::trace!(?route, "routed request");
        match self.dispatch(route, raw_query, body).await {
            Ok(resp) => resp,
            Err(e) => error_response(&e),
        }
    }

    async fn dispatch(&self, route: Route, raw_query: &str, body: Body) -> Result<WarpResponse, ApiError> {
        let api = &self.api;
        let q = Query::parse(raw_query)?;
        Ok(match route {
            Route::Id => json(&api.id().await),
            Route::Version => json(&api.version().await),
            Route::Peers => stream_response(stream::chunks(api.peers())).await,
            Route::PeerAdd => {
                let body = body.map_err(|declared| match declared {
                    Some(n) if n > MAX_BODY_BYTES => ApiError {
                        code: 413,
                        message: format!("request body of {n} bytes is larger than {MAX_BODY_BYTES} bytes"),
                    },
                    _ => ApiError::bad_request(format!(
                        "a JSON body with a Content-Length of at most {MAX_BODY_BYTES} bytes is required"
                    )),
                })?;
                let req: PeerAddBody = serde_json::from_slice(&body)
                    .map_err(|e| ApiError::bad_request(format!("malformed JSON body: {e}")))?;
                json(&api.peer_add(&req.peer_id).await?)
            }
            Route::PeerRm(peer) => {
                api.peer_rm(&peer).await?;
                no_content()
            }
            Route::Allocations => {
                let filter = PinTypeFilter::parse(q.get("filter").unwrap_or(""))?;
                stream_response(stream::chunks(api.allocations(filter))).await
            }
            Route::Allocation(c) => json(&api.allocation(parse_cid(&c)?).await?),
            Route::StatusAll => {
                let filter = TrackerStatusFilter::parse(q.get("filter").unwrap_or(""))?;
                let local = q.flag("local")?;
                let cids = parse_cid_list(q.get("cids").unwrap_or(""))?;
                if cids.is_empty() {
                    stream_response(stream::chunks(api.status_all(filter, local))).await
                } else {
                    stream_response(self.status_cids(cids, filter, local)).await
                }
            }
            Route::Status(c) => {
                let cid = parse_cid(&c)?;
                json(&api.status(cid, q.flag("local")?).await?)
            }
            Route::Pin(c) => {
                let cid = parse_cid(&c)?;
                let opts = pin_options_from_query(q.first_values())?;
                json(&api.pin(cid, opts).await?)
            }
            Route::PinPath(path) => {
                check_ipfs_path(&path)?;
                let opts = pin_options_from_query(q.first_values())?;
                json(&api.pin_path(&path, opts).await?)
            }
            Route::Unpin(c) => json(&api.unpin(parse_cid(&c)?).await?),
            Route::UnpinPath(path) => {
                check_ipfs_path(&path)?;
                json(&api.unpin_path(&path).await?)
            }
            Route::RecoverAll => {
                stream_response(stream::chunks(api.recover_all(q.flag("local")?))).await
            }
            Route::Recover(c) => {
                let cid = parse_cid(&c)?;
                json(&api.recover(cid, q.flag("local")?).await?)
            }
            Route::RepoGc => json(&api.repo_gc(q.flag("local")?).await?),
            Route::MetricNames => json(&api.metric_names().await?),
            Route::Metrics(name) => json(&api.metrics(&name).await?),
            Route::Alerts => json(&api.alerts().await?),
            Route::Graph => json(&api.connect_graph().await?),
            Route::Block(peer, blocked) => {
                tracing::warn!(%peer, blocked, "changing a peer link through the chaos hook");
                api.chaos_block(&peer, blocked).await?;
                no_content()
            }
            Route::Health => no_content(),
            Route::ActorHealth => json(&api.actor_health()),
            // POST /add is served by its own filter (streamed body); nothing else routes here.
            Route::Add => return Err(ApiError::bad_request("POST /add needs a multipart body")),
            Route::KillActor(name) => {
                tracing::warn!(actor = %name, "killing actor through the chaos hook");
                api.kill_actor(&name).await?;
                no_content()
            }
        })
    }

    /// `POST /add` (§11, §2.2): the body streams into the add pipeline; output is NDJSON with
    /// `X-Chunked-Output: 1`, or one JSON array with `stream-channels=false`.
    async fn add<S, B>(&self, raw_query: &str, content_type: String, body: S) -> WarpResponse
    where
        S: futures::Stream<Item = Result<B, warp::Error>> + Send + 'static,
        B: bytes::Buf + Send + 'static,
    {
        let started = async {
            let q = Query::parse(raw_query)?;
            let params = cluster_types::AddParams::from_query(q.first_values())?;
            let body = body
                .map(|r| match r {
                    Ok(mut buf) => Ok(buf.copy_to_bytes(buf.remaining())),
                    Err(e) => Err(ApiError::bad_request(format!("reading the upload failed: {e}"))),
                })
                .boxed();
            let stream_channels = params.stream_channels;
            self.api.add(&content_type, body, params).map(|out| (out, stream_channels))
        };
        let (out, stream_channels) = match started.await {
            Ok(v) => v,
            Err(e) => return error_response(&e),
        };
        let mut resp = if stream_channels {
            stream_response(stream::chunks(out)).await
        } else {
            let items: Result<Vec<cluster_types::AddedOutput>, ApiError> = out.collect::<Vec<_>>().await.into_iter().collect();
            match items {
                Ok(items) => json(&items),
                Err(e) => error_response(&e),
            }
        };
        if resp.status().is_success() {
            let h = resp.headers_mut();
            h.insert("X-Chunked-Output", HeaderValue::from_static("1"));
            h.insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        }
        resp
    }

    /// `GET /pins?cids=...`: per-CID status, several at a time, streamed in request order.
    ///
    /// A failing CID does not end the stream: its error joins the `X-Stream-Error` trailer, as
    /// in the original. If every CID fails, the first error is the response (the original
    /// answered 204 then). Unlike the original, a `filter` given with `cids` is applied.
    fn status_cids(&self, cids: Vec<Cid>, filter: TrackerStatusFilter, local: bool) -> ChunkStream {
        let api = self.api.clone();
        futures::stream::iter(cids)
            .map(move |cid| {
                let api = api.clone();
                async move { api.status(cid, local).await }
            })
            .buffered(CIDS_CONCURRENCY)
            .filter_map(move |res: Result<GlobalPinInfo, ApiError>| {
                let chunk = match res {
                    Ok(gpi) if gpi.matches(filter) => Some(stream::encode(&gpi)),
                    Ok(_) => None,
                    Err(e) => Some(Chunk::Partial(e)),
                };
                futures::future::ready(chunk)
            })
            .boxed()
    }
}

/// Checks the start of an IPFS path: `/ipfs/` and `/ipld/` paths must begin with a CID.
fn check_ipfs_path(path: &str) -> Result<(), ApiError> {
    let mut parts = path.trim_start_matches('/').splitn(3, '/');
    let ns = parts.next().unwrap_or_default();
    let root = parts.next().unwrap_or_default();
    if root.is_empty() {
        return Err(ApiError::bad_request(format!(
            "invalid path '{path}': nothing after /{ns}/"
        )));
    }
    if ns != "ipns" {
        parse_cid(root)?;
    }
    Ok(())
}

/// Parses the comma list of `cids`, ignoring empty entries.
fn parse_cid_list(list: &str) -> Result<Vec<Cid>, ApiError> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(parse_cid)
        .collect()
}

/// Decoded query parameters, in order.
struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Parses `a=b&c=d` with form decoding (`+` is a space); malformed escapes are a 400.
    fn parse(raw: &str) -> Result<Self, ApiError> {
        let mut pairs = Vec::new();
        for part in raw.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            let k = percent_decode(k, true).ok_or_else(|| bad_query(part))?;
            let v = percent_decode(v, true).ok_or_else(|| bad_query(part))?;
            pairs.push((k, v));
        }
        Ok(Query { pairs })
    }

    /// The first value of `key`, like Go's `Values.Get`.
    fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A boolean parameter; absent or empty is false, other values follow Go's `ParseBool`.
    fn flag(&self, key: &str) -> Result<bool, ApiError> {
        match self.get(key).unwrap_or("") {
            "" | "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
            "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
            other => Err(ApiError::bad_request(format!(
                "invalid {key} '{other}': expected true or false"
            ))),
        }
    }

    /// One pair per key, keeping the first value, as the original reads parameters.
    fn first_values(&self) -> Vec<(&str, &str)> {
        let mut seen = std::collections::HashSet::new();
        self.pairs
            .iter()
            .filter(|(k, _)| seen.insert(k.as_str()))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }
}

fn bad_query(part: &str) -> ApiError {
    ApiError::bad_request(format!("invalid query parameter '{part}'"))
}

/// Splits a request path into decoded segments, dropping empty ones (trailing or doubled
/// slashes).
fn decode_path(raw: &str) -> Result<Vec<String>, ApiError> {
    raw.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_decode(s, false)
                .ok_or_else(|| ApiError::bad_request(format!("invalid path segment '{s}'")))
        })
        .collect()
}

/// Decodes `%XX` escapes (and `+` when `plus_is_space`); `None` for bad escapes or non-UTF-8.
fn percent_decode(s: &str, plus_is_space: bool) -> Option<String> {
    if !s.contains(['%', '+']) {
        return Some(s.to_string());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// A 200 with `value` as JSON and a trailing newline, as Go's encoder writes it.
fn json<T: Serialize>(value: &T) -> WarpResponse {
    match serde_json::to_vec(value) {
        Ok(mut body) => {
            body.push(b'\n');
            with_json_type(StatusCode::OK, body)
        }
        Err(e) => error_response(&ApiError::internal(format!("cannot encode response: {e}"))),
    }
}

/// A 204 without body.
fn no_content() -> WarpResponse {
    with_json_type(StatusCode::NO_CONTENT, Vec::new())
}

fn with_json_type(status: StatusCode, body: Vec<u8>) -> WarpResponse {
    let mut resp = WarpResponse::new(body.into());
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(JSON));
    resp
}

/// The error object with the error's code as status (500 when the code is not an error status).
fn error_response(e: &ApiError) -> WarpResponse {
    let status = StatusCode::from_u16(e.code)
        .ok()
        .filter(|s| s.is_client_error() || s.is_server_error())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status.is_server_error() {
        tracing::warn!(code = status.as_u16(), error = %e.message, "request failed");
    }
    let body = ApiError {
        code: status.as_u16(),
        message: e.message.clone(),
    };
    let mut bytes = serde_json::to_vec(&body)
        .unwrap_or_else(|_| b"{\"code\":500,\"message\":\"internal error\"}".to_vec());
    bytes.push(b'\n');
    with_json_type(status, bytes)
}

/// 405 with the JSON error and the methods the path does accept.
fn method_not_allowed(allowed: &[Method]) -> WarpResponse {
    let mut resp = error_response(&ApiError {
        code: 405,
        message: "method not allowed".into(),
    });
    let list = allowed
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if let Ok(v) = HeaderValue::from_str(&list) {
        resp.headers_mut().insert(ALLOW, v);
    }
    resp
}

/// Decides the status from the stream's start (§2.2) and hands the rest to the server as body.
async fn stream_response(chunks: ChunkStream) -> WarpResponse {
    match stream::open(chunks).await {
        Opening::Items(open) => {
            let mut resp = with_json_type(StatusCode::OK, Vec::new());
            resp.headers_mut()
                .insert(TRAILER, HeaderValue::from_static("X-Stream-Error"));
            resp.extensions_mut().insert(StreamSlot::new(open));
            resp
        }
        Opening::Empty => no_content(),
        Opening::Failed(e) => error_response(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(p: &str) -> Vec<String> {
        decode_path(p).unwrap()
    }

    fn route(m: Method, p: &str) -> Result<Route, Miss> {
        resolve(&m, &segs(p), false)
    }

    #[test]
    fn routes() {
        assert_eq!(route(Method::GET, "/id"), Ok(Route::Id));
        assert_eq!(route(Method::GET, "/id/"), Ok(Route::Id));
        assert_eq!(route(Method::POST, "/pins/recover"), Ok(Route::RecoverAll));
        assert_eq!(
            route(Method::GET, "/pins/recover"),
            Ok(Route::Status("recover".into()))
        );
        assert_eq!(
            route(Method::POST, "/pins/Qm1/recover"),
            Ok(Route::Recover("Qm1".into()))
        );
        assert_eq!(
            route(Method::POST, "/pins/ipfs/Qm1/a/b/"),
            Ok(Route::PinPath("/ipfs/Qm1/a/b".into()))
        );
        assert_eq!(
            route(Method::DELETE, "/pins/ipns/name"),
            Ok(Route::UnpinPath("/ipns/name".into()))
        );
        assert_eq!(
            route(Method::GET, "/pins/ipfs"),
            Ok(Route::Status("ipfs".into()))
        );
        assert!(matches!(
            route(Method::GET, "/pins/ipfs/Qm1/a"),
            Err(Miss::MethodNotAllowed(_))
        ));
        assert!(matches!(
            route(Method::PUT, "/pins"),
            Err(Miss::MethodNotAllowed(_))
        ));
        assert_eq!(route(Method::POST, "/peers"), Ok(Route::PeerAdd));
        assert_eq!(route(Method::POST, "/add"), Ok(Route::Add));
        assert!(matches!(route(Method::GET, "/add"), Err(Miss::MethodNotAllowed(_))));
        assert_eq!(route(Method::GET, "/"), Err(Miss::NotFound));
        assert_eq!(
            route(Method::POST, "/health/actors/x/kill"),
            Err(Miss::NotFound)
        );
        assert_eq!(
            resolve(&Method::POST, &segs("/health/actors/x/kill"), true),
            Ok(Route::KillActor("x".into()))
        );
    }

    #[test]
    fn decoding() {
        assert_eq!(percent_decode("a%20b+c", true).unwrap(), "a b c");
        assert_eq!(percent_decode("a+b", false).unwrap(), "a+b");
        assert!(percent_decode("%zz", false).is_none());
        assert!(percent_decode("%4", false).is_none());
        assert!(percent_decode("%ff", false).is_none());
        assert!(decode_path("/pins/%zz").is_err());
        let q = Query::parse("local=true&name=a+b&name=c&meta-x=%2F").unwrap();
        assert!(q.flag("local").unwrap());
        assert_eq!(
            q.first_values(),
            vec![("local", "true"), ("name", "a b"), ("meta-x", "/")]
        );
        assert!(Query::parse("local=maybe").unwrap().flag("local").is_err());
        assert!(Query::parse("a=%").is_err());
    }

    #[test]
    fn ipfs_paths() {
        assert!(check_ipfs_path("/ipns/example.com/a").is_ok());
        assert!(check_ipfs_path("/ipfs/notacid/a").is_err());
        assert!(check_ipfs_path("/ipfs/bafkqaaa/a").is_ok());
    }
}
