//! The Migration Manager's decision core: candidates in, decisions and events out.

use std::time::{Duration, SystemTime};

use civitas_model::Urn;

use super::decision::{Decision, HoldReason, MigrationDecider, RefuseReason};
use super::escalation::{EscalationError, EscalationQueue, PendingMigration};
use super::events::{MigrationEvent, MigrationEventKind, MigrationEventLog};
use super::flapping::{FlappingGuard, Pin};
use super::plan::{MigrationPlan, PlanInput};
use super::strategy::{MigrationStrategy, SnapshotStrategyModel};

/// The migration manager's settings. Every field has a default.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MigrationConfig {
    /// A plan moves only when its benefit exceeds this many times its cost (≥ 1). Default 1.5.
    pub hysteresis_factor: f64,
    /// After a migration of a view is decided, further candidates for it wait this long. Default 10 min.
    #[serde(with = "duration_secs")]
    pub cooldown: Duration,
    /// A replica stays at least this long before it may move again. Default 1 h.
    #[serde(with = "duration_secs")]
    pub min_residence: Duration,
    /// A plan waiting for a person expires after this long. Default 24 h.
    #[serde(with = "duration_secs")]
    pub escalation_ttl: Duration,
    /// Most plans waiting for a person. Default 100.
    pub max_pending: usize,
    /// Events kept. Default 1000.
    pub max_events: usize,
}

impl Default for MigrationConfig {
    fn default() -> MigrationConfig {
        MigrationConfig {
            hysteresis_factor: MigrationDecider::DEFAULT_HYSTERESIS_FACTOR,
            cooldown: Duration::from_secs(600),
            min_residence: Duration::from_secs(3600),
            escalation_ttl: Duration::from_secs(86_400),
            max_pending: 100,
            max_events: 1000,
        }
    }
}

impl MigrationConfig {
    /// Checks the bounds; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        if !self.hysteresis_factor.is_finite() || self.hysteresis_factor < 1.0 {
            return Err(format!("hysteresis_factor must be at least 1, found {}", self.hysteresis_factor));
        }
        if self.escalation_ttl.is_zero() {
            return Err("escalation_ttl must be longer than 0".into());
        }
        if self.max_pending == 0 {
            return Err("max_pending must be at least 1".into());
        }
        if self.max_events == 0 {
            return Err("max_events must be at least 1".into());
        }
        Ok(())
    }
}

mod duration_secs {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs: f64 = serde::Deserialize::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

/// What a [`MigrationManager`] remembers between runs: pins and placements, the
/// plans waiting for a person and the event log. The node persists it after every
/// change and hands it back to [`MigrationManager::restore`] at start-up.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManagerState {
    /// Pins, last decisions and placements.
    pub guard: FlappingGuard,
    /// Plans waiting for a person.
    pub queue: EscalationQueue,
    /// The event log.
    pub events: MigrationEventLog,
}

/// Ties strategies, the decider, anti-flapping, the escalation queue and the event log
/// together. A plain struct: the node puts it behind a lock or in a task. Deterministic:
/// every time-dependent call takes `now`.
pub struct MigrationManager {
    strategies: Vec<Box<dyn MigrationStrategy>>,
    config: MigrationConfig,
    guard: FlappingGuard,
    queue: EscalationQueue,
    events: MigrationEventLog,
}

impl std::fmt::Debug for MigrationManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.strategies.iter().map(|s| s.name()).collect();
        f.debug_struct("MigrationManager")
            .field("strategies", &names)
            .field("config", &self.config)
            .field("pending", &self.queue.len())
            .field("events", &self.events.len())
            .finish()
    }
}

impl MigrationManager {
    /// A manager asking `strategies` in order (a bad config is sanitized: the hysteresis
    /// factor raised to 1, zero bounds to 1).
    pub fn new(config: MigrationConfig, strategies: Vec<Box<dyn MigrationStrategy>>) -> MigrationManager {
        let mut config = config;
        if !config.hysteresis_factor.is_finite() || config.hysteresis_factor < 1.0 {
            config.hysteresis_factor = 1.0;
        }
        MigrationManager {
            strategies,
            guard: FlappingGuard::new(config.cooldown, config.min_residence),
            queue: EscalationQueue::new(config.escalation_ttl, config.max_pending),
            events: MigrationEventLog::new(config.max_events),
            config,
        }
    }

    /// A manager continuing from a saved [`ManagerState`]: the guard takes this
    /// config's cooldown and minimum residence, the queue its expiry and capacity, the
    /// log its capacity (a smaller capacity drops the oldest entries).
    pub fn restore(
        config: MigrationConfig,
        strategies: Vec<Box<dyn MigrationStrategy>>,
        state: ManagerState,
    ) -> MigrationManager {
        let mut manager = MigrationManager::new(config, strategies);
        let ManagerState { mut guard, queue, events } = state;
        guard.cooldown = manager.config.cooldown;
        guard.min_residence = manager.config.min_residence;
        manager.guard = guard;
        manager.queue = queue.with_limits(manager.config.escalation_ttl, manager.config.max_pending);
        manager.events = events.with_capacity(manager.config.max_events);
        manager
    }

