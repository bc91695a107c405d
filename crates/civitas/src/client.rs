//! The HTTP client of a node's API: builds URLs, sends requests, and turns every
//! non-2xx answer into a [`Problem`] (RFC 9457) shown to people as the server wrote it.

use std::fmt;

use anyhow::{Context, bail};
use reqwest::{Method, Response, Url};
use serde::Deserialize;
use serde_json::Value;

/// Talks to one node.
pub struct Client {
    /// `--server` as the user wrote it, for messages.
    server: String,
    base: Url,
    http: reqwest::Client,
}

/// Why a request did not get a successful answer.
#[derive(Debug)]
pub enum ClientError {
    /// No connection could be made (refused, unknown host, timed out).
    Unreachable {
        /// The `--server` URL.
        server: String,
        /// The lowest-level reason, e.g. `Connection refused (os error 111)`.
        reason: String,
    },
    /// The node answered with a non-2xx status.
    Problem(Problem),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Unreachable { server, reason } => write!(
                f,
                "cannot reach the Civitas node at {server}: {reason} \
                 (is `civitas serve` running? set --server or CIVITAS_SERVER)"
            ),
            ClientError::Problem(p) => p.fmt(f),
        }
    }
}

impl std::error::Error for ClientError {}

/// An `application/problem+json` answer.
#[derive(Debug, Clone, Deserialize)]
pub struct Problem {
    /// Short summary (`Invalid document`).
    #[serde(default)]
    pub title: Option<String>,
    /// HTTP status.
    #[serde(default)]
    pub status: u16,
    /// Explanation of this occurrence.
    #[serde(default)]
    pub detail: Option<String>,
    /// One entry per offending field or parameter.
    #[serde(default)]
    pub errors: Vec<ProblemEntry>,
    /// Documents that still refer to the one being deleted (`still-referenced`).
    #[serde(default)]
    pub referrers: Vec<Value>,
}

/// One offending field (`pointer`) or parameter (`parameter`).
#[derive(Debug, Clone, Deserialize)]
pub struct ProblemEntry {
    /// RFC 6901 pointer into the request body.
    #[serde(default)]
    pub pointer: Option<String>,
    /// Name of the offending query or path parameter.
    #[serde(default)]
    pub parameter: Option<String>,
    /// What is wrong.
    #[serde(default)]
    pub detail: String,
    /// Where the error is in the user's own files, when the caller could tell (see `apply`).
    #[serde(skip)]
    pub located: Option<String>,
}

impl ProblemEntry {
    fn place(&self) -> &str {
        self.located.as_deref().or(self.pointer.as_deref()).or(self.parameter.as_deref()).unwrap_or("")
    }
}

impl fmt::Display for Problem {
    /// `<title> (<status>): <detail>`, then one indented line per entry and per referrer.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.title.as_deref().unwrap_or("error"), self.status)?;
        if let Some(d) = self.detail.as_deref().filter(|d| !d.is_empty()) {
            write!(f, ": {d}")?;
        }
        for e in &self.errors {
            let place = e.place();
            if place.is_empty() {
                write!(f, "\n  {}", e.detail)?;
            } else {
                write!(f, "\n  {place}: {}", e.detail)?;
            }
        }
        for r in &self.referrers {
            write!(f, "\n  referenced by {}", describe_referrer(r))?;
        }
        Ok(())
    }
}

/// `DataInstance urn:…` for `{"type","name"}` objects, the text for strings, JSON otherwise.
fn describe_referrer(r: &Value) -> String {
    match r {
        Value::String(s) => s.clone(),
        Value::Object(o) => match (o.get("type").and_then(Value::as_str), o.get("name").and_then(Value::as_str)) {
            (Some(t), Some(n)) => format!("{t} {n}"),
            (None, Some(n)) => n.to_string(),
            _ => r.to_string(),
        },
        other => other.to_string(),
    }
}

