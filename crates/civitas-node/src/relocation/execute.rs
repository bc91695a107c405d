//! Executing a plan: copy the view from its origin's node into the replica store, verify
//! and commit it, then register it as a `DataInstance` in the unit owner's catalog.
//! Until that registration nothing routes to it, so a migration never fails a request.

use std::time::SystemTime;

use civitas_catalog::ApplyOptions;
use civitas_model::{DataUnit, Document, Kind, Urn, View};
use civitas_placement::migration::MigrationPlan;
use civitas_replica::{ObjectRequest, ReplicaId, Seed, SnapshotProgress, SnapshotRequest};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::state::{CopyStrategy, ReplicaPhase, ReplicaRecord, UpdateStrategy};

/// An object copy that keeps failing is given up after this many attempts.
pub(super) const MAX_COPY_ATTEMPTS: u32 = 5;
use super::{DecisionLabels, Relocation, unix_ms};

impl Relocation {
    /// Executes `plan` in the background (at most one copy or refresh per view at a time).
    pub(super) fn spawn_execute(&self, plan: MigrationPlan, variants: Vec<String>) {
        let this = self.clone();
        tokio::spawn(async move {
            if !this.claim(&plan.view) {
                tracing::info!(view = %plan.view, "a copy of this view is already running; plan skipped");
                return;
            }
            let copy = this.watch_copy(&plan);
            let result = this.execute(&plan, variants).await;
            copy.settle(result.is_ok());
            this.release(&plan.view);
            let now = SystemTime::now();
            let outcome = match &result {
                Ok(()) => "executed",
                Err(_) => "failed",
            };
            this.inner.metrics.executions.get_or_create(&DecisionLabels { decision: outcome }).inc();
            {
                let mut manager = this.inner.manager.lock().unwrap_or_else(|e| e.into_inner());
                match &result {
                    Ok(()) => manager.record_executed(&plan.view, &plan.target_site, now),
                    Err(e) => manager.record_failed(&plan.unit, &plan.view, &plan.target_site, e, now),
                }
            }
            match &result {
                Ok(()) => tracing::info!(view = %plan.view, site = %plan.target_site, "migration executed"),
                Err(e) => tracing::warn!(view = %plan.view, site = %plan.target_site, error = %e, "migration failed"),
            }
            if let Err(e) = this.persist().await {
                tracing::error!(error = %e, "cannot persist the relocation state");
            }
        });
    }

    async fn execute(&self, plan: &MigrationPlan, variants: Vec<String>) -> Result<(), String> {
        let inner = &self.inner;
        let own_site = inner.deps.own_site.clone().ok_or("node.site is not set")?;
        if plan.target_site != own_site {
            return Err(format!(
                "the plan targets site {}, this node is at {own_site}; a node only copies views to its own site",
                plan.target_site
            ));
        }
        let docs = inner.deps.merger.documents();
        let (source_index, unit) = match docs.get(Kind::DataUnit, &plan.unit) {
            Some((s, Document::DataUnit(u))) => (s, u.clone()),
            _ => return Err(format!("data unit {} is no longer in any catalog this node follows", plan.unit)),
        };
        let view = unit
            .views
            .iter()
            .find(|v| v.name == plan.view)
            .cloned()
            .ok_or_else(|| format!("data unit {} no longer has view {}", plan.unit, plan.view))?;
        let owner = self.source_url(source_index);
        // A peer's view is pulled through the peer's data plane, which enforces its rules;
        // a view of a unit this node owns straight from its origin instance.
        let source = match &owner {
            Some(base) => format!("{base}/data/{}/{}", plan.unit, view.name.local_name()),
            None => origin_url(&docs, &unit, &view)?,
        };
        let copy = match plan.strategy.as_str() {
            civitas_placement::migration::ObjectCopyStrategyModel::NAME => CopyStrategy::ObjectCopy,
            civitas_placement::migration::PostgresStrategyModel::NAME => CopyStrategy::Postgres,
            _ => CopyStrategy::HttpSnapshot,
        };
        let mut variants: Vec<String> = variants.into_iter().filter(|v| v.starts_with('/')).collect();
        if variants.is_empty() || copy != CopyStrategy::HttpSnapshot {
            // An object is one resource: the view's own; a SQL replica holds the rows of
            // every parameter value.
            variants = vec!["/".into()];
        }
        let (strategy, period, bound) = match copy {
            CopyStrategy::Postgres => self.sql_update_plan(&unit, &view)?,
            _ => self.update_plan(&view),
        };
        let now = unix_ms(SystemTime::now());
        let id = new_replica_id(&view.name, now)?;
        let instance =
            Urn::parse(&format!("{}:replica:{}:{}", unit.header.name, own_site.local_name(), view.name.local_name()))
                .map_err(|e| format!("cannot name the replica instance: {e}"))?;
        let record = ReplicaRecord {
            id: id.as_str().to_string(),
            unit: unit.header.name.clone(),
            view: view.name.clone(),
            instance,
            site: own_site,
            source,
            owner,
            variants,
            phase: ReplicaPhase::Copying,
            copy,
            copy_attempts: 0,
            strategy,
            refresh_period_seconds: period,
            staleness_bound_seconds: bound,
            created_at_unix_ms: now,
            validated_at_unix_ms: 0,
            generation: 0,
            bytes: 0,
            seeded_bytes: 0,
            refreshes: 0,
            refresh_failures: 0,
            last_error: None,
            registered_validated_at_unix_ms: 0,
            retiring_at_unix_ms: None,
            sql_source: match copy {
                CopyStrategy::Postgres => Some(super::sql::sql_view(&unit, &view.name)?.connection),
                _ => None,
            },
            sql: None,
        };
        // Recorded before the first byte is copied: a restart then knows to clean up or resume.
        self.put_record(record.clone());
        self.persist().await.map_err(|e| format!("cannot persist the relocation state: {e}"))?;
        self.copy_and_register(record).await
    }

