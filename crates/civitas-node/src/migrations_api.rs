//! `/api/v1/migrations/*` and `/api/v1/replicas`: what the migration manager decided and
//! why, the plans waiting for a person, pins, and the replicas this node holds; plus the
//! replica server at `/replicas/{id}/…`.

use axum::Router;
use axum::body::Body;
use axum::extract::{OriginalUri, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::json;

use civitas_model::Urn;
use civitas_placement::migration::{EscalationError, MigrationEvent, Pin};

use crate::api::{AppState, Params, json_response};
use crate::problem::Problem;
use crate::relocation::{Relocation, RelocationError};

/// Route templates, for the metrics labels.
pub const ROUTES: &[&str] = &[
    "/api/v1/migrations/pending",
    "/api/v1/migrations/pending/{id}/approve",
    "/api/v1/migrations/pending/{id}/reject",
    "/api/v1/migrations/events",
    "/api/v1/migrations/events/{id}",
    "/api/v1/migrations/pins",
    "/api/v1/replicas",
    "/api/v1/replicas/{view}",
    "/replicas/{id}",
    "/replicas/{id}/",
    "/replicas/{id}/{*rest}",
];

/// The relocation routes, merged into the node's router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/migrations/pending", get(pending))
        .route("/api/v1/migrations/pending/{id}/approve", post(approve))
        .route("/api/v1/migrations/pending/{id}/reject", post(reject))
        .route("/api/v1/migrations/events", get(events))
        .route("/api/v1/migrations/events/{id}", get(event))
        .route("/api/v1/migrations/pins", get(pins).post(set_pin))
        .route("/api/v1/replicas", get(replicas))
        .route("/api/v1/replicas/{view}", axum::routing::delete(delete_replica))
        .route("/replicas/{id}", get(crate::relocation::serve::serve_replica))
        .route("/replicas/{id}/", get(crate::relocation::serve::serve_replica))
        .route("/replicas/{id}/{*rest}", get(crate::relocation::serve::serve_replica))
}

fn relocation(s: &AppState) -> Result<&Relocation, Problem> {
    s.relocation.as_ref().ok_or_else(|| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "relocation-off",
            "Relocation is off",
            "this node runs no migration manager",
        )
    })
}

fn id_param(raw: &str) -> Result<u64, Problem> {
    raw.parse().map_err(|_| Problem::bad_parameter("id", format!("must be a number, got {raw:?}")))
}

fn relocation_problem(e: RelocationError) -> Problem {
    match e {
        RelocationError::Escalation(EscalationError::NotFound(_)) => {
            Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found", e.to_string())
        }
        RelocationError::Escalation(EscalationError::Expired { .. }) => {
            Problem::new(StatusCode::GONE, "expired", "Expired", e.to_string())
        }
        RelocationError::Disabled => {
            Problem::new(StatusCode::CONFLICT, "relocation-off", "Relocation is off", e.to_string())
        }
        RelocationError::Persist(_) => {
            Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "persist-failed", "Not persisted", e.to_string())
        }
        RelocationError::NoReplica(_) => Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found", e.to_string()),
        RelocationError::Busy(_) => Problem::new(StatusCode::CONFLICT, "busy", "Busy", e.to_string()),
        RelocationError::Deregister(_) => {
            Problem::new(StatusCode::BAD_GATEWAY, "deregister-failed", "Not deregistered", e.to_string())
        }
    }
}

async fn pending(State(s): State<AppState>, uri: OriginalUri) -> Result<Response, Problem> {
    let r = relocation(&s).map_err(|p| p.at(uri.path()))?;
    Ok(json_response(StatusCode::OK, &json!({ "items": r.pending() })))
}

async fn approve(State(s): State<AppState>, uri: OriginalUri, Path(id): Path<String>) -> Result<Response, Problem> {
    let path = uri.path();
    let r = relocation(&s).map_err(|p| p.at(path))?;
    let id = id_param(&id).map_err(|p| p.at(path))?;
    let plan = r.approve(id).await.map_err(|e| relocation_problem(e).at(path))?;
    tracing::info!(id, view = %plan.view, "migration approved");
    Ok(json_response(StatusCode::ACCEPTED, &json!({ "id": id, "status": "approved", "plan": plan })))
}

/// `{"reason": "…"}`, optional.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RejectBody {
    #[serde(default)]
    reason: Option<String>,
}

async fn reject(
    State(s): State<AppState>,
    uri: OriginalUri,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let path = uri.path();
    let r = relocation(&s).map_err(|p| p.at(path))?;
    let id = id_param(&id).map_err(|p| p.at(path))?;
    let has_body = headers.get(axum::http::header::CONTENT_LENGTH).is_some_and(|v| v != "0")
        || headers.contains_key(axum::http::header::TRANSFER_ENCODING);
    let request: RejectBody = if has_body {
        crate::sdd_api::read_typed(&s, &headers, body, "{\"reason\": \"…\"}").await.map_err(|p| p.at(path))?
    } else {
        RejectBody::default()
    };
    let reason = request.reason.unwrap_or_else(|| "rejected by an operator".into());
    let rejected = r.reject(id, &reason).await.map_err(|e| relocation_problem(e).at(path))?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "id": id, "status": "rejected", "reason": reason, "plan": rejected.plan }),
    ))
}

