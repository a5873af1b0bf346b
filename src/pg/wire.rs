//! Frames in and out: the client's messages decoded by pgwire once their announced length is
//! known to be within `limits.max_request_bytes` (so a huge length costs nothing), and the
//! server's written into one buffer that is flushed when the client waits for it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use pgwire::messages::{DecodeContext, PgWireBackendMessage, PgWireFrontendMessage};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// A plain or TLS connection.
pub enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS.
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Why reading a message failed.
#[derive(Debug)]
pub enum ReadError {
    /// The connection closed or broke.
    Closed,
    /// A message announced more bytes than the limit.
    TooLarge(usize),
    /// A message that does not decode.
    Malformed(String),
}

/// Write buffer size past which rows are flushed while a result streams.
pub const FLUSH_AT: usize = 256 * 1024;

/// One connection's frames.
pub struct Wire {
    io: Stream,
    read: BytesMut,
    /// Bytes waiting to be flushed.
    pub out: BytesMut,
    ctx: DecodeContext,
    limit: usize,
}

impl Wire {
    /// Frames over `io`, expecting a startup packet first.
    pub fn new(io: Stream, read: BytesMut, limit: usize) -> Self {
        let mut ctx = DecodeContext::new(pgwire::messages::ProtocolVersion::PROTOCOL3_0);
        ctx.awaiting_frontend_ssl = false;
        ctx.awaiting_frontend_startup = true;
        Self {
            io,
            read,
            out: BytesMut::with_capacity(16 * 1024),
            ctx,
            limit,
        }
    }

    /// The client certificate chain's first certificate, when TLS verified one.
    pub fn peer_certificate(&self) -> Option<crate::governance::PeerCertificate> {
        match &self.io {
            Stream::Plain(_) => None,
            Stream::Tls(s) => s
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(|der| crate::tls::peer_certificate(der)),
        }
    }

    /// Whether the connection is encrypted.
    pub fn is_tls(&self) -> bool {
        matches!(self.io, Stream::Tls(_))
    }

    /// After the startup packet: regular typed messages.
    pub fn started(&mut self) {
        self.ctx.awaiting_frontend_startup = false;
    }

    /// The next message.
    ///
    /// # Errors
    /// [`ReadError`]: closed, too large, malformed.
    pub async fn next(&mut self) -> Result<PgWireFrontendMessage, ReadError> {
        loop {
            self.check_length()?;
            if let Some(m) = self.decode()? {
                return Ok(m);
            }
            self.read.reserve(8 * 1024);
            match self.io.read_buf(&mut self.read).await {
                Ok(0) | Err(_) => return Err(ReadError::Closed),
                Ok(_) => {}
            }
        }
    }

    /// Refuses a message whose announced length is past the limit (or impossible) before any
    /// of its body is buffered.
    fn check_length(&self) -> Result<(), ReadError> {
        let at = usize::from(!self.ctx.awaiting_frontend_startup);
        if self.read.len() < at + 4 {
            return Ok(());
        }
        let mut len = &self.read[at..at + 4];
        let announced = len.get_i32();
        let Ok(announced) = usize::try_from(announced) else {
            return Err(ReadError::Malformed("negative message length".into()));
        };
        if announced < 4 {
            return Err(ReadError::Malformed("message length below 4".into()));
        }
        if announced > self.limit {
            return Err(ReadError::TooLarge(announced));
        }
        Ok(())
    }

    fn decode(&mut self) -> Result<Option<PgWireFrontendMessage>, ReadError> {
        // A decoder bug must cost this connection, never the server.
        let ctx = &self.ctx;
        let read = &mut self.read;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            PgWireFrontendMessage::decode(read, ctx)
        })) {
            Ok(Ok(m)) => Ok(m),
            Ok(Err(e)) => Err(ReadError::Malformed(e.to_string())),
            Err(_) => Err(ReadError::Malformed("undecodable message".into())),
        }
    }

    /// Appends a message to the write buffer.
    pub fn send(&mut self, message: &PgWireBackendMessage) {
        // Encoding into a growable buffer fails only on a message past the protocol's size.
        if let Err(e) = message.encode(&mut self.out) {
            tracing::warn!(error = %e, "pg: a message could not be encoded.");
        }
    }

    /// Writes what is buffered.
    ///
    /// # Errors
    /// The connection broke.
    pub async fn flush(&mut self) -> io::Result<()> {
        if !self.out.is_empty() {
            self.io.write_all(&self.out).await?;
            self.out.clear();
        }
        self.io.flush().await
    }

    /// Whether the client has sent bytes not yet read (a pipelined message).
    pub fn has_buffered(&self) -> bool {
        !self.read.is_empty()
    }

    /// Closes the connection after flushing.
    pub async fn close(mut self) {
        let _ = self.flush().await;
        let _ = self.io.shutdown().await;
    }
}
