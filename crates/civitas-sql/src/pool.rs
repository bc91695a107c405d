//! A small bounded pool of PostgreSQL connections per configured connection.
//!
//! Why not a pool crate: the needs are three lines of policy (bounded, connect timeout,
//! discard a connection that may be mid-transaction) and one fewer dependency is one fewer
//! thing to keep.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::types::Type;
use tokio_postgres::{Client, NoTls, Statement};

use crate::config::ConnectionConfig;
use crate::error::SqlError;

/// Connections to one database: at most `pool_size` open, idle ones kept for reuse.
pub(crate) struct Pool {
    name: String,
    config: tokio_postgres::Config,
    connect_timeout: Duration,
    idle: Mutex<Vec<Idle>>,
    permits: Arc<Semaphore>,
}

/// Prepared statements kept per connection, by SQL text, up to this many (then cleared):
/// a view's statements are prepared once per connection, not once per request.
const MAX_CACHED_STATEMENTS: usize = 256;

/// An idle connection and the statements prepared on it.
struct Idle {
    client: Client,
    statements: HashMap<String, Statement>,
}

impl Pool {
    pub(crate) fn new(name: &str, config: &ConnectionConfig) -> Result<Self, SqlError> {
        let mut pg: tokio_postgres::Config = config
            .url
            .parse()
            // The URL may hold a password: never echo it, only the reason.
            .map_err(|e| SqlError::Config(format!("connection `{name}`: the url does not parse: {e}")))?;
        let connect_timeout = Duration::from_millis(config.connect_timeout_ms.max(1));
        pg.connect_timeout(connect_timeout);
        pg.application_name("civitas");
        if config.pool_size == 0 {
            return Err(SqlError::Config(format!("connection `{name}`: pool_size must be at least 1")));
        }
        if config.max_rows == 0 {
            return Err(SqlError::Config(format!("connection `{name}`: max_rows must be at least 1")));
        }
        Ok(Self {
            name: name.to_owned(),
            config: pg,
            connect_timeout,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(config.pool_size)),
        })
    }

    /// A connection: an idle one, or a new one; waits for a free slot and connects within
    /// the connect timeout, else [`SqlError::Unavailable`].
    pub(crate) async fn get(self: &Arc<Self>) -> Result<PooledClient, SqlError> {
        let unavailable = |message: String| SqlError::Unavailable { connection: self.name.clone(), message };
        let deadline = tokio::time::Instant::now() + self.connect_timeout;
        let permit = tokio::time::timeout_at(deadline, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| unavailable(format!("no free connection within {:?}", self.connect_timeout)))?
            .map_err(|_| unavailable("the pool is closed".into()))?;
        let reused = {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            let mut found = None;
            while let Some(connection) = idle.pop() {
                if !connection.client.is_closed() {
                    found = Some(connection);
                    break;
                }
            }
            found
        };
        let (client, statements) = match reused {
            Some(Idle { client, statements }) => (client, statements),
            None => {
                let (client, connection) = tokio::time::timeout_at(deadline, self.config.connect(NoTls))
                    .await
                    .map_err(|_| unavailable(format!("no connection within {:?}", self.connect_timeout)))?
                    .map_err(|e| unavailable(e.to_string()))?;
                let name = self.name.clone();
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(connection = %name, error = %e, "postgres connection ended");
                    }
                });
                (client, HashMap::new())
            }
        };
        Ok(PooledClient { client: Some(client), statements, pool: self.clone(), _permit: permit, reusable: false })
    }
}

/// A connection on loan. It goes back to the pool only when marked reusable (its
/// transaction ended cleanly); otherwise it is closed, so no half-done transaction or
/// in-flight query is ever handed to the next request.
pub(crate) struct PooledClient {
    client: Option<Client>,
    statements: HashMap<String, Statement>,
    pool: Arc<Pool>,
    _permit: OwnedSemaphorePermit,
    reusable: bool,
}

impl PooledClient {
    pub(crate) fn client(&self) -> &Client {
        self.client.as_ref().expect("present until drop")
    }

    /// `sql` prepared with parameter `types`, from this connection's cache when it was
    /// prepared before (the same SQL text always comes with the same types here).
    pub(crate) async fn prepare(&mut self, sql: &str, types: &[Type]) -> Result<Statement, tokio_postgres::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client().prepare_typed(sql, types).await?;
        if self.statements.len() >= MAX_CACHED_STATEMENTS {
            self.statements.clear();
        }
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    /// The transaction ended cleanly: the connection may serve another request.
    pub(crate) fn release(mut self) {
        self.reusable = true;
    }
}

impl Drop for PooledClient {
    fn drop(&mut self) {
        if let Some(client) = self.client.take()
            && self.reusable
            && !client.is_closed()
        {
            let statements = std::mem::take(&mut self.statements);
            self.pool.idle.lock().unwrap_or_else(|e| e.into_inner()).push(Idle { client, statements });
        }
    }
}
