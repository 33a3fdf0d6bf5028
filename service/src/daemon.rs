//! `ipfs-cluster-service daemon`: loads the config, starts the peer and waits for a signal.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use cluster_actors::RestartPolicy;
use cluster_api::{multiaddr_to_socketaddr, ClusterApi, RestApiConfig};
use cluster_config::{Loaded, ServiceConfig};
use cluster_consensus::{CrdtSettings, CrdtStore, RaftSettings};
use cluster_core::{Cluster, ClusterSettings, ConsensusMode, InformerSettings, IpfsTimeouts};
use cluster_net::{NetConfig, TrustSet};
use cluster_ipfs::{EmbeddedConfig, IpfsConnector, Multiaddr};
use cluster_ipfs_http::KuboConnector;
use futures::StreamExt as _;
use cluster_observe::Metrics;
use cluster_state::FjallState;

use crate::api_actor::ApiActor;
use crate::api_impl::PeerApi;
use crate::http_apis::{self, HttpApiSection as _};
use crate::proxy_actor::{ProxyActor, ProxyPeer};
use cluster_proxy::ProxyConfig;

/// Runs the daemon until SIGINT/SIGTERM or a supervision meltdown.
pub async fn run(dir: PathBuf, env: HashMap<String, String>, enable_chaos: bool, bootstrap: Vec<String>) -> Result<()> {
    if !dir.join("service.json").exists() {
        cluster_config::init_folder(&dir, &cluster_config::InitOptions::default())
            .with_context(|| format!("initializing {}", dir.display()))?;
        eprintln!("no configuration found: initialized a new one in {}", dir.display());
    }
    let _lock = cluster_config::acquire_lock(&dir)?;
    let Loaded { config, identity, peerstore } = cluster_config::load_folder(&dir, &env)?;
    let peer_id = identity.peer_id().to_string();

    let state_dir = config.datastore.fjall_path(&dir);
    let mode = consensus_mode(&config, &dir, &peer_id, &state_dir, &bootstrap)?;

    let (backend, repo) = start_ipfs(&config, &dir).await?;
    let metrics = Arc::new(Metrics::new());
    let net = net_config(&config, &identity, &peerstore, &bootstrap)?;
    let settings = settings(&config, &peer_id, repo, net);
    let cluster = Cluster::start(settings, Arc::clone(&backend), mode, Arc::clone(&metrics)).await?;
    spawn_connect_swarms(&cluster, Arc::clone(&backend), config.ipfs_connector.timings().connect_swarms_delay);

    let api: Arc<dyn ClusterApi> = Arc::new(PeerApi(cluster.clone()));
    let rest_cfg = rest_config(&config, &dir, enable_chaos)?;
    let pinsvc = match &config.api.pinsvcapi {
        Some(section) => Some((http_apis::pinsvc_config(section, &dir)?, http_apis::pinning_service(cluster.clone(), &dir)?)),
        None => None,
    };
    let metrics_addr = if config.observations.metrics.enable_stats {
        Some(multiaddr_to_socketaddr(&config.observations.metrics.prometheus_endpoint).context("observations.metrics.prometheus_endpoint")?)
    } else {
        None
    };
    // Probe the ports first so a taken port is a startup error rather than a restart loop.
    probe_port(rest_cfg.listen)?;
    if let Some(m) = metrics_addr {
        probe_port(m)?;
    }
    cluster.supervisor().spawn("rest_api", 16, RestartPolicy::default(), move || {
        ApiActor::new(rest_cfg.clone(), metrics_addr, Arc::clone(&api))
    });
    if let Some((cfg, service)) = pinsvc {
        for addr in &cfg.listen {
            probe_port(*addr)?;
        }
        cluster.supervisor().spawn("pinsvc_api", 16, RestartPolicy::default(), move || {
            http_apis::PinSvcActor::new(cfg.clone(), Arc::clone(&service))
        });
    }
    if let Some(section) = &config.api.ipfsproxy {
        let proxy_cfg = ProxyConfig::from_section(section)?;
        cluster_proxy::build(&proxy_cfg, Arc::new(ProxyPeer(cluster.clone())))?; // config errors are startup errors
        for addr in &proxy_cfg.listen {
            probe_port(*addr)?;
        }
        let backend: Arc<dyn cluster_proxy::ProxyBackend> = Arc::new(ProxyPeer(cluster.clone()));
        cluster.supervisor().spawn("ipfs_proxy", 16, RestartPolicy::default(), move || {
            ProxyActor::new(proxy_cfg.clone(), Arc::clone(&backend))
        });
    }

    // Saved periodically too, so a peer killed without a clean shutdown still finds the
    // cluster when it restarts.
    let peerstore_saver = {
        let (cluster, path) = (cluster.clone(), config.peerstore_path(&dir));
        tokio::spawn(async move {
            let mut every = tokio::time::interval(PEERSTORE_SAVE_INTERVAL);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            every.tick().await;
            loop {
                every.tick().await;
                save_peerstore(&cluster, &path).await;
            }
        })
    };
    let mut meltdown = cluster.supervisor().meltdown_signal();
    let mut removed = cluster.removed_from_cluster();
    let removed_signal = async {
        match removed.as_mut() {
            Some(rx) => {
                let _ = rx.wait_for(|r| *r).await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    let mut was_removed = false;
    let result = tokio::select! {
        _ = removed_signal => {
            tracing::info!("this peer was removed from the cluster: shutting down");
            was_removed = true;
            Ok(())
        }
        _ = shutdown_signal() => {
            tracing::info!("shutting down");
            Ok(())
        }
        res = meltdown.wait_for(Option::is_some) => {
            let why = res.ok().and_then(|v| v.clone()).unwrap_or_default();
            Err(anyhow::anyhow!("supervision meltdown: {why}"))
        }
    };
    peerstore_saver.abort();
    save_peerstore(&cluster, &config.peerstore_path(&dir)).await;
    cluster.shutdown().await;
    if let Err(e) = backend.shutdown().await {
        tracing::warn!(error = %e, "ipfs shutdown failed");
    }
    if was_removed && let Some(raft) = &config.consensus.raft {
        // A removed peer must not come back with its old raft state: move it aside.
        drop(cluster);
        let folder = raft_data_folder(raft, &dir);
        match cluster_consensus::raft::backup_data_folder(&folder, raft.backups_rotate) {
            Ok(Some(b)) => tracing::info!(backup = %b.display(), "raft data moved aside"),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "could not move the raft data aside"),
        }
    }
    result
}

/// The raft data folder: `consensus.raft.data_folder`, or `<config>/raft`.
pub(crate) fn raft_data_folder(raft: &cluster_config::RaftConfig, dir: &std::path::Path) -> PathBuf {
    if raft.data_folder.is_empty() {
        dir.join("raft")
    } else {
        let p = PathBuf::from(&raft.data_folder);
        if p.is_absolute() { p } else { dir.join(p) }
    }
}

/// Raft settings from `consensus.raft`.
pub(crate) fn raft_settings(raft: &cluster_config::RaftConfig, dir: &std::path::Path, peer_id: &str) -> RaftSettings {
    let mut s = RaftSettings::new(peer_id, &raft_data_folder(raft, dir));
    s.init_peerset = raft.init_peerset.iter().filter(|p| *p != peer_id).cloned().collect();
    s.wait_for_leader_timeout = raft.wait_for_leader_timeout;
    s.network_timeout = raft.network_timeout;
    s.commit_retries = raft.commit_retries;
    s.commit_retry_delay = raft.commit_retry_delay;
    s.heartbeat_timeout = raft.heartbeat_timeout;
    s.election_timeout = raft.election_timeout;
    s.max_append_entries = u64::from(raft.max_append_entries);
    s.trailing_logs = raft.trailing_logs;
    s.snapshot_interval = raft.snapshot_interval;
    s.snapshot_threshold = raft.snapshot_threshold;
    s
}

/// How long the daemon waits for an external IPFS daemon to answer before giving up (the
/// original's follower waits as long; Kubo often starts beside the peer and needs a moment).
const IPFS_READY_WAIT: Duration = Duration::from_secs(120);

/// Starts the configured IPFS connector: the embedded node, or a client of the external Kubo
/// daemon (waited for until it answers `id`). Also returns the folder the disk informer should
/// measure: the embedded repo; none for Kubo, whose repo is elsewhere (its `StorageMax` counts).
async fn start_ipfs(config: &ServiceConfig, dir: &std::path::Path) -> Result<(Arc<dyn IpfsConnector>, Option<PathBuf>)> {
    if let Some(http) = &config.ipfs_connector.ipfshttp {
        let kubo = KuboConnector::from_config(http).context("ipfs_connector.ipfshttp")?;
        let backend: Arc<dyn IpfsConnector> = Arc::new(kubo);
        wait_for_ipfs(backend.as_ref(), &http.node_multiaddress).await?;
        return Ok((backend, None));
    }
    let Some(embedded) = config.ipfs_connector.embedded.clone() else {
        bail!("ipfs_connector: an embedded or ipfshttp section is required");
    };
    let repo = embedded.repo_path(dir);
    let ipfs_cfg = EmbeddedConfig {
        repo_path: Some(repo.clone()),
        listen_addrs: parse_addrs(&embedded.listen_multiaddress, "ipfs_connector.embedded.listen_multiaddress")?,
        bootstrap: parse_addrs(&embedded.bootstrap, "ipfs_connector.embedded.bootstrap")?,
        ..EmbeddedConfig::default()
    };
    let backend = cluster_ipfs::start_embedded(ipfs_cfg).await.context("starting the embedded ipfs node")?;
    Ok((backend, Some(repo)))
}

/// Polls `id` until the external node answers, so a peer started beside a slower Kubo waits
/// for it instead of exiting.
async fn wait_for_ipfs(ipfs: &dyn IpfsConnector, addr: &str) -> Result<()> {
    let deadline = tokio::time::Instant::now() + IPFS_READY_WAIT;
    let mut logged = false;
    loop {
        let err = match tokio::time::timeout(Duration::from_secs(10), ipfs.id()).await {
            Ok(Ok(id)) => {
                tracing::info!(node = %addr, ipfs_id = %id.id, "ipfs daemon answers");
                return Ok(());
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => "id timed out".to_string(),
        };
        if tokio::time::Instant::now() >= deadline {
            bail!("the ipfs daemon at {addr} did not answer within {IPFS_READY_WAIT:?}: {err}");
        }
        if !logged {
            tracing::warn!(node = %addr, error = %err, "waiting for the ipfs daemon");
            logged = true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `connect_swarms_delay` after start, connects our IPFS node to every other member's (as the
/// original does), so content moves between them directly. Peers met later are connected from
/// their ping metrics by the cluster itself.
fn spawn_connect_swarms(cluster: &Cluster, ipfs: Arc<dyn IpfsConnector>, delay: Duration) {
    let cluster = cluster.clone();
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let mut addrs = Vec::new();
        let mut peers = cluster.peers();
        while let Some(id) = peers.next().await {
            if let Ok(id) = id
                && id.error.is_empty()
            {
                addrs.extend(id.ipfs.addresses);
            }
        }
        cluster_ipfs_http::connect_swarms(ipfs.as_ref(), addrs).await;
    });
}

fn parse_addrs(list: &[String], key: &str) -> Result<Vec<Multiaddr>> {
    list.iter().map(|a| a.parse::<Multiaddr>().with_context(|| format!("{key}: invalid multiaddr '{a}'"))).collect()
}

fn probe_port(addr: std::net::SocketAddr) -> Result<()> {
    std::net::TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
    Ok(())
}

fn rest_config(config: &ServiceConfig, dir: &std::path::Path, chaos_enabled: bool) -> Result<RestApiConfig> {
    let Some(rest) = config.api.restapi.as_ref() else {
        bail!("api.restapi is missing from service.json: the REST API is required");
    };
    // Several listen addresses are allowed in the file; this release serves the first one.
    let first = rest.http_listen_multiaddress.first().context("api.restapi.http_listen_multiaddress is empty")?;
    Ok(RestApiConfig {
        listen: multiaddr_to_socketaddr(first).context("api.restapi.http_listen_multiaddress")?,
        headers: rest.headers.iter().map(|(k, v)| (k.clone(), v.join(", "))).collect(),
        max_header_bytes: rest.max_header_bytes,
        chaos_enabled,
        read_header_timeout: rest.read_header_timeout,
        idle_timeout: rest.idle_timeout,
        security: rest.security(),
        tls: {
            let tls = rest.tls(dir);
            http_apis::check_tls(&tls, "api.restapi")?;
            tls
        },
    })
}

fn settings(config: &ServiceConfig, peer_id: &str, repo: Option<PathBuf>, net: NetConfig) -> ClusterSettings {
    let c = &config.cluster;
    let t = config.ipfs_connector.timings();
    let stateless = &config.pin_tracker.stateless;
    let informer = &config.informer;
    ClusterSettings {
        peer_id: peer_id.to_string(),
        peername: c.peername.clone(),
        replication_factor_min: c.replication_factor_min,
        replication_factor_max: c.replication_factor_max,
        state_sync_interval: c.state_sync_interval,
        pin_recover_interval: c.pin_recover_interval,
        allocate_by: config.allocator.balanced.allocate_by.clone(),
        monitor_check_interval: config.monitor.pubsubmon.check_interval,
        informers: InformerSettings {
            peer: peer_id.to_string(),
            peername: c.peername.clone(),
            ping_interval: c.monitor_ping_interval,
            disk_ttl: Some(informer.disk.metric_ttl),
            disk_metric_type: informer.disk.metric_type.clone(),
            tags: Some((informer.tags.tags.clone(), informer.tags.metric_ttl)),
            pinqueue: Some((informer.pinqueue.metric_ttl, informer.pinqueue.weight_bucket_size)),
            repo_path: repo,
            cluster_addresses: Arc::default(),
        },
        concurrent_pins: stateless.concurrent_pins,
        max_pin_queue_size: stateless.max_pin_queue_size,
        priority_pin_max_age: stateless.priority_pin_max_age,
        priority_pin_max_retries: stateless.priority_pin_max_retries,
        pin_timeout: t.pin_timeout,
        ipfs_timeouts: IpfsTimeouts { request: t.ipfs_request_timeout, unpin: t.unpin_timeout, repo_gc: t.repogc_timeout },
        heartbeat_interval: Duration::from_secs(1),
        restart_policy: RestartPolicy::default(),
        net,
        peer_call_timeout: Duration::from_secs(15),
        repinning: !c.disable_repinning && !c.follower_mode,
        repin_grace: c.repin_grace_period,
        repin_rate: c.repin_rate_limit,
        pin_only_on_trusted_peers: c.pin_only_on_trusted_peers,
        pin_only_on_untrusted_peers: c.pin_only_on_untrusted_peers,
    }
}

/// The crdt topic: one per cluster name, so two clusters sharing a secret never mix pinsets.
fn crdt_topic(cluster_name: &str) -> String {
    format!("crdt/{cluster_name}")
}

fn consensus_mode(
    config: &ServiceConfig,
    dir: &std::path::Path,
    peer_id: &str,
    state_dir: &std::path::Path,
    bootstrap: &[String],
) -> Result<ConsensusMode> {
    if let Some(raft) = &config.consensus.raft {
        let mut settings = raft_settings(raft, dir, peer_id);
        if !bootstrap.is_empty() {
            // Joining: start from a clean folder (the old one is kept as a backup) and ask
            // the bootstrap peers to add us instead of forming a cluster of our own.
            if let Some(b) = cluster_consensus::raft::backup_data_folder(&settings.data_folder, raft.backups_rotate)
                .with_context(|| format!("moving {} aside", settings.data_folder.display()))?
            {
                eprintln!("joining with --bootstrap: previous raft state moved to {}", b.display());
            }
            for a in bootstrap {
                let m: Multiaddr = a.parse().with_context(|| format!("invalid bootstrap multiaddress '{a}'"))?;
                let (p, _) = cluster_net::split_peer_multiaddr(&m).with_context(|| format!("bootstrap address '{a}' has no /p2p/<peer id>"))?;
                settings.join.push(p.to_string());
            }
        }
        return Ok(ConsensusMode::Raft(settings));
    }
    match &config.consensus.crdt {
        Some(crdt) => {
            let store = CrdtStore::open(state_dir, peer_id).with_context(|| format!("opening state in {}", state_dir.display()))?;
            Ok(ConsensusMode::Crdt {
                store: Arc::new(store),
                settings: CrdtSettings {
                    peer_id: peer_id.to_string(),
                    max_batch_size: crdt.batching.max_batch_size,
                    max_batch_age: crdt.batching.max_batch_age,
                    max_queue_size: crdt.batching.max_queue_size,
                    rebroadcast_interval: crdt.rebroadcast_interval,
                },
                topic: crdt_topic(&crdt.cluster_name),
            })
        }
        None => {
            let state = FjallState::open(state_dir).with_context(|| format!("opening state in {}", state_dir.display()))?;
            Ok(ConsensusMode::Single(Arc::new(state)))
        }
    }
}

fn net_config(config: &ServiceConfig, identity: &cluster_config::Identity, peerstore: &[String], bootstrap: &[String]) -> Result<NetConfig> {
    let c = &config.cluster;
    let peer_id = identity.peer_id().to_string();
    let mut dial: Vec<Multiaddr> = Vec::new();
    for (i, a) in c.peer_addresses.iter().chain(bootstrap).chain(peerstore).enumerate() {
        match a.parse::<Multiaddr>() {
            Ok(m) if cluster_net::split_peer_multiaddr(&m).is_some() => dial.push(m),
            // Only the peerstore file may hold junk (the original skips it too).
            _ if i >= c.peer_addresses.len() + bootstrap.len() => tracing::warn!(addr = %a, "ignoring peerstore line"),
            _ => bail!("invalid peer multiaddress '{a}': expected /.../p2p/<peer id>"),
        }
    }
    let trust = match &config.consensus.crdt {
        Some(crdt) => TrustSet::new(&peer_id, &crdt.trusted_peers),
        None => TrustSet::everyone(&peer_id),
    };
    let mut topics = vec![cluster_core::monitor::METRICS_TOPIC.to_string()];
    if let Some(crdt) = &config.consensus.crdt {
        topics.push(crdt_topic(&crdt.cluster_name));
    }
    Ok(NetConfig {
        keypair: identity.keypair(),
        listen: parse_addrs(&c.listen_multiaddress, "cluster.listen_multiaddress")?,
        secret: c.secret_bytes().map_err(|e| anyhow::anyhow!("cluster.secret: {e}"))?,
        dial_timeout: c.dial_peer_timeout,
        rpc_timeout: Duration::from_secs(15),
        max_in_flight: 256,
        bootstrap: dial,
        topics,
        heartbeat: c.pubsub.heartbeat_interval,
        d_factor: c.pubsub.d_factor as usize,
        history_length: c.pubsub.history_length as usize,
        history_gossip: c.pubsub.history_gossip as usize,
        flood_publish: c.pubsub.flood_publish,
        trust,
    })
}

/// How often the peerstore file is rewritten while the daemon runs.
const PEERSTORE_SAVE_INTERVAL: Duration = Duration::from_secs(30);

/// Rewrites the peerstore file with every peer we know an address of (as the original does
/// at shutdown), so a restart finds the cluster without `--bootstrap`. The file is replaced
/// atomically, and left alone when nothing changed.
async fn save_peerstore(cluster: &Cluster, path: &std::path::Path) {
    let Ok(known) = cluster.known_peer_addresses().await else { return };
    if known.is_empty() {
        return;
    }
    let text: String = known.iter().map(|a| format!("{a}\n")).collect();
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        return;
    }
    let tmp = path.with_extension("tmp");
    if let Err(e) = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, path)) {
        tracing::warn!(path = %path.display(), error = %e, "could not save the peerstore");
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
