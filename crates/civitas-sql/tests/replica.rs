//! SQL replicas (issue 8) against the two real PostgreSQL 15 clusters started by
//! `scripts/services.sh`: origin (`CIVITAS_TEST_PG_ORIGIN`) and target
//! (`CIVITAS_TEST_PG_TARGET`). Under CI missing databases fail loudly; elsewhere the test
//! says how to start them and returns.
//!
//! Every test works in its own schema (and replica id), made afresh, and removes its
//! slots, publications, subscriptions and tables even when it fails: a leaked slot holds
//! WAL and uses up `max_replication_slots`. The clean-up test works in databases of its
//! own, since clean-up sweeps a whole database.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use civitas_model::{DataUnit, Document};
use civitas_sql::replica::artifact_name;
use civitas_sql::{
    ConnectionConfig, CopyProgress, Freshness, Replicator, SqlError, SqlReplica, SqlView, UpdateMode, parse_unit,
};
use futures::FutureExt;
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_postgres::NoTls;

fn urls() -> Option<(String, String)> {
    match (std::env::var("CIVITAS_TEST_PG_ORIGIN"), std::env::var("CIVITAS_TEST_PG_TARGET")) {
        (Ok(origin), Ok(target)) if !origin.is_empty() && !target.is_empty() => Some((origin, target)),
        _ if std::env::var_os("CI").is_some() => panic!(
            "CIVITAS_TEST_PG_ORIGIN / CIVITAS_TEST_PG_TARGET are not set under CI: run `bash scripts/services.sh`"
        ),
        _ => {
            eprintln!(
                "note: skipping the replica test; run `bash scripts/services.sh` and set \
                 CIVITAS_TEST_PG_ORIGIN and CIVITAS_TEST_PG_TARGET"
            );
            None
        }
    }
}

async fn admin(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.expect("connect to the test database");
    tokio::spawn(connection);
    client
}

/// `url` with another database name.
fn with_database(url: &str, database: &str) -> String {
    let (base, _) = url.rsplit_once('/').expect("a URL with a database");
    format!("{base}/{database}")
}

/// A fresh schema at the origin with `buildings(id PK, district, height, name, secret,
/// updated_at)` (`rows` rows) and `districts(id PK, name)`; the schema is dropped at the
/// target.
async fn fixture(
    origin: &str,
    target: &str,
    schema: &str,
    rows: i32,
) -> (tokio_postgres::Client, tokio_postgres::Client) {
    let o = admin(origin).await;
    let t = admin(target).await;
    o.batch_execute(&format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema};
         CREATE TABLE {schema}.districts (id int PRIMARY KEY, name text NOT NULL);
         INSERT INTO {schema}.districts SELECT i, 'district ' || i FROM generate_series(0, 4) AS i;
         CREATE TABLE {schema}.buildings (id int PRIMARY KEY, district int NOT NULL REFERENCES {schema}.districts,
             height float8, name text, secret text, updated_at timestamptz NOT NULL DEFAULT now());
         INSERT INTO {schema}.buildings (id, district, height, name, secret)
             SELECT i, i % 5, CASE WHEN i % 7 = 0 THEN NULL ELSE i * 1.5 END, 'b' || i, 'x' FROM generate_series(1, {rows}) AS i;"
    ))
    .await
    .expect("origin fixture");
    t.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await.expect("target fixture");
    (o, t)
}

/// A view of a unit on connection `origin`.
fn view(local: &str, spec: Value) -> SqlView {
    let doc = json!({"@type": "DataUnit", "name": "urn:replica:test", "version": "1",
        "metainformation": {"type": "sql:postgresql", "connection": "origin", "sqlViews": {local: spec}},
        "views": [{"name": local, "link": format!("/{local}")}]});
    let unit: DataUnit = match Document::decode(&doc) {
        Ok(Document::DataUnit(u)) => u,
        other => panic!("fixture does not decode: {other:?}"),
    };
    parse_unit(&unit).expect("a valid unit").expect("a SQL unit").views.remove(local).expect("the view")
}

fn replicator(origin: &str, target: &str) -> Replicator {
    Replicator::new("origin", &ConnectionConfig::new(origin), "target", &ConnectionConfig::new(target), None)
        .expect("replicator")
}

/// The view's rows (no parameters), as sorted JSON text.
async fn rows(client: &tokio_postgres::Client, view: &SqlView) -> Vec<String> {
    let sql = format!("SELECT to_jsonb(v)::text FROM ({}) AS v ORDER BY 1", view.statement);
    client.query(&sql, &[]).await.expect("the view runs").iter().map(|r| r.get(0)).collect()
}