    /// Makes the first copy of a recorded replica, then registers it. A failed snapshot is
    /// forgotten (its partial copy is deleted); a failed object copy keeps its staged
    /// chunks and is resumed by the update manager, up to [`MAX_COPY_ATTEMPTS`].
    pub(super) async fn copy_and_register(&self, mut record: ReplicaRecord) -> Result<(), String> {
        let id = ReplicaId::new(record.id.clone()).map_err(|e| e.to_string())?;
        record.copy_attempts += 1;
        tracing::info!(view = %record.view, replica = %id, source = %record.source, copy = record.copy.as_str(),
            attempt = record.copy_attempts, "copying view");
        if record.copy == CopyStrategy::Postgres {
            return self.copy_sql_and_register(record).await;
        }
        let (progress, _) = watch::channel(SnapshotProgress::default());
        let (snapshot, objects) = self.copiers(&record);
        let copied = if record.copy == CopyStrategy::ObjectCopy {
            let request = ObjectRequest { replica_id: id.clone(), url: record.source.clone(), variant: "/".into() };
            objects.copy(&request, &progress).await
        } else {
            let request = SnapshotRequest {
                replica_id: id.clone(),
                endpoint: record.source.clone(),
                variants: record.variants.clone(),
                seeds: self.seeds(&record),
            };
            snapshot.copy(&request, &progress).await
        };
        let replica = match copied {
            Ok(r) => r,
            Err(e) if record.copy == CopyStrategy::ObjectCopy && record.copy_attempts < MAX_COPY_ATTEMPTS => {
                let staged = objects.staged_bytes(&id).await;
                record.last_error = Some(format!("copy attempt {} failed: {e}", record.copy_attempts));
                self.put_record(record);
                let _ = self.persist().await;
                return Err(format!("copy failed ({staged} bytes staged; it resumes): {e}"));
            }
            Err(e) => {
                if record.copy == CopyStrategy::ObjectCopy {
                    let _ = objects.discard(&id).await;
                }
                self.drop_record(&record.view);
                let _ = self.persist().await;
                return Err(format!("copy failed: {e}"));
            }
        };
        if record.strategy != UpdateStrategy::Script
            && replica.resources.iter().all(|r| r.etag.is_none() && r.last_modified.is_none())
        {
            // The origin cannot say what changed: copy it whole each period.
            record.strategy = UpdateStrategy::FullCopy;
        }
        record.phase = ReplicaPhase::Copied;
        record.last_error = None;
        record.bytes = replica.manifest.total_bytes;
        record.seeded_bytes = progress.borrow().bytes_seeded;
        record.validated_at_unix_ms = replica
            .resources
            .iter()
            .map(|r| r.validated_at_unix_ms)
            .min()
            .unwrap_or(replica.manifest.committed_at_unix_ms);
        self.put_record(record.clone());
        self.persist().await.map_err(|e| format!("cannot persist the relocation state: {e}"))?;
        self.register(&mut record).await.map_err(|e| format!("copied, but registration failed (retried): {e}"))?;
        Ok(())
    }

