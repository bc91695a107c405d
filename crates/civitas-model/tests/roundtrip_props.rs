//! Property tests: valid documents of every kind, written in any accepted input form,
//! decode and round-trip through the canonical encoding; arbitrary JSON never panics
//! the decoder.
//!
//! Strategies are boxed: unboxed, the nested strategy types of a whole document overflow
//! the test thread's stack in debug builds.

use chrono::{DateTime, FixedOffset, TimeZone};
use civitas_model::context::CONTEXT_URL;
use civitas_model::{Document, Kind, Urn};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use serde_json::{Map, Number, Value, json};

// ---------------------------------------------------------------------------------------------
// Building blocks
// ---------------------------------------------------------------------------------------------

/// One of the given strings, taken literally (a `&str` strategy would be a regex).
fn one_of(choices: &'static [&'static str]) -> BoxedStrategy<String> {
    proptest::sample::select(choices).prop_map(String::from).boxed()
}

/// Surrounds a string with spaces sometimes: the decoder trims every string it reads.
fn padded(s: String) -> BoxedStrategy<String> {
    prop_oneof![3 => Just(s.clone()), 1 => Just(format!(" {s} ")), 1 => Just(format!("{s}  "))].boxed()
}

fn nid() -> BoxedStrategy<String> {
    "[a-z][a-z0-9-]{1,10}".boxed()
}

fn segment() -> BoxedStrategy<String> {
    "[A-Za-z0-9][A-Za-z0-9._~+=@!$()*,;-]{0,10}".boxed()
}

/// A canonical URN (lower-case `urn:` prefix, no padding).
fn urn() -> BoxedStrategy<String> {
    (nid(), vec(segment(), 1..4)).prop_map(|(n, s)| format!("urn:{n}:{}", s.join(":"))).boxed()
}

/// A URN as a person might type it: `URN:` prefix in any case, stray spaces.
fn spelled(canonical: String) -> BoxedStrategy<String> {
    let rest = canonical["urn:".len()..].to_string();
    one_of(&["urn:", "URN:", "Urn:"]).prop_flat_map(move |p| padded(format!("{p}{rest}"))).boxed()
}

fn any_urn() -> BoxedStrategy<String> {
    urn().prop_flat_map(spelled).boxed()
}

/// Distinct URNs (distinct once normalised), each spelled in some accepted way.
fn urn_list(max: usize) -> BoxedStrategy<Vec<String>> {
    vec(urn(), 0..=max)
        .prop_flat_map(|mut urns| {
            urns.sort();
            urns.dedup();
            urns.into_iter().map(spelled).collect::<Vec<_>>()
        })
        .boxed()
}

fn version() -> BoxedStrategy<String> {
    "[0-9]{1,3}(\\.[0-9]{1,3}){0,2}(-[a-z0-9]{1,5})?(\\+[a-z0-9_]{1,4})?".prop_flat_map(padded).boxed()
}

/// A timestamp in RFC 3339 or the paper's `2017-01-07 13:04:03 +0100` form.
fn timestamp() -> BoxedStrategy<String> {
    (0i64..4_000_000_000, prop_oneof![3 => Just(0u32), 1 => 0u32..1_000_000_000], -48i32..=56, any::<bool>())
        .prop_map(|(secs, nanos, quarter_hours, paper_form)| {
            let offset = FixedOffset::east_opt(quarter_hours * 900).unwrap();
            let t: DateTime<FixedOffset> = offset.timestamp_opt(secs, nanos).unwrap();
            match (paper_form, nanos) {
                (true, 0) => t.format("%Y-%m-%d %H:%M:%S %z").to_string(),
                (true, _) => t.format("%Y-%m-%d %H:%M:%S%.f %z").to_string(),
                (false, _) => t.to_rfc3339(),
            }
        })
        .prop_flat_map(padded)
        .boxed()
}

/// Any `@context` the decoder accepts, or none.
fn context() -> BoxedStrategy<Option<Value>> {
    prop_oneof![
        Just(None),
        Just(Some(json!(CONTEXT_URL))),
        Just(Some(json!("http:// smartfabric.dsg.tuwien.ac.at"))),
        Just(Some(json!({"@vocab": "https://example.org/ns#"}))),
        Just(Some(json!(["http://smartfabric.dsg.tuwien.ac.at", {"x": "https://example.org/x#"}]))),
    ]
    .boxed()
}

