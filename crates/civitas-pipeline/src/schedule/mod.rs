//! The scheduler: places every stage of a pipeline on a site of the continuum.
//!
//! 1. **Filter** — per stage, the sites that meet every hard requirement (tier, region,
//!    jurisdiction, capabilities, GPUs, latency to a view's nearest instance, "data never
//!    leaves" — inherited by every stage downstream of the one that states it) and whose
//!    free capacity (after the pipelines already placed, [`Continuum::reserve`]) holds it.
//! 2. **Score** — a global objective, the sum over stages and edges of the terms below,
//!    weighted by [`Weights`] (all terms are in the currency of the site prices per month,
//!    so one weight unit trades against one EUR a month):
//!    - *price*: `(cpu × cpuHour + memory GB × memoryGbHour) × 730 h`;
//!    - *latency*: for every stage → stage edge, the one-way latency in ms between their sites;
//!    - *transfer*: for every edge, the producer's volume (GB/month) × the price per GB
//!      along the path (0 on the same site);
//!    - *gravity*: for every view a stage reads, latency and transfer from the view's nearest
//!      instance (the SDD data instances), so stages go to their data;
//!    - *preferences*: each unmet soft requirement costs `weight × preference_unit`;
//!      `prefer cheaper` adds `weight × price` again.
//! 3. **Solve** — joint constraints (capacity shared by stages on one site, latency between
//!    two stages, the budget) hold in both solvers: an exact branch and bound for small
//!    instances ([`Solver::Exact`]; proven optimal unless its node limit is hit), a greedy
//!    placement plus local search (single-stage moves and edge co-location moves) beyond.
//! 4. **Explain** — every placement lists the requirements it meets with the measured
//!    values, the sites each requirement excluded, its objective terms and the runner-up
//!    site with the extra cost. An infeasible pipeline yields the smallest set of
//!    requirements to relax, with the nearest site.

mod continuum;
mod render;
mod solve;
pub mod synthetic;

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use civitas_model::{Site, Tier};
use serde::{Deserialize, Serialize};

pub use continuum::{Continuum, DEFAULT_EGRESS_PER_GB};
pub use render::render_plan_table;

use crate::check::edges;
use crate::model::*;

/// The weights of the objective's terms (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Weights {
    /// Per currency unit of compute per month.
    pub price: f64,
    /// Per ms of latency on a stage → stage edge.
    pub latency_ms: f64,
    /// Per currency unit per month of data moved between sites.
    pub transfer: f64,
    /// Per ms of latency from a read view's nearest instance.
    pub gravity_latency_ms: f64,
    /// Cost of one unmet soft requirement of weight 1.
    pub preference_unit: f64,
}

impl Default for Weights {
    fn default() -> Weights {
        Weights { price: 1.0, latency_ms: 0.5, transfer: 1.0, gravity_latency_ms: 0.5, preference_unit: 10.0 }
    }
}

/// CPU assumed for a stage that states none.
pub const DEFAULT_CPU_CORES: f64 = 0.1;
/// Memory assumed for a stage that states none (128 MiB).
pub const DEFAULT_MEMORY_BYTES: u64 = 128 * 1024 * 1024;

/// Which solver to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Solver {
    /// Exact when the instance is small ([`PlanOptions::exact_max_stages`]), heuristic beyond.
    #[default]
    Auto,
    /// Branch and bound (falls back to its best plan when the node limit is hit).
    Exact,
    /// Greedy placement and local search.
    Heuristic,
}

/// How to plan.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanOptions {
    /// The objective's weights.
    pub weights: Weights,
    /// Which solver.
    pub solver: Solver,
    /// `Auto` uses the exact solver up to this many stages.
    pub exact_max_stages: usize,
    /// The exact solver's node limit.
    pub exact_node_limit: u64,
    /// The environment's name, recorded in the plan.
    pub environment: Option<String>,
}

impl Default for PlanOptions {
    fn default() -> PlanOptions {
        PlanOptions {
            weights: Weights::default(),
            solver: Solver::Auto,
            exact_max_stages: 12,
            exact_node_limit: 2_000_000,
            environment: None,
        }
    }
}

