//! The ledger's HTTP API under `/api/v1/ledger` (see `docs/ledger.md`): appends, entries,
//! the signed checkpoint and verifier key, inclusion and consistency proofs, the
//! `c2sp.org/tlog-tiles` read API (prefix `/api/v1/ledger`: `checkpoint`, `tile/…`), and the
//! witness endpoint peers post their checkpoints to.
//!
//! Appends are awaited until their group commit is on disk; reads are short positioned
//! reads; entry bundles and cosigning (an fsync) run on the blocking pool. Errors are
//! `application/problem+json` documents.

use crate::problem::Problem;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use civitas_ledger::{
    Entry, EntryError, Hash, Ledger, LedgerError, NodeKey, NoteSigner, SignedCheckpoint, TilePath, Witness,
    WitnessError,
};

/// Largest request body: an array of entries, or a witness request.
const MAX_BODY_BYTES: usize = 16 << 20;
/// Most entries one `POST /entries` may carry.
const MAX_ENTRIES_PER_REQUEST: usize = 10_000;

/// Everything the ledger handlers share.
struct LedgerApi {
    ledger: Arc<Ledger>,
    signer: NoteSigner,
    verifier_key: String,
    witness: Arc<Witness>,
}

type Shared = Arc<LedgerApi>;

/// The ledger routes, ready to be merged into the node's router (any state type).
///
/// Fails only if the key cannot sign under the ledger's origin (an invalid origin name).
pub fn router<S: Clone + Send + Sync + 'static>(
    ledger: Arc<Ledger>,
    key: Arc<NodeKey>,
    witness: Arc<Witness>,
) -> Router<S> {
    let signer = key.log_signer(ledger.origin()).expect("the ledger's origin was validated when it was opened");
    let verifier_key = signer.verifier().to_string();
    let state: Shared = Arc::new(LedgerApi { ledger, signer, verifier_key, witness });
    Router::new()
        .route("/api/v1/ledger", get(summary))
        .route("/api/v1/ledger/entries", post(append))
        .route("/api/v1/ledger/entries/{index}", get(entry))
        .route("/api/v1/ledger/checkpoint", get(checkpoint))
        .route("/api/v1/ledger/pubkey", get(pubkey))
        .route("/api/v1/ledger/proof/inclusion", get(inclusion_proof))
        .route("/api/v1/ledger/proof/consistency", get(consistency_proof))
        .route("/api/v1/ledger/tile/{*path}", get(tile))
        .route("/api/v1/ledger/witness/cosign", post(cosign))
        .route("/api/v1/ledger/witness/pubkey", get(witness_pubkey))
        .with_state(state)
}

/// Every route of [`router`], for the node's per-route metrics.
pub const ROUTES: &[&str] = &[
    "/api/v1/ledger",
    "/api/v1/ledger/entries",
    "/api/v1/ledger/entries/{index}",
    "/api/v1/ledger/checkpoint",
    "/api/v1/ledger/pubkey",
    "/api/v1/ledger/proof/inclusion",
    "/api/v1/ledger/proof/consistency",
    "/api/v1/ledger/tile/{*path}",
    "/api/v1/ledger/witness/cosign",
    "/api/v1/ledger/witness/pubkey",
];

// ---- problems ----------------------------------------------------------------------------

impl From<LedgerError> for Problem {
    fn from(e: LedgerError) -> Problem {
        let detail = e.to_string();
        match e {
            LedgerError::InvalidEntry(entry) => invalid_entry(&entry, ""),
            LedgerError::NotFound { .. } | LedgerError::TileNotFound { .. } => {
                Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
            }
            LedgerError::InvalidRequest(_) => {
                Problem::new(StatusCode::BAD_REQUEST, "invalid-request", "Invalid request", detail)
            }
            LedgerError::Closed | LedgerError::Failed(_) => {
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, "ledger-unavailable", "Ledger unavailable", detail)
            }
            LedgerError::Corrupt { .. } => {
                Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "ledger-corrupt", "Ledger data damaged", detail)
            }
            _ => Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "ledger-error", "Ledger error", detail),
        }
    }
}

