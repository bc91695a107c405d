//! Proofs from a real ledger on disk, for every tree size up to 2,048: roots, inclusion of
//! every leaf for sizes up to 300 (sampled beyond), consistency between sizes, each checked
//! against an independent in-memory tree and by the RFC 9162 verifiers; and property tests
//! of consistency and inclusion between random sizes.

use std::sync::OnceLock;

use civitas_ledger::merkle::{MemoryTree, leaf_hash, verify_consistency, verify_inclusion};
use civitas_ledger::{Entry, EntryKind, Hash, Ledger, LedgerOptions};
use proptest::prelude::*;
use serde_json::json;

const ORIGIN: &str = "civitas.test/ledger/proofs";
const SIZE: u64 = 2048;

fn entry(i: u64) -> Entry {
    Entry::new(EntryKind::Note, json!({"i": i, "text": format!("entry number {i}")})).unwrap()
}

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn disk_proofs_match_an_independent_tree_at_every_size() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let ledger = Ledger::open(dir.path(), LedgerOptions::new(ORIGIN)).unwrap();
    // Batches of uneven sizes, so commits end at every kind of boundary.
    let mut rng = Rng(0x9e3779b97f4a7c15);
    runtime.block_on(async {
        let mut next = 0u64;
        while next < SIZE {
            let n = (1 + rng.below(300)).min(SIZE - next);
            let range = ledger.append_batch((next..next + n).map(entry).collect()).await.unwrap();
            assert_eq!(range, next..next + n);
            next += n;
        }
    });
    assert_eq!(ledger.size(), SIZE);
    let reference = MemoryTree::from_leaf_hashes((0..SIZE).map(|i| leaf_hash(&entry(i).to_canonical().unwrap())));

    for size in 1..=SIZE {
        let root = ledger.root(size).unwrap();
        assert_eq!(Some(root), reference.root(size), "root of size {size}");
        let indexes: Vec<u64> = if size <= 300 {
            (0..size).collect()
        } else {
            let mut v = vec![0, size - 1, size / 2];
            v.extend((0..5).map(|_| rng.below(size)));
            v
        };
        for index in indexes {
            let proof = ledger.inclusion_proof(index, size).unwrap();
            assert_eq!(Some(&proof.hashes), reference.inclusion_proof(index, size).as_ref(), "path {index}/{size}");
            assert_eq!(proof.leaf_hash, ledger.leaf_hash(index).unwrap());
            verify_inclusion(&proof.leaf_hash, index, size, &proof.hashes, &root)
                .unwrap_or_else(|e| panic!("leaf {index} in {size}: {e}"));
        }
        for old in [1, size / 2, size - 1, 1 + rng.below(size)] {
            let proof = ledger.consistency_proof(old, size).unwrap();
            assert_eq!(Some(&proof.hashes), reference.consistency_proof(old, size).as_ref(), "{old} -> {size}");
            proof.verify(&ledger.root(old).unwrap(), &root).unwrap_or_else(|e| panic!("{old} -> {size}: {e}"));
        }
    }

    // The same after a reopen, which rebuilds the in-memory levels from the entries.
    drop(ledger);
    let ledger = Ledger::open(dir.path(), LedgerOptions::new(ORIGIN)).unwrap();
    for size in [1, 255, 256, 257, 1000, 1024, 2047, 2048] {
        assert_eq!(Some(ledger.root(size).unwrap()), reference.root(size));
    }
}

#[test]
fn tampered_proofs_fail() {
    let tree = MemoryTree::from_leaf_hashes((0..1000u64).map(|i| leaf_hash(&i.to_be_bytes())));
    let mut rng = Rng(42);
    for _ in 0..300 {
        let size = 2 + rng.below(999);
        let index = rng.below(size);
        let root = tree.root(size).unwrap();
        let leaf = leaf_hash(&index.to_be_bytes());
        let path = tree.inclusion_proof(index, size).unwrap();
        verify_inclusion(&leaf, index, size, &path, &root).unwrap();
        // Flip any bit of any hash.
        let mut bad = path.clone();
        let i = rng.below(bad.len() as u64) as usize;
        bad[i].0[rng.below(32) as usize] ^= 1 << rng.below(8);
        assert!(verify_inclusion(&leaf, index, size, &bad, &root).is_err());
        // Another index, a shorter or longer path.
        assert!(verify_inclusion(&leaf, (index + 1) % size, size, &path, &root).is_err());
        assert!(verify_inclusion(&leaf, index, size, &path[..path.len() - 1], &root).is_err());
        let mut longer = path.clone();
        longer.push(root);
        assert!(verify_inclusion(&leaf, index, size, &longer, &root).is_err());
        // A proof for this size does not prove inclusion in the tree of another size.
        let other = 1 + (size + rng.below(998)) % 999;
        if other != size && index < other {
            assert!(verify_inclusion(&leaf, index, other, &path, &tree.root(other).unwrap()).is_err());
        }
    }
}

fn big_tree() -> &'static MemoryTree {
    static TREE: OnceLock<MemoryTree> = OnceLock::new();
    TREE.get_or_init(|| MemoryTree::from_leaf_hashes((0..5000u64).map(|i| leaf_hash(&i.to_le_bytes()))))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn consistency_holds_between_random_sizes(a in 0u64..=5000, b in 0u64..=5000) {
        let tree = big_tree();
        let (old, new) = (a.min(b), a.max(b));
        let proof = tree.consistency_proof(old, new).unwrap();
        let (old_root, new_root) = (tree.root(old).unwrap(), tree.root(new).unwrap());
        prop_assert!(verify_consistency(old, new, &old_root, &new_root, &proof).is_ok());
        if old > 0 && old < new {
            // Any other old root, any altered hash: rejected.
            prop_assert!(verify_consistency(old, new, &tree.root(old - 1).unwrap(), &new_root, &proof).is_err());
            for i in 0..proof.len() {
                let mut bad = proof.clone();
                bad[i].0[31] ^= 0x01;
                prop_assert!(verify_consistency(old, new, &old_root, &new_root, &bad).is_err());
            }
            // The reverse direction is never a valid proof.
            prop_assert!(verify_consistency(new, old, &new_root, &old_root, &proof).is_err());
        }
    }

    #[test]
    fn inclusion_holds_for_random_leaves(size in 1u64..=5000, seed in any::<u64>()) {
        let tree = big_tree();
        let index = seed % size;
        let proof = tree.inclusion_proof(index, size).unwrap();
        let leaf = leaf_hash(&index.to_le_bytes());
        prop_assert!(verify_inclusion(&leaf, index, size, &proof, &tree.root(size).unwrap()).is_ok());
        let other: Hash = leaf_hash(b"not in the tree");
        prop_assert!(verify_inclusion(&other, index, size, &proof, &tree.root(size).unwrap()).is_err());
    }
}
