//! WAN emulation in userspace: a TCP relay that makes a loopback hop behave like a long-haul link.
//!
//! Kernel `netem` is not available on the machines Civitas is developed on, so every
//! emulated link is a [`Relay`]: it listens on a local address and forwards each accepted
//! connection to a target address. Each direction of a connection has its own pipeline:
//!
//! ```text
//! read chunk ─▶ link's token bucket (bandwidth) ─▶ link's stall clock ─▶ stamp due = now + latency ± jitter
//!           ─▶ bounded timed queue ─▶ writer sleeps until due ─▶ write, count bytes
//! ```
//!
//! Because chunks are stamped and queued rather than held one at a time, many chunks are
//! "in flight" at once: throughput is limited by the bandwidth cap, never by one chunk per
//! round trip. Due times never decrease, so jitter cannot reorder bytes. A new connection
//! can also pay one emulated round trip before its first byte (TCP's handshake), so a fresh
//! HTTP request costs two round trips and a request on a kept-alive connection one.
//!
//! A [`WanLink`] is one path between two sites: every relay started on it (one per remote
//! service, say) shares its bandwidth (one token bucket per direction, first come first
//! served), its stalls and its byte totals. [`Relay::start`] is a relay on a link of its own.
//!
//! Not modelled: packet loss and retransmission, TCP slow start and window limits.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use civitas_model::SiteLink;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::error::{Result, SimError};
use crate::scale::Scale;

/// Largest chunk read at once; smaller when the burst is smaller, so the bucket stays smooth.
const MAX_CHUNK_BYTES: usize = 16 * 1024;

/// Chunks queued per direction of a connection. When full, the reader waits, which makes
/// the sender's TCP window close: back-pressure, not unbounded buffering (≤ 16 MiB).
const QUEUE_CHUNKS: usize = 1024;

/// What happens to bytes in one direction of a link.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DirectionProfile {
    /// One-way delay added to every chunk.
    pub latency: Duration,
    /// Bound of the uniform jitter: each chunk's delay is `latency ± jitter` (never below
    /// zero, never earlier than the previous chunk).
    pub jitter: Duration,
    /// Bandwidth cap in bytes per second; `None` is unlimited.
    pub bandwidth_bytes_per_second: Option<f64>,
    /// Token bucket depth in bytes: how much may leave at once after an idle period.
    pub burst_bytes: u64,
    /// Occasional stalls: the direction stops carrying bytes for a while.
    pub stalls: Option<Stalls>,
}

/// Stalls arrive as a Poisson process (exponential gaps with the given mean).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stalls {
    /// Mean time between the start of two stalls.
    pub mean_interval: Duration,
    /// How long each stall lasts.
    pub duration: Duration,
}

/// A link's emulated behaviour, both directions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LinkProfile {
    /// Client → target (requests).
    pub upstream: DirectionProfile,
    /// Target → client (responses).
    pub downstream: DirectionProfile,
    /// Probability that an accepted connection is dropped (closed before any byte is relayed).
    pub drop_probability: f64,
    /// Whether a new connection waits one emulated round trip before its first byte is relayed.
    pub emulate_handshake: bool,
    /// Seed of the relay's random draws (jitter, stalls, drops): same seed, same draws.
    pub seed: u64,
}

impl DirectionProfile {
    /// A direction that only delays bytes.
    pub fn latency(latency: Duration) -> DirectionProfile {
        DirectionProfile {
            latency,
            jitter: Duration::ZERO,
            bandwidth_bytes_per_second: None,
            burst_bytes: 0,
            stalls: None,
        }
    }

    fn validate(&self, which: &str) -> Result<()> {
        if let Some(b) = self.bandwidth_bytes_per_second {
            if !b.is_finite() || b <= 0.0 {
                return Err(invalid(format!("{which}.bandwidth_bytes_per_second"), format!("{b} must be > 0")));
            }
            if self.burst_bytes == 0 {
                return Err(invalid(format!("{which}.burst_bytes"), "must be > 0 with a bandwidth cap".into()));
            }
        }
        if let Some(s) = self.stalls
            && s.mean_interval.is_zero()
        {
            return Err(invalid(format!("{which}.stalls.mean_interval"), "must be > 0".into()));
        }
        Ok(())
    }

