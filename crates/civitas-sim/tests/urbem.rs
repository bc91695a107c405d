//! The synthetic URBEM services over real HTTP: shapes, variants, conditional requests,
//! mobility's changing content.

use std::time::{Duration, Instant};

use civitas_sim::urbem::DISTRICTS;
use civitas_sim::{DataService, Scale, ServiceConfig, ServiceSpec, ServiceWork};
use serde_json::Value;

fn config(scale: Scale) -> ServiceConfig {
    let mut c = ServiceConfig::for_city("melbourne", scale);
    c.work = ServiceWork { per_request: Duration::ZERO, per_entity: Duration::ZERO };
    c
}

async fn start(name: &str, scale: Scale) -> DataService {
    DataService::start("127.0.0.1:0".parse().unwrap(), ServiceSpec::named(name).unwrap(), config(scale)).await.unwrap()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

async fn get_json(url: &str) -> (reqwest::header::HeaderMap, Value, usize) {
    let response = client().get(url).send().await.unwrap();
    assert_eq!(response.status(), 200, "{url}");
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap();
    (headers, serde_json::from_slice(&bytes).unwrap(), bytes.len())
}

#[tokio::test]
async fn buildings_and_blocks_have_the_scaled_counts_and_sizes() {
    let scale = Scale::new(1.0, 400.0).unwrap();
    let service = start("buildings", scale).await;
    let (headers, body, len) = get_json(&format!("{}/buildings", service.base_url())).await;
    let count = scale.count(158_000) as usize;
    assert_eq!(body["count"], count);
    assert_eq!(body["items"].as_array().unwrap().len(), count);
    assert_eq!(body["city"], "melbourne");
    assert_eq!(headers["content-length"].to_str().unwrap(), len.to_string(), "exact length is sent");
    let per_entity = len as f64 / count as f64;
    assert!((1000.0..1400.0).contains(&per_entity), "{per_entity} B per building");

    let (_, blocks, _) = get_json(&format!("{}/blocks", service.base_url())).await;
    assert_eq!(blocks["count"], scale.count(8_334));
    assert_eq!(service.requests(), 2);
    service.shutdown().await;
}

#[tokio::test]
async fn districts_and_pages_select_slices() {
    let service = start("networks", Scale::new(1.0, 100.0).unwrap()).await;
    let base = service.base_url();
    let mut total = 0;
    for d in 1..=DISTRICTS {
        let (_, body, _) = get_json(&format!("{base}/networks?district={d}")).await;
        for item in body["items"].as_array().unwrap() {
            assert_eq!(item["district"], d);
        }
        total += body["count"].as_u64().unwrap();
    }
    assert_eq!(total, 680);
    let (_, page, _) = get_json(&format!("{base}/networks?district=2&offset=3&limit=5&unrelated=x")).await;
    assert_eq!(page["count"], 5);
    let (_, whole, _) = get_json(&format!("{base}/networks?district=2")).await;
    assert_eq!(page["items"][0], whole["items"][3]);
    for bad in ["district=0", "district=24", "limit=-1", "offset=x"] {
        let status = client().get(format!("{base}/networks?{bad}")).send().await.unwrap().status();
        assert_eq!(status, 400, "{bad}");
    }
}

#[tokio::test]
async fn static_views_honour_conditional_requests() {
    let service = start("buildings", Scale::new(1.0, 1000.0).unwrap()).await;
    let url = format!("{}/blocks?district=4", service.base_url());
    let first = client().get(&url).send().await.unwrap();
    let etag = first.headers()["etag"].clone();
    let last_modified = first.headers()["last-modified"].clone();
    let again = client().get(&url).header("if-none-match", etag.clone()).send().await.unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"], etag);
    let since = client().get(&url).header("if-modified-since", last_modified).send().await.unwrap();
    assert_eq!(since.status(), 304);
    let other = client().get(&url).header("if-none-match", "\"something-else\"").send().await.unwrap();
    assert_eq!(other.status(), 200);
    let variant = client().get(format!("{}/blocks?district=5", service.base_url())).send().await.unwrap();
    assert_ne!(variant.headers()["etag"], etag, "each variant has its own ETag");
}

#[tokio::test]
async fn the_same_seed_serves_the_same_bytes() {
    let scale = Scale::new(1.0, 500.0).unwrap();
    let (a, b) = (start("networks", scale).await, start("networks", scale).await);
    let body = |s: &DataService| client().get(format!("{}/networks?district=7", s.base_url())).send();
    let (x, y) = (body(&a).await.unwrap(), body(&b).await.unwrap());
    assert_eq!(x.headers()["etag"], y.headers()["etag"]);
    assert_eq!(x.bytes().await.unwrap(), y.bytes().await.unwrap());
}

#[tokio::test]
async fn mobility_changes_with_its_time_bucket() {
    // Time ÷ 50: the 5 s period becomes 100 ms.
    let service = start("mobility", Scale::new(50.0, 10.0).unwrap()).await;
    let url = format!("{}/mobility", service.base_url());
    let (headers, body, _) = get_json(&url).await;
    assert_eq!(body["count"], 400);
    let etag = headers["etag"].to_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let response = client().get(&url).header("if-none-match", &etag).send().await.unwrap();
        if response.status() == 200 {
            assert_ne!(response.headers()["etag"].to_str().unwrap(), etag);
            break;
        }
        assert_eq!(response.status(), 304);
        assert!(Instant::now() < deadline, "mobility never changed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn server_work_is_paid_per_request_and_per_entity() {
    let mut c = config(Scale::new(1.0, 100.0).unwrap());
    c.work = ServiceWork { per_request: Duration::from_millis(100), per_entity: Duration::from_millis(1) };
    let service =
        DataService::start("127.0.0.1:0".parse().unwrap(), ServiceSpec::named("buildings").unwrap(), c).await.unwrap();
    let started = Instant::now();
    let (_, body, _) = get_json(&format!("{}/buildings?limit=200", service.base_url())).await;
    let elapsed = started.elapsed();
    assert_eq!(body["count"], 200);
    assert!(elapsed >= Duration::from_millis(300), "100 ms + 200 × 1 ms of work took {elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

#[tokio::test]
async fn every_service_answers_its_views_and_schema() {
    let scale = Scale::new(1.0, 200.0).unwrap();
    for spec in &civitas_sim::SERVICES {
        let service = start(spec.name, scale).await;
        for view in spec.views {
            let (_, body, _) = get_json(&format!("{}{}", service.base_url(), view.path)).await;
            assert_eq!(body["view"], view.name);
            assert_eq!(body["total"], scale.count(view.entities));
        }
        let (_, schema, _) = get_json(&format!("{}/schema", service.base_url())).await;
        assert_eq!(schema["views"].as_array().unwrap().len(), spec.views.len());
    }
}

/// A node's snapshot copy asks for a view's own resource as `/view/?query`: the same answer.
#[tokio::test]
async fn a_trailing_slash_names_the_same_view() {
    let service = start("networks", Scale::new(1.0, 100.0).unwrap()).await;
    let base = service.base_url();
    let (plain_headers, plain, _) = get_json(&format!("{base}/networks?district=5")).await;
    let (slash_headers, slash, _) = get_json(&format!("{base}/networks/?district=5")).await;
    assert_eq!(plain, slash);
    assert_eq!(plain_headers["etag"], slash_headers["etag"]);
    service.shutdown().await;
}
