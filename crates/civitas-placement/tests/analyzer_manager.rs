//! The Analyzer Manager driven by a fake clock: triggers, activation, status, events,
//! bounds.

mod support;

use std::time::Duration;

use civitas_placement::{
    AnalyzerConfig, ConfidenceInterval, MAX_TRIGGERS, SddError, SddEventKind, TriggerState, TriggerStatus,
};
use serde_json::json;
use support::*;

fn trigger_state(m: &civitas_placement::AnalyzerManager, now_ms: u64, view: &str) -> TriggerStatus {
    let status = m.status(t(now_ms));
    let v = status.views.iter().find(|v| v.view.local_name() == view).unwrap_or_else(|| panic!("no {view}"));
    v.triggers[0].clone()
}

#[test]
fn a_trigger_fires_at_its_threshold_only_after_its_minimum_samples() {
    let (m, bus, mut rx) = manager();
    m.activate(&request(&["response_time.p50 > 100ms min 5"], "0.8..1.0"), t(0)).unwrap();
    // Exactly at the threshold: `>` is never met, however many samples.
    for i in 0..10 {
        m.observe(&obs("at", None, t(i * 1000), 100, 10), t(i * 1000));
    }
    // Just above it: the fifth request is the first with enough samples.
    for i in 0..4 {
        m.observe(&obs("above", Some("urn:city:site:edge-1"), t(i * 1000), 101, 10), t(i * 1000));
        assert!(drain(&mut rx).is_empty(), "fired after {} samples", i + 1);
    }
    assert_eq!(trigger_state(&m, 3000, "above").state, TriggerState::Idle);
    m.observe(&obs("above", Some("urn:city:site:edge-1"), t(4000), 101, 20), t(4000));
    let fired = drain(&mut rx);
    assert_eq!(fired.len(), 1, "{fired:?}");
    let c = &fired[0];
    assert_eq!(c.unit, urn("urn:city:mobility"));
    assert_eq!(c.view, urn("urn:city:mobility:above"));
    assert_eq!(c.client_site, Some(urn("urn:city:site:edge-1")));
    assert_eq!(c.trigger, "response_time.p50 > 100ms min 5");
    assert_eq!(c.value, 101.0);
    assert_eq!(c.fired_at_unix_ms, T0_MS + 4000);
    assert_eq!(c.confidence, ConfidenceInterval { low: 0.8, high: 1.0 });
    assert_eq!(c.analysis["response_time.p50"], 101.0);
    assert_eq!(c.analysis["response_time.mean"], 101.0);
    assert_eq!(c.analysis["samples"], 5.0);
    assert_eq!(c.analysis["frequency.rate"], 5.0 / 60.0);
    assert_eq!(c.analysis["size.max"], 20.0);
    assert_eq!(c.analysis["size.mean"], 12.0);
    assert!(!c.analysis.contains_key("cost"));
    assert_eq!(bus.dropped(), 0);
    assert_eq!(trigger_state(&m, 4000, "above").state, TriggerState::Fired);
    assert_eq!(trigger_state(&m, 4000, "at").state, TriggerState::Idle);
}

#[test]
fn a_trigger_fires_only_after_its_hold_time_and_a_break_restarts_it() {
    let (m, _bus, mut rx) = manager();
    m.activate(&request(&["response_time.mean > 1s for 30s min 1"], "0.8..1.0"), t(0)).unwrap();
    m.observe(&obs("slow", None, t(1000), 2000, 0), t(1000));
    let s = trigger_state(&m, 1000, "slow");
    assert_eq!((s.state, s.since_unix_ms, s.value), (TriggerState::Holding, T0_MS + 1000, Some(2000.0)));
    m.tick(t(30_999));
    assert!(drain(&mut rx).is_empty(), "fired before its hold time");
    m.tick(t(31_000));
    let fired = drain(&mut rx);
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].fired_at_unix_ms, T0_MS + 31_000);

    // Another view: the condition breaks during the hold, so the hold starts over.
    m.observe(&obs("flaky", None, t(40_000), 2000, 0), t(40_000));
    m.observe(&obs("flaky", None, t(50_000), 1, 0), t(50_000)); // mean 1000.5 ms: still above
    m.observe(&obs("flaky", None, t(55_000), 1, 0), t(55_000)); // mean ~667 ms: broken
    assert_eq!(trigger_state(&m, 55_000, "flaky").state, TriggerState::Idle);
    m.observe(&obs("flaky", None, t(60_000), 5000, 0), t(60_000)); // mean ~1750 ms: holding again
    assert_eq!(trigger_state(&m, 60_000, "flaky").since_unix_ms, T0_MS + 60_000);
    m.tick(t(70_000)); // 30 s after the first slow request, but only 10 s into this hold
    assert!(drain(&mut rx).is_empty());
    m.tick(t(90_000));
    assert_eq!(drain(&mut rx).len(), 1);
}

