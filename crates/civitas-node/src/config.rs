//! Node configuration: one serde tree with a default for every key, read from a TOML
//! file, then `CIVITAS_<SECTION>_<KEY>` environment variables, then command-line flags.
//! Unknown keys are errors, never silently ignored.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Prefix of configuration environment variables.
pub const ENV_PREFIX: &str = "CIVITAS_";

/// Everything a node can be configured with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Who this node is.
    pub node: NodeConfig,
    /// The async runtime.
    pub runtime: RuntimeConfig,
    /// The HTTP listener.
    pub http: HttpConfig,
    /// Where the node keeps its state.
    pub storage: StorageConfig,
    /// The catalog.
    pub catalog: CatalogConfig,
    /// The data plane (SDD proxy).
    pub dataplane: DataPlaneSettings,
    /// Usage analysis and triggers (SDD).
    pub sdd: SddSettings,
    /// Logging.
    pub log: LogConfig,
    /// The ledger's witnesses: which peer logs this node cosigns, which peers cosign its own.
    pub ledger: LedgerSettings,
    /// The migration manager: when a view moves next to its consumers.
    pub migration: MigrationSettings,
    /// Replicas at this node: copying, serving and keeping them fresh.
    pub replicas: ReplicaSettings,
    /// Who may see, read and move what (see `docs/security.md`). File only for its tables.
    pub security: civitas_security::SecurityConfig,
    /// Databases of SQL units (`[sql.connections.NAME]`, see `docs/sql.md`). File only.
    pub sql: civitas_sql::SqlConfig,
}

/// `[migration]`: the migration manager's decisions and cost model (see `docs/migration.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MigrationSettings {
    /// Whether this node acts on migration candidates at all (they are still logged). Default true.
    pub enabled: bool,
    /// A plan moves only when its benefit exceeds this many times its cost (≥ 1). Default 1.5.
    pub hysteresis_factor: f64,
    /// After a migration of a view is decided, further candidates for it wait this long. Default 600 s.
    pub cooldown_seconds: f64,
    /// A replica stays at least this long before it may move again. Default 3,600 s.
    pub min_residence_seconds: f64,
    /// A plan waiting for a person expires after this long. Default 86,400 s.
    pub escalation_ttl_seconds: f64,
    /// Most plans waiting for a person. Default 100.
    pub max_pending: usize,
    /// Migration events kept (persisted in the data dir). Default 1,000.
    pub max_events: usize,
    /// What one millisecond saved on one request is worth, in cost units. Default 1e-6.
    pub value_per_ms: f64,
    /// One-way latencies a request pays (there and back). Default 2.
    pub round_trip_factor: f64,
    /// Smaller latency gains count as none. Default 10 ms.
    pub min_latency_gain_ms: f64,
    /// The one-off transfer cost is spread over this time. Default 24 h.
    pub amortization_hours: f64,
    /// Egress price when neither the link nor the origin site names one. Default 0.09 per GB.
    pub default_egress_price_per_gb: f64,
    /// Storage price when the target site names none. Default 0.023 per GB-month.
    pub default_storage_price_per_gb_month: f64,
    /// Bandwidth when the origin-to-target link names none. Default 100 Mbit/s.
    pub default_bandwidth_mbps: f64,
    /// Share of a view rewritten per update when its update frequency names none. Default 100 %.
    pub default_update_fraction_percent: f64,
    /// Samples at which the confidence's evidence part reaches 0.5. Default 50.
    pub evidence_half_samples: f64,
}

impl Default for MigrationSettings {
    fn default() -> Self {
        let cost = civitas_placement::migration::CostModel::default();
        let decisions = civitas_placement::migration::MigrationConfig::default();
        MigrationSettings {
            enabled: true,
            hysteresis_factor: decisions.hysteresis_factor,
            cooldown_seconds: decisions.cooldown.as_secs_f64(),
            min_residence_seconds: decisions.min_residence.as_secs_f64(),
            escalation_ttl_seconds: decisions.escalation_ttl.as_secs_f64(),
            max_pending: decisions.max_pending,
            max_events: decisions.max_events,
            value_per_ms: cost.value_per_ms,
            round_trip_factor: cost.round_trip_factor,
            min_latency_gain_ms: cost.min_latency_gain_ms,
            amortization_hours: cost.amortization_hours,
            default_egress_price_per_gb: cost.default_egress_price_per_gb,
            default_storage_price_per_gb_month: cost.default_storage_price_per_gb_month,
            default_bandwidth_mbps: cost.default_bandwidth_mbps,
            default_update_fraction_percent: cost.default_update_fraction_percent,
            evidence_half_samples: civitas_placement::migration::SnapshotStrategyModel::default().evidence_half_samples,
        }
    }
}

