//! Killing the pin tracker or the IPFS connector while 200 pins are queued loses none of them.

use std::time::Duration;

use cluster_chaos::{prometheus_value, restarts};
use cluster_tests::*;

/// 200 pins of content that only appears on the provider after the kill, so the pins are
/// certainly queued or in flight when the actor dies.
fn kill_with_queued_pins(actor: &str) {
    let provider = Provider::start().unwrap();
    let blobs: Vec<Vec<u8>> = (0..200).map(|_| random_bytes(2048)).collect();
    // CIDs are computed by a throw-away node so the provider does not have them yet.
    let hasher = Provider::start().unwrap();
    let cids: Vec<String> = blobs.iter().map(|b| hasher.add(b.clone()).unwrap()).collect();
    drop(hasher);

    let mut peer = Peer::init(&["--enable-chaos"]).unwrap();
    let addr = provider.addr().to_string();
    peer.edit_config(|c| {
        c["ipfs_connector"]["embedded"]["bootstrap"] = serde_json::json!([addr]);
        c["ipfs_connector"]["embedded"]["pin_timeout"] = "10s".into();
        // Long enough that only the restarted actor's own recovery can bring the pins back.
        c["cluster"]["pin_recover_interval"] = "1h".into();
        c["pin_tracker"]["stateless"]["concurrent_pins"] = 4.into();
    })
    .unwrap();
    peer.start().unwrap();
    for c in &cids {
        let (code, body) = http("POST", &peer.url(&format!("/pins/{c}"))).unwrap();
        assert_eq!(code, 200, "{body}");
    }
    let queued = |peer: &Peer| {
        http("GET", &peer.url("/pins?filter=queued,pinning")).map(|(_, b)| ndjson(&b).len()).unwrap_or(0)
    };
    assert!(wait_until(Duration::from_secs(20), || queued(&peer) == 200), "pins were not all queued");

    assert_eq!(restarts(&peer, actor), Some(0));
    let (code, body) = http("POST", &peer.url(&format!("/health/actors/{actor}/kill"))).unwrap();
    assert_eq!(code, 204, "{body}");
    assert!(wait_until(Duration::from_secs(20), || restarts(&peer, actor) == Some(1)), "{actor} not restarted");
    let series = format!("ipfscluster_actor_restarts_total{{actor=\"{actor}\"}}");
    assert_eq!(prometheus_value(&peer, &series), Some(1.0));

    if actor == "pin_tracker" {
        // The new instance rebuilt its queues from the state before any content exists.
        assert!(wait_until(Duration::from_secs(30), || queued(&peer) == 200), "pins were not re-queued after the restart");
    }
    // Now the content appears; every pin must end pinned.
    for b in blobs {
        provider.add(b).unwrap();
    }
    let missing = wait_all_status(&peer, &cids, "pinned", Duration::from_secs(180));
    assert!(missing.is_empty(), "{} of 200 not pinned, e.g. {:?}: {}", missing.len(), missing.first(), peer.log());
    let (_, body) = http("GET", &peer.url("/allocations")).unwrap();
    assert_eq!(ndjson(&body).len(), 200);
}

#[test]
fn kill_pin_tracker_with_200_queued_pins() {
    kill_with_queued_pins("pin_tracker");
}

#[test]
fn kill_ipfs_connector_with_200_queued_pins() {
    kill_with_queued_pins("ipfs_connector");
}

#[test]
fn chaos_route_is_absent_without_the_flag() {
    let peer = Peer::start_new(&[]).unwrap();
    let (code, _) = http("POST", &peer.url("/health/actors/pin_tracker/kill")).unwrap();
    assert_eq!(code, 404);
    assert_eq!(restarts(&peer, "pin_tracker"), Some(0));
}