#[test]
fn a_fired_trigger_stays_quiet_until_its_cooldown_then_fires_again() {
    let (m, _bus, mut rx) = manager();
    m.activate(&request(&["samples >= 1 min 1 cooldown 1m"], "0.5..1.0"), t(0)).unwrap();
    m.observe(&obs("hot", None, t(0), 5, 0), t(0));
    assert_eq!(drain(&mut rx).len(), 1);
    // The condition stays true at every request and every tick for a minute: no more.
    for s in 1..60 {
        m.observe(&obs("hot", None, t(s * 1000), 5, 0), t(s * 1000));
        m.tick(t(s * 1000 + 500));
    }
    m.tick(t(59_999));
    assert!(drain(&mut rx).is_empty(), "fired again inside the cooldown");
    let s = trigger_state(&m, 59_999, "hot");
    assert_eq!((s.state, s.since_unix_ms), (TriggerState::Fired, T0_MS));
    // The cooldown ends: the periodic pass re-arms it and, the condition still true, fires.
    m.tick(t(60_000));
    let fired = drain(&mut rx);
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].fired_at_unix_ms, T0_MS + 60_000);
    assert_eq!(fired[0].value, 59.0); // the request at 0 s has just left the window
    let events: Vec<_> = m.events(None).into_iter().map(|e| e.kind).collect();
    assert_eq!(events, vec![SddEventKind::Activated, SddEventKind::Fired, SddEventKind::Fired]);
}

#[test]
fn a_condition_that_goes_false_shows_cooldown_and_true_again_does_not_fire_before_it_ends() {
    let (m, _bus, mut rx) = manager_with(AnalyzerConfig { window: Duration::from_secs(10), ..Default::default() }, 8);
    m.activate(&request(&["response_time.p95 > 1s min 1 cooldown 1m"], "0.8..1.0"), t(0)).unwrap();
    m.observe(&obs("v", None, t(0), 3000, 0), t(0));
    assert_eq!(drain(&mut rx).len(), 1);
    // The slow sample leaves the window; fast ones keep coming.
    m.observe(&obs("v", None, t(10_000), 10, 0), t(10_000));
    let s = trigger_state(&m, 10_000, "v");
    assert_eq!((s.state, s.since_unix_ms, s.value), (TriggerState::Cooldown, T0_MS, Some(10.0)));
    // Slow again, inside the cooldown: still cooling down, nothing published.
    m.observe(&obs("v", None, t(20_000), 3000, 0), t(20_000));
    m.tick(t(30_000));
    assert_eq!(trigger_state(&m, 30_000, "v").state, TriggerState::Cooldown);
    assert!(drain(&mut rx).is_empty());
    // After the cooldown, re-armed: a slow request fires it again.
    m.observe(&obs("v", None, t(60_000), 3000, 0), t(60_000));
    assert_eq!(drain(&mut rx).len(), 1);
}

#[test]
fn deactivate_stops_firing_but_not_the_analyses() {
    let (m, _bus, mut rx) = manager();
    m.activate(&request(&["samples >= 1 min 1 cooldown 0s"], "0.8..1.0"), t(0)).unwrap();
    m.observe(&obs("v", None, t(0), 5, 0), t(0));
    assert_eq!(drain(&mut rx).len(), 1);
    let status = m.deactivate(t(1000));
    assert!(!status.active);
    assert_eq!(status.confidence, None);
    assert!(status.triggers.is_empty());
    for i in 1..20 {
        m.observe(&obs("v", None, t(i * 1000), 5, 0), t(i * 1000));
        m.tick(t(i * 1000));
    }
    assert!(drain(&mut rx).is_empty());
    let status = m.status(t(20_000));
    assert_eq!(status.views.len(), 1);
    assert_eq!(status.views[0].samples, 20);
    assert!(status.views[0].triggers.is_empty());
    assert_eq!(status.views[0].analysis["response_time.p50"], 5.0);
    // Idempotent: a second deactivate records nothing.
    m.deactivate(t(21_000));
    let kinds: Vec<_> = m.events(None).into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds, vec![SddEventKind::Activated, SddEventKind::Fired, SddEventKind::Deactivated]);
}

