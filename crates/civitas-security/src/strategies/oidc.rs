//! OAuth2/OIDC bearer JWTs of configured issuers, verified against each issuer's JWKS.
//!
//! The JWKS is fetched on first use and again when a token names a `kid` the cached set
//! does not have (key rotation) — at most once per `jwks_min_refresh_seconds`, so a flood
//! of tokens with made-up `kid`s cannot turn the node into a load generator against the
//! identity provider.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::authn::{AuthStrategy, Credentials, Outcome, RejectReason, Rejection, Scheme, unix_now};
use crate::config::IssuerConfig;
use crate::error::SecurityError;
use crate::jws::{self, ClaimRules, Jws, PublicKey};
use crate::principal::{Principal, Source};

/// A JWKS document is refused past this size.
const MAX_JWKS_BYTES: usize = 1 << 20;
const REGISTERED: [&str; 7] = ["iss", "sub", "aud", "exp", "nbf", "iat", "jti"];

#[derive(Debug, Default)]
struct KeySet {
    by_kid: HashMap<String, PublicKey>,
    without_kid: Vec<PublicKey>,
}

/// An issuer's key set, fetched from its URL and cached.
#[derive(Debug)]
pub struct Jwks {
    url: String,
    client: reqwest::Client,
    keys: ArcSwap<KeySet>,
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
    min_refresh: Duration,
}

impl Jwks {
    /// A key set served at `url`, refreshed at most once per `min_refresh`.
    pub fn new(url: impl Into<String>, client: reqwest::Client, min_refresh: Duration) -> Jwks {
        Jwks {
            url: url.into(),
            client,
            keys: ArcSwap::from_pointee(KeySet::default()),
            last_fetch: tokio::sync::Mutex::new(None),
            min_refresh,
        }
    }

    /// The key for `kid` (or the only key, when the token names none), fetching the set
    /// when it is not known yet.
    pub async fn key(&self, kid: Option<&str>) -> Result<PublicKey, Rejection> {
        if let Some(k) = Self::find(&self.keys.load(), kid) {
            return Ok(k);
        }
        let fetch_error = {
            let mut last = self.last_fetch.lock().await;
            // Another task may have refreshed while this one waited.
            if let Some(k) = Self::find(&self.keys.load(), kid) {
                return Ok(k);
            }
            let due = last.is_none_or(|t| t.elapsed() >= self.min_refresh);
            if due {
                *last = Some(Instant::now());
                self.fetch().await.err()
            } else {
                None
            }
        };
        if let Some(k) = Self::find(&self.keys.load(), kid) {
            return Ok(k);
        }
        if let Some(e) = &fetch_error {
            tracing::warn!(url = %self.url, error = %e, "cannot fetch the JWKS");
        }
        let keys = self.keys.load();
        if keys.by_kid.is_empty() && keys.without_kid.is_empty() {
            // Never fetched successfully (or the issuer publishes nothing): the provider is
            // the problem, not the token.
            return Err(Rejection::bearer(RejectReason::Unavailable, "the issuer's keys cannot be fetched"));
        }
        Err(Rejection::bearer(RejectReason::UnknownKey, "no key of the issuer has the token's `kid`"))
    }

    fn find(set: &KeySet, kid: Option<&str>) -> Option<PublicKey> {
        match kid {
            Some(kid) => set.by_kid.get(kid).cloned(),
            None if set.without_kid.len() + set.by_kid.len() == 1 => {
                set.without_kid.first().or_else(|| set.by_kid.values().next()).cloned()
            }
            None => None,
        }
    }

    /// Fetches the key set now and replaces the cached one. Keys that cannot be used
    /// (encryption keys, unsupported types) are skipped.
    pub async fn fetch(&self) -> Result<usize, SecurityError> {
        let fail = |message: String| SecurityError::Config { field: format!("jwks_url {}", self.url), message };
        let response = self.client.get(&self.url).send().await.map_err(|e| fail(e.to_string()))?;
        if !response.status().is_success() {
            return Err(fail(format!("answered {}", response.status())));
        }
        if response.content_length().is_some_and(|n| n > MAX_JWKS_BYTES as u64) {
            return Err(fail("the key set is too large".into()));
        }
        let body = response.bytes().await.map_err(|e| fail(e.to_string()))?;
        if body.len() > MAX_JWKS_BYTES {
            return Err(fail("the key set is too large".into()));
        }
        let doc: Value = serde_json::from_slice(&body).map_err(|e| fail(format!("not JSON: {e}")))?;
        let list = doc.get("keys").and_then(Value::as_array).ok_or_else(|| fail("no `keys` array".into()))?;
        let mut set = KeySet::default();
        for jwk in list {
            match PublicKey::from_jwk(jwk) {
                Ok((Some(kid), key)) => {
                    set.by_kid.insert(kid, key);
                }
                Ok((None, key)) => set.without_kid.push(key),
                Err(e) => tracing::debug!(url = %self.url, error = %e, "skipping a JWK"),
            }
        }
        let n = set.by_kid.len() + set.without_kid.len();
        tracing::info!(url = %self.url, keys = n, "fetched the JWKS");
        self.keys.store(Arc::new(set));
        Ok(n)
    }
}

/// One configured OAuth2/OIDC issuer.
#[derive(Debug)]
pub struct OidcIssuer {
    config: IssuerConfig,
    jwks: Jwks,
}

