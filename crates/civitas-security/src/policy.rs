//! Policies compiled from the paper's `securityConstraints`, and the engine that decides
//! unit visibility, view reads and migration targets.
//!
//! Constraint types (see docs/security.md):
//! - `{"type": "public"}` — everyone, anonymous included;
//! - `{"type": "ldap", "url": U, "dn": D}` — principals authenticated by the directory
//!   `U` that are members of the group `D` (or whose own DN is `D` or lies under it);
//! - `{"type": "oauth", "issuer": I, "scopes": [..], "claims": {..}}` — bearer principals
//!   of issuer `I` (any issuer when left out) holding every scope and every claim value;
//! - `{"type": "rbac", "roles": [..], "groups": [..]}` — principals with any listed role
//!   or group;
//! - `{"type": "migration", "replicate": false}` — never replicate; or
//!   `{"type": "migration", "sites"|"regions"|"jurisdictions"|"tiers": [..]}` — the only
//!   targets allowed (every list given must match).
//!
//! Access constraints are alternatives: one that admits the caller is enough. Migration
//! constraints all apply. A constraint of an unknown type, or with malformed parameters,
//! admits nobody.

use std::sync::Arc;
use std::time::{Duration, Instant};

use civitas_catalog::AccessCheck;
use civitas_model::{DataUnit, Document, SecurityConstraint, Site, Urn, View};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::audit::{AuditLog, AuditRecord};
use crate::cache::TtlCache;
use crate::config::Unconstrained;
use crate::error::SecurityError;
use crate::metrics::SecurityMetrics;
use crate::principal::{Principal, Source};

/// A rule that may grant access.
#[derive(Debug, Clone, PartialEq)]
pub enum AccessRule {
    /// Everyone.
    Public,
    /// Members of an LDAP group of a directory.
    Ldap {
        /// The directory's URL.
        url: String,
        /// The group's (or a subtree's) DN.
        dn: String,
    },
    /// Bearer principals of an issuer with scopes and claims.
    OAuth {
        /// The required issuer, if any.
        issuer: Option<String>,
        /// Scopes all required.
        scopes: Vec<String>,
        /// Claims all required: each value equal, or one of a list.
        claims: Map<String, Value>,
    },
    /// Principals with one of the roles or groups.
    Rbac {
        /// Accepted roles.
        roles: Vec<String>,
        /// Accepted groups.
        groups: Vec<String>,
    },
    /// A constraint that cannot be evaluated: admits nobody.
    Invalid {
        /// Its type.
        kind: String,
        /// Why it cannot be evaluated.
        message: String,
    },
}

/// Where a view may be moved.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MigrationRule {
    /// `false`: never replicate or move.
    pub replicate: bool,
    /// Allowed target sites (URNs); empty: any.
    pub sites: Vec<String>,
    /// Allowed regions; empty: any.
    pub regions: Vec<String>,
    /// Allowed jurisdictions; empty: any.
    pub jurisdictions: Vec<String>,
    /// Allowed tiers (`edge`, `fog`, `cloud`); empty: any.
    pub tiers: Vec<String>,
}

/// The compiled constraints of one unit or view. Each rule keeps its index in the
/// document's `securityConstraints`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Policy {
    /// Access rules.
    pub access: Vec<(usize, AccessRule)>,
    /// Migration rules.
    pub migration: Vec<(usize, MigrationRule)>,
}

fn string_list(params: &Map<String, Value>, key: &str) -> Result<Vec<String>, String> {
    match params.get(key) {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(list)) => list
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or_else(|| format!("`{key}` must list strings")))
            .collect(),
        Some(_) => Err(format!("`{key}` must be a string or a list of strings")),
    }
}

fn text(params: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match params.get(key) {
        None => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_owned())),
        Some(_) => Err(format!("`{key}` must be a non-empty string")),
    }
}

fn only_keys(params: &Map<String, Value>, allowed: &[&str]) -> Result<(), String> {
    match params.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(format!("unknown key `{k}` (allowed: {})", allowed.join(", "))),
        None => Ok(()),
    }
}

enum Compiled {
    Access(AccessRule),
    Migration(MigrationRule),
}

