//! Throttling requests to a node that stopped answering.
//!
//! When the node is down, every pin worker and informer would otherwise hammer it (and fill the
//! logs) as fast as connections are refused. After more than [`FAILURE_THRESHOLD`] consecutive
//! failed requests, requests are released one per [`RELEASE_INTERVAL`] until one succeeds, which
//! lifts the throttle at once for everybody waiting.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::{info, warn};

/// Consecutive failures tolerated before throttling starts.
pub(crate) const FAILURE_THRESHOLD: u32 = 10;
/// While throttled, at most one request is released per interval.
pub(crate) const RELEASE_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub(crate) struct Backoff {
    failures: AtomicU32,
    next_release: Mutex<Instant>,
    recovered: Notify,
}

impl Backoff {
    pub(crate) fn new() -> Backoff {
        Backoff {
            failures: AtomicU32::new(0),
            next_release: Mutex::new(Instant::now()),
            recovered: Notify::new(),
        }
    }

    pub(crate) fn is_throttling(&self) -> bool {
        self.failures.load(Ordering::Acquire) > FAILURE_THRESHOLD
    }

    pub(crate) fn consecutive_failures(&self) -> u32 {
        self.failures.load(Ordering::Acquire)
    }

    /// Waits until this request may go out.
    pub(crate) async fn admit(&self) {
        loop {
            if !self.is_throttling() {
                return;
            }
            let recovered = self.recovered.notified();
            tokio::pin!(recovered);
            // registered before the re-check, so a recovery in between is not missed
            recovered.as_mut().enable();
            if !self.is_throttling() {
                return;
            }
            let slot = {
                let mut next = self
                    .next_release
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                let slot = (*next).max(Instant::now());
                *next = slot + RELEASE_INTERVAL;
                slot
            };
            tokio::select! {
                _ = tokio::time::sleep_until(slot) => return,
                _ = recovered => continue,
            }
        }
    }

    pub(crate) fn record_success(&self) {
        let before = self.failures.swap(0, Ordering::AcqRel);
        if before > FAILURE_THRESHOLD {
            info!(
                failed_requests = before,
                "ipfs node answers again, requests no longer throttled"
            );
            self.recovered.notify_waiters();
        }
    }

    pub(crate) fn record_failure(&self) {
        let now = self
            .failures
            .fetch_add(1, Ordering::AcqRel)
            .saturating_add(1);
        if now == FAILURE_THRESHOLD + 1 {
            warn!(
                failed_requests = now,
                "ipfs node keeps failing, releasing at most one request per second until it answers"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn throttles_after_threshold_and_lifts_on_success() {
        let backoff = std::sync::Arc::new(Backoff::new());
        for _ in 0..FAILURE_THRESHOLD {
            backoff.record_failure();
        }
        let start = Instant::now();
        backoff.admit().await;
        assert_eq!(
            start.elapsed(),
            Duration::ZERO,
            "ten failures do not throttle yet"
        );

        backoff.record_failure();
        assert!(backoff.is_throttling());
        for expected in 0..3u64 {
            backoff.admit().await;
            assert_eq!(start.elapsed(), Duration::from_secs(expected));
        }

        // one waiter is parked on its slot; a success releases it immediately
        let waiter = {
            let backoff = backoff.clone();
            tokio::spawn(async move {
                let t = Instant::now();
                backoff.admit().await;
                t.elapsed()
            })
        };
        tokio::task::yield_now().await;
        backoff.record_success();
        let waited = waiter.await.unwrap();
        assert!(
            waited < Duration::from_secs(1),
            "waiter released late: {waited:?}"
        );
        assert!(!backoff.is_throttling());
    }
}
