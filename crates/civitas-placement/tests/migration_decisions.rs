//! What the migration manager decides for typical views, and the escalation round trip.

#[path = "support/migration.rs"]
mod support;

use civitas_placement::migration::{
    Decision, EscalationReason, HoldReason, MigrationConfig, MigrationEventKind, RefuseReason,
};
use support::*;

#[test]
fn a_hot_slow_rarely_updated_view_is_executed() {
    let mut m = manager(MigrationConfig::default());
    let decision = m.consider(hot_input(), t(1_000));
    let Decision::Execute { plan } = decision else { panic!("expected execute, got {decision:?}") };
    assert_eq!(plan.target_site, urn(EDGE));
    assert!(plan.confidence >= 0.8);
    assert!(m.pending().is_empty());
    let kinds: Vec<&str> = m
        .events(None)
        .iter()
        .map(|e| match e.kind {
            MigrationEventKind::CandidateReceived { .. } => "candidate",
            MigrationEventKind::Planned { .. } => "planned",
            MigrationEventKind::Execute { .. } => "execute",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["candidate", "planned", "execute"]);
}

#[test]
fn a_cold_view_is_refused() {
    let mut m = manager(MigrationConfig::default());
    // 0.001 requests/s: benefit 200 ms × 0.001 × 3600 × 1e-6 = 0.00072 per hour < cost 0.0024.
    let decision = m.consider(input(rarely_updated(), analysis(0.001, 200.0)), t(1_000));
    let Decision::Refuse { reason: RefuseReason::NotWorthIt { benefit_per_hour, cost_per_hour, .. } } = decision else {
        panic!("expected refuse, got {decision:?}")
    };
    assert!(close(benefit_per_hour, 0.00072), "{benefit_per_hour}");
    assert!(cost_per_hour > benefit_per_hour);
}

#[test]
fn a_fast_view_is_refused() {
    let mut m = manager(MigrationConfig::default());
    let mut fast = input(rarely_updated(), analysis(10.0, 200.0));
    fast.links[0].latency_ms = 3.0; // the origin is already close: 6 ms to gain
    let decision = m.consider(fast, t(1_000));
    let Decision::Refuse { reason } = &decision else { panic!("expected refuse, got {decision:?}") };
    assert!(matches!(reason, RefuseReason::NotWorthIt { benefit_per_hour, .. } if *benefit_per_hour == 0.0));
    assert!(reason.to_string().starts_with("not worth it"), "{reason}");
}

#[test]
fn a_big_often_updated_view_whose_updates_cost_more_than_its_benefit_is_refused() {
    let mut m = manager(MigrationConfig::default());
    // 10 GB, half of it changing every minute: 5 GB × 0.05 × 60 = 15 per hour > 7.2.
    let big = input(view(10_000_000_000, "minutely", 1, 50.0), analysis(10.0, 200.0));
    let decision = m.consider(big, t(1_000));
    let Decision::Refuse { reason: RefuseReason::NotWorthIt { benefit_per_hour, cost_per_hour, .. } } = decision else {
        panic!("expected refuse, got {decision:?}")
    };
    assert!(close(benefit_per_hour, 7.2));
    assert!(cost_per_hour > 15.0 && cost_per_hour < 15.1, "{cost_per_hour}");
}

#[test]
fn no_plan_is_refused_naming_the_strategies() {
    let mut m = manager(MigrationConfig::default());
    let mut input = hot_input();
    input.candidate.client_site = None;
    let decision = m.consider(input, t(1_000));
    assert_eq!(
        decision,
        Decision::Refuse { reason: RefuseReason::NoPlan { strategies: vec!["http-snapshot".into()] } }
    );
    assert!(m.events(None).iter().any(|e| matches!(e.kind, MigrationEventKind::NoPlan { .. })));
}

fn escalate(m: &mut civitas_placement::migration::MigrationManager) -> u64 {
    // 5 samples: confidence ≈ 0.44, below 0.8..1.0.
    let decision = m.consider(input(rarely_updated(), analysis(10.0, 5.0)), t(1_000));
    let Decision::Escalate { plan, reason: EscalationReason::OutsideInterval { confidence, .. }, escalation } =
        decision
    else {
        panic!("expected escalate, got {decision:?}")
    };
    assert!(confidence < 0.8 && confidence == plan.confidence, "{confidence}");
    escalation.expect("queued")
}

#[test]
fn a_plan_below_the_interval_is_escalated_then_approved_for_execution() {
    let mut m = manager(MigrationConfig::default());
    let id = escalate(&mut m);
    assert_eq!(m.pending().len(), 1);
    assert_eq!(m.pending()[0].id, id);
    assert_eq!(m.pending()[0].plan.target_site, urn(EDGE));
    let plan = m.approve(id, t(2_000)).expect("approved");
    assert_eq!(plan.target_site, urn(EDGE));
    assert!(m.pending().is_empty());
    assert!(m.approve(id, t(2_000)).is_err(), "an answered plan is gone");
    let last = (*m.events(None).last().unwrap()).clone();
    assert!(matches!(last.kind, MigrationEventKind::Approved { escalation, .. } if escalation == id), "{last:?}");
}

#[test]
fn a_rejected_escalation_is_recorded_with_its_reason() {
    let mut m = manager(MigrationConfig::default());
    let id = escalate(&mut m);
    let rejected = m.reject(id, "edge-1 is being decommissioned", t(2_000)).expect("rejected");
    assert_eq!(rejected.id, id);
    assert!(m.pending().is_empty());
    let last = (*m.events(None).last().unwrap()).clone();
    assert_eq!(
        last.kind,
        MigrationEventKind::Rejected { escalation: id, reason: "edge-1 is being decommissioned".into() }
    );
    assert!(m.approve(id, t(3_000)).is_err());
}

#[test]
fn a_plan_above_a_narrow_interval_is_escalated_too() {
    let mut m = manager(MigrationConfig::default());
    let mut input = hot_input();
    input.candidate.confidence = civitas_placement::ConfidenceInterval { low: 0.5, high: 0.6 };
    assert_eq!(m.consider(input, t(1_000)).name(), "escalate");
}

#[test]
fn hysteresis_holds_a_plan_whose_benefit_barely_exceeds_its_cost() {
    let mut m = manager(MigrationConfig::default());
    // 0.004 requests/s: benefit 0.00288 per hour, cost 0.00243: 1.19 × cost < 1.5 × cost.
    let decision = m.consider(input(rarely_updated(), analysis(0.004, 200.0)), t(1_000));
    let Decision::Hold { reason: reason @ HoldReason::Hysteresis { factor, .. } } = &decision else {
        panic!("expected hold, got {decision:?}")
    };
    assert_eq!(*factor, 1.5);
    assert!(reason.to_string().starts_with("hysteresis"), "{reason}");
    // The same candidate with a factor of 1.1 passes hysteresis (and is escalated: a thin margin means low confidence).
    let mut m = manager(MigrationConfig { hysteresis_factor: 1.1, ..MigrationConfig::default() });
    let decision = m.consider(input(rarely_updated(), analysis(0.004, 200.0)), t(1_000));
    assert_eq!(decision.name(), "escalate", "{decision:?}");
}

#[test]
fn a_full_escalation_queue_refuses() {
    let mut m = manager(MigrationConfig { max_pending: 1, ..MigrationConfig::default() });
    escalate(&mut m);
    let mut other = input(rarely_updated(), analysis(10.0, 5.0));
    other.candidate.view = urn("urn:city:buildings:roofs");
    other.view.name = urn("urn:city:buildings:roofs");
    let decision = m.consider(other, t(1_500));
    assert_eq!(decision, Decision::Refuse { reason: RefuseReason::EscalationQueueFull { capacity: 1 } });
}
