//! On-disk layout, recovery at open, and the read side of the ledger.
//!
//! ```text
//! <dir>/LOCK               advisory lock: one process per ledger
//! <dir>/entries.log        the entries: the only authoritative data (fsync per batch)
//! <dir>/entries.idx        u64 LE per entry: record offset << 16 | payload length (derived)
//! <dir>/tree/level-<L>     32-byte hashes of the perfect subtrees at tree level L, L < 6 (derived)
//! <dir>/checkpoint         the last signed checkpoint (write-then-rename, fsync)
//! ```
//!
//! A record in `entries.log` is a 32-byte header and the entry's canonical bytes:
//!
//! ```text
//! magic FF 43 4C 01 | len u32 LE | index u64 LE | batch position u32 LE | 0u32 | checksum u64 LE | payload
//! ```
//!
//! The checksum mixes the first 8 bytes of the RFC 6962 leaf hash of the payload with the
//! header fields, so it costs nothing beyond the leaf hash the log computes anyway. The
//! batch position (the record's place within the group commit that wrote it) tells a torn
//! tail from corruption at open. Tree levels 6 and up (a 64th of the nodes) are kept in
//! memory and rebuilt at open; the files of levels 0..5 make an inclusion proof a handful
//! of small reads. Derived files are not fsynced: open recomputes every hash from the
//! entries, compares it with the stored one and repairs what a crash left behind.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::checkpoint::{Checkpoint, SignedCheckpoint};
use crate::entry::MAX_ENTRY_BYTES;
use crate::error::LedgerError;
use crate::merkle::{Frontier, Hash, NodeSource, leaf_hash, root_of};

/// First bytes of every record; `0xFF` never occurs in UTF-8 text, so a scan for it finds
/// headers only.
pub(crate) const RECORD_MAGIC: [u8; 4] = [0xFF, b'C', b'L', 0x01];
/// Bytes of a record header.
pub(crate) const HEADER_LEN: usize = 32;
/// Tree levels stored in files; higher levels live in memory.
pub(crate) const DISK_LEVELS: u8 = 6;

pub(crate) const LOG_FILE: &str = "entries.log";
pub(crate) const IDX_FILE: &str = "entries.idx";
pub(crate) const TREE_DIR: &str = "tree";
pub(crate) const CHECKPOINT_FILE: &str = "checkpoint";
pub(crate) const CHECKPOINT_TMP: &str = "checkpoint.tmp";
pub(crate) const LOCK_FILE: &str = "LOCK";

pub(crate) fn level_path(dir: &Path, level: u8) -> PathBuf {
    dir.join(TREE_DIR).join(format!("level-{level}"))
}

/// splitmix64's finaliser: a cheap, well-mixing 64-bit permutation.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d049bb133111eb);
    x ^ (x >> 31)
}

pub(crate) fn record_checksum(index: u64, len: u32, batch_pos: u32, leaf: &Hash) -> u64 {
    let prefix = u64::from_le_bytes(leaf.0[..8].try_into().expect("8 bytes"));
    prefix ^ mix(mix(index) ^ (u64::from(len) << 32 | u64::from(batch_pos)))
}

/// Appends a record header to `out`.
pub(crate) fn encode_header(out: &mut Vec<u8>, index: u64, len: u32, batch_pos: u32, leaf: &Hash) {
    out.extend_from_slice(&RECORD_MAGIC);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&index.to_le_bytes());
    out.extend_from_slice(&batch_pos.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&record_checksum(index, len, batch_pos, leaf).to_le_bytes());
}

/// A decoded record header.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Header {
    pub(crate) len: u32,
    pub(crate) index: u64,
    pub(crate) batch_pos: u32,
    pub(crate) checksum: u64,
}

pub(crate) fn decode_header(bytes: &[u8]) -> Option<Header> {
    if bytes.len() < HEADER_LEN || bytes[..4] != RECORD_MAGIC || bytes[20..24] != [0; 4] {
        return None;
    }
    Some(Header {
        len: u32::from_le_bytes(bytes[4..8].try_into().ok()?),
        index: u64::from_le_bytes(bytes[8..16].try_into().ok()?),
        batch_pos: u32::from_le_bytes(bytes[16..20].try_into().ok()?),
        checksum: u64::from_le_bytes(bytes[24..32].try_into().ok()?),
    })
}

