//! HTTP view snapshot: copies a view's canonical URL and the parameter variants seen in
//! observations from the origin into the replica store, keeping status, content type,
//! ETag and Last-Modified, and revalidates single resources later.

use std::time::Duration;

use futures::{StreamExt as _, TryStreamExt as _, stream};
use http::{StatusCode, header};
use tokio::sync::watch;

use crate::error::{ReplicaError, Result};
use crate::key::{ReplicaId, ResourceKey};
use crate::store::{Replica, ReplicaStore, ReplicaWriter, ResourceHead, ResourceMeta, ResourceWriter, now_unix_ms};

/// Limits of a snapshot copier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotConfig {
    /// Resources fetched at the same time (at least 1).
    pub concurrency: usize,
    /// Time allowed to connect to the origin.
    pub connect_timeout: Duration,
    /// Longest silence allowed while waiting for response headers or the next body chunk.
    pub read_timeout: Duration,
    /// Longest time one resource may take from request to last byte.
    pub resource_timeout: Duration,
    /// Headers sent with every request (a node pulling through its origin's node sends
    /// `x-civitas-route: origin`).
    pub headers: http::HeaderMap,
    /// PEM CA certificates trusted for `https` sources besides the system's roots.
    pub extra_roots_pem: Option<Vec<u8>>,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        SnapshotConfig {
            concurrency: 4,
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(30),
            resource_timeout: Duration::from_secs(600),
            headers: http::HeaderMap::new(),
            extra_roots_pem: None,
        }
    }
}

/// What to copy: a replica id, the origin instance's endpoint and the variants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRequest {
    /// The replica to create.
    pub replica_id: ReplicaId,
    /// The instance endpoint joined with the view's link, e.g. `http://origin:8080/api/stations`.
    pub endpoint: String,
    /// Path-and-query strings relative to `endpoint`, each starting with `/` or `?`
    /// (the empty string is the canonical URL itself). `/` and `/?query` — the data
    /// plane's names for the view's own resource — are fetched at `endpoint` exactly as
    /// written (a trailing slash neither added nor removed), plus the query; the others at
    /// `endpoint` without its trailing slash, then the variant. Duplicates are copied once.
    pub variants: Vec<String>,
    /// Answers of some variants already at hand (the node's data plane kept them from its
    /// clients' reads): such a variant is asked for with `If-None-Match`, and on `304` the
    /// seed's body is stored instead of crossing the link again. A changed variant gets a
    /// `200` and is copied as usual, so the source decides, as on every refresh.
    pub seeds: Vec<Seed>,
}

/// A known answer of one variant (see [`SnapshotRequest::seeds`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seed {
    /// The variant, as in [`SnapshotRequest::variants`].
    pub variant: String,
    /// Its strong `ETag`.
    pub etag: String,
    /// Its `Content-Type`.
    pub content_type: Option<String>,
    /// Its `Last-Modified`.
    pub last_modified: Option<String>,
    /// Its body.
    pub body: bytes::Bytes,
}

/// Progress of one copy, published on a `watch` channel: the latest value wins, so a slow
/// observer never slows the copy down.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotProgress {
    /// Resources to copy.
    pub resources_total: usize,
    /// Resources stored (written, checksummed, fsynced).
    pub resources_done: usize,
    /// Body bytes received so far, over all resources.
    pub bytes_copied: u64,
    /// Body bytes taken from seeds the source confirmed (not received).
    pub bytes_seeded: u64,
}

/// The outcome of a [`HttpSnapshot::revalidate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revalidation {
    /// The origin answered 304: the stored body is kept (its `validated_at` is updated).
    NotModified(ResourceMeta),
    /// The origin answered 200: the body and its record were replaced atomically.
    Replaced(ResourceMeta),
}

/// Copies HTTP views into a [`ReplicaStore`].
#[derive(Debug, Clone)]
pub struct HttpSnapshot {
    store: ReplicaStore,
    client: reqwest::Client,
    config: SnapshotConfig,
}

impl HttpSnapshot {
    /// A copier writing into `store`. Redirects are not followed (a 3xx is not copied)
    /// and no proxy from the environment is used: the copier talks to the origin directly.
    pub fn new(store: ReplicaStore, config: SnapshotConfig) -> Result<HttpSnapshot> {
        let client = super::http_client(super::ClientSettings {
            connect_timeout: config.connect_timeout,
            read_timeout: config.read_timeout,
            request_timeout: config.resource_timeout,
            headers: &config.headers,
            extra_roots_pem: config.extra_roots_pem.as_deref(),
        })?;
        Ok(HttpSnapshot { store, client, config })
    }

