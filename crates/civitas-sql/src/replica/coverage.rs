//! What a view reads: its base tables, per table the columns it needs (referenced ∪
//! primary key ∪ watermark) and a row filter, resolved through the origin's catalog.
//!
//! The syntax tree gives names; the catalog gives meaning. Over-approximation is always
//! safe (a column or row too many is copied for nothing), under-approximation never is, so
//! every doubt widens: an unqualified name goes to every table that has such a column, a
//! `*` anywhere takes every column, and a filter is only extracted where it provably
//! cannot change the view's result.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ops::ControlFlow;

use serde::{Deserialize, Serialize};
use sqlparser::ast::{
    BinaryOperator, Expr, Ident, JoinOperator, Query, SelectItem, SelectItemQualifiedWildcardKind, SetExpr, Statement,
    TableFactor, Visit, VisitMut, Visitor, VisitorMut,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use tokio_postgres::Client;

use crate::definition::{SqlView, UpdateMode};
use crate::error::SqlError;
use crate::serve::{db_message, quote_ident};

/// One column of a covered table, as the origin's catalog has it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Column {
    /// The column's name.
    pub name: String,
    /// Its type as `format_type()` writes it (`integer`, `character varying(20)`…).
    pub sql_type: String,
    /// `NOT NULL` at the origin.
    pub not_null: bool,
}

/// A base table a view reads, and what of it a replica needs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct CoveredTable {
    /// The table's schema at the origin (and at the target: names are kept).
    pub schema: String,
    /// The table's name.
    pub name: String,
    /// The columns copied, in the origin's column order: those the query references,
    /// the primary key and the watermark column.
    pub columns: Vec<Column>,
    /// The primary key columns, in key order (the replica identity, the upsert key).
    pub primary_key: Vec<String>,
    /// Rows outside this condition cannot reach the view's result (SQL over the table's
    /// columns, unqualified); `None`: every row.
    pub row_filter: Option<String>,
}

impl CoveredTable {
    /// `"schema"."name"`.
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }

    /// The quoted column list, `"a", "b"`.
    pub fn column_list(&self) -> String {
        self.columns.iter().map(|c| quote_ident(&c.name)).collect::<Vec<_>>().join(", ")
    }
}

/// Names as the syntax tree has them: folded like PostgreSQL folds unquoted identifiers.
fn fold(ident: &Ident) -> String {
    if ident.quote_style.is_some() { ident.value.clone() } else { ident.value.to_lowercase() }
}

/// A table reference in a FROM clause.
#[derive(Debug, Clone)]
struct TableRef {
    /// The name as written, for `to_regclass` (which applies the search path and folding).
    written: String,
    /// Its last part, folded.
    relname: String,
    /// Unqualified name (may be a CTE).
    unqualified: bool,
    alias: Option<String>,
}

impl TableRef {
    fn answers_to(&self, qualifier: &str) -> bool {
        match &self.alias {
            Some(alias) => alias == qualifier,
            None => self.relname == qualifier,
        }
    }
}

/// What the syntax tree tells, before the catalog.
#[derive(Debug, Default)]
struct Analysis {
    refs: Vec<TableRef>,
    /// The plain tables of the top-level SELECT's FROM clause (also in `refs`).
    top: Vec<TableRef>,
    ctes: HashSet<String>,
    /// Column references: (qualifier, column), folded.
    columns: BTreeSet<(Option<String>, String)>,
    /// A bare `*` somewhere.
    star: bool,
    /// `q.*` somewhere.
    qualified_stars: BTreeSet<String>,
    /// An outer join somewhere: no filter is safe then.
    outer_join: bool,
    /// The top-level WHERE's conjuncts.
    conjuncts: Vec<Expr>,
}

