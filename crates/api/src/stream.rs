//! NDJSON streaming (§2.2): the first item decides the status, later errors go in a trailer.
//!
//! A streamed response is one JSON object per line. Nothing is written until the source yields
//! its first item or error, because that decides the answer: an error becomes the status and
//! error object of a normal response, an empty source becomes 204, anything else is 200 with
//! the `Trailer: X-Stream-Error` header. After that the body pulls items only when hyper asks
//! for more, which it does only while the socket accepts data, so a slow reader slows the
//! source down instead of the server buffering the whole list. Items that are ready together
//! are written together; whenever the source has nothing ready the written lines are flushed,
//! so no item waits for a later one.
//!
//! At the end the body sends the `X-Stream-Error` trailer: empty when all went well, one value
//! per error otherwise. hyper only sends trailers to clients that announced `TE: trailers` (the
//! Rust client does). For other clients (Go's, curl) a clean end is simply the end of the body,
//! and an error makes the body fail so the connection is cut before the final chunk: the client
//! sees a truncated transfer instead of a list that silently looks complete.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use cluster_types::ApiError;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use http::{HeaderMap, HeaderValue};
use http_body::{Body, Frame, SizeHint};
use serde::Serialize;

use crate::seam::ApiStream;

/// The trailer (announced in a `Trailer` header) carrying mid-stream errors; lowercase as sent.
pub const STREAM_ERROR_TRAILER: &str = "x-stream-error";

/// Ready items are coalesced into one write up to about this many bytes.
const BATCH_BYTES: usize = 32 * 1024;

/// One step of a stream as the body sees it.
pub(crate) enum Chunk {
    /// A serialized item, without its newline.
    Item(Vec<u8>),
    /// An error that ends the stream.
    Fatal(ApiError),
    /// An error about one requested item; the stream goes on and the error joins the trailer.
    Partial(ApiError),
}

/// A source of chunks, type-erased so every route shares one body type.
pub(crate) type ChunkStream = BoxStream<'static, Chunk>;

/// Serializes an API stream; its errors end the stream.
pub(crate) fn chunks<T: Serialize + Send + 'static>(s: ApiStream<T>) -> ChunkStream {
    s.map(|r| match r {
        Ok(item) => encode(&item),
        Err(e) => Chunk::Fatal(e),
    })
    .boxed()
}

/// Serializes one item; failure (never expected for API types) ends the stream.
pub(crate) fn encode<T: Serialize>(item: &T) -> Chunk {
    match serde_json::to_vec(item) {
        Ok(v) => Chunk::Item(v),
        Err(e) => Chunk::Fatal(ApiError::internal(format!(
            "cannot encode stream item: {e}"
        ))),
    }
}

/// What the start of a stream decided about the response.
pub(crate) enum Opening {
    /// At least one item: 200 and a streamed body.
    Items(OpenStream),
    /// Nothing and no error: 204.
    Empty,
    /// An error before any item (or only per-item errors): that error's status and object.
    Failed(ApiError),
}

/// A stream whose first item has been pulled, ready to become a body.
pub(crate) struct OpenStream {
    first: Vec<u8>,
    rest: ChunkStream,
    errors: Vec<ApiError>,
}

/// Pulls until the first item, error or end, to decide the status.
pub(crate) async fn open(mut s: ChunkStream) -> Opening {
    let mut partial = Vec::new();
    loop {
        match s.next().await {
            Some(Chunk::Item(first)) => {
                return Opening::Items(OpenStream {
                    first,
                    rest: s,
                    errors: partial,
                });
            }
            Some(Chunk::Fatal(e)) => return Opening::Failed(e),
            Some(Chunk::Partial(e)) => partial.push(e),
            None => {
                return match partial.into_iter().next() {
                    Some(e) => Opening::Failed(e),
                    None => Opening::Empty,
                };
            }
        }
    }
}

/// The body failed on purpose so a client that cannot receive trailers sees a cut transfer.
#[derive(Debug, thiserror::Error)]
#[error("stream aborted: {0}")]
pub(crate) struct StreamAborted(String);

/// The NDJSON body of a streamed response.
pub(crate) struct NdjsonBody {
    first: Option<Vec<u8>>,
    rest: Option<ChunkStream>,
    errors: Vec<ApiError>,
    trailers_allowed: bool,
    /// Set once the body yielded so hyper flushes the last lines before the deliberate failure.
    flushed_before_abort: bool,
    finished: bool,
}

impl NdjsonBody {
    /// A body continuing `open`; `trailers_allowed` when the request said `TE: trailers`.
    pub(crate) fn new(open: OpenStream, trailers_allowed: bool) -> Self {
        NdjsonBody {
            first: Some(open.first),
            rest: Some(open.rest),
            errors: open.errors,
            trailers_allowed,
            flushed_before_abort: false,
            finished: false,
        }
    }

