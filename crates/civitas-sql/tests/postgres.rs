//! SQL views against the real PostgreSQL 15 "origin" cluster started by
//! `scripts/services.sh` (which `scripts/test.sh` runs and which exports
//! `CIVITAS_TEST_PG_ORIGIN`). Under CI a missing database fails loudly; elsewhere the test
//! says how to start one and returns.
//!
//! Every test works in its own schema, made afresh, so tests run in parallel and again.

use std::time::{Duration, Instant};

use civitas_model::{DataUnit, Document};
use civitas_sql::{
    ConnectionConfig, HEADER_CURSOR_MAX_ROWS, Part, SqlConfig, SqlError, SqlResponse, SqlUnit, SqlViews,
};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio_postgres::NoTls;

fn origin() -> Option<String> {
    match std::env::var("CIVITAS_TEST_PG_ORIGIN") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("CIVITAS_TEST_PG_ORIGIN is not set under CI: run `bash scripts/services.sh` (scripts/test.sh does)")
        }
        _ => {
            eprintln!(
                "note: skipping the PostgreSQL test; run `bash scripts/services.sh` and set CIVITAS_TEST_PG_ORIGIN"
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

/// A fresh schema `schema` with `buildings(id, district, height, name)`: `rows` rows,
/// district `id % 5`, and names that need quoting in CSV.
async fn fixture(url: &str, schema: &str, rows: i32) -> tokio_postgres::Client {
    let client = admin(url).await;
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema};
             CREATE TABLE {schema}.buildings (id int PRIMARY KEY, district int NOT NULL, height float8, name text);
             INSERT INTO {schema}.buildings
                 SELECT i, i % 5, CASE WHEN i % 7 = 0 THEN NULL ELSE i * 1.5 END,
                        CASE WHEN i = 3 THEN 'Ring, \"Oper\"' ELSE 'b' || i END
                 FROM generate_series(1, {rows}) AS i;
             CREATE SEQUENCE {schema}.counter;"
        ))
        .await
        .expect("fixture");
    client
}

fn views(url: &str, configure: impl FnOnce(&mut ConnectionConfig)) -> SqlViews {
    let mut connection = ConnectionConfig::new(url);
    configure(&mut connection);
    SqlViews::new(&SqlConfig { connections: [("city-db".to_owned(), connection)].into() }).unwrap()
}

fn unit(sql_views: Value) -> DataUnit {
    let names: Vec<Value> =
        sql_views.as_object().unwrap().keys().map(|name| json!({"name": name, "link": format!("/{name}")})).collect();
    let doc = json!({"@type": "DataUnit", "name": "urn:buildings:vienna", "version": "1",
        "metainformation": {"type": "sql:postgresql", "connection": "city-db", "sqlViews": sql_views},
        "views": names});
    match Document::decode(&doc) {
        Ok(Document::DataUnit(u)) => u,
        other => panic!("fixture does not decode: {other:?}"),
    }
}

async fn valid(views: &SqlViews, sql_views: Value) -> SqlUnit {
    views.validate(&unit(sql_views)).await.expect("valid unit").expect("a SQL unit")
}

/// A body read to its end: its bytes, how many data chunks and the largest, and the cursor
/// it ended with (`None` when it has no `Part::End`, i.e. the view has no pages).
async fn body(response: SqlResponse) -> (Vec<u8>, usize, usize, Option<Option<String>>) {
    let paged = response.paged;
    let mut body = response.body;
    let (mut bytes, mut chunks, mut largest, mut end) = (Vec::new(), 0, 0, None);
    while let Some(part) = body.next().await {
        match part.expect("the body streams without error") {
            Part::Data(chunk) => {
                assert!(end.is_none(), "data after the end");
                chunks += 1;
                largest = largest.max(chunk.len());
                bytes.extend_from_slice(&chunk);
            }
            Part::End { next_after } => {
                assert!(end.is_none(), "two ends");
                end = Some(next_after);
            }
        }
    }
    assert_eq!(end.is_some(), paged, "a paged body ends with its cursor, only a paged one");
    (bytes, chunks, largest, end)
}

