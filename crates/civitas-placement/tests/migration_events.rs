//! The migration event log: bounded, ordered, grouped by consideration, serializable.

#[path = "support/migration.rs"]
mod support;

use civitas_placement::migration::{MigrationConfig, MigrationEventKind, MigrationEventLog};
use support::*;

#[test]
fn events_are_bounded_and_ordered() {
    let mut m =
        manager(MigrationConfig { max_events: 5, cooldown: std::time::Duration::ZERO, ..MigrationConfig::default() });
    for i in 0..4 {
        // Each consideration records candidate, plan and decision: 12 events, 5 kept.
        m.consider(hot_input(), t(i * 1000));
    }
    let events = m.events(None);
    assert_eq!(events.len(), 5);
    let ids: Vec<u64> = events.iter().map(|e| e.id).collect();
    assert_eq!(ids, [8, 9, 10, 11, 12]);
    assert!(events.windows(2).all(|w| w[0].at_unix_ms <= w[1].at_unix_ms));
    assert_eq!(m.events(Some(10)).iter().map(|e| e.id).collect::<Vec<_>>(), [11, 12]);
    assert!(m.events(Some(12)).is_empty());
    assert!(m.event(7).is_none(), "evicted");
    assert!(m.event(12).is_some());
}

#[test]
fn a_consideration_groups_its_events_and_explains_the_decision() {
    let mut m = manager(MigrationConfig::default());
    m.consider(input(rarely_updated(), analysis(0.001, 200.0)), t(0));
    let first = m.events(None)[0].id;
    let group = m.event_log().consideration(first);
    assert_eq!(group.len(), 3);
    assert!(matches!(group[0].kind, MigrationEventKind::CandidateReceived { .. }));
    let MigrationEventKind::Planned { plan } = &group[1].kind else { panic!("{:?}", group[1]) };
    assert!(plan.cost_per_hour > 0.0 && !plan.explanation.is_empty());
    let MigrationEventKind::Refused { reason } = &group[2].kind else { panic!("{:?}", group[2]) };
    assert!(reason.to_string().contains("not worth it"), "{reason}");
    assert!(group.iter().all(|e| e.view == urn(VIEW) && e.unit == urn(UNIT)));
}

#[test]
fn the_event_log_round_trips_through_json() {
    let mut m = manager(MigrationConfig::default());
    m.consider(hot_input(), t(0));
    m.consider(input(rarely_updated(), analysis(10.0, 5.0)), t(1));
    m.record_executed(&urn(VIEW), &urn(EDGE), t(2));
    let log = m.event_log().clone();
    let json = serde_json::to_string(&log).unwrap();
    let restored: MigrationEventLog = serde_json::from_str(&json).unwrap();
    assert_eq!(restored, log);
    let value = serde_json::to_value(m.events(None)[2]).unwrap();
    assert_eq!(value["kind"], "execute");
    assert_eq!(value["plan"]["strategy"], "http-snapshot");
    assert_eq!(value["consideration"], 1);
}

#[test]
fn the_log_keeps_at_least_one_event() {
    let mut log = MigrationEventLog::new(0);
    assert_eq!(log.capacity(), 1);
    log.record(&urn(UNIT), &urn(VIEW), None, MigrationEventKind::Executed { target_site: urn(EDGE) }, t(0));
    log.record(&urn(UNIT), &urn(VIEW), None, MigrationEventKind::Executed { target_site: urn(FOG) }, t(1));
    assert_eq!(log.len(), 1);
    assert_eq!(log.after(None)[0].id, 2);
}
