//! Local tokens: created, verified, listed and revoked; the registry survives a restart;
//! every forged or stale token is refused.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use civitas_ledger::NodeKey;
use civitas_security::config::LocalTokensConfig;
use civitas_security::jws;
use civitas_security::strategies::local_token::KEY_PURPOSE;
use civitas_security::strategies::{LocalTokens, TokenRequest};
use civitas_security::{AuthStrategy, Authenticator, RejectReason, SecurityMetrics, Source};
use serde_json::json;

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn request(subject: &str, ttl: Option<u64>) -> TokenRequest {
    TokenRequest {
        subject: subject.into(),
        roles: vec!["planner".into()],
        groups: vec!["health".into()],
        ttl_seconds: ttl,
    }
}

fn open(dir: &std::path::Path, key: &NodeKey) -> LocalTokens {
    LocalTokens::open(dir, key, &LocalTokensConfig { issuer: "civitas:vienna".into(), ..Default::default() }).unwrap()
}

#[tokio::test]
async fn create_verify_list_revoke_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let key = NodeKey::from_seed(&[1; 32]);
    let tokens = open(dir.path(), &key);
    let issued = tokens.create(request("alice", None)).await.unwrap();
    let other = tokens.create(request("bob", Some(60))).await.unwrap();
    assert_eq!(issued.record.expires_at - issued.record.issued_at, 30 * 86_400, "the default ttl");

    let header: serde_json::Value =
        serde_json::from_slice(&B64URL.decode(issued.token.split('.').next().unwrap()).unwrap()).unwrap();
    assert_eq!(header, json!({"alg": "EdDSA", "typ": "JWT", "kid": tokens.key_id()}));

    let p = tokens.verify(&issued.token, now()).unwrap();
    assert_eq!(p.subject, "alice");
    assert_eq!(p.source, Source::LocalToken { issuer: "civitas:vienna".into() });
    assert!(p.roles.contains("planner") && p.groups.contains("health"));
    assert_eq!(tokens.list().len(), 2);

    assert!(tokens.revoke(&issued.record.id).await.unwrap());
    assert!(!tokens.revoke(&issued.record.id).await.unwrap(), "revoking twice changes nothing");
    assert_eq!(tokens.verify(&issued.token, now()).unwrap_err().reason, RejectReason::Revoked);
    // Revoking by the token itself works too.
    assert!(tokens.revoke(&other.token).await.unwrap());

    // The registry is durable: a restarted node still refuses both and lists them.
    drop(tokens);
    let reopened = open(dir.path(), &key);
    assert_eq!(reopened.verify(&issued.token, now()).unwrap_err().reason, RejectReason::Revoked);
    assert_eq!(reopened.verify(&other.token, now()).unwrap_err().reason, RejectReason::Revoked);
    assert!(reopened.list().iter().all(|r| r.revoked_at.is_some()));
    assert!(!dir.path().join("tokens.json.tmp").exists(), "no temporary file is left behind");

    // A lost registry revokes everything rather than forgetting revocations.
    let fresh = reopened.create(request("carol", None)).await.unwrap();
    std::fs::remove_file(dir.path().join("tokens.json")).unwrap();
    let after_loss = open(dir.path(), &key);
    assert_eq!(after_loss.verify(&fresh.token, now()).unwrap_err().reason, RejectReason::Revoked);
}

