//! The proxy over real sockets: upstream servers on 127.0.0.1, the data plane served by
//! hyper, real HTTP clients.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use civitas_dataplane::{DataPlaneConfig, RoutePolicy, RouteTable};
use civitas_model::Urn;
use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn urn(s: &str) -> Urn {
    Urn::parse(s).unwrap()
}

#[tokio::test]
async fn reverse_mode_joins_endpoint_link_rest_and_query_and_sets_host() {
    let a = upstream("a").await;
    let docs = [
        unit(UNIT, &[("blocks", "/blocks/"), ("streets", "streets")]),
        Inst::origin("urn:inst:a", format!("{}/base/", a.url())).doc(),
    ];
    let p = proxy(DataPlaneConfig::default(), &docs).await;
    let c = client();

    let resp = c.get(format!("{}/data/{UNIT}/blocks/12/a?x=1&y=%20z", p.url())).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-upstream"], "a");
    let v = json_of(resp).await;
    assert_eq!(v["uri"], "/base/blocks/12/a?x=1&y=%20z");
    assert_eq!(v["headers"]["host"][0], a.addr.to_string());

    // Full view URN, a percent-encoded unit, a link without slashes, no rest.
    let resp = c.get(format!("{}/data/urn%3Aurbem%3Abuildings/{UNIT}:streets", p.url())).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(json_of(resp).await["uri"], "/base/streets");
    let resp = c.get(format!("{}/data/{UNIT}/blocks", p.url())).send().await.unwrap();
    assert_eq!(json_of(resp).await["uri"], "/base/blocks/");
}

#[tokio::test]
async fn reverse_mode_refuses_unknown_units_views_and_missing_instances() {
    let docs = [
        unit(UNIT, &[("blocks", "/blocks/")]),
        unit("urn:urbem:empty", &[("v", "/v")]),
        Inst::origin("urn:inst:noendpoint", "http://127.0.0.1:9").of("urn:urbem:empty").doc(),
    ];
    // Strip the endpoint of the last instance: it exists but is not routable.
    let mut docs = docs.to_vec();
    if let civitas_model::Document::DataInstance(i) = &mut docs[2] {
        i.endpoint = None;
    }
    let mut p = proxy(DataPlaneConfig::default(), &docs).await;
    let c = client();

    let resp = c.get(format!("{}/data/urn:urbem:nothing/blocks/", p.url())).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["x-problem-slug"], "not-found");
    assert!(json_of(resp).await["detail"].as_str().unwrap().contains("urn:urbem:nothing"));

    let resp = c.get(format!("{}/data/{UNIT}/nope/", p.url())).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let detail = json_of(resp).await["detail"].as_str().unwrap().to_string();
    assert!(detail.contains("nope") && detail.contains("blocks"), "{detail}");
    // Neither identified a view: no observation.
    p.no_observation(Duration::from_millis(100)).await;

    // A known view without instances, and one whose only instance has no endpoint: 503.
    let resp = c.get(format!("{}/data/{UNIT}/blocks/", p.url())).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["x-problem-slug"], "no-instance");
    let o = p.observation().await;
    assert_eq!((o.status, o.instance.clone()), (503, None));
    assert_eq!(o.view.as_str(), "urn:urbem:buildings:blocks");
    assert_eq!(o.variant.as_ref().map(|v| v.as_str()), Some("/"), "the view's own resource");
    let resp = c.get(format!("{}/data/urn:urbem:empty/v", p.url())).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    assert!(json_of(resp).await["detail"].as_str().unwrap().contains("without an http endpoint"));

    // Dot segments cannot climb out of the view (sent raw: clients normalise them).
    let answer =
        raw(p.addr, &format!("GET /data/{UNIT}/blocks/../../admin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
            .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "dot segments are refused before routing: {answer}");
}

