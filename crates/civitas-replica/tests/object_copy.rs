//! The object copy strategy against a real HTTP server that serves byte ranges: an
//! interrupted copy resumes at the last durable chunk, a changed object is copied again
//! whole (never a mix of two versions), and the committed replica is byte-for-byte the object.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use civitas_replica::{ObjectCopy, ObjectCopyConfig, ObjectRequest, ReplicaId, ReplicaStore, ResourceKey};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

const MIB: usize = 1024 * 1024;

#[derive(Clone, Default)]
struct Server {
    object: Arc<Mutex<(Bytes, String)>>,
    /// Every range asked for: (start, status answered).
    log: Arc<Mutex<Vec<(u64, u16)>>>,
    /// Body bytes sent.
    sent: Arc<AtomicU64>,
    /// The n-th ranged request (1-based) breaks off half-way; 0: never.
    break_at: Arc<AtomicU64>,
}

fn object(version: u8, len: usize) -> (Bytes, String) {
    let data: Vec<u8> = (0..len).map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[0] ^ version).collect();
    (Bytes::from(data), format!("\"v{version}\""))
}

async fn serve(State(s): State<Server>, headers: HeaderMap) -> Response {
    let (data, etag) = s.object.lock().unwrap().clone();
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok()).and_then(|r| r.strip_prefix("bytes="));
    let if_range_ok = headers.get(header::IF_RANGE).is_none_or(|v| v.as_bytes() == etag.as_bytes());
    let Some((start, end)) = range.filter(|_| if_range_ok).and_then(|r| r.split_once('-')) else {
        s.log.lock().unwrap().push((0, 200));
        s.sent.fetch_add(data.len() as u64, Ordering::SeqCst);
        return ([(header::ETAG, etag)], data).into_response();
    };
    let start: usize = start.parse().unwrap();
    let end: usize = end.parse::<usize>().unwrap().min(data.len() - 1);
    let n = {
        let mut log = s.log.lock().unwrap();
        log.push((start as u64, 206));
        log.iter().filter(|(_, st)| *st == 206).count() as u64
    };
    let slice = data.slice(start..=end);
    let headers = [
        (header::ETAG, etag),
        (header::CONTENT_RANGE, format!("bytes {start}-{end}/{}", data.len())),
        (header::CONTENT_LENGTH, slice.len().to_string()),
    ];
    if n == s.break_at.load(Ordering::SeqCst) {
        // Half the chunk, then the connection fails.
        let half = slice.slice(..slice.len() / 2);
        s.sent.fetch_add(half.len() as u64, Ordering::SeqCst);
        let stream = futures::stream::iter(vec![Ok(half), Err(std::io::Error::other("connection lost"))]);
        return (StatusCode::PARTIAL_CONTENT, headers, Body::from_stream(stream)).into_response();
    }
    s.sent.fetch_add(slice.len() as u64, Ordering::SeqCst);
    (StatusCode::PARTIAL_CONTENT, headers, slice).into_response()
}

async fn start(server: Server) -> String {
    let app = Router::new().route("/object.bin", get(serve)).with_state(server);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/object.bin")
}

async fn stored_body(store: &ReplicaStore, id: &ReplicaId) -> Vec<u8> {
    let mut stored = store.get(id, &ResourceKey::for_variant("/")).await.unwrap();
    let mut body = Vec::new();
    stored.body.read_to_end(&mut body).await.unwrap();
    body
}

fn sha(b: &[u8]) -> Vec<u8> {
    Sha256::digest(b).to_vec()
}

