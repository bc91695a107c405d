//! The paper's Listing 1 (Data Unit) and Listing 2 (Data Instance), as written there
//! (string-typed numbers, timestamps and links with stray spaces, the paper's own
//! `@context`), decode, and encode to canonical JSON-LD.

use chrono::{DateTime, Utc};
use civitas_model::context::CONTEXT_URL;
use civitas_model::{DataInstance, DataUnit, Document, InstanceRole, Kind, Period, Urn};
use serde_json::{Value, json};

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn decode_fixture(name: &str) -> Document {
    Document::decode(&fixture(name)).unwrap_or_else(|e| panic!("{name} must decode: {e}"))
}

fn listing1() -> DataUnit {
    match decode_fixture("listing1.json") {
        Document::DataUnit(u) => u,
        other => panic!("listing 1 is a DataUnit, decoded a {}", other.kind()),
    }
}

fn listing2() -> DataInstance {
    match decode_fixture("listing2.json") {
        Document::DataInstance(i) => i,
        other => panic!("listing 2 is a DataInstance, decoded a {}", other.kind()),
    }
}

fn urn(s: &str) -> Urn {
    Urn::parse(s).unwrap()
}

fn paper_instant() -> DateTime<Utc> {
    "2017-01-07T12:04:03Z".parse().unwrap()
}

/// Compares as text so that key order counts (serde_json's `Value` equality ignores it).
fn assert_same_json(actual: &Value, expected: &Value) {
    let a = serde_json::to_string_pretty(actual).unwrap();
    let e = serde_json::to_string_pretty(expected).unwrap();
    assert_eq!(a, e, "\n--- actual ---\n{a}\n--- expected ---\n{e}");
}

/// The fixtures keep the paper's quirks: this guards against someone "tidying" them.
#[test]
fn fixtures_keep_the_papers_quirks() {
    let l1 = fixture("listing1.json");
    assert_eq!(l1["@context"], "http:// smartfabric.dsg.tuwien.ac.at");
    assert_eq!(l1["creationDate"], " 2017-01-07 13:04:03 +0100 ");
    assert_eq!(l1["views"][0]["link"], "/ buildingblocks /");
    assert_eq!(l1["views"][0]["updateFrequency"]["times"], "1");
    assert_eq!(l1["views"][0]["size"], "10000303");
    let l2 = fixture("listing2.json");
    assert_eq!(l2["@context"], "http:// smartfabric.dsg.tuwien.ac.at");
    assert_eq!(l2["creationDate"], "2017-01-07 13:04:03 +0100");
}

#[test]
fn listing1_decodes_to_what_the_paper_says() {
    let u = listing1();
    assert_eq!(u.header.name, urn("urn:buildings:vienna"));
    assert_eq!(u.header.version, "1.0");
    assert_eq!(u.header.creation_date.unwrap(), paper_instant());
    assert_eq!(u.header.last_update.unwrap(), paper_instant());

    let m = &u.metainformation;
    assert_eq!(m.source_type, "nosql:mongodb");
    assert_eq!(m.schema.as_deref(), Some("http://sdd.dsg.tuwien.ac.at/urbem/vienna/buildings"));
    assert_eq!(m.security_constraints.len(), 1);
    let ldap = &m.security_constraints[0];
    assert_eq!(ldap.kind, "ldap");
    assert_eq!(ldap.parameters["url"], "10.2.0.112");
    assert_eq!(ldap.parameters["dn"], "CN=buildings -vienna");
    assert_eq!(ldap.parameters["scope"], "subtree");
    assert!(!ldap.parameters.contains_key("type"), "`type` is the kind, not a parameter");
    assert_eq!(m.data_units, vec![urn("urn:networks:vienna")]);
    assert!(m.extra.is_empty(), "no unknown metainformation: {:?}", m.extra);

    let names: Vec<&str> = u.views.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["urn:buildings:vienna:buildingblocks", "urn:buildings:vienna:buildings"]);

    let blocks = &u.views[0];
    assert_eq!(blocks.link, "/buildingblocks/", "the paper's stray spaces are dropped");
    let f = blocks.update_frequency.as_ref().expect("updateFrequency");
    assert_eq!(f.period, Period::Named("yearly"));
    assert_eq!(f.period.as_str(), "yearly");
    assert_eq!(f.times, 1);
    assert_eq!(f.fraction_percent, Some(10.0));
    assert_eq!(f.update_time_seconds, Some(2300.0));
    assert_eq!(blocks.size_bytes, Some(10_000_303));
    assert_eq!(blocks.security_constraints.len(), 1);
    assert_eq!(blocks.security_constraints[0].parameters["dn"], "CN=buildingblocks -vienna");
    assert_eq!(blocks.data_instances, vec![urn("urn:buildings:vienna:buildingblocks")]);

    let buildings = &u.views[1];
    assert_eq!(buildings.link, "/buildings/");
    assert_eq!(buildings.size_bytes, Some(189_600_000));
    assert_eq!(buildings.security_constraints[0].kind, "oauth");
    assert_eq!(buildings.update_frequency.as_ref().unwrap().update_time_seconds, Some(7200.0));

    // Views are found by full name or by local name.
    assert_eq!(u.view("buildingblocks").map(|v| v.name.as_str()), Some("urn:buildings:vienna:buildingblocks"));
    assert_eq!(u.view("urn:buildings:vienna:buildings").map(|v| v.link.as_str()), Some("/buildings/"));
    assert!(u.view("blocks").is_none());
}

