//! Keeping the route table in step with a catalog: a snapshot, then the change stream,
//! rebuilding and swapping the table after every burst of relevant changes.
//!
//! Two sources, one loop shape: the local [`Catalog`] ([`follow_catalog`], inside a node)
//! and a node's HTTP API ([`follow_remote`], for a stand-alone `civitas proxy`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;

use bytes::{Bytes, BytesMut};
use civitas_catalog::kv::KvError;
use civitas_catalog::{Catalog, CatalogError, CatalogEvent, MAX_PAGE, Page, SearchQuery};
use civitas_model::{Document, Kind, Urn};
use futures::{Stream, StreamExt};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde_json::Value;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::routes::{RouteHandle, RouteTable};

/// The kinds a route table is built from.
const KINDS: [Kind; 4] = [Kind::Site, Kind::SiteLink, Kind::DataUnit, Kind::DataInstance];
/// After a change, wait this long for the next one of the same burst…
const BURST_GAP: Duration = Duration::from_millis(5);
/// …but never longer than this in total before the table is rebuilt.
const BURST_MAX: Duration = Duration::from_millis(40);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// The node sends a heartbeat every 15 s by default; silence for this long means a dead link.
const REMOTE_SILENCE: Duration = Duration::from_secs(45);
const REMOTE_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest NDJSON line accepted from a remote watch.
const MAX_LINE: usize = 64 * 1024 * 1024;

/// Route documents by kind and name.
pub type Documents = HashMap<(Kind, Urn), Document>;

/// Where a follower publishes the documents it follows: straight into a [`RouteHandle`]
/// (a table from one catalog), or into a [`RouteMerger`] slot (one catalog of several).
#[derive(Clone)]
pub struct RouteSink(Sink);

#[derive(Clone)]
enum Sink {
    Table(RouteHandle),
    Merged { merger: Arc<RouteMerger>, source: usize },
}

impl From<RouteHandle> for RouteSink {
    fn from(routes: RouteHandle) -> RouteSink {
        RouteSink(Sink::Table(routes))
    }
}

impl RouteSink {
    fn publish(&self, docs: &Documents, revision: u64) {
        match &self.0 {
            Sink::Table(routes) => routes.replace(RouteTable::build_at(docs.values(), revision)),
            Sink::Merged { merger, source } => merger.publish(*source, docs, revision),
        }
    }
}

/// The route documents of several catalogs merged into one table: source 0 is the node's
/// own catalog, the others its peers' (federation). Where two sources hold a document of
/// the same kind and name, the lower source wins. The table's revision is source 0's.
pub struct RouteMerger {
    routes: RouteHandle,
    sources: Mutex<Vec<Documents>>,
    revision: std::sync::atomic::AtomicU64,
    merged: ArcSwap<MergedDocuments>,
}

/// The merged route documents with the source each came from.
#[derive(Debug, Default)]
pub struct MergedDocuments {
    /// By kind, then name: the document and the index of the source that holds it
    /// (looked up by a borrowed name: the data plane's guard does so per request).
    documents: HashMap<Kind, HashMap<Urn, (usize, Document)>>,
}

impl MergedDocuments {
    /// A document and its source.
    pub fn get(&self, kind: Kind, name: &Urn) -> Option<(usize, &Document)> {
        self.documents.get(&kind)?.get(name).map(|(s, d)| (*s, d))
    }

    /// Every document of a kind, with its source.
    pub fn of_kind(&self, kind: Kind) -> impl Iterator<Item = (usize, &Document)> {
        self.documents.get(&kind).into_iter().flat_map(|m| m.values()).map(|(s, d)| (*s, d))
    }

    fn all(&self) -> impl Iterator<Item = &Document> {
        self.documents.values().flat_map(|m| m.values()).map(|(_, d)| d)
    }
}