    /// Registers (or re-registers, with a new generation) the replica's instance in its
    /// unit owner's catalog, then records it as serving.
    pub(super) async fn register(&self, record: &mut ReplicaRecord) -> Result<(), String> {
        let inner = &self.inner;
        record.generation += 1;
        let doc = instance_document(record, &inner.deps.own_url);
        match &record.owner {
            None => {
                let decoded = Document::decode(&doc).map_err(|e| format!("invalid instance document: {e}"))?;
                inner.deps.catalog.apply(vec![decoded], ApplyOptions::default()).await.map_err(|e| e.to_string())?;
            }
            Some(owner) => {
                let url = format!("{owner}/api/v1/instances/{}", record.instance);
                // The copier's client (peer token and all): the connection the copy has
                // just used to the owner's node carries the registration, without a new
                // handshake over the link.
                let response = self
                    .copiers(record)
                    .0
                    .client()
                    .put(&url)
                    .timeout(std::time::Duration::from_secs(30))
                    .json(&doc)
                    .send()
                    .await
                    .map_err(|e| format!("PUT {url}: {}", error_chain(&e)))?;
                let status = response.status();
                if !status.is_success() {
                    let body = response.text().await.unwrap_or_default();
                    return Err(format!("PUT {url}: {status}: {}", body.chars().take(500).collect::<String>()));
                }
            }
        }
        record.phase = ReplicaPhase::Serving;
        record.registered_validated_at_unix_ms = record.validated_at_unix_ms;
        self.put_record(record.clone());
        Ok(())
    }

    /// Deletes the replica's instance from its unit owner's catalog (a replica never
    /// registered, or already gone there, is fine).
    pub(super) async fn deregister(&self, record: &ReplicaRecord) -> Result<(), String> {
        let inner = &self.inner;
        match &record.owner {
            None => match inner.deps.catalog.delete(Kind::DataInstance, &record.instance, false, false).await {
                Ok(_) | Err(civitas_catalog::CatalogError::NotFound { .. }) => Ok(()),
                Err(e) => Err(e.to_string()),
            },
            Some(owner) => {
                let url = format!("{owner}/api/v1/instances/{}", record.instance);
                let response =
                    inner.http.delete(&url).send().await.map_err(|e| format!("DELETE {url}: {}", error_chain(&e)))?;
                let status = response.status();
                if status.is_success() || status == reqwest::StatusCode::NOT_FOUND {
                    return Ok(());
                }
                let body = response.text().await.unwrap_or_default();
                Err(format!("DELETE {url}: {status}: {}", body.chars().take(500).collect::<String>()))
            }
        }
    }

    /// The answers of the record's variants that this node's data plane kept from its
    /// clients' reads: the copy asks the source whether they still hold before fetching.
    fn seeds(&self, record: &ReplicaRecord) -> Vec<Seed> {
        let kept = &self.inner.deps.kept;
        record
            .variants
            .iter()
            .filter_map(|variant| {
                let answer = kept.find(&record.view, variant)?;
                tracing::debug!(view = %record.view, variant, bytes = answer.body.len(), age_ms = answer.age.as_millis() as u64,
                    "copy starts from a kept answer");
                Some(Seed {
                    variant: variant.clone(),
                    etag: answer.etag,
                    content_type: answer.content_type,
                    last_modified: answer.last_modified,
                    body: answer.body,
                })
            })
            .collect()
    }

