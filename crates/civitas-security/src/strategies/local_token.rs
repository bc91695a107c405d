//! Local tokens: JWTs signed with EdDSA by a key derived from the node key, for the
//! embedded default (`civitas token create --subject alice --roles planner --ttl 30d`).
//!
//! Every issued token has a record in a registry file (`<data-dir>/security/tokens.json`),
//! written crash-safely (temporary file, fsync, rename, fsync of the directory). A token is
//! valid only while its record exists and is not revoked, so losing the file revokes
//! everything (fail closed) rather than forgetting revocations. Records are pruned a day
//! after their token expires.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::authn::{AuthStrategy, Credentials, Outcome, RejectReason, Rejection, Scheme, unix_now};
use crate::config::LocalTokensConfig;
use crate::error::SecurityError;
use crate::jws::{self, ClaimRules, Jws, PublicKey};
use crate::principal::{Principal, Source};

/// The purpose string of the key derived from the node key for local tokens.
pub const KEY_PURPOSE: &str = "civitas local token key v1";
const FILE_NAME: &str = "tokens.json";
const AUDIENCE: &str = "civitas";
const PRUNE_AFTER_SECONDS: u64 = 86_400;

/// What a new token is for.
#[derive(Debug, Clone, Default)]
pub struct TokenRequest {
    /// Its subject. Required.
    pub subject: String,
    /// Its roles.
    pub roles: Vec<String>,
    /// Its groups.
    pub groups: Vec<String>,
    /// Its lifetime in seconds; `None` is the configured default.
    pub ttl_seconds: Option<u64>,
}

/// Parses a token lifetime as the CLI takes it: `90s`, `15m`, `12h`, `30d`, `2w`, or a
/// plain number of seconds.
pub fn parse_ttl(text: &str) -> Result<u64, SecurityError> {
    let text = text.trim();
    let bad = || SecurityError::InvalidRequest(format!("`{text}` is not a lifetime (e.g. 90s, 15m, 12h, 30d, 2w)"));
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: u64 = number.parse().map_err(|_| bad())?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(scale).filter(|s| *s > 0).ok_or_else(bad)
}

/// What the registry keeps of an issued token (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenRecord {
    /// The token's `jti`.
    pub id: String,
    /// Its subject.
    pub subject: String,
    /// Its roles.
    pub roles: BTreeSet<String>,
    /// Its groups.
    pub groups: BTreeSet<String>,
    /// When it was issued (Unix seconds).
    pub issued_at: u64,
    /// When it expires (Unix seconds).
    pub expires_at: u64,
    /// When it was revoked, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<u64>,
}

/// A newly created token: the bearer string (shown once) and its record.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// `Authorization: Bearer <token>`.
    pub token: String,
    /// What the registry keeps.
    pub record: TokenRecord,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct RegistryFile {
    version: u32,
    tokens: Vec<TokenRecord>,
}

/// The local token issuer and verifier.
pub struct LocalTokens {
    issuer: String,
    key: ed25519_dalek::SigningKey,
    public: PublicKey,
    key_id: String,
    path: PathBuf,
    default_ttl_seconds: u64,
    max_ttl_seconds: u64,
    records: ArcSwap<Vec<TokenRecord>>,
    // Serialises read-modify-write of the registry file.
    write: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for LocalTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalTokens").field("issuer", &self.issuer).field("key_id", &self.key_id).finish()
    }
}

