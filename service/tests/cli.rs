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
