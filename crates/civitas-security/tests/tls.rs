//! The TLS helper: a self-signed certificate made by rcgen loads, completes a real TLS
//! handshake in memory with a client that trusts it, and bad material is refused.

use std::sync::Arc;

use civitas_security::config::TlsConfig;
use civitas_security::tls;
use rustls::Connection;

fn transfer(from: &mut Connection, to: &mut Connection) {
    let mut buf = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut buf).unwrap();
    }
    let mut slice = &buf[..];
    while !slice.is_empty() {
        to.read_tls(&mut slice).unwrap();
    }
    to.process_new_packets().unwrap();
}

#[test]
fn a_self_signed_certificate_serves_a_handshake() {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, generated.cert.pem()).unwrap();
    std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
    let server_config = tls::server_config(&TlsConfig { cert: cert.clone(), key: key.clone() }).unwrap();
    assert_eq!(server_config.alpn_protocols, vec![b"http/1.1".to_vec()]);

    let mut roots = rustls::RootCertStore::empty();
    roots.add(generated.cert.der().clone()).unwrap();
    let client_config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut client = Connection::Client(
        rustls::ClientConnection::new(Arc::new(client_config), "localhost".try_into().unwrap()).unwrap(),
    );
    let mut server = Connection::Server(rustls::ServerConnection::new(server_config).unwrap());
    for _ in 0..10 {
        if !client.is_handshaking() && !server.is_handshaking() {
            break;
        }
        transfer(&mut client, &mut server);
        transfer(&mut server, &mut client);
    }
    assert!(!client.is_handshaking() && !server.is_handshaking(), "the handshake completes");
    assert_eq!(client.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_3));
}

#[test]
fn bad_material_is_refused() {
    let a = rcgen::generate_simple_self_signed(vec!["a".into()]).unwrap();
    let b = rcgen::generate_simple_self_signed(vec!["b".into()]).unwrap();
    let mismatched = tls::server_config_from_pem(a.cert.pem().as_bytes(), b.signing_key.serialize_pem().as_bytes());
    assert!(mismatched.unwrap_err().to_string().contains("do not fit"));
    assert!(tls::server_config_from_pem(b"", a.signing_key.serialize_pem().as_bytes()).is_err());
    assert!(tls::server_config_from_pem(a.cert.pem().as_bytes(), b"not a key").is_err());
    let missing = TlsConfig { cert: "/nonexistent/cert.pem".into(), key: "/nonexistent/key.pem".into() };
    assert!(tls::server_config(&missing).unwrap_err().to_string().contains("/nonexistent/cert.pem"));
}
