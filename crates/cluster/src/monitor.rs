//! The peer monitor: latest metrics per (name, peer), expiry checks and alerts.
//!
//! [`MetricStore`] is the pure core; [`MonitorActor`] feeds it metrics (this peer's, which it
//! also broadcasts on the `monitor.metrics` gossip topic, and other peers', received from
//! it) and ticks. The peers with a valid `ping` metric are the CRDT peerset; each check
//! hands that set to the peerset hook and every `ping` alert to the repinner.
//! Unlike the original, every alert is kept (up to a bound, oldest dropped first) and the alert
//! path never stops consuming, whatever the repinning setting.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::time::Duration;

use std::sync::Arc;

use cluster_actors::{Actor, ActorError, Context};
use cluster_net::Net;
use cluster_types::{Alert, Metric, Timestamp};
use tokio::sync::{mpsc, oneshot};

/// How many alerts are kept for `/health/alerts`.
pub const MAX_ALERTS: usize = 1000;

/// Latest metrics and fired alerts, with no IO and no clock of its own.
#[derive(Debug, Default)]
pub struct MetricStore {
    latest: BTreeMap<String, BTreeMap<String, Metric>>,
    alerted: HashSet<(String, String)>,
    alerts: VecDeque<Alert>,
}

impl MetricStore {
    /// Records a metric received at `now_nanos`; a fresh metric re-arms its alert.
    pub fn add(&mut self, mut m: Metric, now_nanos: i64) {
        m.received_at = now_nanos;
        self.alerted.remove(&(m.name.clone(), m.peer.clone()));
        self.latest.entry(m.name.clone()).or_default().insert(m.peer.clone(), m);
    }

    /// Latest valid, unexpired metric of `name` per peer.
    pub fn latest_valid(&self, name: &str, now_nanos: i64) -> Vec<Metric> {
        self.latest
            .get(name)
            .map(|peers| peers.values().filter(|m| m.valid && !m.expired_at(now_nanos)).cloned().collect())
            .unwrap_or_default()
    }

    /// Makes `peer`'s metric `name` expire at `at_nanos` at the latest (a lost connection
    /// need not wait out a long TTL).
    pub fn expire_early(&mut self, name: &str, peer: &str, at_nanos: i64) {
        if let Some(m) = self.latest.get_mut(name).and_then(|p| p.get_mut(peer)) {
            m.expire = m.expire.min(at_nanos);
        }
    }

    /// Forgets every metric of `peer` (it was removed from the cluster).
    pub fn forget(&mut self, peer: &str) {
        for peers in self.latest.values_mut() {
            peers.remove(peer);
        }
        self.alerted.retain(|(_, p)| p != peer);
    }

    /// Names of every metric seen.
    pub fn names(&self) -> Vec<String> {
        self.latest.keys().cloned().collect()
    }

    /// Fires one alert per metric that expired since it was last renewed.
    pub fn check(&mut self, now_nanos: i64) -> Vec<Alert> {
        let mut fired = Vec::new();
        for (name, peers) in &self.latest {
            for (peer, m) in peers {
                let key = (name.clone(), peer.clone());
                if m.expired_at(now_nanos) && !self.alerted.contains(&key) {
                    self.alerted.insert(key);
                    fired.push(Alert { metric: m.clone(), triggered_at: Timestamp::from_unix_nanos(now_nanos) });
                }
            }
        }
        for a in &fired {
            if self.alerts.len() == MAX_ALERTS {
                self.alerts.pop_back();
            }
            self.alerts.push_front(a.clone());
        }
        fired
    }

    /// Every kept alert, newest first.
    pub fn alerts(&self) -> Vec<Alert> {
        self.alerts.iter().cloned().collect()
    }
}

/// Messages of the monitor actor.
pub enum MonitorMsg {
    /// A metric of this peer, from an informer: stored and broadcast.
    Publish(Metric),
    /// A metric received from another peer over gossip: stored only.
    Remote(Metric),
    /// The last connection to a peer closed: its ping expires within the grace given.
    PeerDown {
        /// The peer.
        peer: String,
        /// How long it may stay silent before its ping expires.
        grace: Duration,
    },
    /// Forget a removed peer's metrics.
    Forget(String),
    /// Latest valid metrics of a name.
    Latest {
        /// Metric name.
        name: String,
        /// Reply.
        reply: oneshot::Sender<Vec<Metric>>,
    },
    /// Names of known metrics.
    Names {
        /// Reply.
        reply: oneshot::Sender<Vec<String>>,
    },
    /// Kept alerts, newest first.
    Alerts {
        /// Reply.
        reply: oneshot::Sender<Vec<Alert>>,
    },
}

/// Receives the peers with a valid ping metric after every check.
pub type PeersetHook = Arc<dyn Fn(Vec<String>) + Send + Sync>;

/// Where the monitor sends things: gossip, the peerset and the repinner.
#[derive(Clone, Default)]
pub struct MonitorLinks {
    /// Broadcasts this peer's metrics.
    pub net: Option<Net>,
    /// Receives the peerset.
    pub peerset: Option<PeersetHook>,
    /// Receives `ping` alerts.
    pub alerts: Option<mpsc::Sender<Alert>>,
}

