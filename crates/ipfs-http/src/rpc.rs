//! The transport: `POST /api/v0/<command>` with deadlines, the failure back-off, error decoding,
//! multipart bodies and incremental JSON reading of streamed answers.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use cluster_ipfs::IpfsError;
use futures::StreamExt;
use futures::stream::BoxStream;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::time::Instant;
use tracing::debug;

use crate::address::NodeAddress;
use crate::backoff::Backoff;

/// Error bodies are short; a node sending more is not worth reading in full.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// One JSON value of a streamed answer larger than this means the node misbehaves.
const MAX_JSON_VALUE: usize = 16 * 1024 * 1024;
/// js-ipfs closes idle keep-alive connections after 5 s; reusing one it is about to close makes
/// a POST fail for nothing, so idle connections are dropped before that.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(3);

/// Why one RPC call failed, before it is turned into an [`IpfsError`] for the caller.
#[derive(Debug, Clone)]
pub(crate) enum RpcError {
    /// The deadline passed.
    Timeout,
    /// No answer: connection refused or reset, or the body broke off.
    Transport(String),
    /// The node answered with an error status.
    Status { status: StatusCode, message: String },
    /// The node answered something this client cannot understand.
    Decode(String),
}

impl RpcError {
    /// The message a node gave with its error status, if any.
    pub(crate) fn node_message(&self) -> Option<&str> {
        match self {
            RpcError::Status { message, .. } => Some(message),
            _ => None,
        }
    }

    /// True when the node does not know the command (Kubo's and js-ipfs's "not found" for routes).
    pub(crate) fn is_unknown_command(&self) -> bool {
        matches!(self, RpcError::Status { status, .. } if *status == StatusCode::NOT_FOUND)
    }

    /// Maps to the connector error, naming the command for context.
    pub(crate) fn into_ipfs(self, command: &str) -> IpfsError {
        match self {
            RpcError::Timeout => IpfsError::Timeout,
            RpcError::Transport(e) => IpfsError::Backend(format!("{command}: {e}")),
            RpcError::Decode(e) => {
                IpfsError::Backend(format!("{command}: unexpected answer from the node: {e}"))
            }
            RpcError::Status { status, message } => {
                let lower = message.to_ascii_lowercase();
                if status == StatusCode::NOT_FOUND {
                    IpfsError::Unsupported(format!(
                        "the ipfs node does not support /api/v0/{command}"
                    ))
                } else if lower.contains("not found")
                    || lower.contains("no link named")
                    || lower.contains("could not resolve")
                    || lower.contains("no such file")
                {
                    IpfsError::NotFound(format!("{command}: {message}"))
                } else if status == StatusCode::BAD_REQUEST {
                    IpfsError::InvalidInput(format!("{command}: {message}"))
                } else {
                    IpfsError::Backend(format!("{command}: {message} (http {status})"))
                }
            }
        }
    }
}

/// A `multipart/form-data` body of files named `file`, as Kubo's `add` and `block/put` expect.
pub(crate) struct Multipart {
    boundary: String,
    parts: Vec<Bytes>,
}

