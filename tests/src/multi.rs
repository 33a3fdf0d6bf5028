//! Multi-peer clusters for black-box tests: N real daemons on OS-chosen ports sharing one
//! secret, joined through the first peer, with helpers to kill, restart, cut and heal links.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::{http, ndjson, wait_until, Peer};

/// Settings shared by every peer of a test cluster (short timers so tests run in seconds).
pub fn fast_timers(cfg: &mut Value) {
    cfg["cluster"]["monitor_ping_interval"] = "2s".into();
    cfg["cluster"]["repin_grace_period"] = "2s".into();
    cfg["cluster"]["pubsub"]["heartbeat_interval"] = "500ms".into();
    cfg["cluster"]["pubsub"]["flood_publish"] = true.into();
    cfg["monitor"]["pubsubmon"]["check_interval"] = "500ms".into();
    cfg["consensus"]["crdt"]["rebroadcast_interval"] = "2s".into();
    cfg["consensus"]["crdt"]["batching"]["max_batch_size"] = 500.into();
    cfg["consensus"]["crdt"]["batching"]["max_batch_age"] = "20ms".into();
    cfg["informer"]["disk"]["metric_ttl"] = "10s".into();
    cfg["informer"]["tags"]["metric_ttl"] = "10s".into();
    cfg["informer"]["pinqueue"]["metric_ttl"] = "10s".into();
    cfg["observations"]["metrics"]["enable_stats"] = true.into();
}

/// Switches a peer's config to Raft consensus with short timers (elections in about a second).
pub fn raft_consensus(cfg: &mut Value) {
    if let Some(consensus) = cfg["consensus"].as_object_mut() {
        consensus.remove("crdt");
        consensus.insert(
            "raft".into(),
            serde_json::json!({
                "heartbeat_timeout": "300ms",
                "election_timeout": "600ms",
                "leader_lease_timeout": "150ms",
                "commit_retries": 5,
                "commit_retry_delay": "100ms",
                "wait_for_leader_timeout": "10s",
            }),
        );
    }
}

/// A running cluster of real daemons.
pub struct TestCluster {
    /// The peers, in start order; peer 0 is everyone's bootstrap.
    pub peers: Vec<Peer>,
    /// Their cluster peer ids.
    pub ids: Vec<String>,
}

/// The cluster peer id a peer's identity.json holds.
pub fn peer_id_of(p: &Peer) -> Result<String> {
    let ident: Value = serde_json::from_slice(&std::fs::read(p.path().join("identity.json"))?)?;
    Ok(ident["id"].as_str().context("identity id")?.to_string())
}

/// The first cluster swarm address in a peer's `/id`.
pub fn cluster_addr(p: &Peer) -> Result<String> {
    let (_, body) = http("GET", &p.url("/id")).context("GET /id")?;
    let id: Value = serde_json::from_str(&body)?;
    id["addresses"]
        .as_array()
        .and_then(|a| a.iter().filter_map(Value::as_str).find(|s| s.contains("/ip4/127.0.0.1/")))
        .map(String::from)
        .context("peer has no loopback cluster address")
}

impl TestCluster {
    /// Inits `n` peers with one secret, lets `tweak(i, config)` adjust each service.json,
    /// starts peer 0 and then the others bootstrapping to it.
    pub fn start(n: usize, tweak: impl Fn(usize, &mut Value)) -> Result<TestCluster> {
        let mut c = Self::init(n, tweak)?;
        c.launch()?;
        Ok(c)
    }

    /// Like [`TestCluster::start`] without starting anything, so a test can prepare the
    /// peers' folders first; then call [`TestCluster::launch`].
    pub fn init(n: usize, tweak: impl Fn(usize, &mut Value)) -> Result<TestCluster> {
        let mut peers = Vec::new();
        let mut secret = String::new();
        for i in 0..n {
            let p = Peer::init(&["--enable-chaos"])?;
            p.edit_config(|cfg| {
                if i == 0 {
                    secret = cfg["cluster"]["secret"].as_str().unwrap_or_default().to_string();
                }
                cfg["cluster"]["secret"] = secret.clone().into();
                cfg["cluster"]["listen_multiaddress"] = "/ip4/127.0.0.1/tcp/0".into();
                fast_timers(cfg);
                tweak(i, cfg);
            })?;
            peers.push(p);
        }
        let ids = peers.iter().map(peer_id_of).collect::<Result<Vec<_>>>()?;
        Ok(TestCluster { peers, ids })
    }