impl MigrationSettings {
    /// The decision settings; the error names the key.
    pub fn decisions(&self) -> Result<civitas_placement::migration::MigrationConfig, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid { origin: None, message };
        let secs = |key: &str, v: f64| {
            std::time::Duration::try_from_secs_f64(v)
                .map_err(|_| invalid(format!("migration.{key} must be a number of seconds ≥ 0, found {v}")))
        };
        let config = civitas_placement::migration::MigrationConfig {
            hysteresis_factor: self.hysteresis_factor,
            cooldown: secs("cooldown_seconds", self.cooldown_seconds)?,
            min_residence: secs("min_residence_seconds", self.min_residence_seconds)?,
            escalation_ttl: secs("escalation_ttl_seconds", self.escalation_ttl_seconds)?,
            max_pending: self.max_pending,
            max_events: self.max_events,
        };
        config.validate().map_err(|e| invalid(format!("migration.{e}")))?;
        Ok(config)
    }

    /// The `http-snapshot` planning model; the error names the key.
    pub fn snapshot_model(&self) -> Result<civitas_placement::migration::SnapshotStrategyModel, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid { origin: None, message };
        for (key, v) in [
            ("value_per_ms", self.value_per_ms),
            ("round_trip_factor", self.round_trip_factor),
            ("min_latency_gain_ms", self.min_latency_gain_ms),
            ("default_egress_price_per_gb", self.default_egress_price_per_gb),
            ("default_storage_price_per_gb_month", self.default_storage_price_per_gb_month),
            ("default_update_fraction_percent", self.default_update_fraction_percent),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(invalid(format!("migration.{key} must be a finite number ≥ 0, found {v}")));
            }
        }
        for (key, v) in [
            ("amortization_hours", self.amortization_hours),
            ("default_bandwidth_mbps", self.default_bandwidth_mbps),
            ("evidence_half_samples", self.evidence_half_samples),
        ] {
            if !v.is_finite() || v <= 0.0 {
                return Err(invalid(format!("migration.{key} must be a finite number > 0, found {v}")));
            }
        }
        Ok(civitas_placement::migration::SnapshotStrategyModel {
            cost: civitas_placement::migration::CostModel {
                value_per_ms: self.value_per_ms,
                round_trip_factor: self.round_trip_factor,
                min_latency_gain_ms: self.min_latency_gain_ms,
                amortization_hours: self.amortization_hours,
                default_egress_price_per_gb: self.default_egress_price_per_gb,
                default_storage_price_per_gb_month: self.default_storage_price_per_gb_month,
                default_bandwidth_mbps: self.default_bandwidth_mbps,
                default_update_fraction_percent: self.default_update_fraction_percent,
            },
            evidence_half_samples: self.evidence_half_samples,
        })
    }
}

/// `[replicas]`: copies of views held at this node (see `docs/replicas.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplicaSettings {
    /// Resources of one view fetched at once during a copy. Default 4.
    pub copy_concurrency: usize,
    /// Time allowed for one resource of a copy or a refresh (one chunk of an object copy),
    /// from request to last byte. Default 300 s.
    pub resource_timeout_seconds: u64,
    /// Bytes per ranged request of an object copy; each chunk is made durable before the
    /// next, so an interrupted copy resumes at most this much behind. Default 8 MiB.
    pub object_chunk_bytes: u64,
    /// How often a replica of a view without an `updateFrequency` is refreshed. Default 60 s.
    pub default_refresh_seconds: f64,
    /// A replica not validated against its origin within this many refresh periods is
    /// stale: the data plane sends its traffic to the origin until it catches up. Default 2.
    pub staleness_factor: f64,
    /// Per view (full URN): the command the `script` update strategy runs instead of
    /// the HTTP strategies, e.g. `{ "urn:x:y:v" = "rsync -a src/ $CIVITAS_REPLICA_DIR/" }`.
    /// Run with `sh -c`; see `docs/replicas.md` for its environment. Default empty. File only.
    pub update_scripts: std::collections::BTreeMap<String, String>,
    /// Time allowed for one run of an update script. Default 300 s.
    pub script_timeout_seconds: u64,
    /// How long a replica superseded by a full copy, or deleted by an operator, is kept
    /// for the reads already routed to it before its data is deleted. Default 30 s.
    pub retire_grace_seconds: u64,
    /// `[replicas.postgres]`: where SQL views (`sql:postgresql` units) are copied at this
    /// node, by the `postgres` strategy (see `docs/sql.md`, "Moving a SQL view").
    pub postgres: PostgresReplicaSettings,
}

/// `[replicas.postgres]`: this city's replica database for SQL views.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresReplicaSettings {
    /// The `[sql.connections]` entry SQL views are copied into (this city's replica
    /// database). Empty (the default): no SQL view moves to this node.
    pub connection: String,
    /// Per source connection reference (a unit's `metainformation.connection`): how the
    /// replica database's *server* reaches the origin database for logical replication
    /// (a libpq conninfo). Default: the source connection's URL. File only.
    pub publisher_conninfo: std::collections::BTreeMap<String, String>,
    /// Seconds between two lag checks of a streaming replica. Default 1.
    pub lag_check_seconds: f64,
}

impl Default for PostgresReplicaSettings {
    fn default() -> Self {
        PostgresReplicaSettings {
            connection: String::new(),
            publisher_conninfo: Default::default(),
            lag_check_seconds: 1.0,
        }
    }
}

impl Default for ReplicaSettings {
    fn default() -> Self {
        ReplicaSettings {
            copy_concurrency: 4,
            resource_timeout_seconds: 300,
            object_chunk_bytes: 8 * 1024 * 1024,
            default_refresh_seconds: 60.0,
            staleness_factor: 2.0,
            update_scripts: Default::default(),
            script_timeout_seconds: 300,
            retire_grace_seconds: 30,
            postgres: PostgresReplicaSettings::default(),
        }
    }
}

