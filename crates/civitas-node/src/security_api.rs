//! The Security Manager at the node's API (when `[security] enabled`): every request is
//! authenticated into a principal, each route's rule applied, catalog reads filtered by
//! unit visibility (404, never 403, for what a caller may not know exists), and the token
//! endpoints behind `civitas token create|list|revoke`.
//!
//! Route rules (see `docs/security.md`, "At the node"):
//! - open to anyone: `/healthz`, `/readyz`, the JSON-LD context, the OpenAPI document, the
//!   ledger's reads and the witness cosigning endpoint (all verifiable without trust);
//! - catalog reads (`GET /api/v1/{collection}[/{name}[/tree|versions]]`, search): any
//!   caller, filtered by what the caller may see;
//! - everything else — writes, watch, the SDD, migrations, replicas and token endpoints,
//!   metrics — needs a role in `security.admin_roles`;
//! - replica resources (`/replicas/…`) need read access to the replica's view.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{OriginalUri, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Extension, Router};
use serde_json::json;

use civitas_catalog::Catalog;
use civitas_dataplane::GuardRefusal;
use civitas_model::{Document, Kind};
use civitas_security::strategies::local_token::{TokenRequest, parse_ttl};
use civitas_security::{Principal, Rejection, Security, ViewSecurity};

use crate::api::{AppState, json_response};
use crate::problem::Problem;

/// The authenticated caller of a request (anonymous when it sent no credentials).
#[derive(Clone, Debug)]
pub struct Caller(pub Arc<Principal>);

/// Route templates, for the metrics labels.
pub const ROUTES: &[&str] = &["/api/v1/tokens", "/api/v1/tokens/{id}", "/api/v1/security/read-decisions"];

/// The token routes and the read decisions for stand-alone proxies, merged into the
/// node's router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/tokens", get(list_tokens).post(create_token))
        .route("/api/v1/tokens/{id}", delete(revoke_token))
        .route("/api/v1/security/read-decisions", axum::routing::post(read_decision))
}

/// What a stand-alone proxy asks: may the client that sent `authorization` (its
/// `Authorization` header, absent for an anonymous client) read `view` of `unit`?
#[derive(Debug, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReadDecisionRequest {
    /// The unit's name.
    pub unit: String,
    /// The view's full name.
    pub view: String,
    /// The client's `Authorization` header value, if it sent one.
    #[serde(default)]
    pub authorization: Option<String>,
}

/// `POST /api/v1/security/read-decisions` (admin: a proxy's `node.peer_token`): the
/// node's decision for a client of a stand-alone proxy — the proxy is the enforcement
/// point, the node the decision point. `200 {"allowed": true}` or `200 {"allowed": false,
/// "status": 400|401|403|503, "detail", "challenge"}`; `409` when security is off here.
async fn read_decision(
    axum::extract::State(s): axum::extract::State<AppState>,
    uri: axum::extract::OriginalUri,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    let path = uri.path();
    let Some(guard) = s.read_guard.as_ref() else {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "security-off",
            "Security is off",
            "[security] enabled is false on this node: every caller may read every view",
        )
        .at(path));
    };
    let request: ReadDecisionRequest = serde_json::from_slice(&body)
        .map_err(|e| Problem::bad_parameter("body", format!("not a read decision request: {e}")).at(path))?;
    let unit =
        civitas_model::Urn::parse(&request.unit).map_err(|e| Problem::bad_parameter("unit", e.to_string()).at(path))?;
    let view =
        civitas_model::Urn::parse(&request.view).map_err(|e| Problem::bad_parameter("view", e.to_string()).at(path))?;
    let mut headers = HeaderMap::new();
    if let Some(a) = &request.authorization {
        let value = HeaderValue::from_str(a)
            .map_err(|_| Problem::bad_parameter("authorization", "not a valid header value").at(path))?;
        headers.insert(header::AUTHORIZATION, value);
    }
    let answer = match guard.check(&headers, &unit, &view).await {
        Ok(()) => serde_json::json!({"allowed": true}),
        Err(refusal) => {
            let status = refusal.status();
            let (detail, challenge) = match refusal {
                GuardRefusal::Unauthenticated { detail, challenge } => (detail, challenge),
                GuardRefusal::Forbidden { detail } | GuardRefusal::Other { detail, .. } => (detail, None),
            };
            let challenge = challenge.and_then(|c| c.to_str().ok().map(str::to_string));
            serde_json::json!({"allowed": false, "status": status, "detail": detail, "challenge": challenge})
        }
    };
    Ok(crate::api::json_response(StatusCode::OK, &answer))
}