/// A 400 naming the offending member: `pointer_prefix` is `/3` for the fourth entry of an
/// array body.
fn invalid_entry(e: &EntryError, pointer_prefix: &str) -> Problem {
    let (pointer, detail) = match e {
        EntryError::Shape { pointer, detail } => (format!("{pointer_prefix}{pointer}"), (*detail).to_string()),
        EntryError::UnknownKind(_) => (format!("{pointer_prefix}/kind"), e.to_string()),
        EntryError::UnknownMember(name) => (format!("{pointer_prefix}/{name}"), e.to_string()),
        _ => (pointer_prefix.to_string(), e.to_string()),
    };
    Problem::new(StatusCode::BAD_REQUEST, "invalid-entry", "Invalid ledger entry", e.to_string())
        .with("errors", json!([{"pointer": pointer, "detail": detail}]))
}

fn bad_parameter(name: &str, detail: impl Into<String>) -> Problem {
    let detail = detail.into();
    Problem::new(StatusCode::BAD_REQUEST, "invalid-parameter", "Invalid parameter", detail.clone())
        .with("errors", json!([{"parameter": name, "detail": detail}]))
}

fn query_problem(e: QueryRejection) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, "invalid-parameter", "Invalid parameter", e.body_text())
}

fn witness_problem(e: WitnessError) -> Problem {
    let detail = e.to_string();
    match e {
        WitnessError::UnknownLog { .. } => Problem::new(StatusCode::NOT_FOUND, "unknown-log", "Unknown log", detail),
        WitnessError::BadCheckpoint(_) => {
            Problem::new(StatusCode::FORBIDDEN, "bad-checkpoint", "Checkpoint not verifiable", detail)
        }
        WitnessError::Conflict { witness_size, .. } => {
            Problem::new(StatusCode::CONFLICT, "witness-conflict", "Witness is at another size", detail)
                .with("witnessSize", json!(witness_size))
        }
        WitnessError::Fork { .. } => Problem::new(StatusCode::CONFLICT, "log-fork", "Log fork detected", detail),
        WitnessError::Rollback { .. } => {
            Problem::new(StatusCode::CONFLICT, "log-rollback", "Log rollback detected", detail)
        }
        WitnessError::Inconsistent { .. } => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "inconsistent-tree",
            "Checkpoint not consistent with the one cosigned",
            detail,
        ),
        WitnessError::State { .. } => {
            Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "witness-error", "Witness error", detail)
        }
    }
}

type ApiResult = Result<Response, Problem>;

fn text(body: String, cache: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

async fn read_body(headers: &HeaderMap, body: Body, json_only: bool) -> Result<axum::body::Bytes, Problem> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
        let json = ct.starts_with("application/json") || ct.contains("+json");
        if json_only && !json {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
                format!("send application/json, not {ct}"),
            ));
        }
    }
    axum::body::to_bytes(body, MAX_BODY_BYTES).await.map_err(|e| {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            "Request body too large",
            format!("the body could not be read within {MAX_BODY_BYTES} bytes: {e}"),
        )
    })
}

// ---- handlers ----------------------------------------------------------------------------

async fn summary(State(s): State<Shared>) -> Response {
    axum::Json(json!({
        "origin": s.ledger.origin(),
        "size": s.ledger.size(),
        "verifierKey": s.verifier_key,
        "witnessKey": s.witness.verifier().to_string(),
    }))
    .into_response()
}

