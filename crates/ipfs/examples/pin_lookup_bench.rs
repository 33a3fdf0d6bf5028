//! Measures pin-status lookups on an on-disk embedded node, the path `GET /pins?local=true`
//! depends on: batched `pin_ls_cids` over chunks of 1024 (what the tracker does per state chunk)
//! against one `pin_ls_cid` per CID, and against the pin-file lookup the connector used before
//! the pin index (`is_pinned` + `query_pins`, two `stat`s per CID). Also reports how fast pins
//! are recorded (rust-ipfs fsyncs every pin file) and how long a restart takes with a clean index
//! and with a rebuild.
//!
//! ```text
//! cargo run --release -p cluster-ipfs --example pin_lookup_bench [-- <pins>]
//! ```
//!
//! `<pins>` defaults to 20,000 identity CIDs (content inline, so pinning needs no blocks).
//! `RUST_LOG=cluster_ipfs=info` shows the index's start-up decisions.

use std::error::Error;
use std::time::{Duration, Instant};

use cid::multihash::Multihash;
use cluster_ipfs::{
    CODEC_RAW, Cid, EmbeddedConfig, EmbeddedIpfs, IpfsConnector, IpfsPinStatus, MULTIHASH_IDENTITY,
    PinMode,
};

/// Lookups per batched call, the tracker's state chunk.
const CHUNK: usize = 1024;
/// CIDs timed on the old pin-file path (it is slow; a sample is enough to get the rate).
const FILE_PATH_SAMPLE: usize = 5_000;

fn identity_cid(n: u64) -> Result<Cid, Box<dyn Error>> {
    let digest = Multihash::<64>::wrap(MULTIHASH_IDENTITY, &n.to_be_bytes())?;
    Ok(Cid::new_v1(CODEC_RAW, digest))
}

fn rate(count: usize, took: Duration) -> String {
    let per_second = count as f64 / took.as_secs_f64().max(f64::EPSILON);
    format!("{count} in {:.3} s = {per_second:.0}/s", took.as_secs_f64())
}

async fn start(repo: &std::path::Path) -> Result<EmbeddedIpfs, Box<dyn Error>> {
    let cfg = EmbeddedConfig {
        repo_path: Some(repo.to_path_buf()),
        listen_addrs: Vec::new(),
        ..EmbeddedConfig::default()
    };
    Ok(EmbeddedIpfs::start(cfg).await?)
}

/// Times batched lookups of `cids` in chunks of [`CHUNK`], checking every answer.
async fn batched(
    node: &EmbeddedIpfs,
    cids: &[Cid],
    expected: IpfsPinStatus,
) -> Result<Duration, Box<dyn Error>> {
    let started = Instant::now();
    for chunk in cids.chunks(CHUNK) {
        let statuses = node.pin_ls_cids(chunk).await?;
        if statuses.len() != chunk.len() || statuses.iter().any(|s| *s != expected) {
            return Err(format!("batched lookup answered something other than {expected}").into());
        }
    }
    Ok(started.elapsed())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn Error>> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
    let pins: usize = match std::env::args().nth(1) {
        Some(arg) => arg.parse()?,
        None => 20_000,
    };
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!("pin lookup bench: {pins} pins, {profile} build");

    let dir = tempfile::tempdir()?;
    let repo = dir.path().join("ipfs");
    let node = start(&repo).await?;
    let cids: Vec<Cid> = (0..pins as u64)
        .map(identity_cid)
        .collect::<Result<_, _>>()?;
    let unpinned: Vec<Cid> = (0..pins as u64)
        .map(|n| identity_cid(n + (1 << 40)))
        .collect::<Result<_, _>>()?;

    let started = Instant::now();
    for cid in &cids {
        let (tx, _rx) = tokio::sync::mpsc::channel(4);
        node.pin(cid, PinMode::Recursive, tx).await?;
    }
    println!(
        "pin (recursive, one at a time):    {}",
        rate(pins, started.elapsed())
    );

    let took = batched(&node, &cids, IpfsPinStatus::Recursive).await?;
    println!("pin_ls_cids, chunks of {CHUNK}:      {}", rate(pins, took));

    let took = batched(&node, &unpinned, IpfsPinStatus::Unpinned).await?;
    println!("pin_ls_cids, unpinned CIDs:         {}", rate(pins, took));

    let started = Instant::now();
    for cid in &cids {
        if node.pin_ls_cid(cid).await? != IpfsPinStatus::Recursive {
            return Err(format!("{cid} is not reported recursive").into());
        }
    }
    println!(
        "pin_ls_cid, one call per CID:       {}",
        rate(pins, started.elapsed())
    );

    // the connector's lookup before the pin index: pin files on disk
    let ipfs = node.ipfs()?;
    let sample = &cids[..pins.min(FILE_PATH_SAMPLE)];
    let started = Instant::now();
    for cid in sample {
        if !ipfs.is_pinned(cid).await? {
            return Err(format!("{cid} is not pinned in the pin store").into());
        }
        ipfs.query_pins(vec![*cid], None).await?;
    }
    println!(
        "pin files (is_pinned + query_pins): {}",
        rate(sample.len(), started.elapsed())
    );
    drop(ipfs);

    let started = Instant::now();
    node.stop().await;
    drop(node);
    println!(
        "orderly stop:                       {:.3} s",
        started.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let node = start(&repo).await?;
    println!(
        "start after orderly stop:           {:.3} s ({:?})",
        started.elapsed().as_secs_f64(),
        node.pin_index_start()
    );
    batched(&node, &cids, IpfsPinStatus::Recursive).await?;

    // unclean: dropped without stop, so the next start rebuilds the index from the pin files
    drop(node);
    let started = Instant::now();
    let node = start(&repo).await?;
    println!(
        "start after unclean stop (rebuild): {:.3} s ({:?})",
        started.elapsed().as_secs_f64(),
        node.pin_index_start()
    );
    let took = batched(&node, &cids, IpfsPinStatus::Recursive).await?;
    println!("pin_ls_cids after the rebuild:      {}", rate(pins, took));
    node.stop().await;
    Ok(())
}
