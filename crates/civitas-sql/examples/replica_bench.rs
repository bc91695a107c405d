//! Benchmark of SQL replicas (issue 8), run by `bench/sql-replica.sh`:
//!
//! (a) the initial copy of a 158,000-row `buildings` table (`Replicator::copy`) against
//!     `pg_dump -t … | psql` of the same table into the same target, timed in the same
//!     run, alternating, several rounds;
//! (b) streaming lag at 1,000 row changes/s: sampled by `Replicator::refresh` every 150 ms
//!     and, independently, by polling a marker row at the target every 20 ms.
//!
//! Prints `RESULT key value` lines for the script.
//!
//! usage: replica_bench --origin URL --target URL [--rows 158000] [--rounds 5]
//!        [--rate 1000] [--seconds 30]

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use civitas_model::{DataUnit, Document};
use civitas_sql::{ConnectionConfig, CopyProgress, Replicator, SqlView, parse_unit};
use serde_json::json;
use tokio_postgres::NoTls;

const SCHEMA: &str = "bench_replica";

struct Args {
    origin: String,
    target: String,
    rows: i64,
    rounds: usize,
    rate: u64,
    seconds: u64,
}

fn args() -> anyhow::Result<Args> {
    let mut a =
        Args { origin: String::new(), target: String::new(), rows: 158_000, rounds: 5, rate: 1000, seconds: 30 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--origin" => a.origin = value,
            "--target" => a.target = value,
            "--rows" => a.rows = value.parse()?,
            "--rounds" => a.rounds = value.parse()?,
            "--rate" => a.rate = value.parse()?,
            "--seconds" => a.seconds = value.parse()?,
            _ => bail!("unknown flag {flag}"),
        }
    }
    if a.origin.is_empty() || a.target.is_empty() {
        bail!("--origin and --target are required");
    }
    Ok(a)
}

async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

fn view(update: &str) -> anyhow::Result<SqlView> {
    let doc = json!({"@type": "DataUnit", "name": "urn:bench:buildings", "version": "1",
        "metainformation": {"type": "sql:postgresql", "connection": "origin", "sqlViews": {"all": {
            "query": format!("SELECT id, district, height, name, geometry, updated_at FROM {SCHEMA}.buildings"),
            "update": update, "keyColumn": "id"}}},
        "views": [{"name": "all", "link": "/all"}]});
    let Ok(Document::DataUnit(unit)) = Document::decode(&doc) else { bail!("the bench unit does not decode") };
    let unit: DataUnit = unit;
    parse_unit(&unit)?.context("a SQL unit")?.views.remove("all").context("the view")
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    percentile(&xs, 0.5)
}

fn now_ms() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0)
}

