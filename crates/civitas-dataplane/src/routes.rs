//! The route table: which instances serve which view, where they live, and the site
//! distances the `nearest` policy needs — built from catalog documents, read without locks.
//!
//! A [`RouteTable`] is immutable once built. [`RouteHandle`] holds the current one in an
//! `ArcSwap`: a request loads it once and keeps that `Arc` to its end, so a swap never
//! changes a request in flight and never fails one.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use civitas_model::{DataInstance, DataUnit, Document, InstanceRole, Urn};
use http::HeaderValue;
use http::uri::{Authority, Scheme, Uri};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use serde_json::Value;

use crate::config::RoutePolicy;

/// The hot-swappable current [`RouteTable`], shared by the proxy and whatever follows the
/// catalog. Cloning shares the same table.
#[derive(Clone)]
pub struct RouteHandle {
    inner: Arc<HandleInner>,
}

struct HandleInner {
    table: ArcSwap<RouteTable>,
    ready: tokio::sync::watch::Sender<bool>,
    swaps: Counter,
    revision: Gauge,
}

impl RouteHandle {
    /// A handle holding an empty table (every request is refused until a table arrives).
    pub fn new() -> RouteHandle {
        let (ready, _) = tokio::sync::watch::channel(false);
        RouteHandle {
            inner: Arc::new(HandleInner {
                table: ArcSwap::from_pointee(RouteTable::empty()),
                ready,
                swaps: Counter::default(),
                revision: Gauge::default(),
            }),
        }
    }

    /// The current table. Lock-free; the caller keeps this snapshot as long as it likes.
    pub fn current(&self) -> Arc<RouteTable> {
        self.inner.table.load_full()
    }

    /// Makes `table` current, atomically; requests already running keep the table they
    /// started with. The first replacement also makes [`RouteHandle::wait_ready`] resolve.
    pub fn replace(&self, table: RouteTable) {
        let revision = i64::try_from(table.revision).unwrap_or(i64::MAX);
        tracing::debug!(revision, units = table.units.len(), "route table swapped");
        self.inner.table.store(Arc::new(table));
        self.inner.swaps.inc();
        self.inner.revision.set(revision);
        self.inner.ready.send_replace(true);
    }

    /// Resolves once a table built from a catalog has been installed (by
    /// [`crate::follow_catalog`], [`crate::follow_remote`] or [`RouteHandle::replace`]).
    pub async fn wait_ready(&self) {
        let mut rx = self.inner.ready.subscribe();
        // The sender lives in `self`, so `wait_for` cannot fail while we wait.
        let _ = rx.wait_for(|ready| *ready).await;
    }

    /// Whether a table has been installed.
    pub fn is_ready(&self) -> bool {
        *self.inner.ready.borrow()
    }

    /// Changes on every [`RouteHandle::replace`] (each send marks the value changed).
    pub(crate) fn subscribe_swaps(&self) -> tokio::sync::watch::Receiver<bool> {
        self.inner.ready.subscribe()
    }

    pub(crate) fn swaps_counter(&self) -> Counter {
        self.inner.swaps.clone()
    }

    pub(crate) fn revision_gauge(&self) -> Gauge {
        self.inner.revision.clone()
    }
}

impl Default for RouteHandle {
    fn default() -> Self {
        RouteHandle::new()
    }
}

/// Per-unit timeout overrides from `metainformation.proxyTimeouts`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Timeouts {
    pub connect: Option<Duration>,
    pub first_byte: Option<Duration>,
    pub idle: Option<Duration>,
}

/// One instance as the proxy reaches it; shared by every view it serves.
#[derive(Debug)]
pub(crate) struct InstanceTarget {
    pub name: Arc<Urn>,
    pub role: InstanceRole,
    /// Index into the table's sites, when the instance names a site.
    pub site: Option<u32>,
    pub scheme: Scheme,
    pub authority: Authority,
    /// `Host` value for reverse mode (the upstream authority).
    pub host_header: HeaderValue,
    /// The endpoint's path without a trailing `/` (`""` for the root).
    pub base_path: Box<str>,
    /// The endpoint as written, for error details.
    pub endpoint: Box<str>,
    /// `metainformation.freshnessLagSeconds`, when given.
    pub freshness_lag_seconds: Option<f64>,
    /// `metainformation.validatedAtUnixMs`: when a replica last matched its origin.
    pub validated_at_unix_ms: Option<u64>,
    /// `metainformation.stalenessBoundSeconds`: how old `validated_at_unix_ms` may get
    /// before the replica stops being fresh.
    pub staleness_bound_seconds: Option<f64>,
    /// `metainformation.viewRelativePaths`: the endpoint serves each view's resources at
    /// `endpoint + variant` (a replica), not at `endpoint + link + rest`.
    pub view_relative: bool,
    /// The instance's name as a response header value (`x-civitas-instance`).
    pub name_header: HeaderValue,
}

