//! A Civitas node: one process per site that wires the modules together.
//!
//! Today it holds the catalog (redb in the data dir) behind the HTTP API
//! (`/api/v1/...`, see `docs/api.md`), health and readiness probes, Prometheus
//! metrics, configuration (TOML, then `CIVITAS_*` environment, then flags) and
//! graceful shutdown.
//!
//! What it is not: it holds no domain logic of its own — validation lives in the
//! model, consistency in the catalog. The mapping of errors to HTTP answers
//! happens here and only here ([`problem`]).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod config;
pub mod federation;
pub mod ledger_api;
pub mod metrics;
pub mod migrations_api;
mod openapi;
pub mod pipelines_api;
pub mod problem;
pub mod relocation;
pub mod sdd_api;
pub mod security_api;
pub mod sql_api;
mod tls_listener;
pub mod witness_client;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use civitas_catalog::Catalog;
use civitas_catalog::kv::{KvError, RedbOptions, RedbStore};
use civitas_dataplane::{DataPlane, DataPlaneConfig, RouteHandle, observation_channel};
use civitas_model::Urn;
use civitas_placement::{AnalyzerConfig, AnalyzerManager, ChannelBus};

pub use config::{Config, ConfigError, ConfigOverrides};

/// Why a node could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The data directory could not be created.
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The catalog store could not be opened.
    #[error("cannot open the catalog: {0}")]
    Store(#[from] KvError),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The ledger could not be opened (or refused to serve a log that does not verify).
    #[error("cannot open the ledger: {0}")]
    Ledger(#[from] civitas_ledger::LedgerError),
    /// The witness state could not be opened.
    #[error("cannot open the witness state: {0}")]
    Witness(#[from] civitas_ledger::WitnessError),
    /// The node key could not be loaded or created.
    #[error("node key: {0}")]
    NodeKey(String),
    /// A setting is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The replica store or the relocation state could not be opened.
    #[error("relocation: {0}")]
    Relocation(String),
    /// The server failed while running.
    #[error("server error: {0}")]
    Serve(std::io::Error),
}

/// Installs the `tracing` subscriber: `RUST_LOG` if set, else `log.level`.
pub fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&config.log.level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

/// Builds the async runtime `[runtime]` asks for (see [`config::RuntimeConfig`]).
pub fn build_runtime(config: &Config, thread_name: &str) -> std::io::Result<tokio::runtime::Runtime> {
    let workers = match config.runtime.worker_threads {
        0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        n => n,
    };
    let mut builder = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(workers);
        b
    };
    builder.enable_all().thread_name(thread_name).build()
}

/// Opens the catalog store in `config.storage.data_dir`.
pub fn open_catalog(config: &Config) -> Result<Catalog, NodeError> {
    let dir = &config.storage.data_dir;
    std::fs::create_dir_all(dir).map_err(|source| NodeError::DataDir { path: dir.clone(), source })?;
    let options = RedbOptions {
        history_revisions: config.catalog.watch_history_revisions,
        max_batch: config.catalog.write_batch_max,
        cache_size_bytes: config.catalog.cache_size_bytes,
        ..RedbOptions::default()
    };
    let store = RedbStore::open(&dir.join("catalog.redb"), options)?;
    Ok(Catalog::new(Arc::new(store)).with_max_versions(config.catalog.max_versions_per_document))
}

/// Runs a node until SIGTERM or SIGINT, then shuts down gracefully: stops accepting,
/// ends watch streams, waits up to `http.shutdown_grace_seconds` for in-flight requests.
/// Every acknowledged write is already durable, so a harder stop loses nothing either.
pub async fn run(config: Config) -> Result<(), NodeError> {
    let catalog = open_catalog(&config)?;
    let addr = config.http.listen;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| NodeError::Bind { addr, source })?;
    let local = listener.local_addr().map_err(NodeError::Serve)?;
    let grace = Duration::from_secs(config.http.shutdown_grace_seconds);
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let mut metrics = metrics::Metrics::new();

    // Federation: the peers asked for documents this node does not hold.
    let peers = config.node.checked_peers().map_err(|e| NodeError::Config(e.to_string()))?;
    let peer_ca = config.node.peer_ca_pem().map_err(|e| NodeError::Config(e.to_string()))?;
    let peer_tls = civitas_dataplane::tls::client_config(peer_ca.as_deref()).map_err(NodeError::Config)?;
    for peer in &peers {
        tracing::info!(peer = %peer.name, url = %peer.url, "federation peer");
    }
    let federation = federation::Federation::new(
        peers.clone(),
        Duration::from_millis(config.node.peer_timeout_ms.max(1)),
        Duration::from_secs(config.node.peer_cache_seconds.max(1)),
        peer_token(&config),
        peer_ca.as_deref(),
    )
    .map_err(|e| NodeError::Config(format!("node.peers: cannot build the HTTP client: {e}")))?;

    // Data plane: a route table merged from this node's catalog (source 0) and its peers'
    // (sources 1..), so every view of the federation is reachable from here.
    let routes = RouteHandle::new();
    let merger = civitas_dataplane::RouteMerger::new(routes.clone(), 1 + peers.len());
    tokio::spawn(civitas_dataplane::follow_catalog(catalog.clone(), merger.sink(0), shutdown_rx.clone()));
    for (i, peer) in peers.iter().enumerate() {
        let access = civitas_dataplane::RemoteAccess {
            authorization: peer_token(&config).and_then(|t| http::HeaderValue::from_str(&format!("Bearer {t}")).ok()),
            tls: Some(Arc::clone(&peer_tls)),
        };
        tokio::spawn(civitas_dataplane::follow_remote(
            peer.url.clone(),
            access,
            merger.sink(i + 1),
            shutdown_rx.clone(),
        ));
    }
    let (observations, observation_rx) = observation_channel(config.dataplane.observation_capacity);
    let dataplane = DataPlane::new(dataplane_config(&config, Arc::clone(&peer_tls))?, routes.clone(), observations);

    // Analyzer manager: observations in, migration candidates out on the bus.
    let (bus, candidates) = ChannelBus::new(config.sdd.candidate_queue);
    let bus = Arc::new(bus);
    metrics.candidate_bus = Some(Arc::clone(&bus));
    let analyzer = AnalyzerManager::new(analyzer_config(&config), bus);
    tokio::spawn(analyzer.clone().run(observation_rx, shutdown_rx.clone()));

    let LedgerParts { ledger, node_key, witness, cosigned } =
        start_ledger(&config, metrics.cosign_failures.clone(), shutdown_rx.clone()).await?;

    // Security: who may see, read and move what (off unless `[security] enabled`).
    let security = start_security(&config, &node_key).await?;
    if let Some(sec) = &security {
        sec.metrics.register(metrics.registry_mut());
    } else {
        tracing::warn!("[security] enabled = false: every caller may see, read and change everything");
    }
    let guard: Arc<dyn relocation::planning::MigrationGuard> = match &security {
        Some(sec) => Arc::new(relocation::planning::SecurityGuard(Arc::clone(&sec.policies))),
        None => Arc::new(relocation::planning::ConstraintGuard),
    };

    let read_guard: Option<Arc<dyn civitas_dataplane::ReadGuard>> = security.as_ref().map(|sec| {
        Arc::new(security_api::DataPlaneGuard::new(Arc::clone(sec), Arc::clone(&merger)))
            as Arc<dyn civitas_dataplane::ReadGuard>
    });
    let dataplane = match &read_guard {
        Some(guard) => dataplane.with_guard(Arc::clone(guard)),
        None => dataplane,
    };
    // SQL units: checked against their databases at apply, served from them at /data/….
    let sql_views =
        Arc::new(civitas_sql::SqlViews::new(&config.sql).map_err(|e| NodeError::Config(format!("sql: {e}")))?);
    let sql = sql_api::SqlRoutes::new(Arc::clone(&sql_views), read_guard.clone());
    tokio::spawn(sql.clone().follow(catalog.clone(), shutdown_rx.clone()));
    dataplane.register_metrics(metrics.registry_mut());

    // Migration manager and replicas: candidates in, replicas registered in the catalog.
    let relocation = relocation::Relocation::open(relocation::RelocationDeps {
        catalog: catalog.clone(),
        merger: Arc::clone(&merger),
        peer_token: peer_token(&config).map(str::to_string),
        peer_ca_pem: peer_ca.clone(),
        peers,
        own_url: config
            .node
            .advertised_url(local, config.security.tls.is_some())
            .map_err(|e| NodeError::Config(e.to_string()))?,
        own_site: match config.node.site.as_str() {
            "" => None,
            s => Some(Urn::parse(s).map_err(|e| NodeError::Config(format!("node.site: {e}")))?),
        },
        data_dir: config.storage.data_dir.clone(),
        migration: config.migration.clone(),
        replicas: config.replicas.clone(),
        guard,
        sql: (!config.replicas.postgres.connection.is_empty()).then(|| relocation::SqlReplicaDeps {
            config: config.sql.clone(),
            settings: config.replicas.postgres.clone(),
            views: Arc::clone(&sql_views),
        }),
        copies: dataplane.copies().clone(),
        kept: dataplane.kept_answers(),
    })
    .await
    .map_err(NodeError::Relocation)?;
    relocation.register_metrics(metrics.registry_mut());
    tokio::spawn(relocation.clone().run(candidates, shutdown_rx.clone()));

    // HTTPS when `[security.tls]` names a certificate and key (checked before serving).
    let tls = match config.security.tls.as_ref() {
        Some(t) => {
            Some(civitas_security::tls::server_config(t).map_err(|e| NodeError::Config(format!("security.tls: {e}")))?)
        }
        None => None,
    };
    let audited = security.clone();
    let state = api::AppState {
        catalog,
        ledger,
        node_key,
        witness,
        analyzer,
        metrics: Arc::new(metrics),
        config: Arc::new(config),
        shutdown: shutdown_rx.clone(),
        federation: Arc::new(federation),
        relocation: Some(relocation),
        security,
        sql: Some(sql.clone()),
        read_guard,
        dataplane: Some(dataplane.clone()),
    };
    // The checkpoint route serves the cosigned checkpoint it finds in this extension.
    let served = ledger_api::ServedCheckpoint(Arc::new(move |fresh| cosigned.serve(fresh)));
    let router = api::router(state).layer(axum::Extension(served));
    // Data plane requests bypass the API router (see `api::dispatch`).
    let mut server = match tls.as_ref() {
        Some(tls) => {
            let listener = tls_listener::TlsListener::new(listener, Arc::clone(tls)).map_err(NodeError::Serve)?;
            tracing::info!("serving HTTPS (security.tls)");
            tokio::spawn(api::serve_with_data_plane(listener, router, dataplane, Some(sql), shutdown_rx))
        }
        None => tokio::spawn(api::serve_with_data_plane(listener, router, dataplane, Some(sql), shutdown_rx)),
    };
    tracing::info!(addr = %local, "listening on {local}");

    tokio::select! {
        res = &mut server => {
            return match res {
                Ok(r) => r.map_err(NodeError::Serve),
                Err(e) => Err(NodeError::Serve(std::io::Error::other(e))),
            };
        }
        signal = shutdown_signal() => tracing::info!(signal, "shutting down"),
    }
    let _ = shutdown_tx.send(true);
    let served = match tokio::time::timeout(grace, &mut server).await {
        Ok(Ok(r)) => r.map_err(NodeError::Serve),
        Ok(Err(e)) => Err(NodeError::Serve(std::io::Error::other(e))),
        Err(_) => {
            tracing::warn!(grace_seconds = grace.as_secs(), "grace period over; closing remaining connections");
            server.abort();
            Ok(())
        }
    };
    // The decisions of the last requests are on disk before the process ends.
    if let Some(security) = audited {
        let synced = tokio::task::spawn_blocking(move || security.policies.sync_audit(Duration::from_secs(5))).await;
        if !matches!(synced, Ok(true)) {
            tracing::warn!("the audit log could not be synced at shutdown; its last records may be missing");
        }
    }
    served?;
    tracing::info!("stopped");
    Ok(())
}

