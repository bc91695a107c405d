//! Timestamps as the paper writes them (`2017-01-07 13:04:03 +0100`) or as RFC 3339.

use chrono::{DateTime, FixedOffset};

/// A point in time with the offset it was given in; written as RFC 3339.
pub type Timestamp = DateTime<FixedOffset>;

/// Parses RFC 3339 (`2017-01-07T13:04:03+01:00`) or the paper's
/// `2017-01-07 13:04:03 +0100` (surrounding spaces ignored).
pub fn parse_timestamp(s: &str) -> Result<Timestamp, String> {
    let s = s.trim();
    DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S %z"))
        .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f %z"))
        .map_err(|_| {
            format!("{s:?} is not a timestamp: use RFC 3339 (2017-01-07T13:04:03+01:00) or 2017-01-07 13:04:03 +0100")
        })
}

/// Writes a timestamp in canonical RFC 3339 form, in UTC: equal instants give equal text.
pub fn format_timestamp(t: &Timestamp) -> String {
    t.with_timezone(&chrono::Utc).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_forms_to_the_same_instant() {
        let a = parse_timestamp(" 2017-01-07 13:04:03 +0100 ").unwrap();
        let b = parse_timestamp("2017-01-07T13:04:03+01:00").unwrap();
        assert_eq!(a, b);
        assert_eq!(format_timestamp(&a), "2017-01-07T12:04:03Z");
        assert!(parse_timestamp("yesterday").is_err());
    }
}
