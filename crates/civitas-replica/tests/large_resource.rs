//! A 256 MiB resource is copied with flat memory and verified by SHA-256. Alone in its
//! test binary so no other test moves the process's peak memory.

mod support;

use std::time::Duration;

use axum::body::Body;
use axum::http::header;
use axum::response::Response;
use bytes::Bytes;
use civitas_replica::{
    HttpSnapshot, ReplicaId, ReplicaStore, ResourceKey, SnapshotConfig, SnapshotProgress, SnapshotRequest,
};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt as _;
use tokio::sync::watch;

const CHUNK: usize = 64 * 1024;
const CHUNKS: usize = 4096; // 256 MiB
const MAX_GROWTH_KIB: u64 = 64 * 1024;

fn chunk() -> Bytes {
    Bytes::from((0..CHUNK).map(|i| (i * 7 % 253) as u8).collect::<Vec<u8>>())
}

/// The peak resident set of this process so far, in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM in /proc/self/status");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_256_mib_resource_is_copied_with_flat_memory_and_verified() {
    // The origin streams the body chunk by chunk: it holds one chunk, not the body.
    let app = axum::Router::new().fallback(|| async {
        let data = chunk();
        let chunks = futures::stream::iter((0..CHUNKS).map(move |_| Ok::<Bytes, std::io::Error>(data.clone())));
        Response::builder()
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::CONTENT_LENGTH, CHUNK * CHUNKS)
            .header(header::ETAG, "\"big\"")
            .body(Body::from_stream(chunks))
            .unwrap()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let expected = {
        let data = chunk();
        let mut hasher = Sha256::new();
        for _ in 0..CHUNKS {
            hasher.update(&data);
        }
        hex(&hasher.finalize())
    };

    let dir = tempfile::tempdir().unwrap();
    let store = ReplicaStore::open(dir.path()).await.unwrap();
    let snapshot = HttpSnapshot::new(store.clone(), SnapshotConfig::default()).unwrap();
    let request = SnapshotRequest {
        replica_id: ReplicaId::new("big").unwrap(),
        endpoint: format!("http://{addr}/big"),
        variants: vec![String::new()],
        seeds: Vec::new(),
    };
    let (progress, rx) = watch::channel(SnapshotProgress::default());
    let before = peak_rss_kib();
    let replica = tokio::time::timeout(Duration::from_secs(300), snapshot.copy(&request, &progress))
        .await
        .expect("copied before the deadline")
        .unwrap();
    let growth = peak_rss_kib().saturating_sub(before);
    assert!(growth < MAX_GROWTH_KIB, "peak memory grew by {growth} KiB while copying 256 MiB");
    assert_eq!(rx.borrow().bytes_copied, (CHUNK * CHUNKS) as u64);

    let meta = &replica.resources[0];
    assert_eq!(meta.content_length, (CHUNK * CHUNKS) as u64);
    assert_eq!(meta.sha256, expected);

    // The stored file hashes to the same value, read back as a stream.
    let mut body = store.get(&replica.id, &ResourceKey::for_variant("")).await.unwrap().body;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = body.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    assert_eq!(total, (CHUNK * CHUNKS) as u64);
    assert_eq!(hex(&hasher.finalize()), expected);
}
