//! A real multi-peer cluster for benchmarks, and the measurements taken on it: ingestion
//! throughput until every peer holds every pin, and per-request latency at a fixed rate.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::StreamExt;
use serde_json::Value;

use crate::{actor_state, identity_cid, percentile, Daemon};

/// Peers of one cluster sharing a secret, every one after the first bootstrapped to it.
pub struct BenchCluster {
    /// The peers, in start order.
    pub peers: Vec<Daemon>,
    service: PathBuf,
    init: Vec<String>,
    secret: String,
    boot: String,
}

impl BenchCluster {
    /// Inits `n` peers with `init` arguments (e.g. `--consensus raft`), a loopback cluster
    /// listener and one secret, lets `tweak` edit each service.json, starts the first and
    /// then the others bootstrapping to it, and waits until every peer lists `n` peers.
    pub async fn start(
        service: &Path,
        client: &reqwest::Client,
        n: usize,
        init: &[&str],
        tweak: impl Fn(&mut Value),
    ) -> Result<BenchCluster> {
        let mut cluster = BenchCluster {
            peers: Vec::new(),
            service: service.to_path_buf(),
            init: init.iter().map(|s| s.to_string()).collect(),
            secret: String::new(),
            boot: String::new(),
        };
        let first = cluster.start_peer(&tweak)?;
        let cfg: Value = serde_json::from_slice(&std::fs::read(first.path().join("service.json"))?)?;
        cluster.secret = cfg["cluster"]["secret"].as_str().context("secret")?.to_string();
        let id: Value = client.get(first.url("/id")).send().await?.json().await?;
        cluster.boot = id["addresses"]
            .as_array()
            .and_then(|a| a.iter().filter_map(Value::as_str).find(|s| s.contains("/127.0.0.1/")))
            .context("no loopback cluster address")?
            .to_string();
        cluster.peers.push(first);
        for _ in 1..n {
            let peer = cluster.start_peer(&tweak)?;
            cluster.peers.push(peer);
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        for d in &cluster.peers {
            while peers_seen(client, d).await < n {
                if Instant::now() > deadline {
                    bail!("the peers did not form a cluster of {n}");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(cluster)
    }

    /// Starts one more peer of this cluster (not added to [`BenchCluster::peers`]).
    pub fn start_peer(&self, tweak: impl Fn(&mut Value)) -> Result<Daemon> {
        let secret = self.secret.clone();
        let init: Vec<&str> = self.init.iter().map(String::as_str).collect();
        let edit = |cfg: &mut Value| {
            if !secret.is_empty() {
                cfg["cluster"]["secret"] = secret.into();
            }
            cfg["cluster"]["listen_multiaddress"] = "/ip4/127.0.0.1/tcp/0".into();
            tweak(cfg);
        };
        if self.boot.is_empty() {
            Daemon::start_with(&self.service, &init, edit, &[])
        } else {
            Daemon::start_with(&self.service, &init, edit, &["--bootstrap", &self.boot])
        }
    }

    /// The REST API ports of the peers.
    pub fn ports(&self) -> Vec<u16> {
        self.peers.iter().map(|d| d.port).collect()
    }
}

async fn peers_seen(client: &reqwest::Client, d: &Daemon) -> usize {
    match client.get(d.url("/peers")).send().await {
        Ok(r) => r.text().await.map(|t| t.lines().filter(|l| !l.trim().is_empty()).count()).unwrap_or(0),
        Err(_) => 0,
    }
}

/// Pins in a peer's shared state, as its consensus component counts them.
pub async fn pins_in_state(client: &reqwest::Client, port: u16) -> Result<u64> {
    let consensus = actor_state(client, port, "consensus").await?;
    consensus["consensus"]["pins"].as_u64().context("no pin count in the consensus actor's /health/actors")
}

/// Pins the n-th synthetic CID through the REST API at `port`.
pub async fn pin(client: &reqwest::Client, port: u16, n: u64) -> Result<()> {
    let resp = client.post(format!("http://127.0.0.1:{port}/pins/{}", identity_cid(n))).send().await?;
    if !resp.status().is_success() {
        bail!("pin {n}: {}", resp.status());
    }
    Ok(())
}

/// Waits until every peer's state holds `want` pins; returns when that happened.
pub async fn converged(client: &reqwest::Client, ports: &[u16], want: u64, limit: Duration) -> Result<Instant> {
    let deadline = Instant::now() + limit;
    loop {
        let mut all = true;
        for &port in ports {
            if pins_in_state(client, port).await? < want {
                all = false;
                break;
            }
        }
        if all {
            return Ok(Instant::now());
        }
        if Instant::now() > deadline {
            bail!("peers did not converge on {want} pins within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Sorted request durations.
#[derive(Debug, Clone, Default)]
pub struct Samples(Vec<Duration>);

impl Samples {
    fn new(mut v: Vec<Duration>) -> Self {
        v.sort_unstable();
        Samples(v)
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True without samples.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A percentile (0..=100) in milliseconds.
    pub fn ms(&self, p: f64) -> f64 {
        percentile(&self.0, p).as_secs_f64() * 1e3
    }

    /// The longest, in milliseconds.
    pub fn max_ms(&self) -> f64 {
        self.0.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    }
}

/// What [`throughput`] measured.
#[derive(Debug, Clone)]
pub struct Throughput {
    /// Pins sent.
    pub pins: u64,
    /// From the first request to the last acknowledgement.
    pub acked: Duration,
    /// From the first request until every peer's state held every pin.
    pub everywhere: Duration,
    /// Request → acknowledgement of every request.
    pub ack_latency: Samples,
}

impl Throughput {
    /// Acknowledged pins per second.
    pub fn acked_rate(&self) -> f64 {
        self.pins as f64 / self.acked.as_secs_f64()
    }

    /// Pins per second until every peer held them all.
    pub fn everywhere_rate(&self) -> f64 {
        self.pins as f64 / self.everywhere.as_secs_f64()
    }
}

/// Pins `pins` synthetic CIDs from the `from`-th on as fast as `concurrency` clients go,
/// request n through `entries[n % len]`, then waits until every peer in `ports` holds
/// `from + pins` pins.
pub async fn throughput(
    client: &reqwest::Client,
    ports: &[u16],
    entries: &[u16],
    from: u64,
    pins: u64,
    concurrency: usize,
) -> Result<Throughput> {
    let started = Instant::now();
    let results = futures::stream::iter(from..from + pins)
        .map(|n| {
            let client = client.clone();
            let port = entries[n as usize % entries.len()];
            async move {
                let sent = Instant::now();
                pin(&client, port, n).await.map(|()| sent.elapsed())
            }
        })
        .buffer_unordered(concurrency);
    futures::pin_mut!(results);
    let mut ack_latency = Vec::with_capacity(pins as usize);
    while let Some(r) = results.next().await {
        ack_latency.push(r?);
    }
    let acked = started.elapsed();
    let everywhere = converged(client, ports, from + pins, Duration::from_secs(300)).await?.duration_since(started);
    Ok(Throughput { pins, acked, everywhere, ack_latency: Samples::new(ack_latency) })
}

/// What [`latency`] measured.
#[derive(Debug, Clone)]
pub struct Latency {
    /// Requests sent.
    pub pins: u64,
    /// Requests per second actually sent.
    pub achieved: f64,
    /// Request → acknowledgement, every request.
    pub acked: Samples,
    /// Request → present on every peer, sampled requests.
    pub visible: Samples,
}

/// Sends `rate` pins per second for `seconds` (synthetic CIDs from the `from`-th on,
/// request n through `entries[n % len]`) and times each acknowledgement; one request in
/// `sample_every` is also watched on every peer in `ports` until present there.
pub async fn latency(
    client: &reqwest::Client,
    ports: &[u16],
    entries: &[u16],
    from: u64,
    rate: u64,
    seconds: u64,
    sample_every: u64,
) -> Result<Latency> {
    let total = rate * seconds;
    let acked = Arc::new(Mutex::new(Vec::with_capacity(total as usize)));
    let visible = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    let period = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let t0 = tokio::time::Instant::now();
    for i in 0..total {
        tokio::time::sleep_until(t0 + period * i as u32).await;
        let client = client.clone();
        let ports = ports.to_vec();
        let (acked, visible) = (Arc::clone(&acked), Arc::clone(&visible));
        let n = from + i;
        let entry = entries[n as usize % entries.len()];
        let sampled = i % sample_every.max(1) == 0;
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            pin(&client, entry, n).await?;
            acked.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(sent.elapsed());
            if sampled {
                let cid = identity_cid(n);
                for port in ports {
                    let url = format!("http://127.0.0.1:{port}/allocations/{cid}");
                    while !client.get(&url).send().await?.status().is_success() {
                        if sent.elapsed() > Duration::from_secs(60) {
                            bail!("pin {n} not on peer {port} after 60s");
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
                visible.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(sent.elapsed());
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    // The rate the requests went out at (the last one leaves one period before the end).
    let achieved = total as f64 / (t0.elapsed() + period).as_secs_f64();
    for t in tasks {
        t.await??;
    }
    let take = |m: &Arc<Mutex<Vec<Duration>>>| Samples::new(std::mem::take(&mut *m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)));
    Ok(Latency { pins: total, achieved, acked: take(&acked), visible: take(&visible) })
}
