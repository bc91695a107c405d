//! A plan as a table for people (`civitas pipeline plan … -o table`).

use std::fmt::Write as _;

use super::Plan;

/// Renders a plan: a header with the objective, one row per stage with its site and
/// objective terms, then each stage's explanation.
pub fn render_plan_table(plan: &Plan) -> String {
    let mut out = String::new();
    let env = plan.environment.as_deref().map(|e| format!(", environment {e}")).unwrap_or_default();
    let solver = match (plan.solver, plan.optimal) {
        (super::Solver::Exact, true) => "exact, optimal",
        (super::Solver::Exact, false) => "exact, node limit reached: best found",
        _ => "heuristic",
    };
    let _ = writeln!(out, "PIPELINE {} version {}{env}", plan.pipeline, plan.pipeline_version);
    let budget = plan.budget_per_month.map(|b| format!(" (budget {b:.2})")).unwrap_or_default();
    let _ = writeln!(
        out,
        "objective {:.2} ({solver}); price {:.2} per month{budget}",
        plan.objective.total, plan.price_per_month
    );
    let header = ["STAGE", "SITE", "TIER", "REGION", "PRICE", "LATENCY", "TRANSFER", "GRAVITY", "PREFS", "TOTAL"];
    let mut rows: Vec<[String; 10]> = vec![header.map(String::from)];
    for p in &plan.placements {
        let t = &p.terms;
        rows.push([
            p.stage.clone(),
            p.site.clone(),
            p.tier.clone(),
            p.region.clone(),
            format!("{:.2}", t.price),
            format!("{:.2}", t.latency),
            format!("{:.2}", t.transfer),
            format!("{:.2}", t.gravity),
            format!("{:.2}", t.preferences),
            format!("{:.2}", t.total),
        ]);
    }
    let widths: Vec<usize> = (0..10).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    for r in &rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            // Text columns left-aligned, numbers right-aligned.
            if c < 4 {
                let _ = write!(line, "{cell:<w$}  ", w = widths[c]);
            } else {
                let _ = write!(line, "{cell:>w$}  ", w = widths[c]);
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    for p in &plan.placements {
        let e = &p.explanation;
        let _ = writeln!(out, "\n{} → {} ({} of the sites passed every filter)", p.stage, p.site, e.feasible_sites);
        for r in &e.reasons {
            // Hard requirements are met by construction; preferences may not be.
            let mark = if r.starts_with("prefer") { "~" } else { "✓" };
            let _ = writeln!(out, "  {mark} {r}");
        }
        for x in &e.excluded {
            let more = if x.sites > x.examples.len() { ", …" } else { "" };
            let _ =
                writeln!(out, "  ✗ {} excluded {} site(s): {}{more}", x.requirement, x.sites, x.examples.join(", "));
        }
        match &e.runner_up {
            Some(r) => {
                let _ = writeln!(out, "  runner-up: {} (+{:.2})", r.site, r.extra_cost);
            }
            None => {
                let _ = writeln!(out, "  runner-up: none, the only feasible site");
            }
        }
    }
    out
}
