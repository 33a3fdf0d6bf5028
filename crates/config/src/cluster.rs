//! The `cluster` section: peer name, swarm secret, libp2p host and cluster-wide policies.

use std::time::Duration;

use cluster_types::duration::serde_go;
use serde::{Deserialize, Serialize};

use crate::check;
use crate::error::ConfigErrors;
use crate::serde_util::{is_false, string_list};

/// Name of the peerstore file written next to service.json.
pub const DEFAULT_PEERSTORE_FILE: &str = "peerstore";

/// Default cluster swarm listener. The original also lists `/ip4/0.0.0.0/udp/9096/quic`, which it
/// cannot use (QUIC has no private-network support); we leave it out rather than advertise a
/// listener that never works.
pub const DEFAULT_CLUSTER_LISTEN: &str = "/ip4/0.0.0.0/tcp/9096";

/// `cluster` section of service.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// Human-readable peer name (default: the host name).
    pub peername: String,
    /// Swarm secret: 32 bytes as 64 hex characters; empty = unprotected network.
    pub secret: String,
    /// Leave the cluster (remove self from the peerset) on shutdown.
    pub leave_on_shutdown: bool,
    /// libp2p listen multiaddresses for the cluster swarm.
    #[serde(with = "string_list")]
    pub listen_multiaddress: Vec<String>,
    /// Extra addresses to announce to other peers.
    #[serde(with = "string_list")]
    pub announce_multiaddress: Vec<String>,
    /// Addresses never to announce.
    #[serde(with = "string_list")]
    pub no_announce_multiaddress: Vec<String>,
    /// Act as a circuit-relay (hop) for other peers.
    pub enable_relay_hop: bool,
    /// libp2p connection manager watermarks.
    pub connection_manager: ConnMgrConfig,
    /// libp2p resource manager limits.
    pub resource_manager: ResourceMgrConfig,
    /// Gossipsub tuning.
    pub pubsub: PubsubConfig,
    /// Timeout when dialing another peer.
    #[serde(with = "serde_go")]
    pub dial_peer_timeout: Duration,
    /// How often expired pins are cleaned up from the shared state.
    #[serde(with = "serde_go")]
    pub state_sync_interval: Duration,
    /// How often failed pins/unpins are retried.
    #[serde(with = "serde_go")]
    pub pin_recover_interval: Duration,
    /// Default minimum replication factor (-1 = everywhere).
    pub replication_factor_min: i32,
    /// Default maximum replication factor (-1 = everywhere).
    pub replication_factor_max: i32,
    /// How often the `ping` metric is published.
    #[serde(with = "serde_go")]
    pub monitor_ping_interval: Duration,
    /// How often the peerset is checked for our own removal.
    #[serde(with = "serde_go")]
    pub peer_watch_interval: Duration,
    /// mDNS discovery interval (0 disables mDNS).
    #[serde(with = "serde_go")]
    pub mdns_interval: Duration,
    /// Only allocate pins to trusted peers.
    pub pin_only_on_trusted_peers: bool,
    /// Only allocate pins to untrusted peers.
    pub pin_only_on_untrusted_peers: bool,
    /// Do not re-allocate pins of peers that went down.
    pub disable_repinning: bool,
    /// How long a peer must stay down before its pins are re-allocated (not in the original:
    /// it re-pinned on the first alert).
    #[serde(with = "serde_go")]
    pub repin_grace_period: Duration,
    /// Most pins one peer re-allocates per second after a peer is lost (not in the original).
    pub repin_rate_limit: u32,
    /// Follower peers cannot modify the pinset (omitted from the file while false).
    #[serde(skip_serializing_if = "is_false")]
    pub follower_mode: bool,
    /// Peerstore file name, relative to the config folder (omitted while default).
    #[serde(skip_serializing_if = "is_default_peerstore")]
    pub peerstore_file: String,
    /// Peers dialed at start with top priority (`/…/p2p/<id>` multiaddresses).
    #[serde(with = "string_list")]
    pub peer_addresses: Vec<String>,
    /// Peer id from configs older than identity.json; only read to migrate it.
    #[serde(rename = "id", skip_serializing_if = "Option::is_none")]
    pub legacy_id: Option<String>,
    /// Private key from configs older than identity.json; only read to migrate it.
    #[serde(rename = "private_key", skip_serializing_if = "Option::is_none")]
    pub legacy_private_key: Option<String>,
}

