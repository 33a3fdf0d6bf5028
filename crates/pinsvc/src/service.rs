//! The operations of the API over the request index and the backend.
//!
//! Several requests may name one CID; they share one cluster pin. Every operation that pins,
//! unpins or decides whether a CID is still referenced holds that CID's lock (striped), so a
//! delete racing a create for the same CID cannot unpin content the create just recorded.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use cluster_types::{ApiError, Cid, ErrorCode, PinMode, PinOptions};
use futures::StreamExt;
use tokio::sync::{Mutex, MutexGuard, OnceCell};

use crate::backend::PinningBackend;
use crate::id::RequestId;
use crate::index::{PinRequest, RequestIndex};
use crate::model::{PinObject, PinResults, PinStatus, Status, derive_status};
use crate::query::ListQuery;

/// Number of CID lock stripes.
const LOCK_STRIPES: usize = 64;
/// Status lookups in flight at once while listing.
const STATUS_CONCURRENCY: usize = 16;
/// Requests read from the index per round while listing.
const LIST_CHUNK: usize = 256;

/// The Pinning Service: request index plus cluster backend. Share it behind an `Arc`; the
/// HTTP layer ([`PinningService::filter`]) and in-process callers use the same methods.
pub struct PinningService {
    pub(crate) backend: Arc<dyn PinningBackend>,
    index: Arc<RequestIndex>,
    locks: Vec<Mutex<()>>,
}

impl std::fmt::Debug for PinningService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinningService")
            .field("index", &self.index)
            .finish()
    }
}

impl PinningService {
    /// Builds the service over an opened index.
    pub fn new(backend: Arc<dyn PinningBackend>, index: Arc<RequestIndex>) -> Arc<Self> {
        Arc::new(PinningService {
            backend,
            index,
            locks: (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
        })
    }

    /// The request index.
    pub fn index(&self) -> &Arc<RequestIndex> {
        &self.index
    }

    fn stripe(cid: &Cid) -> usize {
        let mut h = DefaultHasher::new();
        cid.to_bytes().hash(&mut h);
        (h.finish() % LOCK_STRIPES as u64) as usize
    }

    async fn lock(&self, cid: &Cid) -> MutexGuard<'_, ()> {
        self.locks[Self::stripe(cid)].lock().await
    }

    /// Locks two CIDs in stripe order, so two replacements in opposite directions cannot
    /// deadlock.
    async fn lock_two(&self, a: &Cid, b: &Cid) -> (MutexGuard<'_, ()>, Option<MutexGuard<'_, ()>>) {
        let (sa, sb) = (Self::stripe(a), Self::stripe(b));
        if sa == sb {
            return (self.locks[sa].lock().await, None);
        }
        let (lo, hi) = (sa.min(sb), sa.max(sb));
        let first = self.locks[lo].lock().await;
        let second = self.locks[hi].lock().await;
        (first, Some(second))
    }

    /// `POST /pins`: records a request and pins its CID.
    ///
    /// The request is recorded before pinning, so a crash in between leaves a visible
    /// request (reported `failed` until re-pinned or deleted) rather than an unlisted pin.
    pub async fn add(&self, pin: PinObject) -> Result<PinStatus, ApiError> {
        pin.validate()?;
        let _guard = self.lock(&pin.cid).await;
        let req = self.index.insert(&pin)?;
        if let Err(e) = self.backend.pin(pin.cid, pin_options(&pin, None)).await {
            if let Err(undo) = self.index.remove(&req.id) {
                tracing::error!(id = %req.id, error = %undo, "cannot drop request after failed pin");
            }
            return Err(e);
        }
        tracing::info!(id = %req.id, cid = %pin.cid, "pin request created");
        Ok(self.fresh_status(&req).await)
    }

    /// `GET /pins/{requestid}`.
    pub async fn get(&self, id: &str) -> Result<PinStatus, ApiError> {
        let req = self.find(id)?;
        let mut fallback = Fallback::default();
        self.status_of(&req, &mut fallback).await
    }