/// What a route needs.
#[derive(Debug, PartialEq, Eq)]
enum Need {
    Nothing,
    /// Any caller; the handler filters.
    Caller,
    Admin,
}

fn need(method: &Method, path: &str) -> Need {
    let open = ["/healthz", "/readyz", "/api/v1/contexts/civitas.jsonld", "/api/v1/openapi.json"];
    if open.contains(&path) || path == "/api/v1/ledger/witness/cosign" {
        return Need::Nothing;
    }
    if path.starts_with("/api/v1/ledger") && method == Method::GET {
        return Need::Nothing;
    }
    if path.starts_with("/replicas/") {
        return Need::Caller;
    }
    let reads = method == Method::GET || method == Method::HEAD;
    let admin_only = ["/api/v1/watch", "/api/v1/sdd", "/api/v1/migrations", "/api/v1/replicas", "/api/v1/tokens"];
    if reads && path.starts_with("/api/v1/") && !admin_only.iter().any(|p| path.starts_with(p)) {
        return Need::Caller;
    }
    Need::Admin
}

/// The authentication layer: puts a [`Caller`] in the request's extensions, or answers
/// 401 (with `WWW-Authenticate`), 400 or 503; then applies the route's rule.
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let Some(security) = state.security.clone() else {
        return next.run(req).await;
    };
    let path = req.uri().path().to_string();
    let need = need(req.method(), &path);
    if need == Need::Nothing {
        return next.run(req).await;
    }
    let header = match req.headers().get(header::AUTHORIZATION).map(|v| v.to_str()) {
        None => None,
        Some(Ok(v)) => Some(v.to_string()),
        Some(Err(_)) => {
            return Problem::bad_parameter("Authorization", "the header is not visible ASCII")
                .at(&path)
                .into_response();
        }
    };
    let principal = match security.authenticator.authenticate(header.as_deref()).await {
        Ok(p) => p,
        Err(r) => return rejection(&security, &r, &path),
    };
    if need == Need::Admin
        && let Err(p) = require_admin(&security, &principal, &path)
    {
        return p.into_response();
    }
    req.extensions_mut().insert(Caller(principal));
    next.run(req).await
}

/// 401/400/503 for refused credentials, with the challenge.
pub(crate) fn rejection(security: &Security, r: &Rejection, path: &str) -> Response {
    let status = StatusCode::from_u16(r.reason.status()).unwrap_or(StatusCode::UNAUTHORIZED);
    let mut resp =
        Problem::new(status, r.reason.as_str(), "Not authenticated", r.detail.clone()).at(path).into_response();
    if status == StatusCode::UNAUTHORIZED
        && let Ok(v) = HeaderValue::from_str(&security.authenticator.challenge(Some(r)))
    {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

/// 401 for an anonymous caller (with the challenge), 403 for one without an admin role.
fn require_admin(security: &Security, principal: &Principal, path: &str) -> Result<(), Problem> {
    if principal.is_anonymous() {
        return Err(Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "Not authenticated",
            format!("{path} needs credentials (Authorization: Bearer <token>)"),
        )
        .with("challenge", json!(security.authenticator.challenge(None)))
        .at(path));
    }
    let d = security.policies.administer(principal, path);
    if d.allowed {
        return Ok(());
    }
    Err(Problem::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        "Forbidden",
        format!("{path} needs a role in security.admin_roles ({}: {})", d.rule, d.reason),
    )
    .at(path))
}

/// Whether the caller may know `doc` exists: its governing unit must be visible (an
/// instance of a unit this node does not hold is hidden). Always true without security.
pub(crate) async fn may_see(s: &AppState, caller: Option<&Caller>, doc: &Document) -> bool {
    let (Some(security), Some(Caller(principal))) = (&s.security, caller) else {
        return s.security.is_none();
    };
    let Some(unit_name) = civitas_security::governing_unit(doc) else { return true };
    let unit = match doc {
        Document::DataUnit(u) => u.clone(),
        _ => match unit_of(&s.catalog, unit_name).await {
            Some(u) => u,
            None => return false,
        },
    };
    security.policies.unit_visible(principal, &unit).allowed
}

