//! Policies from securityConstraints: unit visibility, view reads, migration targets, the
//! decision cache, audit records, and the catalog tree filtered through `CallerAccess`.

use std::sync::Arc;
use std::time::Duration;

use civitas_catalog::kv::{RedbOptions, RedbStore};
use civitas_catalog::{ApplyOptions, Catalog, CatalogError};
use civitas_model::{DataUnit, Document, Urn};
use civitas_security::config::{AuditConfig, Unconstrained};
use civitas_security::{
    AuditLog, AuditRecord, PolicyEngine, Principal, SecurityMetrics, SiteTarget, Source, ViewSecurity, governing_unit,
    validate_constraints,
};
use serde_json::{Value, json};

const LDAP: &str = "ldap://127.0.0.1:3890";

fn unit(name: &str, version: &str, unit_constraints: Value, views: Value) -> DataUnit {
    let doc = json!({"@type": "DataUnit", "name": name, "version": version,
        "metainformation": {"type": "rest", "securityConstraints": unit_constraints}, "views": views});
    match Document::decode(&doc).unwrap_or_else(|e| panic!("fixture invalid: {e}")) {
        Document::DataUnit(u) => u,
        _ => unreachable!(),
    }
}

fn urn(s: &str) -> Urn {
    Urn::parse(s).unwrap()
}

fn engine(unconstrained: Unconstrained) -> PolicyEngine {
    PolicyEngine::new(unconstrained, Duration::from_secs(60), 1_000, None, SecurityMetrics::default())
}

fn local(subject: &str, roles: &[&str]) -> Principal {
    let mut p = Principal::new(subject, Source::LocalToken { issuer: "civitas-local".into() });
    p.roles = roles.iter().map(|r| r.to_string()).collect();
    p
}

fn ldap_user(uid: &str, groups: &[&str]) -> Principal {
    let dn = format!("uid={uid},ou=people,dc=civitas,dc=test");
    let mut p = Principal::new(uid, Source::Ldap { url: LDAP.into(), dn });
    p.groups = groups.iter().map(|g| g.to_string()).collect();
    p
}

fn oidc(subject: &str, scopes: &[&str], claims: Value) -> Principal {
    let mut p = Principal::new(subject, Source::Oidc { issuer: "https://idp.test".into() });
    p.scopes = scopes.iter().map(|s| s.to_string()).collect();
    p.claims = claims.as_object().unwrap().clone();
    p
}

#[test]
fn unit_visibility_follows_the_units_constraints() {
    let e = engine(Unconstrained::Authenticated);
    let health = unit(
        "urn:health:vienna",
        "1",
        json!([
            {"type": "ldap", "url": LDAP, "dn": "cn=health,ou=groups,dc=civitas,dc=test"},
            {"type": "rbac", "roles": ["auditor"]},
            {"type": "oauth", "issuer": "https://idp.test", "scopes": ["health:read"], "claims": {"organisation": ["AKH", "City"]}}
        ]),
        json!([]),
    );
    let anonymous = Principal::anonymous();
    let d = e.unit_visible(&anonymous, &health);
    assert!(!d.allowed);
    assert_eq!(&*d.rule, "urn:health:vienna securityConstraints (ldap, rbac, oauth)");

    let member = ldap_user("carol", &["health", "cn=health,ou=groups,dc=civitas,dc=test"]);
    let d = e.unit_visible(&member, &health);
    assert!(d.allowed);
    assert_eq!(&*d.rule, "urn:health:vienna securityConstraints[0] (ldap)");

    // The same group name from another directory does not count.
    let mut elsewhere = member.clone();
    elsewhere.source =
        Source::Ldap { url: "ldap://other:389".into(), dn: "uid=carol,ou=people,dc=civitas,dc=test".into() };
    assert!(!e.unit_visible(&elsewhere, &health).allowed);

    assert!(!e.unit_visible(&ldap_user("bob", &["planners"]), &health).allowed);
    let d = e.unit_visible(&local("dana", &["auditor"]), &health);
    assert_eq!((d.allowed, &*d.rule), (true, "urn:health:vienna securityConstraints[1] (rbac)"));
    assert!(!e.unit_visible(&local("erin", &["planner"]), &health).allowed);

    let ok = oidc("frank", &["health:read", "other"], json!({"organisation": "AKH"}));
    let d = e.unit_visible(&ok, &health);
    assert_eq!((d.allowed, &*d.rule), (true, "urn:health:vienna securityConstraints[2] (oauth)"));
    assert!(!e.unit_visible(&oidc("g", &["other"], json!({"organisation": "AKH"})), &health).allowed, "missing scope");
    assert!(
        !e.unit_visible(&oidc("h", &["health:read"], json!({"organisation": "Shop"})), &health).allowed,
        "wrong claim"
    );
    let mut other_issuer = ok.clone();
    other_issuer.source = Source::Oidc { issuer: "https://evil.test".into() };
    assert!(!e.unit_visible(&other_issuer, &health).allowed, "wrong issuer");
}

