//! The `[security]` section of `civitas.toml`. Every key has a default; unknown keys are
//! errors. Durations are whole seconds (or milliseconds where the name says so).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What a view or unit that declares no access constraint allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unconstrained {
    /// Any authenticated caller; anonymous callers are refused (the default: a view is
    /// public only when it says `{"type": "public"}`).
    #[default]
    Authenticated,
    /// Nobody.
    Deny,
    /// Everybody, anonymous included (development set-ups only).
    Public,
}

/// The Security Manager's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecurityConfig {
    /// Enforce authentication and policies. Default `false`: the node behaves as before.
    pub enabled: bool,
    /// The realm named in `WWW-Authenticate`. Default `"civitas"`.
    pub realm: String,
    /// What a unit or view without access constraints allows. Default `authenticated`.
    pub unconstrained: Unconstrained,
    /// How long an authentication or a policy decision is reused, in milliseconds.
    /// Default 2000; 0 disables both caches. A revocation or a changed constraint takes
    /// effect within this time (constraints at once: cache keys carry the version).
    pub cache_ttl_ms: u64,
    /// How many decisions the cache holds at most. Default 65536.
    pub cache_capacity: usize,
    /// Roles that may administer the node (create, list, revoke tokens). Default `["admin"]`.
    pub admin_roles: Vec<String>,
    /// Tokens signed by this node's key.
    pub local_tokens: LocalTokensConfig,
    /// OAuth2/OIDC issuers whose bearer JWTs are accepted. Default none.
    pub issuers: Vec<IssuerConfig>,
    /// An LDAP directory for `Basic` credentials. Default none.
    pub ldap: Option<LdapConfig>,
    /// The audit log.
    pub audit: AuditConfig,
    /// Serve HTTPS with this certificate and key. Default none (plain HTTP).
    pub tls: Option<TlsConfig>,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            enabled: false,
            realm: "civitas".into(),
            unconstrained: Unconstrained::default(),
            cache_ttl_ms: 2_000,
            cache_capacity: 65_536,
            admin_roles: vec!["admin".into()],
            local_tokens: LocalTokensConfig::default(),
            issuers: Vec::new(),
            ldap: None,
            audit: AuditConfig::default(),
            tls: None,
        }
    }
}

/// Local tokens: `civitas token create|list|revoke`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalTokensConfig {
    /// Accept and issue local tokens. Default `true`.
    pub enabled: bool,
    /// The `iss` of local tokens. Default `"civitas-local"`; give each node its own
    /// (e.g. `"civitas:vienna"`) when several nodes share callers.
    pub issuer: String,
    /// Lifetime of a token created without `--ttl`, in seconds. Default 30 days.
    pub default_ttl_seconds: u64,
    /// The longest lifetime allowed, in seconds. Default 366 days.
    pub max_ttl_seconds: u64,
}

impl Default for LocalTokensConfig {
    fn default() -> Self {
        LocalTokensConfig {
            enabled: true,
            issuer: "civitas-local".into(),
            default_ttl_seconds: 30 * 86_400,
            max_ttl_seconds: 366 * 86_400,
        }
    }
}

/// One OAuth2/OIDC issuer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// The exact `iss` of its tokens. Required.
    pub issuer: String,
    /// Accepted `aud` values; a token must name one. Required, non-empty.
    pub audience: Vec<String>,
    /// Where its JWKS is served. Required.
    pub jwks_url: String,
    /// Allowed clock skew for `exp` and `nbf`, in seconds. Default 30.
    #[serde(default = "default_leeway")]
    pub leeway_seconds: u64,
    /// The least time between two JWKS fetches caused by an unknown `kid`, in seconds.
    /// Default 30.
    #[serde(default = "default_refresh")]
    pub jwks_min_refresh_seconds: u64,
    /// Claim holding roles, a dotted path (`realm_access.roles`). Default `roles`.
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    /// Claim holding groups, a dotted path. Default `groups`.
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// Timeout of a JWKS fetch, in milliseconds. Default 5000.
    #[serde(default = "default_fetch_timeout")]
    pub fetch_timeout_ms: u64,
    /// A PEM file of extra CA certificates trusted for an `https` JWKS URL (a private
    /// identity provider); the system's roots are always trusted. Default none.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

