//! What relocation remembers across restarts: the migration manager's state (pins,
//! placements, plans waiting for a person, events) and a record per replica. One JSON
//! file, replaced atomically (write, fsync, rename, fsync of the directory), so a crash
//! leaves the old state or the new one, never a mix.

use std::path::{Path, PathBuf};

use civitas_model::Urn;
use civitas_placement::migration::ManagerState;
use serde::{Deserialize, Serialize};

/// Version of the state file's layout.
pub const STATE_FORMAT: u32 = 1;

/// The state file's content.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RelocationState {
    /// Layout version ([`STATE_FORMAT`]).
    pub format: u32,
    /// The migration manager's state.
    pub manager: Option<ManagerState>,
    /// The replicas this node holds or is copying.
    #[serde(default)]
    pub replicas: Vec<ReplicaRecord>,
    /// Variants to copy for plans waiting for a person, by escalation id.
    #[serde(default)]
    pub pending_variants: std::collections::BTreeMap<u64, Vec<String>>,
}

/// Where a replica is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReplicaPhase {
    /// Being copied: not served, not registered.
    Copying,
    /// Copied and verified, not yet registered as an instance (a restart registers it).
    Copied,
    /// Registered as a `DataInstance`: the data plane may send reads to it.
    Serving,
}

impl ReplicaPhase {
    /// The phase's name.
    pub fn as_str(self) -> &'static str {
        match self {
            ReplicaPhase::Copying => "copying",
            ReplicaPhase::Copied => "copied",
            ReplicaPhase::Serving => "serving",
        }
    }
}

/// How a replica's first copy is made (the plan's strategy).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CopyStrategy {
    /// The view's resources, fetched whole (`http-snapshot`); an interrupted copy starts again.
    #[default]
    HttpSnapshot,
    /// One large object in ranged, checksummed chunks (`object-copy`); an interrupted copy resumes.
    ObjectCopy,
    /// The rows a SQL view reads, copied into this city's PostgreSQL with `COPY` in one
    /// transaction (`postgres`); an interrupted copy leaves nothing and starts again.
    Postgres,
}

impl CopyStrategy {
    /// The strategy's name, as in plans.
    pub fn as_str(self) -> &'static str {
        match self {
            CopyStrategy::HttpSnapshot => "http-snapshot",
            CopyStrategy::ObjectCopy => "object-copy",
            CopyStrategy::Postgres => "postgres",
        }
    }
}

/// How a replica is kept fresh (see `docs/replicas.md`, "Update strategies").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateStrategy {
    /// Copy every variant again, as a new replica swapped in whole.
    FullCopy,
    /// Ask the origin whether each variant changed (`If-None-Match`, `If-Modified-Since`).
    Revalidate,
    /// Revalidate the share of the variants the view's update fraction names per period,
    /// least recently validated first.
    Fractional,
    /// Run the command configured for the view in `replicas.update_scripts`.
    Script,
    /// SQL replicas: PostgreSQL logical replication; the refresh measures its lag.
    Streaming,
    /// SQL replicas: copy the rows whose watermark column moved since the last refresh.
    Watermark,
}

impl UpdateStrategy {
    /// The strategy's name.
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateStrategy::FullCopy => "full-copy",
            UpdateStrategy::Revalidate => "revalidate",
            UpdateStrategy::Fractional => "fractional",
            UpdateStrategy::Script => "script",
            UpdateStrategy::Streaming => "streaming",
            UpdateStrategy::Watermark => "watermark",
        }
    }
}

/// One replica held at this node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaRecord {
    /// The replica's id in the replica store (changes when a full copy replaces it).
    pub id: String,
    /// The unit.
    pub unit: Urn,
    /// The view it copies.
    pub view: Urn,
    /// The `DataInstance` it is registered as.
    pub instance: Urn,
    /// This node's site.
    pub site: Urn,
    /// Where it is copied from: the origin node's data plane URL of the view.
    pub source: String,
    /// The node whose catalog holds the unit (where the instance is registered);
    /// `None`: this node's own catalog.
    pub owner: Option<String>,
    /// The view's resources copied, relative to its link (`/`, `/district/3?year=2017`).
    pub variants: Vec<String>,
    /// Where it is in its life.
    pub phase: ReplicaPhase,
    /// How its first copy is made.
    #[serde(default)]
    pub copy: CopyStrategy,
    /// Attempts at the first copy so far (an object copy resumes after a failure).
    #[serde(default)]
    pub copy_attempts: u32,
    /// How it is kept fresh.
    pub strategy: UpdateStrategy,
    /// Seconds between two refreshes.
    pub refresh_period_seconds: f64,
    /// Age of the last validation after which the data plane stops using it.
    pub staleness_bound_seconds: f64,
    /// When it was first copied (ms since the Unix epoch).
    pub created_at_unix_ms: u64,
    /// When every one of its resources last matched the origin.
    pub validated_at_unix_ms: u64,
    /// Bumped at every registration (the instance document's version).
    pub generation: u64,
    /// Bytes stored.
    pub bytes: u64,
    /// Of those, bytes the first copy took from answers the data plane had kept, after
    /// the source confirmed them (`304`), instead of fetching them again.
    #[serde(default)]
    pub seeded_bytes: u64,
    /// Successful refreshes.
    pub refreshes: u64,
    /// Failed refreshes.
    pub refresh_failures: u64,
    /// The last refresh's error, cleared by a success.
    pub last_error: Option<String>,
    /// The `validatedAtUnixMs` of the last registration (SQL replicas re-register only
    /// when their validation moved on by a quarter of the staleness bound).
    #[serde(default)]
    pub registered_validated_at_unix_ms: u64,
    /// When an operator deleted it (ms since the Unix epoch): it is no longer registered,
    /// no longer refreshed, and its data goes once requests routed to it before have
    /// drained (see `refresh.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retiring_at_unix_ms: Option<u64>,
    /// A SQL replica's origin connection reference (its unit's `metainformation.connection`),
    /// recorded before the copy starts so its objects can be found and deleted whatever
    /// happens to the unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql_source: Option<String>,
    /// A SQL replica's tables, replication objects and watermark (strategy `postgres`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<civitas_sql::replica::SqlReplica>,
}

