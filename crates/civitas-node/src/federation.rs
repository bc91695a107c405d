//! Federation, first piece: a document this node does not hold is looked up at its peers
//! (`node.peers`, in order), so every node sees the complete catalog.
//!
//! A lookup is `GET {peer}/api/v1/{collection}/{name}[?version=V]` with
//! [`FEDERATED_HEADER`] set: the peer answers from its own catalog only and never asks its
//! own peers (no ping-pong between nodes that are each other's peers). The first `200`
//! wins; a `404` moves on to the next peer; errors and timeouts are logged (at most once
//! per [`WARN_INTERVAL`] per peer) and move on too. Answers are cached for
//! `node.peer_cache_seconds`, "held by nobody" for a fifth of that (at least a second).
//!
//! Only single-document reads are federated; lists, search, the unit tree and the data
//! plane stay local.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use civitas_model::{Kind, Urn};

use crate::config::Peer;

/// Set on lookups between nodes; a request carrying it is answered locally only.
pub const FEDERATED_HEADER: &str = "x-civitas-federated";

/// Names the peer that answered a federated read.
pub const OWNER_HEADER: &str = "x-civitas-owner";

/// Most cached answers; the oldest is evicted first.
pub const MAX_CACHE_ENTRIES: usize = 10_000;

/// A failing peer is logged at most this often.
pub const WARN_INTERVAL: Duration = Duration::from_secs(10);

/// A document held by a peer.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// The peer's name (`node.peers[i].name`).
    pub owner: String,
    /// The document as the owner serves it (canonical JSON-LD).
    pub document: Bytes,
    /// The document's `version` at the owner.
    pub version: String,
    /// The owner's `ETag`, if it sent one.
    pub etag: Option<String>,
}

