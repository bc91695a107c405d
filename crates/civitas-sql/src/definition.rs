//! A SQL unit's definition, read from a `DataUnit`'s open `metainformation` block, and the
//! checks that need no database: one read-only SELECT, declared and used parameters.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::ControlFlow;

use civitas_model::{DataUnit, Urn};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlparser::ast::{SetExpr, Statement, Visit, VisitMut, Visitor, VisitorMut};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use crate::error::{DefinitionError, SqlError};

/// The `metainformation.type` of SQL units served by this crate.
pub const SOURCE_TYPE: &str = "sql:postgresql";

/// Query-string names the data plane keeps for itself: no view parameter may take them.
pub const RESERVED_PARAMETERS: [&str; 2] = ["after", "limit"];

/// The type of a view parameter, as declared in `parameters`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParamType {
    /// `int`: PostgreSQL `integer` (32 bits).
    Int,
    /// `bigint`: PostgreSQL `bigint` (64 bits).
    Bigint,
    /// `float`: PostgreSQL `double precision`.
    Float,
    /// `text`: PostgreSQL `text`.
    Text,
    /// `bool`: `true`/`false` (also `1`/`0`).
    Bool,
    /// `date`: `YYYY-MM-DD`.
    Date,
    /// `timestamp`: `YYYY-MM-DDTHH:MM:SS[.fff]` (no time zone), PostgreSQL `timestamp`.
    Timestamp,
}

impl ParamType {
    /// Every type, in the order the documentation lists them.
    pub const ALL: [ParamType; 7] = [
        ParamType::Int,
        ParamType::Bigint,
        ParamType::Float,
        ParamType::Text,
        ParamType::Bool,
        ParamType::Date,
        ParamType::Timestamp,
    ];

    /// The declared name (`int`, `bigint`…).
    pub fn as_str(self) -> &'static str {
        match self {
            ParamType::Int => "int",
            ParamType::Bigint => "bigint",
            ParamType::Float => "float",
            ParamType::Text => "text",
            ParamType::Bool => "bool",
            ParamType::Date => "date",
            ParamType::Timestamp => "timestamp",
        }
    }

    /// Parses a declared name.
    pub fn parse(name: &str) -> Option<ParamType> {
        ParamType::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

impl fmt::Display for ParamType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a replica of a view is kept fresh at another city (`sqlViews.<view>.update`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "kebab-case")]
pub enum UpdateMode {
    /// `streaming`: logical replication (publication at the origin, subscription at the
    /// target); freshness from the replication slot's LSNs.
    Streaming,
    /// `watermark`: periodic incremental copy of the rows whose `column` grew since the
    /// last copy (upserted by primary key; deletes are not seen).
    Watermark {
        /// The watermark column (`watermarkColumn`), e.g. `updated_at`.
        column: String,
    },
    /// `full-copy` (the default): periodic full copy in one target transaction.
    FullCopy,
}

impl UpdateMode {
    /// The declared name: `streaming`, `watermark` or `full-copy`.
    pub fn as_str(&self) -> &'static str {
        match self {
            UpdateMode::Streaming => "streaming",
            UpdateMode::Watermark { .. } => "watermark",
            UpdateMode::FullCopy => "full-copy",
        }
    }
}

impl fmt::Display for UpdateMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One view parameter: its name and type, bound as `$position` in [`SqlView::statement`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parameter {
    /// The name used in the query (`district` for `$district`) and in the query string.
    pub name: String,
    /// The declared type.
    pub param_type: ParamType,
}

/// A SQL view, checked: its query is one read-only SELECT whose `$name` placeholders are
/// exactly the declared parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlView {
    /// The view's full name (`urn:buildings:vienna:by-district`).
    pub name: Urn,
    /// The connection reference of its unit.
    pub connection: String,
    /// The query as the owner wrote it.
    pub query: String,
    /// The parameters in binding order: `parameters[i]` is `$(i+1)` in `statement`.
    pub parameters: Vec<Parameter>,
    /// The column keyset pagination orders and resumes by; `None`: no pagination.
    pub key_column: Option<String>,
    /// The checked query re-written from its syntax tree, with `$1…$n` in place of names:
    /// what is checked is what runs.
    pub statement: String,
    /// How a replica of this view is kept fresh (`update`, default `full-copy`).
    pub update: UpdateMode,
}

