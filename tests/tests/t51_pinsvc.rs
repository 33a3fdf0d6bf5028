//! The Pinning Service API of a real daemon: every endpoint and filter, two requests for one
//! CID, pagination over 250 requests, the spec's errors, and the index surviving a restart.

use std::collections::HashSet;
use std::time::Duration;

use cluster_tests::{Peer, free_port, http_status, identity_cid, wait_until};
use futures::StreamExt;
use serde_json::{Value, json};

struct Api {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
    base: String,
}

impl Api {
    fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.rt.block_on(send(
            &self.http,
            method,
            format!("{}{path}", self.base),
            body,
        ))
    }

    fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, None)
    }

    fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(body))
    }

    /// The request ids of a listing that must succeed, and its count.
    fn list(&self, query: &str) -> (u64, Vec<String>) {
        let (code, body) = self.get(&format!("/pins?{query}"));
        assert_eq!(code, 200, "{query}: {body}");
        let ids = body["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["requestid"].as_str().unwrap().to_string())
            .collect();
        (body["count"].as_u64().unwrap(), ids)
    }
}

async fn send(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = http.request(method, url);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    let code = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        code,
        if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        },
    )
}

fn enc(s: &str) -> String {
    s.replace('+', "%2B")
        .replace(':', "%3A")
        .replace('{', "%7B")
        .replace('}', "%7D")
        .replace('"', "%22")
}