/// The objective's terms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Terms {
    /// Weighted compute price.
    pub price: f64,
    /// Weighted latency of the edges into this stage.
    pub latency: f64,
    /// Weighted transfer price of the edges into this stage.
    pub transfer: f64,
    /// Weighted distance to the views it reads.
    pub gravity: f64,
    /// Unmet soft requirements.
    pub preferences: f64,
    /// The sum.
    pub total: f64,
}

impl Terms {
    fn add(&mut self, o: &Terms) {
        self.price += o.price;
        self.latency += o.latency;
        self.transfer += o.transfer;
        self.gravity += o.gravity;
        self.preferences += o.preferences;
        self.total += o.total;
    }
}

/// Sites one requirement excluded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Exclusion {
    /// The requirement, as written.
    pub requirement: String,
    /// How many sites it excluded.
    pub sites: usize,
    /// A few of them.
    pub examples: Vec<String>,
}

/// The next best site for a stage, the others staying where they are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunnerUp {
    /// The site.
    pub site: String,
    /// How much more the objective would be.
    pub extra_cost: f64,
}

/// Why a stage is where it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    /// The hard requirements met, with measured values, and the soft ones met or not.
    pub reasons: Vec<String>,
    /// Sites that passed every filter.
    pub feasible_sites: usize,
    /// Sites excluded, by requirement.
    pub excluded: Vec<Exclusion>,
    /// The best alternative.
    pub runner_up: Option<RunnerUp>,
}

/// One stage's place.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    /// The stage.
    pub stage: String,
    /// The site's URN.
    pub site: String,
    /// The site's tier.
    pub tier: String,
    /// The site's region.
    pub region: String,
    /// CPU cores reserved.
    pub cpu_cores: f64,
    /// Memory reserved, in bytes.
    pub memory_bytes: u64,
    /// The stage's share of the objective.
    pub terms: Terms,
    /// Why here.
    pub explanation: Explanation,
}

/// A placement plan: what the provisioner and orchestrator loop consumes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// The pipeline's URN.
    pub pipeline: String,
    /// The pipeline version the plan is for.
    pub pipeline_version: String,
    /// The environment its parameters came from.
    pub environment: Option<String>,
    /// The parameter values used.
    pub parameters: BTreeMap<String, String>,
    /// `exact` or `heuristic`.
    pub solver: Solver,
    /// Whether the plan is proven optimal.
    pub optimal: bool,
    /// The objective and its terms.
    pub objective: Terms,
    /// Price per month of compute and transfer (unweighted), checked against the budget.
    pub price_per_month: f64,
    /// The budget per month, if any.
    pub budget_per_month: Option<f64>,
    /// The weights used.
    pub weights: Weights,
    /// One placement per stage, in the pipeline's order.
    pub placements: Vec<Placement>,
}

impl Plan {
    /// The site a stage is placed on.
    pub fn site_of(&self, stage: &str) -> Option<&str> {
        self.placements.iter().find(|p| p.stage == stage).map(|p| p.site.as_str())
    }
}

/// A requirement to relax.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Relaxation {
    /// The stage it belongs to (empty for the budget).
    pub stage: String,
    /// Index of the stage.
    #[serde(skip)]
    pub stage_index: usize,
    /// Index of the requirement in the stage's list (None: resources, capacity, budget).
    #[serde(skip)]
    pub requirement_index: Option<usize>,
    /// The requirement, as written.
    pub requirement: String,
    /// The site that comes nearest to meeting every requirement of the stage.
    pub nearest_site: Option<String>,
    /// What goes wrong.
    pub detail: String,
}

/// Why no plan.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[error("pipeline {pipeline} cannot be placed; relax: {}", .relax.iter().map(|r| format!("{} ({})", r.requirement, r.detail)).collect::<Vec<_>>().join("; "))]
pub struct Infeasible {
    /// The pipeline.
    pub pipeline: String,
    /// The smallest set of requirements found whose relaxation makes it placeable.
    pub relax: Vec<Relaxation>,
}

/// What can go wrong when planning.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ScheduleError {
    /// The sites or links are inconsistent.
    #[error("invalid catalog: {0}")]
    Catalog(String),
    /// A parameter has no value.
    #[error("parameter `{0}` has no value in this environment")]
    Parameter(String),
    /// No placement meets every requirement.
    #[error(transparent)]
    Infeasible(#[from] Infeasible),
}

