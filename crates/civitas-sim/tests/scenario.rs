//! Scenario one's world without Civitas: services, link and relays started by a
//! `Deployment`, clients in Vienna reading Melbourne directly through the link.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use civitas_sim::{ClientRun, Deployment, Phase, Scale, Scenario, Summary};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_one_baseline_crosses_the_link_and_shapes_response_times() {
    // Time ÷ 20, sizes ÷ 200: a few seconds of baseline.
    let scenario = Scenario::one(Scale::new(20.0, 200.0).unwrap());
    let deployment = Deployment::start(&scenario).await.unwrap();

    // Melbourne's services are reached through relays on Vienna's address; Vienna's directly.
    let endpoints = deployment.endpoints();
    let relayed = &endpoints[&("melbourne".to_owned(), "buildings".to_owned())];
    assert!(relayed.starts_with("http://127.0.0.11:"), "{relayed}");
    let local = &endpoints[&("vienna".to_owned(), "buildings".to_owned())];
    assert!(local.starts_with("http://127.0.0.11:"), "{local}");
    assert_ne!(relayed, local);
    assert_eq!(deployment.relays().len(), 10);
    let docs = scenario.catalog_documents(endpoints).unwrap();
    assert!(docs.iter().any(|d| d["endpoint"] == relayed.as_str()));

    let plans = scenario.client_plans(endpoints, &BTreeMap::new()).unwrap();
    let run = ClientRun::start(&plans).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let samples = run.samples();
        let enough =
            scenario.request_mix.iter().all(|m| samples.iter().filter(|s| s.request_type == m.name).count() >= 5);
        if enough {
            break;
        }
        assert!(Instant::now() < deadline, "too few samples: {}", samples.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let samples = run.stop(Duration::from_secs(10)).await;
    assert!(samples.iter().all(|s| !s.failed()), "{:?}", samples.iter().find(|s| s.failed()));

    let median = |name: &str| Summary::of(&samples, name, Phase::Inactive).median_s;
    assert!(
        median("buildings") > median("mobility"),
        "buildings {} vs mobility {}",
        median("buildings"),
        median("mobility")
    );
    // Every request crossed the 150 ms ÷ 20 link at least twice (handshake or request + response).
    let one_way = scenario.link_profile("vienna", "melbourne").unwrap().upstream.latency.as_secs_f64();
    assert!(samples.iter().all(|s| s.seconds >= 2.0 * one_way * 0.9));

    let body_bytes: u64 = samples.iter().map(|s| s.bytes).sum();
    let from_melbourne = deployment.bytes_sent_from("melbourne");
    let from_vienna = deployment.bytes_sent_from("vienna");
    assert!(from_melbourne >= body_bytes, "{from_melbourne} < {body_bytes}");
    assert!(from_vienna < from_melbourne / 10, "requests are small: {from_vienna} vs {from_melbourne}");
    deployment.shutdown().await;
}

#[test]
fn scenario_triggers_parse_as_the_sdd_api_parses_them() {
    for scale in [Scale::DEFAULT, Scale::FULL, Scale::new(20.0, 200.0).unwrap()] {
        for name in ["one", "two"] {
            let scenario = Scenario::named(name, scale).unwrap();
            let parsed = civitas_placement::parse_trigger(&scenario.trigger);
            assert!(parsed.is_ok(), "{}: {parsed:?}", scenario.trigger);
        }
    }
}
