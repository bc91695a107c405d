//! The migration strategy seam and the reference planning model of the HTTP snapshot strategy.

use super::cost::{CostModel, Usage, link_latency_ms};
use super::plan::{MigrationPlan, PlanInput};

/// A way to move a view (the paper's pluggable Migration Strategy). This is its
/// deciding half: given a candidate and where the view could go, a plan with a
/// confidence, or nothing when the strategy cannot or should not move it. Executing a
/// plan is a separate concern (wired by the node).
pub trait MigrationStrategy: Send + Sync {
    /// A short stable name (`http-snapshot`), recorded in plans and events.
    fn name(&self) -> &'static str;
    /// A plan for this input, or `None`. Must be deterministic.
    fn plan(&self, input: &PlanInput) -> Option<MigrationPlan>;
}

/// The confidence formula's parts, each in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ConfidenceParts {
    /// `samples / (samples + evidence_half_samples)`.
    pub evidence: f64,
    /// Mean of the spread `p50 / p95` and the drift `1 − |ewma − mean| / mean` (0.5 each when unknown).
    pub stability: f64,
    /// `(benefit − cost) / (benefit + cost)`, 0 when benefit ≤ cost.
    pub margin: f64,
}

impl ConfidenceParts {
    /// The geometric mean of the three parts: any part at 0 makes the plan worthless to
    /// run alone, and each counts equally.
    pub fn confidence(&self) -> f64 {
        (self.evidence * self.stability * self.margin).cbrt().clamp(0.0, 1.0)
    }
}

/// The planning model of the HTTP view snapshot strategy (`http-snapshot`): copy the
/// view to the eligible site nearest its consumers.
///
/// Picks, among the targets that are not the origin, satisfy the input's
/// [`TargetConstraints`](super::TargetConstraints) and have a known link from the
/// client site, the one with the lowest latency from the client site (ties: the lower
/// name); then prices the move with its [`CostModel`] and computes a confidence from
/// evidence, stability and margin ([`ConfidenceParts`]). No plan when the candidate has
/// no client site, no target is eligible, the view's size is unknown (neither declared
/// nor measured), or the latency gain cannot be estimated.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SnapshotStrategyModel {
    /// The cost model.
    pub cost: CostModel,
    /// Samples at which the evidence part reaches 0.5. Default 50.
    pub evidence_half_samples: f64,
}

impl Default for SnapshotStrategyModel {
    fn default() -> SnapshotStrategyModel {
        SnapshotStrategyModel { cost: CostModel::default(), evidence_half_samples: 50.0 }
    }
}

impl SnapshotStrategyModel {
    /// The strategy's name.
    pub const NAME: &'static str = "http-snapshot";

    /// The confidence parts for this input and these per-hour figures.
    pub fn confidence_parts(&self, input: &PlanInput, benefit_per_hour: f64, cost_per_hour: f64) -> ConfidenceParts {
        let samples = input.field("samples").unwrap_or(0.0).max(0.0);
        let evidence = samples / (samples + self.evidence_half_samples.max(f64::MIN_POSITIVE));
        let spread = match (input.field("response_time.p50"), input.field("response_time.p95")) {
            (Some(p50), Some(p95)) if p50 >= 0.0 && p95 > 0.0 => (p50 / p95).clamp(0.0, 1.0),
            _ => 0.5,
        };
        let drift = match (input.field("response_time.ewma"), input.field("response_time.mean")) {
            (Some(ewma), Some(mean)) if mean > 0.0 => 1.0 - ((ewma - mean).abs() / mean).min(1.0),
            _ => 0.5,
        };
        let total = benefit_per_hour + cost_per_hour;
        let margin = if benefit_per_hour > cost_per_hour && total > 0.0 {
            ((benefit_per_hour - cost_per_hour) / total).clamp(0.0, 1.0)
        } else {
            0.0
        };
        ConfidenceParts { evidence, stability: (spread + drift) / 2.0, margin }
    }
}

impl MigrationStrategy for SnapshotStrategyModel {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    /// Plans HTTP APIs; leaves object sources to [`ObjectCopyStrategyModel`] and SQL
    /// units to [`PostgresStrategyModel`].
    fn plan(&self, input: &PlanInput) -> Option<MigrationPlan> {
        if super::plan::is_object_source(&input.source_type) || super::plan::is_sql_source(&input.source_type) {
            return None;
        }
        self.plan_as(Self::NAME, input)
    }
}

/// The planning model of the object copy strategy (`object-copy`): the same target
/// choice, cost model and confidence as [`SnapshotStrategyModel`], for units whose
/// `metainformation.type` names objects (`file`, `object`, `blob`, `s3`). Its copy is
/// chunked, checksummed and resumable.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ObjectCopyStrategyModel {
    /// Target choice, costs and confidence.
    pub model: SnapshotStrategyModel,
}

