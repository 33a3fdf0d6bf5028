//! The HTTP/1 serving loop shared by the REST, metrics and pinning-service servers.
//!
//! warp decides what each request gets; this module owns the connections. It binds (reporting a
//! taken port as an error instead of panicking like `warp::serve().bind()`), drives each
//! connection with hyper's HTTP/1 server, swaps in the NDJSON body for streamed responses,
//! adds the configured headers, logs each request, and enforces the original's timeouts:
//! a started request head must arrive within `read_header_timeout`, an idle keep-alive
//! connection is closed after `idle_timeout`. hyper's own header timer is not used because it
//! also runs while a keep-alive connection is idle, which would cut idle connections at the
//! read-header timeout.
//!
//! Only HTTP/1.1 is served, also over TLS (Go's server would offer HTTP/2 there).
//!
//! [`serve_guarded`] adds what [`Guard`] holds: TLS on the listener (a plain-HTTP request to
//! it gets Go's 400 answer and is closed) and the [`Security`] checks, which run on each
//! request before the route filter sees it.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::Service as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::{JoinHandle, JoinSet};
use warp::filters::BoxedFilter;

use crate::error::ApiServerError;
use crate::security::{Gate, Security};
use crate::stream::{NdjsonBody, OpenStream};

/// What Go's server answers to plain HTTP on a TLS port.
const PLAIN_HTTP_ON_TLS: &[u8] =
    b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

/// First byte of a TLS handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

/// Protection of one listener: TLS and request checks. The default has neither.
#[derive(Clone, Default)]
pub struct Guard {
    /// Serve HTTPS with this configuration (see [`crate::load_tls`]).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Authentication and CORS, checked before routing.
    pub security: Option<Arc<Security>>,
}

/// How long connections may finish after shutdown before they are cut.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// What a route filter produces.
pub type WarpResponse = warp::reply::Response;

/// Names the body type inside warp's response, which warp does not export by name.
trait BodyOf {
    type Body;
}
impl<B> BodyOf for Response<B> {
    type Body = B;
}
type WarpBody = <WarpResponse as BodyOf>::Body;

/// Settings of one listener.
#[derive(Clone)]
pub struct ServerOptions {
    /// Name for logs ("rest", "metrics", "pinsvc").
    pub name: &'static str,
    /// Headers added to every response that does not set them itself.
    pub extra_headers: HeaderMap,
    /// Limit on the request head, before Go's 4096 bytes of slack.
    pub max_header_bytes: usize,
    /// Time to send a complete request head once started; zero disables it.
    pub read_header_timeout: Duration,
    /// Time a keep-alive connection may wait for its next request; zero disables it.
    pub idle_timeout: Duration,
}

/// Turns configured header pairs into a header map, rejecting invalid names and values.
pub fn header_map<'a>(
    pairs: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Result<HeaderMap, ApiServerError> {
    let mut map = HeaderMap::new();
    for (k, v) in pairs {
        let name =
            HeaderName::from_bytes(k.as_bytes()).map_err(|e| ApiServerError::InvalidHeader {
                name: k.clone(),
                reason: e.to_string(),
            })?;
        let value = HeaderValue::from_str(v).map_err(|e| ApiServerError::InvalidHeader {
            name: k.clone(),
            reason: e.to_string(),
        })?;
        map.append(name, value);
    }
    Ok(map)
}

/// A body a route builds itself, for what warp's body cannot carry: trailers, or a stream that
/// is not `Sync` (a proxied upstream body). See [`raw_response`].
pub type RawBody = Pin<
    Box<dyn Body<Data = Bytes, Error = Box<dyn std::error::Error + Send + Sync>> + Send + 'static>,
>;

/// Carries a [`RawBody`] past warp, which cannot hold it, to the connection.
#[derive(Clone)]
struct RawSlot(Arc<Mutex<Option<RawBody>>>);

/// Turns a response with a body of its own into what a route filter returns; the serving loop
/// sends that body as it is, frames and trailers included (hyper sends trailers only to clients
/// that announced `TE: trailers`).
pub fn raw_response(resp: Response<RawBody>) -> WarpResponse {
    let (mut parts, body) = resp.into_parts();
    parts.extensions.insert(RawSlot(Arc::new(Mutex::new(Some(body)))));
    Response::from_parts(parts, WarpBody::default())
}

/// Carries a stream from a route handler to the connection, which turns it into the body.
///
/// warp's body type cannot end with trailers, so a streamed response leaves warp with an empty
/// body and this extension; [`finish`] replaces the body with an [`NdjsonBody`].
#[derive(Clone)]
pub(crate) struct StreamSlot(Arc<Mutex<Option<OpenStream>>>);