/// `node.peer_token`, when set.
fn peer_token(config: &Config) -> Option<&str> {
    Some(config.node.peer_token.trim()).filter(|t| !t.is_empty())
}

/// The Security Manager when `[security] enabled`, with the bootstrap admin token written
/// at the first start.
async fn start_security(
    config: &Config,
    node_key: &civitas_ledger::NodeKey,
) -> Result<Option<Arc<civitas_security::Security>>, NodeError> {
    if !config.security.enabled {
        return Ok(None);
    }
    let security = civitas_security::Security::from_config(&config.security, &config.storage.data_dir, node_key)
        .map_err(|e| NodeError::Config(format!("security: {e}")))?;
    security_api::bootstrap_admin_token(&security, &config.storage.data_dir).await.map_err(NodeError::Config)?;
    tracing::info!("security enabled: requests are authenticated and securityConstraints enforced");
    Ok(Some(Arc::new(security)))
}

/// The ledger, the node key and the witness, opened from the data dir; when `[ledger]`
/// names witnesses, a task that asks them to cosign this node's checkpoints.
struct LedgerParts {
    ledger: Arc<civitas_ledger::Ledger>,
    node_key: Arc<civitas_ledger::NodeKey>,
    witness: Arc<civitas_ledger::Witness>,
    cosigned: Arc<witness_client::CosignedCheckpoints>,
}

