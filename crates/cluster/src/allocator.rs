//! Allocation: which peers must pin a CID (§10 rules, balanced ordering of §1.9), as pure functions.

use std::collections::BTreeMap;

use cluster_types::Metric;

/// Why no allocation could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    /// Fewer usable peers than the minimum replication factor.
    #[error(
        "not enough peers to allocate CID. Needed at least: {needed}. Wanted at most: {wanted}. Available candidates: {available}. See logs for more info."
    )]
    NotEnoughPeers {
        /// Peers still needed.
        needed: usize,
        /// Peers wanted at most.
        wanted: usize,
        /// Usable peers found.
        available: usize,
    },
}

/// Inputs of one allocation.
#[derive(Debug, Clone)]
pub struct AllocationRequest<'a> {
    /// Minimum replication factor (already defaulted; -1 means everywhere).
    pub rf_min: i32,
    /// Maximum replication factor.
    pub rf_max: i32,
    /// Peers currently holding the pin.
    pub current: &'a [String],
    /// User-requested peers, tried first.
    pub priority: &'a [String],
    /// Peers that must not be chosen (e.g. one that went down).
    pub blacklist: &'a [String],
    /// For each `allocate_by` metric in order: the latest valid metric per peer.
    pub metrics: &'a [(String, BTreeMap<String, Metric>)],
}

/// Chooses allocations: keeps current ones while they satisfy the minimum, fills up to the
/// maximum from priority peers then from the rest in balanced order.
pub fn allocate(req: &AllocationRequest<'_>) -> Result<Vec<String>, AllocError> {
    if req.rf_min == -1 && req.rf_max == -1 {
        return Ok(Vec::new());
    }
    let usable = |p: &String| {
        !req.blacklist.contains(p) && req.metrics.iter().all(|(_, by_peer)| by_peer.contains_key(p))
    };
    let current: Vec<String> = req.current.iter().filter(|p| usable(p)).cloned().collect();
    let priority: Vec<String> =
        req.priority.iter().filter(|p| usable(p) && !current.contains(p)).cloned().collect();
    let mut all_peers: Vec<String> = match req.metrics.first() {
        Some((_, by_peer)) => by_peer.keys().cloned().collect(),
        None => Vec::new(),
    };
    all_peers.retain(|p| usable(p) && !current.contains(p) && !priority.contains(p));

    let min = req.rf_min.max(0) as usize;
    let max = req.rf_max.max(0) as usize;
    if current.len() > max {
        let mut kept = current;
        kept.truncate(max);
        return Ok(kept);
    }
    let needed = min.saturating_sub(current.len());
    let wanted = max - current.len();
    if needed == 0 && !current.is_empty() {
        return Ok(current);
    }
    let available = priority.len() + all_peers.len();
    if available < needed {
        return Err(AllocError::NotEnoughPeers { needed, wanted, available });
    }
    let mut ordered = balanced_order(priority, req.metrics);
    ordered.extend(balanced_order(all_peers, req.metrics));
    ordered.truncate(wanted);
    let mut out = current;
    out.extend(ordered);
    Ok(out)
}

/// Orders peers by the metric hierarchy: partitionable metrics (tags) split peers into groups
/// visited round-robin so replicas spread across values; other metrics sort by weight.
pub fn balanced_order(peers: Vec<String>, metrics: &[(String, BTreeMap<String, Metric>)]) -> Vec<String> {
    order_level(peers, metrics, 0)
}

fn order_level(mut peers: Vec<String>, metrics: &[(String, BTreeMap<String, Metric>)], level: usize) -> Vec<String> {
    let Some((_, by_peer)) = metrics.get(level) else {
        peers.sort();
        return peers;
    };
    let weight = |p: &String| by_peer.get(p).map(|m| m.weight).unwrap_or(i64::MIN);
    let partitionable = peers.iter().any(|p| by_peer.get(p).is_some_and(|m| m.partitionable));
    if !partitionable {
        peers.sort_by(|a, b| weight(b).cmp(&weight(a)).then_with(|| a.cmp(b)));
        return peers;
    }
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in peers {
        let value = by_peer.get(&p).map(|m| m.value.clone()).unwrap_or_default();
        groups.entry(value).or_default().push(p);
    }
    // Each group is ordered by the next level; groups go by total weight, then by the weight of
    // their best member (the aggregated sub-partition weight), then by value.
    let mut ordered: Vec<(i64, i64, String, Vec<String>)> = groups
        .into_iter()
        .map(|(value, members)| {
            let total: i64 = members.iter().map(|p| weight(p).max(0)).sum();
            let sub = order_level(members, metrics, level + 1);
            let best = sub.first().map(|p| sub_weight(p, metrics, level + 1)).unwrap_or(0);
            (total, best, value, sub)
        })
        .collect();
    ordered.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)).then_with(|| a.2.cmp(&b.2)));
    let mut lists: Vec<std::collections::VecDeque<String>> = ordered.into_iter().map(|g| g.3.into()).collect();
    let mut out = Vec::new();
    while lists.iter().any(|l| !l.is_empty()) {
        for l in lists.iter_mut() {
            if let Some(p) = l.pop_front() {
                out.push(p);
            }
        }
    }
    out
}

