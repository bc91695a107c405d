//! `civitas migrations …` and `civitas replicas …`: why views moved or did not, the plans
//! waiting for a person, pins, and the replicas a node holds.

use reqwest::Method;
use serde_json::{Value, json};

use crate::client::Client;
use crate::output::{self, Format, Table};

/// `civitas migrations …`
#[derive(Debug, clap::Subcommand)]
pub enum MigrationsCommand {
    /// List the plans waiting for a person (outside the confidence interval).
    #[command(after_help = "Examples:\n  civitas migrations pending\n  civitas migrations pending -o json")]
    Pending {
        /// Output format.
        #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// Approve a waiting plan: the node executes it now.
    #[command(after_help = "Examples:\n  civitas migrations approve 3")]
    Approve {
        /// The plan's id (from `civitas migrations pending`).
        id: u64,
    },
    /// Reject a waiting plan.
    #[command(after_help = "Examples:\n  civitas migrations reject 3 --reason 'storage at the edge is reserved'")]
    Reject {
        /// The plan's id.
        id: u64,
        /// Why (kept in the event log).
        #[arg(long)]
        reason: Option<String>,
    },
    /// List migration events: candidates, plans, decisions, executions, refusals.
    #[command(
        after_help = "Examples:\n  civitas migrations list\n  civitas migrations list --view urn:urbem:buildings:blocks --after 40"
    )]
    List {
        /// Only events with a larger id.
        #[arg(long, value_name = "ID")]
        after: Option<u64>,
        /// Only events of this view (full URN).
        #[arg(long, value_name = "URN")]
        view: Option<String>,
        /// Output format.
        #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// Show one event with the whole decision it belongs to (plans, costs, confidence, explanation).
    #[command(after_help = "Examples:\n  civitas migrations show 12")]
    Show {
        /// The event's id.
        id: u64,
        /// Output format.
        #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// Pin a view: never move it, keep it at a site, or remove its pin.
    #[command(
        after_help = "Examples:\n  civitas migrations pin urn:urbem:mobility:live --never\n  civitas migrations pin urn:urbem:buildings:blocks --keep-at urn:site:vienna\n  civitas migrations pin urn:urbem:buildings:blocks --none"
    )]
    Pin {
        /// The view (full URN).
        view: String,
        /// Never move the view.
        #[arg(long, conflicts_with_all = ["keep_at", "none"])]
        never: bool,
        /// Only ever move it to this site.
        #[arg(long, value_name = "SITE", conflicts_with = "none")]
        keep_at: Option<String>,
        /// Remove its pin.
        #[arg(long)]
        none: bool,
    },
}

/// `civitas replicas …`
#[derive(Debug, clap::Subcommand)]
pub enum ReplicasCommand {
    /// List the replicas this node holds: view, strategy, freshness lag, whether traffic uses it.
    #[command(
        after_help = "Examples:\n  civitas replicas list\n  civitas --server http://127.0.0.2:7070 replicas list -o json"
    )]
    List {
        /// Output format.
        #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// Delete the replica of a view: it is deregistered at once (reads go elsewhere) and its
    /// data — files, or a SQL replica's tables, subscription, slot and publication — goes after `replicas.retire_grace_seconds` (30 s).
    #[command(after_help = "Examples:\n  civitas replicas delete urn:city:buildings:blocks")]
    Delete {
        /// The view's full name.
        view: String,
    },
}

