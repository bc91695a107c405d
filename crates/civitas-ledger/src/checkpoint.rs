//! Checkpoints (`c2sp.org/tlog-checkpoint`): a log's signed tree head as a signed note.
//!
//! ```text
//! civitas.city/ledger/vienna-1
//! 1024
//! 3tq5tW8d7R6qzlJ2yW0pK5RgnxB7Xo8mTZk4v2w5qvM=
//!
//! — civitas.city/ledger/vienna-1 Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=
//! ```
//!
//! The first line is the origin (the log's identity), the second the tree size in decimal,
//! the third the base64 root hash; further non-empty lines are extensions (Civitas writes
//! none). Civitas logs sign with a key whose name is the origin.

use std::fmt;

use crate::merkle::Hash;
use crate::note::{Note, NoteError, NoteSignature, NoteSigner, NoteVerifier, check_name};

/// A tree head: origin, size and root hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's identity, e.g. `civitas.city/ledger/vienna-1`.
    pub origin: String,
    /// Number of entries.
    pub size: u64,
    /// RFC 6962 root hash of the first `size` entries.
    pub root: Hash,
    /// Extension lines (opaque, not recommended; Civitas writes none).
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// A checkpoint without extension lines.
    pub fn new(origin: impl Into<String>, size: u64, root: Hash) -> Checkpoint {
        Checkpoint { origin: origin.into(), size, root, extensions: Vec::new() }
    }

    /// The note text: origin, size, root, extensions, each followed by a newline.
    pub fn to_text(&self) -> String {
        let mut text = format!("{}\n{}\n{}\n", self.origin, self.size, self.root.to_base64());
        for line in &self.extensions {
            text.push_str(line);
            text.push('\n');
        }
        text
    }

    /// Parses note text (the part above the blank line).
    pub fn from_text(text: &str) -> Result<Checkpoint, NoteError> {
        let bad = |detail: String| NoteError::Checkpoint(detail);
        let body = text.strip_suffix('\n').ok_or_else(|| bad("the text does not end with a newline".into()))?;
        let mut lines = body.split('\n');
        let origin = lines.next().unwrap_or_default();
        if origin.is_empty() {
            return Err(bad("the origin line is empty".into()));
        }
        check_name(origin).map_err(|_| bad(format!("origin {origin:?} has a space or '+'")))?;
        let size_line = lines.next().ok_or_else(|| bad("there is no tree size line".into()))?;
        let canonical = !size_line.is_empty()
            && size_line.bytes().all(|b| b.is_ascii_digit())
            && (size_line == "0" || !size_line.starts_with('0'));
        let size = size_line
            .parse::<u64>()
            .ok()
            .filter(|_| canonical)
            .ok_or_else(|| bad(format!("tree size {size_line:?} is not a decimal number without leading zeros")))?;
        let root_line = lines.next().ok_or_else(|| bad("there is no root hash line".into()))?;
        let root = Hash::from_base64(root_line).map_err(|e| bad(format!("root hash: {e}")))?;
        if root.to_base64() != root_line {
            return Err(bad(format!("root hash {root_line:?} is not canonical base64")));
        }
        let mut extensions = Vec::new();
        for line in lines {
            if line.is_empty() {
                return Err(bad("an extension line is empty".into()));
            }
            extensions.push(line.to_string());
        }
        Ok(Checkpoint { origin: origin.to_string(), size, root, extensions })
    }
}

/// A checkpoint and its signed note (the log's signature, and any witness cosignatures).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    checkpoint: Checkpoint,
    note: Note,
}

impl SignedCheckpoint {
    /// Signs `checkpoint` with the log's key, whose name must be the checkpoint's origin.
    pub fn sign(checkpoint: Checkpoint, signer: &NoteSigner) -> Result<SignedCheckpoint, NoteError> {
        if signer.name() != checkpoint.origin {
            return Err(NoteError::Checkpoint(format!(
                "the log key is named {:?} but the checkpoint's origin is {:?}",
                signer.name(),
                checkpoint.origin
            )));
        }
        let note = signer.sign_note(&checkpoint.to_text())?;
        Ok(SignedCheckpoint { checkpoint, note })
    }

    /// Parses a signed checkpoint WITHOUT verifying any signature: for reading one's own
    /// stored checkpoint, or to learn the origin before choosing a key. Anything received
    /// from elsewhere goes through [`SignedCheckpoint::verify`].
    pub fn parse_unverified(text: &str) -> Result<SignedCheckpoint, NoteError> {
        let note = Note::parse(text)?;
        let checkpoint = Checkpoint::from_text(note.text())?;
        Ok(SignedCheckpoint { checkpoint, note })
    }

    /// Parses a signed checkpoint and verifies it against the log's key: the key's name must
    /// be the origin, and a signature by that key must be present and valid.
    pub fn verify(text: &str, log_key: &NoteVerifier) -> Result<SignedCheckpoint, NoteError> {
        let signed = SignedCheckpoint::parse_unverified(text)?;
        if signed.checkpoint.origin != log_key.name() {
            return Err(NoteError::Checkpoint(format!(
                "the checkpoint is from log {:?}, not from {:?}",
                signed.checkpoint.origin,
                log_key.name()
            )));
        }
        signed.note.verify(log_key)?;
        Ok(signed)
    }

    /// The tree head.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// The signed note.
    pub fn note(&self) -> &Note {
        &self.note
    }

    /// Adds a witness cosignature line.
    pub fn add_cosignature(&mut self, cosignature: NoteSignature) {
        self.note.add_signature(cosignature);
    }
}

impl fmt::Display for SignedCheckpoint {
    /// The signed note as served at `/checkpoint`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.note.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::empty_root;

    #[test]
    fn text_round_trips() {
        let mut c = Checkpoint::new("example.com/log", 20852163, empty_root());
        assert_eq!(Checkpoint::from_text(&c.to_text()).unwrap(), c);
        c.extensions.push("ext".into());
        assert_eq!(Checkpoint::from_text(&c.to_text()).unwrap(), c);
    }

    #[test]
    fn malformed_checkpoints_are_refused() {
        let root = empty_root().to_base64();
        for text in [
            format!("\n1\n{root}\n"),
            format!("o\n01\n{root}\n"),
            format!("o\n-1\n{root}\n"),
            format!("o\n1\n{root}"),
            "o\n1\n".to_string(),
            "o\n1\nAAAA\n".to_string(),
            format!("o\n1\n{root}\n\n"),
            format!("o o\n1\n{root}\n"),
        ] {
            assert!(Checkpoint::from_text(&text).is_err(), "{text:?}");
        }
        assert!(Checkpoint::from_text(&format!("o\n0\n{root}\n")).is_ok());
    }
}
