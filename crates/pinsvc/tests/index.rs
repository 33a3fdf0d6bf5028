//! The request index on disk: persistence across restarts and the format-version check.

mod common;

use std::sync::Arc;

use cluster_pinsvc::{FORMAT_VERSION, IndexError, PinResults, RequestIndex};
use common::{FakeCluster, Running, cid};
use fjall::{Database, KeyspaceCreateOptions, PersistMode};

#[tokio::test]
async fn requests_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Arc::new(FakeCluster::default());
    let api = Running::start_with(dir.path(), Arc::clone(&cluster), Default::default()).await;
    let shared = cid(1);
    let first = api.create(&shared, "first").await;
    let second = api.create(&shared, "second").await;
    let third = api.create(&cid(2), "third").await;
    let (_, before_restart) = api.get("/pins?limit=1000").await;
    api.service.index().persist().unwrap();
    api.stop().await;

    // A new process over the same directory and the same cluster.
    let api = Running::start_with(dir.path(), Arc::clone(&cluster), Default::default()).await;
    let (code, after_restart) = api.get("/pins?limit=1000").await;
    assert_eq!(code, 200);
    assert_eq!(
        after_restart, before_restart,
        "same requests, same order, same fields"
    );
    for id in [&first, &second, &third] {
        let (code, body) = api.get(&format!("/pins/{id}")).await;
        assert_eq!(code, 200, "{id}: {body}");
    }

    // New requests sort after the old ones, and the CID index survived too.
    let fourth = api.create(&cid(3), "fourth").await;
    assert!(fourth > third);
    let (_, body) = api.get("/pins?limit=1").await;
    let page: PinResults = serde_json::from_value(body).unwrap();
    assert_eq!(page.results[0].requestid, fourth);
    let (code, _) = api.delete(&format!("/pins/{first}")).await;
    assert_eq!(code, 202);
    assert!(
        cluster.is_pinned(&shared),
        "the second request, stored before the restart, still needs it"
    );
    let (code, _) = api.delete(&format!("/pins/{second}")).await;
    assert_eq!(code, 202);
    assert!(!cluster.is_pinned(&shared));
    api.stop().await;
}

#[test]
fn refuses_another_format_version() {
    let dir = tempfile::tempdir().unwrap();
    {
        let idx = RequestIndex::open(dir.path()).unwrap();
        idx.insert(&cluster_pinsvc::PinObject {
            cid: cid(1),
            name: String::new(),
            origins: vec![],
            meta: Default::default(),
        })
        .unwrap();
    }
    // Reopening the same version works.
    drop(RequestIndex::open(dir.path()).unwrap());

    // A newer layout is refused, not misread.
    {
        let db = Database::builder(dir.path()).open().unwrap();
        let meta = db.keyspace("meta", KeyspaceCreateOptions::default).unwrap();
        meta.insert("format_version", (FORMAT_VERSION + 1).to_be_bytes())
            .unwrap();
        db.persist(PersistMode::SyncAll).unwrap();
    }
    match RequestIndex::open(dir.path()) {
        Err(IndexError::UnsupportedFormat { found, supported }) => {
            assert_eq!(found, FORMAT_VERSION + 1);
            assert_eq!(supported, FORMAT_VERSION);
        }
        other => panic!("expected UnsupportedFormat, got {other:?}"),
    }

    // A version key of the wrong size is corruption.
    {
        let db = Database::builder(dir.path()).open().unwrap();
        let meta = db.keyspace("meta", KeyspaceCreateOptions::default).unwrap();
        meta.insert("format_version", [1u8]).unwrap();
    }
    assert!(matches!(
        RequestIndex::open(dir.path()),
        Err(IndexError::Corrupt(_))
    ));

    // Requests without any version key are corruption too, not a fresh index.
    {
        let db = Database::builder(dir.path()).open().unwrap();
        let meta = db.keyspace("meta", KeyspaceCreateOptions::default).unwrap();
        meta.remove("format_version").unwrap();
    }
    assert!(matches!(
        RequestIndex::open(dir.path()),
        Err(IndexError::Corrupt(_))
    ));
}

#[test]
fn a_fresh_directory_gets_the_current_version() {
    let dir = tempfile::tempdir().unwrap();
    drop(RequestIndex::open(dir.path()).unwrap());
    let db = Database::builder(dir.path()).open().unwrap();
    let meta = db.keyspace("meta", KeyspaceCreateOptions::default).unwrap();
    let v = meta
        .get("format_version")
        .unwrap()
        .expect("version written");
    assert_eq!(v.as_ref(), FORMAT_VERSION.to_be_bytes());
}

#[test]
fn a_newer_record_is_refused_when_read() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let idx = RequestIndex::open(dir.path()).unwrap();
        idx.insert(&cluster_pinsvc::PinObject {
            cid: cid(9),
            name: "n".into(),
            origins: vec![],
            meta: Default::default(),
        })
        .unwrap()
        .id
    };
    {
        let db = Database::builder(dir.path()).open().unwrap();
        let requests = db
            .keyspace("requests", KeyspaceCreateOptions::default)
            .unwrap();
        let (key, value) = requests.iter().next().unwrap().into_inner().unwrap();
        let mut newer = value.to_vec();
        newer[0] = 9;
        requests.insert(key, newer).unwrap();
    }
    let idx = RequestIndex::open(dir.path()).unwrap();
    assert!(matches!(
        idx.get(&id),
        Err(IndexError::UnsupportedRecord(9))
    ));
}
