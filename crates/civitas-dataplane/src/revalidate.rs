//! The validation cache: the last `200` answer to a plain `GET`, kept with its strong
//! `ETag`, so that the next identical request goes upstream with `If-None-Match` and an
//! unchanged answer crosses the (possibly slow, possibly metered) path to the upstream as
//! a bodiless `304`, the body coming from here.
//!
//! It is not a cache that answers on its own: **every** request still goes to the upstream,
//! which decides (RFC 9111's `no-cache` behaviour: a stored response is used only after
//! successful validation, §4.3). So an answer is never staler than the upstream's own, and
//! a view that changes every second loses nothing: its clients then get `200`s, as before.
//! What it saves is bytes and transfer time when several clients read the same unchanged
//! answer — the reads of a view that stays at a distant origin (mobility in the paper's
//! scenarios).
//!
//! Kept only when safe to share: `200` to a `GET` without credentials, cookies, ranges or
//! conditions of its own; a strong `ETag`; a declared `Content-Length` within the entry
//! limit; no `Cache-Control: no-store` or `private`; no `Set-Cookie`; `Vary` only on
//! `Accept` and `Accept-Encoding`, which are part of the key. Bounded in bytes (least
//! recently used entries are evicted); the lock of one of 16 shards is held for a hash
//! look-up or insert only, never across an await.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use civitas_model::Urn;
use http::header::{self, HeaderMap, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Uri};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

const SHARDS: usize = 16;

/// What identifies a stored answer: the upstream URL and the negotiation headers.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub(crate) struct Key {
    uri: String,
    accept: Option<HeaderValue>,
    accept_encoding: Option<HeaderValue>,
}

/// A stored answer.
#[derive(Debug)]
pub(crate) struct Stored {
    /// Its strong validator, sent as `If-None-Match`.
    pub(crate) etag: HeaderValue,
    /// Its end-to-end headers (hop-by-hop ones already removed).
    pub(crate) headers: HeaderMap,
    /// Its body.
    pub(crate) body: Bytes,
    /// The view and variant (path and query below the view) the answer is of.
    of: Option<(Arc<Urn>, PathAndQuery)>,
    stored_at: Instant,
    last_used: AtomicU64,
}

/// While the SDD is inactive an answer is kept at most this often per request: enough for
/// a copy of the view to start from a recent answer, cheap on the proxy's path.
pub(crate) const KEEP_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Shard {
    entries: HashMap<Key, Arc<Stored>>,
    bytes: usize,
}

/// The cache of one data plane.
pub(crate) struct ValidationCache {
    shards: Vec<Mutex<Shard>>,
    hasher: RandomState,
    shard_budget: usize,
    max_entry_bytes: usize,
    clock: AtomicU64,
    /// Answers served from here after the upstream said `304 Not Modified`.
    pub(crate) not_modified: Counter,
    /// Answers stored (or replaced).
    pub(crate) stores: Counter,
    /// Bytes held.
    pub(crate) bytes: Gauge,
}

/// Request headers that make a request unsuitable for a shared stored answer: its own
/// conditions or range (the client then talks to the upstream itself), credentials, cookies.
const PRIVATE_OR_CONDITIONAL: [header::HeaderName; 8] = [
    header::AUTHORIZATION,
    header::COOKIE,
    header::RANGE,
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
    header::IF_MATCH,
    header::IF_UNMODIFIED_SINCE,
    header::IF_RANGE,
];

