//! The OpenAPI 3.1 description served at `/api/v1/openapi.json`, built from the same
//! kind table the router uses so that every collection is described.

use serde_json::{Map, Value, json};

use civitas_model::Kind;

fn problem_responses(codes: &[&str]) -> Map<String, Value> {
    let mut m = Map::new();
    for c in codes {
        m.insert(
            (*c).to_string(),
            json!({"description": "problem", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}),
        );
    }
    m
}

fn with(mut base: Map<String, Value>, code: &str, description: &str, schema: Value) -> Value {
    base.insert(code.into(), json!({"description": description, "content": {"application/json": {"schema": schema}}}));
    Value::Object(base)
}

fn query(name: &str, description: &str, ty: &str) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": description, "schema": {"type": ty}})
}

/// The OpenAPI document.
pub fn document() -> Value {
    let name_param =
        json!({"name": "name", "in": "path", "required": true, "description": "a URN", "schema": {"type": "string"}});
    let dry_run = query("dryRun", "validate only, store nothing", "boolean");
    let list_params = vec![
        query("prefix", "name prefix", "string"),
        query("sourceType", "units whose metainformation.type equals this", "string"),
        query("site", "documents at or about this site (URN)", "string"),
        query("view", "units with this view / instances serving it", "string"),
        query("unit", "instances of this unit (URN)", "string"),
        query("q", "free text over names", "string"),
        query("limit", "page length, 1..1000 (default 100)", "integer"),
        query("after", "the previous page's `next` cursor", "string"),
    ];
    let doc_body = json!({"required": true, "content": {"application/json": {"schema": {"oneOf": [
        {"$ref": "#/components/schemas/Document"}, {"type": "array", "items": {"$ref": "#/components/schemas/Document"}}]}}}});
    let report = json!({"$ref": "#/components/schemas/ApplyReport"});
    let page = json!({"$ref": "#/components/schemas/Page"});

    let mut paths = Map::new();
    for kind in Kind::ALL {
        let c = kind.collection();
        let t = kind.type_name();
        paths.insert(format!("/api/v1/{c}"), json!({
            "get": {"summary": format!("List {t} documents"), "parameters": list_params,
                    "responses": with(problem_responses(&["400", "404"]), "200", "a page", page.clone())},
            "post": {"summary": format!("Apply {t} documents (atomically)"), "parameters": [dry_run], "requestBody": doc_body,
                     "responses": with(with(problem_responses(&["400", "409", "413", "415", "422", "503"]), "201", "created", report.clone()).as_object().unwrap().clone(), "200", "applied", report.clone())},
        }));
        paths.insert(format!("/api/v1/{c}/{{name}}"), json!({
            "get": {"summary": format!("Get a {t}"),
                    "description": "A document this node does not hold is asked of its peers (`node.peers`); such an answer carries `x-civitas-owner` and the owner's ETag. Requests with `x-civitas-federated` are answered locally only.",
                    "parameters": [name_param, query("version", "an older version", "string")],
                    "responses": with(problem_responses(&["400", "404"]), "200", "the document", json!({"$ref": "#/components/schemas/Document"}))},
            "put": {"summary": format!("Apply one {t} named in the URL"), "parameters": [name_param, dry_run], "requestBody": doc_body,
                    "responses": with(problem_responses(&["400", "409", "413", "415", "422", "503"]), "200", "applied", report.clone())},
            "delete": {"summary": format!("Delete a {t} and all its versions"),
                       "parameters": [name_param, query("cascade", "also delete what refers to it", "boolean"), dry_run],
                       "responses": with(problem_responses(&["400", "404", "409", "503"]), "200", "deleted", json!({"$ref": "#/components/schemas/DeleteReport"}))},
        }));
        paths.insert(format!("/api/v1/{c}/{{name}}/versions"), json!({
            "get": {"summary": format!("Versions of a {t}"), "parameters": [name_param],
                    "responses": with(problem_responses(&["400", "404"]), "200", "versions, oldest first",
                        json!({"type": "object", "properties": {"name": {"type": "string"}, "versions": {"type": "array", "items": {"type": "string"}}}}))},
        }));
    }
    paths.insert("/api/v1/units/{name}/tree".into(), json!({
        "get": {"summary": "Dependency tree of a unit: views, instances, deployments, sites", "parameters": [name_param],
                "responses": with(problem_responses(&["400", "404"]), "200", "the tree", json!({"type": "object"}))},
    }));
    paths.insert("/api/v1/apply".into(), json!({
        "post": {"summary": "Apply documents of any kinds as one atomic batch", "parameters": [dry_run], "requestBody": doc_body,
                 "responses": with(problem_responses(&["400", "409", "413", "415", "422", "503"]), "200", "applied", report.clone())},
    }));
    let mut search_params = list_params.clone();
    search_params.push(query("type", "only this @type", "string"));
    paths.insert(
        "/api/v1/search".into(),
        json!({
            "get": {"summary": "Search across kinds", "parameters": search_params,
                    "responses": with(problem_responses(&["400"]), "200", "a page", page)},
        }),
    );
    paths.insert("/api/v1/watch".into(), json!({
        "get": {"summary": "Stream catalog changes as NDJSON (put, delete, heartbeat lines)",
                "parameters": [query("from", "first revision to stream; omitted: only new changes", "integer")],
                "responses": {"200": {"description": "one JSON object per line", "content": {"application/x-ndjson": {}}},
                              "410": {"description": "history compacted", "content": {"application/problem+json": {}}}}},
    }));
    let simple = |summary: &str, method: &str| {
        let mut item = Map::new();
        item.insert(method.into(), json!({"summary": summary, "responses": with(problem_responses(&["400", "404", "422"]), "200", "ok", json!({"type": "object"}))}));
        Value::Object(item)
    };
    paths.insert("/data/{unit}/{view}/{rest}".into(), json!({
        "get": {"summary": "Data plane, reverse mode: the request goes to an instance of the view (any method is proxied; see docs/dataplane.md)",
                "responses": {"200": {"description": "the upstream's answer, streamed"}, "403": {"description": "forward mode: not a catalogued endpoint"},
                              "404": {"description": "unknown unit or view"}, "502": {"description": "upstream unreachable"},
                              "503": {"description": "no routable instance"}, "504": {"description": "upstream timeout"}}}}));
    paths.insert(
        "/api/v1/sdd/activate".into(),
        simple(
            "Activate SDD triggers with a confidence interval: {\"triggers\": [...], \"confidence\": \"0.8..1.0\"}",
            "post",
        ),
    );
    paths.insert("/api/v1/sdd/deactivate".into(), simple("Stop evaluating SDD triggers", "post"));
    paths.insert("/api/v1/sdd/status".into(), simple("Per view and client site: analysis and trigger states", "get"));
    paths.insert("/api/v1/sdd/events".into(), simple("SDD events (activations, fired triggers); ?after=ID", "get"));
    paths.insert(
        "/api/v1/sdd/observations".into(),
        simple("Observations reported by a stand-alone proxy (array, at most 10,000)", "post"),
    );
    paths.insert(
        "/api/v1/pipelines/{name}/plan".into(),
        json!({
            "post": {"summary": "Plan the stored pipeline on this node's catalog and keep the plan; ?env=ENV, body {\"parameters\": {...}} (optional)",
                     "responses": with(problem_responses(&["400", "404", "409", "422"]), "201", "the plan", json!({"type": "object"}))},
            "get": {"summary": "The stored plan of the pipeline, with its pipelineVersion",
                    "responses": with(problem_responses(&["404"]), "200", "the plan", json!({"type": "object"}))},
        }),
    );
    for (path, method, summary) in [
        ("/api/v1/ledger", "get", "Ledger summary: origin, size, latest checkpoint"),
        ("/api/v1/ledger/entries", "post", "Append an entry {\"kind\", \"data\"}; answers its index once durable"),
        ("/api/v1/ledger/entries/{index}", "get", "One entry, canonical JSON"),
        ("/api/v1/ledger/checkpoint", "get", "The latest signed checkpoint (C2SP signed note, text/plain)"),
        ("/api/v1/ledger/pubkey", "get", "The verifier key (signed-note key string)"),
        ("/api/v1/ledger/proof/inclusion", "get", "Inclusion proof: ?index=&size="),
        ("/api/v1/ledger/proof/consistency", "get", "Consistency proof: ?old=&new="),
        ("/api/v1/ledger/tile/{path}", "get", "C2SP tlog-tiles read API"),
        ("/api/v1/ledger/witness/cosign", "post", "Cosign a peer's checkpoint (refuses forks and rollbacks)"),
        ("/api/v1/ledger/witness/pubkey", "get", "This node's witness key"),
    ] {
        paths.insert(path.into(), simple(summary, method));
    }
    paths.insert("/api/v1/contexts/civitas.jsonld".into(), json!({"get": {"summary": "Civitas' JSON-LD context", "responses": {"200": {"description": "the context", "content": {"application/ld+json": {}}}}}}));
    paths.insert(
        "/api/v1/openapi.json".into(),
        json!({"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3.1"}}}}),
    );
    paths.insert(
        "/healthz".into(),
        json!({"get": {"summary": "Liveness", "responses": {"200": {"description": "ok"}}}}),
    );
    paths.insert("/readyz".into(), json!({"get": {"summary": "Readiness", "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}}}}));
    paths.insert(
        "/metrics".into(),
        json!({"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text exposition"}}}}),
    );

    json!({
        "openapi": "3.1.0",
        "info": {"title": "Civitas node API", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Catalog of data units, instances, sites and deployments. See docs/api.md."},
        "paths": paths,
        "components": {"schemas": {
            "Document": {"type": "object", "required": ["@type", "name", "version"],
                         "properties": {"@context": {}, "@type": {"enum": Kind::ALL.iter().map(|k| k.type_name()).collect::<Vec<_>>()},
                                        "name": {"type": "string", "pattern": "^urn:"}, "version": {"type": "string"}},
                         "description": "A JSON-LD document of the Civitas model; see docs/model.md"},
            "ApplyReport": {"type": "object", "properties": {
                "revision": {"type": "integer"}, "dryRun": {"type": "boolean"},
                "results": {"type": "array", "items": {"type": "object", "properties": {
                    "type": {"type": "string"}, "name": {"type": "string"}, "version": {"type": "string"},
                    "outcome": {"enum": ["created", "updated", "unchanged"]}}}}}},
            "DeleteReport": {"type": "object", "properties": {
                "revision": {"type": "integer"}, "dryRun": {"type": "boolean"},
                "deleted": {"type": "array", "items": {"type": "object", "properties": {"type": {"type": "string"}, "name": {"type": "string"}}}}}},
            "Page": {"type": "object", "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Document"}},
                                                      "next": {"type": ["string", "null"]}}},
            "Problem": {"type": "object", "properties": {
                "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                "detail": {"type": "string"}, "instance": {"type": "string"},
                "errors": {"type": "array", "items": {"type": "object", "properties": {
                    "pointer": {"type": "string"}, "parameter": {"type": "string"}, "detail": {"type": "string"}}}},
                "referrers": {"type": "array", "items": {"type": "object"}}}},
        }},
    })
}