/// A hard requirement as the filter checks it.
#[derive(Debug, Clone)]
pub(crate) enum Check {
    Tier(Vec<Tier>),
    Region(String),
    Jurisdiction(String),
    Capabilities(Vec<String>),
    Gpu,
    /// Sites of the view's instances and the bound.
    LatencyToView(Vec<usize>, f64),
}

#[derive(Debug, Clone)]
pub(crate) struct Req {
    pub text: String,
    pub index: Option<usize>,
    pub check: Check,
}

impl Req {
    fn holds(&self, c: &Continuum, site: usize) -> bool {
        let s = &c.sites[site];
        match &self.check {
            Check::Tier(t) => t.contains(&s.tier),
            Check::Region(r) => s.region.eq_ignore_ascii_case(r),
            Check::Jurisdiction(j) => s.jurisdiction.as_deref().is_some_and(|x| x.eq_ignore_ascii_case(j)),
            Check::Capabilities(names) => names.iter().all(|n| s.capabilities.contains(n)),
            Check::Gpu => s.capabilities.iter().any(|c| c == "gpu"),
            Check::LatencyToView(sites, max) => sites.iter().any(|&v| c.latency_ms(v, site) <= *max),
        }
    }

    /// How far a site is from meeting this requirement: missing capabilities count one
    /// each, anything else failed counts one (0 when met). Picks the "nearest" site.
    pub(crate) fn shortfall(&self, c: &Continuum, site: usize) -> usize {
        match &self.check {
            Check::Capabilities(names) => names.iter().filter(|n| !c.sites[site].capabilities.contains(n)).count(),
            _ => usize::from(!self.holds(c, site)),
        }
    }

    /// The measured fact behind a met requirement, for explanations.
    fn evidence(&self, c: &Continuum, site: usize) -> String {
        let s = &c.sites[site];
        match &self.check {
            Check::Tier(_) => format!("{}: the site is {}", self.text, s.tier.as_str()),
            Check::Region(_) => format!("{}: the site is in {}", self.text, s.region),
            Check::Jurisdiction(_) => {
                format!("{}: the site is under {}", self.text, s.jurisdiction.as_deref().unwrap_or("?"))
            }
            Check::Capabilities(_) | Check::Gpu => format!("{}: the site has it", self.text),
            Check::LatencyToView(sites, _) => {
                let best = sites.iter().map(|&v| c.latency_ms(v, site)).fold(f64::INFINITY, f64::min);
                format!("{}: {best:.1} ms from the nearest instance", self.text)
            }
        }
    }
}

/// A pairwise term between two stages.
#[derive(Debug, Clone)]
pub(crate) struct Pair {
    pub a: usize,
    pub b: usize,
    /// Stage whose terms this pair counts in.
    pub owner: usize,
    /// Data volume a → b in GB per month (0 for co-location preferences).
    pub gb_month: f64,
    /// Weight per ms (0 for co-location preferences).
    pub latency_weight: f64,
    /// Cost when a and b are on different sites (co-location preferences).
    pub apart_penalty: f64,
}

/// A bound on the latency between the sites of two stages.
#[derive(Debug, Clone)]
pub(crate) struct LatencyLimit {
    pub a: usize,
    pub b: usize,
    pub max_ms: f64,
    /// The stage and requirement index that states it.
    pub stage: usize,
    pub index: usize,
    pub text: String,
}

/// A pipeline turned into numbers: candidates, costs and joint constraints.
pub(crate) struct Problem<'a> {
    pub c: &'a Continuum,
    pub weights: Weights,
    pub n: usize,
    pub reqs: Vec<Vec<Req>>,
    pub cand: Vec<Vec<usize>>,
    pub unary: Vec<Vec<f64>>,
    /// Per stage, candidate indices by increasing unary cost (the first
    /// `2 × HEURISTIC_SHORTLIST` sorted, every later one costing at least as much): searches
    /// stop at the first candidate whose unary cost alone is above the best found.
    pub by_unary: Vec<Vec<usize>>,
    /// Unweighted price per month of each candidate (for the budget).
    pub price: Vec<Vec<f64>>,
    pub cpu: Vec<f64>,
    pub mem: Vec<f64>,
    pub pairs: Vec<Pair>,
    pub pair_adj: Vec<Vec<usize>>,
    pub limits: Vec<LatencyLimit>,
    pub limit_adj: Vec<Vec<usize>>,
    pub budget: Option<f64>,
    /// Per stage: (requirement text, excluded site indices); stages with the same hard
    /// requirements share the lists.
    pub excluded: Vec<Vec<(String, Rc<Vec<usize>>)>>,
    pub views: Vec<Vec<(Vec<usize>, f64)>>,
    pub prefs: Vec<Vec<(Preferred, f64, String)>>,
}

