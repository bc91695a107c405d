//! docs/security.md's examples are real: its JSON constraint lists validate, its audit
//! line parses as an `AuditRecord`, and its TOML section parses as a `SecurityConfig`.

use civitas_model::Document;
use civitas_security::{AuditRecord, SecurityConfig, validate_constraints};
use serde_json::{Value, json};

fn blocks(lang: &str) -> Vec<String> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/security.md")).unwrap();
    let fence = format!("```{lang}\n");
    text.split(&fence).skip(1).map(|rest| rest.split("```").next().unwrap().to_owned()).collect()
}

#[test]
fn the_examples_in_docs_security_md_are_valid() {
    let json_blocks = blocks("json");
    assert_eq!(json_blocks.len(), 4, "three constraint lists and one audit line");
    for block in &json_blocks[..3] {
        let constraints: Value = serde_json::from_str(block).unwrap();
        let doc = json!({"@type": "DataUnit", "name": "urn:docs:example", "version": "1",
            "metainformation": {"type": "rest", "securityConstraints": constraints}, "views": []});
        let Ok(Document::DataUnit(u)) = Document::decode(&doc) else { panic!("{block}") };
        validate_constraints(&u.metainformation.security_constraints).unwrap_or_else(|e| panic!("{block}: {e:?}"));
    }
    let _: AuditRecord = serde_json::from_str(json_blocks[3].trim()).unwrap();

    let toml_blocks = blocks("toml");
    // The full configuration example (the walk-through's short one comes first).
    let full = toml_blocks.iter().find(|b| b.contains("[[security.issuers]]")).expect("the configuration example");
    let section: toml::Table = toml::from_str(full).unwrap();
    let config: SecurityConfig = section["security"].clone().try_into().unwrap();
    assert!(config.enabled && config.ldap.is_some() && config.issuers.len() == 1);
}