    fn chunk_bytes(&self) -> usize {
        match self.bandwidth_bytes_per_second {
            Some(_) => (self.burst_bytes as usize).clamp(1, MAX_CHUNK_BYTES),
            None => MAX_CHUNK_BYTES,
        }
    }
}

impl LinkProfile {
    /// The same latency both ways, nothing else: handy in tests.
    pub fn symmetric_latency(one_way: Duration) -> LinkProfile {
        LinkProfile {
            upstream: DirectionProfile::latency(one_way),
            downstream: DirectionProfile::latency(one_way),
            drop_probability: 0.0,
            emulate_handshake: false,
            seed: 0,
        }
    }

    /// Derives a profile from a catalogued [`SiteLink`], shrunk by `scale`:
    ///
    /// - latency: `latency_ms / scale.time`, both directions (a link's figures hold both
    ///   ways; a one-way link is emulated with the same figures back);
    /// - jitter: 5 % of the latency ("common instabilities" of the paper's `tc` set-up);
    /// - bandwidth: `bandwidth_mbps · 125,000 · scale.time / scale.size` bytes/s, burst of
    ///   10 ms worth of bandwidth (at least 16 KiB); unlimited without a figure;
    /// - stalls: on average once a minute, each as long as the link's one-way latency, both
    ///   divided by `scale.time` — rare and short, but visible in the charts;
    /// - no dropped connections (the scenarios require that no client request fails;
    ///   set [`LinkProfile::drop_probability`] to test clients against drops);
    /// - the handshake round trip is emulated.
    ///
    /// The seed is derived from the link's name, so two runs draw the same jitter.
    pub fn from_site_link(link: &SiteLink, scale: &Scale) -> LinkProfile {
        let latency = scale.duration(Duration::from_secs_f64(link.latency_ms.max(0.0) / 1000.0));
        let bandwidth = link.bandwidth_mbps.map(|mbps| scale.bandwidth(mbps * 125_000.0));
        let burst_bytes = bandwidth.map(|b| ((b * 0.010) as u64).max(16 * 1024)).unwrap_or(0);
        let direction = DirectionProfile {
            latency,
            jitter: latency.mul_f64(0.05),
            bandwidth_bytes_per_second: bandwidth,
            burst_bytes,
            stalls: Some(Stalls {
                mean_interval: scale.duration(Duration::from_secs(60)),
                duration: latency.max(Duration::from_millis(1)),
            }),
        };
        LinkProfile {
            upstream: direction.clone(),
            downstream: direction,
            drop_probability: 0.0,
            emulate_handshake: true,
            seed: seed_from_name(link.header.name.as_str()),
        }
    }

    /// What moving `bytes` from B to A (a response, a replica copy) should take on this
    /// link: `bytes / downstream bandwidth + round_trips × (upstream + downstream latency)`,
    /// plus the handshake's round trip when emulated. Stalls and jitter are not included.
    /// The yardstick for "migration time within 1.5× of bytes / bandwidth plus round trips".
    pub fn transfer_estimate(&self, bytes: u64, round_trips: u32) -> Duration {
        let rtt = self.upstream.latency + self.downstream.latency;
        let transfer = self.downstream.bandwidth_bytes_per_second.map_or(0.0, |b| bytes as f64 / b);
        let handshake = if self.emulate_handshake { rtt } else { Duration::ZERO };
        Duration::from_secs_f64(transfer) + rtt * round_trips + handshake
    }

    /// Checks that the profile can run: positive bandwidths with a burst, a probability in [0, 1].
    pub fn validate(&self) -> Result<()> {
        self.upstream.validate("upstream")?;
        self.downstream.validate("downstream")?;
        if !(0.0..=1.0).contains(&self.drop_probability) {
            return Err(invalid("drop_probability".into(), format!("{} is not in [0, 1]", self.drop_probability)));
        }
        Ok(())
    }
}

fn invalid(what: String, reason: String) -> SimError {
    SimError::Invalid { what: format!("link profile {what}"), reason }
}

/// FNV-1a of a name: a stable seed that does not depend on the standard library's hasher.
pub(crate) fn seed_from_name(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// Live counters of a relay, shared with its connections.
#[derive(Debug, Default)]
struct Counters {
    upstream_bytes: AtomicU64,
    downstream_bytes: AtomicU64,
    connections: AtomicU64,
    dropped_connections: AtomicU64,
    failed_connects: AtomicU64,
}

/// A snapshot of what a relay has carried.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RelayStats {
    /// Bytes delivered to the target (client → target).
    pub upstream_bytes: u64,
    /// Bytes delivered to clients (target → client): what the remote site *sent*.
    pub downstream_bytes: u64,
    /// Connections accepted.
    pub connections: u64,
    /// Connections dropped on purpose ([`LinkProfile::drop_probability`]).
    pub dropped_connections: u64,
    /// Connections closed because the target refused or could not be reached.
    pub failed_connects: u64,
}

