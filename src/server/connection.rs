//! One client connection: length-prefixed frames in, responses out in request order.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::dispatch::{self, Outcome};
use crate::broker::Context;

/// Largest read-buffer growth step: a client announcing a 100 MiB frame gets memory only as
/// fast as it actually sends bytes.
const READ_CHUNK_BYTES: usize = 256 * 1024;
/// Responses are written once this much is pending, or when no further request is buffered.
const WRITE_FLUSH_BYTES: usize = 1024 * 1024;

/// A client connection and its buffers.
///
/// It exists to own framing: Kafka answers a connection's requests strictly in the order they
/// arrived, so one task reads a frame, runs its handler, and queues the response before it
/// looks at the next frame. Pipelined requests are answered in one write.
pub struct Connection {
    reader: OwnedReadHalf,
    writer: OwnedWriteHalf,
    peer: SocketAddr,
    ctx: Arc<Context>,
    rbuf: BytesMut,
    wbuf: BytesMut,
    /// The client id of the last request header that had one, for log lines.
    client_id: Option<String>,
}

/// Why a connection ended.
enum Close {
    PeerClosed,
    Shutdown,
    Io(std::io::Error),
    Protocol(String),
}

impl Connection {
    pub fn new(socket: TcpStream, peer: SocketAddr, ctx: Arc<Context>) -> Connection {
        let (reader, writer) = socket.into_split();
        Connection {
            reader,
            writer,
            peer,
            ctx,
            rbuf: BytesMut::with_capacity(8 * 1024),
            wbuf: BytesMut::new(),
            client_id: None,
        }
    }

    /// Serves the connection until the client leaves, misbehaves, or the broker shuts down.
    pub async fn run(mut self, shutdown: watch::Receiver<bool>) {
        tracing::debug!(peer = %self.peer, "connection opened");
        self.ctx.metrics.connection_opened();
        let result = self.serve(shutdown).await;
        self.ctx.metrics.connection_closed();
        match result {
            Close::PeerClosed => tracing::debug!(peer = %self.peer, "connection closed by client"),
            Close::Shutdown => tracing::debug!(peer = %self.peer, "connection closed for shutdown"),
            Close::Io(e) => tracing::debug!(peer = %self.peer, error = %e, "connection i/o error"),
            Close::Protocol(why) => {
                let client_id = self.client_id.as_deref().unwrap_or("");
                tracing::warn!(peer = %self.peer, client_id, "closing connection: {why}")
            }
        }
        let _ = self.writer.shutdown().await;
    }

    async fn serve(&mut self, mut shutdown: watch::Receiver<bool>) -> Close {
        let max_frame = self.ctx.config.socket_request_max_bytes;
        loop {
            match self.next_frame(max_frame) {
                Err(why) => {
                    let _ = self.flush().await;
                    return Close::Protocol(why);
                }
                Ok(Some(frame)) => {
                    if let Some(id) = dispatch::peek_client_id(&frame) {
                        // Clients keep one id per connection: compare, and allocate only on change.
                        if self.client_id.as_deref() != Some(id) {
                            self.client_id = Some(id.to_string());
                        }
                    }
                    let handled = tokio::select! {
                        out = dispatch::handle(&self.ctx, self.peer, frame) => out,
                        _ = shutdown.wait_for(|v| *v) => return Close::Shutdown,
                    };
                    match handled {
                        Outcome::Respond(bytes) => self.wbuf.extend_from_slice(&bytes),
                        Outcome::NoResponse => {}
                        Outcome::Close(why) => {
                            let _ = self.flush().await;
                            return Close::Protocol(why);
                        }
                    }
                    if self.wbuf.len() >= WRITE_FLUSH_BYTES || !self.has_complete_frame() {
                        if let Err(e) = self.flush().await {
                            return Close::Io(e);
                        }
                    }
                }
                Ok(None) => {
                    if let Err(e) = self.flush().await {
                        return Close::Io(e);
                    }
                    if self.rbuf.capacity() - self.rbuf.len() < 4096 {
                        let want = self.wanted_bytes().clamp(4096, READ_CHUNK_BYTES);
                        self.rbuf.reserve(want);
                    }
                    let n = tokio::select! {
                        r = self.reader.read_buf(&mut self.rbuf) => r,
                        _ = shutdown.wait_for(|v| *v) => return Close::Shutdown,
                    };
                    match n {
                        Ok(0) if self.rbuf.is_empty() => return Close::PeerClosed,
                        Ok(0) => {
                            return Close::Protocol(format!(
                                "truncated frame: client closed with {} bytes of a frame unread",
                                self.rbuf.len()
                            ))
                        }
                        Ok(_) => {}
                        Err(e) => return Close::Io(e),
                    }
                }
            }
        }
    }

    /// Bytes still missing for the frame at the head of the read buffer.
    fn wanted_bytes(&self) -> usize {
        if self.rbuf.len() < 4 {
            return 4 - self.rbuf.len();
        }
        let size = i32::from_be_bytes([self.rbuf[0], self.rbuf[1], self.rbuf[2], self.rbuf[3]]);
        (size.max(0) as usize + 4).saturating_sub(self.rbuf.len())
    }

    fn has_complete_frame(&self) -> bool {
        self.rbuf.len() >= 4 && self.wanted_bytes() == 0
    }

    /// Splits the next complete frame off the read buffer, or says why the stream is invalid.
    fn next_frame(&mut self, max_frame: usize) -> Result<Option<bytes::Bytes>, String> {
        if self.rbuf.len() < 4 {
            return Ok(None);
        }
        let size = i32::from_be_bytes([self.rbuf[0], self.rbuf[1], self.rbuf[2], self.rbuf[3]]);
        if size < 0 {
            return Err(format!("negative frame size {size}"));
        }
        let size = size as usize;
        if size > max_frame {
            return Err(format!(
                "frame of {size} bytes is larger than socket.request.max.bytes ({max_frame})"
            ));
        }
        if self.rbuf.len() < 4 + size {
            return Ok(None);
        }
        self.rbuf.advance(4);
        Ok(Some(self.rbuf.split_to(size).freeze()))
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if !self.wbuf.is_empty() {
            self.writer.write_all(&self.wbuf).await?;
            self.wbuf.clear();
        }
        Ok(())
    }
}
