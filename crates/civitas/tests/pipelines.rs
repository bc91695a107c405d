//! Pipelines end to end (docs/pipelines.md): a real `civitas serve`, the example city of
//! examples/pipelines applied with the CLI, `.civ` files compiled by `civitas apply`, the
//! `pipeline check|plan` verbs, and the node's plan API.

mod common;

use std::time::Duration;

use common::{Server, write_file};
use reqwest::StatusCode;
use serde_json::{Value, json};

const PIPELINES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/pipelines");

fn example(name: &str) -> String {
    format!("{PIPELINES}/{name}")
}

/// The example city without its pipelines: sites, links, units, instances.
fn apply_city(server: &Server) {
    for f in ["city-sites.json", "city-site-links.json", "city-units.json", "city-instances.json"] {
        server.civitas(&["apply", "-f", &example(f)]).ok();
    }
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

fn site_of<'a>(plan: &'a Value, stage: &str) -> &'a str {
    plan["placements"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["stage"] == stage))
        .and_then(|p| p["site"].as_str())
        .unwrap_or_else(|| panic!("no placement for {stage}: {plan:#}"))
}

#[test]
fn a_civ_file_is_applied_listed_read_back_and_round_trips() {
    let server = Server::start();
    apply_city(&server);
    let out = server.civitas(&["apply", "-f", &example("marketing-campaign.civ")]).ok().to_string();
    assert_eq!(out.trim(), "pipeline/urn:pipeline:marketing:campaign created (version 1.0)", "{out}");

    // get pipelines: a table with the stage count.
    let table = server.civitas(&["get", "pipelines"]).ok().to_string();
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(header, ["NAME", "VERSION", "STAGES", "DESCRIPTION"], "{table}");
    let row: Vec<&str> = lines.next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(row[..3], ["urn:pipeline:marketing:campaign", "1.0", "5"], "{table}");

    // get pipeline NAME -o json: the compiled document, which is what civitas-pipeline writes.
    let got = server.civitas(&["get", "pipeline", "urn:pipeline:marketing:campaign", "-o", "json"]).ok().to_string();
    let doc = json_of(&got);
    assert_eq!(doc["@type"], "Pipeline", "{got}");
    let text = std::fs::read_to_string(example("marketing-campaign.civ")).unwrap();
    let compiled = civitas_pipeline::check_sources(&[("m.civ".into(), text)]).unwrap_or_else(|d| panic!("{d}"));
    let (from_store, _) = civitas_pipeline::from_json(&doc, "stored").unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(from_store, compiled.pipelines[0].pipeline, "the stored document decodes to the compiled pipeline");

    // Round trip: applying the JSON that `get` printed is the same thing as the .civ file.
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "campaign.json", &got);
    let again = server.civitas(&["apply", "-f", file.to_str().unwrap()]).ok().to_string();
    assert_eq!(again.trim(), "pipeline/urn:pipeline:marketing:campaign unchanged (version 1.0)", "{again}");
    let again = server.civitas(&["apply", "-f", &example("marketing-campaign.civ")]).ok().to_string();
    assert!(again.contains("unchanged (version 1.0)"), "{again}");
}

#[test]
fn the_example_directory_applies_as_one_batch_with_its_pipelines() {
    let server = Server::start();
    let out = server.civitas(&["apply", "-f", PIPELINES]).ok().to_string();
    assert!(out.contains("site/urn:site:vienna:fog-1 created"), "{out}");
    assert!(out.contains("pipeline/urn:pipeline:marketing:campaign created (version 1.0)"), "{out}");
    assert!(out.contains("pipeline/urn:pipeline:ehealth:home-care created (version 1.0)"), "{out}");
    let listed = json_of(server.civitas(&["get", "pipelines", "-o", "json"]).ok());
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed:#}");
}