impl RelayStats {
    /// The difference `self - earlier`, counter by counter (saturating).
    pub fn since(&self, earlier: &RelayStats) -> RelayStats {
        RelayStats {
            upstream_bytes: self.upstream_bytes.saturating_sub(earlier.upstream_bytes),
            downstream_bytes: self.downstream_bytes.saturating_sub(earlier.downstream_bytes),
            connections: self.connections.saturating_sub(earlier.connections),
            dropped_connections: self.dropped_connections.saturating_sub(earlier.dropped_connections),
            failed_connects: self.failed_connects.saturating_sub(earlier.failed_connects),
        }
    }
}

/// Which end of a [`WanLink`] a relay's clients are on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Side {
    /// The link's `from` end: its upstream figures apply to bytes leaving A.
    A,
    /// The link's `to` end.
    B,
}

/// One emulated link: the state every relay on it shares. A link between two sites carries
/// many connections (clients to ten services, node to node); they share its bandwidth, its
/// stalls and its byte totals, as they would share a real path.
#[derive(Debug, Clone)]
pub struct WanLink {
    shared: Arc<LinkShared>,
}

#[derive(Debug)]
struct LinkShared {
    profile: LinkProfile,
    upstream: DirectionShared,
    downstream: DirectionShared,
    totals: Counters,
    /// Numbers connections, so each draws its own jitter from the link's seed.
    connection_seq: AtomicU64,
}

#[derive(Debug)]
struct DirectionShared {
    pacer: Option<Mutex<Pacer>>,
    stalls: Option<Mutex<(StallClock, fastrand::Rng)>>,
}

impl DirectionShared {
    fn new(profile: &DirectionProfile, seed: u64) -> DirectionShared {
        let mut rng = fastrand::Rng::with_seed(seed);
        DirectionShared {
            pacer: profile.bandwidth_bytes_per_second.map(|rate| Mutex::new(Pacer::new(rate, profile.burst_bytes))),
            stalls: profile.stalls.map(|s| {
                let clock = StallClock::new(s, Instant::now(), &mut rng);
                Mutex::new((clock, rng))
            }),
        }
    }

    /// When `bytes` read now may go on: after the bandwidth reservation and any stall.
    fn release_at(&self, bytes: usize) -> Instant {
        let now = Instant::now();
        let mut at = match &self.pacer {
            Some(p) => p.lock().unwrap_or_else(|e| e.into_inner()).reserve(bytes, now),
            None => now,
        };
        if let Some(stalls) = &self.stalls {
            let (clock, rng) = &mut *stalls.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(end) = clock.stalled_until(at, rng) {
                at = end;
            }
        }
        at
    }
}

impl WanLink {
    /// A link behaving as `profile`; refuses an invalid profile.
    pub fn new(profile: LinkProfile) -> Result<WanLink> {
        profile.validate()?;
        let upstream = DirectionShared::new(&profile.upstream, profile.seed ^ 0x5555);
        let downstream = DirectionShared::new(&profile.downstream, profile.seed ^ 0xaaaa);
        Ok(WanLink {
            shared: Arc::new(LinkShared {
                profile,
                upstream,
                downstream,
                totals: Counters::default(),
                connection_seq: AtomicU64::new(0),
            }),
        })
    }

    /// The profile it emulates.
    pub fn profile(&self) -> &LinkProfile {
        &self.shared.profile
    }

    /// Starts a relay for clients on side A of this link: binds `listen` (port 0 for any
    /// free port) and relays every connection to `target` on side B. The relay's upstream
    /// is the profile's upstream (A → B).
    pub async fn relay(&self, listen: SocketAddr, target: SocketAddr) -> Result<Relay> {
        self.relay_from(Side::A, listen, target).await
    }

