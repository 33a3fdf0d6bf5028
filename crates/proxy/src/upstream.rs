//! The IPFS daemon behind the proxy: forwarding requests to it unchanged (bodies streamed both
//! ways) and learning the headers hijacked answers copy from it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cluster_api::{RawBody, WarpResponse};
use cluster_ipfs_http::NodeAddress;
use futures::{Stream, StreamExt, TryStreamExt};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use http_body_util::BodyExt;

use crate::body::{self, BoxError};

/// Budget of the small requests the proxy makes on its own (header extraction, CORS pre-flight).
const SIDE_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Headers that describe one hop of a connection, never forwarded (RFC 9110 §7.6.1), plus
/// `Host`, which the client sets for the node.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// CORS headers of the node's pre-flight answer that hijacked answers copy.
const CORS_HEADERS: [&str; 3] = ["access-control-allow-origin", "vary", "access-control-allow-credentials"];

/// The IPFS node's RPC API.
pub(crate) struct Upstream {
    client: reqwest::Client,
    base: String,
    address: String,
    extract: Vec<HeaderName>,
    extract_path: String,
    extract_ttl: Duration,
    extracted: Mutex<Option<(Instant, HeaderMap)>>,
}

impl Upstream {
    pub(crate) fn new(
        node: &NodeAddress,
        extra: &[String],
        extract_path: &str,
        extract_ttl: Duration,
    ) -> Result<Upstream, String> {
        let client = node
            .client_builder()
            .pool_idle_timeout(Duration::from_secs(3))
            .build()
            .map_err(|e| format!("cannot build the http client: {e}"))?;
        let mut extract = vec![HeaderName::from_static("access-control-expose-headers")];
        for name in extra {
            let name = HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|e| format!("extract_headers_extra: invalid header name {name:?}: {e}"))?;
            if !extract.contains(&name) {
                extract.push(name);
            }
        }
        let extract_path = if extract_path.starts_with('/') { extract_path.to_string() } else { format!("/{extract_path}") };
        Ok(Upstream {
            client,
            base: node.base_url(),
            address: node.to_string(),
            extract,
            extract_path,
            extract_ttl,
            extracted: Mutex::new(None),
        })
    }

    /// Sends a request to the node as the client sent it (hop-by-hop headers aside).
    pub(crate) async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &HeaderMap,
        body: Option<reqwest::Body>,
    ) -> Result<reqwest::Response, String> {
        let mut request = self.client.request(method, format!("{}{path_and_query}", self.base));
        let mut forwarded = HeaderMap::with_capacity(headers.len());
        for (name, value) in headers {
            if !is_hop_by_hop(name, headers) && name != http::header::HOST {
                forwarded.append(name.clone(), value.clone());
            }
        }
        request = request.headers(forwarded);
        if let Some(body) = body {
            request = request.body(body);
        }
        request.send().await.map_err(|e| format!("cannot reach the ipfs node at {}: {}", self.address, chain(&e)))
    }

    /// The node's answer relayed as it comes: status, headers (hop-by-hop aside), body frames
    /// and trailers.
    pub(crate) fn relay(resp: reqwest::Response) -> WarpResponse {
        let resp: http::Response<reqwest::Body> = resp.into();
        let (parts, upstream) = resp.into_parts();
        let mut headers = HeaderMap::with_capacity(parts.headers.len());
        for (name, value) in &parts.headers {
            if !is_hop_by_hop(name, &parts.headers) {
                headers.append(name.clone(), value.clone());
            }
        }
        // the node's trailers travel too, so announce them as the node did
        if let Some(t) = parts.headers.get(http::header::TRAILER) {
            headers.insert(http::header::TRAILER, t.clone());
        }
        let body: RawBody = Box::pin(upstream.map_err(|e| -> BoxError { Box::new(e) }));
        body::respond(parts.status, headers, body)
    }

    /// Headers every hijacked answer carries: the ones learned from `extract_headers_path`
    /// (cached for `extract_headers_ttl`), the node's CORS answer for the request's origin, and
    /// the proxy's `Server`.
    pub(crate) async fn hijack_headers(&self, method: &Method, path: &str, request: &HeaderMap) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(origin) = request.get(http::header::ORIGIN) {
            for (name, value) in self.cors(origin, method, path).await {
                headers.append(name, value);
            }
        }
        for (name, value) in self.extracted().await {
            headers.append(name, value);
        }
        let server = format!("ipfs-cluster/ipfsproxy/{}", cluster_types::VERSION);
        if let Ok(v) = HeaderValue::from_str(&server) {
            headers.insert(http::header::SERVER, v);
        }
        headers
    }

    /// The node's CORS answer to a pre-flight for this request, as a browser would ask it.
    async fn cors(&self, origin: &HeaderValue, method: &Method, path: &str) -> Vec<(HeaderName, HeaderValue)> {
        let request = self
            .client
            .request(Method::OPTIONS, format!("{}{path}", self.base))
            .header(http::header::ORIGIN, origin.clone())
            .header(http::header::ACCESS_CONTROL_REQUEST_METHOD, method.as_str())
            .timeout(SIDE_REQUEST_TIMEOUT);
        match request.send().await {
            Ok(resp) => pick(resp.headers(), CORS_HEADERS.iter().map(|n| HeaderName::from_static(n))),
            Err(e) => {
                tracing::debug!(error = %chain(&e), "cors pre-flight to the ipfs node failed");
                Vec::new()
            }
        }
    }

    async fn extracted(&self) -> Vec<(HeaderName, HeaderValue)> {
        {
            let cached = self.extracted.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((at, headers)) = cached.as_ref()
                && at.elapsed() < self.extract_ttl
            {
                return pick(headers, self.extract.iter().cloned());
            }
        }
        let request = self.client.post(format!("{}{}", self.base, self.extract_path)).timeout(SIDE_REQUEST_TIMEOUT);
        match request.send().await {
            Ok(resp) => {
                let headers = resp.headers().clone();
                let picked = pick(&headers, self.extract.iter().cloned());
                *self.extracted.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), headers));
                picked
            }
            Err(e) => {
                // not cached: the next hijacked request tries again
                tracing::debug!(error = %chain(&e), path = %self.extract_path, "cannot learn the ipfs node's headers");
                Vec::new()
            }
        }
    }
}

