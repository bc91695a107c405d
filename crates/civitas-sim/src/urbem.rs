//! Synthetic URBEM data services: real HTTP services with deterministic data shaped like the
//! paper's (158,000 buildings, 68,000 network elements, 4,000 vehicles and stops).
//!
//! The paper generated "10 data services based on the DAU we defined for buildings,
//! networks and mobility" per city; the four measured request types read three of them.
//! Civitas runs the same ten per city ([`SERVICES`]), each one HTTP listener serving the
//! views of one `DataUnit` (one `DataInstance` in the catalog):
//!
//! | service | unit | views (paths) | measured |
//! |---|---|---|---|
//! | `buildings` | `urn:urbem:buildings` | `/buildings` (full detail), `/blocks` (aggregated) | yes (2 types) |
//! | `networks` | `urn:urbem:networks` | `/networks` | yes |
//! | `mobility` | `urn:urbem:mobility` | `/mobility` (changes every 5 s) | yes |
//! | `districts` … `climate` | seven context units | one view each | no |
//!
//! The context services are what the URBEM application loads besides the four request
//! types (district boundaries, heat demand, supply plants, population, land use, the
//! public-transport timetable and the climate series); they make the catalog and the node
//! carry ten units per city like the paper's set-up, and clients may request them too.
//!
//! Data: entities are generated once per (view, entity count, seed) and kept for the
//! process ([`ViewData`], shared between services of the same seed); a request borrows
//! slices of it (zero-copy `Bytes`), so serving allocates no body. Entities are sorted by
//! district (`1..=23`, Vienna's districts), so `?district=N` is one contiguous slice.
//! Mobility is regenerated once per time bucket (period 5 s ÷ `scale.time`): its body,
//! `ETag` and `Last-Modified` change with the bucket and 60 % of the records change each time.
//!
//! Query parameters: `district=1..23`, `offset=N`, `limit=N` (applied after `district`);
//! anything else is ignored; a bad value is `400`. Every view answers with
//! `{"view", "city", "district", "offset", "count", "total", "items": [...]}`, a strong `ETag`
//! per variant and data version, `Last-Modified`, and honours `If-None-Match` (preferred) and
//! `If-Modified-Since` with `304`. Server-side work is emulated by waiting
//! [`ServiceWork::per_request`] + [`ServiceWork::per_entity`] × entities returned (a wait, not
//! CPU, so a simulated city does not compete with the nodes for the machine's cores).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::ops::Range;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::{Result, SimError};
use crate::scale::Scale;

/// Vienna has 23 districts; every city's data is split into this many.
pub const DISTRICTS: u32 = 23;

/// When the static views last changed (their `Last-Modified`): 2026-01-01T00:00:00Z.
const STATIC_LAST_MODIFIED_UNIX: u64 = 1_767_225_600;

/// What kind of records a view holds; each kind has its own field generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecordKind {
    /// One building: use, construction period, floors, heat demand, footprint polygon.
    Building,
    /// One building block: aggregates of its buildings, outline polygon.
    Block,
    /// One pipe, cable or network node: medium, dimensions, line geometry.
    NetworkElement,
    /// One vehicle or stop: line, position, speed, delay, recent trail.
    Vehicle,
    /// A context record: a few named measures and an outline.
    Context(&'static [&'static str]),
}

/// How often a view's content changes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Changes {
    /// Never while the process runs (yearly or quarterly in the paper).
    Static,
    /// Every `period` of paper time (divided by `scale.time`), `fraction_percent` of records.
    Every {
        /// Paper period (mobility: 5 s).
        period: Duration,
        /// Share of records changed per period, in percent.
        fraction_percent: u8,
    },
}

