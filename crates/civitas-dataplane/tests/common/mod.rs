//! Test fixtures: model documents, upstream servers, a proxy server around `DataPlane`.
#![allow(dead_code)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use civitas_dataplane::{DataPlane, DataPlaneConfig, ObservationSender, ProxyBody, RouteHandle, observation_channel};
use civitas_model::{Document, Observation};
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

pub const UNIT: &str = "urn:urbem:buildings";

pub fn doc(v: Value) -> Document {
    Document::decode(&v).unwrap_or_else(|e| panic!("fixture invalid: {e}\n{v}"))
}

pub fn site(name: &str) -> Document {
    doc(json!({"@type": "Site", "name": name, "version": "1", "tier": "fog", "region": "austria"}))
}

pub fn link(name: &str, from: &str, to: &str, latency_ms: f64, bidirectional: bool) -> Document {
    doc(json!({"@type": "SiteLink", "name": name, "version": "1", "from": from, "to": to,
               "latencyMs": latency_ms, "bidirectional": bidirectional}))
}

/// A unit with views `(local name, link)`, every view updated once a minute.
pub fn unit(name: &str, views: &[(&str, &str)]) -> Document {
    unit_with(name, views, json!({"type": "rest"}))
}

pub fn unit_with(name: &str, views: &[(&str, &str)], metainformation: Value) -> Document {
    let views: Vec<Value> = views
        .iter()
        .map(|(v, l)| json!({"name": v, "link": l, "updateFrequency": {"period": "PT60S", "times": 1}}))
        .collect();
    doc(json!({"@type": "DataUnit", "name": name, "version": "1", "metainformation": metainformation, "views": views}))
}

pub struct Inst<'a> {
    pub name: &'a str,
    pub unit: &'a str,
    pub endpoint: Option<String>,
    pub role: &'a str,
    pub site: Option<&'a str>,
    pub views: &'a [&'a str],
    pub meta: Value,
}

impl<'a> Inst<'a> {
    pub fn origin(name: &'a str, endpoint: impl Into<String>) -> Inst<'a> {
        Inst {
            name,
            unit: UNIT,
            endpoint: Some(endpoint.into()),
            role: "origin",
            site: None,
            views: &[],
            meta: json!({}),
        }
    }
    pub fn replica(name: &'a str, endpoint: impl Into<String>) -> Inst<'a> {
        Inst { role: "replica", ..Inst::origin(name, endpoint) }
    }
    pub fn at(mut self, site: &'a str) -> Self {
        self.site = Some(site);
        self
    }
    pub fn of(mut self, unit: &'a str) -> Self {
        self.unit = unit;
        self
    }
    pub fn views(mut self, views: &'a [&'a str]) -> Self {
        self.views = views;
        self
    }
    pub fn meta(mut self, meta: Value) -> Self {
        self.meta = meta;
        self
    }
    pub fn doc(self) -> Document {
        let mut v = json!({"@type": "DataInstance", "name": self.name, "version": "1", "dataUnit": self.unit,
                           "role": self.role, "views": self.views, "metainformation": self.meta});
        if let Some(e) = self.endpoint {
            v["endpoint"] = json!(e);
        }
        if let Some(s) = self.site {
            v["site"] = json!(s);
        }
        doc(v)
    }
}

// ---- upstreams ---------------------------------------------------------------------

/// An upstream HTTP server (axum) that tells who it is and what it received.
pub struct Upstream {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
}

impl Upstream {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// Behaviour by the last path segment: `sleep` (3 s before the head), `stall` (5 bytes, then
/// nothing), `late-body` (the head at once, a chunk 1.5 s later), `hop` (hop-by-hop headers in the answer), `trailers` (a chunked body ending with
/// the trailer `x-checksum: abc`, sent when the request has `TE: trailers`), `big?n=BYTES` (a streamed body of
/// that size); anything else echoes the request as JSON.
pub async fn upstream(name: &'static str) -> Upstream {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    let app = Router::new().fallback(move |req: Request| {
        let counter = Arc::clone(&counter);
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            answer(name, req).await
        }
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Upstream { addr, hits }
}

async fn answer(name: &'static str, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let last = path.rsplit('/').next().unwrap_or_default().to_string();
    match last.as_str() {
        "sleep" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            (StatusCode::OK, "late").into_response()
        }
        "stall" => {
            let chunks = futures::stream::iter([Ok::<_, Infallible>(Bytes::from_static(b"hello"))])
                .chain(futures::stream::pending());
            Response::builder().header("x-upstream", name).body(Body::from_stream(chunks)).unwrap()
        }
        "late-body" => {
            let late = futures::stream::once(async {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                Ok::<_, Infallible>(Bytes::from_static(b"late"))
            });
            Response::builder().header("x-upstream", name).body(Body::from_stream(late)).unwrap()
        }
        "hop" => Response::builder()
            .header("x-upstream", name)
            .header("connection", "x-upstream-secret")
            .header("x-upstream-secret", "1")
            .header("keep-alive", "timeout=5")
            .header("proxy-authenticate", "Basic realm=x")
            .header("trailer", "x-checksum")
            .header("x-kept", "yes")
            .body(Body::from("hop"))
            .unwrap(),
        "trailers" => {
            let mut trailers = HeaderMap::new();
            trailers.insert("x-checksum", "abc".parse().unwrap());
            let frames = futures::stream::iter([
                Ok::<_, Infallible>(http_body::Frame::data(Bytes::from_static(b"rows"))),
                Ok(http_body::Frame::trailers(trailers)),
            ]);
            Response::builder()
                .header("trailer", "x-checksum")
                .body(Body::new(http_body_util::StreamBody::new(frames)))
                .unwrap()
        }
        "big" => {
            let n: u64 =
                req.uri().query().and_then(|q| q.strip_prefix("n=")).and_then(|n| n.parse().ok()).unwrap_or(1 << 20);
            let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
            let full = n / chunk.len() as u64;
            let tail = (n % chunk.len() as u64) as usize;
            let stream = futures::stream::iter(
                (0..full).map(move |_| chunk.clone()).chain((tail > 0).then(|| Bytes::from(vec![b'y'; tail]))),
            )
            .map(Ok::<_, Infallible>);
            Response::builder().header("x-upstream", name).body(Body::from_stream(stream)).unwrap()
        }
        _ => {
            let method = req.method().to_string();
            let path_and_query = req.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default();
            let headers = header_json(req.headers());
            let mut body = req.into_body().into_data_stream();
            let mut body_len = 0usize;
            while let Some(chunk) = body.next().await {
                body_len += chunk.map(|c| c.len()).unwrap_or(0);
            }
            let v = json!({"upstream": name, "method": method, "uri": path_and_query, "headers": headers,
                           "bodyLen": body_len});
            Response::builder()
                .header("x-upstream", name)
                .header("content-type", "application/json")
                .body(Body::from(v.to_string()))
                .unwrap()
        }
    }
}

