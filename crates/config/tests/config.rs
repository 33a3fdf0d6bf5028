//! Behaviour of the configuration folder as the `ipfs-cluster-service` binary sees it.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use cluster_config::*;
use serde_json::{json, Value};

fn no_env() -> HashMap<String, String> {
    HashMap::new()
}

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn get<'v>(v: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(v, |v, k| v.get(k))
}

/// Writes `service` as service.json next to a fresh identity.
fn folder_with(service: &Value) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("service.json"), service.to_string()).unwrap();
    Identity::generate().save(&dir.path().join("identity.json")).unwrap();
    dir
}

fn error_text(r: Result<impl std::fmt::Debug, ConfigError>) -> String {
    r.expect_err("expected an error").to_string()
}

fn new_peer_id() -> String {
    Identity::generate().peer_id().to_base58()
}

#[test]
fn init_then_load_roundtrips_to_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let report = init_folder(dir.path(), &InitOptions::default()).unwrap();
    assert!(report.identity_created);

    let loaded = load_folder(dir.path(), &no_env()).unwrap();
    assert_eq!(loaded.config, report.config);
    assert_eq!(loaded.identity.peer_id(), report.peer_id);
    assert!(loaded.peerstore.is_empty());

    // Apart from the generated secret, what init writes is exactly the defaults.
    let secret = loaded.config.cluster.secret.clone();
    assert_eq!(secret.len(), 64);
    assert!(hex::decode(&secret).is_ok());
    let mut expected = ServiceConfig::default();
    expected.cluster.secret = secret;
    assert_eq!(loaded.config, expected);
    assert_eq!(loaded.config.cluster.peername, cluster_config::cluster::default_peername());

    // Both files hold secrets, so only the owner may read them.
    #[cfg(unix)]
    for file in ["service.json", "identity.json"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(file)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
}

