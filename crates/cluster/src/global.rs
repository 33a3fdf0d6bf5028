//! Cluster-wide operations: the peer asks its fellows over the cluster RPC and merges the
//! answers (status, recover, peers, GC, the connectivity graph).
//!
//! Every remote call has a per-peer timeout; a peer that fails shows up as a `cluster_error`
//! entry (or an ID with `error` set) instead of failing the whole request. Listings merge
//! each peer's stream by CID, one page per peer in memory, never the whole pinset.

use std::collections::BTreeMap;
use std::time::Duration;

use cluster_net::{PeerId, RpcRequest, RpcResponse};
use cluster_tracker::TrackerMsg;
use cluster_types::{
    ApiError, Cid, ConnectGraph, ErrorCode, GlobalPinInfo, GlobalRepoGc, IpfsId, IpfsRepoGc, PinInfo, PinInfoShort,
    RepoGc, Timestamp, TrackerStatus, TrackerStatusFilter, ID,
};
use futures::stream::{BoxStream, StreamExt};
use tokio::sync::mpsc;

use crate::cluster::Cluster;

/// Items per page of a remote stream.
pub(crate) const PAGE_ITEMS: usize = 1000;

fn parse_peer(peer: &str) -> Result<PeerId, ApiError> {
    peer.parse().map_err(|e| ApiError::bad_request(format!("invalid peer id {peer}: {e}")))
}

