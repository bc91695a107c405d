//! `civitas apply -f FILE|DIR`: loads documents from files into one batch, sends it to
//! `POST /api/v1/apply`, and maps the server's `/<index>/…` pointers back to the files.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;

use crate::client::{Client, ClientError};
use crate::output::{self, Format};

/// Arguments of `civitas apply`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  # Create or update every document of a directory, as one all-or-nothing batch
  civitas apply -f examples/urbem

  # Apply one file (JSON, JSON-LD or YAML; one document or an array)
  civitas apply -f examples/urbem/units.json

  # Compile a pipeline written in the DSL and store it (nothing is stored on an error)
  civitas apply -f examples/pipelines/marketing-campaign.civ

  # Check what would change without storing anything
  civitas apply -f examples/urbem --dry-run

  # Read documents from standard input and print the server's report as JSON
  cat unit.yaml | civitas apply -f - -o json")]
pub struct ApplyArgs {
    /// A `.json`, `.jsonld`, `.yaml`, `.yml` or `.civ` (pipeline DSL) file, a directory of them
    /// (not recursive, in name order), or `-` for standard input (JSON or YAML).
    #[arg(short = 'f', long = "filename", value_name = "FILE|DIR")]
    pub path: PathBuf,
    /// Validate against the node's catalog without storing anything.
    #[arg(long)]
    pub dry_run: bool,
    /// `table` prints one line per document; `json` and `yaml` print the server's report.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

/// Runs `civitas apply`.
pub async fn run(client: &Client, args: &ApplyArgs) -> anyhow::Result<()> {
    let batch = Batch::load(&args.path)?;
    let mut url = client.api_url(&["apply"])?;
    if args.dry_run {
        url.query_pairs_mut().append_pair("dryRun", "true");
    }
    let body = Value::Array(batch.documents.clone());
    let report = match client.send_json(Method::POST, url, Some(&body)).await {
        Ok(r) => r,
        Err(e) => return Err(batch.locate_errors(e)),
    };
    if args.output != Format::Table {
        return output::print_value(args.output, &report);
    }
    let report: ApplyReport = serde_json::from_value(report).context("the node's apply report is not understood")?;
    let suffix = if report.dry_run { " (dry run)" } else { "" };
    let mut text = String::new();
    for r in &report.results {
        text.push_str(&format!(
            "{}/{} {} (version {}){suffix}\n",
            r.type_name.to_ascii_lowercase(),
            r.name,
            r.outcome,
            r.version
        ));
    }
    output::print_text(&text)
}

/// The answer of an apply.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApplyReport {
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    results: Vec<ApplyResult>,
}

/// What happened to one document.
#[derive(Debug, Deserialize)]
struct ApplyResult {
    #[serde(rename = "type")]
    type_name: String,
    name: String,
    version: String,
    outcome: String,
}

/// Where a document of the batch came from.
#[derive(Debug, Clone, PartialEq)]
struct Origin {
    file: PathBuf,
    /// Its index in the file, when the file held several documents (an array, or YAML `---`).
    index: Option<usize>,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(i) = self.index {
            write!(f, "[{i}]")?;
        }
        Ok(())
    }
}

/// Documents to send as one batch, each with its origin.
#[derive(Debug)]
pub struct Batch {
    documents: Vec<Value>,
    origins: Vec<Origin>,
}

