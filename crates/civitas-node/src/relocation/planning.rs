//! The Dependency Manager's part of a migration: resolve a candidate's unit, view, origin
//! and the candidate target sites from the (federated) route documents, and the
//! migration constraints that say where the view may go.

use civitas_dataplane::MergedDocuments;
use civitas_model::{DataInstance, DataUnit, Document, InstanceRole, Kind, Site, Urn, View};
use civitas_placement::MigrationCandidate;
use civitas_placement::migration::{PlanInput, TargetConstraints};
use civitas_security::SiteTarget;

/// Decides whether a view may be replicated to a site. The seam between relocation and
/// the security manager; both implementations apply the `{"type": "migration", …}`
/// constraints of the unit and the view (`replicate`, `sites`, `regions`,
/// `jurisdictions`, `tiers`; see `docs/security.md`).
pub trait MigrationGuard: Send + Sync + 'static {
    /// `Ok` when `view` of `unit` may go to `site`, else the deciding rule and reason.
    fn check(&self, unit: &DataUnit, view: &View, site: &Site) -> Result<(), String>;
}

/// The rules alone (a node without `[security] enabled`): no audit, no metrics.
#[derive(Debug, Default, Clone, Copy)]
pub struct ConstraintGuard;

impl MigrationGuard for ConstraintGuard {
    fn check(&self, unit: &DataUnit, view: &View, site: &Site) -> Result<(), String> {
        let d = civitas_security::migration_decision(unit, Some(view), &SiteTarget::from(site));
        if d.allowed { Ok(()) } else { Err(format!("{}: {}", d.rule, d.reason)) }
    }
}

/// The security manager's policy engine: the same rules, each decision audited and counted.
pub struct SecurityGuard(pub std::sync::Arc<civitas_security::PolicyEngine>);

impl MigrationGuard for SecurityGuard {
    fn check(&self, unit: &DataUnit, view: &View, site: &Site) -> Result<(), String> {
        let d = self.0.migration_target(None, unit, Some(view), &SiteTarget::from(site));
        if d.allowed { Ok(()) } else { Err(format!("security: {}: {}", d.rule, d.reason)) }
    }
}

/// Resolves a candidate against the route documents: the unit and view, an origin
/// instance of the view and its site, this node's site as the target, the links, and the
/// constraints. A candidate without a client site is taken to come from this node's site
/// (its clients are the ones this node's data plane saw). The error says what is missing.
/// (Which node owns the unit is looked up again when a plan executes: by then, after an
/// escalation, it may have changed.)
pub fn resolve(
    docs: &MergedDocuments,
    mut candidate: MigrationCandidate,
    own_site: &Urn,
    guard: &dyn MigrationGuard,
) -> Result<PlanInput, String> {
    let unit = match docs.get(Kind::DataUnit, &candidate.unit) {
        Some((_, Document::DataUnit(u))) => u,
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
    guard.check(unit, view, target)?;
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
    Ok(PlanInput {
        candidate,
        view: view.clone(),
        source_type: unit.metainformation.source_type.to_ascii_lowercase(),
        origin_site: origin_site.clone(),
        targets: vec![target.clone()],
        links,
        constraints: TargetConstraints::default(),
    })
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
    use serde_json::{Value, json};

    fn unit(constraints: Value, view_constraints: Value) -> DataUnit {
        let doc = json!({"@type": "DataUnit", "name": "urn:city:buildings", "version": "1",
            "metainformation": {"type": "rest", "securityConstraints": constraints},
            "views": [{"name": "blocks", "link": "/blocks", "securityConstraints": view_constraints}]});
        match Document::decode(&doc).unwrap() {
            Document::DataUnit(u) => u,
            _ => unreachable!(),
        }
    }

    fn site(tier: &str, jurisdiction: &str) -> Site {
        let doc = json!({"@type": "Site", "name": "urn:site:edge-1", "version": "1", "tier": tier,
            "region": "vienna", "jurisdiction": jurisdiction});
        match Document::decode(&doc).unwrap() {
            Document::Site(s) => s,
            _ => unreachable!(),
        }
    }

    #[test]
    fn unit_and_view_migration_constraints_all_apply() {
        let u = unit(
            json!([{"type": "migration", "jurisdictions": ["AT", "DE"]}]),
            json!([{"type": "migration", "tiers": ["fog", "cloud"]}, {"type": "rbac", "roles": ["planner"]}]),
        );
        assert!(ConstraintGuard.check(&u, &u.views[0], &site("fog", "AT")).is_ok());
        let err = ConstraintGuard.check(&u, &u.views[0], &site("edge", "AT")).unwrap_err();
        assert!(err.contains("tier edge"), "{err}");
        let err = ConstraintGuard.check(&u, &u.views[0], &site("fog", "AU")).unwrap_err();
        assert!(err.contains("jurisdiction AU") && err.contains("urn:city:buildings securityConstraints[0]"), "{err}");
        let u = unit(json!([]), json!([{"type": "migration", "replicate": false}]));
        let err = ConstraintGuard.check(&u, &u.views[0], &site("cloud", "AT")).unwrap_err();
        assert!(err.contains("never be replicated"), "{err}");
    }
}
