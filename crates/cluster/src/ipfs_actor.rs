//! The IPFS connector actor: every IPFS call of the peer goes through its mailbox.
//!
//! Calls run as tasks owned by the actor instance, so a hung backend call is visible to the
//! supervisor (busy, no progress) and killing the actor cancels every call in flight. Callers
//! use [`IpfsClient`], which implements [`IpfsConnector`] by messaging the actor; a call whose
//! instance died answers [`IpfsError::Closed`], which the pin tracker treats as "retry".

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use cluster_actors::{Actor, ActorError, ActorRef, Context, WorkGuard};
use cluster_ipfs::{Cid, IpfsConnector, IpfsError, IpfsId, IpfsPinStatus, PinMode, RepoStat};
use cluster_observe::Metrics;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot, Semaphore};

/// One IPFS call: a closure run against the backend, with a guard that records progress.
type CallFn = Box<dyn FnOnce(Arc<dyn IpfsConnector>, WorkGuard) -> BoxFuture<'static, ()> + Send>;

/// Messages of the IPFS connector actor.
pub enum IpfsMsg {
    /// Runs one connector call.
    Call {
        /// Method name, for metrics and logs.
        method: &'static str,
        /// The call.
        call: CallFn,
    },
}

/// Timeouts the actor applies to calls that have no watchdog of their own.
#[derive(Debug, Clone)]
pub struct IpfsTimeouts {
    /// Any call but pin, unpin and gc.
    pub request: Duration,
    /// Unpin.
    pub unpin: Duration,
    /// Repo GC.
    pub repo_gc: Duration,
}

/// The actor owning the backend connector.
pub struct IpfsActor {
    backend: Arc<dyn IpfsConnector>,
    metrics: Arc<Metrics>,
    limiter: Arc<Semaphore>,
    max_concurrent_calls: usize,
    calls: u64,
}

impl IpfsActor {
    /// Builds an instance; `max_concurrent_calls` bounds calls running against the backend.
    pub fn new(backend: Arc<dyn IpfsConnector>, metrics: Arc<Metrics>, max_concurrent_calls: usize) -> Self {
        let max_concurrent_calls = max_concurrent_calls.max(1);
        IpfsActor {
            backend,
            metrics,
            limiter: Arc::new(Semaphore::new(max_concurrent_calls)),
            max_concurrent_calls,
            calls: 0,
        }
    }
}

impl Actor for IpfsActor {
    type Msg = IpfsMsg;

    async fn handle(&mut self, msg: IpfsMsg, ctx: &Context<IpfsMsg>) -> Result<(), ActorError> {
        let IpfsMsg::Call { method, call } = msg;
        self.calls += 1;
        let backend = Arc::clone(&self.backend);
        let metrics = Arc::clone(&self.metrics);
        let limiter = Arc::clone(&self.limiter);
        let guard = ctx.work_guard();
        ctx.spawn_tracked(async move {
            // The semaphore only closes if the actor is dropped, and then this task is gone too.
            let Ok(_permit) = limiter.acquire_owned().await else { return };
            let started = Instant::now();
            call(backend, guard).await;
            metrics.observe_ipfs_call(method, started.elapsed().as_secs_f64());
        });
        Ok(())
    }

    fn observable_state(&self) -> serde_json::Value {
        serde_json::json!({
            "calls_total": self.calls,
            // A running call holds a permit, so the permits taken are the calls in flight.
            "calls_in_flight": self.max_concurrent_calls - self.limiter.available_permits(),
            "free_call_slots": self.limiter.available_permits(),
        })
    }
}

/// An [`IpfsConnector`] that forwards every call to the IPFS connector actor.
#[derive(Clone)]
pub struct IpfsClient {
    actor: ActorRef<IpfsMsg>,
    timeouts: IpfsTimeouts,
}

impl IpfsClient {
    /// Wraps the actor's handle.
    pub fn new(actor: ActorRef<IpfsMsg>, timeouts: IpfsTimeouts) -> Self {
        IpfsClient { actor, timeouts }
    }