/// One view of a service: a path and the shape of its data at paper scale.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ViewSpec {
    /// The view's local name (its URN is `<unit>:<name>`).
    pub name: &'static str,
    /// The HTTP path, e.g. `/buildings` (the view's `link` in the catalog).
    pub path: &'static str,
    /// Entities at paper scale.
    pub entities: u64,
    /// Approximate JSON size of one entity in bytes (the view's size ÷ entities).
    pub bytes_per_entity: usize,
    /// What the records are.
    pub kind: RecordKind,
    /// How often the content changes.
    pub changes: Changes,
    /// The catalog's `updateFrequency` (period, fraction %, update time in seconds).
    pub update_frequency: (&'static str, u8, f64),
}

/// One of the ten services of a city: one data unit, one listener.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ServiceSpec {
    /// Short name, e.g. `buildings` (instance URN `urn:instance:<city>:<name>`).
    pub name: &'static str,
    /// The unit's URN.
    pub unit: &'static str,
    /// What the unit holds (the catalog's description).
    pub description: &'static str,
    /// Whether the paper's four request types read it.
    pub measured: bool,
    /// Its views.
    pub views: &'static [ViewSpec],
}

impl ServiceSpec {
    /// Entities of the unit at paper scale (its first view's, the most detailed).
    pub fn entities(&self) -> u64 {
        self.views[0].entities
    }

    /// Finds one of the ten by name.
    pub fn named(name: &str) -> Option<&'static ServiceSpec> {
        SERVICES.iter().find(|s| s.name == name)
    }
}

const YEARLY: Changes = Changes::Static;

/// A context service: one unit `urn:urbem:<name>` with one static view named like the service.
macro_rules! context_service {
    ($name:literal, $description:literal, $path:literal, $entities:literal, $bytes:literal, $fields:expr, $update:expr $(,)?) => {
        ServiceSpec {
            name: $name,
            unit: concat!("urn:urbem:", $name),
            description: $description,
            measured: false,
            views: &[ViewSpec {
                name: $name,
                path: $path,
                entities: $entities,
                bytes_per_entity: $bytes,
                kind: RecordKind::Context($fields),
                changes: YEARLY,
                update_frequency: $update,
            }],
        }
    };
}

/// The ten services of a city, the measured three first (same figures as `examples/urbem`).
pub static SERVICES: [ServiceSpec; 10] = [
    ServiceSpec {
        name: "buildings",
        unit: "urn:urbem:buildings",
        description: "Building stock: one record per building (footprint, height, use, construction period, heat demand)",
        measured: true,
        views: &[
            ViewSpec {
                name: "buildings",
                path: "/buildings",
                entities: 158_000,
                bytes_per_entity: 1_200,
                kind: RecordKind::Building,
                changes: YEARLY,
                update_frequency: ("yearly", 5, 7200.0),
            },
            ViewSpec {
                name: "blocks",
                path: "/blocks",
                entities: 8_334,
                bytes_per_entity: 1_200,
                kind: RecordKind::Block,
                changes: YEARLY,
                update_frequency: ("yearly", 10, 2300.0),
            },
        ],
    },
    ServiceSpec {
        name: "networks",
        unit: "urn:urbem:networks",
        description: "Thermal and electrical networks: one record per pipe or cable segment and per node",
        measured: true,
        views: &[ViewSpec {
            name: "networks",
            path: "/networks",
            entities: 68_000,
            bytes_per_entity: 1_400,
            kind: RecordKind::NetworkElement,
            changes: YEARLY,
            update_frequency: ("quarterly", 3, 1800.0),
        }],
    },
    ServiceSpec {
        name: "mobility",
        unit: "urn:urbem:mobility",
        description: "Public transport: vehicles and stops with live positions and delays",
        measured: true,
        views: &[ViewSpec {
            name: "mobility",
            path: "/mobility",
            entities: 4_000,
            bytes_per_entity: 250,
            kind: RecordKind::Vehicle,
            changes: Changes::Every { period: Duration::from_secs(5), fraction_percent: 60 },
            update_frequency: ("PT5S", 60, 0.5),
        }],
    },
    context_service!(
        "districts",
        "District boundaries and key figures",
        "/districts",
        23,
        4_000,
        &["areaKm2", "residents", "jobs", "greenShare"],
        ("yearly", 2, 60.0),
    ),
    context_service!(
        "heat-demand",
        "Heat demand per building block and month",
        "/demand",
        8_334,
        600,
        &["januaryMWh", "aprilMWh", "julyMWh", "octoberMWh", "peakKW"],
        ("yearly", 20, 600.0),
    ),
    context_service!(
        "energy-supply",
        "Heat plants, substations and transformer stations",
        "/plants",
        1_200,
        700,
        &["capacityMW", "efficiency", "co2TPerMWh"],
        ("yearly", 5, 60.0),
    ),
    context_service!(
        "population",
        "Residents by age group per building block",
        "/population",
        8_334,
        400,
        &["residents", "under15", "over65", "households"],
        ("yearly", 30, 300.0),
    ),
    context_service!(
        "land-use",
        "Land-use parcels with zoning",
        "/parcels",
        40_000,
        500,
        &["areaM2", "zoning", "buildableShare"],
        ("yearly", 3, 900.0),
    ),
    context_service!(
        "transit-schedule",
        "Public-transport timetable: lines, stops and departures",
        "/timetable",
        6_000,
        500,
        &["line", "headwayMin", "firstDeparture", "lastDeparture"],
        ("monthly", 10, 120.0),
    ),
    context_service!(
        "climate",
        "Hourly weather series used for heat-demand simulation",
        "/climate",
        8_760,
        200,
        &["temperatureC", "irradianceWm2", "windMs"],
        ("yearly", 100, 30.0),
    ),
];

