//! SQL units through a real node against the real PostgreSQL "origin" cluster that
//! `scripts/services.sh` starts (`CIVITAS_TEST_PG_ORIGIN`): a unit whose query the database
//! refuses is not stored; a good one is served at `/data/{unit}/{view}` as JSON, NDJSON or
//! CSV with keyset pages; a parameter of the wrong type is a 400 naming it.

mod common;

use std::process::Command;

use common::{Server, write_file};
use serde_json::{Value, json};

fn pg_url() -> Option<String> {
    match std::env::var("CIVITAS_TEST_PG_ORIGIN") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("CIVITAS_TEST_PG_ORIGIN is not set under CI (scripts/test.sh sets it)")
        }
        _ => {
            eprintln!("note: skipping; run `bash scripts/services.sh` and set CIVITAS_TEST_PG_ORIGIN");
            None
        }
    }
}

fn psql(url: &str, sql: &str) {
    let out =
        Command::new("psql").arg(url).args(["-v", "ON_ERROR_STOP=1", "-q", "-c", sql]).output().expect("run psql");
    assert!(out.status.success(), "psql failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// One raw HTTP/1.1 GET (`extra` header lines), read until the server closes: the answer
/// as lower-case text, chunked framing and trailers included.
async fn raw_get(base: &str, path: &str, extra: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let authority = base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(authority).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\n{extra}Connection: close\r\n\r\n");
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut out)).await.unwrap().unwrap();
    String::from_utf8_lossy(&out).to_ascii_lowercase()
}

fn unit(schema: &str, query: &str) -> Value {
    json!([
        {"@type": "Site", "name": "urn:site:city", "version": "1", "tier": "cloud", "region": "eu"},
        {"@type": "DataUnit", "name": "urn:city:buildings", "version": "1",
         "metainformation": {"type": "sql:postgresql", "connection": "city-db",
            "sqlViews": {"by-district": {"query": query, "parameters": {"district": "int"}, "keyColumn": "id"}}},
         "views": [{"name": "by-district", "link": "/by-district"}]},
        {"@type": "DataInstance", "name": "urn:city:buildings:db", "version": "1", "dataUnit": "urn:city:buildings",
         "site": "urn:site:city", "endpoint": format!("http://127.0.0.1:9/{schema}"), "role": "origin"}
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_views_are_checked_at_apply_and_served_from_the_database() {
    let Some(url) = pg_url() else { return };
    let schema = format!("node_sql_{}", std::process::id());
    psql(
        &url,
        &format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema};
             CREATE TABLE {schema}.buildings (id int PRIMARY KEY, district int NOT NULL, height float8);
             INSERT INTO {schema}.buildings SELECT g, g % 3, g * 1.5 FROM generate_series(1, 250) g;"
        ),
    );
    let temp = tempfile::tempdir().unwrap();
    let config =
        write_file(temp.path(), "sql.toml", &format!("[sql.connections.city-db]\nurl = {url:?}\nmax_rows = 100\n"));
    let node = Server::start_in(&temp.path().join("data"), temp.path(), |cmd, addr| {
        cmd.arg("--config").arg(&config).arg("--listen").arg(addr.to_string());
    });

    // A query the database refuses (no such column) is refused at apply, naming the field.
    let bad = write_file(
        temp.path(),
        "bad.json",
        &unit(&schema, &format!("SELECT id, nope FROM {schema}.buildings WHERE district = $district")).to_string(),
    );
    let refused = node.civitas(&["apply", "-f", bad.to_str().unwrap()]).fails_with(1).to_string();
    assert!(refused.contains("/sqlViews/by-district/query") && refused.contains("nope"), "{refused}");
    assert!(!node.civitas(&["get", "units"]).ok().contains("urn:city:buildings"), "nothing was stored");

    let good = write_file(
        temp.path(),
        "good.json",
        &unit(&schema, &format!("SELECT id, district, height FROM {schema}.buildings WHERE district = $district"))
            .to_string(),
    );
    node.civitas(&["apply", "-f", good.to_str().unwrap()]).ok();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let view = format!("{}/data/urn:city:buildings/by-district", node.url);

    // The SQL units follow the catalog: wait until the view answers.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let first = loop {
        let r = http.get(format!("{view}?district=1&limit=50")).send().await.unwrap();
        if r.status() == 200 {
            break r;
        }
        assert!(std::time::Instant::now() < deadline, "the SQL view never answered: {}", r.status());
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let link = first.headers().get("link").expect("a next page").to_str().unwrap().to_string();
    let rows: Vec<Value> = first.json().await.unwrap();
    assert_eq!(rows.len(), 50);
    assert!(rows.iter().all(|r| r["district"] == 1));
    // Follow the pages: every row of district 1 exactly once (84 of 250).
    let mut seen: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    let mut next = link.trim_start_matches('<').split('>').next().map(str::to_string);
    while let Some(path) = next {
        let r = http.get(format!("{}{path}", node.url)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        next = r
            .headers()
            .get("link")
            .map(|l| l.to_str().unwrap().trim_start_matches('<').split('>').next().unwrap().to_string());
        let page: Vec<Value> = r.json().await.unwrap();
        seen.extend(page.iter().map(|r| r["id"].as_i64().unwrap()));
    }
    let expected: Vec<i64> = (1..=250).filter(|g| g % 3 == 1).collect();
    assert_eq!(seen, expected);

    // The cursor also ends the body as trailers, for clients that take them (`TE: trailers`):
    // the only place it is on pages too large to know it before the first row.
    let path = "/data/urn:city:buildings/by-district?district=1&limit=50";
    let answer = raw_get(&node.url, path, "TE: trailers\r\n").await;
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head");
    assert!(head.contains("\r\ntrailer: civitas-next-after, link"), "{head}");
    assert!(head.contains("\r\ncivitas-next-after: 148\r\n"), "{head}");
    assert!(body.contains("\r\n0\r\ncivitas-next-after: 148\r\n"), "{body}");
    assert!(body.contains("link: </data/urn:city:buildings/by-district?district=1&limit=50&after=148>; rel=\"next\""));
    let last = raw_get(&node.url, &format!("{path}&after=148"), "TE: trailers\r\n").await;
    assert!(last.ends_with("\r\n0\r\n\r\n") && !last.contains("civitas-next-after:"), "{last}");

    // NDJSON and CSV by Accept.
    let nd =
        http.get(format!("{view}?district=2&limit=3")).header("accept", "application/x-ndjson").send().await.unwrap();
    assert_eq!(nd.headers()["content-type"], "application/x-ndjson");
    assert_eq!(nd.text().await.unwrap().lines().count(), 3);
    let csv = http.get(format!("{view}?district=2&limit=3")).header("accept", "text/csv").send().await.unwrap();
    let text = csv.text().await.unwrap();
    assert!(text.starts_with("id,district,height"), "{text}");

    // A parameter of the wrong type is a 400 naming it; an injection attempt is inert.
    let bad = http.get(format!("{view}?district=three")).send().await.unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("district"));
    let inj = http.get(format!("{view}?district=1;DROP%20TABLE%20{schema}.buildings")).send().await.unwrap();
    assert_eq!(inj.status(), 400);
    psql(&url, &format!("SELECT 1 FROM {schema}.buildings LIMIT 1"));
    psql(&url, &format!("DROP SCHEMA {schema} CASCADE"));
}