impl RouteMerger {
    /// A merger of `sources` catalogs publishing into `routes`.
    pub fn new(routes: RouteHandle, sources: usize) -> Arc<RouteMerger> {
        Arc::new(RouteMerger {
            routes,
            sources: Mutex::new(vec![Documents::new(); sources.max(1)]),
            revision: std::sync::atomic::AtomicU64::new(0),
            merged: ArcSwap::from_pointee(MergedDocuments::default()),
        })
    }

    /// The sink for source `source` (0: the node's own catalog).
    pub fn sink(self: &Arc<Self>, source: usize) -> RouteSink {
        RouteSink(Sink::Merged { merger: Arc::clone(self), source })
    }

    /// The documents the current table was built from. Lock-free.
    pub fn documents(&self) -> Arc<MergedDocuments> {
        self.merged.load_full()
    }

    fn publish(&self, source: usize, docs: &Documents, revision: u64) {
        use std::sync::atomic::Ordering;
        // One publisher at a time: the union and the table are rebuilt under the lock so
        // two sources publishing together cannot install an older union last.
        let mut sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        if source >= sources.len() {
            sources.resize_with(source + 1, Documents::new);
        }
        sources[source] = docs.clone();
        if source == 0 {
            self.revision.store(revision, Ordering::Relaxed);
        }
        let mut merged = MergedDocuments::default();
        for (index, docs) in sources.iter().enumerate() {
            for (key, doc) in docs {
                let (kind, name) = key;
                merged.documents.entry(*kind).or_default().entry(name.clone()).or_insert_with(|| (index, doc.clone()));
            }
        }
        let table = RouteTable::build_at(merged.all(), self.revision.load(Ordering::Relaxed));
        self.merged.store(Arc::new(merged));
        self.routes.replace(table);
    }
}

/// Resolves when `shutdown` turns true; never, if its sender is gone.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Doubling delays between attempts, reset after a success.
struct Backoff(Duration);

impl Backoff {
    fn next(&mut self) -> Duration {
        let d = self.0;
        self.0 = (self.0 * 2).min(BACKOFF_MAX);
        d
    }

    fn reset(&mut self) {
        self.0 = BACKOFF_MIN;
    }
}

/// Why one follow attempt ended.
enum Ended {
    /// The history was compacted or the watch fell behind: start again from a snapshot.
    Resync(String),
    /// Something failed: wait, then start again.
    Failed(String),
}

