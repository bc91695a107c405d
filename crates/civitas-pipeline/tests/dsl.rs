//! The DSL end to end: the examples check clean, and bad input gets diagnostics
//! rendered like a compiler's (snapshots reviewed like code: `UPDATE_EXPECT=1` to refresh).

use civitas_pipeline::{Limits, check_sources, check_sources_with};
use expect_test::{Expect, expect};

fn diagnose(text: &str, expected: Expect) {
    let err = check_sources(&[("bad.civ".to_string(), text.to_string())]).expect_err("the input has errors");
    expected.assert_eq(&err.render());
}

fn example(name: &str) -> (String, String) {
    let path = format!("{}/../../examples/pipelines/{name}", env!("CARGO_MANIFEST_DIR"));
    (name.to_string(), std::fs::read_to_string(&path).expect("example exists"))
}

#[test]
fn the_examples_check_clean() {
    let checked = check_sources(&[
        example("marketing-campaign.civ"),
        example("e-health.civ"),
        example("environments.civ"),
    ])
    .unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(checked.pipelines.len(), 2);
    assert_eq!(checked.environments.len(), 3);
    assert!(checked.warnings.items.is_empty(), "{}", checked.warnings);
    let m = &checked.pipeline("campaign").expect("by last segment").pipeline;
    assert_eq!(m.stages.len(), 5);
    assert_eq!(m.stages[0].slos[0].target, 200.0);
    assert_eq!(m.stages[0].outputs[0].bytes_per_hour, Some(200e6));
    assert_eq!(m.budget.as_ref().map(|b| b.per_month()), Some(400.0));
}

#[test]
fn syntax_errors_come_all_at_once_and_parsing_goes_on() {
    diagnose(
        r#"pipeline urn:pipeline:x {
  version "1"
  stage a {
    run builtin "gen"
    trigger every 5
    requre tier edge
  }
  stage b {
    run builtin "sink"
    input a
    require tier moon
  }
}
"#,
        expect![[r#"
            error[E0208]: stage `a` never runs: it has no input and no trigger
              --> bad.civ:3:9
              |
            3 |   stage a {
              |         ^ never runs
              = hint: give it an input, or a trigger such as `trigger every 5m` or `trigger on event "http.request"`

            error[E0102]: `5` needs a unit of time
              --> bad.civ:5:19
              |
            5 |     trigger every 5
              |                   ^ needs a unit of time
              = hint: use ms, s, m, h or d, e.g. `200ms`

            error[E0100]: expected a stage statement (`run`, `input`, `output`, `trigger`, `resources`, `require`, `prefer`, `slo`, `when`), found `requre`
              --> bad.civ:6:5
              |
            6 |     requre tier edge
              |     ^^^^^^ not a stage statement
              = hint: did you mean `require`?

            error[E0204]: stage `a` produces nothing to read
              --> bad.civ:10:5
               |
            10 |     input a
               |     ^^^^^^^ dangling input
              --> bad.civ:3:9
              |
            3 |   stage a {
              |         - `a` declares no output
              = hint: add `output NAME: TYPE` to `a`, or remove this input

            error[E0105]: "moon" is not a tier: use edge, fog or cloud
              --> bad.civ:11:18
               |
            11 |     require tier moon
               |                  ^^^^ not a tier
              = hint: use edge, fog or cloud

            5 errors, 0 warnings"#]],
    );
}
