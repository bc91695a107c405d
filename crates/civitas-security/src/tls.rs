//! TLS for the node's listener: a PEM certificate chain and key into a rustls server
//! configuration (ring provider, TLS 1.2 and 1.3, ALPN `http/1.1`).

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsConfig;
use crate::error::SecurityError;

/// Loads the configured certificate and key.
pub fn server_config(config: &TlsConfig) -> Result<Arc<rustls::ServerConfig>, SecurityError> {
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|source| SecurityError::Io { op: "read", path: path.to_path_buf(), source })
    };
    server_config_from_pem(&read(&config.cert)?, &read(&config.key)?)
}

/// A server configuration from PEM bytes: a certificate chain (leaf first) and its
/// private key (PKCS#8, PKCS#1 or SEC1). A key that does not match the leaf is refused.
pub fn server_config_from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Arc<rustls::ServerConfig>, SecurityError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| SecurityError::Tls(format!("the certificate file is not PEM: {e}")))?;
    if certs.is_empty() {
        return Err(SecurityError::Tls("the certificate file holds no certificate".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| SecurityError::Tls(format!("the key file holds no private key: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SecurityError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| SecurityError::Tls(format!("the certificate and key do not fit together: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
