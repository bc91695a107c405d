//! The HTTP API under `/api/v1` (see `docs/api.md`), health and metrics routes.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{DefaultBodyLimit, OriginalUri, Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use civitas_catalog::{ApplyOptions, ApplyOutcome, Catalog, Page, SearchPage, SearchQuery, StoredDocument};
use civitas_dataplane::DataPlane;
use civitas_model::{Document, FieldError, Kind, Urn, ValidationErrors};
use civitas_placement::AnalyzerManager;

use crate::config::Config;
use crate::metrics::{Metrics, track};
use crate::problem::Problem;
use crate::security_api::{Caller, may_see};
use axum::Extension;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The catalog.
    pub catalog: Catalog,
    /// Usage analysis and triggers.
    pub analyzer: AnalyzerManager,
    /// The verifiable ledger.
    pub ledger: Arc<civitas_ledger::Ledger>,
    /// The node's signing key.
    pub node_key: Arc<civitas_ledger::NodeKey>,
    /// This node's witness of its peers' ledgers.
    pub witness: Arc<civitas_ledger::Witness>,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// The loaded configuration.
    pub config: Arc<Config>,
    /// Flips to `true` when the node shuts down; long-lived streams end then.
    pub shutdown: watch::Receiver<bool>,
    /// The peers asked for documents this node does not hold.
    pub federation: Arc<crate::federation::Federation>,
    /// The migration manager, the replicas held here and their update manager; `None`
    /// in nodes built without them (tests of other parts).
    pub relocation: Option<crate::relocation::Relocation>,
    /// The Security Manager; `None` when `[security] enabled` is false.
    pub security: Option<Arc<civitas_security::Security>>,
    /// SQL units: checked at apply, served at `/data/…`; `None` in nodes built without them.
    pub sql: Option<crate::sql_api::SqlRoutes>,
    /// The data plane's read check (security on), also answered to stand-alone proxies at
    /// `POST /api/v1/security/read-decisions`.
    pub read_guard: Option<Arc<dyn civitas_dataplane::ReadGuard>>,
    /// The data plane, whose validation cache follows the SDD's activation; `None` in nodes
    /// built without one.
    pub dataplane: Option<DataPlane>,
}

type ApiResult = Result<Response, Problem>;

/// Builds the node's router.
pub fn router(state: AppState) -> Router {
    let metrics = Arc::clone(&state.metrics);
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/api/v1/contexts/civitas.jsonld", get(context))
        .route("/api/v1/openapi.json", get(|| async { json_response(StatusCode::OK, &crate::openapi::document()) }))
        .route("/api/v1/apply", post(apply_any))
        .route("/api/v1/search", get(search))
        .route("/api/v1/watch", get(watch_changes))
        .route("/api/v1/{collection}", get(list).post(apply_collection))
        .route("/api/v1/{collection}/{name}", get(get_document).put(put_document).delete(delete_document))
        .route("/api/v1/{collection}/{name}/{sub}", get(sub_resource))
        .merge(crate::sdd_api::routes())
        .merge(crate::migrations_api::routes())
        .merge(crate::security_api::routes())
        .merge(crate::pipelines_api::routes())
        .merge(crate::ledger_api::router(
            Arc::clone(&state.ledger),
            Arc::clone(&state.node_key),
            Arc::clone(&state.witness),
        ))
        // A new route also goes into `metrics::ROUTES`, or its metrics are labelled "unmatched".
        .fallback(|OriginalUri(uri): OriginalUri| async move { Problem::no_route(uri.path()).at(uri.path()) })
        .method_not_allowed_fallback(|OriginalUri(uri): OriginalUri| async move {
            Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
                format!("{} does not accept this method", uri.path()),
            )
            .at(uri.path())
        })
        .layer(middleware::from_fn_with_state(state.clone(), crate::security_api::authenticate))
        .layer(middleware::from_fn_with_state(metrics, track))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        // Bodies are read (and limited) by `read_json`, which answers 413 as a problem document.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