/// Follows the local catalog: a snapshot of every `DataUnit`, `DataInstance`, `Site` and
/// `SiteLink` (through [`Catalog::search`] pages), then [`Catalog::watch`] from the
/// snapshot's revision, rebuilding and swapping the table after every burst of changes
/// (a change takes effect within ~50 ms). On `Lagged` or `Compacted` it starts again from a
/// fresh snapshot; on other errors after a backoff. Ends when `shutdown` turns true.
pub async fn follow_catalog(catalog: Catalog, routes: impl Into<RouteSink>, mut shutdown: watch::Receiver<bool>) {
    let routes = routes.into();
    let mut backoff = Backoff(BACKOFF_MIN);
    loop {
        let ended = tokio::select! {
            () = stopped(&mut shutdown) => return,
            ended = follow_catalog_once(&catalog, &routes, &mut backoff) => ended,
        };
        match ended {
            Ended::Resync(why) => tracing::info!(reason = %why, "catalog watch restarts from a fresh snapshot"),
            Ended::Failed(why) => {
                let delay = backoff.next();
                tracing::warn!(error = %why, retry_in_ms = delay.as_millis() as u64, "following the catalog failed");
                tokio::select! {
                    () = stopped(&mut shutdown) => return,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

fn classify(e: CatalogError) -> Ended {
    match e {
        CatalogError::Compacted { .. } | CatalogError::Store(KvError::Lagged { .. }) => Ended::Resync(e.to_string()),
        other => Ended::Failed(other.to_string()),
    }
}

async fn follow_catalog_once(catalog: &Catalog, routes: &RouteSink, backoff: &mut Backoff) -> Ended {
    let revision = match catalog.revision().await {
        Ok(r) => r,
        Err(e) => return classify(e),
    };
    let mut docs = match catalog_snapshot(catalog).await {
        Ok(d) => d,
        Err(e) => return classify(e),
    };
    // Changes made while the pages were read are replayed by the watch below; applying
    // them again is harmless.
    let stream = match catalog.watch(Some(revision + 1)).await {
        Ok(s) => s,
        Err(e) => return classify(e),
    };
    routes.publish(&docs, revision);
    tracing::info!(revision, documents = docs.len(), "route table built from the catalog");
    backoff.reset();
    let mut stream = std::pin::pin!(stream);
    let mut last = revision;
    loop {
        let mut changed = match stream.next().await {
            None => return Ended::Resync("the catalog watch ended".into()),
            Some(Err(e)) => return classify(e),
            Some(Ok(ev)) => apply_event(&mut docs, &mut last, ev),
        };
        let mut end = None;
        collect_burst(&mut stream, |item| match item {
            Ok(ev) => {
                changed |= apply_event(&mut docs, &mut last, ev);
                true
            }
            Err(e) => {
                end = Some(classify(e));
                false
            }
        })
        .await;
        if changed {
            routes.publish(&docs, last);
        }
        if let Some(end) = end {
            return end;
        }
    }
}

/// Feeds `apply` the items that follow within [`BURST_GAP`] of each other, for at most
/// [`BURST_MAX`]; stops early when `apply` says so or the stream ends.
async fn collect_burst<S, T>(stream: &mut std::pin::Pin<&mut S>, mut apply: impl FnMut(T) -> bool)
where
    S: Stream<Item = T>,
{
    let deadline = Instant::now() + BURST_MAX;
    loop {
        let wait = deadline.saturating_duration_since(Instant::now()).min(BURST_GAP);
        match tokio::time::timeout(wait, stream.next()).await {
            Ok(Some(item)) => {
                if !apply(item) {
                    return;
                }
            }
            Ok(None) | Err(_) => return,
        }
    }
}

/// Applies one change; whether it matters to the route table.
fn apply_event(docs: &mut Documents, last: &mut u64, ev: CatalogEvent) -> bool {
    *last = (*last).max(ev.revision);
    if !KINDS.contains(&ev.kind) {
        return false;
    }
    match ev.document {
        None => docs.remove(&(ev.kind, ev.name)).is_some(),
        Some(bytes) => match serde_json::from_slice::<Value>(&bytes)
            .map_err(|e| e.to_string())
            .and_then(|v| Document::decode_as(&v, ev.kind).map_err(|e| e.to_string()))
        {
            Ok(doc) => {
                docs.insert((ev.kind, ev.name), doc);
                true
            }
            Err(e) => {
                tracing::warn!(kind = %ev.kind, name = %ev.name, error = %e, "ignoring an unreadable catalog change");
                false
            }
        },
    }
}

async fn catalog_snapshot(catalog: &Catalog) -> Result<Documents, CatalogError> {
    let mut docs = Documents::new();
    for kind in KINDS {
        let query = SearchQuery { kind: Some(kind), ..SearchQuery::default() };
        let mut after = None;
        loop {
            let page = catalog.search(&query, &Page { after: after.take(), limit: Some(MAX_PAGE) }).await?;
            for item in page.items {
                let doc = item.document()?;
                docs.insert((kind, item.name), doc);
            }
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
    }
    Ok(docs)
}

// ---- remote ------------------------------------------------------------------------

type RemoteClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// How to reach a remote node: its credentials and TLS trust.
#[derive(Clone, Debug, Default)]
pub struct RemoteAccess {
    /// Sent as `Authorization` with every request (e.g. `Bearer …`), for nodes that run
    /// with security on.
    pub authorization: Option<http::HeaderValue>,
    /// TLS for `https://` nodes; default: the system's roots ([`crate::tls::client_config`]).
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// Follows a node's catalog through its HTTP API, for a stand-alone `civitas proxy
/// --catalog URL`: opens `GET /api/v1/watch` (new changes only), then lists
/// `GET /api/v1/{units,instances,sites,site-links}` page by page (following `next`), builds
/// the table, and applies the NDJSON change lines as they come. Changes made while listing
/// arrive on the already-open watch, so none is missed. Reconnects with backoff (100 ms
/// doubling to 10 s) when the node is unreachable, answers an error, or stays silent longer
/// than three heartbeats. Ends when `shutdown` turns true.
///
/// The table's revision is the highest revision seen on the watch (0 until the first
/// change or heartbeat).
/// `access` carries the credentials and TLS trust for the node (`http://` or `https://`).
pub async fn follow_remote(
    base_url: String,
    access: RemoteAccess,
    routes: impl Into<RouteSink>,
    mut shutdown: watch::Receiver<bool>,
) {
    let routes = routes.into();
    let base = base_url.trim_end_matches('/').to_string();
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.set_connect_timeout(Some(Duration::from_secs(5)));
    http.enforce_http(false);
    let tls = match access.tls {
        Some(t) => t,
        None => crate::tls::client_config(None).expect("without a CA file the client configuration always builds"),
    };
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(rustls::ClientConfig::clone(&tls))
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    let client: RemoteClient = Client::builder(TokioExecutor::new()).pool_timer(TokioTimer::new()).build(https);
    let authorization = access.authorization;
    let mut backoff = Backoff(BACKOFF_MIN);
    loop {
        let result = tokio::select! {
            () = stopped(&mut shutdown) => return,
            r = follow_remote_once(&client, &base, authorization.as_ref(), &routes, &mut backoff) => r,
        };
        let delay = backoff.next();
        match result {
            Ok(()) => tracing::info!(catalog = %base, "catalog watch ended; reconnecting"),
            Err(e) => tracing::warn!(catalog = %base, error = %e, retry_in_ms = delay.as_millis() as u64,
                "following the remote catalog failed"),
        }
        tokio::select! {
            () = stopped(&mut shutdown) => return,
            () = tokio::time::sleep(delay) => {}
        }
    }
}

async fn get(
    client: &RemoteClient,
    url: &str,
    authorization: Option<&http::HeaderValue>,
) -> Result<hyper::body::Incoming, String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let mut request = http::Request::get(uri).body(Empty::<Bytes>::new()).map_err(|e| format!("{url}: {e}"))?;
    if let Some(a) = authorization {
        request.headers_mut().insert(http::header::AUTHORIZATION, a.clone());
    }
    let resp = tokio::time::timeout(REMOTE_REQUEST_TIMEOUT, client.request(request))
        .await
        .map_err(|_| format!("{url}: no answer within {} s", REMOTE_REQUEST_TIMEOUT.as_secs()))?
        .map_err(|e| format!("{url}: {}", crate::proxy::error_chain(&e)))?;
    if !resp.status().is_success() {
        let status = resp.status();
        let body = tokio::time::timeout(REMOTE_REQUEST_TIMEOUT, resp.into_body().collect())
            .await
            .ok()
            .and_then(Result::ok)
            .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
            .unwrap_or_default();
        return Err(format!("{url}: {status} {}", body.chars().take(500).collect::<String>()));
    }
    Ok(resp.into_body())
}

async fn follow_remote_once(
    client: &RemoteClient,
    base: &str,
    authorization: Option<&http::HeaderValue>,
    routes: &RouteSink,
    backoff: &mut Backoff,
) -> Result<(), String> {
    let watch_body = get(client, &format!("{base}/api/v1/watch"), authorization).await?;
    let mut docs = Documents::new();
    for kind in KINDS {
        let mut after: Option<String> = None;
        loop {
            let mut url = format!("{base}/api/v1/{}?limit={MAX_PAGE}", kind.collection());
            if let Some(a) = &after {
                url.push_str("&after=");
                url.push_str(&encode_query_value(a));
            }
            let body = get(client, &url, authorization).await?;
            let bytes = tokio::time::timeout(REMOTE_REQUEST_TIMEOUT, body.collect())
                .await
                .map_err(|_| format!("{url}: body not received within {} s", REMOTE_REQUEST_TIMEOUT.as_secs()))?
                .map_err(|e| format!("{url}: {e}"))?
                .to_bytes();
            let page: Value = serde_json::from_slice(&bytes).map_err(|e| format!("{url}: not JSON: {e}"))?;
            let items = page.get("items").and_then(Value::as_array).ok_or(format!("{url}: no `items` array"))?;
            for item in items {
                match Document::decode_as(item, kind) {
                    Ok(doc) => {
                        docs.insert((kind, doc.name().clone()), doc);
                    }
                    Err(e) => tracing::warn!(url = %url, error = %e, "ignoring an unreadable listed document"),
                }
            }
            match page.get("next").and_then(Value::as_str) {
                Some(n) if !n.is_empty() => after = Some(n.to_string()),
                _ => break,
            }
        }
    }
    let mut revision = 0;
    routes.publish(&docs, revision);
    tracing::info!(catalog = %base, documents = docs.len(), "route table built from the remote catalog");
    backoff.reset();

    let mut lines = LineReader { body: watch_body, buf: BytesMut::new() };
    loop {
        let line = match tokio::time::timeout(REMOTE_SILENCE, lines.next_line()).await {
            Err(_) => return Err(format!("no change or heartbeat for {} s", REMOTE_SILENCE.as_secs())),
            Ok(r) => r?,
        };
        let Some(line) = line else { return Ok(()) };
        let mut changed = apply_remote_line(&mut docs, &mut revision, &line)?;
        // Gather the rest of a burst before rebuilding.
        let deadline = Instant::now() + BURST_MAX;
        loop {
            let wait = deadline.saturating_duration_since(Instant::now()).min(BURST_GAP);
            match tokio::time::timeout(wait, lines.next_line()).await {
                Ok(Ok(Some(line))) => changed |= apply_remote_line(&mut docs, &mut revision, &line)?,
                Ok(Ok(None)) => {
                    if changed {
                        routes.publish(&docs, revision);
                    }
                    return Ok(());
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => break,
            }
        }
        if changed {
            routes.publish(&docs, revision);
        }
    }
}

/// Splits a streaming body into lines.
struct LineReader {
    body: hyper::body::Incoming,
    buf: BytesMut,
}

impl LineReader {
    async fn next_line(&mut self) -> Result<Option<Bytes>, String> {
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line = self.buf.split_to(pos + 1).freeze();
                return Ok(Some(line.slice(..pos)));
            }
            if self.buf.len() > MAX_LINE {
                return Err(format!("a watch line is longer than {MAX_LINE} bytes"));
            }
            match self.body.frame().await {
                None => return Ok(None),
                Some(Err(e)) => return Err(format!("watch stream failed: {e}")),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
    }
}

/// Applies one NDJSON line of `/api/v1/watch`; whether the table must be rebuilt.
fn apply_remote_line(docs: &mut Documents, revision: &mut u64, line: &[u8]) -> Result<bool, String> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(false);
    }
    let v: Value = serde_json::from_slice(line).map_err(|e| format!("watch line is not JSON: {e}"))?;
    if let Some(r) = v.get("revision").and_then(Value::as_u64) {
        *revision = (*revision).max(r);
    }
    let kind = || v.get("type").and_then(Value::as_str).and_then(Kind::from_type_name).filter(|k| KINDS.contains(k));
    let name = || v.get("name").and_then(Value::as_str).and_then(|n| Urn::parse(n).ok());
    match v.get("op").and_then(Value::as_str) {
        Some("put") => {
            let (Some(kind), Some(doc)) = (kind(), v.get("document")) else { return Ok(false) };
            match Document::decode_as(doc, kind) {
                Ok(d) => {
                    docs.insert((kind, d.name().clone()), d);
                    Ok(true)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "ignoring an unreadable catalog change");
                    Ok(false)
                }
            }
        }
        Some("delete") => match (kind(), name()) {
            (Some(kind), Some(name)) => Ok(docs.remove(&(kind, name)).is_some()),
            _ => Ok(false),
        },
        Some("error") => {
            Err(format!("the node ended the watch: {}", v.get("detail").and_then(Value::as_str).unwrap_or("no detail")))
        }
        _ => Ok(false),
    }
}

/// Percent-encodes everything but unreserved characters.
fn encode_query_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_lines_apply_puts_and_deletes() {
        let mut docs = Documents::new();
        let mut rev = 0;
        let put = br#"{"op":"put","revision":7,"type":"Site","name":"urn:site:a","document":{"@type":"Site","name":"urn:site:a","version":"1","tier":"edge","region":"vienna"}}"#;
        assert!(apply_remote_line(&mut docs, &mut rev, put).unwrap());
        assert_eq!((docs.len(), rev), (1, 7));
        assert!(!apply_remote_line(&mut docs, &mut rev, br#"{"op":"heartbeat","revision":9}"#).unwrap());
        assert_eq!(rev, 9);
        let del = br#"{"op":"delete","revision":10,"type":"Site","name":"urn:site:a"}"#;
        assert!(apply_remote_line(&mut docs, &mut rev, del).unwrap());
        assert!(docs.is_empty());
        let other = br#"{"op":"delete","revision":11,"type":"TechnicalUnit","name":"urn:tu:a"}"#;
        assert!(!apply_remote_line(&mut docs, &mut rev, other).unwrap());
        assert!(apply_remote_line(&mut docs, &mut rev, br#"{"op":"error","detail":"lagged"}"#).is_err());
        assert_eq!(encode_query_value("units/urn:a b"), "units%2Furn%3Aa%20b");
    }

    fn docs(list: &[serde_json::Value]) -> Documents {
        list.iter()
            .map(|v| {
                let d = Document::decode(v).unwrap();
                ((d.kind(), d.name().clone()), d)
            })
            .collect()
    }

    #[test]
    fn merged_sources_make_one_table_and_the_own_catalog_wins() {
        let unit = |name: &str, link: &str| {
            serde_json::json!({"@type": "DataUnit", "name": name, "version": "1",
            "metainformation": {"type": "rest"}, "views": [{"name": "v", "link": link}]})
        };
        let instance = |name: &str, unit: &str| {
            serde_json::json!({"@type": "DataInstance", "name": name,
            "version": "1", "dataUnit": unit, "endpoint": "http://127.0.0.1:9"})
        };
        let routes = RouteHandle::new();
        let merger = RouteMerger::new(routes.clone(), 2);
        merger.sink(1).publish(
            &docs(&[unit("urn:unit:a", "/peer"), unit("urn:unit:b", "/b"), instance("urn:inst:b", "urn:unit:b")]),
            7,
        );
        assert!(routes.is_ready());
        assert_eq!(routes.current().instances("urn:unit:b", "v").unwrap().len(), 1, "a peer's unit is routable");
        merger.sink(0).publish(&docs(&[unit("urn:unit:a", "/own"), instance("urn:inst:a", "urn:unit:a")]), 3);
        let table = routes.current();
        assert_eq!(table.revision(), 3, "the table's revision is the own catalog's");
        assert_eq!(table.unit_count(), 2);
        let merged = merger.documents();
        let (source, doc) = merged.get(Kind::DataUnit, &Urn::parse("urn:unit:a").unwrap()).unwrap();
        assert_eq!(source, 0, "the own catalog's document wins");
        let Document::DataUnit(u) = doc else { panic!("not a unit") };
        assert_eq!(u.views[0].link, "/own");
        assert_eq!(merged.get(Kind::DataUnit, &Urn::parse("urn:unit:b").unwrap()).unwrap().0, 1);
        // A peer that drops its documents takes them out of the table.
        merger.sink(1).publish(&Documents::new(), 8);
        assert!(routes.current().instances("urn:unit:b", "v").is_none());
    }
}
