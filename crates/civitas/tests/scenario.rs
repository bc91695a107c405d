//! `civitas scenario one --json` end to end, at its default scale (two one-minute phases plus
//! a short floor phase; about three minutes): real nodes as child processes, emulated links,
//! synthetic URBEM services and clients. It asserts only what holds whatever the machine's
//! speed: which views migrate, that the migrated request types get faster, that no client
//! request failed, and the report's shape. No timing bounds.
//!
//! `CIVITAS_SCENARIO_PHASE_SECONDS=N` shortens both phases (at least 5 s; below about 40 s
//! the copies may not finish within the active phase on a slow machine).

use std::process::Command;

use serde_json::Value;

#[test]
fn scenario_one_moves_the_slow_views_and_not_mobility_without_a_failed_request() {
    let out = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_civitas"))
        .args(["scenario", "one", "--json", "--out"])
        .arg(out.path())
        .output()
        .expect("run civitas scenario one");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let logs = || {
        ["vienna", "melbourne"]
            .iter()
            .map(|c| {
                let log = std::fs::read_to_string(out.path().join(format!("logs/node-{c}.log"))).unwrap_or_default();
                format!("--- node {c} ---\n{log}")
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(output.status.success(), "civitas scenario one failed:\n{stderr}\n{}", logs());
    let report: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", String::from_utf8_lossy(&output.stdout)));

    // The documented shape.
    let keys: Vec<&str> = report.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["scenario", "request_types", "migration_seconds", "remote_bytes"], "{report:#}");
    assert_eq!(report["scenario"], "one");
    assert!(report["remote_bytes"]["before"].as_u64().unwrap() > 0, "{report:#}");
    assert!(report["remote_bytes"]["after"].is_u64(), "{report:#}");
    assert!(report["migration_seconds"].as_f64().is_some_and(|s| s > 0.0), "{report:#}");
    let types = report["request_types"].as_array().unwrap();
    let names: Vec<&str> = types.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["buildings", "blocks", "networks", "mobility"]);

    for t in types {
        let name = t["name"].as_str().unwrap();
        for phase in ["inactive", "active"] {
            let s = &t[phase];
            for key in ["avg_s", "median_s", "stddev_s"] {
                assert!(s[key].is_f64(), "{name} {phase} {key}: {s}");
            }
            assert!(s["requests"].as_u64().unwrap() > 0, "{name} {phase} ran no request: {s}");
            assert_eq!(s["failed"], 0, "{name} {phase}: a client request failed\n{stderr}");
        }
        // Which views move: the slow ones, not mobility.
        let should_move = name != "mobility";
        assert_eq!(t["migrated"], should_move, "{name} migrated = {}\n{stderr}\n{}", t["migrated"], logs());
        if should_move {
            let (inactive, active) = (t["inactive"]["avg_s"].as_f64().unwrap(), t["active"]["avg_s"].as_f64().unwrap());
            assert!(active < inactive, "{name} is not faster once migrated: {inactive} s -> {active} s");
        }
    }

    // The files the report names.
    for file in ["samples.csv", "chart.svg", "report.json", "details.json"] {
        let path = out.path().join(file);
        assert!(std::fs::metadata(&path).is_ok_and(|m| m.len() > 0), "{} missing", path.display());
    }
    let csv = std::fs::read_to_string(out.path().join("samples.csv")).unwrap();
    assert!(csv.starts_with("time_s,city,client,type,phase,seconds,status,bytes,error\n"));
    let details: Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("details.json")).unwrap()).unwrap();
    assert_eq!(details["migrations"].as_array().unwrap().len(), 3, "{details:#}");
    assert!(!out.path().join("nodes").exists(), "the nodes' data directories are removed");
}