#[test]
fn written_file_has_every_key_with_go_durations() {
    let dir = tempfile::tempdir().unwrap();
    init_folder(dir.path(), &InitOptions::default()).unwrap();
    let text = std::fs::read_to_string(dir.path().join("service.json")).unwrap();
    assert!(text.starts_with("{\n  \"cluster\": {\n    \"peername\""), "2-space indent, cluster first");
    let v: Value = serde_json::from_str(&text).unwrap();

    let top: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    let mut sorted_expected = vec![
        "cluster", "consensus", "api", "ipfs_connector", "pin_tracker", "monitor", "allocator", "informer",
        "observations", "datastore",
    ];
    let mut top_sorted = top.clone();
    top_sorted.sort();
    sorted_expected.sort();
    assert_eq!(top_sorted, sorted_expected);

    let keys = [
        "cluster.peername", "cluster.secret", "cluster.leave_on_shutdown", "cluster.listen_multiaddress",
        "cluster.announce_multiaddress", "cluster.no_announce_multiaddress", "cluster.enable_relay_hop",
        "cluster.connection_manager.high_water", "cluster.connection_manager.low_water",
        "cluster.connection_manager.grace_period", "cluster.resource_manager.enabled",
        "cluster.resource_manager.memory_limit_bytes", "cluster.resource_manager.file_descriptors_limit",
        "cluster.pubsub.seen_messages_ttl", "cluster.pubsub.heartbeat_interval", "cluster.pubsub.d_factor",
        "cluster.pubsub.history_gossip", "cluster.pubsub.history_length", "cluster.pubsub.flood_publish",
        "cluster.dial_peer_timeout", "cluster.state_sync_interval", "cluster.pin_recover_interval",
        "cluster.replication_factor_min", "cluster.replication_factor_max", "cluster.monitor_ping_interval",
        "cluster.peer_watch_interval", "cluster.mdns_interval", "cluster.pin_only_on_trusted_peers",
        "cluster.pin_only_on_untrusted_peers", "cluster.disable_repinning", "cluster.peer_addresses",
        "consensus.crdt.cluster_name", "consensus.crdt.trusted_peers", "consensus.crdt.batching.max_batch_size",
        "consensus.crdt.batching.max_batch_age", "consensus.crdt.repair_interval",
        "api.restapi.http_listen_multiaddress", "api.restapi.ssl_cert_file", "api.restapi.ssl_key_file",
        "api.restapi.read_timeout", "api.restapi.read_header_timeout", "api.restapi.write_timeout",
        "api.restapi.idle_timeout", "api.restapi.max_header_bytes", "api.restapi.basic_auth_credentials",
        "api.restapi.http_log_file", "api.restapi.headers", "api.restapi.cors_allowed_origins",
        "api.restapi.cors_allowed_methods", "api.restapi.cors_allowed_headers", "api.restapi.cors_exposed_headers",
        "api.restapi.cors_allow_credentials", "api.restapi.cors_max_age", "ipfs_connector.embedded.repo_path",
        "ipfs_connector.embedded.listen_multiaddress", "ipfs_connector.embedded.bootstrap",
        "ipfs_connector.embedded.connect_swarms_delay", "ipfs_connector.embedded.ipfs_request_timeout",
        "ipfs_connector.embedded.pin_timeout", "ipfs_connector.embedded.unpin_timeout",
        "ipfs_connector.embedded.repogc_timeout", "ipfs_connector.embedded.informer_trigger_interval",
        "pin_tracker.stateless.concurrent_pins", "pin_tracker.stateless.priority_pin_max_age",
        "pin_tracker.stateless.priority_pin_max_retries", "monitor.pubsubmon.check_interval",
        "allocator.balanced.allocate_by", "informer.disk.metric_ttl", "informer.disk.metric_type",
        "informer.tags.metric_ttl", "informer.tags.tags", "informer.pinqueue.metric_ttl",
        "informer.pinqueue.weight_bucket_size", "observations.metrics.enable_stats",
        "observations.metrics.prometheus_endpoint", "observations.metrics.reporting_interval",
        "observations.tracing.enable_tracing", "observations.tracing.jaeger_agent_endpoint",
        "observations.tracing.sampling_prob", "observations.tracing.service_name", "datastore.fjall.folder",
    ];
    let missing: Vec<&str> = keys.iter().copied().filter(|k| get(&v, k).is_none()).collect();
    assert!(missing.is_empty(), "missing keys: {missing:?}");

    let expect = [
        ("cluster.listen_multiaddress", json!(["/ip4/0.0.0.0/tcp/9096"])),
        ("cluster.connection_manager.grace_period", json!("2m0s")),
        ("cluster.pubsub.seen_messages_ttl", json!("30m0s")),
        ("cluster.state_sync_interval", json!("5m0s")),
        ("cluster.pin_recover_interval", json!("12m0s")),
        ("cluster.replication_factor_min", json!(-1)),
        ("cluster.replication_factor_max", json!(-1)),
        ("cluster.disable_repinning", json!(true)),
        ("consensus.crdt.trusted_peers", json!(["*"])),
        ("consensus.crdt.repair_interval", json!("1h0m0s")),
        ("consensus.crdt.batching.max_batch_age", json!("0s")),
        ("api.restapi.http_listen_multiaddress", json!("/ip4/127.0.0.1/tcp/9094")),
        ("api.restapi.idle_timeout", json!("2m0s")),
        ("api.restapi.read_header_timeout", json!("5s")),
        ("api.restapi.basic_auth_credentials", Value::Null),
        ("api.restapi.headers", json!({})),
        (
            "api.restapi.cors_exposed_headers",
            json!(["Content-Type", "X-Stream-Output", "X-Chunked-Output", "X-Content-Length"]),
        ),
        ("ipfs_connector.embedded.unpin_timeout", json!("3h0m0s")),
        ("ipfs_connector.embedded.repogc_timeout", json!("24h0m0s")),
        ("pin_tracker.stateless.priority_pin_max_age", json!("24h0m0s")),
        ("allocator.balanced.allocate_by", json!(["tag:group", "freespace"])),
        ("informer.tags.tags", json!({"group": "default"})),
        ("observations.metrics.enable_stats", json!(true)),
        ("observations.metrics.reporting_interval", json!("2s")),
        ("observations.tracing.sampling_prob", json!(0.3)),
        ("datastore.fjall.folder", json!("fjall")),
    ];
    for (key, want) in expect {
        assert_eq!(get(&v, key), Some(&want), "{key}");
    }
    // Only the chosen consensus and only restapi among the APIs.
    assert!(get(&v, "consensus.raft").is_none());
    assert!(get(&v, "api.pinsvcapi").is_none() && get(&v, "api.ipfsproxy").is_none());
    assert!(get(&v, "ipfs_connector.ipfshttp").is_none());

    let identity = read_json(&dir.path().join("identity.json"));
    assert!(identity["id"].as_str().unwrap().starts_with("12D3KooW"));
    assert!(identity["private_key"].is_string());
}

