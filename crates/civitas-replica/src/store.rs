//! The replica store: replicas as directories of checksummed objects, complete only once
//! their manifest is committed.
//!
//! Layout under the root (the node passes `<data-dir>/replicas/`):
//!
//! ```text
//! <root>/<replica-id>/manifest.json            committed last: its presence = COMPLETE
//! <root>/<replica-id>/<key>.meta.json          status, headers, length, SHA-256, source…
//! <root>/<replica-id>/<key>.<sha256>.body      the body, named after its checksum
//! <root>/<replica-id>/*.tmp                    files being written (never read)
//! ```
//!
//! Every file is written to a `.tmp` name, fsynced, renamed into place and its directory
//! fsynced, so a name that exists is a whole file. The meta record is the commit point of
//! one resource (it names the body file); the manifest is the commit point of the replica.

use std::collections::HashSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt as _;

use crate::error::{ReplicaError, Result, io_err};
use crate::key::{ReplicaId, ResourceKey, to_hex};

const MANIFEST_FILE: &str = "manifest.json";
const TMP_SUFFIX: &str = ".tmp";
const META_SUFFIX: &str = ".meta.json";
const BODY_SUFFIX: &str = ".body";
/// The manifest format this code writes and reads.
const MANIFEST_FORMAT: u32 = 1;

/// Makes temporary names unique within the process (several writers per replica).
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The stored record of one resource: what the origin answered, and where the body is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceMeta {
    /// The resource key (hash of `variant`).
    pub key: String,
    /// Path and query relative to the instance endpoint, as observed.
    pub variant: String,
    /// The URL it was fetched from.
    pub source_url: String,
    /// The origin's status code.
    pub status: u16,
    /// `Content-Type` as sent by the origin.
    pub content_type: Option<String>,
    /// `ETag` as sent by the origin.
    pub etag: Option<String>,
    /// `Last-Modified` as sent by the origin.
    pub last_modified: Option<String>,
    /// Length of the stored body in bytes.
    pub content_length: u64,
    /// Lowercase hex SHA-256 of the stored body.
    pub sha256: String,
    /// When the body was fetched (milliseconds since the Unix epoch).
    pub fetched_at_unix_ms: u64,
    /// When the origin last confirmed the body (a 200 or a 304), same unit.
    pub validated_at_unix_ms: u64,
}

impl ResourceMeta {
    fn body_file_name(&self) -> String {
        format!("{}.{}{BODY_SUFFIX}", self.key, self.sha256)
    }
}

/// What the origin said about a resource, before its body is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceHead {
    /// Path and query relative to the instance endpoint.
    pub variant: String,
    /// The URL it is fetched from.
    pub source_url: String,
    /// The origin's status code.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// `ETag`.
    pub etag: Option<String>,
    /// `Last-Modified`.
    pub last_modified: Option<String>,
}

/// One line of a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestEntry {
    /// The resource key.
    pub key: String,
    /// Its variant (path and query).
    pub variant: String,
}

/// The list of a replica's resources, written last: a replica with a manifest is complete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Format version of this record.
    pub format: u32,
    /// The replica id (repeated so a moved directory is detected).
    pub replica_id: String,
    /// Where the resources were copied from (the instance endpoint).
    pub source: String,
    /// When the replica was committed (milliseconds since the Unix epoch).
    pub committed_at_unix_ms: u64,
    /// Total body bytes at commit time.
    pub total_bytes: u64,
    /// Every resource of the replica.
    pub resources: Vec<ManifestEntry>,
}

/// A complete replica: its manifest and the current record of each resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    /// Its id.
    pub id: ReplicaId,
    /// Its committed manifest.
    pub manifest: Manifest,
    /// The current record of each resource, in manifest order.
    pub resources: Vec<ResourceMeta>,
}

