//! The Dependency Manager's part of a migration: resolve a candidate's unit, view, origin
//! and the candidate target sites from the (federated) route documents, and the
//! migration constraints that say where the view may go.

use civitas_dataplane::MergedDocuments;
use civitas_model::{DataInstance, DataUnit, Document, InstanceRole, Kind, SecurityConstraint, Site, Tier, Urn, View};
use civitas_placement::MigrationCandidate;
use civitas_placement::migration::{PlanInput, TargetConstraints};
use serde_json::Value;

/// Decides where a view may be replicated. The seam between relocation and the security
/// manager: [`ConstraintGuard`] reads the `migration` constraints of units and views.
pub trait MigrationGuard: Send + Sync + 'static {
    /// The constraints on targets for `view` of `unit`, or why it may not be replicated at all.
    fn constraints(&self, unit: &DataUnit, view: &View) -> Result<TargetConstraints, String>;
}

/// Reads `{"type": "migration", ...}` security constraints of the unit and the view:
///
/// - `"neverReplicate": true` — the view stays at its origin;
/// - `"allowedTiers": ["edge", "fog"]`, `"allowedJurisdictions": ["AT", "EU"]`,
///   `"requiredCapabilities": ["tee"]` — targets must satisfy all of them.
///
/// Unit-level and view-level constraints add up (the stricter wins).
#[derive(Debug, Default, Clone, Copy)]
pub struct ConstraintGuard;

impl MigrationGuard for ConstraintGuard {
    fn constraints(&self, unit: &DataUnit, view: &View) -> Result<TargetConstraints, String> {
        let mut out = TargetConstraints::default();
        let all = unit.metainformation.security_constraints.iter().map(|c| ("unit", c));
        for (level, c) in all.chain(view.security_constraints.iter().map(|c| ("view", c))) {
            if c.kind != "migration" {
                continue;
            }
            apply_constraint(level, c, &mut out)?;
        }
        Ok(out)
    }
}

fn apply_constraint(level: &str, c: &SecurityConstraint, out: &mut TargetConstraints) -> Result<(), String> {
    if c.parameters.get("neverReplicate").and_then(Value::as_bool) == Some(true) {
        return Err(format!("the {level}'s migration constraint says neverReplicate"));
    }
    let strings = |key: &str| -> Vec<String> {
        match c.parameters.get(key) {
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_string).collect(),
            Some(Value::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        }
    };
    let tiers = strings("allowedTiers");
    if !tiers.is_empty() {
        let parsed: Vec<Tier> = tiers.iter().filter_map(|t| Tier::parse(t).ok()).collect();
        intersect(&mut out.allowed_tiers, parsed);
        if out.allowed_tiers.is_empty() {
            return Err(format!("the {level}'s migration constraint allows no known tier ({})", tiers.join(", ")));
        }
    }
    let jurisdictions = strings("allowedJurisdictions");
    if !jurisdictions.is_empty() {
        intersect(&mut out.allowed_jurisdictions, jurisdictions);
        if out.allowed_jurisdictions.is_empty() {
            return Err(format!("the unit's and view's migration constraints allow no common jurisdiction ({level})"));
        }
    }
    for cap in strings("requiredCapabilities") {
        let cap = cap.to_ascii_lowercase();
        if !out.required_capabilities.contains(&cap) {
            out.required_capabilities.push(cap);
        }
    }
    Ok(())
}

/// `current` ∩ `more`; an empty `current` means "anything" and becomes `more`.
fn intersect<T: PartialEq>(current: &mut Vec<T>, more: Vec<T>) {
    if current.is_empty() {
        *current = more;
    } else {
        current.retain(|x| more.contains(x));
    }
}

/// Where a candidate's view lives, resolved.
pub struct Resolved {
    /// What the strategies are given.
    pub input: PlanInput,
    /// Which source of the merged documents holds the unit (0: this node's catalog).
    pub owner_source: usize,
}