impl Multipart {
    pub(crate) fn new(files: &[Bytes]) -> Multipart {
        let boundary = pick_boundary(files);
        let mut parts = Vec::with_capacity(files.len() * 3 + 1);
        for file in files {
            parts.push(Bytes::from(format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"file\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            )));
            parts.push(file.clone());
            parts.push(Bytes::from_static(b"\r\n"));
        }
        parts.push(Bytes::from(format!("--{boundary}--\r\n")));
        Multipart { boundary, parts }
    }

    fn content_type(&self) -> String {
        format!("multipart/form-data; boundary={}", self.boundary)
    }

    fn len(&self) -> usize {
        self.parts.iter().map(Bytes::len).sum()
    }

    fn into_body(self) -> reqwest::Body {
        // streamed part by part so file contents are not copied into one buffer
        let chunks = self.parts.into_iter().map(Ok::<Bytes, std::io::Error>);
        reqwest::Body::wrap_stream(futures::stream::iter(chunks))
    }
}

/// A boundary that occurs in none of the files (checked, not just assumed unlikely).
fn pick_boundary(files: &[Bytes]) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    loop {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let boundary = format!("clusteripfshttp{nanos:016x}{n:08x}");
        let needle = boundary.as_bytes();
        let clash = files
            .iter()
            .any(|f| f.windows(needle.len()).any(|w| w == needle));
        if !clash {
            return boundary;
        }
    }
}

/// The HTTP side of the connector: one client, one base URL, the back-off.
#[derive(Debug)]
pub(crate) struct Rpc {
    client: reqwest::Client,
    base: String,
    address: NodeAddress,
    pub(crate) backoff: Backoff,
}

impl Rpc {
    pub(crate) fn new(address: NodeAddress) -> Result<Rpc, IpfsError> {
        let builder = address
            .client_builder()
            .pool_idle_timeout(POOL_IDLE_TIMEOUT);
        let client = builder
            .build()
            .map_err(|e| IpfsError::Backend(format!("cannot build the http client: {e}")))?;
        Ok(Rpc {
            base: address.base_url(),
            client,
            address,
            backoff: Backoff::new(),
        })
    }

    pub(crate) fn address(&self) -> &NodeAddress {
        &self.address
    }

    /// Sends one request and waits for a successful status, until `deadline` if one is given.
    ///
    /// Failing to get any answer (refused, reset, deadline passed) counts towards the back-off
    /// when `counts_as_failure` is set; pins leave it unset because a js-ipfs pin legitimately
    /// sends nothing until it is done, so its watchdog firing says nothing about the node's health.
    pub(crate) async fn send(
        &self,
        command: &str,
        query: &[(&str, String)],
        body: Option<Multipart>,
        deadline: Option<Instant>,
        counts_as_failure: bool,
    ) -> Result<reqwest::Response, RpcError> {
        let attempt = async {
            self.backoff.admit().await;
            let mut request = self
                .client
                .post(format!("{}/api/v0/{command}", self.base))
                .query(query);
            if let Some(body) = body {
                request = request
                    .header(reqwest::header::CONTENT_TYPE, body.content_type())
                    .header(reqwest::header::CONTENT_LENGTH, body.len())
                    .body(body.into_body());
            }
            request.send().await
        };
        let sent = match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, attempt).await,
            None => Ok(attempt.await),
        };
        let response = match sent {
            Err(_) => {
                if counts_as_failure {
                    self.backoff.record_failure();
                }
                debug!(command, node = %self.address, "ipfs request timed out");
                return Err(RpcError::Timeout);
            }
            Ok(Err(e)) => {
                if counts_as_failure {
                    self.backoff.record_failure();
                }
                return Err(RpcError::Transport(format!(
                    "cannot reach the ipfs node at {}: {}",
                    self.address,
                    error_chain(&e)
                )));
            }
            Ok(Ok(response)) => response,
        };
        self.backoff.record_success();
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, read_capped(response))
                .await
                .unwrap_or_default(),
            None => read_capped(response).await,
        };
        let message = error_message(&text);
        debug!(command, %status, message = %message, "ipfs node answered with an error");
        Err(RpcError::Status { status, message })
    }

    /// Sends a request and returns the whole body, all within `deadline`.
    pub(crate) async fn bytes(
        &self,
        command: &str,
        query: &[(&str, String)],
        deadline: Option<Instant>,
    ) -> Result<Bytes, RpcError> {
        let response = self.send(command, query, None, deadline, true).await?;
        let body = response.bytes();
        let read = match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, body)
                .await
                .map_err(|_| RpcError::Timeout)?,
            None => body.await,
        };
        read.map_err(|e| RpcError::Transport(format!("reading the answer: {}", error_chain(&e))))
    }

    /// Sends a request whose answer is one JSON value (the first, if the node sends several).
    pub(crate) async fn json(
        &self,
        command: &str,
        query: &[(&str, String)],
        deadline: Option<Instant>,
    ) -> Result<Value, RpcError> {
        let response = self.send(command, query, None, deadline, true).await?;
        let mut values = JsonStream::new(response);
        match values.next_within(deadline).await {
            Some(result) => result,
            None => Err(RpcError::Decode("empty answer".into())),
        }
    }
}