    /// A pin-like call: no overall timeout (the tracker's no-progress watchdog decides when it
    /// is stuck); the backend's progress both feeds the actor's liveness and reaches `progress`.
    async fn pinning_call<F>(&self, method: &'static str, progress: mpsc::Sender<u64>, f: F) -> Result<(), IpfsError>
    where
        F: FnOnce(Arc<dyn IpfsConnector>, mpsc::Sender<u64>) -> BoxFuture<'static, Result<(), IpfsError>> + Send + 'static,
    {
        self.call(method, None, move |b, guard| {
            Box::pin(async move {
                let (inner_tx, mut inner_rx) = mpsc::channel::<u64>(16);
                let forward = async {
                    while let Some(n) = inner_rx.recv().await {
                        guard.record_progress();
                        let _ = progress.try_send(n);
                    }
                };
                let (res, ()) = tokio::join!(f(b, inner_tx), forward);
                res
            })
        })
        .await
    }

    /// Sends a call whose result comes back on a oneshot, bounded by `timeout` when given.
    async fn call<T, F>(&self, method: &'static str, timeout: Option<Duration>, f: F) -> Result<T, IpfsError>
    where
        T: Send + 'static,
        F: FnOnce(Arc<dyn IpfsConnector>, WorkGuard) -> BoxFuture<'static, Result<T, IpfsError>> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let call: CallFn = Box::new(move |backend, guard| {
            Box::pin(async move {
                let mut tx = tx;
                let fut = f(backend, guard);
                let run = async {
                    match timeout {
                        Some(t) => tokio::time::timeout(t, fut).await.unwrap_or(Err(IpfsError::Timeout)),
                        None => fut.await,
                    }
                };
                // A caller that gives up (a pin watchdog firing, a client disconnecting) cancels
                // the backend call instead of leaving it to run unobserved.
                tokio::select! {
                    res = run => {
                        let _ = tx.send(res);
                    }
                    () = tx.closed() => {}
                }
            })
        });
        self.actor.send(IpfsMsg::Call { method, call }).await.map_err(|_| IpfsError::Closed)?;
        // A dropped sender means the instance running the call was killed or restarted.
        rx.await.unwrap_or(Err(IpfsError::Closed))
    }
}

#[async_trait]
impl IpfsConnector for IpfsClient {
    async fn id(&self) -> Result<IpfsId, IpfsError> {
        self.call("id", Some(self.timeouts.request), |b, _g| Box::pin(async move { b.id().await })).await
    }

    async fn pin(&self, cid: &Cid, mode: PinMode, progress: mpsc::Sender<u64>) -> Result<(), IpfsError> {
        let cid = *cid;
        self.pinning_call("pin", progress, move |b, tx| Box::pin(async move { b.pin(&cid, mode, tx).await })).await
    }

    async fn pin_depth(&self, cid: &Cid, depth: u32, progress: mpsc::Sender<u64>) -> Result<(), IpfsError> {
        let cid = *cid;
        self.pinning_call("pin", progress, move |b, tx| Box::pin(async move { b.pin_depth(&cid, depth, tx).await }))
            .await
    }

    async fn pin_update(&self, from: &Cid, to: &Cid, progress: mpsc::Sender<u64>) -> Result<(), IpfsError> {
        let (from, to) = (*from, *to);
        self.pinning_call("pin_update", progress, move |b, tx| Box::pin(async move { b.pin_update(&from, &to, tx).await }))
            .await
    }

    async fn unpin(&self, cid: &Cid) -> Result<(), IpfsError> {
        let cid = *cid;
        self.call("unpin", Some(self.timeouts.unpin), move |b, _g| Box::pin(async move { b.unpin(&cid).await }))
            .await
    }

    async fn pin_ls_cid(&self, cid: &Cid) -> Result<IpfsPinStatus, IpfsError> {
        let cid = *cid;
        self.call("pin_ls", Some(self.timeouts.request), move |b, _g| {
            Box::pin(async move { b.pin_ls_cid(&cid).await })
        })
        .await
    }

    async fn pin_ls_cids(&self, cids: &[Cid]) -> Result<Vec<IpfsPinStatus>, IpfsError> {
        let cids = cids.to_vec();
        self.call("pin_ls_cids", Some(self.timeouts.request), move |b, _g| {
            Box::pin(async move { b.pin_ls_cids(&cids).await })
        })
        .await
    }

