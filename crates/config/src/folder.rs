//! The configuration folder: `init`, loading, the `cluster.lock` guard and path helpers.
//!
//! Layout (same as the original): `service.json`, `identity.json`, `peerstore`, `cluster.lock`,
//! plus data folders (`fjall/`, `ipfs/`, `raft/`).

use std::collections::HashMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};

use crate::api::IpfsProxyConfig;
use crate::check::peer_id_of;
use crate::cluster::{decode_secret, generate_secret, ClusterConfig};
use crate::consensus::{ConsensusConfig, ConsensusKind};
use crate::error::ConfigError;
use crate::identity::Identity;
use crate::ipfs_connector::{IpfsConnectorConfig, IpfsHttpConfig};
use crate::service::ServiceConfig;

/// service.json file name.
pub const SERVICE_JSON: &str = "service.json";
/// identity.json file name.
pub const IDENTITY_JSON: &str = "identity.json";
/// Lock file name.
pub const LOCK_FILE: &str = "cluster.lock";
/// Env variable naming the config folder.
pub const ENV_CONFIG_PATH: &str = "IPFS_CLUSTER_PATH";
/// Folder name under `$HOME` when `IPFS_CLUSTER_PATH` is unset.
pub const DEFAULT_FOLDER_NAME: &str = ".ipfs-cluster";

/// Snapshot of the process environment, for callers that want real env overrides. Loaders take
/// the map explicitly so tests can supply their own.
pub fn process_env() -> HashMap<String, String> {
    std::env::vars().collect()
}

/// `IPFS_CLUSTER_PATH`, else `$HOME/.ipfs-cluster` (relative `.ipfs-cluster` without a HOME).
pub fn default_config_dir(env: &HashMap<String, String>) -> PathBuf {
    if let Some(path) = env.get(ENV_CONFIG_PATH).filter(|p| !p.trim().is_empty()) {
        return PathBuf::from(path);
    }
    match env.get("HOME").filter(|h| !h.trim().is_empty()) {
        Some(home) => Path::new(home).join(DEFAULT_FOLDER_NAME),
        None => PathBuf::from(DEFAULT_FOLDER_NAME),
    }
}

/// Resolves a path from the config against the config folder (absolute paths are kept).
pub fn resolve_path(dir: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() { p.to_path_buf() } else { dir.join(p) }
}

/// Options of `ipfs-cluster-service init`.
#[derive(Debug, Clone, Default)]
pub struct InitOptions {
    /// Consensus section to write (only that one is written).
    pub consensus: ConsensusKind,
    /// `--peers`: multiaddresses ending in `/p2p/<id>`; fill the peerstore and the trusted
    /// peers (crdt) or initial peerset (raft).
    pub peers: Vec<String>,
    /// `--randomports`: pick free ports instead of the defaults.
    pub random_ports: bool,
    /// `--force`: overwrite an existing service.json.
    pub force: bool,
    /// `--custom-secret`: 64 hex characters, or empty for an unprotected network; `None`
    /// generates a random secret.
    pub secret: Option<String>,
    /// The Kubo RPC API address (`CLUSTER_IPFSHTTP_NODEMULTIADDRESS` at init): when set, the
    /// original's `ipfs_connector.ipfshttp` section is written instead of `embedded`, with an
    /// `api.ipfsproxy` section forwarding to the same node, as the original's init writes.
    pub ipfs_node_multiaddress: Option<String>,
}

/// What `init_folder` did.
#[derive(Debug, Clone)]
pub struct InitReport {
    /// The written service.json.
    pub service_json: PathBuf,
    /// identity.json (written or kept).
    pub identity_json: PathBuf,
    /// False when an existing identity.json was kept.
    pub identity_created: bool,
    /// The written peerstore.
    pub peerstore: PathBuf,
    /// This peer's id.
    pub peer_id: PeerId,
    /// The configuration that was written.
    pub config: ServiceConfig,
}

