//! The checker: what a pipeline must satisfy beyond its syntax. It works on the
//! [`Pipeline`] model, so a compiled `.civ` file and a decoded JSON-LD document are
//! checked by the same code; only where a diagnostic points differs ([`Locate`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::diagnostics::{Diagnostic, Location, nearest};
use crate::model::*;
use crate::parser::{Environment, SourceMap};

/// An item of a pipeline a diagnostic can point at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Loc {
    Pipeline,
    Budget,
    Param(usize),
    Stage(usize),
    Run(usize),
    Input(usize, usize),
    Output(usize, usize),
    Resources(usize),
    Requirement(usize, usize),
    Preference(usize, usize),
    Slo(usize, usize),
    Policy(usize, usize),
}

/// Maps pipeline items to places in what the user wrote.
pub(crate) trait Locate {
    fn locate(&self, loc: Loc) -> Location;

    /// Whether a stage lost a statement to a syntax error: checks that depend on what the
    /// stage lacks would then only repeat that error.
    fn lost_statements(&self, _stage: usize) -> bool {
        false
    }
}

impl Locate for SourceMap {
    fn locate(&self, loc: Loc) -> Location {
        let stage = |i: usize| self.stages.get(i);
        let pick = |i: usize, f: &dyn Fn(&crate::parser::StageSpans) -> Option<crate::Span>| {
            stage(i).and_then(|s| f(s).or(Some(s.name))).unwrap_or(self.pipeline)
        };
        let span = match loc {
            Loc::Pipeline => self.pipeline,
            Loc::Budget => self.budget.unwrap_or(self.pipeline),
            Loc::Param(i) => self.params.get(i).copied().unwrap_or(self.pipeline),
            Loc::Stage(i) => pick(i, &|_| None),
            Loc::Run(i) => pick(i, &|s| Some(s.run)),
            Loc::Input(i, j) => pick(i, &|s| s.inputs.get(j).copied()),
            Loc::Output(i, j) => pick(i, &|s| s.outputs.get(j).copied()),
            Loc::Resources(i) => pick(i, &|s| Some(s.resources)),
            Loc::Requirement(i, j) => pick(i, &|s| s.requirements.get(j).copied()),
            Loc::Preference(i, j) => pick(i, &|s| s.preferences.get(j).copied()),
            Loc::Slo(i, j) => pick(i, &|s| s.slos.get(j).copied()),
            Loc::Policy(i, j) => pick(i, &|s| s.policies.get(j).copied()),
        };
        Location::Source { source: self.source, span }
    }

    fn lost_statements(&self, stage: usize) -> bool {
        self.stages.get(stage).is_some_and(|s| s.had_syntax_error)
    }
}

/// Points into a JSON-LD `Pipeline` document: source index, and the document's own
/// pointer when it sits in an array (`/2`).
pub(crate) struct JsonPointers<'a>(pub usize, pub &'a str);

impl Locate for JsonPointers<'_> {
    fn locate(&self, loc: Loc) -> Location {
        let pointer = match loc {
            Loc::Pipeline => String::new(),
            Loc::Budget => "/budget".into(),
            Loc::Param(i) => format!("/params/{i}"),
            Loc::Stage(i) => format!("/stages/{i}/name"),
            Loc::Run(i) => format!("/stages/{i}/run"),
            Loc::Input(i, j) => format!("/stages/{i}/inputs/{j}"),
            Loc::Output(i, j) => format!("/stages/{i}/outputs/{j}"),
            Loc::Resources(i) => format!("/stages/{i}/resources"),
            Loc::Requirement(i, j) => format!("/stages/{i}/requirements/{j}"),
            Loc::Preference(i, j) => format!("/stages/{i}/preferences/{j}"),
            Loc::Slo(i, j) => format!("/stages/{i}/slos/{j}"),
            Loc::Policy(i, j) => format!("/stages/{i}/policies/{j}"),
        };
        Location::Pointer { source: self.0, pointer: format!("{}{pointer}", self.1) }
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The producer→consumer edges of a pipeline: `(producer, consumer, input index, output index)`
/// for every input that names an existing stage and output.
pub(crate) fn edges(p: &Pipeline) -> Vec<(usize, usize, usize, Option<usize>)> {
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, s) in p.stages.iter().enumerate() {
        index.entry(s.name.as_str()).or_insert(i);
    }
    let mut out = Vec::new();
    for (c, stage) in p.stages.iter().enumerate() {
        for (j, input) in stage.inputs.iter().enumerate() {
            if let InputSource::Stage { stage: from, output } = &input.from
                && let Some(&pidx) = index.get(from.as_str())
            {
                let producer = &p.stages[pidx];
                let o = match output {
                    Some(o) => producer.outputs.iter().position(|x| &x.name == o),
                    None if producer.outputs.len() == 1 => Some(0),
                    None => None,
                };
                out.push((pidx, c, j, o));
            }
        }
    }
    out
}

