//! SQL replicas (strategy `postgres`, see `docs/sql.md`, "Moving a SQL view"): the rows a
//! SQL view reads are copied from the origin database into this city's replica database
//! (`[replicas.postgres] connection`) with `COPY` in one transaction, kept fresh by the
//! view's update mode (logical replication, a watermark column, or full copies), and served
//! by the replica server from that database with the view's own statement.
//!
//! The origin database is reached through the unit's connection reference, resolved from
//! this node's `[sql.connections]`: a node that is to hold SQL replicas needs a role there
//! that may read (and, for streaming, replicate) what the views cover.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use civitas_model::{DataUnit, Document, Kind, View};
use civitas_sql::replica::{CopyProgress, Replicator};
use civitas_sql::{SqlConfig, SqlView, SqlViews, UpdateMode};
use tokio::sync::watch;

use super::Relocation;
use super::state::{CopyStrategy, ReplicaPhase, ReplicaRecord, UpdateStrategy};
use crate::config::PostgresReplicaSettings;

/// What SQL replicas are built from.
pub struct SqlReplicaDeps {
    /// `[sql]`: the origin databases (by the units' connection references) and the target.
    pub config: SqlConfig,
    /// `[replicas.postgres]`; its `connection` is not empty.
    pub settings: PostgresReplicaSettings,
    /// The node's SQL connections, which serve the replicas from the target database.
    pub views: Arc<SqlViews>,
}

/// The replicators, one per origin connection (each keeps its replicas' lag history).
pub(super) struct SqlReplication {
    deps: SqlReplicaDeps,
    replicators: Mutex<HashMap<String, Arc<Replicator>>>,
}

impl SqlReplication {
    pub(super) fn new(deps: SqlReplicaDeps) -> SqlReplication {
        SqlReplication { deps, replicators: Mutex::new(HashMap::new()) }
    }

    /// The replicator from the origin connection `source` into this node's replica database.
    pub(super) fn replicator(&self, source: &str) -> Result<Arc<Replicator>, String> {
        let mut replicators = self.replicators.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = replicators.get(source) {
            return Ok(Arc::clone(r));
        }
        let connections = &self.deps.config.connections;
        let source_config = connections.get(source).ok_or_else(|| {
            format!(
                "this node has no connection `{source}` in [sql.connections]: the postgres strategy copies from the \
                 origin database, so the node holding the replica needs the unit's connection reference configured"
            )
        })?;
        let target = &self.deps.settings.connection;
        let target_config = connections.get(target).ok_or_else(|| {
            format!("replicas.postgres.connection names `{target}`, which is not in [sql.connections]")
        })?;
        let replicator = Replicator::new(
            source,
            source_config,
            target,
            target_config,
            self.deps.settings.publisher_conninfo.get(source).cloned(),
        )
        .map_err(|e| e.to_string())?;
        let replicator = Arc::new(replicator);
        replicators.insert(source.to_string(), Arc::clone(&replicator));
        Ok(replicator)
    }

    /// The connections that serve replicas.
    pub(super) fn views(&self) -> &Arc<SqlViews> {
        &self.deps.views
    }

    /// The `[sql.connections]` entry replicas are copied into.
    pub(super) fn target(&self) -> &str {
        &self.deps.settings.connection
    }

    pub(super) fn lag_check_seconds(&self) -> f64 {
        self.deps.settings.lag_check_seconds
    }
}

/// The SQL definition of `view` of `unit`.
pub(super) fn sql_view(unit: &DataUnit, view: &civitas_model::Urn) -> Result<SqlView, String> {
    let sql = civitas_sql::parse_unit(unit)
        .map_err(|e| format!("data unit {}: {e}", unit.header.name))?
        .ok_or_else(|| format!("data unit {} is not a SQL unit", unit.header.name))?;
    sql.view(view.local_name()).cloned().ok_or_else(|| format!("SQL unit {} has no view {view}", unit.header.name))
}

impl Relocation {
    fn sql(&self) -> Result<&SqlReplication, String> {
        self.inner.sql.as_ref().ok_or_else(|| {
            "this node has no replica database for SQL views: set [replicas.postgres] connection".to_string()
        })
    }

