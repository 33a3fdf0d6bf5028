//! CAR import for `add?format=car` (§11): a streaming CAR reader and the rules of the import.
//!
//! [`CarReader`] is pure and synchronous: bytes are pushed in any pieces with
//! [`CarReader::push`], items (the header's roots, then `(cid, block)` pairs) come out of
//! [`CarReader::next_item`] until it answers `None`, and [`CarReader::finish`] tells whether the
//! input ended where a CAR may end. It reads CARv1 and CARv2 (whose fixed header points at a
//! CARv1 payload; the index after it is skipped). It holds at most one section (a block of at
//! most [`MAX_BLOCK_BYTES`]) plus the last piece pushed, whatever the CAR's size.
//!
//! Every block is checked before it is handed out: its data must hash to its CID, its codec
//! must be dag-pb, raw or dag-cbor (the codecs the original decodes) and it must decode as
//! that codec. [`CarImport`] adds the import's rules on top: exactly one root, and the root
//! block present in the CAR. [`import_car`] runs it on the add's part events in the importer
//! thread.

use bytes::{Buf, Bytes, BytesMut};
use cid::Cid;
use cluster_types::{ApiError, ErrorCode};
use cluster_unixfs::Block;
use tokio::sync::mpsc;

use super::{Item, PartEvent, PartKind};

/// Largest block accepted (the usual IPFS limit on blocks exchanged over bitswap).
pub const MAX_BLOCK_BYTES: usize = 2 << 20;
/// Largest CAR header accepted (a header lists roots only; one root takes under 100 bytes).
pub const MAX_HEADER_BYTES: usize = 64 << 10;
/// Largest binary CID accepted in a section (64-byte digests and long varints included).
const MAX_CID_BYTES: usize = 128;
/// Longest unsigned varint (multiformats limit them to 9 bytes, 63 bits).
const MAX_VARINT_BYTES: usize = 9;
/// Deepest dag-cbor nesting accepted in a block.
const MAX_CBOR_DEPTH: usize = 64;
/// The CARv2 pragma: a CARv1-style header `{"version": 2}`.
const V2_PRAGMA_LEN: u64 = 11;
/// The CARv2 fixed header after the pragma: characteristics (16), data offset, data size and
/// index offset (u64 little endian each).
const V2_HEADER_LEN: usize = 40;

/// Multicodec of dag-pb.
pub const DAG_PB: u64 = 0x70;
/// Multicodec of raw blocks.
pub const RAW: u64 = 0x55;
/// Multicodec of dag-cbor.
pub const DAG_CBOR: u64 = 0x71;

