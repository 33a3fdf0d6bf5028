//! The IPFS Pinning Service API of a cluster peer (port 9097), with real request ids.
//!
//! It speaks the spec's `GET/POST /pins` and `GET/POST/DELETE /pins/{requestid}` with the
//! spec's objects (`Pin`, `PinStatus`, `PinResults`), status codes (202 for create, replace
//! and delete) and `{"error":{"reason","details"}}` failures. Where the original used the
//! CID as request id, this keeps a persistent [`RequestIndex`] in fjall: every request gets
//! its own time-ordered id, several requests may name one CID, and the CID is unpinned only
//! when its last request is deleted. Listings walk that index newest first, so `before`,
//! `after` and `limit` page through any number of requests without loading them all.
//!
//! The cluster plugs in through [`PinningBackend`]; the request status comes from the
//! cluster's [`cluster_types::GlobalPinInfo`] (see [`derive_status`]).
//!
//! Wiring in a peer: open the index (`RequestIndex::open(&dir)`), build the service
//! (`PinningService::new(backend, Arc::new(index))`) and call [`serve_pinsvc`].
//! Authentication (basic, JWT and `POST /token`), CORS and HTTPS come from `cluster-api`'s
//! shared layer, configured in [`PinSvcConfig`]; its failures use the spec's error shape.

#![warn(missing_docs)]

mod backend;
mod error;
mod http;
mod id;
mod index;
mod model;
mod query;
mod server;
mod service;

pub use backend::PinningBackend;
pub use error::{Failure, FailureError, IndexError, ServeError, reason_for};
pub use http::{MAX_BODY_BYTES, Response};
pub use id::RequestId;
pub use index::{CreatedWindow, FORMAT_VERSION, PinRequest, RequestIndex, RequestIter};
pub use model::{
    DerivedStatus, MAX_DELEGATES, MAX_META_ENTRIES, MAX_NAME_CHARS, MAX_ORIGINS, PinObject,
    PinResults, PinStatus, Status, derive_status,
};
pub use query::{DEFAULT_LIMIT, ListQuery, MAX_CIDS, MAX_LIMIT, TextMatch};
pub use server::{PinSvcConfig, serve_filter, serve_pinsvc};
pub use service::PinningService;
