//! The proxy itself: resolve a request to a view, choose an instance, forward it with
//! clean headers over a pooled connection, stream the answer back, record what happened.

use std::borrow::Cow;
use std::collections::HashMap;
use std::error::Error as StdError;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use civitas_model::{InstanceRole, Observation, Urn};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{PathAndQuery, Uri};
use http::{Method, Request, Response, Version};
use http_body::Body;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use prometheus_client::registry::Registry;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::Instrument;

use crate::body::{Recorder, RequestBody, ResponseBody, UploadState, observation, prefetch};
use crate::config::{DataPlaneConfig, RoutePolicy};
use crate::error::{ErrorKind, ProxyError};
use crate::hold::{CopyBoard, hold_budget};
use crate::metrics::{PlaneMetrics, ViewMetrics};
use crate::observe::ObservationSender;
use crate::revalidate::{KeptAnswers, ValidationCache};
use crate::routes::{ForwardMiss, InstanceTarget, NoInstance, RouteHandle, RouteTable, ViewRoute};
use crate::{BoxError, ProxyBody};

/// Status recorded for a request whose client went away before the upstream answered
/// (nginx's convention).
const STATUS_CLIENT_CLOSED: u16 = 499;

/// The header a client names its site in; stripped before forwarding.
pub const CLIENT_SITE_HEADER: &str = "x-civitas-client-site";

/// A request carrying `x-civitas-route: origin` is served by an origin whatever the
/// view's policy (a replica pulling from its origin's node sends it, so it never copies
/// a copy). Stripped before forwarding; other values are ignored.
pub const ROUTE_HEADER: &str = "x-civitas-route";

/// Names, on every proxied response, the instance that served it (an origin or a replica).
pub const INSTANCE_HEADER: &str = "x-civitas-instance";

static CLIENT_SITE: HeaderName = HeaderName::from_static(CLIENT_SITE_HEADER);
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The SDD proxy: mount it on a listener and hand it every request for which
/// [`DataPlane::is_proxy_request`] is true. Cheap to clone.
#[derive(Clone)]
pub struct DataPlane {
    shared: Arc<Shared>,
}

/// Decides whether a request may read a view: the security manager's seam in the data
/// plane (the node implements it; without one every read is allowed). Called once per
/// request, before an instance is chosen; implementations cache their decisions.
pub trait ReadGuard: Send + Sync + 'static {
    /// `Ok` to proceed, or why not.
    fn check<'a>(
        &'a self,
        headers: &'a http::HeaderMap,
        unit: &'a Urn,
        view: &'a Urn,
    ) -> futures::future::BoxFuture<'a, Result<(), GuardRefusal>>;
}

/// Why a [`ReadGuard`] refused a request.
#[derive(Debug, Clone)]
pub enum GuardRefusal {
    /// 401: credentials missing or refused; the `WWW-Authenticate` value to send.
    Unauthenticated {
        /// What was wrong.
        detail: String,
        /// The challenge.
        challenge: Option<HeaderValue>,
    },
    /// 403: the caller may not read the view.
    Forbidden {
        /// The deciding rule and reason.
        detail: String,
    },
    /// 400 or 503: malformed credentials, or the identity provider is unreachable.
    Other {
        /// 400 or 503.
        unavailable: bool,
        /// What was wrong.
        detail: String,
    },
}

impl GuardRefusal {
    /// The HTTP status the refusal answers: 401, 403, 503 or 400.
    pub fn status(&self) -> u16 {
        match self {
            GuardRefusal::Unauthenticated { .. } => 401,
            GuardRefusal::Forbidden { .. } => 403,
            GuardRefusal::Other { unavailable: true, .. } => 503,
            GuardRefusal::Other { unavailable: false, .. } => 400,
        }
    }

    fn into_error(self) -> ProxyError {
        match self {
            GuardRefusal::Unauthenticated { detail, challenge } => {
                let mut e = ProxyError::new(ErrorKind::Unauthorized, detail);
                e.set_challenge(challenge);
                e
            }
            GuardRefusal::Forbidden { detail } => ProxyError::new(ErrorKind::Forbidden, detail),
            GuardRefusal::Other { unavailable: true, detail } => ProxyError::new(ErrorKind::GuardUnavailable, detail),
            GuardRefusal::Other { unavailable: false, detail } => ProxyError::new(ErrorKind::BadRequest, detail),
        }
    }
}

/// State shared by every request of one data plane.
pub(crate) struct Shared {
    config: DataPlaneConfig,
    policies: HashMap<Urn, RoutePolicy>,
    routes: RouteHandle,
    pub(crate) observations: ObservationSender,
    pub(crate) metrics: PlaneMetrics,
    client: Client<hyper_rustls::HttpsConnector<Connector>, ProxyBody>,
    /// `Via` values for HTTP/1.0, 1.1 and 2.
    via: [HeaderValue; 3],
    /// Who may read what; `None`: everyone.
    guard: Option<Arc<dyn ReadGuard>>,
    /// Answers kept for revalidation; `None`: switched off.
    cache: Option<Arc<ValidationCache>>,
    /// Whether the cache is used now (see [`DataPlane::set_revalidation`]).
    revalidating: AtomicBool,
    /// Copies of views to this node under way (filled by the node's relocation).
    copies: CopyBoard,
}

/// Where a request goes: the view and what of the client's path remains.
struct Resolved<'t, 'u> {
    view: &'t Arc<ViewRoute>,
    rest: &'u str,
    /// Forward mode: the prefix (endpoint path + link) the path matched.
    forward_prefix: Option<&'t str>,
}

