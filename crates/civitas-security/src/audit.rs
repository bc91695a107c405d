//! The audit log: every decision (who, what, allow or deny, which rule) as one JSON line
//! in an append-only file, rotated by size.
//!
//! Records go through a bounded queue to a dedicated writer thread, so a request never
//! waits on the disk. When the queue is full the record is dropped and counted
//! (`civitas_security_audit_dropped_total`) — the decision itself is never delayed or
//! changed. The writer flushes after each batch; it does not fsync every line (the log
//! is for accountability, not a transaction log), but it fsyncs a file before rotating it
//! and when it stops.
//!
//! Rotation: when a line would take the file past `max_file_bytes`, `security.ndjson` is
//! renamed `security.ndjson.1`, older ones shift up (`.1` → `.2` …) and the one past
//! `keep_files` is deleted.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;

use serde::{Deserialize, Serialize};

use crate::config::AuditConfig;
use crate::error::SecurityError;
use crate::metrics::SecurityMetrics;
use crate::policy::Decision;
use crate::principal::Principal;

const BATCH: usize = 1_024;

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// When (RFC 3339, UTC, milliseconds).
    pub ts: String,
    /// Who: the principal's subject (empty for anonymous).
    pub subject: String,
    /// How they authenticated: `anonymous`, `local`, `oidc`, `ldap`.
    pub source: String,
    /// The token issuer or directory URL, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// What was decided: `unit`, `view`, `migration`.
    pub kind: String,
    /// About what: a unit or view URN, or `view -> site`.
    pub resource: String,
    /// `allow` or `deny`.
    pub decision: String,
    /// The rule that decided.
    pub rule: String,
    /// Why.
    pub reason: String,
    /// Whether the decision came from the cache.
    pub cached: bool,
}

impl AuditRecord {
    /// The record of `decision` made for `p`.
    pub fn new(p: &Principal, decision: &Decision, cached: bool) -> AuditRecord {
        let issuer = match &p.source {
            crate::Source::Ldap { url, .. } => Some(url.clone()),
            _ => p.issuer().map(str::to_owned),
        };
        AuditRecord {
            ts: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            subject: p.subject.clone(),
            source: p.source_name().into(),
            issuer,
            kind: decision.kind.as_str().into(),
            resource: decision.resource.to_string(),
            decision: if decision.allowed { "allow" } else { "deny" }.into(),
            rule: decision.rule.to_string(),
            reason: decision.reason.to_string(),
            cached,
        }
    }
}

/// What the writer thread is sent: a record, or a request to confirm that everything
/// queued before it is written and fsynced.
#[derive(Debug)]
enum Entry {
    Record(Box<AuditRecord>),
    Sync(std::sync::mpsc::Sender<()>),
}

/// The sending side of the audit log; cheap to clone.
#[derive(Debug, Clone)]
pub struct AuditLog {
    tx: SyncSender<Entry>,
    metrics: SecurityMetrics,
}

/// The writer thread; [`AuditWriter::finish`] waits until every queued record is written
/// (after all [`AuditLog`] handles are dropped).
#[derive(Debug)]
pub struct AuditWriter {
    thread: JoinHandle<Result<(), SecurityError>>,
}

impl AuditWriter {
    /// Waits for the writer to drain its queue, fsync and stop. Call after dropping
    /// every [`AuditLog`] handle (the policy engine's included).
    pub fn finish(self) -> Result<(), SecurityError> {
        self.thread.join().unwrap_or_else(|_| Err(SecurityError::InvalidRequest("the audit writer panicked".into())))
    }
}

impl AuditLog {
    /// Opens (appending) `path` and starts the writer thread.
    pub fn start(
        path: &Path,
        config: &AuditConfig,
        metrics: SecurityMetrics,
    ) -> Result<(AuditLog, AuditWriter), SecurityError> {
        if config.max_file_bytes < 1024 {
            return Err(SecurityError::Config {
                field: "security.audit.max_file_bytes".into(),
                message: "must be at least 1024".into(),
            });
        }
        let file = Segment::open(path)?;
        let (tx, rx) = std::sync::mpsc::sync_channel(config.queue_capacity.max(1));
        let writer = Writer {
            path: path.to_path_buf(),
            max_file_bytes: config.max_file_bytes,
            keep_files: config.keep_files,
            segment: file,
            metrics: metrics.clone(),
        };
        let thread = std::thread::Builder::new().name("civitas-audit".into()).spawn(move || writer.run(rx)).map_err(
            |source| SecurityError::Io { op: "start the audit writer for", path: path.to_path_buf(), source },
        )?;
        Ok((AuditLog { tx, metrics }, AuditWriter { thread }))
    }

