//! Pipeline benchmark (run by `bench/pipeline.sh`; numbers in docs/BENCHMARKS.md):
//!
//! 1. stage placements per second: 100-stage pipelines on a 1,000-site continuum, heuristic
//!    solver, explanations included (the continuum's all-pairs paths are built once, timed apart);
//! 2. heuristic vs exact objective gap over a seeded random set (≤ 12 stages × 20 sites);
//! 3. parse + check of a 1,000-stage `.civ` file.
//!
//! usage: pipeline_bench [PIPELINES] [GAP_INSTANCES]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use civitas_pipeline::schedule::{PlanOptions, Solver, plan, synthetic};
use civitas_pipeline::{check_sources, format_pipeline};

fn main() {
    let mut args = std::env::args().skip(1);
    let pipelines: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let gap_instances: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let none = BTreeMap::new();

    // 1. Throughput.
    let t = Instant::now();
    let continuum = synthetic::continuum(42, 1_000);
    let build = t.elapsed();
    let heuristic = PlanOptions { solver: Solver::Heuristic, ..PlanOptions::default() };
    let inputs: Vec<_> = (0..pipelines).map(|s| synthetic::pipeline(s, 100)).collect();
    let mut placed = 0usize;
    let mut feasible_time = Duration::ZERO;
    let mut infeasible = 0usize;
    let mut infeasible_time = Duration::ZERO;
    let mut per_plan = Vec::with_capacity(inputs.len());
    for p in &inputs {
        let started = Instant::now();
        let result = plan(p, &none, &continuum, &heuristic);
        let took = started.elapsed();
        match result {
            Ok(plan) => {
                placed += plan.placements.len();
                feasible_time += took;
                per_plan.push(took);
            }
            Err(_) => {
                infeasible += 1;
                infeasible_time += took;
            }
        }
    }
    per_plan.sort();
    let p50 = per_plan[per_plan.len() / 2];
    let p99 = per_plan[(per_plan.len() * 99 / 100).min(per_plan.len() - 1)];
    println!(
        "throughput: {placed} stage placements in {:.3} s = {:.0} placements/s ({} of {} pipelines of 100 stages placed; per plan p50 {:.2} ms, p99 {:.2} ms); {} infeasible, refused with their relaxations in {:.2} ms each on average; continuum of 1000 sites built in {:.1} ms",
        feasible_time.as_secs_f64(),
        placed as f64 / feasible_time.as_secs_f64(),
        pipelines as usize - infeasible,
        pipelines,
        ms(p50),
        ms(p99),
        infeasible,
        ms(infeasible_time) / infeasible.max(1) as f64,
        ms(build)
    );

    // 2. Gap to the exact optimum.
    let mut gaps = Vec::new();
    let mut exact_time = Duration::ZERO;
    let mut heuristic_time = Duration::ZERO;
    let mut unproven = 0;
    let mut both_infeasible = 0;
    let mut heuristic_missed = 0;
    for seed in 0..gap_instances {
        let mut rng = synthetic::Rng::new(seed);
        let stages = 6 + rng.below(7); // 6..=12
        let c = synthetic::continuum(seed, 20);
        let p = synthetic::pipeline(seed + 1_000_000, stages);
        let t = Instant::now();
        let e = plan(&p, &none, &c, &PlanOptions { solver: Solver::Exact, ..PlanOptions::default() });
        exact_time += t.elapsed();
        let t = Instant::now();
        let h = plan(&p, &none, &c, &heuristic);
        heuristic_time += t.elapsed();
        match (e, h) {
            (Ok(e), Ok(h)) if e.optimal => {
                gaps.push((h.objective.total - e.objective.total) / e.objective.total.max(1e-9))
            }
            (Ok(e), _) if !e.optimal => unproven += 1,
            (Ok(_), Err(_)) => heuristic_missed += 1,
            _ => both_infeasible += 1,
        }
    }
    let mean = gaps.iter().sum::<f64>() / gaps.len().max(1) as f64;
    let max = gaps.iter().copied().fold(0.0, f64::max);
    let exact_hits = gaps.iter().filter(|g| **g <= 1e-6).count();
    println!(
        "gap: {} instances (6-12 stages x 20 sites): mean gap {:.2} %, max {:.2} %, heuristic optimal on {} of {}; heuristic found no plan on {} feasible instances; {} not proven optimal (node limit), {} infeasible; mean time exact {:.2} ms, heuristic {:.3} ms",
        gaps.len(),
        mean * 100.0,
        max * 100.0,
        exact_hits,
        gaps.len(),
        heuristic_missed,
        unproven,
        both_infeasible,
        ms(exact_time) / gap_instances as f64,
        ms(heuristic_time) / gap_instances as f64
    );

    // 3. Parse + check of a 1,000-stage file.
    let text = format_pipeline(&synthetic::pipeline(7, 1_000));
    let sources = vec![("big.civ".to_string(), text)];
    let mut times = Vec::new();
    for _ in 0..30 {
        let t = Instant::now();
        let checked = check_sources(&sources).expect("the synthetic file checks");
        times.push(t.elapsed());
        assert_eq!(checked.pipelines[0].pipeline.stages.len(), 1_000);
    }
    times.sort();
    println!(
        "parse+check: 1000-stage file of {} bytes ({} lines): median {:.2} ms, max {:.2} ms over 30 runs",
        sources[0].1.len(),
        sources[0].1.lines().count(),
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1])
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
