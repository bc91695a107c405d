//! Civitas pipelines: the application-definition DSL, its checker, the `Pipeline`
//! JSON-LD document, and the scheduler that places every stage on a site of the
//! computing continuum (edge, fog, cloud).
//!
//! - [`check_sources`] / [`check_files`]: `.civ` text (or `.json` JSON-LD) → checked
//!   [`Pipeline`]s and [`Environment`]s, or [`Diagnostics`] rendered like a compiler's
//!   (`file:line:col`, caret excerpt, hint), every problem at once.
//! - [`to_json`] / [`from_json`]: the JSON-LD document the catalog stores (collection
//!   [`PIPELINE_COLLECTION`]); the two forms round-trip.
//! - [`schedule::Continuum`] and [`schedule::plan`]: filter sites by hard requirements and
//!   free capacity, then minimise a documented global objective ([`schedule::Weights`]);
//!   exact branch and bound on small instances, a greedy heuristic with local search
//!   beyond; every placement explained; an infeasible pipeline gets the smallest set of
//!   requirements to relax. [`render_plan_table`] prints a [`schedule::Plan`] for people;
//!   the plan serialises to JSON for scripts and for the orchestrator loop.
//!
//! What it is not: it runs nothing (no provisioner, orchestrator, monitoring or
//! adaptation — those consume the [`schedule::Plan`] later), stores nothing and knows
//! nothing of HTTP. The only I/O is [`check_files`] reading the files it is given.
//!
//! Invariants: the parser never panics and is bounded ([`Limits`]); a [`Pipeline`] that
//! passed the checker has unique stage names, resolved acyclic inputs with matching types
//! and declared parameters; `from_json(&to_json(p)) == p`; every [`schedule::Plan`] meets
//! every hard requirement and every site's free capacity; the heuristic's objective is
//! never below the exact solver's.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod check;
mod diagnostics;
mod document;
mod format;
mod lexer;
mod model;
mod parser;
pub mod schedule;

use std::path::Path;

pub use diagnostics::{Diagnostic, Diagnostics, Location, Severity, SourceText, Span, line_col};
pub use document::{PIPELINE_COLLECTION, PIPELINE_TYPE, from_json, to_json};
pub use format::format_pipeline;
pub use model::*;
pub use parser::{Environment, Limits, MetricKind, ParsedFile, ParsedPipeline, SourceMap, StageSpans};
pub use schedule::render_plan_table;

/// The metrics SLOs and adaptation policies may name, with their units
/// (`latency.pNN` — any percentile 1–99 or 999 — is measured in time too).
pub const METRICS: &[(&str, MetricKind)] = &[
    ("latency.p50", MetricKind::Duration),
    ("latency.p90", MetricKind::Duration),
    ("latency.p95", MetricKind::Duration),
    ("latency.p99", MetricKind::Duration),
    ("throughput", MetricKind::Rate),
    ("availability", MetricKind::Percent),
    ("freshness", MetricKind::Duration),
    ("cpu", MetricKind::Percent),
    ("memory", MetricKind::Percent),
    ("error_rate", MetricKind::Percent),
    ("queue_depth", MetricKind::Count),
];

/// A pipeline that passed the checker, and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedPipeline {
    /// The pipeline.
    pub pipeline: Pipeline,
    /// Index of its source in [`Checked::sources`].
    pub source: usize,
    /// Its spans, when it came from DSL text (None for JSON-LD).
    pub spans: Option<SourceMap>,
    /// For JSON-LD: the document's pointer in its file (`""`, or `/2` in an array).
    pub pointer: String,
}

/// The result of checking one or more inputs that hold no error.
#[derive(Debug, Clone, Default)]
pub struct Checked {
    /// Every pipeline, in input order.
    pub pipelines: Vec<CheckedPipeline>,
    /// Every environment, in input order.
    pub environments: Vec<Environment>,
    /// The sources and the warnings found (never errors).
    pub warnings: Diagnostics,
}

impl Checked {
    /// The pipeline named `name` (full URN or its last segment).
    pub fn pipeline(&self, name: &str) -> Option<&CheckedPipeline> {
        self.pipelines.iter().find(|p| {
            let full = p.pipeline.name.as_str();
            full == name || full.rsplit(':').next() == Some(name)
        })
    }

    /// The environment named `name`.
    pub fn environment(&self, name: &str) -> Option<&Environment> {
        self.environments.iter().find(|e| e.name == name)
    }

