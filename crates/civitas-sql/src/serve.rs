//! `SqlViews`: validation against the database and serving views as streams of bytes.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use civitas_model::DataUnit;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Row, RowStream};

use crate::config::{ConnectionConfig, SqlConfig};
use crate::definition::{ParamType, SqlUnit, SqlView, UpdateMode, parse_unit};
use crate::error::{DefinitionError, SqlError};
use crate::format::{Encoder, Format};
use crate::pool::{Pool, PooledClient};

/// The response header (and trailer) that carries the cursor of the next page
/// (`?after=<value>`).
pub const NEXT_AFTER_HEADER: &str = "civitas-next-after";

/// The largest page whose next-page cursor is known before the body (and so can go in the
/// response headers). Knowing it up front means reading the page's keys first, about
/// 0.2 µs a key (an index-only scan): 2 ms at this size, 30 ms for a 158,000-row page,
/// which would hold back the first byte. Larger pages carry the cursor at their end only
/// ([`Part::End`], sent by the node as trailers).
pub const HEADER_CURSOR_MAX_ROWS: u64 = 10_000;

/// Bytes gathered before a chunk is handed on (a chunk also goes out as soon as the
/// database has no further row ready, so the first byte is not held back).
const CHUNK_BYTES: usize = 16 * 1024;

/// A piece of a view's answer body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Encoded rows (and the format's framing).
    Data(Bytes),
    /// The last part of a keyed view's page, after all its data. Views without a
    /// `keyColumn` have no pages and end without it.
    End {
        /// The `after` value of the next page, `None` on the last page.
        next_after: Option<String>,
    },
}

/// A view's answer: its headers are known before its body streams.
pub struct SqlResponse {
    /// `Content-Type` of the body.
    pub content_type: &'static str,
    /// The view has pages: its body ends with [`Part::End`].
    pub paged: bool,
    /// The `after` value of the next page when it is known before the body: on pages of
    /// up to [`HEADER_CURSOR_MAX_ROWS`] rows that have a next page (send it as
    /// [`NEXT_AFTER_HEADER`] and in a `Link: <…?after=…&limit=…>; rel="next"`). Every
    /// paged body also carries it at its end.
    pub next_after: Option<String>,
    /// The page size used (the request's `limit`, capped by `max_rows`).
    pub limit: u64,
    /// The body. An error after the first chunk means the database failed mid-stream: the
    /// node aborts the response (the client sees a truncated body, never a fake end).
    pub body: BoxStream<'static, Result<Part, SqlError>>,
}

/// The query string of the page after `after`, from a request's: the same parameters with
/// `after` and `limit` set (for the node's `Link: <{path}?{this}>; rel="next"`).
pub fn next_page_query(query_string: &str, limit: u64, after: &str) -> String {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query_string.trim_start_matches('?')).unwrap_or_default();
    let limit = limit.to_string();
    let kept = pairs.iter().filter(|(name, _)| name != "after" && name != "limit");
    let all: Vec<(&str, &str)> =
        kept.map(|(n, v)| (n.as_str(), v.as_str())).chain([("limit", limit.as_str()), ("after", after)]).collect();
    serde_urlencoded::to_string(all).unwrap_or_default()
}

impl std::fmt::Debug for SqlResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlResponse")
            .field("content_type", &self.content_type)
            .field("paged", &self.paged)
            .field("next_after", &self.next_after)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

struct Connection {
    config: ConnectionConfig,
    pool: Arc<Pool>,
}

/// The SQL views of a node: the configured connections, the database-side checks a unit
/// passes when applied, and serving.
pub struct SqlViews {
    connections: BTreeMap<String, Connection>,
}

impl SqlViews {
    /// Builds the connection pools (no connection is opened until one is needed).
    pub fn new(config: &SqlConfig) -> Result<Self, SqlError> {
        let mut connections = BTreeMap::new();
        for (name, c) in &config.connections {
            connections.insert(name.clone(), Connection { config: c.clone(), pool: Arc::new(Pool::new(name, c)?) });
        }
        Ok(Self { connections })
    }

