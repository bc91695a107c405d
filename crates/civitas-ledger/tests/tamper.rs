//! Offline verification with nothing but the log's public key: a flipped byte anywhere in an
//! entry, a proof, a checkpoint or a tile is detected; a checkpoint signed by another key is
//! rejected; a proof for another tree size fails.

use civitas_ledger::merkle::{inclusion_path, root_of};
use civitas_ledger::tiles::{TileError, TilePath, TileReader, verify_entries_bundle};
use civitas_ledger::{
    Entry, EntryKind, InclusionProof, Ledger, LedgerOptions, NodeKey, NoteVerifier, SignedCheckpoint, VerifyError,
    verify_checkpoint, verify_entry,
};
use serde_json::json;

const ORIGIN: &str = "civitas.test/ledger/tamper";

struct Fixture {
    _dir: tempfile::TempDir,
    ledger: Ledger,
    key: NoteVerifier,
    checkpoint: String,
}

fn fixture(size: u64) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path(), LedgerOptions::new(ORIGIN)).unwrap();
    let node_key = NodeKey::from_seed(&[3; 32]);
    let signer = node_key.log_signer(ORIGIN).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let checkpoint = runtime.block_on(async {
        let entries = (0..size)
            .map(|i| Entry::new(EntryKind::Task, json!({"task": i, "site": "urn:site:vienna", "ok": true})).unwrap())
            .collect();
        ledger.append_batch(entries).await.unwrap();
        ledger.checkpoint(&signer).await.unwrap().to_string()
    });
    Fixture { _dir: dir, ledger, key: signer.verifier(), checkpoint }
}

#[test]
fn a_genuine_entry_verifies_offline() {
    let f = fixture(1000);
    // The verifier key travels as text, as `civitas ledger pubkey` prints it.
    let key: NoteVerifier = f.key.to_string().parse().unwrap();
    for index in [0, 1, 499, 998, 999] {
        let proof = f.ledger.inclusion_proof(index, 1000).unwrap();
        let entry = f.ledger.get_canonical(index).unwrap();
        let verified = verify_entry(&key, &f.checkpoint, &proof, &entry).unwrap();
        assert_eq!(verified.index, index);
        assert_eq!(verified.checkpoint.size, 1000);
    }
}

#[test]
fn every_flipped_byte_of_an_entry_is_detected() {
    let f = fixture(300);
    let proof = f.ledger.inclusion_proof(123, 300).unwrap();
    let entry = f.ledger.get_canonical(123).unwrap();
    for i in 0..entry.len() {
        for bit in [0x01, 0x20, 0x80] {
            let mut bad = entry.clone();
            bad[i] ^= bit;
            assert!(verify_entry(&f.key, &f.checkpoint, &proof, &bad).is_err(), "byte {i} ^ {bit:#x} went unnoticed");
        }
    }
    // Reformatted (same JSON, other bytes): refused too, as not canonical.
    let pretty = serde_json::to_vec_pretty(&serde_json::from_slice::<serde_json::Value>(&entry).unwrap()).unwrap();
    assert!(matches!(verify_entry(&f.key, &f.checkpoint, &proof, &pretty), Err(VerifyError::Entry(_))));
}

#[test]
fn every_flipped_byte_of_a_proof_is_detected() {
    let f = fixture(300);
    let proof = f.ledger.inclusion_proof(77, 300).unwrap();
    let entry = f.ledger.get_canonical(77).unwrap();
    let text = serde_json::to_vec(&proof).unwrap();
    for i in 0..text.len() {
        for bit in [0x01, 0x02, 0x40] {
            let mut bad = text.clone();
            bad[i] ^= bit;
            let Ok(parsed) = serde_json::from_slice::<InclusionProof>(&bad) else { continue };
            assert!(
                verify_entry(&f.key, &f.checkpoint, &parsed, &entry).is_err(),
                "proof byte {i} ^ {bit:#x} went unnoticed: {}",
                String::from_utf8_lossy(&bad)
            );
        }
    }
}

#[test]
fn every_flipped_byte_of_a_checkpoint_is_detected() {
    let f = fixture(300);
    let proof = f.ledger.inclusion_proof(5, 300).unwrap();
    let entry = f.ledger.get_canonical(5).unwrap();
    let bytes = f.checkpoint.as_bytes().to_vec();
    for i in 0..bytes.len() {
        for bit in [0x01, 0x04, 0x20] {
            let mut bad = bytes.clone();
            bad[i] ^= bit;
            let Ok(text) = String::from_utf8(bad) else { continue };
            assert!(verify_checkpoint(&f.key, &text).is_err(), "checkpoint byte {i} ^ {bit:#x} went unnoticed");
            assert!(verify_entry(&f.key, &text, &proof, &entry).is_err());
        }
    }
}

