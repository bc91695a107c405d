//! Refreshing copied replicas: incremental by a watermark column, or full.
//!
//! Both read one source snapshot and write one target transaction; readers at the target
//! keep seeing the previous rows until it commits (`DELETE`, not `TRUNCATE`, so no lock
//! blocks them). Freshness is the time the source snapshot was taken.

use tokio::sync::watch;

use super::copy::{begin_snapshot, copy_table, max_watermark, select_sql};
use super::coverage::CoveredTable;
use super::{CopyProgress, Freshness, Replicator, SqlReplica, now_unix_ms, quote_literal};
use crate::error::SqlError;
use crate::serve::quote_ident;

/// How far below the last watermark an incremental copy starts again, for time-typed
/// watermark columns: rows committed a little late with a slightly older value are still
/// picked up. (Numbers get no overlap: `>=` the last value.)
const TIME_OVERLAP: &str = "interval '1 minute'";

/// Incremental copy: the rows whose `column` is at least the last watermark (minus the
/// overlap) are upserted by primary key; tables without the column are copied whole.
/// Deletes at the origin are not seen.
pub(crate) async fn watermark(rep: &Replicator, replica: &mut SqlReplica, column: &str) -> Result<Freshness, SqlError> {
    let id = replica.replica_id.clone();
    let failed = |doing: &str, e| Replicator::failed(&id, doing, e);
    let source = rep.connect_source().await?;
    let target = rep.connect_target().await?;
    let snapshot_at = begin_snapshot(&source, None).await.map_err(|e| failed("starting the source snapshot", e))?;
    let next = max_watermark(&source, &replica.tables, column).await.map_err(|e| failed("reading the watermark", e))?;
    let (progress, _) = watch::channel(CopyProgress::default());
    target.batch_execute("BEGIN").await.map_err(|e| failed("starting the target transaction", e))?;
    let mut changed = 0;
    for (i, table) in replica.tables.iter().enumerate() {
        let doing = format!("refreshing `{}.{}`", table.schema, table.name);
        let Some(column_type) = table.columns.iter().find(|c| c.name == column).map(|c| c.sql_type.as_str()) else {
            changed += replace(&source, &target, table, &progress).await.map_err(|e| failed(&doing, e))?;
            continue;
        };
        let mut conditions: Vec<String> = table.row_filter.iter().map(|f| format!("({f})")).collect();
        if let Some(last) = &replica.watermark {
            let overlap = if column_type.starts_with("timestamp") || column_type == "date" {
                format!(" - {TIME_OVERLAP}")
            } else {
                String::new()
            };
            conditions.push(format!("{} >= {}::{column_type}{overlap}", quote_ident(column), quote_literal(last)));
        }
        let filter = (!conditions.is_empty()).then(|| conditions.join(" AND "));
        let stage = format!("civitas_stage_{i}");
        let create = format!("CREATE TEMP TABLE {stage} (LIKE {}) ON COMMIT DROP", table.qualified_name());
        target.batch_execute(&create).await.map_err(|e| failed(&doing, e))?;
        copy_table(&source, &target, &select_sql(table, filter.as_deref()), &stage, table, &progress)
            .await
            .map_err(|e| failed(&doing, e))?;
        changed += target.execute(&upsert_sql(table, &stage), &[]).await.map_err(|e| failed(&doing, e))?;
    }
    target.batch_execute("COMMIT").await.map_err(|e| failed("committing the target transaction", e))?;
    let _ = source.batch_execute("COMMIT").await;
    if next.is_some() {
        replica.watermark = next;
    }
    Ok(copied_freshness(snapshot_at, changed))
}

