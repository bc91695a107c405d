//! Copy strategies: one file per way of filling a replica.

pub mod http_snapshot;
pub mod object_copy;

use std::time::Duration;

use crate::error::{ReplicaError, Result};

/// How a copy strategy reaches its source: timeouts, headers and extra trusted CAs.
pub(crate) struct ClientSettings<'a> {
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// One request, from sending to its last body byte.
    pub request_timeout: Duration,
    pub headers: &'a http::HeaderMap,
    pub extra_roots_pem: Option<&'a [u8]>,
}

/// The HTTP client of a copy strategy: redirects are not followed (a 3xx is not copied)
/// and no proxy from the environment is used (the copier talks to its source directly).
pub(crate) fn http_client(settings: ClientSettings<'_>) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder();
    if let Some(pem) = settings.extra_roots_pem {
        for cert in reqwest::Certificate::from_pem_bundle(pem).map_err(ReplicaError::Client)? {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .connect_timeout(settings.connect_timeout)
        .read_timeout(settings.read_timeout)
        .timeout(settings.request_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(settings.headers.clone())
        .no_proxy()
        .build()
        .map_err(ReplicaError::Client)
}
