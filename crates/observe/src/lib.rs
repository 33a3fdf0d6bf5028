//! Prometheus metrics shared by every component of a cluster peer (namespace `ipfscluster`).
//!
//! Components get an `Arc<Metrics>` and bump counters; gauges that describe a snapshot
//! (pins by status, actor health) are set by the exporter right before it renders, so they
//! are always current without a background loop.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels naming an actor.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActorLabels {
    /// Actor name.
    pub actor: String,
}

/// Labels naming a tracker status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    /// Tracker status name.
    pub status: String,
}

/// Labels naming a pin-tracker queue.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    /// `priority`, `normal` or `unpin`.
    pub queue: String,
}

/// Labels naming an IPFS connector call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// Connector method (`pin`, `unpin`, `pin_ls`, `repo_stat`, ...).
    pub method: String,
}

/// Every metric a peer exports.
pub struct Metrics {
    /// Pins in the shared state.
    pub pins: Gauge,
    /// Pins on this peer by tracker status.
    pub pins_by_status: Family<StatusLabels, Gauge>,
    /// Items waiting in each tracker queue.
    pub queue_depth: Family<QueueLabels, Gauge>,
    /// Successful IPFS pin operations.
    pub pin_add: Counter,
    /// Failed IPFS pin operations.
    pub pin_add_errors: Counter,
    /// Successful IPFS unpin operations.
    pub pin_rm: Counter,
    /// Failed IPFS unpin operations.
    pub pin_rm_errors: Counter,
    /// Latency of IPFS connector calls, seconds.
    pub ipfs_call_seconds: Family<CallLabels, Histogram>,
    /// 1 while an actor runs, 0 while it is restarting or failed.
    pub actor_up: Family<ActorLabels, Gauge>,
    /// Restarts per actor since the peer started.
    pub actor_restarts_total: Family<ActorLabels, Gauge<u64, AtomicU64>>,
    /// Messages waiting in each actor's mailbox.
    pub actor_mailbox_depth: Family<ActorLabels, Gauge>,
    /// Seconds since each actor last made progress.
    pub actor_seconds_since_progress: Family<ActorLabels, Gauge<f64, AtomicU64>>,
    registry: Registry,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ipfscluster");
        let pins = Gauge::default();
        let pins_by_status = Family::<StatusLabels, Gauge>::default();
        let queue_depth = Family::<QueueLabels, Gauge>::default();
        let pin_add = Counter::default();
        let pin_add_errors = Counter::default();
        let pin_rm = Counter::default();
        let pin_rm_errors = Counter::default();
        let ipfs_call_seconds = Family::<CallLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.5, 14))
        });
        let actor_up = Family::<ActorLabels, Gauge>::default();
        let actor_restarts_total = Family::<ActorLabels, Gauge<u64, AtomicU64>>::default();
        let actor_mailbox_depth = Family::<ActorLabels, Gauge>::default();
        let actor_seconds_since_progress = Family::<ActorLabels, Gauge<f64, AtomicU64>>::default();
        registry.register("pins", "Pins in the cluster state", pins.clone());
        registry.register("pins_by_status", "Pins on this peer by tracker status", pins_by_status.clone());
        registry.register("pins_queue_depth", "Operations waiting in each pin tracker queue", queue_depth.clone());
        registry.register("pins_pin_add", "IPFS pin operations that succeeded", pin_add.clone());
        registry.register("pins_pin_add_errors", "IPFS pin operations that failed", pin_add_errors.clone());
        registry.register("pins_pin_rm", "IPFS unpin operations that succeeded", pin_rm.clone());
        registry.register("pins_pin_rm_errors", "IPFS unpin operations that failed", pin_rm_errors.clone());
        registry.register("ipfs_call_seconds", "Latency of IPFS connector calls", ipfs_call_seconds.clone());
        registry.register("actor_up", "1 when the actor is running", actor_up.clone());
        // Registered as a gauge set from the supervisor's counter, named _total for scrapers.
        registry.register("actor_restarts_total", "Restarts of each actor", actor_restarts_total.clone());
        registry.register("actor_mailbox_depth", "Messages queued for each actor", actor_mailbox_depth.clone());
        registry.register(
            "actor_seconds_since_progress",
            "Seconds since each actor last made progress",
            actor_seconds_since_progress.clone(),
        );
        Metrics {
            pins,
            pins_by_status,
            queue_depth,
            pin_add,
            pin_add_errors,
            pin_rm,
            pin_rm_errors,
            ipfs_call_seconds,
            actor_up,
            actor_restarts_total,
            actor_mailbox_depth,
            actor_seconds_since_progress,
            registry,
        }
    }

    /// Records one IPFS call's latency.
    pub fn observe_ipfs_call(&self, method: &str, seconds: f64) {
        self.ipfs_call_seconds.get_or_create(&CallLabels { method: method.to_string() }).observe(seconds);
    }

    /// Renders the OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail for these metric types.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_registered_metrics() {
        let m = Metrics::new();
        m.pin_add.inc();
        m.actor_restarts_total.get_or_create(&ActorLabels { actor: "pin_tracker".into() }).set(2);
        m.observe_ipfs_call("pin", 0.01);
        let text = m.render();
        assert!(text.contains("ipfscluster_pins_pin_add_total 1"), "{text}");
        assert!(text.contains("ipfscluster_actor_restarts_total{actor=\"pin_tracker\"} 2"), "{text}");
        assert!(text.contains("ipfscluster_ipfs_call_seconds_bucket"), "{text}");
    }
}
