//! The escalation queue: expiry, stable ids, serde round trips.

#[path = "support/migration.rs"]
mod support;

use std::time::Duration;

use civitas_placement::ConfidenceInterval;
use civitas_placement::migration::{
    Decision, EscalationError, EscalationQueue, EscalationReason, MigrationConfig, MigrationEventKind,
    MigrationStrategy, SnapshotStrategyModel,
};
use support::*;

fn reason() -> EscalationReason {
    EscalationReason::OutsideInterval { confidence: 0.4, interval: ConfidenceInterval { low: 0.8, high: 1.0 } }
}

fn plan() -> civitas_placement::migration::MigrationPlan {
    SnapshotStrategyModel::default().plan(&hot_input()).unwrap()
}

#[test]
fn a_pending_plan_expires_after_its_ttl() {
    let mut queue = EscalationQueue::new(Duration::from_secs(3600), 10);
    let id = queue.push(plan(), reason(), t(1_000)).unwrap();
    assert_eq!(queue.get(id).unwrap().expires_at_unix_ms, 3_601_000);
    assert!(queue.expire(t(3_600_999)).is_empty());
    assert_eq!(queue.len(), 1);
    let expired = queue.expire(t(3_601_000));
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].id, id);
    assert!(queue.is_empty());
}

#[test]
fn approving_an_expired_plan_fails_and_removes_it() {
    let mut queue = EscalationQueue::new(Duration::from_secs(60), 10);
    let id = queue.push(plan(), reason(), t(0)).unwrap();
    assert_eq!(queue.approve(id, t(60_000)), Err(EscalationError::Expired { id, expired_at_unix_ms: 60_000 }));
    assert_eq!(queue.approve(id, t(60_000)), Err(EscalationError::NotFound(id)));
    let id = queue.push(plan(), reason(), t(0)).unwrap();
    assert_eq!(queue.approve(id, t(59_999)).unwrap().id, id);
}

#[test]
fn the_manager_records_expiry_and_refuses_late_answers() {
    let mut m = manager(MigrationConfig { escalation_ttl: Duration::from_secs(60), ..MigrationConfig::default() });
    let Decision::Escalate { escalation: Some(id), .. } =
        m.consider(input(rarely_updated(), analysis(10.0, 5.0)), t(0))
    else {
        panic!("expected escalate")
    };
    assert!(matches!(m.approve(id, t(61_000)), Err(EscalationError::Expired { .. })));
    let last = (*m.events(None).last().unwrap()).clone();
    assert_eq!(last.kind, MigrationEventKind::Expired { escalation: id });
    assert!(m.pending().is_empty());

    // Expired by the passage of time alone, noticed on the next candidate.
    let mut m = manager(MigrationConfig {
        escalation_ttl: Duration::from_secs(60),
        cooldown: Duration::ZERO,
        ..MigrationConfig::default()
    });
    let Decision::Escalate { escalation: Some(first), .. } =
        m.consider(input(rarely_updated(), analysis(10.0, 5.0)), t(0))
    else {
        panic!("expected escalate")
    };
    let Decision::Escalate { escalation: Some(second), .. } =
        m.consider(input(rarely_updated(), analysis(10.0, 5.0)), t(60_000))
    else {
        panic!("expected a fresh escalation once the first expired")
    };
    assert!(second > first);
    assert!(m.events(None).iter().any(|e| e.kind == MigrationEventKind::Expired { escalation: first }));
    assert_eq!(m.pending().len(), 1);
}

#[test]
fn ids_are_stable_and_never_reused_across_a_serde_round_trip() {
    let mut queue = EscalationQueue::new(Duration::from_secs(3600), 10);
    let a = queue.push(plan(), reason(), t(0)).unwrap();
    let b = queue.push(plan(), reason(), t(1)).unwrap();
    assert_eq!((a, b), (1, 2));
    queue.reject(a, "no", t(2)).unwrap();
    let json = serde_json::to_string(&queue).unwrap();
    let mut restored: EscalationQueue = serde_json::from_str(&json).unwrap();
    assert_eq!(restored, queue);
    assert_eq!(restored.pending().iter().map(|p| p.id).collect::<Vec<_>>(), [b]);
    assert_eq!(restored.push(plan(), reason(), t(3)), Some(3));
    let value = serde_json::to_value(&queue).unwrap();
    assert_eq!(value["pending"]["2"]["plan"]["targetSite"], "urn:city:site:edge-1");
    assert_eq!(value["pending"]["2"]["reason"]["kind"], "outsideInterval");
}

#[test]
fn the_queue_is_bounded() {
    let mut queue = EscalationQueue::new(Duration::from_secs(3600), 2);
    assert!(queue.push(plan(), reason(), t(0)).is_some());
    assert!(queue.push(plan(), reason(), t(0)).is_some());
    assert_eq!(queue.push(plan(), reason(), t(0)), None);
    assert_eq!(queue.len(), 2);
}
