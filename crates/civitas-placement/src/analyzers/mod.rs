//! The Analyzer strategies: what the manager computes per view and client site.
//!
//! Each strategy is a file here implementing [`Analyzer`]; the fields they produce are
//! the closed set [`Field`], which triggers and cost functions name.
//!
//! Which observations count (decided once, here, for all strategies):
//! - **frequency** counts every request, whatever its status: demand is demand, and a view
//!   failing under load is still a view in demand;
//! - **response time** and **size** learn only from answers with status 200–399: a 5xx
//!   (origin down, timeout) or a 4xx (refused, not found) says nothing about how long the
//!   view's data takes to arrive or how big it is, and would drag the figures either way.

mod cost_function;
mod frequency;
mod response_time;
mod size;
mod window;

use std::fmt;
use std::time::SystemTime;

use civitas_model::Observation;

pub use cost_function::{COST_FIELD, CostFunction, CostFunctionAnalyzer};
pub use frequency::FrequencyAnalyzer;
pub use response_time::ResponseTimeAnalyzer;
pub use size::SizeAnalyzer;

pub(crate) use cost_function::parse_cost_expression;

/// A pluggable analyzer strategy, fed one observation at a time for one view and client
/// site.
///
/// Implementations keep bounded state and compute their fields on demand; they never
/// read the clock (time comes from [`Observation::time`] and the `now` arguments).
pub trait Analyzer: Send + Sync {
    /// The strategy's name (`response_time`, `size`, `frequency`, `cost_function`).
    fn name(&self) -> &'static str;
    /// Learns from one request.
    fn observe(&mut self, obs: &Observation);
    /// The strategy's fields at `now` (names as in [`Field::name`]), computed over the
    /// samples still inside the window at `now`. A field without data (no sample in the
    /// window) is left out rather than reported as 0.
    fn fields(&self, now: SystemTime) -> Vec<(&'static str, f64)>;
    /// How many samples the strategy currently holds (after the last
    /// [`observe`](Analyzer::observe) or [`expire`](Analyzer::expire)).
    fn samples(&self) -> u64;
    /// Drops the samples that left the window at `now`, releasing their memory.
    /// [`fields`](Analyzer::fields) is correct without it; this only frees memory and
    /// makes [`fields`](Analyzer::fields) cheaper.
    fn expire(&mut self, _now: SystemTime) {}
}

/// Whether an answer teaches the response-time and size analyzers anything (2xx, 3xx).
pub(crate) fn is_served(status: u16) -> bool {
    (200..400).contains(&status)
}

/// What a field measures, which decides the units a trigger may write its threshold in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldKind {
    /// A duration in milliseconds (units `ms`, `s`, `m`, `h`; plain numbers are ms).
    Time,
    /// A size in bytes (units `B`, `KB`, `KiB`, `MB`, `MiB`, `GB`, `GiB`; plain numbers are bytes).
    Size,
    /// Requests per second (plain number).
    Rate,
    /// A count (plain number).
    Count,
}

/// One number an analyzer produces, as triggers and cost functions name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    /// `response_time.mean` (alias `mean_ms`): mean total time over the window, ms.
    ResponseTimeMean,
    /// `response_time.p50` (alias `p50_ms`): median total time (nearest rank), ms.
    ResponseTimeP50,
    /// `response_time.p95` (alias `p95_ms`): 95th percentile total time (nearest rank), ms.
    ResponseTimeP95,
    /// `response_time.ewma` (alias `ewma_ms`): exponentially weighted moving average of
    /// the total time over the window's samples, oldest first, ms.
    ResponseTimeEwma,
    /// `size.mean` (alias `mean_bytes`): mean response body size, bytes.
    SizeMean,
    /// `size.max` (alias `max_bytes`): largest response body size, bytes.
    SizeMax,
    /// `frequency.rate` (alias `rate_per_s`): requests in the window divided by the
    /// window's length, requests per second.
    FrequencyRate,
    /// `samples` (alias `samples`): requests in the window, of any status.
    Samples,
}

impl Field {
    /// Every field, in the order they are listed to users.
    pub const ALL: [Field; 8] = [
        Field::ResponseTimeMean,
        Field::ResponseTimeP50,
        Field::ResponseTimeP95,
        Field::ResponseTimeEwma,
        Field::SizeMean,
        Field::SizeMax,
        Field::FrequencyRate,
        Field::Samples,
    ];