#[test]
fn public_only_when_it_says_so_and_unconstrained_follows_the_config() {
    let plain = unit("urn:buildings:vienna", "1", json!([]), json!([]));
    let public = unit("urn:bus:vienna", "1", json!([{"type": "public"}]), json!([]));
    let anonymous = Principal::anonymous();
    let alice = local("alice", &[]);

    let e = engine(Unconstrained::Authenticated);
    assert!(!e.unit_visible(&anonymous, &plain).allowed);
    assert_eq!(&*e.unit_visible(&alice, &plain).rule, "default unconstrained=authenticated");
    assert!(e.unit_visible(&alice, &plain).allowed);
    let d = e.unit_visible(&anonymous, &public);
    assert_eq!((d.allowed, &*d.rule), (true, "urn:bus:vienna securityConstraints[0] (public)"));

    let deny = engine(Unconstrained::Deny);
    assert!(!deny.unit_visible(&alice, &plain).allowed);
    assert!(deny.unit_visible(&anonymous, &public).allowed);
    assert!(engine(Unconstrained::Public).unit_visible(&anonymous, &plain).allowed);
}

#[test]
fn malformed_or_unknown_constraints_admit_nobody() {
    let e = engine(Unconstrained::Public);
    for c in [
        json!({"type": "rbac"}),
        json!({"type": "rbac", "roles": "planner", "extra": 1}),
        json!({"type": "oauth", "claims": "x"}),
        json!({"type": "kerberos", "realm": "CITY"}),
        json!({"type": "public", "but": "only on tuesdays"}),
    ] {
        let u = unit("urn:xx:y", "1", json!([c.clone()]), json!([]));
        let d = e.unit_visible(&local("root", &["planner"]), &u);
        assert!(!d.allowed, "{c} must admit nobody");
        assert!(validate_constraints(&u.metainformation.security_constraints).is_err(), "{c}");
    }
    let good = unit("urn:xx:z", "1", json!([{"type": "rbac", "roles": "planner"}]), json!([]));
    assert!(validate_constraints(&good.metainformation.security_constraints).is_ok());
}

#[test]
fn views_decide_with_their_own_constraints_or_inherit_the_units() {
    let e = engine(Unconstrained::Authenticated);
    let u = unit(
        "urn:buildings:vienna",
        "1",
        json!([{"type": "rbac", "roles": ["planner"]}]),
        json!([
            {"name": "blocks", "link": "/blocks"},
            {"name": "open", "link": "/open", "securityConstraints": [{"type": "public"}]},
            {"name": "energy", "link": "/energy", "securityConstraints": [{"type": "rbac", "roles": ["energy"]}]}
        ]),
    );
    let planner = local("alice", &["planner"]);
    let anonymous = Principal::anonymous();
    let blocks = urn("urn:buildings:vienna:blocks");
    let d = e.view_read(&planner, &u, &blocks);
    assert_eq!((d.allowed, &*d.rule), (true, "urn:buildings:vienna securityConstraints[0] (rbac)"), "inherited");
    assert!(!e.view_read(&local("bob", &[]), &u, &blocks).allowed);
    assert!(e.view_read(&anonymous, &u, &urn("urn:buildings:vienna:open")).allowed);
    assert!(
        !e.view_read(&planner, &u, &urn("urn:buildings:vienna:energy")).allowed,
        "the view's rules replace the unit's"
    );
    let d = e.view_read(&local("eve", &["energy"]), &u, &urn("urn:buildings:vienna:energy"));
    assert_eq!((d.allowed, &*d.rule), (true, "urn:buildings:vienna:energy securityConstraints[0] (rbac)"));
    // The same decisions from a policy compiled beforehand, as the data plane keeps it.
    for (i, v) in u.views.iter().enumerate() {
        let compiled = ViewSecurity::new(&u, v);
        for who in [&planner, &anonymous] {
            assert_eq!(e.view_read_compiled(who, &compiled), e.view_read(who, &u, &v.name), "view {i}");
        }
    }
    let d = e.view_read(&planner, &u, &urn("urn:buildings:vienna:nothing"));
    assert_eq!((d.allowed, &*d.rule), (false, "unknown view"));
}