/// A JSON page's rows and the cursor at its end (checked against the one in the headers
/// where the headers have one).
async fn json_rows(views: &SqlViews, unit: &SqlUnit, view: &str, query: &str) -> (Vec<Value>, Option<String>) {
    let response = views.serve(unit.view(view).unwrap(), query, None).await.expect("served");
    assert_eq!(response.content_type, "application/json");
    let (head, small) = (response.next_after.clone(), response.limit <= HEADER_CURSOR_MAX_ROWS);
    let (bytes, _, _, end) = body(response).await;
    let end = end.flatten();
    if small {
        assert_eq!(head, end, "the headers' cursor is the end's");
    } else {
        assert_eq!(head, None, "a large page's cursor is known at its end only");
    }
    (serde_json::from_slice(&bytes).expect("one JSON array"), end)
}

async fn count(client: &tokio_postgres::Client, schema: &str) -> i64 {
    client.query_one(&format!("SELECT count(*) FROM {schema}.buildings"), &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn validation_checks_views_against_the_database() {
    let Some(url) = origin() else { return };
    let _db = fixture(&url, "sql_validate", 10).await;
    let views = views(&url, |_| {});
    valid(
        &views,
        json!({"by-district": {"query": "SELECT id, district, height FROM sql_validate.buildings WHERE district = $district",
            "parameters": {"district": "int"}, "keyColumn": "id"}}),
    )
    .await;

    let err = views
        .validate(&unit(json!({
            "no-table": {"query": "SELECT id FROM sql_validate.nowhere"},
            "no-column": {"query": "SELECT id, colour FROM sql_validate.buildings"},
            "wrong-type": {"query": "SELECT id FROM sql_validate.buildings WHERE name = $n", "parameters": {"n": "int"}},
            "bad-key": {"query": "SELECT id, district FROM sql_validate.buildings", "keyColumn": "height"},
            "twice": {"query": "SELECT b.id, c.id FROM sql_validate.buildings b JOIN sql_validate.buildings c USING (id)"},
            "fine": {"query": "SELECT id FROM sql_validate.buildings"},
        })))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400);
    let SqlError::Definition(errors) = err else { panic!("{err:?}") };
    let find = |view: &str, field: &str, text: &str| {
        errors.iter().any(|e| {
            e.view.as_deref() == Some(view)
                && e.pointer == format!("/metainformation/sqlViews/{view}/{field}")
                && e.message.contains(text)
        })
    };
    assert!(find("no-table", "query", "relation \"sql_validate.nowhere\" does not exist"), "{errors:?}");
    assert!(find("no-column", "query", "column \"colour\" does not exist"), "{errors:?}");
    assert!(find("wrong-type", "query", "operator does not exist: text = integer"), "{errors:?}");
    assert!(find("bad-key", "keyColumn", "`height` is not a column of the result"), "{errors:?}");
    assert!(find("twice", "query", "two columns named `id`"), "{errors:?}");
    assert!(!errors.iter().any(|e| e.view.as_deref() == Some("fine")), "{errors:?}");
    assert_eq!(errors.len(), 5, "{errors:?}");

    // A connection the configuration does not have.
    let other = SqlViews::new(&SqlConfig::default()).unwrap();
    let err = other.validate(&unit(json!({"a": {"query": "SELECT 1 AS one"}}))).await.unwrap_err();
    let SqlError::Definition(errors) = err else { panic!("{err:?}") };
    assert_eq!(errors[0].pointer, "/metainformation/connection");
    assert!(errors[0].message.contains("`city-db` is not a connection"), "{errors:?}");
}

#[tokio::test]
async fn serves_json_ndjson_and_csv() {
    let Some(url) = origin() else { return };
    let _db = fixture(&url, "sql_formats", 20).await;
    let views = views(&url, |_| {});
    let unit = valid(
        &views,
        json!({"by-district": {"query": "SELECT id, district, height, name, id % 2 = 0 AS even FROM sql_formats.buildings WHERE district = $district ORDER BY id",
            "parameters": {"district": "int"}}}),
    )
    .await;
    let view = unit.view("by-district").unwrap();

    let (rows, next) = json_rows(&views, &unit, "by-district", "district=3").await;
    assert_eq!(next, None, "a view without keyColumn has no pages");
    assert_eq!(
        rows,
        [
            json!({"id": 3, "district": 3, "height": 4.5, "name": "Ring, \"Oper\"", "even": false}),
            json!({"id": 8, "district": 3, "height": 12, "name": "b8", "even": true}),
            json!({"id": 13, "district": 3, "height": 19.5, "name": "b13", "even": false}),
            json!({"id": 18, "district": 3, "height": 27, "name": "b18", "even": true}),
        ]
    );
    let (rows, _) = json_rows(&views, &unit, "by-district", "district=0").await;
    assert_eq!(rows[1], json!({"id": 10, "district": 0, "height": 15, "name": "b10", "even": true}));
    assert_eq!(rows[2], json!({"id": 15, "district": 0, "height": 22.5, "name": "b15", "even": false}));
    let (rows, _) = json_rows(&views, &unit, "by-district", "district=2").await;
    assert_eq!(rows[0], json!({"id": 2, "district": 2, "height": 3, "name": "b2", "even": true}));
    assert_eq!(rows[1]["height"], json!(null), "id 7 has no height");
    let (rows, _) = json_rows(&views, &unit, "by-district", "district=9").await;
    assert!(rows.is_empty(), "no rows is `[]`");

    let response = views.serve(view, "district=3", Some("application/x-ndjson")).await.unwrap();
    assert_eq!(response.content_type, "application/x-ndjson");
    let (bytes, _, _, _) = body(response).await;
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.ends_with('\n'));
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["name"], json!("Ring, \"Oper\""));

    let response = views.serve(view, "district=2", Some("text/html;q=0.9, text/csv")).await.unwrap();
    assert_eq!(response.content_type, "text/csv; charset=utf-8");
    let (bytes, _, _, _) = body(response).await;
    assert_eq!(
        String::from_utf8(bytes).unwrap(),
        "id,district,height,name,even\n2,2,3,b2,true\n7,2,,b7,false\n12,2,18,b12,true\n17,2,25.5,b17,false\n"
    );
    let response = views.serve(view, "district=3", Some("text/csv")).await.unwrap();
    let (bytes, _, _, _) = body(response).await;
    assert!(
        String::from_utf8(bytes)
            .unwrap()
            .starts_with("id,district,height,name,even\n3,3,4.5,\"Ring, \"\"Oper\"\"\",false\n")
    );

    let err = views.serve(view, "district=3", Some("application/xml")).await.unwrap_err();
    assert_eq!(err.status(), 406);
}