fn compile_one(c: &SecurityConstraint) -> Result<Compiled, String> {
    let p = &c.parameters;
    Ok(match c.kind.as_str() {
        "public" => {
            only_keys(p, &[])?;
            Compiled::Access(AccessRule::Public)
        }
        "ldap" => {
            only_keys(p, &["url", "dn"])?;
            let url = text(p, "url")?.ok_or("an ldap constraint needs `url`")?;
            let dn = text(p, "dn")?.ok_or("an ldap constraint needs `dn`")?;
            Compiled::Access(AccessRule::Ldap { url, dn })
        }
        "oauth" => {
            only_keys(p, &["issuer", "scopes", "claims"])?;
            let claims = match p.get("claims") {
                None => Map::new(),
                Some(Value::Object(m)) => m.clone(),
                Some(_) => return Err("`claims` must be an object".into()),
            };
            Compiled::Access(AccessRule::OAuth {
                issuer: text(p, "issuer")?,
                scopes: string_list(p, "scopes")?,
                claims,
            })
        }
        "rbac" => {
            only_keys(p, &["roles", "groups"])?;
            let (roles, groups) = (string_list(p, "roles")?, string_list(p, "groups")?);
            if roles.is_empty() && groups.is_empty() {
                return Err("an rbac constraint needs `roles` or `groups`".into());
            }
            Compiled::Access(AccessRule::Rbac { roles, groups })
        }
        "migration" => {
            only_keys(p, &["replicate", "sites", "regions", "jurisdictions", "tiers"])?;
            let replicate = match p.get("replicate") {
                None => true,
                Some(Value::Bool(b)) => *b,
                Some(_) => return Err("`replicate` must be true or false".into()),
            };
            Compiled::Migration(MigrationRule {
                replicate,
                sites: string_list(p, "sites")?,
                regions: string_list(p, "regions")?,
                jurisdictions: string_list(p, "jurisdictions")?,
                tiers: string_list(p, "tiers")?,
            })
        }
        other => return Err(format!("unknown constraint type `{other}` (public, ldap, oauth, rbac, migration)")),
    })
}

impl Policy {
    /// Compiles constraints; a malformed one becomes [`AccessRule::Invalid`] (fail closed).
    pub fn compile(constraints: &[SecurityConstraint]) -> Policy {
        let mut policy = Policy::default();
        for (i, c) in constraints.iter().enumerate() {
            match compile_one(c) {
                Ok(Compiled::Access(r)) => policy.access.push((i, r)),
                Ok(Compiled::Migration(r)) => policy.migration.push((i, r)),
                Err(message) => policy.access.push((i, AccessRule::Invalid { kind: c.kind.clone(), message })),
            }
        }
        policy
    }
}

