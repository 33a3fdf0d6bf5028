//! The `datastore` section. This implementation keeps its state in fjall; the original's
//! pebble/badger/leveldb sections are recognised only to explain how to switch.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::check;
use crate::error::ConfigErrors;
use crate::folder::resolve_path;

/// Datastore sections of the original that we cannot open.
pub const LEGACY_DATASTORES: [&str; 4] = ["pebble", "badger3", "badger", "leveldb"];

/// `datastore` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatastoreConfig {
    /// The fjall key-value store (our only backend).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fjall: Option<FjallConfig>,
    /// Original's pebble section: accepted by the parser only so validation can explain the switch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pebble: Option<Value>,
    /// Original's badger3 section (see `pebble`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub badger3: Option<Value>,
    /// Original's badger section (see `pebble`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub badger: Option<Value>,
    /// Original's leveldb section (see `pebble`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leveldb: Option<Value>,
}

impl Default for DatastoreConfig {
    fn default() -> Self {
        DatastoreConfig { fjall: Some(FjallConfig::default()), pebble: None, badger3: None, badger: None, leveldb: None }
    }
}

/// `datastore.fjall`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FjallConfig {
    /// Store folder, relative to the config folder.
    pub folder: String,
}

impl Default for FjallConfig {
    fn default() -> Self {
        FjallConfig { folder: "fjall".into() }
    }
}

impl DatastoreConfig {
    /// The fjall settings, defaults when the section is absent.
    pub fn fjall_or_default(&self) -> FjallConfig {
        self.fjall.clone().unwrap_or_default()
    }

    /// The fjall folder resolved against the config folder.
    pub fn fjall_path(&self, dir: &Path) -> PathBuf {
        resolve_path(dir, &self.fjall_or_default().folder)
    }

    pub(crate) fn validate_into(&self, errs: &mut ConfigErrors) {
        let legacy = [&self.pebble, &self.badger3, &self.badger, &self.leveldb];
        for (name, section) in LEGACY_DATASTORES.iter().zip(legacy) {
            if section.is_some() {
                errs.push(
                    &format!("datastore.{name}"),
                    format_args!(
                        "this implementation stores its state in fjall, not {name}: replace the datastore \
                         section with \"datastore\": {{\"fjall\": {{\"folder\": \"fjall\"}}}} (the {name} data is \
                         not read; export the state with the original `ipfs-cluster-service state export` and \
                         import it here with `state import`)"
                    ),
                );
            }
        }
        if let Some(f) = &self.fjall {
            check::non_empty(errs, "datastore.fjall.folder", &f.folder);
        }
    }
}
