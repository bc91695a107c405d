//! The route table following a real catalog (redb in a temp dir), and a node's HTTP API.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::get;
use civitas_catalog::kv::{RedbOptions, RedbStore};
use civitas_catalog::{ApplyOptions, Catalog};
use civitas_dataplane::{DataPlaneConfig, RouteHandle, follow_catalog, follow_remote};
use civitas_model::{Document, Kind, Urn};
use common::*;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

const SITE: &str = "urn:site:vienna";

fn catalog() -> (tempfile::TempDir, Catalog) {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(&dir.path().join("catalog.redb"), RedbOptions::default()).unwrap();
    (dir, Catalog::new(Arc::new(store)))
}

async fn apply(c: &Catalog, docs: Vec<Document>) {
    c.apply(docs, ApplyOptions::default()).await.unwrap();
}

fn instances(routes: &RouteHandle) -> Vec<String> {
    routes
        .current()
        .instances(UNIT, "blocks")
        .map(|v| v.into_iter().map(|u| u.to_string()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn follow_catalog_applies_and_removes_instances_within_the_deadline() {
    let (_dir, cat) = catalog();
    let a = upstream("a").await;
    apply(&cat, vec![site(SITE), unit(UNIT, &[("blocks", "/blocks/")])]).await;
    let mut p = proxy(DataPlaneConfig::default(), &[]).await;
    let (stop_tx, stop_rx) = watch::channel(false);
    let follower = tokio::spawn(follow_catalog(cat.clone(), p.routes.clone(), stop_rx));
    tokio::time::timeout(Duration::from_secs(5), p.routes.wait_ready()).await.expect("ready within 5 s");
    let snapshot_revision = p.routes.current().revision();
    assert!(snapshot_revision > 0);

    let c = client();
    let url = format!("{}/data/{UNIT}/blocks/", p.url());
    assert_eq!(c.get(&url).send().await.unwrap().status(), 503);
    assert_eq!(p.observation().await.status, 503);

    apply(&cat, vec![Inst::origin("urn:inst:a", a.url()).at(SITE).doc()]).await;
    eventually(Duration::from_secs(3), "instance a routed", || async { instances(&p.routes) == ["urn:inst:a"] }).await;
    assert!(p.routes.current().revision() > snapshot_revision);
    let resp = c.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-upstream"], "a");

    cat.delete(Kind::DataInstance, &Urn::parse("urn:inst:a").unwrap(), false, false).await.unwrap();
    eventually(Duration::from_secs(3), "instance a gone", || async { instances(&p.routes).is_empty() }).await;
    assert_eq!(c.get(&url).send().await.unwrap().status(), 503);

    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), follower).await.expect("follower stops").unwrap();
}

/// Two clients send requests in a loop while a second origin is added and removed five
/// times: no request fails, and the new instance receives traffic each time it appears.
#[tokio::test]
async fn route_swaps_under_steady_load_fail_no_request() {
    let (_dir, cat) = catalog();
    let (a, b) = (upstream("a").await, upstream("b").await);
    apply(
        &cat,
        vec![site(SITE), unit(UNIT, &[("blocks", "/blocks/")]), Inst::origin("urn:inst:a", a.url()).at(SITE).doc()],
    )
    .await;
    let p = proxy(DataPlaneConfig::default(), &[]).await;
    let (stop_tx, stop_rx) = watch::channel(false);
    let follower = tokio::spawn(follow_catalog(cat.clone(), p.routes.clone(), stop_rx));
    tokio::time::timeout(Duration::from_secs(5), p.routes.wait_ready()).await.unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(Mutex::new(Vec::<String>::new())));
    let mut load = Vec::new();
    for _ in 0..2 {
        let (stop, ok, failed) = (Arc::clone(&stop), Arc::clone(&ok), Arc::clone(&failed));
        let url = format!("{}/data/{UNIT}/blocks/item", p.url());
        let c = client();
        load.push(tokio::spawn(async move {
            // Bounded: at most 100 000 requests or until told to stop.
            for _ in 0..100_000 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                match c.get(&url).send().await {
                    Ok(r) if r.status() == 200 => match r.bytes().await {
                        Ok(_) => {
                            ok.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(e) => failed.lock().unwrap().push(format!("body: {e}")),
                    },
                    Ok(r) => failed.lock().unwrap().push(format!("status {}", r.status())),
                    Err(e) => failed.lock().unwrap().push(format!("send: {e}")),
                }
            }
        }));
    }
    for round in 0..5 {
        let before = b.hits();
        apply(&cat, vec![Inst::origin("urn:inst:b", b.url()).at(SITE).doc()]).await;
        eventually(Duration::from_secs(3), &format!("round {round}: b receives traffic"), || async {
            b.hits() > before
        })
        .await;
        cat.delete(Kind::DataInstance, &Urn::parse("urn:inst:b").unwrap(), false, false).await.unwrap();
        eventually(Duration::from_secs(3), "b removed", || async { instances(&p.routes) == ["urn:inst:a"] }).await;
    }
    // After the last removal, b receives nothing more.
    let after = b.hits();
    let served = ok.load(Ordering::SeqCst);
    eventually(Duration::from_secs(5), "more requests served", || async { ok.load(Ordering::SeqCst) > served + 20 })
        .await;
    stop.store(true, Ordering::SeqCst);
    for t in load {
        t.await.unwrap();
    }
    assert_eq!(b.hits(), after);
    let failed = failed.lock().unwrap().clone();
    assert!(failed.is_empty(), "{} failed requests, e.g. {:?}", failed.len(), failed.first());
    assert!(ok.load(Ordering::SeqCst) > 50);
    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), follower).await.unwrap().unwrap();
}