    /// Waits until every record queued before this call is written and fsynced, at most
    /// `timeout`; `false` when that did not happen (the writer is gone or too slow).
    /// Blocking: for shutdown, off the async runtime.
    pub fn sync(&self, timeout: std::time::Duration) -> bool {
        let (ack, done) = std::sync::mpsc::channel();
        let deadline = std::time::Instant::now() + timeout;
        let mut entry = Entry::Sync(ack);
        // The queue may be full: retry until there is room or the time is up.
        loop {
            match self.tx.try_send(entry) {
                Ok(()) => break,
                Err(TrySendError::Disconnected(_)) => return false,
                Err(TrySendError::Full(back)) => {
                    if std::time::Instant::now() >= deadline {
                        return false;
                    }
                    entry = back;
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
            }
        }
        done.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())).is_ok()
    }

    /// Queues a record; never waits. A full queue drops the record and counts it.
    pub fn record(&self, record: AuditRecord) {
        match self.tx.try_send(Entry::Record(Box::new(record))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => self.metrics.audit_dropped(),
        }
    }
}

struct Segment {
    out: BufWriter<File>,
    size: u64,
}

impl Segment {
    fn open(path: &Path) -> Result<Segment, SecurityError> {
        let io = |op: &'static str| move |source| SecurityError::Io { op, path: path.to_path_buf(), source };
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io("create the directory of"))?;
        }
        use std::os::unix::fs::OpenOptionsExt;
        let file = OpenOptions::new().create(true).append(true).mode(0o600).open(path).map_err(io("open"))?;
        let size = file.metadata().map_err(io("stat"))?.len();
        Ok(Segment { out: BufWriter::new(file), size })
    }
}

struct Writer {
    path: PathBuf,
    max_file_bytes: u64,
    keep_files: u32,
    segment: Segment,
    metrics: SecurityMetrics,
}

impl Writer {
    fn run(mut self, rx: Receiver<Entry>) -> Result<(), SecurityError> {
        // Ends when every sender is gone and the queue is drained.
        while let Ok(first) = rx.recv() {
            let mut syncs = Vec::new();
            for entry in std::iter::once(first).chain(rx.try_iter().take(BATCH)) {
                match entry {
                    Entry::Record(r) => self.write(&r),
                    Entry::Sync(ack) => syncs.push(ack),
                }
            }
            let flushed = if syncs.is_empty() {
                self.segment.out.flush()
            } else {
                self.segment.out.flush().and_then(|()| self.segment.out.get_ref().sync_all())
            };
            match flushed {
                Ok(()) => {
                    for ack in syncs {
                        let _ = ack.send(());
                    }
                }
                Err(e) => {
                    self.metrics.audit_write_error();
                    tracing::error!(path = %self.path.display(), error = %e, "cannot write the audit log");
                }
            }
        }
        self.segment
            .out
            .flush()
            .and_then(|()| self.segment.out.get_ref().sync_all())
            .map_err(|source| SecurityError::Io { op: "fsync", path: self.path.clone(), source })
    }

    fn write(&mut self, record: &AuditRecord) {
        let mut line = serde_json::to_vec(record).unwrap_or_default();
        line.push(b'\n');
        if self.segment.size > 0
            && self.segment.size + line.len() as u64 > self.max_file_bytes
            && let Err(e) = self.rotate()
        {
            tracing::error!(path = %self.path.display(), error = %e, "cannot rotate the audit log");
        }
        match self.segment.out.write_all(&line) {
            Ok(()) => self.segment.size += line.len() as u64,
            Err(e) => {
                self.metrics.audit_write_error();
                tracing::error!(path = %self.path.display(), error = %e, "cannot write the audit log");
            }
        }
    }