async fn readyz(State(s): State<AppState>) -> Response {
    match s.catalog.revision().await {
        Ok(_) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => {
            Problem::new(StatusCode::SERVICE_UNAVAILABLE, "not-ready", "Not ready", e.to_string()).into_response()
        }
    }
}

async fn metrics_text(State(s): State<AppState>) -> Response {
    if let Ok(rev) = s.catalog.revision().await {
        s.metrics.catalog_revision.set(i64::try_from(rev).unwrap_or(i64::MAX));
    }
    s.metrics.ledger_entries.set(i64::try_from(s.ledger.size()).unwrap_or(i64::MAX));
    let alarms = s.witness.alarms();
    for (kind, n) in [("fork", alarms.forks), ("rollback", alarms.rollbacks), ("inconsistent", alarms.inconsistent)] {
        s.metrics
            .witness_alarms
            .get_or_create(&crate::metrics::AlarmLabels { kind })
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    let mut resp = s.metrics.encode().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    resp
}

async fn context() -> Response {
    let mut resp = json_response(StatusCode::OK, &civitas_model::context::context_document());
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/ld+json"));
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=86400"));
    resp
}

// ---- apply ---------------------------------------------------------------------------

async fn apply_any(
    State(s): State<AppState>,
    uri: OriginalUri,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let path = uri.path().to_string();
    let mut params = Params::parse(q.as_deref()).map_err(|p| p.at(&path))?;
    let dry_run = params.flag("dryRun").map_err(|p| p.at(&path))?;
    params.finish().map_err(|p| p.at(&path))?;
    let value = read_json(&headers, body, s.config.http.body_limit_bytes).await.map_err(|p| p.at(&path))?;
    apply_value(&s, None, &value, dry_run).await.map_err(|p| p.at(&path))
}

async fn apply_collection(
    State(s): State<AppState>,
    uri: OriginalUri,
    path_params: Result<Path<String>, PathRejection>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let path = uri.path().to_string();
    let inner = async {
        let Path(collection) = path_params.map_err(path_problem)?;
        let kind = collection_kind(&collection)?;
        let mut params = Params::parse(q.as_deref())?;
        let dry_run = params.flag("dryRun")?;
        params.finish()?;
        let value = read_json(&headers, body, s.config.http.body_limit_bytes).await?;
        apply_value(&s, Some(kind), &value, dry_run).await
    };
    inner.await.map_err(|p: Problem| p.at(&path))
}

async fn put_document(
    State(s): State<AppState>,
    uri: OriginalUri,
    path_params: Result<Path<(String, String)>, PathRejection>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let path = uri.path().to_string();
    let inner = async {
        let (kind, name) = document_path(path_params)?;
        let mut params = Params::parse(q.as_deref())?;
        let dry_run = params.flag("dryRun")?;
        params.finish()?;
        let value = read_json(&headers, body, s.config.http.body_limit_bytes).await?;
        if value.is_array() {
            return Err(Problem::invalid(ValidationErrors::single("", "PUT takes one document, not an array")));
        }
        let doc = Document::decode_as(&value, kind).map_err(Problem::invalid)?;
        if doc.name() != &name {
            return Err(Problem::invalid(ValidationErrors::single(
                "/name",
                format!("the document is named {} but the URL names {name}", doc.name()),
            )));
        }
        apply_docs(&s, vec![doc], false, dry_run).await
    };
    inner.await.map_err(|p: Problem| p.at(&path))
}

async fn apply_value(s: &AppState, kind: Option<Kind>, value: &Value, dry_run: bool) -> ApiResult {
    let docs = Document::decode_many(value, kind).map_err(Problem::invalid)?;
    apply_docs(s, docs, value.is_array(), dry_run).await
}

async fn apply_docs(s: &AppState, docs: Vec<Document>, indexed: bool, dry_run: bool) -> ApiResult {
    crate::pipelines_api::check_pipelines(&docs, indexed)?;
    if let Some(sql) = &s.sql {
        crate::sql_api::check_units(sql.views(), &docs, indexed).await?;
    }
    let report = s.catalog.apply(docs, ApplyOptions { dry_run, indexed_pointers: indexed }).await?;
    let created = !dry_run && report.results.iter().any(|r| r.outcome == ApplyOutcome::Created);
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok(json_response(status, &report))
}

// ---- read ----------------------------------------------------------------------------

async fn get_document(
    State(s): State<AppState>,
    uri: OriginalUri,
    path_params: Result<Path<(String, String)>, PathRejection>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    caller: Option<Extension<Caller>>,
) -> ApiResult {
    let path = uri.path();
    let caller = caller.map(|Extension(c)| c);
    let inner = async {
        let (kind, name) = document_path(path_params)?;
        let mut params = Params::parse(q.as_deref())?;
        let version = params.take("version");
        params.finish()?;
        // A document the caller may not see is answered exactly like one that does not exist.
        let hidden = || civitas_catalog::CatalogError::NotFound { kind, name: name.clone(), version: version.clone() };
        match s.catalog.get(kind, &name, version.as_deref()).await {
            Ok(doc) => {
                if s.security.is_some() && !visible_stored(&s, caller.as_ref(), &doc).await {
                    return Err(hidden().into());
                }
                Ok(document_response(doc, &headers))
            }
            // Not held here: ask the peers, unless a peer is asking (never forwarded twice).
            Err(e @ civitas_catalog::CatalogError::NotFound { .. })
                if !headers.contains_key(crate::federation::FEDERATED_HEADER) =>
            {
                match s.federation.resolve(kind, &name, version.as_deref()).await {
                    Some(found) => {
                        if s.security.is_some() {
                            let visible = match serde_json::from_slice::<Value>(&found.document)
                                .ok()
                                .and_then(|v| Document::decode_as(&v, kind).ok())
                            {
                                Some(d) => may_see(&s, caller.as_ref(), &d).await,
                                None => false,
                            };
                            if !visible {
                                return Err(hidden().into());
                            }
                        }
                        Ok(federated_response(found, &headers))
                    }
                    None => Err(e.into()),
                }
            }
            Err(e) => Err(e.into()),
        }
    };
    inner.await.map_err(|p: Problem| p.at(path))
}

fn document_response(doc: StoredDocument, headers: &HeaderMap) -> Response {
    let etag = format!("\"{}\"", doc.mod_revision);
    if headers.get(header::IF_NONE_MATCH).is_some_and(|v| v.as_bytes() == etag.as_bytes()) {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let revision = doc.mod_revision;
    let mut resp = Response::new(Body::from(doc.json));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/ld+json"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert("x-civitas-revision", HeaderValue::from(revision));
    resp
}

/// A document a peer holds, with its owner's ETag and `x-civitas-owner`.
fn federated_response(found: crate::federation::Resolved, headers: &HeaderMap) -> Response {
    if let Some(etag) = &found.etag
        && headers.get(header::IF_NONE_MATCH).is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let mut resp = Response::new(Body::from(found.document));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/ld+json"));
    if let Some(v) = found.etag.as_deref().and_then(|e| HeaderValue::from_str(e).ok()) {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&found.owner) {
        h.insert(crate::federation::OWNER_HEADER, v);
    }
    resp
}

async fn sub_resource(
    State(s): State<AppState>,
    uri: OriginalUri,
    path_params: Result<Path<(String, String, String)>, PathRejection>,
    RawQuery(q): RawQuery,
    caller: Option<Extension<Caller>>,
) -> ApiResult {
    let path = uri.path();
    let caller = caller.map(|Extension(c)| c);
    let inner = async {
        let Path((collection, name, sub)) = path_params.map_err(path_problem)?;
        let kind = collection_kind(&collection)?;
        let name = path_name(&name)?;
        Params::parse(q.as_deref())?.finish()?;
        if s.security.is_some() {
            let current = s.catalog.get(kind, &name, None).await?;
            if !visible_stored(&s, caller.as_ref(), &current).await {
                return Err(civitas_catalog::CatalogError::NotFound { kind, name, version: None }.into());
            }
        }
        match (kind, sub.as_str()) {
            (_, "versions") => {
                let versions = s.catalog.versions(kind, &name).await?;
                Ok(json_response(StatusCode::OK, &json!({"name": name.as_str(), "versions": versions})))
            }
            (Kind::DataUnit, "tree") => {
                let tree = match (&s.security, &caller) {
                    (Some(security), Some(Caller(p))) => {
                        s.catalog.tree_with(&name, &security.policies.access_check(Arc::clone(p))).await?
                    }
                    _ => s.catalog.tree(&name).await?,
                };
                Ok(json_response(StatusCode::OK, &tree))
            }
            _ => Err(Problem::no_route(path)),
        }
    };
    inner.await.map_err(|p: Problem| p.at(path))
}

async fn list(
    State(s): State<AppState>,
    uri: OriginalUri,
    path_params: Result<Path<String>, PathRejection>,
    RawQuery(q): RawQuery,
    caller: Option<Extension<Caller>>,
) -> ApiResult {
    let path = uri.path();
    let caller = caller.map(|Extension(c)| c);
    let inner = async {
        let Path(collection) = path_params.map_err(path_problem)?;
        let kind = collection_kind(&collection)?;
        let mut params = Params::parse(q.as_deref())?;
        let (mut query, page) = search_params(&mut params)?;
        query.kind = Some(kind);
        params.finish()?;
        let page = s.catalog.search(&query, &page).await?;
        Ok(page_response(&visible_page(&s, caller.as_ref(), page).await))
    };
    inner.await.map_err(|p: Problem| p.at(path))
}

async fn search(
    State(s): State<AppState>,
    uri: OriginalUri,
    RawQuery(q): RawQuery,
    caller: Option<Extension<Caller>>,
) -> ApiResult {
    let path = uri.path();
    let caller = caller.map(|Extension(c)| c);
    let inner = async {
        let mut params = Params::parse(q.as_deref())?;
        let (mut query, page) = search_params(&mut params)?;
        if let Some(t) = params.take("type") {
            query.kind = Some(
                Kind::from_type_name(&t)
                    .or_else(|| Kind::from_user_text(&t))
                    .ok_or_else(|| Problem::bad_parameter("type", format!("unknown type {t:?}")))?,
            );
        }
        params.finish()?;
        let page = s.catalog.search(&query, &page).await?;
        Ok(page_response(&visible_page(&s, caller.as_ref(), page).await))
    };
    inner.await.map_err(|p: Problem| p.at(path))
}

fn search_params(params: &mut Params) -> Result<(SearchQuery, Page), Problem> {
    let query = SearchQuery {
        kind: None,
        name_prefix: params.take("prefix"),
        source_type: params.take("sourceType"),
        site: params.take("site").map(|s| Urn::parse(&s).map_err(|e| Problem::bad_parameter("site", e))).transpose()?,
        view: params.take("view"),
        unit: params.take("unit").map(|s| Urn::parse(&s).map_err(|e| Problem::bad_parameter("unit", e))).transpose()?,
        text: params.take("q").filter(|t| !t.trim().is_empty()),
    };
    let limit = match params.take("limit") {
        None => None,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=civitas_catalog::MAX_PAGE).contains(&n) => Some(n),
            _ => {
                return Err(Problem::bad_parameter(
                    "limit",
                    format!("must be an integer from 1 to {}, got {l:?}", civitas_catalog::MAX_PAGE),
                ));
            }
        },
    };
    Ok((query, Page { after: params.take("after"), limit }))
}