enum SendError {
    Timeout(Duration),
    Upstream(hyper_util::client::legacy::Error),
}

impl DataPlane {
    /// A data plane routing by `routes`, recording into `observations`. Needs a tokio
    /// runtime when requests are handled, not when built.
    pub fn new(config: DataPlaneConfig, routes: RouteHandle, observations: ObservationSender) -> DataPlane {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        // The connector below applies the (per-host) connect timeout itself.
        http.set_connect_timeout(None);
        http.set_keepalive(Some(config.pool_idle_timeout));
        // `https` upstreams too: the TLS layer below hands it `https` URIs.
        http.enforce_http(false);
        let connector = Connector { http, routes: routes.clone(), default_timeout: config.connect_timeout };
        let tls = match &config.upstream_tls {
            Some(t) => Arc::clone(t),
            None => crate::tls::client_config(None).expect("without a CA file the client configuration always builds"),
        };
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(rustls::ClientConfig::clone(&tls))
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(config.pool_idle_timeout)
            .pool_max_idle_per_host(config.pool_max_idle_per_host)
            .retry_canceled_requests(true)
            .set_host(true)
            .build(connector);
        let via_value = |version: &str| {
            HeaderValue::from_str(&format!("{version} {}", config.via))
                .unwrap_or_else(|_| HeaderValue::from_str(&format!("{version} civitas")).expect("a valid header value"))
        };
        let via = [via_value("1.0"), via_value("1.1"), via_value("2")];
        let policies = config.view_policies.iter().map(|(k, v)| (k.clone(), *v)).collect();
        let metrics = PlaneMetrics::new(config.max_metric_views);
        let cache =
            ValidationCache::new(config.validation_cache_bytes, config.validation_cache_max_entry_bytes).map(Arc::new);
        DataPlane {
            shared: Arc::new(Shared {
                config,
                policies,
                routes,
                observations,
                metrics,
                client,
                via,
                guard: None,
                cache,
                revalidating: AtomicBool::new(false),
                copies: CopyBoard::new(),
            }),
        }
    }

    /// The same data plane with a [`ReadGuard`] deciding every read (call before serving).
    pub fn with_guard(self, guard: Arc<dyn ReadGuard>) -> DataPlane {
        let shared = Arc::try_unwrap(self.shared)
            .unwrap_or_else(|_| panic!("with_guard is called before the data plane is shared"));
        DataPlane { shared: Arc::new(Shared { guard: Some(guard), ..shared }) }
    }

    /// Whether a request is for the data plane: absolute-form requests (forward proxy,
    /// `GET http://host/path`), `CONNECT` (refused with 405), and paths under `/data/`.
    pub fn is_proxy_request<B>(req: &Request<B>) -> bool {
        req.method() == Method::CONNECT
            || (req.uri().scheme().is_some() && req.version() < Version::HTTP_2)
            || req.uri().path().starts_with("/data/")
    }

    /// The route table this data plane reads.
    pub fn routes(&self) -> &RouteHandle {
        &self.shared.routes
    }

    /// The copies to this node under way, which reads may wait for (see `hold.rs`): the
    /// node's relocation puts a [`crate::CopyTicket`] here for each copy.
    pub fn copies(&self) -> &CopyBoard {
        &self.shared.copies
    }

    /// The answers this data plane keeps, for copies of views to this node.
    pub fn kept_answers(&self) -> KeptAnswers {
        KeptAnswers::new(self.shared.cache.clone())
    }

    /// Switches the validation cache on or off (it starts off; a node switches it with
    /// the SDD's activation, so that with the framework inactive the proxy only forwards).
    /// Off, nothing is looked up and no request is made conditional; the latest answer
    /// to a request is still kept, at most once per second ([`KeptAnswers`]).
    pub fn set_revalidation(&self, on: bool) {
        self.shared.revalidating.store(on, Ordering::Relaxed);
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &DataPlaneConfig {
        &self.shared.config
    }

    /// Views that currently have metric label sets.
    pub fn metric_views(&self) -> usize {
        self.shared.metrics.view_count()
    }

    /// Registers the data plane's metrics under `dataplane_` in `registry` (with the node's
    /// `civitas` prefix: `civitas_dataplane_requests_total` and so on).
    pub fn register_metrics(&self, registry: &mut Registry) {
        let sub = registry.sub_registry_with_prefix("dataplane");
        self.shared.metrics.register(sub);
        sub.register(
            "observations_dropped",
            "Observations dropped because the analyzers' channel was full",
            self.shared.observations.dropped_counter(),
        );
        sub.register("route_table_swaps", "Route tables installed", self.shared.routes.swaps_counter());
        sub.register(
            "route_table_revision",
            "Catalog revision of the current route table",
            self.shared.routes.revision_gauge(),
        );
        if let Some(cache) = &self.shared.cache {
            sub.register(
                "validation_cache_not_modified",
                "Answers served from the validation cache after the upstream answered 304",
                cache.not_modified.clone(),
            );
            sub.register("validation_cache_stores", "Answers stored in the validation cache", cache.stores.clone());
            sub.register("validation_cache_bytes", "Bytes of bodies held by the validation cache", cache.bytes.clone());
        }
    }

    /// Proxies one request from `client`. The response body streams from the upstream; the
    /// request's observation is recorded when it ends (or at once, for an error).
    pub async fn handle<B>(&self, req: Request<B>, client: SocketAddr) -> Result<Response<ProxyBody>, ProxyError>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let span = tracing::debug_span!("dataplane", method = %req.method(), target = %req.uri(), client = %client);
        self.handle_inner(req, client).instrument(span).await
    }

