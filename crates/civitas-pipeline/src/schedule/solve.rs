//! The two solvers over a [`Problem`]: exact branch and bound, and greedy placement with
//! local search; plus the runner-up of each placement and the relaxation search.
//!
//! An assignment is kept as a candidate index per stage (`ks`) and the matching site per
//! stage (`sites`). Capacity is tracked per site while searching.

use std::collections::BTreeMap;

use super::{Continuum, Infeasible, PlanOptions, Problem, Relaxation, Solver};
use crate::model::Pipeline;

const EPS: f64 = 1e-9;

/// The heuristic scores, per stage, at most this many candidates by increasing unary cost,
/// plus the candidates on its neighbours' sites (like the Kubernetes scheduler's
/// `percentageOfNodesToScore`): on a 1,000-site continuum the rest are sites whose price,
/// gravity and preferences alone already lose. Instances with fewer candidates are scored whole.
pub const HEURISTIC_SHORTLIST: usize = 128;

/// How much of [`Problem::by_unary`] is sorted: past it, an entry above the best found
/// does not mean every later one is.
pub(crate) const SORTED_PREFIX: usize = 2 * HEURISTIC_SHORTLIST;

/// Candidate indices the heuristic considers for stage `s`: the shortlist by unary cost,
/// then the candidates on the sites of its placed neighbours.
fn shortlist<'a>(pr: &'a Problem<'_>, s: usize, sites: &'a [usize]) -> impl Iterator<Item = usize> + 'a {
    let top = pr.by_unary[s].iter().copied().take(HEURISTIC_SHORTLIST);
    let beyond = pr.by_unary[s].len() > HEURISTIC_SHORTLIST;
    let near = pr.pair_adj[s]
        .iter()
        .map(|&pi| (pr.pairs[pi].a, pr.pairs[pi].b))
        .chain(pr.limit_adj[s].iter().map(|&li| (pr.limits[li].a, pr.limits[li].b)))
        .map(move |(a, b)| if a == s { b } else { a })
        .filter(move |_| beyond)
        .filter_map(move |x| sites.get(x).copied().filter(|&site| site != usize::MAX))
        .filter_map(move |site| pr.cand[s].binary_search(&site).ok());
    top.chain(near)
}

/// Search order: the most constrained stage first, then always the stage most connected
/// to those already ordered (so pair terms bound early), fewest candidates breaking ties.
fn order(pr: &Problem<'_>) -> Vec<usize> {
    let mut placed = vec![false; pr.n];
    let mut links = vec![0usize; pr.n];
    let mut out = Vec::with_capacity(pr.n);
    for _ in 0..pr.n {
        let next = (0..pr.n)
            .filter(|&s| !placed[s])
            .min_by_key(|&s| (std::cmp::Reverse(links[s]), pr.cand[s].len(), s))
            .expect("an unplaced stage remains");
        placed[next] = true;
        out.push(next);
        for &pi in &pr.pair_adj[next] {
            let p = &pr.pairs[pi];
            links[if p.a == next { p.b } else { p.a }] += 1;
        }
        for &li in &pr.limit_adj[next] {
            let l = &pr.limits[li];
            links[if l.a == next { l.b } else { l.a }] += 2;
        }
    }
    out
}

/// Capacity taken per site by the stages placed so far in one search.
struct Capacity<'c> {
    c: &'c Continuum,
    used: Vec<(f64, f64)>,
}

impl<'c> Capacity<'c> {
    fn new(c: &'c Continuum) -> Self {
        Capacity { c, used: vec![(0.0, 0.0); c.sites.len()] }
    }

    #[inline]
    fn fits(&self, site: usize, cpu: f64, mem: f64) -> bool {
        let (uc, um) = self.used[site];
        uc + cpu <= self.c.free_cpu(site) + EPS && um + mem <= self.c.free_memory(site) + 1e-6
    }

    fn take(&mut self, site: usize, cpu: f64, mem: f64) {
        let e = &mut self.used[site];
        e.0 += cpu;
        e.1 += mem;
    }