/// A page with only what the caller may see (all of it without security). The `next`
/// cursor stays: the following page continues after the last document looked at.
async fn visible_page(s: &AppState, caller: Option<&Caller>, mut page: SearchPage) -> SearchPage {
    if s.security.is_none() {
        return page;
    }
    let mut kept = Vec::with_capacity(page.items.len());
    for item in std::mem::take(&mut page.items) {
        if visible_stored(s, caller, &item).await {
            kept.push(item);
        }
    }
    page.items = kept;
    page
}

/// Whether the caller may see a stored document (an unreadable one is hidden).
async fn visible_stored(s: &AppState, caller: Option<&Caller>, doc: &StoredDocument) -> bool {
    match doc.document() {
        Ok(d) => may_see(s, caller, &d).await,
        Err(_) => false,
    }
}

/// `{"items": [...], "next": ...}`, splicing the stored canonical bytes in without re-encoding them.
fn page_response(page: &SearchPage) -> Response {
    let mut body = Vec::with_capacity(page.items.iter().map(|d| d.json.len() + 1).sum::<usize>() + 64);
    body.extend_from_slice(b"{\"items\":[");
    for (i, d) in page.items.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&d.json);
    }
    body.extend_from_slice(b"],\"next\":");
    body.extend_from_slice(&serde_json::to_vec(&page.next).unwrap_or_else(|_| b"null".to_vec()));
    body.push(b'}');
    let mut resp = Response::new(Body::from(body));
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

