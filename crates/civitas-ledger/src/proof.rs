//! Proofs as exchanged over the API and the CLI, and offline verification of an entry
//! against a signed checkpoint with nothing but the log's public key.
//!
//! ```json
//! {"index": 5, "treeSize": 8, "leafHash": "<base64>", "hashes": ["<base64>", "…"]}
//! {"oldSize": 6, "newSize": 8, "hashes": ["<base64>", "…"]}
//! ```

use serde::{Deserialize, Serialize};

use crate::checkpoint::{Checkpoint, SignedCheckpoint};
use crate::entry::{Entry, EntryError};
use crate::merkle::{Hash, ProofError, leaf_hash, verify_consistency, verify_inclusion};
use crate::note::{NoteError, NoteVerifier};

/// Proof that leaf `index` is in the tree of `tree_size` leaves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InclusionProof {
    /// Index of the entry.
    pub index: u64,
    /// Size of the tree the proof is for.
    pub tree_size: u64,
    /// Leaf hash of the entry, for convenience (verification recomputes it from the entry).
    pub leaf_hash: Hash,
    /// The audit path, leaf level first.
    pub hashes: Vec<Hash>,
}

impl InclusionProof {
    /// Checks that `leaf` is at `index` in the tree whose root is `root` (of `tree_size`).
    pub fn verify(&self, leaf: &Hash, root: &Hash) -> Result<(), ProofError> {
        verify_inclusion(leaf, self.index, self.tree_size, &self.hashes, root)
    }
}

/// Proof that the tree of `old_size` leaves is a prefix of the tree of `new_size`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConsistencyProof {
    /// The older (smaller) tree size.
    pub old_size: u64,
    /// The newer tree size.
    pub new_size: u64,
    /// The proof hashes.
    pub hashes: Vec<Hash>,
}

impl ConsistencyProof {
    /// Checks the proof between two roots.
    pub fn verify(&self, old_root: &Hash, new_root: &Hash) -> Result<(), ProofError> {
        verify_consistency(self.old_size, self.new_size, old_root, new_root, &self.hashes)
    }
}

/// Why offline verification failed.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The checkpoint is malformed, unsigned by the key, or altered.
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] NoteError),
    /// The entry file is not a canonical entry.
    #[error("entry: {0}")]
    Entry(#[from] EntryError),
    /// The proof is for another tree than the checkpoint's.
    #[error("the proof is for a tree of size {proof}, but the checkpoint is for size {checkpoint}")]
    SizeMismatch {
        /// Size in the proof.
        proof: u64,
        /// Size in the checkpoint.
        checkpoint: u64,
    },
    /// The entry is not the one the proof was made for.
    #[error("the entry hashes to {actual}, but the proof is for the entry with leaf hash {claimed}")]
    LeafMismatch {
        /// Leaf hash written in the proof.
        claimed: Hash,
        /// Leaf hash of the entry given.
        actual: Hash,
    },
    /// The proof does not lead from the entry to the checkpoint's root.
    #[error("inclusion proof: {0}")]
    Proof(#[from] ProofError),
}

/// An entry proven to be in a signed checkpoint.
#[derive(Debug, Clone)]
pub struct VerifiedEntry {
    /// The verified checkpoint.
    pub checkpoint: Checkpoint,
    /// The entry's index.
    pub index: u64,
    /// The entry.
    pub entry: Entry,
}

/// Verifies, offline, that `checkpoint_text` is signed by `log_key`.
pub fn verify_checkpoint(log_key: &NoteVerifier, checkpoint_text: &str) -> Result<Checkpoint, VerifyError> {
    Ok(SignedCheckpoint::verify(checkpoint_text, log_key)?.checkpoint().clone())
}

/// Verifies, offline, that `entry` (canonical bytes, exactly as the ledger serves them) is
/// entry `proof.index` of the log whose signed checkpoint is `checkpoint_text`, using only
/// the log's public key.
pub fn verify_entry(
    log_key: &NoteVerifier,
    checkpoint_text: &str,
    proof: &InclusionProof,
    entry: &[u8],
) -> Result<VerifiedEntry, VerifyError> {
    let checkpoint = verify_checkpoint(log_key, checkpoint_text)?;
    let parsed = Entry::from_canonical(entry)?;
    if proof.tree_size != checkpoint.size {
        return Err(VerifyError::SizeMismatch { proof: proof.tree_size, checkpoint: checkpoint.size });
    }
    let actual = leaf_hash(entry);
    if actual != proof.leaf_hash {
        return Err(VerifyError::LeafMismatch { claimed: proof.leaf_hash, actual });
    }
    proof.verify(&actual, &checkpoint.root)?;
    Ok(VerifiedEntry { checkpoint, index: proof.index, entry: parsed })
}