    fn connection(&self, name: &str) -> Result<&Connection, SqlError> {
        self.connections.get(name).ok_or_else(|| SqlError::UnknownConnection(name.to_owned()))
    }

    /// What the node calls when a unit is applied: `Ok(None)` for a unit that is not a SQL
    /// unit; otherwise the definition is read and checked ([`parse_unit`]), its connection
    /// must be configured, and every view is checked against the database ([`Self::check`]).
    /// An unreachable database is [`SqlError::Unavailable`] (the node decides whether to
    /// refuse the unit or accept it unchecked).
    pub async fn validate(&self, unit: &DataUnit) -> Result<Option<SqlUnit>, SqlError> {
        let Some(sql) = parse_unit(unit)? else { return Ok(None) };
        if !self.connections.contains_key(&sql.connection) {
            return Err(SqlError::Definition(vec![DefinitionError {
                pointer: "/metainformation/connection".into(),
                view: None,
                message: format!(
                    "`{}` is not a connection in the node's [sql.connections] configuration",
                    sql.connection
                ),
            }]));
        }
        self.check(&sql).await?;
        Ok(Some(sql))
    }

    /// Checks every view against its database: PREPAREs its statement with the declared
    /// parameter types inside a READ ONLY transaction (unknown tables, columns, functions
    /// and type mismatches are refused), and requires unique column names and the key
    /// column among them. Every problem is reported at once, naming its view.
    pub async fn check(&self, unit: &SqlUnit) -> Result<(), SqlError> {
        let connection = self.connection(&unit.connection)?;
        let client = connection.pool.get().await?;
        let unavailable = |e: tokio_postgres::Error| SqlError::Unavailable {
            connection: unit.connection.clone(),
            message: e.to_string(),
        };
        let begin = format!(
            "BEGIN TRANSACTION READ ONLY; SET LOCAL statement_timeout = {}",
            connection.config.statement_timeout_ms
        );
        client.client().batch_execute(&begin).await.map_err(unavailable)?;
        let mut errors = Vec::new();
        for (local, view) in &unit.views {
            let pointer = format!("/metainformation/sqlViews/{}", local.replace('~', "~0").replace('/', "~1"));
            let mut fail = |field: &str, message: String| {
                errors.push(DefinitionError {
                    pointer: format!("{pointer}/{field}"),
                    view: Some(local.clone()),
                    message,
                })
            };
            client.client().batch_execute("SAVEPOINT civitas_check").await.map_err(unavailable)?;
            match client.client().prepare_typed(&view.statement, &parameter_types(view)).await {
                Ok(statement) => {
                    let mut seen = std::collections::BTreeSet::new();
                    for c in statement.columns() {
                        if !seen.insert(c.name()) {
                            fail(
                                "query",
                                format!("the result has two columns named `{}`; give them aliases", c.name()),
                            );
                        }
                    }
                    if let Some(key) = &view.key_column
                        && !seen.contains(key.as_str())
                    {
                        let columns: Vec<_> = seen.iter().map(|c| format!("`{c}`")).collect();
                        fail("keyColumn", format!("`{key}` is not a column of the result ({})", columns.join(", ")));
                    }
                    // A view that asks to be replicated must be replicable: its tables,
                    // their primary keys and the watermark column are checked now.
                    if view.update != UpdateMode::FullCopy {
                        match crate::replica::coverage_of(client.client(), view).await {
                            Ok(_) => {}
                            Err(SqlError::Coverage { field, message, .. }) => fail(field, message),
                            Err(e) => {
                                fail("update", e.to_string());
                                let rollback = "ROLLBACK TO SAVEPOINT civitas_check";
                                client.client().batch_execute(rollback).await.map_err(unavailable)?;
                            }
                        }
                    }
                }
                Err(e) if e.as_db_error().is_some() => {
                    fail("query", format!("refused by the database: {}", db_message(&e)));
                    client.client().batch_execute("ROLLBACK TO SAVEPOINT civitas_check").await.map_err(unavailable)?;
                }
                Err(e) => return Err(unavailable(e)),
            }
        }
        client.client().batch_execute("ROLLBACK").await.map_err(unavailable)?;
        client.release();
        if errors.is_empty() { Ok(()) } else { Err(SqlError::Definition(errors)) }
    }

