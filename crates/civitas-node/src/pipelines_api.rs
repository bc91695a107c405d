//! Pipelines in the node: the full check of every `Pipeline` document before it is
//! applied, and `/api/v1/pipelines/{name}/plan` — plan a stored pipeline on this node's
//! catalog (its sites, site links and data instances) and keep the plan.
//!
//! Plans are kept as JSON files in `<data_dir>/pipeline-plans/`, one per pipeline, each
//! carrying the pipeline version it was computed for (`pipelineVersion`). They are not
//! catalog documents: a plan is derived from the catalog, not a description of the
//! city, so it is not federated, versioned or part of `apply`. Capacity reserved by the
//! stored plans of *other* pipelines is subtracted before planning.

use std::collections::BTreeMap;
use std::path::{Path as FsPath, PathBuf};

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{OriginalUri, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::post;
use serde_json::Value;

use civitas_catalog::{Page, SearchQuery};
use civitas_model::{Document, FieldError, Kind, Urn, ValidationErrors};
use civitas_pipeline::schedule::{Continuum, Plan, PlanOptions};
use civitas_pipeline::{Diagnostics, Environment, Location, Severity};

use crate::api::{AppState, Params, json_response, read_json};
use crate::problem::Problem;

/// Serialises planning in this process (see [`plan`]).
static PLANNING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Route templates, for the metrics labels.
pub const ROUTES: &[&str] = &["/api/v1/pipelines/{name}/plan"];

/// The pipeline routes, merged into the node's router.
pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/pipelines/{name}/plan", post(plan).get(stored_plan))
}

/// Checks every `Pipeline` of a batch with `civitas-pipeline` (the model only checks its
/// header): a pipeline with an error refuses the whole batch with a 422 listing every
/// diagnostic at its JSON pointer (`/<index>/stages/1/inputs/0` when `indexed`).
pub(crate) fn check_pipelines(docs: &[Document], indexed: bool) -> Result<(), Problem> {
    let mut errors = Vec::new();
    let mut all = Vec::new();
    for (i, doc) in docs.iter().enumerate() {
        let Document::Pipeline(_) = doc else { continue };
        let prefix = if indexed { format!("/{i}") } else { String::new() };
        if let Err(d) = civitas_pipeline::from_json(&checkable(doc), doc.name().as_str()) {
            errors.extend(field_errors(&d, &prefix));
            all.push(d);
        }
    }
    if errors.is_empty() {
        return Ok(());
    }
    let diagnostics = serde_json::to_value(&all).unwrap_or(Value::Null);
    Err(Problem::invalid(ValidationErrors(errors)).with("diagnostics", diagnostics))
}

/// The document as `civitas_pipeline::from_json` reads it: the header dates the model
/// accepts on every document are not part of a pipeline.
fn checkable(doc: &Document) -> Value {
    let mut value = doc.encode();
    if let Value::Object(m) = &mut value {
        m.shift_remove("creationDate");
        m.shift_remove("lastUpdate");
    }
    value
}

/// Error diagnostics as field errors: `E0207: message (hint)` at the diagnostic's pointer.
fn field_errors(d: &Diagnostics, prefix: &str) -> Vec<FieldError> {
    d.items
        .iter()
        .filter(|item| item.severity == Severity::Error)
        .map(|item| {
            let pointer = match &item.location {
                Location::Pointer { pointer, .. } => format!("{prefix}{pointer}"),
                Location::Source { .. } => prefix.to_string(),
            };
            let mut detail = format!("{}: {}", item.code, item.message);
            if let Some(h) = &item.hint {
                detail.push_str(&format!(" (hint: {h})"));
            }
            FieldError { pointer, detail }
        })
        .collect()
}

/// What `POST …/plan` may carry: the environment's parameter values.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanRequest {
    #[serde(default)]
    parameters: BTreeMap<String, String>,
}

