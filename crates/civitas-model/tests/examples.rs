//! The ready-to-apply URBEM documents in `examples/urbem/` decode, are written in canonical
//! form, and every reference in them resolves to a document they define.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use civitas_model::{DataInstance, DataUnit, Document, InstanceRole, Kind, Period, Site, SiteLink, Tier, Urn};
use serde_json::Value;

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/urbem")
}

/// Every `*.json` file of the directory, in name order, with its parsed content.
fn example_files() -> Vec<(String, Value)> {
    let dir = examples_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no *.json in {}", dir.display());
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p.file_name().unwrap().to_string_lossy().into_owned(), value)
        })
        .collect()
}

/// Every document of every file.
fn example_documents() -> Vec<(String, Document)> {
    let mut out = Vec::new();
    for (file, value) in example_files() {
        let docs = Document::decode_many(&value, None).unwrap_or_else(|e| panic!("{file}: {e}"));
        out.extend(docs.into_iter().map(|d| (file.clone(), d)));
    }
    out
}

fn by_name(docs: &[(String, Document)]) -> BTreeMap<(Kind, Urn), &Document> {
    let mut map = BTreeMap::new();
    for (file, d) in docs {
        let previous = map.insert((d.kind(), d.name().clone()), d);
        assert!(previous.is_none(), "{file}: {} {} is defined twice", d.kind(), d.name());
    }
    map
}

fn urn(s: &str) -> Urn {
    Urn::parse(s).unwrap()
}

#[test]
fn every_example_decodes_and_is_written_in_canonical_form() {
    for (file, value) in example_files() {
        let docs = Document::decode_many(&value, None).unwrap_or_else(|e| panic!("{file}: {e}"));
        let canonical = match &value {
            Value::Array(_) => Value::Array(docs.iter().map(Document::encode).collect()),
            _ => docs[0].encode(),
        };
        // As text, so that key order counts too.
        assert_eq!(
            serde_json::to_string_pretty(&value).unwrap(),
            serde_json::to_string_pretty(&canonical).unwrap(),
            "{file} is not in canonical form"
        );
    }
}

#[test]
fn every_reference_points_at_a_document_defined_in_the_examples() {
    let docs = example_documents();
    let defined = by_name(&docs);
    let mut checked = 0;
    for (file, d) in &docs {
        for r in d.references() {
            assert!(
                defined.contains_key(&(r.kind, r.name.clone())),
                "{file}: {} {} refers at {} to {} {}, which the examples do not define",
                d.kind(),
                d.name(),
                r.pointer,
                r.kind,
                r.name
            );
            checked += 1;
        }
        // Informational instance lists in views must name defined instances too.
        if let Document::DataUnit(u) = d {
            for v in &u.views {
                for i in &v.data_instances {
                    assert!(defined.contains_key(&(Kind::DataInstance, i.clone())), "{file}: {} names {i}", v.name);
                }
            }
        }
    }
    // 3 instances × (unit + site) + the link's two ends.
    assert_eq!(checked, 8);
}

#[test]
fn each_instance_serves_views_of_its_own_unit() {
    let docs = example_documents();
    let defined = by_name(&docs);
    let mut instances = 0;
    for (file, d) in &docs {
        let Document::DataInstance(i) = d else { continue };
        instances += 1;
        let Some(Document::DataUnit(unit)) = defined.get(&(Kind::DataUnit, i.data_unit.clone())) else {
            panic!("{file}: {} names unit {}, which is not defined", i.header.name, i.data_unit)
        };
        assert!(!i.views.is_empty(), "{file}: {} should list the views it serves", i.header.name);
        for v in &i.views {
            assert!(v.is_child_of(&unit.header.name), "{file}: {v} is not in {}", unit.header.name);
            assert!(
                unit.views.iter().any(|uv| &uv.name == v),
                "{file}: {} serves {v}, which unit {} does not have",
                i.header.name,
                unit.header.name
            );
        }
        // Every view of every unit is served somewhere.
        for uv in &unit.views {
            assert!(docs.iter().any(|(_, d)| matches!(d, Document::DataInstance(x) if x.serves(&uv.name))));
        }
    }
    assert_eq!(instances, 3);
}

