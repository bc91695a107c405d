//! The node's HTTP API (docs/api.md), exercised with a real HTTP client against a real
//! `civitas serve`.

mod common;

use std::time::Duration;

use common::{Server, write_file};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn unit(name: &str, version: &str, views: &[&str]) -> Value {
    json!({
        "@type": "DataUnit", "name": name, "version": version,
        "metainformation": {"type": "rest"},
        "views": views.iter().map(|v| json!({"name": format!("{name}:{v}"), "link": format!("/{v}/")})).collect::<Vec<_>>(),
    })
}

fn site(name: &str) -> Value {
    json!({"@type": "Site", "name": name, "version": "1.0", "tier": "edge", "region": "Vienna"})
}

fn instance(name: &str, unit: &str, views: &[&str], site: &str) -> Value {
    json!({"@type": "DataInstance", "name": name, "version": "1.0", "dataUnit": unit, "views": views, "site": site})
}

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    fn new(server: &Server) -> Api {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
        Api { http, base: server.url.clone() }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.unwrap()
    }

    async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.http.post(self.url(path)).json(body).send().await.unwrap()
    }

    async fn raw(&self, path: &str, content_type: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.http.post(self.url(path)).header("content-type", content_type).body(body).send().await.unwrap()
    }

    /// POST, expecting 2xx; the apply report.
    async fn apply(&self, path: &str, body: &Value) -> Value {
        let resp = self.post(path, body).await;
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert!(status.is_success(), "POST {path} answered {status}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// GET, expecting 200; the JSON body.
    async fn json(&self, path: &str) -> Value {
        let resp = self.get(path).await;
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert_eq!(status, StatusCode::OK, "GET {path}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path} is not JSON ({e}): {text}"))
    }
}

/// Checks an error answer: status, `application/problem+json`, the `type` suffix; its body.
async fn problem(resp: reqwest::Response, status: StatusCode, slug: &str) -> Value {
    let got = resp.status();
    let content_type =
        resp.headers().get("content-type").map(|v| v.to_str().unwrap_or_default().to_string()).unwrap_or_default();
    let text = resp.text().await.unwrap();
    assert_eq!(got, status, "{text}");
    assert!(content_type.starts_with("application/problem+json"), "content-type {content_type:?}: {text}");
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("problem is not JSON ({e}): {text}"));
    let t = body["type"].as_str().unwrap_or_default();
    assert!(t.ends_with(&format!("/{slug}")), "type {t:?}, expected …/{slug}: {text}");
    assert_eq!(body["status"], status.as_u16(), "{text}");
    assert!(body["title"].is_string(), "{text}");
    body
}

fn pointers(problem: &Value) -> Vec<String> {
    problem["errors"].as_array().unwrap().iter().filter_map(|e| e["pointer"].as_str().map(str::to_string)).collect()
}

#[tokio::test]
async fn apply_get_and_list_every_page() {
    let server = Server::start();
    let api = Api::new(&server);
    let units: Vec<Value> = (1..=5).map(|i| unit(&format!("urn:page:u{i}"), "1.0", &["v"])).collect();
    let report = api.apply("/api/v1/units", &Value::Array(units)).await;
    assert_eq!(report["dryRun"], false);
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), 5, "{report}");
    assert!(results.iter().all(|r| r["outcome"] == "created" && r["type"] == "DataUnit"), "{report}");
    assert!(report["revision"].as_u64().unwrap() >= 1, "{report}");

    let resp = api.get("/api/v1/units/urn:page:u3").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().contains_key("etag"), "{:?}", resp.headers());
    assert!(resp.headers().contains_key("x-civitas-revision"), "{:?}", resp.headers());
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(doc["@type"], "DataUnit");
    assert_eq!(doc["name"], "urn:page:u3");

    let mut names = Vec::new();
    let mut pages = 0;
    let mut path = "/api/v1/units?limit=2".to_string();
    loop {
        let page = api.json(&path).await;
        pages += 1;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2, "{page}");
        names.extend(items.iter().map(|d| d["name"].as_str().unwrap().to_string()));
        match &page["next"] {
            Value::Null => break,
            Value::String(next) => path = format!("/api/v1/units?limit=2&after={next}"),
            other => panic!("next is {other}"),
        }
        assert!(pages < 10, "pagination does not end");
    }
    assert!(pages >= 3, "5 units in pages of 2 take 3 pages, got {pages}");
    let expected: Vec<String> = (1..=5).map(|i| format!("urn:page:u{i}")).collect();
    assert_eq!(names, expected);

    let filtered = api.json("/api/v1/units?prefix=urn:page:u4").await;
    assert_eq!(filtered["items"].as_array().unwrap().len(), 1, "{filtered}");
}

