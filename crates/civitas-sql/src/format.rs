//! Output formats (JSON, NDJSON, CSV) chosen by `Accept`, and the row encoder.

use bytes::{BufMut, BytesMut};
use tokio_postgres::Row;
use tokio_postgres::types::Type;

use crate::error::SqlError;

/// A response format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON array of objects (`application/json`), the default.
    Json,
    /// One JSON object per line (`application/x-ndjson`).
    Ndjson,
    /// RFC 4180 CSV with a header line (`text/csv`).
    Csv,
}

impl Format {
    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Ndjson => "application/x-ndjson",
            Format::Csv => "text/csv; charset=utf-8",
        }
    }

    /// Picks the format from an `Accept` header: the served type with the highest `q`
    /// (first listed on a tie); no header, an empty one or `*/*` is JSON.
    /// `application/ndjson` and `application/jsonl` are taken as NDJSON.
    pub fn from_accept(accept: Option<&str>) -> Result<Format, SqlError> {
        let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else { return Ok(Format::Json) };
        let mut best: Option<(f32, Format)> = None;
        for item in accept.split(',') {
            let mut parts = item.split(';');
            let media_type = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .find_map(|p| p.trim().strip_prefix("q=").map(|q| q.trim().parse::<f32>().unwrap_or(0.0)))
                .unwrap_or(1.0);
            if q <= 0.0 {
                continue;
            }
            let format = match media_type.as_str() {
                "application/json" | "*/*" | "application/*" => Format::Json,
                "application/x-ndjson" | "application/ndjson" | "application/jsonl" => Format::Ndjson,
                "text/csv" | "text/*" => Format::Csv,
                _ => continue,
            };
            if best.is_none_or(|(best_q, _)| q > best_q) {
                best = Some((q, format));
            }
        }
        best.map(|(_, f)| f).ok_or_else(|| SqlError::NotAcceptable(accept.to_owned()))
    }
}

/// How a column's text is written in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JsonKind {
    Number,
    Bool,
    Json,
    Text,
}

fn json_kind(ty: &Type) -> JsonKind {
    match *ty {
        Type::INT2 | Type::INT4 | Type::INT8 | Type::OID | Type::FLOAT4 | Type::FLOAT8 | Type::NUMERIC => {
            JsonKind::Number
        }
        Type::BOOL => JsonKind::Bool,
        Type::JSON | Type::JSONB => JsonKind::Json,
        _ => JsonKind::Text,
    }
}

/// Writes rows whose columns are all cast to `text` by the serving statement, knowing each
/// column's original type (numbers and booleans stay JSON numbers and booleans).
pub(crate) struct Encoder {
    format: Format,
    /// Column names, already encoded (a JSON string with its colon, or a CSV field).
    names: Vec<Vec<u8>>,
    kinds: Vec<JsonKind>,
    rows: u64,
}

impl Encoder {
    pub(crate) fn new(format: Format, columns: &[(String, Type)]) -> Self {
        let names = columns
            .iter()
            .map(|(name, _)| match format {
                Format::Csv => {
                    let mut b = BytesMut::new();
                    csv_field(&mut b, name);
                    b.to_vec()
                }
                _ => {
                    let mut b = serde_json::to_vec(name).expect("a string encodes");
                    b.push(b':');
                    b
                }
            })
            .collect();
        Self { format, names, kinds: columns.iter().map(|(_, t)| json_kind(t)).collect(), rows: 0 }
    }

    /// What comes before the first row.
    pub(crate) fn begin(&self, out: &mut BytesMut) {
        match self.format {
            Format::Json => out.put_u8(b'['),
            Format::Ndjson => {}
            Format::Csv => {
                for (i, name) in self.names.iter().enumerate() {
                    if i > 0 {
                        out.put_u8(b',');
                    }
                    out.put_slice(name);
                }
                out.put_u8(b'\n');
            }
        }
    }

