//! The `.civ` parser: tokens → [`Pipeline`]s and [`Environment`]s, with the span of
//! every item kept in a [`SourceMap`] for the checker's diagnostics.
//!
//! The grammar is statement-oriented (one statement per line, or separated by `;`), so a
//! broken statement is reported and skipped and parsing goes on with the next one: a
//! file's syntax errors come all at once. Input is bounded ([`Limits`]); nothing panics.

// A statement's parse returns its diagnostic by value: errors are the cold path, and
// boxing each one would only add an allocation to every syntax error.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;

use civitas_model::{Tier, Urn};

use crate::diagnostics::{Diagnostic, Location, Span, nearest};
use crate::lexer::{Tok, Token, tokenize};
use crate::model::*;

/// Bounds on what the parser accepts, so that a huge or hostile file is refused quickly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest source accepted, in bytes.
    pub max_source_bytes: usize,
    /// Deepest `{` nesting accepted (the grammar itself needs 2).
    pub max_depth: usize,
    /// Most stages in one pipeline.
    pub max_stages: usize,
    /// Most statements in one stage.
    pub max_statements_per_stage: usize,
    /// Most pipelines and environments in one file.
    pub max_items: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_source_bytes: 4 * 1024 * 1024,
            max_depth: 8,
            max_stages: 5_000,
            max_statements_per_stage: 512,
            max_items: 256,
        }
    }
}

/// Values for a pipeline's parameters in one place (`environment vienna { region = "eu-central" }`).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct Environment {
    /// Its name (`dev`, `vienna`…).
    pub name: String,
    /// Parameter values.
    pub values: BTreeMap<String, String>,
}

/// Where each item of a parsed pipeline is in its source.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceMap {
    /// Which source (index into [`crate::Diagnostics::sources`]).
    pub source: usize,
    /// The `pipeline NAME` header.
    pub pipeline: Span,
    /// The `budget` statement.
    pub budget: Option<Span>,
    /// Each `param`.
    pub params: Vec<Span>,
    /// Each stage's items.
    pub stages: Vec<StageSpans>,
}

/// Spans of one stage's items, index for index with the [`Stage`]'s lists.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StageSpans {
    /// The stage's name.
    pub name: Span,
    /// The `run` statement (or the name when there is none).
    pub run: Span,
    /// Each input.
    pub inputs: Vec<Span>,
    /// Each output.
    pub outputs: Vec<Span>,
    /// The `resources` statement.
    pub resources: Span,
    /// Each requirement.
    pub requirements: Vec<Span>,
    /// Each preference.
    pub preferences: Vec<Span>,
    /// Each SLO.
    pub slos: Vec<Span>,
    /// Each policy.
    pub policies: Vec<Span>,
    /// Each trigger.
    pub triggers: Vec<Span>,
    /// Whether a statement of the stage failed to parse (so what it would have said is unknown).
    pub had_syntax_error: bool,
}

/// A pipeline as parsed, with its spans.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedPipeline {
    /// The pipeline.
    pub pipeline: Pipeline,
    /// Where its items are.
    pub spans: SourceMap,
}

/// What one `.civ` file holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedFile {
    /// Its pipelines.
    pub pipelines: Vec<ParsedPipeline>,
    /// Its environments, with the span of each name.
    pub environments: Vec<(Environment, Span)>,
}

type PResult<T> = Result<T, Diagnostic>;

