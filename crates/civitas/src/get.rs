//! `civitas get KIND [NAME]`: one document, or every document of a kind (all pages).

use civitas_model::Kind;

use crate::client::Client;
use crate::kind::{parse_kind, table};
use crate::output::{self, Format};

/// Arguments of `civitas get`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  # List the data units, one line each
  civitas get units

  # One unit as JSON-LD
  civitas get unit urn:urbem:buildings -o json

  # An older version of it, as YAML
  civitas get unit urn:urbem:buildings --version 1.0 -o yaml

  # The instances of one unit, and the instances on one site
  civitas get instances --unit urn:urbem:buildings
  civitas get instances --site urn:site:melbourne

  # Units whose names start with a prefix, or of one source type
  civitas get units --prefix urn:urbem: --source-type rest")]
pub struct GetArgs {
    /// units, instances, sites, site-links, technical-units, deployment-units, deployments, pipelines
    /// (singulars, @types and short names such as du, tu, di work too).
    #[arg(value_name = "KIND", value_parser = parse_kind)]
    pub kind: Kind,
    /// The document's name (a URN); without it, every document of KIND is listed.
    #[arg(value_name = "NAME")]
    pub name: Option<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Table)]
    pub output: Format,
    /// Read this version instead of the current one.
    #[arg(long, value_name = "V", requires = "name")]
    pub version: Option<String>,
    /// List only names starting with this prefix.
    #[arg(long, conflicts_with = "name")]
    pub prefix: Option<String>,
    /// List only units of this source type (`nosql:mongodb`…).
    #[arg(long, value_name = "TYPE", conflicts_with = "name")]
    pub source_type: Option<String>,
    /// List only documents on this site.
    #[arg(long, value_name = "SITE", conflicts_with = "name")]
    pub site: Option<String>,
    /// List only documents that serve this view.
    #[arg(long, value_name = "VIEW", conflicts_with = "name")]
    pub view: Option<String>,
    /// List only documents of this data unit.
    #[arg(long, value_name = "UNIT", conflicts_with = "name")]
    pub unit: Option<String>,
}

/// Runs `civitas get`.
pub async fn run(client: &Client, args: &GetArgs) -> anyhow::Result<()> {
    let collection = args.kind.collection();
    if let Some(name) = &args.name {
        let mut url = client.api_url(&[collection, name])?;
        if let Some(v) = &args.version {
            url.query_pairs_mut().append_pair("version", v);
        }
        let doc = client.get_json(url).await?;
        return match args.output {
            Format::Table => output::print_text(&table(args.kind, std::slice::from_ref(&doc)).render()),
            f => output::print_value(f, &doc),
        };
    }
    let mut url = client.api_url(&[collection])?;
    {
        let mut q = url.query_pairs_mut();
        let filters = [
            ("prefix", &args.prefix),
            ("sourceType", &args.source_type),
            ("site", &args.site),
            ("view", &args.view),
            ("unit", &args.unit),
        ];
        for (key, value) in filters {
            if let Some(v) = value {
                q.append_pair(key, v);
            }
        }
    }
    let docs = client.list_all(url).await?;
    match args.output {
        Format::Table if docs.is_empty() => {
            eprintln!("No {collection} found.");
            Ok(())
        }
        Format::Table => output::print_text(&table(args.kind, &docs).render()),
        f => output::print_value(f, &serde_json::Value::Array(docs)),
    }
}
