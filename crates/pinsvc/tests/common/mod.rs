//! A fake cluster and a running API on 127.0.0.1 for the integration tests.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use cluster_pinsvc::{PinSvcConfig, PinningBackend, PinningService, RequestIndex, serve_pinsvc};
use cluster_types::{
    ApiError, Cid, GlobalPinInfo, Pin, PinInfoShort, PinOptions, Timestamp, TrackerStatus,
};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const FALLBACK_DELEGATE: &str = "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWFallback";
pub const PEER_A_ADDR: &str = "/ip4/192.0.2.1/tcp/4001/p2p/12D3KooWPeerA";

/// A cluster that keeps pins in a map and reports a status per CID.
#[derive(Default)]
pub struct FakeCluster {
    pub pins: Mutex<HashMap<Cid, Pin>>,
    /// Status reported by peer A for a pinned CID; `pinned` when absent.
    pub statuses: Mutex<HashMap<Cid, TrackerStatus>>,
    /// CIDs whose pin fails with a 500.
    pub failing_pins: Mutex<HashSet<Cid>>,
    /// When set, every unpin fails with a 500.
    pub failing_unpins: Mutex<bool>,
    /// When set, every status lookup fails with a 503.
    pub failing_status: Mutex<bool>,
    /// Every pin and unpin, in order: ("pin"|"unpin", cid, pin_update).
    pub calls: Mutex<Vec<(String, Cid, Option<Cid>)>>,
    /// Delay of each pin, to widen race windows.
    pub pin_delay: Mutex<Duration>,
    /// Delay of each unpin, to widen race windows.
    pub unpin_delay: Mutex<Duration>,
}

impl FakeCluster {
    pub fn is_pinned(&self, cid: &Cid) -> bool {
        self.pins.lock().unwrap().contains_key(cid)
    }

    pub fn set_status(&self, cid: Cid, s: TrackerStatus) {
        self.statuses.lock().unwrap().insert(cid, s);
    }

    pub fn pin_options(&self, cid: &Cid) -> Option<PinOptions> {
        self.pins
            .lock()
            .unwrap()
            .get(cid)
            .map(|p| p.options.clone())
    }

    async fn pause(d: Duration) {
        if !d.is_zero() {
            tokio::time::sleep(d).await;
        }
    }

    fn short(status: TrackerStatus, addrs: Vec<String>, error: &str) -> PinInfoShort {
        PinInfoShort {
            peername: "peer-a".into(),
            ipfs_peer_id: String::new(),
            ipfs_peer_addresses: addrs,
            status,
            timestamp: Timestamp::now(),
            error: error.into(),
            attempt_count: 1,
            priority_pin: false,
        }
    }
}

#[async_trait]
impl PinningBackend for FakeCluster {
    async fn pin(&self, cid: Cid, opts: PinOptions) -> Result<Pin, ApiError> {
        let d = *self.pin_delay.lock().unwrap();
        Self::pause(d).await;
        if self.failing_pins.lock().unwrap().contains(&cid) {
            return Err(ApiError::internal("ipfs said no"));
        }
        if let Some(old) = opts.pin_update
            && !self.is_pinned(&old)
        {
            return Err(ApiError::not_found("pin is not part of the pinset"));
        }
        self.calls
            .lock()
            .unwrap()
            .push(("pin".into(), cid, opts.pin_update));
        let pin = Pin::with_options(cid, opts);
        self.pins.lock().unwrap().insert(cid, pin.clone());
        Ok(pin)
    }

    async fn unpin(&self, cid: Cid) -> Result<(), ApiError> {
        let d = *self.unpin_delay.lock().unwrap();
        Self::pause(d).await;
        if *self.failing_unpins.lock().unwrap() {
            return Err(ApiError::internal("consensus is down"));
        }
        self.calls.lock().unwrap().push(("unpin".into(), cid, None));
        match self.pins.lock().unwrap().remove(&cid) {
            Some(_) => Ok(()),
            None => Err(ApiError::not_found("pin is not part of the pinset")),
        }
    }

