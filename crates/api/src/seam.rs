//! The seam between the HTTP layer and the cluster: everything a route needs, as one trait.

use async_trait::async_trait;
use cluster_types::{
    Alert, ApiError, Cid, ConnectGraph, GlobalPinInfo, GlobalRepoGc, ID, Metric, Pin, PinOptions, PinTypeFilter,
    TrackerStatusFilter, Version,
};

/// A list answered item by item, so long lists never sit whole in memory.
///
/// An `Err` item ends the stream: before any item it becomes the response's status and error
/// object; after items it is reported in the `X-Stream-Error` trailer.
pub type ApiStream<T> = futures::stream::BoxStream<'static, Result<T, ApiError>>;

/// What the REST API asks of the cluster. The peer implements it; tests use fakes.
///
/// Errors carry their HTTP status in [`ApiError::code`]; the API answers with that status and
/// the error as body, so implementations decide between 400, 404 (with
/// [`cluster_types::error::NOT_FOUND_MESSAGE`] for absent pins), 500 and so on.
#[async_trait]
pub trait ClusterApi: Send + Sync + 'static {
    /// This peer's identity (`GET /id`).
    async fn id(&self) -> ID;

    /// The release version (`GET /version`).
    async fn version(&self) -> Version;

    /// Every member's identity; unreachable members appear with `error` set (`GET /peers`).
    fn peers(&self) -> ApiStream<ID>;

    /// Adds a peer to the cluster, returning its identity (`POST /peers`).
    async fn peer_add(&self, peer: &str) -> Result<ID, ApiError>;

    /// Removes a member from the cluster (`DELETE /peers/{peer}`).
    async fn peer_rm(&self, peer: &str) -> Result<(), ApiError>;

    /// Pins a CID with the given options and returns the pin as committed (`POST /pins/{cid}`).
    async fn pin(&self, cid: Cid, opts: PinOptions) -> Result<Pin, ApiError>;

    /// Resolves an IPFS path (`/ipfs/<cid>/a/b`, `/ipns/...`, `/ipld/...`) and pins the result.
    async fn pin_path(&self, path: &str, opts: PinOptions) -> Result<Pin, ApiError>;

    /// Unpins a CID and returns the pin that was removed (`DELETE /pins/{cid}`).
    async fn unpin(&self, cid: Cid) -> Result<Pin, ApiError>;

    /// Resolves an IPFS path and unpins the result.
    async fn unpin_path(&self, path: &str) -> Result<Pin, ApiError>;

    /// The pins of the shared state whose type passes the filter (`GET /allocations`).
    fn allocations(&self, filter: PinTypeFilter) -> ApiStream<Pin>;

    /// One pin of the shared state; 404 with the not-found message when absent.
    async fn allocation(&self, cid: Cid) -> Result<Pin, ApiError>;

    /// The status of every pin, cluster-wide or only this peer's (`GET /pins`).
    fn status_all(&self, filter: TrackerStatusFilter, local: bool) -> ApiStream<GlobalPinInfo>;

    /// The status of one CID, cluster-wide or only this peer's (`GET /pins/{cid}`).
    async fn status(&self, cid: Cid, local: bool) -> Result<GlobalPinInfo, ApiError>;

    /// Re-queues every failed pin and returns the re-queued items (`POST /pins/recover`).
    fn recover_all(&self, local: bool) -> ApiStream<GlobalPinInfo>;

    /// Re-queues one CID if it failed (`POST /pins/{cid}/recover`).
    async fn recover(&self, cid: Cid, local: bool) -> Result<GlobalPinInfo, ApiError>;

    /// Runs IPFS garbage collection on every peer or only this one (`POST /ipfs/gc`).
    async fn repo_gc(&self, local: bool) -> Result<GlobalRepoGc, ApiError>;

    /// The names of the metrics the monitor knows (`GET /monitor/metrics`).
    async fn metric_names(&self) -> Result<Vec<String>, ApiError>;

    /// The latest valid metric of that name from every peer (`GET /monitor/metrics/{name}`).
    async fn metrics(&self, name: &str) -> Result<Vec<Metric>, ApiError>;

    /// Recent alerts, newest first (`GET /health/alerts`).
    async fn alerts(&self) -> Result<Vec<Alert>, ApiError>;

    /// The cluster's connectivity graph (`GET /health/graph`).
    async fn connect_graph(&self) -> Result<ConnectGraph, ApiError>;

    /// Chaos hook: cuts or restores every connection with a peer (only routed when chaos
    /// is enabled).
    async fn chaos_block(&self, peer: &str, blocked: bool) -> Result<(), ApiError>;

    /// A JSON array describing each supervised actor (`GET /health/actors`): name, state,
    /// restarts, seconds since progress, mailbox depth and whatever else helps an operator.
    fn actor_health(&self) -> serde_json::Value;

    /// Kills an actor so its supervisor restarts it; a chaos-testing hook that is only routed
    /// when the configuration enables it (`POST /health/actors/{name}/kill`).
    async fn kill_actor(&self, name: &str) -> Result<(), ApiError>;

    /// Refreshes snapshot gauges and renders the Prometheus exposition (`GET /metrics`).
    fn prometheus_text(&self) -> String;

    /// `POST /add`: streams a multipart upload (`content_type` carries the boundary) through
    /// the add pipeline. Bad parameters fail before any of the body is read; the output lines
    /// come as entries complete. Implementations without an add pipeline answer 409.
    fn add(
        &self,
        content_type: &str,
        body: ApiStream<bytes::Bytes>,
        params: cluster_types::AddParams,
    ) -> Result<ApiStream<cluster_types::AddedOutput>, ApiError> {
        let _ = (content_type, body, params);
        Err(ApiError::new(cluster_types::ErrorCode::Conflict, "this peer cannot add content"))
    }
}
