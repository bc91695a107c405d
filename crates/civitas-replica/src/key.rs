//! Names that become file names: replica ids and resource keys. Both are checked so that
//! no name given to the store can leave its directory.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::error::{ReplicaError, Result};

/// The id of a replica: its directory name under the store root.
///
/// 1 to 128 characters from `[A-Za-z0-9._-]`, not starting with `.` — so never `.`, `..`,
/// a hidden file or a path with a separator.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReplicaId(String);

impl ReplicaId {
    /// Checks `id` and wraps it.
    pub fn new(id: impl Into<String>) -> Result<ReplicaId> {
        let id = id.into();
        let reason = if id.is_empty() {
            Some("it is empty")
        } else if id.len() > 128 {
            Some("it is longer than 128 bytes")
        } else if id.starts_with('.') {
            Some("it starts with `.`")
        } else if !id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
            Some("only ASCII letters, digits, `.`, `_` and `-` are allowed")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(ReplicaError::InvalidReplicaId { id, reason }),
            None => Ok(ReplicaId(id)),
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ReplicaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The key of one resource of a replica: the lowercase hex SHA-256 of its variant (the
/// path and query relative to the instance endpoint). Hashing makes any variant — `..`,
/// `/`, `%2e%2e`, NUL, a thousand characters — a fixed 64-character file name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceKey(String);

impl ResourceKey {
    /// The key of a variant such as `/stations?line=U1`.
    pub fn for_variant(variant: &str) -> ResourceKey {
        ResourceKey(to_hex(&Sha256::digest(variant.as_bytes())))
    }

    /// Checks that `key` is a key this store produces (64 lowercase hex digits).
    pub fn parse(key: &str) -> Result<ResourceKey> {
        if key.len() != 64 {
            return Err(ReplicaError::InvalidResourceKey {
                key: key.to_owned(),
                reason: "it is not 64 characters long",
            });
        }
        if !key.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(ReplicaError::InvalidResourceKey {
                key: key.to_owned(),
                reason: "only lowercase hexadecimal digits are allowed",
            });
        }
        Ok(ResourceKey(key.to_owned()))
    }

    /// The key as text (also its file-name stem).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ResourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Lowercase hex of `bytes`.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_ids_cannot_escape_the_root() {
        for bad in ["", ".", "..", "../x", "a/b", "a\\b", ".hidden", "a b", "é", &"x".repeat(129)] {
            assert!(ReplicaId::new(bad).is_err(), "{bad:?} was accepted");
        }
        for good in ["r1", "view-1.2_x", &"x".repeat(128)] {
            assert!(ReplicaId::new(good).is_ok(), "{good:?} was refused");
        }
    }

    #[test]
    fn resource_keys_are_fixed_hex_names() {
        let key = ResourceKey::for_variant("/../../etc/passwd?x=/..");
        assert_eq!(key.as_str().len(), 64);
        assert_eq!(ResourceKey::parse(key.as_str()).unwrap(), key);
        assert_ne!(key, ResourceKey::for_variant("/etc/passwd"));
        for bad in ["..", "../../etc/passwd", &"A".repeat(64), &"0".repeat(63), &format!("{}/", "0".repeat(63))] {
            assert!(ResourceKey::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