    /// What to persist to continue later (see [`MigrationManager::restore`]).
    pub fn state(&self) -> ManagerState {
        ManagerState { guard: self.guard.clone(), queue: self.queue.clone(), events: self.events.clone() }
    }

    /// A manager with the reference `http-snapshot` planning model.
    pub fn with_snapshot_strategy(config: MigrationConfig, model: SnapshotStrategyModel) -> MigrationManager {
        MigrationManager::new(config, vec![Box::new(model)])
    }

    /// The settings.
    pub fn config(&self) -> &MigrationConfig {
        &self.config
    }

    /// Decides what to do with a candidate, recording every step as events: the
    /// candidate, pins and anti-flapping, each strategy's plan (or its absence), and the
    /// decision. An escalated plan is queued ([`Decision::Escalate`] carries its id).
    pub fn consider(&mut self, input: PlanInput, now: SystemTime) -> Decision {
        self.expire(now);
        let unit = input.candidate.unit.clone();
        let view = input.candidate.view.clone();
        let consideration = Some(self.events.next_id());
        self.events.record(
            &unit,
            &view,
            consideration,
            MigrationEventKind::CandidateReceived {
                client_site: input.candidate.client_site.clone(),
                trigger: input.candidate.trigger.clone(),
                value: input.candidate.value,
            },
            now,
        );
        let decision = self.decide(input, consideration, now);
        let kind = match &decision {
            Decision::Execute { plan } => MigrationEventKind::Execute { plan: plan.clone() },
            Decision::Escalate { plan, reason, escalation } => MigrationEventKind::Escalated {
                escalation: escalation.unwrap_or_default(),
                plan: plan.clone(),
                reason: reason.clone(),
            },
            Decision::Refuse { reason } => MigrationEventKind::Refused { reason: reason.clone() },
            Decision::Hold { reason } => MigrationEventKind::Held { reason: reason.clone() },
        };
        self.events.record(&unit, &view, consideration, kind, now);
        tracing::info!(%unit, %view, decision = decision.name(), "migration candidate decided");
        decision
    }

    fn decide(&mut self, mut input: PlanInput, consideration: Option<u64>, now: SystemTime) -> Decision {
        let (unit, view) = (input.candidate.unit.clone(), input.candidate.view.clone());
        if let Some(reason) = self.guard.check(&view, now) {
            return Decision::Hold { reason };
        }
        if let Some(pending) = self.queue.pending_for(&view) {
            return Decision::Hold { reason: HoldReason::AlreadyPending { escalation: pending.id } };
        }
        let keep_at = match self.guard.pin_of(&view) {
            Some(Pin::KeepAt(site)) => Some(site.clone()),
            _ => None,
        };
        if let Some(site) = &keep_at {
            input.targets.retain(|t| &t.header.name == site);
        }
        let mut plans = Vec::new();
        let mut asked = Vec::new();
        for strategy in &self.strategies {
            asked.push(strategy.name().to_string());
            let kind = match strategy.plan(&input) {
                Some(plan) => {
                    plans.push(plan.clone());
                    MigrationEventKind::Planned { plan }
                }
                None => MigrationEventKind::NoPlan { strategy: strategy.name().to_string() },
            };
            self.events.record(&unit, &view, consideration, kind, now);
        }
        if let Some(site) = keep_at
            && plans.is_empty()
        {
            return Decision::Hold { reason: HoldReason::PinnedAt { site } };
        }
        let decider = MigrationDecider::new(input.candidate.confidence, self.config.hysteresis_factor);
        match decider.decide(&plans, &asked) {
            Decision::Execute { plan } => {
                self.guard.note_decision(&view, now);
                Decision::Execute { plan }
            }
            Decision::Escalate { plan, reason, .. } => match self.queue.push(plan.clone(), reason.clone(), now) {
                Some(id) => {
                    self.guard.note_decision(&view, now);
                    Decision::Escalate { plan, reason, escalation: Some(id) }
                }
                None => {
                    Decision::Refuse { reason: RefuseReason::EscalationQueueFull { capacity: self.queue.capacity() } }
                }
            },
            other => other,
        }
    }

    /// Approves a pending plan: returns it for execution and starts the view's cooldown.
    pub fn approve(&mut self, id: u64, now: SystemTime) -> Result<MigrationPlan, EscalationError> {
        let names = self.queue.get(id).map(|p| (p.plan.unit.clone(), p.plan.view.clone()));
        match self.queue.approve(id, now) {
            Ok(pending) => {
                self.guard.note_decision(&pending.plan.view, now);
                let kind = MigrationEventKind::Approved { escalation: id, plan: pending.plan.clone() };
                self.events.record(&pending.plan.unit, &pending.plan.view, None, kind, now);
                Ok(pending.plan)
            }
            Err(error) => {
                if let (EscalationError::Expired { .. }, Some((unit, view))) = (&error, names) {
                    self.events.record(&unit, &view, None, MigrationEventKind::Expired { escalation: id }, now);
                }
                Err(error)
            }
        }
    }

