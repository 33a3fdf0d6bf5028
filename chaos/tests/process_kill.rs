//! kill -9 of the daemon during ingestion loses no acknowledged pin.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cluster_tests::*;

#[test]
fn kill9_during_ingestion_keeps_every_acknowledged_pin() {
    let mut peer = Peer::start_new(&[]).unwrap();
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (acked, stop, base) = (Arc::clone(&acked), Arc::clone(&stop), peer.url(""));
        writers.push(std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let cid = identity_cid(format!("writer {w} pin {i}").as_bytes());
                i += 1;
                match http("POST", &format!("{base}/pins/{cid}")) {
                    Some((200, _)) => acked.lock().unwrap().push(cid),
                    _ => break, // the daemon died mid-request: not acknowledged
                }
            }
        }));
    }
    assert!(wait_until(Duration::from_secs(30), || acked.lock().unwrap().len() >= 300));
    peer.kill9();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 300);

    peer.start().unwrap();
    let (code, body) = http("GET", &peer.url("/allocations")).unwrap();
    assert_eq!(code, 200);
    let listed: std::collections::HashSet<String> =
        ndjson(&body).iter().map(|p| p["cid"].as_str().unwrap().to_string()).collect();
    let lost: Vec<&String> = acked.iter().filter(|c| !listed.contains(*c)).collect();
    assert!(lost.is_empty(), "{} acknowledged pins lost, e.g. {:?}", lost.len(), lost.first());
    let pending = wait_all_status(&peer, &acked, "pinned", Duration::from_secs(120));
    assert!(pending.is_empty(), "{} pins not pinned after restart", pending.len());
}