/// Creates (or with `force`, overwrites) the configuration in `dir`. An existing identity.json
/// is always kept: regenerating it would change the peer id behind other peers' backs.
pub fn init_folder(dir: &Path, opts: &InitOptions) -> Result<InitReport, ConfigError> {
    std::fs::create_dir_all(dir).map_err(|e| ConfigError::io(dir, e))?;
    let service_json = dir.join(SERVICE_JSON);
    if service_json.exists() && !opts.force {
        return Err(ConfigError::AlreadyInitialized { path: service_json });
    }

    let peer_ids = parse_init_peers(&opts.peers)?;
    let secret = match &opts.secret {
        Some(s) => {
            decode_secret(s).map_err(|e| ConfigError::Init(format!("custom secret {e}")))?;
            s.trim().to_ascii_lowercase()
        }
        None => generate_secret(),
    };

    let mut config = ServiceConfig {
        cluster: ClusterConfig { secret, ..ClusterConfig::default() },
        consensus: ConsensusConfig::of_kind(opts.consensus),
        ..ServiceConfig::default()
    };
    if !peer_ids.is_empty() {
        if let Some(crdt) = &mut config.consensus.crdt {
            // Naming the peers replaces the trust-everyone default.
            crdt.trusted_peers = peer_ids.clone();
        }
        if let Some(raft) = &mut config.consensus.raft {
            raft.init_peerset = peer_ids;
        }
    }
    if let Some(node) = &opts.ipfs_node_multiaddress {
        let node = node.trim().to_string();
        config.ipfs_connector = IpfsConnectorConfig {
            embedded: None,
            ipfshttp: Some(IpfsHttpConfig { node_multiaddress: node.clone(), ..IpfsHttpConfig::default() }),
        };
        config.api.ipfsproxy = Some(IpfsProxyConfig { node_multiaddress: node, ..IpfsProxyConfig::default() });
    }
    if opts.random_ports {
        randomize_ports(&mut config)?;
    }
    config.validate().map_err(ConfigError::Invalid)?;

    // Settle the identity before writing anything, so a broken identity.json leaves no
    // half-initialized folder behind.
    let identity_json = dir.join(IDENTITY_JSON);
    let (identity, identity_created) = if identity_json.exists() {
        (Identity::load(&identity_json, &HashMap::new())?, false)
    } else {
        (Identity::generate(), true)
    };

    write_private(&service_json, config.to_json_pretty()?.as_bytes())?;
    if identity_created {
        identity.save(&identity_json)?;
    }
    let peerstore = config.peerstore_path(dir);
    let peer_addrs: Vec<String> = opts.peers.iter().map(|p| p.trim().to_string()).collect();
    write_peerstore(&peerstore, &peer_addrs)?;

    Ok(InitReport { service_json, identity_json, identity_created, peerstore, peer_id: identity.peer_id(), config })
}

/// Peer ids from `--peers` multiaddresses, in order and without duplicates.
fn parse_init_peers(peers: &[String]) -> Result<Vec<String>, ConfigError> {
    let mut ids: Vec<String> = Vec::new();
    for p in peers {
        let addr = Multiaddr::from_str(p.trim())
            .map_err(|e| ConfigError::Init(format!("invalid peer multiaddress '{p}': {e}")))?;
        let id = peer_id_of(&addr)
            .ok_or_else(|| ConfigError::Init(format!("peer multiaddress '{p}' has no /p2p/<peer id> part")))?
            .to_base58();
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// Replaces the TCP ports of every listener (cluster, APIs, embedded IPFS, metrics) with free
/// ones, so several peers can run on one machine.
fn randomize_ports(config: &mut ServiceConfig) -> Result<(), ConfigError> {
    let mut targets: Vec<&mut Vec<String>> = vec![&mut config.cluster.listen_multiaddress];
    if let Some(api) = &mut config.api.restapi {
        targets.push(&mut api.http_listen_multiaddress);
    }
    if let Some(api) = &mut config.api.pinsvcapi {
        targets.push(&mut api.http_listen_multiaddress);
    }
    if let Some(proxy) = &mut config.api.ipfsproxy {
        targets.push(&mut proxy.listen_multiaddress);
    }
    if let Some(embedded) = &mut config.ipfs_connector.embedded {
        targets.push(&mut embedded.listen_multiaddress);
    }
    let ports = free_ports(targets.len() + 1)?;
    for (addrs, port) in targets.into_iter().zip(&ports) {
        for addr in addrs.iter_mut() {
            *addr = with_tcp_port(addr, *port)?;
        }
    }
    let metrics = &mut config.observations.metrics.prometheus_endpoint;
    *metrics = with_tcp_port(metrics, ports[ports.len() - 1])?;
    Ok(())
}

/// `n` distinct free TCP ports. The listeners are held until all are chosen so the kernel
/// cannot hand out the same port twice.
fn free_ports(n: usize) -> Result<Vec<u16>, ConfigError> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind(("127.0.0.1", 0)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ConfigError::Init(format!("cannot find free ports: {e}")))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ConfigError::Init(format!("cannot find free ports: {e}")))
}

