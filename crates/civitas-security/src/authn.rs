//! Authentication: the `AuthStrategy` seam and the `Authenticator` that tries the
//! configured strategies on an `Authorization` header.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest, Sha256};

use crate::cache::TtlCache;
use crate::metrics::SecurityMetrics;
use crate::principal::Principal;

/// An HTTP authentication scheme a strategy reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `Authorization: Bearer <token>` (RFC 6750): local tokens, OIDC JWTs.
    Bearer,
    /// `Authorization: Basic <base64 user:password>` (RFC 7617): LDAP.
    Basic,
}

impl Scheme {
    /// The scheme's name as written in headers.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Bearer => "Bearer",
            Scheme::Basic => "Basic",
        }
    }
}

/// Credentials parsed from an `Authorization` header.
pub enum Credentials<'a> {
    /// A bearer token.
    Bearer(&'a str),
    /// A user name and password.
    Basic {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
}

impl fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Bearer(_) => f.write_str("Bearer(<token>)"),
            Credentials::Basic { user, .. } => write!(f, "Basic({user}, <password>)"),
        }
    }
}

impl Credentials<'_> {
    /// The scheme of these credentials.
    pub fn scheme(&self) -> Scheme {
        match self {
            Credentials::Bearer(_) => Scheme::Bearer,
            Credentials::Basic { .. } => Scheme::Basic,
        }
    }
}

/// Why credentials were refused. Each maps to an RFC 6750 `error` code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// The header or token is not well formed.
    Malformed,
    /// The `Authorization` scheme is not one this node accepts.
    UnsupportedScheme,
    /// `exp` has passed.
    Expired,
    /// `nbf` is in the future.
    NotYetValid,
    /// `aud` does not name this node.
    WrongAudience,
    /// `iss` is not a configured issuer.
    WrongIssuer,
    /// The algorithm is `none` or not one of RS256, ES256, EdDSA.
    UnsupportedAlgorithm,
    /// The algorithm does not fit the key named by `kid`.
    AlgorithmMismatch,
    /// No key has that `kid`, even after refreshing the issuer's JWKS.
    UnknownKey,
    /// The signature does not verify.
    BadSignature,
    /// The token was revoked or is no longer registered.
    Revoked,
    /// A user name or password is wrong (never says which).
    BadCredentials,
    /// A required claim (`sub`, `exp`) is missing or has the wrong type.
    MissingClaim,
    /// The identity provider (JWKS endpoint, LDAP directory) could not be reached; the
    /// node should answer `503`, not `401`.
    Unavailable,
}

impl RejectReason {
    /// A stable slug for logs, metrics and problem documents.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Malformed => "malformed",
            RejectReason::UnsupportedScheme => "unsupported_scheme",
            RejectReason::Expired => "expired",
            RejectReason::NotYetValid => "not_yet_valid",
            RejectReason::WrongAudience => "wrong_audience",
            RejectReason::WrongIssuer => "wrong_issuer",
            RejectReason::UnsupportedAlgorithm => "unsupported_algorithm",
            RejectReason::AlgorithmMismatch => "algorithm_mismatch",
            RejectReason::UnknownKey => "unknown_key",
            RejectReason::BadSignature => "bad_signature",
            RejectReason::Revoked => "revoked",
            RejectReason::BadCredentials => "bad_credentials",
            RejectReason::MissingClaim => "missing_claim",
            RejectReason::Unavailable => "unavailable",
        }
    }

    /// The HTTP status the node should answer with.
    pub fn status(self) -> u16 {
        match self {
            RejectReason::Unavailable => 503,
            RejectReason::Malformed | RejectReason::UnsupportedScheme => 400,
            _ => 401,
        }
    }
}

/// A refusal of presented credentials, precise enough for a `401` with
/// `WWW-Authenticate` and for the audit log. The detail never contains the credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason:?}: {detail}")]
pub struct Rejection {
    /// The scheme that was presented.
    pub scheme: Scheme,
    /// Why it was refused.
    pub reason: RejectReason,
    /// A human-readable explanation (safe to show the caller).
    pub detail: String,
}

