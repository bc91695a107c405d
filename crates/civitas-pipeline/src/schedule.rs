//! Scheduler (placeholder while the DSL lands).
use crate::Diagnostics;
/// A plan.
pub struct Plan;
/// Renders a plan.
pub fn render_plan_table(_p: &Plan) -> String { let _ = Diagnostics::default(); String::new() }