impl StreamSlot {
    /// Wraps an opened stream.
    pub(crate) fn new(open: OpenStream) -> Self {
        StreamSlot(Arc::new(Mutex::new(Some(open))))
    }

    fn take(&self) -> Option<OpenStream> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Binds `listen` and serves `filter` until `shutdown` resolves; returns the bound address
/// and the server task, which ends once open connections have finished (or after a grace
/// period) following shutdown.
pub async fn serve(
    listen: SocketAddr,
    opts: ServerOptions,
    filter: BoxedFilter<(WarpResponse,)>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, JoinHandle<()>), ApiServerError> {
    serve_guarded(listen, opts, Guard::default(), filter, shutdown).await
}

/// [`serve_guarded`] on several addresses. Every address is bound before this returns, so a
/// taken port fails the whole start (the listeners already running are stopped first). Returns
/// the bound addresses, in order, and a task that ends once every listener has stopped: after
/// `shutdown`, or when they all end on their own.
pub async fn serve_all(
    listen: &[SocketAddr],
    opts: ServerOptions,
    guard: Guard,
    filter: BoxedFilter<(WarpResponse,)>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(Vec<SocketAddr>, JoinHandle<()>), ApiServerError> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut bound = Vec::with_capacity(listen.len());
    let mut servers = Vec::with_capacity(listen.len());
    for addr in listen {
        let mut stop = stop_rx.clone();
        let stopped = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        match serve_guarded(*addr, opts.clone(), guard.clone(), filter.clone(), stopped).await {
            Ok((local, handle)) => {
                bound.push(local);
                servers.push(handle);
            }
            Err(e) => {
                let _ = stop_tx.send(true);
                for h in servers {
                    let _ = h.await;
                }
                return Err(e);
            }
        }
    }
    let task = tokio::spawn(async move {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut all = std::pin::pin!(futures::future::join_all(servers));
        tokio::select! {
            () = &mut shutdown => {
                let _ = stop_tx.send(true);
                all.await;
            }
            _ = &mut all => {}
        }
    });
    Ok((bound, task))
}

/// [`serve`] with TLS and/or authentication and CORS checks.
pub async fn serve_guarded(
    listen: SocketAddr,
    opts: ServerOptions,
    guard: Guard,
    filter: BoxedFilter<(WarpResponse,)>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, JoinHandle<()>), ApiServerError> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| ApiServerError::Bind {
            addr: listen,
            source,
        })?;
    let bound = listener
        .local_addr()
        .map_err(|source| ApiServerError::Bind {
            addr: listen,
            source,
        })?;
    let opts = Arc::new(opts);
    tracing::info!(server = opts.name, addr = %bound, tls = guard.tls.is_some(), "http server listening");
    let handle = tokio::spawn(accept_loop(listener, opts, guard, filter, shutdown));
    Ok((bound, handle))
}

async fn accept_loop(
    listener: TcpListener,
    opts: Arc<ServerOptions>,
    guard: Guard,
    filter: BoxedFilter<(WarpResponse,)>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let (stop_tx, _) = watch::channel(false);
    let mut conns = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if let Err(e) = stream.set_nodelay(true) {
                        tracing::debug!(server = opts.name, %peer, error = %e, "cannot set tcp nodelay");
                    }
                    conns.spawn(connection(stream, peer, filter.clone(), opts.clone(), guard.clone(), stop_tx.subscribe()));
                }
                Err(e) if is_transient(&e) => {}
                Err(e) => {
                    // Typically out of file descriptors: wait for some to be released.
                    tracing::error!(server = opts.name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            },
            Some(done) = conns.join_next(), if !conns.is_empty() => {
                if let Err(e) = done
                    && e.is_panic()
                {
                    tracing::error!(server = opts.name, error = %e, "connection task panicked");
                }
            }
        }
    }
    drop(listener);
    tracing::info!(
        server = opts.name,
        connections = conns.len(),
        "http server shutting down"
    );
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            server = opts.name,
            connections = conns.len(),
            "connections still open after grace period; closing them"
        );
        conns.shutdown().await;
    }
    tracing::info!(server = opts.name, "http server stopped");
}

fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Runs the TLS handshake when the listener has TLS, then serves the connection.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    filter: BoxedFilter<(WarpResponse,)>,
    opts: Arc<ServerOptions>,
    guard: Guard,
    stop: watch::Receiver<bool>,
) {
    let Some(tls) = guard.tls.clone() else {
        return serve_connection(stream, peer, filter, opts, guard.security, stop).await;
    };
    // The whole handshake, first byte included, must fit in the read-header time.
    let limit = if opts.read_header_timeout.is_zero() {
        Duration::from_secs(10)
    } else {
        opts.read_header_timeout
    };
    let handshake = async {
        let mut first = [0u8; 1];
        let mut stream = stream;
        if stream.peek(&mut first).await? == 1 && first[0] != TLS_HANDSHAKE {
            use tokio::io::AsyncWriteExt as _;
            let _ = stream.write_all(PLAIN_HTTP_ON_TLS).await;
            let _ = stream.shutdown().await;
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "plain http on a tls listener",
            ));
        }
        tokio_rustls::TlsAcceptor::from(tls).accept(stream).await
    };
    match tokio::time::timeout(limit, handshake).await {
        Ok(Ok(tls_stream)) => {
            serve_connection(tls_stream, peer, filter, opts, guard.security, stop).await
        }
        Ok(Err(e)) => {
            tracing::debug!(server = opts.name, %peer, error = %e, "tls handshake failed")
        }
        Err(_) => tracing::debug!(server = opts.name, %peer, "tls handshake timed out"),
    }
}

