//! Streaming replicas: the publication (column lists and row filters), the subscription,
//! lag measured from LSNs, and removing these artifacts.

use std::collections::HashSet;
use std::time::Duration;

use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use super::coverage::CoveredTable;
use super::{LsnHistory, MAX_LSN_SAMPLES, Replicator, SqlReplica, artifact_name, now_unix_ms, quote_literal};
use crate::error::SqlError;
use crate::replica::Freshness;
use crate::serve::{db_message, quote_ident};

/// How long removing a slot may wait for its walsender to let go.
const SLOT_RELEASE_DEADLINE: Duration = Duration::from_secs(15);

/// `CREATE PUBLICATION civitas_<h> FOR TABLE t (cols) WHERE (filter), …`, commented with
/// the replica and the target it feeds. When PostgreSQL refuses the row filters, the
/// publication is made without them and `tables` lose them too, so copy and stream agree.
pub(crate) async fn create_publication(
    source: &Client,
    replica_id: &str,
    name: &str,
    view: &str,
    target_id: &str,
    tables: &mut [CoveredTable],
) -> Result<(), SqlError> {
    let comment = quote_literal(&format!("civitas replica {replica_id} of {view} into {target_id}"));
    let sql = |tables: &[CoveredTable]| {
        let objects: Vec<String> = tables
            .iter()
            .map(|t| {
                let filter = t.row_filter.as_ref().map(|f| format!(" WHERE ({f})")).unwrap_or_default();
                format!("TABLE {} ({}){filter}", t.qualified_name(), t.column_list())
            })
            .collect();
        format!(
            "CREATE PUBLICATION {n} FOR {} WITH (publish_via_partition_root = true); COMMENT ON PUBLICATION {n} IS {comment}",
            objects.join(", "),
            n = quote_ident(name),
        )
    };
    match source.batch_execute(&sql(tables)).await {
        Ok(()) => Ok(()),
        Err(e) if tables.iter().any(|t| t.row_filter.is_some()) && e.as_db_error().is_some() => {
            tracing::info!(replica = %replica_id, error = %db_message(&e), "row filters cannot be published; replicating whole tables");
            for table in tables.iter_mut() {
                table.row_filter = None;
            }
            source
                .batch_execute(&sql(tables))
                .await
                .map_err(|e| Replicator::failed(replica_id, "creating the publication", e))
        }
        Err(e) => Err(Replicator::failed(replica_id, "creating the publication", e)),
    }
}

/// `CREATE SUBSCRIPTION` on the existing slot, without copying (the copy was made in the
/// slot's snapshot). Runs inside the copy's target transaction, so tables and
/// subscription appear together.
pub(crate) async fn create_subscription(
    rep: &Replicator,
    target: &Client,
    replica_id: &str,
    name: &str,
) -> Result<(), SqlError> {
    let sql = format!(
        "CREATE SUBSCRIPTION {n} CONNECTION {conninfo} PUBLICATION {n} \
         WITH (create_slot = false, slot_name = {slot}, copy_data = false)",
        n = quote_ident(name),
        conninfo = quote_literal(&rep.publisher_conninfo),
        slot = quote_literal(name),
    );
    target.batch_execute(&sql).await.map_err(|e| {
        // The statement holds the conninfo (maybe a password): only the database's reason.
        Replicator::failed(replica_id, &format!("creating the subscription `{name}` at `{}`", rep.target_name), e)
    })
}