/// The generated entities of one view: one buffer of comma-separated JSON objects, sorted
/// by district, with each entity's byte range. Built once, shared, never copied.
#[derive(Debug)]
pub struct ViewData {
    body: Bytes,
    /// Byte range of entity `i` inside `body`.
    entities: Vec<Range<usize>>,
    /// Entity index range of district `d` at `districts[d - 1]`.
    districts: Vec<Range<usize>>,
    /// What the data was generated from: part of every `ETag`.
    fingerprint: u64,
}

impl ViewData {
    /// Generates `count` entities of `view` for `seed` at `bucket` (0 for static views).
    pub fn generate(view: &ViewSpec, count: u64, seed: u64, bucket: u64) -> ViewData {
        let count = count as usize;
        let mut body = Vec::with_capacity(count * (view.bytes_per_entity + 1));
        let mut entities = Vec::with_capacity(count);
        let mut districts = vec![0..0; DISTRICTS as usize];
        let mut record = String::with_capacity(view.bytes_per_entity * 2);
        for i in 0..count {
            let district = district_of(i, count);
            if i > 0 {
                body.push(b',');
            }
            record.clear();
            write_record(&mut record, view, i as u64, district, seed, bucket);
            let start = body.len();
            body.extend_from_slice(record.as_bytes());
            entities.push(start..body.len());
            let d = &mut districts[district as usize - 1];
            if d.start == d.end {
                *d = i..i + 1;
            } else {
                d.end = i + 1;
            }
        }
        let fingerprint = mix(mix(seed ^ crate::wan::seed_from_name(view.name), count as u64), bucket);
        ViewData { body: Bytes::from(body), entities, districts, fingerprint }
    }

    /// The number of entities.
    pub fn len(&self) -> usize {
        self.entities.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entities.is_empty()
    }

    /// Total bytes of the entities (without the envelope).
    pub fn size_bytes(&self) -> usize {
        self.body.len()
    }

    /// Entities `range` as one zero-copy slice (comma-separated JSON objects).
    fn slice(&self, range: Range<usize>) -> Bytes {
        if range.is_empty() {
            return Bytes::new();
        }
        self.body.slice(self.entities[range.start].start..self.entities[range.end - 1].end)
    }
}

/// District `1..=23` of entity `i` of `count`: equal contiguous shares.
fn district_of(i: usize, count: usize) -> u32 {
    (i as u64 * u64::from(DISTRICTS) / count.max(1) as u64) as u32 + 1
}