#[tokio::test]
async fn versions_stay_readable_and_conflicts_are_409() {
    let server = Server::start();
    let api = Api::new(&server);
    let v1 = unit("urn:ver:u", "1.0", &["a"]);
    let v11 = unit("urn:ver:u", "1.1", &["a", "b"]);
    assert_eq!(api.apply("/api/v1/apply", &json!([v1])).await["results"][0]["outcome"], "created");
    assert_eq!(api.apply("/api/v1/apply", &v11).await["results"][0]["outcome"], "updated");
    assert_eq!(api.apply("/api/v1/apply", &v11).await["results"][0]["outcome"], "unchanged");

    assert_eq!(api.json("/api/v1/units/urn:ver:u").await["version"], "1.1");
    let old = api.json("/api/v1/units/urn:ver:u?version=1.0").await;
    assert_eq!(old["version"], "1.0");
    assert_eq!(old["views"].as_array().unwrap().len(), 1);
    let versions = api.json("/api/v1/units/urn:ver:u/versions").await;
    assert_eq!(versions["name"], "urn:ver:u");
    assert_eq!(versions["versions"], json!(["1.0", "1.1"]));
    problem(api.get("/api/v1/units/urn:ver:u?version=9.9").await, StatusCode::NOT_FOUND, "not-found").await;

    // Changed content under the current version.
    let changed = unit("urn:ver:u", "1.1", &["a", "c"]);
    let p = problem(api.post("/api/v1/units", &changed).await, StatusCode::CONFLICT, "version-conflict").await;
    assert_eq!(pointers(&p), ["/version"], "{p}");
    // An older version than the current one.
    let p = problem(api.post("/api/v1/units", &v1).await, StatusCode::CONFLICT, "version-conflict").await;
    assert_eq!(pointers(&p), ["/version"], "{p}");
    assert_eq!(api.json("/api/v1/units/urn:ver:u").await, api.json("/api/v1/units/urn:ver:u?version=1.1").await);
}

#[tokio::test]
async fn validation_reports_every_error_at_once() {
    let server = Server::start();
    let api = Api::new(&server);
    let mut broken = unit("urn:bad:u", "1.0", &["v"]);
    broken["views"][0]["name"] = json!("not a urn");
    broken["metainformation"]["type"] = json!("");
    let p =
        problem(api.post("/api/v1/apply", &broken).await, StatusCode::UNPROCESSABLE_ENTITY, "invalid-document").await;
    let mut ptrs = pointers(&p);
    ptrs.sort();
    assert_eq!(ptrs, ["/metainformation/type", "/views/0/name"], "{p}");

    let mut second = unit("urn:bad:w", "1.0", &["v"]);
    second["version"] = json!(12);
    let batch = json!([broken, unit("urn:good:u", "1.0", &["v"]), second]);
    let p =
        problem(api.post("/api/v1/apply", &batch).await, StatusCode::UNPROCESSABLE_ENTITY, "invalid-document").await;
    let ptrs = pointers(&p);
    assert!(ptrs.iter().any(|p| p.starts_with("/0/")), "{p}");
    assert!(ptrs.iter().any(|p| p.starts_with("/2/")), "{p}");
    assert!(!ptrs.iter().any(|p| p.starts_with("/1/")), "{p}");
    assert_eq!(ptrs.len(), 3, "{p}");
    problem(api.get("/api/v1/units/urn:good:u").await, StatusCode::NOT_FOUND, "not-found").await;
}