    /// A data unit from the route documents.
    fn unit_of(&self, unit: &civitas_model::Urn) -> Result<DataUnit, String> {
        match self.inner.deps.merger.documents().get(Kind::DataUnit, unit) {
            Some((_, Document::DataUnit(u))) => Ok(u.clone()),
            _ => Err(format!("data unit {unit} is not in any catalog this node follows")),
        }
    }

    /// A SQL view's plan input completed: refused when this node has no replica database
    /// or cannot reach the origin database; without a declared `size`, the size is what
    /// its copy would move (its covered tables at the origin), not a response's.
    pub(super) async fn sql_plan_input(
        &self,
        mut input: civitas_placement::migration::PlanInput,
    ) -> Result<civitas_placement::migration::PlanInput, String> {
        let sql = self.sql()?;
        if input.view.size_bytes.is_none() {
            let view = sql_view(&self.unit_of(&input.candidate.unit)?, &input.view.name)?;
            let bytes = sql
                .replicator(&view.connection)?
                .estimate_bytes(&view)
                .await
                .map_err(|e| format!("cannot size the view's copy at its origin database: {e}"))?;
            input.view.size_bytes = Some(bytes);
        }
        Ok(input)
    }

    /// The update strategy, check period and staleness bound of a SQL view: its update
    /// mode; the bound is the view's refresh period (its `updateFrequency`, else
    /// `replicas.default_refresh_seconds`) times `replicas.staleness_factor`, and a
    /// streaming replica's lag is checked every `replicas.postgres.lag_check_seconds`.
    pub(super) fn sql_update_plan(&self, unit: &DataUnit, view: &View) -> Result<(UpdateStrategy, f64, f64), String> {
        let sql = self.sql()?;
        let period = self.refresh_period(view);
        let bound = period * self.inner.deps.replicas.staleness_factor;
        Ok(match sql_view(unit, &view.name)?.update {
            UpdateMode::Streaming => (UpdateStrategy::Streaming, sql.lag_check_seconds().min(bound / 2.0), bound),
            UpdateMode::Watermark { .. } => (UpdateStrategy::Watermark, period, bound),
            UpdateMode::FullCopy => (UpdateStrategy::FullCopy, period, bound),
        })
    }

    /// The first copy of a SQL replica (one target transaction: a failure leaves nothing
    /// behind and the record is forgotten), then its registration.
    pub(super) async fn copy_sql_and_register(&self, mut record: ReplicaRecord) -> Result<(), String> {
        let copied = async {
            let sql = self.sql()?;
            let unit = self.unit_of(&record.unit)?;
            let view = sql_view(&unit, &record.view)?;
            let replicator = sql.replicator(Self::sql_source(&record)?)?;
            let (progress, _) = watch::channel(CopyProgress::default());
            replicator.copy(&record.id, &view, &progress).await.map_err(|e| e.to_string())
        }
        .await;
        let replica = match copied {
            Ok(r) => r,
            Err(e) => {
                self.drop_record(&record.view);
                let _ = self.persist().await;
                return Err(format!("copy failed: {e}"));
            }
        };
        record.phase = ReplicaPhase::Copied;
        record.last_error = None;
        record.bytes = replica.bytes;
        record.validated_at_unix_ms = replica.copied_at_unix_ms;
        record.sql = Some(replica);
        self.put_record(record.clone());
        self.persist().await.map_err(|e| format!("cannot persist the relocation state: {e}"))?;
        self.register(&mut record).await.map_err(|e| format!("copied, but registration failed (retried): {e}"))?;
        Ok(())
    }

    /// One refresh of a SQL replica by its update mode; returns its new validation time.
    pub(super) async fn refresh_sql(&self, record: &mut ReplicaRecord) -> Result<u64, String> {
        let replicator = self.sql()?.replicator(Self::sql_source(record)?)?;
        let replica = record.sql.as_mut().ok_or("the record holds no SQL replica")?;
        let freshness = replicator.refresh(replica).await.map_err(|e| e.to_string())?;
        record.bytes = replica.bytes;
        if let Some(problem) = freshness.problem {
            // Not keeping up, and waiting will not fix it: a failure, so that it shows.
            return Err(format!("{problem} (lag {:.1} s)", freshness.lag_seconds));
        }
        tracing::debug!(view = %record.view, lag = freshness.lag_seconds, rows = ?freshness.rows_changed,
            "SQL replica refreshed");
        Ok(freshness.validated_at_unix_ms)
    }