    /// Binds a pipeline's parameters in an environment (None: defaults only).
    pub fn bind(
        &self,
        pipeline: &CheckedPipeline,
        environment: Option<&Environment>,
    ) -> Result<std::collections::BTreeMap<String, String>, Diagnostics> {
        let r = match &pipeline.spans {
            Some(spans) => check::bind(&pipeline.pipeline, environment, spans),
            None => {
                check::bind(&pipeline.pipeline, environment, &check::JsonPointers(pipeline.source, &pipeline.pointer))
            }
        };
        r.map_err(|items| Diagnostics { sources: self.warnings.sources.clone(), items })
    }

    /// Where a requirement of a stage is, for diagnostics about plans.
    pub(crate) fn requirement_location(&self, pipeline: &CheckedPipeline, stage: usize, req: usize) -> Location {
        match &pipeline.spans {
            Some(s) => check::Locate::locate(s, check::Loc::Requirement(stage, req)),
            None => check::Locate::locate(
                &check::JsonPointers(pipeline.source, &pipeline.pointer),
                check::Loc::Requirement(stage, req),
            ),
        }
    }
}

/// Plans a checked pipeline (`civitas pipeline plan FILE|NAME [--env ENV]`): binds its
/// parameters in `environment` (defaults only when None), places it on `continuum`, and
/// turns every failure — a parameter without a value, an unsatisfiable requirement (named,
/// with the nearest site), an inconsistent catalog — into diagnostics pointing at the file.
pub fn plan_checked(
    checked: &Checked,
    pipeline: &CheckedPipeline,
    environment: Option<&Environment>,
    continuum: &schedule::Continuum,
    options: &schedule::PlanOptions,
) -> Result<schedule::Plan, Diagnostics> {
    let values = checked.bind(pipeline, environment)?;
    let mut options = options.clone();
    if options.environment.is_none() {
        options.environment = environment.map(|e| e.name.clone());
    }
    let sources = checked.warnings.sources.clone();
    let whole = || match &pipeline.spans {
        Some(s) => Location::Source { source: s.source, span: s.pipeline },
        None => Location::Pointer { source: pipeline.source, pointer: pipeline.pointer.clone() },
    };
    schedule::plan(&pipeline.pipeline, &values, continuum, &options).map_err(|e| {
        let items = match e {
            schedule::ScheduleError::Infeasible(inf) => inf
                .relax
                .iter()
                .map(|r| {
                    let location = match r.requirement_index {
                        Some(j) => checked.requirement_location(pipeline, r.stage_index, j),
                        None if !r.stage.is_empty() => match &pipeline.spans {
                            Some(s) => Location::Source {
                                source: s.source,
                                span: s.stages.get(r.stage_index).map_or(s.pipeline, |x| x.name),
                            },
                            None => Location::Pointer {
                                source: pipeline.source,
                                pointer: format!("{}/stages/{}", pipeline.pointer, r.stage_index),
                            },
                        },
                        None => whole(),
                    };
                    let mut d = Diagnostic::error(
                        "E0300",
                        format!("no site in the catalog can meet `{}`", r.requirement),
                        location,
                    )
                    .label(if r.stage.is_empty() {
                        "cannot be met".to_string()
                    } else {
                        format!("stage `{}`", r.stage)
                    })
                    .hint(format!("relax this requirement: {}", r.detail));
                    if let Some(n) = &r.nearest_site {
                        d.message = format!("{} (nearest site: {n})", d.message);
                    }
                    d
                })
                .collect(),
            other => vec![Diagnostic::error("E0301", other.to_string(), whole())],
        };
        Diagnostics { sources, items }
    })
}

/// Parses and checks `.civ` sources given as `(name, text)`; a name ending in `.json`
/// is read as a JSON-LD pipeline (one document or an array) instead.
/// Errors in any source refuse them all, with every diagnostic of every source.
pub fn check_sources(sources: &[(String, String)]) -> Result<Checked, Diagnostics> {
    check_sources_with(sources, &Limits::default())
}