/// The values of `names` found in `headers`.
fn pick(headers: &HeaderMap, names: impl Iterator<Item = HeaderName>) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = Vec::new();
    for name in names {
        for value in headers.get_all(&name) {
            out.push((name.clone(), value.clone()));
        }
    }
    out
}

/// True for hop-by-hop headers, including those a `Connection` header names.
fn is_hop_by_hop(name: &HeaderName, headers: &HeaderMap) -> bool {
    if HOP_BY_HOP.contains(&name.as_str()) {
        return true;
    }
    headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(name.as_str()))
}

/// A request body streamed to the node as the client sends it.
pub(crate) fn stream_body<S, B>(stream: S) -> reqwest::Body
where
    S: Stream<Item = Result<B, warp::Error>> + Send + 'static,
    B: bytes::Buf + Send + 'static,
{
    reqwest::Body::wrap_stream(stream.map_ok(|mut b| b.copy_to_bytes(b.remaining())).map_err(|e| -> BoxError { Box::new(e) }))
}

/// True when the request carries a body worth forwarding.
pub(crate) fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(http::header::TRANSFER_ENCODING)
        || headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_some_and(|n| n > 0)
}

/// A relayable answer for a node that could not be reached (Go's reverse proxy answers 502).
pub(crate) fn unreachable(why: &str) -> WarpResponse {
    body::error(HeaderMap::new(), StatusCode::BAD_GATEWAY, why)
}

/// An error and its causes, on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Reads JSON values one by one from a streamed answer (Kubo's NDJSON or concatenated JSON).
pub(crate) struct JsonValues {
    stream: futures::stream::BoxStream<'static, Result<Bytes, reqwest::Error>>,
    buf: Vec<u8>,
    ended: bool,
}

/// One JSON value larger than this means the node misbehaves.
const MAX_JSON_VALUE: usize = 16 * 1024 * 1024;

impl JsonValues {
    pub(crate) fn new(resp: reqwest::Response) -> JsonValues {
        JsonValues { stream: resp.bytes_stream().boxed(), buf: Vec::new(), ended: false }
    }

    /// The next value, `None` at the end.
    pub(crate) async fn next(&mut self) -> Option<Result<serde_json::Value, String>> {
        loop {
            let start = self.buf.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(self.buf.len());
            if start > 0 {
                self.buf.drain(..start);
            }
            if !self.buf.is_empty() {
                let mut values = serde_json::Deserializer::from_slice(&self.buf).into_iter::<serde_json::Value>();
                match values.next() {
                    Some(Ok(v)) => {
                        let used = values.byte_offset();
                        self.buf.drain(..used);
                        return Some(Ok(v));
                    }
                    Some(Err(e)) if !e.is_eof() => return Some(Err(format!("unexpected answer from the node: {e}"))),
                    _ => {}
                }
                if self.buf.len() > MAX_JSON_VALUE {
                    return Some(Err("the node sent an oversized answer".into()));
                }
            }
            if self.ended {
                return (!self.buf.is_empty()).then(|| Err("the node's answer ended mid-value".into()));
            }
            match self.stream.next().await {
                Some(Ok(chunk)) => self.buf.extend_from_slice(&chunk),
                Some(Err(e)) => return Some(Err(format!("reading the node's answer: {}", chain(&e)))),
                None => self.ended = true,
            }
        }
    }
}
