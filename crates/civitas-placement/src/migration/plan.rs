//! What a migration strategy is given ([`PlanInput`]) and what it answers ([`MigrationPlan`]).

use civitas_model::{Site, SiteLink, Tier, Urn, View};

use crate::MigrationCandidate;

/// Constraints on where a view may go, resolved by the dependency and security checks
/// before planning (e.g. a view that may not leave a jurisdiction).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TargetConstraints {
    /// Capabilities every target must offer (`tee`, `gpu`…, lower case).
    pub required_capabilities: Vec<String>,
    /// Tiers a target may be in; empty means any.
    pub allowed_tiers: Vec<Tier>,
    /// Jurisdictions a target may be in; empty means any (a site without one is then refused).
    pub allowed_jurisdictions: Vec<String>,
}

impl TargetConstraints {
    /// Why `site` may not hold the view, or `None` when it may.
    pub fn violation(&self, site: &Site) -> Option<String> {
        let name = &site.header.name;
        if let Some(missing) =
            self.required_capabilities.iter().find(|c| !site.capabilities.contains(&c.to_ascii_lowercase()))
        {
            return Some(format!("site {name} lacks capability {missing:?}"));
        }
        if !self.allowed_tiers.is_empty() && !self.allowed_tiers.contains(&site.tier) {
            return Some(format!("site {name} is in tier {}, not an allowed one", site.tier.as_str()));
        }
        if !self.allowed_jurisdictions.is_empty()
            && !site.jurisdiction.as_ref().is_some_and(|j| self.allowed_jurisdictions.contains(j))
        {
            let j = site.jurisdiction.as_deref().unwrap_or("none");
            return Some(format!("site {name} is in jurisdiction {j}, not an allowed one"));
        }
        None
    }
}

/// Everything a [`MigrationStrategy`](super::MigrationStrategy) needs to plan one
/// candidate: the analysis, the resolved view, where it is, where it could go.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanInput {
    /// The analyzer's candidate (unit, view, client site, analysis fields).
    pub candidate: MigrationCandidate,
    /// The view, resolved from the catalog (update frequency, fraction, size).
    pub view: View,
    /// The unit's `metainformation.type` in lower case (`rest`, `file`, `object`…): which
    /// strategies apply ([`is_object_source`]).
    pub source_type: String,
    /// The site of the instance now serving the view (the origin).
    pub origin_site: Site,
    /// Sites the view could move to (the origin, if listed, is skipped).
    pub targets: Vec<Site>,
    /// Links between the client, origin and target sites.
    pub links: Vec<SiteLink>,
    /// Where the view may go.
    pub constraints: TargetConstraints,
}

/// Whether a unit of this `metainformation.type` holds objects (files, blobs) that the
/// `object-copy` strategy moves, rather than an HTTP API the `http-snapshot` copies.
pub fn is_object_source(source_type: &str) -> bool {
    matches!(source_type, "file" | "object" | "blob" | "s3")
}

/// Whether a unit of this `metainformation.type` is a SQL unit whose views the `postgres`
/// strategy copies into the target city's PostgreSQL (`sql:postgresql`).
pub fn is_sql_source(source_type: &str) -> bool {
    source_type == "sql:postgresql"
}

impl PlanInput {
    /// An analysis field of the candidate (`response_time.p50`, `frequency.rate`…),
    /// when present and finite.
    pub fn field(&self, name: &str) -> Option<f64> {
        self.candidate.analysis.get(name).copied().filter(|v| v.is_finite())
    }

    /// The unit.
    pub fn unit(&self) -> &Urn {
        &self.candidate.unit
    }

    /// The view's name.
    pub fn view_name(&self) -> &Urn {
        &self.candidate.view
    }
}

/// A strategy's answer: where to move the view, what it costs, what it gains and how
/// sure the strategy is. Money is in cost units per [`CostModel`](super::CostModel).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrationPlan {
    /// The strategy's name (`http-snapshot`).
    pub strategy: String,
    /// The unit.
    pub unit: Urn,
    /// The view to move.
    pub view: Urn,
    /// The site it moves from.
    pub origin_site: Urn,
    /// The site it moves to.
    pub target_site: Urn,
    /// Bytes to copy.
    pub transfer_bytes: u64,
    /// Expected copy time, seconds.
    pub transfer_seconds: f64,
    /// One-off transfer cost, cost units.
    pub transfer_cost: f64,
    /// Storage at the target, cost units per month.
    pub storage_cost_per_month: f64,
    /// Keeping the replica fresh, cost units per update period.
    pub update_cost_per_period: f64,
    /// Expected saving per request, ms.
    pub expected_latency_gain_ms: f64,
    /// Value of the saved time, cost units per hour.
    pub benefit_per_hour: f64,
    /// Amortized transfer, storage and updates, cost units per hour.
    pub cost_per_hour: f64,
    /// `benefit_per_hour − cost_per_hour`.
    pub score: f64,
    /// How sure the strategy is, in [0, 1].
    pub confidence: f64,
    /// How the numbers were reached, one sentence per step.
    pub explanation: Vec<String>,
}

impl MigrationPlan {
    /// Whether the benefit exceeds the cost at all.
    pub fn is_worth_it(&self) -> bool {
        self.benefit_per_hour > self.cost_per_hour
    }
}