/// A non-negative integer as a JSON number or as a (maybe padded) numeric string.
fn u64_input(range: std::ops::RangeInclusive<u64>) -> BoxedStrategy<Value> {
    (range, 0..3u8)
        .prop_map(|(n, form)| match form {
            0 => json!(n),
            1 => json!(n.to_string()),
            _ => json!(format!(" {n} ")),
        })
        .boxed()
}

/// A decimal with up to 3 fraction digits, or a whole number below 10^14: numbers whose
/// shortest text serde_json parses back exactly (see `canonical_text_keeps_every_float`).
fn text_safe_f64() -> BoxedStrategy<f64> {
    prop_oneof![
        (0u64..10_000_000, 0u32..4).prop_map(|(n, k)| n as f64 / 10f64.powi(k as i32)),
        (0u64..100_000_000_000_000).prop_map(|n| n as f64),
        Just(0.0),
    ]
    .boxed()
}

/// A finite non-negative number as a JSON number or a numeric string.
fn f64_input() -> BoxedStrategy<Value> {
    let n = text_safe_f64();
    (n, any::<bool>())
        .prop_map(
            |(n, as_string)| {
                if as_string { json!(n.to_string()) } else { Value::Number(Number::from_f64(n).unwrap()) }
            },
        )
        .boxed()
}

/// JSON without structure constraints, for open key/value blocks.
fn leaf_json() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (text_safe_f64(), any::<bool>()).prop_map(|(f, neg)| json!(if neg { -f } else { f })),
        ".{0,12}".prop_map(Value::from),
    ]
    .boxed()
}

fn free_json() -> BoxedStrategy<Value> {
    leaf_json()
        .prop_recursive(2, 12, 4, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..4).prop_map(Value::Array),
                vec(("[a-zA-Z@]{1,6}", inner), 0..4).prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
        .boxed()
}

/// An open key/value block whose keys never collide with the block's known fields.
fn extras() -> BoxedStrategy<Map<String, Value>> {
    vec(("x-[a-zA-Z0-9]{1,6}", free_json()), 0..4).prop_map(|kv| kv.into_iter().collect()).boxed()
}

fn security_constraint() -> BoxedStrategy<Value> {
    (one_of(&["ldap", "LDAP", "oauth", "rbac", "public", "Jwt"]), extras(), "[a-z0-9.]{1,12}", "CN=[a-z -]{1,12}")
        .prop_map(|(kind, params, host, dn)| {
            let mut m = Map::new();
            m.insert("type".into(), json!(kind));
            if kind.eq_ignore_ascii_case("ldap") {
                m.insert("url".into(), json!(format!("ldap://{host}")));
                m.insert("dn".into(), json!(dn));
            }
            m.extend(params);
            Value::Object(m)
        })
        .boxed()
}

fn period() -> BoxedStrategy<String> {
    let named = one_of(&["secondly", "minutely", "hourly", "daily", "weekly", "monthly", "quarterly", "yearly"])
        .prop_flat_map(|p: String| prop_oneof![Just(p.clone()), Just(p.to_uppercase()), Just(format!(" {p} "))]);
    let parts = (
        vec(option::of(1u32..100), 4),
        vec(option::of(1u32..100), 2),
        option::of(prop_oneof![(1u32..100).prop_map(|s| s.to_string()), Just("0.5".to_string())]),
    );
    let duration = parts
        .prop_filter("a duration has at least one part", |(d, t, s)| {
            d.iter().any(Option::is_some) || t.iter().any(Option::is_some) || s.is_some()
        })
        .prop_map(|(d, t, s)| {
            let mut out = "P".to_string();
            for (n, unit) in d.iter().zip(["Y", "M", "W", "D"]) {
                if let Some(n) = n {
                    out.push_str(&format!("{n}{unit}"));
                }
            }
            if t.iter().any(Option::is_some) || s.is_some() {
                out.push('T');
                for (n, unit) in t.iter().zip(["H", "M"]) {
                    if let Some(n) = n {
                        out.push_str(&format!("{n}{unit}"));
                    }
                }
                if let Some(s) = s {
                    out.push_str(&format!("{s}S"));
                }
            }
            out
        })
        .prop_flat_map(|p| prop_oneof![Just(p.clone()), Just(p.to_lowercase())]);
    prop_oneof![named, duration].boxed()
}