fn is_default_peerstore(s: &String) -> bool {
    s == DEFAULT_PEERSTORE_FILE
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            peername: default_peername(),
            // A missing secret means "unprotected" (as in the original); `init` generates one.
            secret: String::new(),
            leave_on_shutdown: false,
            listen_multiaddress: vec![DEFAULT_CLUSTER_LISTEN.to_string()],
            announce_multiaddress: Vec::new(),
            no_announce_multiaddress: Vec::new(),
            enable_relay_hop: true,
            connection_manager: ConnMgrConfig::default(),
            resource_manager: ResourceMgrConfig::default(),
            pubsub: PubsubConfig::default(),
            dial_peer_timeout: Duration::from_secs(3),
            state_sync_interval: Duration::from_secs(5 * 60),
            pin_recover_interval: Duration::from_secs(12 * 60),
            replication_factor_min: -1,
            replication_factor_max: -1,
            monitor_ping_interval: Duration::from_secs(15),
            peer_watch_interval: Duration::from_secs(5),
            mdns_interval: Duration::from_secs(10),
            pin_only_on_trusted_peers: false,
            pin_only_on_untrusted_peers: false,
            disable_repinning: true,
            repin_grace_period: Duration::from_secs(60),
            repin_rate_limit: 100,
            follower_mode: false,
            peerstore_file: DEFAULT_PEERSTORE_FILE.to_string(),
            peer_addresses: Vec::new(),
            legacy_id: None,
            legacy_private_key: None,
        }
    }
}

/// `cluster.connection_manager`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnMgrConfig {
    /// Start trimming connections above this many.
    pub high_water: u32,
    /// Trim down to this many connections.
    pub low_water: u32,
    /// New connections are not trimmed during this period.
    #[serde(with = "serde_go")]
    pub grace_period: Duration,
}

impl Default for ConnMgrConfig {
    fn default() -> Self {
        ConnMgrConfig { high_water: 400, low_water: 100, grace_period: Duration::from_secs(120) }
    }
}

/// `cluster.resource_manager`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResourceMgrConfig {
    /// Enforce resource limits.
    pub enabled: bool,
    /// Memory limit in bytes (0 = 25% of RAM, at least 1 GiB).
    pub memory_limit_bytes: u64,
    /// File descriptor limit (0 = 50% of the process limit).
    pub file_descriptors_limit: u64,
}

impl Default for ResourceMgrConfig {
    fn default() -> Self {
        ResourceMgrConfig { enabled: true, memory_limit_bytes: 0, file_descriptors_limit: 0 }
    }
}

/// `cluster.pubsub` (gossipsub tuning).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PubsubConfig {
    /// How long seen message ids are remembered.
    #[serde(with = "serde_go")]
    pub seen_messages_ttl: Duration,
    /// Gossipsub heartbeat.
    #[serde(with = "serde_go")]
    pub heartbeat_interval: Duration,
    /// Multiplier applied to the default mesh degrees (D=6, Dlo=5, Dhi=12...).
    pub d_factor: u32,
    /// Heartbeats of history gossiped about.
    pub history_gossip: u32,
    /// Heartbeats of history kept.
    pub history_length: u32,
    /// Publish to all known topic peers, not only the mesh.
    pub flood_publish: bool,
}

impl Default for PubsubConfig {
    fn default() -> Self {
        PubsubConfig {
            seen_messages_ttl: Duration::from_secs(30 * 60),
            heartbeat_interval: Duration::from_secs(10),
            d_factor: 4,
            history_gossip: 2,
            history_length: 6,
            flood_publish: false,
        }
    }
}

