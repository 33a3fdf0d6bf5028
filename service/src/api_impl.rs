//! The REST API's view of the peer: [`ClusterApi`] implemented on top of [`Cluster`].

use async_trait::async_trait;
use cluster_api::{ApiStream, ClusterApi};
use cluster_core::Cluster;
use cluster_types::{
    Alert, ApiError, ConnectGraph, Cid, GlobalPinInfo, GlobalRepoGc, Metric, Pin, PinOptions, PinTypeFilter, TrackerStatusFilter,
    Version, ID,
};

/// Adapts the peer to the API seam (a newtype, since both the trait and the type are foreign).
pub struct PeerApi(pub Cluster);

#[async_trait]
impl ClusterApi for PeerApi {
    async fn id(&self) -> ID {
        self.0.id().await
    }

    async fn version(&self) -> Version {
        Version { version: cluster_types::VERSION.to_string() }
    }

    fn peers(&self) -> ApiStream<ID> {
        self.0.peers()
    }

    async fn peer_add(&self, peer: &str) -> Result<ID, ApiError> {
        self.0.peer_add(peer).await
    }

    async fn peer_rm(&self, peer: &str) -> Result<(), ApiError> {
        self.0.peer_rm(peer).await
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

    fn allocations(&self, filter: PinTypeFilter) -> ApiStream<Pin> {
        self.0.allocations(filter)
    }

    async fn allocation(&self, cid: Cid) -> Result<Pin, ApiError> {
        self.0.allocation(cid).await
    }

    fn status_all(&self, filter: TrackerStatusFilter, local: bool) -> ApiStream<GlobalPinInfo> {
        self.0.status_all(filter, local)
    }

    async fn status(&self, cid: Cid, local: bool) -> Result<GlobalPinInfo, ApiError> {
        self.0.status(cid, local).await
    }

    fn recover_all(&self, local: bool) -> ApiStream<GlobalPinInfo> {
        self.0.recover_all(local)
    }

    async fn recover(&self, cid: Cid, local: bool) -> Result<GlobalPinInfo, ApiError> {
        self.0.recover(cid, local).await
    }

    async fn repo_gc(&self, local: bool) -> Result<GlobalRepoGc, ApiError> {
        self.0.repo_gc(local).await
    }

    async fn metric_names(&self) -> Result<Vec<String>, ApiError> {
        self.0.metric_names().await
    }

    async fn metrics(&self, name: &str) -> Result<Vec<Metric>, ApiError> {
        self.0.metrics_of(name).await
    }

    async fn connect_graph(&self) -> Result<ConnectGraph, ApiError> {
        self.0.connect_graph().await
    }

    async fn chaos_block(&self, peer: &str, blocked: bool) -> Result<(), ApiError> {
        self.0.chaos_block(peer, blocked).await
    }

    async fn alerts(&self) -> Result<Vec<Alert>, ApiError> {
        self.0.alerts().await
    }

    fn actor_health(&self) -> serde_json::Value {
        self.0.actor_health()
    }

    async fn kill_actor(&self, name: &str) -> Result<(), ApiError> {
        self.0.kill_actor(name)
    }

    fn prometheus_text(&self) -> String {
        self.0.prometheus_text()
    }

    fn add(
        &self,
        content_type: &str,
        body: ApiStream<bytes::Bytes>,
        params: cluster_types::AddParams,
    ) -> Result<ApiStream<cluster_types::AddedOutput>, ApiError> {
        self.0.add_multipart(content_type, body, params)
    }
}