#[tokio::test]
async fn keyset_pages_cover_every_row_once() {
    let Some(url) = origin() else { return };
    let db = fixture(&url, "sql_pages", 103).await;
    let views = views(&url, |c| c.max_rows = 25);
    let unit = valid(
        &views,
        json!({"tall": {"query": "SELECT id, height FROM sql_pages.buildings WHERE district <> $skip",
            "parameters": {"skip": "int"}, "keyColumn": "id"}}),
    )
    .await;
    let want: Vec<i32> = db
        .query("SELECT id FROM sql_pages.buildings WHERE district <> 4 ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(want.len(), 83);

    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let query = match &after {
            None => "skip=4&limit=10".to_owned(),
            Some(a) => format!("skip=4&limit=10&after={a}"),
        };
        let (rows, next) = json_rows(&views, &unit, "tall", &query).await;
        pages += 1;
        assert!(rows.len() <= 10, "page {pages} has {} rows", rows.len());
        seen.extend(rows.iter().map(|r| r["id"].as_i64().unwrap() as i32));
        match next {
            Some(n) => {
                assert_eq!(rows.len(), 10, "only the last page is short");
                assert_eq!(n, rows.last().unwrap()["id"].to_string(), "the cursor is the page's last key");
                after = Some(n);
            }
            None => break,
        }
        assert!(pages < 20, "pagination does not end");
    }
    assert_eq!(seen, want, "every row once, in key order");
    assert_eq!(pages, 9);

    // A page that ends exactly at the last row has no cursor: no empty extra page.
    let (rows, next) = json_rows(&views, &unit, "tall", "skip=4&limit=3&after=100").await;
    assert_eq!(rows.iter().map(|r| r["id"].as_i64().unwrap()).collect::<Vec<_>>(), [101, 102, 103]);
    assert_eq!(next, None);

    // `limit` is capped by max_rows, and max_rows is the default page.
    let response = views.serve(unit.view("tall").unwrap(), "skip=4&limit=1000", None).await.unwrap();
    assert_eq!(response.limit, 25);
    assert_eq!(response.next_after.as_deref(), Some("31"));
    let (bytes, _, _, _) = body(response).await;
    assert_eq!(serde_json::from_slice::<Vec<Value>>(&bytes).unwrap().len(), 25);
    let (rows, _) = json_rows(&views, &unit, "tall", "skip=4").await;
    assert_eq!(rows.len(), 25);
}