/// SplitMix64's finaliser: a well-mixed 64-bit hash of two numbers.
fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_add(0x9e37_79b9_7f4a_7c15).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const USES: [&str; 6] = ["residential", "office", "retail", "industrial", "public", "mixed"];
const PERIODS: [&str; 6] = ["before-1919", "1919-1944", "1945-1960", "1961-1980", "1981-2000", "after-2000"];
const HEATING: [&str; 5] = ["district-heating", "gas", "heat-pump", "oil", "electric"];
const LINES: [&str; 8] = ["U1", "U2", "U3", "U4", "U6", "13A", "D", "49"];

/// Writes one entity's JSON; fields depend on the record kind, and a geometry pads the
/// record to about `view.bytes_per_entity` bytes.
fn write_record(out: &mut String, view: &ViewSpec, i: u64, district: u32, seed: u64, bucket: u64) {
    // Mobility: a record keeps the values of the last bucket in which it changed.
    let version = match view.changes {
        Changes::Static => 0,
        Changes::Every { fraction_percent, .. } => {
            let mut b = bucket;
            while b > 0 && bucket - b < 64 && mix(seed ^ i, b) % 100 >= u64::from(fraction_percent) {
                b -= 1;
            }
            b
        }
    };
    let mut rng = fastrand::Rng::with_seed(mix(mix(seed, i), version));
    let (lon0, lat0) = (16.2 + rng.f64() * 0.35, 48.12 + rng.f64() * 0.2);
    let prefix = view.name.as_bytes()[0].to_ascii_uppercase() as char;
    let _ = write!(out, r#"{{"id":"{prefix}-{i:06}","district":{district},"#);
    match view.kind {
        RecordKind::Building => {
            let floors = rng.u32(1..12);
            let area = rng.u32(60..2400);
            let _ = write!(
                out,
                r#""block":"K-{:05}","use":"{}","constructionPeriod":"{}","floors":{floors},"heightM":{:.1},"grossFloorAreaM2":{},"heatDemandKWhPerYear":{},"heating":"{}","refurbished":{},"#,
                i / 19,
                USES[rng.usize(..USES.len())],
                PERIODS[rng.usize(..PERIODS.len())],
                floors as f64 * (2.8 + rng.f64()),
                area * floors,
                area * floors * rng.u32(40..220),
                HEATING[rng.usize(..HEATING.len())],
                rng.bool(),
            );
        }
        RecordKind::Block => {
            let buildings = rng.u32(4..40);
            let _ = write!(
                out,
                r#""buildings":{buildings},"grossFloorAreaM2":{},"meanConstructionYear":{},"heatDemandMWhPerYear":{:.1},"residents":{},"districtHeatingShare":{:.2},"#,
                buildings * rng.u32(300..3000),
                rng.u32(1850..2024),
                buildings as f64 * rng.f64() * 300.0,
                buildings * rng.u32(5..60),
                rng.f64(),
            );
        }
        RecordKind::NetworkElement => {
            let heat = rng.bool();
            let _ = write!(
                out,
                r#""kind":"{}","medium":"{}","{}":{},"lengthM":{:.1},"from":"N-{:06}","to":"N-{:06}","installed":{},"operator":"{}","#,
                ["pipe", "cable", "node"][rng.usize(..3)],
                if heat { "heat" } else { "electricity" },
                if heat { "diameterMm" } else { "voltageKv" },
                if heat { rng.u32(50..900) } else { [1, 10, 20, 110][rng.usize(..4)] },
                rng.f64() * 400.0,
                rng.u64(..view.entities),
                rng.u64(..view.entities),
                rng.u32(1950..2024),
                if heat { "Wien Energie" } else { "Wiener Netze" },
            );
        }
        RecordKind::Vehicle => {
            let _ = write!(
                out,
                r#""line":"{}","bearing":{},"speedKmh":{:.1},"delayS":{},"occupancy":{:.2},"version":{version},"#,
                LINES[rng.usize(..LINES.len())],
                rng.u32(0..360),
                rng.f64() * 60.0,
                rng.i32(-60..600),
                rng.f64(),
            );
        }
        RecordKind::Context(fields) => {
            for field in fields {
                let _ = write!(out, r#""{field}":{:.3},"#, rng.f64() * 1000.0);
            }
        }
    }
    // Pad with a geometry to the target size: about 20 bytes per coordinate pair.
    let (key, kind) = match view.kind {
        RecordKind::NetworkElement => ("geometry", "LineString"),
        RecordKind::Vehicle => ("trail", "MultiPoint"),
        _ => ("geometry", "Polygon"),
    };
    let _ = write!(out, r#""{key}":{{"type":"{kind}","coordinates":["#);
    let closing = 4;
    let points = (view.bytes_per_entity.saturating_sub(out.len() + closing) / 20).max(1);
    for p in 0..points {
        if p > 0 {
            out.push(',');
        }
        let _ = write!(out, "[{:.5},{:.5}]", lon0 + rng.f64() * 0.002, lat0 + rng.f64() * 0.002);
    }
    out.push_str("]}}");
}

/// Generated static data, shared by every service of the process with the same inputs.
fn cached_view(view: &'static ViewSpec, count: u64, seed: u64) -> Arc<ViewData> {
    type Key = (&'static str, &'static str, u64, u64);
    static CACHE: OnceLock<Mutex<HashMap<Key, Arc<ViewData>>>> = OnceLock::new();
    let key = (view.path, view.name, count, seed);
    let cache = CACHE.get_or_init(Default::default);
    if let Some(data) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return data.clone();
    }
    // Generated outside the lock; two racing first callers both generate, one result is kept.
    let data = Arc::new(ViewData::generate(view, count, seed, 0));
    cache.lock().unwrap_or_else(|e| e.into_inner()).entry(key).or_insert(data).clone()
}

/// Emulated server-side work per request (paper time; divided by `scale.time` when served).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ServiceWork {
    /// Fixed cost of every request (query planning, connection to the store…).
    pub per_request: Duration,
    /// Cost per entity returned (reading and serialising a record).
    pub per_entity: Duration,
}

impl Default for ServiceWork {
    /// 50 ms per request and 10 µs per entity: a district of buildings (≈ 6,900) costs
    /// ≈ 120 ms locally, small next to the 8 MB it sends over a 100 Mbit/s link.
    fn default() -> ServiceWork {
        ServiceWork { per_request: Duration::from_millis(50), per_entity: Duration::from_micros(10) }
    }
}

/// How a service is run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceConfig {
    /// The city it serves (in bodies and the `x-urbem-city` header).
    pub city: String,
    /// Time and size factors.
    pub scale: Scale,
    /// Emulated server-side work (paper time).
    pub work: ServiceWork,
    /// Seed of the data; a city's services use the same seed in every run.
    pub seed: u64,
}

