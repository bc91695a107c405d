//! Per-view metrics with a bounded number of label sets.
//!
//! Every view that received traffic has its label sets in the families below; when a new
//! view needs room past `max_metric_views`, the least recently used view's label sets
//! are removed (`Family::remove`). The request path finds a view's metric handles in a
//! copy-on-write map loaded through `ArcSwap` — no lock; the mutex is only taken to add
//! or evict a view, or on the first request of a status class for a view.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use civitas_model::Urn;
use prometheus_client::encoding::{
    EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

/// Label value of requests that matched no view (refused forward requests, unknown units).
pub const UNROUTED_VIEW_LABEL: &str = "unrouted";

/// The `view` label: a view's full name, or [`UNROUTED_VIEW_LABEL`].
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub(crate) enum ViewLabel {
    View(Arc<Urn>),
    Unrouted,
}

impl EncodeLabelValue for ViewLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        match self {
            ViewLabel::View(v) => encoder.write_str(v.as_str()),
            ViewLabel::Unrouted => encoder.write_str(UNROUTED_VIEW_LABEL),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ViewLabels {
    view: ViewLabel,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabels {
    view: ViewLabel,
    class: &'static str,
}

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Upper bounds: 50 µs doubling to ~52 s, then +Inf.
const BUCKETS: usize = 21;
const FIRST_BUCKET_SECONDS: f64 = 0.000_05;

/// A lock-free latency histogram (prometheus-client's takes a lock per observation).
#[derive(Clone, Debug, Default)]
pub(crate) struct LatencyHistogram(Arc<HistogramInner>);

#[derive(Debug, Default)]
struct HistogramInner {
    /// Non-cumulative counts; the last is +Inf.
    counts: [AtomicU64; BUCKETS + 1],
    sum_nanos: AtomicU64,
}

impl LatencyHistogram {
    pub(crate) fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let mut bound = FIRST_BUCKET_SECONDS;
        let mut idx = 0;
        while idx < BUCKETS && secs > bound {
            bound *= 2.0;
            idx += 1;
        }
        self.0.counts[idx].fetch_add(1, Ordering::Relaxed);
        self.0.sum_nanos.fetch_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}

impl TypedMetric for LatencyHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for LatencyHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let mut buckets = [(0.0, 0u64); BUCKETS + 1];
        let mut bound = FIRST_BUCKET_SECONDS;
        let mut count = 0;
        for (i, b) in buckets.iter_mut().enumerate() {
            let c = self.0.counts[i].load(Ordering::Relaxed);
            count += c;
            *b = (if i == BUCKETS { f64::MAX } else { bound }, c);
            bound *= 2.0;
        }
        let sum = self.0.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// One view's metric handles, cached for the request path.
pub(crate) struct ViewMetrics {
    label: ViewLabel,
    requests: [OnceLock<Counter>; 5],
    duration: LatencyHistogram,
    bytes_in: Counter,
    bytes_out: Counter,
    /// Nanoseconds since the metrics were created, at the last use.
    last_used: AtomicU64,
    evicted: AtomicBool,
    /// Moving average of the answered requests' total time, nanoseconds (0: none yet);
    /// what a read of the view costs now (see `hold.rs`). Updated without a lock: two
    /// requests ending at once may lose one's contribution, which an average can afford.
    recent_nanos: AtomicU64,
}

impl ViewMetrics {
    /// Weight of the newest request in the moving average.
    const RECENT_WEIGHT: f64 = 0.2;

    /// How long the view's answered requests have recently taken; `None` before the first.
    pub(crate) fn recent(&self) -> Option<Duration> {
        match self.recent_nanos.load(Ordering::Relaxed) {
            0 => None,
            n => Some(Duration::from_nanos(n)),
        }
    }

    fn observe_recent(&self, total: Duration) {
        let new = total.as_nanos().clamp(1, u128::from(u64::MAX)) as f64;
        let old = self.recent_nanos.load(Ordering::Relaxed);
        let next = if old == 0 { new } else { old as f64 + Self::RECENT_WEIGHT * (new - old as f64) };
        self.recent_nanos.store((next as u64).max(1), Ordering::Relaxed);
    }
}

/// Every metric of one data plane.
pub(crate) struct PlaneMetrics {
    requests: Family<ClassLabels, Counter>,
    duration: Family<ViewLabels, LatencyHistogram>,
    bytes_in: Family<ViewLabels, Counter>,
    bytes_out: Family<ViewLabels, Counter>,
    pub idle_timeouts: Counter,
    pub retries: Counter,
    /// Reads held for a view's copy to this node; those the replica then served.
    pub holds: Counter,
    pub holds_served_by_replica: Counter,
    pub evictions: Counter,
    views: ArcSwap<HashMap<Arc<Urn>, Arc<ViewMetrics>>>,
    /// Serializes additions and evictions.
    slow: Mutex<()>,
    max_views: usize,
    unrouted: Arc<ViewMetrics>,
    epoch: Instant,
}

impl PlaneMetrics {
    pub(crate) fn new(max_views: usize) -> PlaneMetrics {
        let requests = Family::<ClassLabels, Counter>::default();
        let duration = Family::<ViewLabels, LatencyHistogram>::default();
        let bytes_in = Family::<ViewLabels, Counter>::default();
        let bytes_out = Family::<ViewLabels, Counter>::default();
        let unrouted = Arc::new(Self::view_metrics(ViewLabel::Unrouted, &duration, &bytes_in, &bytes_out));
        PlaneMetrics {
            requests,
            duration,
            bytes_in,
            bytes_out,
            idle_timeouts: Counter::default(),
            retries: Counter::default(),
            holds: Counter::default(),
            holds_served_by_replica: Counter::default(),
            evictions: Counter::default(),
            views: ArcSwap::from_pointee(HashMap::new()),
            slow: Mutex::new(()),
            max_views: max_views.max(1),
            unrouted,
            epoch: Instant::now(),
        }
    }

    fn view_metrics(
        label: ViewLabel,
        duration: &Family<ViewLabels, LatencyHistogram>,
        bytes_in: &Family<ViewLabels, Counter>,
        bytes_out: &Family<ViewLabels, Counter>,
    ) -> ViewMetrics {
        let labels = ViewLabels { view: label.clone() };
        ViewMetrics {
            requests: Default::default(),
            duration: duration.get_or_create(&labels).clone(),
            bytes_in: bytes_in.get_or_create(&labels).clone(),
            bytes_out: bytes_out.get_or_create(&labels).clone(),
            label,
            last_used: AtomicU64::new(0),
            evicted: AtomicBool::new(false),
            recent_nanos: AtomicU64::new(0),
        }
    }

    fn stamp(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Metrics of requests that matched no view.
    pub(crate) fn unrouted(&self) -> &Arc<ViewMetrics> {
        &self.unrouted
    }

    /// The metric handles of `view`, creating its label sets (and evicting the least
    /// recently used view) when needed. `now` marks it used.
    pub(crate) fn view(&self, view: &Arc<Urn>, now: Instant) -> Arc<ViewMetrics> {
        let stamp = self.stamp(now);
        if let Some(m) = self.views.load().get(view)
            && !m.evicted.load(Ordering::Relaxed)
        {
            m.last_used.store(stamp, Ordering::Relaxed);
            return Arc::clone(m);
        }
        let _guard = self.slow.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.views.load_full();
        if let Some(m) = current.get(view) {
            m.last_used.store(stamp, Ordering::Relaxed);
            return Arc::clone(m);
        }
        let mut map = (*current).clone();
        while map.len() >= self.max_views {
            let Some(victim) =
                map.iter().min_by_key(|(_, m)| m.last_used.load(Ordering::Relaxed)).map(|(k, _)| Arc::clone(k))
            else {
                break;
            };
            if let Some(m) = map.remove(&victim) {
                self.evict(&m);
            }
        }
        let m = Arc::new(Self::view_metrics(
            ViewLabel::View(Arc::clone(view)),
            &self.duration,
            &self.bytes_in,
            &self.bytes_out,
        ));
        m.last_used.store(stamp, Ordering::Relaxed);
        map.insert(Arc::clone(view), Arc::clone(&m));
        self.views.store(Arc::new(map));
        m
    }

    /// Removes a view's label sets. Called with `slow` held.
    fn evict(&self, m: &ViewMetrics) {
        m.evicted.store(true, Ordering::Relaxed);
        let labels = ViewLabels { view: m.label.clone() };
        self.duration.remove(&labels);
        self.bytes_in.remove(&labels);
        self.bytes_out.remove(&labels);
        for (i, class) in CLASSES.iter().enumerate() {
            if m.requests[i].get().is_some() {
                self.requests.remove(&ClassLabels { view: m.label.clone(), class });
            }
        }
        self.evictions.inc();
        tracing::debug!(view = ?m.label, "metric label sets evicted");
    }

    /// Counts one finished request of a view.
    pub(crate) fn record(&self, m: &ViewMetrics, status: u16, total: Duration, bytes_in: u64, bytes_out: u64) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        let counter = match m.requests[class].get() {
            Some(c) => c,
            None => {
                let _guard = self.slow.lock().unwrap_or_else(|p| p.into_inner());
                if m.evicted.load(Ordering::Relaxed) {
                    // Its label sets are gone; re-adding one here would escape eviction.
                    return;
                }
                m.requests[class].get_or_init(|| {
                    self.requests.get_or_create(&ClassLabels { view: m.label.clone(), class: CLASSES[class] }).clone()
                })
            }
        };
        counter.inc();
        m.duration.observe(total);
        if class == 1 || class == 2 {
            m.observe_recent(total);
        }
        if bytes_in > 0 {
            m.bytes_in.inc_by(bytes_in);
        }
        if bytes_out > 0 {
            m.bytes_out.inc_by(bytes_out);
        }
    }

    /// Views that currently have label sets (the unrouted label set not included).
    pub(crate) fn view_count(&self) -> usize {
        self.views.load().len()
    }

    pub(crate) fn register(&self, registry: &mut Registry) {
        registry.register(
            "requests",
            "Proxied requests by view and status class (view=\"unrouted\": matched no view)",
            self.requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from request arrival to the end of the response body, by view",
            self.duration.clone(),
        );
        registry.register("request_bytes", "Request body bytes received from clients, by view", self.bytes_in.clone());
        registry.register("response_bytes", "Response body bytes sent to clients, by view", self.bytes_out.clone());
        registry.register(
            "body_idle_timeouts",
            "Response bodies aborted because the upstream paused longer than the idle timeout",
            self.idle_timeouts.clone(),
        );
        registry.register(
            "upstream_retries",
            "GET/HEAD requests retried once because a pooled upstream connection was dead",
            self.retries.clone(),
        );
        registry.register(
            "copy_holds",
            "Reads held while their view was being copied to this node (see hold.rs)",
            self.holds.clone(),
        );
        registry.register(
            "copy_holds_served_by_replica",
            "Held reads that the new replica served (the others went to the origin)",
            self.holds_served_by_replica.clone(),
        );
        registry.register(
            "metric_view_evictions",
            "Views whose metric label sets were evicted to stay within max_metric_views",
            self.evictions.clone(),
        );
    }
}
