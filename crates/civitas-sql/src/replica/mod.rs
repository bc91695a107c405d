//! Replicas of SQL views in another city's PostgreSQL (issue 8): what a view covers, the
//! initial copy by the COPY protocol, and keeping it fresh by logical replication
//! (`streaming`), incremental copy (`watermark`) or periodic full copy (`full-copy`).
//!
//! Invariants:
//! - replica tables keep their origin's schema-qualified names, so the view's statement
//!   runs unchanged at the target; each is commented `civitas replica <id> of <view>` and
//!   a table commented otherwise is never touched;
//! - an initial copy reads ONE source snapshot and writes ONE target transaction: nothing
//!   is visible at the target until it commits, a failure leaves nothing behind;
//! - with streaming, the copy is made in the replication slot's exported snapshot and the
//!   subscription starts at the slot's consistent point: no change is lost or applied twice;
//! - every artifact of a replica is named `civitas_<first 16 hex of sha256(replica id)>`;
//! - freshness is never claimed beyond what is measured: lag from LSN samples, or the time
//!   of the source snapshot a refresh copied.

mod copy;
mod coverage;
mod refresh;
mod session;
mod stream;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio_postgres::{Client, NoTls};

pub use coverage::{Column, CoveredTable};

use crate::config::ConnectionConfig;
use crate::definition::{SqlView, UpdateMode};
use crate::error::SqlError;
use crate::serve::db_message;

/// Progress of an initial copy, sent on a `watch` channel as it goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyProgress {
    /// Tables to copy.
    pub tables: usize,
    /// Tables copied so far.
    pub tables_done: usize,
    /// Rows copied so far (counted per finished table).
    pub rows: u64,
    /// Bytes of COPY data streamed so far.
    pub bytes: u64,
}

/// A replica of one view at a target database: what the node persists (JSON; the field
/// names are stable).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SqlReplica {
    /// The replica's id (the node's; artifacts are named after its hash).
    pub replica_id: String,
    /// The view's full name.
    pub view: String,
    /// The tables copied, with the columns and row filter actually used.
    pub tables: Vec<CoveredTable>,
    /// How the replica is kept fresh.
    pub update: UpdateMode,
    /// The publication at the origin (streaming).
    pub publication: Option<String>,
    /// The logical replication slot at the origin (streaming).
    pub slot: Option<String>,
    /// The subscription at the target (streaming).
    pub subscription: Option<String>,
    /// The watermark reached, as text in the column's type (watermark).
    pub watermark: Option<String>,
    /// Rows of the initial copy.
    pub rows: u64,
    /// Bytes of COPY data of the initial copy.
    pub bytes: u64,
    /// When the initial copy's source snapshot was taken (Unix ms): the data is at least
    /// as fresh as this.
    pub copied_at_unix_ms: u64,
}

impl SqlReplica {
    /// The view served from the replica: the same statement (the tables keep their
    /// names) on the target's connection reference.
    pub fn serving_view(&self, origin_view: &SqlView, target_connection: &str) -> SqlView {
        SqlView { connection: target_connection.to_owned(), ..origin_view.clone() }
    }
}

/// How fresh a replica is, as measured by [`Replicator::refresh`].
#[derive(Debug, Clone, PartialEq)]
pub struct Freshness {
    /// The replica holds every change the origin committed before this time (Unix ms).
    pub validated_at_unix_ms: u64,
    /// `now - validated_at`, in seconds.
    pub lag_seconds: f64,
    /// Rows written at the target by this refresh (watermark, full copy); `None` for streaming.
    pub rows_changed: Option<u64>,
    /// WAL bytes the subscription has not confirmed yet (streaming).
    pub lag_bytes: Option<u64>,
    /// Why the replica is not keeping up, when something is wrong that waiting will not
    /// fix (a subscription that is disabled or failing, a missing slot).
    pub problem: Option<String>,
}