#[test]
fn init_refuses_to_overwrite_without_force_and_keeps_identity() {
    let dir = tempfile::tempdir().unwrap();
    let first = init_folder(dir.path(), &InitOptions::default()).unwrap();
    let again = init_folder(dir.path(), &InitOptions::default());
    assert!(matches!(again, Err(ConfigError::AlreadyInitialized { .. })));

    let forced = init_folder(dir.path(), &InitOptions { force: true, ..Default::default() }).unwrap();
    assert!(!forced.identity_created);
    assert_eq!(forced.peer_id, first.peer_id);
    assert_ne!(forced.config.cluster.secret, first.config.cluster.secret);
}

#[test]
fn unknown_keys_are_named_with_their_full_path() {
    let dir = folder_with(&json!({"cluster": {"foo": 1}, "api": {"restapi": {"bar": true}}}));
    let err = load_folder(dir.path(), &no_env()).unwrap_err();
    let ConfigError::UnknownKeys(keys) = &err else { panic!("unexpected error {err}") };
    assert!(keys.contains(&"cluster.foo".to_string()), "{keys:?}");
    assert!(keys.contains(&"api.restapi.bar".to_string()), "{keys:?}");
    assert!(err.to_string().contains("cluster.foo"));

    let nested = ServiceConfig::from_value(json!({"cluster": {"pubsub": {"baz": 1}}, "extra": {}}));
    let text = error_text(nested);
    assert!(text.contains("cluster.pubsub.baz") && text.contains("extra"), "{text}");

    // Keys inside free-form maps are user data, not configuration keys.
    let tags = ServiceConfig::from_value(json!({"informer": {"tags": {"tags": {"anything": "goes"}}}}));
    assert!(tags.is_ok());
}

#[test]
fn bad_values_name_key_and_value() {
    let err = error_text(ServiceConfig::from_value(json!({
        "cluster": {"pubsub": {"heartbeat_interval": "10parsecs"}},
        "pin_tracker": {"stateless": {"concurrent_pins": "many"}}
    })));
    assert!(err.contains("cluster.pubsub.heartbeat_interval"), "{err}");
    assert!(err.contains("10parsecs"), "{err}");
    assert!(err.contains("pin_tracker.stateless.concurrent_pins"), "{err}");
    assert!(err.contains("many"), "{err}");
}

#[test]
fn validation_collects_every_problem() {
    let mut c = ServiceConfig::default();
    c.cluster.replication_factor_min = 3;
    c.cluster.replication_factor_max = 2;
    c.cluster.secret = "abc".into();
    c.cluster.pin_only_on_trusted_peers = true;
    c.cluster.pin_only_on_untrusted_peers = true;
    c.cluster.listen_multiaddress = vec!["not-a-multiaddr".into()];
    c.pin_tracker.stateless.concurrent_pins = 0;
    c.pin_tracker.stateless.max_pin_queue_size = 0;
    c.consensus.raft = Some(RaftConfig::default());
    c.ipfs_connector.ipfshttp = Some(IpfsHttpConfig::default());
    let api = c.api.restapi.as_mut().unwrap();
    api.max_header_bytes = 100;
    api.basic_auth_credentials = Some(Default::default());

    let errs = c.validate().unwrap_err();
    let text = errs.to_string();
    for needle in [
        "replication_factor",
        "cluster.secret",
        "pin_only_on_trusted_peers",
        "cluster.listen_multiaddress",
        "concurrent_pins",
        "max_pin_queue_size",
        "consensus: only one",
        "ipfs_connector: only one",
        "max_header_bytes",
        "basic_auth_credentials",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in {text}");
    }
    assert!(errs.len() >= 10);
    assert!(text.contains("; "), "joined with '; '");
    assert!(ServiceConfig::default().validate().is_ok());
}

#[test]
fn replication_factors() {
    use cluster_config::cluster::check_replication;
    assert!(check_replication(-1, -1).is_ok());
    assert!(check_replication(2, 3).is_ok());
    assert!(check_replication(-1, 3).is_err());
    assert!(check_replication(3, 2).is_err());
    assert!(check_replication(0, 2).is_err());
}