pub(crate) fn io_error<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> LedgerError + 'a {
    move |source| LedgerError::Io { op, path: path.to_path_buf(), source }
}

/// The read side, shared by readers and the writer thread.
pub(crate) struct Store {
    pub(crate) dir: PathBuf,
    log: File,
    idx: File,
    levels: Vec<File>,
    /// Tree levels `DISK_LEVELS..`, indexed by `level - DISK_LEVELS`.
    pub(crate) memory: RwLock<Vec<Vec<Hash>>>,
    /// Entries acknowledged and readable: everything below is on disk and in the tree.
    pub(crate) size: AtomicU64,
    /// The latest signed checkpoint.
    pub(crate) latest: RwLock<Option<Arc<SignedCheckpoint>>>,
    /// Held for the store's lifetime: the advisory lock of the directory.
    _lock: File,
}

impl Store {
    pub(crate) fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    /// Reads `count` hashes of tree level `level` starting at `start`, as raw bytes.
    pub(crate) fn read_hashes(&self, level: u8, start: u64, count: u64) -> Result<Vec<u8>, LedgerError> {
        if level < DISK_LEVELS {
            let mut buf = vec![0u8; count as usize * 32];
            let file = &self.levels[usize::from(level)];
            file.read_exact_at(&mut buf, start * 32).map_err(|source| LedgerError::Io {
                op: "read stored hashes",
                path: level_path(&self.dir, level),
                source,
            })?;
            return Ok(buf);
        }
        let memory = self.memory.read().expect("tree lock poisoned");
        let hashes = memory
            .get(usize::from(level - DISK_LEVELS))
            .and_then(|l| l.get(start as usize..(start + count) as usize))
            .ok_or_else(|| LedgerError::Corrupt {
                path: self.dir.clone(),
                detail: format!("tree level {level} has no hashes {start}..{}", start + count),
            })?;
        Ok(hashes.iter().flat_map(|h| h.0).collect())
    }

    /// Where entry `index` is: (record offset, payload length).
    fn locate(&self, index: u64) -> Result<(u64, usize), LedgerError> {
        let mut buf = [0u8; 8];
        self.idx.read_exact_at(&mut buf, index * 8).map_err(|source| LedgerError::Io {
            op: "read",
            path: self.dir.join(IDX_FILE),
            source,
        })?;
        let value = u64::from_le_bytes(buf);
        Ok((value >> 16, (value & 0xFFFF) as usize))
    }

