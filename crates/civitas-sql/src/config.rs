//! The `[sql]` configuration: named database connections that SQL units refer to.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The `[sql]` section: every database a SQL unit may name, by connection reference.
///
/// ```toml
/// [sql.connections.city-db]
/// url = "postgres://civitas_reader@10.0.0.5:5432/city"
/// pool_size = 8
/// statement_timeout_ms = 5000
/// max_rows = 10000
/// connect_timeout_ms = 2000
/// ```
///
/// A unit names `metainformation.connection = "city-db"`; the URL (and any password in it)
/// stays in the node's configuration, never in a document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlConfig {
    /// Connections by reference name.
    #[serde(default)]
    pub connections: BTreeMap<String, ConnectionConfig>,
}

/// One database connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionConfig {
    /// A libpq-style URL or key/value string (`postgres://user@host:port/db`). Required.
    /// Use a role that may only read what the views cover: READ ONLY transactions are the
    /// second line of defence, not the only one.
    pub url: String,
    /// Most connections open at once to this database; a request waits for a free one
    /// (up to `connect_timeout_ms`). Default 4.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// `SET LOCAL statement_timeout` of every query, in milliseconds. Default 5000.
    #[serde(default = "default_statement_timeout_ms")]
    pub statement_timeout_ms: u64,
    /// Most rows one response returns; `?limit=` is capped by it. Default 10000.
    #[serde(default = "default_max_rows")]
    pub max_rows: u64,
    /// How long connecting (or waiting for a pooled connection) may take before the
    /// database counts as unavailable, in milliseconds. Default 2000.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
}

impl ConnectionConfig {
    /// A connection to `url` with every other field at its default.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            pool_size: default_pool_size(),
            statement_timeout_ms: default_statement_timeout_ms(),
            max_rows: default_max_rows(),
            connect_timeout_ms: default_connect_timeout_ms(),
        }
    }
}

fn default_pool_size() -> usize {
    4
}
fn default_statement_timeout_ms() -> u64 {
    5_000
}
fn default_max_rows() -> u64 {
    10_000
}
fn default_connect_timeout_ms() -> u64 {
    2_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_in_and_unknown_keys_are_errors() {
        let config: SqlConfig = toml::from_str(
            "[connections.city-db]\nurl = \"postgres://reader@db/city\"\nmax_rows = 50\n\n[connections.other]\nurl = \"host=db\"\n",
        )
        .unwrap();
        let city = &config.connections["city-db"];
        assert_eq!(city.max_rows, 50);
        assert_eq!(
            (city.pool_size, city.statement_timeout_ms, city.connect_timeout_ms),
            (4, 5_000, 2_000),
            "documented defaults"
        );
        assert_eq!(config.connections["other"], ConnectionConfig::new("host=db"));
        let err = toml::from_str::<SqlConfig>("[connections.a]\nurl = \"x\"\nmax_row = 5\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `max_row`"), "{err}");
        let err = toml::from_str::<SqlConfig>("[connection.a]\nurl = \"x\"\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `connection`"), "{err}");
    }
}
