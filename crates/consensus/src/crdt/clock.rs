//! A hybrid logical clock: wall-clock microseconds that never go backwards and are pushed
//! past every version this peer has merged, so a write made after seeing another is newer.

use std::sync::atomic::{AtomicU64, Ordering};

/// The clock; `now` is strictly increasing across calls.
#[derive(Debug, Default)]
pub struct Hlc {
    last: AtomicU64,
}

impl Hlc {
    /// A reading greater than every earlier reading and every observed one.
    pub fn now(&self) -> u64 {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        let mut last = self.last.load(Ordering::Relaxed);
        loop {
            let next = wall.max(last.saturating_add(1));
            match self.last.compare_exchange_weak(last, next, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return next,
                Err(actual) => last = actual,
            }
        }
    }

    /// Pushes the clock past a version seen from another peer.
    pub fn observe(&self, seen: u64) {
        self.last.fetch_max(seen, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_and_pushed_by_observations() {
        let c = Hlc::default();
        let a = c.now();
        let b = c.now();
        assert!(b > a);
        c.observe(b + 1_000_000_000);
        assert!(c.now() > b + 1_000_000_000);
    }
}