    /// One row.
    pub(crate) fn row(&mut self, row: &Row, out: &mut BytesMut) -> Result<(), tokio_postgres::Error> {
        if self.format == Format::Json && self.rows > 0 {
            out.put_u8(b',');
        }
        self.rows += 1;
        if self.format == Format::Csv {
            for i in 0..self.names.len() {
                if i > 0 {
                    out.put_u8(b',');
                }
                // NULL is an empty field; an empty string is `""`.
                if let Some(text) = row.try_get::<_, Option<&str>>(i)? {
                    if text.is_empty() { out.put_slice(b"\"\"") } else { csv_field(out, text) }
                }
            }
            out.put_u8(b'\n');
            return Ok(());
        }
        out.put_u8(b'{');
        for (i, name) in self.names.iter().enumerate() {
            if i > 0 {
                out.put_u8(b',');
            }
            out.put_slice(name);
            match row.try_get::<_, Option<&str>>(i)? {
                None => out.put_slice(b"null"),
                Some(text) => json_value(out, self.kinds[i], text),
            }
        }
        out.put_u8(b'}');
        if self.format == Format::Ndjson {
            out.put_u8(b'\n');
        }
        Ok(())
    }

    /// What comes after the last row.
    pub(crate) fn end(&self, out: &mut BytesMut) {
        if self.format == Format::Json {
            out.put_u8(b']');
        }
    }
}

fn json_value(out: &mut BytesMut, kind: JsonKind, text: &str) {
    match kind {
        // `NaN` and `Infinity` are not JSON numbers: they are written as strings.
        JsonKind::Number if is_json_number(text) => out.put_slice(text.as_bytes()),
        JsonKind::Bool if text == "true" || text == "false" => out.put_slice(text.as_bytes()),
        JsonKind::Json => out.put_slice(text.as_bytes()),
        _ => serde_json::to_writer((&mut *out).writer(), text).expect("writing to memory"),
    }
}

fn is_json_number(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    digits.as_bytes().first().is_some_and(u8::is_ascii_digit)
        && text.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'))
}

fn csv_field(out: &mut BytesMut, text: &str) {
    if text.bytes().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r')) {
        out.put_u8(b'"');
        for part in text.split('"').enumerate() {
            if part.0 > 0 {
                out.put_slice(b"\"\"");
            }
            out.put_slice(part.1.as_bytes());
        }
        out.put_u8(b'"');
    } else {
        out.put_slice(text.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_picks_the_best_served_type() {
        assert_eq!(Format::from_accept(None).unwrap(), Format::Json);
        assert_eq!(Format::from_accept(Some("")).unwrap(), Format::Json);
        assert_eq!(Format::from_accept(Some("*/*")).unwrap(), Format::Json);
        assert_eq!(Format::from_accept(Some("text/csv")).unwrap(), Format::Csv);
        assert_eq!(Format::from_accept(Some("application/x-ndjson")).unwrap(), Format::Ndjson);
        assert_eq!(
            Format::from_accept(Some("text/html, text/csv;q=0.5, application/json;q=0.9")).unwrap(),
            Format::Json
        );
        assert_eq!(Format::from_accept(Some("application/json;q=0, text/csv")).unwrap(), Format::Csv);
        let e = Format::from_accept(Some("text/html")).unwrap_err();
        assert_eq!(e.status(), 406);
    }

    #[test]
    fn csv_quotes_only_what_needs_it() {
        let mut b = BytesMut::new();
        csv_field(&mut b, "plain");
        b.put_u8(b'|');
        csv_field(&mut b, "a,b \"c\"\nd");
        assert_eq!(&b[..], b"plain|\"a,b \"\"c\"\"\nd\"");
    }

    #[test]
    fn numbers_that_json_cannot_hold_become_strings() {
        for (text, want) in [("42", "42"), ("-1.5e3", "-1.5e3"), ("NaN", "\"NaN\""), ("-Infinity", "\"-Infinity\"")] {
            let mut b = BytesMut::new();
            json_value(&mut b, JsonKind::Number, text);
            assert_eq!(std::str::from_utf8(&b).unwrap(), want);
        }
    }
}
