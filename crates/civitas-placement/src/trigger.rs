//! Triggers: thresholds on analyzer fields, and their hand-written parser.
//!
//! ```text
//! trigger    = subject comparison threshold clause*
//! subject    = field | "cost" "(" expression ")"
//! field      = response_time.mean | response_time.p50 | response_time.p95 | response_time.ewma
//!            | size.mean | size.max | frequency.rate | samples
//! comparison = ">" | ">=" | "<" | "<="
//! threshold  = ["-"] number [unit]          unit: by the field's kind (see FieldKind)
//! clause     = "for" duration | "min" integer | "cooldown" duration   (each at most once, any order)
//! duration   = number ("ms" | "s" | "m" | "h")
//! ```

use std::fmt;
use std::time::Duration;

use crate::analyzers::{CostFunction, Field, FieldKind, FieldValues, parse_cost_expression};
use crate::syntax::{Cursor, Token, TokenKind};

/// Hold time when a trigger has no `for` clause: it fires at the first evaluation that
/// finds its condition true.
pub const DEFAULT_HOLD: Duration = Duration::ZERO;
/// Minimum samples (requests in the window) when a trigger has no `min` clause.
pub const DEFAULT_MIN_SAMPLES: u64 = 10;
/// Cooldown when a trigger has no `cooldown` clause: 5 minutes.
pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(300);
/// Longest trigger accepted, in characters.
pub const MAX_TRIGGER_LEN: usize = 1024;

const FIELD_LIST: &str = "response_time.mean, response_time.p50, response_time.p95, response_time.ewma, size.mean, size.max, frequency.rate, samples or cost(<expression>)";
const TIME_UNITS: [(&str, f64); 4] = [("ms", 1.0), ("s", 1e3), ("m", 60e3), ("h", 3600e3)];
const SIZE_UNITS: [(&str, f64); 7] = [
    ("B", 1.0),
    ("KB", 1e3),
    ("KiB", 1024.0),
    ("MB", 1e6),
    ("MiB", 1024.0 * 1024.0),
    ("GB", 1e9),
    ("GiB", 1024.0 * 1024.0 * 1024.0),
];
const KEYWORDS: [&str; 3] = ["for", "min", "cooldown"];

/// Why a trigger or cost function did not parse, and where.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message} at column {column}")]
pub struct TriggerParseError {
    /// 1-based column of the offending character (characters, not bytes); one past the
    /// end when the text ended too early.
    pub column: usize,
    /// What was wrong and what was expected instead.
    pub message: String,
}

/// What a trigger compares: one field, or a cost function over the fields.
#[derive(Debug, Clone, PartialEq)]
pub enum TriggerSubject {
    /// A field such as `response_time.p50`.
    Field(Field),
    /// `cost(<expression>)`; its value is the analysis field `cost`.
    Cost(CostFunction),
}

impl fmt::Display for TriggerSubject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TriggerSubject::Field(field) => f.write_str(field.name()),
            TriggerSubject::Cost(function) => write!(f, "cost({function})"),
        }
    }
}

/// How the value is compared with the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// `>`
    Greater,
    /// `>=`
    GreaterOrEqual,
    /// `<`
    Less,
    /// `<=`
    LessOrEqual,
}

impl Comparison {
    /// Whether `value <op> threshold`.
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::Greater => value > threshold,
            Comparison::GreaterOrEqual => value >= threshold,
            Comparison::Less => value < threshold,
            Comparison::LessOrEqual => value <= threshold,
        }
    }

    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            Comparison::Greater => ">",
            Comparison::GreaterOrEqual => ">=",
            Comparison::Less => "<",
            Comparison::LessOrEqual => "<=",
        }
    }
}

