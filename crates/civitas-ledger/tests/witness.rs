//! Witness cosigning: consistent growth is cosigned; a fork, a rollback and an inconsistent
//! tree are refused with an alarm; the state survives a restart.

use std::path::Path;

use civitas_ledger::note::SIG_TYPE_COSIGNATURE_V1;
use civitas_ledger::{
    Entry, EntryKind, Ledger, LedgerOptions, NodeKey, NoteSigner, SignedCheckpoint, Witness, WitnessError,
};
use serde_json::json;

const ORIGIN: &str = "civitas.test/ledger/vienna";
const WITNESS: &str = "civitas.test/witness/graz";

fn log_key() -> NodeKey {
    NodeKey::from_seed(&[10; 32])
}

fn witness_at(path: &Path) -> Witness {
    let witness = Witness::open(path, NodeKey::from_seed(&[20; 32]).witness_signer(WITNESS).unwrap()).unwrap();
    witness.trust_log(log_key().log_verifier(ORIGIN).unwrap());
    witness
}

/// A log whose entries are `{"i": i, "branch": branch}`: two branches with the same key
/// are a forked log.
struct Log {
    _dir: tempfile::TempDir,
    ledger: Ledger,
    signer: NoteSigner,
    branch: &'static str,
    runtime: tokio::runtime::Runtime,
}

impl Log {
    fn new(branch: &'static str) -> Log {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path(), LedgerOptions::new(ORIGIN)).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        Log { _dir: dir, ledger, signer: log_key().log_signer(ORIGIN).unwrap(), branch, runtime }
    }

    /// Grows the log to `size` and returns its signed checkpoint.
    fn grow_to(&self, size: u64) -> String {
        let from = self.ledger.size();
        let branch = self.branch;
        self.runtime.block_on(async {
            let entries =
                (from..size).map(|i| Entry::new(EntryKind::Deal, json!({"i": i, "branch": branch})).unwrap()).collect();
            self.ledger.append_batch(entries).await.unwrap();
            self.ledger.checkpoint(&self.signer).await.unwrap().to_string()
        })
    }

    fn proof(&self, old: u64, new: u64) -> Vec<civitas_ledger::Hash> {
        self.ledger.consistency_proof(old, new).unwrap().hashes
    }
}

#[test]
fn consistent_growth_is_cosigned_and_the_cosignature_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let witness = witness_at(&dir.path().join("witness.json"));
    let log = Log::new("main");

    let c10 = log.grow_to(10);
    let sig = witness.cosign(&c10, &[]).unwrap();
    assert_eq!(sig.name, WITNESS);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!(sig.cosignature_timestamp().unwrap().abs_diff(now) < 60);
    // The cosignature verifies under the witness's type-0x04 key, next to the log's own.
    let mut cosigned = SignedCheckpoint::parse_unverified(&c10).unwrap();
    cosigned.add_cosignature(sig.clone());
    let witness_key = witness.verifier();
    assert_eq!(witness_key.sig_type(), SIG_TYPE_COSIGNATURE_V1);
    let text = cosigned.to_string();
    cosigned.note().verify(&witness_key).unwrap();
    SignedCheckpoint::verify(&text, &log_key().log_verifier(ORIGIN).unwrap()).unwrap();
    // The witness key string parses back, and a cosignature on other text does not verify.
    let parsed: civitas_ledger::NoteVerifier = witness_key.to_string().parse().unwrap();
    let c11 = log.grow_to(11);
    let mut wrong = SignedCheckpoint::parse_unverified(&c11).unwrap();
    wrong.add_cosignature(sig);
    assert!(wrong.note().verify(&parsed).is_err());

    // Growth with a consistency proof from the cosigned size.
    witness.cosign(&c11, &log.proof(10, 11)).unwrap();
    let c500 = log.grow_to(500);
    witness.cosign_from(11, &c500, &log.proof(11, 500)).unwrap();
    assert_eq!(witness.cosigned(ORIGIN).unwrap().size, 500);
    // The same head again is fine.
    witness.cosign(&c500, &[]).unwrap();
    assert_eq!(witness.alarms().total(), 0);
}

