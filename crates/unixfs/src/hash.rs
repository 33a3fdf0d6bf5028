//! Hash functions for block CIDs, named as Kubo's `add --hash` names them.

use std::fmt;
use std::str::FromStr;

use multihash::Multihash;

use crate::UnixfsError;

/// A multihash function usable for `add --hash`.
///
/// Names follow go-multihash (`sha2-256`, `sha3-512`, `blake2b-256`, `blake3`, …) and are
/// matched case-insensitively, as ipfs-cluster lower-cases them. BLAKE2 variants are
/// accepted from 160 bits up (Kubo's block validation refuses shorter digests as insecure).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HashFunction {
    /// sha2-256, Kubo's default and the only hash CIDv0 can carry.
    #[default]
    Sha2_256,
    /// sha2-512.
    Sha2_512,
    /// sha3-224.
    Sha3_224,
    /// sha3-256.
    Sha3_256,
    /// sha3-384.
    Sha3_384,
    /// sha3-512.
    Sha3_512,
    /// keccak-224.
    Keccak224,
    /// keccak-256.
    Keccak256,
    /// keccak-384.
    Keccak384,
    /// keccak-512.
    Keccak512,
    /// blake2b with the given digest length in bytes (20..=64).
    Blake2b(u8),
    /// blake2s with the given digest length in bytes (20..=32).
    Blake2s(u8),
    /// blake3 with its default 32-byte digest.
    Blake3,
}

impl HashFunction {
    /// The multicodec code of the function.
    pub fn code(self) -> u64 {
        match self {
            HashFunction::Sha2_256 => 0x12,
            HashFunction::Sha2_512 => 0x13,
            HashFunction::Sha3_512 => 0x14,
            HashFunction::Sha3_384 => 0x15,
            HashFunction::Sha3_256 => 0x16,
            HashFunction::Sha3_224 => 0x17,
            HashFunction::Keccak224 => 0x1a,
            HashFunction::Keccak256 => 0x1b,
            HashFunction::Keccak384 => 0x1c,
            HashFunction::Keccak512 => 0x1d,
            HashFunction::Blake3 => 0x1e,
            // The blake2 codes encode the digest length in their low byte.
            HashFunction::Blake2b(len) => 0xb200 + u64::from(len),
            HashFunction::Blake2s(len) => 0xb240 + u64::from(len),
        }
    }

    /// The function with multicodec `code`, if it is one of these (the inverse of
    /// [`code`](Self::code)); used to check blocks whose CID someone else computed.
    pub fn from_code(code: u64) -> Option<HashFunction> {
        let h = match code {
            0x12 => HashFunction::Sha2_256,
            0x13 => HashFunction::Sha2_512,
            0x14 => HashFunction::Sha3_512,
            0x15 => HashFunction::Sha3_384,
            0x16 => HashFunction::Sha3_256,
            0x17 => HashFunction::Sha3_224,
            0x1a => HashFunction::Keccak224,
            0x1b => HashFunction::Keccak256,
            0x1c => HashFunction::Keccak384,
            0x1d => HashFunction::Keccak512,
            0x1e => HashFunction::Blake3,
            0xb201..=0xb240 => HashFunction::Blake2b((code - 0xb200) as u8),
            0xb241..=0xb260 => HashFunction::Blake2s((code - 0xb240) as u8),
            _ => return None,
        };
        h.check().ok()
    }

    /// Checks a hand-built value: BLAKE2 digest lengths must be 20..=64 (blake2b) or
    /// 20..=32 (blake2s) bytes, as the parser guarantees.
    pub fn check(self) -> Result<HashFunction, UnixfsError> {
        match self {
            HashFunction::Blake2b(len) if !(20..=64).contains(&len) => Err(UnixfsError::UnknownHash(self.to_string())),
            HashFunction::Blake2s(len) if !(20..=32).contains(&len) => Err(UnixfsError::UnknownHash(self.to_string())),
            _ => Ok(self),
        }
    }

    /// Hashes `data` into a multihash; fails only for a value [`check`](Self::check) refuses.
    pub fn digest(self, data: &[u8]) -> Result<Multihash<64>, UnixfsError> {
        use sha2::Digest as _;
        self.check()?;
        let code = self.code();
        // `wrap` only fails for digests longer than 64 bytes, which none of these produce.
        let wrap = |d: &[u8]| Multihash::wrap(code, d).unwrap_or_default();
        Ok(match self {
            HashFunction::Sha2_256 => wrap(&sha2::Sha256::digest(data)),
            HashFunction::Sha2_512 => wrap(&sha2::Sha512::digest(data)),
            HashFunction::Sha3_224 => wrap(&sha3::Sha3_224::digest(data)),
            HashFunction::Sha3_256 => wrap(&sha3::Sha3_256::digest(data)),
            HashFunction::Sha3_384 => wrap(&sha3::Sha3_384::digest(data)),
            HashFunction::Sha3_512 => wrap(&sha3::Sha3_512::digest(data)),
            HashFunction::Keccak224 => wrap(&sha3::Keccak224::digest(data)),
            HashFunction::Keccak256 => wrap(&sha3::Keccak256::digest(data)),
            HashFunction::Keccak384 => wrap(&sha3::Keccak384::digest(data)),
            HashFunction::Keccak512 => wrap(&sha3::Keccak512::digest(data)),
            HashFunction::Blake2b(len) => {
                wrap(blake2b_simd::Params::new().hash_length(usize::from(len)).hash(data).as_bytes())
            }
            HashFunction::Blake2s(len) => {
                wrap(blake2s_simd::Params::new().hash_length(usize::from(len)).hash(data).as_bytes())
            }
            HashFunction::Blake3 => wrap(blake3::hash(data).as_bytes()),
        })
    }
}