/// Full copy: every table emptied and copied again, in one target transaction.
pub(crate) async fn full_copy(rep: &Replicator, replica: &mut SqlReplica) -> Result<Freshness, SqlError> {
    let id = replica.replica_id.clone();
    let failed = |doing: &str, e| Replicator::failed(&id, doing, e);
    let source = rep.connect_source().await?;
    let target = rep.connect_target().await?;
    let snapshot_at = begin_snapshot(&source, None).await.map_err(|e| failed("starting the source snapshot", e))?;
    let (progress, _) = watch::channel(CopyProgress::default());
    target.batch_execute("BEGIN").await.map_err(|e| failed("starting the target transaction", e))?;
    let mut changed = 0;
    for table in &replica.tables {
        let doing = format!("refreshing `{}.{}`", table.schema, table.name);
        changed += replace(&source, &target, table, &progress).await.map_err(|e| failed(&doing, e))?;
    }
    target.batch_execute("COMMIT").await.map_err(|e| failed("committing the target transaction", e))?;
    let _ = source.batch_execute("COMMIT").await;
    Ok(copied_freshness(snapshot_at, changed))
}

/// `DELETE FROM t` and COPY it again; returns the rows copied.
async fn replace(
    source: &tokio_postgres::Client,
    target: &tokio_postgres::Client,
    table: &CoveredTable,
    progress: &watch::Sender<CopyProgress>,
) -> Result<u64, tokio_postgres::Error> {
    target.batch_execute(&format!("DELETE FROM {}", table.qualified_name())).await?;
    let select = select_sql(table, table.row_filter.as_deref());
    let (rows, _) = copy_table(source, target, &select, &table.qualified_name(), table, progress).await?;
    Ok(rows)
}

/// `INSERT … SELECT … FROM stage ON CONFLICT (pk) DO UPDATE SET …`.
fn upsert_sql(table: &CoveredTable, stage: &str) -> String {
    let columns = table.column_list();
    let key: Vec<String> = table.primary_key.iter().map(|c| quote_ident(c)).collect();
    let updates: Vec<String> = table
        .columns
        .iter()
        .filter(|c| !table.primary_key.contains(&c.name))
        .map(|c| format!("{0} = EXCLUDED.{0}", quote_ident(&c.name)))
        .collect();
    // Rows that did not change are not written (nor counted): an overlapping window
    // re-reads some rows every time.
    let changed: Vec<String> = table
        .columns
        .iter()
        .filter(|c| !table.primary_key.contains(&c.name))
        .map(|c| format!("{}.{}", table.qualified_name(), quote_ident(&c.name)))
        .collect();
    let excluded: Vec<String> = table
        .columns
        .iter()
        .filter(|c| !table.primary_key.contains(&c.name))
        .map(|c| format!("EXCLUDED.{}", quote_ident(&c.name)))
        .collect();
    let action = if updates.is_empty() {
        "NOTHING".to_owned()
    } else {
        format!(
            "UPDATE SET {} WHERE ({}) IS DISTINCT FROM ({})",
            updates.join(", "),
            changed.join(", "),
            excluded.join(", ")
        )
    };
    format!(
        "INSERT INTO {t} ({columns}) SELECT {columns} FROM {stage} ON CONFLICT ({key}) DO {action}",
        t = table.qualified_name(),
        key = key.join(", "),
    )
}

fn copied_freshness(snapshot_at: u64, changed: u64) -> Freshness {
    Freshness {
        validated_at_unix_ms: snapshot_at,
        lag_seconds: now_unix_ms().saturating_sub(snapshot_at) as f64 / 1000.0,
        rows_changed: Some(changed),
        lag_bytes: None,
        problem: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replica::Column;

    #[test]
    fn upserts_update_every_column_but_the_key() {
        let column = |name: &str| Column { name: name.into(), sql_type: "integer".into(), not_null: true };
        let mut table = CoveredTable {
            schema: "s".into(),
            name: "t".into(),
            columns: vec![column("id"), column("h")],
            primary_key: vec!["id".into()],
            row_filter: None,
        };
        assert_eq!(
            upsert_sql(&table, "stage"),
            r#"INSERT INTO "s"."t" ("id", "h") SELECT "id", "h" FROM stage ON CONFLICT ("id") DO UPDATE SET "h" = EXCLUDED."h" WHERE ("s"."t"."h") IS DISTINCT FROM (EXCLUDED."h")"#
        );
        table.columns.pop();
        assert!(upsert_sql(&table, "stage").ends_with("DO NOTHING"));
    }
}