    async fn handle_inner<B>(&self, req: Request<B>, client: SocketAddr) -> Result<Response<ProxyBody>, ProxyError>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let arrival = Instant::now();
        let time = SystemTime::now();
        let shared = &self.shared;
        if req.method() == Method::CONNECT {
            return Err(self.refuse(
                arrival,
                ProxyError::new(
                    ErrorKind::MethodNotAllowed,
                    format!(
                        "CONNECT {} refused: this proxy does not offer HTTPS tunnelling; use reverse mode \
                         (/data/{{unit}}/{{view}}/...) or forward mode with plain http URLs",
                        req.uri()
                    ),
                ),
            ));
        }
        let table = shared.routes.current();
        let (mut parts, body) = req.into_parts();
        let forward = parts.uri.scheme().is_some() && parts.version < Version::HTTP_2;
        let table = if shared.copies.is_empty() || shared.config.copy_hold_max.is_zero() {
            table
        } else {
            self.hold_for_replica(&table, &parts, forward, arrival).await.unwrap_or(table)
        };
        let resolved = if forward { resolve_forward(&table, &parts.uri) } else { resolve_reverse(&table, &parts.uri) };
        let Resolved { view, rest, forward_prefix } = match resolved {
            Ok(r) => r,
            Err(e) => return Err(self.refuse(arrival, e)),
        };

        let client_site = parts
            .headers
            .remove(&CLIENT_SITE)
            .and_then(|v| v.to_str().ok().and_then(|s| Urn::parse(s).ok()))
            .map(Arc::new);
        let view_metrics = shared.metrics.view(&view.name, arrival.into_std());
        let mut obs = observation(time, &view.unit, &view.name, client_site, client.ip());
        obs.variant = variant(rest, parts.uri.query());

        if let Some(guard) = &shared.guard
            && let Err(refusal) = guard.check(&parts.headers, &view.unit, &view.name).await
        {
            return Err(self.fail(obs, &view_metrics, arrival, None, refusal.into_error()));
        }
        if has_dot_segment(rest) {
            let e = ProxyError::new(
                ErrorKind::BadRequest,
                format!(
                    "the path below view {} of unit {} contains a `..` segment or a backslash",
                    view.name, view.unit
                ),
            );
            return Err(self.fail(obs, &view_metrics, arrival, None, e));
        }
        let policy = self.view_policy(&view.name);
        // Replicas are read-only copies: anything but a read goes to an origin, as does a
        // request that asks for one.
        let origin_asked = parts.headers.remove(ROUTE_HEADER).is_some_and(|v| v.as_bytes() == b"origin");
        let policy = if matches!(parts.method, Method::GET | Method::HEAD) && !origin_asked {
            policy
        } else {
            RoutePolicy::Origin
        };
        let instance = match self.choose(&table, view, policy) {
            Ok(i) => i,
            Err(miss) => {
                let detail = match miss {
                    NoInstance::None { unroutable: 0 } => {
                        format!("view {} of unit {} has no instance in the catalog", view.name, view.unit)
                    }
                    NoInstance::None { unroutable } => format!(
                        "view {} of unit {} has no routable instance ({unroutable} without an http endpoint)",
                        view.name, view.unit
                    ),
                    NoInstance::Policy => format!(
                        "no instance of view {} of unit {} satisfies route policy `{}` ({} instance(s) known)",
                        view.name,
                        view.unit,
                        policy.as_str(),
                        view.instances.len()
                    ),
                };
                return Err(self.fail(
                    obs,
                    &view_metrics,
                    arrival,
                    None,
                    ProxyError::new(ErrorKind::NoInstance, detail),
                ));
            }
        };
        obs.instance = Some(Arc::clone(&instance.name));
        if shared.guard.is_some() && !instance.view_relative {
            // The credentials were for this node: an origin outside Civitas never sees them
            // (a replica at a node does: it checks the same caller again).
            parts.headers.remove(http::header::AUTHORIZATION);
        }

        let path_and_query = match upstream_path(instance, view, rest, &parts.uri, forward_prefix) {
            Ok(p) => p,
            Err(e) => return Err(self.fail(obs, &view_metrics, arrival, None, e)),
        };
        let mut uri_parts = http::uri::Parts::default();
        uri_parts.scheme = Some(instance.scheme.clone());
        uri_parts.authority = Some(instance.authority.clone());
        uri_parts.path_and_query = Some(path_and_query);
        let uri = match Uri::from_parts(uri_parts) {
            Ok(u) => u,
            Err(e) => {
                let e = ProxyError::new(ErrorKind::BadRequest, format!("cannot build the upstream URL: {e}"));
                return Err(self.fail(obs, &view_metrics, arrival, None, e));
            }
        };