#[test]
fn activation_replaces_the_previous_one_and_resets_trigger_states() {
    let (m, _bus, mut rx) = manager();
    m.activate(&request(&["samples >= 1 min 1 cooldown 1h"], "0.8..1.0"), t(0)).unwrap();
    m.observe(&obs("v", None, t(0), 5, 0), t(0));
    assert_eq!(drain(&mut rx).len(), 1);
    // The same trigger activated again forgets its cooldown: the view, already past the
    // threshold, fires at activation.
    m.activate(&request(&["samples >= 1 min 1 cooldown 1h"], "0.8..1.0"), t(1000)).unwrap();
    let fired = drain(&mut rx);
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].fired_at_unix_ms, T0_MS + 1000);
    // A different activation: only its triggers and confidence count.
    let status = m.activate(&request(&["samples > 100", "size.max > 1KiB min 1"], "0.2..0.4"), t(2000)).unwrap();
    assert!(status.active);
    assert_eq!(status.triggers, vec!["samples > 100".to_string(), "size.max > 1KiB min 1".to_string()]);
    assert_eq!(status.confidence, Some(ConfidenceInterval { low: 0.2, high: 0.4 }));
    assert_eq!(status.views[0].triggers.len(), 2);
    assert!(status.views[0].triggers.iter().all(|s| s.state == TriggerState::Idle));
    assert!(drain(&mut rx).is_empty());
    m.observe(&obs("v", None, t(3000), 5, 2048), t(3000));
    let fired = drain(&mut rx);
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].trigger, "size.max > 1KiB min 1");
    assert_eq!(fired[0].confidence, ConfidenceInterval { low: 0.2, high: 0.4 });
    let activations = m.events(None).into_iter().filter(|e| e.kind == SddEventKind::Activated).count();
    assert_eq!(activations, 3);
}

#[test]
fn a_refused_activation_reports_the_first_bad_trigger_and_changes_nothing() {
    let (m, _bus, _rx) = manager();
    m.activate(&request(&["samples > 5"], "0.8..1.0"), t(0)).unwrap();

    let e = m.activate(&request(&["samples > 1", "response_tme.p50 > 3s", "also bad"], "0.8..1.0"), t(1)).unwrap_err();
    let SddError::InvalidTrigger { index, text, error } = &e else { panic!("{e:?}") };
    assert_eq!((*index, text.as_str(), error.column), (1, "response_tme.p50 > 3s", 1));
    assert_eq!(
        e.to_string(),
        "trigger 1 (\"response_tme.p50 > 3s\"): unknown field `response_tme.p50`, expected one of response_time.mean, response_time.p50, response_time.p95, response_time.ewma, size.mean, size.max, frequency.rate, samples or cost(<expression>) at column 1"
    );

    let e = m.activate(&request(&["response_time.p50 > 3 KB"], "0.8..1.0"), t(1)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "trigger 0 (\"response_time.p50 > 3 KB\"): `KB` is not a time unit for response_time.p50, expected ms, s, m or h at column 23"
    );

    let e = m.activate(&request(&["samples > 1"], "0.9..0.8"), t(1)).unwrap_err();
    assert!(matches!(e, SddError::InvalidConfidence(_)));
    assert_eq!(
        e.to_string(),
        "invalid confidence interval: confidence bounds must satisfy 0 <= low <= high <= 1, found 0.9..0.8"
    );

    let e = m.activate(&request(&[], "0.8..1.0"), t(1)).unwrap_err();
    assert!(matches!(e, SddError::NoTriggers));
    assert_eq!(e.to_string(), "an activation needs at least one trigger");

    let many = vec!["samples > 1"; MAX_TRIGGERS + 1];
    let e = m.activate(&request(&many, "0.8..1.0"), t(1)).unwrap_err();
    assert_eq!(e.to_string(), "trigger 32 (\"samples > 1\"): an activation has at most 32 triggers at column 1");

    let status = m.status(t(2));
    assert_eq!(status.triggers, vec!["samples > 5".to_string()]);
    assert_eq!(m.events(None).len(), 1);
}

