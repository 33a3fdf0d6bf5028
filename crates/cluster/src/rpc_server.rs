//! The cluster-RPC actor: serves the calls other peers make (after the host checked their
//! permission), routes gossip (metrics to the monitor, deltas to the consensus) and reacts to
//! connections (anti-entropy with new peers, early alerts for lost ones).
//!
//! Streams (StatusAll, RecoverAllLocal) are served as pages: the first page answers the
//! opening call and the caller pulls the next ones with `StreamNext`. An open stream holds
//! one bounded channel; at most [`MAX_SESSIONS`] are open and idle ones are dropped, so a
//! caller that walks away costs nothing for long.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use cluster_actors::{Actor, ActorError, Context};
use cluster_net::rpc::StreamPage;
use cluster_net::{GossipMessage, InboundRpc, NetEvent, PeerId, RpcRequest, RpcResponse};
use cluster_tracker::TrackerMsg;
use cluster_types::{ApiError, ErrorCode, Metric, PinInfo, TrackerStatusFilter};
use tokio::sync::{broadcast, mpsc, Mutex, Semaphore};

use crate::cluster::{Cluster, Inner};
use crate::global::PAGE_ITEMS;
use crate::monitor::{MonitorMsg, METRICS_TOPIC};

/// Most streams open at once.
pub const MAX_SESSIONS: usize = 256;
/// Streams idle longer than this are dropped.
const SESSION_IDLE: Duration = Duration::from_secs(120);
/// Most inbound calls served at once.
const MAX_CONCURRENT: usize = 256;
/// Most inbound block batches written to IPFS at once (each holds up to
/// `MAX_BLOCK_PUT_BYTES`), so concurrent adds from many peers cannot pile up memory.
const MAX_CONCURRENT_BLOCK_PUTS: usize = 8;

struct Session {
    owner: PeerId,
    rx: Arc<Mutex<mpsc::Receiver<Result<PinInfo, ApiError>>>>,
    last: Instant,
}

type Sessions = Arc<std::sync::Mutex<HashMap<u64, Session>>>;

/// Messages: none; the actor is driven by its channels.
pub enum RpcServerMsg {}

/// The cluster-RPC actor.
pub struct RpcServer {
    cluster: Weak<Inner>,
    inbound: Arc<Mutex<mpsc::Receiver<InboundRpc>>>,
    gossip: Arc<Mutex<mpsc::Receiver<GossipMessage>>>,
    events: broadcast::Sender<NetEvent>,
    sessions: Sessions,
}

impl RpcServer {
    /// Builds an instance; the receivers are shared by every instance.
    pub(crate) fn new(
        cluster: Weak<Inner>,
        inbound: Arc<Mutex<mpsc::Receiver<InboundRpc>>>,
        gossip: Arc<Mutex<mpsc::Receiver<GossipMessage>>>,
        events: broadcast::Sender<NetEvent>,
    ) -> Self {
        RpcServer { cluster, inbound, gossip, events, sessions: Arc::default() }
    }
}

fn cluster_of(weak: &Weak<Inner>) -> Option<Cluster> {
    weak.upgrade().map(|inner| Cluster { inner })
}

impl Actor for RpcServer {
    type Msg = RpcServerMsg;