    fn give(&mut self, site: usize, cpu: f64, mem: f64) {
        let e = &mut self.used[site];
        e.0 -= cpu;
        e.1 -= mem;
    }
}

/// Cost of putting stage `s` on candidate `k` given the stages already assigned
/// (`sites[x] == usize::MAX` when unassigned); ∞ when a latency limit is broken.
fn incremental(pr: &Problem<'_>, s: usize, k: usize, sites: &[usize]) -> f64 {
    let site = pr.cand[s][k];
    let mut cost = pr.unary[s][k];
    for &pi in &pr.pair_adj[s] {
        let p = &pr.pairs[pi];
        let (sa, sb) = if p.a == s { (site, sites[p.b]) } else { (sites[p.a], site) };
        if sa != usize::MAX && sb != usize::MAX {
            cost += pr.pair_cost(p, sa, sb);
        }
    }
    for &li in &pr.limit_adj[s] {
        let l = &pr.limits[li];
        let other = if l.a == s { sites[l.b] } else { sites[l.a] };
        if other != usize::MAX && pr.c.latency_ms(site, other) > l.max_ms {
            return f64::INFINITY;
        }
    }
    cost
}

struct BranchAndBound<'p, 'c> {
    pr: &'p Problem<'c>,
    order: Vec<usize>,
    sites: Vec<usize>,
    ks: Vec<usize>,
    cap: Capacity<'c>,
    best: f64,
    best_ks: Option<Vec<usize>>,
    nodes: u64,
    limit: u64,
    /// Cheapest price of each stage, for the budget bound.
    min_price_from: Vec<f64>,
}

impl BranchAndBound<'_, '_> {
    /// Lower bound on the cost of the stages from `depth` on: each at its cheapest
    /// candidate given the stages assigned so far (pairs between unassigned stages count 0).
    fn bound(&self, depth: usize) -> f64 {
        let mut total = 0.0;
        for &u in &self.order[depth..] {
            let mut best = f64::INFINITY;
            for (i, &k) in self.pr.by_unary[u].iter().enumerate() {
                if self.pr.unary[u][k] >= best {
                    if i < SORTED_PREFIX {
                        break;
                    }
                    continue;
                }
                best = best.min(incremental(self.pr, u, k, &self.sites));
            }
            if !best.is_finite() {
                return f64::INFINITY;
            }
            total += best;
        }
        total
    }

    fn search(&mut self, depth: usize, cost: f64, price: f64) {
        if self.nodes >= self.limit {
            return;
        }
        self.nodes += 1;
        let pr = self.pr;
        if depth == pr.n {
            let transfer: f64 = pr.pairs.iter().map(|p| pr.pair_price(p, self.sites[p.a], self.sites[p.b])).sum();
            if cost < self.best - EPS && pr.budget.is_none_or(|b| price + transfer <= b + EPS) {
                self.best = cost;
                self.best_ks = Some(self.ks.clone());
            }
            return;
        }
        let s = self.order[depth];
        let mut options: Vec<(f64, usize)> = (0..pr.cand[s].len())
            .filter(|&k| self.cap.fits(pr.cand[s][k], pr.cpu[s], pr.mem[s]))
            .filter(|&k| pr.budget.is_none_or(|b| price + pr.price[s][k] + self.min_price_from[depth + 1] <= b + EPS))
            .map(|k| (incremental(pr, s, k, &self.sites), k))
            .filter(|(c, _)| c.is_finite())
            .collect();
        options.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        for (inc, k) in options {
            if cost + inc >= self.best - EPS {
                break; // sorted: no later option is cheaper
            }
            let site = pr.cand[s][k];
            self.sites[s] = site;
            self.ks[s] = k;
            if cost + inc + self.bound(depth + 1) < self.best - EPS {
                self.cap.take(site, pr.cpu[s], pr.mem[s]);
                self.search(depth + 1, cost + inc, price + pr.price[s][k]);
                self.cap.give(site, pr.cpu[s], pr.mem[s]);
            }
            self.sites[s] = usize::MAX;
        }
    }
}