    /// Checks one record read back from `entries.log` and returns its payload.
    fn check_record<'a>(&self, index: u64, offset: u64, record: &'a [u8]) -> Result<&'a [u8], LedgerError> {
        let corrupt = |detail: String| LedgerError::Corrupt { path: self.dir.join(LOG_FILE), detail };
        let header = decode_header(record)
            .ok_or_else(|| corrupt(format!("no record header for entry {index} at offset {offset}")))?;
        let payload = &record[HEADER_LEN..];
        if header.index != index || header.len as usize != payload.len() {
            return Err(corrupt(format!("the record at offset {offset} is not entry {index}")));
        }
        let leaf = leaf_hash(payload);
        if record_checksum(index, header.len, header.batch_pos, &leaf) != header.checksum {
            return Err(corrupt(format!("entry {index} at offset {offset} fails its checksum")));
        }
        Ok(payload)
    }

    /// The canonical bytes of entry `index` (< size), checked against its record checksum.
    pub(crate) fn read_entry(&self, index: u64) -> Result<Vec<u8>, LedgerError> {
        let (offset, len) = self.locate(index)?;
        let mut record = vec![0u8; HEADER_LEN + len];
        self.log.read_exact_at(&mut record, offset).map_err(|source| LedgerError::Io {
            op: "read",
            path: self.dir.join(LOG_FILE),
            source,
        })?;
        Ok(self.check_record(index, offset, &record)?.to_vec())
    }

    /// Entries `start .. start + count` (< size) as a tlog-tiles entry bundle.
    pub(crate) fn read_bundle(&self, start: u64, count: u64) -> Result<Vec<u8>, LedgerError> {
        let mut idx = vec![0u8; count as usize * 8];
        self.idx.read_exact_at(&mut idx, start * 8).map_err(|source| LedgerError::Io {
            op: "read",
            path: self.dir.join(IDX_FILE),
            source,
        })?;
        let locations: Vec<(u64, usize)> = idx
            .chunks_exact(8)
            .map(|c| {
                let v = u64::from_le_bytes(c.try_into().expect("8 bytes"));
                (v >> 16, (v & 0xFFFF) as usize)
            })
            .collect();
        let (first, _) = locations[0];
        let (last, last_len) = locations[locations.len() - 1];
        let span = (last - first) as usize + HEADER_LEN + last_len;
        let mut region = vec![0u8; span];
        self.log.read_exact_at(&mut region, first).map_err(|source| LedgerError::Io {
            op: "read",
            path: self.dir.join(LOG_FILE),
            source,
        })?;
        let mut bundle = Vec::with_capacity(span);
        for (i, (offset, len)) in locations.into_iter().enumerate() {
            let at = (offset - first) as usize;
            let record = region.get(at..at + HEADER_LEN + len).ok_or_else(|| LedgerError::Corrupt {
                path: self.dir.join(IDX_FILE),
                detail: format!("entry {} points outside its bundle", start + i as u64),
            })?;
            let payload = self.check_record(start + i as u64, offset, record)?;
            bundle.extend_from_slice(&(payload.len() as u16).to_be_bytes());
            bundle.extend_from_slice(payload);
        }
        Ok(bundle)
    }
}

impl NodeSource for Store {
    type Error = LedgerError;

    fn node(&self, level: u8, index: u64) -> Result<Hash, LedgerError> {
        if level < DISK_LEVELS {
            let mut buf = [0u8; 32];
            self.levels[usize::from(level)].read_exact_at(&mut buf, index * 32).map_err(|source| LedgerError::Io {
                op: "read stored hashes",
                path: level_path(&self.dir, level),
                source,
            })?;
            return Ok(Hash(buf));
        }
        let memory = self.memory.read().expect("tree lock poisoned");
        memory.get(usize::from(level - DISK_LEVELS)).and_then(|l| l.get(index as usize)).copied().ok_or_else(|| {
            LedgerError::Corrupt { path: self.dir.clone(), detail: format!("tree node ({level}, {index}) is missing") }
        })
    }
}

/// The write handles, handed to the writer thread.
pub(crate) struct WriteFiles {
    pub(crate) log: File,
    pub(crate) idx: File,
    pub(crate) levels: Vec<File>,
}

/// What open recovered.
pub(crate) struct Opened {
    pub(crate) store: Arc<Store>,
    pub(crate) files: WriteFiles,
    pub(crate) end: u64,
    pub(crate) frontier: Frontier,
}

fn open_rw(path: &Path) -> Result<File, LedgerError> {
    OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).map_err(io_error("open", path))
}

fn open_ro(path: &Path) -> Result<File, LedgerError> {
    File::open(path).map_err(io_error("open", path))
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), LedgerError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_error("fsync directory", dir))
}

/// Reads as many bytes as are available up to `buf.len()`; fewer means end of file.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Compares a derived file with recomputed content item by item and rewrites what differs
/// (or is missing); reads and writes in large sequential chunks.
struct VerifySink {
    file: File,
    path: PathBuf,
    item: usize,
    existing: u64,
    next: u64,
    read_buf: Vec<u8>,
    read_start: u64,
    pending: Vec<u8>,
    pending_start: u64,
    repaired: u64,
}

const SINK_CHUNK: usize = 1 << 20;

