//! The stored form of a pin: a version byte followed by a compact, hand-written encoding.
//!
//! Byte 0 is the record format [`VERSION`]; the rest encodes a [`PinRecordV1`]. The
//! encoding is written by hand (rather than derived) so that it cannot change when a type
//! in `cluster-types` gains a serde attribute: a golden-bytes test pins it down. A future
//! format gets a new version byte and a `PinRecordV2`; [`decode`] keeps reading the old
//! ones, which is the migration path (records are rewritten lazily on the next put).
//!
//! Primitives:
//! * unsigned integers: LEB128 varints; signed integers: zigzag, then LEB128;
//! * byte strings and UTF-8 strings: varint length, then the bytes;
//! * lists: varint count, then the items; options: a `0`/`1` tag, then the value;
//! * times: tag `0` for unset, or `1`, zigzag seconds since the Unix epoch, then varint
//!   nanoseconds. Seconds + nanoseconds rather than i64 nanoseconds so that any time the
//!   API accepts (an `expire_at` in year 2300, say) round-trips exactly.

use chrono::DateTime;
use cluster_types::{Cid, Pin, PinMode, PinOptions, PinType, Timestamp};

use crate::StateError;

/// The record format this build writes.
pub const VERSION: u8 = 1;

/// A point in time as stored: `None` for unset (Go's zero time), else Unix seconds and
/// sub-second nanoseconds.
pub type TimeV1 = Option<(i64, u32)>;

/// Every field of a [`Pin`] as plain data, in the order they are encoded (version 1).
///
/// The record keeps everything the API accepted (including `mode` and
/// `user_allocations`) so that what is read back equals what was committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinRecordV1 {
    /// CID bytes (`Cid::to_bytes`); duplicated from the key so a record is self-contained.
    pub cid: Vec<u8>,
    /// The pin type's bit flag (2, 4, 8 or 16).
    pub pin_type: u8,
    /// -1 recursive, 0 direct, N limited depth.
    pub max_depth: i32,
    /// CID bytes of the related pin (meta ↔ clusterdag, shard chain).
    pub reference: Option<Vec<u8>>,
    /// Peers that must pin it.
    pub allocations: Vec<String>,
    /// When this version of the pin was committed.
    pub timestamp: TimeV1,
    /// Minimum replication factor.
    pub replication_factor_min: i32,
    /// Maximum replication factor.
    pub replication_factor_max: i32,
    /// Free-text name.
    pub name: String,
    /// 0 recursive, 1 direct.
    pub mode: u8,
    /// Bytes per shard for sharded adds.
    pub shard_size: u64,
    /// Peers tried first when allocating.
    pub user_allocations: Vec<String>,
    /// When the pin expires.
    pub expire_at: TimeV1,
    /// Metadata, sorted by key.
    pub metadata: Vec<(String, String)>,
    /// CID bytes of the pin this one updates.
    pub pin_update: Option<Vec<u8>>,
    /// Multiaddrs IPFS connects to before pinning.
    pub origins: Vec<String>,
}

impl From<&Pin> for PinRecordV1 {
    fn from(pin: &Pin) -> Self {
        let o = &pin.options;
        PinRecordV1 {
            cid: pin.cid.to_bytes(),
            pin_type: pin.pin_type.bits(),
            max_depth: pin.max_depth,
            reference: pin.reference.as_ref().map(Cid::to_bytes),
            allocations: pin.allocations.clone(),
            timestamp: time_to_record(&pin.timestamp),
            replication_factor_min: o.replication_factor_min,
            replication_factor_max: o.replication_factor_max,
            name: o.name.clone(),
            mode: match o.mode {
                PinMode::Recursive => 0,
                PinMode::Direct => 1,
            },
            shard_size: o.shard_size,
            user_allocations: o.user_allocations.clone(),
            expire_at: time_to_record(&o.expire_at),
            metadata: o.metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            pin_update: o.pin_update.as_ref().map(Cid::to_bytes),
            origins: o.origins.clone(),
        }
    }
}