#[test]
fn env_overrides_apply_and_bad_values_name_the_variable() {
    let peer_a = new_peer_id();
    let dir = tempfile::tempdir().unwrap();
    init_folder(dir.path(), &InitOptions::default()).unwrap();
    let vars = env(&[
        ("CLUSTER_PEERNAME", "from-env"),
        ("CLUSTER_RESTAPI_HTTPLISTENMULTIADDRESS", "/ip4/0.0.0.0/tcp/19094"),
        ("CLUSTER_STATELESS_CONCURRENTPINS", "3"),
        ("CLUSTER_EMBEDDED_PINTIMEOUT", "10s"),
        ("CLUSTER_REPLICATIONFACTORMIN", "2"),
        ("CLUSTER_REPLICATIONFACTORMAX", "3"),
        ("CLUSTER_DISABLEREPINNING", "false"),
        ("CLUSTER_BALANCED_ALLOCATEBY", "tag:region,freespace"),
        ("CLUSTER_TAGS_TAGS", r#"{"region":"eu"}"#),
        ("CLUSTER_METRICS_ENABLESTATS", "false"),
        ("CLUSTER_CRDT_TRUSTEDPEERS", &peer_a),
        ("CLUSTER_FJALL_FOLDER", "state"),
        // Not configured: ignored rather than adding a second connector.
        ("CLUSTER_IPFSHTTP_NODEMULTIADDRESS", "/ip4/10.0.0.1/tcp/5001"),
    ]);
    let c = load_folder(dir.path(), &vars).unwrap().config;
    assert_eq!(c.cluster.peername, "from-env");
    assert_eq!(c.api.restapi.as_ref().unwrap().http_listen_multiaddress, vec!["/ip4/0.0.0.0/tcp/19094"]);
    assert_eq!(c.pin_tracker.stateless.concurrent_pins, 3);
    assert_eq!(c.ipfs_connector.embedded.as_ref().unwrap().pin_timeout, Duration::from_secs(10));
    assert_eq!((c.cluster.replication_factor_min, c.cluster.replication_factor_max), (2, 3));
    assert!(!c.cluster.disable_repinning);
    assert_eq!(c.allocator.balanced.allocate_by, vec!["tag:region", "freespace"]);
    assert_eq!(c.informer.tags.tags.get("region").map(String::as_str), Some("eu"));
    assert!(!c.observations.metrics.enable_stats);
    assert_eq!(c.consensus.crdt.as_ref().unwrap().trusted_peers, vec![peer_a]);
    assert_eq!(c.datastore.fjall_path(dir.path()), dir.path().join("state"));
    assert!(c.ipfs_connector.ipfshttp.is_none());

    let bad_number = error_text(load_folder(dir.path(), &env(&[("CLUSTER_STATELESS_CONCURRENTPINS", "lots")])));
    assert!(bad_number.contains("CLUSTER_STATELESS_CONCURRENTPINS"), "{bad_number}");
    let bad_duration = error_text(load_folder(dir.path(), &env(&[("CLUSTER_EMBEDDED_PINTIMEOUT", "10 years")])));
    assert!(bad_duration.contains("CLUSTER_EMBEDDED_PINTIMEOUT") && bad_duration.contains("10 years"), "{bad_duration}");
    // Env values are validated like file values.
    let invalid = error_text(load_folder(dir.path(), &env(&[("CLUSTER_SECRET", "nothex")])));
    assert!(invalid.contains("cluster.secret"), "{invalid}");
}

#[test]
fn identity_generate_load_and_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("identity.json");
    let id = Identity::generate();
    id.save(&path).unwrap();
    let loaded = Identity::load(&path, &no_env()).unwrap();
    assert_eq!(loaded.peer_id(), id.peer_id());
    assert_eq!(loaded.keypair().public(), id.keypair().public());
    assert_eq!(loaded.keypair().public().to_peer_id(), id.peer_id());

    // A file whose id belongs to another key is rejected.
    let other = Identity::generate();
    let mut raw = read_json(&path);
    raw["id"] = json!(other.peer_id().to_base58());
    std::fs::write(&path, raw.to_string()).unwrap();
    let err = error_text(Identity::load(&path, &no_env()));
    assert!(err.contains("does not match"), "{err}");

    // Env overrides win, and can stand in for a missing file.
    std::fs::remove_file(&path).unwrap();
    assert!(Identity::load(&path, &no_env()).is_err());
    let vars = env(&[
        ("CLUSTER_ID", &other.peer_id().to_base58()),
        ("CLUSTER_PRIVATEKEY", &other.private_key_base64().unwrap()),
    ]);
    assert_eq!(Identity::load(&path, &vars).unwrap().peer_id(), other.peer_id());
    let wrong = env(&[("CLUSTER_ID", &id.peer_id().to_base58()), ("CLUSTER_PRIVATEKEY", &other.private_key_base64().unwrap())]);
    assert!(Identity::load(&path, &wrong).is_err());
    assert!(format!("{other:?}").contains(&other.peer_id().to_base58()));
    assert!(!format!("{other:?}").contains(&other.private_key_base64().unwrap()));
}