/// A parsed trigger: fire when `subject <comparison> threshold` has held for `hold`
/// with at least `min_samples` requests in the window; then not again before `cooldown`.
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerSpec {
    /// The trigger as written (surrounding whitespace trimmed).
    pub text: String,
    /// The field or cost function compared.
    pub subject: TriggerSubject,
    /// The comparison.
    pub comparison: Comparison,
    /// The threshold in the field's base unit: ms for times, bytes for sizes,
    /// requests/s for rates, plain numbers for counts and costs.
    pub threshold: f64,
    /// How long the condition must hold before firing (`for`, default 0 s).
    pub hold: Duration,
    /// Requests that must be in the window (`min`, default 10).
    pub min_samples: u64,
    /// Time after firing before the trigger re-arms (`cooldown`, default 5 min).
    pub cooldown: Duration,
}

impl TriggerSpec {
    /// The subject's value over `values`; `None` without data.
    pub fn value(&self, values: &FieldValues) -> Option<f64> {
        match &self.subject {
            TriggerSubject::Field(field) => values.get(*field),
            TriggerSubject::Cost(function) => function.evaluate(values),
        }
    }

    /// Whether the condition holds for `value` and `samples` requests in the window.
    pub fn is_met(&self, value: Option<f64>, samples: u64) -> bool {
        samples >= self.min_samples && value.is_some_and(|v| self.comparison.holds(v, self.threshold))
    }
}

impl fmt::Display for TriggerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for TriggerSpec {
    type Err = TriggerParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_trigger(s)
    }
}

/// Parses a trigger such as `response_time.p95 >= 800ms for 30s min 50 cooldown 10m`;
/// see the module grammar. Errors give the 1-based column and what was expected.
pub fn parse_trigger(text: &str) -> Result<TriggerSpec, TriggerParseError> {
    if text.chars().count() > MAX_TRIGGER_LEN {
        return Err(TriggerParseError {
            column: MAX_TRIGGER_LEN + 1,
            message: format!("a trigger is at most {MAX_TRIGGER_LEN} characters"),
        });
    }
    let mut cursor = Cursor::new(text);
    let subject = parse_subject(&mut cursor)?;

    let token = cursor.next();
    let comparison = match token.kind {
        TokenKind::Greater => Comparison::Greater,
        TokenKind::GreaterOrEqual => Comparison::GreaterOrEqual,
        TokenKind::Less => Comparison::Less,
        TokenKind::LessOrEqual => Comparison::LessOrEqual,
        _ => return Err(cursor.expected(token, "a comparison (>, >=, <, <=)")),
    };

    let threshold = parse_threshold(&mut cursor, &subject)?;

    let (mut hold, mut min_samples, mut cooldown) = (None, None, None);
    loop {
        let keyword = cursor.next();
        match (keyword.kind, cursor.text(keyword)) {
            (TokenKind::End, _) => break,
            (TokenKind::Ident, "for") => {
                let value = parse_duration(&mut cursor, "for")?;
                set_once(&cursor, &mut hold, value, keyword)?;
            }
            (TokenKind::Ident, "min") => {
                let value = parse_count(&mut cursor)?;
                set_once(&cursor, &mut min_samples, value, keyword)?;
            }
            (TokenKind::Ident, "cooldown") => {
                let value = parse_duration(&mut cursor, "cooldown")?;
                set_once(&cursor, &mut cooldown, value, keyword)?;
            }
            _ => return Err(cursor.expected(keyword, "`for`, `min`, `cooldown` or end of input")),
        }
    }

    Ok(TriggerSpec {
        text: text.trim().to_string(),
        subject,
        comparison,
        threshold,
        hold: hold.unwrap_or(DEFAULT_HOLD),
        min_samples: min_samples.unwrap_or(DEFAULT_MIN_SAMPLES),
        cooldown: cooldown.unwrap_or(DEFAULT_COOLDOWN),
    })
}

