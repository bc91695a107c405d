//! `civitas`: the one binary of Civitas.
//!
//! `civitas serve` runs a node in this process; every other verb is a kubectl-style client
//! of a node's HTTP API (`--server`, `CIVITAS_SERVER`). This file parses the command line and
//! dispatches; each verb lives in its own module, HTTP and error rendering in [`client`],
//! tables and JSON/YAML in [`output`].
#![forbid(unsafe_code)]

mod apply;
mod client;
mod delete;
mod demo;
mod get;
mod kind;
mod ledger;
mod migrations;
mod output;
mod pipeline;
mod proxy;
mod proxy_guard;
mod scenario;
mod sdd;
mod search;
mod serve;
mod token;
mod tree;
mod watch;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Civitas: a data and compute fabric for smart cities.
#[derive(Debug, Parser)]
#[command(
    name = "civitas",
    version,
    about = "Civitas: a data and compute fabric for smart cities",
    long_about = "Civitas: a data and compute fabric for smart cities.\n\n\
                  `civitas serve` runs a node; the other commands talk to a node's HTTP API.",
    after_help = "\
Examples:
  # Run a node
  civitas serve --data-dir ./civitas-data

  # Load the URBEM example units, instances and sites into it, then look around
  civitas apply -f examples/urbem
  civitas get units
  civitas tree urn:urbem:buildings

  # Talk to another node
  civitas --server http://10.0.0.7:7070 get sites"
)]
struct Cli {
    /// The node to talk to.
    #[arg(long, global = true, env = "CIVITAS_SERVER", default_value = "http://127.0.0.1:7070", value_name = "URL")]
    server: String,
    /// A bearer token for a node with `[security] enabled` (`civitas token create` prints one).
    #[arg(long, global = true, env = "CIVITAS_TOKEN", value_name = "TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a Civitas node in this process until SIGTERM or Ctrl-C.
    Serve(serve::ServeArgs),
    /// Create or update documents from files, as one all-or-nothing batch.
    Apply(apply::ApplyArgs),
    /// Show one document or list the documents of a kind.
    Get(get::GetArgs),
    /// Delete a document.
    Delete(delete::DeleteArgs),
    /// Show a data unit's dependency tree: views, instances, deployments, sites.
    Tree(tree::TreeArgs),
    /// Search documents of every kind by name.
    Search(search::SearchArgs),
    /// Follow the node's changes as they happen.
    Watch(watch::WatchArgs),
    /// Usage analysis and triggers (the paper's SDD API): activate, status, deactivate, events.
    #[command(
        subcommand,
        after_help = "\
Examples:
  civitas sdd activate --trigger 'response_time.p50 > 3s' --confidence 0.8..1.0
  civitas sdd status
  civitas sdd events
  civitas sdd deactivate"
    )]
    Sdd(sdd::SddCommand),
    /// Run a stand-alone data plane that follows a node's catalog.
    Proxy(proxy::ProxyArgs),
    /// Why views moved or did not: events, plans waiting for a person, approvals, pins.
    #[command(
        subcommand,
        after_help = "\
Examples:
  civitas migrations list
  civitas migrations pending
  civitas migrations approve 3
  civitas migrations show 12"
    )]
    Migrations(migrations::MigrationsCommand),
    /// The replicas a node holds and how fresh they are.
    #[command(subcommand, after_help = "Examples:\n  civitas replicas list")]
    Replicas(migrations::ReplicasCommand),
    /// Bearer tokens signed by the node (with `[security] enabled`): create, list, revoke.
    #[command(
        subcommand,
        after_help = "\
Examples:
  civitas --token \"$(cat civitas-data/security/admin.token)\" token create --subject alice --roles planner --ttl 30d
  civitas token list
  civitas token revoke 3q2-7w…"
    )]
    Token(token::TokenCommand),
    /// Append to, read, prove and verify the node's tamper-evident ledger.
    #[command(subcommand)]
    Ledger(ledger::LedgerCommand),
    /// Pipelines (the DSL): check `.civ` files, plan a pipeline on the node's sites.
    #[command(
        subcommand,
        after_help = "\
Examples:
  civitas pipeline check examples/pipelines/*.civ
  civitas apply -f examples/pipelines/marketing-campaign.civ
  civitas pipeline plan urn:pipeline:marketing:campaign --env-file examples/pipelines/environments.civ --env vienna"
    )]
    Pipeline(pipeline::PipelineCommand),
    /// Re-run the paper's evaluation: scenario one or two, with real nodes and emulated links.
    Scenario(scenario::ScenarioArgs),
    /// Scenario one with a live view of latencies and migrations, then the paper's table.
    Demo(demo::DemoArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", describe(&e).trim_end());
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let command = match cli.command {
        Command::Serve(args) => return serve::run(args),
        Command::Proxy(args) => return proxy::run(args),
        Command::Scenario(args) => return scenario::run(args),
        Command::Demo(args) => return demo::run(args),
        other => other,
    };
    // A client verb does one request after another: one thread is plenty.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let client = client::Client::with_token(&cli.server, cli.token.as_deref())?;
        match &command {
            Command::Serve(_) | Command::Proxy(_) | Command::Scenario(_) | Command::Demo(_) => {
                unreachable!("handled above")
            }
            Command::Apply(a) => apply::run(&client, a).await,
            Command::Get(a) => get::run(&client, a).await,
            Command::Delete(a) => delete::run(&client, a).await,
            Command::Tree(a) => tree::run(&client, a).await,
            Command::Search(a) => search::run(&client, a).await,
            Command::Watch(a) => watch::run(&client, a).await,
            Command::Sdd(c) => sdd::run(&client, c).await,
            Command::Migrations(c) => migrations::run(&client, c).await,
            Command::Replicas(c) => migrations::run_replicas(&client, c).await,
            Command::Token(c) => token::run(&client, c).await,
            Command::Ledger(c) => ledger::run(&cli.server, c.clone()).await,
            Command::Pipeline(c) => pipeline::run(&client, c).await,
        }
    })
}

/// The error and its causes on one line, without repeating a cause that a message already
/// quotes (many error types put their source in their own message).
fn describe(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if text.is_empty() {
            text = s;
        } else if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn every_verb_has_examples() {
        use clap::CommandFactory;
        let mut cmd = Cli::command();
        for sub in cmd.get_subcommands_mut() {
            let help = sub.render_long_help().to_string();
            assert!(help.contains("Examples:"), "`civitas {}` has no examples", sub.get_name());
            let name = sub.get_name().to_string();
            for nested in sub.get_subcommands_mut().filter(|n| n.get_name() != "help") {
                let help = nested.render_long_help().to_string();
                assert!(help.contains("Examples:"), "`civitas {name} {}` has no examples", nested.get_name());
            }
        }
    }
}
