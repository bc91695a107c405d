//! Relocation at a node: the Migration Manager consuming the analyzers' candidates, the
//! replicas this node holds, the Update Manager keeping them fresh, and the replica
//! server behind their endpoints (see `docs/migration.md` and `docs/replicas.md`).
//!
//! Flow (one way): candidate → [`planning::resolve`] (unit, view, origin, this node's
//! site, constraints) → `MigrationManager::consider` → execute (copy from the origin's
//! node into the [`ReplicaStore`], verify, commit) → register the replica as a
//! `DataInstance` in the unit owner's catalog → the route tables of every node that
//! follows that catalog pick it up → the update manager refreshes it and re-registers
//! its `validatedAtUnixMs`; a replica not validated within its staleness bound drops out
//! of the `fresh-only` policy by itself.
//!
//! Invariants: a replica is registered only after its copy is complete and verified; a
//! node killed at any moment restarts with no half replica (incomplete copies are deleted,
//! copied-but-unregistered ones are registered); every decision and execution is an event.

mod copy_watch;
mod execute;
pub mod planning;
mod refresh;
pub mod serve;
mod sql;
pub mod state;

pub use sql::SqlReplicaDeps;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use civitas_catalog::Catalog;
use civitas_dataplane::RouteMerger;
use civitas_model::Urn;
use civitas_placement::MigrationCandidate;
use civitas_placement::migration::{
    Decision, EscalationError, MigrationEvent, MigrationManager, MigrationPlan, PendingMigration, Pin,
};
use civitas_replica::{HttpSnapshot, ObjectCopy, ObjectCopyConfig, ReplicaId, ReplicaStore, SnapshotConfig};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::{mpsc, watch};

use crate::config::{MigrationSettings, Peer, ReplicaSettings};
use planning::MigrationGuard;
use state::{CopyStrategy, RelocationState, ReplicaPhase, ReplicaRecord, STATE_FORMAT, StateFile};

/// What relocation is built from.
pub struct RelocationDeps {
    /// This node's catalog (for units it owns).
    pub catalog: Catalog,
    /// The merged route documents of this node and its peers.
    pub merger: Arc<RouteMerger>,
    /// The peers, in the merger's source order (source `i + 1` is `peers[i]`).
    pub peers: Vec<Peer>,
    /// `node.peer_token`: sent to peers (pulls through their data plane, registrations).
    pub peer_token: Option<String>,
    /// `node.peer_ca_file`'s PEM: trusted for `https` peers besides the system's roots.
    pub peer_ca_pem: Option<Vec<u8>>,
    /// The URL other nodes reach this node at.
    pub own_url: String,
    /// This node's site; `None`: no migration targets this node.
    pub own_site: Option<Urn>,
    /// The data directory (`replicas/` and `relocation.json` go there).
    pub data_dir: PathBuf,
    /// `[migration]`.
    pub migration: MigrationSettings,
    /// `[replicas]`.
    pub replicas: ReplicaSettings,
    /// Where views may go.
    pub guard: Arc<dyn MigrationGuard>,
    /// SQL replicas (`[replicas.postgres] connection` set); `None`: no SQL view moves here.
    pub sql: Option<SqlReplicaDeps>,
    /// The data plane's board of copies under way (reads of a view being copied may wait).
    pub copies: civitas_dataplane::CopyBoard,
    /// The answers the data plane keeps: a copy starts from them (`execute.rs`).
    pub kept: civitas_dataplane::KeptAnswers,
}

/// Why an operator's request was refused.
#[derive(Debug, thiserror::Error)]
pub enum RelocationError {
    /// No plan with that id is waiting.
    #[error("{0}")]
    Escalation(#[from] EscalationError),
    /// Relocation is switched off (`migration.enabled = false`).
    #[error("migrations are disabled on this node (migration.enabled = false)")]
    Disabled,
    /// The state could not be written: nothing was changed.
    #[error("cannot persist the relocation state: {0}")]
    Persist(String),
    /// This node holds no replica of the view.
    #[error("this node holds no replica of {0}")]
    NoReplica(Urn),
    /// A copy or refresh of the view is running; nothing was changed.
    #[error("a copy or refresh of {0} is running; try again in a moment")]
    Busy(Urn),
    /// The replica's instance could not be deleted from its owner's catalog; nothing was
    /// changed (other nodes may still route reads to it).
    #[error("cannot deregister the replica: {0}")]
    Deregister(String),
}

/// Labels of the per-replica metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ViewLabels {
    view: String,
}

