//! The connector against real js-ipfs 0.66.1 daemons (Kubo's RPC API, another implementation):
//! the whole conformance suite, the Kubo-only features' fallbacks, and two nodes exchanging
//! content over bitswap after `connect_swarms`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cluster_ipfs::conformance::{self, pseudo_random_bytes, unique_seed};
use cluster_ipfs::{CODEC_RAW, IpfsConnector, IpfsError, IpfsPinStatus, PinMode};
use cluster_ipfs_http::{KuboConnector, KuboSettings, connect_swarms};
use cluster_testnodes::JsIpfs;
use tokio::sync::mpsc;

/// Upper bound for a whole test; every step has its own smaller bound too.
const TEST_TIMEOUT: Duration = Duration::from_secs(240);

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

async fn bounded<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(TEST_TIMEOUT, fut).await {
        Ok(value) => value,
        Err(_) => panic!("{what} did not finish within {TEST_TIMEOUT:?}"),
    }
}

fn connector(node: &JsIpfs) -> KuboConnector {
    let mut settings = KuboSettings::new(node.api_multiaddr());
    settings.request_timeout = Duration::from_secs(30);
    settings.pin_timeout = Duration::from_secs(30);
    KuboConnector::new(settings).expect("connector")
}

fn pin_progress() -> mpsc::Sender<u64> {
    mpsc::channel(64).0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jsipfs_passes_conformance_and_kubo_fallbacks() {
    init_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    let node = JsIpfs::start(dir.path().join("ipfs"))
        .await
        .expect("start js-ipfs");
    let conn = connector(&node);
    let shared: Arc<dyn IpfsConnector> = Arc::new(conn.clone());

    if let Err(e) = bounded("conformance suite", conformance::run_all(shared.clone())).await {
        panic!(
            "js-ipfs through the kubo connector fails conformance: {e} (log: {})",
            node.log_path().display()
        );
    }

    bounded("kubo-only features", async {
        // js-ipfs has no pin/update: the first update learns that and pins from scratch
        let v1 = conn
            .add_bytes(pseudo_random_bytes(unique_seed(), 300 * 1024))
            .await
            .expect("add v1");
        let v2 = conn
            .add_bytes(pseudo_random_bytes(unique_seed(), 300 * 1024))
            .await
            .expect("add v2");
        let v3 = conn
            .add_bytes(pseudo_random_bytes(unique_seed(), 1000))
            .await
            .expect("add v3");
        conn.pin(&v1, PinMode::Recursive, pin_progress())
            .await
            .expect("pin v1");
        let (tx, mut rx) = mpsc::channel(64);
        shared
            .pin_update(&v1, &v2, tx)
            .await
            .expect("pin update falls back to pin add");
        assert!(
            rx.try_recv().is_ok_and(|n| n >= 1),
            "pin update reported no progress"
        );
        assert_eq!(conn.pin_ls_cid(&v2).await, Ok(IpfsPinStatus::Recursive));
        assert_eq!(
            conn.pin_ls_cid(&v1).await,
            Ok(IpfsPinStatus::Recursive),
            "the old pin stays"
        );
        shared
            .pin_update(&v2, &v3, pin_progress())
            .await
            .expect("second pin update");
        assert_eq!(conn.pin_ls_cid(&v3).await, Ok(IpfsPinStatus::Recursive));
        for cid in [v1, v2, v3] {
            conn.unpin(&cid).await.expect("unpin");
        }

        // several blocks in one request; js-ipfs keeps one per request, the rest go one by one
        let blocks: Vec<Bytes> = (0..4)
            .map(|_| pseudo_random_bytes(unique_seed(), 700))
            .collect();
        let cids = conn
            .block_put_many(&blocks, CODEC_RAW)
            .await
            .expect("multi-block put");
        assert_eq!(cids.len(), blocks.len());
        for (cid, block) in cids.iter().zip(&blocks) {
            assert_eq!(*cid, cluster_ipfs::block_cid(block, CODEC_RAW).unwrap());
            assert_eq!(conn.block_get(cid).await.expect("block get"), *block);
        }

        // batches larger than one pin/ls request, mixing pinned and unpinned
        let mut many = Vec::new();
        for i in 0..130 {
            let cid = conn
                .block_put(pseudo_random_bytes(unique_seed(), 64), CODEC_RAW)
                .await
                .expect("put");
            if i % 3 == 0 {
                conn.pin(&cid, PinMode::Direct, pin_progress())
                    .await
                    .expect("pin direct");
            }
            many.push(cid);
        }
        let statuses = conn.pin_ls_cids(&many).await.expect("batched pin ls");
        for (i, status) in statuses.iter().enumerate() {
            let expected = if i % 3 == 0 {
                IpfsPinStatus::Direct
            } else {
                IpfsPinStatus::Unpinned
            };
            assert_eq!(*status, expected, "cid #{i}");
        }

        // a node that refuses unpins by configuration
        let mut settings = conn.settings().clone();
        settings.unpin_disable = true;
        let no_unpin = KuboConnector::new(settings).expect("connector");
        assert!(matches!(
            no_unpin.unpin(&many[0]).await,
            Err(IpfsError::Unsupported(_))
        ));
        assert_eq!(conn.pin_ls_cid(&many[0]).await, Ok(IpfsPinStatus::Direct));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_jsipfs_nodes_share_content_after_connect_swarms() {
    init_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = tokio::join!(
        JsIpfs::start(dir.path().join("a")),
        JsIpfs::start(dir.path().join("b"))
    );
    let (a, b) = (a.expect("start node a"), b.expect("start node b"));
    let (conn_a, conn_b) = (connector(&a), connector(&b));

    bounded("two-node exchange", async {
        let data = pseudo_random_bytes(unique_seed(), 1024 * 1024);
        let root = conn_a.add_bytes(data.clone()).await.expect("add on a");
        assert_eq!(conn_b.pin_ls_cid(&root).await, Ok(IpfsPinStatus::Unpinned));

        // b is given everybody's addresses, its own included, as the cluster does
        let mut addrs = a.swarm_multiaddrs();
        addrs.extend(b.swarm_multiaddrs());
        addrs.push("/ip4/127.0.0.1/tcp/1".to_string());
        let outcomes = connect_swarms(&conn_b, addrs).await;
        assert_eq!(
            outcomes.len(),
            a.swarm_multiaddrs().len() + 1,
            "own addresses are skipped: {outcomes:?}"
        );
        assert!(
            outcomes
                .iter()
                .filter(|o| o.addr.contains(a.peer_id()))
                .all(|o| o.result.is_ok()),
            "{outcomes:?}"
        );
        assert!(
            matches!(
                outcomes
                    .iter()
                    .find(|o| o.addr.ends_with("/tcp/1"))
                    .map(|o| &o.result),
                Some(Err(IpfsError::InvalidInput(_)))
            ),
            "an address without a peer id is invalid input: {outcomes:?}"
        );
        let peers = conn_b.swarm_peers().await.expect("swarm peers");
        assert!(
            peers.iter().any(|p| p == a.peer_id()),
            "b is not connected to a: {peers:?}"
        );

        let (tx, mut rx) = mpsc::channel(1024);
        conn_b
            .pin(&root, PinMode::Recursive, tx)
            .await
            .expect("b pins what a holds");
        let mut last = 0;
        while let Ok(n) = rx.try_recv() {
            last = n;
        }
        assert!(last >= 1, "no progress reported");
        assert_eq!(conn_b.pin_ls_cid(&root).await, Ok(IpfsPinStatus::Recursive));
        assert_eq!(conn_b.cat(&root).await.expect("cat on b"), data);
        let stat = conn_b.repo_stat().await.expect("repo stat on b");
        assert!(
            stat.repo_size >= 1024 * 1024,
            "b's repo holds {} bytes",
            stat.repo_size
        );
    })
    .await;
}