#[tokio::test]
async fn forward_mode_routes_absolute_form_requests_and_keeps_the_host() {
    let a = upstream("a").await;
    let docs = [
        unit(UNIT, &[("blocks", "/blocks/")]),
        unit("urn:urbem:special", &[("deep", "/blocks/special/")]),
        Inst::origin("urn:inst:a", a.url()).doc(),
        Inst::origin("urn:inst:s", a.url()).of("urn:urbem:special").doc(),
    ];
    let mut p = proxy(DataPlaneConfig::default(), &docs).await;
    let c = forward_client(p.addr);

    let resp = c.get(format!("{}/blocks/12?x=1", a.url())).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["via"].to_str().unwrap().contains("civitas"));
    let v = json_of(resp).await;
    assert_eq!(v["uri"], "/blocks/12?x=1");
    assert_eq!(v["headers"]["host"][0], a.addr.to_string());
    let o = p.observation().await;
    assert_eq!(o.view.as_str(), "urn:urbem:buildings:blocks");
    assert_eq!(o.variant.as_ref().map(|v| v.as_str()), Some("/12?x=1"), "the remainder after endpoint + link");

    // The longest endpoint + link prefix wins.
    let resp = c.get(format!("{}/blocks/special/x", a.url())).send().await.unwrap();
    assert_eq!(json_of(resp).await["uri"], "/blocks/special/x");
    let o = p.observation().await;
    assert_eq!(o.view.as_str(), "urn:urbem:special:deep");
    assert_eq!(o.variant.as_ref().map(|v| v.as_str()), Some("/x"));

    // The view's own resource.
    let resp = c.get(format!("{}/blocks", a.url())).send().await.unwrap();
    assert_eq!(json_of(resp).await["uri"], "/blocks");
    assert_eq!(p.observation().await.variant.as_ref().map(|v| v.as_str()), Some("/"));

    // A catalogued host, but no view at that path.
    let resp = c.get(format!("{}/elsewhere", a.url())).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["x-problem-slug"], "not-found");
    assert_eq!(a.hits(), 3);
}

#[tokio::test]
async fn forward_mode_may_go_to_a_replica_at_another_endpoint() {
    let (a, b) = (upstream("a").await, upstream("b").await);
    let docs = [
        site("urn:site:vienna"),
        site("urn:site:graz"),
        link("urn:link:vg", "urn:site:vienna", "urn:site:graz", 20.0, true),
        unit(UNIT, &[("blocks", "/blocks/")]),
        Inst::origin("urn:inst:a", format!("{}/api", a.url())).at("urn:site:graz").doc(),
        Inst::replica("urn:inst:b", format!("{}/copy/", b.url())).at("urn:site:vienna").doc(),
    ];
    let config = DataPlaneConfig {
        node_site: Some(urn("urn:site:vienna")),
        default_policy: RoutePolicy::Nearest,
        ..DataPlaneConfig::default()
    };
    let p = proxy(config, &docs).await;
    let resp = forward_client(p.addr).get(format!("{}/api/blocks/7?q=2", a.url())).send().await.unwrap();
    assert_eq!(resp.headers()["x-upstream"], "b");
    let v = json_of(resp).await;
    assert_eq!(v["uri"], "/copy/blocks/7?q=2");
    assert_eq!(v["headers"]["host"][0], a.addr.to_string(), "forward mode keeps the client's Host");
    assert_eq!(a.hits(), 0);
}