// ---- delete --------------------------------------------------------------------------

async fn delete_document(
    State(s): State<AppState>,
    uri: OriginalUri,
    path_params: Result<Path<(String, String)>, PathRejection>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let path = uri.path();
    let inner = async {
        let (kind, name) = document_path(path_params)?;
        let mut params = Params::parse(q.as_deref())?;
        let cascade = params.flag("cascade")?;
        let dry_run = params.flag("dryRun")?;
        params.finish()?;
        let report = s.catalog.delete(kind, &name, cascade, dry_run).await?;
        Ok(json_response(StatusCode::OK, &report))
    };
    inner.await.map_err(|p: Problem| p.at(path))
}

// ---- watch ---------------------------------------------------------------------------

/// Bounded: a slow reader makes the pump wait (the catalog watch then buffers up to its
/// own bound and reports `Lagged` past it, which ends the stream with an error line).
const WATCH_CHANNEL: usize = 256;

async fn watch_changes(State(s): State<AppState>, uri: OriginalUri, RawQuery(q): RawQuery) -> ApiResult {
    let path = uri.path();
    let mut params = Params::parse(q.as_deref()).map_err(|p| p.at(path))?;
    let from =
        match params.take("from") {
            None => None,
            Some(f) => Some(f.parse::<u64>().map_err(|_| {
                Problem::bad_parameter("from", format!("must be a revision number, got {f:?}")).at(path)
            })?),
        };
    params.finish().map_err(|p| p.at(path))?;
    let stream = s.catalog.watch(from).await.map_err(|e| Problem::from(e).at(path))?;
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(WATCH_CHANNEL);
    let heartbeat = Duration::from_secs(s.config.http.watch_heartbeat_seconds);
    let mut shutdown = s.shutdown.clone();
    let catalog = s.catalog.clone();
    let metrics = Arc::clone(&s.metrics);
    metrics.watchers.inc();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
        loop {
            let line = tokio::select! {
                ev = stream.next() => match ev {
                    None => break,
                    Some(Ok(ev)) => {
                        let name = serde_json::to_string(ev.name.as_str()).unwrap_or_default();
                        match ev.document {
                            Some(doc) => {
                                let mut line = format!(
                                    "{{\"op\":\"put\",\"revision\":{},\"type\":\"{}\",\"name\":{name},\"document\":",
                                    ev.revision, ev.kind.type_name()
                                ).into_bytes();
                                line.extend_from_slice(&doc);
                                line.extend_from_slice(b"}\n");
                                line
                            }
                            None => format!(
                                "{{\"op\":\"delete\",\"revision\":{},\"type\":\"{}\",\"name\":{name}}}\n",
                                ev.revision, ev.kind.type_name()
                            ).into_bytes(),
                        }
                    }
                    Some(Err(e)) => {
                        let line = json!({"op": "error", "detail": e.to_string()}).to_string() + "\n";
                        let _ = tx.send(Ok(Bytes::from(line))).await;
                        break;
                    }
                },
                _ = ticker.tick() => {
                    let rev = catalog.revision().await.unwrap_or(0);
                    format!("{{\"op\":\"heartbeat\",\"revision\":{rev}}}\n").into_bytes()
                }
                _ = stopped(&mut shutdown) => break,
            };
            if tx.send(Ok(Bytes::from(line))).await.is_err() {
                break; // the client went away
            }
        }
        metrics.watchers.dec();
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    let mut resp = Response::new(body);
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(resp)
}

