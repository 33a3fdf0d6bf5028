//! The three bounded job queues between the tracker actor and its workers.
//!
//! Jobs only name an operation (CID + generation); the operation itself lives in the
//! operation tracker, so a job whose operation was replaced is recognised as stale by the
//! worker that pops it. Pin workers always take from the priority lane first.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

use cluster_types::Cid;
use tokio::sync::Notify;

/// Which queue a job goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lane {
    /// Fresh, rarely-failed pins.
    Priority,
    /// Every other pin.
    Normal,
    /// Unpins and remote cleanups.
    Unpin,
}

/// A reference to an operation waiting for a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Job {
    pub(crate) cid: Cid,
    pub(crate) generation: u64,
}

/// The lane was at capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueueFull;

#[derive(Debug, Default)]
struct Lanes {
    priority: VecDeque<Job>,
    normal: VecDeque<Job>,
    unpin: VecDeque<Job>,
}

/// Queue lengths at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Depths {
    pub(crate) priority: usize,
    pub(crate) normal: usize,
    pub(crate) unpin: usize,
}

/// Three bounded FIFO lanes with wake-ups for the pin and unpin workers.
#[derive(Debug)]
pub(crate) struct OpQueues {
    lanes: Mutex<Lanes>,
    capacity: usize,
    pin_ready: Notify,
    unpin_ready: Notify,
}

impl OpQueues {
    /// Lanes that each hold at most `capacity` jobs.
    pub(crate) fn new(capacity: usize) -> Self {
        Self { lanes: Mutex::new(Lanes::default()), capacity, pin_ready: Notify::new(), unpin_ready: Notify::new() }
    }

    fn lock(&self) -> MutexGuard<'_, Lanes> {
        // Lanes are plain deques: a panic while holding the lock cannot leave them torn.
        self.lanes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends a job, refusing it when its lane is full.
    pub(crate) fn push(&self, lane: Lane, job: Job) -> Result<(), QueueFull> {
        let mut lanes = self.lock();
        let deque = match lane {
            Lane::Priority => &mut lanes.priority,
            Lane::Normal => &mut lanes.normal,
            Lane::Unpin => &mut lanes.unpin,
        };
        if deque.len() >= self.capacity {
            return Err(QueueFull);
        }
        deque.push_back(job);
        drop(lanes);
        match lane {
            Lane::Priority | Lane::Normal => self.pin_ready.notify_one(),
            Lane::Unpin => self.unpin_ready.notify_one(),
        }
        Ok(())
    }

    fn pop_pin(&self) -> Option<Job> {
        let mut lanes = self.lock();
        lanes.priority.pop_front().or_else(|| lanes.normal.pop_front())
    }

    fn pop_unpin(&self) -> Option<Job> {
        self.lock().unpin.pop_front()
    }

    /// Waits for the next pin job, priority lane first. Cancel-safe: a job is only taken
    /// when the future completes.
    pub(crate) async fn next_pin(&self) -> Job {
        loop {
            let notified = self.pin_ready.notified();
            tokio::pin!(notified);
            // Registering before checking means a push between the check and the wait is
            // not missed.
            notified.as_mut().enable();
            if let Some(job) = self.pop_pin() {
                // Several pushes may have left a single permit; pass the baton so another
                // idle worker also looks.
                if self.has_pin_jobs() {
                    self.pin_ready.notify_one();
                }
                return job;
            }
            notified.await;
        }
    }

    /// Waits for the next unpin job. Cancel-safe like [`OpQueues::next_pin`].
    pub(crate) async fn next_unpin(&self) -> Job {
        loop {
            let notified = self.unpin_ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(job) = self.pop_unpin() {
                return job;
            }
            notified.await;
        }
    }

    fn has_pin_jobs(&self) -> bool {
        let lanes = self.lock();
        !lanes.priority.is_empty() || !lanes.normal.is_empty()
    }

    /// Current lengths, stale jobs included.
    pub(crate) fn depths(&self) -> Depths {
        let lanes = self.lock();
        Depths { priority: lanes.priority.len(), normal: lanes.normal.len(), unpin: lanes.unpin.len() }
    }

    /// Per-lane bound.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::cid;
    use std::sync::Arc;
    use std::time::Duration;

    fn job(n: u32) -> Job {
        Job { cid: cid(n), generation: u64::from(n) }
    }

    #[tokio::test]
    async fn priority_lane_drains_first_and_lanes_are_bounded() {
        let queues = OpQueues::new(2);
        queues.push(Lane::Normal, job(1)).expect("room");
        queues.push(Lane::Normal, job(2)).expect("room");
        assert_eq!(queues.push(Lane::Normal, job(3)), Err(QueueFull));
        queues.push(Lane::Priority, job(4)).expect("lanes are bounded separately");
        assert_eq!(queues.depths(), Depths { priority: 1, normal: 2, unpin: 0 });
        assert_eq!(queues.next_pin().await, job(4));
        assert_eq!(queues.next_pin().await, job(1));
        assert_eq!(queues.next_pin().await, job(2));
    }

    #[tokio::test]
    async fn waiting_workers_all_wake_up() {
        let queues = Arc::new(OpQueues::new(10));
        let workers: Vec<_> = (0..3)
            .map(|_| {
                let queues = Arc::clone(&queues);
                tokio::spawn(async move { queues.next_pin().await })
            })
            .collect();
        tokio::task::yield_now().await;
        for n in 0..3 {
            queues.push(Lane::Normal, job(n)).expect("room");
        }
        let mut got = Vec::new();
        for worker in workers {
            let job = tokio::time::timeout(Duration::from_secs(5), worker).await.expect("woken").expect("no panic");
            got.push(job.generation);
        }
        got.sort_unstable();
        assert_eq!(got, vec![0, 1, 2]);
        let unpin_queues = Arc::clone(&queues);
        let unpin_worker = tokio::spawn(async move { unpin_queues.next_unpin().await });
        queues.push(Lane::Unpin, job(9)).expect("room");
        let unpinned = tokio::time::timeout(Duration::from_secs(5), unpin_worker).await.expect("woken").expect("no panic");
        assert_eq!(unpinned, job(9));
    }
}
