//! Civitas' own JSON-LD `@context`, served by every node and never fetched from the network.

use serde_json::{Value, json};

/// The IRI every canonical document names as its `@context`. Nodes serve the
/// document below at `/api/v1/contexts/civitas.jsonld`; JSON-LD processors should
/// map this IRI to that document (or to [`context_document`]) in their document loader.
pub const CONTEXT_URL: &str = "https://civitas.city/contexts/civitas.jsonld";

/// The vocabulary namespace.
pub const VOCAB: &str = "https://civitas.city/ns#";

/// The context document itself.
pub fn context_document() -> Value {
    let mut terms = serde_json::Map::new();
    terms.insert("@version".into(), json!(1.1));
    terms.insert("@vocab".into(), json!(VOCAB));
    terms.insert("civitas".into(), json!(VOCAB));
    terms.insert("xsd".into(), json!("http://www.w3.org/2001/XMLSchema#"));
    for t in [
        "DataUnit",
        "DataInstance",
        "View",
        "Site",
        "SiteLink",
        "TechnicalUnit",
        "DeploymentUnit",
        "DeploymentInstance",
        "UpdateFrequency",
        "SecurityConstraint",
    ] {
        terms.insert(t.into(), json!(format!("civitas:{t}")));
    }
    terms.insert("name".into(), json!({"@id": "@id"}));
    for (term, ty) in [("creationDate", "xsd:dateTime"), ("lastUpdate", "xsd:dateTime")] {
        terms.insert(term.into(), json!({"@id": format!("civitas:{term}"), "@type": ty}));
    }
    for term in [
        "dataUnit",
        "dataUnits",
        "dataInstances",
        "site",
        "sites",
        "from",
        "to",
        "technicalUnit",
        "deploymentUnit",
        "views",
    ] {
        terms.insert(term.into(), json!({"@id": format!("civitas:{term}"), "@type": "@id"}));
    }
    for term in ["link", "endpoint", "schema"] {
        terms.insert(term.into(), json!({"@id": format!("civitas:{term}"), "@type": "xsd:anyURI"}));
    }
    for term in ["metainformation", "deployment", "parameters"] {
        terms.insert(term.into(), json!({"@id": format!("civitas:{term}"), "@type": "@json"}));
    }
    terms.insert("type".into(), json!("civitas:sourceType"));
    json!({ "@context": Value::Object(terms) })
}