/// Exact branch and bound, seeded with the heuristic's plan. Returns the best assignment
/// and whether it is proven optimal (false when the node limit cut the search short).
pub(crate) fn exact(pr: &Problem<'_>, node_limit: u64) -> Option<(Vec<usize>, bool)> {
    let seed = heuristic(pr);
    let order = order(pr);
    let mut min_price_from = vec![0.0; pr.n + 1];
    for d in (0..pr.n).rev() {
        let s = order[d];
        min_price_from[d] = min_price_from[d + 1] + pr.price[s].iter().copied().fold(f64::INFINITY, f64::min);
    }
    let mut bb = BranchAndBound {
        pr,
        order,
        sites: vec![usize::MAX; pr.n],
        ks: vec![0; pr.n],
        cap: Capacity::new(pr.c),
        best: f64::INFINITY,
        best_ks: None,
        nodes: 0,
        limit: node_limit,
        min_price_from,
    };
    if let Some(ks) = &seed {
        let sites: Vec<usize> = (0..pr.n).map(|s| pr.cand[s][ks[s]]).collect();
        // Strictly above the seed so the search can return the seed itself.
        bb.best = pr.objective(&sites, ks) + 1e-7;
        bb.best_ks = Some(ks.clone());
    }
    bb.search(0, 0.0, 0.0);
    let complete = bb.nodes < bb.limit;
    bb.best_ks.map(|ks| (ks, complete))
}

/// Greedy placement in search order, then local search; `None` when the greedy pass finds
/// no feasible site for some stage, or the result breaks the budget.
pub(crate) fn heuristic(pr: &Problem<'_>) -> Option<Vec<usize>> {
    let order = order(pr);
    let mut sites = vec![usize::MAX; pr.n];
    let mut ks = vec![0usize; pr.n];
    let mut cap = Capacity::new(pr.c);
    for &s in &order {
        let mut best: Option<(f64, usize)> = None;
        for k in shortlist(pr, s, &sites) {
            if best.is_some_and(|(b, _)| pr.unary[s][k] >= b) || !cap.fits(pr.cand[s][k], pr.cpu[s], pr.mem[s]) {
                continue;
            }
            let c = incremental(pr, s, k, &sites);
            if c.is_finite() && best.is_none_or(|(b, _)| c < b) {
                best = Some((c, k));
            }
        }
        if best.is_none() && pr.by_unary[s].len() > HEURISTIC_SHORTLIST {
            // The shortlist held no site that fits: look at every candidate before giving up.
            for (i, &k) in pr.by_unary[s].iter().enumerate() {
                if best.is_some_and(|(b, _)| pr.unary[s][k] >= b) {
                    if i < SORTED_PREFIX {
                        break;
                    }
                    continue;
                }
                if !cap.fits(pr.cand[s][k], pr.cpu[s], pr.mem[s]) {
                    continue;
                }
                let c = incremental(pr, s, k, &sites);
                if c.is_finite() && best.is_none_or(|(b, _)| c < b) {
                    best = Some((c, k));
                }
            }
        }
        let (_, k) = best?;
        ks[s] = k;
        sites[s] = pr.cand[s][k];
        cap.take(sites[s], pr.cpu[s], pr.mem[s]);
    }
    local_search(pr, &mut sites, &mut ks, &mut cap);
    if pr.budget.is_some_and(|b| pr.price_of(&sites, &ks) > b + EPS) {
        return repair_budget(pr, sites, ks, cap);
    }
    Some(ks)
}

/// Cost of stage `s` on candidate `k` with every other stage where it is (∞ if infeasible).
fn move_cost(pr: &Problem<'_>, s: usize, k: usize, sites: &[usize]) -> f64 {
    let site = pr.cand[s][k];
    let mut cost = pr.unary[s][k];
    for &pi in &pr.pair_adj[s] {
        let p = &pr.pairs[pi];
        let (sa, sb) = if p.a == s { (site, sites[p.b]) } else { (sites[p.a], site) };
        cost += pr.pair_cost(p, sa, sb);
    }
    for &li in &pr.limit_adj[s] {
        let l = &pr.limits[li];
        let other = if l.a == s { sites[l.b] } else { sites[l.a] };
        if pr.c.latency_ms(site, other) > l.max_ms {
            return f64::INFINITY;
        }
    }
    cost
}

