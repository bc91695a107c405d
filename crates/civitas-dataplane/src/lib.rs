//! Civitas data plane: the paper's SDD Proxy.
//!
//! A library the node mounts on its listener (and `civitas proxy` runs stand-alone). It
//! sends each data request to an instance of the view asked for and reports what it saw:
//!
//! - **reverse mode**: `GET /data/{unit}/{view}/{rest...}?query` goes to the chosen
//!   instance's endpoint joined with the view's link, then `rest`, then the query;
//! - **forward mode** (transparent, as in the paper): legacy clients set `HTTP_PROXY` and
//!   keep their URLs; an absolute-form request is matched against the endpoints of the
//!   catalog's instances to find unit and view, then routed the same way. Hosts that match
//!   no instance are refused with 403 — this is not an open proxy. `CONNECT` gets 405.
//! - a [`RouteTable`] built from catalog documents, swapped atomically through a
//!   [`RouteHandle`] by [`follow_catalog`] (in a node) or [`follow_remote`] (stand-alone);
//!   a [`RoutePolicy`] per view chooses among instances (origin, nearest, fresh only);
//! - one [`civitas_model::Observation`] per request to a known view, on a bounded channel
//!   ([`observation_channel`]) that drops and counts when full;
//! - per-view Prometheus metrics with a bounded number of label sets.
//!
//! - reads of a view being copied to this node wait for its replica when the copy should
//!   finish before the origin answers, within a bound, then fall back to the origin
//!   (`hold.rs`; the node's relocation fills the [`CopyBoard`]);
//! - a validation cache (`revalidate.rs`): the last answer to a plain `GET` with a strong
//!   `ETag` is kept, the next identical request goes upstream with `If-None-Match`, and a
//!   `304` is answered from the kept body — the upstream still decides every request.
//!   While the SDD is inactive nothing is looked up, but the latest answer is still kept
//!   (at most once a second per request), so that a copy of a view to this node can ask
//!   its source whether that answer holds instead of fetching it again ([`KeptAnswers`]).
//!
//! What it is not: not an open proxy, not a TLS terminator or HTTPS tunnel (no `CONNECT`),
//! not a cache that answers without asking the upstream, and not an HTTP server — the node owns the
//! listener and turns a [`ProxyError`] into `application/problem+json`. It never writes to
//! the catalog: data flows catalog → route table, and proxy → observations, one way.
//!
//! Invariants:
//! - the request path takes no lock: one `ArcSwap` load of the route table, hash-map
//!   look-ups, atomic counters; a request keeps the table it started with, so a swap never
//!   fails a request in flight;
//! - bodies stream both ways, never buffered (a copy of a cacheable body is kept as it
//!   passes, up to the cache's entry limit); memory per request is bounded;
//! - hop-by-hop headers never cross the proxy; `Via` and `X-Forwarded-For` always do;
//! - exactly one observation per request whose unit and view were identified, recorded
//!   when the response body ends (or is dropped), never blocking the request;
//! - the number of metric label sets is bounded by `max_metric_views`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod body;
mod config;
mod error;
mod follow;
mod hold;
mod metrics;
mod observe;
mod proxy;
mod revalidate;
mod routes;
pub mod tls;

pub use config::{DataPlaneConfig, RoutePolicy};
pub use error::ProxyError;
pub use follow::{Documents, MergedDocuments, RemoteAccess, RouteMerger, RouteSink, follow_catalog, follow_remote};
pub use hold::{CopyBoard, CopyTicket, REGISTERED_GRACE, hold_budget};
pub use metrics::UNROUTED_VIEW_LABEL;
pub use observe::{ObservationSender, observation_channel};
pub use proxy::{
    CLIENT_SITE_HEADER, DataPlane, GuardRefusal, INSTANCE_HEADER, ROUTE_HEADER, ReadGuard, has_dot_segment,
    percent_decode, variant,
};
pub use revalidate::{KeptAnswer, KeptAnswers};
pub use routes::{RouteHandle, RouteTable};

/// The error type of proxied bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of a proxied response: the upstream's body, streamed (an `UnsyncBoxBody`:
/// `Send` but not `Sync`, which is all hyper and axum need).
pub type ProxyBody = http_body_util::combinators::UnsyncBoxBody<bytes::Bytes, BoxError>;