/// `[ledger]`: witnessing (see `docs/ledger.md`, "Witnesses between nodes").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LedgerSettings {
    /// Verifier key strings (`civitas ledger pubkey` of each peer, type 0x01) of the peer
    /// logs this node witnesses: its witness cosigns their checkpoints at
    /// `POST /api/v1/ledger/witness/cosign`, and refuses forks. Default empty (witnesses
    /// nothing). Two logs must not share an origin (give the nodes distinct `node.site`).
    pub witnessed_logs: Vec<String>,
    /// Peers asked to cosign this node's checkpoints. Default empty (nobody is asked).
    pub witnesses: Vec<WitnessPeer>,
    /// How often this node offers its newest checkpoint to `witnesses` (only when the tree
    /// grew or a witness has not cosigned it yet). Default 2,000 ms.
    pub cosign_interval_ms: u64,
}

impl Default for LedgerSettings {
    fn default() -> Self {
        LedgerSettings { witnessed_logs: Vec::new(), witnesses: Vec::new(), cosign_interval_ms: 2_000 }
    }
}

/// One entry of `ledger.witnesses`: `{ url = "http://peer:7070", key = "civitas.city/witness/…+…+…" }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessPeer {
    /// Base URL of the peer node (`http://host:port`; no TLS); its cosign endpoint is
    /// `<url>/api/v1/ledger/witness/cosign`.
    pub url: String,
    /// The peer's witness verifier key (type 0x04), as its `GET /api/v1/ledger/witness/pubkey`
    /// prints it. Cosignatures are checked against it.
    pub key: String,
}

impl LedgerSettings {
    /// The parsed `witnessed_logs` keys.
    pub fn witnessed_log_keys(&self) -> Result<Vec<civitas_ledger::NoteVerifier>, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid { origin: None, message };
        let mut keys: Vec<civitas_ledger::NoteVerifier> = Vec::new();
        for (i, raw) in self.witnessed_logs.iter().enumerate() {
            let key: civitas_ledger::NoteVerifier =
                raw.parse().map_err(|e| invalid(format!("ledger.witnessed_logs[{i}] ({raw:?}): {e}")))?;
            if key.sig_type() != civitas_ledger::note::SIG_TYPE_ED25519 {
                return Err(invalid(format!(
                    "ledger.witnessed_logs[{i}] ({raw:?}) is not a log key (type 0x01): use the peer's `civitas ledger pubkey`"
                )));
            }
            if let Some(j) = keys.iter().position(|k| k.name() == key.name()) {
                return Err(invalid(format!(
                    "ledger.witnessed_logs[{i}] and [{j}] are both logs named {:?}; a witness holds one key per origin (give the nodes distinct node.site)",
                    key.name()
                )));
            }
            keys.push(key);
        }
        Ok(keys)
    }

    /// The parsed `witnesses`: URL (without trailing `/`) and witness key.
    pub fn witness_peers(&self) -> Result<Vec<(String, civitas_ledger::NoteVerifier)>, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid { origin: None, message };
        let mut peers = Vec::new();
        for (i, peer) in self.witnesses.iter().enumerate() {
            let url = peer.url.trim().trim_end_matches('/');
            // The node's HTTP client is built without TLS: plain http:// only.
            let scheme_ok =
                url.strip_prefix("http://").is_some_and(|rest| !rest.is_empty() && !rest.contains(char::is_whitespace));
            if !scheme_ok {
                return Err(invalid(format!(
                    "ledger.witnesses[{i}].url: {:?} is not an http:// URL such as http://127.0.0.1:7070 (https is not supported)",
                    peer.url
                )));
            }
            let key: civitas_ledger::NoteVerifier =
                peer.key.parse().map_err(|e| invalid(format!("ledger.witnesses[{i}].key ({:?}): {e}", peer.key)))?;
            if key.sig_type() != civitas_ledger::note::SIG_TYPE_COSIGNATURE_V1 {
                return Err(invalid(format!(
                    "ledger.witnesses[{i}].key ({:?}) is not a witness key (type 0x04): use the peer's GET /api/v1/ledger/witness/pubkey",
                    peer.key
                )));
            }
            peers.push((url.to_string(), key));
        }
        Ok(peers)
    }
}

/// `[node]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// URN of the catalog `Site` this node runs at (used by the route policies and as the
    /// target of migrations). Empty: unknown (no migration targets this node). Default empty.
    pub site: String,
    /// The URL other nodes and proxies reach this node at (replica endpoints are
    /// registered under it). Empty: `http://` + `http.listen`. Default empty.
    pub url: String,
    /// A bearer token this node sends to its peers (federated lookups, following their
    /// catalogs, pulling replicas, registering them) when they run with `[security]
    /// enabled`: a token the peer created (`civitas token create`) with a role in its
    /// `security.admin_roles`. Empty: none. Default empty.
    pub peer_token: String,
    /// PEM file of CA certificates trusted, besides the system's roots, for `https` peers
    /// and `https` upstreams (replicas at nodes serving HTTPS). Empty: none. Default empty.
    pub peer_ca_file: String,
    /// Peer nodes asked, in order, for a unit or instance this node does not hold
    /// (federation, see `docs/api.md`). Default empty (nobody is asked). File only.
    pub peers: Vec<Peer>,
    /// How long a peer's answer (a document, or "nobody holds it" for a fifth of it,
    /// at least one second) is cached. Default 30 s.
    pub peer_cache_seconds: u64,
    /// Time allowed for one peer to answer a lookup. Default 2,000 ms.
    pub peer_timeout_ms: u64,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            site: String::new(),
            url: String::new(),
            peer_token: String::new(),
            peer_ca_file: String::new(),
            peers: Vec::new(),
            peer_cache_seconds: 30,
            peer_timeout_ms: 2_000,
        }
    }
}