// ---- data plane ----------------------------------------------------------------------

/// Serves one connection's requests: data plane requests (reverse mode under `/data/`,
/// forward mode for absolute-form requests from `HTTP_PROXY` clients, CONNECT) go straight
/// to the data plane — no API routing or API middleware on that hot path — and everything
/// else to the API router.
pub async fn dispatch(
    router: Router,
    dataplane: DataPlane,
    sql: Option<&crate::sql_api::SqlRoutes>,
    client: SocketAddr,
    req: Request,
) -> Response {
    // SQL views are answered by their database, not proxied.
    let req = match sql {
        Some(sql) if req.uri().path().starts_with("/data/") => match sql.serve(req).await {
            Ok(resp) => return resp,
            Err(req) => req,
        },
        _ => req,
    };
    if DataPlane::is_proxy_request(&req) {
        return match dataplane.handle(req, client).await {
            Ok(resp) => resp.map(Body::new),
            Err(e) => {
                let mut resp = Problem::new(e.status(), e.slug(), e.title(), e.to_string()).into_response();
                if let Some(challenge) = e.challenge() {
                    resp.headers_mut().insert(header::WWW_AUTHENTICATE, challenge.clone());
                }
                resp
            }
        };
    }
    match tower::ServiceExt::oneshot(router, req).await {
        Ok(resp) => resp,
        Err(never) => match never {},
    }
}

