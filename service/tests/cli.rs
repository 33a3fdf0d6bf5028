//! The service binary's own commands: version, init, and config errors at start.

use std::process::Command;

fn service() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ipfs-cluster-service"))
}

#[test]
fn version_prints_the_release() {
    let out = service().arg("version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1.1.6");
}

#[test]
fn init_writes_config_identity_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().to_str().unwrap();
    let out = service().args(["--config", p, "init", "--consensus", "raft"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join("service.json")).unwrap()).unwrap();
    assert!(cfg["consensus"]["raft"].is_object());
    assert!(cfg["consensus"].get("crdt").is_none());
    assert_eq!(cfg["pin_tracker"]["stateless"]["priority_pin_max_age"], "24h0m0s");
    let id: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join("identity.json")).unwrap()).unwrap();
    assert!(id["id"].as_str().unwrap().starts_with("12D3Koo"));
    assert!(id["private_key"].is_string());
    let out = service().args(["--config", p, "init"]).output().unwrap();
    assert!(!out.status.success(), "init over an existing config needs --force");
    let out = service().args(["--config", p, "--force", "init"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn pin_line(i: u32) -> String {
    // Identity CIDs of distinct payloads: valid without any IPFS node.
    let data = format!("state-{i}");
    let mut mh = vec![0x00, data.len() as u8];
    mh.extend_from_slice(data.as_bytes());
    let mut bytes = vec![0x01, 0x55];
    bytes.extend_from_slice(&mh);
    let cid = format!("b{}", base32_lower(&bytes));
    format!(r#"{{"cid":"{cid}","name":"n{i}","replication_factor_min":-1,"replication_factor_max":-1,"type":"pin","allocations":[],"max_depth":-1,"mode":"recursive","metadata":{{"k":"v{i}"}}}}"#)
}

fn base32_lower(data: &[u8]) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    let (mut out, mut buf, mut bits) = (String::new(), 0u32, 0u32);
    for &b in data {
        buf = (buf << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            out.push(ALPHABET[((buf >> (bits - 5)) & 31) as usize] as char);
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buf << (5 - bits)) & 31) as usize] as char);
    }
    out
}

fn state_round_trip(consensus: &str) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().to_str().unwrap();
    let run = |args: &[&str]| service().args(["--config", p]).args(args).output().unwrap();
    let out = run(&["init", "--consensus", consensus]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let input = dir.path().join("in.ndjson");
    std::fs::write(&input, (0..50).map(|i| pin_line(i) + "\n").collect::<String>()).unwrap();
    let out = run(&["--force", "state", "import", input.to_str().unwrap()]);
    assert!(out.status.success(), "import: {}", String::from_utf8_lossy(&out.stderr));

    let export = |name: &str| {
        let f = dir.path().join(name);
        let out = run(&["state", "export", "--file", f.to_str().unwrap()]);
        assert!(out.status.success(), "export: {}", String::from_utf8_lossy(&out.stderr));
        std::fs::read_to_string(f).unwrap()
    };
    let first = export("a.ndjson");
    assert_eq!(first.lines().count(), 50, "{consensus}: {first}");

    // export → cleanup → import is a no-op.
    let out = run(&["--force", "state", "cleanup"]);
    assert!(out.status.success(), "cleanup: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(export("empty.ndjson"), "");
    let out = run(&["--force", "state", "import", dir.path().join("a.ndjson").to_str().unwrap()]);
    assert!(out.status.success(), "re-import: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(export("b.ndjson"), first, "{consensus}: export → cleanup → import changed the state");

    // A malformed file fails with its line number and changes nothing.
    let bad = dir.path().join("bad.ndjson");
    std::fs::write(&bad, format!("{}\n{{\"cid\": \"not a cid\"}}\n", pin_line(99))).unwrap();
    let out = run(&["--force", "state", "import", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2"), "{err}");
    assert_eq!(export("c.ndjson"), first, "a failed import changed the state");

    // Overrides apply to every pin.
    let out = run(&["--force", "state", "import", input.to_str().unwrap(), "--rmin", "1", "--rmax", "2"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let with = export("d.ndjson");
    assert!(with.lines().all(|l| l.contains("\"replication_factor_min\":1") && l.contains("\"replication_factor_max\":2")), "{with}");
}

#[test]
fn state_export_cleanup_import_crdt() {
    state_round_trip("crdt");
}

#[test]
fn state_export_cleanup_import_raft() {
    state_round_trip("raft");
}
