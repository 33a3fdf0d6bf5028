//! The in-memory pinset, for tests and benchmarks.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, PoisonError, RwLock};

use cluster_types::{Cid, Pin};

use crate::{Durability, PinIter, StateError, StateOp, StateStore};

type Map = BTreeMap<Vec<u8>, Pin>;

/// How many pins a listing copies out per lock acquisition: big enough to amortise the
/// lock, small enough that a listing never holds much memory or blocks writers for long.
const LIST_CHUNK: usize = 256;

/// A pinset in a `BTreeMap` keyed by CID bytes (so it lists in the same order as
/// [`crate::FjallState`]). Nothing is persisted; `persist` is a no-op. Clones share the
/// same map, so a test can keep a handle while a component owns another.
#[derive(Debug, Default, Clone)]
pub struct MemState {
    map: Arc<RwLock<Map>>,
}

impl MemState {
    /// An empty pinset.
    pub fn new() -> Self {
        Self::default()
    }
}

impl StateStore for MemState {
    fn get(&self, cid: &Cid) -> Result<Option<Pin>, StateError> {
        let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
        Ok(map.get(&cid.to_bytes()).cloned())
    }

    fn has(&self, cid: &Cid) -> Result<bool, StateError> {
        let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
        Ok(map.contains_key(&cid.to_bytes()))
    }

    fn apply(&self, ops: &[StateOp]) -> Result<(), StateError> {
        // Encode keys before taking the lock; the whole batch lands under one write lock,
        // which is what makes it atomic for readers.
        let keyed: Vec<(Vec<u8>, &StateOp)> = ops.iter().map(|op| (op.cid().to_bytes(), op)).collect();
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        for (key, op) in keyed {
            match op {
                StateOp::Put(pin) => {
                    map.insert(key, pin.clone());
                }
                StateOp::Remove(_) => {
                    map.remove(&key);
                }
            }
        }
        Ok(())
    }

    fn list(&self) -> PinIter {
        Box::new(Cursor { map: Arc::clone(&self.map), buf: Vec::new().into_iter(), after: None, done: false })
    }

    fn len(&self) -> Result<u64, StateError> {
        let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
        Ok(map.len() as u64)
    }

    fn persist(&self, _durability: Durability) -> Result<(), StateError> {
        Ok(())
    }

    fn clear(&self) -> Result<(), StateError> {
        self.map.write().unwrap_or_else(PoisonError::into_inner).clear();
        Ok(())
    }
}

/// Walks the map in chunks, remembering the last key, so no lock is held between chunks.
struct Cursor {
    map: Arc<RwLock<Map>>,
    buf: std::vec::IntoIter<Pin>,
    after: Option<Vec<u8>>,
    done: bool,
}

impl Cursor {
    fn refill(&mut self) {
        let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
        let lower = match &self.after {
            None => Bound::Unbounded,
            Some(k) => Bound::Excluded(k.as_slice()),
        };
        let chunk: Vec<(&Vec<u8>, &Pin)> = map.range::<[u8], _>((lower, Bound::Unbounded)).take(LIST_CHUNK).collect();
        self.done = chunk.len() < LIST_CHUNK;
        self.after = chunk.last().map(|(k, _)| (*k).clone());
        self.buf = chunk.into_iter().map(|(_, p)| p.clone()).collect::<Vec<_>>().into_iter();
    }
}

impl Iterator for Cursor {
    type Item = Result<Pin, StateError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(p) = self.buf.next() {
            return Some(Ok(p));
        }
        if self.done {
            return None;
        }
        self.refill();
        self.buf.next().map(Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance;

    #[test]
    fn conformance_suite() {
        conformance::run_all(&MemState::new());
    }
}
