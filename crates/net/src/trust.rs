//! Which peers are trusted: shared by the RPC permission check and the consensus.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

/// The trusted peer set (`consensus.crdt.trusted_peers`); `*` trusts everyone.
///
/// Cheap to clone; clones share the set, so trusting a peer at runtime is seen by every user.
/// This peer is always trusted.
#[derive(Debug, Clone)]
pub struct TrustSet {
    inner: Arc<RwLock<Inner>>,
}

#[derive(Debug)]
struct Inner {
    everyone: bool,
    me: String,
    peers: HashSet<String>,
}

impl TrustSet {
    /// Builds the set from the configured list; `*` anywhere in it trusts everyone.
    pub fn new(me: &str, configured: &[String]) -> Self {
        let everyone = configured.iter().any(|p| p.trim() == "*");
        let peers = configured.iter().map(|p| p.trim().to_string()).filter(|p| p != "*").collect();
        TrustSet { inner: Arc::new(RwLock::new(Inner { everyone, me: me.to_string(), peers })) }
    }

    /// A set trusting every peer (raft clusters, tests).
    pub fn everyone(me: &str) -> Self {
        Self::new(me, &["*".to_string()])
    }

    /// Tells whether `peer` is trusted.
    pub fn is_trusted(&self, peer: &str) -> bool {
        let inner = self.inner.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        inner.everyone || inner.me == peer || inner.peers.contains(peer)
    }

    /// True when every peer is trusted.
    pub fn trusts_everyone(&self) -> bool {
        self.inner.read().unwrap_or_else(std::sync::PoisonError::into_inner).everyone
    }

    /// Trusts `peer` from now on.
    pub fn trust(&self, peer: &str) {
        self.inner.write().unwrap_or_else(std::sync::PoisonError::into_inner).peers.insert(peer.to_string());
    }

    /// Stops trusting `peer` (no effect with `*`).
    pub fn distrust(&self, peer: &str) {
        self.inner.write().unwrap_or_else(std::sync::PoisonError::into_inner).peers.remove(peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_trusts_everyone_and_self_is_always_trusted() {
        let t = TrustSet::new("me", &["A".into()]);
        assert!(t.is_trusted("me"));
        assert!(t.is_trusted("A"));
        assert!(!t.is_trusted("B"));
        t.trust("B");
        assert!(t.is_trusted("B"));
        t.distrust("B");
        assert!(!t.is_trusted("B"));
        assert!(TrustSet::new("me", &["*".into()]).is_trusted("anyone"));
    }
}
