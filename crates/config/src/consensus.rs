//! The `consensus` section: exactly one of `crdt` or `raft`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use cluster_types::duration::serde_go;
use serde::{Deserialize, Serialize};

use crate::check;
use crate::error::ConfigErrors;
use crate::serde_util::string_list;

/// Which consensus component a peer runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConsensusKind {
    /// Merkle-CRDT based, eventually consistent (the default).
    #[default]
    Crdt,
    /// Leader-based Raft.
    Raft,
}

impl FromStr for ConsensusKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "crdt" => Ok(ConsensusKind::Crdt),
            "raft" => Ok(ConsensusKind::Raft),
            other => Err(format!("unknown consensus '{other}' (expected crdt or raft)")),
        }
    }
}

impl fmt::Display for ConsensusKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConsensusKind::Crdt => "crdt",
            ConsensusKind::Raft => "raft",
        })
    }
}

/// `consensus` section. A missing section means crdt with defaults; a present one must hold
/// exactly one component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsensusConfig {
    /// CRDT consensus settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crdt: Option<CrdtConfig>,
    /// Raft consensus settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raft: Option<RaftConfig>,
}

impl Default for ConsensusConfig {
    fn default() -> Self {
        ConsensusConfig { crdt: Some(CrdtConfig::default()), raft: None }
    }
}

impl ConsensusConfig {
    /// A section holding only the default config of `kind`.
    pub fn of_kind(kind: ConsensusKind) -> Self {
        match kind {
            ConsensusKind::Crdt => ConsensusConfig { crdt: Some(CrdtConfig::default()), raft: None },
            ConsensusKind::Raft => ConsensusConfig { crdt: None, raft: Some(RaftConfig::default()) },
        }
    }

    /// The configured kind (crdt when both or neither are set; validation rejects those).
    pub fn kind(&self) -> ConsensusKind {
        if self.raft.is_some() && self.crdt.is_none() { ConsensusKind::Raft } else { ConsensusKind::Crdt }
    }

    pub(crate) fn validate_into(&self, errs: &mut ConfigErrors) {
        match (&self.crdt, &self.raft) {
            (Some(_), Some(_)) => errs.push("consensus", "only one of crdt or raft may be configured"),
            (None, None) => errs.push("consensus", "a crdt or raft section is required"),
            _ => {}
        }
        if let Some(crdt) = &self.crdt {
            crdt.validate_into(errs);
        }
        if let Some(raft) = &self.raft {
            raft.validate_into(errs);
        }
    }
}

/// `consensus.crdt`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CrdtConfig {
    /// Name of the cluster; also the pubsub topic for CRDT broadcasts.
    pub cluster_name: String,
    /// Peers whose updates are accepted and who may call trusted RPCs; `*` trusts everyone.
    #[serde(with = "string_list")]
    pub trusted_peers: Vec<String>,
    /// Batching of pin/unpin deltas.
    pub batching: CrdtBatchingConfig,
    /// How often the DAG is checked for (and repaired from) missing branches.
    #[serde(with = "serde_go")]
    pub repair_interval: Duration,
    /// How often heads are re-broadcast (hidden: omitted while default).
    #[serde(with = "serde_go", skip_serializing_if = "is_default_rebroadcast")]
    pub rebroadcast_interval: Duration,
    /// Metric whose holders form the peerset (hidden: omitted while default).
    #[serde(skip_serializing_if = "is_default_peerset_metric")]
    pub peerset_metric: String,
    /// Datastore namespace of the CRDT state (hidden: omitted while default).
    #[serde(skip_serializing_if = "is_default_crdt_namespace")]
    pub datastore_namespace: String,
}

const DEFAULT_REBROADCAST: Duration = Duration::from_secs(60);
const DEFAULT_PEERSET_METRIC: &str = "ping";
const DEFAULT_CRDT_NAMESPACE: &str = "/c";
const DEFAULT_MAX_QUEUE_SIZE: usize = 50_000;

fn is_default_rebroadcast(d: &Duration) -> bool {
    *d == DEFAULT_REBROADCAST
}
fn is_default_peerset_metric(s: &String) -> bool {
    s == DEFAULT_PEERSET_METRIC
}
fn is_default_crdt_namespace(s: &String) -> bool {
    s == DEFAULT_CRDT_NAMESPACE
}
fn is_default_max_queue_size(n: &usize) -> bool {
    *n == DEFAULT_MAX_QUEUE_SIZE
}

impl Default for CrdtConfig {
    fn default() -> Self {
        CrdtConfig {
            cluster_name: "ipfs-cluster".into(),
            trusted_peers: vec!["*".into()],
            batching: CrdtBatchingConfig::default(),
            repair_interval: Duration::from_secs(3600),
            rebroadcast_interval: DEFAULT_REBROADCAST,
            peerset_metric: DEFAULT_PEERSET_METRIC.into(),
            datastore_namespace: DEFAULT_CRDT_NAMESPACE.into(),
        }
    }
}

impl CrdtConfig {
    /// True when `trusted_peers` contains `*`.
    pub fn trusts_everyone(&self) -> bool {
        self.trusted_peers.iter().any(|p| p == "*")
    }

    fn validate_into(&self, errs: &mut ConfigErrors) {
        check::non_empty(errs, "consensus.crdt.cluster_name", &self.cluster_name);
        for peer in self.trusted_peers.iter().filter(|p| p.as_str() != "*") {
            check::peer_id(errs, "consensus.crdt.trusted_peers", peer);
        }
        if self.batching.max_batch_size > 0 && self.batching.max_batch_age.is_zero() {
            errs.push("consensus.crdt.batching.max_batch_age", "must be greater than 0s when batching is enabled");
        }
        if self.batching.max_queue_size == 0 {
            errs.push("consensus.crdt.batching.max_queue_size", "must be at least 1");
        }
        check::positive(errs, "consensus.crdt.rebroadcast_interval", self.rebroadcast_interval);
        check::non_empty(errs, "consensus.crdt.peerset_metric", &self.peerset_metric);
        check::non_empty(errs, "consensus.crdt.datastore_namespace", &self.datastore_namespace);
    }
}

