//! C2SP signed notes (`c2sp.org/signed-note`) with Ed25519 signatures (type `0x01`) and
//! timestamped Ed25519 cosignatures (`c2sp.org/tlog-cosignature`, type `0x04`).
//!
//! A note is text ending in a newline, a blank line, then one signature line per signer:
//! `— <key name> base64(key ID (4 bytes, big-endian) || signature)`. The key ID is the first
//! four bytes of `SHA-256(name || "\n" || type || public key)`. A verifier key is written
//! `<name>+<hex key ID>+<base64(type || public key)>`; a signer key (Go's
//! `golang.org/x/mod/sumdb/note` format) `PRIVATE+KEY+<name>+<hex key ID>+<base64(type || seed)>`.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// Signature type of plain Ed25519 note signatures.
pub const SIG_TYPE_ED25519: u8 = 0x01;
/// Signature type of timestamped Ed25519 witness cosignatures (`cosignature/v1`).
pub const SIG_TYPE_COSIGNATURE_V1: u8 = 0x04;

/// Most signature lines a note may carry; the spec requires accepting at least 16.
pub const MAX_SIGNATURES: usize = 100;
/// Largest note accepted, in bytes.
pub const MAX_NOTE_BYTES: usize = 1 << 20;

/// Why a note, key or signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// The note is not well formed.
    #[error("malformed note: {0}")]
    Malformed(String),
    /// A key name is empty or has a space or `+`.
    #[error("invalid key name {0:?}: a key name is non-empty and has no spaces or '+'")]
    InvalidName(String),
    /// A verifier or signer key string is malformed.
    #[error("invalid key {key:?}: {detail}")]
    InvalidKey {
        /// The key string (signer keys are never quoted back).
        key: String,
        /// What is wrong.
        detail: String,
    },
    /// No signature line matches the verifier's name and key ID.
    #[error("the note has no signature by {name} (key ID {key_id:08x}); signed by: {found}")]
    NotSigned {
        /// The expected signer.
        name: String,
        /// Its key ID.
        key_id: u32,
        /// Who did sign, for the message.
        found: String,
    },
    /// A signature line of the trusted key does not verify: the text or the signature was
    /// altered.
    #[error(
        "the signature by {name} (key ID {key_id:08x}) does not verify: the note was altered or signed by another key"
    )]
    BadSignature {
        /// The signer.
        name: String,
        /// Its key ID.
        key_id: u32,
    },
    /// The note text is not a checkpoint.
    #[error("not a checkpoint: {0}")]
    Checkpoint(String),
}

/// `SHA-256(name || "\n" || sig_type || public_key)[:4]` as a big-endian `u32`.
pub fn key_id(name: &str, sig_type: u8, public_key: &[u8]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', sig_type]);
    h.update(public_key);
    let digest = h.finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// Checks a key name: non-empty, no Unicode spaces, no `+`.
pub fn check_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty() || name.contains('+') || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(NoteError::InvalidName(name.to_string()));
    }
    Ok(())
}

/// Checks note text: valid (it is a `str`), ends in a newline, no control characters other
/// than newline, no empty line at the end (the blank line separates the signatures).
fn check_text(text: &str) -> Result<(), NoteError> {
    if !text.ends_with('\n') {
        return Err(NoteError::Malformed("the text does not end with a newline".into()));
    }
    if text.len() > MAX_NOTE_BYTES {
        return Err(NoteError::Malformed(format!("the note is larger than {MAX_NOTE_BYTES} bytes")));
    }
    if let Some(c) = text.chars().find(|&c| c != '\n' && c.is_control() && (c as u32) < 0x20) {
        return Err(NoteError::Malformed(format!("control character U+{:04X} in the text", c as u32)));
    }
    Ok(())
}

/// One signature line: who signed (name and key ID) and the signature bytes after the key ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    /// Key name.
    pub name: String,
    /// Key ID (first four bytes of the decoded signature).
    pub key_id: u32,
    /// The signature proper: 64 bytes for Ed25519, 8-byte timestamp + 64 for cosignatures.
    pub signature: Vec<u8>,
}

impl NoteSignature {
    /// The signature line, with its final newline.
    pub fn to_line(&self) -> String {
        let mut bytes = Vec::with_capacity(4 + self.signature.len());
        bytes.extend_from_slice(&self.key_id.to_be_bytes());
        bytes.extend_from_slice(&self.signature);
        format!("— {} {}\n", self.name, BASE64.encode(bytes))
    }