/// One entry of `node.peers`: `{ name = "b", url = "http://peer:7070" }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    /// A name for the peer, unique among `node.peers`; answers it resolves carry it in
    /// `x-civitas-owner`.
    pub name: String,
    /// Base URL of the peer node (`http://host:port`; no TLS).
    pub url: String,
}

impl NodeConfig {
    /// The PEM bytes of `peer_ca_file`, checked to hold certificates; `None` when unset.
    pub fn peer_ca_pem(&self) -> Result<Option<Vec<u8>>, ConfigError> {
        let path = self.peer_ca_file.trim();
        if path.is_empty() {
            return Ok(None);
        }
        let invalid = |message: String| ConfigError::Invalid { origin: None, message };
        let pem = std::fs::read(path).map_err(|e| invalid(format!("node.peer_ca_file: cannot read {path}: {e}")))?;
        civitas_dataplane::tls::client_config(Some(&pem))
            .map_err(|e| invalid(format!("node.peer_ca_file ({path}): {e}")))?;
        Ok(Some(pem))
    }

    /// The URL this node is reached at: `url` without a trailing `/`, or `http://` +
    /// `listen` (an unspecified address such as `0.0.0.0` needs an explicit `url`).
    pub fn advertised_url(&self, listen: SocketAddr, tls: bool) -> Result<String, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid { origin: None, message };
        let url = self.url.trim().trim_end_matches('/');
        if url.is_empty() {
            if listen.ip().is_unspecified() {
                return Err(invalid(format!(
                    "node.url must be set when http.listen is {listen}: other nodes need an address to reach this one"
                )));
            }
            return Ok(format!("{}://{listen}", if tls { "https" } else { "http" }));
        }
        let ok = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))
            .is_some_and(|rest| !rest.is_empty() && !rest.contains(['/', ' ']));
        if !ok {
            return Err(invalid(format!(
                "node.url: {:?} is not a base URL such as http://10.0.0.1:7070 (no path)",
                self.url
            )));
        }
        Ok(url.to_string())
    }

    /// The validated `peers`, with URLs without trailing `/`.
    pub fn checked_peers(&self) -> Result<Vec<Peer>, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid { origin: None, message };
        let mut peers: Vec<Peer> = Vec::new();
        for (i, peer) in self.peers.iter().enumerate() {
            let name = peer.name.trim();
            if name.is_empty() {
                return Err(invalid(format!("node.peers[{i}].name must not be empty")));
            }
            if let Some(j) = peers.iter().position(|p| p.name == name) {
                return Err(invalid(format!("node.peers[{i}].name: {name:?} is also the name of node.peers[{j}]")));
            }
            let url = peer.url.trim().trim_end_matches('/');
            // https peers are trusted by the system's roots and `node.peer_ca_file`.
            let ok = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://")).is_some_and(|rest| {
                !rest.is_empty() && !rest.contains(char::is_whitespace) && !rest.contains(['?', '#'])
            });
            if !ok {
                return Err(invalid(format!(
                    "node.peers[{i}].url: {:?} is not an http:// or https:// URL such as http://127.0.0.1:7070",
                    peer.url
                )));
            }
            peers.push(Peer { name: name.to_string(), url: url.to_string() });
        }
        Ok(peers)
    }
}

/// `[runtime]`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// Worker threads of the async runtime. `0` (the default) picks by the CPUs this
    /// process may use: one CPU → a single-threaded runtime (no cross-thread hand-offs,
    /// measured ~1.5× the proxy throughput of a one-worker multi-threaded runtime on one
    /// core); more → a multi-threaded runtime with one worker per CPU.
    pub worker_threads: usize,
}

/// `[dataplane]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataPlaneSettings {
    /// How a view's instance is chosen unless `view_policies` says otherwise:
    /// `origin`, `nearest` or `fresh-only`. Default `fresh-only`: the nearest origin or
    /// fresh replica (so a view relocated by the migration manager is served from its
    /// replica while the replica keeps up, and from its origin otherwise).
    pub default_policy: civitas_dataplane::RoutePolicy,
    /// Per-view policies: `{ "urn:urbem:buildings:blocks" = "nearest" }`. Default empty.
    pub view_policies: std::collections::BTreeMap<civitas_model::Urn, civitas_dataplane::RoutePolicy>,
    /// Upstream connect timeout. Default 2,000 ms.
    pub connect_timeout_ms: u64,
    /// Time allowed until the upstream's response headers. Default 30,000 ms.
    pub first_byte_timeout_ms: u64,
    /// Longest gap between two body chunks. Default 60,000 ms.
    pub idle_timeout_ms: u64,
    /// Idle pooled connections kept per upstream. Default 256.
    pub pool_max_idle_per_host: usize,
    /// How long an idle pooled connection is kept. Default 90,000 ms.
    pub pool_idle_timeout_ms: u64,
    /// Observations buffered for the analyzers; past that they are dropped and counted. Default 65,536.
    pub observation_capacity: usize,
    /// Views with their own metric label sets; the least recently used idle one is evicted. Default 1,000.
    pub max_metric_views: usize,
    /// Name in the `Via` header. Default `civitas`.
    pub via: String,
    /// Bytes the validation cache may hold; `0` switches it off. It keeps the last answer to
    /// a plain `GET` with a strong `ETag` and revalidates it upstream on every request
    /// (`If-None-Match`) while the SDD is active, so an unchanged answer crosses as a `304`;
    /// copies of views to this node start from the kept answers. Default 67,108,864 (64 MiB).
    pub validation_cache_bytes: usize,
    /// Largest body the validation cache keeps. Default 4,194,304 (4 MiB).
    pub validation_cache_max_entry_bytes: usize,
    /// Longest a read of a view being copied to this node waits for the new replica
    /// instead of going to the origin (only when the copy should finish first; `0`: never
    /// wait). Default 10,000 ms.
    pub copy_hold_max_ms: u64,
}