fn resolve(v: &Value, values: &BTreeMap<String, String>) -> Result<String, ScheduleError> {
    match v {
        Value::Literal(s) => Ok(s.clone()),
        Value::Param(p) => values.get(p).cloned().ok_or_else(|| ScheduleError::Parameter(p.clone())),
    }
}

fn requirement_text(r: &Requirement, values: &BTreeMap<String, String>) -> String {
    let val = |v: &Value| match v {
        Value::Literal(s) => s.clone(),
        Value::Param(p) => values.get(p).map_or(format!("${p}"), |x| format!("{x} (${p})")),
    };
    match r {
        Requirement::Tier { tiers } => {
            format!("require tier {}", tiers.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", "))
        }
        Requirement::Within { scope, value } => format!("require {} {}", scope.as_str(), val(value)),
        Requirement::Capabilities { names } => format!("require capability {}", names.join(", ")),
        Requirement::LatencyToStage { stage, max_ms } => format!("require latency to stage {stage} <= {max_ms}ms"),
        Requirement::LatencyToView { view, max_ms } => format!("require latency to view {view} <= {max_ms}ms"),
        Requirement::DataNeverLeaves { scope, value } => {
            format!("require data never leaves {} {}", scope.as_str(), val(value))
        }
    }
}

/// Compute price per month of `cpu` cores and `mem` bytes on a site.
fn compute_price(site: &Site, cpu: f64, mem: f64) -> f64 {
    let p = &site.prices;
    (cpu * p.cpu_hour.unwrap_or(0.0) + mem / 1e9 * p.memory_gb_hour.unwrap_or(0.0)) * HOURS_PER_MONTH
}

