//! The pinset CRDT's pure core: versioned entries, the merge rule, their wire encoding and
//! anti-entropy buckets. No IO here.
//!
//! The pinset is a map CID → entry, each entry a pin or a tombstone. A pin carries its
//! version `(hlc, author)`: a hybrid logical clock reading (microseconds, never going
//! backwards, pushed past every version a peer has merged) and the writing peer's id. A
//! tombstone carries the version *of the pin it removes* — the one its author saw.
//!
//! Entries are totally ordered by `(version, is_tombstone)` and merging keeps the greatest,
//! which makes merge commutative, associative and idempotent (property-tested below):
//! replicas that received the same entries, in any order and any number of times, hold the
//! same map. What that order means:
//!
//! * an unpin beats exactly the pin it saw (same version, tombstone ranks above);
//! * **a pin concurrent with an unpin wins** (add-wins, as the original's go-ds-crdt set):
//!   a pin the unpinning peer had not seen was written after the version it removed — its
//!   author had seen that version, so its clock is past it — and so ranks higher. This does
//!   not depend on wall clocks agreeing between peers;
//! * two concurrent pins of one CID (say, different names): the greater version wins, i.e.
//!   the later by the writers' clocks, ties going to the greater peer id.

use cluster_state::record;
use cluster_types::{Cid, Pin};
use sha2::{Digest, Sha256};

use crate::ConsensusError;

/// Wire format of an encoded batch of entries.
pub const ENTRIES_FORMAT: u8 = 1;
/// Number of anti-entropy buckets.
pub const BUCKETS: u16 = 1024;

/// Who wrote an entry, and when.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Hybrid logical clock reading, in microseconds.
    pub hlc: u64,
    /// Peer id of the writer.
    pub author: String,
}

/// One CRDT entry: the pin, or a tombstone (`pin == None`), at a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key.
    pub cid: Cid,
    /// The version.
    pub version: Version,
    /// The value: a pin, or `None` for a removal.
    pub pin: Option<Pin>,
}

/// True when an entry (`version`, present or tombstone) replaces the current one.
pub fn wins(incoming: &Version, incoming_present: bool, current: Option<(&Version, bool)>) -> bool {
    current.is_none_or(|(v, present)| (incoming, !incoming_present) > (v, !present))
}

/// The bucket of a CID: spread by hash so that buckets are balanced whatever the CIDs.
pub fn bucket(cid_bytes: &[u8]) -> u16 {
    let h = Sha256::digest(cid_bytes);
    u16::from_be_bytes([h[0], h[1]]) % BUCKETS
}

/// The fingerprint of an entry, XOR-ed into its bucket's digest.
pub fn fingerprint(cid_bytes: &[u8], version: &Version, present: bool) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(cid_bytes);
    h.update(version.hlc.to_be_bytes());
    h.update(version.author.as_bytes());
    h.update([u8::from(present)]);
    let full = h.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    out
}

/// XORs `b` into `a`.
pub fn xor_into(a: &mut [u8; 16], b: &[u8; 16]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x ^= y;
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn corrupt(what: &str) -> ConsensusError {
        ConsensusError::Network(format!("malformed crdt entries: {what}"))
    }

    fn byte(&mut self) -> Result<u8, ConsensusError> {
        let (&b, rest) = self.buf.split_first().ok_or_else(|| Self::corrupt("truncated"))?;
        self.buf = rest;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, ConsensusError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Self::corrupt("varint too long"))
    }

    fn bytes(&mut self) -> Result<&'a [u8], ConsensusError> {
        let n = usize::try_from(self.varint()?).map_err(|_| Self::corrupt("length"))?;
        if n > self.buf.len() {
            return Err(Self::corrupt("length past the end"));
        }
        let (b, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(b)
    }

    fn u64(&mut self) -> Result<u64, ConsensusError> {
        if self.buf.len() < 8 {
            return Err(Self::corrupt("truncated"));
        }
        let (b, rest) = self.buf.split_at(8);
        self.buf = rest;
        Ok(u64::from_be_bytes(b.try_into().map_err(|_| Self::corrupt("u64"))?))
    }
}

/// Encodes a version and presence flag (the value of the store's clock keyspace).
pub fn encode_version(version: &Version, present: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(10 + version.author.len());
    out.push(ENTRIES_FORMAT);
    out.extend_from_slice(&version.hlc.to_be_bytes());
    out.push(u8::from(present));
    out.extend_from_slice(version.author.as_bytes());
    out
}

/// Decodes [`encode_version`].
pub fn decode_version(b: &[u8]) -> Result<(Version, bool), ConsensusError> {
    if b.len() < 10 || b[0] != ENTRIES_FORMAT {
        return Err(ConsensusError::Network("malformed crdt clock record".into()));
    }
    let hlc = u64::from_be_bytes(b[1..9].try_into().map_err(|_| ConsensusError::Network("clock".into()))?);
    let present = b[9] == 1;
    let author = String::from_utf8(b[10..].to_vec()).map_err(|_| ConsensusError::Network("clock author".into()))?;
    Ok((Version { hlc, author }, present))
}

/// Encodes entries for gossip and anti-entropy: a format byte, a count, then each entry.
pub fn encode_entries(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + entries.len() * 160);
    out.push(ENTRIES_FORMAT);
    put_varint(&mut out, entries.len() as u64);
    for e in entries {
        put_bytes(&mut out, &e.cid.to_bytes());
        out.extend_from_slice(&e.version.hlc.to_be_bytes());
        put_bytes(&mut out, e.version.author.as_bytes());
        match &e.pin {
            Some(pin) => {
                out.push(1);
                put_bytes(&mut out, &record::encode(pin));
            }
            None => out.push(0),
        }
    }
    out
}

