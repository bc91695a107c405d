//! Cost-function analyzer: a user-written arithmetic expression over the other fields.

use std::fmt;
use std::time::SystemTime;

use civitas_model::Observation;

use super::{Analyzer, Field, FieldValues};
use crate::syntax::{Cursor, TokenKind};
use crate::trigger::TriggerParseError;

/// Deepest nesting of parentheses accepted.
const MAX_NESTING: usize = 32;
/// Most numbers, fields and negations in one expression; bounds the recursion of
/// evaluating and dropping the tree, so untrusted text cannot overflow the stack.
const MAX_TERMS: usize = 256;

/// The name of the field a cost function produces.
pub const COST_FIELD: &str = "cost";

/// A cost function: `+ - * /`, unary minus, parentheses, numbers and fields, by alias
/// (`p50_ms`, `p95_ms`, `mean_ms`, `ewma_ms`, `rate_per_s`, `mean_bytes`, `max_bytes`,
/// `samples`) or full name (`response_time.p50`). Example:
/// `p50_ms * rate_per_s - 0.001 * mean_bytes`.
///
/// Its value is `None` when a field it uses has no data, or when the result is not a
/// finite number (a division by zero): no value never satisfies a trigger.
#[derive(Debug, Clone, PartialEq)]
pub struct CostFunction {
    text: String,
    expression: Expression,
}

