//! Sharded adds (§11): the blocks of one add are cut into shards of about `shard_size` bytes,
//! each stored on (and pinned by) its own allocation; a cluster-DAG node lists the shards and a
//! meta pin ties it to the content root. Unpinning the root removes all of them.
//!
//! Shards of one add go to peers that have none yet while such peers remain, so a large file
//! is spread over the cluster even when the free-space metrics have not caught up with the
//! first shards (the original allocates each shard by metrics alone, and stale metrics send
//! them all to the same peer).

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use cluster_types::{AddedOutput, ApiError, Cid, ErrorCode, Pin, PinMode, PinOptions, PinType};
use cluster_unixfs::Block;

use super::shard::{self, ShardFill};
use super::Fanout;
use crate::cluster::Cluster;

/// The pins a sharded add has committed so far, removed again when the add fails, so a failed
/// add leaves no pin behind.
#[derive(Clone, Default)]
pub(super) struct Committed(Arc<Mutex<Vec<Cid>>>);

impl Committed {
    /// Notes a pin about to be committed.
    fn record(&self, cid: Cid) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(cid);
    }

    /// Unpins everything recorded (best effort: what cannot be removed now is logged).
    pub(super) async fn roll_back(&self, cluster: &Cluster) {
        let parts = std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()));
        for cid in parts {
            // Unconditional: a commit cut short by the failure may still land, and removing a
            // CID that is not in the pinset is a no-op.
            match cluster.commit_unpin(Pin::new(cid)).await {
                Ok(_) => tracing::info!(%cid, "unpinned part of a failed sharded add"),
                Err(e) => tracing::warn!(%cid, error = %e, "cannot unpin part of a failed sharded add"),
            }
        }
    }
}

/// Cuts the add's blocks into shards, stores each on its allocations and pins it.
pub(super) struct Sharder {
    cluster: Cluster,
    opts: PinOptions,
    local: bool,
    limit: u64,
    fill: ShardFill,
    /// The current shard's destinations and allocations, opened on its first block.
    open: Option<(Fanout, Vec<String>)>,
    /// Roots of the shards pinned so far, in order.
    shards: Vec<Cid>,
    /// Peers holding a shard of this add, avoided by the next shards while others remain.
    used: Vec<String>,
    committed: Committed,
}

impl Sharder {
    pub(super) fn new(cluster: &Cluster, opts: &PinOptions, local: bool, committed: Committed) -> Sharder {
        Sharder {
            cluster: cluster.clone(),
            opts: opts.clone(),
            local,
            limit: opts.shard_size,
            fill: ShardFill::default(),
            open: None,
            shards: Vec::new(),
            used: Vec::new(),
            committed,
        }
    }

    /// Takes the next block; when it closes the current shard, returns that shard's output line.
    pub(super) async fn push(&mut self, block: Block) -> Result<Option<AddedOutput>, ApiError> {
        let len = block.data.len() as u64;
        let weight = shard::shard_weight(&block.cid, &block.data);
        let line = if self.fill.fits(weight, self.limit) { None } else { Some(self.flush().await?) };
        if self.open.is_none() {
            let (allocations, destinations) = self.allocate().await?;
            tracing::debug!(shard = self.shards.len(), ?allocations, ?destinations, "shard allocated");
            self.open = Some((Fanout::open(&self.cluster, destinations), allocations));
        }
        if self.fill.take(block.cid, len, weight)
            && let Some((fanout, _)) = self.open.as_mut()
        {
            fanout.push(block).await?;
        }
        Ok(line)
    }

    /// Closes the last shard; returns the roots of every shard and the last one's line.
    pub(super) async fn finish(mut self) -> Result<(Vec<Cid>, Option<AddedOutput>), ApiError> {
        let line = if self.fill.is_empty() { None } else { Some(self.flush().await?) };
        Ok((std::mem::take(&mut self.shards), line))
    }

    /// Shard allocation: the add's replication, avoiding peers that already hold one of its
    /// shards unless too few others are left.
    async fn allocate(&mut self) -> Result<(Vec<String>, Vec<String>), ApiError> {
        let spread = self.cluster.block_allocate(&self.opts, self.local, &self.used).await;
        let (allocations, destinations) = match spread {
            Ok(found) => found,
            Err(e) if !self.used.is_empty() => {
                tracing::debug!(error = %e, "every peer holds a shard of this add; allocating among all");
                self.used.clear();
                self.cluster.block_allocate(&self.opts, self.local, &[]).await?
            }
            Err(e) => return Err(e),
        };
        for p in &allocations {
            if !self.used.contains(p) {
                self.used.push(p.clone());
            }
        }
        Ok((allocations, destinations))
    }