fn site(docs: &[(String, Document)], name: &str) -> Site {
    docs.iter()
        .find_map(|(_, d)| match d {
            Document::Site(s) if s.header.name == urn(name) => Some(s.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("site {name} is missing"))
}

fn unit(docs: &[(String, Document)], name: &str) -> DataUnit {
    docs.iter()
        .find_map(|(_, d)| match d {
            Document::DataUnit(u) if u.header.name == urn(name) => Some(u.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("unit {name} is missing"))
}

#[test]
fn the_sites_and_their_link_are_the_papers_two_data_centres() {
    let docs = example_documents();
    let vienna = site(&docs, "urn:site:vienna");
    assert_eq!(
        (vienna.tier, vienna.region.as_str(), vienna.jurisdiction.as_deref()),
        (Tier::Cloud, "eu-central", Some("AT"))
    );
    assert_eq!(vienna.prices.currency.as_deref(), Some("EUR"));
    let melbourne = site(&docs, "urn:site:melbourne");
    assert_eq!(
        (melbourne.tier, melbourne.region.as_str(), melbourne.jurisdiction.as_deref()),
        (Tier::Cloud, "ap-southeast", Some("AU"))
    );
    assert_eq!(melbourne.prices.currency.as_deref(), Some("AUD"));
    for s in [&vienna, &melbourne] {
        assert!(s.provider.is_some() && !s.capabilities.is_empty(), "{}", s.header.name);
        assert!(s.capacity.cpu_cores.is_some() && s.capacity.memory_bytes.is_some(), "{}", s.header.name);
        assert!(s.prices.cpu_hour.is_some() && s.prices.egress_gb.is_some(), "{}", s.header.name);
    }

    let links: Vec<&SiteLink> = docs
        .iter()
        .filter_map(|(_, d)| match d {
            Document::SiteLink(l) => Some(l),
            _ => None,
        })
        .collect();
    assert_eq!(links.len(), 1);
    let link = links[0];
    assert!(link.connects(&melbourne.header.name, &vienna.header.name));
    assert!(link.connects(&vienna.header.name, &melbourne.header.name));
    assert!((100.0..=200.0).contains(&link.latency_ms), "one-way latency {}", link.latency_ms);
    assert!(link.bandwidth_mbps.is_some() && link.egress_price_per_gb.is_some());
}

#[test]
fn the_units_match_the_papers_evaluation_setup() {
    let docs = example_documents();
    let units: BTreeSet<&str> =
        docs.iter().filter(|(_, d)| d.kind() == Kind::DataUnit).map(|(_, d)| d.name().as_str()).collect();
    assert_eq!(units, BTreeSet::from(["urn:urbem:buildings", "urn:urbem:mobility", "urn:urbem:networks"]));

    // (unit, entities, views, period)
    for (name, entities, views, period) in [
        ("urn:urbem:buildings", 158_000, &["buildings", "blocks"][..], "yearly"),
        ("urn:urbem:networks", 68_000, &["networks"][..], "quarterly"),
        ("urn:urbem:mobility", 4_000, &["mobility"][..], "PT5S"),
    ] {
        let u = unit(&docs, name);
        assert_eq!(u.metainformation.source_type, "rest", "{name}");
        assert!(u.metainformation.schema.is_some(), "{name} has a schema link");
        assert_eq!(u.metainformation.extra["entities"], entities, "{name}");
        let locals: Vec<&str> = u.views.iter().map(|v| v.name.local_name()).collect();
        assert_eq!(locals, views, "{name}");
        for v in &u.views {
            let f = v.update_frequency.as_ref().unwrap_or_else(|| panic!("{} has an update frequency", v.name));
            assert_eq!(f.period.as_str(), period, "{}", v.name);
            let size = v.size_bytes.unwrap_or_else(|| panic!("{} has a size", v.name));
            // Realistic: at most 10 kB per entity; full-detail views at least 100 bytes (an aggregated
            // view such as `blocks` holds fewer records than the unit has entities).
            let per_entity = size as f64 / entities as f64;
            let least = if v.name.local_name() == "blocks" { 1.0 } else { 100.0 };
            assert!((least..=10_000.0).contains(&per_entity), "{}: {per_entity} bytes per entity", v.name);
        }
    }
    // Buildings change once a year, mobility every few seconds.
    let per_second = |name: &str| unit(&docs, name).views[0].update_frequency.as_ref().unwrap().updates_per_second();
    assert!(per_second("urn:urbem:buildings") < per_second("urn:urbem:networks"));
    assert!(per_second("urn:urbem:mobility") >= 0.1);
    assert_eq!(Period::parse("PT5S").unwrap().seconds(), 5.0);
    // The full-detail buildings view is the biggest.
    let b = unit(&docs, "urn:urbem:buildings");
    assert!(b.view("buildings").unwrap().size_bytes > b.view("blocks").unwrap().size_bytes);
}

#[test]
fn the_instances_are_origins_in_melbourne_on_loopback_endpoints() {
    let docs = example_documents();
    let instances: Vec<&DataInstance> = docs
        .iter()
        .filter_map(|(_, d)| match d {
            Document::DataInstance(i) => Some(i),
            _ => None,
        })
        .collect();
    let mut endpoints = BTreeSet::new();
    for i in &instances {
        assert_eq!(i.site, Some(urn("urn:site:melbourne")), "{}", i.header.name);
        assert_eq!(i.role, InstanceRole::Origin, "{}", i.header.name);
        assert!(i.header.name.as_str().contains("melbourne"), "{}", i.header.name);
        let endpoint = i.endpoint.as_deref().unwrap_or_else(|| panic!("{} has an endpoint", i.header.name));
        assert!(endpoint.starts_with("http://127.0.0.1:"), "{endpoint}");
        assert!(endpoints.insert(endpoint), "one service per endpoint: {endpoint}");
    }
    assert_eq!(instances.len(), 3);
}
