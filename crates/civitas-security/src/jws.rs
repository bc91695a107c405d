//! Compact JWS (RFC 7515) as JWTs (RFC 7519) use it: parsing, signature verification with
//! `ring` (RS256, ES256, EdDSA), JWK (RFC 7517) public keys, registered-claim checks, and
//! EdDSA signing for local tokens.
//!
//! The algorithm is taken from the header only to be compared: the key decides which
//! algorithm verifies, and a header whose `alg` differs from the key's is refused
//! (no algorithm confusion). `none`, any other algorithm, and `crit` headers are refused.
//! `jku`, `x5u` and embedded keys are ignored: keys come only from configuration.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use ed25519_dalek::Signer;
use ring::signature::{self, UnparsedPublicKey};
use serde_json::{Map, Value, json};

use crate::authn::{RejectReason, Rejection};

/// Tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// A signature algorithm this crate verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256, keys of 2048 to 8192 bits.
    Rs256,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// Ed25519.
    EdDsa,
}

impl Algorithm {
    /// Parses a JOSE `alg` value.
    pub fn parse(alg: &str) -> Result<Algorithm, Rejection> {
        match alg {
            "RS256" => Ok(Algorithm::Rs256),
            "ES256" => Ok(Algorithm::Es256),
            "EdDSA" => Ok(Algorithm::EdDsa),
            other => Err(Rejection::bearer(
                RejectReason::UnsupportedAlgorithm,
                format!("algorithm `{other}` is not accepted (RS256, ES256, EdDSA)"),
            )),
        }
    }

    /// The JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Rs256 => "RS256",
            Algorithm::Es256 => "ES256",
            Algorithm::EdDsa => "EdDSA",
        }
    }
}

/// A verification key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// An RSA key: big-endian modulus and exponent.
    Rsa {
        /// Modulus, without leading zero bytes.
        n: Vec<u8>,
        /// Public exponent.
        e: Vec<u8>,
    },
    /// A P-256 point, uncompressed (`0x04 || x || y`).
    P256(Vec<u8>),
    /// An Ed25519 public key.
    Ed25519([u8; 32]),
}

impl PublicKey {
    /// The only algorithm this key verifies.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            PublicKey::Rsa { .. } => Algorithm::Rs256,
            PublicKey::P256(_) => Algorithm::Es256,
            PublicKey::Ed25519(_) => Algorithm::EdDsa,
        }
    }

    /// Reads a JWK. Returns its `kid` and the key; a JWK whose `alg` or `use` does not fit
    /// a signature key of a supported algorithm is an error.
    pub fn from_jwk(jwk: &Value) -> Result<(Option<String>, PublicKey), String> {
        let field = |name: &str| jwk.get(name).and_then(Value::as_str);
        let bytes = |name: &str| -> Result<Vec<u8>, String> {
            let s = field(name).ok_or_else(|| format!("missing `{name}`"))?;
            B64URL.decode(s).map_err(|_| format!("`{name}` is not base64url"))
        };
        if let Some(u) = field("use")
            && u != "sig"
        {
            return Err(format!("`use` is `{u}`, not `sig`"));
        }
        let key = match (field("kty"), field("crv")) {
            (Some("RSA"), _) => {
                let mut n = bytes("n")?;
                let lead = n.iter().take_while(|b| **b == 0).count();
                n.drain(..lead);
                PublicKey::Rsa { n, e: bytes("e")? }
            }
            (Some("EC"), Some("P-256")) => {
                let (x, y) = (bytes("x")?, bytes("y")?);
                if x.len() != 32 || y.len() != 32 {
                    return Err("P-256 coordinates must be 32 bytes".into());
                }
                let mut point = vec![4u8];
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                PublicKey::P256(point)
            }
            (Some("OKP"), Some("Ed25519")) => {
                PublicKey::Ed25519(bytes("x")?.try_into().map_err(|_| "an Ed25519 key is 32 bytes".to_string())?)
            }
            (kty, crv) => return Err(format!("unsupported key type {kty:?} / curve {crv:?}")),
        };
        if let Some(alg) = field("alg")
            && alg != key.algorithm().as_str()
        {
            return Err(format!("`alg` {alg} does not fit a {} key", key.algorithm().as_str()));
        }
        Ok((field("kid").map(str::to_owned), key))
    }

    /// This key as a JWK with `kid`.
    pub fn to_jwk(&self, kid: &str) -> Value {
        match self {
            PublicKey::Rsa { n, e } => {
                json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": B64URL.encode(n), "e": B64URL.encode(e)})
            }
            PublicKey::P256(p) => json!({"kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
                "x": B64URL.encode(&p[1..33]), "y": B64URL.encode(&p[33..65])}),
            PublicKey::Ed25519(x) => {
                json!({"kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": kid, "x": B64URL.encode(x)})
            }
        }
    }

    fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        match self {
            PublicKey::Rsa { n, e } => signature::RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, sig)
                .is_ok(),
            PublicKey::P256(p) => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, p).verify(message, sig).is_ok()
            }
            PublicKey::Ed25519(x) => UnparsedPublicKey::new(&signature::ED25519, x).verify(message, sig).is_ok(),
        }
    }
}

