//! Witness cosigning (`c2sp.org/tlog-cosignature`, as `c2sp.org/tlog-witness` uses it).
//!
//! A witness keeps, per log origin, the last checkpoint it cosigned. Shown a new checkpoint
//! with a consistency proof from that one, it checks the log's signature and the proof, and
//! only then records the new tree head (durably, before answering) and returns a timestamped
//! cosignature. A log that shows two different roots for one size (a fork), a smaller tree
//! than one already cosigned (a rollback), or a larger tree that is not an extension of the
//! last one (an inconsistent proof) is refused, counted as an alarm and logged as a warning:
//! that is the split-view evidence witnesses exist to catch.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::checkpoint::SignedCheckpoint;
use crate::merkle::{Hash, ProofError, verify_consistency};
use crate::note::{CosignatureSigner, NoteError, NoteSignature, NoteVerifier};

/// Why a witness did not cosign.
#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    /// The witness does not know the log's key.
    #[error("unknown log {origin:?}: this witness has no key for it")]
    UnknownLog {
        /// The checkpoint's origin.
        origin: String,
    },
    /// The checkpoint is malformed or its signature does not verify.
    #[error("the checkpoint is not validly signed by its log: {0}")]
    BadCheckpoint(#[from] NoteError),
    /// The caller's idea of the witness's last size is stale; no alarm (tlog-witness 409).
    #[error(
        "this witness last cosigned {origin:?} at size {witness_size}, not {claimed_old_size}; send a proof from {witness_size}"
    )]
    Conflict {
        /// The log.
        origin: String,
        /// The size the witness holds.
        witness_size: u64,
        /// The size the caller claimed.
        claimed_old_size: u64,
    },
    /// Same size, different root: the log forked. Alarm.
    #[error("fork of {origin:?}: size {size} was cosigned with root {cosigned}, now presented with root {presented}")]
    Fork {
        /// The log.
        origin: String,
        /// The size.
        size: u64,
        /// Root cosigned earlier.
        cosigned: Hash,
        /// Root presented now.
        presented: Hash,
    },
    /// A smaller tree than one already cosigned. Alarm.
    #[error("rollback of {origin:?}: size {presented} presented after size {cosigned} was cosigned")]
    Rollback {
        /// The log.
        origin: String,
        /// Size cosigned earlier.
        cosigned: u64,
        /// Size presented now.
        presented: u64,
    },
    /// A larger tree whose consistency proof from the cosigned one fails. Alarm.
    #[error("{origin:?} at size {new_size} is not consistent with size {old_size} cosigned earlier: {source}")]
    Inconsistent {
        /// The log.
        origin: String,
        /// Size cosigned earlier.
        old_size: u64,
        /// Size presented.
        new_size: u64,
        /// What failed.
        source: ProofError,
    },
    /// The state file could not be read or written.
    #[error("witness state {}: {detail}", path.display())]
    State {
        /// The state file.
        path: PathBuf,
        /// What failed.
        detail: String,
    },
}

impl WitnessError {
    /// Whether this refusal is evidence of log misbehaviour (and raised an alarm).
    pub fn is_alarm(&self) -> bool {
        matches!(self, WitnessError::Fork { .. } | WitnessError::Rollback { .. } | WitnessError::Inconsistent { .. })
    }
}

/// Alarm counts by kind, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WitnessAlarms {
    /// Same size, different root.
    pub forks: u64,
    /// Smaller tree than cosigned.
    pub rollbacks: u64,
    /// Larger tree, failed consistency proof.
    pub inconsistent: u64,
}

impl WitnessAlarms {
    /// All alarms.
    pub fn total(&self) -> u64 {
        self.forks + self.rollbacks + self.inconsistent
    }
}

/// What the witness remembers of one log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CosignedHead {
    /// Tree size last cosigned.
    pub size: u64,
    /// Its root.
    pub root: Hash,
    /// When (seconds since the epoch).
    pub timestamp: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StateFile {
    version: u32,
    logs: BTreeMap<String, CosignedHead>,
}

/// A witness: trusted log keys, the last cosigned head per log, and a cosigning key.
pub struct Witness {
    signer: CosignatureSigner,
    path: PathBuf,
    logs: RwLock<HashMap<String, NoteVerifier>>,
    state: Mutex<BTreeMap<String, CosignedHead>>,
    forks: AtomicU64,
    rollbacks: AtomicU64,
    inconsistent: AtomicU64,
}

impl std::fmt::Debug for Witness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Witness").field("name", &self.signer.name()).field("path", &self.path).finish_non_exhaustive()
    }
}

