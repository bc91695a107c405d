//! `civitas pipeline check|plan` in miniature, for trying the DSL before the CLI has the
//! verbs, and as the template of that integration: check files, build the continuum from
//! catalog documents, plan, print a table or JSON.
//!
//! usage: plan [--env NAME] [--catalog DIR] [-o table|json] [--pipeline NAME] FILE…
//! (FILE: `.civ` or `.json`; DIR: JSON-LD files of sites, site links and data instances)

use std::process::ExitCode;

use civitas_model::Document;
use civitas_pipeline::schedule::{Continuum, PlanOptions};
use civitas_pipeline::{check_files, plan_checked, render_plan_table};

fn main() -> ExitCode {
    let mut files = Vec::new();
    let (mut env, mut catalog, mut output, mut only) = (None, None, "table".to_string(), None);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--env" => env = args.next(),
            "--catalog" => catalog = args.next(),
            "-o" => output = args.next().unwrap_or_default(),
            "--pipeline" => only = args.next(),
            _ => files.push(a),
        }
    }
    let checked = match check_files(&files) {
        Ok(c) => c,
        Err(d) => {
            eprintln!("{d}");
            return ExitCode::FAILURE;
        }
    };
    if !checked.warnings.items.is_empty() {
        eprintln!("{}", checked.warnings);
    }
    let Some(dir) = catalog else {
        println!("{} pipeline(s) and {} environment(s) check", checked.pipelines.len(), checked.environments.len());
        return ExitCode::SUCCESS;
    };
    let mut docs = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&dir).expect("catalog dir").flatten().map(|e| e.path()).collect();
    entries.sort();
    for path in entries.into_iter().filter(|p| p.extension().is_some_and(|e| e == "json")) {
        let value: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("readable")).expect("JSON");
        match Document::decode_many(&value, None) {
            Ok(d) => docs.extend(d),
            Err(e) => eprintln!("skipping {}: {e}", path.display()),
        }
    }
    let continuum = Continuum::from_documents(&docs).expect("consistent catalog");
    let environment = env.as_deref().and_then(|e| checked.environment(e));
    let mut failed = false;
    for p in &checked.pipelines {
        if only.as_deref().is_some_and(|o| checked.pipeline(o) != Some(p)) {
            continue;
        }
        match plan_checked(&checked, p, environment, &continuum, &PlanOptions::default()) {
            Ok(plan) if output == "json" => println!("{}", serde_json::to_string_pretty(&plan).expect("serializes")),
            Ok(plan) => println!("{}", render_plan_table(&plan)),
            Err(d) => {
                eprintln!("{d}");
                failed = true;
            }
        }
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}
