//! Validation errors: every problem in a document, each at a JSON pointer.

use std::fmt;

/// One problem in a document, located by an RFC 6901 JSON pointer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FieldError {
    /// Where the problem is, e.g. `/views/1/updateFrequency/period` (`""` is the whole document).
    pub pointer: String,
    /// What is wrong, in plain words.
    pub detail: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = if self.pointer.is_empty() { "/" } else { &self.pointer };
        write!(f, "{at}: {}", self.detail)
    }
}

/// All the problems found in one or more documents; never empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl ValidationErrors {
    /// One error at `pointer`.
    pub fn single(pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        ValidationErrors(vec![FieldError { pointer: pointer.into(), detail: detail.into() }])
    }

    /// Prefixes every pointer, e.g. with the index of the document in a batch.
    pub fn prefixed(mut self, prefix: &str) -> Self {
        for e in &mut self.0 {
            e.pointer = format!("{prefix}{}", e.pointer);
        }
        self
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(f, "{n} validation error{}", if n == 1 { "" } else { "s" })?;
        for e in &self.0 {
            write!(f, "; {e}")?;
        }
        Ok(())
    }
}

/// Escapes one reference token for a JSON pointer (RFC 6901: `~` → `~0`, `/` → `~1`).
pub fn escape_pointer_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}