#[tokio::test]
async fn parameter_errors_name_the_parameter() {
    let Some(url) = origin() else { return };
    let _db = fixture(&url, "sql_params", 10).await;
    let views = views(&url, |_| {});
    let unit = valid(
        &views,
        json!({
            "typed": {"query": "SELECT id FROM sql_params.buildings WHERE district = $d AND height < $h AND (name = $n OR $flag) AND $day <= current_date AND $at <= now()::timestamp AND id < $big",
                "parameters": {"d": "int", "h": "float", "n": "text", "flag": "bool", "day": "date", "at": "timestamp", "big": "bigint"},
                "keyColumn": "id"},
            "plain": {"query": "SELECT id FROM sql_params.buildings"},
        }),
    )
    .await;
    let typed = unit.view("typed").unwrap();
    let good = "d=1&h=100&n=x&flag=true&day=2024-05-01&at=2024-05-01T10:00:00&big=9000000000";
    let (rows, _) = json_rows(&views, &unit, "typed", good).await;
    assert_eq!(rows.iter().map(|r| r["id"].as_i64().unwrap()).collect::<Vec<_>>(), [1, 6]);

    let cases = [
        ("d=abc&h=1&n=x&flag=true&day=2024-05-01&at=2024-05-01T10:00:00&big=1", "d", "32-bit integer"),
        ("d=1&h=tall&n=x&flag=true&day=2024-05-01&at=2024-05-01T10:00:00&big=1", "h", "a number"),
        ("d=1&h=NaN&n=x&flag=true&day=2024-05-01&at=2024-05-01T10:00:00&big=1", "h", "finite"),
        ("d=1&h=1&n=x&flag=yes&day=2024-05-01&at=2024-05-01T10:00:00&big=1", "flag", "true or false"),
        ("d=1&h=1&n=x&flag=true&day=01.05.2024&at=2024-05-01T10:00:00&big=1", "day", "YYYY-MM-DD"),
        ("d=1&h=1&n=x&flag=true&day=2024-05-01&at=noon&big=1", "at", "timestamp"),
        ("d=1&h=1&n=x&flag=true&day=2024-05-01&at=2024-05-01T10:00:00&big=1e3", "big", "64-bit integer"),
        ("d=99999999999&h=1&n=x&flag=true&day=2024-05-01&at=2024-05-01T10:00:00&big=1", "d", "32-bit integer"),
        ("h=1&n=x&flag=true&day=2024-05-01&at=2024-05-01T10:00:00&big=1", "d", "is required (int)"),
        (&format!("{good}&d=2"), "d", "more than once"),
        (&format!("{good}&colour=red"), "colour", "is not a parameter of view"),
        (&format!("{good}&limit=0"), "limit", ">= 1"),
        (&format!("{good}&limit=ten"), "limit", ">= 1"),
        (&format!("{good}&after=abc"), "after", "not a value of the key column"),
    ];
    for (query, name, text) in cases {
        match views.serve(typed, query, None).await {
            Err(e @ SqlError::BadParameter { .. }) => {
                assert_eq!(e.status(), 400);
                let SqlError::BadParameter { name: got, message } = &e else { unreachable!() };
                assert_eq!(got, name, "{query}: {e}");
                assert!(message.contains(text), "{query}: {e}");
            }
            other => panic!("{query}: expected a 400 naming `{name}`, got {other:?}"),
        }
    }
    let err = views.serve(unit.view("plain").unwrap(), "after=3", None).await.unwrap_err();
    assert!(
        matches!(&err, SqlError::BadParameter { name, message } if name == "after" && message.contains("no keyColumn"))
    );
}

