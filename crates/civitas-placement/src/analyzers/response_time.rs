//! Time analyzer: how long a view takes to arrive, per view and client site.

use std::time::{Duration, SystemTime};

use civitas_model::Observation;

use super::window::SampleWindow;
use super::{Analyzer, Field, is_served};
use crate::{duration_ms, unix_ms};

/// Response time of served requests (status 200–399) over a sliding window: mean, p50,
/// p95 and an EWMA, in milliseconds.
///
/// The response time is the observation's `total_time`: from the request's arrival at the
/// data plane to the end of the response body, so it includes the transfer and is what a
/// client of the view waits for. Samples are placed at the request's arrival time.
///
/// Percentiles are exact nearest-rank values over the window (always a value actually
/// observed): `p = sorted[ceil(p/100 · n) − 1]`. A sorted copy of the window is maintained
/// on insert and expiry, so reading them is O(1) and updating O(n) memory moves at worst.
/// The EWMA (`e = α·x + (1 − α)·e`, seeded with the oldest sample) runs over the samples in
/// the window, oldest first, so it forgets what left the window like the other fields do.
#[derive(Debug, Clone)]
pub struct ResponseTimeAnalyzer {
    /// Total time in microseconds, in arrival order.
    window: SampleWindow<u64>,
    /// The same values, sorted, for exact percentiles.
    sorted: Vec<u64>,
    /// Sum of `sorted`, for the mean.
    sum_us: u128,
    ewma_alpha: f64,
}

impl ResponseTimeAnalyzer {
    /// An analyzer over a `window` holding at most `max_samples` samples, with EWMA
    /// smoothing factor `ewma_alpha` (0 < α ≤ 1; out-of-range values become 0.2).
    pub fn new(window: Duration, max_samples: usize, ewma_alpha: f64) -> ResponseTimeAnalyzer {
        let ewma_alpha = if ewma_alpha > 0.0 && ewma_alpha <= 1.0 { ewma_alpha } else { 0.2 };
        ResponseTimeAnalyzer {
            window: SampleWindow::new(duration_ms(window), max_samples),
            sorted: Vec::new(),
            sum_us: 0,
            ewma_alpha,
        }
    }

    fn forget(sorted: &mut Vec<u64>, sum_us: &mut u128, value: u64) {
        if let Ok(i) = sorted.binary_search(&value) {
            sorted.remove(i);
            *sum_us -= u128::from(value);
        }
    }
}

/// The nearest-rank `percent` percentile of a non-empty sorted slice.
fn nearest_rank(sorted: &[u64], percent: usize) -> u64 {
    let rank = (percent * sorted.len()).div_ceil(100).max(1);
    sorted[rank - 1]
}

fn ms(us: f64) -> f64 {
    us / 1000.0
}

