//! `ServiceConfig`: the whole service.json, its parsing pipeline and cross-section validation.
//!
//! Loading is: JSON text → unknown-key check (every unknown key, with its full path) →
//! deserialization with defaults (every bad value, with its key) → env overrides (every bad
//! variable, by name) → validation (every inconsistency). Each stage reports all of its
//! problems at once.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::api::ApiConfig;
use crate::cluster::ClusterConfig;
use crate::components::{validate_components, AllocatorConfig, InformerConfig, MonitorConfig, PinTrackerConfig};
use crate::consensus::ConsensusConfig;
use crate::datastore::DatastoreConfig;
use crate::env;
use crate::error::{ConfigError, ConfigErrors};
use crate::folder::resolve_path;
use crate::ipfs_connector::IpfsConnectorConfig;
use crate::observations::ObservationsConfig;
use crate::schema::{set_at, Schema};

/// The whole service.json. Field order is the original's section order, which is the order
/// they are written in.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceConfig {
    /// URL of a remote configuration; when set, the file holds nothing else.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub source: String,
    /// Peer identity-independent cluster settings.
    pub cluster: ClusterConfig,
    /// Consensus component (crdt or raft).
    pub consensus: ConsensusConfig,
    /// API components; only present ones are started.
    pub api: ApiConfig,
    /// IPFS connector (embedded or ipfshttp).
    pub ipfs_connector: IpfsConnectorConfig,
    /// Pin tracker.
    pub pin_tracker: PinTrackerConfig,
    /// Peer monitor.
    pub monitor: MonitorConfig,
    /// Allocator.
    pub allocator: AllocatorConfig,
    /// Informers.
    pub informer: InformerConfig,
    /// Metrics and tracing.
    pub observations: ObservationsConfig,
    /// Local datastore.
    pub datastore: DatastoreConfig,
}

/// The schema of `ServiceConfig`, built once.
pub(crate) fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(Schema::of::<ServiceConfig>)
}

impl ServiceConfig {
    /// Parses service.json text without env overrides or validation.
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        Self::from_value(parse_json_text(text)?)
    }

    /// Parses a JSON value without env overrides or validation. Unknown keys and unparsable
    /// values are reported with their full dotted paths.
    pub fn from_value(value: Value) -> Result<Self, ConfigError> {
        if !value.is_object() {
            return Err(ConfigError::Json {
                file: "service.json".into(),
                message: "the configuration must be a JSON object".into(),
            });
        }
        let unknown = schema().unknown_keys(&value);
        if !unknown.is_empty() {
            return Err(ConfigError::UnknownKeys(unknown));
        }
        deserialize_located(&value, &BTreeMap::new()).map_err(ConfigError::Invalid)
    }

    /// Parses service.json text, applies env overrides and validates: what the daemon uses.
    pub fn load_json(text: &str, env: &HashMap<String, String>) -> Result<Self, ConfigError> {
        Self::load_value(parse_json_text(text)?, env)
    }

    /// Like [`ServiceConfig::load_json`] for an already parsed value.
    pub fn load_value(value: Value, env: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let mut config = Self::from_value(value)?;
        config.apply_env(env)?;
        config.validate().map_err(ConfigError::Invalid)?;
        Ok(config)
    }

    /// Applies `CLUSTER_<FIELD>` (cluster section) and `CLUSTER_<COMPONENT>_<FIELD>` overrides.
    /// Overrides for components that are not configured are ignored (with a warning) so that,
    /// for example, an ipfshttp variable cannot silently add a second connector.
    pub fn apply_env(&mut self, env: &HashMap<String, String>) -> Result<(), ConfigError> {
        let mut value = serde_json::to_value(&*self).map_err(|e| ConfigError::Json {
            file: "service.json".into(),
            message: e.to_string(),
        })?;
        let applied = env::apply_overrides(schema(), &mut value, env).map_err(ConfigError::Env)?;
        if applied.is_empty() {
            return Ok(());
        }
        *self = deserialize_located(&value, &applied).map_err(ConfigError::Env)?;
        Ok(())
    }

    /// Checks every section and cross-section rule, reporting every problem found.
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let mut errs = ConfigErrors::new();
        self.cluster.validate_into(&mut errs);
        self.consensus.validate_into(&mut errs);
        self.api.validate_into(&mut errs);
        self.ipfs_connector.validate_into(&mut errs);
        validate_components(&mut errs, &self.pin_tracker, &self.monitor, &self.allocator, &self.informer);
        self.observations.validate_into(&mut errs);
        self.datastore.validate_into(&mut errs);
        if self.cluster.follower_mode && self.consensus.raft.is_some() {
            errs.push("cluster.follower_mode", "follower mode requires crdt consensus");
        }
        errs.into_result()
    }

    /// Pretty JSON (2-space indent) in the original's section order, with a trailing newline.
    pub fn to_json_pretty(&self) -> Result<String, ConfigError> {
        serde_json::to_string_pretty(self)
            .map(|s| s + "\n")
            .map_err(|e| ConfigError::Json { file: "service.json".into(), message: e.to_string() })
    }

    /// The embedded IPFS repository folder, when the embedded connector is configured.
    pub fn ipfs_repo_path(&self, dir: &Path) -> Option<PathBuf> {
        self.ipfs_connector.embedded.as_ref().map(|e| e.repo_path(dir))
    }

    /// The fjall datastore folder.
    pub fn datastore_path(&self, dir: &Path) -> PathBuf {
        self.datastore.fjall_path(dir)
    }

    /// The raft data folder (`<dir>/raft` unless `data_folder` is set).
    pub fn raft_data_path(&self, dir: &Path) -> PathBuf {
        match self.consensus.raft.as_ref().map(|r| r.data_folder.as_str()) {
            Some(folder) if !folder.is_empty() => resolve_path(dir, folder),
            _ => dir.join("raft"),
        }
    }

    /// The peerstore file.
    pub fn peerstore_path(&self, dir: &Path) -> PathBuf {
        resolve_path(dir, &self.cluster.peerstore_file)
    }
}

fn parse_json_text(text: &str) -> Result<Value, ConfigError> {
    serde_json::from_str(text).map_err(|e| ConfigError::Json { file: "service.json".into(), message: e.to_string() })
}

/// Deserializes `value`; on failure, pins every bad value to its dotted key by re-trying each
/// leaf on its own (everything else takes defaults). `env_vars` maps paths set from the
/// environment to the variable responsible, so those errors name the variable.
pub(crate) fn deserialize_located(
    value: &Value,
    env_vars: &BTreeMap<String, String>,
) -> Result<ServiceConfig, ConfigErrors> {
    let whole_error = match ServiceConfig::deserialize(value) {
        Ok(config) => return Ok(config),
        Err(e) => e,
    };
    let mut errs = ConfigErrors::new();
    for (path, leaf) in schema().leaves_of(value) {
        let mut candidate = Value::Object(Map::new());
        set_at(&mut candidate, &path, leaf.clone());
        if let Err(e) = ServiceConfig::deserialize(&candidate) {
            match env_vars.get(&path) {
                Some(var) => errs.push(&format!("{var} ({path})"), e),
                None => errs.push(&path, e),
            }
        }
    }
    if errs.is_empty() {
        // Should not happen (each leaf is independent), but never lose the error.
        errs.push("service.json", whole_error);
    }
    Err(errs)
}
