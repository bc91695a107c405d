//! The lexer and token cursor shared by the trigger and cost-function parsers.
//!
//! Columns are 1-based and count characters (not bytes), so an error points at the
//! same place a person sees in a terminal.

use crate::trigger::TriggerParseError;

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum TokenKind {
    /// `12`, `0.5`, `1e-3` (never negative: `-` is its own token).
    Number(f64),
    /// A letter or `_` followed by letters, digits, `_` or `.`: fields, aliases, units, keywords.
    Ident,
    Greater,
    GreaterOrEqual,
    Less,
    LessOrEqual,
    OpenParen,
    CloseParen,
    Plus,
    Minus,
    Star,
    Slash,
    /// Any other character; the parser says what it expected instead.
    Other,
    /// The end of the text.
    End,
}

/// A token and where it is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Token {
    pub(crate) kind: TokenKind,
    /// Byte range in the source.
    pub(crate) start: usize,
    pub(crate) end: usize,
    /// 1-based character column of its first character.
    pub(crate) column: usize,
}

/// Splits `src` into tokens, ending with one [`TokenKind::End`].
pub(crate) fn tokenize(src: &str) -> Vec<Token> {
    let chars: Vec<(usize, char)> = src.char_indices().collect();
    let byte_at = |i: usize| chars.get(i).map_or(src.len(), |(b, _)| *b);
    let is_digit = |i: usize| chars.get(i).is_some_and(|(_, c)| c.is_ascii_digit());
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i].1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let begin = i;
        let kind = if c.is_ascii_digit() {
            while is_digit(i) {
                i += 1;
            }
            if chars.get(i).is_some_and(|(_, c)| *c == '.') && is_digit(i + 1) {
                i += 1;
                while is_digit(i) {
                    i += 1;
                }
            }
            if chars.get(i).is_some_and(|(_, c)| matches!(c, 'e' | 'E')) {
                let sign = usize::from(chars.get(i + 1).is_some_and(|(_, c)| matches!(c, '+' | '-')));
                if is_digit(i + 1 + sign) {
                    i += 1 + sign;
                    while is_digit(i) {
                        i += 1;
                    }
                }
            }
            // Digits always parse; an absurdly long one becomes infinity, refused later.
            TokenKind::Number(src[byte_at(begin)..byte_at(i)].parse().unwrap_or(f64::INFINITY))
        } else if c.is_ascii_alphabetic() || c == '_' {
            while chars.get(i).is_some_and(|(_, c)| c.is_ascii_alphanumeric() || matches!(c, '_' | '.')) {
                i += 1;
            }
            TokenKind::Ident
        } else {
            i += 1;
            let next_is_eq = chars.get(i).is_some_and(|(_, c)| *c == '=');
            match c {
                '>' if next_is_eq => {
                    i += 1;
                    TokenKind::GreaterOrEqual
                }
                '<' if next_is_eq => {
                    i += 1;
                    TokenKind::LessOrEqual
                }
                '>' => TokenKind::Greater,
                '<' => TokenKind::Less,
                '(' => TokenKind::OpenParen,
                ')' => TokenKind::CloseParen,
                '+' => TokenKind::Plus,
                '-' => TokenKind::Minus,
                '*' => TokenKind::Star,
                '/' => TokenKind::Slash,
                _ => TokenKind::Other,
            }
        };
        tokens.push(Token { kind, start: byte_at(begin), end: byte_at(i), column: begin + 1 });
    }
    tokens.push(Token { kind: TokenKind::End, start: src.len(), end: src.len(), column: chars.len() + 1 });
    tokens
}

/// A position in a token list, with the helpers every parser here needs.
pub(crate) struct Cursor<'a> {
    src: &'a str,
    tokens: Vec<Token>,
    position: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(src: &'a str) -> Cursor<'a> {
        Cursor { src, tokens: tokenize(src), position: 0 }
    }

    /// The next token, without consuming it.
    pub(crate) fn peek(&self) -> Token {
        self.tokens[self.position.min(self.tokens.len() - 1)]
    }

    /// The next token; the end token repeats forever.
    pub(crate) fn next(&mut self) -> Token {
        let token = self.peek();
        if token.kind != TokenKind::End {
            self.position += 1;
        }
        token
    }

    /// The token's text.
    pub(crate) fn text(&self, token: Token) -> &'a str {
        &self.src[token.start..token.end]
    }

    /// The source between two byte offsets.
    pub(crate) fn slice(&self, start: usize, end: usize) -> &'a str {
        &self.src[start..end]
    }

    /// How a token reads in "found …": `` `>=` `` or `end of input`.
    pub(crate) fn found(&self, token: Token) -> String {
        match token.kind {
            TokenKind::End => "end of input".to_string(),
            _ => format!("`{}`", self.text(token)),
        }
    }

    /// An error at `token`.
    pub(crate) fn error(&self, token: Token, message: impl Into<String>) -> TriggerParseError {
        TriggerParseError { column: token.column, message: message.into() }
    }

    /// "expected {what}, found …" at `token`.
    pub(crate) fn expected(&self, token: Token, what: &str) -> TriggerParseError {
        self.error(token, format!("expected {what}, found {}", self.found(token)))
    }

    /// The byte end of the last consumed token (the start of the source if none).
    pub(crate) fn previous_end(&self) -> usize {
        self.position.checked_sub(1).map_or(0, |p| self.tokens[p].end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<(TokenKind, &str, usize)> {
        tokenize(src).into_iter().map(|t| (t.kind, &src[t.start..t.end], t.column)).collect()
    }

    #[test]
    fn tokens_with_columns() {
        use TokenKind::*;
        assert_eq!(
            kinds("response_time.p95>=800ms for 1.5e3s"),
            vec![
                (Ident, "response_time.p95", 1),
                (GreaterOrEqual, ">=", 18),
                (Number(800.0), "800", 20),
                (Ident, "ms", 23),
                (Ident, "for", 26),
                (Number(1500.0), "1.5e3", 30),
                (Ident, "s", 35),
                (End, "", 36),
            ]
        );
        assert_eq!(
            kinds("(-2)*x/1. <= é"),
            vec![
                (OpenParen, "(", 1),
                (Minus, "-", 2),
                (Number(2.0), "2", 3),
                (CloseParen, ")", 4),
                (Star, "*", 5),
                (Ident, "x", 6),
                (Slash, "/", 7),
                (Number(1.0), "1", 8),
                (Other, ".", 9),
                (LessOrEqual, "<=", 11),
                (Other, "é", 14),
                (End, "", 15),
            ]
        );
        // An exponent needs digits; otherwise `e` starts a unit or name.
        assert_eq!(kinds("2e"), vec![(Number(2.0), "2", 1), (Ident, "e", 2), (End, "", 3)]);
    }
}
