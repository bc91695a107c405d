//! LDAP: `Basic` credentials checked by a simple bind as the user, then the user's groups
//! looked up (as that user) under the configured group base.
//!
//! An empty password is refused before any bind: LDAP treats a simple bind with a DN and
//! no password as an anonymous ("unauthenticated") bind that succeeds. The user name is
//! escaped into the DN (RFC 4514) and the filter (RFC 4515), so it cannot change either.

use std::collections::BTreeSet;
use std::time::Duration;

use async_trait::async_trait;
use ldap3::{LdapConnAsync, LdapConnSettings, LdapError, Scope, SearchEntry};

use crate::authn::{AuthStrategy, Credentials, Outcome, RejectReason, Rejection, Scheme};
use crate::config::LdapConfig;
use crate::error::SecurityError;
use crate::principal::{Principal, Source};

/// `invalidCredentials` (RFC 4511).
const INVALID_CREDENTIALS: u32 = 49;
const MAX_GROUPS: usize = 1_000;

/// The LDAP strategy.
#[derive(Debug, Clone)]
pub struct LdapStrategy {
    config: LdapConfig,
}

impl LdapStrategy {
    /// A strategy for one directory.
    pub fn new(config: LdapConfig) -> Result<LdapStrategy, SecurityError> {
        let bad = |field: &str, message: &str| SecurityError::Config {
            field: format!("security.ldap.{field}"),
            message: message.into(),
        };
        if !(config.url.starts_with("ldap://") || config.url.starts_with("ldapi://")) {
            return Err(bad("url", "must be an ldap:// URL (ldaps is not built in)"));
        }
        if !config.user_dn_template.contains("{user}") {
            return Err(bad("user_dn_template", "must contain `{user}`"));
        }
        if config.group_base.trim().is_empty() {
            return Err(bad("group_base", "must not be empty"));
        }
        Ok(LdapStrategy { config })
    }

    /// Binds as `user` and returns the principal with its groups (each group's `cn` and
    /// DN).
    pub async fn login(&self, user: &str, password: &str) -> Result<Principal, Rejection> {
        let refuse = || Rejection::basic(RejectReason::BadCredentials, "wrong user name or password");
        if user.is_empty() || password.is_empty() || user.len() > 256 {
            return Err(refuse());
        }
        let timeout = Duration::from_millis(self.config.timeout_ms);
        match tokio::time::timeout(timeout, self.bind_and_search(user, password, timeout)).await {
            Ok(result) => result,
            Err(_) => Err(Rejection::basic(RejectReason::Unavailable, "the directory did not answer in time")),
        }
    }

    async fn bind_and_search(&self, user: &str, password: &str, timeout: Duration) -> Result<Principal, Rejection> {
        let unavailable = |e: LdapError| {
            tracing::warn!(url = %self.config.url, error = %e, "LDAP directory unavailable");
            Rejection::basic(RejectReason::Unavailable, "the directory cannot be reached")
        };
        let settings = LdapConnSettings::new().set_conn_timeout(timeout);
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &self.config.url).await.map_err(unavailable)?;
        ldap3::drive!(conn);
        let dn = self.config.user_dn_template.replace("{user}", &ldap3::dn_escape(user));
        match ldap.simple_bind(&dn, password).await.and_then(|r| r.success()) {
            Ok(_) => {}
            Err(LdapError::LdapResult { result }) if result.rc == INVALID_CREDENTIALS => {
                let _ = ldap.unbind().await;
                return Err(Rejection::basic(RejectReason::BadCredentials, "wrong user name or password"));
            }
            Err(e) => return Err(unavailable(e)),
        }
        // The user's own entry, for the organisation and jurisdiction attributes.
        let mut wanted = vec![self.config.organisation_attribute.as_str()];
        wanted.extend(self.config.jurisdiction_attribute.as_deref());
        let (own, _) = ldap
            .search(&dn, Scope::Base, "(objectClass=*)", wanted)
            .await
            .and_then(|r| r.success())
            .map_err(unavailable)?;
        let own = own.into_iter().next().map(SearchEntry::construct);
        // Attribute names are case-insensitive in LDAP.
        let attribute = |name: Option<&str>| -> Option<String> {
            let (name, entry) = (name?, own.as_ref()?);
            let (_, values) = entry.attrs.iter().find(|(k, _)| k.eq_ignore_ascii_case(name))?;
            values.first().cloned()
        };
        let organisation = attribute(Some(&self.config.organisation_attribute));
        let jurisdiction = attribute(self.config.jurisdiction_attribute.as_deref());
        let filter = self
            .config
            .group_filter
            .replace("{dn}", &ldap3::ldap_escape(&dn))
            .replace("{user}", &ldap3::ldap_escape(user));
        let (entries, _) = ldap
            .search(&self.config.group_base, Scope::Subtree, &filter, vec!["cn"])
            .await
            .and_then(|r| r.success())
            .map_err(unavailable)?;
        let _ = ldap.unbind().await;
        let mut groups = BTreeSet::new();
        for entry in entries.into_iter().take(MAX_GROUPS) {
            let entry = SearchEntry::construct(entry);
            groups.extend(entry.attrs.get("cn").into_iter().flatten().cloned());
            groups.insert(entry.dn);
        }
        let mut p = Principal::new(user, Source::Ldap { url: self.config.url.clone(), dn });
        p.groups = groups;
        p.organisation = organisation;
        p.jurisdiction = jurisdiction;
        Ok(p)
    }
}

#[async_trait]
impl AuthStrategy for LdapStrategy {
    fn name(&self) -> &str {
        "ldap"
    }

    fn scheme(&self) -> Scheme {
        Scheme::Basic
    }

    async fn authenticate(&self, credentials: &Credentials<'_>) -> Outcome {
        let Credentials::Basic { user, password } = credentials else { return Outcome::NotMine };
        match self.login(user, password).await {
            Ok(p) => Outcome::Authenticated(Box::new(p)),
            Err(r) => Outcome::Rejected(r),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str, template: &str) -> LdapConfig {
        LdapConfig {
            url: url.into(),
            user_dn_template: template.into(),
            group_base: "ou=groups,dc=civitas,dc=test".into(),
            group_filter: "(member={dn})".into(),
            timeout_ms: 500,
            organisation_attribute: "o".into(),
            jurisdiction_attribute: None,
        }
    }

    #[tokio::test]
    async fn empty_passwords_never_reach_the_directory() {
        // Port 1 on loopback: nothing listens, so reaching the network would say Unavailable.
        let s = LdapStrategy::new(config("ldap://127.0.0.1:1", "uid={user},dc=x")).unwrap();
        assert_eq!(s.login("alice", "").await.unwrap_err().reason, RejectReason::BadCredentials);
        assert_eq!(s.login("", "pw").await.unwrap_err().reason, RejectReason::BadCredentials);
        assert_eq!(s.login("alice", "pw").await.unwrap_err().reason, RejectReason::Unavailable);
    }

    #[test]
    fn configuration_is_checked() {
        assert!(LdapStrategy::new(config("http://x", "uid={user}")).is_err());
        assert!(LdapStrategy::new(config("ldap://x", "uid=alice")).is_err());
    }
}