#[tokio::test]
async fn injection_through_parameters_is_inert() {
    let Some(url) = origin() else { return };
    let db = fixture(&url, "sql_inject", 30).await;
    let views = views(&url, |_| {});
    let unit = valid(
        &views,
        json!({
            "by-name": {"query": "SELECT id, name FROM sql_inject.buildings WHERE name = $name", "parameters": {"name": "text"}, "keyColumn": "id"},
            "by-district": {"query": "SELECT id FROM sql_inject.buildings WHERE district = $district", "parameters": {"district": "int"}, "keyColumn": "id"},
        }),
    )
    .await;
    let before = count(&db, "sql_inject").await;
    let attacks = [
        "'; DROP TABLE sql_inject.buildings; --",
        "x' OR '1'='1",
        "x' OR 1=1 --",
        "b1'; DELETE FROM sql_inject.buildings WHERE '1'='1",
        "$$; DROP TABLE sql_inject.buildings; $$",
        "\\'; TRUNCATE sql_inject.buildings; --",
        "b1\u{0}; DROP TABLE sql_inject.buildings",
        "1) OR (1=1",
        "$1",
    ];
    for attack in attacks {
        let query = serde_urlencoded::to_string([("name", attack)]).unwrap();
        match views.serve(unit.view("by-name").unwrap(), &query, None).await {
            Ok(response) => {
                let (bytes, _, _, _) = body(response).await;
                assert_eq!(bytes, b"[]", "{attack:?} matched rows: it was not taken as a plain value");
            }
            // PostgreSQL text cannot hold NUL: refused before the database is asked.
            Err(e) => assert!(attack.contains('\u{0}') && e.status() == 400, "{attack:?}: {e}"),
        }
        for (name, value) in [("district", attack), ("after", attack)] {
            let query = if name == "district" {
                serde_urlencoded::to_string([("district", value)]).unwrap()
            } else {
                serde_urlencoded::to_string([("district", "1"), ("after", value)]).unwrap()
            };
            let err = views.serve(unit.view("by-district").unwrap(), &query, None).await.unwrap_err();
            assert_eq!(err.status(), 400, "{name}={attack:?}: {err}");
        }
    }
    // A value that looks like SQL is matched literally: a row with that very name is found.
    db.execute("INSERT INTO sql_inject.buildings VALUES (1000, 1, 1, $1)", &[&attacks[0]]).await.unwrap();
    let query = serde_urlencoded::to_string([("name", attacks[0])]).unwrap();
    let (rows, _) = json_rows(&views, &unit, "by-name", &query).await;
    assert_eq!(rows, [json!({"id": 1000, "name": attacks[0]})]);

    assert_eq!(count(&db, "sql_inject").await, before + 1, "the table is still there, rows unchanged");
    let tables: i64 =
        db.query_one("SELECT count(*) FROM pg_tables WHERE schemaname = 'sql_inject'", &[]).await.unwrap().get(0);
    assert_eq!(tables, 1);
}

