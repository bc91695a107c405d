//! `/api/v1/sdd/*`: the paper's SDD API — activate usage analysis triggers with a
//! confidence interval, deactivate, read the per-view analysis and the event log.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{OriginalUri, RawQuery, State};
use axum::http::uri::PathAndQuery;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};

use civitas_model::{Observation, Urn, ValidationErrors};
use civitas_placement::{ActivationRequest, SddError};

use crate::api::{AppState, Params, json_response, read_json};
use crate::problem::Problem;

/// The SDD routes, merged into the node's router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/sdd/activate", post(activate))
        .route("/api/v1/sdd/deactivate", post(deactivate))
        .route("/api/v1/sdd/status", get(status))
        .route("/api/v1/sdd/events", get(events))
        .route("/api/v1/sdd/observations", post(observations))
}

/// One observation as a stand-alone proxy (`civitas proxy`) reports it to its node.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObservationRecord {
    /// Arrival time, milliseconds since the Unix epoch.
    pub time_unix_ms: u64,
    /// Unit URN.
    pub unit: String,
    /// View URN.
    pub view: String,
    /// The resource of the view requested, relative to its link (`/` for the view's own
    /// resource, `/district/3?year=2017` below it); optional, for proxies that predate it.
    /// Must start with `/`, have no `..` segment and be at most [`MAX_VARIANT_LEN`] bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Instance URN, when one was chosen.
    pub instance: Option<String>,
    /// Client site URN, when known.
    pub client_site: Option<String>,
    /// Client IP address.
    pub client_addr: std::net::IpAddr,
    /// HTTP status answered.
    pub status: u16,
    /// Request body bytes.
    pub bytes_in: u64,
    /// Response body bytes.
    pub bytes_out: u64,
    /// Time to first byte, in microseconds.
    pub ttfb_us: u64,
    /// Total time, in microseconds.
    pub total_us: u64,
}

impl ObservationRecord {
    /// The wire form of an observation.
    pub fn from_observation(o: &Observation) -> ObservationRecord {
        let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        ObservationRecord {
            time_unix_ms: o.time.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0),
            unit: o.unit.to_string(),
            view: o.view.to_string(),
            variant: o.variant.as_ref().map(|v| v.as_str().to_owned()),
            instance: o.instance.as_ref().map(|i| i.to_string()),
            client_site: o.client_site.as_ref().map(|s| s.to_string()),
            client_addr: o.client_addr,
            status: o.status,
            bytes_in: o.bytes_in,
            bytes_out: o.bytes_out,
            ttfb_us: micros(o.time_to_first_byte),
            total_us: micros(o.total_time),
        }
    }

    /// Back to an observation; the error names the offending field.
    pub fn into_observation(self) -> Result<Observation, (String, String)> {
        let urn = |field: &str, s: &str| Urn::parse(s).map(Arc::new).map_err(|e| (field.to_string(), e));
        Ok(Observation {
            time: UNIX_EPOCH + Duration::from_millis(self.time_unix_ms),
            unit: urn("unit", &self.unit)?,
            view: urn("view", &self.view)?,
            variant: self.variant.map(parse_variant).transpose().map_err(|e| ("variant".to_string(), e))?,
            instance: self.instance.as_deref().map(|i| urn("instance", i)).transpose()?,
            client_site: self.client_site.as_deref().map(|c| urn("clientSite", c)).transpose()?,
            client_addr: self.client_addr,
            status: self.status,
            bytes_in: self.bytes_in,
            bytes_out: self.bytes_out,
            time_to_first_byte: Duration::from_micros(self.ttfb_us),
            total_time: Duration::from_micros(self.total_us),
        })
    }
}

/// Longest [`ObservationRecord::variant`] accepted, in bytes.
pub const MAX_VARIANT_LEN: usize = 4096;

/// A reported variant: starts with `/`, no `..` segment (also percent-encoded), a valid
/// path and query.
fn parse_variant(v: String) -> Result<PathAndQuery, String> {
    if !v.starts_with('/') {
        return Err(format!("a variant starts with `/`, found {v:?}"));
    }
    if v.len() > MAX_VARIANT_LEN {
        return Err(format!("a variant is at most {MAX_VARIANT_LEN} bytes, found {}", v.len()));
    }
    let path = v.split_once('?').map_or(v.as_str(), |(p, _)| p);
    // The same rule the data plane applies to the path below a view.
    if civitas_dataplane::has_dot_segment(path) {
        return Err(format!("a variant has no `..` segment, found {v:?}"));
    }
    PathAndQuery::try_from(v).map_err(|e| format!("not a valid path and query: {e}"))
}

/// Most observations one report may carry.
const MAX_OBSERVATIONS_PER_REPORT: usize = 10_000;

