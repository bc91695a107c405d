//! The confidence interval of an activation (the paper's confidence elasticity).

use std::fmt;
use std::str::FromStr;

/// The range of confidence `[low, high]` (0 ≤ low ≤ high ≤ 1) within which the
/// migration manager may execute a migration plan on its own; a plan whose confidence
/// falls outside is escalated to a person. The analyzers do not use it: they pass it on
/// with every [`MigrationCandidate`](crate::MigrationCandidate).
///
/// Written `0.8..1.0`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ConfidenceInterval {
    /// Lowest confidence executed automatically.
    pub low: f64,
    /// Highest confidence executed automatically.
    pub high: f64,
}

impl ConfidenceInterval {
    /// Whether `confidence` lies inside the interval (bounds included).
    pub fn contains(&self, confidence: f64) -> bool {
        self.low <= confidence && confidence <= self.high
    }
}

impl FromStr for ConfidenceInterval {
    type Err = String;

    /// Parses `<low>..<high>`, such as `0.8..1.0`; spaces around the parts are allowed.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((low, high)) = s.split_once("..") else {
            return Err(format!("expected `<low>..<high>` such as 0.8..1.0, found {s:?}"));
        };
        let number = |part: &str| {
            let part = part.trim();
            // Plain decimals only: no `.5`, `1e-1`, `inf` or `NaN`.
            let digits = part.strip_prefix('-').unwrap_or(part);
            let plain = digits.starts_with(|c: char| c.is_ascii_digit())
                && digits.chars().all(|c| c.is_ascii_digit() || c == '.');
            plain.then(|| part.parse::<f64>().ok()).flatten().ok_or_else(|| {
                format!("{part:?} is not a number (in {s:?}, expected `<low>..<high>` such as 0.8..1.0)")
            })
        };
        let (low, high) = (number(low)?, number(high)?);
        if !(0.0..=1.0).contains(&low) || !(0.0..=1.0).contains(&high) || low > high {
            return Err(format!("confidence bounds must satisfy 0 <= low <= high <= 1, found {low}..{high}"));
        }
        Ok(ConfidenceInterval { low, high })
    }
}

impl fmt::Display for ConfidenceInterval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}..{:?}", self.low, self.high)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_intervals() {
        assert_eq!("0.8..1.0".parse(), Ok(ConfidenceInterval { low: 0.8, high: 1.0 }));
        assert_eq!(" 0 .. 1 ".parse(), Ok(ConfidenceInterval { low: 0.0, high: 1.0 }));
        assert_eq!("0.5..0.5".parse(), Ok(ConfidenceInterval { low: 0.5, high: 0.5 }));
        assert_eq!("1..1".parse::<ConfidenceInterval>().unwrap().to_string(), "1.0..1.0");
        assert_eq!("0.8..1".parse::<ConfidenceInterval>().unwrap().to_string(), "0.8..1.0");
    }

    #[test]
    fn rejects_bad_intervals() {
        let cases = [
            ("0.8", "expected `<low>..<high>` such as 0.8..1.0, found \"0.8\""),
            ("", "expected `<low>..<high>` such as 0.8..1.0, found \"\""),
            ("0.8-1.0", "expected `<low>..<high>` such as 0.8..1.0, found \"0.8-1.0\""),
            ("..1", "\"\" is not a number (in \"..1\", expected `<low>..<high>` such as 0.8..1.0)"),
            ("0.8..high", "\"high\" is not a number (in \"0.8..high\", expected `<low>..<high>` such as 0.8..1.0)"),
            ("0.8...1", "\".1\" is not a number (in \"0.8...1\", expected `<low>..<high>` such as 0.8..1.0)"),
            ("NaN..1", "\"NaN\" is not a number (in \"NaN..1\", expected `<low>..<high>` such as 0.8..1.0)"),
            ("0.9..0.8", "confidence bounds must satisfy 0 <= low <= high <= 1, found 0.9..0.8"),
            ("0.8..1.1", "confidence bounds must satisfy 0 <= low <= high <= 1, found 0.8..1.1"),
            ("-0.1..1", "confidence bounds must satisfy 0 <= low <= high <= 1, found -0.1..1"),
        ];
        for (text, message) in cases {
            assert_eq!(text.parse::<ConfidenceInterval>(), Err(message.to_string()), "{text:?}");
        }
    }

    #[test]
    fn contains_its_bounds() {
        let c = ConfidenceInterval { low: 0.8, high: 1.0 };
        assert!(c.contains(0.8) && c.contains(1.0) && c.contains(0.9));
        assert!(!c.contains(0.79));
    }
}
