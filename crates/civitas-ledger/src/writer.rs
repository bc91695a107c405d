//! The writer thread: group commit of queued appends, and checkpoint signing.
//!
//! An fsync costs far more than writing a few thousand records, so the writer takes every
//! request already queued (up to the batch limits), writes all their records with one
//! positioned write, and pays for one `fdatasync` for all of them. Only then are the derived
//! files (offsets, stored hashes) written, the in-memory tree extended, the new size
//! published to readers, and the callers answered. It runs on its own OS thread so that a
//! commit blocked in `fsync` never stalls a tokio worker.
//!
//! A failed write is cut off again and reported to its callers; a failed `fsync` leaves the
//! file's state unknown, so the writer refuses every later append (reopening the ledger
//! re-verifies the files and recovers).

use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::{mpsc, oneshot};

use crate::checkpoint::{Checkpoint, SignedCheckpoint};
use crate::error::LedgerError;
use crate::merkle::{Frontier, Hash};
use crate::note::NoteSigner;
use crate::store::{
    CHECKPOINT_FILE, CHECKPOINT_TMP, DISK_LEVELS, HEADER_LEN, IDX_FILE, LOG_FILE, Store, WriteFiles, encode_header,
    io_error, level_path, sync_dir,
};

/// An entry ready to be written: canonical bytes and their leaf hash (computed by the
/// caller, so hashing runs in parallel with the writer).
pub(crate) struct Prepared {
    pub(crate) bytes: Vec<u8>,
    pub(crate) leaf: Hash,
}

/// Where an append's outcome goes.
pub(crate) type AppendReply = oneshot::Sender<Result<Range<u64>, LedgerError>>;

/// A queued request.
pub(crate) enum Request {
    Append { entries: Vec<Prepared>, reply: AppendReply },
    Checkpoint { signer: Box<NoteSigner>, reply: oneshot::Sender<Result<SignedCheckpoint, LedgerError>> },
}

pub(crate) struct Writer {
    store: Arc<Store>,
    files: WriteFiles,
    origin: String,
    end: u64,
    size: u64,
    frontier: Frontier,
    requests: mpsc::Receiver<Request>,
    max_batch_entries: usize,
    max_batch_bytes: usize,
    failed: Option<String>,
    record_buf: Vec<u8>,
    idx_buf: Vec<u8>,
    level_bufs: Vec<Vec<u8>>,
    memory_new: Vec<Vec<Hash>>,
}