use futures::StreamExt;

fn header_json(h: &HeaderMap) -> Value {
    let mut m = serde_json::Map::new();
    for name in h.keys() {
        let values: Vec<Value> = h.get_all(name).iter().map(|v| json!(v.to_str().unwrap_or("?"))).collect();
        m.insert(name.as_str().to_string(), Value::Array(values));
    }
    Value::Object(m)
}

/// A port nothing listens on.
pub async fn dead_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

// ---- the proxy ---------------------------------------------------------------------

pub struct Proxy {
    pub addr: SocketAddr,
    pub plane: DataPlane,
    pub routes: RouteHandle,
    pub sender: ObservationSender,
    pub observations: mpsc::Receiver<Observation>,
}

impl Proxy {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next observation, within 5 s.
    pub async fn observation(&mut self) -> Observation {
        tokio::time::timeout(Duration::from_secs(5), self.observations.recv())
            .await
            .expect("an observation within 5 s")
            .expect("channel open")
    }

    /// No further observation arrives within `wait`.
    pub async fn no_observation(&mut self, wait: Duration) {
        if let Ok(Some(o)) = tokio::time::timeout(wait, self.observations.recv()).await {
            panic!("unexpected observation {o:?}");
        }
    }

    pub fn metrics_text(&self) -> String {
        let mut registry = prometheus_client::registry::Registry::with_prefix("civitas");
        self.plane.register_metrics(&mut registry);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        out
    }
}

/// Serves a `DataPlane` over HTTP/1 on 127.0.0.1:0; errors become a small JSON document
/// with the slug in `x-problem-slug`.
pub async fn proxy(config: DataPlaneConfig, docs: &[Document]) -> Proxy {
    proxy_with(config, docs, 1024).await
}

pub async fn proxy_with(config: DataPlaneConfig, docs: &[Document], capacity: usize) -> Proxy {
    let routes = RouteHandle::new();
    if !docs.is_empty() {
        routes.replace(civitas_dataplane::RouteTable::build(docs));
    }
    let (sender, observations) = observation_channel(capacity);
    let plane = DataPlane::new(config, routes.clone(), sender.clone());
    let addr = serve(plane.clone()).await;
    Proxy { addr, plane, routes, sender, observations }
}

pub async fn serve(plane: DataPlane) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else { continue };
            let plane = plane.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let plane = plane.clone();
                    async move { Ok::<_, Infallible>(respond(plane.handle(req, peer).await)) }
                });
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    addr
}

fn respond(r: Result<hyper::Response<ProxyBody>, civitas_dataplane::ProxyError>) -> hyper::Response<ProxyBody> {
    match r {
        Ok(resp) => resp,
        Err(e) => {
            let body =
                json!({"slug": e.slug(), "title": e.title(), "status": e.status().as_u16(), "detail": e.to_string()});
            let mut resp = hyper::Response::new(
                Full::new(Bytes::from(body.to_string())).map_err(|never| match never {}).boxed_unsync(),
            );
            *resp.status_mut() = e.status();
            resp.headers_mut().insert("x-problem-slug", HeaderValue::from_static(e.slug()));
            resp.headers_mut().insert("content-type", HeaderValue::from_static("application/problem+json"));
            resp
        }
    }
}

// ---- clients -----------------------------------------------------------------------

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(20)).build().unwrap()
}

pub fn forward_client(proxy: SocketAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .proxy(reqwest::Proxy::http(format!("http://{proxy}")).unwrap())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// Sends raw bytes on a new connection and reads the answer until the server closes or
/// `Connection: close` answers have been read (for requests reqwest would not send as written).
pub async fn raw(addr: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Waits until `f` holds, polling every 5 ms, for at most `within`.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if f().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out after {within:?} waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub async fn json_of(resp: reqwest::Response) -> Value {
    let status = resp.status();
    let text = resp.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"))
}