/// A SQL unit: its connection reference and its views by local name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlUnit {
    /// The unit's name.
    pub name: Urn,
    /// `metainformation.connection`.
    pub connection: String,
    /// Views by local name (`by-district`).
    pub views: BTreeMap<String, SqlView>,
}

impl SqlUnit {
    /// Finds a view by full name or local name.
    pub fn view(&self, name: &str) -> Option<&SqlView> {
        self.views.get(name).or_else(|| self.views.values().find(|v| v.name.as_str() == name))
    }
}

/// The JSON of one entry of `metainformation.sqlViews`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ViewSpec {
    query: String,
    #[serde(default)]
    parameters: BTreeMap<String, String>,
    #[serde(default)]
    key_column: Option<String>,
    #[serde(default)]
    update: Option<String>,
    #[serde(default)]
    watermark_column: Option<String>,
}

/// Reads and checks a unit's SQL definition without a database.
///
/// Returns `Ok(None)` when the unit is not a SQL unit (`metainformation.type` is not
/// [`SOURCE_TYPE`]), and every problem at once as [`SqlError::Definition`] otherwise.
pub fn parse_unit(unit: &DataUnit) -> Result<Option<SqlUnit>, SqlError> {
    let meta = &unit.metainformation;
    if meta.source_type != SOURCE_TYPE {
        return Ok(None);
    }
    let mut errors = Vec::new();
    let error = |errors: &mut Vec<DefinitionError>, pointer: String, view: Option<&str>, message: String| {
        errors.push(DefinitionError { pointer, view: view.map(str::to_owned), message })
    };
    let connection = match meta.extra.get("connection") {
        Some(Value::String(c)) if !c.trim().is_empty() => c.trim().to_owned(),
        Some(_) => {
            error(&mut errors, "/metainformation/connection".into(), None, "must be a non-empty string".into());
            String::new()
        }
        None => {
            let message = "is required: the name of a connection in the node's [sql.connections] configuration";
            error(&mut errors, "/metainformation/connection".into(), None, message.into());
            String::new()
        }
    };
    if connection.contains("://") || connection.contains('=') {
        let message = "is a connection reference (`city-db`), never a URL or connection string".into();
        error(&mut errors, "/metainformation/connection".into(), None, message);
    }
    let specs = match meta.extra.get("sqlViews") {
        Some(Value::Object(specs)) => specs.clone(),
        Some(_) => {
            error(&mut errors, "/metainformation/sqlViews".into(), None, "must be an object".into());
            Default::default()
        }
        None if unit.views.is_empty() => Default::default(),
        None => {
            let message = "is required: one entry per view, by the view's local name".into();
            error(&mut errors, "/metainformation/sqlViews".into(), None, message);
            Default::default()
        }
    };
    for (i, view) in unit.views.iter().enumerate() {
        let local = view.name.local_name();
        if !specs.contains_key(local) {
            let message = format!("view `{local}` has no entry in /metainformation/sqlViews");
            error(&mut errors, format!("/views/{i}/name"), Some(local), message);
        }
    }
    let mut views = BTreeMap::new();
    for (local, spec) in &specs {
        let pointer = format!("/metainformation/sqlViews/{}", escape_pointer(local));
        let Some(view) = unit.views.iter().find(|v| v.name.local_name() == local) else {
            error(&mut errors, pointer, Some(local), format!("names no view of the unit (`{local}`)"));
            continue;
        };
        let spec: ViewSpec = match serde_json::from_value(spec.clone()) {
            Ok(spec) => spec,
            Err(e) => {
                error(&mut errors, pointer, Some(local), e.to_string());
                continue;
            }
        };
        let before = errors.len();
        let mut parameters = BTreeMap::new();
        for (name, type_name) in &spec.parameters {
            let p = format!("{pointer}/parameters/{}", escape_pointer(name));
            if !is_parameter_name(name) {
                let message = format!("`{name}` is not a parameter name (letters, digits, `_`; not a digit first)");
                error(&mut errors, p.clone(), Some(local), message);
            } else if RESERVED_PARAMETERS.contains(&name.as_str()) {
                let message = format!("`{name}` is reserved for pagination; name the parameter otherwise");
                error(&mut errors, p.clone(), Some(local), message);
            }
            match ParamType::parse(type_name.trim()) {
                Some(t) => {
                    parameters.insert(name.clone(), t);
                }
                None => {
                    let all: Vec<_> = ParamType::ALL.iter().map(|t| t.as_str()).collect();
                    let message = format!("unknown type `{type_name}`; one of {}", all.join(", "));
                    error(&mut errors, p, Some(local), message);
                }
            }
        }
        if let Some(key) = &spec.key_column
            && key.trim().is_empty()
        {
            error(&mut errors, format!("{pointer}/keyColumn"), Some(local), "must not be empty".into());
        }
        let update = match (spec.update.as_deref().map(str::trim), spec.watermark_column.as_deref().map(str::trim)) {
            (None | Some("full-copy"), None) => Some(UpdateMode::FullCopy),
            (Some("streaming"), None) => Some(UpdateMode::Streaming),
            (Some("watermark"), Some(column)) if !column.is_empty() => {
                Some(UpdateMode::Watermark { column: column.to_owned() })
            }
            (Some("watermark"), _) => {
                let message = "is required with `\"update\": \"watermark\"`: the column whose growth marks new and changed rows (e.g. `updated_at`)";
                error(&mut errors, format!("{pointer}/watermarkColumn"), Some(local), message.into());
                None
            }
            (None | Some("full-copy" | "streaming"), Some(_)) => {
                let message = "is only allowed with `\"update\": \"watermark\"`";
                error(&mut errors, format!("{pointer}/watermarkColumn"), Some(local), message.into());
                None
            }
            (Some(other), _) => {
                let message = format!("unknown update mode `{other}`; one of streaming, watermark, full-copy");
                error(&mut errors, format!("{pointer}/update"), Some(local), message);
                None
            }
        };
        let checked = match check_query(&spec.query, &parameters) {
            Ok(checked) => Some(checked),
            Err(messages) => {
                for m in messages {
                    error(&mut errors, format!("{pointer}/query"), Some(local), m);
                }
                None
            }
        };
        if errors.len() > before {
            continue;
        }
        let (Some((statement, order)), Some(update)) = (checked, update) else { continue };
        let parameters = order.into_iter().map(|name| Parameter { param_type: parameters[&name], name }).collect();
        views.insert(
            local.to_owned(),
            SqlView {
                name: view.name.clone(),
                connection: connection.clone(),
                query: spec.query.clone(),
                parameters,
                key_column: spec.key_column.map(|k| k.trim().to_owned()),
                statement,
                update,
            },
        );
    }
    if !errors.is_empty() {
        return Err(SqlError::Definition(errors));
    }
    Ok(Some(SqlUnit { name: unit.header.name.clone(), connection, views }))
}

