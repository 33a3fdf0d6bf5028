//! Waiting until a pin reaches a status on enough peers (`ipfs-cluster-ctl pin add --wait`).

use std::time::Duration;

use cluster_types::{Cid, GlobalPinInfo, Pin, TrackerStatus};

use crate::error::ClientError;

/// What [`crate::Client::wait_for`] waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitParams {
    /// The pin to watch.
    pub cid: Cid,
    /// The status to reach (`Pinned` after a pin, `Unpinned` after an unpin).
    pub target: TrackerStatus,
    /// How many peers must reach `target`; 0 means every peer (ignoring peers where the
    /// pin is `remote` when the target is `Pinned`).
    pub limit: usize,
    /// Ask only the contacted peer.
    pub local: bool,
    /// Time between two status polls (the first poll happens after one interval).
    pub interval: Duration,
    /// Give up with [`ClientError::Timeout`] after this long (`None`: wait forever).
    pub timeout: Option<Duration>,
}

impl WaitParams {
    /// Waits for `target` on every peer, polling every second, without time limit.
    pub fn new(cid: Cid, target: TrackerStatus) -> Self {
        WaitParams { cid, target, limit: 0, local: false, interval: Duration::from_secs(1), timeout: None }
    }
}

/// The default `limit` when waiting for a pin to be pinned: its minimum replication factor,
/// or 0 (every peer that must pin it) for pin-everywhere and cluster-default factors.
pub fn default_pin_limit(pin: &Pin) -> usize {
    pin.options.replication_factor_min.max(0) as usize
}

/// Decides whether `status` satisfies the wait, following the original client:
/// any peer in `undefined`, `cluster_error`, `pin_error` or `unpin_error` fails the wait;
/// with a `limit`, at least that many peers must be in `target`; without, every peer must
/// be (peers with a `remote` copy are skipped when waiting for `pinned`).
pub fn status_reached(target: TrackerStatus, status: &GlobalPinInfo, limit: usize) -> Result<bool, ClientError> {
    for (peer, info) in &status.peer_map {
        if matches!(
            info.status,
            TrackerStatus::Undefined | TrackerStatus::ClusterError | TrackerStatus::PinError | TrackerStatus::UnpinError
        ) {
            let who = if info.peername.is_empty() { peer.as_str() } else { info.peername.as_str() };
            let detail = if info.error.is_empty() { String::new() } else { format!(": {}", info.error) };
            return Err(ClientError::WaitFailed(format!(
                "error while waiting for {} to become {}: peer {} is {}{}",
                status.cid, target, who, info.status, detail
            )));
        }
    }
    if limit > 0 {
        let reached = status.peer_map.values().filter(|i| i.status == target).count();
        return Ok(reached >= limit);
    }
    Ok(status
        .peer_map
        .values()
        .all(|i| i.status == target || (target == TrackerStatus::Pinned && i.status == TrackerStatus::Remote)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster_types::{PinInfoShort, Timestamp};
    use std::collections::BTreeMap;

    fn gpi(statuses: &[TrackerStatus]) -> GlobalPinInfo {
        let mut peer_map = BTreeMap::new();
        for (i, s) in statuses.iter().enumerate() {
            peer_map.insert(
                format!("peer{i}"),
                PinInfoShort {
                    peername: format!("p{i}"),
                    ipfs_peer_id: String::new(),
                    ipfs_peer_addresses: vec![],
                    status: *s,
                    timestamp: Timestamp::zero(),
                    error: String::new(),
                    attempt_count: 0,
                    priority_pin: false,
                },
            );
        }
        GlobalPinInfo {
            cid: "bafkqaaa".parse().unwrap(),
            name: String::new(),
            allocations: vec![],
            origins: vec![],
            created: Timestamp::zero(),
            metadata: BTreeMap::new(),
            peer_map,
        }
    }

    #[test]
    fn reached_rules() {
        use TrackerStatus::*;
        assert!(status_reached(Pinned, &gpi(&[Pinned, Remote]), 0).unwrap());
        assert!(!status_reached(Pinned, &gpi(&[Pinned, Pinning]), 0).unwrap());
        assert!(status_reached(Pinned, &gpi(&[Pinned, Pinning]), 1).unwrap());
        assert!(!status_reached(Pinned, &gpi(&[Pinned, Pinning]), 2).unwrap());
        assert!(!status_reached(Unpinned, &gpi(&[Unpinned, Remote]), 0).unwrap());
        assert!(status_reached(Unpinned, &gpi(&[Unpinned, Unpinned]), 0).unwrap());
        assert!(status_reached(Pinned, &gpi(&[Pinned, PinError]), 1).is_err());
        assert!(status_reached(Pinned, &gpi(&[Undefined]), 0).is_err());
    }
}
