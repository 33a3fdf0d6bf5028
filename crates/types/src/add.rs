//! Parameters of `POST /add` (§11 of the reference) as query-string pairs, shared by the REST
//! API, the IPFS proxy and the clients.
//!
//! The UnixFS options stay text here (`chunker`, `hash`, `layout`): the add pipeline checks
//! them against the importer before reading any of the upload, so a bad value is a 400.

use crate::error::ApiError;
use crate::pin::PinOptions;
use crate::query::{pin_options_from_query, pin_options_to_query};

/// What the upload holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AddFormat {
    /// Files and directories to import as UnixFS.
    #[default]
    Unixfs,
    /// One CAR file whose blocks are stored as they are.
    Car,
}

impl AddFormat {
    /// The query value.
    pub fn as_str(self) -> &'static str {
        match self {
            AddFormat::Unixfs => "unixfs",
            AddFormat::Car => "car",
        }
    }
}

/// Every `/add` option.
#[derive(Debug, Clone, PartialEq)]
pub struct AddParams {
    /// Pin options of the resulting pin (name, replication, allocations, metadata, …).
    pub pin: PinOptions,
    /// Send blocks only to this peer's IPFS and make it one of the allocations.
    pub local: bool,
    /// Client-side directory walking (kept for compatibility; the server sees the files sent).
    pub recursive: bool,
    /// Client-side: include dotfiles when walking directories.
    pub hidden: bool,
    /// Wrap everything in one directory.
    pub wrap_with_directory: bool,
    /// Split the DAG into shards of `pin.shard_size` bytes on different peers.
    pub shard: bool,
    /// Stream output lines (true) or answer one JSON array at the end (false).
    pub stream_channels: bool,
    /// UnixFS import or CAR import.
    pub format: AddFormat,
    /// Store the blocks but do not pin the root.
    pub no_pin: bool,
    /// `balanced` or `trickle`.
    pub layout: String,
    /// `size-N`, `rabin[-…]` or `buzhash`.
    pub chunker: String,
    /// Raw leaves; `None` = decided by the CID version.
    pub raw_leaves: Option<bool>,
    /// Progress lines requested.
    pub progress: bool,
    /// CID version; `None` = 0 unless the hash needs 1.
    pub cid_version: Option<u32>,
    /// Multihash function name.
    pub hash: String,
    /// Filestore add (not supported by this implementation; refused by the pipeline).
    pub nocopy: bool,
}

/// Default shard size when sharding without `shard-size` (the original's default, 100 MiB).
pub const DEFAULT_SHARD_SIZE: u64 = 100 * 1024 * 1024;

impl Default for AddParams {
    fn default() -> Self {
        AddParams {
            pin: PinOptions::default(),
            local: false,
            recursive: false,
            hidden: false,
            wrap_with_directory: false,
            shard: false,
            stream_channels: true,
            format: AddFormat::Unixfs,
            no_pin: false,
            layout: String::new(),
            chunker: "size-262144".to_string(),
            raw_leaves: None,
            progress: false,
            cid_version: None,
            hash: "sha2-256".to_string(),
            nocopy: false,
        }
    }
}

fn flag(key: &str, value: &str) -> Result<bool, ApiError> {
    match value {
        "" | "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(ApiError::bad_request(format!("invalid {key} '{value}': expected true or false"))),
    }
}

