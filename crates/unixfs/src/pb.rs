//! The dag-pb and UnixFS protobuf encodings, byte for byte as Kubo writes them.
//!
//! Hand-written because the exact bytes are the point: dag-pb puts `Links` (field 2)
//! before `Data` (field 1); Kubo writes every link's `Name` even when empty and always
//! writes `Tsize`; UnixFS fields come in field-number order with `blocksizes` unpacked.

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
        let mut n = 2; // Type: tag + one-byte varint
        if let Some(d) = self.data {
            n += field_len(d.len());
        }
        if let Some(s) = self.filesize {
            n += 1 + varint_len(s);
        }
        n + self.blocksizes.iter().map(|&b| 1 + varint_len(b)).sum::<usize>()
    }

    fn write(&self, buf: &mut Vec<u8>) {
        buf.push(0x08);
        buf.push(self.kind as u8);
        if let Some(d) = self.data {
            buf.push(0x12);
            put_varint(buf, d.len() as u64);
            buf.extend_from_slice(d);
        }
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

/// Encodes a dag-pb node: links first, then the UnixFS data.
pub(crate) fn encode_node(links: &[PbLink<'_>], data: &UnixfsData<'_>) -> Vec<u8> {
    let data_len = data.encoded_len();
    let total = links.iter().map(PbLink::encoded_len).sum::<usize>() + field_len(data_len);
    let mut buf = Vec::with_capacity(total);
    for link in links {
        link.write(&mut buf);
    }
    buf.push(0x0a);
    put_varint(&mut buf, data_len as u64);
    data.write(&mut buf);
    debug_assert_eq!(buf.len(), total);
    buf
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
        assert_eq!(empty_dir, [0x0a, 0x02, 0x08, 0x01]);
    }
}