    /// Starts a relay for clients on `side`, towards a target on the other side. Relays of
    /// both orientations share the link's state per physical direction: bytes from B to A
    /// use the profile's downstream figures and bucket whichever side opened the connection.
    pub async fn relay_from(&self, side: Side, listen: SocketAddr, target: SocketAddr) -> Result<Relay> {
        let listener = TcpListener::bind(listen).await.map_err(|source| SimError::Bind { addr: listen, source })?;
        let local_addr = listener.local_addr().map_err(|source| SimError::Bind { addr: listen, source })?;
        let counters = Arc::new(Counters::default());
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, target, side, self.shared.clone(), counters.clone(), stop_rx));
        tracing::debug!(%local_addr, %target, "relay started");
        Ok(Relay { local_addr, target, counters, link: self.clone(), stop, task: Some(task) })
    }

    /// What all relays of this link carried so far (relays already stopped included);
    /// `upstream_bytes` went from A to B, `downstream_bytes` from B to A.
    pub fn stats(&self) -> RelayStats {
        self.shared.totals.snapshot()
    }
}

impl Counters {
    fn snapshot(&self) -> RelayStats {
        RelayStats {
            upstream_bytes: self.upstream_bytes.load(Ordering::Relaxed),
            downstream_bytes: self.downstream_bytes.load(Ordering::Relaxed),
            connections: self.connections.load(Ordering::Relaxed),
            dropped_connections: self.dropped_connections.load(Ordering::Relaxed),
            failed_connects: self.failed_connects.load(Ordering::Relaxed),
        }
    }
}

/// Adds to a relay's counter and its link's total at once.
#[derive(Clone, Copy)]
struct Tally<'a>(&'a AtomicU64, &'a AtomicU64);

impl Tally<'_> {
    fn add(self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
        self.1.fetch_add(n, Ordering::Relaxed);
    }
}

