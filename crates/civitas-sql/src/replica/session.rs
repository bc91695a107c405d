//! A minimal client for a PostgreSQL *replication* session (`replication=database`), which
//! tokio-postgres cannot open: startup, authentication (trust, cleartext, MD5,
//! SCRAM-SHA-256; no TLS, like the rest of the crate), and simple queries. Used for one
//! command: `CREATE_REPLICATION_SLOT … LOGICAL pgoutput (SNAPSHOT 'export')`, whose
//! exported snapshot lives exactly as long as the session stays idle and open.

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{ChannelBinding, SCRAM_SHA_256, ScramSha256};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_postgres::config::Host;

/// An open replication session.
pub(crate) struct ReplicationSession {
    stream: TcpStream,
    read: BytesMut,
}

/// The answer of `CREATE_REPLICATION_SLOT … (SNAPSHOT 'export')`.
#[derive(Debug, Clone)]
pub(crate) struct CreatedSlot {
    /// The LSN from which the slot streams changes (`consistent_point`).
    pub(crate) consistent_point: String,
    /// The exported snapshot's name, for `SET TRANSACTION SNAPSHOT`.
    pub(crate) snapshot: String,
}

/// One backend message: its type byte and body.
struct Message {
    tag: u8,
    body: Bytes,
}

impl ReplicationSession {
    /// Connects to the first TCP host of `config` and authenticates, within `timeout`.
    /// Errors never contain the password.
    pub(crate) async fn connect(config: &tokio_postgres::Config, timeout: Duration) -> Result<Self, String> {
        tokio::time::timeout(timeout, Self::connect_inner(config))
            .await
            .map_err(|_| format!("no replication session within {timeout:?}"))?
    }