/// A stored response, ready to be served: headers in memory, the body as an open file.
#[derive(Debug)]
pub struct StoredResponse {
    /// The origin's status.
    pub status: StatusCode,
    /// `Content-Type`, `ETag`, `Last-Modified` and `Content-Length`, as stored.
    pub headers: HeaderMap,
    /// The full stored record.
    pub meta: ResourceMeta,
    /// The body, opened at its start; read it as a stream (`AsyncRead`). It stays readable
    /// even if a revalidation replaces the resource meanwhile.
    pub body: tokio::fs::File,
}

/// What [`ReplicaStore::recover`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Replicas that are complete and kept.
    pub complete: Vec<ReplicaId>,
    /// Incomplete replicas (no committed manifest) that were deleted.
    pub removed_incomplete: Vec<String>,
    /// Committed replicas whose records or bodies did not match (deleted).
    pub removed_damaged: Vec<String>,
    /// Leftover files (temporary files, superseded bodies) deleted inside complete replicas.
    pub removed_files: usize,
}

/// Replicas stored as directories under one root. Cheap to clone.
///
/// Invariant: [`ReplicaStore::open_complete`] and [`ReplicaStore::get`] only ever see
/// replicas whose manifest was committed, and the manifest is committed only after every
/// resource it lists is written, checksummed and fsynced.
#[derive(Debug, Clone)]
pub struct ReplicaStore {
    root: PathBuf,
}