impl ValidationCache {
    /// A cache of at most `max_bytes` of bodies, none larger than `max_entry_bytes`;
    /// `None` when `max_bytes` is 0 (switched off).
    pub(crate) fn new(max_bytes: usize, max_entry_bytes: usize) -> Option<ValidationCache> {
        if max_bytes == 0 || max_entry_bytes == 0 {
            return None;
        }
        let shard_budget = max_bytes.div_ceil(SHARDS);
        Some(ValidationCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: RandomState::new(),
            shard_budget,
            max_entry_bytes: max_entry_bytes.min(shard_budget),
            clock: AtomicU64::new(0),
            not_modified: Counter::default(),
            stores: Counter::default(),
            bytes: Gauge::default(),
        })
    }

    /// The key of a request that may use or fill the cache (`None`: leave it alone).
    pub(crate) fn key(method: &Method, uri: &Uri, headers: &HeaderMap) -> Option<Key> {
        if method != Method::GET || PRIVATE_OR_CONDITIONAL.iter().any(|h| headers.contains_key(h)) {
            return None;
        }
        if headers.get_all(header::CACHE_CONTROL).iter().any(|v| has_directive(v, "no-store")) {
            return None;
        }
        Some(Key {
            uri: uri.to_string(),
            accept: headers.get(header::ACCEPT).cloned(),
            accept_encoding: headers.get(header::ACCEPT_ENCODING).cloned(),
        })
    }

    fn shard(&self, key: &Key) -> &Mutex<Shard> {
        &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS]
    }

    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed)
    }

    /// The stored answer for `key`, if any.
    pub(crate) fn get(&self, key: &Key) -> Option<Arc<Stored>> {
        let shard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        let stored = shard.entries.get(key)?;
        stored.last_used.store(self.tick(), Ordering::Relaxed);
        Some(Arc::clone(stored))
    }

    /// Whether an answer to `key` should be kept now while the cache is not used: none is
    /// kept, or the kept one is older than [`KEEP_INTERVAL`].
    pub(crate) fn keep_due(&self, key: &Key) -> bool {
        let shard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        shard.entries.get(key).is_none_or(|s| s.stored_at.elapsed() >= KEEP_INTERVAL)
    }

    /// The most recently stored answer of `view`'s `variant`, whatever request fetched it.
    /// Scans every entry: called once per copy of a view, not per request.
    pub(crate) fn kept(&self, view: &Urn, variant: &str) -> Option<Arc<Stored>> {
        let mut best: Option<Arc<Stored>> = None;
        for shard in &self.shards {
            let shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            for stored in shard.entries.values() {
                let matches = stored.of.as_ref().is_some_and(|(v, p)| **v == *view && p.as_str() == variant);
                if matches && best.as_ref().is_none_or(|b| b.stored_at < stored.stored_at) {
                    best = Some(Arc::clone(stored));
                }
            }
        }
        best
    }

    /// Whether an upstream answer may be stored: its strong `ETag` if so.
    pub(crate) fn storable(&self, status: u16, headers: &HeaderMap) -> Option<HeaderValue> {
        if status != 200 || headers.contains_key(header::SET_COOKIE) {
            return None;
        }
        let length: usize = headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()?;
        if length == 0 || length > self.max_entry_bytes {
            return None;
        }
        if headers
            .get_all(header::CACHE_CONTROL)
            .iter()
            .any(|v| has_directive(v, "no-store") || has_directive(v, "private"))
        {
            return None;
        }
        let vary_ok = headers.get_all(header::VARY).iter().all(|v| {
            v.to_str().is_ok_and(|s| {
                s.split(',')
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .all(|n| n.eq_ignore_ascii_case("accept") || n.eq_ignore_ascii_case("accept-encoding"))
            })
        });
        if !vary_ok {
            return None;
        }
        let etag = headers.get(header::ETAG)?;
        let strong = etag.as_bytes().first() == Some(&b'"');
        strong.then(|| etag.clone())
    }

    /// Starts capturing a body of `length` bytes, stored under `key` if it arrives whole.
    /// `of` names the view and variant the answer is of (see [`ValidationCache::kept`]).
    pub(crate) fn capture(
        self: &Arc<Self>,
        key: Key,
        of: Option<(Arc<Urn>, PathAndQuery)>,
        etag: HeaderValue,
        headers: HeaderMap,
        length: usize,
    ) -> Capture {
        Capture { cache: Arc::clone(self), key, of, etag, headers, body: BytesMut::with_capacity(length), length }
    }

    fn insert(
        &self,
        key: Key,
        of: Option<(Arc<Urn>, PathAndQuery)>,
        etag: HeaderValue,
        headers: HeaderMap,
        body: Bytes,
    ) {
        if body.len() > self.max_entry_bytes {
            return;
        }
        let size = body.len();
        let stored = Arc::new(Stored {
            etag,
            headers,
            body,
            of,
            stored_at: Instant::now(),
            last_used: AtomicU64::new(self.tick()),
        });
        let mut shard = self.shard(&key).lock().unwrap_or_else(|e| e.into_inner());
        let mut delta = size as i64;
        if let Some(old) = shard.entries.insert(key, stored) {
            shard.bytes -= old.body.len();
            delta -= old.body.len() as i64;
        }
        shard.bytes += size;
        while shard.bytes > self.shard_budget {
            // Few entries per shard: a scan for the least recently used one is cheap.
            let Some(oldest) =
                shard.entries.iter().min_by_key(|(_, s)| s.last_used.load(Ordering::Relaxed)).map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(old) = shard.entries.remove(&oldest) {
                shard.bytes -= old.body.len();
                delta -= old.body.len() as i64;
            }
        }
        drop(shard);
        self.bytes.inc_by(delta);
        self.stores.inc();
    }

    /// Forgets the answer under `key` (the upstream sent one that may not be stored).
    pub(crate) fn remove(&self, key: &Key) {
        let mut shard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = shard.entries.remove(key) {
            shard.bytes -= old.body.len();
            drop(shard);
            self.bytes.dec_by(old.body.len() as i64);
        }
    }

    /// The upstream confirmed `stored` with a `304` carrying `fresh` headers: the headers
    /// of the answer to send (RFC 9111 §4.3.4: the stored ones, updated by those of the
    /// `304`, except the body's framing); the stored entry is updated likewise.
    pub(crate) fn confirm(&self, key: &Key, stored: &Arc<Stored>, fresh: &HeaderMap) -> HeaderMap {
        let mut headers = stored.headers.clone();
        for name in fresh.keys() {
            if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING || name == header::CONTENT_ENCODING {
                continue;
            }
            headers.remove(name);
            for v in fresh.get_all(name) {
                headers.append(name.clone(), v.clone());
            }
        }
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(stored.body.len()));
        self.not_modified.inc();
        if headers != stored.headers {
            let etag = headers.get(header::ETAG).cloned().unwrap_or_else(|| stored.etag.clone());
            self.insert(key.clone(), stored.of.clone(), etag, headers.clone(), stored.body.clone());
        }
        headers
    }
}