/// Why a CAR could not be read or imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CarError {
    /// The input ended before any CAR header.
    #[error("the upload is empty: expected a CAR file")]
    Empty,
    /// The input ended inside a header or a section.
    #[error("the CAR is truncated: it ends inside {0}")]
    Truncated(&'static str),
    /// The input ended inside the first header: a cut CAR or no CAR at all.
    #[error("not a valid CAR (or truncated): the input ends inside its header")]
    TruncatedHeader,
    /// A length or CID varint is longer than 9 bytes.
    #[error("not a valid CAR: bad varint in {0}")]
    BadVarint(&'static str),
    /// The header is larger than [`MAX_HEADER_BYTES`].
    #[error("not a valid CAR: its header takes {0} bytes (at most {MAX_HEADER_BYTES})")]
    HeaderTooLarge(u64),
    /// The header is not the expected dag-cbor map.
    #[error("not a valid CAR: bad header: {0}")]
    BadHeader(String),
    /// The header names a version other than 1 (or 2 for the pragma).
    #[error("unsupported CAR version {0}: only CARv1 and CARv2 are read")]
    UnsupportedVersion(u64),
    /// The header lists no root.
    #[error("the CAR has no root: only CAR files with exactly one root can be added")]
    NoRoot,
    /// The header lists several roots.
    #[error("the CAR has {0} roots: only CAR files with exactly one root can be added")]
    SeveralRoots(usize),
    /// A section is longer than a block may be.
    #[error("not a valid CAR: a section of {0} bytes (blocks are at most {MAX_BLOCK_BYTES} bytes)")]
    SectionTooLarge(u64),
    /// A section of length zero.
    #[error("not a valid CAR: empty section")]
    EmptySection,
    /// A section does not start with a valid CID.
    #[error("not a valid CAR: bad CID in a section: {0}")]
    BadCid(String),
    /// A block's codec is not one the import decodes.
    #[error("block {0}: unsupported codec 0x{1:x} (only dag-pb, raw and dag-cbor are imported)")]
    UnsupportedCodec(String, u64),
    /// A block's data does not hash to its CID.
    #[error("block {0} does not match its CID: {1}")]
    HashMismatch(String, String),
    /// A block does not decode as its codec says.
    #[error("block {0} is not valid {1}: {2}")]
    BadBlock(String, &'static str, String),
    /// The CARv2 header is inconsistent.
    #[error("not a valid CARv2: {0}")]
    BadV2(String),
    /// The root named in the header was not among the blocks.
    #[error("the root block {0} is not in the CAR")]
    RootMissing(String),
}

/// What the reader hands out, in CAR order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CarItem {
    /// The (CARv1) header's roots; always first.
    Header(Vec<Cid>),
    /// One block, checked against its CID.
    Block(Cid, Bytes),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The first header: CARv1's, or the CARv2 pragma.
    Start,
    /// The CARv2 fixed header.
    V2Header,
    /// Bytes between the CARv2 header and its payload.
    V2Skip(u64),
    /// The CARv1 header of a CARv2 payload.
    InnerHeader,
    /// Length-prefixed sections: CID and block.
    Sections,
    /// What follows a CARv2 payload (the index): ignored.
    Trailer,
}

/// A streaming CARv1/CARv2 reader; see the module documentation.
#[derive(Debug)]
pub struct CarReader {
    buf: BytesMut,
    state: State,
    /// Payload bytes left in a CARv2 (its data size minus what was read of it).
    payload_left: Option<u64>,
}

impl Default for CarReader {
    fn default() -> Self {
        Self::new()
    }
}

impl CarReader {
    /// A reader at the start of a CAR.
    pub fn new() -> CarReader {
        CarReader { buf: BytesMut::new(), state: State::Start, payload_left: None }
    }

    /// Appends input. Call [`CarReader::next_item`] until it answers `None` before pushing
    /// more, so the buffer stays at one section.
    pub fn push(&mut self, mut data: &[u8]) {
        match self.state {
            State::Trailer => return,
            State::V2Skip(left) if self.buf.is_empty() => {
                let n = left.min(data.len() as u64);
                self.state = State::V2Skip(left - n);
                data = &data[n as usize..];
            }
            _ => {}
        }
        self.buf.extend_from_slice(data);
    }

    /// The next complete item, `None` when more input is needed.
    pub fn next_item(&mut self) -> Result<Option<CarItem>, CarError> {
        loop {
            match self.state {
                State::Start | State::InnerHeader => {
                    let Some((len, n)) = read_varint(&self.buf, "the header length")? else { return Ok(None) };
                    if len > MAX_HEADER_BYTES as u64 {
                        return Err(CarError::HeaderTooLarge(len));
                    }
                    let total = n + len as usize;
                    if self.buf.len() < total {
                        return Ok(None);
                    }
                    self.take_payload(total as u64, "the header")?;
                    let section = self.buf.split_to(total).freeze();
                    let header = parse_header(&section[n..])?;
                    match (self.state, header.version) {
                        (State::Start, 2) if total as u64 == V2_PRAGMA_LEN => self.state = State::V2Header,
                        (_, 1) => {
                            let roots = header.roots.ok_or_else(|| CarError::BadHeader("no \"roots\"".into()))?;
                            self.state = State::Sections;
                            return Ok(Some(CarItem::Header(roots)));
                        }
                        (State::InnerHeader, v) if v != 1 => {
                            return Err(CarError::BadV2(format!("its payload is a version {v} CAR, not CARv1")));
                        }
                        (_, v) => return Err(CarError::UnsupportedVersion(v)),
                    }
                }
                State::V2Header => {
                    if self.buf.len() < V2_HEADER_LEN {
                        return Ok(None);
                    }
                    let h = self.buf.split_to(V2_HEADER_LEN);
                    let word = |i: usize| u64::from_le_bytes(h[i..i + 8].try_into().unwrap_or([0; 8]));
                    let (data_offset, data_size) = (word(16), word(24));
                    let fixed = V2_PRAGMA_LEN + V2_HEADER_LEN as u64;
                    if data_offset < fixed {
                        return Err(CarError::BadV2(format!("data offset {data_offset} inside its header")));
                    }
                    if data_size == 0 {
                        return Err(CarError::BadV2("empty payload".into()));
                    }
                    self.payload_left = Some(data_size);
                    self.state = State::V2Skip(data_offset - fixed);
                }
                State::V2Skip(left) => {
                    let n = left.min(self.buf.len() as u64);
                    self.buf.advance(n as usize);
                    if left > n {
                        self.state = State::V2Skip(left - n);
                        return Ok(None);
                    }
                    self.state = State::InnerHeader;
                }
                State::Sections => {
                    if self.payload_left == Some(0) {
                        self.state = State::Trailer;
                        continue;
                    }
                    if self.buf.is_empty() {
                        return Ok(None);
                    }
                    let Some((len, n)) = read_varint(&self.buf, "a section length")? else { return Ok(None) };
                    if len == 0 {
                        return Err(CarError::EmptySection);
                    }
                    if len > (MAX_BLOCK_BYTES + MAX_CID_BYTES) as u64 {
                        return Err(CarError::SectionTooLarge(len));
                    }
                    let total = n + len as usize;
                    if self.buf.len() < total {
                        return Ok(None);
                    }
                    self.take_payload(total as u64, "a block section")?;
                    let mut section = self.buf.split_to(total).freeze();
                    section.advance(n);
                    let (cid, data) = split_section(section)?;
                    check_block(&cid, &data)?;
                    return Ok(Some(CarItem::Block(cid, data)));
                }
                State::Trailer => {
                    self.buf.clear();
                    return Ok(None);
                }
            }
        }
    }

    /// Checks that the input ended at the end of a CAR (call after draining every item).
    pub fn finish(&self) -> Result<(), CarError> {
        match self.state {
            State::Start if self.buf.is_empty() => Err(CarError::Empty),
            State::Start => Err(CarError::TruncatedHeader),
            State::InnerHeader => Err(CarError::Truncated("the header")),
            State::V2Header | State::V2Skip(_) => Err(CarError::Truncated("the CARv2 header")),
            State::Sections if !self.buf.is_empty() => Err(CarError::Truncated("a block section")),
            State::Sections if self.payload_left.is_some_and(|n| n > 0) => Err(CarError::Truncated("the CARv2 payload")),
            State::Sections | State::Trailer => Ok(()),
        }
    }

    /// Counts `n` bytes read from a CARv2 payload; a section may not cross its end.
    fn take_payload(&mut self, n: u64, what: &'static str) -> Result<(), CarError> {
        if let Some(left) = &mut self.payload_left {
            if n > *left {
                return Err(CarError::BadV2(format!("{what} crosses the end of the payload")));
            }
            *left -= n;
        }
        Ok(())
    }
}

/// An unsigned varint at the start of `buf` and its length; `None` when `buf` ends inside it.
fn read_varint(buf: &[u8], what: &'static str) -> Result<Option<(u64, usize)>, CarError> {
    let mut v: u64 = 0;
    for (i, &b) in buf.iter().enumerate() {
        if i >= MAX_VARINT_BYTES {
            return Err(CarError::BadVarint(what));
        }
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(Some((v, i + 1)));
        }
    }
    if buf.len() >= MAX_VARINT_BYTES {
        return Err(CarError::BadVarint(what));
    }
    Ok(None)
}

