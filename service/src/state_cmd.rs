//! `ipfs-cluster-service state export|import|cleanup` (§7.1): offline access to the pinset
//! of a stopped peer, for either consensus.
//!
//! Export writes one Pin JSON object per line. Import validates the whole file before
//! touching anything (a malformed file fails with the line number and changes nothing),
//! then wipes the state and writes the pins: for CRDT as local writes, for Raft as a fresh
//! data folder holding a snapshot whose peerset is the peerstore's peers plus this one.
//! Cleanup clears the CRDT store, or moves the raft data folder aside (keeping
//! `backups_rotate` backups).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use cluster_config::{Loaded, ServiceConfig};
use cluster_consensus::CrdtStore;
use cluster_state::{Durability, FjallState, StateOp, StateStore};
use cluster_types::Pin;

/// Overrides applied to every imported pin.
#[derive(Debug, Default, Clone)]
pub struct ImportOverrides {
    /// Replaces `replication_factor_min`.
    pub rmin: Option<i32>,
    /// Replaces `replication_factor_max`.
    pub rmax: Option<i32>,
    /// Replaces the allocations.
    pub allocations: Option<Vec<String>>,
}

fn load(dir: &Path, env: &HashMap<String, String>) -> Result<Loaded> {
    if !dir.join("service.json").exists() {
        bail!("no configuration in {}: run init first", dir.display());
    }
    cluster_config::load_folder(dir, env).with_context(|| format!("loading {}", dir.display()))
}

fn open_crdt(config: &ServiceConfig, dir: &Path, peer_id: &str) -> Result<CrdtStore> {
    let path = config.datastore.fjall_path(dir);
    CrdtStore::open(&path, peer_id).with_context(|| format!("opening the state in {} (is the daemon running?)", path.display()))
}

fn open_raft_state(config: &ServiceConfig, dir: &Path) -> Result<Option<FjallState>> {
    let raft = config.consensus.raft.as_ref().expect("raft config");
    let path = crate::daemon::raft_data_folder(raft, dir).join("state");
    if !path.exists() {
        return Ok(None);
    }
    FjallState::open(&path).map(Some).with_context(|| format!("opening the raft state in {} (is the daemon running?)", path.display()))
}

fn confirm(force: bool, what: &str) -> Result<()> {
    if force {
        return Ok(());
    }
    eprint!("{what} Continue? [y/N]: ");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    if matches!(line.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        bail!("aborted (use --force to skip this question)")
    }
}