impl ServiceConfig {
    /// A city's default config: seed from the city's name, default work.
    pub fn for_city(city: &str, scale: Scale) -> ServiceConfig {
        ServiceConfig {
            city: city.to_owned(),
            scale,
            work: ServiceWork::default(),
            seed: crate::wan::seed_from_name(city),
        }
    }
}

/// A running data service. Dropping it starts a graceful stop; [`DataService::shutdown`] also waits for it.
#[derive(Debug)]
pub struct DataService {
    spec: &'static ServiceSpec,
    local_addr: SocketAddr,
    state: Arc<ServiceState>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct ServiceState {
    city: String,
    scale: Scale,
    work: ServiceWork,
    seed: u64,
    requests: AtomicU64,
    bytes_sent: AtomicU64,
    /// Current data of changing views, per view index: (bucket, data).
    live: Mutex<HashMap<usize, (u64, Arc<ViewData>)>>,
    /// Static data per view index, generated at start.
    fixed: HashMap<usize, Arc<ViewData>>,
    views: &'static [ViewSpec],
}

impl DataService {
    /// Generates (or reuses) the service's data, binds `listen` and serves every view of `spec`.
    pub async fn start(listen: SocketAddr, spec: &'static ServiceSpec, config: ServiceConfig) -> Result<DataService> {
        let scale = config.scale;
        let seed = config.seed;
        // Generating full-size views takes seconds: off the runtime threads.
        let fixed = tokio::task::spawn_blocking(move || {
            spec.views
                .iter()
                .enumerate()
                .filter(|(_, v)| v.changes == Changes::Static)
                .map(|(i, v)| (i, cached_view(v, scale.count(v.entities), seed)))
                .collect::<HashMap<_, _>>()
        })
        .await
        .map_err(|e| SimError::Invalid { what: format!("service {}", spec.name), reason: e.to_string() })?;
        let state = Arc::new(ServiceState {
            city: config.city,
            scale,
            work: config.work,
            seed,
            requests: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            live: Mutex::new(HashMap::new()),
            fixed,
            views: spec.views,
        });
        let mut router = Router::new().route("/schema", get(schema)).route("/healthz", get(|| async { "ok" }));
        for (index, view) in spec.views.iter().enumerate() {
            let handler = get(move |state: State<Arc<ServiceState>>, query: Query<ViewQuery>, headers: HeaderMap| {
                serve_view(state, index, query, headers)
            });
            // `/buildings/` too: a node's replica copy asks for the view's own resource with
            // a trailing slash (its variant `/`), see docs/simulation.md.
            router = router.route(view.path, handler.clone()).route(&format!("{}/", view.path), handler);
        }
        let router = router.with_state(state.clone());
        let listener = TcpListener::bind(listen).await.map_err(|source| SimError::Bind { addr: listen, source })?;
        let local_addr = listener.local_addr().map_err(|source| SimError::Bind { addr: listen, source })?;
        let (stop, mut stop_rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stop_rx.changed().await;
            };
            if let Err(error) = axum::serve(listener, router).with_graceful_shutdown(shutdown).await {
                tracing::warn!(%error, "data service stopped");
            }
        });
        tracing::debug!(service = spec.name, %local_addr, "data service started");
        Ok(DataService { spec, local_addr, state, stop, task: Some(task) })
    }

    /// What it serves.
    pub fn spec(&self) -> &'static ServiceSpec {
        self.spec
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Its base URL, e.g. `http://127.0.0.1:8091` (a view's path is appended).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.local_addr)
    }

    /// Requests answered so far (including `304`s and `400`s).
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::Relaxed)
    }

    /// Body bytes sent so far (envelope included).
    pub fn bytes_sent(&self) -> u64 {
        self.state.bytes_sent.load(Ordering::Relaxed)
    }

    /// Stops accepting, lets in-flight responses finish, and waits.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for DataService {
    fn drop(&mut self) {
        // Graceful: the listener closes now and open connections end after their current
        // response (aborting the server task would leave its connection tasks running).
        let _ = self.stop.send(true);
    }
}

