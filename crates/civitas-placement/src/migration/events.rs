//! The migration event log: every candidate, plan, decision and answer, with its reason,
//! so `civitas migrations list|show ID` can explain why a view moved or did not.

use std::collections::VecDeque;
use std::time::SystemTime;

use civitas_model::Urn;

use super::decision::{EscalationReason, HoldReason, RefuseReason};
use super::plan::MigrationPlan;
use crate::unix_ms;

/// What happened.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum MigrationEventKind {
    /// A candidate arrived from the analyzers.
    CandidateReceived {
        /// Where its consumers are.
        client_site: Option<Urn>,
        /// The trigger that fired.
        trigger: String,
        /// Its value.
        value: f64,
    },
    /// A strategy produced a plan (with its cost estimate and confidence).
    Planned {
        /// The plan.
        plan: MigrationPlan,
    },
    /// A strategy produced no plan.
    NoPlan {
        /// The strategy.
        strategy: String,
    },
    /// A plan is to run now.
    Execute {
        /// The plan.
        plan: MigrationPlan,
    },
    /// A plan was queued for a person.
    Escalated {
        /// Its id in the escalation queue.
        escalation: u64,
        /// The plan.
        plan: MigrationPlan,
        /// Why.
        reason: EscalationReason,
    },
    /// A person approved a queued plan; it is to run now.
    Approved {
        /// Its id.
        escalation: u64,
        /// The plan.
        plan: MigrationPlan,
    },
    /// A person rejected a queued plan.
    Rejected {
        /// Its id.
        escalation: u64,
        /// The person's reason.
        reason: String,
    },
    /// A queued plan expired unanswered.
    Expired {
        /// Its id.
        escalation: u64,
    },
    /// The candidate was refused.
    Refused {
        /// Why.
        reason: RefuseReason,
    },
    /// The candidate was held.
    Held {
        /// Why.
        reason: HoldReason,
    },
    /// A migration finished: the view now has a replica at `target_site`.
    Executed {
        /// Where.
        target_site: Urn,
    },
    /// The candidate could not be planned: its unit, view, origin or this node's site is
    /// not in the catalog, or a constraint forbids every move.
    Unresolved {
        /// Why.
        reason: String,
    },
    /// Executing a plan failed; nothing was registered (the partial copy is deleted).
    ExecutionFailed {
        /// Where it was going.
        target_site: Urn,
        /// What went wrong.
        error: String,
    },
}

impl MigrationEventKind {
    /// The event's name as serialized (`planned`, `held`…).
    pub fn name(&self) -> &'static str {
        match self {
            MigrationEventKind::CandidateReceived { .. } => "candidateReceived",
            MigrationEventKind::Planned { .. } => "planned",
            MigrationEventKind::NoPlan { .. } => "noPlan",
            MigrationEventKind::Execute { .. } => "execute",
            MigrationEventKind::Escalated { .. } => "escalated",
            MigrationEventKind::Approved { .. } => "approved",
            MigrationEventKind::Rejected { .. } => "rejected",
            MigrationEventKind::Expired { .. } => "expired",
            MigrationEventKind::Refused { .. } => "refused",
            MigrationEventKind::Held { .. } => "held",
            MigrationEventKind::Executed { .. } => "executed",
            MigrationEventKind::Unresolved { .. } => "unresolved",
            MigrationEventKind::ExecutionFailed { .. } => "executionFailed",
        }
    }

    /// One sentence for tables and logs.
    pub fn summary(&self) -> String {
        let plan = |p: &MigrationPlan| {
            format!(
                "{} to {}: gain {:.0} ms, benefit {:.4}/h vs cost {:.4}/h, confidence {:.2}",
                p.strategy,
                p.target_site,
                p.expected_latency_gain_ms,
                p.benefit_per_hour,
                p.cost_per_hour,
                p.confidence
            )
        };
        match self {
            MigrationEventKind::CandidateReceived { client_site, trigger, value } => {
                let site = client_site.as_ref().map_or("an unknown site".to_string(), |s| s.to_string());
                format!("trigger `{trigger}` fired at {value} for clients at {site}")
            }
            MigrationEventKind::Planned { plan: p } => format!("plan: {}", plan(p)),
            MigrationEventKind::NoPlan { strategy } => format!("{strategy}: no plan"),
            MigrationEventKind::Execute { plan: p } => format!("runs by itself: {}", plan(p)),
            MigrationEventKind::Escalated { escalation, reason, .. } => {
                format!("waits for a person as #{escalation}: {reason}")
            }
            MigrationEventKind::Approved { escalation, .. } => format!("#{escalation} approved by a person"),
            MigrationEventKind::Rejected { escalation, reason } => format!("#{escalation} rejected: {reason}"),
            MigrationEventKind::Expired { escalation } => format!("#{escalation} expired unanswered"),
            MigrationEventKind::Refused { reason } => format!("refused: {reason}"),
            MigrationEventKind::Held { reason } => format!("held: {reason}"),
            MigrationEventKind::Executed { target_site } => format!("replica at {target_site} serves the view"),
            MigrationEventKind::Unresolved { reason } => format!("not planned: {reason}"),
            MigrationEventKind::ExecutionFailed { target_site, error } => {
                format!("copy to {target_site} failed: {error}")
            }
        }
    }
}

