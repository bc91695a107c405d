//! Data units (the paper's DAU) and their views.

use serde_json::{Map, Value, json};

use crate::codec::{Header, put_urns, urn_array};
use crate::frequency::UpdateFrequency;
use crate::name::Urn;
use crate::reader::{Errors, ObjectReader};
use crate::security::SecurityConstraint;

/// A data source, described once by its holder: what it is and which views of it exist.
#[derive(Debug, Clone, PartialEq)]
pub struct DataUnit {
    /// Name, version and dates.
    pub header: Header,
    /// What the source is (`metainformation`).
    pub metainformation: UnitMetainformation,
    /// Its independently accessible subsets; names are unique within the unit.
    pub views: Vec<View>,
}

/// The `metainformation` block of a data unit.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitMetainformation {
    /// Source type: `rest`, `soap`, `nosql:mongodb`, `sql:postgresql`, `file`, `stream:mqtt`…
    pub source_type: String,
    /// A link to the source's schema (SQL schema, JSON Schema, WADL, WSDL…).
    pub schema: Option<String>,
    /// Who may see this unit's description.
    pub security_constraints: Vec<SecurityConstraint>,
    /// Linked data units.
    pub data_units: Vec<Urn>,
    /// Any other fields, kept as given.
    pub extra: Map<String, Value>,
}

/// An independently accessible subset of a data unit.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    /// Full name inside the unit's namespace (`urn:buildings:vienna:blocks`).
    pub name: Urn,
    /// How to reach it relative to an instance's endpoint (`/blocks/`).
    pub link: String,
    /// How often it changes.
    pub update_frequency: Option<UpdateFrequency>,
    /// Expected size in bytes.
    pub size_bytes: Option<u64>,
    /// Who may read (and move) this view.
    pub security_constraints: Vec<SecurityConstraint>,
    /// Instances the description names as serving this view (informational;
    /// the catalog checks that they exist and derives the authoritative list).
    pub data_instances: Vec<Urn>,
}

impl DataUnit {
    /// The `@type` of data units.
    pub const TYPE: &'static str = "DataUnit";

    /// Finds a view by full name or by its last segment (`blocks`).
    pub fn view(&self, name: &str) -> Option<&View> {
        self.views.iter().find(|v| v.name.as_str() == name || v.name.local_name() == name)
    }

    pub(crate) fn decode(r: &mut ObjectReader<'_>, errs: &mut Errors) -> Option<DataUnit> {
        let header = Header::decode(r, errs);
        // Views are checked against the unit's name even when another header field is bad,
        // so that every error is reported at once.
        let unit_name = header
            .as_ref()
            .map(|h| h.name.clone())
            .or_else(|| r.obj.get("name").and_then(serde_json::Value::as_str).and_then(|s| Urn::parse(s).ok()));
        let meta = match r.raw("metainformation") {
            None => {
                errs.push(&r.at("metainformation"), "`metainformation` is required (at least its `type`)");
                None
            }
            Some(v) => UnitMetainformation::decode(v, &r.at("metainformation"), errs),
        };
        let mut views: Vec<View> = Vec::new();
        for (ptr, v) in r.opt_array("views", errs) {
            let Some(view) = View::decode(v, &ptr, unit_name.as_ref(), errs) else { continue };
            if views.iter().any(|other| other.name == view.name) {
                errs.push(&format!("{ptr}/name"), format!("duplicate view name {}", view.name));
            } else {
                views.push(view);
            }
        }
        r.deny_unknown(errs);
        Some(DataUnit { header: header?, metainformation: meta?, views })
    }

    pub(crate) fn encode(&self) -> Map<String, Value> {
        let mut m = self.header.encode(Self::TYPE);
        m.insert("metainformation".into(), self.metainformation.encode());
        m.insert("views".into(), Value::Array(self.views.iter().map(View::encode).collect()));
        m
    }
}

