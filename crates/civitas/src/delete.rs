//! `civitas delete KIND NAME`: deletes a document (and, with `--cascade`, what refers to it).

use civitas_model::Kind;
use reqwest::Method;
use serde::Deserialize;

use crate::client::Client;
use crate::kind::parse_kind;
use crate::output::{self, Format};

/// Arguments of `civitas delete`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  # Delete an instance
  civitas delete instance urn:instance:melbourne:mobility

  # Delete a unit and every document that refers to it (its instances…)
  civitas delete unit urn:urbem:buildings --cascade

  # Show what a cascading delete would remove, without removing anything
  civitas delete unit urn:urbem:buildings --cascade --dry-run")]
pub struct DeleteArgs {
    /// The kind of the document (units, instances, sites…).
    #[arg(value_name = "KIND", value_parser = parse_kind)]
    pub kind: Kind,
    /// The document's name (a URN).
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Also delete the documents that refer to it; without it, a referenced document is kept
    /// and the referrers are listed.
    #[arg(long)]
    pub cascade: bool,
    /// Report what would be deleted without deleting anything.
    #[arg(long)]
    pub dry_run: bool,
    /// `table` prints one line per deleted document; `json` and `yaml` the server's report.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

/// The answer of a delete.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeleteReport {
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    deleted: Vec<Deleted>,
}

#[derive(Debug, Deserialize)]
struct Deleted {
    #[serde(rename = "type")]
    type_name: String,
    name: String,
}

/// Runs `civitas delete`.
pub async fn run(client: &Client, args: &DeleteArgs) -> anyhow::Result<()> {
    let mut url = client.api_url(&[args.kind.collection(), &args.name])?;
    {
        let mut q = url.query_pairs_mut();
        if args.cascade {
            q.append_pair("cascade", "true");
        }
        if args.dry_run {
            q.append_pair("dryRun", "true");
        }
    }
    let report = client.send_json(Method::DELETE, url, None).await?;
    if args.output != Format::Table {
        return output::print_value(args.output, &report);
    }
    let report: DeleteReport = serde_json::from_value(report)
        .map_err(|e| anyhow::anyhow!("the node's delete report is not understood: {e}"))?;
    let suffix = if report.dry_run { " (dry run)" } else { "" };
    let text: String = report
        .deleted
        .iter()
        .map(|d| format!("{}/{} deleted{suffix}\n", d.type_name.to_ascii_lowercase(), d.name))
        .collect();
    output::print_text(&text)
}
