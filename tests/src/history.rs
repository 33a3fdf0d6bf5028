//! A linearizability checker for pin/unpin histories, one set-membership register per CID.
//!
//! Clients record every operation they issue: who, pin or unpin, which CID, when it was
//! invoked and when (if ever) it was acknowledged. After the run the final state is read from
//! every peer. The history is linearizable when, for each CID, the acknowledged operations
//! (plus any subset of the unacknowledged ones, which may or may not have taken effect) can be
//! put in one total order that respects real-time order (an operation that finished before
//! another started comes first) and whose last write leaves the CID in its final state.
//!
//! Pin and unpin are blind writes, so a linearization's outcome depends only on its last
//! operation. An operation can come last exactly when no other included operation is forced
//! after it, i.e. when no *acknowledged* operation was invoked after it responded
//! (unacknowledged ones can be left out, and an unacknowledged operation never responded, so
//! nothing is forced after it). [`check`] uses that, which keeps it linear per CID; a
//! brute-force search over orders ([`check_brute_force`]) cross-checks it in the unit tests.

use std::collections::BTreeMap;
use std::time::Instant;

/// Pin or unpin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Makes the CID present.
    Pin,
    /// Makes the CID absent.
    Unpin,
}

impl Kind {
    fn effect(self) -> bool {
        self == Kind::Pin
    }
}

/// One client operation.
#[derive(Debug, Clone)]
pub struct Op {
    /// The issuing client (for reports).
    pub client: usize,
    /// What it did.
    pub kind: Kind,
    /// On which CID.
    pub cid: String,
    /// Invocation time, in nanoseconds since the history's origin.
    pub invoke: u64,
    /// Acknowledgement time; `None` when the operation failed or its outcome is unknown
    /// (it may or may not have taken effect).
    pub response: Option<u64>,
}

/// How one operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged: it took effect between invocation and response.
    Acked,
    /// Refused before anything was written: it certainly had no effect.
    Rejected,
    /// Failed or timed out: it may or may not have taken effect.
    Unknown,
}

/// Records operations from concurrent clients against one clock origin.
pub struct Recorder {
    origin: Instant,
    ops: std::sync::Mutex<Vec<Op>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder { origin: Instant::now(), ops: std::sync::Mutex::new(Vec::new()) }
    }
}

impl Recorder {
    /// Nanoseconds since the origin.
    pub fn now(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }

    /// Runs `f` as one operation and records it according to the outcome `f` reports.
    pub fn run(&self, client: usize, kind: Kind, cid: &str, f: impl FnOnce() -> Outcome) -> Outcome {
        let invoke = self.now();
        let outcome = f();
        let response = match outcome {
            Outcome::Acked => Some(self.now()),
            Outcome::Unknown => None,
            // A request refused before any write (e.g. unpinning an absent CID) has no effect
            // at all: leaving it out is exact.
            Outcome::Rejected => return outcome,
        };
        self.ops.lock().unwrap().push(Op { client, kind, cid: cid.to_string(), invoke, response });
        outcome
    }

    /// Everything recorded so far.
    pub fn ops(&self) -> Vec<Op> {
        self.ops.lock().unwrap().clone()
    }
}

/// Why a history is not linearizable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The CID whose register misbehaved.
    pub cid: String,
    /// Present in the final state?
    pub final_present: bool,
    /// Human-readable explanation.
    pub reason: String,
}

/// Checks a history against the final state (the set of CIDs present). Every CID that some
/// operation touched is checked; CIDs are absent before the history starts.
pub fn check(ops: &[Op], final_state: &std::collections::BTreeSet<String>) -> Result<(), Vec<Violation>> {
    let mut violations = Vec::new();
    for (cid, ops) in by_cid(ops) {
        let present = final_state.contains(cid);
        if !possible_finals(&ops).contains(&present) {
            violations.push(Violation {
                cid: cid.to_string(),
                final_present: present,
                reason: explain(&ops, present),
            });
        }
    }
    if violations.is_empty() {
        Ok(())
    } else {
        Err(violations)
    }
}

fn by_cid(ops: &[Op]) -> BTreeMap<&str, Vec<&Op>> {
    let mut m: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in ops {
        m.entry(op.cid.as_str()).or_default().push(op);
    }
    m
}

/// The final presences some linearization of one CID's operations can produce.
fn possible_finals(ops: &[&Op]) -> Vec<bool> {
    let latest_ack_invoke = ops.iter().filter(|o| o.response.is_some()).map(|o| o.invoke).max();
    let mut finals = Vec::new();
    if latest_ack_invoke.is_none() {
        finals.push(false); // nothing need have happened
    }
    for o in ops {
        // `o` is last unless an acknowledged op began after it was acknowledged.
        let can_be_last = match (o.response, latest_ack_invoke) {
            (Some(r), Some(inv)) => inv <= r,
            _ => true,
        };
        if can_be_last && !finals.contains(&o.kind.effect()) {
            finals.push(o.kind.effect());
        }
    }
    finals
}

fn explain(ops: &[&Op], present: bool) -> String {
    let mut acked: Vec<_> = ops.iter().filter(|o| o.response.is_some()).collect();
    acked.sort_by_key(|o| o.invoke);
    let last: Vec<String> = acked
        .iter()
        .rev()
        .take(4)
        .map(|o| format!("client {} {:?} [{}..{}]", o.client, o.kind, o.invoke, o.response.unwrap_or(u64::MAX)))
        .collect();
    format!(
        "final state {} fits no linearization of {} ops ({} acknowledged); latest acknowledged: {}",
        if present { "present" } else { "absent" },
        ops.len(),
        acked.len(),
        last.join(", ")
    )
}

