//! The `Pipeline` JSON-LD document: the form the catalog stores and `GET` returns.
//!
//! `{"@context": …, "@type": "Pipeline", "name": …, "version": …, "stages": [...]}`.
//! Applying a `.civ` file and applying its JSON-LD are the same thing:
//! `from_json(&to_json(p)) == p` for every pipeline.

use serde_json::{Map, Value, json};

use crate::check::{JsonPointers, check_pipeline};
use crate::diagnostics::{Diagnostic, Diagnostics, Location, SourceText};
use crate::model::Pipeline;

/// The `@type` of pipeline documents.
pub const PIPELINE_TYPE: &str = "Pipeline";

/// The catalog collection pipelines live in (`/api/v1/pipelines`, `civitas get pipelines`).
pub const PIPELINE_COLLECTION: &str = "pipelines";

/// Encodes a pipeline as canonical JSON-LD with Civitas' `@context`.
pub fn to_json(p: &Pipeline) -> Value {
    let body = serde_json::to_value(p).expect("a pipeline always serializes");
    let mut m = Map::new();
    m.insert("@context".into(), json!(civitas_model::context::CONTEXT_URL));
    m.insert("@type".into(), json!(PIPELINE_TYPE));
    if let Value::Object(fields) = body {
        m.extend(fields);
    }
    Value::Object(m)
}

/// Decodes and checks a JSON-LD pipeline; `source_name` names it in diagnostics.
/// Shape errors stop at the first (with its JSON pointer); semantic errors all come at once.
pub fn from_json(value: &Value, source_name: &str) -> Result<(Pipeline, Vec<Diagnostic>), Diagnostics> {
    let sources = vec![SourceText { name: source_name.to_string(), text: String::new() }];
    let fail = |pointer: &str, message: String| Diagnostics {
        sources: sources.clone(),
        items: vec![
            Diagnostic::error("E0400", message, Location::Pointer { source: 0, pointer: pointer.to_string() })
                .label("invalid document")
                .hint("compare with `civitas pipeline check FILE.civ -o json` output, or docs/pipelines.md"),
        ],
    };
    let Value::Object(obj) = value else {
        return Err(fail("", format!("expected an object, found {}", civitas_model::json_type_name(value))));
    };
    match obj.get("@type") {
        Some(Value::String(t)) if t == PIPELINE_TYPE => {}
        None => {}
        Some(other) => return Err(fail("/@type", format!("expected \"{PIPELINE_TYPE}\", found {other}"))),
    }
    if let Some(ctx) = obj.get("@context")
        && !matches!(ctx, Value::String(_) | Value::Object(_) | Value::Array(_))
    {
        return Err(fail("/@context", "must be a string, an object or an array".into()));
    }
    let mut body = obj.clone();
    body.remove("@context");
    body.remove("@type");
    body.remove("@id");
    let pipeline: Pipeline = serde_path_to_error::deserialize(Value::Object(body)).map_err(|e| {
        let pointer: String = e
            .path()
            .iter()
            .filter_map(|seg| match seg {
                serde_path_to_error::Segment::Seq { index } => Some(format!("/{index}")),
                serde_path_to_error::Segment::Map { key } => {
                    Some(format!("/{}", civitas_model::escape_pointer_token(key)))
                }
                serde_path_to_error::Segment::Enum { .. } | serde_path_to_error::Segment::Unknown => None,
            })
            .collect();
        fail(&pointer, e.into_inner().to_string())
    })?;
    let diags = check_pipeline(&pipeline, &JsonPointers(0, ""));
    if diags.iter().any(|d| d.severity == crate::Severity::Error) {
        return Err(Diagnostics { sources, items: diags });
    }
    Ok((pipeline, diags))
}