impl Problem {
    /// A problem for an answer whose body is not problem JSON (a proxy's HTML page, say).
    fn from_plain(status: reqwest::StatusCode, body: &str) -> Problem {
        let mut detail: String = body.trim().chars().take(500).collect();
        if detail.is_empty() {
            detail = "the node sent no explanation".into();
        }
        Problem {
            title: Some(status.canonical_reason().unwrap_or("error").to_string()),
            status: status.as_u16(),
            detail: Some(detail),
            errors: Vec::new(),
            referrers: Vec::new(),
        }
    }
}

impl Client {
    /// A client for the node at `server` (`http://127.0.0.1:7070`, possibly with a path
    /// prefix), sending `Authorization: Bearer <token>` with every request when given one
    /// (a node with `[security] enabled`).
    pub fn with_token(server: &str, token: Option<&str>) -> anyhow::Result<Client> {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(t) = token.map(str::trim).filter(|t| !t.is_empty()) {
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {t}"))
                .context("--token is not a valid token (only visible ASCII)")?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let base = Url::parse(server).with_context(|| format!("--server {server:?} is not a URL"))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            bail!("--server {server:?} must be an http:// URL such as http://127.0.0.1:7070");
        }
        // Never through HTTP_PROXY: users of the transparent data plane set it to a node,
        // and the CLI talks to its node directly.
        let http = reqwest::Client::builder()
            .no_proxy()
            .default_headers(headers)
            .connect_timeout(std::time::Duration::from_secs(10))
            .user_agent(concat!("civitas-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot set up the HTTP client")?;
        Ok(Client { server: server.to_string(), base, http })
    }

    /// The URL of `/api/v1/<segments…>`; each segment is percent-encoded as one path segment,
    /// so a name can never add, remove or escape a path segment.
    pub fn api_url(&self, segments: &[&str]) -> anyhow::Result<Url> {
        for s in segments {
            if s.is_empty() || *s == "." || *s == ".." {
                bail!("{s:?} is not a name: names look like urn:buildings:vienna");
            }
        }
        let mut url = self.base.clone();
        url.set_query(None);
        url.set_fragment(None);
        url.path_segments_mut()
            .map_err(|()| anyhow::anyhow!("--server {} cannot be a base URL", self.base))?
            .pop_if_empty()
            .extend(["api", "v1"])
            .extend(segments);
        Ok(url)
    }

    /// `GET url` and the JSON body of a 2xx answer.
    pub async fn get_json(&self, url: Url) -> anyhow::Result<Value> {
        let resp = self.send(self.http.get(url.clone())).await?;
        read_json(resp, &url).await
    }

    /// Every item of a list answer (`{"items": […], "next": cursor}`), following `next`
    /// cursors with `after=` until the last page.
    pub async fn list_all(&self, url: Url) -> anyhow::Result<Vec<Value>> {
        let mut items = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut page_url = url.clone();
            if let Some(a) = &after {
                page_url.query_pairs_mut().append_pair("after", a);
            }
            let page = self.get_json(page_url).await?;
            match page.get("items") {
                Some(Value::Array(page_items)) => items.extend(page_items.iter().cloned()),
                _ => bail!("the answer of {url} is not a list: it has no `items` array"),
            }
            let next = match page.get("next") {
                None | Some(Value::Null) => return Ok(items),
                Some(Value::String(n)) => n.clone(),
                Some(other) => other.to_string(),
            };
            if after.as_deref() == Some(next.as_str()) {
                bail!("the node answered the same `next` cursor twice for {url}");
            }
            after = Some(next);
        }
    }

    /// Sends `method url` with an optional JSON body and returns the JSON body of a 2xx answer.
    pub async fn send_json(&self, method: Method, url: Url, body: Option<&Value>) -> anyhow::Result<Value> {
        let mut req = self.http.request(method, url.clone());
        if let Some(b) = body {
            // Sent as bytes with an explicit type: `application/json` is what the API expects.
            req = req.header(reqwest::header::CONTENT_TYPE, "application/json").body(serde_json::to_vec(b)?);
        }
        let resp = self.send(req).await?;
        read_json(resp, &url).await
    }

