//! One request seen by the data plane: the record analyzers learn from.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::uri::PathAndQuery;

use crate::name::Urn;

/// What the data plane saw of one request to a view.
///
/// Names are shared (`Arc`) with the route table, so recording an observation
/// does not copy them.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// When the request arrived.
    pub time: SystemTime,
    /// The unit the view belongs to.
    pub unit: Arc<Urn>,
    /// The view requested (full name).
    pub view: Arc<Urn>,
    /// Which resource of the view was requested, relative to the view's link: the path
    /// below the link plus the client's query, always starting with `/`. For a view with
    /// link `/blocks`, `/data/urn:x:y/blocks/district/3?year=2017` gives
    /// `/district/3?year=2017`; the view's own resource (with or without a trailing
    /// slash, no query) is `/`. `None` when not known (e.g. an observation posted by an
    /// older stand-alone proxy). `PathAndQuery` is `Bytes`-backed: cloning it does not
    /// copy, and the canonical `/` is static.
    pub variant: Option<PathAndQuery>,
    /// The instance that served it; `None` when no instance could be chosen.
    pub instance: Option<Arc<Urn>>,
    /// The site the client said it is at (`x-civitas-client-site`), when known.
    pub client_site: Option<Arc<Urn>>,
    /// The client's address.
    pub client_addr: IpAddr,
    /// HTTP status answered to the client.
    pub status: u16,
    /// Request body bytes received from the client.
    pub bytes_in: u64,
    /// Response body bytes sent to the client.
    pub bytes_out: u64,
    /// From arrival to the first response byte from upstream.
    pub time_to_first_byte: Duration,
    /// From arrival to the end of the response body.
    pub total_time: Duration,
}