impl AddParams {
    /// Builds parameters from query pairs: the pin options of §5.2 plus the add keys of §11.
    /// Unknown keys are ignored, as the original does.
    pub fn from_query<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)> + Clone) -> Result<AddParams, ApiError> {
        let mut p = AddParams { pin: pin_options_from_query(pairs.clone())?, ..AddParams::default() };
        for (k, v) in pairs {
            match k {
                "local" => p.local = flag(k, v)?,
                "recursive" => p.recursive = flag(k, v)?,
                "hidden" => p.hidden = flag(k, v)?,
                "wrap-with-directory" => p.wrap_with_directory = flag(k, v)?,
                "shard" => p.shard = flag(k, v)?,
                "stream-channels" => p.stream_channels = flag(k, v)?,
                "no-pin" => p.no_pin = flag(k, v)?,
                "progress" => p.progress = flag(k, v)?,
                "nocopy" => p.nocopy = flag(k, v)?,
                "raw-leaves" => p.raw_leaves = Some(flag(k, v)?),
                "format" => {
                    p.format = match v {
                        "" | "unixfs" => AddFormat::Unixfs,
                        "car" => AddFormat::Car,
                        _ => return Err(ApiError::bad_request(format!("invalid format '{v}': expected unixfs or car"))),
                    }
                }
                "layout" => p.layout = v.to_string(),
                "chunker" => p.chunker = if v.is_empty() { AddParams::default().chunker } else { v.to_string() },
                "hash" => p.hash = if v.is_empty() { AddParams::default().hash } else { v.to_string() },
                "cid-version" => {
                    let n: u32 = v
                        .parse()
                        .map_err(|_| ApiError::bad_request(format!("invalid cid-version '{v}': expected 0 or 1")))?;
                    if n > 1 {
                        return Err(ApiError::bad_request(format!("invalid cid-version {n}: expected 0 or 1")));
                    }
                    p.cid_version = Some(n);
                }
                _ => {}
            }
        }
        if p.shard && p.pin.shard_size == 0 {
            // The original failed with "block doesn't fit in empty shard" here.
            p.pin.shard_size = DEFAULT_SHARD_SIZE;
        }
        Ok(p)
    }

    /// Encodes the parameters as query pairs (the inverse of [`AddParams::from_query`]).
    pub fn to_query(&self) -> Vec<(String, String)> {
        let mut q = pin_options_to_query(&self.pin);
        let b = |v: bool| v.to_string();
        q.push(("local".into(), b(self.local)));
        q.push(("recursive".into(), b(self.recursive)));
        q.push(("hidden".into(), b(self.hidden)));
        q.push(("wrap-with-directory".into(), b(self.wrap_with_directory)));
        q.push(("shard".into(), b(self.shard)));
        q.push(("stream-channels".into(), b(self.stream_channels)));
        q.push(("format".into(), self.format.as_str().into()));
        q.push(("no-pin".into(), b(self.no_pin)));
        if !self.layout.is_empty() {
            q.push(("layout".into(), self.layout.clone()));
        }
        q.push(("chunker".into(), self.chunker.clone()));
        if let Some(r) = self.raw_leaves {
            q.push(("raw-leaves".into(), b(r)));
        }
        q.push(("progress".into(), b(self.progress)));
        if let Some(v) = self.cid_version {
            q.push(("cid-version".into(), v.to_string()));
        }
        q.push(("hash".into(), self.hash.clone()));
        if self.nocopy {
            q.push(("nocopy".into(), "true".into()));
        }
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_roundtrip() {
        let mut p = AddParams { local: true, shard: true, no_pin: true, format: AddFormat::Car, ..AddParams::default() };
        p.pin.name = "x".into();
        p.pin.shard_size = 1 << 20;
        p.pin.replication_factor_min = 1;
        p.pin.replication_factor_max = 2;
        p.pin.metadata.insert("k".into(), "v".into());
        p.raw_leaves = Some(true);
        p.cid_version = Some(1);
        p.layout = "trickle".into();
        let q = p.to_query();
        let back = AddParams::from_query(q.iter().map(|(k, v)| (k.as_str(), v.as_str()))).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn defaults_and_errors() {
        let p = AddParams::from_query(Vec::<(&str, &str)>::new()).unwrap();
        assert_eq!(p, AddParams::default());
        assert!(p.stream_channels);
        let sharded = AddParams::from_query([("shard", "true")]).unwrap();
        assert_eq!(sharded.pin.shard_size, DEFAULT_SHARD_SIZE);
        for bad in [("format", "zip"), ("cid-version", "2"), ("local", "maybe"), ("cid-version", "x")] {
            assert!(AddParams::from_query([bad]).is_err(), "{bad:?}");
        }
    }
}
