//! The peer: builds the supervision tree and implements the cluster operations on top of it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cluster_actors::{ActorRef, RestartPolicy, Supervisor};
use cluster_consensus::{Consensus, ConsensusError, SinglePeerConsensus};
use cluster_ipfs::IpfsConnector;
use cluster_observe::{ActorLabels, Metrics};
use cluster_state::StateStore;
use cluster_tracker::{PinTrackerActor, TrackerConfig, TrackerMsg};
use cluster_types::error::NOT_FOUND_MESSAGE;
use cluster_types::{
    Alert, ApiError, Cid, ErrorCode, GlobalPinInfo, Metric, Pin, PinInfo, PinMode, PinOptions, PinType,
    PinTypeFilter, Timestamp, ID,
};
use futures::stream::{BoxStream, StreamExt};
use tokio::sync::{mpsc, oneshot};

use crate::allocator::{allocate, AllocationRequest};
use crate::consensus_actor::{ConsensusActor, ConsensusMsg};
use crate::informer::{InformerActor, InformerSettings, QueueSizeFn};
use crate::ipfs_actor::{IpfsActor, IpfsClient, IpfsTimeouts};
use crate::monitor::{MonitorActor, MonitorLinks, MonitorMsg};
use crate::repin::Repinner;
use crate::rpc_server::RpcServer;
use cluster_consensus::{CrdtConsensus, CrdtSettings, CrdtStore, NetCrdtNetwork};
use cluster_net::{GossipMessage, InboundRpc, Net, NetActor, NetConfig, NetEvent, TrustSet};
use crate::sync::SyncActor;
use crate::walk::walk_state;

/// Everything a peer needs to know to run, already validated (built from service.json).
#[derive(Clone)]
pub struct ClusterSettings {
    /// Cluster peer id.
    pub peer_id: String,
    /// Human-readable name.
    pub peername: String,
    /// Default replication factors.
    pub replication_factor_min: i32,
    /// Default replication factors.
    pub replication_factor_max: i32,
    /// Expired-pin sweep period.
    pub state_sync_interval: Duration,
    /// Automatic recover period.
    pub pin_recover_interval: Duration,
    /// Metrics used to choose allocations, in priority order.
    pub allocate_by: Vec<String>,
    /// Monitor expiry check period.
    pub monitor_check_interval: Duration,
    /// Informers.
    pub informers: InformerSettings,
    /// Pin tracker tuning.
    pub concurrent_pins: usize,
    /// Capacity of each tracker queue.
    pub max_pin_queue_size: usize,
    /// Pins younger than this go to the priority queue.
    pub priority_pin_max_age: Duration,
    /// Pins retried more than this leave the priority queue.
    pub priority_pin_max_retries: u32,
    /// No-progress timeout of a pin.
    pub pin_timeout: Duration,
    /// IPFS timeouts.
    pub ipfs_timeouts: IpfsTimeouts,
    /// How often supervisors check their children.
    pub heartbeat_interval: Duration,
    /// Base restart policy; stuck timeouts are derived per actor from the IPFS timeouts.
    pub restart_policy: RestartPolicy,
    /// The libp2p host.
    pub net: NetConfig,
    /// Per-peer timeout of cluster-wide calls (status, peers, recover).
    pub peer_call_timeout: Duration,
    /// Re-allocate the pins of a peer that went down.
    pub repinning: bool,
    /// How long a peer must stay down before its pins are re-allocated.
    pub repin_grace: Duration,
    /// Most pins re-allocated per second by this peer.
    pub repin_rate: u32,
    /// Allocate only to trusted peers.
    pub pin_only_on_trusted_peers: bool,
    /// Allocate only to untrusted peers.
    pub pin_only_on_untrusted_peers: bool,
}

/// How the peer agrees on the pinset.
#[derive(Clone)]
pub enum ConsensusMode {
    /// Alone, over a plain store (also the stand-in for Raft until it exists).
    Single(Arc<dyn StateStore>),
    /// CRDT over gossip, the default.
    Crdt {
        /// The CRDT store.
        store: Arc<CrdtStore>,
        /// Batching and anti-entropy tuning.
        settings: CrdtSettings,
        /// Gossip topic of the consensus.
        topic: String,
    },
    /// Raft: a leader orders writes; its messages travel over the cluster RPC.
    Raft(cluster_consensus::RaftSettings),
}