#[tokio::test]
async fn forward_mode_refuses_hosts_outside_the_catalog() {
    let a = upstream("a").await;
    let docs = [unit(UNIT, &[("blocks", "/blocks/")]), Inst::origin("urn:inst:a", a.url()).doc()];
    let mut p = proxy(DataPlaneConfig::default(), &docs).await;
    let c = forward_client(p.addr);
    let other = upstream("other").await;
    for url in [format!("{}/blocks/", other.url()), "http://example.invalid/blocks/".to_string()] {
        let resp = c.get(&url).send().await.unwrap();
        assert_eq!(resp.status(), 403, "{url}");
        assert_eq!(resp.headers()["x-problem-slug"], "not-an-open-proxy");
    }
    assert_eq!(other.hits(), 0);
    p.no_observation(Duration::from_millis(100)).await;
    let metrics = p.metrics_text();
    assert!(metrics.contains(r#"civitas_dataplane_requests_total{view="unrouted",class="4xx"} 2"#), "{metrics}");
}

#[tokio::test]
async fn connect_is_refused_with_405() {
    let p = proxy(DataPlaneConfig::default(), &[]).await;
    let answer = raw(p.addr, "CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    assert!(answer.contains("method-not-allowed"), "{answer}");
    assert!(answer.contains("HTTPS tunnelling"), "{answer}");
}

/// Three views with the same instances, one per policy:
/// A origin at graz (20 ms), B replica at vienna (the node's site, stale),
/// C replica at linz (5 ms, fresh), E replica at linz (no freshness), F replica at salzburg
/// (only a salzburg → vienna link, so unknown distance from vienna).
#[tokio::test]
async fn route_policies_choose_origin_nearest_and_fresh_instances() {
    let (a, b, c, e, f) =
        (upstream("a").await, upstream("b").await, upstream("c").await, upstream("e").await, upstream("f").await);
    let docs = vec![
        site("urn:site:vienna"),
        site("urn:site:graz"),
        site("urn:site:linz"),
        site("urn:site:salzburg"),
        link("urn:link:vg", "urn:site:vienna", "urn:site:graz", 20.0, true),
        link("urn:link:lv", "urn:site:linz", "urn:site:vienna", 5.0, true),
        link("urn:link:sv", "urn:site:salzburg", "urn:site:vienna", 1.0, false),
        unit(UNIT, &[("orig", "/o/"), ("near", "/n/"), ("fresh", "/f/")]),
        Inst::origin("urn:inst:a", a.url()).at("urn:site:graz").doc(),
        Inst::replica("urn:inst:b", b.url()).at("urn:site:vienna").meta(json!({"freshnessLagSeconds": 120})).doc(),
        Inst::replica("urn:inst:c", c.url()).at("urn:site:linz").meta(json!({"freshnessLagSeconds": "30"})).doc(),
        Inst::replica("urn:inst:e", e.url()).at("urn:site:linz").doc(),
        Inst::replica("urn:inst:f", f.url()).at("urn:site:salzburg").meta(json!({"freshnessLagSeconds": 0})).doc(),
    ];
    let config = DataPlaneConfig {
        node_site: Some(urn("urn:site:vienna")),
        view_policies: BTreeMap::from([
            (urn("urn:urbem:buildings:near"), RoutePolicy::Nearest),
            (urn("urn:urbem:buildings:fresh"), RoutePolicy::FreshOnly),
        ]),
        ..DataPlaneConfig::default()
    };
    let p = proxy(config, &docs).await;
    let cl = client();
    let served_by = |view: &'static str| {
        let cl = cl.clone();
        let url = format!("{}/data/{UNIT}/{view}/", p.url());
        async move {
            let resp = cl.get(url).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            resp.headers()["x-upstream"].to_str().unwrap().to_string()
        }
    };
    for _ in 0..3 {
        assert_eq!(served_by("orig").await, "a");
        assert_eq!(served_by("near").await, "b");
        assert_eq!(served_by("fresh").await, "c");
    }

    // Without B, the nearest is at linz: C and E tie at 5 ms and take turns; F (unknown
    // distance) never wins.
    let without_b: Vec<_> = docs.iter().filter(|d| d.name().as_str() != "urn:inst:b").cloned().collect();
    p.routes.replace(RouteTable::build(&without_b));
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(served_by("near").await);
    }
    seen.sort();
    assert_eq!(seen, ["c", "c", "e", "e"]);

    // Two origins share the load.
    let mut two_origins = without_b.clone();
    two_origins.push(Inst::origin("urn:inst:a2", b.url()).at("urn:site:graz").doc());
    p.routes.replace(RouteTable::build(&two_origins));
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(served_by("orig").await);
    }
    seen.sort();
    assert_eq!(seen, ["a", "a", "b", "b"]);
    assert_eq!(f.hits(), 0);
}

#[tokio::test]
async fn hop_by_hop_headers_are_removed_and_via_and_forwarded_for_added() {
    let a = upstream("a").await;
    let docs = [unit(UNIT, &[("blocks", "/blocks/")]), Inst::origin("urn:inst:a", a.url()).doc()];
    let mut p = proxy(DataPlaneConfig::default(), &docs).await;
    let request = format!(
        "GET /data/{UNIT}/blocks/x HTTP/1.1\r\nHost: proxy.example\r\nConnection: close, X-Secret\r\n\
         X-Secret: 1\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nProxy-Authorization: Basic eDp5\r\n\
         TE: trailers\r\nTrailer: x-checksum\r\nX-Forwarded-For: 10.1.2.3\r\nVia: 1.1 edge-cache\r\n\
         X-Civitas-Client-Site: urn:site:vienna\r\nX-Kept: yes\r\n\r\n"
    );
    let answer = raw(p.addr, &request).await;
    let body = answer.split("\r\n\r\n").nth(1).unwrap();
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("{answer}"));
    let h = &v["headers"];
    for gone in ["x-secret", "keep-alive", "proxy-connection", "proxy-authorization", "x-civitas-client-site"] {
        assert!(h.get(gone).is_none(), "{gone} was forwarded: {h}");
    }
    // `TE` is the proxy's own (it forwards trailers, so it asks for them); `Trailer` is
    // end-to-end.
    assert_eq!(h["te"], json!(["trailers"]));
    assert_eq!(h["trailer"], json!(["x-checksum"]));
    assert_eq!(h["x-kept"][0], "yes");
    assert_eq!(h["x-forwarded-for"], json!(["10.1.2.3, 127.0.0.1"]));
    assert_eq!(h["via"], json!(["1.1 edge-cache", "1.1 civitas"]));
    assert_eq!(h["host"][0], a.addr.to_string());
    assert_eq!(p.observation().await.client_site.as_deref().map(Urn::as_str), Some("urn:site:vienna"));

    // And on the way back.
    let resp = client().get(format!("{}/data/{UNIT}/blocks/hop", p.url())).send().await.unwrap();
    let h = resp.headers();
    for gone in ["x-upstream-secret", "keep-alive", "proxy-authenticate"] {
        assert!(h.get(gone).is_none(), "{gone} came back: {h:?}");
    }
    assert_eq!(h["trailer"], "x-checksum");
    assert!(h.get("connection").is_none_or(|c| !c.to_str().unwrap().contains("x-upstream-secret")));
    assert_eq!(h["x-kept"], "yes");
    assert_eq!(h["via"], "1.1 civitas");
    assert_eq!(resp.text().await.unwrap(), "hop");
}

