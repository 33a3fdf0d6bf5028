//! How a pin's status on this peer follows from the operation tracker, the shared state and
//! IPFS (§1.6, §5.5 of the reference), and which pins jump the queue.
//!
//! Pure functions on plain data: the actor gathers the three inputs and calls them, tests
//! call them directly.

use std::time::Duration;

use chrono::{DateTime, Utc};
use cluster_ipfs::IpfsPinStatus;
use cluster_types::{Pin, PinMode, PinType, TrackerStatus};

use crate::optracker::Operation;

/// Derives the status of one CID on this peer.
///
/// An operation that is queued, running or failed wins, because it says what the peer is
/// about to do (or failed to do) regardless of what IPFS holds right now. Otherwise the
/// shared state decides whether the CID concerns this peer at all, and only then does IPFS
/// say whether it is actually pinned with the expected depth. `ipfs` is `None` when IPFS was
/// not asked (see [`needs_ipfs_lookup`]); a pin that needed the lookup then counts as
/// unexpectedly unpinned, so callers pass the lookup result whenever they have one.
pub fn derive_status(
    op: Option<&Operation>,
    state_pin: Option<&Pin>,
    ipfs: Option<IpfsPinStatus>,
    self_peer: &str,
) -> TrackerStatus {
    if let Some(status) = op.and_then(Operation::status) {
        return status;
    }
    let Some(pin) = state_pin else {
        return TrackerStatus::Unpinned;
    };
    if pin.pin_type == PinType::Meta {
        return TrackerStatus::Sharded;
    }
    if !pin.is_allocated_to(self_peer) {
        return TrackerStatus::Remote;
    }
    match ipfs {
        Some(ipfs_status) if satisfies(ipfs_status, pin.mode()) => TrackerStatus::Pinned,
        _ => TrackerStatus::UnexpectedlyUnpinned,
    }
}

/// True when [`derive_status`] would look at the IPFS status, so callers skip the (remote,
/// possibly slow) IPFS call for everything else.
pub fn needs_ipfs_lookup(op: Option<&Operation>, state_pin: Option<&Pin>, self_peer: &str) -> bool {
    if op.and_then(Operation::status).is_some() {
        return false;
    }
    match state_pin {
        Some(pin) => pin.pin_type != PinType::Meta && pin.is_allocated_to(self_peer),
        None => false,
    }
}

/// True when what IPFS holds is at least what the pin asks for: a recursive pin also covers
/// the root block, so it satisfies a direct pin, but not the other way round. Depth-limited
/// pins (shards) are pinned recursively by the connector, so they expect a recursive pin.
pub fn satisfies(ipfs_status: IpfsPinStatus, expected: PinMode) -> bool {
    match expected {
        PinMode::Recursive => ipfs_status == IpfsPinStatus::Recursive,
        PinMode::Direct => matches!(ipfs_status, IpfsPinStatus::Direct | IpfsPinStatus::Recursive),
    }
}

/// The connector mode used to pin `pin`.
pub fn ipfs_mode(pin: &Pin) -> cluster_ipfs::PinMode {
    connector_mode(pin.mode())
}

/// The connector mode used to pin with `mode` (what an operation remembers of its pin).
pub fn connector_mode(mode: PinMode) -> cluster_ipfs::PinMode {
    match mode {
        PinMode::Recursive => cluster_ipfs::PinMode::Recursive,
        PinMode::Direct => cluster_ipfs::PinMode::Direct,
    }
}

/// Decides whether a pin goes through the priority queue: fresh pins that have not failed
/// often. Fresh pins are what users are waiting for; pins that keep failing (content nobody
/// provides) must not starve them, so they drop to the normal queue after
/// `max_retries` failures.
pub fn is_priority(pin: &Pin, attempts: u32, max_age: Duration, max_retries: u32) -> bool {
    is_priority_at(pin, attempts, max_age, max_retries, Utc::now())
}