/// The query parameters a view understands; everything else is ignored.
#[derive(Debug, Default, serde::Deserialize)]
struct ViewQuery {
    district: Option<String>,
    offset: Option<String>,
    limit: Option<String>,
}

/// A parameter in `range`, or the problem detail saying why not.
fn parse_param(name: &str, value: Option<&str>, range: Range<u64>) -> std::result::Result<Option<u64>, String> {
    let Some(value) = value else { return Ok(None) };
    match value.parse::<u64>() {
        Ok(v) if range.contains(&v) => Ok(Some(v)),
        _ => Err(format!("{name}={value:?} must be a whole number in {}..={}", range.start, range.end - 1)),
    }
}

fn bad_request(detail: String) -> Response {
    let problem = serde_json::json!({"title": "invalid query parameter", "status": 400, "detail": detail});
    (StatusCode::BAD_REQUEST, [(header::CONTENT_TYPE, "application/problem+json")], problem.to_string()).into_response()
}

impl ServiceState {
    /// The view's current data and, for changing views, the start of its bucket.
    fn data(&self, index: usize) -> (Arc<ViewData>, SystemTime) {
        if let Some(data) = self.fixed.get(&index) {
            return (data.clone(), UNIX_EPOCH + Duration::from_secs(STATIC_LAST_MODIFIED_UNIX));
        }
        let view = &self.views[index];
        let Changes::Every { period, .. } = view.changes else { unreachable!("static views are generated at start") };
        let period = self.scale.duration(period).max(Duration::from_millis(1));
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let period_ms = period.as_millis() as u64;
        let bucket = now.as_millis() as u64 / period_ms;
        let started = UNIX_EPOCH + Duration::from_millis(bucket * period_ms);
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((b, data)) = live.get(&index)
            && *b == bucket
        {
            return (data.clone(), started);
        }
        // Small (4,000 records at full size): generated under the lock, once per bucket.
        let data = Arc::new(ViewData::generate(view, self.scale.count(view.entities), self.seed, bucket));
        live.insert(index, (bucket, data.clone()));
        (data, started)
    }
}