/// [`check_sources`] with explicit limits.
pub fn check_sources_with(sources: &[(String, String)], limits: &Limits) -> Result<Checked, Diagnostics> {
    let mut out = Checked::default();
    let mut items = Vec::new();
    let mut seen: std::collections::HashMap<String, Location> = std::collections::HashMap::new();
    for (index, (name, text)) in sources.iter().enumerate() {
        out.warnings.sources.push(SourceText { name: name.clone(), text: text.clone() });
        if name.ends_with(".json") {
            items.extend(check_json_source(index, name, text, limits, &mut out));
            continue;
        }
        let mut diags = Vec::new();
        let parsed = parser::parse(text, index, limits, &mut diags);
        for pp in parsed.pipelines {
            diags.extend(check::check_pipeline(&pp.pipeline, &pp.spans));
            let here = Location::Source { source: index, span: pp.spans.pipeline };
            if let Some(first) = seen.get(pp.pipeline.name.as_str()) {
                diags.push(
                    Diagnostic::error("E0200", format!("pipeline `{}` is defined twice", pp.pipeline.name), here)
                        .label("defined again")
                        .related(first.clone(), "first defined here"),
                );
                continue;
            }
            seen.insert(pp.pipeline.name.as_str().to_string(), here);
            out.pipelines.push(CheckedPipeline {
                pipeline: pp.pipeline,
                source: index,
                spans: Some(pp.spans),
                pointer: String::new(),
            });
        }
        out.environments.extend(parsed.environments.into_iter().map(|(e, _)| e));
        diags.sort_by_key(|d| match &d.location {
            Location::Source { span, .. } => span.start,
            Location::Pointer { .. } => 0,
        });
        items.extend(diags);
    }
    if items.iter().any(|d| d.severity == Severity::Error) {
        return Err(Diagnostics { sources: out.warnings.sources, items });
    }
    out.warnings.items = items;
    Ok(out)
}

fn check_json_source(index: usize, name: &str, text: &str, limits: &Limits, out: &mut Checked) -> Vec<Diagnostic> {
    let at = |pointer: String| Location::Pointer { source: index, pointer };
    if text.len() > limits.max_source_bytes {
        return vec![Diagnostic::error(
            "E0001",
            format!("the file is larger than {} bytes", limits.max_source_bytes),
            at(String::new()),
        )];
    }
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return vec![Diagnostic::error("E0400", format!("not JSON: {e}"), at(String::new()))],
    };
    let docs: Vec<(String, &serde_json::Value)> = match &value {
        serde_json::Value::Array(items) => items.iter().enumerate().map(|(i, v)| (format!("/{i}"), v)).collect(),
        other => vec![(String::new(), other)],
    };
    let mut items = Vec::new();
    for (prefix, doc) in docs {
        match from_json(doc, name) {
            Ok((pipeline, warnings)) => {
                items.extend(warnings.into_iter().map(|w| prefixed(w, &prefix, index)));
                if pipeline.stages.len() > limits.max_stages {
                    items.push(Diagnostic::error(
                        "E0003",
                        format!("more than {} stages in one pipeline", limits.max_stages),
                        at(format!("{prefix}/stages")),
                    ));
                    continue;
                }
                out.pipelines.push(CheckedPipeline { pipeline, source: index, spans: None, pointer: prefix.clone() });
            }
            Err(d) => items.extend(d.items.into_iter().map(|w| prefixed(w, &prefix, index))),
        }
    }
    items
}

/// Moves a diagnostic of a decoded document to its place in a file: the file's source
/// index, and the document's index in an array in front of the pointer.
fn prefixed(mut d: Diagnostic, prefix: &str, index: usize) -> Diagnostic {
    for l in std::iter::once(&mut d.location).chain(d.related.iter_mut().map(|(l, _)| l)) {
        if let Location::Pointer { source, pointer } = l {
            *source = index;
            *pointer = format!("{prefix}{pointer}");
        }
    }
    d
}

/// Reads and checks files (`civitas pipeline check FILE…`); see [`check_sources`].
/// A file that cannot be read is an error diagnostic of its own.
pub fn check_files<P: AsRef<Path>>(paths: &[P]) -> Result<Checked, Diagnostics> {
    let limits = Limits::default();
    let mut sources = Vec::new();
    let mut unreadable = Vec::new();
    for path in paths {
        let path = path.as_ref();
        let name = path.display().to_string();
        let read = std::fs::metadata(path).and_then(|m| {
            if m.len() > limits.max_source_bytes as u64 {
                Err(std::io::Error::other(format!("larger than the limit of {} bytes", limits.max_source_bytes)))
            } else {
                std::fs::read_to_string(path)
            }
        });
        match read {
            Ok(text) => sources.push((name, text)),
            Err(e) => unreadable.push((name, e.to_string())),
        }
    }
    let checked = check_sources_with(&sources, &limits);
    if unreadable.is_empty() {
        return checked;
    }
    let mut diags = match checked {
        Ok(c) => c.warnings,
        Err(d) => d,
    };
    for (name, e) in unreadable {
        let source = diags.sources.len();
        diags.sources.push(SourceText { name, text: String::new() });
        diags.items.push(Diagnostic::error(
            "E0004",
            format!("cannot read the file: {e}"),
            Location::Source { source, span: Span::default() },
        ));
    }
    Err(diags)
}
