//! cluster-ingest: sustained pin ingestion through one peer's REST API on a real multi-peer
//! CRDT cluster. Prints the pins/s until every peer holds every pin in its state, then the
//! convergence latency (request sent → pin in every peer's state) at a fixed request rate,
//! then how long a newly started peer takes to hold the whole state.
//!
//! ```sh
//! cargo build --release --bins && target/release/cluster-ingest
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use cluster_bench::{
    actor_state, cluster_contact, identity_cid, percentile, service_binary, start_cluster, start_joiner, Daemon,
};
use futures::StreamExt;
use tokio::sync::Mutex;

/// Command-line options.
#[derive(Parser, Debug)]
#[command(about = "Benchmark pin ingestion and convergence on a multi-peer CRDT cluster")]
struct Opts {
    /// Cluster size.
    #[arg(long, default_value_t = 3)]
    peers: usize,
    /// Pins for the throughput phase.
    #[arg(long, default_value_t = 50_000)]
    pins: u64,
    /// Concurrent HTTP clients in the throughput phase.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// Request rate of the latency phase (pins/s).
    #[arg(long, default_value_t = 500)]
    rate: u64,
    /// Length of the latency phase in seconds.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Measure the convergence latency of one pin in this many.
    #[arg(long, default_value_t = 10)]
    sample_every: u64,
    /// `consensus.crdt.batching.max_batch_size`.
    #[arg(long, default_value_t = 1000)]
    batch_size: u64,
    /// `consensus.crdt.batching.max_batch_age`.
    #[arg(long, default_value = "50ms")]
    batch_age: String,
    /// The daemon binary (defaults to the one next to this benchmark).
    #[arg(long)]
    service: Option<std::path::PathBuf>,
}

fn batching(opts: &Opts) -> impl Fn(&mut serde_json::Value) + use<> {
    let (size, age) = (opts.batch_size, opts.batch_age.clone());
    move |cfg| {
        cfg["consensus"]["crdt"]["batching"]["max_batch_size"] = size.into();
        cfg["consensus"]["crdt"]["batching"]["max_batch_age"] = age.clone().into();
        cfg["consensus"]["crdt"]["batching"]["max_queue_size"] = 100_000.into();
    }
}

async fn pins_in_state(client: &reqwest::Client, port: u16) -> Result<u64> {
    let consensus = actor_state(client, port, "consensus").await?;
    consensus["consensus"]["pins"].as_u64().context("no crdt pin count in /health/actors")
}

async fn pin(client: &reqwest::Client, port: u16, n: u64) -> Result<()> {
    let resp = client.post(format!("http://127.0.0.1:{port}/pins/{}", identity_cid(n))).send().await?;
    if !resp.status().is_success() {
        bail!("pin {n}: {}", resp.status());
    }
    Ok(())
}

/// Waits until every peer's state holds `want` pins; returns when that happened.
async fn converged(client: &reqwest::Client, peers: &[Daemon], want: u64, limit: Duration) -> Result<Instant> {
    let deadline = Instant::now() + limit;
    loop {
        let mut all = true;
        for d in peers {
            if pins_in_state(client, d.port).await? < want {
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

#[tokio::main]
async fn main() -> Result<()> {
    let opts = Opts::parse();
    let service = service_binary(opts.service.clone())?;
    let peers = start_cluster(&service, opts.peers, batching(&opts)).await?;
    let client = reqwest::Client::builder().pool_max_idle_per_host(opts.concurrency).build()?;
    let entry = peers[0].port;
    println!(
        "{} peers, crdt batching max_batch_size {} max_batch_age {}; ingestion through one peer's REST API",
        opts.peers, opts.batch_size, opts.batch_age
    );

    // Throughput: as fast as the clients go, until every peer holds every pin.
    let started = Instant::now();
    let results = futures::stream::iter(0..opts.pins)
        .map(|n| {
            let client = client.clone();
            async move { pin(&client, entry, n).await }
        })
        .buffer_unordered(opts.concurrency);
    futures::pin_mut!(results);
    while let Some(r) = results.next().await {
        r?;
    }
    let acked = started.elapsed();
    let done = converged(&client, &peers, opts.pins, Duration::from_secs(300)).await?.duration_since(started);
    println!(
        "throughput {:>7} pins, {} clients: acknowledged in {:.2}s ({:.0} pins/s); in all {} states after {:.2}s: {:.0} pins/s",
        opts.pins,
        opts.concurrency,
        acked.as_secs_f64(),
        opts.pins as f64 / acked.as_secs_f64(),
        opts.peers,
        done.as_secs_f64(),
        opts.pins as f64 / done.as_secs_f64()
    );

    // Latency: a fixed request rate; sampled pins are watched on every peer until present.
    let total = opts.rate * opts.seconds;
    let base = opts.pins;
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    let period = Duration::from_secs_f64(1.0 / opts.rate as f64);
    let t0 = tokio::time::Instant::now();
    for i in 0..total {
        tokio::time::sleep_until(t0 + period * i as u32).await;
        let client = client.clone();
        let ports: Vec<u16> = peers.iter().map(|d| d.port).collect();
        let latencies = Arc::clone(&latencies);
        let sampled = i % opts.sample_every == 0;
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let n = base + i;
            pin(&client, entry, n).await?;
            if sampled {
                let cid = identity_cid(n);
                for port in ports {
                    loop {
                        let url = format!("http://127.0.0.1:{port}/allocations/{cid}");
                        if client.get(url).send().await?.status().is_success() {
                            break;
                        }
                        if sent.elapsed() > Duration::from_secs(60) {
                            bail!("pin {n} not on peer {port} after 60s");
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
                latencies.lock().await.push(sent.elapsed());
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let achieved = total as f64 / t0.elapsed().as_secs_f64();
    let mut l = latencies.lock().await.clone();
    l.sort_unstable();
    println!(
        "latency   {} pins/s offered ({:.0} achieved) for {}s, {} samples: convergence p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        opts.rate,
        achieved,
        opts.seconds,
        l.len(),
        percentile(&l, 50.0).as_secs_f64() * 1e3,
        percentile(&l, 99.0).as_secs_f64() * 1e3,
        l.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    let held = base + total;
    converged(&client, &peers, held, Duration::from_secs(60)).await?;

    // Catch-up: a new peer joins the cluster that now holds every pin above.
    let contact = cluster_contact(&peers[0]).await?;
    let started = Instant::now();
    let newcomer = start_joiner(&service, &contact, &batching(&opts))?;
    let up = started.elapsed();
    converged(&client, std::slice::from_ref(&newcomer), held, Duration::from_secs(300)).await?;
    println!(
        "join      a new peer had all {held} pins {:.2}s after it was started ({:.2}s of it starting up)",
        started.elapsed().as_secs_f64(),
        up.as_secs_f64()
    );
    Ok(())
}
