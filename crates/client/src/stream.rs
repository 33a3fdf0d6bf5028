//! Incremental NDJSON decoding of streamed API answers.
//!
//! List endpoints answer with one JSON object per line, flushed as the cluster produces
//! them, `204 No Content` when there is nothing to list, and an `X-Stream-Error` HTTP trailer
//! that carries any error hit after the first item. [`ItemStream`] yields the objects one by
//! one while they arrive, holding at most one line in memory.
//!
//! Trailers are read from the body's trailer frame, which hyper delivers for chunked
//! responses; the client asks for them with `TE: trailers` (hyper servers only send trailers
//! to clients that do). A server that closes the stream without trailers simply ends it.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use futures::Stream;
use hyper::body::Body as _;
use serde::de::DeserializeOwned;

use crate::error::ClientError;

/// The longest line accepted from the server; a longer one is reported as a decode error
/// instead of growing the buffer without bound.
pub const MAX_LINE_BYTES: usize = 32 * 1024 * 1024;

/// The trailer in which the cluster reports errors that happened mid-stream.
pub const STREAM_ERROR_TRAILER: &str = "x-stream-error";

/// Splits a byte stream into lines, keeping only the unfinished line between chunks.
#[derive(Debug, Default)]
pub struct LineBuffer {
    buf: BytesMut,
    /// How far `buf` has been searched for a newline already, so a long line arriving in
    /// many chunks is scanned once.
    scanned: usize,
}

impl LineBuffer {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a chunk.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// Takes the next complete line (without its `\n` / `\r\n`), if one has arrived.
    pub fn next_line(&mut self) -> Result<Option<BytesMut>, ClientError> {
        match self.buf[self.scanned..].iter().position(|&b| b == b'\n') {
            Some(pos) => {
                let mut line = self.buf.split_to(self.scanned + pos + 1);
                self.scanned = 0;
                line.truncate(line.len() - 1);
                if line.last() == Some(&b'\r') {
                    line.truncate(line.len() - 1);
                }
                Ok(Some(line))
            }
            None => {
                self.scanned = self.buf.len();
                if self.buf.len() > MAX_LINE_BYTES {
                    return Err(ClientError::Decode(format!("a streamed item is longer than {MAX_LINE_BYTES} bytes")));
                }
                Ok(None)
            }
        }
    }

    /// Takes whatever is left once the input has ended (a last line without newline).
    pub fn finish(&mut self) -> Option<BytesMut> {
        self.scanned = 0;
        let rest = self.buf.split();
        (!rest.iter().all(u8::is_ascii_whitespace)).then_some(rest)
    }
}

/// Decodes one NDJSON line.
pub(crate) fn decode_line<T: DeserializeOwned>(line: &[u8]) -> Result<T, ClientError> {
    serde_json::from_slice(line).map_err(|e| {
        let text = String::from_utf8_lossy(line);
        let shown: String = text.chars().take(200).collect();
        ClientError::Decode(format!("{e} in streamed item '{shown}'"))
    })
}

/// The items of a streamed list, decoded as they arrive.
///
/// Yields `Err` at most once, then ends: for a line that is not a valid item, a transport
/// failure or timeout while reading, or an error reported in the `X-Stream-Error` trailer
/// (as [`ClientError::Api`] with code 500, after every item that was sent).
pub struct ItemStream<T> {
    inner: Pin<Box<dyn Stream<Item = Result<T, ClientError>> + Send>>,
}

impl<T> std::fmt::Debug for ItemStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ItemStream").finish_non_exhaustive()
    }
}