fn parse_subject(cursor: &mut Cursor<'_>) -> Result<TriggerSubject, TriggerParseError> {
    let token = cursor.next();
    if token.kind != TokenKind::Ident {
        return Err(cursor.expected(token, &format!("a field ({FIELD_LIST})")));
    }
    let name = cursor.text(token);
    if name == "cost" {
        let open = cursor.next();
        if open.kind != TokenKind::OpenParen {
            return Err(cursor.expected(open, "`(` after `cost`"));
        }
        let function = parse_cost_expression(cursor)?;
        let close = cursor.next();
        if close.kind != TokenKind::CloseParen {
            return Err(cursor.expected(close, "an operator (+, -, *, /) or `)`"));
        }
        return Ok(TriggerSubject::Cost(function));
    }
    if let Some(field) = Field::from_name(name) {
        return Ok(TriggerSubject::Field(field));
    }
    let message = match Field::from_alias_or_name(name) {
        Some(field) => format!("`{name}` is a cost-function alias; write {} here, or cost({name})", field.name()),
        None => format!("unknown field `{name}`, expected one of {FIELD_LIST}"),
    };
    Err(cursor.error(token, message))
}

fn parse_threshold(cursor: &mut Cursor<'_>, subject: &TriggerSubject) -> Result<f64, TriggerParseError> {
    let mut token = cursor.next();
    let negative = token.kind == TokenKind::Minus;
    if negative {
        token = cursor.next();
    }
    let TokenKind::Number(number) = token.kind else {
        return Err(cursor.expected(token, "a number"));
    };
    if !number.is_finite() {
        return Err(cursor.error(token, format!("number `{}` is too large", cursor.text(token))));
    }
    let number = if negative { -number } else { number };

    // A unit is written right after the number (`3s`) or apart from it (`3 s`); a word
    // apart from the number that is no unit is left for the clauses to judge.
    let unit = cursor.peek();
    let unit_text = cursor.text(unit);
    let is_any_unit = TIME_UNITS.iter().chain(&SIZE_UNITS).any(|(u, _)| *u == unit_text);
    if unit.kind != TokenKind::Ident || KEYWORDS.contains(&unit_text) || !(unit.start == token.end || is_any_unit) {
        return Ok(number);
    }
    cursor.next();
    let kind = match subject {
        TriggerSubject::Field(field) => field.kind(),
        TriggerSubject::Cost(_) => FieldKind::Count,
    };
    let (units, what): (&[(&str, f64)], &str) = match kind {
        FieldKind::Time => (&TIME_UNITS, "ms, s, m or h"),
        FieldKind::Size => (&SIZE_UNITS, "B, KB, KiB, MB, MiB, GB or GiB"),
        FieldKind::Rate | FieldKind::Count => {
            let name = match subject {
                TriggerSubject::Field(field) => field.name(),
                TriggerSubject::Cost(_) => "cost(…)",
            };
            return Err(cursor.error(unit, format!("{name} takes a plain number without a unit, found `{unit_text}`")));
        }
    };
    match units.iter().find(|(u, _)| *u == unit_text) {
        Some((_, factor)) => Ok(number * factor),
        None => {
            let kind_name = if kind == FieldKind::Time { "time" } else { "size" };
            Err(cursor.error(unit, format!("`{unit_text}` is not a {kind_name} unit for {subject}, expected {what}")))
        }
    }
}

fn parse_duration(cursor: &mut Cursor<'_>, keyword: &str) -> Result<Duration, TriggerParseError> {
    let number = cursor.next();
    let TokenKind::Number(value) = number.kind else {
        return Err(cursor.expected(number, &format!("a duration after `{keyword}` such as 500ms, 30s, 5m or 1h")));
    };
    let unit = cursor.peek();
    let unit_text = cursor.text(unit);
    if unit.kind != TokenKind::Ident || KEYWORDS.contains(&unit_text) {
        let what = format!("a duration unit (ms, s, m or h) after `{}`", cursor.text(number));
        return Err(cursor.expected(unit, &what));
    }
    cursor.next();
    let Some((_, factor_ms)) = TIME_UNITS.iter().find(|(u, _)| *u == unit_text) else {
        return Err(cursor.error(unit, format!("`{unit_text}` is not a duration unit, expected ms, s, m or h")));
    };
    Duration::try_from_secs_f64(value * factor_ms / 1000.0).map_err(|_| {
        let written = cursor.slice(number.start, unit.end);
        cursor.error(number, format!("duration `{written}` is out of range"))
    })
}