#[test]
fn the_activation_request_is_the_documented_json() {
    let request: civitas_placement::ActivationRequest =
        serde_json::from_value(json!({"triggers": ["response_time.p50 > 3s"], "confidence": "0.8..1.0"})).unwrap();
    assert_eq!(request.triggers, vec!["response_time.p50 > 3s".to_string()]);
    let typo = serde_json::from_value::<civitas_placement::ActivationRequest>(
        json!({"trigger": ["response_time.p50 > 3s"], "confidence": "0.8..1.0"}),
    );
    assert!(typo.is_err());
}

#[test]
fn cost_function_triggers_fire_with_the_cost_in_the_analysis() {
    let (m, _bus, mut rx) = manager();
    m.activate(&request(&["cost(p50_ms * rate_per_s - 0.001 * mean_bytes) > 500 min 60"], "0.8..1.0"), t(0)).unwrap();
    // 60 requests of 600 ms and 100 kB in a minute: 600 · 1 − 100 = 500, not above 500.
    for i in 0..60 {
        m.observe(&obs("v", None, t(i * 1000), 600, 100_000), t(i * 1000));
    }
    assert!(drain(&mut rx).is_empty());
    // One more slow one: p50 stays 600, the rate is 61/60: 610 − 100 = 510.
    m.observe(&obs("v", None, t(59_500), 600, 100_000), t(59_500));
    let fired = drain(&mut rx);
    assert_eq!(fired.len(), 1);
    assert!((fired[0].value - 510.0).abs() < 1e-9, "{}", fired[0].value);
    assert_eq!(fired[0].analysis["cost"], fired[0].value);
    let s = trigger_state(&m, 59_500, "v");
    assert!((s.value.unwrap() - 510.0).abs() < 1e-9);
}

#[test]
fn a_full_bus_drops_and_counts_without_stopping_the_analyzers() {
    let (m, bus, mut rx) = manager_with(AnalyzerConfig::default(), 1);
    m.activate(&request(&["samples >= 1 min 1 cooldown 0s"], "0.8..1.0"), t(0)).unwrap();
    for i in 0..3 {
        m.observe(&obs("v", None, t(i), 5, 0), t(i));
    }
    assert_eq!(drain(&mut rx).len(), 1);
    assert_eq!(bus.dropped(), 2);
    // The event log still tells all three.
    assert_eq!(m.events(None).iter().filter(|e| e.kind == SddEventKind::Fired).count(), 3);
    assert_eq!(m.status(t(3)).views[0].samples, 3);
}

#[test]
fn client_sites_are_analysed_apart_and_no_site_is_a_key_of_its_own() {
    let (m, _bus, _rx) = manager();
    m.observe(&obs("v", Some("urn:city:site:edge-1"), t(0), 10, 0), t(0));
    m.observe(&obs("v", Some("urn:city:site:edge-2"), t(0), 20, 0), t(0));
    m.observe(&obs("v", None, t(0), 30, 0), t(0));
    m.observe(&obs("v", None, t(1), 50, 0), t(1));
    let status = m.status(t(2));
    assert!(!status.active);
    let rows: Vec<_> = status
        .views
        .iter()
        .map(|v| (v.client_site.as_ref().map(|s| s.to_string()), v.samples, v.analysis["response_time.mean"]))
        .collect();
    assert_eq!(
        rows,
        vec![
            (None, 2, 40.0),
            (Some("urn:city:site:edge-1".to_string()), 1, 10.0),
            (Some("urn:city:site:edge-2".to_string()), 1, 20.0),
        ]
    );
}

#[test]
fn status_and_events_serialize_as_documented() {
    let (m, _bus, _rx) = manager();
    m.activate(&request(&["samples >= 1 min 1"], "0.8..1.0"), t(0)).unwrap();
    m.observe(&obs("v", Some("urn:city:site:edge-1"), t(0), 250, 1000), t(0));
    let status = serde_json::to_value(m.status(t(0))).unwrap();
    assert_eq!(
        status,
        json!({
            "active": true,
            "confidence": {"low": 0.8, "high": 1.0},
            "triggers": ["samples >= 1 min 1"],
            "views": [{
                "unit": "urn:city:mobility",
                "view": "urn:city:mobility:v",
                "clientSite": "urn:city:site:edge-1",
                "samples": 1,
                "analysis": {
                    "frequency.rate": 1.0 / 60.0,
                    "response_time.ewma": 250.0,
                    "response_time.mean": 250.0,
                    "response_time.p50": 250.0,
                    "response_time.p95": 250.0,
                    "samples": 1.0,
                    "size.max": 1000.0,
                    "size.mean": 1000.0
                },
                "triggers": [{"trigger": "samples >= 1 min 1", "state": "fired", "since_unix_ms": T0_MS, "value": 1.0}]
            }]
        })
    );
    let events = serde_json::to_value(m.events(None)).unwrap();
    assert_eq!(
        events,
        json!([
            {"id": 1, "atUnixMs": T0_MS, "kind": "activated"},
            {"id": 2, "atUnixMs": T0_MS, "kind": "fired", "trigger": "samples >= 1 min 1",
             "unit": "urn:city:mobility", "view": "urn:city:mobility:v", "clientSite": "urn:city:site:edge-1", "value": 1.0}
        ])
    );
    let inactive = serde_json::to_value(m.deactivate(t(1))).unwrap();
    assert_eq!(inactive["active"], false);
    assert_eq!(inactive["confidence"], serde_json::Value::Null);
    assert_eq!(inactive["views"][0]["triggers"], json!([]));
}

