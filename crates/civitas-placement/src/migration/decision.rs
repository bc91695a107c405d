//! Choosing among strategies' plans: execute, escalate to a person, refuse, or hold.

use std::fmt;

use civitas_model::Urn;

use super::plan::MigrationPlan;
use crate::ConfidenceInterval;

/// Why a plan goes to a person instead of running by itself.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum EscalationReason {
    /// No worthwhile plan's confidence is inside the interval; this is the best one.
    OutsideInterval {
        /// The escalated plan's confidence.
        confidence: f64,
        /// The configured interval.
        interval: ConfidenceInterval,
    },
}

impl fmt::Display for EscalationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EscalationReason::OutsideInterval { confidence, interval } => write!(
                f,
                "no plan has a confidence inside {interval}; the best one has {confidence:.3} and needs a person's approval"
            ),
        }
    }
}

/// Why a candidate does not move, now or ever (until its usage changes).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum RefuseReason {
    /// No strategy produced a plan (no client site, no eligible target, unknown size…).
    NoPlan {
        /// The strategies asked.
        strategies: Vec<String>,
    },
    /// The best plan's benefit does not exceed its cost.
    NotWorthIt {
        /// The best plan's strategy.
        strategy: String,
        /// Its target.
        target_site: Urn,
        /// Its benefit, cost units per hour.
        benefit_per_hour: f64,
        /// Its cost, cost units per hour.
        cost_per_hour: f64,
    },
    /// The escalation queue is full; the plan is dropped, and the trigger fires again later.
    EscalationQueueFull {
        /// The queue's capacity.
        capacity: usize,
    },
}

impl fmt::Display for RefuseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefuseReason::NoPlan { strategies } => {
                write!(f, "no strategy produced a plan (asked: {})", strategies.join(", "))
            }
            RefuseReason::NotWorthIt { strategy, target_site, benefit_per_hour, cost_per_hour } => write!(
                f,
                "not worth it: the best plan ({strategy} to {target_site}) gains {benefit_per_hour:.6} per hour \
                 but costs {cost_per_hour:.6} per hour"
            ),
            RefuseReason::EscalationQueueFull { capacity } => {
                write!(f, "the escalation queue is full ({capacity} pending plans)")
            }
        }
    }
}

/// Why a candidate waits: the anti-flapping rules and operator pins.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum HoldReason {
    /// An operator pinned the view: never move it.
    PinnedNever,
    /// An operator pinned the view at a site; no plan targets it.
    PinnedAt {
        /// The site it is kept at.
        site: Urn,
    },
    /// The benefit exceeds the cost, but not by the hysteresis factor.
    Hysteresis {
        /// Benefit, cost units per hour.
        benefit_per_hour: f64,
        /// Cost, cost units per hour.
        cost_per_hour: f64,
        /// The required factor.
        factor: f64,
    },
    /// A migration of this view was decided recently.
    Cooldown {
        /// Milliseconds until the cooldown ends.
        remaining_ms: u64,
    },
    /// The view's replica was placed too recently to move again.
    MinResidence {
        /// Where the replica is.
        site: Urn,
        /// Milliseconds until it may move.
        remaining_ms: u64,
    },
    /// A plan for this view already waits for a person.
    AlreadyPending {
        /// Its escalation id.
        escalation: u64,
    },
}

impl fmt::Display for HoldReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HoldReason::PinnedNever => write!(f, "pinned by an operator: never move this view"),
            HoldReason::PinnedAt { site } => {
                write!(f, "pinned by an operator at {site}: no plan may move it elsewhere")
            }
            HoldReason::Hysteresis { benefit_per_hour, cost_per_hour, factor } => write!(
                f,
                "hysteresis: benefit {benefit_per_hour:.6} per hour does not exceed {factor} × cost {cost_per_hour:.6} per hour"
            ),
            HoldReason::Cooldown { remaining_ms } => {
                write!(f, "cooldown: a migration of this view was decided recently ({remaining_ms} ms left)")
            }
            HoldReason::MinResidence { site, remaining_ms } => write!(
                f,
                "minimum residence: the replica at {site} was placed recently ({remaining_ms} ms before it may move)"
            ),
            HoldReason::AlreadyPending { escalation } => {
                write!(f, "a plan for this view already waits for approval (escalation {escalation})")
            }
        }
    }
}

/// What to do with a candidate.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", tag = "decision")]
pub enum Decision {
    /// Run this plan now (confidence inside the interval, benefit above cost).
    Execute {
        /// The plan.
        plan: MigrationPlan,
    },
    /// Ask a person. `escalation` is the queue id once the manager queued it.
    Escalate {
        /// The plan proposed.
        plan: MigrationPlan,
        /// Why it needs a person.
        reason: EscalationReason,
        /// The id in the [`EscalationQueue`](super::EscalationQueue), set by the manager.
        escalation: Option<u64>,
    },
    /// Do not move the view.
    Refuse {
        /// Why.
        reason: RefuseReason,
    },
    /// Not now (anti-flapping or a pin).
    Hold {
        /// Why.
        reason: HoldReason,
    },
}

impl Decision {
    /// A one-word name: `execute`, `escalate`, `refuse` or `hold`.
    pub fn name(&self) -> &'static str {
        match self {
            Decision::Execute { .. } => "execute",
            Decision::Escalate { .. } => "escalate",
            Decision::Refuse { .. } => "refuse",
            Decision::Hold { .. } => "hold",
        }
    }
}

