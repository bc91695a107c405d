//! The key-value seam under the catalog.
//!
//! `KvStore` is shaped like etcd's v3 API (revisions, compare-and-swap
//! transactions, prefix range reads, watches from a revision) so that the
//! etcd backend of a later issue fits behind the same trait as the embedded
//! redb backend ([`RedbStore`]).
//!
//! Invariants every backend keeps:
//! - the store has one global, strictly increasing `Revision`; every committed
//!   write transaction that changes at least one key gets exactly one new
//!   revision, shared by all keys it changed;
//! - a transaction's compares and operations are atomic: all operations land
//!   or none do, and none land when any compare fails;
//! - a write is acknowledged (the future resolves `Ok`) only once it is durable;
//! - `watch(prefix, from)` yields every change with revision `>= from` to keys
//!   under `prefix`, in revision order, with no gaps, then follows live changes.

mod redb_store;

pub use redb_store::{RedbOptions, RedbStore};

use std::pin::Pin;

use futures::Stream;

/// A store-wide revision number. `0` means "before anything was written".
pub type Revision = u64;

/// One stored value with its revisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvEntry {
    /// The stored bytes.
    pub value: Vec<u8>,
    /// Revision at which the key was created (last created, if it was deleted in between).
    pub create_revision: Revision,
    /// Revision of the last write to this key.
    pub mod_revision: Revision,
}

/// A condition a transaction checks before it writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compare {
    /// The key does not exist.
    Absent(Vec<u8>),
    /// The key exists and its `mod_revision` equals the given one.
    ModRevision(Vec<u8>, Revision),
}

/// A write inside a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Create or overwrite a key.
    Put(Vec<u8>, Vec<u8>),
    /// Remove a key (no-op when absent).
    Delete(Vec<u8>),
}

/// An atomic compare-then-write transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Txn {
    /// All must hold for `ops` to be applied.
    pub compares: Vec<Compare>,
    /// Applied in order when every compare holds.
    pub ops: Vec<Op>,
}

/// What a transaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOutcome {
    /// Every compare held and the ops are durable at this revision
    /// (the current revision, unchanged, when `ops` changed nothing).
    Committed(Revision),
    /// The compare at this index failed; nothing was written.
    CompareFailed(usize),
}

/// One change seen by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvEvent {
    /// Revision of the transaction that made the change.
    pub revision: Revision,
    /// The changed key.
    pub key: Vec<u8>,
    /// The new value, or `None` for a delete.
    pub value: Option<Vec<u8>>,
}

/// A live stream of changes; ends only when the store shuts down or the
/// watcher fell so far behind that events were lost (then it yields
/// [`KvError::Lagged`] and ends).
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<KvEvent, KvError>> + Send>>;

/// Errors at the store boundary.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// The backend failed (I/O, corruption, closed database...).
    #[error("catalog store failure: {0}")]
    Backend(String),
    /// A watch asked for history the store no longer keeps.
    #[error("revision {requested} was compacted; the oldest revision still kept is {oldest}")]
    Compacted {
        /// Revision the caller asked for.
        requested: Revision,
        /// Oldest revision still available.
        oldest: Revision,
    },
    /// A watcher could not keep up with live changes and missed some.
    #[error("watch fell behind and missed changes; restart it from revision {resume_from}")]
    Lagged {
        /// Revision to resume from with a new watch.
        resume_from: Revision,
    },
    /// The store is shutting down.
    #[error("catalog store is closed")]
    Closed,
}

/// The catalog's storage seam (see the module docs for the invariants).
#[async_trait::async_trait]
pub trait KvStore: Send + Sync + 'static {
    /// Reads one key.
    async fn get(&self, key: &[u8]) -> Result<Option<KvEntry>, KvError>;

    /// Reads keys starting with `prefix`, in key order, strictly after
    /// `start_after` when given, at most `limit` of them.
    async fn scan_prefix(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, KvEntry)>, KvError>;

    /// Runs an atomic compare-then-write transaction.
    async fn txn(&self, txn: Txn) -> Result<TxnOutcome, KvError>;

    /// Creates or overwrites one key; returns the new revision.
    async fn put(&self, key: &[u8], value: &[u8]) -> Result<Revision, KvError> {
        match self.txn(Txn { compares: vec![], ops: vec![Op::Put(key.to_vec(), value.to_vec())] }).await? {
            TxnOutcome::Committed(rev) => Ok(rev),
            TxnOutcome::CompareFailed(_) => unreachable!("a transaction without compares cannot fail one"),
        }
    }

    /// Writes `value` (or deletes, when `None`) only if the key's state matches
    /// `expected` (`None`: absent; `Some(rev)`: exists with that mod revision).
    /// Returns `Ok(Err(current))` with the current entry on a mismatch.
    async fn compare_and_swap(
        &self,
        key: &[u8],
        expected: Option<Revision>,
        value: Option<&[u8]>,
    ) -> Result<Result<Revision, Option<KvEntry>>, KvError> {
        let compare = match expected {
            None => Compare::Absent(key.to_vec()),
            Some(rev) => Compare::ModRevision(key.to_vec(), rev),
        };
        let op = match value {
            Some(v) => Op::Put(key.to_vec(), v.to_vec()),
            None => Op::Delete(key.to_vec()),
        };
        match self.txn(Txn { compares: vec![compare], ops: vec![op] }).await? {
            TxnOutcome::Committed(rev) => Ok(Ok(rev)),
            TxnOutcome::CompareFailed(_) => Ok(Err(self.get(key).await?)),
        }
    }

    /// Deletes one key; returns the revision of the delete, or `None` when the key was absent.
    async fn delete(&self, key: &[u8]) -> Result<Option<Revision>, KvError>;

    /// The revision of the last committed change.
    async fn current_revision(&self) -> Result<Revision, KvError>;

    /// Streams every change under `prefix` with revision `>= from_revision`
    /// (history first, then live), in order and without gaps.
    /// `from_revision = current + 1` follows only new changes.
    async fn watch(&self, prefix: &[u8], from_revision: Revision) -> Result<WatchStream, KvError>;
}
