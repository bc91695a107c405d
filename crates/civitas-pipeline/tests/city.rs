//! The paper's pipelines planned on the example city (examples/pipelines/): the
//! placements a reader expects, the explanations, and refusals that name the requirement.

use civitas_model::Document;
use civitas_pipeline::schedule::{Continuum, PlanOptions, Solver};
use civitas_pipeline::{Checked, check_sources, plan_checked, render_plan_table};

fn dir() -> String {
    format!("{}/../../examples/pipelines", env!("CARGO_MANIFEST_DIR"))
}

fn city() -> Continuum {
    let mut docs = Vec::new();
    for f in ["city-sites.json", "city-site-links.json", "city-units.json", "city-instances.json"] {
        let text = std::fs::read_to_string(format!("{}/{f}", dir())).expect("example file");
        let value: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        let decoded = Document::decode_many(&value, None).unwrap_or_else(|e| panic!("{f}: {e}"));
        // The examples are canonical: encoding them again gives the file's documents.
        for (d, v) in decoded.iter().zip(value.as_array().expect("an array")) {
            assert_eq!(&d.encode(), v, "{f} is not canonical");
        }
        docs.extend(decoded);
    }
    Continuum::from_documents(&docs).expect("consistent city")
}

fn checked() -> Checked {
    let sources: Vec<(String, String)> = ["marketing-campaign.civ", "e-health.civ", "environments.civ"]
        .iter()
        .map(|n| (n.to_string(), std::fs::read_to_string(format!("{}/{n}", dir())).expect("example")))
        .collect();
    check_sources(&sources).unwrap_or_else(|d| panic!("{d}"))
}

fn plan(name: &str, env: &str, solver: Solver) -> civitas_pipeline::schedule::Plan {
    let checked = checked();
    let p = checked.pipeline(name).expect("pipeline");
    let options = PlanOptions { solver, ..PlanOptions::default() };
    plan_checked(&checked, p, checked.environment(env), &city(), &options).unwrap_or_else(|d| panic!("{d}"))
}

#[test]
fn marketing_campaign_goes_where_a_reader_expects() {
    let plan = plan("campaign", "vienna", Solver::Auto);
    assert!(plan.optimal, "5 stages on 7 sites is solved exactly");
    assert_eq!(plan.pipeline_version, "1.0");
    assert_eq!(plan.environment.as_deref(), Some("vienna"));
    // The redirector sits at the edge, next to the campaign links it reads.
    assert_eq!(plan.site_of("redirector"), Some("urn:site:vienna:edge-pop-1"));
    // The click stream is collected at the fog node the redirector hangs off.
    assert_eq!(plan.site_of("clickstream"), Some("urn:site:vienna:fog-1"));
    // Statistics are ingested next to their source, in the cheaper cloud.
    assert_eq!(plan.site_of("stats_ingest"), Some("urn:site:cloud:google-europe-west"));
    // KPIs never leave Austria; reports run in the city's cloud provider.
    let kpi = plan.site_of("kpi").expect("kpi placed");
    assert!(["urn:site:vienna:fog-1", "urn:site:vienna:fog-2", "urn:site:cloud:azure-austria-east"].contains(&kpi));
    assert_eq!(plan.site_of("reporting"), Some("urn:site:cloud:azure-austria-east"));
    assert!(plan.price_per_month <= 400.0);
    let table = render_plan_table(&plan);
    assert!(table.contains("require tier edge: the site is edge"), "{table}");
    assert!(table.contains("require data never leaves jurisdiction AT ($jurisdiction)"), "{table}");
    assert!(table.contains("runner-up"), "{table}");
}

#[test]
fn environments_change_placements_not_the_pipeline() {
    // Graz prefers Google, but the reports read KPIs that never leave Austria.
    let graz = plan("campaign", "graz", Solver::Auto);
    assert_eq!(graz.site_of("reporting"), Some("urn:site:cloud:azure-austria-east"));
    assert_eq!(graz.parameters.get("cloud").map(String::as_str), Some("google"));
    let table = render_plan_table(&graz);
    assert!(table.contains("prefer provider google weight 3: not met (+30.0)"), "{table}");
    // Berlin's data stays in Germany: KPIs and reports move to the German region.
    let berlin = plan("campaign", "berlin", Solver::Auto);
    assert_eq!(berlin.site_of("kpi"), Some("urn:site:cloud:google-europe-west"));
    assert_eq!(berlin.site_of("reporting"), Some("urn:site:cloud:google-europe-west"));
}