/// Copies views from an origin database into a replica database and keeps them fresh.
pub struct Replicator {
    source_name: String,
    source: tokio_postgres::Config,
    target_name: String,
    target: tokio_postgres::Config,
    publisher_conninfo: String,
    connect_timeout: Duration,
    /// Per replica id: (time, origin LSN) samples not yet confirmed, and the freshness
    /// reached so far.
    lsn_history: Mutex<HashMap<String, LsnHistory>>,
    /// Connections kept for measuring streaming lag (source, target): `refresh` runs every
    /// few hundred milliseconds per replica and only reads, outside transactions.
    lag_connections: tokio::sync::Mutex<KeptConnections>,
}

/// The (source, target) connections kept for lag measurements.
type KeptConnections = (Option<Arc<Client>>, Option<Arc<Client>>);

/// The LSN samples of one streaming replica.
#[derive(Debug, Default)]
struct LsnHistory {
    samples: VecDeque<(u64, u64)>,
    validated_at_unix_ms: u64,
}

/// Most (time, LSN) samples kept per replica; older ones are dropped first (freshness
/// then errs on the old side, never on the new).
const MAX_LSN_SAMPLES: usize = 4096;

impl Replicator {
    /// A replicator from the origin `source` (the unit's connection, named `source_name`)
    /// to the replica database `target`. `publisher_conninfo` is what the *target server*
    /// uses to reach the origin for a subscription (default: the source URL, which libpq
    /// accepts as it is). No connection is opened here.
    pub fn new(
        source_name: &str,
        source: &ConnectionConfig,
        target_name: &str,
        target: &ConnectionConfig,
        publisher_conninfo: Option<String>,
    ) -> Result<Replicator, SqlError> {
        let parse = |name: &str, c: &ConnectionConfig| -> Result<tokio_postgres::Config, SqlError> {
            let mut config: tokio_postgres::Config = c
                .url
                .parse()
                .map_err(|e| SqlError::Config(format!("connection `{name}`: the url does not parse: {e}")))?;
            config.application_name("civitas-replica");
            config.connect_timeout(Duration::from_millis(c.connect_timeout_ms.max(1)));
            Ok(config)
        };
        Ok(Replicator {
            source_name: source_name.to_owned(),
            source: parse(source_name, source)?,
            target_name: target_name.to_owned(),
            target: parse(target_name, target)?,
            publisher_conninfo: publisher_conninfo.unwrap_or_else(|| source.url.clone()),
            connect_timeout: Duration::from_millis(source.connect_timeout_ms.max(target.connect_timeout_ms).max(1)),
            lsn_history: Mutex::new(HashMap::new()),
            lag_connections: tokio::sync::Mutex::new((None, None)),
        })
    }

    /// What `view` reads at the origin (see the module `coverage`): base tables, the
    /// columns needed, primary keys and row filters. Refuses views over database views,
    /// tables without a primary key and a watermark column no table has.
    pub async fn coverage(&self, view: &SqlView) -> Result<Vec<CoveredTable>, SqlError> {
        let client = self.connect_source().await?;
        coverage::coverage(&client, view).await
    }

    /// An estimate of the bytes a copy of `view` moves: the on-disk size of its covered
    /// tables at the origin, scaled by the share of their columns' average width the copy
    /// reads (row filters are not counted: an upper bound). For the migration cost model.
    pub async fn estimate_bytes(&self, view: &SqlView) -> Result<u64, SqlError> {
        let client = self.connect_source().await?;
        let tables = coverage::coverage(&client, view).await?;
        let mut total = 0u64;
        for table in &tables {
            let columns: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
            let row = client
                .query_one(
                    "SELECT pg_table_size(c.oid)::bigint,
                            coalesce((SELECT sum(s.avg_width) FILTER (WHERE s.attname = ANY($2))::float8
                                             / nullif(sum(s.avg_width), 0)
                                        FROM pg_stats s WHERE s.schemaname = $1 AND s.tablename = c.relname), 1.0)
                       FROM pg_class c WHERE c.oid = to_regclass($3)",
                    &[&table.schema, &columns, &table.qualified_name()],
                )
                .await
                .map_err(|e| SqlError::Unavailable { connection: self.source_name.clone(), message: db_message(&e) })?;
            let bytes: i64 = row.get(0);
            let share: f64 = row.get(1);
            total += (bytes.max(0) as f64 * share.clamp(0.0, 1.0)).round() as u64;
        }
        Ok(total)
    }