impl ObjectCopyStrategyModel {
    /// The strategy's name.
    pub const NAME: &'static str = "object-copy";
}

impl MigrationStrategy for ObjectCopyStrategyModel {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn plan(&self, input: &PlanInput) -> Option<MigrationPlan> {
        if !super::plan::is_object_source(&input.source_type) {
            return None;
        }
        self.model.plan_as(Self::NAME, input)
    }
}

/// The planning model of the PostgreSQL strategy (`postgres`): the same target choice,
/// cost model and confidence as [`SnapshotStrategyModel`], for SQL units
/// (`sql:postgresql`). Its copy moves the rows the view reads into the target city's
/// database with `COPY` in one transaction; its replicas are kept fresh by logical
/// replication, a watermark column or full copies.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostgresStrategyModel {
    /// Target choice, costs and confidence.
    pub model: SnapshotStrategyModel,
}

impl PostgresStrategyModel {
    /// The strategy's name.
    pub const NAME: &'static str = "postgres";
}

impl MigrationStrategy for PostgresStrategyModel {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn plan(&self, input: &PlanInput) -> Option<MigrationPlan> {
        if !super::plan::is_sql_source(&input.source_type) {
            return None;
        }
        self.model.plan_as(Self::NAME, input)
    }
}

impl SnapshotStrategyModel {
    /// A plan named `strategy`: the eligible target nearest the client, priced and rated.
    fn plan_as(&self, strategy: &str, input: &PlanInput) -> Option<MigrationPlan> {
        let client = input.candidate.client_site.as_ref()?;
        let origin = &input.origin_site;
        let mut explanation = Vec::new();
        let target = input
            .targets
            .iter()
            .filter(|s| s.header.name != origin.header.name)
            .filter(|s| input.constraints.violation(s).is_none())
            .filter_map(|s| link_latency_ms(&input.links, client, &s.header.name).map(|l| (l, s)))
            .min_by(|(la, a), (lb, b)| la.total_cmp(lb).then_with(|| a.header.name.cmp(&b.header.name)))
            .map(|(latency, site)| {
                explanation.push(format!(
                    "target {} is the eligible site nearest the client site {client} ({latency} ms one way)",
                    site.header.name
                ));
                site
            })?;
        let (size_bytes, size_source) = match (input.view.size_bytes, input.field("size.mean")) {
            (Some(size), _) => (size, "declared by the view"),
            (None, Some(mean)) if mean >= 0.0 => (mean.round() as u64, "measured mean response size"),
            _ => return None,
        };
        explanation.push(format!("size {size_bytes} bytes ({size_source})"));
        let usage = Usage {
            rate_per_s: input.field("frequency.rate").unwrap_or(0.0),
            p50_ms: input.field("response_time.p50"),
        };
        let estimate = self.cost.estimate(&input.view, size_bytes, usage, client, origin, target, &input.links)?;
        if estimate.expected_latency_gain_ms == 0.0 {
            explanation.push(format!(
                "no latency gain of at least {} ms per request: the view is already close enough",
                self.cost.min_latency_gain_ms
            ));
        }
        explanation.push(format!(
            "latency gain {:.1} ms per request at {:.3} requests/s: benefit {:.6} per hour",
            estimate.expected_latency_gain_ms, usage.rate_per_s, estimate.benefit_per_hour
        ));
        explanation.push(format!(
            "transfer {:.6} (amortized over {} h), storage {:.6} per month, updates {:.6} per hour: cost {:.6} per hour",
            estimate.transfer_cost,
            self.cost.amortization_hours,
            estimate.storage_cost_per_month,
            estimate.update_cost_per_hour,
            estimate.cost_per_hour
        ));
        let parts = self.confidence_parts(input, estimate.benefit_per_hour, estimate.cost_per_hour);
        let confidence = parts.confidence();
        explanation.push(format!(
            "confidence {confidence:.3} = cbrt(evidence {:.3} × stability {:.3} × margin {:.3})",
            parts.evidence, parts.stability, parts.margin
        ));
        Some(MigrationPlan {
            strategy: strategy.to_string(),
            unit: input.candidate.unit.clone(),
            view: input.candidate.view.clone(),
            origin_site: origin.header.name.clone(),
            target_site: target.header.name.clone(),
            transfer_bytes: estimate.transfer_bytes,
            transfer_seconds: estimate.transfer_seconds,
            transfer_cost: estimate.transfer_cost,
            storage_cost_per_month: estimate.storage_cost_per_month,
            update_cost_per_period: estimate.update_cost_per_period,
            expected_latency_gain_ms: estimate.expected_latency_gain_ms,
            benefit_per_hour: estimate.benefit_per_hour,
            cost_per_hour: estimate.cost_per_hour,
            score: estimate.score(),
            confidence,
            explanation,
        })
    }
}