impl InstanceTarget {
    /// Whether the instance is fresh enough for the `fresh-only` policy at `now_unix_ms`
    /// (a replica; origins are always eligible).
    fn is_fresh(&self, update_period_seconds: Option<f64>, now_unix_ms: impl FnOnce() -> u64) -> bool {
        if let (Some(validated), Some(bound)) = (self.validated_at_unix_ms, self.staleness_bound_seconds) {
            let age_ms = now_unix_ms().saturating_sub(validated);
            return (age_ms as f64) <= bound * 1000.0;
        }
        matches!((self.freshness_lag_seconds, update_period_seconds), (Some(lag), Some(period)) if lag <= period)
    }
}

/// One view: its link and the instances that can serve it.
#[derive(Debug)]
pub(crate) struct ViewRoute {
    pub unit: Arc<Urn>,
    pub name: Arc<Urn>,
    /// The link's path part (before any `?`).
    pub link_path: Box<str>,
    /// The link's query part, without `?`.
    pub link_query: Option<Box<str>>,
    /// Routable instances (serving the view, with a usable `http` endpoint), by name.
    pub instances: Vec<Arc<InstanceTarget>>,
    /// Instances serving the view that the proxy cannot reach (no endpoint or not `http`).
    pub unroutable: usize,
    /// Seconds between two updates (`updateFrequency` period / times).
    pub update_period_seconds: Option<f64>,
    pub timeouts: Timeouts,
    /// Round robin among equally good instances.
    rotation: AtomicUsize,
}

#[derive(Debug)]
struct UnitRoute {
    /// Every view, by full name and by local name.
    views: HashMap<Box<str>, Arc<ViewRoute>>,
    /// Local names, for error details.
    view_names: Vec<Box<str>>,
}

/// Forward mode: a path prefix (endpoint path + view link) on one host.
#[derive(Debug)]
struct ForwardEntry {
    prefix: Box<str>,
    view: Arc<ViewRoute>,
}

/// Forward mode: everything at one `scheme://host:port`.
#[derive(Debug)]
struct HostRoutes {
    https: bool,
    port: u16,
    /// Longest prefix first.
    entries: Vec<ForwardEntry>,
}

/// Which instances serve which view, built from catalog documents. Immutable.
#[derive(Debug)]
pub struct RouteTable {
    revision: u64,
    units: HashMap<Box<str>, UnitRoute>,
    /// Forward mode, by lower-case host.
    hosts: HashMap<Box<str>, Vec<HostRoutes>>,
    site_ids: HashMap<Box<str>, u32>,
    /// Lowest latency of a link from the first site to the second, in ms.
    links: HashMap<(u32, u32), f64>,
    /// Connect timeout per upstream `host:port`, when a unit there overrides it.
    connect_timeouts: HashMap<Box<str>, Duration>,
    instance_count: usize,
}

/// Where forward mode found a request's view.
pub(crate) struct ForwardMatch<'t, 'p> {
    pub view: &'t Arc<ViewRoute>,
    /// The path after the matched prefix, without a leading `/`.
    pub rest: &'p str,
    /// The matched prefix (endpoint path + view link).
    pub prefix: &'t str,
}

/// Why forward mode did not find a view.
pub(crate) enum ForwardMiss {
    /// No instance lives at that host: refuse (not an open proxy).
    UnknownHost,
    /// Instances live there, but none at that path.
    NoView,
}

/// Why no instance could be chosen.
pub(crate) enum NoInstance {
    /// No instance of the view has a usable endpoint.
    None { unroutable: usize },
    /// Instances exist, but the policy accepts none.
    Policy,
}