#[test]
fn a_fork_at_the_same_size_is_refused_with_an_alarm() {
    let dir = tempfile::tempdir().unwrap();
    let witness = witness_at(&dir.path().join("witness.json"));
    let (main, fork) = (Log::new("main"), Log::new("fork"));
    witness.cosign(&main.grow_to(20), &[]).unwrap();
    let err = witness.cosign(&fork.grow_to(20), &[]).unwrap_err();
    assert!(matches!(err, WitnessError::Fork { size: 20, .. }), "{err}");
    assert!(err.is_alarm());
    assert_eq!(witness.alarms().forks, 1);
    assert_eq!(witness.cosigned(ORIGIN).unwrap().root, main.ledger.root(20).unwrap(), "state unchanged");
}

#[test]
fn a_forked_larger_tree_is_refused_with_an_alarm() {
    let dir = tempfile::tempdir().unwrap();
    let witness = witness_at(&dir.path().join("witness.json"));
    let (main, fork) = (Log::new("main"), Log::new("fork"));
    witness.cosign(&main.grow_to(20), &[]).unwrap();
    // The fork's own proof from 20 is valid for the fork, not from the root the witness saw.
    let c30 = fork.grow_to(30);
    let err = witness.cosign(&c30, &fork.proof(20, 30)).unwrap_err();
    assert!(matches!(err, WitnessError::Inconsistent { old_size: 20, new_size: 30, .. }), "{err}");
    // A made-up proof does no better.
    let err = witness.cosign(&main.grow_to(30), &fork.proof(20, 30)).unwrap_err();
    assert!(err.is_alarm(), "{err}");
    assert_eq!(witness.alarms().inconsistent, 2);
    // The genuine log with its genuine proof is still cosigned.
    witness.cosign(&main.grow_to(31), &main.proof(20, 31)).unwrap();
}

#[test]
fn a_rollback_is_refused_with_an_alarm() {
    let dir = tempfile::tempdir().unwrap();
    let witness = witness_at(&dir.path().join("witness.json"));
    let log = Log::new("main");
    let c5 = log.grow_to(5);
    witness.cosign(&c5, &[]).unwrap();
    let c9 = log.grow_to(9);
    witness.cosign(&c9, &log.proof(5, 9)).unwrap();
    let err = witness.cosign(&c5, &[]).unwrap_err();
    assert!(matches!(err, WitnessError::Rollback { cosigned: 9, presented: 5, .. }), "{err}");
    assert_eq!(witness.alarms().rollbacks, 1);
}

#[test]
fn bad_requests_are_refused_without_an_alarm() {
    let dir = tempfile::tempdir().unwrap();
    let witness = witness_at(&dir.path().join("witness.json"));
    let log = Log::new("main");
    let c5 = log.grow_to(5);
    // Signed by another key under the log's name.
    let impostor = NodeKey::from_seed(&[99; 32]).log_signer(ORIGIN).unwrap();
    let forged = impostor.sign_note(SignedCheckpoint::parse_unverified(&c5).unwrap().note().text()).unwrap();
    assert!(matches!(witness.cosign(&forged.to_string(), &[]), Err(WitnessError::BadCheckpoint(_))));
    // A log the witness does not know.
    let stranger = NodeKey::from_seed(&[10; 32]).log_signer("civitas.test/ledger/nowhere").unwrap();
    let text = stranger.sign_note("civitas.test/ledger/nowhere\n1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n");
    assert!(matches!(witness.cosign(&text.unwrap().to_string(), &[]), Err(WitnessError::UnknownLog { .. })));
    // Not a checkpoint at all.
    assert!(witness.cosign("hello\n", &[]).is_err());
    // A stale idea of the witness's size.
    witness.cosign(&c5, &[]).unwrap();
    let c7 = log.grow_to(7);
    let err = witness.cosign_from(3, &c7, &log.proof(3, 7)).unwrap_err();
    assert!(matches!(err, WitnessError::Conflict { witness_size: 5, claimed_old_size: 3, .. }), "{err}");
    assert_eq!(witness.alarms().total(), 0);
}

#[test]
fn the_witness_remembers_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state/witness.json");
    let (main, fork) = (Log::new("main"), Log::new("fork"));
    {
        let witness = witness_at(&path);
        witness.cosign(&main.grow_to(12), &[]).unwrap();
    }
    let witness = witness_at(&path);
    assert_eq!(witness.cosigned(ORIGIN).unwrap().size, 12);
    assert!(matches!(witness.cosign(&fork.grow_to(12), &[]), Err(WitnessError::Fork { .. })));
    // A damaged state file is an error, not a fresh start that would cosign anything.
    std::fs::write(&path, b"{not json").unwrap();
    assert!(Witness::open(&path, NodeKey::from_seed(&[20; 32]).witness_signer(WITNESS).unwrap()).is_err());
}