    /// `POST /pins/{requestid}`: pins the new object, swaps the request for a new one, and
    /// unpins the old CID when no other request needs it.
    ///
    /// The new CID is pinned with `pin_update` set to the old one, so IPFS can move the pin
    /// without fetching or collecting shared blocks. Failures before the swap leave the old
    /// request untouched; failing to unpin the old CID after the swap is reported in `info`.
    pub async fn replace(&self, id: &str, pin: PinObject) -> Result<PinStatus, ApiError> {
        pin.validate()?;
        let old = self.find(id)?;
        let _guards = self.lock_two(&old.pin.cid, &pin.cid).await;
        // It may have gone while we waited for the locks.
        let old = self.find(id)?;
        let update = (old.pin.cid != pin.cid).then_some(old.pin.cid);
        match self.backend.pin(pin.cid, pin_options(&pin, update)).await {
            Ok(_) => {}
            // The old CID may have left the cluster pinset behind our back: pin plainly.
            Err(e) if update.is_some() && e.kind() == ErrorCode::NotFound => {
                tracing::debug!(cid = %old.pin.cid, "replaced cid not in the pinset; pinning without pin_update");
                self.backend.pin(pin.cid, pin_options(&pin, None)).await?;
            }
            Err(e) => return Err(e),
        }
        let (new, _) = self.index.replace(&old.id, &pin)?;
        tracing::info!(old = %old.id, new = %new.id, cid = %pin.cid, "pin request replaced");
        let mut warning = None;
        if update.is_some()
            && !self.index.has_other_request(&old.pin.cid, &old.id)?
            && let Err(e) = self.unpin(old.pin.cid).await
        {
            tracing::warn!(cid = %old.pin.cid, error = %e, "cannot unpin the replaced cid");
            warning = Some(format!(
                "could not unpin the replaced cid {}: {}",
                old.pin.cid, e.message
            ));
        }
        let mut status = self.fresh_status(&new).await;
        if let Some(w) = warning {
            status.info.insert("warning".into(), w);
        }
        Ok(status)
    }

    /// `DELETE /pins/{requestid}`: removes the request, unpinning its CID when it was the last
    /// request for it. When unpinning fails the request stays, so the client can retry.
    pub async fn remove(&self, id: &str) -> Result<(), ApiError> {
        let req = self.find(id)?;
        let _guard = self.lock(&req.pin.cid).await;
        let req = self.find(id)?;
        if !self.index.has_other_request(&req.pin.cid, &req.id)? {
            self.unpin(req.pin.cid).await?;
        }
        self.index.remove(&req.id)?;
        tracing::info!(id = %req.id, cid = %req.pin.cid, "pin request deleted");
        Ok(())
    }

    /// `GET /pins`: one page of matching requests, newest first, and the number of matches.
    ///
    /// Walks the index newest first (or only the requests of the given CIDs), applying the
    /// stored filters first. When the status filter is not "everything", each remaining
    /// request costs one status lookup, because `count` must be exact.
    pub async fn list(&self, q: &ListQuery) -> Result<PinResults, ApiError> {
        // Nothing to filter on: count keys in the window and read only the page.
        let unfiltered =
            q.any_status() && q.cids.is_empty() && q.name.is_none() && q.meta.is_empty();
        let mut source = if unfiltered {
            Box::new(self.index.newest_first(q.window).take(q.limit))
        } else {
            self.candidates(q)?
        };
        let mut count = 0u64;
        let mut results = Vec::new();
        let mut fallback = Fallback::default();
        loop {
            let mut chunk = Vec::with_capacity(LIST_CHUNK);
            for item in source.by_ref() {
                let req = item?;
                if q.matches_stored(&req) {
                    chunk.push(req);
                    if chunk.len() == LIST_CHUNK {
                        break;
                    }
                }
            }
            if chunk.is_empty() {
                break;
            }
            // When every status passes, only the requests that make the page need a lookup.
            let look_up = if q.any_status() {
                let room = q.limit - results.len();
                count += chunk.len() as u64;
                chunk.truncate(room);
                chunk
            } else {
                chunk
            };
            // Owned futures: borrowing ones trip the compiler's Send check of the handler.
            let cids: Vec<Cid> = look_up.iter().map(|r| r.pin.cid).collect();
            let statuses: Vec<_> = futures::stream::iter(cids)
                .map(|cid| {
                    let backend = Arc::clone(&self.backend);
                    async move { backend.status(cid).await.map(|g| derive_status(&g)) }
                })
                .buffered(STATUS_CONCURRENCY)
                .collect()
                .await;
            for (req, derived) in look_up.iter().zip(statuses) {
                let derived = derived?;
                if !q.statuses.contains(&derived.status) {
                    continue;
                }
                if !q.any_status() {
                    count += 1;
                }
                if results.len() < q.limit {
                    results.push(self.render(req, derived, &mut fallback).await);
                }
            }
        }
        if unfiltered {
            count = self.index.count(q.window)?;
        }
        Ok(PinResults { count, results })
    }