    /// The origin connection reference of a SQL replica.
    fn sql_source(record: &ReplicaRecord) -> Result<&str, String> {
        record.sql_source.as_deref().ok_or_else(|| format!("replica {} has no SQL source recorded", record.id))
    }

    /// Deletes what a SQL replica left at the origin and here (replication slot,
    /// publication, subscription, tables). Idempotent.
    pub(super) async fn drop_sql(&self, record: &ReplicaRecord) -> Result<(), String> {
        let replicator = self.sql()?.replicator(Self::sql_source(record)?)?;
        match &record.sql {
            Some(r) => replicator.drop_replica(r).await.map_err(|e| e.to_string()),
            // Never copied: what a copy may have left is found by the replica's id.
            None => {
                let keep: Vec<String> = self.sql_replica_ids().into_iter().filter(|id| *id != record.id).collect();
                replicator.cleanup_except(&keep).await.map(drop).map_err(|e| e.to_string())
            }
        }
    }

    /// The unit and view a SQL replica held here serves (the view on the replica
    /// database) and the SQL connections to serve it with; `None` when `id` is not a
    /// serving SQL replica.
    pub fn sql_replica(&self, id: &str) -> Option<(civitas_model::Urn, SqlView, Arc<SqlViews>)> {
        let sql = self.inner.sql.as_ref()?;
        let record = {
            let replicas = self.inner.replicas.lock().unwrap_or_else(|e| e.into_inner());
            replicas.values().find(|r| r.id == id && r.phase == ReplicaPhase::Serving)?.clone()
        };
        let replica = record.sql.as_ref()?;
        let unit = self.unit_of(&record.unit).ok()?;
        let origin = sql_view(&unit, &record.view).ok()?;
        Some((record.unit, replica.serving_view(&origin, sql.target()), Arc::clone(sql.views())))
    }

    /// Whether a refreshed SQL replica should be registered again: when its validation
    /// moved on by a quarter of its staleness bound since the last registration (the data
    /// plane keeps using it until `validatedAtUnixMs + bound`), so a replica checked every
    /// second does not write a catalog version every second.
    pub(super) fn sql_needs_registration(record: &ReplicaRecord) -> bool {
        let step_ms = (record.staleness_bound_seconds * 1000.0 / 4.0) as u64;
        record.validated_at_unix_ms >= record.registered_validated_at_unix_ms.saturating_add(step_ms)
    }
}

impl Relocation {
    /// The ids of every SQL replica this node holds (whatever their phase).
    fn sql_replica_ids(&self) -> Vec<String> {
        let replicas = self.inner.replicas.lock().unwrap_or_else(|e| e.into_inner());
        replicas.values().filter(|r| r.copy == CopyStrategy::Postgres).map(|r| r.id.clone()).collect()
    }

    /// At start-up: deletes what SQL replicas this node no longer holds left behind — the
    /// ones [`Relocation::open`] forgot (a copy interrupted by a crash) and any other
    /// `civitas_` subscription, slot, publication or replica table made for this node's
    /// replica database that no record names. Best effort: a failure is logged (the
    /// objects carry the replica's name) and never stops the node.
    pub(super) async fn clean_up_sql(&self, forgotten: Vec<ReplicaRecord>) {
        let Some(sql) = self.inner.sql.as_ref() else {
            for record in &forgotten {
                tracing::warn!(view = %record.view, replica = %record.id,
                    "a SQL replica was forgotten but this node has no replica database configured to clean it up");
            }
            return;
        };
        let keep = self.sql_replica_ids();
        let mut sources: Vec<String> = forgotten.iter().filter_map(|r| r.sql_source.clone()).collect();
        {
            let replicas = self.inner.replicas.lock().unwrap_or_else(|e| e.into_inner());
            sources.extend(replicas.values().filter_map(|r| r.sql_source.clone()));
        }
        sources.sort();
        sources.dedup();
        for source in sources {
            let cleaned = match sql.replicator(&source) {
                Ok(r) => r.cleanup_except(&keep).await.map_err(|e| e.to_string()),
                Err(e) => Err(e),
            };
            match cleaned {
                Ok(removed) if removed.is_empty() => {}
                Ok(removed) => tracing::info!(%source, ?removed, "deleted what abandoned SQL replicas left behind"),
                Err(e) => tracing::warn!(%source, error = %e, "cannot clean up abandoned SQL replicas"),
            }
        }
    }
}