#[test]
fn e_health_keeps_data_in_the_jurisdiction_and_alarms_close() {
    let plan = plan("home-care", "vienna", Solver::Auto);
    // Ingest and anonymisation on the home gateway with a TEE, together (≤ 5 ms apart).
    assert_eq!(plan.site_of("sensor_ingest"), Some("urn:site:vienna:edge-gw-1"));
    assert_eq!(plan.site_of("anonymise"), Some("urn:site:vienna:edge-gw-1"));
    // Night alarms next to the response centre's intake.
    assert_eq!(plan.site_of("night_alarm"), Some("urn:site:vienna:fog-2"));
    // The EHR export runs in-jurisdiction, in a cloud with a TEE.
    assert_eq!(plan.site_of("ehr_export"), Some("urn:site:cloud:azure-austria-east"));
    // No stage of this pipeline leaves Austria: the German cloud region is never used.
    assert!(plan.placements.iter().all(|p| p.site != "urn:site:cloud:google-europe-west"), "{plan:#?}");
    let export = plan.placements.iter().find(|p| p.stage == "ehr_export").expect("export");
    let excluded: Vec<&str> = export.explanation.excluded.iter().map(|e| e.requirement.as_str()).collect();
    assert!(excluded.contains(&"require tier cloud"), "{excluded:?}");
    assert!(
        excluded.iter().any(|e| e.starts_with("require data never leaves jurisdiction AT") && e.contains("inherited")),
        "{excluded:?}"
    );
}

#[test]
fn heuristic_agrees_on_the_examples() {
    for name in ["campaign", "home-care"] {
        let exact = plan(name, "vienna", Solver::Exact);
        let heuristic = plan(name, "vienna", Solver::Heuristic);
        assert!(heuristic.objective.total >= exact.objective.total - 0.01, "{name}");
    }
}

#[test]
fn an_unsatisfiable_requirement_is_named_with_the_nearest_site() {
    let text = std::fs::read_to_string(format!("{}/e-health.civ", dir()))
        .unwrap()
        .replace("require capability home-gateway", "require capability home-gateway, gpu");
    let checked = check_sources(&[("e-health.civ".into(), text)]).unwrap_or_else(|d| panic!("{d}"));
    let p = &checked.pipelines[0];
    let err = plan_checked(&checked, p, None, &city(), &PlanOptions::default()).expect_err("no gateway has a GPU");
    expect_test::expect![[r#"
        error[E0300]: no site in the catalog can meet `require capability home-gateway, gpu` (nearest site: urn:site:vienna:edge-gw-1)
          --> e-health.civ:18:5
           |
        18 |     require capability home-gateway, gpu
           |     ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^ stage `sensor_ingest`
          = hint: relax this requirement: no site meets it together with the stage's other requirements; nearest: urn:site:vienna:edge-gw-1 (edge, vienna, AT)

        1 error, 0 warnings"#]]
    .assert_eq(&err.render());
}

#[test]
fn a_budget_too_small_is_the_requirement_to_relax() {
    let text = std::fs::read_to_string(format!("{}/marketing-campaign.civ", dir()))
        .unwrap()
        .replace("budget 400 EUR per month", "budget 1 EUR per month");
    let checked = check_sources(&[("m.civ".into(), text)]).unwrap_or_else(|d| panic!("{d}"));
    let err =
        plan_checked(&checked, &checked.pipelines[0], None, &city(), &PlanOptions::default()).expect_err("too cheap");
    assert_eq!(err.items.len(), 1, "{err}");
    assert!(err.items[0].message.contains("budget 1.00 per month"), "{err}");
}

#[test]
fn json_pipelines_are_planned_and_refusals_point_into_the_right_file() {
    let text = std::fs::read_to_string(format!("{}/e-health.civ", dir()))
        .unwrap()
        .replace("require capability home-gateway", "require capability home-gateway, gpu");
    let dsl = check_sources(&[("e-health.civ".into(), text)]).unwrap_or_else(|d| panic!("{d}"));
    let campaign = checked().pipeline("campaign").unwrap().pipeline.clone();
    let array = serde_json::json!([
        civitas_pipeline::to_json(&campaign),
        civitas_pipeline::to_json(&dsl.pipelines[0].pipeline)
    ]);
    let env = std::fs::read_to_string(format!("{}/environments.civ", dir())).unwrap();
    let checked = check_sources(&[("environments.civ".into(), env), ("pipes.json".into(), array.to_string())])
        .unwrap_or_else(|d| panic!("{d}"));
    let vienna = checked.environment("vienna");
    let plan = plan_checked(&checked, &checked.pipelines[0], vienna, &city(), &PlanOptions::default())
        .unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(plan.site_of("redirector"), Some("urn:site:vienna:edge-pop-1"));
    let err = plan_checked(&checked, &checked.pipelines[1], vienna, &city(), &PlanOptions::default())
        .expect_err("no gateway has a GPU");
    assert!(err.render().contains("--> pipes.json#/1/stages/0/requirements/1"), "{err}");
}

#[test]
fn a_stored_plan_reads_back_and_its_capacity_is_reserved() {
    let plan = plan("home-care", "vienna", Solver::Auto);
    let json = serde_json::to_string(&plan).unwrap();
    let back: civitas_pipeline::schedule::Plan = serde_json::from_str(&json).unwrap();
    assert_eq!(back, plan);
    let mut c = city();
    let gw = c.site_index(&civitas_model::Urn::parse("urn:site:vienna:edge-gw-1").unwrap()).unwrap();
    let before = c.free_cpu(gw);
    c.reserve(&back);
    assert!((before - c.free_cpu(gw) - 0.75).abs() < 1e-9, "ingest 0.25 + anonymise 0.5 cores");
    c.release(&back);
    assert_eq!(c.free_cpu(gw), before);
}