/// Splits a section into its CID and block data.
fn split_section(section: Bytes) -> Result<(Cid, Bytes), CarError> {
    let mut rest: &[u8] = &section;
    let cid = Cid::read_bytes(&mut rest).map_err(|e| CarError::BadCid(e.to_string()))?;
    let used = section.len() - rest.len();
    let data = section.slice(used..);
    if data.len() > MAX_BLOCK_BYTES {
        return Err(CarError::SectionTooLarge(data.len() as u64));
    }
    Ok((cid, data))
}

/// Checks a block against its CID: known codec, hash, and that it decodes as its codec.
fn check_block(cid: &Cid, data: &[u8]) -> Result<(), CarError> {
    let codec = cid.codec();
    if ![DAG_PB, RAW, DAG_CBOR].contains(&codec) {
        return Err(CarError::UnsupportedCodec(cid.to_string(), codec));
    }
    cluster_ipfs::verify_block(cid, data).map_err(|e| CarError::HashMismatch(cid.to_string(), e.to_string()))?;
    match codec {
        DAG_PB => decode_dag_pb(data).map(|_| ()).map_err(|e| CarError::BadBlock(cid.to_string(), "dag-pb", e)),
        DAG_CBOR => check_dag_cbor(data).map_err(|e| CarError::BadBlock(cid.to_string(), "dag-cbor", e)),
        _ => Ok(()),
    }
}

/// The UnixFS file size of a root block, as the original reports it: the `filesize` of a
/// dag-pb node whose data is UnixFS, else 0 (raw and dag-cbor roots, directories).
pub fn unixfs_size(cid: &Cid, data: &[u8]) -> u64 {
    if cid.codec() != DAG_PB {
        return 0;
    }
    let Ok(Some(unixfs)) = decode_dag_pb(data) else { return 0 };
    unixfs_filesize(unixfs).unwrap_or(0)
}

/// Bytes of file content a block carries: a raw block's length, or for a dag-pb UnixFS `File`
/// or `Raw` node the length of its own data (0 for a node that only links to its chunks).
/// `None` for anything else: directories, symlinks, dag-cbor, blocks that do not decode.
pub fn file_content_len(cid: &Cid, data: &[u8]) -> Option<u64> {
    match cid.codec() {
        RAW => Some(data.len() as u64),
        DAG_PB => unixfs_file_data_len(decode_dag_pb(data).ok()??),
        _ => None,
    }
}

// ---- protobuf (dag-pb, UnixFS) ----

/// A protobuf field key and the start of its value.
fn pb_key(buf: &[u8], pos: &mut usize) -> Result<(u64, u8), String> {
    let key = pb_varint(buf, pos)?;
    Ok((key >> 3, (key & 7) as u8))
}

fn pb_varint(buf: &[u8], pos: &mut usize) -> Result<u64, String> {
    let mut v: u64 = 0;
    for i in 0..10 {
        let b = *buf.get(*pos).ok_or("truncated varint")?;
        *pos += 1;
        v |= u64::from(b & 0x7f).checked_shl(7 * i).ok_or("varint overflow")?;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("varint too long".into())
}

fn pb_bytes<'a>(buf: &'a [u8], pos: &mut usize) -> Result<&'a [u8], String> {
    let len = pb_varint(buf, pos)?;
    let end = pos.checked_add(usize::try_from(len).map_err(|_| "length overflow")?).ok_or("length overflow")?;
    let v = buf.get(*pos..end).ok_or("field runs past the end")?;
    *pos = end;
    Ok(v)
}

/// Decodes a dag-pb node strictly (only `Data` and `Links`, links with a valid CID); answers
/// its `Data`.
fn decode_dag_pb(buf: &[u8]) -> Result<Option<&[u8]>, String> {
    let mut pos = 0;
    let mut data = None;
    while pos < buf.len() {
        match pb_key(buf, &mut pos)? {
            (2, 2) => {
                let link = pb_bytes(buf, &mut pos)?;
                let mut lp = 0;
                let mut has_hash = false;
                while lp < link.len() {
                    match pb_key(link, &mut lp)? {
                        (1, 2) => {
                            let h = pb_bytes(link, &mut lp)?;
                            Cid::try_from(h).map_err(|e| format!("link with a bad CID: {e}"))?;
                            has_hash = true;
                        }
                        (2, 2) => {
                            let name = pb_bytes(link, &mut lp)?;
                            std::str::from_utf8(name).map_err(|_| "link name is not utf-8")?;
                        }
                        (3, 0) => {
                            pb_varint(link, &mut lp)?;
                        }
                        (f, w) => return Err(format!("unexpected link field {f} (wire type {w})")),
                    }
                }
                if !has_hash {
                    return Err("link without a hash".into());
                }
            }
            (1, 2) => {
                if data.is_some() {
                    return Err("two data fields".into());
                }
                data = Some(pb_bytes(buf, &mut pos)?);
            }
            (f, w) => return Err(format!("unexpected field {f} (wire type {w})")),
        }
    }
    Ok(data)
}