    /// Parses one signature line (with or without its newline).
    pub fn parse_line(line: &str) -> Result<NoteSignature, NoteError> {
        let line = line.strip_suffix('\n').unwrap_or(line);
        let rest = line
            .strip_prefix("— ")
            .ok_or_else(|| NoteError::Malformed(format!("signature line {line:?} does not start with \"— \"")))?;
        let (name, encoded) = rest
            .split_once(' ')
            .ok_or_else(|| NoteError::Malformed(format!("signature line {line:?} has no signature")))?;
        check_name(name)?;
        let bytes = BASE64
            .decode(encoded)
            .map_err(|e| NoteError::Malformed(format!("signature of {name} is not base64: {e}")))?;
        if bytes.len() < 5 {
            return Err(NoteError::Malformed(format!("signature of {name} is too short")));
        }
        Ok(NoteSignature {
            name: name.to_string(),
            key_id: u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            signature: bytes[4..].to_vec(),
        })
    }

    /// For a cosignature (`cosignature/v1`): the time it was made, in seconds since the epoch.
    pub fn cosignature_timestamp(&self) -> Option<u64> {
        (self.signature.len() == 72).then(|| u64::from_be_bytes(self.signature[..8].try_into().expect("8 bytes")))
    }
}

/// A signed note: text and signature lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    text: String,
    signatures: Vec<NoteSignature>,
}

impl Note {
    /// An unsigned note of `text` (which must end in a newline).
    pub fn new(text: impl Into<String>) -> Result<Note, NoteError> {
        let text = text.into();
        check_text(&text)?;
        if text.ends_with("\n\n") || text == "\n" {
            return Err(NoteError::Malformed("the text ends with an empty line".into()));
        }
        Ok(Note { text, signatures: Vec::new() })
    }

    /// Parses a signed note. Signatures are not verified here: see [`Note::verify`].
    pub fn parse(note: &str) -> Result<Note, NoteError> {
        if note.len() > MAX_NOTE_BYTES {
            return Err(NoteError::Malformed(format!("the note is larger than {MAX_NOTE_BYTES} bytes")));
        }
        check_text(note)?;
        // The text ends at the last blank line; signatures follow it.
        let split = note
            .rfind("\n\n")
            .ok_or_else(|| NoteError::Malformed("no blank line between the text and the signatures".into()))?;
        let text = &note[..split + 1];
        let lines = &note[split + 2..];
        if lines.is_empty() {
            return Err(NoteError::Malformed("the note has no signature".into()));
        }
        let mut signatures = Vec::new();
        for line in lines.split_terminator('\n') {
            if signatures.len() == MAX_SIGNATURES {
                return Err(NoteError::Malformed(format!("more than {MAX_SIGNATURES} signatures")));
            }
            signatures.push(NoteSignature::parse_line(line)?);
        }
        Ok(Note { text: text.to_string(), signatures })
    }

    /// The signed text, with its final newline.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The signature lines, in order.
    pub fn signatures(&self) -> &[NoteSignature] {
        &self.signatures
    }

    /// Adds a signature line (replacing an earlier one by the same name and key ID).
    pub fn add_signature(&mut self, signature: NoteSignature) {
        self.signatures.retain(|s| !(s.name == signature.name && s.key_id == signature.key_id));
        self.signatures.push(signature);
    }

    /// Checks the note against one trusted key: a signature line with the key's name and ID
    /// must exist and verify. Lines of other keys are ignored, as the spec requires.
    pub fn verify(&self, verifier: &NoteVerifier) -> Result<&NoteSignature, NoteError> {
        let mut matching = self.signatures.iter().filter(|s| s.name == verifier.name && s.key_id == verifier.key_id);
        let Some(first) = matching.next() else {
            let found: Vec<String> = self.signatures.iter().map(|s| format!("{} ({:08x})", s.name, s.key_id)).collect();
            return Err(NoteError::NotSigned {
                name: verifier.name.clone(),
                key_id: verifier.key_id,
                found: if found.is_empty() { "nobody".into() } else { found.join(", ") },
            });
        };
        // Every line of the trusted key must verify, not only the first.
        for signature in std::iter::once(first).chain(matching) {
            if !verifier.verify_raw(&self.text, &signature.signature) {
                return Err(NoteError::BadSignature { name: verifier.name.clone(), key_id: verifier.key_id });
            }
        }
        Ok(first)
    }
}

impl fmt::Display for Note {
    /// The note as served: text, blank line, signature lines.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)?;
        f.write_str("\n")?;
        for s in &self.signatures {
            f.write_str(&s.to_line())?;
        }
        Ok(())
    }
}

/// A public key that verifies notes: Ed25519 signatures (type `0x01`) or witness
/// cosignatures (type `0x04`). Parsed from and printed as a verifier key string.
#[derive(Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key_id: u32,
    sig_type: u8,
    key: VerifyingKey,
}

