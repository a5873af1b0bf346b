//! The Arrow Flight SQL door: ADBC, JDBC and BI tools over gRPC, on its own listener (`[flight]`),
//! a thin translation to the [`QueryService`]. The same principals (API keys, bearer tokens,
//! client certificates), grants, limits, audit, cache, routing and failover as `/v1/query`.
//!
//! ```text
//!   Handshake (basic: password = key) ─► authorization: Bearer <key>
//!   GetFlightInfo(statement | prepared) ─► describe (checked, kept plan; nothing runs)
//!        └─► FlightInfo { schema, ticket = signed {who, sql, params, query id, expiry} }
//!   DoGet(ticket) ─► verify signature, caller, expiry ─► QueryService::run ─► Flight data
//!   CreatePreparedStatement ─► signed handle {who, sql, expiry}; DoPut(params) ─► new handle
//! ```
//!
//! Nothing is held per ticket, handle or session: each is self-contained and signed under the
//! deployment's secret, so any server sharing it serves it, and an abandoned one costs nothing.
//!
//! # Layout
//! - [`FlightDoor`]: the door's state; `service`: the gRPC methods, dispatching commands.
//! - `statements`: queries and prepared statements; `catalog`: the metadata commands.
//! - `session`: session options in a signed cookie; `params`: Arrow parameters as values.
//! - `ticket`: signed handles. `caller`: credentials and errors. `listener`: TCP and TLS.
//! - `encode`: results as Flight data, with `ARROW:FLIGHT:SQL:*` column metadata.

mod caller;
mod catalog;
mod encode;
mod listener;
mod params;
mod service;
mod session;
mod spool;
mod statements;
mod ticket;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arrow_flight::flight_service_server::FlightServiceServer;
use arrow_flight::sql::metadata::{SqlInfoData, XdbcTypeInfoData};
use sluice_schemas::FlightConfig;
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::query::QueryService;

use ticket::MIN_SECRET_BYTES;

/// Prepared-statement handles and session cookies outlive tickets: JDBC pools keep prepared
/// statements for the life of a connection.
const PREPARED_TTL: Duration = Duration::from_secs(24 * 3600);

/// Why the door could not start.
#[derive(Debug, thiserror::Error)]
pub enum FlightError {
    /// The signing secret cannot be used.
    #[error("flight.ticket_secret_env: {0}")]
    Secret(String),
    /// The listener could not be bound.
    #[error("cannot listen on {addr} (flight): {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The server's metadata tables could not be built.
    #[error("flight metadata: {0}")]
    Metadata(String),
}

/// The Flight SQL door's state, shared by every connection.
pub struct FlightDoor {
    service: Arc<QueryService>,
    tickets: ticket::Signer,
    prepared: ticket::Signer,
    sql_info: SqlInfoData,
    xdbc: XdbcTypeInfoData,
    /// Ticket query ids this server has run, so two `DoGet`s of one ticket never share one.
    claimed: std::sync::Mutex<lru::LruCache<String, ()>>,
}

/// Ticket query ids remembered as run.
const CLAIMED_IDS: std::num::NonZeroUsize = match std::num::NonZeroUsize::new(65_536) {
    Some(n) => n,
    None => std::num::NonZeroUsize::MIN,
};

impl FlightDoor {
    /// True the first time `id` is claimed here (within the last [`CLAIMED_IDS`] claims).
    fn claim(&self, id: &str) -> bool {
        let mut claimed = self
            .claimed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if claimed.contains(id) {
            return false;
        }
        claimed.put(id.to_owned(), ());
        true
    }
}

