//! The seam between the proxy and the cluster.

use async_trait::async_trait;
use cluster_api::ApiStream;
use bytes::Bytes;
use cluster_types::{AddParams, AddedOutput, ApiError, Cid, GlobalRepoGc, Pin, PinOptions};
use futures::stream::BoxStream;

/// What the proxy's hijacked commands need from the cluster. The peer implements it over its
/// cluster handle; tests may use a fake.
#[async_trait]
pub trait ProxyBackend: Send + Sync + 'static {
    /// Resolves an IPFS path (`/ipfs/<cid>/a`, `/ipns/…`) to a CID through the peer's IPFS.
    async fn resolve(&self, path: &str) -> Result<Cid, ApiError>;

    /// Pins a CID cluster-wide.
    async fn pin(&self, cid: Cid, opts: PinOptions) -> Result<Pin, ApiError>;

    /// Resolves `path` and pins the result cluster-wide (`opts.pin_update` for updates).
    async fn pin_path(&self, path: &str, opts: PinOptions) -> Result<Pin, ApiError>;

    /// Removes a CID from the cluster pinset.
    async fn unpin(&self, cid: Cid) -> Result<Pin, ApiError>;

    /// Resolves `path` and removes the result from the cluster pinset.
    async fn unpin_path(&self, path: &str) -> Result<Pin, ApiError>;

    /// Every pin of the shared state, streamed.
    fn pins(&self) -> ApiStream<Pin>;

    /// One pin of the shared state (404 when absent).
    async fn pin_get(&self, cid: Cid) -> Result<Pin, ApiError>;

    /// IPFS repo usage summed over every member: `(repo_size, storage_max)`.
    async fn repo_stat(&self) -> Result<(u64, u64), ApiError>;

    /// IPFS garbage collection on every member.
    async fn repo_gc(&self) -> Result<GlobalRepoGc, ApiError>;

    /// Adds the content of a multipart upload through the cluster's add pipeline (§11):
    /// blocks go to the allocated peers and the root is pinned in the cluster.
    fn add(
        &self,
        content_type: &str,
        body: BoxStream<'static, Result<Bytes, ApiError>>,
        params: AddParams,
    ) -> Result<BoxStream<'static, Result<AddedOutput, ApiError>>, ApiError>;
}