impl NoteVerifier {
    /// A verifier for `name` and `key` of signature type `sig_type` (`0x01` or `0x04`).
    pub fn new(name: &str, sig_type: u8, key: VerifyingKey) -> Result<NoteVerifier, NoteError> {
        check_name(name)?;
        if sig_type != SIG_TYPE_ED25519 && sig_type != SIG_TYPE_COSIGNATURE_V1 {
            return Err(NoteError::InvalidKey {
                key: name.to_string(),
                detail: format!("unsupported signature type 0x{sig_type:02x}"),
            });
        }
        Ok(NoteVerifier { key_id: key_id(name, sig_type, key.as_bytes()), name: name.to_string(), sig_type, key })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The signature type: [`SIG_TYPE_ED25519`] or [`SIG_TYPE_COSIGNATURE_V1`].
    pub fn sig_type(&self) -> u8 {
        self.sig_type
    }

    /// The Ed25519 public key.
    pub fn public_key(&self) -> &VerifyingKey {
        &self.key
    }

    /// Verifies `signature` (the bytes after the key ID) over note `text`.
    fn verify_raw(&self, text: &str, signature: &[u8]) -> bool {
        match self.sig_type {
            SIG_TYPE_ED25519 => match <&[u8; 64]>::try_from(signature) {
                Ok(bytes) => self.key.verify_strict(text.as_bytes(), &Signature::from_bytes(bytes)).is_ok(),
                Err(_) => false,
            },
            SIG_TYPE_COSIGNATURE_V1 => {
                if signature.len() != 72 {
                    return false;
                }
                let timestamp = u64::from_be_bytes(signature[..8].try_into().expect("8 bytes"));
                let bytes: &[u8; 64] = signature[8..].try_into().expect("64 bytes");
                let message = cosignature_message(timestamp, text);
                self.key.verify_strict(message.as_bytes(), &Signature::from_bytes(bytes)).is_ok()
            }
            _ => false,
        }
    }
}

impl fmt::Debug for NoteVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NoteVerifier({self})")
    }
}

impl fmt::Display for NoteVerifier {
    /// `<name>+<hex key ID>+<base64(type || public key)>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut material = Vec::with_capacity(33);
        material.push(self.sig_type);
        material.extend_from_slice(self.key.as_bytes());
        write!(f, "{}+{:08x}+{}", self.name, self.key_id, BASE64.encode(material))
    }
}

impl FromStr for NoteVerifier {
    type Err = NoteError;
    /// Parses `<name>+<hex key ID>+<base64(type || public key)>`, checking that the key ID
    /// matches the name and key.
    fn from_str(vkey: &str) -> Result<NoteVerifier, NoteError> {
        let vkey = vkey.trim();
        let bad = |detail: &str| NoteError::InvalidKey { key: vkey.to_string(), detail: detail.to_string() };
        // The base64 part may itself contain '+': split at the first two only.
        let mut parts = vkey.splitn(3, '+');
        let (Some(name), Some(id), Some(material)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("expected <name>+<key ID>+<base64 key>"));
        };
        check_name(name)?;
        if id.len() != 8 || !id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
            return Err(bad("the key ID must be 8 lower-case hex digits"));
        }
        let id = u32::from_str_radix(id, 16).map_err(|_| bad("the key ID is not hex"))?;
        let material = BASE64.decode(material).map_err(|_| bad("the key is not base64"))?;
        let (&sig_type, public) = material.split_first().ok_or_else(|| bad("the key is empty"))?;
        if sig_type != SIG_TYPE_ED25519 && sig_type != SIG_TYPE_COSIGNATURE_V1 {
            return Err(bad(&format!(
                "signature type 0x{sig_type:02x} is not supported (0x01 Ed25519, 0x04 cosignature/v1)"
            )));
        }
        let public: &[u8; 32] = public.try_into().map_err(|_| bad("an Ed25519 public key has 32 bytes"))?;
        let key = VerifyingKey::from_bytes(public).map_err(|_| bad("not a valid Ed25519 public key"))?;
        let verifier = NoteVerifier::new(name, sig_type, key)?;
        if verifier.key_id != id {
            return Err(bad(&format!(
                "the key ID {id:08x} does not match the name and key (expected {:08x})",
                verifier.key_id
            )));
        }
        Ok(verifier)
    }
}

/// An Ed25519 private key that signs notes under a name (signature type `0x01`).
#[derive(Clone)]
pub struct NoteSigner {
    name: String,
    key_id: u32,
    key: SigningKey,
}

impl fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key material.
        write!(f, "NoteSigner({}+{:08x})", self.name, self.key_id)
    }
}

impl NoteSigner {
    /// A signer named `name` from a 32-byte Ed25519 seed.
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<NoteSigner, NoteError> {
        check_name(name)?;
        let key = SigningKey::from_bytes(seed);
        let key_id = key_id(name, SIG_TYPE_ED25519, key.verifying_key().as_bytes());
        Ok(NoteSigner { name: name.to_string(), key_id, key })
    }

