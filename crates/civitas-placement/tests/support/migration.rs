//! Fixtures shared by the `migration_*` tests (included with `#[path]`; on its own it
//! has no tests).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use civitas_model::{Header, Period, Prices, Site, SiteLink, Tier, UpdateFrequency, Urn, View};
use civitas_placement::migration::{
    MigrationConfig, MigrationManager, PlanInput, SnapshotStrategyModel, TargetConstraints,
};
use civitas_placement::{ConfidenceInterval, MigrationCandidate};

pub const UNIT: &str = "urn:city:buildings";
pub const VIEW: &str = "urn:city:buildings:blocks";
pub const ORIGIN: &str = "urn:city:site:cloud-far";
pub const EDGE: &str = "urn:city:site:edge-1";
pub const FOG: &str = "urn:city:site:fog-1";

pub fn urn(s: &str) -> Urn {
    Urn::parse(s).unwrap()
}

pub fn t(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

pub fn site(name: &str, tier: Tier, storage_gb_month: Option<f64>, egress_gb: Option<f64>) -> Site {
    Site {
        header: Header { name: urn(name), version: "1".into(), creation_date: None, last_update: None },
        tier,
        region: "vienna".into(),
        jurisdiction: Some("AT".into()),
        provider: None,
        capabilities: Vec::new(),
        capacity: Default::default(),
        prices: Prices { currency: Some("EUR".into()), storage_gb_month, egress_gb, ..Default::default() },
    }
}

pub fn site_link(from: &str, to: &str, latency_ms: f64, bandwidth_mbps: Option<f64>, egress: Option<f64>) -> SiteLink {
    SiteLink {
        header: Header {
            name: urn(&format!("{from}-{}", urn(to).local_name())),
            version: "1".into(),
            creation_date: None,
            last_update: None,
        },
        from: urn(from),
        to: urn(to),
        latency_ms,
        bandwidth_mbps,
        egress_price_per_gb: egress,
        bidirectional: true,
    }
}

/// A view of `size_bytes` updated `times` per `period` changing `fraction_percent`.
pub fn view(size_bytes: u64, period: &str, times: u32, fraction_percent: f64) -> View {
    View {
        name: urn(VIEW),
        link: "/blocks/".into(),
        update_frequency: Some(UpdateFrequency {
            period: Period::parse(period).unwrap(),
            times,
            fraction_percent: Some(fraction_percent),
            update_time_seconds: None,
        }),
        size_bytes: Some(size_bytes),
        security_constraints: Vec::new(),
        data_instances: Vec::new(),
    }
}

/// Analysis of a steady, slow view: p50 250 ms, p95 300 ms, mean 260 ms, ewma 258 ms.
pub fn analysis(rate_per_s: f64, samples: f64) -> BTreeMap<String, f64> {
    BTreeMap::from([
        ("response_time.p50".to_string(), 250.0),
        ("response_time.p95".to_string(), 300.0),
        ("response_time.mean".to_string(), 260.0),
        ("response_time.ewma".to_string(), 258.0),
        ("frequency.rate".to_string(), rate_per_s),
        ("size.mean".to_string(), 20_000.0),
        ("samples".to_string(), samples),
    ])
}

pub fn candidate(analysis: BTreeMap<String, f64>) -> MigrationCandidate {
    MigrationCandidate {
        unit: urn(UNIT),
        view: urn(VIEW),
        client_site: Some(urn(EDGE)),
        trigger: "response_time.p50 > 200ms".into(),
        value: analysis.get("response_time.p50").copied().unwrap_or(0.0),
        analysis,
        fired_at_unix_ms: 0,
        variants: Vec::new(),
        confidence: ConfidenceInterval { low: 0.8, high: 1.0 },
    }
}

/// The reference world: clients at `edge-1`, the origin at `cloud-far` 100 ms away over an
/// 80 Mbit/s link at 0.05 per GB, `fog-1` 10 ms from the clients. Storage at edge-1 costs
/// 0.1 per GB and month, at fog-1 0.05.
pub fn input(view: View, analysis: BTreeMap<String, f64>) -> PlanInput {
    PlanInput {
        source_type: "rest".into(),
        candidate: candidate(analysis),
        view,
        origin_site: site(ORIGIN, Tier::Cloud, Some(0.02), Some(0.09)),
        targets: vec![
            site(ORIGIN, Tier::Cloud, Some(0.02), Some(0.09)),
            site(FOG, Tier::Fog, Some(0.05), None),
            site(EDGE, Tier::Edge, Some(0.1), None),
        ],
        links: vec![
            site_link(EDGE, ORIGIN, 100.0, Some(80.0), Some(0.05)),
            site_link(FOG, ORIGIN, 90.0, Some(80.0), Some(0.05)),
            site_link(EDGE, FOG, 10.0, Some(1000.0), None),
        ],
        constraints: TargetConstraints::default(),
    }
}

/// 1 GB, changing 10 % once a day.
pub fn rarely_updated() -> View {
    view(1_000_000_000, "daily", 1, 10.0)
}

/// A hot (10 requests/s), slow, rarely updated view with plenty of evidence (200 samples).
pub fn hot_input() -> PlanInput {
    input(rarely_updated(), analysis(10.0, 200.0))
}

pub fn manager(config: MigrationConfig) -> MigrationManager {
    MigrationManager::with_snapshot_strategy(config, SnapshotStrategyModel::default())
}

pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}
