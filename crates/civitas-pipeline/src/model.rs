//! The `Pipeline` document: what a `.civ` file compiles to and what the catalog stores.
//!
//! Quantities are kept normalised (milliseconds, bytes, bytes per hour, events per second,
//! percent) so that the DSL and the JSON-LD form carry exactly the same information and
//! round-trip. Values that an environment supplies (`$region`) stay symbolic here and are
//! bound at plan time ([`crate::Environment`]).

use civitas_model::{Tier, Urn};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A graph of stages with their requirements, SLOs and adaptation policies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Pipeline {
    /// The pipeline's URN, e.g. `urn:pipeline:marketing:campaign`.
    #[serde(serialize_with = "ser_urn", deserialize_with = "de_urn")]
    pub name: Urn,
    /// Its version; plans are stored with it.
    pub version: String,
    /// What it is for, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Parameters an environment (dev, city A, city B) supplies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<Param>,
    /// The most the whole pipeline may cost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,
    /// Its stages, in the order written.
    pub stages: Vec<Stage>,
}

/// A parameter declared by a pipeline (`param region = "eu-central"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Param {
    /// Its name, used as `$name`.
    pub name: String,
    /// Its value when the environment gives none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

/// A spending limit (`budget 400 EUR per month`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Budget {
    /// The amount per `period`.
    pub amount: f64,
    /// ISO 4217 code; site prices are taken to be in the same currency.
    pub currency: String,
    /// The period the amount is for.
    pub period: BudgetPeriod,
}

impl Budget {
    /// The budget per 730-hour month, the unit the scheduler's price terms use.
    pub fn per_month(&self) -> f64 {
        match self.period {
            BudgetPeriod::Hour => self.amount * HOURS_PER_MONTH,
            BudgetPeriod::Day => self.amount * HOURS_PER_MONTH / 24.0,
            BudgetPeriod::Month => self.amount,
        }
    }
}

/// Hours in the month the scheduler prices in (365 × 24 / 12).
pub const HOURS_PER_MONTH: f64 = 730.0;

/// The period of a budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BudgetPeriod {
    /// Per hour.
    Hour,
    /// Per day.
    Day,
    /// Per month (730 hours).
    Month,
}

/// One component of a pipeline, placed on one site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Stage {
    /// Its name, unique in the pipeline.
    pub name: String,
    /// What it runs.
    pub run: Run,
    /// What it reads: other stages' outputs or views.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<Input>,
    /// What it produces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<Output>,
    /// When it runs besides on input.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<Trigger>,
    /// What it needs to run.
    #[serde(default, skip_serializing_if = "Resources::is_empty")]
    pub resources: Resources,
    /// Hard requirements: a site that fails one is never chosen.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requirements: Vec<Requirement>,
    /// Soft requirements, each with a weight.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preferences: Vec<Preference>,
    /// Service level objectives the running stage is held to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slos: Vec<Slo>,
    /// Adaptation rules (executed by the orchestrator, checked here).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<Policy>,
}

/// What a stage runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase", tag = "kind", deny_unknown_fields)]
pub enum Run {
    /// A stage built into Civitas (`run builtin "http-redirector"`).
    Builtin {
        /// The built-in's name.
        name: String,
    },
    /// A process (`run process "kpi" "--window" "1d"`).
    Process {
        /// Program and arguments.
        command: Vec<String>,
    },
    /// A container image (run by a later runtime).
    Image {
        /// The image reference.
        reference: String,
    },
    /// A WASM module (run by a later runtime).
    Wasm {
        /// The module's path or URL.
        module: String,
    },
}

/// One input of a stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Input {
    /// Where it comes from.
    pub from: InputSource,
    /// The type the stage expects, checked against the producer's.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub data_type: Option<DataType>,
    /// How much it reads, in bytes per hour (for views; a stage input carries its producer's volume).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_per_hour: Option<f64>,
}

/// The source of an input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase", tag = "kind", deny_unknown_fields)]
pub enum InputSource {
    /// Another stage's output.
    Stage {
        /// The producing stage.
        stage: String,
        /// Which output; may be left out when the stage has exactly one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        output: Option<String>,
    },
    /// An SDD view, by URN: the stage is a consumer of that view.
    View {
        /// The view's URN.
        #[serde(serialize_with = "ser_urn", deserialize_with = "de_urn")]
        view: Urn,
    },
}