/// The UnixFS fields the add reads: `Type`, `filesize`, and the length of `Data`.
struct UnixfsFields {
    kind: Option<u64>,
    filesize: u64,
    data_len: u64,
}

/// Reads UnixFS data's fields; `None` when it is malformed.
fn unixfs_fields(buf: &[u8]) -> Option<UnixfsFields> {
    let mut pos = 0;
    let mut f = UnixfsFields { kind: None, filesize: 0, data_len: 0 };
    while pos < buf.len() {
        let (field, wire) = pb_key(buf, &mut pos).ok()?;
        match (field, wire) {
            (1, 0) => f.kind = Some(pb_varint(buf, &mut pos).ok()?),
            (3, 0) => f.filesize = pb_varint(buf, &mut pos).ok()?,
            (2, 2) => f.data_len = pb_bytes(buf, &mut pos).ok()?.len() as u64,
            (_, 0) => {
                pb_varint(buf, &mut pos).ok()?;
            }
            (_, 2) => {
                pb_bytes(buf, &mut pos).ok()?;
            }
            (_, 1) => pos = pos.checked_add(8).filter(|&p| p <= buf.len())?,
            (_, 5) => pos = pos.checked_add(4).filter(|&p| p <= buf.len())?,
            _ => return None,
        }
    }
    Some(f)
}

/// The `filesize` of UnixFS data; `None` when it is not UnixFS (no type) or malformed.
fn unixfs_filesize(buf: &[u8]) -> Option<u64> {
    let f = unixfs_fields(buf)?;
    f.kind.map(|_| f.filesize)
}

/// The length of the `Data` field of UnixFS data typed `Raw` (0) or `File` (2), 0 when absent;
/// `None` for other types or malformed data.
fn unixfs_file_data_len(buf: &[u8]) -> Option<u64> {
    let f = unixfs_fields(buf)?;
    matches!(f.kind, Some(0 | 2)).then_some(f.data_len)
}

// ---- CBOR (CAR header, dag-cbor blocks) ----

/// A CBOR data item head: major type and argument.
fn cbor_head(buf: &[u8], pos: &mut usize) -> Result<(u8, u64), String> {
    let b = *buf.get(*pos).ok_or("truncated")?;
    *pos += 1;
    let (major, info) = (b >> 5, b & 0x1f);
    let n = match info {
        0..=23 => return Ok((major, u64::from(info))),
        24 => 1,
        25 => 2,
        26 => 4,
        27 => 8,
        _ => return Err(format!("indefinite or reserved length (0x{b:02x}) is not dag-cbor")),
    };
    let bytes = buf.get(*pos..*pos + n).ok_or("truncated")?;
    *pos += n;
    Ok((major, bytes.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x))))
}

fn cbor_slice<'a>(buf: &'a [u8], pos: &mut usize, len: u64) -> Result<&'a [u8], String> {
    let len = usize::try_from(len).map_err(|_| "length overflow")?;
    let end = pos.checked_add(len).ok_or("length overflow")?;
    let v = buf.get(*pos..end).ok_or("truncated")?;
    *pos = end;
    Ok(v)
}

/// Skips one dag-cbor data item, checking it is well formed.
fn cbor_skip(buf: &[u8], pos: &mut usize, depth: usize) -> Result<(), String> {
    if depth > MAX_CBOR_DEPTH {
        return Err("nested too deep".into());
    }
    let info = buf.get(*pos).map_or(0, |b| b & 0x1f);
    let (major, arg) = cbor_head(buf, pos)?;
    match major {
        0 | 1 => Ok(()),
        2 => cbor_slice(buf, pos, arg).map(|_| ()),
        3 => {
            let s = cbor_slice(buf, pos, arg)?;
            std::str::from_utf8(s).map(|_| ()).map_err(|_| "text string is not utf-8".into())
        }
        4 => (0..arg).try_for_each(|_| cbor_skip(buf, pos, depth + 1)),
        5 => (0..arg).try_for_each(|_| {
            let (m, len) = cbor_head(buf, pos)?;
            if m != 3 {
                return Err("map key is not a string".to_string());
            }
            cbor_slice(buf, pos, len)?;
            cbor_skip(buf, pos, depth + 1)
        }),
        6 if arg == 42 => {
            let (m, len) = cbor_head(buf, pos)?;
            let link = cbor_slice(buf, pos, len)?;
            if m != 2 || link.first() != Some(&0) {
                return Err("tag 42 does not hold a CID".into());
            }
            Cid::try_from(&link[1..]).map(|_| ()).map_err(|e| format!("bad CID link: {e}"))
        }
        6 => Err(format!("tag {arg} is not allowed in dag-cbor")),
        // false, true, null, and floats (their head already took their bytes).
        _ if matches!(info, 20..=22 | 25..=27) => Ok(()),
        _ => Err(format!("simple value {arg} is not allowed in dag-cbor")),
    }
}

/// Checks that a dag-cbor block is one well-formed data item with nothing after it.
fn check_dag_cbor(buf: &[u8]) -> Result<(), String> {
    let mut pos = 0;
    cbor_skip(buf, &mut pos, 0)?;
    if pos != buf.len() {
        return Err("bytes after the data item".into());
    }
    Ok(())
}

/// The fields of a CAR header that matter.
struct Header {
    version: u64,
    roots: Option<Vec<Cid>>,
}

