//! Measures `log_pin` throughput of single-peer consensus over fjall: one writer at a
//! time (latency-bound) and many concurrent writers (group commit).
//!
//! Run in release: `cargo run --release -p cluster-consensus --example consensus_bench [PINS]`.

use std::sync::Arc;
use std::time::Instant;

use cluster_consensus::{Consensus, SinglePeerConsensus};
use cluster_state::conformance::test_pin;
use cluster_state::{FjallState, StateStore};
use tokio::sync::mpsc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u64 = std::env::args().nth(1).map(|s| s.parse()).transpose()?.unwrap_or(50_000);
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn StateStore> = Arc::new(FjallState::open(dir.path())?);
    let (tx, mut rx) = mpsc::channel(1024);
    // A tracker stand-in that consumes changes as fast as they come.
    let drain = tokio::spawn(async move {
        let mut seen = 0u64;
        while rx.recv().await.is_some() {
            seen += 1;
        }
        seen
    });
    let c = Arc::new(SinglePeerConsensus::new("12D3KooWSelf".into(), store.clone(), tx));

    let sequential = (n / 10).max(1);
    let start = Instant::now();
    for i in 0..sequential {
        c.log_pin(test_pin(i)).await?;
    }
    report("sequential", sequential, start);

    let concurrency = 256u64;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let c = Arc::clone(&c);
        tasks.push(tokio::spawn(async move {
            let mut i = sequential + w;
            while i < n {
                c.log_pin(test_pin(i)).await?;
                i += concurrency;
            }
            Ok::<_, cluster_consensus::ConsensusError>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    report("256 concurrent", n - sequential, start);
    println!("{:?}, pins in state: {}", c.stats(), store.len()?);

    let start = Instant::now();
    c.shutdown().await?;
    println!("shutdown (drain + fsync): {:.1} ms", start.elapsed().as_secs_f64() * 1e3);
    drop(c);
    println!("changes received: {}", drain.await?);
    Ok(())
}

fn report(what: &str, count: u64, start: Instant) {
    let secs = start.elapsed().as_secs_f64();
    println!("{what:>16}: {count:>8} log_pin in {secs:>7.3} s = {:>9.0} pins/s", count as f64 / secs.max(1e-9));
}
