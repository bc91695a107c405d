//! `civitas proxy`: a stand-alone data plane that follows a node's catalog through its
//! HTTP API, so that several proxies can serve one site. Its observations are reported to
//! that node's analyzers in batches; whether a client may read a view is decided by that
//! node (`proxy_guard.rs`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use civitas_dataplane::{DataPlane, RouteHandle, observation_channel};
use civitas_model::Observation;
use civitas_node::sdd_api::ObservationRecord;
use civitas_node::{Config, ConfigOverrides};

use crate::proxy_guard;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use tokio::sync::{mpsc, watch};

/// Most observations sent to the node in one report.
const REPORT_BATCH: usize = 2_048;
/// How often buffered observations are reported.
const REPORT_EVERY: Duration = Duration::from_millis(500);

/// Arguments of `civitas proxy`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  # A second data plane for the node at 127.0.0.1:7070, on another port
  civitas proxy --catalog http://127.0.0.1:7070 --listen 127.0.0.1:7071

  # Clients then use it in reverse mode ...
  curl http://127.0.0.1:7071/data/urn:urbem:buildings/blocks/
  # ... or as their HTTP proxy, keeping their URLs
  curl -x http://127.0.0.1:7071 http://127.0.0.1:8091/blocks/")]
pub struct ProxyArgs {
    /// The node whose catalog to follow (and to which observations are reported).
    #[arg(long, value_name = "URL", env = "CIVITAS_SERVER", default_value = "http://127.0.0.1:7070")]
    pub catalog: String,
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7071")]
    pub listen: SocketAddr,
    /// A `civitas.toml` whose `[node]` and `[dataplane]` sections configure this proxy.
    #[arg(long, value_name = "FILE", env = "CIVITAS_CONFIG")]
    pub config: Option<std::path::PathBuf>,
}

#[derive(Clone)]
struct ProxyState {
    registry: Arc<Registry>,
}

/// Runs the stand-alone proxy until SIGTERM or Ctrl-C.
pub fn run(args: ProxyArgs) -> anyhow::Result<()> {
    let config = Config::load(args.config.as_deref(), ConfigOverrides::default())?;
    civitas_node::init_logging(&config);
    let runtime = civitas_node::build_runtime(&config, "civitas-proxy")?;
    runtime.block_on(serve(args, config))
}

async fn serve(args: ProxyArgs, config: Config) -> anyhow::Result<()> {
    let base = args.catalog.trim_end_matches('/').to_string();
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let routes = RouteHandle::new();
    // `[node] peer_token` of the proxy's config: its credentials at a node that runs with security on.
    let token = Some(config.node.peer_token.trim().to_string()).filter(|t| !t.is_empty());
    let authorization = token.as_ref().and_then(|t| axum::http::HeaderValue::from_str(&format!("Bearer {t}")).ok());
    let peer_ca = config.node.peer_ca_pem()?;
    let tls = civitas_dataplane::tls::client_config(peer_ca.as_deref()).map_err(anyhow::Error::msg)?;
    let access = civitas_dataplane::RemoteAccess { authorization: authorization.clone(), tls: Some(Arc::clone(&tls)) };
    tokio::spawn(civitas_dataplane::follow_remote(base.clone(), access, routes.clone(), shutdown_rx.clone()));
    let (observations, observation_rx) = observation_channel(config.dataplane.observation_capacity);
    // Reads are checked by the node (the decision point), cached for security.cache_ttl_ms.
    let decisions = node_client(authorization.clone(), peer_ca.as_deref())?;
    let guard =
        proxy_guard::RemoteReadGuard::new(decisions, &base, Duration::from_millis(config.security.cache_ttl_ms.max(1)));
    let dataplane =
        DataPlane::new(civitas_node::dataplane_config(&config, tls)?, routes, observations).with_guard(Arc::new(guard));
    let mut registry = Registry::with_prefix("civitas");
    dataplane.register_metrics(&mut registry);
    // Observations the node could not take (unreachable, refused): counted, never retried.
    let unreported = Counter::<u64, AtomicU64>::default();
    registry.register(
        "proxy_observations_unreported",
        "Observations dropped because the node could not take them",
        unreported.clone(),
    );
    tokio::spawn(report_observations(
        base.clone(),
        authorization,
        peer_ca,
        observation_rx,
        unreported,
        shutdown_rx.clone(),
    ));

    let state = ProxyState { registry: Arc::new(registry) };
    let router =
        Router::new().route("/healthz", get(|| async { "ok\n" })).route("/metrics", get(metrics)).with_state(state);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(addr = %args.listen, catalog = %base, "proxy listening on {}", args.listen);
    // Data plane requests go straight to the data plane, the rest to the small router,
    // exactly as on a node.
    let mut server =
        tokio::spawn(civitas_node::api::serve_with_data_plane(listener, router, dataplane, None, shutdown_rx));
    tokio::select! {
        r = &mut server => return Ok(r??),
        _ = tokio::signal::ctrl_c() => {}
        _ = sigterm() => {}
    }
    tracing::info!("proxy shutting down");
    let _ = shutdown_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
    Ok(())
}