impl VerifySink {
    fn new(file: File, path: PathBuf, item: usize) -> Result<VerifySink, LedgerError> {
        let existing = file.metadata().map_err(io_error("stat", &path))?.len();
        Ok(VerifySink {
            file,
            path,
            item,
            existing,
            next: 0,
            read_buf: Vec::new(),
            read_start: 0,
            pending: Vec::with_capacity(SINK_CHUNK),
            pending_start: 0,
            repaired: 0,
        })
    }

    fn stored_matches(&mut self, offset: u64, bytes: &[u8]) -> Result<bool, LedgerError> {
        if offset + bytes.len() as u64 > self.existing {
            return Ok(false);
        }
        let in_buf =
            offset >= self.read_start && offset + bytes.len() as u64 <= self.read_start + self.read_buf.len() as u64;
        if !in_buf {
            let len = (SINK_CHUNK as u64).min(self.existing - offset) as usize;
            self.read_buf.resize(len, 0);
            self.file.read_exact_at(&mut self.read_buf, offset).map_err(io_error("read", &self.path))?;
            self.read_start = offset;
        }
        let at = (offset - self.read_start) as usize;
        Ok(&self.read_buf[at..at + bytes.len()] == bytes)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), LedgerError> {
        debug_assert_eq!(bytes.len(), self.item);
        let offset = self.next * self.item as u64;
        self.next += 1;
        if self.stored_matches(offset, bytes)? {
            return Ok(());
        }
        if offset < self.existing {
            self.repaired += 1;
        }
        if !self.pending.is_empty() && self.pending_start + self.pending.len() as u64 != offset {
            self.flush()?;
        }
        if self.pending.is_empty() {
            self.pending_start = offset;
        }
        self.pending.extend_from_slice(bytes);
        if self.pending.len() >= SINK_CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), LedgerError> {
        if !self.pending.is_empty() {
            self.file.write_all_at(&self.pending, self.pending_start).map_err(io_error("write", &self.path))?;
            self.pending.clear();
        }
        Ok(())
    }

    /// Flushes, cuts the file to exactly what was put, and returns (file, repaired count).
    fn finish(mut self) -> Result<(File, u64), LedgerError> {
        self.flush()?;
        let len = self.next * self.item as u64;
        if self.existing != len {
            self.file.set_len(len).map_err(io_error("truncate", &self.path))?;
        }
        Ok((self.file, self.repaired))
    }
}

/// Looks past a damaged record at `from` for a valid record of a *later* group commit than
/// the damaged entry `bad_index`. Such a record proves that the damaged batch had been
/// synced (batches are written one after the other, each after the previous one's fsync),
/// so the damage is corruption, not a torn tail.
fn later_batch_after(file: &File, from: u64, file_len: u64, bad_index: u64) -> io::Result<Option<(u64, u64)>> {
    let mut chunk = vec![0u8; SINK_CHUNK];
    let mut pos = from;
    while pos < file_len {
        let len = (chunk.len() as u64).min(file_len - pos) as usize;
        file.read_exact_at(&mut chunk[..len], pos)?;
        for (i, &byte) in chunk[..len].iter().enumerate() {
            if byte != RECORD_MAGIC[0] {
                continue;
            }
            let candidate = pos + i as u64;
            if candidate + HEADER_LEN as u64 > file_len {
                continue;
            }
            let mut header = [0u8; HEADER_LEN];
            file.read_exact_at(&mut header, candidate)?;
            let Some(h) = decode_header(&header) else { continue };
            let batch_first = h.index.wrapping_sub(u64::from(h.batch_pos));
            if h.index <= bad_index || batch_first <= bad_index || h.index < u64::from(h.batch_pos) {
                continue;
            }
            let end = candidate + HEADER_LEN as u64 + u64::from(h.len);
            if h.len as usize > MAX_ENTRY_BYTES || end > file_len {
                continue;
            }
            let mut payload = vec![0u8; h.len as usize];
            file.read_exact_at(&mut payload, candidate + HEADER_LEN as u64)?;
            if record_checksum(h.index, h.len, h.batch_pos, &leaf_hash(&payload)) == h.checksum {
                return Ok(Some((candidate, h.index)));
            }
        }
        // Candidates are read from the file itself, so chunks need not overlap.
        pos += len as u64;
    }
    Ok(None)
}