#[tokio::test]
async fn queries_run_read_only_under_a_statement_timeout() {
    let Some(url) = origin() else { return };
    let _db = fixture(&url, "sql_limits", 10).await;
    let views = views(&url, |c| {
        c.statement_timeout_ms = 200;
        c.pool_size = 1;
    });
    let unit = valid(
        &views,
        json!({
            "slow": {"query": "SELECT 1 AS id, pg_sleep(30) AS slept"},
            "writes": {"query": "SELECT nextval('sql_limits.counter') AS n"},
            "fast": {"query": "SELECT id FROM sql_limits.buildings"},
        }),
    )
    .await;
    let started = Instant::now();
    let err = views.serve(unit.view("slow").unwrap(), "", None).await.unwrap_err();
    assert!(matches!(err, SqlError::Timeout { timeout_ms: 200, .. }), "{err:?}");
    assert_eq!(err.status(), 504);
    assert!(started.elapsed() < Duration::from_secs(10), "the timeout fired: {:?}", started.elapsed());

    // A SELECT that would write is stopped by the READ ONLY transaction.
    let err = views.serve(unit.view("writes").unwrap(), "", None).await.unwrap_err();
    assert!(matches!(&err, SqlError::Database { message, .. } if message.contains("read-only transaction")), "{err:?}");

    // The single pooled connection that failed was replaced, not reused half-done.
    let (rows, _) = json_rows(&views, &unit, "fast", "").await;
    assert_eq!(rows.len(), 10);
}

#[tokio::test]
async fn rows_stream_in_bounded_chunks_and_an_abandoned_body_frees_its_connection() {
    let Some(url) = origin() else { return };
    let _db = fixture(&url, "sql_stream", 1).await;
    let views = views(&url, |c| {
        c.pool_size = 1;
        c.max_rows = 1_000_000;
    });
    let unit = valid(
        &views,
        json!({"many": {"query": "SELECT i AS id, repeat('x', 40) AS pad FROM generate_series(1, $n) AS i",
            "parameters": {"n": "int"}, "keyColumn": "id"}}),
    )
    .await;
    let many = unit.view("many").unwrap();
    let response = views.serve(many, "n=60000", Some("application/x-ndjson")).await.unwrap();
    let (bytes, chunks, largest, _) = body(response).await;
    assert_eq!(bytes.iter().filter(|b| **b == b'\n').count(), 60_000);
    assert!(chunks > 50, "the body came in {chunks} chunks");
    assert!(largest < 64 * 1024, "a chunk of {largest} bytes");

    // Read one chunk and walk away: the connection (pool of one) must come free.
    let response = views.serve(many, "n=60000", None).await.unwrap();
    let mut stream = response.body;
    let Part::Data(first) = stream.next().await.unwrap().unwrap() else { panic!("no data first") };
    assert!(first.starts_with(b"[{\"id\":1,"));
    drop(stream);
    let (rows, next) = json_rows(&views, &unit, "many", "n=5&limit=2").await;
    assert_eq!(rows.len(), 2);
    assert_eq!(next.as_deref(), Some("2"));

    // A page larger than HEADER_CURSOR_MAX_ROWS: its cursor is known at its end only (the
    // row read past the page is not sent); the last page of any size ends without one.
    let big = HEADER_CURSOR_MAX_ROWS + 5;
    let (rows, next) = json_rows(&views, &unit, "many", &format!("n=60000&limit={big}")).await;
    assert_eq!(rows.len() as u64, big);
    assert_eq!(next, Some(big.to_string()));
    let (rows, next) = json_rows(&views, &unit, "many", &format!("n=60000&limit={big}&after=50000")).await;
    assert_eq!((rows.len(), rows[0]["id"].as_i64()), (10_000, Some(50_001)));
    assert_eq!(next, None);
    let (rows, next) = json_rows(&views, &unit, "many", &format!("n={big}&limit={big}")).await;
    assert_eq!((rows.len() as u64, next), (big, None), "a page that ends at the last row has no cursor");
}