    fn rotate(&mut self) -> Result<(), SecurityError> {
        let io = |op: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| SecurityError::Io { op, path, source }
        };
        self.segment.out.flush().map_err(io("flush", &self.path))?;
        self.segment.out.get_ref().sync_all().map_err(io("fsync", &self.path))?;
        let numbered = |n: u32| {
            let mut name = self.path.as_os_str().to_owned();
            name.push(format!(".{n}"));
            PathBuf::from(name)
        };
        if self.keep_files == 0 {
            std::fs::remove_file(&self.path).map_err(io("remove", &self.path))?;
        } else {
            let _ = std::fs::remove_file(numbered(self.keep_files));
            for n in (1..self.keep_files).rev() {
                let from = numbered(n);
                if from.exists() {
                    std::fs::rename(&from, numbered(n + 1)).map_err(io("rename", &from))?;
                }
            }
            std::fs::rename(&self.path, numbered(1)).map_err(io("rename", &self.path))?;
        }
        self.segment = Segment::open(&self.path)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::DecisionKind;

    fn record(i: usize) -> AuditRecord {
        let d = Decision {
            allowed: i.is_multiple_of(2),
            kind: DecisionKind::ViewRead,
            resource: format!("urn:city:unit:view{i}").into(),
            rule: "default unconstrained=authenticated".into(),
            reason: "authenticated caller".into(),
        };
        AuditRecord::new(&Principal::new("alice", crate::Source::LocalToken { issuer: "n".into() }), &d, false)
    }

    #[test]
    fn sync_waits_until_everything_queued_before_it_is_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("security.ndjson");
        let config = AuditConfig { path: None, max_file_bytes: 1 << 20, keep_files: 2, queue_capacity: 10_000 };
        let (log, writer) = AuditLog::start(&path, &config, SecurityMetrics::default()).unwrap();
        for i in 0..500 {
            log.record(record(i));
        }
        // The handles are still alive (as in a running node): sync, not finish.
        assert!(log.sync(std::time::Duration::from_secs(10)));
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        assert_eq!(lines, 500, "every record queued before the sync is written");
        drop(log);
        writer.finish().unwrap();
    }

    #[test]
    fn a_sync_without_a_writer_says_so() {
        let (tx, rx) = std::sync::mpsc::sync_channel(2);
        let log = AuditLog { tx, metrics: SecurityMetrics::default() };
        drop(rx);
        assert!(!log.sync(std::time::Duration::from_millis(50)));
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_waiting() {
        let metrics = SecurityMetrics::default();
        let (tx, rx) = std::sync::mpsc::sync_channel(2);
        let log = AuditLog { tx, metrics: metrics.clone() };
        for i in 0..5 {
            log.record(record(i));
        }
        assert_eq!(metrics.audit_dropped_total(), 3);
        assert_eq!(rx.try_iter().count(), 2);
    }

    #[test]
    fn the_log_rotates_by_size_and_keeps_n_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit").join("security.ndjson");
        let config = AuditConfig { path: None, max_file_bytes: 1024, keep_files: 2, queue_capacity: 10_000 };
        let metrics = SecurityMetrics::default();
        let (log, writer) = AuditLog::start(&path, &config, metrics.clone()).unwrap();
        for i in 0..200 {
            log.record(record(i));
        }
        drop(log);
        writer.finish().unwrap();
        assert_eq!(metrics.audit_dropped_total(), 0);
        let name = |suffix: &str| dir.path().join("audit").join(format!("security.ndjson{suffix}"));
        let mut last_index = None;
        for suffix in [".2", ".1", ""] {
            let text = std::fs::read_to_string(name(suffix)).unwrap();
            assert!(text.len() <= 1024, "{suffix}: {} bytes", text.len());
            for line in text.lines() {
                let r: AuditRecord = serde_json::from_str(line).unwrap();
                let i: usize = r.resource.trim_start_matches("urn:city:unit:view").parse().unwrap();
                assert!(last_index.is_none_or(|l| i == l + 1), "records stay in order across files");
                last_index = Some(i);
            }
        }
        assert_eq!(last_index, Some(199), "the newest record is in the current file");
        assert!(!name(".3").exists(), "only keep_files rotated files are kept");

        // Reopening appends to the current file.
        let lines = |p: &Path| std::fs::read_to_string(p).unwrap().lines().count();
        let before = lines(&path);
        let (log, writer) = AuditLog::start(&path, &config, metrics).unwrap();
        log.record(record(0));
        drop(log);
        writer.finish().unwrap();
        let after = lines(&path);
        assert!(after == before + 1 || (after == 1 && lines(&name(".1")) == before), "appended or rotated, never lost");
    }
}