    /// The initial copy of `view` as replica `replica_id` (see the module docs), reporting
    /// on `progress`. For streaming views it also sets up the publication, slot and
    /// subscription.
    pub async fn copy(
        &self,
        replica_id: &str,
        view: &SqlView,
        progress: &tokio::sync::watch::Sender<CopyProgress>,
    ) -> Result<SqlReplica, SqlError> {
        let replica = copy::initial_copy(self, replica_id, view, progress).await?;
        if replica.update == UpdateMode::Streaming {
            let mut history = self.lsn_history.lock().unwrap_or_else(|e| e.into_inner());
            history.insert(
                replica_id.to_owned(),
                LsnHistory { samples: VecDeque::new(), validated_at_unix_ms: replica.copied_at_unix_ms },
            );
        }
        Ok(replica)
    }

    /// Brings `replica` up to date (watermark, full copy) or measures how far behind it is
    /// (streaming), and says how fresh it is.
    pub async fn refresh(&self, replica: &mut SqlReplica) -> Result<Freshness, SqlError> {
        match replica.update.clone() {
            UpdateMode::Streaming => stream::freshness(self, replica).await,
            UpdateMode::Watermark { column } => refresh::watermark(self, replica, &column).await,
            UpdateMode::FullCopy => refresh::full_copy(self, replica).await,
        }
    }

    /// Removes a replica: its subscription (disabled, detached from its slot, dropped),
    /// slot, publication and target tables (only those commented as this replica's).
    /// Idempotent: what is already gone is skipped.
    pub async fn drop_replica(&self, replica: &SqlReplica) -> Result<(), SqlError> {
        stream::drop_artifacts(self, &replica.replica_id, replica.subscription.is_some() || replica.slot.is_some())
            .await?;
        copy::drop_tables(self, &replica.replica_id, &replica.tables).await?;
        self.lsn_history.lock().unwrap_or_else(|e| e.into_inner()).remove(&replica.replica_id);
        Ok(())
    }

    /// Crash recovery at start-up: drops every `civitas_` subscription (target), slot and
    /// publication (origin, only those made for this target) and every target table
    /// commented as a civitas replica whose replica id is not in `keep`. `keep` must hold
    /// every replica id the node has, whatever its origin. Returns what it removed.
    pub async fn cleanup_except(&self, keep: &[String]) -> Result<Vec<String>, SqlError> {
        let mut removed = stream::cleanup_except(self, keep).await?;
        removed.extend(copy::cleanup_tables_except(self, keep).await?);
        Ok(removed)
    }

