//! The relay against real sockets: latency, bandwidth, counters, drops, ordering, shutdown.
//! Timings are checked as orders of magnitude, never to the millisecond.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use civitas_sim::{DirectionProfile, LinkProfile, Relay, RelayStats};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const ANY: &str = "127.0.0.1:0";

async fn http_server(body_bytes: usize) -> SocketAddr {
    let body = vec![b'x'; body_bytes];
    let app = Router::new().route("/", get(move || async move { body.clone() }));
    let listener = TcpListener::bind(ANY).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(20)).build().unwrap()
}

async fn wait_for(relay: &Relay, what: &str, ok: impl Fn(&RelayStats) -> bool) -> RelayStats {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let s = relay.stats();
        if ok(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}: {s:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn one_way_latency_delays_an_http_round_trip() {
    let target = http_server(100).await;
    let relay = Relay::start(ANY.parse().unwrap(), target, LinkProfile::symmetric_latency(Duration::from_millis(100)))
        .await
        .unwrap();
    let url = format!("http://{}/", relay.local_addr());
    let started = Instant::now();
    let body = client().get(&url).send().await.unwrap().bytes().await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(body.len(), 100);
    assert!(elapsed >= Duration::from_millis(200), "a round trip took only {elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "a round trip took {elapsed:?}");
}

#[tokio::test]
async fn the_handshake_costs_one_more_round_trip_on_a_new_connection() {
    let target = http_server(10).await;
    let mut profile = LinkProfile::symmetric_latency(Duration::from_millis(100));
    profile.emulate_handshake = true;
    let relay = Relay::start(ANY.parse().unwrap(), target, profile).await.unwrap();
    let url = format!("http://{}/", relay.local_addr());
    let client = client();
    let started = Instant::now();
    client.get(&url).send().await.unwrap().bytes().await.unwrap();
    let first = started.elapsed();
    let started = Instant::now();
    client.get(&url).send().await.unwrap().bytes().await.unwrap();
    let second = started.elapsed();
    assert!(first >= Duration::from_millis(400), "new connection: {first:?}");
    // The kept-alive request pays one round trip, not two; only a lower bound is checked,
    // the reuse itself is checked on the connection count (no timing upper bound on a busy CI).
    assert!(second >= Duration::from_millis(200), "kept alive: {second:?}");
    assert_eq!(relay.stats().connections, 1, "the second request reused the connection");
}

#[tokio::test]
async fn a_bandwidth_cap_limits_throughput() {
    // 200 KiB at 100 KiB/s with a 16 KiB burst: at least (200 - 16) / 100 = 1.84 s.
    let target = http_server(200 * 1024).await;
    let mut profile = LinkProfile::symmetric_latency(Duration::ZERO);
    profile.downstream.bandwidth_bytes_per_second = Some(100.0 * 1024.0);
    profile.downstream.burst_bytes = 16 * 1024;
    let relay = Relay::start(ANY.parse().unwrap(), target, profile).await.unwrap();
    let started = Instant::now();
    let body = client().get(format!("http://{}/", relay.local_addr())).send().await.unwrap().bytes().await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(body.len(), 200 * 1024);
    assert!(elapsed >= Duration::from_millis(1500), "200 KiB took only {elapsed:?}");
    assert!(elapsed < Duration::from_secs(10), "200 KiB took {elapsed:?}");
}

#[tokio::test]
async fn latency_does_not_limit_throughput_to_one_chunk_per_round_trip() {
    // 4 MiB in 16 KiB chunks would take 256 × 200 ms = 51 s if chunks waited for each other.
    let target = http_server(4 * 1024 * 1024).await;
    let relay = Relay::start(ANY.parse().unwrap(), target, LinkProfile::symmetric_latency(Duration::from_millis(100)))
        .await
        .unwrap();
    let started = Instant::now();
    let body = client().get(format!("http://{}/", relay.local_addr())).send().await.unwrap().bytes().await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(body.len(), 4 * 1024 * 1024);
    assert!(elapsed < Duration::from_secs(5), "4 MiB took {elapsed:?}: chunks are not pipelined");
}

/// A target that reads exactly `expect` bytes, answers `answer` bytes and closes.
async fn raw_server(expect: usize, answer: usize) -> SocketAddr {
    let listener = TcpListener::bind(ANY).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; expect];
        socket.read_exact(&mut buf).await.unwrap();
        socket.write_all(&vec![7u8; answer]).await.unwrap();
        socket.shutdown().await.unwrap();
    });
    addr
}

