//! OIDC bearer JWTs signed by test keys (RS256, ES256, EdDSA) and verified against a JWKS
//! served by a local HTTP server on 127.0.0.1:0. Every rejection the issue lists has a test.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use civitas_security::config::IssuerConfig;
use civitas_security::jws::PublicKey;
use civitas_security::strategies::OidcIssuer;
use civitas_security::{AuthStrategy, Authenticator, RejectReason, SecurityMetrics};
use ed25519_dalek::Signer;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use serde_json::{Value, json};

const ISSUER: &str = "https://idp.civitas.test/realms/city";

enum TestKey {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(ed25519_dalek::SigningKey),
}

impl TestKey {
    fn rsa() -> TestKey {
        TestKey::Rsa(RsaKeyPair::from_der(include_bytes!("fixtures/rsa2048.pkcs1.der")).unwrap())
    }
    fn ec() -> TestKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        TestKey::Ec(
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap(),
        )
    }
    fn ed(seed: u8) -> TestKey {
        TestKey::Ed(ed25519_dalek::SigningKey::from_bytes(&[seed; 32]))
    }
    fn alg(&self) -> &'static str {
        match self {
            TestKey::Rsa(_) => "RS256",
            TestKey::Ec(_) => "ES256",
            TestKey::Ed(_) => "EdDSA",
        }
    }
    fn public(&self) -> PublicKey {
        match self {
            TestKey::Rsa(k) => {
                let c = signature::RsaPublicKeyComponents::<Vec<u8>>::from(k.public());
                PublicKey::Rsa { n: c.n, e: c.e }
            }
            TestKey::Ec(k) => PublicKey::P256(k.public_key().as_ref().to_vec()),
            TestKey::Ed(k) => PublicKey::Ed25519(k.verifying_key().to_bytes()),
        }
    }
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match self {
            TestKey::Rsa(k) => {
                let mut sig = vec![0; k.public().modulus_len()];
                k.sign(&signature::RSA_PKCS1_SHA256, &rng, message, &mut sig).unwrap();
                sig
            }
            TestKey::Ec(k) => k.sign(&rng, message).unwrap().as_ref().to_vec(),
            TestKey::Ed(k) => k.sign(message).to_bytes().to_vec(),
        }
    }
    /// A token with this header (alg defaults to the key's) and claims.
    fn token(&self, header: Value, claims: &Value) -> String {
        let mut h = json!({"typ": "JWT", "alg": self.alg()});
        h.as_object_mut().unwrap().extend(header.as_object().unwrap().clone());
        let input = format!("{}.{}", B64URL.encode(h.to_string()), B64URL.encode(claims.to_string()));
        let sig = self.sign(input.as_bytes());
        format!("{input}.{}", B64URL.encode(sig))
    }
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn claims() -> Value {
    json!({"iss": ISSUER, "aud": "civitas", "sub": "alice", "exp": now() + 300, "nbf": now() - 10,
           "roles": ["planner"], "scope": "views:read", "organisation": "City of Vienna"})
}

/// A JWKS endpoint whose key set can be changed and whose fetches are counted.
struct JwksServer {
    url: String,
    keys: Arc<Mutex<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
}