/// Checks constraints before they are stored (the API can answer `422` with these).
pub fn validate_constraints(constraints: &[SecurityConstraint]) -> Result<(), Vec<SecurityError>> {
    let errors: Vec<SecurityError> = constraints
        .iter()
        .enumerate()
        .filter_map(|(index, c)| compile_one(c).err().map(|message| SecurityError::Constraint { index, message }))
        .collect();
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

fn normalise_dn(dn: &str) -> String {
    dn.split(',').map(|rdn| rdn.trim().to_ascii_lowercase()).collect::<Vec<_>>().join(",")
}

fn normalise_url(url: &str) -> String {
    url.trim().trim_end_matches('/').to_ascii_lowercase()
}

fn claim_matches(have: Option<&Value>, want: &Value) -> bool {
    let Some(have) = have else { return false };
    match (have, want) {
        (_, Value::Array(options)) => options.iter().any(|w| claim_matches(Some(have), w)),
        (Value::Array(values), w) => values.contains(w),
        (h, w) => h == w,
    }
}

impl AccessRule {
    /// Whether the rule admits `p`, with a short reason when it does.
    pub fn admits(&self, p: &Principal) -> Option<String> {
        match self {
            AccessRule::Public => Some("public".into()),
            AccessRule::Invalid { .. } => None,
            _ if p.is_anonymous() || p.source == Source::Node => None,
            AccessRule::Ldap { url, dn } => {
                let Source::Ldap { url: from, dn: user_dn } = &p.source else { return None };
                if normalise_url(from) != normalise_url(url) {
                    return None;
                }
                let want = normalise_dn(dn);
                let user = normalise_dn(user_dn);
                if user == want || user.ends_with(&format!(",{want}")) {
                    return Some(format!("entry {user_dn} under {dn}"));
                }
                p.groups.iter().any(|g| normalise_dn(g) == want).then(|| format!("member of {dn}"))
            }
            AccessRule::OAuth { issuer, scopes, claims } => {
                let from = p.issuer()?;
                if issuer.as_deref().is_some_and(|i| i != from) {
                    return None;
                }
                if !scopes.iter().all(|s| p.scopes.contains(s)) {
                    return None;
                }
                let attribute = |k: &str| -> Option<Value> {
                    match k {
                        "organisation" | "organization" => p.organisation.clone().map(Value::String),
                        "jurisdiction" => p.jurisdiction.clone().map(Value::String),
                        "sub" => Some(Value::String(p.subject.clone())),
                        _ => None,
                    }
                };
                let ok = claims.iter().all(|(k, want)| match p.claims.get(k) {
                    Some(have) => claim_matches(Some(have), want),
                    None => claim_matches(attribute(k).as_ref(), want),
                });
                ok.then(|| format!("token of {from}"))
            }
            AccessRule::Rbac { roles, groups } => roles
                .iter()
                .find(|r| p.roles.contains(*r))
                .map(|r| format!("role {r}"))
                .or_else(|| groups.iter().find(|g| p.groups.contains(*g)).map(|g| format!("group {g}"))),
        }
    }

    fn kind(&self) -> &str {
        match self {
            AccessRule::Public => "public",
            AccessRule::Ldap { .. } => "ldap",
            AccessRule::OAuth { .. } => "oauth",
            AccessRule::Rbac { .. } => "rbac",
            AccessRule::Invalid { kind, .. } => kind,
        }
    }
}

/// What is being decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecisionKind {
    /// Whether a caller may know a unit exists and see its description and tree.
    UnitVisibility,
    /// Whether a caller may read a view through the data plane.
    ViewRead,
    /// Whether a view may be moved or replicated to a site.
    Migration,
    /// Whether a caller may administer the node (create, list or revoke tokens…).
    Administration,
}

impl DecisionKind {
    /// The label value in metrics and the audit log: `unit`, `view`, `migration`, `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionKind::UnitVisibility => "unit",
            DecisionKind::ViewRead => "view",
            DecisionKind::Migration => "migration",
            DecisionKind::Administration => "admin",
        }
    }
}

/// A decision and the rule that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Allowed or denied.
    pub allowed: bool,
    /// What was decided.
    pub kind: DecisionKind,
    /// The unit, view or `view -> site` decided about.
    pub resource: Arc<str>,
    /// The rule that decided: `urn:u:v securityConstraints[1] (rbac)`,
    /// `default unconstrained=authenticated`, `no constraint admits`…
    pub rule: Arc<str>,
    /// Why, in a few words (`role planner`, `region eu-west not allowed`).
    pub reason: Arc<str>,
}

/// A migration target, as the migration manager knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteTarget {
    /// The site's URN.
    pub name: String,
    /// Its region.
    pub region: String,
    /// Its jurisdiction, if declared.
    pub jurisdiction: Option<String>,
    /// Its tier (`edge`, `fog`, `cloud`).
    pub tier: String,
}

impl From<&Site> for SiteTarget {
    fn from(s: &Site) -> SiteTarget {
        SiteTarget {
            name: s.header.name.to_string(),
            region: s.region.clone(),
            jurisdiction: s.jurisdiction.clone(),
            tier: s.tier.as_str().to_owned(),
        }
    }
}

/// Decides, caches, counts and audits.
#[derive(Debug)]
pub struct PolicyEngine {
    unconstrained: Unconstrained,
    admin_roles: Vec<String>,
    cache: TtlCache<[u8; 32], Arc<Decision>>,
    audit: Option<AuditLog>,
    metrics: SecurityMetrics,
}

impl PolicyEngine {
    /// An engine; `cache_ttl` zero disables the decision cache; `audit` `None` audits
    /// nothing (tests, tools).
    pub fn new(
        unconstrained: Unconstrained,
        cache_ttl: Duration,
        cache_capacity: usize,
        audit: Option<AuditLog>,
        metrics: SecurityMetrics,
    ) -> PolicyEngine {
        PolicyEngine {
            unconstrained,
            admin_roles: vec!["admin".into()],
            cache: TtlCache::new(cache_ttl, cache_capacity),
            audit,
            metrics,
        }
    }

