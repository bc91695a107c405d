//! The walk-through of docs/cli.md, run for real: `civitas serve` and the CLI against it,
//! with the URBEM examples of the repository.

mod common;

use common::{Server, URBEM};
use serde_json::Value;

#[test]
fn dry_run_apply_stores_nothing() {
    let server = Server::start();
    let out = server.civitas(&["apply", "-f", URBEM, "--dry-run"]).ok().to_string();
    assert!(out.contains("dataunit/urn:urbem:buildings created (version "), "{out}");
    for line in out.lines() {
        assert!(line.ends_with("(dry run)"), "a dry-run line without the suffix: {line:?}\n{out}");
    }
    let err = server.civitas(&["get", "unit", "urn:urbem:buildings"]).fails_with(1).to_string();
    assert!(err.starts_with("error: ") && err.contains("(404)"), "{err}");
    let listed = server.civitas(&["get", "units", "-o", "json"]).ok().to_string();
    assert_eq!(serde_json::from_str::<Value>(&listed).unwrap(), serde_json::json!([]), "{listed}");
}

#[test]
fn urbem_walkthrough() {
    let server = Server::start();

    // apply: one line per document, kubectl-style; again: unchanged.
    let out = server.civitas(&["apply", "-f", URBEM]).ok().to_string();
    assert!(out.contains("dataunit/urn:urbem:buildings created (version "), "{out}");
    assert!(out.contains("datainstance/"), "the examples hold instances:\n{out}");
    let documents = out.lines().count();
    assert!(out.lines().all(|l| l.contains(" created (version ")), "{out}");
    let again = server.civitas(&["apply", "-f", URBEM]).ok().to_string();
    assert_eq!(again.lines().count(), documents, "{again}");
    assert!(again.lines().all(|l| l.contains(" unchanged (version ")), "{again}");

    // get units: a table with the three URBEM units.
    let table = server.civitas(&["get", "units"]).ok().to_string();
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(header, ["NAME", "VERSION", "TYPE", "VIEWS"], "{table}");
    let names: Vec<&str> = lines.map(|l| l.split_whitespace().next().unwrap_or_default()).collect();
    assert_eq!(names.len(), 3, "{table}");
    assert!(names.iter().all(|n| n.starts_with("urn:urbem:")), "{table}");
    assert!(names.contains(&"urn:urbem:buildings"), "{table}");

    // get one unit as JSON and as YAML.
    let json = server.civitas(&["get", "unit", "urn:urbem:buildings", "-o", "json"]).ok().to_string();
    let doc: Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("not JSON ({e}):\n{json}"));
    assert_eq!(doc["@type"], "DataUnit", "{json}");
    assert_eq!(doc["name"], "urn:urbem:buildings", "{json}");
    let yaml = server.civitas(&["get", "du", "urn:urbem:buildings", "-o", "yaml"]);
    // `du` is a deployment unit, not a data unit: not found.
    assert!(yaml.fails_with(1).contains("(404)"), "{}", yaml.stderr);
    let yaml = server.civitas(&["get", "dataunit", "urn:urbem:buildings", "-o", "yaml"]).ok().to_string();
    let from_yaml: Value = serde_yaml::from_str(&yaml).unwrap_or_else(|e| panic!("not YAML ({e}):\n{yaml}"));
    assert_eq!(from_yaml, doc);

    // tree: unit → views → instances → deployment → site, with the Melbourne instance.
    let tree = server.civitas(&["tree", "urn:urbem:buildings"]).ok().to_string();
    assert!(tree.starts_with("unit urn:urbem:buildings"), "{tree}");
    assert!(tree.contains("── view urn:urbem:buildings:"), "{tree}");
    assert!(tree.lines().any(|l| l.contains("── instance ") && l.to_lowercase().contains("melbourne")), "{tree}");
    assert!(tree.to_lowercase().contains("melbourne"), "{tree}");

    // search
    let found = server.civitas(&["search", "mobility"]).ok().to_string();
    assert!(found.starts_with("NAME"), "{found}");
    assert!(found.lines().skip(1).any(|l| l.contains("mobility")), "{found}");

    // delete: refused while instances refer to the unit, with the server's message.
    let refused = server.civitas(&["delete", "unit", "urn:urbem:buildings"]);
    let err = refused.fails_with(1);
    assert!(err.starts_with("error: Still referenced (409): "), "{err}");
    assert!(err.contains("referenced by DataInstance urn:"), "{err}");
    server.civitas(&["get", "unit", "urn:urbem:buildings"]).ok();

    // --cascade deletes the unit and its instances.
    let instances_before =
        server.civitas(&["get", "instances", "--unit", "urn:urbem:buildings", "-o", "json"]).ok().to_string();
    let instances_before: Vec<Value> = serde_json::from_str(&instances_before).unwrap();
    assert!(!instances_before.is_empty());
    let deleted = server.civitas(&["delete", "unit", "urn:urbem:buildings", "--cascade"]).ok().to_string();
    assert!(deleted.contains("dataunit/urn:urbem:buildings deleted"), "{deleted}");
    for i in &instances_before {
        let name = i["name"].as_str().unwrap();
        assert!(deleted.contains(&format!("datainstance/{name} deleted")), "{name} not deleted:\n{deleted}");
        server.civitas(&["get", "instance", name]).fails_with(1);
    }
    server.civitas(&["get", "unit", "urn:urbem:buildings"]).fails_with(1);
}
