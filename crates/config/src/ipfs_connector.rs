//! The `ipfs_connector` section: exactly one of `embedded` (an in-process IPFS node, our default)
//! or `ipfshttp` (an external Kubo daemon, as in the original).
//!
//! Switching to Kubo means replacing the section with
//! `"ipfshttp": {"node_multiaddress": "/ip4/127.0.0.1/tcp/5001"}`; missing keys take defaults.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cluster_types::duration::serde_go;
use serde::{Deserialize, Serialize};

use crate::check;
use crate::error::ConfigErrors;
use crate::folder::resolve_path;
use crate::serde_util::{is_false, string_list};

/// `ipfs_connector` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpfsConnectorConfig {
    /// In-process IPFS node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedded: Option<EmbeddedIpfsConfig>,
    /// External Kubo daemon reached over its RPC API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipfshttp: Option<IpfsHttpConfig>,
}

impl Default for IpfsConnectorConfig {
    fn default() -> Self {
        IpfsConnectorConfig { embedded: Some(EmbeddedIpfsConfig::default()), ipfshttp: None }
    }
}

/// Timing and behaviour knobs shared by both connectors, for code that does not care which
/// one is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectorTimings {
    /// Delay after start before connecting to other peers' IPFS nodes.
    pub connect_swarms_delay: Duration,
    /// Timeout of ordinary IPFS requests.
    pub ipfs_request_timeout: Duration,
    /// A pin is cancelled when it makes no progress for this long.
    pub pin_timeout: Duration,
    /// Unpin timeout.
    pub unpin_timeout: Duration,
    /// Repository GC timeout.
    pub repogc_timeout: Duration,
    /// Every N pins/block puts, informer metrics are pushed immediately (0 = never).
    pub informer_trigger_interval: u64,
    /// Refuse to unpin anything from IPFS.
    pub unpin_disable: bool,
}

impl IpfsConnectorConfig {
    /// The shared timing knobs of whichever connector is configured (defaults if none).
    pub fn timings(&self) -> ConnectorTimings {
        match (&self.embedded, &self.ipfshttp) {
            (Some(e), _) => e.timings(),
            (None, Some(h)) => h.timings(),
            (None, None) => EmbeddedIpfsConfig::default().timings(),
        }
    }

    pub(crate) fn validate_into(&self, errs: &mut ConfigErrors) {
        match (&self.embedded, &self.ipfshttp) {
            (Some(_), Some(_)) => errs.push("ipfs_connector", "only one of embedded or ipfshttp may be configured"),
            (None, None) => errs.push("ipfs_connector", "an embedded or ipfshttp section is required"),
            _ => {}
        }
        if let Some(e) = &self.embedded {
            e.validate_into(errs);
        }
        if let Some(h) = &self.ipfshttp {
            h.validate_into(errs);
        }
    }
}

/// `ipfs_connector.embedded`: an IPFS node running inside the cluster peer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbeddedIpfsConfig {
    /// Repository folder, relative to the config folder.
    pub repo_path: String,
    /// IPFS swarm listen multiaddresses.
    #[serde(with = "string_list")]
    pub listen_multiaddress: Vec<String>,
    /// IPFS peers to connect to at start (`/…/p2p/<id>`).
    #[serde(with = "string_list")]
    pub bootstrap: Vec<String>,
    /// Delay after start before connecting to other peers' IPFS nodes.
    #[serde(with = "serde_go")]
    pub connect_swarms_delay: Duration,
    /// Timeout of ordinary IPFS requests.
    #[serde(with = "serde_go")]
    pub ipfs_request_timeout: Duration,
    /// A pin is cancelled when it makes no progress for this long.
    #[serde(with = "serde_go")]
    pub pin_timeout: Duration,
    /// Unpin timeout.
    #[serde(with = "serde_go")]
    pub unpin_timeout: Duration,
    /// Repository GC timeout.
    #[serde(with = "serde_go")]
    pub repogc_timeout: Duration,
    /// Every N pins/block puts, informer metrics are pushed immediately (0 = never).
    pub informer_trigger_interval: u64,
    /// Refuse to unpin anything (hidden: omitted while false).
    #[serde(skip_serializing_if = "is_false")]
    pub unpin_disable: bool,
}

impl Default for EmbeddedIpfsConfig {
    fn default() -> Self {
        let t = DEFAULT_TIMINGS;
        EmbeddedIpfsConfig {
            repo_path: "ipfs".into(),
            listen_multiaddress: vec!["/ip4/0.0.0.0/tcp/4001".into()],
            bootstrap: Vec::new(),
            connect_swarms_delay: t.connect_swarms_delay,
            ipfs_request_timeout: t.ipfs_request_timeout,
            pin_timeout: t.pin_timeout,
            unpin_timeout: t.unpin_timeout,
            repogc_timeout: t.repogc_timeout,
            informer_trigger_interval: t.informer_trigger_interval,
            unpin_disable: t.unpin_disable,
        }
    }
}