/// Serves `listener` until `shutdown` turns true: every connection's requests go through
/// [`dispatch`] (data plane first, then `router`). Used by `civitas serve` and by the
/// stand-alone `civitas proxy`.
pub async fn serve_with_data_plane<L>(
    listener: L,
    router: Router,
    dataplane: DataPlane,
    sql: Option<crate::sql_api::SqlRoutes>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()>
where
    L: axum::serve::Listener<Addr = SocketAddr>,
{
    // One service per connection, which knows the client's address.
    let app = tower::service_fn(move |incoming: axum::serve::IncomingStream<'_, L>| {
        let client = *incoming.remote_addr();
        let (router, dataplane, sql) = (router.clone(), dataplane.clone(), sql.clone());
        async move {
            Ok::<_, std::convert::Infallible>(tower::service_fn(move |req: Request| {
                let (router, dataplane, sql) = (router.clone(), dataplane.clone(), sql.clone());
                async move {
                    Ok::<_, std::convert::Infallible>(dispatch(router, dataplane, sql.as_ref(), client, req).await)
                }
            }))
        }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|v| *v).await;
        })
        .await
}

// ---- helpers -------------------------------------------------------------------------

pub(crate) fn json_response<T: serde::Serialize>(status: StatusCode, value: &T) -> Response {
    let body = serde_json::to_vec(value).expect("API values always serialize");
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn collection_kind(collection: &str) -> Result<Kind, Problem> {
    Kind::ALL.into_iter().find(|k| k.collection() == collection).ok_or_else(|| {
        let known: Vec<_> = Kind::ALL.iter().map(|k| k.collection()).collect();
        Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            format!("no collection {collection:?}; collections are {}", known.join(", ")),
        )
    })
}

