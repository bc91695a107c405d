//! A large body streamed both ways through the proxy with flat memory.
//!
//! Size: 1 GiB each way (about 1.5 s in a debug build on the 2-core VM), or
//! `CIVITAS_DATAPLANE_STREAM_BYTES` when set.

mod common;

use std::time::Duration;

use civitas_dataplane::DataPlaneConfig;
use common::*;
use futures::StreamExt;

fn stream_bytes() -> u64 {
    std::env::var("CIVITAS_DATAPLANE_STREAM_BYTES").ok().and_then(|v| v.parse().ok()).unwrap_or(1 << 30)
}

/// Resident memory of this process, in bytes.
fn vm_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_stream_through_with_bounded_memory() {
    let n = stream_bytes();
    let a = upstream("a").await;
    let docs = [unit(UNIT, &[("blocks", "/blocks/")]), Inst::origin("urn:inst:a", a.url()).doc()];
    let mut p = proxy(DataPlaneConfig::default(), &docs).await;
    let c = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(600)).build().unwrap();

    // Warm up allocator pools and connections before measuring.
    let warm = c.get(format!("{}/data/{UNIT}/blocks/big?n=1048576", p.url())).send().await.unwrap();
    assert_eq!(warm.bytes().await.unwrap().len(), 1 << 20);
    p.observation().await;
    let base = vm_rss();
    let mut peak = base;

    // Download.
    let resp = c.get(format!("{}/data/{UNIT}/blocks/big?n={n}", p.url())).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let mut received = 0u64;
    let mut chunks = 0u64;
    while let Some(chunk) = body.next().await {
        received += chunk.unwrap().len() as u64;
        chunks += 1;
        if chunks.is_multiple_of(256) {
            peak = peak.max(vm_rss());
        }
    }
    assert_eq!(received, n);
    let o = p.observation().await;
    assert_eq!(o.bytes_out, n);

    // Upload: a generated stream, counted by the upstream.
    let chunk = bytes::Bytes::from(vec![b'u'; 64 * 1024]);
    let count = n / chunk.len() as u64;
    let upload = futures::stream::iter((0..count).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
    let resp = c
        .post(format!("{}/data/{UNIT}/blocks/sink", p.url()))
        .body(reqwest::Body::wrap_stream(upload))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v = json_of(resp).await;
    assert_eq!(v["bodyLen"].as_u64(), Some(count * 64 * 1024));
    assert_eq!(p.observation().await.bytes_in, count * 64 * 1024);
    peak = peak.max(vm_rss());

    let growth = peak.saturating_sub(base);
    assert!(growth < 100 << 20, "resident memory grew by {} MiB while streaming {} MiB", growth >> 20, n >> 20);
}