impl TryFrom<PinRecordV1> for Pin {
    type Error = StateError;

    fn try_from(r: PinRecordV1) -> Result<Self, StateError> {
        let pin_type = match r.pin_type {
            2 => PinType::Data,
            4 => PinType::Meta,
            8 => PinType::ClusterDag,
            16 => PinType::Shard,
            other => return Err(corrupt(format!("unknown pin type {other}"))),
        };
        let mode = match r.mode {
            0 => PinMode::Recursive,
            1 => PinMode::Direct,
            other => return Err(corrupt(format!("unknown pin mode {other}"))),
        };
        Ok(Pin {
            options: PinOptions {
                replication_factor_min: r.replication_factor_min,
                replication_factor_max: r.replication_factor_max,
                name: r.name,
                mode,
                shard_size: r.shard_size,
                user_allocations: r.user_allocations,
                expire_at: time_from_record(r.expire_at)?,
                metadata: r.metadata.into_iter().collect(),
                pin_update: r.pin_update.as_deref().map(cid_from_bytes).transpose()?,
                origins: r.origins,
            },
            cid: cid_from_bytes(&r.cid)?,
            pin_type,
            allocations: r.allocations,
            max_depth: r.max_depth,
            reference: r.reference.as_deref().map(cid_from_bytes).transpose()?,
            timestamp: time_from_record(r.timestamp)?,
        })
    }
}

/// Encodes a pin as a version-1 record.
pub fn encode(pin: &Pin) -> Vec<u8> {
    encode_v1(&PinRecordV1::from(pin))
}

/// Decodes a record of any supported version into a pin.
pub fn decode(bytes: &[u8]) -> Result<Pin, StateError> {
    match bytes.first() {
        None => Err(corrupt("empty pin record")),
        Some(&1) => Pin::try_from(decode_v1(&bytes[1..])?),
        Some(&other) => Err(StateError::UnsupportedVersion(other)),
    }
}

/// Encodes a version-1 record, version byte included.
pub fn encode_v1(r: &PinRecordV1) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(96 + r.name.len()));
    w.0.push(VERSION);
    w.bytes(&r.cid);
    w.0.push(r.pin_type);
    w.int(i64::from(r.max_depth));
    w.opt_bytes(r.reference.as_deref());
    w.strings(&r.allocations);
    w.time(r.timestamp);
    w.int(i64::from(r.replication_factor_min));
    w.int(i64::from(r.replication_factor_max));
    w.bytes(r.name.as_bytes());
    w.0.push(r.mode);
    w.uint(r.shard_size);
    w.strings(&r.user_allocations);
    w.time(r.expire_at);
    w.uint(r.metadata.len() as u64);
    for (k, v) in &r.metadata {
        w.bytes(k.as_bytes());
        w.bytes(v.as_bytes());
    }
    w.opt_bytes(r.pin_update.as_deref());
    w.strings(&r.origins);
    w.0
}

/// Decodes the body of a version-1 record (everything after the version byte).
pub fn decode_v1(body: &[u8]) -> Result<PinRecordV1, StateError> {
    let mut r = Reader(body);
    let cid = r.bytes()?.to_vec();
    let pin_type = r.byte()?;
    let max_depth = r.int32()?;
    let reference = r.opt_bytes()?;
    let allocations = r.strings()?;
    let timestamp = r.time()?;
    let replication_factor_min = r.int32()?;
    let replication_factor_max = r.int32()?;
    let name = r.string()?;
    let mode = r.byte()?;
    let shard_size = r.uint()?;
    let user_allocations = r.strings()?;
    let expire_at = r.time()?;
    let n = r.count()?;
    let mut metadata = Vec::with_capacity(n);
    for _ in 0..n {
        metadata.push((r.string()?, r.string()?));
    }
    let pin_update = r.opt_bytes()?;
    let origins = r.strings()?;
    if !r.0.is_empty() {
        return Err(corrupt(format!("{} trailing bytes after pin record", r.0.len())));
    }
    Ok(PinRecordV1 {
        cid,
        pin_type,
        max_depth,
        reference,
        allocations,
        timestamp,
        replication_factor_min,
        replication_factor_max,
        name,
        mode,
        shard_size,
        user_allocations,
        expire_at,
        metadata,
        pin_update,
        origins,
    })
}

