//! Civitas catalog: the paper's Repository Manager and Dependency Manager.
//!
//! It stores the system model's documents in a [`kv::KvStore`] (redb in the node's
//! data dir by default; etcd later, behind the same trait) and keeps them consistent:
//! versioned apply where a changed document needs a new version, referential
//! integrity (an instance names an existing unit, its views and an existing site or
//! deployment; a referenced document cannot be deleted unless the delete cascades),
//! all-or-nothing batches, search, the unit → views → instances → deployments → sites
//! tree, and a watch stream of changes with revisions.
//!
//! What it is not: it knows nothing of HTTP, the CLI or who the caller is; the
//! security layer plugs in through [`AccessCheck`].
//!
//! Invariants: every stored document decodes with the model; every reference of a
//! current document resolves to a current document; a batch lands whole or not at all.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
mod keys;
pub mod kv;
mod repository;
mod search;
mod tree;
mod watch;

pub use error::CatalogError;
pub use repository::{
    ApplyOptions, ApplyOutcome, ApplyReport, ApplyResult, Catalog, DEFAULT_MAX_VERSIONS, DeleteReport, DeletedDocument,
    StoredDocument,
};
pub use search::{DEFAULT_PAGE, MAX_PAGE, Page, SearchPage, SearchQuery};
pub use tree::{AccessCheck, AllowAll, DependencyTree, DeploymentNode, InstanceNode, SiteNode, ViewNode};
pub use watch::CatalogEvent;