impl Analyzer for ResponseTimeAnalyzer {
    fn name(&self) -> &'static str {
        "response_time"
    }

    fn observe(&mut self, obs: &Observation) {
        if !is_served(obs.status) {
            return;
        }
        let micros = u64::try_from(obs.total_time.as_micros()).unwrap_or(u64::MAX);
        // Into the sorted copy first: the window may evict this very sample (when it is
        // the oldest and the window is full), and the eviction must find it there.
        let i = self.sorted.partition_point(|v| *v < micros);
        self.sorted.insert(i, micros);
        self.sum_us += u128::from(micros);
        let (sorted, sum_us) = (&mut self.sorted, &mut self.sum_us);
        if !self.window.insert(unix_ms(obs.time), micros, |old| Self::forget(sorted, sum_us, old)) {
            Self::forget(sorted, sum_us, micros);
        }
    }

    fn fields(&self, now: SystemTime) -> Vec<(&'static str, f64)> {
        let now_ms = unix_ms(now);
        let scratch;
        let (sorted, sum_us): (&[u64], u128) = if self.window.all_inside(now_ms) {
            (&self.sorted, self.sum_us)
        } else {
            // Not expired yet: compute over the samples still inside.
            let mut values: Vec<u64> = self.window.inside(now_ms).collect();
            values.sort_unstable();
            let sum = values.iter().map(|v| u128::from(*v)).sum();
            scratch = values;
            (&scratch, sum)
        };
        if sorted.is_empty() {
            return Vec::new();
        }
        let mut values = self.window.inside(now_ms);
        let mut ewma = values.next().unwrap_or_default() as f64;
        for x in values {
            ewma = self.ewma_alpha * x as f64 + (1.0 - self.ewma_alpha) * ewma;
        }
        vec![
            (Field::ResponseTimeMean.name(), ms(sum_us as f64 / sorted.len() as f64)),
            (Field::ResponseTimeP50.name(), ms(nearest_rank(sorted, 50) as f64)),
            (Field::ResponseTimeP95.name(), ms(nearest_rank(sorted, 95) as f64)),
            (Field::ResponseTimeEwma.name(), ms(ewma)),
        ]
    }

    fn samples(&self) -> u64 {
        self.window.len() as u64
    }

    fn expire(&mut self, now: SystemTime) {
        let (sorted, sum_us) = (&mut self.sorted, &mut self.sum_us);
        self.window.expire(unix_ms(now), |old| Self::forget(sorted, sum_us, old));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyzers::test_support::{at, field, obs};

    fn analyzer() -> ResponseTimeAnalyzer {
        ResponseTimeAnalyzer::new(Duration::from_secs(60), 4096, 0.5)
    }

    #[test]
    fn mean_percentiles_and_ewma_on_a_known_sequence() {
        let mut a = analyzer();
        // 1..=20 ms, one per second.
        for i in 1..=20u64 {
            a.observe(&obs(i * 1000, i, 0));
        }
        let f = a.fields(at(20_000));
        assert_eq!(field(&f, "response_time.mean"), 10.5);
        assert_eq!(field(&f, "response_time.p50"), 10.0); // rank ceil(0.5·20) = 10
        assert_eq!(field(&f, "response_time.p95"), 19.0); // rank ceil(0.95·20) = 19
        // α = 0.5 over 1..=20 seeded with 1: e_n = n − 1 + 2^−(n−1).
        assert!((field(&f, "response_time.ewma") - (19.0 + 0.5f64.powi(19))).abs() < 1e-9);
        assert_eq!(a.samples(), 20);
        assert_eq!(a.name(), "response_time");
    }

    #[test]
    fn out_of_order_arrivals_are_sorted_for_percentiles_and_the_ewma() {
        let mut a = analyzer();
        a.observe(&obs(3000, 30, 0));
        a.observe(&obs(1000, 10, 0));
        a.observe(&obs(2000, 20, 0));
        let f = a.fields(at(3000));
        assert_eq!(field(&f, "response_time.p50"), 20.0);
        assert_eq!(field(&f, "response_time.p95"), 30.0);
        // Time order 10, 20, 30: 10 → 15 → 22.5.
        assert_eq!(field(&f, "response_time.ewma"), 22.5);
    }

    #[test]
    fn sub_millisecond_times_keep_their_precision() {
        let mut a = analyzer();
        let mut o = obs(0, 0, 0);
        o.total_time = Duration::from_micros(250);
        a.observe(&o);
        assert_eq!(field(&a.fields(at(0)), "response_time.p50"), 0.25);
    }

    #[test]
    fn samples_leave_the_window_with_and_without_expire() {
        let mut a = analyzer();
        a.observe(&obs(0, 100, 0));
        a.observe(&obs(30_000, 10, 0));
        a.observe(&obs(50_000, 20, 0));
        assert_eq!(field(&a.fields(at(59_999)), "response_time.mean"), 130.0 / 3.0);
        // At 60 s the first sample is exactly one window old: gone, even before expire().
        let before = a.fields(at(60_000));
        assert_eq!(field(&before, "response_time.mean"), 15.0);
        assert_eq!(field(&before, "response_time.p95"), 20.0);
        assert_eq!(field(&before, "response_time.ewma"), 15.0);
        a.expire(at(60_000));
        assert_eq!(a.samples(), 2);
        assert_eq!(a.fields(at(60_000)), before);
        // Everything expired: no data, no fields.
        assert!(a.fields(at(110_000)).is_empty());
        a.expire(at(110_000));
        assert_eq!(a.samples(), 0);
        assert!(a.fields(at(110_000)).is_empty());
    }

    #[test]
    fn failed_and_refused_requests_do_not_count() {
        let mut a = analyzer();
        let mut failed = obs(0, 30_000, 0);
        failed.status = 504;
        a.observe(&failed);
        let mut refused = obs(0, 1, 0);
        refused.status = 403;
        a.observe(&refused);
        assert_eq!(a.samples(), 0);
        assert!(a.fields(at(0)).is_empty());
        a.observe(&obs(0, 7, 0));
        assert_eq!(field(&a.fields(at(0)), "response_time.mean"), 7.0);
    }

    #[test]
    fn a_late_sample_evicted_by_the_cap_leaves_no_trace() {
        let mut a = ResponseTimeAnalyzer::new(Duration::from_secs(60), 2, 0.2);
        a.observe(&obs(10, 1, 0));
        a.observe(&obs(20, 2, 0));
        // Older than both and the window is full: it is the one evicted.
        a.observe(&obs(5, 500, 0));
        assert_eq!(a.samples(), 2);
        let f = a.fields(at(20));
        assert_eq!(field(&f, "response_time.mean"), 1.5);
        assert_eq!(field(&f, "response_time.p95"), 2.0);
    }

    #[test]
    fn sample_cap_keeps_the_newest() {
        let mut a = ResponseTimeAnalyzer::new(Duration::from_secs(60), 3, 0.2);
        for (i, t) in [100, 1, 2, 3].into_iter().enumerate() {
            a.observe(&obs(i as u64, t, 0));
        }
        assert_eq!(a.samples(), 3);
        let f = a.fields(at(10));
        assert_eq!(field(&f, "response_time.mean"), 2.0);
        assert_eq!(field(&f, "response_time.p95"), 3.0);
    }
}
