//! How Raft peers talk: a [`RaftTransport`] carries opaque messages to a peer (the
//! cluster-RPC over libp2p in a daemon, an in-memory hub in tests), and openraft's network
//! traits are implemented on top of it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use openraft::error::{InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::{Deserialize, Serialize};

use super::types::{decode, encode, TypeConfig};
use crate::ConsensusError;

/// The kinds of call, each a separate cluster-RPC method (so each has its own permission).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// Raft's own protocol: append entries, vote, install snapshot.
    Raft,
    /// A batch of pin/unpin operations forwarded to the leader.
    Commit,
    /// Asks the leader to add a peer (as learner, then voter).
    AddPeer,
    /// Asks the leader to remove a peer.
    RmPeer,
}

/// Carries encoded Raft messages between peers.
#[async_trait]
pub trait RaftTransport: Send + Sync + 'static {
    /// Sends `msg` to `peer` and returns its answer.
    async fn call(&self, peer: &str, kind: CallKind, msg: Vec<u8>, timeout: Duration) -> Result<Vec<u8>, ConsensusError>;
}

/// A Raft protocol request.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum RaftMessage {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<u64>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
}

/// A Raft protocol answer.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum RaftAnswer {
    AppendEntries(Result<AppendEntriesResponse<u64>, RaftError<u64>>),
    Vote(Result<VoteResponse<u64>, RaftError<u64>>),
    InstallSnapshot(Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>),
}

/// The answer to a forwarded commit or membership change.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum CommitAnswer {
    /// Committed at this log index.
    Committed(u64),
    /// The callee is not the leader (and names the one it knows, if any).
    NotLeader(Option<String>),
    /// The operation failed for another reason.
    Failed(String),
}

/// Largest encoded append-entries request sent at once (the RPC request limit is 8 MiB).
const MAX_APPEND_BYTES: usize = 6 << 20;

/// Builds a client per target peer.
pub(crate) struct Factory {
    pub(crate) transport: Arc<dyn RaftTransport>,
}

impl RaftNetworkFactory<TypeConfig> for Factory {
    type Network = Client;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Client {
        Client { transport: Arc::clone(&self.transport), target, peer: node.addr.clone() }
    }
}

/// The connection to one peer.
pub(crate) struct Client {
    transport: Arc<dyn RaftTransport>,
    target: u64,
    peer: String,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Failure(String);

impl Client {
    async fn send<E: std::error::Error>(&self, msg: RaftMessage, timeout: Duration) -> Result<RaftAnswer, RPCError<u64, BasicNode, E>> {
        let bytes = encode(&msg);
        match self.transport.call(&self.peer, CallKind::Raft, bytes, timeout).await {
            Ok(b) => decode(&b).map_err(|e| RPCError::Network(NetworkError::new(&Failure(e)))),
            Err(e) => Err(RPCError::Unreachable(Unreachable::new(&Failure(e.to_string())))),
        }
    }
}

impl RaftNetwork<TypeConfig> for Client {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        let n = rpc.entries.len();
        if n > 1 {
            let size: usize = rpc.entries.iter().map(|e| encode(e).len()).sum();
            if size > MAX_APPEND_BYTES {
                return Err(RPCError::PayloadTooLarge(PayloadTooLarge::new_entries_hint((n / 2).max(1) as u64)));
            }
        }
        match self.send(RaftMessage::AppendEntries(rpc), option.hard_ttl()).await? {
            RaftAnswer::AppendEntries(Ok(r)) => Ok(r),
            RaftAnswer::AppendEntries(Err(e)) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
            other => Err(RPCError::Network(NetworkError::new(&Failure(format!("unexpected answer {other:?}"))))),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>> {
        match self.send(RaftMessage::InstallSnapshot(rpc), option.hard_ttl()).await? {
            RaftAnswer::InstallSnapshot(Ok(r)) => Ok(r),
            RaftAnswer::InstallSnapshot(Err(e)) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
            other => Err(RPCError::Network(NetworkError::new(&Failure(format!("unexpected answer {other:?}"))))),
        }
    }

    async fn vote(&mut self, rpc: VoteRequest<u64>, option: RPCOption) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        match self.send(RaftMessage::Vote(rpc), option.hard_ttl()).await? {
            RaftAnswer::Vote(Ok(r)) => Ok(r),
            RaftAnswer::Vote(Err(e)) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
            other => Err(RPCError::Network(NetworkError::new(&Failure(format!("unexpected answer {other:?}"))))),
        }
    }

    fn backoff(&self) -> openraft::network::Backoff {
        // Retry an unreachable peer soon: a restarted peer should catch up quickly.
        openraft::network::Backoff::new(std::iter::repeat(Duration::from_millis(200)))
    }
}