fn update_frequency() -> BoxedStrategy<Value> {
    (
        period(),
        option::of(prop_oneof![u64_input(1..=1000), Just(json!(u32::MAX))]),
        option::of(
            (0u32..=1000, any::<bool>())
                .prop_map(|(n, s)| if s { json!((n as f64 / 10.0).to_string()) } else { json!(n as f64 / 10.0) }),
        ),
        option::of(f64_input()),
    )
        .prop_map(|(period, times, fraction, update_time)| {
            let mut m = Map::new();
            m.insert("period".into(), json!(period));
            for (k, v) in [("times", times), ("fraction", fraction), ("updateTime", update_time)] {
                if let Some(v) = v {
                    m.insert(k.into(), v);
                }
            }
            Value::Object(m)
        })
        .boxed()
}

fn http_endpoint() -> BoxedStrategy<String> {
    (
        one_of(&["http", "https"]),
        one_of(&["127.0.0.1", "localhost", "[::1]", "data.city.example"]),
        option::of(1u16..=65535),
        vec("[a-z0-9]{1,6}", 0..3),
        any::<bool>(),
    )
        .prop_map(|(scheme, host, port, path, slash)| {
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            let path: String = path.iter().map(|p| format!("/{p}")).collect();
            format!("{scheme}://{host}{port}{path}{}", if slash { "/" } else { "" })
        })
        .boxed()
}

fn put(m: &mut Map<String, Value>, key: &str, v: Option<Value>) {
    if let Some(v) = v {
        m.insert(key.into(), v);
    }
}

/// `@context`, `@type` and the header fields of a document named `name`.
fn header(type_name: &'static str, name: String) -> BoxedStrategy<Map<String, Value>> {
    (context(), spelled(name), version(), option::of(timestamp()), option::of(timestamp()), any::<bool>())
        .prop_map(move |(ctx, name, version, created, updated, paper_update_date)| {
            let mut m = Map::new();
            put(&mut m, "@context", ctx);
            m.insert("@type".into(), json!(type_name));
            m.insert("name".into(), json!(name));
            m.insert("version".into(), json!(version));
            put(&mut m, "creationDate", created.map(Value::from));
            let key = if paper_update_date { "updateDate" } else { "lastUpdate" };
            put(&mut m, key, updated.map(Value::from));
            m
        })
        .boxed()
}

// ---------------------------------------------------------------------------------------------
// Documents of every kind
// ---------------------------------------------------------------------------------------------

fn view(unit: String, local: String) -> BoxedStrategy<Value> {
    (
        any::<bool>(),
        "[a-z]{1,8}",
        0..3u8,
        option::of(update_frequency()),
        option::of(u64_input(0..=u64::MAX)),
        vec(security_constraint(), 0..3),
        urn_list(3),
    )
        .prop_map(move |(full, link, link_form, freq, size, constraints, instances)| {
            let mut m = Map::new();
            let name = if full { format!("{unit}:{local}") } else { local.clone() };
            m.insert("name".into(), json!(name));
            let link = match link_form {
                0 => format!("/{link}"),
                1 => format!("/{link}/"),
                _ => format!("/ {link} /"),
            };
            m.insert("link".into(), json!(link));
            put(&mut m, "updateFrequency", freq);
            put(&mut m, "size", size);
            if !constraints.is_empty() {
                m.insert("securityConstraints".into(), Value::Array(constraints));
            }
            if !instances.is_empty() {
                m.insert("dataInstances".into(), json!(instances));
            }
            Value::Object(m)
        })
        .boxed()
}