#[derive(Debug, Clone, PartialEq)]
enum Expression {
    Number(f64),
    Field(Field),
    Negate(Box<Expression>),
    Binary(Operator, Box<Expression>, Box<Expression>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Operator {
    Add,
    Subtract,
    Multiply,
    Divide,
}

impl CostFunction {
    /// Parses an expression; errors carry the 1-based column in `text`.
    pub fn parse(text: &str) -> Result<CostFunction, TriggerParseError> {
        let mut cursor = Cursor::new(text);
        let function = parse_cost_expression(&mut cursor)?;
        let next = cursor.peek();
        if next.kind != TokenKind::End {
            return Err(cursor.expected(next, "an operator (+, -, *, /) or end of input"));
        }
        Ok(function)
    }

    /// The expression as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The fields the expression uses, each once, in [`Field::ALL`] order.
    pub fn fields(&self) -> Vec<Field> {
        let mut used = [false; Field::ALL.len()];
        self.expression.visit_fields(&mut |f| used[f as usize] = true);
        Field::ALL.into_iter().filter(|f| used[*f as usize]).collect()
    }

    /// The value over `values`; `None` when a field has no data or the result is not finite.
    pub fn evaluate(&self, values: &FieldValues) -> Option<f64> {
        self.expression.evaluate(values).filter(|v| v.is_finite())
    }
}

impl fmt::Display for CostFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Expression {
    fn evaluate(&self, values: &FieldValues) -> Option<f64> {
        Some(match self {
            Expression::Number(n) => *n,
            Expression::Field(field) => values.get(*field)?,
            Expression::Negate(e) => -e.evaluate(values)?,
            Expression::Binary(op, a, b) => {
                let (a, b) = (a.evaluate(values)?, b.evaluate(values)?);
                match op {
                    Operator::Add => a + b,
                    Operator::Subtract => a - b,
                    Operator::Multiply => a * b,
                    Operator::Divide => a / b,
                }
            }
        })
    }

    fn visit_fields(&self, visit: &mut impl FnMut(Field)) {
        match self {
            Expression::Number(_) => {}
            Expression::Field(f) => visit(*f),
            Expression::Negate(e) => e.visit_fields(visit),
            Expression::Binary(_, a, b) => {
                a.visit_fields(visit);
                b.visit_fields(visit);
            }
        }
    }
}

/// Parses one expression at the cursor and stops before the first token that cannot
/// continue it (the caller decides what may follow: `)` inside `cost(…)`, the end alone).
pub(crate) fn parse_cost_expression(cursor: &mut Cursor<'_>) -> Result<CostFunction, TriggerParseError> {
    let start = cursor.peek().start;
    let mut parser = ExpressionParser { cursor, terms: 0 };
    let expression = parser.sum(0)?;
    let text = parser.cursor.slice(start, parser.cursor.previous_end().max(start)).to_string();
    Ok(CostFunction { text, expression })
}

struct ExpressionParser<'c, 'a> {
    cursor: &'c mut Cursor<'a>,
    terms: usize,
}

impl ExpressionParser<'_, '_> {
    fn sum(&mut self, nesting: usize) -> Result<Expression, TriggerParseError> {
        let mut left = self.product(nesting)?;
        loop {
            let op = match self.cursor.peek().kind {
                TokenKind::Plus => Operator::Add,
                TokenKind::Minus => Operator::Subtract,
                _ => return Ok(left),
            };
            self.cursor.next();
            let right = self.product(nesting)?;
            left = Expression::Binary(op, Box::new(left), Box::new(right));
        }
    }

    fn product(&mut self, nesting: usize) -> Result<Expression, TriggerParseError> {
        let mut left = self.unary(nesting)?;
        loop {
            let op = match self.cursor.peek().kind {
                TokenKind::Star => Operator::Multiply,
                TokenKind::Slash => Operator::Divide,
                _ => return Ok(left),
            };
            self.cursor.next();
            let right = self.unary(nesting)?;
            left = Expression::Binary(op, Box::new(left), Box::new(right));
        }
    }

    fn count_term(&mut self) -> Result<(), TriggerParseError> {
        self.terms += 1;
        if self.terms > MAX_TERMS {
            let at = self.cursor.peek();
            return Err(self.cursor.error(at, format!("a cost function has at most {MAX_TERMS} terms")));
        }
        Ok(())
    }

    fn unary(&mut self, nesting: usize) -> Result<Expression, TriggerParseError> {
        if self.cursor.peek().kind == TokenKind::Minus {
            self.count_term()?;
            self.cursor.next();
            return Ok(Expression::Negate(Box::new(self.unary(nesting)?)));
        }
        self.primary(nesting)
    }

    fn primary(&mut self, nesting: usize) -> Result<Expression, TriggerParseError> {
        self.count_term()?;
        let token = self.cursor.next();
        match token.kind {
            TokenKind::Number(n) if n.is_finite() => Ok(Expression::Number(n)),
            TokenKind::Number(_) => {
                Err(self.cursor.error(token, format!("number `{}` is too large", self.cursor.text(token))))
            }
            TokenKind::Ident => {
                let name = self.cursor.text(token);
                Field::from_alias_or_name(name).map(Expression::Field).ok_or_else(|| {
                    let aliases: Vec<&str> = Field::ALL.iter().map(|f| f.alias()).collect();
                    self.cursor.error(
                        token,
                        format!(
                            "unknown field `{name}` in cost function, expected one of {} or a full field name such as response_time.p50",
                            aliases.join(", ")
                        ),
                    )
                })
            }
            TokenKind::OpenParen => {
                if nesting >= MAX_NESTING {
                    return Err(self.cursor.error(token, format!("parentheses nested deeper than {MAX_NESTING}")));
                }
                let inner = self.sum(nesting + 1)?;
                let close = self.cursor.next();
                if close.kind != TokenKind::CloseParen {
                    return Err(self.cursor.expected(close, "an operator (+, -, *, /) or `)`"));
                }
                Ok(inner)
            }
            _ => Err(self.cursor.expected(token, "a number, a field or `(`")),
        }
    }
}

/// The cost function as a strategy of its own: it runs its input analyzers and adds
/// their fields' [`COST_FIELD`] (`cost`) when the function has a value.
///
/// The [`AnalyzerManager`](crate::AnalyzerManager) evaluates the cost functions of its
/// triggers directly over the fields it already keeps per view, rather than through this
/// type; this is for using a cost function on its own.
pub struct CostFunctionAnalyzer {
    function: CostFunction,
    inputs: Vec<Box<dyn Analyzer>>,
}

impl CostFunctionAnalyzer {
    /// A cost function over the fields of `inputs`.
    pub fn new(function: CostFunction, inputs: Vec<Box<dyn Analyzer>>) -> CostFunctionAnalyzer {
        CostFunctionAnalyzer { function, inputs }
    }

    /// The function.
    pub fn function(&self) -> &CostFunction {
        &self.function
    }
}

impl Analyzer for CostFunctionAnalyzer {
    fn name(&self) -> &'static str {
        "cost_function"
    }

    fn observe(&mut self, obs: &Observation) {
        for input in &mut self.inputs {
            input.observe(obs);
        }
    }

    fn fields(&self, now: SystemTime) -> Vec<(&'static str, f64)> {
        let mut fields: Vec<(&'static str, f64)> = self.inputs.iter().flat_map(|a| a.fields(now)).collect();
        if let Some(cost) = self.function.evaluate(&FieldValues::from_pairs(&fields)) {
            fields.push((COST_FIELD, cost));
        }
        fields
    }

    fn samples(&self) -> u64 {
        self.inputs.iter().map(|a| a.samples()).max().unwrap_or(0)
    }

    fn expire(&mut self, now: SystemTime) {
        for input in &mut self.inputs {
            input.expire(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::analyzers::test_support::{at, field, obs};
    use crate::analyzers::{FrequencyAnalyzer, ResponseTimeAnalyzer, SizeAnalyzer};

    fn values(pairs: &[(Field, f64)]) -> FieldValues {
        let mut v = FieldValues::default();
        for (f, x) in pairs {
            v.set(*f, *x);
        }
        v
    }

    fn eval(text: &str, pairs: &[(Field, f64)]) -> Option<f64> {
        CostFunction::parse(text).unwrap().evaluate(&values(pairs))
    }

    fn error(text: &str) -> String {
        CostFunction::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn evaluates_the_issue_example() {
        let v = [(Field::ResponseTimeP50, 200.0), (Field::FrequencyRate, 3.0), (Field::SizeMean, 100_000.0)];
        assert_eq!(eval("p50_ms * rate_per_s - 0.001 * mean_bytes", &v), Some(500.0));
        assert_eq!(eval("response_time.p50 * frequency.rate - 0.001 * size.mean", &v), Some(500.0));
    }

    #[test]
    fn precedence_associativity_unary_minus_and_parentheses() {
        assert_eq!(eval("1 + 2 * 3", &[]), Some(7.0));
        assert_eq!(eval("(1 + 2) * 3", &[]), Some(9.0));
        assert_eq!(eval("10 - 4 - 3", &[]), Some(3.0));
        assert_eq!(eval("64 / 4 / 2", &[]), Some(8.0));
        assert_eq!(eval("-2 * -3", &[]), Some(6.0));
        assert_eq!(eval("--2", &[]), Some(2.0));
        assert_eq!(eval("-(1 - 4)", &[]), Some(3.0));
        assert_eq!(eval("1.5e3 + 2E-1", &[]), Some(1500.2));
        assert_eq!(eval("samples / 2", &[(Field::Samples, 10.0)]), Some(5.0));
    }

    #[test]
    fn no_value_without_data_or_for_non_finite_results() {
        assert_eq!(eval("p95_ms + 1", &[]), None);
        assert_eq!(eval("1 / rate_per_s", &[(Field::FrequencyRate, 0.0)]), None);
        assert_eq!(eval("0 / 0", &[]), None);
    }

    #[test]
    fn lists_the_fields_it_uses_and_keeps_its_text() {
        let f = CostFunction::parse("  max_bytes / size.max + p50_ms ").unwrap();
        assert_eq!(f.fields(), vec![Field::ResponseTimeP50, Field::SizeMax]);
        assert_eq!(f.text(), "max_bytes / size.max + p50_ms");
        assert_eq!(f.to_string(), "max_bytes / size.max + p50_ms");
    }

    #[test]
    fn parse_errors_name_the_column_and_what_was_expected() {
        assert_eq!(error(""), "expected a number, a field or `(`, found end of input at column 1");
        assert_eq!(error("p50_ms *"), "expected a number, a field or `(`, found end of input at column 9");
        assert_eq!(error("p50_ms * * 2"), "expected a number, a field or `(`, found `*` at column 10");
        assert_eq!(error("p50_ms 2"), "expected an operator (+, -, *, /) or end of input, found `2` at column 8");
        assert_eq!(error("(p50_ms + 1"), "expected an operator (+, -, *, /) or `)`, found end of input at column 12");
        assert_eq!(error("p50_ms)"), "expected an operator (+, -, *, /) or end of input, found `)` at column 7");
        assert_eq!(
            error("1 + p99_ms"),
            "unknown field `p99_ms` in cost function, expected one of mean_ms, p50_ms, p95_ms, ewma_ms, mean_bytes, max_bytes, rate_per_s, samples or a full field name such as response_time.p50 at column 5"
        );
        assert_eq!(error("2 % 3"), "expected an operator (+, -, *, /) or end of input, found `%` at column 3");
        assert_eq!(error("1 + 2s"), "expected an operator (+, -, *, /) or end of input, found `s` at column 6");
        let huge = format!("1{}", "0".repeat(400));
        assert_eq!(error(&huge), format!("number `{huge}` is too large at column 1"));
    }

    #[test]
    fn hostile_input_is_refused_without_deep_recursion() {
        let deep = format!("{}1{}", "(".repeat(40), ")".repeat(40));
        assert_eq!(error(&deep), "parentheses nested deeper than 32 at column 33");
        let long = vec!["1"; 300].join(" + ");
        assert_eq!(error(&long), "a cost function has at most 256 terms at column 1025");
        let negations = format!("{}1", "-".repeat(100_000));
        assert_eq!(error(&negations), "a cost function has at most 256 terms at column 257");
        assert!(CostFunction::parse(&vec!["1"; 256].join("+")).is_ok());
    }

    #[test]
    fn as_an_analyzer_it_adds_cost_to_its_inputs_fields() {
        let window = Duration::from_secs(60);
        let function = CostFunction::parse("p50_ms * rate_per_s - 0.001 * mean_bytes").unwrap();
        let mut a = CostFunctionAnalyzer::new(
            function,
            vec![
                Box::new(ResponseTimeAnalyzer::new(window, 4096, 0.2)),
                Box::new(SizeAnalyzer::new(window, 4096)),
                Box::new(FrequencyAnalyzer::new(window)),
            ],
        );
        assert_eq!(a.name(), "cost_function");
        // No data yet: frequency is 0 but p50 and mean size are missing, so no cost.
        assert!(a.fields(at(0)).iter().all(|(n, _)| *n != COST_FIELD));
        // 120 requests of 200 ms and 100 kB in a minute: 200 · 2 − 100 = 300.
        for i in 0..120 {
            a.observe(&obs(i * 500, 200, 100_000));
        }
        let f = a.fields(at(59_999));
        assert_eq!(field(&f, "cost"), 300.0);
        assert_eq!(field(&f, "response_time.p50"), 200.0);
        assert_eq!(a.samples(), 120);
        a.expire(at(200_000));
        assert_eq!(a.samples(), 0);
        assert_eq!(a.function().text(), "p50_ms * rate_per_s - 0.001 * mean_bytes");
    }
}