#[tokio::test]
async fn stale_and_forged_tokens_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = NodeKey::from_seed(&[2; 32]);
    let tokens = open(dir.path(), &key);
    let issued = tokens.create(request("alice", Some(60))).await.unwrap();
    let reason = |t: &str, at: u64| tokens.verify(t, at).unwrap_err().reason;

    assert_eq!(reason(&issued.token, issued.record.expires_at + 1), RejectReason::Expired);
    assert_eq!(reason(&issued.token, issued.record.issued_at - 1), RejectReason::NotYetValid);

    // Tokens signed with the node's derived key but with wrong claims.
    let signer = key.derive_signing_key(KEY_PURPOSE);
    let claims = |iss: &str, aud: &str| json!({"iss": iss, "aud": aud, "sub": "alice", "jti": issued.record.id, "exp": now() + 60, "nbf": now() - 1});
    let kid = tokens.key_id().to_owned();
    assert_eq!(
        reason(&jws::sign_eddsa(&kid, &claims("civitas:vienna", "elsewhere"), &signer), now()),
        RejectReason::WrongAudience
    );
    assert_eq!(
        reason(&jws::sign_eddsa(&kid, &claims("civitas:graz", "civitas"), &signer), now()),
        RejectReason::WrongIssuer
    );
    assert_eq!(
        reason(&jws::sign_eddsa("other-kid", &claims("civitas:vienna", "civitas"), &signer), now()),
        RejectReason::UnknownKey
    );
    // The node key itself (not the derived token key) does not sign tokens.
    let wrong_key = ed25519_dalek::SigningKey::from_bytes(&[2; 32]);
    assert_eq!(
        reason(&jws::sign_eddsa(&kid, &claims("civitas:vienna", "civitas"), &wrong_key), now()),
        RejectReason::BadSignature
    );
    // A well-signed token whose jti was never registered.
    let mut unregistered = claims("civitas:vienna", "civitas");
    unregistered["jti"] = json!("never-issued");
    assert_eq!(reason(&jws::sign_eddsa(&kid, &unregistered, &signer), now()), RejectReason::Revoked);

    let parts: Vec<&str> = issued.token.split('.').collect();
    let none = format!("{}.{}.", B64URL.encode(r#"{"alg":"none"}"#), parts[1]);
    assert_eq!(reason(&none, now()), RejectReason::UnsupportedAlgorithm);
    assert_eq!(reason("not-a-token", now()), RejectReason::Malformed);
    assert_eq!(reason(&format!("{}.{}.{}", parts[0], parts[1], "AAAA"), now()), RejectReason::BadSignature);

    // Bad requests.
    assert!(tokens.create(request(" ", None)).await.is_err());
    assert!(tokens.create(request("x", Some(0))).await.is_err());
    assert!(tokens.create(request("x", Some(400 * 86_400))).await.is_err());
}

#[tokio::test]
async fn through_the_authenticator() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = Arc::new(open(dir.path(), &NodeKey::from_seed(&[3; 32])));
    let issued = tokens.create(request("alice", None)).await.unwrap();
    let strategies: Vec<Arc<dyn AuthStrategy>> = vec![Arc::clone(&tokens) as Arc<dyn AuthStrategy>];
    let a = Authenticator::new(strategies, "civitas", Duration::from_secs(60), SecurityMetrics::default());
    let header = format!("Bearer {}", issued.token);
    assert_eq!(a.authenticate(Some(&header)).await.unwrap().subject, "alice");
    tokens.revoke(&issued.record.id).await.unwrap();
    // A revocation reaches cached authentications once the cache is cleared.
    a.clear_cache();
    assert_eq!(a.authenticate(Some(&header)).await.unwrap_err().reason, RejectReason::Revoked);
}

#[test]
fn lifetimes_parse_like_the_cli_writes_them() {
    use civitas_security::strategies::parse_ttl;
    assert_eq!(parse_ttl("30d").unwrap(), 30 * 86_400);
    assert_eq!(parse_ttl("2w").unwrap(), 14 * 86_400);
    assert_eq!(parse_ttl("12h").unwrap(), 43_200);
    assert_eq!(parse_ttl("15m").unwrap(), 900);
    assert_eq!(parse_ttl("90").unwrap(), 90);
    for bad in ["", "d", "0d", "-1d", "1y", "1.5d", "99999999999999999999d"] {
        assert!(parse_ttl(bad).is_err(), "{bad}");
    }
}
