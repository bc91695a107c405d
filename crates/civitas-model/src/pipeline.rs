//! The `Pipeline` document as the catalog holds it: its header and its body as JSON-LD.
//!
//! Why a JSON value and not the typed pipeline: the pipeline's types, its checker and its
//! diagnostics live in `civitas-pipeline`, which depends on this crate; moving them here
//! would put a DSL, a checker and a scheduler's vocabulary into the model, and the model
//! cannot depend on `civitas-pipeline` (dependencies point down). So the model checks what
//! every document has (name, version, `@type`) and that `stages` is an array of objects,
//! and keeps the rest verbatim (keys sorted, so equal documents encode to equal bytes).
//! The node checks the whole document with `civitas_pipeline::from_json` before it
//! applies one, and refuses it with the checker's diagnostics; the catalog never holds a
//! pipeline that did not pass the checker through the node's API.
//!
//! A pipeline names no catalog reference ([`crate::Document::references`] is empty): the
//! views it reads may be served by a peer's catalog, and sites are chosen by the scheduler,
//! so requiring them to exist here would refuse a valid pipeline.

use serde_json::{Map, Value};

use crate::codec::{Header, sorted};
use crate::reader::{Errors, ObjectReader, type_name};

/// A pipeline: an application as a graph of stages (see `docs/pipelines.md`).
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineDocument {
    /// Name (`urn:pipeline:…`) and version; plans are stored with the version.
    pub header: Header,
    /// Every other field (`description`, `params`, `budget`, `stages`…), as written,
    /// with object keys sorted.
    pub body: Map<String, Value>,
}

impl PipelineDocument {
    /// The `@type` of pipelines.
    pub const TYPE: &'static str = "Pipeline";

    pub(crate) fn decode(r: &mut ObjectReader<'_>, errs: &mut Errors) -> Option<PipelineDocument> {
        let header = Header::decode(r, errs);
        match r.raw("stages") {
            None | Some(Value::Null) => errs.push(&r.at("stages"), "`stages` is required"),
            Some(Value::Array(stages)) => {
                for (i, s) in stages.iter().enumerate() {
                    if !s.is_object() {
                        errs.push(
                            &format!("{}/{i}", r.at("stages")),
                            format!("expected an object, found {}", type_name(s)),
                        );
                    }
                }
            }
            Some(other) => errs.push(&r.at("stages"), format!("expected an array, found {}", type_name(other))),
        }
        let mut body = Map::new();
        for (k, v) in r.obj {
            if !matches!(k.as_str(), "@context" | "@type" | "@id" | "name" | "version" | "creationDate" | "lastUpdate")
            {
                body.insert(k.clone(), sorted(v));
            }
        }
        let mut entries: Vec<(String, Value)> = body.into_iter().collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Some(PipelineDocument { header: header?, body: entries.into_iter().collect() })
    }

    pub(crate) fn encode(&self) -> Map<String, Value> {
        let mut m = self.header.encode(Self::TYPE);
        m.extend(self.body.iter().map(|(k, v)| (k.clone(), v.clone())));
        m
    }

    /// The stages' names, for search and tables.
    pub fn stage_names(&self) -> Vec<&str> {
        self.body
            .get("stages")
            .and_then(Value::as_array)
            .map(|s| s.iter().filter_map(|s| s.get("name").and_then(Value::as_str)).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::{Document, Kind};

    #[test]
    fn a_pipeline_keeps_its_body_and_round_trips_canonically() {
        let doc = json!({"@type": "Pipeline", "name": "urn:pipeline:p", "version": "1.0",
            "stages": [{"run": {"name": "x", "kind": "builtin"}, "name": "a"}], "description": "d"});
        let d = Document::decode(&doc).expect("valid header and stages");
        assert_eq!(d.kind(), Kind::Pipeline);
        assert_eq!(Kind::from_user_text("pipelines"), Some(Kind::Pipeline));
        let encoded = d.encode();
        let keys: Vec<&str> = encoded.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["@context", "@type", "name", "version", "description", "stages"]);
        assert_eq!(encoded["stages"][0], json!({"name": "a", "run": {"kind": "builtin", "name": "x"}}));
        assert_eq!(Document::decode(&encoded).unwrap(), d);
        assert!(d.references().is_empty(), "views and sites may live elsewhere");
        assert!(d.search_text().contains(" a"), "stage names are searchable");
    }

    #[test]
    fn the_model_checks_the_header_and_the_stages_array() {
        let e = Document::decode(&json!({"@type": "Pipeline", "name": "not a urn", "stages": 3})).unwrap_err();
        let pointers: Vec<&str> = e.0.iter().map(|f| f.pointer.as_str()).collect();
        assert_eq!(pointers, ["/name", "/version", "/stages"], "{e}");
        let e = Document::decode(&json!({"@type": "Pipeline", "name": "urn:pl:q", "version": "1", "stages": [1]}))
            .unwrap_err();
        assert_eq!(e.0[0].pointer, "/stages/0", "{e}");
        let e = Document::decode(&json!({"@type": "Pipeline", "name": "urn:pl:q", "version": "1"})).unwrap_err();
        assert_eq!(e.0[0].pointer, "/stages", "{e}");
    }
}
