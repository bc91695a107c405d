//! `civitas search TEXT`: free-text search across kinds.

use civitas_model::Kind;
use serde_json::Value;

use crate::client::Client;
use crate::kind::parse_kind;
use crate::output::{self, Format, Table, cell};

/// Arguments of `civitas search`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  # Every document whose name mentions mobility
  civitas search mobility

  # Only data units, as JSON
  civitas search buildings --kind units -o json")]
pub struct SearchArgs {
    /// Words to look for in names.
    #[arg(value_name = "TEXT")]
    pub text: String,
    /// Only documents of this kind.
    #[arg(long, value_name = "KIND", value_parser = parse_kind)]
    pub kind: Option<Kind>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

/// Runs `civitas search`.
pub async fn run(client: &Client, args: &SearchArgs) -> anyhow::Result<()> {
    let mut url = client.api_url(&["search"])?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("q", &args.text);
        if let Some(k) = args.kind {
            q.append_pair("type", k.type_name());
        }
    }
    let docs = client.list_all(url).await?;
    match args.output {
        Format::Table if docs.is_empty() => {
            eprintln!("Nothing matches {:?}.", args.text);
            Ok(())
        }
        Format::Table => {
            let mut t = Table::new(&["NAME", "TYPE", "VERSION"]);
            for d in &docs {
                t.push(vec![cell(d, "/name"), cell(d, "/@type"), cell(d, "/version")]);
            }
            output::print_text(&t.render())
        }
        f => output::print_value(f, &Value::Array(docs)),
    }
}
