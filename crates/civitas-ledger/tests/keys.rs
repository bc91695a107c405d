//! The node key file, verifier key strings and the checkpoint note format.

use std::os::unix::fs::PermissionsExt;

use civitas_ledger::merkle::leaf_hash;
use civitas_ledger::{Checkpoint, NodeKey, NoteVerifier, SignedCheckpoint};

#[test]
fn the_node_key_is_created_private_and_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data/node.key");
    let created = NodeKey::load_or_create(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let loaded = NodeKey::load_or_create(&path).unwrap();
    let origin = "civitas.test/ledger/a";
    assert_eq!(created.log_verifier(origin).unwrap(), loaded.log_verifier(origin).unwrap());
    // The witness key is a different key.
    assert_ne!(
        created.witness_signer("w").unwrap().verifier().public_key(),
        created.log_verifier(origin).unwrap().public_key()
    );
    // Never printed.
    let text = std::fs::read_to_string(&path).unwrap();
    let secret = text.split_whitespace().nth(1).unwrap();
    assert!(!format!("{created:?}").contains(secret));
    assert!(!format!("{:?}", created.log_signer(origin).unwrap()).contains(secret));
    // Readable by others: refused, with the fix in the message.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = NodeKey::load(&path).unwrap_err().to_string();
    assert!(err.contains("chmod 600"), "{err}");
    // Not a key file.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(&path, "hello world\n").unwrap();
    assert!(NodeKey::load(&path).is_err());
}

#[test]
fn verifier_key_strings_round_trip_and_reject_every_mangling() {
    let key = NodeKey::from_seed(&[5; 32]).log_verifier("civitas.city/ledger/vienna-1").unwrap();
    let text = key.to_string();
    assert!(text.starts_with("civitas.city/ledger/vienna-1+"));
    let parsed: NoteVerifier = text.parse().unwrap();
    assert_eq!(parsed, key);
    // Every proper substring and every single changed byte is refused (as Go's tests do).
    let bytes = text.as_bytes();
    for i in 0..=bytes.len() {
        for j in i + 1..=bytes.len() {
            if (i, j) != (0, bytes.len())
                && let Ok(s) = std::str::from_utf8(&bytes[i..j])
            {
                assert!(s.parse::<NoteVerifier>().is_err(), "substring {s:?} accepted");
            }
        }
    }
    for i in 0..bytes.len() {
        let mut b = bytes.to_vec();
        b[i] = b[i].wrapping_add(1);
        if let Ok(s) = String::from_utf8(b) {
            assert!(s.parse::<NoteVerifier>().is_err(), "{s:?} accepted");
        }
    }
    for bad in ["", "a+b", "a+0000000g+AQ==", "a b+01234567+AQ==", "a+01234567+!!!"] {
        assert!(bad.parse::<NoteVerifier>().is_err(), "{bad:?}");
    }
}

#[test]
fn signed_checkpoints_round_trip_through_text() {
    let key = NodeKey::from_seed(&[6; 32]);
    let origin = "civitas.city/ledger/graz";
    let checkpoint = Checkpoint::new(origin, 20852163, leaf_hash(b"x"));
    let signed = SignedCheckpoint::sign(checkpoint.clone(), &key.log_signer(origin).unwrap()).unwrap();
    let text = signed.to_string();
    // origin, size, base64 root, blank line, one signature line.
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[..4], [origin, "20852163", &checkpoint.root.to_base64()[..], ""]);
    assert!(lines[4].starts_with(&format!("— {origin} ")));
    assert_eq!(lines.len(), 5);
    assert!(text.ends_with('\n'));
    let verified = SignedCheckpoint::verify(&text, &key.log_verifier(origin).unwrap()).unwrap();
    assert_eq!(verified.checkpoint(), &checkpoint);
    assert_eq!(verified, signed);
    // A key named differently from the origin cannot sign it.
    assert!(SignedCheckpoint::sign(checkpoint, &key.log_signer("civitas.city/ledger/linz").unwrap()).is_err());
}
