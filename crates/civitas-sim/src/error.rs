//! The crate's error type: every variant names the address, file or scenario concerned.

use std::net::SocketAddr;
use std::path::PathBuf;

/// What went wrong while starting or running a piece of the simulation.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A profile, scale or scenario setting that cannot work.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// Which setting (e.g. `link profile upstream.burst_bytes`).
        what: String,
        /// Why it was refused.
        reason: String,
    },
    /// Writing a report file (CSV, SVG) failed.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

/// The crate's result type.
pub type Result<T, E = SimError> = std::result::Result<T, E>;