fn escape_pointer(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

fn is_parameter_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Checks that `query` is exactly one read-only SELECT whose `$name` placeholders are
/// exactly `declared`; returns the statement re-written with `$1…$n` and the parameter
/// names in binding order, or every problem found.
pub(crate) fn check_query(
    query: &str,
    declared: &BTreeMap<String, ParamType>,
) -> Result<(String, Vec<String>), Vec<String>> {
    let mut statements = match Parser::parse_sql(&PostgreSqlDialect {}, query) {
        Ok(s) => s,
        Err(e) => return Err(vec![format!("does not parse as PostgreSQL: {e}")]),
    };
    match statements.len() {
        1 => {}
        0 => return Err(vec!["holds no statement; write one SELECT".into()]),
        n => return Err(vec![format!("holds {n} statements; write exactly one SELECT")]),
    }
    let mut statement = statements.remove(0);
    let mut problems = Vec::new();
    if !matches!(statement, Statement::Query(_)) {
        problems.push(format!("is not a SELECT but {}; views are read-only", statement_kind(&statement)));
        return Err(problems);
    }
    let mut readonly = ReadOnly { problems: Vec::new(), top: true };
    let _ = Visit::visit(&statement, &mut readonly);
    problems.extend(readonly.problems);

    let mut names = Placeholders { order: Vec::new(), problems: Vec::new(), declared };
    let _ = Visit::visit(&statement, &mut names);
    problems.extend(names.problems.iter().cloned());
    for name in declared.keys() {
        if !names.order.contains(name) {
            problems.push(format!("parameter `{name}` is declared but `${name}` is not used in the query"));
        }
    }
    if !problems.is_empty() {
        problems.dedup();
        return Err(problems);
    }
    let _ = VisitMut::visit(&mut statement, &mut names);
    Ok((statement.to_string(), names.order))
}

fn statement_kind(statement: &Statement) -> String {
    let text = statement.to_string();
    let words: Vec<&str> = text.split_whitespace().take(2).collect();
    format!("`{}`", words.join(" "))
}

/// Refuses anything but reading: DML in any (sub)query or CTE, `SELECT … INTO`, locking clauses.
struct ReadOnly {
    problems: Vec<String>,
    top: bool,
}

impl Visitor for ReadOnly {
    type Break = ();

    fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<()> {
        if !self.top || !matches!(statement, Statement::Query(_)) {
            self.problems.push(format!("holds a nested {} statement; views are read-only", statement_kind(statement)));
        }
        self.top = false;
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, query: &sqlparser::ast::Query) -> ControlFlow<()> {
        if !query.locks.is_empty() {
            self.problems.push("has a locking clause (`FOR UPDATE`/`FOR SHARE`…); views are read-only".into());
        }
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                if let Some(kind) = modifying(&cte.query.body) {
                    self.problems.push(format!(
                        "the common table expression `{}` is a data-modifying {kind}; views are read-only",
                        cte.alias.name
                    ));
                }
            }
        }
        if let Some(kind) = modifying(&query.body) {
            self.problems.push(format!("holds an {kind}; views are read-only"));
        }
        if let SetExpr::Select(select) = query.body.as_ref()
            && select.into.is_some()
        {
            self.problems.push("is a `SELECT … INTO`, which creates a table; views are read-only".into());
        }
        ControlFlow::Continue(())
    }
}

