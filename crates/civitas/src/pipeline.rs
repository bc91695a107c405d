//! `civitas pipeline check|plan`: the pipeline DSL's compiler and the scheduler from the
//! command line. `check` needs no node; `plan` places a pipeline on the catalog of the node
//! at `--server` (its sites, site links and data instances), or asks the node to plan and
//! store it (`--save`).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use civitas_model::Document;
use civitas_pipeline::schedule::{Continuum, PlanOptions};
use civitas_pipeline::{Diagnostics, check_files, check_sources, plan_checked, render_plan_table};
use reqwest::Method;
use serde_json::{Value, json};

use crate::client::Client;
use crate::output::{self, Format};

/// `civitas pipeline …`
#[derive(Debug, clap::Subcommand)]
pub enum PipelineCommand {
    /// Check `.civ` (and `.json` Pipeline) files like a compiler: every problem at once.
    #[command(after_help = "\
Examples:
  # Check pipelines and the environments they are deployed in
  civitas pipeline check examples/pipelines/*.civ

  # The diagnostics as JSON, for editors and scripts
  civitas pipeline check bad.civ -o json")]
    Check(CheckArgs),
    /// Place a pipeline's stages on the sites of the node's catalog and explain why.
    #[command(after_help = "\
Examples:
  # Plan a pipeline file in the environment `vienna` of another file
  civitas pipeline plan examples/pipelines/marketing-campaign.civ \\
      --env vienna --env-file examples/pipelines/environments.civ

  # Plan a stored pipeline, as JSON
  civitas pipeline plan urn:pipeline:marketing:campaign --env-file environments.civ --env vienna -o json

  # Let the node plan the stored pipeline and keep the plan (GET /api/v1/pipelines/NAME/plan)
  civitas pipeline plan urn:pipeline:marketing:campaign --env-file environments.civ --env vienna --save")]
    Plan(PlanArgs),
}

/// Arguments of `civitas pipeline check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// `.civ` files (pipelines and environments) or `.json` Pipeline documents.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    /// `table` prints the diagnostics as a compiler does; `json` and `yaml` print them as data.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

/// Arguments of `civitas pipeline plan`.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// A `.civ` or `.json` file (every pipeline in it is planned), or the name of a stored
    /// pipeline (`urn:pipeline:…`).
    #[arg(value_name = "FILE|NAME")]
    pub target: String,
    /// The environment whose parameter values to use (defaults only when left out).
    #[arg(long, value_name = "ENV")]
    pub env: Option<String>,
    /// A `.civ` file with `environment` blocks (repeatable).
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_files: Vec<PathBuf>,
    /// Ask the node to plan the stored pipeline NAME and keep the plan, instead of planning here.
    #[arg(long)]
    pub save: bool,
    /// `table` prints placements, objective and explanations; `json` and `yaml` the plan.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

/// Runs `civitas pipeline …`.
pub async fn run(client: &Client, command: &PipelineCommand) -> anyhow::Result<()> {
    match command {
        PipelineCommand::Check(a) => check(a),
        PipelineCommand::Plan(a) => plan(client, a).await,
    }
}

fn check(args: &CheckArgs) -> anyhow::Result<()> {
    let result = check_files(&args.files);
    let diags = match &result {
        Ok(c) => &c.warnings,
        Err(d) => d,
    };
    if args.output != Format::Table {
        output::print_value(args.output, &diagnostics_value(diags)?)?;
    } else if !diags.items.is_empty() {
        eprintln!("{}", diags.render().trim_end());
    }
    match result {
        Ok(c) => {
            if args.output == Format::Table {
                println!("{} pipeline(s) and {} environment(s) check", c.pipelines.len(), c.environments.len());
            }
            Ok(())
        }
        Err(d) => bail!("{} error(s); nothing to store until they are fixed", d.error_count()),
    }
}

/// The diagnostics as data, each item with its `position` (`file:line:col`, or
/// `file#/pointer` for JSON) so that scripts need not count bytes.
fn diagnostics_value(d: &Diagnostics) -> anyhow::Result<Value> {
    let mut value = serde_json::to_value(d)?;
    if let Some(items) = value.get_mut("items").and_then(Value::as_array_mut) {
        for (item, diag) in items.iter_mut().zip(&d.items) {
            if let Value::Object(m) = item {
                m.insert("position".into(), json!(d.position(&diag.location)));
            }
        }
    }
    Ok(value)
}

/// Prints compiler diagnostics as the compiler renders them; the binary's `error:` line
/// (this error) sums them up.
fn refused(d: &Diagnostics, what: &str) -> anyhow::Error {
    eprintln!("{}", d.render().trim_end());
    anyhow::anyhow!("{} error(s); {what}", d.error_count())
}

async fn plan(client: &Client, args: &PlanArgs) -> anyhow::Result<()> {
    let is_file = Path::new(&args.target).exists() || args.target.ends_with(".civ") || args.target.ends_with(".json");
    if args.save && is_file {
        bail!("--save plans a stored pipeline: `civitas apply -f {}` first, then plan it by name", args.target);
    }
    let mut sources: Vec<(String, String)> = Vec::new();
    if !is_file {
        let url = client.api_url(&[civitas_pipeline::PIPELINE_COLLECTION, &args.target])?;
        let doc = client.get_json(url).await?;
        sources.push((format!("{}.json", args.target), serde_json::to_string(&stored_form(doc))?));
    } else {
        sources.push((args.target.clone(), read(Path::new(&args.target))?));
    }
    for f in &args.env_files {
        sources.push((f.display().to_string(), read(f)?));
    }
    let checked = check_sources(&sources).map_err(|d| refused(&d, "nothing was planned"))?;
    if !checked.warnings.items.is_empty() {
        eprintln!("{}", checked.warnings.render().trim_end());
    }
    let environment = match &args.env {
        Some(e) => Some(checked.environment(e).with_context(|| {
            let known: Vec<&str> = checked.environments.iter().map(|e| e.name.as_str()).collect();
            format!(
                "no environment {e:?} in the files given (known: {}); pass the file with --env-file",
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            )
        })?),
        None => None,
    };
    let pipelines: Vec<_> = checked.pipelines.iter().filter(|p| p.source == 0).collect();
    if pipelines.is_empty() {
        bail!("{}: no pipeline in it", args.target);
    }
    if args.save {
        let mut url = client.api_url(&[civitas_pipeline::PIPELINE_COLLECTION, &args.target, "plan"])?;
        if let Some(e) = &args.env {
            url.query_pairs_mut().append_pair("env", e);
        }
        let values = environment.map(|e| e.values.clone()).unwrap_or_default();
        let plan = client.send_json(Method::POST, url, Some(&json!({"parameters": values}))).await?;
        return print_plan(args.output, plan);
    }
    let continuum = catalog_continuum(client).await?;
    let mut failed = 0;
    for p in pipelines {
        match plan_checked(&checked, p, environment, &continuum, &PlanOptions::default()) {
            Ok(plan) => print_plan(args.output, serde_json::to_value(&plan)?)?,
            Err(d) => {
                eprintln!("{}", d.render().trim_end());
                failed += d.error_count();
            }
        }
    }
    if failed > 0 {
        bail!("{failed} error(s); nothing was planned for the pipelines above");
    }
    Ok(())
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// A stored pipeline as the checker reads it: without the header dates every document may carry.
fn stored_form(mut doc: Value) -> Value {
    if let Value::Object(m) = &mut doc {
        m.shift_remove("creationDate");
        m.shift_remove("lastUpdate");
    }
    doc
}

fn print_plan(format: Format, plan: Value) -> anyhow::Result<()> {
    match format {
        Format::Table => {
            let plan = serde_json::from_value(plan).context("the node's plan is not understood")?;
            output::print_text(&render_plan_table(&plan))
        }
        f => output::print_value(f, &plan),
    }
}

/// The continuum of the node's catalog: every site, site link and data instance.
async fn catalog_continuum(client: &Client) -> anyhow::Result<Continuum> {
    let mut docs = Vec::new();
    for collection in ["sites", "site-links", "instances"] {
        let items = client.list_all(client.api_url(&[collection])?).await?;
        // `decode_many` refuses an empty array; an empty collection adds nothing.
        if items.is_empty() {
            continue;
        }
        let decoded = Document::decode_many(&Value::Array(items), None)
            .map_err(|e| anyhow::anyhow!("the node's {collection} do not decode: {e}"))?;
        docs.extend(decoded);
    }
    Continuum::from_documents(&docs).map_err(|e| anyhow::anyhow!("the node's catalog cannot be planned on: {e}"))
}