// ---- a fake node API for follow_remote -----------------------------------------------

type LineSender = mpsc::Sender<Result<String, std::io::Error>>;

#[derive(Clone)]
struct FakeNode {
    docs: Arc<Mutex<Vec<Document>>>,
    watchers: Arc<Mutex<Vec<LineSender>>>,
    lists: Arc<AtomicUsize>,
}

impl FakeNode {
    /// Sends a line to every open watch.
    async fn broadcast(&self, line: Value) {
        let senders: Vec<_> = self.watchers.lock().unwrap().clone();
        for s in senders {
            let _ = s.send(Ok(format!("{line}\n"))).await;
        }
    }

    fn watcher_count(&self) -> usize {
        self.watchers.lock().unwrap().iter().filter(|s| !s.is_closed()).count()
    }

    /// Ends every open watch stream.
    fn drop_watches(&self) {
        self.watchers.lock().unwrap().clear();
    }
}

/// Lists one document per page, so that paging is exercised.
async fn list(
    State(node): State<FakeNode>,
    Path(collection): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    node.lists.fetch_add(1, Ordering::SeqCst);
    let docs: Vec<Value> = node
        .docs
        .lock()
        .unwrap()
        .iter()
        .filter(|d| d.kind().collection() == collection)
        .map(Document::encode)
        .collect();
    let start: usize = q.get("after").map(|a| a.trim_start_matches("cursor-").parse().unwrap()).unwrap_or(0);
    let items: Vec<&Value> = docs.iter().skip(start).take(1).collect();
    let next = (start + 1 < docs.len()).then(|| format!("cursor-{}", start + 1));
    Response::new(Body::from(json!({"items": items, "next": next}).to_string()))
}

async fn watch_stream(State(node): State<FakeNode>) -> Response {
    let (tx, rx) = mpsc::channel(16);
    node.watchers.lock().unwrap().push(tx);
    Response::builder()
        .header("content-type", "application/x-ndjson")
        .body(Body::from_stream(tokio_stream_from(rx)))
        .unwrap()
}

fn tokio_stream_from(
    mut rx: mpsc::Receiver<Result<String, std::io::Error>>,
) -> impl futures::Stream<Item = Result<String, std::io::Error>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test]
async fn follow_remote_lists_pages_then_follows_the_watch_and_reconnects() {
    let node = FakeNode {
        docs: Arc::new(Mutex::new(vec![
            site("urn:site:vienna"),
            site("urn:site:graz"),
            unit(UNIT, &[("blocks", "/blocks/")]),
            Inst::origin("urn:inst:a", "http://127.0.0.1:9001").at("urn:site:vienna").doc(),
            Inst::replica("urn:inst:a2", "http://127.0.0.1:9002").at("urn:site:graz").doc(),
        ])),
        watchers: Arc::default(),
        lists: Arc::default(),
    };
    let app = Router::new()
        .route("/api/v1/watch", get(watch_stream))
        .route("/api/v1/{collection}", get(list))
        .with_state(node.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let routes = RouteHandle::new();
    let (stop_tx, stop_rx) = watch::channel(false);
    let follower = tokio::spawn(follow_remote(format!("http://{addr}/"), Default::default(), routes.clone(), stop_rx));
    tokio::time::timeout(Duration::from_secs(5), routes.wait_ready()).await.expect("ready");
    assert_eq!(instances(&routes), ["urn:inst:a", "urn:inst:a2"], "both pages of instances were listed");

    let b = Inst::origin("urn:inst:b", "http://127.0.0.1:9003").doc();
    node.broadcast(json!({"op": "put", "revision": 12, "type": "DataInstance", "name": "urn:inst:b",
                          "document": b.encode()}))
        .await;
    eventually(Duration::from_secs(3), "b added", || async { instances(&routes).len() == 3 }).await;
    assert_eq!(routes.current().revision(), 12);
    node.broadcast(json!({"op": "delete", "revision": 13, "type": "DataInstance", "name": "urn:inst:a"})).await;
    eventually(Duration::from_secs(3), "a removed", || async { instances(&routes) == ["urn:inst:a2", "urn:inst:b"] })
        .await;

    // The node ends the watch; meanwhile an instance appeared that no watch line announced:
    // the follower reconnects and lists again.
    node.docs.lock().unwrap().push(Inst::origin("urn:inst:c", "http://127.0.0.1:9004").doc());
    node.drop_watches();
    eventually(Duration::from_secs(5), "c found after reconnecting", || async {
        instances(&routes).contains(&"urn:inst:c".to_string())
    })
    .await;
    eventually(Duration::from_secs(5), "watch reopened", || async { node.watcher_count() == 1 }).await;

    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), follower).await.unwrap().unwrap();
}