/// Errors starting a peer.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The IPFS node did not answer at start.
    #[error("ipfs is not ready: {0}")]
    IpfsNotReady(String),
    /// Consensus could not start.
    #[error("consensus is not ready: {0}")]
    Consensus(String),
}

/// One running peer: cheap to clone, every clone drives the same actors.
#[derive(Clone)]
pub struct Cluster {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) settings: ClusterSettings,
    pub(crate) supervisor: Supervisor,
    pub(crate) ipfs: Arc<dyn IpfsConnector>,
    pub(crate) consensus: Arc<dyn Consensus>,
    pub(crate) crdt: Option<Arc<CrdtConsensus>>,
    pub(crate) raft: Option<Arc<cluster_consensus::RaftConsensus>>,
    pub(crate) state: Arc<dyn StateStore>,
    pub(crate) consensus_ref: ActorRef<ConsensusMsg>,
    pub(crate) tracker: ActorRef<TrackerMsg>,
    pub(crate) monitor: ActorRef<MonitorMsg>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) net: Net,
    pub(crate) trust: TrustSet,
    pub(crate) cluster_addresses: Arc<std::sync::RwLock<Vec<String>>>,
}

/// How long API-facing asks to actors may take before answering 503.
const ASK_TIMEOUT: Duration = Duration::from_secs(30);

fn unavailable(what: &str) -> ApiError {
    ApiError::new(ErrorCode::Unavailable, format!("{what} is not available (restarting or overloaded), try again"))
}