fn parse_header(buf: &[u8]) -> Result<Header, CarError> {
    let bad = CarError::BadHeader;
    let mut pos = 0;
    let (major, entries) = cbor_head(buf, &mut pos).map_err(bad)?;
    if major != 5 {
        return Err(CarError::BadHeader("not a dag-cbor map".into()));
    }
    let (mut version, mut roots) = (None, None);
    for _ in 0..entries {
        let (m, len) = cbor_head(buf, &mut pos).map_err(bad)?;
        if m != 3 {
            return Err(CarError::BadHeader("a key is not a string".into()));
        }
        let key = cbor_slice(buf, &mut pos, len).map_err(bad)?;
        match key {
            b"version" => {
                let (m, v) = cbor_head(buf, &mut pos).map_err(bad)?;
                if m != 0 {
                    return Err(CarError::BadHeader("\"version\" is not an integer".into()));
                }
                version = Some(v);
            }
            b"roots" => {
                let (m, n) = cbor_head(buf, &mut pos).map_err(bad)?;
                if m != 4 {
                    return Err(CarError::BadHeader("\"roots\" is not a list".into()));
                }
                let mut list = Vec::new();
                for _ in 0..n {
                    let (m, tag) = cbor_head(buf, &mut pos).map_err(bad)?;
                    let (bm, len) = cbor_head(buf, &mut pos).map_err(bad)?;
                    let link = cbor_slice(buf, &mut pos, len).map_err(bad)?;
                    if m != 6 || tag != 42 || bm != 2 || link.first() != Some(&0) {
                        return Err(CarError::BadHeader("a root is not a CID link".into()));
                    }
                    list.push(Cid::try_from(&link[1..]).map_err(|e| CarError::BadHeader(format!("bad root CID: {e}")))?);
                }
                roots = Some(list);
            }
            _ => cbor_skip(buf, &mut pos, 1).map_err(bad)?,
        }
    }
    if pos != buf.len() {
        return Err(CarError::BadHeader("bytes after the header map".into()));
    }
    let version = version.ok_or_else(|| CarError::BadHeader("no \"version\"".into()))?;
    Ok(Header { version, roots })
}

// ---- the import ----

/// The root of an imported CAR and what its output line reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarRoot {
    /// The header's only root.
    pub cid: Cid,
    /// Its UnixFS file size (see [`unixfs_size`]).
    pub size: u64,
    /// The output line's name: the CAR part's file name, as the original reports it (set by
    /// [`import_car`]; empty from [`CarImport::finish`]).
    pub name: String,
}

/// A CAR import: the reader plus the rules (one root, present among the blocks).
#[derive(Debug, Default)]
pub struct CarImport {
    reader: CarReader,
    root: Option<Cid>,
    root_size: Option<u64>,
}

impl CarImport {
    /// A new import.
    pub fn new() -> CarImport {
        CarImport::default()
    }

    /// Appends input (drain [`CarImport::next_block`] before pushing more).
    pub fn push(&mut self, data: &[u8]) {
        self.reader.push(data);
    }

    /// The next checked block, `None` when more input is needed. Fails on a header without
    /// exactly one root before any block is handed out.
    pub fn next_block(&mut self) -> Result<Option<Block>, CarError> {
        loop {
            match self.reader.next_item()? {
                None => return Ok(None),
                Some(CarItem::Header(roots)) => match roots.as_slice() {
                    [] => return Err(CarError::NoRoot),
                    [root] => self.root = Some(*root),
                    several => return Err(CarError::SeveralRoots(several.len())),
                },
                Some(CarItem::Block(cid, data)) => {
                    if Some(cid) == self.root && self.root_size.is_none() {
                        self.root_size = Some(unixfs_size(&cid, &data));
                    }
                    return Ok(Some(Block { cid, data }));
                }
            }
        }
    }

    /// Ends the import: the CAR must be complete and hold its root block.
    pub fn finish(&self) -> Result<CarRoot, CarError> {
        self.reader.finish()?;
        let cid = self.root.ok_or(CarError::Empty)?;
        let size = self.root_size.ok_or_else(|| CarError::RootMissing(cid.to_string()))?;
        Ok(CarRoot { cid, size, name: String::new() })
    }
}

impl From<CarError> for ApiError {
    fn from(e: CarError) -> ApiError {
        ApiError::bad_request(e.to_string())
    }
}

/// The importer thread of a CAR add: exactly one file part, read as a CAR, its blocks sent
/// to the distributor in CAR order. A CAR is imported as it is, so `wrap` is refused.
pub(super) fn import_car(mut events: mpsc::Receiver<PartEvent>, items: mpsc::Sender<Item>, wrap: bool) -> Result<CarRoot, ApiError> {
    if wrap {
        return Err(ApiError::bad_request("cannot wrap a CAR file upload (wrap-with-directory and format=car)"));
    }
    let cancelled = || ApiError::new(ErrorCode::Internal, "add cancelled");
    let mut car = CarImport::new();
    let (mut began, mut ended) = (false, false);
    let mut name = String::new();
    while let Some(ev) = events.blocking_recv() {
        match ev {
            PartEvent::Begin(h) => {
                if began {
                    return Err(ApiError::bad_request("format=car takes exactly one CAR file: the upload has a second part"));
                }
                if h.kind != PartKind::File {
                    return Err(ApiError::bad_request("format=car takes one CAR file, not a directory or a symlink"));
                }
                began = true;
                name = h.path.trim_start_matches('/').to_string();
            }
            PartEvent::Data(data) => {
                car.push(&data);
                while let Some(block) = car.next_block()? {
                    items.blocking_send(Item::Block(block)).map_err(|_| cancelled())?;
                }
            }
            PartEvent::End => ended = true,
        }
    }
    if !began {
        return Err(ApiError::bad_request("the upload holds no file: send one CAR file as a multipart part"));
    }
    if !ended {
        return Err(ApiError::bad_request("the upload ended in the middle of a part"));
    }
    let mut root = car.finish()?;
    root.name = if name.is_empty() { root.cid.to_string() } else { name };
    Ok(root)
}

