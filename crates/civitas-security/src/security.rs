//! Everything the node needs, built from its `[security]` section.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::audit::{AuditLog, AuditWriter};
use crate::authn::{AuthStrategy, Authenticator};
use crate::config::SecurityConfig;
use crate::error::SecurityError;
use crate::metrics::SecurityMetrics;
use crate::policy::PolicyEngine;
use crate::strategies::{LdapStrategy, LocalTokens, OidcIssuer};

/// The Security Manager of a node: authenticator, policy engine, local tokens, metrics
/// and the audit writer.
#[derive(Debug)]
pub struct Security {
    /// Turns `Authorization` headers into principals.
    pub authenticator: Arc<Authenticator>,
    /// Decides unit visibility, view reads and migration targets.
    pub policies: Arc<PolicyEngine>,
    /// The node's own tokens, when enabled (`civitas token create|list|revoke`).
    pub local_tokens: Option<Arc<LocalTokens>>,
    /// The counters; register them with [`SecurityMetrics::register`].
    pub metrics: SecurityMetrics,
    /// The audit writer thread; [`AuditWriter::finish`] it at shutdown, after dropping
    /// the policy engine.
    pub audit_writer: Option<AuditWriter>,
}

impl Security {
    /// Builds the Security Manager. Local tokens live in `<data_dir>/security/`, the
    /// audit log defaults to `<data_dir>/audit/security.ndjson`; the local token key is
    /// derived from `node_key`. No network I/O happens here (JWKS are fetched on first use).
    pub fn from_config(
        config: &SecurityConfig,
        data_dir: &Path,
        node_key: &civitas_ledger::NodeKey,
    ) -> Result<Security, SecurityError> {
        let metrics = SecurityMetrics::default();
        let cache_ttl = Duration::from_millis(config.cache_ttl_ms);
        let mut strategies: Vec<Arc<dyn AuthStrategy>> = Vec::new();
        let local_tokens = if config.local_tokens.enabled {
            let tokens = Arc::new(LocalTokens::open(&data_dir.join("security"), node_key, &config.local_tokens)?);
            strategies.push(Arc::clone(&tokens) as Arc<dyn AuthStrategy>);
            Some(tokens)
        } else {
            None
        };
        for issuer in &config.issuers {
            strategies.push(Arc::new(OidcIssuer::new(issuer.clone())?));
        }
        if let Some(ldap) = &config.ldap {
            strategies.push(Arc::new(LdapStrategy::new(ldap.clone())?));
        }
        let authenticator = Arc::new(Authenticator::new(strategies, config.realm.clone(), cache_ttl, metrics.clone()));
        let audit_path = config.audit.path.clone().unwrap_or_else(|| data_dir.join("audit").join("security.ndjson"));
        let (audit, writer) = AuditLog::start(&audit_path, &config.audit, metrics.clone())?;
        let policies = Arc::new(
            PolicyEngine::new(config.unconstrained, cache_ttl, config.cache_capacity, Some(audit), metrics.clone())
                .with_admin_roles(config.admin_roles.clone()),
        );
        Ok(Security { authenticator, policies, local_tokens, metrics, audit_writer: Some(writer) })
    }

    /// Revokes a local token (by id or whole token) and forgets cached authentications so
    /// the revocation holds from the next request. Returns whether a live token was revoked.
    pub async fn revoke_token(&self, id_or_token: &str) -> Result<bool, SecurityError> {
        let tokens = self
            .local_tokens
            .as_ref()
            .ok_or_else(|| SecurityError::InvalidRequest("local tokens are disabled (security.local_tokens)".into()))?;
        let revoked = tokens.revoke(id_or_token).await?;
        self.authenticator.clear_cache();
        Ok(revoked)
    }
}