    fn pin_ls(&self, recursive: bool, direct: bool) -> BoxStream<'static, Result<(Cid, IpfsPinStatus), IpfsError>> {
        let (tx, rx) = mpsc::channel(1024);
        let this = self.clone();
        tokio::spawn(async move {
            let err_tx = tx.clone();
            let res = this
                .call("pin_ls", None, move |b, guard| {
                    Box::pin(async move {
                        let mut s = b.pin_ls(recursive, direct);
                        while let Some(item) = s.next().await {
                            guard.record_progress();
                            if tx.send(item).await.is_err() {
                                break; // the reader went away
                            }
                        }
                        Ok(())
                    })
                })
                .await;
            if let Err(e) = res {
                let _ = err_tx.send(Err(e)).await;
            }
        });
        tokio_stream::wrappers::ReceiverStream::new(rx).boxed()
    }

    async fn repo_stat(&self) -> Result<RepoStat, IpfsError> {
        self.call("repo_stat", Some(self.timeouts.request), |b, _g| Box::pin(async move { b.repo_stat().await }))
            .await
    }

    async fn repo_gc(&self) -> Result<Vec<Cid>, IpfsError> {
        self.call("repo_gc", Some(self.timeouts.repo_gc), |b, guard| {
            Box::pin(async move {
                // GC reports no intermediate progress; keep the actor's heartbeat alive while it
                // runs, since its own timeout already bounds it.
                let gc = b.repo_gc();
                tokio::pin!(gc);
                let mut beat = tokio::time::interval(Duration::from_secs(5));
                loop {
                    tokio::select! {
                        r = &mut gc => return r,
                        _ = beat.tick() => guard.record_progress(),
                    }
                }
            })
        })
        .await
    }

    async fn block_put(&self, data: Bytes, codec: u64) -> Result<Cid, IpfsError> {
        self.call("block_put", Some(self.timeouts.request), move |b, _g| {
            Box::pin(async move { b.block_put(data, codec).await })
        })
        .await
    }

    async fn put_blocks(&self, blocks: Vec<(Cid, Bytes)>) -> Result<(), IpfsError> {
        self.call("put_blocks", Some(self.timeouts.request), move |b, _g| {
            Box::pin(async move { b.put_blocks(blocks).await })
        })
        .await
    }

    async fn put_own_blocks(&self, blocks: Vec<(Cid, Bytes)>) -> Result<(), IpfsError> {
        self.call("put_blocks", Some(self.timeouts.request), move |b, _g| {
            Box::pin(async move { b.put_own_blocks(blocks).await })
        })
        .await
    }

    async fn block_get(&self, cid: &Cid) -> Result<Bytes, IpfsError> {
        let cid = *cid;
        self.call("block_get", Some(self.timeouts.request), move |b, _g| {
            Box::pin(async move { b.block_get(&cid).await })
        })
        .await
    }

    async fn swarm_connect(&self, addr: &str) -> Result<(), IpfsError> {
        let addr = addr.to_string();
        self.call("swarm_connect", Some(self.timeouts.request), move |b, _g| {
            Box::pin(async move { b.swarm_connect(&addr).await })
        })
        .await
    }

    async fn swarm_peers(&self) -> Result<Vec<String>, IpfsError> {
        self.call("swarm_peers", Some(self.timeouts.request), |b, _g| {
            Box::pin(async move { b.swarm_peers().await })
        })
        .await
    }

    async fn resolve(&self, path: &str) -> Result<Cid, IpfsError> {
        let path = path.to_string();
        self.call("resolve", Some(self.timeouts.request), move |b, _g| {
            Box::pin(async move { b.resolve(&path).await })
        })
        .await
    }

    async fn add_bytes(&self, data: Bytes) -> Result<Cid, IpfsError> {
        self.call("add", Some(self.timeouts.request), move |b, _g| Box::pin(async move { b.add_bytes(data).await }))
            .await
    }

    async fn cat(&self, cid: &Cid) -> Result<Bytes, IpfsError> {
        let cid = *cid;
        self.call("cat", Some(self.timeouts.request), move |b, _g| Box::pin(async move { b.cat(&cid).await })).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster_actors::{RestartPolicy, Supervisor};
    use cluster_ipfs::EmbeddedConfig;

    /// The client, and the supervisor that keeps its actor running while it lives.
    fn client(backend: Arc<dyn IpfsConnector>) -> (IpfsClient, Supervisor) {
        let supervisor = Supervisor::new("test", Duration::from_secs(1));
        let actor = supervisor.spawn("ipfs_connector", 16, RestartPolicy::default(), move || {
            IpfsActor::new(Arc::clone(&backend), Arc::new(Metrics::new()), 4)
        });
        let t = Duration::from_secs(10);
        (IpfsClient::new(actor, IpfsTimeouts { request: t, unpin: t, repo_gc: t }), supervisor)
    }

    /// The client must reach the backend's own `put_own_blocks`: the trait's default would check
    /// every block against its CID, hashing a whole add a second time.
    #[tokio::test]
    async fn own_blocks_reach_the_backend_unchecked() {
        let node = cluster_ipfs::start_embedded(EmbeddedConfig::loopback()).await.expect("embedded node");
        let (client, _supervisor) = client(Arc::clone(&node));
        let cid = client.add_bytes(Bytes::from_static(b"the real content")).await.expect("add");
        // Data that does not hash to its CID tells the two paths apart: only the checked one
        // refuses it.
        let other = vec![(cid, Bytes::from_static(b"other bytes"))];
        let checked = client.put_blocks(other.clone()).await;
        assert!(matches!(checked, Err(IpfsError::InvalidInput(_))), "put_blocks checks: {checked:?}");
        client.put_own_blocks(other).await.expect("put_own_blocks stores without checking");
        node.shutdown().await.expect("shutdown");
    }
}
