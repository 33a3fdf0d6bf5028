//! Listeners and connection timeouts of the server.

mod common;

use std::sync::Arc;
use std::time::Duration;

use cluster_pinsvc::{PinSvcConfig, PinningService, RequestIndex, ServeError, serve_pinsvc};
use common::FakeCluster;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn service(dir: &std::path::Path) -> Arc<PinningService> {
    let index = Arc::new(RequestIndex::open(dir).unwrap());
    PinningService::new(Arc::new(FakeCluster::default()), index)
}

/// Reads until the peer closes or `wait` passes; true when it closed.
async fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

/// Sends one keep-alive request and reads its whole (small) response.
async fn health(stream: &mut TcpStream) -> String {
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("response in time")
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test]
async fn serves_every_listen_address_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = PinSvcConfig {
        listen: vec![
            "127.0.0.1:0".parse().unwrap(),
            "127.0.0.1:0".parse().unwrap(),
        ],
        ..Default::default()
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (addrs, handle) = serve_pinsvc(cfg, service(dir.path()), async {
        let _ = rx.await;
    })
    .await
    .unwrap();
    assert_eq!(addrs.len(), 2);
    assert_ne!(addrs[0], addrs[1]);
    for a in &addrs {
        let resp = reqwest::get(format!("http://{a}/pins")).await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body, serde_json::json!({"count": 0, "results": []}));
    }
    tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(15), handle)
        .await
        .unwrap()
        .unwrap();
    for a in &addrs {
        assert!(
            TcpStream::connect(a).await.is_err(),
            "{a} still accepts after shutdown"
        );
    }
}

#[tokio::test]
async fn start_errors() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path());
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let cfg = PinSvcConfig {
        listen: vec![taken.local_addr().unwrap()],
        ..Default::default()
    };
    let err = serve_pinsvc(cfg, Arc::clone(&svc), std::future::pending())
        .await
        .unwrap_err();
    assert!(matches!(err, ServeError::Bind { .. }), "{err}");

    let cfg = PinSvcConfig {
        listen: vec![],
        ..Default::default()
    };
    let err = serve_pinsvc(cfg, Arc::clone(&svc), std::future::pending())
        .await
        .unwrap_err();
    assert!(matches!(err, ServeError::NoListenAddress));

    let cfg = PinSvcConfig {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        headers: [("bad header".to_string(), "v".to_string())].into(),
        ..Default::default()
    };
    let err = serve_pinsvc(cfg, svc, std::future::pending())
        .await
        .unwrap_err();
    assert!(matches!(err, ServeError::InvalidHeader { .. }));

    let cfg = PinSvcConfig::default()
        .with_listen_multiaddrs(&["/ip4/127.0.0.1/tcp/9097", "/dns4/localhost/tcp/1"])
        .unwrap();
    assert_eq!(
        cfg.listen,
        vec![
            "127.0.0.1:9097".parse().unwrap(),
            "127.0.0.1:1".parse().unwrap()
        ]
    );
    assert!(
        PinSvcConfig::default()
            .with_listen_multiaddrs(&["/unix/tmp/sock"])
            .is_err()
    );
}

#[tokio::test]
async fn header_and_idle_timeouts_are_distinct() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = PinSvcConfig {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        read_header_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(1500),
        ..Default::default()
    };
    let (addrs, _handle) = serve_pinsvc(cfg, service(dir.path()), std::future::pending())
        .await
        .unwrap();
    let addr = addrs[0];

    // A started head that never completes is cut after the header timeout.
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /pins HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    assert!(
        closed_within(&mut slow, Duration::from_secs(3)).await,
        "half-sent head not cut"
    );

    // An idle keep-alive connection outlives the header timeout...
    let mut idle = TcpStream::connect(addr).await.unwrap();
    assert!(health(&mut idle).await.starts_with("HTTP/1.1 204"));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        health(&mut idle).await.starts_with("HTTP/1.1 204"),
        "idle connection cut early"
    );
    // ...and is closed once the idle timeout passes.
    assert!(
        closed_within(&mut idle, Duration::from_secs(4)).await,
        "idle connection kept open"
    );
}
