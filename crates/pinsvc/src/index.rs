//! The persistent index of pin requests, in its own fjall database.
//!
//! Layout (format version 1):
//! * keyspace `meta`: `format_version` → u32 big-endian;
//! * keyspace `requests`: the 16 key bytes of a [`RequestId`] → record. Keys start with the
//!   creation millisecond, so this keyspace is also the creation-ordered index that listings
//!   walk backwards (newest first) between `after` and `before`;
//! * keyspace `requests_by_cid`: CID bytes followed by the 16 id bytes → empty, so all requests
//!   for one CID are a prefix scan.
//!
//! A record is one version byte followed by JSON of the request's `Pin` object. Both keyspaces
//! change in one atomic batch.
//!
//! Creation times are unique within an index (a request made in a millisecond that already has
//! one is stamped with the next free millisecond), because the spec pages with `before` set
//! to the oldest `created` of the previous page: equal times would make items vanish between
//! pages. Millisecond precision keeps that working for clients whose clocks hold no more
//! (JavaScript's `Date`).

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use cluster_types::{Cid, Timestamp};
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode, Readable};
use tracing::{debug, info};

use crate::error::IndexError;
use crate::id::{MAX_MILLIS, RequestId};
use crate::model::PinObject;

/// The on-disk layout version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;
/// The record version this build writes (and the newest it reads).
const RECORD_VERSION: u8 = 1;

const META_KEYSPACE: &str = "meta";
const REQUESTS_KEYSPACE: &str = "requests";
const BY_CID_KEYSPACE: &str = "requests_by_cid";
const KEY_FORMAT_VERSION: &[u8] = b"format_version";

/// One stored pin request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinRequest {
    /// Its id, which also encodes its creation time.
    pub id: RequestId,
    /// What was asked for.
    pub pin: PinObject,
}

impl PinRequest {
    /// When the request was made.
    pub fn created(&self) -> Timestamp {
        Timestamp::from_unix_nanos(self.id.created_millis() as i64 * 1_000_000)
    }
}

/// A creation-time window: `after < created < before`, in milliseconds, either side open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CreatedWindow {
    /// Smallest creation millisecond included.
    pub from_millis: Option<u64>,
    /// First creation millisecond excluded.
    pub until_millis: Option<u64>,
}

/// Requests newest first; each item is read lazily from a snapshot taken when it was made.
pub type RequestIter = Box<dyn Iterator<Item = Result<PinRequest, IndexError>> + Send + 'static>;

/// The request index. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct RequestIndex {
    db: Database,
    requests: Keyspace,
    by_cid: Keyspace,
    /// Serialises writers and guards the last creation millisecond handed out.
    last_millis: Mutex<u64>,
    path: PathBuf,
}

impl std::fmt::Debug for RequestIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestIndex")
            .field("path", &self.path)
            .finish()
    }
}

impl RequestIndex {
    /// Opens (or creates) the index in `dir`.
    ///
    /// Fails with [`IndexError::UnsupportedFormat`] when the directory holds another layout
    /// version, and with a storage error when another process has it open.
    pub fn open(dir: &Path) -> Result<Self, IndexError> {
        let db = Database::builder(dir).open()?;
        let meta = db.keyspace(META_KEYSPACE, KeyspaceCreateOptions::default)?;
        let requests = db.keyspace(REQUESTS_KEYSPACE, KeyspaceCreateOptions::default)?;
        let by_cid = db.keyspace(BY_CID_KEYSPACE, KeyspaceCreateOptions::default)?;
        match meta.get(KEY_FORMAT_VERSION)? {
            Some(v) => {
                let bytes: [u8; 4] = v.as_ref().try_into().map_err(|_| {
                    IndexError::Corrupt(format!("format_version has {} bytes, want 4", v.len()))
                })?;
                let found = u32::from_be_bytes(bytes);
                if found != FORMAT_VERSION {
                    return Err(IndexError::UnsupportedFormat {
                        found,
                        supported: FORMAT_VERSION,
                    });
                }
            }
            None => {
                if !requests.is_empty()? || !by_cid.is_empty()? {
                    return Err(IndexError::Corrupt(
                        "requests exist without a format_version".into(),
                    ));
                }
                meta.insert(KEY_FORMAT_VERSION, FORMAT_VERSION.to_be_bytes())?;
                db.persist(PersistMode::SyncAll)?;
                info!(path = %dir.display(), format_version = FORMAT_VERSION, "created pin request index");
            }
        }
        let last_millis = match db.snapshot().last_key_value(&requests) {
            Some(guard) => {
                let key = guard.key()?;
                RequestId::from_key(&key)
                    .ok_or_else(|| {
                        IndexError::Corrupt(format!("request key of {} bytes", key.len()))
                    })?
                    .created_millis()
            }
            None => 0,
        };
        debug!(path = %dir.display(), "opened pin request index");
        Ok(RequestIndex {
            db,
            requests,
            by_cid,
            last_millis: Mutex::new(last_millis),
            path: dir.to_path_buf(),
        })
    }

