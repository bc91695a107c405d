//! Published test vectors: the RFC 6962 / Certificate Transparency reference tree (the eight
//! standard leaves, their roots at every size, inclusion and consistency proofs) and the
//! signed-note known answers of Go's `golang.org/x/mod/sumdb/note` and
//! `transparency-dev/formats`. A log no other implementation agrees with proves nothing.

use civitas_ledger::merkle::{
    Hash, MemoryTree, NodeSource, empty_root, leaf_hash, node_hash, verify_consistency, verify_inclusion,
};
use civitas_ledger::note::{SIG_TYPE_COSIGNATURE_V1, SIG_TYPE_ED25519};
use civitas_ledger::{Note, NoteSignature, NoteSigner, NoteVerifier};

/// The eight leaves of the CT reference tree, hex.
const LEAVES: [&str; 8] =
    ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"];

/// Root hashes for tree sizes 0..=8.
const ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

/// Every complete subtree of the 8-leaf tree, by level.
const NODES: [&[&str]; 4] = [
    &[
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    ],
    &[
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    ],
    &[
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    &["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
];

/// (leaf index, tree size, audit path) as published (certificate-transparency / trillian).
const INCLUSION: [(u64, u64, &[&str]); 5] = [
    (0, 1, &[]),
    (
        0,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        &[
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        &[
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
];

/// (old size, new size, proof) as published.
const CONSISTENCY: [(u64, u64, &[&str]); 4] = [
    (1, 1, &[]),
    (
        1,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        &[
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
];

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn h(s: &str) -> Hash {
    Hash::from_hex(s).unwrap()
}

fn hashes(list: &[&str]) -> Vec<Hash> {
    list.iter().map(|s| h(s)).collect()
}

fn reference_tree() -> MemoryTree {
    MemoryTree::from_leaf_hashes(LEAVES.iter().map(|l| leaf_hash(&unhex(l))))
}

#[test]
fn roots_match_rfc6962_at_every_size() {
    assert_eq!(empty_root(), h(ROOTS[0]));
    let tree = reference_tree();
    for (size, want) in ROOTS.iter().enumerate() {
        assert_eq!(tree.root(size as u64).unwrap(), h(want), "root of size {size}");
    }
    // Leaf and node hashing on their own.
    assert_eq!(leaf_hash(b""), h(ROOTS[1]));
    assert_eq!(node_hash(&leaf_hash(b""), &leaf_hash(&[0])), h(ROOTS[2]));
}

#[test]
fn every_complete_subtree_matches_the_reference() {
    let tree = reference_tree();
    for (level, nodes) in NODES.iter().enumerate() {
        for (index, want) in nodes.iter().enumerate() {
            assert_eq!(tree.node(level as u8, index as u64).unwrap(), h(want), "node ({level}, {index})");
        }
    }
}

#[test]
fn inclusion_proofs_match_and_verify() {
    let tree = reference_tree();
    for (index, size, path) in INCLUSION {
        let want = hashes(path);
        assert_eq!(tree.inclusion_proof(index, size).unwrap(), want, "path of {index} in {size}");
        let leaf = leaf_hash(&unhex(LEAVES[index as usize]));
        let root = h(ROOTS[size as usize]);
        verify_inclusion(&leaf, index, size, &want, &root).unwrap();
        // Wrong leaf, index, size or root, and every altered hash: rejected.
        assert!(verify_inclusion(&leaf_hash(b"other"), index, size, &want, &root).is_err());
        assert!(verify_inclusion(&leaf, index + 1, size, &want, &root).is_err());
        // A proof made for one tree size does not prove inclusion in the tree of another
        // size (checked against that tree's root; against the same root, some sizes share a
        // proof shape, which is why a verifier must take the size from the signed checkpoint).
        if size < 8 {
            assert!(verify_inclusion(&leaf, index, size + 1, &want, &h(ROOTS[size as usize + 1])).is_err());
        }
        assert!(verify_inclusion(&leaf, index, size, &want, &h(ROOTS[size as usize - 1])).is_err());
        for i in 0..want.len() {
            let mut bad = want.clone();
            bad[i].0[7] ^= 1;
            assert!(verify_inclusion(&leaf, index, size, &bad, &root).is_err(), "altered hash {i}");
        }
    }
}

#[test]
fn consistency_proofs_match_and_verify() {
    let tree = reference_tree();
    for (old, new, path) in CONSISTENCY {
        let want = hashes(path);
        assert_eq!(tree.consistency_proof(old, new).unwrap(), want, "proof {old} -> {new}");
        let (old_root, new_root) = (h(ROOTS[old as usize]), h(ROOTS[new as usize]));
        verify_consistency(old, new, &old_root, &new_root, &want).unwrap();
        if old != new {
            assert!(verify_consistency(old, new, &h(ROOTS[old as usize - 1]), &new_root, &want).is_err());
            assert!(verify_consistency(old, new, &old_root, &h(ROOTS[new as usize - 1]), &want).is_err());
            assert!(verify_consistency(old, new - 1, &old_root, &h(ROOTS[new as usize - 1]), &want).is_err());
            for i in 0..want.len() {
                let mut bad = want.clone();
                bad[i].0[0] ^= 0x80;
                assert!(verify_consistency(old, new, &old_root, &new_root, &bad).is_err(), "altered hash {i}");
            }
        }
    }
}

// ---- signed notes: Go's golang.org/x/mod/sumdb/note example -------------------------------

const GO_SIGNER: &str = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const GO_VERIFIER: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const GO_TEXT: &str =
    "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const GO_SIGNATURE_LINE: &str =
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

#[test]
fn signing_reproduces_gos_note_byte_for_byte() {
    let signer = NoteSigner::from_signer_key(GO_SIGNER).unwrap();
    assert_eq!(signer.verifier().to_string(), GO_VERIFIER);
    let note = signer.sign_note(GO_TEXT).unwrap();
    assert_eq!(note.to_string(), format!("{GO_TEXT}\n{GO_SIGNATURE_LINE}"));
}

#[test]
fn gos_note_verifies_and_any_change_does_not() {
    let verifier: NoteVerifier = GO_VERIFIER.parse().unwrap();
    assert_eq!(verifier.key_id(), 0xc74f20a3);
    assert_eq!(verifier.sig_type(), SIG_TYPE_ED25519);
    let text = format!("{GO_TEXT}\n{GO_SIGNATURE_LINE}");
    let note = Note::parse(&text).unwrap();
    assert_eq!(note.text(), GO_TEXT);
    note.verify(&verifier).unwrap();
    let altered = Note::parse(&text.replace("cryptography", "cryptographY")).unwrap();
    assert!(altered.verify(&verifier).is_err());
}

#[test]
fn verifier_keys_of_other_implementations_parse() {
    // transparency-dev/formats: an Ed25519 key whose base64 contains '+', and a native
    // cosignature/v1 (type 0x04) key whose ID is computed with type byte 0x04.
    let plus: NoteVerifier = "TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6".parse().unwrap();
    assert_eq!(plus.name(), "TEST");
    let cosigner: NoteVerifier =
        "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2".parse().unwrap();
    assert_eq!(cosigner.sig_type(), SIG_TYPE_COSIGNATURE_V1);
    assert_eq!(cosigner.key_id(), 0xda77ade7);
    assert_eq!(cosigner.to_string(), "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2");
}

#[test]
fn cosignature_timestamps_decode_as_published() {
    // transparency-dev/formats note_cosigv1_test.go: key ID, then the big-endian timestamp.
    let line =
        "— w ZGhGuQAAAABm/qTPeyKXD+R2rzyQsxPiP8mXum7qq/iF0u4vanlqJyocWODBt97w9uL+8qT7S5gxEHWWOworDcFiEBYJXORmnFBOBA==";
    let sig = NoteSignature::parse_line(line).unwrap();
    assert_eq!(sig.key_id, 0x646846b9);
    assert_eq!(sig.cosignature_timestamp(), Some(1727964367));
    let plain = NoteSignature::parse_line(GO_SIGNATURE_LINE).unwrap();
    assert_eq!(plain.cosignature_timestamp(), None, "an Ed25519 note signature has no timestamp");
}
