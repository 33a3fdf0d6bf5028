//! Listeners and connections: HTTP/1 via hyper, requests answered by a warp filter.
//!
//! Connections are driven directly (not with `warp::serve`) to report a taken port as an
//! error, to add the configured headers, and to keep the original's two timeouts apart: a
//! request head that has started must arrive within `read_header_timeout`, while a
//! keep-alive connection may sit idle for `idle_timeout`. hyper's own header timer is not
//! used because it also runs while a connection is idle between requests.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use cluster_api::{MultiaddrError, multiaddr_to_socketaddr};
use http::{HeaderMap, HeaderName, HeaderValue, Request};
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

use crate::error::ServeError;
use crate::http::Response;
use crate::service::PinningService;

/// How long open connections may finish after shutdown before they are cut.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How the Pinning Service API listens. Defaults match the original's `pinsvcapi` section.
///
/// Authentication, CORS and TLS are not handled here yet; build this with
/// `..PinSvcConfig::default()` so fields added for them do not break callers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinSvcConfig {
    /// Where to listen (`http_listen_multiaddress`, default `127.0.0.1:9097`); every address
    /// is served. Port 0 picks a free port; [`serve_pinsvc`] returns the bound addresses.
    pub listen: Vec<SocketAddr>,
    /// Extra headers added to every response that does not set them itself (`headers`).
    pub headers: BTreeMap<String, String>,
    /// Limit on the request head (`max_header_bytes`, default 4096); 4096 bytes of slack are
    /// allowed on top, as in Go's `net/http`.
    pub max_header_bytes: usize,
    /// Time to send a complete request head once started (`read_header_timeout`, default
    /// 5s). Zero disables it.
    pub read_header_timeout: Duration,
    /// Time a keep-alive connection may wait for its next request (`idle_timeout`, default
    /// 120s). Zero disables it.
    pub idle_timeout: Duration,
}

impl Default for PinSvcConfig {
    fn default() -> Self {
        PinSvcConfig {
            listen: vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 9097))],
            headers: BTreeMap::new(),
            max_header_bytes: 4096,
            read_header_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(120),
        }
    }
}