    /// The HTTP client it copies with (its default headers are the config's): a caller
    /// that talks to the same source right after a copy reuses its connection.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The store written to.
    pub fn store(&self) -> &ReplicaStore {
        &self.store
    }

    /// Copies every variant and commits the replica. On any failure — an unreachable
    /// origin, a status other than 2xx (206 excluded), a body cut short — nothing is
    /// committed and the partial replica is deleted. If the future is dropped midway, the
    /// partial replica stays on disk without a manifest, invisible to readers, until
    /// [`ReplicaStore::recover`] deletes it.
    pub async fn copy(&self, request: &SnapshotRequest, progress: &watch::Sender<SnapshotProgress>) -> Result<Replica> {
        let replica = request.replica_id.as_str();
        let endpoint =
            reqwest::Url::parse(&request.endpoint).map_err(|e| invalid_url(replica, &request.endpoint, e))?;
        if !matches!(endpoint.scheme(), "http" | "https") {
            return Err(invalid_url(replica, &request.endpoint, "only http and https endpoints are copied"));
        }
        let mut variants: Vec<&str> = Vec::with_capacity(request.variants.len());
        for variant in &request.variants {
            if !variant.is_empty() && !variant.starts_with('/') && !variant.starts_with('?') {
                return Err(invalid_url(replica, variant, "a variant must start with `/` or `?`"));
            }
            if !variants.contains(&variant.as_str()) {
                variants.push(variant);
            }
        }
        if variants.is_empty() {
            return Err(invalid_url(replica, &request.endpoint, "no variant to copy (use \"\" for the canonical URL)"));
        }
        let base = request.endpoint.trim_end_matches('/');
        progress.send_replace(SnapshotProgress { resources_total: variants.len(), ..SnapshotProgress::default() });

        let writer = self.store.begin(&request.replica_id).await?;
        // Owned variants: a closure taking a reference makes the future not `Send` for
        // every lifetime (rust-lang/rust#102211), which `tokio::spawn` needs.
        let owned: Vec<String> = variants.iter().map(|v| (*v).to_owned()).collect();
        let writer_ref = &writer;
        let fetched = stream::iter(owned.into_iter().map(move |variant: String| {
            // `/` and `/?query` are the view's own resource: fetched at the endpoint as written.
            let url = match variant.strip_prefix('/') {
                Some(q) if q.is_empty() || q.starts_with('?') => format!("{}{q}", request.endpoint),
                _ => join(base, &variant),
            };
            let seed = request.seeds.iter().find(|s| s.variant == variant);
            async move { self.fetch_new(writer_ref, &variant, url, seed, progress).await }
        }))
        .buffer_unordered(self.config.concurrency.max(1))
        .try_collect::<Vec<ResourceMeta>>()
        .await;
        let committed = match fetched {
            Ok(mut resources) => {
                // Manifest order follows the request, whatever order the fetches ended in.
                resources.sort_by_key(|meta| variants.iter().position(|v| *v == meta.variant));
                writer.commit(&request.endpoint, &resources).await
            }
            Err(e) => Err(e),
        };
        match committed {
            Ok(replica) => Ok(replica),
            Err(error) => {
                tracing::warn!(replica, error = %error, "snapshot failed, partial replica removed");
                if let Err(cleanup) = writer.abort().await {
                    tracing::warn!(replica, error = %cleanup, "could not remove the partial replica; recover() will");
                }
                Err(error)
            }
        }
    }

    /// Asks the origin whether one stored resource changed (`If-None-Match` with its ETag,
    /// `If-Modified-Since` with its Last-Modified). On 304 the body is kept; on 200 the new
    /// body is stored and its record replaced atomically, so a reader sees the old
    /// resource or the new one, never a mix. Any other answer is an error and keeps the
    /// stored resource.
    pub async fn revalidate(&self, id: &ReplicaId, key: &ResourceKey) -> Result<Revalidation> {
        let old = self.store.resource(id, key).await?;
        let url = old.source_url.clone();
        let mut request = self.client.get(&url);
        if let Some(etag) = &old.etag {
            request = request.header(header::IF_NONE_MATCH, etag);
        }
        if let Some(last_modified) = &old.last_modified {
            request = request.header(header::IF_MODIFIED_SINCE, last_modified);
        }
        let response = request.send().await.map_err(|source| fetch_err(id.as_str(), &url, source))?;
        match response.status() {
            StatusCode::NOT_MODIFIED => {
                let meta = ResourceMeta { validated_at_unix_ms: now_unix_ms(), ..old };
                self.store.update_meta(id, &meta).await?;
                Ok(Revalidation::NotModified(meta))
            }
            StatusCode::OK => {
                let writer = self.store.replace_resource(id, key).await?;
                let new = stream_body(writer, response, id.as_str(), &old.variant, url, None).await?;
                self.store.commit_replacement(&old, &new, id).await?;
                Ok(Revalidation::Replaced(new))
            }
            status => Err(ReplicaError::Status { replica: id.to_string(), url, status: status.as_u16() }),
        }
    }

