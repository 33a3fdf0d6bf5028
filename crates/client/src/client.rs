//! The REST API client proper: one method per endpoint.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use cluster_types::query::pin_options_to_query;
use cluster_types::{
    Alert, ApiError, Cid, ConnectGraph, GlobalPinInfo, GlobalRepoGc, Metric, Pin, PinOptions, Version, ID,
};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;

use crate::config::ClientConfig;
use crate::error::ClientError;
use crate::path::{encode_segment, validate_peer_id, PinPath};
use crate::stream::{decode_line, ItemStream, LineBuffer};
use crate::wait::{status_reached, WaitParams};

/// A client of one cluster's REST API (with fail-over between several endpoints).
///
/// Cheap to clone: clones share the connection pool.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    endpoints: Arc<[String]>,
    /// Index of the endpoint that answered last; requests start there.
    current: Arc<AtomicUsize>,
    auth: Option<(String, String)>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Credentials stay out of logs.
        f.debug_struct("Client").field("endpoints", &self.endpoints).finish_non_exhaustive()
    }
}

impl Client {
    /// Builds a client. Fails on a malformed host and on what is not supported yet (unix
    /// sockets, libp2p endpoints). HTTPS verifies the server against the webpki roots unless
    /// `no_check_certificate` is set.
    pub fn new(config: ClientConfig) -> Result<Self, ClientError> {
        let endpoints = config.endpoint_urls()?;
        let mut builder = reqwest::Client::builder();
        if let Some(t) = config.timeout {
            builder = builder.timeout(t);
        }
        if config.no_check_certificate {
            builder = builder.danger_accept_invalid_certs(true);
        }
        // Like Go's proxy-from-environment, never send loopback traffic through a proxy.
        if endpoints.iter().all(|u| is_loopback_url(u)) {
            builder = builder.no_proxy();
        }
        let http = builder.build().map_err(ClientError::from_reqwest)?;
        Ok(Client { http, endpoints: endpoints.into(), current: Arc::new(AtomicUsize::new(0)), auth: config.basic_auth })
    }

    /// The base URLs requests go to, in fail-over order.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// `GET /id`: the contacted peer's identity.
    pub async fn id(&self) -> Result<ID, ClientError> {
        self.json(Method::GET, "/id", &[]).await
    }

    /// `GET /version`: the cluster release.
    pub async fn version(&self) -> Result<Version, ClientError> {
        self.json(Method::GET, "/version", &[]).await
    }

    /// `GET /peers`: the identity of every cluster member (unreachable ones carry `error`).
    pub async fn peers(&self) -> Result<ItemStream<ID>, ClientError> {
        self.stream(Method::GET, "/peers", &[]).await
    }

    /// `DELETE /peers/{peer}`: removes a peer from the cluster.
    pub async fn peer_rm(&self, peer: &str) -> Result<(), ClientError> {
        validate_peer_id(peer)?;
        self.send(Method::DELETE, &format!("/peers/{}", encode_segment(peer)), &[], false).await?;
        Ok(())
    }

    /// `POST /pins/{ipfs|ipns|ipld}/{path}`: pins a CID or an IPFS path (a bare CID is sent as
    /// `/ipfs/<cid>`, which is the form that honours `mode=direct`). Returns the pin as
    /// committed, with the resolved CID.
    pub async fn pin(&self, cid_or_path: &str, options: &PinOptions) -> Result<Pin, ClientError> {
        let path = PinPath::parse(cid_or_path)?;
        let query = pin_options_to_query(options);
        self.json(Method::POST, &path.url_path("/pins"), &query).await
    }

    /// `DELETE /pins/{ipfs|ipns|ipld}/{path}`: unpins a CID or an IPFS path. Returns the pin
    /// that was removed.
    pub async fn unpin(&self, cid_or_path: &str) -> Result<Pin, ClientError> {
        let path = PinPath::parse(cid_or_path)?;
        self.json(Method::DELETE, &path.url_path("/pins"), &[]).await
    }