impl Witness {
    /// Opens the witness whose state lives in the file `path` (created on first cosignature).
    pub fn open(path: impl Into<PathBuf>, signer: CosignatureSigner) -> Result<Witness, WitnessError> {
        let path = path.into();
        let state = match std::fs::read(&path) {
            Ok(bytes) => {
                let file: StateFile = serde_json::from_slice(&bytes)
                    .map_err(|e| WitnessError::State { path: path.clone(), detail: format!("unreadable: {e}") })?;
                if file.version != 1 {
                    return Err(WitnessError::State {
                        path,
                        detail: format!("unknown state version {}", file.version),
                    });
                }
                file.logs
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(WitnessError::State { path, detail: e.to_string() }),
        };
        Ok(Witness {
            signer,
            path,
            logs: RwLock::new(HashMap::new()),
            state: Mutex::new(state),
            forks: AtomicU64::new(0),
            rollbacks: AtomicU64::new(0),
            inconsistent: AtomicU64::new(0),
        })
    }

    /// Trusts `log_key` for checkpoints of the log it names (replacing an earlier key).
    pub fn trust_log(&self, log_key: NoteVerifier) {
        self.logs.write().expect("witness lock poisoned").insert(log_key.name().to_string(), log_key);
    }

    /// The verifier key of this witness's cosignatures (type 0x04).
    pub fn verifier(&self) -> NoteVerifier {
        self.signer.verifier()
    }

    /// The last head cosigned for `origin`.
    pub fn cosigned(&self, origin: &str) -> Option<CosignedHead> {
        self.state.lock().expect("witness lock poisoned").get(origin).copied()
    }

    /// Alarm counts since this witness was opened.
    pub fn alarms(&self) -> WitnessAlarms {
        WitnessAlarms {
            forks: self.forks.load(Ordering::Relaxed),
            rollbacks: self.rollbacks.load(Ordering::Relaxed),
            inconsistent: self.inconsistent.load(Ordering::Relaxed),
        }
    }

    /// Cosigns `checkpoint` (a signed note) given a consistency proof from the last head
    /// this witness cosigned for its log (empty for the first one, or for the same size).
    /// Blocks on an fsync: call it from a blocking context.
    pub fn cosign(&self, checkpoint: &str, consistency_proof: &[Hash]) -> Result<NoteSignature, WitnessError> {
        self.cosign_inner(None, checkpoint, consistency_proof)
    }

    /// Like [`Witness::cosign`], but the caller also states the size it believes the witness
    /// is at (`old` in tlog-witness); a different one is a [`WitnessError::Conflict`].
    pub fn cosign_from(
        &self,
        old_size: u64,
        checkpoint: &str,
        consistency_proof: &[Hash],
    ) -> Result<NoteSignature, WitnessError> {
        self.cosign_inner(Some(old_size), checkpoint, consistency_proof)
    }

    fn cosign_inner(&self, old_size: Option<u64>, text: &str, proof: &[Hash]) -> Result<NoteSignature, WitnessError> {
        let unverified = SignedCheckpoint::parse_unverified(text)?;
        let origin = unverified.checkpoint().origin.clone();
        let log_key = self
            .logs
            .read()
            .expect("witness lock poisoned")
            .get(&origin)
            .cloned()
            .ok_or_else(|| WitnessError::UnknownLog { origin: origin.clone() })?;
        let signed = SignedCheckpoint::verify(text, &log_key)?;
        let presented = signed.checkpoint();

        // Held across the check, the state write and the signature, so two concurrent
        // requests cannot both advance from the same head.
        let mut state = self.state.lock().expect("witness lock poisoned");
        let previous = state.get(&origin).copied();
        let witness_size = previous.map_or(0, |p| p.size);
        if let Some(claimed) = old_size
            && claimed != witness_size
        {
            return Err(WitnessError::Conflict { origin, witness_size, claimed_old_size: claimed });
        }
        if let Some(previous) = previous {
            if presented.size < previous.size {
                self.rollbacks.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    origin = %origin, cosigned_size = previous.size, presented_size = presented.size,
                    "witness alarm: rollback, a log presented a smaller tree than one already cosigned"
                );
                return Err(WitnessError::Rollback { origin, cosigned: previous.size, presented: presented.size });
            }
            if presented.size == previous.size && presented.root != previous.root {
                self.forks.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    origin = %origin, size = presented.size, cosigned_root = %previous.root,
                    presented_root = %presented.root,
                    "witness alarm: fork, a log signed two different roots for the same size"
                );
                return Err(WitnessError::Fork {
                    origin,
                    size: presented.size,
                    cosigned: previous.root,
                    presented: presented.root,
                });
            }
            if let Err(source) =
                verify_consistency(previous.size, presented.size, &previous.root, &presented.root, proof)
            {
                self.inconsistent.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    origin = %origin, cosigned_size = previous.size, presented_size = presented.size, error = %source,
                    "witness alarm: a log presented a tree that is not consistent with the one already cosigned"
                );
                return Err(WitnessError::Inconsistent {
                    origin,
                    old_size: previous.size,
                    new_size: presented.size,
                    source,
                });
            }
        } else if !proof.is_empty() {
            return Err(WitnessError::Conflict { origin, witness_size: 0, claimed_old_size: old_size.unwrap_or(0) });
        }

        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let cosignature = self.signer.cosign(signed.note().text(), now)?;
        let mut next = state.clone();
        next.insert(origin.clone(), CosignedHead { size: presented.size, root: presented.root, timestamp: now });
        // Durable before the cosignature leaves: a witness that forgot what it signed could
        // be talked into cosigning a fork after a restart.
        self.persist(&next)?;
        *state = next;
        tracing::debug!(origin = %origin, size = presented.size, "witness cosigned");
        Ok(cosignature)
    }

    fn persist(&self, logs: &BTreeMap<String, CosignedHead>) -> Result<(), WitnessError> {
        let err = |detail: String| WitnessError::State { path: self.path.clone(), detail };
        let bytes =
            serde_json::to_vec_pretty(&StateFile { version: 1, logs: logs.clone() }).map_err(|e| err(e.to_string()))?;
        write_atomically(&self.path, &bytes).map_err(|e| err(e.to_string()))
    }
}

/// Writes `bytes` to `path` via a temporary file, fsync and rename, then syncs the directory.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}