    async fn connect_inner(config: &tokio_postgres::Config) -> Result<Self, String> {
        let host = config
            .get_hosts()
            .iter()
            .find_map(|h| match h {
                Host::Tcp(host) => Some(host.clone()),
                #[allow(unreachable_patterns)]
                _ => None,
            })
            .ok_or("the replication session needs a TCP host in the connection url")?;
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let user = config.get_user().ok_or("the connection url names no user")?.to_owned();
        let database = config.get_dbname().unwrap_or(&user).to_owned();
        let stream =
            TcpStream::connect((host.as_str(), port)).await.map_err(|e| format!("connecting to {host}:{port}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let mut session = Self { stream, read: BytesMut::with_capacity(8192) };
        let mut buf = BytesMut::new();
        let params = [
            ("user", user.as_str()),
            ("database", database.as_str()),
            ("replication", "database"),
            ("application_name", "civitas-replica"),
        ];
        frontend::startup_message(params, &mut buf).map_err(|e| e.to_string())?;
        session.write(&buf).await?;
        session.authenticate(&user, config.get_password()).await?;
        // ParameterStatus and BackendKeyData until ReadyForQuery.
        loop {
            let message = session.next().await?;
            match message.tag {
                b'Z' => return Ok(session),
                b'E' => return Err(error_text(message.body)),
                _ => {}
            }
        }
    }

    async fn authenticate(&mut self, user: &str, password: Option<&[u8]>) -> Result<(), String> {
        let need_password = || "the server asks for a password and the connection url has none".to_owned();
        let mut scram: Option<ScramSha256> = None;
        loop {
            let message = self.next().await?;
            if message.tag == b'E' {
                return Err(error_text(message.body));
            }
            if message.tag != b'R' {
                return Err(format!("unexpected message `{}` during authentication", message.tag as char));
            }
            let mut body = message.body;
            if body.len() < 4 {
                return Err("a truncated authentication message".into());
            }
            let mut buf = BytesMut::new();
            match body.get_i32() {
                0 => return Ok(()),
                3 => {
                    frontend::password_message(password.ok_or_else(need_password)?, &mut buf)
                        .map_err(|e| e.to_string())?;
                }
                5 => {
                    if body.len() < 4 {
                        return Err("a truncated MD5 salt".into());
                    }
                    let salt = [body[0], body[1], body[2], body[3]];
                    let hash = md5_hash(user.as_bytes(), password.ok_or_else(need_password)?, salt);
                    frontend::password_message(hash.as_bytes(), &mut buf).map_err(|e| e.to_string())?;
                }
                10 => {
                    let mechanisms: Vec<&[u8]> = body.split(|b| *b == 0).filter(|m| !m.is_empty()).collect();
                    if !mechanisms.contains(&SCRAM_SHA_256.as_bytes()) {
                        return Err("the server offers no SASL mechanism this client supports (SCRAM-SHA-256)".into());
                    }
                    let state = ScramSha256::new(password.ok_or_else(need_password)?, ChannelBinding::unsupported());
                    frontend::sasl_initial_response(SCRAM_SHA_256, state.message(), &mut buf)
                        .map_err(|e| e.to_string())?;
                    scram = Some(state);
                }
                11 => {
                    let state = scram.as_mut().ok_or("SASL continue without SASL start")?;
                    state.update(&body).map_err(|e| format!("SCRAM: {e}"))?;
                    frontend::sasl_response(state.message(), &mut buf).map_err(|e| e.to_string())?;
                }
                12 => {
                    let state = scram.as_mut().ok_or("SASL final without SASL start")?;
                    state.finish(&body).map_err(|e| format!("SCRAM: {e}"))?;
                    continue;
                }
                code => {
                    return Err(format!(
                        "unsupported authentication method (code {code}): use trust, password, md5 or scram-sha-256"
                    ));
                }
            }
            self.write(&buf).await?;
        }
    }

    /// Creates a logical slot with the `pgoutput` plugin and exports its snapshot.
    pub(crate) async fn create_slot_exporting_snapshot(&mut self, slot: &str) -> Result<CreatedSlot, String> {
        let rows = self
            .simple_query(&format!("CREATE_REPLICATION_SLOT \"{slot}\" LOGICAL pgoutput (SNAPSHOT 'export')"))
            .await?;
        // Columns: slot_name, consistent_point, snapshot_name, output_plugin.
        let row = rows.first().ok_or("CREATE_REPLICATION_SLOT returned no row")?;
        match (row.get(1), row.get(2)) {
            (Some(Some(point)), Some(Some(snapshot))) => {
                Ok(CreatedSlot { consistent_point: point.clone(), snapshot: snapshot.clone() })
            }
            _ => Err("CREATE_REPLICATION_SLOT returned no snapshot".into()),
        }
    }

    /// Runs one simple query; returns its rows as text (`None` for NULL).
    async fn simple_query(&mut self, query: &str) -> Result<Vec<Vec<Option<String>>>, String> {
        let mut buf = BytesMut::new();
        frontend::query(query, &mut buf).map_err(|e| e.to_string())?;
        self.write(&buf).await?;
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            let message = self.next().await?;
            match message.tag {
                b'D' => rows.push(data_row(message.body)?),
                b'E' => error = Some(error_text(message.body)),
                b'Z' => break,
                _ => {}
            }
        }
        match error {
            Some(e) => Err(e),
            None => Ok(rows),
        }
    }

    /// Ends the session (and so the exported snapshot) politely.
    pub(crate) async fn terminate(mut self) {
        let mut buf = BytesMut::new();
        frontend::terminate(&mut buf);
        let _ = self.write(&buf).await;
        let _ = self.stream.shutdown().await;
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream.write_all(bytes).await.map_err(|e| format!("replication session: {e}"))
    }

    async fn next(&mut self) -> Result<Message, String> {
        loop {
            if self.read.len() >= 5 {
                let len = i32::from_be_bytes([self.read[1], self.read[2], self.read[3], self.read[4]]);
                let len = usize::try_from(len).ok().filter(|l| *l >= 4).ok_or("a malformed message length")?;
                if self.read.len() > len {
                    let mut frame = self.read.split_to(len + 1);
                    let tag = frame.get_u8();
                    frame.advance(4);
                    return Ok(Message { tag, body: frame.freeze() });
                }
                self.read.reserve(len + 1 - self.read.len());
            }
            let n = self.stream.read_buf(&mut self.read).await.map_err(|e| format!("replication session: {e}"))?;
            if n == 0 {
                return Err("the server closed the replication session".into());
            }
        }
    }
}

/// The text of an ErrorResponse: message and SQLSTATE.
fn error_text(body: Bytes) -> String {
    let (mut message, mut code) = (String::new(), String::new());
    for field in body.split(|b| *b == 0) {
        if let Some((&kind, value)) = field.split_first() {
            let value = String::from_utf8_lossy(value).into_owned();
            match kind {
                b'M' => message = value,
                b'C' => code = value,
                _ => {}
            }
        }
    }
    format!("{message} (SQLSTATE {code})")
}

/// A DataRow's fields as text.
fn data_row(mut body: Bytes) -> Result<Vec<Option<String>>, String> {
    let truncated = || "a truncated data row".to_owned();
    if body.len() < 2 {
        return Err(truncated());
    }
    let count = body.get_i16();
    let mut fields = Vec::new();
    for _ in 0..count {
        if body.len() < 4 {
            return Err(truncated());
        }
        let len = body.get_i32();
        if len < 0 {
            fields.push(None);
            continue;
        }
        let len = len as usize;
        if body.len() < len {
            return Err(truncated());
        }
        fields.push(Some(String::from_utf8_lossy(&body.split_to(len)).into_owned()));
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use bytes::BufMut;

    use super::*;

    #[test]
    fn rows_and_errors_parse() {
        let mut body = BytesMut::new();
        body.put_i16(3);
        body.put_i32(2);
        body.put_slice(b"ab");
        body.put_i32(-1);
        body.put_i32(0);
        assert_eq!(data_row(body.freeze()).unwrap(), [Some("ab".into()), None, Some(String::new())]);
        let mut body = BytesMut::new();
        body.put_i16(2);
        body.put_i32(9);
        assert!(data_row(body.freeze()).is_err(), "truncated");
        let error = Bytes::from_static(b"SERROR\0C42710\0Mreplication slot exists\0\0");
        assert_eq!(error_text(error), "replication slot exists (SQLSTATE 42710)");
    }
}