/// Checks one pipeline; every problem is returned, errors and warnings.
pub(crate) fn check_pipeline(p: &Pipeline, at: &dyn Locate) -> Vec<Diagnostic> {
    let mut d = Vec::new();
    let loc = |l: Loc| at.locate(l);

    if let Err(e) = civitas_model::check_version(&p.version) {
        d.push(Diagnostic::error("E0108", e, loc(Loc::Pipeline)).label("invalid version"));
    }
    if p.stages.is_empty() {
        d.push(
            Diagnostic::error("E0215", "the pipeline has no stage", loc(Loc::Pipeline))
                .label("empty pipeline")
                .hint("add `stage NAME { run … }`"),
        );
    }
    if let Some(b) = &p.budget
        && !(b.amount.is_finite() && b.amount > 0.0)
    {
        d.push(Diagnostic::error("E0104", "a budget must be above 0", loc(Loc::Budget)).label("not above 0"));
    }

    // Parameters: duplicates, then which are used.
    let mut params: HashMap<&str, usize> = HashMap::new();
    for (i, param) in p.params.iter().enumerate() {
        if !valid_name(&param.name) {
            d.push(Diagnostic::error(
                "E0201",
                format!("`{}` is not a valid parameter name", param.name),
                loc(Loc::Param(i)),
            ));
        }
        if let Some(&first) = params.get(param.name.as_str()) {
            d.push(
                Diagnostic::error("E0200", format!("parameter `{}` is declared twice", param.name), loc(Loc::Param(i)))
                    .label("declared again")
                    .related(loc(Loc::Param(first)), "first declared here"),
            );
        } else {
            params.insert(&param.name, i);
        }
    }
    let mut used_params: BTreeSet<&str> = BTreeSet::new();

    // Stage names.
    let mut stage_index: HashMap<&str, usize> = HashMap::new();
    for (i, s) in p.stages.iter().enumerate() {
        if !valid_name(&s.name) {
            d.push(
                Diagnostic::error("E0201", format!("`{}` is not a valid stage name", s.name), loc(Loc::Stage(i)))
                    .label("invalid name")
                    .hint("a stage name is a letter or `_` followed by letters, digits, `_` or `-` (no `.`)"),
            );
        }
        if let Some(&first) = stage_index.get(s.name.as_str()) {
            d.push(
                Diagnostic::error("E0200", format!("stage `{}` is defined twice", s.name), loc(Loc::Stage(i)))
                    .label("defined again here")
                    .related(loc(Loc::Stage(first)), "first defined here")
                    .hint("rename one of them"),
            );
        } else {
            stage_index.insert(&s.name, i);
        }
    }
    let mut names: Vec<&str> = p.stages.iter().map(|s| s.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let unknown_stage = |name: &str, l: Location, what: &str| {
        let mut diag = Diagnostic::error("E0202", format!("{what} names stage `{name}`, which does not exist"), l)
            .label("unknown stage");
        diag = match nearest(name, names.iter().copied()) {
            Some(n) => diag.hint(format!("did you mean `{n}`?")),
            None => diag.hint(format!("the stages are: {}", names.join(", "))),
        };
        diag
    };

    let mut consumed: BTreeSet<(usize, usize)> = BTreeSet::new();
    for (i, s) in p.stages.iter().enumerate() {
        match &s.run {
            Run::Builtin { name } | Run::Image { reference: name } | Run::Wasm { module: name } if name.is_empty() => {
                d.push(Diagnostic::error("E0110", format!("stage `{}` runs nothing", s.name), loc(Loc::Run(i))));
            }
            Run::Process { command } if command.first().is_none_or(|c| c.is_empty()) => {
                d.push(Diagnostic::error(
                    "E0110",
                    format!("stage `{}` has an empty command", s.name),
                    loc(Loc::Run(i)),
                ));
            }
            _ => {}
        }
        let mut outputs: HashMap<&str, usize> = HashMap::new();
        for (j, o) in s.outputs.iter().enumerate() {
            if !valid_name(&o.name) {
                d.push(Diagnostic::error(
                    "E0201",
                    format!("`{}` is not a valid output name", o.name),
                    loc(Loc::Output(i, j)),
                ));
            }
            if let Some(&first) = outputs.get(o.name.as_str()) {
                d.push(
                    Diagnostic::error(
                        "E0200",
                        format!("output `{}` of stage `{}` is defined twice", o.name, s.name),
                        loc(Loc::Output(i, j)),
                    )
                    .label("defined again")
                    .related(loc(Loc::Output(i, first)), "first defined here"),
                );
            } else {
                outputs.insert(&o.name, j);
            }
        }
        // Inputs.
        for (j, input) in s.inputs.iter().enumerate() {
            let InputSource::Stage { stage: from, output } = &input.from else { continue };
            let Some(&pidx) = stage_index.get(from.as_str()) else {
                d.push(unknown_stage(from, loc(Loc::Input(i, j)), "this input"));
                continue;
            };
            let producer = &p.stages[pidx];
            let oidx = match output {
                Some(o) => match producer.outputs.iter().position(|x| &x.name == o) {
                    Some(k) => Some(k),
                    None => {
                        let outs: Vec<&str> = producer.outputs.iter().map(|x| x.name.as_str()).collect();
                        let mut diag = Diagnostic::error(
                            "E0203",
                            format!("stage `{from}` has no output `{o}`"),
                            loc(Loc::Input(i, j)),
                        )
                        .label("unknown output")
                        .related(loc(Loc::Stage(pidx)), format!("`{from}` is defined here"));
                        diag = match (nearest(o, outs.iter().copied()), outs.is_empty()) {
                            (Some(n), _) => diag.hint(format!("did you mean `{from}.{n}`?")),
                            (None, true) => {
                                diag.hint(format!("`{from}` declares no output; add `output NAME: TYPE` to it"))
                            }
                            (None, false) => diag.hint(format!("its outputs are: {}", outs.join(", "))),
                        };
                        d.push(diag);
                        None
                    }
                },
                None if producer.outputs.len() == 1 => Some(0),
                None if producer.outputs.is_empty() => {
                    d.push(
                        Diagnostic::error(
                            "E0204",
                            format!("stage `{from}` produces nothing to read"),
                            loc(Loc::Input(i, j)),
                        )
                        .label("dangling input")
                        .related(loc(Loc::Stage(pidx)), format!("`{from}` declares no output"))
                        .hint(format!("add `output NAME: TYPE` to `{from}`, or remove this input")),
                    );
                    None
                }
                None => {
                    let outs: Vec<String> = producer.outputs.iter().map(|x| format!("`{from}.{}`", x.name)).collect();
                    d.push(
                        Diagnostic::error(
                            "E0205",
                            format!("stage `{from}` has several outputs; say which"),
                            loc(Loc::Input(i, j)),
                        )
                        .label("ambiguous input")
                        .hint(format!("write one of {}", outs.join(", "))),
                    );
                    None
                }
            };
            if let Some(k) = oidx {
                consumed.insert((pidx, k));
                let produced = &producer.outputs[k];
                if let Some(expected) = &input.data_type
                    && expected != &produced.data_type
                {
                    d.push(
                        Diagnostic::error(
                            "E0206",
                            format!(
                                "type mismatch: `{}` expects {expected} but `{from}.{}` produces {}",
                                s.name, produced.name, produced.data_type
                            ),
                            loc(Loc::Input(i, j)),
                        )
                        .label(format!("expects {expected}"))
                        .related(loc(Loc::Output(pidx, k)), format!("produces {}", produced.data_type))
                        .hint("change the input's `as` type, or read another output"),
                    );
                }
                if input.bytes_per_hour.is_some() {
                    d.push(
                        Diagnostic::warning(
                            "W0305",
                            "the volume of a stage input is its producer's",
                            loc(Loc::Input(i, j)),
                        )
                        .label("ignored")
                        .hint(format!("set `volume` on the output of `{from}` instead")),
                    );
                }
            }
        }
        if s.inputs.is_empty() && s.triggers.is_empty() && !at.lost_statements(i) {
            d.push(
                Diagnostic::error(
                    "E0208",
                    format!("stage `{}` never runs: it has no input and no trigger", s.name),
                    loc(Loc::Stage(i)),
                )
                .label("never runs")
                .hint(
                    "give it an input, or a trigger such as `trigger every 5m` or `trigger on event \"http.request\"`",
                ),
            );
        }
        if let Some(c) = s.resources.cpu_cores
            && !(c.is_finite() && c > 0.0)
        {
            d.push(Diagnostic::error("E0104", "cpu must be above 0", loc(Loc::Resources(i))));
        }

        // Requirements.
        let mut tier_req: Option<usize> = None;
        let mut within: BTreeMap<Scope, (usize, &Value)> = BTreeMap::new();
        for (j, r) in s.requirements.iter().enumerate() {
            let l = loc(Loc::Requirement(i, j));
            match r {
                Requirement::Tier { tiers } => {
                    if tiers.is_empty() {
                        d.push(Diagnostic::error("E0105", "a tier requirement names at least one tier", l.clone()));
                    }
                    if let Some(first) = tier_req {
                        d.push(
                            Diagnostic::error("E0210", format!("stage `{}` requires a tier twice", s.name), l)
                                .label("second tier requirement")
                                .related(loc(Loc::Requirement(i, first)), "first here")
                                .hint("list every allowed tier in one statement: `require tier edge, fog`"),
                        );
                    } else {
                        tier_req = Some(j);
                    }
                }
                Requirement::Within { scope, value } | Requirement::DataNeverLeaves { scope, value } => {
                    check_value(value, &params, &mut used_params, l.clone(), &mut d);
                    if let Some((first, other)) = within.get(scope)
                        && *other != value
                        && matches!((other, value), (Value::Literal(_), Value::Literal(_)))
                    {
                        d.push(
                            Diagnostic::error(
                                "E0210",
                                format!(
                                    "stage `{}` must be in {} `{other}` and `{value}` at once",
                                    s.name,
                                    scope.as_str()
                                ),
                                l,
                            )
                            .label("contradicts")
                            .related(loc(Loc::Requirement(i, *first)), "the other requirement")
                            .hint("no site can be in two places; keep one"),
                        );
                    } else {
                        within.insert(*scope, (j, value));
                    }
                }
                Requirement::Capabilities { names } => {
                    if names.iter().any(|n| n.is_empty()) {
                        d.push(Diagnostic::error("E0201", "a capability must not be empty", l));
                    }
                }
                Requirement::LatencyToStage { stage, max_ms } => {
                    if !(max_ms.is_finite() && *max_ms > 0.0) {
                        d.push(Diagnostic::error("E0104", "a latency bound must be above 0", l.clone()));
                    }
                    if stage == &s.name {
                        d.push(
                            Diagnostic::error("E0209", "a stage's latency to itself is always 0", l)
                                .label("names its own stage")
                                .hint("name another stage"),
                        );
                    } else if !stage_index.contains_key(stage.as_str()) {
                        d.push(unknown_stage(stage, l, "this requirement"));
                    }
                }
                Requirement::LatencyToView { max_ms, .. } => {
                    if !(max_ms.is_finite() && *max_ms > 0.0) {
                        d.push(Diagnostic::error("E0104", "a latency bound must be above 0", l));
                    }
                }
            }
        }
        // Preferences.
        for (j, pref) in s.preferences.iter().enumerate() {
            let l = loc(Loc::Preference(i, j));
            if !(pref.weight.is_finite() && pref.weight > 0.0) {
                d.push(Diagnostic::error("E0104", "a weight must be above 0", l.clone()));
            }
            match &pref.prefer {
                Preferred::Provider { value } | Preferred::Region { value } => {
                    check_value(value, &params, &mut used_params, l, &mut d)
                }
                Preferred::Near { stage } => {
                    if stage == &s.name {
                        d.push(
                            Diagnostic::error("E0209", "a stage is always near itself", l).label("names its own stage"),
                        );
                    } else if !stage_index.contains_key(stage.as_str()) {
                        d.push(unknown_stage(stage, l, "this preference"));
                    }
                }
                Preferred::Tier { tier } => {
                    if let Some(k) = tier_req
                        && let Requirement::Tier { tiers } = &s.requirements[k]
                        && !tiers.contains(tier)
                    {
                        d.push(
                            Diagnostic::warning(
                                "W0304",
                                format!(
                                    "this preference can never be met: the stage requires another tier than {}",
                                    tier.as_str()
                                ),
                                l,
                            )
                            .label("never met")
                            .related(loc(Loc::Requirement(i, k)), "the tier requirement"),
                        );
                    }
                }
                Preferred::Cheaper => {}
            }
        }
        // SLOs.
        for (j, slo) in s.slos.iter().enumerate() {
            if crate::parser::metric_kind(&slo.metric).is_none() || !(slo.target.is_finite() && slo.target >= 0.0) {
                d.push(Diagnostic::error("E0103", format!("`{}` is not a valid SLO", slo.metric), loc(Loc::Slo(i, j))));
            }
        }
        // Adaptation policies.
        for (j, pol) in s.policies.iter().enumerate() {
            let l = loc(Loc::Policy(i, j));
            if crate::parser::metric_kind(&pol.metric).is_none() {
                d.push(Diagnostic::error("E0103", format!("unknown metric `{}`", pol.metric), l.clone()));
            }
            if let (Some(min), Some(max)) = (pol.min, pol.max)
                && min > max
            {
                d.push(
                    Diagnostic::error("E0212", format!("min {min} is above max {max}"), l.clone())
                        .label("empty range")
                        .hint("swap them"),
                );
            }
            match &pol.action {
                Action::ScaleOut { by } | Action::ScaleIn { by } if *by == 0 => {
                    d.push(Diagnostic::error("E0212", "scaling by 0 does nothing", l.clone()));
                }
                Action::ScaleOut { .. } if pol.max.is_none() => d.push(
                    Diagnostic::error("E0213", "scaling out needs an upper bound", l.clone())
                        .label("unbounded")
                        .hint("add `max N`, e.g. `then scale out max 8 cooldown 5m`"),
                ),
                Action::ScaleIn { .. } if pol.min.is_none() => d.push(
                    Diagnostic::error("E0213", "scaling in needs a lower bound", l.clone())
                        .label("unbounded")
                        .hint("add `min N`, e.g. `then scale in min 1 cooldown 10m`"),
                ),
                Action::Move { .. } | Action::Reschedule if pol.min.is_some() || pol.max.is_some() => d.push(
                    Diagnostic::error("E0212", "`min` and `max` bound scaling, not moves", l.clone())
                        .label("not scaling"),
                ),
                _ => {}
            }
            if pol.cooldown_ms.is_none_or(|c| c == 0) {
                d.push(
                    Diagnostic::warning("W0303", "this policy has no cooldown and may flap", l)
                        .label("no cooldown")
                        .hint("add e.g. `cooldown 5m`"),
                );
            }
        }
    }

    // Cycles.
    let edges = edges(p);
    for cycle in find_cycles(p.stages.len(), &edges) {
        let (first, closing) = (cycle[0], *cycle.last().expect("a cycle has stages"));
        let path: Vec<&str> = cycle.iter().chain(std::iter::once(&first)).map(|&k| p.stages[k].name.as_str()).collect();
        // Point at the input of `first` that reads `closing`, the edge that closes the loop.
        let input = edges.iter().find(|e| e.0 == closing && e.1 == first).map(|e| e.2).unwrap_or(0);
        let mut diag = Diagnostic::error(
            "E0207",
            format!("the stages form a cycle: {}", path.join(" → ")),
            loc(Loc::Input(first, input)),
        )
        .label("closes the cycle")
        .hint("a pipeline is acyclic: feed back through a view or an event instead");
        if cycle.len() > 1 {
            diag = diag.related(
                loc(Loc::Stage(closing)),
                format!("`{}` is downstream of `{}`", p.stages[closing].name, p.stages[first].name),
            );
        }
        d.push(diag);
    }

    // Outputs nobody reads, parameters nobody uses.
    for (i, s) in p.stages.iter().enumerate() {
        for (j, o) in s.outputs.iter().enumerate() {
            if !consumed.contains(&(i, j)) {
                d.push(
                    Diagnostic::warning(
                        "W0301",
                        format!("output `{}.{}` is never read", s.name, o.name),
                        loc(Loc::Output(i, j)),
                    )
                    .label("unread")
                    .hint("remove it, or read it from another stage"),
                );
            }
        }
    }
    for (i, param) in p.params.iter().enumerate() {
        if !used_params.contains(param.name.as_str()) {
            d.push(
                Diagnostic::warning("W0302", format!("parameter `{}` is never used", param.name), loc(Loc::Param(i)))
                    .label("unused"),
            );
        }
    }
    d
}

fn check_value<'a>(
    value: &'a Value,
    params: &HashMap<&str, usize>,
    used: &mut BTreeSet<&'a str>,
    l: Location,
    d: &mut Vec<Diagnostic>,
) {
    match value {
        Value::Param(name) => {
            if params.contains_key(name.as_str()) {
                used.insert(name);
            } else {
                let mut diag = Diagnostic::error("E0211", format!("parameter `${name}` is not declared"), l)
                    .label("undeclared parameter");
                diag = match nearest(name, params.keys().copied()) {
                    Some(n) => diag.hint(format!("did you mean `${n}`?")),
                    None => diag.hint(format!("declare it in the pipeline: `param {name}`")),
                };
                d.push(diag);
            }
        }
        Value::Literal(s) if s.is_empty() => d.push(Diagnostic::error("E0201", "a value must not be empty", l)),
        Value::Literal(_) => {}
    }
}