async fn serve_jwks(keys: Vec<Value>) -> JwksServer {
    let keys = Arc::new(Mutex::new(keys));
    let fetches = Arc::new(AtomicUsize::new(0));
    let (k, f) = (Arc::clone(&keys), Arc::clone(&fetches));
    let app = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            let (k, f) = (Arc::clone(&k), Arc::clone(&f));
            async move {
                f.fetch_add(1, Ordering::SeqCst);
                axum::Json(json!({"keys": *k.lock().unwrap()}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    JwksServer { url: format!("http://{addr}/jwks"), keys, fetches }
}

fn issuer(url: &str, min_refresh: u64) -> OidcIssuer {
    OidcIssuer::new(
        serde_json::from_value::<IssuerConfig>(json!({
            "issuer": ISSUER, "audience": ["civitas"], "jwks_url": url,
            "leeway_seconds": 5, "jwks_min_refresh_seconds": min_refresh
        }))
        .unwrap(),
    )
    .unwrap()
}

async fn reason(i: &OidcIssuer, token: &str) -> RejectReason {
    i.verify(token, now()).await.expect_err("the token must be refused").reason
}

#[tokio::test]
async fn rs256_es256_and_eddsa_tokens_are_accepted() {
    let (rsa, ec, ed) = (TestKey::rsa(), TestKey::ec(), TestKey::ed(1));
    let server =
        serve_jwks(vec![rsa.public().to_jwk("rsa-1"), ec.public().to_jwk("ec-1"), ed.public().to_jwk("ed-1")]).await;
    let i = issuer(&server.url, 30);
    for (key, kid) in [(&rsa, "rsa-1"), (&ec, "ec-1"), (&ed, "ed-1")] {
        let p = i.verify(&key.token(json!({"kid": kid}), &claims()), now()).await.unwrap();
        assert_eq!(p.subject, "alice", "{kid}");
        assert!(p.roles.contains("planner") && p.scopes.contains("views:read"));
        assert_eq!(p.organisation.as_deref(), Some("City of Vienna"));
        assert_eq!(p.issuer(), Some(ISSUER));
    }
    assert_eq!(server.fetches.load(Ordering::SeqCst), 1, "the key set is fetched once and cached");
}

#[tokio::test]
async fn every_bad_token_is_rejected_with_its_reason() {
    let (ec, ed) = (TestKey::ec(), TestKey::ed(2));
    let server = serve_jwks(vec![ec.public().to_jwk("ec-1"), ed.public().to_jwk("ed-1")]).await;
    let i = issuer(&server.url, 3_600);
    let with = |k: &str, v: Value| {
        let mut c = claims();
        c[k] = v;
        c
    };
    let ed_token = |c: &Value| ed.token(json!({"kid": "ed-1"}), c);

    assert_eq!(reason(&i, &ed_token(&with("exp", json!(now() - 60)))).await, RejectReason::Expired);
    assert_eq!(reason(&i, &ed_token(&with("nbf", json!(now() + 60)))).await, RejectReason::NotYetValid);
    assert_eq!(reason(&i, &ed_token(&with("aud", json!("someone-else")))).await, RejectReason::WrongAudience);
    assert_eq!(reason(&i, &ed_token(&with("iss", json!("https://evil.test")))).await, RejectReason::WrongIssuer);

    // alg: none, with and without a signature.
    let unsigned =
        format!("{}.{}.", B64URL.encode(r#"{"alg":"none","kid":"ed-1"}"#), B64URL.encode(claims().to_string()));
    assert_eq!(reason(&i, &unsigned).await, RejectReason::UnsupportedAlgorithm);
    let none_signed = ed.token(json!({"kid": "ed-1", "alg": "none"}), &claims());
    assert_eq!(reason(&i, &none_signed).await, RejectReason::UnsupportedAlgorithm);

    // The header claims ES256 for the Ed25519 key: algorithm confusion is refused.
    let confused = ed.token(json!({"kid": "ed-1", "alg": "ES256"}), &claims());
    assert_eq!(reason(&i, &confused).await, RejectReason::AlgorithmMismatch);

    assert_eq!(reason(&i, &ed.token(json!({"kid": "nobody"}), &claims())).await, RejectReason::UnknownKey);

    // Signed by another key under a known kid.
    let impostor = TestKey::ed(3).token(json!({"kid": "ed-1"}), &claims());
    assert_eq!(reason(&i, &impostor).await, RejectReason::BadSignature);
    // A valid signature over other claims.
    let good = ed_token(&claims());
    let tampered_payload = B64URL.encode(with("sub", json!("mallory")).to_string());
    let parts: Vec<&str> = good.split('.').collect();
    let tampered = format!("{}.{tampered_payload}.{}", parts[0], parts[2]);
    assert_eq!(reason(&i, &tampered).await, RejectReason::BadSignature);

    for malformed in ["", "abc", "a.b.c", "e30.e30", &format!("{}.e30.!!", parts[0])] {
        assert_eq!(reason(&i, malformed).await, RejectReason::Malformed, "{malformed:?}");
    }
    assert_eq!(reason(&i, &ed_token(&with("exp", Value::Null))).await, RejectReason::MissingClaim);

    // The untouched token still passes: the rejections above are about what was changed.
    i.verify(&good, now()).await.unwrap();
}

#[tokio::test]
async fn unknown_kids_refresh_the_key_set_at_most_once_per_interval() {
    let (old, new) = (TestKey::ed(4), TestKey::ec());
    let server = serve_jwks(vec![old.public().to_jwk("old")]).await;
    let limited = issuer(&server.url, 3_600);
    limited.verify(&old.token(json!({"kid": "old"}), &claims()), now()).await.unwrap();
    for _ in 0..5 {
        assert_eq!(reason(&limited, &old.token(json!({"kid": "made-up"}), &claims())).await, RejectReason::UnknownKey);
    }
    assert_eq!(server.fetches.load(Ordering::SeqCst), 1, "made-up kids do not hammer the identity provider");

    // Key rotation: the provider publishes a new key; an issuer allowed to refresh finds it.
    let rotating = issuer(&server.url, 0);
    rotating.verify(&old.token(json!({"kid": "old"}), &claims()), now()).await.unwrap();
    server.keys.lock().unwrap().push(new.public().to_jwk("new"));
    let p = rotating.verify(&new.token(json!({"kid": "new"}), &claims()), now()).await.unwrap();
    assert_eq!(p.subject, "alice");
    assert_eq!(server.fetches.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn an_unreachable_jwks_is_unavailable_not_unauthorised() {
    // Bind and drop a listener to get a port nobody serves.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let i = issuer(&format!("http://127.0.0.1:{port}/jwks"), 0);
    let token = TestKey::ed(5).token(json!({"kid": "k"}), &claims());
    assert_eq!(reason(&i, &token).await, RejectReason::Unavailable);
    assert_eq!(RejectReason::Unavailable.status(), 503);
}

#[tokio::test]
async fn the_authenticator_routes_tokens_by_issuer_and_builds_the_challenge() {
    let ed = TestKey::ed(6);
    let server = serve_jwks(vec![ed.public().to_jwk("ed-1")]).await;
    let strategies: Vec<Arc<dyn AuthStrategy>> = vec![Arc::new(issuer(&server.url, 30))];
    let a = Authenticator::new(strategies, "civitas", Duration::from_secs(2), SecurityMetrics::default());
    let token = ed.token(json!({"kid": "ed-1"}), &claims());
    let p = a.authenticate(Some(&format!("Bearer {token}"))).await.unwrap();
    assert_eq!(p.subject, "alice");

    let mut other = claims();
    other["iss"] = json!("https://unknown-idp.test");
    let r = a.authenticate(Some(&format!("Bearer {}", ed.token(json!({"kid": "ed-1"}), &other)))).await.unwrap_err();
    assert_eq!(r.reason, RejectReason::WrongIssuer);

    let mut expired = claims();
    expired["exp"] = json!(now() - 3_600);
    let r = a.authenticate(Some(&format!("Bearer {}", ed.token(json!({"kid": "ed-1"}), &expired)))).await.unwrap_err();
    assert_eq!(r.reason, RejectReason::Expired);
    let header = a.challenge(Some(&r));
    assert!(header.starts_with("Bearer realm=\"civitas\", error=\"invalid_token\", error_description=\""), "{header}");
}

/// A JWKS served over HTTPS with a certificate made by rcgen, through the crate's own TLS
/// helper; returns the URL and the CA (the self-signed certificate) as PEM.
async fn serve_jwks_https(keys: Vec<Value>) -> (String, String) {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let config = civitas_security::tls::server_config_from_pem(
        generated.cert.pem().as_bytes(),
        generated.signing_key.serialize_pem().as_bytes(),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let body = json!({"keys": keys}).to_string();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let (acceptor, body) = (acceptor.clone(), body.clone());
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake: nothing to serve.
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let service = hyper::service::service_fn(move |_request| {
                    let body = body.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(http_body_util::Full::<
                            hyper::body::Bytes,
                        >::from(body)))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (format!("https://localhost:{port}/jwks"), generated.cert.pem())
}

#[tokio::test]
async fn an_https_jwks_is_trusted_only_through_its_ca() {
    let ed = TestKey::ed(7);
    let (url, ca_pem) = serve_jwks_https(vec![ed.public().to_jwk("ed-1")]).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    let config = |ca: Option<&std::path::Path>| -> IssuerConfig {
        serde_json::from_value(json!({"issuer": ISSUER, "audience": ["civitas"], "jwks_url": url,
            "jwks_min_refresh_seconds": 0, "ca_file": ca}))
        .unwrap()
    };
    let token = ed.token(json!({"kid": "ed-1"}), &claims());

    let trusting = OidcIssuer::new(config(Some(&ca_file))).unwrap();
    assert_eq!(trusting.verify(&token, now()).await.unwrap().subject, "alice");

    // Without the CA, the self-signed certificate is refused and no key is ever fetched.
    let untrusting = OidcIssuer::new(config(None)).unwrap();
    assert_eq!(reason(&untrusting, &token).await, RejectReason::Unavailable);
}
