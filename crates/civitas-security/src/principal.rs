//! Who a caller is: the result of authentication, the input of every policy decision.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// How a principal was authenticated; policies that name a directory or an issuer match
/// against it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Source {
    /// No credentials were presented.
    Anonymous,
    /// The node itself, acting on its own (the migration manager's automatic plans).
    Node,
    /// A token signed by this node's key.
    LocalToken {
        /// The `iss` of local tokens.
        issuer: String,
    },
    /// A bearer JWT of a configured OAuth2/OIDC issuer.
    Oidc {
        /// The issuer's `iss`.
        issuer: String,
    },
    /// A successful LDAP simple bind.
    Ldap {
        /// The directory's URL, as configured.
        url: String,
        /// The user's distinguished name.
        dn: String,
    },
}

/// An authenticated (or anonymous) caller.
///
/// `groups` holds group names (an LDAP group's `cn`) and, for LDAP principals, also the
/// groups' full DNs, so a constraint may name either.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Principal {
    /// The subject: a user name, a `sub` claim, an LDAP `uid`. Empty for anonymous.
    pub subject: String,
    /// How it was authenticated.
    pub source: Source,
    /// Roles (RBAC).
    pub roles: BTreeSet<String>,
    /// Groups (names and, for LDAP, DNs).
    pub groups: BTreeSet<String>,
    /// OAuth2 scopes granted to the token.
    pub scopes: BTreeSet<String>,
    /// The organisation the subject acts for, when known.
    pub organisation: Option<String>,
    /// The jurisdiction the subject acts under, when known.
    pub jurisdiction: Option<String>,
    /// Other verified claims or attributes (the private claims of a JWT), matched by
    /// `oauth` constraints' `claims`.
    pub claims: Map<String, Value>,
    /// When the credentials stop being valid (Unix seconds), if they expire.
    pub expires_at: Option<u64>,
}

impl Principal {
    /// A principal with a subject and a source and nothing else.
    pub fn new(subject: impl Into<String>, source: Source) -> Principal {
        Principal {
            subject: subject.into(),
            source,
            roles: BTreeSet::new(),
            groups: BTreeSet::new(),
            scopes: BTreeSet::new(),
            organisation: None,
            jurisdiction: None,
            claims: Map::new(),
            expires_at: None,
        }
    }

    /// The node acting on its own behalf, named `name` in the audit log.
    pub fn node(name: impl Into<String>) -> Principal {
        Principal::new(name, Source::Node)
    }

    /// The caller who presented no credentials.
    pub fn anonymous() -> Principal {
        Principal::new("", Source::Anonymous)
    }

    /// Whether this is the anonymous caller.
    pub fn is_anonymous(&self) -> bool {
        self.source == Source::Anonymous
    }

    /// The issuer of the principal's token, for bearer principals.
    pub fn issuer(&self) -> Option<&str> {
        match &self.source {
            Source::LocalToken { issuer } | Source::Oidc { issuer } => Some(issuer),
            _ => None,
        }
    }

    /// A short name of the source for logs, metrics and the audit log.
    pub fn source_name(&self) -> &'static str {
        match self.source {
            Source::Anonymous => "anonymous",
            Source::Node => "node",
            Source::LocalToken { .. } => "local",
            Source::Oidc { .. } => "oidc",
            Source::Ldap { .. } => "ldap",
        }
    }

    /// A digest of everything a policy may look at. Two principals with the same
    /// fingerprint get the same decisions, which is what makes caching decisions sound.
    pub fn fingerprint(&self) -> [u8; 32] {
        // serde_json of a struct with BTreeSets and an insertion-ordered map is a
        // deterministic, unambiguous encoding of the fields; it is streamed into the hash
        // without an intermediate buffer.
        struct HashWriter(Sha256);
        impl std::io::Write for HashWriter {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.update(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut w = HashWriter(Sha256::new());
        // Serialising these types cannot fail (string keys, no custom serializers).
        let _ = serde_json::to_writer(&mut w, self);
        w.0.finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_changes_with_any_field() {
        let a = Principal::new("alice", Source::LocalToken { issuer: "n".into() });
        let mut b = a.clone();
        assert_eq!(a.fingerprint(), b.fingerprint());
        b.roles.insert("planner".into());
        assert_ne!(a.fingerprint(), b.fingerprint());
        let mut c = a.clone();
        c.source = Source::Oidc { issuer: "n".into() };
        assert_ne!(a.fingerprint(), c.fingerprint());
    }

    #[test]
    fn anonymous_has_no_issuer() {
        assert!(Principal::anonymous().is_anonymous());
        assert_eq!(Principal::anonymous().issuer(), None);
        assert_eq!(Principal::anonymous().source_name(), "anonymous");
    }
}