        // Trailers cross the proxy (it forwards every frame): a client that takes them
        // makes the proxy take them from the upstream.
        let trailers = accepts_trailers(&parts.headers);
        remove_hop_by_hop(&mut parts.headers);
        if trailers {
            parts.headers.insert(header::TE, HeaderValue::from_static("trailers"));
        }
        // We answered any `Expect: 100-continue` ourselves by reading the body.
        parts.headers.remove(header::EXPECT);
        append_forwarded_for(&mut parts.headers, client.ip());
        parts.headers.append(header::VIA, shared.via(parts.version).clone());
        if !forward {
            parts.headers.insert(header::HOST, instance.host_header.clone());
        }
        parts.uri = uri;
        parts.version = Version::HTTP_11;
        parts.extensions.clear();
        // A kept answer to the same request: ask the upstream whether it still holds.
        // Inactive, only forward, but keep the latest answer now and then: a copy of the
        // view to this node starts from it (`KeptAnswers`).
        let revalidating = shared.revalidating.load(Ordering::Relaxed);
        let cached = shared.cache.as_ref().and_then(|cache| {
            let key = ValidationCache::key(&parts.method, &parts.uri, &parts.headers)?;
            if !revalidating {
                return cache.keep_due(&key).then_some((cache, key, None));
            }
            let stored = cache.get(&key);
            if let Some(s) = &stored {
                parts.headers.insert(header::IF_NONE_MATCH, s.etag.clone());
            }
            Some((cache, key, stored))
        });

        let timeouts = view.timeouts;
        let first_byte = timeouts.first_byte.unwrap_or(shared.config.first_byte_timeout);
        let idle = timeouts.idle.unwrap_or(shared.config.idle_timeout);
        let empty = body.is_end_stream() || body.size_hint().exact() == Some(0);
        let (upstream_body, upload): (ProxyBody, _) = if empty {
            (http_body_util::Empty::new().map_err(|never| match never {}).boxed_unsync(), None)
        } else {
            let state = Arc::new(UploadState::new());
            (RequestBody::new(body, idle, Arc::clone(&state)).boxed_unsync(), Some(state))
        };
        let kept_as = cached.as_ref().and_then(|_| obs.variant.clone()).map(|v| (Arc::clone(&view.name), v));
        let retry = (empty && (parts.method == Method::GET || parts.method == Method::HEAD))
            .then(|| (parts.method.clone(), parts.uri.clone(), parts.headers.clone()));
        let upstream = Request::from_parts(parts, upstream_body);

