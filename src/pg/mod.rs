//! The PostgreSQL wire protocol door: psql, drivers and BI tools connect as to a read-only
//! PostgreSQL 16, a thin translation to the [`QueryService`]. The same principals (API keys,
//! bearer tokens, client certificates), grants, limits, audit, cache, routing and failover as
//! `/v1/query`; `pg_catalog` and `information_schema` are built from the caller's granted
//! catalog, in this door's sessions only.
//!
//! ```text
//!   [SSLRequest ─► TLS]  (required off loopback, before the password is asked for)
//!   StartupMessage ─► AuthenticationCleartextPassword ─► password = key or token
//!        └─► QueryService::authenticate ─► ParameterStatus…, BackendKeyData, ReadyForQuery
//!   Query "a; b; c"   ─► each statement: session (SET, BEGIN, DECLARE …) | catalog | query
//!   Parse/Bind/Describe/Execute(max_rows)/Sync ─► statements and portals, suspended portals
//!   CancelRequest(pid, secret) ─► QueryService::cancel of that connection's running query
//! ```
//!
//! pgwire supplies the message codec (frames in and out); the state machine, sessions, result
//! encoding and catalog are this door's.
//!
//! # Layout
//! - [`PgDoor`] and the listener: accepting, TLS, per-principal connection caps.
//! - `wire`: frames with size limits; `connection`: startup, authentication and the loop.
//! - `statement`: what a statement is (session command, catalog query or query).
//! - `session`: per-connection settings and transaction state; `portal`: running results.
//! - `types`: Arrow types and values as PostgreSQL's, text and binary; `params`: bind values.
//! - `catalog`: `pg_catalog` / `information_schema` and the functions clients call.
//! - `errors`: Sluice's error codes as SQLSTATEs.

mod catalog;
mod connection;
mod errors;
mod params;
mod portal;
mod session;
mod statement;
mod types;
mod wire;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sluice_schemas::PgConfig;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use crate::query::QueryService;

/// The version clients see: the major that decides their feature checks, and Sluice's own.
pub const SERVER_VERSION: &str = "16.6";
/// Open connections at once; beyond, new ones wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 10_000;
/// Open connections one peer address may hold; beyond, its new ones are closed at once.
const MAX_CONNECTIONS_PER_ADDRESS: u32 = 1_024;
/// A client that has not finished startup and authentication by then is dropped.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// The ALPN name of direct TLS connections (PostgreSQL 17's `sslnegotiation=direct`).
const ALPN: &[u8] = b"postgresql";

/// Why the door could not start.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The listener could not be bound.
    #[error("cannot listen on {addr} (pg): {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// What a running connection answers a `CancelRequest` with: its secret, and the query it is
/// running (if any) with the principal that runs it.
struct Running {
    secret: [u8; 4],
    now: Mutex<Option<(crate::governance::Principal, String)>>,
}

/// The door's state, shared by every connection.
pub struct PgDoor {
    service: Arc<QueryService>,
    config: PgConfig,
    /// Open connections per principal (key id, or `anonymous`).
    per_principal: Mutex<HashMap<String, u32>>,
    /// Backend process ids of open connections, for cancel requests.
    backends: Mutex<HashMap<i32, Arc<Running>>>,
    /// Open connections per peer address.
    per_address: Arc<Mutex<HashMap<std::net::IpAddr, u32>>>,
}

impl PgDoor {
    /// Takes a place for `addr` among its connections, or `None` at the cap.
    fn admit_address(&self, addr: std::net::IpAddr) -> Option<AddressSlot> {
        let mut counts = self
            .per_address
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let n = counts.entry(addr).or_default();
        if *n >= MAX_CONNECTIONS_PER_ADDRESS {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            counts: Arc::clone(&self.per_address),
            addr,
        })
    }

    /// Takes a place for `who` among its connections, or `None` at the cap.
    fn admit(self: &Arc<Self>, who: &str) -> Option<PrincipalSlot> {
        let mut counts = self
            .per_principal
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let n = counts.entry(who.to_owned()).or_default();
        if *n >= self.config.max_connections_per_principal {
            return None;
        }
        *n += 1;
        Some(PrincipalSlot {
            door: Arc::clone(self),
            who: who.to_owned(),
        })
    }

    /// Registers a backend for cancel requests under a fresh process id.
    fn register(self: &Arc<Self>) -> Option<BackendSlot> {
        let mut bytes = [0_u8; 8];
        getrandom::fill(&mut bytes).ok()?;
        let mut backends = self.backends.lock().unwrap_or_else(PoisonError::into_inner);
        // Positive, like a real process id; collisions are drawn again.
        let mut pid = i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) & 0x3fff_ffff;
        while pid == 0 || backends.contains_key(&pid) {
            pid = (pid.wrapping_mul(31).wrapping_add(7)) & 0x3fff_ffff;
        }
        let running = Arc::new(Running {
            secret: [bytes[4], bytes[5], bytes[6], bytes[7]],
            now: Mutex::new(None),
        });
        backends.insert(pid, Arc::clone(&running));
        Some(BackendSlot {
            door: Arc::clone(self),
            pid,
            running,
        })
    }

    /// A `CancelRequest`: the backend's running query is cancelled when the secret matches
    /// (compared in constant time); anything else is ignored, as PostgreSQL does.
    fn cancel(&self, pid: i32, secret: &[u8]) {
        let running = self
            .backends
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&pid)
            .cloned();
        let Some(running) = running else {
            debug!(pid, "pg: cancel request for an unknown backend.");
            return;
        };
        if secret.len() != 4 || !constant_time_eq(&running.secret, secret) {
            debug!(pid, "pg: cancel request with a wrong secret.");
            return;
        }
        let now = running
            .now
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some((principal, id)) = now {
            let _ = self.service.cancel(&principal, &id);
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0_u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A connection's place among its principal's, given back on drop.
struct PrincipalSlot {
    door: Arc<PgDoor>,
    who: String,
}

impl Drop for PrincipalSlot {
    fn drop(&mut self) {
        let mut counts = self
            .door
            .per_principal
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = counts.get_mut(&self.who) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.who);
            }
        }
    }
}

