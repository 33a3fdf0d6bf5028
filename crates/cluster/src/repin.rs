//! Re-pinning: when a peer's ping expires, its pins are re-allocated to live peers.
//!
//! Every peer sees the alert, but for each pin only the live trusted peer *closest* to the
//! CID (XOR distance of SHA-256 hashes) acts, so the work is spread and never duplicated. It
//! waits `repin_grace` first and acts only if the peer is still down, so a short blip does
//! not trigger a mass re-pin; it re-allocates at most `repin_rate` pins per second. The
//! alert path never stops consuming, whatever `disable_repinning` says (the original's
//! handler returned for good on the first alert when repinning was off).

use std::sync::{Arc, Weak};
use std::time::Duration;

use cluster_actors::{Actor, ActorError, Context};
use cluster_types::{Alert, ApiError, Cid, Pin, Timestamp};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, Mutex};

use crate::cluster::{Cluster, Inner};
use crate::walk::walk_state;

/// Of `peers`, the one closest to `cid` by XOR of SHA-256 hashes (ties cannot happen for
/// distinct peers).
pub fn closest_peer<'a>(cid: &Cid, peers: &'a [String]) -> Option<&'a String> {
    let target = Sha256::digest(cid.to_bytes());
    peers.iter().min_by_key(|p| {
        let h = Sha256::digest(p.as_bytes());
        let mut d = [0u8; 32];
        for i in 0..32 {
            d[i] = h[i] ^ target[i];
        }
        d
    })
}

/// Messages: none; the actor consumes the monitor's alert channel.
pub enum RepinMsg {}

/// The repinner actor.
pub struct Repinner {
    cluster: Weak<Inner>,
    alerts: Arc<Mutex<mpsc::Receiver<Alert>>>,
}

impl Repinner {
    /// Builds an instance; the alert receiver is shared by every instance.
    pub(crate) fn new(cluster: Weak<Inner>, alerts: Arc<Mutex<mpsc::Receiver<Alert>>>) -> Self {
        Repinner { cluster, alerts }
    }
}

impl Actor for Repinner {
    type Msg = RepinMsg;

    async fn started(&mut self, ctx: &Context<RepinMsg>) -> Result<(), ActorError> {
        let (weak, alerts) = (self.cluster.clone(), Arc::clone(&self.alerts));
        ctx.spawn_background(async move {
            let mut rx = alerts.lock().await;
            while let Some(alert) = rx.recv().await {
                let Some(inner) = weak.upgrade() else { return };
                let cluster = Cluster { inner };
                let peer = alert.metric.peer.clone();
                if !cluster.inner.settings.repinning {
                    tracing::info!(%peer, "peer is down; repinning is disabled");
                    continue;
                }
                tokio::spawn(async move {
                    tokio::time::sleep(cluster.inner.settings.repin_grace).await;
                    let live = cluster.inner.consensus.peers().await.unwrap_or_default();
                    if live.contains(&peer) {
                        tracing::info!(%peer, "peer came back within the grace period: no repinning");
                        return;
                    }
                    let rate = cluster.inner.settings.repin_rate;
                    match cluster.vacate(&peer, Some(rate)).await {
                        Ok(n) => tracing::info!(%peer, repinned = n, "re-allocated the pins of a lost peer"),
                        Err(e) => tracing::warn!(%peer, error = %e, "repinning failed"),
                    }
                });
            }
        });
        Ok(())
    }

    async fn handle(&mut self, msg: RepinMsg, _ctx: &Context<RepinMsg>) -> Result<(), ActorError> {
        match msg {}
    }
}

impl Cluster {
    /// Re-allocates the pins allocated to `dead`. With `rate` (automatic repinning) only the
    /// pins for which this peer is the closest live trusted peer are handled, at most `rate`
    /// per second; without it (`peers rm`) every such pin is.
    pub(crate) async fn vacate(&self, dead: &str, rate: Option<u32>) -> Result<usize, ApiError> {
        let me = self.inner.settings.peer_id.clone();
        let live: Vec<String> = self
            .inner
            .consensus
            .peers()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|p| p != dead && self.inner.trust.is_trusted(p))
            .collect();
        let dead_s = dead.to_string();
        let mut pins = walk_state(Arc::clone(&self.inner.state), move |p| p.allocations.contains(&dead_s));
        let pause = rate.filter(|r| *r > 0).map(|r| Duration::from_secs_f64(1.0 / f64::from(r)));
        let mut moved = 0usize;
        while let Some(item) = pins.recv().await {
            let pin = item.map_err(ApiError::from)?;
            if rate.is_some() && closest_peer(&pin.cid, &live) != Some(&me) {
                continue;
            }
            match self.reallocate(pin, dead).await {
                Ok(true) => moved += 1,
                Ok(false) => {}
                Err(e) => tracing::warn!(peer = %dead, error = %e, "could not re-allocate a pin"),
            }
            if let Some(p) = pause {
                tokio::time::sleep(p).await;
            }
        }
        Ok(moved)
    }

    async fn reallocate(&self, pin: Pin, dead: &str) -> Result<bool, ApiError> {
        let current: Vec<String> = pin.allocations.iter().filter(|p| *p != dead).cloned().collect();
        let blacklist = [dead.to_string()];
        let allocations = self.allocate_excluding(&pin, &current, &blacklist).await?;
        if allocations == pin.allocations {
            return Ok(false);
        }
        let mut updated = pin;
        updated.allocations = allocations;
        updated.timestamp = Timestamp::now();
        self.commit_pin(updated).await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_closest_peer_and_it_is_stable() {
        let peers: Vec<String> = (0..7).map(|i| format!("peer{i}")).collect();
        let mut counts = std::collections::HashMap::new();
        for i in 0..500u32 {
            let cid = cluster_types::parse_cid(&format!("bafkqab{}", "a".repeat(0)))
                .ok()
                .filter(|_| i == 0)
                .unwrap_or_else(|| {
                    use multihash_codetable::{Code, MultihashDigest};
                    Cid::new_v1(0x55, Code::Sha2_256.digest(&i.to_be_bytes()))
                });
            let c = closest_peer(&cid, &peers).unwrap().clone();
            assert_eq!(closest_peer(&cid, &peers), Some(&c), "deterministic");
            *counts.entry(c).or_insert(0) += 1;
        }
        // Work spreads over every peer.
        assert_eq!(counts.len(), peers.len(), "{counts:?}");
    }
}