#[tokio::test]
async fn byte_counters_are_exact_per_direction() {
    let (sent, answered) = (123_457, 54_321);
    let target = raw_server(sent, answered).await;
    let mut profile = LinkProfile::symmetric_latency(Duration::from_millis(5));
    profile.upstream.jitter = Duration::from_millis(3);
    let relay = Relay::start(ANY.parse().unwrap(), target, profile).await.unwrap();
    let mut socket = TcpStream::connect(relay.local_addr()).await.unwrap();
    socket.write_all(&vec![1u8; sent]).await.unwrap();
    let mut received = Vec::new();
    socket.read_to_end(&mut received).await.unwrap();
    assert_eq!(received.len(), answered);
    let stats = wait_for(&relay, "both counters", |s| s.upstream_bytes == sent as u64).await;
    assert_eq!(stats.upstream_bytes, sent as u64);
    assert_eq!(stats.downstream_bytes, answered as u64);
    assert_eq!(stats.connections, 1);
}

#[tokio::test]
async fn jitter_never_reorders_bytes() {
    let listener = TcpListener::bind(ANY).await.unwrap();
    let target = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let (mut r, mut w) = socket.into_split();
        tokio::io::copy(&mut r, &mut w).await.unwrap();
        w.shutdown().await.unwrap();
    });
    let mut profile = LinkProfile::symmetric_latency(Duration::from_millis(20));
    profile.upstream.jitter = Duration::from_millis(19);
    profile.downstream.jitter = Duration::from_millis(19);
    profile.seed = 42;
    let relay = Relay::start(ANY.parse().unwrap(), target, profile).await.unwrap();
    let socket = TcpStream::connect(relay.local_addr()).await.unwrap();
    socket.set_nodelay(true).unwrap();
    let (mut r, mut w) = socket.into_split();
    let writer = tokio::spawn(async move {
        for i in 0..300u32 {
            w.write_all(&i.to_be_bytes()).await.unwrap();
            if i % 10 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        w.shutdown().await.unwrap();
    });
    let mut echoed = Vec::new();
    r.read_to_end(&mut echoed).await.unwrap();
    writer.await.unwrap();
    let expected: Vec<u8> = (0..300u32).flat_map(|i| i.to_be_bytes()).collect();
    assert_eq!(echoed, expected);
}

#[tokio::test]
async fn a_dropped_connection_is_an_error_for_the_client() {
    let target = http_server(10).await;
    let mut profile = LinkProfile::symmetric_latency(Duration::from_millis(1));
    profile.drop_probability = 1.0;
    let relay = Relay::start(ANY.parse().unwrap(), target, profile).await.unwrap();
    let result = client().get(format!("http://{}/", relay.local_addr())).send().await;
    assert!(result.is_err(), "expected an error, got {result:?}");
    let stats = wait_for(&relay, "the drop", |s| s.dropped_connections == 1).await;
    assert_eq!(stats.downstream_bytes, 0);
}

