//! The object copy strategy's copy mechanics: one large object (a file, a blob) fetched in
//! ranged chunks, each chunk checksummed and made durable before the next, so that an
//! interrupted copy — a dropped connection, a crash, a `kill -9` — resumes where it
//! stopped instead of starting again.
//!
//! Staging happens outside the replica store (`<staging>/<replica-id>/`): `object.part`
//! holds the bytes received so far, `progress.json` (replaced atomically after the part
//! file is fsynced) says how many of them are good and the SHA-256 of every chunk. On
//! resume the part file is cut back to the recorded length. `If-Range` with the object's
//! `ETag` (or `Last-Modified`) makes sure chunks of two versions are never mixed: an
//! origin that changed answers the whole new object, and the copy starts again. At the end
//! every chunk is re-hashed while the object is streamed into the [`ReplicaStore`] and
//! committed like any replica — complete and verified, or not at all.

use std::path::{Path, PathBuf};
use std::time::Duration;

use http::{StatusCode, header};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::sync::watch;

use crate::error::{ReplicaError, Result, io_err};
use crate::key::{ReplicaId, ResourceKey, to_hex};
use crate::store::{Replica, ReplicaStore, ResourceHead};
use crate::strategies::http_snapshot::SnapshotProgress;

const PART_FILE: &str = "object.part";
const PROGRESS_FILE: &str = "progress.json";

/// Settings of an [`ObjectCopy`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectCopyConfig {
    /// Bytes per ranged request (at least 64 KiB). Default 8 MiB.
    pub chunk_bytes: u64,
    /// Time allowed to connect to the origin.
    pub connect_timeout: Duration,
    /// Longest silence while waiting for headers or the next body bytes.
    pub read_timeout: Duration,
    /// Longest time one chunk may take.
    pub chunk_timeout: Duration,
    /// Headers sent with every request.
    pub headers: http::HeaderMap,
    /// PEM CA certificates trusted for `https` sources besides the system's roots.
    pub extra_roots_pem: Option<Vec<u8>>,
}

impl Default for ObjectCopyConfig {
    fn default() -> Self {
        ObjectCopyConfig {
            chunk_bytes: 8 * 1024 * 1024,
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(30),
            chunk_timeout: Duration::from_secs(300),
            headers: http::HeaderMap::new(),
            extra_roots_pem: None,
        }
    }
}

/// What to copy: one object at `url`, stored as `variant` of replica `replica_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRequest {
    /// The replica to create.
    pub replica_id: ReplicaId,
    /// The object's URL.
    pub url: String,
    /// The variant it is stored as (`/` for the view's own resource).
    pub variant: String,
}

/// What a staged copy has so far; replaced atomically after the part file is fsynced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Progress {
    url: String,
    total: Option<u64>,
    etag: Option<String>,
    last_modified: Option<String>,
    content_type: Option<String>,
    chunk_bytes: u64,
    /// SHA-256 of every complete chunk, in order; all but the last are `chunk_bytes` long.
    chunks: Vec<String>,
    /// Good bytes in the part file.
    offset: u64,
}

/// Copies one object per replica, resumably (see the module docs).
#[derive(Debug, Clone)]
pub struct ObjectCopy {
    store: ReplicaStore,
    staging: PathBuf,
    client: reqwest::Client,
    config: ObjectCopyConfig,
}

impl ObjectCopy {
    /// A copier staging under `staging` (created if missing; keep it outside the store's
    /// root) and committing into `store`.
    pub fn new(store: ReplicaStore, staging: impl Into<PathBuf>, config: ObjectCopyConfig) -> Result<ObjectCopy> {
        let client = super::http_client(super::ClientSettings {
            connect_timeout: config.connect_timeout,
            read_timeout: config.read_timeout,
            request_timeout: config.chunk_timeout,
            headers: &config.headers,
            extra_roots_pem: config.extra_roots_pem.as_deref(),
        })?;
        let config = ObjectCopyConfig { chunk_bytes: config.chunk_bytes.max(64 * 1024), ..config };
        Ok(ObjectCopy { store, staging: staging.into(), client, config })
    }

