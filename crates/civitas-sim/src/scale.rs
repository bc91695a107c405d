//! Scale factors: how a scenario is shrunk so that it runs in minutes on one machine.
//!
//! A scaled run keeps the *shape* of the paper's results (which request types are slow,
//! which migrate, by how much they speed up) while dividing wall-clock time by `time` and
//! data sizes by `size`:
//!
//! - durations (latency, jitter, stalls, think times, phase lengths, server work, the
//!   response-time trigger, mobility's change period) are divided by `time`;
//! - entity counts and therefore body sizes are divided by `size`;
//! - bandwidth is multiplied by `time / size`, so that a scaled transfer takes the paper's
//!   transfer time divided by `time` (`(bytes / size) / (bandwidth · time / size)`).

use std::time::Duration;

use serde::Serialize;

use crate::error::{Result, SimError};

/// Divisors applied to time and size; `Scale::FULL` is the paper's setting.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Scale {
    /// Every duration is divided by this (≥ 1).
    pub time: f64,
    /// Every entity count and body size is divided by this (≥ 1).
    pub size: f64,
}

impl Scale {
    /// The paper's figures unchanged: five plus five minutes, full-size views.
    pub const FULL: Scale = Scale { time: 1.0, size: 1.0 };

    /// The default scaled run: time ÷ 5 (two one-minute phases), sizes ÷ 40
    /// (`/buildings` of one district ≈ 200 KB instead of 8 MB).
    pub const DEFAULT: Scale = Scale { time: 5.0, size: 40.0 };

    /// A scale with the given divisors, refused unless both are finite and at least 1.
    pub fn new(time: f64, size: f64) -> Result<Scale> {
        for (what, v) in [("scale.time", time), ("scale.size", size)] {
            if !v.is_finite() || v < 1.0 {
                return Err(SimError::Invalid { what: what.into(), reason: format!("{v} must be a number ≥ 1") });
            }
        }
        Ok(Scale { time, size })
    }

    /// A paper duration shrunk by `time`.
    pub fn duration(&self, paper: Duration) -> Duration {
        paper.div_f64(self.time)
    }

    /// A paper entity count shrunk by `size`, never below 1.
    pub fn count(&self, paper: u64) -> u64 {
        ((paper as f64 / self.size).round() as u64).max(1)
    }

    /// A paper bandwidth in bytes per second, multiplied by `time / size`.
    pub fn bandwidth(&self, paper_bytes_per_second: f64) -> f64 {
        paper_bytes_per_second * self.time / self.size
    }
}

impl Default for Scale {
    fn default() -> Scale {
        Scale::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfer_time_shrinks_by_the_time_factor() {
        let s = Scale::new(5.0, 40.0).unwrap();
        let (bytes, bandwidth) = (8_000_000.0, 12_500_000.0);
        let paper_seconds = bytes / bandwidth;
        let scaled_seconds = (bytes / s.size) / s.bandwidth(bandwidth);
        assert!((scaled_seconds - paper_seconds / 5.0).abs() < 1e-9);
        assert_eq!(s.duration(Duration::from_secs(300)), Duration::from_secs(60));
        assert_eq!(s.count(158_000), 3950);
    }

    #[test]
    fn refuses_factors_below_one() {
        assert!(Scale::new(0.5, 1.0).is_err());
        assert!(Scale::new(1.0, f64::NAN).is_err());
    }
}
