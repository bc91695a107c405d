//! Clients replaying the URBEM application's request types, recording every response.
//!
//! A [`ClientPlan`] says how many clients a city runs and which request types they replay
//! (name, URL, think time). Each client has its own HTTP connection pool (like a separate
//! application instance) and runs one loop per request type: request, read the whole body,
//! record a [`Sample`], think (± 20 %, seeded), repeat. Loops of one client run
//! concurrently, so a slow `/buildings` does not hold back `/mobility` — as the paper's
//! Fig. 6 shows every request type at its own pace.
//!
//! The phase (SDD inactive or active) is set by the runner with [`ClientRun::set_phase`];
//! each sample carries the phase in force when its request *started*. Summaries follow
//! the paper's Tables 1 and 2 ([`Summary`]); [`write_csv`] writes every sample.
//!
//! A response counts as failed when the request errs, times out, is cut short, or its
//! status is not `2xx`/`304`; times of failed requests are kept in the CSV but left out of
//! the averages, medians and deviations.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::error::{Result, SimError};

/// Whether the SDD was active when a request started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Baseline: the SDD framework is deactivated.
    Inactive,
    /// After activation through the SDD API (migration included).
    Active,
}

impl Phase {
    /// `inactive` or `active`.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Inactive => "inactive",
            Phase::Active => "active",
        }
    }
}

/// One request type of the paper: `buildings`, `blocks`, `networks`, `mobility`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestType {
    /// Name in tables and charts.
    pub name: String,
    /// The URL requested, query included (through a relay, a node, or directly).
    pub url: String,
    /// Pause after each response before the next request of this type.
    pub think_time: Duration,
}

/// The clients of one city.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClientPlan {
    /// City the clients run in (recorded with every sample).
    pub city: String,
    /// How many clients (the paper: 5 per city).
    pub clients: usize,
    /// What each client replays.
    pub request_types: Vec<RequestType>,
    /// A forward proxy for every request (`http://node:port`, the data plane's forward
    /// mode), or `None` to connect directly.
    pub proxy: Option<String>,
    /// Per-request deadline; a request taking longer is recorded as failed.
    pub timeout: Duration,
    /// Seed of the think-time jitter; client `i` uses `seed + i`.
    pub seed: u64,
}

/// One recorded request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// When the request started, in seconds since the run started.
    pub at_s: f64,
    /// City of the client.
    pub city: String,
    /// Client number within the city (0-based).
    pub client: usize,
    /// Request type name.
    pub request_type: String,
    /// Phase in force when the request started.
    pub phase: Phase,
    /// Time from sending the request to the last body byte (or to the failure).
    pub seconds: f64,
    /// HTTP status, if a response came.
    pub status: Option<u16>,
    /// Body bytes received.
    pub bytes: u64,
    /// What went wrong, for failed requests.
    pub error: Option<String>,
}

impl Sample {
    /// Whether the request failed (error, timeout, cut body, or a status other than 2xx/304).
    pub fn failed(&self) -> bool {
        self.error.is_some() || !matches!(self.status, Some(200..=299 | 304))
    }
}

/// Running clients. Dropping it aborts them; [`ClientRun::stop`] lets requests in flight finish.
#[derive(Debug)]
pub struct ClientRun {
    samples: Arc<Mutex<Vec<Sample>>>,
    phase: watch::Sender<Phase>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    started: Instant,
}

impl ClientRun {
    /// Starts every client of every plan now, in phase [`Phase::Inactive`].
    pub fn start(plans: &[ClientPlan]) -> Result<ClientRun> {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (phase, _) = watch::channel(Phase::Inactive);
        let (stop, _) = watch::channel(false);
        let started = Instant::now();
        let mut tasks = JoinSet::new();
        for plan in plans {
            if plan.request_types.is_empty() || plan.clients == 0 {
                return Err(SimError::Invalid {
                    what: format!("client plan of {}", plan.city),
                    reason: "needs at least one client and one request type".into(),
                });
            }
            for client in 0..plan.clients {
                let mut builder = reqwest::Client::builder().timeout(plan.timeout);
                builder = match &plan.proxy {
                    Some(proxy) => builder.proxy(reqwest::Proxy::http(proxy).map_err(SimError::Client)?),
                    None => builder.no_proxy(),
                };
                let http = builder.build().map_err(SimError::Client)?;
                for (index, request_type) in plan.request_types.iter().enumerate() {
                    let lane = Lane {
                        http: http.clone(),
                        city: plan.city.clone(),
                        client,
                        request_type: request_type.clone(),
                        samples: samples.clone(),
                        phase: phase.subscribe(),
                        stop: stop.subscribe(),
                        started,
                        rng: fastrand::Rng::with_seed(plan.seed.wrapping_add(client as u64) ^ ((index as u64) << 32)),
                    };
                    tasks.spawn(lane.run());
                }
            }
        }
        Ok(ClientRun { samples, phase, stop, tasks, started })
    }

    /// Requests that start from now on carry `phase`.
    pub fn set_phase(&self, phase: Phase) {
        self.phase.send_replace(phase);
    }

