//! The writer thread: group commit of queued transactions.
//!
//! An fsync costs milliseconds while applying a transaction costs
//! microseconds, so the writer applies every transaction that is already
//! queued inside one redb write transaction and pays for one fsync for all of
//! them. It runs on its own OS thread because a commit blocks in `fsync`,
//! which must not stall a tokio worker.

use std::path::PathBuf;
use std::sync::Arc;

use redb::{Database, Durability, ReadableTable, Table};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::tables::{self, COMPACTED_KEY, DATA, LOG, LogKey, LogValue, META, REVISION_KEY};
use crate::kv::{Compare, KvError, KvEvent, Op, Revision, Txn, TxnOutcome};

/// Fewest change-log entries a commit removes when compaction is behind, so a
/// backlog (for example after `history_revisions` was lowered) drains even
/// under a trickle of small writes.
const MIN_COMPACTION_PER_COMMIT: usize = 64;

/// One queued transaction and where its outcome goes.
pub(super) struct WriteRequest {
    pub(super) txn: Txn,
    pub(super) reply: oneshot::Sender<Result<Applied, KvError>>,
}

/// What the writer did with one transaction.
#[derive(Debug)]
pub(super) struct Applied {
    pub(super) outcome: TxnOutcome,
    /// Whether the transaction got a new revision (`delete` needs to tell an
    /// absent key from a deleted one; both commit at "a" revision).
    pub(super) changed: bool,
}

/// Every change of one committed revision, as broadcast to live watches.
/// Broadcasting whole revisions lets a lagging watcher resume exactly at the
/// first revision it has not fully seen.
#[derive(Debug)]
pub(super) struct RevisionEvents {
    pub(super) revision: Revision,
    pub(super) events: Vec<KvEvent>,
}

/// Why a batch could not be committed as a whole.
enum BatchError {
    /// Applying the request at this index failed (e.g. a value redb refuses);
    /// only that request fails, the rest of the batch is retried without it.
    Request(usize, String),
    /// The write transaction itself failed; every request in the batch fails.
    Fatal(String),
}

/// A committed batch: one outcome per request, in order, and its revisions.
struct BatchOutput {
    outcomes: Vec<Applied>,
    revisions: Vec<RevisionEvents>,
}

/// Owns the write path; see the module docs.
pub(super) struct Writer {
    db: Arc<Database>,
    path: PathBuf,
    requests: mpsc::Receiver<WriteRequest>,
    events: broadcast::Sender<Arc<RevisionEvents>>,
    history_revisions: u64,
    max_batch: usize,
}

impl Writer {
    pub(super) fn new(
        db: Arc<Database>,
        path: PathBuf,
        requests: mpsc::Receiver<WriteRequest>,
        events: broadcast::Sender<Arc<RevisionEvents>>,
        history_revisions: u64,
        max_batch: usize,
    ) -> Self {
        Self { db, path, requests, events, history_revisions, max_batch }
    }