/// A running relay. Dropping it stops it too; [`Relay::shutdown`] also waits for the end.
#[derive(Debug)]
pub struct Relay {
    local_addr: SocketAddr,
    target: SocketAddr,
    counters: Arc<Counters>,
    link: WanLink,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl Relay {
    /// A relay on a link of its own: binds `listen` (port 0 for any free port) and relays
    /// every connection to `target` through `profile`. Refuses an invalid profile.
    pub async fn start(listen: SocketAddr, target: SocketAddr, profile: LinkProfile) -> Result<Relay> {
        WanLink::new(profile)?.relay(listen, target).await
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where connections are relayed to.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// The link it runs on.
    pub fn link(&self) -> &WanLink {
        &self.link
    }

    /// What this relay has carried so far.
    pub fn stats(&self) -> RelayStats {
        self.counters.snapshot()
    }

    /// Stops accepting, closes every relayed connection and waits until all of it is gone.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    side: Side,
    link: Arc<LinkShared>,
    counters: Arc<Counters>,
    mut stop: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => {
                    counters.connections.fetch_add(1, Ordering::Relaxed);
                    link.totals.connections.fetch_add(1, Ordering::Relaxed);
                    let n = link.connection_seq.fetch_add(1, Ordering::Relaxed);
                    let seed = link.profile.seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
                    connections.spawn(relay_connection(client, target, side, link.clone(), counters.clone(), seed));
                }
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "relay accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    connections.shutdown().await;
}

async fn relay_connection(
    client: TcpStream,
    target: SocketAddr,
    side: Side,
    link: Arc<LinkShared>,
    counters: Arc<Counters>,
    seed: u64,
) {
    let profile = &link.profile;
    let mut rng = fastrand::Rng::with_seed(seed);
    if profile.drop_probability > 0.0 && rng.f64() < profile.drop_probability {
        Tally(&counters.dropped_connections, &link.totals.dropped_connections).add(1);
        // Reset rather than a polite FIN, so the client sees an error.
        let _ = client.set_zero_linger();
        return;
    }
    let accepted_at = Instant::now();
    let server = match TcpStream::connect(target).await {
        Ok(s) => s,
        Err(error) => {
            Tally(&counters.failed_connects, &link.totals.failed_connects).add(1);
            tracing::debug!(%target, %error, "relay target unreachable");
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let not_before = if profile.emulate_handshake {
        accepted_at + profile.upstream.latency + profile.downstream.latency
    } else {
        accepted_at
    };
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    // Physical directions of the link: A → B carries the profile's upstream.
    let (a_to_b, b_to_a) = ((&profile.upstream, &link.upstream), (&profile.downstream, &link.downstream));
    let (a_to_b_total, b_to_a_total) = (&link.totals.upstream_bytes, &link.totals.downstream_bytes);
    let ((up_profile, up_shared), (down_profile, down_shared), up_total, down_total) = match side {
        Side::A => (a_to_b, b_to_a, a_to_b_total, b_to_a_total),
        Side::B => (b_to_a, a_to_b, b_to_a_total, a_to_b_total),
    };
    let up_tally = Tally(&counters.upstream_bytes, up_total);
    let down_tally = Tally(&counters.downstream_bytes, down_total);
    let up = pump(client_read, server_write, up_profile, up_shared, not_before, rng.u64(..), up_tally);
    let down = pump(server_read, client_write, down_profile, down_shared, accepted_at, rng.u64(..), down_tally);
    // The first error ends both directions: dropping the halves closes both sockets.
    if let Err(error) = tokio::try_join!(up, down) {
        tracing::trace!(%error, "relayed connection ended with an error");
    }
}

/// One direction: a reader stamping chunks with their due time and a writer delivering them.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    profile: &DirectionProfile,
    shared: &DirectionShared,
    not_before: Instant,
    seed: u64,
    delivered: Tally<'_>,
) -> std::io::Result<()> {
    let (tx, mut rx) = mpsc::channel::<(Instant, Option<Bytes>)>(QUEUE_CHUNKS);
    let reader = async move {
        let mut rng = fastrand::Rng::with_seed(seed);
        let chunk_bytes = profile.chunk_bytes();
        let mut last_due = not_before;
        loop {
            let mut buf = BytesMut::with_capacity(chunk_bytes);
            let n = from.read_buf(&mut buf).await?;
            if n > 0 {
                // Bandwidth and stalls hold the reader (and so the sender's TCP window).
                tokio::time::sleep_until(shared.release_at(n)).await;
            }
            let sent_at = Instant::now().max(not_before);
            let due = (sent_at + jittered(profile, &mut rng)).max(last_due);
            last_due = due;
            let chunk = (n > 0).then(|| buf.freeze());
            // The writer is gone only when the connection already failed: stop reading.
            if tx.send((due, chunk)).await.is_err() || n == 0 {
                return Ok::<(), std::io::Error>(());
            }
        }
    };
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            match chunk {
                Some(bytes) => {
                    to.write_all(&bytes).await?;
                    delivered.add(bytes.len() as u64);
                }
                None => {
                    // Half-close: the peer may still be sending the other way. A peer that
                    // is already gone makes this fail, which changes nothing.
                    let _ = to.shutdown().await;
                    break;
                }
            }
        }
        Ok::<(), std::io::Error>(())
    };
    tokio::try_join!(reader, writer).map(|_| ())
}

fn jittered(profile: &DirectionProfile, rng: &mut fastrand::Rng) -> Duration {
    if profile.jitter.is_zero() {
        return profile.latency;
    }
    let offset = profile.jitter.as_secs_f64() * (2.0 * rng.f64() - 1.0);
    Duration::from_secs_f64((profile.latency.as_secs_f64() + offset).max(0.0))
}

/// The link's bandwidth as a shared token bucket in GCRA form: each chunk reserves its
/// transmission time on one virtual clock (`tat`), so connections sharing the link share
/// the rate, first come first served, and a chunk larger than the burst simply pushes the
/// next ones back: the long-run rate is exact whatever the chunk sizes.
#[derive(Debug)]
struct Pacer {
    rate: f64,
    burst: Duration,
    tat: Instant,
}

impl Pacer {
    fn new(rate: f64, burst_bytes: u64) -> Pacer {
        Pacer { rate, burst: Duration::from_secs_f64(burst_bytes as f64 / rate), tat: Instant::now() }
    }

    /// Reserves `bytes` read at `now`; returns when they may leave.
    fn reserve(&mut self, bytes: usize, now: Instant) -> Instant {
        let start = self.tat.max(now);
        self.tat = start + Duration::from_secs_f64(bytes as f64 / self.rate);
        self.tat.checked_sub(self.burst).map_or(now, |t| t.max(now))
    }
}

/// When the direction is down: windows `[start, start + duration)` with exponential gaps.
#[derive(Debug)]
struct StallClock {
    stalls: Stalls,
    next_start: Instant,
}

impl StallClock {
    fn new(stalls: Stalls, now: Instant, rng: &mut fastrand::Rng) -> StallClock {
        StallClock { stalls, next_start: now + exponential(stalls.mean_interval, rng) }
    }