/// Improving moves until none is left (bounded): each stage to its best site, revisiting
/// only the neighbours of a stage that moved; then each edge's consumer onto its
/// producer's site (co-location the single moves miss when one site alone is no better).
fn local_search(pr: &Problem<'_>, sites: &mut [usize], ks: &mut [usize], cap: &mut Capacity<'_>) {
    let mut queue: std::collections::VecDeque<usize> = (0..pr.n).collect();
    let mut queued = vec![true; pr.n];
    let neighbours = |s: usize| {
        pr.pair_adj[s]
            .iter()
            .map(|&pi| (pr.pairs[pi].a, pr.pairs[pi].b))
            .chain(pr.limit_adj[s].iter().map(|&li| (pr.limits[li].a, pr.limits[li].b)))
            .map(move |(a, b)| if a == s { b } else { a })
    };
    for _round in 0..20 {
        let mut budget = pr.n * 20;
        while let Some(s) = queue.pop_front() {
            queued[s] = false;
            if budget == 0 {
                break;
            }
            budget -= 1;
            let current = move_cost(pr, s, ks[s], sites);
            let mut best = (current, ks[s]);
            cap.give(sites[s], pr.cpu[s], pr.mem[s]);
            for k in shortlist(pr, s, sites) {
                if pr.unary[s][k] >= best.0 || !cap.fits(pr.cand[s][k], pr.cpu[s], pr.mem[s]) {
                    continue;
                }
                let c = move_cost(pr, s, k, sites);
                if c < best.0 - EPS {
                    best = (c, k);
                }
            }
            let moved = best.1 != ks[s];
            ks[s] = best.1;
            sites[s] = pr.cand[s][best.1];
            cap.take(sites[s], pr.cpu[s], pr.mem[s]);
            if moved {
                for x in neighbours(s) {
                    if !std::mem::replace(&mut queued[x], true) {
                        queue.push_back(x);
                    }
                }
            }
        }
        let mut moved_any = false;
        for p in &pr.pairs {
            let (a, b) = (p.a, p.b);
            if sites[a] == sites[b] {
                continue;
            }
            let Some(k) = pr.cand[b].iter().position(|&x| x == sites[a]) else { continue };
            let before = move_cost(pr, b, ks[b], sites);
            cap.give(sites[b], pr.cpu[b], pr.mem[b]);
            let after =
                if cap.fits(sites[a], pr.cpu[b], pr.mem[b]) { move_cost(pr, b, k, sites) } else { f64::INFINITY };
            if after < before - EPS {
                ks[b] = k;
                sites[b] = sites[a];
                moved_any = true;
                for x in neighbours(b) {
                    if !std::mem::replace(&mut queued[x], true) {
                        queue.push_back(x);
                    }
                }
            }
            cap.take(sites[b], pr.cpu[b], pr.mem[b]);
        }
        if !moved_any && queue.is_empty() {
            break;
        }
    }
}

/// Over budget: move stages, cheapest price saving per objective increase first, until
/// the plan fits or no move saves money.
fn repair_budget(
    pr: &Problem<'_>,
    mut sites: Vec<usize>,
    mut ks: Vec<usize>,
    mut cap: Capacity<'_>,
) -> Option<Vec<usize>> {
    let budget = pr.budget?;
    for _ in 0..pr.n * 4 {
        let price = pr.price_of(&sites, &ks);
        if price <= budget + EPS {
            return Some(ks);
        }
        let mut best: Option<(f64, usize, usize)> = None;
        for s in 0..pr.n {
            let old_cost = move_cost(pr, s, ks[s], &sites);
            cap.give(sites[s], pr.cpu[s], pr.mem[s]);
            for k in 0..pr.cand[s].len() {
                if k == ks[s] || !cap.fits(pr.cand[s][k], pr.cpu[s], pr.mem[s]) {
                    continue;
                }
                let old = (sites[s], ks[s]);
                sites[s] = pr.cand[s][k];
                ks[s] = k;
                let saving = price - pr.price_of(&sites, &ks);
                let extra = move_cost(pr, s, k, &sites) - old_cost;
                (sites[s], ks[s]) = old;
                if saving > EPS && extra.is_finite() {
                    let ratio = extra / saving;
                    if best.is_none_or(|(r, _, _)| ratio < r) {
                        best = Some((ratio, s, k));
                    }
                }
            }
            cap.take(sites[s], pr.cpu[s], pr.mem[s]);
        }
        let (_, s, k) = best?;
        cap.give(sites[s], pr.cpu[s], pr.mem[s]);
        ks[s] = k;
        sites[s] = pr.cand[s][k];
        cap.take(sites[s], pr.cpu[s], pr.mem[s]);
    }
    (pr.price_of(&sites, &ks) <= budget + EPS).then_some(ks)
}

