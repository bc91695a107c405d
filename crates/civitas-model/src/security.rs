//! Security constraints as the paper writes them: `{"type": "ldap", "url": ..., "dn": ...}`.
//!
//! This crate only reads and checks their shape; deciding who may do what is
//! the security crate's job (a later issue).

use serde_json::{Map, Value, json};

use crate::reader::{Errors, ObjectReader};

/// One constraint: a kind (`ldap`, `oauth`, `rbac`, `public`…) and its parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct SecurityConstraint {
    /// The strategy the constraint is for, in lower case.
    pub kind: String,
    /// Its other fields, kept as given (`url`, `dn`, `issuer`, `roles`…).
    pub parameters: Map<String, Value>,
}

impl SecurityConstraint {
    pub(crate) fn decode(value: &Value, pointer: &str, errs: &mut Errors) -> Option<SecurityConstraint> {
        let mut r = ObjectReader::new(value, pointer, errs)?;
        let kind = r.req_str("type", errs)?.to_ascii_lowercase();
        if kind.is_empty() {
            errs.push(&r.at("type"), "must not be empty");
            return None;
        }
        let parameters = r.rest();
        // The paper's LDAP constraint names a directory and a DN; both are needed to check it.
        if kind == "ldap" {
            for key in ["url", "dn"] {
                match parameters.get(key) {
                    Some(Value::String(s)) if !s.trim().is_empty() => {}
                    Some(_) => errs.push(&r.at(key), "must be a non-empty string"),
                    None => errs.push(&r.at(key), format!("an ldap constraint needs `{key}`")),
                }
            }
        }
        Some(SecurityConstraint { kind, parameters })
    }

    pub(crate) fn encode(&self) -> Value {
        let mut m = Map::new();
        m.insert("type".into(), json!(self.kind));
        if let Value::Object(params) = crate::codec::sorted(&Value::Object(self.parameters.clone())) {
            m.extend(params);
        }
        Value::Object(m)
    }

    pub(crate) fn decode_list(r: &mut ObjectReader<'_>, errs: &mut Errors) -> Vec<SecurityConstraint> {
        r.opt_array("securityConstraints", errs)
            .into_iter()
            .filter_map(|(ptr, v)| SecurityConstraint::decode(v, &ptr, errs))
            .collect()
    }

    pub(crate) fn encode_list(m: &mut Map<String, Value>, list: &[SecurityConstraint]) {
        if !list.is_empty() {
            m.insert("securityConstraints".into(), Value::Array(list.iter().map(Self::encode).collect()));
        }
    }
}
