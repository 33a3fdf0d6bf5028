//! The API actor: owns the REST and Prometheus listeners so the supervisor can restart them.

use std::net::SocketAddr;
use std::sync::Arc;

use cluster_actors::{Actor, ActorError, Context};
use cluster_api::{serve_metrics, serve_rest, ClusterApi, RestApiConfig};
use tokio::task::JoinHandle;

/// Aborts a server task when the instance owning it goes away, freeing the port for the next.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Messages of the API actor.
pub enum ApiMsg {
    /// A listener task ended on its own: fail, so the supervisor rebinds.
    ServerStopped(String),
}

/// Serves the REST API and, when enabled, the metrics endpoint.
pub struct ApiActor {
    rest: RestApiConfig,
    metrics: Option<SocketAddr>,
    api: Arc<dyn ClusterApi>,
    bound: Vec<String>,
}

impl ApiActor {
    /// Builds the actor.
    pub fn new(rest: RestApiConfig, metrics: Option<SocketAddr>, api: Arc<dyn ClusterApi>) -> Self {
        ApiActor { rest, metrics, api, bound: Vec::new() }
    }
}

impl Actor for ApiActor {
    type Msg = ApiMsg;

    async fn started(&mut self, ctx: &Context<ApiMsg>) -> Result<(), ActorError> {
        let (addr, rest) = serve_rest(self.rest.clone(), Arc::clone(&self.api), std::future::pending())
            .await
            .map_err(ActorError::failure)?;
        tracing::info!(%addr, "rest api listening");
        self.bound = vec![format!("rest {addr}")];
        let mut servers = vec![AbortOnDrop(rest)];
        if let Some(listen) = self.metrics {
            let (addr, m) = serve_metrics(listen, Arc::clone(&self.api), std::future::pending())
                .await
                .map_err(ActorError::failure)?;
            tracing::info!(%addr, "prometheus metrics listening");
            self.bound.push(format!("metrics {addr}"));
            servers.push(AbortOnDrop(m));
        }
        let me = ctx.myself();
        // The servers are owned by this task: killing the instance drops them, freeing the ports.
        ctx.spawn_background(async move {
            let mut servers = servers;
            let (res, idx, _) = futures::future::select_all(servers.iter_mut().map(|s| &mut s.0)).await;
            let why = format!("listener {idx} stopped: {res:?}");
            let _ = me.send(ApiMsg::ServerStopped(why)).await;
        });
        Ok(())
    }

    async fn handle(&mut self, msg: ApiMsg, _ctx: &Context<ApiMsg>) -> Result<(), ActorError> {
        match msg {
            ApiMsg::ServerStopped(why) => {
                tracing::error!(%why, "api server stopped unexpectedly");
                Err(ActorError::Failure(why))
            }
        }
    }

    fn observable_state(&self) -> serde_json::Value {
        serde_json::json!({ "listeners": self.bound })
    }
}
