//! The ledger: open, append, read, prove, checkpoint, serve tiles.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

use crate::checkpoint::SignedCheckpoint;
use crate::entry::Entry;
use crate::error::LedgerError;
use crate::merkle::{Hash, NodeSource, consistency_path, inclusion_path, leaf_hash, root_of};
use crate::note::NoteSigner;
use crate::proof::{ConsistencyProof, InclusionProof};
use crate::store::{self, Store};
use crate::tiles::{TILE_HEIGHT, TILE_WIDTH, TilePath};
use crate::writer::{Prepared, Request, Writer};

/// Entries above which [`Ledger::append_batch`] serialises and hashes on a blocking thread.
const INLINE_PREPARE_MAX: usize = 64;

/// How a ledger is opened.
#[derive(Debug, Clone)]
pub struct LedgerOptions {
    /// The log's identity, the checkpoint origin: `civitas.city/ledger/<node-name>`. The
    /// directory is bound to it at its first checkpoint; opening it under another origin is
    /// refused.
    pub origin: String,
    /// Most entries one group commit takes (default 65,536).
    pub max_batch_entries: usize,
    /// Most record bytes one group commit takes (default 32 MiB); a single larger
    /// `append_batch` still commits whole.
    pub max_batch_bytes: usize,
    /// Requests that may wait for the writer (default 16,384). When it is full, appenders
    /// wait for room: appends are never dropped.
    pub queue_capacity: usize,
}

impl LedgerOptions {
    /// Defaults for the log named `origin`.
    pub fn new(origin: impl Into<String>) -> LedgerOptions {
        LedgerOptions {
            origin: origin.into(),
            max_batch_entries: 65_536,
            max_batch_bytes: 32 << 20,
            queue_capacity: 16_384,
        }
    }
}

/// An append-only, verifiable log of [`Entry`]s in a directory. See the crate docs.
///
/// Reads (`get`, proofs, tiles) are short positioned reads that run on the caller's thread;
/// appends and checkpoints go through the writer thread and are awaited.
pub struct Ledger {
    store: Arc<Store>,
    origin: String,
    requests: Option<mpsc::Sender<Request>>,
    writer: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("dir", &self.store.dir)
            .field("origin", &self.origin)
            .field("size", &self.size())
            .finish()
    }
}

