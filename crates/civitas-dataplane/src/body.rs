//! Streaming bodies: the request body going up and the response body coming back, each
//! counted and guarded by the idle timeout, never buffered.
//!
//! The response body carries the request's [`Recorder`]: the observation is sent when the
//! body ends, fails, times out or is dropped (the client went away) — exactly once.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use civitas_model::Observation;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use crate::BoxError;
use crate::metrics::ViewMetrics;
use crate::proxy::Shared;
use crate::revalidate::{Capture, CaptureState};

/// What the request body wrapper tells the rest of the request.
#[derive(Debug)]
pub(crate) struct UploadState {
    start: Instant,
    bytes: AtomicU64,
    /// Nanoseconds from `start` to the end of the body; `u64::MAX` while it streams.
    done_after: AtomicU64,
    failed: AtomicBool,
}

impl UploadState {
    pub(crate) fn new() -> UploadState {
        UploadState {
            start: Instant::now(),
            bytes: AtomicU64::new(0),
            done_after: AtomicU64::new(u64::MAX),
            failed: AtomicBool::new(false),
        }
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// When the whole body went up (or failed); `None` while it streams. The first-byte
    /// timeout counts from then.
    pub(crate) fn done_at(&self) -> Option<Instant> {
        match self.done_after.load(Ordering::Acquire) {
            u64::MAX => None,
            nanos => Some(self.start + Duration::from_nanos(nanos)),
        }
    }

    fn mark_done(&self) {
        let nanos = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX - 1);
        let _ = self.done_after.compare_exchange(u64::MAX, nanos, Ordering::AcqRel, Ordering::Acquire);
    }

    /// The client's body failed (error or idle timeout).
    pub(crate) fn client_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }
}

/// The timer is only re-armed when it fires early, so a fast stream costs one
/// `Instant::now()` per chunk and no timer operations.
fn idle_expired(mut idle: Pin<&mut Sleep>, last: Instant, timeout: Duration, cx: &mut Context<'_>) -> bool {
    loop {
        if idle.as_mut().poll(cx).is_pending() {
            return false;
        }
        let deadline = last + timeout;
        if Instant::now() >= deadline {
            return true;
        }
        idle.as_mut().reset(deadline);
    }
}

#[derive(Debug, thiserror::Error)]
#[error("no body data for {0:?} (idle timeout)")]
struct IdleTimeout(Duration);

pin_project_lite::pin_project! {
    /// The client's request body on its way to the upstream.
    pub(crate) struct RequestBody<B> {
        #[pin]
        inner: B,
        #[pin]
        idle: Sleep,
        idle_timeout: Duration,
        last: Instant,
        state: Arc<UploadState>,
    }
}

impl<B> RequestBody<B> {
    pub(crate) fn new(inner: B, idle_timeout: Duration, state: Arc<UploadState>) -> RequestBody<B> {
        let now = Instant::now();
        RequestBody { inner, idle: tokio::time::sleep_until(now + idle_timeout), idle_timeout, last: now, state }
    }
}

