//! Why the data plane could not proxy a request, with the HTTP status it maps to.
//!
//! The node turns a [`ProxyError`] into an `application/problem+json` document
//! (`type` = `https://civitas.city/problems/{slug}`, `title`, `status`, `detail`); this
//! crate never builds problem documents itself.

use http::StatusCode;

/// A request the data plane refused or could not complete.
///
/// Its `Display` is the detail: it names the unit, view, instance and endpoint involved.
#[derive(Debug, thiserror::Error)]
#[error("{detail}")]
pub struct ProxyError {
    kind: ErrorKind,
    detail: String,
    challenge: Option<http::HeaderValue>,
}

/// The kinds of [`ProxyError`]; each has one status, slug and title.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    /// 400: a path the proxy will not forward (e.g. `..` segments).
    BadRequest,
    /// 403: forward mode, a host no instance of the catalog lives at.
    NotAnOpenProxy,
    /// 404: unknown unit or view, or a known host with no view at that path.
    NotFound,
    /// 401: the read guard wants (other) credentials.
    Unauthorized,
    /// 403: the read guard refuses this caller the view.
    Forbidden,
    /// 503: the read guard could not decide (an identity provider is down).
    GuardUnavailable,
    /// 405: CONNECT (no HTTPS tunnelling).
    MethodNotAllowed,
    /// 502: the upstream could not be connected to.
    UpstreamUnreachable,
    /// 502: any other upstream failure before the response head.
    BadGateway,
    /// 503: no instance the route policy accepts has an endpoint.
    NoInstance,
    /// 504: no response head from upstream within the first-byte timeout.
    UpstreamTimeout,
}

impl ErrorKind {
    fn status(self) -> StatusCode {
        match self {
            ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            ErrorKind::NotAnOpenProxy => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::GuardUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorKind::UpstreamUnreachable | ErrorKind::BadGateway => StatusCode::BAD_GATEWAY,
            ErrorKind::NoInstance => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    fn slug(self) -> &'static str {
        match self {
            ErrorKind::BadRequest => "bad-request",
            ErrorKind::NotAnOpenProxy => "not-an-open-proxy",
            ErrorKind::NotFound => "not-found",
            ErrorKind::Unauthorized => "unauthenticated",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::GuardUnavailable => "identity-provider-unavailable",
            ErrorKind::MethodNotAllowed => "method-not-allowed",
            ErrorKind::UpstreamUnreachable => "upstream-unreachable",
            ErrorKind::BadGateway => "bad-gateway",
            ErrorKind::NoInstance => "no-instance",
            ErrorKind::UpstreamTimeout => "upstream-timeout",
        }
    }

    fn title(self) -> &'static str {
        match self {
            ErrorKind::BadRequest => "Bad request",
            ErrorKind::NotAnOpenProxy => "Not an open proxy",
            ErrorKind::NotFound => "Not found",
            ErrorKind::Unauthorized => "Not authenticated",
            ErrorKind::Forbidden => "Forbidden",
            ErrorKind::GuardUnavailable => "Identity provider unavailable",
            ErrorKind::MethodNotAllowed => "Method not allowed",
            ErrorKind::UpstreamUnreachable => "Upstream unreachable",
            ErrorKind::BadGateway => "Bad gateway",
            ErrorKind::NoInstance => "No instance available",
            ErrorKind::UpstreamTimeout => "Upstream timeout",
        }
    }
}

impl ProxyError {
    pub(crate) fn new(kind: ErrorKind, detail: impl Into<String>) -> ProxyError {
        ProxyError { kind, detail: detail.into(), challenge: None }
    }

    /// The `WWW-Authenticate` value to answer a 401 with.
    pub fn challenge(&self) -> Option<&http::HeaderValue> {
        self.challenge.as_ref()
    }

    /// The HTTP status to answer with.
    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }

    /// A short stable identifier (`not-found`, `no-instance`, `upstream-timeout`…), the last
    /// segment of the problem `type`.
    pub fn slug(&self) -> &'static str {
        self.kind.slug()
    }

    /// A short human title of the kind of problem.
    pub fn title(&self) -> &'static str {
        self.kind.title()
    }

    /// What happened, naming the unit, view, instance and endpoint involved (same as `Display`).
    pub fn detail(&self) -> &str {
        &self.detail
    }

    pub(crate) fn set_challenge(&mut self, challenge: Option<http::HeaderValue>) {
        self.challenge = challenge;
    }

    pub(crate) fn kind(&self) -> ErrorKind {
        self.kind
    }
}
