//! The cost model and the `http-snapshot` planning model on hand-computed examples.

#[path = "support/migration.rs"]
mod support;

use civitas_model::Tier;
use civitas_placement::migration::{CostModel, MigrationStrategy, SnapshotStrategyModel, Usage};
use support::*;

#[test]
fn the_snapshot_plan_matches_the_hand_computed_numbers() {
    let plan = SnapshotStrategyModel::default().plan(&hot_input()).expect("a plan");
    assert_eq!(plan.strategy, "http-snapshot");
    assert_eq!(plan.target_site, urn(EDGE), "the client's own site is nearest (0 ms)");
    assert_eq!(plan.origin_site, urn(ORIGIN));
    // gain = 2 × (100 ms − 0 ms) = 200 ms; benefit = 200 × 10/s × 3600 s × 1e-6 = 7.2 per hour.
    assert!(close(plan.expected_latency_gain_ms, 200.0), "{}", plan.expected_latency_gain_ms);
    assert!(close(plan.benefit_per_hour, 7.2), "{}", plan.benefit_per_hour);
    // 1 GB over 80 Mbit/s = 100 s, at the link's 0.05 per GB.
    assert_eq!(plan.transfer_bytes, 1_000_000_000);
    assert!(close(plan.transfer_seconds, 100.0), "{}", plan.transfer_seconds);
    assert!(close(plan.transfer_cost, 0.05), "{}", plan.transfer_cost);
    // 1 GB × 0.1 per GB-month at edge-1.
    assert!(close(plan.storage_cost_per_month, 0.1), "{}", plan.storage_cost_per_month);
    // 1 GB × 10 % × 1 update per day × 0.05 per GB.
    assert!(close(plan.update_cost_per_period, 0.005), "{}", plan.update_cost_per_period);
    let cost = 0.05 / 24.0 + 0.1 / 730.5 + 0.005 / 24.0;
    assert!(close(plan.cost_per_hour, cost), "{} != {cost}", plan.cost_per_hour);
    assert!(close(plan.score, 7.2 - cost));
    // confidence = cbrt(evidence × stability × margin).
    let evidence = 200.0 / 250.0;
    let stability = (250.0 / 300.0 + (1.0 - 2.0 / 260.0)) / 2.0;
    let margin = (7.2 - cost) / (7.2 + cost);
    let confidence = f64::cbrt(evidence * stability * margin);
    assert!(close(plan.confidence, confidence), "{} != {confidence}", plan.confidence);
    assert!(plan.confidence > 0.9 && plan.confidence < 0.91, "{}", plan.confidence);
    assert_eq!(plan.explanation.len(), 5, "{:#?}", plan.explanation);
    assert!(plan.explanation[0].contains("urn:city:site:edge-1"), "{}", plan.explanation[0]);
}

#[test]
fn without_a_client_to_origin_link_the_gain_is_the_measured_p50_and_defaults_apply() {
    let mut input = hot_input();
    // Only the edge–fog link is known: no latency to the origin, no origin–edge bandwidth or price.
    input.links.retain(|l| l.from == urn(EDGE) && l.to == urn(FOG));
    let plan = SnapshotStrategyModel::default().plan(&input).expect("a plan");
    assert_eq!(plan.target_site, urn(EDGE));
    // gain = p50 250 ms − 2 × 0 ms.
    assert!(close(plan.expected_latency_gain_ms, 250.0), "{}", plan.expected_latency_gain_ms);
    assert!(close(plan.benefit_per_hour, 250.0 * 10.0 * 3600.0 * 1e-6));
    // Default bandwidth 100 Mbit/s: 80 s; the origin site's own egress price 0.09 per GB.
    assert!(close(plan.transfer_seconds, 80.0), "{}", plan.transfer_seconds);
    assert!(close(plan.transfer_cost, 0.09), "{}", plan.transfer_cost);
    assert!(close(plan.update_cost_per_period, 0.009), "{}", plan.update_cost_per_period);
}

#[test]
fn the_cost_model_weights_change_the_numbers() {
    let model =
        CostModel { value_per_ms: 2e-6, round_trip_factor: 1.0, amortization_hours: 1.0, ..CostModel::default() };
    let input = hot_input();
    let estimate = model
        .estimate(
            &input.view,
            1_000_000_000,
            Usage { rate_per_s: 10.0, p50_ms: None },
            &urn(EDGE),
            &input.origin_site,
            &input.targets[2],
            &input.links,
        )
        .unwrap();
    // gain = 1 × 100 ms; benefit = 100 × 10 × 3600 × 2e-6 = 7.2.
    assert!(close(estimate.expected_latency_gain_ms, 100.0));
    assert!(close(estimate.benefit_per_hour, 7.2));
    // the whole transfer in one hour.
    assert!(close(estimate.cost_per_hour, 0.05 + 0.1 / 730.5 + 0.005 / 24.0), "{}", estimate.cost_per_hour);
}