    /// `GET /allocations`: the pinset. `filter` is a comma list of pin types (`pin`,
    /// `meta-pin`, `clusterdag-pin`, `shard-pin`, `all`), sent as given; empty means all.
    pub async fn allocations(&self, filter: &str) -> Result<ItemStream<Pin>, ClientError> {
        let query = non_empty_pair("filter", filter);
        self.stream(Method::GET, "/allocations", &query).await
    }

    /// `GET /allocations/{cid}`: one pin of the pinset (404 when absent).
    pub async fn allocation(&self, cid: &Cid) -> Result<Pin, ClientError> {
        self.json(Method::GET, &format!("/allocations/{cid}"), &[]).await
    }

    /// `GET /pins/{cid}`: the status of one pin on every peer (or only the contacted one).
    pub async fn status(&self, cid: &Cid, local: bool) -> Result<GlobalPinInfo, ClientError> {
        self.json(Method::GET, &format!("/pins/{cid}"), &local_pair(local)).await
    }

    /// `GET /pins?cids=a,b`: the status of several pins, streamed.
    pub async fn status_cids(&self, cids: &[Cid], local: bool) -> Result<ItemStream<GlobalPinInfo>, ClientError> {
        let mut query = local_pair(local);
        let list: Vec<String> = cids.iter().map(Cid::to_string).collect();
        query.push(("cids".into(), list.join(",")));
        self.stream(Method::GET, "/pins", &query).await
    }

    /// `GET /pins`: the status of every pin, streamed. `filter` is a comma list of tracker
    /// statuses (plus `error` and `queued`), sent as given for the cluster to judge; empty
    /// means all.
    pub async fn status_all(&self, filter: &str, local: bool) -> Result<ItemStream<GlobalPinInfo>, ClientError> {
        let mut query = local_pair(local);
        query.extend(non_empty_pair("filter", filter));
        self.stream(Method::GET, "/pins", &query).await
    }

    /// `POST /pins/{cid}/recover`: retries a failed pin or unpin.
    pub async fn recover(&self, cid: &Cid, local: bool) -> Result<GlobalPinInfo, ClientError> {
        self.json(Method::POST, &format!("/pins/{cid}/recover"), &local_pair(local)).await
    }

    /// `POST /pins/recover`: retries every failed item; streams those re-queued.
    pub async fn recover_all(&self, local: bool) -> Result<ItemStream<GlobalPinInfo>, ClientError> {
        self.stream(Method::POST, "/pins/recover", &local_pair(local)).await
    }

    /// `POST /ipfs/gc`: runs IPFS garbage collection on every peer (or the contacted one).
    pub async fn repo_gc(&self, local: bool) -> Result<GlobalRepoGc, ClientError> {
        self.json(Method::POST, "/ipfs/gc", &local_pair(local)).await
    }

    /// `GET /monitor/metrics`: the names of the metrics the cluster knows.
    pub async fn metric_names(&self) -> Result<Vec<String>, ClientError> {
        self.list(Method::GET, "/monitor/metrics").await
    }

    /// `GET /monitor/metrics/{name}`: the latest valid metric of that name from every peer.
    pub async fn metrics(&self, name: &str) -> Result<Vec<Metric>, ClientError> {
        if name.is_empty() {
            return Err(ClientError::InvalidArgument("empty metric name".into()));
        }
        self.list(Method::GET, &format!("/monitor/metrics/{}", encode_segment(name))).await
    }

    /// `GET /health/alerts`: the latest alerts (expired metrics), newest first.
    pub async fn alerts(&self) -> Result<Vec<Alert>, ClientError> {
        self.list(Method::GET, "/health/alerts").await
    }

    /// `GET /health/graph`: the cluster's connectivity as seen by this peer.
    pub async fn connect_graph(&self) -> Result<ConnectGraph, ClientError> {
        self.json(Method::GET, "/health/graph", &[]).await
    }