#[test]
fn the_event_log_is_a_bounded_ring_with_increasing_ids() {
    let config = AnalyzerConfig { max_events: 3, ..AnalyzerConfig::default() };
    let (m, _bus, _rx) = manager_with(config, 64);
    for i in 0..5 {
        if i % 2 == 0 {
            m.activate(&request(&["samples > 1"], "0.8..1.0"), t(i)).unwrap();
        } else {
            m.deactivate(t(i));
        }
    }
    let ids: Vec<u64> = m.events(None).iter().map(|e| e.id).collect();
    assert_eq!(ids, vec![3, 4, 5]);
    let after: Vec<u64> = m.events(Some(3)).iter().map(|e| e.id).collect();
    assert_eq!(after, vec![4, 5]);
    assert!(m.events(Some(5)).is_empty());
    assert_eq!(m.events(Some(1)).len(), 3);
    assert_eq!(m.events(None)[2].at_unix_ms, T0_MS + 4);
}

#[test]
fn idle_views_are_evicted() {
    let config = AnalyzerConfig { idle_eviction: Duration::from_secs(10), ..AnalyzerConfig::default() };
    let (m, _bus, _rx) = manager_with(config, 64);
    m.observe(&obs("a", None, t(0), 1, 0), t(0));
    m.observe(&obs("b", None, t(5000), 1, 0), t(5000));
    m.tick(t(9_999));
    assert_eq!(m.tracked_views(), 2);
    m.tick(t(10_000));
    let views: Vec<_> = m.status(t(10_000)).views.iter().map(|v| v.view.local_name().to_string()).collect();
    assert_eq!(views, vec!["b".to_string()]);
    // A new view also sweeps the idle ones.
    m.observe(&obs("c", None, t(15_000), 1, 0), t(15_000));
    assert_eq!(m.tracked_views(), 1);
}

#[test]
fn the_number_of_views_is_bounded_evicting_the_least_recently_seen() {
    let config = AnalyzerConfig { max_keys: 3, ..AnalyzerConfig::default() };
    let (m, _bus, _rx) = manager_with(config, 64);
    for (i, site) in ["urn:city:site:a", "urn:city:site:b", "urn:city:site:c"].into_iter().enumerate() {
        m.observe(&obs("v", Some(site), t(i as u64), 1, 0), t(i as u64));
    }
    // `a` is requested again, so `b` is now the least recently seen.
    m.observe(&obs("v", Some("urn:city:site:a"), t(3), 1, 0), t(3));
    m.observe(&obs("v", Some("urn:city:site:d"), t(4), 1, 0), t(4));
    let sites: Vec<_> =
        m.status(t(5)).views.iter().map(|v| v.client_site.as_ref().unwrap().local_name().to_string()).collect();
    assert_eq!(sites, vec!["a", "c", "d"]);
    // A flood of client sites (the header is the client's word) cannot grow it.
    for i in 0..2000u64 {
        m.observe(&obs("v", Some(&format!("urn:city:site:s{i}")), t(10 + i), 1, 0), t(10 + i));
        assert!(m.tracked_views() <= 3);
    }
    assert_eq!(m.tracked_views(), 3);
}