        // From here the recorder owns the observation: should the client go away before the
        // upstream answers (this future is dropped), it records status 499 on drop.
        obs.status = STATUS_CLIENT_CLOSED;
        let mut recorder = Recorder::new(Arc::clone(shared), view_metrics, obs, arrival, upload.clone());
        match self.send(upstream, retry, first_byte, upload.as_deref()).await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                recorder.head_received(status, arrival.elapsed());
                let (mut rparts, mut incoming) = resp.into_parts();
                remove_hop_by_hop(&mut rparts.headers);
                let mut capture = None;
                if let Some((cache, key, stored)) = cached {
                    match stored {
                        Some(stored) if status == 304 => {
                            // Unchanged upstream: the kept body, with the 304's fresh headers.
                            let mut headers = cache.confirm(&key, &stored, &rparts.headers);
                            headers.append(header::VIA, shared.via(rparts.version).clone());
                            headers.insert(INSTANCE_HEADER, instance.name_header.clone());
                            rparts.status = http::StatusCode::OK;
                            rparts.headers = headers;
                            recorder.head_received(200, arrival.elapsed());
                            recorder.add_bytes_out(stored.body.len() as u64);
                            recorder.finish();
                            tracing::debug!(instance = %instance.name, "not modified upstream; answered from the validation cache");
                            let body = http_body_util::Full::new(stored.body.clone())
                                .map_err(|never| match never {})
                                .boxed_unsync();
                            return Ok(Response::from_parts(rparts, body));
                        }
                        _ => match cache.storable(status, &rparts.headers) {
                            Some(etag) => {
                                let length = incoming.size_hint().exact().unwrap_or(0) as usize;
                                capture = Some(cache.capture(key, kept_as, etag, rparts.headers.clone(), length));
                            }
                            None => cache.remove(&key),
                        },
                    }
                }
                rparts.headers.append(header::VIA, shared.via(rparts.version).clone());
                rparts.headers.insert(INSTANCE_HEADER, instance.name_header.clone());
                tracing::debug!(instance = %instance.name, status, "proxied");
                let first = prefetch(&mut incoming, idle).await;
                let body = ResponseBody::new(incoming, first, idle, recorder).with_capture(capture);
                Ok(Response::from_parts(rparts, body.boxed_unsync()))
            }
            Err(e) => {
                let error = upstream_error(e, instance, view, upload.as_deref());
                tracing::warn!(instance = %instance.name, endpoint = %instance.endpoint, slug = error.slug(), "{error}");
                recorder.head_received(error.status().as_u16(), arrival.elapsed());
                recorder.finish();
                Err(error)
            }
        }
    }

    /// The route policy of `view`.
    fn view_policy(&self, view: &Urn) -> RoutePolicy {
        let shared = &self.shared;
        if shared.policies.is_empty() {
            shared.config.default_policy
        } else {
            shared.policies.get(view).copied().unwrap_or(shared.config.default_policy)
        }
    }

    /// The instance of `view` that `table` routes this node's reads to under `policy`.
    fn choose<'t>(
        &self,
        table: &RouteTable,
        view: &'t ViewRoute,
        policy: RoutePolicy,
    ) -> Result<&'t Arc<InstanceTarget>, NoInstance> {
        let node_site = self.shared.config.node_site.as_ref().and_then(|s| table.site_index(s.as_str()));
        table.choose(view, policy, node_site)
    }

    /// Holds a read of a view being copied to this node while [`hold_budget`] allows, and
    /// returns the route table that routes it to the new replica; `None`: go on with the
    /// table the request started with (no copy, not a plain read, the copy ended without a
    /// replica, or the wait reached its bound).
    async fn hold_for_replica(
        &self,
        table: &Arc<RouteTable>,
        parts: &http::request::Parts,
        forward: bool,
        arrival: Instant,
    ) -> Option<Arc<RouteTable>> {
        let shared = &self.shared;
        if !matches!(parts.method, Method::GET | Method::HEAD)
            || parts.headers.get(ROUTE_HEADER).is_some_and(|v| v.as_bytes() == b"origin")
        {
            return None;
        }
        let resolved = if forward { resolve_forward(table, &parts.uri) } else { resolve_reverse(table, &parts.uri) };
        let view = resolved.ok()?.view;
        let started = shared.copies.copy_started(&view.name)?;
        let policy = self.view_policy(&view.name);
        if self.choose(table, view, policy).ok()?.role != InstanceRole::Origin {
            return None;
        }
        let recent = shared.metrics.view(&view.name, arrival.into_std()).recent();
        let budget = hold_budget(recent, started.elapsed(), shared.config.copy_hold_max)?;
        let deadline = arrival + budget;
        let (unit, name) = (Arc::clone(&view.unit), Arc::clone(&view.name));
        let mut swaps = shared.routes.subscribe_swaps();
        let mut board = shared.copies.subscribe();
        shared.metrics.holds.inc();
        tracing::debug!(view = %name, budget_ms = budget.as_millis() as u64, "read held for the view's copy");
        loop {
            let current = shared.routes.current();
            if let Ok(v) = current.view(unit.as_str(), name.as_str())
                && self.choose(&current, v, policy).is_ok_and(|i| i.role != InstanceRole::Origin)
            {
                shared.metrics.holds_served_by_replica.inc();
                return Some(current);
            }
            // The copy ended without a replica (or its grace is over): to the origin.
            shared.copies.copy_started(&name)?;
            // Re-checked on every route swap and board change, and now and then for the
            // end of a registered copy's grace.
            tokio::select! {
                _ = swaps.changed() => {}
                _ = board.changed() => {}
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
                () = tokio::time::sleep_until(deadline) => return None,
            }
        }
    }

    /// Sends, retrying once a GET/HEAD whose pooled connection turned out dead, within one
    /// first-byte deadline (which only starts once the request body is fully sent).
    async fn send(
        &self,
        req: Request<ProxyBody>,
        mut retry: Option<(Method, Uri, HeaderMap)>,
        first_byte: Duration,
        upload: Option<&UploadState>,
    ) -> Result<Response<Incoming>, SendError> {
        let client = &self.shared.client;
        let mut pending = client.request(req);
        let timer = tokio::time::sleep(first_byte);
        tokio::pin!(timer);
        loop {
            tokio::select! {
                biased;
                result = &mut pending => match result {
                    Ok(resp) => return Ok(resp),
                    Err(e) => match retry.take() {
                        Some((method, uri, headers)) if is_dead_connection(&e) => {
                            tracing::debug!(error = %error_chain(&e), "pooled upstream connection was dead; retrying once");
                            self.shared.metrics.retries.inc();
                            let mut again = Request::new(
                                http_body_util::Empty::new().map_err(|never| match never {}).boxed_unsync(),
                            );
                            *again.method_mut() = method;
                            *again.uri_mut() = uri;
                            *again.headers_mut() = headers;
                            pending = client.request(again);
                        }
                        _ => return Err(SendError::Upstream(e)),
                    },
                },
                () = &mut timer => {
                    // The first-byte timeout counts from the end of the request body: the
                    // upstream cannot be expected to answer before it has it all.
                    let deadline = match upload.map(UploadState::done_at) {
                        Some(None) => Some(Instant::now() + first_byte),
                        Some(Some(done)) if done + first_byte > Instant::now() => Some(done + first_byte),
                        _ => None,
                    };
                    match deadline {
                        Some(d) => timer.as_mut().reset(d),
                        None => return Err(SendError::Timeout(first_byte)),
                    }
                }
            }
        }
    }

    /// Counts a request that matched no view and returns its error.
    fn refuse(&self, arrival: Instant, e: ProxyError) -> ProxyError {
        let m = &self.shared.metrics;
        m.record(m.unrouted(), e.status().as_u16(), arrival.elapsed(), 0, 0);
        tracing::debug!(slug = e.slug(), "{e}");
        e
    }

    /// Records the observation of a request to a known view that ends in an error.
    fn fail(
        &self,
        mut obs: Observation,
        view_metrics: &Arc<ViewMetrics>,
        arrival: Instant,
        upload: Option<Arc<UploadState>>,
        e: ProxyError,
    ) -> ProxyError {
        let elapsed = arrival.elapsed();
        obs.status = e.status().as_u16();
        obs.time_to_first_byte = elapsed;
        obs.total_time = elapsed;
        obs.bytes_in = upload.as_ref().map_or(0, |u| u.bytes());
        self.shared.metrics.record(view_metrics, obs.status, elapsed, obs.bytes_in, 0);
        self.shared.observations.record(obs);
        if e.kind() == ErrorKind::BadRequest || e.kind() == ErrorKind::NoInstance {
            tracing::debug!(slug = e.slug(), "{e}");
        }
        e
    }
}

