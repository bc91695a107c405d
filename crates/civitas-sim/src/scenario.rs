//! The paper's two evaluation scenarios as data, for the `civitas scenario` runner.
//!
//! A [`Scenario`] says which cities take part (one site, one Civitas node, ten data services
//! each), which links join them (latency, bandwidth, egress price), whose data each city's
//! clients read, the request mix, the trigger the runner submits through the SDD API, and
//! the phase durations — all already divided by the scenario's [`Scale`].
//!
//! | | scenario one | scenario two |
//! |---|---|---|
//! | cities | Vienna, Melbourne (private OpenStack, 4 vCPU) | Berkeley, Vienna, Hong Kong (Google Cloud, 2 vCPU) |
//! | clients | 5 in Vienna, reading Melbourne | 5 per city: Berkeley reads Vienna, Vienna reads Hong Kong, Hong Kong reads Berkeley |
//! | links | Vienna–Melbourne 150 ms | Berkeley–Vienna 50 ms, Vienna–Hong Kong 130 ms, Hong Kong–Berkeley 75 ms |
//! | phases | 5 min inactive + 5 min active | same |
//!
//! Every link carries 40 Mbit/s: with it, one district of buildings (8.2 MB) shared with
//! the other requests of five clients gives response times of the paper's order (≈ 10 s for
//! buildings, ≈ 4 s for blocks, ≈ 7 s for networks, ≈ 1 s for mobility; see
//! docs/simulation.md), so the 3 s trigger selects the same three request types as the paper.
//!
//! Catalog names are per city (`urn:urbem:<city>:buildings`, `urn:instance:<city>:buildings`,
//! `urn:site:<city>`), so that each city's own services are not taken for replicas of another
//! city's data. [`Scenario::catalog_documents`] writes them as canonical JSON-LD, like
//! `examples/urbem`, with the endpoints the runner actually bound.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use civitas_model::{Document, SiteLink};
use serde::Serialize;
use serde_json::{Value, json};

use crate::clients::{ClientPlan, RequestType};
use crate::error::{Result, SimError};
use crate::scale::Scale;
use crate::urbem::{SERVICES, ServiceSpec, ServiceWork};
use crate::wan::LinkProfile;

/// The paper's trigger: response times longer than 3 s (divided by `scale.time`).
pub const PAPER_TRIGGER: Duration = Duration::from_secs(3);

/// The paper's phase length: 5 minutes inactive, then 5 minutes active.
pub const PAPER_PHASE: Duration = Duration::from_secs(300);

/// One city: a site, a node, ten services.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct City {
    /// Slug used in names and URNs, e.g. `hong-kong`.
    pub name: String,
    /// Name for people, e.g. `Hong Kong`.
    pub display_name: String,
    /// The loopback address the city's listeners bind (`127.0.0.x`; port 0).
    pub address: Ipv4Addr,
    /// Cloud region of the site.
    pub region: String,
    /// Jurisdiction of the data held there.
    pub jurisdiction: String,
    /// Who runs the site.
    pub provider: String,
    /// Price currency (ISO 4217).
    pub currency: String,
    /// vCPUs of the paper's VM.
    pub cpu_cores: u32,
    /// Prices: CPU hour, memory GB hour, storage GB month, egress GB.
    pub prices: [f64; 4],
}

impl City {
    /// The site's URN, `urn:site:<name>`.
    pub fn site(&self) -> String {
        format!("urn:site:{}", self.name)
    }

    /// The URN of one of its units, `urn:urbem:<city>:<service>`.
    pub fn unit(&self, service: &ServiceSpec) -> String {
        format!("urn:urbem:{}:{}", self.name, service.name)
    }

    /// The URN of one of its instances, `urn:instance:<city>:<service>`.
    pub fn instance(&self, service: &ServiceSpec) -> String {
        format!("urn:instance:{}:{}", self.name, service.name)
    }
}

/// A link between two cities, as a `SiteLink` says it (paper figures, not scaled).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LinkSpec {
    /// One end (city slug).
    pub a: String,
    /// The other end (city slug).
    pub b: String,
    /// One-way latency in milliseconds.
    pub latency_ms: f64,
    /// Bandwidth in Mbit/s.
    pub bandwidth_mbps: f64,
    /// Price per GB sent.
    pub egress_price_per_gb: f64,
}