#[tokio::test]
async fn trailers_cross_the_proxy_to_clients_that_take_them() {
    let a = upstream("a").await;
    let docs = [unit(UNIT, &[("blocks", "/blocks/")]), Inst::origin("urn:inst:a", a.url()).doc()];
    let p = proxy(DataPlaneConfig::default(), &docs).await;
    let get = |te: &str| {
        format!("GET /data/{UNIT}/blocks/trailers HTTP/1.1\r\nHost: proxy.example\r\n{te}Connection: close\r\n\r\n")
    };
    let answer = raw(p.addr, &get("TE: trailers\r\n")).await.to_ascii_lowercase();
    assert!(answer.contains("\r\ntrailer: x-checksum\r\n"), "{answer}");
    assert!(answer.contains("4\r\nrows\r\n0\r\nx-checksum: abc\r\n\r\n"), "{answer}");
    // A client that did not ask gets the body without them.
    let answer = raw(p.addr, &get("")).await.to_ascii_lowercase();
    assert!(answer.contains("rows") && !answer.contains("x-checksum: abc"), "{answer}");
}

#[tokio::test]
async fn one_observation_per_request_with_bytes_times_and_client_site() {
    let a = upstream("a").await;
    let docs = [unit(UNIT, &[("blocks", "/blocks/")]), Inst::origin("urn:inst:a", a.url()).doc()];
    let mut p = proxy(DataPlaneConfig::default(), &docs).await;
    let resp = client()
        .post(format!("{}/data/{UNIT}/blocks/upload", p.url()))
        .header("x-civitas-client-site", "urn:site:graz")
        .body(vec![7u8; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.bytes().await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["bodyLen"], 1000);
    let o = p.observation().await;
    assert_eq!(o.unit.as_str(), UNIT);
    assert_eq!(o.view.as_str(), "urn:urbem:buildings:blocks");
    assert_eq!(o.variant.as_ref().map(|v| v.as_str()), Some("/upload"), "relative to the view's link");
    assert_eq!(o.instance.as_deref().map(Urn::as_str), Some("urn:inst:a"));
    assert_eq!(o.client_site.as_deref().map(Urn::as_str), Some("urn:site:graz"));
    assert_eq!(o.client_addr.to_string(), "127.0.0.1");
    assert_eq!(o.status, 200);
    assert_eq!(o.bytes_in, 1000);
    assert_eq!(o.bytes_out, body.len() as u64);
    assert!(o.time_to_first_byte > Duration::ZERO && o.time_to_first_byte <= o.total_time, "{o:?}");
    assert!(o.time.elapsed().unwrap() < Duration::from_secs(10));
    p.no_observation(Duration::from_millis(100)).await;
    let metrics = p.metrics_text();
    assert!(metrics.contains(r#"civitas_dataplane_requests_total{view="urn:urbem:buildings:blocks",class="2xx"} 1"#));
    assert!(metrics.contains(r#"civitas_dataplane_request_bytes_total{view="urn:urbem:buildings:blocks"} 1000"#));
    assert!(
        metrics.contains(r#"civitas_dataplane_request_duration_seconds_count{view="urn:urbem:buildings:blocks"} 1"#)
    );
}

#[tokio::test]
async fn observations_are_dropped_and_counted_when_the_channel_is_full() {
    let a = upstream("a").await;
    let docs = [unit(UNIT, &[("blocks", "/blocks/")]), Inst::origin("urn:inst:a", a.url()).doc()];
    let p = proxy_with(DataPlaneConfig::default(), &docs, 1).await;
    let c = client();
    for _ in 0..3 {
        let resp = c.get(format!("{}/data/{UNIT}/blocks/", p.url())).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.bytes().await.unwrap();
    }
    eventually(Duration::from_secs(5), "two observations dropped", || async { p.sender.dropped() == 2 }).await;
    assert!(p.metrics_text().contains("civitas_dataplane_observations_dropped_total 2"));
}

#[tokio::test]
async fn origin_down_is_502_with_one_observation() {
    let port = dead_port().await;
    let docs =
        [unit(UNIT, &[("blocks", "/blocks/")]), Inst::origin("urn:inst:a", format!("http://127.0.0.1:{port}")).doc()];
    let mut p = proxy(DataPlaneConfig::default(), &docs).await;
    let resp = client().get(format!("{}/data/{UNIT}/blocks/", p.url())).send().await.unwrap();
    assert_eq!(resp.status(), 502);
    assert_eq!(resp.headers()["x-problem-slug"], "upstream-unreachable");
    let detail = json_of(resp).await["detail"].as_str().unwrap().to_string();
    assert!(detail.contains("urn:inst:a") && detail.contains(&port.to_string()), "{detail}");
    let o = p.observation().await;
    assert_eq!(o.status, 502);
    assert_eq!(o.instance.as_deref().map(Urn::as_str), Some("urn:inst:a"));
    p.no_observation(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn a_unit_first_byte_timeout_answers_504() {
    let a = upstream("a").await;
    let docs = [
        unit_with(UNIT, &[("blocks", "/blocks/")], json!({"type": "rest", "proxyTimeouts": {"firstByteMs": 200}})),
        Inst::origin("urn:inst:a", a.url()).doc(),
    ];
    let mut p = proxy(DataPlaneConfig::default(), &docs).await;
    let started = std::time::Instant::now();
    let resp = client().get(format!("{}/data/{UNIT}/blocks/sleep", p.url())).send().await.unwrap();
    assert_eq!(resp.status(), 504);
    assert!(started.elapsed() < Duration::from_secs(2), "the unit's 200 ms applied, not the 30 s default");
    assert_eq!(resp.headers()["x-problem-slug"], "upstream-timeout");
    assert_eq!(p.observation().await.status, 504);
}

#[tokio::test]
async fn an_idle_upstream_mid_body_truncates_the_response_and_is_counted() {
    let a = upstream("a").await;
    let docs = [
        unit_with(UNIT, &[("blocks", "/blocks/")], json!({"type": "rest", "proxyTimeouts": {"idleMs": "200"}})),
        Inst::origin("urn:inst:a", a.url()).doc(),
    ];
    let mut p = proxy(DataPlaneConfig::default(), &docs).await;
    let resp = client().get(format!("{}/data/{UNIT}/blocks/stall", p.url())).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.bytes().await.is_err(), "the body must end in an error, not look complete");
    let o = p.observation().await;
    assert_eq!((o.status, o.bytes_out), (200, 5));
    assert!(p.metrics_text().contains("civitas_dataplane_body_idle_timeouts_total 1"));
}

/// An upstream that answers the first request of a connection, then closes that kept-alive
/// connection when the next request arrives, without answering — the race of an upstream
/// closing an idle connection just as the proxy reuses it.
#[tokio::test]
async fn a_get_on_a_dead_pooled_connection_is_retried_once() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&connections);
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut seen = Vec::new();
                loop {
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    if seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await.unwrap();
                // Wait for the next request on this connection, then drop it unanswered.
                let _ = s.read(&mut buf).await;
            });
        }
    });
    let docs = [unit(UNIT, &[("blocks", "/blocks/")]), Inst::origin("urn:inst:a", format!("http://{addr}")).doc()];
    let p = proxy(DataPlaneConfig::default(), &docs).await;
    let c = client();
    for i in 0..3 {
        let resp = c.get(format!("{}/data/{UNIT}/blocks/", p.url())).send().await.unwrap();
        assert_eq!(resp.status(), 200, "request {i}");
        assert_eq!(resp.text().await.unwrap(), "ok");
    }
    assert_eq!(connections.load(Ordering::SeqCst), 3);
    assert!(p.metrics_text().contains("civitas_dataplane_upstream_retries_total 2"), "{}", p.metrics_text());

    // A POST is not idempotent: on a dead pooled connection it fails instead.
    let resp = c.post(format!("{}/data/{UNIT}/blocks/", p.url())).body("x").send().await.unwrap();
    assert_eq!(resp.status(), 502);
    assert_eq!(resp.headers()["x-problem-slug"], "bad-gateway");
}

#[tokio::test]
async fn metric_label_sets_are_bounded_and_the_least_recently_used_view_is_evicted() {
    let a = upstream("a").await;
    let docs = [unit(UNIT, &[("v1", "/1/"), ("v2", "/2/"), ("v3", "/3/")]), Inst::origin("urn:inst:a", a.url()).doc()];
    let p = proxy(DataPlaneConfig { max_metric_views: 2, ..DataPlaneConfig::default() }, &docs).await;
    let c = client();
    let get = |v: &'static str| {
        let c = c.clone();
        let url = format!("{}/data/{UNIT}/{v}/", p.url());
        async move { assert!(!c.get(url).send().await.unwrap().bytes().await.unwrap().is_empty()) }
    };
    let has = |text: &str, v: &str| text.contains(&format!(r#"view="urn:urbem:buildings:{v}""#));
    let settled = |n: usize| {
        let plane = &p.plane;
        eventually(Duration::from_secs(5), "metric views settle", move || async move { plane.metric_views() == n })
    };
    get("v1").await;
    get("v2").await;
    settled(2).await;
    let text = p.metrics_text();
    assert!(has(&text, "v1") && has(&text, "v2"), "{text}");
    get("v3").await;
    let text = p.metrics_text();
    assert!(!has(&text, "v1") && has(&text, "v2") && has(&text, "v3"), "{text}");
    get("v2").await;
    get("v1").await; // v3 is now the least recently used
    let text = p.metrics_text();
    assert!(has(&text, "v1") && has(&text, "v2") && !has(&text, "v3"), "{text}");
    assert!(text.contains("civitas_dataplane_metric_view_evictions_total 2"), "{text}");
    assert_eq!(p.plane.metric_views(), 2);
}

#[tokio::test]
async fn a_client_that_leaves_before_the_answer_is_recorded_as_499() {
    let a = upstream("a").await;
    let docs = [unit(UNIT, &[("blocks", "/blocks/")]), Inst::origin("urn:inst:a", a.url()).doc()];
    let mut p = proxy(DataPlaneConfig::default(), &docs).await;
    let impatient = reqwest::Client::builder().no_proxy().timeout(Duration::from_millis(300)).build().unwrap();
    assert!(impatient.get(format!("{}/data/{UNIT}/blocks/sleep", p.url())).send().await.is_err());
    let o = p.observation().await;
    assert_eq!(o.status, 499);
    assert_eq!(o.instance.as_deref().map(Urn::as_str), Some("urn:inst:a"));
    assert!(o.total_time < Duration::from_secs(3), "recorded when the client left, not when upstream answered");
}

#[tokio::test]
async fn a_streamed_response_head_is_not_held_back_until_its_first_body_chunk() {
    let a = upstream("a").await;
    let docs = [unit(UNIT, &[("events", "/events/")]), Inst::origin("urn:inst:a", a.url()).doc()];
    let p = proxy(DataPlaneConfig::default(), &docs).await;
    let started = std::time::Instant::now();
    let resp = client().get(format!("{}/data/{UNIT}/events/late-body", p.url())).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(started.elapsed() < Duration::from_millis(1000), "head waited {:?} for the body", started.elapsed());
    assert_eq!(resp.text().await.unwrap(), "late");
}

#[tokio::test]
async fn the_first_byte_timeout_counts_from_the_end_of_a_slow_upload() {
    let a = upstream("a").await;
    let docs = [
        unit_with(UNIT, &[("blocks", "/blocks/")], json!({"type": "rest", "proxyTimeouts": {"firstByteMs": 300}})),
        Inst::origin("urn:inst:a", a.url()).doc(),
    ];
    let mut p = proxy(DataPlaneConfig::default(), &docs).await;
    // Five chunks 150 ms apart: the upload alone takes longer than the first-byte timeout.
    let slow = futures::stream::unfold(0, |i| async move {
        if i == 5 {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
        Some((Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"0123456789")), i + 1))
    });
    let resp = client()
        .post(format!("{}/data/{UNIT}/blocks/upload", p.url()))
        .body(reqwest::Body::wrap_stream(slow))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(json_of(resp).await["bodyLen"], 50);
    assert_eq!(p.observation().await.bytes_in, 50);
}