impl Cluster {
    /// Builds the supervision tree and starts every component.
    pub async fn start(
        settings: ClusterSettings,
        backend: Arc<dyn IpfsConnector>,
        mode: ConsensusMode,
        metrics: Arc<Metrics>,
    ) -> Result<Cluster, ClusterError> {
        let supervisor = Supervisor::new("root", settings.heartbeat_interval);
        let base = settings.restart_policy.clone();
        let t = settings.ipfs_timeouts.clone();

        // IPFS: calls without progress for longer than any per-call timeout mean a wedged backend.
        let ipfs_policy = RestartPolicy {
            stuck_timeout: t.request.max(settings.pin_timeout) + Duration::from_secs(30),
            ..base.clone()
        };
        let ipfs_ref = {
            let (b, m) = (Arc::clone(&backend), Arc::clone(&metrics));
            supervisor.spawn("ipfs_connector", 4096, ipfs_policy, move || IpfsActor::new(Arc::clone(&b), Arc::clone(&m), 64))
        };
        let ipfs: Arc<dyn IpfsConnector> = Arc::new(IpfsClient::new(ipfs_ref, t.clone()));
        let ipfs_id = match tokio::time::timeout(t.request, ipfs.id()).await {
            Ok(Ok(id)) => id,
            Ok(Err(e)) => return Err(ClusterError::IpfsNotReady(e.to_string())),
            Err(_) => return Err(ClusterError::IpfsNotReady("timed out".into())),
        };

        // The host comes up before consensus, which gossips through it.
        let (inbound_tx, inbound_rx) = mpsc::channel::<InboundRpc>(1024);
        let (gossip_tx, gossip_rx) = mpsc::channel::<GossipMessage>(16_384);
        let (events_tx, _) = tokio::sync::broadcast::channel::<NetEvent>(1024);
        let trust = settings.net.trust.clone();
        let local_peer = settings.net.keypair.public().to_peer_id();
        let net_ref = {
            let (cfg, i, g, e) = (settings.net.clone(), inbound_tx, gossip_tx, events_tx.clone());
            supervisor.spawn("net", 4096, base.clone(), move || NetActor::new(cfg.clone(), i.clone(), g.clone(), e.clone()))
        };
        let net = Net::new(net_ref, local_peer, settings.peer_call_timeout);
        let cluster_addresses = Arc::new(std::sync::RwLock::new(Vec::new()));

        let (changes_tx, changes_rx) = mpsc::channel(4096);
        let mut raft = None;
        let (consensus, crdt, state): (Arc<dyn Consensus>, Option<Arc<CrdtConsensus>>, Arc<dyn StateStore>) = match mode {
            ConsensusMode::Single(state) => (
                Arc::new(SinglePeerConsensus::new(settings.peer_id.clone(), Arc::clone(&state), changes_tx)),
                None,
                state,
            ),
            ConsensusMode::Raft(raft_settings) => {
                let transport = Arc::new(cluster_consensus::raft::NetRaftTransport { net: net.clone() });
                let r = cluster_consensus::RaftConsensus::start(raft_settings, transport, changes_tx)
                    .await
                    .map_err(|e| ClusterError::Consensus(e.to_string()))?;
                raft = Some(Arc::clone(&r));
                let state = r.fjall_state() as Arc<dyn StateStore>;
                (r as Arc<dyn Consensus>, None, state)
            }
            ConsensusMode::Crdt { store, settings: crdt_settings, topic } => {
                let network = Arc::new(NetCrdtNetwork { net: net.clone(), topic, timeout: settings.peer_call_timeout });
                let c = CrdtConsensus::start(crdt_settings, Arc::clone(&store), network, trust.clone(), changes_tx);
                (Arc::clone(&c) as Arc<dyn Consensus>, Some(c), store as Arc<dyn StateStore>)
            }
        };

        let tracker_cfg = TrackerConfig {
            self_peer: settings.peer_id.clone(),
            peername: settings.peername.clone(),
            concurrent_pins: settings.concurrent_pins,
            max_pin_queue_size: settings.max_pin_queue_size,
            priority_pin_max_age: settings.priority_pin_max_age,
            priority_pin_max_retries: settings.priority_pin_max_retries,
            pin_timeout: settings.pin_timeout,
            unpin_timeout: t.unpin,
            ipfs_peer_id: ipfs_id.id.clone(),
            ipfs_addresses: ipfs_id.addresses.clone(),
        };
        let tracker_policy = RestartPolicy { stuck_timeout: settings.pin_timeout * 2 + Duration::from_secs(30), ..base.clone() };
        let tracker = {
            let (i, s, m) = (Arc::clone(&ipfs), Arc::clone(&state), Arc::clone(&metrics));
            supervisor.spawn("pin_tracker", 65_536, tracker_policy, move || {
                PinTrackerActor::new(tracker_cfg.clone(), Arc::clone(&i), Arc::clone(&s), Arc::clone(&m))
            })
        };

        // Raft needs the RPC server running to elect a leader or join, so it is waited on
        // once everything is up.
        if raft.is_none() {
            consensus.ready().await.map_err(|e| ClusterError::Consensus(e.to_string()))?;
        }
        let changes_rx = Arc::new(tokio::sync::Mutex::new(changes_rx));
        let restarted = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let consensus_ref = {
            let (c, tr) = (Arc::clone(&consensus), tracker.clone());
            supervisor.spawn("consensus", 65_536, base.clone(), move || {
                ConsensusActor::new(Arc::clone(&c), Arc::clone(&changes_rx), tr.clone(), Arc::clone(&restarted))
            })
        };

        let check = settings.monitor_check_interval;
        let (alerts_tx, alerts_rx) = mpsc::channel::<Alert>(1024);
        let links = MonitorLinks {
            net: Some(net.clone()),
            peerset: crdt.as_ref().map(|c| {
                let c = Arc::clone(c);
                Arc::new(move |peers: Vec<String>| c.set_peerset(peers)) as crate::monitor::PeersetHook
            }),
            alerts: Some(alerts_tx),
        };
        let monitor = supervisor.spawn("monitor", 16_384, base.clone(), move || MonitorActor::with_links(check, links.clone()));
        let queue_size: QueueSizeFn = {
            let tr = tracker.clone();
            Arc::new(move || {
                let tr = tr.clone();
                Box::pin(async move {
                    tr.ask_timeout(|reply| TrackerMsg::PinQueueSize { reply }, Duration::from_secs(5))
                        .await
                        .ok()
                })
            })
        };
        {
            let mut s = settings.informers.clone();
            s.cluster_addresses = Arc::clone(&cluster_addresses);
            let (i, mo) = (Arc::clone(&ipfs), monitor.clone());
            supervisor.spawn("informer", 64, base.clone(), move || {
                InformerActor::new(s.clone(), Arc::clone(&i), mo.clone(), Arc::clone(&queue_size))
            });
        }
        {
            let (st, c, tr) = (Arc::clone(&state), consensus_ref.clone(), tracker.clone());
            let (a, b) = (settings.state_sync_interval, settings.pin_recover_interval);
            supervisor.spawn("pinset_watcher", 16, base.clone(), move || {
                SyncActor::new(Arc::clone(&st), c.clone(), tr.clone(), a, b)
            });
        }
        tracing::info!(peer = %settings.peer_id, peername = %settings.peername, ipfs = %ipfs_id.id, "cluster peer ready");
        let cluster = Cluster {
            inner: Arc::new(Inner {
                settings,
                supervisor,
                ipfs,
                consensus,
                crdt,
                raft,
                state,
                consensus_ref,
                tracker,
                monitor,
                metrics,
                net,
                trust,
                cluster_addresses,
            }),
        };
        // These two act on behalf of the whole peer, so they hold a weak handle on it.
        let inbound = Arc::new(tokio::sync::Mutex::new(inbound_rx));
        let gossip = Arc::new(tokio::sync::Mutex::new(gossip_rx));
        let weak = Arc::downgrade(&cluster.inner);
        cluster.inner.supervisor.spawn("rpc", 1024, base.clone(), move || {
            RpcServer::new(weak.clone(), Arc::clone(&inbound), Arc::clone(&gossip), events_tx.clone())
        });
        let weak = Arc::downgrade(&cluster.inner);
        let alerts_rx = Arc::new(tokio::sync::Mutex::new(alerts_rx));
        cluster.inner.supervisor.spawn("repinner", 64, base, move || Repinner::new(weak.clone(), Arc::clone(&alerts_rx)));
        cluster.publish_addresses().await;
        if cluster.inner.raft.is_some() {
            cluster.inner.consensus.ready().await.map_err(|e| ClusterError::Consensus(e.to_string()))?;
        }
        Ok(cluster)
    }

