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
    let checked =
        check_sources(&[example("marketing-campaign.civ"), example("e-health.civ"), example("environments.civ")])
            .unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(checked.pipelines.len(), 2);
    assert_eq!(checked.environments.len(), 4);
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

            4 errors, 0 warnings"#]],
    );
}

#[test]
fn graph_errors_name_the_cycle_the_typo_and_the_mismatch() {
    diagnose(
        r#"pipeline urn:pipeline:x {
  version "1"
  stage a {
    run builtin "gen"
    input c
    output out: stream<click>
  }
  stage b {
    run builtin "map"
    input a as batch<click>
    output out: stream<click>
  }
  stage c {
    run builtin "sink"
    input b
    output out: stream<click>
  }
  stage d {
    run builtin "sink"
    input redirectr
    require latency to stage e <= 5ms
  }
  stage a {
    run builtin "dup"
    trigger every 1m
  }
}
"#,
        expect![[r#"
            error[E0207]: the stages form a cycle: a → b → c → a
              --> bad.civ:5:5
              |
            5 |     input c
              |     ^^^^^^^ closes the cycle
              --> bad.civ:13:9
               |
            13 |   stage c {
               |         - `c` is downstream of `a`
              = hint: a pipeline is acyclic: feed back through a view or an event instead

            error[E0206]: type mismatch: `b` expects batch<click> but `a.out` produces stream<click>
              --> bad.civ:10:5
               |
            10 |     input a as batch<click>
               |     ^^^^^^^^^^^^^^^^^^^^^^^ expects batch<click>
              --> bad.civ:6:5
              |
            6 |     output out: stream<click>
              |     ------------------------- produces stream<click>
              = hint: change the input's `as` type, or read another output

            error[E0202]: this input names stage `redirectr`, which does not exist
              --> bad.civ:20:5
               |
            20 |     input redirectr
               |     ^^^^^^^^^^^^^^^ unknown stage
              = hint: the stages are: a, b, c, d

            error[E0202]: this requirement names stage `e`, which does not exist
              --> bad.civ:21:5
               |
            21 |     require latency to stage e <= 5ms
               |     ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^ unknown stage
              = hint: did you mean `a`?

            error[E0200]: stage `a` is defined twice
              --> bad.civ:23:9
               |
            23 |   stage a {
               |         ^ defined again here
              --> bad.civ:3:9
              |
            3 |   stage a {
              |         - first defined here
              = hint: rename one of them

            5 errors, 0 warnings"#]],
    );
}

#[test]
fn parameters_policies_and_contradictions_are_checked() {
    diagnose(
        r#"pipeline urn:pipeline:x {
  version "1"
  param city
  stage a {
    run builtin "gen"
    trigger every 1m
    require region $citty
    require jurisdiction AT
    require jurisdiction DE
    when latency.p99 > 2 for 1m then scale out
    when cpu > 80% for 1m then scale in min 3 max 2 cooldown 1m
    when lattency.p99 > 2s for 1m then reschedule
  }
}
"#,
        expect![[r#"
            warning[W0302]: parameter `city` is never used
              --> bad.civ:3:3
              |
            3 |   param city
              |   ^^^^^^^^^^ unused

            error[E0211]: parameter `$citty` is not declared
              --> bad.civ:7:5
              |
            7 |     require region $citty
              |     ^^^^^^^^^^^^^^^^^^^^^ undeclared parameter
              = hint: did you mean `$city`?

            error[E0210]: stage `a` must be in jurisdiction `AT` and `DE` at once
              --> bad.civ:9:5
              |
            9 |     require jurisdiction DE
              |     ^^^^^^^^^^^^^^^^^^^^^^^ contradicts
              --> bad.civ:8:5
              |
            8 |     require jurisdiction AT
              |     ----------------------- the other requirement
              = hint: no site can be in two places; keep one

            error[E0102]: `latency.p99` is measured in time, e.g. `200ms`
              --> bad.civ:10:24
               |
            10 |     when latency.p99 > 2 for 1m then scale out
               |                        ^ `2` is not time, e.g. `200ms`
              = hint: write the threshold in time, e.g. `200ms`

            error[E0212]: min 3 is above max 2
              --> bad.civ:11:5
               |
            11 |     when cpu > 80% for 1m then scale in min 3 max 2 cooldown 1m
               |     ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^ empty range
              = hint: swap them

            error[E0103]: unknown metric `lattency.p99`
              --> bad.civ:12:10
               |
            12 |     when lattency.p99 > 2s for 1m then reschedule
               |          ^^^^^^^^^^^^ not a metric Civitas measures
              = hint: did you mean `latency.p99`?

            5 errors, 1 warning"#]],
    );
}

#[test]
fn limits_bound_size_depth_and_stage_count() {
    let limits = Limits { max_source_bytes: 64, ..Limits::default() };
    let big = format!("pipeline urn:pipeline:x {{ {} }}", "#".repeat(100));
    let err = check_sources_with(&[("big.civ".into(), big)], &limits).expect_err("too large");
    assert_eq!(err.items[0].code, "E0001");

    let deep = format!("pipeline urn:pipeline:x {{{}{}", "{".repeat(100_000), "}".repeat(100_000));
    let err = check_sources(&[("deep.civ".into(), deep)]).expect_err("too deep");
    assert_eq!(err.items.len(), 1);
    assert_eq!(err.items[0].code, "E0002");
    assert!(err.render().contains("nested more than 8 deep"), "{err}");

    let limits = Limits { max_stages: 3, ..Limits::default() };
    let mut text = String::from("pipeline urn:pipeline:x {\n version \"1\"\n");
    for i in 0..5 {
        text.push_str(&format!(" stage s{i} {{ run builtin \"x\"; trigger every 1m }}\n"));
    }
    text.push('}');
    let err = check_sources_with(&[("many.civ".into(), text)], &limits).expect_err("too many stages");
    assert_eq!(err.items.iter().filter(|d| d.code == "E0003").count(), 2, "{err}");
}

#[test]
fn garbage_never_panics_and_always_explains() {
    for text in [
        "",
        "}",
        "{",
        "pipeline",
        "pipeline urn:",
        "pipeline urn:a:b { stage",
        "\"open",
        "é ü \u{0}",
        "pipeline urn:pipeline:x { version \"1\" stage a { run builtin \"x\" input urn:a:b:c volume 3XB/h } }",
    ] {
        match check_sources(&[("g.civ".into(), text.to_string())]) {
            Ok(c) => assert!(c.pipelines.is_empty() || !text.is_empty()),
            Err(d) => assert!(d.has_errors() && !d.render().is_empty()),
        }
    }
}

#[test]
fn check_files_reads_dsl_and_json_and_reports_unreadable_files() {
    let dir = format!("{}/../../examples/pipelines", env!("CARGO_MANIFEST_DIR"));
    let checked =
        civitas_pipeline::check_files(&[format!("{dir}/marketing-campaign.civ"), format!("{dir}/environments.civ")])
            .unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(checked.pipelines.len(), 1);
    assert_eq!(checked.environment("vienna").map(|e| e.values["cloud"].as_str()), Some("azure"));
    let err = civitas_pipeline::check_files(&[format!("{dir}/marketing-campaign.civ"), format!("{dir}/missing.civ")])
        .expect_err("a file is missing");
    assert_eq!(err.items.len(), 1);
    assert_eq!(err.items[0].code, "E0004");
    assert!(err.render().contains("missing.civ:1:1"), "{err}");
}

#[test]
fn pipelines_defined_twice_across_files_are_refused() {
    let (name, text) = example("e-health.civ");
    let err = check_sources(&[(name.clone(), text.clone()), ("copy.civ".into(), text)]).expect_err("duplicate");
    assert_eq!(err.items.len(), 1, "{err}");
    assert!(err.render().contains("pipeline `urn:pipeline:ehealth:home-care` is defined twice"), "{err}");
}

mod never_panics {
    use proptest::prelude::*;

    fn campaign() -> String {
        super::example("marketing-campaign.civ").1
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn on_arbitrary_text(text in ".{0,400}") {
            if let Err(d) = civitas_pipeline::check_sources(&[("x.civ".into(), text)]) {
                prop_assert!(d.has_errors());
                let _ = d.render();
            }
        }

        #[test]
        fn on_a_mutated_example(cut in 0usize..4000, len in 0usize..40, insert in "[{}\"<>=:;$#a-z0-9 \n]{0,8}") {
            let mut text = campaign();
            let start = text.char_indices().map(|(i, _)| i).find(|&i| i >= cut.min(text.len())).unwrap_or(text.len());
            let end = text.char_indices().map(|(i, _)| i).find(|&i| i >= start + len).unwrap_or(text.len());
            text.replace_range(start..end, &insert);
            match civitas_pipeline::check_sources(&[("m.civ".into(), text.clone())]) {
                Ok(c) => {
                    for p in &c.pipelines {
                        let again = civitas_pipeline::check_sources(&[("f.civ".into(), civitas_pipeline::format_pipeline(&p.pipeline))])
                            .map_err(|d| TestCaseError::fail(d.to_string()))?;
                        prop_assert_eq!(&again.pipelines[0].pipeline, &p.pipeline);
                    }
                }
                Err(d) => {
                    for item in &d.items {
                        if let civitas_pipeline::Location::Source { span, .. } = &item.location {
                            prop_assert!(span.end <= text.len());
                        }
                    }
                    let _ = d.render();
                }
            }
        }
    }
}
