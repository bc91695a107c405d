//! The validation cache and the copy hold over real sockets.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use civitas_dataplane::{DataPlaneConfig, RouteTable};
use civitas_model::Urn;
use common::*;
use tokio::net::TcpListener;

/// An origin whose answer is `version` (changed by the test), with a strong `ETag`; it
/// counts full answers and 304s and remembers the last `If-None-Match`.
struct Versioned {
    addr: std::net::SocketAddr,
    version: Arc<AtomicU64>,
    full: Arc<AtomicUsize>,
    not_modified: Arc<AtomicUsize>,
}

async fn versioned(delay: Duration) -> Versioned {
    let version = Arc::new(AtomicU64::new(1));
    let (full, not_modified) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (v, f, n) = (Arc::clone(&version), Arc::clone(&full), Arc::clone(&not_modified));
    let app = Router::new().fallback(move |req: Request| {
        let (v, f, n) = (Arc::clone(&v), Arc::clone(&f), Arc::clone(&n));
        async move {
            tokio::time::sleep(delay).await;
            let version = v.load(Ordering::SeqCst);
            let etag = format!("\"v{version}\"");
            if req.headers().get(header::IF_NONE_MATCH).is_some_and(|t| t.as_bytes() == etag.as_bytes()) {
                n.fetch_add(1, Ordering::SeqCst);
                return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
            }
            f.fetch_add(1, Ordering::SeqCst);
            let mut r: Response = format!("{{\"version\":{version},\"pad\":\"{}\"}}", "x".repeat(1000)).into_response();
            r.headers_mut().insert(header::ETAG, HeaderValue::from_str(&etag).unwrap());
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r
        }
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Versioned { addr, version, full, not_modified }
}

#[tokio::test]
async fn an_unchanged_answer_crosses_as_a_304_and_a_changed_one_in_full() {
    let o = versioned(Duration::ZERO).await;
    let docs = [unit(UNIT, &[("blocks", "/blocks/")]), Inst::origin("urn:inst:a", format!("http://{}", o.addr)).doc()];
    let p = proxy(DataPlaneConfig::default(), &docs).await;
    let c = forward_client(p.addr);
    let url = format!("http://{}/blocks/?limit=5", o.addr);
    // Off until switched on (a node does with the SDD): a plain proxy.
    for _ in 0..2 {
        let r = c.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
    }
    assert_eq!((o.full.load(Ordering::SeqCst), o.not_modified.load(Ordering::SeqCst)), (2, 0));
    // …that still keeps the latest answer, found by view and variant (a copy starts from it).
    let view = Urn::parse(&format!("{UNIT}:blocks")).unwrap();
    let kept = p.plane.kept_answers().find(&view, "/?limit=5").expect("the inactive proxy keeps the latest answer");
    assert_eq!(kept.etag, "\"v1\"");
    assert_eq!(kept.content_type.as_deref(), Some("application/json"));
    assert!(std::str::from_utf8(&kept.body).unwrap().starts_with("{\"version\":1,"));
    assert!(p.plane.kept_answers().find(&view, "/").is_none(), "another variant");
    assert!(p.plane.kept_answers().find(&Urn::parse(&format!("{UNIT}:other")).unwrap(), "/?limit=5").is_none());
    o.full.store(0, Ordering::SeqCst);
    p.plane.set_revalidation(true);

    let first = c.get(&url).send().await.unwrap();
    assert_eq!(first.status(), 200);
    let first = first.text().await.unwrap();
    assert!(first.contains("\"version\":1"));
    for _ in 0..3 {
        let again = c.get(&url).send().await.unwrap();
        assert_eq!(again.status(), 200, "the client sees the answer, not the 304");
        assert_eq!(again.headers()["etag"], "\"v1\"");
        assert_eq!(again.text().await.unwrap(), first);
    }
    // The answer kept while inactive is revalidated from the first active read on.
    assert_eq!((o.full.load(Ordering::SeqCst), o.not_modified.load(Ordering::SeqCst)), (0, 4));

    // Never stale: the origin decides every time.
    o.version.store(2, Ordering::SeqCst);
    let changed = c.get(&url).send().await.unwrap().text().await.unwrap();
    assert!(changed.contains("\"version\":2"), "{changed}");
    let again = c.get(&url).send().await.unwrap().text().await.unwrap();
    assert_eq!(again, changed);
    assert_eq!((o.full.load(Ordering::SeqCst), o.not_modified.load(Ordering::SeqCst)), (1, 5));

    // A client's own condition is the client's business: its 304 passes through.
    let own = c.get(&url).header("if-none-match", "\"v2\"").send().await.unwrap();
    assert_eq!(own.status(), 304);
    // Credentials: not shared through the cache (a full answer from the origin).
    let before = o.full.load(Ordering::SeqCst);
    let private = c.get(&url).header("authorization", "Bearer x").send().await.unwrap();
    assert_eq!(private.status(), 200);
    assert_eq!(o.full.load(Ordering::SeqCst), before + 1);
}

#[tokio::test]
async fn switched_off_every_answer_crosses_in_full() {
    let o = versioned(Duration::ZERO).await;
    let docs = [unit(UNIT, &[("blocks", "/blocks/")]), Inst::origin("urn:inst:a", format!("http://{}", o.addr)).doc()];
    let config = DataPlaneConfig { validation_cache_bytes: 0, ..DataPlaneConfig::default() };
    let p = proxy(config, &docs).await;
    p.plane.set_revalidation(true);
    let c = forward_client(p.addr);
    for _ in 0..3 {
        assert_eq!(c.get(format!("http://{}/blocks/", o.addr)).send().await.unwrap().status(), 200);
    }
    assert_eq!((o.full.load(Ordering::SeqCst), o.not_modified.load(Ordering::SeqCst)), (3, 0));
    let view = Urn::parse(&format!("{UNIT}:blocks")).unwrap();
    assert!(p.plane.kept_answers().find(&view, "/").is_none(), "nothing is kept either");
}

/// A slow origin and a "replica" (another server) that appears in the route table while a
/// read is held: the read is answered by the replica, sooner than the origin would.
#[tokio::test]
async fn a_read_held_for_a_copy_is_served_by_the_replica_once_it_routes() {
    let origin = versioned(Duration::from_millis(800)).await;
    let replica = upstream("replica").await;
    let vienna = site("urn:site:vienna");
    let melbourne = site("urn:site:melbourne");
    let l = link("urn:link:vm", "urn:site:vienna", "urn:site:melbourne", 150.0, true);
    let u = unit(UNIT, &[("blocks", "/blocks/")]);
    let o = Inst::origin("urn:inst:o", format!("http://{}", origin.addr)).at("urn:site:melbourne").doc();
    let docs = [vienna.clone(), melbourne.clone(), l.clone(), u.clone(), o.clone()];
    let config = DataPlaneConfig {
        node_site: Some(Urn::parse("urn:site:vienna").unwrap()),
        default_policy: civitas_dataplane::RoutePolicy::Nearest,
        ..DataPlaneConfig::default()
    };
    let mut p = proxy(config, &docs).await;
    let c = client();
    let url = format!("{}/data/{UNIT}/blocks/", p.url());
    // History: the origin takes 0.8 s.
    assert_eq!(c.get(&url).send().await.unwrap().status(), 200);
    let _ = p.observation().await;

    let view = Urn::parse(&format!("{UNIT}:blocks")).unwrap();
    let ticket = p.plane.copies().begin(view.clone());
    let held = tokio::spawn({
        let (c, url) = (c.clone(), url.clone());
        async move {
            let t = tokio::time::Instant::now();
            let r = c.get(&url).send().await.unwrap();
            (r.headers()["x-upstream"].to_str().unwrap_or_default().to_owned(), t.elapsed())
        }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let r = Inst::replica("urn:inst:r", replica.url()).at("urn:site:vienna").doc();
    p.routes.replace(RouteTable::build(&[vienna, melbourne, l, u, o, r]));
    ticket.registered();
    let (by, took) = held.await.unwrap();
    assert_eq!(by, "replica", "the held read went to the replica");
    assert!(took < Duration::from_millis(700), "answered before the origin would have: {took:?}");
    assert_eq!(origin.full.load(Ordering::SeqCst), 1, "the origin saw only the first read");
}

#[tokio::test]
async fn a_read_held_for_a_failed_copy_goes_to_the_origin_and_does_not_fail() {
    let origin = versioned(Duration::from_millis(300)).await;
    let docs =
        [unit(UNIT, &[("blocks", "/blocks/")]), Inst::origin("urn:inst:o", format!("http://{}", origin.addr)).doc()];
    let mut p = proxy(DataPlaneConfig::default(), &docs).await;
    let c = client();
    let url = format!("{}/data/{UNIT}/blocks/", p.url());
    assert_eq!(c.get(&url).send().await.unwrap().status(), 200);
    let _ = p.observation().await;

    let ticket = p.plane.copies().begin(Urn::parse(&format!("{UNIT}:blocks")).unwrap());
    let held = tokio::spawn({
        let (c, url) = (c.clone(), url.clone());
        async move { c.get(&url).send().await.unwrap().status() }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(origin.full.load(Ordering::SeqCst) + origin.not_modified.load(Ordering::SeqCst), 1, "held");
    drop(ticket); // the copy failed
    assert_eq!(held.await.unwrap(), 200);
    assert_eq!(origin.full.load(Ordering::SeqCst) + origin.not_modified.load(Ordering::SeqCst), 2);
}
