//! `civitas sdd activate|status|deactivate|events`: the paper's SDD API from the command line.

use reqwest::Method;
use serde_json::{Value, json};

use crate::client::Client;
use crate::output::{self, Format, Table};

/// `civitas sdd …`
#[derive(Debug, clap::Subcommand)]
pub enum SddCommand {
    /// Start watching views with triggers and a confidence interval (replaces any earlier activation).
    #[command(after_help = "\
Examples:
  # Fire when a view's median response time stays over 3 s; plans with confidence 0.8..1.0 run by themselves
  civitas sdd activate --trigger 'response_time.p50 > 3s' --confidence 0.8..1.0

  # Several triggers, with hold time, minimum samples and cooldown
  civitas sdd activate --trigger 'response_time.p95 >= 800ms for 30s min 50 cooldown 10m' \\
                       --trigger 'frequency.rate > 2' --confidence 0.9..1.0")]
    Activate {
        /// A trigger: `<field> <op> <value> [for <duration>] [min <n>] [cooldown <duration>]` (see docs/sdd.md).
        #[arg(long = "trigger", value_name = "TRIGGER", required = true)]
        triggers: Vec<String>,
        /// Confidence interval `LOW..HIGH` within which plans are carried out without a person.
        #[arg(long, value_name = "LOW..HIGH", default_value = "0.8..1.0")]
        confidence: String,
        /// Output format.
        #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// Show per view the analysis and the state of every trigger.
    #[command(after_help = "\
Examples:
  civitas sdd status
  civitas sdd status -o json")]
    Status {
        /// Output format.
        #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// Stop evaluating triggers (analysis goes on).
    #[command(after_help = "\
Examples:
  civitas sdd deactivate")]
    Deactivate,
    /// List SDD events: activations, deactivations, fired triggers.
    #[command(after_help = "\
Examples:
  civitas sdd events
  civitas sdd events --after 41 -o json")]
    Events {
        /// Only events with a larger id.
        #[arg(long, value_name = "ID")]
        after: Option<u64>,
        /// Output format.
        #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Table)]
        output: Format,
    },
}

/// Runs `civitas sdd …`.
pub async fn run(client: &Client, cmd: &SddCommand) -> anyhow::Result<()> {
    match cmd {
        SddCommand::Activate { triggers, confidence, output } => {
            let body = json!({"triggers": triggers, "confidence": confidence});
            let status = client.send_json(Method::POST, client.api_url(&["sdd", "activate"])?, Some(&body)).await?;
            print_status(*output, &status)
        }
        SddCommand::Status { output } => {
            let status = client.get_json(client.api_url(&["sdd", "status"])?).await?;
            print_status(*output, &status)
        }
        SddCommand::Deactivate => {
            let status = client.send_json(Method::POST, client.api_url(&["sdd", "deactivate"])?, None).await?;
            print_status(Format::Table, &status)
        }
        SddCommand::Events { after, output } => {
            let mut url = client.api_url(&["sdd", "events"])?;
            if let Some(a) = after {
                url.query_pairs_mut().append_pair("after", &a.to_string());
            }
            let events = client.get_json(url).await?;
            if *output != Format::Table {
                return output::print_value(*output, &events);
            }
            let mut t = Table::new(&["ID", "AT_UNIX_MS", "KIND", "VIEW", "CLIENT_SITE", "TRIGGER", "VALUE"]);
            for e in events.get("events").and_then(Value::as_array).into_iter().flatten() {
                t.push(vec![
                    output::field(e, "id"),
                    output::field(e, "atUnixMs"),
                    output::field(e, "kind"),
                    output::field(e, "view"),
                    output::field(e, "clientSite"),
                    output::field(e, "trigger"),
                    output::number(e.get("value"), 2),
                ]);
            }
            output::print_text(&t.render())
        }
    }
}

fn print_status(format: Format, status: &Value) -> anyhow::Result<()> {
    if format != Format::Table {
        return output::print_value(format, status);
    }
    let active = status.get("active").and_then(Value::as_bool).unwrap_or(false);
    let mut text_out = if active {
        let c = status.get("confidence");
        let low = c.and_then(|c| c.get("low")).map(|v| v.to_string()).unwrap_or_default();
        let high = c.and_then(|c| c.get("high")).map(|v| v.to_string()).unwrap_or_default();
        let triggers: Vec<String> = status
            .get("triggers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect();
        format!("SDD active, confidence {low}..{high}\ntriggers:\n  {}\n", triggers.join("\n  "))
    } else {
        "SDD inactive (analysis goes on; no trigger is evaluated)\n".to_string()
    };
    let views = status.get("views").and_then(Value::as_array).cloned().unwrap_or_default();
    if views.is_empty() {
        text_out.push_str("no view has been requested through the data plane yet\n");
        return output::print_text(&text_out);
    }
    let mut t =
        Table::new(&["VIEW", "CLIENT_SITE", "SAMPLES", "P50_MS", "P95_MS", "RATE_PER_S", "MEAN_BYTES", "TRIGGERS"]);
    for v in &views {
        let a = v.get("analysis");
        let field = |name: &str| output::number(a.and_then(|a| a.get(name)), 2);
        let states: Vec<String> = v
            .get("triggers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|t| output::field(t, "state"))
            .collect();
        t.push(vec![
            output::field(v, "view"),
            output::field(v, "clientSite"),
            output::field(v, "samples"),
            field("response_time.p50"),
            field("response_time.p95"),
            field("frequency.rate"),
            field("size.mean"),
            if states.is_empty() { "-".into() } else { states.join(",") },
        ]);
    }
    text_out.push('\n');
    text_out.push_str(&t.render());
    output::print_text(&text_out)
}