/// Runs `civitas migrations …`.
pub async fn run(client: &Client, cmd: &MigrationsCommand) -> anyhow::Result<()> {
    match cmd {
        MigrationsCommand::Pending { output } => {
            let v = client.get_json(client.api_url(&["migrations", "pending"])?).await?;
            if *output != Format::Table {
                return output::print_value(*output, &v);
            }
            let mut t = Table::new(&["ID", "VIEW", "TARGET", "CONFIDENCE", "BENEFIT_PER_H", "COST_PER_H", "REASON"]);
            for p in items(&v) {
                let plan = p.get("plan").cloned().unwrap_or_default();
                t.push(vec![
                    output::field(p, "id"),
                    output::field(&plan, "view"),
                    output::field(&plan, "targetSite"),
                    output::number(plan.get("confidence"), 3),
                    output::number(plan.get("benefitPerHour"), 3),
                    output::number(plan.get("costPerHour"), 3),
                    p.get("reason").map(reason).unwrap_or_default(),
                ]);
            }
            print_table(t, "no plan waits for approval")
        }
        MigrationsCommand::Approve { id } => {
            let id = id.to_string();
            let v = client
                .send_json(Method::POST, client.api_url(&["migrations", "pending", &id, "approve"])?, None)
                .await?;
            let plan = v.get("plan").cloned().unwrap_or_default();
            output::print_text(&format!(
                "approved #{id}: copying {} to {} (see `civitas migrations list`, `civitas replicas list`)\n",
                output::field(&plan, "view"),
                output::field(&plan, "targetSite")
            ))
        }
        MigrationsCommand::Reject { id, reason } => {
            let id = id.to_string();
            let body = reason.as_ref().map(|r| json!({ "reason": r }));
            let url = client.api_url(&["migrations", "pending", &id, "reject"])?;
            let v = client.send_json(Method::POST, url, body.as_ref()).await?;
            output::print_text(&format!("rejected #{id}: {}\n", output::field(&v, "reason")))
        }
        MigrationsCommand::List { after, view, output } => {
            let mut url = client.api_url(&["migrations", "events"])?;
            if let Some(a) = after {
                url.query_pairs_mut().append_pair("after", &a.to_string());
            }
            if let Some(v) = view {
                url.query_pairs_mut().append_pair("view", v);
            }
            let v = client.get_json(url).await?;
            if *output != Format::Table {
                return output::print_value(*output, &v);
            }
            let mut t = Table::new(&["ID", "DECISION", "AT_UNIX_MS", "KIND", "VIEW", "SUMMARY"]);
            for e in items(&v) {
                t.push(vec![
                    output::field(e, "id"),
                    output::field(e, "consideration"),
                    output::field(e, "atUnixMs"),
                    output::field(e, "kind"),
                    output::field(e, "view"),
                    output::field(e, "summary"),
                ]);
            }
            print_table(t, "no migration event yet")
        }
        MigrationsCommand::Show { id, output } => {
            let v = client.get_json(client.api_url(&["migrations", "events", &id.to_string()])?).await?;
            if *output != Format::Table {
                return output::print_value(*output, &v);
            }
            let mut out = String::new();
            for e in v.get("consideration").and_then(Value::as_array).into_iter().flatten() {
                out.push_str(&format!(
                    "#{} {} {}: {}\n",
                    output::field(e, "id"),
                    output::field(e, "kind"),
                    output::field(e, "view"),
                    output::field(e, "summary")
                ));
                if let Some(plan) = e.get("plan") {
                    for line in plan.get("explanation").and_then(Value::as_array).into_iter().flatten() {
                        out.push_str(&format!("    {}\n", line.as_str().unwrap_or_default()));
                    }
                }
            }
            output::print_text(&out)
        }
        MigrationsCommand::Pin { view, never, keep_at, none } => {
            let body = match (never, keep_at, none) {
                (true, None, false) => json!({ "view": view, "pin": "never" }),
                (false, Some(site), false) => json!({ "view": view, "pin": "keepAt", "site": site }),
                (false, None, true) => json!({ "view": view, "pin": "none" }),
                _ => anyhow::bail!("say one of --never, --keep-at SITE or --none"),
            };
            let v = client.send_json(Method::POST, client.api_url(&["migrations", "pins"])?, Some(&body)).await?;
            output::print_text(&format!("{view}: pin {}\n", v.get("pin").map(Value::to_string).unwrap_or_default()))
        }
    }
}

/// Runs `civitas replicas …`.
pub async fn run_replicas(client: &Client, cmd: &ReplicasCommand) -> anyhow::Result<()> {
    match cmd {
        ReplicasCommand::List { output } => {
            let v = client.get_json(client.api_url(&["replicas"])?).await?;
            if *output != Format::Table {
                return output::print_value(*output, &v);
            }
            let mut t = Table::new(&[
                "VIEW",
                "REPLICA",
                "PHASE",
                "STRATEGY",
                "LAG_S",
                "BOUND_S",
                "FRESH",
                "BYTES",
                "LAST_ERROR",
            ]);
            for r in items(&v) {
                t.push(vec![
                    output::field(r, "view"),
                    output::field(r, "id"),
                    output::field(r, "phase"),
                    output::field(r, "strategy"),
                    output::number(r.get("freshnessLagSeconds"), 3),
                    output::number(r.get("stalenessBoundSeconds"), 3),
                    output::field(r, "fresh"),
                    output::field(r, "bytes"),
                    output::field(r, "lastError"),
                ]);
            }
            print_table(t, "this node holds no replica")
        }
        ReplicasCommand::Delete { view } => {
            let r = client.send_json(Method::DELETE, client.api_url(&["replicas", view])?, None).await?;
            println!(
                "deleted the replica {} of {view}: deregistered now, its data goes after the grace period",
                output::field(&r, "id")
            );
            Ok(())
        }
    }
}

fn items(v: &Value) -> impl Iterator<Item = &Value> {
    v.get("items").and_then(Value::as_array).into_iter().flatten()
}

fn print_table(t: Table, empty: &str) -> anyhow::Result<()> {
    let rendered = t.render();
    if rendered.lines().count() <= 1 {
        return output::print_text(&format!("{empty}\n"));
    }
    output::print_text(&rendered)
}

fn reason(v: &Value) -> String {
    match (v.get("kind").and_then(Value::as_str), v.get("confidence"), v.get("low"), v.get("high")) {
        (Some(kind), Some(c), Some(l), Some(h)) => {
            format!("{kind}: confidence {} outside {}..{}", output::number(Some(c), 3), l, h)
        }
        (Some(kind), ..) => kind.to_string(),
        _ => v.to_string(),
    }
}