/// An output of a stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Output {
    /// Its name, unique in the stage.
    pub name: String,
    /// What flows out.
    #[serde(rename = "type")]
    pub data_type: DataType,
    /// How much, in bytes per hour; the scheduler charges it on every edge it crosses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_per_hour: Option<f64>,
}

/// A data type: a shape (`stream`, `batch`, `table`, `file`) and an optional record name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataType {
    /// `stream`, `batch`, `table`, `file` or another word.
    pub shape: String,
    /// The record, e.g. `click` in `stream<click>`.
    pub record: Option<String>,
}

impl DataType {
    /// Parses `shape` or `shape<record>`.
    pub fn parse(s: &str) -> Result<DataType, String> {
        let s = s.trim();
        let (shape, record) = match s.split_once('<') {
            None => (s, None),
            Some((shape, rest)) => {
                let record = rest.strip_suffix('>').ok_or_else(|| format!("{s:?} lacks its closing `>`"))?;
                (shape, Some(record.trim().to_string()))
            }
        };
        let ok = |w: &str| !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !ok(shape) || record.as_deref().is_some_and(|r| !ok(r)) {
            return Err(format!("{s:?} is not a type such as `stream<click>`"));
        }
        Ok(DataType { shape: shape.to_string(), record })
    }
}

impl std::fmt::Display for DataType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.record {
            Some(r) => write!(f, "{}<{r}>", self.shape),
            None => f.write_str(&self.shape),
        }
    }
}

impl Serialize for DataType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DataType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        DataType::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// When a stage runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase", tag = "kind", deny_unknown_fields)]
pub enum Trigger {
    /// A cron expression with five fields (`0 */3 * * *`: eight times a day).
    Cron {
        /// The expression.
        expression: String,
    },
    /// A fixed interval.
    Every {
        /// The interval in milliseconds.
        interval_ms: u64,
    },
    /// A named event.
    OnEvent {
        /// The event's name.
        event: String,
    },
}

/// What a stage needs from its site.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resources {
    /// CPU cores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_cores: Option<f64>,
    /// Memory in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// GPUs; any number above zero needs a site with the `gpu` capability.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gpus: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Resources {
    /// Whether nothing is asked for.
    pub fn is_empty(&self) -> bool {
        self.cpu_cores.is_none() && self.memory_bytes.is_none() && self.gpus == 0
    }
}

/// A value written literally or taken from the environment (`$region`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// As written.
    Literal(String),
    /// A parameter's name (without the `$`).
    Param(String),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Literal(s) => f.write_str(s),
            Value::Param(p) => write!(f, "${p}"),
        }
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(match s.strip_prefix('$') {
            Some(p) => Value::Param(p.to_string()),
            None => Value::Literal(s),
        })
    }
}

/// Whether a data-residency requirement names a region or a jurisdiction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// A site's `region`.
    Region,
    /// A site's `jurisdiction`.
    Jurisdiction,
}

impl Scope {
    /// The scope's word in the DSL.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Region => "region",
            Scope::Jurisdiction => "jurisdiction",
        }
    }
}

/// A hard requirement of a stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase", tag = "kind", deny_unknown_fields)]
pub enum Requirement {
    /// The site's tier is one of these.
    Tier {
        /// Allowed tiers.
        #[serde(serialize_with = "ser_tiers", deserialize_with = "de_tiers")]
        tiers: Vec<Tier>,
    },
    /// The site's region (or jurisdiction) is this one.
    Within {
        /// Region or jurisdiction.
        scope: Scope,
        /// Which.
        value: Value,
    },
    /// The site offers every one of these capabilities.
    Capabilities {
        /// Lower-case capability names (`tee`, `gpu`).
        names: Vec<String>,
    },
    /// Network latency to the site of another stage is at most this.
    LatencyToStage {
        /// The other stage.
        stage: String,
        /// The bound in milliseconds.
        max_ms: f64,
    },
    /// Network latency to the nearest instance of a view is at most this.
    LatencyToView {
        /// The view.
        #[serde(serialize_with = "ser_urn", deserialize_with = "de_urn")]
        view: Urn,
        /// The bound in milliseconds.
        max_ms: f64,
    },
    /// This stage's data, and so every stage downstream of it, stays inside this region or jurisdiction.
    DataNeverLeaves {
        /// Region or jurisdiction.
        scope: Scope,
        /// Which.
        value: Value,
    },
}

