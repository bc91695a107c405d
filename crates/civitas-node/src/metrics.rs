//! Prometheus metrics of the node: requests and latency per route, catalog state.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of `civitas_http_requests_total`. Static strings: the request path must not
/// allocate for its metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    method: &'static str,
    status: u16,
}

/// Labels of `civitas_http_request_duration_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
    method: &'static str,
}

/// Labels of `civitas_ledger_witness_alarms`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlarmLabels {
    /// `fork`, `rollback` or `inconsistent`.
    pub kind: &'static str,
}

/// Every route template the router knows, so that labels are `&'static str`.
const ROUTES: &[&str] = &[
    "/healthz",
    "/readyz",
    "/metrics",
    "/api/v1/contexts/civitas.jsonld",
    "/api/v1/openapi.json",
    "/api/v1/apply",
    "/api/v1/search",
    "/api/v1/watch",
    "/api/v1/{collection}",
    "/api/v1/{collection}/{name}",
    "/api/v1/{collection}/{name}/{sub}",
    "/api/v1/sdd/activate",
    "/api/v1/sdd/deactivate",
    "/api/v1/sdd/status",
    "/api/v1/sdd/events",
    "/api/v1/sdd/observations",
];

fn route_label(matched: Option<&MatchedPath>) -> &'static str {
    matched
        .and_then(|m| {
            ROUTES
                .iter()
                .chain(crate::ledger_api::ROUTES)
                .chain(crate::migrations_api::ROUTES)
                .chain(crate::security_api::ROUTES)
                .chain(crate::pipelines_api::ROUTES)
                .find(|r| **r == m.as_str())
                .copied()
        })
        .unwrap_or("unmatched")
}

fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "OTHER",
    }
}

/// The node's metrics and their registry.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<RouteLabels, Histogram>,
    /// `civitas_catalog_revision`: the catalog's current revision, set at scrape time.
    pub catalog_revision: Gauge,
    /// `civitas_catalog_watchers`: open `/api/v1/watch` streams.
    pub watchers: Gauge,
    /// `civitas_sdd_candidates_dropped`: migration candidates dropped because the queue was full.
    candidates_dropped: Gauge,
    /// `civitas_ledger_entries`: entries in the ledger, set at scrape time.
    pub ledger_entries: Gauge,
    /// `civitas_ledger_witness_alarms{kind}`: checkpoints this node refused to cosign
    /// (`fork`, `rollback`, `inconsistent`), set at scrape time.
    pub witness_alarms: Family<AlarmLabels, Gauge>,
    /// `civitas_ledger_cosign_failures_total`: attempts to have this node's checkpoint
    /// cosigned by a configured witness that failed (unreachable, refused, bad cosignature).
    pub cosign_failures: Counter,
    /// The bus whose drops `candidates_dropped` reports, read at scrape time.
    pub candidate_bus: Option<Arc<civitas_placement::ChannelBus>>,
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("civitas");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests answered, by route, method and status", requests.clone());
        let durations = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            // 50 µs .. ~3.3 s
            Histogram::new(exponential_buckets(0.000_05, 2.0, 17))
        });
        registry.register(
            "http_request_duration_seconds",
            "Time from request to response headers, by route and method",
            durations.clone(),
        );
        let catalog_revision = Gauge::default();
        registry.register("catalog_revision", "Current revision of the catalog store", catalog_revision.clone());
        let watchers = Gauge::default();
        registry.register("catalog_watchers", "Open catalog watch streams", watchers.clone());
        let candidates_dropped = Gauge::default();
        registry.register(
            "sdd_candidates_dropped",
            "Migration candidates dropped because the migration manager's queue was full",
            candidates_dropped.clone(),
        );
        let ledger_entries = Gauge::default();
        registry.register("ledger_entries", "Entries in this node's verifiable ledger", ledger_entries.clone());
        let witness_alarms = Family::<AlarmLabels, Gauge>::default();
        registry.register(
            "ledger_witness_alarms",
            "Peer checkpoints this node refused to cosign: forks, rollbacks, failed consistency proofs",
            witness_alarms.clone(),
        );
        let cosign_failures = Counter::default();
        registry.register(
            "ledger_cosign_failures",
            "Failed attempts to have this node's checkpoint cosigned by a configured witness",
            cosign_failures.clone(),
        );
        Metrics {
            registry,
            requests,
            durations,
            catalog_revision,
            watchers,
            candidates_dropped,
            ledger_entries,
            witness_alarms,
            cosign_failures,
            candidate_bus: None,
        }
    }

    /// Lets another module register its own metrics in the node's registry.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        if let Some(bus) = &self.candidate_bus {
            self.candidates_dropped.set(i64::try_from(bus.dropped()).unwrap_or(i64::MAX));
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Middleware counting every request and timing it by route template (not raw path,
/// which would make label values unbounded).
pub async fn track(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = route_label(req.extensions().get::<MatchedPath>());
    let method = method_label(req.method());
    let response = next.run(req).await;
    let status = response.status().as_u16();
    metrics.durations.get_or_create(&RouteLabels { route, method }).observe(start.elapsed().as_secs_f64());
    metrics.requests.get_or_create(&RequestLabels { route, method, status }).inc();
    response
}