    /// Waits until every audit record of decisions made so far is written and fsynced (at
    /// most `timeout`; `true` when there is no audit log). Blocking: call it at shutdown,
    /// off the async runtime.
    pub fn sync_audit(&self, timeout: Duration) -> bool {
        self.audit.as_ref().is_none_or(|a| a.sync(timeout))
    }

    /// Replaces the roles that may administer the node (default `["admin"]`).
    pub fn with_admin_roles(mut self, roles: Vec<String>) -> PolicyEngine {
        self.admin_roles = roles;
        self
    }

    /// The roles that may administer the node (`security.admin_roles`).
    pub fn admin_roles(&self) -> &[String] {
        &self.admin_roles
    }

    /// Whether `p` may perform the administrative `action` (`token.create`,
    /// `token.revoke`, `token.list`…): principals holding one of the admin roles, and the
    /// node itself. Not cached (rare).
    pub fn administer(&self, p: &Principal, action: &str) -> Arc<Decision> {
        let kind = DecisionKind::Administration;
        let d = if p.source == Source::Node {
            Decision {
                allowed: true,
                kind,
                resource: action.into(),
                rule: "the node itself".into(),
                reason: "node".into(),
            }
        } else if let Some(role) = self.admin_roles.iter().find(|r| !p.is_anonymous() && p.roles.contains(*r)) {
            Decision {
                allowed: true,
                kind,
                resource: action.into(),
                rule: "security.admin_roles".into(),
                reason: format!("role {role}").into(),
            }
        } else {
            deny(kind, action, "security.admin_roles", "the caller holds no admin role")
        };
        self.finish(p, Arc::new(d), false)
    }

    /// Whether `p` may know `unit` exists and see its description and tree (the unit's
    /// own constraints).
    pub fn unit_visible(&self, p: &Principal, unit: &DataUnit) -> Arc<Decision> {
        let name = unit.header.name.as_str();
        self.decide_access(p, DecisionKind::UnitVisibility, name, &unit.header.version, || {
            (Policy::compile(&unit.metainformation.security_constraints), name.to_owned())
        })
    }

    /// Whether `p` may read the view named `view` of `unit`. A view's own access
    /// constraints decide; a view without any inherits its unit's. A view the unit does
    /// not have is denied.
    pub fn view_read(&self, p: &Principal, unit: &DataUnit, view: &Urn) -> Arc<Decision> {
        let Some(v) = unit.views.iter().find(|v| &v.name == view) else {
            let d = deny(DecisionKind::ViewRead, view.as_str(), "unknown view", "the unit has no such view");
            return self.finish(p, Arc::new(d), false);
        };
        self.decide_access(p, DecisionKind::ViewRead, v.name.as_str(), &unit.header.version, || {
            effective_view_policy(unit, v)
        })
    }

    /// Whether `p` may read a view whose policy was compiled beforehand (the data plane
    /// keeps one [`ViewSecurity`] per route so a cache miss does not recompile).
    pub fn view_read_compiled(&self, p: &Principal, view: &ViewSecurity) -> Arc<Decision> {
        self.decide_access(p, DecisionKind::ViewRead, view.view.as_str(), &view.version, || {
            (view.policy.clone(), view.owner.clone())
        })
    }

    fn decide_access(
        &self,
        p: &Principal,
        kind: DecisionKind,
        resource: &str,
        version: &str,
        policy: impl FnOnce() -> (Policy, String),
    ) -> Arc<Decision> {
        let now = Instant::now();
        let key = cache_key(p, kind, resource, version);
        if let Some(d) = self.cache.get(&key, now) {
            return self.finish(p, d, true);
        }
        let (policy, owner) = policy();
        let d = Arc::new(self.evaluate_access(p, kind, resource, &owner, &policy));
        self.cache.insert(key, Arc::clone(&d), now, None);
        self.finish(p, d, false)
    }

