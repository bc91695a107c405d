//! Placement: the SDD Analyzer Manager — it watches how views are used and says which
//! ones should move closer to their consumers.
//!
//! The data plane records one [`civitas_model::Observation`] per request. The
//! [`AnalyzerManager`] feeds each one to the paper's analyzer strategies (the
//! [`Analyzer`] trait: [`ResponseTimeAnalyzer`], [`SizeAnalyzer`], [`FrequencyAnalyzer`],
//! and the user-written [`CostFunction`]) kept per view and client site over a sliding
//! window. While SDD is activated ([`AnalyzerManager::activate`], the paper's
//! `invoke(triggers, confidence interval)`), every [`TriggerSpec`] — a threshold on an
//! analyzer field with a minimum sample count, a hold time and a cooldown, written in a
//! small language ([`parse_trigger`]) — is evaluated per view and client site; when one
//! fires, a [`MigrationCandidate`] carrying the analysis and the activation's
//! [`ConfidenceInterval`] is published on a [`CandidateBus`] for the migration manager.
//!
//! What it is not: it does not decide or execute migrations (the migration manager
//! does, with the confidence interval passed along), knows nothing of HTTP, the catalog
//! or the route table, and never reads the clock except in [`AnalyzerManager::run`].
//!
//! Invariants:
//! - memory is bounded: per view and client site at most `max_samples_per_key` samples
//!   per windowed analyzer and a fixed number of frequency buckets; at most `max_keys`
//!   keys (idle ones evicted first, then the least recently seen); at most `max_events`
//!   events; per view (across client sites) at most [`MAX_VARIANTS_PER_VIEW`] variant
//!   counts;
//! - every time-dependent function takes `now`, so the same calls give the same results;
//! - a trigger fires at most once per cooldown per view and client site, and only after
//!   its minimum samples and its hold time;
//! - publishing a candidate never blocks the analyzers (the bus drops and counts).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod analyzers;
mod bus;
mod confidence;
mod manager;
pub mod migration;
mod syntax;
mod trigger;

pub use analyzers::{
    Analyzer, COST_FIELD, CostFunction, CostFunctionAnalyzer, Field, FieldKind, FieldValues, FrequencyAnalyzer,
    ResponseTimeAnalyzer, SizeAnalyzer,
};
pub use bus::{CandidateBus, ChannelBus, MigrationCandidate};
pub use civitas_model::Urn;
pub use confidence::ConfidenceInterval;
pub use manager::{
    ActivationRequest, AnalyzerConfig, AnalyzerManager, EVALUATION_INTERVAL, MAX_TRIGGERS, MAX_VARIANTS_PER_VIEW,
    SddError, SddEvent, SddEventKind, SddStatus, TriggerState, TriggerStatus, ViewStatus,
};
pub use trigger::{
    Comparison, DEFAULT_COOLDOWN, DEFAULT_HOLD, DEFAULT_MIN_SAMPLES, MAX_TRIGGER_LEN, TriggerParseError, TriggerSpec,
    TriggerSubject, parse_trigger,
};

/// Milliseconds since the Unix epoch; times before it count as 0.
pub(crate) fn unix_ms(time: std::time::SystemTime) -> u64 {
    time.duration_since(std::time::UNIX_EPOCH).map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)).unwrap_or(0)
}

/// A duration in whole milliseconds, saturating.
pub(crate) fn duration_ms(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
