//! The Flight listener's connections: plain TCP on loopback, or TLS with `[server.tls]`'s
//! certificate (the same reloading resolver and client-certificate verifier as HTTPS, offering
//! only `h2`). Handshakes run concurrently, each bounded in time and in number, so a slow or
//! silent client holds up no one; the peer's address and verified certificate travel with the
//! connection to every RPC on it.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::governance::PeerCertificate;

/// A TLS handshake that takes longer is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections waiting for their first bytes or TLS handshake at once; beyond, accepting waits.
const MAX_HANDSHAKES: usize = 256;
/// Open connections at once; beyond, new ones wait in the kernel's backlog until one closes.
const MAX_CONNECTIONS: usize = 10_000;

/// Where a connection came from, in every request's extensions.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The peer's address.
    pub addr: SocketAddr,
    /// The client certificate the handshake verified, if any.
    pub certificate: Option<Arc<PeerCertificate>>,
    /// The connection's place among [`MAX_CONNECTIONS`], given back when the connection and
    /// its requests are gone.
    _slot: Arc<Slot>,
}

/// One accepted connection.
pub enum Conn {
    /// Plain TCP.
    Plain(TcpStream, Peer),
    /// TLS.
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>, Peer),
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = Peer;

    fn connect_info(&self) -> Peer {
        match self {
            Self::Plain(_, p) | Self::Tls(_, p) => p.clone(),
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s, _) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s, _) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s, _) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s, _) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s, _) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Tls(s, _) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(s, _) => s.is_write_vectored(),
            Self::Tls(s, _) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s, _) => Pin::new(s).poll_flush(cx),
            Self::Tls(s, _) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s, _) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s, _) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Open connections one peer address may hold; beyond, its new ones are closed at once.
const MAX_CONNECTIONS_PER_ADDRESS: usize = 1_024;

/// A connection's place among [`MAX_CONNECTIONS`] and its address's share, given back on drop.
#[derive(Debug)]
pub struct Slot {
    _permit: tokio::sync::OwnedSemaphorePermit,
    addr: std::net::IpAddr,
    per_address: Arc<Mutex<HashMap<std::net::IpAddr, usize>>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self
            .per_address
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = counts.get_mut(&self.addr) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.addr);
            }
        }
    }
}

/// The connections `listener` accepts until `closing`, TLS-wrapped with `tls`. Call it on the
/// runtime that serves them: the accept loop and the handshakes are spawned there.
pub fn incoming(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    closing: CancellationToken,
) -> impl Stream<Item = io::Result<Conn>> + Send + 'static {
    let (tx, rx) = mpsc::channel::<Conn>(64);
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let per_address: Arc<Mutex<HashMap<std::net::IpAddr, usize>>> = Arc::default();
    tokio::spawn(async move {
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
                    // Out of descriptors and the like: let the kernel catch up.
                    debug!(error = %e, "Flight: accept failed.");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            {
                let mut counts = per_address.lock().unwrap_or_else(PoisonError::into_inner);
                let n = counts.entry(addr.ip()).or_default();
                if *n >= MAX_CONNECTIONS_PER_ADDRESS {
                    debug!(%addr, "Flight: the address holds as many connections as it may.");
                    continue;
                }
                *n += 1;
            }
            let slot = Arc::new(Slot {
                _permit: permit,
                addr: addr.ip(),
                per_address: Arc::clone(&per_address),
            });
            // Small writes (a schema, a short batch) go out at once.
            let _ = stream.set_nodelay(true);
            let peer = Peer {
                addr,
                certificate: None,
                _slot: slot,
            };
            let Ok(handshake) = Arc::clone(&handshakes).acquire_owned().await else {
                return;
            };
            let tx = tx.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _handshake = handshake;
                // A peer that connects and says nothing holds no place for long.
                if tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.readable())
                    .await
                    .is_err()
                {
                    debug!(%addr, "Flight: the client sent nothing.");
                    return;
                }
                let Some(acceptor) = acceptor else {
                    let _ = tx.send(Conn::Plain(stream, peer)).await;
                    return;
                };
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        let certificate = tls
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|chain| chain.first())
                            .and_then(|der| crate::tls::peer_certificate(der))
                            .map(Arc::new);
                        let peer = Peer {
                            certificate,
                            ..peer
                        };
                        let _ = tx.send(Conn::Tls(Box::new(tls), peer)).await;
                    }
                    Ok(Err(e)) => debug!(%addr, error = %e, "Flight: TLS handshake failed."),
                    Err(_) => debug!(%addr, "Flight: TLS handshake timed out."),
                }
            });
        }
    });
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|conn| (Ok(conn), rx))
    })
}