/// A parsed, not yet verified, compact JWS.
#[derive(Debug)]
pub struct Jws<'a> {
    /// The header's algorithm.
    pub alg: Algorithm,
    /// The header's key id.
    pub kid: Option<String>,
    /// The payload's claims (untrusted until [`Jws::verify`] succeeds).
    pub claims: Map<String, Value>,
    signing_input: &'a str,
    signature: Vec<u8>,
}

fn malformed(detail: &str) -> Rejection {
    Rejection::bearer(RejectReason::Malformed, detail)
}

impl<'a> Jws<'a> {
    /// Splits and decodes `header.payload.signature`.
    pub fn parse(token: &'a str) -> Result<Jws<'a>, Rejection> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(malformed("the token is too long"));
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(malformed("a JWT has three base64url parts separated by dots"));
        };
        let decode = |part: &str, what: &str| {
            B64URL.decode(part).map_err(|_| malformed(&format!("the {what} is not base64url")))
        };
        let header: Value =
            serde_json::from_slice(&decode(h, "header")?).map_err(|_| malformed("the header is not JSON"))?;
        let header = header.as_object().ok_or_else(|| malformed("the header is not a JSON object"))?;
        if header.contains_key("crit") {
            return Err(malformed("critical header extensions are not supported"));
        }
        let alg = header.get("alg").and_then(Value::as_str).ok_or_else(|| malformed("the header has no `alg`"))?;
        let alg = Algorithm::parse(alg)?;
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(k)) => Some(k.clone()),
            Some(_) => return Err(malformed("`kid` must be a string")),
        };
        let claims: Value =
            serde_json::from_slice(&decode(p, "payload")?).map_err(|_| malformed("the payload is not JSON"))?;
        let Value::Object(claims) = claims else { return Err(malformed("the payload is not a JSON object")) };
        let signature = decode(s, "signature")?;
        let signing_input = &token[..h.len() + 1 + p.len()];
        Ok(Jws { alg, kid, claims, signing_input, signature })
    }

    /// Verifies the signature with `key`, refusing a header algorithm that is not the key's.
    pub fn verify(&self, key: &PublicKey) -> Result<(), Rejection> {
        if key.algorithm() != self.alg {
            return Err(Rejection::bearer(
                RejectReason::AlgorithmMismatch,
                format!("the token says {} but its key is for {}", self.alg.as_str(), key.algorithm().as_str()),
            ));
        }
        if key.verify(self.signing_input.as_bytes(), &self.signature) {
            Ok(())
        } else {
            Err(Rejection::bearer(RejectReason::BadSignature, "the signature does not verify"))
        }
    }
}

/// What registered claims must say.
#[derive(Debug, Clone, Copy)]
pub struct ClaimRules<'a> {
    /// The required `iss`.
    pub issuer: &'a str,
    /// Accepted audiences; empty accepts any (or none).
    pub audiences: &'a [String],
    /// Allowed clock skew, in seconds.
    pub leeway_seconds: u64,
    /// The current time, Unix seconds.
    pub now: u64,
}

fn numeric(claims: &Map<String, Value>, name: &str) -> Result<Option<u64>, Rejection> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_f64().filter(|f| f.is_finite() && *f >= 0.0).map(|f| f as u64))
            .map(Some)
            .ok_or_else(|| Rejection::bearer(RejectReason::MissingClaim, format!("`{name}` must be a number"))),
    }
}

/// Checks `iss`, `aud`, `exp` (required), `nbf` and `sub` (required, non-empty string).
/// Returns `exp`.
pub fn check_claims(claims: &Map<String, Value>, rules: ClaimRules<'_>) -> Result<u64, Rejection> {
    if claims.get("iss").and_then(Value::as_str) != Some(rules.issuer) {
        return Err(Rejection::bearer(RejectReason::WrongIssuer, "the token's issuer is not accepted here"));
    }
    if !rules.audiences.is_empty() {
        let ok = match claims.get("aud") {
            Some(Value::String(a)) => rules.audiences.contains(a),
            Some(Value::Array(list)) => {
                list.iter().filter_map(Value::as_str).any(|a| rules.audiences.iter().any(|x| x == a))
            }
            _ => false,
        };
        if !ok {
            return Err(Rejection::bearer(RejectReason::WrongAudience, "the token is not meant for this service"));
        }
    }
    let exp = numeric(claims, "exp")?
        .ok_or_else(|| Rejection::bearer(RejectReason::MissingClaim, "the token has no `exp`"))?;
    if rules.now > exp.saturating_add(rules.leeway_seconds) {
        return Err(Rejection::bearer(RejectReason::Expired, format!("the token expired at {exp}")));
    }
    if let Some(nbf) = numeric(claims, "nbf")?
        && rules.now.saturating_add(rules.leeway_seconds) < nbf
    {
        return Err(Rejection::bearer(RejectReason::NotYetValid, format!("the token is not valid before {nbf}")));
    }
    match claims.get("sub") {
        Some(Value::String(s)) if !s.is_empty() => Ok(exp),
        _ => Err(Rejection::bearer(RejectReason::MissingClaim, "the token has no `sub`")),
    }
}