/// A bound Flight listener, not yet serving.
pub struct Bound {
    door: FlightDoor,
    /// Bound here, registered with the query runtime's reactor when serving starts (binding
    /// happens inside the actix System, whose single thread must not poll Flight's sockets).
    listener: std::net::TcpListener,
    addr: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl Bound {
    /// The bound address (the real port when `:0` was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until the query service closes (after its drain), on the query runtime.
    pub fn serve(self) -> tokio::task::JoinHandle<()> {
        let service = Arc::clone(&self.door.service);
        let closing = service.closing().clone();
        let max_request = usize::try_from(service.limits().max_request_bytes).unwrap_or(usize::MAX);
        let grpc = FlightServiceServer::new(self.door).max_decoding_message_size(max_request);
        let (std_listener, tls) = (self.listener, self.tls);
        service.runtime().spawn(async move {
            let listener = match TcpListener::from_std(std_listener) {
                Ok(l) => l,
                Err(e) => {
                    warn!(error = %e, "The Flight SQL listener could not start.");
                    return;
                }
            };
            let incoming = listener::incoming(listener, tls, closing.clone());
            let served = tonic::transport::Server::builder()
                // Bounds per connection: concurrent calls, and keep-alive probes for dead peers.
                .max_concurrent_streams(Some(MAX_STREAMS_PER_CONNECTION))
                .http2_keepalive_interval(Some(Duration::from_secs(30)))
                .http2_keepalive_timeout(Some(Duration::from_secs(20)))
                .add_service(grpc)
                .serve_with_incoming_shutdown(incoming, closing.cancelled_owned())
                .await;
            if let Err(e) = served {
                warn!(error = %e, "The Flight SQL listener stopped.");
            }
        })
    }
}

/// Action names (Flight SQL's, and Flight's own for cancelling and sessions).
mod actions {
    pub const CREATE_PREPARED_STATEMENT: &str = "CreatePreparedStatement";
    pub const CLOSE_PREPARED_STATEMENT: &str = "ClosePreparedStatement";
    pub const CANCEL_FLIGHT_INFO: &str = "CancelFlightInfo";
    pub const CANCEL_QUERY: &str = "CancelQuery";
    pub const SET_SESSION_OPTIONS: &str = "SetSessionOptions";
    pub const GET_SESSION_OPTIONS: &str = "GetSessionOptions";
    pub const CLOSE_SESSION: &str = "CloseSession";
    pub const SPOOL: &str = "sluice.spool";
    pub const SPOOL_LIST: &str = "sluice.spool.list";
    pub const SPOOL_ACK: &str = "sluice.spool.ack";
}

/// Concurrent RPCs one connection may hold open.
const MAX_STREAMS_PER_CONNECTION: u32 = 128;

/// Binds the Flight listener `config` describes over `service`, with TLS when `tls` is given.
///
/// # Errors
/// [`FlightError`]: an unusable secret, a busy port.
pub fn bind(
    service: Arc<QueryService>,
    config: &FlightConfig,
    tls: Option<&rustls::ServerConfig>,
) -> Result<Bound, FlightError> {
    let secret = secret(config)?;
    let ttl = Duration::from_millis(config.ticket_ttl_ms);
    let door = FlightDoor {
        tickets: ticket::Signer::new(&secret, ttl),
        prepared: ticket::Signer::new(&secret, PREPARED_TTL.max(ttl)),
        sql_info: catalog::sql_info().map_err(|e| FlightError::Metadata(e.to_string()))?,
        xdbc: catalog::xdbc_types().map_err(|e| FlightError::Metadata(e.to_string()))?,
        claimed: std::sync::Mutex::new(lru::LruCache::new(CLAIMED_IDS)),
        service,
    };
    let bind_error = |source| FlightError::Bind {
        addr: config.listen,
        source,
    };
    let listener = std::net::TcpListener::bind(config.listen).map_err(bind_error)?;
    listener.set_nonblocking(true).map_err(bind_error)?;
    let addr = listener.local_addr().unwrap_or(config.listen);
    let tls = tls.map(|c| {
        let mut c = c.clone();
        // gRPC is HTTP/2 only.
        c.alpn_protocols = vec![b"h2".to_vec()];
        Arc::new(c)
    });
    Ok(Bound {
        door,
        listener,
        addr,
        tls,
    })
}

/// The signing secret: the named variable's value, or a fresh random one for this start.
fn secret(config: &FlightConfig) -> Result<Vec<u8>, FlightError> {
    let Some(name) = &config.ticket_secret_env else {
        let mut secret = vec![0_u8; 32];
        getrandom::fill(&mut secret).map_err(|e| FlightError::Secret(e.to_string()))?;
        info!(
            "Flight SQL tickets are signed with a per-start secret; set flight.ticket_secret_env to share one across servers."
        );
        return Ok(secret);
    };
    match std::env::var(name) {
        Ok(v) if v.len() >= MIN_SECRET_BYTES => Ok(v.into_bytes()),
        Ok(_) => Err(FlightError::Secret(format!(
            "${name} is shorter than {MIN_SECRET_BYTES} bytes"
        ))),
        Err(_) => Err(FlightError::Secret(format!(
            "${name} is not set (or not UTF-8)"
        ))),
    }
}
