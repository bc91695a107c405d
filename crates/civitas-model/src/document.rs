//! Any catalog document: the sum of the model's kinds, decoded from and encoded to JSON-LD.

use std::fmt;

use serde_json::Value;

use crate::codec::Header;
use crate::deployment::{DeploymentInstance, DeploymentUnit, TechnicalUnit};
use crate::error::ValidationErrors;
use crate::instance::DataInstance;
use crate::name::Urn;
use crate::pipeline::PipelineDocument;
use crate::reader::{Errors, ObjectReader, type_name};
use crate::site::{Site, SiteLink};
use crate::unit::DataUnit;

/// The kinds of document the catalog holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// [`DataUnit`]
    DataUnit,
    /// [`DataInstance`]
    DataInstance,
    /// [`Site`]
    Site,
    /// [`SiteLink`]
    SiteLink,
    /// [`TechnicalUnit`]
    TechnicalUnit,
    /// [`DeploymentUnit`]
    DeploymentUnit,
    /// [`DeploymentInstance`]
    DeploymentInstance,
    /// [`PipelineDocument`]
    Pipeline,
}

impl Kind {
    /// Every kind, in dependency order (a kind only references kinds before it,
    /// except a unit's informational `dataInstances`).
    pub const ALL: [Kind; 8] = [
        Kind::Site,
        Kind::SiteLink,
        Kind::DataUnit,
        Kind::TechnicalUnit,
        Kind::DeploymentUnit,
        Kind::DeploymentInstance,
        Kind::DataInstance,
        Kind::Pipeline,
    ];

    /// The JSON-LD `@type`.
    pub fn type_name(self) -> &'static str {
        match self {
            Kind::DataUnit => DataUnit::TYPE,
            Kind::DataInstance => DataInstance::TYPE,
            Kind::Site => Site::TYPE,
            Kind::SiteLink => SiteLink::TYPE,
            Kind::TechnicalUnit => TechnicalUnit::TYPE,
            Kind::DeploymentUnit => DeploymentUnit::TYPE,
            Kind::DeploymentInstance => DeploymentInstance::TYPE,
            Kind::Pipeline => PipelineDocument::TYPE,
        }
    }

    /// The plural used in API paths and store keys (`units`, `site-links`…).
    pub fn collection(self) -> &'static str {
        match self {
            Kind::DataUnit => "units",
            Kind::DataInstance => "instances",
            Kind::Site => "sites",
            Kind::SiteLink => "site-links",
            Kind::TechnicalUnit => "technical-units",
            Kind::DeploymentUnit => "deployment-units",
            Kind::DeploymentInstance => "deployments",
            Kind::Pipeline => "pipelines",
        }
    }

    /// Finds a kind by `@type`.
    pub fn from_type_name(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.type_name() == s)
    }

    /// Finds a kind by collection name, `@type` or a short alias, as people type them on a
    /// command line: `units`, `unit`, `DataUnit`, `du`, `site-link`…
    pub fn from_user_text(s: &str) -> Option<Kind> {
        let lower = s.to_ascii_lowercase();
        let k = match lower.as_str() {
            "unit" | "units" | "dataunit" | "dataunits" | "dau" => Kind::DataUnit,
            "instance" | "instances" | "datainstance" | "datainstances" | "dai" => Kind::DataInstance,
            "site" | "sites" => Kind::Site,
            "site-link" | "site-links" | "sitelink" | "sitelinks" | "link" | "links" => Kind::SiteLink,
            "technical-unit" | "technical-units" | "technicalunit" | "technicalunits" | "tu" => Kind::TechnicalUnit,
            "deployment-unit" | "deployment-units" | "deploymentunit" | "deploymentunits" | "du" => {
                Kind::DeploymentUnit
            }
            "deployment" | "deployments" | "deploymentinstance" | "deploymentinstances" | "di" => {
                Kind::DeploymentInstance
            }
            "pipeline" | "pipelines" => Kind::Pipeline,
            _ => return None,
        };
        Some(k)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.type_name())
    }
}

/// A reference from one document to another, at a JSON pointer inside the referring document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Kind of the referenced document.
    pub kind: Kind,
    /// Its name.
    pub name: Urn,
    /// Where in the referring document the reference is.
    pub pointer: String,
}

/// One catalog document of any kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Document {
    /// A data unit.
    DataUnit(DataUnit),
    /// A data instance.
    DataInstance(DataInstance),
    /// A site.
    Site(Site),
    /// A link between two sites.
    SiteLink(SiteLink),
    /// A technical unit.
    TechnicalUnit(TechnicalUnit),
    /// A deployment unit.
    DeploymentUnit(DeploymentUnit),
    /// A deployment instance.
    DeploymentInstance(DeploymentInstance),
    /// A pipeline, checked in full by `civitas-pipeline` in the node (see [`PipelineDocument`]).
    Pipeline(PipelineDocument),
}