    async fn fetch_new(
        &self,
        writer: &ReplicaWriter,
        variant: &str,
        url: String,
        seed: Option<&Seed>,
        progress: &watch::Sender<SnapshotProgress>,
    ) -> Result<ResourceMeta> {
        let replica = writer.id().as_str();
        let mut request = self.client.get(&url);
        if let Some(seed) = seed {
            request = request.header(header::IF_NONE_MATCH, &seed.etag);
        }
        let response = request.send().await.map_err(|source| fetch_err(replica, &url, source))?;
        let status = response.status();
        if let Some(seed) = seed.filter(|_| status == StatusCode::NOT_MODIFIED) {
            let text = |name| header_text(response.headers(), name);
            // The 304's own validators win (RFC 9111 §4.3.4); the rest is the seed's.
            let head = ResourceHead {
                variant: variant.to_owned(),
                source_url: url,
                status: StatusCode::OK.as_u16(),
                content_type: seed.content_type.clone(),
                etag: text(header::ETAG).or_else(|| Some(seed.etag.clone())),
                last_modified: text(header::LAST_MODIFIED).or_else(|| seed.last_modified.clone()),
            };
            let mut resource = writer.create_resource(&ResourceKey::for_variant(variant)).await?;
            resource.write(&seed.body).await?;
            let meta = resource.finish(head).await?;
            progress.send_modify(|p| {
                p.resources_done += 1;
                p.bytes_seeded += seed.body.len() as u64;
            });
            return Ok(meta);
        }
        if !status.is_success() || status == StatusCode::PARTIAL_CONTENT {
            return Err(ReplicaError::Status { replica: replica.to_owned(), url, status: status.as_u16() });
        }
        let resource = writer.create_resource(&ResourceKey::for_variant(variant)).await?;
        let meta = stream_body(resource, response, replica, variant, url, Some(progress)).await?;
        progress.send_modify(|p| p.resources_done += 1);
        Ok(meta)
    }
}

/// Streams a response body into `resource` (flat memory: one chunk at a time), checks
/// `Content-Length` when the origin sent one, and finishes the resource.
async fn stream_body(
    mut resource: ResourceWriter,
    mut response: reqwest::Response,
    replica: &str,
    variant: &str,
    url: String,
    progress: Option<&watch::Sender<SnapshotProgress>>,
) -> Result<ResourceMeta> {
    let text = |name| header_text(response.headers(), name);
    let head = ResourceHead {
        variant: variant.to_owned(),
        source_url: url.clone(),
        status: response.status().as_u16(),
        content_type: text(header::CONTENT_TYPE),
        etag: text(header::ETAG),
        last_modified: text(header::LAST_MODIFIED),
    };
    let expected = text(header::CONTENT_LENGTH).and_then(|v| v.trim().parse::<u64>().ok());
    while let Some(chunk) = response.chunk().await.map_err(|source| fetch_err(replica, &url, source))? {
        resource.write(&chunk).await?;
        if let Some(progress) = progress {
            progress.send_modify(|p| p.bytes_copied += chunk.len() as u64);
        }
    }
    if let Some(expected) = expected
        && expected != resource.bytes_written()
    {
        return Err(ReplicaError::LengthMismatch {
            replica: replica.to_owned(),
            url,
            expected,
            received: resource.bytes_written(),
        });
    }
    resource.finish(head).await
}

/// A header's value as text (`None` when absent or not visible ASCII).
fn header_text(headers: &http::HeaderMap, name: header::HeaderName) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

fn join(base: &str, variant: &str) -> String {
    let mut url = String::with_capacity(base.len() + variant.len());
    url.push_str(base);
    url.push_str(variant);
    url
}

fn invalid_url(replica: &str, url: &str, reason: impl ToString) -> ReplicaError {
    ReplicaError::InvalidUrl { replica: replica.to_owned(), url: url.to_owned(), reason: reason.to_string() }
}

fn fetch_err(replica: &str, url: &str, source: reqwest::Error) -> ReplicaError {
    ReplicaError::Fetch { replica: replica.to_owned(), url: url.to_owned(), source }
}
