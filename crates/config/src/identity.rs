//! identity.json: the peer id and its libp2p private key (protobuf-encoded, base64), kept apart
//! from service.json so the latter can be shared between peers.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use libp2p::PeerId;
use libp2p::identity::Keypair;
use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// Env variable overriding the peer id.
pub const ENV_ID: &str = "CLUSTER_ID";
/// Env variable overriding the private key.
pub const ENV_PRIVATE_KEY: &str = "CLUSTER_PRIVATEKEY";

/// The on-disk shape, with the original's keys.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentityJson {
    id: String,
    private_key: String,
}

/// A peer identity whose id is known to match its key.
#[derive(Clone)]
pub struct Identity {
    peer_id: PeerId,
    keypair: Keypair,
}

impl fmt::Debug for Identity {
    // The private key is deliberately left out so identities can be logged.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity").field("id", &self.peer_id).finish_non_exhaustive()
    }
}

impl PartialEq for Identity {
    fn eq(&self, other: &Self) -> bool {
        // The id is derived from the public key, so equal ids mean equal keys.
        self.peer_id == other.peer_id
    }
}

impl Identity {
    /// A fresh Ed25519 identity.
    pub fn generate() -> Self {
        Self::from_keypair(Keypair::generate_ed25519())
    }

    /// Wraps an existing keypair.
    pub fn from_keypair(keypair: Keypair) -> Self {
        Identity { peer_id: keypair.public().to_peer_id(), keypair }
    }

    /// Builds an identity from the two identity.json strings, checking that they match.
    pub fn from_parts(id: &str, private_key: &str) -> Result<Self, ConfigError> {
        let fail = |m: String| ConfigError::Identity(m);
        let expected = PeerId::from_str(id.trim()).map_err(|e| fail(format!("id '{id}' is not a valid peer id: {e}")))?;
        let key = private_key.trim();
        let bytes = STANDARD
            .decode(key)
            .or_else(|_| STANDARD_NO_PAD.decode(key))
            .map_err(|e| fail(format!("private_key is not valid base64: {e}")))?;
        let keypair = Keypair::from_protobuf_encoding(&bytes).map_err(|e| {
            fail(format!("private_key cannot be decoded (only Ed25519 keys are supported): {e}"))
        })?;
        let identity = Self::from_keypair(keypair);
        if identity.peer_id != expected {
            return Err(fail(format!(
                "id {expected} does not match the private key, which belongs to {}",
                identity.peer_id
            )));
        }
        Ok(identity)
    }

    /// Parses identity.json text.
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        let raw: IdentityJson = serde_json::from_str(text)
            .map_err(|e| ConfigError::Json { file: "identity.json".into(), message: e.to_string() })?;
        Self::from_parts(&raw.id, &raw.private_key)
    }

    /// Loads identity.json from `path`, with `CLUSTER_ID`/`CLUSTER_PRIVATEKEY` taking precedence.
    /// The file may be missing when both variables are set.
    pub fn load(path: &Path, env: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let from_file = match std::fs::read_to_string(path) {
            Ok(text) => Some(
                serde_json::from_str::<IdentityJson>(&text)
                    .map_err(|e| ConfigError::Json { file: path.display().to_string(), message: e.to_string() })?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(ConfigError::io(path, e)),
        };
        let pick = |var: &str, file_value: Option<&String>| {
            env.get(var).filter(|v| !v.trim().is_empty()).or(file_value).cloned()
        };
        let id = pick(ENV_ID, from_file.as_ref().map(|f| &f.id));
        let key = pick(ENV_PRIVATE_KEY, from_file.as_ref().map(|f| &f.private_key));
        match (id, key) {
            (Some(id), Some(key)) => Self::from_parts(&id, &key),
            _ => Err(ConfigError::Identity(format!(
                "{} not found (run `ipfs-cluster-service init`, or set {ENV_ID} and {ENV_PRIVATE_KEY})",
                path.display()
            ))),
        }
    }

    /// The peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The libp2p keypair.
    pub fn keypair(&self) -> Keypair {
        self.keypair.clone()
    }

    /// The private key as stored in identity.json (base64 of the libp2p protobuf encoding).
    pub fn private_key_base64(&self) -> Result<String, ConfigError> {
        let bytes = self
            .keypair
            .to_protobuf_encoding()
            .map_err(|e| ConfigError::Identity(format!("cannot encode private key: {e}")))?;
        Ok(STANDARD.encode(bytes))
    }

    /// identity.json content (pretty, trailing newline).
    pub fn to_json_pretty(&self) -> Result<String, ConfigError> {
        let raw = IdentityJson { id: self.peer_id.to_base58(), private_key: self.private_key_base64()? };
        serde_json::to_string_pretty(&raw)
            .map(|s| s + "\n")
            .map_err(|e| ConfigError::Json { file: "identity.json".into(), message: e.to_string() })
    }

    /// Writes identity.json, readable only by the owner.
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        crate::folder::write_private(path, self.to_json_pretty()?.as_bytes())
    }
}
