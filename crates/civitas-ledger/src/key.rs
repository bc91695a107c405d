//! The node's Ed25519 key: one secret in `<data-dir>/node.key`, from which the log's note
//! signer and the witness's cosigner are made.
//!
//! The file is one line, `civitas-node-key-v1 <base64 of a 32-byte Ed25519 seed>`, created
//! with mode 0600 and refused if group or others can read it. The witness key is derived
//! as `SHA-256("civitas witness key v1\n" || seed)`, so the log and the witness, which the
//! cosignature spec requires to be distinct keys, come from one file. Key material is never
//! logged: `Debug` shows only public key IDs.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::SigningKey;
use sha2::{Digest, Sha256};

use crate::error::LedgerError;
use crate::note::{CosignatureSigner, NoteError, NoteSigner, NoteVerifier};

const KEY_FILE_TAG: &str = "civitas-node-key-v1";

/// The node's secret key.
pub struct NodeKey {
    // SigningKey zeroizes its secret on drop.
    key: SigningKey,
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NodeKey(<secret>)")
    }
}

impl NodeKey {
    /// A key from a 32-byte seed.
    pub fn from_seed(seed: &[u8; 32]) -> NodeKey {
        NodeKey { key: SigningKey::from_bytes(seed) }
    }

    /// A fresh random key from the operating system's generator.
    pub fn generate() -> Result<NodeKey, LedgerError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| LedgerError::Io {
            op: "generate a key with",
            path: "the system random generator".into(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let key = NodeKey::from_seed(&seed);
        seed.fill(0);
        Ok(key)
    }

    /// Loads the key at `path`, creating it (mode 0600) if the file does not exist.
    pub fn load_or_create(path: &Path) -> Result<NodeKey, LedgerError> {
        match std::fs::metadata(path) {
            Ok(_) => NodeKey::load(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = NodeKey::generate()?;
                match key.write_new(path) {
                    Ok(()) => {
                        tracing::info!(path = %path.display(), "created a new node key");
                        Ok(key)
                    }
                    // Another process created it first: use theirs.
                    Err(LedgerError::Io { source, .. }) if source.kind() == std::io::ErrorKind::AlreadyExists => {
                        NodeKey::load(path)
                    }
                    Err(e) => Err(e),
                }
            }
            Err(source) => Err(LedgerError::Io { op: "stat", path: path.to_path_buf(), source }),
        }
    }

    /// Loads an existing key file.
    pub fn load(path: &Path) -> Result<NodeKey, LedgerError> {
        let io = |op: &'static str| move |source| LedgerError::Io { op, path: path.to_path_buf(), source };
        let metadata = std::fs::metadata(path).map_err(io("stat"))?;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(LedgerError::InvalidRequest(format!(
                "the node key {} can be read by others (mode {mode:04o}); run `chmod 600 {}`",
                path.display(),
                path.display()
            )));
        }
        let text = std::fs::read_to_string(path).map_err(io("read"))?;
        let bad = || {
            LedgerError::InvalidRequest(format!(
                "{} is not a Civitas node key (expected one line `{KEY_FILE_TAG} <base64 seed>`)",
                path.display()
            ))
        };
        let (tag, encoded) = text.trim().split_once(' ').ok_or_else(bad)?;
        if tag != KEY_FILE_TAG {
            return Err(bad());
        }
        let mut seed: [u8; 32] = BASE64.decode(encoded.trim()).ok().and_then(|b| b.try_into().ok()).ok_or_else(bad)?;
        let key = NodeKey::from_seed(&seed);
        seed.fill(0);
        Ok(key)
    }

    /// Creates the key file atomically: the key is written and synced under a temporary
    /// name, then hard-linked into place, which fails if the file exists. A concurrent
    /// first start therefore never reads a half-written key.
    fn write_new(&self, path: &Path) -> Result<(), LedgerError> {
        let io = |op: &'static str| move |source| LedgerError::Io { op, path: path.to_path_buf(), source };
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(io("create the directory of"))?;
        let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
        tmp_name.push(format!(".{}.tmp", std::process::id()));
        let tmp = parent.join(tmp_name);
        let written = (|| {
            let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
            file.write_all(format!("{KEY_FILE_TAG} {}\n", BASE64.encode(self.key.to_bytes())).as_bytes())?;
            file.sync_all()?;
            std::fs::hard_link(&tmp, path)
        })();
        let _ = std::fs::remove_file(&tmp);
        written.map_err(io("create"))?;
        std::fs::File::open(parent).and_then(|d| d.sync_all()).map_err(io("fsync the directory of"))
    }

    /// The note signer of the log named `origin` (signature type 0x01).
    pub fn log_signer(&self, origin: &str) -> Result<NoteSigner, NoteError> {
        NoteSigner::from_seed(origin, &self.key.to_bytes())
    }

    /// The verifier key of the log named `origin`: what `civitas ledger pubkey` prints.
    pub fn log_verifier(&self, origin: &str) -> Result<NoteVerifier, NoteError> {
        Ok(self.log_signer(origin)?.verifier())
    }

    /// An Ed25519 key derived from the node key for one `purpose` (for example
    /// `"civitas local token key v1"`), as `SHA-256(purpose || "\n" || seed)`, so that a
    /// signature made for one purpose can never pass as one made for another (the log's
    /// notes, the witness's cosignatures, the security crate's local tokens).
    pub fn derive_signing_key(&self, purpose: &str) -> SigningKey {
        let mut h = Sha256::new();
        h.update(purpose.as_bytes());
        h.update(b"\n");
        h.update(self.key.to_bytes());
        let mut seed: [u8; 32] = h.finalize().into();
        let key = SigningKey::from_bytes(&seed);
        seed.fill(0);
        key
    }

    /// The witness cosigner named `name` (signature type 0x04), with a key derived from the
    /// node key so that it differs from the log's.
    pub fn witness_signer(&self, name: &str) -> Result<CosignatureSigner, NoteError> {
        let mut h = Sha256::new();
        h.update(b"civitas witness key v1\n");
        h.update(self.key.to_bytes());
        let mut seed: [u8; 32] = h.finalize().into();
        let signer = CosignatureSigner::from_seed(name, &seed);
        seed.fill(0);
        signer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_keys_are_deterministic_and_separated_by_purpose() {
        let key = NodeKey::from_seed(&[7u8; 32]);
        let a = key.derive_signing_key("purpose a");
        assert_eq!(a.to_bytes(), key.derive_signing_key("purpose a").to_bytes());
        assert_ne!(a.to_bytes(), key.derive_signing_key("purpose b").to_bytes());
        assert_ne!(a.to_bytes(), [7u8; 32]);
    }
}