impl<'a> Problem<'a> {
    pub(crate) fn new(
        p: &Pipeline,
        values: &BTreeMap<String, String>,
        c: &'a Continuum,
        weights: Weights,
    ) -> Result<Problem<'a>, ScheduleError> {
        let n = p.stages.len();
        let index: BTreeMap<&str, usize> = p.stages.iter().enumerate().map(|(i, s)| (s.name.as_str(), i)).collect();
        let graph = edges(p);
        // "data never leaves" flows downstream: collect, per stage, its own and its ancestors'.
        let mut children = vec![Vec::new(); n];
        for &(a, b, _, _) in &graph {
            children[a].push(b);
        }
        let mut inherited: Vec<Vec<(String, Check)>> = vec![Vec::new(); n];
        for (i, s) in p.stages.iter().enumerate() {
            for r in &s.requirements {
                if let Requirement::DataNeverLeaves { scope, value } = r {
                    let v = resolve(value, values)?;
                    let check = match scope {
                        Scope::Region => Check::Region(v),
                        Scope::Jurisdiction => Check::Jurisdiction(v),
                    };
                    let text = format!("{} (inherited from stage {})", requirement_text(r, values), s.name);
                    let mut stack = children[i].clone();
                    let mut seen = vec![false; n];
                    while let Some(d) = stack.pop() {
                        if std::mem::replace(&mut seen[d], true) {
                            continue;
                        }
                        inherited[d].push((text.clone(), check.clone()));
                        stack.extend(children[d].iter().copied());
                    }
                }
            }
        }
        let mut reqs = Vec::with_capacity(n);
        let mut limits = Vec::new();
        let mut views = Vec::with_capacity(n);
        for (i, s) in p.stages.iter().enumerate() {
            let mut list = Vec::new();
            for (j, r) in s.requirements.iter().enumerate() {
                let text = requirement_text(r, values);
                let check = match r {
                    Requirement::Tier { tiers } => Check::Tier(tiers.clone()),
                    Requirement::Within { scope: Scope::Region, value }
                    | Requirement::DataNeverLeaves { scope: Scope::Region, value } => {
                        Check::Region(resolve(value, values)?)
                    }
                    Requirement::Within { scope: Scope::Jurisdiction, value }
                    | Requirement::DataNeverLeaves { scope: Scope::Jurisdiction, value } => {
                        Check::Jurisdiction(resolve(value, values)?)
                    }
                    Requirement::Capabilities { names } => Check::Capabilities(names.clone()),
                    Requirement::LatencyToView { view, max_ms } => Check::LatencyToView(c.view_sites(view), *max_ms),
                    Requirement::LatencyToStage { stage, max_ms } => {
                        if let Some(&other) = index.get(stage.as_str()) {
                            limits.push(LatencyLimit { a: i, b: other, max_ms: *max_ms, stage: i, index: j, text });
                        }
                        continue;
                    }
                };
                list.push(Req { text, index: Some(j), check });
            }
            for (text, check) in std::mem::take(&mut inherited[i]) {
                list.push(Req { text, index: None, check });
            }
            if s.resources.gpus > 0 {
                list.push(Req { text: format!("resources gpu {}", s.resources.gpus), index: None, check: Check::Gpu });
            }
            reqs.push(list);
            let mut v = Vec::new();
            for input in &s.inputs {
                if let InputSource::View { view } = &input.from {
                    v.push((c.view_sites(view), input.bytes_per_hour.unwrap_or(0.0) * HOURS_PER_MONTH / 1e9));
                }
            }
            views.push(v);
        }
        let cpu: Vec<f64> = p.stages.iter().map(|s| s.resources.cpu_cores.unwrap_or(DEFAULT_CPU_CORES)).collect();
        let mem: Vec<f64> =
            p.stages.iter().map(|s| s.resources.memory_bytes.unwrap_or(DEFAULT_MEMORY_BYTES) as f64).collect();
        let prefs: Vec<Vec<(Preferred, f64, String)>> = p
            .stages
            .iter()
            .map(|s| {
                s.preferences
                    .iter()
                    .map(|pr| {
                        // Bind parameters once, so scoring compares plain strings.
                        let bound = match &pr.prefer {
                            Preferred::Provider { value } => {
                                Preferred::Provider { value: Value::Literal(resolve(value, values)?) }
                            }
                            Preferred::Region { value } => {
                                Preferred::Region { value: Value::Literal(resolve(value, values)?) }
                            }
                            other => other.clone(),
                        };
                        let text = match &bound {
                            Preferred::Tier { tier } => format!("prefer tier {}", tier.as_str()),
                            Preferred::Provider { value } => format!("prefer provider {value}"),
                            Preferred::Region { value } => format!("prefer region {value}"),
                            Preferred::Cheaper => "prefer cheaper".into(),
                            Preferred::Near { stage } => format!("prefer near stage {stage}"),
                        };
                        Ok((bound, pr.weight, format!("{text} weight {}", pr.weight)))
                    })
                    .collect::<Result<Vec<_>, ScheduleError>>()
            })
            .collect::<Result<_, _>>()?;

