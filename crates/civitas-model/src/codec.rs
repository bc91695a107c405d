//! Shared pieces of the JSON-LD codec: the document header and number formatting.

use serde_json::{Map, Number, Value, json};

use crate::name::{Urn, check_version};
use crate::reader::{Errors, ObjectReader};
use crate::time::{Timestamp, format_timestamp, parse_timestamp};

/// The fields every document starts with.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// The document's URN.
    pub name: Urn,
    /// Its version; a changed document needs a new version.
    pub version: String,
    /// When the described thing was first described.
    pub creation_date: Option<Timestamp>,
    /// When its description last changed.
    pub last_update: Option<Timestamp>,
}

impl Header {
    /// Reads the header; `@context` and `@type` are consumed here too
    /// (any input context is accepted and never fetched: output uses Civitas' own).
    pub(crate) fn decode(r: &mut ObjectReader<'_>, errs: &mut Errors) -> Option<Header> {
        r.raw("@context");
        r.raw("@type");
        r.raw("@id");
        let name = urn_field(r, "name", errs);
        let version = match r.opt_str("version", errs) {
            None => {
                if r.obj.get("version").is_none_or(Value::is_null) {
                    errs.push(&r.at("version"), "`version` is required");
                }
                None
            }
            Some(v) => check_version(&v).map(|_| v).map_err(|e| errs.push(&r.at("version"), e)).ok(),
        };
        let creation_date = timestamp_field(r, "creationDate", errs);
        // The paper's Listing 2 text calls it `updateDate`; its JSON says `lastUpdate`.
        let last_update = timestamp_field(r, "lastUpdate", errs).or_else(|| timestamp_field(r, "updateDate", errs));
        Some(Header { name: name?, version: version?, creation_date, last_update })
    }

    /// Writes `@context`, `@type` and the header fields, in canonical order.
    pub(crate) fn encode(&self, type_name: &str) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("@context".into(), json!(crate::context::CONTEXT_URL));
        m.insert("@type".into(), json!(type_name));
        m.insert("name".into(), json!(self.name.as_str()));
        m.insert("version".into(), json!(self.version));
        if let Some(t) = &self.creation_date {
            m.insert("creationDate".into(), json!(format_timestamp(t)));
        }
        if let Some(t) = &self.last_update {
            m.insert("lastUpdate".into(), json!(format_timestamp(t)));
        }
        m
    }
}

/// A required URN field.
pub(crate) fn urn_field(r: &mut ObjectReader<'_>, key: &'static str, errs: &mut Errors) -> Option<Urn> {
    let s = r.req_str(key, errs)?;
    Urn::parse(&s).map_err(|e| errs.push(&r.at(key), e)).ok()
}

/// An optional URN field.
pub(crate) fn opt_urn_field(r: &mut ObjectReader<'_>, key: &'static str, errs: &mut Errors) -> Option<Urn> {
    let s = r.opt_str(key, errs)?;
    Urn::parse(&s).map_err(|e| errs.push(&r.at(key), e)).ok()
}

/// An optional array of URNs, each validated at its own pointer; duplicates are errors.
pub(crate) fn urn_array(r: &mut ObjectReader<'_>, key: &'static str, errs: &mut Errors) -> Vec<Urn> {
    let mut out: Vec<Urn> = Vec::new();
    for (ptr, s) in r.opt_str_array(key, errs) {
        match Urn::parse(&s) {
            Ok(u) if out.contains(&u) => errs.push(&ptr, format!("{u} is listed twice")),
            Ok(u) => out.push(u),
            Err(e) => errs.push(&ptr, e),
        }
    }
    out
}

fn timestamp_field(r: &mut ObjectReader<'_>, key: &'static str, errs: &mut Errors) -> Option<Timestamp> {
    let s = r.opt_str(key, errs)?;
    parse_timestamp(&s).map_err(|e| errs.push(&r.at(key), e)).ok()
}

/// An optional absolute `http`/`https` URL.
pub(crate) fn url_field(r: &mut ObjectReader<'_>, key: &'static str, errs: &mut Errors) -> Option<String> {
    let s = r.opt_str(key, errs)?;
    check_http_url(&s).map_err(|e| errs.push(&r.at(key), e)).ok()
}

/// Validates an absolute `http://` or `https://` URL with a host and returns it without a trailing `/`.
pub fn check_http_url(s: &str) -> Result<String, String> {
    let uri: http::Uri = s.parse().map_err(|_| format!("{s:?} is not a URL"))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => return Err(format!("{s:?} must be an absolute http:// or https:// URL")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("{s:?} has no host"));
    }
    if uri.query().is_some() || s.contains('#') {
        return Err(format!("{s:?} must not carry a query string or a fragment"));
    }
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(format!("{s:?} must not carry user information; credentials never go in documents"));
    }
    if let Some(port) = uri.authority().and_then(|a| a.as_str().rsplit_once(':')).map(|(_, p)| p)
        && !port.ends_with(']')
        && port.parse::<u16>().is_err()
    {
        return Err(format!("{s:?} has an invalid port"));
    }
    Ok(s.trim_end_matches('/').to_string())
}

/// A number written as an integer when it is one, so `10` stays `10`, not `10.0`.
pub(crate) fn number(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        json!(n as i64)
    } else {
        Number::from_f64(n).map(Value::Number).unwrap_or(Value::Null)
    }
}

/// Inserts `key` only when the list is non-empty.
pub(crate) fn put_urns(m: &mut Map<String, Value>, key: &str, urns: &[Urn]) {
    if !urns.is_empty() {
        m.insert(key.into(), Value::Array(urns.iter().map(|u| json!(u.as_str())).collect()));
    }
}

/// Inserts `key` only when the map is non-empty, with its keys sorted (see [`sorted`]).
pub(crate) fn put_map(m: &mut Map<String, Value>, key: &str, map: &Map<String, Value>) {
    if !map.is_empty() {
        m.insert(key.into(), sorted(&Value::Object(map.clone())));
    }
}

/// A copy of a free-form value with every object's keys in sorted order, so that open
/// blocks that compare equal (key order does not matter) also encode to equal bytes.
pub(crate) fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(&String, &Value)> = m.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k.clone(), sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}