    /// The full name used in triggers and analyses (`response_time.p50`).
    pub fn name(self) -> &'static str {
        match self {
            Field::ResponseTimeMean => "response_time.mean",
            Field::ResponseTimeP50 => "response_time.p50",
            Field::ResponseTimeP95 => "response_time.p95",
            Field::ResponseTimeEwma => "response_time.ewma",
            Field::SizeMean => "size.mean",
            Field::SizeMax => "size.max",
            Field::FrequencyRate => "frequency.rate",
            Field::Samples => "samples",
        }
    }

    /// The short alias with its unit, for cost functions (`p50_ms`).
    pub fn alias(self) -> &'static str {
        match self {
            Field::ResponseTimeMean => "mean_ms",
            Field::ResponseTimeP50 => "p50_ms",
            Field::ResponseTimeP95 => "p95_ms",
            Field::ResponseTimeEwma => "ewma_ms",
            Field::SizeMean => "mean_bytes",
            Field::SizeMax => "max_bytes",
            Field::FrequencyRate => "rate_per_s",
            Field::Samples => "samples",
        }
    }

    /// What the field measures.
    pub fn kind(self) -> FieldKind {
        match self {
            Field::ResponseTimeMean | Field::ResponseTimeP50 | Field::ResponseTimeP95 | Field::ResponseTimeEwma => {
                FieldKind::Time
            }
            Field::SizeMean | Field::SizeMax => FieldKind::Size,
            Field::FrequencyRate => FieldKind::Rate,
            Field::Samples => FieldKind::Count,
        }
    }

    /// The field with this full name.
    pub fn from_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The field with this alias or full name.
    pub fn from_alias_or_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.alias() == name || f.name() == name)
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The value of every field for one view and client site at one instant; `None` where
/// there is no data (no served request in the window).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FieldValues([Option<f64>; 8]);

impl FieldValues {
    /// The value of `field`, if there is data for it.
    pub fn get(&self, field: Field) -> Option<f64> {
        self.0[field.index()]
    }

    /// Sets the value of `field`.
    pub fn set(&mut self, field: Field, value: f64) {
        self.0[field.index()] = Some(value);
    }

    /// Collects `(name, value)` pairs as [`Analyzer::fields`] returns them; unknown names
    /// are ignored.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = &'a (&'static str, f64)>) -> FieldValues {
        let mut values = FieldValues::default();
        for (name, value) in pairs {
            if let Some(field) = Field::from_name(name) {
                values.set(field, *value);
            }
        }
        values
    }

    /// The fields that have a value, in [`Field::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (Field, f64)> + '_ {
        Field::ALL.into_iter().filter_map(|f| self.get(f).map(|v| (f, v)))
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use std::net::{IpAddr, Ipv4Addr};
    use std::sync::Arc;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use civitas_model::{Observation, Urn};

    /// `t0 + ms`, with t0 a fixed instant.
    pub fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000) + Duration::from_millis(ms)
    }

    /// A 200 observation at `at(ms)` taking `total_ms` and sending `bytes_out`.
    pub fn obs(ms: u64, total_ms: u64, bytes_out: u64) -> Observation {
        Observation {
            time: at(ms),
            unit: Arc::new(Urn::parse("urn:city:mobility").unwrap()),
            view: Arc::new(Urn::parse("urn:city:mobility:stops").unwrap()),
            variant: None,
            instance: None,
            client_site: None,
            client_addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
            status: 200,
            bytes_in: 0,
            bytes_out,
            time_to_first_byte: Duration::from_millis(total_ms),
            total_time: Duration::from_millis(total_ms),
        }
    }

    /// The value of `name` in `fields`, panicking when absent.
    pub fn field(fields: &[(&'static str, f64)], name: &str) -> f64 {
        fields.iter().find(|(n, _)| *n == name).map(|(_, v)| *v).unwrap_or_else(|| panic!("no {name} in {fields:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases_round_trip() {
        for field in Field::ALL {
            assert_eq!(Field::from_name(field.name()), Some(field));
            assert_eq!(Field::from_alias_or_name(field.alias()), Some(field));
            assert_eq!(Field::from_alias_or_name(field.name()), Some(field));
        }
        assert_eq!(Field::from_name("p50_ms"), None);
        assert_eq!(Field::from_name("response_time"), None);
    }

    #[test]
    fn field_values_from_pairs_ignores_unknown_names() {
        let values = FieldValues::from_pairs(&[("size.max", 3.0), ("nonsense", 1.0)]);
        assert_eq!(values.get(Field::SizeMax), Some(3.0));
        assert_eq!(values.iter().collect::<Vec<_>>(), vec![(Field::SizeMax, 3.0)]);
    }

    #[test]
    fn served_statuses() {
        assert!(is_served(200) && is_served(304) && is_served(399));
        assert!(!is_served(199) && !is_served(404) && !is_served(502));
    }
}