impl Rejection {
    /// A rejection of bearer credentials.
    pub fn bearer(reason: RejectReason, detail: impl Into<String>) -> Rejection {
        Rejection { scheme: Scheme::Bearer, reason, detail: detail.into() }
    }

    /// A rejection of basic credentials.
    pub fn basic(reason: RejectReason, detail: impl Into<String>) -> Rejection {
        Rejection { scheme: Scheme::Basic, reason, detail: detail.into() }
    }
}

/// What a strategy makes of credentials.
#[derive(Debug)]
pub enum Outcome {
    /// They identify this principal.
    Authenticated(Box<Principal>),
    /// They are not for this strategy (another issuer, another scheme): try the next one.
    NotMine,
    /// They are for this strategy and are refused.
    Rejected(Rejection),
}

/// One way of authenticating a caller (local tokens, an OIDC issuer, an LDAP directory).
///
/// A strategy recognises its own credentials (a token's `iss`, the `Basic` scheme) and
/// answers [`Outcome::NotMine`] for others, so the [`Authenticator`] can try several.
#[async_trait]
pub trait AuthStrategy: Send + Sync + 'static {
    /// A short name for logs and metrics (`local`, `oidc`, `ldap`).
    fn name(&self) -> &str;
    /// The scheme it reads.
    fn scheme(&self) -> Scheme;
    /// Checks the credentials.
    async fn authenticate(&self, credentials: &Credentials<'_>) -> Outcome;
}

/// Tries the configured strategies on an `Authorization` header.
///
/// Successful authentications are cached for a short time (at most until the
/// credentials expire), keyed by a salted digest of the header, so the data plane does not
/// verify a signature or bind to LDAP on every request. Rejections are not cached.
pub struct Authenticator {
    strategies: Vec<Arc<dyn AuthStrategy>>,
    anonymous: Arc<Principal>,
    realm: String,
    cache: TtlCache<[u8; 32], Arc<Principal>>,
    salt: [u8; 16],
    metrics: SecurityMetrics,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.strategies.iter().map(|s| s.name()).collect();
        f.debug_struct("Authenticator").field("strategies", &names).field("realm", &self.realm).finish()
    }
}

impl Authenticator {
    /// An authenticator trying `strategies` in order, caching successes for `cache_ttl`
    /// (zero disables the cache).
    pub fn new(
        strategies: Vec<Arc<dyn AuthStrategy>>,
        realm: impl Into<String>,
        cache_ttl: Duration,
        metrics: SecurityMetrics,
    ) -> Authenticator {
        let mut salt = [0u8; 16];
        // Without randomness the salt is fixed; the digest is still a full SHA-256.
        let _ = getrandom::fill(&mut salt);
        Authenticator {
            strategies,
            anonymous: Arc::new(Principal::anonymous()),
            realm: realm.into(),
            cache: TtlCache::new(cache_ttl, 16_384),
            salt,
            metrics,
        }
    }