fn modifying(body: &SetExpr) -> Option<&'static str> {
    match body {
        SetExpr::Insert(_) => Some("INSERT"),
        SetExpr::Update(_) => Some("UPDATE"),
        SetExpr::Delete(_) => Some("DELETE"),
        SetExpr::Merge(_) => Some("MERGE"),
        SetExpr::SetOperation { left, right, .. } => modifying(left).or_else(|| modifying(right)),
        _ => None,
    }
}

/// Collects `$name` placeholders in order of first use (as a `Visitor`), then replaces
/// them by their position (as a `VisitorMut`).
struct Placeholders<'a> {
    order: Vec<String>,
    problems: Vec<String>,
    declared: &'a BTreeMap<String, ParamType>,
}

impl Visitor for Placeholders<'_> {
    type Break = ();

    fn pre_visit_value(&mut self, value: &sqlparser::ast::Value) -> ControlFlow<()> {
        if let sqlparser::ast::Value::Placeholder(p) = value {
            let name = p.strip_prefix('$').unwrap_or(p);
            if !p.starts_with('$') || name.is_empty() {
                self.problems.push(format!("placeholder `{p}` is not supported; write `$name`"));
            } else if name.chars().all(|c| c.is_ascii_digit()) {
                self.problems.push(format!("positional placeholder `{p}`: name it (`$district`) and declare it"));
            } else if !self.declared.contains_key(name) {
                self.problems.push(format!("placeholder `{p}` is not declared in `parameters`"));
            } else if !self.order.iter().any(|n| n == name) {
                self.order.push(name.to_owned());
            }
        }
        ControlFlow::Continue(())
    }
}