impl Document {
    /// Decodes one JSON-LD document of any kind, reporting every problem at once.
    pub fn decode(value: &Value) -> Result<Document, ValidationErrors> {
        Self::decode_at(value, "", None)
    }

    /// Decodes one document that must be of `kind` (e.g. posted to `/api/v1/units`).
    /// A missing `@type` is taken to be `kind`.
    pub fn decode_as(value: &Value, kind: Kind) -> Result<Document, ValidationErrors> {
        Self::decode_at(value, "", Some(kind))
    }

    /// Decodes a single document or an array of documents; pointers of documents
    /// in an array start with their index (`/2/views/0/name`).
    pub fn decode_many(value: &Value, kind: Option<Kind>) -> Result<Vec<Document>, ValidationErrors> {
        match value {
            Value::Array(items) => {
                if items.is_empty() {
                    return Err(ValidationErrors::single("", "the array holds no document"));
                }
                let mut docs = Vec::with_capacity(items.len());
                let mut all = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match Self::decode_at(item, &format!("/{i}"), kind) {
                        Ok(d) => docs.push(d),
                        Err(e) => all.extend(e.0),
                    }
                }
                if all.is_empty() { Ok(docs) } else { Err(ValidationErrors(all)) }
            }
            other => Self::decode_at(other, "", kind).map(|d| vec![d]),
        }
    }

    fn decode_at(value: &Value, pointer: &str, expected: Option<Kind>) -> Result<Document, ValidationErrors> {
        let mut errs = Errors::default();
        let doc = Self::decode_inner(value, pointer, expected, &mut errs);
        match doc {
            Some(d) if errs.0.is_empty() => Ok(d),
            _ => {
                if errs.0.is_empty() {
                    errs.push(pointer, "invalid document");
                }
                Err(ValidationErrors(errs.0))
            }
        }
    }

    fn decode_inner(value: &Value, pointer: &str, expected: Option<Kind>, errs: &mut Errors) -> Option<Document> {
        let mut r = ObjectReader::new(value, pointer, errs)?;
        let at_type = r.at("@type");
        let kind = match (r.obj.get("@type"), expected) {
            (None, Some(k)) => k,
            (None, None) => {
                let known: Vec<_> = Kind::ALL.iter().map(|k| k.type_name()).collect();
                errs.push(&at_type, format!("`@type` is required: one of {}", known.join(", ")));
                return None;
            }
            (Some(Value::String(t)), expected) => {
                let Some(k) = Kind::from_type_name(t) else {
                    let known: Vec<_> = Kind::ALL.iter().map(|k| k.type_name()).collect();
                    errs.push(&at_type, format!("unknown @type {t:?}: expected one of {}", known.join(", ")));
                    return None;
                };
                if let Some(e) = expected
                    && e != k
                {
                    errs.push(&at_type, format!("expected a {e} here, found a {k}"));
                    return None;
                }
                k
            }
            (Some(other), _) => {
                errs.push(&at_type, format!("expected a string, found {}", type_name(other)));
                return None;
            }
        };
        if let Some(ctx) = r.obj.get("@context")
            && !matches!(ctx, Value::String(_) | Value::Object(_) | Value::Array(_))
        {
            errs.push(&r.at("@context"), "must be a string, an object or an array");
        }
        let r = &mut r;
        Some(match kind {
            Kind::DataUnit => Document::DataUnit(DataUnit::decode(r, errs)?),
            Kind::DataInstance => Document::DataInstance(DataInstance::decode(r, errs)?),
            Kind::Site => Document::Site(Site::decode(r, errs)?),
            Kind::SiteLink => Document::SiteLink(SiteLink::decode(r, errs)?),
            Kind::TechnicalUnit => Document::TechnicalUnit(TechnicalUnit::decode(r, errs)?),
            Kind::DeploymentUnit => Document::DeploymentUnit(DeploymentUnit::decode(r, errs)?),
            Kind::DeploymentInstance => Document::DeploymentInstance(DeploymentInstance::decode(r, errs)?),
            Kind::Pipeline => Document::Pipeline(PipelineDocument::decode(r, errs)?),
        })
    }

    /// Encodes the document as canonical JSON-LD with Civitas' own `@context`.
    pub fn encode(&self) -> Value {
        Value::Object(match self {
            Document::DataUnit(d) => d.encode(),
            Document::DataInstance(d) => d.encode(),
            Document::Site(d) => d.encode(),
            Document::SiteLink(d) => d.encode(),
            Document::TechnicalUnit(d) => d.encode(),
            Document::DeploymentUnit(d) => d.encode(),
            Document::DeploymentInstance(d) => d.encode(),
            Document::Pipeline(d) => d.encode(),
        })
    }

    /// Canonical JSON-LD bytes: equal documents give equal bytes.
    pub fn to_canonical_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.encode()).expect("a JSON value always serializes")
    }

    /// The document's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Document::DataUnit(_) => Kind::DataUnit,
            Document::DataInstance(_) => Kind::DataInstance,
            Document::Site(_) => Kind::Site,
            Document::SiteLink(_) => Kind::SiteLink,
            Document::TechnicalUnit(_) => Kind::TechnicalUnit,
            Document::DeploymentUnit(_) => Kind::DeploymentUnit,
            Document::DeploymentInstance(_) => Kind::DeploymentInstance,
            Document::Pipeline(_) => Kind::Pipeline,
        }
    }

    /// Name, version and dates.
    pub fn header(&self) -> &Header {
        match self {
            Document::DataUnit(d) => &d.header,
            Document::DataInstance(d) => &d.header,
            Document::Site(d) => &d.header,
            Document::SiteLink(d) => &d.header,
            Document::TechnicalUnit(d) => &d.header,
            Document::DeploymentUnit(d) => &d.header,
            Document::DeploymentInstance(d) => &d.header,
            Document::Pipeline(d) => &d.header,
        }
    }

    /// The document's name.
    pub fn name(&self) -> &Urn {
        &self.header().name
    }

    /// The document's version.
    pub fn version(&self) -> &str {
        &self.header().version
    }

    /// The documents this one depends on: they must exist, and they cannot be
    /// deleted while this one exists (unless the delete cascades to it).
    pub fn references(&self) -> Vec<Reference> {
        let mut out = Vec::new();
        let mut add =
            |kind: Kind, name: &Urn, pointer: String| out.push(Reference { kind, name: name.clone(), pointer });
        match self {
            Document::DataUnit(u) => {
                for (i, d) in u.metainformation.data_units.iter().enumerate() {
                    add(Kind::DataUnit, d, format!("/metainformation/dataUnits/{i}"));
                }
            }
            Document::DataInstance(i) => {
                add(Kind::DataUnit, &i.data_unit, "/dataUnit".into());
                if let Some(s) = &i.site {
                    add(Kind::Site, s, "/site".into());
                }
                if let Some(Ok(di)) = i.deployment_instance.as_deref().map(Urn::parse) {
                    add(Kind::DeploymentInstance, &di, "/deploymentInstance".into());
                }
            }
            Document::Site(_) => {}
            Document::SiteLink(l) => {
                add(Kind::Site, &l.from, "/from".into());
                add(Kind::Site, &l.to, "/to".into());
            }
            Document::TechnicalUnit(t) => {
                for (i, d) in t.data_units.iter().enumerate() {
                    add(Kind::DataUnit, d, format!("/dataUnits/{i}"));
                }
            }
            Document::DeploymentUnit(d) => {
                add(Kind::TechnicalUnit, &d.technical_unit, "/technicalUnit".into());
                for (i, s) in d.sites.iter().enumerate() {
                    add(Kind::Site, s, format!("/sites/{i}"));
                }
            }
            Document::DeploymentInstance(d) => {
                add(Kind::DeploymentUnit, &d.deployment_unit, "/deploymentUnit".into());
                add(Kind::Site, &d.site, "/site".into());
            }
            // Views a pipeline reads may live in a peer's catalog, and its sites are the
            // scheduler's choice: none must exist here (see `PipelineDocument`).
            Document::Pipeline(_) => {}
        }
        out
    }

    /// Text that free-text search looks through: the document's name and the names inside it.
    pub fn search_text(&self) -> String {
        let mut text = self.name().as_str().to_ascii_lowercase();
        match self {
            Document::DataUnit(u) => {
                for v in &u.views {
                    text.push(' ');
                    text.push_str(&v.name.as_str().to_ascii_lowercase());
                }
            }
            Document::TechnicalUnit(t) => {
                if let Some(d) = &t.description {
                    text.push(' ');
                    text.push_str(&d.to_ascii_lowercase());
                }
            }
            Document::Pipeline(p) => {
                for stage in p.stage_names() {
                    text.push(' ');
                    text.push_str(&stage.to_ascii_lowercase());
                }
            }
            _ => {}
        }
        text
    }
}