impl Visitor for Analysis {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                self.ctes.insert(fold(&cte.alias.name));
            }
        }
        self.selects(&query.body);
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table { name, alias, args: None, .. } = factor {
            let parts: Vec<&Ident> = name.0.iter().filter_map(|p| p.as_ident()).collect();
            if let Some(last) = parts.last() {
                self.refs.push(TableRef {
                    written: name.to_string(),
                    relname: fold(last),
                    unqualified: parts.len() == 1,
                    alias: alias.as_ref().map(|a| fold(&a.name)),
                });
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        match expr {
            Expr::Identifier(ident) => {
                self.columns.insert((None, fold(ident)));
            }
            Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
                let column = fold(&parts[parts.len() - 1]);
                self.columns.insert((Some(fold(&parts[parts.len() - 2])), column));
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

impl Analysis {
    fn selects(&mut self, body: &SetExpr) {
        match body {
            SetExpr::Select(select) => {
                for item in &select.projection {
                    match item {
                        SelectItem::Wildcard(_) => self.star = true,
                        SelectItem::QualifiedWildcard(SelectItemQualifiedWildcardKind::ObjectName(name), _) => {
                            match name.0.last().and_then(|p| p.as_ident()) {
                                Some(last) => {
                                    self.qualified_stars.insert(fold(last));
                                }
                                None => self.star = true,
                            }
                        }
                        SelectItem::QualifiedWildcard(..) => self.star = true,
                        _ => {}
                    }
                }
                for from in &select.from {
                    for join in &from.joins {
                        if matches!(
                            join.join_operator,
                            JoinOperator::Left(_)
                                | JoinOperator::LeftOuter(_)
                                | JoinOperator::Right(_)
                                | JoinOperator::RightOuter(_)
                                | JoinOperator::FullOuter(_)
                                | JoinOperator::OuterApply
                        ) {
                            self.outer_join = true;
                        }
                    }
                }
            }
            SetExpr::SetOperation { left, right, .. } => {
                self.selects(left);
                self.selects(right);
            }
            _ => {}
        }
    }
}

/// Parses the view's statement and gathers names.
fn analyse(statement: &str) -> Result<Analysis, String> {
    let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, statement).map_err(|e| e.to_string())?;
    let Some(Statement::Query(query)) = statements.pop() else {
        return Err("the statement is not a query".into());
    };
    let mut analysis = Analysis::default();
    let _ = Visit::visit(&query, &mut analysis);
    // Filter candidates: the plain tables of the top-level FROM and the top-level WHERE.
    if let SetExpr::Select(select) = query.body.as_ref() {
        for factor in
            select.from.iter().flat_map(|f| std::iter::once(&f.relation).chain(f.joins.iter().map(|j| &j.relation)))
        {
            if let TableFactor::Table { args: None, .. } = factor {
                let mut top = Analysis::default();
                let _ = Visit::visit(factor, &mut top);
                analysis.top.extend(top.refs);
            }
        }
        if let Some(selection) = &select.selection {
            split_and(selection, &mut analysis.conjuncts);
        }
    }
    Ok(analysis)
}

fn split_and(expr: &Expr, out: &mut Vec<Expr>) {
    match expr {
        Expr::BinaryOp { left, op: BinaryOperator::And, right } => {
            split_and(left, out);
            split_and(right, out);
        }
        Expr::Nested(inner) => split_and(inner, out),
        other => out.push(other.clone()),
    }
}

/// A conjunct that may become a row filter: only columns, literals and operators.
#[derive(Default)]
struct FilterCheck {
    columns: Vec<(Option<String>, String)>,
    unsafe_reason: Option<&'static str>,
}

impl Visitor for FilterCheck {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        match expr {
            Expr::Identifier(ident) => self.columns.push((None, fold(ident))),
            Expr::CompoundIdentifier(parts) if parts.len() == 2 => {
                self.columns.push((Some(fold(&parts[0])), fold(&parts[1])))
            }
            Expr::CompoundIdentifier(_) => self.unsafe_reason = Some("a schema-qualified column"),
            Expr::Function(_) => self.unsafe_reason = Some("a function call"),
            Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => {
                self.unsafe_reason = Some("a subquery")
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_value(&mut self, value: &sqlparser::ast::Value) -> ControlFlow<()> {
        if matches!(value, sqlparser::ast::Value::Placeholder(_)) {
            self.unsafe_reason = Some("a parameter");
        }
        ControlFlow::Continue(())
    }
}

/// Drops column qualifiers: publication row filters name the table's columns bare.
struct Unqualify;

impl VisitorMut for Unqualify {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::CompoundIdentifier(parts) = expr
            && let Some(last) = parts.last()
        {
            *expr = Expr::Identifier(last.clone());
        }
        ControlFlow::Continue(())
    }
}

/// A resolved base table.
struct Resolved {
    oid: u32,
    schema: String,
    name: String,
    columns: Vec<Column>,
    primary_key: Vec<String>,
    /// Indexes into `Analysis::refs` that name this table.
    refs: Vec<usize>,
}

/// The coverage of `view`, resolved through the origin's catalog on `client`.
pub(crate) async fn coverage(client: &Client, view: &SqlView) -> Result<Vec<CoveredTable>, SqlError> {
    let name = view.name.to_string();
    let refuse = |message: String| SqlError::Coverage { view: name.clone(), field: "update", message };
    let database = |e: tokio_postgres::Error| SqlError::Database { view: name.clone(), message: db_message(&e) };
    let analysis = analyse(&view.statement).map_err(&refuse)?;

    let mut tables: Vec<Resolved> = Vec::new();
    let mut oids = BTreeMap::new();
    for (i, table) in analysis.refs.iter().enumerate() {
        if table.unqualified && analysis.ctes.contains(&table.relname) {
            continue;
        }
        let row = client
            .query_opt(
                "SELECT c.oid, n.nspname::text, c.relname::text, c.relkind::text
                   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE c.oid = to_regclass($1)",
                &[&table.written],
            )
            .await
            .map_err(database)?
            .ok_or_else(|| refuse(format!("`{}` is not a relation in the origin database", table.written)))?;
        let (oid, schema, relname, kind): (u32, String, String, String) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        oids.insert(table.written.clone(), oid);
        if let Some(resolved) = tables.iter_mut().find(|t| t.oid == oid) {
            resolved.refs.push(i);
            continue;
        }
        let what = match kind.as_str() {
            "r" | "p" => None,
            "v" => Some("a view"),
            "m" => Some("a materialized view"),
            "f" => Some("a foreign table"),
            _ => Some("not a table"),
        };
        if let Some(what) = what {
            return Err(refuse(format!(
                "`{schema}.{relname}` is {what}; the postgres strategy copies tables only: \
                 write the view's query over the tables it reads"
            )));
        }
        let columns = client
            .query(
                "SELECT attname::text, format_type(atttypid, atttypmod), attnotnull FROM pg_attribute
                  WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                &[&oid],
            )
            .await
            .map_err(database)?
            .iter()
            .map(|r| Column { name: r.get(0), sql_type: r.get(1), not_null: r.get(2) })
            .collect();
        let primary_key: Vec<String> = client
            .query(
                "SELECT a.attname::text FROM pg_index i
                   JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
                  WHERE i.indrelid = $1 AND i.indisprimary
                  ORDER BY array_position(i.indkey::int2[], a.attnum)",
                &[&oid],
            )
            .await
            .map_err(database)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if primary_key.is_empty() {
            return Err(refuse(format!(
                "table `{schema}.{relname}` has no primary key; a replica needs one \
                 (as the replica identity of logical replication and the key of upserts)"
            )));
        }
        tables.push(Resolved { oid, schema, name: relname, columns, primary_key, refs: vec![i] });
    }
    if tables.is_empty() {
        return Err(refuse("the query reads no table; there is nothing to replicate".into()));
    }

    let watermark = match &view.update {
        UpdateMode::Watermark { column } => Some(column.as_str()),
        _ => None,
    };
    if let Some(column) = watermark
        && !tables.iter().any(|t| t.columns.iter().any(|c| c.name == column))
    {
        let names: Vec<String> = tables.iter().map(|t| format!("`{}.{}`", t.schema, t.name)).collect();
        return Err(SqlError::Coverage {
            view: name.clone(),
            field: "watermarkColumn",
            message: format!(
                "the watermark column `{column}` is in none of the tables the view reads ({})",
                names.join(", ")
            ),
        });
    }

    let mut covered = Vec::new();
    for table in &tables {
        let answers = |q: &str| table.refs.iter().any(|&i| analysis.refs[i].answers_to(q));
        let has = |c: &str| table.columns.iter().any(|col| col.name == c);
        let whole_row = analysis.columns.iter().any(|(q, c)| q.is_none() && answers(c) && !has(c));
        let everything = analysis.star || whole_row || analysis.qualified_stars.iter().any(|q| answers(q));
        let needed: BTreeSet<&str> = analysis
            .columns
            .iter()
            .filter(|(q, c)| has(c) && q.as_deref().is_none_or(answers))
            .map(|(_, c)| c.as_str())
            .chain(table.primary_key.iter().map(String::as_str))
            .chain(watermark.filter(|w| has(w)))
            .collect();
        let columns =
            table.columns.iter().filter(|c| everything || needed.contains(c.name.as_str())).cloned().collect();
        let row_filter = row_filter(&analysis, &oids, &tables, table, &view.update);
        covered.push(CoveredTable {
            schema: table.schema.clone(),
            name: table.name.clone(),
            columns,
            primary_key: table.primary_key.clone(),
            row_filter,
        });
    }
    Ok(covered)
}

/// The conjunction of the top-level WHERE's conjuncts that only read `table`'s columns,
/// when the table is read exactly once, from the top-level FROM, without outer joins. For
/// streaming, only the conjuncts over primary key columns (PostgreSQL 15 allows nothing
/// else in the row filter of a publication that publishes UPDATE and DELETE).
fn row_filter(
    analysis: &Analysis,
    oids: &BTreeMap<String, u32>,
    tables: &[Resolved],
    table: &Resolved,
    update: &UpdateMode,
) -> Option<String> {
    if analysis.outer_join || table.refs.len() != 1 {
        return None;
    }
    let resolves = |r: &TableRef, oid: u32| {
        !(r.unqualified && analysis.ctes.contains(&r.relname)) && oids.get(&r.written) == Some(&oid)
    };
    let me = analysis.top.iter().find(|r| resolves(r, table.oid))?;
    let top_tables: Vec<&Resolved> =
        tables.iter().filter(|t| analysis.top.iter().any(|r| resolves(r, t.oid))).collect();
    let mut kept = Vec::new();
    for conjunct in &analysis.conjuncts {
        let mut check = FilterCheck::default();
        let _ = Visit::visit(conjunct, &mut check);
        if check.unsafe_reason.is_some() || check.columns.is_empty() {
            continue;
        }
        let mine = check.columns.iter().all(|(q, c)| {
            let has = table.columns.iter().any(|col| &col.name == c);
            match q {
                Some(q) => me.answers_to(q) && has,
                // Unqualified: it must be this table's column and no other top-level table's.
                None => {
                    has && top_tables
                        .iter()
                        .filter(|t| t.oid != table.oid)
                        .all(|t| !t.columns.iter().any(|col| &col.name == c))
                }
            }
        });
        if !mine {
            continue;
        }
        // Streaming: PostgreSQL 15 only publishes row filters over the replica identity
        // (the primary key) for tables whose UPDATEs and DELETEs are published.
        if *update == UpdateMode::Streaming && !check.columns.iter().all(|(_, c)| table.primary_key.contains(c)) {
            continue;
        }
        let mut expr = conjunct.clone();
        let _ = VisitMut::visit(&mut expr, &mut Unqualify);
        kept.push(format!("({expr})"));
    }
    if kept.is_empty() {
        return None;
    }
    Some(kept.join(" AND "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_columns_and_conjuncts_are_gathered() {
        let a = analyse(
            "SELECT b.id, d.name, height FROM s.buildings AS b JOIN s.districts d ON d.id = b.district \
             WHERE b.height > 10 AND d.name <> 'x' AND b.id = $1 AND lower(b.name) = 'a'",
        )
        .unwrap();
        let refs: Vec<_> = a.refs.iter().map(|r| (r.written.as_str(), r.alias.as_deref())).collect();
        assert_eq!(refs, [("s.buildings", Some("b")), ("s.districts", Some("d"))]);
        assert_eq!(a.top.len(), 2);
        assert_eq!(a.conjuncts.len(), 4);
        assert!(a.columns.contains(&(None, "height".into())));
        assert!(a.columns.contains(&(Some("d".into()), "name".into())));
        assert!(!a.outer_join && !a.star);

        let a = analyse("WITH t AS (SELECT * FROM x) SELECT t.a FROM t LEFT JOIN y ON true").unwrap();
        assert!(a.ctes.contains("t") && a.star && a.outer_join);
        assert_eq!(a.top[0].relname, "t");
    }
}