    /// `Some(end)` when `now` falls inside a stall; windows that passed while idle are skipped.
    fn stalled_until(&mut self, now: Instant, rng: &mut fastrand::Rng) -> Option<Instant> {
        loop {
            if now < self.next_start {
                return None;
            }
            let end = self.next_start + self.stalls.duration;
            if now < end {
                return Some(end);
            }
            self.next_start = end + exponential(self.stalls.mean_interval, rng);
        }
    }
}

fn exponential(mean: Duration, rng: &mut fastrand::Rng) -> Duration {
    Duration::from_secs_f64(-mean.as_secs_f64() * (1.0 - rng.f64()).ln())
}

#[cfg(test)]
mod tests {
    use super::*;
    use civitas_model::Document;

    fn link() -> SiteLink {
        let text = include_str!("../../../examples/urbem/site-links.json");
        let value: serde_json::Value = serde_json::from_str(text).unwrap();
        match Document::decode(&value).unwrap() {
            Document::SiteLink(l) => l,
            other => panic!("not a link: {other:?}"),
        }
    }

    #[test]
    fn profile_from_the_urbem_link_at_full_and_default_scale() {
        let full = LinkProfile::from_site_link(&link(), &Scale::FULL);
        assert_eq!(full.upstream.latency, Duration::from_millis(150));
        assert_eq!(full.downstream.bandwidth_bytes_per_second, Some(12_500_000.0));
        assert_eq!(full.downstream.jitter, Duration::from_micros(7500));
        assert_eq!(full.drop_probability, 0.0);
        full.validate().unwrap();

        let scaled = LinkProfile::from_site_link(&link(), &Scale::new(5.0, 40.0).unwrap());
        assert_eq!(scaled.upstream.latency, Duration::from_millis(30));
        assert_eq!(scaled.downstream.bandwidth_bytes_per_second, Some(12_500_000.0 * 5.0 / 40.0));
        assert_eq!(scaled.seed, full.seed, "the seed comes from the link's name");
    }

    #[test]
    fn transfer_estimate_is_bytes_over_bandwidth_plus_round_trips() {
        let p = LinkProfile::from_site_link(&link(), &Scale::FULL);
        // 12.5 MB at 12.5 MB/s, 2 round trips of 300 ms and the handshake's.
        assert_eq!(p.transfer_estimate(12_500_000, 2), Duration::from_millis(1900));
        assert_eq!(
            LinkProfile::symmetric_latency(Duration::from_millis(10)).transfer_estimate(1 << 30, 1),
            Duration::from_millis(20)
        );
    }

    #[test]
    fn invalid_profiles_are_refused() {
        let mut p = LinkProfile::symmetric_latency(Duration::from_millis(1));
        p.drop_probability = 1.5;
        assert!(p.validate().is_err());
        let mut p = LinkProfile::symmetric_latency(Duration::from_millis(1));
        p.downstream.bandwidth_bytes_per_second = Some(1000.0);
        assert!(p.validate().is_err(), "a cap needs a burst");
    }

    #[test]
    fn stall_windows_are_skipped_when_idle_and_honoured_when_busy() {
        let mut rng = fastrand::Rng::with_seed(7);
        let t0 = Instant::now();
        let stalls = Stalls { mean_interval: Duration::from_secs(1), duration: Duration::from_millis(100) };
        let mut clock = StallClock::new(stalls, t0, &mut rng);
        let start = clock.next_start;
        assert_eq!(clock.stalled_until(start - Duration::from_millis(1), &mut rng), None);
        assert_eq!(clock.stalled_until(start + Duration::from_millis(10), &mut rng), Some(start + stalls.duration));
        let later = start + Duration::from_secs(3600);
        assert!(clock.stalled_until(later, &mut rng).is_none_or(|end| end > later));
        assert!(clock.next_start > start);
    }

    #[test]
    fn jitter_stays_within_its_bound() {
        let mut rng = fastrand::Rng::with_seed(1);
        let mut p = DirectionProfile::latency(Duration::from_millis(100));
        p.jitter = Duration::from_millis(10);
        for _ in 0..1000 {
            let d = jittered(&p, &mut rng);
            assert!(d >= Duration::from_millis(90) && d <= Duration::from_millis(110), "{d:?}");
        }
    }
}
