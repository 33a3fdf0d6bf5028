//! The network actor: owns the libp2p swarm, drives it from a background task, and serves
//! typed commands ([`NetMsg`]) through its supervised mailbox.
//!
//! A restart (crash, chaos kill) rebuilds the swarm with the same identity and listeners;
//! calls in flight on the old swarm fail with [`NetError::Closed`], queued commands survive in
//! the mailbox. Inbound RPCs, gossip and connection events leave through channels whose
//! receivers belong to the cluster, so they also outlive restarts.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster_actors::{Actor, ActorError, ActorRef, Context};
use cluster_types::{ApiError, ErrorCode};
use futures::stream::{FuturesUnordered, StreamExt};
use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity, ValidationMode};
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{allow_block_list, identify, identity::Keypair, ping, Multiaddr, PeerId, StreamProtocol, Swarm};
use serde::Serialize;
use tokio::sync::{broadcast, mpsc, oneshot, Semaphore};

use crate::rpc::{Policy, RpcRequest, RpcResponse, RPC_PROTOCOL};
use crate::{transport, NetError, TrustSet};

/// Largest gossip message (a CRDT delta of a big batch).
const MAX_GOSSIP_BYTES: usize = 16 << 20;
/// Largest RPC response (a page of a stream or CRDT entries).
const MAX_RPC_RESPONSE_BYTES: u64 = 32 << 20;
/// How often disconnected known peers are redialed.
const REDIAL_INTERVAL: Duration = Duration::from_secs(5);

/// Settings of the host, built from the `cluster` section.
#[derive(Clone)]
pub struct NetConfig {
    /// The peer's identity.
    pub keypair: Keypair,
    /// Swarm listeners.
    pub listen: Vec<Multiaddr>,
    /// 32-byte private-network key; `None` = unprotected.
    pub secret: Option<[u8; 32]>,
    /// Dial and handshake timeout.
    pub dial_timeout: Duration,
    /// Default per-call timeout when the caller gives none.
    pub rpc_timeout: Duration,
    /// Most outbound calls in flight at once; more wait in the mailbox.
    pub max_in_flight: usize,
    /// `/…/p2p/<id>` addresses dialed at start and redialed while disconnected.
    pub bootstrap: Vec<Multiaddr>,
    /// Gossip topics to subscribe to.
    pub topics: Vec<String>,
    /// Gossipsub heartbeat.
    pub heartbeat: Duration,
    /// Multiplier of the gossipsub mesh degrees.
    pub d_factor: usize,
    /// Gossipsub history windows.
    pub history_length: usize,
    /// Gossipsub windows gossiped about.
    pub history_gossip: usize,
    /// Publish to every subscribed peer, not only the mesh.
    pub flood_publish: bool,
    /// Trusted peers, for the RPC permission check.
    pub trust: TrustSet,
}

/// A gossip message received from another peer.
#[derive(Debug, Clone)]
pub struct GossipMessage {
    /// Topic name.
    pub topic: String,
    /// The authenticated author (gossipsub messages are signed).
    pub source: Option<PeerId>,
    /// Payload.
    pub data: Vec<u8>,
}

/// An inbound RPC that passed the permission check.
#[derive(Debug)]
pub struct InboundRpc {
    /// The authenticated caller.
    pub from: PeerId,
    /// The request.
    pub request: RpcRequest,
    /// Where the answer goes; dropping it answers with an internal error.
    pub reply: oneshot::Sender<RpcResponse>,
}

/// Connection events, for the monitor and the consensus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetEvent {
    /// First connection to a peer opened.
    Connected(PeerId),
    /// Last connection to a peer closed.
    Disconnected(PeerId),
}

/// A snapshot of the host.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NetStatus {
    /// Our peer id.
    pub peer_id: String,
    /// Addresses we listen on.
    pub listen_addrs: Vec<String>,
    /// Peers with an open connection.
    pub connected: Vec<String>,
    /// Known addresses of every peer we heard of.
    pub known: HashMap<String, Vec<String>>,
    /// Peers blocked by the chaos hook.
    pub blocked: Vec<String>,
}

