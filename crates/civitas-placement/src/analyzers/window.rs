//! A sliding window of timestamped samples, bounded by age and by count.

use std::collections::VecDeque;

/// Samples `(unix_ms, value)` in time order. A sample at `t` is inside the window at
/// `now` while `t + window_ms > now`.
#[derive(Debug, Clone)]
pub(crate) struct SampleWindow<T> {
    samples: VecDeque<(u64, T)>,
    window_ms: u64,
    max_samples: usize,
}

impl<T: Copy> SampleWindow<T> {
    pub(crate) fn new(window_ms: u64, max_samples: usize) -> SampleWindow<T> {
        SampleWindow { samples: VecDeque::new(), window_ms: window_ms.max(1), max_samples: max_samples.max(1) }
    }

    /// Adds a sample in time order. Samples that fall out of the window relative to the
    /// newest one, or past `max_samples` (oldest first), are handed to `evicted`. Returns
    /// `false` (and keeps nothing) for a sample already too old to matter.
    pub(crate) fn insert(&mut self, at_ms: u64, value: T, mut evicted: impl FnMut(T)) -> bool {
        if let Some(&(newest, _)) = self.samples.back()
            && at_ms.saturating_add(self.window_ms) <= newest
        {
            return false;
        }
        // Observations arrive nearly in order: search from the back.
        let position = self.samples.iter().rposition(|(t, _)| *t <= at_ms).map_or(0, |i| i + 1);
        self.samples.insert(position, (at_ms, value));
        while self.samples.len() > self.max_samples {
            if let Some((_, old)) = self.samples.pop_front() {
                evicted(old);
            }
        }
        let newest = self.samples.back().map_or(at_ms, |(t, _)| *t);
        self.expire(newest, evicted);
        true
    }

    /// Drops the samples outside the window at `now_ms`, handing each to `evicted`.
    pub(crate) fn expire(&mut self, now_ms: u64, mut evicted: impl FnMut(T)) {
        while let Some(&(t, value)) = self.samples.front() {
            if t.saturating_add(self.window_ms) > now_ms {
                break;
            }
            self.samples.pop_front();
            evicted(value);
        }
        // A burst may have grown the buffer far beyond what the window now holds.
        if self.samples.capacity() > 64 && self.samples.len() < self.samples.capacity() / 4 {
            self.samples.shrink_to(self.samples.len() * 2);
        }
    }

    /// Whether every retained sample is inside the window at `now_ms`.
    pub(crate) fn all_inside(&self, now_ms: u64) -> bool {
        self.samples.front().is_none_or(|(t, _)| t.saturating_add(self.window_ms) > now_ms)
    }

    /// The values inside the window at `now_ms`, oldest first.
    pub(crate) fn inside(&self, now_ms: u64) -> impl Iterator<Item = T> + '_ {
        let first = self.samples.partition_point(|(t, _)| t.saturating_add(self.window_ms) <= now_ms);
        self.samples.range(first..).map(|(_, v)| *v)
    }

    pub(crate) fn len(&self) -> usize {
        self.samples.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_time_order_and_bounds() {
        let mut w = SampleWindow::new(1000, 3);
        let mut gone = Vec::new();
        assert!(w.insert(100, 1, |v| gone.push(v)));
        assert!(w.insert(50, 2, |v| gone.push(v)));
        assert!(w.insert(200, 3, |v| gone.push(v)));
        assert_eq!(w.inside(0).collect::<Vec<_>>(), vec![2, 1, 3]);
        // Over the count cap: the oldest (t=50) goes.
        assert!(w.insert(300, 4, |v| gone.push(v)));
        assert_eq!(gone, vec![2]);
        assert_eq!(w.inside(0).collect::<Vec<_>>(), vec![1, 3, 4]);
        // A sample a full window newer pushes out everything at or before t=1100 - 1000.
        assert!(w.insert(1100, 6, |v| gone.push(v)));
        assert_eq!(gone, vec![2, 1]);
        assert_eq!(w.inside(1100).collect::<Vec<_>>(), vec![3, 4, 6]);
        // Too old relative to the newest sample: refused.
        assert!(!w.insert(100, 5, |v| gone.push(v)));
        assert_eq!(w.len(), 3);
        assert!(!w.all_inside(1200));
        assert_eq!(w.inside(1200).collect::<Vec<_>>(), vec![4, 6]);
        w.expire(1300, |v| gone.push(v));
        assert_eq!(gone, vec![2, 1, 3, 4]);
        assert_eq!(w.len(), 1);
        assert!(w.all_inside(1300));
    }
}
