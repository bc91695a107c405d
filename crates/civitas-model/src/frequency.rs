//! How often a view changes: the paper's `updateFrequency{period, times, fraction, updateTime}`.

use serde_json::{Map, Value, json};

use crate::reader::{Errors, ObjectReader};

const DAY_S: f64 = 86_400.0;
const YEAR_S: f64 = 365.25 * DAY_S;

/// The period over which `times` updates happen.
#[derive(Debug, Clone, PartialEq)]
pub enum Period {
    /// A named calendar period: `secondly`, `minutely`, `hourly`, `daily`, `weekly`,
    /// `monthly`, `quarterly` or `yearly`.
    Named(&'static str),
    /// An ISO 8601 duration such as `PT5S`, `P1D` or `P1W` (years and months use their mean length).
    Duration {
        /// The duration as written, upper-cased.
        text: String,
        /// Its length in seconds.
        seconds: f64,
    },
}

const NAMED: [(&str, f64); 8] = [
    ("secondly", 1.0),
    ("minutely", 60.0),
    ("hourly", 3600.0),
    ("daily", DAY_S),
    ("weekly", 7.0 * DAY_S),
    ("monthly", YEAR_S / 12.0),
    ("quarterly", YEAR_S / 4.0),
    ("yearly", YEAR_S),
];

impl Period {
    /// Parses a named period or an ISO 8601 duration.
    pub fn parse(s: &str) -> Result<Period, String> {
        let lower = s.trim().to_ascii_lowercase();
        if let Some((name, _)) = NAMED.iter().find(|(n, _)| *n == lower) {
            return Ok(Period::Named(name));
        }
        let upper = s.trim().to_ascii_uppercase();
        match parse_iso_duration(&upper) {
            Some(seconds) if seconds > 0.0 => Ok(Period::Duration { text: upper, seconds }),
            _ => Err(format!(
                "{s:?} is not a period: use secondly, minutely, hourly, daily, weekly, monthly, quarterly, yearly \
                 or an ISO 8601 duration such as PT5S"
            )),
        }
    }

    /// The period's length in seconds.
    pub fn seconds(&self) -> f64 {
        match self {
            Period::Named(n) => NAMED.iter().find(|(name, _)| name == n).map(|(_, s)| *s).unwrap_or(YEAR_S),
            Period::Duration { seconds, .. } => *seconds,
        }
    }

    /// The canonical text.
    pub fn as_str(&self) -> &str {
        match self {
            Period::Named(n) => n,
            Period::Duration { text, .. } => text,
        }
    }
}

/// `PnYnMnWnDTnHnMnS` with decimal numbers; `None` when malformed.
fn parse_iso_duration(s: &str) -> Option<f64> {
    let rest = s.strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) if !t.is_empty() => (d, Some(t)),
        Some(_) => return None,
        None => (rest, None),
    };
    let mut total = 0.0;
    let mut any = false;
    let mut take = |part: &str, units: &[(char, f64)]| -> Option<()> {
        let mut num = String::new();
        let mut unit_idx = 0;
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' {
                num.push(c);
            } else {
                let pos = units[unit_idx..].iter().position(|(u, _)| *u == c)? + unit_idx;
                let n: f64 = num.parse().ok()?;
                total += n * units[pos].1;
                any = true;
                num.clear();
                unit_idx = pos + 1;
            }
        }
        num.is_empty().then_some(())
    };
    take(date, &[('Y', YEAR_S), ('M', YEAR_S / 12.0), ('W', 7.0 * DAY_S), ('D', DAY_S)])?;
    if let Some(t) = time {
        take(t, &[('H', 3600.0), ('M', 60.0), ('S', 1.0)])?;
    }
    any.then_some(total)
}

/// How often a view is updated, how much of it changes and how long an update takes.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateFrequency {
    /// The period (`yearly`, `PT5S`…).
    pub period: Period,
    /// Updates per period (at least 1).
    pub times: u32,
    /// Share of the view an update changes, in percent (0–100).
    pub fraction_percent: Option<f64>,
    /// How long one update takes at the source, in seconds.
    pub update_time_seconds: Option<f64>,
}

impl UpdateFrequency {
    /// Mean number of updates per second.
    pub fn updates_per_second(&self) -> f64 {
        f64::from(self.times) / self.period.seconds()
    }

    pub(crate) fn decode(value: &Value, pointer: &str, errs: &mut Errors) -> Option<UpdateFrequency> {
        let mut r = ObjectReader::new(value, pointer, errs)?;
        let period =
            r.req_str("period", errs).and_then(|p| Period::parse(&p).map_err(|e| errs.push(&r.at("period"), e)).ok());
        let times = match r.opt_u64("times", errs) {
            None => Some(1),
            Some(0) => {
                errs.push(&r.at("times"), "must be at least 1");
                None
            }
            Some(t) if t > u64::from(u32::MAX) => {
                errs.push(&r.at("times"), "is too large");
                None
            }
            Some(t) => Some(t as u32),
        };
        let fraction = r.opt_number("fraction", errs);
        if fraction.is_some_and(|f| f > 100.0) {
            errs.push(&r.at("fraction"), "is a percentage and must be between 0 and 100");
        }
        let update_time = r.opt_number("updateTime", errs);
        r.deny_unknown(errs);
        Some(UpdateFrequency {
            period: period?,
            times: times?,
            fraction_percent: fraction.filter(|f| *f <= 100.0),
            update_time_seconds: update_time,
        })
    }

    pub(crate) fn encode(&self) -> Value {
        let mut m = Map::new();
        m.insert("period".into(), json!(self.period.as_str()));
        m.insert("times".into(), json!(self.times));
        if let Some(f) = self.fraction_percent {
            m.insert("fraction".into(), crate::codec::number(f));
        }
        if let Some(t) = self.update_time_seconds {
            m.insert("updateTime".into(), crate::codec::number(t));
        }
        Value::Object(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods() {
        assert_eq!(Period::parse("Yearly").unwrap(), Period::Named("yearly"));
        assert_eq!(Period::parse("PT5S").unwrap().seconds(), 5.0);
        assert_eq!(Period::parse("p1dt1h").unwrap().seconds(), 90_000.0);
        assert_eq!(Period::parse("P2W").unwrap().seconds(), 14.0 * DAY_S);
        for bad in ["", "P", "PT", "often", "P1S", "PT1D", "P1H", "PT0S", "P1M1Y"] {
            assert!(Period::parse(bad).is_err(), "{bad:?}");
        }
    }
}
