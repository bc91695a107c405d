//! The initial copy: target tables made from the coverage, rows streamed with the COPY
//! protocol from one source snapshot into one target transaction.

use futures::{SinkExt, StreamExt};
use tokio::sync::watch;
use tokio_postgres::Client;

use super::coverage::{self, CoveredTable};
use super::session::ReplicationSession;
use super::{
    CopyProgress, Replicator, SqlReplica, artifact_name, now_unix_ms, quote_literal, replica_of_comment, stream,
    table_comment,
};
use crate::definition::{SqlView, UpdateMode};
use crate::error::SqlError;
use crate::serve::quote_ident;

pub(crate) async fn initial_copy(
    rep: &Replicator,
    replica_id: &str,
    view: &SqlView,
    progress: &watch::Sender<CopyProgress>,
) -> Result<SqlReplica, SqlError> {
    let streaming = view.update == UpdateMode::Streaming;
    let result = copy_inner(rep, replica_id, view, progress).await;
    if result.is_err() && streaming {
        // The target transaction rolled back with its connection; what was made at the
        // origin (publication, slot) goes too.
        if let Err(e) = stream::drop_artifacts(rep, replica_id, true).await {
            tracing::warn!(replica = %replica_id, error = %e, "could not remove the artifacts of a failed copy");
        }
    }
    result
}

async fn copy_inner(
    rep: &Replicator,
    replica_id: &str,
    view: &SqlView,
    progress: &watch::Sender<CopyProgress>,
) -> Result<SqlReplica, SqlError> {
    let failed = |doing: &str, e| Replicator::failed(replica_id, doing, e);
    let name = artifact_name(replica_id);
    let view_name = view.name.to_string();
    let source = rep.connect_source().await?;
    let target = rep.connect_target().await?;
    let mut tables = coverage::coverage(&source, view).await?;
    progress.send_replace(CopyProgress { tables: tables.len(), ..Default::default() });

    let streaming = view.update == UpdateMode::Streaming;
    let copied_at_unix_ms;
    if streaming {
        // A copy made again under the same id supersedes what is left of the last one.
        stream::drop_artifacts(rep, replica_id, true).await?;
        let target_id = rep.target_identity(&target).await?;
        stream::create_publication(&source, replica_id, &name, &view_name, &target_id, &mut tables).await?;
        copied_at_unix_ms = now_unix_ms();
        let mut session = ReplicationSession::connect(&rep.source, rep.connect_timeout).await.map_err(|message| {
            SqlError::Replica {
                replica: replica_id.to_owned(),
                message: format!("replication session to `{}`: {message}", rep.source_name),
            }
        })?;
        let slot = session.create_slot_exporting_snapshot(&name).await.map_err(|message| SqlError::Replica {
            replica: replica_id.to_owned(),
            message: format!("creating the replication slot `{name}` at `{}`: {message}", rep.source_name),
        })?;
        tracing::debug!(replica = %replica_id, slot = %name, consistent_point = %slot.consistent_point, "slot created");
        begin_snapshot(&source, Some(&slot.snapshot)).await.map_err(|e| failed("importing the slot's snapshot", e))?;
        // The copy's transaction holds the snapshot now; the session may end.
        session.terminate().await;
    } else {
        copied_at_unix_ms =
            begin_snapshot(&source, None).await.map_err(|e| failed("starting the source snapshot", e))?;
    }

    target.batch_execute("BEGIN").await.map_err(|e| failed("starting the target transaction", e))?;
    for table in &tables {
        create_table(rep, &target, replica_id, &view_name, table).await?;
    }
    let (mut rows, mut bytes) = (0, 0);
    for table in &tables {
        let select = select_sql(table, table.row_filter.as_deref());
        let (r, b) = copy_table(&source, &target, &select, &table.qualified_name(), table, progress)
            .await
            .map_err(|e| failed(&format!("copying `{}.{}`", table.schema, table.name), e))?;
        rows += r;
        bytes += b;
        progress.send_modify(|p| {
            p.tables_done += 1;
            p.rows += r;
        });
    }
    let watermark = match &view.update {
        UpdateMode::Watermark { column } => {
            max_watermark(&source, &tables, column).await.map_err(|e| failed("reading the watermark", e))?
        }
        _ => None,
    };
    if streaming {
        stream::create_subscription(rep, &target, replica_id, &name).await?;
    }
    target.batch_execute("COMMIT").await.map_err(|e| failed("committing the target transaction", e))?;
    let _ = source.batch_execute("COMMIT").await;
    Ok(SqlReplica {
        replica_id: replica_id.to_owned(),
        view: view_name,
        tables,
        update: view.update.clone(),
        publication: streaming.then(|| name.clone()),
        slot: streaming.then(|| name.clone()),
        subscription: streaming.then(|| name.clone()),
        watermark,
        rows,
        bytes,
        copied_at_unix_ms,
    })
}