    /// Rejects a pending plan, recording the reason.
    pub fn reject(&mut self, id: u64, reason: &str, now: SystemTime) -> Result<PendingMigration, EscalationError> {
        let names = self.queue.get(id).map(|p| (p.plan.unit.clone(), p.plan.view.clone()));
        match self.queue.reject(id, reason, now) {
            Ok(pending) => {
                let kind = MigrationEventKind::Rejected { escalation: id, reason: reason.to_string() };
                self.events.record(&pending.plan.unit, &pending.plan.view, None, kind, now);
                Ok(pending)
            }
            Err(error) => {
                if let (EscalationError::Expired { .. }, Some((unit, view))) = (&error, names) {
                    self.events.record(&unit, &view, None, MigrationEventKind::Expired { escalation: id }, now);
                }
                Err(error)
            }
        }
    }

    /// Removes the pending plans expired at `now`, recording each.
    pub fn expire(&mut self, now: SystemTime) -> Vec<PendingMigration> {
        let expired = self.queue.expire(now);
        for pending in &expired {
            let kind = MigrationEventKind::Expired { escalation: pending.id };
            self.events.record(&pending.plan.unit, &pending.plan.view, None, kind, now);
        }
        expired
    }

    /// Notes that a migration of `view` to `target_site` finished at `now`: starts its
    /// cooldown and minimum residence.
    pub fn record_executed(&mut self, view: &Urn, target_site: &Urn, now: SystemTime) {
        self.guard.note_placement(view, target_site, now);
        // A view is always `<unit>:<local>`; fall back to the view itself if not.
        let unit = view.as_str().rsplit_once(':').and_then(|(u, _)| Urn::parse(u).ok()).unwrap_or_else(|| view.clone());
        let kind = MigrationEventKind::Executed { target_site: target_site.clone() };
        self.events.record(&unit, view, None, kind, now);
    }

    /// Records a candidate that never reached the strategies (see
    /// [`MigrationEventKind::Unresolved`]).
    pub fn record_unresolved(&mut self, candidate: &crate::MigrationCandidate, reason: &str, now: SystemTime) {
        let (unit, view) = (&candidate.unit, &candidate.view);
        let consideration = Some(self.events.next_id());
        let received = MigrationEventKind::CandidateReceived {
            client_site: candidate.client_site.clone(),
            trigger: candidate.trigger.clone(),
            value: candidate.value,
        };
        self.events.record(unit, view, consideration, received, now);
        let kind = MigrationEventKind::Unresolved { reason: reason.to_string() };
        self.events.record(unit, view, consideration, kind, now);
    }

    /// Records that executing a plan for `view` failed (the cooldown already runs since
    /// the decision, so a failing target is not retried at once).
    pub fn record_failed(&mut self, unit: &Urn, view: &Urn, target_site: &Urn, error: &str, now: SystemTime) {
        let kind = MigrationEventKind::ExecutionFailed { target_site: target_site.clone(), error: error.to_string() };
        self.events.record(unit, view, None, kind, now);
    }

    /// Pins a view (replacing any pin it had).
    pub fn pin(&mut self, view: Urn, pin: Pin) {
        self.guard.pin(view, pin);
    }

    /// Removes a view's pin; the pin it had.
    pub fn unpin(&mut self, view: &Urn) -> Option<Pin> {
        self.guard.unpin(view)
    }

    /// The anti-flapping state (pins, placements).
    pub fn guard(&self) -> &FlappingGuard {
        &self.guard
    }

    /// The escalation queue.
    pub fn queue(&self) -> &EscalationQueue {
        &self.queue
    }

    /// The plans waiting for a person, oldest first.
    pub fn pending(&self) -> Vec<&PendingMigration> {
        self.queue.pending()
    }

    /// The events with an id above `after` (all with `None`), oldest first.
    pub fn events(&self, after: Option<u64>) -> Vec<&MigrationEvent> {
        self.events.after(after)
    }

    /// One event.
    pub fn event(&self, id: u64) -> Option<&MigrationEvent> {
        self.events.get(id)
    }

    /// The event log (for persisting it).
    pub fn event_log(&self) -> &MigrationEventLog {
        &self.events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_validate_and_round_trip_in_seconds() {
        let config = MigrationConfig::default();
        assert_eq!(config.validate(), Ok(()));
        let json = serde_json::to_value(&config).unwrap();
        assert_eq!(json["cooldown"], 600.0);
        assert_eq!(json["min_residence"], 3600.0);
        let back: MigrationConfig = serde_json::from_value(json).unwrap();
        assert_eq!(back, config);
        let unknown = serde_json::json!({ "cooldwn": 1 });
        assert!(serde_json::from_value::<MigrationConfig>(unknown).is_err(), "unknown keys are errors");
        let bad = MigrationConfig { hysteresis_factor: 0.9, ..MigrationConfig::default() };
        assert!(bad.validate().unwrap_err().starts_with("hysteresis_factor"));
        assert_eq!(MigrationManager::new(bad, Vec::new()).config().hysteresis_factor, 1.0);
    }
}