impl Ledger {
    /// Opens (or creates) the ledger in `dir`. Every record is checked and every stored
    /// hash recomputed from the entries; a torn tail (an interrupted, never acknowledged
    /// write) is cut off; missing or altered acknowledged data is refused with an error.
    /// Blocks for the verification (seconds for millions of entries): call it before
    /// serving, or from a blocking context.
    pub fn open(dir: impl AsRef<Path>, options: LedgerOptions) -> Result<Ledger, LedgerError> {
        crate::note::check_name(&options.origin)?;
        let dir = dir.as_ref();
        let opened = store::open(dir, &options.origin)?;
        let (tx, rx) = mpsc::channel(options.queue_capacity.max(1));
        let writer = Writer::new(
            Arc::clone(&opened.store),
            opened.files,
            options.origin.clone(),
            opened.end,
            opened.frontier,
            rx,
            options.max_batch_entries,
            options.max_batch_bytes,
        );
        let handle = std::thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || writer.run())
            .map_err(|source| LedgerError::Io { op: "start the writer thread for", path: dir.to_path_buf(), source })?;
        Ok(Ledger { store: opened.store, origin: options.origin, requests: Some(tx), writer: Some(handle) })
    }

    /// The log's origin.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The ledger directory.
    pub fn dir(&self) -> &Path {
        &self.store.dir
    }

    /// Number of acknowledged entries.
    pub fn size(&self) -> u64 {
        self.store.size()
    }

    /// Appends one entry; returns its index once it is on disk.
    pub async fn append(&self, entry: Entry) -> Result<u64, LedgerError> {
        let prepared = prepare(&entry)?;
        Ok(self.submit(vec![prepared]).await?.start)
    }

    /// Appends entries as one unit (consecutive indexes, one commit); returns their
    /// indexes once they are on disk. An empty batch returns an empty range at the end.
    pub async fn append_batch(&self, entries: Vec<Entry>) -> Result<Range<u64>, LedgerError> {
        if entries.is_empty() {
            let size = self.size();
            return Ok(size..size);
        }
        let prepared = if entries.len() > INLINE_PREPARE_MAX && tokio::runtime::Handle::try_current().is_ok() {
            tokio::task::spawn_blocking(move || entries.iter().map(prepare).collect::<Result<Vec<_>, _>>())
                .await
                .map_err(|e| LedgerError::InvalidRequest(format!("preparing entries failed: {e}")))??
        } else {
            entries.iter().map(prepare).collect::<Result<Vec<_>, _>>()?
        };
        self.submit(prepared).await
    }

    async fn submit(&self, entries: Vec<Prepared>) -> Result<Range<u64>, LedgerError> {
        let (reply, answer) = oneshot::channel();
        let requests = self.requests.as_ref().ok_or(LedgerError::Closed)?;
        requests.send(Request::Append { entries, reply }).await.map_err(|_| LedgerError::Closed)?;
        answer.await.map_err(|_| LedgerError::Closed)?
    }

    fn check_index(&self, index: u64) -> Result<u64, LedgerError> {
        let size = self.size();
        if index >= size {
            return Err(LedgerError::NotFound { index, size });
        }
        Ok(size)
    }

    fn check_size(&self, size: u64) -> Result<(), LedgerError> {
        let current = self.size();
        if size > current {
            return Err(LedgerError::InvalidRequest(format!("tree size {size} is beyond the ledger's size {current}")));
        }
        Ok(())
    }

    /// The canonical bytes of entry `index`, checked against their record checksum.
    pub fn get_canonical(&self, index: u64) -> Result<Vec<u8>, LedgerError> {
        self.check_index(index)?;
        self.store.read_entry(index)
    }

    /// Entry `index`.
    pub fn get(&self, index: u64) -> Result<Entry, LedgerError> {
        let bytes = self.get_canonical(index)?;
        Entry::from_json(&bytes).map_err(|e| LedgerError::Corrupt {
            path: self.store.dir.join(store::LOG_FILE),
            detail: format!("entry {index} is not a valid entry: {e}"),
        })
    }

    /// The leaf hash of entry `index`.
    pub fn leaf_hash(&self, index: u64) -> Result<Hash, LedgerError> {
        self.check_index(index)?;
        self.store.node(0, index)
    }

    /// The root hash of the first `size` entries.
    pub fn root(&self, size: u64) -> Result<Hash, LedgerError> {
        self.check_size(size)?;
        root_of(&*self.store, size)
    }

    /// The inclusion proof of entry `index` in the tree of `size` entries (O(log n) reads).
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<InclusionProof, LedgerError> {
        self.check_size(size)?;
        if index >= size {
            return Err(LedgerError::InvalidRequest(format!("entry {index} is not in a tree of size {size}")));
        }
        let hashes = inclusion_path(&*self.store, index, size)?;
        Ok(InclusionProof { index, tree_size: size, leaf_hash: self.store.node(0, index)?, hashes })
    }

    /// The consistency proof from the tree of `old` entries to the tree of `new`.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<ConsistencyProof, LedgerError> {
        self.check_size(new)?;
        if old > new {
            return Err(LedgerError::InvalidRequest(format!(
                "a consistency proof goes from a smaller tree to a larger one, not from {old} to {new}"
            )));
        }
        Ok(ConsistencyProof { old_size: old, new_size: new, hashes: consistency_path(&*self.store, old, new)? })
    }

    /// The latest signed checkpoint, if one was ever made (no I/O).
    pub fn latest_checkpoint(&self) -> Option<SignedCheckpoint> {
        self.store.latest.read().expect("checkpoint lock poisoned").as_deref().cloned()
    }

    /// A checkpoint of the current tree signed by `signer` (whose name must be the origin):
    /// the latest one if the tree has not grown since, otherwise a new one, durably recorded
    /// before it is returned (it is what open checks the entries against after a crash).
    pub async fn checkpoint(&self, signer: &NoteSigner) -> Result<SignedCheckpoint, LedgerError> {
        if let Some(latest) = self.store.latest.read().expect("checkpoint lock poisoned").as_ref()
            && latest.checkpoint().size == self.size()
            && latest.checkpoint().origin == signer.name()
            && latest.note().signatures().iter().any(|s| s.name == signer.name() && s.key_id == signer.key_id())
        {
            return Ok((**latest).clone());
        }
        let (reply, answer) = oneshot::channel();
        let requests = self.requests.as_ref().ok_or(LedgerError::Closed)?;
        requests
            .send(Request::Checkpoint { signer: Box::new(signer.clone()), reply })
            .await
            .map_err(|_| LedgerError::Closed)?;
        answer.await.map_err(|_| LedgerError::Closed)?
    }

    /// A tlog-tiles hash tile: `width` (1..=256) hashes of tree level `8 · level`, starting
    /// at hash `256 · index`. Served only if every hash exists at the current size.
    pub fn tile(&self, level: u8, index: u64, width: u16) -> Result<Vec<u8>, LedgerError> {
        let tree_level = u32::from(level) * u32::from(TILE_HEIGHT);
        if !(1..=256).contains(&width) || tree_level >= 64 {
            return Err(LedgerError::InvalidRequest(format!("no tile of level {level} and width {width}")));
        }
        let size = self.size();
        let available = size >> tree_level;
        let start = index.checked_mul(TILE_WIDTH).filter(|s| s + u64::from(width) <= available).ok_or_else(|| {
            LedgerError::TileNotFound { path: TilePath::Hashes { level, index, width }.to_string(), size }
        })?;
        self.store.read_hashes(tree_level as u8, start, u64::from(width))
    }

    /// A tlog-tiles entry bundle: entries `256 · index ..` (`width` of them), each prefixed
    /// with its length as a big-endian `u16`.
    pub fn entries_bundle(&self, index: u64, width: u16) -> Result<Vec<u8>, LedgerError> {
        if !(1..=256).contains(&width) {
            return Err(LedgerError::InvalidRequest(format!("no entry bundle of width {width}")));
        }
        let size = self.size();
        let start = index
            .checked_mul(TILE_WIDTH)
            .filter(|s| s + u64::from(width) <= size)
            .ok_or_else(|| LedgerError::TileNotFound { path: TilePath::Entries { index, width }.to_string(), size })?;
        self.store.read_bundle(start, u64::from(width))
    }

    /// Reads the resource a tile path names.
    pub fn read_tile(&self, path: &TilePath) -> Result<Vec<u8>, LedgerError> {
        match *path {
            TilePath::Hashes { level, index, width } => self.tile(level, index, width),
            TilePath::Entries { index, width } => self.entries_bundle(index, width),
        }
    }

    /// Stops accepting appends, lets the writer commit what is queued, and waits for it
    /// (on a blocking thread when inside a runtime).
    pub async fn close(mut self) {
        self.requests = None;
        if let Some(handle) = self.writer.take() {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
    }
}

impl Drop for Ledger {
    /// Closes the queue and waits for the writer to commit what was queued (at most one
    /// batch): after drop, the directory can be reopened.
    fn drop(&mut self) {
        self.requests = None;
        if let Some(handle) = self.writer.take() {
            let _ = handle.join();
        }
    }
}

fn prepare(entry: &Entry) -> Result<Prepared, LedgerError> {
    let bytes = entry.to_canonical()?;
    let leaf = leaf_hash(&bytes);
    Ok(Prepared { bytes, leaf })
}