/// One entry of the log.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrationEvent {
    /// Sequence number, increasing from 1, never reused.
    pub id: u64,
    /// The [`MigrationManager::consider`](super::MigrationManager::consider) call it belongs
    /// to (its first event's id), so one decision's events can be shown together; `None`
    /// for approvals, rejections, expiries and executions.
    pub consideration: Option<u64>,
    /// When, ms since the Unix epoch.
    pub at_unix_ms: u64,
    /// The unit.
    pub unit: Urn,
    /// The view.
    pub view: Urn,
    /// What happened.
    #[serde(flatten)]
    pub kind: MigrationEventKind,
}

/// A bounded ring of events: past its capacity the oldest go.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrationEventLog {
    events: VecDeque<MigrationEvent>,
    next_id: u64,
    capacity: usize,
}

impl MigrationEventLog {
    /// An empty log keeping at most `capacity` events (at least 1).
    pub fn new(capacity: usize) -> MigrationEventLog {
        MigrationEventLog { events: VecDeque::new(), next_id: 1, capacity: capacity.max(1) }
    }

    /// The same log keeping at most `capacity` events (the oldest dropped first).
    pub fn with_capacity(mut self, capacity: usize) -> MigrationEventLog {
        self.capacity = capacity.max(1);
        while self.events.len() > self.capacity {
            self.events.pop_front();
        }
        self
    }

    /// Appends an event; its id.
    pub fn record(
        &mut self,
        unit: &Urn,
        view: &Urn,
        consideration: Option<u64>,
        kind: MigrationEventKind,
        now: SystemTime,
    ) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        if self.events.len() >= self.capacity {
            self.events.pop_front();
        }
        self.events.push_back(MigrationEvent {
            id,
            consideration,
            at_unix_ms: unix_ms(now),
            unit: unit.clone(),
            view: view.clone(),
            kind,
        });
        id
    }

    /// The id the next event will get.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// The events with an id above `after` (all with `None`), oldest first.
    pub fn after(&self, after: Option<u64>) -> Vec<&MigrationEvent> {
        let after = after.unwrap_or(0);
        self.events.iter().filter(|e| e.id > after).collect()
    }

    /// One event.
    pub fn get(&self, id: u64) -> Option<&MigrationEvent> {
        self.events.iter().find(|e| e.id == id)
    }

    /// The events of one consideration, oldest first.
    pub fn consideration(&self, id: u64) -> Vec<&MigrationEvent> {
        self.events.iter().filter(|e| e.consideration == Some(id)).collect()
    }

    /// How many events it holds.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The most events it holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}