    /// `GET url` for a streamed answer (the watch stream); the caller reads the body.
    pub async fn get_stream(&self, url: Url) -> anyhow::Result<Response> {
        self.send(self.http.get(url)).await
    }

    /// Sends a request: a connection failure becomes [`ClientError::Unreachable`] and a
    /// non-2xx answer [`ClientError::Problem`].
    async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<Response> {
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) if e.is_connect() || e.is_timeout() => {
                return Err(ClientError::Unreachable { server: self.server.clone(), reason: root_cause(&e) }.into());
            }
            Err(e) => {
                let url = e.url().map(Url::to_string).unwrap_or_else(|| self.base.to_string());
                bail!("request to {url} failed: {}", root_cause(&e));
            }
        };
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body = resp.text().await.unwrap_or_default();
        let problem = match serde_json::from_str::<Problem>(&body) {
            Ok(mut p) if p.title.is_some() || p.detail.is_some() => {
                if p.status == 0 {
                    p.status = status.as_u16();
                }
                p
            }
            _ => Problem::from_plain(status, &body),
        };
        Err(ClientError::Problem(problem).into())
    }
}

async fn read_json(resp: Response, url: &Url) -> anyhow::Result<Value> {
    let bytes = resp.bytes().await.with_context(|| format!("reading the answer of {url}"))?;
    serde_json::from_slice(&bytes).with_context(|| format!("the answer of {url} is not JSON"))
}

/// The innermost error's message: `Connection refused (os error 111)` rather than
/// reqwest's `error sending request for url (…)`.
fn root_cause(e: &reqwest::Error) -> String {
    let mut last: &dyn std::error::Error = e;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stay_one_path_segment() {
        let c = Client::with_token("http://127.0.0.1:7070", None).unwrap();
        let u = c.api_url(&["units", "urn:a:b"]).unwrap();
        assert_eq!(u.as_str(), "http://127.0.0.1:7070/api/v1/units/urn:a:b");
        let u = c.api_url(&["units", "urn:a/../b?x=1#f %"]).unwrap();
        assert_eq!(u.as_str(), "http://127.0.0.1:7070/api/v1/units/urn:a%2F..%2Fb%3Fx=1%23f%20%25");
        let u = c.api_url(&["units", "a\\b"]).unwrap();
        assert_eq!(u.path_segments().unwrap().count(), 4, "{u}");
        assert!(c.api_url(&["units", ".."]).is_err());
        assert!(c.api_url(&["units", ""]).is_err());
    }

    #[test]
    fn a_server_path_prefix_is_kept() {
        let c = Client::with_token("http://h:1/civitas/", None).unwrap();
        assert_eq!(c.api_url(&["units"]).unwrap().as_str(), "http://h:1/civitas/api/v1/units");
        assert!(Client::with_token("ftp://h", None).is_err());
        assert!(Client::with_token("127.0.0.1:7070", None).is_err());
    }

    #[test]
    fn problems_render_as_the_server_wrote_them() {
        let p: Problem = serde_json::from_value(serde_json::json!({
            "type": "https://civitas.city/problems/still-referenced", "title": "Still referenced", "status": 409,
            "detail": "urn:a:b is referred to", "errors": [{"pointer": "/version", "detail": "older"},
            {"parameter": "limit", "detail": "too big"}],
            "referrers": [{"type": "DataInstance", "name": "urn:a:b:i"}]
        }))
        .unwrap();
        assert_eq!(
            p.to_string(),
            "Still referenced (409): urn:a:b is referred to\n  /version: older\n  limit: too big\n  \
             referenced by DataInstance urn:a:b:i"
        );
    }
}
