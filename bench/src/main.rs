//! cluster-bench: ingests pins into a real `ipfs-cluster-service` daemon through its REST API,
//! then streams `GET /allocations` and `GET /pins?local=true`, printing throughput and the
//! daemon's memory. Run it on a release build:
//!
//! ```sh
//! cargo build --release --bins && target/release/cluster-bench --pins 100000,1000000
//! ```

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::Parser;
use cluster_bench::{actor_state, identity_cid, rss_kib, service_binary, Daemon};
use futures::StreamExt;

/// Command-line options.
#[derive(Parser, Debug)]
#[command(about = "Benchmark ingestion and listing on one ipfs-cluster-service peer")]
struct Opts {
    /// Pinset sizes to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "100000,1000000")]
    pins: Vec<u64>,
    /// Concurrent HTTP clients during ingestion.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Wait until IPFS has pinned every pin before listing, so statuses come from IPFS lookups.
    #[arg(long)]
    drain: bool,
    /// The daemon binary (defaults to the one next to this benchmark).
    #[arg(long)]
    service: Option<PathBuf>,
}

async fn ingest(port: u16, from: u64, to: u64, concurrency: usize) -> Result<Duration> {
    let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build()?;
    let started = Instant::now();
    let results = futures::stream::iter(from..to)
        .map(|i| {
            let client = client.clone();
            async move {
                let url = format!("http://127.0.0.1:{port}/pins/{}", identity_cid(i));
                let resp = client.post(url).send().await?;
                if !resp.status().is_success() {
                    bail!("pin {i}: {}", resp.status());
                }
                Ok::<_, anyhow::Error>(())
            }
        })
        .buffer_unordered(concurrency);
    futures::pin_mut!(results);
    while let Some(r) = results.next().await {
        r?;
    }
    Ok(started.elapsed())
}

/// Streams a list endpoint, counting lines, while sampling the daemon's RSS.
async fn stream_list(port: u16, path: &str, pid: u32) -> Result<(u64, Duration, u64, u64)> {
    let (rss_before, _) = rss_kib(pid);
    let peak = Arc::new(AtomicU64::new(rss_before));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (Arc::clone(&peak), Arc::clone(&done));
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(pid).0, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let started = Instant::now();
    let resp = reqwest::Client::new().get(format!("http://127.0.0.1:{port}{path}")).send().await?;
    let mut lines = 0u64;
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        lines += chunk?.iter().filter(|b| **b == b'\n').count() as u64;
    }
    let elapsed = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    Ok((lines, elapsed, rss_before, peak.load(Ordering::Relaxed)))
}

/// Pin operations still queued in the tracker (from its observable state).
async fn tracker_backlog(port: u16) -> Result<u64> {
    let tracker = actor_state(&reqwest::Client::new(), port, "pin_tracker").await?;
    let pin = &tracker["operations"]["pin"];
    Ok(pin["queued"].as_u64().unwrap_or(0) + pin["in_progress"].as_u64().unwrap_or(0))
}

#[tokio::main]
async fn main() -> Result<()> {
    let opts = Opts::parse();
    let service = service_binary(opts.service.clone())?;
    let mut sizes = opts.pins.clone();
    sizes.sort_unstable();
    let daemon = Daemon::start(&service, |_| {}, &[])?;
    let pid = daemon.child.id();
    println!("daemon pid {pid}, port {}, ingestion concurrency {}", daemon.port, opts.concurrency);
    let mut have = 0u64;
    for size in sizes {
        let took = ingest(daemon.port, have, size, opts.concurrency).await?;
        let added = size - have;
        println!(
            "ingest   {:>9} pins -> {:>9} in state: {:>8.1}s  {:>9.0} pins/s",
            added,
            size,
            took.as_secs_f64(),
            added as f64 / took.as_secs_f64()
        );
        have = size;
        // Without --drain, listing does not wait for IPFS to catch up: statuses are then a mix
        // of pinned and queued, which is what a busy production peer lists too.
        if opts.drain {
            let started = Instant::now();
            while tracker_backlog(daemon.port).await? > 0 {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            let secs = started.elapsed().as_secs_f64();
            println!("tracker  backlog pinned in IPFS after a further {secs:.1}s");
        } else {
            println!("tracker  {} pin operations still queued or in progress in IPFS", tracker_backlog(daemon.port).await?);
        }
        for path in ["/allocations", "/pins?local=true"] {
            let (lines, took, before, peak) = stream_list(daemon.port, path, pid).await?;
            if lines != size {
                bail!("{path}: listed {lines} of {size}");
            }
            println!(
                "list     {:<18} {:>9} pins: {:>7.2}s  {:>9.0} pins/s  rss {:>6} MiB, peak {:>6} MiB (+{} MiB)",
                path,
                lines,
                took.as_secs_f64(),
                lines as f64 / took.as_secs_f64(),
                before / 1024,
                peak / 1024,
                peak.saturating_sub(before) / 1024
            );
        }
    }
    let (rss, hwm) = rss_kib(pid);
    println!("daemon   rss {} MiB, peak rss {} MiB", rss / 1024, hwm / 1024);
    Ok(())
}
