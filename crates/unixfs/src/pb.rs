//! The dag-pb and UnixFS protobuf encodings, byte for byte as Kubo writes them.
//!
//! Hand-written because the exact bytes are the point: dag-pb puts `Links` (field 2)
//! before `Data` (field 1); Kubo writes every link's `Name` even when empty and always
//! writes `Tsize`; UnixFS fields come in field-number order with `blocksizes` unpacked.

use bytes::Bytes;
use cid::Cid;

/// UnixFS `Data.Type` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DataType {
    Raw = 0,
    Directory = 1,
    File = 2,
    Symlink = 4,
}

pub(crate) fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

pub(crate) fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Length of a length-delimited field (tag byte, length, payload).
fn field_len(payload: usize) -> usize {
    1 + varint_len(payload as u64) + payload
}

/// One dag-pb link as Kubo writes it.
pub(crate) struct PbLink<'a> {
    pub cid: &'a Cid,
    pub name: &'a str,
    pub tsize: u64,
}

impl PbLink<'_> {
    fn inner_len(&self) -> usize {
        field_len(self.cid.encoded_len()) + field_len(self.name.len()) + 1 + varint_len(self.tsize)
    }

    fn encoded_len(&self) -> usize {
        field_len(self.inner_len())
    }

    fn write(&self, buf: &mut Vec<u8>) {
        buf.push(0x12);
        put_varint(buf, self.inner_len() as u64);
        buf.push(0x0a);
        put_varint(buf, self.cid.encoded_len() as u64);
        // Writing into a Vec cannot fail.
        let _ = self.cid.write_bytes(&mut *buf);
        buf.push(0x12);
        put_varint(buf, self.name.len() as u64);
        buf.extend_from_slice(self.name.as_bytes());
        buf.push(0x18);
        put_varint(buf, self.tsize);
    }
}

/// The UnixFS `Data` message of a node: the fields Kubo's importer sets.
pub(crate) struct UnixfsData<'a> {
    pub kind: DataType,
    /// File bytes; omitted when `None` (Kubo leaves it unset for empty leaves and internal
    /// nodes).
    pub data: Option<&'a [u8]>,
    pub filesize: Option<u64>,
    pub blocksizes: &'a [u64],
}

impl UnixfsData<'_> {
    fn encoded_len(&self) -> usize {
        self.encoded_len_with(self.data.map(<[u8]>::len))
    }

    /// The encoded length with `data_len` bytes of data (none: the field left out).
    fn encoded_len_with(&self, data_len: Option<usize>) -> usize {
        let mut n = 2; // Type: tag + one-byte varint
        if let Some(d) = data_len {
            n += field_len(d);
        }
        if let Some(s) = self.filesize {
            n += 1 + varint_len(s);
        }
        n + self.blocksizes.iter().map(|&b| 1 + varint_len(b)).sum::<usize>()
    }

    fn write(&self, buf: &mut Vec<u8>) {
        self.write_head(buf, self.data.map(<[u8]>::len));
        if let Some(d) = self.data {
            buf.extend_from_slice(d);
        }
        self.write_tail(buf);
    }

    /// The fields before the data's bytes, for `data_len` bytes of data.
    fn write_head(&self, buf: &mut Vec<u8>, data_len: Option<usize>) {
        buf.push(0x08);
        buf.push(self.kind as u8);
        if let Some(len) = data_len {
            buf.push(0x12);
            put_varint(buf, len as u64);
        }
    }

    /// The fields after the data's bytes.
    fn write_tail(&self, buf: &mut Vec<u8>) {
        if let Some(s) = self.filesize {
            buf.push(0x18);
            put_varint(buf, s);
        }
        for &b in self.blocksizes {
            buf.push(0x20);
            put_varint(buf, b);
        }
    }
}