/// Reads concatenated or newline-separated JSON values from a streamed body, one at a time.
pub(crate) struct JsonStream {
    body: BoxStream<'static, reqwest::Result<Bytes>>,
    buffer: BytesMut,
    finished: bool,
}

impl JsonStream {
    pub(crate) fn new(response: reqwest::Response) -> JsonStream {
        JsonStream {
            body: response.bytes_stream().boxed(),
            buffer: BytesMut::new(),
            finished: false,
        }
    }

    /// The next value, or `None` at the end of the body. An error object in the stream (Kubo and
    /// js-ipfs report mid-stream failures as `{"Message":…,"Type":"error"}`) becomes an error.
    pub(crate) async fn next(&mut self) -> Option<Result<Value, RpcError>> {
        loop {
            if let Some(parsed) = self.parse_one() {
                return Some(parsed.and_then(|value| match stream_error(&value) {
                    Some(message) => Err(RpcError::Status {
                        status: StatusCode::INTERNAL_SERVER_ERROR,
                        message,
                    }),
                    None => Ok(value),
                }));
            }
            if self.finished {
                if self.buffer.iter().all(u8::is_ascii_whitespace) {
                    return None;
                }
                self.buffer.clear();
                return Some(Err(RpcError::Decode(
                    "answer ends inside a json value".into(),
                )));
            }
            match self.body.next().await {
                Some(Ok(chunk)) => {
                    self.buffer.extend_from_slice(&chunk);
                    if self.buffer.len() > MAX_JSON_VALUE {
                        self.finished = true;
                        self.buffer.clear();
                        return Some(Err(RpcError::Decode(format!(
                            "a json value longer than {MAX_JSON_VALUE} bytes"
                        ))));
                    }
                }
                Some(Err(e)) => {
                    self.finished = true;
                    self.buffer.clear();
                    return Some(Err(RpcError::Transport(format!(
                        "the answer broke off: {}",
                        error_chain(&e)
                    ))));
                }
                None => self.finished = true,
            }
        }
    }

    /// [`JsonStream::next`] bounded by `deadline`.
    pub(crate) async fn next_within(
        &mut self,
        deadline: Option<Instant>,
    ) -> Option<Result<Value, RpcError>> {
        match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, self.next())
                .await
                .unwrap_or(Some(Err(RpcError::Timeout))),
            None => self.next().await,
        }
    }

    fn parse_one(&mut self) -> Option<Result<Value, RpcError>> {
        let start = self.buffer.iter().position(|b| !b.is_ascii_whitespace())?;
        let mut values =
            serde_json::Deserializer::from_slice(&self.buffer[start..]).into_iter::<Value>();
        match values.next()? {
            Ok(value) => {
                let consumed = start + values.byte_offset();
                let _ = self.buffer.split_to(consumed);
                Some(Ok(value))
            }
            Err(e) if e.is_eof() => None,
            Err(e) => {
                self.buffer.clear();
                self.finished = true;
                Some(Err(RpcError::Decode(format!("invalid json: {e}"))))
            }
        }
    }
}

/// The message of an error object, as both Kubo and js-ipfs shape them.
fn stream_error(value: &Value) -> Option<String> {
    let object = value.as_object()?;
    if object.get("Type").and_then(Value::as_str) != Some("error") {
        return None;
    }
    let message = object
        .get("Message")
        .and_then(Value::as_str)
        .unwrap_or("unspecified error");
    Some(message.to_string())
}

/// The `Message` of a JSON error body, or the body itself (Kubo answers plain text for unknown
/// routes).
fn error_message(body: &str) -> String {
    if let Ok(value) = serde_json::from_str::<Value>(body)
        && let Some(message) = value.get("Message").and_then(Value::as_str)
    {
        return message.to_string();
    }
    let trimmed = body.trim();
    if trimmed.is_empty() {
        "no details given".to_string()
    } else {
        trimmed.chars().take(500).collect()
    }
}

