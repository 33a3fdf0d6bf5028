//! The IPFS proxy as a supervised actor, over the peer's cluster handle.

use std::sync::Arc;

use async_trait::async_trait;
use cluster_actors::{Actor, ActorError, Context};
use cluster_api::ApiStream;
use cluster_core::Cluster;
use cluster_proxy::{ProxyBackend, ProxyConfig};
use bytes::Bytes;
use cluster_types::{AddParams, AddedOutput, ApiError, Cid, GlobalRepoGc, Pin, PinOptions, PinTypeFilter};
use futures::stream::BoxStream;
use tokio::task::JoinHandle;

/// The proxy's view of the peer.
pub struct ProxyPeer(pub Cluster);

#[async_trait]
impl ProxyBackend for ProxyPeer {
    async fn resolve(&self, path: &str) -> Result<Cid, ApiError> {
        self.0.resolve_path(path).await
    }

    async fn pin(&self, cid: Cid, opts: PinOptions) -> Result<Pin, ApiError> {
        self.0.pin(cid, opts).await
    }

    async fn pin_path(&self, path: &str, opts: PinOptions) -> Result<Pin, ApiError> {
        self.0.pin_path(path, opts).await
    }

    async fn unpin(&self, cid: Cid) -> Result<Pin, ApiError> {
        self.0.unpin(cid).await
    }

    async fn unpin_path(&self, path: &str) -> Result<Pin, ApiError> {
        self.0.unpin_path(path).await
    }

    fn pins(&self) -> ApiStream<Pin> {
        self.0.allocations(PinTypeFilter::ALL)
    }

    async fn pin_get(&self, cid: Cid) -> Result<Pin, ApiError> {
        self.0.allocation(cid).await
    }

    async fn repo_stat(&self) -> Result<(u64, u64), ApiError> {
        Ok(self.0.repo_stat_all().await)
    }

    async fn repo_gc(&self) -> Result<GlobalRepoGc, ApiError> {
        self.0.repo_gc(false).await
    }

    fn add(
        &self,
        content_type: &str,
        body: BoxStream<'static, Result<Bytes, ApiError>>,
        params: AddParams,
    ) -> Result<BoxStream<'static, Result<AddedOutput, ApiError>>, ApiError> {
        self.0.add_multipart(content_type, body, params)
    }
}

/// Aborts the server task when the actor instance goes away, freeing the ports for the next.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Messages of the proxy actor.
pub enum ProxyMsg {
    /// The listener task ended on its own: fail, so the supervisor rebinds.
    ServerStopped,
}

/// Serves the IPFS proxy.
pub struct ProxyActor {
    cfg: ProxyConfig,
    backend: Arc<dyn ProxyBackend>,
    bound: Vec<String>,
}

impl ProxyActor {
    /// Builds the actor.
    pub fn new(cfg: ProxyConfig, backend: Arc<dyn ProxyBackend>) -> Self {
        ProxyActor { cfg, backend, bound: Vec::new() }
    }
}

impl Actor for ProxyActor {
    type Msg = ProxyMsg;

    async fn started(&mut self, ctx: &Context<ProxyMsg>) -> Result<(), ActorError> {
        let (bound, task) = cluster_proxy::serve_proxy(self.cfg.clone(), Arc::clone(&self.backend), std::future::pending())
            .await
            .map_err(ActorError::failure)?;
        self.bound = bound.iter().map(ToString::to_string).collect();
        let me = ctx.myself();
        let mut task = AbortOnDrop(task);
        ctx.spawn_background(async move {
            let _ = (&mut task.0).await;
            let _ = me.send(ProxyMsg::ServerStopped).await;
        });
        Ok(())
    }

    async fn handle(&mut self, msg: ProxyMsg, _ctx: &Context<ProxyMsg>) -> Result<(), ActorError> {
        match msg {
            ProxyMsg::ServerStopped => {
                tracing::error!("ipfs proxy stopped unexpectedly");
                Err(ActorError::Failure("ipfs proxy listener stopped".into()))
            }
        }
    }

    fn observable_state(&self) -> serde_json::Value {
        serde_json::json!({ "listeners": self.bound })
    }
}