#[test]
fn listing2_decodes_to_what_the_paper_says() {
    let i = listing2();
    assert_eq!(i.header.name, urn("urn:buildings:vienna:buildingblocks"));
    assert_eq!(i.header.version, "1.0");
    assert_eq!(i.header.creation_date.unwrap(), paper_instant());
    assert_eq!(i.header.last_update.unwrap(), paper_instant());
    assert_eq!(i.data_unit, urn("urn:buildings:vienna"));
    assert_eq!(i.deployment_instance.as_deref(), Some("CitizenInformationSystem/DedicatedServer"));
    assert!(i.views.is_empty(), "no views listed: the instance serves them all");
    assert!(i.serves(&urn("urn:buildings:vienna:buildings")));
    assert_eq!(i.site, None);
    assert_eq!(i.endpoint, None);
    assert_eq!(i.role, InstanceRole::Origin);
    assert_eq!(i.metainformation["accessFrequency"], "120");
    assert_eq!(i.metainformation["averageResponseTime"], "3.833");
}

#[test]
fn listing2_references_its_unit_but_not_its_non_urn_deployment_instance() {
    let d = decode_fixture("listing2.json");
    let refs: Vec<(Kind, String, String)> =
        d.references().into_iter().map(|r| (r.kind, r.name.to_string(), r.pointer)).collect();
    assert_eq!(refs, [(Kind::DataUnit, "urn:buildings:vienna".to_string(), "/dataUnit".to_string())]);
    let d1 = decode_fixture("listing1.json");
    let refs1: Vec<(Kind, String)> = d1.references().into_iter().map(|r| (r.kind, r.pointer)).collect();
    assert_eq!(refs1, [(Kind::DataUnit, "/metainformation/dataUnits/0".to_string())]);
}

#[test]
fn listing1_encodes_to_canonical_json_ld() {
    let expected = json!({
        "@context": CONTEXT_URL,
        "@type": "DataUnit",
        "name": "urn:buildings:vienna",
        "version": "1.0",
        "creationDate": "2017-01-07T12:04:03Z",
        "lastUpdate": "2017-01-07T12:04:03Z",
        "metainformation": {
            "type": "nosql:mongodb",
            "schema": "http://sdd.dsg.tuwien.ac.at/urbem/vienna/buildings",
            "securityConstraints": [
                {"type": "ldap", "dn": "CN=buildings -vienna", "scope": "subtree", "url": "10.2.0.112"}
            ],
            "dataUnits": ["urn:networks:vienna"]
        },
        "views": [
            {
                "name": "urn:buildings:vienna:buildingblocks",
                "link": "/buildingblocks/",
                "updateFrequency": {"period": "yearly", "times": 1, "fraction": 10, "updateTime": 2300},
                "size": 10000303,
                "securityConstraints": [{"type": "ldap", "dn": "CN=buildingblocks -vienna", "url": "10.2.0.112"}],
                "dataInstances": ["urn:buildings:vienna:buildingblocks"]
            },
            {
                "name": "urn:buildings:vienna:buildings",
                "link": "/buildings/",
                "updateFrequency": {"period": "yearly", "times": 1, "fraction": 5, "updateTime": 7200},
                "size": 189600000,
                "securityConstraints": [
                    {"type": "oauth", "authority": "https://auth.urbem.tuwien.ac.at", "scope": "buildings.read"}
                ],
                "dataInstances": ["urn:buildings:vienna:buildings"]
            }
        ]
    });
    let d = decode_fixture("listing1.json");
    assert_same_json(&d.encode(), &expected);
    assert_eq!(d.to_canonical_bytes(), serde_json::to_vec(&expected).unwrap());
}