async fn serve_view(
    State(state): State<Arc<ServiceState>>,
    index: usize,
    Query(query): Query<ViewQuery>,
    headers: HeaderMap,
) -> Response {
    state.requests.fetch_add(1, Ordering::Relaxed);
    let district = match parse_param("district", query.district.as_deref(), 1..u64::from(DISTRICTS) + 1) {
        Ok(d) => d,
        Err(detail) => return bad_request(detail),
    };
    let offset = match parse_param("offset", query.offset.as_deref(), 0..u64::MAX) {
        Ok(o) => o.unwrap_or(0) as usize,
        Err(detail) => return bad_request(detail),
    };
    let limit = match parse_param("limit", query.limit.as_deref(), 0..u64::MAX) {
        Ok(l) => l.map(|l| l as usize),
        Err(detail) => return bad_request(detail),
    };
    let (data, last_modified) = state.data(index);
    let view = &state.views[index];
    let selected = match district {
        Some(d) => data.districts[d as usize - 1].clone(),
        None => 0..data.len(),
    };
    let start = (selected.start + offset).min(selected.end);
    let end = limit.map_or(selected.end, |l| start.saturating_add(l).min(selected.end));
    let etag = format!(
        "\"{}-{:016x}-d{}-o{offset}-l{}\"",
        view.name,
        data.fingerprint,
        district.unwrap_or(0),
        limit.map_or("all".to_owned(), |l| l.to_string())
    );
    let last_modified_text = httpdate::fmt_http_date(last_modified);
    let work = state.scale.duration(state.work.per_request);
    if not_modified(&headers, &etag, last_modified) {
        tokio::time::sleep(work).await;
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag), (header::LAST_MODIFIED, last_modified_text)])
            .into_response();
    }
    tokio::time::sleep(work + state.scale.duration(state.work.per_entity) * (end - start) as u32).await;
    let head = format!(
        r#"{{"view":"{}","city":"{}","district":{},"offset":{offset},"count":{},"total":{},"items":["#,
        view.name,
        state.city,
        district.map_or("null".to_owned(), |d| d.to_string()),
        end - start,
        selected.len(),
    );
    let body = ChunkedBody::new([Bytes::from(head), data.slice(start..end), Bytes::from_static(b"]}")]);
    state.bytes_sent.fetch_add(body.remaining, Ordering::Relaxed);
    let mut response = Response::new(Body::new(body));
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(header::ETAG, HeaderValue::from_str(&etag).expect("ASCII"));
    h.insert(header::LAST_MODIFIED, HeaderValue::from_str(&last_modified_text).expect("ASCII"));
    h.insert("x-urbem-entities", HeaderValue::from(end - start));
    response
}

/// RFC 9110 §13.1: `If-None-Match` decides when present; otherwise `If-Modified-Since`.
fn not_modified(headers: &HeaderMap, etag: &str, last_modified: SystemTime) -> bool {
    if let Some(value) = headers.get(header::IF_NONE_MATCH) {
        let Ok(value) = value.to_str() else { return false };
        return value.split(',').map(|t| t.trim().trim_start_matches("W/")).any(|t| t == "*" || t == etag);
    }
    let Some(since) = headers.get(header::IF_MODIFIED_SINCE).and_then(|v| v.to_str().ok()) else { return false };
    let Ok(since) = httpdate::parse_http_date(since) else { return false };
    // Dates have whole seconds: compare at that resolution.
    let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    secs(last_modified) <= secs(since)
}