#[test]
fn a_checkpoint_signed_by_another_key_is_rejected() {
    let f = fixture(10);
    let impostor = NodeKey::from_seed(&[4; 32]).log_signer(ORIGIN).unwrap();
    let forged = impostor.sign_note(&SignedCheckpoint::parse_unverified(&f.checkpoint).unwrap().checkpoint().to_text());
    let forged = forged.unwrap().to_string();
    let err = verify_checkpoint(&f.key, &forged).unwrap_err();
    assert!(err.to_string().contains("no signature by"), "{err}");
    // The genuine signature plus the impostor's: the trusted one is what counts.
    let mut both = SignedCheckpoint::parse_unverified(&f.checkpoint).unwrap();
    both.add_cosignature(civitas_ledger::Note::parse(&forged).unwrap().signatures()[0].clone());
    // Same name, different key ID: ignored, as the signed-note spec requires.
    verify_checkpoint(&f.key, &both.to_string()).unwrap();
    // A key of another log name is refused before any signature is looked at.
    let other = NodeKey::from_seed(&[3; 32]).log_verifier("civitas.test/ledger/other").unwrap();
    assert!(verify_checkpoint(&other, &f.checkpoint).is_err());
}

#[test]
fn a_proof_for_another_tree_size_fails() {
    let f = fixture(300);
    let entry = f.ledger.get_canonical(10).unwrap();
    for size in [11, 200, 299] {
        let proof = f.ledger.inclusion_proof(10, size).unwrap();
        let err = verify_entry(&f.key, &f.checkpoint, &proof, &entry).unwrap_err();
        assert!(matches!(err, VerifyError::SizeMismatch { proof: p, checkpoint: 300 } if p == size), "{err}");
        // Relabelled as a proof for size 300, it still fails.
        let relabelled = InclusionProof { tree_size: 300, ..proof };
        assert!(verify_entry(&f.key, &f.checkpoint, &relabelled, &entry).is_err());
    }
    // The proof of another entry does not prove this one.
    let other = f.ledger.inclusion_proof(11, 300).unwrap();
    assert!(verify_entry(&f.key, &f.checkpoint, &other, &entry).is_err());
    let relabelled = InclusionProof { index: 10, leaf_hash: civitas_ledger::merkle::leaf_hash(&entry), ..other };
    assert!(verify_entry(&f.key, &f.checkpoint, &relabelled, &entry).is_err());
}

#[test]
fn tiles_rebuild_the_signed_root_and_any_flipped_byte_breaks_it() {
    // Three tile levels: 70,000 entries as in the tlog-tiles example.
    let size = 70_000;
    let f = fixture(size);
    let checkpoint = verify_checkpoint(&f.key, &f.checkpoint).unwrap();
    let reader = TileReader::new(size, checkpoint.root, |path: &TilePath| f.ledger.read_tile(path));
    assert_eq!(root_of(&reader, size).unwrap(), checkpoint.root);
    // Proofs built from verified tiles are the ledger's own.
    for index in [0, 255, 256, 65_535, 65_536, 69_999] {
        let from_tiles = inclusion_path(&reader, index, size).unwrap();
        assert_eq!(from_tiles, f.ledger.inclusion_proof(index, size).unwrap().hashes, "leaf {index}");
    }

    // Full tiles (checked against the tile above) and partial ones (checked against the root).
    let tiles = [
        TilePath::Hashes { level: 0, index: 0, width: 256 },
        TilePath::Hashes { level: 0, index: 255, width: 256 },
        TilePath::Hashes { level: 0, index: 273, width: 112 },
        TilePath::Hashes { level: 1, index: 0, width: 256 },
        TilePath::Hashes { level: 1, index: 1, width: 17 },
        TilePath::Hashes { level: 2, index: 0, width: 1 },
    ];
    for tampered in tiles {
        for byte in [0usize, 31, 32 * (usize::from(tampered.width()) - 1) + 7] {
            let fetch = |path: &TilePath| -> Result<Vec<u8>, civitas_ledger::LedgerError> {
                let mut tile = f.ledger.read_tile(path)?;
                if *path == tampered {
                    tile[byte] ^= 0x01;
                }
                Ok(tile)
            };
            let reader = TileReader::new(size, checkpoint.root, fetch);
            // Read every leaf's proof that touches the tampered tile (and a few more).
            let mut detected = None;
            for index in [0, 255 * 256 + 3, 65_535, 69_999, 273 * 256 + 5] {
                if let Err(e) = inclusion_path(&reader, index, size) {
                    detected = Some(e);
                    break;
                }
            }
            match detected {
                Some(TileError::Mismatch(_)) => {}
                other => panic!("{tampered} byte {byte} flipped: not detected ({other:?})"),
            }
        }
    }

    // Entry bundles check against their level-0 tile.
    let bundle = f.ledger.entries_bundle(273, 112).unwrap();
    let tile = f.ledger.tile(0, 273, 112).unwrap();
    verify_entries_bundle(&bundle, &tile).unwrap();
    let mut bad = bundle.clone();
    bad[40] ^= 0x01;
    assert!(matches!(verify_entries_bundle(&bad, &tile), Err(TileError::Mismatch(_))));
    // A tile of the wrong length is refused outright.
    let short = |path: &TilePath| -> Result<Vec<u8>, std::io::Error> {
        let mut t = f.ledger.read_tile(path).unwrap();
        t.pop();
        Ok(t)
    };
    assert!(root_of(&TileReader::new(size, checkpoint.root, short), size).is_err());
}