#[test]
fn a_broken_file_is_refused_with_file_line_col_and_nothing_is_stored() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let broken = std::fs::read_to_string(example("marketing-campaign.civ"))
        .unwrap()
        .replace("input redirector as stream<click>", "input redirectr as stream<click>");
    let file = write_file(dir.path(), "broken.civ", &broken);
    let path = file.to_str().unwrap();
    let line = broken.lines().position(|l| l.contains("input redirectr")).unwrap() + 1;

    let err = server.civitas(&["pipeline", "check", path]).fails_with(1).to_string();
    assert!(err.contains(&format!("{path}:{line}:")), "the diagnostic names file:line:col:\n{err}");
    assert!(err.contains("error[E0202]") && err.contains("redirector"), "unknown stage, did you mean:\n{err}");

    // check -o json: the same diagnostics as data, still exit 1.
    let run = server.civitas(&["pipeline", "check", path, "-o", "json"]);
    run.fails_with(1);
    let diags = json_of(&run.stdout);
    let items = diags["items"].as_array().cloned().unwrap_or_default();
    let e0202 = items.iter().find(|i| i["code"] == "E0202").unwrap_or_else(|| panic!("{diags:#}"));
    assert_eq!(e0202["severity"], "error");
    assert!(e0202["position"].as_str().is_some_and(|p| p.starts_with(&format!("{path}:{line}:"))), "{diags:#}");

    // apply refuses it with the same diagnostics and stores nothing, not even the good files.
    let good = write_file(dir.path(), "a-site.json", &std::fs::read_to_string(example("city-sites.json")).unwrap());
    assert!(good.exists());
    let err = server.civitas(&["apply", "-f", dir.path().to_str().unwrap()]).fails_with(1).to_string();
    assert!(err.contains(&format!("{path}:{line}:")) && err.contains("nothing was applied"), "{err}");
    let listed = json_of(server.civitas(&["get", "pipelines", "-o", "json"]).ok());
    assert_eq!(listed, json!([]));
    let sites = json_of(server.civitas(&["get", "sites", "-o", "json"]).ok());
    assert_eq!(sites, json!([]), "the batch is all or nothing");

    // A correct file checks (warnings do not fail it).
    let ok = server.civitas(&["pipeline", "check", &example("marketing-campaign.civ"), &example("environments.civ")]);
    assert!(ok.ok().contains("1 pipeline(s) and 4 environment(s) check"), "{}", ok.stdout);
}

