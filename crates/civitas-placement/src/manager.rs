//! The Analyzer Manager: per view and client site analyses, trigger evaluation, the SDD
//! activation, status and event log.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use civitas_model::{Observation, Urn};
use tokio::sync::{mpsc, watch};

use crate::analyzers::{Analyzer, Field, FieldValues, FrequencyAnalyzer, ResponseTimeAnalyzer, SizeAnalyzer};
use crate::bus::{CandidateBus, MigrationCandidate};
use crate::confidence::ConfidenceInterval;
use crate::trigger::{TriggerParseError, TriggerSpec, TriggerSubject, parse_trigger};
use crate::{duration_ms, unix_ms};

/// How often [`AnalyzerManager::run`] re-evaluates triggers that are holding, fired or
/// cooling down, so that a hold time or a cooldown ends without a new request.
pub const EVALUATION_INTERVAL: Duration = Duration::from_millis(250);

/// Most triggers in one activation (each costs state per view and client site).
pub const MAX_TRIGGERS: usize = 32;

/// Most resources (variants, see [`Observation::variant`]) counted per view, across
/// client sites. When a new variant arrives and the view already counts this many, the
/// least counted one (of those, the one requested longest ago) is forgotten and the new
/// one starts at 1. Counts last as long as the view is analysed for some client site.
pub const MAX_VARIANTS_PER_VIEW: usize = 32;

/// Bounds and tuning of the analyzers.
#[derive(Debug, Clone)]
pub struct AnalyzerConfig {
    /// Length of the sliding window every analysis covers. Default 60 s.
    pub window: Duration,
    /// Most samples a windowed analyzer (response time, size) keeps per view and client
    /// site; past it the oldest go. Default 4096.
    pub max_samples_per_key: usize,
    /// Smoothing factor α of `response_time.ewma`, in (0, 1]. Default 0.2.
    pub ewma_alpha: f64,
    /// A view and client site not requested for this long is forgotten. Default 10 min.
    pub idle_eviction: Duration,
    /// Most views and client sites analysed at once; past it the least recently
    /// requested is forgotten. Default 10,000.
    pub max_keys: usize,
    /// Events kept for [`AnalyzerManager::events`]. Default 1000.
    pub max_events: usize,
}

impl Default for AnalyzerConfig {
    fn default() -> AnalyzerConfig {
        AnalyzerConfig {
            window: Duration::from_secs(60),
            max_samples_per_key: 4096,
            ewma_alpha: 0.2,
            idle_eviction: Duration::from_secs(600),
            max_keys: 10_000,
            max_events: 1000,
        }
    }
}

impl AnalyzerConfig {
    /// Checks the bounds; the error names the field. [`AnalyzerManager::new`] does not
    /// refuse a bad config: it raises zeros to 1 (1 ms for the window) and replaces an α
    /// outside (0, 1] with 0.2.
    pub fn validate(&self) -> Result<(), String> {
        if self.window.is_zero() {
            return Err("window must be longer than 0".into());
        }
        if self.max_samples_per_key == 0 {
            return Err("max_samples_per_key must be at least 1".into());
        }
        if !(self.ewma_alpha > 0.0 && self.ewma_alpha <= 1.0) {
            return Err(format!("ewma_alpha must be in (0, 1], found {}", self.ewma_alpha));
        }
        if self.max_keys == 0 {
            return Err("max_keys must be at least 1".into());
        }
        if self.max_events == 0 {
            return Err("max_events must be at least 1".into());
        }
        Ok(())
    }

    fn sanitized(mut self) -> AnalyzerConfig {
        self.window = self.window.max(Duration::from_millis(1));
        self.max_samples_per_key = self.max_samples_per_key.max(1);
        if !(self.ewma_alpha > 0.0 && self.ewma_alpha <= 1.0) {
            self.ewma_alpha = 0.2;
        }
        self.max_keys = self.max_keys.max(1);
        self.max_events = self.max_events.max(1);
        self
    }
}

/// The paper's `invoke(triggers, confidence interval)`: the body of `POST /api/v1/sdd/activate`.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ActivationRequest {
    /// Triggers in the trigger language, e.g. `response_time.p50 > 3s`.
    pub triggers: Vec<String>,
    /// The confidence interval, e.g. `0.8..1.0`.
    pub confidence: String,
}

