//! SQL views moved between two real nodes and two real PostgreSQL clusters
//! (`scripts/services.sh`): node M ("Melbourne") owns a SQL unit on the origin cluster;
//! node V ("Vienna") reads its views through its data plane, the analyzers raise
//! candidates, and the `postgres` strategy copies each view's rows into V's replica
//! database (the target cluster). Then: reads at V are served by the replica with the
//! origin's answer; a streaming view shows inserts, updates and deletes within its bound;
//! a watermark view picks up changed rows; a full-copy view picks up deletes; when the
//! streaming replica's lag passes its bound traffic goes back to the origin by itself, and
//! comes back once replication resumes.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Server, write_file};
use serde_json::{Value, json};

const UNIT: &str = "urn:city:buildings";
const ORIGIN: &str = "urn:city:buildings:db";
const DEADLINE: Duration = Duration::from_secs(60);

fn pg(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => panic!("{var} is not set under CI (scripts/test.sh sets it)"),
        _ => {
            eprintln!("note: skipping; run `bash scripts/services.sh` and set {var}");
            None
        }
    }
}

fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .arg(url)
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-At", "-c", sql])
        .output()
        .expect("run psql");
    assert!(out.status.success(), "psql failed on {sql}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn addr_on(ip: [u8; 4]) -> SocketAddr {
    let l = TcpListener::bind(SocketAddr::from((ip, 0))).expect("bind a loopback address");
    l.local_addr().unwrap()
}

fn start_node(dir: &Path, name: &str, addr: SocketAddr, config: &str) -> Server {
    let file = write_file(dir, &format!("{name}.toml"), config);
    Server::try_start_at(&dir.join(format!("data-{name}")), dir, addr, |cmd, addr| {
        cmd.arg("--config").arg(&file).arg("--listen").arg(addr.to_string());
    })
    .unwrap_or_else(|log| panic!("node {name} did not start:\n{log}"))
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(20)).build().unwrap()
}

/// Reads `view` for district 1 through a node: status, serving instance, rows.
async fn read(node: &Server, view: &str) -> (u16, String, Value) {
    let url = format!("{}/data/{UNIT}/{view}?district=1", node.url);
    let r = http().get(&url).send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = r.status().as_u16();
    let instance = r.headers().get("x-civitas-instance").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let body = r.text().await.unwrap();
    (status, instance, serde_json::from_str(&body).unwrap_or(Value::String(body)))
}

async fn api(node: &Server, path: &str) -> Value {
    http().get(format!("{}{path}", node.url)).send().await.unwrap().json().await.unwrap()
}

async fn replica_of(node: &Server, view: &str) -> Value {
    let all = api(node, "/api/v1/replicas").await;
    all["items"].as_array().unwrap().iter().find(|r| r["view"] == format!("{UNIT}:{view}")).cloned().unwrap_or_default()
}