    async fn status(&self, cid: Cid) -> Result<GlobalPinInfo, ApiError> {
        if *self.failing_status.lock().unwrap() {
            return Err(ApiError {
                code: 503,
                message: "peers unreachable".into(),
            });
        }
        let pinned = self.is_pinned(&cid);
        let mut peer_map = BTreeMap::new();
        if pinned {
            let s = self
                .statuses
                .lock()
                .unwrap()
                .get(&cid)
                .copied()
                .unwrap_or(TrackerStatus::Pinned);
            let err = if s.is_error() {
                "could not fetch the dag"
            } else {
                ""
            };
            peer_map.insert(
                "12D3KooWPeerA".to_string(),
                Self::short(s, vec![PEER_A_ADDR.into()], err),
            );
            peer_map.insert(
                "12D3KooWPeerB".to_string(),
                Self::short(TrackerStatus::Remote, vec![], ""),
            );
        } else {
            peer_map.insert(
                "12D3KooWPeerA".to_string(),
                Self::short(TrackerStatus::Unpinned, vec![], ""),
            );
        }
        Ok(GlobalPinInfo {
            cid,
            name: String::new(),
            allocations: vec![],
            origins: vec![],
            created: Timestamp::zero(),
            metadata: BTreeMap::new(),
            peer_map,
        })
    }

    async fn fallback_delegates(&self) -> Vec<String> {
        vec![FALLBACK_DELEGATE.to_string()]
    }
}

/// A running API over a fake cluster.
pub struct Running {
    pub base: String,
    pub addr: SocketAddr,
    pub cluster: Arc<FakeCluster>,
    pub service: Arc<PinningService>,
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl Running {
    /// Starts the API with its index in `dir`.
    pub async fn start(dir: &Path) -> Running {
        Self::start_with(
            dir,
            Arc::new(FakeCluster::default()),
            PinSvcConfig::default(),
        )
        .await
    }

    pub async fn start_with(dir: &Path, cluster: Arc<FakeCluster>, cfg: PinSvcConfig) -> Running {
        let index = Arc::new(RequestIndex::open(dir).expect("open index"));
        let service = PinningService::new(cluster.clone(), index);
        let cfg = PinSvcConfig {
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            ..cfg
        };
        let (tx, rx) = oneshot::channel();
        let (addrs, handle) = serve_pinsvc(cfg, service.clone(), async {
            let _ = rx.await;
        })
        .await
        .expect("serve");
        let addr = addrs[0];
        Running {
            base: format!("http://{addr}"),
            addr,
            cluster,
            service,
            http: reqwest::Client::new(),
            stop: Some(tx),
            handle: Some(handle),
        }
    }

    /// Stops the server and waits for it, releasing the index once `self` is dropped.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            tokio::time::timeout(Duration::from_secs(15), h)
                .await
                .expect("server stops in time")
                .expect("server task");
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// POST /pins with a JSON body; returns status and JSON.
    pub async fn post(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let resp = self
            .http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("post");
        decode(resp).await
    }

    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let resp = self.http.get(self.url(path)).send().await.expect("get");
        decode(resp).await
    }

    pub async fn delete(&self, path: &str) -> (u16, serde_json::Value) {
        let resp = self
            .http
            .delete(self.url(path))
            .send()
            .await
            .expect("delete");
        decode(resp).await
    }

    /// Creates a request for `cid` with a name and returns its id.
    pub async fn create(&self, cid: &Cid, name: &str) -> String {
        let (code, body) = self
            .post(
                "/pins",
                serde_json::json!({"cid": cid.to_string(), "name": name}),
            )
            .await;
        assert_eq!(code, 202, "{body}");
        body["requestid"].as_str().expect("requestid").to_string()
    }
}

/// Status and JSON body (`null` when empty).
pub async fn decode(resp: reqwest::Response) -> (u16, serde_json::Value) {
    let code = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    let json = if text.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("non-JSON body {text:?}: {e}"))
    };
    (code, json)
}

/// A distinct raw-codec CID for each `n`.
pub fn cid(n: u32) -> Cid {
    let mh =
        cid::multihash::Multihash::<64>::wrap(0x00, format!("content-{n}").as_bytes()).unwrap();
    Cid::new_v1(0x55, mh)
}

/// Asserts the spec's failure shape and returns its reason.
pub fn failure_reason(code: u16, body: &serde_json::Value, want_code: u16) -> String {
    assert_eq!(code, want_code, "{body}");
    let err = body
        .get("error")
        .unwrap_or_else(|| panic!("no error object in {body}"));
    let reason = err["reason"]
        .as_str()
        .unwrap_or_else(|| panic!("no reason in {body}"));
    assert!(
        err["details"].as_str().is_some_and(|d| !d.is_empty()),
        "{body}"
    );
    assert_eq!(
        body.as_object().unwrap().len(),
        1,
        "only `error` at top level: {body}"
    );
    reason.to_string()
}