/// Why an activation was refused. A refused activation changes nothing.
#[derive(Debug, thiserror::Error)]
pub enum SddError {
    /// The trigger at `index` (0-based) does not parse.
    #[error("trigger {index} ({text:?}): {error}")]
    InvalidTrigger {
        /// Position of the trigger in the request, from 0.
        index: usize,
        /// The trigger as sent.
        text: String,
        /// What is wrong, with its column.
        error: TriggerParseError,
    },
    /// The confidence interval does not parse or is out of bounds.
    #[error("invalid confidence interval: {0}")]
    InvalidConfidence(String),
    /// The request has no trigger.
    #[error("an activation needs at least one trigger")]
    NoTriggers,
}

/// What SDD is doing: `GET /api/v1/sdd/status`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SddStatus {
    /// Whether triggers are being evaluated.
    pub active: bool,
    /// The activation's confidence interval, while active.
    pub confidence: Option<ConfidenceInterval>,
    /// The activation's triggers as written, while active.
    pub triggers: Vec<String>,
    /// Every analysed view and client site, sorted by unit, view and client site.
    pub views: Vec<ViewStatus>,
}

/// The analysis of one view for one client site.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ViewStatus {
    /// The unit.
    pub unit: Urn,
    /// The view.
    pub view: Urn,
    /// The client site; `null` gathers requests from clients that named none.
    pub client_site: Option<Urn>,
    /// Requests in the window.
    pub samples: u64,
    /// Every field with data, by full name (`response_time.p50`: ms, `size.mean`: bytes…).
    pub analysis: BTreeMap<String, f64>,
    /// The state of each trigger of the activation, in its order (empty while inactive).
    pub triggers: Vec<TriggerStatus>,
    /// The view's most requested variants, counted across client sites (the same for
    /// every client site of the view), as a candidate would carry them; absent when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub top_variants: Vec<String>,
}

/// One trigger's state for one view and client site.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TriggerStatus {
    /// The trigger as written.
    pub trigger: String,
    /// Where it is in its cycle.
    pub state: TriggerState,
    /// When it entered the state (for `fired` and `cooldown`: when it fired), ms since the epoch.
    pub since_unix_ms: u64,
    /// Its value now, in the field's base unit; `null` without data.
    pub value: Option<f64>,
}

/// A trigger's cycle: idle → holding → fired → cooldown → idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TriggerState {
    /// Condition false (or too few samples).
    Idle,
    /// Condition true, waiting for the hold time.
    Holding,
    /// Fired, and the condition has stayed true since; will not fire again before the cooldown.
    Fired,
    /// Fired, and the condition went false since; will not fire again before the cooldown.
    Cooldown,
}

/// Something SDD did: `GET /api/v1/sdd/events`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SddEvent {
    /// Increasing identifier, from 1; pass the last one seen as `after`.
    pub id: u64,
    /// When, ms since the epoch.
    pub at_unix_ms: u64,
    /// What.
    pub kind: SddEventKind,
    /// For `fired`: the trigger as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
    /// For `fired`: the unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<Urn>,
    /// For `fired`: the view.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view: Option<Urn>,
    /// For `fired`: the client site, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_site: Option<Urn>,
    /// For `fired`: the trigger's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
}

/// Kinds of [`SddEvent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SddEventKind {
    /// Triggers were (re)placed.
    Activated,
    /// Triggers were removed.
    Deactivated,
    /// A trigger fired and a migration candidate was published.
    Fired,
}

/// The Analyzer Manager. Cheap to clone (an `Arc` inside); every clone is the same manager.
///
/// All state sits behind one mutex, held for one observation or one read at a time.
/// The data plane never touches it: it only sends observations on the channel that
/// [`run`](AnalyzerManager::run) consumes.
#[derive(Clone)]
pub struct AnalyzerManager {
    shared: Arc<Shared>,
}

