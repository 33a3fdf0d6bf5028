//! An acknowledged `log_pin` survives a crash without `shutdown`: the commit path persists
//! with `Durability::Buffer` before acknowledging, so only a power loss (not a process
//! death) can lose it.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use cluster_consensus::{Consensus, SinglePeerConfig, SinglePeerConsensus};
use cluster_state::conformance::{test_cid, test_pin};
use cluster_state::{FjallState, StateStore};
use tokio::sync::mpsc;

const CHILD_DIR_VAR: &str = "CLUSTER_CONSENSUS_CRASH_CHILD_DIR";
const PINS: u64 = 2000;

/// Background fsync off, so durability comes from the Buffer persist alone.
fn no_sync_config() -> SinglePeerConfig {
    SinglePeerConfig { sync_interval: None, ..SinglePeerConfig::default() }
}

/// Logs `PINS` pins, 100 concurrent at a time, and returns once all are acknowledged.
async fn log_pins(dir: &Path) -> Arc<dyn StateStore> {
    let store: Arc<dyn StateStore> = Arc::new(FjallState::open(dir).expect("open state"));
    let (tx, rx) = mpsc::channel(16);
    drop(rx);
    let c = Arc::new(SinglePeerConsensus::with_config("12D3KooWSelf".into(), store.clone(), tx, no_sync_config()));
    for wave in (0..PINS).step_by(100) {
        let acks = futures::future::join_all((wave..wave + 100).map(|i| c.log_pin(test_pin(i)))).await;
        assert!(acks.iter().all(Result::is_ok), "log_pin failed");
    }
    store
}

fn assert_all_present(dir: &Path) {
    let store = FjallState::open(dir).expect("reopen state");
    assert_eq!(store.len().expect("len"), PINS);
    for i in 0..PINS {
        assert!(store.has(&test_cid(i)).expect("has"), "acknowledged pin {i} lost");
    }
    assert_eq!(store.list().count() as u64, PINS);
}

/// Drop the runtime (aborting the committer) and every handle, without `shutdown`.
#[test]
fn acknowledged_pins_survive_drop_without_shutdown() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        let store = rt.block_on(log_pins(dir.path()));
        drop(rt);
        drop(store);
    }
    assert_all_present(dir.path());
}

/// The real thing: a child process logs pins, reports them acknowledged, and is killed
/// with SIGKILL (no destructors, no fsync); the parent then reopens the state.
#[test]
fn acknowledged_pins_survive_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("test binary path");
    let mut child = Command::new(exe)
        .args(["crash_child_writer", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR_VAR, dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let acked = loop {
        match lines_rx.recv_timeout(Duration::from_secs(120)) {
            // libtest may have printed "test crash_child_writer ... " on the same line.
            Ok(line) if line.contains("acked ") => break line,
            Ok(_) => continue,
            Err(e) => {
                let _ = child.kill();
                panic!("child never reported its acknowledged pins: {e}");
            }
        }
    };
    assert!(acked.ends_with(&format!("acked {PINS}")), "unexpected report {acked:?}");
    child.kill().expect("kill -9 child");
    child.wait().expect("reap child");
    assert_all_present(dir.path());
}

/// Runs only as the child of `acknowledged_pins_survive_kill_9` (a no-op otherwise).
#[test]
fn crash_child_writer() {
    let Some(dir) = std::env::var_os(CHILD_DIR_VAR) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let _store = rt.block_on(log_pins(Path::new(&dir)));
    let mut out = std::io::stdout();
    writeln!(out, "\nacked {PINS}").expect("report");
    out.flush().expect("flush");
    // Wait to be killed; a closed stdin (the parent died) ends the wait too.
    let mut buf = [0u8; 1];
    let _ = std::io::stdin().read(&mut buf);
}