    /// Seconds since the clients started.
    pub fn elapsed_s(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Every sample so far, in completion order.
    pub fn samples(&self) -> Vec<Sample> {
        self.samples.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Samples from index `from` on (for a live view that polls).
    pub fn samples_since(&self, from: usize) -> Vec<Sample> {
        let samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        samples.get(from..).map(<[Sample]>::to_vec).unwrap_or_default()
    }

    /// Stops the clients: no new request starts, requests in flight may finish within
    /// `grace` (later ones are abandoned unrecorded). Returns every sample.
    pub async fn stop(mut self, grace: Duration) -> Vec<Sample> {
        self.stop.send_replace(true);
        let deadline = Instant::now() + grace;
        while !self.tasks.is_empty() {
            match tokio::time::timeout_at(deadline, self.tasks.join_next()).await {
                Ok(_) => {}
                Err(_) => {
                    self.tasks.abort_all();
                    while self.tasks.join_next().await.is_some() {}
                }
            }
        }
        self.samples()
    }
}

/// One client's loop over one request type.
struct Lane {
    http: reqwest::Client,
    city: String,
    client: usize,
    request_type: RequestType,
    samples: Arc<Mutex<Vec<Sample>>>,
    phase: watch::Receiver<Phase>,
    stop: watch::Receiver<bool>,
    started: Instant,
    rng: fastrand::Rng,
}

impl Lane {
    async fn run(mut self) {
        // Clients do not start in lock-step: a random share of one think time first.
        let first = self.request_type.think_time.mul_f64(self.rng.f64());
        if self.pause(first).await {
            return;
        }
        loop {
            if *self.stop.borrow() {
                return;
            }
            let sample = self.request().await;
            self.samples.lock().unwrap_or_else(|e| e.into_inner()).push(sample);
            let think = self.request_type.think_time.mul_f64(0.8 + 0.4 * self.rng.f64());
            if self.pause(think).await {
                return;
            }
        }
    }

    /// Waits `d`; true when told to stop meanwhile.
    async fn pause(&mut self, d: Duration) -> bool {
        let told = tokio::select! {
            _ = tokio::time::sleep(d) => false,
            _ = self.stop.wait_for(|s| *s) => true,
        };
        told || *self.stop.borrow()
    }

    async fn request(&mut self) -> Sample {
        let phase = *self.phase.borrow();
        let begin = Instant::now();
        let at_s = begin.duration_since(self.started).as_secs_f64();
        let (status, bytes, error) = match self.http.get(&self.request_type.url).send().await {
            Err(e) => (None, 0, Some(describe(&e))),
            Ok(mut response) => {
                let status = response.status().as_u16();
                let mut bytes = 0u64;
                let mut error = None;
                loop {
                    match response.chunk().await {
                        Ok(Some(chunk)) => bytes += chunk.len() as u64,
                        Ok(None) => break,
                        Err(e) => {
                            error = Some(describe(&e));
                            break;
                        }
                    }
                }
                (Some(status), bytes, error)
            }
        };
        Sample {
            at_s,
            city: self.city.clone(),
            client: self.client,
            request_type: self.request_type.name.clone(),
            phase,
            seconds: begin.elapsed().as_secs_f64(),
            status,
            bytes,
            error,
        }
    }
}

/// reqwest's error with its sources, on one line.
fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let _ = write!(text, ": {s}");
        source = s.source();
    }
    text
}

/// The paper's per-type, per-phase figures (Tables 1 and 2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Mean response time of successful requests, seconds.
    pub avg_s: f64,
    /// Median response time of successful requests, seconds.
    pub median_s: f64,
    /// Sample standard deviation (n − 1) of successful requests, seconds; 0 below two.
    pub stddev_s: f64,
    /// Requests started in the phase, failed ones included.
    pub requests: usize,
    /// Failed requests.
    pub failed: usize,
}

