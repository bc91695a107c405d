//! TLS to upstreams and peers: a rustls client configuration trusting the system's roots
//! plus the CA certificates a node is configured with (`[node] peer_ca_file`), shared by the
//! proxy's upstream client and the remote catalog follower.

use std::sync::Arc;

pub use rustls::ClientConfig;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// A client configuration trusting the system's root certificates and every certificate
/// in `extra_ca_pem` (PEM, one or more). The error says what is wrong with the PEM.
pub fn client_config(extra_ca_pem: Option<&[u8]>) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    // A missing or unreadable system store is not fatal: the configured CA may be all we need.
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        let _ = roots.add(cert);
    }
    if let Some(pem) = extra_ca_pem {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("the CA file is not PEM: {e}"))?;
        if certs.is_empty() {
            return Err("the CA file holds no certificate".into());
        }
        for cert in certs {
            roots.add(cert).map_err(|e| format!("a CA certificate is not usable: {e}"))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