async fn events(State(s): State<AppState>, uri: OriginalUri, RawQuery(q): RawQuery) -> Result<Response, Problem> {
    let path = uri.path();
    let r = relocation(&s).map_err(|p| p.at(path))?;
    let mut params = Params::parse(q.as_deref()).map_err(|p| p.at(path))?;
    let after = match params.take("after") {
        None => None,
        Some(a) => Some(
            a.parse::<u64>()
                .map_err(|_| Problem::bad_parameter("after", format!("must be an event id, got {a:?}")).at(path))?,
        ),
    };
    let view = match params.take("view") {
        None => None,
        Some(v) => Some(Urn::parse(&v).map_err(|e| Problem::bad_parameter("view", e).at(path))?),
    };
    params.finish().map_err(|p| p.at(path))?;
    let items: Vec<_> =
        r.events(after).iter().filter(|e| view.as_ref().is_none_or(|v| &e.view == v)).map(event_json).collect();
    Ok(json_response(StatusCode::OK, &json!({ "items": items })))
}

async fn event(State(s): State<AppState>, uri: OriginalUri, Path(id): Path<String>) -> Result<Response, Problem> {
    let path = uri.path();
    let r = relocation(&s).map_err(|p| p.at(path))?;
    let id = id_param(&id).map_err(|p| p.at(path))?;
    let Some((event, related)) = r.event(id) else {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            format!("no migration event {id} (events are kept up to migration.max_events)"),
        )
        .at(path));
    };
    let related: Vec<_> = related.iter().map(event_json).collect();
    Ok(json_response(StatusCode::OK, &json!({ "event": event_json(&event), "consideration": related })))
}

/// An event with its one-sentence `summary`.
fn event_json(e: &MigrationEvent) -> serde_json::Value {
    let mut v = serde_json::to_value(e).unwrap_or_default();
    if let Some(m) = v.as_object_mut() {
        m.insert("summary".into(), json!(e.kind.summary()));
    }
    v
}

async fn pins(State(s): State<AppState>, uri: OriginalUri) -> Result<Response, Problem> {
    let r = relocation(&s).map_err(|p| p.at(uri.path()))?;
    let items: Vec<_> = r.pins().into_iter().map(|(view, pin)| json!({ "view": view, "pin": pin })).collect();
    Ok(json_response(StatusCode::OK, &json!({ "items": items })))
}

/// `{"view": URN, "pin": "never" | "keepAt" | "none", "site": URN}`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PinBody {
    view: String,
    pin: String,
    #[serde(default)]
    site: Option<String>,
}

async fn set_pin(
    State(s): State<AppState>,
    uri: OriginalUri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let path = uri.path();
    let r = relocation(&s).map_err(|p| p.at(path))?;
    let request: PinBody = crate::sdd_api::read_typed(
        &s,
        &headers,
        body,
        "{\"view\": \"urn:…\", \"pin\": \"never\" | \"keepAt\" | \"none\", \"site\": \"urn:…\"}",
    )
    .await
    .map_err(|p| p.at(path))?;
    let view = Urn::parse(&request.view).map_err(|e| Problem::bad_parameter("view", e).at(path))?;
    let pin = match (request.pin.as_str(), request.site) {
        ("never", None) => Some(Pin::Never),
        ("keepAt", Some(site)) => {
            Some(Pin::KeepAt(Urn::parse(&site).map_err(|e| Problem::bad_parameter("site", e).at(path))?))
        }
        ("none", None) => None,
        ("keepAt", None) => {
            return Err(Problem::bad_parameter("site", "a keepAt pin names the site to keep the view at").at(path));
        }
        ("never" | "none", Some(_)) => {
            return Err(Problem::bad_parameter("site", "only a keepAt pin names a site").at(path));
        }
        (other, _) => {
            return Err(Problem::bad_parameter("pin", format!("must be never, keepAt or none, got {other:?}")).at(path));
        }
    };
    let previous = r.pin(view.clone(), pin.clone()).await.map_err(|e| relocation_problem(e).at(path))?;
    tracing::info!(%view, pin = ?pin, "migration pin set");
    Ok(json_response(StatusCode::OK, &json!({ "view": view, "pin": pin, "previous": previous })))
}

/// `DELETE /api/v1/replicas/{view}`: deregisters the replica of a view and deletes its
/// data after the grace period (202 with the record, now `retiringAtUnixMs`).
async fn delete_replica(
    State(s): State<AppState>,
    uri: OriginalUri,
    Path(view): Path<String>,
) -> Result<Response, Problem> {
    let path = uri.path();
    let r = relocation(&s).map_err(|p| p.at(path))?;
    let view = Urn::parse(&view).map_err(|e| Problem::bad_parameter("view", e.to_string()).at(path))?;
    let record = r.remove(&view).await.map_err(|e| relocation_problem(e).at(path))?;
    Ok(json_response(StatusCode::ACCEPTED, &json!(record)))
}

async fn replicas(State(s): State<AppState>, uri: OriginalUri) -> Result<Response, Problem> {
    let r = relocation(&s).map_err(|p| p.at(uri.path()))?;
    Ok(json_response(StatusCode::OK, &json!({ "items": r.replicas() })))
}