fn sub_weight(peer: &str, metrics: &[(String, BTreeMap<String, Metric>)], level: usize) -> i64 {
    metrics.get(level).and_then(|(_, by_peer)| by_peer.get(peer)).map(|m| m.weight).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn freespace(peers: &[(&str, i64)]) -> (String, BTreeMap<String, Metric>) {
        let m = peers
            .iter()
            .map(|(p, w)| {
                (p.to_string(), Metric { name: "freespace".into(), peer: p.to_string(), weight: *w, valid: true, ..Default::default() })
            })
            .collect();
        ("freespace".into(), m)
    }

    fn tags(peers: &[(&str, &str)]) -> (String, BTreeMap<String, Metric>) {
        let m = peers
            .iter()
            .map(|(p, v)| {
                (
                    p.to_string(),
                    Metric { name: "tag:group".into(), peer: p.to_string(), value: v.to_string(), partitionable: true, valid: true, ..Default::default() },
                )
            })
            .collect();
        ("tag:group".into(), m)
    }

    #[test]
    fn everywhere_has_no_allocations() {
        let metrics = vec![freespace(&[("A", 1)])];
        let req = AllocationRequest { rf_min: -1, rf_max: -1, current: &[], priority: &[], blacklist: &[], metrics: &metrics };
        assert_eq!(allocate(&req).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn not_enough_peers_uses_original_message() {
        let metrics = vec![freespace(&[("A", 1)])];
        let req = AllocationRequest { rf_min: 2, rf_max: 3, current: &[], priority: &[], blacklist: &[], metrics: &metrics };
        let err = allocate(&req).unwrap_err().to_string();
        assert!(err.starts_with("not enough peers to allocate CID. Needed at least: 2. Wanted at most: 3. Available candidates: 1."), "{err}");
    }

    #[test]
    fn prefers_free_space_and_priority() {
        let metrics = vec![freespace(&[("A", 10), ("B", 30), ("C", 20)])];
        let req = AllocationRequest { rf_min: 1, rf_max: 2, current: &[], priority: &[], blacklist: &[], metrics: &metrics };
        assert_eq!(allocate(&req).unwrap(), vec!["B", "C"]);
        let prio = vec!["A".to_string()];
        let req = AllocationRequest { priority: &prio, ..req };
        assert_eq!(allocate(&req).unwrap(), vec!["A", "B"]);
    }

    #[test]
    fn keeps_current_when_minimum_is_met() {
        let metrics = vec![freespace(&[("A", 10), ("B", 30), ("C", 20)])];
        let cur = vec!["A".to_string()];
        let req = AllocationRequest { rf_min: 1, rf_max: 3, current: &cur, priority: &[], blacklist: &[], metrics: &metrics };
        assert_eq!(allocate(&req).unwrap(), vec!["A"]);
        let black = vec!["A".to_string()];
        let req = AllocationRequest { blacklist: &black, ..req };
        assert_eq!(allocate(&req).unwrap(), vec!["B", "C"]);
    }

    #[test]
    fn tags_spread_replicas_across_groups() {
        let metrics = vec![
            tags(&[("A", "eu"), ("B", "eu"), ("C", "us")]),
            freespace(&[("A", 10), ("B", 30), ("C", 5)]),
        ];
        let order = balanced_order(vec!["A".into(), "B".into(), "C".into()], &metrics);
        assert_eq!(order.len(), 3);
        assert_ne!(order[0].starts_with('C'), order[1].starts_with('C'), "first two must be in different groups: {order:?}");
        assert_eq!(order[0], "B");
    }

    proptest! {
        #[test]
        fn allocation_respects_bounds(weights in proptest::collection::vec(0i64..1000, 1..12), min in 1i32..5, extra in 0i32..4) {
            let names: Vec<String> = (0..weights.len()).map(|i| format!("P{i}")).collect();
            let pairs: Vec<(&str, i64)> = names.iter().map(String::as_str).zip(weights.iter().copied()).collect();
            let metrics = vec![freespace(&pairs)];
            let max = min + extra;
            let req = AllocationRequest { rf_min: min, rf_max: max, current: &[], priority: &[], blacklist: &[], metrics: &metrics };
            match allocate(&req) {
                Ok(a) => {
                    prop_assert!(a.len() >= min as usize && a.len() <= max as usize);
                    let mut d = a.clone(); d.sort(); d.dedup();
                    prop_assert_eq!(d.len(), a.len());
                    for w in a.windows(2) {
                        let wa = metrics[0].1[&w[0]].weight; let wb = metrics[0].1[&w[1]].weight;
                        prop_assert!(wa >= wb);
                    }
                }
                Err(_) => prop_assert!(weights.len() < min as usize),
            }
        }
    }
}