/// A soft requirement and its weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Preference {
    /// What is preferred.
    pub prefer: Preferred,
    /// How much it counts (see [`crate::schedule::Weights`]).
    pub weight: f64,
}

/// What a preference asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase", tag = "kind", deny_unknown_fields)]
pub enum Preferred {
    /// A site of this tier.
    Tier {
        /// The tier.
        #[serde(serialize_with = "ser_tier", deserialize_with = "de_tier")]
        tier: Tier,
    },
    /// A site run by this provider.
    Provider {
        /// The provider.
        value: Value,
    },
    /// A site in this region.
    Region {
        /// The region.
        value: Value,
    },
    /// Cheaper sites.
    Cheaper,
    /// The same site as another stage.
    Near {
        /// The other stage.
        stage: String,
    },
}

/// How an SLO compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Comparison {
    /// `<`
    #[serde(rename = "<")]
    Less,
    /// `<=`
    #[serde(rename = "<=")]
    LessOrEqual,
    /// `>`
    #[serde(rename = ">")]
    Greater,
    /// `>=`
    #[serde(rename = ">=")]
    GreaterOrEqual,
}

impl Comparison {
    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            Comparison::Less => "<",
            Comparison::LessOrEqual => "<=",
            Comparison::Greater => ">",
            Comparison::GreaterOrEqual => ">=",
        }
    }

    /// Whether `a <op> b` holds.
    pub fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Comparison::Less => a < b,
            Comparison::LessOrEqual => a <= b,
            Comparison::Greater => a > b,
            Comparison::GreaterOrEqual => a >= b,
        }
    }
}

/// A service level objective.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Slo {
    /// What is measured: `latency.p99`, `throughput`, `availability` or `freshness`.
    pub metric: String,
    /// How it compares with the target.
    pub op: Comparison,
    /// The target in the metric's unit: ms, events per second, percent, ms.
    pub target: f64,
}

/// An adaptation rule: `when <condition> for <duration> then <action>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Policy {
    /// The metric watched (see [`crate::METRICS`]).
    pub metric: String,
    /// How it compares with the threshold.
    pub op: Comparison,
    /// The threshold in the metric's unit.
    pub threshold: f64,
    /// How long the condition must hold, in milliseconds.
    pub for_ms: u64,
    /// What to do then.
    pub action: Action,
    /// Fewest replicas (scaling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<u32>,
    /// Most replicas (scaling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
    /// Quiet time after the action, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown_ms: Option<u64>,
}

/// What an adaptation rule does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase", tag = "kind", deny_unknown_fields)]
pub enum Action {
    /// Add replicas.
    ScaleOut {
        /// How many at a time.
        by: u32,
    },
    /// Remove replicas.
    ScaleIn {
        /// How many at a time.
        by: u32,
    },
    /// Move the stage, optionally to another tier.
    Move {
        /// The tier to move to.
        #[serde(default, skip_serializing_if = "Option::is_none", serialize_with = "ser_opt_tier")]
        #[serde(deserialize_with = "de_opt_tier")]
        to: Option<Tier>,
    },
    /// Plan the whole pipeline again.
    Reschedule,
}

fn ser_urn<S: Serializer>(u: &Urn, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(u.as_str())
}

fn de_urn<'de, D: Deserializer<'de>>(d: D) -> Result<Urn, D::Error> {
    let s = String::deserialize(d)?;
    Urn::parse(&s).map_err(serde::de::Error::custom)
}

fn ser_tier<S: Serializer>(t: &Tier, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(t.as_str())
}

fn de_tier<'de, D: Deserializer<'de>>(d: D) -> Result<Tier, D::Error> {
    let s = String::deserialize(d)?;
    Tier::parse(&s).map_err(serde::de::Error::custom)
}

fn ser_opt_tier<S: Serializer>(t: &Option<Tier>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(t.as_str()),
        None => s.serialize_none(),
    }
}

fn de_opt_tier<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Tier>, D::Error> {
    let s = Option::<String>::deserialize(d)?;
    s.map(|s| Tier::parse(&s).map_err(serde::de::Error::custom)).transpose()
}

fn ser_tiers<S: Serializer>(t: &[Tier], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(t.iter().map(|t| t.as_str()))
}

fn de_tiers<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Tier>, D::Error> {
    let v = Vec::<String>::deserialize(d)?;
    v.iter().map(|s| Tier::parse(s).map_err(serde::de::Error::custom)).collect()
}
