//! The examples in docs/sdd.md are what the code does.

mod support;

use civitas_placement::{ActivationRequest, MigrationCandidate, SddEvent, SddStatus, parse_trigger};
use support::*;

fn page() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/sdd.md")).unwrap()
}

/// The lines of the first fenced block that follows `marker`.
fn block_after(page: &str, marker: &str) -> Vec<String> {
    let rest = &page[page.find(marker).unwrap_or_else(|| panic!("{marker:?} not in docs/sdd.md"))..];
    let start = rest.find("```").unwrap();
    let body = &rest[start..];
    let body = &body[body.find('\n').unwrap() + 1..];
    let end = body.find("```").unwrap();
    body[..end].lines().map(str::to_string).collect()
}

#[test]
fn the_trigger_examples_parse() {
    let examples = block_after(&page(), "A unit may touch the number");
    assert_eq!(examples.len(), 5);
    for example in examples {
        parse_trigger(&example).unwrap_or_else(|e| panic!("{example:?}: {e}"));
    }
}

#[test]
fn the_documented_errors_are_the_errors_given() {
    let lines = block_after(&page(), "**Malformed triggers**");
    assert!(lines.len() >= 5);
    let (m, _bus, _rx) = manager();
    for line in lines {
        // `trigger N ("TEXT"): message`
        let index: usize = line.strip_prefix("trigger ").unwrap().split(' ').next().unwrap().parse().unwrap();
        let text_start = line.find("(\"").unwrap() + 2;
        let text_end = line.find("\"):").unwrap();
        let text = &line[text_start..text_end];
        let mut triggers = vec!["samples > 1"; index];
        triggers.push(text);
        let error = m.activate(&request(&triggers, "0.8..1.0"), t(0)).unwrap_err();
        assert_eq!(error.to_string(), line);
    }
}

#[test]
fn the_documented_json_has_the_shapes_served() {
    let page = page();
    let curl = page.lines().find(|l| l.starts_with("curl -X POST") && l.contains("activate")).unwrap();
    let body = &curl[curl.find("-d '").unwrap() + 4..curl.len() - 1];
    let request: ActivationRequest = serde_json::from_str(body).unwrap();
    let (m, _bus, _rx) = manager();
    m.activate(&request, t(0)).unwrap();

    // Each documented document reads into the served type and writes back identical:
    // no field missing, renamed or extra.
    let candidate = json_after(&page, "## What a candidate carries");
    assert_round_trip::<MigrationCandidate>(&candidate);
    assert_round_trip::<SddStatus>(&json_after(&page, "The status:"));
    let events = json_after(&page, "Events (`GET");
    assert_round_trip::<Vec<SddEvent>>(&events["events"]);
}

fn json_after(page: &str, marker: &str) -> serde_json::Value {
    serde_json::from_str(&block_after(page, marker).join("\n")).unwrap()
}

fn assert_round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(value: &serde_json::Value) {
    let typed: T = serde_json::from_value(value.clone()).unwrap();
    assert_eq!(&serde_json::to_value(typed).unwrap(), value);
}
