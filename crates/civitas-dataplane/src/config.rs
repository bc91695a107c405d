//! How the data plane chooses instances and how long it waits for them.

use std::collections::BTreeMap;
use std::time::Duration;

use civitas_model::Urn;

/// How the data plane chooses among the instances that serve a view.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RoutePolicy {
    /// `origin`: only instances whose role is `origin` (round robin among several).
    #[default]
    Origin,
    /// `nearest`: the instance whose site has the lowest `SiteLink` latency from the node's
    /// site (same site = 0; unknown distance comes last).
    Nearest,
    /// `fresh-only`: origins, plus replicas whose `metainformation.freshnessLagSeconds` is at
    /// most the view's update period (`updateFrequency` period / times); nearest first.
    FreshOnly,
}

impl RoutePolicy {
    /// The policy's configuration text (`origin`, `nearest`, `fresh-only`).
    pub fn as_str(self) -> &'static str {
        match self {
            RoutePolicy::Origin => "origin",
            RoutePolicy::Nearest => "nearest",
            RoutePolicy::FreshOnly => "fresh-only",
        }
    }
}

/// Settings of a [`crate::DataPlane`]. Every field has a default ([`Default`]).
#[derive(Clone, Debug)]
pub struct DataPlaneConfig {
    /// This node's site, from which `nearest` measures distances. Default: none (every
    /// distance is unknown, so `nearest` round-robins among all instances).
    pub node_site: Option<Urn>,
    /// Policy of views without an entry in `view_policies`. Default: `origin`.
    pub default_policy: RoutePolicy,
    /// Policy per view, keyed by the view's full URN.
    pub view_policies: BTreeMap<Urn, RoutePolicy>,
    /// Longest wait for a TCP connection to an upstream. Default 2 s. A unit overrides it
    /// with `metainformation.proxyTimeouts.connectMs`.
    pub connect_timeout: Duration,
    /// Longest wait, once the request is sent, for the upstream's response head. Default
    /// 30 s; `proxyTimeouts.firstByteMs` overrides it.
    pub first_byte_timeout: Duration,
    /// Longest gap between two body chunks, both ways. Default 60 s; `proxyTimeouts.idleMs`
    /// overrides it.
    pub idle_timeout: Duration,
    /// Idle keep-alive connections kept per upstream host. Default 256.
    pub pool_max_idle_per_host: usize,
    /// How long an idle pooled connection is kept. Default 90 s.
    pub pool_idle_timeout: Duration,
    /// Most views with their own metric label sets; when a new view needs room the least
    /// recently used one is evicted. Default 1000.
    pub max_metric_views: usize,
    /// Pseudonym in the `Via` header this proxy adds (`Via: 1.1 civitas`). Default `civitas`.
    pub via: String,
    /// TLS for `https` upstreams (replicas at nodes serving HTTPS, origins behind TLS).
    /// Default: the system's root certificates ([`crate::tls::client_config`]).
    pub upstream_tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// Bytes of bodies the validation cache may hold (`0` switches it off): the last
    /// answer to a plain `GET` with a strong `ETag`, revalidated upstream with
    /// `If-None-Match` on every request while revalidation is on, so that an unchanged
    /// answer crosses as a `304`; kept (not used) while it is off, for [`crate::KeptAnswers`]
    /// (see `revalidate.rs`). Default 64 MiB.
    pub validation_cache_bytes: usize,
    /// Largest body the validation cache keeps. Default 4 MiB.
    pub validation_cache_max_entry_bytes: usize,
    /// Longest a read of a view being copied to this node waits for the replica
    /// ([`crate::hold_budget`]; `0` switches holding off). Default 10 s.
    pub copy_hold_max: Duration,
}

impl Default for DataPlaneConfig {
    fn default() -> Self {
        DataPlaneConfig {
            node_site: None,
            default_policy: RoutePolicy::Origin,
            view_policies: BTreeMap::new(),
            connect_timeout: Duration::from_secs(2),
            first_byte_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            pool_max_idle_per_host: 256,
            pool_idle_timeout: Duration::from_secs(90),
            max_metric_views: 1000,
            via: "civitas".to_string(),
            upstream_tls: None,
            validation_cache_bytes: 64 << 20,
            validation_cache_max_entry_bytes: 4 << 20,
            copy_hold_max: Duration::from_secs(10),
        }
    }
}