impl LocalTokens {
    /// Opens the registry in `dir` (created if missing) with a key derived from `node_key`.
    pub fn open(
        dir: &Path,
        node_key: &civitas_ledger::NodeKey,
        config: &LocalTokensConfig,
    ) -> Result<LocalTokens, SecurityError> {
        let io = |op: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| SecurityError::Io { op, path, source }
        };
        std::fs::create_dir_all(dir).map_err(io("create", dir))?;
        let path = dir.join(FILE_NAME);
        let records = match std::fs::read(&path) {
            Ok(bytes) => {
                let file: RegistryFile = serde_json::from_slice(&bytes)
                    .map_err(|e| SecurityError::Corrupt { path: path.clone(), message: e.to_string() })?;
                if file.version != 1 {
                    return Err(SecurityError::Corrupt { path, message: format!("unknown version {}", file.version) });
                }
                file.tokens
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io("read", &path)(e)),
        };
        let key = node_key.derive_signing_key(KEY_PURPOSE);
        let public_bytes = key.verifying_key().to_bytes();
        Ok(LocalTokens {
            issuer: config.issuer.clone(),
            key_id: jws::ed25519_key_id(&public_bytes),
            public: PublicKey::Ed25519(public_bytes),
            key,
            path,
            default_ttl_seconds: config.default_ttl_seconds,
            max_ttl_seconds: config.max_ttl_seconds,
            records: ArcSwap::from_pointee(records),
            write: tokio::sync::Mutex::new(()),
        })
    }

    /// The `kid` of local tokens.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The public key as a JWKS document, so other services can verify local tokens.
    pub fn jwks(&self) -> Value {
        json!({"keys": [self.public.to_jwk(&self.key_id)]})
    }

    /// Creates, registers (durably) and returns a token.
    pub async fn create(&self, request: TokenRequest) -> Result<IssuedToken, SecurityError> {
        let subject = request.subject.trim();
        if subject.is_empty() {
            return Err(SecurityError::InvalidRequest("a token needs a subject".into()));
        }
        let ttl = request.ttl_seconds.unwrap_or(self.default_ttl_seconds);
        if ttl == 0 || ttl > self.max_ttl_seconds {
            return Err(SecurityError::InvalidRequest(format!(
                "a token lives between 1 s and {} s (security.local_tokens.max_ttl_seconds), not {ttl} s",
                self.max_ttl_seconds
            )));
        }
        let clean = |list: Vec<String>| -> BTreeSet<String> {
            list.into_iter().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect()
        };
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).map_err(|e| SecurityError::InvalidRequest(format!("no randomness: {e}")))?;
        let now = unix_now();
        let record = TokenRecord {
            id: B64URL.encode(id),
            subject: subject.to_owned(),
            roles: clean(request.roles),
            groups: clean(request.groups),
            issued_at: now,
            expires_at: now + ttl,
            revoked_at: None,
        };
        let claims = json!({
            "iss": self.issuer, "aud": AUDIENCE, "sub": record.subject, "jti": record.id,
            "iat": record.issued_at, "nbf": record.issued_at, "exp": record.expires_at,
            "roles": record.roles, "groups": record.groups,
        });
        let token = jws::sign_eddsa(&self.key_id, &claims, &self.key);
        let added = record.clone();
        self.update(move |records| {
            records.push(added);
            true
        })
        .await?;
        Ok(IssuedToken { token, record })
    }

    /// Revokes the token with this id (or the token itself, given whole). Returns whether
    /// a registered, not yet revoked token was revoked.
    pub async fn revoke(&self, id_or_token: &str) -> Result<bool, SecurityError> {
        let id = match Jws::parse(id_or_token) {
            Ok(jws) => jws.claims.get("jti").and_then(Value::as_str).unwrap_or_default().to_owned(),
            Err(_) => id_or_token.trim().to_owned(),
        };
        let now = unix_now();
        self.update(move |records| {
            let mut changed = false;
            for r in records.iter_mut().filter(|r| r.id == id && r.revoked_at.is_none()) {
                r.revoked_at = Some(now);
                changed = true;
            }
            changed
        })
        .await
    }

    /// The registered tokens, oldest first.
    pub fn list(&self) -> Vec<TokenRecord> {
        self.records.load().as_ref().clone()
    }

    /// Verifies a local token at `now` (Unix seconds).
    pub fn verify(&self, token: &str, now: u64) -> Result<Principal, Rejection> {
        let jws = Jws::parse(token)?;
        if jws.kid.as_deref() != Some(self.key_id.as_str()) {
            return Err(Rejection::bearer(RejectReason::UnknownKey, "the token's key is not this node's"));
        }
        jws.verify(&self.public)?;
        let audience = [AUDIENCE.to_owned()];
        let rules = ClaimRules { issuer: &self.issuer, audiences: &audience, leeway_seconds: 0, now };
        let exp = jws::check_claims(&jws.claims, rules)?;
        let id = jws.claims.get("jti").and_then(Value::as_str).unwrap_or_default();
        let records = self.records.load();
        let Some(record) = records.iter().find(|r| r.id == id) else {
            return Err(Rejection::bearer(RejectReason::Revoked, "the token is not registered on this node"));
        };
        if record.revoked_at.is_some() {
            return Err(Rejection::bearer(RejectReason::Revoked, "the token was revoked"));
        }
        let mut p = Principal::new(record.subject.clone(), Source::LocalToken { issuer: self.issuer.clone() });
        p.roles = record.roles.clone();
        p.groups = record.groups.clone();
        p.expires_at = Some(exp);
        Ok(p)
    }

    /// Applies `change` to the records and, if it changed something, writes the registry
    /// durably before publishing the new records.
    async fn update(&self, change: impl FnOnce(&mut Vec<TokenRecord>) -> bool) -> Result<bool, SecurityError> {
        let _guard = self.write.lock().await;
        let mut records = self.records.load().as_ref().clone();
        if !change(&mut records) {
            return Ok(false);
        }
        let now = unix_now();
        records.retain(|r| r.expires_at + PRUNE_AFTER_SECONDS > now);
        let bytes = serde_json::to_vec_pretty(&RegistryFile { version: 1, tokens: records.clone() })
            .map_err(|e| SecurityError::InvalidRequest(e.to_string()))?;
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || write_atomically(&path, &bytes))
            .await
            .map_err(|e| SecurityError::InvalidRequest(format!("the registry writer failed: {e}")))??;
        self.records.store(Arc::new(records));
        Ok(true)
    }
}

/// Writes `bytes` to `path` so that a crash leaves the old or the new file, never a mix:
/// a temporary file, fsync, rename over `path`, fsync of the directory.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), SecurityError> {
    let io = |op: &'static str| move |source| SecurityError::Io { op, path: path.to_path_buf(), source };
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io("create a temporary file for"))?;
        f.write_all(bytes).map_err(io("write"))?;
        f.sync_all().map_err(io("fsync"))?;
    }
    std::fs::rename(&tmp, path).map_err(io("rename into"))?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io("fsync the directory of"))
}

#[async_trait]
impl AuthStrategy for LocalTokens {
    fn name(&self) -> &str {
        "local"
    }

    fn scheme(&self) -> Scheme {
        Scheme::Bearer
    }

    async fn authenticate(&self, credentials: &Credentials<'_>) -> Outcome {
        let Credentials::Bearer(token) = credentials else { return Outcome::NotMine };
        // A token of another issuer is not ours; anything claiming to be ours, or that
        // nobody can parse, is judged here so the caller gets the precise reason.
        match Jws::parse(token) {
            Ok(jws) if jws.claims.get("iss").and_then(Value::as_str) != Some(self.issuer.as_str()) => Outcome::NotMine,
            Ok(_) => match self.verify(token, unix_now()) {
                Ok(p) => Outcome::Authenticated(Box::new(p)),
                Err(r) => Outcome::Rejected(r),
            },
            Err(r) => Outcome::Rejected(r),
        }
    }
}
