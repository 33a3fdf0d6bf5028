//! Fault injection: kill actors and daemons under load and check that nothing is lost.
//!
//! The tests live in `tests/`; this library only holds helpers shared by them.

use cluster_tests::{http, Peer};

/// Restart count of a named actor from `GET /health/actors`.
pub fn restarts(peer: &Peer, actor: &str) -> Option<u64> {
    let (_, body) = http("GET", &peer.url("/health/actors"))?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v.as_array()?.iter().find(|a| a["name"] == actor)?["restarts"].as_u64()
}

/// Value of a Prometheus series line such as `ipfscluster_actor_restarts_total{actor="x"}`.
pub fn prometheus_value(peer: &Peer, series: &str) -> Option<f64> {
    let (_, body) = http("GET", &format!("http://127.0.0.1:{}/metrics", peer.metrics_port))?;
    body.lines().find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse().ok()))
}
