//! Sharded `add` on 4 peers (§11): a 200 MiB file cut into 50 MiB shards, one per peer, with the
//! cluster-DAG and meta pins the original defines; the content reads back byte-identical over
//! bitswap from the peers, and `pin rm` of the root removes every part.

use std::time::Duration;

use cluster_tests::multi::TestCluster;
use cluster_tests::{http, kubo_default_cid, ndjson, wait_until, write_random_file, Provider};
use serde_json::Value;

fn pins_of_type(cluster: &TestCluster, i: usize, filter: &str) -> Vec<Value> {
    let (status, body) = http("GET", &cluster.peers[i].url(&format!("/allocations?filter={filter}"))).expect("allocations");
    match status {
        200 => ndjson(&body),
        204 => Vec::new(),
        _ => panic!("GET /allocations?filter={filter}: {status} {body}"),
    }
}

fn peer_map(cluster: &TestCluster, i: usize, cid: &str) -> serde_json::Map<String, Value> {
    http("GET", &cluster.peers[i].url(&format!("/pins/{cid}")))
        .filter(|(s, _)| *s == 200)
        .and_then(|(_, b)| serde_json::from_str::<Value>(&b).ok())
        .and_then(|g| g["peer_map"].as_object().cloned())
        .unwrap_or_default()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

#[test]
fn sharded_add_spreads_shards_reads_back_and_unpins_everything() {
    let mut cluster = TestCluster::start(4, |_, cfg| {
        cfg["cluster"]["replication_factor_min"] = 1.into();
        cfg["cluster"]["replication_factor_max"] = 1.into();
    })
    .expect("cluster");
    cluster.wait_peerset(&[0, 1, 2, 3], 4, Duration::from_secs(60)).expect("4 peers");
    cluster.wait_freespace_metrics(0, 4, Duration::from_secs(30)).expect("allocation metrics");

    // 800 chunks of 256 KiB: exactly four shards' worth of file bytes, the DAG's inner nodes
    // riding along (the original, counting whole blocks, made a small fifth shard).
    let size: u64 = 200 << 20;
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("big.bin");
    write_random_file(&file, size, 0x5aa_d00d);
    let expected = kubo_default_cid(&file);

    let out = cluster.peers[0].ctl(&["add", "--shard", "--shard-size", "50MiB", "--name", "big", file.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "add failed: {} {stdout}", String::from_utf8_lossy(&out.stderr));
    let last = stdout.lines().last().unwrap_or_default().to_string();
    assert_eq!(last, format!("added {expected} big.bin"), "the root comes last and is Kubo's CID: {stdout}");
    assert_eq!(stdout.matches(" shard-").count(), 4, "one line per shard: {stdout}");
    let root = expected;

    // Four shard pins chained by reference, each on its own peer, each pinned to depth 1.
    let shards = pins_of_type(&cluster, 2, "shard-pin");
    assert_eq!(shards.len(), 4, "{shards:?}");
    let mut by_name: Vec<&Value> = shards.iter().collect();
    by_name.sort_by_key(|p| p["name"].as_str().unwrap_or_default().to_string());
    let mut holders = Vec::new();
    let mut total = 0;
    for (n, shard) in by_name.iter().enumerate() {
        assert_eq!(shard["name"], format!("big-shard-{n}"));
        assert_eq!(shard["max_depth"], 1);
        assert_eq!(shard["type"], "shard-pin");
        let allocations = strings(&shard["allocations"]);
        assert_eq!(allocations.len(), 1, "{shard}");
        holders.push(allocations[0].clone());
        let reference = if n == 0 { Value::Null } else { by_name[n - 1]["cid"].clone() };
        assert_eq!(shard["reference"], reference, "shard {n} references the previous one");
        let shard_size = shard["shard_size"].as_u64().expect("shard_size");
        // 50 MiB of chunks plus their protobuf framing and the inner nodes among them.
        assert!(shard_size > 50 << 20 && shard_size < (50 << 20) + (64 << 10), "shard {n} holds {shard_size} bytes");
        total += shard_size;
    }
    holders.sort();
    holders.dedup();
    assert_eq!(holders.len(), 4, "shards spread over every peer: {by_name:?}");
    assert!(total > size, "the shards hold every block: {total}");

    let dags = pins_of_type(&cluster, 1, "clusterdag-pin");
    assert_eq!(dags.len(), 1, "{dags:?}");
    let dag = &dags[0];
    assert_eq!(dag["name"], "big-clusterDAG");
    assert_eq!((dag["max_depth"].as_i64(), dag["replication_factor_min"].as_i64()), (Some(0), Some(-1)), "{dag}");
    assert_eq!(dag["reference"], root.as_str());
    let metas = pins_of_type(&cluster, 3, "meta-pin");
    assert_eq!(metas.len(), 1, "{metas:?}");
    assert_eq!(metas[0]["cid"], root.as_str());
    assert_eq!(metas[0]["reference"], dag["cid"]);
    assert_eq!(metas[0]["name"], "big");

    // Each shard pinned on its peer and only there; the cluster DAG everywhere; the root sharded.
    let dag_cid = dag["cid"].as_str().unwrap().to_string();
    let settled = wait_until(Duration::from_secs(120), || {
        let shards_ok = by_name.iter().all(|s| {
            let holder = strings(&s["allocations"])[0].clone();
            let map = peer_map(&cluster, 0, s["cid"].as_str().unwrap());
            map.len() == 4
                && map.iter().all(|(p, i)| i["status"] == if *p == holder { "pinned" } else { "remote" })
        });
        let dag_map = peer_map(&cluster, 0, &dag_cid);
        let root_map = peer_map(&cluster, 0, &root);
        shards_ok
            && dag_map.len() == 4
            && dag_map.values().all(|i| i["status"] == "pinned")
            && root_map.len() == 4
            && root_map.values().all(|i| i["status"] == "sharded")
    });
    assert!(settled, "shards {:?}, dag {:?}, root {:?}",
        by_name.iter().map(|s| peer_map(&cluster, 0, s["cid"].as_str().unwrap())).collect::<Vec<_>>(),
        peer_map(&cluster, 0, &dag_cid), peer_map(&cluster, 0, &root));

    // A fresh node reads the file back from the four peers' IPFS nodes.
    let reader = Provider::start().expect("reader node");
    for p in &cluster.peers {
        let (_, body) = http("GET", &p.url("/id")).expect("id");
        let id: Value = serde_json::from_str(&body).expect("id json");
        let addr = strings(&id["ipfs"]["addresses"]).into_iter().find(|a| a.contains("/127.0.0.1/")).expect("loopback ipfs addr");
        reader.connect(&addr).expect("connect to a peer's ipfs");
    }
    let data = reader.cat(&root, Duration::from_secs(300)).expect("read back");
    let original = std::fs::read(&file).expect("read file");
    assert!(data.len() == original.len() && data[..] == original[..], "content differs ({} bytes read)", data.len());
    reader.shutdown().expect("reader stop");

    // Shard and cluster-DAG pins cannot be removed on their own; the root takes them all.
    let refused = cluster.peers[1].ctl(&["pin", "rm", by_name[0]["cid"].as_str().unwrap()]);
    assert!(!refused.status.success(), "a shard pin was removed on its own");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("content root"), "{}", String::from_utf8_lossy(&refused.stderr));
    let rm = cluster.peers[1].ctl(&["pin", "rm", &root]);
    assert!(rm.status.success(), "pin rm: {}", String::from_utf8_lossy(&rm.stderr));
    let gone = wait_until(Duration::from_secs(60), || (0..4).all(|i| pins_of_type(&cluster, i, "all").is_empty()));
    assert!(gone, "left in the pinset: {:?}", pins_of_type(&cluster, 0, "all"));
    let unpinned = wait_until(Duration::from_secs(60), || {
        by_name.iter().all(|s| {
            let holder = strings(&s["allocations"])[0].clone();
            peer_map(&cluster, 0, s["cid"].as_str().unwrap()).get(&holder).is_some_and(|i| i["status"] == "unpinned")
        })
    });
    assert!(unpinned, "shards still pinned in IPFS");
    for p in &mut cluster.peers {
        p.stop();
    }
}
