//! `civitas token create|list|revoke`: the node's own bearer tokens (with `[security]
//! enabled`). Needs an admin token (`--token`, `CIVITAS_TOKEN`); the first one is written
//! to `<data-dir>/security/admin.token` when the node first starts with security on.

use reqwest::Method;
use serde_json::{Value, json};

use crate::client::Client;
use crate::output::{self, Format, Table};

/// `civitas token …`
#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it (only this once: the node keeps its record, not the token).
    #[command(
        after_help = "Examples:\n  civitas token create --subject alice --roles planner --ttl 30d\n  civitas token create --subject proxy-1 --roles admin --ttl 366d"
    )]
    Create {
        /// Who the token is for.
        #[arg(long)]
        subject: String,
        /// Roles, comma separated (`planner,auditor`).
        #[arg(long, value_delimiter = ',')]
        roles: Vec<String>,
        /// Groups, comma separated.
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        /// Lifetime: `3600`, `90m`, `12h`, `30d` (default: the node's `default_ttl_seconds`).
        #[arg(long)]
        ttl: Option<String>,
    },
    /// List the tokens the node issued (ids, subjects, roles, expiry, revocation).
    #[command(after_help = "Examples:\n  civitas token list\n  civitas token list -o json")]
    List {
        /// Output format.
        #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// Revoke a token by its id (or the token itself); it is refused from the next request.
    #[command(after_help = "Examples:\n  civitas token revoke 3q2-7wKx…")]
    Revoke {
        /// The token's id (from `civitas token list`) or the whole token.
        id: String,
    },
}

/// Runs `civitas token …`.
pub async fn run(client: &Client, cmd: &TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Create { subject, roles, groups, ttl } => {
            let body = json!({ "subject": subject, "roles": roles, "groups": groups, "ttl": ttl });
            let v = client.send_json(Method::POST, client.api_url(&["tokens"])?, Some(&body)).await?;
            output::print_text(&format!("{}\n", v.get("token").and_then(Value::as_str).unwrap_or_default()))
        }
        TokenCommand::List { output } => {
            let v = client.get_json(client.api_url(&["tokens"])?).await?;
            if *output != Format::Table {
                return output::print_value(*output, &v);
            }
            let mut t = Table::new(&["ID", "SUBJECT", "ROLES", "GROUPS", "EXPIRES_AT", "REVOKED_AT"]);
            for r in v.get("items").and_then(Value::as_array).into_iter().flatten() {
                let list = |k: &str| {
                    r.get(k)
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","))
                        .unwrap_or_default()
                };
                let text = |k: &str| r.get(k).filter(|v| !v.is_null()).map(|v| v.to_string()).unwrap_or("-".into());
                t.push(vec![
                    r.get("id").and_then(Value::as_str).unwrap_or_default().to_string(),
                    r.get("subject").and_then(Value::as_str).unwrap_or_default().to_string(),
                    list("roles"),
                    list("groups"),
                    text("expiresAt"),
                    text("revokedAt"),
                ]);
            }
            output::print_text(&t.render())
        }
        TokenCommand::Revoke { id } => {
            client.send_json(Method::DELETE, client.api_url(&["tokens", id])?, None).await?;
            output::print_text(&format!("revoked {id}\n"))
        }
    }
}
