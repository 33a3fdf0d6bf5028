//! The small component sections: `pin_tracker`, `monitor`, `allocator` and `informer`.

use std::collections::BTreeMap;
use std::time::Duration;

use cluster_types::duration::serde_go;
use serde::{Deserialize, Serialize};

use crate::check;
use crate::error::ConfigErrors;

const DEFAULT_MAX_PIN_QUEUE_SIZE: usize = 1_000_000;

fn is_default_max_pin_queue_size(n: &usize) -> bool {
    *n == DEFAULT_MAX_PIN_QUEUE_SIZE
}

/// `pin_tracker` section.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PinTrackerConfig {
    /// The stateless pin tracker.
    pub stateless: StatelessConfig,
}

/// `pin_tracker.stateless`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StatelessConfig {
    /// Capacity of each operation queue (hidden: omitted while default).
    #[serde(skip_serializing_if = "is_default_max_pin_queue_size")]
    pub max_pin_queue_size: usize,
    /// Pin workers.
    pub concurrent_pins: usize,
    /// Pins younger than this go to the priority queue...
    #[serde(with = "serde_go")]
    pub priority_pin_max_age: Duration,
    /// ...unless they already failed more than this many times.
    pub priority_pin_max_retries: u32,
}

impl Default for StatelessConfig {
    fn default() -> Self {
        StatelessConfig {
            max_pin_queue_size: DEFAULT_MAX_PIN_QUEUE_SIZE,
            concurrent_pins: 10,
            priority_pin_max_age: Duration::from_secs(24 * 3600),
            priority_pin_max_retries: 5,
        }
    }
}

/// `monitor` section.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MonitorConfig {
    /// The pubsub metrics monitor.
    pub pubsubmon: PubsubmonConfig,
}

/// `monitor.pubsubmon`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PubsubmonConfig {
    /// How often expired metrics are turned into alerts.
    #[serde(with = "serde_go")]
    pub check_interval: Duration,
}

impl Default for PubsubmonConfig {
    fn default() -> Self {
        PubsubmonConfig { check_interval: Duration::from_secs(15) }
    }
}

/// `allocator` section.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AllocatorConfig {
    /// The balanced allocator.
    pub balanced: BalancedConfig,
}

/// `allocator.balanced`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BalancedConfig {
    /// Metric hierarchy used to rank and spread allocations.
    pub allocate_by: Vec<String>,
}

impl Default for BalancedConfig {
    fn default() -> Self {
        BalancedConfig { allocate_by: vec!["tag:group".into(), "freespace".into()] }
    }
}

/// `informer` section. Key order is alphabetical, as the original writes it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InformerConfig {
    /// Disk usage informer.
    pub disk: DiskInformerConfig,
    /// Pin queue size informer.
    pub pinqueue: PinQueueInformerConfig,
    /// Static tags informer.
    pub tags: TagsInformerConfig,
}

/// `informer.disk`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiskInformerConfig {
    /// Metric validity.
    #[serde(with = "serde_go")]
    pub metric_ttl: Duration,
    /// `freespace` or `reposize`.
    pub metric_type: String,
}

impl Default for DiskInformerConfig {
    fn default() -> Self {
        DiskInformerConfig { metric_ttl: Duration::from_secs(30), metric_type: "freespace".into() }
    }
}

/// `informer.tags`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TagsInformerConfig {
    /// Metric validity.
    #[serde(with = "serde_go")]
    pub metric_ttl: Duration,
    /// Tag name → value; each becomes a `tag:<name>` metric.
    pub tags: BTreeMap<String, String>,
}

impl Default for TagsInformerConfig {
    fn default() -> Self {
        TagsInformerConfig {
            metric_ttl: Duration::from_secs(30),
            tags: BTreeMap::from([("group".to_string(), "default".to_string())]),
        }
    }
}

/// `informer.pinqueue`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PinQueueInformerConfig {
    /// Metric validity.
    #[serde(with = "serde_go")]
    pub metric_ttl: Duration,
    /// Queue sizes within the same bucket weigh the same.
    pub weight_bucket_size: u64,
}

impl Default for PinQueueInformerConfig {
    fn default() -> Self {
        PinQueueInformerConfig { metric_ttl: Duration::from_secs(30), weight_bucket_size: 100_000 }
    }
}

pub(crate) fn validate_components(
    errs: &mut ConfigErrors,
    tracker: &PinTrackerConfig,
    monitor: &MonitorConfig,
    allocator: &AllocatorConfig,
    informer: &InformerConfig,
) {
    let s = &tracker.stateless;
    if s.max_pin_queue_size < 1 {
        errs.push("pin_tracker.stateless.max_pin_queue_size", "must be at least 1");
    }
    if s.concurrent_pins < 1 {
        errs.push("pin_tracker.stateless.concurrent_pins", "must be at least 1");
    }
    check::positive(errs, "monitor.pubsubmon.check_interval", monitor.pubsubmon.check_interval);
    if allocator.balanced.allocate_by.is_empty() {
        errs.push("allocator.balanced.allocate_by", "must name at least one metric");
    }
    check::positive(errs, "informer.disk.metric_ttl", informer.disk.metric_ttl);
    if !matches!(informer.disk.metric_type.as_str(), "freespace" | "reposize") {
        errs.push(
            "informer.disk.metric_type",
            format_args!("unknown metric type '{}' (expected freespace or reposize)", informer.disk.metric_type),
        );
    }
    check::positive(errs, "informer.tags.metric_ttl", informer.tags.metric_ttl);
    check::positive(errs, "informer.pinqueue.metric_ttl", informer.pinqueue.metric_ttl);
    if informer.pinqueue.weight_bucket_size == 0 {
        errs.push("informer.pinqueue.weight_bucket_size", "must be at least 1");
    }
}