/// Serves one connection until it ends, times out, or the server shuts down.
async fn serve_connection<S>(
    stream: S,
    peer: SocketAddr,
    filter: BoxedFilter<(WarpResponse,)>,
    opts: Arc<ServerOptions>,
    security: Option<Arc<Security>>,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(TrackedIo {
        inner: stream,
        activity: activity.clone(),
    });
    let warp_svc = TowerToHyperService::new(warp::service(filter));
    let svc = {
        let activity = activity.clone();
        let opts = opts.clone();
        hyper::service::service_fn(move |req: Request<Incoming>| {
            let in_flight = activity.request_started();
            let trailers_allowed = accepts_trailers(req.headers());
            let method = req.method().clone();
            let path = req.uri().path().to_owned();
            let started = Instant::now();
            let Gate { respond, cors } = match &security {
                Some(s) => s.gate(req.method(), req.uri().path(), req.headers()),
                None => Gate {
                    respond: None,
                    cors: HeaderMap::new(),
                },
            };
            let fut = match respond {
                Some(resp) => futures::future::Either::Left(std::future::ready(Ok(resp))),
                None => futures::future::Either::Right(warp_svc.call(req)),
            };
            let opts = opts.clone();
            async move {
                let mut resp = match fut.await {
                    Ok(resp) => resp,
                    Err(never) => match never {},
                };
                for (name, value) in cors.iter() {
                    resp.headers_mut().append(name.clone(), value.clone());
                }
                tracing::debug!(
                    server = opts.name,
                    %peer,
                    %method,
                    path = %path,
                    status = resp.status().as_u16(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "request served"
                );
                Ok::<_, Infallible>(finish(
                    resp,
                    &opts.extra_headers,
                    trailers_allowed,
                    in_flight,
                ))
            }
        })
    };
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(true)
        .max_header_size(opts.max_header_bytes.max(4096) + 4096);
    let mut conn = std::pin::pin!(builder.serve_connection(io, svc));
    let mut closing = false;
    loop {
        let deadline = if closing {
            None
        } else {
            activity.deadline(&opts)
        };
        let sleep = async move {
            match deadline {
                Some((at, _)) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(server = opts.name, %peer, error = %e, "connection ended with an error");
                }
                break;
            }
            changed = stop.changed(), if !closing => {
                // A dropped sender also means the server is gone.
                let _ = changed;
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = activity.changed.notified() => {}
            _ = sleep => match activity.expired(&opts, Instant::now()) {
                Some(Expiry::Idle) => {
                    tracing::debug!(server = opts.name, %peer, "closing idle connection");
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
                Some(Expiry::Header) => {
                    tracing::debug!(server = opts.name, %peer, "request head not received in time; closing connection");
                    break;
                }
                None => {}
            },
        }
    }
}

/// True when the request's `TE` header lists `trailers`, the condition hyper sends them under.
fn accepts_trailers(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::TE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
}

/// Adds configured headers and swaps in the streaming body when the route asked for one.
fn finish(
    mut resp: WarpResponse,
    extra: &HeaderMap,
    trailers_allowed: bool,
    in_flight: InFlight,
) -> Response<ResponseBody> {
    for name in extra.keys() {
        if !resp.headers().contains_key(name) {
            for value in extra.get_all(name) {
                resp.headers_mut().append(name.clone(), value.clone());
            }
        }
    }
    let slot = resp.extensions_mut().remove::<StreamSlot>();
    let raw = resp
        .extensions_mut()
        .remove::<RawSlot>()
        .and_then(|r| r.0.lock().unwrap_or_else(|e| e.into_inner()).take());
    let (parts, body) = resp.into_parts();
    let kind = match (raw, slot.and_then(|s| s.take())) {
        (Some(raw), _) => BodyKind::Raw(raw),
        (None, Some(open)) => BodyKind::Ndjson(NdjsonBody::new(open, trailers_allowed)),
        (None, None) => BodyKind::Warp(body),
    };
    Response::from_parts(
        parts,
        ResponseBody {
            kind,
            _in_flight: in_flight,
        },
    )
}

/// The body of every response: warp's, or the NDJSON stream. Holds the in-flight mark of its
/// request until hyper is done with it.
pub(crate) struct ResponseBody {
    kind: BodyKind,
    _in_flight: InFlight,
}

enum BodyKind {
    Warp(WarpBody),
    Ndjson(NdjsonBody),
    Raw(RawBody),
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match &mut self.get_mut().kind {
            BodyKind::Warp(b) => Pin::new(b)
                .poll_frame(cx)
                .map(|o| o.map(|r| r.map_err(Into::into))),
            BodyKind::Ndjson(b) => Pin::new(b)
                .poll_frame(cx)
                .map(|o| o.map(|r| r.map_err(Into::into))),
            BodyKind::Raw(b) => b.as_mut().poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            BodyKind::Warp(b) => b.is_end_stream(),
            BodyKind::Ndjson(b) => b.is_end_stream(),
            BodyKind::Raw(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            BodyKind::Warp(b) => b.size_hint(),
            BodyKind::Ndjson(b) => b.size_hint(),
            BodyKind::Raw(b) => b.size_hint(),
        }
    }
}

/// Which timeout fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expiry {
    /// No request for `idle_timeout`.
    Idle,
    /// A request head started but did not complete within `read_header_timeout`.
    Header,
}

/// What a connection is doing, as far as the timeouts care.
struct Activity {
    state: Mutex<ActivityState>,
    /// Woken whenever the state changes, so the watchdog recomputes its deadline.
    changed: Notify,
}

struct ActivityState {
    in_flight: usize,
    idle_since: Instant,
    head_started: Option<Instant>,
}

impl Activity {
    fn new() -> Self {
        Activity {
            state: Mutex::new(ActivityState {
                in_flight: 0,
                idle_since: Instant::now(),
                head_started: None,
            }),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, ActivityState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes arrived: between requests they are the start of the next request head.
    fn bytes_read(&self) {
        let mut s = self.lock();
        if s.in_flight == 0 && s.head_started.is_none() {
            s.head_started = Some(Instant::now());
            drop(s);
            self.changed.notify_one();
        }
    }

    /// hyper parsed a request head and called the service.
    fn request_started(self: &Arc<Self>) -> InFlight {
        let mut s = self.lock();
        s.in_flight += 1;
        s.head_started = None;
        drop(s);
        self.changed.notify_one();
        InFlight(self.clone())
    }

    fn deadline(&self, opts: &ServerOptions) -> Option<(Instant, Expiry)> {
        let s = self.lock();
        if s.in_flight > 0 {
            return None;
        }
        let enabled = |d: Duration| (!d.is_zero()).then_some(d);
        match s.head_started {
            Some(t) => enabled(opts.read_header_timeout).map(|d| (t + d, Expiry::Header)),
            None => enabled(opts.idle_timeout).map(|d| (s.idle_since + d, Expiry::Idle)),
        }
    }

    fn expired(&self, opts: &ServerOptions, now: Instant) -> Option<Expiry> {
        self.deadline(opts)
            .filter(|(at, _)| *at <= now)
            .map(|(_, kind)| kind)
    }
}

/// Marks a request as in flight until dropped with its response body.
pub(crate) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.in_flight = s.in_flight.saturating_sub(1);
        if s.in_flight == 0 {
            s.idle_since = Instant::now();
        }
        drop(s);
        self.0.changed.notify_one();
    }
}

/// A stream that reports reads to the connection's [`Activity`].
struct TrackedIo<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for TrackedIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(res, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.bytes_read();
        }
        res
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TrackedIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn te_trailers_detection() {
        let mut h = HeaderMap::new();
        assert!(!accepts_trailers(&h));
        h.insert(http::header::TE, HeaderValue::from_static("gzip, Trailers"));
        assert!(accepts_trailers(&h));
    }

    #[test]
    fn header_map_rejects_invalid() {
        let ok = [("X-A".to_string(), "b".to_string())];
        assert_eq!(header_map(ok.iter().map(|(a, b)| (a, b))).unwrap().len(), 1);
        let bad = [("bad name".to_string(), "b".to_string())];
        assert!(header_map(bad.iter().map(|(a, b)| (a, b))).is_err());
        let bad = [("x".to_string(), "a\nb".to_string())];
        assert!(header_map(bad.iter().map(|(a, b)| (a, b))).is_err());
    }
}