/// [`is_priority`] at a given time, for tests and for callers that already read the clock.
pub fn is_priority_at(pin: &Pin, attempts: u32, max_age: Duration, max_retries: u32, now: DateTime<Utc>) -> bool {
    // An unset timestamp means "age unknown": treated as old, as the original does.
    let Some(created) = pin.timestamp.0 else {
        return false;
    };
    let Ok(max_age) = chrono::Duration::from_std(max_age) else {
        // An age too large for chrono is effectively "always young".
        return attempts <= max_retries;
    };
    let is_young = now < created + max_age;
    is_young && attempts <= max_retries
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optracker::{OperationKind, OperationTracker, Phase};
    use crate::test_support::cid;
    use cluster_types::Timestamp;
    use proptest::prelude::*;

    const SELF: &str = "self-peer";

    fn allocated_pin(mode: PinMode) -> Pin {
        let mut pin = Pin::new(cid(1));
        pin.max_depth = mode.max_depth();
        pin.allocations = vec![SELF.to_string(), "other".to_string()];
        pin
    }

    fn op(kind: OperationKind, phase: Phase) -> Operation {
        let mut tracker = OperationTracker::new();
        tracker.track(kind, &allocated_pin(PinMode::Recursive), Timestamp::now(), |_, _| false);
        let generation = tracker.get(&cid(1)).map(|op| op.generation).expect("tracked");
        match phase {
            Phase::Queued => {}
            Phase::InProgress => {
                tracker.start(&cid(1), generation, Timestamp::now());
            }
            Phase::Error => {
                tracker.fail(&cid(1), generation, "boom".into(), true, Timestamp::now());
            }
            Phase::Done => {
                let mut done = tracker.get(&cid(1)).cloned().expect("tracked");
                done.phase = Phase::Done;
                return done;
            }
        }
        tracker.get(&cid(1)).cloned().expect("tracked")
    }

    #[test]
    fn operations_win() {
        let pin = allocated_pin(PinMode::Recursive);
        let pinned = Some(IpfsPinStatus::Recursive);
        let cases = [
            (OperationKind::Pin, Phase::Queued, TrackerStatus::PinQueued),
            (OperationKind::Pin, Phase::InProgress, TrackerStatus::Pinning),
            (OperationKind::Pin, Phase::Error, TrackerStatus::PinError),
            (OperationKind::Unpin, Phase::Queued, TrackerStatus::UnpinQueued),
            (OperationKind::Unpin, Phase::InProgress, TrackerStatus::Unpinning),
            (OperationKind::Unpin, Phase::Error, TrackerStatus::UnpinError),
            (OperationKind::Remote, Phase::InProgress, TrackerStatus::Remote),
            (OperationKind::Pin, Phase::Done, TrackerStatus::Pinned),
        ];
        for (kind, phase, expected) in cases {
            let operation = op(kind, phase);
            assert_eq!(derive_status(Some(&operation), Some(&pin), pinned, SELF), expected, "{kind:?} {phase:?}");
        }
    }

    #[test]
    fn state_and_ipfs_decide_without_operation() {
        let recursive = allocated_pin(PinMode::Recursive);
        let direct = allocated_pin(PinMode::Direct);
        assert_eq!(derive_status(None, None, Some(IpfsPinStatus::Recursive), SELF), TrackerStatus::Unpinned);
        assert_eq!(derive_status(None, Some(&recursive), Some(IpfsPinStatus::Recursive), SELF), TrackerStatus::Pinned);
        assert_eq!(
            derive_status(None, Some(&recursive), Some(IpfsPinStatus::Direct), SELF),
            TrackerStatus::UnexpectedlyUnpinned
        );
        assert_eq!(
            derive_status(None, Some(&recursive), Some(IpfsPinStatus::Indirect), SELF),
            TrackerStatus::UnexpectedlyUnpinned
        );
        assert_eq!(derive_status(None, Some(&direct), Some(IpfsPinStatus::Recursive), SELF), TrackerStatus::Pinned);
        assert_eq!(derive_status(None, Some(&direct), Some(IpfsPinStatus::Direct), SELF), TrackerStatus::Pinned);
        assert_eq!(
            derive_status(None, Some(&direct), Some(IpfsPinStatus::Unpinned), SELF),
            TrackerStatus::UnexpectedlyUnpinned
        );
        assert_eq!(derive_status(None, Some(&direct), None, SELF), TrackerStatus::UnexpectedlyUnpinned);

        let mut meta = recursive.clone();
        meta.pin_type = PinType::Meta;
        assert_eq!(derive_status(None, Some(&meta), None, SELF), TrackerStatus::Sharded);

        let mut remote = recursive.clone();
        remote.allocations = vec!["other".to_string()];
        assert_eq!(derive_status(None, Some(&remote), Some(IpfsPinStatus::Recursive), SELF), TrackerStatus::Remote);

        let mut everywhere = remote.clone();
        everywhere.allocations.clear();
        everywhere.options.replication_factor_min = -1;
        everywhere.options.replication_factor_max = -1;
        assert_eq!(derive_status(None, Some(&everywhere), Some(IpfsPinStatus::Recursive), SELF), TrackerStatus::Pinned);
    }

    #[test]
    fn priority_needs_youth_and_few_retries() {
        let now = Utc::now();
        let day = Duration::from_secs(24 * 3600);
        let mut pin = allocated_pin(PinMode::Recursive);
        pin.timestamp = Timestamp(Some(now - chrono::Duration::hours(1)));
        assert!(is_priority_at(&pin, 0, day, 5, now));
        assert!(is_priority_at(&pin, 5, day, 5, now));
        assert!(!is_priority_at(&pin, 6, day, 5, now));
        pin.timestamp = Timestamp(Some(now - chrono::Duration::hours(25)));
        assert!(!is_priority_at(&pin, 0, day, 5, now));
        pin.timestamp = Timestamp::zero();
        assert!(!is_priority_at(&pin, 0, day, 5, now));
    }

    fn ipfs_strategy() -> impl Strategy<Value = Option<IpfsPinStatus>> {
        prop_oneof![
            Just(None),
            Just(Some(IpfsPinStatus::Recursive)),
            Just(Some(IpfsPinStatus::Direct)),
            Just(Some(IpfsPinStatus::Indirect)),
            Just(Some(IpfsPinStatus::Unpinned)),
        ]
    }

    fn pin_strategy() -> impl Strategy<Value = Option<Pin>> {
        let pin_type = prop_oneof![Just(PinType::Data), Just(PinType::Meta), Just(PinType::Shard), Just(PinType::ClusterDag)];
        let depth = prop_oneof![Just(-1), Just(0), Just(1)];
        let allocated = any::<bool>();
        let everywhere = any::<bool>();
        proptest::option::of((pin_type, depth, allocated, everywhere).prop_map(|(pin_type, depth, allocated, everywhere)| {
            let mut pin = Pin::new(cid(1));
            pin.pin_type = pin_type;
            pin.max_depth = depth;
            pin.allocations = if allocated { vec![SELF.to_string()] } else { vec!["other".to_string()] };
            if everywhere {
                pin.options.replication_factor_min = -1;
                pin.options.replication_factor_max = -1;
            }
            pin
        }))
    }

    fn op_strategy() -> impl Strategy<Value = Option<Operation>> {
        let kind = prop_oneof![Just(OperationKind::Pin), Just(OperationKind::Unpin), Just(OperationKind::Remote)];
        let phase = prop_oneof![Just(Phase::Queued), Just(Phase::InProgress), Just(Phase::Error), Just(Phase::Done)];
        proptest::option::of((kind, phase).prop_map(|(kind, phase)| op(kind, phase)))
    }

    proptest! {
        /// IPFS is only consulted when `needs_ipfs_lookup` says so, and then only
        /// pinned / unexpectedly_unpinned can come out.
        #[test]
        fn ipfs_matters_only_when_looked_up(
            operation in op_strategy(),
            pin in pin_strategy(),
            first in ipfs_strategy(),
            second in ipfs_strategy(),
        ) {
            let a = derive_status(operation.as_ref(), pin.as_ref(), first, SELF);
            let b = derive_status(operation.as_ref(), pin.as_ref(), second, SELF);
            if needs_ipfs_lookup(operation.as_ref(), pin.as_ref(), SELF) {
                prop_assert!(matches!(a, TrackerStatus::Pinned | TrackerStatus::UnexpectedlyUnpinned));
            } else {
                prop_assert_eq!(a, b);
            }
            if let Some(op_status) = operation.as_ref().and_then(Operation::status) {
                prop_assert_eq!(a, op_status);
            }
            prop_assert_ne!(a, TrackerStatus::Undefined);
            prop_assert_ne!(a, TrackerStatus::ClusterError);
        }

        /// Exactly the statuses the op-only filter covers come from operations.
        #[test]
        fn operation_statuses_are_operation_states(operation in op_strategy()) {
            if let Some(status) = operation.as_ref().and_then(Operation::status)
                && status != TrackerStatus::Remote
            {
                let filter = cluster_types::TrackerStatusFilter::parse(status.as_str()).expect("known status");
                prop_assert!(filter.only_operation_states());
            }
        }
    }
}