    /// Authenticates the value of an `Authorization` header. No header is the anonymous
    /// principal; policies decide what anonymous may do.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Arc<Principal>, Rejection> {
        let Some(header) = authorization else {
            return Ok(Arc::clone(&self.anonymous));
        };
        let now = Instant::now();
        let key = self.cache_key(header);
        if let Some(p) = self.cache.get(&key, now) {
            return Ok(p);
        }
        let result = self.authenticate_uncached(header).await;
        match &result {
            Ok(p) => {
                self.metrics.authentication(p.source_name(), "accepted");
                let not_after = p.expires_at.map(|exp| now + Duration::from_secs(exp.saturating_sub(unix_now())));
                self.cache.insert(key, Arc::clone(p), now, not_after);
            }
            Err(r) => {
                self.metrics.authentication(r.scheme.as_str(), r.reason.as_str());
                tracing::debug!(scheme = r.scheme.as_str(), reason = r.reason.as_str(), detail = %r.detail, "credentials rejected");
            }
        }
        result
    }

    async fn authenticate_uncached(&self, header: &str) -> Result<Arc<Principal>, Rejection> {
        let credentials = parse_authorization(header)?;
        let scheme = credentials.scheme();
        for strategy in self.strategies.iter().filter(|s| s.scheme() == scheme) {
            match strategy.authenticate(&credentials).await {
                Outcome::Authenticated(p) => return Ok(Arc::from(p)),
                Outcome::Rejected(r) => return Err(r),
                Outcome::NotMine => continue,
            }
        }
        Err(match scheme {
            Scheme::Bearer => Rejection::bearer(RejectReason::WrongIssuer, "no configured issuer accepts this token"),
            Scheme::Basic => {
                Rejection::basic(RejectReason::UnsupportedScheme, "basic authentication is not configured")
            }
        })
    }

    /// Forgets cached authentications (after a token revocation).
    pub fn clear_cache(&self) {
        self.cache.clear();
    }

    /// The `WWW-Authenticate` header value for a `401`: one challenge per configured
    /// scheme, with RFC 6750 `error` and `error_description` on the bearer challenge
    /// when `rejection` is a refused bearer token.
    pub fn challenge(&self, rejection: Option<&Rejection>) -> String {
        let mut schemes: Vec<Scheme> = Vec::new();
        for s in &self.strategies {
            if !schemes.contains(&s.scheme()) {
                schemes.push(s.scheme());
            }
        }
        if schemes.is_empty() {
            schemes.push(Scheme::Bearer);
        }
        schemes.iter().map(|s| www_authenticate(*s, &self.realm, rejection)).collect::<Vec<_>>().join(", ")
    }

    fn cache_key(&self, header: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.salt);
        h.update(header.as_bytes());
        h.finalize().into()
    }
}

/// One `WWW-Authenticate` challenge (RFC 7235 / RFC 6750) for `scheme` in `realm`; the
/// rejection's error code and description are added when it concerns this scheme.
pub fn www_authenticate(scheme: Scheme, realm: &str, rejection: Option<&Rejection>) -> String {
    let mut out = format!("{} realm=\"{}\"", scheme.as_str(), quote(realm));
    if let Some(r) = rejection.filter(|r| r.scheme == scheme && scheme == Scheme::Bearer) {
        let code = match r.reason {
            RejectReason::Malformed | RejectReason::UnsupportedScheme => "invalid_request",
            _ => "invalid_token",
        };
        out.push_str(&format!(", error=\"{code}\", error_description=\"{}\"", quote(&r.detail)));
    } else if scheme == Scheme::Basic {
        out.push_str(", charset=\"UTF-8\"");
    }
    out
}

/// Keeps a quoted-string valid: RFC 6750 allows %x20-21 / %x23-5B / %x5D-7E only.
fn quote(s: &str) -> String {
    s.chars().map(|c| if (' '..='~').contains(&c) && c != '"' && c != '\\' { c } else { '\'' }).collect()
}

