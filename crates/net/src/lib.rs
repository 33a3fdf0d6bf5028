//! The cluster's libp2p host: private-network transport, gossipsub, and the permissioned cluster-RPC protocol.
//!
//! One [`NetActor`] per peer owns a libp2p swarm (TCP + pnet + noise + yamux, identify, ping,
//! gossipsub and a request-response RPC protocol). Everything else talks to it through a
//! [`Net`] handle: typed RPC calls to other peers ([`Net::call`]), gossip publishing, dialing,
//! and a chaos block list. Inbound RPCs are checked against the permission table
//! ([`rpc::RpcMethod::policy`]) in exactly one place, the swarm driver, before anything else
//! sees them; accepted ones are handed to the dispatcher the cluster registers.

#![warn(missing_docs)]

mod actor;
mod error;
pub mod rpc;
mod transport;
mod trust;

pub use actor::{GossipMessage, InboundRpc, Net, NetActor, NetConfig, NetEvent, NetMsg, NetStatus};
pub use error::NetError;
pub use libp2p::{identity::Keypair, Multiaddr, PeerId};
pub use rpc::{Policy, RpcMethod, RpcRequest, RpcResponse, RPC_PROTOCOL};
pub use trust::TrustSet;

/// Splits `/…/p2p/<id>` into the peer id and the address without the `/p2p` suffix.
pub fn split_peer_multiaddr(addr: &Multiaddr) -> Option<(PeerId, Multiaddr)> {
    let mut base = addr.clone();
    match base.pop() {
        Some(libp2p::multiaddr::Protocol::P2p(peer)) => Some((peer, base)),
        _ => None,
    }
}
