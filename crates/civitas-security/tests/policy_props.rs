//! Properties of policy decisions over random constraint lists and principals:
//! anonymous callers get in only through `public`; the cache never changes a decision;
//! an allowed decision always names a constraint of the right owner.

use std::time::Duration;

use civitas_model::{DataUnit, Document};
use civitas_security::config::Unconstrained;
use civitas_security::{PolicyEngine, Principal, SecurityMetrics, Source};
use proptest::prelude::*;
use serde_json::{Value, json};

fn constraint() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!({"type": "public"})),
        Just(json!({"type": "public", "extra": 1})),
        prop::sample::select(vec!["planner", "doctor"]).prop_map(|r| json!({"type": "rbac", "roles": [r]})),
        prop::sample::select(vec!["health", "planners"]).prop_map(|g| json!({"type": "rbac", "groups": [g]})),
        Just(json!({"type": "ldap", "url": "ldap://127.0.0.1:3890", "dn": "cn=health,ou=groups,dc=civitas,dc=test"})),
        Just(json!({"type": "oauth", "issuer": "https://idp.test", "scopes": ["read"]})),
        Just(json!({"type": "migration", "replicate": false})),
        Just(json!({"type": "kerberos"})),
    ]
}

fn principal() -> impl Strategy<Value = Principal> {
    (0..5u8, prop::collection::btree_set(prop::sample::select(vec!["planner", "doctor", "health"]), 0..3)).prop_map(
        |(kind, names)| {
            let names = names.into_iter().map(str::to_owned).collect();
            match kind {
                0 => Principal::anonymous(),
                1 => {
                    let mut p = Principal::new("a", Source::LocalToken { issuer: "civitas-local".into() });
                    p.roles = names;
                    p
                }
                2 => {
                    let mut p = Principal::new("b", Source::Oidc { issuer: "https://idp.test".into() });
                    p.scopes = names;
                    p
                }
                3 => {
                    let dn = "uid=c,ou=people,dc=civitas,dc=test".to_owned();
                    let mut p = Principal::new("c", Source::Ldap { url: "ldap://127.0.0.1:3890".into(), dn });
                    p.groups = names;
                    p
                }
                _ => Principal::node("n"),
            }
        },
    )
}

fn unit(constraints: &[Value]) -> DataUnit {
    let doc = json!({"@type": "DataUnit", "name": "urn:prop:unit", "version": "1",
        "metainformation": {"type": "rest", "securityConstraints": constraints}, "views": []});
    match Document::decode(&doc).unwrap() {
        Document::DataUnit(u) => u,
        _ => unreachable!(),
    }
}

fn unconstrained() -> impl Strategy<Value = Unconstrained> {
    prop::sample::select(vec![Unconstrained::Authenticated, Unconstrained::Deny, Unconstrained::Public])
}

proptest! {
    #[test]
    fn anonymous_only_through_public(constraints in prop::collection::vec(constraint(), 0..5), mode in unconstrained()) {
        let u = unit(&constraints);
        let e = PolicyEngine::new(mode, Duration::ZERO, 10, None, SecurityMetrics::default());
        let d = e.unit_visible(&Principal::anonymous(), &u);
        let valid_public = constraints.iter().any(|c| c == &json!({"type": "public"}));
        let has_access_rule = constraints.iter().any(|c| c["type"] != "migration");
        let expected = valid_public || (!has_access_rule && mode == Unconstrained::Public);
        prop_assert_eq!(d.allowed, expected, "{:?}", d);
    }

    #[test]
    fn the_cache_never_changes_a_decision(
        constraints in prop::collection::vec(constraint(), 0..5),
        principals in prop::collection::vec(principal(), 1..6),
        mode in unconstrained(),
    ) {
        let u = unit(&constraints);
        let cached = PolicyEngine::new(mode, Duration::from_secs(60), 100, None, SecurityMetrics::default());
        let uncached = PolicyEngine::new(mode, Duration::ZERO, 100, None, SecurityMetrics::default());
        for _ in 0..2 {
            for p in &principals {
                let (a, b) = (cached.unit_visible(p, &u), uncached.unit_visible(p, &u));
                prop_assert_eq!(&a, &b);
                if a.allowed && !a.rule.starts_with("default") {
                    prop_assert!(a.rule.starts_with("urn:prop:unit securityConstraints["), "{}", a.rule);
                }
            }
        }
    }
}
