//! The crate's error type: every variant names the replica and, where there is one, the
//! resource URL or file that failed.

use std::path::PathBuf;

/// What went wrong while storing, reading or copying a replica.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    /// A replica id that is not a safe directory name.
    #[error("invalid replica id {id:?}: {reason}")]
    InvalidReplicaId {
        /// The id as given.
        id: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A resource key that is not one this store produced (64 lowercase hex digits).
    #[error("invalid resource key {key:?}: {reason}")]
    InvalidResourceKey {
        /// The key as given.
        key: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// An endpoint or variant that does not make an `http(s)` URL.
    #[error("replica {replica}: invalid source URL {url:?}: {reason}")]
    InvalidUrl {
        /// The replica being copied.
        replica: String,
        /// The URL (or endpoint + variant) as given.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// A file-system operation failed.
    #[error("replica {replica}: {operation} {}: {source}", path.display())]
    Io {
        /// The replica concerned (empty for the store root).
        replica: String,
        /// What was being done (`create`, `write`, `fsync`, `rename`…).
        operation: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The origin could not be reached, or its response broke off.
    #[error("replica {replica}: fetching {url} failed: {source}")]
    Fetch {
        /// The replica being copied.
        replica: String,
        /// The resource URL.
        url: String,
        /// The HTTP client's error.
        #[source]
        source: reqwest::Error,
    },
    /// The origin answered with a status this copier does not store.
    #[error("replica {replica}: {url} answered {status}, which is not copied")]
    Status {
        /// The replica being copied.
        replica: String,
        /// The resource URL.
        url: String,
        /// The status received.
        status: u16,
    },
    /// The body received is not as long as the origin's `Content-Length` said.
    #[error("replica {replica}: {url} announced {expected} bytes but sent {received}")]
    LengthMismatch {
        /// The replica being copied.
        replica: String,
        /// The resource URL.
        url: String,
        /// The `Content-Length` announced.
        expected: u64,
        /// The bytes received.
        received: u64,
    },
    /// The HTTP client could not be built.
    #[error("the HTTP client could not be built: {0}")]
    Client(#[source] reqwest::Error),
    /// A replica with this id is already complete; replicas are immutable once committed
    /// (except through revalidation), so a new copy needs a new id or a `remove` first.
    #[error("replica {replica} already exists and is complete")]
    AlreadyComplete {
        /// The replica id.
        replica: String,
    },
    /// The replica does not exist or is not complete (its manifest is not committed).
    #[error("replica {replica} is not complete")]
    NotComplete {
        /// The replica id.
        replica: String,
    },
    /// The replica is complete but has no such resource.
    #[error("replica {replica} has no resource {key}")]
    UnknownResource {
        /// The replica id.
        replica: String,
        /// The resource key asked for.
        key: String,
    },
    /// A stored record that cannot be read back (bad JSON, a body of the wrong size…).
    #[error("replica {replica}: {} is corrupt: {reason}", path.display())]
    Corrupt {
        /// The replica id.
        replica: String,
        /// The offending file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = ReplicaError> = std::result::Result<T, E>;

/// Builds a closure that turns an `io::Error` into [`ReplicaError::Io`].
pub(crate) fn io_err(
    replica: &str,
    operation: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> ReplicaError {
    let replica = replica.to_owned();
    let path = path.into();
    move |source| ReplicaError::Io { replica, operation, path, source }
}