#[test]
fn listing2_encodes_to_canonical_json_ld() {
    let expected = json!({
        "@context": CONTEXT_URL,
        "@type": "DataInstance",
        "name": "urn:buildings:vienna:buildingblocks",
        "version": "1.0",
        "creationDate": "2017-01-07T12:04:03Z",
        "lastUpdate": "2017-01-07T12:04:03Z",
        "dataUnit": "urn:buildings:vienna",
        "deploymentInstance": "CitizenInformationSystem/DedicatedServer",
        "role": "origin",
        "metainformation": {"accessFrequency": "120", "averageResponseTime": "3.833"}
    });
    let d = decode_fixture("listing2.json");
    assert_same_json(&d.encode(), &expected);
    assert_eq!(d.to_canonical_bytes(), serde_json::to_vec(&expected).unwrap());
}

#[test]
fn listings_round_trip_and_encoding_is_idempotent() {
    for name in ["listing1.json", "listing2.json"] {
        let d = decode_fixture(name);
        let encoded = d.encode();
        let again = Document::decode(&encoded).unwrap_or_else(|e| panic!("{name}: canonical form must decode: {e}"));
        assert_eq!(again, d, "{name}: decode(encode(d)) == d");
        assert_same_json(&again.encode(), &encoded);
        assert_eq!(again.to_canonical_bytes(), d.to_canonical_bytes(), "{name}");
        // Through text as well, the way a catalog stores it.
        let reparsed: Value = serde_json::from_slice(&d.to_canonical_bytes()).unwrap();
        assert_eq!(Document::decode(&reparsed).unwrap(), d, "{name}");
        // The canonical form is accepted when the kind is fixed by the endpoint, too.
        assert_eq!(Document::decode_as(&encoded, d.kind()).unwrap(), d, "{name}");
    }
}

#[test]
fn listings_decode_as_their_kind_and_as_a_batch() {
    let l1 = fixture("listing1.json");
    let l2 = fixture("listing2.json");
    assert_eq!(Document::decode_as(&l1, Kind::DataUnit).unwrap().kind(), Kind::DataUnit);
    assert_eq!(Document::decode_as(&l2, Kind::DataInstance).unwrap().kind(), Kind::DataInstance);
    let both = Document::decode_many(&json!([l1, l2]), None).unwrap();
    assert_eq!(both, vec![decode_fixture("listing1.json"), decode_fixture("listing2.json")]);
}

#[test]
fn the_papers_timestamp_and_rfc3339_are_the_same_instant_and_written_in_utc() {
    let mut rfc = fixture("listing2.json");
    rfc["creationDate"] = json!("2017-01-07T13:04:03+01:00");
    rfc["lastUpdate"] = json!("2017-01-07T13:04:03+01:00");
    let a = Document::decode(&rfc).unwrap();
    let b = decode_fixture("listing2.json");
    assert_eq!(a, b);
    assert_eq!(a.to_canonical_bytes(), b.to_canonical_bytes());

    let mut utc = fixture("listing2.json");
    utc["creationDate"] = json!("2017-01-07T12:04:03Z");
    let c = Document::decode(&utc).unwrap();
    assert_eq!(c.header().creation_date.unwrap(), paper_instant());
    assert_eq!(c.encode()["creationDate"], "2017-01-07T12:04:03Z");
}

#[test]
fn listing2_text_name_update_date_is_accepted_as_last_update() {
    // The paper's prose calls it `updateDate`; its JSON says `lastUpdate`.
    let mut v = fixture("listing2.json");
    let obj = v.as_object_mut().unwrap();
    let t = obj.remove("lastUpdate").unwrap();
    obj.insert("updateDate".into(), t);
    let d = Document::decode(&v).unwrap();
    assert_eq!(d, decode_fixture("listing2.json"));
    let encoded = d.encode();
    assert_eq!(encoded["lastUpdate"], "2017-01-07T12:04:03Z");
    assert!(encoded.get("updateDate").is_none());
}