fn corrupt(msg: impl Into<String>) -> StateError {
    StateError::Corrupt(msg.into())
}

fn time_to_record(t: &Timestamp) -> TimeV1 {
    t.0.map(|t| (t.timestamp(), t.timestamp_subsec_nanos()))
}

fn time_from_record(t: TimeV1) -> Result<Timestamp, StateError> {
    match t {
        None => Ok(Timestamp::zero()),
        Some((secs, nanos)) => DateTime::from_timestamp(secs, nanos)
            .map(|t| Timestamp(Some(t)))
            .ok_or_else(|| corrupt(format!("time out of range: {secs}s {nanos}ns"))),
    }
}

fn cid_from_bytes(bytes: &[u8]) -> Result<Cid, StateError> {
    let mut rest = bytes;
    let cid = Cid::read_bytes(&mut rest).map_err(|e| corrupt(format!("invalid cid bytes: {e}")))?;
    if !rest.is_empty() {
        return Err(corrupt("trailing bytes after cid"));
    }
    Ok(cid)
}

struct Writer(Vec<u8>);

impl Writer {
    fn uint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn int(&mut self, v: i64) {
        self.uint(((v << 1) ^ (v >> 63)) as u64);
    }

    fn bytes(&mut self, b: &[u8]) {
        self.uint(b.len() as u64);
        self.0.extend_from_slice(b);
    }

    fn opt_bytes(&mut self, b: Option<&[u8]>) {
        match b {
            None => self.0.push(0),
            Some(b) => {
                self.0.push(1);
                self.bytes(b);
            }
        }
    }

    fn strings(&mut self, list: &[String]) {
        self.uint(list.len() as u64);
        for s in list {
            self.bytes(s.as_bytes());
        }
    }

