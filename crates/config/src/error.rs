//! Error types. Messages are lowercase and name the file, key or variable at fault so an
//! operator can fix the problem without reading the source.

use std::fmt;
use std::path::PathBuf;

/// Several independent problems found in one pass, so the operator fixes them all at once
/// instead of discovering them one restart at a time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<String>);

impl ConfigErrors {
    /// Creates an empty collection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one problem about `key` (a dotted JSON path or an env variable name).
    pub fn push(&mut self, key: &str, message: impl fmt::Display) {
        self.0.push(format!("{key}: {message}"));
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of problems recorded.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The recorded messages.
    pub fn messages(&self) -> &[String] {
        &self.0
    }

    /// `Ok(())` when empty, otherwise `Err(self)`.
    pub fn into_result(self) -> Result<(), ConfigErrors> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("; "))
    }
}

impl std::error::Error for ConfigErrors {}

/// Everything that can go wrong while creating, loading or locking a configuration folder.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file or folder could not be read, written or created.
    #[error("cannot access {}: {source}", path.display())]
    Io {
        /// The path being accessed.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not valid JSON (or not the expected JSON shape).
    #[error("invalid json in {file}: {message}")]
    Json {
        /// File name (or "service.json" for text passed in memory).
        file: String,
        /// The parser's explanation.
        message: String,
    },
    /// Keys that no section knows about, as full dotted paths (`cluster.foo`).
    #[error("unknown configuration key(s): {}", .0.join(", "))]
    UnknownKeys(Vec<String>),
    /// Values that do not parse or do not pass validation.
    #[error("invalid configuration: {0}")]
    Invalid(ConfigErrors),
    /// Environment overrides that could not be applied; each message names its variable.
    #[error("invalid environment override: {0}")]
    Env(ConfigErrors),
    /// Another process holds the folder lock.
    #[error("cannot acquire lock: another ipfs-cluster-service is using {}", dir.display())]
    Lock {
        /// The configuration folder.
        dir: PathBuf,
    },
    /// identity.json (or CLUSTER_ID/CLUSTER_PRIVATEKEY) is missing, malformed or inconsistent.
    #[error("invalid identity: {0}")]
    Identity(String),
    /// `init` would overwrite an existing configuration.
    #[error("configuration already exists at {} (use --force to overwrite it)", path.display())]
    AlreadyInitialized {
        /// The existing service.json.
        path: PathBuf,
    },
    /// There is no service.json to load.
    #[error("no configuration found at {} (run `ipfs-cluster-service init` first)", path.display())]
    NotInitialized {
        /// The missing service.json.
        path: PathBuf,
    },
    /// service.json only points to a remote configuration, which the caller must fetch and
    /// parse with [`crate::ServiceConfig::load_json`].
    #[error("service.json points to a remote configuration at {url}")]
    RemoteSource {
        /// The `source` URL.
        url: String,
    },
    /// Bad input to `init` (peer multiaddresses, custom secret...).
    #[error("cannot initialize configuration: {0}")]
    Init(String),
}

impl ConfigError {
    /// Shorthand for an I/O error on `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ConfigError::Io { path: path.into(), source }
    }
}
