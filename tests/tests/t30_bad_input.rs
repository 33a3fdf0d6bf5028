//! Bad input gets a clear error: the right status and `{"code","message"}`, one line from ctl.

use std::process::Command;

use cluster_tests::*;

fn assert_error(peer: &Peer, method: &str, path: &str, status: u16) -> String {
    let (code, body) = http(method, &peer.url(path)).unwrap();
    assert_eq!(code, status, "{method} {path}: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    assert_eq!(v["code"], status, "{body}");
    let msg = v["message"].as_str().unwrap_or_default().to_string();
    assert!(!msg.is_empty(), "{body}");
    msg
}

fn post_json(peer: &Peer, path: &str, body: &str) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let resp = reqwest::Client::new()
            .post(peer.url(path))
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    })
}

#[test]
fn t30_rest_rejects_bad_input() {
    let peer = Peer::start_new(&[]).unwrap();
    let msg = assert_error(&peer, "GET", "/pins/notacid", 400);
    assert!(msg.contains("notacid"), "{msg}");
    assert_error(&peer, "POST", "/pins/notacid", 400);
    assert_error(&peer, "GET", "/allocations/zzz", 400);
    let msg = assert_error(&peer, "GET", "/pins?filter=pinnned", 400);
    assert!(msg.contains("pinnned"), "{msg}");
    assert_error(&peer, "POST", "/pins/bafkqaaa?replication-min=abc", 400);
    assert_error(&peer, "POST", "/pins/bafkqaaa?mode=sideways", 400);
    assert_error(&peer, "GET", "/no/such/route", 404);
    assert_error(&peer, "DELETE", "/version", 405);
    let msg = assert_error(&peer, "GET", "/allocations/bafkqaaa", 404);
    assert_eq!(msg, "pin is not part of the pinset");
    assert_error(&peer, "DELETE", "/pins/bafkqaaa", 404);
    let (code, body) = post_json(&peer, "/peers", "{\"peer_id\": ");
    assert_eq!(code, 400, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["code"], 400);
    // Nothing was pinned by any of it.
    let (code, _) = http("GET", &peer.url("/allocations")).unwrap();
    assert_eq!(code, 204);
}

#[test]
fn t31_ctl_errors_are_one_line_with_exit_codes() {
    let peer = Peer::start_new(&[]).unwrap();
    let out = peer.ctl(&["pin", "add", "notacid"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    let out = peer.ctl(&["status", "--filter", "bogus"]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim().lines().count(), 1);

    let out = peer.ctl(&["pin", "ls", "bafkqaaa"]);
    assert_eq!(out.status.code(), Some(2));

    let out = Command::new(bin("ipfs-cluster-ctl")).args(["--host", "/ip4/127.0.0.1/tcp/1", "id"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim().lines().count(), 1);
}

fn daemon_fails_with(edit: impl FnOnce(&mut serde_json::Value), expect: &[&str]) {
    let peer = Peer::init(&[]).unwrap();
    peer.edit_config(edit).unwrap();
    let out = Command::new(bin("ipfs-cluster-service"))
        .args(["--config", peer.path().to_str().unwrap(), "daemon"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for e in expect {
        assert!(err.contains(e), "expected {e:?} in: {err}");
    }
}

#[test]
fn t32_bad_service_json_is_a_startup_error_naming_the_key() {
    daemon_fails_with(|c| c["cluster"]["bogus_key"] = 1.into(), &["cluster.bogus_key"]);
    daemon_fails_with(
        |c| c["pin_tracker"]["stateless"]["priority_pin_max_age"] = "24 hours".into(),
        &["priority_pin_max_age", "24 hours"],
    );
}

#[test]
fn t33_second_daemon_on_same_folder_is_refused() {
    let peer = Peer::start_new(&[]).unwrap();
    let out = Command::new(bin("ipfs-cluster-service"))
        .args(["--config", peer.path().to_str().unwrap(), "daemon"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("lock"), "{}", String::from_utf8_lossy(&out.stderr));
}