    async fn started(&mut self, ctx: &Context<RpcServerMsg>) -> Result<(), ActorError> {
        // Calls.
        let (weak, inbound, sessions) = (self.cluster.clone(), Arc::clone(&self.inbound), Arc::clone(&self.sessions));
        ctx.spawn_background(async move {
            let limit = Arc::new(Semaphore::new(MAX_CONCURRENT));
            let block_limit = Arc::new(Semaphore::new(MAX_CONCURRENT_BLOCK_PUTS));
            let mut rx = inbound.lock().await;
            while let Some(rpc) = rx.recv().await {
                let Some(cluster) = cluster_of(&weak) else { return };
                let Ok(permit) = Arc::clone(&limit).acquire_owned().await else { return };
                let sessions = Arc::clone(&sessions);
                let block_limit = Arc::clone(&block_limit);
                tokio::spawn(async move {
                    let _permit = permit;
                    let response = match rpc.request {
                        RpcRequest::BlockPut { blocks } => {
                            let Ok(_slot) = block_limit.acquire().await else { return };
                            block_put(&cluster, blocks).await
                        }
                        request => serve(&cluster, &sessions, rpc.from, request).await,
                    };
                    let _ = rpc.reply.send(response);
                });
            }
        });
        // Gossip.
        let (weak, gossip) = (self.cluster.clone(), Arc::clone(&self.gossip));
        ctx.spawn_background(async move {
            let mut rx = gossip.lock().await;
            let mut swarm_connected: HashMap<String, Vec<String>> = HashMap::new();
            while let Some(msg) = rx.recv().await {
                let Some(cluster) = cluster_of(&weak) else { return };
                route_gossip(&cluster, msg, &mut swarm_connected).await;
            }
        });
        // Connection events.
        let (weak, mut events) = (self.cluster.clone(), self.events.subscribe());
        ctx.spawn_background(async move {
            loop {
                let event = match events.recv().await {
                    Ok(e) => e,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                let Some(cluster) = cluster_of(&weak) else { return };
                on_event(&cluster, event).await;
            }
        });
        Ok(())
    }

    async fn handle(&mut self, msg: RpcServerMsg, _ctx: &Context<RpcServerMsg>) -> Result<(), ActorError> {
        match msg {}
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(Duration::from_secs(10))
    }

    async fn tick(&mut self, ctx: &Context<RpcServerMsg>) -> Result<(), ActorError> {
        let mut s = self.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        s.retain(|_, session| session.last.elapsed() < SESSION_IDLE);
        ctx.record_progress();
        Ok(())
    }

    fn observable_state(&self) -> serde_json::Value {
        let open = self.sessions.lock().map(|s| s.len()).unwrap_or(0);
        serde_json::json!({ "open_streams": open })
    }
}

async fn on_event(cluster: &Cluster, event: NetEvent) {
    let inner = &cluster.inner;
    match event {
        NetEvent::Connected(peer) => {
            if let Some(crdt) = &inner.crdt {
                crdt.request_sync(&peer.to_string());
            }
            // Learn the peer's neighbours so the swarm becomes a full mesh and gossip reaches
            // everyone directly.
            let net = inner.net.clone();
            tokio::spawn(async move {
                if let Ok(RpcResponse::Peers(addrs)) = net.call(peer, RpcRequest::ConnectedPeers, None).await {
                    remember_addresses(&net, &addrs, None);
                }
            });
        }
        NetEvent::Disconnected(peer) => {
            // A closed connection is a strong hint: if no ping arrives within one more
            // interval, the peer's ping expires now instead of waiting out its TTL.
            let grace = inner.settings.informers.ping_interval;
            let _ = inner.monitor.try_send(MonitorMsg::PeerDown { peer: peer.to_string(), grace });
        }
    }
}

async fn route_gossip(cluster: &Cluster, msg: GossipMessage, swarm_connected: &mut HashMap<String, Vec<String>>) {
    let inner = &cluster.inner;
    let Some(source) = msg.source.map(|s| s.to_string()) else { return };
    if msg.topic == METRICS_TOPIC {
        let Ok(metric) = serde_json::from_slice::<Metric>(&msg.data) else {
            tracing::debug!(%source, "dropping malformed metric");
            return;
        };
        // A peer speaks only for itself.
        if metric.peer != source {
            tracing::debug!(%source, claimed = %metric.peer, "dropping metric about another peer");
            return;
        }
        if metric.name == "ping" {
            learn_from_ping(cluster, &source, &metric, swarm_connected);
        }
        let _ = inner.monitor.try_send(MonitorMsg::Remote(metric));
    } else if let Some(crdt) = &inner.crdt {
        crdt.handle_gossip(&source, &msg.data).await;
    }
}

/// The ping metric carries the peer's IPFS and cluster addresses: connect our IPFS node to
/// its (so bitswap finds content) and remember how to reach it.
fn learn_from_ping(cluster: &Cluster, peer: &str, metric: &Metric, swarm_connected: &mut HashMap<String, Vec<String>>) {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(&metric.value) else { return };
    let list = |key: &str| -> Vec<String> {
        value.get(key).and_then(|v| v.as_array()).map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect()).unwrap_or_default()
    };
    if let Ok(pid) = peer.parse::<PeerId>() {
        remember_addresses(&cluster.inner.net, &list("cluster_addresses"), Some(pid));
    }
    let ipfs_addrs = list("ipfs_addresses");
    let ipfs_id = value.get("ipfs_id").and_then(|v| v.as_str()).unwrap_or_default().to_string();
    if ipfs_addrs.is_empty() || swarm_connected.get(peer) == Some(&ipfs_addrs) {
        return;
    }
    swarm_connected.insert(peer.to_string(), ipfs_addrs.clone());
    let ipfs = Arc::clone(&cluster.inner.ipfs);
    tokio::spawn(async move {
        for a in ipfs_addrs {
            let full = if a.contains("/p2p/") || ipfs_id.is_empty() { a } else { format!("{a}/p2p/{ipfs_id}") };
            match tokio::time::timeout(Duration::from_secs(10), ipfs.swarm_connect(&full)).await {
                Ok(Ok(())) => return,
                Ok(Err(e)) => tracing::debug!(addr = %full, error = %e, "ipfs swarm connect failed"),
                Err(_) => tracing::debug!(addr = %full, "ipfs swarm connect timed out"),
            }
        }
    });
}