/// Opens a REPEATABLE READ READ ONLY transaction on `client` (in the `imported` snapshot
/// when given) and fixes its snapshot; returns the wall-clock time just before.
pub(crate) async fn begin_snapshot(client: &Client, imported: Option<&str>) -> Result<u64, tokio_postgres::Error> {
    client.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?;
    if let Some(snapshot) = imported {
        client.batch_execute(&format!("SET TRANSACTION SNAPSHOT {}", quote_literal(snapshot))).await?;
    }
    let at = now_unix_ms();
    client.batch_execute("SELECT 1").await?;
    Ok(at)
}

/// `SELECT cols FROM t [WHERE filter]`.
pub(crate) fn select_sql(table: &CoveredTable, filter: Option<&str>) -> String {
    let mut sql = format!("SELECT {} FROM {}", table.column_list(), table.qualified_name());
    if let Some(filter) = filter {
        sql.push_str(" WHERE ");
        sql.push_str(filter);
    }
    sql
}

/// Streams `select` at the source into `dest` at the target, chunk by chunk (COPY binary
/// on both sides: never buffered whole). Returns (rows, bytes).
pub(crate) async fn copy_table(
    source: &Client,
    target: &Client,
    select: &str,
    dest: &str,
    table: &CoveredTable,
    progress: &watch::Sender<CopyProgress>,
) -> Result<(u64, u64), tokio_postgres::Error> {
    let out = source.copy_out(&format!("COPY ({select}) TO STDOUT (FORMAT binary)")).await?;
    let sink = target
        .copy_in::<_, bytes::Bytes>(&format!("COPY {dest} ({}) FROM STDIN (FORMAT binary)", table.column_list()))
        .await?;
    futures::pin_mut!(out);
    futures::pin_mut!(sink);
    let mut bytes = 0u64;
    let mut unreported = 0u64;
    while let Some(chunk) = out.next().await {
        let chunk = chunk?;
        bytes += chunk.len() as u64;
        unreported += chunk.len() as u64;
        // `feed` does not flush: the sink gathers ~4 KiB per message, and its bounded
        // channel holds the source back when the target is slower.
        sink.feed(chunk).await?;
        if unreported >= 1 << 20 {
            progress.send_modify(|p| p.bytes += unreported);
            unreported = 0;
        }
    }
    let rows = sink.finish().await?;
    progress.send_modify(|p| p.bytes += unreported);
    Ok((rows, bytes))
}

/// The smallest of the tables' largest watermark values, as text (`None`: no rows).
pub(crate) async fn max_watermark(
    source: &Client,
    tables: &[CoveredTable],
    column: &str,
) -> Result<Option<String>, tokio_postgres::Error> {
    let parts: Vec<String> = tables
        .iter()
        .filter(|t| t.columns.iter().any(|c| c.name == column))
        .map(|t| {
            let select = format!("SELECT max({}) AS m FROM {}", quote_ident(column), t.qualified_name());
            match &t.row_filter {
                Some(filter) => format!("{select} WHERE {filter}"),
                None => select,
            }
        })
        .collect();
    if parts.is_empty() {
        return Ok(None);
    }
    let row = source.query_one(&format!("SELECT min(m)::text FROM ({}) AS w", parts.join(" UNION ALL ")), &[]).await?;
    Ok(row.get(0))
}