        let mut pr = Problem {
            c,
            weights,
            n,
            reqs,
            cand: vec![Vec::new(); n],
            unary: vec![Vec::new(); n],
            by_unary: vec![Vec::new(); n],
            price: vec![Vec::new(); n],
            cpu,
            mem,
            pairs: Vec::new(),
            pair_adj: vec![Vec::new(); n],
            limits,
            limit_adj: vec![Vec::new(); n],
            budget: p.budget.as_ref().map(Budget::per_month),
            excluded: vec![Vec::new(); n],
            views,
            prefs,
        };
        for (k, l) in pr.limits.iter().enumerate() {
            pr.limit_adj[l.a].push(k);
            pr.limit_adj[l.b].push(k);
        }
        for &(a, b, _, o) in &graph {
            let bytes = o.and_then(|o| p.stages[a].outputs[o].bytes_per_hour).unwrap_or(0.0);
            pr.pairs.push(Pair {
                a,
                b,
                owner: b,
                gb_month: bytes * HOURS_PER_MONTH / 1e9,
                latency_weight: weights.latency_ms,
                apart_penalty: 0.0,
            });
        }
        for (i, list) in pr.prefs.iter().enumerate() {
            for (pref, w, _) in list {
                if let Preferred::Near { stage } = pref
                    && let Some(&other) = index.get(stage.as_str())
                {
                    pr.pairs.push(Pair {
                        a: other,
                        b: i,
                        owner: i,
                        gb_month: 0.0,
                        latency_weight: 0.0,
                        apart_penalty: w * weights.preference_unit,
                    });
                }
            }
        }
        for (k, q) in pr.pairs.iter().enumerate() {
            pr.pair_adj[q.a].push(k);
            pr.pair_adj[q.b].push(k);
        }
        pr.filter();
        Ok(pr)
    }

    fn filter(&mut self) {
        let nsites = self.c.sites.len();
        // Stages with the same hard requirements (often most of a pipeline) share one
        // pass over the sites: (sites meeting them all, sites each one excluded).
        type Filtered = (Rc<Vec<usize>>, Vec<Rc<Vec<usize>>>);
        let mut cache: HashMap<Vec<&str>, Filtered> = HashMap::new();
        for s in 0..self.n {
            let key: Vec<&str> = self.reqs[s].iter().map(|r| r.text.as_str()).collect();
            let (passing, per_req) = cache
                .entry(key)
                .or_insert_with(|| {
                    let mut per_req = vec![Vec::new(); self.reqs[s].len()];
                    let mut passing = Vec::new();
                    for site in 0..nsites {
                        let mut ok = true;
                        for (k, r) in self.reqs[s].iter().enumerate() {
                            if !r.holds(self.c, site) {
                                per_req[k].push(site);
                                ok = false;
                            }
                        }
                        if ok {
                            passing.push(site);
                        }
                    }
                    (Rc::new(passing), per_req.into_iter().map(Rc::new).collect())
                })
                .clone();
            let mut no_room = Vec::new();
            for &site in passing.iter() {
                if self.c.free_cpu(site) < self.cpu[s] || self.c.free_memory(site) < self.mem[s] {
                    no_room.push(site);
                    continue;
                }
                let terms = self.unary_terms(s, site);
                if terms.total.is_finite() {
                    self.cand[s].push(site);
                    self.unary[s].push(terms.total);
                    self.price[s].push(compute_price(&self.c.sites[site], self.cpu[s], self.mem[s]));
                }
            }
            let mut excluded: Vec<(String, Rc<Vec<usize>>)> =
                self.reqs[s].iter().map(|r| r.text.clone()).zip(per_req).collect();
            // Capacity is checked last, on the sites every requirement let through.
            excluded.push(("capacity (cpu, memory) left on the site".into(), Rc::new(no_room)));
            self.excluded[s] = excluded;
            // Sorted in full on small instances; on large ones only the shortlist is sorted
            // and the rest merely follows it (every later entry costs at least as much), which
            // is all the early exits of the searches need.
            let mut keyed: Vec<(f64, u32)> = self.unary[s].iter().enumerate().map(|(k, &u)| (u, k as u32)).collect();
            let by = |a: &(f64, u32), b: &(f64, u32)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
            let head = solve::SORTED_PREFIX;
            if keyed.len() > head {
                keyed.select_nth_unstable_by(head, by);
                keyed[..head].sort_unstable_by(by);
            } else {
                keyed.sort_unstable_by(by);
            }
            self.by_unary[s] = keyed.into_iter().map(|(_, k)| k as usize).collect();
        }
    }

    /// The unary terms of stage `s` on `site`: price, gravity, preferences.
    pub(crate) fn unary_terms(&self, s: usize, site: usize) -> Terms {
        let w = &self.weights;
        let st = &self.c.sites[site];
        let raw_price = compute_price(st, self.cpu[s], self.mem[s]);
        let price = w.price * raw_price;
        let mut gravity = 0.0;
        for (sites, gb) in &self.views[s] {
            let best = sites
                .iter()
                .map(|&v| {
                    w.gravity_latency_ms * self.c.latency_ms(v, site) + w.transfer * gb * self.c.egress_per_gb(v, site)
                })
                .fold(f64::INFINITY, f64::min);
            if best.is_finite() {
                gravity += best;
            }
        }
        let mut preferences = 0.0;
        for (pref, weight, _) in &self.prefs[s] {
            let unmet = match pref {
                Preferred::Tier { tier } => st.tier != *tier,
                Preferred::Provider { value } => st.provider.as_deref() != Some(value.to_string().as_str()),
                Preferred::Region { value } => !st.region.eq_ignore_ascii_case(&value.to_string()),
                Preferred::Cheaper => {
                    preferences += weight * raw_price * w.price;
                    false
                }
                Preferred::Near { .. } => false,
            };
            if unmet {
                preferences += weight * w.preference_unit;
            }
        }
        let total = price + gravity + preferences;
        Terms { price, latency: 0.0, transfer: 0.0, gravity, preferences, total }
    }

    /// Cost of a pair term with its stages on `sa` and `sb` (∞ when the sites cannot reach each other).
    #[inline]
    pub(crate) fn pair_cost(&self, p: &Pair, sa: usize, sb: usize) -> f64 {
        if sa == sb {
            return 0.0;
        }
        let lat = self.c.latency_ms(sa, sb);
        if !lat.is_finite() {
            return if p.gb_month > 0.0 || p.latency_weight > 0.0 { f64::INFINITY } else { p.apart_penalty };
        }
        p.latency_weight * lat + self.weights.transfer * p.gb_month * self.c.egress_per_gb(sa, sb) + p.apart_penalty
    }

    /// Splits a pair cost into (latency, transfer, preference) parts.
    fn pair_terms(&self, p: &Pair, sa: usize, sb: usize) -> (f64, f64, f64) {
        if sa == sb {
            return (0.0, 0.0, 0.0);
        }
        let lat = self.c.latency_ms(sa, sb);
        (p.latency_weight * lat, self.weights.transfer * p.gb_month * self.c.egress_per_gb(sa, sb), p.apart_penalty)
    }

    /// Unweighted transfer price per month of a pair.
    fn pair_price(&self, p: &Pair, sa: usize, sb: usize) -> f64 {
        if sa == sb { 0.0 } else { p.gb_month * self.c.egress_per_gb(sa, sb) }
    }

    /// Total objective of a full assignment (site per stage).
    pub(crate) fn objective(&self, sites: &[usize], ks: &[usize]) -> f64 {
        let mut total: f64 = (0..self.n).map(|s| self.unary[s][ks[s]]).sum();
        for p in &self.pairs {
            total += self.pair_cost(p, sites[p.a], sites[p.b]);
        }
        total
    }

    /// Unweighted price per month: compute plus transfer between stages.
    pub(crate) fn price_of(&self, sites: &[usize], ks: &[usize]) -> f64 {
        let mut total: f64 = (0..self.n).map(|s| self.price[s][ks[s]]).sum();
        for p in &self.pairs {
            total += self.pair_price(p, sites[p.a], sites[p.b]);
        }
        total
    }
}

