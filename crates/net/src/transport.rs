//! The private-network transport: TCP, then the pnet handshake when a secret is set, then
//! noise and yamux, all under one timeout so a wrong-secret dial fails instead of hanging.

use std::time::Duration;

use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::{Boxed, Transport};
use libp2p::core::upgrade::Version;
use libp2p::identity::Keypair;
use libp2p::pnet::{PnetConfig, PreSharedKey};
use libp2p::{noise, tcp, yamux, PeerId};

use crate::NetError;

/// Builds the cluster transport. With `secret`, peers that do not know it cannot complete
/// the handshake (the pnet stream is garbage to them), as with the original's private network.
pub fn build(key: &Keypair, secret: Option<[u8; 32]>, timeout: Duration) -> Result<Boxed<(PeerId, StreamMuxerBox)>, NetError> {
    let noise = noise::Config::new(key).map_err(|e| NetError::Config(format!("noise: {e}")))?;
    let tcp = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true));
    let mut yamux_cfg = yamux::Config::default();
    yamux_cfg.set_max_num_streams(1024);
    Ok(match secret {
        Some(secret) => {
            let psk = PreSharedKey::new(secret);
            tcp.and_then(move |socket, _| PnetConfig::new(psk).handshake(socket))
                .upgrade(Version::V1Lazy)
                .authenticate(noise)
                .multiplex(yamux_cfg)
                .timeout(timeout)
                .boxed()
        }
        None => tcp.upgrade(Version::V1Lazy).authenticate(noise).multiplex(yamux_cfg).timeout(timeout).boxed(),
    })
}