impl RouteTable {
    /// A table with no routes, revision 0.
    pub fn empty() -> RouteTable {
        RouteTable {
            revision: 0,
            units: HashMap::new(),
            hosts: HashMap::new(),
            site_ids: HashMap::new(),
            links: HashMap::new(),
            connect_timeouts: HashMap::new(),
            instance_count: 0,
        }
    }

    /// Builds a table from catalog documents; revision 0. Only `DataUnit`, `DataInstance`,
    /// `Site` and `SiteLink` documents matter; the others are ignored.
    pub fn build(documents: &[Document]) -> RouteTable {
        RouteTable::build_at(documents.iter(), 0)
    }

    /// Builds a table from catalog documents, as of catalog `revision`.
    pub fn build_at<'a>(documents: impl IntoIterator<Item = &'a Document>, revision: u64) -> RouteTable {
        let mut units: Vec<&DataUnit> = Vec::new();
        let mut instances: Vec<&DataInstance> = Vec::new();
        let mut table = RouteTable::empty();
        table.revision = revision;
        let mut links = Vec::new();
        for doc in documents {
            match doc {
                Document::DataUnit(u) => units.push(u),
                Document::DataInstance(i) => instances.push(i),
                Document::Site(s) => {
                    table.site_id(&s.header.name);
                }
                Document::SiteLink(l) => links.push(l),
                _ => {}
            }
        }
        for l in links {
            let (from, to) = (table.site_id(&l.from), table.site_id(&l.to));
            let mut put = |a: u32, b: u32| {
                let e = table.links.entry((a, b)).or_insert(l.latency_ms);
                *e = e.min(l.latency_ms);
            };
            put(from, to);
            if l.bidirectional {
                put(to, from);
            }
        }
        instances.sort_by(|a, b| a.header.name.cmp(&b.header.name));
        // Each instance with its target (`None`: not routable), grouped by unit.
        type Targets<'d> = Vec<(&'d DataInstance, Option<Arc<InstanceTarget>>)>;
        let mut by_unit: HashMap<&Urn, Targets<'_>> = HashMap::new();
        for i in instances {
            let target = table.instance_target(i).map(Arc::new);
            by_unit.entry(&i.data_unit).or_default().push((i, target));
        }
        let mut host_entries: HashMap<(Box<str>, bool, u16), Vec<ForwardEntry>> = HashMap::new();
        for unit in units {
            let unit_name = Arc::new(unit.header.name.clone());
            let timeouts = unit_timeouts(unit);
            let unit_instances = by_unit.remove(&unit.header.name).unwrap_or_default();
            let mut route = UnitRoute { views: HashMap::new(), view_names: Vec::new() };
            for view in &unit.views {
                let (link_path, link_query) = match view.link.split_once('?') {
                    Some((p, q)) => (p, Some(q)),
                    None => (view.link.as_str(), None),
                };
                let link_path =
                    if link_path.starts_with('/') { link_path.to_string() } else { format!("/{link_path}") };
                let mut targets = Vec::new();
                let mut unroutable = 0;
                for (inst, target) in &unit_instances {
                    if !inst.serves(&view.name) {
                        continue;
                    }
                    match target {
                        Some(t) => targets.push(Arc::clone(t)),
                        None => unroutable += 1,
                    }
                }
                let view_route = Arc::new(ViewRoute {
                    unit: Arc::clone(&unit_name),
                    name: Arc::new(view.name.clone()),
                    link_path: link_path.into(),
                    link_query: link_query.filter(|q| !q.is_empty()).map(Into::into),
                    instances: targets,
                    unroutable,
                    update_period_seconds: view
                        .update_frequency
                        .as_ref()
                        .map(|f| f.period.seconds() / f64::from(f.times.max(1))),
                    timeouts,
                    rotation: AtomicUsize::new(0),
                });
                for t in &view_route.instances {
                    table.instance_count += 1;
                    if t.view_relative {
                        // A replica is reached through the view, never addressed directly.
                        continue;
                    }
                    let host = t.authority.host();
                    let https = t.scheme == Scheme::HTTPS;
                    let port = t.authority.port_u16().unwrap_or(if https { 443 } else { 80 });
                    let prefix = join_path(&t.base_path, &view_route.link_path);
                    let entries = host_entries.entry((host.to_ascii_lowercase().into(), https, port)).or_default();
                    if !entries.iter().any(|e| *e.prefix == *prefix && Arc::ptr_eq(&e.view, &view_route)) {
                        entries.push(ForwardEntry { prefix: prefix.into(), view: Arc::clone(&view_route) });
                    }
                    if let Some(connect) = timeouts.connect {
                        let key: Box<str> = format!("{}:{port}", host.to_ascii_lowercase()).into();
                        let e = table.connect_timeouts.entry(key).or_insert(connect);
                        // Units sharing a host share its connection pool: the longest wins.
                        *e = (*e).max(connect);
                    }
                }
                route.views.insert(view.name.as_str().into(), Arc::clone(&view_route));
                route.views.insert(view.name.local_name().into(), view_route);
                route.view_names.push(view.name.local_name().into());
            }
            table.units.insert(unit.header.name.as_str().into(), route);
        }
        for ((host, https, port), mut entries) in host_entries {
            // Longest prefix first; equal lengths in a stable order.
            entries.sort_by(|a, b| b.prefix.len().cmp(&a.prefix.len()).then_with(|| a.prefix.cmp(&b.prefix)));
            table.hosts.entry(host).or_default().push(HostRoutes { https, port, entries });
        }
        table
    }

    /// The catalog revision this table reflects (0 when unknown).
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Number of data units with routes.
    pub fn unit_count(&self) -> usize {
        self.units.len()
    }

    /// Number of (view, routable instance) pairs.
    pub fn route_count(&self) -> usize {
        self.instance_count
    }

    /// The routable instances of a view (`view` by full or local name), by name; `None`
    /// when the unit or view is unknown.
    pub fn instances(&self, unit: &str, view: &str) -> Option<Vec<&Urn>> {
        let v = self.units.get(unit)?.views.get(view)?;
        Some(v.instances.iter().map(|i| &*i.name).collect())
    }

    fn site_id(&mut self, site: &Urn) -> u32 {
        let next = u32::try_from(self.site_ids.len()).unwrap_or(u32::MAX);
        *self.site_ids.entry(site.as_str().into()).or_insert(next)
    }

    pub(crate) fn site_index(&self, site: &str) -> Option<u32> {
        self.site_ids.get(site).copied()
    }

    fn instance_target(&mut self, i: &DataInstance) -> Option<InstanceTarget> {
        let endpoint = i.endpoint.as_deref()?;
        let uri: Uri = endpoint.parse().ok()?;
        let scheme = uri.scheme()?.clone();
        if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
            tracing::debug!(instance = %i.header.name, endpoint, "not routable: only http and https endpoints are proxied");
            return None;
        }
        let authority = uri.authority()?.clone();
        if authority.as_str().contains('@') {
            return None;
        }
        let host_header = HeaderValue::from_str(authority.as_str()).ok()?;
        let base_path = uri.path().trim_end_matches('/');
        let site = i.site.as_ref().map(|s| self.site_id(s));
        let meta = &i.metainformation;
        Some(InstanceTarget {
            validated_at_unix_ms: meta.get("validatedAtUnixMs").and_then(number).map(|n| n as u64),
            staleness_bound_seconds: meta.get("stalenessBoundSeconds").and_then(number),
            view_relative: meta.get("viewRelativePaths").and_then(Value::as_bool).unwrap_or(false),
            name_header: HeaderValue::from_str(i.header.name.as_str()).ok()?,
            name: Arc::new(i.header.name.clone()),
            role: i.role,
            site,
            scheme,
            host_header,
            base_path: base_path.into(),
            endpoint: endpoint.into(),
            authority,
            freshness_lag_seconds: i.metainformation.get("freshnessLagSeconds").and_then(number),
        })
    }

    /// Reverse mode: the view of a unit, by full or local view name.
    pub(crate) fn view(&self, unit: &str, view: &str) -> Result<&Arc<ViewRoute>, Cow<'static, str>> {
        let Some(u) = self.units.get(unit) else {
            return Err(format!("no data unit named {unit} is in the catalog").into());
        };
        u.views.get(view).ok_or_else(|| {
            let known = u.view_names.join(", ");
            format!("data unit {unit} has no view {view:?} (its views: {known})").into()
        })
    }

    /// Forward mode: the view whose instance endpoint and link are the longest prefix of `path`.
    pub(crate) fn forward<'t, 'p>(
        &'t self,
        https: bool,
        host: &str,
        port: u16,
        path: &'p str,
    ) -> Result<ForwardMatch<'t, 'p>, ForwardMiss> {
        let lower;
        let host = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = host.to_ascii_lowercase();
            lower.as_str()
        } else {
            host
        };
        let routes = self
            .hosts
            .get(host)
            .and_then(|list| list.iter().find(|h| h.https == https && h.port == port))
            .ok_or(ForwardMiss::UnknownHost)?;
        routes
            .entries
            .iter()
            .find_map(|e| {
                strip_path_prefix(path, &e.prefix).map(|rest| ForwardMatch { view: &e.view, rest, prefix: &e.prefix })
            })
            .ok_or(ForwardMiss::NoView)
    }

    /// The connect timeout a unit set for `uri`'s `host:port`, if any.
    pub(crate) fn connect_timeout(&self, uri: &Uri) -> Option<Duration> {
        if self.connect_timeouts.is_empty() {
            return None;
        }
        let host = uri.host()?;
        let port = uri.port_u16().unwrap_or(if uri.scheme() == Some(&Scheme::HTTPS) { 443 } else { 80 });
        self.connect_timeouts.get(format!("{}:{port}", host.to_ascii_lowercase()).as_str()).copied()
    }

    fn distance(&self, from: Option<u32>, to: Option<u32>) -> f64 {
        match (from, to) {
            (Some(a), Some(b)) if a == b => 0.0,
            (Some(a), Some(b)) => self.links.get(&(a, b)).copied().unwrap_or(f64::INFINITY),
            _ => f64::INFINITY,
        }
    }

    /// Chooses the instance of `view` that `policy` prefers, seen from site `node_site`.
    /// Equally good instances take turns. Allocation-free.
    pub(crate) fn choose<'a>(
        &self,
        view: &'a ViewRoute,
        policy: RoutePolicy,
        node_site: Option<u32>,
    ) -> Result<&'a Arc<InstanceTarget>, NoInstance> {
        if view.instances.is_empty() {
            return Err(NoInstance::None { unroutable: view.unroutable });
        }
        // The clock is read at most once, and only when a replica's age matters.
        let now = std::cell::OnceCell::new();
        let now_unix_ms = || {
            *now.get_or_init(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            })
        };
        let eligible = |i: &InstanceTarget| match policy {
            RoutePolicy::Origin => i.role == InstanceRole::Origin,
            RoutePolicy::Nearest => true,
            RoutePolicy::FreshOnly => {
                i.role == InstanceRole::Origin || i.is_fresh(view.update_period_seconds, now_unix_ms)
            }
        };
        let score = |i: &InstanceTarget| match policy {
            RoutePolicy::Origin => 0.0,
            RoutePolicy::Nearest | RoutePolicy::FreshOnly => self.distance(node_site, i.site),
        };
        let mut best = f64::INFINITY;
        let mut ties = 0usize;
        let mut first = None;
        for (idx, i) in view.instances.iter().enumerate() {
            if !eligible(i) {
                continue;
            }
            let s = score(i);
            if first.is_none() || s < best {
                best = s;
                ties = 1;
                first = Some(idx);
            } else if s == best {
                ties += 1;
            }
        }
        let Some(first) = first else { return Err(NoInstance::Policy) };
        if ties == 1 {
            return Ok(&view.instances[first]);
        }
        let mut k = view.rotation.fetch_add(1, Ordering::Relaxed) % ties;
        for i in &view.instances[first..] {
            if eligible(i) && score(i) == best {
                if k == 0 {
                    return Ok(i);
                }
                k -= 1;
            }
        }
        Ok(&view.instances[first])
    }
}