impl Shared {
    fn via(&self, version: Version) -> &HeaderValue {
        match version {
            Version::HTTP_09 | Version::HTTP_10 => &self.via[0],
            Version::HTTP_2 | Version::HTTP_3 => &self.via[2],
            _ => &self.via[1],
        }
    }
}

/// `/data/{unit}/{view}/{rest...}`: unit by URN (`:` may be written `%3A`), view by full or
/// local name.
fn resolve_reverse<'t, 'u>(table: &'t RouteTable, uri: &'u Uri) -> Result<Resolved<'t, 'u>, ProxyError> {
    let path = uri.path();
    let shape = || {
        ProxyError::new(
            ErrorKind::NotFound,
            format!(
                "{path} is not a data path: use /data/{{unit}}/{{view}}/... (e.g. /data/urn:urbem:buildings/blocks/)"
            ),
        )
    };
    let tail = path.strip_prefix("/data/").ok_or_else(shape)?;
    let (unit, tail) = tail.split_once('/').unwrap_or((tail, ""));
    let (view, rest) = match tail.split_once('/') {
        // `/data/{unit}/{view}/`: the trailing slash is part of what the client asked for.
        Some((view, "")) => (view, "/"),
        Some((view, rest)) => (view, rest),
        None => (tail, ""),
    };
    if unit.is_empty() || view.is_empty() {
        return Err(shape());
    }
    let (unit, view) = (percent_decode(unit), percent_decode(view));
    let view = table.view(&unit, &view).map_err(|d| ProxyError::new(ErrorKind::NotFound, d))?;
    Ok(Resolved { view, rest, forward_prefix: None })
}

/// Absolute-form `http://host:port/path`: the instance endpoint + view link that is the
/// longest prefix of the path at that host.
fn resolve_forward<'t, 'u>(table: &'t RouteTable, uri: &'u Uri) -> Result<Resolved<'t, 'u>, ProxyError> {
    let https = match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("http") => false,
        Some(s) if s.eq_ignore_ascii_case("https") => true,
        _ => {
            return Err(ProxyError::new(
                ErrorKind::BadRequest,
                format!("{uri}: only http and https URLs can be proxied"),
            ));
        }
    };
    let host = uri.host().unwrap_or_default();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let scheme = if https { "https" } else { "http" };
    match table.forward(https, host, port, uri.path()) {
        Ok(m) => Ok(Resolved { view: m.view, rest: m.rest, forward_prefix: Some(m.prefix) }),
        Err(ForwardMiss::UnknownHost) => Err(ProxyError::new(
            ErrorKind::NotAnOpenProxy,
            format!(
                "{scheme}://{host}:{port} is not the endpoint of any routable data instance in the catalog; \
                 this proxy only forwards to catalogued instances"
            ),
        )),
        Err(ForwardMiss::NoView) => Err(ProxyError::new(
            ErrorKind::NotFound,
            format!("no view of any data unit is served at {scheme}://{host}:{port}{}", uri.path()),
        )),
    }
}

/// The resource of the view the client asked for, relative to the view's link: `/` + the
/// remaining path + `?` + the client's query (see [`Observation::variant`]). The view's own
/// resource without a query is the static `/`: the common request allocates nothing.
pub fn variant(rest: &str, query: Option<&str>) -> Option<PathAndQuery> {
    let query = query.filter(|q| !q.is_empty());
    let rest = if rest == "/" { "" } else { rest };
    if rest.is_empty() && query.is_none() {
        return Some(PathAndQuery::from_static("/"));
    }
    let mut s = String::with_capacity(rest.len() + query.map_or(0, str::len) + 2);
    if !rest.starts_with('/') {
        s.push('/');
    }
    s.push_str(rest);
    if let Some(q) = query {
        s.push('?');
        s.push_str(q);
    }
    PathAndQuery::from_maybe_shared(Bytes::from(s)).ok()
}

/// The upstream path and query: endpoint path + view link + the client's remaining path,
/// then the link's and the client's queries. In forward mode, to the very instance the
/// client named, the client's path is kept verbatim.
fn upstream_path(
    instance: &InstanceTarget,
    view: &ViewRoute,
    rest: &str,
    client_uri: &Uri,
    forward_prefix: Option<&str>,
) -> Result<PathAndQuery, ProxyError> {
    if let (Some(prefix), Some(authority)) = (forward_prefix, client_uri.authority())
        && view.link_query.is_none()
        && authority.as_str().eq_ignore_ascii_case(instance.authority.as_str())
        && prefix.strip_prefix(&*instance.base_path).is_some_and(|l| l == &*view.link_path)
        && let Some(pq) = client_uri.path_and_query()
    {
        return Ok(pq.clone());
    }
    if instance.view_relative {
        // A replica stores each resource under its variant: endpoint path + variant.
        let variant = variant(rest, client_uri.query()).unwrap_or_else(|| PathAndQuery::from_static("/"));
        let s = format!("{}{}", instance.base_path, variant.as_str());
        return PathAndQuery::from_maybe_shared(Bytes::from(s)).map_err(|e| {
            ProxyError::new(ErrorKind::BadRequest, format!("invalid upstream path for view {}: {e}", view.name))
        });
    }
    let query = client_uri.query();
    let mut s = String::with_capacity(
        instance.base_path.len()
            + view.link_path.len()
            + rest.len()
            + query.map_or(0, str::len)
            + view.link_query.as_deref().map_or(0, str::len)
            + 3,
    );
    s.push_str(&instance.base_path);
    s.push_str(&view.link_path);
    if rest == "/" {
        // Only a trailing slash remains (see `resolve_reverse` and `strip_path_prefix`).
        if !s.ends_with('/') {
            s.push('/');
        }
    } else if !rest.is_empty() {
        if !s.ends_with('/') {
            s.push('/');
        }
        s.push_str(rest);
    }
    let mut sep = '?';
    for q in [view.link_query.as_deref(), query].into_iter().flatten() {
        if !q.is_empty() {
            s.push(sep);
            s.push_str(q);
            sep = '&';
        }
    }
    PathAndQuery::from_maybe_shared(Bytes::from(s)).map_err(|e| {
        ProxyError::new(ErrorKind::BadRequest, format!("invalid upstream path for view {}: {e}", view.name))
    })
}