    /// The update strategy, refresh period and staleness bound for a view (see
    /// `docs/replicas.md`, "Update strategies").
    fn update_plan(&self, view: &View) -> (UpdateStrategy, f64, f64) {
        let settings = &self.inner.deps.replicas;
        let freq = view.update_frequency.as_ref();
        let period = self.refresh_period(view);
        let fraction = freq.and_then(|f| f.fraction_percent).map(|p| (p / 100.0).clamp(0.0, 1.0));
        let strategy = if settings.update_scripts.contains_key(view.name.as_str()) {
            UpdateStrategy::Script
        } else {
            match fraction {
                Some(f) if f > 0.0 && f < 0.5 => UpdateStrategy::Fractional,
                _ => UpdateStrategy::Revalidate,
            }
        };
        // A fractional refresh validates every variant once per 1/fraction periods.
        let cycle = match (strategy, fraction) {
            (UpdateStrategy::Fractional, Some(f)) => (1.0 / f).ceil(),
            _ => 1.0,
        };
        (strategy, period, period * cycle * settings.staleness_factor)
    }

    /// A view's refresh period: its `updateFrequency` period / times, else
    /// `replicas.default_refresh_seconds`.
    pub(super) fn refresh_period(&self, view: &View) -> f64 {
        view.update_frequency
            .as_ref()
            .map(|f| f.period.seconds() / f64::from(f.times.max(1)))
            .filter(|p| p.is_finite() && *p > 0.0)
            .unwrap_or(self.inner.deps.replicas.default_refresh_seconds)
    }

    pub(super) fn put_record(&self, record: ReplicaRecord) {
        self.inner.replicas.lock().unwrap_or_else(|e| e.into_inner()).insert(record.view.clone(), record);
    }

    pub(super) fn drop_record(&self, view: &Urn) {
        self.inner.replicas.lock().unwrap_or_else(|e| e.into_inner()).remove(view);
    }
}

/// The URL of `view` at an origin instance of `unit` (endpoint + the link's path; the
/// copy appends each variant).
fn origin_url(docs: &civitas_dataplane::MergedDocuments, unit: &DataUnit, view: &View) -> Result<String, String> {
    let origin = docs
        .of_kind(Kind::DataInstance)
        .filter_map(|(_, d)| match d {
            Document::DataInstance(i) => Some(i),
            _ => None,
        })
        .filter(|i| {
            i.data_unit == unit.header.name && i.role == civitas_model::InstanceRole::Origin && i.serves(&view.name)
        })
        .filter_map(|i| i.endpoint.as_deref())
        .min()
        .ok_or_else(|| format!("view {} has no origin instance with an endpoint", view.name))?;
    // The link's path exactly (a trailing slash kept): the view's own resource is fetched
    // there, the other variants below it.
    let link = view.link.split_once('?').map_or(view.link.as_str(), |(p, _)| p);
    let link = if link.starts_with('/') { link.to_string() } else { format!("/{link}") };
    Ok(format!("{}{link}", origin.trim_end_matches('/')))
}

/// `<view local name>-<ms>`: unique per view and time, a valid [`ReplicaId`].
pub(super) fn new_replica_id(view: &Urn, now_unix_ms: u64) -> Result<ReplicaId, String> {
    let local: String = view
        .local_name()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' })
        .take(80)
        .collect();
    ReplicaId::new(format!("{local}-{now_unix_ms}")).map_err(|e| e.to_string())
}

/// The replica's `DataInstance`: served by this node at `/replicas/{id}`, with the
/// freshness fields the data plane's `fresh-only` policy reads.
pub(super) fn instance_document(record: &ReplicaRecord, own_url: &str) -> Value {
    json!({
        "@type": "DataInstance",
        "name": record.instance.as_str(),
        "version": record.generation.to_string(),
        "dataUnit": record.unit.as_str(),
        "views": [record.view.as_str()],
        "site": record.site.as_str(),
        "endpoint": format!("{own_url}/replicas/{}", record.id),
        "role": "replica",
        "metainformation": {
            "replicaId": record.id,
            "strategy": record.copy.as_str(),
            "updateStrategy": record.strategy.as_str(),
            "source": record.source,
            "viewRelativePaths": true,
            "validatedAtUnixMs": record.validated_at_unix_ms,
            "stalenessBoundSeconds": record.staleness_bound_seconds,
        }
    })
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(x) = source {
        s.push_str(": ");
        s.push_str(&x.to_string());
        source = x.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_ids_are_valid_for_any_view_name() {
        let view = Urn::parse("urn:city:buildings:blocks.v2~(all)").unwrap();
        let id = new_replica_id(&view, 42).unwrap();
        assert_eq!(id.as_str(), "blocks-v2--all--42");
    }
}
