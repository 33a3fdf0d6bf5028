//! Text and JSON renderings of API objects, matching the original tool's output line for line.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use cluster_types::{Alert, GlobalPinInfo, GlobalRepoGc, Metric, Pin, PinMode, Timestamp, Version, ID};
use serde::Serialize;

use crate::humanize;

/// Go's `2006-01-02 15:04:05` layout, used for expiry and creation times of pins.
const PIN_TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// Pretty JSON as Go's `json.MarshalIndent(v, "", "    ")` writes it: four-space indent,
/// `<`, `>`, `&`, U+2028 and U+2029 escaped, and a final newline.
pub fn json<T: Serialize + ?Sized>(value: &T) -> String {
    let mut buf = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, formatter);
    if value.serialize(&mut ser).is_err() {
        // Only maps with non-string keys fail to serialize; none of the API types have them.
        return "null\n".to_string();
    }
    let text = String::from_utf8_lossy(&buf);
    // These characters can only occur inside JSON strings, so a plain replace is safe.
    let mut out = String::with_capacity(text.len() + 1);
    for c in text.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.push('\n');
    out
}

/// `GET /id` and each `peers ls` item.
pub fn id(obj: &ID) -> String {
    if !obj.error.is_empty() {
        return format!("{} | ERROR: {}\n", obj.id, obj.error);
    }
    let mut out = String::new();
    let others = obj.cluster_peers.len() as i64 - 1;
    let _ = writeln!(out, "{} | {} | Sees {} other peers", obj.id, obj.peername, others);
    out.push_str("  > Addresses:\n");
    let mut addrs = obj.addresses.clone();
    addrs.sort();
    for a in &addrs {
        let _ = writeln!(out, "    - {a}");
    }
    if !obj.ipfs.error.is_empty() {
        let _ = writeln!(out, "  > IPFS ERROR: {}", obj.ipfs.error);
        return out;
    }
    let _ = writeln!(out, "  > IPFS: {}", obj.ipfs.id);
    let mut ipfs_addrs = obj.ipfs.addresses.clone();
    ipfs_addrs.sort();
    for a in &ipfs_addrs {
        let _ = writeln!(out, "    - {a}");
    }
    out
}

/// The status of one pin: a `CID | name:` header, then one line per peer, sorted by peer id.
pub fn global_pin_info(obj: &GlobalPinInfo) -> String {
    let mut out = obj.cid.to_string();
    if !obj.name.is_empty() {
        let _ = write!(out, " | {}", obj.name);
    }
    out.push_str(":\n");
    for (peer, info) in &obj.peer_map {
        let who = if info.peername.is_empty() { peer } else { &info.peername };
        let _ = write!(out, "    > {:<20} : {}", who, info.status.as_str().to_uppercase());
        if !info.error.is_empty() {
            let _ = write!(out, ": {}", info.error);
        }
        let _ = writeln!(
            out,
            " | {} | Attempts: {} | Priority: {}",
            info.timestamp.to_rfc3339(),
            info.attempt_count,
            info.priority_pin
        );
    }
    out
}

/// One pin of the pinset (`pin ls`, `pin add --no-status`).
pub fn pin(obj: &Pin) -> String {
    let mut kind = obj.pin_type.as_str().to_uppercase();
    if obj.options.mode == PinMode::Direct {
        kind.push_str("-DIRECT");
    }
    let mut out = format!("{} | {} | {} | ", obj.cid, obj.options.name, kind);
    if obj.is_pin_everywhere() {
        out.push_str("Repl. Factor: -1 | Allocations: [everywhere]");
    } else {
        let mut allocs = obj.allocations.clone();
        allocs.sort();
        let _ = write!(
            out,
            "Repl. Factor: {}--{} | Allocations: [{}]",
            obj.options.replication_factor_min,
            obj.options.replication_factor_max,
            allocs.join(" ")
        );
    }
    let depth = match obj.max_depth {
        0 => "Direct".to_string(),
        -1 => "Recursive".to_string(),
        n => format!("Recursive-{n}"),
    };
    let _ = write!(out, " | {depth}");
    let _ = write!(out, " | Metadata: {}", if obj.options.metadata.is_empty() { "no" } else { "yes" });
    let _ = write!(out, " | Exp: {}", pin_time(&obj.options.expire_at, "∞"));
    let _ = writeln!(out, " | Added: {}", pin_time(&obj.timestamp, "unknown"));
    out
}

fn pin_time(t: &Timestamp, unset: &str) -> String {
    match t.0 {
        Some(t) => t.format(PIN_TIME_FORMAT).to_string(),
        None => unset.to_string(),
    }
}

