//! Frequency analyzer: how often a view is asked for, per view and client site.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use civitas_model::Observation;

use super::{Analyzer, Field};
use crate::{duration_ms, unix_ms};

/// Buckets per window: the window's edge is one bucket (window / 60) coarse.
const BUCKETS: u64 = 60;

/// Requests per second over a sliding window, and the number of requests in it
/// (`samples`). Every request counts, whatever its status.
///
/// Requests are counted in buckets of window/60 (1 s for the default 60 s window), so
/// the count stays exact at any request rate in constant memory; a bucket leaves the
/// window when its start does, so a request may leave up to one bucket early. The rate
/// is the count divided by the whole window's length, also while the view is younger
/// than the window: a view is hot when it has been asked for steadily, not in a burst.
#[derive(Debug, Clone)]
pub struct FrequencyAnalyzer {
    /// `(bucket index, requests)`, in index order; index = unix_ms / bucket_ms.
    buckets: VecDeque<(u64, u64)>,
    window_ms: u64,
    bucket_ms: u64,
}

impl FrequencyAnalyzer {
    /// An analyzer over `window`.
    pub fn new(window: Duration) -> FrequencyAnalyzer {
        let window_ms = duration_ms(window).max(1);
        FrequencyAnalyzer { buckets: VecDeque::new(), window_ms, bucket_ms: (window_ms / BUCKETS).max(1) }
    }

    fn inside(&self, index: u64, now_ms: u64) -> bool {
        (index * self.bucket_ms).saturating_add(self.window_ms) > now_ms
    }

    /// Requests inside the window at `now`.
    pub fn count(&self, now: SystemTime) -> u64 {
        let now_ms = unix_ms(now);
        self.buckets.iter().filter(|(i, _)| self.inside(*i, now_ms)).map(|(_, n)| n).sum()
    }
}

impl Analyzer for FrequencyAnalyzer {
    fn name(&self) -> &'static str {
        "frequency"
    }

    fn observe(&mut self, obs: &Observation) {
        let index = unix_ms(obs.time) / self.bucket_ms;
        let newest = self.buckets.back().map_or(index, |(i, _)| *i).max(index);
        if !self.inside(index, newest * self.bucket_ms) {
            return; // already out of the window
        }
        match self.buckets.iter().rposition(|(i, _)| *i <= index) {
            Some(p) if self.buckets[p].0 == index => self.buckets[p].1 += 1,
            Some(p) => self.buckets.insert(p + 1, (index, 1)),
            None => self.buckets.push_front((index, 1)),
        }
        self.expire_ms(newest * self.bucket_ms);
    }

    fn fields(&self, now: SystemTime) -> Vec<(&'static str, f64)> {
        let count = self.count(now);
        vec![
            (Field::FrequencyRate.name(), count as f64 * 1000.0 / self.window_ms as f64),
            (Field::Samples.name(), count as f64),
        ]
    }

    fn samples(&self) -> u64 {
        self.buckets.iter().map(|(_, n)| n).sum()
    }

    fn expire(&mut self, now: SystemTime) {
        self.expire_ms(unix_ms(now));
    }
}

impl FrequencyAnalyzer {
    fn expire_ms(&mut self, now_ms: u64) {
        while let Some(&(index, _)) = self.buckets.front() {
            if self.inside(index, now_ms) {
                break;
            }
            self.buckets.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyzers::test_support::{at, field, obs};

    #[test]
    fn rate_over_the_window_and_expiry() {
        let mut a = FrequencyAnalyzer::new(Duration::from_secs(60));
        // 120 requests, two per second, during the first minute.
        for i in 0..120u64 {
            a.observe(&obs(i * 500, 1, 0));
        }
        let f = a.fields(at(59_999));
        assert_eq!(field(&f, "frequency.rate"), 2.0);
        assert_eq!(field(&f, "samples"), 120.0);
        // At 60 s the first second's bucket (two requests) has left.
        let f = a.fields(at(60_000));
        assert_eq!(field(&f, "samples"), 118.0);
        assert_eq!(field(&f, "frequency.rate"), 118.0 / 60.0);
        a.expire(at(60_000));
        assert_eq!(a.samples(), 118);
        // Nothing inside: the rate is a real 0, not missing.
        let f = a.fields(at(200_000));
        assert_eq!(field(&f, "frequency.rate"), 0.0);
        assert_eq!(field(&f, "samples"), 0.0);
        a.expire(at(200_000));
        assert_eq!(a.samples(), 0);
        assert_eq!(a.name(), "frequency");
    }

    #[test]
    fn failed_requests_count_and_memory_is_a_bucket_per_second() {
        let mut a = FrequencyAnalyzer::new(Duration::from_secs(60));
        for i in 0..10_000u64 {
            let mut o = obs(i * 30, 1, 0); // 300 s of traffic
            o.status = if i % 2 == 0 { 200 } else { 503 };
            a.observe(&o);
        }
        assert!(a.buckets.len() <= 61, "{} buckets", a.buckets.len());
        // The last 60 s hold 2000 requests (one every 30 ms), all counted.
        let f = a.fields(at(9_999 * 30));
        assert_eq!(field(&f, "samples"), 2000.0);
    }

    #[test]
    fn out_of_order_requests_land_in_their_bucket() {
        let mut a = FrequencyAnalyzer::new(Duration::from_secs(60));
        a.observe(&obs(5_000, 1, 0));
        a.observe(&obs(1_000, 1, 0));
        a.observe(&obs(5_100, 1, 0));
        a.observe(&obs(3_000, 1, 0));
        assert_eq!(
            a.buckets.iter().copied().map(|(i, n)| (i - a.buckets[0].0, n)).collect::<Vec<_>>(),
            vec![(0, 1), (2, 1), (4, 2)]
        );
        // Too old for the window of the newest request: ignored.
        a.observe(&obs(70_000, 1, 0));
        a.observe(&obs(2_000, 1, 0));
        assert_eq!(a.count(at(70_000)), 1);
    }
}