/// `/api/v1/{collection}/{name}` → kind and name, or the problem to answer.
fn document_path(params: Result<Path<(String, String)>, PathRejection>) -> Result<(Kind, Urn), Problem> {
    let Path((collection, name)) = params.map_err(path_problem)?;
    Ok((collection_kind(&collection)?, path_name(&name)?))
}

fn path_name(name: &str) -> Result<Urn, Problem> {
    Urn::parse(name).map_err(|e| Problem::bad_parameter("name", e))
}

fn path_problem(e: PathRejection) -> Problem {
    Problem::bad_parameter("path", e.body_text())
}

/// Reads a JSON body: checks the media type, enforces the size limit, parses.
pub(crate) async fn read_json(headers: &HeaderMap, body: Body, limit: u64) -> Result<Value, Problem> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or_default().split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        let is_json = ct == "application/json" || ct == "application/ld+json" || ct.ends_with("+json");
        if !is_json {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
                format!("bodies are JSON (application/json or application/ld+json), not {ct:?}"),
            ));
        }
    }
    let too_large = || {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            "Body too large",
            format!("the body is larger than the limit of {limit} bytes (http.body_limit_bytes)"),
        )
    };
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let limited = http_body_util::Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX));
    let bytes = match limited.collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => return Err(too_large()),
        Err(e) => {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "malformed-body",
                "Malformed body",
                format!("cannot read the body: {e}"),
            ));
        }
    };
    if bytes.is_empty() {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed-json",
            "Malformed JSON",
            "the body is empty; send a JSON document",
        ));
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        let mut p = Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed-json",
            "Malformed JSON",
            format!("the body is not valid JSON: {e}"),
        );
        p.errors.push(crate::problem::ProblemField {
            pointer: Some(String::new()),
            parameter: None,
            detail: format!("line {}, column {}: {e}", e.line(), e.column()),
        });
        p
    })
}

/// Query parameters, consumed by name; leftovers are reported as unknown.
pub(crate) struct Params {
    pairs: Vec<(String, String)>,
    seen: HashSet<String>,
}

impl Params {
    pub(crate) fn parse(q: Option<&str>) -> Result<Params, Problem> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(q.unwrap_or_default())
            .map_err(|e| Problem::bad_parameter("query", format!("malformed query string: {e}")))?;
        Ok(Params { pairs, seen: HashSet::new() })
    }

    pub(crate) fn take(&mut self, key: &str) -> Option<String> {
        self.seen.insert(key.to_string());
        self.pairs.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    }

    fn flag(&mut self, key: &str) -> Result<bool, Problem> {
        match self.take(key).as_deref() {
            None | Some("false") | Some("0") => Ok(false),
            Some("") | Some("true") | Some("1") => Ok(true),
            Some(other) => Err(Problem::bad_parameter(key, format!("must be true or false, got {other:?}"))),
        }
    }

    pub(crate) fn finish(self) -> Result<(), Problem> {
        let unknown: Vec<FieldError> = self
            .pairs
            .iter()
            .filter(|(k, _)| !self.seen.contains(k))
            .map(|(k, _)| FieldError { pointer: k.clone(), detail: format!("unknown query parameter `{k}`") })
            .collect();
        match unknown.first() {
            None => Ok(()),
            Some(first) => Err(Problem::bad_parameter(&first.pointer, first.detail.clone())),
        }
    }
}

/// Resolves once the node starts shutting down.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    while !*shutdown.borrow_and_update() {
        if shutdown.changed().await.is_err() {
            return;
        }
    }
}