    /// `owner` is the unit or view whose constraints `policy` holds (a view without access
    /// constraints is decided by its unit's).
    fn evaluate_access(
        &self,
        p: &Principal,
        kind: DecisionKind,
        resource: &str,
        owner: &str,
        policy: &Policy,
    ) -> Decision {
        let rule_name = |i: usize, r: &AccessRule| format!("{owner} securityConstraints[{i}] ({})", r.kind());
        if policy.access.is_empty() {
            let (allowed, reason) = match self.unconstrained {
                Unconstrained::Public => (true, "no access constraint; unconstrained=public"),
                Unconstrained::Authenticated if !p.is_anonymous() => (true, "authenticated caller"),
                Unconstrained::Authenticated => (false, "no access constraint admits anonymous callers"),
                Unconstrained::Deny => (false, "no access constraint; unconstrained=deny"),
            };
            let rule = match self.unconstrained {
                Unconstrained::Public => "default unconstrained=public",
                Unconstrained::Authenticated => "default unconstrained=authenticated",
                Unconstrained::Deny => "default unconstrained=deny",
            };
            return Decision { allowed, kind, resource: resource.into(), rule: rule.into(), reason: reason.into() };
        }
        for (i, rule) in &policy.access {
            if let Some(reason) = rule.admits(p) {
                return Decision {
                    allowed: true,
                    kind,
                    resource: resource.into(),
                    rule: rule_name(*i, rule).into(),
                    reason: reason.into(),
                };
            }
        }
        let kinds: Vec<&str> = policy.access.iter().map(|(_, r)| r.kind()).collect();
        deny(
            kind,
            resource,
            &format!("{resource} securityConstraints ({})", kinds.join(", ")),
            "no constraint admits the caller",
        )
    }

    /// Whether `view` of `unit` may be moved or replicated to `site`, on behalf of
    /// `requester` (`None`: the node itself). Migration constraints of the unit and of the
    /// view all apply; with none, any site is allowed. Not cached.
    pub fn migration_target(
        &self,
        requester: Option<&Principal>,
        unit: &DataUnit,
        view: Option<&View>,
        site: &SiteTarget,
    ) -> Decision {
        let system = Principal::node("civitas-node");
        let p = requester.unwrap_or(&system);
        let decision = migration_decision(unit, view, site);
        self.finish(p, Arc::new(decision), false).as_ref().clone()
    }

    /// An [`AccessCheck`] for the catalog's tree and listings on behalf of `principal`.
    pub fn access_check(self: &Arc<Self>, principal: Arc<Principal>) -> CallerAccess {
        CallerAccess { engine: Arc::clone(self), principal }
    }

    /// Forgets cached decisions.
    pub fn clear_cache(&self) {
        self.cache.clear();
    }

    /// Counts every decision; audits every fresh decision and every denial. An allow
    /// served from the cache repeats one already in the audit log for the same principal,
    /// resource and version within `cache_ttl`, so it is counted but not written again
    /// (on the data plane's hot path that write would cost more than the request).
    fn finish(&self, p: &Principal, d: Arc<Decision>, cached: bool) -> Arc<Decision> {
        self.metrics.decision(d.allowed, d.kind.as_str());
        if let Some(audit) = &self.audit
            && !(cached && d.allowed)
        {
            audit.record(AuditRecord::new(p, &d, cached));
        }
        d
    }
}

/// Whether `view` of `unit` may be moved or replicated to `site` by the migration
/// constraints of the unit and the view, without auditing or caching: the pure rule that
/// [`PolicyEngine::migration_target`] applies (a node without `[security]` still obeys it).
pub fn migration_decision(unit: &DataUnit, view: Option<&View>, site: &SiteTarget) -> Decision {
    let resource = format!("{} -> {}", view.map_or(unit.header.name.as_str(), |v| v.name.as_str()), site.name);
    let mut rules: Vec<(String, MigrationRule)> = Vec::new();
    let mut collect = |owner: &str, constraints: &[SecurityConstraint]| {
        for (i, r) in Policy::compile(constraints).migration {
            rules.push((format!("{owner} securityConstraints[{i}] (migration)"), r));
        }
    };
    collect(unit.header.name.as_str(), &unit.metainformation.security_constraints);
    if let Some(v) = view {
        collect(v.name.as_str(), &v.security_constraints);
    }
    for (rule, r) in &rules {
        if let Some(reason) = migration_refusal(r, site) {
            return deny(DecisionKind::Migration, &resource, rule, &reason);
        }
    }
    Decision {
        allowed: true,
        kind: DecisionKind::Migration,
        resource: resource.as_str().into(),
        rule: if rules.is_empty() { "no migration constraint".into() } else { rules[0].0.as_str().into() },
        reason: if rules.is_empty() {
            "any site".into()
        } else {
            "the site satisfies every migration constraint".into()
        },
    }
}