impl Writer {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        store: Arc<Store>,
        files: WriteFiles,
        origin: String,
        end: u64,
        frontier: Frontier,
        requests: mpsc::Receiver<Request>,
        max_batch_entries: usize,
        max_batch_bytes: usize,
    ) -> Writer {
        let size = frontier.size();
        Writer {
            store,
            files,
            origin,
            end,
            size,
            frontier,
            requests,
            max_batch_entries: max_batch_entries.max(1),
            max_batch_bytes: max_batch_bytes.max(1),
            failed: None,
            record_buf: Vec::new(),
            idx_buf: Vec::new(),
            level_bufs: vec![Vec::new(); usize::from(DISK_LEVELS)],
            memory_new: Vec::new(),
        }
    }

    /// Serves requests until every sender is gone and the queue is empty, so work queued
    /// before a shutdown is still committed.
    pub(crate) fn run(mut self) {
        let mut appends: Vec<(Vec<Prepared>, AppendReply)> = Vec::new();
        let mut checkpoints = Vec::new();
        while let Some(first) = self.requests.blocking_recv() {
            let mut entries = 0usize;
            let mut bytes = 0usize;
            let mut take = |request: Request, entries: &mut usize, bytes: &mut usize| match request {
                Request::Append { entries: e, reply } => {
                    *entries += e.len();
                    *bytes += e.iter().map(|p| p.bytes.len() + HEADER_LEN).sum::<usize>();
                    appends.push((e, reply));
                }
                Request::Checkpoint { signer, reply } => checkpoints.push((signer, reply)),
            };
            take(first, &mut entries, &mut bytes);
            // Only what is already queued: waiting for more would add latency, and whatever
            // arrives during this commit's fsync forms the next batch anyway.
            while entries < self.max_batch_entries && bytes < self.max_batch_bytes {
                match self.requests.try_recv() {
                    Ok(request) => take(request, &mut entries, &mut bytes),
                    Err(_) => break,
                }
            }
            if !appends.is_empty() {
                self.commit(&mut appends);
            }
            for (signer, reply) in checkpoints.drain(..) {
                let _ = reply.send(self.checkpoint(&signer));
            }
        }
        tracing::debug!(dir = %self.store.dir.display(), "ledger writer stopped");
    }

    /// Writes, syncs and publishes one group of appends, answering every caller.
    fn commit(&mut self, appends: &mut Vec<(Vec<Prepared>, AppendReply)>) {
        if let Some(reason) = &self.failed {
            for (_, reply) in appends.drain(..) {
                let _ = reply.send(Err(LedgerError::Failed(reason.clone())));
            }
            return;
        }
        let first_index = self.size;
        let saved_frontier = self.frontier.clone();
        self.record_buf.clear();
        self.idx_buf.clear();
        for b in &mut self.level_bufs {
            b.clear();
        }
        for m in &mut self.memory_new {
            m.clear();
        }
        // The first node index written at each disk level by this batch.
        let mut level_starts = [u64::MAX; DISK_LEVELS as usize];
        let mut index = first_index;
        let mut batch_pos = 0u32;
        let mut ranges = Vec::with_capacity(appends.len());
        for (entries, _) in appends.iter() {
            let start = index;
            for prepared in entries {
                let offset = self.end + self.record_buf.len() as u64;
                let len = prepared.bytes.len() as u32;
                encode_header(&mut self.record_buf, index, len, batch_pos, &prepared.leaf);
                self.record_buf.extend_from_slice(&prepared.bytes);
                self.idx_buf.extend_from_slice(&(offset << 16 | u64::from(len)).to_le_bytes());
                let level_bufs = &mut self.level_bufs;
                let memory_new = &mut self.memory_new;
                self.frontier.push(prepared.leaf, |level, node_index, hash| {
                    if level < DISK_LEVELS {
                        let l = usize::from(level);
                        if level_starts[l] == u64::MAX {
                            level_starts[l] = node_index;
                        }
                        level_bufs[l].extend_from_slice(&hash.0);
                    } else {
                        let l = usize::from(level - DISK_LEVELS);
                        if memory_new.len() <= l {
                            memory_new.resize_with(l + 1, Vec::new);
                        }
                        memory_new[l].push(*hash);
                    }
                });
                index += 1;
                batch_pos = batch_pos.wrapping_add(1);
            }
            ranges.push(start..index);
        }
        let new_size = index;

        // 1. The entries, durably.
        let log_path = self.store.dir.join(LOG_FILE);
        let written = self.files.log.write_all_at(&self.record_buf, self.end);
        if let Err(e) = written {
            let error = format!("writing {} entries to {}: {e}", new_size - first_index, log_path.display());
            tracing::error!(dir = %self.store.dir.display(), %error, "ledger append failed");
            self.frontier = saved_frontier;
            if let Err(cut) = self.files.log.set_len(self.end) {
                self.failed = Some(format!("{error}; cutting the partial write off failed too: {cut}"));
            }
            for (_, reply) in appends.drain(..) {
                let _ = reply.send(Err(LedgerError::Io {
                    op: "append to",
                    path: log_path.clone(),
                    source: std::io::Error::new(e.kind(), e.to_string()),
                }));
            }
            return;
        }
        if let Err(e) = self.files.log.sync_data() {
            // After a failed fsync the kernel may have dropped the dirty pages: nothing
            // about the file can be trusted until it is reopened and verified.
            let error = format!("fsync of {} failed: {e}", log_path.display());
            tracing::error!(dir = %self.store.dir.display(), %error, "ledger append failed; refusing further appends");
            self.frontier = saved_frontier;
            self.failed = Some(error.clone());
            for (_, reply) in appends.drain(..) {
                let _ = reply.send(Err(LedgerError::Failed(error.clone())));
            }
            return;
        }
        self.end += self.record_buf.len() as u64;

        // 2. Derived files (rebuilt at open if a crash loses them) and the in-memory levels.
        if let Err(error) = self.write_derived(first_index, &level_starts) {
            let error = format!("{error} (the entries are durable; reopening the ledger rebuilds the derived files)");
            tracing::error!(dir = %self.store.dir.display(), %error, "ledger append failed; refusing further appends");
            self.failed = Some(error.clone());
            for (_, reply) in appends.drain(..) {
                let _ = reply.send(Err(LedgerError::Failed(error.clone())));
            }
            return;
        }
        {
            let mut memory = self.store.memory.write().expect("tree lock poisoned");
            for (l, new) in self.memory_new.iter().enumerate() {
                if new.is_empty() {
                    continue;
                }
                if memory.len() <= l {
                    memory.resize_with(l + 1, Vec::new);
                }
                memory[l].extend_from_slice(new);
            }
        }

        // 3. Publish, then acknowledge.
        self.size = new_size;
        self.store.size.store(new_size, Ordering::Release);
        tracing::trace!(
            entries = new_size - first_index,
            requests = appends.len(),
            size = new_size,
            "ledger batch committed"
        );
        for ((_, reply), range) in appends.drain(..).zip(ranges) {
            // The caller may have stopped waiting; the entries stand.
            let _ = reply.send(Ok(range));
        }
    }

    fn write_derived(&self, first_index: u64, level_starts: &[u64]) -> Result<(), LedgerError> {
        let dir = &self.store.dir;
        self.files.idx.write_all_at(&self.idx_buf, first_index * 8).map_err(io_error("write", &dir.join(IDX_FILE)))?;
        for (level, buf) in self.level_bufs.iter().enumerate() {
            if buf.is_empty() {
                continue;
            }
            let file: &File = &self.files.levels[level];
            file.write_all_at(buf, level_starts[level] * 32)
                .map_err(io_error("write", &level_path(dir, level as u8)))?;
        }
        Ok(())
    }

    /// Signs (and durably records) a checkpoint of the current tree, or returns the latest
    /// one when nothing changed since.
    fn checkpoint(&self, signer: &NoteSigner) -> Result<SignedCheckpoint, LedgerError> {
        if let Some(reason) = &self.failed {
            return Err(LedgerError::Failed(reason.clone()));
        }
        if signer.name() != self.origin {
            return Err(LedgerError::InvalidRequest(format!(
                "the signing key is named {:?}, but this ledger's origin is {:?}",
                signer.name(),
                self.origin
            )));
        }
        if let Some(latest) = self.store.latest.read().expect("checkpoint lock poisoned").as_ref()
            && latest.checkpoint().size == self.size
            && latest.note().signatures().iter().any(|s| s.name == signer.name() && s.key_id == signer.key_id())
        {
            return Ok((**latest).clone());
        }
        let checkpoint = Checkpoint::new(self.origin.clone(), self.size, self.frontier.root());
        let signed = SignedCheckpoint::sign(checkpoint, signer)?;
        persist_checkpoint(&self.store.dir, &signed)?;
        tracing::debug!(size = self.size, root = %signed.checkpoint().root, "ledger checkpoint signed");
        *self.store.latest.write().expect("checkpoint lock poisoned") = Some(Arc::new(signed.clone()));
        Ok(signed)
    }
}

/// Writes the checkpoint to a temporary file, syncs it, renames it over the old one and
/// syncs the directory: after a crash the file holds either the old or the new checkpoint.
fn persist_checkpoint(dir: &Path, signed: &SignedCheckpoint) -> Result<(), LedgerError> {
    let tmp = dir.join(CHECKPOINT_TMP);
    let path = dir.join(CHECKPOINT_FILE);
    {
        let file = File::create(&tmp).map_err(io_error("create", &tmp))?;
        file.write_all_at(signed.to_string().as_bytes(), 0).map_err(io_error("write", &tmp))?;
        file.sync_all().map_err(io_error("fsync", &tmp))?;
    }
    std::fs::rename(&tmp, &path).map_err(io_error("rename", &path))?;
    sync_dir(dir)
}
