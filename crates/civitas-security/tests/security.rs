//! The node's view: `Security::from_config` with a node key and a data dir, a local token
//! through the authenticator, a decision, its audit line and its metric.

use std::time::Duration;

use civitas_ledger::NodeKey;
use civitas_model::Document;
use civitas_security::strategies::TokenRequest;
use civitas_security::{RejectReason, Security, SecurityConfig};
use serde_json::json;

#[tokio::test]
async fn from_config_to_an_audited_counted_decision() {
    let dir = tempfile::tempdir().unwrap();
    let config: SecurityConfig = toml::from_str("enabled = true\ncache_ttl_ms = 1000").unwrap();
    let mut security = Security::from_config(&config, dir.path(), &NodeKey::from_seed(&[5; 32])).unwrap();
    let mut registry = prometheus_client::registry::Registry::default();
    security.metrics.register(&mut registry);

    let tokens = security.local_tokens.clone().unwrap();
    let issued = tokens
        .create(TokenRequest { subject: "alice".into(), roles: vec!["planner".into()], ..Default::default() })
        .await
        .unwrap();
    let header = format!("Bearer {}", issued.token);
    let alice = security.authenticator.authenticate(Some(&header)).await.unwrap();

    let doc = json!({"@type": "DataUnit", "name": "urn:buildings:vienna", "version": "3",
        "metainformation": {"type": "rest", "securityConstraints": [{"type": "rbac", "roles": ["planner"]}]},
        "views": [{"name": "blocks", "link": "/blocks"}]});
    let Ok(Document::DataUnit(unit)) = Document::decode(&doc) else { panic!("fixture") };
    let d = security.policies.view_read(&alice, &unit, &unit.views[0].name);
    assert!(d.allowed, "{d:?}");

    // Revocation through the facade takes effect at once, despite the authentication cache.
    assert!(security.revoke_token(&issued.record.id).await.unwrap());
    let r = security.authenticator.authenticate(Some(&header)).await.unwrap_err();
    assert_eq!(r.reason, RejectReason::Revoked);

    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(text.contains("civitas_security_decisions_total{decision=\"allow\",kind=\"view\"} 1"), "{text}");
    assert!(text.contains("civitas_security_authentications_total{source=\"local\",outcome=\"accepted\"} 1"), "{text}");

    // Shut down: drop the engine's handles, then the writer drains and stops.
    let writer = security.audit_writer.take().unwrap();
    drop(security);
    tokio::time::timeout(Duration::from_secs(10), tokio::task::spawn_blocking(move || writer.finish()))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let audit = std::fs::read_to_string(dir.path().join("audit/security.ndjson")).unwrap();
    let line: serde_json::Value = serde_json::from_str(audit.lines().next().unwrap()).unwrap();
    assert_eq!(line["subject"], "alice");
    assert_eq!(line["resource"], "urn:buildings:vienna:blocks");
    assert_eq!(line["rule"], "urn:buildings:vienna securityConstraints[0] (rbac)");
    assert!(!audit.contains(&issued.token), "tokens never reach the audit log");
    assert!(dir.path().join("security/tokens.json").exists());
}