/// A response body on its way through, copied for the cache (at most the declared length).
pub(crate) struct Capture {
    cache: Arc<ValidationCache>,
    key: Key,
    of: Option<(Arc<Urn>, PathAndQuery)>,
    etag: HeaderValue,
    headers: HeaderMap,
    body: BytesMut,
    length: usize,
}

/// Where a [`Capture`] stands after a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CaptureState {
    /// Less than the declared length so far.
    Partial,
    /// Exactly the declared length: [`Capture::finish`] now.
    Complete,
    /// More than declared: give up.
    Overflow,
}

impl Capture {
    /// A chunk passed.
    pub(crate) fn push(&mut self, chunk: &[u8]) -> CaptureState {
        if self.body.len() + chunk.len() > self.length {
            return CaptureState::Overflow;
        }
        self.body.extend_from_slice(chunk);
        if self.body.len() == self.length { CaptureState::Complete } else { CaptureState::Partial }
    }

    /// The body ended cleanly: stored if it is exactly as long as declared.
    pub(crate) fn finish(self) {
        if self.body.len() == self.length {
            self.cache.insert(self.key, self.of, self.etag, self.headers, self.body.freeze());
        }
    }
}

/// The answers a data plane keeps, as seen by a copy of a view to its node: a copy asks
/// its source whether a kept answer still holds (`If-None-Match`) instead of fetching it
/// again over the link (see `docs/replicas.md`, "Copies start from kept answers").
#[derive(Clone)]
pub struct KeptAnswers(Option<Arc<ValidationCache>>);

/// One kept answer of a view's variant.
#[derive(Debug, Clone)]
pub struct KeptAnswer {
    /// Its strong `ETag`, as sent.
    pub etag: String,
    /// Its `Content-Type`.
    pub content_type: Option<String>,
    /// Its `Last-Modified`.
    pub last_modified: Option<String>,
    /// Its body.
    pub body: Bytes,
    /// How long ago it was stored or confirmed.
    pub age: Duration,
}

impl KeptAnswers {
    pub(crate) fn new(cache: Option<Arc<ValidationCache>>) -> KeptAnswers {
        KeptAnswers(cache)
    }