    /// Serves batches until every request sender is gone and the queue is
    /// empty, so work queued before a shutdown is still committed.
    pub(super) fn run(mut self) {
        let mut batch = Vec::with_capacity(self.max_batch);
        while let Some(first) = self.requests.blocking_recv() {
            batch.push(first);
            // Take only what is already queued: waiting for more would add
            // latency, and whatever arrives during this commit's fsync forms
            // the next batch anyway.
            while batch.len() < self.max_batch {
                match self.requests.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            self.process(&mut batch);
        }
        tracing::debug!(path = %self.path.display(), "catalog store writer stopped");
    }

    /// Commits `batch` and answers every request in it, leaving it empty.
    fn process(&self, batch: &mut Vec<WriteRequest>) {
        while !batch.is_empty() {
            match self.apply(batch) {
                Ok(output) => {
                    tracing::trace!(requests = batch.len(), revisions = output.revisions.len(), "committed batch");
                    for revision in output.revisions {
                        // An error only means that no watch is listening.
                        let _ = self.events.send(Arc::new(revision));
                    }
                    for (request, applied) in batch.drain(..).zip(output.outcomes) {
                        // The caller may have stopped waiting; the write stands.
                        let _ = request.reply.send(Ok(applied));
                    }
                }
                Err(BatchError::Request(index, error)) => {
                    tracing::warn!(path = %self.path.display(), %error, "catalog transaction rejected");
                    let request = batch.remove(index);
                    let _ = request.reply.send(Err(KvError::Backend(format!("{}: {error}", self.path.display()))));
                }
                Err(BatchError::Fatal(error)) => {
                    tracing::error!(path = %self.path.display(), %error, requests = batch.len(), "catalog commit failed");
                    for request in batch.drain(..) {
                        let _ = request.reply.send(Err(KvError::Backend(format!("{}: {error}", self.path.display()))));
                    }
                }
            }
        }
    }

    /// Applies `batch` in one write transaction and commits it durably.
    ///
    /// Requests are applied in order, each against the state left by the ones
    /// before it, so compares see earlier writes of the same batch.
    fn apply(&self, batch: &[WriteRequest]) -> Result<BatchOutput, BatchError> {
        let mut wtx = self.db.begin_write().map_err(|e| fatal("begin write transaction", e))?;
        // The default already, but acknowledging a write promises it survives
        // a crash, so say it explicitly.
        wtx.set_durability(Durability::Immediate).map_err(|e| fatal("set durability", e))?;

        let mut outcomes = Vec::with_capacity(batch.len());
        let mut revisions = Vec::new();
        {
            let mut data = wtx.open_table(DATA).map_err(|e| fatal("open data table", e))?;
            let mut log = wtx.open_table(LOG).map_err(|e| fatal("open change log", e))?;
            let mut meta = wtx.open_table(META).map_err(|e| fatal("open meta table", e))?;
            // Read from the file on every batch rather than cached, so a batch
            // that failed to commit leaves nothing stale behind.
            let base = tables::read_meta(&meta, REVISION_KEY).map_err(|e| fatal("read revision", e))?;
            let mut revision = base;
            let mut logged = 0usize;

            for (index, request) in batch.iter().enumerate() {
                let rejected = |e: String| BatchError::Request(index, e);
                if let Some(failed) = first_failed_compare(&data, &request.txn.compares).map_err(rejected)? {
                    outcomes.push(Applied { outcome: TxnOutcome::CompareFailed(failed), changed: false });
                    continue;
                }
                let next = revision + 1;
                let events = apply_ops(&mut data, &request.txn.ops, next).map_err(rejected)?;
                if events.is_empty() {
                    // Nothing changed (no ops, or deletes of absent keys):
                    // no revision is spent and no event is emitted.
                    outcomes.push(Applied { outcome: TxnOutcome::Committed(revision), changed: false });
                    continue;
                }
                for (sequence, event) in events.iter().enumerate() {
                    let sequence = u32::try_from(sequence).map_err(|_| rejected("too many ops in one txn".into()))?;
                    log.insert((next, sequence), (event.key.as_slice(), event.value.as_deref()))
                        .map_err(|e| rejected(format!("append to change log: {e}")))?;
                }
                logged += events.len();
                revision = next;
                outcomes.push(Applied { outcome: TxnOutcome::Committed(next), changed: true });
                revisions.push(RevisionEvents { revision: next, events });
            }

            if revision != base {
                meta.insert(REVISION_KEY, revision).map_err(|e| fatal("write revision", e))?;
                self.compact(&mut log, &mut meta, revision, logged).map_err(|e| fatal("compact change log", e))?;
            }
        }

        if revisions.is_empty() {
            // Only reads and no-ops: there is nothing to make durable, so skip
            // the fsync. Their outcomes only refer to already durable state.
            if let Err(e) = wtx.abort() {
                tracing::warn!(path = %self.path.display(), error = %e, "aborting a read-only batch failed");
            }
        } else {
            wtx.commit().map_err(|e| {
                // redb: after a failed commit the changes may or may not have
                // become durable, so the callers cannot be told "not written".
                BatchError::Fatal(format!("commit failed, the write may or may not be durable: {e}"))
            })?;
        }
        Ok(BatchOutput { outcomes, revisions })
    }

    /// Keeps the change log to the last `history_revisions` revisions.
    ///
    /// The compaction point moves at once (watches stop serving older
    /// revisions), but entries are physically removed only a few at a time,
    /// about twice as many as this commit added, so the cost of compaction is
    /// spread over commits instead of stalling one of them.
    fn compact(
        &self,
        log: &mut Table<LogKey, LogValue>,
        meta: &mut Table<&str, u64>,
        revision: Revision,
        logged: usize,
    ) -> Result<(), redb::StorageError> {
        let target = revision.saturating_sub(self.history_revisions);
        let mut compacted = tables::read_meta(meta, COMPACTED_KEY)?;
        if target > compacted {
            compacted = target;
            meta.insert(COMPACTED_KEY, compacted)?;
        }
        let budget = MIN_COMPACTION_PER_COMMIT.max(logged.saturating_mul(2));
        for _ in 0..budget {
            let oldest = log.first()?.map(|(key, _)| key.value().0);
            match oldest {
                Some(oldest) if oldest <= compacted => {
                    log.pop_first()?;
                }
                _ => break,
            }
        }
        Ok(())
    }
}

fn fatal(what: &str, error: impl std::fmt::Display) -> BatchError {
    BatchError::Fatal(format!("{what}: {error}"))
}

/// Index of the first compare that does not hold, if any.
fn first_failed_compare(data: &Table<&[u8], &[u8]>, compares: &[Compare]) -> Result<Option<usize>, String> {
    for (index, compare) in compares.iter().enumerate() {
        let holds = match compare {
            Compare::Absent(key) => data.get(key.as_slice()).map_err(|e| e.to_string())?.is_none(),
            Compare::ModRevision(key, expected) => match data.get(key.as_slice()).map_err(|e| e.to_string())? {
                Some(guard) => tables::decode_revisions(guard.value())?.1 == *expected,
                None => false,
            },
        };
        if !holds {
            return Ok(Some(index));
        }
    }
    Ok(None)
}

/// Applies `ops` at `revision` and returns the changes they made, in order;
/// deletes of absent keys change nothing and produce no event.
fn apply_ops(data: &mut Table<&[u8], &[u8]>, ops: &[Op], revision: Revision) -> Result<Vec<KvEvent>, String> {
    let mut events = Vec::with_capacity(ops.len());
    for op in ops {
        match op {
            Op::Put(key, value) => {
                // An existing key keeps its creation revision; a new (or
                // deleted and re-created) one is created now.
                let create_revision = match data.get(key.as_slice()).map_err(|e| e.to_string())? {
                    Some(guard) => tables::decode_revisions(guard.value())?.0,
                    None => revision,
                };
                let encoded = tables::encode_entry(value, create_revision, revision);
                data.insert(key.as_slice(), encoded.as_slice()).map_err(|e| format!("write key: {e}"))?;
                events.push(KvEvent { revision, key: key.clone(), value: Some(value.clone()) });
            }
            Op::Delete(key) => {
                if data.remove(key.as_slice()).map_err(|e| format!("delete key: {e}"))?.is_some() {
                    events.push(KvEvent { revision, key: key.clone(), value: None });
                }
            }
        }
    }
    Ok(events)
}
