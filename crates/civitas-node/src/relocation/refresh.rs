//! The Update Manager: every replica refreshed by the strategy its view calls for, its
//! new `validatedAtUnixMs` registered after each success. A replica that cannot be
//! refreshed keeps its old validation time, so once its staleness bound passes the data
//! plane's `fresh-only` policy sends its traffic back to the origin — no one has to act.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use civitas_catalog::CatalogError;
use civitas_model::{Document, Kind, Urn};
use civitas_replica::{ReplicaId, ResourceKey, SnapshotProgress, SnapshotRequest};
use tokio::sync::watch;

use super::state::{CopyStrategy, ReplicaPhase, ReplicaRecord, UpdateStrategy};
use super::{RefreshLabels, Relocation, ViewLabels, unix_ms};

/// How often the update manager looks for due work.
const TICK: Duration = Duration::from_millis(250);
/// A failed registration is retried this often.
const REGISTER_RETRY: Duration = Duration::from_secs(2);
/// An interrupted object copy is resumed this often.
const RESUME_RETRY: Duration = Duration::from_secs(3);
/// How often a serving replica's unit owner is asked whether the unit still declares the
/// view (an orphaned replica is retired, see [`Relocation::view_is_gone`]).
const UNIT_CHECK: Duration = Duration::from_secs(10);

impl Relocation {
    /// Runs until `shutdown`: registers copied replicas, refreshes due ones, deletes
    /// superseded ones after a grace period, and publishes each replica's freshness lag.
    pub(super) async fn refresh_loop(self, mut shutdown: watch::Receiver<bool>) {
        // When each view is next due (not persisted: after a restart everything is due).
        let mut due: HashMap<Urn, SystemTime> = HashMap::new();
        // When each serving replica's unit is next checked (after a restart: at once).
        let mut unit_due: HashMap<Urn, SystemTime> = HashMap::new();
        let mut retired: Vec<(ReplicaId, SystemTime)> = Vec::new();
        let (retire_tx, mut retire_rx) = tokio::sync::mpsc::unbounded_channel::<ReplicaId>();
        let grace = Duration::from_secs(self.inner.deps.replicas.retire_grace_seconds);
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = super::stopped(&mut shutdown) => return,
                _ = tick.tick() => {}
            }
            let now = SystemTime::now();
            while let Ok(id) = retire_rx.try_recv() {
                retired.push((id, now + grace));
            }
            let mut keep = Vec::new();
            for (id, at) in retired.drain(..) {
                if at <= now {
                    if let Err(e) = self.inner.store.remove(&id).await {
                        tracing::warn!(replica = %id, error = %e, "cannot delete a superseded replica; retrying");
                        keep.push((id, now + REGISTER_RETRY));
                    }
                } else {
                    keep.push((id, at));
                }
            }
            retired = keep;

