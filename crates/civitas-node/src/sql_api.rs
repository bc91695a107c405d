//! SQL units at the node (see `docs/sql.md`): a `DataUnit` with `metainformation.type =
//! "sql:postgresql"` is checked against its database when applied (a bad query is a 422
//! naming the view and field, nothing stored), and its views are served at
//! `/data/{unit}/{view}?…` straight from the database — JSON, NDJSON or CSV streamed row by
//! row, keyset pages with a `Link: …; rel="next"` — behind the same read checks as the data
//! plane. The SQL units known here follow the catalog (a watch keeps the map current).

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use civitas_catalog::{Catalog, MAX_PAGE, Page, SearchQuery};
use civitas_model::{Document, FieldError, Kind, ValidationErrors};
use civitas_sql::{Part, SqlError, SqlUnit, SqlView, SqlViews};
use futures::StreamExt;
use http_body::Frame;
use http_body_util::StreamBody;
use tokio::sync::watch;

use crate::problem::Problem;

/// The SQL units of the catalog, by unit URN, and the connections to serve them.
#[derive(Clone)]
pub struct SqlRoutes {
    views: Arc<SqlViews>,
    units: Arc<ArcSwap<HashMap<String, Arc<SqlUnit>>>>,
    guard: Option<Arc<dyn civitas_dataplane::ReadGuard>>,
}

impl SqlRoutes {
    /// Routes over `views`; reads checked by `guard` when security is on.
    pub fn new(views: Arc<SqlViews>, guard: Option<Arc<dyn civitas_dataplane::ReadGuard>>) -> SqlRoutes {
        SqlRoutes { views, units: Arc::new(ArcSwap::from_pointee(HashMap::new())), guard }
    }

    /// The connections (for the checks at apply).
    pub fn views(&self) -> &SqlViews {
        &self.views
    }

    /// Keeps the map of SQL units in step with the catalog until `shutdown`.
    pub async fn follow(self, catalog: Catalog, mut shutdown: watch::Receiver<bool>) {
        loop {
            let revision = catalog.revision().await.unwrap_or(0);
            match self.reload(&catalog).await {
                Ok(n) => tracing::debug!(units = n, "SQL units loaded"),
                Err(e) => tracing::warn!(error = %e, "cannot load the SQL units"),
            }
            let Ok(stream) = catalog.watch(Some(revision + 1)).await else {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            };
            let mut stream = std::pin::pin!(stream);
            loop {
                tokio::select! {
                    () = crate::relocation::stopped(&mut shutdown) => return,
                    ev = stream.next() => match ev {
                        Some(Ok(ev)) if ev.kind == Kind::DataUnit => {
                            if let Err(e) = self.reload(&catalog).await {
                                tracing::warn!(error = %e, "cannot reload the SQL units");
                            }
                        }
                        Some(Ok(_)) => {}
                        // Lagged, compacted or ended: start again from a fresh scan.
                        Some(Err(_)) | None => break,
                    },
                }
            }
        }
    }

    async fn reload(&self, catalog: &Catalog) -> Result<usize, civitas_catalog::CatalogError> {
        let mut units = HashMap::new();
        let query = SearchQuery { kind: Some(Kind::DataUnit), ..SearchQuery::default() };
        let mut after = None;
        loop {
            let page = catalog.search(&query, &Page { after: after.take(), limit: Some(MAX_PAGE) }).await?;
            for item in page.items {
                if let Ok(Document::DataUnit(u)) = item.document()
                    && let Ok(Some(sql)) = civitas_sql::parse_unit(&u)
                {
                    units.insert(u.header.name.to_string(), Arc::new(sql));
                }
            }
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        let n = units.len();
        self.units.store(Arc::new(units));
        Ok(n)
    }

    /// The SQL unit and view a `/data/{unit}/{view}` request names, if it names one.
    fn route(&self, path: &str) -> Option<(Arc<SqlUnit>, String)> {
        let rest = path.strip_prefix("/data/")?;
        let (unit, view) = rest.split_once('/')?;
        let unit = civitas_dataplane::percent_decode(unit);
        let view = civitas_dataplane::percent_decode(view.trim_end_matches('/'));
        let units = self.units.load();
        let sql = units.get(unit.as_ref())?;
        let local = view.rsplit(':').next().unwrap_or(&view);
        sql.view(local)?;
        Some((Arc::clone(sql), local.to_string()))
    }

    /// Serves the request when it is for a SQL view; gives it back otherwise.
    pub async fn serve(&self, req: Request<Body>) -> Result<Response, Request<Body>> {
        if self.units.load().is_empty() {
            return Err(req);
        }
        let Some((unit, view_name)) = self.route(req.uri().path()) else { return Err(req) };
        let path = req.uri().path().to_string();
        let view = unit.view(&view_name).expect("routed to an existing view");
        if let Some(guard) = &self.guard
            && let Err(refusal) = guard.check(req.headers(), &unit.name, &view.name).await
        {
            return Ok(crate::security_api::refusal_response(refusal, &path));
        }
        let query = req.uri().query().unwrap_or("").to_string();
        let accept = req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).map(str::to_string);
        Ok(respond(&self.views, view, &path, &query, accept.as_deref()).await)
    }
}