/// Lag of a streaming replica from LSNs: the origin's current WAL position is sampled
/// with the time on each call; the replica holds everything committed before the newest
/// sample the slot's `confirmed_flush_lsn` has passed.
pub(crate) async fn freshness(rep: &Replicator, replica: &mut SqlReplica) -> Result<Freshness, SqlError> {
    let id = replica.replica_id.clone();
    let name = replica.slot.clone().unwrap_or_else(|| artifact_name(&id));
    let subscription = replica.subscription.clone().unwrap_or_else(|| name.clone());
    let (source, target) = rep.lag_connections().await?;
    let sampled_at = now_unix_ms();
    let row = source
        .query_one(
            "SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint,
                    (SELECT (confirmed_flush_lsn - '0/0'::pg_lsn)::bigint FROM pg_replication_slots
                      WHERE slot_name = $1 AND database = current_database())",
            &[&name],
        )
        .await
        .map_err(|e| Replicator::failed(&id, "reading the origin's WAL position", e))?;
    let current = row.get::<_, i64>(0).max(0) as u64;
    let confirmed = row.get::<_, Option<i64>>(1).map(|l| l.max(0) as u64);
    let state = target
        .query_opt(
            "SELECT s.subenabled,
                    (SELECT st.pid FROM pg_stat_subscription st WHERE st.subid = s.oid AND st.relid IS NULL LIMIT 1)
               FROM pg_subscription s
              WHERE s.subname = $1 AND s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[&subscription],
        )
        .await
        .map_err(|e| Replicator::failed(&id, "reading the subscription's state", e))?;
    let problem = match (&confirmed, &state) {
        (None, _) => Some(format!("the replication slot `{name}` is missing at `{}`", rep.source_name)),
        (_, None) => Some(format!("the subscription `{subscription}` is missing at `{}`", rep.target_name)),
        (_, Some(row)) if !row.get::<_, bool>(0) => {
            Some(format!("the subscription `{subscription}` at `{}` is disabled", rep.target_name))
        }
        (_, Some(row)) if row.get::<_, Option<i32>>(1).is_none() => Some(format!(
            "the subscription `{subscription}` at `{}` has no running apply worker (failing? see that server's log)",
            rep.target_name
        )),
        _ => None,
    };
    let running = problem.is_none();

    let validated_at_unix_ms = {
        let mut histories = rep.lsn_history.lock().unwrap_or_else(|e| e.into_inner());
        let history = histories
            .entry(id.clone())
            .or_insert_with(|| LsnHistory { validated_at_unix_ms: replica.copied_at_unix_ms, ..Default::default() });
        history.validated_at_unix_ms = history.validated_at_unix_ms.max(replica.copied_at_unix_ms);
        if let Some(confirmed) = confirmed {
            // While the subscription is down, this very sample does not count: an idle
            // origin would otherwise look caught up while nothing could arrive.
            let newest = history.samples.iter().filter(|(_, lsn)| *lsn <= confirmed).map(|(t, _)| *t).max();
            let now_ok = running && current <= confirmed;
            let candidate = if now_ok { Some(sampled_at) } else { newest };
            if let Some(t) = candidate {
                history.validated_at_unix_ms = history.validated_at_unix_ms.max(t);
            }
            history.samples.retain(|(_, lsn)| *lsn > confirmed);
        }
        if !running || confirmed.is_none_or(|c| current > c) {
            history.samples.push_back((sampled_at, current));
        }
        while history.samples.len() > MAX_LSN_SAMPLES {
            history.samples.pop_front();
        }
        history.validated_at_unix_ms
    };
    let now = now_unix_ms();
    Ok(Freshness {
        validated_at_unix_ms,
        lag_seconds: now.saturating_sub(validated_at_unix_ms) as f64 / 1000.0,
        rows_changed: None,
        lag_bytes: confirmed.map(|c| current.saturating_sub(c)),
        problem,
    })
}

/// Removes a replica's subscription (target), slot and publication (origin), whatever of
/// them exists.
pub(crate) async fn drop_artifacts(rep: &Replicator, replica_id: &str, streaming: bool) -> Result<(), SqlError> {
    if !streaming {
        return Ok(());
    }
    let name = artifact_name(replica_id);
    let target = rep.connect_target().await?;
    drop_subscription(&target, replica_id, &name).await?;
    let source = rep.connect_source().await?;
    drop_slot(&source, replica_id, &name).await?;
    source
        .batch_execute(&format!("DROP PUBLICATION IF EXISTS {}", quote_ident(&name)))
        .await
        .map_err(|e| Replicator::failed(replica_id, &format!("dropping the publication `{name}`"), e))
}

async fn drop_subscription(target: &Client, replica_id: &str, name: &str) -> Result<(), SqlError> {
    let failed = |e| Replicator::failed(replica_id, &format!("dropping the subscription `{name}`"), e);
    let exists = target
        .query_opt(
            "SELECT 1 FROM pg_subscription WHERE subname = $1
                AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[&name],
        )
        .await
        .map_err(failed)?;
    if exists.is_none() {
        return Ok(());
    }
    let n = quote_ident(name);
    // Detached from its slot, dropping does not reach for the origin (which may be down);
    // the slot is dropped there separately.
    for statement in [
        format!("ALTER SUBSCRIPTION {n} DISABLE"),
        format!("ALTER SUBSCRIPTION {n} SET (slot_name = NONE)"),
        format!("DROP SUBSCRIPTION IF EXISTS {n}"),
    ] {
        target.batch_execute(&statement).await.map_err(failed)?;
    }
    Ok(())
}

