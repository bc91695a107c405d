//! Errors at the catalog's boundary; the node maps each to one HTTP status.

use civitas_model::{Kind, Urn, ValidationErrors};

use crate::kv::KvError;

/// What can go wrong in a catalog operation.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// A document is malformed or refers to something that does not exist; nothing was stored.
    #[error("{0}")]
    Invalid(#[from] ValidationErrors),
    /// No such document (or version).
    #[error("{kind} {name}{} not found", version.as_ref().map(|v| format!(" version {v}")).unwrap_or_default())]
    NotFound {
        /// The kind looked for.
        kind: Kind,
        /// The name looked for.
        name: Urn,
        /// The version looked for, if one was asked for.
        version: Option<String>,
    },
    /// The document's version clashes with what is stored; nothing was stored.
    #[error("{kind} {name}: {detail}")]
    VersionConflict {
        /// Kind of the document.
        kind: Kind,
        /// Its name.
        name: Urn,
        /// JSON pointer of the document's `version` (with its batch index when in a batch).
        pointer: String,
        /// What clashes.
        detail: String,
    },
    /// Other documents still depend on the one to delete.
    #[error("{kind} {name} is still referenced by {}; delete those first or cascade", list(referrers))]
    Referenced {
        /// Kind of the document that could not be deleted.
        kind: Kind,
        /// Its name.
        name: Urn,
        /// Who refers to it.
        referrers: Vec<(Kind, Urn)>,
    },
    /// Concurrent writers kept changing the same documents; the caller may retry.
    #[error("the catalog changed concurrently {0} times in a row; retry")]
    Contention(usize),
    /// A watch asked for history that was compacted.
    #[error("revision {requested} is no longer kept; the oldest available revision is {oldest}")]
    Compacted {
        /// Revision asked for.
        requested: u64,
        /// Oldest revision still kept.
        oldest: u64,
    },
    /// The store failed.
    #[error(transparent)]
    Store(KvError),
    /// A stored document could not be read back (the store holds something the model rejects).
    #[error("stored {kind} {name} is unreadable: {detail}")]
    Corrupt {
        /// Kind of the document.
        kind: Kind,
        /// Its name.
        name: String,
        /// What is wrong.
        detail: String,
    },
}

fn list(referrers: &[(Kind, Urn)]) -> String {
    let shown: Vec<String> = referrers.iter().take(10).map(|(k, n)| format!("{k} {n}")).collect();
    let more = referrers.len().saturating_sub(10);
    if more > 0 { format!("{} and {more} more", shown.join(", ")) } else { shown.join(", ") }
}

impl From<KvError> for CatalogError {
    fn from(e: KvError) -> Self {
        match e {
            KvError::Compacted { requested, oldest } => CatalogError::Compacted { requested, oldest },
            other => CatalogError::Store(other),
        }
    }
}