async fn read_capped(response: reqwest::Response) -> String {
    let mut body = response.bytes_stream();
    let mut text = Vec::new();
    while let Some(Ok(chunk)) = body.next().await {
        text.extend_from_slice(&chunk);
        if text.len() >= MAX_ERROR_BODY {
            text.truncate(MAX_ERROR_BODY);
            break;
        }
    }
    String::from_utf8_lossy(&text).into_owned()
}

/// reqwest's Display hides the cause (e.g. "connection refused"); the chain has it.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream_of(chunks: &[&'static str]) -> JsonStream {
        let items: Vec<reqwest::Result<Bytes>> = chunks
            .iter()
            .map(|c| Ok(Bytes::from_static(c.as_bytes())))
            .collect();
        JsonStream {
            body: futures::stream::iter(items).boxed(),
            buffer: BytesMut::new(),
            finished: false,
        }
    }

    #[tokio::test]
    async fn json_values_split_across_chunks() {
        let mut s = stream_of(&[
            "{\"Progress\":1}\n{\"Pro",
            "gress\":2}{\"Pins\":[\"x\"]}",
            "\n  ",
        ]);
        assert_eq!(s.next().await.unwrap().unwrap()["Progress"], 1);
        assert_eq!(s.next().await.unwrap().unwrap()["Progress"], 2);
        assert_eq!(s.next().await.unwrap().unwrap()["Pins"][0], "x");
        assert!(s.next().await.is_none());
    }

    #[tokio::test]
    async fn truncated_and_error_values_are_errors() {
        let mut s = stream_of(&["{\"Progress\":1}\n{\"Pro"]);
        assert!(s.next().await.unwrap().is_ok());
        assert!(matches!(s.next().await, Some(Err(RpcError::Decode(_)))));

        let mut s = stream_of(&["{\"Message\":\"boom\",\"Code\":0,\"Type\":\"error\"}\n"]);
        match s.next().await {
            Some(Err(e)) => assert_eq!(e.node_message(), Some("boom")),
            other => panic!("expected the stream error, got {other:?}"),
        }
        let mut s = stream_of(&["not json"]);
        assert!(matches!(s.next().await, Some(Err(RpcError::Decode(_)))));
    }

    #[test]
    fn error_statuses_map_to_kinds() {
        let status = |code: u16, message: &str| RpcError::Status {
            status: StatusCode::from_u16(code).unwrap(),
            message: message.into(),
        };
        assert!(matches!(
            status(404, "Not Found").into_ipfs("pin/update"),
            IpfsError::Unsupported(_)
        ));
        assert!(matches!(
            status(500, "no link named \"x\" under Qm").into_ipfs("resolve"),
            IpfsError::NotFound(_)
        ));
        assert!(matches!(
            status(400, "invalid cid").into_ipfs("pin/add"),
            IpfsError::InvalidInput(_)
        ));
        assert!(matches!(
            status(500, "disk full").into_ipfs("add"),
            IpfsError::Backend(_)
        ));
        assert_eq!(RpcError::Timeout.into_ipfs("id"), IpfsError::Timeout);
        assert_eq!(error_message("404 page not found\n"), "404 page not found");
        assert_eq!(error_message("{\"Message\":\"m\",\"Code\":0}"), "m");
    }

    #[test]
    fn multipart_boundary_avoids_content() {
        let body = Multipart::new(&[Bytes::from_static(b"abc"), Bytes::new()]);
        assert_eq!(body.parts.len(), 7);
        let total: Vec<u8> = body.parts.iter().flat_map(|p| p.iter().copied()).collect();
        let text = String::from_utf8(total).unwrap();
        assert!(text.starts_with(&format!("--{}\r\n", body.boundary)));
        assert!(text.ends_with(&format!("--{}--\r\n", body.boundary)));
        assert_eq!(text.matches("filename=\"file\"").count(), 2);
        assert_eq!(body.len(), text.len());
    }
}
