//! `health graph`: the cluster's connectivity as a Graphviz DOT document.
//!
//! Cluster peers are `C0..`, sorted by peer id; each one's IPFS daemon is `I` with the same
//! number, so `C3 -> I3` is the link between a peer and its own node. IPFS peers outside the
//! cluster (shown with `--all-ipfs-peers`) are numbered after them.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use cluster_types::ConnectGraph;

/// Renders `g`; `all_ipfs_peers` adds the IPFS peers that belong to no cluster peer.
pub fn dot(g: &ConnectGraph, all_ipfs_peers: bool) -> String {
    let mut cluster: BTreeSet<&str> = g.cluster_links.keys().map(String::as_str).collect();
    cluster.extend(g.cluster_links.values().flatten().map(String::as_str));
    cluster.extend(g.cluster_to_ipfs.keys().map(String::as_str));
    if !g.cluster_id.is_empty() {
        cluster.insert(&g.cluster_id);
    }
    let c_name: BTreeMap<&str, String> = cluster.iter().enumerate().map(|(i, p)| (*p, format!("C{i}"))).collect();

    let mut i_name: BTreeMap<&str, String> = BTreeMap::new();
    for (peer, c) in &c_name {
        if let Some(ipfs) = g.cluster_to_ipfs.get(*peer).filter(|s| !s.is_empty()) {
            i_name.insert(ipfs, format!("I{}", &c[1..]));
        }
    }
    if all_ipfs_peers {
        let mut next = cluster.len();
        let others: BTreeSet<&str> = g
            .ipfs_links
            .iter()
            .flat_map(|(k, v)| std::iter::once(k.as_str()).chain(v.iter().map(String::as_str)))
            .filter(|p| !i_name.contains_key(p))
            .collect();
        for p in others {
            i_name.insert(p, format!("I{next}"));
            next += 1;
        }
    }

    let mut out = String::new();
    out.push_str("digraph cluster {\n");
    out.push_str("  label=\"IPFS Cluster\"\n  labelloc=\"b\"\n  splines=\"true\"\n\n");
    out.push_str("  /* cluster peers */\n  subgraph cluster_peers {\n    rank=\"min\"\n");
    for (peer, n) in &c_name {
        let name = g.id_to_peername.get(*peer).map(String::as_str).unwrap_or("");
        let fill = if *peer == g.cluster_id {
            "orange"
        } else if g.cluster_trust_links.get(*peer).copied().unwrap_or(false) {
            "darkorange3"
        } else {
            "gray70"
        };
        let _ = writeln!(
            out,
            "    {n} [label=<<B>{}</B><BR/>{}> shape=\"box\" style=\"filled\" fillcolor=\"{fill}\" peer=\"{}\"]",
            escape(name),
            short(peer),
            escape(peer)
        );
    }
    out.push_str("  }\n\n  /* ipfs peers */\n  subgraph ipfs_peers {\n    rank=\"max\"\n");
    let own: BTreeSet<&str> = g.cluster_to_ipfs.values().map(String::as_str).collect();
    for (peer, n) in &i_name {
        let fill = if own.contains(peer) { "turquoise3" } else { "lightblue" };
        let _ = writeln!(
            out,
            "    {n} [label=<{}> shape=\"ellipse\" style=\"filled\" fillcolor=\"{fill}\" peer=\"{}\"]",
            short(peer),
            escape(peer)
        );
    }
    out.push_str("  }\n\n  /* connections among cluster peers */\n");
    for (from, tos) in &g.cluster_links {
        for to in tos {
            if let (Some(a), Some(b)) = (c_name.get(from.as_str()), c_name.get(to.as_str())) {
                let _ = writeln!(out, "  {a} -> {b}");
            }
        }
    }
    out.push_str("\n  /* cluster peers and their ipfs daemons */\n");
    for (peer, ipfs) in &g.cluster_to_ipfs {
        if let (Some(a), Some(b)) = (c_name.get(peer.as_str()), i_name.get(ipfs.as_str())) {
            let _ = writeln!(out, "  {a} -> {b} [style=\"dashed\"]");
        }
    }
    out.push_str("\n  /* swarm connections among ipfs daemons */\n");
    for (from, tos) in &g.ipfs_links {
        for to in tos {
            if let (Some(a), Some(b)) = (i_name.get(from.as_str()), i_name.get(to.as_str())) {
                let _ = writeln!(out, "  {a} -> {b}");
            }
        }
    }
    out.push_str("}\n");
    out
}

/// The last characters of a peer id, as the original's labels show them.
fn short(id: &str) -> String {
    let tail: String = id.chars().rev().take(6).collect::<Vec<_>>().into_iter().rev().collect();
    escape(&tail)
}

/// Escapes text for an HTML-like DOT label or a quoted attribute.
fn escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '&' => "&amp;".to_string(),
            '"' => "&quot;".to_string(),
            c => c.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph() -> ConnectGraph {
        let s = |v: &str| v.to_string();
        ConnectGraph {
            cluster_id: s("PeerB"),
            id_to_peername: [(s("PeerA"), s("alpha")), (s("PeerB"), s("be<ta"))].into(),
            ipfs_links: [(s("IpfsA"), vec![s("IpfsB"), s("Stranger")]), (s("IpfsB"), vec![s("IpfsA")])].into(),
            cluster_links: [(s("PeerA"), vec![s("PeerB")]), (s("PeerB"), vec![s("PeerA")])].into(),
            cluster_trust_links: [(s("PeerA"), true), (s("PeerB"), true)].into(),
            cluster_to_ipfs: [(s("PeerA"), s("IpfsA")), (s("PeerB"), s("IpfsB"))].into(),
        }
    }

    #[test]
    fn peers_and_their_daemons_share_a_number() {
        let d = dot(&graph(), false);
        for edge in ["C0 -> C1", "C1 -> C0", "C0 -> I0 [style=\"dashed\"]", "C1 -> I1 [style=\"dashed\"]", "I0 -> I1", "I1 -> I0"] {
            assert!(d.contains(edge), "missing {edge} in\n{d}");
        }
        assert!(d.starts_with("digraph cluster {") && d.trim_end().ends_with('}'));
        assert!(!d.contains("Stranger"), "outside ipfs peers only with --all-ipfs-peers");
        assert!(d.contains("be&lt;ta"), "labels are escaped");
        assert!(d.contains("fillcolor=\"orange\" peer=\"PeerB\""), "the drawing peer stands out");
    }

    #[test]
    fn all_ipfs_peers_adds_outsiders_after_the_cluster() {
        let d = dot(&graph(), true);
        assert!(d.contains("I2 [label=<ranger>"), "{d}");
        assert!(d.contains("I0 -> I2"));
    }

    #[test]
    fn empty_graph_is_still_a_document() {
        let d = dot(&ConnectGraph::default(), true);
        assert!(d.starts_with("digraph cluster {") && d.trim_end().ends_with('}'));
    }
}