#[tokio::test]
async fn a_stall_holds_bytes_back() {
    let target = http_server(10).await;
    let mut profile = LinkProfile::symmetric_latency(Duration::ZERO);
    // A stall every ~1 µs lasting 300 ms: the first request surely meets one.
    profile.upstream.stalls =
        Some(civitas_sim::Stalls { mean_interval: Duration::from_micros(1), duration: Duration::from_millis(300) });
    let relay = Relay::start(ANY.parse().unwrap(), target, profile).await.unwrap();
    let started = Instant::now();
    client().get(format!("http://{}/", relay.local_addr())).send().await.unwrap();
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(150), "no stall seen: {elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}

#[tokio::test]
async fn shutdown_closes_the_listener_and_open_connections() {
    let listener = TcpListener::bind(ANY).await.unwrap();
    let target = listener.local_addr().unwrap();
    // A target that accepts and never answers: the relayed connection stays open.
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let relay =
        Relay::start(ANY.parse().unwrap(), target, LinkProfile::symmetric_latency(Duration::ZERO)).await.unwrap();
    let addr = relay.local_addr();
    let mut open = TcpStream::connect(addr).await.unwrap();
    wait_for(&relay, "the connection", |s| s.connections == 1).await;
    relay.shutdown().await;
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(5), open.read(&mut buf)).await.expect("connection left open");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(TcpStream::connect(addr).await.is_err(), "still listening");
}

#[test]
fn direction_profile_helper_only_delays() {
    let d = DirectionProfile::latency(Duration::from_millis(3));
    assert_eq!(d.bandwidth_bytes_per_second, None);
    assert!(d.stalls.is_none());
}

#[tokio::test]
async fn relays_on_one_link_share_its_bandwidth_and_totals() {
    // Two 100 KiB bodies through two relays of one 100 KiB/s link: ≥ (200 - 16) / 100 s together.
    let (a, b) = (http_server(100 * 1024).await, http_server(100 * 1024).await);
    let mut profile = LinkProfile::symmetric_latency(Duration::ZERO);
    profile.downstream.bandwidth_bytes_per_second = Some(100.0 * 1024.0);
    profile.downstream.burst_bytes = 16 * 1024;
    let link = civitas_sim::WanLink::new(profile).unwrap();
    let ra = link.relay(ANY.parse().unwrap(), a).await.unwrap();
    let rb = link.relay(ANY.parse().unwrap(), b).await.unwrap();
    let started = Instant::now();
    let (x, y) = tokio::join!(
        client().get(format!("http://{}/", ra.local_addr())).send(),
        client().get(format!("http://{}/", rb.local_addr())).send()
    );
    let (x, y) = (x.unwrap().bytes().await.unwrap(), y.unwrap().bytes().await.unwrap());
    let elapsed = started.elapsed();
    assert_eq!(x.len() + y.len(), 200 * 1024);
    assert!(elapsed >= Duration::from_millis(1500), "the link carried 200 KiB in {elapsed:?}");
    let total = wait_for(&ra, "relay a's count", |s| s.downstream_bytes > 100 * 1024).await.downstream_bytes
        + wait_for(&rb, "relay b's count", |s| s.downstream_bytes > 100 * 1024).await.downstream_bytes;
    assert_eq!(link.stats().downstream_bytes, total);
    assert_eq!(link.stats().connections, 2);
}

#[tokio::test]
async fn a_relay_from_side_b_uses_the_a_to_b_figures_for_what_it_receives() {
    // Only A → B is capped; a client on B downloading from A receives A → B bytes.
    let target = http_server(150 * 1024).await;
    let mut profile = LinkProfile::symmetric_latency(Duration::ZERO);
    profile.upstream.bandwidth_bytes_per_second = Some(100.0 * 1024.0);
    profile.upstream.burst_bytes = 16 * 1024;
    let link = civitas_sim::WanLink::new(profile).unwrap();
    let relay = link.relay_from(civitas_sim::Side::B, ANY.parse().unwrap(), target).await.unwrap();
    let started = Instant::now();
    let body = client().get(format!("http://{}/", relay.local_addr())).send().await.unwrap().bytes().await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(body.len(), 150 * 1024);
    assert!(elapsed >= Duration::from_millis(1000), "150 KiB took only {elapsed:?}");
    wait_for(&relay, "the count", |s| s.downstream_bytes > 150 * 1024).await;
    assert!(link.stats().upstream_bytes > 150 * 1024, "counted as A → B: {:?}", link.stats());
}