fn site(name: &str, region: &str, jurisdiction: Option<&str>, tier: &str) -> SiteTarget {
    SiteTarget {
        name: name.into(),
        region: region.into(),
        jurisdiction: jurisdiction.map(Into::into),
        tier: tier.into(),
    }
}

#[test]
fn migration_constraints_allow_and_deny_targets_with_reasons() {
    let e = engine(Unconstrained::Authenticated);
    let u = unit(
        "urn:health:vienna",
        "1",
        json!([{"type": "migration", "jurisdictions": ["AT"]}]),
        json!([
            {"name": "wards", "link": "/wards", "securityConstraints": [{"type": "migration", "tiers": ["fog", "cloud"], "regions": ["eu-central"]}]},
            {"name": "records", "link": "/records", "securityConstraints": [{"type": "migration", "replicate": false}]},
            {"name": "beds", "link": "/beds", "securityConstraints": [{"type": "migration", "sites": ["urn:site:vienna-fog"]}]}
        ]),
    );
    let wards = &u.views[0];
    let vienna = site("urn:site:vienna-fog", "eu-central", Some("AT"), "fog");
    let d = e.migration_target(None, &u, Some(wards), &vienna);
    assert!(d.allowed, "{d:?}");
    let planner = local("alice", &["planner"]);
    assert!(e.migration_target(Some(&planner), &u, Some(wards), &vienna).allowed, "on behalf of a person too");
    assert_eq!(&*d.resource, "urn:health:vienna:wards -> urn:site:vienna-fog");

    let munich = site("urn:site:munich", "eu-central", Some("DE"), "cloud");
    let d = e.migration_target(None, &u, Some(wards), &munich);
    assert_eq!(
        (d.allowed, &*d.rule, &*d.reason),
        (false, "urn:health:vienna securityConstraints[0] (migration)", "jurisdiction DE is not allowed")
    );
    let edge = site("urn:site:vienna-edge", "eu-central", Some("AT"), "edge");
    assert_eq!(&*e.migration_target(None, &u, Some(wards), &edge).reason, "tier edge is not allowed");
    let nowhere = site("urn:site:x", "eu-central", None, "fog");
    assert_eq!(
        &*e.migration_target(None, &u, Some(wards), &nowhere).reason,
        "site urn:site:x declares no jurisdiction"
    );

    let d = e.migration_target(None, &u, Some(&u.views[1]), &vienna);
    assert_eq!((d.allowed, &*d.reason), (false, "the view may never be replicated"));
    assert!(e.migration_target(None, &u, Some(&u.views[2]), &vienna).allowed);
    let other_at = site("urn:site:graz", "eu-central", Some("AT"), "fog");
    assert_eq!(
        &*e.migration_target(None, &u, Some(&u.views[2]), &other_at).reason,
        "site urn:site:graz is not an allowed target"
    );

    let free = unit("urn:bus:vienna", "1", json!([]), json!([{"name": "stops", "link": "/stops"}]));
    let d = e.migration_target(None, &free, Some(&free.views[0]), &munich);
    assert_eq!((d.allowed, &*d.rule), (true, "no migration constraint"));
}