impl VisitorMut for Placeholders<'_> {
    type Break = ();

    fn pre_visit_value(&mut self, value: &mut sqlparser::ast::Value) -> ControlFlow<()> {
        if let sqlparser::ast::Value::Placeholder(p) = value
            && let Some(i) = self.order.iter().position(|n| Some(n.as_str()) == p.strip_prefix('$'))
        {
            *p = format!("${}", i + 1);
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use civitas_model::Document;
    use serde_json::json;

    use super::*;

    fn unit(meta: Value, views: Value) -> DataUnit {
        let doc = json!({"@type": "DataUnit", "name": "urn:buildings:vienna", "version": "1",
            "metainformation": meta, "views": views});
        match Document::decode(&doc) {
            Ok(Document::DataUnit(u)) => u,
            other => panic!("fixture does not decode: {other:?}"),
        }
    }

    fn one_view(query: &str, parameters: Value) -> DataUnit {
        unit(
            json!({"type": "sql:postgresql", "connection": "city-db",
                "sqlViews": {"by-district": {"query": query, "parameters": parameters, "keyColumn": "id"}}}),
            json!([{"name": "by-district", "link": "/by-district"}]),
        )
    }

    /// Every error message of a definition that must be refused.
    fn refused(u: &DataUnit) -> Vec<DefinitionError> {
        match parse_unit(u) {
            Err(SqlError::Definition(errors)) => errors,
            other => panic!("expected definition errors, got {other:?}"),
        }
    }

    fn refused_query(query: &str, parameters: Value) -> String {
        let errors = refused(&one_view(query, parameters));
        assert!(
            errors.iter().all(|e| e.view.as_deref() == Some("by-district")
                && e.pointer == "/metainformation/sqlViews/by-district/query"),
            "{errors:?}"
        );
        errors.iter().map(|e| e.message.clone()).collect::<Vec<_>>().join("; ")
    }

    #[test]
    fn a_good_view_is_rewritten_with_positions() {
        let u = one_view(
            "SELECT id, district, height FROM buildings WHERE district = $district AND height > $min OR district = $district",
            json!({"district": "int", "min": "float"}),
        );
        let sql = parse_unit(&u).unwrap().unwrap();
        assert_eq!(sql.connection, "city-db");
        let v = sql.view("by-district").unwrap();
        assert_eq!(v.name.as_str(), "urn:buildings:vienna:by-district");
        assert_eq!(
            v.statement,
            "SELECT id, district, height FROM buildings WHERE district = $1 AND height > $2 OR district = $1"
        );
        let params: Vec<_> = v.parameters.iter().map(|p| (p.name.as_str(), p.param_type)).collect();
        assert_eq!(params, [("district", ParamType::Int), ("min", ParamType::Float)]);
        assert_eq!(v.key_column.as_deref(), Some("id"));
        assert!(std::ptr::eq(sql.view("urn:buildings:vienna:by-district").unwrap(), v));
    }

    #[test]
    fn update_modes_are_read_and_checked() {
        let with = |extra: Value| {
            let mut spec = json!({"query": "SELECT id FROM b"});
            spec.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            unit(
                json!({"type": "sql:postgresql", "connection": "city-db", "sqlViews": {"v": spec}}),
                json!([{"name": "v", "link": "/v"}]),
            )
        };
        let mode = |extra: Value| parse_unit(&with(extra)).unwrap().unwrap().views["v"].update.clone();
        assert_eq!(mode(json!({})), UpdateMode::FullCopy);
        assert_eq!(mode(json!({"update": "full-copy"})), UpdateMode::FullCopy);
        assert_eq!(mode(json!({"update": "streaming"})), UpdateMode::Streaming);
        let watermark = mode(json!({"update": "watermark", "watermarkColumn": "updated_at"}));
        assert_eq!(watermark, UpdateMode::Watermark { column: "updated_at".into() });
        assert_eq!(
            (UpdateMode::Streaming.as_str(), watermark.as_str(), UpdateMode::FullCopy.as_str()),
            ("streaming", "watermark", "full-copy")
        );
        assert_eq!(serde_json::to_value(&watermark).unwrap(), json!({"mode": "watermark", "column": "updated_at"}));

        let pointer = "/metainformation/sqlViews/v/watermarkColumn";
        for bad in [json!({"update": "watermark"}), json!({"update": "streaming", "watermarkColumn": "x"})] {
            let errors = refused(&with(bad.clone()));
            assert!(errors.iter().any(|e| e.pointer == pointer), "{bad}: {errors:?}");
        }
        let errors = refused(&with(json!({"update": "hourly"})));
        assert!(
            errors.iter().any(|e| e.pointer == "/metainformation/sqlViews/v/update"
                && e.message.contains("unknown update mode `hourly`"))
        );
    }

    #[test]
    fn other_source_types_are_not_sql_units() {
        let u = unit(json!({"type": "rest"}), json!([{"name": "a", "link": "/a"}]));
        assert_eq!(parse_unit(&u).unwrap(), None);
    }

    #[test]
    fn anything_but_one_read_only_select_is_refused() {
        let cases = [
            ("INSERT INTO buildings (id) VALUES (1)", "is not a SELECT"),
            ("UPDATE buildings SET height = 0", "is not a SELECT"),
            ("DELETE FROM buildings", "is not a SELECT"),
            ("DROP TABLE buildings", "is not a SELECT"),
            ("CREATE TABLE x (a int)", "is not a SELECT"),
            ("TRUNCATE buildings", "is not a SELECT"),
            ("SELECT 1; SELECT 2", "holds 2 statements"),
            ("SELECT 1; DROP TABLE buildings", "holds 2 statements"),
            ("", "holds no statement"),
            ("SELECT * INTO copy FROM buildings", "SELECT … INTO"),
            ("SELECT * FROM buildings FOR UPDATE", "locking clause"),
            ("SELECT * FROM buildings FOR SHARE", "locking clause"),
            ("SELECT * FROM (SELECT * FROM buildings FOR UPDATE) b", "locking clause"),
            ("WITH gone AS (DELETE FROM buildings RETURNING *) SELECT * FROM gone", "data-modifying DELETE"),
            ("WITH n AS (INSERT INTO buildings (id) VALUES (1) RETURNING id) SELECT * FROM n", "data-modifying INSERT"),
            ("WITH n AS (UPDATE buildings SET height = 1 RETURNING id) SELECT * FROM n", "data-modifying UPDATE"),
            ("SELEC id FROM buildings", "does not parse"),
        ];
        for (query, want) in cases {
            let got = refused_query(query, json!({}));
            assert!(got.contains(want), "{query:?}: expected {want:?} in {got:?}");
        }
    }

    #[test]
    fn placeholders_and_declarations_must_match() {
        let got = refused_query("SELECT * FROM buildings WHERE district = $district", json!({}));
        assert!(got.contains("`$district` is not declared"), "{got}");
        let got = refused_query("SELECT * FROM buildings", json!({"district": "int"}));
        assert!(got.contains("parameter `district` is declared but `$district` is not used"), "{got}");
        let got = refused_query("SELECT * FROM buildings WHERE district = $1", json!({}));
        assert!(got.contains("positional placeholder `$1`"), "{got}");
    }

    #[test]
    fn parameter_declarations_are_checked() {
        let u = one_view(
            "SELECT * FROM b WHERE a = $a AND c = $limit AND d = $d",
            json!({"a": "integer", "limit": "int", "d": "text"}),
        );
        let errors = refused(&u);
        let by_pointer = |p: &str| errors.iter().find(|e| e.pointer == p).map(|e| e.message.clone());
        let a = by_pointer("/metainformation/sqlViews/by-district/parameters/a").unwrap();
        assert!(a.contains("unknown type `integer`") && a.contains("int, bigint, float, text, bool, date, timestamp"));
        let limit = by_pointer("/metainformation/sqlViews/by-district/parameters/limit").unwrap();
        assert!(limit.contains("reserved for pagination"), "{limit}");
    }

    #[test]
    fn unit_level_mistakes_are_reported_together() {
        let u = unit(
            json!({"type": "sql:postgresql", "connection": "postgres://u:secret@db/city",
                "sqlViews": {"ghost": {"query": "SELECT 1"}, "a": {"query": "SELECT 1", "kye": "x"}}}),
            json!([{"name": "a", "link": "/a"}, {"name": "b", "link": "/b"}]),
        );
        let errors = refused(&u);
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        let has = |p: &str, m: &str| errors.iter().any(|e| e.pointer == p && e.message.contains(m));
        assert!(has("/metainformation/connection", "never a URL"), "{text:?}");
        assert!(has("/views/1/name", "view `b` has no entry"), "{text:?}");
        assert!(has("/metainformation/sqlViews/ghost", "names no view"), "{text:?}");
        assert!(has("/metainformation/sqlViews/a", "unknown field `kye`"), "{text:?}");

        let u = unit(json!({"type": "sql:postgresql"}), json!([{"name": "a", "link": "/a"}]));
        let errors = refused(&u);
        assert!(errors.iter().any(|e| e.pointer == "/metainformation/connection" && e.message.contains("required")));
        assert!(errors.iter().any(|e| e.pointer == "/metainformation/sqlViews" && e.message.contains("required")));
    }
}

#[cfg(test)]
mod example {
    use civitas_model::Document;

    use super::*;

    /// The example of docs/sql.md.
    #[test]
    fn the_documented_example_is_a_valid_sql_unit() {
        let json: Value = serde_json::from_str(include_str!("../../../examples/sql/buildings.json")).unwrap();
        let Ok(Document::DataUnit(unit)) = Document::decode(&json) else { panic!("the example decodes") };
        let sql = parse_unit(&unit).unwrap().unwrap();
        assert_eq!(sql.connection, "city-db");
        let tall = sql.view("tall").unwrap();
        assert_eq!(tall.statement, "SELECT id, name, height FROM buildings WHERE height >= $1 AND built < $2");
        assert_eq!(tall.parameters[1], Parameter { name: "before".into(), param_type: ParamType::Date });
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    const TOKENS: &[&str] = &[
        "SELECT",
        "a",
        "b",
        "1",
        "'x'",
        "FROM",
        "t",
        "u",
        "WHERE",
        "=",
        "<",
        "AND",
        "OR",
        "$p",
        "$q",
        "$1",
        ",",
        "(",
        ")",
        ";",
        "*",
        "INSERT",
        "INTO",
        "VALUES",
        "UPDATE",
        "SET",
        "DELETE",
        "WITH",
        "AS",
        "FOR",
        "UPDATE",
        "SHARE",
        "UNION",
        "ALL",
        "RETURNING",
        "DROP",
        "TABLE",
        "--",
        "/*",
        "*/",
        "$$",
        "ORDER",
        "BY",
        "LIMIT",
        "JOIN",
        "ON",
    ];

    fn sqlish() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(TOKENS), 1..24).prop_map(|t| format!("SELECT {}", t.join(" ")))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Whatever the owner writes, the check never panics, and what it accepts is, once
        /// re-written, still exactly one read-only SELECT.
        #[test]
        fn accepted_queries_stay_one_read_only_select(query in prop_oneof![sqlish(), ".{0,80}"]) {
            let declared: BTreeMap<String, ParamType> =
                [("p".to_owned(), ParamType::Int), ("q".to_owned(), ParamType::Text)].into();
            if let Ok((statement, order)) = check_query(&query, &declared) {
                let parsed = Parser::parse_sql(&PostgreSqlDialect {}, &statement).expect("the re-written query parses");
                prop_assert_eq!(parsed.len(), 1);
                prop_assert!(matches!(parsed[0], Statement::Query(_)));
                let mut readonly = ReadOnly { problems: Vec::new(), top: true };
                let _ = Visit::visit(&parsed[0], &mut readonly);
                prop_assert!(readonly.problems.is_empty(), "{:?}", readonly.problems);
                prop_assert_eq!(order.len(), declared.len());
                prop_assert!(!statement.contains("$p") && !statement.contains("$q"));
            }
        }
    }
}
