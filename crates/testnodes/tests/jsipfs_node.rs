//! A js-ipfs node starts on loopback, answers its API, and comes back with the same identity after
//! being killed with SIGKILL (which leaves a stale repo lock behind).

use std::time::Duration;

use cluster_testnodes::JsIpfs;

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

async fn api_id(node: &JsIpfs) -> serde_json::Value {
    reqwest::Client::new()
        .post(format!("{}/api/v0/id", node.api_url()))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("api answers")
        .json()
        .await
        .expect("id is json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_on_loopback_and_survives_kill_9() {
    init_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path().join("ipfs");
    let mut node = JsIpfs::start(&repo).await.expect("start js-ipfs");

    let id = api_id(&node).await;
    assert_eq!(id["ID"].as_str(), Some(node.peer_id()));
    assert!(node.api_multiaddr().starts_with("/ip4/127.0.0.1/tcp/"));
    let swarm = node.swarm_multiaddrs();
    assert!(!swarm.is_empty(), "no swarm address");
    for addr in &swarm {
        assert!(
            addr.starts_with("/ip4/127.0.0.1/tcp/")
                && addr.ends_with(&format!("/p2p/{}", node.peer_id())),
            "{addr}"
        );
    }
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo.join("config")).unwrap()).unwrap();
    assert_eq!(config["Bootstrap"], serde_json::json!([]));
    assert_eq!(
        config["Discovery"]["MDNS"]["Enabled"],
        serde_json::json!(false)
    );

    let peer = node.peer_id().to_string();
    let old_api = node.api_url();
    node.kill().await.expect("kill");
    assert!(!node.is_running());
    node.kill().await.expect("second kill is harmless");
    assert!(
        reqwest::Client::new()
            .post(format!("{old_api}/api/v0/id"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_err(),
        "killed node still answers"
    );

    let restarted = JsIpfs::start(&repo)
        .await
        .expect("restart on the same repo");
    assert_eq!(restarted.peer_id(), peer, "same repo, same identity");
    assert_eq!(api_id(&restarted).await["ID"].as_str(), Some(peer.as_str()));
    drop(restarted);
}