async fn append(State(s): State<Shared>, headers: HeaderMap, body: Body) -> ApiResult {
    let bytes = read_body(&headers, body, true).await?;
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "invalid-json", "Invalid JSON", e.to_string()))?;
    match value {
        Value::Array(items) => {
            if items.is_empty() || items.len() > MAX_ENTRIES_PER_REQUEST {
                return Err(Problem::new(
                    StatusCode::BAD_REQUEST,
                    "invalid-entry",
                    "Invalid ledger entry",
                    format!("send 1 to {MAX_ENTRIES_PER_REQUEST} entries per request, not {}", items.len()),
                ));
            }
            let mut entries = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                entries.push(Entry::from_value(item).map_err(|e| invalid_entry(&e, &format!("/{i}")))?);
            }
            let count = entries.len();
            let range = s.ledger.append_batch(entries).await?;
            Ok((StatusCode::CREATED, axum::Json(json!({"first": range.start, "count": count}))).into_response())
        }
        value => {
            let entry = Entry::from_value(value).map_err(|e| invalid_entry(&e, ""))?;
            let index = s.ledger.append(entry).await?;
            let mut response = (StatusCode::CREATED, axum::Json(json!({"index": index}))).into_response();
            if let Ok(location) = HeaderValue::from_str(&format!("/api/v1/ledger/entries/{index}")) {
                response.headers_mut().insert(header::LOCATION, location);
            }
            Ok(response)
        }
    }
}

async fn entry(State(s): State<Shared>, index: Result<Path<u64>, PathRejection>) -> ApiResult {
    let Path(index) = index.map_err(|e| bad_parameter("index", format!("an entry index is a number ({e})")))?;
    let bytes = s.ledger.get_canonical(index)?;
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    // An entry never changes once written.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    Ok(response)
}

/// Chooses the checkpoint `GET /api/v1/ledger/checkpoint` serves, given the log's current
/// one: the node (`civitas_node::run`) installs one as a request extension
/// (`axum::Extension(ServedCheckpoint(..))`) that returns the newest checkpoint its witnesses
/// cosigned, with their cosignature lines (see `witness_client`). Without it, the log's
/// checkpoint alone is served.
#[derive(Clone)]
pub struct ServedCheckpoint(pub Arc<dyn Fn(SignedCheckpoint) -> SignedCheckpoint + Send + Sync>);

async fn checkpoint(State(s): State<Shared>, served: Option<axum::Extension<ServedCheckpoint>>) -> ApiResult {
    let mut signed = s.ledger.checkpoint(&s.signer).await?;
    if let Some(axum::Extension(ServedCheckpoint(choose))) = served {
        signed = choose(signed);
    }
    // Mutable: tlog-tiles asks for no caching beyond a few seconds.
    Ok(text(signed.to_string(), "no-cache"))
}

async fn pubkey(State(s): State<Shared>) -> Response {
    text(format!("{}\n", s.verifier_key), "public, max-age=3600")
}

async fn witness_pubkey(State(s): State<Shared>) -> Response {
    text(format!("{}\n", s.witness.verifier()), "public, max-age=3600")
}