/// Records the `/…/p2p/<id>` addresses in the host's book (only those of `only` when given:
/// a peer speaks for its own addresses).
fn remember_addresses(net: &cluster_net::Net, addrs: &[String], only: Option<PeerId>) {
    for a in addrs {
        if let Ok(ma) = a.parse::<cluster_net::Multiaddr>()
            && let Some((p, base)) = cluster_net::split_peer_multiaddr(&ma)
            && only.is_none_or(|o| o == p)
        {
            net.add_address(p, base);
        }
    }
}

fn error(e: ApiError) -> RpcResponse {
    RpcResponse::Error(e)
}

fn parse_cid(s: &str) -> Result<cluster_types::Cid, ApiError> {
    cluster_types::parse_cid(s)
}

async fn serve(cluster: &Cluster, sessions: &Sessions, from: PeerId, request: RpcRequest) -> RpcResponse {
    let inner = &cluster.inner;
    match request {
        RpcRequest::Id => RpcResponse::Id(cluster.id().await),
        RpcRequest::Version => RpcResponse::Text(cluster_types::VERSION.to_string()),
        RpcRequest::PeerAdd { peer } => match cluster.peer_add(&peer).await {
            Ok(id) => RpcResponse::Id(id),
            Err(e) => error(e),
        },
        RpcRequest::PeerRemove { peer } => match cluster.peer_rm(&peer).await {
            Ok(()) => RpcResponse::Done,
            Err(e) => error(e),
        },
        // Connected peers as dialable `/…/p2p/<id>` addresses: joiners use them to connect
        // to everyone, not only to their bootstrap peer.
        RpcRequest::ConnectedPeers => match inner.net.status().await {
            Ok(s) => RpcResponse::Peers(
                s.connected
                    .iter()
                    .flat_map(|p| s.known.get(p).into_iter().flatten().map(move |a| format!("{a}/p2p/{p}")))
                    .collect(),
            ),
            Err(e) => error(e.into()),
        },
        RpcRequest::Status { cid } => match parse_cid(&cid) {
            Ok(cid) => match cluster.local_info(|reply| TrackerMsg::Status { cid, reply }).await {
                Ok(pi) => RpcResponse::PinInfo(pi),
                Err(e) => error(e),
            },
            Err(e) => error(e),
        },
        RpcRequest::Recover { cid } => match parse_cid(&cid) {
            Ok(cid) => match cluster.local_info(|reply| TrackerMsg::Recover { cid, reply }).await {
                Ok(pi) => RpcResponse::PinInfo(pi),
                Err(e) => error(e),
            },
            Err(e) => error(e),
        },
        RpcRequest::StatusAll { filter } => {
            let filter = TrackerStatusFilter::from_bits(filter);
            open_stream(sessions, from, cluster.local_stream(move |out| TrackerMsg::StatusAll { filter, out })).await
        }
        RpcRequest::RecoverAllLocal => open_stream(sessions, from, cluster.local_stream(|out| TrackerMsg::RecoverAll { out })).await,
        RpcRequest::StreamNext { id } => next_page(sessions, from, id).await,
        RpcRequest::BlockPut { blocks } => block_put(cluster, blocks).await,
        RpcRequest::RepoGcLocal => RpcResponse::RepoGc(cluster.repo_gc_local().await),
        RpcRequest::RepoStat => match inner.ipfs.repo_stat().await {
            Ok(s) => RpcResponse::RepoStat { repo_size: s.repo_size, storage_max: s.storage_max },
            Err(e) => error(ApiError::new(ErrorCode::Unavailable, e.to_string())),
        },
        RpcRequest::SwarmPeers => match inner.ipfs.swarm_peers().await {
            Ok(p) => RpcResponse::Peers(p),
            Err(e) => error(ApiError::new(ErrorCode::Unavailable, e.to_string())),
        },
        RpcRequest::Raft { msg } => raft_call(cluster, cluster_consensus::raft::CallKind::Raft, &msg).await,
        RpcRequest::RaftCommit { msg } => raft_call(cluster, cluster_consensus::raft::CallKind::Commit, &msg).await,
        RpcRequest::RaftAddPeer { msg } => raft_call(cluster, cluster_consensus::raft::CallKind::AddPeer, &msg).await,
        RpcRequest::RaftRmPeer { msg } => raft_call(cluster, cluster_consensus::raft::CallKind::RmPeer, &msg).await,
        RpcRequest::Digest => match &inner.crdt {
            Some(c) => RpcResponse::Blob(c.serve_digest()),
            None => error(ApiError::new(ErrorCode::Conflict, "this peer does not run crdt consensus")),
        },
        RpcRequest::Fetch { query } => match &inner.crdt {
            Some(c) => match c.serve_fetch(&query).await {
                Ok(b) => RpcResponse::Blob(b),
                Err(e) => error(ApiError::from(e)),
            },
            None => error(ApiError::new(ErrorCode::Conflict, "this peer does not run crdt consensus")),
        },
    }
}

