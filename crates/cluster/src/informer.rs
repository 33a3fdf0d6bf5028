//! Informers: the metrics a peer publishes about itself (ping, freespace, tags, pinqueue).
//!
//! One actor produces them all on a timer and hands them to the monitor, which is where the
//! allocator reads them. Each metric carries a TTL; a metric that stops being renewed expires
//! and raises an alert, which is how a dead informer (or peer) becomes visible.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cluster_actors::{Actor, ActorError, ActorRef, Context};
use cluster_ipfs::IpfsConnector;
use cluster_types::Metric;
use futures::future::BoxFuture;

use crate::monitor::MonitorMsg;

/// Informer calls are short: a slow IPFS must not keep metrics from being published, since
/// stale metrics are what raise alerts.
const INFORMER_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads the pin tracker's queue length (an ask to the tracker actor).
pub type QueueSizeFn = Arc<dyn Fn() -> BoxFuture<'static, Option<u64>> + Send + Sync>;

/// What the informers publish and how often.
#[derive(Clone)]
pub struct InformerSettings {
    /// This peer's id.
    pub peer: String,
    /// This peer's name, carried in the ping metric.
    pub peername: String,
    /// How often the ping metric is sent (its TTL is twice this).
    pub ping_interval: Duration,
    /// TTL of the freespace metric; `None` when the disk informer is not configured.
    pub disk_ttl: Option<Duration>,
    /// `freespace` or `reposize`.
    pub disk_metric_type: String,
    /// Tags and their TTL; `None` when the tags informer is not configured.
    pub tags: Option<(BTreeMap<String, String>, Duration)>,
    /// TTL and weight bucket of the pinqueue metric; `None` when not configured.
    pub pinqueue: Option<(Duration, u64)>,
    /// Where the embedded IPFS repo lives, to measure free disk space when IPFS reports no limit.
    pub repo_path: Option<PathBuf>,
    /// This peer's cluster swarm addresses (`/…/p2p/<id>`), carried in the ping metric so
    /// peers that only meet through gossip can dial each other. Filled once the host listens.
    pub cluster_addresses: Arc<std::sync::RwLock<Vec<String>>>,
}

/// The informer actor takes no messages: it publishes on its timer.
pub enum InformerMsg {}

/// The informer actor.
pub struct InformerActor {
    settings: InformerSettings,
    ipfs: Arc<dyn IpfsConnector>,
    monitor: ActorRef<MonitorMsg>,
    queue_size: QueueSizeFn,
    published: u64,
    last_error: Option<String>,
}

impl InformerActor {
    /// Builds the actor.
    pub fn new(
        settings: InformerSettings,
        ipfs: Arc<dyn IpfsConnector>,
        monitor: ActorRef<MonitorMsg>,
        queue_size: QueueSizeFn,
    ) -> Self {
        InformerActor { settings, ipfs, monitor, queue_size, published: 0, last_error: None }
    }

    fn metric(&self, name: &str, value: String, weight: i64, ttl: Duration, valid: bool, partitionable: bool) -> Metric {
        let mut m = Metric {
            name: name.to_string(),
            peer: self.settings.peer.clone(),
            value,
            expire: 0,
            valid,
            weight,
            partitionable,
            received_at: 0,
        };
        m.set_ttl(ttl);
        // The send time, from which receivers derive the TTL (see the monitor).
        m.received_at = cluster_types::Timestamp::now().unix_nanos();
        m
    }

