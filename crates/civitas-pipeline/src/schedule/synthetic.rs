//! Seeded synthetic continua and pipelines, for the benchmark and the property tests:
//! the same seed always gives the same instance, on every machine.

use civitas_model::{Capacity, DataInstance, Header, InstanceRole, Prices, Site, SiteLink, Tier, Urn};

use super::Continuum;
use crate::model::*;

/// A small deterministic generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// A number in `[lo, hi)`.
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * (hi - lo)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.range(0.0, 1.0) < p
    }
}

fn urn(s: String) -> Urn {
    Urn::parse(&s).expect("synthetic names are valid URNs")
}

fn header(name: String) -> Header {
    Header { name: urn(name), version: "1".into(), creation_date: None, last_update: None }
}

/// Number of views the synthetic continuum holds instances of (`urn:synthetic:data:vK`).
pub const SYNTHETIC_VIEWS: usize = 10;

/// A continuum of `sites` sites: about 2 % clouds, 10 % fog nodes, the rest edge sites,
/// in two jurisdictions (AT, DE); edges hang off one or two fog nodes, fog nodes form a
/// ring and reach one or two clouds, clouds are fully meshed. Views `v0…v9` have
/// instances on random sites.
pub fn continuum(seed: u64, sites: usize) -> Continuum {
    let mut rng = Rng::new(seed);
    let clouds = (sites / 50).max(1).min(sites);
    let fogs = (sites / 10).max(1).min(sites - clouds);
    let mut list = Vec::with_capacity(sites);
    let mut links = Vec::new();
    let jurisdiction = |i: usize| if i.is_multiple_of(2) { "AT" } else { "DE" };
    for i in 0..sites {
        let (tier, region, caps, cpu, mem_gib, cpu_hour) = if i < clouds {
            (Tier::Cloud, format!("cloud-{i}"), vec!["docker", "tee", "gpu"], 512.0, 2048u64, rng.range(0.03, 0.045))
        } else if i < clouds + fogs {
            let mut caps = vec!["docker"];
            if rng.chance(0.5) {
                caps.push("tee");
            }
            if rng.chance(0.3) {
                caps.push("gpu");
            }
            (Tier::Fog, format!("district-{}", i % 7), caps, 32.0, 64, rng.range(0.03, 0.04))
        } else {
            let mut caps = vec!["docker"];
            if rng.chance(0.3) {
                caps.push("tee");
            }
            if rng.chance(0.2) {
                caps.push("home-gateway");
            }
            (Tier::Edge, format!("district-{}", i % 7), caps, 4.0, 8, rng.range(0.05, 0.07))
        };
        list.push(Site {
            header: header(format!("urn:site:s{i}")),
            tier,
            region,
            jurisdiction: Some(jurisdiction(i).into()),
            provider: Some(["azure", "google", "city"][i % 3].into()),
            capabilities: caps.into_iter().map(String::from).collect(),
            capacity: Capacity {
                cpu_cores: Some(cpu),
                memory_bytes: Some(mem_gib * 1024 * 1024 * 1024),
                storage_bytes: None,
            },
            prices: Prices {
                currency: Some("EUR".into()),
                cpu_hour: Some(cpu_hour),
                memory_gb_hour: Some(cpu_hour / 8.0),
                storage_gb_month: None,
                egress_gb: Some(0.02),
            },
        });
    }
    let mut link = |a: usize, b: usize, lat: f64, price: f64| {
        links.push(SiteLink {
            header: header(format!("urn:link:l{}", links.len())),
            from: list[a].header.name.clone(),
            to: list[b].header.name.clone(),
            latency_ms: lat,
            bandwidth_mbps: Some(1000.0),
            egress_price_per_gb: Some(price),
            bidirectional: true,
        });
    };
    for a in 0..clouds {
        for b in a + 1..clouds {
            link(a, b, rng.range(10.0, 40.0), 0.05);
        }
    }
    for f in clouds..clouds + fogs {
        link(f, rng.below(clouds), rng.range(8.0, 20.0), 0.02);
        if clouds > 1 && rng.chance(0.5) {
            link(f, rng.below(clouds), rng.range(8.0, 25.0), 0.02);
        }
        if fogs > 1 {
            let next = clouds + (f - clouds + 1) % fogs;
            if next != f {
                link(f, next, rng.range(3.0, 6.0), 0.01);
            }
        }
    }
    for e in clouds + fogs..sites {
        link(e, clouds + rng.below(fogs), rng.range(2.0, 8.0), 0.01);
        if rng.chance(0.3) {
            link(e, clouds + rng.below(fogs), rng.range(3.0, 10.0), 0.01);
        }
    }
    let instances: Vec<DataInstance> = (0..SYNTHETIC_VIEWS)
        .map(|k| DataInstance {
            header: header(format!("urn:instance:synthetic:v{k}")),
            data_unit: urn("urn:synthetic:data".into()),
            views: vec![urn(format!("urn:synthetic:data:v{k}"))],
            site: Some(list[rng.below(sites)].header.name.clone()),
            deployment_instance: None,
            endpoint: None,
            role: InstanceRole::Origin,
            metainformation: Default::default(),
        })
        .collect();
    Continuum::new(list, &links, &instances).expect("a synthetic continuum is consistent")
}