async fn schema(State(state): State<Arc<ServiceState>>) -> impl IntoResponse {
    let views: Vec<_> =
        state.views.iter().map(|v| serde_json::json!({"name": v.name, "path": v.path, "record": v.kind})).collect();
    axum::Json(serde_json::json!({
        "description": "Synthetic URBEM data service (civitas-sim): deterministic records sorted by district",
        "parameters": {"district": "1..23", "offset": "skip N records", "limit": "at most N records"},
        "views": views,
    }))
}

/// A response body of a few `Bytes` parts with an exact length, so hyper sends
/// `Content-Length` and a cut connection is visible to the client as a short body.
struct ChunkedBody {
    parts: std::collections::VecDeque<Bytes>,
    remaining: u64,
}

impl ChunkedBody {
    fn new<const N: usize>(parts: [Bytes; N]) -> ChunkedBody {
        let parts: std::collections::VecDeque<Bytes> = parts.into_iter().filter(|b| !b.is_empty()).collect();
        let remaining = parts.iter().map(|b| b.len() as u64).sum();
        ChunkedBody { parts, remaining }
    }
}

impl http_body::Body for ChunkedBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<http_body::Frame<Bytes>, Self::Error>>> {
        match self.parts.pop_front() {
            Some(part) => {
                self.remaining -= part.len() as u64;
                Poll::Ready(Some(Ok(http_body::Frame::data(part))))
            }
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.parts.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_services_with_the_papers_entity_counts() {
        assert_eq!(SERVICES.len(), 10);
        let entities = |n| ServiceSpec::named(n).unwrap().entities();
        assert_eq!((entities("buildings"), entities("networks"), entities("mobility")), (158_000, 68_000, 4_000));
        assert_eq!(SERVICES.iter().filter(|s| s.measured).count(), 3);
        let mut paths: Vec<_> = SERVICES.iter().flat_map(|s| s.views.iter().map(|v| v.path)).collect();
        paths.sort();
        paths.dedup();
        assert_eq!(paths.len(), 11, "every view has its own path");
    }

    #[test]
    fn records_have_the_papers_sizes_and_are_valid_json() {
        for spec in &SERVICES {
            for view in spec.views {
                let data = ViewData::generate(view, 500.min(view.entities), 1, 0);
                let per_entity = data.size_bytes() as f64 / data.len() as f64;
                let target = view.bytes_per_entity as f64;
                assert!((per_entity - target).abs() / target < 0.12, "{}: {per_entity} B per entity", view.name);
                let array = format!("[{}]", std::str::from_utf8(&data.body).unwrap());
                let parsed: Vec<serde_json::Value> = serde_json::from_str(&array).unwrap();
                assert_eq!(parsed.len(), data.len());
            }
        }
    }

    #[test]
    fn districts_partition_the_entities_in_order() {
        let view = &SERVICES[0].views[0];
        let data = ViewData::generate(view, 1000, 3, 0);
        assert_eq!(data.districts.first().unwrap().start, 0);
        assert_eq!(data.districts.last().unwrap().end, 1000);
        for pair in data.districts.windows(2) {
            assert_eq!(pair[0].end, pair[1].start);
        }
    }

    #[test]
    fn generation_is_deterministic_and_mobility_changes_a_share_per_bucket() {
        let view = ServiceSpec::named("mobility").unwrap().views[0];
        let a = ViewData::generate(&view, 400, 9, 100);
        let b = ViewData::generate(&view, 400, 9, 100);
        assert_eq!(a.body, b.body);
        let next = ViewData::generate(&view, 400, 9, 101);
        let changed = (0..400).filter(|&i| a.slice(i..i + 1) != next.slice(i..i + 1)).count();
        assert!((180..=300).contains(&changed), "{changed} of 400 records changed, expected about 60 %");
    }
}