    /// The latest kept answer of `view`'s `variant` (`/` for the view's own resource,
    /// `/path?query` below it, as in observations); `None` when there is none or the cache
    /// is switched off.
    pub fn find(&self, view: &Urn, variant: &str) -> Option<KeptAnswer> {
        let stored = self.0.as_ref()?.kept(view, variant)?;
        let text = |name: header::HeaderName| stored.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        Some(KeptAnswer {
            etag: stored.etag.to_str().ok()?.to_owned(),
            content_type: text(header::CONTENT_TYPE),
            last_modified: text(header::LAST_MODIFIED),
            body: stored.body.clone(),
            age: stored.stored_at.elapsed(),
        })
    }
}

/// Whether a `Cache-Control` value holds `directive` (case-insensitive, arguments ignored).
fn has_directive(value: &HeaderValue, directive: &str) -> bool {
    value.to_str().is_ok_and(|s| {
        s.split(',').map(|d| d.split('=').next().unwrap_or("").trim()).any(|d| d.eq_ignore_ascii_case(directive))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(header::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn uri(s: &str) -> Uri {
        s.parse().unwrap()
    }

    #[test]
    fn only_plain_gets_without_credentials_or_conditions_have_a_key() {
        let u = uri("http://o/mobility?limit=1000");
        assert!(ValidationCache::key(&Method::GET, &u, &HeaderMap::new()).is_some());
        assert!(ValidationCache::key(&Method::HEAD, &u, &HeaderMap::new()).is_none());
        assert!(ValidationCache::key(&Method::POST, &u, &HeaderMap::new()).is_none());
        for h in ["authorization", "cookie", "range", "if-none-match", "if-modified-since"] {
            assert!(ValidationCache::key(&Method::GET, &u, &headers(&[(h, "x")])).is_none(), "{h}");
        }
        assert!(ValidationCache::key(&Method::GET, &u, &headers(&[("cache-control", "no-store")])).is_none());
        let json = ValidationCache::key(&Method::GET, &u, &headers(&[("accept", "application/json")]));
        let csv = ValidationCache::key(&Method::GET, &u, &headers(&[("accept", "text/csv")]));
        assert_ne!(json, csv, "negotiated variants are kept apart");
    }

    #[test]
    fn only_shareable_answers_with_a_strong_etag_and_a_length_are_stored() {
        let c = ValidationCache::new(1 << 20, 1000).unwrap();
        let ok = [("etag", "\"v1\""), ("content-length", "10")];
        assert_eq!(c.storable(200, &headers(&ok)), Some(HeaderValue::from_static("\"v1\"")));
        assert_eq!(c.storable(203, &headers(&ok)), None);
        assert_eq!(c.storable(200, &headers(&[("etag", "W/\"v1\""), ("content-length", "10")])), None);
        assert_eq!(c.storable(200, &headers(&[("etag", "\"v1\"")])), None, "no length");
        assert_eq!(c.storable(200, &headers(&[("etag", "\"v1\""), ("content-length", "0")])), None, "empty");
        assert_eq!(c.storable(200, &headers(&[("etag", "\"v1\""), ("content-length", "1001")])), None);
        for (k, v) in [
            ("cache-control", "private, max-age=3"),
            ("cache-control", "No-Store"),
            ("set-cookie", "a=b"),
            ("vary", "*"),
            ("vary", "accept, authorization"),
        ] {
            let mut h = headers(&ok);
            h.append(header::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_static(v));
            assert_eq!(c.storable(200, &h), None, "{k}: {v}");
        }
        let mut h = headers(&ok);
        h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding, accept"));
        assert!(c.storable(200, &h).is_some());
    }

    #[test]
    fn a_whole_body_is_stored_and_a_cut_or_long_one_is_not() {
        let c = Arc::new(ValidationCache::new(1 << 20, 1000).unwrap());
        let key = ValidationCache::key(&Method::GET, &uri("http://o/a"), &HeaderMap::new()).unwrap();
        let etag = HeaderValue::from_static("\"1\"");
        let mut cut = c.capture(key.clone(), None, etag.clone(), HeaderMap::new(), 6);
        assert_eq!(cut.push(b"abc"), CaptureState::Partial);
        cut.finish();
        assert!(c.get(&key).is_none(), "a body shorter than declared is not kept");
        let mut long = c.capture(key.clone(), None, etag.clone(), HeaderMap::new(), 2);
        assert_eq!(long.push(b"abc"), CaptureState::Overflow);
        let mut whole = c.capture(key.clone(), None, etag.clone(), HeaderMap::new(), 6);
        assert_eq!(whole.push(b"abc"), CaptureState::Partial);
        assert_eq!(whole.push(b"def"), CaptureState::Complete);
        whole.finish();
        let stored = c.get(&key).unwrap();
        assert_eq!(&stored.body[..], b"abcdef");
        assert_eq!(stored.etag, etag);
        assert_eq!(c.bytes.get(), 6);
        c.remove(&key);
        assert!(c.get(&key).is_none());
        assert_eq!(c.bytes.get(), 0);
    }

    #[test]
    fn a_304_updates_the_stored_headers_but_not_the_framing() {
        let c = Arc::new(ValidationCache::new(1 << 20, 1000).unwrap());
        let key = ValidationCache::key(&Method::GET, &uri("http://o/a"), &HeaderMap::new()).unwrap();
        let stored_headers = headers(&[
            ("etag", "\"1\""),
            ("content-type", "application/json"),
            ("content-length", "3"),
            ("date", "old"),
        ]);
        let mut cap = c.capture(key.clone(), None, HeaderValue::from_static("\"1\""), stored_headers, 3);
        assert_eq!(cap.push(b"abc"), CaptureState::Complete);
        cap.finish();
        let stored = c.get(&key).unwrap();
        let fresh = headers(&[("etag", "\"1\""), ("date", "new"), ("content-length", "0")]);
        let sent = c.confirm(&key, &stored, &fresh);
        assert_eq!(sent.get("date").unwrap(), "new");
        assert_eq!(sent.get("content-type").unwrap(), "application/json");
        assert_eq!(sent.get("content-length").unwrap(), "3");
        assert_eq!(c.get(&key).unwrap().headers.get("date").unwrap(), "new");
        assert_eq!(c.not_modified.get(), 1);
    }

    #[test]
    fn kept_answers_are_found_by_view_and_variant_and_kept_at_most_once_per_interval() {
        let c = Arc::new(ValidationCache::new(1 << 20, 1000).unwrap());
        let view = Arc::new(Urn::parse("urn:city:buildings:blocks").unwrap());
        let variant = PathAndQuery::from_static("/?limit=5");
        let keep = |accept: &str, body: &'static [u8]| {
            let key =
                ValidationCache::key(&Method::GET, &uri("http://o/blocks?limit=5"), &headers(&[("accept", accept)]))
                    .unwrap();
            assert!(c.keep_due(&key), "nothing kept under {accept} yet");
            let etag = HeaderValue::from_static("\"1\"");
            let mut cap = c.capture(key.clone(), Some((Arc::clone(&view), variant.clone())), etag, HeaderMap::new(), 3);
            assert_eq!(cap.push(body), CaptureState::Complete);
            cap.finish();
            assert!(!c.keep_due(&key), "just kept: not again within the interval");
        };
        keep("application/json", b"old");
        keep("*/*", b"new");
        let kept = KeptAnswers::new(Some(Arc::clone(&c)));
        let found = kept.find(&view, "/?limit=5").unwrap();
        assert_eq!(&found.body[..], b"new", "the most recently stored of the view's variant");
        assert_eq!(found.etag, "\"1\"");
        assert!(kept.find(&view, "/").is_none());
        assert!(kept.find(&Urn::parse("urn:city:buildings:other").unwrap(), "/?limit=5").is_none());
        assert!(KeptAnswers::new(None).find(&view, "/?limit=5").is_none(), "switched off");
    }

    #[test]
    fn the_byte_budget_evicts_the_least_recently_used() {
        // One shard's budget is max / 16: 100 bytes here.
        let c = Arc::new(ValidationCache::new(1600, 100).unwrap());
        let mut keys = Vec::new();
        for i in 0..200 {
            let key = ValidationCache::key(&Method::GET, &uri(&format!("http://o/{i}")), &HeaderMap::new()).unwrap();
            let mut cap = c.capture(key.clone(), None, HeaderValue::from_static("\"1\""), HeaderMap::new(), 60);
            assert_eq!(cap.push(&[b'x'; 60]), CaptureState::Complete);
            cap.finish();
            keys.push(key);
        }
        assert!(c.bytes.get() <= 1600, "{} bytes held", c.bytes.get());
        assert!(c.get(keys.last().unwrap()).is_some(), "the newest entry stays");
        let held = keys.iter().filter(|k| c.get(k).is_some()).count();
        assert!(held <= 16, "at most one 60-byte entry per 100-byte shard, {held} held");
    }
}