impl Summary {
    /// Summarises the samples of `request_type` in `phase`.
    pub fn of(samples: &[Sample], request_type: &str, phase: Phase) -> Summary {
        let selected: Vec<&Sample> =
            samples.iter().filter(|s| s.request_type == request_type && s.phase == phase).collect();
        let mut times: Vec<f64> = selected.iter().filter(|s| !s.failed()).map(|s| s.seconds).collect();
        let requests = selected.len();
        let failed = requests - times.len();
        if times.is_empty() {
            return Summary { requests, failed, ..Summary::default() };
        }
        times.sort_by(f64::total_cmp);
        let n = times.len();
        let avg = times.iter().sum::<f64>() / n as f64;
        let median = if n % 2 == 1 { times[n / 2] } else { (times[n / 2 - 1] + times[n / 2]) / 2.0 };
        let stddev =
            if n < 2 { 0.0 } else { (times.iter().map(|t| (t - avg).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt() };
        Summary { avg_s: avg, median_s: median, stddev_s: stddev, requests, failed }
    }
}

/// One row of the scenario report: `{"name", "migrated", "inactive": {...}, "active": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestTypeReport {
    /// Request type name.
    pub name: String,
    /// Whether the runner saw its view migrated.
    pub migrated: bool,
    /// Baseline phase.
    pub inactive: Summary,
    /// Active phase.
    pub active: Summary,
}

impl RequestTypeReport {
    /// Both phases of `name` from `samples`.
    pub fn from_samples(samples: &[Sample], name: &str, migrated: bool) -> RequestTypeReport {
        RequestTypeReport {
            name: name.to_owned(),
            migrated,
            inactive: Summary::of(samples, name, Phase::Inactive),
            active: Summary::of(samples, name, Phase::Active),
        }
    }
}

/// The paper's table as text: one line per request type and phase.
pub fn format_table(rows: &[RequestTypeReport]) -> String {
    let mut out = format!(
        "{:<12} {:<9} {:>9} {:>9} {:>9} {:>8} {:>7}\n",
        "request", "status", "avg (s)", "median", "stddev", "requests", "failed"
    );
    for row in rows {
        for (phase, s) in [("inactive", &row.inactive), ("active", &row.active)] {
            let name = if phase == "inactive" { row.name.as_str() } else { "" };
            let _ = writeln!(
                out,
                "{name:<12} {phase:<9} {:>9.3} {:>9.3} {:>9.3} {:>8} {:>7}",
                s.avg_s, s.median_s, s.stddev_s, s.requests, s.failed
            );
        }
    }
    out
}

/// Writes every sample as CSV, ordered by start time:
/// `time_s,city,client,type,phase,seconds,status,bytes,error` (`status` empty when no
/// response came; `error` empty on success).
pub fn write_csv(path: &Path, samples: &[Sample]) -> Result<()> {
    let mut ordered: Vec<&Sample> = samples.iter().collect();
    ordered.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
    let mut out = String::from("time_s,city,client,type,phase,seconds,status,bytes,error\n");
    for s in ordered {
        let _ = writeln!(
            out,
            "{:.3},{},{},{},{},{:.6},{},{},{}",
            s.at_s,
            csv_field(&s.city),
            s.client,
            csv_field(&s.request_type),
            s.phase.as_str(),
            s.seconds,
            s.status.map(|c| c.to_string()).unwrap_or_default(),
            s.bytes,
            csv_field(s.error.as_deref().unwrap_or("")),
        );
    }
    std::fs::write(path, out).map_err(|source| SimError::Write { path: path.to_owned(), source })
}

/// RFC 4180 quoting where needed.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(kind: &str, phase: Phase, seconds: f64, status: Option<u16>) -> Sample {
        Sample {
            at_s: 0.0,
            city: "vienna".into(),
            client: 0,
            request_type: kind.into(),
            phase,
            seconds,
            status,
            bytes: 10,
            error: status.is_none().then(|| "connection reset".into()),
        }
    }

    #[test]
    fn summary_matches_hand_computed_figures() {
        let samples = vec![
            sample("blocks", Phase::Inactive, 1.0, Some(200)),
            sample("blocks", Phase::Inactive, 2.0, Some(200)),
            sample("blocks", Phase::Inactive, 4.0, Some(304)),
            sample("blocks", Phase::Inactive, 9.0, Some(502)),
            sample("blocks", Phase::Inactive, 9.0, None),
            sample("blocks", Phase::Active, 0.5, Some(200)),
            sample("networks", Phase::Inactive, 100.0, Some(200)),
        ];
        let s = Summary::of(&samples, "blocks", Phase::Inactive);
        assert_eq!((s.requests, s.failed), (5, 2));
        assert!((s.avg_s - 7.0 / 3.0).abs() < 1e-12);
        assert_eq!(s.median_s, 2.0);
        assert!((s.stddev_s - (7.0f64 / 3.0).sqrt()).abs() < 1e-12, "{}", s.stddev_s);
        let a = Summary::of(&samples, "blocks", Phase::Active);
        assert_eq!((a.avg_s, a.median_s, a.stddev_s, a.requests), (0.5, 0.5, 0.0, 1));
        let json = serde_json::to_value(RequestTypeReport::from_samples(&samples, "blocks", true)).unwrap();
        assert_eq!(json["inactive"]["requests"], 5);
        assert_eq!(json["migrated"], true);
        for key in ["avg_s", "median_s", "stddev_s", "requests", "failed"] {
            assert!(json["active"].get(key).is_some(), "{key}");
        }
    }

    #[test]
    fn csv_has_one_line_per_sample_and_quotes_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("samples.csv");
        let mut failed = sample("mobility", Phase::Active, 0.25, None);
        failed.error = Some("error sending request, \"reset\"".into());
        write_csv(&path, &[sample("mobility", Phase::Inactive, 0.125, Some(200)), failed]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[1], "0.000,vienna,0,mobility,inactive,0.125000,200,10,");
        assert!(lines[2].ends_with(",,10,\"error sending request, \"\"reset\"\"\""), "{}", lines[2]);
    }

    #[test]
    fn table_lists_both_phases() {
        let rows =
            [RequestTypeReport::from_samples(&[sample("buildings", Phase::Active, 1.5, Some(200))], "buildings", true)];
        let table = format_table(&rows);
        assert_eq!(table.lines().count(), 3);
        assert!(table.contains("buildings    inactive"));
        assert!(table.contains("1.500"));
    }
}