/// Writes a CARv1 of `blocks` with `roots` in its header: the inverse of the reader, for
/// tests and tools that need CARs of shapes no IPFS node exports (no root, several roots).
pub fn encode_v1(roots: &[Cid], blocks: &[(Cid, Vec<u8>)]) -> Vec<u8> {
    let h = header_bytes(roots, 1);
    let mut out = Vec::new();
    write_varint(h.len() as u64, &mut out);
    out.extend(h);
    for (cid, data) in blocks {
        let c = cid.to_bytes();
        write_varint((c.len() + data.len()) as u64, &mut out);
        out.extend(c);
        out.extend(data);
    }
    out
}

/// A CAR header `{"roots": [...], "version": version}` in dag-cbor key order.
fn header_bytes(roots: &[Cid], version: u64) -> Vec<u8> {
    use super::shard::head;
    let mut h = Vec::new();
    head(&mut h, 5, 2);
    head(&mut h, 3, 5);
    h.extend(b"roots");
    head(&mut h, 4, roots.len() as u64);
    for r in roots {
        let mut link = vec![0u8];
        link.extend(r.to_bytes());
        head(&mut h, 6, 42);
        head(&mut h, 2, link.len() as u64);
        h.extend(link);
    }
    head(&mut h, 3, 7);
    h.extend(b"version");
    head(&mut h, 0, version);
    h
}

