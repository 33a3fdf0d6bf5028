//! The Pinning Service API over real sockets: endpoints, filters, pagination, errors.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use cluster_pinsvc::{PinResults, PinStatus, Status};
use cluster_types::{Timestamp, TrackerStatus};
use common::{FALLBACK_DELEGATE, FakeCluster, PEER_A_ADDR, Running, cid, failure_reason};
use serde_json::json;

fn status_of(v: &serde_json::Value) -> PinStatus {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("not a PinStatus: {v}: {e}"))
}

fn results_of(v: &serde_json::Value) -> PinResults {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("not PinResults: {v}: {e}"))
}

#[tokio::test]
async fn create_get_delete() {
    let dir = tempfile::tempdir().unwrap();
    let api = Running::start(dir.path()).await;
    let c = cid(1);
    let (code, body) = api
        .post(
            "/pins",
            json!({"cid": c.to_string(), "name": "PreciousData.pdf",
                   "origins": ["/ip4/198.51.100.7/tcp/4001/p2p/12D3KooWOrigin"],
                   "meta": {"app_id": "99986338"}}),
        )
        .await;
    assert_eq!(code, 202, "{body}");
    for field in ["requestid", "status", "created", "pin", "delegates", "info"] {
        assert!(body.get(field).is_some(), "{field} missing in {body}");
    }
    let st = status_of(&body);
    assert_eq!(st.requestid.len(), 26);
    assert_eq!(st.status, Status::Pinned);
    assert_eq!(st.pin.cid, c);
    assert_eq!(st.pin.name, "PreciousData.pdf");
    assert_eq!(
        st.pin.origins,
        vec!["/ip4/198.51.100.7/tcp/4001/p2p/12D3KooWOrigin"]
    );
    assert_eq!(
        st.pin.meta.get("app_id").map(String::as_str),
        Some("99986338")
    );
    assert_eq!(st.delegates, vec![PEER_A_ADDR]);
    let created = Timestamp::parse(&st.created).expect("created is RFC 3339");
    let age = chrono::Utc::now() - created.0.unwrap();
    assert!(age.num_seconds().abs() < 60, "created {created:?}");

    // The cluster got a recursive pin carrying the request's name, origins and meta.
    let opts = api.cluster.pin_options(&c).expect("pinned in the cluster");
    assert_eq!(opts.name, "PreciousData.pdf");
    assert_eq!(
        opts.metadata.get("app_id").map(String::as_str),
        Some("99986338")
    );
    assert_eq!(opts.origins.len(), 1);
    assert_eq!(opts.pin_update, None);

    let (code, got) = api.get(&format!("/pins/{}", st.requestid)).await;
    assert_eq!(code, 200);
    assert_eq!(status_of(&got), st);

    let resp = api
        .http
        .delete(api.url(&format!("/pins/{}", st.requestid)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    assert!(resp.text().await.unwrap().is_empty());
    assert!(!api.cluster.is_pinned(&c));

    let (code, body) = api.get(&format!("/pins/{}", st.requestid)).await;
    assert_eq!(failure_reason(code, &body, 404), "NOT_FOUND");
    let (code, body) = api.delete(&format!("/pins/{}", st.requestid)).await;
    assert_eq!(failure_reason(code, &body, 404), "NOT_FOUND");
    api.stop().await;
}

#[tokio::test]
async fn two_requests_for_one_cid() {
    let dir = tempfile::tempdir().unwrap();
    let api = Running::start(dir.path()).await;
    let c = cid(7);
    let first = api.create(&c, "one").await;
    let second = api.create(&c, "two").await;
    assert_ne!(first, second);

    let (_, body) = api.get(&format!("/pins?cid={c}")).await;
    let res = results_of(&body);
    assert_eq!(res.count, 2);
    // Newest first, each with its own name.
    assert_eq!(res.results[0].requestid, second);
    assert_eq!(res.results[0].pin.name, "two");
    assert_eq!(res.results[1].requestid, first);
    assert_eq!(res.results[1].pin.name, "one");

    let (code, _) = api.delete(&format!("/pins/{first}")).await;
    assert_eq!(code, 202);
    assert!(
        api.cluster.is_pinned(&c),
        "the other request still needs the pin"
    );
    let (code, body) = api.get(&format!("/pins/{second}")).await;
    assert_eq!(code, 200);
    assert_eq!(status_of(&body).status, Status::Pinned);
    let (code, _) = api.get(&format!("/pins/{first}")).await;
    assert_eq!(code, 404);

    let (code, _) = api.delete(&format!("/pins/{second}")).await;
    assert_eq!(code, 202);
    assert!(!api.cluster.is_pinned(&c), "the last request is gone");
    let unpins = api
        .cluster
        .calls
        .lock()
        .unwrap()
        .iter()
        .filter(|(op, ..)| op == "unpin")
        .count();
    assert_eq!(unpins, 1);
    api.stop().await;
}

#[tokio::test]
async fn replace_moves_the_request() {
    let dir = tempfile::tempdir().unwrap();
    let api = Running::start(dir.path()).await;
    let (a, b) = (cid(1), cid(2));
    let old = api.create(&a, "v1").await;

    let (code, body) = api
        .post(
            &format!("/pins/{old}"),
            json!({"cid": b.to_string(), "name": "v2", "meta": {"k": "v"}}),
        )
        .await;
    assert_eq!(code, 202, "{body}");
    let new = status_of(&body);
    assert_ne!(new.requestid, old);
    assert_eq!(new.pin.cid, b);
    assert_eq!(new.pin.name, "v2");
    assert!(new.requestid > old, "new ids sort after old ones");

    // IPFS got a pin update from the old CID, and the old CID was unpinned.
    let calls = api.cluster.calls.lock().unwrap().clone();
    assert!(calls.contains(&("pin".into(), b, Some(a))), "{calls:?}");
    assert!(calls.contains(&("unpin".into(), a, None)), "{calls:?}");
    assert!(api.cluster.is_pinned(&b));
    assert!(!api.cluster.is_pinned(&a));
    let (code, _) = api.get(&format!("/pins/{old}")).await;
    assert_eq!(code, 404);
    let (code, body) = api.get(&format!("/pins/{}", new.requestid)).await;
    assert_eq!(code, 200);
    assert_eq!(
        status_of(&body).pin.meta.get("k").map(String::as_str),
        Some("v")
    );

    // Same CID, new name: the pin stays, the request is swapped.
    let (code, body) = api
        .post(
            &format!("/pins/{}", new.requestid),
            json!({"cid": b.to_string(), "name": "v3"}),
        )
        .await;
    assert_eq!(code, 202);
    let newer = status_of(&body);
    assert!(api.cluster.is_pinned(&b));
    assert_eq!(api.cluster.pin_options(&b).unwrap().name, "v3");
    let (code, _) = api.get(&format!("/pins/{}", new.requestid)).await;
    assert_eq!(code, 404);

    // A CID still needed by another request survives being replaced away from.
    let keep = api.create(&b, "keeper").await;
    let c = cid(3);
    let (code, _) = api
        .post(
            &format!("/pins/{}", newer.requestid),
            json!({"cid": c.to_string()}),
        )
        .await;
    assert_eq!(code, 202);
    assert!(
        api.cluster.is_pinned(&b),
        "request {keep} still references it"
    );
    assert!(api.cluster.is_pinned(&c));

    // The old CID left the cluster behind our back: the replacement pins without pin_update.
    let d = cid(4);
    api.cluster.pins.lock().unwrap().remove(&c);
    let (_, body) = api.get(&format!("/pins?cid={c}&status=failed")).await;
    let orphan = results_of(&body).results[0].requestid.clone();
    let (code, body) = api
        .post(&format!("/pins/{orphan}"), json!({"cid": d.to_string()}))
        .await;
    assert_eq!(code, 202, "{body}");
    assert!(api.cluster.is_pinned(&d));

    // Failing to unpin the replaced CID does not undo the replacement; it is reported.
    let e = cid(5);
    *api.cluster.failing_unpins.lock().unwrap() = true;
    let (_, body) = api.get(&format!("/pins?cid={d}")).await;
    let on_d = results_of(&body).results[0].requestid.clone();
    let (code, body) = api
        .post(&format!("/pins/{on_d}"), json!({"cid": e.to_string()}))
        .await;
    assert_eq!(code, 202, "{body}");
    assert!(
        status_of(&body).info["warning"].contains("could not unpin"),
        "{body}"
    );
    assert!(api.cluster.is_pinned(&e));
    let (code, _) = api.get(&format!("/pins/{on_d}")).await;
    assert_eq!(code, 404);
    *api.cluster.failing_unpins.lock().unwrap() = false;

    // Unknown id and bad body.
    let (code, body) = api
        .post(
            "/pins/01ARZ3NDEKTSV4RRFFQ69G5FAV",
            json!({"cid": d.to_string()}),
        )
        .await;
    assert_eq!(failure_reason(code, &body, 404), "NOT_FOUND");
    let (code, body) = api
        .post(&format!("/pins/{keep}"), json!({"cid": "not-a-cid"}))
        .await;
    assert_eq!(failure_reason(code, &body, 400), "BAD_REQUEST");
    let (code, _) = api.get(&format!("/pins/{keep}")).await;
    assert_eq!(code, 200, "a rejected replacement leaves the request alone");
    api.stop().await;
}

#[tokio::test]
async fn list_filters() {
    let dir = tempfile::tempdir().unwrap();
    let api = Running::start(dir.path()).await;
    let cl = &api.cluster;
    let c_pinned = cid(10);
    let c_queued = cid(11);
    let c_pinning = cid(12);
    let c_failed = cid(13);
    let c_named = cid(14);
    let post = |c: cluster_types::Cid, name: &str, meta: serde_json::Value| {
        let body = json!({"cid": c.to_string(), "name": name, "meta": meta});
        let api = &api;
        async move {
            let (code, b) = api.post("/pins", body).await;
            assert_eq!(code, 202, "{b}");
            b["requestid"].as_str().unwrap().to_string()
        }
    };
    let id_pinned = post(c_pinned, "alpha", json!({"app": "x", "env": "prod"})).await;
    let id_queued = post(c_queued, "beta", json!({"app": "x"})).await;
    let id_pinning = post(c_pinning, "gamma", json!({})).await;
    let id_failed = post(c_failed, "delta", json!({"app": "y"})).await;
    let id_named = post(c_named, "My Report.PDF", json!({"app": "x", "env": "dev"})).await;
    cl.set_status(c_queued, TrackerStatus::PinQueued);
    cl.set_status(c_pinning, TrackerStatus::Pinning);
    cl.set_status(c_failed, TrackerStatus::PinError);

    let ids = |body: &serde_json::Value| -> Vec<String> {
        results_of(body)
            .results
            .into_iter()
            .map(|r| r.requestid)
            .collect()
    };
    let list = |q: &str| {
        let path = format!("/pins{q}");
        let api = &api;
        async move {
            let (code, body) = api.get(&path).await;
            assert_eq!(code, 200, "{path}: {body}");
            assert!(
                body["count"].is_u64() && body["results"].is_array(),
                "{body}"
            );
            body
        }
    };

    // Without a status filter only pinned requests are listed, newest first.
    let body = list("").await;
    assert_eq!(ids(&body), vec![id_named.clone(), id_pinned.clone()]);
    assert_eq!(body["count"], 2);

    let body = list("?status=queued,pinning").await;
    assert_eq!(ids(&body), vec![id_pinning.clone(), id_queued.clone()]);
    let body = list("?status=queued&status=pinning").await;
    assert_eq!(ids(&body), vec![id_pinning.clone(), id_queued.clone()]);
    let statuses: Vec<Status> = results_of(&body).results.iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![Status::Pinning, Status::Queued]);

    let body = list("?status=failed").await;
    assert_eq!(ids(&body), vec![id_failed.clone()]);
    let failed = &results_of(&body).results[0];
    assert!(
        failed.info["status_details"].contains("could not fetch the dag"),
        "{body}"
    );

    let all = "status=queued,pinning,pinned,failed";
    let body = list(&format!("?{all}")).await;
    assert_eq!(body["count"], 5);
    assert_eq!(
        ids(&body),
        vec![
            id_named.clone(),
            id_failed.clone(),
            id_pinning.clone(),
            id_queued.clone(),
            id_pinned.clone()
        ]
    );

    // Names.
    assert_eq!(
        ids(&list(&format!("?{all}&name=beta")).await),
        vec![id_queued.clone()]
    );
    assert!(ids(&list(&format!("?{all}&name=BETA")).await).is_empty());
    assert_eq!(
        ids(&list(&format!("?{all}&name=BETA&match=iexact")).await),
        vec![id_queued.clone()]
    );
    assert_eq!(
        ids(&list(&format!("?{all}&name=Report&match=partial")).await),
        vec![id_named.clone()]
    );
    assert!(ids(&list(&format!("?{all}&name=report&match=partial")).await).is_empty());
    assert_eq!(
        ids(&list(&format!("?{all}&name=report.pdf&match=ipartial")).await),
        vec![id_named.clone()]
    );
    assert_eq!(
        ids(&list(&format!("?{all}&name=My+Report.PDF")).await),
        vec![id_named.clone()]
    );
    assert_eq!(
        ids(&list(&format!("?{all}&name=My%20Report.PDF&match=exact")).await),
        vec![id_named.clone()]
    );
    assert!(
        ids(&list(&format!("?{all}&name=lph")).await).is_empty(),
        "exact is the default"
    );

    // Meta: every given pair must be present.
    let meta = |m: &str| format!("?{all}&meta={}", urlencode(m));
    assert_eq!(
        ids(&list(&meta(r#"{"app":"x"}"#)).await),
        vec![id_named.clone(), id_queued.clone(), id_pinned.clone()]
    );
    assert_eq!(
        ids(&list(&meta(r#"{"app":"x","env":"prod"}"#)).await),
        vec![id_pinned.clone()]
    );
    assert!(ids(&list(&meta(r#"{"app":"z"}"#)).await).is_empty());
    assert_eq!(list(&meta("{}")).await["count"], 5);

    // CIDs, comma list or repeated, combined with status.
    let body = list(&format!("?{all}&cid={c_pinned},{c_failed}")).await;
    assert_eq!(ids(&body), vec![id_failed.clone(), id_pinned.clone()]);
    let body = list(&format!("?{all}&cid={c_pinned}&cid={c_queued}")).await;
    assert_eq!(ids(&body), vec![id_queued.clone(), id_pinned.clone()]);
    let body = list(&format!("?cid={c_pinned},{c_failed}")).await;
    assert_eq!(
        ids(&body),
        vec![id_pinned.clone()],
        "default status applies to cid lookups too"
    );
    assert_eq!(list(&format!("?{all}&cid={}", cid(999))).await["count"], 0);

    // Creation window, limit, and count against the page.
    let created: Vec<String> = results_of(&list(&format!("?{all}")).await)
        .results
        .iter()
        .map(|r| r.created.clone())
        .collect();
    // created[0] is the newest (named), created[4] the oldest (pinned).
    let body = list(&format!("?{all}&before={}", urlencode(&created[1]))).await;
    assert_eq!(
        ids(&body),
        vec![id_pinning.clone(), id_queued.clone(), id_pinned.clone()]
    );
    let body = list(&format!("?{all}&after={}", urlencode(&created[3]))).await;
    assert_eq!(
        ids(&body),
        vec![id_named.clone(), id_failed.clone(), id_pinning.clone()]
    );
    let body = list(&format!(
        "?{all}&after={}&before={}",
        urlencode(&created[4]),
        urlencode(&created[0])
    ))
    .await;
    assert_eq!(
        ids(&body),
        vec![id_failed.clone(), id_pinning.clone(), id_queued.clone()]
    );
    let body = list(&format!(
        "?{all}&after={}&before={}",
        urlencode(&created[0]),
        urlencode(&created[4])
    ))
    .await;
    assert_eq!(body["count"], 0);
    let body = list(&format!("?{all}&limit=2")).await;
    assert_eq!(body["count"], 5);
    assert_eq!(ids(&body), vec![id_named.clone(), id_failed.clone()]);
    let body = list("?status=queued,pinning,failed&limit=1").await;
    assert_eq!(body["count"], 3);
    assert_eq!(ids(&body), vec![id_failed.clone()]);

    // A CID removed from the cluster behind the service's back shows as failed, and the
    // delegates fall back to this peer's IPFS node.
    cl.pins.lock().unwrap().remove(&c_pinned);
    let (code, body) = api.get(&format!("/pins/{id_pinned}")).await;
    assert_eq!(code, 200);
    let st = status_of(&body);
    assert_eq!(st.status, Status::Failed);
    assert_eq!(st.delegates, vec![FALLBACK_DELEGATE]);
    assert!(st.info.contains_key("status_details"));

    // A failing cluster status lookup is an error, not a wrong answer.
    *cl.failing_status.lock().unwrap() = true;
    let (code, body) = api.get("/pins").await;
    assert_eq!(failure_reason(code, &body, 503), "SERVICE_UNAVAILABLE");
    let (code, body) = api.get(&format!("/pins/{id_named}")).await;
    assert_eq!(failure_reason(code, &body, 503), "SERVICE_UNAVAILABLE");
    // Listing everything needs no lookups for the requests left off the page... but the page
    // itself still needs them.
    let (code, _) = api.get(&format!("/pins?{all}&limit=1")).await;
    assert_eq!(code, 503);
    api.stop().await;
}

#[tokio::test]
async fn pagination_over_250_requests() {
    let dir = tempfile::tempdir().unwrap();
    let api = Arc::new(Running::start(dir.path()).await);
    let mut created_ids = Vec::new();
    // Concurrent creation: ids and creation times must still be unique and ordered.
    for batch in 0..25u32 {
        let mut tasks = Vec::new();
        for i in 0..10u32 {
            let api = Arc::clone(&api);
            tasks.push(tokio::spawn(async move {
                api.create(&cid(batch * 10 + i), "bulk").await
            }));
        }
        for t in tasks {
            created_ids.push(t.await.unwrap());
        }
    }
    assert_eq!(created_ids.iter().collect::<HashSet<_>>().len(), 250);
    let mut newest_first = created_ids.clone();
    newest_first.sort();
    newest_first.reverse();

    // Walk back with `before`, as the spec describes: once with the default status filter
    // (a status lookup per request) and once with every status (counted from the index).
    let mut seen: Vec<PinStatus> = Vec::new();
    for statuses in ["", "&status=queued,pinning,pinned,failed"] {
        seen.clear();
        let mut path = format!("/pins?limit=100{statuses}");
        let mut pages = 0;
        loop {
            let (code, body) = api.get(&path).await;
            assert_eq!(code, 200, "{body}");
            let page = results_of(&body);
            assert_eq!(
                page.count as usize,
                250 - seen.len(),
                "count covers every remaining match"
            );
            if page.results.is_empty() {
                break;
            }
            pages += 1;
            assert!(page.results.len() <= 100);
            let oldest = page.results.last().unwrap().created.clone();
            seen.extend(page.results);
            path = format!("/pins?limit=100{statuses}&before={}", urlencode(&oldest));
        }
        assert_eq!(pages, 3);
        let got: Vec<String> = seen.iter().map(|s| s.requestid.clone()).collect();
        assert_eq!(got, newest_first, "no duplicates, no gaps, newest first");
        let times: Vec<Timestamp> = seen
            .iter()
            .map(|s| Timestamp::parse(&s.created).unwrap())
            .collect();
        assert!(
            times.windows(2).all(|w| w[0] > w[1]),
            "created strictly decreasing"
        );
    }

    // `after` counts exactly the newer requests, and pages backwards inside a window.
    for k in [0usize, 1, 99, 100, 249] {
        let mark = urlencode(&seen[k].created);
        let (_, body) = api.get(&format!("/pins?limit=1000&after={mark}")).await;
        let page = results_of(&body);
        assert_eq!(page.count as usize, k, "requests newer than #{k}");
        let ids: Vec<&String> = page.results.iter().map(|s| &s.requestid).collect();
        assert_eq!(ids, newest_first[..k].iter().collect::<Vec<_>>());
    }
    let (lo, hi) = (urlencode(&seen[200].created), urlencode(&seen[10].created));
    let mut window = Vec::new();
    let mut path = format!("/pins?limit=50&after={lo}&before={hi}");
    loop {
        let (_, body) = api.get(&path).await;
        let page = results_of(&body);
        if page.results.is_empty() {
            break;
        }
        let oldest = urlencode(&page.results.last().unwrap().created);
        window.extend(page.results.into_iter().map(|s| s.requestid));
        path = format!("/pins?limit=50&after={lo}&before={oldest}");
    }
    assert_eq!(window, newest_first[11..200].to_vec());

    // The same listing is stable when asked twice.
    let (_, a) = api.get("/pins?limit=1000").await;
    let (_, b) = api.get("/pins?limit=1000").await;
    assert_eq!(a, b);
    assert_eq!(results_of(&a).results.len(), 250);
    Arc::try_unwrap(api)
        .ok()
        .expect("no other handle")
        .stop()
        .await;
}

#[tokio::test]
async fn spec_shaped_errors() {
    let dir = tempfile::tempdir().unwrap();
    let api = Running::start(dir.path()).await;
    let c = cid(1);

    // Bad bodies.
    for body in [
        json!({"cid": "not-a-cid"}),
        json!({"name": "no cid"}),
        json!({"cid": c.to_string(), "meta": {"n": 1}}),
        json!({"cid": c.to_string(), "meta": ["a"]}),
        json!({"cid": c.to_string(), "origins": ["not a multiaddr"]}),
        json!({"cid": c.to_string(), "origins": (0..21).map(|i| format!("/ip4/10.0.0.{i}/tcp/1")).collect::<Vec<_>>()}),
        json!({"cid": c.to_string(), "name": "x".repeat(256)}),
        json!({"cid": 5}),
        json!([1, 2]),
    ] {
        let (code, resp) = api.post("/pins", body.clone()).await;
        assert_eq!(failure_reason(code, &resp, 400), "BAD_REQUEST", "{body}");
    }
    for raw in ["{", "", "null", "cid=abc"] {
        let resp = api
            .http
            .post(api.url("/pins"))
            .header("content-type", "application/json")
            .body(raw.to_string())
            .send()
            .await
            .unwrap();
        let (code, body) = common::decode(resp).await;
        assert_eq!(failure_reason(code, &body, 400), "BAD_REQUEST", "{raw:?}");
    }
    assert!(
        api.cluster.calls.lock().unwrap().is_empty(),
        "nothing reached the cluster"
    );

    // Oversized body.
    let huge = json!({"cid": c.to_string(), "name": "n", "meta": {"blob": "x".repeat(2 << 20)}});
    let (code, body) = api.post("/pins", huge).await;
    assert_eq!(failure_reason(code, &body, 413), "PAYLOAD_TOO_LARGE");

    // Bad list queries.
    let eleven: Vec<String> = (0..11).map(|i| cid(i).to_string()).collect();
    for q in [
        "limit=0".to_string(),
        "limit=1001".to_string(),
        "limit=abc".to_string(),
        "status=done".to_string(),
        "status=pinned,nope".to_string(),
        "match=fuzzy".to_string(),
        "meta=notjson".to_string(),
        format!("meta={}", urlencode(r#"{"a":1}"#)),
        "before=yesterday".to_string(),
        "after=2020-01-01".to_string(),
        "cid=nope".to_string(),
        format!("cid={}", eleven.join(",")),
        format!("name={}", "n".repeat(256)),
    ] {
        let (code, body) = api.get(&format!("/pins?{q}")).await;
        assert_eq!(failure_reason(code, &body, 400), "BAD_REQUEST", "{q}");
    }
    let (code, _) = api.get("/pins?limit=1000&limit=5&unknown=x").await;
    assert_eq!(code, 200);

    // Unknown ids (well-formed or not), unknown paths, wrong methods.
    for id in [
        "01ARZ3NDEKTSV4RRFFQ69G5FAV",
        "nope",
        &c.to_string(),
        "%E2%9C%93",
    ] {
        let (code, body) = api.get(&format!("/pins/{id}")).await;
        assert_eq!(failure_reason(code, &body, 404), "NOT_FOUND", "{id}");
    }
    let (code, body) = api.get("/pins/a/b").await;
    assert_eq!(failure_reason(code, &body, 404), "NOT_FOUND");
    let (code, body) = api.get("/").await;
    assert_eq!(failure_reason(code, &body, 404), "NOT_FOUND");
    let resp = api.http.put(api.url("/pins")).send().await.unwrap();
    assert_eq!(resp.headers()["allow"], "GET, POST");
    let (code, body) = common::decode(resp).await;
    assert_eq!(failure_reason(code, &body, 405), "METHOD_NOT_ALLOWED");
    let resp = api.http.patch(api.url("/pins/xyz")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    assert_eq!(resp.headers()["content-type"], "application/json");

    // Cluster failures keep the index consistent.
    api.cluster.failing_pins.lock().unwrap().insert(c);
    let (code, body) = api.post("/pins", json!({"cid": c.to_string()})).await;
    assert_eq!(failure_reason(code, &body, 500), "INTERNAL_SERVER_ERROR");
    let (_, body) = api.get("/pins?status=queued,pinning,pinned,failed").await;
    assert_eq!(body["count"], 0, "a failed pin leaves no request behind");
    api.cluster.failing_pins.lock().unwrap().clear();

    let id = api.create(&c, "").await;
    *api.cluster.failing_unpins.lock().unwrap() = true;
    let (code, body) = api.delete(&format!("/pins/{id}")).await;
    assert_eq!(failure_reason(code, &body, 500), "INTERNAL_SERVER_ERROR");
    let (code, _) = api.get(&format!("/pins/{id}")).await;
    assert_eq!(code, 200, "the request stays so the client can retry");
    *api.cluster.failing_unpins.lock().unwrap() = false;
    let (code, _) = api.delete(&format!("/pins/{id}")).await;
    assert_eq!(code, 202);

    // Deleting a request whose CID someone else already unpinned still succeeds.
    let id = api.create(&c, "").await;
    api.cluster.pins.lock().unwrap().clear();
    let (code, _) = api.delete(&format!("/pins/{id}")).await;
    assert_eq!(code, 202);
    api.stop().await;
}

#[tokio::test]
async fn chunked_bodies_health_and_headers() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cluster_pinsvc::PinSvcConfig {
        headers: [("X-Served-By".to_string(), "pinsvc-test".to_string())].into(),
        ..Default::default()
    };
    let api = Running::start_with(dir.path(), Arc::new(FakeCluster::default()), cfg).await;
    let body = format!(r#"{{"cid":"{}","name":"streamed"}}"#, cid(5));
    let chunks: Vec<Result<String, std::io::Error>> = body
        .as_bytes()
        .chunks(7)
        .map(|c| Ok(String::from_utf8(c.to_vec()).unwrap()))
        .collect();
    let resp = api
        .http
        .post(api.url("/pins"))
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-served-by"], "pinsvc-test");
    let (code, body) = common::decode(resp).await;
    assert_eq!(code, 202, "{body}");
    assert_eq!(body["pin"]["name"], "streamed");

    let resp = api.http.get(api.url("/health")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    api.stop().await;
}

#[tokio::test]
async fn concurrent_create_and_delete_on_one_cid_never_orphan_a_request() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Arc::new(FakeCluster::default());
    // A slow unpin and a quick pin: without per-CID locking, a delete that decided to unpin
    // just before a create recorded its request would remove the create's pin afterwards.
    *cluster.unpin_delay.lock().unwrap() = Duration::from_millis(30);
    *cluster.pin_delay.lock().unwrap() = Duration::from_millis(1);
    let api = Arc::new(Running::start_with(dir.path(), cluster, Default::default()).await);
    for round in 0..10 {
        let c = cid(1000 + round);
        let old = api.create(&c, "old").await;
        let deleter = {
            let api = Arc::clone(&api);
            tokio::spawn(async move { api.delete(&format!("/pins/{old}")).await.0 })
        };
        let creator = {
            let api = Arc::clone(&api);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                api.create(&c, "new").await
            })
        };
        assert_eq!(deleter.await.unwrap(), 202);
        let new = creator.await.unwrap();
        assert!(
            api.cluster.is_pinned(&c),
            "round {round}: request {new} exists but its cid was unpinned"
        );
    }
    Arc::try_unwrap(api)
        .ok()
        .expect("no other handle")
        .stop()
        .await;
}

/// Percent-encodes everything but unreserved characters.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