fn default_leeway() -> u64 {
    30
}
fn default_refresh() -> u64 {
    30
}
fn default_roles_claim() -> String {
    "roles".into()
}
fn default_groups_claim() -> String {
    "groups".into()
}
fn default_fetch_timeout() -> u64 {
    5_000
}

/// An LDAP directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapConfig {
    /// The directory, `ldap://host:port`. Required. `ldap` constraints naming this URL
    /// match principals authenticated here.
    pub url: String,
    /// The DN a user binds as; `{user}` is replaced by the (escaped) user name.
    /// Required, e.g. `uid={user},ou=people,dc=civitas,dc=test`.
    pub user_dn_template: String,
    /// Where groups are searched. Required, e.g. `ou=groups,dc=civitas,dc=test`.
    pub group_base: String,
    /// The group filter; `{dn}` is the user's DN and `{user}` the user name (escaped).
    /// Default `(|(member={dn})(uniqueMember={dn})(memberUid={user}))`.
    #[serde(default = "default_group_filter")]
    pub group_filter: String,
    /// Connect and operation timeout, in milliseconds. Default 5000.
    #[serde(default = "default_fetch_timeout")]
    pub timeout_ms: u64,
    /// The user entry's attribute that names the principal's organisation. Default `o`.
    #[serde(default = "default_organisation_attribute")]
    pub organisation_attribute: String,
    /// The user entry's attribute that names the principal's jurisdiction. Default none.
    #[serde(default)]
    pub jurisdiction_attribute: Option<String>,
}

fn default_organisation_attribute() -> String {
    "o".into()
}

fn default_group_filter() -> String {
    "(|(member={dn})(uniqueMember={dn})(memberUid={user}))".into()
}

/// The audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// The log file. Default none: `<data-dir>/audit/security.ndjson`.
    pub path: Option<PathBuf>,
    /// Rotate when the file would grow past this many bytes. Default 64 MiB.
    pub max_file_bytes: u64,
    /// Rotated files kept (`.1` newest … `.N` oldest). Default 8.
    pub keep_files: u32,
    /// Records waiting for the writer at most; more are dropped and counted
    /// (`civitas_security_audit_dropped_total`) so a request never waits. Default 16384.
    pub queue_capacity: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig { path: None, max_file_bytes: 64 << 20, keep_files: 8, queue_capacity: 16_384 }
    }
}

/// A certificate chain and its key, both PEM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_a_full_section_parse() {
        let empty: SecurityConfig = toml::from_str("").unwrap();
        assert_eq!(empty, SecurityConfig::default());
        let full: SecurityConfig = toml::from_str(
            r#"
            enabled = true
            unconstrained = "deny"
            cache_ttl_ms = 500
            [local_tokens]
            issuer = "civitas:vienna"
            [[issuers]]
            issuer = "https://idp.example"
            audience = ["civitas"]
            jwks_url = "https://idp.example/jwks"
            [ldap]
            url = "ldap://127.0.0.1:3890"
            user_dn_template = "uid={user},ou=people,dc=civitas,dc=test"
            group_base = "ou=groups,dc=civitas,dc=test"
            [audit]
            keep_files = 2
            [tls]
            cert = "/etc/civitas/cert.pem"
            key = "/etc/civitas/key.pem"
            "#,
        )
        .unwrap();
        assert_eq!(full.unconstrained, Unconstrained::Deny);
        assert_eq!(full.issuers[0].leeway_seconds, 30);
        assert_eq!(full.audit.max_file_bytes, 64 << 20);
        assert!(full.local_tokens.enabled);
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(toml::from_str::<SecurityConfig>("enable = true").is_err());
        assert!(toml::from_str::<SecurityConfig>("[audit]\nsize = 1").is_err());
    }
}
