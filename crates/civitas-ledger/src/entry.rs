//! Typed ledger entries and their canonical JSON.
//!
//! An entry is `{"data": {...}, "kind": "..."}` in canonical form: object keys sorted by
//! their UTF-8 bytes (which is Unicode code point order), no insignificant whitespace,
//! strings escaped as `serde_json` escapes them (only `"`, `\` and control characters),
//! numbers as `serde_json` writes them (integers verbatim, floats in shortest round-trip
//! form). The canonical bytes are what the log stores and hashes as the leaf, so the same
//! entry always has the same leaf hash, and a verifier can recompute it from the JSON.

use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Value};

use crate::merkle::{Hash, leaf_hash};

/// The largest canonical entry, in bytes: tlog-tiles entry bundles prefix every entry with
/// a 16-bit length.
pub const MAX_ENTRY_BYTES: usize = u16::MAX as usize;

/// What an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntryKind {
    /// A marketplace deal between a requester and a provider.
    Deal,
    /// A task execution under a deal.
    Task,
    /// A data-placement migration decision (plan, confidence, outcome).
    MigrationDecision,
    /// The root of a batch of audit-log records, anchoring that batch.
    AuditAnchor,
    /// Free-form text or data an operator wants on the record.
    Note,
}

impl EntryKind {
    /// Every kind, in documentation order.
    pub const ALL: [EntryKind; 5] =
        [EntryKind::Deal, EntryKind::Task, EntryKind::MigrationDecision, EntryKind::AuditAnchor, EntryKind::Note];

    /// The kind as written in JSON: `deal`, `task`, `migration-decision`, `audit-anchor`, `note`.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Deal => "deal",
            EntryKind::Task => "task",
            EntryKind::MigrationDecision => "migration-decision",
            EntryKind::AuditAnchor => "audit-anchor",
            EntryKind::Note => "note",
        }
    }
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EntryKind {
    type Err = EntryError;
    fn from_str(s: &str) -> Result<EntryKind, EntryError> {
        EntryKind::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| EntryError::UnknownKind(s.to_string()))
    }
}

impl serde::Serialize for EntryKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for EntryKind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<EntryKind, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Why some JSON is not a valid entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// `kind` names no entry kind.
    #[error("/kind: unknown entry kind {0:?}; expected one of deal, task, migration-decision, audit-anchor, note")]
    UnknownKind(String),
    /// A required member is absent or of the wrong JSON type.
    #[error("{pointer}: {detail}")]
    Shape {
        /// JSON pointer of the offending member.
        pointer: &'static str,
        /// What is wrong.
        detail: &'static str,
    },
    /// A member other than `kind` and `data`.
    #[error("/{0}: unknown member; an entry has only `kind` and `data`")]
    UnknownMember(String),
    /// The canonical form is too large for the log.
    #[error("the entry is {size} bytes in canonical form; the most a ledger entry may have is {max}")]
    TooLarge {
        /// Canonical size.
        size: usize,
        /// [`MAX_ENTRY_BYTES`].
        max: usize,
    },
    /// Not JSON at all.
    #[error("not JSON: {0}")]
    Json(String),
    /// Valid JSON, but not byte-for-byte the canonical form (keys unsorted, spaces, a
    /// different escape or number spelling).
    #[error("the entry is not in canonical form (sorted keys, no whitespace), as `civitas ledger get` prints it")]
    NotCanonical,
}

/// One ledger entry: a kind and a JSON object of data.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// What the entry records.
    pub kind: EntryKind,
    /// Its content: any JSON object.
    pub data: Map<String, Value>,
}

impl Entry {
    /// An entry of `kind` with `data`, which must be a JSON object.
    pub fn new(kind: EntryKind, data: Value) -> Result<Entry, EntryError> {
        match data {
            Value::Object(data) => Ok(Entry { kind, data }),
            _ => Err(EntryError::Shape { pointer: "/data", detail: "must be a JSON object" }),
        }
    }

    /// An entry from `{"kind": "...", "data": {...}}`; any other member is an error.
    pub fn from_value(value: Value) -> Result<Entry, EntryError> {
        let Value::Object(mut object) = value else {
            return Err(EntryError::Shape {
                pointer: "",
                detail: "an entry must be a JSON object with `kind` and `data`",
            });
        };
        let kind = match object.remove("kind") {
            Some(Value::String(kind)) => kind.parse()?,
            Some(_) => return Err(EntryError::Shape { pointer: "/kind", detail: "must be a string" }),
            None => return Err(EntryError::Shape { pointer: "/kind", detail: "is required" }),
        };
        let data = match object.remove("data") {
            Some(Value::Object(data)) => data,
            Some(_) => return Err(EntryError::Shape { pointer: "/data", detail: "must be a JSON object" }),
            None => return Err(EntryError::Shape { pointer: "/data", detail: "is required" }),
        };
        if let Some(other) = object.keys().next() {
            return Err(EntryError::UnknownMember(other.clone()));
        }
        Ok(Entry { kind, data })
    }