impl LinkSpec {
    /// The link's URN, `urn:link:<a>-<b>`.
    pub fn name(&self) -> String {
        format!("urn:link:{}-{}", self.a, self.b)
    }

    /// Whether it joins `x` and `y` (either way round).
    pub fn joins(&self, x: &str, y: &str) -> bool {
        (self.a == x && self.b == y) || (self.a == y && self.b == x)
    }
}

/// Clients in `client_city` read the data of `origin_city`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reads {
    /// Where the clients run.
    pub client_city: String,
    /// Whose services they read.
    pub origin_city: String,
}

/// One request type of the mix.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestSpec {
    /// Name in tables and charts: `buildings`, `blocks`, `networks`, `mobility`.
    pub name: &'static str,
    /// Which of the ten services it reads.
    pub service: &'static str,
    /// The view's path.
    pub path: &'static str,
    /// `?district=N`, if any.
    pub district: Option<u32>,
    /// `?limit=N` at paper scale (divided by `scale.size` in the URL), if any.
    pub paper_limit: Option<u64>,
    /// Think time between two requests of one client, paper time.
    pub paper_think_time: Duration,
    /// Whether the paper saw it migrate (buildings, blocks, networks: yes; mobility: no).
    pub migrates: bool,
}

impl RequestSpec {
    /// Path and query at `scale`, e.g. `/buildings?district=5` or `/blocks?limit=69`.
    pub fn path_and_query(&self, scale: &Scale) -> String {
        let mut query = Vec::new();
        if let Some(d) = self.district {
            query.push(format!("district={d}"));
        }
        if let Some(l) = self.paper_limit {
            query.push(format!("limit={}", scale.count(l)));
        }
        if query.is_empty() { self.path.to_owned() } else { format!("{}?{}", self.path, query.join("&")) }
    }
}

/// The paper's request mix: one district of buildings (≈ 8.2 MB), the blocks of the inner
/// third of the city (≈ 3.3 MB), one district of networks (≈ 4.1 MB), a quarter of the
/// vehicles (≈ 250 KB, changing every 5 s).
pub fn paper_request_mix() -> Vec<RequestSpec> {
    vec![
        RequestSpec {
            name: "buildings",
            service: "buildings",
            path: "/buildings",
            district: Some(5),
            paper_limit: None,
            paper_think_time: Duration::from_secs(10),
            migrates: true,
        },
        RequestSpec {
            name: "blocks",
            service: "buildings",
            path: "/blocks",
            district: None,
            paper_limit: Some(2_778),
            paper_think_time: Duration::from_secs(5),
            migrates: true,
        },
        RequestSpec {
            name: "networks",
            service: "networks",
            path: "/networks",
            district: Some(5),
            paper_limit: None,
            paper_think_time: Duration::from_secs(10),
            migrates: true,
        },
        RequestSpec {
            name: "mobility",
            service: "mobility",
            path: "/mobility",
            district: None,
            paper_limit: Some(1_000),
            paper_think_time: Duration::from_secs(5),
            migrates: false,
        },
    ]
}

/// A scenario, scaled.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scenario {
    /// `one` or `two`.
    pub name: String,
    /// A line for people and chart titles.
    pub title: String,
    /// The factors applied to every duration and size below.
    pub scale: Scale,
    /// Every city runs a node and the ten services.
    pub cities: Vec<City>,
    /// Links between cities (paper figures; [`Scenario::link_profile`] scales them).
    pub links: Vec<LinkSpec>,
    /// Whose data each city's clients read.
    pub reads: Vec<Reads>,
    /// Clients per reading city (the paper: 5).
    pub clients_per_city: usize,
    /// The request mix each client replays.
    pub request_mix: Vec<RequestSpec>,
    /// Response time above which a view should migrate (3 s ÷ `scale.time`).
    pub trigger_response_time: Duration,
    /// The trigger as the SDD API takes it (`civitas sdd activate --trigger …`).
    pub trigger: String,
    /// The confidence interval submitted with it (automatic migrations, as in the paper).
    pub confidence: (f64, f64),
    /// Baseline phase, SDD inactive (5 min ÷ `scale.time`).
    pub baseline: Duration,
    /// Active phase after activation (5 min ÷ `scale.time`).
    pub active: Duration,
    /// Server-side work of every data service (paper time; services divide it).
    pub service_work: ServiceWork,
}

/// Who hosts a city's site and at what price.
struct Hosting {
    provider: &'static str,
    currency: &'static str,
    cpu_cores: u32,
    prices: [f64; 4],
}

