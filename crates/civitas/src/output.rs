//! Rendering for people (aligned tables, trees) and for scripts (JSON, YAML).

use std::io::Write;

use serde_json::Value;

/// `-o` / `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns (or one line per document) for people.
    Table,
    /// JSON, pretty-printed, for scripts.
    Json,
    /// YAML.
    Yaml,
}

/// Prints `value` as pretty JSON or YAML. `Format::Table` is the caller's business.
pub fn print_value(format: Format, value: &Value) -> anyhow::Result<()> {
    let text = match format {
        Format::Json | Format::Table => {
            let mut s = serde_json::to_string_pretty(value)?;
            s.push('\n');
            s
        }
        Format::Yaml => serde_yaml::to_string(value)?,
    };
    print_text(&text)
}

/// Writes text to stdout; a closed pipe (`civitas get units | head -1`) is not an error.
pub fn print_text(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// Columns of text, padded so they line up, kubectl-style (three spaces between columns).
pub struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new(header: &[&'static str]) -> Table {
        Table { header: header.to_vec(), rows: Vec::new() }
    }

    /// Adds a row; missing cells are blank.
    pub fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    /// The table as text, one line per row, ending in a newline.
    pub fn render(&self) -> String {
        let cols = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let header: Vec<String> = self.header.iter().map(|h| h.to_string()).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, width) in widths.iter().enumerate().take(cols) {
                let cell = row.get(i).map(String::as_str).unwrap_or("");
                line.push_str(cell);
                if i + 1 < cols {
                    line.extend(std::iter::repeat_n(' ', width - cell.chars().count() + 3));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// A labelled node of a tree drawn with box characters.
pub struct TreeNode {
    /// The node's line.
    pub label: String,
    /// Its children, drawn below it.
    pub children: Vec<TreeNode>,
}

impl TreeNode {
    /// A node without children.
    pub fn leaf(label: impl Into<String>) -> TreeNode {
        TreeNode { label: label.into(), children: Vec::new() }
    }

    /// The tree as text: the root on the first line, then `├── `/`└── ` for each child.
    pub fn render(&self) -> String {
        let mut out = format!("{}\n", self.label);
        self.render_children("", &mut out);
        out
    }

    fn render_children(&self, prefix: &str, out: &mut String) {
        for (i, child) in self.children.iter().enumerate() {
            let last = i + 1 == self.children.len();
            out.push_str(prefix);
            out.push_str(if last { "└── " } else { "├── " });
            out.push_str(&child.label);
            out.push('\n');
            child.render_children(&format!("{prefix}{}", if last { "    " } else { "│   " }), out);
        }
    }
}

/// The text at `pointer` in `doc` for a table cell: strings as they are, numbers and
/// booleans printed, `<none>` when absent.
pub fn cell(doc: &Value, pointer: &str) -> String {
    match doc.pointer(pointer) {
        None | Some(Value::Null) => "<none>".into(),
        Some(Value::String(s)) if s.is_empty() => "<none>".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) if items.is_empty() => "<none>".into(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))
            .collect::<Vec<_>>()
            .join(","),
        Some(other) => other.to_string(),
    }
}

/// The field `key` of `v` for a status table: strings as they are, other values printed,
/// `-` when absent or null.
pub fn field(v: &Value, key: &str) -> String {
    match v.get(key) {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// A number for a status table: whole numbers without decimals, others with `decimals`,
/// `-` when absent.
pub fn number(v: Option<&Value>, decimals: usize) -> String {
    match v.and_then(Value::as_f64) {
        None => "-".into(),
        Some(n) if n.fract() == 0.0 => format!("{n:.0}"),
        Some(n) => format!("{n:.decimals$}"),
    }
}

/// The number of elements of the array at `pointer` (0 when absent).
pub fn count(doc: &Value, pointer: &str) -> String {
    doc.pointer(pointer).and_then(Value::as_array).map_or(0, Vec::len).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_align_their_columns() {
        let mut t = Table::new(&["NAME", "VERSION", "TYPE"]);
        t.push(vec!["urn:urbem:buildings".into(), "1.0".into(), "nosql:mongodb".into()]);
        t.push(vec!["urn:a:b".into(), "10.2.1".into(), "".into()]);
        assert_eq!(
            t.render(),
            "NAME                  VERSION   TYPE\n\
             urn:urbem:buildings   1.0       nosql:mongodb\n\
             urn:a:b               10.2.1\n"
        );
    }

    #[test]
    fn trees_draw_their_branches() {
        let tree = TreeNode {
            label: "root".into(),
            children: vec![
                TreeNode { label: "a".into(), children: vec![TreeNode::leaf("a1"), TreeNode::leaf("a2")] },
                TreeNode { label: "b".into(), children: vec![TreeNode::leaf("b1")] },
            ],
        };
        assert_eq!(tree.render(), "root\n├── a\n│   ├── a1\n│   └── a2\n└── b\n    └── b1\n");
    }

    #[test]
    fn cells_show_missing_values_as_none() {
        let d = json!({"a": "x", "n": 12.5, "l": ["p", "q"], "e": []});
        assert_eq!(cell(&d, "/a"), "x");
        assert_eq!(cell(&d, "/n"), "12.5");
        assert_eq!(cell(&d, "/l"), "p,q");
        assert_eq!(cell(&d, "/e"), "<none>");
        assert_eq!(cell(&d, "/missing"), "<none>");
        assert_eq!(count(&d, "/l"), "2");
    }
}