/// `POST /api/v1/pipelines/{name}/plan[?env=ENV]`, optional body `{"parameters": {…}}`:
/// plans the stored pipeline on this node's catalog, stores the plan, returns it (201).
async fn plan(
    State(s): State<AppState>,
    uri: OriginalUri,
    name: Result<Path<String>, PathRejection>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let path = uri.path().to_string();
    let inner = async {
        let name = path_name(name)?;
        let mut params = Params::parse(q.as_deref())?;
        let env = params.take("env");
        params.finish()?;
        let request: PlanRequest = if headers.contains_key(header::CONTENT_TYPE) {
            let value = read_json(&headers, body, s.config.http.body_limit_bytes).await?;
            serde_json::from_value(value).map_err(|e| {
                Problem::invalid(ValidationErrors::single("", format!("expected {{\"parameters\": {{…}}}}: {e}")))
            })?
        } else {
            PlanRequest::default()
        };
        let stored = s.catalog.get(Kind::Pipeline, &name, None).await?;
        let doc = stored.document()?;
        let text = serde_json::to_string(&checkable(&doc)).unwrap_or_default();
        let checked =
            civitas_pipeline::check_sources(&[(format!("{name}.json"), text)]).map_err(diagnostics_problem)?;
        let environment = (env.is_some() || !request.parameters.is_empty())
            .then(|| Environment { name: env.clone().unwrap_or_default(), values: request.parameters });
        let options = PlanOptions { environment: env, ..PlanOptions::default() };

        // One plan at a time: two plans computed side by side would each see the other's
        // capacity as free. Waiting is bounded by the planning of the one before.
        let _planning = PLANNING.lock().await;
        let dir = plans_dir(&s);
        let docs = continuum_documents(&s).await?;
        let others = read_plans(&dir, &name).await?;
        // Building the continuum (all-pairs paths) and solving are CPU-bound.
        let plan = tokio::task::spawn_blocking(move || {
            let mut continuum = Continuum::from_documents(&docs).map_err(|e| {
                Problem::new(StatusCode::CONFLICT, "inconsistent-catalog", "Inconsistent catalog", e.to_string())
            })?;
            for other in &others {
                continuum.reserve(other);
            }
            let pipeline = checked.pipelines.first().ok_or_else(|| {
                Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Planning failed", "no pipeline decoded")
            })?;
            civitas_pipeline::plan_checked(&checked, pipeline, environment.as_ref(), &continuum, &options)
                .map_err(diagnostics_problem)
        })
        .await
        .map_err(|e| Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Planning failed", e.to_string()))??;
        write_plan(&dir, &name, &plan).await?;
        Ok(json_response(StatusCode::CREATED, &plan))
    };
    inner.await.map_err(|p: Problem| p.at(&path))
}

/// `GET /api/v1/pipelines/{name}/plan`: the stored plan (404 when none was computed).
async fn stored_plan(
    State(s): State<AppState>,
    uri: OriginalUri,
    name: Result<Path<String>, PathRejection>,
    RawQuery(q): RawQuery,
) -> Result<Response, Problem> {
    let path = uri.path().to_string();
    let inner = async {
        let name = path_name(name)?;
        Params::parse(q.as_deref())?.finish()?;
        let file = plan_file(&plans_dir(&s), &name);
        match tokio::fs::read(&file).await {
            Ok(bytes) => {
                let plan: Value = serde_json::from_slice(&bytes).map_err(|e| storage_problem(&file, e))?;
                Ok(json_response(StatusCode::OK, &plan))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Problem::new(
                StatusCode::NOT_FOUND,
                "not-found",
                "Not found",
                format!("no plan is stored for pipeline {name}: POST to this URL computes one"),
            )),
            Err(e) => Err(storage_problem(&file, e)),
        }
    };
    inner.await.map_err(|p: Problem| p.at(&path))
}

/// The `{name}` of the route as a URN; a bad one is a problem document like any other.
fn path_name(name: Result<Path<String>, PathRejection>) -> Result<Urn, Problem> {
    let Path(name) = name.map_err(|e| Problem::bad_parameter("path", e.body_text()))?;
    Urn::parse(&name).map_err(|e| Problem::bad_parameter("name", e))
}

/// 422 with the checker's or the scheduler's diagnostics (E0300 names the requirement).
fn diagnostics_problem(d: Diagnostics) -> Problem {
    let errors = field_errors(&d, "");
    let n = errors.len();
    let mut p = Problem::invalid(ValidationErrors(errors));
    p.title = "Pipeline cannot be planned";
    p.type_uri = format!("{}pipeline-not-planned", crate::problem::PROBLEM_BASE);
    p.detail =
        format!("{n} problem{} with the pipeline on this catalog; no plan was stored", if n == 1 { "" } else { "s" });
    p.with("diagnostics", serde_json::to_value(&d).unwrap_or(Value::Null))
}

fn storage_problem(file: &FsPath, e: impl std::fmt::Display) -> Problem {
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "persist-failed",
        "Plan storage failed",
        format!("{}: {e}", file.display()),
    )
}

