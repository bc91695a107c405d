//! The Civitas system model: what the catalog stores and every module speaks.
//!
//! It holds the paper's concepts — [`DataUnit`] with its [`View`]s, [`DataInstance`],
//! [`Site`] and [`SiteLink`], [`TechnicalUnit`], [`DeploymentUnit`], [`DeploymentInstance`],
//! and the [`PipelineDocument`] (header checked here, body checked by `civitas-pipeline`) —
//! and their JSON-LD codec: [`Document::decode`] reads the paper's listings as written
//! (numbers as strings, `metainformation` blocks, any `@context`) and reports every
//! problem at once with a JSON pointer; [`Document::encode`] writes canonical JSON-LD
//! with Civitas' own [`context::CONTEXT_URL`].
//!
//! What it is not: it does no I/O, knows nothing of storage, HTTP or referential
//! integrity across documents (that is the catalog's job).
//!
//! Invariants: a decoded document is valid; `decode(encode(d)) == d`; names are
//! [`Urn`]s safe to use as URL path segments and store keys; a view's name lies
//! inside its unit's namespace.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod codec;
pub mod context;
mod deployment;
mod document;
mod error;
mod frequency;
mod instance;
mod name;
mod observation;
mod pipeline;
mod reader;
pub use reader::type_name as json_type_name;
mod security;
mod site;
mod time;
mod unit;

pub use codec::{Header, check_http_url};
pub use deployment::{DeploymentInstance, DeploymentUnit, TechnicalUnit};
pub use document::{Document, Kind, Reference};
pub use error::{FieldError, ValidationErrors, escape_pointer_token};
pub use frequency::{Period, UpdateFrequency};
pub use instance::{DataInstance, InstanceRole};
pub use name::{MAX_NAME_LEN, MAX_VERSION_LEN, Urn, check_segment, check_version, compare_versions};
pub use observation::Observation;
pub use pipeline::PipelineDocument;
pub use security::SecurityConstraint;
pub use site::{Capacity, Prices, Site, SiteLink, Tier};
pub use time::{Timestamp, format_timestamp, parse_timestamp};
pub use unit::{DataUnit, UnitMetainformation, View};