    /// `GET /health/actors`: the health of the peer's internal components, as free-form JSON.
    pub async fn health_actors(&self) -> Result<serde_json::Value, ClientError> {
        self.json(Method::GET, "/health/actors", &[]).await
    }

    /// Polls the status of `params.cid` every `params.interval` until
    /// [`status_reached`] says so, and returns that last status.
    ///
    /// Fails with [`ClientError::WaitFailed`] when a peer reports an error status, with the
    /// request's error when a poll fails, and with [`ClientError::Timeout`] when
    /// `params.timeout` elapses first.
    pub async fn wait_for(&self, params: &WaitParams) -> Result<GlobalPinInfo, ClientError> {
        let poll = async {
            let mut ticker = tokio::time::interval_at(
                tokio::time::Instant::now() + params.interval,
                params.interval.max(std::time::Duration::from_millis(1)),
            );
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let status = self.status(&params.cid, params.local).await?;
                if status_reached(params.target, &status, params.limit)? {
                    return Ok(status);
                }
            }
        };
        match params.timeout.filter(|t| !t.is_zero()) {
            None => poll.await,
            Some(t) => tokio::time::timeout(t, poll).await.unwrap_or_else(|_| {
                Err(ClientError::Timeout(format!(
                    "{} did not become {} within {}",
                    params.cid,
                    params.target,
                    cluster_types::format_go_duration(t)
                )))
            }),
        }
    }

    /// Sends a request, failing over to the next endpoint while connections are refused,
    /// and turns non-2xx answers into errors.
    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        stream: bool,
    ) -> Result<reqwest::Response, ClientError> {
        let n = self.endpoints.len();
        let start = self.current.load(Ordering::Relaxed) % n;
        let query = encode_query(query);
        let mut attempt = 0;
        loop {
            let idx = (start + attempt) % n;
            let url = format!("{}{}{}", self.endpoints[idx], path, query);
            let mut req = self.http.request(method.clone(), url);
            if let Some((user, pass)) = &self.auth {
                req = req.basic_auth(user, Some(pass));
            }
            if stream {
                // hyper-based servers only send the X-Stream-Error trailer when asked.
                req = req.header("TE", "trailers");
            }
            match req.send().await {
                Ok(resp) => {
                    self.current.store(idx, Ordering::Relaxed);
                    return check_status(resp).await;
                }
                Err(e) if e.is_connect() && attempt + 1 < n => attempt += 1,
                Err(e) => return Err(ClientError::from_reqwest(e)),
            }
        }
    }

    async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
    ) -> Result<T, ClientError> {
        let resp = self.send(method, path, query, false).await?;
        let body = resp.bytes().await.map_err(ClientError::from_reqwest)?;
        serde_json::from_slice(&body).map_err(|e| ClientError::Decode(format!("{e} (answer to {path})")))
    }

    async fn stream<T: DeserializeOwned + Send + 'static>(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
    ) -> Result<ItemStream<T>, ClientError> {
        let resp = self.send(method, path, query, true).await?;
        Ok(ItemStream::from_response(resp))
    }

    /// `POST /add`: uploads `entries` (streamed from disk) with `params`; `sent` counts the
    /// file bytes read so far, for progress displays. With `stream-channels=false` the answer
    /// is one JSON array, which the returned stream yields item by item all the same.
    ///
    /// The body cannot be replayed, so there is no fail-over: the request goes to the
    /// endpoint that answered last.
    pub async fn add(
        &self,
        entries: Vec<crate::add::AddEntry>,
        params: &cluster_types::AddParams,
        sent: Arc<std::sync::atomic::AtomicU64>,
    ) -> Result<ItemStream<cluster_types::AddedOutput>, ClientError> {
        let boundary = crate::add::boundary();
        let idx = self.current.load(Ordering::Relaxed) % self.endpoints.len();
        let url = format!("{}/add{}", self.endpoints[idx], encode_query(&params.to_query()));
        let mut req = self
            .http
            .post(url)
            .header("Content-Type", format!("multipart/form-data; boundary={boundary}"))
            .header("TE", "trailers")
            .body(crate::add::body(entries, boundary, sent));
        if let Some((user, pass)) = &self.auth {
            req = req.basic_auth(user, Some(pass));
        }
        let resp = check_status(req.send().await.map_err(ClientError::from_reqwest)?).await?;
        if params.stream_channels {
            return Ok(ItemStream::from_response(resp));
        }
        let body = resp.bytes().await.map_err(ClientError::from_reqwest)?;
        let items: Vec<cluster_types::AddedOutput> =
            serde_json::from_slice(&body).map_err(|e| ClientError::Decode(format!("{e} (answer to /add)")))?;
        Ok(ItemStream::from_items(items))
    }

    /// A list answered either as a JSON array (as the original does) or as NDJSON; 204 is
    /// an empty list.
    async fn list<T: DeserializeOwned>(&self, method: Method, path: &str) -> Result<Vec<T>, ClientError> {
        let resp = self.send(method, path, &[], false).await?;
        if resp.status() == StatusCode::NO_CONTENT {
            return Ok(Vec::new());
        }
        let body = resp.bytes().await.map_err(ClientError::from_reqwest)?;
        let trimmed = body.trim_ascii_start();
        if trimmed.is_empty() || trimmed == b"null" {
            return Ok(Vec::new());
        }
        if trimmed.starts_with(b"[") {
            return serde_json::from_slice(trimmed).map_err(|e| ClientError::Decode(format!("{e} (answer to {path})")));
        }
        let mut lines = LineBuffer::new();
        lines.push(&body);
        let mut out = Vec::new();
        while let Some(line) = lines.next_line()? {
            if !line.iter().all(u8::is_ascii_whitespace) {
                out.push(decode_line(&line)?);
            }
        }
        if let Some(rest) = lines.finish() {
            out.push(decode_line(&rest)?);
        }
        Ok(out)
    }
}

