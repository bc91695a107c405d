//! Civitas replica store and copy strategies: where relocated views live at a target site.
//!
//! - [`ReplicaStore`]: replicas as directories of checksummed objects under one root (the
//!   node will pass `<data-dir>/replicas/`). Each resource is a body file named after its
//!   SHA-256 plus a record (status, content type, ETag, Last-Modified, length, checksum,
//!   source URL, fetch time); a replica's manifest lists its resources.
//! - [`HttpSnapshot`]: the HTTP view snapshot strategy's copy mechanics — fetches a view's
//!   canonical URL and observed parameter variants from the origin with bounded
//!   concurrency and timeouts, streaming each body to disk while hashing it; and
//!   [`HttpSnapshot::revalidate`], the conditional refresh the update manager uses.
//! - [`ObjectCopy`]: the object copy strategy's mechanics — one large object fetched in
//!   ranged, checksummed chunks, resumable after an interruption, committed like a snapshot.
//!
//! What it is not: not the migration or update manager (no plans, costs or schedules),
//! not an HTTP server (the node serves a [`StoredResponse`]). It never touches the catalog.
//!
//! Invariants:
//! - **never a half replica**: a replica is complete only once every resource is written,
//!   checksummed and fsynced and its manifest is committed last (write, fsync, rename,
//!   fsync of the directory); [`ReplicaStore::open_complete`] and [`ReplicaStore::get`]
//!   never return anything else; a failed copy removes its files and
//!   [`ReplicaStore::recover`] removes what a crash left;
//! - a resource is replaced atomically: its record, renamed into place, is the commit point;
//! - names from outside never become paths: resource keys are SHA-256 hex of the variant,
//!   replica ids are checked ([`ReplicaId`], [`ResourceKey`]);
//! - memory per copied resource is one network chunk, whatever the body size.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
mod key;
mod store;
pub mod strategies;

pub use error::{ReplicaError, Result};
pub use key::{ReplicaId, ResourceKey};
pub use store::{
    Manifest, ManifestEntry, RecoveryReport, Replica, ReplicaStore, ReplicaWriter, ResourceHead, ResourceMeta,
    ResourceWriter, StoredResponse,
};
pub use strategies::http_snapshot::{
    HttpSnapshot, Revalidation, Seed, SnapshotConfig, SnapshotProgress, SnapshotRequest,
};
pub use strategies::object_copy::{ObjectCopy, ObjectCopyConfig, ObjectRequest};