impl ClusterConfig {
    /// Decodes the swarm secret; `None` when the network is unprotected (empty secret).
    pub fn secret_bytes(&self) -> Result<Option<[u8; 32]>, String> {
        decode_secret(&self.secret)
    }

    pub(crate) fn validate_into(&self, errs: &mut ConfigErrors) {
        if let Err(e) = self.secret_bytes() {
            errs.push("cluster.secret", e);
        }
        if self.listen_multiaddress.is_empty() {
            errs.push("cluster.listen_multiaddress", "at least one listen address is required");
        }
        check::multiaddrs(errs, "cluster.listen_multiaddress", &self.listen_multiaddress);
        check::multiaddrs(errs, "cluster.announce_multiaddress", &self.announce_multiaddress);
        check::multiaddrs(errs, "cluster.no_announce_multiaddress", &self.no_announce_multiaddress);
        check::peer_multiaddrs(errs, "cluster.peer_addresses", &self.peer_addresses);

        let cm = &self.connection_manager;
        if cm.low_water > cm.high_water {
            errs.push("cluster.connection_manager", "low_water must not be larger than high_water");
        }
        check::positive(errs, "cluster.pubsub.heartbeat_interval", self.pubsub.heartbeat_interval);
        if self.pubsub.d_factor == 0 {
            errs.push("cluster.pubsub.d_factor", "must be at least 1");
        }
        check::positive(errs, "cluster.dial_peer_timeout", self.dial_peer_timeout);
        check::positive(errs, "cluster.state_sync_interval", self.state_sync_interval);
        check::positive(errs, "cluster.pin_recover_interval", self.pin_recover_interval);
        check::positive(errs, "cluster.monitor_ping_interval", self.monitor_ping_interval);
        check::positive(errs, "cluster.peer_watch_interval", self.peer_watch_interval);
        if self.repin_rate_limit == 0 {
            errs.push("cluster.repin_rate_limit", "must be at least 1 pin per second");
        }
        check::non_empty(errs, "cluster.peerstore_file", &self.peerstore_file);

        if let Err(e) = check_replication(self.replication_factor_min, self.replication_factor_max) {
            errs.push("cluster.replication_factor_min/max", e);
        }
        if self.pin_only_on_trusted_peers && self.pin_only_on_untrusted_peers {
            errs.push(
                "cluster.pin_only_on_trusted_peers",
                "pin_only_on_trusted_peers and pin_only_on_untrusted_peers cannot both be true",
            );
        }
    }
}

/// Checks a replication factor pair: both -1 (everywhere), or 1 ≤ min ≤ max.
pub fn check_replication(min: i32, max: i32) -> Result<(), String> {
    match (min, max) {
        (-1, -1) => Ok(()),
        (-1, _) | (_, -1) => Err("min and max must both be -1 when one of them is".into()),
        (min, max) if min < 1 || max < 1 => {
            Err(format!("factors must be -1 or at least 1 (got min {min}, max {max})"))
        }
        (min, max) if min > max => Err(format!("min ({min}) is larger than max ({max})")),
        _ => Ok(()),
    }
}

/// Decodes a 64-hex-character swarm secret; empty means no private network.
pub fn decode_secret(secret: &str) -> Result<Option<[u8; 32]>, String> {
    let secret = secret.trim();
    if secret.is_empty() {
        return Ok(None);
    }
    let bytes = hex::decode(secret).map_err(|e| format!("not hex-encoded: {e}"))?;
    let array: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| format!("is {} bytes long, a cluster secret must be 32 bytes (64 hex characters)", bytes.len()))?;
    Ok(Some(array))
}

/// A fresh random swarm secret, hex-encoded.
pub fn generate_secret() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// The host name, used as the default peer name. Read from the kernel first because
/// `/etc/hostname` is often stale inside containers.
pub fn default_peername() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .find(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.trim().is_empty()))
        .unwrap_or_else(|| "ipfs-cluster-peer".to_string())
}