/// Commands of the network actor.
pub enum NetMsg {
    /// Calls `request` on `peer`.
    Call {
        /// Destination.
        peer: PeerId,
        /// Request.
        request: RpcRequest,
        /// Deadline of the call.
        timeout: Duration,
        /// Answer.
        reply: oneshot::Sender<Result<RpcResponse, NetError>>,
    },
    /// Publishes on a gossip topic.
    Publish {
        /// Topic name.
        topic: String,
        /// Payload.
        data: Vec<u8>,
    },
    /// Dials an address (`/…/p2p/<id>` or plain).
    Dial(Multiaddr),
    /// Records an address for a peer and dials it if disconnected.
    AddAddress(PeerId, Multiaddr),
    /// A snapshot of the host.
    Status(oneshot::Sender<NetStatus>),
    /// Chaos: refuses (or allows again) every connection with `peer`.
    Block {
        /// The peer.
        peer: PeerId,
        /// Block or unblock.
        blocked: bool,
    },
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    gossipsub: gossipsub::Behaviour,
    rpc: request_response::cbor::Behaviour<RpcRequest, RpcResponse>,
}

/// Shared counters, visible in `/health/actors`.
#[derive(Debug, Default)]
struct Counters {
    calls: AtomicU64,
    inbound: AtomicU64,
    refused: AtomicU64,
    gossip_in: AtomicU64,
    gossip_dropped: AtomicU64,
    connected: AtomicU64,
    dial_errors: AtomicU64,
    incoming_errors: AtomicU64,
}

/// The network actor.
pub struct NetActor {
    config: NetConfig,
    inbound: mpsc::Sender<InboundRpc>,
    gossip: mpsc::Sender<GossipMessage>,
    events: broadcast::Sender<NetEvent>,
    counters: Arc<Counters>,
    commands: Option<mpsc::Sender<NetMsg>>,
    in_flight: Arc<Semaphore>,
    /// Addresses and blocks survive restarts of the swarm.
    book: Arc<std::sync::Mutex<Book>>,
}

#[derive(Debug, Default)]
struct Book {
    addresses: HashMap<PeerId, HashSet<Multiaddr>>,
    blocked: HashSet<PeerId>,
}

impl NetActor {
    /// Builds an instance. The channels are shared by every instance (pass clones from the
    /// factory) so their receivers never miss a restart.
    pub fn new(
        config: NetConfig,
        inbound: mpsc::Sender<InboundRpc>,
        gossip: mpsc::Sender<GossipMessage>,
        events: broadcast::Sender<NetEvent>,
    ) -> Self {
        let max = config.max_in_flight.max(1);
        NetActor {
            config,
            inbound,
            gossip,
            events,
            counters: Arc::default(),
            commands: None,
            in_flight: Arc::new(Semaphore::new(max)),
            book: Arc::default(),
        }
    }

    fn build_swarm(&self) -> Result<Swarm<Behaviour>, NetError> {
        let cfg = &self.config;
        let transport = transport::build(&cfg.keypair, cfg.secret, cfg.dial_timeout)?;
        let f = cfg.d_factor.max(1);
        let gossip_cfg = gossipsub::ConfigBuilder::default()
            .heartbeat_interval(cfg.heartbeat)
            .mesh_n(6 * f)
            .mesh_n_low(5 * f)
            .mesh_n_high(12 * f)
            .retain_scores(4 * f)
            .mesh_outbound_min(2 * f)
            .gossip_lazy(6 * f)
            .history_length(cfg.history_length.max(cfg.history_gossip).max(1))
            .history_gossip(cfg.history_gossip.max(1))
            .flood_publish(cfg.flood_publish)
            .validation_mode(ValidationMode::Strict)
            .max_transmit_size(MAX_GOSSIP_BYTES)
            .max_ihave_length(10_000)
            .build()
            .map_err(|e| NetError::Config(format!("gossipsub: {e}")))?;
        let mut gossipsub = gossipsub::Behaviour::new(MessageAuthenticity::Signed(cfg.keypair.clone()), gossip_cfg)
            .map_err(|e| NetError::Config(format!("gossipsub: {e}")))?;
        for t in &cfg.topics {
            gossipsub.subscribe(&IdentTopic::new(t)).map_err(|e| NetError::Config(format!("subscribe {t}: {e}")))?;
        }
        let codec = request_response::cbor::codec::Codec::<RpcRequest, RpcResponse>::default()
            .set_request_size_maximum(8 << 20)
            .set_response_size_maximum(MAX_RPC_RESPONSE_BYTES);
        let rpc = request_response::Behaviour::with_codec(
            codec,
            [(StreamProtocol::new(RPC_PROTOCOL), ProtocolSupport::Full)],
            request_response::Config::default()
                .with_request_timeout(cfg.rpc_timeout.max(Duration::from_secs(1)) * 4)
                .with_max_concurrent_streams(1024),
        );
        let identify = identify::Behaviour::new(
            identify::Config::new("/ipfs-cluster/1.0.0".into(), cfg.keypair.public())
                .with_agent_version(format!("ipfs-cluster-rs/{}", cluster_types::VERSION)),
        );
        let behaviour = Behaviour {
            blocked: allow_block_list::Behaviour::default(),
            identify,
            ping: ping::Behaviour::new(ping::Config::new()),
            gossipsub,
            rpc,
        };
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(cfg.keypair.clone())
            .with_tokio()
            .with_other_transport(|_| transport)
            .map_err(|e| NetError::Config(format!("transport: {e}")))?
            .with_behaviour(|_| behaviour)
            .map_err(|e| NetError::Config(format!("behaviour: {e}")))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
            .build();
        for addr in &cfg.listen {
            swarm.listen_on(addr.clone()).map_err(|e| NetError::Config(format!("listening on {addr}: {e}")))?;
        }
        Ok(swarm)
    }
}