/// `pg_dump -t` of the table piped into `psql` at the target, timed.
fn pg_dump_copy(a: &Args) -> anyhow::Result<f64> {
    let script = format!(
        "set -euo pipefail; pg_dump --no-owner --no-privileges -t {SCHEMA}.buildings '{}' | psql -X -q -v ON_ERROR_STOP=1 '{}' >/dev/null",
        a.origin, a.target
    );
    let started = Instant::now();
    let status = Command::new("bash").arg("-c").arg(&script).status()?;
    let took = started.elapsed().as_secs_f64();
    if !status.success() {
        bail!("pg_dump | psql failed: {status}");
    }
    Ok(took)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    let origin = connect(&a.origin).await?;
    let target = connect(&a.target).await?;
    let rep = Arc::new(Replicator::new(
        "origin",
        &ConnectionConfig::new(&a.origin),
        "target",
        &ConnectionConfig::new(&a.target),
        None,
    )?);
    let ids = ["bench-copy", "bench-stream"];
    let _ = rep.cleanup_except(&[]).await; // leftovers of an interrupted run (bench databases only)
    for id in ids {
        let _ = rep.drop_replica(&stub(id)).await;
    }

    eprintln!("loading {} rows into {SCHEMA}.buildings at the origin", a.rows);
    origin
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA};
             CREATE TABLE {SCHEMA}.buildings (id int PRIMARY KEY, district int NOT NULL, height float8,
                 name text, geometry text, updated_at timestamptz NOT NULL DEFAULT now());
             INSERT INTO {SCHEMA}.buildings
                 SELECT i, i % 23, 3 + (i % 97) * 0.5, 'Building ' || i,
                        'POLYGON((' || (16.3 + i * 1e-6)::text || ' 48.2, 16.31 48.21, 16.32 48.2, 16.3 48.2))' || repeat('.', 20),
                        now() - (i || ' seconds')::interval
                 FROM generate_series(1, {rows}) AS i;
             ANALYZE {SCHEMA}.buildings;",
            rows = a.rows
        ))
        .await?;
    let size: i64 =
        origin.query_one(&format!("SELECT pg_total_relation_size('{SCHEMA}.buildings')"), &[]).await?.get(0);
    println!("RESULT rows {}", a.rows);
    println!("RESULT table_mib {:.1}", size as f64 / 1048576.0);

    // (a) initial copy vs pg_dump | psql, alternating.
    let full = view("full-copy")?;
    let (mut ours, mut peer) = (Vec::new(), Vec::new());
    for round in 0..a.rounds {
        let fresh = format!("DROP SCHEMA IF EXISTS {SCHEMA} CASCADE");
        let run_ours = || async {
            target.batch_execute(&fresh).await?;
            let (progress, _) = tokio::sync::watch::channel(CopyProgress::default());
            let started = Instant::now();
            let replica = rep.copy(ids[0], &full, &progress).await?;
            let took = started.elapsed().as_secs_f64();
            anyhow::ensure!(replica.rows == a.rows as u64, "copied {} rows", replica.rows);
            rep.drop_replica(&replica).await?;
            anyhow::Ok(took)
        };
        let run_peer = || async {
            target.batch_execute(&format!("{fresh}; CREATE SCHEMA {SCHEMA}")).await?;
            let took = pg_dump_copy(&a)?;
            let n: i64 = target.query_one(&format!("SELECT count(*) FROM {SCHEMA}.buildings"), &[]).await?.get(0);
            anyhow::ensure!(n == a.rows, "pg_dump copied {n} rows");
            target.batch_execute(&fresh).await?;
            anyhow::Ok(took)
        };
        if round % 2 == 0 {
            ours.push(run_ours().await?);
            peer.push(run_peer().await?);
        } else {
            peer.push(run_peer().await?);
            ours.push(run_ours().await?);
        }
        eprintln!("round {round}: copy {:.3}s, pg_dump|psql {:.3}s", ours[round], peer[round]);
    }
    let (ours_m, peer_m) = (median(ours.clone()), median(peer.clone()));
    println!("RESULT copy_s_median {ours_m:.3}");
    println!("RESULT copy_s_all {}", ours.iter().map(|s| format!("{s:.3}")).collect::<Vec<_>>().join(","));
    println!("RESULT pgdump_s_median {peer_m:.3}");
    println!("RESULT pgdump_s_all {}", peer.iter().map(|s| format!("{s:.3}")).collect::<Vec<_>>().join(","));
    println!("RESULT copy_rows_per_s {:.0}", a.rows as f64 / ours_m);
    println!("RESULT copy_speedup_vs_pgdump {:.2}", peer_m / ours_m);

    // (b) streaming lag under a steady write load.
    target.batch_execute(&format!("DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")).await?;
    origin
        .batch_execute(&format!(
            "INSERT INTO {SCHEMA}.buildings (id, district, height, name) VALUES (0, 0, 0, 'marker')"
        ))
        .await?;
    let stream = view("streaming")?;
    let (progress, _) = tokio::sync::watch::channel(CopyProgress::default());
    let mut replica = rep.copy(ids[1], &stream, &progress).await?;
    let stop = Arc::new(AtomicBool::new(false));

    // Writer: `rate` row changes/s in transactions of 10 rows every 10 ms (at 1,000/s), and
    // the marker row's height set to the origin-side send time (ms) every 50 ms.
    let writer = {
        let (url, stop, rate, rows) = (a.origin.clone(), stop.clone(), a.rate, a.rows);
        tokio::spawn(async move {
            let o = connect(&url).await?;
            let batch = 10u64;
            let period = Duration::from_secs_f64(batch as f64 / rate as f64);
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let (mut changed, mut next_id, mut last_marker) = (0u64, 1i64, Instant::now());
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let upper = next_id + batch as i64 - 1;
                o.batch_execute(&format!(
                    "UPDATE {SCHEMA}.buildings SET height = height + 1, updated_at = now() WHERE id BETWEEN {next_id} AND {upper}"
                ))
                .await?;
                changed += batch;
                next_id = if upper >= rows { 1 } else { upper + 1 };
                if last_marker.elapsed() >= Duration::from_millis(50) {
                    last_marker = Instant::now();
                    o.execute(&format!("UPDATE {SCHEMA}.buildings SET height = $1 WHERE id = 0"), &[&now_ms()]).await?;
                }
            }
            anyhow::Ok(changed)
        })
    };
    // Marker poller at the target: each new marker value's first sighting gives a lag.
    let poller = {
        let (url, stop) = (a.target.clone(), stop.clone());
        tokio::spawn(async move {
            let t = connect(&url).await?;
            let (mut lags, mut last) = (Vec::new(), 0.0f64);
            while !stop.load(Ordering::Relaxed) {
                let sent: f64 =
                    t.query_one(&format!("SELECT height FROM {SCHEMA}.buildings WHERE id = 0"), &[]).await?.get(0);
                if sent > last {
                    if last > 0.0 {
                        lags.push((now_ms() - sent) / 1000.0);
                    }
                    last = sent;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            anyhow::Ok(lags)
        })
    };
    let started = Instant::now();
    let mut refresh_lags = Vec::new();
    let mut problems = 0;
    while started.elapsed() < Duration::from_secs(a.seconds) {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let f = rep.refresh(&mut replica).await?;
        if f.problem.is_some() {
            problems += 1;
        }
        // The first seconds are the subscription's start-up, not steady state.
        if started.elapsed() > Duration::from_secs(3) {
            refresh_lags.push(f.lag_seconds);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let changed = writer.await??;
    let mut marker_lags = poller.await??;
    let elapsed = started.elapsed().as_secs_f64();
    refresh_lags.sort_by(f64::total_cmp);
    marker_lags.sort_by(f64::total_cmp);
    println!("RESULT stream_changes_per_s {:.0}", changed as f64 / elapsed);
    for (name, lags) in [("refresh", &refresh_lags), ("marker", &marker_lags)] {
        println!("RESULT lag_{name}_samples {}", lags.len());
        println!("RESULT lag_{name}_p50_s {:.3}", percentile(lags, 0.5));
        println!("RESULT lag_{name}_p95_s {:.3}", percentile(lags, 0.95));
        println!("RESULT lag_{name}_max_s {:.3}", lags.last().copied().unwrap_or(f64::NAN));
    }
    println!("RESULT lag_refresh_problems {problems}");
    rep.drop_replica(&replica).await?;
    origin.batch_execute(&format!("DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")).await?;
    target.batch_execute(&format!("DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")).await?;
    Ok(())
}

/// A record naming every artifact of `id`, to remove leftovers of an interrupted run.
fn stub(id: &str) -> civitas_sql::SqlReplica {
    let name = civitas_sql::replica::artifact_name(id);
    civitas_sql::SqlReplica {
        replica_id: id.into(),
        view: String::new(),
        tables: Vec::new(),
        update: civitas_sql::UpdateMode::Streaming,
        publication: Some(name.clone()),
        slot: Some(name.clone()),
        subscription: Some(name),
        watermark: None,
        rows: 0,
        bytes: 0,
        copied_at_unix_ms: 0,
    }
}