fn data_unit() -> BoxedStrategy<Value> {
    (urn(), vec(segment(), 0..5))
        .prop_flat_map(|(name, mut locals)| {
            locals.sort();
            locals.dedup();
            let views: Vec<_> = locals.into_iter().map(|l| view(name.clone(), l)).collect();
            let meta = (
                one_of(&["rest", "REST", "soap", "nosql:mongodb", "sql:postgresql", "file", "stream:mqtt"]),
                option::of("https?://[a-z]{1,8}\\.example/[a-z]{1,8}"),
                vec(security_constraint(), 0..3),
                urn_list(3),
                extras(),
            )
                .prop_map(|(ty, schema, constraints, units, extras)| {
                    let mut m = Map::new();
                    m.insert("type".into(), json!(ty));
                    put(&mut m, "schema", schema.map(Value::from));
                    if !constraints.is_empty() {
                        m.insert("securityConstraints".into(), Value::Array(constraints));
                    }
                    if !units.is_empty() {
                        m.insert("dataUnits".into(), json!(units));
                    }
                    m.extend(extras);
                    Value::Object(m)
                });
            (header("DataUnit", name), meta, views, any::<bool>()).prop_map(|(mut m, meta, views, omit_empty)| {
                m.insert("metainformation".into(), meta);
                if !(views.is_empty() && omit_empty) {
                    m.insert("views".into(), Value::Array(views));
                }
                Value::Object(m)
            })
        })
        .boxed()
}

fn data_instance() -> BoxedStrategy<Value> {
    (urn(), urn(), vec(segment(), 0..4))
        .prop_flat_map(|(name, unit, mut locals)| {
            locals.sort();
            locals.dedup();
            let views: Vec<_> = locals
                .into_iter()
                .map(|l| {
                    let full = format!("{unit}:{l}");
                    prop_oneof![Just(l), spelled(full)]
                })
                .collect();
            (
                header("DataInstance", name),
                spelled(unit),
                views,
                option::of(any_urn()),
                option::of(prop_oneof![any_urn(), "[A-Za-z]{1,12}/[A-Za-z]{1,12}".prop_map(String::from)]),
                option::of(http_endpoint()),
                option::of(one_of(&["origin", "replica"])),
                option::of(extras()),
            )
                .prop_map(|(mut m, unit, views, site, di, endpoint, role, meta)| {
                    m.insert("dataUnit".into(), json!(unit));
                    if !views.is_empty() {
                        m.insert("views".into(), json!(views));
                    }
                    put(&mut m, "site", site.map(Value::from));
                    put(&mut m, "deploymentInstance", di.map(Value::from));
                    put(&mut m, "endpoint", endpoint.map(Value::from));
                    put(&mut m, "role", role.map(Value::from));
                    put(&mut m, "metainformation", meta.map(Value::Object));
                    Value::Object(m)
                })
        })
        .boxed()
}

fn capacity() -> BoxedStrategy<Value> {
    (option::of(f64_input()), option::of(u64_input(0..=u64::MAX)), option::of(u64_input(0..=u64::MAX)))
        .prop_map(|(cpu, mem, storage)| {
            let mut m = Map::new();
            put(&mut m, "cpuCores", cpu);
            put(&mut m, "memoryBytes", mem);
            put(&mut m, "storageBytes", storage);
            Value::Object(m)
        })
        .boxed()
}

fn prices() -> BoxedStrategy<Value> {
    (
        option::of("[A-Za-z]{3}"),
        option::of(f64_input()),
        option::of(f64_input()),
        option::of(f64_input()),
        option::of(f64_input()),
    )
        .prop_map(|(currency, cpu, mem, storage, egress)| {
            let mut m = Map::new();
            put(&mut m, "currency", currency.map(Value::from));
            put(&mut m, "cpuHour", cpu);
            put(&mut m, "memoryGbHour", mem);
            put(&mut m, "storageGbMonth", storage);
            put(&mut m, "egressGb", egress);
            Value::Object(m)
        })
        .boxed()
}

fn capabilities() -> BoxedStrategy<Vec<String>> {
    vec("[a-z][a-z0-9-]{0,6}", 0..4)
        .prop_flat_map(|mut caps| {
            caps.sort();
            caps.dedup();
            caps.into_iter().map(|c| prop_oneof![Just(c.clone()), Just(c.to_uppercase())]).collect::<Vec<_>>()
        })
        .boxed()
}