    /// The requests a listing considers, newest first, inside its creation window.
    fn candidates(
        &self,
        q: &ListQuery,
    ) -> Result<Box<dyn Iterator<Item = Result<PinRequest, crate::IndexError>> + Send>, ApiError>
    {
        if q.cids.is_empty() {
            return Ok(self.index.newest_first(q.window));
        }
        let mut ids = Vec::new();
        for cid in &q.cids {
            ids.extend(
                self.index
                    .ids_for_cid(cid)?
                    .into_iter()
                    .filter(|id| q.in_window(id.created_millis())),
            );
        }
        ids.sort_unstable_by(|a, b| b.cmp(a));
        ids.dedup();
        let index = Arc::clone(&self.index);
        // A request deleted since the id scan is skipped.
        Ok(Box::new(
            ids.into_iter()
                .filter_map(move |id| index.get(&id).transpose()),
        ))
    }

    /// The request named by the path, or the spec's 404.
    fn find(&self, id: &str) -> Result<PinRequest, ApiError> {
        // Ids are opaque to clients: a malformed one is as unknown as a deleted one.
        let not_found = || ApiError::not_found(format!("no pin request with id '{id}'"));
        let parsed = RequestId::parse(id).ok_or_else(not_found)?;
        self.index.get(&parsed)?.ok_or_else(not_found)
    }

    async fn unpin(&self, cid: Cid) -> Result<(), ApiError> {
        match self.backend.unpin(cid).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorCode::NotFound => {
                tracing::debug!(%cid, "cid was not pinned; nothing to unpin");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    async fn cluster_status(
        &self,
        req: &PinRequest,
    ) -> Result<crate::model::DerivedStatus, ApiError> {
        let gpi = self.backend.status(req.pin.cid).await?;
        Ok(derive_status(&gpi))
    }

    async fn status_of(
        &self,
        req: &PinRequest,
        fallback: &mut Fallback,
    ) -> Result<PinStatus, ApiError> {
        let derived = self.cluster_status(req).await?;
        Ok(self.render(req, derived, fallback).await)
    }

    /// The status right after a pin was committed. The pin itself succeeded, so a failing
    /// status lookup must not turn the answer into an error: it reports `queued`.
    async fn fresh_status(&self, req: &PinRequest) -> PinStatus {
        let mut fallback = Fallback::default();
        match self.cluster_status(req).await {
            Ok(derived) => self.render(req, derived, &mut fallback).await,
            Err(e) => {
                tracing::debug!(id = %req.id, error = %e, "status lookup after pin failed");
                let derived = crate::model::DerivedStatus {
                    status: Status::Queued,
                    details: None,
                    delegates: Vec::new(),
                };
                self.render(req, derived, &mut fallback).await
            }
        }
    }

    async fn render(
        &self,
        req: &PinRequest,
        derived: crate::model::DerivedStatus,
        fallback: &mut Fallback,
    ) -> PinStatus {
        let delegates = if derived.delegates.is_empty() {
            fallback.get(self.backend.as_ref()).await.clone()
        } else {
            derived.delegates
        };
        let mut info = std::collections::BTreeMap::new();
        if let Some(d) = derived.details {
            info.insert("status_details".to_string(), d);
        }
        PinStatus {
            requestid: req.id.to_string(),
            status: derived.status,
            created: req.created().to_rfc3339(),
            pin: req.pin.clone(),
            delegates,
            info,
        }
    }
}

/// The backend's fallback delegates, asked at most once per API call.
#[derive(Default)]
struct Fallback(OnceCell<Vec<String>>);

impl Fallback {
    async fn get(&mut self, backend: &dyn PinningBackend) -> &Vec<String> {
        self.0
            .get_or_init(|| async {
                let mut d = backend.fallback_delegates().await;
                d.dedup();
                d.truncate(crate::model::MAX_DELEGATES);
                d
            })
            .await
    }
}

/// The cluster pin options for a request: recursive, default replication, the request's
/// name, origins and meta.
fn pin_options(pin: &PinObject, update: Option<Cid>) -> PinOptions {
    PinOptions {
        name: pin.name.clone(),
        mode: PinMode::Recursive,
        metadata: pin.meta.clone(),
        origins: pin.origins.clone(),
        pin_update: update,
        ..PinOptions::default()
    }
}
