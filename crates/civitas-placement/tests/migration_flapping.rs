//! Anti-flapping: cooldown, minimum residence, pins and a pending plan each hold a move
//! and say why.

#[path = "support/migration.rs"]
mod support;

use std::time::Duration;

use civitas_placement::migration::{Decision, HoldReason, MigrationConfig, MigrationEventKind, Pin};
use support::*;

const MIN: u64 = 60_000;

#[test]
fn the_cooldown_holds_a_view_after_a_decision_then_releases_it() {
    let mut m = manager(MigrationConfig { cooldown: Duration::from_secs(600), ..MigrationConfig::default() });
    assert_eq!(m.consider(hot_input(), t(0)).name(), "execute");
    let decision = m.consider(hot_input(), t(5 * MIN));
    assert_eq!(decision, Decision::Hold { reason: HoldReason::Cooldown { remaining_ms: 5 * MIN } });
    let Decision::Hold { reason } = decision else { unreachable!() };
    assert!(reason.to_string().starts_with("cooldown"), "{reason}");
    let last = (*m.events(None).last().unwrap()).clone();
    assert!(matches!(last.kind, MigrationEventKind::Held { reason: HoldReason::Cooldown { .. } }));
    assert_eq!(m.consider(hot_input(), t(10 * MIN)).name(), "execute", "the cooldown is over");
}

#[test]
fn the_minimum_residence_holds_a_replica_where_it_was_placed() {
    let config = MigrationConfig {
        cooldown: Duration::ZERO,
        min_residence: Duration::from_secs(3600),
        ..MigrationConfig::default()
    };
    let mut m = manager(config);
    m.record_executed(&urn(VIEW), &urn(FOG), t(0));
    assert_eq!(m.guard().placement(&urn(VIEW)).unwrap().site, urn(FOG));
    let decision = m.consider(hot_input(), t(10 * MIN));
    assert_eq!(
        decision,
        Decision::Hold { reason: HoldReason::MinResidence { site: urn(FOG), remaining_ms: 50 * MIN } }
    );
    assert_eq!(m.consider(hot_input(), t(60 * MIN)).name(), "execute");
    let executed = m.events(None).into_iter().find(|e| matches!(e.kind, MigrationEventKind::Executed { .. })).unwrap();
    assert_eq!(executed.unit, urn(UNIT));
}

#[test]
fn record_executed_starts_the_cooldown_too() {
    let mut m = manager(MigrationConfig { min_residence: Duration::ZERO, ..MigrationConfig::default() });
    m.record_executed(&urn(VIEW), &urn(EDGE), t(0));
    assert!(matches!(m.consider(hot_input(), t(MIN)), Decision::Hold { reason: HoldReason::Cooldown { .. } }));
}

#[test]
fn a_never_pin_holds_the_view() {
    let mut m = manager(MigrationConfig::default());
    m.pin(urn(VIEW), Pin::Never);
    let decision = m.consider(hot_input(), t(0));
    assert_eq!(decision, Decision::Hold { reason: HoldReason::PinnedNever });
    assert_eq!(HoldReason::PinnedNever.to_string(), "pinned by an operator: never move this view");
    assert_eq!(m.unpin(&urn(VIEW)), Some(Pin::Never));
    assert_eq!(m.consider(hot_input(), t(0)).name(), "execute");
}

#[test]
fn a_keep_at_pin_allows_only_its_site() {
    let mut m = manager(MigrationConfig::default());
    m.pin(urn(VIEW), Pin::KeepAt(urn(ORIGIN)));
    let decision = m.consider(hot_input(), t(0));
    assert_eq!(decision, Decision::Hold { reason: HoldReason::PinnedAt { site: urn(ORIGIN) } });

    let mut m = manager(MigrationConfig::default());
    m.pin(urn(VIEW), Pin::KeepAt(urn(FOG)));
    let Decision::Execute { plan } = m.consider(hot_input(), t(0)) else { panic!("expected execute") };
    assert_eq!(plan.target_site, urn(FOG), "not the nearer edge-1");
}

#[test]
fn a_pending_plan_holds_further_candidates_for_its_view() {
    let mut m = manager(MigrationConfig { cooldown: Duration::ZERO, ..MigrationConfig::default() });
    let Decision::Escalate { escalation: Some(id), .. } =
        m.consider(input(rarely_updated(), analysis(10.0, 5.0)), t(0))
    else {
        panic!("expected escalate")
    };
    let decision = m.consider(hot_input(), t(1));
    assert_eq!(decision, Decision::Hold { reason: HoldReason::AlreadyPending { escalation: id } });
    assert_eq!(m.pending().len(), 1);
}