fn site() -> BoxedStrategy<Value> {
    urn()
        .prop_flat_map(|name| {
            (
                header("Site", name),
                one_of(&["edge", "fog", "cloud", "Cloud", "EDGE"]),
                "[a-z]{2,8}(-[a-z]{2,8})?",
                option::of("[A-Z]{2}"),
                option::of("[A-Za-z ]{1,12}"),
                capabilities(),
                option::of(capacity()),
                option::of(prices()),
            )
                .prop_map(|(mut m, tier, region, jurisdiction, provider, caps, capacity, prices)| {
                    m.insert("tier".into(), json!(tier));
                    m.insert("region".into(), json!(region));
                    put(&mut m, "jurisdiction", jurisdiction.map(Value::from));
                    put(&mut m, "provider", provider.map(Value::from));
                    if !caps.is_empty() {
                        m.insert("capabilities".into(), json!(caps));
                    }
                    put(&mut m, "capacity", capacity);
                    put(&mut m, "prices", prices);
                    Value::Object(m)
                })
        })
        .boxed()
}

fn site_link() -> BoxedStrategy<Value> {
    (urn(), (urn(), urn()).prop_filter("a link joins two different sites", |(a, b)| a != b))
        .prop_flat_map(|(name, (from, to))| {
            (
                header("SiteLink", name),
                spelled(from),
                spelled(to),
                f64_input(),
                option::of(
                    f64_input()
                        .prop_filter("bandwidth > 0", |v| v.as_f64().or_else(|| v.as_str()?.parse().ok()) != Some(0.0)),
                ),
                option::of(f64_input()),
                option::of(any::<bool>()),
            )
                .prop_map(|(mut m, from, to, latency, bandwidth, egress, bidirectional)| {
                    m.insert("from".into(), json!(from));
                    m.insert("to".into(), json!(to));
                    m.insert("latencyMs".into(), latency);
                    put(&mut m, "bandwidthMbps", bandwidth);
                    put(&mut m, "egressPricePerGb", egress);
                    put(&mut m, "bidirectional", bidirectional.map(Value::from));
                    Value::Object(m)
                })
        })
        .boxed()
}

fn technical_unit() -> BoxedStrategy<Value> {
    urn()
        .prop_flat_map(|name| {
            (header("TechnicalUnit", name), option::of(".{0,20}"), urn_list(3), option::of(extras())).prop_map(
                |(mut m, description, units, meta)| {
                    put(&mut m, "description", description.map(Value::from));
                    if !units.is_empty() {
                        m.insert("dataUnits".into(), json!(units));
                    }
                    put(&mut m, "metainformation", meta.map(Value::Object));
                    Value::Object(m)
                },
            )
        })
        .boxed()
}

fn deployment_unit() -> BoxedStrategy<Value> {
    (urn(), urn(), vec(urn(), 1..4))
        .prop_flat_map(|(name, tu, mut sites)| {
            sites.sort();
            sites.dedup();
            let sites: Vec<_> = sites.into_iter().map(spelled).collect();
            (header("DeploymentUnit", name), spelled(tu), sites, option::of(extras())).prop_map(
                |(mut m, tu, sites, deployment)| {
                    m.insert("technicalUnit".into(), json!(tu));
                    m.insert("sites".into(), json!(sites));
                    put(&mut m, "deployment", deployment.map(Value::Object));
                    Value::Object(m)
                },
            )
        })
        .boxed()
}

fn deployment_instance() -> BoxedStrategy<Value> {
    urn()
        .prop_flat_map(|name| {
            (
                header("DeploymentInstance", name),
                any_urn(),
                any_urn(),
                option::of(http_endpoint()),
                option::of(extras()),
            )
                .prop_map(|(mut m, du, site, endpoint, meta)| {
                    m.insert("deploymentUnit".into(), json!(du));
                    m.insert("site".into(), json!(site));
                    put(&mut m, "endpoint", endpoint.map(Value::from));
                    put(&mut m, "metainformation", meta.map(Value::Object));
                    Value::Object(m)
                })
        })
        .boxed()
}

fn any_document() -> BoxedStrategy<Value> {
    prop_oneof![
        3 => data_unit(),
        2 => data_instance(),
        2 => site(),
        1 => site_link(),
        1 => technical_unit(),
        1 => deployment_unit(),
        1 => deployment_instance(),
    ]
    .boxed()
}