async fn observations(
    State(s): State<AppState>,
    uri: OriginalUri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let path = uri.path();
    let records: Vec<ObservationRecord> =
        read_typed(&s, &headers, body, "an array of observations").await.map_err(|p| p.at(path))?;
    if records.len() > MAX_OBSERVATIONS_PER_REPORT {
        return Err(Problem::invalid(ValidationErrors::single(
            "",
            format!("at most {MAX_OBSERVATIONS_PER_REPORT} observations per report, got {}", records.len()),
        ))
        .at(path));
    }
    // Validate all before recording any: a bad report changes nothing.
    let mut parsed = Vec::with_capacity(records.len());
    let mut errors = Vec::new();
    for (i, r) in records.into_iter().enumerate() {
        match r.into_observation() {
            Ok(o) => parsed.push(o),
            Err((field, detail)) => errors.push(civitas_model::FieldError { pointer: format!("/{i}/{field}"), detail }),
        }
    }
    if !errors.is_empty() {
        return Err(Problem::invalid(ValidationErrors(errors)).at(path));
    }
    let now = SystemTime::now();
    for o in &parsed {
        s.analyzer.observe(o, now);
    }
    Ok(json_response(StatusCode::OK, &serde_json::json!({ "accepted": parsed.len() })))
}

async fn activate(
    State(s): State<AppState>,
    uri: OriginalUri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let path = uri.path();
    let request: ActivationRequest =
        read_typed(&s, &headers, body, "{\"triggers\": [\"response_time.p50 > 3s\"], \"confidence\": \"0.8..1.0\"}")
            .await
            .map_err(|p| p.at(path))?;
    let status = s.analyzer.activate(&request, SystemTime::now()).map_err(|e| sdd_problem(e).at(path))?;
    // The data plane's own optimisation (the validation cache) is part of the framework
    // being active; inactive, the node forwards as a plain proxy.
    if let Some(d) = &s.dataplane {
        d.set_revalidation(true);
    }
    tracing::info!(triggers = ?request.triggers, confidence = %request.confidence, "SDD activated");
    Ok(json_response(StatusCode::OK, &status))
}

async fn deactivate(State(s): State<AppState>) -> Response {
    tracing::info!("SDD deactivated");
    if let Some(d) = &s.dataplane {
        d.set_revalidation(false);
    }
    json_response(StatusCode::OK, &s.analyzer.deactivate(SystemTime::now()))
}

async fn status(State(s): State<AppState>) -> Response {
    json_response(StatusCode::OK, &s.analyzer.status(SystemTime::now()))
}

async fn events(State(s): State<AppState>, uri: OriginalUri, RawQuery(q): RawQuery) -> Result<Response, Problem> {
    let path = uri.path();
    let inner = || {
        let mut params = Params::parse(q.as_deref())?;
        let after = match params.take("after") {
            None => None,
            Some(a) => Some(
                a.parse::<u64>()
                    .map_err(|_| Problem::bad_parameter("after", format!("must be an event id, got {a:?}")))?,
            ),
        };
        params.finish()?;
        Ok::<_, Problem>(after)
    };
    let after = inner().map_err(|p| p.at(path))?;
    Ok(json_response(StatusCode::OK, &serde_json::json!({ "events": s.analyzer.events(after) })))
}

/// Reads a JSON body (size and media type checked) into `T`; a body of the wrong shape is
/// a 422 that says what was `expected`.
pub(crate) async fn read_typed<T: serde::de::DeserializeOwned>(
    s: &AppState,
    headers: &HeaderMap,
    body: Body,
    expected: &str,
) -> Result<T, Problem> {
    let value = read_json(headers, body, s.config.http.body_limit_bytes).await?;
    serde_json::from_value(value)
        .map_err(|e| Problem::invalid(ValidationErrors::single("", format!("expected {expected}: {e}"))))
}

fn sdd_problem(e: SddError) -> Problem {
    let detail = e.to_string();
    let pointer = match &e {
        SddError::InvalidTrigger { index, .. } => format!("/triggers/{index}"),
        SddError::InvalidConfidence(_) => "/confidence".to_string(),
        SddError::NoTriggers => "/triggers".to_string(),
    };
    Problem::invalid(ValidationErrors::single(pointer, detail))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(variant: Option<&str>) -> ObservationRecord {
        serde_json::from_value(serde_json::json!({
            "timeUnixMs": 1000, "unit": "urn:urbem:buildings", "view": "urn:urbem:buildings:blocks", "instance": null,
            "clientSite": null, "clientAddr": "127.0.0.1", "status": 200, "bytesIn": 0, "bytesOut": 5,
            "ttfbUs": 10, "totalUs": 20, "variant": variant,
        }))
        .unwrap()
    }

    #[test]
    fn variants_travel_and_are_validated() {
        let o = record(Some("/district/3?year=2017")).into_observation().unwrap();
        assert_eq!(o.variant.as_ref().map(PathAndQuery::as_str), Some("/district/3?year=2017"));
        let back = serde_json::to_value(ObservationRecord::from_observation(&o)).unwrap();
        assert_eq!(back["variant"], "/district/3?year=2017");
        // Optional: records from proxies that predate it still parse, and none is sent back.
        let o = record(None).into_observation().unwrap();
        assert_eq!(o.variant, None);
        assert!(serde_json::to_value(ObservationRecord::from_observation(&o)).unwrap().get("variant").is_none());
        for bad in ["district/3", "/a/../b", "/a/%2E%2e/b", "/..", "/a b"] {
            let (field, detail) = record(Some(bad)).into_observation().unwrap_err();
            assert_eq!(field, "variant", "{bad}: {detail}");
        }
        assert!(record(Some("/a?x=..")).into_observation().is_ok(), "`..` in the query is no segment");
        assert!(record(Some(&format!("/{}", "a".repeat(MAX_VARIANT_LEN)))).into_observation().is_err());
    }
}