/// Makes `table` at the target (inside the caller's transaction): its schema if missing,
/// the covered columns with NOT NULL and the primary key, and the replica's comment. A
/// table of that name that is not this replica's is refused.
async fn create_table(
    rep: &Replicator,
    target: &Client,
    replica_id: &str,
    view: &str,
    table: &CoveredTable,
) -> Result<(), SqlError> {
    let failed = |doing: &str, e| Replicator::failed(replica_id, doing, e);
    let qualified = table.qualified_name();
    let comment = table_comment(replica_id, view);
    let existing = target
        .query_opt(
            "SELECT obj_description(to_regclass($1), 'pg_class') WHERE to_regclass($1) IS NOT NULL",
            &[&qualified],
        )
        .await
        .map_err(|e| failed("looking for the target table", e))?;
    if let Some(row) = existing {
        let existing: Option<String> = row.get(0);
        if existing.as_deref() != Some(comment.as_str()) {
            let holder = match existing.as_deref().and_then(replica_of_comment) {
                Some(other) => format!("it belongs to the civitas replica `{other}`"),
                None => "it is not a civitas replica".to_owned(),
            };
            return Err(SqlError::ReplicaConflict {
                connection: rep.target_name.clone(),
                table: format!("{}.{}", table.schema, table.name),
                message: format!(
                    "the replica database already has this table and {holder}; replica tables keep their \
                     origin names, so give each origin database its own replica database"
                ),
            });
        }
        // A leftover of this very replica (a copy made again): replaced.
        target.batch_execute(&format!("DROP TABLE {qualified}")).await.map_err(|e| failed("replacing the table", e))?;
    }
    let mut columns: Vec<String> = table
        .columns
        .iter()
        .map(|c| format!("{} {}{}", quote_ident(&c.name), c.sql_type, if c.not_null { " NOT NULL" } else { "" }))
        .collect();
    let key: Vec<String> = table.primary_key.iter().map(|c| quote_ident(c)).collect();
    columns.push(format!("PRIMARY KEY ({})", key.join(", ")));
    let ddl = format!(
        "CREATE SCHEMA IF NOT EXISTS {schema}; CREATE TABLE {qualified} ({columns}); COMMENT ON TABLE {qualified} IS {comment}",
        schema = quote_ident(&table.schema),
        columns = columns.join(", "),
        comment = quote_literal(&comment),
    );
    target
        .batch_execute(&ddl)
        .await
        .map_err(|e| failed(&format!("creating `{}.{}` at the target", table.schema, table.name), e))
}

/// Drops the replica's target tables that carry its comment.
pub(crate) async fn drop_tables(rep: &Replicator, replica_id: &str, tables: &[CoveredTable]) -> Result<(), SqlError> {
    let target = rep.connect_target().await?;
    for table in tables {
        let qualified = table.qualified_name();
        let row = target
            .query_opt(
                "SELECT obj_description(to_regclass($1), 'pg_class') WHERE to_regclass($1) IS NOT NULL",
                &[&qualified],
            )
            .await
            .map_err(|e| Replicator::failed(replica_id, "looking for the target table", e))?;
        let ours =
            row.and_then(|r| r.get::<_, Option<String>>(0)).is_some_and(|c| replica_of_comment(&c) == Some(replica_id));
        if ours {
            target.batch_execute(&format!("DROP TABLE IF EXISTS {qualified}")).await.map_err(|e| {
                Replicator::failed(replica_id, &format!("dropping `{}.{}`", table.schema, table.name), e)
            })?;
        }
    }
    Ok(())
}

/// Drops every target table commented as a civitas replica not in `keep`.
pub(crate) async fn cleanup_tables_except(rep: &Replicator, keep: &[String]) -> Result<Vec<String>, SqlError> {
    let target = rep.connect_target().await?;
    let failed = |e| Replicator::failed("(cleanup)", "listing replica tables", e);
    let rows = target
        .query(
            "SELECT n.nspname::text, c.relname::text, obj_description(c.oid, 'pg_class')
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind IN ('r', 'p') AND obj_description(c.oid, 'pg_class') LIKE 'civitas replica %'",
            &[],
        )
        .await
        .map_err(failed)?;
    let mut removed = Vec::new();
    for row in rows {
        let (schema, name, comment): (String, String, String) = (row.get(0), row.get(1), row.get(2));
        let Some(id) = replica_of_comment(&comment) else { continue };
        if keep.iter().any(|k| k == id) {
            continue;
        }
        let qualified = format!("{}.{}", quote_ident(&schema), quote_ident(&name));
        target
            .batch_execute(&format!("DROP TABLE IF EXISTS {qualified}"))
            .await
            .map_err(|e| Replicator::failed(id, &format!("dropping `{schema}.{name}`"), e))?;
        removed.push(format!("table {schema}.{name}"));
    }
    Ok(removed)
}