/// `version`: the cluster's release string.
pub fn version(obj: &Version) -> String {
    format!("{}\n", obj.version)
}

/// One metric of `health metrics <name>`; freespace is shown as a size.
pub fn metric(obj: &Metric, now: DateTime<Utc>) -> String {
    let value = if obj.name == "freespace" && obj.weight > 0 {
        humanize::bytes(obj.weight as u64)
    } else {
        obj.value.clone()
    };
    format!(
        "{} | {}: {} | Expires in: {}\n",
        obj.peer,
        obj.name,
        value,
        humanize::rel_time_nanos(obj.expire, now)
    )
}

/// One alert of `health alerts`.
pub fn alert(obj: &Alert, now: DateTime<Utc>) -> String {
    let triggered = match obj.triggered_at.0 {
        Some(t) => humanize::rel_time(t, now),
        None => humanize::rel_time_nanos(0, now),
    };
    format!(
        "{}: {}. Expired at: {}. Triggered at: {}\n",
        obj.metric.peer,
        obj.metric.name,
        humanize::rel_time_nanos(obj.metric.expire, now),
        triggered
    )
}

/// `ipfs gc`: per peer (sorted by id, shown by name) the removed keys.
pub fn repo_gc(obj: &GlobalRepoGc) -> String {
    let mut out = String::new();
    for (peer, item) in &obj.peer_map {
        let who = if item.peername.is_empty() { peer } else { &item.peername };
        if item.error.is_empty() {
            let _ = writeln!(out, "{who:<15}");
        } else {
            let _ = writeln!(out, "{who:<15} | ERROR: {}", item.error);
        }
        out.push_str("  > CIDs:\n");
        for key in &item.keys {
            if key.error.is_empty() {
                let _ = writeln!(out, "    - {}", key.key);
            } else {
                let _ = writeln!(out, "    - ERROR: {}", key.error);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster_types::{PinInfoShort, TrackerStatus};
    use std::collections::BTreeMap;

    const CID: &str = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi";

    #[test]
    fn pin_line() {
        let mut p = Pin::new(CID.parse().unwrap());
        p.options.name = "dataset-1".into();
        p.options.replication_factor_min = 2;
        p.options.replication_factor_max = 3;
        p.allocations = vec!["B".into(), "A".into()];
        p.timestamp = Timestamp::parse("2024-05-06T10:00:00Z").unwrap();
        assert_eq!(
            pin(&p),
            format!("{CID} | dataset-1 | PIN | Repl. Factor: 2--3 | Allocations: [A B] | Recursive | Metadata: no | Exp: ∞ | Added: 2024-05-06 10:00:00\n")
        );
        p.options.replication_factor_min = -1;
        p.options.replication_factor_max = -1;
        p.options.mode = PinMode::Direct;
        p.max_depth = 0;
        p.options.metadata.insert("k".into(), "v".into());
        p.options.expire_at = Timestamp::parse("2030-01-02T03:04:05Z").unwrap();
        assert_eq!(
            pin(&p),
            format!("{CID} | dataset-1 | PIN-DIRECT | Repl. Factor: -1 | Allocations: [everywhere] | Direct | Metadata: yes | Exp: 2030-01-02 03:04:05 | Added: 2024-05-06 10:00:00\n")
        );
    }

    #[test]
    fn status_lines() {
        let short = |name: &str, status, error: &str| PinInfoShort {
            peername: name.into(),
            ipfs_peer_id: String::new(),
            ipfs_peer_addresses: vec![],
            status,
            timestamp: Timestamp::parse("2024-05-06T10:00:03Z").unwrap(),
            error: error.into(),
            attempt_count: 1,
            priority_pin: false,
        };
        let g = GlobalPinInfo {
            cid: CID.parse().unwrap(),
            name: "n".into(),
            allocations: vec![],
            origins: vec![],
            created: Timestamp::zero(),
            metadata: BTreeMap::new(),
            peer_map: BTreeMap::from([
                ("P1".to_string(), short("node-a", TrackerStatus::Pinned, "")),
                ("P2".to_string(), short("", TrackerStatus::PinError, "boom")),
            ]),
        };
        assert_eq!(
            global_pin_info(&g),
            format!(
                "{CID} | n:\n    > node-a               : PINNED | 2024-05-06T10:00:03Z | Attempts: 1 | Priority: false\n    > P2                   : PIN_ERROR: boom | 2024-05-06T10:00:03Z | Attempts: 1 | Priority: false\n"
            )
        );
    }

    #[test]
    fn json_is_go_like() {
        let v = serde_json::json!({"a": "<b>&"});
        assert_eq!(json(&v), "{\n    \"a\": \"\\u003cb\\u003e\\u0026\"\n}\n");
    }
}
