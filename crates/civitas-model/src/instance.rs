//! Data instances (the paper's DAI): a deployment of some views of a unit at a site.

use serde_json::{Map, Value, json};

use crate::codec::{Header, opt_urn_field, put_map, url_field, urn_field};
use crate::name::Urn;
use crate::reader::{Errors, ObjectReader};

/// Whether an instance is the source of truth or a copy placed by Civitas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InstanceRole {
    /// The holder's own deployment.
    #[default]
    Origin,
    /// A copy kept fresh by an update strategy.
    Replica,
}

impl InstanceRole {
    /// The role's canonical text.
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceRole::Origin => "origin",
            InstanceRole::Replica => "replica",
        }
    }
}

/// One deployment of some views of a data unit.
#[derive(Debug, Clone, PartialEq)]
pub struct DataInstance {
    /// Name, version and dates.
    pub header: Header,
    /// The unit it deploys (`dataUnit`).
    pub data_unit: Urn,
    /// The views it serves (full names); empty means every view of the unit.
    pub views: Vec<Urn>,
    /// The site it runs at.
    pub site: Option<Urn>,
    /// The deployment instance it runs on (`deploymentInstance`, the paper's DI).
    pub deployment_instance: Option<String>,
    /// Base URL its views are served at; a view's `link` is joined to it.
    pub endpoint: Option<String>,
    /// Origin or replica.
    pub role: InstanceRole,
    /// Free key/value facts about this instance (e.g. `accessFrequency`).
    pub metainformation: Map<String, Value>,
}

impl DataInstance {
    /// The `@type` of data instances.
    pub const TYPE: &'static str = "DataInstance";

    pub(crate) fn decode(r: &mut ObjectReader<'_>, errs: &mut Errors) -> Option<DataInstance> {
        let header = Header::decode(r, errs);
        let data_unit = urn_field(r, "dataUnit", errs);
        // Views may be given as full names or as names local to the unit.
        let mut views = Vec::new();
        for (ptr, s) in r.opt_str_array("views", errs) {
            let parsed = if s.to_ascii_lowercase().starts_with("urn:") {
                Urn::parse(&s)
            } else if let Some(unit) = &data_unit {
                unit.child(&s)
            } else {
                continue;
            };
            match parsed {
                Ok(v) if views.contains(&v) => errs.push(&ptr, format!("{v} is listed twice")),
                Ok(v) => match &data_unit {
                    Some(unit) if !v.is_child_of(unit) => {
                        errs.push(&ptr, format!("{v} is not a view of {unit}"));
                    }
                    _ => views.push(v),
                },
                Err(e) => errs.push(&ptr, e),
            }
        }
        let site = opt_urn_field(r, "site", errs);
        // A URN is kept in canonical form; other text (the paper's `Server/Name`) as given.
        let deployment_instance = r
            .opt_str("deploymentInstance", errs)
            .filter(|s| !s.is_empty())
            .map(|s| Urn::parse(&s).map(|u| u.to_string()).unwrap_or(s));
        let endpoint = url_field(r, "endpoint", errs);
        let role = match r.opt_str("role", errs).as_deref() {
            None | Some("origin") => Some(InstanceRole::Origin),
            Some("replica") => Some(InstanceRole::Replica),
            Some(other) => {
                errs.push(&r.at("role"), format!("{other:?} is not a role: use `origin` or `replica`"));
                None
            }
        };
        let metainformation = r.opt_map("metainformation", errs);
        r.deny_unknown(errs);
        Some(DataInstance {
            header: header?,
            data_unit: data_unit?,
            views,
            site,
            deployment_instance,
            endpoint,
            role: role?,
            metainformation,
        })
    }

    pub(crate) fn encode(&self) -> Map<String, Value> {
        let mut m = self.header.encode(Self::TYPE);
        m.insert("dataUnit".into(), json!(self.data_unit.as_str()));
        if !self.views.is_empty() {
            m.insert("views".into(), Value::Array(self.views.iter().map(|v| json!(v.as_str())).collect()));
        }
        if let Some(s) = &self.site {
            m.insert("site".into(), json!(s.as_str()));
        }
        if let Some(d) = &self.deployment_instance {
            m.insert("deploymentInstance".into(), json!(d));
        }
        if let Some(e) = &self.endpoint {
            m.insert("endpoint".into(), json!(e));
        }
        m.insert("role".into(), json!(self.role.as_str()));
        put_map(&mut m, "metainformation", &self.metainformation);
        m
    }

    /// Whether this instance serves `view` (an empty view list serves them all).
    pub fn serves(&self, view: &Urn) -> bool {
        self.views.is_empty() || self.views.contains(view)
    }
}