/// `addr` with its TCP port replaced (unchanged when it has none, e.g. unix sockets).
fn with_tcp_port(addr: &str, port: u16) -> Result<String, ConfigError> {
    let parsed = Multiaddr::from_str(addr)
        .map_err(|e| ConfigError::Init(format!("invalid multiaddress '{addr}': {e}")))?;
    let replaced: Multiaddr = parsed
        .iter()
        .map(|p| match p {
            Protocol::Tcp(_) => Protocol::Tcp(port),
            other => other,
        })
        .collect();
    Ok(replaced.to_string())
}

/// A loaded configuration folder.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// service.json with env overrides applied, validated.
    pub config: ServiceConfig,
    /// This peer's identity.
    pub identity: Identity,
    /// Multiaddresses from the peerstore file.
    pub peerstore: Vec<String>,
}

/// Loads service.json (with env overrides, validated), identity.json and the peerstore.
/// A service.json holding only a `source` URL yields [`ConfigError::RemoteSource`]: the caller
/// fetches it, then uses [`ServiceConfig::load_json`], [`load_identity`] and [`read_peerstore`].
pub fn load_folder(dir: &Path, env: &HashMap<String, String>) -> Result<Loaded, ConfigError> {
    let service_json = dir.join(SERVICE_JSON);
    let text = match std::fs::read_to_string(&service_json) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ConfigError::NotInitialized { path: service_json });
        }
        Err(e) => return Err(ConfigError::io(service_json, e)),
    };
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| ConfigError::Json { file: service_json.display().to_string(), message: e.to_string() })?;
    if let Some(url) = value.get("source").and_then(|s| s.as_str()).filter(|s| !s.is_empty()) {
        return Err(ConfigError::RemoteSource { url: url.to_string() });
    }
    let config = ServiceConfig::load_value(value, env)?;
    let identity = load_identity(dir, &config, env)?;
    let peerstore = read_peerstore(&config.peerstore_path(dir))?;
    Ok(Loaded { config, identity, peerstore })
}

/// Loads identity.json; when it is missing but an old-style service.json carries `cluster.id`
/// and `cluster.private_key`, migrates them into a new identity.json like the original does.
pub fn load_identity(
    dir: &Path,
    config: &ServiceConfig,
    env: &HashMap<String, String>,
) -> Result<Identity, ConfigError> {
    let path = dir.join(IDENTITY_JSON);
    if !path.exists()
        && let (Some(id), Some(key)) = (&config.cluster.legacy_id, &config.cluster.legacy_private_key)
    {
        let identity = Identity::from_parts(id, key)?;
        identity.save(&path)?;
        tracing::info!(path = %path.display(), "migrated the peer identity from service.json to identity.json");
    }
    Identity::load(&path, env)
}

/// Reads the peerstore: one multiaddress per line; lines not starting with `/` are ignored (as
/// in the original). A missing file is an empty peerstore.
pub fn read_peerstore(path: &Path) -> Result<Vec<String>, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text.lines().map(str::trim).filter(|l| l.starts_with('/')).map(String::from).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(ConfigError::io(path, e)),
    }
}

/// Rewrites the peerstore file with `addrs`, one per line.
pub fn write_peerstore(path: &Path, addrs: &[String]) -> Result<(), ConfigError> {
    let text: String = addrs.iter().map(|a| format!("{a}\n")).collect();
    write_private(path, text.as_bytes())
}

/// Saves service.json into `dir` (atomically, owner-only permissions since it holds the secret).
pub fn save_service_json(dir: &Path, config: &ServiceConfig) -> Result<(), ConfigError> {
    write_private(&dir.join(SERVICE_JSON), config.to_json_pretty()?.as_bytes())
}

/// Writes a file readable only by its owner, via a temporary file and a rename so a crash
/// never leaves a truncated config behind.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), ConfigError> {
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.tmp"));
    let write = || -> std::io::Result<()> {
        let mut options = OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        ConfigError::io(path, e)
    })
}

/// Exclusive hold on a configuration folder; released when dropped (or when the process dies,
/// since it is an OS advisory lock).
#[derive(Debug)]
pub struct FolderLock {
    // Held only for its lock; closing the file releases it.
    _file: File,
    path: PathBuf,
}

impl FolderLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Takes the `cluster.lock` advisory lock of `dir`, failing at once if another process (or
/// another handle in this process) holds it.
pub fn acquire_lock(dir: &Path) -> Result<FolderLock, ConfigError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| ConfigError::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(FolderLock { _file: file, path }),
        Err(TryLockError::WouldBlock) => Err(ConfigError::Lock { dir: dir.to_path_buf() }),
        Err(TryLockError::Error(e)) => Err(ConfigError::io(path, e)),
    }
}