    /// Serves one view.
    ///
    /// `query_string` is the request's raw query (`district=3&limit=100`): every declared
    /// parameter exactly once, parsed by its type (else [`SqlError::BadParameter`] naming
    /// it), plus the optional `limit` (capped by `max_rows`) and `after` (views with a
    /// `keyColumn`). `accept` picks the [`Format`]. Values are bound as real parameters,
    /// never spliced into SQL. The query runs in one READ ONLY, REPEATABLE READ transaction
    /// with `SET LOCAL statement_timeout`; this returns once the first row (or the end, or
    /// an error) is known, and the rest streams from the database as the body is read.
    pub async fn serve(
        &self,
        view: &SqlView,
        query_string: &str,
        accept: Option<&str>,
    ) -> Result<SqlResponse, SqlError> {
        let format = Format::from_accept(accept)?;
        let connection = self.connection(&view.connection)?;
        let request = Request::parse(view, query_string, connection.config.max_rows)?;
        let timeout_ms = connection.config.statement_timeout_ms;
        let mut client = connection.pool.get().await?;
        let fail = |e: tokio_postgres::Error| classify(view, &view.connection, timeout_ms, e, request.after.is_some());

        // Statements are prepared outside the transaction (once per connection: they are
        // cached), so that the transaction's statements can be pipelined below.
        let inner = client.prepare(&view.statement, &parameter_types(view)).await.map_err(fail)?;
        let columns: Vec<(String, Type)> =
            inner.columns().iter().map(|c| (c.name().to_owned(), c.type_().clone())).collect();

        let n = view.parameters.len();
        let mut types = parameter_types(view);
        let mut params: Vec<&(dyn ToSql + Sync)> =
            request.values.iter().map(|v| v.as_ref() as &(dyn ToSql + Sync)).collect();
        let mut filter = String::new();
        let mut order = String::new();
        let key = match &view.key_column {
            Some(key) => {
                let Some(key_index) = columns.iter().position(|(name, _)| name == key) else {
                    return Err(SqlError::Database {
                        view: view.name.to_string(),
                        message: format!("the key column `{key}` is not in the result"),
                    });
                };
                let key_type = &columns[key_index].1;
                order = format!(" ORDER BY v.{} ASC", quote_ident(key));
                if let Some(after) = &request.after {
                    filter = format!(" WHERE v.{} > CAST(${} AS {})", quote_ident(key), n + 1, type_name(key_type));
                    types.push(Type::TEXT);
                    params.push(after);
                }
                Some((key, key_index))
            }
            None => None,
        };

        // LIMIT and OFFSET are bound too, so a view has at most two statement texts (with
        // and without `after`) in a connection's statement cache, whatever the page size.
        // A paged query reads one row past the page: whether it comes tells the body
        // whether a next page exists (the row itself is not sent).
        let limit = i64::try_from(request.limit).unwrap_or(i64::MAX);
        let offset = limit - 1;
        let fetch = if key.is_some() { limit.saturating_add(1) } else { limit };
        let page = types.len() + 1;
        types.push(Type::INT8);

        // On small pages, the cursor of the next page is also read up front, from the same
        // snapshot as the page (for the headers): the last key of this page, when at least
        // one row follows it.
        let cursor = match key {
            Some((key, _)) if request.limit <= HEADER_CURSOR_MAX_ROWS => {
                let sql = format!(
                    "SELECT v.{k}::text FROM ({inner}) AS v{filter}{order} LIMIT 2 OFFSET ${page}",
                    k = quote_ident(key),
                    inner = view.statement,
                );
                Some(client.prepare(&sql, &types).await.map_err(fail)?)
            }
            _ => None,
        };
        let select: Vec<String> = columns.iter().map(|(name, _)| format!("v.{}::text", quote_ident(name))).collect();
        let sql = format!("SELECT {} FROM ({}) AS v{filter}{order} LIMIT ${page}", select.join(", "), view.statement);
        let statement = client.prepare(&sql, &types).await.map_err(fail)?;
        let mut cursor_params = params.clone();
        cursor_params.push(&offset);
        params.push(&fetch);

        // The transaction's start, the cursor query and the data query go out together
        // (pipelined on the one connection, run by the database in that order): one round
        // trip instead of three before the first row, and the data query starts as soon as
        // the cursor query ends. The database answers in order, so the data query's rows
        // wait (bounded: tokio-postgres stops reading the socket) until the cursor is read.
        let begin = format!(
            "BEGIN TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL statement_timeout = {timeout_ms}"
        );
        let pg = client.client();
        let (began, next, rows) = futures::future::join3(
            pg.batch_execute(&begin),
            async {
                match &cursor {
                    Some(statement) => pg.query(statement, &cursor_params).await.map(Some),
                    None => Ok(None),
                }
            },
            pg.query_raw(&statement, params),
        )
        .await;
        // The first failure is the one to report: after it, the transaction is aborted and
        // what follows fails for that reason alone.
        began.map_err(fail)?;
        let next_after = match next.map_err(fail)? {
            Some(rows) if rows.len() == 2 => rows[0].try_get::<_, Option<String>>(0).map_err(fail)?,
            _ => None,
        };
        let mut rows = Box::pin(rows.map_err(fail)?);
        // Wait for the first row so that a timeout or error before any data is a status,
        // not a broken body.
        let first = match rows.next().await {
            Some(Ok(row)) => Some(row),
            Some(Err(e)) => return Err(fail(e)),
            None => None,
        };
        let body = Body {
            rows,
            ended: first.is_none(),
            first,
            page: key.map(|(_, index)| Page { key_index: index, left: request.limit, last: None, more: false }),
            encoder: Encoder::new(format, &columns),
            client: Some(client),
            started: false,
            yielded: false,
            done: false,
            view: view.name.to_string(),
            connection: view.connection.clone(),
            timeout_ms,
        };
        Ok(SqlResponse {
            content_type: format.content_type(),
            paged: key.is_some(),
            next_after,
            limit: request.limit,
            body: body.stream(),
        })
    }
}