    /// With Raft: becomes true when this peer was removed from the cluster (the daemon then
    /// shuts down and moves its raft data aside).
    pub fn removed_from_cluster(&self) -> Option<tokio::sync::watch::Receiver<bool>> {
        self.inner.raft.as_ref().map(|r| r.removed())
    }

    /// The root supervisor (for health snapshots, chaos kills and meltdown signals).
    pub fn supervisor(&self) -> &Supervisor {
        &self.inner.supervisor
    }

    /// Stops every actor and makes the state durable.
    pub async fn shutdown(&self) {
        self.inner.supervisor.shutdown().await;
        if let Err(e) = self.inner.consensus.shutdown().await {
            tracing::warn!(error = %e, "consensus shutdown failed");
        }
    }

    /// `POST /peers`: adding ourselves is a no-op; other peers need multi-peer consensus.
    pub async fn peer_add(&self, peer: &str) -> Result<ID, ApiError> {
        if peer.trim().is_empty() {
            return Err(ApiError::bad_request("peer_id is empty"));
        }
        if peer != self.inner.settings.peer_id {
            self.inner.consensus.add_peer(peer).await.map_err(ApiError::from)?;
        }
        Ok(self.id().await)
    }

    pub(crate) fn state_get(&self, cid: &Cid) -> Result<Option<Pin>, ApiError> {
        self.inner.state.get(cid).map_err(ApiError::from)
    }

    /// Pins `cid` with `opts` (§5.3): validates, allocates and commits; returns the committed pin.
    pub async fn pin(&self, cid: Cid, opts: PinOptions) -> Result<Pin, ApiError> {
        if let Some(from) = opts.pin_update
            && from != cid {
                return self.pin_update(from, cid, opts).await;
            }
        let existing = self.state_get(&cid)?;
        let mut pin = Pin::with_options(cid, opts);
        self.prepare(&mut pin, existing.as_ref())?;
        let current = existing.map(|p| p.allocations).unwrap_or_default();
        pin.allocations = self.allocate(&pin, &current).await?;
        self.commit_pin(pin).await
    }