    /// Parses JSON text of any formatting.
    pub fn from_json(bytes: &[u8]) -> Result<Entry, EntryError> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| EntryError::Json(e.to_string()))?;
        Entry::from_value(value)
    }

    /// Parses bytes that must be exactly the canonical form of an entry: anything else,
    /// even the same entry formatted differently, is rejected, so a changed byte cannot go
    /// unnoticed.
    pub fn from_canonical(bytes: &[u8]) -> Result<Entry, EntryError> {
        let entry = Entry::from_json(bytes)?;
        if entry.to_canonical()? != bytes {
            return Err(EntryError::NotCanonical);
        }
        Ok(entry)
    }

    /// The canonical bytes that the log stores and hashes.
    pub fn to_canonical(&self) -> Result<Vec<u8>, EntryError> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(b"{\"data\":");
        write_object(&self.data, &mut out);
        out.extend_from_slice(b",\"kind\":\"");
        out.extend_from_slice(self.kind.as_str().as_bytes());
        out.extend_from_slice(b"\"}");
        if out.len() > MAX_ENTRY_BYTES {
            return Err(EntryError::TooLarge { size: out.len(), max: MAX_ENTRY_BYTES });
        }
        Ok(out)
    }

    /// The RFC 6962 leaf hash of the canonical bytes.
    pub fn leaf_hash(&self) -> Result<Hash, EntryError> {
        Ok(leaf_hash(&self.to_canonical()?))
    }

    /// The entry as a JSON value (`kind`, `data`).
    pub fn to_value(&self) -> Value {
        let mut object = Map::new();
        object.insert("data".into(), Value::Object(self.data.clone()));
        object.insert("kind".into(), Value::String(self.kind.as_str().into()));
        Value::Object(object)
    }
}

/// Writes `value` as canonical JSON (sorted keys, no whitespace).
pub fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        Value::Object(object) => write_object(object, out),
    }
}

fn write_object(object: &Map<String, Value>, out: &mut Vec<u8>) {
    let mut members: Vec<(&String, &Value)> = object.iter().collect();
    members.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    out.push(b'{');
    for (i, (key, value)) in members.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(key, out);
        out.push(b':');
        write_canonical(value, out);
    }
    out.push(b'}');
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    // serde_json's escaping is deterministic: `"`, `\` and control characters only.
    serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_form_sorts_keys_and_drops_whitespace() {
        let entry = Entry::from_json(
            br#" { "kind" : "deal", "data": {"z": 1, "a": [true, null, {"y": "\u00e9", "b": 1.5}]} } "#,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(entry.to_canonical().unwrap()).unwrap(),
            r#"{"data":{"a":[true,null,{"b":1.5,"y":"é"}],"z":1},"kind":"deal"}"#
        );
    }

    #[test]
    fn canonical_bytes_are_the_only_accepted_spelling() {
        let canonical = br#"{"data":{"a":1},"kind":"note"}"#;
        assert!(Entry::from_canonical(canonical).is_ok());
        for variant in [&br#"{"kind":"note","data":{"a":1}}"#[..], br#"{"data":{"a":1}, "kind":"note"}"#] {
            assert_eq!(Entry::from_canonical(variant), Err(EntryError::NotCanonical));
        }
    }

    #[test]
    fn shape_errors_name_the_member() {
        let err = |v: Value| Entry::from_value(v).unwrap_err().to_string();
        assert!(err(json!({"kind": "bribe", "data": {}})).starts_with("/kind: unknown entry kind \"bribe\""));
        assert!(err(json!({"kind": "note", "data": []})).starts_with("/data: must be a JSON object"));
        assert!(err(json!({"kind": "note"})).starts_with("/data: is required"));
        assert!(err(json!({"kind": "note", "data": {}, "extra": 1})).starts_with("/extra: unknown member"));
        assert!(err(json!([1])).contains("must be a JSON object"));
    }

    #[test]
    fn kinds_round_trip() {
        for kind in EntryKind::ALL {
            assert_eq!(kind.as_str().parse::<EntryKind>().unwrap(), kind);
        }
    }

    #[test]
    fn too_large_entries_are_refused() {
        let entry = Entry::new(EntryKind::Note, json!({"text": "x".repeat(MAX_ENTRY_BYTES)})).unwrap();
        assert!(matches!(entry.to_canonical(), Err(EntryError::TooLarge { .. })));
    }
}