#[test]
fn raft_init_writes_only_raft() {
    let dir = tempfile::tempdir().unwrap();
    let opts = InitOptions { consensus: ConsensusKind::Raft, ..Default::default() };
    init_folder(dir.path(), &opts).unwrap();
    let v = read_json(&dir.path().join("service.json"));
    assert_eq!(v["consensus"].as_object().unwrap().keys().collect::<Vec<_>>(), vec!["raft"]);
    assert_eq!(v["consensus"]["raft"]["wait_for_leader_timeout"], json!("15s"));
    assert_eq!(v["consensus"]["raft"]["commit_retry_delay"], json!("200ms"));
    let loaded = load_folder(dir.path(), &no_env()).unwrap();
    assert_eq!(loaded.config.consensus.kind(), ConsensusKind::Raft);
    assert_eq!(loaded.config.raft_data_path(dir.path()), dir.path().join("raft"));
}

#[test]
fn peers_fill_peerstore_and_trust() {
    let (peer_a, peer_b) = (new_peer_id(), new_peer_id());
    let peers = vec![format!("/ip4/10.0.0.1/tcp/9096/p2p/{peer_a}"), format!("/dns4/b.example/tcp/9096/p2p/{peer_b}")];
    let dir = tempfile::tempdir().unwrap();
    init_folder(dir.path(), &InitOptions { peers: peers.clone(), ..Default::default() }).unwrap();
    let loaded = load_folder(dir.path(), &no_env()).unwrap();
    assert_eq!(loaded.peerstore, peers);
    assert_eq!(loaded.config.consensus.crdt.as_ref().unwrap().trusted_peers, vec![peer_a.clone(), peer_b.clone()]);

    let raft_dir = tempfile::tempdir().unwrap();
    let opts = InitOptions { consensus: ConsensusKind::Raft, peers: peers.clone(), ..Default::default() };
    let report = init_folder(raft_dir.path(), &opts).unwrap();
    assert_eq!(report.config.consensus.raft.as_ref().unwrap().init_peerset, vec![peer_a.clone(), peer_b.clone()]);

    let no_id = InitOptions { peers: vec!["/ip4/10.0.0.1/tcp/9096".into()], ..Default::default() };
    let err = error_text(init_folder(tempfile::tempdir().unwrap().path(), &no_id));
    assert!(err.contains("/p2p/"), "{err}");
}

#[test]
fn random_ports_are_distinct_and_not_default() {
    let dir = tempfile::tempdir().unwrap();
    let c = init_folder(dir.path(), &InitOptions { random_ports: true, ..Default::default() }).unwrap().config;
    let addrs = [
        c.cluster.listen_multiaddress[0].clone(),
        c.api.restapi.as_ref().unwrap().http_listen_multiaddress[0].clone(),
        c.ipfs_connector.embedded.as_ref().unwrap().listen_multiaddress[0].clone(),
        c.observations.metrics.prometheus_endpoint.clone(),
    ];
    let ports: Vec<u16> = addrs.iter().map(|a| a.rsplit('/').next().unwrap().parse().unwrap()).collect();
    for default in [9096, 9094, 4001, 8888] {
        assert!(!ports.contains(&default), "{ports:?}");
    }
    let mut unique = ports.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ports.len(), "{ports:?}");
    assert!(addrs[0].starts_with("/ip4/0.0.0.0/tcp/") && addrs[1].starts_with("/ip4/127.0.0.1/tcp/"));
    assert_eq!(load_folder(dir.path(), &no_env()).unwrap().config, c);
}

