//! `civitas demo`: scenario one with a live view — the phase, each request type's latency,
//! migrations as they happen — and the paper's table at the end.
//!
//! On a terminal the view is redrawn in place (plain ANSI: cursor home, clear); when
//! standard output is not a terminal it prints a status line every five seconds and each
//! phase and migration event as it comes, so a log or CI output stays readable.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::scenario::{PROGRESS_QUEUE, Progress, RunArgs, run_scenario};

/// Arguments of `civitas demo`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  # Scenario one, scaled to about two and a half minutes, with a live view
  civitas demo

  # At the paper's size (5 + 5 minutes); files in ./demo-results
  civitas demo --full --out demo-results")]
pub struct DemoArgs {
    #[command(flatten)]
    pub run: RunArgs,
}

/// Runs scenario one with the live view, then prints the report.
pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async {
        let (tx, rx) = mpsc::channel(PROGRESS_QUEUE);
        let tty = std::io::stdout().is_terminal();
        let view = tokio::spawn(live_view(rx, tty));
        let result = run_scenario("one", &args.run, tx).await;
        let _ = view.await;
        let outcome = result?;
        println!();
        print!("{}", outcome.text());
        Ok(())
    })
}

/// Response times of one request type as the view shows them.
#[derive(Debug, Default)]
struct Latency {
    /// (completion instant, seconds) of the last ten seconds.
    recent: Vec<(Instant, f64)>,
    last_s: f64,
    requests: usize,
    failed: usize,
}

/// What the view knows.
#[derive(Debug, Default)]
struct ViewState {
    title: String,
    phase: Option<(&'static str, Instant, f64)>,
    types: BTreeMap<String, Latency>,
    migrations: Vec<String>,
    notes: Vec<String>,
}

const WINDOW: Duration = Duration::from_secs(10);

impl ViewState {
    fn apply(&mut self, p: &Progress) {
        match p {
            Progress::Note(n) => {
                if self.title.is_empty() {
                    self.title = n.clone();
                }
                self.notes.push(n.clone());
            }
            Progress::Phase { name, length_s, .. } => {
                // Figures are per phase: the view starts afresh.
                self.phase = Some((name, Instant::now(), *length_s));
                self.types.clear();
            }
            Progress::Samples(samples) => {
                let now = Instant::now();
                for s in samples {
                    let t = self.types.entry(s.request_type.clone()).or_default();
                    t.requests += 1;
                    if s.failed() {
                        t.failed += 1;
                    } else {
                        t.last_s = s.seconds;
                        t.recent.push((now, s.seconds));
                    }
                }
                for t in self.types.values_mut() {
                    t.recent.retain(|(at, _)| now.duration_since(*at) <= WINDOW);
                }
            }
            Progress::Migration { .. } => {
                if let Some(line) = p.line() {
                    self.migrations.push(line);
                }
            }
        }
    }

    fn phase_line(&self) -> String {
        match self.phase {
            Some((name, since, length)) => {
                let elapsed = since.elapsed().as_secs_f64().min(length);
                let filled = if length > 0.0 { (elapsed / length * 30.0) as usize } else { 30 };
                format!(
                    "phase {name:<8} [{}{}] {elapsed:5.0}/{length:.0} s",
                    "#".repeat(filled.min(30)),
                    " ".repeat(30 - filled.min(30))
                )
            }
            None => "starting the cities and nodes…".into(),
        }
    }

    fn latency_lines(&self) -> String {
        let mut out =
            format!("{:<10} {:>9} {:>13} {:>9} {:>7}\n", "request", "last (s)", "avg 10 s (s)", "requests", "failed");
        for (name, t) in &self.types {
            let avg = if t.recent.is_empty() {
                0.0
            } else {
                t.recent.iter().map(|(_, s)| s).sum::<f64>() / t.recent.len() as f64
            };
            let _ = writeln!(out, "{name:<10} {:>9.3} {avg:>13.3} {:>9} {:>7}", t.last_s, t.requests, t.failed);
        }
        out
    }

    /// The whole screen for a terminal.
    fn screen(&self) -> String {
        let mut out =
            format!("\x1b[H\x1b[2J{}\n\n{}\n\n{}\nmigrations:\n", self.title, self.phase_line(), self.latency_lines());
        let shown = self.migrations.len().saturating_sub(12);
        if self.migrations.is_empty() {
            out.push_str("  (none yet)\n");
        }
        for m in &self.migrations[shown..] {
            let _ = writeln!(out, "  {m}");
        }
        out
    }

    /// One status line for a log.
    fn status_line(&self) -> String {
        let types: Vec<String> = self
            .types
            .iter()
            .map(|(n, t)| {
                let avg = if t.recent.is_empty() {
                    0.0
                } else {
                    t.recent.iter().map(|(_, s)| s).sum::<f64>() / t.recent.len() as f64
                };
                format!("{n} {avg:.3}s")
            })
            .collect();
        format!("{} | avg 10 s: {}", self.phase_line(), types.join(", "))
    }
}

async fn live_view(mut rx: mpsc::Receiver<Progress>, tty: bool) {
    let mut state = ViewState::default();
    let mut stdout = std::io::stdout();
    let mut last_status = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            p = rx.recv() => {
                let Some(p) = p else { break };
                state.apply(&p);
                if !tty && !matches!(p, Progress::Samples(_)) && let Some(line) = p.line() {
                    let _ = writeln!(stdout, "{line}");
                }
            }
            _ = ticker.tick() => {
                if tty {
                    let _ = write!(stdout, "{}", state.screen());
                    let _ = stdout.flush();
                } else if state.phase.is_some() && last_status.elapsed() >= Duration::from_secs(5) {
                    last_status = Instant::now();
                    let _ = writeln!(stdout, "{}", state.status_line());
                }
            }
        }
    }
    if tty {
        let _ = write!(stdout, "{}", state.screen());
        let _ = stdout.flush();
    }
}
