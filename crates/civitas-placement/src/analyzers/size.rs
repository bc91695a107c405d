//! Size analyzer: how big a view's answers are, per view and client site.

use std::time::{Duration, SystemTime};

use civitas_model::Observation;

use super::window::SampleWindow;
use super::{Analyzer, Field, is_served};
use crate::{duration_ms, unix_ms};

/// Response body size (`bytes_out`) of served requests (status 200–399) over a sliding
/// window: mean and max, in bytes.
#[derive(Debug, Clone)]
pub struct SizeAnalyzer {
    window: SampleWindow<u64>,
}

impl SizeAnalyzer {
    /// An analyzer over a `window` holding at most `max_samples` samples.
    pub fn new(window: Duration, max_samples: usize) -> SizeAnalyzer {
        SizeAnalyzer { window: SampleWindow::new(duration_ms(window), max_samples) }
    }
}

impl Analyzer for SizeAnalyzer {
    fn name(&self) -> &'static str {
        "size"
    }

    fn observe(&mut self, obs: &Observation) {
        if is_served(obs.status) {
            self.window.insert(unix_ms(obs.time), obs.bytes_out, |_| ());
        }
    }

    fn fields(&self, now: SystemTime) -> Vec<(&'static str, f64)> {
        let (mut count, mut sum, mut max) = (0u64, 0u128, 0u64);
        for bytes in self.window.inside(unix_ms(now)) {
            count += 1;
            sum += u128::from(bytes);
            max = max.max(bytes);
        }
        if count == 0 {
            return Vec::new();
        }
        vec![(Field::SizeMean.name(), sum as f64 / count as f64), (Field::SizeMax.name(), max as f64)]
    }

    fn samples(&self) -> u64 {
        self.window.len() as u64
    }

    fn expire(&mut self, now: SystemTime) {
        self.window.expire(unix_ms(now), |_| ());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyzers::test_support::{at, field, obs};

    #[test]
    fn mean_and_max_on_a_known_sequence_and_expiry() {
        let mut a = SizeAnalyzer::new(Duration::from_secs(10), 4096);
        a.observe(&obs(0, 1, 4_000_000));
        a.observe(&obs(5_000, 1, 1000));
        a.observe(&obs(6_000, 1, 3000));
        let f = a.fields(at(6_000));
        assert_eq!(field(&f, "size.mean"), (4_000_000.0 + 4000.0) / 3.0);
        assert_eq!(field(&f, "size.max"), 4_000_000.0);
        // The big one leaves the window at 10 s.
        let f = a.fields(at(10_000));
        assert_eq!(field(&f, "size.mean"), 2000.0);
        assert_eq!(field(&f, "size.max"), 3000.0);
        a.expire(at(10_000));
        assert_eq!(a.samples(), 2);
        assert!(a.fields(at(16_000)).is_empty());
        assert_eq!(a.name(), "size");
    }

    #[test]
    fn error_bodies_are_not_view_sizes() {
        let mut a = SizeAnalyzer::new(Duration::from_secs(10), 4096);
        let mut problem = obs(0, 1, 300);
        problem.status = 502;
        a.observe(&problem);
        assert!(a.fields(at(0)).is_empty());
        a.observe(&obs(0, 1, 0));
        assert_eq!(field(&a.fields(at(0)), "size.max"), 0.0);
    }

    #[test]
    fn sample_cap_bounds_memory() {
        let mut a = SizeAnalyzer::new(Duration::from_secs(10), 2);
        for (i, bytes) in [9000, 10, 20].into_iter().enumerate() {
            a.observe(&obs(i as u64, 1, bytes));
        }
        assert_eq!(a.samples(), 2);
        assert_eq!(field(&a.fields(at(3)), "size.max"), 20.0);
    }
}