#[test]
fn lock_is_exclusive_until_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let first = acquire_lock(dir.path()).unwrap();
    let err = error_text(acquire_lock(dir.path()));
    assert!(err.contains("cannot acquire lock: another ipfs-cluster-service is using"), "{err}");
    drop(first);
    let again = acquire_lock(dir.path()).unwrap();
    assert_eq!(again.path(), dir.path().join("cluster.lock"));
}

#[test]
fn legacy_datastore_sections_explain_fjall() {
    let dir = folder_with(&json!({"datastore": {"pebble": {"pebble_options": {"cache_size_bytes": 1}}}}));
    let err = error_text(load_folder(dir.path(), &no_env()));
    assert!(err.contains("datastore.pebble") && err.contains("fjall"), "{err}");
    assert!(err.contains(r#""datastore": {"fjall": {"folder": "fjall"}}"#), "{err}");
}

#[test]
fn minimal_config_takes_defaults_with_embedded_ipfs() {
    let dir = folder_with(&json!({}));
    let c = load_folder(dir.path(), &no_env()).unwrap().config;
    assert!(c.ipfs_connector.embedded.is_some() && c.ipfs_connector.ipfshttp.is_none());
    assert!(c.consensus.crdt.is_some() && c.consensus.raft.is_none());
    assert!(c.api.restapi.is_some());
    assert_eq!(c.cluster.secret, "");
    assert_eq!(c.pin_tracker.stateless.concurrent_pins, 10);
    assert_eq!(c.ipfs_repo_path(dir.path()), Some(dir.path().join("ipfs")));
    assert_eq!(c.datastore_path(dir.path()), dir.path().join("fjall"));
}

#[test]
fn switching_to_kubo_takes_defaults_for_missing_keys() {
    let dir = folder_with(&json!({"ipfs_connector": {"ipfshttp": {"node_multiaddress": "/ip4/127.0.0.1/tcp/5001"}}}));
    let c = load_folder(dir.path(), &no_env()).unwrap().config;
    assert!(c.ipfs_connector.embedded.is_none());
    let http = c.ipfs_connector.ipfshttp.as_ref().unwrap();
    assert_eq!(http.pin_timeout, Duration::from_secs(120));
    assert_eq!(c.ipfs_connector.timings().unpin_timeout, Duration::from_secs(3 * 3600));

    let empty = folder_with(&json!({"ipfs_connector": {}}));
    let err = error_text(load_folder(empty.path(), &no_env()));
    assert!(err.contains("ipfs_connector"), "{err}");
}

#[test]
fn original_style_files_are_accepted() {
    // Single-string listen addresses, the original's QUIC listener and hidden keys all parse.
    let v = json!({
        "cluster": {
            "listen_multiaddress": ["/ip4/0.0.0.0/tcp/9096", "/ip4/0.0.0.0/udp/9096/quic"],
            "peer_addresses": [],
            "follower_mode": true
        },
        "consensus": {"crdt": {"cluster_name": "c", "trusted_peers": ["*"], "rebroadcast_interval": "30s",
                               "batching": {"max_batch_size": 10, "max_batch_age": "1s", "max_queue_size": 10}}},
        "api": {"restapi": {"http_listen_multiaddress": ["/ip4/127.0.0.1/tcp/9094", "/ip4/127.0.0.1/tcp/9099"]},
                "ipfsproxy": {"listen_multiaddress": "/ip4/127.0.0.1/tcp/9095"}},
        "informer": {"disk": {"metric_type": "reposize"}},
    });
    let c = ServiceConfig::load_value(v, &no_env()).unwrap();
    assert!(c.cluster.follower_mode);
    assert_eq!(c.api.restapi.unwrap().http_listen_multiaddress.len(), 2);
    assert_eq!(c.api.ipfsproxy.unwrap().listen_multiaddress, vec!["/ip4/127.0.0.1/tcp/9095"]);
    assert_eq!(c.consensus.crdt.unwrap().rebroadcast_interval, Duration::from_secs(30));
}

#[test]
fn remote_source_is_reported() {
    let dir = folder_with(&json!({"source": "https://example.org/service.json"}));
    let err = load_folder(dir.path(), &no_env()).unwrap_err();
    assert!(matches!(err, ConfigError::RemoteSource { ref url } if url == "https://example.org/service.json"));
}

#[test]
fn legacy_identity_in_service_json_is_migrated() {
    let id = Identity::generate();
    let dir = tempfile::tempdir().unwrap();
    let v = json!({"cluster": {"id": id.peer_id().to_base58(), "private_key": id.private_key_base64().unwrap()}});
    std::fs::write(dir.path().join("service.json"), v.to_string()).unwrap();
    let loaded = load_folder(dir.path(), &no_env()).unwrap();
    assert_eq!(loaded.identity.peer_id(), id.peer_id());
    assert!(dir.path().join("identity.json").exists());
}

#[test]
fn config_dir_and_paths() {
    assert_eq!(default_config_dir(&env(&[("IPFS_CLUSTER_PATH", "/data/c"), ("HOME", "/home/u")])), Path::new("/data/c"));
    assert_eq!(default_config_dir(&env(&[("HOME", "/home/u")])), Path::new("/home/u/.ipfs-cluster"));
    assert_eq!(resolve_path(Path::new("/cfg"), "cert.pem"), Path::new("/cfg/cert.pem"));
    assert_eq!(resolve_path(Path::new("/cfg"), "/etc/cert.pem"), Path::new("/etc/cert.pem"));
    let mut api = RestApiConfig::default();
    assert_eq!(api.ssl_paths(Path::new("/cfg")), None);
    api.ssl_cert_file = "c.pem".into();
    api.ssl_key_file = "k.pem".into();
    assert_eq!(api.ssl_paths(Path::new("/cfg")), Some(("/cfg/c.pem".into(), "/cfg/k.pem".into())));
}

#[test]
fn not_initialized_and_broken_json() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(load_folder(dir.path(), &no_env()), Err(ConfigError::NotInitialized { .. })));
    std::fs::write(dir.path().join("service.json"), "{ nope").unwrap();
    assert!(matches!(load_folder(dir.path(), &no_env()), Err(ConfigError::Json { .. })));
}

