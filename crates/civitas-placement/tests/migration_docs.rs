//! docs/migration.md states the defaults the code has.

use civitas_placement::migration::{CostModel, MigrationConfig, SnapshotStrategyModel};

fn page() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/migration.md")).unwrap()
}

/// `(name, default)` from table rows whose first or second cell is a backticked name and
/// whose next cell is a number (an optional ` s` suffix for seconds).
fn documented_defaults(page: &str) -> Vec<(String, f64)> {
    let mut found = Vec::new();
    for line in page.lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        for pair in cells.windows(2) {
            let (name, default) = (pair[0], pair[1].trim_end_matches(" s"));
            if let (Some(name), Ok(default)) =
                (name.strip_prefix('`').and_then(|n| n.strip_suffix('`')), default.parse::<f64>())
            {
                found.push((name.to_string(), default));
                break;
            }
        }
    }
    found
}

#[test]
fn every_documented_default_is_the_code_default() {
    let cost = serde_json::to_value(CostModel::default()).unwrap();
    let config = serde_json::to_value(MigrationConfig::default()).unwrap();
    let documented = documented_defaults(&page());
    let mut checked = Vec::new();
    for (name, default) in &documented {
        let actual = cost.get(name).or_else(|| config.get(name)).unwrap_or_else(|| panic!("no setting {name}"));
        assert_eq!(actual.as_f64(), Some(*default), "{name}");
        checked.push(name.as_str());
    }
    for name in cost.as_object().unwrap().keys() {
        assert!(checked.contains(&name.as_str()), "docs/migration.md does not document {name}");
    }
    for name in ["hysteresis_factor", "cooldown", "min_residence", "escalation_ttl", "max_pending", "max_events"] {
        assert!(checked.contains(&name), "docs/migration.md does not document {name}");
    }
    assert!(page().contains(&format!(
        "evidence_half_samples default {}",
        SnapshotStrategyModel::default().evidence_half_samples
    )));
}