/// Chooses among the plans of all strategies (the paper's confidence elasticity).
///
/// 1. no plan → refuse;
/// 2. the plans whose benefit exceeds their cost are *worthwhile*; none → refuse,
///    naming the best-scoring plan's numbers;
/// 3. among worthwhile plans, those whose benefit also exceeds `hysteresis_factor` × cost
///    are *decisive*; none → hold (hysteresis);
/// 4. the decisive plans whose confidence is inside the interval run: the best score
///    wins (ties: higher confidence, then strategy name) → execute; this is the paper's
///    "next strategy with a higher confidence" before a person is asked;
/// 5. otherwise the best-scoring decisive plan is escalated to a person.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MigrationDecider {
    /// Range of confidence that runs without a person.
    pub interval: ConfidenceInterval,
    /// How many times the cost the benefit must be for a move (≥ 1). Default 1.5.
    pub hysteresis_factor: f64,
}

impl MigrationDecider {
    /// The default hysteresis factor.
    pub const DEFAULT_HYSTERESIS_FACTOR: f64 = 1.5;

    /// A decider with this interval and hysteresis factor (raised to at least 1).
    pub fn new(interval: ConfidenceInterval, hysteresis_factor: f64) -> MigrationDecider {
        let hysteresis_factor = if hysteresis_factor.is_finite() { hysteresis_factor.max(1.0) } else { 1.0 };
        MigrationDecider { interval, hysteresis_factor }
    }

    /// Decides among `plans` (from every strategy asked, named in `strategies`).
    pub fn decide(&self, plans: &[MigrationPlan], strategies: &[String]) -> Decision {
        let by_rank = |a: &&MigrationPlan, b: &&MigrationPlan| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| b.confidence.total_cmp(&a.confidence))
                .then_with(|| a.strategy.cmp(&b.strategy))
        };
        let mut ranked: Vec<&MigrationPlan> = plans.iter().collect();
        ranked.sort_by(by_rank);
        let Some(best) = ranked.first() else {
            return Decision::Refuse { reason: RefuseReason::NoPlan { strategies: strategies.to_vec() } };
        };
        let worthwhile: Vec<&MigrationPlan> = ranked.iter().copied().filter(|p| p.is_worth_it()).collect();
        if worthwhile.is_empty() {
            return Decision::Refuse {
                reason: RefuseReason::NotWorthIt {
                    strategy: best.strategy.clone(),
                    target_site: best.target_site.clone(),
                    benefit_per_hour: best.benefit_per_hour,
                    cost_per_hour: best.cost_per_hour,
                },
            };
        }
        let decisive: Vec<&MigrationPlan> = worthwhile
            .iter()
            .copied()
            .filter(|p| p.benefit_per_hour > self.hysteresis_factor * p.cost_per_hour)
            .collect();
        let Some(best_decisive) = decisive.first() else {
            let p = worthwhile[0];
            return Decision::Hold {
                reason: HoldReason::Hysteresis {
                    benefit_per_hour: p.benefit_per_hour,
                    cost_per_hour: p.cost_per_hour,
                    factor: self.hysteresis_factor,
                },
            };
        };
        if let Some(plan) = decisive.iter().find(|p| self.interval.contains(p.confidence)) {
            return Decision::Execute { plan: (*plan).clone() };
        }
        Decision::Escalate {
            plan: (*best_decisive).clone(),
            reason: EscalationReason::OutsideInterval { confidence: best_decisive.confidence, interval: self.interval },
            escalation: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(strategy: &str, benefit: f64, cost: f64, confidence: f64) -> MigrationPlan {
        let site = Urn::parse("urn:city:site:edge-1").unwrap();
        MigrationPlan {
            strategy: strategy.into(),
            unit: Urn::parse("urn:city:u").unwrap(),
            view: Urn::parse("urn:city:u:v").unwrap(),
            origin_site: Urn::parse("urn:city:site:cloud").unwrap(),
            target_site: site,
            transfer_bytes: 1,
            transfer_seconds: 0.0,
            transfer_cost: 0.0,
            storage_cost_per_month: 0.0,
            update_cost_per_period: 0.0,
            expected_latency_gain_ms: 100.0,
            benefit_per_hour: benefit,
            cost_per_hour: cost,
            score: benefit - cost,
            confidence,
            explanation: Vec::new(),
        }
    }

    fn decider() -> MigrationDecider {
        MigrationDecider::new(ConfidenceInterval { low: 0.8, high: 1.0 }, 1.5)
    }

    #[test]
    fn the_next_strategy_with_a_confidence_inside_the_interval_runs_before_a_person_is_asked() {
        let unsure = plan("bold", 10.0, 1.0, 0.5);
        let sure = plan("careful", 5.0, 1.0, 0.9);
        let Decision::Execute { plan } = decider().decide(&[unsure.clone(), sure], &[]) else { panic!() };
        assert_eq!(plan.strategy, "careful");
        let Decision::Escalate { plan, escalation: None, .. } = decider().decide(&[unsure], &[]) else { panic!() };
        assert_eq!(plan.strategy, "bold");
    }

    #[test]
    fn the_best_score_wins_among_confident_plans_and_ties_go_to_confidence() {
        let plans = [plan("a", 5.0, 1.0, 0.95), plan("b", 9.0, 1.0, 0.85), plan("c", 9.0, 1.0, 0.9)];
        let Decision::Execute { plan } = decider().decide(&plans, &[]) else { panic!() };
        assert_eq!(plan.strategy, "c");
    }

    #[test]
    fn a_confident_plan_that_is_not_decisive_is_held_and_one_not_worth_it_refused() {
        let held = decider().decide(&[plan("a", 1.4, 1.0, 0.9)], &[]);
        assert_eq!(held.name(), "hold");
        let refused = decider().decide(&[plan("a", 1.0, 1.0, 0.9)], &[]);
        assert_eq!(refused.name(), "refuse", "benefit equal to cost is not worth it");
        assert_eq!(MigrationDecider::new(ConfidenceInterval { low: 0.0, high: 1.0 }, 0.5).hysteresis_factor, 1.0);
    }
}