async fn unit_of(catalog: &Catalog, name: &civitas_model::Urn) -> Option<civitas_model::DataUnit> {
    let stored = catalog.get(Kind::DataUnit, name, None).await.ok()?;
    match stored.document().ok()? {
        Document::DataUnit(u) => Some(u),
        _ => None,
    }
}

// ---- data plane and replicas ------------------------------------------------------------

/// The data plane's [`civitas_dataplane::ReadGuard`]: authenticates the request (cached),
/// then asks the policy engine whether the caller may read the view, with the view's
/// policy compiled once per unit version.
pub struct DataPlaneGuard {
    security: Arc<Security>,
    merger: Arc<civitas_dataplane::RouteMerger>,
    /// By view: the unit version it was compiled for, and the compiled policy.
    compiled: std::sync::RwLock<std::collections::HashMap<civitas_model::Urn, (String, Arc<ViewSecurity>)>>,
}

/// Most compiled view policies kept; past that the map is cleared (they are cheap to rebuild).
const MAX_COMPILED_VIEWS: usize = 10_000;

impl DataPlaneGuard {
    /// A guard reading units from the merged route documents.
    pub fn new(security: Arc<Security>, merger: Arc<civitas_dataplane::RouteMerger>) -> DataPlaneGuard {
        DataPlaneGuard { security, merger, compiled: Default::default() }
    }

    fn view_security(&self, unit: &civitas_model::Urn, view: &civitas_model::Urn) -> Option<Arc<ViewSecurity>> {
        let docs = self.merger.documents();
        let Some((_, Document::DataUnit(u))) = docs.get(Kind::DataUnit, unit) else { return None };
        // The common case allocates nothing: a read lock and a lookup by the borrowed name.
        if let Some((version, v)) = self.compiled.read().unwrap_or_else(|e| e.into_inner()).get(view)
            && *version == u.header.version
        {
            return Some(Arc::clone(v));
        }
        let v = Arc::new(ViewSecurity::new(u, u.views.iter().find(|v| &v.name == view)?));
        let mut map = self.compiled.write().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_COMPILED_VIEWS {
            map.clear();
        }
        map.insert(view.clone(), (u.header.version.clone(), Arc::clone(&v)));
        Some(v)
    }
}

impl civitas_dataplane::ReadGuard for DataPlaneGuard {
    fn check<'a>(
        &'a self,
        headers: &'a HeaderMap,
        unit: &'a civitas_model::Urn,
        view: &'a civitas_model::Urn,
    ) -> futures::future::BoxFuture<'a, Result<(), GuardRefusal>> {
        Box::pin(async move {
            let principal = authenticate_headers(&self.security, headers).await?;
            let Some(vs) = self.view_security(unit, view) else {
                return Err(GuardRefusal::Forbidden {
                    detail: format!("view {view} of unit {unit} is not in the catalog"),
                });
            };
            let d = self.security.policies.view_read_compiled(&principal, &vs);
            decision_to_refusal(&self.security, &principal, &d)
        })
    }
}

/// Authenticates a request's `Authorization` header for the data plane or the replica server.
async fn authenticate_headers(security: &Security, headers: &HeaderMap) -> Result<Arc<Principal>, GuardRefusal> {
    let header = match headers.get(header::AUTHORIZATION).map(|v| v.to_str()) {
        None => None,
        Some(Ok(v)) => Some(v),
        Some(Err(_)) => {
            return Err(GuardRefusal::Other {
                unavailable: false,
                detail: "the Authorization header is not visible ASCII".into(),
            });
        }
    };
    security.authenticator.authenticate(header).await.map_err(|r| match r.reason.status() {
        401 => GuardRefusal::Unauthenticated {
            detail: r.detail.clone(),
            challenge: HeaderValue::from_str(&security.authenticator.challenge(Some(&r))).ok(),
        },
        503 => GuardRefusal::Other { unavailable: true, detail: r.detail.clone() },
        _ => GuardRefusal::Other { unavailable: false, detail: r.detail.clone() },
    })
}