    async fn connect(&self, name: &str, config: &tokio_postgres::Config) -> Result<Client, SqlError> {
        let unavailable = |message: String| SqlError::Unavailable { connection: name.to_owned(), message };
        let (client, connection) = tokio::time::timeout(self.connect_timeout, config.connect(NoTls))
            .await
            .map_err(|_| unavailable(format!("no connection within {:?}", self.connect_timeout)))?
            .map_err(|e| unavailable(db_message(&e)))?;
        let name = name.to_owned();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(connection = %name, error = %e, "replica connection ended");
            }
        });
        Ok(client)
    }

    pub(crate) async fn connect_source(&self) -> Result<Client, SqlError> {
        self.connect(&self.source_name, &self.source).await
    }

    pub(crate) async fn connect_target(&self) -> Result<Client, SqlError> {
        self.connect(&self.target_name, &self.target).await
    }

    /// The kept (source, target) connections for lag measurements, re-opened when closed.
    pub(crate) async fn lag_connections(&self) -> Result<(Arc<Client>, Arc<Client>), SqlError> {
        let mut kept = self.lag_connections.lock().await;
        let source = match &kept.0 {
            Some(client) if !client.is_closed() => client.clone(),
            _ => Arc::new(self.connect_source().await?),
        };
        kept.0 = Some(source.clone());
        let target = match &kept.1 {
            Some(client) if !client.is_closed() => client.clone(),
            _ => Arc::new(self.connect_target().await?),
        };
        kept.1 = Some(target.clone());
        Ok((source, target))
    }

    /// A database error during work on `replica`, with what was being done.
    pub(crate) fn failed(replica: &str, doing: &str, e: tokio_postgres::Error) -> SqlError {
        SqlError::Replica { replica: replica.to_owned(), message: format!("{doing}: {}", db_message(&e)) }
    }

    /// Identifies the target database (cluster system identifier and database name) in
    /// comments at the origin, so cleanup never touches another city's artifacts.
    pub(crate) async fn target_identity(&self, target: &Client) -> Result<String, SqlError> {
        let row = target
            .query_one("SELECT system_identifier::text || '/' || current_database() FROM pg_control_system()", &[])
            .await
            .map_err(|e| SqlError::Unavailable { connection: self.target_name.clone(), message: db_message(&e) })?;
        Ok(row.get(0))
    }
}

/// The coverage of `view` on an open connection to its origin (for `SqlViews::check`).
pub(crate) async fn coverage_of(client: &Client, view: &SqlView) -> Result<Vec<CoveredTable>, SqlError> {
    coverage::coverage(client, view).await
}

/// `civitas_<first 16 hex chars of sha256(replica id)>`: the name of a replica's
/// publication, slot and subscription.
pub fn artifact_name(replica_id: &str) -> String {
    let digest = Sha256::digest(replica_id.as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("civitas_{hex}")
}

/// The comment of a replica's target tables.
pub(crate) fn table_comment(replica_id: &str, view: &str) -> String {
    format!("civitas replica {replica_id} of {view}")
}

/// The replica id in a target table's comment, when it is a civitas replica's.
pub(crate) fn replica_of_comment(comment: &str) -> Option<&str> {
    comment.strip_prefix("civitas replica ")?.rsplit_once(" of ").map(|(id, _)| id)
}

/// Now, in Unix milliseconds.
pub(crate) fn now_unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// `'text'` with quotes doubled: a SQL string literal.
pub(crate) fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_comments() {
        let name = artifact_name("r-1");
        assert!(name.starts_with("civitas_") && name.len() == "civitas_".len() + 16, "{name}");
        assert_eq!(name, artifact_name("r-1"));
        assert_ne!(name, artifact_name("r-2"));
        let comment = table_comment("r 1", "urn:a:b:v");
        assert_eq!(replica_of_comment(&comment), Some("r 1"));
        assert_eq!(replica_of_comment("something else"), None);
        assert_eq!(quote_literal("it's"), "'it''s'");
    }

    #[test]
    fn a_replica_is_serde_stable() {
        let replica = SqlReplica {
            replica_id: "r".into(),
            view: "urn:a:b:v".into(),
            tables: vec![CoveredTable {
                schema: "s".into(),
                name: "t".into(),
                columns: vec![Column { name: "id".into(), sql_type: "integer".into(), not_null: true }],
                primary_key: vec!["id".into()],
                row_filter: Some("(id > 3)".into()),
            }],
            update: UpdateMode::Watermark { column: "updated_at".into() },
            publication: None,
            slot: None,
            subscription: None,
            watermark: Some("2026-01-01 00:00:00+00".into()),
            rows: 1,
            bytes: 2,
            copied_at_unix_ms: 3,
        };
        let json = serde_json::to_value(&replica).unwrap();
        assert_eq!(json["update"], serde_json::json!({"mode": "watermark", "column": "updated_at"}));
        assert_eq!(json["tables"][0]["columns"][0]["sql_type"], "integer");
        assert_eq!(serde_json::from_value::<SqlReplica>(json).unwrap(), replica);
    }
}
