//! [`RaftTransport`] over the cluster's libp2p host (cluster-RPC methods `Consensus.Raft`,
//! `Consensus.Commit`, `Consensus.AddPeer`, `Consensus.RmPeer`).

use std::time::Duration;

use async_trait::async_trait;
use cluster_net::{Net, PeerId, RpcRequest, RpcResponse};

use super::{CallKind, RaftTransport};
use crate::ConsensusError;

/// The Raft's view of the host.
#[derive(Clone)]
pub struct NetRaftTransport {
    /// The host.
    pub net: Net,
}

#[async_trait]
impl RaftTransport for NetRaftTransport {
    async fn call(&self, peer: &str, kind: CallKind, msg: Vec<u8>, timeout: Duration) -> Result<Vec<u8>, ConsensusError> {
        let to: PeerId = peer.parse().map_err(|e| ConsensusError::Network(format!("invalid peer id {peer}: {e}")))?;
        let request = match kind {
            CallKind::Raft => RpcRequest::Raft { msg },
            CallKind::Commit => RpcRequest::RaftCommit { msg },
            CallKind::AddPeer => RpcRequest::RaftAddPeer { msg },
            CallKind::RmPeer => RpcRequest::RaftRmPeer { msg },
        };
        match self.net.call(to, request, Some(timeout)).await {
            Ok(RpcResponse::Blob(b)) => Ok(b),
            Ok(RpcResponse::Error(e)) => Err(ConsensusError::Network(format!("{peer}: {}", e.message))),
            Ok(other) => Err(ConsensusError::Network(format!("unexpected answer from {peer}: {other:?}"))),
            Err(e) => Err(ConsensusError::Network(e.to_string())),
        }
    }
}