    /// The last frame: the trailer, a clean end, or a deliberate failure.
    fn finish(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamAborted>>> {
        if !self.trailers_allowed && !self.errors.is_empty() && !self.flushed_before_abort {
            // hyper drops buffered bytes when a body fails; yielding once lets it flush the
            // lines already produced, so the client gets them before the cut.
            self.flushed_before_abort = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.finished = true;
        let message = self
            .errors
            .iter()
            .map(|e| e.message.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        if !self.errors.is_empty() {
            tracing::warn!(errors = self.errors.len(), error = %message, "stream ended with errors");
        }
        if self.trailers_allowed {
            let mut trailers = HeaderMap::new();
            if self.errors.is_empty() {
                trailers.insert(STREAM_ERROR_TRAILER, HeaderValue::from_static(""));
            }
            for e in &self.errors {
                trailers.append(STREAM_ERROR_TRAILER, header_safe(&e.message));
            }
            return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
        }
        Poll::Ready(if self.errors.is_empty() {
            None
        } else {
            Some(Err(StreamAborted(message)))
        })
    }
}

/// A header value carrying `text`, with control characters replaced so it is always valid.
fn header_safe(text: &str) -> HeaderValue {
    let cleaned: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    HeaderValue::from_str(&cleaned).unwrap_or_else(|_| HeaderValue::from_static("stream error"))
}

impl Body for NdjsonBody {
    type Data = Bytes;
    type Error = StreamAborted;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamAborted>>> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(None);
        }
        let mut buf = match this.first.take() {
            Some(mut v) => {
                v.push(b'\n');
                v
            }
            None => Vec::new(),
        };
        let mut ended = false;
        if let Some(rest) = this.rest.as_mut() {
            while buf.len() < BATCH_BYTES {
                match Pin::new(&mut *rest).poll_next(cx) {
                    Poll::Ready(Some(Chunk::Item(v))) => {
                        buf.extend_from_slice(&v);
                        buf.push(b'\n');
                    }
                    Poll::Ready(Some(Chunk::Partial(e))) => this.errors.push(e),
                    Poll::Ready(Some(Chunk::Fatal(e))) => {
                        this.errors.push(e);
                        ended = true;
                        break;
                    }
                    Poll::Ready(None) => {
                        ended = true;
                        break;
                    }
                    Poll::Pending => break,
                }
            }
        }
        if ended {
            // Release the source (and whatever it holds) as soon as it is done.
            this.rest = None;
        }
        if !buf.is_empty() {
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from(buf)))));
        }
        if this.rest.is_some() {
            return Poll::Pending;
        }
        this.finish(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.finished
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::stream;

    async fn collect(mut body: NdjsonBody) -> (Vec<u8>, Option<HeaderMap>, bool) {
        let mut data = Vec::new();
        let mut trailers = None;
        let mut failed = false;
        while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
        {
            match frame {
                Ok(f) if f.is_data() => data.extend_from_slice(&f.into_data().unwrap()),
                Ok(f) => trailers = f.into_trailers().ok(),
                Err(_) => failed = true,
            }
        }
        (data, trailers, failed)
    }

    fn items(n: usize) -> ChunkStream {
        stream::iter((0..n).map(|i| Chunk::Item(format!("{{\"i\":{i}}}").into_bytes()))).boxed()
    }

    #[tokio::test]
    async fn first_item_decides() {
        assert!(matches!(open(items(0)).await, Opening::Empty));
        let fatal = stream::iter(vec![Chunk::Fatal(ApiError::not_found("gone"))]).boxed();
        assert!(matches!(open(fatal).await, Opening::Failed(e) if e.code == 404));
        let partial_only = stream::iter(vec![Chunk::Partial(ApiError::bad_request("x"))]).boxed();
        assert!(matches!(open(partial_only).await, Opening::Failed(e) if e.code == 400));
        assert!(matches!(open(items(2)).await, Opening::Items(_)));
    }

    #[tokio::test]
    async fn lines_then_empty_trailer() {
        let Opening::Items(o) = open(items(3)).await else {
            panic!("expected items")
        };
        let (data, trailers, failed) = collect(NdjsonBody::new(o, true)).await;
        assert_eq!(data, b"{\"i\":0}\n{\"i\":1}\n{\"i\":2}\n");
        assert_eq!(trailers.unwrap().get(STREAM_ERROR_TRAILER).unwrap(), "");
        assert!(!failed);
    }

    #[tokio::test]
    async fn late_errors_go_to_trailer_or_abort() {
        let mk = || {
            stream::iter(vec![
                Chunk::Item(b"1".to_vec()),
                Chunk::Partial(ApiError::internal("one\nfailed")),
                Chunk::Item(b"2".to_vec()),
                Chunk::Fatal(ApiError::internal("boom")),
                Chunk::Item(b"3".to_vec()),
            ])
            .boxed()
        };
        let Opening::Items(o) = open(mk()).await else {
            panic!("expected items")
        };
        let (data, trailers, failed) = collect(NdjsonBody::new(o, true)).await;
        assert_eq!(data, b"1\n2\n");
        let t = trailers.unwrap();
        let values: Vec<_> = t
            .get_all(STREAM_ERROR_TRAILER)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        assert_eq!(values, vec!["one failed".to_string(), "boom".to_string()]);
        assert!(!failed);

        let Opening::Items(o) = open(mk()).await else {
            panic!("expected items")
        };
        let (data, trailers, failed) = collect(NdjsonBody::new(o, false)).await;
        assert_eq!(data, b"1\n2\n");
        assert!(trailers.is_none());
        assert!(failed);
    }
}
