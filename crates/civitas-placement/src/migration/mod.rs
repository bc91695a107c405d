//! The Migration Manager's decision core: from a [`MigrationCandidate`](crate::MigrationCandidate)
//! to a [`Decision`], with every step explained as a [`MigrationEvent`].
//!
//! Pipeline of [`MigrationManager::consider`]: record the candidate → pins, cooldown,
//! minimum residence and a plan already pending may hold it ([`FlappingGuard`]) → every
//! [`MigrationStrategy`] answers with a [`MigrationPlan`] (cost estimate from the
//! [`CostModel`], confidence in [0, 1]) or nothing → the [`MigrationDecider`] executes the
//! best plan whose confidence is inside the activation's
//! [`ConfidenceInterval`](crate::ConfidenceInterval), escalates the best one to a person
//! ([`EscalationQueue`]) otherwise, refuses when nothing is worth it, and holds when the
//! benefit does not clear the hysteresis factor.
//!
//! What it is not: it executes nothing, does no I/O and reads no clock; the node wires
//! it to the candidate bus, the dependency and security checks, the strategies' copy
//! mechanisms and the catalog (see `docs/migration.md`).
//!
//! Invariants: deterministic (every time-dependent call takes `now`); bounded (events,
//! pending plans); ids of events and pending plans increase and are never reused.

mod cost;
mod decision;
mod escalation;
mod events;
mod flapping;
mod manager;
mod plan;
mod strategy;

pub use cost::{BYTES_PER_GB, CostEstimate, CostModel, HOURS_PER_MONTH, Usage, link, link_latency_ms};
pub use decision::{Decision, EscalationReason, HoldReason, MigrationDecider, RefuseReason};
pub use escalation::{EscalationError, EscalationQueue, PendingMigration};
pub use events::{MigrationEvent, MigrationEventKind, MigrationEventLog};
pub use flapping::{FlappingGuard, Pin, Placement};
pub use manager::{ManagerState, MigrationConfig, MigrationManager};
pub use plan::{MigrationPlan, PlanInput, TargetConstraints, is_object_source, is_sql_source};
pub use strategy::{
    ConfidenceParts, MigrationStrategy, ObjectCopyStrategyModel, PostgresStrategyModel, SnapshotStrategyModel,
};