/// Elementary cycles found by depth-first search, one per back edge, each as the stages
/// in order from the first to the one that closes it.
fn find_cycles(n: usize, edges: &[(usize, usize, usize, Option<usize>)]) -> Vec<Vec<usize>> {
    let mut adj = vec![Vec::new(); n];
    for &(from, to, _, _) in edges {
        if !adj[from].contains(&to) {
            adj[from].push(to);
        }
    }
    let mut color = vec![0u8; n]; // 0 new, 1 on the stack, 2 done
    let mut cycles = Vec::new();
    let mut seen: BTreeSet<Vec<usize>> = BTreeSet::new();
    for root in 0..n {
        if color[root] != 0 {
            continue;
        }
        // Iterative DFS: (node, next child index); `path` mirrors the stack.
        let mut stack = vec![(root, 0usize)];
        let mut path = vec![root];
        color[root] = 1;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if let Some(&child) = adj[node].get(*next) {
                *next += 1;
                match color[child] {
                    0 => {
                        color[child] = 1;
                        stack.push((child, 0));
                        path.push(child);
                    }
                    1 => {
                        let start = path.iter().position(|&x| x == child).unwrap_or(0);
                        let cycle = path[start..].to_vec();
                        let mut key = cycle.clone();
                        key.sort_unstable();
                        if seen.insert(key) {
                            cycles.push(cycle);
                        }
                    }
                    _ => {}
                }
            } else {
                color[node] = 2;
                stack.pop();
                path.pop();
            }
        }
    }
    cycles
}

/// The values of a pipeline's parameters in an environment: the environment's value, else
/// the default; a parameter with neither is an error at its declaration.
pub(crate) fn bind(
    p: &Pipeline,
    env: Option<&Environment>,
    at: &dyn Locate,
) -> Result<BTreeMap<String, String>, Vec<Diagnostic>> {
    let mut values = BTreeMap::new();
    let mut errs = Vec::new();
    for (i, param) in p.params.iter().enumerate() {
        match env.and_then(|e| e.values.get(&param.name)).or(param.default.as_ref()) {
            Some(v) => {
                values.insert(param.name.clone(), v.clone());
            }
            None => {
                let where_ = env.map_or("no environment was chosen".to_string(), |e| {
                    format!("environment `{}` does not set it", e.name)
                });
                errs.push(
                    Diagnostic::error(
                        "E0214",
                        format!("parameter `{}` has no value: {where_}", param.name),
                        at.locate(Loc::Param(i)),
                    )
                    .label("no value")
                    .hint(format!("give it a default (`param {} = \"…\"`) or set it in the environment", param.name)),
                );
            }
        }
    }
    if errs.is_empty() { Ok(values) } else { Err(errs) }
}