fn upstream_error(
    e: SendError,
    instance: &InstanceTarget,
    view: &ViewRoute,
    upload: Option<&UploadState>,
) -> ProxyError {
    let who = format!("instance {} at {} (view {} of unit {})", instance.name, instance.endpoint, view.name, view.unit);
    match e {
        SendError::Timeout(d) => {
            ProxyError::new(ErrorKind::UpstreamTimeout, format!("{who} sent no response within {} ms", d.as_millis()))
        }
        SendError::Upstream(e) if e.is_connect() => {
            ProxyError::new(ErrorKind::UpstreamUnreachable, format!("cannot connect to {who}: {}", error_chain(&e)))
        }
        SendError::Upstream(e) if upload.is_some_and(UploadState::client_failed) => ProxyError::new(
            ErrorKind::BadRequest,
            format!("the request body from the client failed while forwarding to {who}: {}", error_chain(&e)),
        ),
        SendError::Upstream(e) => {
            ProxyError::new(ErrorKind::BadGateway, format!("{who} failed before answering: {}", error_chain(&e)))
        }
    }
}

/// Whether a request failed because the (pooled) connection was closed under it before
/// any response: safe to retry an idempotent request once.
fn is_dead_connection(e: &hyper_util::client::legacy::Error) -> bool {
    if e.is_connect() {
        return false;
    }
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(h) = s.downcast_ref::<hyper::Error>()
            && (h.is_incomplete_message() || h.is_canceled() || h.is_closed())
        {
            return true;
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            if matches!(io.kind(), K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof) {
                return true;
            }
        }
        source = s.source();
    }
    false
}

/// An error and its sources, `: `-separated (a source already at the end is not repeated).
pub(crate) fn error_chain(e: &dyn StdError) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(x) = source {
        let text = x.to_string();
        if !s.ends_with(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        source = x.source();
    }
    s
}

/// Whether a request's `TE` accepts trailers (`TE: trailers`).
fn accepts_trailers(headers: &HeaderMap) -> bool {
    headers.get_all(header::TE).iter().any(|v| {
        v.to_str()
            .unwrap_or_default()
            .split(',')
            .any(|t| t.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("trailers"))
    })
}

/// Removes hop-by-hop headers: `Connection` and the headers it names, `Keep-Alive`,
/// `Proxy-Connection`, `Proxy-Authenticate`, `Proxy-Authorization`, `TE`,
/// `Transfer-Encoding`, `Upgrade`. (`Trailer` is end-to-end, RFC 9110 §6.6.2: it announces
/// the trailers the proxy forwards.)
pub(crate) fn remove_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(header::CONNECTION) {
        // Allocates only when Connection names real headers (not `close` / `keep-alive`).
        let mut listed: Vec<HeaderName> = Vec::new();
        for value in headers.get_all(header::CONNECTION) {
            for token in value.to_str().unwrap_or_default().split(',') {
                let token = token.trim();
                if token.is_empty() || token.eq_ignore_ascii_case("close") || token.eq_ignore_ascii_case("keep-alive") {
                    continue;
                }
                if let Ok(name) = HeaderName::from_bytes(token.as_bytes()) {
                    listed.push(name);
                }
            }
        }
        for name in listed {
            headers.remove(name);
        }
        headers.remove(header::CONNECTION);
    }
    for name in [
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
        &header::PROXY_AUTHENTICATE,
        &header::PROXY_AUTHORIZATION,
        &header::TE,
        &header::TRANSFER_ENCODING,
        &header::UPGRADE,
    ] {
        headers.remove(name);
    }
}

/// Appends the client's address to `X-Forwarded-For` (one header, existing chain kept).
fn append_forwarded_for(headers: &mut HeaderMap, ip: IpAddr) {
    use std::fmt::Write;
    let ip = ip.to_canonical();
    let mut value = String::new();
    for v in headers.get_all(&X_FORWARDED_FOR) {
        if let Ok(s) = v.to_str()
            && !s.trim().is_empty()
        {
            value.push_str(s.trim());
            value.push_str(", ");
        }
    }
    let _ = write!(value, "{ip}");
    if let Ok(v) = HeaderValue::from_maybe_shared(Bytes::from(value)) {
        headers.insert(&X_FORWARDED_FOR, v);
    }
}

/// Whether a path below a view could climb out of it: `..` segments (also
/// percent-encoded) or backslashes.
pub fn has_dot_segment(rest: &str) -> bool {
    if rest.is_empty() {
        return false;
    }
    if rest.contains('\\') || rest.contains("%5c") || rest.contains("%5C") {
        return true;
    }
    rest.split('/').any(|seg| seg == ".." || (seg.len() >= 4 && seg.contains('%') && percent_decode(seg) == ".."))
}

