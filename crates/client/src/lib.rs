//! A client for the REST API of IPFS Cluster, streaming NDJSON lists.
//!
//! [`Client`] has one async method per endpoint used by `ipfs-cluster-ctl`. Single objects
//! come back decoded into the types of `cluster-types`; lists (`/peers`, `/allocations`,
//! `/pins`, `/pins/recover`) come back as an [`ItemStream`] that decodes items as they
//! arrive. Errors are a [`ClientError`]: the cluster's own `{"code","message"}` objects stay
//! distinguishable from transport failures and timeouts, which is what `ipfs-cluster-ctl`
//! needs for its exit codes.
//!
//! ```no_run
//! # async fn demo() -> Result<(), cluster_client::ClientError> {
//! use futures::StreamExt;
//! let client = cluster_client::Client::new(cluster_client::ClientConfig::default())?;
//! let mut pins = client.status_all("pinned", false).await?;
//! while let Some(status) = pins.next().await {
//!     println!("{}", status?.cid);
//! }
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod add;
mod client;
pub mod config;
pub mod error;
pub mod path;
pub mod stream;
pub mod wait;

pub use add::{collect_entries, AddEntry};
pub use client::Client;
pub use config::{endpoint_url, ClientConfig, DEFAULT_HOST};
pub use error::ClientError;
pub use path::{validate_peer_id, PinPath};
pub use stream::ItemStream;
pub use wait::{default_pin_limit, status_reached, WaitParams};