/// A connection's place among its address's, given back on drop.
struct AddressSlot {
    counts: Arc<Mutex<HashMap<std::net::IpAddr, u32>>>,
    addr: std::net::IpAddr,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = counts.get_mut(&self.addr) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.addr);
            }
        }
    }
}

/// A connection's backend key, unregistered on drop.
struct BackendSlot {
    door: Arc<PgDoor>,
    pid: i32,
    running: Arc<Running>,
}

impl BackendSlot {
    /// Marks `query_id` (run by `principal`) as what a cancel request stops, until `clear`.
    fn running(&self, principal: &crate::governance::Principal, query_id: &str) {
        *self
            .running
            .now
            .lock()
            .unwrap_or_else(PoisonError::into_inner) =
            Some((principal.clone(), query_id.to_owned()));
    }

    fn clear(&self) {
        *self
            .running
            .now
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }
}

impl Drop for BackendSlot {
    fn drop(&mut self) {
        self.door
            .backends
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.pid);
    }
}

/// A bound listener, not yet serving.
pub struct Bound {
    door: Arc<PgDoor>,
    listener: std::net::TcpListener,
    addr: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl Bound {
    /// The bound address (the real port when `:0` was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether connections may negotiate TLS.
    pub fn tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Serves until the query service closes, on the query runtime.
    pub fn serve(self) -> tokio::task::JoinHandle<()> {
        let door = self.door;
        let closing = door.service.closing().clone();
        let (std_listener, tls) = (self.listener, self.tls);
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        door.service.runtime().clone().spawn(async move {
            let listener = match TcpListener::from_std(std_listener) {
                Ok(l) => l,
                Err(e) => {
                    warn!(error = %e, "The PostgreSQL listener could not start.");
                    return;
                }
            };
            let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
            loop {
                let permit = tokio::select! {
                    () = closing.cancelled() => return,
                    s = Arc::clone(&connections).acquire_owned() => match s {
                        Ok(s) => s,
                        Err(_) => return,
                    },
                };
                let accepted = tokio::select! {
                    () = closing.cancelled() => return,
                    a = listener.accept() => a,
                };
                let (stream, addr) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        debug!(error = %e, "pg: accept failed.");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // As on the Flight listener: one address holds at most so many connections,
                // counted from accept (before authentication).
                let Some(address_slot) = door.admit_address(addr.ip()) else {
                    debug!(%addr, "pg: the address holds as many connections as it may.");
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let door = Arc::clone(&door);
                let acceptor = acceptor.clone();
                let closing = closing.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    let _address = address_slot;
                    tokio::select! {
                        () = closing.cancelled() => {}
                        () = connection::serve(door, stream, addr, acceptor) => {}
                    }
                });
            }
        })
    }
}

/// Binds the listener `config` describes over `service`, with TLS offered when `tls` is given.
///
/// # Errors
/// [`PgError`]: a busy port.
pub fn bind(
    service: Arc<QueryService>,
    config: &PgConfig,
    tls: Option<&rustls::ServerConfig>,
) -> Result<Bound, PgError> {
    let bind_error = |source| PgError::Bind {
        addr: config.listen,
        source,
    };
    let listener = std::net::TcpListener::bind(config.listen).map_err(bind_error)?;
    listener.set_nonblocking(true).map_err(bind_error)?;
    let addr = listener.local_addr().unwrap_or(config.listen);
    let tls = if config.tls {
        tls.map(|c| {
            let mut c = c.clone();
            c.alpn_protocols = vec![ALPN.to_vec()];
            Arc::new(c)
        })
    } else {
        None
    };
    let door = Arc::new(PgDoor {
        service,
        config: config.clone(),
        per_principal: Mutex::default(),
        backends: Mutex::default(),
        per_address: Arc::default(),
    });
    Ok(Bound {
        door,
        listener,
        addr,
        tls,
    })
}