    /// Where the copy of `id` is staged.
    pub fn staging_dir(&self, id: &ReplicaId) -> PathBuf {
        self.staging.join(id.as_str())
    }

    /// Bytes already staged for `id` (0 when nothing is).
    pub async fn staged_bytes(&self, id: &ReplicaId) -> u64 {
        read_progress(&self.staging_dir(id)).await.map_or(0, |p| p.offset)
    }

    /// Deletes the staging of `id` (an abandoned copy).
    pub async fn discard(&self, id: &ReplicaId) -> Result<()> {
        let dir = self.staging_dir(id);
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(id.as_str(), "remove", &dir)(e)),
        }
    }

    /// Copies the object, resuming a staged copy of the same replica and URL. On success
    /// the replica is committed and the staging deleted; on failure the staging is kept
    /// for the next attempt (call [`discard`](Self::discard) to give up).
    pub async fn copy(&self, request: &ObjectRequest, progress: &watch::Sender<SnapshotProgress>) -> Result<Replica> {
        let id = &request.replica_id;
        let dir = self.staging_dir(id);
        tokio::fs::create_dir_all(&dir).await.map_err(io_err(id.as_str(), "create", &dir))?;
        let part_path = dir.join(PART_FILE);
        let mut state = match read_progress(&dir).await {
            Some(p) if p.url == request.url && p.chunk_bytes == self.config.chunk_bytes => p,
            _ => fresh(&request.url, self.config.chunk_bytes),
        };
        let mut part = tokio::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&part_path)
            .await
            .map_err(io_err(id.as_str(), "open", &part_path))?;
        // Bytes past the recorded offset were written but never vouched for.
        part.set_len(state.offset).await.map_err(io_err(id.as_str(), "truncate", &part_path))?;
        if state.offset > 0 {
            tracing::info!(replica = %id, offset = state.offset, "resuming an object copy");
        }
        progress.send_replace(SnapshotProgress {
            resources_total: 1,
            bytes_copied: state.offset,
            ..Default::default()
        });
        loop {
            if state.total.is_some_and(|t| state.offset >= t) {
                break;
            }
            let end = state.offset + self.config.chunk_bytes - 1;
            let mut req = self.client.get(&request.url).header(header::RANGE, format!("bytes={}-{end}", state.offset));
            if let Some(v) = state.etag.as_ref().or(state.last_modified.as_ref())
                && state.offset > 0
            {
                req = req.header(header::IF_RANGE, v);
            }
            let mut response = req.send().await.map_err(|source| fetch_err(id, &request.url, source))?;
            let status = response.status();
            let header_text = |r: &reqwest::Response, name: header::HeaderName| {
                r.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
            };
            match status {
                StatusCode::PARTIAL_CONTENT => {
                    let range = header_text(&response, header::CONTENT_RANGE).unwrap_or_default();
                    let (start, total) = parse_content_range(&range).ok_or_else(|| ReplicaError::Status {
                        replica: id.to_string(),
                        url: format!("{} (Content-Range {range:?})", request.url),
                        status: 206,
                    })?;
                    if start != state.offset {
                        return Err(ReplicaError::Status {
                            replica: id.to_string(),
                            url: format!("{} (asked for byte {}, got {start})", request.url, state.offset),
                            status: 206,
                        });
                    }
                    if state.offset == 0 {
                        state.etag = header_text(&response, header::ETAG);
                        state.last_modified = header_text(&response, header::LAST_MODIFIED);
                        state.content_type = header_text(&response, header::CONTENT_TYPE);
                    }
                    state.total = Some(total);
                }
                StatusCode::OK => {
                    // No ranges, or the object changed since the staged chunks: all again.
                    if state.offset > 0 {
                        tracing::info!(replica = %id, "the object changed or ranges are not served; copying it again");
                    }
                    state = fresh(&request.url, self.config.chunk_bytes);
                    part.set_len(0).await.map_err(io_err(id.as_str(), "truncate", &part_path))?;
                    state.etag = header_text(&response, header::ETAG);
                    state.last_modified = header_text(&response, header::LAST_MODIFIED);
                    state.content_type = header_text(&response, header::CONTENT_TYPE);
                    state.total =
                        header_text(&response, header::CONTENT_LENGTH).and_then(|v| v.trim().parse::<u64>().ok());
                }
                other => {
                    return Err(ReplicaError::Status {
                        replica: id.to_string(),
                        url: request.url.clone(),
                        status: other.as_u16(),
                    });
                }
            }
            part.seek(std::io::SeekFrom::Start(state.offset)).await.map_err(io_err(id.as_str(), "seek", &part_path))?;
            // Chunks of `chunk_bytes`; a whole-object answer is cut into chunks as it streams.
            let mut hasher = Sha256::new();
            let mut in_chunk = 0u64;
            while let Some(bytes) = response.chunk().await.map_err(|source| fetch_err(id, &request.url, source))? {
                let mut rest = &bytes[..];
                while !rest.is_empty() {
                    let take = rest.len().min((self.config.chunk_bytes - in_chunk) as usize);
                    part.write_all(&rest[..take]).await.map_err(io_err(id.as_str(), "write", &part_path))?;
                    hasher.update(&rest[..take]);
                    in_chunk += take as u64;
                    rest = &rest[take..];
                    if in_chunk == self.config.chunk_bytes {
                        self.checkpoint(&dir, &mut part, &mut state, &mut hasher, in_chunk, id).await?;
                        progress.send_modify(|p| p.bytes_copied = state.offset);
                        in_chunk = 0;
                    }
                }
            }
            if in_chunk > 0 {
                // A ranged answer must deliver the whole chunk asked for (only the object's
                // last chunk is shorter); a short one is dropped and asked for again.
                let complete = status == StatusCode::OK || state.total.is_some_and(|t| state.offset + in_chunk == t);
                if !complete {
                    return Err(ReplicaError::LengthMismatch {
                        replica: id.to_string(),
                        url: request.url.clone(),
                        expected: self.config.chunk_bytes,
                        received: in_chunk,
                    });
                }
                self.checkpoint(&dir, &mut part, &mut state, &mut hasher, in_chunk, id).await?;
                progress.send_modify(|p| p.bytes_copied = state.offset);
            }
            if status == StatusCode::OK {
                if let Some(total) = state.total
                    && total != state.offset
                {
                    return Err(ReplicaError::LengthMismatch {
                        replica: id.to_string(),
                        url: request.url.clone(),
                        expected: total,
                        received: state.offset,
                    });
                }
                state.total = Some(state.offset);
                break;
            }
        }
        let replica = self.commit(request, &state, &part_path).await?;
        self.discard(id).await?;
        progress.send_modify(|p| p.resources_done = 1);
        Ok(replica)
    }

    /// Makes the chunk just written durable, then records it.
    async fn checkpoint(
        &self,
        dir: &Path,
        part: &mut tokio::fs::File,
        state: &mut Progress,
        hasher: &mut Sha256,
        len: u64,
        id: &ReplicaId,
    ) -> Result<()> {
        part.flush().await.map_err(io_err(id.as_str(), "write", dir.join(PART_FILE)))?;
        part.sync_data().await.map_err(io_err(id.as_str(), "fsync", dir.join(PART_FILE)))?;
        let digest = std::mem::take(hasher).finalize();
        state.chunks.push(to_hex(&digest));
        state.offset += len;
        write_progress(dir, state, id).await
    }

    /// Streams the staged object into the store, re-checking every chunk's checksum, and
    /// commits the replica.
    async fn commit(&self, request: &ObjectRequest, state: &Progress, part_path: &Path) -> Result<Replica> {
        let id = &request.replica_id;
        let writer = self.store.begin(id).await?;
        let result = async {
            let mut resource = writer.create_resource(&ResourceKey::for_variant(&request.variant)).await?;
            let mut file = tokio::fs::File::open(part_path).await.map_err(io_err(id.as_str(), "open", part_path))?;
            let mut buf = vec![0u8; 256 * 1024];
            for (index, expected) in state.chunks.iter().enumerate() {
                let start = index as u64 * state.chunk_bytes;
                let len = (state.offset - start).min(state.chunk_bytes);
                let mut hasher = Sha256::new();
                let mut left = len;
                while left > 0 {
                    let n = buf.len().min(left as usize);
                    file.read_exact(&mut buf[..n]).await.map_err(io_err(id.as_str(), "read", part_path))?;
                    hasher.update(&buf[..n]);
                    resource.write(&buf[..n]).await?;
                    left -= n as u64;
                }
                if to_hex(&hasher.finalize()) != *expected {
                    return Err(ReplicaError::Corrupt {
                        replica: id.to_string(),
                        path: part_path.to_owned(),
                        reason: format!("chunk {index} does not match its checksum"),
                    });
                }
            }
            let head = ResourceHead {
                variant: request.variant.clone(),
                source_url: request.url.clone(),
                status: 200,
                content_type: state.content_type.clone(),
                etag: state.etag.clone(),
                last_modified: state.last_modified.clone(),
            };
            let meta = resource.finish(head).await?;
            writer.commit(&request.url, &[meta]).await
        }
        .await;
        match result {
            Ok(replica) => Ok(replica),
            Err(e) => {
                if let Err(cleanup) = writer.abort().await {
                    tracing::warn!(replica = %id, error = %cleanup, "could not remove the partial replica; recover() will");
                }
                if matches!(e, ReplicaError::Corrupt { .. }) {
                    // A damaged staging cannot be resumed: start again next time.
                    let _ = self.discard(id).await;
                }
                Err(e)
            }
        }
    }
}