    /// Stores the shard node(s) next to the shard's blocks, waits until the destinations hold
    /// everything, and pins the shard.
    async fn flush(&mut self) -> Result<AddedOutput, ApiError> {
        let fill = std::mem::take(&mut self.fill);
        let Some((mut fanout, allocations)) = self.open.take() else {
            return Err(ApiError::internal("shard closed before it was opened"));
        };
        let dag = shard::shard_dag(&fill.links);
        for (cid, data) in dag.blocks {
            fanout.push(Block { cid, data }).await?;
        }
        fanout.finish().await?;
        let n = self.shards.len();
        let mut pin = Pin::with_options(dag.root, self.opts.clone());
        pin.pin_type = PinType::Shard;
        pin.max_depth = dag.max_depth;
        pin.reference = self.shards.last().copied();
        pin.options.name = format!("{}-shard-{n}", self.opts.name);
        pin.options.shard_size = fill.size;
        pin.options.mode = PinMode::Recursive;
        pin.allocations = allocations.clone();
        self.committed.record(dag.root);
        self.cluster.commit_part(pin).await?;
        self.shards.push(dag.root);
        tracing::info!(shard = n, root = %dag.root, bytes = fill.size, blocks = fill.links.len(), ?allocations, "shard pinned");
        Ok(AddedOutput { name: format!("shard-{n}"), cid: Some(dag.root), bytes: 0, size: fill.size, allocations })
    }
}

impl Cluster {
    /// Ends a sharded add: stores the cluster-DAG node here, pins it everywhere (direct), then
    /// pins the content root as a meta pin referencing it.
    pub(super) async fn pin_sharded(
        &self,
        root: Cid,
        opts: &PinOptions,
        shards: &[Cid],
        committed: &Committed,
    ) -> Result<Pin, ApiError> {
        let (dag_cid, data) = shard::cluster_dag(shards);
        self.inner
            .ipfs
            .put_blocks(vec![(dag_cid, data)])
            .await
            .map_err(|e| ApiError::new(ErrorCode::Unavailable, format!("cannot store the cluster DAG node: {e}")))?;
        let mut dag_pin = Pin::with_options(
            dag_cid,
            PinOptions {
                replication_factor_min: -1,
                replication_factor_max: -1,
                name: format!("{}-clusterDAG", opts.name),
                mode: PinMode::Direct,
                shard_size: opts.shard_size,
                ..PinOptions::default()
            },
        );
        dag_pin.pin_type = PinType::ClusterDag;
        dag_pin.reference = Some(root);
        committed.record(dag_cid);
        self.commit_part(dag_pin).await?;

        let mut meta = Pin::with_options(root, opts.clone());
        meta.pin_type = PinType::Meta;
        meta.reference = Some(dag_cid);
        meta.options.user_allocations.clear();
        let meta = self.commit_part(meta).await?;
        tracing::info!(%root, cluster_dag = %dag_cid, shards = shards.len(), "sharded add pinned");
        Ok(meta)
    }

    /// Commits one pin of a sharded DAG as built: defaults filled in, validated, stamped; its
    /// allocations are the ones the blocks went to.
    async fn commit_part(&self, mut pin: Pin) -> Result<Pin, ApiError> {
        self.fill_defaults(&mut pin);
        pin.validate()?;
        pin.timestamp = cluster_types::Timestamp::now();
        self.commit_pin(pin).await
    }

    /// The shards and the cluster-DAG node of a meta pin, read from the cluster-DAG block
    /// (fetched from the cluster's IPFS nodes when this one does not hold it).
    pub(crate) async fn sharded_parts(&self, meta: &Pin) -> Result<Vec<Cid>, ApiError> {
        let Some(dag_cid) = meta.reference else {
            return Err(ApiError::internal(format!("meta pin {} has no cluster DAG reference", meta.cid)));
        };
        let data: Bytes = tokio::time::timeout(self.inner.settings.ipfs_timeouts.request, self.inner.ipfs.block_get(&dag_cid))
            .await
            .map_err(|_| ApiError::new(ErrorCode::Timeout, format!("reading cluster DAG {dag_cid} timed out")))?
            .map_err(|e| ApiError::new(ErrorCode::Unavailable, format!("cannot read cluster DAG {dag_cid}: {e}")))?;
        let mut parts = shard::decode_link_map(&data).map_err(|e| ApiError::internal(format!("cluster DAG {dag_cid}: {e}")))?;
        parts.push(dag_cid);
        Ok(parts)
    }
}