/// Writes every pin as one JSON line to `file` (stdout when `None`).
pub fn export(dir: &Path, env: &HashMap<String, String>, file: Option<&Path>) -> Result<u64> {
    let Loaded { config, identity, .. } = load(dir, env)?;
    let _lock = cluster_config::acquire_lock(dir)?;
    let out: Box<dyn Write> = match file {
        Some(p) => Box::new(std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = BufWriter::new(out);
    let store: Box<dyn StateStore> = if config.consensus.raft.is_some() {
        match open_raft_state(&config, dir)? {
            Some(s) => Box::new(s),
            None => return Ok(0),
        }
    } else {
        Box::new(open_crdt(&config, dir, &identity.peer_id().to_string())?)
    };
    let mut n = 0u64;
    for pin in store.list() {
        serde_json::to_writer(&mut out, &pin?)?;
        out.write_all(b"\n")?;
        n += 1;
    }
    out.flush()?;
    Ok(n)
}

/// Parses one NDJSON line into a pin, with the overrides applied.
fn parse_line(line: &str, overrides: &ImportOverrides) -> Result<Pin, String> {
    let mut pin: Pin = serde_json::from_str(line).map_err(|e| e.to_string())?;
    if let Some(r) = overrides.rmin {
        pin.options.replication_factor_min = r;
    }
    if let Some(r) = overrides.rmax {
        pin.options.replication_factor_max = r;
    }
    if let Some(a) = &overrides.allocations {
        pin.allocations = a.clone();
    }
    pin.validate().map_err(|e| e.message)?;
    Ok(pin)
}

/// Streams the pins of an NDJSON file (blank lines skipped).
fn read_pins(path: &Path, overrides: ImportOverrides) -> Result<impl Iterator<Item = Result<Pin>>> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    Ok(BufReader::new(f).lines().enumerate().filter_map(move |(i, line)| match line {
        Ok(l) if l.trim().is_empty() => None,
        Ok(l) => Some(parse_line(&l, &overrides).map_err(|e| anyhow::anyhow!("line {}: invalid pin: {e}", i + 1))),
        Err(e) => Some(Err(anyhow::anyhow!("line {}: {e}", i + 1))),
    }))
}

/// Replaces the state with the pins of `file` (stdin when `None`).
pub fn import(dir: &Path, env: &HashMap<String, String>, file: Option<&Path>, force: bool, overrides: ImportOverrides) -> Result<u64> {
    let Loaded { config, identity, peerstore } = load(dir, env)?;
    let _lock = cluster_config::acquire_lock(dir)?;
    // stdin is spooled to a file so that it can be validated in full before anything changes.
    let spooled;
    let path: PathBuf = match file {
        Some(p) => p.to_path_buf(),
        None => {
            let mut tmp = tempfile::NamedTempFile::new_in(dir).context("spooling stdin")?;
            std::io::copy(&mut std::io::stdin().lock(), &mut tmp).context("reading stdin")?;
            spooled = tmp;
            spooled.path().to_path_buf()
        }
    };
    let mut count = 0u64;
    for pin in read_pins(&path, overrides.clone())? {
        pin?;
        count += 1;
    }
    confirm(force, "This will replace the whole pinset of this peer.")?;
    let peer_id = identity.peer_id().to_string();
    if let Some(raft) = &config.consensus.raft {
        let folder = crate::daemon::raft_data_folder(raft, dir);
        cluster_consensus::raft::backup_data_folder(&folder, raft.backups_rotate)
            .with_context(|| format!("moving {} aside", folder.display()))?;
        let mut peers: Vec<String> = peerstore
            .iter()
            .filter_map(|a| a.parse::<cluster_net::Multiaddr>().ok())
            .filter_map(|m| cluster_net::split_peer_multiaddr(&m).map(|(p, _)| p.to_string()))
            .collect();
        peers.push(peer_id);
        peers.sort();
        peers.dedup();
        let pins = read_pins(&path, overrides)?.map(|p| p.expect("validated above"));
        cluster_consensus::raft::store::import_snapshot(&folder, pins, &peers).context("writing the raft snapshot")?;
    } else {
        let store = open_crdt(&config, dir, &peer_id)?;
        store.clear()?;
        let mut batch = Vec::with_capacity(1024);
        for pin in read_pins(&path, overrides)? {
            batch.push(StateOp::Put(pin?));
            if batch.len() == 1024 {
                store.apply(&batch)?;
                batch.clear();
            }
        }
        store.apply(&batch)?;
        store.persist(Durability::Sync)?;
    }
    Ok(count)
}

/// Removes the whole state of this peer.
pub fn cleanup(dir: &Path, env: &HashMap<String, String>, force: bool) -> Result<()> {
    let Loaded { config, identity, .. } = load(dir, env)?;
    let _lock = cluster_config::acquire_lock(dir)?;
    confirm(force, "This will remove the whole pinset of this peer.")?;
    if let Some(raft) = &config.consensus.raft {
        let folder = crate::daemon::raft_data_folder(raft, dir);
        if let Some(b) = cluster_consensus::raft::backup_data_folder(&folder, raft.backups_rotate)? {
            eprintln!("raft data moved to {}", b.display());
        }
    } else {
        let store = open_crdt(&config, dir, &identity.peer_id().to_string())?;
        store.clear()?;
        store.persist(Durability::Sync)?;
    }
    Ok(())
}