/// A number or a numeric string (the paper writes numbers as strings).
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|n: &f64| n.is_finite() && *n >= 0.0)
}

/// `metainformation.proxyTimeouts` = `{connectMs, firstByteMs, idleMs}`; invalid entries are ignored.
fn unit_timeouts(unit: &DataUnit) -> Timeouts {
    let Some(Value::Object(t)) = unit.metainformation.extra.get("proxyTimeouts") else {
        return Timeouts::default();
    };
    let ms = |key: &str| {
        let v = t.get(key)?;
        let parsed = number(v).filter(|n| *n > 0.0);
        if parsed.is_none() {
            tracing::warn!(unit = %unit.header.name, key, value = %v, "ignoring invalid proxyTimeouts entry");
        }
        parsed.map(|n| Duration::from_secs_f64(n / 1000.0))
    };
    Timeouts { connect: ms("connectMs"), first_byte: ms("firstByteMs"), idle: ms("idleMs") }
}

/// `base` + `link`, with exactly one `/` between them.
fn join_path(base: &str, link: &str) -> String {
    let mut s = String::with_capacity(base.len() + link.len() + 1);
    s.push_str(base.trim_end_matches('/'));
    if !link.starts_with('/') {
        s.push('/');
    }
    s.push_str(link);
    s
}