#[tokio::test]
async fn references_to_missing_documents_are_422_and_store_nothing() {
    let server = Server::start();
    let api = Api::new(&server);
    api.apply("/api/v1/apply", &json!([site("urn:ref:site:a"), unit("urn:ref:u", "1.0", &["v"])])).await;

    let cases = [
        (instance("urn:ref:i1", "urn:ref:missing", &[], "urn:ref:site:a"), "/dataUnit"),
        (instance("urn:ref:i2", "urn:ref:u", &["urn:ref:u:nope"], "urn:ref:site:a"), "/views/0"),
        (instance("urn:ref:i3", "urn:ref:u", &["urn:ref:u:v"], "urn:ref:site:nowhere"), "/site"),
    ];
    for (doc, pointer) in &cases {
        let p = problem(api.post("/api/v1/instances", doc).await, StatusCode::UNPROCESSABLE_ENTITY, "invalid-document")
            .await;
        assert_eq!(pointers(&p), [*pointer], "{p}");
    }
    // A valid document in the same batch as a broken one is not stored either.
    let batch = json!([instance("urn:ref:ok", "urn:ref:u", &["urn:ref:u:v"], "urn:ref:site:a"), cases[0].0]);
    let p =
        problem(api.post("/api/v1/apply", &batch).await, StatusCode::UNPROCESSABLE_ENTITY, "invalid-document").await;
    assert_eq!(pointers(&p), ["/1/dataUnit"], "{p}");
    let listed = api.json("/api/v1/instances").await;
    assert_eq!(listed["items"], json!([]), "{listed}");
}

#[tokio::test]
async fn bad_requests_are_problems() {
    let server = Server::start();
    let api = Api::new(&server);
    let p = problem(
        api.raw("/api/v1/units", "application/json", "{\"name\": ").await,
        StatusCode::BAD_REQUEST,
        "malformed-json",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("line"), "{p}");
    problem(
        api.raw("/api/v1/units", "text/plain", "name: x").await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported-media-type",
    )
    .await;
    api.raw("/api/v1/units", "application/ld+json", serde_json::to_vec(&unit("urn:ld:u", "1.0", &["v"])).unwrap())
        .await
        .error_for_status()
        .expect("application/ld+json is JSON");

    for path in [
        "/api/v1/units/not-a-urn",
        "/api/v1/units/urn:a:b%2F..%2F..%2Fetc",
        "/api/v1/units/..%2Furn:a:b",
        "/api/v1/units/urn:a:b%00",
        "/api/v1/units?limit=nope",
    ] {
        let p = problem(api.get(path).await, StatusCode::BAD_REQUEST, "bad-parameter").await;
        assert!(p["errors"][0]["parameter"].is_string(), "{path}: {p}");
    }
    problem(api.get("/api/v1/units/urn:no:such").await, StatusCode::NOT_FOUND, "not-found").await;
    problem(api.get("/api/v1/unicorns").await, StatusCode::NOT_FOUND, "not-found").await;
    problem(api.get("/api/v1/units/urn:no:such/tree").await, StatusCode::NOT_FOUND, "not-found").await;
    let resp = api.http.delete(api.url("/api/v1/units/urn:no:such")).send().await.unwrap();
    problem(resp, StatusCode::NOT_FOUND, "not-found").await;
}

#[tokio::test]
async fn bodies_over_the_limit_are_413() {
    let temp = tempfile::tempdir().unwrap();
    let config = write_file(temp.path(), "civitas.toml", "[http]\nbody_limit_bytes = 2048\n");
    let server = Server::start_in(&temp.path().join("data"), temp.path(), |cmd, addr| {
        cmd.arg("--config").arg(&config).arg("--listen").arg(addr.to_string());
    });
    let api = Api::new(&server);
    let mut big = unit("urn:big:u", "1.0", &["v"]);
    big["metainformation"]["padding"] = json!("x".repeat(4096));
    problem(api.post("/api/v1/units", &big).await, StatusCode::PAYLOAD_TOO_LARGE, "body-too-large").await;
    api.apply("/api/v1/units", &unit("urn:small:u", "1.0", &["v"])).await;
}