impl PinSvcConfig {
    /// Sets `listen` from configured multiaddrs (`/ip4|ip6|dns*/<host>/tcp/<port>`).
    ///
    /// DNS names are resolved here, blocking, so call this while loading the configuration.
    pub fn with_listen_multiaddrs<S: AsRef<str>>(
        mut self,
        addrs: &[S],
    ) -> Result<Self, MultiaddrError> {
        self.listen = addrs
            .iter()
            .map(|a| multiaddr_to_socketaddr(a.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(self)
    }
}

/// Serves the Pinning Service API on every configured address until `shutdown` resolves.
///
/// Returns the bound addresses (in configuration order; useful with port 0) and the server
/// task, which ends once open connections have finished (or after a grace period) following
/// shutdown. Fails when an address cannot be bound or a configured header is invalid.
pub async fn serve_pinsvc(
    cfg: PinSvcConfig,
    service: Arc<PinningService>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(Vec<SocketAddr>, JoinHandle<()>), ServeError> {
    serve_filter(cfg, service.filter(), shutdown).await
}

/// Serves any filter that answers every request with the listeners and timeouts of `cfg`.
///
/// This is how a wrapped [`PinningService::filter`] (authentication, CORS) is served.
pub async fn serve_filter(
    cfg: PinSvcConfig,
    filter: BoxedFilter<(Response,)>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(Vec<SocketAddr>, JoinHandle<()>), ServeError> {
    if cfg.listen.is_empty() {
        return Err(ServeError::NoListenAddress);
    }
    let extra_headers = header_map(&cfg.headers)?;
    let mut listeners = Vec::with_capacity(cfg.listen.len());
    let mut bound = Vec::with_capacity(cfg.listen.len());
    for addr in &cfg.listen {
        let bind_err = |source| ServeError::Bind {
            addr: *addr,
            source,
        };
        let listener = TcpListener::bind(addr).await.map_err(bind_err)?;
        let local = listener.local_addr().map_err(bind_err)?;
        tracing::info!(addr = %local, "pinning service api listening");
        bound.push(local);
        listeners.push(listener);
    }
    let opts = Arc::new(ConnOptions {
        extra_headers,
        max_header_bytes: cfg.max_header_bytes,
        read_header_timeout: cfg.read_header_timeout,
        idle_timeout: cfg.idle_timeout,
    });
    let handle = tokio::spawn(run(listeners, opts, filter, shutdown));
    Ok((bound, handle))
}

fn header_map(pairs: &BTreeMap<String, String>) -> Result<HeaderMap, ServeError> {
    let mut map = HeaderMap::new();
    for (k, v) in pairs {
        let invalid = |reason: String| ServeError::InvalidHeader {
            name: k.clone(),
            reason,
        };
        let name = HeaderName::from_bytes(k.as_bytes()).map_err(|e| invalid(e.to_string()))?;
        let value = HeaderValue::from_str(v).map_err(|e| invalid(e.to_string()))?;
        map.append(name, value);
    }
    Ok(map)
}

struct ConnOptions {
    extra_headers: HeaderMap,
    max_header_bytes: usize,
    read_header_timeout: Duration,
    idle_timeout: Duration,
}

async fn run(
    listeners: Vec<TcpListener>,
    opts: Arc<ConnOptions>,
    filter: BoxedFilter<(Response,)>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let (stop_tx, _) = watch::channel(false);
    let mut accepts = JoinSet::new();
    for listener in listeners {
        accepts.spawn(accept_loop(
            listener,
            Arc::clone(&opts),
            filter.clone(),
            stop_tx.subscribe(),
        ));
    }
    shutdown.await;
    tracing::info!("pinning service api shutting down");
    let _ = stop_tx.send(true);
    while accepts.join_next().await.is_some() {}
    tracing::info!("pinning service api stopped");
}

async fn accept_loop(
    listener: TcpListener,
    opts: Arc<ConnOptions>,
    filter: BoxedFilter<(Response,)>,
    mut stop: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    conns.spawn(serve_connection(stream, peer, filter.clone(), Arc::clone(&opts), stop.clone()));
                }
                Err(e) if matches!(e.kind(), io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset) => {}
                Err(e) => {
                    // Usually out of file descriptors: give connections time to close.
                    tracing::error!(error = %e, "pinning service api accept failed");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            },
            Some(done) = conns.join_next(), if !conns.is_empty() => {
                if let Err(e) = done && e.is_panic() {
                    tracing::error!(error = %e, "pinning service connection task panicked");
                }
            }
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = conns.len(),
            "closing connections still open after the grace period"
        );
        conns.shutdown().await;
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    filter: BoxedFilter<(Response,)>,
    opts: Arc<ConnOptions>,
    mut stop: watch::Receiver<bool>,
) {
    let clock = Arc::new(Clock::new());
    let io = TokioIo::new(ClockedIo {
        inner: stream,
        clock: Arc::clone(&clock),
    });
    let warp_svc = TowerToHyperService::new(warp::service(filter));
    let svc = {
        let clock = Arc::clone(&clock);
        let opts = Arc::clone(&opts);
        hyper::service::service_fn(move |req: Request<Incoming>| {
            clock.request_started();
            let (method, path) = (req.method().clone(), req.uri().path().to_owned());
            let started = Instant::now();
            let fut = warp_svc.call(req);
            let clock = Arc::clone(&clock);
            let opts = Arc::clone(&opts);
            async move {
                let mut resp = match fut.await {
                    Ok(r) => r,
                    Err(never) => match never {},
                };
                for name in opts.extra_headers.keys() {
                    if !resp.headers().contains_key(name) {
                        for value in opts.extra_headers.get_all(name) {
                            resp.headers_mut().append(name.clone(), value.clone());
                        }
                    }
                }
                tracing::debug!(%peer, %method, %path, status = resp.status().as_u16(),
                    elapsed_ms = started.elapsed().as_millis() as u64, "pinning service request served");
                clock.request_finished();
                Ok::<_, Infallible>(resp)
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
    let mut closing = *stop.borrow();
    if closing {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        let deadline = if closing { None } else { clock.deadline(&opts) };
        let sleep = async move {
            match deadline {
                Some((at, _)) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(%peer, error = %e, "pinning service connection ended with an error");
                }
                break;
            }
            _ = stop.changed(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = clock.changed.notified() => {}
            _ = sleep => match deadline.map(|(_, why)| why) {
                Some(Expiry::Idle) if clock.deadline(&opts).is_some_and(|(at, _)| at <= Instant::now()) => {
                    tracing::debug!(%peer, "closing idle connection");
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
                Some(Expiry::Header) if clock.deadline(&opts).is_some_and(|(at, _)| at <= Instant::now()) => {
                    tracing::debug!(%peer, "request head not received in time; closing connection");
                    break;
                }
                _ => {}
            },
        }
    }
}

/// Which timeout a deadline belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expiry {
    Idle,
    Header,
}

/// What a connection is doing, as far as its timeouts care.
struct Clock {
    state: Mutex<ClockState>,
    /// Woken on every change, so the connection loop recomputes its deadline.
    changed: Notify,
}

struct ClockState {
    in_flight: usize,
    idle_since: Instant,
    head_started: Option<Instant>,
}

impl Clock {
    fn new() -> Self {
        Clock {
            state: Mutex::new(ClockState {
                in_flight: 0,
                idle_since: Instant::now(),
                head_started: None,
            }),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, ClockState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes arrived; between requests they begin the next request head.
    fn bytes_read(&self) {
        let mut s = self.lock();
        if s.in_flight == 0 && s.head_started.is_none() {
            s.head_started = Some(Instant::now());
            drop(s);
            self.changed.notify_one();
        }
    }

    fn request_started(&self) {
        let mut s = self.lock();
        s.in_flight += 1;
        s.head_started = None;
        drop(s);
        self.changed.notify_one();
    }

    fn request_finished(&self) {
        let mut s = self.lock();
        s.in_flight = s.in_flight.saturating_sub(1);
        s.idle_since = Instant::now();
        drop(s);
        self.changed.notify_one();
    }

    /// When the connection must be closed if nothing happens, and why.
    fn deadline(&self, opts: &ConnOptions) -> Option<(Instant, Expiry)> {
        let s = self.lock();
        if s.in_flight > 0 {
            return None;
        }
        match s.head_started {
            Some(t) if !opts.read_header_timeout.is_zero() => {
                Some((t + opts.read_header_timeout, Expiry::Header))
            }
            Some(_) => None,
            None if !opts.idle_timeout.is_zero() => {
                Some((s.idle_since + opts.idle_timeout, Expiry::Idle))
            }
            None => None,
        }
    }
}

/// The TCP stream, reporting reads to the connection's [`Clock`].
struct ClockedIo {
    inner: TcpStream,
    clock: Arc<Clock>,
}

impl AsyncRead for ClockedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(res, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.clock.bytes_read();
        }
        res
    }
}

impl AsyncWrite for ClockedIo {
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