impl Batch {
    /// Loads a file, a directory (every file with a known extension, in name order) or `-`.
    pub fn load(path: &Path) -> anyhow::Result<Batch> {
        let mut batch = Batch { documents: Vec::new(), origins: Vec::new() };
        if path == Path::new("-") {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).context("cannot read standard input")?;
            let looks_json = text.trim_start().starts_with(['{', '[']);
            batch.add_text(Path::new("<stdin>"), &text, if looks_json { Syntax::Json } else { Syntax::Yaml })?;
            return Ok(batch);
        }
        let meta = std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
        if meta.is_dir() {
            let mut files = Vec::new();
            for entry in std::fs::read_dir(path).with_context(|| format!("cannot read directory {}", path.display()))? {
                let entry = entry.with_context(|| format!("cannot read directory {}", path.display()))?;
                let p = entry.path();
                if syntax_of(&p).is_some() && entry.file_type().is_ok_and(|t| !t.is_dir()) {
                    files.push(p);
                }
            }
            if files.is_empty() {
                bail!("{}: the directory holds no .json, .jsonld, .yaml, .yml or .civ file", path.display());
            }
            files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
            let (civ, other): (Vec<PathBuf>, Vec<PathBuf>) =
                files.into_iter().partition(|f| matches!(syntax_of(f), Some(Syntax::Civ)));
            for f in other {
                batch.add_file(&f)?;
            }
            batch.add_pipelines(&civ)?;
        } else if let Some(Syntax::Civ) = syntax_of(path) {
            batch.add_pipelines(&[path.to_path_buf()])?;
        } else {
            batch.add_file(path)?;
        }
        Ok(batch)
    }

    fn add_file(&mut self, path: &Path) -> anyhow::Result<()> {
        let syntax = match syntax_of(path) {
            Some(s @ (Syntax::Json | Syntax::Yaml)) => s,
            _ => bail!("{}: not a .json, .jsonld, .yaml, .yml or .civ file", path.display()),
        };
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        self.add_text(path, &text, syntax)
    }

    /// Compiles `.civ` files together (so a pipeline may use environments of another file)
    /// and adds every pipeline as its `Pipeline` JSON-LD document, the same document
    /// `civitas get pipeline NAME -o json` returns. Any error refuses the whole batch with
    /// the compiler's diagnostics; warnings go to standard error.
    fn add_pipelines(&mut self, files: &[PathBuf]) -> anyhow::Result<()> {
        if files.is_empty() {
            return Ok(());
        }
        let checked = civitas_pipeline::check_files(files).map_err(|d| {
            // The compiler's own rendering (`error[E…]`, `file:line:col`, caret, hint) first;
            // the binary's `error:` line then sums it up.
            eprintln!("{}", d.render().trim_end());
            anyhow::anyhow!("{} error(s) in the pipeline files; nothing was applied", d.error_count())
        })?;
        if !checked.warnings.items.is_empty() {
            eprintln!("{}", checked.warnings.render().trim_end());
        }
        for file in files {
            let name = file.display().to_string();
            let source = checked.warnings.sources.iter().position(|s| s.name == name);
            let ours: Vec<_> = checked.pipelines.iter().filter(|p| Some(p.source) == source).collect();
            let single = ours.len() == 1;
            for (i, p) in ours.into_iter().enumerate() {
                self.origins.push(Origin { file: file.clone(), index: (!single).then_some(i) });
                self.documents.push(civitas_pipeline::to_json(&p.pipeline));
            }
        }
        Ok(())
    }

    fn add_text(&mut self, path: &Path, text: &str, syntax: Syntax) -> anyhow::Result<()> {
        let values = match syntax {
            Syntax::Json => vec![serde_json::from_str::<Value>(text).map_err(|e| {
                anyhow::anyhow!("{}:{}:{}: invalid JSON: {}", path.display(), e.line(), e.column(), json_message(&e))
            })?],
            Syntax::Yaml => {
                let mut values = Vec::new();
                for doc in serde_yaml::Deserializer::from_str(text) {
                    let value = Value::deserialize(doc).map_err(|e| match e.location() {
                        Some(l) => anyhow::anyhow!("{}:{}:{}: invalid YAML: {e}", path.display(), l.line(), l.column()),
                        None => anyhow::anyhow!("{}: invalid YAML: {e}", path.display()),
                    })?;
                    if !value.is_null() {
                        values.push(value);
                    }
                }
                values
            }
            Syntax::Civ => bail!("{}: pipeline DSL is compiled with its files, not read as documents", path.display()),
        };
        // One object alone in a file is named by the file; anything else by file[index].
        let (documents, single) = match <[Value; 1]>::try_from(values) {
            Ok([Value::Array(items)]) => (items, false),
            Ok([one]) => (vec![one], true),
            Err(values) => {
                (values.into_iter().flat_map(|v| if let Value::Array(a) = v { a } else { vec![v] }).collect(), false)
            }
        };
        if documents.is_empty() {
            bail!("{}: the file holds no document", path.display());
        }
        for (i, d) in documents.iter().enumerate() {
            if !d.is_object() {
                let at = Origin { file: path.to_path_buf(), index: (!single).then_some(i) };
                bail!("{at}: expected a JSON-LD document (an object), found {}", civitas_model::json_type_name(d));
            }
        }
        for i in 0..documents.len() {
            self.origins.push(Origin { file: path.to_path_buf(), index: (!single).then_some(i) });
        }
        self.documents.extend(documents);
        Ok(())
    }

    /// Where the server's pointer `/<index>/rest` lies in the user's files: `file[i] /rest`.
    fn locate(&self, pointer: &str) -> Option<String> {
        let rest = pointer.strip_prefix('/')?;
        let (index, tail) = rest.split_once('/').map_or((rest, ""), |(i, t)| (i, t));
        let origin = self.origins.get(index.parse::<usize>().ok()?)?;
        Some(if tail.is_empty() { origin.to_string() } else { format!("{origin} /{tail}") })
    }

    /// Rewrites the pointers of a problem answer so they name files; other errors pass through.
    fn locate_errors(&self, error: anyhow::Error) -> anyhow::Error {
        match error.downcast::<ClientError>() {
            Ok(ClientError::Problem(mut p)) => {
                for e in &mut p.errors {
                    e.located = e.pointer.as_deref().and_then(|ptr| self.locate(ptr));
                }
                ClientError::Problem(p).into()
            }
            Ok(other) => other.into(),
            Err(e) => e,
        }
    }
}

