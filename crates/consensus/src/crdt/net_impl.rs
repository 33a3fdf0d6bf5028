//! [`CrdtNetwork`] over the cluster's libp2p host.

use std::time::Duration;

use async_trait::async_trait;
use cluster_net::{Net, PeerId, RpcRequest, RpcResponse};

use super::CrdtNetwork;
use crate::ConsensusError;

/// The CRDT's view of the host: its gossip topic and per-call timeout.
#[derive(Clone)]
pub struct NetCrdtNetwork {
    /// The host.
    pub net: Net,
    /// Gossip topic of the consensus.
    pub topic: String,
    /// Per-call timeout of digest and fetch calls.
    pub timeout: Duration,
}

fn peer_id(peer: &str) -> Result<PeerId, ConsensusError> {
    peer.parse().map_err(|e| ConsensusError::Network(format!("invalid peer id {peer}: {e}")))
}

impl NetCrdtNetwork {
    async fn blob(&self, peer: &str, request: RpcRequest) -> Result<Vec<u8>, ConsensusError> {
        match self.net.call(peer_id(peer)?, request, Some(self.timeout)).await {
            Ok(RpcResponse::Blob(b)) => Ok(b),
            Ok(other) => Err(ConsensusError::Network(format!("unexpected answer from {peer}: {other:?}"))),
            Err(e) => Err(ConsensusError::Network(e.to_string())),
        }
    }
}

#[async_trait]
impl CrdtNetwork for NetCrdtNetwork {
    fn publish(&self, data: Vec<u8>) {
        self.net.publish(&self.topic, data);
    }

    async fn digest(&self, peer: &str) -> Result<Vec<u8>, ConsensusError> {
        self.blob(peer, RpcRequest::Digest).await
    }

    async fn fetch(&self, peer: &str, query: Vec<u8>) -> Result<Vec<u8>, ConsensusError> {
        self.blob(peer, RpcRequest::Fetch { query }).await
    }
}