impl Actor for NetActor {
    type Msg = NetMsg;

    async fn started(&mut self, ctx: &Context<NetMsg>) -> Result<(), ActorError> {
        let mut swarm = self.build_swarm().map_err(ActorError::failure)?;
        {
            let mut book = self.book.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            for addr in &self.config.bootstrap {
                if let Some((peer, base)) = crate::split_peer_multiaddr(addr) {
                    book.addresses.entry(peer).or_default().insert(base);
                }
            }
            for peer in &book.blocked {
                swarm.behaviour_mut().blocked.block_peer(*peer);
            }
        }
        let (tx, rx) = mpsc::channel(1024);
        self.commands = Some(tx);
        let driver = Driver {
            swarm,
            commands: rx,
            inbound: self.inbound.clone(),
            gossip: self.gossip.clone(),
            events: self.events.clone(),
            trust: self.config.trust.clone(),
            counters: Arc::clone(&self.counters),
            book: Arc::clone(&self.book),
            pending: HashMap::new(),
            replies: FuturesUnordered::new(),
            last_dial: HashMap::new(),
            connected: HashSet::new(),
        };
        ctx.spawn_background(driver.run());
        Ok(())
    }

    async fn handle(&mut self, msg: NetMsg, _ctx: &Context<NetMsg>) -> Result<(), ActorError> {
        let Some(commands) = &self.commands else { return Err(ActorError::failure("swarm not started")) };
        let msg = match msg {
            NetMsg::Call { peer, request, timeout, reply } => {
                // The permit bounds calls in flight; it travels with the reply and is released
                // when the call completes, fails or times out.
                let permit = Arc::clone(&self.in_flight).acquire_owned().await.map_err(ActorError::failure)?;
                self.counters.calls.fetch_add(1, Ordering::Relaxed);
                let (tx, rx) = oneshot::channel();
                let peer_s = peer.to_string();
                tokio::spawn(async move {
                    let _permit = permit;
                    let out = match tokio::time::timeout(timeout, rx).await {
                        Ok(Ok(r)) => r,
                        Ok(Err(_)) => Err(NetError::Closed),
                        Err(_) => Err(NetError::Timeout { peer: peer_s }),
                    };
                    let _ = reply.send(out);
                });
                NetMsg::Call { peer, request, timeout, reply: tx }
            }
            other => other,
        };
        // A dead driver (it panicked) shows up as a closed channel: fail so we are restarted.
        commands.send(msg).await.map_err(|_| ActorError::failure("swarm driver stopped"))
    }

