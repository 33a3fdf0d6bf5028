//! Runs the connector conformance suite against the embedded node (in memory and on disk), plus
//! the tests only an embedded node can do: two nodes exchanging content over loopback, and a
//! restart on the same repo. All tests live in this one binary because each test binary links
//! rust-ipfs, which is slow.

use std::sync::Arc;
use std::time::Duration;

use cluster_ipfs::conformance::{self, pseudo_random_bytes, unique_seed};
use cluster_ipfs::{
    Cid, EmbeddedConfig, EmbeddedIpfs, IpfsConnector, IpfsError, IpfsPinStatus,
    PIN_INDEX_CLEAN_MARKER, PIN_INDEX_DIR, PinIndexStart, PinMode, start_embedded,
};
use futures::StreamExt;

/// Upper bound for a whole test; every step inside has its own smaller bound as well.
const TEST_TIMEOUT: Duration = Duration::from_secs(180);

/// Logs go to the test output when `RUST_LOG` is set (e.g. `RUST_LOG=cluster_ipfs=debug`).
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_in_memory() {
    init_tracing();
    let node = start_embedded(EmbeddedConfig::loopback())
        .await
        .expect("start in-memory node");
    let outcome = bounded("conformance suite", conformance::run_all(node.clone())).await;
    node.shutdown().await.expect("shutdown");
    if let Err(e) = outcome {
        panic!("in-memory node fails conformance: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_on_disk() {
    init_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    let node = start_embedded(EmbeddedConfig::loopback().with_repo(dir.path().join("ipfs")))
        .await
        .expect("start on-disk node");
    let outcome = bounded("conformance suite", conformance::run_all(node.clone())).await;
    node.shutdown().await.expect("shutdown");
    if let Err(e) = outcome {
        panic!("on-disk node fails conformance: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_node_without_listeners_works_locally() {
    let cfg = EmbeddedConfig {
        listen_addrs: Vec::new(),
        ..EmbeddedConfig::loopback()
    };
    let node = start_embedded(cfg).await.expect("start");
    let id = node.id().await.expect("id");
    assert!(id.addresses.is_empty(), "no listeners configured: {id:?}");
    let cid = node
        .add_bytes(bytes::Bytes::from_static(b"hello world\n"))
        .await
        .expect("add");
    assert_eq!(cid.to_string(), conformance::HELLO_WORLD_CID);
    node.shutdown().await.expect("shutdown");
    assert_eq!(node.id().await, Err(IpfsError::Closed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swarm_connect_rejects_bad_addresses() {
    let node = start_embedded(EmbeddedConfig::loopback())
        .await
        .expect("start");
    for bad in ["not a multiaddr", "/ip4/127.0.0.1/tcp/1"] {
        let result = node.swarm_connect(bad).await;
        assert!(
            matches!(result, Err(IpfsError::InvalidInput(_))),
            "{bad:?} should be invalid input, got {result:?}"
        );
    }
    let own = node.id().await.expect("id").addresses[0].clone();
    assert!(matches!(
        node.swarm_connect(&own).await,
        Err(IpfsError::InvalidInput(_))
    ));
    let ipns = node.resolve("/ipns/example.com").await;
    assert!(matches!(ipns, Err(IpfsError::Unsupported(_))), "{ipns:?}");
    node.shutdown().await.expect("shutdown");
}

/// Node B pins (recursively) 1 MiB that only node A has, reporting progress as blocks arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_pin_over_bitswap() {
    init_tracing();
    bounded("two-node pin", async {
        let a = start_embedded(EmbeddedConfig::loopback())
            .await
            .expect("start a");
        let b = start_embedded(EmbeddedConfig::loopback())
            .await
            .expect("start b");

        let data = pseudo_random_bytes(unique_seed(), 1024 * 1024);
        let root = a.add_bytes(data.clone()).await.expect("add on a");

        let a_id = a.id().await.expect("id a");
        let a_addr = a_id
            .addresses
            .iter()
            .find(|addr| addr.starts_with("/ip4/127.0.0.1/tcp/"))
            .expect("a listens on loopback")
            .clone();
        b.swarm_connect(&a_addr).await.expect("b connects to a");
        // connecting twice is fine
        b.swarm_connect(&a_addr).await.expect("second connect");
        let peers = b.swarm_peers().await.expect("peers");
        assert!(
            peers.contains(&a_id.id),
            "b's peers {peers:?} lack {}",
            a_id.id
        );

        assert_eq!(
            b.pin_ls_cid(&root).await.expect("status"),
            IpfsPinStatus::Unpinned
        );

        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        let pin = b.pin(&root, PinMode::Recursive, tx);
        tokio::pin!(pin);
        let mut updates = Vec::new();
        // the caller-side watchdog the cluster runs: fail only if progress stalls for 30 s
        let outcome = loop {
            tokio::select! {
                result = &mut pin => break result,
                update = tokio::time::timeout(Duration::from_secs(30), rx.recv()) => match update {
                    Ok(Some(n)) => updates.push(n),
                    Ok(None) => {}
                    Err(_) => panic!("no pin progress for 30 s (updates so far {updates:?})"),
                },
            }
        };
        outcome.expect("b pins a's content");
        while let Ok(n) = rx.try_recv() {
            updates.push(n);
        }
        assert!(!updates.is_empty(), "no progress reported");
        assert!(
            updates.windows(2).all(|w| w[0] < w[1]),
            "progress must grow: {updates:?}"
        );
        assert_eq!(
            updates.last().copied(),
            Some(5),
            "1 MiB = root + 4 leaves: {updates:?}"
        );

        assert_eq!(
            b.pin_ls_cid(&root).await.expect("status"),
            IpfsPinStatus::Recursive
        );
        // disconnect the source: the content must be local on b now
        a.shutdown().await.expect("stop a");
        let back = tokio::time::timeout(Duration::from_secs(30), b.cat(&root))
            .await
            .expect("cat is local and fast")
            .expect("cat on b");
        assert!(back == data, "content differs after transfer");
        b.shutdown().await.expect("stop b");
    })
    .await;
}

/// An on-disk node keeps its pins and its peer id across a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_disk_restart_keeps_pins_and_identity() {
    init_tracing();
    bounded("restart", async {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path().join("ipfs");
        let cfg = EmbeddedConfig::loopback().with_repo(&repo);

        let first = EmbeddedIpfs::start(cfg.clone()).await.expect("first start");
        let first_id = first.id().await.expect("id").id;
        assert_eq!(first_id, first.peer_id().to_string());
        let data = pseudo_random_bytes(unique_seed(), 700 * 1024);
        let root = first.add_bytes(data.clone()).await.expect("add");
        let (tx, _rx) = tokio::sync::mpsc::channel(16);
        first.pin(&root, PinMode::Recursive, tx).await.expect("pin");
        let direct = first
            .block_put(
                pseudo_random_bytes(unique_seed(), 100),
                cluster_ipfs::CODEC_RAW,
            )
            .await
            .expect("block put");
        let (tx, _rx) = tokio::sync::mpsc::channel(16);
        first
            .pin(&direct, PinMode::Direct, tx)
            .await
            .expect("direct pin");
        first.stop().await;
        assert_eq!(first.pin_ls_cid(&root).await, Err(IpfsError::Closed));
        drop(first);

        assert!(
            repo.join(cluster_ipfs::IDENTITY_FILE).is_file(),
            "identity file is written into the repo"
        );

        let second = EmbeddedIpfs::start(cfg.clone())
            .await
            .expect("second start");
        assert_eq!(
            second.id().await.expect("id").id,
            first_id,
            "peer id must survive a restart"
        );
        assert_eq!(
            second.pin_ls_cid(&root).await.expect("status"),
            IpfsPinStatus::Recursive
        );
        assert_eq!(
            second.pin_ls_cid(&direct).await.expect("status"),
            IpfsPinStatus::Direct
        );
        let listed: Vec<_> = second
            .pin_ls(true, true)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()
            .expect("pin ls");
        assert!(
            listed.contains(&(root, IpfsPinStatus::Recursive)),
            "{listed:?}"
        );
        assert!(
            listed.contains(&(direct, IpfsPinStatus::Direct)),
            "{listed:?}"
        );
        let back = second.cat(&root).await.expect("cat after restart");
        assert!(back == data, "content differs after restart");

        // dropping without stop still lets a new node open the repo (start waits for the lock)
        drop(second);
        let third: Arc<dyn IpfsConnector> = start_embedded(cfg).await.expect("third start");
        assert_eq!(third.id().await.expect("id").id, first_id);
        third.shutdown().await.expect("shutdown");
    })
    .await;
}

/// GC must not delete blocks a still-running pin has already gathered, and a cancelled pin stops
/// protecting them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_spares_blocks_of_a_pin_in_progress() {
    init_tracing();
    bounded("gc during pin", async {
        let node = start_embedded(EmbeddedConfig::loopback())
            .await
            .expect("start");
        let absent = cluster_ipfs::block_cid(
            &pseudo_random_bytes(unique_seed(), 64),
            cluster_ipfs::CODEC_RAW,
        )
        .expect("cid");
        let dir = conformance::dag_pb_directory(&[("missing", absent, 64)]);
        let root = node
            .block_put(dir, cluster_ipfs::CODEC_DAG_PB)
            .await
            .expect("put dir");

        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        let pinning = tokio::spawn({
            let node = node.clone();
            async move { node.pin(&root, PinMode::Recursive, tx).await }
        });
        // the root is local, so it is gathered first; its child never arrives
        let first = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("progress for the local root");
        assert_eq!(first, Some(1));

        let removed = node.repo_gc().await.expect("gc");
        assert!(
            !removed.iter().any(|c| c.hash() == root.hash()),
            "gc removed the root of a pin in progress"
        );

        pinning.abort();
        let joined = pinning.await;
        assert!(
            joined.is_err_and(|e| e.is_cancelled()),
            "pin should have been cancelled"
        );
        assert_eq!(
            node.pin_ls_cid(&root).await.expect("status"),
            IpfsPinStatus::Unpinned
        );
        let removed = node.repo_gc().await.expect("gc");
        assert!(
            removed.iter().any(|c| c.hash() == root.hash()),
            "after cancellation the root is unprotected and unpinned: {removed:?}"
        );
        node.shutdown().await.expect("shutdown");
    })
    .await;
}

async fn pin_now(node: &EmbeddedIpfs, cid: &Cid, mode: PinMode) {
    let (tx, _rx) = tokio::sync::mpsc::channel(16);
    node.pin(cid, mode, tx).await.expect("pin");
}

/// A recursively pinned 300 KiB file (root and first child), a directly pinned raw block, and
/// a recursive and a direct identity CID.
struct IndexFixture {
    rec: Cid,
    child: Cid,
    direct: Cid,
    id_rec: Cid,
    id_direct: Cid,
}

impl IndexFixture {
    async fn pin_on(node: &EmbeddedIpfs) -> Self {
        let rec = node
            .add_bytes(pseudo_random_bytes(unique_seed(), 300 * 1024))
            .await
            .expect("add");
        let root_block = node.block_get(&rec).await.expect("root block");
        let child = conformance::dag_pb_links(&root_block)
            .expect("dag-pb root")
            .first()
            .map(|(_, cid)| *cid)
            .expect("300 KiB has children");
        let direct = node
            .block_put(
                pseudo_random_bytes(unique_seed(), 100),
                cluster_ipfs::CODEC_RAW,
            )
            .await
            .expect("block put");
        let identity = |n: u64| {
            let digest = cid::multihash::Multihash::<64>::wrap(0x00, &n.to_be_bytes())
                .expect("8 bytes fit an identity digest");
            Cid::new_v1(cluster_ipfs::CODEC_RAW, digest)
        };
        let (id_rec, id_direct) = (identity(unique_seed()), identity(unique_seed()));
        pin_now(node, &rec, PinMode::Recursive).await;
        pin_now(node, &direct, PinMode::Direct).await;
        pin_now(node, &id_rec, PinMode::Recursive).await;
        pin_now(node, &id_direct, PinMode::Direct).await;
        IndexFixture {
            rec,
            child,
            direct,
            id_rec,
            id_direct,
        }
    }

    /// Checks the batched and the single lookups against the expected statuses.
    async fn assert_statuses(&self, node: &EmbeddedIpfs, when: &str) {
        let expected = [
            (self.rec, IpfsPinStatus::Recursive),
            (self.child, IpfsPinStatus::Indirect),
            (self.direct, IpfsPinStatus::Direct),
            (self.id_rec, IpfsPinStatus::Recursive),
            (self.id_direct, IpfsPinStatus::Direct),
        ];
        let cids: Vec<Cid> = expected.iter().map(|(cid, _)| *cid).collect();
        let batch = node.pin_ls_cids(&cids).await.expect("batched pin ls");
        let wanted: Vec<IpfsPinStatus> = expected.iter().map(|(_, status)| *status).collect();
        assert_eq!(batch, wanted, "{when}: batched statuses");
        for (cid, status) in expected {
            assert_eq!(
                node.pin_ls_cid(&cid).await.expect("pin ls"),
                status,
                "{when}: {cid}"
            );
        }
    }
}

/// After an orderly stop the pin index is marked clean, trusted at the next start (no rebuild),
/// and answers as before; the marker is gone while the node runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pin_index_survives_orderly_restart() {
    init_tracing();
    bounded("pin index restart", async {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path().join("ipfs");
        let marker = repo.join(PIN_INDEX_DIR).join(PIN_INDEX_CLEAN_MARKER);
        let cfg = EmbeddedConfig::loopback().with_repo(&repo);

        let first = EmbeddedIpfs::start(cfg.clone()).await.expect("first start");
        assert_eq!(
            first.pin_index_start(),
            PinIndexStart::Rebuilt { roots: 0 },
            "a new repo has no marker, so its (empty) index is built"
        );
        let pins = IndexFixture::pin_on(&first).await;
        pins.assert_statuses(&first, "before restart").await;
        assert!(!marker.exists(), "no clean marker while running");
        first.stop().await;
        assert!(marker.is_file(), "an orderly stop marks the index clean");
        drop(first);

        let second = EmbeddedIpfs::start(cfg.clone())
            .await
            .expect("second start");
        assert_eq!(second.pin_index_start(), PinIndexStart::Clean);
        assert!(!marker.exists(), "the marker is consumed at start");
        pins.assert_statuses(&second, "after orderly restart").await;

        // changes made after the restart are persisted by the next orderly stop too
        second.unpin(&pins.direct).await.expect("unpin");
        let later = second
            .block_put(
                pseudo_random_bytes(unique_seed(), 100),
                cluster_ipfs::CODEC_RAW,
            )
            .await
            .expect("block put");
        pin_now(&second, &later, PinMode::Recursive).await;
        second.stop().await;
        drop(second);

        let third = EmbeddedIpfs::start(cfg).await.expect("third start");
        assert_eq!(third.pin_index_start(), PinIndexStart::Clean);
        assert_eq!(
            third
                .pin_ls_cids(&[pins.direct, later, pins.rec])
                .await
                .expect("pin ls"),
            vec![
                IpfsPinStatus::Unpinned,
                IpfsPinStatus::Recursive,
                IpfsPinStatus::Recursive
            ]
        );
        third.stop().await;
    })
    .await;
}

/// Without the clean marker (a node dropped without stop, or the marker deleted) the index is
/// rebuilt from rust-ipfs's pin store at start, including pins the index never saw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pin_index_rebuilt_after_unclean_stop() {
    init_tracing();
    bounded("pin index rebuild", async {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path().join("ipfs");
        let marker = repo.join(PIN_INDEX_DIR).join(PIN_INDEX_CLEAN_MARKER);
        let cfg = EmbeddedConfig::loopback().with_repo(&repo);

        let first = EmbeddedIpfs::start(cfg.clone()).await.expect("first start");
        let pins = IndexFixture::pin_on(&first).await;
        // a pin added and one removed behind the connector's back, straight in rust-ipfs's store
        let behind = first
            .block_put(
                pseudo_random_bytes(unique_seed(), 100),
                cluster_ipfs::CODEC_RAW,
            )
            .await
            .expect("block put");
        let ipfs = first.ipfs().expect("rust-ipfs handle");
        ipfs.insert_pin(behind)
            .local()
            .await
            .expect("direct pin in the store");
        ipfs.remove_pin(pins.direct)
            .await
            .expect("direct unpin in the store");
        drop(ipfs);
        // the trusted index does not read pin files, so it cannot see them yet
        assert_eq!(
            first
                .pin_ls_cids(&[behind, pins.direct])
                .await
                .expect("pin ls"),
            vec![IpfsPinStatus::Unpinned, IpfsPinStatus::Direct]
        );

        // crash: dropped without stop, so no clean marker
        drop(first);
        assert!(!marker.exists());
        let second = EmbeddedIpfs::start(cfg.clone())
            .await
            .expect("second start");
        assert_eq!(
            second.pin_index_start(),
            PinIndexStart::Rebuilt { roots: 4 },
            "rec, id_rec, id_direct and the pin made behind the connector's back"
        );
        assert_rebuilt_statuses(&second, &pins, behind).await;

        // an orderly stop whose marker is then lost also leads to a rebuild
        second.stop().await;
        drop(second);
        std::fs::remove_file(&marker).expect("remove marker");
        let third = EmbeddedIpfs::start(cfg).await.expect("third start");
        assert_eq!(third.pin_index_start(), PinIndexStart::Rebuilt { roots: 4 });
        assert_rebuilt_statuses(&third, &pins, behind).await;
        third.stop().await;
    })
    .await;
}

/// What the rebuilt index must answer: the fixture, minus the direct pin removed behind the
/// connector's back, plus the one added there.
async fn assert_rebuilt_statuses(node: &EmbeddedIpfs, pins: &IndexFixture, behind: Cid) {
    let cids = [
        pins.rec,
        pins.child,
        pins.direct,
        behind,
        pins.id_rec,
        pins.id_direct,
    ];
    assert_eq!(
        node.pin_ls_cids(&cids).await.expect("pin ls"),
        vec![
            IpfsPinStatus::Recursive,
            IpfsPinStatus::Indirect,
            IpfsPinStatus::Unpinned,
            IpfsPinStatus::Direct,
            IpfsPinStatus::Recursive,
            IpfsPinStatus::Direct,
        ]
    );
    for (cid, status) in cids
        .iter()
        .zip(node.pin_ls_cids(&cids).await.expect("pin ls"))
    {
        assert_eq!(node.pin_ls_cid(cid).await.expect("pin ls"), status, "{cid}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_node_indexes_pins_in_memory() {
    let node = EmbeddedIpfs::start(EmbeddedConfig::loopback())
        .await
        .expect("start");
    assert_eq!(node.pin_index_start(), PinIndexStart::Memory);
    let pins = IndexFixture::pin_on(&node).await;
    pins.assert_statuses(&node, "in memory").await;
    node.stop().await;
}

/// A depth-limited pin (a shard's) fetches and protects only the levels it reaches: here the
/// grandchildren exist nowhere, so a recursive pin would wait forever, while a depth-1 pin
/// completes, reports recursive, and unpins cleanly (in memory too, where the store needs the
/// exact references back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn depth_limited_pin_stops_at_its_depth() {
    init_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    for config in [EmbeddedConfig::loopback(), EmbeddedConfig::loopback().with_repo(dir.path().join("ipfs"))] {
        let node = start_embedded(config).await.expect("start node");
        let absent = conformance::absent_cid();
        let child_data = conformance::dag_pb_directory(&[("gone", absent, 10)]);
        let child = node.block_put(child_data, cluster_ipfs::CODEC_DAG_PB).await.expect("put child");
        let other = node.add_bytes(pseudo_random_bytes(unique_seed(), 1000)).await.expect("add");
        let top_data = conformance::dag_pb_directory(&[("a", child, 100), ("b", other, 1000)]);
        let top = node.block_put(top_data, cluster_ipfs::CODEC_DAG_PB).await.expect("put top");

        let (tx, _rx) = tokio::sync::mpsc::channel(16);
        bounded("depth-1 pin", node.pin_depth(&top, 1, tx)).await.expect("depth-limited pin");
        let statuses = node.pin_ls_cids(&[top, child, other]).await.expect("statuses");
        assert_eq!(statuses, [IpfsPinStatus::Recursive, IpfsPinStatus::Indirect, IpfsPinStatus::Indirect]);

        let (tx, _rx) = tokio::sync::mpsc::channel(16);
        let recursive = tokio::time::timeout(Duration::from_secs(2), node.pin(&child, PinMode::Recursive, tx)).await;
        assert!(recursive.is_err(), "a recursive pin of the child found a block that exists nowhere");

        bounded("unpin", node.unpin(&top)).await.expect("unpin");
        let statuses = node.pin_ls_cids(&[top, child, other]).await.expect("statuses");
        assert_eq!(statuses, [IpfsPinStatus::Unpinned; 3]);
        node.shutdown().await.expect("shutdown");
    }
}

/// Blocks stored by the batched on-disk writer (a Kubo-default import: CIDv0 dag-pb leaves and
/// nodes) are the blocks rust-ipfs reads: a recursive pin walks them from the store, `cat`
/// reassembles the file, storing them again changes nothing, and they are still there after a
/// restart. A batch holding a block that does not match its CID is refused as a whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_block_writes_are_rust_ipfs_blocks() {
    init_tracing();
    bounded("batched writes", async {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = EmbeddedConfig::loopback().with_repo(dir.path().join("ipfs"));
        // 3 leaves of 256 KiB and a root node above them.
        let data = pseudo_random_bytes(unique_seed(), 700 * 1024);
        let mut blocks: Vec<cluster_unixfs::Block> = Vec::new();
        let root = cluster_unixfs::import_bytes(&data, &cluster_unixfs::AddOptions::default(), &mut blocks)
            .expect("import")
            .cid;
        assert_eq!(root.version(), cid::Version::V0);
        let batch: Vec<(Cid, bytes::Bytes)> = blocks.into_iter().map(|b| (b.cid, b.data)).collect();

        let node = EmbeddedIpfs::start(cfg.clone()).await.expect("start");
        node.put_own_blocks(batch.clone()).await.expect("store own blocks");
        node.put_blocks(batch.clone()).await.expect("store the same blocks again");
        let (tx, _rx) = tokio::sync::mpsc::channel(16);
        node.pin(&root, PinMode::Recursive, tx).await.expect("pin from local blocks");
        assert_eq!(node.cat(&root).await.expect("cat"), data);
        assert_indirect(&node, &batch[..batch.len() - 1]).await;

        // Raw 1 KiB leaves under two levels of nodes of up to 174 links (about 8 KiB each, so
        // written partly past the page cache and partly through it): the walk must find every
        // leaf through the nodes, and knows the raw leaves have no links without reading them.
        let deep_data = pseudo_random_bytes(unique_seed(), 200 * 1024);
        let deep_options = cluster_unixfs::AddOptions {
            chunker: "size-1024".parse().expect("chunker"),
            raw_leaves: Some(true),
            ..Default::default()
        };
        let mut deep_blocks: Vec<cluster_unixfs::Block> = Vec::new();
        let deep_root = cluster_unixfs::import_bytes(&deep_data, &deep_options, &mut deep_blocks).expect("import").cid;
        let deep: Vec<(Cid, bytes::Bytes)> = deep_blocks.into_iter().map(|b| (b.cid, b.data)).collect();
        assert!(deep.len() > 200 + 2, "two levels of nodes above the leaves");
        node.put_own_blocks(deep.clone()).await.expect("store the deep dag");
        let (tx, _rx) = tokio::sync::mpsc::channel(16);
        node.pin(&deep_root, PinMode::Recursive, tx).await.expect("pin the deep dag");
        assert_eq!(node.cat(&deep_root).await.expect("cat"), deep_data);
        assert_indirect(&node, &deep[..deep.len() - 1]).await;

        // a block as peers send it, at an address of no particular alignment
        let mut padded = vec![0u8];
        padded.extend_from_slice(&pseudo_random_bytes(unique_seed(), 3 * 4096 + 5));
        let unaligned = bytes::Bytes::from(padded).slice(1..);
        let unaligned_cid = cluster_ipfs::block_cid(&unaligned, cluster_ipfs::CODEC_RAW).expect("cid");
        node.put_blocks(vec![(unaligned_cid, unaligned.clone())]).await.expect("store an unaligned block");
        assert_eq!(node.block_get(&unaligned_cid).await.expect("block get"), unaligned);
        let wrong = (batch[0].0, bytes::Bytes::from_static(b"other bytes"));
        let fresh = pseudo_random_bytes(unique_seed(), 1000);
        let fresh_cid = cluster_ipfs::block_cid(&fresh, cluster_ipfs::CODEC_RAW).expect("cid");
        match node.put_blocks(vec![(fresh_cid, fresh.clone()), wrong]).await {
            Err(IpfsError::InvalidInput(_)) => {}
            other => panic!("a mismatching block: expected invalid input, got {other:?}"),
        }
        node.stop().await;

        let node = EmbeddedIpfs::start(cfg).await.expect("restart");
        assert_eq!(node.pin_ls_cid(&root).await.expect("pin ls"), IpfsPinStatus::Recursive);
        for (cid, bytes) in &batch {
            assert_eq!(&node.block_get(cid).await.expect("block get after restart"), bytes);
        }
        assert!(
            matches!(tokio::time::timeout(Duration::from_secs(1), node.block_get(&fresh_cid)).await, Err(_) | Ok(Err(_))),
            "the refused batch stored nothing"
        );
        node.stop().await;
    })
    .await;
}

/// Every block but a pin's root is held by it indirectly: the pin's walk reached it.
async fn assert_indirect(node: &EmbeddedIpfs, below_root: &[(Cid, bytes::Bytes)]) {
    for (cid, _) in below_root {
        assert_eq!(
            node.pin_ls_cid(cid).await.expect("pin ls"),
            IpfsPinStatus::Indirect,
            "block {cid} below the root"
        );
    }
}