impl ReplicaRecord {
    /// Seconds since the replica last matched its origin.
    pub fn freshness_lag_seconds(&self, now_unix_ms: u64) -> f64 {
        now_unix_ms.saturating_sub(self.validated_at_unix_ms) as f64 / 1000.0
    }

    /// Whether the data plane still uses it: by the validation time it last *registered*
    /// (what the data plane reads), which may be older than the last refresh's when a
    /// registration failed or was not due yet.
    pub fn is_fresh(&self, now_unix_ms: u64) -> bool {
        let age = now_unix_ms.saturating_sub(self.registered_validated_at_unix_ms) as f64 / 1000.0;
        age <= self.staleness_bound_seconds
    }
}

/// The state file in a data directory.
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    /// `<data-dir>/relocation.json`.
    pub fn in_dir(data_dir: &Path) -> StateFile {
        StateFile { path: data_dir.join("relocation.json") }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the state; `None` when there is none yet. A file that cannot be read is an
    /// error naming it: the node refuses to start rather than forget replicas.
    pub fn load(&self) -> Result<Option<RelocationState>, String> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read {}: {e}", self.path.display())),
        };
        let state: RelocationState = serde_json::from_slice(&bytes)
            .map_err(|e| format!("{} is not a relocation state file: {e}", self.path.display()))?;
        if state.format != STATE_FORMAT {
            return Err(format!(
                "{} has layout version {}, this node reads version {STATE_FORMAT}",
                self.path.display(),
                state.format
            ));
        }
        Ok(Some(state))
    }

    /// Replaces the state atomically and durably. Blocking: call it off the runtime.
    pub fn store(&self, state: &RelocationState) -> std::io::Result<()> {
        use std::io::Write;
        let bytes = serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?;
        let tmp = self.path.with_extension("json.tmp");
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> ReplicaRecord {
        ReplicaRecord {
            id: "blocks-1".into(),
            unit: Urn::parse("urn:city:buildings").unwrap(),
            view: Urn::parse("urn:city:buildings:blocks").unwrap(),
            instance: Urn::parse("urn:city:buildings:replica:vienna:blocks").unwrap(),
            site: Urn::parse("urn:site:vienna").unwrap(),
            source: "http://127.0.0.1:1/data/urn:city:buildings/blocks".into(),
            owner: None,
            variants: vec!["/".into()],
            phase: ReplicaPhase::Serving,
            copy: CopyStrategy::HttpSnapshot,
            copy_attempts: 1,
            strategy: UpdateStrategy::Revalidate,
            refresh_period_seconds: 60.0,
            staleness_bound_seconds: 120.0,
            created_at_unix_ms: 1_000,
            validated_at_unix_ms: 10_000,
            generation: 1,
            bytes: 5,
            seeded_bytes: 0,
            refreshes: 0,
            refresh_failures: 0,
            last_error: None,
            registered_validated_at_unix_ms: 0,
            retiring_at_unix_ms: None,
            sql_source: None,
            sql: None,
        }
    }

    #[test]
    fn state_round_trips_and_refuses_other_layouts() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::in_dir(dir.path());
        assert!(file.load().unwrap().is_none(), "no file: no state");
        let state = RelocationState {
            format: STATE_FORMAT,
            manager: None,
            replicas: vec![record()],
            pending_variants: Default::default(),
        };
        file.store(&state).unwrap();
        let back = file.load().unwrap().unwrap();
        assert_eq!(back.replicas, state.replicas);
        std::fs::write(file.path(), br#"{"format": 99, "manager": null}"#).unwrap();
        let err = file.load().unwrap_err();
        assert!(err.contains("layout version 99"), "{err}");
        std::fs::write(file.path(), b"{not json").unwrap();
        assert!(file.load().unwrap_err().contains("not a relocation state file"));
    }

    #[test]
    fn freshness_follows_the_bound() {
        let mut r = record();
        r.registered_validated_at_unix_ms = r.validated_at_unix_ms;
        assert_eq!(r.freshness_lag_seconds(70_000), 60.0);
        assert!(r.is_fresh(130_000));
        assert!(!r.is_fresh(130_001));
        // A refresh whose registration failed: the data plane still has the older time.
        r.validated_at_unix_ms = 60_000;
        assert!(!r.is_fresh(130_001), "fresh by what was registered, not by the last refresh");
    }
}
