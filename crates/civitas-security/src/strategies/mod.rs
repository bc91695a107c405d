//! Authentication strategies, one file each: the node's own tokens, OAuth2/OIDC issuers,
//! an LDAP directory. Each implements [`crate::AuthStrategy`].

pub mod ldap;
pub mod local_token;
pub mod oidc;

pub use ldap::LdapStrategy;
pub use local_token::{IssuedToken, LocalTokens, TokenRecord, TokenRequest, parse_ttl};
pub use oidc::{Jwks, OidcIssuer};
