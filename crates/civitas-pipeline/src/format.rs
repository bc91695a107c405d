//! Writes a [`Pipeline`] back as DSL text, so a pipeline stored as JSON-LD can be shown
//! and edited as a `.civ` file: `parse(format(p)) == p` for every checked pipeline.
//! Quantities are written in the normalised units (`ms`, `B`, `B/h`, `/s`, `%`).

use std::fmt::Write as _;

use crate::model::*;
use crate::parser::MetricKind;

fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn value(v: &Value) -> String {
    match v {
        Value::Literal(s) => quote(s),
        Value::Param(p) => format!("${p}"),
    }
}

fn metric_value(metric: &str, x: f64) -> String {
    match crate::parser::metric_kind(metric) {
        Some(MetricKind::Duration) => format!("{x}ms"),
        Some(MetricKind::Percent) => format!("{x}%"),
        Some(MetricKind::Rate) => format!("{x}/s"),
        _ => format!("{x}"),
    }
}

/// The pipeline as `.civ` text.
pub fn format_pipeline(p: &Pipeline) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "pipeline {} {{", p.name);
    let _ = writeln!(o, "  version {}", quote(&p.version));
    if let Some(d) = &p.description {
        let _ = writeln!(o, "  description {}", quote(d));
    }
    if let Some(b) = &p.budget {
        let period = match b.period {
            BudgetPeriod::Hour => "hour",
            BudgetPeriod::Day => "day",
            BudgetPeriod::Month => "month",
        };
        let _ = writeln!(o, "  budget {} {} per {period}", b.amount, b.currency);
    }
    for param in &p.params {
        match &param.default {
            Some(d) => writeln!(o, "  param {} = {}", param.name, quote(d)),
            None => writeln!(o, "  param {}", param.name),
        }
        .expect("writing to a string");
    }
    for s in &p.stages {
        let _ = writeln!(o, "\n  stage {} {{", s.name);
        let run = match &s.run {
            Run::Builtin { name } => format!("builtin {}", quote(name)),
            Run::Process { command } => {
                format!("process {}", command.iter().map(|c| quote(c)).collect::<Vec<_>>().join(" "))
            }
            Run::Image { reference } => format!("image {}", quote(reference)),
            Run::Wasm { module } => format!("wasm {}", quote(module)),
        };
        let _ = writeln!(o, "    run {run}");
        for i in &s.inputs {
            let from = match &i.from {
                InputSource::Stage { stage, output: Some(out) } => format!("{stage}.{out}"),
                InputSource::Stage { stage, output: None } => stage.clone(),
                InputSource::View { view } => view.to_string(),
            };
            let _ = write!(o, "    input {from}");
            if let Some(t) = &i.data_type {
                let _ = write!(o, " as {t}");
            }
            if let Some(v) = i.bytes_per_hour {
                let _ = write!(o, " volume {v}B/h");
            }
            o.push('\n');
        }
        for out in &s.outputs {
            let _ = write!(o, "    output {}: {}", out.name, out.data_type);
            if let Some(v) = out.bytes_per_hour {
                let _ = write!(o, " volume {v}B/h");
            }
            o.push('\n');
        }
        for t in &s.triggers {
            let _ = match t {
                Trigger::Cron { expression } => writeln!(o, "    trigger cron {}", quote(expression)),
                Trigger::Every { interval_ms } => writeln!(o, "    trigger every {interval_ms}ms"),
                Trigger::OnEvent { event } => writeln!(o, "    trigger on event {}", quote(event)),
            };
        }
        if !s.resources.is_empty() {
            let mut parts = Vec::new();
            if let Some(c) = s.resources.cpu_cores {
                parts.push(format!("cpu {c}"));
            }
            if let Some(m) = s.resources.memory_bytes {
                parts.push(format!("memory {m}B"));
            }
            if s.resources.gpus > 0 {
                parts.push(format!("gpu {}", s.resources.gpus));
            }
            let _ = writeln!(o, "    resources {}", parts.join(", "));
        }
        for r in &s.requirements {
            let text = match r {
                Requirement::Tier { tiers } => {
                    format!("tier {}", tiers.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", "))
                }
                Requirement::Within { scope, value: v } => format!("{} {}", scope.as_str(), value(v)),
                Requirement::Capabilities { names } => format!("capability {}", names.join(", ")),
                Requirement::LatencyToStage { stage, max_ms } => format!("latency to stage {stage} <= {max_ms}ms"),
                Requirement::LatencyToView { view, max_ms } => format!("latency to view {view} <= {max_ms}ms"),
                Requirement::DataNeverLeaves { scope, value: v } => {
                    format!("data never leaves {} {}", scope.as_str(), value(v))
                }
            };
            let _ = writeln!(o, "    require {text}");
        }
        for pr in &s.preferences {
            let text = match &pr.prefer {
                Preferred::Tier { tier } => format!("tier {}", tier.as_str()),
                Preferred::Provider { value: v } => format!("provider {}", value(v)),
                Preferred::Region { value: v } => format!("region {}", value(v)),
                Preferred::Cheaper => "cheaper".into(),
                Preferred::Near { stage } => format!("near stage {stage}"),
            };
            let _ = writeln!(o, "    prefer {text} weight {}", pr.weight);
        }
        for slo in &s.slos {
            let _ = writeln!(o, "    slo {} {} {}", slo.metric, slo.op.as_str(), metric_value(&slo.metric, slo.target));
        }
        for pol in &s.policies {
            let action = match &pol.action {
                Action::ScaleOut { by } => format!("scale out by {by}"),
                Action::ScaleIn { by } => format!("scale in by {by}"),
                Action::Move { to: Some(t) } => format!("move to {}", t.as_str()),
                Action::Move { to: None } => "move".into(),
                Action::Reschedule => "reschedule".into(),
            };
            let _ = write!(
                o,
                "    when {} {} {} for {}ms then {action}",
                pol.metric,
                pol.op.as_str(),
                metric_value(&pol.metric, pol.threshold),
                pol.for_ms
            );
            if let Some(m) = pol.min {
                let _ = write!(o, " min {m}");
            }
            if let Some(m) = pol.max {
                let _ = write!(o, " max {m}");
            }
            if let Some(c) = pol.cooldown_ms {
                let _ = write!(o, " cooldown {c}ms");
            }
            o.push('\n');
        }
        o.push_str("  }\n");
    }
    o.push_str("}\n");
    o
}