/// Decodes `%XX` escapes; text that would not be UTF-8 is returned as given (how the data
/// plane reads the `{unit}` and `{view}` segments of `/data/{unit}/{view}`).
pub fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains('%') {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len() + 1
            && let (Some(h), Some(l)) = (bytes.get(i + 1).and_then(hex), bytes.get(i + 2).and_then(hex))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).map(Cow::Owned).unwrap_or(Cow::Borrowed(s))
}

fn hex(b: &u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The upstream connector: plain TCP (no TLS yet) with the connect timeout of the unit
/// whose instance lives at the target host (per host, because connections are pooled per
/// host), else the configured default.
#[derive(Clone)]
struct Connector {
    http: HttpConnector,
    routes: RouteHandle,
    default_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
#[error("connect timed out after {} ms", .0.as_millis())]
struct ConnectTimeout(Duration);

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        tower_service::Service::<Uri>::poll_ready(&mut self.http, cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let timeout = self.routes.current().connect_timeout(&uri).unwrap_or(self.default_timeout);
        let connecting = tower_service::Service::<Uri>::call(&mut self.http, uri);
        Box::pin(async move {
            match tokio::time::timeout(timeout, connecting).await {
                Ok(result) => result.map_err(Into::into),
                Err(_) => Err(Box::new(ConnectTimeout(timeout)) as BoxError),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, X-Secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert("proxy-connection", HeaderValue::from_static("keep-alive"));
        h.insert(header::PROXY_AUTHORIZATION, HeaderValue::from_static("Basic x"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        h.insert(header::TRAILER, HeaderValue::from_static("link"));
        remove_hop_by_hop(&mut h);
        assert_eq!(h.len(), 2, "{h:?}");
        assert!(h.contains_key("x-kept") && h.contains_key(header::TRAILER));
    }

    #[test]
    fn te_trailers_is_recognised_among_other_codings() {
        let te = |v: &'static str| HeaderMap::from_iter([(header::TE, HeaderValue::from_static(v))]);
        assert!(accepts_trailers(&te("trailers")));
        assert!(accepts_trailers(&te("gzip;q=0.5, Trailers")));
        assert!(!accepts_trailers(&te("gzip, deflate")));
        assert!(!accepts_trailers(&HeaderMap::new()));
    }

    #[test]
    fn forwarded_for_appends_to_the_chain() {
        let mut h = HeaderMap::new();
        append_forwarded_for(&mut h, "127.0.0.1".parse().unwrap());
        assert_eq!(h[&X_FORWARDED_FOR], "127.0.0.1");
        h.append(&X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.2"));
        append_forwarded_for(&mut h, "::ffff:192.0.2.1".parse().unwrap());
        assert_eq!(h.get_all(&X_FORWARDED_FOR).iter().count(), 1);
        assert_eq!(h[&X_FORWARDED_FOR], "127.0.0.1, 10.0.0.2, 192.0.2.1");
    }

    #[test]
    fn variants_are_relative_to_the_view() {
        let v = |rest, query| variant(rest, query).map(|p| p.as_str().to_owned());
        assert_eq!(v("", None).as_deref(), Some("/"));
        assert_eq!(v("/", None).as_deref(), Some("/"));
        assert_eq!(v("", Some("")).as_deref(), Some("/"));
        assert_eq!(v("district/3", Some("year=2017")).as_deref(), Some("/district/3?year=2017"));
        assert_eq!(v("/", Some("a=1")).as_deref(), Some("/?a=1"));
        assert_eq!(v("x/", None).as_deref(), Some("/x/"));
    }

    #[test]
    fn dot_segments_and_percent_decoding() {
        assert!(has_dot_segment("a/../b"));
        assert!(has_dot_segment(".."));
        assert!(has_dot_segment("%2e%2E/x"));
        assert!(has_dot_segment("a\\b"));
        assert!(!has_dot_segment("a/..b/c"));
        assert!(!has_dot_segment(""));
        assert_eq!(percent_decode("urn%3Aurbem%3abuildings"), "urn:urbem:buildings");
        assert_eq!(percent_decode("plain"), "plain");
        assert_eq!(percent_decode("bad%zz%"), "bad%zz%");
    }

    /// The node spawns `handle` with bodies that are `Send` but not `Sync` (axum's): the
    /// future must still be `Send`. Checked at compile time.
    #[allow(dead_code)]
    fn handle_future_is_send_for_unsync_bodies(plane: DataPlane, req: Request<ProxyBody>, client: SocketAddr) {
        fn assert_send<T: Send>(_: T) {}
        assert_send(plane.handle(req, client));
    }

    #[test]
    fn proxy_requests_are_recognised() {
        let req = |m: Method, uri: &str| Request::builder().method(m).uri(uri).body(()).unwrap();
        assert!(DataPlane::is_proxy_request(&req(Method::GET, "http://example.org/x")));
        assert!(DataPlane::is_proxy_request(&req(Method::GET, "/data/urn:a:b/v/")));
        assert!(DataPlane::is_proxy_request(&req(Method::CONNECT, "example.org:443")));
        assert!(!DataPlane::is_proxy_request(&req(Method::GET, "/api/v1/units")));
        assert!(!DataPlane::is_proxy_request(&req(Method::GET, "/database")));
    }
}