// ---------------------------------------------------------------------------------------------
// Arbitrary JSON, biased towards the model's vocabulary so that it reaches deep into the decoder
// ---------------------------------------------------------------------------------------------

const VOCABULARY: &[&str] = &[
    "@type",
    "@context",
    "@id",
    "name",
    "version",
    "creationDate",
    "lastUpdate",
    "updateDate",
    "metainformation",
    "type",
    "schema",
    "securityConstraints",
    "dataUnits",
    "views",
    "link",
    "updateFrequency",
    "period",
    "times",
    "fraction",
    "updateTime",
    "size",
    "dataInstances",
    "dataUnit",
    "site",
    "deploymentInstance",
    "endpoint",
    "role",
    "tier",
    "region",
    "jurisdiction",
    "provider",
    "capabilities",
    "capacity",
    "cpuCores",
    "memoryBytes",
    "storageBytes",
    "prices",
    "currency",
    "cpuHour",
    "memoryGbHour",
    "storageGbMonth",
    "egressGb",
    "from",
    "to",
    "latencyMs",
    "bandwidthMbps",
    "egressPricePerGb",
    "bidirectional",
    "description",
    "technicalUnit",
    "sites",
    "deployment",
    "deploymentUnit",
    "url",
    "dn",
];

const STRINGS: &[&str] = &[
    "DataUnit",
    "DataInstance",
    "Site",
    "SiteLink",
    "TechnicalUnit",
    "DeploymentUnit",
    "DeploymentInstance",
    "urn:buildings:vienna",
    "urn:buildings:vienna:blocks",
    "blocks",
    "urn:x:../etc",
    "a/b",
    "%2f",
    "",
    " ",
    "..",
    "yearly",
    "PT5S",
    "P1Y2M3W4DT5H6M7.5S",
    "P",
    "PT",
    "ldap",
    "cloud",
    "EUR",
    "origin",
    "replica",
    "http://127.0.0.1:8091/",
    "ftp://x",
    "2017-01-07 13:04:03 +0100",
    "2017-01-07T13:04:03Z",
    "10",
    "-1",
    "1e400",
    "NaN",
    "18446744073709551616",
    "\u{0}",
    "é",
    "urn:",
    "URN:AB:c",
];

fn arbitrary_json() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", Number::from_f64).prop_map(Value::Number),
        ".{0,16}".prop_map(Value::from),
        proptest::sample::select(STRINGS).prop_map(Value::from),
    ];
    let key = prop_oneof![3 => proptest::sample::select(VOCABULARY).prop_map(String::from), 1 => ".{0,8}"];
    leaf.prop_recursive(5, 96, 10, move |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            vec((key.clone(), inner), 0..10).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
    .boxed()
}

