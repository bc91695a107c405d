//! The replica server: `GET /replicas/{id}/{variant…}` answers a stored resource with the
//! origin's status, `Content-Type`, `ETag` and `Last-Modified`, streaming its body from
//! disk. A replica's instance endpoint is `{node.url}/replicas/{id}` with
//! `viewRelativePaths`, so the data plane asks for `endpoint + variant`.

use axum::body::Body;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use civitas_replica::{ReplicaError, ReplicaId, ResourceKey};

use crate::api::AppState;
use crate::problem::Problem;

/// `GET|HEAD /replicas/{id}` and `/replicas/{id}/{*rest}`.
pub async fn serve_replica(
    State(state): State<AppState>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    Path(params): Path<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let Some(relocation) = state.relocation.as_ref() else {
        return Err(Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found", "this node holds no replicas"));
    };
    let id = params.iter().find(|(k, _)| k == "id").map(|(_, v)| v.as_str()).unwrap_or_default();
    let rest = params.iter().find(|(k, _)| k == "rest").map(|(_, v)| v.as_str()).unwrap_or("");
    let id = ReplicaId::new(id).map_err(|e| Problem::bad_parameter("id", e.to_string()))?;
    if state.security.is_some() {
        // The replica's view is read like the view itself: the same caller, the same rules.
        let Some((unit, view)) = relocation.replica_view(id.as_str()) else {
            return Err(Problem::new(
                StatusCode::NOT_FOUND,
                "not-found",
                "Not found",
                format!("no replica {}", id.as_str()),
            ));
        };
        if let Err(resp) = crate::security_api::replica_read(&state, &headers, &unit, &view, uri.path()).await {
            return Ok(resp);
        }
    }
    if let Some((unit, view, views)) = relocation.sql_replica(id.as_str()) {
        // A SQL replica: the view's own statement on this city's replica database. Page
        // links name the view's path, which is where clients asked for it.
        let path = format!("/data/{unit}/{}", view.name.local_name());
        let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
        return Ok(crate::sql_api::respond(&views, &view, &path, uri.query().unwrap_or(""), accept).await);
    }
    // The raw path, so that the variant is the one the data plane asked for byte for byte.
    let prefix = format!("/replicas/{}", id.as_str());
    let raw_rest = uri.path().strip_prefix(&prefix).unwrap_or(rest);
    let raw_rest = raw_rest.strip_prefix('/').map_or(raw_rest, |r| if r.is_empty() { "/" } else { r });
    if civitas_dataplane::has_dot_segment(raw_rest) {
        return Err(Problem::bad_parameter("path", "a `..` segment or a backslash is not allowed"));
    }
    let variant = civitas_dataplane::variant(raw_rest, uri.query())
        .ok_or_else(|| Problem::bad_parameter("path", "not a valid path and query"))?;
    let key = ResourceKey::for_variant(variant.as_str());
    let stored = relocation.store().get(&id, &key).await.map_err(|e| match e {
        ReplicaError::NotComplete { .. } | ReplicaError::UnknownResource { .. } => Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            format!("replica {} holds no resource {}", id.as_str(), variant.as_str()),
        ),
        other => Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "replica-error", "Replica error", other.to_string()),
    })?;
    let not_modified = match (headers.get(header::IF_NONE_MATCH), stored.headers.get(header::ETAG)) {
        (Some(asked), Some(etag)) => asked.to_str().is_ok_and(|a| a.split(',').any(|t| t.trim() == etag)),
        _ => false,
    };
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else if method == Method::HEAD {
        stored.status.into_response()
    } else {
        let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(stored.body, 64 * 1024));
        (stored.status, body).into_response()
    };
    for (name, value) in &stored.headers {
        if not_modified && name == header::CONTENT_LENGTH {
            continue;
        }
        response.headers_mut().insert(name, value.clone());
    }
    // When this resource last matched its origin (ms since the Unix epoch).
    response.headers_mut().insert("x-civitas-validated-at-ms", HeaderValue::from(stored.meta.validated_at_unix_ms));
    Ok(response)
}
