//! The crate's error type at its public boundary.

use std::path::PathBuf;

/// What can go wrong setting up or operating the Security Manager (not an authentication
/// failure of a caller: that is a [`crate::Rejection`]).
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    /// A file could not be read or written.
    #[error("cannot {op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A configuration value is unusable.
    #[error("security configuration: {field}: {message}")]
    Config {
        /// The offending key, e.g. `security.issuers[0].jwks_url`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// A stored file (token registry) is not what this version wrote.
    #[error("{path} is corrupt: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A request to the Security Manager is invalid (an empty subject, a zero TTL…).
    #[error("{0}")]
    InvalidRequest(String),
    /// A security constraint of a document is malformed.
    #[error("securityConstraints/{index}: {message}")]
    Constraint {
        /// Its position in the document's list.
        index: usize,
        /// What is wrong with it.
        message: String,
    },
    /// TLS material could not be loaded.
    #[error("TLS: {0}")]
    Tls(String),
}