/// Where a paged body is in its page.
struct Page {
    /// The key column's position in a row.
    key_index: usize,
    /// Rows of the page not yet sent.
    left: u64,
    /// The last row sent (its key is the next page's cursor).
    last: Option<Row>,
    /// A row follows the page.
    more: bool,
}

impl Page {
    /// The next page's `after`, once the body has ended.
    fn next_after(&self) -> Result<Option<String>, tokio_postgres::Error> {
        match &self.last {
            Some(row) if self.more => row.try_get::<_, Option<String>>(self.key_index),
            _ => Ok(None),
        }
    }
}

/// The body's state between chunks.
struct Body {
    rows: Pin<Box<RowStream>>,
    first: Option<Row>,
    /// `None` for a view without pages.
    page: Option<Page>,
    /// The row stream is exhausted (only the transaction's end is left).
    ended: bool,
    encoder: Encoder,
    client: Option<PooledClient>,
    started: bool,
    /// The stream has let the server write the first chunk (see [`Body::stream`]).
    yielded: bool,
    done: bool,
    view: String,
    connection: String,
    timeout_ms: u64,
}

impl Body {
    fn stream(self) -> BoxStream<'static, Result<Part, SqlError>> {
        futures::stream::unfold(self, |mut body| async move {
            // Once the first chunk is out, yield once: an HTTP server writes what it has
            // buffered when the body is not ready, and otherwise (hyper) gathers up to 16
            // chunks, about 256 KiB here, before its first write — the headers would wait
            // for them. After that, gathering chunks into one write is what it should do.
            if body.started && !body.yielded {
                body.yielded = true;
                tokio::task::yield_now().await;
            }
            if let Some(chunk) = body.next_chunk().await {
                return Some((chunk.map(Part::Data), body));
            }
            // After the data (and the commit): the cursor, once.
            let page = body.page.take()?;
            match page.next_after() {
                Ok(next_after) => Some((Ok(Part::End { next_after }), body)),
                Err(e) => Some((Err(body.fail(e)), body)),
            }
        })
        .boxed()
    }

    /// Encodes a row, or keeps back the one read past a full page.
    fn push(&mut self, row: Row, out: &mut BytesMut) -> Result<(), tokio_postgres::Error> {
        match &mut self.page {
            None => self.encoder.row(&row, out),
            Some(page) if page.left == 0 => {
                page.more = true;
                Ok(())
            }
            Some(page) => {
                page.left -= 1;
                self.encoder.row(&row, out)?;
                page.last = Some(row);
                Ok(())
            }
        }
    }

    async fn next_chunk(&mut self) -> Option<Result<Bytes, SqlError>> {
        if self.done {
            return None;
        }
        let mut out = BytesMut::with_capacity(CHUNK_BYTES + 1024);
        if !self.started {
            self.started = true;
            self.encoder.begin(&mut out);
        }
        if let Some(row) = self.first.take()
            && let Err(e) = self.push(row, &mut out)
        {
            return Some(Err(self.fail(e)));
        }
        while !self.ended {
            if out.len() >= CHUNK_BYTES {
                return Some(Ok(out.freeze()));
            }
            // Take what the database has ready; hand the chunk on when it has nothing more
            // ready, and only wait when there is nothing to hand on.
            let next = if out.is_empty() {
                self.rows.next().await
            } else {
                match self.rows.next().now_or_never() {
                    Some(next) => next,
                    None => return Some(Ok(out.freeze())),
                }
            };
            match next {
                Some(Ok(row)) => {
                    if let Err(e) = self.push(row, &mut out) {
                        return Some(Err(self.fail(e)));
                    }
                }
                Some(Err(e)) => return Some(Err(self.fail(e))),
                None => self.ended = true,
            }
        }
        self.encoder.end(&mut out);
        self.done = true;
        if let Some(client) = self.client.take() {
            match client.client().batch_execute("COMMIT").await {
                Ok(()) => client.release(),
                Err(e) => tracing::debug!(view = %self.view, error = %e, "commit after serving failed"),
            }
        }
        Some(Ok(out.freeze()))
    }

    fn fail(&mut self, e: tokio_postgres::Error) -> SqlError {
        self.done = true;
        // A failed body never ends as if complete: no cursor after it.
        self.page = None;
        // The connection is closed, not pooled: its transaction failed.
        self.client = None;
        let error = match e.code() {
            Some(code) if *code == SqlState::QUERY_CANCELED => {
                SqlError::Timeout { view: self.view.clone(), timeout_ms: self.timeout_ms }
            }
            _ if e.is_closed() || e.as_db_error().is_none() => {
                SqlError::Unavailable { connection: self.connection.clone(), message: e.to_string() }
            }
            _ => SqlError::Database { view: self.view.clone(), message: db_message(&e) },
        };
        tracing::warn!(view = %self.view, error = %error, "SQL view failed while streaming");
        error
    }
}