#[test]
fn decisions_are_cached_per_version_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.ndjson");
    let metrics = SecurityMetrics::default();
    let (audit, writer) = AuditLog::start(&path, &AuditConfig::default(), metrics.clone()).unwrap();
    let e = PolicyEngine::new(Unconstrained::Authenticated, Duration::from_secs(60), 100, Some(audit), metrics.clone());
    let alice = local("alice", &["planner"]);
    let v1 = unit("urn:xx:u", "1", json!([{"type": "rbac", "roles": ["planner"]}]), json!([]));
    let v2 = unit("urn:xx:u", "2", json!([{"type": "rbac", "roles": ["admin"]}]), json!([]));
    assert!(e.unit_visible(&alice, &v1).allowed);
    assert!(e.unit_visible(&alice, &v1).allowed);
    assert!(!e.unit_visible(&alice, &v2).allowed, "a new version is decided afresh");
    assert!(!e.unit_visible(&alice, &v2).allowed);
    assert_eq!((metrics.decisions(true, "unit"), metrics.decisions(false, "unit")), (2, 2), "every decision counts");
    drop(e);
    writer.finish().unwrap();

    let records: Vec<AuditRecord> =
        std::fs::read_to_string(&path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    // Fresh decisions and every denial are written; a cached allow repeats a logged one.
    assert_eq!(
        records.iter().map(|r| (r.decision.as_str(), r.cached)).collect::<Vec<_>>(),
        [("allow", false), ("deny", false), ("deny", true)]
    );
    let r = &records[1];
    assert_eq!(
        (r.subject.as_str(), r.source.as_str(), r.kind.as_str(), r.resource.as_str()),
        ("alice", "local", "unit", "urn:xx:u")
    );
    assert_eq!(r.rule, "urn:xx:u securityConstraints (rbac)");
    assert_eq!(r.issuer.as_deref(), Some("civitas-local"));
}

#[tokio::test]
async fn the_catalog_tree_hides_units_the_caller_may_not_see() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(&dir.path().join("catalog.redb"), RedbOptions::default()).unwrap();
    let catalog = Catalog::new(Arc::new(store));
    let doc = |v: Value| Document::decode(&v).unwrap();
    let docs = vec![
        doc(json!({"@type": "DataUnit", "name": "urn:health:vienna", "version": "1",
            "metainformation": {"type": "rest", "securityConstraints": [{"type": "rbac", "roles": ["doctor"]}]},
            "views": [{"name": "wards", "link": "/wards"}]})),
        doc(json!({"@type": "DataUnit", "name": "urn:bus:vienna", "version": "1",
            "metainformation": {"type": "rest", "securityConstraints": [{"type": "public"}]},
            "views": [{"name": "stops", "link": "/stops"}]})),
    ];
    catalog.apply(docs, ApplyOptions { dry_run: false, indexed_pointers: true }).await.unwrap();
    let e = Arc::new(engine(Unconstrained::Deny));
    let anonymous = e.access_check(Arc::new(Principal::anonymous()));
    let doctor = e.access_check(Arc::new(local("dr", &["doctor"])));

    let health = urn("urn:health:vienna");
    assert!(matches!(catalog.tree_with(&health, &anonymous).await, Err(CatalogError::NotFound { .. })), "404, not 403");
    let instance = doc(json!({"@type": "DataInstance", "name": "urn:health:vienna-origin", "version": "1",
        "dataUnit": "urn:health:vienna", "views": ["wards"], "endpoint": "http://127.0.0.1:9000"}));
    assert_eq!(governing_unit(&instance), Some(&health), "an instance is as visible as its unit");
    let site = doc(json!({"@type": "Site", "name": "urn:site:vienna", "version": "1", "tier": "fog", "region": "eu"}));
    assert_eq!(governing_unit(&site), None);
    assert_eq!(catalog.tree_with(&health, &doctor).await.unwrap().views.len(), 1);
    assert!(catalog.tree_with(&urn("urn:bus:vienna"), &anonymous).await.is_ok());
}

#[test]
fn administration_needs_an_admin_role() {
    let e = engine(Unconstrained::Public).with_admin_roles(vec!["operator".into()]);
    let d = e.administer(&local("root", &["operator"]), "token.create");
    assert_eq!((d.allowed, &*d.reason, d.kind.as_str()), (true, "role operator", "admin"));
    assert!(!e.administer(&local("alice", &["admin", "planner"]), "token.create").allowed);
    assert!(!e.administer(&Principal::anonymous(), "token.list").allowed);
    assert!(e.administer(&Principal::node("civitas-node"), "token.revoke").allowed);
}
