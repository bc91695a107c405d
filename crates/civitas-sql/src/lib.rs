//! SQL units: data units whose source is a PostgreSQL database (`metainformation.type =
//! "sql:postgresql"`), with views that are read-only queries their owner declares.
//!
//! What it is: the definition of such units ([`parse_unit`]: one read-only SELECT per view,
//! typed `$name` parameters), their check against the database when applied
//! ([`SqlViews::validate`]), and serving ([`SqlViews::serve`]): parameters parsed from the
//! query string by their declared type and bound (never spliced), one READ ONLY
//! transaction with a statement timeout per request, rows streamed from the database as
//! JSON, NDJSON or CSV, keyset pagination on the view's key column. See `docs/sql.md`.
//!
//! Replicas ([`replica`], issue 8): [`Replicator`] moves what a view covers (its base
//! tables, the columns it reads plus primary keys, a row filter; see
//! [`Replicator::coverage`]) into another city's PostgreSQL with the COPY protocol, from one
//! source snapshot into one target transaction, and keeps it fresh by the view's
//! [`UpdateMode`]: logical replication (publication, slot with an exported snapshot,
//! subscription; lag from LSNs), incremental copy by a watermark column, or full copy.
//!
//! What it is not: it knows no HTTP routing (the node maps [`SqlError::status`] to problem
//! documents and [`SqlResponse`] to a response), holds no password (connections are named
//! by reference and resolved from [`SqlConfig`]), and decides nothing about *when* to
//! replicate, refresh or fall back to the origin (the node does; this crate measures).
//!
//! Invariants:
//! - a [`SqlView`] holds exactly one SELECT that modifies nothing, re-written from its
//!   checked syntax tree: what is checked is what runs;
//! - request values reach the database only as bound parameters; clients never send SQL;
//! - every query runs in a READ ONLY transaction under `statement_timeout`; a connection
//!   whose transaction did not end cleanly is closed, never reused;
//! - no response is buffered whole: memory per response is one chunk plus one row;
//! - waiting for the database is bounded: connecting and waiting for a pooled connection
//!   by `connect_timeout_ms`, running by `statement_timeout_ms`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod config;
mod definition;
mod error;
mod format;
mod pool;
pub mod replica;
mod serve;

pub use config::{ConnectionConfig, SqlConfig};
pub use definition::{
    ParamType, Parameter, RESERVED_PARAMETERS, SOURCE_TYPE, SqlUnit, SqlView, UpdateMode, parse_unit,
};
pub use error::{DefinitionError, SqlError};
pub use format::Format;
pub use replica::{Column, CopyProgress, CoveredTable, Freshness, Replicator, SqlReplica};
pub use serve::{HEADER_CURSOR_MAX_ROWS, NEXT_AFTER_HEADER, Part, SqlResponse, SqlViews, next_page_query};