    fn time(&mut self, t: TimeV1) {
        match t {
            None => self.0.push(0),
            Some((secs, nanos)) => {
                self.0.push(1);
                self.int(secs);
                self.uint(u64::from(nanos));
            }
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, StateError> {
        let (&b, rest) = self.0.split_first().ok_or_else(|| corrupt("pin record truncated"))?;
        self.0 = rest;
        Ok(b)
    }

    fn uint(&mut self) -> Result<u64, StateError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            let low = u64::from(b & 0x7f);
            // The tenth byte may only carry the top bit of a u64.
            if shift == 63 && low > 1 {
                return Err(corrupt("varint overflows u64"));
            }
            v |= low << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(corrupt("varint longer than 10 bytes"))
    }

    fn int(&mut self) -> Result<i64, StateError> {
        let z = self.uint()?;
        Ok(((z >> 1) as i64) ^ -((z & 1) as i64))
    }

    fn int32(&mut self) -> Result<i32, StateError> {
        let v = self.int()?;
        i32::try_from(v).map_err(|_| corrupt(format!("integer {v} out of i32 range")))
    }

    /// A length or count, checked against the bytes left so a corrupt length cannot make
    /// the decoder allocate gigabytes (every item takes at least one byte).
    fn count(&mut self) -> Result<usize, StateError> {
        let n = self.uint()?;
        match usize::try_from(n) {
            Ok(n) if n <= self.0.len() => Ok(n),
            _ => Err(corrupt(format!("length {n} exceeds the {} bytes left", self.0.len()))),
        }
    }

    fn bytes(&mut self) -> Result<&'a [u8], StateError> {
        let n = self.count()?;
        let (b, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(b)
    }

    fn string(&mut self) -> Result<String, StateError> {
        let b = self.bytes()?;
        String::from_utf8(b.to_vec()).map_err(|_| corrupt("string is not utf-8"))
    }

    fn opt_bytes(&mut self) -> Result<Option<Vec<u8>>, StateError> {
        match self.byte()? {
            0 => Ok(None),
            1 => Ok(Some(self.bytes()?.to_vec())),
            t => Err(corrupt(format!("invalid option tag {t}"))),
        }
    }

    fn strings(&mut self) -> Result<Vec<String>, StateError> {
        let n = self.count()?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.string()?);
        }
        Ok(out)
    }

    fn time(&mut self) -> Result<TimeV1, StateError> {
        match self.byte()? {
            0 => Ok(None),
            1 => {
                let secs = self.int()?;
                let nanos = self.uint()?;
                let nanos = u32::try_from(nanos).map_err(|_| corrupt(format!("nanoseconds {nanos} out of range")))?;
                Ok(Some((secs, nanos)))
            }
            t => Err(corrupt(format!("invalid time tag {t}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cid(s: &str) -> Cid {
        s.parse().expect("valid test cid")
    }

    fn golden_pin() -> Pin {
        let mut p = Pin::new(cid("bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"));
        p.pin_type = PinType::Shard;
        p.max_depth = 2;
        p.reference = Some(cid("QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"));
        p.allocations = vec!["12D3KooWA".into(), "12D3KooWB".into()];
        p.timestamp = Timestamp::parse("2024-05-06T10:00:00.5Z").expect("valid time");
        p.options.replication_factor_min = 2;
        p.options.replication_factor_max = 3;
        p.options.name = "golden".into();
        p.options.mode = PinMode::Direct;
        p.options.shard_size = 1 << 20;
        p.options.user_allocations = vec!["12D3KooWC".into()];
        p.options.expire_at = Timestamp::parse("2300-01-01T00:00:00Z").expect("valid time");
        p.options.metadata.insert("owner".into(), "alice".into());
        p.options.metadata.insert("k".into(), "".into());
        p.options.pin_update = Some(cid("bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"));
        p.options.origins = vec!["/ip4/1.2.3.4/tcp/4001/p2p/12D3KooWD".into()];
        p
    }

    /// The version-1 bytes of [`golden_pin`]. If this test fails, the stored format
    /// changed: existing state directories would be misread. Add a new version instead.
    const GOLDEN_HEX: &str = concat!(
        "01",                                                                             // version
        "24017012 20c3c4733ec8affd06cf9e9ff50ffc6bcd2ec85a6170004bb709669c31de94391a",    // cid
        "10",                                                                             // type shard
        "04",                                                                             // max_depth 2
        "01 22 122046d44814b9c5af141c3aaab7c05dc5e844ead5f91f12858b021eba45768b4c0e",     // reference
        "02 09 313244334b6f6f5741 09 313244334b6f6f5742",                                 // allocations
        "01 c0a8c5e30c 80cab5ee01",                                                       // timestamp
        "04 06",                                                                          // rf min, max
        "06 676f6c64656e",                                                                // name
        "01",                                                                             // mode direct
        "808040",                                                                         // shard_size
        "01 09 313244334b6f6f5743",                                                       // user_allocations
        "01 80ecaecb4d 00",                                                               // expire_at
        "02 016b 00 056f776e6572 05616c696365",                                           // metadata
        "01 24 01551220a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447", // pin_update
        "01 23 2f6970342f312e322e332e342f7463702f343030312f7032702f313244334b6f6f5744",   // origins
    );

    #[test]
    fn golden_bytes() {
        let bytes = encode(&golden_pin());
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let expected: String = GOLDEN_HEX.split_whitespace().collect();
        assert_eq!(hex, expected, "pin record v1 encoding changed");
        assert_eq!(decode(&bytes).expect("golden decodes"), golden_pin());
    }

    #[test]
    fn default_pin_is_compact() {
        let p = Pin::new(cid("bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"));
        // 1 version + 37 cid (len + 36) + one byte for each of the 15 other fields.
        assert_eq!(encode(&p).len(), 1 + 37 + 15);
    }

    #[test]
    fn unknown_version_is_refused() {
        let mut bytes = encode(&golden_pin());
        bytes[0] = 2;
        assert!(matches!(decode(&bytes), Err(StateError::UnsupportedVersion(2))));
        assert!(matches!(decode(&[]), Err(StateError::Corrupt(_))));
    }

    #[test]
    fn truncation_and_trailing_bytes_are_corrupt() {
        let bytes = encode(&golden_pin());
        for cut in 1..bytes.len() {
            assert!(matches!(decode(&bytes[..cut]), Err(StateError::Corrupt(_))), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(decode(&longer), Err(StateError::Corrupt(_))));
    }

    #[test]
    fn huge_length_does_not_allocate() {
        // version, then a cid length of u64::MAX.
        let bytes = [1u8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert!(matches!(decode(&bytes), Err(StateError::Corrupt(_))));
    }

    fn arb_cid() -> impl Strategy<Value = Cid> {
        (any::<[u8; 32]>(), prop_oneof![Just(None), Just(Some(0x55u64)), Just(Some(0x70)), Just(Some(0x71))]).prop_map(
            |(digest, codec)| {
                let mh = cid::multihash::Multihash::<64>::wrap(0x12, &digest).expect("32-byte digest fits");
                match codec {
                    None => Cid::new_v0(mh).expect("sha2-256 multihash makes a v0 cid"),
                    Some(c) => Cid::new_v1(c, mh),
                }
            },
        )
    }

    fn arb_time() -> impl Strategy<Value = Timestamp> {
        prop_oneof![
            Just(Timestamp::zero()),
            (-62_135_596_800i64..253_402_300_799i64, 0u32..1_000_000_000)
                .prop_map(|(s, n)| Timestamp(DateTime::from_timestamp(s, n))),
        ]
    }

    fn arb_pin() -> impl Strategy<Value = Pin> {
        let options = (
            (any::<i32>(), any::<i32>(), ".{0,20}", any::<bool>(), any::<u64>()),
            (
                proptest::collection::vec("[a-zA-Z0-9]{0,12}", 0..4),
                arb_time(),
                proptest::collection::btree_map(".{0,8}", ".{0,8}", 0..4),
                proptest::option::of(arb_cid()),
                proptest::collection::vec(".{0,30}", 0..3),
            ),
        )
            .prop_map(
                |(
                    (rmin, rmax, name, direct, shard_size),
                    (user_allocations, expire_at, metadata, pin_update, origins),
                )| {
                    PinOptions {
                        replication_factor_min: rmin,
                        replication_factor_max: rmax,
                        name,
                        mode: if direct { PinMode::Direct } else { PinMode::Recursive },
                        shard_size,
                        user_allocations,
                        expire_at,
                        metadata,
                        pin_update,
                        origins,
                    }
                },
            );
        (
            options,
            arb_cid(),
            prop_oneof![Just(PinType::Data), Just(PinType::Meta), Just(PinType::ClusterDag), Just(PinType::Shard)],
            proptest::collection::vec("[a-zA-Z0-9]{1,52}", 0..5),
            any::<i32>(),
            proptest::option::of(arb_cid()),
            arb_time(),
        )
            .prop_map(|(options, cid, pin_type, allocations, max_depth, reference, timestamp)| Pin {
                options,
                cid,
                pin_type,
                allocations,
                max_depth,
                reference,
                timestamp,
            })
    }

    proptest! {
        #[test]
        fn roundtrip(pin in arb_pin()) {
            let bytes = encode(&pin);
            prop_assert_eq!(bytes[0], VERSION);
            prop_assert_eq!(decode(&bytes).expect("decodes"), pin);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes);
        }
    }
}