    fn observable_state(&self) -> serde_json::Value {
        let c = &self.counters;
        serde_json::json!({
            "connected_peers": c.connected.load(Ordering::Relaxed),
            "calls_total": c.calls.load(Ordering::Relaxed),
            "calls_in_flight": self.config.max_in_flight.max(1) - self.in_flight.available_permits(),
            "inbound_total": c.inbound.load(Ordering::Relaxed),
            "inbound_refused_total": c.refused.load(Ordering::Relaxed),
            "gossip_received_total": c.gossip_in.load(Ordering::Relaxed),
            "gossip_dropped_total": c.gossip_dropped.load(Ordering::Relaxed),
            "dial_errors_total": c.dial_errors.load(Ordering::Relaxed),
            "incoming_errors_total": c.incoming_errors.load(Ordering::Relaxed),
        })
    }
}

type Pending = oneshot::Sender<Result<RpcResponse, NetError>>;
type ReplyFuture = std::pin::Pin<Box<dyn std::future::Future<Output = (RpcResponse, ResponseChannel<RpcResponse>)> + Send>>;

struct Driver {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<NetMsg>,
    inbound: mpsc::Sender<InboundRpc>,
    gossip: mpsc::Sender<GossipMessage>,
    events: broadcast::Sender<NetEvent>,
    trust: TrustSet,
    counters: Arc<Counters>,
    book: Arc<std::sync::Mutex<Book>>,
    pending: HashMap<OutboundRequestId, Pending>,
    replies: FuturesUnordered<ReplyFuture>,
    last_dial: HashMap<PeerId, Instant>,
    connected: HashSet<PeerId>,
}

fn refused(message: String) -> RpcResponse {
    RpcResponse::Error(ApiError::new(ErrorCode::Unauthorized, message))
}