#[tokio::test]
async fn served_descriptions_health_and_metrics() {
    let server = Server::start();
    let api = Api::new(&server);
    let context = api.json("/api/v1/contexts/civitas.jsonld").await;
    assert!(context.get("@context").is_some(), "{context}");
    let openapi = api.json("/api/v1/openapi.json").await;
    assert!(openapi["openapi"].as_str().unwrap_or_default().starts_with("3.1"), "{openapi}");
    assert!(openapi["paths"].is_object(), "{openapi}");
    assert_eq!(api.get("/healthz").await.status(), StatusCode::OK);
    assert_eq!(api.get("/readyz").await.status(), StatusCode::OK);
    let metrics = api.get("/metrics").await;
    assert_eq!(metrics.status(), StatusCode::OK);
    let text = metrics.text().await.unwrap();
    assert!(text.contains("civitas_http_requests_total"), "{text}");
}

#[tokio::test]
async fn watch_streams_changes_with_their_revisions() {
    let server = Server::start();
    let api = Api::new(&server);
    let first = api.apply("/api/v1/apply", &unit("urn:watch:first", "1.0", &["v"])).await;
    let first_revision = first["revision"].as_u64().unwrap();

    // No client timeout: the stream stays open; every read below has its own deadline.
    let resp = reqwest::Client::new().get(api.url("/api/v1/watch?from=1")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(content_type.starts_with("application/x-ndjson"), "{content_type}");
    let mut body = resp.bytes_stream();

    let writer = {
        let api = Api::new(&server);
        tokio::spawn(async move { api.apply("/api/v1/apply", &unit("urn:watch:second", "1.0", &["v"])).await })
    };
    let mut pending = Vec::new();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !seen.iter().any(|c: &Value| c["name"] == "urn:watch:second") {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .unwrap_or_else(|_| panic!("no put of urn:watch:second within 20 s; seen {seen:?}"))
            .expect("the watch stream ended")
            .unwrap();
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let change: Value = serde_json::from_slice(&line).unwrap();
            if change["op"] != "heartbeat" {
                seen.push(change);
            }
        }
    }
    let second_revision = writer.await.unwrap()["revision"].as_u64().unwrap();
    let first_put = seen.iter().find(|c| c["name"] == "urn:watch:first").expect("history replayed from 1");
    assert_eq!(first_put["op"], "put");
    assert_eq!(first_put["revision"].as_u64(), Some(first_revision));
    let second_put = seen.iter().find(|c| c["name"] == "urn:watch:second").unwrap();
    assert_eq!(second_put["op"], "put");
    assert_eq!(second_put["type"], "DataUnit");
    assert_eq!(second_put["revision"].as_u64(), Some(second_revision));
    assert_eq!(second_put["document"]["name"], "urn:watch:second");
    assert!(second_revision > first_revision);
}

#[tokio::test]
async fn delete_reports_and_cascades() {
    let server = Server::start();
    let api = Api::new(&server);
    api.apply(
        "/api/v1/apply",
        &json!([
            site("urn:del:site"),
            unit("urn:del:u", "1.0", &["v"]),
            instance("urn:del:i", "urn:del:u", &["urn:del:u:v"], "urn:del:site")
        ]),
    )
    .await;
    let resp = api.http.delete(api.url("/api/v1/units/urn:del:u")).send().await.unwrap();
    let p = problem(resp, StatusCode::CONFLICT, "still-referenced").await;
    assert_eq!(p["referrers"], json!([{"type": "DataInstance", "name": "urn:del:i"}]), "{p}");

    let resp = api.http.delete(api.url("/api/v1/units/urn:del:u?cascade=true&dryRun=true")).send().await.unwrap();
    let report: Value = resp.error_for_status().unwrap().json().await.unwrap();
    assert_eq!(report["dryRun"], true);
    assert_eq!(report["deleted"].as_array().unwrap().len(), 2, "{report}");
    api.json("/api/v1/units/urn:del:u").await;

    let resp = api.http.delete(api.url("/api/v1/units/urn:del:u?cascade=true")).send().await.unwrap();
    let report: Value = resp.error_for_status().unwrap().json().await.unwrap();
    let mut deleted: Vec<String> =
        report["deleted"].as_array().unwrap().iter().map(|d| format!("{} {}", d["type"], d["name"])).collect();
    deleted.sort();
    assert_eq!(deleted, ["\"DataInstance\" \"urn:del:i\"", "\"DataUnit\" \"urn:del:u\""], "{report}");
    problem(api.get("/api/v1/instances/urn:del:i").await, StatusCode::NOT_FOUND, "not-found").await;
    api.json("/api/v1/sites/urn:del:site").await;
}
