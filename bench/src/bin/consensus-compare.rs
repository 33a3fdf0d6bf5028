//! consensus-compare: CRDT and Raft side by side, in one run. For each consensus it starts a
//! fresh cluster of real peers, pins as fast as the clients go (pins/s acknowledged, and
//! until every peer's state holds every pin), then at a fixed rate (request → acknowledged,
//! request → visible on every peer), stops the cluster and prints one table.
//!
//! ```sh
//! cargo build --release -p ipfs-cluster-service -p cluster-bench && target/release/consensus-compare
//! ```

use anyhow::{bail, Result};
use clap::{Parser, ValueEnum};
use cluster_bench::cluster::{latency, throughput, BenchCluster, Latency, Throughput};
use cluster_bench::{actor_state, service_binary};
use serde_json::Value;

/// Which peers take the requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Through {
    /// The first peer (the raft cluster's founder, hence usually its leader).
    First,
    /// Every peer in turn (a raft follower forwards to the leader).
    All,
}

/// Command-line options.
#[derive(Parser, Debug)]
#[command(about = "Benchmark CRDT and Raft consensus side by side on real multi-peer clusters")]
struct Opts {
    /// Cluster size.
    #[arg(long, default_value_t = 3)]
    peers: usize,
    /// Pins for the throughput phase.
    #[arg(long, default_value_t = 20_000)]
    pins: u64,
    /// Concurrent HTTP clients in the throughput phase.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// Request rate of the latency phase (pins/s).
    #[arg(long, default_value_t = 500)]
    rate: u64,
    /// Length of the latency phase in seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Watch one pin in this many on every peer until it is there.
    #[arg(long, default_value_t = 10)]
    sample_every: u64,
    /// Which peers take the requests.
    #[arg(long, value_enum, default_value = "first")]
    through: Through,
    /// Consensus components to measure, in order.
    #[arg(long, value_delimiter = ',', default_value = "crdt,raft")]
    consensus: Vec<String>,
    /// The daemon binary (defaults to the one next to this benchmark).
    #[arg(long)]
    service: Option<std::path::PathBuf>,
}

struct Row {
    consensus: String,
    throughput: Throughput,
    latency: Latency,
    /// Pins per raft log entry in the throughput phase (raft only).
    per_entry: Option<f64>,
}

/// `consensus.crdt.batching` as cluster-ingest measures it.
fn crdt_batching(cfg: &mut Value) {
    cfg["consensus"]["crdt"]["batching"]["max_batch_size"] = 1000.into();
    cfg["consensus"]["crdt"]["batching"]["max_batch_age"] = "50ms".into();
    cfg["consensus"]["crdt"]["batching"]["max_queue_size"] = 100_000.into();
}

async fn measure(opts: &Opts, client: &reqwest::Client, consensus: &str) -> Result<Row> {
    let service = service_binary(opts.service.clone())?;
    let cluster = match consensus {
        "crdt" => BenchCluster::start(&service, client, opts.peers, &[], crdt_batching).await?,
        // The original's raft defaults, as `init --consensus raft` writes them.
        "raft" => BenchCluster::start(&service, client, opts.peers, &["--consensus", "raft"], |_| {}).await?,
        other => bail!("unknown consensus {other}: crdt or raft"),
    };
    let ports = cluster.ports();
    let entries = match opts.through {
        Through::First => vec![ports[0]],
        Through::All => ports.clone(),
    };
    eprintln!("{consensus}: {} peers up, measuring", ports.len());
    let throughput = throughput(client, &ports, &entries, 0, opts.pins, opts.concurrency).await?;
    let per_entry = if consensus == "raft" {
        let mut entries = 0;
        for &port in &ports {
            entries += actor_state(client, port, "consensus").await?["consensus"]["commits_total"].as_u64().unwrap_or(0);
        }
        Some(throughput.pins as f64 / entries.max(1) as f64)
    } else {
        None
    };
    let latency = latency(client, &ports, &entries, opts.pins, opts.rate, opts.seconds, opts.sample_every).await?;
    Ok(Row { consensus: consensus.to_string(), throughput, latency, per_entry })
}

#[tokio::main]
async fn main() -> Result<()> {
    let opts = Opts::parse();
    let client = reqwest::Client::builder().pool_max_idle_per_host(opts.concurrency).build()?;
    let mut rows = Vec::new();
    for consensus in &opts.consensus {
        rows.push(measure(&opts, &client, consensus).await?);
    }
    println!(
        "{} peers, requests through {}; throughput: {} pins by {} clients; latency: {} pins/s for {}s, one in {} watched on every peer",
        opts.peers,
        match opts.through {
            Through::First => "the first peer",
            Through::All => "every peer in turn",
        },
        opts.pins,
        opts.concurrency,
        opts.rate,
        opts.seconds,
        opts.sample_every
    );
    println!(
        "{:<9} {:>11} {:>14} {:>17} {:>10} {:>17} {:>21} {:>10}",
        "consensus", "acked/s", "on all peers/s", "ack p50/p99 (ms)", "sent/s", "ack p50/p99 (ms)", "visible p50/p99 (ms)", "pins/entry"
    );
    for r in &rows {
        let (t, l) = (&r.throughput, &r.latency);
        println!(
            "{:<9} {:>11.0} {:>14.0} {:>17} {:>10.0} {:>17} {:>21} {:>10}",
            r.consensus,
            t.acked_rate(),
            t.everywhere_rate(),
            format!("{:.0} / {:.0}", t.ack_latency.ms(50.0), t.ack_latency.ms(99.0)),
            l.achieved,
            format!("{:.1} / {:.1}", l.acked.ms(50.0), l.acked.ms(99.0)),
            format!("{:.1} / {:.1}", l.visible.ms(50.0), l.visible.ms(99.0)),
            r.per_entry.map(|p| format!("{p:.1}")).unwrap_or_else(|| "-".into())
        );
    }
    Ok(())
}