/// Reads the stored checkpoint, if any.
fn read_checkpoint(dir: &Path) -> Result<Option<SignedCheckpoint>, LedgerError> {
    let path = dir.join(CHECKPOINT_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(LedgerError::Io { op: "read", path, source: e }),
    };
    SignedCheckpoint::parse_unverified(&text).map(Some).map_err(|e| LedgerError::Corrupt {
        path,
        detail: format!("the last signed checkpoint cannot be read ({e}); without it the ledger cannot tell whether acknowledged entries are missing"),
    })
}

/// Opens (creating if needed) the ledger files in `dir`, verifies every record and every
/// stored hash against the entries, repairs derived files, cuts a torn tail, and refuses
/// if acknowledged data is missing or altered.
pub(crate) fn open(dir: &Path, origin: &str) -> Result<Opened, LedgerError> {
    std::fs::create_dir_all(dir.join(TREE_DIR)).map_err(io_error("create directory", dir))?;
    let lock_path = dir.join(LOCK_FILE);
    let lock = open_rw(&lock_path)?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Err(LedgerError::Locked { dir: dir.to_path_buf() }),
        Err(std::fs::TryLockError::Error(e)) => return Err(LedgerError::Io { op: "lock", path: lock_path, source: e }),
    }
    let _ = std::fs::remove_file(dir.join(CHECKPOINT_TMP));

    let checkpoint = read_checkpoint(dir)?;
    if let Some(c) = &checkpoint
        && c.checkpoint().origin != origin
    {
        return Err(LedgerError::OriginMismatch {
            dir: dir.to_path_buf(),
            stored: c.checkpoint().origin.clone(),
            configured: origin.to_string(),
        });
    }
    let signed: Option<Checkpoint> = checkpoint.as_ref().map(|c| c.checkpoint().clone());
    let signed_size = signed.as_ref().map_or(0, |c| c.size);

    let log_path = dir.join(LOG_FILE);
    let log_w = open_rw(&log_path)?;
    let idx_path = dir.join(IDX_FILE);
    let idx_w = open_rw(&idx_path)?;
    let mut level_w = Vec::new();
    for level in 0..DISK_LEVELS {
        level_w.push(open_rw(&level_path(dir, level))?);
    }
    sync_dir(dir)?;
    sync_dir(&dir.join(TREE_DIR))?;

    let file_len = log_w.metadata().map_err(io_error("stat", &log_path))?.len();
    let mut idx_sink = VerifySink::new(idx_w, idx_path.clone(), 8)?;
    let mut level_sinks = Vec::new();
    for (level, file) in level_w.into_iter().enumerate() {
        level_sinks.push(VerifySink::new(file, level_path(dir, level as u8), 32)?);
    }
    let mut memory: Vec<Vec<Hash>> = Vec::new();
    let mut frontier = Frontier::new();

    let started = std::time::Instant::now();
    let mut reader = BufReader::with_capacity(4 << 20, open_ro(&log_path)?);
    let mut pos = 0u64;
    let mut index = 0u64;
    let mut header = [0u8; HEADER_LEN];
    let mut payload = Vec::with_capacity(4096);
    let mut sink_error: Option<LedgerError> = None;
    let damage: Option<String> = loop {
        if pos == file_len {
            break None;
        }
        let got = read_up_to(&mut reader, &mut header).map_err(io_error("read", &log_path))?;
        if got < HEADER_LEN {
            break Some(format!("a record header is cut short ({got} of {HEADER_LEN} bytes)"));
        }
        let Some(h) = decode_header(&header) else {
            break Some("no record header where one should start".into());
        };
        if h.index != index {
            break Some(format!("the record says it is entry {}, expected {index}", h.index));
        }
        if h.len as usize > MAX_ENTRY_BYTES {
            break Some(format!("the record claims {} bytes, more than an entry may have", h.len));
        }
        payload.resize(h.len as usize, 0);
        let got = read_up_to(&mut reader, &mut payload).map_err(io_error("read", &log_path))?;
        if got < payload.len() {
            break Some(format!("the entry is cut short ({got} of {} bytes)", h.len));
        }
        let leaf = leaf_hash(&payload);
        if record_checksum(index, h.len, h.batch_pos, &leaf) != h.checksum {
            break Some("the record fails its checksum".into());
        }
        let located = pos << 16 | u64::from(h.len);
        if let Err(e) = idx_sink.put(&located.to_le_bytes()) {
            sink_error = Some(e);
            break None;
        }
        frontier.push(leaf, |level, _, hash| {
            if sink_error.is_some() {
                return;
            }
            if level < DISK_LEVELS {
                if let Err(e) = level_sinks[usize::from(level)].put(&hash.0) {
                    sink_error = Some(e);
                }
            } else {
                let l = usize::from(level - DISK_LEVELS);
                if memory.len() <= l {
                    memory.resize_with(l + 1, Vec::new);
                }
                memory[l].push(*hash);
            }
        });
        if sink_error.is_some() {
            break None;
        }
        pos += (HEADER_LEN + payload.len()) as u64;
        index += 1;
    };
    if let Some(e) = sink_error {
        return Err(e);
    }
    drop(reader);

    let mut torn_tail = None;
    if let Some(reason) = damage {
        let detail = format!("entry {index} at offset {pos} of {}: {reason}", log_path.display());
        if index < signed_size {
            return Err(LedgerError::Corrupt {
                path: log_path,
                detail: format!("{detail}; it is covered by the last signed checkpoint (size {signed_size})"),
            });
        }
        let later = later_batch_after(&log_w, pos + 1, file_len, index).map_err(io_error("read", &log_path))?;
        if let Some((offset, later_index)) = later {
            return Err(LedgerError::Corrupt {
                path: log_path,
                detail: format!(
                    "{detail}; entry {later_index} of a later commit follows at offset {offset}, so the damaged entry had been acknowledged"
                ),
            });
        }
        torn_tail = Some((pos, file_len - pos, reason));
    }

    let mut repaired = 0;
    let (idx_w, r) = idx_sink.finish()?;
    repaired += r;
    let mut level_w = Vec::new();
    for sink in level_sinks {
        let (file, r) = sink.finish()?;
        repaired += r;
        level_w.push(file);
    }

    let mut levels_r = Vec::new();
    for level in 0..DISK_LEVELS {
        levels_r.push(open_ro(&level_path(dir, level))?);
    }
    let store = Arc::new(Store {
        dir: dir.to_path_buf(),
        log: open_ro(&log_path)?,
        idx: open_ro(&idx_path)?,
        levels: levels_r,
        memory: RwLock::new(memory),
        size: AtomicU64::new(index),
        latest: RwLock::new(checkpoint.map(Arc::new)),
        _lock: lock,
    });

    if let Some(signed) = &signed {
        if index < signed.size {
            return Err(LedgerError::Truncated {
                dir: dir.to_path_buf(),
                entries: index,
                checkpoint_size: signed.size,
            });
        }
        let computed = root_of(&*store, signed.size)?;
        if computed != signed.root {
            return Err(LedgerError::RootMismatch {
                dir: dir.to_path_buf(),
                size: signed.size,
                signed: signed.root,
                computed,
            });
        }
    }

    if let Some((offset, bytes, reason)) = torn_tail {
        // Never acknowledged: the batch that wrote it had not finished its fsync.
        tracing::warn!(
            dir = %dir.display(), offset, bytes, entry = index, %reason,
            "ledger: dropping a torn tail left by an interrupted write"
        );
        log_w.set_len(offset).map_err(io_error("truncate", &log_path))?;
        log_w.sync_all().map_err(io_error("fsync", &log_path))?;
    }
    if repaired > 0 {
        tracing::warn!(dir = %dir.display(), repaired, "ledger: rewrote stored hashes or offsets that did not match the entries");
    }
    tracing::info!(
        dir = %dir.display(), entries = index, checkpoint_size = signed_size,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "ledger opened and verified"
    );
    Ok(Opened { store, files: WriteFiles { log: log_w, idx: idx_w, levels: level_w }, end: pos, frontier })
}