/// Every JSON pointer inside a value (the value itself is `""`).
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                pointers(v, format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")), out);
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                pointers(v, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

/// Everything that must hold of a document that decoded. `exact_text`: the document's
/// numbers are all text-safe, so the canonical text must decode to the same document.
fn check_round_trip(d: &Document, exact_text: bool) -> Result<(), TestCaseError> {
    let encoded = d.encode();
    prop_assert_eq!(&encoded["@context"], &json!(CONTEXT_URL));
    prop_assert_eq!(&encoded["@type"], &json!(d.kind().type_name()));
    prop_assert_eq!(Kind::from_type_name(d.kind().type_name()), Some(d.kind()));
    prop_assert_eq!(&encoded["name"], &json!(d.name().as_str()));

    let again = Document::decode(&encoded);
    prop_assert!(again.is_ok(), "the canonical form must decode: {:?}\n{:#}", again.err(), encoded);
    let again = again.unwrap();
    prop_assert_eq!(&again, d, "decode(encode(d)) == d");
    // Compared as bytes: serde_json's Value equality ignores key order.
    let bytes = d.to_canonical_bytes();
    prop_assert_eq!(serde_json::to_vec(&again.encode()).unwrap(), serde_json::to_vec(&encoded).unwrap());
    prop_assert_eq!(&again.to_canonical_bytes(), &bytes, "canonical bytes are stable");
    prop_assert_eq!(&d.to_canonical_bytes(), &bytes, "canonical bytes are deterministic");

    let as_kind = Document::decode_as(&encoded, d.kind()).ok();
    prop_assert_eq!(as_kind.as_ref(), Some(d));

    // Every reference points at its name inside the canonical encoding (`deploymentInstance`
    // is free text kept as written, so compare as URNs).
    for r in d.references() {
        let at = encoded.pointer(&r.pointer).and_then(Value::as_str).map(Urn::parse);
        prop_assert_eq!(at, Some(Ok(r.name.clone())), "reference at {}", r.pointer);
    }
    prop_assert!(d.search_text().contains(&d.name().as_str().to_ascii_lowercase()));

    // Through text, the way the catalog stores documents. Without serde_json's
    // `float_roundtrip` feature some floats come back one ULP off, so documents with
    // arbitrary floats are only checked when their text parsed back exactly.
    let reparsed: Value = serde_json::from_slice(&bytes).unwrap();
    if !exact_text && reparsed != encoded {
        return Ok(());
    }
    prop_assert_eq!(&reparsed, &encoded, "the canonical text parses back to the canonical value");
    let from_text = Document::decode(&reparsed);
    prop_assert!(from_text.is_ok(), "canonical text must decode: {:?}", from_text.err());
    let from_text = from_text.unwrap();
    prop_assert_eq!(&from_text, d);
    prop_assert_eq!(from_text.to_canonical_bytes(), bytes);

    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn valid_documents_decode_and_round_trip(input in any_document()) {
        let decoded = Document::decode(&input);
        prop_assert!(decoded.is_ok(), "a valid document was rejected: {}\n{:#}", decoded.unwrap_err(), input);
        let d = decoded.unwrap();
        prop_assert_eq!(&json!(d.kind().type_name()), &input["@type"]);
        check_round_trip(&d, true)?;
        // The kind can also come from the caller instead of `@type`.
        let mut untyped = input.clone();
        untyped.as_object_mut().unwrap().remove("@type");
        prop_assert_eq!(Document::decode_as(&untyped, d.kind()).ok(), Some(d));
    }

    #[test]
    fn batches_decode_in_order_and_round_trip(inputs in vec(any_document(), 1..5)) {
        let docs = Document::decode_many(&Value::Array(inputs.clone()), None);
        prop_assert!(docs.is_ok(), "{}", docs.unwrap_err());
        let docs = docs.unwrap();
        let singles: Vec<Document> = inputs.iter().map(|v| Document::decode(v).unwrap()).collect();
        prop_assert_eq!(&docs, &singles);
        for d in &docs {
            check_round_trip(d, true)?;
        }
        let encoded = Value::Array(docs.iter().map(Document::encode).collect());
        prop_assert_eq!(Document::decode_many(&encoded, None).unwrap(), docs);
    }

    #[test]
    fn arbitrary_json_never_panics_the_decoder(input in arbitrary_json()) {
        check_arbitrary(&input)?;
    }

    #[test]
    fn arbitrary_typed_objects_never_panic_the_decoder(
        kind in proptest::sample::select(Kind::ALL.to_vec()),
        input in arbitrary_json(),
    ) {
        // Give arbitrary objects a real @type so that they reach the kinds' decoders.
        let mut input = input;
        if let Value::Object(m) = &mut input {
            m.insert("@type".into(), json!(kind.type_name()));
        }
        check_arbitrary(&input)?;
    }

    #[test]
    fn mutated_valid_documents_never_panic_the_decoder(
        input in any_document(),
        pick in any::<proptest::sample::Index>(),
        replacement in prop_oneof![3 => arbitrary_json(), 1 => Just(Value::Null)],
        delete in any::<bool>(),
    ) {
        let mut all = Vec::new();
        pointers(&input, String::new(), &mut all);
        let at = pick.get(&all).clone();
        let mut mutated = input.clone();
        if at.is_empty() {
            mutated = replacement;
        } else {
            let (parent, key) = at.rsplit_once('/').unwrap();
            let key = key.replace("~1", "/").replace("~0", "~");
            match mutated.pointer_mut(parent).unwrap() {
                Value::Object(m) if delete => { m.shift_remove(&key); }
                Value::Object(m) => { m.insert(key, replacement); }
                Value::Array(a) if delete => { a.remove(key.parse().unwrap()); }
                Value::Array(a) => { a[key.parse::<usize>().unwrap()] = replacement; }
                _ => unreachable!("a parent is a container"),
            }
        }
        check_arbitrary(&mutated)?;
    }
}

/// Decoding any value must return (never panic); success must round-trip, failure must say why.
fn check_arbitrary(input: &Value) -> Result<(), TestCaseError> {
    let mut results = vec![Document::decode(input)];
    results.extend(Kind::ALL.iter().map(|k| Document::decode_as(input, *k)));
    for r in results {
        match r {
            Ok(d) => check_round_trip(&d, false)?,
            Err(e) => check_errors(&e)?,
        }
    }
    match Document::decode_many(input, None) {
        Ok(docs) => {
            prop_assert!(!docs.is_empty());
            for d in &docs {
                check_round_trip(d, false)?;
            }
        }
        Err(e) => check_errors(&e)?,
    }
    Ok(())
}

fn check_errors(e: &civitas_model::ValidationErrors) -> Result<(), TestCaseError> {
    prop_assert!(!e.0.is_empty(), "an error list is never empty");
    for fe in &e.0 {
        prop_assert!(fe.pointer.is_empty() || fe.pointer.starts_with('/'), "not a JSON pointer: {:?}", fe.pointer);
        prop_assert!(!fe.detail.is_empty());
    }
    prop_assert!(!e.to_string().is_empty());
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Known model bugs: `to_canonical_bytes` promises "equal documents give equal bytes".
// ---------------------------------------------------------------------------------------------

/// `Timestamp` equality compares instants, but the encoding keeps the offset.
#[test]
fn equal_documents_give_equal_bytes_whatever_the_timestamp_offset() {
    let doc = |t: &str| {
        Document::decode(&json!({
            "@type": "Site", "name": "urn:site:vienna", "version": "1", "tier": "cloud", "region": "eu-central",
            "creationDate": t
        }))
        .unwrap()
    };
    let a = doc("2017-01-07T13:04:03+01:00");
    let b = doc("2017-01-07T12:04:03Z");
    assert_eq!(a, b);
    assert_eq!(String::from_utf8(a.to_canonical_bytes()).unwrap(), String::from_utf8(b.to_canonical_bytes()).unwrap());
}

/// Open maps (metainformation, constraint parameters, deployment) compare without order
/// but are written in input order.
#[test]
fn equal_documents_give_equal_bytes_whatever_the_key_order_of_open_maps() {
    let doc = |meta: Value| {
        Document::decode(&json!({
            "@type": "DataUnit", "name": "urn:buildings:vienna", "version": "1", "metainformation": meta
        }))
        .unwrap()
    };
    let a = doc(json!({"type": "rest", "entities": 158000, "owner": "city"}));
    let b = doc(json!({"type": "rest", "owner": "city", "entities": 158000}));
    assert_eq!(a, b);
    assert_eq!(String::from_utf8(a.to_canonical_bytes()).unwrap(), String::from_utf8(b.to_canonical_bytes()).unwrap());
}

/// serde_json is built without `float_roundtrip`, so its text parser can be one ULP off:
/// a document stored as canonical bytes and read back is then a different document.
#[test]
fn canonical_text_keeps_every_float() {
    let d = Document::decode(&json!({
        "@type": "Site", "name": "urn:site:vienna", "version": "1", "tier": "cloud", "region": "eu-central",
        "prices": {"currency": "EUR", "cpuHour": 1.7500242745866463e-99}
    }))
    .unwrap();
    let reparsed: Value = serde_json::from_slice(&d.to_canonical_bytes()).unwrap();
    assert_eq!(Document::decode(&reparsed).unwrap(), d);
    // Whole numbers written as floats in open blocks too: 7376464584510372.0 reads back as …371.0.
    let u = Document::decode(&json!({
        "@type": "DataUnit", "name": "urn:buildings:vienna", "version": "1",
        "metainformation": {"type": "rest", "checksum": 7376464584510372.0}
    }))
    .unwrap();
    let reparsed: Value = serde_json::from_slice(&u.to_canonical_bytes()).unwrap();
    assert_eq!(Document::decode(&reparsed).unwrap(), u);
}
