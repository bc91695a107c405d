//! A real HTTP origin for the tests (axum on 127.0.0.1:0) and small helpers.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::Response;
use bytes::Bytes;
use tokio::io::AsyncReadExt as _;

/// Last-Modified the origin sends for its variants.
pub const LAST_MODIFIED: &str = "Tue, 03 Nov 2026 10:00:00 GMT";

/// What `/rev` currently serves, and what the last request to it asked.
#[derive(Debug, Clone)]
pub struct Revisioned {
    pub etag: String,
    pub last_modified: String,
    pub body: Vec<u8>,
    pub fail: bool,
    pub last_if_none_match: Option<String>,
    pub last_if_modified_since: Option<String>,
}

#[derive(Clone)]
struct OriginState {
    revisioned: Arc<Mutex<Revisioned>>,
}

/// The origin of the tests.
pub struct Origin {
    pub addr: SocketAddr,
    pub revisioned: Arc<Mutex<Revisioned>>,
}

impl Origin {
    /// `http://addr` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// Starts the origin on a free port of 127.0.0.1.
pub async fn start_origin() -> Origin {
    let revisioned = Arc::new(Mutex::new(Revisioned {
        etag: "\"rev-1\"".into(),
        last_modified: LAST_MODIFIED.into(),
        body: b"first revision".to_vec(),
        fail: false,
        last_if_none_match: None,
        last_if_modified_since: None,
    }));
    let app = axum::Router::new().fallback(origin).with_state(OriginState { revisioned: revisioned.clone() });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Origin { addr, revisioned }
}

/// The body `/view` answers for a query.
pub fn view_body(query: &str) -> Vec<u8> {
    // Binary and text mixed, length depending on the query, so byte-for-byte checks bite.
    let mut body = format!("view body for {query:?}\n").into_bytes();
    body.extend((0..(query.len() * 997 % 70_000)).map(|i| (i * 31 % 251) as u8));
    body
}

async fn origin(State(state): State<OriginState>, uri: Uri, headers: HeaderMap) -> Response {
    let query = uri.query().unwrap_or("").to_owned();
    match uri.path() {
        "/api/view" => {
            let status =
                if query.contains("accepted") { StatusCode::NON_AUTHORITATIVE_INFORMATION } else { StatusCode::OK };
            let content_type = if query.contains("csv") { "text/csv; charset=utf-8" } else { "application/json" };
            Response::builder()
                .status(status)
                .header(header::CONTENT_TYPE, content_type)
                .header(header::ETAG, format!("\"etag-{}\"", query.len()))
                .header(header::LAST_MODIFIED, LAST_MODIFIED)
                .body(Body::from(view_body(&query)))
                .unwrap()
        }
        "/api/fail" => Response::builder().status(StatusCode::INTERNAL_SERVER_ERROR).body(Body::from("boom")).unwrap(),
        // Announces 1 MiB, sends half, then breaks the connection.
        "/api/cut" => {
            let half = Bytes::from(vec![7u8; 512 * 1024]);
            let chunks = futures::stream::iter(vec![
                Ok::<Bytes, std::io::Error>(half),
                Err(std::io::Error::other("origin dies halfway")),
            ]);
            Response::builder().header(header::CONTENT_LENGTH, 1024 * 1024).body(Body::from_stream(chunks)).unwrap()
        }
        // Never answers: a copy waiting on it can only be interrupted.
        "/api/hang" => futures::future::pending().await,
        "/api/rev" => {
            let mut rev = state.revisioned.lock().unwrap();
            rev.last_if_none_match = headers.get(header::IF_NONE_MATCH).map(|v| v.to_str().unwrap().to_owned());
            rev.last_if_modified_since = headers.get(header::IF_MODIFIED_SINCE).map(|v| v.to_str().unwrap().to_owned());
            if rev.fail {
                return Response::builder().status(StatusCode::SERVICE_UNAVAILABLE).body(Body::empty()).unwrap();
            }
            let status = if rev.last_if_none_match.as_deref() == Some(rev.etag.as_str()) {
                StatusCode::NOT_MODIFIED
            } else {
                StatusCode::OK
            };
            let body = if status == StatusCode::OK { Body::from(rev.body.clone()) } else { Body::empty() };
            Response::builder()
                .status(status)
                .header(header::CONTENT_TYPE, "text/plain")
                .header(header::ETAG, rev.etag.clone())
                .header(header::LAST_MODIFIED, rev.last_modified.clone())
                .body(body)
                .unwrap()
        }
        // Anything else echoes what arrived: used by the path traversal test.
        _ => Response::builder()
            .header(header::CONTENT_TYPE, "text/plain")
            .body(Body::from(format!("echo {uri}")))
            .unwrap(),
    }
}

/// Reads a stored body to the end.
pub async fn read_body(mut file: tokio::fs::File) -> Vec<u8> {
    let mut out = Vec::new();
    file.read_to_end(&mut out).await.unwrap();
    out
}

/// Every file below `dir`, relative to it, sorted.
pub fn files_below(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                out.push(path.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Waits on a `watch` channel until `done` holds, with a deadline.
pub async fn wait_for<T: Clone>(rx: &mut tokio::sync::watch::Receiver<T>, within: Duration, done: impl Fn(&T) -> bool) {
    let deadline = Instant::now() + within;
    tokio::time::timeout_at(deadline.into(), rx.wait_for(|v| done(v)))
        .await
        .expect("condition not reached before the deadline")
        .expect("progress channel open");
}