/// An allowed decision passes; a denied one is 401 for an anonymous caller (who may yet
/// authenticate) and 403 otherwise.
fn decision_to_refusal(
    security: &Security,
    principal: &Principal,
    d: &civitas_security::Decision,
) -> Result<(), GuardRefusal> {
    if d.allowed {
        return Ok(());
    }
    let detail = format!("{} may not read {}: {} ({})", subject(principal), d.resource, d.reason, d.rule);
    if principal.is_anonymous() {
        return Err(GuardRefusal::Unauthenticated {
            detail,
            challenge: HeaderValue::from_str(&security.authenticator.challenge(None)).ok(),
        });
    }
    Err(GuardRefusal::Forbidden { detail })
}

fn subject(p: &Principal) -> String {
    if p.is_anonymous() { "an anonymous caller".into() } else { format!("{:?}", p.subject) }
}

/// The replica server's check: may the request's caller read `view` of `unit`? Answers the
/// response to send when not.
pub(crate) async fn replica_read(
    s: &AppState,
    headers: &HeaderMap,
    unit: &civitas_model::DataUnit,
    view: &civitas_model::Urn,
    path: &str,
) -> Result<(), Response> {
    let Some(security) = &s.security else { return Ok(()) };
    let refusal = match authenticate_headers(security, headers).await {
        Ok(principal) => {
            let d = security.policies.view_read(&principal, unit, view);
            match decision_to_refusal(security, &principal, &d) {
                Ok(()) => return Ok(()),
                Err(r) => r,
            }
        }
        Err(r) => r,
    };
    Err(refusal_response(refusal, path))
}

/// A read check's refusal as the problem document a client gets (401 with the
/// challenge, 403, 503, 400), at `path`.
pub(crate) fn refusal_response(refusal: GuardRefusal, path: &str) -> Response {
    let status = StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let (slug, title, detail, challenge) = match refusal {
        GuardRefusal::Unauthenticated { detail, challenge } => {
            ("unauthenticated", "Not authenticated", detail, challenge)
        }
        GuardRefusal::Forbidden { detail } => ("forbidden", "Forbidden", detail, None),
        GuardRefusal::Other { unavailable: true, detail } => {
            ("identity-provider-unavailable", "Unavailable", detail, None)
        }
        GuardRefusal::Other { unavailable: false, detail } => ("bad-request", "Bad request", detail, None),
    };
    let mut resp = Problem::new(status, slug, title, detail).at(path).into_response();
    if let Some(c) = challenge {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, c);
    }
    resp
}

// ---- tokens ----------------------------------------------------------------------------

fn tokens_of(
    s: &AppState,
    path: &str,
) -> Result<(Arc<Security>, Arc<civitas_security::strategies::LocalTokens>), Problem> {
    let security = s.security.clone().ok_or_else(|| {
        Problem::new(
            StatusCode::CONFLICT,
            "security-off",
            "Security is off",
            "[security] enabled is false on this node",
        )
        .at(path)
    })?;
    let tokens = security.local_tokens.clone().ok_or_else(|| {
        Problem::new(
            StatusCode::CONFLICT,
            "tokens-off",
            "Local tokens are off",
            "security.local_tokens.enabled is false",
        )
        .at(path)
    })?;
    Ok((security, tokens))
}

/// `{"subject", "roles", "groups", "ttl": "30d"}`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateToken {
    subject: String,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    ttl: Option<String>,
}