/// A parsed request: bound values in parameter order, the page size and cursor.
struct Request {
    values: Vec<Box<dyn ToSql + Sync + Send>>,
    limit: u64,
    after: Option<String>,
}

impl Request {
    fn parse(view: &SqlView, query_string: &str, max_rows: u64) -> Result<Request, SqlError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query_string.trim_start_matches('?'))
            .map_err(|e| SqlError::bad_parameter("query string", format!("does not parse: {e}")))?;
        let mut given: BTreeMap<&str, &str> = BTreeMap::new();
        for (name, value) in &pairs {
            if given.insert(name, value).is_some() {
                return Err(SqlError::bad_parameter(name, "is given more than once"));
            }
            let known = name == "limit" || name == "after" || view.parameters.iter().any(|p| &p.name == name);
            if !known {
                let declared: Vec<_> = view.parameters.iter().map(|p| format!("`{}`", p.name)).collect();
                let message = if declared.is_empty() {
                    format!("is not a parameter of view `{}`, which takes none (besides limit, after)", view.name)
                } else {
                    format!("is not a parameter of view `{}` (it takes {})", view.name, declared.join(", "))
                };
                return Err(SqlError::bad_parameter(name, message));
            }
        }
        let mut values = Vec::with_capacity(view.parameters.len());
        for p in &view.parameters {
            let Some(text) = given.get(p.name.as_str()) else {
                return Err(SqlError::bad_parameter(&p.name, format!("is required ({})", p.param_type)));
            };
            values.push(parse_value(&p.name, p.param_type, text)?);
        }
        let limit = match given.get("limit") {
            None => max_rows,
            Some(text) => match text.trim().parse::<u64>() {
                Ok(0) | Err(_) => return Err(SqlError::bad_parameter("limit", "must be a whole number of rows >= 1")),
                Ok(n) => n.min(max_rows),
            },
        }
        .max(1);
        let after = match given.get("after") {
            None => None,
            Some(_) if view.key_column.is_none() => {
                let message = format!("view `{}` declares no keyColumn, so it has no pages", view.name);
                return Err(SqlError::bad_parameter("after", message));
            }
            Some(text) if text.contains('\0') => return Err(SqlError::bad_parameter("after", "must not contain NUL")),
            Some(text) => Some((*text).to_owned()),
        };
        Ok(Request { values, limit, after })
    }
}