impl Cluster {
    /// Publishes our swarm addresses (once the host listens) for the ping metric and `/id`.
    pub(crate) async fn publish_addresses(&self) {
        for _ in 0..100 {
            if let Ok(status) = self.inner.net.status().await
                && !status.listen_addrs.is_empty()
            {
                let me = &status.peer_id;
                let addrs: Vec<String> = status.listen_addrs.iter().map(|a| format!("{a}/p2p/{me}")).collect();
                *self.inner.cluster_addresses.write().unwrap_or_else(std::sync::PoisonError::into_inner) = addrs;
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tracing::warn!("cluster swarm is not listening on any address");
    }

    fn my_addresses(&self) -> Vec<String> {
        self.inner.cluster_addresses.read().map(|a| a.clone()).unwrap_or_default()
    }

    /// `GET /id`.
    pub async fn id(&self) -> ID {
        let s = &self.inner.settings;
        let ipfs = match tokio::time::timeout(Duration::from_secs(10), self.inner.ipfs.id()).await {
            Ok(Ok(i)) => IpfsId { id: i.id, addresses: i.addresses, error: String::new() },
            Ok(Err(e)) => IpfsId { error: e.to_string(), ..Default::default() },
            Err(_) => IpfsId { error: "ipfs id timed out".into(), ..Default::default() },
        };
        let peers = self.inner.consensus.peers().await.unwrap_or_else(|_| vec![s.peer_id.clone()]);
        let known = self.inner.net.status().await.map(|st| st.known).unwrap_or_default();
        let mut peer_addrs = Vec::new();
        for p in &peers {
            for a in known.get(p).into_iter().flatten() {
                peer_addrs.push(format!("{a}/p2p/{p}"));
            }
        }
        ID {
            id: s.peer_id.clone(),
            addresses: self.my_addresses(),
            cluster_peers: peers,
            cluster_peers_addresses: peer_addrs,
            version: cluster_types::VERSION.to_string(),
            commit: String::new(),
            rpc_protocol_version: cluster_types::RPC_PROTOCOL.to_string(),
            error: String::new(),
            ipfs,
            peername: s.peername.clone(),
        }
    }

    async fn member_peers(&self) -> Vec<String> {
        self.inner.consensus.peers().await.unwrap_or_else(|_| vec![self.inner.settings.peer_id.clone()])
    }

    fn is_me(&self, peer: &str) -> bool {
        peer == self.inner.settings.peer_id
    }

    async fn call(&self, peer: &str, request: RpcRequest) -> Result<RpcResponse, ApiError> {
        let pid = parse_peer(peer)?;
        self.inner.net.call(pid, request, Some(self.inner.settings.peer_call_timeout)).await.map_err(ApiError::from)
    }

    /// `GET /peers`: every member's ID, asked concurrently; unreachable ones carry `error`.
    pub fn peers(&self) -> BoxStream<'static, Result<ID, ApiError>> {
        let (this, first) = (self.clone(), self.clone());
        futures::stream::once(async move { first.member_peers().await })
            .flat_map(move |peers| {
                let this = this.clone();
                futures::stream::iter(peers)
                    .map(move |p| {
                        let this = this.clone();
                        async move {
                            if this.is_me(&p) {
                                return Ok(this.id().await);
                            }
                            Ok(match this.call(&p, RpcRequest::Id).await {
                                Ok(RpcResponse::Id(id)) => id,
                                Ok(other) => ID { id: p, error: format!("unexpected answer: {other:?}"), ..Default::default() },
                                Err(e) => ID { id: p, error: e.message, ..Default::default() },
                            })
                        }
                    })
                    .buffered(16)
            })
            .boxed()
    }

    /// `DELETE /peers/{peer}`: re-allocates the peer's pins elsewhere, then drops it from
    /// the peerset and forgets its metrics (it reappears if it keeps publishing pings).
    pub async fn peer_rm(&self, peer: &str) -> Result<(), ApiError> {
        parse_peer(peer)?;
        if self.is_me(peer) {
            return Err(ApiError::new(ErrorCode::Conflict, "a peer cannot remove itself: remove it from another peer"));
        }
        let _ = self.inner.monitor.send(crate::monitor::MonitorMsg::Forget(peer.to_string())).await;
        self.inner.consensus.rm_peer(peer).await.map_err(ApiError::from)?;
        let moved = self.vacate(peer, None).await?;
        tracing::info!(%peer, pins = moved, "peer removed and its pins re-allocated");
        Ok(())
    }

    /// Pages a remote stream opened by `open` into a channel.
    fn remote_stream(&self, peer: String, open: RpcRequest) -> mpsc::Receiver<Result<PinInfo, ApiError>> {
        let (tx, rx) = mpsc::channel(PAGE_ITEMS);
        let this = self.clone();
        tokio::spawn(async move {
            let mut request = open;
            loop {
                let page = match this.call(&peer, request).await {
                    Ok(RpcResponse::Page(p)) => p,
                    Ok(other) => {
                        let _ = tx.send(Err(ApiError::internal(format!("unexpected answer from {peer}: {other:?}")))).await;
                        return;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                for item in page.items {
                    if tx.send(Ok(item)).await.is_err() {
                        return;
                    }
                }
                if let Some(e) = page.error {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
                if page.done {
                    return;
                }
                request = RpcRequest::StreamNext { id: page.id };
            }
        });
        rx
    }

    /// Merges per-peer streams (each in CID order) into cluster-wide items.
    fn merged(
        &self,
        peers: Vec<String>,
        open: impl Fn(&Cluster, &str) -> mpsc::Receiver<Result<PinInfo, ApiError>>,
        report_errors: bool,
    ) -> BoxStream<'static, Result<GlobalPinInfo, ApiError>> {
        let sources: Vec<(String, mpsc::Receiver<Result<PinInfo, ApiError>>)> =
            peers.into_iter().map(|p| { let rx = open(self, &p); (p, rx) }).collect();
        let (tx, rx) = mpsc::channel(PAGE_ITEMS);
        tokio::spawn(merge_task(sources, tx, report_errors));
        tokio_stream::wrappers::ReceiverStream::new(rx).boxed()
    }

    /// `GET /pins`: every pin's status, from this peer only or merged from every member.
    pub fn status_all(&self, filter: TrackerStatusFilter, local: bool) -> BoxStream<'static, Result<GlobalPinInfo, ApiError>> {
        if local {
            return self.tracker_stream(move |out| TrackerMsg::StatusAll { filter, out });
        }
        let this = self.clone();
        let report = filter.matches(TrackerStatus::ClusterError);
        futures::stream::once(async move {
            let peers = this.member_peers().await;
            this.merged(
                peers,
                move |c, p| {
                    if c.is_me(p) {
                        c.local_stream(move |out| TrackerMsg::StatusAll { filter, out })
                    } else {
                        c.remote_stream(p.to_string(), RpcRequest::StatusAll { filter: filter.bits() })
                    }
                },
                report,
            )
        })
        .flatten()
        .boxed()
    }

    /// `POST /pins/recover`: re-queues failed items on this peer or on every member.
    pub fn recover_all(&self, local: bool) -> BoxStream<'static, Result<GlobalPinInfo, ApiError>> {
        if local {
            return self.tracker_stream(|out| TrackerMsg::RecoverAll { out });
        }
        let this = self.clone();
        futures::stream::once(async move {
            let peers = this.member_peers().await;
            this.merged(
                peers,
                |c, p| {
                    if c.is_me(p) {
                        c.local_stream(|out| TrackerMsg::RecoverAll { out })
                    } else {
                        c.remote_stream(p.to_string(), RpcRequest::RecoverAllLocal)
                    }
                },
                true,
            )
        })
        .flatten()
        .boxed()
    }

    /// Asks `peers` about one CID; the others are reported `remote` without asking.
    async fn gather(&self, cid: Cid, recover: bool) -> Result<GlobalPinInfo, ApiError> {
        let members = self.member_peers().await;
        let pin = self.state_get(&cid)?;
        let allocated: Option<Vec<String>> = pin.as_ref().filter(|p| !p.allocations.is_empty()).map(|p| p.allocations.clone());
        let asked: Vec<String> = match &allocated {
            Some(a) => members.iter().filter(|m| a.contains(m)).cloned().collect(),
            None => members.clone(),
        };
        let answers = futures::future::join_all(asked.iter().map(|p| {
            let p = p.clone();
            async move {
                let r = if self.is_me(&p) {
                    if recover {
                        self.local_info(|reply| TrackerMsg::Recover { cid, reply }).await
                    } else {
                        self.local_info(|reply| TrackerMsg::Status { cid, reply }).await
                    }
                } else {
                    let req = if recover { RpcRequest::Recover { cid: cid.to_string() } } else { RpcRequest::Status { cid: cid.to_string() } };
                    match self.call(&p, req).await {
                        Ok(RpcResponse::PinInfo(pi)) => Ok(pi),
                        Ok(other) => Err(ApiError::internal(format!("unexpected answer: {other:?}"))),
                        Err(e) => Err(e),
                    }
                };
                (p, r)
            }
        }))
        .await;
        let mut global: Option<GlobalPinInfo> = None;
        let mut errors = Vec::new();
        for (p, r) in answers {
            match r {
                Ok(pi) => match &mut global {
                    None => global = Some(GlobalPinInfo::from_pin_info(pi)),
                    Some(g) => {
                        g.peer_map.insert(pi.peer.clone(), pi.info);
                    }
                },
                Err(e) => errors.push((p, e)),
            }
        }
        let mut g = global.unwrap_or_else(|| GlobalPinInfo {
            cid,
            name: pin.as_ref().map(|p| p.options.name.clone()).unwrap_or_default(),
            allocations: pin.as_ref().map(|p| p.allocations.clone()).unwrap_or_default(),
            origins: Vec::new(),
            created: pin.as_ref().map(|p| p.timestamp.clone()).unwrap_or_default(),
            metadata: pin.as_ref().map(|p| p.options.metadata.clone()).unwrap_or_default(),
            peer_map: BTreeMap::new(),
        });
        for (p, e) in errors {
            g.peer_map.insert(p, error_entry(&e.message));
        }
        if allocated.is_some() {
            for m in members.iter().filter(|m| !asked.contains(m)) {
                g.peer_map.entry(m.clone()).or_insert_with(|| short(TrackerStatus::Remote, String::new()));
            }
        }
        Ok(g)
    }

    /// `GET /pins/{cid}`.
    pub async fn status(&self, cid: Cid, local: bool) -> Result<GlobalPinInfo, ApiError> {
        if local {
            return self.tracker_ask(|reply| TrackerMsg::Status { cid, reply }).await;
        }
        self.gather(cid, false).await
    }

    /// `POST /pins/{cid}/recover`.
    pub async fn recover(&self, cid: Cid, local: bool) -> Result<GlobalPinInfo, ApiError> {
        if local {
            return self.tracker_ask(|reply| TrackerMsg::Recover { cid, reply }).await;
        }
        self.gather(cid, true).await
    }

    /// Runs IPFS GC here.
    pub(crate) async fn repo_gc_local(&self) -> RepoGc {
        let s = &self.inner.settings;
        let mut gc = RepoGc { peer: s.peer_id.clone(), peername: s.peername.clone(), ..Default::default() };
        match self.inner.ipfs.repo_gc().await {
            Ok(keys) => gc.keys = keys.into_iter().map(|k| IpfsRepoGc { key: k.to_string(), error: String::new() }).collect(),
            Err(e) => gc.error = e.to_string(),
        }
        gc
    }

    /// `POST /ipfs/gc`: every member at once (the original went one by one).
    pub async fn repo_gc(&self, local: bool) -> Result<GlobalRepoGc, ApiError> {
        let peers = if local { vec![self.inner.settings.peer_id.clone()] } else { self.member_peers().await };
        let results = futures::future::join_all(peers.into_iter().map(|p| async move {
            if self.is_me(&p) {
                return (p, self.repo_gc_local().await);
            }
            let gc = match self.call(&p, RpcRequest::RepoGcLocal).await {
                Ok(RpcResponse::RepoGc(gc)) => gc,
                Ok(other) => RepoGc { peer: p.clone(), error: format!("unexpected answer: {other:?}"), ..Default::default() },
                Err(e) => RepoGc { peer: p.clone(), error: e.message, ..Default::default() },
            };
            (p, gc)
        }))
        .await;
        Ok(GlobalRepoGc { peer_map: results.into_iter().collect() })
    }

    /// IPFS repo usage summed over every member, asked concurrently (the IPFS proxy's
    /// `repo/stat`): `(repo_size, storage_max)` in bytes. Members that fail are left out, as
    /// in the original, and logged.
    pub async fn repo_stat_all(&self) -> (u64, u64) {
        let peers = self.member_peers().await;
        let stats = futures::future::join_all(peers.into_iter().map(|p| async move {
            let answer = if self.is_me(&p) {
                self.inner.ipfs.repo_stat().await.map(|s| (s.repo_size, s.storage_max)).map_err(|e| e.to_string())
            } else {
                match self.call(&p, RpcRequest::RepoStat).await {
                    Ok(RpcResponse::RepoStat { repo_size, storage_max }) => Ok((repo_size, storage_max)),
                    Ok(other) => Err(format!("unexpected answer: {other:?}")),
                    Err(e) => Err(e.message),
                }
            };
            answer.inspect_err(|e| tracing::warn!(peer = %p, error = %e, "repo stat failed"))
        }))
        .await;
        stats.into_iter().flatten().fold((0, 0), |(r, m), (rs, sm)| (r.saturating_add(rs), m.saturating_add(sm)))
    }

    /// `GET /health/graph`: who is connected to whom, cluster and IPFS, asked concurrently.
    pub async fn connect_graph(&self) -> Result<ConnectGraph, ApiError> {
        let peers = self.member_peers().await;
        let mut graph = ConnectGraph { cluster_id: self.inner.settings.peer_id.clone(), ..Default::default() };
        let answers = futures::future::join_all(peers.iter().map(|p| {
            let p = p.clone();
            async move {
                if self.is_me(&p) {
                    let id = self.id().await;
                    let cluster = self.inner.net.status().await.map(|s| s.connected).unwrap_or_default();
                    let ipfs = self.inner.ipfs.swarm_peers().await.unwrap_or_default();
                    return (p, Some(id), cluster, ipfs);
                }
                let id = match self.call(&p, RpcRequest::Id).await {
                    Ok(RpcResponse::Id(id)) => Some(id),
                    _ => None,
                };
                let cluster = match self.call(&p, RpcRequest::ConnectedPeers).await {
                    Ok(RpcResponse::Peers(v)) => {
                        let mut ids: Vec<String> =
                            v.iter().filter_map(|a| a.rsplit_once("/p2p/").map(|(_, id)| id.to_string())).collect();
                        ids.dedup();
                        ids
                    }
                    _ => Vec::new(),
                };
                let ipfs = match self.call(&p, RpcRequest::SwarmPeers).await {
                    Ok(RpcResponse::Peers(v)) => v,
                    _ => Vec::new(),
                };
                (p, id, cluster, ipfs)
            }
        }))
        .await;
        let ipfs_of: BTreeMap<String, String> =
            answers.iter().filter_map(|(p, id, _, _)| id.as_ref().map(|i| (p.clone(), i.ipfs.id.clone()))).collect();
        for (p, id, cluster, ipfs) in answers {
            if let Some(id) = &id {
                graph.id_to_peername.insert(p.clone(), id.peername.clone());
                if !id.ipfs.id.is_empty() {
                    graph.cluster_to_ipfs.insert(p.clone(), id.ipfs.id.clone());
                    graph.ipfs_links.insert(
                        id.ipfs.id.clone(),
                        ipfs.into_iter().filter(|i| ipfs_of.values().any(|v| v == i)).collect(),
                    );
                }
            }
            graph.cluster_trust_links.insert(p.clone(), self.inner.trust.is_trusted(&p));
            graph.cluster_links.insert(p, cluster.into_iter().filter(|c| peers.contains(c)).collect());
        }
        Ok(graph)
    }

    /// `/…/p2p/<id>` addresses of every peer the host knows, for the peerstore file.
    pub async fn known_peer_addresses(&self) -> Result<Vec<String>, ApiError> {
        let status = self.inner.net.status().await.map_err(ApiError::from)?;
        let mut out = Vec::new();
        for (peer, addrs) in status.known {
            out.extend(addrs.into_iter().map(|a| format!("{a}/p2p/{peer}")));
        }
        out.sort();
        Ok(out)
    }

    /// Chaos: cuts (or restores) every connection with `peer`.
    pub async fn chaos_block(&self, peer: &str, blocked: bool) -> Result<(), ApiError> {
        let pid = parse_peer(peer)?;
        self.inner.net.block(pid, blocked).await.map_err(ApiError::from)
    }
}

fn short(status: TrackerStatus, error: String) -> PinInfoShort {
    PinInfoShort {
        peername: String::new(),
        ipfs_peer_id: String::new(),
        ipfs_peer_addresses: Vec::new(),
        status,
        timestamp: Timestamp::now(),
        error,
        attempt_count: 0,
        priority_pin: false,
    }
}

fn error_entry(message: &str) -> PinInfoShort {
    short(TrackerStatus::ClusterError, message.to_string())
}

/// The k-way merge: repeatedly takes the smallest CID at the head of any stream and folds
/// every stream's item for that CID into one [`GlobalPinInfo`]. Memory: one item per peer
/// plus the channels' pages.
async fn merge_task(
    sources: Vec<(String, mpsc::Receiver<Result<PinInfo, ApiError>>)>,
    out: mpsc::Sender<Result<GlobalPinInfo, ApiError>>,
    report_errors: bool,
) {
    let mut peers = Vec::new();
    let mut rxs = Vec::new();
    for (p, rx) in sources {
        peers.push(p);
        rxs.push(rx);
    }
    let mut heads: Vec<Option<(Vec<u8>, PinInfo)>> = Vec::with_capacity(rxs.len());
    let mut failed: Vec<(String, String)> = Vec::new();
    for (i, rx) in rxs.iter_mut().enumerate() {
        heads.push(next_item(rx, &peers[i], &mut failed).await);
    }
    loop {
        let Some(min) = heads.iter().flatten().map(|(k, _)| k.clone()).min() else { break };
        let mut global: Option<GlobalPinInfo> = None;
        for i in 0..heads.len() {
            if heads[i].as_ref().is_some_and(|(k, _)| *k == min) {
                let (_, pi) = heads[i].take().expect("checked above");
                match &mut global {
                    None => global = Some(GlobalPinInfo::from_pin_info(pi)),
                    Some(g) => {
                        g.peer_map.insert(pi.peer.clone(), pi.info);
                    }
                }
                heads[i] = next_item(&mut rxs[i], &peers[i], &mut failed).await;
            }
        }
        let Some(mut g) = global else { break };
        if report_errors {
            for (p, e) in &failed {
                g.peer_map.entry(p.clone()).or_insert_with(|| error_entry(e));
            }
        }
        if out.send(Ok(g)).await.is_err() {
            return;
        }
    }
}

async fn next_item(
    rx: &mut mpsc::Receiver<Result<PinInfo, ApiError>>,
    peer: &str,
    failed: &mut Vec<(String, String)>,
) -> Option<(Vec<u8>, PinInfo)> {
    match rx.recv().await {
        Some(Ok(pi)) => Some((pi.cid.to_bytes(), pi)),
        Some(Err(e)) => {
            tracing::debug!(%peer, error = %e, "peer stream failed");
            failed.push((peer.to_string(), e.message));
            None
        }
        None => None,
    }
}