fn fresh(url: &str, chunk_bytes: u64) -> Progress {
    Progress {
        url: url.to_owned(),
        total: None,
        etag: None,
        last_modified: None,
        content_type: None,
        chunk_bytes,
        chunks: Vec::new(),
        offset: 0,
    }
}

async fn read_progress(dir: &Path) -> Option<Progress> {
    let bytes = tokio::fs::read(dir.join(PROGRESS_FILE)).await.ok()?;
    let p: Progress = serde_json::from_slice(&bytes).ok()?;
    // Consistent or ignored: chunk count and offset must agree.
    let full = p.chunks.len().saturating_sub(1) as u64 * p.chunk_bytes;
    let consistent =
        if p.chunks.is_empty() { p.offset == 0 } else { p.offset > full && p.offset <= full + p.chunk_bytes };
    consistent.then_some(p)
}

async fn write_progress(dir: &Path, state: &Progress, id: &ReplicaId) -> Result<()> {
    let bytes = serde_json::to_vec(state).expect("progress serializes");
    let tmp = dir.join(format!("{PROGRESS_FILE}.tmp"));
    let target = dir.join(PROGRESS_FILE);
    let (dir, replica) = (dir.to_owned(), id.to_string());
    tokio::task::spawn_blocking(move || -> Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).map_err(io_err(&replica, "create", &tmp))?;
        f.write_all(&bytes).map_err(io_err(&replica, "write", &tmp))?;
        f.sync_all().map_err(io_err(&replica, "fsync", &tmp))?;
        std::fs::rename(&tmp, &target).map_err(io_err(&replica, "rename", &target))?;
        std::fs::File::open(&dir).and_then(|d| d.sync_all()).map_err(io_err(&replica, "fsync", &dir))
    })
    .await
    .expect("the progress write does not panic")
}

/// `bytes START-END/TOTAL` → (START, TOTAL).
fn parse_content_range(v: &str) -> Option<(u64, u64)> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, _end) = range.split_once('-')?;
    Some((start.trim().parse().ok()?, total.trim().parse().ok()?))
}

fn fetch_err(id: &ReplicaId, url: &str, source: reqwest::Error) -> ReplicaError {
    ReplicaError::Fetch { replica: id.to_string(), url: url.to_owned(), source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges_parse() {
        assert_eq!(parse_content_range("bytes 0-99/1000"), Some((0, 1000)));
        assert_eq!(parse_content_range("bytes 100-199/200"), Some((100, 200)));
        assert_eq!(parse_content_range("bytes */1000"), None);
        assert_eq!(parse_content_range("items 0-1/2"), None);
    }
}