impl Default for DataPlaneSettings {
    fn default() -> Self {
        DataPlaneSettings {
            default_policy: civitas_dataplane::RoutePolicy::FreshOnly,
            view_policies: Default::default(),
            connect_timeout_ms: 2_000,
            first_byte_timeout_ms: 30_000,
            idle_timeout_ms: 60_000,
            pool_max_idle_per_host: 256,
            pool_idle_timeout_ms: 90_000,
            observation_capacity: 65_536,
            max_metric_views: 1_000,
            via: "civitas".into(),
            validation_cache_bytes: 64 << 20,
            validation_cache_max_entry_bytes: 4 << 20,
            copy_hold_max_ms: 10_000,
        }
    }
}

/// `[sdd]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SddSettings {
    /// Sliding window of the analyzers. Default 60 s.
    pub window_seconds: u64,
    /// Most samples kept per (unit, view, client site) in the window. Default 4,096.
    pub max_samples_per_key: usize,
    /// Weight of the newest sample in the response-time EWMA, in (0, 1]. Default 0.2.
    pub ewma_alpha: f64,
    /// Analyses idle this long are forgotten. Default 600 s.
    pub idle_eviction_seconds: u64,
    /// Most (unit, view, client site) analyses kept. Default 10,000.
    pub max_keys: usize,
    /// SDD events kept for `/api/v1/sdd/events`. Default 1,000.
    pub max_events: usize,
    /// Migration candidates queued for the migration manager; past that they are dropped
    /// and counted. Default 1,024.
    pub candidate_queue: usize,
}

impl Default for SddSettings {
    fn default() -> Self {
        SddSettings {
            window_seconds: 60,
            max_samples_per_key: 4_096,
            ewma_alpha: 0.2,
            idle_eviction_seconds: 600,
            max_keys: 10_000,
            max_events: 1_000,
            candidate_queue: 1_024,
        }
    }
}

/// `[http]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address to listen on. Default `127.0.0.1:7070`.
    pub listen: SocketAddr,
    /// Largest request body accepted; larger ones get 413. Default 10 MiB.
    pub body_limit_bytes: u64,
    /// How long shutdown waits for in-flight requests before closing. Default 10 s.
    pub shutdown_grace_seconds: u64,
    /// Interval of heartbeat lines on `/api/v1/watch`. Default 15 s.
    pub watch_heartbeat_seconds: u64,
}

/// `[storage]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Directory holding the node's state (the catalog in `catalog.redb`). Created if missing.
    /// Default `civitas-data` in the working directory.
    pub data_dir: PathBuf,
}

/// `[catalog]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CatalogConfig {
    /// Revisions of change history kept for watches that resume from the past. Default 100,000.
    pub watch_history_revisions: u64,
    /// Most writes folded into one durable commit (group commit). Default 256.
    pub write_batch_max: usize,
    /// Memory for the store's page cache, in bytes. Default 256 MiB.
    pub cache_size_bytes: usize,
    /// Versions kept per document (`?version=` reads); the oldest go first. 0 keeps every
    /// version. Default 100.
    pub max_versions_per_document: usize,
}

/// `[log]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A `tracing` filter: `info`, `debug`, `civitas_node=debug,info`… `RUST_LOG` overrides it.
    /// Default `info`.
    pub level: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 7070)),
            body_limit_bytes: 10 * 1024 * 1024,
            shutdown_grace_seconds: 10,
            watch_heartbeat_seconds: 15,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig { data_dir: PathBuf::from("civitas-data") }
    }
}

impl Default for CatalogConfig {
    fn default() -> Self {
        CatalogConfig {
            watch_history_revisions: 100_000,
            write_batch_max: 256,
            cache_size_bytes: 256 * 1024 * 1024,
            max_versions_per_document: civitas_catalog::DEFAULT_MAX_VERSIONS,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { level: "info".into() }
    }
}

/// Values given as command-line flags; they win over the file and the environment.
#[derive(Debug, Clone, Default)]
pub struct ConfigOverrides {
    /// `--listen`
    pub listen: Option<SocketAddr>,
    /// `--data-dir`
    pub data_dir: Option<PathBuf>,
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file, or the file with the environment applied, is not a valid configuration.
    #[error("invalid configuration{}: {message}", origin.as_ref().map(|o| format!(" in {o}")).unwrap_or_default())]
    Invalid {
        /// The file or environment variable at fault, when known.
        origin: Option<String>,
        /// What is wrong (names the key).
        message: String,
    },
}

impl Config {
    /// Loads defaults, then `path` (if given), then `CIVITAS_*` variables, then `overrides`.
    pub fn load(path: Option<&Path>, overrides: ConfigOverrides) -> Result<Config, ConfigError> {
        Self::load_from(path, std::env::vars(), overrides)
    }

