//! Sites (the paper's Infrastructure Specification) and the links between them.

use serde_json::{Map, Value, json};

use crate::codec::{Header, number, urn_field};
use crate::name::Urn;
use crate::reader::{Errors, ObjectReader};

/// Where in the computing continuum a site sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    /// Close to sensors and users; small.
    Edge,
    /// In between: a district or city data centre.
    Fog,
    /// A large data centre.
    Cloud,
}

impl Tier {
    /// The tier's canonical text.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Edge => "edge",
            Tier::Fog => "fog",
            Tier::Cloud => "cloud",
        }
    }

    /// Parses `edge`, `fog` or `cloud` (any case).
    pub fn parse(s: &str) -> Result<Tier, String> {
        match s.to_ascii_lowercase().as_str() {
            "edge" => Ok(Tier::Edge),
            "fog" => Ok(Tier::Fog),
            "cloud" => Ok(Tier::Cloud),
            _ => Err(format!("{s:?} is not a tier: use edge, fog or cloud")),
        }
    }
}

/// A place that can hold data and run components.
#[derive(Debug, Clone, PartialEq)]
pub struct Site {
    /// Name, version and dates.
    pub header: Header,
    /// Edge, fog or cloud.
    pub tier: Tier,
    /// Region, e.g. `eu-central` or `vienna`.
    pub region: String,
    /// Legal jurisdiction whose law applies to data held here (e.g. `AT`, `EU`, `AU`).
    pub jurisdiction: Option<String>,
    /// Who runs it.
    pub provider: Option<String>,
    /// What it offers beyond plain compute (`tee`, `gpu`…), lower case, unique.
    pub capabilities: Vec<String>,
    /// How much it can hold and run.
    pub capacity: Capacity,
    /// What it costs.
    pub prices: Prices,
}

/// A site's capacity.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Capacity {
    /// CPU cores.
    pub cpu_cores: Option<f64>,
    /// Memory in bytes.
    pub memory_bytes: Option<u64>,
    /// Storage in bytes.
    pub storage_bytes: Option<u64>,
}

/// A site's prices, in `currency`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prices {
    /// ISO 4217 code, e.g. `EUR`.
    pub currency: Option<String>,
    /// Per CPU core and hour.
    pub cpu_hour: Option<f64>,
    /// Per GB of memory and hour.
    pub memory_gb_hour: Option<f64>,
    /// Per GB stored and month.
    pub storage_gb_month: Option<f64>,
    /// Per GB leaving the site (when no link price applies).
    pub egress_gb: Option<f64>,
}

impl Site {
    /// The `@type` of sites.
    pub const TYPE: &'static str = "Site";

    pub(crate) fn decode(r: &mut ObjectReader<'_>, errs: &mut Errors) -> Option<Site> {
        let header = Header::decode(r, errs);
        let tier = r.req_str("tier", errs).and_then(|t| Tier::parse(&t).map_err(|e| errs.push(&r.at("tier"), e)).ok());
        let region = r.req_str("region", errs).and_then(|s| {
            if s.is_empty() {
                errs.push(&r.at("region"), "must not be empty");
                None
            } else {
                Some(s)
            }
        });
        let jurisdiction = r.opt_str("jurisdiction", errs).filter(|s| !s.is_empty());
        let provider = r.opt_str("provider", errs).filter(|s| !s.is_empty());
        let mut capabilities: Vec<String> = Vec::new();
        for (ptr, c) in r.opt_str_array("capabilities", errs) {
            let c = c.to_ascii_lowercase();
            if c.is_empty() {
                errs.push(&ptr, "must not be empty");
            } else if capabilities.contains(&c) {
                errs.push(&ptr, format!("capability {c:?} is listed twice"));
            } else {
                capabilities.push(c);
            }
        }
        let capacity = r.raw("capacity").map(|v| Capacity::decode(v, &r.at("capacity"), errs)).unwrap_or_default();
        let prices = r.raw("prices").map(|v| Prices::decode(v, &r.at("prices"), errs)).unwrap_or_default();
        r.deny_unknown(errs);
        Some(Site {
            header: header?,
            tier: tier?,
            region: region?,
            jurisdiction,
            provider,
            capabilities,
            capacity,
            prices,
        })
    }

    pub(crate) fn encode(&self) -> Map<String, Value> {
        let mut m = self.header.encode(Self::TYPE);
        m.insert("tier".into(), json!(self.tier.as_str()));
        m.insert("region".into(), json!(self.region));
        if let Some(j) = &self.jurisdiction {
            m.insert("jurisdiction".into(), json!(j));
        }
        if let Some(p) = &self.provider {
            m.insert("provider".into(), json!(p));
        }
        if !self.capabilities.is_empty() {
            m.insert("capabilities".into(), json!(self.capabilities));
        }
        let capacity = self.capacity.encode();
        if !capacity.is_empty() {
            m.insert("capacity".into(), Value::Object(capacity));
        }
        let prices = self.prices.encode();
        if !prices.is_empty() {
            m.insert("prices".into(), Value::Object(prices));
        }
        m
    }
}