/// Places every stage of `pipeline` (its parameters bound to `values`) on `continuum`.
pub fn plan(
    pipeline: &Pipeline,
    values: &BTreeMap<String, String>,
    continuum: &Continuum,
    options: &PlanOptions,
) -> Result<Plan, ScheduleError> {
    let pr = Problem::new(pipeline, values, continuum, options.weights)?;
    let use_exact = match options.solver {
        Solver::Exact => true,
        Solver::Heuristic => false,
        Solver::Auto => pr.n <= options.exact_max_stages,
    };
    let solved = if pr.cand.iter().any(Vec::is_empty) {
        None
    } else if use_exact {
        solve::exact(&pr, options.exact_node_limit).map(|(ks, optimal)| (ks, Solver::Exact, optimal))
    } else {
        solve::heuristic(&pr).map(|ks| (ks, Solver::Heuristic, false))
    };
    let Some((ks, solver, optimal)) = solved else {
        return Err(ScheduleError::Infeasible(solve::relaxations(pipeline, &pr, values, continuum, options)));
    };
    Ok(build_plan(pipeline, values, &pr, &ks, solver, optimal, options))
}

fn build_plan(
    pipeline: &Pipeline,
    values: &BTreeMap<String, String>,
    pr: &Problem<'_>,
    ks: &[usize],
    solver: Solver,
    optimal: bool,
    options: &PlanOptions,
) -> Plan {
    let c = pr.c;
    let sites: Vec<usize> = (0..pr.n).map(|s| pr.cand[s][ks[s]]).collect();
    let mut objective = Terms::default();
    let mut placements = Vec::with_capacity(pr.n);
    let runners_up = solve::runners_up(pr, &sites, ks);
    for (s, stage) in pipeline.stages.iter().enumerate() {
        let site = sites[s];
        let mut terms = pr.unary_terms(s, site);
        for &pi in &pr.pair_adj[s] {
            let p = &pr.pairs[pi];
            if p.owner == s {
                let (l, t, a) = pr.pair_terms(p, sites[p.a], sites[p.b]);
                terms.latency += l;
                terms.transfer += t;
                terms.preferences += a;
                terms.total += l + t + a;
            }
        }
        objective.add(&terms);
        let st = &c.sites[site];
        let mut reasons: Vec<String> = pr.reqs[s].iter().map(|r| r.evidence(c, site)).collect();
        for &li in &pr.limit_adj[s] {
            let l = &pr.limits[li];
            if l.stage == s {
                reasons.push(format!("{}: {:.1} ms", l.text, c.latency_ms(sites[l.a], sites[l.b])));
            }
        }
        reasons.push(format!(
            "capacity: needs {} cores and {} MiB",
            pr.cpu[s],
            (pr.mem[s] / (1024.0 * 1024.0)).round()
        ));
        for (pref, w, text) in &pr.prefs[s] {
            let met = match pref {
                Preferred::Tier { tier } => st.tier == *tier,
                Preferred::Provider { value } => st.provider.as_deref() == Some(value.to_string().as_str()),
                Preferred::Region { value } => st.region.eq_ignore_ascii_case(&value.to_string()),
                Preferred::Cheaper => true,
                Preferred::Near { stage } => {
                    pipeline.stages.iter().position(|x| &x.name == stage).is_some_and(|o| sites[o] == site)
                }
            };
            let cost = if matches!(pref, Preferred::Cheaper) {
                format!("adds {:.2}", w * pr.unary_terms(s, site).price)
            } else if met {
                "met".into()
            } else {
                format!("not met (+{:.1})", w * pr.weights.preference_unit)
            };
            reasons.push(format!("{text}: {cost}"));
        }
        let excluded = pr.excluded[s]
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(text, v)| Exclusion {
                requirement: text.clone(),
                sites: v.len(),
                examples: v.iter().take(3).map(|&i| c.sites[i].header.name.to_string()).collect(),
            })
            .collect();
        let runner_up = runners_up[s]
            .map(|(alt, extra)| RunnerUp { site: c.sites[alt].header.name.to_string(), extra_cost: round2(extra) });
        placements.push(Placement {
            stage: stage.name.clone(),
            site: st.header.name.to_string(),
            tier: st.tier.as_str().to_string(),
            region: st.region.clone(),
            cpu_cores: pr.cpu[s],
            memory_bytes: pr.mem[s] as u64,
            terms: rounded(terms),
            explanation: Explanation { reasons, feasible_sites: pr.cand[s].len(), excluded, runner_up },
        });
    }
    Plan {
        pipeline: pipeline.name.to_string(),
        pipeline_version: pipeline.version.clone(),
        environment: options.environment.clone(),
        parameters: values.clone(),
        solver,
        optimal,
        objective: rounded(objective),
        price_per_month: round2(pr.price_of(&sites, ks)),
        budget_per_month: pr.budget,
        weights: pr.weights,
        placements,
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn rounded(t: Terms) -> Terms {
    Terms {
        price: round2(t.price),
        latency: round2(t.latency),
        transfer: round2(t.transfer),
        gravity: round2(t.gravity),
        preferences: round2(t.preferences),
        total: round2(t.total),
    }
}

/// The exact objective of a plan's assignment recomputed from scratch (for tests and the
/// benchmark's gap measurement): `None` when a site of the plan is unknown.
pub fn objective_of(
    pipeline: &Pipeline,
    values: &BTreeMap<String, String>,
    continuum: &Continuum,
    weights: Weights,
    plan: &Plan,
) -> Option<f64> {
    let pr = Problem::new(pipeline, values, continuum, weights).ok()?;
    let mut sites = Vec::with_capacity(pr.n);
    let mut ks = Vec::with_capacity(pr.n);
    for (s, p) in plan.placements.iter().enumerate() {
        let site = continuum.site_index(&civitas_model::Urn::parse(&p.site).ok()?)?;
        sites.push(site);
        ks.push(pr.cand[s].iter().position(|&x| x == site)?);
    }
    Some(pr.objective(&sites, &ks))
}