    /// [`Config::load`] with an explicit environment, for tests.
    pub fn load_from(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: ConfigOverrides,
    ) -> Result<Config, ConfigError> {
        let mut table = match path {
            None => toml::Table::new(),
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read { path: p.into(), source })?;
                let origin = Some(p.display().to_string());
                let table: toml::Table = text.parse().map_err(|e: toml::de::Error| ConfigError::Invalid {
                    origin: origin.clone(),
                    message: e.to_string(),
                })?;
                // Check the file alone first, so its errors name the file.
                Config::deserialize(toml::Value::Table(table.clone()))
                    .map_err(|e| ConfigError::Invalid { origin, message: e.to_string() })?;
                table
            }
        };
        apply_env(&mut table, env)?;
        let mut config = Config::deserialize(toml::Value::Table(table))
            .map_err(|e| ConfigError::Invalid { origin: Some("the environment".into()), message: e.to_string() })?;
        if let Some(l) = overrides.listen {
            config.http.listen = l;
        }
        if let Some(d) = overrides.data_dir {
            config.storage.data_dir = d;
        }
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |message: &str| Err(ConfigError::Invalid { origin: None, message: message.into() });
        if self.http.body_limit_bytes == 0 {
            return invalid("http.body_limit_bytes must be greater than 0");
        }
        if self.http.watch_heartbeat_seconds == 0 {
            return invalid("http.watch_heartbeat_seconds must be greater than 0");
        }
        if self.catalog.write_batch_max == 0 {
            return invalid("catalog.write_batch_max must be greater than 0");
        }
        if self.catalog.watch_history_revisions == 0 {
            return invalid("catalog.watch_history_revisions must be greater than 0");
        }
        if !self.node.site.is_empty()
            && let Err(e) = civitas_model::Urn::parse(&self.node.site)
        {
            return Err(ConfigError::Invalid { origin: None, message: format!("node.site: {e}") });
        }
        for (key, v) in [
            ("dataplane.connect_timeout_ms", self.dataplane.connect_timeout_ms),
            ("dataplane.first_byte_timeout_ms", self.dataplane.first_byte_timeout_ms),
            ("dataplane.idle_timeout_ms", self.dataplane.idle_timeout_ms),
            ("dataplane.observation_capacity", self.dataplane.observation_capacity as u64),
            ("dataplane.max_metric_views", self.dataplane.max_metric_views as u64),
            ("sdd.window_seconds", self.sdd.window_seconds),
            ("sdd.max_samples_per_key", self.sdd.max_samples_per_key as u64),
            ("sdd.max_keys", self.sdd.max_keys as u64),
            ("sdd.max_events", self.sdd.max_events as u64),
            ("sdd.candidate_queue", self.sdd.candidate_queue as u64),
        ] {
            if v == 0 {
                return invalid(&format!("{key} must be greater than 0"));
            }
        }
        if !(self.sdd.ewma_alpha > 0.0 && self.sdd.ewma_alpha <= 1.0) {
            return invalid("sdd.ewma_alpha must be in (0, 1]");
        }
        if self.ledger.cosign_interval_ms == 0 {
            return invalid("ledger.cosign_interval_ms must be greater than 0");
        }
        if self.node.peer_cache_seconds == 0 {
            return invalid("node.peer_cache_seconds must be greater than 0");
        }
        if self.node.peer_timeout_ms == 0 {
            return invalid("node.peer_timeout_ms must be greater than 0");
        }
        self.node.checked_peers()?;
        self.node.peer_ca_pem()?;
        self.node.advertised_url(self.http.listen, self.security.tls.is_some())?;
        self.migration.decisions()?;
        self.migration.snapshot_model()?;
        for (key, v) in [
            ("replicas.copy_concurrency", self.replicas.copy_concurrency as u64),
            ("replicas.resource_timeout_seconds", self.replicas.resource_timeout_seconds),
            ("replicas.object_chunk_bytes", self.replicas.object_chunk_bytes),
            ("replicas.script_timeout_seconds", self.replicas.script_timeout_seconds),
        ] {
            if v == 0 {
                return invalid(&format!("{key} must be greater than 0"));
            }
        }
        if !(self.replicas.default_refresh_seconds.is_finite() && self.replicas.default_refresh_seconds > 0.0) {
            return invalid("replicas.default_refresh_seconds must be a number of seconds > 0");
        }
        if !(self.replicas.staleness_factor.is_finite() && self.replicas.staleness_factor >= 1.0) {
            return invalid("replicas.staleness_factor must be a number ≥ 1");
        }
        for (view, command) in &self.replicas.update_scripts {
            if let Err(e) = civitas_model::Urn::parse(view) {
                return Err(ConfigError::Invalid {
                    origin: None,
                    message: format!("replicas.update_scripts key: {e}"),
                });
            }
            if command.trim().is_empty() {
                return invalid(&format!("replicas.update_scripts.\"{view}\" is an empty command"));
            }
        }
        let postgres = &self.replicas.postgres;
        if !postgres.connection.is_empty() && !self.sql.connections.contains_key(&postgres.connection) {
            return invalid(&format!(
                "replicas.postgres.connection names `{}`, which is not in [sql.connections]",
                postgres.connection
            ));
        }
        if !(postgres.lag_check_seconds.is_finite() && postgres.lag_check_seconds > 0.0) {
            return invalid("replicas.postgres.lag_check_seconds must be a number of seconds > 0");
        }
        for (source, conninfo) in &postgres.publisher_conninfo {
            if conninfo.trim().is_empty() {
                return invalid(&format!("replicas.postgres.publisher_conninfo.\"{source}\" is empty"));
            }
        }
        self.ledger.witnessed_log_keys()?;
        self.ledger.witness_peers()?;
        Ok(())
    }

    /// The configuration as TOML, every key with its value (for `--help` text and docs).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("the config always serializes")
    }
}

