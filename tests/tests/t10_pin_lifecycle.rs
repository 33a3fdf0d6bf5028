//! A newcomer's tour: pin content the embedded node can get, check status, unpin, JSON output.

use std::time::Duration;

use cluster_tests::*;

#[test]
fn t10_pin_status_unpin_with_ctl() {
    let provider = Provider::start().unwrap();
    let cid = provider.add(random_bytes(300 * 1024)).unwrap();
    let mut peer = Peer::init(&[]).unwrap();
    let addr = provider.addr().to_string();
    peer.edit_config(|c| c["ipfs_connector"]["embedded"]["bootstrap"] = serde_json::json!([addr])).unwrap();
    peer.start().unwrap();

    // Content fetched from another IPFS node over bitswap.
    ok_stdout(&peer.ctl(&["pin", "add", "--no-status", &cid]));
    assert!(
        wait_all_status(&peer, std::slice::from_ref(&cid), "pinned", Duration::from_secs(60)).is_empty(),
        "{cid} not pinned: {}",
        peer.log()
    );
    let text = ok_stdout(&peer.ctl(&["status", &cid]));
    assert!(text.contains("PINNED"), "{text}");

    // An identity CID needs no network at all.
    ok_stdout(&peer.ctl(&["pin", "add", "--no-status", "bafkqaaa"]));
    assert!(wait_all_status(&peer, &["bafkqaaa".into()], "pinned", Duration::from_secs(30)).is_empty());

    // JSON output uses the original field names.
    let json = ok_stdout(&peer.ctl(&["--enc", "json", "pin", "ls", &cid]));
    let pin: serde_json::Value = serde_json::from_str(&json).unwrap();
    for key in ["cid", "replication_factor_min", "replication_factor_max", "allocations", "max_depth", "type", "name", "metadata", "expire_at", "timestamp"] {
        assert!(pin.get(key).is_some(), "missing {key} in {json}");
    }
    assert_eq!(pin["cid"], cid.as_str());
    assert_eq!(pin["type"], "pin");
    let json = ok_stdout(&peer.ctl(&["--enc", "json", "status", &cid]));
    let gpi: serde_json::Value = serde_json::from_str(&json).unwrap();
    let entry = gpi["peer_map"].as_object().unwrap().values().next().unwrap().clone();
    assert_eq!(entry["status"], "pinned");
    for key in ["peername", "timestamp", "error", "attempt_count", "priority_pin"] {
        assert!(entry.get(key).is_some(), "missing {key} in {json}");
    }

    // Unpin.
    ok_stdout(&peer.ctl(&["pin", "rm", "--no-status", &cid]));
    assert!(wait_all_status(&peer, std::slice::from_ref(&cid), "unpinned", Duration::from_secs(30)).is_empty());
    let out = peer.ctl(&["pin", "ls", &cid]);
    assert!(!out.status.success(), "an unpinned CID is not in the pinset");

    // Direct mode through the path endpoint ctl uses.
    let direct = identity_cid(b"direct pin");
    ok_stdout(&peer.ctl(&["pin", "add", "--no-status", "--mode", "direct", &direct]));
    let json = ok_stdout(&peer.ctl(&["--enc", "json", "pin", "ls", &direct]));
    let pin: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(pin["mode"], "direct");
    assert_eq!(pin["max_depth"], 0);
    assert!(wait_all_status(&peer, &[direct], "pinned", Duration::from_secs(30)).is_empty());
}

#[test]
fn t11_rest_lists_stream_ndjson() {
    let peer = Peer::start_new(&[]).unwrap();
    let cids: Vec<String> = (0..20).map(|i| identity_cid(format!("item {i}").as_bytes())).collect();
    for c in &cids {
        let (code, body) = http("POST", &peer.url(&format!("/pins/{c}?name=n{c}"))).unwrap();
        assert_eq!(code, 200, "{body}");
    }
    let (code, body) = http("GET", &peer.url("/allocations")).unwrap();
    assert_eq!(code, 200);
    assert_eq!(ndjson(&body).len(), 20);
    assert!(wait_all_status(&peer, &cids, "pinned", Duration::from_secs(30)).is_empty());
    let (code, body) = http("GET", &peer.url("/pins?local=true&filter=pinned")).unwrap();
    assert_eq!(code, 200);
    assert_eq!(ndjson(&body).len(), 20);
    let (code, _) = http("GET", &peer.url("/pins?filter=pin_error")).unwrap();
    assert_eq!(code, 204, "no item matches: empty stream is 204");
    let (code, body) = http("GET", &peer.url(&format!("/pins?cids={},{}", cids[0], cids[1]))).unwrap();
    assert_eq!(code, 200);
    assert_eq!(ndjson(&body).len(), 2);
    let (code, body) = http("GET", &peer.url("/health/actors")).unwrap();
    assert_eq!(code, 200);
    let actors: serde_json::Value = serde_json::from_str(&body).unwrap();
    let names: Vec<&str> = actors.as_array().unwrap().iter().filter_map(|a| a["name"].as_str()).collect();
    for n in ["ipfs_connector", "pin_tracker", "consensus", "monitor", "informer", "pinset_watcher", "rest_api"] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    let metrics = http("GET", &format!("http://127.0.0.1:{}/metrics", peer.metrics_port)).unwrap().1;
    assert!(metrics.contains("ipfscluster_pins 20"), "{metrics}");
    assert!(metrics.contains("ipfscluster_actor_up{actor=\"pin_tracker\"} 1"), "{metrics}");
}

#[test]
fn t12_expired_pins_are_unpinned_by_the_state_sync() {
    let mut peer = Peer::init(&[]).unwrap();
    peer.edit_config(|c| c["cluster"]["state_sync_interval"] = "500ms".into()).unwrap();
    peer.start().unwrap();
    let short = identity_cid(b"expires soon");
    let long = identity_cid(b"stays");
    ok_stdout(&peer.ctl(&["pin", "add", "--no-status", "--expire-in", "2s", &short]));
    ok_stdout(&peer.ctl(&["pin", "add", "--no-status", "--expire-in", "1h", &long]));
    let json = ok_stdout(&peer.ctl(&["--enc", "json", "pin", "ls", &short]));
    let pin: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_ne!(pin["expire_at"], "0001-01-01T00:00:00Z");
    let gone = || http_status("GET", &peer.url(&format!("/allocations/{short}"))) == Some(404);
    assert!(wait_until(Duration::from_secs(30), gone), "expired pin still in the pinset");
    assert_eq!(http_status("GET", &peer.url(&format!("/allocations/{long}"))), Some(200));
}