async fn sigterm() {
    #[cfg(unix)]
    if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        s.recv().await;
        return;
    }
    std::future::pending::<()>().await
}

async fn metrics(State(s): State<ProxyState>) -> Response {
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &s.registry).is_err() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    out.into_response()
}

/// A client for the node's API: the proxy's token, the peer CA besides the system roots.
fn node_client(
    authorization: Option<axum::http::HeaderValue>,
    ca_pem: Option<&[u8]>,
) -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(a) = authorization {
        headers.insert(reqwest::header::AUTHORIZATION, a);
    }
    let mut builder = reqwest::Client::builder();
    if let Some(pem) = ca_pem {
        for cert in reqwest::Certificate::from_pem_bundle(pem).context("node.peer_ca_file")? {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.no_proxy().default_headers(headers).build().context("cannot build the HTTP client for the node")
}

/// Sends observations to the node's analyzers in batches. When the node cannot take them,
/// the batch is dropped and counted: observations are advisory and must never back up
/// into the request path.
async fn report_observations(
    base: String,
    authorization: Option<axum::http::HeaderValue>,
    ca_pem: Option<Vec<u8>>,
    mut rx: mpsc::Receiver<Observation>,
    unreported: Counter<u64, AtomicU64>,
    mut shutdown: watch::Receiver<bool>,
) {
    let http = match node_client(authorization, ca_pem.as_deref()) {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the client that reports observations");
            return;
        }
    };
    let url = format!("{base}/api/v1/sdd/observations");
    let mut batch: Vec<ObservationRecord> = Vec::with_capacity(REPORT_BATCH);
    let mut tick = tokio::time::interval(REPORT_EVERY);
    loop {
        let flush = tokio::select! {
            o = rx.recv() => match o {
                Some(o) => {
                    batch.push(ObservationRecord::from_observation(&o));
                    batch.len() >= REPORT_BATCH
                }
                None => true,
            },
            _ = tick.tick() => !batch.is_empty(),
            _ = shutdown.changed() => true,
        };
        if flush && !batch.is_empty() {
            let n = batch.len() as u64;
            let sent = http.post(&url).json(&batch).timeout(Duration::from_secs(5)).send().await;
            match sent {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => {
                    let total = unreported.inc_by(n) + n;
                    tracing::warn!(status = %r.status(), dropped = n, total, "node refused observations");
                }
                Err(e) => {
                    let total = unreported.inc_by(n) + n;
                    tracing::warn!(error = %e, dropped = n, total, "cannot report observations");
                }
            }
            batch.clear();
        }
        if *shutdown.borrow() || rx.is_closed() && rx.is_empty() {
            return;
        }
    }
}