const DEFAULT_TIMINGS: ConnectorTimings = ConnectorTimings {
    connect_swarms_delay: Duration::from_secs(30),
    ipfs_request_timeout: Duration::from_secs(5 * 60),
    pin_timeout: Duration::from_secs(2 * 60),
    unpin_timeout: Duration::from_secs(3 * 3600),
    repogc_timeout: Duration::from_secs(24 * 3600),
    informer_trigger_interval: 0,
    unpin_disable: false,
};

impl EmbeddedIpfsConfig {
    /// The repository folder resolved against the config folder.
    pub fn repo_path(&self, dir: &Path) -> PathBuf {
        resolve_path(dir, &self.repo_path)
    }

    /// The shared timing knobs.
    pub fn timings(&self) -> ConnectorTimings {
        ConnectorTimings {
            connect_swarms_delay: self.connect_swarms_delay,
            ipfs_request_timeout: self.ipfs_request_timeout,
            pin_timeout: self.pin_timeout,
            unpin_timeout: self.unpin_timeout,
            repogc_timeout: self.repogc_timeout,
            informer_trigger_interval: self.informer_trigger_interval,
            unpin_disable: self.unpin_disable,
        }
    }

    fn validate_into(&self, errs: &mut ConfigErrors) {
        check::non_empty(errs, "ipfs_connector.embedded.repo_path", &self.repo_path);
        if self.listen_multiaddress.is_empty() {
            errs.push("ipfs_connector.embedded.listen_multiaddress", "at least one listen address is required");
        }
        check::multiaddrs(errs, "ipfs_connector.embedded.listen_multiaddress", &self.listen_multiaddress);
        check::peer_multiaddrs(errs, "ipfs_connector.embedded.bootstrap", &self.bootstrap);
        check::positive(errs, "ipfs_connector.embedded.ipfs_request_timeout", self.ipfs_request_timeout);
    }
}

/// `ipfs_connector.ipfshttp`: an external Kubo daemon.
///
/// The timing keys repeat those of [`EmbeddedIpfsConfig`] on purpose: serde cannot flatten a
/// shared struct into a section that denies unknown keys. [`ConnectorTimings`] is the shared view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IpfsHttpConfig {
    /// Kubo RPC API address (`/ip4/…/tcp/5001`, `/dns4/…`, or `/unix/…`).
    pub node_multiaddress: String,
    /// Delay after start before connecting to other peers' IPFS nodes.
    #[serde(with = "serde_go")]
    pub connect_swarms_delay: Duration,
    /// Timeout of ordinary IPFS requests.
    #[serde(with = "serde_go")]
    pub ipfs_request_timeout: Duration,
    /// A pin is cancelled when it makes no progress for this long.
    #[serde(with = "serde_go")]
    pub pin_timeout: Duration,
    /// Unpin timeout.
    #[serde(with = "serde_go")]
    pub unpin_timeout: Duration,
    /// Repository GC timeout.
    #[serde(with = "serde_go")]
    pub repogc_timeout: Duration,
    /// Every N pins/block puts, informer metrics are pushed immediately (0 = never).
    pub informer_trigger_interval: u64,
    /// Refuse to unpin anything (hidden: omitted while false).
    #[serde(skip_serializing_if = "is_false")]
    pub unpin_disable: bool,
}

impl Default for IpfsHttpConfig {
    fn default() -> Self {
        let t = DEFAULT_TIMINGS;
        IpfsHttpConfig {
            node_multiaddress: "/ip4/127.0.0.1/tcp/5001".into(),
            connect_swarms_delay: t.connect_swarms_delay,
            ipfs_request_timeout: t.ipfs_request_timeout,
            pin_timeout: t.pin_timeout,
            unpin_timeout: t.unpin_timeout,
            repogc_timeout: t.repogc_timeout,
            informer_trigger_interval: t.informer_trigger_interval,
            unpin_disable: t.unpin_disable,
        }
    }
}

impl IpfsHttpConfig {
    /// The shared timing knobs.
    pub fn timings(&self) -> ConnectorTimings {
        ConnectorTimings {
            connect_swarms_delay: self.connect_swarms_delay,
            ipfs_request_timeout: self.ipfs_request_timeout,
            pin_timeout: self.pin_timeout,
            unpin_timeout: self.unpin_timeout,
            repogc_timeout: self.repogc_timeout,
            informer_trigger_interval: self.informer_trigger_interval,
            unpin_disable: self.unpin_disable,
        }
    }

    fn validate_into(&self, errs: &mut ConfigErrors) {
        check::node_multiaddr(errs, "ipfs_connector.ipfshttp.node_multiaddress", &self.node_multiaddress);
        check::positive(errs, "ipfs_connector.ipfshttp.ipfs_request_timeout", self.ipfs_request_timeout);
    }
}