/// How a file is written.
#[derive(Debug, Clone, Copy)]
enum Syntax {
    Json,
    Yaml,
    /// The pipeline DSL, compiled by `civitas-pipeline`.
    Civ,
}

fn syntax_of(path: &Path) -> Option<Syntax> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    match ext.as_str() {
        "json" | "jsonld" => Some(Syntax::Json),
        "yaml" | "yml" => Some(Syntax::Yaml),
        "civ" => Some(Syntax::Civ),
        _ => None,
    }
}

/// serde_json's message without its trailing ` at line L column C` (the caller puts them first).
fn json_message(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn a_directory_becomes_one_batch_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "b.json", r#"[{"name": "urn:a:2"}, {"name": "urn:a:3"}]"#);
        write(dir.path(), "a.yaml", "name: urn:a:1\n");
        write(dir.path(), "c.yml", "- name: urn:a:4\n---\nname: urn:a:5\n");
        write(dir.path(), "README.md", "not a document");
        let b = Batch::load(dir.path()).unwrap();
        let names: Vec<_> = b.documents.iter().map(|d| d["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["urn:a:1", "urn:a:2", "urn:a:3", "urn:a:4", "urn:a:5"]);
        let d = dir.path().display();
        assert_eq!(b.locate("/0/views/0/name").unwrap(), format!("{d}/a.yaml /views/0/name"));
        assert_eq!(b.locate("/2/version").unwrap(), format!("{d}/b.json[1] /version"));
        assert_eq!(b.locate("/4").unwrap(), format!("{d}/c.yml[1]"));
        assert_eq!(b.locate("/5/x"), None);
        assert_eq!(b.locate("/name"), None);
        assert_eq!(b.locate(""), None);
    }

    #[test]
    fn a_single_document_array_keeps_its_index() {
        let dir = tempfile::tempdir().unwrap();
        let f = write(dir.path(), "one.json", r#"[{"name": "urn:a:1"}]"#);
        let b = Batch::load(&f).unwrap();
        assert_eq!(b.locate("/0/name").unwrap(), format!("{}[0] /name", f.display()));
        let f = write(dir.path(), "obj.jsonld", r#"{"name": "urn:a:1"}"#);
        let b = Batch::load(&f).unwrap();
        assert_eq!(b.locate("/0/name").unwrap(), format!("{} /name", f.display()));
    }

    #[test]
    fn local_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = write(dir.path(), "bad.json", "{\n  \"name\": \"urn:a:1\",\n  oops\n}\n");
        let e = Batch::load(&f).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}:3:3: invalid JSON: key must be a string", f.display())), "{e}");

        let f = write(dir.path(), "bad.yaml", "name: [unclosed\n");
        let e = Batch::load(&f).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}:", f.display())) && e.contains("invalid YAML"), "{e}");

        let f = write(dir.path(), "empty.json", "[]");
        let e = Batch::load(&f).unwrap_err().to_string();
        assert_eq!(e, format!("{}: the file holds no document", f.display()));

        let f = write(dir.path(), "scalar.json", "[{}, 3]");
        let e = Batch::load(&f).unwrap_err().to_string();
        assert_eq!(e, format!("{}[1]: expected a JSON-LD document (an object), found a number", f.display()));

        let empty = tempfile::tempdir().unwrap();
        let e = Batch::load(empty.path()).unwrap_err().to_string();
        assert!(e.contains(&empty.path().display().to_string()) && e.contains("no .json"), "{e}");

        let missing = dir.path().join("missing.json");
        let e = format!("{:#}", Batch::load(&missing).unwrap_err());
        assert!(e.contains("missing.json"), "{e}");
    }
}