impl Driver {
    async fn run(mut self) {
        let mut redial = tokio::time::interval(REDIAL_INTERVAL);
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                cmd = self.commands.recv() => match cmd {
                    Some(cmd) => self.on_command(cmd),
                    None => return,
                },
                Some((response, channel)) = self.replies.next(), if !self.replies.is_empty() => {
                    let _ = self.swarm.behaviour_mut().rpc.send_response(channel, response);
                }
                _ = redial.tick() => self.redial(),
            }
        }
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn addresses_of(&self, peer: &PeerId) -> Vec<Multiaddr> {
        self.book().addresses.get(peer).map(|s| s.iter().cloned().collect()).unwrap_or_default()
    }

    fn dial(&mut self, peer: PeerId) {
        if peer == *self.swarm.local_peer_id() || self.swarm.is_connected(&peer) {
            return;
        }
        let addrs = self.addresses_of(&peer);
        if addrs.is_empty() {
            return;
        }
        self.last_dial.insert(peer, Instant::now());
        let opts = DialOpts::peer_id(peer).addresses(addrs).condition(PeerCondition::DisconnectedAndNotDialing).build();
        if let Err(error) = self.swarm.dial(opts) {
            tracing::debug!(%peer, %error, "dial failed");
        }
    }

    fn redial(&mut self) {
        let peers: Vec<PeerId> = {
            let book = self.book();
            book.addresses.keys().filter(|p| !book.blocked.contains(p)).copied().collect()
        };
        for peer in peers {
            let recent = self.last_dial.get(&peer).is_some_and(|t| t.elapsed() < REDIAL_INTERVAL);
            if !recent {
                self.dial(peer);
            }
        }
    }

    fn on_command(&mut self, cmd: NetMsg) {
        match cmd {
            NetMsg::Call { peer, request, reply, .. } => {
                if peer == *self.swarm.local_peer_id() {
                    let _ = reply.send(Err(NetError::Unreachable { peer: peer.to_string(), reason: "cannot call self over the network".into() }));
                    return;
                }
                let addrs = self.addresses_of(&peer);
                let id = self.swarm.behaviour_mut().rpc.send_request_with_addresses(&peer, request, addrs);
                self.pending.insert(id, reply);
            }
            NetMsg::Publish { topic, data } => {
                if let Err(error) = self.swarm.behaviour_mut().gossipsub.publish(IdentTopic::new(&topic), data) {
                    // No subscribed peer yet is normal for a lone peer.
                    tracing::debug!(%topic, %error, "gossip publish failed");
                }
            }
            NetMsg::Dial(addr) => {
                if let Some((peer, base)) = crate::split_peer_multiaddr(&addr) {
                    self.book().addresses.entry(peer).or_default().insert(base);
                    self.dial(peer);
                } else if let Err(error) = self.swarm.dial(addr.clone()) {
                    tracing::warn!(%addr, %error, "dial failed");
                }
            }
            NetMsg::AddAddress(peer, addr) => {
                if peer != *self.swarm.local_peer_id() && usable(&addr) {
                    let new = self.book().addresses.entry(peer).or_default().insert(addr);
                    if new {
                        self.dial(peer);
                    }
                }
            }
            NetMsg::Status(reply) => {
                let book = self.book();
                let status = NetStatus {
                    peer_id: self.swarm.local_peer_id().to_string(),
                    listen_addrs: self.swarm.listeners().map(ToString::to_string).collect(),
                    connected: self.connected.iter().map(ToString::to_string).collect(),
                    known: book
                        .addresses
                        .iter()
                        .map(|(p, a)| (p.to_string(), a.iter().map(ToString::to_string).collect()))
                        .collect(),
                    blocked: book.blocked.iter().map(ToString::to_string).collect(),
                };
                drop(book);
                let _ = reply.send(status);
            }
            NetMsg::Block { peer, blocked } => {
                if blocked {
                    self.book().blocked.insert(peer);
                    self.swarm.behaviour_mut().blocked.block_peer(peer);
                } else {
                    self.book().blocked.remove(&peer);
                    self.swarm.behaviour_mut().blocked.unblock_peer(peer);
                    self.dial(peer);
                }
            }
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::ConnectionEstablished { peer_id, num_established, .. } => {
                if num_established.get() == 1 {
                    self.connected.insert(peer_id);
                    self.counters.connected.store(self.connected.len() as u64, Ordering::Relaxed);
                    let _ = self.events.send(NetEvent::Connected(peer_id));
                    tracing::debug!(peer = %peer_id, "peer connected");
                }
            }
            SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => {
                self.connected.remove(&peer_id);
                self.counters.connected.store(self.connected.len() as u64, Ordering::Relaxed);
                let _ = self.events.send(NetEvent::Disconnected(peer_id));
                tracing::debug!(peer = %peer_id, "peer disconnected");
            }
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "cluster swarm listening");
            }
            // Counted so operators (and tests) can see a wrong secret or an unreachable peer.
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                self.counters.dial_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(peer = ?peer_id, %error, "dial failed");
            }
            SwarmEvent::IncomingConnectionError { send_back_addr, error, .. } => {
                self.counters.incoming_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(from = %send_back_addr, %error, "incoming connection failed");
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. })) => {
                let mut book = self.book();
                let entry = book.addresses.entry(peer_id).or_default();
                for a in info.listen_addrs.into_iter().filter(usable) {
                    entry.insert(a);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message { message, .. })) => {
                self.counters.gossip_in.fetch_add(1, Ordering::Relaxed);
                let msg = GossipMessage { topic: message.topic.to_string(), source: message.source, data: message.data };
                // Never block the swarm on a slow consumer: a dropped delta is repaired by
                // anti-entropy, a dropped metric by the next one.
                if self.gossip.try_send(msg).is_err() {
                    self.counters.gossip_dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Rpc(event)) => self.on_rpc_event(event),
            _ => {}
        }
    }

    fn on_rpc_event(&mut self, event: request_response::Event<RpcRequest, RpcResponse>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request { request, channel, .. } => self.on_inbound(peer, request, channel),
                request_response::Message::Response { request_id, response } => {
                    if let Some(reply) = self.pending.remove(&request_id) {
                        let _ = reply.send(Ok(response));
                    }
                }
            },
            request_response::Event::OutboundFailure { peer, request_id, error, .. } => {
                if let Some(reply) = self.pending.remove(&request_id) {
                    let err = match error {
                        request_response::OutboundFailure::Timeout => NetError::Timeout { peer: peer.to_string() },
                        other => NetError::Unreachable { peer: peer.to_string(), reason: other.to_string() },
                    };
                    let _ = reply.send(Err(err));
                }
            }
            _ => {}
        }
    }

    /// The one place where inbound calls are authorised.
    fn on_inbound(&mut self, peer: PeerId, request: RpcRequest, channel: ResponseChannel<RpcResponse>) {
        self.counters.inbound.fetch_add(1, Ordering::Relaxed);
        let method = request.method();
        let denied = match method.policy() {
            Policy::Open => None,
            Policy::Trusted if self.trust.is_trusted(&peer.to_string()) => None,
            Policy::Trusted => Some(format!("unauthorized: {} is only served to trusted peers", method.name())),
            Policy::Closed => Some(format!("unauthorized: {} is not served to remote peers", method.name())),
        };
        if let Some(message) = denied {
            self.counters.refused.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, method = method.name(), "rpc refused");
            let _ = self.swarm.behaviour_mut().rpc.send_response(channel, refused(message));
            return;
        }
        let (tx, rx) = oneshot::channel();
        match self.inbound.try_send(InboundRpc { from: peer, request, reply: tx }) {
            Ok(()) => self.replies.push(Box::pin(async move {
                let response = rx.await.unwrap_or_else(|_| {
                    RpcResponse::Error(ApiError::internal("the rpc handler dropped the request"))
                });
                (response, channel)
            })),
            Err(_) => {
                let busy = RpcResponse::Error(ApiError::new(ErrorCode::Overloaded, "peer is overloaded: rpc queue full"));
                let _ = self.swarm.behaviour_mut().rpc.send_response(channel, busy);
            }
        }
    }
}

