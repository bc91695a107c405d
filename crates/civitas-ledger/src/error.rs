//! Errors at the ledger's boundary; the node maps each to one HTTP status.

use std::path::PathBuf;

use crate::entry::EntryError;
use crate::merkle::Hash;
use crate::note::NoteError;

/// What can go wrong opening, appending to or reading the ledger.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// A file operation failed.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being done (`read`, `fsync`…).
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Another process (or another `Ledger` in this one) has the directory open.
    #[error("the ledger in {} is already open in another process or instance", dir.display())]
    Locked {
        /// The ledger directory.
        dir: PathBuf,
    },
    /// Stored data is damaged where it cannot be a torn write: the ledger refuses to serve.
    #[error("refusing to open the ledger: {}: {detail}", path.display())]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Where and how.
        detail: String,
    },
    /// Fewer entries are stored than the last signed checkpoint covers.
    #[error(
        "refusing to open the ledger in {}: it holds {entries} entries, but its last signed checkpoint \
         covers {checkpoint_size}; acknowledged entries are missing (was entries.log truncated or replaced?)",
        dir.display()
    )]
    Truncated {
        /// The ledger directory.
        dir: PathBuf,
        /// Entries found.
        entries: u64,
        /// Size of the last signed checkpoint.
        checkpoint_size: u64,
    },
    /// The stored entries do not hash to the root the log signed.
    #[error(
        "refusing to open the ledger in {}: its first {size} entries hash to {computed}, but the last signed \
         checkpoint says {signed}; entries were altered",
        dir.display()
    )]
    RootMismatch {
        /// The ledger directory.
        dir: PathBuf,
        /// The checkpoint's size.
        size: u64,
        /// The signed root.
        signed: Hash,
        /// What the stored entries give.
        computed: Hash,
    },
    /// The directory holds another log than the one configured.
    #[error(
        "the ledger in {} is the log {stored:?}, not {configured:?}; keep the node's name, or move the \
         directory away to start a new log",
        dir.display()
    )]
    OriginMismatch {
        /// The ledger directory.
        dir: PathBuf,
        /// Origin of its last checkpoint.
        stored: String,
        /// Origin asked for.
        configured: String,
    },
    /// The entry is not valid.
    #[error("{0}")]
    InvalidEntry(#[from] EntryError),
    /// No entry at this index (yet).
    #[error("entry {index} does not exist: the ledger holds {size} entries")]
    NotFound {
        /// Index asked for.
        index: u64,
        /// Current size.
        size: u64,
    },
    /// No such tile or entry bundle at the current tree size.
    #[error("{path} does not exist: the ledger holds {size} entries")]
    TileNotFound {
        /// The tile path (`tile/0/001.p/12`).
        path: String,
        /// Current size.
        size: u64,
    },
    /// A request that cannot be answered as asked (sizes out of range, wrong key name…).
    #[error("{0}")]
    InvalidRequest(String),
    /// The ledger was closed.
    #[error("the ledger is closed")]
    Closed,
    /// A storage failure stopped appends; reopening the ledger recovers.
    #[error("the ledger stopped accepting appends after a storage failure: {0}; restart to recover")]
    Failed(String),
    /// A signing or note error.
    #[error("{0}")]
    Note(#[from] NoteError),
}