/// Passes 2xx answers through; reads the error object out of the others.
async fn check_status(resp: reqwest::Response) -> Result<reqwest::Response, ClientError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let body = resp.bytes().await.map_err(ClientError::from_reqwest)?;
    let code = status.as_u16();
    let api = match serde_json::from_slice::<ApiError>(&body) {
        Ok(e) => ApiError { code: if e.code == 0 { code } else { e.code }, message: e.message },
        Err(_) => {
            let text = String::from_utf8_lossy(&body);
            let text = text.trim();
            let message = if text.is_empty() {
                status.canonical_reason().unwrap_or("error").to_lowercase()
            } else {
                text.lines().map(str::trim).collect::<Vec<_>>().join(" ")
            };
            ApiError { code, message }
        }
    };
    Err(ClientError::Api(api))
}

fn local_pair(local: bool) -> Vec<(String, String)> {
    vec![("local".into(), local.to_string())]
}

fn non_empty_pair(key: &str, value: &str) -> Vec<(String, String)> {
    if value.is_empty() { Vec::new() } else { vec![(key.into(), value.into())] }
}

/// `?k=v&…`, or nothing. Commas stay literal (as the original client sends `cids=a,b`).
fn encode_query(pairs: &[(String, String)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(&encode_query_component(k));
        out.push('=');
        out.push_str(&encode_query_component(v));
    }
    out
}

fn encode_query_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b',' | b':') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn is_loopback_url(url: &str) -> bool {
    let host = url.trim_start_matches("http://");
    host.starts_with("127.") || host.starts_with("[::1]") || host.starts_with("localhost")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_encoding() {
        let q = vec![("cids".to_string(), "a,b".to_string()), ("meta-k y".to_string(), "v&=x".to_string())];
        assert_eq!(encode_query(&q), "?cids=a,b&meta-k%20y=v%26%3Dx");
        assert_eq!(encode_query(&[]), "");
    }
}