/// Addresses worth dialing: not unspecified (`0.0.0.0`, `::`).
fn usable(addr: &Multiaddr) -> bool {
    use libp2p::multiaddr::Protocol;
    !addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_unspecified(),
        Protocol::Ip6(ip) => ip.is_unspecified(),
        _ => false,
    })
}

/// A handle on the network actor: typed calls with timeouts.
#[derive(Clone)]
pub struct Net {
    actor: ActorRef<NetMsg>,
    local: PeerId,
    default_timeout: Duration,
}

impl Net {
    /// Wraps the actor's mailbox.
    pub fn new(actor: ActorRef<NetMsg>, local: PeerId, default_timeout: Duration) -> Self {
        Net { actor, local, default_timeout }
    }

    /// Our peer id.
    pub fn local_peer(&self) -> PeerId {
        self.local
    }

    /// Calls `request` on `peer`, failing after `timeout` (or the default).
    ///
    /// Remote API errors come back as [`NetError::Remote`].
    pub async fn call(&self, peer: PeerId, request: RpcRequest, timeout: Option<Duration>) -> Result<RpcResponse, NetError> {
        let timeout = timeout.unwrap_or(self.default_timeout);
        let (tx, rx) = oneshot::channel();
        let msg = NetMsg::Call { peer, request, timeout, reply: tx };
        // Waiting for mailbox room counts against the deadline too.
        let sent = tokio::time::timeout(timeout, self.actor.send(msg)).await;
        match sent {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(NetError::Closed),
            Err(_) => return Err(NetError::Busy),
        }
        match rx.await {
            Ok(Ok(RpcResponse::Error(e))) => Err(NetError::Remote { code: e.code, message: e.message }),
            Ok(other) => other,
            Err(_) => Err(NetError::Closed),
        }
    }

    /// Publishes `data` on `topic` (best effort).
    pub fn publish(&self, topic: &str, data: Vec<u8>) {
        if self.actor.try_send(NetMsg::Publish { topic: topic.to_string(), data }).is_err() {
            tracing::debug!(%topic, "network mailbox full: gossip dropped");
        }
    }

    /// Dials an address.
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), NetError> {
        self.actor.send(NetMsg::Dial(addr)).await.map_err(|_| NetError::Closed)
    }

    /// Records an address of `peer` (dialed when not connected).
    pub fn add_address(&self, peer: PeerId, addr: Multiaddr) {
        let _ = self.actor.try_send(NetMsg::AddAddress(peer, addr));
    }

    /// A snapshot of the host.
    pub async fn status(&self) -> Result<NetStatus, NetError> {
        self.actor.ask_timeout(NetMsg::Status, Duration::from_secs(10)).await.map_err(|_| NetError::Closed)
    }

    /// Chaos: blocks or unblocks every connection with `peer`.
    pub async fn block(&self, peer: PeerId, blocked: bool) -> Result<(), NetError> {
        self.actor.send(NetMsg::Block { peer, blocked }).await.map_err(|_| NetError::Closed)
    }
}