async fn create_token(State(s): State<AppState>, uri: OriginalUri, headers: HeaderMap, body: Body) -> Response {
    let path = uri.path();
    let result = async {
        let (_, tokens) = tokens_of(&s, path)?;
        let request: CreateToken = crate::sdd_api::read_typed(
            &s,
            &headers,
            body,
            "{\"subject\": \"alice\", \"roles\": [\"planner\"], \"ttl\": \"30d\"}",
        )
        .await
        .map_err(|p| p.at(path))?;
        let ttl_seconds = match &request.ttl {
            None => None,
            Some(t) => Some(parse_ttl(t).map_err(|e| Problem::bad_parameter("ttl", e.to_string()).at(path))?),
        };
        let issued = tokens
            .create(TokenRequest {
                subject: request.subject,
                roles: request.roles,
                groups: request.groups,
                ttl_seconds,
            })
            .await
            .map_err(|e| Problem::bad_parameter("token", e.to_string()).at(path))?;
        tracing::info!(subject = %issued.record.subject, id = %issued.record.id, "local token created");
        Ok::<_, Problem>(json_response(StatusCode::CREATED, &json!({ "token": issued.token, "record": issued.record })))
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

async fn list_tokens(State(s): State<AppState>, uri: OriginalUri) -> Response {
    match tokens_of(&s, uri.path()) {
        Ok((_, tokens)) => json_response(StatusCode::OK, &json!({ "items": tokens.list() })),
        Err(p) => p.into_response(),
    }
}

async fn revoke_token(
    State(s): State<AppState>,
    uri: OriginalUri,
    Path(id): Path<String>,
    caller: Option<Extension<Caller>>,
) -> Response {
    let path = uri.path();
    let result = async {
        let (security, _) = tokens_of(&s, path)?;
        let revoked = security.revoke_token(&id).await.map_err(|e| {
            Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "revoke-failed", "Not revoked", e.to_string())
        })?;
        if !revoked {
            return Err(Problem::new(
                StatusCode::NOT_FOUND,
                "not-found",
                "Not found",
                format!("no live token {id:?} (unknown, or already revoked)"),
            ));
        }
        let by = caller.map(|Extension(Caller(p))| p.subject.clone()).unwrap_or_default();
        tracing::info!(%id, by, "local token revoked");
        Ok(json_response(StatusCode::OK, &json!({ "id": id, "revoked": true })))
    };
    result.await.map_err(|p| p.at(path)).unwrap_or_else(IntoResponse::into_response)
}

/// At the first start with security on and no token yet: an admin token, written to
/// `<data-dir>/security/admin.token` (mode 0600), so an operator can create the others.
pub async fn bootstrap_admin_token(security: &Security, data_dir: &std::path::Path) -> Result<(), String> {
    let Some(tokens) = &security.local_tokens else { return Ok(()) };
    if !tokens.list().is_empty() {
        return Ok(());
    }
    let role = security.policies.admin_roles().first().cloned().unwrap_or_else(|| "admin".into());
    let issued = tokens
        .create(TokenRequest { subject: "admin".into(), roles: vec![role], groups: Vec::new(), ttl_seconds: None })
        .await
        .map_err(|e| format!("cannot create the bootstrap admin token: {e}"))?;
    let path = data_dir.join("security").join("admin.token");
    write_private(&path, issued.token.as_bytes()).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    tracing::warn!(path = %path.display(), "security on and no token yet: an admin token was written there (use it with --token, then delete the file)");
    Ok(())
}

fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path)?;
    f.write_all(bytes)?;
    f.write_all(b"\n")?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_rules() {
        assert_eq!(need(&Method::GET, "/healthz"), Need::Nothing);
        assert_eq!(need(&Method::GET, "/api/v1/ledger/checkpoint"), Need::Nothing);
        assert_eq!(need(&Method::POST, "/api/v1/ledger/witness/cosign"), Need::Nothing);
        assert_eq!(need(&Method::POST, "/api/v1/ledger"), Need::Admin, "appending is a write");
        assert_eq!(need(&Method::GET, "/api/v1/units"), Need::Caller);
        assert_eq!(need(&Method::GET, "/api/v1/units/urn:a:b/tree"), Need::Caller);
        assert_eq!(need(&Method::GET, "/api/v1/search"), Need::Caller);
        assert_eq!(need(&Method::PUT, "/api/v1/units/urn:a:b"), Need::Admin);
        assert_eq!(need(&Method::POST, "/api/v1/apply"), Need::Admin);
        assert_eq!(need(&Method::DELETE, "/api/v1/units/urn:a:b"), Need::Admin);
        assert_eq!(need(&Method::GET, "/api/v1/watch"), Need::Admin);
        assert_eq!(need(&Method::GET, "/api/v1/sdd/status"), Need::Admin);
        assert_eq!(need(&Method::GET, "/api/v1/migrations/pending"), Need::Admin);
        assert_eq!(need(&Method::GET, "/api/v1/replicas"), Need::Admin);
        assert_eq!(need(&Method::GET, "/metrics"), Need::Admin);
        assert_eq!(need(&Method::GET, "/replicas/x/"), Need::Caller);
    }
}