/// The bytes around a UnixFS leaf's data: a leaf of `kind` holding `len` (> 0) bytes is
/// `head`, the bytes, then `tail`. Lets a leaf be assembled in place, its data copied once.
pub(crate) fn leaf_frame(kind: DataType, len: usize) -> (Vec<u8>, Vec<u8>) {
    let unixfs = UnixfsData { kind, data: None, filesize: Some(len as u64), blocksizes: &[] };
    let mut head = vec![0x0a];
    put_varint(&mut head, unixfs.encoded_len_with(Some(len)) as u64);
    unixfs.write_head(&mut head, Some(len));
    let mut tail = Vec::new();
    unixfs.write_tail(&mut tail);
    (head, tail)
}

/// Encodes a dag-pb node: links first, then the UnixFS data.
pub(crate) fn encode_node(links: &[PbLink<'_>], data: &UnixfsData<'_>) -> Bytes {
    let data_len = data.encoded_len();
    let total = links.iter().map(PbLink::encoded_len).sum::<usize>() + field_len(data_len);
    page_aligned(total, |buf| {
        for link in links {
            link.write(buf);
        }
        buf.push(0x0a);
        put_varint(buf, data_len as u64);
        data.write(buf);
    })
}

/// Blocks of at least this many bytes start on a boundary of this many: a store that writes
/// them past the page cache (`O_DIRECT`, which needs aligned memory) takes them as they are
/// instead of copying each to an aligned buffer first.
pub const BLOCK_ALIGN: usize = 4096;

/// A block of `len` bytes written by `fill`, starting on a [`BLOCK_ALIGN`] boundary when it is
/// that long. The alignment costs at most one page per block in flight and no copy: the bytes
/// are a view into the padded allocation.
pub(crate) fn page_aligned(len: usize, fill: impl FnOnce(&mut Vec<u8>)) -> Bytes {
    let (mut buf, pad) = aligned_buffer(len);
    fill(&mut buf);
    debug_assert_eq!(buf.len(), pad + len);
    Bytes::from(buf).slice(pad..)
}

/// A buffer with room for a block of `len` bytes, holding only the padding that puts the
/// block's first byte on a [`BLOCK_ALIGN`] boundary (none below that size); returns it with
/// the padding's length, where the block will start.
pub(crate) fn aligned_buffer(len: usize) -> (Vec<u8>, usize) {
    if len < BLOCK_ALIGN {
        return (Vec::with_capacity(len), 0);
    }
    let mut buf: Vec<u8> = Vec::with_capacity(len + BLOCK_ALIGN - 1);
    let pad = buf.as_ptr().align_offset(BLOCK_ALIGN);
    buf.resize(pad, 0);
    (buf, pad)
}

/// Bytes of a block's start that [`dag_pb_is_data_only`] looks at: a tag and a length varint.
pub const DATA_ONLY_PREFIX: usize = 11;

/// Whether a dag-pb block of `block_len` bytes starting with `prefix` is one `Data` field from
/// end to end, so has no links (a UnixFS leaf), whatever its data holds. A DAG walk can then
/// skip reading the rest of the block, most of a file's bytes. `false` when the prefix cannot
/// tell (too short, another field first, or data that ends before the block does).
pub fn dag_pb_is_data_only(prefix: &[u8], block_len: u64) -> bool {
    let Some((&0x0a, rest)) = prefix.split_first() else {
        return false;
    };
    let mut len = 0u64;
    for (i, &byte) in rest.iter().enumerate().take(10) {
        len |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            // tag byte, i + 1 varint bytes, then exactly the rest of the block
            return len.checked_add(i as u64 + 2) == Some(block_len);
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints() {
        for (v, bytes) in [(0u64, vec![0u8]), (127, vec![127]), (128, vec![0x80, 1]), (300, vec![0xac, 2])] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(b, bytes);
            assert_eq!(varint_len(v), bytes.len());
        }
        assert_eq!(varint_len(u64::MAX), 10);
    }

    #[test]
    fn leaf_and_directory_bytes() {
        // "hello world\n" as a Kubo file leaf.
        let leaf = encode_node(
            &[],
            &UnixfsData { kind: DataType::File, data: Some(b"hello world\n"), filesize: Some(12), blocksizes: &[] },
        );
        let mut want = vec![0x0a, 0x12, 0x08, 0x02, 0x12, 0x0c];
        want.extend_from_slice(b"hello world\n");
        want.extend_from_slice(&[0x18, 0x0c]);
        assert_eq!(leaf, want);
        let empty_dir =
            encode_node(&[], &UnixfsData { kind: DataType::Directory, data: None, filesize: None, blocksizes: &[] });
        assert_eq!(empty_dir, [0x0a, 0x02, 0x08, 0x01][..]);
    }

    #[test]
    fn leaf_frames_surround_the_data_as_the_encoder_does() {
        for len in [1usize, 127, 128, 16_383, 16_384, 262_144, 1 << 20] {
            for kind in [DataType::File, DataType::Raw] {
                let data = vec![9u8; len];
                let (head, tail) = leaf_frame(kind, len);
                let mut framed = head;
                framed.extend_from_slice(&data);
                framed.extend_from_slice(&tail);
                let leaf = encode_node(
                    &[],
                    &UnixfsData { kind, data: Some(&data), filesize: Some(len as u64), blocksizes: &[] },
                );
                assert_eq!(framed, leaf, "{len} bytes, {kind:?}");
            }
        }
    }

    #[test]
    fn large_blocks_start_on_a_page_boundary() {
        for len in [BLOCK_ALIGN - 1, BLOCK_ALIGN, 262_158, 1 << 20] {
            let data = vec![3u8; len];
            let block = page_aligned(len, |buf| buf.extend_from_slice(&data));
            assert_eq!(block, data);
            if len >= BLOCK_ALIGN {
                assert_eq!(block.as_ptr().align_offset(BLOCK_ALIGN), 0, "{len} bytes");
            }
        }
        let leaf = encode_node(
            &[],
            &UnixfsData { kind: DataType::File, data: Some(&[1; 8192]), filesize: Some(8192), blocksizes: &[] },
        );
        assert_eq!(leaf.as_ptr().align_offset(BLOCK_ALIGN), 0);
    }

    #[test]
    fn data_only_blocks_are_told_from_their_prefix() {
        let data = vec![7u8; 300];
        let leaf = encode_node(
            &[],
            &UnixfsData { kind: DataType::File, data: Some(&data), filesize: Some(300), blocksizes: &[] },
        );
        let prefix = &leaf[..DATA_ONLY_PREFIX];
        assert!(dag_pb_is_data_only(prefix, leaf.len() as u64));
        // more bytes after the data field (links written after it), or fewer
        assert!(!dag_pb_is_data_only(prefix, leaf.len() as u64 + 1));
        assert!(!dag_pb_is_data_only(prefix, leaf.len() as u64 - 1));
        // a prefix cut inside the length varint cannot tell
        assert!(!dag_pb_is_data_only(&leaf[..2], leaf.len() as u64));
        assert!(!dag_pb_is_data_only(&[], 0));

        let empty_dir =
            encode_node(&[], &UnixfsData { kind: DataType::Directory, data: None, filesize: None, blocksizes: &[] });
        assert!(dag_pb_is_data_only(&empty_dir, empty_dir.len() as u64));

        let child = Cid::new_v1(0x55, multihash::Multihash::<64>::wrap(0x12, &[1; 32]).unwrap());
        let parent = encode_node(
            &[PbLink { cid: &child, name: "", tsize: 300 }],
            &UnixfsData { kind: DataType::File, data: None, filesize: Some(300), blocksizes: &[300] },
        );
        assert!(!dag_pb_is_data_only(&parent[..DATA_ONLY_PREFIX], parent.len() as u64));

        // a length varint longer than any block: never a match, never an overflow
        let mut huge = vec![0x0a];
        huge.extend_from_slice(&[0xff; 9]);
        huge.push(0x01);
        assert!(!dag_pb_is_data_only(&huge, u64::MAX));
    }
}
