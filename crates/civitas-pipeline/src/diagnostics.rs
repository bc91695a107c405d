//! Diagnostics rendered like a compiler's: `file:line:col`, the line with a caret under
//! the offending text, and a hint. Hand-rendered (no colour, no terminal probing) so the
//! same text goes to a terminal, a log, an HTTP problem document and a snapshot test.

use std::fmt::{self, Write as _};

use serde::Serialize;

/// A byte range in one source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl Span {
    /// A span from `start` to `end` (swapped if given backwards).
    pub fn new(start: usize, end: usize) -> Span {
        Span { start: start.min(end), end: end.max(start) }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The input is refused.
    Error,
    /// Accepted, but probably not what was meant.
    Warning,
}

/// Where a diagnostic points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Location {
    /// A span of a DSL source (index into [`Diagnostics::sources`]).
    Source {
        /// Which source.
        source: usize,
        /// Where in it.
        span: Span,
    },
    /// A JSON pointer into a JSON-LD document.
    Pointer {
        /// Which source (index into [`Diagnostics::sources`]).
        source: usize,
        /// The pointer.
        pointer: String,
    },
}

/// One problem.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// A stable code (`E0105`), listed in docs/pipelines.md.
    pub code: &'static str,
    /// What is wrong.
    pub message: String,
    /// Where.
    pub location: Location,
    /// The text under the caret.
    pub label: String,
    /// Other places that explain this one ("first defined here").
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<(Location, String)>,
    /// How to fix it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Diagnostic {
    /// An error at `location`.
    pub fn error(code: &'static str, message: impl Into<String>, location: Location) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            location,
            label: String::new(),
            related: Vec::new(),
            hint: None,
        }
    }

    /// A warning at `location`.
    pub fn warning(code: &'static str, message: impl Into<String>, location: Location) -> Diagnostic {
        Diagnostic { severity: Severity::Warning, ..Diagnostic::error(code, message, location) }
    }

    /// Sets the text under the caret.
    pub fn label(mut self, label: impl Into<String>) -> Diagnostic {
        self.label = label.into();
        self
    }

    /// Sets the hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Diagnostic {
        self.hint = Some(hint.into());
        self
    }

    /// Adds a related place.
    pub fn related(mut self, location: Location, text: impl Into<String>) -> Diagnostic {
        self.related.push((location, text.into()));
        self
    }
}

/// A source text diagnostics point into.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceText {
    /// The file name as the user gave it.
    pub name: String,
    /// Its text.
    #[serde(skip)]
    pub text: String,
}

/// Every problem found in one or more inputs, and the sources they point into.
#[derive(Debug, Clone, Default, PartialEq, Serialize, thiserror::Error)]
pub struct Diagnostics {
    /// The sources, indexed by [`Location::Source`].
    pub sources: Vec<SourceText>,
    /// The problems, in source order per file.
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// Whether any item is an error.
    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    /// Number of errors.
    pub fn error_count(&self) -> usize {
        self.items.iter().filter(|d| d.severity == Severity::Error).count()
    }

    /// `file:line:col` of a location (`file#/pointer` for JSON).
    pub fn position(&self, location: &Location) -> String {
        match location {
            Location::Source { source, span } => match self.sources.get(*source) {
                Some(s) => {
                    let (line, col) = line_col(&s.text, span.start);
                    format!("{}:{line}:{col}", s.name)
                }
                None => "<unknown>".into(),
            },
            Location::Pointer { source, pointer } => {
                let at = if pointer.is_empty() { "/" } else { pointer };
                match self.sources.get(*source) {
                    Some(s) => format!("{}#{at}", s.name),
                    None => at.to_string(),
                }
            }
        }
    }

    /// Renders every item like a compiler, followed by a summary line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for d in &self.items {
            self.render_one(d, &mut out);
            out.push('\n');
        }
        let errors = self.error_count();
        let warnings = self.items.len() - errors;
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        let _ = write!(out, "{errors} error{}, {warnings} warning{}", plural(errors), plural(warnings));
        out
    }

    fn render_one(&self, d: &Diagnostic, out: &mut String) {
        let sev = match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let _ = writeln!(out, "{sev}[{}]: {}", d.code, d.message);
        self.excerpt(&d.location, &d.label, "^", out);
        for (loc, text) in &d.related {
            self.excerpt(loc, text, "-", out);
        }
        if let Some(h) = &d.hint {
            let _ = writeln!(out, "  = hint: {h}");
        }
    }

    fn excerpt(&self, location: &Location, label: &str, mark: &str, out: &mut String) {
        let _ = writeln!(out, "  --> {}", self.position(location));
        let Location::Source { source, span } = location else {
            if !label.is_empty() {
                let _ = writeln!(out, "   = {label}");
            }
            return;
        };
        let Some(src) = self.sources.get(*source) else { return };
        let text = &src.text;
        let start = floor_char_boundary(text, span.start.min(text.len()));
        let (line, col) = line_col(text, start);
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let line_text = text[line_start..line_end].trim_end_matches('\r');
        let end = floor_char_boundary(text, span.end.min(line_end).max(start));
        let width = text[start..end].chars().count().max(1);
        let gutter = line.to_string().len();
        let pad = " ".repeat(gutter);
        let _ = writeln!(out, "{pad} |");
        let _ = writeln!(out, "{line} | {}", line_text.replace('\t', " "));
        let _ = writeln!(out, "{pad} | {}{} {label}", " ".repeat(col - 1), mark.repeat(width));
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// 1-based line and character column of byte `offset`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = floor_char_boundary(text, offset.min(text.len()));
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, text[line_start..offset].chars().count() + 1)
}

/// The closest of `candidates` to `word` by edit distance, if close enough to be a likely typo.
pub(crate) fn nearest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = edit_distance(word, c);
        if d <= (word.len().max(c.len()) / 3).max(1) && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().take(64).collect();
    let b: Vec<char> = b.chars().take(64).collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_characters() {
        assert_eq!(line_col("ab\ncä d", 6), (2, 3));
        assert_eq!(line_col("", 0), (1, 1));
        assert_eq!(line_col("abc", 99), (1, 4));
    }

    #[test]
    fn nearest_finds_typos_only() {
        assert_eq!(nearest("redirectr", ["redirector", "kpi"]), Some("redirector"));
        assert_eq!(nearest("zzz", ["redirector", "kpi"]), None);
    }
}