impl ReplicaStore {
    /// Opens (creating it if needed) a store rooted at `root`.
    pub async fn open(root: impl Into<PathBuf>) -> Result<ReplicaStore> {
        let root = root.into();
        tokio::fs::create_dir_all(&root).await.map_err(io_err("", "create", &root))?;
        Ok(ReplicaStore { root })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of a replica.
    pub fn replica_dir(&self, id: &ReplicaId) -> PathBuf {
        self.root.join(id.as_str())
    }

    /// Starts writing a new replica. Leftovers of an earlier, incomplete attempt with the
    /// same id are deleted; a complete replica with this id is an error.
    pub async fn begin(&self, id: &ReplicaId) -> Result<ReplicaWriter> {
        let dir = self.replica_dir(id);
        if exists(&dir.join(MANIFEST_FILE), id).await? {
            return Err(ReplicaError::AlreadyComplete { replica: id.to_string() });
        }
        remove_dir_if_exists(&dir, id).await?;
        tokio::fs::create_dir_all(&dir).await.map_err(io_err(id.as_str(), "create", &dir))?;
        sync_dir(&self.root, id.as_str()).await?;
        Ok(ReplicaWriter { root: self.root.clone(), dir, id: id.clone() })
    }

    /// The replica if it is complete, `None` if it does not exist or is incomplete.
    /// Checks that every listed resource has its record and a body of the recorded size.
    pub async fn open_complete(&self, id: &ReplicaId) -> Result<Option<Replica>> {
        let dir = self.replica_dir(id);
        let manifest_path = dir.join(MANIFEST_FILE);
        let Some(manifest) = read_json_opt::<Manifest>(&manifest_path, id).await? else {
            return Ok(None);
        };
        if manifest.format != MANIFEST_FORMAT || manifest.replica_id != id.as_str() {
            return Err(corrupt(id, &manifest_path, "format or replica id does not match"));
        }
        let mut resources = Vec::with_capacity(manifest.resources.len());
        for entry in &manifest.resources {
            let key = ResourceKey::parse(&entry.key)?;
            let meta = self.read_meta(id, &key).await?;
            let body = dir.join(meta.body_file_name());
            let len = tokio::fs::metadata(&body).await.map_err(io_err(id.as_str(), "stat", &body))?.len();
            if len != meta.content_length {
                return Err(corrupt(id, &body, format!("{len} bytes, {} recorded", meta.content_length)));
            }
            resources.push(meta);
        }
        Ok(Some(Replica { id: id.clone(), manifest, resources }))
    }

    /// Ids of every complete replica, sorted.
    pub async fn list_complete(&self) -> Result<Vec<ReplicaId>> {
        let mut ids = Vec::new();
        for (name, path) in list_dir(&self.root, "").await? {
            if let Ok(id) = ReplicaId::new(name)
                && path.is_dir()
                && exists(&path.join(MANIFEST_FILE), &id).await?
            {
                ids.push(id);
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// The stored response of one resource of a complete replica.
    pub async fn get(&self, id: &ReplicaId, key: &ResourceKey) -> Result<StoredResponse> {
        self.require_complete(id).await?;
        // A revalidation may replace the body between reading the record and opening the
        // body it names; the record read again then names the new body.
        let mut attempts = 0;
        loop {
            let meta = self.read_meta(id, key).await?;
            let path = self.replica_dir(id).join(meta.body_file_name());
            match tokio::fs::File::open(&path).await {
                Ok(body) => {
                    return Ok(StoredResponse {
                        status: status_of(&meta, id)?,
                        headers: headers_of(&meta),
                        meta,
                        body,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempts == 0 => attempts += 1,
                Err(e) => return Err(io_err(id.as_str(), "open", &path)(e)),
            }
        }
    }

    /// The current record of one resource of a complete replica.
    pub async fn resource(&self, id: &ReplicaId, key: &ResourceKey) -> Result<ResourceMeta> {
        self.require_complete(id).await?;
        self.read_meta(id, key).await
    }

    /// Deletes a replica (complete or not).
    pub async fn remove(&self, id: &ReplicaId) -> Result<()> {
        remove_dir_if_exists(&self.replica_dir(id), id).await?;
        sync_dir(&self.root, id.as_str()).await
    }

    /// Start-up recovery. Deletes every replica directory without a committed manifest
    /// (a copy that was interrupted), and inside complete replicas every file that is not
    /// the manifest, a listed record or the body a record names (temporary files, bodies
    /// superseded by an interrupted revalidation). A committed replica whose records or
    /// bodies do not match its manifest is deleted too. Call it before any copy starts:
    /// it cannot tell a running copy from an interrupted one.
    pub async fn recover(&self) -> Result<RecoveryReport> {
        let mut report = RecoveryReport::default();
        for (name, path) in list_dir(&self.root, "").await? {
            let id = match ReplicaId::new(name.clone()) {
                Ok(id) if path.is_dir() => id,
                // Not something this store made: leave it alone, but say so.
                _ => {
                    tracing::warn!(path = %path.display(), "unexpected entry in the replica store, left alone");
                    continue;
                }
            };
            if !exists(&path.join(MANIFEST_FILE), &id).await? {
                tracing::info!(replica = %id, "removing incomplete replica");
                remove_dir_if_exists(&path, &id).await?;
                report.removed_incomplete.push(name);
                continue;
            }
            let replica = match self.open_complete(&id).await {
                Ok(Some(replica)) => replica,
                // Committed but damaged (a record or body missing or of the wrong size):
                // not served, so it goes the way of an incomplete replica.
                Ok(None) | Err(_) => {
                    tracing::warn!(replica = %id, "removing a damaged replica");
                    remove_dir_if_exists(&path, &id).await?;
                    report.removed_damaged.push(name);
                    continue;
                }
            };
            let mut keep: HashSet<String> = HashSet::from([MANIFEST_FILE.to_owned()]);
            for meta in &replica.resources {
                keep.insert(format!("{}{META_SUFFIX}", meta.key));
                keep.insert(meta.body_file_name());
            }
            for (file, file_path) in list_dir(&path, id.as_str()).await? {
                if !keep.contains(&file) {
                    tokio::fs::remove_file(&file_path).await.map_err(io_err(id.as_str(), "remove", &file_path))?;
                    report.removed_files += 1;
                }
            }
            report.complete.push(id);
        }
        sync_dir(&self.root, "").await.ok();
        report.complete.sort();
        report.removed_incomplete.sort();
        report.removed_damaged.sort();
        Ok(report)
    }

    /// Starts replacing the body of one resource of a complete replica (revalidation).
    pub(crate) async fn replace_resource(&self, id: &ReplicaId, key: &ResourceKey) -> Result<ResourceWriter> {
        self.require_complete(id).await?;
        ResourceWriter::create(self.replica_dir(id), id.clone(), key.clone()).await
    }

    /// Commits a replacement body: writes its record atomically (the commit point), then
    /// deletes the body it superseded.
    pub(crate) async fn commit_replacement(
        &self,
        old: &ResourceMeta,
        new: &ResourceMeta,
        id: &ReplicaId,
    ) -> Result<()> {
        let dir = self.replica_dir(id);
        write_json_atomic(&dir, &format!("{}{META_SUFFIX}", new.key), new, id).await?;
        if old.body_file_name() != new.body_file_name() {
            let path = dir.join(old.body_file_name());
            match tokio::fs::remove_file(&path).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(id.as_str(), "remove", &path)(e)),
            }
        }
        Ok(())
    }

    /// Rewrites the record of one resource atomically (e.g. a new `validated_at`).
    pub(crate) async fn update_meta(&self, id: &ReplicaId, meta: &ResourceMeta) -> Result<()> {
        write_json_atomic(&self.replica_dir(id), &format!("{}{META_SUFFIX}", meta.key), meta, id).await
    }

    async fn require_complete(&self, id: &ReplicaId) -> Result<()> {
        if exists(&self.replica_dir(id).join(MANIFEST_FILE), id).await? {
            Ok(())
        } else {
            Err(ReplicaError::NotComplete { replica: id.to_string() })
        }
    }

    async fn read_meta(&self, id: &ReplicaId, key: &ResourceKey) -> Result<ResourceMeta> {
        let path = self.replica_dir(id).join(format!("{key}{META_SUFFIX}"));
        let meta = read_json_opt::<ResourceMeta>(&path, id)
            .await?
            .ok_or_else(|| ReplicaError::UnknownResource { replica: id.to_string(), key: key.to_string() })?;
        if meta.key != key.as_str() || ResourceKey::parse(&meta.sha256).is_err() {
            return Err(corrupt(id, &path, "key or checksum field is malformed"));
        }
        Ok(meta)
    }
}

/// Writes the resources of one replica and commits it. Dropping it without a successful
/// [`commit`](ReplicaWriter::commit) leaves an incomplete replica that
/// [`ReplicaStore::recover`] deletes; [`abort`](ReplicaWriter::abort) deletes it at once.
#[derive(Debug)]
pub struct ReplicaWriter {
    root: PathBuf,
    dir: PathBuf,
    id: ReplicaId,
}

impl ReplicaWriter {
    /// The replica being written.
    pub fn id(&self) -> &ReplicaId {
        &self.id
    }

    /// Starts writing one resource.
    pub async fn create_resource(&self, key: &ResourceKey) -> Result<ResourceWriter> {
        ResourceWriter::create(self.dir.clone(), self.id.clone(), key.clone()).await
    }

    /// Commits the replica: checks every resource's record and body, then writes the
    /// manifest atomically (write, fsync, rename, fsync of the directory). Only then does
    /// the replica exist for readers. After a failed commit, [`abort`](ReplicaWriter::abort).
    pub async fn commit(&self, source: &str, resources: &[ResourceMeta]) -> Result<Replica> {
        let mut total_bytes = 0u64;
        let mut entries = Vec::with_capacity(resources.len());
        for meta in resources {
            let body = self.dir.join(meta.body_file_name());
            let len = tokio::fs::metadata(&body).await.map_err(io_err(self.id.as_str(), "stat", &body))?.len();
            if len != meta.content_length {
                return Err(corrupt(&self.id, &body, format!("{len} bytes, {} recorded", meta.content_length)));
            }
            total_bytes += len;
            entries.push(ManifestEntry { key: meta.key.clone(), variant: meta.variant.clone() });
        }
        let manifest = Manifest {
            format: MANIFEST_FORMAT,
            replica_id: self.id.to_string(),
            source: source.to_owned(),
            committed_at_unix_ms: now_unix_ms(),
            total_bytes,
            resources: entries,
        };
        write_json_atomic(&self.dir, MANIFEST_FILE, &manifest, &self.id).await?;
        tracing::info!(replica = %self.id, resources = resources.len(), total_bytes, "replica committed");
        Ok(Replica { id: self.id.clone(), manifest, resources: resources.to_vec() })
    }

    /// Deletes everything written so far.
    pub async fn abort(self) -> Result<()> {
        remove_dir_if_exists(&self.dir, &self.id).await?;
        sync_dir(&self.root, self.id.as_str()).await
    }
}

/// Streams one body to a temporary file while hashing it; [`finish`](ResourceWriter::finish)
/// fsyncs it, renames it to its checksum name and writes its record atomically.
#[derive(Debug)]
pub struct ResourceWriter {
    dir: PathBuf,
    id: ReplicaId,
    key: ResourceKey,
    tmp_path: PathBuf,
    file: tokio::fs::File,
    hasher: Sha256,
    bytes: u64,
}

impl ResourceWriter {
    async fn create(dir: PathBuf, id: ReplicaId, key: ResourceKey) -> Result<ResourceWriter> {
        let tmp_path = dir.join(tmp_name(&format!("{key}{BODY_SUFFIX}")));
        let file = tokio::fs::OpenOptions::new().write(true).create_new(true).open(&tmp_path).await.map_err(io_err(
            id.as_str(),
            "create",
            &tmp_path,
        ))?;
        Ok(ResourceWriter { dir, id, key, tmp_path, file, hasher: Sha256::new(), bytes: 0 })
    }

    /// Appends a chunk of the body. Chunks are what the network delivers (tens of KiB),
    /// so hashing one here is short; the file write itself runs on tokio's blocking pool.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<()> {
        self.hasher.update(chunk);
        self.file.write_all(chunk).await.map_err(io_err(self.id.as_str(), "write", &self.tmp_path))?;
        self.bytes += chunk.len() as u64;
        Ok(())
    }

    /// Bytes written so far.
    pub fn bytes_written(&self) -> u64 {
        self.bytes
    }

    /// Makes the body durable under its checksum name and writes the resource's record.
    pub async fn finish(mut self, head: ResourceHead) -> Result<ResourceMeta> {
        let id = self.id.as_str();
        self.file.flush().await.map_err(io_err(id, "write", &self.tmp_path))?;
        self.file.sync_all().await.map_err(io_err(id, "fsync", &self.tmp_path))?;
        drop(self.file);
        let now = now_unix_ms();
        let meta = ResourceMeta {
            key: self.key.to_string(),
            variant: head.variant,
            source_url: head.source_url,
            status: head.status,
            content_type: head.content_type,
            etag: head.etag,
            last_modified: head.last_modified,
            content_length: self.bytes,
            sha256: to_hex(&self.hasher.finalize()),
            fetched_at_unix_ms: now,
            validated_at_unix_ms: now,
        };
        let body_path = self.dir.join(meta.body_file_name());
        tokio::fs::rename(&self.tmp_path, &body_path).await.map_err(io_err(id, "rename", &body_path))?;
        // The record's rename below fsyncs the directory, which makes this rename durable too.
        write_json_atomic(&self.dir, &format!("{}{META_SUFFIX}", meta.key), &meta, &self.id).await?;
        Ok(meta)
    }
}

fn status_of(meta: &ResourceMeta, id: &ReplicaId) -> Result<StatusCode> {
    StatusCode::from_u16(meta.status)
        .map_err(|_| corrupt(id, Path::new(&format!("{}{META_SUFFIX}", meta.key)), "status out of range"))
}

fn headers_of(meta: &ResourceMeta) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(4);
    for (name, value) in [
        (header::CONTENT_TYPE, &meta.content_type),
        (header::ETAG, &meta.etag),
        (header::LAST_MODIFIED, &meta.last_modified),
    ] {
        if let Some(value) = value.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
            headers.insert(name, value);
        }
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(meta.content_length));
    headers
}

pub(crate) fn now_unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn tmp_name(final_name: &str) -> String {
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{final_name}.{}-{n}{TMP_SUFFIX}", std::process::id())
}

fn corrupt(id: &ReplicaId, path: &Path, reason: impl Into<String>) -> ReplicaError {
    ReplicaError::Corrupt { replica: id.to_string(), path: path.to_owned(), reason: reason.into() }
}

async fn exists(path: &Path, id: &ReplicaId) -> Result<bool> {
    tokio::fs::try_exists(path).await.map_err(io_err(id.as_str(), "stat", path))
}

/// Removes a directory tree. A few attempts, because a write abandoned by a dropped copy
/// may still be finishing on the blocking pool and add an entry during the removal; once
/// the directory is gone such late writes fail instead of recreating anything.
async fn remove_dir_if_exists(dir: &Path, id: &ReplicaId) -> Result<()> {
    const ATTEMPTS: usize = 5;
    for attempt in 1..=ATTEMPTS {
        match tokio::fs::remove_dir_all(dir).await {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if attempt == ATTEMPTS => return Err(io_err(id.as_str(), "remove", dir)(e)),
            Err(_) => tokio::task::yield_now().await,
        }
    }
    Ok(())
}

/// Entries of a directory as (file name, path); names that are not UTF-8 are skipped.
async fn list_dir(dir: &Path, replica: &str) -> Result<Vec<(String, PathBuf)>> {
    let mut entries = tokio::fs::read_dir(dir).await.map_err(io_err(replica, "list", dir))?;
    let mut out = Vec::new();
    while let Some(entry) = entries.next_entry().await.map_err(io_err(replica, "list", dir))? {
        if let Ok(name) = entry.file_name().into_string() {
            out.push((name, entry.path()));
        }
    }
    Ok(out)
}

async fn read_json_opt<T: serde::de::DeserializeOwned>(path: &Path, id: &ReplicaId) -> Result<Option<T>> {
    match tokio::fs::read(path).await {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| corrupt(id, path, e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(id.as_str(), "read", path)(e)),
    }
}

/// Writes `value` as `dir/name` atomically and durably: a temporary file, fsync, rename,
/// fsync of the directory — on a blocking thread.
async fn write_json_atomic<T: Serialize>(dir: &Path, name: &str, value: &T, id: &ReplicaId) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value).expect("records serialize");
    let dir = dir.to_owned();
    let name = name.to_owned();
    let id = id.clone();
    tokio::task::spawn_blocking(move || {
        let tmp = dir.join(tmp_name(&name));
        let target = dir.join(&name);
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp).map_err(io_err(
            id.as_str(),
            "create",
            &tmp,
        ))?;
        file.write_all(&bytes).map_err(io_err(id.as_str(), "write", &tmp))?;
        file.sync_all().map_err(io_err(id.as_str(), "fsync", &tmp))?;
        drop(file);
        std::fs::rename(&tmp, &target).map_err(io_err(id.as_str(), "rename", &target))?;
        sync_dir_blocking(&dir, id.as_str())
    })
    .await
    .expect("the atomic write task does not panic")
}

fn sync_dir_blocking(dir: &Path, replica: &str) -> Result<()> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(replica, "fsync", dir))
}

async fn sync_dir(dir: &Path, replica: &str) -> Result<()> {
    let dir = dir.to_owned();
    let replica = replica.to_owned();
    tokio::task::spawn_blocking(move || sync_dir_blocking(&dir, &replica)).await.expect("the fsync task does not panic")
}