    async fn pin_update(&self, from: Cid, to: Cid, opts: PinOptions) -> Result<Pin, ApiError> {
        let Some(existing) = self.state_get(&from)? else {
            return Err(ApiError::not_found(format!("pin update source {from}: {NOT_FOUND_MESSAGE}")));
        };
        if existing.pin_type != PinType::Data {
            return Err(ApiError::bad_request("pin update source must be a normal pin"));
        }
        // Copies everything from the source; only the name and a future expiry may change.
        let mut pin = existing.clone();
        pin.cid = to;
        pin.options.pin_update = Some(from);
        if !opts.name.is_empty() {
            pin.options.name = opts.name;
        }
        if !opts.expire_at.is_zero() {
            pin.options.expire_at = opts.expire_at;
        }
        pin.timestamp = Timestamp::now();
        pin.validate()?;
        self.commit_pin(pin).await
    }

    fn prepare(&self, pin: &mut Pin, existing: Option<&Pin>) -> Result<(), ApiError> {
        let s = &self.inner.settings;
        if pin.options.replication_factor_min == 0 {
            pin.options.replication_factor_min = s.replication_factor_min;
        }
        if pin.options.replication_factor_max == 0 {
            pin.options.replication_factor_max = s.replication_factor_max;
        }
        pin.max_depth = pin.options.mode.max_depth();
        pin.validate()?;
        if let Some(old) = existing {
            if old.pin_type != pin.pin_type {
                return Err(ApiError::new(ErrorCode::Conflict, format!("cannot change the type of pin {}", pin.cid)));
            }
            if old.mode() == PinMode::Recursive && pin.mode() == PinMode::Direct {
                return Err(ApiError::new(
                    ErrorCode::Conflict,
                    format!("pin {} is recursive and cannot be changed to direct: unpin it first", pin.cid),
                ));
            }
        }
        pin.timestamp = Timestamp::now();
        Ok(())
    }

    pub(crate) async fn allocate(&self, pin: &Pin, current: &[String]) -> Result<Vec<String>, ApiError> {
        self.allocate_excluding(pin, current, &[]).await
    }