/// Resolves a candidate against the route documents: the unit and view, an origin
/// instance of the view and its site, this node's site as the target, the links, and the
/// constraints. A candidate without a client site is taken to come from this node's site
/// (its clients are the ones this node's data plane saw). The error says what is missing.
pub fn resolve(
    docs: &MergedDocuments,
    mut candidate: MigrationCandidate,
    own_site: &Urn,
    guard: &dyn MigrationGuard,
) -> Result<Resolved, String> {
    let (owner_source, unit) = match docs.get(Kind::DataUnit, &candidate.unit) {
        Some((source, Document::DataUnit(u))) => (source, u),
        _ => return Err(format!("data unit {} is in no catalog this node follows", candidate.unit)),
    };
    let view = unit
        .views
        .iter()
        .find(|v| v.name == candidate.view)
        .ok_or_else(|| format!("data unit {} has no view {}", unit.header.name, candidate.view))?;
    let origin = origin_instance(docs, &unit.header.name, &view.name)
        .ok_or_else(|| format!("view {} has no origin instance with a site", view.name))?;
    let origin_site_name = origin.site.as_ref().expect("origin_instance only returns instances with a site");
    let origin_site = site(docs, origin_site_name)
        .ok_or_else(|| format!("the origin's site {origin_site_name} is not in the catalog"))?;
    let target = site(docs, own_site).ok_or_else(|| format!("this node's site {own_site} is not in the catalog"))?;
    let constraints = guard.constraints(unit, view)?;
    let links = docs
        .of_kind(Kind::SiteLink)
        .filter_map(|(_, d)| match d {
            Document::SiteLink(l) => Some(l.clone()),
            _ => None,
        })
        .collect();
    if candidate.client_site.is_none() {
        candidate.client_site = Some(own_site.clone());
    }
    let input = PlanInput {
        candidate,
        view: view.clone(),
        source_type: unit.metainformation.source_type.to_ascii_lowercase(),
        origin_site: origin_site.clone(),
        targets: vec![target.clone()],
        links,
        constraints,
    };
    Ok(Resolved { input, owner_source })
}

/// An origin instance serving `view` that names its site (the lowest name, for a stable choice).
fn origin_instance<'d>(docs: &'d MergedDocuments, unit: &Urn, view: &Urn) -> Option<&'d DataInstance> {
    docs.of_kind(Kind::DataInstance)
        .filter_map(|(_, d)| match d {
            Document::DataInstance(i) => Some(i),
            _ => None,
        })
        .filter(|i| &i.data_unit == unit && i.role == InstanceRole::Origin && i.serves(view) && i.site.is_some())
        .min_by(|a, b| a.header.name.cmp(&b.header.name))
}

fn site<'d>(docs: &'d MergedDocuments, name: &Urn) -> Option<&'d Site> {
    match docs.get(Kind::Site, name) {
        Some((_, Document::Site(s))) => Some(s),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn unit(constraints: Value, view_constraints: Value) -> DataUnit {
        let doc = json!({"@type": "DataUnit", "name": "urn:city:buildings", "version": "1",
            "metainformation": {"type": "rest", "securityConstraints": constraints},
            "views": [{"name": "blocks", "link": "/blocks", "securityConstraints": view_constraints}]});
        match Document::decode(&doc).unwrap() {
            Document::DataUnit(u) => u,
            _ => unreachable!(),
        }
    }

    #[test]
    fn migration_constraints_add_up_and_never_replicate_refuses() {
        let u = unit(
            json!([{"type": "migration", "allowedTiers": ["edge", "fog"], "allowedJurisdictions": ["AT", "DE"]}]),
            json!([{"type": "migration", "allowedTiers": ["fog", "cloud"], "requiredCapabilities": ["TEE"]},
                   {"type": "rbac", "roles": ["planner"]}]),
        );
        let c = ConstraintGuard.constraints(&u, &u.views[0]).unwrap();
        assert_eq!(c.allowed_tiers, vec![Tier::Fog]);
        assert_eq!(c.allowed_jurisdictions, vec!["AT".to_string(), "DE".to_string()]);
        assert_eq!(c.required_capabilities, vec!["tee".to_string()]);

        let u = unit(json!([]), json!([{"type": "migration", "neverReplicate": true}]));
        let err = ConstraintGuard.constraints(&u, &u.views[0]).unwrap_err();
        assert!(err.contains("neverReplicate"), "{err}");

        let u = unit(
            json!([{"type": "migration", "allowedTiers": ["edge"]}]),
            json!([{"type": "migration", "allowedTiers": ["cloud"]}]),
        );
        assert!(ConstraintGuard.constraints(&u, &u.views[0]).unwrap_err().contains("no known tier"));
    }
}