/// Waits until `condition` holds, up to `deadline`; panics with `what` otherwise.
async fn eventually<F, Fut>(what: &str, deadline: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let end = Instant::now() + deadline;
    loop {
        if condition().await {
            return;
        }
        assert!(Instant::now() < end, "not within {deadline:?}: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A replica record that names every artifact of `replica_id`, for removal.
fn stub(replica_id: &str) -> SqlReplica {
    let name = artifact_name(replica_id);
    SqlReplica {
        replica_id: replica_id.into(),
        view: String::new(),
        tables: Vec::new(),
        update: UpdateMode::Streaming,
        publication: Some(name.clone()),
        slot: Some(name.clone()),
        subscription: Some(name),
        watermark: None,
        rows: 0,
        bytes: 0,
        copied_at_unix_ms: 0,
    }
}

/// Runs `body`, then removes the replica's artifacts and the schema at both ends, even
/// when `body` panicked.
async fn scrubbed<Fut: Future<Output = ()>>(origin: &str, target: &str, replica_id: &str, schema: &str, body: Fut) {
    let outcome = AssertUnwindSafe(body).catch_unwind().await;
    let rep = replicator(origin, target);
    let cleaned = rep.drop_replica(&stub(replica_id)).await;
    for url in [target, origin] {
        let _ = admin(url).await.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await;
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    cleaned.expect("the replica's artifacts are removed");
}

/// What is left of `replica_id` in both databases: slots, publications, subscriptions.
async fn artifacts(origin: &tokio_postgres::Client, target: &tokio_postgres::Client, replica_id: &str) -> Vec<String> {
    let name = artifact_name(replica_id);
    let mut left = Vec::new();
    for (client, sql) in [
        (origin, "SELECT 'slot ' || slot_name FROM pg_replication_slots WHERE slot_name = $1"),
        (origin, "SELECT 'publication ' || pubname FROM pg_publication WHERE pubname = $1"),
        (target, "SELECT 'subscription ' || subname FROM pg_subscription WHERE subname = $1"),
    ] {
        for row in client.query(sql, &[&name]).await.expect("catalog") {
            left.push(row.get(0));
        }
    }
    left
}

async fn table_exists(client: &tokio_postgres::Client, table: &str) -> bool {
    client.query_one("SELECT to_regclass($1) IS NOT NULL", &[&table]).await.expect("catalog").get(0)
}

#[tokio::test]
async fn coverage_resolves_tables_columns_keys_and_filters() {
    let Some((origin, target)) = urls() else { return };
    let s = "rep_cov";
    let (o, _t) = fixture(&origin, &target, s, 3).await;
    o.batch_execute(&format!(
        "CREATE VIEW {s}.tall AS SELECT * FROM {s}.buildings WHERE height > 10;
         CREATE TABLE {s}.nokey (a int, b text);"
    ))
    .await
    .unwrap();
    scrubbed(&origin, &target, "test-rep_cov", s, async {
        let rep = replicator(&origin, &target);
        let names = |t: &civitas_sql::CoveredTable| t.columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>();

        // Referenced columns and the primary key, in the origin's order; a filter.
        let v = view("a", json!({"query": format!("SELECT name FROM {s}.buildings WHERE height > 10")}));
        let cov = rep.coverage(&v).await.unwrap();
        assert_eq!(cov.len(), 1);
        assert_eq!((cov[0].schema.as_str(), cov[0].name.as_str()), (s, "buildings"));
        assert_eq!(names(&cov[0]), ["id", "height", "name"]);
        assert_eq!(cov[0].primary_key, ["id"]);
        assert_eq!(cov[0].row_filter.as_deref(), Some("(height > 10)"));
        assert_eq!(cov[0].columns[0].sql_type, "integer");
        assert!(cov[0].columns[0].not_null && !cov[0].columns[1].not_null);
        assert_eq!(cov[0].columns[1].sql_type, "double precision");

        // Streaming: a filter on a non-key column cannot be published, so none is used;
        // one on the key can.
        let v = view("a", json!({"query": format!("SELECT name FROM {s}.buildings WHERE height > 10"), "update": "streaming"}));
        assert_eq!(rep.coverage(&v).await.unwrap()[0].row_filter, None);
        let v = view("a", json!({"query": format!("SELECT name FROM {s}.buildings WHERE id > 2"), "update": "streaming"}));
        assert_eq!(rep.coverage(&v).await.unwrap()[0].row_filter.as_deref(), Some("(id > 2)"));

        // A join: columns by alias, unqualified ones by the tables' columns; conjuncts with
        // parameters or functions are not filters.
        let v = view(
            "a",
            json!({"query": format!(
                "SELECT b.name, d.name AS district_name, height FROM {s}.buildings b JOIN {s}.districts AS d ON d.id = b.district
                  WHERE d.name <> 'district 3' AND b.height > $min AND lower(b.name) <> 'x' AND b.id < 1000"),
                "parameters": {"min": "float"}}),
        );
        let cov = rep.coverage(&v).await.unwrap();
        let b = cov.iter().find(|t| t.name == "buildings").unwrap();
        let d = cov.iter().find(|t| t.name == "districts").unwrap();
        assert_eq!(names(b), ["id", "district", "height", "name"]);
        assert_eq!(names(d), ["id", "name"]);
        assert_eq!(b.row_filter.as_deref(), Some("(id < 1000)"));
        assert_eq!(d.row_filter.as_deref(), Some("(name <> 'district 3')"));

        // A CTE is not a table; the table inside it is, without a filter.
        let v = view(
            "a",
            json!({"query": format!("WITH tall AS (SELECT id, name FROM {s}.buildings WHERE height > 10) SELECT name FROM tall")}),
        );
        let cov = rep.coverage(&v).await.unwrap();
        assert_eq!(cov.len(), 1);
        assert_eq!(names(&cov[0]), ["id", "height", "name"]);
        assert_eq!(cov[0].row_filter, None);

        // `*` takes every column; an outer join no filter.
        let v = view("a", json!({"query": format!("SELECT * FROM {s}.districts WHERE name <> 'x'")}));
        assert_eq!(names(&rep.coverage(&v).await.unwrap()[0]), ["id", "name"]);
        let v = view(
            "a",
            json!({"query": format!("SELECT b.id FROM {s}.buildings b LEFT JOIN {s}.districts d ON d.id = b.district WHERE d.name IS NULL")}),
        );
        assert!(rep.coverage(&v).await.unwrap().iter().all(|t| t.row_filter.is_none()));

        // The watermark column joins the covered columns.
        let v = view(
            "a",
            json!({"query": format!("SELECT name FROM {s}.buildings"), "update": "watermark", "watermarkColumn": "updated_at"}),
        );
        assert_eq!(names(&rep.coverage(&v).await.unwrap()[0]), ["id", "name", "updated_at"]);

        // Refusals.
        let refused = |v: SqlView| {
            let rep = &rep;
            async move {
                match rep.coverage(&v).await {
                    Err(e @ SqlError::Coverage { .. }) => {
                        assert_eq!(e.status(), 422);
                        e.to_string()
                    }
                    other => panic!("expected a coverage error, got {other:?}"),
                }
            }
        };
        let e = refused(view("a", json!({"query": format!("SELECT id FROM {s}.tall")}))).await;
        assert!(e.contains(&format!("`{s}.tall` is a view")) && e.contains("copies tables only"), "{e}");
        let e = refused(view("a", json!({"query": format!("SELECT a FROM {s}.nokey")}))).await;
        assert!(e.contains(&format!("table `{s}.nokey` has no primary key")), "{e}");
        let e = refused(view(
            "a",
            json!({"query": format!("SELECT id FROM {s}.districts"), "update": "watermark", "watermarkColumn": "updated_at"}),
        ))
        .await;
        assert!(e.contains("the watermark column `updated_at` is in none of the tables"), "{e}");
    })
    .await;
}

#[tokio::test]
async fn validation_refuses_a_watermark_column_no_table_has() {
    let Some((origin, target)) = urls() else { return };
    let s = "rep_validate";
    let (o, _t) = fixture(&origin, &target, s, 3).await;
    o.batch_execute(&format!("CREATE TABLE {s}.keyless (a int)")).await.unwrap();
    scrubbed(&origin, &target, "test-rep_validate", s, async {
        let config = civitas_sql::SqlConfig { connections: [("origin".to_owned(), ConnectionConfig::new(&origin))].into() };
        let views = civitas_sql::SqlViews::new(&config).unwrap();
        let doc = json!({"@type": "DataUnit", "name": "urn:replica:validate", "version": "1",
            "metainformation": {"type": "sql:postgresql", "connection": "origin", "sqlViews": {
                "good": {"query": format!("SELECT id FROM {s}.buildings"), "update": "watermark", "watermarkColumn": "updated_at"},
                "bad": {"query": format!("SELECT id FROM {s}.districts"), "update": "watermark", "watermarkColumn": "updated_at"},
                "keyless": {"query": format!("SELECT a FROM {s}.keyless"), "update": "streaming"},
                "unreplicated": {"query": format!("SELECT a FROM {s}.keyless")}}},
            "views": [{"name": "good", "link": "/good"}, {"name": "bad", "link": "/bad"},
                      {"name": "keyless", "link": "/keyless"}, {"name": "unreplicated", "link": "/unreplicated"}]});
        let Ok(Document::DataUnit(unit)) = Document::decode(&doc) else { panic!("decodes") };
        let Err(SqlError::Definition(errors)) = views.validate(&unit).await else { panic!("refused") };
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors.iter().any(|e| e.pointer == "/metainformation/sqlViews/bad/watermarkColumn"), "{errors:?}");
        assert!(
            errors.iter().any(|e| e.pointer == "/metainformation/sqlViews/keyless/update"
                && e.message.contains("has no primary key")),
            "a view that asks to stream must be replicable: {errors:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_copy_equals_the_origin_and_a_full_copy_refresh_replaces_it() {
    let Some((origin, target)) = urls() else { return };
    let s = "rep_full";
    let id = "test-rep_full";
    let (o, t) = fixture(&origin, &target, s, 2000).await;
    scrubbed(&origin, &target, id, s, async {
        let rep = replicator(&origin, &target);
        let v = view(
            "a",
            json!({"query": format!(
                "SELECT b.id, b.name, d.name AS district FROM {s}.buildings b JOIN {s}.districts d ON d.id = b.district
                  WHERE b.height > 30 AND d.id <> 2")}),
        );
        let (progress, watch) = tokio::sync::watch::channel(CopyProgress::default());
        let replica = rep.copy(id, &v, &progress).await.expect("copied");
        let expected = rows(&o, &v).await;
        assert!(expected.len() > 1000, "{}", expected.len());
        assert_eq!(rows(&t, &v).await, expected, "the view at the target equals the view at the origin");
        let done = watch.borrow().clone();
        assert_eq!((done.tables, done.tables_done), (2, 2));
        assert_eq!(done.rows, replica.rows);
        assert!(replica.bytes > 0 && done.bytes == replica.bytes);
        // Only what the view covers is copied: filtered rows, referenced columns.
        let copied: i64 = t.query_one(&format!("SELECT count(*) FROM {s}.buildings"), &[]).await.unwrap().get(0);
        let wanted: i64 = o.query_one(&format!("SELECT count(*) FROM {s}.buildings WHERE height > 30"), &[]).await.unwrap().get(0);
        assert_eq!(copied, wanted);
        let columns: Vec<String> = t
            .query(&format!("SELECT attname::text FROM pg_attribute WHERE attrelid = '{s}.buildings'::regclass AND attnum > 0 ORDER BY attnum"), &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(columns, ["id", "district", "height", "name"], "no `secret`, no `updated_at`");
        let comment: String = t.query_one(&format!("SELECT obj_description('{s}.buildings'::regclass, 'pg_class')"), &[]).await.unwrap().get(0);
        assert_eq!(comment, format!("civitas replica {id} of urn:replica:test:a"));
        assert_eq!(replica.update, UpdateMode::FullCopy);
        assert_eq!((replica.publication.as_ref(), replica.slot.as_ref()), (None, None));
        let serving = replica.serving_view(&v, "target");
        assert_eq!((serving.connection.as_str(), serving.statement.as_str()), ("target", v.statement.as_str()));

        // The origin changes; a full copy replaces the replica's rows.
        o.batch_execute(&format!(
            "INSERT INTO {s}.buildings (id, district, height, name) VALUES (100001, 1, 99, 'new');
             UPDATE {s}.buildings SET name = 'renamed' WHERE id = 100;
             DELETE FROM {s}.buildings WHERE id = 101;"
        ))
        .await
        .unwrap();
        let mut replica = replica;
        let freshness: Freshness = rep.refresh(&mut replica).await.expect("refreshed");
        assert_eq!(rows(&t, &v).await, rows(&o, &v).await);
        assert!(freshness.rows_changed.unwrap() > 1000);
        assert!(freshness.lag_seconds < 30.0 && freshness.validated_at_unix_ms >= replica.copied_at_unix_ms);

        rep.drop_replica(&replica).await.unwrap();
        assert!(!table_exists(&t, &format!("{s}.buildings")).await);
        rep.drop_replica(&replica).await.expect("idempotent");
    })
    .await;
}

#[tokio::test]
async fn a_failed_copy_leaves_nothing_behind() {
    let Some((origin, target)) = urls() else { return };
    let s = "rep_fail";
    let id = "test-rep_fail";
    let (o, t) = fixture(&origin, &target, s, 200).await;
    scrubbed(&origin, &target, id, s, async {
        let rep = replicator(&origin, &target);
        // Someone else's table of the same name at the target: refused, naming it, and
        // the other table (made first in the same transaction) is not left behind.
        t.batch_execute(&format!("CREATE SCHEMA {s}; CREATE TABLE {s}.districts (id int PRIMARY KEY, name text)"))
            .await
            .unwrap();
        for update in ["full-copy", "streaming"] {
            let v = view(
                "a",
                json!({"query": format!("SELECT b.id, d.name FROM {s}.buildings b JOIN {s}.districts d ON d.id = b.district"), "update": update}),
            );
            let (progress, _) = tokio::sync::watch::channel(CopyProgress::default());
            let err = rep.copy(id, &v, &progress).await.unwrap_err();
            assert_eq!(err.status(), 409, "{err}");
            let text = err.to_string();
            assert!(text.contains(&format!("`{s}.districts`")) && text.contains("its own replica database"), "{text}");
            assert!(!table_exists(&t, &format!("{s}.buildings")).await, "{update}: nothing is left at the target");
            assert_eq!(artifacts(&o, &t, id).await, Vec::<String>::new(), "{update}: no slot or publication is left");
        }
        t.batch_execute(&format!("DROP TABLE {s}.districts")).await.unwrap();

        // A copy killed mid-way (its future dropped while rows stream): the target
        // transaction dies with its connection.
        o.batch_execute(&format!(
            "INSERT INTO {s}.buildings (id, district, height, name) SELECT i, i % 5, i, repeat('x', 200) FROM generate_series(1000, 300000) AS i"
        ))
        .await
        .unwrap();
        let v = view("a", json!({"query": format!("SELECT id, name FROM {s}.buildings")}));
        let (progress, mut watch) = tokio::sync::watch::channel(CopyProgress::default());
        let rep = Arc::new(rep);
        let copying = {
            let rep = rep.clone();
            let v = v.clone();
            tokio::spawn(async move { rep.copy(id, &v, &progress).await })
        };
        watch.wait_for(|p| p.bytes > 0).await.expect("the copy streams");
        // Mid-way: rows are flowing into the target's (uncommitted) table.
        assert_eq!(copying_sessions(&t, s).await, 1, "the copy is writing at the target");
        assert_eq!(watch.borrow().tables_done, 0, "and has not finished");
        copying.abort();
        assert!(copying.await.unwrap_err().is_cancelled(), "killed before it finished");
        eventually("the killed copy's target session is gone", Duration::from_secs(10), || async {
            copying_sessions(&t, s).await == 0
        })
        .await;
        assert!(!table_exists(&t, &format!("{s}.buildings")).await);
        let ours: i64 = t
            .query_one("SELECT count(*) FROM pg_class WHERE obj_description(oid, 'pg_class') LIKE $1", &[&format!("civitas replica {id} %")])
            .await
            .unwrap()
            .get(0);
        assert_eq!(ours, 0);
    })
    .await;
}

/// Calls `before` then `refresh` until `done` holds for the freshness, up to 30 s.
async fn refresh_until<B, BF>(
    rep: &Replicator,
    replica: &mut SqlReplica,
    what: &str,
    before: B,
    done: impl Fn(&Freshness) -> bool,
) -> Freshness
where
    B: Fn() -> BF,
    BF: Future<Output = ()>,
{
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        before().await;
        let f = rep.refresh(replica).await.expect("measured");
        if done(&f) {
            return f;
        }
        assert!(Instant::now() < end, "not within 30 s: {what}; last: {f:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sessions of this crate at `t` running a COPY into `schema.buildings`.
async fn copying_sessions(t: &tokio_postgres::Client, schema: &str) -> i64 {
    t.query_one(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'civitas-replica' AND query LIKE $1",
        &[&format!("COPY \"{schema}\".\"buildings\"%")],
    )
    .await
    .unwrap()
    .get(0)
}

/// Waits until the view reads the same at both ends.
async fn converges(o: &tokio_postgres::Client, t: &tokio_postgres::Client, v: &SqlView, what: &str) {
    eventually(what, Duration::from_secs(30), || async { rows(t, v).await == rows(o, v).await }).await;
}

#[tokio::test]
async fn streaming_replicates_inserts_updates_and_deletes() {
    let Some((origin, target)) = urls() else { return };
    let s = "rep_stream";
    let id = "test-rep_stream";
    let (o, t) = fixture(&origin, &target, s, 500).await;
    scrubbed(&origin, &target, id, s, async {
        let rep = replicator(&origin, &target);
        let v = view(
            "a",
            json!({"query": format!("SELECT id, name, height FROM {s}.buildings WHERE id <= 10000 AND height > 3"), "update": "streaming"}),
        );
        let (progress, _) = tokio::sync::watch::channel(CopyProgress::default());
        let replica = rep.copy(id, &v, &progress).await.expect("copied");
        let name = artifact_name(id);
        assert_eq!(replica.slot.as_deref(), Some(name.as_str()));
        assert_eq!(replica.tables[0].row_filter.as_deref(), Some("(id <= 10000)"), "a key filter is published");
        assert_eq!(rows(&t, &v).await, rows(&o, &v).await);

        o.batch_execute(&format!(
            "INSERT INTO {s}.buildings (id, district, height, name) VALUES (5001, 1, 50, 'inserted'), (20001, 1, 50, 'filtered out');
             UPDATE {s}.buildings SET name = 'updated', secret = 'not copied' WHERE id = 10;
             DELETE FROM {s}.buildings WHERE id = 11;"
        ))
        .await
        .unwrap();
        converges(&o, &t, &v, "insert, update and delete reach the target").await;
        let beyond: i64 = t.query_one(&format!("SELECT count(*) FROM {s}.buildings WHERE id > 10000"), &[]).await.unwrap().get(0);
        assert_eq!(beyond, 0, "the row filter is applied to the stream too");

        rep.drop_replica(&replica).await.unwrap();
        assert_eq!(artifacts(&o, &t, id).await, Vec::<String>::new());
        assert!(!table_exists(&t, &format!("{s}.buildings")).await);
        rep.drop_replica(&replica).await.expect("idempotent");
    })
    .await;
}

#[tokio::test]
async fn streaming_loses_and_doubles_nothing_written_during_the_copy() {
    let Some((origin, target)) = urls() else { return };
    let s = "rep_conc";
    let id = "test-rep_conc";
    let (o, t) = fixture(&origin, &target, s, 50_000).await;
    scrubbed(&origin, &target, id, s, async {
        let rep = replicator(&origin, &target);
        let v =
            view("a", json!({"query": format!("SELECT id, name, height FROM {s}.buildings"), "update": "streaming"}));
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (origin, stop) = (origin.clone(), stop.clone());
            let s = s.to_owned();
            tokio::spawn(async move {
                let o = admin(&origin).await;
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    o.batch_execute(&format!(
                        "INSERT INTO {s}.buildings (id, district, height, name) VALUES ({}, 1, {i}, 'during');
                         UPDATE {s}.buildings SET height = height + 1, name = 'touched {i}' WHERE id = {};",
                        100_000 + i,
                        1 + (i * 7919) % 50_000
                    ))
                    .await
                    .expect("writer");
                }
                i
            })
        };
        // Let the writer run before and during the copy.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (progress, _) = tokio::sync::watch::channel(CopyProgress::default());
        let replica = rep.copy(id, &v, &progress).await.expect("copied");
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.store(true, Ordering::Relaxed);
        let writes = writer.await.unwrap();
        assert!(writes > 10, "the writer ran during the copy ({writes} rounds)");
        converges(&o, &t, &v, "the target's view equals the origin's after concurrent writes").await;
        rep.drop_replica(&replica).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn streaming_lag_is_measured_from_lsns() {
    let Some((origin, target)) = urls() else { return };
    let s = "rep_lag";
    let id = "test-rep_lag";
    let (o, t) = fixture(&origin, &target, s, 100).await;
    scrubbed(&origin, &target, id, s, async {
        let rep = replicator(&origin, &target);
        let v = view("a", json!({"query": format!("SELECT id, name FROM {s}.buildings"), "update": "streaming"}));
        let (progress, _) = tokio::sync::watch::channel(CopyProgress::default());
        let mut replica = rep.copy(id, &v, &progress).await.expect("copied");
        let name = artifact_name(id);

        // An idle origin converges to (almost) no lag: walsender keepalives carry the
        // position forward.
        let started = Instant::now();
        let f = refresh_until(
            &rep,
            &mut replica,
            "an idle replica's lag falls under a second",
            || async {},
            |f| f.lag_seconds < 1.0 && f.problem.is_none(),
        )
        .await;
        eprintln!("idle convergence after {:?}: {f:?}", started.elapsed());
        // WAL the subscription does not carry (a table outside the publication), then an
        // idle origin: the lag still falls back within a couple of seconds.
        for change in [
            format!("UPDATE {s}.districts SET name = name || '.'"),
            format!("UPDATE {s}.buildings SET name = name || '.' WHERE id = 2"),
        ] {
            o.batch_execute(&change).await.unwrap();
            let started = Instant::now();
            let f = refresh_until(
                &rep,
                &mut replica,
                "the lag falls back on an idle origin",
                || async {},
                |f| f.lag_seconds < 0.5 && f.lag_bytes == Some(0),
            )
            .await;
            let took = started.elapsed();
            eprintln!("`{change}`: caught up after {took:?}: {f:?}");
            assert!(took < Duration::from_secs(5), "an idle origin converges within seconds, took {took:?}");
        }

        // Subscription disabled, origin changing: the lag grows and the problem is said.
        t.batch_execute(&format!("ALTER SUBSCRIPTION {name} DISABLE")).await.unwrap();
        let change = || async {
            o.batch_execute(&format!("UPDATE {s}.buildings SET name = name || '+' WHERE id = 1")).await.unwrap();
        };
        let f = refresh_until(&rep, &mut replica, "the lag grows while the subscription is disabled", change, |f| {
            f.lag_seconds > 1.0 && f.problem.is_some() && f.lag_bytes.unwrap_or(0) > 0
        })
        .await;
        let problem = f.problem.unwrap();
        assert!(problem.contains("disabled"), "{problem}");

        t.batch_execute(&format!("ALTER SUBSCRIPTION {name} ENABLE")).await.unwrap();
        let started = Instant::now();
        let f = refresh_until(
            &rep,
            &mut replica,
            "the lag is back under a second after enabling",
            || async {},
            |f| f.lag_seconds < 1.0 && f.problem.is_none(),
        )
        .await;
        eprintln!("caught up {:?} after enabling: {f:?}", started.elapsed());
        assert_eq!(rows(&t, &v).await, rows(&o, &v).await);
        rep.drop_replica(&replica).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn watermark_refresh_picks_up_inserts_and_updates() {
    let Some((origin, target)) = urls() else { return };
    let s = "rep_wm";
    let id = "test-rep_wm";
    let (o, t) = fixture(&origin, &target, s, 300).await;
    scrubbed(&origin, &target, id, s, async {
        let rep = replicator(&origin, &target);
        o.batch_execute(&format!("UPDATE {s}.buildings SET updated_at = now() - interval '1 day' - id * interval '1 hour'")).await.unwrap();
        let v = view(
            "a",
            json!({"query": format!("SELECT id, name, height FROM {s}.buildings"), "update": "watermark", "watermarkColumn": "updated_at"}),
        );
        let (progress, _) = tokio::sync::watch::channel(CopyProgress::default());
        let mut replica = rep.copy(id, &v, &progress).await.expect("copied");
        let first = replica.watermark.clone().expect("a watermark");
        assert_eq!(rows(&t, &v).await, rows(&o, &v).await);

        o.batch_execute(&format!(
            "INSERT INTO {s}.buildings (id, district, height, name) VALUES (9001, 1, 10, 'new');
             UPDATE {s}.buildings SET name = 'changed', updated_at = now() WHERE id = 5;"
        ))
        .await
        .unwrap();
        let f = rep.refresh(&mut replica).await.expect("refreshed");
        assert_eq!(f.rows_changed, Some(2), "only the new and changed rows (the overlap re-reads but does not rewrite)");
        assert_eq!(rows(&t, &v).await, rows(&o, &v).await);
        assert_ne!(replica.watermark.as_deref(), Some(first.as_str()), "the watermark moved");

        // Deletes are not seen by a watermark (documented).
        o.batch_execute(&format!("DELETE FROM {s}.buildings WHERE id = 6")).await.unwrap();
        rep.refresh(&mut replica).await.expect("refreshed");
        assert!(rows(&t, &v).await.len() == rows(&o, &v).await.len() + 1);
        rep.drop_replica(&replica).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn cleanup_except_removes_every_unknown_replica() {
    let Some((origin, target)) = urls() else { return };
    // Clean-up sweeps whole databases: this test has its own at both ends.
    let db = "civitas_rep_cleanup";
    for url in [&origin, &target] {
        let a = admin(url).await;
        let exists = a.query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&db]).await.unwrap().is_some();
        if !exists {
            let _ = a.batch_execute(&format!("CREATE DATABASE {db}")).await;
        }
    }
    let (origin_db, target_db) = (with_database(&origin, db), with_database(&target, db));
    let s = "rep_clean";
    let (o, t) = fixture(&origin_db, &target_db, s, 50).await;
    o.batch_execute(&format!(
        "CREATE TABLE {s}.other (id int PRIMARY KEY, v text); INSERT INTO {s}.other VALUES (1, 'a')"
    ))
    .await
    .unwrap();
    let ids = ["test-clean-keep", "test-clean-stream", "test-clean-full"];
    let outcome = AssertUnwindSafe(async {
        let rep = replicator(&origin_db, &target_db);
        let (progress, _) = tokio::sync::watch::channel(CopyProgress::default());
        let keep = view("a", json!({"query": format!("SELECT id FROM {s}.districts"), "update": "streaming"}));
        let stream = view("b", json!({"query": format!("SELECT id, name FROM {s}.buildings"), "update": "streaming"}));
        let full = view("c", json!({"query": format!("SELECT id, v FROM {s}.other")}));
        rep.copy(ids[0], &keep, &progress).await.unwrap();
        rep.copy(ids[1], &stream, &progress).await.unwrap();
        rep.copy(ids[2], &full, &progress).await.unwrap();

        let mut removed = rep.cleanup_except(&[ids[0].to_owned()]).await.unwrap();
        removed.sort();
        let gone = artifact_name(ids[1]);
        let mut expected = vec![
            format!("publication {gone}"),
            format!("slot {gone}"),
            format!("subscription {gone}"),
            format!("table {s}.buildings"),
            format!("table {s}.other"),
        ];
        expected.sort();
        assert_eq!(removed, expected);
        assert_eq!(artifacts(&o, &t, ids[1]).await, Vec::<String>::new());
        assert_eq!(artifacts(&o, &t, ids[0]).await.len(), 3, "the kept replica is untouched");
        assert!(table_exists(&t, &format!("{s}.districts")).await);

        assert_eq!(rep.cleanup_except(&[ids[0].to_owned()]).await.unwrap(), Vec::<String>::new(), "nothing more");
        let removed = rep.cleanup_except(&[]).await.unwrap();
        assert_eq!(removed.len(), 4, "{removed:?}");
        assert_eq!(artifacts(&o, &t, ids[0]).await, Vec::<String>::new());
        let left: i64 = t
            .query_one(
                "SELECT count(*) FROM pg_class WHERE obj_description(oid, 'pg_class') LIKE 'civitas replica %'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(left, 0);
    })
    .catch_unwind()
    .await;
    let _ = replicator(&origin_db, &target_db).cleanup_except(&[]).await;
    drop((o, t));
    for url in [&target, &origin] {
        let _ = admin(url).await.batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).await;
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

#[tokio::test]
async fn streaming_with_a_password_role_that_owns_its_tables() {
    let Some((origin, target)) = urls() else { return };
    // Roles signing in with SCRAM-SHA-256 and MD5 (scripts/services.sh's pg_hba.conf): the
    // replication session and the target's subscription authenticate with the password;
    // the role has REPLICATION and owns its tables, no more (docs/sql.md's privileges).
    for (role, encryption) in [("civitas_scram", "scram-sha-256"), ("civitas_md5", "md5")] {
        let s = format!("rep_auth_{}", &role["civitas_".len()..]);
        let id = format!("test-{s}");
        let password = format!("pw-{role}-'secret");
        let o = admin(&origin).await;
        o.batch_execute(&format!(
            "SET password_encryption = '{encryption}';
             DO $$ BEGIN
                 IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN CREATE ROLE {role} LOGIN REPLICATION; END IF;
             END $$;
             ALTER ROLE {role} PASSWORD '{quoted}';
             GRANT CREATE ON DATABASE civitas TO {role};
             DROP SCHEMA IF EXISTS {s} CASCADE; CREATE SCHEMA {s} AUTHORIZATION {role};
             SET ROLE {role};
             CREATE TABLE {s}.items (id int PRIMARY KEY, label text);
             INSERT INTO {s}.items SELECT i, 'item ' || i FROM generate_series(1, 100) AS i;
             RESET ROLE;",
            quoted = password.replace('\'', "''"),
        ))
        .await
        .expect("role fixture");
        let t = admin(&target).await;
        t.batch_execute(&format!("DROP SCHEMA IF EXISTS {s} CASCADE")).await.unwrap();
        let (origin_url, target_url) = (origin.clone(), target.clone());
        let (o2, t2, s2, id2) = (o, t, s.clone(), id.clone());
        scrubbed(&origin, &target, &id, &s, async move {
            let (o, t, s, id, origin, target) = (o2, t2, s2, id2, origin_url, target_url);
            let encoded: String = password.replace('\'', "%27");
            let source = origin.replacen("postgres://civitas@", &format!("postgres://{role}:{encoded}@"), 1);
            let rep = Replicator::new(
                "origin",
                &ConnectionConfig::new(&source),
                "target",
                &ConnectionConfig::new(&target),
                None,
            )
            .unwrap();
            let v = view("a", json!({"query": format!("SELECT id, label FROM {s}.items"), "update": "streaming"}));
            let (progress, _) = tokio::sync::watch::channel(CopyProgress::default());
            let mut replica = rep.copy(&id, &v, &progress).await.unwrap_or_else(|e| panic!("{role}: {e}"));
            o.batch_execute(&format!("INSERT INTO {s}.items VALUES (101, 'new')")).await.unwrap();
            converges(&o, &t, &v, &format!("{role}: the subscription authenticates and streams")).await;
            let f = rep.refresh(&mut replica).await.unwrap();
            assert_eq!(f.problem, None, "{role}");
            rep.drop_replica(&replica).await.unwrap_or_else(|e| panic!("{role}: {e}"));
            assert_eq!(artifacts(&o, &t, &id).await, Vec::<String>::new());

            // A wrong password is refused without echoing either password.
            let wrong = origin.replacen("postgres://civitas@", &format!("postgres://{role}:not-it@"), 1);
            let rep = Replicator::new(
                "origin",
                &ConnectionConfig::new(&wrong),
                "target",
                &ConnectionConfig::new(&target),
                None,
            )
            .unwrap();
            let err = rep.copy(&id, &v, &progress).await.unwrap_err().to_string();
            assert!(err.contains("password authentication failed"), "{err}");
            assert!(!err.contains("not-it") && !err.contains("secret"), "{err}");
        })
        .await;
    }
}

#[tokio::test]
async fn the_size_estimate_follows_the_tables_and_columns_a_copy_moves() {
    let Some((origin, target)) = urls() else { return };
    let s = "rep_size";
    let (o, _t) = fixture(&origin, &target, s, 5_000).await;
    o.batch_execute(&format!("ANALYZE {s}.buildings; ANALYZE {s}.districts")).await.unwrap();
    scrubbed(&origin, &target, "test-rep_size", s, async {
        let rep = replicator(&origin, &target);
        let all = view("a", json!({"query": format!("SELECT * FROM {s}.buildings")}));
        let narrow = view("b", json!({"query": format!("SELECT id FROM {s}.buildings")}));
        let joined = view(
            "c",
            json!({"query": format!("SELECT b.*, d.name AS dname FROM {s}.buildings b JOIN {s}.districts d ON d.id = b.district")}),
        );
        let (all, narrow, joined) = (
            rep.estimate_bytes(&all).await.unwrap(),
            rep.estimate_bytes(&narrow).await.unwrap(),
            rep.estimate_bytes(&joined).await.unwrap(),
        );
        let table: i64 = o
            .query_one(&format!("SELECT pg_table_size('{s}.buildings')::bigint"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(all, table as u64, "every column: the table's size");
        assert!(narrow > 0 && narrow < all / 2, "one narrow column of six: {narrow} vs {all}");
        assert!(joined > all, "a join moves both tables: {joined} vs {all}");
    })
    .await;
}