    async fn collect(&mut self) -> Vec<Metric> {
        let s = self.settings.clone();
        let mut out = Vec::new();
        let ipfs_id = tokio::time::timeout(INFORMER_CALL_TIMEOUT, self.ipfs.id()).await.ok().and_then(Result::ok);
        let ping_value = serde_json::json!({
            "peer_name": s.peername,
            "ipfs_id": ipfs_id.as_ref().map(|i| i.id.clone()).unwrap_or_default(),
            "ipfs_addresses": ipfs_id.as_ref().map(|i| i.addresses.clone()).unwrap_or_default(),
            "cluster_addresses": s.cluster_addresses.read().map(|a| a.clone()).unwrap_or_default(),
        });
        out.push(self.metric("ping", ping_value.to_string(), 0, s.ping_interval * 2, true, false));
        if let Some(ttl) = s.disk_ttl {
            match self.disk_value().await {
                Ok((free, used)) => {
                    if s.disk_metric_type == "reposize" {
                        out.push(self.metric("reposize", used.to_string(), -(used as i64), ttl, true, false));
                    } else {
                        out.push(self.metric("freespace", free.to_string(), free as i64, ttl, free > 0, false));
                    }
                    self.last_error = None;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "disk informer could not read repo usage");
                    self.last_error = Some(e);
                }
            }
        }
        if let Some((tags, ttl)) = &s.tags {
            if tags.is_empty() {
                out.push(self.metric("tag:none", String::new(), 0, *ttl, false, true));
            }
            for (k, v) in tags {
                out.push(self.metric(&format!("tag:{k}"), v.clone(), 0, *ttl, true, true));
            }
        }
        if let Some((ttl, bucket)) = s.pinqueue
            && let Ok(Some(n)) = tokio::time::timeout(INFORMER_CALL_TIMEOUT, (self.queue_size)()).await {
                let weight = -((n / bucket.max(1)) as i64);
                out.push(self.metric("pinqueue", n.to_string(), weight, ttl, true, false));
            }
        out
    }

    async fn disk_value(&self) -> Result<(u64, u64), String> {
        let stat = tokio::time::timeout(INFORMER_CALL_TIMEOUT, self.ipfs.repo_stat())
            .await
            .map_err(|_| "repo stat timed out".to_string())?
            .map_err(|e| e.to_string())?;
        let fs_free = self.settings.repo_path.as_deref().and_then(filesystem_free_bytes);
        let free = if stat.storage_max > 0 {
            let by_limit = stat.storage_max.saturating_sub(stat.repo_size);
            fs_free.map_or(by_limit, |f| f.min(by_limit))
        } else {
            fs_free.unwrap_or(0)
        };
        Ok((free, stat.repo_size))
    }

    async fn publish_all(&mut self, ctx: &Context<InformerMsg>) {
        let metrics = self.collect().await;
        for m in metrics {
            ctx.record_progress();
            if self.monitor.send(crate::monitor::MonitorMsg::Publish(m)).await.is_ok() {
                self.published += 1;
            }
        }
    }

    fn interval(&self) -> Duration {
        let s = &self.settings;
        let mut d = s.ping_interval;
        for ttl in [s.disk_ttl, s.tags.as_ref().map(|t| t.1), s.pinqueue.map(|p| p.0)].into_iter().flatten() {
            d = d.min(ttl / 2);
        }
        d.max(Duration::from_millis(10))
    }
}

/// Free bytes on the filesystem holding `path`, if it can be measured.
fn filesystem_free_bytes(path: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a writable statvfs.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return None;
    }
    Some(st.f_bavail as u64 * st.f_frsize as u64)
}

impl Actor for InformerActor {
    type Msg = InformerMsg;

    async fn started(&mut self, ctx: &Context<InformerMsg>) -> Result<(), ActorError> {
        self.publish_all(ctx).await;
        Ok(())
    }

    async fn handle(&mut self, msg: InformerMsg, _ctx: &Context<InformerMsg>) -> Result<(), ActorError> {
        match msg {}
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(self.interval())
    }

    async fn tick(&mut self, ctx: &Context<InformerMsg>) -> Result<(), ActorError> {
        self.publish_all(ctx).await;
        Ok(())
    }

    fn observable_state(&self) -> serde_json::Value {
        serde_json::json!({ "metrics_published": self.published, "last_error": self.last_error })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn measures_free_space_of_tmp() {
        let free = super::filesystem_free_bytes(std::path::Path::new("/tmp"));
        assert!(free.is_some_and(|f| f > 0));
    }
}