fn city(name: &str, display_name: &str, host: u8, (region, jurisdiction): (&str, &str), hosting: &Hosting) -> City {
    City {
        name: name.into(),
        display_name: display_name.into(),
        address: Ipv4Addr::new(127, 0, 0, host),
        region: region.into(),
        jurisdiction: jurisdiction.into(),
        provider: hosting.provider.into(),
        currency: hosting.currency.into(),
        cpu_cores: hosting.cpu_cores,
        prices: hosting.prices,
    }
}

/// Scenario one's private OpenStack VMs: 4 vCPU, 7.5 GB, as in `examples/urbem`.
const VIENNA_OPENSTACK: Hosting =
    Hosting { provider: "City of Vienna", currency: "EUR", cpu_cores: 4, prices: [0.04, 0.005, 0.02, 0.09] };
const MELBOURNE_OPENSTACK: Hosting =
    Hosting { provider: "City of Melbourne", currency: "AUD", cpu_cores: 4, prices: [0.06, 0.008, 0.03, 0.15] };
/// Scenario two's n1-standard-2 instances: 2 vCPU, 7.5 GB.
const GOOGLE_CLOUD: Hosting =
    Hosting { provider: "Google Cloud Platform", currency: "USD", cpu_cores: 2, prices: [0.0475, 0.0064, 0.04, 0.08] };

fn link(a: &str, b: &str, latency_ms: f64, egress_price_per_gb: f64) -> LinkSpec {
    LinkSpec { a: a.into(), b: b.into(), latency_ms, bandwidth_mbps: 40.0, egress_price_per_gb }
}

fn reads(client_city: &str, origin_city: &str) -> Reads {
    Reads { client_city: client_city.into(), origin_city: origin_city.into() }
}

impl Scenario {
    /// Scenario one: clients in Vienna read Melbourne's data over a 150 ms link.
    pub fn one(scale: Scale) -> Scenario {
        Scenario::build(
            "one",
            "Scenario one: Vienna ↔ Melbourne",
            scale,
            vec![
                city("vienna", "Vienna", 11, ("eu-central", "AT"), &VIENNA_OPENSTACK),
                city("melbourne", "Melbourne", 12, ("ap-southeast", "AU"), &MELBOURNE_OPENSTACK),
            ],
            vec![link("vienna", "melbourne", 150.0, 0.09)],
            vec![reads("vienna", "melbourne")],
        )
    }

    /// Scenario two: Berkeley, Vienna and Hong Kong in three cloud regions; each city's
    /// clients read the next city's data (Berkeley → Vienna → Hong Kong → Berkeley), so every
    /// link and every city's services carry traffic, as in the paper.
    pub fn two(scale: Scale) -> Scenario {
        let gcp = |name, display, host, place| city(name, display, host, place, &GOOGLE_CLOUD);
        Scenario::build(
            "two",
            "Scenario two: Berkeley, Vienna, Hong Kong",
            scale,
            vec![
                gcp("berkeley", "Berkeley", 21, ("us-central", "US")),
                gcp("vienna", "Vienna", 22, ("europe-west", "AT")),
                gcp("hong-kong", "Hong Kong", 23, ("asia-east", "HK")),
            ],
            vec![
                link("berkeley", "vienna", 50.0, 0.08),
                link("vienna", "hong-kong", 130.0, 0.08),
                link("hong-kong", "berkeley", 75.0, 0.08),
            ],
            vec![reads("berkeley", "vienna"), reads("vienna", "hong-kong"), reads("hong-kong", "berkeley")],
        )
    }

    /// `one` or `two` at `scale`; `None` for another name.
    pub fn named(name: &str, scale: Scale) -> Option<Scenario> {
        match name {
            "one" => Some(Scenario::one(scale)),
            "two" => Some(Scenario::two(scale)),
            _ => None,
        }
    }

