//! One client connection: length-prefixed frames in, responses out in request order.

use std::net::SocketAddr;
use std::sync::Arc;

use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::dispatch::{self, Outcome};
use crate::broker::Context;

/// Largest read-buffer growth step: a client announcing a 100 MiB frame gets memory only as
/// fast as it actually sends bytes.
const READ_CHUNK_BYTES: usize = 256 * 1024;
/// Responses are written once this much is pending, or when no further request is buffered.
const WRITE_FLUSH_BYTES: usize = 1024 * 1024;
/// While a request is being handled the socket is still read, so that a client that closes
/// it (an abandoned long-poll Fetch) frees its connection at once; pipelined bytes are
/// buffered up to this much meanwhile.
const PIPELINE_READ_BYTES: usize = 64 * 1024;
/// Buffers that grew past this for one large frame or response are given back afterwards.
const SHRINK_ABOVE_BYTES: usize = 256 * 1024;

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
    /// `queued.max.request.bytes`, shared by every connection of the listener (None: no
    /// bound), and this connection's share of it for the frame at the head of `rbuf`.
    pool: Option<Arc<Semaphore>>,
    held: Option<OwnedSemaphorePermit>,
}

/// Why a connection ended.
enum Close {
    PeerClosed,
    /// The client closed its socket while a request of it was still being handled.
    Abandoned,
    Idle(Duration),
    Shutdown,
    Io(std::io::Error),
    Protocol(String),
}

impl Connection {
    pub fn new(
        socket: TcpStream,
        peer: SocketAddr,
        ctx: Arc<Context>,
        pool: Option<Arc<Semaphore>>,
    ) -> Connection {
        let (reader, writer) = socket.into_split();
        Connection {
            reader,
            writer,
            peer,
            ctx,
            rbuf: BytesMut::with_capacity(8 * 1024),
            wbuf: BytesMut::new(),
            client_id: None,
            pool,
            held: None,
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
            Close::Abandoned => {
                tracing::debug!(peer = %self.peer, "client closed its connection while a request was pending; the request was dropped")
            }
            Close::Idle(after) => {
                tracing::debug!(peer = %self.peer, idle_ms = after.as_millis() as u64, "closing idle connection (connections.max.idle.ms)")
            }
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
        let idle = Duration::from_millis(self.ctx.config.connections_max_idle_ms);
        let mut last_request = Instant::now();
        loop {
            match self.next_frame(max_frame) {
                Err(why) => {
                    let _ = self.flush().await;
                    return Close::Protocol(why);
                }
                Ok(Some(frame)) => {
                    last_request = Instant::now();
                    if let Some(id) = dispatch::peek_client_id(&frame) {
                        // Clients keep one id per connection: compare, and allocate only on change.
                        if self.client_id.as_deref() != Some(id) {
                            self.client_id = Some(id.to_string());
                        }
                    }
                    let handled = {
                        let handling = dispatch::handle(&self.ctx, self.peer, frame);
                        tokio::pin!(handling);
                        loop {
                            if self.rbuf.capacity() - self.rbuf.len() < 4096 {
                                self.rbuf.reserve(4096);
                            }
                            tokio::select! {
                                out = &mut handling => break out,
                                _ = shutdown.wait_for(|v| *v) => return Close::Shutdown,
                                r = self.reader.read_buf(&mut self.rbuf),
                                    if self.rbuf.len() < PIPELINE_READ_BYTES => match r {
                                    Ok(0) => return Close::Abandoned,
                                    Ok(_) => {}
                                    Err(e) => return Close::Io(e),
                                },
                            }
                        }
                    };
                    // The frame is handled: its share of queued.max.request.bytes is free.
                    self.held = None;
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
                    if let Some(close) = self.reserve_for_head_frame(&mut shutdown).await {
                        return close;
                    }
                    if self.rbuf.capacity() - self.rbuf.len() < 4096 {
                        let want = self.wanted_bytes().clamp(4096, READ_CHUNK_BYTES);
                        self.rbuf.reserve(want);
                    }
                    let n = tokio::select! {
                        r = self.reader.read_buf(&mut self.rbuf) => r,
                        _ = tokio::time::sleep_until(last_request + idle) => {
                            return Close::Idle(idle);
                        }
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

    /// Before the body of the frame at the head of the read buffer is read, takes its size
    /// from the listener's `queued.max.request.bytes` pool, waiting while other connections
    /// hold it all. A frame larger than the whole pool takes the whole pool.
    async fn reserve_for_head_frame(
        &mut self,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<Close> {
        let pool = self.pool.as_ref()?;
        if self.held.is_some() || self.rbuf.len() < 4 {
            return None;
        }
        let size = i32::from_be_bytes([self.rbuf[0], self.rbuf[1], self.rbuf[2], self.rbuf[3]]);
        let want = (size.max(0) as usize)
            .clamp(1, self.ctx.config.queued_max_request_bytes.max(1) as usize);
        let want = u32::try_from(want).unwrap_or(u32::MAX);
        tokio::select! {
            p = pool.clone().acquire_many_owned(want) => {
                self.held = p.ok();
                None
            }
            _ = shutdown.wait_for(|v| *v) => Some(Close::Shutdown),
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
        // One large response or request should not pin its memory for the connection's life.
        if self.wbuf.capacity() > SHRINK_ABOVE_BYTES {
            self.wbuf = BytesMut::new();
        }
        if self.rbuf.capacity() > SHRINK_ABOVE_BYTES && self.rbuf.len() < 4096 {
            let rest = self.rbuf.split();
            self.rbuf = BytesMut::with_capacity(8 * 1024);
            self.rbuf.extend_from_slice(&rest);
        }
        Ok(())
    }
}