#[test]
fn init_with_a_kubo_node_writes_ipfshttp_and_the_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let node = "/unix/run/ipfs/api.sock".to_string();
    let opts = InitOptions { random_ports: true, ipfs_node_multiaddress: Some(node.clone()), ..Default::default() };
    init_folder(dir.path(), &opts).unwrap();
    let loaded = load_folder(dir.path(), &HashMap::new()).unwrap().config;
    assert!(loaded.ipfs_connector.embedded.is_none());
    assert_eq!(loaded.ipfs_connector.ipfshttp.as_ref().unwrap().node_multiaddress, node);
    let proxy = loaded.api.ipfsproxy.as_ref().expect("proxy section");
    assert_eq!(proxy.node_multiaddress, node);
    assert_ne!(proxy.listen_multiaddress[0], "/ip4/127.0.0.1/tcp/9095", "random port expected");
    let text = std::fs::read_to_string(dir.path().join("service.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["ipfs_connector"]["ipfshttp"]["connect_swarms_delay"], "30s");
}

#[test]
fn node_multiaddress_accepts_unix_sockets_only_with_absolute_paths() {
    let mut cfg = ServiceConfig::default();
    cfg.ipfs_connector = IpfsConnectorConfig {
        embedded: None,
        ipfshttp: Some(IpfsHttpConfig { node_multiaddress: "/unix/var/run/ipfs.sock".into(), ..Default::default() }),
    };
    assert!(cfg.validate().is_ok());
    cfg.ipfs_connector.ipfshttp.as_mut().unwrap().node_multiaddress = "/unix".into();
    let err = cfg.validate().unwrap_err().to_string();
    assert!(err.contains("ipfs_connector.ipfshttp.node_multiaddress"), "{err}");
    cfg.ipfs_connector.ipfshttp.as_mut().unwrap().node_multiaddress = "/ip4/127.0.0.1/tcp/5001".into();
    cfg.api.ipfsproxy = Some(IpfsProxyConfig { node_multiaddress: "/unix/tmp/x.sock".into(), ..Default::default() });
    assert!(cfg.validate().is_ok());
}