/// Drops a logical slot of the current database, ending the walsender that holds it
/// (a dropped or disabled subscription's may linger for a moment).
async fn drop_slot(source: &Client, replica_id: &str, name: &str) -> Result<(), SqlError> {
    let failed = |e| Replicator::failed(replica_id, &format!("dropping the replication slot `{name}`"), e);
    let deadline = tokio::time::Instant::now() + SLOT_RELEASE_DEADLINE;
    loop {
        let row = source
            .query_opt(
                "SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1 AND database = current_database()",
                &[&name],
            )
            .await
            .map_err(failed)?;
        let Some(row) = row else { return Ok(()) };
        if let Some(pid) = row.get::<_, Option<i32>>(0) {
            source.execute("SELECT pg_terminate_backend($1)", &[&pid]).await.map_err(failed)?;
        }
        match source.execute("SELECT pg_drop_replication_slot($1)", &[&name]).await {
            Ok(_) => return Ok(()),
            Err(e) if e.code() == Some(&SqlState::UNDEFINED_OBJECT) => return Ok(()),
            Err(e) if e.code() == Some(&SqlState::OBJECT_IN_USE) && tokio::time::Instant::now() < deadline => {
                // The terminated walsender is still exiting: wait for the slot to be free.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(failed(e)),
        }
    }
}

/// Drops the `civitas_` subscriptions (target), publications made for this target and
/// their slots, and orphaned `civitas_` slots (origin) of replicas not in `keep`.
pub(crate) async fn cleanup_except(rep: &Replicator, keep: &[String]) -> Result<Vec<String>, SqlError> {
    let keep: HashSet<String> = keep.iter().map(|k| artifact_name(k)).collect();
    let failed = |doing: &str, e| Replicator::failed("(cleanup)", doing, e);
    let mut removed = Vec::new();
    let target = rep.connect_target().await?;
    let subscriptions = target
        .query(
            "SELECT subname::text FROM pg_subscription WHERE subname LIKE 'civitas\\_%'
                AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[],
        )
        .await
        .map_err(|e| failed("listing subscriptions", e))?;
    for row in subscriptions {
        let name: String = row.get(0);
        if !keep.contains(&name) {
            drop_subscription(&target, "(cleanup)", &name).await?;
            removed.push(format!("subscription {name}"));
        }
    }

    let target_id = rep.target_identity(&target).await?;
    let source = rep.connect_source().await?;
    let publications = source
        .query(
            "SELECT pubname::text, coalesce(obj_description(oid, 'pg_publication'), '') FROM pg_publication
              WHERE pubname LIKE 'civitas\\_%'",
            &[],
        )
        .await
        .map_err(|e| failed("listing publications", e))?;
    for row in publications {
        let (name, comment): (String, String) = (row.get(0), row.get(1));
        if keep.contains(&name) || !comment.ends_with(&format!(" into {target_id}")) {
            continue;
        }
        drop_slot(&source, "(cleanup)", &name).await?;
        source
            .batch_execute(&format!("DROP PUBLICATION IF EXISTS {}", quote_ident(&name)))
            .await
            .map_err(|e| failed("dropping a publication", e))?;
        removed.push(format!("slot {name}"));
        removed.push(format!("publication {name}"));
    }
    // A slot without its publication is an orphan of a removal cut short (publications
    // are made before slots and dropped after them).
    let orphans = source
        .query(
            "SELECT slot_name::text FROM pg_replication_slots s
              WHERE slot_name LIKE 'civitas\\_%' AND database = current_database() AND NOT active
                AND NOT EXISTS (SELECT FROM pg_publication p WHERE p.pubname = s.slot_name)",
            &[],
        )
        .await
        .map_err(|e| failed("listing slots", e))?;
    for row in orphans {
        let name: String = row.get(0);
        if !keep.contains(&name) {
            drop_slot(&source, "(cleanup)", &name).await?;
            removed.push(format!("slot {name}"));
        }
    }
    Ok(removed)
}