#[tokio::test]
async fn an_unreachable_database_is_unavailable_within_the_connect_timeout() {
    let Some(url) = origin() else { return };
    let _db = fixture(&url, "sql_unreachable", 1).await;
    let good = views(&url, |_| {});
    let unit = valid(&good, json!({"all": {"query": "SELECT id FROM sql_unreachable.buildings"}})).await;
    let view = unit.view("all").unwrap();

    // A port nobody listens on: refused at once.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    // A listener that accepts and never answers: only the timeout ends the wait.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let _keep = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    for port in [closed, silent_port] {
        let down = views(&format!("postgres://civitas@127.0.0.1:{port}/civitas"), |c| c.connect_timeout_ms = 300);
        let started = Instant::now();
        let err = down.serve(view, "", None).await.unwrap_err();
        assert!(matches!(&err, SqlError::Unavailable { connection, .. } if connection == "city-db"), "{err:?}");
        assert_eq!(err.status(), 503);
        assert!(started.elapsed() < Duration::from_secs(5), "port {port}: {:?}", started.elapsed());
        let err = down.validate(&unit_for_validation()).await.unwrap_err();
        assert_eq!(err.status(), 503, "{err:?}");
    }
}

fn unit_for_validation() -> DataUnit {
    unit(json!({"all": {"query": "SELECT 1 AS id"}}))
}

/// The two clusters issue 8's migration and replication will use: both answer and both
/// run with `wal_level = logical` (set by scripts/services.sh).
#[tokio::test]
async fn origin_and_target_clusters_run_with_logical_wal() {
    let Some(origin) = origin() else { return };
    let target = match std::env::var("CIVITAS_TEST_PG_TARGET") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!("CIVITAS_TEST_PG_ORIGIN is set but CIVITAS_TEST_PG_TARGET is not: run `bash scripts/services.sh`"),
    };
    assert_ne!(origin, target);
    let mut ports = Vec::new();
    for url in [&origin, &target] {
        let client = admin(url).await;
        let row = client.query_one("SELECT current_setting('wal_level'), current_setting('port')", &[]).await.unwrap();
        assert_eq!(row.get::<_, String>(0), "logical", "{url}");
        ports.push(row.get::<_, String>(1));
    }
    assert_ne!(ports[0], ports[1], "two clusters, not one");
}

/// A view's statements are prepared once per connection, not once per request: the oldest
/// statement prepared in the (single pooled) session is the same at the second request.
#[tokio::test]
async fn statements_are_prepared_once_per_connection() {
    let Some(url) = origin() else { return };
    let views = views(&url, |c| c.pool_size = 1);
    let unit = valid(
        &views,
        json!({"prepared": {"query": "SELECT min(prepare_time)::text AS oldest, count(*)::int AS n FROM pg_prepared_statements WHERE $x", "parameters": {"x": "bool"}}}),
    )
    .await;
    let (first, _) = json_rows(&views, &unit, "prepared", "x=true").await;
    let (second, _) = json_rows(&views, &unit, "prepared", "x=true").await;
    assert!(first[0]["n"].as_i64().unwrap() >= 2, "{first:?}");
    assert_eq!(first, second, "the second request prepared nothing new");
}

/// A full pool is a bounded wait, then `Unavailable`; the held connection, once its body is
/// read to the end, serves again.
#[tokio::test]
async fn a_full_pool_is_unavailable_after_the_connect_timeout() {
    let Some(url) = origin() else { return };
    let views = views(&url, |c| {
        c.pool_size = 1;
        c.connect_timeout_ms = 300;
    });
    let unit = valid(&views, json!({"rows": {"query": "SELECT i AS id FROM generate_series(1, 100000) AS i"}})).await;
    let view = unit.view("rows").unwrap();
    let held = views.serve(view, "", Some("text/csv")).await.unwrap();
    let started = Instant::now();
    let err = views.serve(view, "", None).await.unwrap_err();
    assert!(matches!(&err, SqlError::Unavailable { message, .. } if message.contains("no free connection")), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    let (bytes, _, _, _) = body(held).await;
    assert_eq!(bytes.iter().filter(|b| **b == b'\n').count(), 10_001, "header and every row");
    let (rows, _) = json_rows(&views, &unit, "rows", "limit=3").await;
    assert_eq!(rows, [json!({"id": 1}), json!({"id": 2}), json!({"id": 3})]);
}
