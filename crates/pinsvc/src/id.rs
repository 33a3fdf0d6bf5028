//! Request ids: 48 bits of creation time in milliseconds followed by 80 random bits.
//!
//! The 16 bytes are the key of a request in the index, so byte order is creation order and the
//! primary keyspace doubles as the `created` index that `before`/`after` pagination walks. The
//! text form is those 128 bits in Crockford base32 (26 characters), whose alphabet is in ASCII
//! order, so ids also sort by creation as strings.

use std::fmt;

/// Crockford's base32 alphabet; ascending in ASCII, which keeps text order equal to byte order.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Length of the text form: 128 bits in 5-bit digits.
const TEXT_LEN: usize = 26;

/// The largest creation time an id can hold (milliseconds since the Unix epoch, 48 bits).
pub(crate) const MAX_MILLIS: u64 = (1 << 48) - 1;

/// The identifier of one pin request, unique and ordered by creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId([u8; 16]);

impl RequestId {
    /// An id created at `millis` (clamped to 48 bits) with the given random tail.
    pub(crate) fn new(millis: u64, random: [u8; 10]) -> Self {
        let mut bytes = [0u8; 16];
        bytes[..6].copy_from_slice(&millis.min(MAX_MILLIS).to_be_bytes()[2..]);
        bytes[6..].copy_from_slice(&random);
        RequestId(bytes)
    }

    /// A fresh id created at `millis`.
    pub(crate) fn generate(millis: u64) -> Self {
        RequestId::new(millis, rand::random())
    }

    /// The smallest key of any id created at `millis`: the start of that millisecond's range.
    pub(crate) fn lower_bound(millis: u64) -> [u8; 16] {
        RequestId::new(millis, [0; 10]).0
    }

    /// Rebuilds an id from its key bytes; `None` unless exactly 16 bytes.
    pub(crate) fn from_key(key: &[u8]) -> Option<Self> {
        Some(RequestId(key.try_into().ok()?))
    }

    /// The index key.
    pub(crate) fn key(&self) -> &[u8; 16] {
        &self.0
    }

    /// When the request was created, in milliseconds since the Unix epoch.
    pub fn created_millis(&self) -> u64 {
        let mut b = [0u8; 8];
        b[2..].copy_from_slice(&self.0[..6]);
        u64::from_be_bytes(b)
    }

    /// Parses the canonical text form; anything else (wrong length, lowercase, letters outside
    /// the alphabet, overflow) is `None`, so one id has exactly one spelling.
    pub fn parse(s: &str) -> Option<Self> {
        let bytes = s.as_bytes();
        if bytes.len() != TEXT_LEN {
            return None;
        }
        let mut v: u128 = 0;
        for (i, c) in bytes.iter().enumerate() {
            let d = ALPHABET.iter().position(|a| a == c)? as u128;
            // 26 digits carry 130 bits: the first digit may only use its low 3.
            if i == 0 && d > 7 {
                return None;
            }
            v = (v << 5) | d;
        }
        Some(RequestId(v.to_be_bytes()))
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = u128::from_be_bytes(self.0);
        let mut out = [0u8; TEXT_LEN];
        for (i, slot) in out.iter_mut().enumerate() {
            let shift = 5 * (TEXT_LEN - 1 - i);
            *slot = ALPHABET[((v >> shift) & 31) as usize];
        }
        // Every byte comes from ALPHABET, which is ASCII.
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_roundtrip_and_order() {
        let a = RequestId::new(1_700_000_000_000, [0xff; 10]);
        let b = RequestId::new(1_700_000_000_001, [0; 10]);
        assert!(a < b);
        assert!(a.to_string() < b.to_string());
        for id in [
            a,
            b,
            RequestId::new(0, [0; 10]),
            RequestId::new(MAX_MILLIS, [0xff; 10]),
        ] {
            let s = id.to_string();
            assert_eq!(s.len(), 26);
            assert_eq!(RequestId::parse(&s), Some(id), "{s}");
        }
        assert_eq!(a.created_millis(), 1_700_000_000_000);
        assert_eq!(
            RequestId::new(u64::MAX, [0; 10]).created_millis(),
            MAX_MILLIS
        );
    }

    #[test]
    fn rejects_non_canonical_text() {
        let s = RequestId::new(1_700_000_000_000, [0xab; 10]).to_string();
        assert!(s.chars().any(|c| c.is_ascii_alphabetic()));
        assert!(RequestId::parse(&s.to_lowercase()).is_none());
        assert!(RequestId::parse(&s[1..]).is_none());
        assert!(RequestId::parse("8ZZZZZZZZZZZZZZZZZZZZZZZZZ").is_none());
        assert!(RequestId::parse("0000000000000000000000000U").is_none());
        assert!(
            RequestId::parse("bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi")
                .is_none()
        );
        assert!(RequestId::parse("").is_none());
    }
}