/// Decodes [`encode_entries`]; any malformation is an error, never a panic.
pub fn decode_entries(buf: &[u8]) -> Result<Vec<Entry>, ConsensusError> {
    let mut r = Reader { buf };
    if r.byte()? != ENTRIES_FORMAT {
        return Err(Reader::corrupt("unknown format"));
    }
    let n = r.varint()?;
    let mut out = Vec::with_capacity(usize::try_from(n.min(100_000)).unwrap_or(0));
    for _ in 0..n {
        let cid = Cid::try_from(r.bytes()?).map_err(|e| Reader::corrupt(&format!("cid: {e}")))?;
        let hlc = r.u64()?;
        let author = std::str::from_utf8(r.bytes()?).map_err(|_| Reader::corrupt("author"))?.to_string();
        let pin = match r.byte()? {
            0 => None,
            1 => {
                let pin = record::decode(r.bytes()?).map_err(|e| Reader::corrupt(&format!("pin: {e}")))?;
                if pin.cid != cid {
                    return Err(Reader::corrupt("pin cid differs from entry cid"));
                }
                Some(pin)
            }
            _ => return Err(Reader::corrupt("presence flag")),
        };
        out.push(Entry { cid, version: Version { hlc, author }, pin });
    }
    if !r.buf.is_empty() {
        return Err(Reader::corrupt("trailing bytes"));
    }
    Ok(out)
}

/// Merges `incoming` into a plain map: the reference semantics the store implements.
pub fn merge_into(map: &mut std::collections::BTreeMap<Vec<u8>, (Version, Option<Pin>)>, incoming: &Entry) -> bool {
    let key = incoming.cid.to_bytes();
    let current = map.get(&key).map(|(v, p)| (v, p.is_some()));
    if wins(&incoming.version, incoming.pin.is_some(), current) {
        map.insert(key, (incoming.version.clone(), incoming.pin.clone()));
        true
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster_types::PinOptions;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn cid(i: u8) -> Cid {
        use multihash_codetable::{Code, MultihashDigest};
        Cid::new_v1(0x55, Code::Sha2_256.digest(&[i]))
    }

    fn entry(c: u8, hlc: u64, author: u8, present: bool) -> Entry {
        let cid = cid(c);
        Entry {
            cid,
            version: Version { hlc, author: format!("peer{author}") },
            pin: present.then(|| Pin::with_options(cid, PinOptions { name: format!("n{hlc}"), ..Default::default() })),
        }
    }

    fn arb_entry() -> impl Strategy<Value = Entry> {
        (0u8..6, 0u64..20, 0u8..3, any::<bool>()).prop_map(|(c, h, a, p)| entry(c, h, a, p))
    }

    fn merged(entries: &[Entry]) -> BTreeMap<Vec<u8>, (Version, Option<Pin>)> {
        let mut m = BTreeMap::new();
        for e in entries {
            merge_into(&mut m, e);
        }
        m
    }

    proptest! {
        #[test]
        fn merge_is_commutative_associative_idempotent(
            entries in proptest::collection::vec(arb_entry(), 0..40),
            seed in any::<u64>(),
        ) {
            // Distinct entries sharing a version cannot exist (one author, one clock reading),
            // so keep the first of each (cid, version).
            let mut seen = std::collections::HashSet::new();
            let entries: Vec<Entry> = entries.into_iter().filter(|e| seen.insert((e.cid, e.version.clone()))).collect();
            let reference = merged(&entries);
            // Any order.
            let mut shuffled = entries.clone();
            let mut s = seed;
            for i in (1..shuffled.len()).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                shuffled.swap(i, (s >> 33) as usize % (i + 1));
            }
            prop_assert_eq!(&merged(&shuffled), &reference);
            // Any number of times.
            let mut doubled = shuffled.clone();
            doubled.extend(entries.iter().cloned());
            prop_assert_eq!(&merged(&doubled), &reference);
            // Any grouping: merge two halves' results.
            let (a, b) = shuffled.split_at(shuffled.len() / 2);
            let mut left = merged(a);
            for (k, (v, p)) in merged(b) {
                let cur = left.get(&k).map(|(v, p)| (v.clone(), p.is_some()));
                if wins(&v, p.is_some(), cur.as_ref().map(|(v, p)| (v, *p))) { left.insert(k, (v, p)); }
            }
            prop_assert_eq!(&left, &reference);
        }

        #[test]
        fn encoding_round_trips(entries in proptest::collection::vec(arb_entry(), 0..20)) {
            let bytes = encode_entries(&entries);
            prop_assert_eq!(decode_entries(&bytes).unwrap(), entries);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_entries(&bytes);
        }
    }

    #[test]
    fn unpin_beats_the_pin_it_saw_and_loses_to_a_newer_one() {
        let pin = entry(1, 10, 0, true);
        let unpin = entry(1, 10, 0, false); // removes version (10, peer0)
        assert!(merged(&[pin.clone(), unpin.clone()]).values().all(|(_, p)| p.is_none()));
        assert!(merged(&[unpin.clone(), pin.clone()]).values().all(|(_, p)| p.is_none()));
        let concurrent_pin = entry(1, 11, 2, true);
        for order in [[unpin.clone(), concurrent_pin.clone()], [concurrent_pin.clone(), unpin.clone()]] {
            assert!(merged(&order).values().all(|(_, p)| p.is_some()), "add wins");
        }
        let other = entry(1, 10, 1, true);
        assert!(wins(&other.version, true, Some((&pin.version, true))), "same clock: greater peer id wins");
    }

    #[test]
    fn truncated_input_is_an_error() {
        let bytes = encode_entries(&[entry(1, 1, 1, true)]);
        for n in 0..bytes.len() {
            assert!(decode_entries(&bytes[..n]).is_err());
        }
    }
}
