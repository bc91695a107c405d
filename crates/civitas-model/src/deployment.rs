//! Application components and their deployments (the paper's TU, DU and DI, from MADCAT).

use serde_json::{Map, Value, json};

use crate::codec::{Header, put_map, put_urns, url_field, urn_array, urn_field};
use crate::name::Urn;
use crate::reader::{Errors, ObjectReader};

/// An application or application component (a data service, a pipeline stage).
#[derive(Debug, Clone, PartialEq)]
pub struct TechnicalUnit {
    /// Name, version and dates.
    pub header: Header,
    /// What it does, for people.
    pub description: Option<String>,
    /// Data units it reads or serves.
    pub data_units: Vec<Urn>,
    /// Free key/value facts (artifact, language, owner…).
    pub metainformation: Map<String, Value>,
}

/// How a technical unit deploys on one or more sites.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentUnit {
    /// Name, version and dates.
    pub header: Header,
    /// The technical unit it deploys.
    pub technical_unit: Urn,
    /// The sites (infrastructure specifications) it can deploy on; at least one.
    pub sites: Vec<Urn>,
    /// How to deploy it (artifact, command, image, resources…), kept as given.
    pub deployment: Map<String, Value>,
}

/// One running deployment of a deployment unit at a site.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentInstance {
    /// Name, version and dates.
    pub header: Header,
    /// The deployment unit it instantiates.
    pub deployment_unit: Urn,
    /// The site it runs at.
    pub site: Urn,
    /// Where it can be reached, if it serves anything.
    pub endpoint: Option<String>,
    /// Free key/value facts (status, host, process id…).
    pub metainformation: Map<String, Value>,
}

impl TechnicalUnit {
    /// The `@type` of technical units.
    pub const TYPE: &'static str = "TechnicalUnit";

    pub(crate) fn decode(r: &mut ObjectReader<'_>, errs: &mut Errors) -> Option<TechnicalUnit> {
        let header = Header::decode(r, errs);
        let description = r.opt_str("description", errs).filter(|s| !s.is_empty());
        let data_units = urn_array(r, "dataUnits", errs);
        let metainformation = r.opt_map("metainformation", errs);
        r.deny_unknown(errs);
        Some(TechnicalUnit { header: header?, description, data_units, metainformation })
    }

    pub(crate) fn encode(&self) -> Map<String, Value> {
        let mut m = self.header.encode(Self::TYPE);
        if let Some(d) = &self.description {
            m.insert("description".into(), json!(d));
        }
        put_urns(&mut m, "dataUnits", &self.data_units);
        put_map(&mut m, "metainformation", &self.metainformation);
        m
    }
}

impl DeploymentUnit {
    /// The `@type` of deployment units.
    pub const TYPE: &'static str = "DeploymentUnit";

    pub(crate) fn decode(r: &mut ObjectReader<'_>, errs: &mut Errors) -> Option<DeploymentUnit> {
        let header = Header::decode(r, errs);
        let technical_unit = urn_field(r, "technicalUnit", errs);
        let sites = urn_array(r, "sites", errs);
        if sites.is_empty()
            && r.obj.get("sites").is_none_or(|v| v.is_null() || v.as_array().is_some_and(|a| a.is_empty()))
        {
            errs.push(&r.at("sites"), "a deployment unit names at least one site it can deploy on");
        }
        let deployment = r.opt_map("deployment", errs);
        r.deny_unknown(errs);
        Some(DeploymentUnit { header: header?, technical_unit: technical_unit?, sites, deployment })
    }

    pub(crate) fn encode(&self) -> Map<String, Value> {
        let mut m = self.header.encode(Self::TYPE);
        m.insert("technicalUnit".into(), json!(self.technical_unit.as_str()));
        put_urns(&mut m, "sites", &self.sites);
        put_map(&mut m, "deployment", &self.deployment);
        m
    }
}

impl DeploymentInstance {
    /// The `@type` of deployment instances.
    pub const TYPE: &'static str = "DeploymentInstance";

    pub(crate) fn decode(r: &mut ObjectReader<'_>, errs: &mut Errors) -> Option<DeploymentInstance> {
        let header = Header::decode(r, errs);
        let deployment_unit = urn_field(r, "deploymentUnit", errs);
        let site = urn_field(r, "site", errs);
        let endpoint = url_field(r, "endpoint", errs);
        let metainformation = r.opt_map("metainformation", errs);
        r.deny_unknown(errs);
        Some(DeploymentInstance {
            header: header?,
            deployment_unit: deployment_unit?,
            site: site?,
            endpoint,
            metainformation,
        })
    }

    pub(crate) fn encode(&self) -> Map<String, Value> {
        let mut m = self.header.encode(Self::TYPE);
        m.insert("deploymentUnit".into(), json!(self.deployment_unit.as_str()));
        m.insert("site".into(), json!(self.site.as_str()));
        if let Some(e) = &self.endpoint {
            m.insert("endpoint".into(), json!(e));
        }
        put_map(&mut m, "metainformation", &self.metainformation);
        m
    }
}
