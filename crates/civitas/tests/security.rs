//! A node with `[security] enabled`, end to end: the bootstrap admin token, local tokens
//! created and revoked through the CLI, no existence leak of a unit a caller may not see
//! (get, list, search, tree, its instances), the data plane's 401 with `WWW-Authenticate`
//! and 403, writes reserved to admins, a migration constraint that blocks a plan, and the
//! audit log.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use common::{Server, write_file};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(30);

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(20)).build().unwrap()
}

async fn origin() -> SocketAddr {
    let app = Router::new()
        .route(
            "/records",
            get(|headers: axum::http::HeaderMap| async move {
                // Says whether the caller's credentials reached the origin (they must not).
                format!("{{\"records\": [\"secret\"], \"auth\": {}}}", headers.contains_key("authorization"))
            }),
        )
        .route("/stations", get(|| async { "{\"stations\": [1, 2]}" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(250)).await;
                "{\"slow\": true}"
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn catalog(origin: SocketAddr) -> Value {
    let endpoint = format!("http://{origin}");
    json!([
        {"@type": "Site", "name": "urn:site:vienna", "version": "1", "tier": "cloud", "region": "eu", "jurisdiction": "AT"},
        {"@type": "Site", "name": "urn:site:melbourne", "version": "1", "tier": "cloud", "region": "au", "jurisdiction": "AU"},
        {"@type": "SiteLink", "name": "urn:link:vie-mel", "version": "1", "from": "urn:site:vienna",
         "to": "urn:site:melbourne", "latencyMs": 150},
        {"@type": "DataUnit", "name": "urn:city:health", "version": "1",
         "metainformation": {"type": "rest", "securityConstraints": [{"type": "rbac", "roles": ["doctor"]}]},
         "views": [{"name": "records", "link": "/records"},
                   {"name": "slow", "link": "/slow", "updateFrequency": {"period": "PT1H"},
                    "securityConstraints": [{"type": "rbac", "roles": ["doctor"]},
                                            {"type": "migration", "tiers": ["edge"]}]}]},
        {"@type": "DataInstance", "name": "urn:city:health:melbourne", "version": "1", "dataUnit": "urn:city:health",
         "site": "urn:site:melbourne", "endpoint": endpoint, "role": "origin"},
        {"@type": "DataUnit", "name": "urn:city:open", "version": "1",
         "metainformation": {"type": "rest", "securityConstraints": [{"type": "public"}]},
         "views": [{"name": "stations", "link": "/stations", "securityConstraints": [{"type": "public"}]}]},
        {"@type": "DataInstance", "name": "urn:city:open:melbourne", "version": "1", "dataUnit": "urn:city:open",
         "site": "urn:site:melbourne", "endpoint": endpoint, "role": "origin"}
    ])
}

async fn get_as(node: &Server, token: Option<&str>, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let mut req = http().get(format!("{}{path}", node.url));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    (status, headers, r.text().await.unwrap())
}

fn names(body: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    v["items"].as_array().unwrap().iter().map(|d| d["name"].as_str().unwrap().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secured_node_hides_what_a_caller_may_not_see_and_refuses_what_it_may_not_read() {
    let temp = tempfile::tempdir().unwrap();
    let config = write_file(
        temp.path(),
        "secure.toml",
        "[node]\nsite = \"urn:site:vienna\"\n\n[security]\nenabled = true\ncache_ttl_ms = 500\n\n\
         [migration]\ncooldown_seconds = 1\n",
    );
    let node = Server::start_in(&temp.path().join("data"), temp.path(), |cmd, addr| {
        cmd.arg("--config").arg(&config).arg("--listen").arg(addr.to_string());
    });
    let admin = std::fs::read_to_string(node.data_dir.join("security/admin.token")).expect("bootstrap admin token");
    let admin = admin.trim().to_string();
    let with_admin = |args: &[&str]| {
        let mut all = vec!["--token", admin.as_str()];
        all.extend_from_slice(args);
        node.civitas(&all).ok().to_string()
    };

    // Writes need an admin: anonymous 401, then the admin applies the catalog.
    let seed = write_file(temp.path(), "catalog.json", &catalog(origin().await).to_string());
    let refused = node.civitas(&["apply", "-f", seed.to_str().unwrap()]).fails_with(1).to_string();
    assert!(refused.contains("401"), "{refused}");
    with_admin(&["apply", "-f", seed.to_str().unwrap()]);
    let alice = with_admin(&["token", "create", "--subject", "alice", "--roles", "planner", "--ttl", "1h"]);
    let bob = with_admin(&["token", "create", "--subject", "bob", "--roles", "doctor"]);
    let (alice, bob) = (alice.trim().to_string(), bob.trim().to_string());
    let listed = with_admin(&["token", "list"]);
    assert!(listed.contains("alice") && listed.contains("bob") && listed.contains("planner"), "{listed}");

    // No existence leak: a hidden unit answers exactly like one that does not exist.
    let (status, _, hidden) = get_as(&node, Some(&alice), "/api/v1/units/urn:city:health").await;
    let (missing_status, _, missing) = get_as(&node, Some(&alice), "/api/v1/units/urn:city:nothing").await;
    assert_eq!((status, missing_status), (404, 404));
    let shape = |body: &str| {
        let mut v: Value = serde_json::from_str(body).unwrap();
        for k in ["detail", "instance"] {
            v.as_object_mut().unwrap().remove(k);
        }
        v
    };
    assert_eq!(shape(&hidden), shape(&missing), "{hidden} vs {missing}");
    assert!(!hidden.contains("doctor"), "the refusal does not tell why: {hidden}");
    for (path, what) in [
        ("/api/v1/units/urn:city:health/tree", "tree"),
        ("/api/v1/units/urn:city:health/versions", "versions"),
        ("/api/v1/instances/urn:city:health:melbourne", "instance"),
    ] {
        assert_eq!(get_as(&node, Some(&alice), path).await.0, 404, "{what}");
    }
    let (_, _, units) = get_as(&node, Some(&alice), "/api/v1/units").await;
    assert_eq!(names(&units), vec!["urn:city:open"]);
    let (_, _, found) = get_as(&node, Some(&alice), "/api/v1/search?q=health").await;
    assert!(names(&found).is_empty(), "{found}");
    let (_, _, instances) = get_as(&node, None, "/api/v1/instances").await;
    assert_eq!(names(&instances), vec!["urn:city:open:melbourne"], "anonymous callers see the public unit only");
    let (_, _, units) = get_as(&node, Some(&bob), "/api/v1/units").await;
    assert_eq!(names(&units), vec!["urn:city:health", "urn:city:open"]);
    assert_eq!(get_as(&node, Some(&bob), "/api/v1/units/urn:city:health/tree").await.0, 200);

    // The data plane: anonymous 401 with a challenge, alice 403, bob 200, public to all.
    let (status, headers, body) = get_as(&node, None, "/data/urn:city:health/records").await;
    assert_eq!(status, 401, "{body}");
    let challenge = headers.get("www-authenticate").expect("a challenge").to_str().unwrap();
    assert!(challenge.starts_with("Bearer realm=\"civitas\""), "{challenge}");
    let (status, _, body) = get_as(&node, Some(&alice), "/data/urn:city:health/records").await;
    assert_eq!(status, 403, "{body}");
    let (status, _, body) = get_as(&node, Some(&bob), "/data/urn:city:health/records").await;
    assert_eq!((status, body.contains("secret")), (200, true), "{body}");
    assert!(body.contains("\"auth\": false"), "the node's credentials never reach an origin: {body}");
    assert_eq!(get_as(&node, None, "/data/urn:city:open/stations").await.0, 200);
    // Bad credentials are refused even for a public view: a forged signature is 401
    // `invalid_token`, a token that is not even a JWT a 400.
    // One character inside the signature changed (not the last, whose spare bits would
    // make it malformed base64 rather than a bad signature).
    let mut forged: Vec<char> = bob.chars().collect();
    let at = forged.len() - 10;
    forged[at] = if forged[at] == 'A' { 'B' } else { 'A' };
    let forged: String = forged.into_iter().collect();
    let (status, headers, _) = get_as(&node, Some(&forged), "/data/urn:city:open/stations").await;
    assert_eq!(status, 401);
    assert!(headers.get("www-authenticate").unwrap().to_str().unwrap().contains("invalid_token"));
    assert_eq!(get_as(&node, Some("not-a-jwt"), "/data/urn:city:open/stations").await.0, 400);

    // Admin-only routes.
    assert_eq!(get_as(&node, Some(&alice), "/api/v1/sdd/status").await.0, 403);
    assert_eq!(get_as(&node, None, "/api/v1/watch").await.0, 401);

    // A migration constraint (tiers: edge) blocks moving the slow view to this cloud site.
    let mut activate = http()
        .post(format!("{}/api/v1/sdd/activate", node.url))
        .bearer_auth(&admin)
        .json(&json!({"triggers": ["response_time.p50 > 100ms min 3 cooldown 1s"], "confidence": "0.0..1.0"}))
        .send()
        .await
        .unwrap();
    assert_eq!(activate.status(), 200);
    activate = http().get(format!("{}/api/v1/migrations/events", node.url)).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(activate.status(), 200);
    let deadline = Instant::now() + DEADLINE;
    loop {
        get_as(&node, Some(&bob), "/data/urn:city:health/slow").await;
        let events = http().get(format!("{}/api/v1/migrations/events", node.url)).bearer_auth(&admin).send().await;
        let events: Value = events.unwrap().json().await.unwrap();
        let blocked = events["items"].as_array().unwrap().iter().find(|e| e["kind"] == "unresolved");
        if let Some(e) = blocked {
            let why = e["summary"].as_str().unwrap();
            assert!(why.contains("security") && why.contains("tier cloud is not allowed"), "{why}");
            assert!(
                events["items"].as_array().unwrap().iter().all(|e| e["kind"] != "execute" && e["kind"] != "escalated")
            );
            break;
        }
        assert!(Instant::now() < deadline, "no migration decision: {events:#}\n{}", node.log());
    }

    // Revocation holds from the next request.
    let id = {
        let listed: Value = serde_json::from_str(&with_admin(&["token", "list", "-o", "json"])).unwrap();
        listed["items"].as_array().unwrap().iter().find(|t| t["subject"] == "alice").unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    with_admin(&["token", "revoke", &id]);
    let (status, _, body) = get_as(&node, Some(&alice), "/api/v1/units").await;
    assert_eq!(status, 401, "{body}");

    // Every decision is in the audit log: alice's refusal on the health records among them.
    let audit = node.data_dir.join("audit/security.ndjson");
    let deadline = Instant::now() + DEADLINE;
    loop {
        let text = std::fs::read_to_string(&audit).unwrap_or_default();
        let denied = text.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).any(|r| {
            r.to_string().contains("alice")
                && r.to_string().contains("urn:city:health:records")
                && r.to_string().contains("deny")
        });
        if denied {
            break;
        }
        assert!(Instant::now() < deadline, "no audit record of alice's refusal in {}:\n{text}", audit.display());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_given_a_certificate_serves_https_only() {
    let temp = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let cert_pem = write_file(temp.path(), "cert.pem", &cert.cert.pem());
    let key_pem = write_file(temp.path(), "key.pem", &cert.signing_key.serialize_pem());
    let config = write_file(
        temp.path(),
        "tls.toml",
        &format!(
            "[security.tls]\ncert = {:?}\nkey = {:?}\n",
            cert_pem.display().to_string(),
            key_pem.display().to_string()
        ),
    );
    // The test helper probes readiness over plain HTTP; start the node and wait for its log line.
    let log = temp.path().join("tls.log");
    let addr: SocketAddr = ([127, 0, 0, 1], common::free_port()).into();
    let mut child = common::civitas_command()
        .args(["serve", "--data-dir"])
        .arg(temp.path().join("data"))
        .arg("--config")
        .arg(&config)
        .arg("--listen")
        .arg(addr.to_string())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(temp.path().join("tls.err")).unwrap())
        .spawn()
        .unwrap();
    let trusted = reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let deadline = Instant::now() + DEADLINE;
    let answer = loop {
        match trusted.get(format!("https://127.0.0.1:{}/healthz", addr.port())).send().await {
            Ok(r) => break r,
            Err(e) => {
                let err = std::fs::read_to_string(temp.path().join("tls.err")).unwrap_or_default();
                assert!(Instant::now() < deadline, "no HTTPS answer: {e}\n{err}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.unwrap(), "ok\n");
    // Plain HTTP on the same port gets no HTTP answer.
    let plain = http().get(format!("http://127.0.0.1:{}/healthz", addr.port())).send().await;
    assert!(plain.is_err() || plain.unwrap().status() != 200, "plain HTTP must not be served");
    // A client that does not trust the certificate is refused.
    assert!(http().get(format!("https://127.0.0.1:{}/healthz", addr.port())).send().await.is_err());
    let _ = child.kill();
    let _ = child.wait();
}

/// The directory `scripts/services.sh` starts (scripts/test.sh exports its URL). Under CI a
/// missing directory fails; elsewhere the test says how to start one and returns.
fn ldap_url() -> Option<String> {
    match std::env::var("CIVITAS_TEST_LDAP_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("CIVITAS_TEST_LDAP_URL is not set under CI (scripts/test.sh sets it)")
        }
        _ => {
            eprintln!("note: skipping; run `bash scripts/services.sh` and set CIVITAS_TEST_LDAP_URL");
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ldap_users_read_what_their_directory_groups_allow_through_the_node() {
    let Some(ldap) = ldap_url() else { return };
    let temp = tempfile::tempdir().unwrap();
    let config = write_file(
        temp.path(),
        "ldap.toml",
        &format!(
            "[security]\nenabled = true\n\n[security.ldap]\nurl = {ldap:?}\n\
             user_dn_template = \"uid={{user}},ou=people,dc=civitas,dc=test\"\n\
             group_base = \"ou=groups,dc=civitas,dc=test\"\n"
        ),
    );
    let node = Server::start_in(&temp.path().join("data"), temp.path(), |cmd, addr| {
        cmd.arg("--config").arg(&config).arg("--listen").arg(addr.to_string());
    });
    let admin = std::fs::read_to_string(node.data_dir.join("security/admin.token")).unwrap();
    let origin = origin().await;
    // The paper's Listing 1: a unit only members of a directory group may read.
    let docs = json!([
        {"@type": "Site", "name": "urn:site:city", "version": "1", "tier": "cloud", "region": "eu"},
        {"@type": "DataUnit", "name": "urn:city:plans", "version": "1",
         "metainformation": {"type": "rest", "securityConstraints": [
            {"type": "ldap", "url": ldap, "dn": "cn=planners,ou=groups,dc=civitas,dc=test"}]},
         "views": [{"name": "stations", "link": "/stations"}]},
        {"@type": "DataInstance", "name": "urn:city:plans:origin", "version": "1", "dataUnit": "urn:city:plans",
         "site": "urn:site:city", "endpoint": format!("http://{origin}"), "role": "origin"}
    ]);
    let seed = write_file(temp.path(), "plans.json", &docs.to_string());
    node.civitas(&["--token", admin.trim(), "apply", "-f", seed.to_str().unwrap()]).ok();
    let read = |user: &'static str, password: &'static str| {
        let url = format!("{}/data/urn:city:plans/stations", node.url);
        async move {
            let r = http().get(url).basic_auth(user, Some(password)).send().await.unwrap();
            r.status().as_u16()
        }
    };
    let deadline = Instant::now() + DEADLINE;
    while read("alice", "alice-password").await != 200 {
        assert!(Instant::now() < deadline, "alice (planners) never got in:\n{}", node.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(read("bob", "bob-password").await, 403, "bob is not a planner");
    assert_eq!(read("alice", "wrong-password").await, 401);
    assert_eq!(read("nobody", "x").await, 401, "unknown users are refused like wrong passwords");
    let units = http()
        .get(format!("{}/api/v1/units", node.url))
        .basic_auth("bob", Some("bob-password"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(names(&units).is_empty(), "bob may not know the unit exists: {units}");
}

/// A node serving HTTPS with `cert`, its readiness probed over TLS.
struct TlsNode {
    child: std::process::Child,
    url: String,
    log: std::path::PathBuf,
}

impl Drop for TlsNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_tls_node(
    dir: &std::path::Path,
    name: &str,
    ip: [u8; 4],
    config: &str,
    trusted: &reqwest::Client,
) -> TlsNode {
    let file = write_file(dir, &format!("{name}.toml"), config);
    let addr: SocketAddr = {
        let l = std::net::TcpListener::bind(SocketAddr::from((ip, 0))).unwrap();
        l.local_addr().unwrap()
    };
    let log = dir.join(format!("{name}.log"));
    let child = common::civitas_command()
        .args(["serve", "--data-dir"])
        .arg(dir.join(format!("data-{name}")))
        .arg("--config")
        .arg(&file)
        .arg("--listen")
        .arg(addr.to_string())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(dir.join(format!("{name}.err"))).unwrap())
        .spawn()
        .unwrap();
    let node = TlsNode { child, url: format!("https://{addr}"), log: dir.join(format!("{name}.err")) };
    let deadline = Instant::now() + DEADLINE;
    while trusted.get(format!("{}/readyz", node.url)).send().await.map(|r| r.status().as_u16()).unwrap_or(0) != 200 {
        let err = std::fs::read_to_string(&node.log).unwrap_or_default();
        assert!(Instant::now() < deadline, "{name} did not become ready over HTTPS:\n{err}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    node
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_talk_tls_follow_each_other_and_relocate_a_view_over_https() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "127.0.0.2".into()]).unwrap();
    let cert_pem = write_file(dir, "cert.pem", &cert.cert.pem());
    let key_pem = write_file(dir, "key.pem", &cert.signing_key.serialize_pem());
    let trusted = reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let tls = format!(
        "[security.tls]\ncert = {:?}\nkey = {:?}\n",
        cert_pem.display().to_string(),
        key_pem.display().to_string()
    );
    let ca = format!("peer_ca_file = {:?}\n", cert_pem.display().to_string());
    let m = start_tls_node(
        dir,
        "melbourne",
        [127, 0, 0, 1],
        &format!("[node]\nsite = \"urn:site:melbourne\"\n{ca}\n{tls}"),
        &trusted,
    )
    .await;
    let origin = origin().await;
    let docs = json!([
        {"@type": "Site", "name": "urn:site:vienna", "version": "1", "tier": "cloud", "region": "eu"},
        {"@type": "Site", "name": "urn:site:melbourne", "version": "1", "tier": "cloud", "region": "au"},
        {"@type": "SiteLink", "name": "urn:link:vie-mel", "version": "1", "from": "urn:site:vienna",
         "to": "urn:site:melbourne", "latencyMs": 150},
        {"@type": "DataUnit", "name": "urn:city:tls", "version": "1", "metainformation": {"type": "rest"},
         "views": [{"name": "slow", "link": "/slow", "updateFrequency": {"period": "PT1H"}}]},
        {"@type": "DataInstance", "name": "urn:city:tls:melbourne", "version": "1", "dataUnit": "urn:city:tls",
         "site": "urn:site:melbourne", "endpoint": format!("http://{origin}"), "role": "origin"}
    ]);
    let applied = trusted.post(format!("{}/api/v1/apply", m.url)).json(&docs).send().await.unwrap();
    assert!(applied.status().is_success(), "{}", applied.text().await.unwrap());
    let v = start_tls_node(
        dir,
        "vienna",
        [127, 0, 0, 2],
        &format!(
            "[node]\nsite = \"urn:site:vienna\"\npeers = [{{ name = \"melbourne\", url = \"{}\" }}]\n{ca}\n\
             [migration]\ncooldown_seconds = 1\n\n{tls}",
            m.url
        ),
        &trusted,
    )
    .await;
    // V follows M's catalog over HTTPS: M's unit is readable through V.
    let read = || async {
        let r = trusted.get(format!("{}/data/urn:city:tls/slow", v.url)).send().await.unwrap();
        let instance = r.headers().get("x-civitas-instance").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        (r.status().as_u16(), instance)
    };
    let deadline = Instant::now() + DEADLINE;
    while read().await.0 != 200 {
        assert!(Instant::now() < deadline, "V never routed M's unit:\n{}", std::fs::read_to_string(&v.log).unwrap());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The view moves to V: the copy is pulled from M over HTTPS, the replica registered at
    // M over HTTPS, and V's data plane reaches the replica at its https endpoint.
    let activated = trusted
        .post(format!("{}/api/v1/sdd/activate", v.url))
        .json(&json!({"triggers": ["response_time.p50 > 100ms min 3 cooldown 1s"], "confidence": "0.0..1.0"}))
        .send()
        .await
        .unwrap();
    assert_eq!(activated.status(), 200);
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (status, instance) = read().await;
        assert_eq!(status, 200);
        if instance == "urn:city:tls:replica:vienna:slow" {
            break;
        }
        if Instant::now() > deadline {
            let events = trusted.get(format!("{}/api/v1/migrations/events", v.url)).send().await.unwrap();
            panic!(
                "the view never moved over TLS: {}\n{}",
                events.text().await.unwrap(),
                std::fs::read_to_string(&v.log).unwrap()
            );
        }
    }
    let replica =
        trusted.get(format!("{}/api/v1/instances/urn:city:tls:replica:vienna:slow", m.url)).send().await.unwrap();
    let replica: Value = replica.json().await.unwrap();
    assert!(replica["endpoint"].as_str().unwrap().starts_with("https://127.0.0.2:"), "{replica}");
}

/// Kills the stand-alone proxy when the test ends, however it ends.
struct ProxyProcess(std::process::Child);

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standalone_proxy_enforces_the_reads_its_node_decides() {
    let temp = tempfile::tempdir().unwrap();
    let config = write_file(temp.path(), "secure.toml", "[security]\nenabled = true\ncache_ttl_ms = 300\n");
    let node = Server::start_in(&temp.path().join("data"), temp.path(), |cmd, addr| {
        cmd.arg("--config").arg(&config).arg("--listen").arg(addr.to_string());
    });
    let admin = std::fs::read_to_string(node.data_dir.join("security/admin.token")).unwrap().trim().to_string();
    let with_admin = |args: &[&str]| {
        let mut all = vec!["--token", admin.as_str()];
        all.extend_from_slice(args);
        node.civitas(&all).ok().to_string()
    };
    let seed = write_file(temp.path(), "catalog.json", &catalog(origin().await).to_string());
    with_admin(&["apply", "-f", seed.to_str().unwrap()]);
    let alice = with_admin(&["token", "create", "--subject", "alice", "--roles", "planner"]).trim().to_string();
    let bob = with_admin(&["token", "create", "--subject", "bob", "--roles", "doctor"]).trim().to_string();

    // The proxy follows the node and asks it about reads with its own token: an admin
    // (asks for decisions) that may see the units it serves (doctor).
    let token = with_admin(&["token", "create", "--subject", "proxy-1", "--roles", "admin,doctor"]).trim().to_string();
    let proxy_config = write_file(
        temp.path(),
        "proxy.toml",
        &format!("[node]\npeer_token = {token:?}\n\n[security]\ncache_ttl_ms = 300\n"),
    );
    let port = common::free_port();
    let log = std::fs::File::create(temp.path().join("proxy.log")).unwrap();
    let _proxy = ProxyProcess(
        std::process::Command::new(common::BIN)
            .args(["proxy", "--catalog", &node.url, "--listen", &format!("127.0.0.1:{port}")])
            .arg("--config")
            .arg(&proxy_config)
            .env_remove("CIVITAS_CONFIG")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let proxy = format!("http://127.0.0.1:{port}");
    let read = |token: Option<String>| {
        let url = format!("{proxy}/data/urn:city:health/records");
        async move {
            let mut req = http().get(&url);
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            match req.send().await {
                Ok(r) => {
                    let (status, headers) = (r.status().as_u16(), r.headers().clone());
                    (status, headers, r.text().await.unwrap_or_default())
                }
                Err(e) => (0, Default::default(), e.to_string()),
            }
        }
    };
    let deadline = Instant::now() + DEADLINE;
    while read(Some(bob.clone())).await.0 != 200 {
        assert!(Instant::now() < deadline, "the proxy never served bob: {:?}\n{}", read(Some(bob.clone())).await, {
            std::fs::read_to_string(temp.path().join("proxy.log")).unwrap_or_default()
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The node's rules at the proxy: anonymous 401 with the node's challenge, alice 403,
    // bob 200 — and the client's credentials do not reach the origin.
    let (status, headers, body) = read(None).await;
    assert_eq!(status, 401, "{body}");
    assert!(headers.get("www-authenticate").unwrap().to_str().unwrap().starts_with("Bearer realm=\"civitas\""));
    let (status, _, body) = read(Some(alice.clone())).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("alice") && body.contains("rbac"), "the node's reason: {body}");
    let (status, _, body) = read(Some(bob.clone())).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"auth\": false"), "credentials never reach an origin: {body}");
    let mut forged: Vec<char> = bob.chars().collect();
    let at = forged.len() - 10;
    forged[at] = if forged[at] == 'A' { 'B' } else { 'A' };
    assert_eq!(read(Some(forged.into_iter().collect())).await.0, 401, "a forged signature");

    // Revoked at the node: refused at the proxy once its cached decision expires.
    let listed: Value = serde_json::from_str(&with_admin(&["token", "list", "-o", "json"])).unwrap();
    let id = listed["items"].as_array().unwrap().iter().find(|t| t["subject"] == "bob").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    with_admin(&["token", "revoke", &id]);
    let revoked = Instant::now();
    while read(Some(bob.clone())).await.0 != 401 {
        assert!(Instant::now() < deadline, "the proxy still serves a revoked token");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(revoked.elapsed() < Duration::from_secs(10), "took {:?}", revoked.elapsed());
}
