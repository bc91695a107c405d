//! DSL ↔ JSON-LD: applying a `.civ` file and applying its JSON-LD are the same thing.

use civitas_pipeline::{Pipeline, check_sources, from_json, to_json};
use expect_test::expect;

fn examples() -> Vec<Pipeline> {
    let dir = format!("{}/../../examples/pipelines", env!("CARGO_MANIFEST_DIR"));
    let sources: Vec<(String, String)> = ["marketing-campaign.civ", "e-health.civ"]
        .iter()
        .map(|n| (n.to_string(), std::fs::read_to_string(format!("{dir}/{n}")).expect("example")))
        .collect();
    check_sources(&sources).unwrap_or_else(|d| panic!("{d}")).pipelines.into_iter().map(|p| p.pipeline).collect()
}

#[test]
fn examples_round_trip_through_json_ld() {
    for p in examples() {
        let json = to_json(&p);
        assert_eq!(json["@type"], "Pipeline");
        assert_eq!(json["@context"], civitas_model::context::CONTEXT_URL);
        let (back, warnings) = from_json(&json, "p.json").unwrap_or_else(|d| panic!("{d}"));
        assert_eq!(back, p);
        assert!(warnings.is_empty());
        // Canonical: encoding again gives the same bytes.
        assert_eq!(serde_json::to_string(&to_json(&back)).unwrap(), serde_json::to_string(&json).unwrap());
        // And the JSON file checks like the DSL file.
        let text = serde_json::to_string_pretty(&json).unwrap();
        let checked = check_sources(&[("p.json".into(), text)]).unwrap_or_else(|d| panic!("{d}"));
        assert_eq!(checked.pipelines[0].pipeline, p);
    }
}

#[test]
fn json_stage_shape_is_stable() {
    let p = &examples()[0];
    let json = to_json(p);
    expect![[r#"{"name":"redirector","run":{"kind":"builtin","name":"http-redirector"},"outputs":[{"name":"clicks","type":"stream<click>","bytesPerHour":200000000.0}],"triggers":[{"kind":"onEvent","event":"http.request"}],"resources":{"cpuCores":0.5,"memoryBytes":268435456},"requirements":[{"kind":"tier","tiers":["edge"]},{"kind":"latencyToView","view":"urn:marketing:campaigns:links","maxMs":10.0}],"slos":[{"metric":"latency.p99","op":"<=","target":200.0},{"metric":"availability","op":">=","target":99.9}],"policies":[{"metric":"latency.p99","op":">","threshold":150.0,"forMs":120000,"action":{"kind":"scaleOut","by":1},"max":4,"cooldownMs":300000}]}"#]]
    .assert_eq(&serde_json::to_string(&json["stages"][0]).unwrap());
}

#[test]
fn json_errors_point_into_the_document() {
    let mut json = to_json(&examples()[0]);
    json["stages"][1]["inputs"][0]["from"]["stage"] = "redirektor".into();
    json["stages"][3]["requirements"][1]["value"] = "$nowhere".into();
    let err = from_json(&json, "campaign.json").expect_err("broken references");
    expect![[r#"
        error[E0202]: this input names stage `redirektor`, which does not exist
          --> campaign.json#/stages/1/inputs/0
           = unknown stage
          = hint: did you mean `redirector`?

        error[E0211]: parameter `$nowhere` is not declared
          --> campaign.json#/stages/3/requirements/1
           = undeclared parameter
          = hint: declare it in the pipeline: `param nowhere`

        warning[W0301]: output `redirector.clicks` is never read
          --> campaign.json#/stages/0/outputs/0
           = unread
          = hint: remove it, or read it from another stage

        warning[W0302]: parameter `jurisdiction` is never used
          --> campaign.json#/params/0
           = unused

        2 errors, 2 warnings"#]]
    .assert_eq(&err.render());
    json["stages"][0]["colour"] = "red".into();
    let err = from_json(&json, "campaign.json").expect_err("unknown field");
    assert!(err.render().contains("unknown field `colour`"), "{err}");
    assert!(err.render().contains("campaign.json#/stages/0"), "{err}");
    let mut json = to_json(&examples()[0]);
    json["stages"][2]["resources"]["cpuCores"] = "many".into();
    let err = from_json(&json, "campaign.json").expect_err("not a number");
    assert!(err.render().contains("campaign.json#/stages/2/resources/cpuCores"), "{err}");
}