struct Shared {
    bus: Arc<dyn CandidateBus>,
    state: Mutex<State>,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct ViewKey {
    unit: Arc<Urn>,
    view: Arc<Urn>,
    client_site: Option<Arc<Urn>>,
}

struct State {
    config: AnalyzerConfig,
    views: HashMap<ViewKey, ViewState>,
    /// Per unit and view (across client sites): the most requested variants.
    variants: HashMap<(Arc<Urn>, Arc<Urn>), Variants>,
    /// Views by last request, oldest first: `recency number → key`.
    recency: BTreeMap<u64, ViewKey>,
    next_recency: u64,
    activation: Option<Activation>,
    events: VecDeque<SddEvent>,
    next_event_id: u64,
}

struct Activation {
    triggers: Vec<TriggerSpec>,
    confidence: ConfidenceInterval,
}

struct ViewState {
    response_time: ResponseTimeAnalyzer,
    size: SizeAnalyzer,
    frequency: FrequencyAnalyzer,
    last_seen_ms: u64,
    recency: u64,
    /// One per trigger of the activation; empty while inactive.
    triggers: Vec<Phase>,
}

/// The bounded variant counts of one view (see [`MAX_VARIANTS_PER_VIEW`]).
#[derive(Default)]
struct Variants {
    /// How many analysed view keys (client sites) share these counts; at 0 they go.
    keys: usize,
    /// Variant, count, sequence number of its last request.
    counts: Vec<(http::uri::PathAndQuery, u64, u64)>,
    next_seq: u64,
}

impl Variants {
    fn count(&mut self, variant: &http::uri::PathAndQuery) {
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some(entry) = self.counts.iter_mut().find(|(v, ..)| v == variant) {
            entry.1 += 1;
            entry.2 = seq;
            return;
        }
        if self.counts.len() >= MAX_VARIANTS_PER_VIEW
            && let Some(least) = (0..self.counts.len()).min_by_key(|&i| (self.counts[i].1, self.counts[i].2))
        {
            self.counts.swap_remove(least);
        }
        self.counts.push((variant.clone(), 1, seq));
    }

    /// Most requested first, ties by text.
    fn top(&self) -> Vec<String> {
        let mut top: Vec<(&str, u64)> = self.counts.iter().map(|(v, n, _)| (v.as_str(), *n)).collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        top.into_iter().map(|(v, _)| v.to_owned()).collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Idle { since: u64 },
    Holding { since: u64 },
    Fired { at: u64 },
    Cooldown { at: u64 },
}

impl Phase {
    fn status(self) -> (TriggerState, u64) {
        match self {
            Phase::Idle { since } => (TriggerState::Idle, since),
            Phase::Holding { since } => (TriggerState::Holding, since),
            Phase::Fired { at } => (TriggerState::Fired, at),
            Phase::Cooldown { at } => (TriggerState::Cooldown, at),
        }
    }

    /// One evaluation: the next phase, and whether the trigger fires now.
    fn step(self, condition: bool, hold_ms: u64, cooldown_ms: u64, now_ms: u64) -> (Phase, bool) {
        let phase = match self {
            Phase::Fired { at } | Phase::Cooldown { at } if now_ms.saturating_sub(at) < cooldown_ms => {
                let stays_fired = condition && matches!(self, Phase::Fired { .. });
                return (if stays_fired { self } else { Phase::Cooldown { at } }, false);
            }
            // The cooldown is over: re-armed, and judged afresh below.
            Phase::Fired { .. } | Phase::Cooldown { .. } => Phase::Idle { since: now_ms },
            other => other,
        };
        let since = match phase {
            Phase::Idle { .. } if condition => now_ms,
            Phase::Holding { since } if condition => since,
            Phase::Idle { .. } => return (phase, false),
            _ => return (Phase::Idle { since: now_ms }, false),
        };
        if now_ms.saturating_sub(since) >= hold_ms {
            (Phase::Fired { at: now_ms }, true)
        } else {
            (Phase::Holding { since }, false)
        }
    }
}

impl ViewState {
    fn new(config: &AnalyzerConfig, now_ms: u64, recency: u64, triggers: usize) -> ViewState {
        ViewState {
            response_time: ResponseTimeAnalyzer::new(config.window, config.max_samples_per_key, config.ewma_alpha),
            size: SizeAnalyzer::new(config.window, config.max_samples_per_key),
            frequency: FrequencyAnalyzer::new(config.window),
            last_seen_ms: now_ms,
            recency,
            triggers: vec![Phase::Idle { since: now_ms }; triggers],
        }
    }

    fn analyzers_mut(&mut self) -> [&mut dyn Analyzer; 3] {
        [&mut self.response_time, &mut self.size, &mut self.frequency]
    }

