//! The embedded [`KvStore`] backend: one redb file per node.
//!
//! Layout of the file (see [`tables`]):
//! - a data table, key bytes -> `(create_revision, mod_revision, value)`;
//! - a meta table holding the current revision and how far the change log was
//!   compacted;
//! - a change log, `(revision, sequence within revision) -> (key, value or
//!   None for a delete)`, which serves the history part of `watch`.
//!
//! Writes go through one dedicated writer thread that group-commits: it drains
//! whatever transactions are queued, applies them in one redb write transaction
//! and pays for a single fsync for the whole batch (see [`writer`]). Reads run
//! on the caller's task against redb read transactions, which are snapshot
//! reads that never wait for the writer.

mod tables;
mod watch_stream;
mod writer;

use std::fmt;
use std::ops::Bound;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use redb::{Database, DatabaseError, ReadTransaction, ReadableDatabase};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::{KvEntry, KvError, KvStore, Op, Revision, Txn, TxnOutcome, WatchStream};
use tables::{DATA, META};
use writer::{Applied, RevisionEvents, WriteRequest, Writer};

/// Tuning knobs of a [`RedbStore`].
///
/// The defaults suit a catalog node; tests mostly shrink `history_revisions`
/// and `watch_buffer` to reach compaction and lag quickly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedbOptions {
    /// How many of the most recent revisions the change log keeps for `watch`.
    /// A watch starting at an older revision fails with
    /// [`KvError::Compacted`]. Default: 100,000.
    pub history_revisions: u64,
    /// Most write transactions the writer thread folds into one redb commit
    /// (one fsync). Larger batches amortise the fsync over more writes at the
    /// cost of latency for the first request in the batch. Default: 256.
    pub max_batch: usize,
    /// Capacity of the queue in front of the writer thread. When it is full,
    /// `txn` callers wait for room (backpressure) instead of queueing without
    /// bound. Default: 1024.
    pub queue_capacity: usize,
    /// How many committed revisions the live-change broadcast buffers for
    /// watchers. A watcher that falls further behind gets
    /// [`KvError::Lagged`]. Default: 4096.
    pub watch_buffer: usize,
    /// Memory redb may use for its page cache, in bytes. Default: 256 MiB.
    pub cache_size_bytes: usize,
    /// Verify every page checksum when opening, so that a file damaged outside
    /// redb is reported as an error at open rather than trusted. This reads the
    /// whole file, so it is off by default; a file that was only cut short by a
    /// crash is repaired by redb either way. Default: `false`.
    pub verify_integrity_on_open: bool,
}

impl Default for RedbOptions {
    fn default() -> Self {
        Self {
            history_revisions: 100_000,
            max_batch: 256,
            queue_capacity: 1024,
            watch_buffer: 4096,
            cache_size_bytes: 256 * 1024 * 1024,
            verify_integrity_on_open: false,
        }
    }
}

impl RedbOptions {
    /// Rejects values the channels underneath cannot work with (they panic on
    /// a zero capacity), so a bad configuration fails at open with a message.
    fn validate(&self) -> Result<(), String> {
        // tokio's broadcast channel panics above this capacity.
        const MAX_WATCH_BUFFER: usize = usize::MAX >> 1;
        if self.max_batch == 0 {
            return Err("max_batch must be at least 1".into());
        }
        if self.queue_capacity == 0 {
            return Err("queue_capacity must be at least 1".into());
        }
        if self.watch_buffer == 0 || self.watch_buffer > MAX_WATCH_BUFFER {
            return Err(format!("watch_buffer must be between 1 and {MAX_WATCH_BUFFER}"));
        }
        Ok(())
    }
}