/// Parses an `Authorization` header value (`Bearer <token>` or `Basic <base64>`) into credentials.
pub fn parse_authorization(header: &str) -> Result<Credentials<'_>, Rejection> {
    let (scheme, rest) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        if rest.is_empty() || rest.contains(' ') {
            return Err(Rejection::bearer(RejectReason::Malformed, "expected `Bearer <token>`"));
        }
        Ok(Credentials::Bearer(rest))
    } else if scheme.eq_ignore_ascii_case("basic") {
        let bad = || Rejection::basic(RejectReason::Malformed, "expected `Basic <base64 of user:password>`");
        let decoded = BASE64.decode(rest).map_err(|_| bad())?;
        let text = String::from_utf8(decoded).map_err(|_| bad())?;
        let (user, password) = text.split_once(':').ok_or_else(bad)?;
        Ok(Credentials::Basic { user: user.to_owned(), password: password.to_owned() })
    } else {
        Err(Rejection::bearer(RejectReason::UnsupportedScheme, "only Bearer and Basic credentials are accepted"))
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::principal::Source;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Fixed {
        calls: AtomicUsize,
        accept: &'static str,
    }

    #[async_trait]
    impl AuthStrategy for Fixed {
        fn name(&self) -> &str {
            "fixed"
        }
        fn scheme(&self) -> Scheme {
            Scheme::Bearer
        }
        async fn authenticate(&self, c: &Credentials<'_>) -> Outcome {
            self.calls.fetch_add(1, Ordering::SeqCst);
            match c {
                Credentials::Bearer(t) if *t == self.accept => {
                    Outcome::Authenticated(Box::new(Principal::new("alice", Source::Oidc { issuer: "x".into() })))
                }
                Credentials::Bearer(t) if t.starts_with("bad") => {
                    Outcome::Rejected(Rejection::bearer(RejectReason::BadSignature, "signature does not verify"))
                }
                _ => Outcome::NotMine,
            }
        }
    }

    fn authenticator(s: Arc<Fixed>) -> Authenticator {
        Authenticator::new(vec![s], "civitas", Duration::from_secs(5), SecurityMetrics::default())
    }

    #[tokio::test]
    async fn no_header_is_anonymous_and_successes_are_cached() {
        let s = Arc::new(Fixed { calls: AtomicUsize::new(0), accept: "good" });
        let a = authenticator(Arc::clone(&s));
        assert!(a.authenticate(None).await.unwrap().is_anonymous());
        assert_eq!(a.authenticate(Some("Bearer good")).await.unwrap().subject, "alice");
        assert_eq!(a.authenticate(Some("Bearer good")).await.unwrap().subject, "alice");
        assert_eq!(s.calls.load(Ordering::SeqCst), 1, "second call served from the cache");
        a.clear_cache();
        a.authenticate(Some("Bearer good")).await.unwrap();
        assert_eq!(s.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn rejections_are_precise() {
        let s = Arc::new(Fixed { calls: AtomicUsize::new(0), accept: "good" });
        let a = authenticator(s);
        let r = a.authenticate(Some("Bearer bad1")).await.unwrap_err();
        assert_eq!(r.reason, RejectReason::BadSignature);
        let r = a.authenticate(Some("Bearer other")).await.unwrap_err();
        assert_eq!(r.reason, RejectReason::WrongIssuer);
        let r = a.authenticate(Some("Digest x")).await.unwrap_err();
        assert_eq!(r.reason, RejectReason::UnsupportedScheme);
        let r = a.authenticate(Some("Bearer")).await.unwrap_err();
        assert_eq!(r.reason, RejectReason::Malformed);
        let r = a.authenticate(Some("Basic !!!")).await.unwrap_err();
        assert_eq!((r.scheme, r.reason), (Scheme::Basic, RejectReason::Malformed));
        let r = a.authenticate(Some(&format!("Basic {}", BASE64.encode("bob:pw")))).await.unwrap_err();
        assert_eq!(r.reason, RejectReason::UnsupportedScheme, "no basic strategy configured");
    }

    #[test]
    fn challenge_follows_rfc_6750() {
        let s = Arc::new(Fixed { calls: AtomicUsize::new(0), accept: "good" });
        let a = authenticator(s);
        assert_eq!(a.challenge(None), "Bearer realm=\"civitas\"");
        let r = Rejection::bearer(RejectReason::Expired, "the token expired at 12 \"o'clock\"");
        assert_eq!(
            a.challenge(Some(&r)),
            "Bearer realm=\"civitas\", error=\"invalid_token\", error_description=\"the token expired at 12 'o'clock'\""
        );
        let basic = www_authenticate(Scheme::Basic, "civitas", Some(&r));
        assert_eq!(basic, "Basic realm=\"civitas\", charset=\"UTF-8\"");
    }
}