/// Exhaustive reference: tries every subset of unacknowledged ops and every order consistent
/// with real time. Exponential; for small hand-made histories only.
pub fn check_brute_force(ops: &[Op], final_state: &std::collections::BTreeSet<String>) -> bool {
    by_cid(ops).into_iter().all(|(cid, ops)| {
        let want = final_state.contains(cid);
        let n = ops.len();
        assert!(n <= 10, "brute force is for small histories");
        let unknown: Vec<usize> = (0..n).filter(|&i| ops[i].response.is_none()).collect();
        (0..1u32 << unknown.len()).any(|mask| {
            let included: Vec<usize> = (0..n)
                .filter(|&i| match unknown.iter().position(|&u| u == i) {
                    Some(bit) => mask & (1 << bit) != 0,
                    None => true,
                })
                .collect();
            search(&ops, &included, &mut Vec::new(), want)
        })
    })
}

fn search(ops: &[&Op], included: &[usize], order: &mut Vec<usize>, want: bool) -> bool {
    if order.len() == included.len() {
        let last = order.last().map(|&i| ops[i].kind.effect()).unwrap_or(false);
        return last == want;
    }
    for &i in included {
        if order.contains(&i) {
            continue;
        }
        // Every op that finished before `i` began must already be placed.
        let ready = included
            .iter()
            .all(|&j| j == i || order.contains(&j) || !matches!(ops[j].response, Some(r) if r < ops[i].invoke));
        if ready {
            order.push(i);
            if search(ops, included, order, want) {
                return true;
            }
            order.pop();
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn op(client: usize, kind: Kind, invoke: u64, response: Option<u64>) -> Op {
        Op { client, kind, cid: "c".into(), invoke, response }
    }
    fn present() -> BTreeSet<String> {
        ["c".to_string()].into()
    }
    fn absent() -> BTreeSet<String> {
        BTreeSet::new()
    }
    use Kind::{Pin, Unpin};

    #[test]
    fn sequential_history_must_end_with_the_last_write() {
        let h = vec![op(0, Pin, 0, Some(10)), op(1, Unpin, 20, Some(30))];
        assert!(check(&h, &absent()).is_ok());
        let err = check(&h, &present()).unwrap_err();
        assert_eq!(err.len(), 1);
        assert_eq!(err[0].cid, "c");
        assert!(err[0].final_present);
    }

    #[test]
    fn concurrent_writes_may_land_either_way() {
        let h = vec![op(0, Pin, 0, Some(30)), op(1, Unpin, 10, Some(20))];
        assert!(check(&h, &absent()).is_ok());
        assert!(check(&h, &present()).is_ok());
    }

    #[test]
    fn unacknowledged_ops_may_or_may_not_have_happened() {
        let h = vec![op(0, Pin, 0, Some(10)), op(1, Unpin, 20, None)];
        assert!(check(&h, &absent()).is_ok());
        assert!(check(&h, &present()).is_ok());
        // But an acknowledged write after it still wins.
        let h = vec![op(1, Unpin, 0, None), op(0, Pin, 20, Some(30))];
        assert!(check(&h, &present()).is_ok());
        // The unknown unpin may take effect after the pin (it never responded).
        assert!(check(&h, &absent()).is_ok());
        // A CID only ever touched by a failed pin may be absent or present.
        let h = vec![op(0, Pin, 0, None)];
        assert!(check(&h, &absent()).is_ok());
        assert!(check(&h, &present()).is_ok());
    }

    #[test]
    fn a_lost_acknowledged_pin_is_rejected() {
        let h = vec![op(0, Unpin, 0, Some(5)), op(0, Pin, 10, Some(20)), op(1, Pin, 15, Some(40))];
        assert!(check(&h, &absent()).is_err());
        assert!(check(&h, &present()).is_ok());
        // A CID never touched by anyone must not appear (here: none was touched at all).
        assert!(check(&[], &present()).is_ok(), "untouched CIDs are not checked");
    }

    #[test]
    fn per_cid_registers_are_independent() {
        let mut h = vec![op(0, Pin, 0, Some(10))];
        h.push(Op { client: 1, kind: Unpin, cid: "d".into(), invoke: 0, response: Some(10) });
        h.push(Op { client: 1, kind: Pin, cid: "d".into(), invoke: 11, response: Some(12) });
        let both: BTreeSet<String> = ["c".to_string(), "d".to_string()].into();
        assert!(check(&h, &both).is_ok());
        let err = check(&h, &present()).unwrap_err();
        assert_eq!(err.iter().map(|v| v.cid.as_str()).collect::<Vec<_>>(), ["d"]);
    }

    /// The fast check agrees with exhaustive search on many small random histories.
    #[test]
    fn fast_check_matches_brute_force() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let (mut accepted, mut rejected) = (0, 0);
        for _ in 0..3000 {
            let n = rng.gen_range(0..=6);
            let h: Vec<Op> = (0..n)
                .map(|c| {
                    let invoke = rng.gen_range(0..50);
                    let response = rng.gen_bool(0.8).then(|| invoke + rng.gen_range(0..20));
                    op(c, if rng.gen_bool(0.5) { Pin } else { Unpin }, invoke, response)
                })
                .collect();
            for fin in [absent(), present()] {
                let fast = check(&h, &fin).is_ok();
                assert_eq!(fast, check_brute_force(&h, &fin), "disagreement on {h:?} final {fin:?}");
                if fast {
                    accepted += 1
                } else {
                    rejected += 1
                }
            }
        }
        assert!(accepted > 100 && rejected > 100, "random histories too one-sided: {accepted}/{rejected}");
    }
}
