//! What open does with damaged or tampered files: a torn tail is cut; repairs of derived
//! files are silent but correct; missing or altered acknowledged data is refused.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;

use civitas_ledger::merkle::{MemoryTree, leaf_hash};
use civitas_ledger::{Entry, EntryKind, Ledger, LedgerError, LedgerOptions, NodeKey, SignedCheckpoint};
use serde_json::json;

const ORIGIN: &str = "civitas.test/ledger/storage";

fn entry(i: u64) -> Entry {
    Entry::new(EntryKind::Deal, json!({"deal": i, "price": i * 3, "parties": ["a", "b"]})).unwrap()
}

fn open(dir: &Path) -> Result<Ledger, LedgerError> {
    Ledger::open(dir, LedgerOptions::new(ORIGIN))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// Appends `count` entries starting at `first`, one commit per `batch` entries.
fn fill(ledger: &Ledger, first: u64, count: u64, batch: u64) {
    runtime().block_on(async {
        let mut i = first;
        while i < first + count {
            let n = batch.min(first + count - i);
            ledger.append_batch((i..i + n).map(entry).collect()).await.unwrap();
            i += n;
        }
    });
}

fn checkpoint(ledger: &Ledger) -> SignedCheckpoint {
    let signer = NodeKey::from_seed(&[1; 32]).log_signer(ORIGIN).unwrap();
    runtime().block_on(ledger.checkpoint(&signer)).unwrap()
}

/// Record offsets and payload lengths, from `entries.idx`.
fn records(dir: &Path) -> Vec<(u64, u64)> {
    let idx = std::fs::read(dir.join("entries.idx")).unwrap();
    idx.chunks_exact(8)
        .map(|c| {
            let v = u64::from_le_bytes(c.try_into().unwrap());
            (v >> 16, v & 0xFFFF)
        })
        .collect()
}

fn flip_byte(path: &Path, offset: u64) {
    let file = OpenOptions::new().read(true).write(true).open(path).unwrap();
    let mut b = [0u8; 1];
    file.read_exact_at(&mut b, offset).unwrap();
    b[0] ^= 0x20;
    file.write_all_at(&b, offset).unwrap();
}

fn expected_root(size: u64) -> civitas_ledger::Hash {
    MemoryTree::from_leaf_hashes((0..size).map(|i| leaf_hash(&entry(i).to_canonical().unwrap()))).root(size).unwrap()
}

#[test]
fn reopen_keeps_every_entry_and_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path()).unwrap();
    fill(&ledger, 0, 1000, 37);
    let root = ledger.root(1000).unwrap();
    drop(ledger);
    let ledger = open(dir.path()).unwrap();
    assert_eq!(ledger.size(), 1000);
    assert_eq!(ledger.root(1000).unwrap(), root);
    assert_eq!(root, expected_root(1000));
    assert_eq!(ledger.get(999).unwrap(), entry(999));
}

#[test]
fn a_torn_tail_is_cut_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path()).unwrap();
    fill(&ledger, 0, 100, 10);
    drop(ledger);
    let log = dir.path().join("entries.log");
    let clean_len = std::fs::metadata(&log).unwrap().len();
    // A record header claiming 200 bytes, followed by 10: a write cut short by a crash.
    let mut torn = vec![0xFF, b'C', b'L', 0x01];
    torn.extend_from_slice(&200u32.to_le_bytes());
    torn.extend_from_slice(&100u64.to_le_bytes());
    torn.extend_from_slice(&[0u8; 16]);
    torn.extend_from_slice(b"{\"data\":{}");
    let file = OpenOptions::new().append(true).open(&log).unwrap();
    file.write_all_at(&torn, clean_len).unwrap();
    drop(file);

    let ledger = open(dir.path()).unwrap();
    assert_eq!(ledger.size(), 100);
    assert_eq!(std::fs::metadata(&log).unwrap().len(), clean_len, "the torn tail is cut off");
    fill(&ledger, 100, 5, 5);
    assert_eq!(ledger.root(105).unwrap(), expected_root(105));
}