    /// Allocation (§10) with `blacklist` excluded, honouring the trusted/untrusted-only rules.
    pub(crate) async fn allocate_excluding(&self, pin: &Pin, current: &[String], blacklist: &[String]) -> Result<Vec<String>, ApiError> {
        if pin.is_pin_everywhere() {
            return Ok(Vec::new());
        }
        let mut metrics = Vec::new();
        for name in &self.inner.settings.allocate_by {
            let latest = self
                .inner
                .monitor
                .ask_timeout(|reply| MonitorMsg::Latest { name: name.clone(), reply }, ASK_TIMEOUT)
                .await
                .map_err(|_| unavailable("the monitor"))?;
            let s = &self.inner.settings;
            let trust = &self.inner.trust;
            let by_peer: BTreeMap<String, Metric> = latest
                .into_iter()
                .filter(|m| !s.pin_only_on_trusted_peers || trust.is_trusted(&m.peer))
                .filter(|m| !s.pin_only_on_untrusted_peers || !trust.is_trusted(&m.peer))
                .map(|m| (m.peer.clone(), m))
                .collect();
            metrics.push((name.clone(), by_peer));
        }
        let req = AllocationRequest {
            rf_min: pin.options.replication_factor_min,
            rf_max: pin.options.replication_factor_max,
            current,
            priority: &pin.options.user_allocations,
            blacklist,
            metrics: &metrics,
        };
        allocate(&req).map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))
    }

    pub(crate) async fn commit_pin(&self, pin: Pin) -> Result<Pin, ApiError> {
        self.commit(pin, |pin, reply| ConsensusMsg::LogPin { pin, reply }).await
    }

    /// Sends a pin or unpin to the consensus actor and waits until it is durable.
    async fn commit(
        &self,
        pin: Pin,
        request: impl FnOnce(Pin, oneshot::Sender<Result<(), ConsensusError>>) -> ConsensusMsg,
    ) -> Result<Pin, ApiError> {
        let p = pin.clone();
        self.inner
            .consensus_ref
            .ask_timeout(|reply| request(p, reply), ASK_TIMEOUT)
            .await
            .map_err(|_| unavailable("consensus"))?
            .map_err(ApiError::from)?;
        Ok(pin)
    }

    /// Resolves `/ipfs/<cid>[/path]` (or `/ipns`, `/ipld`) to a CID, via IPFS only when needed.
    pub async fn resolve_path(&self, path: &str) -> Result<Cid, ApiError> {
        let trimmed = path.trim_end_matches('/');
        let mut parts = trimmed.trim_start_matches('/').splitn(3, '/');
        let ns = parts.next().unwrap_or_default();
        let first = parts.next().unwrap_or_default();
        let rest = parts.next();
        if !matches!(ns, "ipfs" | "ipns" | "ipld") || first.is_empty() {
            return Err(ApiError::bad_request(format!("invalid path '{path}': expected /ipfs/<cid>[/...], /ipns/<name> or /ipld/<cid>")));
        }
        if ns != "ipns" && rest.is_none() {
            return cluster_types::parse_cid(first);
        }
        if ns != "ipns" {
            cluster_types::parse_cid(first)?;
        }
        tokio::time::timeout(self.inner.settings.ipfs_timeouts.request, self.inner.ipfs.resolve(trimmed))
            .await
            .map_err(|_| ApiError::new(ErrorCode::Timeout, format!("resolving '{path}' timed out")))?
            .map_err(|e| ApiError::bad_request(format!("cannot resolve '{path}': {e}")))
    }

    /// Pins the CID a path resolves to.
    pub async fn pin_path(&self, path: &str, opts: PinOptions) -> Result<Pin, ApiError> {
        let cid = self.resolve_path(path).await?;
        self.pin(cid, opts).await
    }

    /// Unpins `cid`; 404 when it is not in the pinset.
    pub async fn unpin(&self, cid: Cid) -> Result<Pin, ApiError> {
        let Some(pin) = self.state_get(&cid)? else {
            return Err(ApiError::not_found(NOT_FOUND_MESSAGE));
        };
        if matches!(pin.pin_type, PinType::Shard | PinType::ClusterDag) {
            return Err(ApiError::bad_request(format!(
                "cannot unpin {cid}: it is part of a sharded pin; unpin the content root CID instead"
            )));
        }
        if pin.pin_type == PinType::Meta {
            // The shards and the cluster DAG go first: if this stops half way, the meta pin
            // is still there to unpin again.
            for part in self.sharded_parts(&pin).await? {
                if let Some(part) = self.state_get(&part)? {
                    self.commit(part, |pin, reply| ConsensusMsg::LogUnpin { pin, reply }).await?;
                }
            }
        }
        self.commit(pin, |pin, reply| ConsensusMsg::LogUnpin { pin, reply }).await
    }

    /// Unpins the CID a path resolves to.
    pub async fn unpin_path(&self, path: &str) -> Result<Pin, ApiError> {
        let cid = self.resolve_path(path).await?;
        self.unpin(cid).await
    }

    /// `GET /allocations`: streams the pinset straight from the store, never collecting it.
    pub fn allocations(&self, filter: PinTypeFilter) -> BoxStream<'static, Result<Pin, ApiError>> {
        let pins = walk_state(Arc::clone(&self.inner.state), move |p| filter.matches(p.pin_type));
        tokio_stream::wrappers::ReceiverStream::new(pins).map(|r| r.map_err(ApiError::from)).boxed()
    }

    /// `GET /allocations/{cid}`.
    pub async fn allocation(&self, cid: Cid) -> Result<Pin, ApiError> {
        self.state_get(&cid)?.ok_or_else(|| ApiError::not_found(NOT_FOUND_MESSAGE))
    }

    /// Sends a streaming request to the tracker and turns its per-peer answers into
    /// cluster-wide ones.
    pub(crate) fn tracker_stream(
        &self,
        request: impl FnOnce(mpsc::Sender<Result<PinInfo, ApiError>>) -> TrackerMsg + Send + 'static,
    ) -> BoxStream<'static, Result<GlobalPinInfo, ApiError>> {
        tokio_stream::wrappers::ReceiverStream::new(self.local_stream(request))
            .map(|r| r.map(GlobalPinInfo::from_pin_info))
            .boxed()
    }

    /// Sends a streaming request to the tracker; its per-peer answers arrive on the receiver
    /// (for this peer's API and for other peers' RPC streams).
    pub(crate) fn local_stream(
        &self,
        request: impl FnOnce(mpsc::Sender<Result<PinInfo, ApiError>>) -> TrackerMsg + Send + 'static,
    ) -> mpsc::Receiver<Result<PinInfo, ApiError>> {
        let (tx, rx) = mpsc::channel(1024);
        let tracker = self.inner.tracker.clone();
        tokio::spawn(async move {
            let err_tx = tx.clone();
            if tracker.send(request(tx)).await.is_err() {
                let _ = err_tx.send(Err(unavailable("the pin tracker"))).await;
            }
        });
        rx
    }

    /// Asks the tracker about one CID, as a cluster-wide answer of this peer alone.
    pub(crate) async fn tracker_ask(
        &self,
        request: impl FnOnce(oneshot::Sender<PinInfo>) -> TrackerMsg,
    ) -> Result<GlobalPinInfo, ApiError> {
        self.local_info(request).await.map(GlobalPinInfo::from_pin_info)
    }

    /// Asks the tracker about one CID.
    pub(crate) async fn local_info(&self, request: impl FnOnce(oneshot::Sender<PinInfo>) -> TrackerMsg) -> Result<PinInfo, ApiError> {
        self.inner.tracker.ask_timeout(request, ASK_TIMEOUT).await.map_err(|_| unavailable("the pin tracker"))
    }

    /// `GET /monitor/metrics`.
    pub async fn metric_names(&self) -> Result<Vec<String>, ApiError> {
        self.inner
            .monitor
            .ask_timeout(|reply| MonitorMsg::Names { reply }, ASK_TIMEOUT)
            .await
            .map_err(|_| unavailable("the monitor"))
    }

    /// `GET /monitor/metrics/{name}`.
    pub async fn metrics_of(&self, name: &str) -> Result<Vec<Metric>, ApiError> {
        let name = name.to_string();
        self.inner
            .monitor
            .ask_timeout(|reply| MonitorMsg::Latest { name, reply }, ASK_TIMEOUT)
            .await
            .map_err(|_| unavailable("the monitor"))
    }

    /// `GET /health/alerts`.
    pub async fn alerts(&self) -> Result<Vec<Alert>, ApiError> {
        self.inner
            .monitor
            .ask_timeout(|reply| MonitorMsg::Alerts { reply }, ASK_TIMEOUT)
            .await
            .map_err(|_| unavailable("the monitor"))
    }

    /// `GET /health/actors`: every actor's health, as JSON.
    pub fn actor_health(&self) -> serde_json::Value {
        serde_json::to_value(self.inner.supervisor.snapshot()).unwrap_or(serde_json::Value::Null)
    }

    /// Chaos hook: kills a named actor (the supervisor restarts it).
    pub fn kill_actor(&self, name: &str) -> Result<(), ApiError> {
        self.inner.supervisor.kill(name).map_err(|e| ApiError::not_found(e.to_string()))
    }

    /// Refreshes snapshot gauges and renders the Prometheus exposition.
    pub fn prometheus_text(&self) -> String {
        let m = &self.inner.metrics;
        if let Ok(n) = self.inner.state.len() {
            m.pins.set(n as i64);
        }
        for h in self.inner.supervisor.snapshot() {
            let l = ActorLabels { actor: h.name.clone() };
            let up = matches!(h.state, cluster_actors::ActorState::Running);
            m.actor_up.get_or_create(&l).set(i64::from(up));
            m.actor_restarts_total.get_or_create(&l).set(h.restarts);
            m.actor_mailbox_depth.get_or_create(&l).set(h.mailbox_depth as i64);
            m.actor_seconds_since_progress.get_or_create(&l).set(h.seconds_since_progress);
        }
        m.render()
    }

}