/// Answers one request for a SQL view: its rows streamed in the format `accept` asks for;
/// when a page follows, `civitas-next-after` and a `Link: <{path}?…>; rel="next"` as
/// trailers (sent to clients that ask with `TE: trailers`) and, on pages of up to
/// [`civitas_sql::HEADER_CURSOR_MAX_ROWS`] rows, as headers too; a problem document (at
/// `path`) when the request or the database fails.
pub async fn respond(views: &SqlViews, view: &SqlView, path: &str, query: &str, accept: Option<&str>) -> Response {
    let answer = match views.serve(view, query, accept).await {
        Ok(answer) => answer,
        Err(e) => return sql_problem(&e).at(path).into_response(),
    };
    let mut head = HeaderMap::new();
    head.insert(header::CONTENT_TYPE, HeaderValue::from_static(answer.content_type));
    if answer.paged {
        head.insert(header::TRAILER, HeaderValue::from_static(TRAILERS));
    }
    let limit = answer.limit;
    if let Some(after) = answer.next_after.as_deref() {
        head.extend(cursor_fields(path, query, limit, after));
    }
    let (path, query) = (path.to_owned(), query.to_owned());
    let cursor = move |after: &str| cursor_fields(&path, &query, limit, after);
    let frames = answer.body.filter_map(move |part| {
        std::future::ready(match part {
            Ok(Part::Data(bytes)) => Some(Ok(Frame::data(bytes))),
            Ok(Part::End { next_after: Some(after) }) => Some(Ok(Frame::trailers(cursor(&after)))),
            Ok(Part::End { next_after: None }) => None,
            Err(e) => Some(Err(std::io::Error::other(e))),
        })
    });
    let mut resp = Response::new(Body::new(StreamBody::new(frames)));
    *resp.headers_mut() = head;
    resp
}

/// The fields announced in `Trailer` on a paged answer.
const TRAILERS: &str = "civitas-next-after, link";

/// `civitas-next-after` and `Link: <{path}?…>; rel="next"` for the page after `after` (a
/// value that cannot be a header is left out: the client can still page with the last
/// row's key).
fn cursor_fields(path: &str, query: &str, limit: u64, after: &str) -> HeaderMap {
    let mut fields = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(after) {
        fields.insert(civitas_sql::NEXT_AFTER_HEADER, value);
    }
    let next = civitas_sql::next_page_query(query, limit, after);
    if let Ok(link) = HeaderValue::from_str(&format!("<{path}?{next}>; rel=\"next\"")) {
        fields.insert(header::LINK, link);
    }
    fields
}

/// A SQL error as a problem document with its status (400, 406, 500, 503, 504).
fn sql_problem(e: &SqlError) -> Problem {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (slug, title) = match status.as_u16() {
        400 => ("bad-parameter", "Bad parameter"),
        406 => ("not-acceptable", "Not acceptable"),
        503 => ("database-unavailable", "Database unavailable"),
        504 => ("statement-timeout", "Statement timeout"),
        _ => ("database-error", "Database error"),
    };
    Problem::new(status, slug, title, e.to_string())
}

/// Checks the SQL units of a batch against their databases before anything is stored: a
/// definition error is a 422 with a pointer per problem (prefixed with the document's
/// index in an array batch); a database that cannot be reached is a 503 (nothing stored:
/// an unchecked query is never accepted).
pub async fn check_units(sql: &SqlViews, docs: &[Document], indexed: bool) -> Result<(), Problem> {
    let mut errors = Vec::new();
    for (i, doc) in docs.iter().enumerate() {
        let Document::DataUnit(unit) = doc else { continue };
        let prefix = if indexed { format!("/{i}") } else { String::new() };
        match sql.validate(unit).await {
            Ok(_) => {}
            Err(SqlError::Definition(found)) => errors.extend(
                found.into_iter().map(|d| FieldError { pointer: format!("{prefix}{}", d.pointer), detail: d.message }),
            ),
            Err(e) => return Err(sql_problem(&e)),
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(Problem::invalid(ValidationErrors(errors))) }
}