#[test]
fn a_batch_torn_in_the_middle_is_a_torn_tail() {
    // The pages of an unsynced batch can reach the disk in any order: a damaged first
    // record followed by intact records of the same batch is still a torn tail.
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path()).unwrap();
    fill(&ledger, 0, 50, 50);
    fill(&ledger, 50, 20, 20);
    drop(ledger);
    let recs = records(dir.path());
    let (offset, _) = recs[50];
    flip_byte(&dir.path().join("entries.log"), offset + 40);
    let ledger = open(dir.path()).unwrap();
    assert_eq!(ledger.size(), 50, "the damaged batch (entries 50..70) was never acknowledged as far as open knows");
    assert_eq!(ledger.root(50).unwrap(), expected_root(50));
}

#[test]
fn damage_before_a_later_commit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path()).unwrap();
    fill(&ledger, 0, 30, 10);
    drop(ledger);
    let recs = records(dir.path());
    let (offset, _) = recs[12];
    flip_byte(&dir.path().join("entries.log"), offset + 45);
    let err = open(dir.path()).unwrap_err();
    assert!(matches!(err, LedgerError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("entry 12"), "{err}");
    assert!(err.to_string().contains("later commit"), "{err}");
}

#[test]
fn damage_under_a_signed_checkpoint_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path()).unwrap();
    fill(&ledger, 0, 40, 40);
    checkpoint(&ledger);
    drop(ledger);
    let recs = records(dir.path());
    // The last entry: without the checkpoint this would look like a torn tail.
    let (offset, _) = recs[39];
    flip_byte(&dir.path().join("entries.log"), offset + 33);
    let err = open(dir.path()).unwrap_err();
    assert!(matches!(err, LedgerError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("covered by the last signed checkpoint"), "{err}");
}

#[test]
fn a_log_truncated_below_its_checkpoint_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path()).unwrap();
    fill(&ledger, 0, 60, 7);
    checkpoint(&ledger);
    fill(&ledger, 60, 10, 10);
    drop(ledger);
    let recs = records(dir.path());
    let log = dir.path().join("entries.log");
    // Cut exactly at a record boundary: every remaining record is intact.
    OpenOptions::new().write(true).open(&log).unwrap().set_len(recs[55].0).unwrap();
    let err = open(dir.path()).unwrap_err();
    match &err {
        LedgerError::Truncated { entries, checkpoint_size, .. } => assert_eq!((*entries, *checkpoint_size), (55, 60)),
        other => panic!("expected Truncated, got {other}"),
    }
    // Cutting inside a record below the checkpoint is refused too.
    OpenOptions::new().write(true).open(&log).unwrap().set_len(recs[20].0 + 10).unwrap();
    assert!(matches!(open(dir.path()).unwrap_err(), LedgerError::Corrupt { .. }));
}

#[test]
fn another_logs_entries_are_refused() {
    // Every record of the other log is intact; only the signed root gives it away.
    let ours = tempfile::tempdir().unwrap();
    let theirs = tempfile::tempdir().unwrap();
    let ledger = open(ours.path()).unwrap();
    fill(&ledger, 0, 20, 20);
    checkpoint(&ledger);
    drop(ledger);
    let other = open(theirs.path()).unwrap();
    fill(&other, 1, 20, 20);
    drop(other);
    std::fs::copy(theirs.path().join("entries.log"), ours.path().join("entries.log")).unwrap();
    let err = open(ours.path()).unwrap_err();
    assert!(matches!(err, LedgerError::RootMismatch { size: 20, .. }), "{err}");
}