impl UnitMetainformation {
    fn decode(value: &Value, pointer: &str, errs: &mut Errors) -> Option<UnitMetainformation> {
        let mut r = ObjectReader::new(value, pointer, errs)?;
        let source_type = r.req_str("type", errs);
        if source_type.as_deref() == Some("") {
            errs.push(&r.at("type"), "must not be empty");
        }
        let schema = r.opt_str("schema", errs);
        let security_constraints = SecurityConstraint::decode_list(&mut r, errs);
        let data_units = urn_array(&mut r, "dataUnits", errs);
        let extra = r.rest();
        Some(UnitMetainformation {
            source_type: source_type.filter(|s| !s.is_empty())?.to_ascii_lowercase(),
            schema,
            security_constraints,
            data_units,
            extra,
        })
    }

    fn encode(&self) -> Value {
        let mut m = Map::new();
        m.insert("type".into(), json!(self.source_type));
        if let Some(s) = &self.schema {
            m.insert("schema".into(), json!(s));
        }
        SecurityConstraint::encode_list(&mut m, &self.security_constraints);
        put_urns(&mut m, "dataUnits", &self.data_units);
        if let Value::Object(extra) = crate::codec::sorted(&Value::Object(self.extra.clone())) {
            m.extend(extra);
        }
        Value::Object(m)
    }
}

impl View {
    fn decode(value: &Value, pointer: &str, unit: Option<&Urn>, errs: &mut Errors) -> Option<View> {
        let mut r = ObjectReader::new(value, pointer, errs)?;
        let name = r.req_str("name", errs).and_then(|n| {
            let at = r.at("name");
            let Some(unit) = unit else {
                // The unit's own name is invalid (and reported); still check this one's shape.
                let shape = if n.to_ascii_lowercase().starts_with("urn:") {
                    Urn::parse(&n).map(|_| ())
                } else {
                    crate::name::check_segment(&n)
                };
                if let Err(e) = shape {
                    errs.push(&at, e);
                }
                return None;
            };
            let parsed = if n.to_ascii_lowercase().starts_with("urn:") {
                Urn::parse(&n).and_then(|u| {
                    if u.is_child_of(unit) {
                        Ok(u)
                    } else {
                        Err(format!("view {u} is not inside its unit's namespace: name it `{unit}:<view>`"))
                    }
                })
            } else {
                unit.child(&n)
            };
            parsed.map_err(|e| errs.push(&at, e)).ok()
        });
        let link = r.req_str("link", errs).and_then(|l| {
            // The paper writes links with stray spaces (`/ buildings /`).
            let link: String = l.chars().filter(|c| !c.is_whitespace()).collect();
            if link.is_empty() {
                errs.push(&r.at("link"), "must not be empty");
                None
            } else if link_escapes(&link) {
                errs.push(&r.at("link"), "must not contain `..`, `\\` or their percent-encodings");
                None
            } else {
                Some(link)
            }
        });
        let update_frequency =
            r.raw("updateFrequency").and_then(|v| UpdateFrequency::decode(v, &r.at("updateFrequency"), errs));
        let size_bytes = r.opt_u64("size", errs);
        let security_constraints = SecurityConstraint::decode_list(&mut r, errs);
        let data_instances = urn_array(&mut r, "dataInstances", errs);
        r.deny_unknown(errs);
        Some(View { name: name?, link: link?, update_frequency, size_bytes, security_constraints, data_instances })
    }

    fn encode(&self) -> Value {
        let mut m = Map::new();
        m.insert("name".into(), json!(self.name.as_str()));
        m.insert("link".into(), json!(self.link));
        if let Some(f) = &self.update_frequency {
            m.insert("updateFrequency".into(), f.encode());
        }
        if let Some(s) = self.size_bytes {
            m.insert("size".into(), json!(s));
        }
        SecurityConstraint::encode_list(&mut m, &self.security_constraints);
        put_urns(&mut m, "dataInstances", &self.data_instances);
        Value::Object(m)
    }
}

/// Whether a link could climb out of its endpoint: `..` segments or backslashes, written
/// plainly or percent-encoded (`%2e%2e`, `%2f`, `%5c`).
fn link_escapes(link: &str) -> bool {
    let lower = link.to_ascii_lowercase();
    lower.contains("%2e")
        || lower.contains("%2f")
        || lower.contains("%5c")
        || lower.contains('\\')
        || lower.split(['/', '?', '#']).any(|seg| seg == "..")
}