#[tokio::test]
async fn an_interrupted_copy_resumes_at_its_last_durable_chunk() {
    let temp = tempfile::tempdir().unwrap();
    let store = ReplicaStore::open(temp.path().join("replicas")).await.unwrap();
    let server = Server::default();
    *server.object.lock().unwrap() = object(1, 5 * MIB + 123);
    server.break_at.store(3, Ordering::SeqCst);
    let url = start(server.clone()).await;
    let config = ObjectCopyConfig { chunk_bytes: MIB as u64, ..ObjectCopyConfig::default() };
    let copier = ObjectCopy::new(store.clone(), temp.path().join("staging"), config).unwrap();
    let id = ReplicaId::new("object-1").unwrap();
    let request = ObjectRequest { replica_id: id.clone(), url, variant: "/".into() };
    let (progress, _) = watch::channel(Default::default());

    let err = copier.copy(&request, &progress).await.unwrap_err();
    assert!(err.to_string().contains("object-1"), "{err}");
    assert_eq!(copier.staged_bytes(&id).await, 2 * MIB as u64, "two whole chunks are durable");
    assert!(store.open_complete(&id).await.unwrap().is_none(), "nothing is committed after a failure");

    // A new copier (as after a restart) picks the staging up.
    let copier = ObjectCopy::new(store.clone(), temp.path().join("staging"), config_1mib()).unwrap();
    let sent_before = server.sent.load(Ordering::SeqCst);
    let replica = copier.copy(&request, &progress).await.unwrap();
    let resumed_at = server.log.lock().unwrap()[3].0;
    assert_eq!(resumed_at, 2 * MIB as u64, "the second attempt starts at the first missing chunk");
    let sent = server.sent.load(Ordering::SeqCst) - sent_before;
    assert_eq!(sent, (3 * MIB + 123) as u64, "only the missing bytes are sent again");
    assert_eq!(replica.manifest.total_bytes, (5 * MIB + 123) as u64);
    let expected = server.object.lock().unwrap().0.clone();
    assert_eq!(sha(&stored_body(&store, &id).await), sha(&expected));
    assert_eq!(copier.staged_bytes(&id).await, 0, "the staging is gone after the commit");
    assert!(!temp.path().join("staging").join("object-1").exists());
    let meta = store.resource(&id, &ResourceKey::for_variant("/")).await.unwrap();
    assert_eq!(meta.etag.as_deref(), Some("\"v1\""));
}

fn config_1mib() -> ObjectCopyConfig {
    ObjectCopyConfig { chunk_bytes: MIB as u64, ..ObjectCopyConfig::default() }
}

#[tokio::test]
async fn a_changed_object_is_copied_again_whole_never_mixed() {
    let temp = tempfile::tempdir().unwrap();
    let store = ReplicaStore::open(temp.path().join("replicas")).await.unwrap();
    let server = Server::default();
    *server.object.lock().unwrap() = object(1, 4 * MIB);
    server.break_at.store(2, Ordering::SeqCst);
    let url = start(server.clone()).await;
    let copier = ObjectCopy::new(store.clone(), temp.path().join("staging"), config_1mib()).unwrap();
    let id = ReplicaId::new("object-2").unwrap();
    let request = ObjectRequest { replica_id: id.clone(), url, variant: "/".into() };
    let (progress, _) = watch::channel(Default::default());
    copier.copy(&request, &progress).await.unwrap_err();
    assert_eq!(copier.staged_bytes(&id).await, MIB as u64);

    *server.object.lock().unwrap() = object(2, 3 * MIB + 7);
    copier.copy(&request, &progress).await.unwrap();
    let expected = server.object.lock().unwrap().0.clone();
    assert_eq!(sha(&stored_body(&store, &id).await), sha(&expected), "the new version, whole");
    assert_eq!(server.log.lock().unwrap().last().unwrap(), &(0, 200), "If-Range sent the whole new object");
    let meta = store.resource(&id, &ResourceKey::for_variant("/")).await.unwrap();
    assert_eq!(meta.etag.as_deref(), Some("\"v2\""));
}

#[tokio::test]
async fn a_server_without_ranges_is_copied_in_one_go_and_checked() {
    let temp = tempfile::tempdir().unwrap();
    let store = ReplicaStore::open(temp.path().join("replicas")).await.unwrap();
    let app = Router::new().route("/o", get(|| async { ([(header::ETAG, "\"x\"")], vec![7u8; 3 * MIB + 1]) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let copier = ObjectCopy::new(store.clone(), temp.path().join("staging"), config_1mib()).unwrap();
    let id = ReplicaId::new("object-3").unwrap();
    let request = ObjectRequest { replica_id: id.clone(), url: format!("http://{addr}/o"), variant: "/".into() };
    let (progress, rx) = watch::channel(Default::default());
    let replica = copier.copy(&request, &progress).await.unwrap();
    assert_eq!(replica.manifest.total_bytes, (3 * MIB + 1) as u64);
    assert_eq!(stored_body(&store, &id).await, vec![7u8; 3 * MIB + 1]);
    assert_eq!(rx.borrow().bytes_copied, (3 * MIB + 1) as u64);
}