#[test]
fn damaged_derived_files_are_rebuilt_from_the_entries() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path()).unwrap();
    fill(&ledger, 0, 700, 100);
    drop(ledger);
    flip_byte(&dir.path().join("tree/level-0"), 32 * 300 + 5);
    flip_byte(&dir.path().join("tree/level-3"), 32 * 10);
    flip_byte(&dir.path().join("entries.idx"), 8 * 123 + 3);
    std::fs::OpenOptions::new().write(true).open(dir.path().join("tree/level-1")).unwrap().set_len(64).unwrap();
    let ledger = open(dir.path()).unwrap();
    assert_eq!(ledger.root(700).unwrap(), expected_root(700));
    assert_eq!(ledger.get(123).unwrap(), entry(123));
    let proof = ledger.inclusion_proof(300, 700).unwrap();
    proof.verify(&entry(300).leaf_hash().unwrap(), &expected_root(700)).unwrap();
}

#[test]
fn reads_detect_a_record_altered_while_open() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path()).unwrap();
    fill(&ledger, 0, 10, 10);
    let (offset, _) = records(dir.path())[4];
    flip_byte(&dir.path().join("entries.log"), offset + 40);
    let err = ledger.get(4).unwrap_err();
    assert!(matches!(err, LedgerError::Corrupt { .. }), "{err}");
    assert!(ledger.entries_bundle(0, 10).is_err());
    assert_eq!(ledger.get(5).unwrap(), entry(5));
}

#[test]
fn one_process_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path()).unwrap();
    assert!(matches!(open(dir.path()).unwrap_err(), LedgerError::Locked { .. }));
    drop(first);
    open(dir.path()).unwrap();
}

#[test]
fn the_directory_is_bound_to_its_origin() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path()).unwrap();
    fill(&ledger, 0, 3, 3);
    checkpoint(&ledger);
    drop(ledger);
    let err = Ledger::open(dir.path(), LedgerOptions::new("civitas.test/ledger/other")).unwrap_err();
    assert!(matches!(err, LedgerError::OriginMismatch { .. }), "{err}");
}

#[test]
fn an_unreadable_checkpoint_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path()).unwrap();
    fill(&ledger, 0, 3, 3);
    checkpoint(&ledger);
    drop(ledger);
    std::fs::write(dir.path().join("checkpoint"), "garbage\n").unwrap();
    assert!(matches!(open(dir.path()).unwrap_err(), LedgerError::Corrupt { .. }));
}

#[test]
fn reads_and_tiles_stay_in_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path()).unwrap();
    fill(&ledger, 0, 300, 300);
    assert!(matches!(ledger.get(300), Err(LedgerError::NotFound { index: 300, size: 300 })));
    assert!(ledger.root(301).is_err());
    assert!(ledger.inclusion_proof(5, 301).is_err());
    assert!(ledger.inclusion_proof(300, 300).is_err());
    assert!(ledger.consistency_proof(10, 5).is_err());
    assert_eq!(ledger.tile(0, 0, 256).unwrap().len(), 8192);
    assert_eq!(ledger.tile(0, 1, 44).unwrap().len(), 44 * 32);
    assert!(ledger.tile(0, 1, 45).is_err(), "beyond the tree");
    assert_eq!(ledger.tile(1, 0, 1).unwrap().len(), 32);
    assert!(ledger.tile(1, 0, 2).is_err());
    assert!(ledger.tile(0, 0, 0).is_err());
    assert!(ledger.entries_bundle(1, 45).is_err());
    assert!(ledger.entries_bundle(1, 44).is_ok());
}

#[test]
fn checkpoints_are_reused_until_the_tree_grows_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path()).unwrap();
    fill(&ledger, 0, 5, 5);
    let a = checkpoint(&ledger);
    let b = checkpoint(&ledger);
    assert_eq!(a, b);
    fill(&ledger, 5, 1, 1);
    let c = checkpoint(&ledger);
    assert_eq!(c.checkpoint().size, 6);
    let other_name = NodeKey::from_seed(&[1; 32]).log_signer("civitas.test/ledger/elsewhere").unwrap();
    assert!(runtime().block_on(ledger.checkpoint(&other_name)).is_err(), "the key must be named after the origin");
    drop(ledger);
    let ledger = open(dir.path()).unwrap();
    assert_eq!(ledger.latest_checkpoint(), Some(c));
}