impl OidcIssuer {
    /// An issuer from its configuration. The HTTP client never uses an environment proxy.
    pub fn new(config: IssuerConfig) -> Result<OidcIssuer, SecurityError> {
        let field = |f: &str| format!("security.issuers[{}].{f}", config.issuer);
        if config.issuer.trim().is_empty() {
            return Err(SecurityError::Config { field: field("issuer"), message: "must not be empty".into() });
        }
        if config.audience.is_empty() {
            return Err(SecurityError::Config {
                field: field("audience"),
                message: "name at least one audience".into(),
            });
        }
        if !(config.jwks_url.starts_with("http://") || config.jwks_url.starts_with("https://")) {
            return Err(SecurityError::Config { field: field("jwks_url"), message: "must be an http(s) URL".into() });
        }
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .use_rustls_tls()
            .https_only(config.jwks_url.starts_with("https://"))
            .timeout(Duration::from_millis(config.fetch_timeout_ms));
        if let Some(path) = &config.ca_file {
            let pem =
                std::fs::read(path).map_err(|source| SecurityError::Io { op: "read", path: path.clone(), source })?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| SecurityError::Config { field: field("ca_file"), message: e.to_string() })?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client =
            builder.build().map_err(|e| SecurityError::Config { field: field("jwks_url"), message: e.to_string() })?;
        let jwks = Jwks::new(&config.jwks_url, client, Duration::from_secs(config.jwks_min_refresh_seconds));
        Ok(OidcIssuer { config, jwks })
    }

    /// The issuer's key set.
    pub fn jwks(&self) -> &Jwks {
        &self.jwks
    }

    /// Verifies a token of this issuer at `now` (Unix seconds).
    pub async fn verify(&self, token: &str, now: u64) -> Result<Principal, Rejection> {
        let jws = Jws::parse(token)?;
        let key = self.jwks.key(jws.kid.as_deref()).await?;
        jws.verify(&key)?;
        let rules = ClaimRules {
            issuer: &self.config.issuer,
            audiences: &self.config.audience,
            leeway_seconds: self.config.leeway_seconds,
            now,
        };
        let exp = jws::check_claims(&jws.claims, rules)?;
        Ok(self.principal(jws.claims, exp))
    }

    fn principal(&self, claims: Map<String, Value>, exp: u64) -> Principal {
        let subject = claims.get("sub").and_then(Value::as_str).unwrap_or_default();
        let mut p = Principal::new(subject, Source::Oidc { issuer: self.config.issuer.clone() });
        p.roles = strings(path(&claims, &self.config.roles_claim));
        p.groups = strings(path(&claims, &self.config.groups_claim));
        p.scopes = strings(claims.get("scope").or_else(|| claims.get("scp")));
        let text =
            |names: &[&str]| names.iter().find_map(|n| claims.get(*n).and_then(Value::as_str)).map(str::to_owned);
        p.organisation = text(&["organisation", "organization", "org"]);
        p.jurisdiction = text(&["jurisdiction"]);
        p.expires_at = Some(exp);
        p.claims = claims.into_iter().filter(|(k, _)| !REGISTERED.contains(&k.as_str())).collect();
        p
    }
}

/// A claim at a dotted path (`realm_access.roles`).
fn path<'a>(claims: &'a Map<String, Value>, dotted: &str) -> Option<&'a Value> {
    let mut parts = dotted.split('.');
    let mut v = claims.get(parts.next()?)?;
    for part in parts {
        v = v.get(part)?;
    }
    Some(v)
}

/// An array of strings, or one space-separated string (OAuth2 `scope`).
fn strings(v: Option<&Value>) -> BTreeSet<String> {
    match v {
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
        _ => BTreeSet::new(),
    }
}

#[async_trait]
impl AuthStrategy for OidcIssuer {
    fn name(&self) -> &str {
        "oidc"
    }

    fn scheme(&self) -> Scheme {
        Scheme::Bearer
    }

    async fn authenticate(&self, credentials: &Credentials<'_>) -> Outcome {
        let Credentials::Bearer(token) = credentials else { return Outcome::NotMine };
        match Jws::parse(token) {
            Ok(jws) if jws.claims.get("iss").and_then(Value::as_str) != Some(self.config.issuer.as_str()) => {
                Outcome::NotMine
            }
            Ok(_) => match self.verify(token, unix_now()).await {
                Ok(p) => Outcome::Authenticated(Box::new(p)),
                Err(r) => Outcome::Rejected(r),
            },
            Err(r) => Outcome::Rejected(r),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn claims_map_to_a_principal() {
        let cfg: IssuerConfig = serde_json::from_value(json!({
            "issuer": "https://idp", "audience": ["civitas"], "jwks_url": "http://127.0.0.1:1/jwks",
            "roles_claim": "realm_access.roles"
        }))
        .unwrap();
        let issuer = OidcIssuer::new(cfg).unwrap();
        let claims = json!({"iss": "https://idp", "sub": "alice", "realm_access": {"roles": ["planner"]},
            "groups": ["health"], "scope": "read:views write:units", "organisation": "City of Vienna",
            "jurisdiction": "AT", "department": "MA 18"});
        let p = issuer.principal(claims.as_object().unwrap().clone(), 99);
        assert_eq!(p.subject, "alice");
        assert!(p.roles.contains("planner") && p.groups.contains("health") && p.scopes.contains("write:units"));
        assert_eq!((p.organisation.as_deref(), p.jurisdiction.as_deref()), (Some("City of Vienna"), Some("AT")));
        assert_eq!(p.claims.get("department"), Some(&json!("MA 18")));
        assert!(!p.claims.contains_key("iss"));
    }

    #[test]
    fn configuration_is_checked() {
        let cfg = |url: &str, aud: Vec<&str>| -> IssuerConfig {
            serde_json::from_value(json!({"issuer": "https://idp", "audience": aud, "jwks_url": url})).unwrap()
        };
        assert!(OidcIssuer::new(cfg("ftp://x", vec!["a"])).is_err());
        assert!(OidcIssuer::new(cfg("http://x", vec![])).is_err());
    }
}
