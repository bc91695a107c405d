//! The Security Manager: who may see, read and move what.
//!
//! What it is: the library that turns an HTTP `Authorization` header into a [`Principal`]
//! (through pluggable [`AuthStrategy`]s: the node's own EdDSA-signed [local
//! tokens](strategies::local_token), bearer JWTs of configured OAuth2/OIDC
//! [issuers](strategies::oidc) checked against their JWKS, and [LDAP](strategies::ldap)
//! simple binds with group look-up), compiles the paper's `securityConstraints` into
//! [`Policy`]s, and lets a [`PolicyEngine`] decide unit visibility, view reads and
//! migration targets — each [`Decision`] naming the rule that decided it, cached briefly,
//! audited to an append-only rotated NDJSON log ([`audit`]) and counted in Prometheus
//! metrics. [`tls`] loads a certificate and key into a rustls server configuration.
//! [`Security::from_config`] builds all of it from the node's `[security]` section
//! ([`SecurityConfig`]) and its `NodeKey`.
//!
//! What it is not: it does no HTTP routing and answers no request. The node maps a
//! [`Rejection`] to `401` with the header from [`Authenticator::challenge`], a denied
//! decision to `403` (or `404` where existence must not leak), and calls the engine from
//! its catalog API, data plane and migration manager.
//!
//! Invariants:
//! - fail closed: a malformed or unknown constraint grants nothing, an unknown `kid`, an
//!   unsupported or missing algorithm (`alg: none`), a missing `exp` or a token whose record
//!   is gone is rejected; anonymous callers match no rule but `public`;
//! - a view or unit that declares access constraints denies everyone they do not admit;
//!   one that declares none is governed by [`config::Unconstrained`] (authenticated callers
//!   by default) and is public only when it says `{"type": "public"}`;
//! - a decision is evaluated without I/O: everything a rule needs is in the principal,
//!   gathered when it authenticated;
//! - cached decisions are keyed by the principal's full fingerprint and the document's
//!   version, so a changed constraint takes effect on the next request;
//! - no secret (token, password, key) is ever logged or written to the audit log.
#![forbid(unsafe_code)]

pub mod audit;
mod authn;
mod cache;
pub mod config;
mod error;
pub mod jws;
mod metrics;
mod policy;
mod principal;
pub mod strategies;
pub mod tls;

pub use audit::{AuditLog, AuditRecord};
pub use authn::{
    AuthStrategy, Authenticator, Credentials, Outcome, RejectReason, Rejection, Scheme, parse_authorization,
    www_authenticate,
};
pub use config::SecurityConfig;
pub use error::SecurityError;
pub use metrics::SecurityMetrics;
pub use policy::{
    AccessRule, CallerAccess, Decision, DecisionKind, MigrationRule, Policy, PolicyEngine, SiteTarget, ViewSecurity,
    governing_unit, migration_decision, validate_constraints,
};
pub use principal::{Principal, Source};

mod security;
pub use security::Security;