async fn raft_call(cluster: &Cluster, kind: cluster_consensus::raft::CallKind, msg: &[u8]) -> RpcResponse {
    match &cluster.inner.raft {
        Some(r) => match r.serve(kind, msg).await {
            Ok(b) => RpcResponse::Blob(b),
            Err(e) => error(ApiError::from(e)),
        },
        None => error(ApiError::new(ErrorCode::Conflict, "this peer does not run raft consensus")),
    }
}

/// Stores a batch of blocks a peer's adder sent (each checked against its CID by the
/// connector).
async fn block_put(cluster: &Cluster, blocks: Vec<cluster_net::rpc::WireBlock>) -> RpcResponse {
    let mut batch = Vec::with_capacity(blocks.len());
    for b in blocks {
        match parse_cid(&b.cid) {
            Ok(cid) => batch.push((cid, bytes::Bytes::from(b.data))),
            Err(e) => return error(e),
        }
    }
    match cluster.inner.ipfs.put_blocks(batch).await {
        Ok(()) => RpcResponse::Done,
        Err(e @ cluster_ipfs::IpfsError::InvalidInput(_)) => error(ApiError::bad_request(e.to_string())),
        Err(e) => error(ApiError::new(ErrorCode::Unavailable, format!("ipfs: {e}"))),
    }
}

async fn open_stream(sessions: &Sessions, owner: PeerId, rx: mpsc::Receiver<Result<PinInfo, ApiError>>) -> RpcResponse {
    let id = rand::random::<u64>();
    {
        let mut s = sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if s.len() >= MAX_SESSIONS {
            return error(ApiError::new(ErrorCode::Overloaded, "too many open streams on this peer, retry later"));
        }
        s.insert(id, Session { owner, rx: Arc::new(Mutex::new(rx)), last: Instant::now() });
    }
    next_page(sessions, owner, id).await
}

async fn next_page(sessions: &Sessions, caller: PeerId, id: u64) -> RpcResponse {
    let rx = {
        let mut s = sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match s.get_mut(&id) {
            Some(session) if session.owner == caller => {
                session.last = Instant::now();
                Arc::clone(&session.rx)
            }
            // Stream ids are only honoured for the peer that opened them.
            _ => return error(ApiError::not_found("unknown or expired stream")),
        }
    };
    let mut rx = rx.lock().await;
    let mut items = Vec::new();
    let mut failure = None;
    let mut done = false;
    while items.len() < PAGE_ITEMS {
        match rx.recv().await {
            Some(Ok(pi)) => items.push(pi),
            Some(Err(e)) => {
                failure = Some(e);
                done = true;
                break;
            }
            None => {
                done = true;
                break;
            }
        }
    }
    drop(rx);
    if done {
        sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&id);
    }
    RpcResponse::Page(StreamPage { id, items, done, error: failure })
}

