//! A real daemon with HTTPS and basic auth on the REST API, auth on the Pinning Service API,
//! driven by reqwest and by ipfs-cluster-ctl (flags and CLUSTER_CREDENTIALS).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output};
use std::time::Duration;

use cluster_tests::{Peer, bin, free_port, ok_stdout};
use serde_json::{Value, json};

const USER: &str = "admin";
const PASS: &str = "hunter2";

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

fn call(rt: &tokio::runtime::Runtime, req: reqwest::RequestBuilder) -> Answer {
    rt.block_on(async {
        let resp = req.send().await.expect("request");
        Answer {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            body: resp.text().await.unwrap(),
        }
    })
}

fn ctl(peer: &Peer, args: &[&str], credentials: Option<&str>) -> Output {
    let mut cmd = Command::new(bin("ipfs-cluster-ctl"));
    cmd.args(["--host", &peer.host(), "--timeout", "30"])
        .args(args)
        .env_remove("CLUSTER_CREDENTIALS");
    if let Some(c) = credentials {
        cmd.env("CLUSTER_CREDENTIALS", c);
    }
    cmd.output().expect("run ipfs-cluster-ctl")
}

fn failed_with(out: &Output, code: i32) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout={} stderr={stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

#[test]
fn secured_daemon_with_ctl() {
    let mut peer = Peer::init(&[]).unwrap();
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    std::fs::write(peer.path().join("tls-cert.pem"), ck.cert.pem()).unwrap();
    std::fs::write(peer.path().join("tls-key.pem"), ck.key_pair.serialize_pem()).unwrap();
    let pinsvc_port = free_port();
    peer.edit_config(|cfg| {
        let rest = &mut cfg["api"]["restapi"];
        rest["ssl_cert_file"] = json!("tls-cert.pem");
        rest["ssl_key_file"] = json!("tls-key.pem");
        rest["basic_auth_credentials"] = json!({ USER: PASS });
        cfg["api"]["pinsvcapi"] = json!({
            "http_listen_multiaddress": format!("/ip4/127.0.0.1/tcp/{pinsvc_port}"),
            "basic_auth_credentials": { USER: PASS },
        });
    })
    .unwrap();
    peer.use_https();
    peer.start().unwrap();

    // The TLS port refuses plain HTTP.
    let mut plain = TcpStream::connect(("127.0.0.1", peer.rest_port)).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    plain
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    let _ = plain.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.0 400"), "{answer}");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let http = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let a = call(&rt, http.get(peer.url("/id")));
    assert_eq!(a.status, 401);
    assert_eq!(a.headers.get_all("www-authenticate").iter().count(), 2);
    let a = call(
        &rt,
        http.post(peer.url("/token")).basic_auth(USER, Some(PASS)),
    );
    assert_eq!(a.status, 200, "{}", a.body);
    let token: Value = serde_json::from_str(&a.body).unwrap();
    let a = call(
        &rt,
        http.get(peer.url("/version"))
            .bearer_auth(token["token"].as_str().unwrap()),
    );
    assert_eq!(a.status, 200, "{}", a.body);

    // ctl: credentials by flag imply HTTPS; by environment with --https.
    let creds = format!("{USER}:{PASS}");
    let id: Value = serde_json::from_str(&ok_stdout(&ctl(
        &peer,
        &[
            "--enc",
            "json",
            "--basic-auth",
            &creds,
            "--no-check-certificate",
            "id",
        ],
        None,
    )))
    .unwrap();
    assert!(!id["id"].as_str().unwrap().is_empty());
    ok_stdout(&ctl(
        &peer,
        &[
            "--https",
            "--no-check-certificate",
            "pin",
            "add",
            "--no-status",
            "bafkqaaa",
        ],
        Some(&creds),
    ));
    let out = ok_stdout(&ctl(
        &peer,
        &["--https", "--no-check-certificate", "pin", "ls"],
        Some(&creds),
    ));
    assert!(out.contains("bafkqaaa"), "{out}");
    // Missing or wrong credentials: the API's 401, exit code 2.
    let err = failed_with(
        &ctl(
            &peer,
            &["--https", "--no-check-certificate", "pin", "ls"],
            None,
        ),
        2,
    );
    assert!(err.contains("401"), "{err}");
    failed_with(
        &ctl(
            &peer,
            &["--https", "--no-check-certificate", "id"],
            Some("admin:wrong"),
        ),
        2,
    );
    // The self-signed certificate is refused unless told otherwise; plain HTTP is refused.
    failed_with(&ctl(&peer, &["id"], Some(&creds)), 1);
    assert!(
        !ctl(&peer, &["--force-http", "id"], Some(&creds))
            .status
            .success()
    );

    // The Pinning Service API asks for the same credentials, answering in its own error shape.
    let base = format!("http://127.0.0.1:{pinsvc_port}");
    assert!(cluster_tests::wait_until(
        Duration::from_secs(30),
        || cluster_tests::http_status("GET", &format!("{base}/health")) == Some(204)
    ));
    let a = call(&rt, http.get(format!("{base}/pins")));
    assert_eq!(a.status, 401, "{}", a.body);
    assert!(a.headers.contains_key("www-authenticate"));
    let failure: Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(failure["error"]["reason"], "UNAUTHORIZED", "{failure}");
    assert_eq!(
        call(
            &rt,
            http.get(format!("{base}/pins"))
                .basic_auth(USER, Some("nope"))
        )
        .status,
        401
    );
    assert_eq!(call(&rt, http.get(format!("{base}/health"))).status, 204);
    let a = call(
        &rt,
        http.post(format!("{base}/token"))
            .basic_auth(USER, Some(PASS)),
    );
    assert_eq!(a.status, 200, "{}", a.body);
    let token: Value = serde_json::from_str(&a.body).unwrap();
    let a = call(
        &rt,
        http.get(format!("{base}/pins"))
            .bearer_auth(token["token"].as_str().unwrap()),
    );
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(serde_json::from_str::<Value>(&a.body).unwrap()["count"], 0);
}