            let records: Vec<ReplicaRecord> =
                self.inner.replicas.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
            let now_ms = unix_ms(now);
            for record in records {
                self.inner
                    .metrics
                    .freshness_lag
                    .get_or_create(&ViewLabels { view: record.view.to_string() })
                    .set(record.freshness_lag_seconds(now_ms));
                if let Some(at) = record.retiring_at_unix_ms {
                    let next = due.get(&record.view).copied().unwrap_or(SystemTime::UNIX_EPOCH);
                    if now_ms >= at.saturating_add(grace.as_millis() as u64) && next <= now && self.claim(&record.view)
                    {
                        // A failed deletion is tried again a few seconds later, not every tick.
                        due.insert(record.view.clone(), now + RESUME_RETRY);
                        let this = self.clone();
                        tokio::spawn(async move {
                            let view = record.view.clone();
                            this.delete_retired(record).await;
                            this.release(&view);
                        });
                    }
                    continue;
                }
                let next = due.get(&record.view).copied().unwrap_or(SystemTime::UNIX_EPOCH);
                if next > now || !self.claim(&record.view) {
                    continue;
                }
                let (this, retire) = (self.clone(), retire_tx.clone());
                let period = Duration::from_secs_f64(record.refresh_period_seconds.max(0.05));
                let next_due = match record.phase {
                    ReplicaPhase::Copied => now + REGISTER_RETRY,
                    ReplicaPhase::Copying => now + RESUME_RETRY,
                    ReplicaPhase::Serving => now + period,
                };
                due.insert(record.view.clone(), next_due);
                let check_unit =
                    record.phase == ReplicaPhase::Serving && unit_due.get(&record.view).is_none_or(|at| *at <= now);
                if check_unit {
                    unit_due.insert(record.view.clone(), now + UNIT_CHECK);
                }
                tokio::spawn(async move {
                    let view = record.view.clone();
                    match record.phase {
                        ReplicaPhase::Serving if check_unit && this.view_is_gone(&record).await => {
                            this.retire_orphan(record).await
                        }
                        ReplicaPhase::Copied => this.register_copied(record).await,
                        ReplicaPhase::Serving => this.refresh(record, retire).await,
                        ReplicaPhase::Copying => this.resume_copy(record).await,
                    }
                    this.release(&view);
                });
            }
        }
    }

    /// Whether the unit owner's catalog definitely no longer declares the replica's view:
    /// the unit is gone (404) or its document lists no view of that name. Anything less
    /// certain (an unreachable owner, a refusal, an unreadable answer) is `false`: a
    /// replica is never dropped for a network blip.
    async fn view_is_gone(&self, record: &ReplicaRecord) -> bool {
        let unit = match &record.owner {
            None => match self.inner.deps.catalog.get(Kind::DataUnit, &record.unit, None).await {
                Ok(stored) => stored.document().ok(),
                Err(CatalogError::NotFound { .. }) => return true,
                Err(_) => return false,
            },
            Some(owner) => {
                let url = format!("{owner}/api/v1/units/{}", record.unit);
                let Ok(response) = self.inner.http.get(&url).send().await else { return false };
                match response.status() {
                    reqwest::StatusCode::NOT_FOUND => return true,
                    status if status.is_success() => response
                        .json::<serde_json::Value>()
                        .await
                        .ok()
                        .and_then(|doc| Document::decode_as(&doc, Kind::DataUnit).ok()),
                    _ => return false,
                }
            }
        };
        match unit {
            Some(Document::DataUnit(unit)) => !unit.views.iter().any(|v| v.name == record.view),
            _ => false,
        }
    }

    /// Retires a replica whose view its owner no longer declares, as `replicas delete`
    /// would (its instance went with the unit): no longer served or refreshed, its data
    /// deleted after the grace period.
    async fn retire_orphan(&self, mut record: ReplicaRecord) {
        tracing::warn!(
            view = %record.view, replica = %record.id,
            "the unit owner no longer declares this view; retiring its replica"
        );
        // Best effort: the instance normally went with the unit (or the view).
        if let Err(e) = self.deregister(&record).await {
            tracing::debug!(view = %record.view, error = %e, "deregistering an orphaned replica");
        }
        record.retiring_at_unix_ms = Some(unix_ms(SystemTime::now()));
        record.last_error = Some("its unit owner no longer declares the view".into());
        self.put_record(record);
        if let Err(e) = self.persist().await {
            tracing::warn!(error = %e, "cannot persist a retired replica now (its deletion after the grace period persists the state again)");
        }
    }

    /// Deletes a retired replica's data (store directory and staging, or a SQL replica's
    /// replication objects and tables), then its record. A failure keeps the record, so
    /// the next tick tries again — also after a restart.
    async fn delete_retired(&self, record: ReplicaRecord) {
        let deleted = match record.copy {
            CopyStrategy::Postgres => self.drop_sql(&record).await,
            _ => match ReplicaId::new(record.id.clone()) {
                Ok(id) => {
                    let _ = self.inner.objects.discard(&id).await;
                    self.inner.store.remove(&id).await.map_err(|e| e.to_string())
                }
                Err(e) => Err(e.to_string()),
            },
        };
        match deleted {
            Ok(()) => {
                tracing::info!(view = %record.view, replica = %record.id, "retired replica deleted");
                self.drop_record(&record.view);
                self.inner.metrics.freshness_lag.remove(&ViewLabels { view: record.view.to_string() });
                if let Err(e) = self.persist().await {
                    tracing::error!(error = %e, "cannot persist the relocation state");
                }
            }
            Err(e) => tracing::warn!(view = %record.view, replica = %record.id, error = %e,
                "cannot delete a retired replica yet; retrying"),
        }
    }

    /// An object copy that was interrupted (a failure, or a restart): resume it from its
    /// staged chunks. (Snapshot copies are never left in this phase.)
    async fn resume_copy(&self, record: ReplicaRecord) {
        if record.copy != super::state::CopyStrategy::ObjectCopy {
            return;
        }
        let (unit, view, site) = (record.unit.clone(), record.view.clone(), record.site.clone());
        let result = self.copy_and_register(record).await;
        let now = SystemTime::now();
        {
            let mut manager = self.inner.manager.lock().unwrap_or_else(|e| e.into_inner());
            match &result {
                Ok(()) => manager.record_executed(&view, &site, now),
                Err(e) => manager.record_failed(&unit, &view, &site, e, now),
            }
        }
        if let Err(e) = &result {
            tracing::warn!(%view, error = %e, "resumed object copy failed");
        }
        if let Err(e) = self.persist().await {
            tracing::error!(error = %e, "cannot persist the relocation state");
        }
    }

    /// A replica copied before a restart (or whose registration failed): register it.
    async fn register_copied(&self, mut record: ReplicaRecord) {
        let now = SystemTime::now();
        match self.register(&mut record).await {
            Ok(()) => {
                self.inner.manager.lock().unwrap_or_else(|e| e.into_inner()).record_executed(
                    &record.view,
                    &record.site,
                    now,
                );
                tracing::info!(view = %record.view, replica = %record.id, "replica registered");
            }
            Err(e) => {
                tracing::warn!(view = %record.view, replica = %record.id, error = %e, "replica registration failed; retrying");
                record.generation = record.generation.saturating_sub(1);
                record.last_error = Some(format!("registration: {e}"));
                self.put_record(record);
            }
        }
        if let Err(e) = self.persist().await {
            tracing::error!(error = %e, "cannot persist the relocation state");
        }
    }

    /// One refresh of a serving replica by its strategy, then re-registration.
    async fn refresh(&self, mut record: ReplicaRecord, retire: tokio::sync::mpsc::UnboundedSender<ReplicaId>) {
        let started = unix_ms(SystemTime::now());
        let outcome = match record.strategy {
            _ if record.copy == CopyStrategy::Postgres => self.refresh_sql(&mut record).await,
            UpdateStrategy::Revalidate => self.revalidate(&record, None).await,
            UpdateStrategy::Fractional => {
                let fraction = self.fraction_of(&record);
                self.revalidate(&record, Some(fraction)).await
            }
            UpdateStrategy::FullCopy => self.full_copy(&mut record, &retire).await,
            UpdateStrategy::Script => self.run_script(&record, started).await,
            UpdateStrategy::Streaming | UpdateStrategy::Watermark => {
                Err(format!("the {} update strategy is for SQL replicas only", record.strategy.as_str()))
            }
        };
        let view_label = record.view.to_string();
        let label = |outcome| RefreshLabels { view: view_label.clone(), outcome };
        match outcome {
            Ok(validated_at) => {
                record.validated_at_unix_ms = validated_at.max(record.validated_at_unix_ms);
                record.refreshes += 1;
                record.last_error = None;
                let register = record.copy != CopyStrategy::Postgres || Self::sql_needs_registration(&record);
                if register && let Err(e) = self.register(&mut record).await {
                    record.generation = record.generation.saturating_sub(1);
                    record.last_error = Some(format!("refreshed, but the registration failed: {e}"));
                    tracing::warn!(view = %record.view, error = %e, "replica refreshed but not re-registered");
                }
                self.inner.metrics.refreshes.get_or_create(&label("ok")).inc();
            }
            Err(e) => {
                record.refresh_failures += 1;
                tracing::warn!(view = %record.view, replica = %record.id, error = %e, "replica refresh failed");
                record.last_error = Some(e);
                self.inner.metrics.refreshes.get_or_create(&label("failed")).inc();
            }
        }
        // The record may have been replaced meanwhile only by this task (the view is claimed).
        self.put_record(record);
        if let Err(e) = self.persist().await {
            tracing::error!(error = %e, "cannot persist the relocation state");
        }
    }

    /// The view's update fraction (0, 1], from the route documents; 1 when unknown.
    fn fraction_of(&self, record: &ReplicaRecord) -> f64 {
        let docs = self.inner.deps.merger.documents();
        match docs.get(civitas_model::Kind::DataUnit, &record.unit) {
            Some((_, civitas_model::Document::DataUnit(u))) => u
                .views
                .iter()
                .find(|v| v.name == record.view)
                .and_then(|v| v.update_frequency.as_ref()?.fraction_percent)
                .map(|p| (p / 100.0).clamp(0.01, 1.0))
                .unwrap_or(1.0),
            _ => 1.0,
        }
    }

    /// Conditional revalidation of every resource (`fraction` = `None`) or of the least
    /// recently validated share of them. Returns the replica's new validation time: the
    /// oldest validation among its resources.
    async fn revalidate(&self, record: &ReplicaRecord, fraction: Option<f64>) -> Result<u64, String> {
        let id = ReplicaId::new(record.id.clone()).map_err(|e| e.to_string())?;
        let replica = self
            .inner
            .store
            .open_complete(&id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("replica {} is not complete in the store", record.id))?;
        let mut resources = replica.resources;
        resources.sort_by_key(|r| r.validated_at_unix_ms);
        let count = match fraction {
            None => resources.len(),
            Some(f) => ((resources.len() as f64 * f).ceil() as usize).clamp(1, resources.len().max(1)),
        };
        let mut changed = 0usize;
        for meta in resources.iter_mut().take(count) {
            let key = ResourceKey::parse(&meta.key).map_err(|e| e.to_string())?;
            match self.copiers(record).0.revalidate(&id, &key).await.map_err(|e| e.to_string())? {
                civitas_replica::Revalidation::NotModified(m) => *meta = m,
                civitas_replica::Revalidation::Replaced(m) => {
                    changed += 1;
                    *meta = m;
                }
            }
        }
        tracing::debug!(view = %record.view, checked = count, changed, "replica revalidated");
        Ok(resources.iter().map(|r| r.validated_at_unix_ms).min().unwrap_or(0))
    }

    /// A new snapshot of every variant, swapped in whole: the record names the new
    /// replica, the old one is deleted after a grace period.
    async fn full_copy(
        &self,
        record: &mut ReplicaRecord,
        retire: &tokio::sync::mpsc::UnboundedSender<ReplicaId>,
    ) -> Result<u64, String> {
        let now = unix_ms(SystemTime::now());
        let id = super::execute::new_replica_id(&record.view, now)?;
        let (progress, _) = watch::channel(SnapshotProgress::default());
        let request = SnapshotRequest {
            replica_id: id.clone(),
            endpoint: record.source.clone(),
            variants: record.variants.clone(),
            seeds: Vec::new(),
        };
        let replica = self.copiers(record).0.copy(&request, &progress).await.map_err(|e| format!("full copy: {e}"))?;
        let old =
            ReplicaId::new(std::mem::replace(&mut record.id, id.as_str().to_string())).map_err(|e| e.to_string())?;
        record.bytes = replica.manifest.total_bytes;
        let _ = retire.send(old);
        Ok(replica.resources.iter().map(|r| r.validated_at_unix_ms).min().unwrap_or(now))
    }

    /// The `script` strategy: runs the view's command (`sh -c`) with the replica's
    /// environment. Its standard output lists the variants that changed, one per line
    /// (the paper's rsync/SQL scripts know what changed); those are revalidated, and a
    /// zero exit status vouches for the rest. Returns `started` on success.
    async fn run_script(&self, record: &ReplicaRecord, started: u64) -> Result<u64, String> {
        let settings = &self.inner.deps.replicas;
        let command = settings
            .update_scripts
            .get(record.view.as_str())
            .ok_or_else(|| format!("replicas.update_scripts has no command for {}", record.view))?;
        let id = ReplicaId::new(record.id.clone()).map_err(|e| e.to_string())?;
        let mut cmd = tokio::process::Command::new("sh");
        cmd.arg("-c")
            .arg(command)
            .env("CIVITAS_REPLICA_ID", &record.id)
            .env("CIVITAS_REPLICA_DIR", self.inner.store.replica_dir(&id))
            .env("CIVITAS_UNIT", record.unit.as_str())
            .env("CIVITAS_VIEW", record.view.as_str())
            .env("CIVITAS_SOURCE_URL", &record.source)
            .env("CIVITAS_VALIDATED_AT_UNIX_MS", record.validated_at_unix_ms.to_string())
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let timeout = Duration::from_secs(settings.script_timeout_seconds);
        let output = tokio::time::timeout(timeout, cmd.output())
            .await
            .map_err(|_| format!("update script ran longer than {} s and was killed", timeout.as_secs()))?
            .map_err(|e| format!("cannot run the update script: {e}"))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(format!("update script failed ({}): {}", output.status, stderr.trim()));
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        for line in stdout.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if !record.variants.iter().any(|v| v == line) {
                return Err(format!("update script named variant {line:?}, which the replica does not hold"));
            }
            let key = ResourceKey::for_variant(line);
            self.copiers(record).0.revalidate(&id, &key).await.map_err(|e| format!("variant {line}: {e}"))?;
        }
        Ok(started)
    }
}
