//! The one place where errors become HTTP answers: `application/problem+json` (RFC 9457).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

use civitas_catalog::CatalogError;
use civitas_model::{FieldError, ValidationErrors};

/// Base of every problem `type` URI.
pub const PROBLEM_BASE: &str = "https://civitas.city/problems/";

/// An error answer (boxed: it travels through every handler's `Result`).
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct Problem(Box<ProblemBody>);

impl std::ops::Deref for Problem {
    type Target = ProblemBody;
    fn deref(&self) -> &ProblemBody {
        &self.0
    }
}

impl std::ops::DerefMut for Problem {
    fn deref_mut(&mut self) -> &mut ProblemBody {
        &mut self.0
    }
}

/// The fields of a problem document.
#[derive(Debug, Clone, Serialize)]
pub struct ProblemBody {
    /// `PROBLEM_BASE` + slug.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// Short, stable summary.
    pub title: &'static str,
    /// HTTP status.
    pub status: u16,
    /// What went wrong in this case.
    pub detail: String,
    /// The request path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Field-level errors.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ProblemField>,
    /// Documents that still refer to one being deleted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub referrers: Vec<Value>,
    /// Further members particular to one kind of problem (e.g. a witness's `witnessSize`).
    #[serde(flatten)]
    pub extensions: serde_json::Map<String, Value>,
}

/// One offending field: a body pointer or a path/query parameter.
#[derive(Debug, Clone, Serialize)]
pub struct ProblemField {
    /// RFC 6901 pointer into the request body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
    /// Name of the path or query parameter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
    /// What is wrong with it.
    pub detail: String,
}

impl Problem {
    /// A problem without field errors.
    pub fn new(status: StatusCode, slug: &str, title: &'static str, detail: impl Into<String>) -> Problem {
        Problem(Box::new(ProblemBody {
            type_uri: format!("{PROBLEM_BASE}{slug}"),
            title,
            status: status.as_u16(),
            detail: detail.into(),
            instance: None,
            errors: Vec::new(),
            referrers: Vec::new(),
            extensions: serde_json::Map::new(),
        }))
    }

    /// 400 for a bad path or query parameter.
    pub fn bad_parameter(parameter: &str, detail: impl Into<String>) -> Problem {
        let detail = detail.into();
        let mut p = Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-parameter",
            "Bad parameter",
            format!("invalid parameter `{parameter}`"),
        );
        p.errors.push(ProblemField { pointer: None, parameter: Some(parameter.into()), detail });
        p
    }

    /// 404 for a route that does not exist.
    pub fn no_route(path: &str) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found", format!("no route {path}"))
    }

    /// 422 with every validation error.
    pub fn invalid(errors: ValidationErrors) -> Problem {
        let mut p =
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-document", "Invalid document", errors.to_string());
        p.detail = {
            let n = errors.0.len();
            format!("{n} validation error{}; nothing was stored", if n == 1 { "" } else { "s" })
        };
        p.errors = errors.0.into_iter().map(field).collect();
        p
    }

    /// Adds a member particular to this problem (`witnessSize`…).
    pub fn with(mut self, name: &str, value: Value) -> Problem {
        self.extensions.insert(name.to_string(), value);
        self
    }

    /// Sets the request path.
    pub fn at(mut self, path: &str) -> Problem {
        self.instance = Some(path.to_string());
        self
    }
}

fn field(e: FieldError) -> ProblemField {
    ProblemField { pointer: Some(e.pointer), parameter: None, detail: e.detail }
}

impl From<CatalogError> for Problem {
    fn from(e: CatalogError) -> Problem {
        let detail = e.to_string();
        match e {
            CatalogError::Invalid(errors) => Problem::invalid(errors),
            CatalogError::NotFound { .. } => Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail),
            CatalogError::VersionConflict { pointer, detail: what, .. } => {
                let mut p = Problem::new(StatusCode::CONFLICT, "version-conflict", "Version conflict", detail);
                p.errors.push(ProblemField { pointer: Some(pointer), parameter: None, detail: what });
                p
            }
            CatalogError::Referenced { referrers, .. } => {
                let mut p = Problem::new(StatusCode::CONFLICT, "still-referenced", "Still referenced", detail);
                p.referrers = referrers
                    .into_iter()
                    .map(|(k, n)| serde_json::json!({"type": k.type_name(), "name": n.as_str()}))
                    .collect();
                p
            }
            CatalogError::Contention(_) => {
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, "contention", "Too many concurrent changes", detail)
            }
            CatalogError::Compacted { .. } => Problem::new(StatusCode::GONE, "compacted", "History compacted", detail),
            CatalogError::Store(_) | CatalogError::Corrupt { .. } => {
                tracing::error!(error = %detail, "catalog failure");
                Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error", detail)
            }
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut resp = (status, body).into_response();
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        resp
    }
}