/// Polls `check` every 100 ms until it holds or `deadline` passes.
async fn eventually<F, Fut>(what: &str, node: &Server, deadline: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = Instant::now() + deadline;
    while !check().await {
        if Instant::now() > until {
            let events = api(node, "/api/v1/migrations/events").await;
            let replicas = api(node, "/api/v1/replicas").await;
            panic!(
                "timed out waiting until {what}\nreplicas: {replicas:#}\nmigration events: {events:#}\nnode log:\n{}",
                node.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn replica_name(view: &str) -> String {
    format!("{UNIT}:replica:vienna:{view}")
}

fn catalog(schema: &str, owner: &str) -> Value {
    let site = |name: &str, region: &str| json!({"@type": "Site", "name": name, "version": "1", "tier": "cloud", "region": region});
    let view = |name: &str, table: &str, update: Value| {
        let mut spec = json!({"query": format!("SELECT id, district, height FROM {schema}.{table} WHERE district = $district"),
            "parameters": {"district": "int"}, "keyColumn": "id"});
        spec.as_object_mut().unwrap().extend(update.as_object().unwrap().clone());
        (name.to_string(), spec)
    };
    let views: serde_json::Map<String, Value> = [
        view("stream", "bs", json!({"update": "streaming"})),
        view("mark", "bw", json!({"update": "watermark", "watermarkColumn": "updated_at"})),
        view("full", "bf", json!({"update": "full-copy"})),
    ]
    .into_iter()
    .collect();
    json!([
        site("urn:site:melbourne", "au"),
        site("urn:site:vienna", "eu"),
        {"@type": "SiteLink", "name": "urn:link:vie-mel", "version": "1", "from": "urn:site:vienna",
         "to": "urn:site:melbourne", "latencyMs": 150, "bandwidthMbps": 100},
        {"@type": "DataUnit", "name": UNIT, "version": "1",
         "metainformation": {"type": "sql:postgresql", "connection": "city-db", "sqlViews": views},
         "views": [
            {"name": "stream", "link": "/stream", "updateFrequency": {"period": "PT2S"}},
            {"name": "mark", "link": "/mark", "updateFrequency": {"period": "PT1S"}},
            {"name": "full", "link": "/full", "updateFrequency": {"period": "PT1S"}}
         ]},
        {"@type": "DataInstance", "name": ORIGIN, "version": "1", "dataUnit": UNIT, "site": "urn:site:melbourne",
         "endpoint": format!("{owner}/data/{UNIT}"), "role": "origin"}
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sql_views_move_by_copy_stay_fresh_by_their_update_mode_and_fall_back_on_lag() {
    let (Some(origin_db), Some(target_db)) = (pg("CIVITAS_TEST_PG_ORIGIN"), pg("CIVITAS_TEST_PG_TARGET")) else {
        return;
    };
    let schema = format!("sqlrel_{}", std::process::id());
    let mut setup = format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema};");
    for table in ["bs", "bw", "bf"] {
        setup.push_str(&format!(
            "CREATE TABLE {schema}.{table} (id int PRIMARY KEY, district int NOT NULL, height float8,
                 updated_at timestamptz NOT NULL DEFAULT now());
             INSERT INTO {schema}.{table} (id, district, height) SELECT g, g % 3, g * 1.5 FROM generate_series(1, 300) g;"
        ));
    }
    psql(&origin_db, &setup);
    psql(&target_db, &format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
    let mut leftovers =
        Leftovers { origin: origin_db.clone(), target: target_db.clone(), schema: schema.clone(), replication: vec![] };

    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let (m_addr, v_addr) = (addr_on([127, 0, 0, 1]), addr_on([127, 0, 0, 2]));
    let m = start_node(
        dir,
        "melbourne",
        m_addr,
        &format!("[node]\nsite = \"urn:site:melbourne\"\n\n[sql.connections.city-db]\nurl = {origin_db:?}\n"),
    );
    let seed = write_file(dir, "catalog.json", &catalog(&schema, &m.url).to_string());
    m.civitas(&["apply", "-f", seed.to_str().unwrap()]).ok();
    let v = start_node(
        dir,
        "vienna",
        v_addr,
        &format!(
            "[node]\nsite = \"urn:site:vienna\"\npeers = [{{ name = \"melbourne\", url = \"{}\" }}]\npeer_cache_seconds = 1\n\n\
             [migration]\ncooldown_seconds = 2\nmin_residence_seconds = 1\n\n\
             [replicas]\ndefault_refresh_seconds = 1\n\n\
             [replicas.postgres]\nconnection = \"local\"\nlag_check_seconds = 0.5\n\n\
             [sql.connections.city-db]\nurl = {origin_db:?}\n\n[sql.connections.local]\nurl = {target_db:?}\n",
            m.url
        ),
    );

    // V reads M's SQL views through its data plane, from the origin (via M).
    eventually("V routes the unit", &v, DEADLINE, || async { read(&v, "stream").await.0 == 200 }).await;
    let (_, instance, from_origin) = read(&v, "stream").await;
    assert_eq!(instance, ORIGIN);
    assert_eq!(from_origin.as_array().map(Vec::len), Some(100), "{from_origin}");

    let r = http()
        .post(format!("{}/api/v1/sdd/activate", v.url))
        .json(&json!({"triggers": ["samples > 3 min 3 cooldown 1s"], "confidence": "0.0..1.0"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "activate: {}", r.status());

    // Every view is read until it is served by its replica at V, with the origin's rows.
    for view in ["stream", "mark", "full"] {
        eventually(&format!("V serves {view} from its replica"), &v, DEADLINE, || async {
            let (status, instance, _) = read(&v, view).await;
            assert_eq!(status, 200, "reads never fail");
            instance == replica_name(view)
        })
        .await;
        let (_, _, replica_rows) = read(&v, view).await;
        let origin_rows: Value =
            http().get(format!("{}/data/{UNIT}/{view}?district=1", m.url)).send().await.unwrap().json().await.unwrap();
        assert_eq!(replica_rows, origin_rows, "the replica answers {view} like the origin");
        let record = replica_of(&v, view).await;
        assert_eq!(record["copy"], "postgres", "{record}");
    }
    let sql = replica_of(&v, "stream").await["sql"].clone();
    let name = |key: &str| sql[key].as_str().unwrap_or_else(|| panic!("no {key} in {sql}")).to_string();
    leftovers.replication.push((name("subscription"), name("slot"), name("publication")));
    assert_eq!(replica_of(&v, "stream").await["strategy"], "streaming");
    assert_eq!(replica_of(&v, "mark").await["strategy"], "watermark");
    assert_eq!(replica_of(&v, "full").await["strategy"], "full-copy");
    let count = psql(&target_db, &format!("SELECT count(*) FROM {schema}.bs"));
    assert_eq!(count, "300", "the copy holds the rows the view reads");

    // Streaming: an insert, an update and a delete at the origin reach the replica within
    // the view's staleness bound (period 2 s × staleness factor 2).
    let bound = Duration::from_secs(4);
    psql(
        &origin_db,
        &format!(
            "INSERT INTO {schema}.bs (id, district, height) VALUES (1001, 1, 7.5);
             UPDATE {schema}.bs SET height = -1 WHERE id = 1;
             DELETE FROM {schema}.bs WHERE id = 4;"
        ),
    );
    let changed = Instant::now();
    eventually("the replica shows the insert, update and delete", &v, DEADLINE, || async {
        let (_, instance, rows) = read(&v, "stream").await;
        let rows = rows.as_array().cloned().unwrap_or_default();
        let height = |id: i64| rows.iter().find(|r| r["id"] == id).and_then(|r| r["height"].as_f64());
        instance == replica_name("stream")
            && height(1001) == Some(7.5)
            && height(1) == Some(-1.0)
            && height(4).is_none()
    })
    .await;
    assert!(changed.elapsed() < bound, "the changes took {:?}, the bound is {bound:?}", changed.elapsed());

    // Watermark: changed and inserted rows (their updated_at moves) are copied.
    psql(
        &origin_db,
        &format!(
            "UPDATE {schema}.bw SET height = -2, updated_at = now() WHERE id = 1;
             INSERT INTO {schema}.bw (id, district, height) VALUES (2001, 1, 9.5);"
        ),
    );
    eventually("the watermark replica picks up the changed rows", &v, DEADLINE, || async {
        let (_, instance, rows) = read(&v, "mark").await;
        let rows = rows.as_array().cloned().unwrap_or_default();
        let height = |id: i64| rows.iter().find(|r| r["id"] == id).and_then(|r| r["height"].as_f64());
        instance == replica_name("mark") && height(1) == Some(-2.0) && height(2001) == Some(9.5)
    })
    .await;

    // Full copy: a delete at the origin disappears from the replica.
    psql(&origin_db, &format!("DELETE FROM {schema}.bf WHERE id = 1"));
    eventually("the full-copy replica drops the deleted row", &v, DEADLINE, || async {
        let (_, instance, rows) = read(&v, "full").await;
        let rows = rows.as_array().cloned().unwrap_or_default();
        instance == replica_name("full") && !rows.iter().any(|r| r["id"] == 1)
    })
    .await;

    // Replication stops: the lag passes the bound, reads go to the origin by themselves
    // (with the origin's newest rows), and come back to the replica once it catches up.
    let subscription = leftovers.replication[0].0.clone();
    psql(&target_db, &format!("ALTER SUBSCRIPTION {subscription} DISABLE"));
    psql(&origin_db, &format!("UPDATE {schema}.bs SET height = -3 WHERE id = 1"));
    eventually("reads fall back to the origin", &v, DEADLINE, || async {
        let (status, instance, rows) = read(&v, "stream").await;
        assert_eq!(status, 200, "no read fails during the fallback");
        let fresh = rows.as_array().and_then(|rows| rows.iter().find(|r| r["id"] == 1).cloned());
        instance == ORIGIN && fresh.is_some_and(|r| r["height"].as_f64() == Some(-3.0))
    })
    .await;
    assert_eq!(replica_of(&v, "stream").await["fresh"], false);
    psql(&target_db, &format!("ALTER SUBSCRIPTION {subscription} ENABLE"));
    eventually("reads come back to the caught-up replica", &v, DEADLINE, || async {
        let (_, instance, rows) = read(&v, "stream").await;
        let fresh = rows.as_array().and_then(|rows| rows.iter().find(|r| r["id"] == 1).cloned());
        instance == replica_name("stream") && fresh.is_some_and(|r| r["height"].as_f64() == Some(-3.0))
    })
    .await;

    drop(v);
    drop(m);
}

/// Deletes what the test's replicas left in the two clusters (slots hold WAL; the
/// clusters are shared), also when the test fails half-way.
struct Leftovers {
    origin: String,
    target: String,
    schema: String,
    /// (subscription, slot, publication) of each replica, once known.
    replication: Vec<(String, String, String)>,
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        let quiet = |url: &str, sql: &str| {
            let _ = Command::new("psql").arg(url).args(["-q", "-c", sql]).output();
        };
        for (subscription, slot, publication) in &self.replication {
            quiet(&self.target, &format!("ALTER SUBSCRIPTION {subscription} DISABLE"));
            quiet(&self.target, &format!("ALTER SUBSCRIPTION {subscription} SET (slot_name = NONE)"));
            quiet(&self.target, &format!("DROP SUBSCRIPTION IF EXISTS {subscription}"));
            quiet(&self.origin, &format!("SELECT pg_drop_replication_slot('{slot}')"));
            quiet(&self.origin, &format!("DROP PUBLICATION IF EXISTS {publication}"));
        }
        quiet(&self.target, &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema));
        quiet(&self.origin, &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema));
    }
}
