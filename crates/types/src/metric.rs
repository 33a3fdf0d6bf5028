//! Monitoring metrics and alerts (§1.8, §2.4).

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// A metric a peer publishes about itself; `expire` and `received_at` are unix nanoseconds.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Metric {
    /// Metric name (`ping`, `freespace`, `tag:group`, `pinqueue`).
    pub name: String,
    /// Publishing peer.
    pub peer: String,
    /// Value as text.
    #[serde(default)]
    pub value: String,
    /// Expiry, unix nanoseconds.
    #[serde(default)]
    pub expire: i64,
    /// False for metrics that must not be used for allocation.
    #[serde(default)]
    pub valid: bool,
    /// Allocation weight (higher is preferred).
    #[serde(default)]
    pub weight: i64,
    /// True when peers are grouped by value (tags).
    #[serde(default)]
    pub partitionable: bool,
    /// When this peer received it, unix nanoseconds.
    #[serde(default)]
    pub received_at: i64,
}

impl Metric {
    /// True when the metric's TTL has passed at `now_nanos`.
    pub fn expired_at(&self, now_nanos: i64) -> bool {
        self.expire <= now_nanos
    }

    /// True when the metric's TTL has passed.
    pub fn expired(&self) -> bool {
        self.expired_at(Timestamp::now().unix_nanos())
    }

    /// Sets the expiry to now + ttl.
    pub fn set_ttl(&mut self, ttl: std::time::Duration) {
        self.expire = Timestamp::now().unix_nanos().saturating_add(ttl.as_nanos() as i64);
    }
}

/// A metric that expired without being renewed: the peer may be down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// The expired metric.
    #[serde(flatten)]
    pub metric: Metric,
    /// When the alert fired.
    pub triggered_at: Timestamp,
}