/// For every stage, the best other site with the rest fixed, and how much more it costs.
pub(crate) fn runners_up(pr: &Problem<'_>, sites: &[usize], ks: &[usize]) -> Vec<Option<(usize, f64)>> {
    let mut cap = Capacity::new(pr.c);
    for (x, &site) in sites.iter().enumerate() {
        cap.take(site, pr.cpu[x], pr.mem[x]);
    }
    (0..pr.n)
        .map(|s| {
            cap.give(sites[s], pr.cpu[s], pr.mem[s]);
            let here = move_cost(pr, s, ks[s], sites);
            let mut best: Option<(f64, usize)> = None;
            for (i, &k) in pr.by_unary[s].iter().enumerate() {
                if best.is_some_and(|(b, _)| pr.unary[s][k] >= b) {
                    if i < SORTED_PREFIX {
                        break;
                    }
                    continue;
                }
                if k == ks[s] || !cap.fits(pr.cand[s][k], pr.cpu[s], pr.mem[s]) {
                    continue;
                }
                let c = move_cost(pr, s, k, sites);
                if c.is_finite() && best.is_none_or(|(b, _)| c < b) {
                    best = Some((c, k));
                }
            }
            cap.take(sites[s], pr.cpu[s], pr.mem[s]);
            best.map(|(c, k)| (pr.cand[s][k], c - here))
        })
        .collect()
}