    fn build(
        name: &str,
        title: &str,
        scale: Scale,
        cities: Vec<City>,
        links: Vec<LinkSpec>,
        reads: Vec<Reads>,
    ) -> Scenario {
        let trigger_response_time = scale.duration(PAPER_TRIGGER);
        let title = if scale == Scale::FULL {
            title.to_owned()
        } else {
            format!("{title} (time ÷ {}, sizes ÷ {})", scale.time, scale.size)
        };
        Scenario {
            name: name.into(),
            title,
            scale,
            cities,
            links,
            reads,
            clients_per_city: 5,
            request_mix: paper_request_mix(),
            // The paper's trigger has no hold time: "response times longer than 3 s". The
            // analyzers' window already smooths it (a median of at least five samples).
            trigger: format!("response_time.p50 > {}ms min 5", trigger_response_time.as_millis()),
            trigger_response_time,
            confidence: (0.0, 1.0),
            baseline: scale.duration(PAPER_PHASE),
            active: scale.duration(PAPER_PHASE),
            service_work: ServiceWork::default(),
        }
    }

    /// The city named `name`.
    pub fn city(&self, name: &str) -> Option<&City> {
        self.cities.iter().find(|c| c.name == name)
    }

    /// The link between two cities, as the catalog document (paper figures).
    pub fn site_link(&self, a: &str, b: &str) -> Option<SiteLink> {
        let spec = self.links.iter().find(|l| l.joins(a, b))?;
        match Document::decode(&link_document(spec)) {
            Ok(Document::SiteLink(link)) => Some(link),
            _ => None,
        }
    }

    /// The relay profile between two cities at the scenario's scale.
    pub fn link_profile(&self, a: &str, b: &str) -> Option<LinkProfile> {
        self.site_link(a, b).map(|l| LinkProfile::from_site_link(&l, &self.scale))
    }

    /// Total run time: baseline plus active phase.
    pub fn duration(&self) -> Duration {
        self.baseline + self.active
    }

    /// Every catalog document of the scenario, canonical JSON-LD (as `civitas get -o json`
    /// prints): sites, links, then per city its ten units and ten origin instances.
    /// `endpoints` maps (city, service) to the base URL other sites use to reach that
    /// service — the relay's address where a remote city reads it. Each document is checked
    /// by decoding it with `civitas-model`.
    pub fn catalog_documents(&self, endpoints: &ServiceEndpoints) -> Result<Vec<Value>> {
        let mut raw = Vec::new();
        for c in &self.cities {
            raw.push(site_document(c));
        }
        for l in &self.links {
            raw.push(link_document(l));
        }
        for c in &self.cities {
            for s in &SERVICES {
                let endpoint =
                    endpoints.get(&(c.name.clone(), s.name.to_owned())).ok_or_else(|| SimError::Invalid {
                        what: format!("scenario {} endpoints", self.name),
                        reason: format!("no endpoint for service {} of {}", s.name, c.name),
                    })?;
                raw.push(unit_document(c, s, endpoint, &self.scale));
                raw.push(instance_document(c, s, endpoint));
            }
        }
        raw.into_iter()
            .map(|v| {
                Document::decode(&v).map(|d| d.encode()).map_err(|e| SimError::Invalid {
                    what: format!("scenario {} document {}", self.name, v["name"]),
                    reason: e.to_string(),
                })
            })
            .collect()
    }