impl<T: DeserializeOwned + Send + 'static> ItemStream<T> {
    /// A stream with no items (the answer to a `204 No Content`).
    pub fn empty() -> Self {
        ItemStream { inner: Box::pin(futures::stream::empty()) }
    }

    /// A stream of items already received (an answer that came as one JSON array).
    pub fn from_items(items: Vec<T>) -> Self {
        ItemStream { inner: Box::pin(futures::stream::iter(items.into_iter().map(Ok))) }
    }

    /// Decodes the body of a successful streaming response.
    pub(crate) fn from_response(resp: reqwest::Response) -> Self {
        if resp.status() == reqwest::StatusCode::NO_CONTENT {
            return Self::empty();
        }
        let state = BodyState {
            body: reqwest::Body::from(resp),
            lines: LineBuffer::new(),
            trailer_error: None,
            eof: false,
            done: false,
        };
        ItemStream { inner: Box::pin(futures::stream::unfold(state, |mut st| async move {
            let item = st.next_item::<T>().await?;
            Some((item, st))
        })) }
    }

    /// Reads the whole stream into memory, failing on the first error.
    pub async fn collect_all(mut self) -> Result<Vec<T>, ClientError> {
        use futures::StreamExt;
        let mut out = Vec::new();
        while let Some(item) = self.next().await {
            out.push(item?);
        }
        Ok(out)
    }
}

impl<T> Stream for ItemStream<T> {
    type Item = Result<T, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

struct BodyState {
    body: reqwest::Body,
    lines: LineBuffer,
    trailer_error: Option<String>,
    eof: bool,
    done: bool,
}

impl BodyState {
    async fn next_item<T: DeserializeOwned>(&mut self) -> Option<Result<T, ClientError>> {
        if self.done {
            return None;
        }
        loop {
            match self.lines.next_line() {
                Ok(Some(line)) if line.iter().all(u8::is_ascii_whitespace) => continue,
                Ok(Some(line)) => return Some(self.fail_on_err(decode_line(&line))),
                Ok(None) => {}
                Err(e) => return Some(self.fail_on_err(Err(e))),
            }
            if self.eof {
                if let Some(rest) = self.lines.finish() {
                    return Some(self.fail_on_err(decode_line(&rest)));
                }
                self.done = true;
                return self.trailer_error.take().map(|message| Err(ClientError::Api(cluster_types::ApiError {
                    code: 500,
                    message,
                })));
            }
            let frame = std::future::poll_fn(|cx| Pin::new(&mut self.body).poll_frame(cx)).await;
            match frame {
                None => self.eof = true,
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => self.lines.push(&data),
                    Err(frame) => {
                        if let Some(trailers) = frame.trailers_ref() {
                            let errors: Vec<&str> = trailers
                                .get_all(STREAM_ERROR_TRAILER)
                                .iter()
                                .filter_map(|v| v.to_str().ok())
                                .map(str::trim)
                                .filter(|v| !v.is_empty())
                                .collect();
                            if !errors.is_empty() {
                                self.trailer_error = Some(errors.join("; "));
                            }
                        }
                    }
                },
                Some(Err(e)) => return Some(self.fail_on_err(Err(ClientError::from_reqwest(e)))),
            }
        }
    }

    fn fail_on_err<T>(&mut self, r: Result<T, ClientError>) -> Result<T, ClientError> {
        if r.is_err() {
            self.done = true;
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_across_chunks() {
        let mut lb = LineBuffer::new();
        lb.push(b"{\"a\":1}\n{\"a\"");
        assert_eq!(&lb.next_line().unwrap().unwrap()[..], b"{\"a\":1}");
        assert!(lb.next_line().unwrap().is_none());
        lb.push(b":2}\r\n\n{\"a\":3}");
        assert_eq!(&lb.next_line().unwrap().unwrap()[..], b"{\"a\":2}");
        assert_eq!(&lb.next_line().unwrap().unwrap()[..], b"");
        assert!(lb.next_line().unwrap().is_none());
        assert_eq!(&lb.finish().unwrap()[..], b"{\"a\":3}");
        assert!(lb.finish().is_none());
    }

    #[test]
    fn bad_items_are_decode_errors() {
        let r: Result<serde_json::Value, _> = decode_line(b"{nope");
        assert!(matches!(r, Err(ClientError::Decode(_))));
    }
}