/// Applies `CIVITAS_<SECTION>_<KEY>` variables over the table, typed like the defaults.
fn apply_env(table: &mut toml::Table, env: impl IntoIterator<Item = (String, String)>) -> Result<(), ConfigError> {
    let defaults = toml::Table::try_from(Config::default()).expect("the default config serializes");
    for (var, raw) in env {
        let Some(rest) = var.strip_prefix(ENV_PREFIX) else { continue };
        let rest = rest.to_ascii_lowercase();
        let Some((section, default_section)) =
            defaults.iter().find(|(s, _)| rest.starts_with(&format!("{s}_"))).map(|(s, v)| (s.clone(), v))
        else {
            continue; // other CIVITAS_* variables (e.g. CIVITAS_SERVER for the CLI) are not node config
        };
        let key = &rest[section.len() + 1..];
        let origin = Some(var.clone());
        let Some(default) = default_section.as_table().and_then(|t| t.get(key)) else {
            let known: Vec<String> = default_section
                .as_table()
                .map(|t| {
                    t.keys().map(|k| format!("{ENV_PREFIX}{}_{}", section.to_uppercase(), k.to_uppercase())).collect()
                })
                .unwrap_or_default();
            return Err(ConfigError::Invalid {
                origin,
                message: format!("unknown setting `{section}.{key}`; known: {}", known.join(", ")),
            });
        };
        let value = match default {
            toml::Value::Integer(_) => toml::Value::Integer(raw.trim().parse().map_err(|_| ConfigError::Invalid {
                origin: origin.clone(),
                message: format!("`{section}.{key}` must be an integer, got {raw:?}"),
            })?),
            toml::Value::Boolean(_) => toml::Value::Boolean(raw.trim().parse().map_err(|_| ConfigError::Invalid {
                origin: origin.clone(),
                message: format!("`{section}.{key}` must be true or false, got {raw:?}"),
            })?),
            toml::Value::Float(_) => toml::Value::Float(raw.trim().parse().map_err(|_| ConfigError::Invalid {
                origin: origin.clone(),
                message: format!("`{section}.{key}` must be a number, got {raw:?}"),
            })?),
            toml::Value::Table(_) | toml::Value::Array(_) => {
                let what = if default.is_table() { "a table" } else { "an array" };
                return Err(ConfigError::Invalid {
                    origin,
                    message: format!("`{section}.{key}` is {what}; set it in the config file"),
                });
            }
            _ => toml::Value::String(raw),
        };
        table
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| ConfigError::Invalid { origin: None, message: format!("`{section}` must be a table") })?
            .insert(key.to_string(), value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_then_file_then_env_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("civitas.toml");
        std::fs::write(&file, "[http]\nlisten = \"127.0.0.2:9000\"\nbody_limit_bytes = 5\n").unwrap();
        let c = Config::load_from(Some(&file), env(&[]), ConfigOverrides::default()).unwrap();
        assert_eq!(c.http.listen.to_string(), "127.0.0.2:9000");
        assert_eq!(c.http.body_limit_bytes, 5);
        assert_eq!(c.storage.data_dir, PathBuf::from("civitas-data"));

        let c = Config::load_from(
            Some(&file),
            env(&[("CIVITAS_HTTP_BODY_LIMIT_BYTES", "7"), ("CIVITAS_SERVER", "http://x"), ("PATH", "/bin")]),
            ConfigOverrides::default(),
        )
        .unwrap();
        assert_eq!(c.http.body_limit_bytes, 7);

        let c = Config::load_from(
            Some(&file),
            env(&[("CIVITAS_HTTP_LISTEN", "127.0.0.3:1")]),
            ConfigOverrides { listen: Some("127.0.0.4:2".parse().unwrap()), data_dir: Some("/tmp/x".into()) },
        )
        .unwrap();
        assert_eq!(c.http.listen.to_string(), "127.0.0.4:2");
        assert_eq!(c.storage.data_dir, PathBuf::from("/tmp/x"));
    }

    #[test]
    fn unknown_keys_are_errors_that_name_them() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("civitas.toml");
        std::fs::write(&file, "[http]\nlisten_addr = \"127.0.0.1:1\"\n").unwrap();
        let e = Config::load_from(Some(&file), env(&[]), ConfigOverrides::default()).unwrap_err().to_string();
        assert!(e.contains("listen_addr") && e.contains("civitas.toml"), "{e}");

        let e = Config::load_from(None, env(&[("CIVITAS_HTTP_LISTN", "x")]), ConfigOverrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("CIVITAS_HTTP_LISTN") && e.contains("http.listn"), "{e}");

        let e = Config::load_from(None, env(&[("CIVITAS_HTTP_BODY_LIMIT_BYTES", "ten")]), ConfigOverrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("integer"), "{e}");

        let e = Config::load_from(None, env(&[("CIVITAS_HTTP_LISTEN", "nowhere")]), ConfigOverrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("environment"), "{e}");
    }

    #[test]
    fn the_documented_defaults_are_the_defaults() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/configuration.md")).unwrap();
        let start = doc.find("```toml\n").expect("docs/configuration.md has a toml block") + "```toml\n".len();
        let block = &doc[start..start + doc[start..].find("```").unwrap()];
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("civitas.toml");
        std::fs::write(&file, block).unwrap();
        let c = Config::load_from(Some(&file), env(&[]), ConfigOverrides::default()).unwrap();
        assert_eq!(c, Config::default());
        // And every default key is documented.
        let documented: toml::Table = block.parse().unwrap();
        let defaults = toml::Table::try_from(Config::default()).unwrap();
        for (section, keys) in &defaults {
            for key in keys.as_table().unwrap().keys() {
                assert!(
                    documented.get(section).and_then(|t| t.get(key)).is_some(),
                    "{section}.{key} is missing from docs/configuration.md"
                );
            }
        }
    }

    #[test]
    fn ledger_witness_settings_are_parsed_and_checked_at_load() {
        let log = civitas_ledger::NodeKey::from_seed(&[1; 32]).log_verifier("civitas.city/ledger/a").unwrap();
        let witness =
            civitas_ledger::NodeKey::from_seed(&[2; 32]).witness_signer("civitas.city/witness/b").unwrap().verifier();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("civitas.toml");
        std::fs::write(
            &file,
            format!(
                "[ledger]\nwitnessed_logs = [\"{log}\"]\ncosign_interval_ms = 200\n\
                 [[ledger.witnesses]]\nurl = \"http://127.0.0.1:7071/\"\nkey = \"{witness}\"\n"
            ),
        )
        .unwrap();
        let c = Config::load_from(Some(&file), env(&[]), ConfigOverrides::default()).unwrap();
        assert_eq!(c.ledger.cosign_interval_ms, 200);
        assert_eq!(c.ledger.witnessed_log_keys().unwrap(), vec![log.clone()]);
        assert_eq!(c.ledger.witness_peers().unwrap(), vec![("http://127.0.0.1:7071".to_string(), witness.clone())]);
        // The defaults (empty arrays) still serialize, and round-trip.
        let text = Config::default().to_toml();
        assert!(text.contains("witnessed_logs = []") && text.contains("witnesses = []"), "{text}");

        for (body, needle) in [
            ("[ledger]\nwitnessed_logs = [\"nonsense\"]\n".to_string(), "ledger.witnessed_logs[0]"),
            (format!("[ledger]\nwitnessed_logs = [\"{log}\", \"{witness}\"]\n"), "ledger.witnessed_logs[1]"),
            (format!("[ledger]\nwitnessed_logs = [\"{log}\", \"{log}\"]\n"), "ledger.witnessed_logs[1]"),
            (format!("[[ledger.witnesses]]\nurl = \"ftp://x\"\nkey = \"{witness}\"\n"), "ledger.witnesses[0].url"),
            (format!("[[ledger.witnesses]]\nurl = \"http://x\"\nkey = \"{log}\"\n"), "ledger.witnesses[0].key"),
            ("[[ledger.witnesses]]\nurl = \"http://x\"\nkey = \"x+1+2\"\n".to_string(), "ledger.witnesses[0].key"),
            ("[[ledger.witnesses]]\nurl = \"http://x\"\n".to_string(), "key"),
            ("[ledger]\ncosign_interval_ms = 0\n".to_string(), "ledger.cosign_interval_ms"),
        ] {
            std::fs::write(&file, &body).unwrap();
            let e = Config::load_from(Some(&file), env(&[]), ConfigOverrides::default()).unwrap_err().to_string();
            assert!(e.contains(needle), "{body}: {e}");
        }
        let e = Config::load_from(None, env(&[("CIVITAS_LEDGER_WITNESSES", "x")]), ConfigOverrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("array") && e.contains("config file"), "{e}");
    }

    #[test]
    fn peers_are_checked_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("civitas.toml");
        std::fs::write(
            &file,
            "[node]\npeers = [{ name = \"b\", url = \"http://127.0.0.1:7071/\" }]\npeer_cache_seconds = 1\n",
        )
        .unwrap();
        let c = Config::load_from(Some(&file), env(&[]), ConfigOverrides::default()).unwrap();
        assert_eq!(c.node.peer_cache_seconds, 1);
        assert_eq!(c.node.peer_timeout_ms, 2_000);
        assert_eq!(
            c.node.checked_peers().unwrap(),
            vec![Peer { name: "b".into(), url: "http://127.0.0.1:7071".into() }]
        );
        for (body, needle) in [
            ("[node]\npeers = [{ name = \"b\", url = \"ftp://x\" }]\n", "node.peers[0].url"),
            ("[node]\npeer_ca_file = \"/nonexistent/ca.pem\"\n", "node.peer_ca_file"),
            ("[node]\npeers = [{ name = \"b\", url = \"http://\" }]\n", "node.peers[0].url"),
            ("[node]\npeers = [{ name = \"\", url = \"http://x\" }]\n", "node.peers[0].name"),
            (
                "[node]\npeers = [{ name = \"b\", url = \"http://x\" }, { name = \"b\", url = \"http://y\" }]\n",
                "node.peers[1].name",
            ),
            ("[node]\npeers = [{ name = \"b\" }]\n", "url"),
            ("[node]\npeer_cache_seconds = 0\n", "node.peer_cache_seconds"),
            ("[node]\npeer_timeout_ms = 0\n", "node.peer_timeout_ms"),
        ] {
            std::fs::write(&file, body).unwrap();
            let e = Config::load_from(Some(&file), env(&[]), ConfigOverrides::default()).unwrap_err().to_string();
            assert!(e.contains(needle), "{body}: {e}");
        }
        let e = Config::load_from(None, env(&[("CIVITAS_NODE_PEERS", "x")]), ConfigOverrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("array") && e.contains("config file"), "{e}");
    }

    #[test]
    fn zero_limits_are_rejected() {
        let e = Config::load_from(None, env(&[("CIVITAS_HTTP_BODY_LIMIT_BYTES", "0")]), ConfigOverrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("body_limit_bytes"), "{e}");
    }
}
