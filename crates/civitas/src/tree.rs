//! `civitas tree UNIT`: a unit's dependency tree, unit → views → instances → deployment → site.

use serde_json::Value;

use crate::client::Client;
use crate::output::{self, Format, TreeNode};

/// Arguments of `civitas tree`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  # Where a unit's views are served from
  civitas tree urn:urbem:buildings

  # The same tree as JSON, for scripts
  civitas tree urn:urbem:buildings -o json")]
pub struct TreeArgs {
    /// The data unit's name (a URN).
    #[arg(value_name = "UNIT")]
    pub unit: String,
    /// `table` draws the tree; `json` and `yaml` print the server's answer.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

/// Runs `civitas tree`.
pub async fn run(client: &Client, args: &TreeArgs) -> anyhow::Result<()> {
    let tree = client.get_json(client.api_url(&["units", &args.unit, "tree"])?).await?;
    match args.output {
        Format::Table => output::print_text(&draw(&tree).render()),
        f => output::print_value(f, &tree),
    }
}

/// The tree answer as labelled nodes.
fn draw(tree: &Value) -> TreeNode {
    let root = format!("unit {}{}", text(tree, "unit"), details(&[field(tree, "version"), field(tree, "sourceType")]));
    let views = array(tree, "views").iter().map(draw_view).collect();
    TreeNode { label: root, children: views }
}

fn draw_view(view: &Value) -> TreeNode {
    let label = format!("view {}{}", text(view, "name"), details(&[field(view, "link")]));
    let instances = array(view, "instances");
    let children = if instances.is_empty() {
        vec![TreeNode::leaf("(no instances)")]
    } else {
        instances.iter().map(draw_instance).collect()
    };
    TreeNode { label, children }
}

fn draw_instance(instance: &Value) -> TreeNode {
    let label = format!(
        "instance {}{}",
        text(instance, "name"),
        details(&[field(instance, "role"), field(instance, "endpoint")])
    );
    let site = instance.get("site").filter(|s| s.is_object()).map(|s| {
        TreeNode::leaf(format!("site {}{}", text(s, "name"), details(&[field(s, "tier"), field(s, "region")])))
    });
    let deployment = instance.get("deployment").filter(|d| d.is_object()).map(|d| TreeNode {
        label: format!("deployment {}{}", text(d, "name"), details(&[field(d, "deploymentUnit")])),
        children: Vec::new(),
    });
    // The chain reads instance → deployment → site; without a deployment the site hangs off the instance.
    let children = match (deployment, site) {
        (Some(mut d), site) => {
            d.children.extend(site);
            vec![d]
        }
        (None, site) => site.into_iter().collect(),
    };
    TreeNode { label, children }
}

fn field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    field(v, key).unwrap_or("<none>")
}

fn array<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// `  (a, b)` for the values that are present; nothing when none is.
fn details(parts: &[Option<&str>]) -> String {
    let present: Vec<&str> = parts.iter().flatten().copied().collect();
    if present.is_empty() { String::new() } else { format!("  ({})", present.join(", ")) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_tree_reads_unit_view_instance_deployment_site() {
        let tree = json!({"unit": "urn:u:a", "version": "1.0", "sourceType": "rest", "views": [
            {"name": "urn:u:a:v1", "link": "/v1/", "instances": [
                {"name": "urn:u:a:i", "version": "1", "role": "origin", "endpoint": "http://h",
                 "deployment": {"name": "urn:d:x", "deploymentUnit": "urn:du:x", "site": "urn:s:m"},
                 "site": {"name": "urn:s:m", "tier": "cloud", "region": "Melbourne"}}]},
            {"name": "urn:u:a:v2", "link": "/v2/", "instances": []}]});
        assert_eq!(
            draw(&tree).render(),
            "unit urn:u:a  (1.0, rest)\n\
             ├── view urn:u:a:v1  (/v1/)\n\
             │   └── instance urn:u:a:i  (origin, http://h)\n\
             │       └── deployment urn:d:x  (urn:du:x)\n\
             │           └── site urn:s:m  (cloud, Melbourne)\n\
             └── view urn:u:a:v2  (/v2/)\n    \
                 └── (no instances)\n"
        );
    }
}