/// Labels of `civitas_replica_refreshes_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefreshLabels {
    view: String,
    outcome: &'static str,
}

/// Labels of `civitas_migrations_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    decision: &'static str,
}

#[derive(Default)]
struct RelocationMetrics {
    decisions: Family<DecisionLabels, Counter>,
    executions: Family<DecisionLabels, Counter>,
    freshness_lag: Family<ViewLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    refreshes: Family<RefreshLabels, Counter>,
}

/// The node's relocation: cheap to clone, shared by the API and the background tasks.
#[derive(Clone)]
pub struct Relocation {
    inner: Arc<Inner>,
}

struct Inner {
    deps: RelocationDeps,
    manager: Mutex<MigrationManager>,
    /// By view: this node holds at most one replica of a view.
    replicas: Mutex<BTreeMap<Urn, ReplicaRecord>>,
    /// Variants to copy for plans waiting for a person, by escalation id.
    pending_variants: Mutex<BTreeMap<u64, Vec<String>>>,
    /// Views being copied or refreshed right now.
    busy: Mutex<HashSet<Urn>>,
    store: ReplicaStore,
    /// Copies through a peer's data plane (with `x-civitas-route: origin` and the peer token).
    snapshot: HttpSnapshot,
    /// Copies straight from an origin of a unit this node owns (no node headers: the
    /// origin is not a Civitas node and must not see the peer token).
    snapshot_direct: HttpSnapshot,
    objects: ObjectCopy,
    objects_direct: ObjectCopy,
    http: reqwest::Client,
    /// SQL replicas, when this node has a replica database.
    sql: Option<sql::SqlReplication>,
    state_file: StateFile,
    persist_lock: tokio::sync::Mutex<()>,
    metrics: RelocationMetrics,
}

/// A replica as `GET /api/v1/replicas` shows it.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaStatus {
    /// The stored record.
    #[serde(flatten)]
    pub record: ReplicaRecord,
    /// Seconds since it last matched its origin.
    pub freshness_lag_seconds: f64,
    /// Whether the data plane uses it (lag within the staleness bound, and registered).
    pub fresh: bool,
}