fn plans_dir(s: &AppState) -> PathBuf {
    s.config.storage.data_dir.join("pipeline-plans")
}

fn plan_file(dir: &FsPath, name: &Urn) -> PathBuf {
    // URNs are safe as path segments (no `/`, no `..`): see `civitas_model::Urn`.
    dir.join(format!("{}.json", name.as_str()))
}

/// What the continuum is built from: every site, site link and data instance of this node's catalog.
async fn continuum_documents(s: &AppState) -> Result<Vec<Document>, Problem> {
    let mut docs = Vec::new();
    for kind in [Kind::Site, Kind::SiteLink, Kind::DataInstance] {
        let query = SearchQuery { kind: Some(kind), ..SearchQuery::default() };
        let mut page = Page { after: None, limit: Some(civitas_catalog::MAX_PAGE) };
        loop {
            let found = s.catalog.search(&query, &page).await?;
            for item in &found.items {
                docs.push(item.document()?);
            }
            match found.next {
                Some(next) => page.after = Some(next),
                None => break,
            }
        }
    }
    Ok(docs)
}

/// The stored plans of every pipeline but `except`.
async fn read_plans(dir: &FsPath, except: &Urn) -> Result<Vec<Plan>, Problem> {
    let dir = dir.to_path_buf();
    let skip = plan_file(&dir, except);
    tokio::task::spawn_blocking(move || {
        let mut plans = Vec::new();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(plans),
            Err(e) => return Err(storage_problem(&dir, e)),
        };
        for entry in entries.flatten() {
            let p = entry.path();
            if p == skip || p.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let bytes = std::fs::read(&p).map_err(|e| storage_problem(&p, e))?;
            // A plan this version cannot read (or a stray file) reserves nothing.
            if let Ok(plan) = serde_json::from_slice::<Plan>(&bytes) {
                plans.push(plan);
            }
        }
        Ok(plans)
    })
    .await
    .map_err(|e| storage_problem(FsPath::new("pipeline-plans"), e))?
}

/// Writes a plan atomically (temporary file, fsync, rename) on a blocking thread.
async fn write_plan(dir: &FsPath, name: &Urn, plan: &Plan) -> Result<(), Problem> {
    let dir = dir.to_path_buf();
    let file = plan_file(&dir, name);
    let bytes = serde_json::to_vec_pretty(plan).map_err(|e| storage_problem(&file, e))?;
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        std::fs::create_dir_all(&dir).map_err(|e| storage_problem(&dir, e))?;
        let tmp = file.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp).map_err(|e| storage_problem(&tmp, e))?;
        f.write_all(&bytes).and_then(|()| f.sync_all()).map_err(|e| storage_problem(&tmp, e))?;
        std::fs::rename(&tmp, &file).map_err(|e| storage_problem(&file, e))
    })
    .await
    .map_err(|e| storage_problem(FsPath::new("pipeline-plans"), e))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_invalid_pipeline_is_refused_with_pointers_into_the_batch() {
        let good = json!({"@type": "Site", "name": "urn:site:a", "version": "1", "tier": "edge", "region": "r"});
        let bad = json!({"@type": "Pipeline", "name": "urn:pipeline:p", "version": "1", "stages": [
            {"name": "a", "run": {"kind": "builtin", "name": "x"}, "inputs": [{"kind": "stage", "stage": "nope"}]}
        ]});
        let docs = Document::decode_many(&json!([good, bad]), None).expect("the model accepts the header");
        let p = check_pipelines(&docs, true).expect_err("the checker refuses an unknown stage");
        assert_eq!(p.status, 422);
        assert!(p.errors.iter().all(|e| e.pointer.as_deref().is_some_and(|ptr| ptr.starts_with("/1"))), "{p:?}");
        assert!(p.extensions.contains_key("diagnostics"));
    }

    #[test]
    fn the_example_of_docs_model_md_passes_the_checker() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/model.md")).unwrap();
        let section = &text[text.find("## Pipeline").expect("a Pipeline section")..];
        let start = section.find("```json\n").expect("a JSON example") + "```json\n".len();
        let body = &section[start..start + section[start..].find("```").expect("closed")];
        let value: Value = serde_json::from_str(body).expect("JSON");
        let docs = Document::decode_many(&value, None).expect("the model accepts it");
        check_pipelines(&docs, false).unwrap_or_else(|p| panic!("{p:?}"));
    }
}