fn deny(kind: DecisionKind, resource: &str, rule: &str, reason: &str) -> Decision {
    Decision { allowed: false, kind, resource: resource.into(), rule: rule.into(), reason: reason.into() }
}

impl From<Arc<Decision>> for Decision {
    fn from(d: Arc<Decision>) -> Decision {
        d.as_ref().clone()
    }
}

/// The compiled access policy of one view, for callers that keep it beside a route.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewSecurity {
    /// The view.
    pub view: Urn,
    /// Its unit's version (cached decisions are keyed by it).
    pub version: String,
    policy: Policy,
    owner: String,
}

impl ViewSecurity {
    /// Compiles the access policy of `view` of `unit` (its own rules, or its unit's).
    pub fn new(unit: &DataUnit, view: &View) -> ViewSecurity {
        let (policy, owner) = effective_view_policy(unit, view);
        ViewSecurity { view: view.name.clone(), version: unit.header.version.clone(), policy, owner }
    }
}

/// A view's access rules if it has any, else its unit's, with the name of their owner.
fn effective_view_policy(unit: &DataUnit, view: &View) -> (Policy, String) {
    let own = Policy::compile(&view.security_constraints);
    if own.access.is_empty() {
        (Policy::compile(&unit.metainformation.security_constraints), unit.header.name.to_string())
    } else {
        (own, view.name.to_string())
    }
}

fn listed(list: &[String], value: &str) -> bool {
    list.iter().any(|x| x.eq_ignore_ascii_case(value))
}

fn migration_refusal(r: &MigrationRule, site: &SiteTarget) -> Option<String> {
    if !r.replicate {
        return Some("the view may never be replicated".into());
    }
    if !r.sites.is_empty() && !listed(&r.sites, &site.name) {
        return Some(format!("site {} is not an allowed target", site.name));
    }
    if !r.regions.is_empty() && !listed(&r.regions, &site.region) {
        return Some(format!("region {} is not allowed", site.region));
    }
    if !r.jurisdictions.is_empty() {
        match &site.jurisdiction {
            Some(j) if listed(&r.jurisdictions, j) => {}
            Some(j) => return Some(format!("jurisdiction {j} is not allowed")),
            None => return Some(format!("site {} declares no jurisdiction", site.name)),
        }
    }
    if !r.tiers.is_empty() && !listed(&r.tiers, &site.tier) {
        return Some(format!("tier {} is not allowed", site.tier));
    }
    None
}

fn cache_key(p: &Principal, kind: DecisionKind, resource: &str, version: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(p.fingerprint());
    for part in [kind.as_str(), resource, version] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    h.finalize().into()
}

/// The unit whose visibility governs whether a caller may know `document` exists: the
/// unit itself, or the unit a data instance deploys (an instance would reveal its unit's
/// name and endpoint). `None` for documents no unit governs (sites, links, technical and
/// deployment units and instances), which any caller allowed to use the API may see.
///
/// For list, get and search the node keeps a document only when this unit is visible
/// ([`PolicyEngine::unit_visible`]) — and answers 404 for a hidden one.
pub fn governing_unit(document: &Document) -> Option<&Urn> {
    match document {
        Document::DataUnit(u) => Some(&u.header.name),
        Document::DataInstance(i) => Some(&i.data_unit),
        _ => None,
    }
}

/// The catalog's [`AccessCheck`] for one caller: a unit resolves when the caller may see
/// it; instances, deployments and sites are reached only through a visible unit and
/// resolve. (Listing or getting those kinds directly is for the API to filter by their
/// unit.)
pub struct CallerAccess {
    engine: Arc<PolicyEngine>,
    principal: Arc<Principal>,
}

impl AccessCheck for CallerAccess {
    fn may_resolve(&self, document: &Document) -> bool {
        match document {
            Document::DataUnit(u) => self.engine.unit_visible(&self.principal, u).allowed,
            _ => true,
        }
    }
}
