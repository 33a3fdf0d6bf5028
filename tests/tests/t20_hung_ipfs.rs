//! A pin nobody can provide must fail after pin_timeout without blocking anything else.

use std::time::{Duration, Instant};

use cluster_tests::*;

#[test]
fn t20_unavailable_cid_times_out_while_api_stays_fast() {
    let mut peer = Peer::init(&[]).unwrap();
    peer.edit_config(|c| c["ipfs_connector"]["embedded"]["pin_timeout"] = "4s".into()).unwrap();
    peer.start().unwrap();
    let missing = unavailable_cid();
    let (code, body) = http("POST", &peer.url(&format!("/pins/{missing}"))).unwrap();
    assert_eq!(code, 200, "{body}");
    let quick = identity_cid(b"answers while another pin hangs");
    assert_eq!(http_status("POST", &peer.url(&format!("/pins/{quick}"))), Some(200));

    assert!(wait_until(Duration::from_secs(10), || peer_status(&peer, &missing).as_deref() == Some("pinning")));
    // While the pin hangs in IPFS, every other request answers promptly.
    let mut samples = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(2) {
        for path in ["/id".to_string(), format!("/pins/{quick}"), "/allocations".to_string()] {
            let t = Instant::now();
            let (code, _) = http("GET", &peer.url(&path)).unwrap();
            samples.push(t.elapsed());
            assert!(code == 200, "GET {path} -> {code}");
        }
    }
    samples.sort();
    let median = samples[samples.len() / 2];
    let max = *samples.last().unwrap();
    assert!(median < Duration::from_millis(100), "median {median:?}");
    assert!(max < Duration::from_millis(1000), "a request blocked for {max:?}");
    assert_eq!(peer_status(&peer, &quick).as_deref(), Some("pinned"));

    assert!(
        wait_until(Duration::from_secs(30), || peer_status(&peer, &missing).as_deref() == Some("pin_error")),
        "pin did not fail: {:?}",
        peer_status(&peer, &missing)
    );
    let (_, body) = http("GET", &peer.url(&format!("/pins/{missing}"))).unwrap();
    assert!(body.contains("timed out") || body.contains("no progress"), "{body}");
}