/// A [`KvStore`] kept in one redb database file.
///
/// Cloning is cheap (a reference count); all clones share the database and its
/// writer thread. The writer thread finishes the queued work and exits when the
/// last clone is dropped or [`RedbStore::close`] is called.
///
/// ```
/// use civitas_catalog::kv::{KvStore, RedbOptions, RedbStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let store = RedbStore::open(&dir.path().join("catalog.redb"), RedbOptions::default())?;
///
/// let created = store.put(b"repos/alpha", b"v1").await?;
/// let updated = store.put(b"repos/alpha", b"v2").await?;
/// let entry = store.get(b"repos/alpha").await?.expect("just written");
/// assert_eq!(entry.value, b"v2");
/// assert_eq!((entry.create_revision, entry.mod_revision), (created, updated));
///
/// // Only succeeds if nobody wrote the key since `updated`.
/// assert!(store.compare_and_swap(b"repos/alpha", Some(updated), Some(b"v3")).await?.is_ok());
/// assert!(store.compare_and_swap(b"repos/alpha", Some(updated), Some(b"v4")).await?.is_err());
///
/// store.close().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedbStore {
    shared: Arc<Shared>,
}

/// State shared by every clone of a [`RedbStore`] (and, weakly, by watches).
struct Shared {
    path: PathBuf,
    db: Arc<Database>,
    /// Taken (dropped) on close: once the writer has seen every sender go, it
    /// drains the queue and exits.
    requests: Mutex<Option<mpsc::Sender<WriteRequest>>>,
    /// Kept only so new watches can subscribe; taken on close so that live
    /// watches end once the writer's own sender is gone too.
    events: Mutex<Option<broadcast::Sender<Arc<RevisionEvents>>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Flips to `true` (or is dropped) when the writer thread is done.
    writer_done: watch::Receiver<bool>,
    closed: AtomicBool,
}

/// Locks a mutex that only guards plain handles, ignoring poisoning: a panic
/// elsewhere cannot leave an `Option<Sender>` half-updated.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl RedbStore {
    /// Opens the redb database at `path`, creating the file (but not its
    /// directory) if it does not exist, and starts the writer thread.
    ///
    /// Fails with a [`KvError::Backend`] naming the path when the file cannot
    /// be opened: it is locked by another process (or another `RedbStore` in
    /// this one), it is not a redb file or is damaged, or the directory is
    /// missing or not writable.
    pub fn open(path: &Path, options: RedbOptions) -> Result<RedbStore, KvError> {
        let fail = |what: &dyn fmt::Display| {
            KvError::Backend(format!("cannot open catalog database {}: {what}", path.display()))
        };
        options.validate().map_err(|e| fail(&format!("invalid options: {e}")))?;

        let mut builder = redb::Builder::new();
        builder.set_cache_size(options.cache_size_bytes);
        builder.set_check_integrity_on_open(options.verify_integrity_on_open);
        // redb documents that opening a file damaged outside redb may panic
        // unless the integrity check is on; turn such a panic into an error
        // so a node reports the bad file instead of dying with a backtrace.
        let db = match std::panic::catch_unwind(AssertUnwindSafe(|| builder.create(path))) {
            Ok(Ok(db)) => db,
            Ok(Err(DatabaseError::DatabaseAlreadyOpen)) => {
                return Err(fail(
                    &"the file is locked: another process (or another store in this process) has it open",
                ));
            }
            Ok(Err(e)) => return Err(fail(&e)),
            Err(_) => return Err(fail(&"redb panicked while opening it; the file is probably corrupt")),
        };

        let (revision, compacted_through) = tables::initialize(&db).map_err(|e| fail(&e))?;
        let db = Arc::new(db);

        let (request_tx, request_rx) = mpsc::channel(options.queue_capacity);
        let (events_tx, _) = broadcast::channel(options.watch_buffer);
        let (done_tx, done_rx) = watch::channel(false);
        let writer = Writer::new(
            Arc::clone(&db),
            path.to_path_buf(),
            request_rx,
            events_tx.clone(),
            options.history_revisions,
            options.max_batch,
        );
        let handle = std::thread::Builder::new()
            .name("civitas-kv-writer".into())
            .spawn(move || {
                // Declared first so it is dropped last: waiters in `close`
                // are released only after the writer (and its database
                // handle) is gone, even if the writer panicked.
                let _done = DoneSignal(done_tx);
                writer.run();
            })
            .map_err(|e| fail(&format!("cannot start the writer thread: {e}")))?;

        tracing::info!(
            path = %path.display(),
            revision,
            oldest_history_revision = compacted_through + 1,
            "opened catalog store"
        );
        Ok(RedbStore {
            shared: Arc::new(Shared {
                path: path.to_path_buf(),
                db,
                requests: Mutex::new(Some(request_tx)),
                events: Mutex::new(Some(events_tx)),
                writer: Mutex::new(Some(handle)),
                writer_done: done_rx,
                closed: AtomicBool::new(false),
            }),
        })
    }

    /// The database file this store was opened on.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Stops accepting work and waits until the writer thread has committed
    /// (and acknowledged) everything already queued and exited.
    ///
    /// Afterwards every call on any clone returns [`KvError::Closed`] and live
    /// watches end. The file itself is unlocked when the last clone is dropped.
    /// Calling it more than once is harmless.
    pub async fn close(&self) {
        self.shared.shut_down();
        let mut done = self.shared.writer_done.clone();
        // An error means the writer dropped its end, which also means it is done.
        let _ = done.wait_for(|finished| *finished).await;
        // The thread has signalled on its way out, so this join is immediate.
        self.shared.join_writer();
    }

    /// Hands a transaction to the writer thread and waits for its outcome,
    /// which arrives only after the batch holding it was committed durably.
    ///
    /// If the caller stops waiting (the future is dropped) after the request
    /// was queued, the transaction may still be applied.
    async fn submit(&self, txn: Txn) -> Result<Applied, KvError> {
        let sender = lock(&self.shared.requests).clone().ok_or(KvError::Closed)?;
        let (reply, outcome) = oneshot::channel();
        // Backpressure: the queue is bounded, so when the writer falls behind
        // callers wait here for room instead of growing memory without limit;
        // the wait ends as soon as the writer drains a batch.
        sender.send(WriteRequest { txn, reply }).await.map_err(|_| KvError::Closed)?;
        drop(sender);
        outcome.await.map_err(|_| KvError::Closed)?
    }
}

