//! Measures the fjall pinset: ingest (batches of 1 and 100, `Durability::Buffer` after each
//! batch) and streaming list throughput, with resident memory before and after listing.
//!
//! Run in release: `cargo run --release -p cluster-state --example state_bench [PINS]`
//! (default 100000 pins). Set `STATE_BENCH_DIR` to measure on a specific disk.

use std::time::Instant;

use cluster_state::conformance::test_pin;
use cluster_state::{Durability, FjallState, StateOp, StateStore};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u64 = std::env::args().nth(1).map(|s| s.parse()).transpose()?.unwrap_or(100_000);
    let base = std::env::var_os("STATE_BENCH_DIR").map(std::path::PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(base)?;
    let store = FjallState::open(dir.path())?;

    // Batches of one: the worst case, one journal write per pin. Capped so the run stays short.
    let singles = n.min(20_000);
    let start = Instant::now();
    for i in 0..singles {
        store.apply(&[StateOp::Put(test_pin(i))])?;
        store.persist(Durability::Buffer)?;
    }
    report("put, batch 1", singles, start);

    // Batches of 100: what the consensus committer produces under concurrent load.
    let start = Instant::now();
    let mut i = singles;
    while i < n {
        let end = (i + 100).min(n);
        let ops: Vec<_> = (i..end).map(|j| StateOp::Put(test_pin(j))).collect();
        store.apply(&ops)?;
        store.persist(Durability::Buffer)?;
        i = end;
    }
    report("put, batch 100", n - singles, start);
    store.persist(Durability::Sync)?;

    let rss_before = rss_kib();
    let start = Instant::now();
    let mut listed = 0u64;
    let mut peak = rss_before;
    for pin in store.list() {
        pin?;
        listed += 1;
        if listed.is_multiple_of(50_000) {
            peak = peak.max(rss_kib());
        }
    }
    report("list", listed, start);
    assert_eq!(listed, n, "listed count differs from pins written");
    println!("rss before list: {rss_before} KiB, peak during list: {peak} KiB, len(): {}", store.len()?);
    Ok(())
}

fn report(what: &str, count: u64, start: Instant) {
    let secs = start.elapsed().as_secs_f64();
    println!("{what:>16}: {count:>9} pins in {secs:>7.3} s = {:>10.0} pins/s", count as f64 / secs.max(1e-9));
}

/// Resident set size from /proc (Linux); 0 elsewhere.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}