impl Capacity {
    fn decode(value: &Value, pointer: &str, errs: &mut Errors) -> Capacity {
        let Some(mut r) = ObjectReader::new(value, pointer, errs) else { return Capacity::default() };
        let c = Capacity {
            cpu_cores: r.opt_number("cpuCores", errs),
            memory_bytes: r.opt_u64("memoryBytes", errs),
            storage_bytes: r.opt_u64("storageBytes", errs),
        };
        r.deny_unknown(errs);
        c
    }

    fn encode(&self) -> Map<String, Value> {
        let mut m = Map::new();
        if let Some(c) = self.cpu_cores {
            m.insert("cpuCores".into(), number(c));
        }
        if let Some(b) = self.memory_bytes {
            m.insert("memoryBytes".into(), json!(b));
        }
        if let Some(b) = self.storage_bytes {
            m.insert("storageBytes".into(), json!(b));
        }
        m
    }
}

impl Prices {
    fn decode(value: &Value, pointer: &str, errs: &mut Errors) -> Prices {
        let Some(mut r) = ObjectReader::new(value, pointer, errs) else { return Prices::default() };
        let currency = r.opt_str("currency", errs).and_then(|c| {
            if c.len() == 3 && c.chars().all(|ch| ch.is_ascii_alphabetic()) {
                Some(c.to_ascii_uppercase())
            } else {
                errs.push(&r.at("currency"), format!("{c:?} is not an ISO 4217 code such as EUR"));
                None
            }
        });
        let p = Prices {
            currency,
            cpu_hour: r.opt_number("cpuHour", errs),
            memory_gb_hour: r.opt_number("memoryGbHour", errs),
            storage_gb_month: r.opt_number("storageGbMonth", errs),
            egress_gb: r.opt_number("egressGb", errs),
        };
        r.deny_unknown(errs);
        p
    }

    fn encode(&self) -> Map<String, Value> {
        let mut m = Map::new();
        if let Some(c) = &self.currency {
            m.insert("currency".into(), json!(c));
        }
        for (k, v) in [
            ("cpuHour", self.cpu_hour),
            ("memoryGbHour", self.memory_gb_hour),
            ("storageGbMonth", self.storage_gb_month),
            ("egressGb", self.egress_gb),
        ] {
            if let Some(v) = v {
                m.insert(k.into(), number(v));
            }
        }
        m
    }
}

/// A network path between two sites.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteLink {
    /// Name, version and dates.
    pub header: Header,
    /// One end.
    pub from: Urn,
    /// The other end.
    pub to: Urn,
    /// One-way latency in milliseconds.
    pub latency_ms: f64,
    /// Bandwidth in megabits per second.
    pub bandwidth_mbps: Option<f64>,
    /// Price per GB sent over this link.
    pub egress_price_per_gb: Option<f64>,
    /// Whether the figures hold in both directions (default true).
    pub bidirectional: bool,
}

impl SiteLink {
    /// The `@type` of site links.
    pub const TYPE: &'static str = "SiteLink";

    /// Whether this link connects `a` and `b` in that direction (or either, when bidirectional).
    pub fn connects(&self, a: &Urn, b: &Urn) -> bool {
        (&self.from == a && &self.to == b) || (self.bidirectional && &self.from == b && &self.to == a)
    }

    pub(crate) fn decode(r: &mut ObjectReader<'_>, errs: &mut Errors) -> Option<SiteLink> {
        let header = Header::decode(r, errs);
        let from = urn_field(r, "from", errs);
        let to = urn_field(r, "to", errs);
        if let (Some(f), Some(t)) = (&from, &to)
            && f == t
        {
            errs.push(&r.at("to"), "a link must join two different sites");
        }
        let latency_ms = r.opt_number("latencyMs", errs);
        if latency_ms.is_none() && r.obj.get("latencyMs").is_none_or(Value::is_null) {
            errs.push(&r.at("latencyMs"), "`latencyMs` is required");
        }
        let bandwidth_mbps = r.opt_number("bandwidthMbps", errs);
        if bandwidth_mbps == Some(0.0) {
            errs.push(&r.at("bandwidthMbps"), "must be greater than 0");
        }
        let egress_price_per_gb = r.opt_number("egressPricePerGb", errs);
        let bidirectional = r.opt_bool("bidirectional", errs).unwrap_or(true);
        r.deny_unknown(errs);
        let (from, to) = (from?, to?);
        if from == to {
            return None;
        }
        Some(SiteLink {
            header: header?,
            from,
            to,
            latency_ms: latency_ms?,
            bandwidth_mbps: bandwidth_mbps.filter(|b| *b > 0.0),
            egress_price_per_gb,
            bidirectional,
        })
    }

    pub(crate) fn encode(&self) -> Map<String, Value> {
        let mut m = self.header.encode(Self::TYPE);
        m.insert("from".into(), json!(self.from.as_str()));
        m.insert("to".into(), json!(self.to.as_str()));
        m.insert("latencyMs".into(), number(self.latency_ms));
        if let Some(b) = self.bandwidth_mbps {
            m.insert("bandwidthMbps".into(), number(b));
        }
        if let Some(p) = self.egress_price_per_gb {
            m.insert("egressPricePerGb".into(), number(p));
        }
        m.insert("bidirectional".into(), json!(self.bidirectional));
        m
    }
}