/// The smallest set of requirements found whose relaxation lets the pipeline be placed.
///
/// A stage with no feasible site needs, at least, every requirement that its nearest site
/// fails relaxed (the nearest site is the one failing the fewest): that is exact per stage.
/// When every stage has sites but they do not fit together, the joint constraints (latency
/// between stages, the budget) are dropped one at a time, then two at a time, and the
/// first set that makes the pipeline placeable is returned.
pub(crate) fn relaxations(
    pipeline: &Pipeline,
    pr: &Problem<'_>,
    values: &BTreeMap<String, String>,
    c: &Continuum,
    options: &PlanOptions,
) -> Infeasible {
    let name = pipeline.name.to_string();
    let mut relax = Vec::new();
    for s in 0..pr.n {
        if !pr.cand[s].is_empty() {
            continue;
        }
        // Per site, the requirements it fails; the nearest site fails the fewest.
        let mut failed: Vec<Vec<usize>> = vec![Vec::new(); c.sites.len()];
        let capacity = pr.excluded[s].len() - 1;
        for (k, (_, excluded)) in pr.excluded[s].iter().enumerate().take(capacity) {
            for &site in excluded.iter() {
                failed[site].push(k);
            }
        }
        // The filter checks room only on sites that meet every requirement; here every
        // site counts, so that a relaxed requirement never leads to a full site.
        for (site, f) in failed.iter_mut().enumerate() {
            if c.free_cpu(site) < pr.cpu[s] || c.free_memory(site) < pr.mem[s] {
                f.push(capacity);
            }
        }
        let shortfall =
            |x: usize| -> usize { failed[x].iter().map(|&k| pr.reqs[s].get(k).map_or(1, |r| r.shortfall(c, x))).sum() };
        let nearest =
            (0..c.sites.len()).filter(|&x| !failed[x].is_empty()).min_by_key(|&x| (failed[x].len(), shortfall(x), x));
        let Some(site) = nearest else {
            relax.push(Relaxation {
                stage: pipeline.stages[s].name.clone(),
                stage_index: s,
                requirement_index: None,
                requirement: "the catalog".into(),
                nearest_site: None,
                detail: "the catalog has no site".into(),
            });
            continue;
        };
        for &k in &failed[site] {
            let (text, _) = &pr.excluded[s][k];
            let index = pr.reqs[s].get(k).and_then(|r| r.index);
            relax.push(Relaxation {
                stage: pipeline.stages[s].name.clone(),
                stage_index: s,
                requirement_index: index,
                requirement: text.clone(),
                nearest_site: Some(c.sites[site].header.name.to_string()),
                detail: format!(
                    "no site meets it together with the stage's other requirements; nearest: {} ({}, {}, {})",
                    c.sites[site].header.name,
                    c.sites[site].tier.as_str(),
                    c.sites[site].region,
                    c.sites[site].jurisdiction.as_deref().unwrap_or("no jurisdiction")
                ),
            });
        }
    }
    if !relax.is_empty() {
        return Infeasible { pipeline: name, relax };
    }
    // Joint constraints: latency between stages (by stage and requirement index) and the budget.
    let joint: Vec<Option<(usize, usize)>> =
        pr.limits.iter().map(|l| Some((l.stage, l.index))).chain(pr.budget.map(|_| None)).collect();
    let solves = |drop: &[usize]| -> bool {
        let mut p = pipeline.clone();
        let mut removed: Vec<(usize, usize)> = Vec::new();
        for &d in drop {
            match joint[d] {
                Some(x) => removed.push(x),
                None => p.budget = None,
            }
        }
        removed.sort_unstable_by(|a, b| b.cmp(a));
        for (s, j) in removed {
            p.stages[s].requirements.remove(j);
        }
        let opts = PlanOptions {
            solver: if pr.n <= options.exact_max_stages { Solver::Exact } else { Solver::Heuristic },
            exact_node_limit: 200_000,
            ..options.clone()
        };
        match super::Problem::new(&p, values, c, options.weights) {
            Ok(q) if q.cand.iter().all(|v| !v.is_empty()) => match opts.solver {
                Solver::Exact => exact(&q, opts.exact_node_limit).is_some(),
                _ => heuristic(&q).is_some(),
            },
            _ => false,
        }
    };
    let describe = |d: usize| -> Relaxation {
        match joint[d] {
            Some((s, j)) => {
                let l =
                    pr.limits.iter().find(|l| l.stage == s && l.index == j).expect("joint entries come from limits");
                Relaxation {
                    stage: pipeline.stages[s].name.clone(),
                    stage_index: s,
                    requirement_index: Some(j),
                    requirement: l.text.clone(),
                    nearest_site: None,
                    detail: "no pair of feasible sites for the two stages is this close, with the capacity left".into(),
                }
            }
            None => Relaxation {
                stage: String::new(),
                stage_index: 0,
                requirement_index: None,
                requirement: format!("budget {:.2} per month", pr.budget.unwrap_or(0.0)),
                nearest_site: None,
                detail: "the cheapest placement that meets every requirement costs more".into(),
            },
        }
    };
    let m = joint.len();
    for d in 0..m {
        if solves(&[d]) {
            return Infeasible { pipeline: name, relax: vec![describe(d)] };
        }
    }
    for a in 0..m.min(12) {
        for b in a + 1..m.min(12) {
            if solves(&[a, b]) {
                return Infeasible { pipeline: name, relax: vec![describe(a), describe(b)] };
            }
        }
    }
    Infeasible {
        pipeline: name,
        relax: vec![Relaxation {
            stage: String::new(),
            stage_index: 0,
            requirement_index: None,
            requirement: "capacity".into(),
            nearest_site: None,
            detail:
                "the stages' feasible sites do not have room for all of them together; add capacity or lower resources"
                    .into(),
        }],
    }
}