type Key = (&'static str, String, Option<String>);

struct Entry {
    stored: Instant,
    ttl: Duration,
    seq: u64,
    value: Option<Resolved>,
}

#[derive(Default)]
struct Cache {
    entries: HashMap<Key, Entry>,
    order: VecDeque<(u64, Key)>,
    next_seq: u64,
}

impl Cache {
    fn get(&mut self, key: &Key) -> Option<Option<Resolved>> {
        let entry = self.entries.get(key)?;
        if entry.stored.elapsed() < entry.ttl {
            return Some(entry.value.clone());
        }
        self.entries.remove(key);
        None
    }

    fn insert(&mut self, key: Key, value: Option<Resolved>, ttl: Duration, max: usize) {
        while self.entries.len() >= max && !self.entries.contains_key(&key) {
            let Some((seq, old)) = self.order.pop_front() else { break };
            if self.entries.get(&old).is_some_and(|e| e.seq == seq) {
                self.entries.remove(&old);
            }
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.push_back((seq, key.clone()));
        self.entries.insert(key, Entry { stored: Instant::now(), ttl, seq, value });
        // Replaced keys leave stale order slots behind; drop them once they pile up.
        if self.order.len() > 2 * max.max(1) {
            let entries = &self.entries;
            self.order.retain(|(seq, k)| entries.get(k).is_some_and(|e| e.seq == *seq));
        }
    }
}

/// This node's view of its peers.
pub struct Federation {
    peers: Vec<Peer>,
    http: reqwest::Client,
    ttl: Duration,
    miss_ttl: Duration,
    max_entries: usize,
    cache: Mutex<Cache>,
    warned: Mutex<HashMap<String, (Instant, u64)>>,
}

impl Federation {
    /// A federation of `peers` (validated URLs without trailing `/`), each given `timeout`
    /// per lookup; answers cached for `cache_ttl`; `token` (`node.peer_token`) is sent as a
    /// bearer token to peers that run with security on.
    pub fn new(
        peers: Vec<Peer>,
        timeout: Duration,
        cache_ttl: Duration,
        token: Option<&str>,
        ca_pem: Option<&[u8]>,
    ) -> Result<Federation, reqwest::Error> {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(v) = token.and_then(|t| reqwest::header::HeaderValue::from_str(&format!("Bearer {t}")).ok()) {
            headers.insert(reqwest::header::AUTHORIZATION, v);
        }
        let mut builder = reqwest::Client::builder();
        for cert in ca_pem.map(reqwest::Certificate::from_pem_bundle).transpose()?.unwrap_or_default() {
            builder = builder.add_root_certificate(cert);
        }
        let http = builder
            .default_headers(headers)
            .timeout(timeout)
            .connect_timeout(timeout)
            .no_proxy()
            .user_agent(concat!("civitas-node/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let miss_ttl = (cache_ttl / 5).max(Duration::from_secs(1)).min(cache_ttl);
        Ok(Federation {
            peers,
            http,
            ttl: cache_ttl,
            miss_ttl,
            max_entries: MAX_CACHE_ENTRIES,
            cache: Mutex::new(Cache::default()),
            warned: Mutex::new(HashMap::new()),
        })
    }

    /// The configured peers, in the order they are asked.
    pub fn peers(&self) -> &[Peer] {
        &self.peers
    }

    /// The document `kind`/`name` (at `version`, else the current one) from the first peer
    /// that holds it, or `None` if none does (or none could be asked).
    pub async fn resolve(&self, kind: Kind, name: &Urn, version: Option<&str>) -> Option<Resolved> {
        if self.peers.is_empty() {
            return None;
        }
        let key: Key = (kind.collection(), name.to_string(), version.map(str::to_string));
        if let Some(hit) = self.cache.lock().expect("federation cache").get(&key) {
            return hit;
        }
        let mut found = None;
        let mut all_answered = true;
        for peer in &self.peers {
            match self.ask(peer, kind, name, version).await {
                Ok(Some(r)) => {
                    found = Some(r);
                    break;
                }
                Ok(None) => {}
                Err(why) => {
                    all_answered = false;
                    self.warn(peer, &why);
                }
            }
        }
        // "Held by nobody" is only cached when every peer said so.
        if found.is_some() || all_answered {
            let ttl = if found.is_some() { self.ttl } else { self.miss_ttl };
            self.cache.lock().expect("federation cache").insert(key, found.clone(), ttl, self.max_entries);
        }
        found
    }

    async fn ask(
        &self,
        peer: &Peer,
        kind: Kind,
        name: &Urn,
        version: Option<&str>,
    ) -> Result<Option<Resolved>, String> {
        let mut url = reqwest::Url::parse(&peer.url).map_err(|e| format!("bad URL {}: {e}", peer.url))?;
        url.path_segments_mut().map_err(|_| format!("bad URL {}", peer.url))?.pop_if_empty().extend([
            "api",
            "v1",
            kind.collection(),
            name.as_str(),
        ]);
        if let Some(v) = version {
            url.query_pairs_mut().append_pair("version", v);
        }
        let resp = self.http.get(url).header(FEDERATED_HEADER, "1").send().await.map_err(|e| e.to_string())?;
        match resp.status().as_u16() {
            200 => {}
            404 => return Ok(None),
            other => return Err(format!("answered {other}")),
        }
        let etag = resp.headers().get(reqwest::header::ETAG).and_then(|v| v.to_str().ok()).map(str::to_string);
        let document = resp.bytes().await.map_err(|e| e.to_string())?;
        let value: serde_json::Value =
            serde_json::from_slice(&document).map_err(|e| format!("answered a document that is not JSON: {e}"))?;
        let owner_version = value.get("version").and_then(|v| v.as_str()).unwrap_or_default().to_string();
        Ok(Some(Resolved { owner: peer.name.clone(), document, version: owner_version, etag }))
    }

    fn warn(&self, peer: &Peer, why: &str) {
        let mut warned = self.warned.lock().expect("federation warnings");
        if let Some((at, suppressed)) = warned.get_mut(&peer.name)
            && at.elapsed() < WARN_INTERVAL
        {
            *suppressed += 1;
            return;
        }
        let suppressed = warned.get(&peer.name).map_or(0, |(_, n)| *n);
        tracing::warn!(peer = %peer.name, url = %peer.url, suppressed, "federated lookup failed: {why}");
        warned.insert(peer.name.clone(), (Instant::now(), 0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(v: &str) -> Option<Resolved> {
        Some(Resolved { owner: "b".into(), document: Bytes::from_static(b"{}"), version: v.into(), etag: None })
    }

    #[test]
    fn the_cache_expires_and_evicts_the_oldest() {
        let mut c = Cache::default();
        let key = |n: &str| ("units", n.to_string(), None);
        c.insert(key("a"), resolved("1"), Duration::from_secs(60), 2);
        c.insert(key("b"), None, Duration::from_secs(60), 2);
        assert_eq!(c.get(&key("a")), Some(resolved("1")));
        assert_eq!(c.get(&key("b")), Some(None));
        c.insert(key("c"), resolved("3"), Duration::from_secs(60), 2);
        assert_eq!(c.get(&key("a")), None, "the oldest entry is evicted");
        assert_eq!(c.entries.len(), 2);
        // Replacing a key many times keeps the order queue bounded.
        for i in 0..100 {
            c.insert(key("c"), resolved(&i.to_string()), Duration::from_secs(60), 2);
        }
        assert!(c.order.len() <= 4, "{}", c.order.len());
        assert_eq!(c.get(&key("b")), Some(None));
        c.insert(key("d"), resolved("4"), Duration::ZERO, 2);
        assert_eq!(c.get(&key("d")), None, "an expired entry is a miss");
    }

    #[tokio::test]
    async fn no_peers_resolve_nothing_and_unreachable_peers_are_skipped() {
        let name = Urn::parse("urn:test:x").unwrap();
        let f = Federation::new(Vec::new(), Duration::from_millis(200), Duration::from_secs(1), None, None).unwrap();
        assert_eq!(f.resolve(Kind::DataUnit, &name, None).await, None);
        let peers = vec![Peer { name: "gone".into(), url: "http://127.0.0.1:1".into() }];
        let f = Federation::new(peers, Duration::from_millis(200), Duration::from_secs(1), None, None).unwrap();
        assert_eq!(f.resolve(Kind::DataUnit, &name, Some("1")).await, None);
        assert!(f.cache.lock().unwrap().entries.is_empty(), "a failed lookup is not cached as a miss");
    }
}