/// Opens the ledger (on the blocking pool: opening verifies the whole log) and starts
/// the cosigning task; see [`LedgerParts`].
async fn start_ledger(
    config: &Config,
    cosign_failures: prometheus_client::metrics::counter::Counter,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<LedgerParts, NodeError> {
    let data_dir = config.storage.data_dir.clone();
    let site = if config.node.site.is_empty() { "local".to_string() } else { config.node.site.clone() };
    let origin = format!("civitas.city/ledger/{site}");
    let ledger_dir = data_dir.join("ledger");
    let ledger = tokio::task::spawn_blocking(move || {
        civitas_ledger::Ledger::open(ledger_dir, civitas_ledger::LedgerOptions::new(origin))
    })
    .await
    .map_err(|e| NodeError::Serve(std::io::Error::other(e)))??;
    let node_key = civitas_ledger::NodeKey::load_or_create(&data_dir.join("node.key"))
        .map_err(|e| NodeError::NodeKey(e.to_string()))?;
    let witness_signer = node_key
        .witness_signer(&format!("civitas.city/witness/{site}"))
        .map_err(|e| NodeError::NodeKey(e.to_string()))?;
    let witness = civitas_ledger::Witness::open(data_dir.join("witness.json"), witness_signer)?;
    tracing::info!(entries = ledger.size(), "ledger open");
    // `[ledger]`: the peer logs this node witnesses, the witnesses of its own log (both
    // validated by `Config::load`; checked again here for configs built in code).
    let witnessed = config.ledger.witnessed_log_keys().map_err(|e| NodeError::Config(e.to_string()))?;
    for key in witnessed {
        tracing::info!(log = %key, "witnessing peer log");
        witness.trust_log(key);
    }
    let witnesses = config.ledger.witness_peers().map_err(|e| NodeError::Config(e.to_string()))?;
    let interval = Duration::from_millis(config.ledger.cosign_interval_ms.max(1));
    let cosigned = Arc::new(witness_client::CosignedCheckpoints::new(interval));
    let ledger = Arc::new(ledger);
    if !witnesses.is_empty() {
        let signer = node_key.log_signer(ledger.origin()).map_err(|e| NodeError::NodeKey(e.to_string()))?;
        tracing::info!(
            witnesses = witnesses.len(),
            interval_ms = interval.as_millis() as u64,
            "asking witnesses to cosign"
        );
        let cosigner = witness_client::Cosigner {
            ledger: Arc::clone(&ledger),
            signer,
            witnesses,
            interval,
            cosigned: Arc::clone(&cosigned),
            failures: cosign_failures,
        };
        tokio::spawn(witness_client::run(cosigner, shutdown));
    }
    Ok(LedgerParts { ledger, node_key: Arc::new(node_key), witness: Arc::new(witness), cosigned })
}

/// The data plane's settings from `[node]` and `[dataplane]` (validated by `Config::load`),
/// reaching `https` upstreams with `upstream_tls` (built from `node.peer_ca_file`).
pub fn dataplane_config(
    config: &Config,
    upstream_tls: Arc<civitas_dataplane::tls::ClientConfig>,
) -> Result<DataPlaneConfig, NodeError> {
    let d = &config.dataplane;
    let node_site = match config.node.site.as_str() {
        "" => None,
        s => Some(Urn::parse(s).map_err(|e| NodeError::Config(format!("node.site: {e}")))?),
    };
    Ok(DataPlaneConfig {
        node_site,
        default_policy: d.default_policy,
        view_policies: d.view_policies.clone(),
        connect_timeout: Duration::from_millis(d.connect_timeout_ms),
        first_byte_timeout: Duration::from_millis(d.first_byte_timeout_ms),
        idle_timeout: Duration::from_millis(d.idle_timeout_ms),
        pool_max_idle_per_host: d.pool_max_idle_per_host,
        pool_idle_timeout: Duration::from_millis(d.pool_idle_timeout_ms),
        max_metric_views: d.max_metric_views,
        via: d.via.clone(),
        upstream_tls: Some(upstream_tls),
        validation_cache_bytes: d.validation_cache_bytes,
        validation_cache_max_entry_bytes: d.validation_cache_max_entry_bytes,
        copy_hold_max: Duration::from_millis(d.copy_hold_max_ms),
    })
}

fn analyzer_config(config: &Config) -> AnalyzerConfig {
    let s = &config.sdd;
    AnalyzerConfig {
        window: Duration::from_secs(s.window_seconds),
        max_samples_per_key: s.max_samples_per_key,
        ewma_alpha: s.ewma_alpha,
        idle_eviction: Duration::from_secs(s.idle_eviction_seconds),
        max_keys: s.max_keys,
        max_events: s.max_events,
    }
}

async fn shutdown_signal() -> &'static str {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => "SIGINT",
        _ = term => "SIGTERM",
    }
}