/// Parses one source; syntax errors go to `diags` and the parse goes on where it can.
pub fn parse(text: &str, source: usize, limits: &Limits, diags: &mut Vec<Diagnostic>) -> ParsedFile {
    let at = |span: Span| Location::Source { source, span };
    if text.len() > limits.max_source_bytes {
        diags.push(
            Diagnostic::error(
                "E0001",
                format!("the file is {} bytes, more than the limit of {}", text.len(), limits.max_source_bytes),
                at(Span::new(0, 0)),
            )
            .label("file too large")
            .hint("split the pipeline into several files or raise `Limits::max_source_bytes`"),
        );
        return ParsedFile::default();
    }
    let tokens = tokenize(text);
    let mut depth = 0usize;
    for t in &tokens {
        match t.tok {
            Tok::LBrace => {
                depth += 1;
                if depth > limits.max_depth {
                    diags.push(
                        Diagnostic::error(
                            "E0002",
                            format!("blocks are nested more than {} deep", limits.max_depth),
                            at(t.span),
                        )
                        .label("too deep")
                        .hint("a pipeline holds stages, and stages hold statements: nothing nests deeper"),
                    );
                    return ParsedFile::default();
                }
            }
            Tok::RBrace => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    let mut p = Parser { text, tokens, pos: 0, source, limits, diags };
    p.file()
}

struct Parser<'a> {
    text: &'a str,
    tokens: Vec<Token>,
    pos: usize,
    source: usize,
    limits: &'a Limits,
    diags: &'a mut Vec<Diagnostic>,
}

const STAGE_KEYWORDS: [&str; 9] =
    ["run", "input", "output", "trigger", "resources", "require", "prefer", "slo", "when"];
const PIPELINE_KEYWORDS: [&str; 5] = ["version", "description", "param", "budget", "stage"];

impl<'a> Parser<'a> {
    fn at(&self, span: Span) -> Location {
        Location::Source { source: self.source, span }
    }

    fn peek(&self) -> &Tok {
        &self.tokens[self.pos.min(self.tokens.len() - 1)].tok
    }

    fn span(&self) -> Span {
        self.tokens[self.pos.min(self.tokens.len() - 1)].span
    }

    fn prev_span(&self) -> Span {
        self.tokens[self.pos.saturating_sub(1).min(self.tokens.len() - 1)].span
    }

    fn bump(&mut self) -> Token {
        let t = self.tokens[self.pos.min(self.tokens.len() - 1)].clone();
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn skip_ends(&mut self) {
        while *self.peek() == Tok::End {
            self.bump();
        }
    }

    /// Skips to the end of the current statement (not past a `}` or the end of the file).
    fn recover(&mut self) {
        loop {
            match self.peek() {
                Tok::End => {
                    self.bump();
                    return;
                }
                Tok::RBrace | Tok::Eof => return,
                Tok::LBrace => self.skip_block(),
                _ => {
                    self.bump();
                }
            }
        }
    }

    /// Skips a `{ … }` block (depth is already bounded by the pre-scan).
    fn skip_block(&mut self) {
        let mut depth = 0usize;
        loop {
            match self.bump().tok {
                Tok::LBrace => depth += 1,
                Tok::RBrace => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return;
                    }
                }
                Tok::Eof => return,
                _ => {}
            }
        }
    }

    fn unexpected(&self, expected: &str) -> Diagnostic {
        let found = self.peek().describe();
        let d = Diagnostic::error("E0100", format!("expected {expected}, found {found}"), self.at(self.span()))
            .label(format!("expected {expected}"));
        if let Tok::Error(e) = self.peek() { d.label(e.clone()) } else { d }
    }

    fn word(&mut self, expected: &str) -> PResult<(String, Span)> {
        match self.peek().clone() {
            Tok::Word(w) => {
                let s = self.bump().span;
                Ok((w, s))
            }
            _ => Err(self.unexpected(expected)),
        }
    }

    fn keyword(&mut self, kw: &str) -> PResult<Span> {
        match self.peek() {
            Tok::Word(w) if w == kw => Ok(self.bump().span),
            _ => Err(self.unexpected(&format!("`{kw}`"))),
        }
    }

    fn eat_keyword(&mut self, kw: &str) -> bool {
        if matches!(self.peek(), Tok::Word(w) if w == kw) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn string(&mut self, expected: &str) -> PResult<String> {
        match self.peek().clone() {
            Tok::Str(s) => {
                self.bump();
                Ok(s)
            }
            _ => Err(self.unexpected(expected)),
        }
    }

    fn end_of_statement(&mut self) -> PResult<()> {
        match self.peek() {
            Tok::End => {
                self.bump();
                Ok(())
            }
            Tok::RBrace | Tok::Eof => Ok(()),
            _ => Err(self.unexpected("the end of the statement")),
        }
    }

    /// A literal or `$param` value: a string, a word or a number (as written).
    fn value(&mut self, expected: &str) -> PResult<Value> {
        let span = self.span();
        match self.peek().clone() {
            Tok::Str(s) | Tok::Word(s) => {
                self.bump();
                Ok(Value::Literal(s))
            }
            Tok::Num(..) => {
                self.bump();
                Ok(Value::Literal(self.text[span.start..span.end].to_string()))
            }
            Tok::Param(p) => {
                self.bump();
                Ok(Value::Param(p))
            }
            _ => Err(self.unexpected(expected)),
        }
    }

    fn number(&mut self, expected: &str) -> PResult<(f64, String, Span)> {
        match self.peek().clone() {
            Tok::Num(n, u) => {
                let s = self.bump().span;
                Ok((n, u, s))
            }
            _ => Err(self.unexpected(expected)),
        }
    }

    fn count(&mut self, what: &str) -> PResult<u32> {
        let (n, unit, span) = self.number(what)?;
        if !unit.is_empty() || n.fract() != 0.0 || !(0.0..=1_000_000.0).contains(&n) {
            return Err(Diagnostic::error("E0101", format!("{what} must be a whole number"), self.at(span))
                .label("not a whole number")
                .hint("write e.g. `2`"));
        }
        Ok(n as u32)
    }

    fn duration_ms(&mut self) -> PResult<f64> {
        let (n, unit, span) = self.number("a duration such as `200ms` or `5m`")?;
        let factor = match unit.as_str() {
            "ms" => 1.0,
            "s" => 1_000.0,
            "m" | "min" => 60_000.0,
            "h" => 3_600_000.0,
            "d" => 86_400_000.0,
            _ => {
                let message = if unit.is_empty() {
                    format!("`{n}` needs a unit of time")
                } else {
                    format!("`{unit}` is not a unit of time")
                };
                return Err(Diagnostic::error("E0102", message, self.at(span))
                    .label("needs a unit of time")
                    .hint("use ms, s, m, h or d, e.g. `200ms`"));
            }
        };
        Ok(n * factor)
    }

    fn bytes(&mut self) -> PResult<f64> {
        let (n, unit, span) = self.number("a size such as `512MiB`")?;
        match size_factor(&unit) {
            Some(f) => Ok(n * f),
            None => Err(Diagnostic::error("E0102", format!("`{n}{unit}` is not a size"), self.at(span))
                .label("needs a unit of size")
                .hint("use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB, e.g. `512MiB`")),
        }
    }

    /// `50MB/h` → bytes per hour.
    fn volume(&mut self) -> PResult<f64> {
        let (n, unit, span) = self.number("a volume such as `50MB/h`")?;
        let bad = || {
            Diagnostic::error("E0102", format!("`{n}{unit}` is not a volume"), self.at(span))
                .label("needs size/time")
                .hint("write a size per unit of time, e.g. `50MB/h` or `2GB/d`")
        };
        let (size, per) = unit.split_once('/').ok_or_else(bad)?;
        let f = size_factor(size).ok_or_else(bad)?;
        let per_hour = per_hour(per).ok_or_else(bad)?;
        Ok(n * f * per_hour)
    }

    fn comparison(&mut self) -> PResult<Comparison> {
        let c = match self.peek() {
            Tok::Lt => Comparison::Less,
            Tok::Le => Comparison::LessOrEqual,
            Tok::Gt => Comparison::Greater,
            Tok::Ge => Comparison::GreaterOrEqual,
            _ => return Err(self.unexpected("a comparison (`<`, `<=`, `>`, `>=`)")),
        };
        self.bump();
        Ok(c)
    }

    /// The threshold of a metric, in the metric's unit (see [`crate::METRICS`]).
    fn metric_value(&mut self, metric: &str, metric_span: Span) -> PResult<f64> {
        let (n, unit, span) = match self.peek().clone() {
            Tok::Num(n, u) => (n, u, self.span()),
            _ => return Err(self.unexpected("a threshold such as `200ms`, `99.9%` or `1000/s`")),
        };
        let Some(kind) = metric_kind(metric) else {
            let known: Vec<&str> = crate::METRICS.iter().map(|(m, _)| *m).collect();
            let mut d = Diagnostic::error("E0103", format!("unknown metric `{metric}`"), self.at(metric_span))
                .label("not a metric Civitas measures");
            d = match nearest(metric, known.iter().copied()) {
                Some(n) => d.hint(format!("did you mean `{n}`?")),
                None => d.hint(format!("use one of {}", known.join(", "))),
            };
            return Err(d);
        };
        let source = self.source;
        let wrong = |expected: &str| {
            Diagnostic::error(
                "E0102",
                format!("`{metric}` is measured in {expected}"),
                Location::Source { source, span },
            )
            .label(format!("`{n}{unit}` is not {expected}"))
            .hint(format!("write the threshold in {expected}"))
        };
        match kind {
            MetricKind::Duration => self.duration_ms().map_err(|_| wrong("time, e.g. `200ms`")),
            MetricKind::Percent => {
                self.bump();
                if unit != "%" {
                    return Err(wrong("percent, e.g. `99.9%`"));
                }
                if n > 100.0 {
                    return Err(Diagnostic::error("E0104", "a percentage is at most 100%", self.at(span))
                        .label("more than 100%"));
                }
                Ok(n)
            }
            MetricKind::Rate => {
                self.bump();
                let per_second = unit.strip_prefix('/').and_then(per_hour).map(|h| h / 3600.0);
                match per_second {
                    Some(f) => Ok(n * f),
                    None => Err(wrong("events per unit of time, e.g. `1000/s`")),
                }
            }
            MetricKind::Count => {
                self.bump();
                if !unit.is_empty() {
                    return Err(wrong("a plain number"));
                }
                Ok(n)
            }
        }
    }

    fn tier(&mut self) -> PResult<Tier> {
        let (w, span) = self.word("a tier (`edge`, `fog` or `cloud`)")?;
        Tier::parse(&w).map_err(|e| {
            Diagnostic::error("E0105", e, self.at(span)).label("not a tier").hint("use edge, fog or cloud")
        })
    }

    fn file(&mut self) -> ParsedFile {
        let mut file = ParsedFile::default();
        loop {
            self.skip_ends();
            let span = self.span();
            match self.peek().clone() {
                Tok::Eof => break,
                Tok::Word(w) if w == "pipeline" || w == "environment" => {
                    if file.pipelines.len() + file.environments.len() >= self.limits.max_items {
                        self.diags.push(
                            Diagnostic::error(
                                "E0003",
                                format!("more than {} pipelines and environments in one file", self.limits.max_items),
                                self.at(span),
                            )
                            .label("one too many"),
                        );
                        break;
                    }
                    self.bump();
                    if w == "pipeline" {
                        if let Some(p) = self.pipeline(span) {
                            file.pipelines.push(p);
                        }
                    } else if let Some(e) = self.environment() {
                        file.environments.push(e);
                    }
                }
                _ => {
                    let mut d = self.unexpected("`pipeline` or `environment`");
                    if let Tok::Word(w) = self.peek()
                        && (PIPELINE_KEYWORDS.contains(&w.as_str()) || STAGE_KEYWORDS.contains(&w.as_str()))
                    {
                        d = d.hint(format!("`{w}` belongs inside a `pipeline urn:… {{ … }}` block"));
                    }
                    self.diags.push(d);
                    self.recover();
                    if *self.peek() == Tok::RBrace {
                        self.bump();
                    }
                }
            }
        }
        file
    }

    fn open_brace(&mut self, what: &str) -> PResult<Span> {
        match self.peek() {
            Tok::LBrace => Ok(self.bump().span),
            _ => Err(self.unexpected(&format!("`{{` to open {what}"))),
        }
    }

    fn environment(&mut self) -> Option<(Environment, Span)> {
        let (name, name_span) = match self.word("an environment name") {
            Ok(n) => n,
            Err(d) => {
                self.diags.push(d);
                self.recover();
                return None;
            }
        };
        if let Err(d) = self.open_brace("the environment") {
            self.diags.push(d);
            self.recover();
            return None;
        }
        let mut env = Environment { name, values: BTreeMap::new() };
        loop {
            self.skip_ends();
            match self.peek() {
                Tok::RBrace => {
                    self.bump();
                    break;
                }
                Tok::Eof => {
                    self.diags.push(
                        Diagnostic::error(
                            "E0106",
                            format!("environment `{}` is not closed", env.name),
                            self.at(name_span),
                        )
                        .label("opened here")
                        .hint("add the missing `}`"),
                    );
                    break;
                }
                _ => {}
            }
            let r = (|| -> PResult<()> {
                let (k, kspan) = self.word("a parameter name")?;
                if !matches!(self.peek(), Tok::Eq) {
                    return Err(self.unexpected("`=`"));
                }
                self.bump();
                let v = match self.value("a value")? {
                    Value::Literal(v) => v,
                    Value::Param(_) => {
                        return Err(Diagnostic::error(
                            "E0107",
                            "an environment gives values, it cannot refer to a parameter",
                            self.at(self.prev_span()),
                        )
                        .label("a parameter reference"));
                    }
                };
                if env.values.insert(k.clone(), v).is_some() {
                    return Err(Diagnostic::error("E0200", format!("`{k}` is given twice"), self.at(kspan))
                        .label("given again here"));
                }
                self.end_of_statement()
            })();
            if let Err(d) = r {
                self.diags.push(d);
                self.recover();
            }
        }
        Some((env, name_span))
    }

    fn pipeline(&mut self, keyword_span: Span) -> Option<ParsedPipeline> {
        let name = match self.peek().clone() {
            Tok::Urn(u) => {
                let span = self.bump().span;
                match Urn::parse(&u) {
                    Ok(u) => Some((u, span)),
                    Err(e) => {
                        self.diags.push(Diagnostic::error("E0108", e, self.at(span)).label("not a valid name"));
                        None
                    }
                }
            }
            _ => {
                self.diags.push(
                    self.unexpected("the pipeline's name, a URN")
                        .hint("name it e.g. `urn:pipeline:marketing:campaign`"),
                );
                None
            }
        };
        if let Err(d) = self.open_brace("the pipeline") {
            self.diags.push(d);
            self.recover();
            return None;
        }
        let header = name.as_ref().map_or(keyword_span, |(_, s)| keyword_span.to(*s));
        let mut spans = SourceMap { source: self.source, pipeline: header, ..SourceMap::default() };
        let mut version: Option<String> = None;
        let mut description = None;
        let mut params = Vec::new();
        let mut budget = None;
        let mut stages = Vec::new();
        loop {
            self.skip_ends();
            let span = self.span();
            match self.peek().clone() {
                Tok::RBrace => {
                    self.bump();
                    break;
                }
                Tok::Eof => {
                    self.diags.push(
                        Diagnostic::error("E0106", "the pipeline is not closed", self.at(header))
                            .label("opened here")
                            .hint("add the missing `}` at the end"),
                    );
                    break;
                }
                Tok::Word(w) if w == "stage" => {
                    self.bump();
                    if stages.len() >= self.limits.max_stages {
                        self.diags.push(
                            Diagnostic::error(
                                "E0003",
                                format!("more than {} stages in one pipeline", self.limits.max_stages),
                                self.at(span),
                            )
                            .label("one too many")
                            .hint("split the pipeline"),
                        );
                        self.recover();
                        if *self.peek() == Tok::LBrace {
                            self.skip_block();
                        }
                        continue;
                    }
                    if let Some((stage, s)) = self.stage() {
                        stages.push(stage);
                        spans.stages.push(s);
                    }
                }
                Tok::Word(w) if PIPELINE_KEYWORDS.contains(&w.as_str()) => {
                    self.bump();
                    let r = match w.as_str() {
                        "version" => self.pipeline_version(&mut version),
                        "description" => self.string("a description in quotes").map(|s| description = Some(s)),
                        "param" => self.param().map(|p| {
                            params.push(p);
                            spans.params.push(span.to(self.prev_span()));
                        }),
                        _ => self.budget().map(|b| {
                            budget = Some(b);
                            spans.budget = Some(span.to(self.prev_span()));
                        }),
                    };
                    if let Err(d) = r.and_then(|_| self.end_of_statement()) {
                        self.diags.push(d);
                        self.recover();
                    }
                }
                _ => {
                    let mut d = self.unexpected("`stage`, `version`, `description`, `param` or `budget`");
                    if let Tok::Word(w) = self.peek() {
                        if STAGE_KEYWORDS.contains(&w.as_str()) {
                            d = d.hint(format!("`{w}` belongs inside a `stage NAME {{ … }}` block"));
                        } else if let Some(n) = nearest(w, PIPELINE_KEYWORDS) {
                            d = d.hint(format!("did you mean `{n}`?"));
                        }
                    }
                    self.diags.push(d);
                    self.recover();
                }
            }
        }
        let (name, _) = name?;
        let version = match version {
            Some(v) => v,
            None => {
                self.diags.push(
                    Diagnostic::error("E0109", "the pipeline has no version", self.at(header))
                        .label("needs `version \"…\"`")
                        .hint("add e.g. `version \"1.0\"`: plans are stored with the pipeline's version"),
                );
                return None;
            }
        };
        Some(ParsedPipeline { pipeline: Pipeline { name, version, description, params, budget, stages }, spans })
    }

    fn pipeline_version(&mut self, version: &mut Option<String>) -> PResult<()> {
        let span = self.span();
        let v = match self.peek().clone() {
            Tok::Str(s) => s,
            Tok::Num(..) | Tok::Word(_) => self.text[span.start..span.end].to_string(),
            _ => return Err(self.unexpected("a version such as \"1.0\"")),
        };
        self.bump();
        civitas_model::check_version(&v)
            .map_err(|e| Diagnostic::error("E0108", e, self.at(span)).label("not a valid version"))?;
        *version = Some(v);
        Ok(())
    }

    fn param(&mut self) -> PResult<Param> {
        let (name, _) = self.word("a parameter name")?;
        let default = if matches!(self.peek(), Tok::Eq) {
            self.bump();
            match self.value("a default value")? {
                Value::Literal(v) => Some(v),
                Value::Param(_) => {
                    return Err(Diagnostic::error(
                        "E0107",
                        "a default must be a value, not another parameter",
                        self.at(self.prev_span()),
                    ));
                }
            }
        } else {
            None
        };
        Ok(Param { name, default })
    }

    fn budget(&mut self) -> PResult<Budget> {
        let (amount, unit, span) = self.number("an amount such as `400 EUR per month`")?;
        if !unit.is_empty() {
            return Err(Diagnostic::error("E0102", "write the currency after a space", self.at(span))
                .label("e.g. `400 EUR per month`"));
        }
        let (currency, cspan) = self.word("a currency code such as `EUR`")?;
        if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_alphabetic()) {
            return Err(Diagnostic::error("E0108", format!("`{currency}` is not an ISO 4217 code"), self.at(cspan))
                .label("not a currency")
                .hint("use a three-letter code such as EUR"));
        }
        self.keyword("per")?;
        let (p, pspan) = self.word("`hour`, `day` or `month`")?;
        let period = match p.as_str() {
            "hour" => BudgetPeriod::Hour,
            "day" => BudgetPeriod::Day,
            "month" => BudgetPeriod::Month,
            _ => {
                return Err(Diagnostic::error("E0108", format!("`{p}` is not a budget period"), self.at(pspan))
                    .label("not a period")
                    .hint("use hour, day or month"));
            }
        };
        Ok(Budget { amount, currency: currency.to_ascii_uppercase(), period })
    }

    fn stage(&mut self) -> Option<(Stage, StageSpans)> {
        let (name, name_span) = match self.word("a stage name") {
            Ok(n) => n,
            Err(d) => {
                self.diags.push(d);
                self.recover();
                if *self.peek() == Tok::LBrace {
                    self.skip_block();
                }
                return None;
            }
        };
        if let Err(d) = self.open_brace("the stage") {
            self.diags.push(d);
            self.recover();
            return None;
        }
        let mut spans = StageSpans { name: name_span, run: name_span, resources: name_span, ..StageSpans::default() };
        let mut stage = Stage {
            name,
            run: Run::Builtin { name: String::new() },
            inputs: Vec::new(),
            outputs: Vec::new(),
            triggers: Vec::new(),
            resources: Resources::default(),
            requirements: Vec::new(),
            preferences: Vec::new(),
            slos: Vec::new(),
            policies: Vec::new(),
        };
        let mut has_run = false;
        let mut statements = 0usize;
        loop {
            self.skip_ends();
            let start = self.span();
            match self.peek().clone() {
                Tok::RBrace => {
                    self.bump();
                    break;
                }
                Tok::Eof => {
                    self.diags.push(
                        Diagnostic::error("E0106", format!("stage `{}` is not closed", stage.name), self.at(name_span))
                            .label("opened here")
                            .hint("add the missing `}`"),
                    );
                    break;
                }
                Tok::Word(w) if STAGE_KEYWORDS.contains(&w.as_str()) => {
                    statements += 1;
                    if statements > self.limits.max_statements_per_stage {
                        self.diags.push(
                            Diagnostic::error(
                                "E0003",
                                format!("more than {} statements in one stage", self.limits.max_statements_per_stage),
                                self.at(start),
                            )
                            .label("one too many"),
                        );
                        self.recover();
                        continue;
                    }
                    self.bump();
                    let r = self.stage_statement(&w, start, &mut stage, &mut spans, &mut has_run);
                    if let Err(d) = r.and_then(|_| self.end_of_statement()) {
                        self.diags.push(d);
                        self.recover();
                        spans.had_syntax_error = true;
                        // A broken `run` is reported; "runs nothing" would only repeat it.
                        has_run |= w == "run";
                    }
                }
                _ => {
                    let mut d = self.unexpected(
                        "a stage statement (`run`, `input`, `output`, `trigger`, `resources`, `require`, `prefer`, `slo`, `when`)",
                    );
                    d.label = "not a stage statement".into();
                    if let Tok::Word(w) = self.peek()
                        && let Some(n) = nearest(w, STAGE_KEYWORDS)
                    {
                        d = d.hint(format!("did you mean `{n}`?"));
                    }
                    self.diags.push(d);
                    self.recover();
                }
            }
        }
        if !has_run {
            self.diags.push(
                Diagnostic::error("E0110", format!("stage `{}` runs nothing", stage.name), self.at(name_span))
                    .label("no `run` statement")
                    .hint("add e.g. `run builtin \"http-redirector\"` or `run process \"kpi\" \"--daily\"`"),
            );
        }
        Some((stage, spans))
    }

    fn stage_statement(
        &mut self,
        keyword: &str,
        start: Span,
        stage: &mut Stage,
        spans: &mut StageSpans,
        has_run: &mut bool,
    ) -> PResult<()> {
        match keyword {
            "run" => {
                let (kind, kspan) = self.word("`builtin`, `process`, `image` or `wasm`")?;
                let run = match kind.as_str() {
                    "builtin" => Run::Builtin { name: self.string("the built-in stage's name in quotes")? },
                    "process" => {
                        let mut command = vec![self.string("the command in quotes")?];
                        while let Tok::Str(s) = self.peek().clone() {
                            self.bump();
                            command.push(s);
                        }
                        Run::Process { command }
                    }
                    "image" => Run::Image { reference: self.string("the image reference in quotes")? },
                    "wasm" => Run::Wasm { module: self.string("the module in quotes")? },
                    _ => {
                        return Err(Diagnostic::error(
                            "E0108",
                            format!("`{kind}` is not a kind of stage"),
                            self.at(kspan),
                        )
                        .label("unknown")
                        .hint("use builtin, process, image or wasm"));
                    }
                };
                let span = start.to(self.prev_span());
                if *has_run {
                    return Err(Diagnostic::error(
                        "E0200",
                        format!("stage `{}` has two `run` statements", stage.name),
                        self.at(span),
                    )
                    .label("second `run`")
                    .related(self.at(spans.run), "first `run` here")
                    .hint("a stage runs one thing; split it into two stages"));
                }
                *has_run = true;
                stage.run = run;
                spans.run = span;
            }
            "input" => {
                let from = match self.peek().clone() {
                    Tok::Urn(u) => {
                        let span = self.bump().span;
                        let view = Urn::parse(&u)
                            .map_err(|e| Diagnostic::error("E0108", e, self.at(span)).label("not a valid view name"))?;
                        InputSource::View { view }
                    }
                    Tok::Word(w) => {
                        self.bump();
                        match w.split_once('.') {
                            Some((s, o)) => InputSource::Stage { stage: s.to_string(), output: Some(o.to_string()) },
                            None => InputSource::Stage { stage: w, output: None },
                        }
                    }
                    _ => return Err(self.unexpected("a stage (`kpi` or `kpi.daily`) or a view URN")),
                };
                let mut input = Input { from, data_type: None, bytes_per_hour: None };
                loop {
                    if self.eat_keyword("as") {
                        input.data_type = Some(self.data_type()?);
                    } else if self.eat_keyword("volume") {
                        input.bytes_per_hour = Some(self.volume()?);
                    } else {
                        break;
                    }
                }
                stage.inputs.push(input);
                spans.inputs.push(start.to(self.prev_span()));
            }
            "output" => {
                let (name, _) = self.word("the output's name")?;
                if !matches!(self.peek(), Tok::Colon) {
                    return Err(self.unexpected("`:` and the output's type, e.g. `clicks: stream<click>`"));
                }
                self.bump();
                let data_type = self.data_type()?;
                let bytes_per_hour = if self.eat_keyword("volume") { Some(self.volume()?) } else { None };
                stage.outputs.push(Output { name, data_type, bytes_per_hour });
                spans.outputs.push(start.to(self.prev_span()));
            }
            "trigger" => {
                let (kind, kspan) = self.word("`cron`, `every` or `on`")?;
                let trigger = match kind.as_str() {
                    "cron" => {
                        let expression = self.string("a cron expression in quotes, e.g. \"0 */3 * * *\"")?;
                        if expression.split_whitespace().count() != 5 {
                            return Err(Diagnostic::error(
                                "E0108",
                                "a cron expression has five fields (minute hour day month weekday)",
                                self.at(self.prev_span()),
                            )
                            .label("not five fields")
                            .hint("e.g. \"0 */3 * * *\" runs eight times a day"));
                        }
                        Trigger::Cron { expression }
                    }
                    "every" => {
                        let ms = self.duration_ms()?;
                        if ms < 1.0 {
                            return Err(Diagnostic::error(
                                "E0104",
                                "an interval must be at least 1ms",
                                self.at(self.prev_span()),
                            ));
                        }
                        Trigger::Every { interval_ms: ms as u64 }
                    }
                    "on" => {
                        self.keyword("event")?;
                        let event = match self.value("an event name")? {
                            Value::Literal(e) => e,
                            Value::Param(p) => format!("${p}"),
                        };
                        Trigger::OnEvent { event }
                    }
                    _ => {
                        return Err(Diagnostic::error("E0108", format!("`{kind}` is not a trigger"), self.at(kspan))
                            .label("unknown")
                            .hint("use `cron \"…\"`, `every 5m` or `on event \"…\"`"));
                    }
                };
                stage.triggers.push(trigger);
                spans.triggers.push(start.to(self.prev_span()));
            }
            "resources" => {
                let mut any = false;
                loop {
                    if matches!(self.peek(), Tok::Comma) {
                        self.bump();
                    }
                    let Tok::Word(w) = self.peek().clone() else { break };
                    let wspan = self.bump().span;
                    match w.as_str() {
                        "cpu" => {
                            let (n, unit, span) = self.number("a number of cores")?;
                            if !unit.is_empty() || n <= 0.0 {
                                return Err(Diagnostic::error(
                                    "E0104",
                                    "cpu is a number of cores above 0",
                                    self.at(span),
                                )
                                .label("e.g. `0.5`"));
                            }
                            stage.resources.cpu_cores = Some(n);
                        }
                        "memory" => stage.resources.memory_bytes = Some(self.bytes()? as u64),
                        "gpu" => stage.resources.gpus = self.count("gpu")?,
                        _ => {
                            return Err(Diagnostic::error("E0108", format!("`{w}` is not a resource"), self.at(wspan))
                                .label("unknown")
                                .hint("use cpu, memory or gpu"));
                        }
                    }
                    any = true;
                }
                if !any {
                    return Err(self.unexpected("`cpu`, `memory` or `gpu`"));
                }
                spans.resources = start.to(self.prev_span());
            }
            "require" => {
                let r = self.requirement()?;
                stage.requirements.push(r);
                spans.requirements.push(start.to(self.prev_span()));
            }
            "prefer" => {
                let (kind, kspan) = self.word("`tier`, `provider`, `region`, `cheaper` or `near`")?;
                let prefer = match kind.as_str() {
                    "tier" => Preferred::Tier { tier: self.tier()? },
                    "provider" => Preferred::Provider { value: self.value("a provider")? },
                    "region" => Preferred::Region { value: self.value("a region")? },
                    "cheaper" => Preferred::Cheaper,
                    "near" => {
                        self.keyword("stage")?;
                        Preferred::Near { stage: self.word("a stage name")?.0 }
                    }
                    _ => {
                        let mut d = Diagnostic::error("E0108", format!("`{kind}` is not a preference"), self.at(kspan))
                            .label("unknown");
                        d = match nearest(&kind, ["tier", "provider", "region", "cheaper", "near"]) {
                            Some(n) => d.hint(format!("did you mean `{n}`?")),
                            None => d.hint("use tier, provider, region, cheaper or near stage NAME"),
                        };
                        return Err(d);
                    }
                };
                let weight = if self.eat_keyword("weight") {
                    let (w, unit, span) = self.number("a weight")?;
                    if !unit.is_empty() || w <= 0.0 || w > 1000.0 {
                        return Err(Diagnostic::error(
                            "E0104",
                            "a weight is a number above 0 and at most 1000",
                            self.at(span),
                        )
                        .label("out of range"));
                    }
                    w
                } else {
                    1.0
                };
                stage.preferences.push(Preference { prefer, weight });
                spans.preferences.push(start.to(self.prev_span()));
            }
            "slo" => {
                let (metric, mspan) = self.word("`latency.p99`, `throughput`, `availability` or `freshness`")?;
                let known = matches!(metric.as_str(), "throughput" | "availability" | "freshness")
                    || (metric.starts_with("latency.") && metric_kind(&metric).is_some());
                if !known {
                    let mut d = Diagnostic::error("E0103", format!("`{metric}` is not an SLO"), self.at(mspan))
                        .label("unknown");
                    d = match nearest(&metric, ["latency.p99", "throughput", "availability", "freshness"]) {
                        Some(n) => d.hint(format!("did you mean `{n}`?")),
                        None => d.hint("use latency.pNN, throughput, availability or freshness"),
                    };
                    return Err(d);
                }
                let op = self.comparison()?;
                let target = self.metric_value(&metric, mspan)?;
                stage.slos.push(Slo { metric, op, target });
                spans.slos.push(start.to(self.prev_span()));
            }
            "when" => {
                let (metric, mspan) = self.word("a metric such as `latency.p99`")?;
                let op = self.comparison()?;
                let threshold = self.metric_value(&metric, mspan)?;
                self.keyword("for")?;
                let for_ms = self.duration_ms()? as u64;
                self.keyword("then")?;
                let (act, aspan) = self.word("`scale`, `move` or `reschedule`")?;
                let action = match act.as_str() {
                    "scale" => {
                        let (dir, dspan) = self.word("`out` or `in`")?;
                        let by = if self.eat_keyword("by") { self.count("by")? } else { 1 };
                        match dir.as_str() {
                            "out" => Action::ScaleOut { by },
                            "in" => Action::ScaleIn { by },
                            _ => {
                                return Err(Diagnostic::error("E0108", format!("scale `{dir}`?"), self.at(dspan))
                                    .label("expected `out` or `in`"));
                            }
                        }
                    }
                    "move" => Action::Move { to: if self.eat_keyword("to") { Some(self.tier()?) } else { None } },
                    "reschedule" => Action::Reschedule,
                    _ => {
                        return Err(Diagnostic::error("E0108", format!("`{act}` is not an action"), self.at(aspan))
                            .label("unknown")
                            .hint("use scale out|in [by N], move [to TIER] or reschedule"));
                    }
                };
                let mut policy =
                    Policy { metric, op, threshold, for_ms, action, min: None, max: None, cooldown_ms: None };
                loop {
                    if self.eat_keyword("min") {
                        policy.min = Some(self.count("min")?);
                    } else if self.eat_keyword("max") {
                        policy.max = Some(self.count("max")?);
                    } else if self.eat_keyword("cooldown") {
                        policy.cooldown_ms = Some(self.duration_ms()? as u64);
                    } else {
                        break;
                    }
                }
                stage.policies.push(policy);
                spans.policies.push(start.to(self.prev_span()));
            }
            other => {
                // STAGE_KEYWORDS and this match list the same words; should they ever
                // drift apart, the statement is refused rather than the parser panicking.
                return Err(Diagnostic::error("E0100", format!("`{other}` is not handled here"), self.at(start)));
            }
        }
        Ok(())
    }

    fn data_type(&mut self) -> PResult<DataType> {
        let (shape, _) = self.word("a type such as `stream<click>`")?;
        let record = if matches!(self.peek(), Tok::Lt) {
            self.bump();
            let (r, _) = self.word("a record name")?;
            if !matches!(self.peek(), Tok::Gt) {
                return Err(self.unexpected("`>`"));
            }
            self.bump();
            Some(r)
        } else {
            None
        };
        DataType::parse(&match &record {
            Some(r) => format!("{shape}<{r}>"),
            None => shape,
        })
        .map_err(|e| Diagnostic::error("E0108", e, self.at(self.prev_span())))
    }

    fn requirement(&mut self) -> PResult<Requirement> {
        let (kind, kspan) = self.word("`tier`, `region`, `jurisdiction`, `capability`, `latency` or `data`")?;
        Ok(match kind.as_str() {
            "tier" => {
                let mut tiers = vec![self.tier()?];
                while matches!(self.peek(), Tok::Comma) {
                    self.bump();
                    tiers.push(self.tier()?);
                }
                Requirement::Tier { tiers }
            }
            "region" => Requirement::Within { scope: Scope::Region, value: self.value("a region")? },
            "jurisdiction" => Requirement::Within { scope: Scope::Jurisdiction, value: self.value("a jurisdiction")? },
            "capability" | "capabilities" => {
                let mut names = vec![self.word("a capability such as `tee`")?.0.to_ascii_lowercase()];
                while matches!(self.peek(), Tok::Comma) {
                    self.bump();
                    names.push(self.word("a capability")?.0.to_ascii_lowercase());
                }
                Requirement::Capabilities { names }
            }
            "latency" => {
                self.keyword("to")?;
                let (target, tspan) = self.word("`stage` or `view`")?;
                match target.as_str() {
                    "stage" => {
                        let stage = self.word("a stage name")?.0;
                        self.latency_bound().map(|max_ms| Requirement::LatencyToStage { stage, max_ms })?
                    }
                    "view" => {
                        let view = match self.peek().clone() {
                            Tok::Urn(u) => {
                                let span = self.bump().span;
                                Urn::parse(&u).map_err(|e| Diagnostic::error("E0108", e, self.at(span)))?
                            }
                            _ => return Err(self.unexpected("a view URN")),
                        };
                        self.latency_bound().map(|max_ms| Requirement::LatencyToView { view, max_ms })?
                    }
                    _ => {
                        return Err(Diagnostic::error("E0108", format!("latency to `{target}`?"), self.at(tspan))
                            .label("expected `stage` or `view`"));
                    }
                }
            }
            "data" => {
                self.keyword("never")?;
                self.keyword("leaves")?;
                let (scope, sspan) = self.word("`region` or `jurisdiction`")?;
                let scope = match scope.as_str() {
                    "region" => Scope::Region,
                    "jurisdiction" => Scope::Jurisdiction,
                    _ => {
                        return Err(Diagnostic::error("E0108", format!("`{scope}` is not a scope"), self.at(sspan))
                            .label("expected `region` or `jurisdiction`"));
                    }
                };
                Requirement::DataNeverLeaves { scope, value: self.value("a region or jurisdiction")? }
            }
            _ => {
                let mut d = Diagnostic::error("E0108", format!("`{kind}` is not a requirement"), self.at(kspan))
                    .label("unknown");
                d = match nearest(&kind, ["tier", "region", "jurisdiction", "capability", "latency", "data"]) {
                    Some(n) => d.hint(format!("did you mean `{n}`?")),
                    None => d.hint("use tier, region, jurisdiction, capability, latency to … or data never leaves …"),
                };
                return Err(d);
            }
        })
    }

    fn latency_bound(&mut self) -> PResult<f64> {
        match self.peek() {
            Tok::Le | Tok::Lt => {
                self.bump();
            }
            _ => return Err(self.unexpected("`<=` and a bound such as `20ms`")),
        }
        self.duration_ms()
    }
}

fn size_factor(unit: &str) -> Option<f64> {
    Some(match unit {
        "B" => 1.0,
        "KB" | "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        "TiB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    })
}

/// How many of `per` fit in an hour (`s` → 3600).
fn per_hour(per: &str) -> Option<f64> {
    Some(match per {
        "s" => 3600.0,
        "m" | "min" => 60.0,
        "h" => 1.0,
        "d" => 1.0 / 24.0,
        _ => return None,
    })
}

/// The unit a metric is measured in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Time, normalised to milliseconds.
    Duration,
    /// Percent (0–100).
    Percent,
    /// Events per second.
    Rate,
    /// A plain number.
    Count,
}

pub(crate) fn metric_kind(metric: &str) -> Option<MetricKind> {
    if let Some(p) = metric.strip_prefix("latency.p") {
        return match p.parse::<u32>() {
            Ok(n) if (1..=99).contains(&n) || n == 999 => Some(MetricKind::Duration),
            _ => None,
        };
    }
    crate::METRICS.iter().find(|(m, _)| *m == metric).map(|(_, k)| *k)
}
