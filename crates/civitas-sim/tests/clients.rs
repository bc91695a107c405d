//! Clients against a real data service behind a relay: samples per phase, failures recorded.

use std::time::{Duration, Instant};

use civitas_sim::{
    ClientPlan, ClientRun, DataService, LinkProfile, Phase, Relay, RequestType, Scale, ServiceConfig, ServiceSpec,
    Summary,
};

async fn wait_for_samples(run: &ClientRun, phase: Phase, at_least: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while run.samples().iter().filter(|s| s.phase == phase).count() < at_least {
        assert!(Instant::now() < deadline, "only {} samples", run.samples().len());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn plan(city: &str, base: &str, clients: usize) -> ClientPlan {
    let think_time = Duration::from_millis(20);
    ClientPlan {
        city: city.into(),
        clients,
        request_types: vec![
            RequestType { name: "buildings".into(), url: format!("{base}/buildings?district=3"), think_time },
            RequestType { name: "blocks".into(), url: format!("{base}/blocks"), think_time },
        ],
        proxy: None,
        timeout: Duration::from_secs(10),
        seed: 1,
    }
}

#[tokio::test]
async fn clients_record_every_response_per_phase() {
    let scale = Scale::new(1.0, 200.0).unwrap();
    let service = DataService::start(
        "127.0.0.1:0".parse().unwrap(),
        ServiceSpec::named("buildings").unwrap(),
        ServiceConfig::for_city("melbourne", scale),
    )
    .await
    .unwrap();
    let relay = Relay::start(
        "127.0.0.1:0".parse().unwrap(),
        service.local_addr(),
        LinkProfile::symmetric_latency(Duration::from_millis(30)),
    )
    .await
    .unwrap();
    let run = ClientRun::start(&[plan("vienna", &format!("http://{}", relay.local_addr()), 3)]).unwrap();
    wait_for_samples(&run, Phase::Inactive, 12).await;
    run.set_phase(Phase::Active);
    wait_for_samples(&run, Phase::Active, 12).await;
    let samples = run.stop(Duration::from_secs(5)).await;

    assert!(samples.iter().all(|s| !s.failed()), "{samples:?}");
    assert!(samples.iter().all(|s| s.seconds >= 0.06), "every request crossed the 30 ms link both ways");
    let clients: std::collections::BTreeSet<_> = samples.iter().map(|s| s.client).collect();
    assert_eq!(clients.len(), 3);
    for name in ["buildings", "blocks"] {
        let s = Summary::of(&samples, name, Phase::Inactive);
        assert!(s.requests > 0 && s.failed == 0 && s.avg_s >= 0.06, "{name}: {s:?}");
    }
    let body_bytes: u64 = samples.iter().map(|s| s.bytes).sum();
    assert!(relay.stats().downstream_bytes >= body_bytes, "the relay counted every body byte");
}

#[tokio::test]
async fn unreachable_services_are_recorded_as_failures() {
    // A port that was just free: nothing listens there.
    let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let run = ClientRun::start(&[plan("vienna", &format!("http://{addr}"), 1)]).unwrap();
    wait_for_samples(&run, Phase::Inactive, 4).await;
    let samples = run.stop(Duration::from_secs(5)).await;
    assert!(samples.iter().all(|s| s.failed() && s.status.is_none() && s.error.is_some()));
    let s = Summary::of(&samples, "blocks", Phase::Inactive);
    assert_eq!(s.failed, s.requests);
}

#[test]
fn a_plan_without_request_types_is_refused() {
    let mut p = plan("vienna", "http://127.0.0.1:1", 1);
    p.request_types.clear();
    assert!(ClientRun::start(&[p]).is_err());
}