/// The remainder of `path` after `prefix` on a segment boundary (without a leading `/`;
/// a lone trailing slash after the prefix is returned as `"/"` so that it is kept).
/// A prefix ending in `/` also matches the path without that slash.
pub(crate) fn strip_path_prefix<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    if let Some(rest) = path.strip_prefix(prefix) {
        if prefix.ends_with('/') {
            return Some(rest);
        }
        if rest.is_empty() || rest == "/" {
            return Some(rest);
        }
        return rest.strip_prefix('/');
    }
    if prefix.len() > 1 && prefix.ends_with('/') && path == &prefix[..prefix.len() - 1] {
        return Some("");
    }
    None
}

impl RouteTable {
    /// The table's routes, for diagnostics: unit → view (full name) → routable instances.
    pub fn describe(&self) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
        let mut out: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
        for (unit, route) in &self.units {
            let views = out.entry(unit.to_string()).or_default();
            for (key, v) in &route.views {
                if **key == *v.name.as_str() {
                    views.insert(key.to_string(), v.instances.iter().map(|i| i.name.to_string()).collect());
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(v: Value) -> Document {
        Document::decode(&v).unwrap_or_else(|e| panic!("fixture invalid: {e}"))
    }

    #[test]
    fn prefixes_match_on_segment_boundaries() {
        assert_eq!(strip_path_prefix("/blocks/a/b", "/blocks/"), Some("a/b"));
        assert_eq!(strip_path_prefix("/blocks", "/blocks/"), Some(""));
        assert_eq!(strip_path_prefix("/blocks/x", "/blocks"), Some("x"));
        assert_eq!(strip_path_prefix("/blocks", "/blocks"), Some(""));
        assert_eq!(strip_path_prefix("/blocks/", "/blocks"), Some("/"), "a trailing slash is kept");
        assert_eq!(strip_path_prefix("/blocksx", "/blocks"), None);
        assert_eq!(strip_path_prefix("/other", "/blocks/"), None);
        assert_eq!(strip_path_prefix("/anything", "/"), Some("anything"));
        assert_eq!(join_path("", "/blocks/"), "/blocks/");
        assert_eq!(join_path("/api", "blocks"), "/api/blocks");
    }

    #[test]
    fn timeouts_and_freshness_parse_numbers_and_strings() {
        let unit = doc(json!({"@type": "DataUnit", "name": "urn:unit:a", "version": "1",
            "metainformation": {"type": "rest", "proxyTimeouts": {"connectMs": "150", "firstByteMs": 900, "idleMs": -1}},
            "views": [{"name": "v", "link": "/v/", "updateFrequency": {"period": "PT60S", "times": 2}}]}));
        let Document::DataUnit(u) = &unit else { unreachable!() };
        let t = unit_timeouts(u);
        assert_eq!(t.connect, Some(Duration::from_millis(150)));
        assert_eq!(t.first_byte, Some(Duration::from_millis(900)));
        assert_eq!(t.idle, None);
        let inst = doc(json!({"@type": "DataInstance", "name": "urn:inst:a", "version": "1", "dataUnit": "urn:unit:a",
            "endpoint": "http://Example.org:8080/base/", "role": "replica",
            "metainformation": {"freshnessLagSeconds": "12.5"}}));
        let table = RouteTable::build(&[unit, inst]);
        let view = table.view("urn:unit:a", "v").unwrap();
        assert_eq!(view.update_period_seconds, Some(30.0));
        let i = &view.instances[0];
        assert_eq!(i.freshness_lag_seconds, Some(12.5));
        assert_eq!(&*i.base_path, "/base");
        assert_eq!(i.host_header, "Example.org:8080");
        let m = table.forward(false, "EXAMPLE.org", 8080, "/base/v/x").ok().unwrap();
        assert_eq!(m.rest, "x");
        assert!(matches!(table.forward(false, "example.org", 8081, "/base/v/x"), Err(ForwardMiss::UnknownHost)));
        assert!(matches!(table.forward(false, "example.org", 8080, "/base/w"), Err(ForwardMiss::NoView)));
        assert_eq!(
            table.connect_timeout(&"http://example.org:8080/x".parse().unwrap()),
            Some(Duration::from_millis(150))
        );
    }

    #[test]
    fn instances_without_an_endpoint_are_not_routable_and_https_ones_are() {
        let unit = doc(json!({"@type": "DataUnit", "name": "urn:unit:a", "version": "1",
            "metainformation": {"type": "rest"}, "views": [{"name": "v", "link": "/v"}]}));
        let none =
            doc(json!({"@type": "DataInstance", "name": "urn:inst:a", "version": "1", "dataUnit": "urn:unit:a"}));
        let also_none =
            doc(json!({"@type": "DataInstance", "name": "urn:inst:b", "version": "1", "dataUnit": "urn:unit:a"}));
        let table = RouteTable::build(&[unit.clone(), none.clone(), also_none]);
        let view = table.view("urn:unit:a", "urn:unit:a:v").unwrap();
        assert!(view.instances.is_empty());
        assert_eq!(view.unroutable, 2);
        assert!(matches!(table.choose(view, RoutePolicy::Nearest, None), Err(NoInstance::None { unroutable: 2 })));
        let tls = doc(json!({"@type": "DataInstance", "name": "urn:inst:c", "version": "1", "dataUnit": "urn:unit:a",
            "endpoint": "https://example.org/"}));
        let table = RouteTable::build(&[unit, none, tls]);
        let view = table.view("urn:unit:a", "urn:unit:a:v").unwrap();
        assert_eq!((view.instances.len(), view.unroutable), (1, 1), "https endpoints are routable");
        assert!(table.forward(true, "example.org", 443, "/v").is_ok());
    }

    #[test]
    fn a_replica_is_fresh_until_its_validation_is_older_than_its_bound() {
        let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
        let unit = doc(json!({"@type": "DataUnit", "name": "urn:unit:a", "version": "1",
            "metainformation": {"type": "rest"}, "views": [{"name": "v", "link": "/v"}]}));
        let origin = doc(json!({"@type": "DataInstance", "name": "urn:inst:origin", "version": "1",
            "dataUnit": "urn:unit:a", "site": "urn:site:far", "endpoint": "http://127.0.0.1:1", "role": "origin"}));
        let replica = |validated_ms: u64| {
            doc(json!({"@type": "DataInstance", "name": "urn:inst:replica", "version": "1",
            "dataUnit": "urn:unit:a", "site": "urn:site:here", "endpoint": "http://127.0.0.1:2/replicas/r1",
            "role": "replica", "metainformation": {"validatedAtUnixMs": validated_ms, "stalenessBoundSeconds": 10,
            "viewRelativePaths": true}}))
        };
        let sites = [
            doc(json!({"@type": "Site", "name": "urn:site:here", "version": "1", "tier": "fog", "region": "x"})),
            doc(json!({"@type": "Site", "name": "urn:site:far", "version": "1", "tier": "cloud", "region": "y"})),
        ];
        let choose = |validated_ms: u64| {
            let mut docs = vec![unit.clone(), origin.clone(), replica(validated_ms)];
            docs.extend(sites.iter().cloned());
            let table = RouteTable::build(&docs);
            let here = table.site_index("urn:site:here");
            let view = table.view("urn:unit:a", "v").unwrap();
            let name = table.choose(view, RoutePolicy::FreshOnly, here).ok().unwrap().name.to_string();
            let replica_target = view.instances.iter().find(|i| i.role == InstanceRole::Replica).unwrap();
            assert!(replica_target.view_relative);
            // A replica is reached through its view only: no forward-mode entry for its host.
            assert!(matches!(table.forward(false, "127.0.0.1", 2, "/replicas/r1/v"), Err(ForwardMiss::UnknownHost)));
            name
        };
        assert_eq!(choose(now_ms - 2_000), "urn:inst:replica", "validated 2 s ago, bound 10 s: fresh and nearest");
        assert_eq!(choose(now_ms - 60_000), "urn:inst:origin", "validated a minute ago: stale, the origin serves");
    }
}
