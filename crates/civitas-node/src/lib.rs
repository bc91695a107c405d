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
pub mod metrics;
mod openapi;
pub mod problem;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use civitas_catalog::Catalog;
use civitas_catalog::kv::{KvError, RedbOptions, RedbStore};

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
    Ok(Catalog::new(Arc::new(store)))
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
    let state = api::AppState {
        catalog,
        metrics: Arc::new(metrics::Metrics::new()),
        config: Arc::new(config),
        shutdown: shutdown_rx.clone(),
    };
    let app = api::router(state);
    let mut stop = shutdown_rx;
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        let _ = stop.wait_for(|v| *v).await;
    });
    let mut server = tokio::spawn(server.into_future());
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
    match tokio::time::timeout(grace, &mut server).await {
        Ok(Ok(r)) => r.map_err(NodeError::Serve)?,
        Ok(Err(e)) => return Err(NodeError::Serve(std::io::Error::other(e))),
        Err(_) => {
            tracing::warn!(grace_seconds = grace.as_secs(), "grace period over; closing remaining connections");
            server.abort();
        }
    }
    tracing::info!("stopped");
    Ok(())
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