fn parse_count(cursor: &mut Cursor<'_>) -> Result<u64, TriggerParseError> {
    let token = cursor.next();
    let text = cursor.text(token);
    if !matches!(token.kind, TokenKind::Number(_)) || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(cursor.expected(token, "a whole number of samples after `min`"));
    }
    text.parse().map_err(|_| cursor.error(token, format!("number `{text}` is too large")))
}

fn set_once<T>(cursor: &Cursor<'_>, slot: &mut Option<T>, value: T, keyword: Token) -> Result<(), TriggerParseError> {
    if slot.is_some() {
        return Err(cursor.error(keyword, format!("`{}` is given twice", cursor.text(keyword))));
    }
    *slot = Some(value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> TriggerSpec {
        parse_trigger(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    fn error(text: &str) -> String {
        parse_trigger(text).unwrap_err().to_string()
    }

    #[test]
    fn the_issue_examples_parse_with_defaults() {
        let t = parse("response_time.p50 > 3s");
        assert_eq!(t.subject, TriggerSubject::Field(Field::ResponseTimeP50));
        assert_eq!(t.comparison, Comparison::Greater);
        assert_eq!(t.threshold, 3000.0);
        assert_eq!((t.hold, t.min_samples, t.cooldown), (Duration::ZERO, 10, Duration::from_secs(300)));
        assert_eq!(t.text, "response_time.p50 > 3s");

        let t = parse("response_time.p95 >= 800ms for 30s min 50 cooldown 10m");
        assert_eq!(t.subject, TriggerSubject::Field(Field::ResponseTimeP95));
        assert_eq!(t.comparison, Comparison::GreaterOrEqual);
        assert_eq!(t.threshold, 800.0);
        assert_eq!((t.hold, t.min_samples, t.cooldown), (Duration::from_secs(30), 50, Duration::from_secs(600)));

        let t = parse("frequency.rate > 2");
        assert_eq!((t.subject.clone(), t.threshold), (TriggerSubject::Field(Field::FrequencyRate), 2.0));

        let t = parse("size.mean > 1MiB");
        assert_eq!((t.subject.clone(), t.threshold), (TriggerSubject::Field(Field::SizeMean), 1_048_576.0));

        let t = parse("cost(p50_ms * rate_per_s - 0.001 * mean_bytes) > 500");
        let TriggerSubject::Cost(function) = &t.subject else { panic!("{:?}", t.subject) };
        assert_eq!(function.text(), "p50_ms * rate_per_s - 0.001 * mean_bytes");
        assert_eq!(t.threshold, 500.0);
        assert_eq!(t.subject.to_string(), "cost(p50_ms * rate_per_s - 0.001 * mean_bytes)");
    }

    #[test]
    fn units_scale_the_threshold() {
        let cases: [(&str, f64); 14] = [
            ("response_time.mean > 250", 250.0),
            ("response_time.mean > 250ms", 250.0),
            ("response_time.mean > 1.5s", 1500.0),
            ("response_time.mean > 2m", 120_000.0),
            ("response_time.mean > 1h", 3_600_000.0),
            ("response_time.ewma < 3 s", 3000.0),
            ("size.max > 512", 512.0),
            ("size.max > 512B", 512.0),
            ("size.max > 2KB", 2000.0),
            ("size.max > 2KiB", 2048.0),
            ("size.max > 3MB", 3e6),
            ("size.max > 1GB", 1e9),
            ("size.max >= 1GiB", 1_073_741_824.0),
            ("samples <= 1e3", 1000.0),
        ];
        for (text, threshold) in cases {
            assert_eq!(parse(text).threshold, threshold, "{text}");
        }
        assert_eq!(parse("cost(-p50_ms) < -5").threshold, -5.0);
        assert_eq!(parse("frequency.rate<0.5").comparison, Comparison::Less);
    }

    #[test]
    fn clauses_in_any_order_with_every_duration_unit() {
        let t = parse("  frequency.rate > 2 cooldown 1h min 0 for 500ms  ");
        assert_eq!((t.hold, t.min_samples, t.cooldown), (Duration::from_millis(500), 0, Duration::from_secs(3600)));
        assert_eq!(t.text, "frequency.rate > 2 cooldown 1h min 0 for 500ms");
        let t = parse("samples > 5 for 5m cooldown 0s");
        assert_eq!((t.hold, t.cooldown), (Duration::from_secs(300), Duration::ZERO));
        assert_eq!(parse("samples > 5 for 1.5s").hold, Duration::from_millis(1500));
    }

    #[test]
    fn conditions() {
        let t = parse("response_time.p50 > 3s min 2");
        assert!(!t.is_met(Some(3000.0), 5));
        assert!(t.is_met(Some(3000.1), 2));
        assert!(!t.is_met(Some(9000.0), 1));
        assert!(!t.is_met(None, 100));
        assert!(parse("samples >= 3 min 0").is_met(Some(3.0), 0));
        assert!(parse("samples < 3 min 0").is_met(Some(2.0), 0));
        assert!(parse("samples <= 3 min 0").is_met(Some(3.0), 0));
    }

    #[test]
    fn malformed_triggers_name_the_column_and_what_was_expected() {
        let cases: &[(&str, &str)] = &[
            (
                "",
                "expected a field (response_time.mean, response_time.p50, response_time.p95, response_time.ewma, size.mean, size.max, frequency.rate, samples or cost(<expression>)), found end of input at column 1",
            ),
            (
                "> 3s",
                "expected a field (response_time.mean, response_time.p50, response_time.p95, response_time.ewma, size.mean, size.max, frequency.rate, samples or cost(<expression>)), found `>` at column 1",
            ),
            (
                "response_tme.p50 > 3s",
                "unknown field `response_tme.p50`, expected one of response_time.mean, response_time.p50, response_time.p95, response_time.ewma, size.mean, size.max, frequency.rate, samples or cost(<expression>) at column 1",
            ),
            (
                "  p50_ms > 3s",
                "`p50_ms` is a cost-function alias; write response_time.p50 here, or cost(p50_ms) at column 3",
            ),
            ("response_time.p50", "expected a comparison (>, >=, <, <=), found end of input at column 18"),
            ("response_time.p50 = 3s", "expected a comparison (>, >=, <, <=), found `=` at column 19"),
            ("response_time.p50 => 3s", "expected a comparison (>, >=, <, <=), found `=` at column 19"),
            ("response_time.p50 >", "expected a number, found end of input at column 20"),
            ("response_time.p50 > fast", "expected a number, found `fast` at column 21"),
            (
                "response_time.p50 > 3KB",
                "`KB` is not a time unit for response_time.p50, expected ms, s, m or h at column 22",
            ),
            (
                "response_time.p50 > 3 MiB",
                "`MiB` is not a time unit for response_time.p50, expected ms, s, m or h at column 23",
            ),
            (
                "response_time.p50 > 3sec",
                "`sec` is not a time unit for response_time.p50, expected ms, s, m or h at column 22",
            ),
            (
                "size.mean > 1mib",
                "`mib` is not a size unit for size.mean, expected B, KB, KiB, MB, MiB, GB or GiB at column 14",
            ),
            (
                "size.mean > 1s",
                "`s` is not a size unit for size.mean, expected B, KB, KiB, MB, MiB, GB or GiB at column 14",
            ),
            ("frequency.rate > 2/s", "expected `for`, `min`, `cooldown` or end of input, found `/` at column 19"),
            ("frequency.rate > 2KB", "frequency.rate takes a plain number without a unit, found `KB` at column 19"),
            ("samples > 10 s", "samples takes a plain number without a unit, found `s` at column 14"),
            ("cost(p50_ms) > 3s", "cost(…) takes a plain number without a unit, found `s` at column 17"),
            (
                "response_time.p50 > 3s fro 30s",
                "expected `for`, `min`, `cooldown` or end of input, found `fro` at column 24",
            ),
            (
                "response_time.p50 > 3s for",
                "expected a duration after `for` such as 500ms, 30s, 5m or 1h, found end of input at column 27",
            ),
            (
                "response_time.p50 > 3s for 30",
                "expected a duration unit (ms, s, m or h) after `30`, found end of input at column 30",
            ),
            (
                "response_time.p50 > 3s for 30 min 5",
                "expected a duration unit (ms, s, m or h) after `30`, found `min` at column 31",
            ),
            ("response_time.p50 > 3s for 30d", "`d` is not a duration unit, expected ms, s, m or h at column 30"),
            (
                "response_time.p50 > 3s for -1s",
                "expected a duration after `for` such as 500ms, 30s, 5m or 1h, found `-` at column 28",
            ),
            ("response_time.p50 > 3s cooldown 1e300h", "duration `1e300h` is out of range at column 33"),
            (
                "response_time.p50 > 3s min",
                "expected a whole number of samples after `min`, found end of input at column 27",
            ),
            (
                "response_time.p50 > 3s min 2.5",
                "expected a whole number of samples after `min`, found `2.5` at column 28",
            ),
            (
                "response_time.p50 > 3s min 99999999999999999999",
                "number `99999999999999999999` is too large at column 28",
            ),
            ("response_time.p50 > 3s for 1s for 2s", "`for` is given twice at column 31"),
            ("response_time.p50 > 3s min 5 cooldown 1m min 6", "`min` is given twice at column 42"),
            ("cost p50_ms > 1", "expected `(` after `cost`, found `p50_ms` at column 6"),
            ("cost(p50_ms > 1", "expected an operator (+, -, *, /) or `)`, found `>` at column 13"),
            ("cost() > 1", "expected a number, a field or `(`, found `)` at column 6"),
            (
                "cost(p50_ms * latency) > 1",
                "unknown field `latency` in cost function, expected one of mean_ms, p50_ms, p95_ms, ewma_ms, mean_bytes, max_bytes, rate_per_s, samples or a full field name such as response_time.p50 at column 15",
            ),
            ("cost(1 + (2) > 1", "expected an operator (+, -, *, /) or `)`, found `>` at column 14"),
            (
                "éponse > 1",
                "expected a field (response_time.mean, response_time.p50, response_time.p95, response_time.ewma, size.mean, size.max, frequency.rate, samples or cost(<expression>)), found `é` at column 1",
            ),
            ("size.max > 1é", "expected `for`, `min`, `cooldown` or end of input, found `é` at column 13"),
        ];
        for (text, message) in cases {
            assert_eq!(&error(text), message, "for {text:?}");
        }
    }

    #[test]
    fn overlong_triggers_are_refused() {
        let text = format!("samples > 1 {}", " ".repeat(MAX_TRIGGER_LEN));
        assert_eq!(error(&text), "a trigger is at most 1024 characters at column 1025");
    }

    #[test]
    fn errors_expose_column_and_message() {
        let e = parse_trigger("size.mean ? 1").unwrap_err();
        assert_eq!(
            e,
            TriggerParseError { column: 11, message: "expected a comparison (>, >=, <, <=), found `?`".into() }
        );
        let spec: TriggerSpec = "samples > 1".parse().unwrap();
        assert_eq!(spec.to_string(), "samples > 1");
    }
}