/// A DAG pipeline of `stages` stages: each reads one or two earlier stages (the first
/// ones read views), with random tiers, jurisdictions, capabilities, latency bounds to a
/// producer or a view, "data never leaves", preferences and resources — about what the paper's use cases write.
pub fn pipeline(seed: u64, stages: usize) -> Pipeline {
    let mut rng = Rng::new(seed.wrapping_mul(31).wrapping_add(7));
    // One jurisdiction per pipeline, as for a city's pipeline: its residency requirements
    // never contradict each other, whatever a stage inherits.
    let home = if rng.chance(0.5) { "AT" } else { "DE" };
    let mut list: Vec<Stage> = Vec::with_capacity(stages);
    for i in 0..stages {
        let mut inputs = Vec::new();
        let mut triggers = Vec::new();
        if i == 0 || rng.chance(0.1) {
            inputs.push(Input {
                from: InputSource::View { view: urn(format!("urn:synthetic:data:v{}", rng.below(SYNTHETIC_VIEWS))) },
                data_type: None,
                bytes_per_hour: Some(rng.range(1e6, 1e8)),
            });
            triggers.push(Trigger::Every { interval_ms: 60_000 });
        }
        if i > 0 {
            let a = rng.below(i);
            inputs.push(Input {
                from: InputSource::Stage { stage: format!("s{a}"), output: None },
                data_type: None,
                bytes_per_hour: None,
            });
            if i > 1 && rng.chance(0.3) {
                let b = rng.below(i);
                if b != a {
                    inputs.push(Input {
                        from: InputSource::Stage { stage: format!("s{b}"), output: None },
                        data_type: None,
                        bytes_per_hour: None,
                    });
                }
            }
        }
        let mut requirements = Vec::new();
        if rng.chance(0.4) {
            let tiers = match rng.below(4) {
                0 => vec![Tier::Edge],
                1 => vec![Tier::Edge, Tier::Fog],
                2 => vec![Tier::Fog, Tier::Cloud],
                _ => vec![Tier::Cloud],
            };
            requirements.push(Requirement::Tier { tiers });
        }
        if rng.chance(0.15) {
            requirements.push(Requirement::Within { scope: Scope::Jurisdiction, value: Value::Literal(home.into()) });
        }
        if rng.chance(0.1) {
            requirements.push(Requirement::Capabilities { names: vec!["tee".into()] });
        }
        if rng.chance(0.04) {
            requirements
                .push(Requirement::DataNeverLeaves { scope: Scope::Jurisdiction, value: Value::Literal(home.into()) });
        }
        if let Some(InputSource::View { view }) = inputs.first().map(|x| &x.from)
            && rng.chance(0.3)
        {
            requirements.push(Requirement::LatencyToView { view: view.clone(), max_ms: rng.range(10.0, 40.0).round() });
        }
        if i > 0
            && rng.chance(0.1)
            && let Some(InputSource::Stage { stage, .. }) =
                inputs.iter().map(|x| &x.from).find(|f| matches!(f, InputSource::Stage { .. }))
        {
            requirements
                .push(Requirement::LatencyToStage { stage: stage.clone(), max_ms: rng.range(15.0, 60.0).round() });
        }
        let mut preferences = Vec::new();
        if rng.chance(0.3) {
            let tier = [Tier::Edge, Tier::Fog, Tier::Cloud][rng.below(3)];
            preferences.push(Preference { prefer: Preferred::Tier { tier }, weight: rng.range(1.0, 4.0).round() });
        }
        if rng.chance(0.3) {
            preferences.push(Preference { prefer: Preferred::Cheaper, weight: 1.0 });
        }
        list.push(Stage {
            name: format!("s{i}"),
            run: Run::Builtin { name: "synthetic".into() },
            inputs,
            outputs: vec![Output {
                name: "out".into(),
                data_type: DataType { shape: "stream".into(), record: None },
                bytes_per_hour: Some(rng.range(1e6, 2e8).round()),
            }],
            triggers,
            resources: Resources {
                cpu_cores: Some([0.25, 0.5, 1.0, 2.0][rng.below(4)]),
                memory_bytes: Some([256u64, 512, 1024, 2048][rng.below(4)] * 1024 * 1024),
                gpus: 0,
            },
            requirements,
            preferences,
            slos: Vec::new(),
            policies: Vec::new(),
        });
    }
    Pipeline {
        name: urn(format!("urn:pipeline:synthetic:p{seed}")),
        version: "1".into(),
        description: None,
        params: Vec::new(),
        budget: None,
        stages: list,
    }
}