/// Writes an unsigned LEB128 varint, as CAR section lengths are.
fn write_varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use multihash_codetable::{Code, MultihashDigest};
    use proptest::prelude::*;

    /// A CARv2 file wrapping `encode_v1(...)` with `pad` bytes before the payload and a fake
    /// index after it.
    fn car_v2(v1: &[u8], pad: usize) -> Vec<u8> {
        let mut out = vec![0x0a, 0xa1, 0x67];
        out.extend(b"version");
        out.push(0x02);
        assert_eq!(out.len() as u64, V2_PRAGMA_LEN);
        let data_offset = V2_PRAGMA_LEN + V2_HEADER_LEN as u64 + pad as u64;
        out.extend([0u8; 16]);
        out.extend(data_offset.to_le_bytes());
        out.extend((v1.len() as u64).to_le_bytes());
        out.extend((data_offset + v1.len() as u64).to_le_bytes());
        out.extend(vec![0u8; pad]);
        out.extend(v1);
        out.extend(b"an index the reader ignores");
        out
    }

    pub(crate) fn raw_block(data: &[u8]) -> (Cid, Vec<u8>) {
        (Cid::new_v1(RAW, Code::Sha2_256.digest(data)), data.to_vec())
    }

    /// A dag-pb UnixFS file node over `links` with `filesize`, as CIDv0.
    fn pb_file(links: &[Cid], filesize: u64) -> (Cid, Vec<u8>) {
        let mut node = Vec::new();
        for l in links {
            let mut link = vec![0x0a];
            let b = l.to_bytes();
            write_varint(b.len() as u64, &mut link);
            link.extend(b);
            link.extend([0x12, 0x00, 0x18, 0x01]);
            node.push(0x12);
            write_varint(link.len() as u64, &mut node);
            node.extend(link);
        }
        let mut unixfs = vec![0x08, 0x02, 0x18];
        write_varint(filesize, &mut unixfs);
        node.push(0x0a);
        write_varint(unixfs.len() as u64, &mut node);
        node.extend(unixfs);
        (Cid::new_v0(Code::Sha2_256.digest(&node)).unwrap(), node)
    }

    fn read_all(car: &[u8], piece: usize) -> Result<Vec<CarItem>, CarError> {
        let mut r = CarReader::new();
        let mut items = Vec::new();
        for chunk in car.chunks(piece.max(1)) {
            r.push(chunk);
            while let Some(item) = r.next_item()? {
                items.push(item);
            }
        }
        r.finish()?;
        Ok(items)
    }

    fn import_all(car: &[u8]) -> Result<(CarRoot, Vec<Block>), CarError> {
        let mut imp = CarImport::new();
        let mut blocks = Vec::new();
        for chunk in car.chunks(1000) {
            imp.push(chunk);
            while let Some(b) = imp.next_block()? {
                blocks.push(b);
            }
        }
        Ok((imp.finish()?, blocks))
    }

    #[test]
    fn reads_a_v1_car_byte_by_byte() {
        let a = raw_block(b"leaf a");
        let b = raw_block(b"leaf b");
        let root = pb_file(&[a.0, b.0], 12);
        let car = encode_v1(&[root.0], &[root.clone(), a.clone(), b.clone()]);
        let items = read_all(&car, 1).unwrap();
        assert_eq!(items.len(), 4);
        assert_eq!(items[0], CarItem::Header(vec![root.0]));
        assert_eq!(items[1], CarItem::Block(root.0, Bytes::from(root.1.clone())));
        assert_eq!(items[3], CarItem::Block(b.0, Bytes::from(b.1.clone())));
        let (r, blocks) = import_all(&car).unwrap();
        assert_eq!(r, CarRoot { cid: root.0, size: 12, name: String::new() });
        assert_eq!(blocks.len(), 3);
    }

    #[test]
    fn reads_a_v2_car() {
        let a = raw_block(b"only block");
        let v1 = encode_v1(&[a.0], std::slice::from_ref(&a));
        for pad in [0, 7, 5000] {
            let car = car_v2(&v1, pad);
            for piece in [1, 13, 4096, car.len()] {
                let items = read_all(&car, piece).unwrap();
                assert_eq!(items, vec![CarItem::Header(vec![a.0]), CarItem::Block(a.0, Bytes::from(a.1.clone()))], "pad {pad} piece {piece}");
            }
        }
        // Cut inside the payload.
        let car = car_v2(&v1, 3);
        let cut = 11 + 40 + 3 + v1.len() - 2;
        assert_eq!(read_all(&car[..cut], 5).unwrap_err(), CarError::Truncated("a block section"));
        assert!(matches!(read_all(&car[..30], 5).unwrap_err(), CarError::Truncated(_)));
    }

    #[test]
    fn root_rules() {
        let a = raw_block(b"x");
        let b = raw_block(b"y");
        assert_eq!(import_all(&encode_v1(&[], std::slice::from_ref(&a))).unwrap_err(), CarError::NoRoot);
        assert_eq!(import_all(&encode_v1(&[a.0, b.0], &[a.clone(), b.clone()])).unwrap_err(), CarError::SeveralRoots(2));
        assert_eq!(import_all(&encode_v1(&[b.0], std::slice::from_ref(&a))).unwrap_err(), CarError::RootMissing(b.0.to_string()));
        // A raw root reports no UnixFS size, as the original.
        assert_eq!(import_all(&encode_v1(&[a.0], std::slice::from_ref(&a))).unwrap().0.size, 0);
        assert_eq!(import_all(&[]).unwrap_err(), CarError::Empty);
    }

    #[test]
    fn bad_input_is_named() {
        let a = raw_block(b"content");
        let good = encode_v1(&[a.0], std::slice::from_ref(&a));
        // Truncated anywhere.
        let header_end = encode_v1(&[a.0], &[]).len();
        for cut in 1..good.len() {
            if cut == header_end {
                // A complete CAR without blocks: the import then misses its root.
                assert_eq!(import_all(&good[..cut]).unwrap_err(), CarError::RootMissing(a.0.to_string()));
                continue;
            }
            let err = read_all(&good[..cut], 3).unwrap_err();
            assert!(matches!(err, CarError::Truncated(_) | CarError::TruncatedHeader), "cut {cut}: {err:?}");
        }
        // Data that does not hash to the CID.
        let wrong = encode_v1(&[a.0], &[(a.0, b"other".to_vec())]);
        assert!(matches!(read_all(&wrong, 100).unwrap_err(), CarError::HashMismatch(..)));
        // Bad varint: ten continuation bytes.
        assert_eq!(read_all(&[0xff; 12], 100).unwrap_err(), CarError::BadVarint("the header length"));
        let mut bad = encode_v1(&[a.0], &[]);
        bad.extend([0x80; 10]);
        assert_eq!(read_all(&bad, 100).unwrap_err(), CarError::BadVarint("a section length"));
        // Bad CID in a section.
        let mut bad = encode_v1(&[a.0], &[]);
        bad.extend([3, 0x05, 0x55, 0x00]);
        assert!(matches!(read_all(&bad, 100).unwrap_err(), CarError::BadCid(_)));
        // Huge section, huge header, version 3, not cbor.
        let mut bad = encode_v1(&[a.0], &[]);
        write_varint(3 << 20, &mut bad);
        assert!(matches!(read_all(&bad, 100).unwrap_err(), CarError::SectionTooLarge(_)));
        let mut bad = Vec::new();
        write_varint(1 << 20, &mut bad);
        assert!(matches!(read_all(&bad, 100).unwrap_err(), CarError::HeaderTooLarge(_)));
        let h = header_bytes(&[a.0], 3);
        let mut bad = Vec::new();
        write_varint(h.len() as u64, &mut bad);
        bad.extend(h);
        assert_eq!(read_all(&bad, 100).unwrap_err(), CarError::UnsupportedVersion(3));
        assert!(matches!(read_all(b"\x05hello", 100).unwrap_err(), CarError::BadHeader(_)));
        // Unsupported codec (dag-json).
        let dj = Cid::new_v1(0x0129, Code::Sha2_256.digest(b"{}"));
        assert!(matches!(read_all(&encode_v1(&[dj], &[(dj, b"{}".to_vec())]), 100).unwrap_err(), CarError::UnsupportedCodec(..)));
        // dag-pb that does not decode.
        let junk = b"\xff\xff not protobuf".to_vec();
        let pb = Cid::new_v0(Code::Sha2_256.digest(&junk)).unwrap();
        assert!(matches!(read_all(&encode_v1(&[pb], &[(pb, junk)]), 100).unwrap_err(), CarError::BadBlock(_, "dag-pb", _)));
        // Zero-length section.
        let mut bad = encode_v1(&[a.0], &[]);
        bad.push(0);
        assert_eq!(read_all(&bad, 100).unwrap_err(), CarError::EmptySection);
    }

    #[test]
    fn dag_cbor_blocks_are_checked() {
        let leaf = raw_block(b"leaf");
        // {"a": 1, "l": link, "f": 1.5, "n": null}
        let mut ok = vec![0xa4, 0x61, b'a', 0x01, 0x61, b'l'];
        let mut link = vec![0u8];
        link.extend(leaf.0.to_bytes());
        ok.extend([0xd8, 42]);
        crate::add::shard::head(&mut ok, 2, link.len() as u64);
        ok.extend(link);
        ok.extend([0x61, b'f', 0xfb]);
        ok.extend(1.5f64.to_be_bytes());
        ok.extend([0x61, b'n', 0xf6]);
        assert_eq!(check_dag_cbor(&ok), Ok(()));
        let cid = Cid::new_v1(DAG_CBOR, Code::Sha2_256.digest(&ok));
        let (root, blocks) = import_all(&encode_v1(&[cid], &[(cid, ok.clone()), leaf])).unwrap();
        assert_eq!((root.cid, root.size, blocks.len()), (cid, 0, 2));
        assert!(check_dag_cbor(&[0xa1, 0x01, 0x01]).is_err(), "integer key");
        assert!(check_dag_cbor(&[0x9f, 0xff]).is_err(), "indefinite length");
        assert!(check_dag_cbor(&[0xc1, 0x01]).is_err(), "tag other than 42");
        assert!(check_dag_cbor(&[0x01, 0x02]).is_err(), "trailing bytes");
        assert!(check_dag_cbor(&[0xf7]).is_err(), "undefined");
        assert!(check_dag_cbor(&[0x81; 100]).is_err(), "too deep");
    }

    #[test]
    fn unixfs_sizes() {
        let (cid, data) = pb_file(&[], 1234);
        assert_eq!(unixfs_size(&cid, &data), 1234);
        // A dag-pb node without UnixFS data.
        let empty = Cid::new_v0(Code::Sha2_256.digest(b"")).unwrap();
        assert_eq!(unixfs_size(&empty, b""), 0);
    }

    /// Runs [`import_car`] on `events` in a thread, as the add does; answers its result and
    /// the CIDs of the blocks it sent.
    fn run_import(events: Vec<PartEvent>) -> (Result<CarRoot, ApiError>, Vec<Cid>) {
        let (ev_tx, ev_rx) = mpsc::channel(4);
        let (item_tx, mut item_rx) = mpsc::channel(4);
        let thread = std::thread::spawn(move || import_car(ev_rx, item_tx, false));
        let feeder = std::thread::spawn(move || {
            for ev in events {
                if ev_tx.blocking_send(ev).is_err() {
                    break;
                }
            }
        });
        let mut cids = Vec::new();
        while let Some(item) = item_rx.blocking_recv() {
            if let Item::Block(b) = item {
                cids.push(b.cid);
            }
        }
        feeder.join().unwrap();
        (thread.join().unwrap(), cids)
    }

    fn begin(kind: PartKind) -> PartEvent {
        PartEvent::Begin(super::super::PartHeader { field: "file".into(), path: "x.car".into(), kind })
    }

    #[test]
    fn import_takes_one_file_part() {
        let a = raw_block(b"part content");
        let car = Bytes::from(encode_v1(&[a.0], std::slice::from_ref(&a)));
        let (ok, cids) = run_import(vec![begin(PartKind::File), PartEvent::Data(car.slice(..10)), PartEvent::Data(car.slice(10..)), PartEvent::End]);
        assert_eq!(ok.unwrap(), CarRoot { cid: a.0, size: 0, name: "x.car".into() });
        assert_eq!(cids, vec![a.0]);
        let (second, _) = run_import(vec![begin(PartKind::File), PartEvent::Data(car.clone()), PartEvent::End, begin(PartKind::File)]);
        assert!(second.unwrap_err().message.contains("second part"));
        let (dir, _) = run_import(vec![begin(PartKind::Directory), PartEvent::End]);
        assert!(dir.unwrap_err().message.contains("not a directory"));
        let (_ev_tx, ev_rx) = mpsc::channel(1);
        let (item_tx, _item_rx) = mpsc::channel(1);
        assert!(import_car(ev_rx, item_tx, true).unwrap_err().message.contains("cannot wrap"));
        let (none, _) = run_import(vec![]);
        assert!(none.unwrap_err().message.contains("no file"));
        let (two_roots, cids) = run_import(vec![begin(PartKind::File), PartEvent::Data(Bytes::from(encode_v1(&[a.0, a.0], std::slice::from_ref(&a)))), PartEvent::End]);
        let e = two_roots.unwrap_err();
        assert_eq!((e.code, e.message.as_str(), cids.len()), (400, "the CAR has 2 roots: only CAR files with exactly one root can be added", 0));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn round_trip(datas in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..3000), 1..12), piece in 1usize..5000, v2 in any::<bool>(), pad in 0usize..100) {
            let blocks: Vec<(Cid, Vec<u8>)> = datas.iter().map(|d| raw_block(d)).collect();
            let root = pb_file(&blocks.iter().map(|b| b.0).collect::<Vec<_>>(), datas.iter().map(|d| d.len() as u64).sum());
            let mut all = vec![root.clone()];
            all.extend(blocks);
            let v1 = encode_v1(&[root.0], &all);
            let car = if v2 { car_v2(&v1, pad) } else { v1 };
            let items = read_all(&car, piece).unwrap();
            prop_assert_eq!(items.len(), all.len() + 1);
            prop_assert_eq!(&items[0], &CarItem::Header(vec![root.0]));
            for (item, (cid, data)) in items[1..].iter().zip(&all) {
                prop_assert_eq!(item, &CarItem::Block(*cid, Bytes::from(data.clone())));
            }
            let (r, _) = import_all(&car).unwrap();
            prop_assert_eq!(r.size, datas.iter().map(|d| d.len() as u64).sum::<u64>());
        }
    }
}