#[test]
fn a_holding_trigger_goes_idle_when_its_samples_leave_the_window() {
    let config = AnalyzerConfig { window: Duration::from_secs(10), ..AnalyzerConfig::default() };
    let (m, _bus, mut rx) = manager_with(config, 64);
    m.activate(&request(&["response_time.p50 > 1s for 1m min 1"], "0.8..1.0"), t(0)).unwrap();
    m.observe(&obs("v", None, t(0), 5000, 0), t(0));
    assert_eq!(trigger_state(&m, 0, "v").state, TriggerState::Holding);
    m.tick(t(10_000));
    let s = trigger_state(&m, 10_000, "v");
    assert_eq!((s.state, s.since_unix_ms, s.value), (TriggerState::Idle, T0_MS + 10_000, None));
    m.tick(t(70_000));
    assert!(drain(&mut rx).is_empty());
}

#[test]
fn a_record_dated_in_the_future_counts_as_arriving_now() {
    let config = AnalyzerConfig { window: Duration::from_secs(10), ..AnalyzerConfig::default() };
    let (m, _bus, _rx) = manager_with(config, 64);
    m.observe(&obs("v", None, t(0), 10, 0), t(0));
    // A skewed proxy reports a request an hour ahead: it must not expire the present.
    m.observe(&obs("v", None, t(3_600_000), 30, 0), t(1000));
    let status = m.status(t(1000));
    assert_eq!(status.views[0].samples, 2);
    assert_eq!(status.views[0].analysis["response_time.mean"], 20.0);
    assert_eq!(status.views[0].analysis["response_time.ewma"], 14.0);
    assert!(format!("{m:?}").contains("views: 1"));
}

/// `obs` with a requested variant.
fn variant_obs(site: Option<&str>, at_ms: u64, variant: &str) -> civitas_model::Observation {
    let mut o = obs("v", site, t(at_ms), 5, 0);
    o.variant = Some(http::uri::PathAndQuery::try_from(variant).unwrap());
    o
}

#[test]
fn candidates_carry_the_most_requested_variants_across_client_sites() {
    let (m, _bus, mut rx) = manager();
    let (edge1, edge2) = (Some("urn:city:site:edge-1"), Some("urn:city:site:edge-2"));
    for (site, variant, n) in [(edge1, "/a", 3), (edge1, "/", 2), (edge2, "/b?year=2017", 4), (edge2, "/a", 1)] {
        for _ in 0..n {
            m.observe(&variant_obs(site, 0, variant), t(0));
        }
    }
    // An observation without a variant (an older stand-alone proxy) counts for nothing.
    m.observe(&obs("v", edge2, t(0), 5, 0), t(0));
    m.activate(&request(&["samples >= 1 min 1"], "0.8..1.0"), t(1)).unwrap();
    m.observe(&variant_obs(edge1, 2, "/a"), t(2));
    let fired = drain(&mut rx);
    let edge1_candidate = fired.iter().find(|c| c.client_site == Some(urn("urn:city:site:edge-1"))).unwrap();
    assert_eq!(edge1_candidate.variants, ["/a", "/b?year=2017", "/"], "by count across sites, most first");
    let json = serde_json::to_value(edge1_candidate).unwrap();
    assert_eq!(json["variants"], json!(["/a", "/b?year=2017", "/"]));
    // The status shows them for every client site of the view.
    let status = serde_json::to_value(m.status(t(2))).unwrap();
    for view in status["views"].as_array().unwrap() {
        assert_eq!(view["topVariants"], json!(["/a", "/b?year=2017", "/"]), "{view}");
    }
}

#[test]
fn variants_per_view_are_bounded_evicting_the_least_counted_oldest_first() {
    assert_eq!(civitas_placement::MAX_VARIANTS_PER_VIEW, 32);
    let (m, _bus, mut rx) = manager();
    for _ in 0..3 {
        m.observe(&variant_obs(None, 0, "/hot"), t(0));
    }
    // `/hot` and `/v0`..`/v30` fill the 32 places; `/v31`..`/v39` evict `/v0`..`/v8`.
    for i in 0..40 {
        m.observe(&variant_obs(None, 0, &format!("/v{i}")), t(0));
    }
    m.activate(&request(&["samples >= 1 min 1"], "0.8..1.0"), t(1)).unwrap();
    m.observe(&variant_obs(None, 2, "/hot"), t(2));
    let fired = drain(&mut rx);
    let variants = &fired[0].variants;
    assert_eq!(variants.len(), 32, "{variants:?}");
    assert_eq!(variants[0], "/hot");
    for i in 0..9 {
        assert!(!variants.contains(&format!("/v{i}")), "/v{i} should have been evicted: {variants:?}");
    }
    for i in 9..40 {
        assert!(variants.contains(&format!("/v{i}")), "/v{i} missing: {variants:?}");
    }
}