/// The size of a fresh checkpoint, the default tree size of proofs.
async fn checkpoint_size(s: &LedgerApi) -> Result<u64, Problem> {
    Ok(s.ledger.checkpoint(&s.signer).await?.checkpoint().size)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InclusionQuery {
    index: u64,
    size: Option<u64>,
}

async fn inclusion_proof(State(s): State<Shared>, q: Result<Query<InclusionQuery>, QueryRejection>) -> ApiResult {
    let Query(q) = q.map_err(query_problem)?;
    let size = match q.size {
        Some(size) => size,
        None => checkpoint_size(&s).await?,
    };
    if q.index >= size {
        return Err(bad_parameter("index", format!("entry {} is not in a tree of size {size}", q.index)));
    }
    if size > s.ledger.size() {
        return Err(bad_parameter("size", format!("tree size {size} is beyond the ledger's size {}", s.ledger.size())));
    }
    Ok(axum::Json(s.ledger.inclusion_proof(q.index, size)?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsistencyQuery {
    old: u64,
    new: Option<u64>,
}

async fn consistency_proof(State(s): State<Shared>, q: Result<Query<ConsistencyQuery>, QueryRejection>) -> ApiResult {
    let Query(q) = q.map_err(query_problem)?;
    let new = match q.new {
        Some(new) => new,
        None => checkpoint_size(&s).await?,
    };
    if q.old > new {
        return Err(bad_parameter("old", format!("old size {} is larger than new size {new}", q.old)));
    }
    if new > s.ledger.size() {
        return Err(bad_parameter("new", format!("tree size {new} is beyond the ledger's size {}", s.ledger.size())));
    }
    Ok(axum::Json(s.ledger.consistency_proof(q.old, new)?).into_response())
}

async fn tile(State(s): State<Shared>, path: Result<Path<String>, PathRejection>) -> ApiResult {
    let Path(path) = path.map_err(|e| bad_parameter("path", e.body_text()))?;
    let tile = TilePath::parse(&format!("tile/{path}")).map_err(|e| bad_parameter("path", e.to_string()))?;
    let bytes = match tile {
        // Up to 256 entries of up to 64 KiB: read off the runtime threads.
        TilePath::Entries { .. } => {
            let ledger = Arc::clone(&s.ledger);
            tokio::task::spawn_blocking(move || ledger.read_tile(&tile)).await.map_err(|e| {
                Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "ledger-error", "Ledger error", e.to_string())
            })??
        }
        TilePath::Hashes { .. } => s.ledger.read_tile(&tile)?,
    };
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    // A tile of a given width never changes (tlog-tiles: immutable).
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    Ok(response)
}

/// A cosigning request: the checkpoint and a consistency proof from the size the caller
/// believes the witness last cosigned.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CosignRequest {
    old_size: u64,
    checkpoint: String,
    #[serde(default)]
    consistency_proof: Vec<Hash>,
}

/// The `c2sp.org/tlog-witness` text body: `old <size>`, one base64 proof hash per line, a
/// blank line, then the checkpoint note.
fn parse_witness_text(body: &str) -> Result<CosignRequest, String> {
    let (head, checkpoint) = body.split_once("\n\n").ok_or("no blank line before the checkpoint")?;
    let mut lines = head.lines();
    let old = lines.next().and_then(|l| l.strip_prefix("old ")).ok_or("the first line is not `old <size>`")?;
    let old_size = old.parse().map_err(|_| format!("{old:?} is not a tree size"))?;
    let consistency_proof =
        lines.map(Hash::from_base64).collect::<Result<Vec<_>, _>>().map_err(|e| format!("proof line: {e}"))?;
    Ok(CosignRequest { old_size, checkpoint: checkpoint.to_string(), consistency_proof })
}

async fn cosign(State(s): State<Shared>, headers: HeaderMap, body: Body) -> ApiResult {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("application/json"));
    let bytes = read_body(&headers, body, false).await?;
    let bad = |detail: String| {
        Problem::new(StatusCode::BAD_REQUEST, "invalid-cosign-request", "Invalid cosigning request", detail)
    };
    let request = if is_json {
        serde_json::from_slice::<CosignRequest>(&bytes).map_err(|e| bad(e.to_string()))?
    } else {
        let text = std::str::from_utf8(&bytes).map_err(|_| bad("the body is not UTF-8".into()))?;
        parse_witness_text(text).map_err(bad)?
    };
    let witness = Arc::clone(&s.witness);
    // Cosigning fsyncs the witness state: off the runtime threads.
    let cosignature = tokio::task::spawn_blocking(move || {
        witness.cosign_from(request.old_size, &request.checkpoint, &request.consistency_proof)
    })
    .await
    .map_err(|e| Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "witness-error", "Witness error", e.to_string()))?
    .map_err(witness_problem)?;
    Ok(text(cosignature.to_line(), "no-store"))
}