fn parse_value(name: &str, ty: ParamType, text: &str) -> Result<Box<dyn ToSql + Sync + Send>, SqlError> {
    let bad = |what: &str| SqlError::bad_parameter(name, format!("expected {what} ({ty}), found `{text}`"));
    let t = text.trim();
    Ok(match ty {
        ParamType::Int => Box::new(t.parse::<i32>().map_err(|_| bad("a 32-bit integer"))?),
        ParamType::Bigint => Box::new(t.parse::<i64>().map_err(|_| bad("a 64-bit integer"))?),
        ParamType::Float => {
            let v = t.parse::<f64>().map_err(|_| bad("a number"))?;
            if !v.is_finite() {
                return Err(bad("a finite number"));
            }
            Box::new(v)
        }
        // PostgreSQL's text cannot hold NUL.
        ParamType::Text if text.contains('\0') => return Err(bad("text without NUL characters")),
        ParamType::Text => Box::new(text.to_owned()),
        ParamType::Bool => Box::new(match t.to_ascii_lowercase().as_str() {
            "true" | "1" => true,
            "false" | "0" => false,
            _ => return Err(bad("true or false")),
        }),
        ParamType::Date => {
            Box::new(chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d").map_err(|_| bad("a date YYYY-MM-DD"))?)
        }
        ParamType::Timestamp => Box::new(
            chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f")
                .or_else(|_| chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f"))
                .map_err(|_| bad("a timestamp YYYY-MM-DDTHH:MM:SS"))?,
        ),
    })
}

fn parameter_types(view: &SqlView) -> Vec<Type> {
    view.parameters
        .iter()
        .map(|p| match p.param_type {
            ParamType::Int => Type::INT4,
            ParamType::Bigint => Type::INT8,
            ParamType::Float => Type::FLOAT8,
            ParamType::Text => Type::TEXT,
            ParamType::Bool => Type::BOOL,
            ParamType::Date => Type::DATE,
            ParamType::Timestamp => Type::TIMESTAMP,
        })
        .collect()
}

/// Maps a database error before streaming; `after_given` lets a bad cursor be a 400.
fn classify(
    view: &SqlView,
    connection: &str,
    timeout_ms: u64,
    e: tokio_postgres::Error,
    after_given: bool,
) -> SqlError {
    match e.code() {
        Some(code) if *code == SqlState::QUERY_CANCELED => {
            SqlError::Timeout { view: view.name.to_string(), timeout_ms }
        }
        Some(code)
            if after_given
                && [
                    SqlState::INVALID_TEXT_REPRESENTATION,
                    SqlState::INVALID_DATETIME_FORMAT,
                    SqlState::DATETIME_FIELD_OVERFLOW,
                    SqlState::NUMERIC_VALUE_OUT_OF_RANGE,
                ]
                .contains(code) =>
        {
            SqlError::bad_parameter("after", format!("is not a value of the key column: {}", db_message(&e)))
        }
        _ if e.is_closed() || e.as_db_error().is_none() => {
            SqlError::Unavailable { connection: connection.to_owned(), message: e.to_string() }
        }
        _ => SqlError::Database { view: view.name.to_string(), message: db_message(&e) },
    }
}

pub(crate) fn db_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

/// `"name"` with inner quotes doubled: a safe SQL identifier for any column name.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The SQL name of a column's type, schema-qualified outside `pg_catalog`.
fn type_name(ty: &Type) -> String {
    if ty.schema() == "pg_catalog" {
        quote_ident(ty.name())
    } else {
        format!("{}.{}", quote_ident(ty.schema()), quote_ident(ty.name()))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::definition::Parameter;

    fn view(key: bool) -> SqlView {
        SqlView {
            name: "urn:buildings:vienna:v".parse().unwrap(),
            connection: "city-db".into(),
            query: String::new(),
            parameters: vec![
                Parameter { name: "d".into(), param_type: ParamType::Int },
                Parameter { name: "n".into(), param_type: ParamType::Text },
            ],
            key_column: key.then(|| "id".to_owned()),
            statement: String::new(),
            update: crate::definition::UpdateMode::FullCopy,
        }
    }

    /// The node serves from multi-threaded handlers: the futures must be `Send`.
    #[allow(dead_code)]
    fn futures_are_send(views: &SqlViews, unit: &SqlUnit, doc: &DataUnit) {
        fn send<T: Send>(_: T) {}
        send(views.serve(unit.views.values().next().unwrap(), "", None));
        send(views.validate(doc));
        send(views.check(unit));
    }

    #[test]
    fn query_strings_are_decoded_before_typing() {
        let r = Request::parse(&view(true), "?d=%2B7&n=a%20b%26c&after=x%3Dy&limit=3", 10).unwrap();
        assert_eq!((r.values.len(), r.limit, r.after.as_deref()), (2, 3, Some("x=y")));
        assert_eq!(format!("{:?}", r.values[1]), format!("{:?}", "a b&c"));
    }

    #[test]
    fn the_next_query_keeps_the_parameters_and_moves_the_cursor() {
        let next = next_page_query("?d=3&after=x&n=R%C3%B6mer&limit=500", 10, "a&b 1");
        assert_eq!(next, "d=3&n=R%C3%B6mer&limit=10&after=a%26b+1");
        let back = Request::parse(&view(true), &next, 10).unwrap();
        assert_eq!(back.after.as_deref(), Some("a&b 1"));
    }

    proptest! {
        /// Any query string gives a request or a parameter error, never a panic; a request
        /// binds every parameter once and its limit is within 1..=max_rows.
        #[test]
        fn any_query_string_is_a_request_or_a_bad_parameter(
            query in "[a-z=&%0-9A-F+.;' -]{0,60}",
            max_rows in 1u64..100,
            key in any::<bool>(),
        ) {
            match Request::parse(&view(key), &query, max_rows) {
                Ok(r) => {
                    prop_assert_eq!(r.values.len(), 2);
                    prop_assert!((1..=max_rows).contains(&r.limit));
                    prop_assert!(key || r.after.is_none());
                }
                Err(e) => prop_assert_eq!(e.status(), 400),
            }
        }
    }
}
