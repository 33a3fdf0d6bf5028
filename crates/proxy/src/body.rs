//! Response bodies: whole ones, Kubo-shaped errors, and streams fed by a task through a bounded
//! channel (so a slow client slows the producer down instead of the proxy buffering).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use cluster_api::{RawBody, WarpResponse, raw_response};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use serde::Serialize;
use tokio::sync::mpsc;

/// Boxed error of a body.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Frames a streamed body holds in flight.
const CHANNEL_FRAMES: usize = 16;

/// The trailer the original (and Kubo) use for errors after the status was sent.
pub(crate) const STREAM_ERROR: &str = "X-Stream-Error";

/// A Kubo RPC error: `{"Message":…,"Code":0,"Type":"error"}`.
#[derive(Serialize)]
struct KuboError<'a> {
    #[serde(rename = "Message")]
    message: &'a str,
    #[serde(rename = "Code")]
    code: u8,
    #[serde(rename = "Type")]
    kind: &'static str,
}

/// A body holding `bytes` at once.
pub(crate) fn full(bytes: impl Into<Bytes>) -> RawBody {
    Box::pin(http_body_util::Full::new(bytes.into()).map_err(|never| match never {}))
}

/// A response with `headers`, `status` and a body.
pub(crate) fn respond(status: StatusCode, headers: HeaderMap, body: RawBody) -> WarpResponse {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    raw_response(resp)
}

/// A JSON answer with status 200.
pub(crate) fn json<T: Serialize>(mut headers: HeaderMap, value: &T) -> WarpResponse {
    match serde_json::to_vec(value) {
        Ok(mut bytes) => {
            bytes.push(b'\n');
            headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            respond(StatusCode::OK, headers, full(bytes))
        }
        Err(e) => error(headers, StatusCode::INTERNAL_SERVER_ERROR, &format!("cannot encode the answer: {e}")),
    }
}

/// A Kubo-shaped error answer.
pub(crate) fn error(mut headers: HeaderMap, status: StatusCode, message: &str) -> WarpResponse {
    let body = serde_json::to_vec(&KuboError { message, code: 0, kind: "error" }).unwrap_or_default();
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    respond(status, headers, full(body))
}

/// The sending half of a [`ChannelBody`].
pub(crate) struct FrameSender(mpsc::Sender<Result<Frame<Bytes>, BoxError>>);

impl FrameSender {
    /// Sends data; false once the client went away.
    pub(crate) async fn data(&self, bytes: impl Into<Bytes>) -> bool {
        self.0.send(Ok(Frame::data(bytes.into()))).await.is_ok()
    }

    /// Ends the body with an `X-Stream-Error` trailer (empty when all went well).
    pub(crate) async fn finish(self, errors: &[String]) {
        let mut trailers = HeaderMap::new();
        let joined = errors.join(", ").replace(['\r', '\n'], " ");
        if let Ok(v) = HeaderValue::from_str(&joined) {
            trailers.insert(STREAM_ERROR, v);
        }
        let _ = self.0.send(Ok(Frame::trailers(trailers))).await;
    }

    /// Breaks the body off: the client sees a cut transfer rather than a complete answer.
    pub(crate) async fn fail(self, why: String) {
        let _ = self.0.send(Err(why.into())).await;
    }
}

/// A body fed frame by frame by a task.
pub(crate) struct ChannelBody {
    rx: mpsc::Receiver<Result<Frame<Bytes>, BoxError>>,
    done: bool,
}

/// A streamed body and the handle that feeds it.
pub(crate) fn channel() -> (FrameSender, RawBody) {
    let (tx, rx) = mpsc::channel(CHANNEL_FRAMES);
    (FrameSender(tx), Box::pin(ChannelBody { rx, done: false }))
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(frame)) => {
                if frame.as_ref().map_or(true, Frame::is_trailers) {
                    self.done = true;
                }
                Poll::Ready(Some(frame))
            }
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
