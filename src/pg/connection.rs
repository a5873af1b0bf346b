//! One connection: TLS negotiation, startup and password, then the simple and extended query
//! protocols over the session, statements, portals and cursors this connection holds.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::BytesMut;
use futures::StreamExt;
use pgwire::messages::PgWireBackendMessage as B;
use pgwire::messages::PgWireFrontendMessage as F;
use pgwire::messages::data::{NoData, ParameterDescription};
use pgwire::messages::extendedquery::{
    BindComplete, CloseComplete, ParseComplete, PortalSuspended,
};
use pgwire::messages::response::{
    CommandComplete, EmptyQueryResponse, NoticeResponse, ReadyForQuery, TransactionStatus,
};
use pgwire::messages::startup::{Authentication, BackendKeyData, ParameterStatus, SecretKey};
use serde_json::Value;
use sluice_schemas::api::{NameDefaults, Operation, QueryParams, QueryRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::debug;

use super::catalog::{self, Route};
use super::errors::{PgError, state};
use super::portal::{self, Field, PgEncoder, Rows, Stop};
use super::session::{Block, Session};
use super::statement::{self, Command};
use super::types::TextStyle;
use super::wire::{ReadError, Stream, Wire};
use super::{BackendSlot, PgDoor, PrincipalSlot, STARTUP_TIMEOUT};
use crate::governance::{Client, Door, Principal};
use crate::query::{RowCap, new_query_id};

const SSL_REQUEST: i32 = 80_877_103;
const GSS_REQUEST: i32 = 80_877_104;
const CANCEL_REQUEST: i32 = 80_877_102;
/// Prepared statements and portals one connection may hold (pools prepare per statement).
const MAX_STATEMENTS: usize = 4_096;
/// Open cursors one connection may hold.
const MAX_CURSORS: usize = 256;

/// Serves one accepted connection to its end.
pub async fn serve(
    door: Arc<PgDoor>,
    stream: TcpStream,
    addr: SocketAddr,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
) {
    let started = tokio::time::timeout(STARTUP_TIMEOUT, start(&door, stream, addr, acceptor)).await;
    let Ok(Some(mut conn)) = started else {
        return;
    };
    conn.run().await;
}

/// The first packet, before any TLS: SSL or GSS requests are answered; a cancel request is
/// carried out; anything else is the startup packet's first bytes.
async fn negotiate(
    door: &Arc<PgDoor>,
    mut stream: TcpStream,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
) -> Option<(Stream, BytesMut)> {
    loop {
        let mut first = [0_u8; 1];
        let n = stream.peek(&mut first).await.ok()?;
        if n == 0 {
            return None;
        }
        if first[0] == 0x16 {
            // Direct TLS (sslnegotiation=direct): ALPN `postgresql` is required.
            let tls = acceptor?.accept(stream).await.ok()?;
            if tls.get_ref().1.alpn_protocol() != Some(super::ALPN) {
                return None;
            }
            return Some((Stream::Tls(Box::new(tls)), BytesMut::new()));
        }
        let mut head = [0_u8; 8];
        stream.read_exact(&mut head).await.ok()?;
        let len = i32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let code = i32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        match (len, code) {
            (8, SSL_REQUEST) => {
                let Some(acceptor) = acceptor.clone() else {
                    stream.write_all(b"N").await.ok()?;
                    continue;
                };
                stream.write_all(b"S").await.ok()?;
                let tls = acceptor.accept(stream).await.ok()?;
                return Some((Stream::Tls(Box::new(tls)), BytesMut::new()));
            }
            (8, GSS_REQUEST) => {
                stream.write_all(b"N").await.ok()?;
            }
            (16, CANCEL_REQUEST) => {
                let mut rest = [0_u8; 8];
                stream.read_exact(&mut rest).await.ok()?;
                let pid = i32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
                door.cancel(pid, &rest[4..]);
                return None;
            }
            _ => {
                return Some((Stream::Plain(stream), BytesMut::from(&head[..])));
            }
        }
    }
}

/// Startup and authentication: the connection ready for queries, or `None` after telling the
/// client why not.
async fn start(
    door: &Arc<PgDoor>,
    stream: TcpStream,
    addr: SocketAddr,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
) -> Option<Conn> {
    let (io, read) = negotiate(door, stream, acceptor).await?;
    let limit = usize::try_from(door.service.limits().max_request_bytes).unwrap_or(usize::MAX);
    let mut wire = Wire::new(io, read, limit);
    let startup = match wire.next().await {
        Ok(F::Startup(s)) => s,
        Ok(F::CancelRequest(c)) => {
            if let Some(pid) = Some(c.pid) {
                door.cancel(pid, &c.secret_key.to_bytes());
            }
            return None;
        }
        Ok(_) | Err(_) => return None,
    };
    wire.started();
    if startup.protocol_number_major != 3 {
        fatal(
            wire,
            PgError::fatal(state::PROTOCOL_VIOLATION, "unsupported frontend protocol"),
        )
        .await;
        return None;
    }
    // Passwords are API keys: never asked for in the clear off loopback.
    if !wire.is_tls() && !addr.ip().is_loopback() {
        let why = if door.config.tls {
            "SSL is required: connect with sslmode=require (or verify-full)"
        } else {
            "this server accepts unencrypted connections only on loopback"
        };
        fatal(wire, PgError::fatal(state::INVALID_AUTHORIZATION, why)).await;
        return None;
    }
    let params = startup.parameters;
    let user = params
        .get("user")
        .cloned()
        .unwrap_or_else(|| "sluice".into());
    let database = params
        .get("database")
        .cloned()
        .unwrap_or_else(|| user.clone());
    let client = Client {
        door: Door::Pg,
        addr: Some(addr.ip().to_string()),
        user_agent: Some(
            params
                .get("application_name")
                .filter(|a| !a.is_empty())
                .map_or_else(|| "pg".to_owned(), |a| a.chars().take(256).collect()),
        ),
        certificate: wire.peer_certificate().map(Arc::new),
    };
    let principal = if door.service.authenticates() {
        wire.send(&B::Authentication(Authentication::CleartextPassword));
        wire.flush().await.ok()?;
        let password = match wire.next().await {
            Ok(F::PasswordMessageFamily(p)) => p.into_password().ok()?.password,
            _ => return None,
        };
        let secret = Some(password.as_str()).filter(|p| !p.is_empty());
        match door.service.authenticate(secret, &client).await {
            Ok(p) => p,
            Err(e) if e.code == crate::error::Code::MetadataUnavailable => {
                fatal(
                    wire,
                    PgError::fatal("58030", "the key store cannot be reached; try again"),
                )
                .await;
                return None;
            }
            Err(_) => {
                // Which part was wrong is not said.
                let why = format!("password authentication failed for user \"{user}\"");
                fatal(wire, PgError::fatal(state::INVALID_PASSWORD, why)).await;
                return None;
            }
        }
    } else {
        Principal::Anonymous
    };
    let who = principal.key_id().unwrap_or("anonymous").to_owned();
    let Some(slot) = door.admit(&who) else {
        let why = format!(
            "too many connections for this API key (pg.max_connections_per_principal = {})",
            door.config.max_connections_per_principal
        );
        fatal(wire, PgError::fatal(state::TOO_MANY_CONNECTIONS, why)).await;
        return None;
    };
    let backend = door.register()?;
    let version = format!(
        "{} (Sluice {})",
        super::SERVER_VERSION,
        env!("CARGO_PKG_VERSION")
    );
    let session = Session::new(&user, &version, &params);
    wire.send(&B::Authentication(Authentication::Ok));
    for (k, v) in session.reported() {
        wire.send(&B::ParameterStatus(ParameterStatus::new(k, v)));
    }
    wire.send(&B::BackendKeyData(BackendKeyData::new(
        backend.pid,
        SecretKey::I32(i32::from_be_bytes(backend.running.secret)),
    )));
    wire.send(&B::ReadyForQuery(ReadyForQuery::new(
        TransactionStatus::Idle,
    )));
    wire.flush().await.ok()?;
    Some(Conn {
        door: Arc::clone(door),
        wire,
        principal,
        client,
        user,
        database,
        session,
        backend,
        _slot: slot,
        statements: HashMap::new(),
        portals: HashMap::new(),
        cursors: HashMap::new(),
        skipping: false,
        pending_set_config: None,
    })
}

async fn fatal(mut wire: Wire, e: PgError) {
    wire.send(&e.message());
    wire.close().await;
}

/// A prepared statement.
#[derive(Clone)]
struct Prepared {
    command: Command,
    /// Parameter types the client gave (0: unknown).
    given: Vec<u32>,
    /// Parameter types and result columns, once described.
    described: Option<(Vec<u32>, Option<Vec<Field>>)>,
}

/// A bound statement.
struct Portal {
    statement: Prepared,
    params: Vec<Value>,
    formats: Vec<i16>,
    state: Running,
}

enum Running {
    Ready,
    Rows(Box<Rows>),
    Done,
}

/// An open cursor.
struct Cursor {
    rows: Box<Rows>,
    hold: bool,
    /// The result formats it was declared with (`BINARY`: all binary).
    formats: Vec<i16>,
}

/// One authenticated connection.
struct Conn {
    door: Arc<PgDoor>,
    wire: Wire,
    principal: Principal,
    client: Client,
    user: String,
    database: String,
    session: Session,
    backend: BackendSlot,
    _slot: PrincipalSlot,
    statements: HashMap<String, Prepared>,
    portals: HashMap<String, Portal>,
    cursors: HashMap<String, Cursor>,
    /// After an error in the extended protocol: messages are dropped until `Sync`.
    skipping: bool,
    /// `set_config` calls of the catalog statement being run.
    pending_set_config: Option<SetConfigCalls>,
}

/// `set_config(name, value)` calls a catalog statement made, for the session after it.
type SetConfigCalls = Arc<Mutex<Vec<(String, String)>>>;

/// What a statement answered.
enum Answer {
    /// Rows to send, then `tag n`.
    Rows(Box<Rows>),
    /// A tag alone.
    Tag(String),
}

fn tag_of(command: &Command, n: u64) -> String {
    match command {
        Command::Fetch { .. } => format!("FETCH {n}"),
        Command::Copy { .. } => format!("COPY {n}"),
        Command::Show(_) => "SHOW".into(),
        _ => format!("SELECT {n}"),
    }
}

impl Conn {
    /// Writes up to `max` rows of `rows`, the query behind them cancellable meanwhile.
    async fn write_rows(&mut self, rows: &mut Rows, max: u64) -> Result<bool, Stop> {
        if let Some(id) = &rows.query_id {
            self.backend.running(&self.principal, id);
        }
        let result = rows.write(&mut self.wire, max).await;
        self.backend.clear();
        result
    }

    fn status(&self) -> TransactionStatus {
        match self.session.block {
            Block::Idle => TransactionStatus::Idle,
            Block::Open => TransactionStatus::Transaction,
            Block::Failed => TransactionStatus::Error,
        }
    }

    fn ready(&mut self) {
        let status = self.status();
        self.wire
            .send(&B::ReadyForQuery(ReadyForQuery::new(status)));
    }

    fn notice(&mut self, severity: &str, message: &str, code: &str) {
        self.wire.send(&B::NoticeResponse(NoticeResponse::new(vec![
            (b'S', severity.to_owned()),
            (b'V', severity.to_owned()),
            (b'C', code.to_owned()),
            (b'M', message.to_owned()),
        ])));
    }

    fn error(&mut self, e: &PgError) {
        self.wire.send(&e.message());
        self.session.fail();
    }

    async fn run(&mut self) {
        let idle = std::time::Duration::from_millis(self.door.config.idle_timeout_ms);
        loop {
            let next = if self.wire.has_buffered() {
                self.wire.next().await
            } else {
                match tokio::time::timeout(idle, self.wire.next()).await {
                    Ok(m) => m,
                    Err(_) => {
                        let e = PgError::fatal(
                            state::IDLE_SESSION_TIMEOUT,
                            "terminating connection due to idle-session timeout",
                        );
                        self.wire.send(&e.message());
                        let _ = self.wire.flush().await;
                        return;
                    }
                }
            };
            let message = match next {
                Ok(m) => m,
                Err(ReadError::Closed) => return,
                Err(ReadError::TooLarge(n)) => {
                    let e = PgError::fatal(
                        state::PROGRAM_LIMIT_EXCEEDED,
                        format!(
                            "message of {n} bytes is larger than limits.max_request_bytes ({})",
                            self.door.service.limits().max_request_bytes
                        ),
                    );
                    self.wire.send(&e.message());
                    let _ = self.wire.flush().await;
                    return;
                }
                Err(ReadError::Malformed(why)) => {
                    debug!(why, "pg: malformed message.");
                    let e = PgError::fatal(state::PROTOCOL_VIOLATION, "invalid message format");
                    self.wire.send(&e.message());
                    let _ = self.wire.flush().await;
                    return;
                }
            };
            let keep = self.dispatch(message).await;
            if !keep {
                return;
            }
        }
    }

    /// One message; false when the connection ends.
    async fn dispatch(&mut self, message: F) -> bool {
        let flush = matches!(message, F::Flush(_) | F::Sync(_));
        if self.skipping && !matches!(message, F::Sync(_) | F::Terminate(_)) {
            if flush {
                return self.wire.flush().await.is_ok();
            }
            return true;
        }
        let result = match message {
            F::Terminate(_) => return false,
            F::Query(q) => {
                self.simple(&q.query).await;
                self.ready();
                Ok(())
            }
            F::Parse(p) => self.parse(p.name, &p.query, p.type_oids),
            F::Bind(b) => self.bind(b),
            F::Describe(d) => self.describe(d.target_type, d.name).await,
            F::Execute(e) => self.execute(e.name, e.max_rows).await,
            F::Close(c) => {
                let name = c.name.unwrap_or_default();
                if c.target_type == b'S' {
                    self.statements.remove(&name);
                } else if self.portals.remove(&name).is_none() {
                    // A cursor is a portal too.
                    self.cursors.remove(&name);
                }
                self.wire.send(&B::CloseComplete(CloseComplete::new()));
                Ok(())
            }
            F::Sync(_) => {
                self.skipping = false;
                if self.session.block == Block::Idle {
                    // The implicit transaction ends: its portals go with it.
                    self.portals.clear();
                }
                self.ready();
                Ok(())
            }
            F::Flush(_) => Ok(()),
            F::CopyData(_) | F::CopyDone(_) | F::CopyFail(_) => Ok(()),
            _ => Err(PgError::new(
                state::PROTOCOL_VIOLATION,
                "unexpected message",
            )),
        };
        let failed = result.is_err();
        if let Err(e) = result {
            if e.fatal {
                self.wire.send(&e.message());
                let _ = self.wire.flush().await;
                return false;
            }
            self.error(&e);
            self.skipping = true;
        }
        // Answers go out when the client waits for them: at Sync, Flush, a simple query, an
        // error, or when nothing more is pipelined.
        let due = failed
            || flush
            || !self.wire.has_buffered()
            || self.wire.out.len() >= super::wire::FLUSH_AT;
        !(due && self.wire.flush().await.is_err())
    }

    /// A simple query: each statement in turn, stopping at the first error.
    async fn simple(&mut self, text: &str) {
        let commands = statement::split(text);
        for command in commands {
            if matches!(command, Command::Empty) {
                self.wire
                    .send(&B::EmptyQueryResponse(EmptyQueryResponse::new()));
                continue;
            }
            if self.session.block == Block::Failed && !command.ends_block() {
                self.error(&failed_block());
                return;
            }
            match self.command(&command, &[], &[], true).await {
                Ok(Answer::Tag(tag)) => {
                    self.wire
                        .send(&B::CommandComplete(CommandComplete::new(tag)));
                }
                Ok(Answer::Rows(mut rows)) => {
                    if let Command::Copy { format, .. } = &command {
                        if !self.copy_out(&mut rows, format).await {
                            return;
                        }
                        continue;
                    }
                    self.wire
                        .send(&B::RowDescription(portal::describe(&rows.fields, &[])));
                    match self.write_rows(&mut rows, 0).await {
                        Ok(_) => {
                            let tag = tag_of(&command, rows.sent);
                            self.wire
                                .send(&B::CommandComplete(CommandComplete::new(tag)));
                        }
                        Err(Stop::Failed(e)) => {
                            self.error(&e);
                            return;
                        }
                        Err(Stop::Gone) => return,
                    }
                }
                Err(e) => {
                    self.error(&e);
                    return;
                }
            }
        }
    }

    async fn copy_out(&mut self, rows: &mut Rows, format: &statement::CopyFormat) -> bool {
        let n = i16::try_from(rows.fields.len()).unwrap_or(i16::MAX);
        self.wire.send(&B::CopyOutResponse(
            pgwire::messages::copy::CopyOutResponse::new(0, n, vec![0; n as usize]),
        ));
        if let Some(id) = &rows.query_id {
            self.backend.running(&self.principal, id);
        }
        let copied = rows.copy_out(&mut self.wire, format).await;
        self.backend.clear();
        match copied {
            Ok(()) => {
                self.wire
                    .send(&B::CopyDone(pgwire::messages::copy::CopyDone::new()));
                let tag = format!("COPY {}", rows.sent);
                self.wire
                    .send(&B::CommandComplete(CommandComplete::new(tag)));
                true
            }
            Err(Stop::Failed(e)) => {
                self.error(&e);
                false
            }
            Err(Stop::Gone) => false,
        }
    }

    /// Runs one command: session commands here, queries through the catalog or the service.
    async fn command(
        &mut self,
        command: &Command,
        params: &[Value],
        formats: &[i16],
        simple: bool,
    ) -> Result<Answer, PgError> {
        match command {
            Command::Empty => Ok(Answer::Tag(String::new())),
            Command::Refuse(e) => Err(e.clone()),
            Command::Query { sql, ast } => {
                let rows = self.query(sql, ast.as_deref(), params, formats).await?;
                Ok(Answer::Rows(Box::new(rows)))
            }
            Command::Copy { sql, ast, .. } => {
                let rows = self.query(sql, Some(ast), params, &[]).await?;
                Ok(Answer::Rows(Box::new(rows)))
            }
            Command::Set { name, value, local } => {
                let in_block = self.session.block != Block::Idle;
                let name = self.session.set(name, value.as_deref(), *local)?;
                if *local && !in_block {
                    self.notice(
                        "WARNING",
                        "SET LOCAL can only be used in transaction blocks",
                        "25P01",
                    );
                }
                if name == "application_name" {
                    // The audit record's user agent follows the session's name.
                    self.client.user_agent = self
                        .session
                        .get(&name)
                        .filter(|a| !a.is_empty())
                        .map(|a| a.chars().take(256).collect());
                }
                self.report(&name);
                Ok(Answer::Tag("SET".into()))
            }
            Command::SetTransaction => Ok(Answer::Tag("SET".into())),
            Command::Unlisten => Ok(Answer::Tag("UNLISTEN".into())),
            Command::Show(name) => self.show(name, formats),
            Command::Reset(name) => {
                match name {
                    None => self.session.reset_all(),
                    Some(n) => {
                        let n = self.session.set(n, None, false)?;
                        self.report(&n);
                    }
                }
                Ok(Answer::Tag("RESET".into()))
            }
            Command::Discard { all } => {
                if *all {
                    if self.session.block != Block::Idle {
                        return Err(PgError::new(
                            state::ACTIVE_TRANSACTION,
                            "DISCARD ALL cannot run inside a transaction block",
                        ));
                    }
                    self.session.reset_all();
                    self.statements.clear();
                    self.portals.clear();
                    self.cursors.clear();
                }
                Ok(Answer::Tag(command.tag().into()))
            }
            Command::Begin => {
                if !self.session.begin() {
                    self.notice(
                        "WARNING",
                        "there is already a transaction in progress",
                        "25001",
                    );
                }
                Ok(Answer::Tag("BEGIN".into()))
            }
            Command::Commit | Command::Rollback => {
                let failed = self.session.block == Block::Failed;
                let ended = if matches!(command, Command::Commit) {
                    self.session.commit()
                } else {
                    self.session.rollback()
                };
                if !ended {
                    self.notice("WARNING", "there is no transaction in progress", "25P01");
                }
                self.cursors.retain(|_, c| c.hold);
                let tag = if failed || matches!(command, Command::Rollback) {
                    "ROLLBACK"
                } else {
                    "COMMIT"
                };
                Ok(Answer::Tag(tag.into()))
            }
            Command::Savepoint(name) => {
                self.session.savepoint(name)?;
                Ok(Answer::Tag("SAVEPOINT".into()))
            }
            Command::Release(name) => {
                self.session.back_to_savepoint(name, false)?;
                Ok(Answer::Tag("RELEASE".into()))
            }
            Command::RollbackTo(name) => {
                self.session.back_to_savepoint(name, true)?;
                Ok(Answer::Tag("ROLLBACK".into()))
            }
            Command::Deallocate(name) => {
                drop_named(&mut self.statements, name.as_deref(), "prepared statement")?;
                Ok(Answer::Tag(command.tag().into()))
            }
            Command::Declare {
                name,
                sql,
                ast,
                hold,
                binary,
            } => {
                if !hold && self.session.block == Block::Idle {
                    return Err(PgError::new(
                        state::NO_ACTIVE_TRANSACTION,
                        "DECLARE CURSOR can only be used in transaction blocks",
                    ));
                }
                if self.cursors.contains_key(name) {
                    return Err(PgError::new(
                        state::DUPLICATE_CURSOR,
                        format!("cursor \"{name}\" already exists"),
                    ));
                }
                if self.cursors.len() >= MAX_CURSORS {
                    return Err(PgError::new(
                        state::PROGRAM_LIMIT_EXCEEDED,
                        format!("a connection holds at most {MAX_CURSORS} cursors"),
                    ));
                }
                let formats: &[i16] = if *binary { &[1] } else { &[] };
                let rows = self.query(sql, Some(ast), params, formats).await?;
                self.cursors.insert(
                    name.clone(),
                    Cursor {
                        rows: Box::new(rows),
                        hold: *hold,
                        formats: formats.to_vec(),
                    },
                );
                Ok(Answer::Tag("DECLARE CURSOR".into()))
            }
            Command::Fetch { name, count } => self.fetch(name, *count, simple, formats).await,
            Command::Close(name) => {
                drop_named(&mut self.cursors, name.as_deref(), "cursor")?;
                Ok(Answer::Tag(command.tag().into()))
            }
        }
    }

    /// `FETCH`: rows of the cursor, sent here (the cursor keeps its stream).
    async fn fetch(
        &mut self,
        name: &str,
        count: Option<u64>,
        simple: bool,
        formats: &[i16],
    ) -> Result<Answer, PgError> {
        let Some(mut cursor) = self.cursors.remove(name) else {
            return Err(PgError::new(
                state::INVALID_CURSOR_NAME,
                format!("cursor \"{name}\" does not exist"),
            ));
        };
        // The formats the FETCH was bound with (extended protocol), else the cursor's own.
        let formats = if simple {
            cursor.formats.clone()
        } else {
            formats.to_vec()
        };
        cursor.rows.set_formats(formats.clone());
        if simple {
            self.wire.send(&B::RowDescription(portal::describe(
                &cursor.rows.fields,
                &formats,
            )));
        }
        let before = cursor.rows.sent;
        let result = self.write_rows(&mut cursor.rows, count.unwrap_or(0)).await;
        let n = cursor.rows.sent - before;
        match result {
            Ok(_) => {
                self.cursors.insert(name.to_owned(), cursor);
                Ok(Answer::Tag(format!("FETCH {n}")))
            }
            Err(Stop::Failed(e)) => Err(e),
            Err(Stop::Gone) => Err(PgError::fatal(state::PROTOCOL_VIOLATION, "connection lost")),
        }
    }

    /// `ParameterStatus` for a reported setting that changed.
    fn report(&mut self, name: &str) {
        if Session::is_reported(name)
            && let Some(v) = self.session.get(name)
        {
            self.wire.send(&B::ParameterStatus(ParameterStatus::new(
                super::session::reported_name(name),
                v,
            )));
        }
    }

    fn show(&self, name: &str, formats: &[i16]) -> Result<Answer, PgError> {
        use datafusion::arrow::array::{RecordBatch, StringArray};
        use datafusion::arrow::datatypes::{DataType, Field as AField, Schema};
        let (schema, columns): (Schema, Vec<Arc<dyn datafusion::arrow::array::Array>>) =
            if name == "all" {
                let all = self.session.all();
                (
                    Schema::new(vec![
                        AField::new("name", DataType::Utf8, false),
                        AField::new("setting", DataType::Utf8, false),
                        AField::new("description", DataType::Utf8, false),
                    ]),
                    vec![
                        Arc::new(StringArray::from_iter_values(all.iter().map(|(k, _)| k))),
                        Arc::new(StringArray::from_iter_values(all.iter().map(|(_, v)| v))),
                        Arc::new(StringArray::from_iter_values(all.iter().map(|_| ""))),
                    ],
                )
            } else {
                let name = super::session::canonical(name);
                let name = name.as_str();
                let Some(v) = self.session.get(name) else {
                    return Err(PgError::new(
                        state::UNDEFINED_PARAMETER,
                        format!("unrecognized configuration parameter \"{name}\""),
                    ));
                };
                let column = match name {
                    "timezone" => "TimeZone",
                    "datestyle" => "DateStyle",
                    "intervalstyle" => "IntervalStyle",
                    other => other,
                };
                (
                    Schema::new(vec![AField::new(column, DataType::Utf8, false)]),
                    vec![Arc::new(StringArray::from(vec![v]))],
                )
            };
        let schema = Arc::new(schema);
        let batch = RecordBatch::try_new(Arc::clone(&schema), columns)
            .map_err(|_| PgError::new(state::INTERNAL, "SHOW failed"))?;
        let fields = portal::fields(&schema);
        let stream = futures::stream::iter([Ok(batch)]).boxed();
        Ok(Answer::Rows(Box::new(Rows::new(
            stream,
            fields,
            formats.to_vec(),
            self.style(),
        ))))
    }

    fn style(&self) -> TextStyle {
        TextStyle {
            time_zone: self.session.time_zone(),
        }
    }

    /// The catalog and schema bare names resolve in. `search_path`'s first entry names the
    /// schema (`source.schema`, or a schema alone); the catalog is the database connected to
    /// when it is a source the caller sees (`postgresql://host/pg` reads source `pg`), else
    /// the server's default. `None` when that is the server's default pair.
    fn defaults(&self) -> Option<NameDefaults> {
        let (server_catalog, server_schema) = self.door.service.name_defaults();
        let first = self.session.first_schema();
        let (catalog, schema) = match first.as_deref().and_then(|f| f.split_once('.')) {
            Some((c, s)) => (c.to_owned(), s.to_owned()),
            None => {
                let own = self.database != server_catalog
                    && self
                        .door
                        .service
                        .sees_source(&self.principal, &self.database);
                let catalog = if own {
                    self.database.clone()
                } else {
                    server_catalog.clone()
                };
                let schema = match first {
                    Some(s) if !self.session.search_path_is_default() => s,
                    _ if !own => server_schema.clone(),
                    _ => "public".to_owned(),
                };
                (catalog, schema)
            }
        };
        if catalog == server_catalog && schema == server_schema {
            return None;
        }
        Some(NameDefaults { catalog, schema })
    }

    fn visible_namespace(&self) -> String {
        match self.defaults() {
            Some(d) => format!("{}.{}", d.catalog, d.schema),
            None => {
                let (c, s) = self.door.service.name_defaults();
                format!("{c}.{s}")
            }
        }
    }

    fn request(&self, sql: &str, params: &[Value]) -> QueryRequest {
        QueryRequest {
            sql: sql.to_owned(),
            params: if params.is_empty() {
                None
            } else {
                Some(QueryParams::Positional(params.to_vec()))
            },
            timeout_ms: self.session.statement_timeout_ms(),
            max_rows: None,
            defaults: self.defaults(),
            spool: false,
        }
    }

    /// Starts a query: in the catalog context when it reads the catalog (or nothing) and plans
    /// there, else through the query service.
    async fn query(
        &mut self,
        sql: &str,
        ast: Option<&datafusion::sql::sqlparser::ast::Statement>,
        params: &[Value],
        formats: &[i16],
    ) -> Result<Rows, PgError> {
        let mut rows = self.query_rows(sql, ast, params, formats).await?;
        if let Some(names) = ast.and_then(statement::column_names) {
            rename(&mut rows.fields, names);
        }
        Ok(rows)
    }

    async fn query_rows(
        &mut self,
        sql: &str,
        ast: Option<&datafusion::sql::sqlparser::ast::Statement>,
        params: &[Value],
        formats: &[i16],
    ) -> Result<Rows, PgError> {
        if let Some(ast) = ast {
            if matches!(catalog::route(ast), Route::Catalog) {
                let (ctx, plan) = self.catalog_plan(ast).await?;
                return self.catalog_run(&ctx, plan, params, formats).await;
            }
            if let Some(folded) = self.fold(ast) {
                return self.service_run(&folded, params, formats).await;
            }
        }
        self.service_run(sql, params, formats).await
    }

    /// The statement with this session's functions replaced by their values, when it calls any.
    fn fold(&self, ast: &datafusion::sql::sqlparser::ast::Statement) -> Option<String> {
        let mut statement = ast.clone();
        let inputs = catalog::Inputs {
            tables: &[],
            visible: self.visible_namespace(),
            database: &self.database,
            user: &self.user,
            pid: self.backend.pid,
            settings: self.session.all().into_iter().collect(),
            set_config: Arc::default(),
        };
        catalog::fold_session_functions(&mut statement, &inputs).then(|| statement.to_string())
    }

    /// The caller's tables (a key that may not list sees an empty catalog, as it sees no
    /// tables). Takes `&mut self`: a connection is `Send`, not `Sync`.
    async fn catalog_inputs(&mut self) -> Vec<sluice_planner::TableInfo> {
        let service = Arc::clone(&self.door.service);
        let principal = self.principal.clone();
        service.table_schemas(&principal).await.unwrap_or_default()
    }

    async fn catalog_plan(
        &mut self,
        ast: &datafusion::sql::sqlparser::ast::Statement,
    ) -> Result<
        (
            datafusion::execution::context::SessionContext,
            datafusion::logical_expr::LogicalPlan,
        ),
        PgError,
    > {
        self.door
            .service
            .charge(&self.principal)
            .map_err(|e| PgError::from(&e))?;
        let tables = self.catalog_inputs().await;
        let set_config = Arc::new(Mutex::new(Vec::new()));
        let inputs = catalog::Inputs {
            tables: &tables,
            visible: self.visible_namespace(),
            database: &self.database,
            user: &self.user,
            pid: self.backend.pid,
            settings: self.session.all().into_iter().collect::<BTreeMap<_, _>>(),
            set_config: Arc::clone(&set_config),
        };
        let ctx = catalog::context(&inputs).map_err(|e| catalog_error(&e))?;
        let mut statement = ast.clone();
        catalog::rewrite(&mut statement);
        let text = statement.to_string();
        let plan = catalog::plan(&ctx, statement).await.map_err(|e| {
            debug!(statement = %text, error = %e, "pg: a catalog statement did not plan.");
            catalog_error(&e)
        })?;
        self.pending_set_config = Some(set_config);
        Ok((ctx, plan))
    }

    async fn catalog_run(
        &mut self,
        ctx: &datafusion::execution::context::SessionContext,
        plan: datafusion::logical_expr::LogicalPlan,
        params: &[Value],
        formats: &[i16],
    ) -> Result<Rows, PgError> {
        let plan = if params.is_empty() {
            plan
        } else {
            let types = plan.get_parameter_types().map_err(|e| catalog_error(&e))?;
            let values = params
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let want = types.get(&format!("${}", i + 1)).cloned().flatten();
                    scalar(v, want.as_ref())
                })
                .collect::<Result<Vec<_>, _>>()?;
            plan.with_param_values(values)
                .map_err(|e| catalog_error(&e))?
        };
        let schema = Arc::new(plan.schema().as_arrow().clone());
        let shown = plan.display_indent().to_string();
        let failed = |e: datafusion::error::DataFusionError| {
            debug!(plan = %shown, error = %e, "pg: a catalog statement did not run.");
            catalog_error(&e)
        };
        let frame = ctx.execute_logical_plan(plan).await.map_err(failed)?;
        // The rows are few (the catalog is the caller's tables), but the statement is the
        // client's: it gets the query timeout and row cap a query gets.
        let limits = self.door.service.limits();
        let max_rows = limits.max_rows;
        let timeout = std::time::Duration::from_millis(
            self.session
                .statement_timeout_ms()
                .unwrap_or(limits.query_timeout_ms)
                .min(limits.query_timeout_ms),
        );
        let collect = async move {
            let mut stream = frame.execute_stream().await?;
            let mut batches = Vec::new();
            let mut rows = 0_u64;
            let mut bytes = 0_usize;
            while let Some(b) = stream.next().await {
                let b = b?;
                rows += b.num_rows() as u64;
                bytes = bytes.saturating_add(b.get_array_memory_size());
                if bytes > catalog::CATALOG_MEMORY_BYTES {
                    return Ok(Err(PgError::new(
                        "53200",
                        "the catalog statement's result is larger than its memory bound",
                    )));
                }
                if rows > max_rows {
                    return Ok(Err(PgError::new(
                        state::PROGRAM_LIMIT_EXCEEDED,
                        format!("the result has more than limits.max_rows ({max_rows}) rows"),
                    )));
                }
                batches.push(b);
            }
            Ok::<_, datafusion::error::DataFusionError>(Ok(batches))
        };
        let batches = match tokio::time::timeout(timeout, collect).await {
            Err(_) => {
                return Err(PgError::new(
                    state::QUERY_CANCELED,
                    "canceling statement due to statement timeout",
                ));
            }
            Ok(Err(e)) => {
                debug!(error = %e, "pg: a catalog statement failed.");
                return Err(catalog_error(&e));
            }
            Ok(Ok(rows)) => rows?,
        };
        self.apply_set_config();
        let mut fields = portal::fields(&schema);
        for f in &mut fields {
            f.name = catalog::client_name(&f.name).to_owned();
        }
        let stream = futures::stream::iter(batches.into_iter().map(Ok)).boxed();
        Ok(Rows::new(stream, fields, formats.to_vec(), self.style()))
    }

    fn apply_set_config(&mut self) {
        let Some(calls) = self.pending_set_config.take() else {
            return;
        };
        let calls = std::mem::take(&mut *calls.lock().unwrap_or_else(PoisonError::into_inner));
        for (name, value) in calls {
            if let Ok(n) = self.session.set(&name, Some(&value), false) {
                self.report(&n);
            }
        }
    }

    async fn service_run(
        &mut self,
        sql: &str,
        params: &[Value],
        formats: &[i16],
    ) -> Result<Rows, PgError> {
        let request = self.request(sql, params);
        let query_id = new_query_id();
        let call = self.door.service.call(
            &self.principal,
            &self.client,
            query_id.clone(),
            Operation::Query,
        );
        if let Err(e) = self.door.service.charge(&self.principal) {
            call.note_sql(sql);
            return Err(PgError::from(&call.refuse(e)));
        }
        self.backend.running(&self.principal, &query_id);
        let cap = RowCap::Refuse(self.door.service.limits().max_rows);
        let started = self
            .door
            .service
            .run(&call, &request, cap, PgEncoder::maker())
            .await;
        let started = match started {
            Ok(s) => s,
            Err(e) => {
                self.backend.clear();
                return Err(PgError::from(&e));
            }
        };
        let (schema, batches) = match portal::from_service(started.stream).await {
            Ok(s) => s,
            Err(e) => {
                self.backend.clear();
                return Err(e);
            }
        };
        let fields = portal::fields(&schema);
        let mut rows = Rows::new(batches, fields, formats.to_vec(), self.style());
        rows.query_id = Some(query_id);
        Ok(rows)
    }

    // ---- extended protocol ----

    fn parse(&mut self, name: Option<String>, query: &str, types: Vec<u32>) -> Result<(), PgError> {
        let name = name.unwrap_or_default();
        if !name.is_empty() && self.statements.contains_key(&name) {
            return Err(PgError::new(
                state::DUPLICATE_STATEMENT,
                format!("prepared statement \"{name}\" already exists"),
            ));
        }
        if self.statements.len() >= MAX_STATEMENTS && !self.statements.contains_key(&name) {
            return Err(PgError::new(
                state::PROGRAM_LIMIT_EXCEEDED,
                format!("a connection holds at most {MAX_STATEMENTS} prepared statements"),
            ));
        }
        let mut commands = statement::split(query);
        if commands.len() > 1 {
            return Err(PgError::new(
                state::SYNTAX_ERROR,
                "cannot insert multiple commands into a prepared statement",
            ));
        }
        let command = commands.pop().unwrap_or(Command::Empty);
        self.statements.insert(
            name,
            Prepared {
                command,
                given: types,
                described: None,
            },
        );
        self.wire.send(&B::ParseComplete(ParseComplete::new()));
        Ok(())
    }

    fn bind(&mut self, bind: pgwire::messages::extendedquery::Bind) -> Result<(), PgError> {
        let statement_name = bind.statement_name.unwrap_or_default();
        let Some(statement) = self.statements.get(&statement_name).cloned() else {
            return Err(PgError::new(
                state::INVALID_STATEMENT_NAME,
                format!("prepared statement \"{statement_name}\" does not exist"),
            ));
        };
        let types: Vec<u32> = match &statement.described {
            Some((t, _)) => t.clone(),
            None => statement.given.clone(),
        };
        let params = bind
            .parameters
            .iter()
            .enumerate()
            .map(|(i, raw)| {
                let binary = portal::is_binary(&bind.parameter_format_codes, i);
                let oid = types.get(i).copied().unwrap_or(0);
                super::params::value(raw.as_ref(), oid, binary)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let portal_name = bind.portal_name.unwrap_or_default();
        if self.portals.len() >= MAX_STATEMENTS && !self.portals.contains_key(&portal_name) {
            return Err(PgError::new(
                state::PROGRAM_LIMIT_EXCEEDED,
                format!("a connection holds at most {MAX_STATEMENTS} portals"),
            ));
        }
        self.portals.insert(
            portal_name,
            Portal {
                statement,
                params,
                formats: bind.result_column_format_codes,
                state: Running::Ready,
            },
        );
        self.wire.send(&B::BindComplete(BindComplete::new()));
        Ok(())
    }

    /// Parameter types and result columns of a statement, without running it.
    async fn description(
        &mut self,
        prepared: &Prepared,
    ) -> Result<(Vec<u32>, Option<Vec<Field>>), PgError> {
        if let Some(d) = &prepared.described {
            return Ok(d.clone());
        }
        let given = prepared.given.clone();
        match &prepared.command {
            Command::Query { sql, ast } => {
                if let Some(ast) = ast.as_deref()
                    && matches!(catalog::route(ast), Route::Catalog)
                {
                    {
                        match self.catalog_plan(ast).await {
                            Ok((_, plan)) => {
                                self.pending_set_config = None;
                                let types =
                                    plan.get_parameter_types().map_err(|e| catalog_error(&e))?;
                                let params = placeholder_types(&given, types.into_iter().collect());
                                let schema = Arc::new(plan.schema().as_arrow().clone());
                                let mut fields = portal::fields(&schema);
                                for f in &mut fields {
                                    f.name = catalog::client_name(&f.name).to_owned();
                                }
                                if let Some(names) = statement::column_names(ast) {
                                    rename(&mut fields, names);
                                }
                                return Ok((params, Some(fields)));
                            }
                            Err(e) => return Err(e),
                        }
                    }
                }
                // A describe plans, so it is charged as Flight's GetFlightInfo is.
                self.door
                    .service
                    .charge(&self.principal)
                    .map_err(|e| PgError::from(&e))?;
                let folded = ast.as_deref().and_then(|a| self.fold(a));
                let request = self.request(folded.as_deref().unwrap_or(sql), &[]);
                let query_id = new_query_id();
                let described = self
                    .door
                    .service
                    .describe_statement(&self.principal, &request, &query_id)
                    .await
                    .map_err(|e| {
                        let call = self.door.service.call(
                            &self.principal,
                            &self.client,
                            query_id.clone(),
                            Operation::Query,
                        );
                        call.note_sql(sql);
                        PgError::from(&call.refuse(e))
                    })?;
                let params =
                    placeholder_types(&given, described.placeholders.into_iter().collect());
                let mut fields = portal::fields(&described.schema);
                if let Some(names) = ast.as_deref().and_then(statement::column_names) {
                    rename(&mut fields, names);
                }
                Ok((params, Some(fields)))
            }
            Command::Show(name) => {
                let answer = self.show(name, &[])?;
                let fields = match answer {
                    Answer::Rows(r) => Some(r.fields.clone()),
                    Answer::Tag(_) => None,
                };
                Ok((given, fields))
            }
            Command::Fetch { name, .. } => {
                Ok((given, self.cursors.get(name).map(|c| c.rows.fields.clone())))
            }
            _ => Ok((given, None)),
        }
    }

    async fn describe(&mut self, target: u8, name: Option<String>) -> Result<(), PgError> {
        let name = name.unwrap_or_default();
        if target == b'S' {
            let Some(prepared) = self.statements.get(&name).cloned() else {
                return Err(PgError::new(
                    state::INVALID_STATEMENT_NAME,
                    format!("prepared statement \"{name}\" does not exist"),
                ));
            };
            let (params, fields) = self.description(&prepared).await?;
            if let Some(s) = self.statements.get_mut(&name) {
                s.described = Some((params.clone(), fields.clone()));
            }
            self.wire
                .send(&B::ParameterDescription(ParameterDescription::new(params)));
            match fields {
                Some(f) => self
                    .wire
                    .send(&B::RowDescription(portal::describe(&f, &[]))),
                None => self.wire.send(&B::NoData(NoData::new())),
            }
            return Ok(());
        }
        let Some(portal) = self.portals.get(&name) else {
            // A cursor is a portal too (psycopg describes its named cursors this way).
            if let Some(c) = self.cursors.get(&name) {
                let d = portal::describe(&c.rows.fields, &c.formats);
                self.wire.send(&B::RowDescription(d));
                return Ok(());
            }
            return Err(PgError::new(
                state::INVALID_CURSOR_NAME,
                format!("portal \"{name}\" does not exist"),
            ));
        };
        let prepared = portal.statement.clone();
        let formats = portal.formats.clone();
        let (_, fields) = self.description(&prepared).await?;
        match fields {
            Some(f) => self
                .wire
                .send(&B::RowDescription(portal::describe(&f, &formats))),
            None => self.wire.send(&B::NoData(NoData::new())),
        }
        Ok(())
    }

    async fn execute(&mut self, name: Option<String>, max_rows: i32) -> Result<(), PgError> {
        let name = name.unwrap_or_default();
        let Some(mut portal) = self.portals.remove(&name) else {
            return Err(PgError::new(
                state::INVALID_CURSOR_NAME,
                format!("portal \"{name}\" does not exist"),
            ));
        };
        let command = portal.statement.command.clone();
        if self.session.block == Block::Failed && !command.ends_block() {
            return Err(failed_block());
        }
        let max = u64::try_from(max_rows).unwrap_or(0);
        let result = self.execute_portal(&mut portal, &command, max).await;
        self.portals.insert(name, portal);
        result
    }

    async fn execute_portal(
        &mut self,
        portal: &mut Portal,
        command: &Command,
        max: u64,
    ) -> Result<(), PgError> {
        if matches!(command, Command::Empty) {
            self.wire
                .send(&B::EmptyQueryResponse(EmptyQueryResponse::new()));
            return Ok(());
        }
        if matches!(portal.state, Running::Done) {
            self.wire
                .send(&B::CommandComplete(CommandComplete::new(tag_of(
                    command, 0,
                ))));
            return Ok(());
        }
        if matches!(portal.state, Running::Ready) {
            match self
                .command(command, &portal.params, &portal.formats, false)
                .await
            {
                Ok(Answer::Tag(tag)) => {
                    portal.state = Running::Done;
                    self.wire
                        .send(&B::CommandComplete(CommandComplete::new(tag)));
                    return Ok(());
                }
                Ok(Answer::Rows(rows)) => {
                    if let Command::Copy { format, .. } = command {
                        let mut rows = rows;
                        portal.state = Running::Done;
                        if !self.copy_out(&mut rows, format).await {
                            // The error went out; what follows is skipped up to Sync.
                            self.skipping = true;
                        }
                        return Ok(());
                    }
                    portal.state = Running::Rows(rows);
                }
                Err(e) => {
                    portal.state = Running::Done;
                    return Err(e);
                }
            }
        }
        let Running::Rows(rows) = &mut portal.state else {
            return Ok(());
        };
        match self.write_rows(rows, max).await {
            Ok(true) => {
                let tag = tag_of(command, rows.sent);
                portal.state = Running::Done;
                self.wire
                    .send(&B::CommandComplete(CommandComplete::new(tag)));
                Ok(())
            }
            Ok(false) => {
                self.wire.send(&B::PortalSuspended(PortalSuspended::new()));
                Ok(())
            }
            Err(Stop::Failed(e)) => {
                portal.state = Running::Done;
                Err(e)
            }
            Err(Stop::Gone) => Err(PgError::fatal(state::PROTOCOL_VIOLATION, "connection lost")),
        }
    }
}

/// PostgreSQL's names for the columns, when there is one per column.
fn rename(fields: &mut [Field], names: Vec<String>) {
    if names.len() == fields.len() {
        for (f, n) in fields.iter_mut().zip(names) {
            f.name = n;
        }
    }
}

/// `DEALLOCATE name` / `CLOSE name` (`None`: all of them); an unknown name is an error.
fn drop_named<T>(
    held: &mut HashMap<String, T>,
    name: Option<&str>,
    what: &str,
) -> Result<(), PgError> {
    let Some(n) = name else {
        held.clear();
        return Ok(());
    };
    if held.remove(n).is_some() {
        return Ok(());
    }
    let state = if what == "cursor" {
        state::INVALID_CURSOR_NAME
    } else {
        state::INVALID_STATEMENT_NAME
    };
    Err(PgError::new(
        state,
        format!("{what} \"{n}\" does not exist"),
    ))
}

fn failed_block() -> PgError {
    PgError::new(
        state::IN_FAILED_TRANSACTION,
        "current transaction is aborted, commands ignored until end of transaction block",
    )
}

/// A catalog query's error: the statement's fault when DataFusion says so (planning, SQL,
/// schema), with its first line; anything else is ours, logged and not shown.
fn catalog_error(e: &datafusion::error::DataFusionError) -> PgError {
    use datafusion::error::DataFusionError as D;
    let users = matches!(
        e.find_root(),
        D::Plan(_) | D::SQL(..) | D::SchemaError(..) | D::NotImplemented(_) | D::ArrowError(..)
    );
    if !users {
        if matches!(e.find_root(), D::ResourcesExhausted(_)) {
            return PgError::new(
                "53200",
                "the catalog statement needs more memory than it may use",
            );
        }
        tracing::warn!(error = %e, "pg: a catalog statement failed.");
        return PgError::new(state::INTERNAL, "the catalog statement failed");
    }
    let text = e.to_string();
    let first = text.lines().next().unwrap_or_default();
    let state = if first.contains("not found") || first.contains("does not exist") {
        state::UNDEFINED_TABLE
    } else if first.contains("Resources exhausted") {
        "53200"
    } else if first.contains("Divide by zero") {
        "22012"
    } else if first.contains("Invalid function") || first.contains("function") {
        "42883"
    } else {
        state::SYNTAX_ERROR
    };
    PgError::new(state, first.chars().take(500).collect::<String>())
}

/// Parameter oids: the client's where given, else the planner's, else `text`.
fn placeholder_types(
    given: &[u32],
    inferred: Vec<(String, Option<datafusion::arrow::datatypes::DataType>)>,
) -> Vec<u32> {
    let mut by_index: BTreeMap<usize, u32> = BTreeMap::new();
    for (id, t) in inferred {
        if let Some(n) = id
            .trim_start_matches('$')
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
        {
            let oid = t
                .as_ref()
                .map_or(super::types::oid::TEXT, super::types::pg_type);
            by_index.insert(n - 1, oid);
        }
    }
    let count = by_index
        .keys()
        .next_back()
        .map_or(0, |n| n + 1)
        .max(given.len());
    (0..count)
        .map(|i| match given.get(i) {
            Some(g) if *g != 0 => *g,
            _ => by_index.get(&i).copied().unwrap_or(super::types::oid::TEXT),
        })
        .collect()
}

/// A JSON parameter as a scalar of the placeholder's type.
fn scalar(
    v: &Value,
    want: Option<&datafusion::arrow::datatypes::DataType>,
) -> Result<datafusion::common::ScalarValue, PgError> {
    use datafusion::common::ScalarValue;
    let s = match v {
        Value::Null => ScalarValue::Null,
        Value::Bool(b) => ScalarValue::Boolean(Some(*b)),
        Value::Number(n) => match n.as_i64() {
            Some(i) => ScalarValue::Int64(Some(i)),
            None => ScalarValue::Float64(n.as_f64()),
        },
        Value::String(s) => ScalarValue::Utf8(Some(s.clone())),
        other => ScalarValue::Utf8(Some(other.to_string())),
    };
    match want {
        Some(t) if &s.data_type() != t => s.cast_to(t).map_err(|_| {
            PgError::new(
                state::INVALID_TEXT_REPRESENTATION,
                format!("parameter {v} is not a valid {t}"),
            )
        }),
        _ => Ok(s),
    }
}