    /// Starts peer 0, then every other peer bootstrapping to it.
    pub fn launch(&mut self) -> Result<()> {
        self.peers[0].start()?;
        let boot = cluster_addr(&self.peers[0])?;
        for p in self.peers.iter_mut().skip(1) {
            p.add_args(&["--bootstrap", &boot]);
            p.start()?;
        }
        Ok(())
    }

    /// Waits until every running peer in `which` lists exactly `expected` peers.
    pub fn wait_peerset(&self, which: &[usize], expected: usize, timeout: Duration) -> Result<()> {
        for &i in which {
            let ok = wait_until(timeout, || peer_count(&self.peers[i]) == Some(expected));
            if !ok {
                bail!("peer {i} sees {:?} peers, want {expected}", peer_count(&self.peers[i]));
            }
        }
        Ok(())
    }

    /// Cuts every link between the two sides (through the chaos hook).
    pub fn partition(&self, left: &[usize], right: &[usize]) -> Result<()> {
        self.links(left, right, "POST")
    }

    /// Restores the links cut by [`TestCluster::partition`].
    pub fn heal(&self, left: &[usize], right: &[usize]) -> Result<()> {
        self.links(left, right, "DELETE")
    }

    fn links(&self, left: &[usize], right: &[usize], method: &str) -> Result<()> {
        for (a, b) in left.iter().flat_map(|l| right.iter().map(move |r| (*l, *r))) {
            for (from, to) in [(a, b), (b, a)] {
                let url = self.peers[from].url(&format!("/health/net/block/{}", self.ids[to]));
                match http(method, &url) {
                    Some((204, _)) => {}
                    other => bail!("{method} {url}: {other:?}"),
                }
            }
        }
        Ok(())
    }

    /// Waits until peer `i` holds a `freespace` metric from each of `n` peers, which
    /// allocation needs.
    pub fn wait_freespace_metrics(&self, i: usize, n: usize, timeout: Duration) -> Result<()> {
        let ok = wait_until(timeout, || {
            http("GET", &self.peers[i].url("/monitor/metrics/freespace"))
                .and_then(|(s, b)| (s == 200).then_some(b))
                .and_then(|b| serde_json::from_str::<Vec<Value>>(&b).ok())
                .is_some_and(|m| m.len() == n)
        });
        if !ok {
            bail!("peer {i} did not get the freespace metrics of {n} peers within {timeout:?}");
        }
        Ok(())
    }

    /// CIDs in a peer's shared state.
    pub fn allocations(&self, i: usize) -> Result<Vec<Value>> {
        let (status, body) = http("GET", &self.peers[i].url("/allocations")).context("GET /allocations")?;
        match status {
            200 => Ok(ndjson(&body)),
            204 => Ok(Vec::new()), // an empty pinset
            _ => bail!("GET /allocations: {status} {body}"),
        }
    }
}

impl TestCluster {
    /// A peer's shared state as CID → pin.
    pub fn pinset(&self, i: usize) -> Result<std::collections::BTreeMap<String, Value>> {
        Ok(self
            .allocations(i)?
            .into_iter()
            .filter_map(|p| Some((p["cid"].as_str()?.to_string(), p)))
            .collect())
    }
}

/// One actor's observable state from a peer's `/health/actors`, if the peer answers.
pub fn actor_observable(p: &Peer, actor: &str) -> Option<Value> {
    let (200, body) = http("GET", &p.url("/health/actors"))? else { return None };
    let actors: Vec<Value> = serde_json::from_str(&body).ok()?;
    actors.into_iter().find(|a| a["name"] == actor).map(|a| a["observable"].clone())
}

/// A counter from an actor's observable state (0 when absent).
pub fn actor_counter(p: &Peer, actor: &str, path: &[&str]) -> u64 {
    let Some(mut v) = actor_observable(p, actor) else { return 0 };
    for k in path {
        v = v[*k].clone();
    }
    v.as_u64().unwrap_or(0)
}

/// How many peers `/peers` lists without error, if the peer answers.
pub fn peer_count(p: &Peer) -> Option<usize> {
    let (status, body) = http("GET", &p.url("/peers"))?;
    if status != 200 {
        return None;
    }
    let ids = ndjson(&body);
    if ids.iter().any(|i| i["error"].as_str().is_some_and(|e| !e.is_empty())) {
        return None;
    }
    Some(ids.len())
}