    /// Expires what left the window and computes every field at `now`.
    fn analyse(&mut self, now: SystemTime) -> FieldValues {
        let mut pairs = Vec::with_capacity(Field::ALL.len());
        for analyzer in self.analyzers_mut() {
            analyzer.expire(now);
            pairs.extend(analyzer.fields(now));
        }
        FieldValues::from_pairs(&pairs)
    }
}

fn analysis_map(values: &FieldValues) -> BTreeMap<String, f64> {
    values.iter().map(|(field, value)| (field.name().to_string(), value)).collect()
}

fn samples_of(values: &FieldValues) -> u64 {
    values.get(Field::Samples).unwrap_or(0.0) as u64
}

/// Evaluates every trigger of `activation` for one view; returns what fired.
fn evaluate(
    activation: &Activation,
    key: &ViewKey,
    view: &mut ViewState,
    variants: Option<&Variants>,
    now: SystemTime,
) -> Vec<MigrationCandidate> {
    let now_ms = unix_ms(now);
    let values = view.analyse(now);
    let samples = samples_of(&values);
    let mut fired = Vec::new();
    for (spec, phase) in activation.triggers.iter().zip(view.triggers.iter_mut()) {
        let value = spec.value(&values);
        let condition = spec.is_met(value, samples);
        let (next, fires) = phase.step(condition, duration_ms(spec.hold), duration_ms(spec.cooldown), now_ms);
        *phase = next;
        let Some(value) = value.filter(|_| fires) else { continue };
        let mut analysis = analysis_map(&values);
        if let TriggerSubject::Cost(_) = spec.subject {
            analysis.insert(crate::analyzers::COST_FIELD.to_string(), value);
        }
        tracing::info!(
            unit = %key.unit,
            view = %key.view,
            client_site = key.client_site.as_deref().map(Urn::as_str),
            trigger = %spec.text,
            value,
            "SDD trigger fired"
        );
        fired.push(MigrationCandidate {
            unit: (*key.unit).clone(),
            view: (*key.view).clone(),
            client_site: key.client_site.as_deref().cloned(),
            trigger: spec.text.clone(),
            value,
            analysis,
            fired_at_unix_ms: now_ms,
            variants: variants.map(Variants::top).unwrap_or_default(),
            confidence: activation.confidence,
        });
    }
    fired
}

impl State {
    fn record(&mut self, mut event: SddEvent) {
        event.id = self.next_event_id;
        self.next_event_id += 1;
        if self.events.len() >= self.config.max_events {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }

    fn record_fired(&mut self, candidates: &[MigrationCandidate]) {
        for c in candidates {
            self.record(SddEvent {
                id: 0,
                at_unix_ms: c.fired_at_unix_ms,
                kind: SddEventKind::Fired,
                trigger: Some(c.trigger.clone()),
                unit: Some(c.unit.clone()),
                view: Some(c.view.clone()),
                client_site: c.client_site.clone(),
                value: Some(c.value),
            });
        }
    }

    /// Forgets the least recently requested view.
    fn remove_oldest(&mut self) {
        if let Some((_, key)) = self.recency.pop_first() {
            self.views.remove(&key);
            let view = (key.unit, key.view);
            if let Some(variants) = self.variants.get_mut(&view) {
                variants.keys = variants.keys.saturating_sub(1);
                if variants.keys == 0 {
                    self.variants.remove(&view);
                }
            }
        }
    }

    /// Forgets the views not requested for `idle_eviction`, oldest first. The walk follows
    /// request order and stops at the first view still in use, so with a clock that went
    /// backwards an idle view may outlive its time until the ones before it go.
    fn evict_idle(&mut self, now_ms: u64) {
        let idle_ms = duration_ms(self.config.idle_eviction);
        while let Some((_, key)) = self.recency.first_key_value() {
            let last_seen = self.views.get(key).map_or(0, |v| v.last_seen_ms);
            if last_seen.saturating_add(idle_ms) > now_ms {
                break;
            }
            self.remove_oldest();
        }
    }

    fn observe(&mut self, obs: &Observation, now: SystemTime) -> Vec<MigrationCandidate> {
        let now_ms = unix_ms(now);
        // A record dated in the future (a remote proxy's clock ahead of ours) would push
        // every window forward and expire the present: it counts as arriving now.
        let clamped;
        let obs = if obs.time > now {
            clamped = Observation { time: now, ..obs.clone() };
            &clamped
        } else {
            obs
        };
        let key = ViewKey { unit: obs.unit.clone(), view: obs.view.clone(), client_site: obs.client_site.clone() };
        let recency = self.next_recency;
        self.next_recency += 1;
        if let Some(view) = self.views.get_mut(&key) {
            if let Some(key) = self.recency.remove(&view.recency) {
                self.recency.insert(recency, key);
            }
            view.recency = recency;
            view.last_seen_ms = now_ms;
        } else {
            self.evict_idle(now_ms);
            while self.views.len() >= self.config.max_keys && !self.recency.is_empty() {
                self.remove_oldest();
            }
            let triggers = self.activation.as_ref().map_or(0, |a| a.triggers.len());
            self.views.insert(key.clone(), ViewState::new(&self.config, now_ms, recency, triggers));
            self.recency.insert(recency, key.clone());
            self.variants.entry((key.unit.clone(), key.view.clone())).or_default().keys += 1;
        }
        let Some(view) = self.views.get_mut(&key) else { return Vec::new() };
        for analyzer in view.analyzers_mut() {
            analyzer.observe(obs);
        }
        let variants = self.variants.get_mut(&(key.unit.clone(), key.view.clone()));
        let variants = match (variants, &obs.variant) {
            (Some(variants), Some(variant)) => {
                variants.count(variant);
                Some(&*variants)
            }
            (variants, _) => variants.map(|v| &*v),
        };
        let Some(activation) = &self.activation else { return Vec::new() };
        let fired = evaluate(activation, &key, view, variants, now);
        self.record_fired(&fired);
        fired
    }

    /// Evaluates the views with a trigger that is not idle; `all` evaluates every view.
    fn evaluate_views(&mut self, now: SystemTime, all: bool) -> Vec<MigrationCandidate> {
        let Some(activation) = &self.activation else { return Vec::new() };
        let mut fired = Vec::new();
        for (key, view) in &mut self.views {
            if all || view.triggers.iter().any(|p| !matches!(p, Phase::Idle { .. })) {
                let variants = self.variants.get(&(key.unit.clone(), key.view.clone()));
                fired.extend(evaluate(activation, key, view, variants, now));
            }
        }
        // A stable order for the bus and the event log.
        fired.sort_by(|a, b| (&a.unit, &a.view, &a.client_site).cmp(&(&b.unit, &b.view, &b.client_site)));
        self.record_fired(&fired);
        fired
    }

    fn status(&mut self, now: SystemTime) -> SddStatus {
        let activation = self.activation.as_ref();
        let mut views: Vec<ViewStatus> = self
            .views
            .iter_mut()
            .map(|(key, view)| {
                let values = view.analyse(now);
                let triggers = activation
                    .map(|a| {
                        a.triggers
                            .iter()
                            .zip(&view.triggers)
                            .map(|(spec, phase)| {
                                let (state, since_unix_ms) = phase.status();
                                TriggerStatus {
                                    trigger: spec.text.clone(),
                                    state,
                                    since_unix_ms,
                                    value: spec.value(&values),
                                }
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                ViewStatus {
                    unit: (*key.unit).clone(),
                    view: (*key.view).clone(),
                    client_site: key.client_site.as_deref().cloned(),
                    samples: samples_of(&values),
                    analysis: analysis_map(&values),
                    triggers,
                    top_variants: self
                        .variants
                        .get(&(key.unit.clone(), key.view.clone()))
                        .map(Variants::top)
                        .unwrap_or_default(),
                }
            })
            .collect();
        views.sort_by(|a, b| (&a.unit, &a.view, &a.client_site).cmp(&(&b.unit, &b.view, &b.client_site)));
        SddStatus {
            active: activation.is_some(),
            confidence: activation.map(|a| a.confidence),
            triggers: activation.map(|a| a.triggers.iter().map(|t| t.text.clone()).collect()).unwrap_or_default(),
            views,
        }
    }
}

impl std::fmt::Debug for AnalyzerManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("AnalyzerManager")
            .field("active", &state.activation.is_some())
            .field("views", &state.views.len())
            .field("events", &state.events.len())
            .finish_non_exhaustive()
    }
}

impl AnalyzerManager {
    /// A manager with no view analysed and SDD inactive; fired triggers go to `bus`.
    pub fn new(config: AnalyzerConfig, bus: Arc<dyn CandidateBus>) -> AnalyzerManager {
        let state = State {
            config: config.sanitized(),
            views: HashMap::new(),
            variants: HashMap::new(),
            recency: BTreeMap::new(),
            next_recency: 0,
            activation: None,
            events: VecDeque::new(),
            next_event_id: 1,
        };
        AnalyzerManager { shared: Arc::new(Shared { bus, state: Mutex::new(state) }) }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update leaves the state consistent before anything can panic, so a
        // poisoned lock is still usable.
        self.shared.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn publish(&self, candidates: Vec<MigrationCandidate>) {
        for candidate in candidates {
            self.shared.bus.publish(candidate);
        }
    }

    /// Learns from one request at `now`: updates the analyzers of its view and client
    /// site (always) and, while active, evaluates that view's triggers. Publishing
    /// happens after the lock is released.
    pub fn observe(&self, obs: &Observation, now: SystemTime) {
        let fired = self.lock().observe(obs, now);
        self.publish(fired);
    }

    /// The periodic pass [`run`](AnalyzerManager::run) makes every
    /// [`EVALUATION_INTERVAL`]: forgets idle views and re-evaluates every trigger that is
    /// holding, fired or cooling down, so a hold time or a cooldown ends without a new
    /// request. (An idle trigger is evaluated when its view is requested: a view nobody
    /// asks for is no migration candidate.)
    pub fn tick(&self, now: SystemTime) {
        let fired = {
            let mut state = self.lock();
            state.evict_idle(unix_ms(now));
            state.evaluate_views(now, false)
        };
        self.publish(fired);
    }

    /// Consumes observations until `shutdown` turns true (or its sender is dropped),
    /// calling [`observe`](AnalyzerManager::observe) for each and
    /// [`tick`](AnalyzerManager::tick) every [`EVALUATION_INTERVAL`], both with
    /// `SystemTime::now()` — the only place this crate reads the clock. If the
    /// observation channel closes, the ticks go on until shutdown.
    pub async fn run(self, mut observations: mpsc::Receiver<Observation>, mut shutdown: watch::Receiver<bool>) {
        let mut interval = tokio::time::interval(EVALUATION_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut open = true;
        loop {
            if *shutdown.borrow_and_update() {
                break;
            }
            // Biased so a steady stream of observations cannot starve the ticks.
            tokio::select! {
                biased;
                changed = shutdown.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
                _ = interval.tick() => self.tick(SystemTime::now()),
                received = observations.recv(), if open => match received {
                    Some(obs) => self.observe(&obs, SystemTime::now()),
                    None => open = false,
                },
            }
        }
        tracing::debug!("analyzer manager stopped");
    }

    /// Activates SDD with `request`'s triggers and confidence interval, replacing any
    /// previous activation (every trigger starts idle). Triggers are checked in order and
    /// the first bad one is reported with its index and column; then the confidence. A
    /// refused activation changes nothing. Every analysed view is evaluated at once, so a
    /// view already past a threshold starts holding (or fires) now.
    pub fn activate(&self, request: &ActivationRequest, now: SystemTime) -> Result<SddStatus, SddError> {
        if request.triggers.is_empty() {
            return Err(SddError::NoTriggers);
        }
        let mut triggers = Vec::with_capacity(request.triggers.len());
        for (index, text) in request.triggers.iter().enumerate() {
            if index == MAX_TRIGGERS {
                let message = format!("an activation has at most {MAX_TRIGGERS} triggers");
                let error = TriggerParseError { column: 1, message };
                return Err(SddError::InvalidTrigger { index, text: text.clone(), error });
            }
            let spec =
                parse_trigger(text).map_err(|error| SddError::InvalidTrigger { index, text: text.clone(), error })?;
            triggers.push(spec);
        }
        let confidence: ConfidenceInterval = request.confidence.parse().map_err(SddError::InvalidConfidence)?;
        let now_ms = unix_ms(now);
        let (status, fired) = {
            let mut state = self.lock();
            let count = triggers.len();
            state.activation = Some(Activation { triggers, confidence });
            for view in state.views.values_mut() {
                view.triggers = vec![Phase::Idle { since: now_ms }; count];
            }
            state.record(SddEvent {
                id: 0,
                at_unix_ms: now_ms,
                kind: SddEventKind::Activated,
                trigger: None,
                unit: None,
                view: None,
                client_site: None,
                value: None,
            });
            let fired = state.evaluate_views(now, true);
            (state.status(now), fired)
        };
        tracing::info!(triggers = ?status.triggers, %confidence, "SDD activated");
        self.publish(fired);
        Ok(status)
    }

    /// Stops evaluating triggers (analyses go on). Idempotent; records a `deactivated`
    /// event only when SDD was active.
    pub fn deactivate(&self, now: SystemTime) -> SddStatus {
        let mut state = self.lock();
        if state.activation.take().is_some() {
            for view in state.views.values_mut() {
                view.triggers.clear();
            }
            state.record(SddEvent {
                id: 0,
                at_unix_ms: unix_ms(now),
                kind: SddEventKind::Deactivated,
                trigger: None,
                unit: None,
                view: None,
                client_site: None,
                value: None,
            });
            tracing::info!("SDD deactivated");
        }
        state.status(now)
    }

    /// The activation and every analysed view's analysis and trigger states at `now`.
    pub fn status(&self, now: SystemTime) -> SddStatus {
        self.lock().status(now)
    }

    /// The events kept (at most `max_events`, oldest first) with an id above `after`.
    pub fn events(&self, after: Option<u64>) -> Vec<SddEvent> {
        let after = after.unwrap_or(0);
        self.lock().events.iter().filter(|e| e.id > after).cloned().collect()
    }

    /// How many views and client sites are analysed now.
    pub fn tracked_views(&self) -> usize {
        self.lock().views.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_cycle() {
        let (hold, cooldown) = (100, 1000);
        let idle = Phase::Idle { since: 0 };
        assert_eq!(idle.step(false, hold, cooldown, 10), (idle, false));
        let (holding, fired) = idle.step(true, hold, cooldown, 10);
        assert_eq!((holding, fired), (Phase::Holding { since: 10 }, false));
        assert_eq!(holding.step(true, hold, cooldown, 109), (holding, false));
        assert_eq!(holding.step(false, hold, cooldown, 109), (Phase::Idle { since: 109 }, false));
        assert_eq!(holding.step(true, hold, cooldown, 110), (Phase::Fired { at: 110 }, true));
        let fired = Phase::Fired { at: 110 };
        assert_eq!(fired.step(true, hold, cooldown, 1109), (fired, false));
        assert_eq!(fired.step(false, hold, cooldown, 500), (Phase::Cooldown { at: 110 }, false));
        let cooling = Phase::Cooldown { at: 110 };
        assert_eq!(cooling.step(true, hold, cooldown, 1109), (cooling, false));
        // Cooldown over: re-armed, and with the condition true it starts holding again.
        assert_eq!(cooling.step(true, hold, cooldown, 1110), (Phase::Holding { since: 1110 }, false));
        assert_eq!(fired.step(false, hold, cooldown, 1110), (Phase::Idle { since: 1110 }, false));
        // No hold time: idle to fired in one evaluation.
        assert_eq!(idle.step(true, 0, cooldown, 5), (Phase::Fired { at: 5 }, true));
        // No cooldown and no hold: fires at every evaluation that finds the condition true.
        assert_eq!(Phase::Fired { at: 5 }.step(true, 0, 0, 5), (Phase::Fired { at: 5 }, true));
    }

    #[test]
    fn config_validation_and_sanitizing() {
        assert_eq!(AnalyzerConfig::default().validate(), Ok(()));
        let bad = AnalyzerConfig { window: Duration::ZERO, ..AnalyzerConfig::default() };
        assert_eq!(bad.validate(), Err("window must be longer than 0".into()));
        let bad = AnalyzerConfig { ewma_alpha: 1.5, ..AnalyzerConfig::default() };
        assert_eq!(bad.validate(), Err("ewma_alpha must be in (0, 1], found 1.5".into()));
        let bad = AnalyzerConfig { max_keys: 0, ..AnalyzerConfig::default() };
        assert_eq!(bad.validate(), Err("max_keys must be at least 1".into()));
        let fixed = AnalyzerConfig {
            window: Duration::ZERO,
            max_samples_per_key: 0,
            ewma_alpha: f64::NAN,
            idle_eviction: Duration::ZERO,
            max_keys: 0,
            max_events: 0,
        }
        .sanitized();
        assert_eq!(fixed.window, Duration::from_millis(1));
        assert_eq!((fixed.max_samples_per_key, fixed.max_keys, fixed.max_events), (1, 1, 1));
        assert_eq!(fixed.ewma_alpha, 0.2);
        assert_eq!(fixed.validate(), Ok(()));
    }
}