impl fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.shared.path)
            .field("closed", &self.shared.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Marks the writer thread as finished when dropped.
struct DoneSignal(watch::Sender<bool>);

impl Drop for DoneSignal {
    fn drop(&mut self) {
        self.0.send_replace(true);
    }
}

impl Shared {
    /// Refuses new work and lets the writer wind down once queued work is done.
    fn shut_down(&self) {
        self.closed.store(true, Ordering::Release);
        drop(lock(&self.requests).take());
        drop(lock(&self.events).take());
    }

    fn join_writer(&self) {
        let handle = lock(&self.writer).take();
        if let Some(handle) = handle
            && handle.join().is_err()
        {
            tracing::error!(path = %self.path.display(), "catalog store writer thread panicked");
        }
    }

    fn ensure_open(&self) -> Result<(), KvError> {
        if self.closed.load(Ordering::Acquire) { Err(KvError::Closed) } else { Ok(()) }
    }

    fn backend(&self, what: &str, error: impl fmt::Display) -> KvError {
        KvError::Backend(format!("{} ({what}): {error}", self.path.display()))
    }

    fn read_txn(&self) -> Result<ReadTransaction, KvError> {
        self.ensure_open()?;
        self.db.begin_read().map_err(|e| self.backend("begin read", e))
    }

    /// A live-change receiver; taken before reading history so that nothing
    /// committed after the history snapshot can be missed.
    fn subscribe(&self) -> Result<broadcast::Receiver<Arc<RevisionEvents>>, KvError> {
        lock(&self.events).as_ref().map(broadcast::Sender::subscribe).ok_or(KvError::Closed)
    }

    fn get(&self, key: &[u8]) -> Result<Option<KvEntry>, KvError> {
        let rtx = self.read_txn()?;
        let data = rtx.open_table(DATA).map_err(|e| self.backend("open data table", e))?;
        let found = data.get(key).map_err(|e| self.backend("read key", e))?;
        found.map(|guard| tables::decode_entry(guard.value()).map_err(|e| self.backend("decode entry", e))).transpose()
    }

    fn scan_prefix(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, KvEntry)>, KvError> {
        self.ensure_open()?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let end = prefix_end(prefix);
        let lower = match start_after {
            Some(after) if after >= prefix => Bound::Excluded(after),
            // A cursor before the prefix skips nothing inside it.
            _ => Bound::Included(prefix),
        };
        let upper = match &end {
            Some(end) => Bound::Excluded(end.as_slice()),
            None => Bound::Unbounded,
        };
        // A cursor past the prefix leaves an empty (inverted) range; answer
        // it here rather than hand redb a lower bound above the upper one.
        if let (Bound::Excluded(after), Bound::Excluded(end)) = (lower, upper)
            && after >= end
        {
            return Ok(Vec::new());
        }

        let rtx = self.read_txn()?;
        let data = rtx.open_table(DATA).map_err(|e| self.backend("open data table", e))?;
        let range = data.range::<&[u8]>((lower, upper)).map_err(|e| self.backend("scan", e))?;
        let mut out = Vec::with_capacity(limit.min(1024));
        for item in range.take(limit) {
            let (key, value) = item.map_err(|e| self.backend("scan", e))?;
            let entry = tables::decode_entry(value.value()).map_err(|e| self.backend("decode entry", e))?;
            out.push((key.value().to_vec(), entry));
        }
        Ok(out)
    }

    fn current_revision(&self) -> Result<Revision, KvError> {
        let rtx = self.read_txn()?;
        let meta = rtx.open_table(META).map_err(|e| self.backend("open meta table", e))?;
        tables::read_meta(&meta, tables::REVISION_KEY).map_err(|e| self.backend("read revision", e))
    }
}

impl Drop for Shared {
    /// The last handle is gone: let the writer commit what is still queued
    /// (requests whose callers stopped waiting) and wait for it, so the file
    /// is unlocked when the drop returns and can be reopened at once. This
    /// blocks for at most the few commits still queued; call
    /// [`RedbStore::close`] first to do that wait asynchronously.
    fn drop(&mut self) {
        self.shut_down();
        self.join_writer();
    }
}

/// The smallest key greater than every key starting with `prefix`, or `None`
/// when no such key exists (empty prefix or all `0xff`).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[async_trait::async_trait]
impl KvStore for RedbStore {
    async fn get(&self, key: &[u8]) -> Result<Option<KvEntry>, KvError> {
        self.shared.get(key)
    }

    async fn scan_prefix(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, KvEntry)>, KvError> {
        self.shared.scan_prefix(prefix, start_after, limit)
    }

    async fn txn(&self, txn: Txn) -> Result<TxnOutcome, KvError> {
        Ok(self.submit(txn).await?.outcome)
    }

    async fn delete(&self, key: &[u8]) -> Result<Option<Revision>, KvError> {
        let applied = self.submit(Txn { compares: vec![], ops: vec![Op::Delete(key.to_vec())] }).await?;
        match applied.outcome {
            TxnOutcome::Committed(revision) if applied.changed => Ok(Some(revision)),
            TxnOutcome::Committed(_) => Ok(None),
            TxnOutcome::CompareFailed(_) => {
                Err(KvError::Backend("a transaction without compares reported a failed compare".into()))
            }
        }
    }

    async fn current_revision(&self) -> Result<Revision, KvError> {
        self.shared.current_revision()
    }

    /// See [`KvStore::watch`]. A start revision that was already compacted
    /// is reported by this call itself as [`KvError::Compacted`], except that
    /// `0` and `1` mean "from the oldest revision still kept". History older
    /// than the start that is compacted while the watch is still replaying
    /// it ends the stream with `Compacted` instead.
    async fn watch(&self, prefix: &[u8], from_revision: Revision) -> Result<WatchStream, KvError> {
        watch_stream::open(&self.shared, prefix, from_revision)
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_end_skips_trailing_max_bytes() {
        assert_eq!(prefix_end(b"a/"), Some(b"a0".to_vec()));
        assert_eq!(prefix_end(&[b'a', 0xff, 0xff]), Some(b"b".to_vec()));
        assert_eq!(prefix_end(&[0xff]), None);
        assert_eq!(prefix_end(b""), None);
    }
}