    /// The clients of every reading city. `endpoints` as for [`Scenario::catalog_documents`];
    /// `proxies` maps a city to its node's data plane (forward proxy), `None` for direct.
    pub fn client_plans(
        &self,
        endpoints: &ServiceEndpoints,
        proxies: &BTreeMap<String, Option<String>>,
    ) -> Result<Vec<ClientPlan>> {
        self.reads
            .iter()
            .map(|r| {
                let request_types = self
                    .request_mix
                    .iter()
                    .map(|m| {
                        let base = endpoints.get(&(r.origin_city.clone(), m.service.to_owned())).ok_or_else(|| {
                            SimError::Invalid {
                                what: format!("scenario {} endpoints", self.name),
                                reason: format!("no endpoint for service {} of {}", m.service, r.origin_city),
                            }
                        })?;
                        Ok(RequestType {
                            name: m.name.to_owned(),
                            url: format!("{}{}", base.trim_end_matches('/'), m.path_and_query(&self.scale)),
                            think_time: self.scale.duration(m.paper_think_time),
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(ClientPlan {
                    city: r.client_city.clone(),
                    clients: self.clients_per_city,
                    request_types,
                    proxy: proxies.get(&r.client_city).cloned().flatten(),
                    // Ten times the trigger: far above any healthy response, so a hung
                    // request is a failure, not a stuck client.
                    timeout: (self.trigger_response_time * 10).max(Duration::from_secs(10)),
                    seed: crate::wan::seed_from_name(&r.client_city),
                })
            })
            .collect()
    }
}

/// Base URL of every (city, service) pair, e.g. `("melbourne", "buildings") → http://127.0.0.11:40123`.
pub type ServiceEndpoints = BTreeMap<(String, String), String>;

fn site_document(c: &City) -> Value {
    json!({
        "@type": "Site",
        "name": c.site(),
        "version": "1.0",
        "tier": "cloud",
        "region": c.region,
        "jurisdiction": c.jurisdiction,
        "provider": c.provider,
        "capabilities": ["docker", "object-storage"],
        "capacity": {"cpuCores": c.cpu_cores, "memoryBytes": 8_053_063_680u64, "storageBytes": 100_000_000_000u64},
        "prices": {
            "currency": c.currency,
            "cpuHour": c.prices[0],
            "memoryGbHour": c.prices[1],
            "storageGbMonth": c.prices[2],
            "egressGb": c.prices[3],
        },
    })
}

fn link_document(l: &LinkSpec) -> Value {
    json!({
        "@type": "SiteLink",
        "name": l.name(),
        "version": "1.0",
        "from": format!("urn:site:{}", l.a),
        "to": format!("urn:site:{}", l.b),
        "latencyMs": l.latency_ms,
        "bandwidthMbps": l.bandwidth_mbps,
        "egressPricePerGb": l.egress_price_per_gb,
        "bidirectional": true,
    })
}

/// A unit with its views at the run's scale: entity counts and sizes divided by
/// `scale.size`; a sub-minute period (mobility's `PT5S`) and update times divided by `scale.time`.
fn unit_document(c: &City, s: &ServiceSpec, endpoint: &str, scale: &Scale) -> Value {
    let unit = c.unit(s);
    let views: Vec<Value> = s
        .views
        .iter()
        .map(|v| {
            let (period, fraction, update_time) = v.update_frequency;
            let period = match v.changes {
                crate::urbem::Changes::Every { period, .. } => {
                    format!("PT{}S", trim_number(scale.duration(period).as_secs_f64()))
                }
                crate::urbem::Changes::Static => period.to_owned(),
            };
            json!({
                "name": format!("{unit}:{}", v.name),
                "link": v.path,
                "updateFrequency": {
                    "period": period,
                    "times": 1,
                    "fraction": fraction,
                    "updateTime": update_time / scale.time,
                },
                "size": scale.count(v.entities) * v.bytes_per_entity as u64,
            })
        })
        .collect();
    json!({
        "@type": "DataUnit",
        "name": unit,
        "version": "1.0",
        "metainformation": {
            "type": "rest",
            "schema": format!("{}/schema", endpoint.trim_end_matches('/')),
            "description": format!("{} ({})", s.description, c.display_name),
            "entities": scale.count(s.entities()),
        },
        "views": views,
    })
}

fn instance_document(c: &City, s: &ServiceSpec, endpoint: &str) -> Value {
    let unit = c.unit(s);
    json!({
        "@type": "DataInstance",
        "name": c.instance(s),
        "version": "1.0",
        "dataUnit": unit,
        "views": s.views.iter().map(|v| format!("{unit}:{}", v.name)).collect::<Vec<_>>(),
        "site": c.site(),
        "endpoint": endpoint.trim_end_matches('/'),
        "role": "origin",
    })
}

/// `1`, `0.5`, `0.001`: no trailing zeros, millisecond precision.
fn trim_number(x: f64) -> String {
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints(s: &Scenario) -> ServiceEndpoints {
        let mut e = ServiceEndpoints::new();
        for (i, c) in s.cities.iter().enumerate() {
            for (j, svc) in SERVICES.iter().enumerate() {
                e.insert(
                    (c.name.clone(), svc.name.to_owned()),
                    format!("http://{}:{}", c.address, 20000 + i * 100 + j),
                );
            }
        }
        e
    }

    #[test]
    fn default_runs_are_under_three_minutes_and_full_is_five_plus_five() {
        for name in ["one", "two"] {
            let scaled = Scenario::named(name, Scale::DEFAULT).unwrap();
            assert!(scaled.duration() < Duration::from_secs(180), "{name}: {:?}", scaled.duration());
            let full = Scenario::named(name, Scale::FULL).unwrap();
            assert_eq!((full.baseline, full.active), (Duration::from_secs(300), Duration::from_secs(300)));
            assert_eq!(full.trigger_response_time, Duration::from_secs(3));
        }
        assert!(Scenario::named("three", Scale::FULL).is_none());
    }

    #[test]
    fn the_trigger_is_scaled() {
        let s = Scenario::one(Scale::DEFAULT);
        assert_eq!(s.trigger_response_time, Duration::from_millis(600));
        assert_eq!(s.trigger, "response_time.p50 > 600ms min 5");
    }

    #[test]
    fn scenario_one_catalog_is_canonical_and_complete() {
        let s = Scenario::one(Scale::DEFAULT);
        let docs = s.catalog_documents(&endpoints(&s)).unwrap();
        let count = |t: &str| docs.iter().filter(|d| d["@type"] == t).count();
        assert_eq!((count("Site"), count("SiteLink"), count("DataUnit"), count("DataInstance")), (2, 1, 20, 20));
        for d in &docs {
            // Canonical: decoding and encoding again changes nothing.
            assert_eq!(&Document::decode(d).unwrap().encode(), d);
        }
        let buildings = docs.iter().find(|d| d["name"] == "urn:urbem:melbourne:buildings").unwrap();
        assert_eq!(buildings["metainformation"]["entities"], 3950);
        assert_eq!(buildings["views"][1]["name"], "urn:urbem:melbourne:buildings:blocks");
        let mobility = docs.iter().find(|d| d["name"] == "urn:urbem:melbourne:mobility").unwrap();
        assert_eq!(mobility["views"][0]["updateFrequency"]["period"], "PT1S");
        let instance = docs.iter().find(|d| d["name"] == "urn:instance:melbourne:networks").unwrap();
        assert_eq!(instance["site"], "urn:site:melbourne");
        assert!(instance["endpoint"].as_str().unwrap().starts_with("http://127.0.0.12:"));
    }

    #[test]
    fn a_missing_endpoint_is_an_error() {
        let s = Scenario::one(Scale::DEFAULT);
        let mut e = endpoints(&s);
        e.remove(&("melbourne".to_owned(), "climate".to_owned()));
        assert!(s.catalog_documents(&e).is_err());
    }

    #[test]
    fn scenario_two_has_three_cities_reading_each_other() {
        let s = Scenario::two(Scale::DEFAULT);
        let docs = s.catalog_documents(&endpoints(&s)).unwrap();
        assert_eq!(docs.len(), 3 + 3 + 30 + 30);
        let plans = s.client_plans(&endpoints(&s), &BTreeMap::new()).unwrap();
        assert_eq!(plans.len(), 3);
        for r in &s.reads {
            assert!(s.link_profile(&r.client_city, &r.origin_city).is_some(), "{r:?} has a link");
        }
    }

    #[test]
    fn client_plans_point_at_the_origin_through_the_proxy() {
        let s = Scenario::one(Scale::DEFAULT);
        let e = endpoints(&s);
        let proxies = BTreeMap::from([("vienna".to_owned(), Some("http://127.0.0.11:7070".to_owned()))]);
        let plans = s.client_plans(&e, &proxies).unwrap();
        assert_eq!(plans.len(), 1);
        let p = &plans[0];
        assert_eq!((p.city.as_str(), p.clients, p.request_types.len()), ("vienna", 5, 4));
        assert_eq!(p.proxy.as_deref(), Some("http://127.0.0.11:7070"));
        let melbourne_buildings = &e[&("melbourne".to_owned(), "buildings".to_owned())];
        assert_eq!(p.request_types[0].url, format!("{melbourne_buildings}/buildings?district=5"));
        assert_eq!(p.request_types[1].url, format!("{melbourne_buildings}/blocks?limit=69"));
        assert_eq!(p.request_types[0].think_time, Duration::from_secs(2));
        let names: Vec<_> = s.request_mix.iter().filter(|m| m.migrates).map(|m| m.name).collect();
        assert_eq!(names, ["buildings", "blocks", "networks"]);
    }

    #[test]
    fn link_profiles_come_from_the_scenario_links() {
        let s = Scenario::one(Scale::DEFAULT);
        let p = s.link_profile("melbourne", "vienna").unwrap();
        assert_eq!(p.upstream.latency, Duration::from_millis(30));
        assert_eq!(p.downstream.bandwidth_bytes_per_second, Some(40.0 * 125_000.0 * 5.0 / 40.0));
        assert!(s.link_profile("vienna", "vienna").is_none());
    }
}
