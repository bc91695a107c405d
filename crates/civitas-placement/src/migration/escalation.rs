//! Plans waiting for a person (`civitas migrations pending|approve ID|reject ID`).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use civitas_model::Urn;

use super::decision::EscalationReason;
use super::plan::MigrationPlan;
use crate::{duration_ms, unix_ms};

/// One plan waiting for approval.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingMigration {
    /// Stable id: assigned in order, never reused (also after a restore).
    pub id: u64,
    /// The plan proposed.
    pub plan: MigrationPlan,
    /// Why it needs a person.
    pub reason: EscalationReason,
    /// When it was queued, ms since the Unix epoch.
    pub created_at_unix_ms: u64,
    /// When it expires unanswered, ms since the Unix epoch.
    pub expires_at_unix_ms: u64,
}

/// Why an approval or rejection did not apply.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EscalationError {
    /// No pending plan has this id (never queued, answered, or expired and purged).
    #[error("no pending migration with id {0}")]
    NotFound(u64),
    /// The plan expired before the answer; it is removed.
    #[error("pending migration {id} expired at {expired_at_unix_ms} ms since the epoch")]
    Expired {
        /// The id.
        id: u64,
        /// When it expired.
        expired_at_unix_ms: u64,
    },
}

/// The escalation queue: bounded, ordered by id, serializable so the node can persist
/// and serve it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EscalationQueue {
    pending: BTreeMap<u64, PendingMigration>,
    next_id: u64,
    ttl_ms: u64,
    capacity: usize,
}

impl EscalationQueue {
    /// An empty queue whose plans expire after `ttl` and that holds at most `capacity` (at least 1).
    pub fn new(ttl: Duration, capacity: usize) -> EscalationQueue {
        EscalationQueue { pending: BTreeMap::new(), next_id: 1, ttl_ms: duration_ms(ttl), capacity: capacity.max(1) }
    }

    /// The same queue under new limits (a restored queue under the current config);
    /// plans already queued keep their expiry.
    pub fn with_limits(mut self, ttl: Duration, capacity: usize) -> EscalationQueue {
        self.ttl_ms = duration_ms(ttl);
        self.capacity = capacity.max(1);
        self
    }

    /// Queues a plan; its id, or `None` when the queue is full.
    pub fn push(&mut self, plan: MigrationPlan, reason: EscalationReason, now: SystemTime) -> Option<u64> {
        if self.pending.len() >= self.capacity {
            return None;
        }
        let id = self.next_id;
        self.next_id += 1;
        let created = unix_ms(now);
        let pending = PendingMigration {
            id,
            plan,
            reason,
            created_at_unix_ms: created,
            expires_at_unix_ms: created.saturating_add(self.ttl_ms),
        };
        self.pending.insert(id, pending);
        Some(id)
    }

    /// The pending plans, oldest first (expired ones included until [`expire`](Self::expire)).
    pub fn pending(&self) -> Vec<&PendingMigration> {
        self.pending.values().collect()
    }

    /// One pending plan.
    pub fn get(&self, id: u64) -> Option<&PendingMigration> {
        self.pending.get(&id)
    }

    /// The pending plan for this view, if any.
    pub fn pending_for(&self, view: &Urn) -> Option<&PendingMigration> {
        self.pending.values().find(|p| &p.plan.view == view)
    }

    /// How many plans wait.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The most plans it holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Approves a plan: removes it and returns it for execution.
    pub fn approve(&mut self, id: u64, now: SystemTime) -> Result<PendingMigration, EscalationError> {
        self.take_live(id, now)
    }

    /// Rejects a plan: removes it and returns it (the [`MigrationManager`](super::MigrationManager)
    /// records the reason in its event log).
    pub fn reject(&mut self, id: u64, reason: &str, now: SystemTime) -> Result<PendingMigration, EscalationError> {
        let pending = self.take_live(id, now)?;
        tracing::info!(id, view = %pending.plan.view, reason, "pending migration rejected");
        Ok(pending)
    }

    /// Removes and returns every plan expired at `now` (expiry is inclusive).
    pub fn expire(&mut self, now: SystemTime) -> Vec<PendingMigration> {
        let now = unix_ms(now);
        let expired: Vec<u64> = self.pending.values().filter(|p| now >= p.expires_at_unix_ms).map(|p| p.id).collect();
        expired.into_iter().filter_map(|id| self.pending.remove(&id)).collect()
    }

    fn take_live(&mut self, id: u64, now: SystemTime) -> Result<PendingMigration, EscalationError> {
        let pending = self.pending.remove(&id).ok_or(EscalationError::NotFound(id))?;
        if unix_ms(now) >= pending.expires_at_unix_ms {
            return Err(EscalationError::Expired { id, expired_at_unix_ms: pending.expires_at_unix_ms });
        }
        Ok(pending)
    }
}
