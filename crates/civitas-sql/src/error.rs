//! Errors at the crate's public boundary.

use std::fmt;

/// One problem in a SQL unit's definition, located by a JSON pointer into the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefinitionError {
    /// JSON pointer (RFC 6901) into the unit, e.g. `/metainformation/sqlViews/by-district/query`.
    pub pointer: String,
    /// The view's local name, when the problem belongs to one view.
    pub view: Option<String>,
    /// What is wrong, for a person.
    pub message: String,
}

impl fmt::Display for DefinitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.view {
            Some(view) => write!(f, "view `{view}`: {}: {}", self.pointer, self.message),
            None => write!(f, "{}: {}", self.pointer, self.message),
        }
    }
}

/// Everything that can go wrong defining or serving a SQL view.
///
/// [`SqlError::status`] is the HTTP status the node should answer with; the problem
/// document itself is written by the node.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The unit's SQL definition is invalid (when applied): every problem found.
    #[error("{} error(s) in the SQL unit: {}", .0.len(), join(.0))]
    Definition(Vec<DefinitionError>),
    /// The configuration is invalid (a connection URL that does not parse…).
    #[error("sql configuration: {0}")]
    Config(String),
    /// A unit names a connection the configuration does not have.
    #[error("unknown connection `{0}`: not in the [sql.connections] configuration")]
    UnknownConnection(String),
    /// A request parameter is missing, repeated, unknown or not of its declared type (400).
    #[error("parameter `{name}`: {message}")]
    BadParameter {
        /// The query-string parameter's name (`district`, `after`, `limit`…).
        name: String,
        /// What is wrong with it.
        message: String,
    },
    /// None of the `Accept`ed media types is served (406).
    #[error("not acceptable: `{0}`; SQL views serve application/json, application/x-ndjson and text/csv")]
    NotAcceptable(String),
    /// The database cannot be reached, or no pooled connection became free, in time (503).
    #[error("database `{connection}` unavailable: {message}")]
    Unavailable {
        /// The connection reference.
        connection: String,
        /// Why.
        message: String,
    },
    /// The query ran past the connection's `statement_timeout_ms` (504).
    #[error("view `{view}`: the query ran longer than the statement timeout of {timeout_ms} ms")]
    Timeout {
        /// The view's full name.
        view: String,
        /// The timeout that fired.
        timeout_ms: u64,
    },
    /// The database refused or failed the query (500; at validation, a definition error).
    #[error("view `{view}`: database error: {message}")]
    Database {
        /// The view's full name.
        view: String,
        /// The database's message (with its SQLSTATE).
        message: String,
    },
    /// The view cannot be replicated as written (it reads a database view, a table
    /// without a primary key…) (422).
    #[error("view `{view}` cannot be replicated: {message}")]
    Coverage {
        /// The view's full name.
        view: String,
        /// The field of the view's `sqlViews` entry at fault: `update` or `watermarkColumn`.
        field: &'static str,
        /// Why, naming the table or column.
        message: String,
    },
    /// The replica database already holds a table of that name that belongs to something
    /// else (409).
    #[error("replica table `{table}` at `{connection}`: {message}")]
    ReplicaConflict {
        /// The connection reference of the replica database.
        connection: String,
        /// The schema-qualified table.
        table: String,
        /// What holds it and what to do.
        message: String,
    },
    /// Copying, streaming or refreshing a replica failed in a database (500).
    #[error("replica `{replica}`: {message}")]
    Replica {
        /// The replica id.
        replica: String,
        /// What failed, naming the table, setting or statement (with the SQLSTATE).
        message: String,
    },
}

impl SqlError {
    /// The HTTP status this error should be answered with.
    pub fn status(&self) -> u16 {
        match self {
            SqlError::Definition(_) | SqlError::BadParameter { .. } => 400,
            SqlError::NotAcceptable(_) => 406,
            SqlError::Unavailable { .. } | SqlError::UnknownConnection(_) => 503,
            SqlError::Timeout { .. } => 504,
            SqlError::Coverage { .. } => 422,
            SqlError::ReplicaConflict { .. } => 409,
            SqlError::Config(_) | SqlError::Database { .. } | SqlError::Replica { .. } => 500,
        }
    }

    pub(crate) fn bad_parameter(name: &str, message: impl Into<String>) -> Self {
        SqlError::BadParameter { name: name.to_owned(), message: message.into() }
    }
}

fn join(errors: &[DefinitionError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}