/// `consensus.crdt.batching`: 0 max_batch_size disables batching.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CrdtBatchingConfig {
    /// Deltas per batch (0 = no batching).
    pub max_batch_size: usize,
    /// A batch is committed when it gets this old.
    #[serde(with = "serde_go")]
    pub max_batch_age: Duration,
    /// Pending batched items before callers block (hidden: omitted while default).
    #[serde(skip_serializing_if = "is_default_max_queue_size")]
    pub max_queue_size: usize,
}

impl Default for CrdtBatchingConfig {
    fn default() -> Self {
        CrdtBatchingConfig { max_batch_size: 0, max_batch_age: Duration::ZERO, max_queue_size: DEFAULT_MAX_QUEUE_SIZE }
    }
}

/// `consensus.raft`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RaftConfig {
    /// Peer ids forming the initial peerset (empty = just this peer).
    #[serde(with = "string_list")]
    pub init_peerset: Vec<String>,
    /// How long to wait for a leader at start.
    #[serde(with = "serde_go")]
    pub wait_for_leader_timeout: Duration,
    /// Raft transport timeout.
    #[serde(with = "serde_go")]
    pub network_timeout: Duration,
    /// Retries for a failed commit.
    pub commit_retries: u32,
    /// Pause between commit retries.
    #[serde(with = "serde_go")]
    pub commit_retry_delay: Duration,
    /// Old raft data folders kept when state is cleaned.
    pub backups_rotate: u32,
    /// Raft heartbeat timeout.
    #[serde(with = "serde_go")]
    pub heartbeat_timeout: Duration,
    /// Raft election timeout.
    #[serde(with = "serde_go")]
    pub election_timeout: Duration,
    /// Raft commit timeout.
    #[serde(with = "serde_go")]
    pub commit_timeout: Duration,
    /// Maximum log entries per append request.
    pub max_append_entries: u32,
    /// Log entries kept after a snapshot.
    pub trailing_logs: u64,
    /// How often a snapshot is considered.
    #[serde(with = "serde_go")]
    pub snapshot_interval: Duration,
    /// Log entries that trigger a snapshot.
    pub snapshot_threshold: u64,
    /// Leader lease.
    #[serde(with = "serde_go")]
    pub leader_lease_timeout: Duration,
    /// Raft data folder (hidden; empty = `<config folder>/raft`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub data_folder: String,
    /// Datastore namespace of the raft state (hidden: omitted while default).
    #[serde(skip_serializing_if = "is_default_raft_namespace")]
    pub datastore_namespace: String,
}

const DEFAULT_RAFT_NAMESPACE: &str = "/r";

fn is_default_raft_namespace(s: &String) -> bool {
    s == DEFAULT_RAFT_NAMESPACE
}

impl Default for RaftConfig {
    fn default() -> Self {
        RaftConfig {
            init_peerset: Vec::new(),
            wait_for_leader_timeout: Duration::from_secs(15),
            network_timeout: Duration::from_secs(10),
            commit_retries: 1,
            commit_retry_delay: Duration::from_millis(200),
            backups_rotate: 6,
            heartbeat_timeout: Duration::from_secs(1),
            election_timeout: Duration::from_secs(1),
            commit_timeout: Duration::from_millis(50),
            max_append_entries: 64,
            trailing_logs: 10240,
            snapshot_interval: Duration::from_secs(120),
            snapshot_threshold: 8192,
            leader_lease_timeout: Duration::from_millis(500),
            data_folder: String::new(),
            datastore_namespace: DEFAULT_RAFT_NAMESPACE.into(),
        }
    }
}

impl RaftConfig {
    fn validate_into(&self, errs: &mut ConfigErrors) {
        for peer in &self.init_peerset {
            check::peer_id(errs, "consensus.raft.init_peerset", peer);
        }
        check::positive(errs, "consensus.raft.wait_for_leader_timeout", self.wait_for_leader_timeout);
        check::positive(errs, "consensus.raft.network_timeout", self.network_timeout);
        check::positive(errs, "consensus.raft.heartbeat_timeout", self.heartbeat_timeout);
        check::positive(errs, "consensus.raft.election_timeout", self.election_timeout);
        check::positive(errs, "consensus.raft.commit_timeout", self.commit_timeout);
        check::positive(errs, "consensus.raft.snapshot_interval", self.snapshot_interval);
        check::positive(errs, "consensus.raft.leader_lease_timeout", self.leader_lease_timeout);
        if self.backups_rotate == 0 {
            errs.push("consensus.raft.backups_rotate", "must be at least 1");
        }
        // Raft itself rejects these combinations; failing here names the key instead.
        if self.election_timeout < self.heartbeat_timeout {
            errs.push("consensus.raft.election_timeout", "must not be shorter than heartbeat_timeout");
        }
        if self.leader_lease_timeout > self.heartbeat_timeout {
            errs.push("consensus.raft.leader_lease_timeout", "must not be longer than heartbeat_timeout");
        }
        if !(1..=1024).contains(&self.max_append_entries) {
            errs.push("consensus.raft.max_append_entries", "must be between 1 and 1024");
        }
        check::non_empty(errs, "consensus.raft.datastore_namespace", &self.datastore_namespace);
    }
}