/// The gossip topic of metrics (the original's).
pub const METRICS_TOPIC: &str = "monitor.metrics";

/// The monitor actor.
pub struct MonitorActor {
    store: MetricStore,
    check_interval: Duration,
    received: u64,
    links: MonitorLinks,
}

impl MonitorActor {
    /// A monitor checking expiries every `check_interval`, without links (tests).
    pub fn new(check_interval: Duration) -> Self {
        Self::with_links(check_interval, MonitorLinks::default())
    }

    /// A monitor wired to gossip, the peerset and the repinner.
    pub fn with_links(check_interval: Duration, links: MonitorLinks) -> Self {
        MonitorActor { store: MetricStore::default(), check_interval, received: 0, links }
    }

    fn publish_peerset(&self, now: i64) {
        if let Some(hook) = &self.links.peerset {
            hook(self.store.latest_valid("ping", now).into_iter().map(|m| m.peer).collect());
        }
    }
}

impl Actor for MonitorActor {
    type Msg = MonitorMsg;

    async fn handle(&mut self, msg: MonitorMsg, _ctx: &Context<MonitorMsg>) -> Result<(), ActorError> {
        let now = Timestamp::now().unix_nanos();
        match msg {
            MonitorMsg::Publish(m) => {
                if let Some(net) = &self.links.net
                    && let Ok(bytes) = serde_json::to_vec(&m)
                {
                    net.publish(METRICS_TOPIC, bytes);
                }
                let ping = m.name == "ping";
                self.store.add(m, now);
                if ping {
                    self.publish_peerset(now);
                }
            }
            MonitorMsg::Remote(mut m) => {
                self.received += 1;
                // Expiry is rebased on our clock: the sender stamps its send time in
                // `received_at`, so only the TTL crosses the wire and clock skew between
                // peers cannot expire (or immortalise) a metric.
                if m.received_at > 0 && m.expire > m.received_at {
                    m.expire = now.saturating_add(m.expire - m.received_at);
                }
                let new_ping = m.name == "ping" && self.store.latest_valid("ping", now).iter().all(|p| p.peer != m.peer);
                self.store.add(m, now);
                if new_ping {
                    self.publish_peerset(now);
                }
            }
            MonitorMsg::PeerDown { peer, grace } => {
                let at = now.saturating_add(i64::try_from(grace.as_nanos()).unwrap_or(i64::MAX));
                self.store.expire_early("ping", &peer, at);
            }
            MonitorMsg::Forget(peer) => {
                self.store.forget(&peer);
                self.publish_peerset(now);
            }
            MonitorMsg::Latest { name, reply } => {
                let _ = reply.send(self.store.latest_valid(&name, now));
            }
            MonitorMsg::Names { reply } => {
                let _ = reply.send(self.store.names());
            }
            MonitorMsg::Alerts { reply } => {
                let _ = reply.send(self.store.alerts());
            }
        }
        Ok(())
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(self.check_interval)
    }

    async fn tick(&mut self, _ctx: &Context<MonitorMsg>) -> Result<(), ActorError> {
        let now = Timestamp::now().unix_nanos();
        for a in self.store.check(now) {
            tracing::warn!(metric = %a.metric.name, peer = %a.metric.peer, "metric expired: alert");
            // The alert path never blocks and never stops: a full repinner queue drops the
            // alert (it stays listed in /health/alerts) rather than wedging the monitor.
            if a.metric.name == "ping"
                && let Some(tx) = &self.links.alerts
                && tx.try_send(a.clone()).is_err()
            {
                tracing::warn!(peer = %a.metric.peer, "repinner busy: ping alert not forwarded");
            }
        }
        self.publish_peerset(now);
        Ok(())
    }

    fn observable_state(&self) -> serde_json::Value {
        serde_json::json!({
            "metrics_received": self.received,
            "metric_names": self.store.names(),
            "alerts": self.store.alerts.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(name: &str, peer: &str, expire: i64) -> Metric {
        Metric { name: name.into(), peer: peer.into(), value: "1".into(), expire, valid: true, ..Default::default() }
    }

    #[test]
    fn alerts_once_per_expiry_and_rearms() {
        let mut s = MetricStore::default();
        s.add(metric("ping", "A", 100), 0);
        assert!(s.check(50).is_empty());
        assert_eq!(s.latest_valid("ping", 50).len(), 1);
        assert_eq!(s.check(150).len(), 1);
        assert!(s.check(200).is_empty(), "an expired metric alerts only once");
        assert!(s.latest_valid("ping", 200).is_empty());
        s.add(metric("ping", "A", 300), 250);
        assert_eq!(s.check(400).len(), 1, "a renewed metric alerts again when it expires");
        assert_eq!(s.alerts().len(), 2);
    }

    #[test]
    fn alerts_are_bounded_and_newest_first() {
        let mut s = MetricStore::default();
        for i in 0..(MAX_ALERTS + 10) {
            s.add(metric("ping", &format!("P{i}"), 1), 0);
        }
        s.check(10);
        assert_eq!(s.alerts().len(), MAX_ALERTS);
        s.add(metric("freespace", "Z", 11), 0);
        s.check(20);
        assert_eq!(s.alerts()[0].metric.peer, "Z");
    }
}