#[test]
fn plans_place_the_examples_where_a_reader_expects() {
    let server = Server::start();
    apply_city(&server);
    let envs = example("environments.civ");

    // A file, planned on the node's catalog, as JSON.
    let campaign = example("marketing-campaign.civ");
    let args = ["pipeline", "plan", &campaign, "--env-file", &envs, "--env", "vienna", "-o", "json"];
    let plan = json_of(server.civitas(&args).ok());
    assert_eq!(plan["pipelineVersion"], "1.0");
    assert_eq!(plan["environment"], "vienna");
    assert_eq!(site_of(&plan, "redirector"), "urn:site:vienna:edge-pop-1", "at the edge, next to the links");
    assert_eq!(site_of(&plan, "stats_ingest"), "urn:site:cloud:google-europe-west", "next to the statistics");
    assert_eq!(site_of(&plan, "reporting"), "urn:site:cloud:azure-austria-east", "data never leaves AT");

    // Berlin's data stays in Germany.
    let args = ["pipeline", "plan", &campaign, "--env-file", &envs, "--env", "berlin", "-o", "json"];
    let berlin = json_of(server.civitas(&args).ok());
    assert_eq!(site_of(&berlin, "kpi"), "urn:site:cloud:google-europe-west");

    // A stored pipeline, by name, as a table with explanations.
    server.civitas(&["apply", "-f", &example("e-health.civ")]).ok();
    let args = ["pipeline", "plan", "urn:pipeline:ehealth:home-care", "--env-file", &envs, "--env", "vienna"];
    let table = server.civitas(&args).ok().to_string();
    assert!(table.starts_with("PIPELINE urn:pipeline:ehealth:home-care version 1.0, environment vienna"), "{table}");
    assert!(table.contains("sensor_ingest → urn:site:vienna:edge-gw-1"), "{table}");
    assert!(table.contains("night_alarm → urn:site:vienna:fog-2"), "{table}");
    assert!(table.contains("runner-up"), "{table}");

    // --save: the node plans with the environment's values and keeps the plan in its data dir.
    let args = ["pipeline", "plan", "urn:pipeline:ehealth:home-care", "--env-file", &envs, "--env", "vienna", "--save"];
    let saved = server.civitas(&[&args[..], &["-o", "json"]].concat()).ok().to_string();
    let saved = json_of(&saved);
    assert_eq!(saved["environment"], "vienna");
    assert_eq!(saved["parameters"]["jurisdiction"], "AT");
    assert_eq!(site_of(&saved, "night_alarm"), "urn:site:vienna:fog-2");
    let file = server.data_dir.join("pipeline-plans/urn:pipeline:ehealth:home-care.json");
    let stored = json_of(&std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display())));
    assert_eq!(stored, saved);
    let err = server.civitas(&["pipeline", "plan", &campaign, "--save"]).fails_with(1).to_string();
    assert!(err.contains("apply -f"), "--save needs a stored pipeline: {err}");

    // A requirement no site meets: E0300 with the nearest site, exit 1.
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(example("e-health.civ"))
        .unwrap()
        .replace("require capability home-gateway", "require capability home-gateway, gpu");
    let file = write_file(dir.path(), "gpu.civ", &text);
    let err = server.civitas(&["pipeline", "plan", file.to_str().unwrap()]).fails_with(1).to_string();
    assert!(err.contains("error[E0300]") && err.contains("nearest site: urn:site:vienna:edge-gw-1"), "{err}");
    assert!(err.contains(&format!("{}:18:5", file.display())), "{err}");

    // An unknown environment is named with the known ones.
    let err = server.civitas(&["pipeline", "plan", &campaign, "--env", "paris"]).fails_with(1).to_string();
    assert!(err.contains("\"paris\"") && err.contains("--env-file"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plan_api_stores_the_plan_with_the_pipeline_version() {
    let server = tokio::task::spawn_blocking(|| {
        let server = Server::start();
        apply_city(&server);
        server.civitas(&["apply", "-f", &example("marketing-campaign.civ")]).ok();
        server
    })
    .await
    .unwrap();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    let url = format!("{}/api/v1/pipelines/urn:pipeline:marketing:campaign/plan", server.url);

    // Nothing stored yet.
    let resp = http.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);

    // POST ?env=vienna with the environment's values: 201 and the plan.
    let resp = http
        .post(format!("{url}?env=vienna"))
        .json(&json!({"parameters": {"jurisdiction": "AT", "cloud": "azure"}}))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let plan: Value = resp.json().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{plan:#}");
    assert_eq!(plan["pipeline"], "urn:pipeline:marketing:campaign");
    assert_eq!(plan["pipelineVersion"], "1.0");
    assert_eq!(plan["environment"], "vienna");
    assert_eq!(site_of(&plan, "redirector"), "urn:site:vienna:edge-pop-1");
    assert_eq!(site_of(&plan, "reporting"), "urn:site:cloud:azure-austria-east");

    // GET returns the stored plan.
    let resp = http.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let stored: Value = resp.json().await.unwrap();
    assert_eq!(stored, plan);

    // A new version of the pipeline, planned again: the stored plan follows the version.
    let got = server.civitas(&["get", "pipeline", "urn:pipeline:marketing:campaign", "-o", "json"]);
    let mut doc = json_of(got.ok());
    doc["version"] = json!("1.1");
    let resp = http.post(format!("{}/api/v1/pipelines", server.url)).json(&doc).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{}", resp.text().await.unwrap());
    // No site is under French law: refused with the requirement to relax, nothing replaced.
    let resp = http
        .post(format!("{url}?env=paris"))
        .json(&json!({"parameters": {"jurisdiction": "FR"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = resp.json().await.unwrap();
    assert!(problem["errors"].to_string().contains("E0300"), "{problem:#}");
    let stored: Value = http.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(stored["pipelineVersion"], "1.0", "a refused plan replaces nothing");
    let plan: Value = http
        .post(format!("{url}?env=graz"))
        .json(&json!({"parameters": {"jurisdiction": "AT", "cloud": "google"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(plan["pipelineVersion"], "1.1", "{plan:#}");
    let stored: Value = http.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(stored["pipelineVersion"], "1.1");
    assert_eq!(stored["environment"], "graz");

    // The generic sub-resources of the collection still answer beside the plan route.
    let versions: Value = http
        .get(format!("{}/api/v1/pipelines/urn:pipeline:marketing:campaign/versions", server.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(versions["versions"], json!(["1.0", "1.1"]), "{versions:#}");

    // An invalid Pipeline document is refused with the checker's diagnostics at pointers.
    let mut bad = doc.clone();
    bad["name"] = json!("urn:pipeline:broken");
    bad["stages"][1]["inputs"][0]["from"]["stage"] = json!("nowhere");
    let resp = http.post(format!("{}/api/v1/apply", server.url)).json(&json!([bad])).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = resp.json().await.unwrap();
    let errors = problem["errors"].as_array().cloned().unwrap_or_default();
    assert!(
        errors.iter().any(|e| {
            e["pointer"].as_str().is_some_and(|p| p.starts_with("/0/stages/1/inputs/0"))
                && e["detail"].to_string().contains("E0202")
        }),
        "{problem:#}"
    );
    let resp = http.get(format!("{}/api/v1/pipelines/urn:pipeline:broken", server.url)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND, "nothing stored");

    // The plan of an unknown pipeline: 404.
    let resp = http.post(format!("{}/api/v1/pipelines/urn:pipeline:none/plan", server.url)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    // A name that is no URN: 400, as a problem document.
    let resp = http.get(format!("{}/api/v1/pipelines/not-a-urn/plan", server.url)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let problem: Value = resp.json().await.unwrap();
    assert_eq!(problem["errors"][0]["parameter"], "name", "{problem:#}");
    tokio::task::spawn_blocking(move || drop(server)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_plans_of_other_pipelines_hold_their_capacity() {
    let server = tokio::task::spawn_blocking(|| {
        let server = Server::start();
        let dir = tempfile::tempdir().unwrap();
        let site = json!({"@type": "Site", "name": "urn:site:test:one", "version": "1.0", "tier": "edge",
            "region": "r", "capacity": {"cpuCores": 1, "memoryBytes": 1073741824}});
        write_file(dir.path(), "site.json", &site.to_string());
        for p in ["a", "b"] {
            let text = format!(
                "pipeline urn:pipeline:test:{p} {{\n  version \"1.0\"\n  stage work {{\n    run builtin \"x\"\n    \
                 trigger every 1m\n    resources cpu 0.6, memory 128MiB\n  }}\n}}\n"
            );
            write_file(dir.path(), &format!("{p}.civ"), &text);
        }
        server.civitas(&["apply", "-f", dir.path().to_str().unwrap()]).ok();
        server
    })
    .await
    .unwrap();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    let plan = |p: &'static str| {
        let http = http.clone();
        let url = format!("{}/api/v1/pipelines/urn:pipeline:test:{p}/plan", server.url);
        async move { http.post(url).send().await.unwrap() }
    };

    // a takes 0.6 of the site's one core.
    let resp = plan("a").await;
    assert_eq!(resp.status(), StatusCode::CREATED, "{}", resp.text().await.unwrap());
    // b does not fit beside a's stored plan: refused, with the stage to relax.
    let resp = plan("b").await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = resp.json().await.unwrap();
    assert!(problem["errors"].to_string().contains("E0300"), "{problem:#}");
    // a planned again does not compete with its own earlier plan.
    let resp = plan("a").await;
    assert_eq!(resp.status(), StatusCode::CREATED, "{}", resp.text().await.unwrap());
    tokio::task::spawn_blocking(move || drop(server)).await.unwrap();
}