    /// Parses a Go-format signer key `PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 || seed)>`.
    pub fn from_signer_key(skey: &str) -> Result<NoteSigner, NoteError> {
        let bad = |detail: &str| NoteError::InvalidKey { key: "PRIVATE+KEY+…".into(), detail: detail.to_string() };
        let rest = skey.trim().strip_prefix("PRIVATE+KEY+").ok_or_else(|| bad("expected PRIVATE+KEY+…"))?;
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(id), Some(material)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("expected PRIVATE+KEY+<name>+<key ID>+<base64 key>"));
        };
        let id = u32::from_str_radix(id, 16).map_err(|_| bad("the key ID is not hex"))?;
        let material = BASE64.decode(material).map_err(|_| bad("the key is not base64"))?;
        let (&sig_type, seed) = material.split_first().ok_or_else(|| bad("the key is empty"))?;
        if sig_type != SIG_TYPE_ED25519 {
            return Err(bad("only Ed25519 (type 0x01) signer keys are supported"));
        }
        let seed: &[u8; 32] = seed.try_into().map_err(|_| bad("an Ed25519 seed has 32 bytes"))?;
        let signer = NoteSigner::from_seed(name, seed)?;
        if signer.key_id != id {
            return Err(bad("the key ID does not match the name and key"));
        }
        Ok(signer)
    }

    /// The key name (for a log: its origin).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The matching verifier.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            key_id: self.key_id,
            sig_type: SIG_TYPE_ED25519,
            key: self.key.verifying_key(),
        }
    }

    /// Signs note `text` (which must be valid note text).
    pub fn sign(&self, text: &str) -> Result<NoteSignature, NoteError> {
        check_text(text)?;
        Ok(NoteSignature {
            name: self.name.clone(),
            key_id: self.key_id,
            signature: self.key.sign(text.as_bytes()).to_bytes().to_vec(),
        })
    }

    /// Signs `text` and returns the whole note.
    pub fn sign_note(&self, text: &str) -> Result<Note, NoteError> {
        let mut note = Note::new(text)?;
        note.add_signature(self.sign(text)?);
        Ok(note)
    }
}

/// The message a `cosignature/v1` signs: a header line, a timestamp line, the note text.
fn cosignature_message(timestamp: u64, text: &str) -> String {
    format!("cosignature/v1\ntime {timestamp}\n{text}")
}

/// An Ed25519 key that makes timestamped witness cosignatures (`c2sp.org/tlog-cosignature`,
/// signature type `0x04`).
#[derive(Clone)]
pub struct CosignatureSigner {
    name: String,
    key_id: u32,
    key: SigningKey,
}

impl fmt::Debug for CosignatureSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CosignatureSigner({}+{:08x})", self.name, self.key_id)
    }
}

impl CosignatureSigner {
    /// A cosigner named `name` from a 32-byte Ed25519 seed.
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<CosignatureSigner, NoteError> {
        check_name(name)?;
        let key = SigningKey::from_bytes(seed);
        let key_id = key_id(name, SIG_TYPE_COSIGNATURE_V1, key.verifying_key().as_bytes());
        Ok(CosignatureSigner { name: name.to_string(), key_id, key })
    }

    /// The cosigner's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The verifier of this cosigner's signatures (type `0x04`).
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            key_id: self.key_id,
            sig_type: SIG_TYPE_COSIGNATURE_V1,
            key: self.key.verifying_key(),
        }
    }

    /// Cosigns note `text` as of `timestamp` (seconds since the epoch).
    pub fn cosign(&self, text: &str, timestamp: u64) -> Result<NoteSignature, NoteError> {
        check_text(text)?;
        if timestamp > i64::MAX as u64 {
            return Err(NoteError::Malformed("a cosignature timestamp is at most 2^63 - 1".into()));
        }
        let signature = self.key.sign(cosignature_message(timestamp, text).as_bytes());
        let mut bytes = Vec::with_capacity(72);
        bytes.extend_from_slice(&timestamp.to_be_bytes());
        bytes.extend_from_slice(&signature.to_bytes());
        Ok(NoteSignature { name: self.name.clone(), key_id: self.key_id, signature: bytes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_spaces_or_plus_are_refused() {
        for name in ["", "a b", "a+b", "a\tb", "a\u{2003}b"] {
            assert!(check_name(name).is_err(), "{name:?}");
        }
        check_name("civitas.city/ledger/vienna-1").unwrap();
    }

    #[test]
    fn a_note_without_blank_line_or_signature_is_malformed() {
        assert!(Note::parse("text\n").is_err());
        assert!(Note::parse("text\n\n").is_err());
        assert!(Note::parse("text\n\n— a AAAAAAA=").is_err(), "no final newline");
        assert!(Note::parse("te\u{7}xt\n\n— a AAAAAAA=\n").is_err(), "control character");
    }
}
