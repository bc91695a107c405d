//! Splits `.civ` text into tokens. Never panics; bad characters become [`Tok::Error`]
//! tokens that the parser reports, so one stray byte does not hide the rest of the file.

use crate::diagnostics::Span;

/// What a token is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// A word: letters, digits, `_`, `-`, `.`, starting with a letter or `_`.
    Word(String),
    /// `urn:…` (the same characters a [`civitas_model::Urn`] may hold).
    Urn(String),
    /// A double-quoted string, escapes resolved.
    Str(String),
    /// A number and the unit written right after it (`200ms`, `99.9%`, `50MB/h`, `3`).
    Num(f64, String),
    /// `$name`: a parameter reference.
    Param(String),
    LBrace,
    RBrace,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Comma,
    Colon,
    /// End of a statement: a newline or `;`.
    End,
    /// Something that is not a token; the text says what.
    Error(String),
    /// End of input.
    Eof,
}

impl Tok {
    /// How the parser names a token in "expected … found …".
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Word(w) => format!("`{w}`"),
            Tok::Urn(u) => format!("`{u}`"),
            Tok::Str(s) => format!("the string {s:?}"),
            Tok::Num(n, u) => format!("`{n}{u}`"),
            Tok::Param(p) => format!("`${p}`"),
            Tok::LBrace => "`{`".into(),
            Tok::RBrace => "`}`".into(),
            Tok::Lt => "`<`".into(),
            Tok::Le => "`<=`".into(),
            Tok::Gt => "`>`".into(),
            Tok::Ge => "`>=`".into(),
            Tok::Eq => "`=`".into(),
            Tok::Comma => "`,`".into(),
            Tok::Colon => "`:`".into(),
            Tok::End => "the end of the line".into(),
            Tok::Error(e) => e.clone(),
            Tok::Eof => "the end of the file".into(),
        }
    }
}

/// A token and its place in the source.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    pub(crate) span: Span,
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.'
}

fn is_urn_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "._-~+=@!$()*,;:".contains(c)
}

/// Tokenizes `src`; the result always ends with [`Tok::Eof`].
pub(crate) fn tokenize(src: &str) -> Vec<Token> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let char_at = |i: usize| src[i..].chars().next();
    while i < src.len() {
        let Some(c) = char_at(i) else { break };
        let start = i;
        let push = |out: &mut Vec<Token>, tok: Tok, end: usize| out.push(Token { tok, span: Span::new(start, end) });
        match c {
            '\n' | ';' => {
                push(&mut out, Tok::End, i + 1);
                i += 1;
            }
            c if c.is_whitespace() => i += c.len_utf8(),
            '#' => {
                while i < src.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            '"' => {
                i += 1;
                let mut s = String::new();
                let mut closed = false;
                while let Some(c) = char_at(i) {
                    match c {
                        '"' => {
                            i += 1;
                            closed = true;
                            break;
                        }
                        '\n' => break,
                        '\\' => {
                            i += 1;
                            match char_at(i) {
                                Some('n') => s.push('\n'),
                                Some('t') => s.push('\t'),
                                Some('"') => s.push('"'),
                                Some('\\') => s.push('\\'),
                                Some(other) => {
                                    s.push('\\');
                                    s.push(other);
                                }
                                None => break,
                            }
                            i += char_at(i).map_or(0, char::len_utf8);
                        }
                        c => {
                            s.push(c);
                            i += c.len_utf8();
                        }
                    }
                }
                let tok = if closed { Tok::Str(s) } else { Tok::Error("a string without its closing `\"`".into()) };
                push(&mut out, tok, i);
            }
            '0'..='9' => {
                while i < src.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'_') {
                    i += 1;
                }
                if i + 1 < src.len() && bytes[i] == b'.' && bytes[i + 1].is_ascii_digit() {
                    i += 1;
                    while i < src.len() && bytes[i].is_ascii_digit() {
                        i += 1;
                    }
                }
                let number = src[start..i].replace('_', "");
                let unit_start = i;
                while i < src.len() && (bytes[i].is_ascii_alphabetic() || bytes[i] == b'%' || bytes[i] == b'/') {
                    i += 1;
                }
                let tok = match number.parse::<f64>() {
                    Ok(n) if n.is_finite() => Tok::Num(n, src[unit_start..i].to_string()),
                    _ => Tok::Error(format!("`{}` is not a number", &src[start..i])),
                };
                push(&mut out, tok, i);
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                while i < src.len() && is_word_char(bytes[i] as char) {
                    i += 1;
                }
                let word = &src[start..i];
                if word.eq_ignore_ascii_case("urn") && bytes.get(i) == Some(&b':') {
                    while i < src.len() && is_urn_char(bytes[i] as char) {
                        i += 1;
                    }
                    // A trailing `,` or `;` separates, it does not belong to the name.
                    while i > start && matches!(bytes[i - 1], b',' | b';') {
                        i -= 1;
                    }
                    push(&mut out, Tok::Urn(src[start..i].to_string()), i);
                } else {
                    push(&mut out, Tok::Word(word.to_string()), i);
                }
            }
            '$' => {
                i += 1;
                while i < src.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b'-') {
                    i += 1;
                }
                let tok = if i == start + 1 {
                    Tok::Error("a `$` must be followed by a parameter name".into())
                } else {
                    Tok::Param(src[start + 1..i].to_string())
                };
                push(&mut out, tok, i);
            }
            '<' | '>' => {
                let eq = bytes.get(i + 1) == Some(&b'=');
                let tok = match (c, eq) {
                    ('<', false) => Tok::Lt,
                    ('<', true) => Tok::Le,
                    ('>', false) => Tok::Gt,
                    _ => Tok::Ge,
                };
                i += 1 + usize::from(eq);
                push(&mut out, tok, i);
            }
            _ => {
                let tok = match c {
                    '{' => Tok::LBrace,
                    '}' => Tok::RBrace,
                    '=' => Tok::Eq,
                    ',' => Tok::Comma,
                    ':' => Tok::Colon,
                    other => Tok::Error(format!("unexpected character {other:?}")),
                };
                i += c.len_utf8();
                push(&mut out, tok, i);
            }
        }
    }
    out.push(Token { tok: Tok::Eof, span: Span::new(src.len(), src.len()) });
    out
}