impl fmt::Display for HashFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HashFunction::Sha2_256 => f.write_str("sha2-256"),
            HashFunction::Sha2_512 => f.write_str("sha2-512"),
            HashFunction::Sha3_224 => f.write_str("sha3-224"),
            HashFunction::Sha3_256 => f.write_str("sha3-256"),
            HashFunction::Sha3_384 => f.write_str("sha3-384"),
            HashFunction::Sha3_512 => f.write_str("sha3-512"),
            HashFunction::Keccak224 => f.write_str("keccak-224"),
            HashFunction::Keccak256 => f.write_str("keccak-256"),
            HashFunction::Keccak384 => f.write_str("keccak-384"),
            HashFunction::Keccak512 => f.write_str("keccak-512"),
            HashFunction::Blake2b(len) => write!(f, "blake2b-{}", u32::from(*len) * 8),
            HashFunction::Blake2s(len) => write!(f, "blake2s-{}", u32::from(*len) * 8),
            HashFunction::Blake3 => f.write_str("blake3"),
        }
    }
}

impl FromStr for HashFunction {
    type Err = UnixfsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = s.trim().to_ascii_lowercase();
        let unknown = || UnixfsError::UnknownHash(s.to_string());
        let fixed = match name.as_str() {
            "sha2-256" => Some(HashFunction::Sha2_256),
            "sha2-512" => Some(HashFunction::Sha2_512),
            "sha3-224" => Some(HashFunction::Sha3_224),
            "sha3-256" => Some(HashFunction::Sha3_256),
            "sha3-384" => Some(HashFunction::Sha3_384),
            "sha3-512" => Some(HashFunction::Sha3_512),
            "keccak-224" => Some(HashFunction::Keccak224),
            "keccak-256" => Some(HashFunction::Keccak256),
            "keccak-384" => Some(HashFunction::Keccak384),
            "keccak-512" => Some(HashFunction::Keccak512),
            "blake3" => Some(HashFunction::Blake3),
            _ => None,
        };
        if let Some(h) = fixed {
            return Ok(h);
        }
        let blake = |rest: &str, max_bits: u32| -> Option<u8> {
            let bits: u32 = rest.parse().ok()?;
            // Below 160 bits Kubo's block validation calls the hash insecure.
            (bits.is_multiple_of(8) && (160..=max_bits).contains(&bits)).then_some((bits / 8) as u8)
        };
        if let Some(rest) = name.strip_prefix("blake2b-") {
            return blake(rest, 512).map(HashFunction::Blake2b).ok_or_else(unknown);
        }
        if let Some(rest) = name.strip_prefix("blake2s-") {
            return blake(rest, 256).map(HashFunction::Blake2s).ok_or_else(unknown);
        }
        Err(unknown())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn from_code_inverts_code() {
        for name in ["sha2-256", "sha2-512", "sha3-224", "keccak-512", "blake2b-256", "blake2s-160", "blake3"] {
            let h: super::HashFunction = name.parse().unwrap();
            assert_eq!(super::HashFunction::from_code(h.code()), Some(h), "{name}");
        }
        assert_eq!(super::HashFunction::from_code(0x00), None);
        assert_eq!(super::HashFunction::from_code(0xb201), None, "blake2b-8 is refused as insecure");
    }

    use super::*;

    #[test]
    fn names_round_trip() {
        for name in [
            "sha2-256",
            "sha2-512",
            "sha3-224",
            "sha3-256",
            "sha3-384",
            "sha3-512",
            "keccak-224",
            "keccak-256",
            "keccak-384",
            "keccak-512",
            "blake2b-160",
            "blake2b-256",
            "blake2b-512",
            "blake2s-256",
            "blake3",
        ] {
            let h: HashFunction = name.parse().unwrap();
            assert_eq!(h.to_string(), name);
        }
        assert_eq!("SHA2-256".parse::<HashFunction>().unwrap(), HashFunction::Sha2_256);
    }

    #[test]
    fn hand_built_lengths_are_checked_not_panicked_on() {
        for bad in [HashFunction::Blake2b(0), HashFunction::Blake2b(65), HashFunction::Blake2s(33)] {
            assert!(bad.check().is_err());
            assert!(bad.digest(b"x").is_err());
        }
        assert_eq!(HashFunction::Blake2b(64).digest(b"x").unwrap().size(), 64);
    }

    #[test]
    fn refuses_unknown_and_short() {
        for bad in ["md5", "sha1", "", "blake2b-8", "blake2b-513", "blake2b-250", "blake2s-512", "blake2b-x"] {
            assert!(bad.parse::<HashFunction>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn codes_match_the_multicodec_table() {
        assert_eq!(HashFunction::Blake2b(32).code(), 0xb220);
        assert_eq!(HashFunction::Blake2b(64).code(), 0xb240);
        assert_eq!(HashFunction::Blake2s(32).code(), 0xb260);
        // The sha2-256 multihash of "" is a well-known constant.
        let mh = HashFunction::Sha2_256.digest(b"").unwrap();
        assert_eq!(mh.code(), 0x12);
        assert_eq!(mh.digest()[..4], [0xe3, 0xb0, 0xc4, 0x42],);
    }
}