    /// The directory the index lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stores a new request and returns it with its id and creation time.
    pub fn insert(&self, pin: &PinObject) -> Result<PinRequest, IndexError> {
        self.write(None, pin).map(|(req, _)| req)
    }

    /// Stores a new request and removes `old` in the same atomic batch.
    ///
    /// Returns the new request and the removed one (`None` when `old` did not exist; the new
    /// request is stored anyway).
    pub fn replace(
        &self,
        old: &RequestId,
        pin: &PinObject,
    ) -> Result<(PinRequest, Option<PinRequest>), IndexError> {
        self.write(Some(old), pin)
    }

    fn write(
        &self,
        old: Option<&RequestId>,
        pin: &PinObject,
    ) -> Result<(PinRequest, Option<PinRequest>), IndexError> {
        let value = encode(pin)?;
        let mut last = self
            .last_millis
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let removed = match old {
            Some(id) => self.get(id)?,
            None => None,
        };
        let now = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0);
        // The next free millisecond: unique and increasing even if the clock steps back.
        let millis = now.max(last.saturating_add(1)).min(MAX_MILLIS);
        let id = RequestId::generate(millis);
        let mut batch = self.db.batch();
        batch.insert(&self.requests, id.key().to_vec(), value);
        batch.insert(&self.by_cid, cid_key(&pin.cid, &id), Vec::new());
        if let Some(r) = &removed {
            batch.remove(&self.requests, r.id.key().to_vec());
            batch.remove(&self.by_cid, cid_key(&r.pin.cid, &r.id));
        }
        batch.commit()?;
        *last = millis;
        Ok((
            PinRequest {
                id,
                pin: pin.clone(),
            },
            removed,
        ))
    }

    /// The request with this id, if stored.
    pub fn get(&self, id: &RequestId) -> Result<Option<PinRequest>, IndexError> {
        // A snapshot, because a plain read could see a batch half-way into the memtable.
        match self.db.snapshot().get(&self.requests, id.key())? {
            None => Ok(None),
            Some(v) => Ok(Some(PinRequest {
                id: *id,
                pin: decode(&v)?,
            })),
        }
    }

    /// Removes a request; returns it, or `None` when it was not stored.
    pub fn remove(&self, id: &RequestId) -> Result<Option<PinRequest>, IndexError> {
        let _writer = self
            .last_millis
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(req) = self.get(id)? else {
            return Ok(None);
        };
        let mut batch = self.db.batch();
        batch.remove(&self.requests, id.key().to_vec());
        batch.remove(&self.by_cid, cid_key(&req.pin.cid, id));
        batch.commit()?;
        Ok(Some(req))
    }

    /// The ids of every request for `cid`, oldest first.
    pub fn ids_for_cid(&self, cid: &Cid) -> Result<Vec<RequestId>, IndexError> {
        let prefix = cid.to_bytes();
        let mut ids = Vec::new();
        for guard in self.db.snapshot().prefix(&self.by_cid, &prefix) {
            let key = guard.key()?;
            // A longer key would belong to a CID whose bytes merely start with this one's.
            if key.len() != prefix.len() + 16 {
                continue;
            }
            if let Some(id) = RequestId::from_key(&key[prefix.len()..]) {
                ids.push(id);
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// True when a request other than `except` references `cid`.
    pub fn has_other_request(&self, cid: &Cid, except: &RequestId) -> Result<bool, IndexError> {
        Ok(self.ids_for_cid(cid)?.iter().any(|id| id != except))
    }

    /// Requests created inside `window`, newest first, read lazily from one snapshot.
    pub fn newest_first(&self, window: CreatedWindow) -> RequestIter {
        let Some(range) = key_range(window) else {
            return Box::new(std::iter::empty());
        };
        let iter = self.db.snapshot().range(&self.requests, range);
        Box::new(iter.rev().map(|guard| {
            let (key, value) = guard.into_inner()?;
            let id = RequestId::from_key(&key).ok_or_else(|| {
                IndexError::Corrupt(format!("request key of {} bytes", key.len()))
            })?;
            Ok(PinRequest {
                id,
                pin: decode(&value)?,
            })
        }))
    }

    /// How many requests were created inside `window`, counting keys without decoding records.
    pub fn count(&self, window: CreatedWindow) -> Result<u64, IndexError> {
        let Some(range) = key_range(window) else {
            return Ok(0);
        };
        let mut n = 0;
        for guard in self.db.snapshot().range(&self.requests, range) {
            guard.key()?;
            n += 1;
        }
        Ok(n)
    }

    /// Flushes written requests to disk (fsync), for callers that want a power-loss-safe point.
    pub fn persist(&self) -> Result<(), IndexError> {
        self.db.persist(PersistMode::SyncAll)?;
        Ok(())
    }
}

type KeyRange = (Bound<[u8; 16]>, Bound<[u8; 16]>);

/// The key range of a creation window; `None` when the window is empty.
fn key_range(window: CreatedWindow) -> Option<KeyRange> {
    let lower = match window.from_millis {
        Some(m) if m > MAX_MILLIS => return None,
        Some(m) => Bound::Included(RequestId::lower_bound(m)),
        None => Bound::Unbounded,
    };
    let upper = match window.until_millis {
        Some(m) if m > MAX_MILLIS => Bound::Unbounded,
        Some(m) => Bound::Excluded(RequestId::lower_bound(m)),
        None => Bound::Unbounded,
    };
    if let (Bound::Included(lo), Bound::Excluded(hi)) = (&lower, &upper)
        && lo >= hi
    {
        return None;
    }
    Some((lower, upper))
}

fn cid_key(cid: &Cid, id: &RequestId) -> Vec<u8> {
    let mut key = cid.to_bytes();
    key.extend_from_slice(id.key());
    key
}

fn encode(pin: &PinObject) -> Result<Vec<u8>, IndexError> {
    let mut out = vec![RECORD_VERSION];
    serde_json::to_writer(&mut out, pin)
        .map_err(|e| IndexError::Corrupt(format!("cannot encode request: {e}")))?;
    Ok(out)
}

fn decode(bytes: &[u8]) -> Result<PinObject, IndexError> {
    match bytes.split_first() {
        Some((&RECORD_VERSION, json)) => serde_json::from_slice(json)
            .map_err(|e| IndexError::Corrupt(format!("undecodable request record: {e}"))),
        Some((&v, _)) => Err(IndexError::UnsupportedRecord(v)),
        None => Err(IndexError::Corrupt("empty request record".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin(cid: &str, name: &str) -> PinObject {
        PinObject {
            cid: cid.parse().unwrap(),
            name: name.into(),
            origins: vec![],
            meta: Default::default(),
        }
    }

    #[test]
    fn records_roundtrip_and_versions() {
        let p = pin("bafkqaaa", "x");
        let bytes = encode(&p).unwrap();
        assert_eq!(decode(&bytes).unwrap(), p);
        let mut newer = bytes.clone();
        newer[0] = 2;
        assert!(matches!(
            decode(&newer),
            Err(IndexError::UnsupportedRecord(2))
        ));
        assert!(matches!(decode(&[]), Err(IndexError::Corrupt(_))));
    }

    #[test]
    fn ids_are_unique_and_increasing_within_a_millisecond() {
        let dir = tempfile::tempdir().unwrap();
        let idx = RequestIndex::open(dir.path()).unwrap();
        let mut prev = None;
        for i in 0..50 {
            let r = idx.insert(&pin("bafkqaaa", &i.to_string())).unwrap();
            if let Some(p) = prev {
                assert!(r.id > p);
                assert!(r.id.created_millis() > p.created_millis());
            }
            prev = Some(r.id);
        }
        assert_eq!(
            idx.ids_for_cid(&"bafkqaaa".parse().unwrap()).unwrap().len(),
            50
        );
    }

    #[test]
    fn window_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let idx = RequestIndex::open(dir.path()).unwrap();
        let ids: Vec<_> = (0..5)
            .map(|_| idx.insert(&pin("bafkqaaa", "")).unwrap().id)
            .collect();
        let ms: Vec<u64> = ids.iter().map(|i| i.created_millis()).collect();
        let got = |w| -> Vec<RequestId> { idx.newest_first(w).map(|r| r.unwrap().id).collect() };
        assert_eq!(
            got(CreatedWindow::default()),
            ids.iter().rev().copied().collect::<Vec<_>>()
        );
        let w = CreatedWindow {
            from_millis: Some(ms[1]),
            until_millis: Some(ms[4]),
        };
        assert_eq!(got(w), vec![ids[3], ids[2], ids[1]]);
        let w = CreatedWindow {
            from_millis: Some(ms[3]),
            until_millis: Some(ms[3]),
        };
        assert!(got(w).is_empty());
        let w = CreatedWindow {
            from_millis: Some(u64::MAX),
            until_millis: None,
        };
        assert!(got(w).is_empty());
        let w = CreatedWindow {
            from_millis: None,
            until_millis: Some(u64::MAX),
        };
        assert_eq!(got(w).len(), 5);
        assert_eq!(idx.count(w).unwrap(), 5);
        let w = CreatedWindow {
            from_millis: Some(ms[1]),
            until_millis: Some(ms[4]),
        };
        assert_eq!(idx.count(w).unwrap(), 3);
        let w = CreatedWindow {
            from_millis: Some(ms[3]),
            until_millis: Some(ms[3]),
        };
        assert_eq!(idx.count(w).unwrap(), 0);
    }
}