impl Relocation {
    /// Opens the replica store (deleting incomplete copies), loads the saved state and
    /// reconciles the two: a replica recorded as copying was interrupted and is forgotten
    /// (its partial copy is gone), one whose files are damaged or missing is forgotten,
    /// and replica directories no record names are deleted.
    pub async fn open(mut deps: RelocationDeps) -> Result<Relocation, String> {
        let store = ReplicaStore::open(deps.data_dir.join("replicas"))
            .await
            .map_err(|e| format!("cannot open the replica store: {e}"))?;
        let report = store.recover().await.map_err(|e| format!("cannot recover the replica store: {e}"))?;
        for dir in &report.removed_incomplete {
            tracing::warn!(replica = %dir, "deleted an incomplete replica copy left by an interrupted migration");
        }
        for dir in &report.removed_damaged {
            tracing::warn!(replica = %dir, "deleted a damaged replica");
        }
        let mut headers = http::HeaderMap::new();
        headers.insert(civitas_dataplane::ROUTE_HEADER, http::HeaderValue::from_static("origin"));
        if let Some(token) = &deps.peer_token {
            let value = http::HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| "node.peer_token is not a valid header value".to_string())?;
            headers.insert(http::header::AUTHORIZATION, value);
        }
        let config = SnapshotConfig {
            concurrency: deps.replicas.copy_concurrency,
            resource_timeout: Duration::from_secs(deps.replicas.resource_timeout_seconds),
            headers: headers.clone(),
            extra_roots_pem: deps.peer_ca_pem.clone(),
            ..SnapshotConfig::default()
        };
        let direct_config = SnapshotConfig { headers: http::HeaderMap::new(), ..config.clone() };
        let object_config = ObjectCopyConfig {
            chunk_bytes: deps.replicas.object_chunk_bytes,
            chunk_timeout: Duration::from_secs(deps.replicas.resource_timeout_seconds),
            headers,
            extra_roots_pem: deps.peer_ca_pem.clone(),
            ..ObjectCopyConfig::default()
        };
        let object_direct = ObjectCopyConfig { headers: http::HeaderMap::new(), ..object_config.clone() };
        let snapshot = HttpSnapshot::new(store.clone(), config).map_err(|e| e.to_string())?;
        let snapshot_direct = HttpSnapshot::new(store.clone(), direct_config).map_err(|e| e.to_string())?;
        let staging = deps.data_dir.join("replica-staging");
        let objects = ObjectCopy::new(store.clone(), &staging, object_config).map_err(|e| e.to_string())?;
        let objects_direct = ObjectCopy::new(store.clone(), &staging, object_direct).map_err(|e| e.to_string())?;
        let mut api_headers = reqwest::header::HeaderMap::new();
        if let Some(token) = &deps.peer_token
            && let Ok(v) = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
        {
            api_headers.insert(reqwest::header::AUTHORIZATION, v);
        }
        let mut api_builder = reqwest::Client::builder();
        if let Some(pem) = &deps.peer_ca_pem {
            for cert in reqwest::Certificate::from_pem_bundle(pem).map_err(|e| format!("node.peer_ca_file: {e}"))? {
                api_builder = api_builder.add_root_certificate(cert);
            }
        }
        let http = api_builder
            .default_headers(api_headers)
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let state_file = StateFile::in_dir(&deps.data_dir);
        let saved = state_file.load()?;
        let decisions = deps.migration.decisions().map_err(|e| e.to_string())?;
        let model = deps.migration.snapshot_model().map_err(|e| e.to_string())?;
        let objects_model = civitas_placement::migration::ObjectCopyStrategyModel { model: model.clone() };
        let postgres_model = civitas_placement::migration::PostgresStrategyModel { model: model.clone() };
        let strategies: Vec<Box<dyn civitas_placement::migration::MigrationStrategy>> =
            vec![Box::new(model), Box::new(objects_model), Box::new(postgres_model)];
        let (mut manager, records, pending_variants) = match saved {
            Some(s) => {
                let manager = match s.manager {
                    Some(m) => MigrationManager::restore(decisions, strategies, m),
                    None => MigrationManager::new(decisions, strategies),
                };
                (manager, s.replicas, s.pending_variants)
            }
            None => (MigrationManager::new(decisions, strategies), Vec::new(), BTreeMap::new()),
        };
        let complete: HashSet<&str> = report.complete.iter().map(ReplicaId::as_str).collect();
        let now = SystemTime::now();
        let mut replicas = BTreeMap::new();
        let mut forgotten_sql = Vec::new();
        for record in records {
            let forget = match (record.phase, record.copy) {
                // An object copy resumes from its staged chunks (the update manager restarts it).
                (ReplicaPhase::Copying, CopyStrategy::ObjectCopy) => None,
                // A SQL copy is one target transaction: nothing of it was committed.
                (ReplicaPhase::Copying, CopyStrategy::Postgres) => {
                    Some("the node stopped during the copy; its transaction was rolled back")
                }
                (ReplicaPhase::Copying, _) => Some("the node stopped during the copy; the partial copy was deleted"),
                (_, CopyStrategy::Postgres) if record.sql.is_none() => Some("its record lost its SQL replica"),
                (_, CopyStrategy::Postgres) if deps.sql.is_none() => {
                    Some("replicas.postgres.connection is no longer set")
                }
                (_, CopyStrategy::Postgres) => None,
                _ if !complete.contains(record.id.as_str()) => Some("its files are missing or damaged"),
                _ => None,
            };
            if let Some(why) = forget {
                tracing::warn!(view = %record.view, replica = %record.id, why, "replica forgotten at start-up");
                manager.record_failed(&record.unit, &record.view, &record.site, why, now);
                if record.copy == CopyStrategy::Postgres {
                    forgotten_sql.push(record);
                }
                continue;
            }
            replicas.insert(record.view.clone(), record);
        }
        let kept: HashSet<&str> = replicas.values().map(|r| r.id.as_str()).collect();
        if let Ok(mut dir) = tokio::fs::read_dir(&staging).await {
            while let Ok(Some(entry)) = dir.next_entry().await {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !kept.contains(name.as_str()) {
                    tracing::info!(replica = %name, "deleting the staging of an abandoned object copy");
                    let _ = tokio::fs::remove_dir_all(entry.path()).await;
                }
            }
        }
        for id in &report.complete {
            if !kept.contains(id.as_str()) {
                tracing::info!(replica = %id, "deleting a replica no record names (superseded or abandoned)");
                store.remove(id).await.map_err(|e| format!("cannot delete replica {id}: {e}"))?;
            }
        }
        let sql = deps.sql.take().map(sql::SqlReplication::new);
        let relocation = Relocation {
            inner: Arc::new(Inner {
                deps,
                manager: Mutex::new(manager),
                replicas: Mutex::new(replicas),
                pending_variants: Mutex::new(pending_variants),
                busy: Mutex::new(HashSet::new()),
                store,
                snapshot,
                snapshot_direct,
                objects,
                objects_direct,
                http,
                sql,
                state_file,
                persist_lock: tokio::sync::Mutex::new(()),
                metrics: RelocationMetrics::default(),
            }),
        };
        relocation.persist().await.map_err(|e| e.to_string())?;
        relocation.clean_up_sql(forgotten_sql).await;
        Ok(relocation)
    }

    /// Registers the relocation metrics.
    pub fn register_metrics(&self, registry: &mut Registry) {
        let m = &self.inner.metrics;
        registry.register(
            "civitas_migration_decisions",
            "Migration candidates decided, by decision (execute, escalate, refuse, hold, unresolved)",
            m.decisions.clone(),
        );
        registry.register(
            "civitas_migration_executions",
            "Migrations executed, by outcome (executed, failed)",
            m.executions.clone(),
        );
        registry.register(
            "civitas_replica_freshness_lag_seconds",
            "Seconds since each replica held here last matched its origin",
            m.freshness_lag.clone(),
        );
        registry.register(
            "civitas_replica_refreshes",
            "Replica refreshes, by view and outcome (ok, failed)",
            m.refreshes.clone(),
        );
    }

    /// The unit and view a replica held here copies, and the unit's document (for the
    /// replica server's read check); `None` for an unknown replica or unit.
    pub fn replica_view(&self, id: &str) -> Option<(civitas_model::DataUnit, Urn)> {
        let (unit, view) = {
            let replicas = self.inner.replicas.lock().unwrap_or_else(|e| e.into_inner());
            let r = replicas.values().find(|r| r.id == id)?;
            (r.unit.clone(), r.view.clone())
        };
        let docs = self.inner.deps.merger.documents();
        match docs.get(civitas_model::Kind::DataUnit, &unit) {
            Some((_, civitas_model::Document::DataUnit(u))) => Some((u.clone(), view)),
            _ => None,
        }
    }

    /// The replica store (for the replica server).
    pub fn store(&self) -> &ReplicaStore {
        &self.inner.store
    }

    /// Runs the migration manager on `candidates` and the update manager until `shutdown`.
    pub async fn run(self, mut candidates: mpsc::Receiver<MigrationCandidate>, mut shutdown: watch::Receiver<bool>) {
        // Replicas copied before a restart but not yet registered are registered now.
        let refresher = tokio::spawn(self.clone().refresh_loop(shutdown.clone()));
        loop {
            tokio::select! {
                () = stopped(&mut shutdown) => break,
                c = candidates.recv() => match c {
                    Some(c) => self.on_candidate(c).await,
                    None => break,
                },
            }
        }
        refresher.abort();
    }

    async fn on_candidate(&self, candidate: MigrationCandidate) {
        let inner = &self.inner;
        tracing::info!(unit = %candidate.unit, view = %candidate.view, trigger = %candidate.trigger,
            value = candidate.value, "migration candidate");
        if !inner.deps.migration.enabled {
            return;
        }
        let now = SystemTime::now();
        let variants = candidate.variants.clone();
        let already = inner.replicas.lock().unwrap_or_else(|e| e.into_inner()).get(&candidate.view).map(|r| r.phase);
        let resolved = match (&inner.deps.own_site, already) {
            (None, _) => Err("node.site is not set: no migration can target this node".to_string()),
            (Some(_), Some(phase)) => {
                Err(format!("this node already holds a replica of the view (phase {})", phase.as_str()))
            }
            (Some(site), None) => {
                let docs = inner.deps.merger.documents();
                planning::resolve(&docs, candidate.clone(), site, inner.deps.guard.as_ref())
            }
        };
        let resolved = match resolved {
            Ok(input) if civitas_placement::migration::is_sql_source(&input.source_type) => {
                self.sql_plan_input(input).await
            }
            other => other,
        };
        let decision = {
            let mut manager = inner.manager.lock().unwrap_or_else(|e| e.into_inner());
            match resolved {
                Err(reason) => {
                    tracing::info!(view = %candidate.view, %reason, "migration candidate not planned");
                    manager.record_unresolved(&candidate, &reason, now);
                    None
                }
                Ok(input) => Some(manager.consider(input, now)),
            }
        };
        let label = decision.as_ref().map_or("unresolved", Decision::name);
        inner.metrics.decisions.get_or_create(&DecisionLabels { decision: label }).inc();
        if let Some(Decision::Escalate { escalation: Some(id), .. }) = &decision {
            inner.pending_variants.lock().unwrap_or_else(|e| e.into_inner()).insert(*id, variants.clone());
        }
        if let Err(e) = self.persist().await {
            tracing::error!(error = %e, "cannot persist the relocation state");
        }
        if let Some(Decision::Execute { plan }) = decision {
            self.spawn_execute(plan, variants);
        }
    }

    /// The plans waiting for a person, oldest first.
    pub fn pending(&self) -> Vec<PendingMigration> {
        self.inner.manager.lock().unwrap_or_else(|e| e.into_inner()).pending().into_iter().cloned().collect()
    }

    /// Approves a waiting plan: it is persisted as approved, then executed in the background.
    pub async fn approve(&self, id: u64) -> Result<MigrationPlan, RelocationError> {
        if !self.inner.deps.migration.enabled {
            return Err(RelocationError::Disabled);
        }
        let plan = self.inner.manager.lock().unwrap_or_else(|e| e.into_inner()).approve(id, SystemTime::now());
        let variants = self.inner.pending_variants.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
        let persisted = self.persist().await;
        let plan = plan?;
        persisted.map_err(|e| RelocationError::Persist(e.to_string()))?;
        self.spawn_execute(plan.clone(), variants.unwrap_or_default());
        Ok(plan)
    }

    /// Rejects a waiting plan with a reason.
    pub async fn reject(&self, id: u64, reason: &str) -> Result<PendingMigration, RelocationError> {
        let rejected =
            self.inner.manager.lock().unwrap_or_else(|e| e.into_inner()).reject(id, reason, SystemTime::now());
        self.inner.pending_variants.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
        let persisted = self.persist().await;
        let rejected = rejected?;
        persisted.map_err(|e| RelocationError::Persist(e.to_string()))?;
        Ok(rejected)
    }

    /// Pins a view (`None`: removes its pin); the pin it had.
    pub async fn pin(&self, view: Urn, pin: Option<Pin>) -> Result<Option<Pin>, RelocationError> {
        let old = {
            let mut manager = self.inner.manager.lock().unwrap_or_else(|e| e.into_inner());
            let old = manager.unpin(&view);
            if let Some(p) = pin {
                manager.pin(view, p);
            }
            old
        };
        self.persist().await.map_err(|e| RelocationError::Persist(e.to_string()))?;
        Ok(old)
    }

    /// Every pin.
    pub fn pins(&self) -> BTreeMap<Urn, Pin> {
        self.inner.manager.lock().unwrap_or_else(|e| e.into_inner()).guard().pins().clone()
    }

    /// The events after `after`, oldest first.
    pub fn events(&self, after: Option<u64>) -> Vec<MigrationEvent> {
        self.inner.manager.lock().unwrap_or_else(|e| e.into_inner()).events(after).into_iter().cloned().collect()
    }

    /// One event and every event of the same consideration (a candidate's whole story).
    pub fn event(&self, id: u64) -> Option<(MigrationEvent, Vec<MigrationEvent>)> {
        let manager = self.inner.manager.lock().unwrap_or_else(|e| e.into_inner());
        let event = manager.event(id)?.clone();
        let related = match event.consideration {
            Some(c) => manager.event_log().consideration(c).into_iter().cloned().collect(),
            None => vec![event.clone()],
        };
        Some((event, related))
    }

    /// Deletes the replica of `view`: its instance is deleted from the owner's catalog
    /// first (so no node routes new reads to it), then the record is marked retiring
    /// (persisted), and the update manager deletes its data once the reads already
    /// routed to it have drained. Idempotent for a replica already retiring.
    pub async fn remove(&self, view: &Urn) -> Result<ReplicaRecord, RelocationError> {
        // No replica is "no replica" even while its last deletion is still releasing the view.
        if !self.inner.replicas.lock().unwrap_or_else(|e| e.into_inner()).contains_key(view) {
            return Err(RelocationError::NoReplica(view.clone()));
        }
        if !self.claim(view) {
            return Err(RelocationError::Busy(view.clone()));
        }
        let result = async {
            let record = self.inner.replicas.lock().unwrap_or_else(|e| e.into_inner()).get(view).cloned();
            let mut record = record.ok_or_else(|| RelocationError::NoReplica(view.clone()))?;
            if record.retiring_at_unix_ms.is_some() {
                return Ok(record);
            }
            self.deregister(&record).await.map_err(RelocationError::Deregister)?;
            record.retiring_at_unix_ms = Some(unix_ms(SystemTime::now()));
            self.put_record(record.clone());
            self.persist().await.map_err(|e| RelocationError::Persist(e.to_string()))?;
            tracing::info!(%view, replica = %record.id, "replica deregistered; its data goes after the grace period");
            Ok(record)
        }
        .await;
        self.release(view);
        result
    }

    /// The replicas held here, with their freshness.
    pub fn replicas(&self) -> Vec<ReplicaStatus> {
        let now = unix_ms(SystemTime::now());
        self.inner
            .replicas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|r| ReplicaStatus {
                freshness_lag_seconds: r.freshness_lag_seconds(now),
                fresh: r.phase == ReplicaPhase::Serving && r.retiring_at_unix_ms.is_none() && r.is_fresh(now),
                record: r.clone(),
            })
            .collect()
    }

    /// Writes the state file (serialized: the latest state is always written last).
    async fn persist(&self) -> std::io::Result<()> {
        let _guard = self.inner.persist_lock.lock().await;
        let state = RelocationState {
            format: STATE_FORMAT,
            manager: Some(self.inner.manager.lock().unwrap_or_else(|e| e.into_inner()).state()),
            replicas: self.inner.replicas.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect(),
            pending_variants: self.inner.pending_variants.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        };
        let file = self.inner.state_file.clone();
        tokio::task::spawn_blocking(move || file.store(&state)).await.map_err(std::io::Error::other)?
    }

    /// The base URL of the node whose catalog is merged as `source` (`None`: this node).
    fn source_url(&self, source: usize) -> Option<String> {
        match source {
            0 => None,
            i => self.inner.deps.peers.get(i - 1).map(|p| p.url.clone()),
        }
    }

    /// The copiers for a replica: through its owner peer, or straight from the origin of a
    /// unit this node owns.
    fn copiers(&self, record: &ReplicaRecord) -> (&HttpSnapshot, &ObjectCopy) {
        match record.owner {
            Some(_) => (&self.inner.snapshot, &self.inner.objects),
            None => (&self.inner.snapshot_direct, &self.inner.objects_direct),
        }
    }

    fn claim(&self, view: &Urn) -> bool {
        self.inner.busy.lock().unwrap_or_else(|e| e.into_inner()).insert(view.clone())
    }

    fn release(&self, view: &Urn) {
        self.inner.busy.lock().unwrap_or_else(|e| e.into_inner()).remove(view);
    }
}

/// Resolves when `shutdown` turns true (never, if its sender is gone).
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
