//! Streaming the pinset out of the (synchronous) state store without blocking the runtime.

use std::sync::Arc;

use cluster_state::{StateError, StateStore};
use cluster_types::Pin;
use tokio::sync::mpsc;

/// Walks the state on a blocking thread and sends the pins passing `keep`, ending after the
/// first read error (which is sent too). The bounded channel paces the walk to the reader, and
/// a reader that goes away stops it, so the pinset is never collected in memory.
pub(crate) fn walk_state(
    state: Arc<dyn StateStore>,
    keep: impl Fn(&Pin) -> bool + Send + 'static,
) -> mpsc::Receiver<Result<Pin, StateError>> {
    let (tx, rx) = mpsc::channel(1024);
    tokio::task::spawn_blocking(move || {
        for item in state.list() {
            if matches!(&item, Ok(pin) if !keep(pin)) {
                continue;
            }
            let stop = item.is_err();
            if tx.blocking_send(item).is_err() || stop {
                break;
            }
        }
    });
    rx
}