impl<B> Body for RequestBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.state.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                }
                *this.last = Instant::now();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.state.failed.store(true, Ordering::Release);
                this.state.mark_done();
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                this.state.mark_done();
                Poll::Ready(None)
            }
            Poll::Pending => {
                if idle_expired(this.idle, *this.last, *this.idle_timeout, cx) {
                    this.state.failed.store(true, Ordering::Release);
                    this.state.mark_done();
                    return Poll::Ready(Some(Err(Box::new(IdleTimeout(*this.idle_timeout)))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Sends a request's observation and counts its metrics, once.
pub(crate) struct Recorder {
    pending: Option<Pending>,
    bytes_out: u64,
}

struct Pending {
    shared: Arc<Shared>,
    view_metrics: Arc<ViewMetrics>,
    observation: Observation,
    arrival: Instant,
    upload: Option<Arc<UploadState>>,
}

impl Recorder {
    pub(crate) fn new(
        shared: Arc<Shared>,
        view_metrics: Arc<ViewMetrics>,
        observation: Observation,
        arrival: Instant,
        upload: Option<Arc<UploadState>>,
    ) -> Recorder {
        Recorder { pending: Some(Pending { shared, view_metrics, observation, arrival, upload }), bytes_out: 0 }
    }

    /// The response head (or an error answered instead) arrived after `elapsed`.
    pub(crate) fn head_received(&mut self, status: u16, elapsed: Duration) {
        if let Some(p) = &mut self.pending {
            p.observation.status = status;
            p.observation.time_to_first_byte = elapsed;
        }
    }

    /// Counts `n` bytes sent to the client that did not stream through a [`ResponseBody`]
    /// (an answer from the validation cache).
    pub(crate) fn add_bytes_out(&mut self, n: u64) {
        self.bytes_out += n;
    }

    /// Records now, with the bytes counted so far.
    pub(crate) fn finish(&mut self) {
        let Some(mut p) = self.pending.take() else { return };
        let total = p.arrival.elapsed();
        let bytes_in = p.upload.as_ref().map_or(0, |u| u.bytes());
        p.shared.metrics.record(&p.view_metrics, p.observation.status, total, bytes_in, self.bytes_out);
        p.observation.bytes_in = bytes_in;
        p.observation.bytes_out = self.bytes_out;
        p.observation.total_time = total;
        if p.observation.time_to_first_byte.is_zero() {
            // No response head ever came (the client went away first).
            p.observation.time_to_first_byte = total;
        }
        p.shared.observations.record(p.observation);
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Builds the observation of a request; `status`, times and byte counts are filled in later.
pub(crate) fn observation(
    time: SystemTime,
    unit: &Arc<civitas_model::Urn>,
    view: &Arc<civitas_model::Urn>,
    client_site: Option<Arc<civitas_model::Urn>>,
    client: std::net::IpAddr,
) -> Observation {
    Observation {
        time,
        unit: Arc::clone(unit),
        view: Arc::clone(view),
        variant: None,
        instance: None,
        client_site,
        client_addr: client,
        status: 0,
        bytes_in: 0,
        bytes_out: 0,
        time_to_first_byte: Duration::ZERO,
        total_time: Duration::ZERO,
    }
}

pin_project_lite::pin_project! {
    /// The upstream's response body on its way to the client.
    pub(crate) struct ResponseBody {
        #[pin]
        inner: Incoming,
        #[pin]
        idle: Sleep,
        idle_timeout: Duration,
        last: Instant,
        recorder: Recorder,
        done: bool,
        // A frame read before the response head was handed on (see `prefetch`).
        first: Option<Result<Frame<Bytes>, hyper::Error>>,
        // A copy for the validation cache, kept if the body ends cleanly.
        capture: Option<Capture>,
    }
}

impl ResponseBody {
    pub(crate) fn new(
        inner: Incoming,
        first: Option<Result<Frame<Bytes>, hyper::Error>>,
        idle_timeout: Duration,
        recorder: Recorder,
    ) -> ResponseBody {
        let now = Instant::now();
        ResponseBody {
            inner,
            idle: tokio::time::sleep_until(now + idle_timeout),
            idle_timeout,
            last: now,
            recorder,
            done: false,
            first,
            capture: None,
        }
    }

    /// The same body, copied into the validation cache as it streams.
    pub(crate) fn with_capture(mut self, capture: Option<Capture>) -> ResponseBody {
        self.capture = capture;
        self
    }
}

/// Reads the first body frame of a response whose length is declared, so that the server
/// can write the head and the first bytes in one go (one syscall, one packet for small
/// bodies) instead of flushing the head alone. Responses of unknown length (streams, server
/// events) are handed on at once: their head must not wait for data.
pub(crate) async fn prefetch(
    incoming: &mut Incoming,
    idle_timeout: Duration,
) -> Option<Result<Frame<Bytes>, hyper::Error>> {
    use http_body_util::BodyExt;
    if incoming.is_end_stream() || incoming.size_hint().exact().is_none() {
        return None;
    }
    // On timeout the body's own idle timer takes over.
    tokio::time::timeout(idle_timeout, incoming.frame()).await.ok().flatten()
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        let polled = match this.first.take() {
            Some(first) => Poll::Ready(Some(first)),
            None => this.inner.poll_frame(cx),
        };
        match polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.recorder.bytes_out += data.len() as u64;
                    // Stored as soon as the declared length arrived: the server stops polling
                    // a body that says it has ended, so its final `None` may never come.
                    match this.capture.as_mut().map(|c| c.push(data)) {
                        Some(CaptureState::Complete) => this.capture.take().into_iter().for_each(Capture::finish),
                        Some(CaptureState::Overflow) => *this.capture = None,
                        Some(CaptureState::Partial) | None => {}
                    }
                }
                *this.last = Instant::now();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                *this.done = true;
                *this.capture = None;
                this.recorder.finish();
                Poll::Ready(Some(Err(Box::new(e))))
            }
            Poll::Ready(None) => {
                *this.done = true;
                if let Some(c) = this.capture.take() {
                    c.finish();
                }
                this.recorder.finish();
                Poll::Ready(None)
            }
            Poll::Pending => {
                if !idle_expired(this.idle, *this.last, *this.idle_timeout, cx) {
                    return Poll::Pending;
                }
                *this.done = true;
                if let Some(p) = &this.recorder.pending {
                    p.shared.metrics.idle_timeouts.inc();
                    tracing::warn!(
                        view = %p.observation.view,
                        instance = ?p.observation.instance.as_deref().map(|i| i.as_str()),
                        idle_timeout_ms = this.idle_timeout.as_millis() as u64,
                        "upstream paused mid-body longer than the idle timeout; response aborted"
                    );
                }
                this.recorder.finish();
                Poll::Ready(Some(Err(Box::new(IdleTimeout(*this.idle_timeout)))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || (self.first.is_none() && self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        match &self.first {
            Some(Ok(frame)) => {
                let pending = frame.data_ref().map_or(0, |d| d.len() as u64);
                let rest = self.inner.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(rest.lower() + pending);
                if let Some(upper) = rest.upper() {
                    hint.set_upper(upper + pending);
                }
                hint
            }
            _ => self.inner.size_hint(),
        }
    }
}
