//! The data plane and the SDD API of a real `civitas serve` (and of a stand-alone
//! `civitas proxy`), in front of a real HTTP upstream started by the test.

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Request;
use axum::routing::get;
use common::{BIN, Server, free_port, write_file};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(20);

/// An upstream that answers every GET with what it received.
async fn upstream() -> SocketAddr {
    let app = Router::new().fallback(get(|req: Request| async move {
        let via = req.headers().get("via").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let xff = req.headers().get("x-forwarded-for").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let site = req.headers().get("x-civitas-client-site").is_some();
        axum::Json(json!({
            "path": req.uri().path(),
            "query": req.uri().query(),
            "via": via,
            "xForwardedFor": xff,
            "sawClientSiteHeader": site,
        }))
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn catalog_file(dir: &std::path::Path, upstream: SocketAddr) -> std::path::PathBuf {
    let docs = json!([
        {"@type": "Site", "name": "urn:site:test", "version": "1", "tier": "fog", "region": "test"},
        {"@type": "DataUnit", "name": "urn:city:buildings", "version": "1", "metainformation": {"type": "rest"},
         "views": [{"name": "blocks", "link": "/blocks"}]},
        {"@type": "DataInstance", "name": "urn:city:buildings-origin", "version": "1", "dataUnit": "urn:city:buildings",
         "site": "urn:site:test", "endpoint": format!("http://{upstream}")}
    ]);
    write_file(dir, "catalog.json", &docs.to_string())
}

/// GETs `url` until it answers 200 (the route table follows the catalog asynchronously).
async fn get_until_ok(http: &reqwest::Client, url: &str) -> Value {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Ok(r) = http.get(url).send().await
            && r.status() == 200
        {
            return r.json().await.unwrap();
        }
        assert!(Instant::now() < deadline, "{url} did not answer 200 within {DEADLINE:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `civitas sdd <args> -o json` until `check` holds.
fn sdd_until(server: &Server, args: &[&str], check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let mut all = vec!["sdd"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-o", "json"]);
        let out: Value = serde_json::from_str(server.civitas(&all).ok()).unwrap();
        if check(&out) {
            return out;
        }
        assert!(Instant::now() < deadline, "sdd {args:?} never satisfied the check; last: {out:#}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reverse_and_forward_modes_route_to_catalogued_instances_and_feed_the_analyzers() {
    let upstream = upstream().await;
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let file = catalog_file(dir.path(), upstream);
    server.civitas(&["apply", "-f", file.to_str().unwrap()]).ok();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();

    // Reverse mode: endpoint + view link + rest of the path + query.
    let echo =
        get_until_ok(&http, &format!("{}/data/urn:city:buildings/blocks/district/3?year=2017", server.url)).await;
    assert_eq!(echo["path"], "/blocks/district/3");
    assert_eq!(echo["query"], "year=2017");
    assert!(echo["via"].as_str().unwrap().contains("civitas"), "{echo}");
    assert_eq!(echo["xForwardedFor"], "127.0.0.1");
    // The view's own resource, with and without a trailing slash.
    let echo = get_until_ok(&http, &format!("{}/data/urn:city:buildings/blocks", server.url)).await;
    assert_eq!(echo["path"], "/blocks");
    let echo = get_until_ok(&http, &format!("{}/data/urn:city:buildings/blocks/", server.url)).await;
    assert_eq!(echo["path"], "/blocks/", "a trailing slash is kept");

    // Forward mode: the client keeps its URL and uses the node as its HTTP proxy.
    let via_proxy = reqwest::Client::builder()
        .proxy(reqwest::Proxy::http(&server.url).unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let r = via_proxy
        .get(format!("http://{upstream}/blocks/x?y=1"))
        .header("x-civitas-client-site", "urn:site:test")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let echo: Value = r.json().await.unwrap();
    assert_eq!((echo["path"].as_str(), echo["query"].as_str()), (Some("/blocks/x"), Some("y=1")));
    assert_eq!(echo["sawClientSiteHeader"], false, "the client-site header is not forwarded");

    // A shell with HTTP_PROXY set to the node (as legacy clients use it) still drives the
    // node with the CLI: the CLI never goes through an environment proxy.
    let mut cmd = common::civitas_command();
    cmd.args(["--server", &server.url, "get", "units", "-o", "json"])
        .env("HTTP_PROXY", &server.url)
        .env("http_proxy", &server.url)
        .env("ALL_PROXY", &server.url);
    let units = common::run(cmd).ok().to_string();
    assert!(units.contains("urn:city:buildings"), "{units}");

    // Not an open proxy: a host that is no instance's endpoint is refused.
    let r = via_proxy.get("http://127.0.0.1:9/anything").send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    // An unknown view in reverse mode.
    let r = http.get(format!("{}/data/urn:city:buildings/nope", server.url)).send().await.unwrap();
    assert_eq!(r.status(), 404);

    // SDD: a malformed trigger is refused with its position, and nothing is activated.
    let err = server.civitas(&["sdd", "activate", "--trigger", "response_time.p50 >> 3s"]).fails_with(1).to_string();
    assert!(err.contains("column"), "{err}");
    let status: Value = serde_json::from_str(server.civitas(&["sdd", "status", "-o", "json"]).ok()).unwrap();
    assert_eq!(status["active"], false);

    // The analyzers have seen the requests above; a trigger on the sample count fires.
    server.civitas(&["sdd", "activate", "--trigger", "samples >= 3 min 3", "--confidence", "0.8..1.0"]).ok();
    for _ in 0..3 {
        get_until_ok(&http, &format!("{}/data/urn:city:buildings/blocks/", server.url)).await;
    }
    let events = sdd_until(&server, &["events"], |e| {
        e["events"].as_array().is_some_and(|ev| ev.iter().any(|x| x["kind"] == "fired"))
    });
    let fired = events["events"].as_array().unwrap().iter().find(|x| x["kind"] == "fired").unwrap().clone();
    assert_eq!(fired["view"], "urn:city:buildings:blocks");
    let status = sdd_until(&server, &["status"], |s| s["views"].as_array().is_some_and(|v| !v.is_empty()));
    assert_eq!(status["active"], true);
    assert!(status["views"].as_array().unwrap().iter().any(|v| v["view"] == "urn:city:buildings:blocks"));
    assert!(server.log().contains("migration candidate"), "the candidate reached the bus:\n{}", server.log());

    // A bad confidence interval through the API names the field.
    let r = http
        .post(format!("{}/api/v1/sdd/activate", server.url))
        .json(&json!({"triggers": ["samples > 1"], "confidence": "0.9..0.1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let problem: Value = r.json().await.unwrap();
    assert_eq!(problem["errors"][0]["pointer"], "/confidence");

    server.civitas(&["sdd", "deactivate"]).ok();
    let status: Value = serde_json::from_str(server.civitas(&["sdd", "status", "-o", "json"]).ok()).unwrap();
    assert_eq!(status["active"], false);

    let metrics = http.get(format!("{}/metrics", server.url)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("civitas_dataplane_"), "data plane metrics are exported");
    assert!(metrics.contains("civitas_ledger_entries"), "ledger size is exported");
    assert!(
        metrics.contains("civitas_ledger_witness_alarms{kind=\"fork\"} 0"),
        "witness alarms are exported:\n{metrics}"
    );
}

/// Kills the child on drop.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standalone_proxy_follows_the_node_and_reports_its_observations() {
    let upstream = upstream().await;
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let file = catalog_file(dir.path(), upstream);
    server.civitas(&["apply", "-f", file.to_str().unwrap()]).ok();

    let port = free_port();
    let log = std::fs::File::create(dir.path().join("proxy.log")).unwrap();
    let _proxy = Guard(
        Command::new(BIN)
            .args(["proxy", "--catalog", &server.url, "--listen", &format!("127.0.0.1:{port}")])
            .env_remove("CIVITAS_CONFIG")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let echo = get_until_ok(&http, &format!("http://127.0.0.1:{port}/data/urn:city:buildings/blocks/a")).await;
    assert_eq!(echo["path"], "/blocks/a");

    // The proxy's observation reaches the node's analyzers.
    sdd_until(&server, &["status"], |s| {
        s["views"].as_array().is_some_and(|v| v.iter().any(|x| x["view"] == "urn:city:buildings:blocks"))
    });

    let metrics = http.get(format!("http://127.0.0.1:{port}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("civitas_dataplane_requests_total"), "{metrics}");
    assert!(metrics.contains("civitas_proxy_observations_unreported_total 0"), "{metrics}");

    // A change in the node's catalog reaches the proxy: delete the instance, the view stops routing.
    server.civitas(&["delete", "instance", "urn:city:buildings-origin"]).ok();
    let deadline = Instant::now() + DEADLINE;
    loop {
        let r = http.get(format!("http://127.0.0.1:{port}/data/urn:city:buildings/blocks/a")).send().await.unwrap();
        if r.status() == 503 {
            break;
        }
        assert!(Instant::now() < deadline, "the proxy still routes a deleted instance (status {})", r.status());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
