//! `civitas watch`: follows the node's change stream (NDJSON) and prints one line per change.

use futures::StreamExt;
use serde_json::Value;

use crate::client::Client;
use crate::output::{self, Format};

/// Arguments of `civitas watch`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  # Print every change from now on: `REVISION OP TYPE NAME`
  civitas watch

  # Replay the history from revision 1, then keep following
  civitas watch --from 1

  # The raw change objects (one JSON object per line), for scripts
  civitas watch --from 1 -o json")]
pub struct WatchArgs {
    /// Start at this revision (replaying kept history); without it, only new changes.
    #[arg(long, value_name = "REV")]
    pub from: Option<u64>,
    /// `table` prints `REVISION OP TYPE NAME`; `json` the raw change lines. Heartbeats are skipped.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

/// Runs `civitas watch` until the node closes the stream.
pub async fn run(client: &Client, args: &WatchArgs) -> anyhow::Result<()> {
    if args.output == Format::Yaml {
        anyhow::bail!("watch prints `table` or `json` lines; YAML has no line-per-change form");
    }
    let mut url = client.api_url(&["watch"])?;
    if let Some(from) = args.from {
        url.query_pairs_mut().append_pair("from", &from.to_string());
    }
    let mut body = client.get_stream(url).await?.bytes_stream();
    let mut pending: Vec<u8> = Vec::new();
    let mut last_revision: Option<u64> = None;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| anyhow::anyhow!("the watch stream broke: {e}"))?;
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            if let Some(rev) = print_change(&line, args.output)? {
                last_revision = Some(rev);
            }
        }
    }
    match last_revision {
        Some(rev) => anyhow::bail!("the node closed the watch stream; resume with `civitas watch --from {}`", rev + 1),
        None => anyhow::bail!("the node closed the watch stream"),
    }
}

/// Prints one NDJSON line unless it is empty or a heartbeat; returns the change's revision.
fn print_change(line: &[u8], format: Format) -> anyhow::Result<Option<u64>> {
    let text = String::from_utf8_lossy(line);
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let change: Value = serde_json::from_str(text)
        .map_err(|e| anyhow::anyhow!("the watch stream sent a line that is not JSON: {e}"))?;
    let op = change.get("op").and_then(Value::as_str).unwrap_or("?");
    if op == "heartbeat" {
        return Ok(None);
    }
    let revision = change.get("revision").and_then(Value::as_u64);
    let line = match format {
        Format::Json => format!("{text}\n"),
        _ => format_change(&change),
    };
    output::print_text(&line)?;
    Ok(revision)
}

/// `REVISION OP TYPE NAME`.
fn format_change(change: &Value) -> String {
    let get = |k: &str| match change.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "?".into(),
        Some(other) => other.to_string(),
    };
    format!("{} {} {} {}\n", get("revision"), get("op"), get("type"), get("name"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_print_as_one_line() {
        let c = serde_json::json!({"op": "put", "revision": 7, "type": "DataUnit", "name": "urn:a:b", "document": {}});
        assert_eq!(format_change(&c), "7 put DataUnit urn:a:b\n");
        assert_eq!(print_change(br#"{"op":"heartbeat","revision":9}"#, Format::Table).unwrap(), None);
        assert_eq!(print_change(b"  \n", Format::Table).unwrap(), None);
        assert!(print_change(b"{nope", Format::Table).is_err());
    }
}