#[test]
fn a_gain_below_the_minimum_counts_as_none() {
    let mut input = hot_input();
    input.links[0].latency_ms = 4.0; // 2 × 4 ms = 8 ms < 10 ms
    let plan = SnapshotStrategyModel::default().plan(&input).unwrap();
    assert_eq!(plan.expected_latency_gain_ms, 0.0);
    assert_eq!(plan.benefit_per_hour, 0.0);
    assert_eq!(plan.confidence, 0.0, "no margin, no confidence");
    input.links[0].latency_ms = 5.0; // exactly 10 ms counts
    let plan = SnapshotStrategyModel::default().plan(&input).unwrap();
    assert!(close(plan.expected_latency_gain_ms, 10.0));
}

#[test]
fn constraints_steer_the_target_away_from_the_nearest_site() {
    let mut input = hot_input();
    input.constraints.required_capabilities = vec!["tee".into()];
    assert!(SnapshotStrategyModel::default().plan(&input).is_none(), "no site offers a TEE");
    input.targets[1].capabilities.push("tee".into());
    let plan = SnapshotStrategyModel::default().plan(&input).unwrap();
    assert_eq!(plan.target_site, urn(FOG));
    // gain = 2 × (100 − 10) ms.
    assert!(close(plan.expected_latency_gain_ms, 180.0));

    let mut input = hot_input();
    input.constraints.allowed_tiers = vec![Tier::Fog, Tier::Cloud];
    assert_eq!(SnapshotStrategyModel::default().plan(&input).unwrap().target_site, urn(FOG));
    input.constraints.allowed_jurisdictions = vec!["DE".into()];
    assert!(SnapshotStrategyModel::default().plan(&input).is_none(), "every site is in AT");
}

#[test]
fn no_plan_without_a_client_site_or_a_known_size() {
    let mut input = hot_input();
    input.candidate.client_site = None;
    assert!(SnapshotStrategyModel::default().plan(&input).is_none());

    let mut input = hot_input();
    input.view.size_bytes = None;
    let plan = SnapshotStrategyModel::default().plan(&input).unwrap();
    assert_eq!(plan.transfer_bytes, 20_000, "falls back to the measured mean response size");
    input.candidate.analysis.remove("size.mean");
    assert!(SnapshotStrategyModel::default().plan(&input).is_none());
}

#[test]
fn confidence_grows_with_evidence_and_stability() {
    let model = SnapshotStrategyModel::default();
    let few = model.plan(&input(rarely_updated(), analysis(10.0, 5.0))).unwrap().confidence;
    let many = model.plan(&input(rarely_updated(), analysis(10.0, 5000.0))).unwrap().confidence;
    assert!(few < 0.5 && many > 0.95, "{few} {many}");
    let mut unstable = analysis(10.0, 200.0);
    unstable.insert("response_time.p95".into(), 2500.0);
    unstable.insert("response_time.ewma".into(), 520.0);
    let shaky = model.plan(&input(rarely_updated(), unstable)).unwrap().confidence;
    let steady = model.plan(&hot_input()).unwrap().confidence;
    assert!(shaky < steady - 0.2, "{shaky} {steady}");
}

#[test]
fn cost_model_validation_names_the_field() {
    assert_eq!(CostModel::default().validate(), Ok(()));
    let bad = CostModel { amortization_hours: 0.0, ..CostModel::default() };
    assert!(bad.validate().unwrap_err().starts_with("amortization_hours"));
    let bad = CostModel { value_per_ms: f64::NAN, ..CostModel::default() };
    assert!(bad.validate().unwrap_err().starts_with("value_per_ms"));
    let bad = CostModel { default_update_fraction_percent: 150.0, ..CostModel::default() };
    assert!(bad.validate().unwrap_err().starts_with("default_update_fraction_percent"));
}

#[test]
fn objects_are_planned_by_object_copy_and_apis_by_the_snapshot() {
    use civitas_placement::migration::ObjectCopyStrategyModel;
    let api = hot_input();
    let mut file = hot_input();
    file.source_type = "file".into();
    assert!(SnapshotStrategyModel::default().plan(&api).is_some());
    assert!(ObjectCopyStrategyModel::default().plan(&api).is_none(), "an API is not an object");
    assert!(SnapshotStrategyModel::default().plan(&file).is_none(), "an object is not snapshotted");
    let plan = ObjectCopyStrategyModel::default().plan(&file).expect("a plan");
    assert_eq!(plan.strategy, "object-copy");
    let snapshot = SnapshotStrategyModel::default().plan(&api).unwrap();
    assert_eq!(plan.score, snapshot.score, "same costs and benefits, another copy mechanism");
}

#[test]
fn sql_units_are_planned_by_the_postgres_strategy_only() {
    use civitas_placement::migration::{ObjectCopyStrategyModel, PostgresStrategyModel};
    let api = hot_input();
    let mut sql = hot_input();
    sql.source_type = "sql:postgresql".into();
    assert!(PostgresStrategyModel::default().plan(&api).is_none(), "an API is not a SQL unit");
    assert!(SnapshotStrategyModel::default().plan(&sql).is_none(), "a SQL unit is not snapshotted over HTTP");
    assert!(ObjectCopyStrategyModel::default().plan(&sql).is_none(), "a SQL unit is not an object");
    let plan = PostgresStrategyModel::default().plan(&sql).expect("a plan");
    assert_eq!(plan.strategy, "postgres");
    assert_eq!(plan.score, SnapshotStrategyModel::default().plan(&api).unwrap().score);
}
