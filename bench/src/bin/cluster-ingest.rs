//! cluster-ingest: sustained pin ingestion through one peer's REST API on a real multi-peer
//! CRDT cluster. Prints the pins/s until every peer holds every pin in its state, then the
//! convergence latency (request sent → pin in every peer's state) at a fixed request rate,
//! then how long a newly started peer takes to hold the whole state.
//!
//! ```sh
//! cargo build --release --bins && target/release/cluster-ingest
//! ```

use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Parser;
use cluster_bench::cluster::{converged, latency, throughput, BenchCluster};
use cluster_bench::service_binary;

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

/// `consensus.crdt.batching` from the options.
fn crdt_batching(opts: &Opts) -> impl Fn(&mut serde_json::Value) {
    let (size, age) = (opts.batch_size, opts.batch_age.clone());
    move |cfg| {
        cfg["consensus"]["crdt"]["batching"]["max_batch_size"] = size.into();
        cfg["consensus"]["crdt"]["batching"]["max_batch_age"] = age.clone().into();
        cfg["consensus"]["crdt"]["batching"]["max_queue_size"] = 100_000.into();
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let opts = Opts::parse();
    let service = service_binary(opts.service.clone())?;
    let client = reqwest::Client::builder().pool_max_idle_per_host(opts.concurrency).build()?;
    let cluster = BenchCluster::start(&service, &client, opts.peers, &[], crdt_batching(&opts)).await?;
    let ports = cluster.ports();
    let entry = [ports[0]];
    println!(
        "{} peers, crdt batching max_batch_size {} max_batch_age {}; ingestion through one peer's REST API",
        opts.peers, opts.batch_size, opts.batch_age
    );

    // Throughput: as fast as the clients go, until every peer holds every pin.
    let t = throughput(&client, &ports, &entry, 0, opts.pins, opts.concurrency).await?;
    println!(
        "throughput {:>7} pins, {} clients: acknowledged in {:.2}s ({:.0} pins/s); in all {} states after {:.2}s: {:.0} pins/s",
        opts.pins,
        opts.concurrency,
        t.acked.as_secs_f64(),
        t.acked_rate(),
        opts.peers,
        t.everywhere.as_secs_f64(),
        t.everywhere_rate()
    );

    // Latency: a fixed request rate; sampled pins are watched on every peer until present.
    let l = latency(&client, &ports, &entry, opts.pins, opts.rate, opts.seconds, opts.sample_every).await?;
    println!(
        "latency   {} pins/s offered ({:.0} achieved) for {}s, {} samples: convergence p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        opts.rate,
        l.achieved,
        opts.seconds,
        l.visible.len(),
        l.visible.ms(50.0),
        l.visible.ms(99.0),
        l.visible.max_ms()
    );
    let held = opts.pins + l.pins;
    converged(&client, &ports, held, Duration::from_secs(60)).await?;

    // Catch-up: a new peer joins the cluster that now holds every pin above.
    let started = Instant::now();
    let newcomer = cluster.start_peer(crdt_batching(&opts))?;
    let up = started.elapsed();
    converged(&client, &[newcomer.port], held, Duration::from_secs(300)).await?;
    println!(
        "join      a new peer had all {held} pins {:.2}s after it was started ({:.2}s of it starting up)",
        started.elapsed().as_secs_f64(),
        up.as_secs_f64()
    );
    Ok(())
}
