//! Validation of the user-given arguments that end up in request paths: CIDs, IPFS paths
//! and peer ids. Everything is checked before a request is made, so a typo never reaches
//! the cluster.

use cluster_types::{parse_cid, Cid};

use crate::error::ClientError;

/// An IPFS path as the REST API's path endpoints take it (`/ipfs/<cid>/a/b`, `/ipns/<name>`,
/// `/ipld/<cid>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinPath {
    namespace: &'static str,
    /// The root (CID for ipfs/ipld, name for ipns) followed by the remaining components.
    segments: Vec<String>,
}

impl PinPath {
    /// Parses a CID or an IPFS path the way `ipfs-cluster-ctl pin add` accepts it: a bare CID
    /// (`Qm…`, `bafy…`), optionally followed by `/sub/path`, or a path under `/ipfs/`,
    /// `/ipns/` or `/ipld/` (the leading slash may be omitted).
    pub fn parse(input: &str) -> Result<PinPath, ClientError> {
        let s = input.trim();
        let invalid = |why: String| ClientError::InvalidArgument(format!("invalid CID or path '{input}': {why}"));
        if s.is_empty() {
            return Err(invalid("empty".into()));
        }
        let body = s.strip_prefix('/').unwrap_or(s);
        let mut parts = body.split('/').filter(|p| !p.is_empty());
        let first = parts.next().ok_or_else(|| invalid("empty".into()))?;
        let (namespace, root) = match first {
            "ipfs" | "ipld" | "ipns" => {
                let ns = match first {
                    "ipfs" => "ipfs",
                    "ipld" => "ipld",
                    _ => "ipns",
                };
                (ns, parts.next().ok_or_else(|| invalid(format!("missing root after /{ns}/")))?)
            }
            _ if s.starts_with('/') => return Err(invalid("paths must start with /ipfs/, /ipns/ or /ipld/".into())),
            cid => ("ipfs", cid),
        };
        if namespace != "ipns" {
            parse_cid(root).map_err(|e| invalid(e.message))?;
        }
        let mut segments = vec![root.to_string()];
        segments.extend(parts.map(String::from));
        Ok(PinPath { namespace, segments })
    }

    /// `ipfs`, `ipns` or `ipld`.
    pub fn namespace(&self) -> &str {
        self.namespace
    }

    /// The root CID when the path is under `/ipfs/` or `/ipld/`.
    pub fn root_cid(&self) -> Option<Cid> {
        match self.namespace {
            "ipns" => None,
            _ => self.segments.first().and_then(|r| r.parse().ok()),
        }
    }

    /// The URL path (percent-encoded) under `prefix`, e.g. `/pins` → `/pins/ipfs/<cid>/a`.
    pub(crate) fn url_path(&self, prefix: &str) -> String {
        let mut out = format!("{prefix}/{}", self.namespace);
        for s in &self.segments {
            out.push('/');
            out.push_str(&encode_segment(s));
        }
        out
    }
}

impl std::fmt::Display for PinPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "/{}/{}", self.namespace, self.segments.join("/"))
    }
}

/// Percent-encodes one path segment, keeping only RFC 3986 unreserved characters.
pub(crate) fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Checks that `s` is a libp2p peer id: a base58btc multihash (`12D3Koo…`, `Qm…`) or a CID
/// with the `libp2p-key` codec (`k51…`, `bafz…`).
pub fn validate_peer_id(s: &str) -> Result<(), ClientError> {
    let invalid = |why: &str| ClientError::InvalidArgument(format!("invalid peer ID '{s}': {why}"));
    if s.is_empty() {
        return Err(invalid("empty"));
    }
    if s.starts_with("Qm") || s.starts_with('1') {
        let bytes = decode_base58(s).ok_or_else(|| invalid("not base58"))?;
        return check_multihash(&bytes).ok_or_else(|| invalid("not a multihash"));
    }
    match s.parse::<Cid>() {
        Ok(c) if c.codec() == LIBP2P_KEY_CODEC => Ok(()),
        Ok(_) => Err(invalid("CID is not a libp2p-key")),
        Err(_) => Err(invalid("neither a base58 multihash nor a libp2p-key CID")),
    }
}

const LIBP2P_KEY_CODEC: u64 = 0x72;

fn decode_base58(s: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    let mut out: Vec<u8> = Vec::with_capacity(s.len());
    for c in s.bytes() {
        let mut carry = ALPHABET.iter().position(|&a| a == c)? as u32;
        for byte in out.iter_mut().rev() {
            carry += (*byte as u32) * 58;
            *byte = (carry & 0xff) as u8;
            carry >>= 8;
        }
        while carry > 0 {
            out.insert(0, (carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    let zeros = s.bytes().take_while(|&c| c == b'1').count();
    let mut full = vec![0u8; zeros];
    full.extend(out);
    Some(full)
}

/// `Some(())` when `b` is exactly one identity or sha2-256 multihash.
fn check_multihash(b: &[u8]) -> Option<()> {
    let (code, rest) = read_varint(b)?;
    let (len, digest) = read_varint(rest)?;
    let ok_code = code == 0x00 || code == 0x12;
    (ok_code && digest.len() as u64 == len && len > 0).then_some(())
}

fn read_varint(b: &[u8]) -> Option<(u64, &[u8])> {
    let mut v = 0u64;
    for (i, byte) in b.iter().enumerate().take(9) {
        v |= ((byte & 0x7f) as u64) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, &b[i + 1..]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const CID: &str = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi";
    const CIDV0: &str = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o";

    #[test]
    fn paths_are_normalized() {
        assert_eq!(PinPath::parse(CID).unwrap().to_string(), format!("/ipfs/{CID}"));
        assert_eq!(PinPath::parse(&format!("/ipfs/{CID}/a/b/")).unwrap().to_string(), format!("/ipfs/{CID}/a/b"));
        assert_eq!(PinPath::parse(&format!("ipfs/{CIDV0}")).unwrap().to_string(), format!("/ipfs/{CIDV0}"));
        assert_eq!(PinPath::parse("/ipns/example.org/x").unwrap().to_string(), "/ipns/example.org/x");
        assert!(PinPath::parse("/ipns/example.org").unwrap().root_cid().is_none());
        assert_eq!(
            PinPath::parse(&format!("/ipfs/{CID}/a b")).unwrap().url_path("/pins"),
            format!("/pins/ipfs/{CID}/a%20b")
        );
    }

    #[test]
    fn bad_paths_are_rejected() {
        for bad in ["", "XXXinvalid", "/ipfs/nope", "/foo/bar", "/ipns/", "/ipfs"] {
            assert!(PinPath::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn peer_ids() {
        validate_peer_id("12D3KooWRBy97UB99e3J6hiPesre1MZeuNQvfan4gBziswrRJsNK").unwrap();
        validate_peer_id("QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N").unwrap();
        validate_peer_id("k51qzi5uqu5dlvj2baxnqndepeb86cbk3ng7n3i46uzyxzyqj2xjonzllnv0v8").unwrap();
        assert!(validate_peer_id("").is_err());
        assert!(validate_peer_id("nope").is_err());
        assert!(validate_peer_id("12D3KooWRBy97UB99e3J6hiPesre1MZeuNQvfan4gBziswrRJs").is_err());
        assert!(validate_peer_id(CID).is_err());
    }
}