fn assert_failure(code: u16, body: &Value, want: u16, reason: &str) {
    assert_eq!(code, want, "{body}");
    assert_eq!(body["error"]["reason"], reason, "{body}");
    assert!(
        body["error"]["details"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{body}"
    );
}

const ALL: &str = "status=queued,pinning,pinned,failed";

#[test]
fn pinning_service_api_on_a_daemon() {
    let mut peer = Peer::init(&[]).unwrap();
    let port = free_port();
    peer.edit_config(|cfg| {
        cfg["api"]["pinsvcapi"] =
            json!({ "http_listen_multiaddress": format!("/ip4/127.0.0.1/tcp/{port}") });
    })
    .unwrap();
    peer.start().unwrap();
    let api = Api {
        rt: tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
        http: reqwest::Client::new(),
        base: format!("http://127.0.0.1:{port}"),
    };
    let health = format!("http://127.0.0.1:{port}/health");
    // The REST API answering does not mean the pinning service listener is bound yet.
    assert!(wait_until(Duration::from_secs(30), || http_status(
        "GET", &health
    ) == Some(204)));

    // Create: 202, a request id, delegates, and the cluster pin behind it.
    let a = identity_cid(b"pinsvc alpha");
    let (code, first) = api.post(
        "/pins",
        json!({"cid": a, "name": "Alpha-One", "meta": {"team": "red"}, "origins": []}),
    );
    assert_eq!(code, 202, "{first}");
    assert!(
        ["queued", "pinning", "pinned"].contains(&first["status"].as_str().unwrap()),
        "{first}"
    );
    assert_eq!(first["pin"]["cid"], a.as_str());
    assert!(
        !first["delegates"].as_array().unwrap().is_empty(),
        "{first}"
    );
    let r1 = first["requestid"].as_str().unwrap().to_string();
    assert_eq!(
        http_status("GET", &peer.url(&format!("/allocations/{a}"))),
        Some(200)
    );
    // A second request for the same CID is its own request.
    let (code, second) = api.post("/pins", json!({"cid": a, "name": "alpha-two"}));
    assert_eq!(code, 202, "{second}");
    let r2 = second["requestid"].as_str().unwrap().to_string();
    assert_ne!(r1, r2);
    assert!(wait_until(Duration::from_secs(30), || api
        .get(&format!("/pins/{r1}"))
        .1["status"]
        == "pinned"));
    let (code, got) = api.get(&format!("/pins/{r1}"));
    assert_eq!(code, 200);
    assert_eq!(got["pin"]["name"], "Alpha-One");
    assert_eq!(got["pin"]["meta"]["team"], "red");

    // Filters.
    assert_eq!(
        api.list(&format!("cid={a}")),
        (2, vec![r2.clone(), r1.clone()])
    );
    assert_eq!(api.list("name=Alpha-One").1, vec![r1.clone()]);
    assert_eq!(api.list("name=alpha-one").0, 0);
    assert_eq!(api.list("name=alpha-one&match=iexact").1, vec![r1.clone()]);
    assert_eq!(api.list("name=alpha&match=partial").1, vec![r2.clone()]);
    assert_eq!(api.list("name=ALPHA&match=ipartial").0, 2);
    assert_eq!(
        api.list(&format!("meta={}", enc(r#"{"team":"red"}"#))).1,
        vec![r1.clone()]
    );
    assert!(wait_until(Duration::from_secs(30), || api
        .list("status=pinned")
        .0
        == 2));
    assert_eq!(api.list("status=failed,queued").0, 0);
    assert_eq!(api.list(&format!("{ALL}&limit=1")), (2, vec![r2.clone()]));
    let created = |s: &Value| enc(s["created"].as_str().unwrap());
    assert_eq!(
        api.list(&format!("after={}", created(&first))).1,
        vec![r2.clone()]
    );
    assert_eq!(
        api.list(&format!("before={}", created(&second))).1,
        vec![r1.clone()]
    );

    // Errors in the spec's shape.
    let (code, body) = api.get("/pins/01ARZ3NDEKTSV4RRFFQ69G5FAV");
    assert_failure(code, &body, 404, "NOT_FOUND");
    let (code, body) = api.post("/pins", json!({"name": "no cid"}));
    assert_failure(code, &body, 400, "BAD_REQUEST");
    let (code, body) = api.get("/pins?limit=0");
    assert_failure(code, &body, 400, "BAD_REQUEST");
    let (code, body) = api.get("/pins?status=lost");
    assert_failure(code, &body, 400, "BAD_REQUEST");

    // Replace r1 by another CID: a new request; A stays pinned for r2.
    let b = identity_cid(b"pinsvc beta");
    let (code, replaced) = api.post(&format!("/pins/{r1}"), json!({"cid": b, "name": "beta"}));
    assert_eq!(code, 202, "{replaced}");
    let r3 = replaced["requestid"].as_str().unwrap().to_string();
    assert_ne!(r3, r1);
    assert_eq!(api.get(&format!("/pins/{r1}")).0, 404);
    assert_eq!(
        http_status("GET", &peer.url(&format!("/allocations/{b}"))),
        Some(200)
    );
    assert_eq!(
        http_status("GET", &peer.url(&format!("/allocations/{a}"))),
        Some(200)
    );
    // Deleting the last request for A unpins it.
    let (code, _) = api.send(reqwest::Method::DELETE, &format!("/pins/{r2}"), None);
    assert_eq!(code, 202);
    assert_eq!(
        http_status("GET", &peer.url(&format!("/allocations/{a}"))),
        Some(404)
    );
    let (code, body) = api.send(reqwest::Method::DELETE, &format!("/pins/{r2}"), None);
    assert_failure(code, &body, 404, "NOT_FOUND");

    // Pagination over 250 more requests, newest first, with `before`.
    let made: Vec<String> = api.rt.block_on(async {
        futures::stream::iter(0..250)
            .map(|i| {
                let http = api.http.clone();
                let url = format!("{}/pins", api.base);
                async move {
                    let cid = identity_cid(format!("page item {i}").as_bytes());
                    let (code, body) = send(
                        &http,
                        reqwest::Method::POST,
                        url,
                        Some(json!({"cid": cid, "name": "bulk"})),
                    )
                    .await;
                    assert_eq!(code, 202, "{body}");
                    body["requestid"].as_str().unwrap().to_string()
                }
            })
            .buffer_unordered(8)
            .collect()
            .await
    });
    let mut seen = Vec::new();
    let mut query = format!("{ALL}&name=bulk&limit=100");
    loop {
        let (code, page) = api.get(&format!("/pins?{query}"));
        assert_eq!(code, 200, "{page}");
        assert_eq!(page["count"].as_u64().unwrap() as usize, 250 - seen.len());
        let results = page["results"].as_array().unwrap();
        let Some(last) = results.last() else { break };
        seen.extend(
            results
                .iter()
                .map(|r| r["requestid"].as_str().unwrap().to_string()),
        );
        query = format!("{ALL}&name=bulk&limit=100&before={}", created(last));
    }
    assert_eq!(seen.len(), 250);
    assert_eq!(
        seen.iter().collect::<HashSet<_>>(),
        made.iter().collect::<HashSet<_>>()
    );
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "newest first");
    assert_eq!(api.list(&format!("{ALL}&limit=1000")).0, 251);

    // The request index lives in the config folder and survives a restart.
    assert!(peer.path().join("pinsvc").is_dir());
    peer.stop();
    peer.start().unwrap();
    assert!(wait_until(Duration::from_secs(30), || http_status(
        "GET", &health
    ) == Some(204)));
    let (code, body) = api.get(&format!("/pins/{r3}"));
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["pin"]["cid"], b.as_str());
}