/// Signs `claims` as a compact JWS with EdDSA, `typ: JWT` and `kid`.
pub fn sign_eddsa(kid: &str, claims: &Value, key: &ed25519_dalek::SigningKey) -> String {
    let header = json!({"alg": "EdDSA", "typ": "JWT", "kid": kid});
    let mut token = format!("{}.{}", B64URL.encode(header.to_string()), B64URL.encode(claims.to_string()));
    let sig = key.sign(token.as_bytes());
    token.push('.');
    token.push_str(&B64URL.encode(sig.to_bytes()));
    token
}

/// A key id for an Ed25519 public key: base64url of the first 12 bytes of its SHA-256.
pub fn ed25519_key_id(public: &[u8; 32]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(public);
    B64URL.encode(&digest[..12])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&[9u8; 32])
    }

    #[test]
    fn eddsa_round_trip_and_tamper() {
        let k = key();
        let token = sign_eddsa("k1", &json!({"sub": "a"}), &k);
        let jws = Jws::parse(&token).unwrap();
        assert_eq!((jws.alg, jws.kid.as_deref()), (Algorithm::EdDsa, Some("k1")));
        let public = PublicKey::Ed25519(k.verifying_key().to_bytes());
        jws.verify(&public).unwrap();
        let forged = token
            .replace(&token[token.find('.').unwrap() + 1..token.rfind('.').unwrap()], &B64URL.encode(r#"{"sub":"b"}"#));
        assert_eq!(Jws::parse(&forged).unwrap().verify(&public).unwrap_err().reason, RejectReason::BadSignature);
    }

    #[test]
    fn none_and_crit_and_garbage_are_refused() {
        let none = format!("{}.{}.", B64URL.encode(r#"{"alg":"none"}"#), B64URL.encode(r#"{"sub":"a"}"#));
        assert_eq!(Jws::parse(&none).unwrap_err().reason, RejectReason::UnsupportedAlgorithm);
        let hs = format!("{}.{}.AA", B64URL.encode(r#"{"alg":"HS256"}"#), B64URL.encode("{}"));
        assert_eq!(Jws::parse(&hs).unwrap_err().reason, RejectReason::UnsupportedAlgorithm);
        let crit = format!("{}.{}.AA", B64URL.encode(r#"{"alg":"EdDSA","crit":["x"]}"#), B64URL.encode("{}"));
        assert_eq!(Jws::parse(&crit).unwrap_err().reason, RejectReason::Malformed);
        for bad in ["", "a.b", "a.b.c.d", "!!.!!.!!", &format!("{}.e30.AA", B64URL.encode("[1]"))] {
            assert_eq!(Jws::parse(bad).unwrap_err().reason, RejectReason::Malformed, "{bad}");
        }
    }

    #[test]
    fn jwk_round_trip_and_alg_must_fit() {
        let public = PublicKey::Ed25519(key().verifying_key().to_bytes());
        let jwk = public.to_jwk("k1");
        assert_eq!(PublicKey::from_jwk(&jwk).unwrap(), (Some("k1".into()), public));
        let mut wrong = jwk.clone();
        wrong["alg"] = json!("RS256");
        assert!(PublicKey::from_jwk(&wrong).is_err());
        assert!(PublicKey::from_jwk(&json!({"kty": "oct", "k": "AA"})).is_err());
    }

    #[test]
    fn claims_are_checked_with_leeway() {
        let aud = vec!["civitas".to_string()];
        let rules = ClaimRules { issuer: "https://idp", audiences: &aud, leeway_seconds: 30, now: 1_000 };
        let c = |v: Value| v.as_object().unwrap().clone();
        let good = json!({"iss": "https://idp", "aud": ["x", "civitas"], "exp": 1_010, "nbf": 990, "sub": "a"});
        assert_eq!(check_claims(&c(good.clone()), rules).unwrap(), 1_010);
        let reason = |v: Value| check_claims(&c(v), rules).unwrap_err().reason;
        let with = |k: &str, v: Value| {
            let mut g = good.clone();
            g[k] = v;
            g
        };
        assert_eq!(reason(with("exp", json!(969))), RejectReason::Expired);
        check_claims(&c(with("exp", json!(971))), rules).expect("inside the leeway");
        assert_eq!(reason(with("nbf", json!(1_031))), RejectReason::NotYetValid);
        assert_eq!(reason(with("aud", json!("other"))), RejectReason::WrongAudience);
        assert_eq!(reason(with("iss", json!("https://evil"))), RejectReason::WrongIssuer);
        assert_eq!(reason(with("sub", json!(""))), RejectReason::MissingClaim);
        assert_eq!(reason(with("exp", json!("soon"))), RejectReason::MissingClaim);
        let mut no_exp = good.clone();
        no_exp.as_object_mut().unwrap().remove("exp");
        assert_eq!(reason(no_exp), RejectReason::MissingClaim);
    }
}
