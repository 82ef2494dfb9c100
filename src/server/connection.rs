//! One client connection: length-prefixed frames in, responses out in request order.

use std::net::SocketAddr;
use std::sync::Arc;

use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;

use super::dispatch;
use super::wire::Outcome;
use crate::context::Context;
use crate::listeners::SecurityProtocol;
use crate::transport::Transport;

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
    io: Transport,
    peer: SocketAddr,
    /// The listener, the principal and where its authentication stands.
    session: super::sasl::Session,
    ctx: Arc<Context>,
    rbuf: BytesMut,
    wbuf: BytesMut,
    /// The client id of the last request header that had one, for log lines.
    client_id: Option<String>,
    /// `queued.max.request.bytes`, shared by every connection of the listener (None: no
    /// bound), and how many of its bytes this connection holds: those it has read and not
    /// yet handled. Bytes are taken as they arrive, never as a length prefix announces them,
    /// so a client that announces a large frame and stalls holds only what it sent.
    pool: Option<Arc<Semaphore>>,
    held: usize,
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

impl Drop for Connection {
    fn drop(&mut self) {
        // Whatever this connection still held of queued.max.request.bytes goes back.
        let held = self.held;
        self.give_back(held);
    }
}

impl Connection {
    pub fn new(
        io: Transport,
        peer: SocketAddr,
        listener: Arc<str>,
        protocol: SecurityProtocol,
        certificate_principal: Option<String>,
        ctx: Arc<Context>,
        pool: Option<Arc<Semaphore>>,
    ) -> Connection {
        let mut session = super::sasl::Session::new(listener, protocol);
        if let Some(p) = certificate_principal {
            session.principal = Arc::from(p);
        }
        Connection {
            io,
            peer,
            session,
            ctx,
            rbuf: BytesMut::with_capacity(8 * 1024),
            wbuf: BytesMut::new(),
            client_id: None,
            pool,
            held: 0,
        }
    }

    /// Serves the connection until the client leaves, misbehaves, or the broker shuts down.
    pub async fn run(mut self, shutdown: watch::Receiver<bool>) {
        tracing::debug!(peer = %self.peer, "connection opened");
        self.ctx.metrics.connection_opened();
        let result = self.serve(shutdown).await;
        self.ctx.metrics.connection_closed();
        // Kafka's disconnect listener: share sessions opened here end with the connection.
        crate::api::share_fetch::connection_closed(&self.ctx, &self.session.listener, self.peer)
            .await;
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
        self.io.shutdown().await;
    }

    async fn serve(&mut self, mut shutdown: watch::Receiver<bool>) -> Close {
        let max_request_bytes = self.ctx.config.socket_request_max_bytes;
        let idle = Duration::from_millis(self.ctx.config.connections_max_idle_ms);
        let mut last_request = Instant::now();
        // The client closed its socket: complete requests already read are still carried
        // out, waiting ones dropped, and nothing more is read or answered.
        let mut peer_gone = false;
        let mut dropped_any = false;
        loop {
            if let Some(until) = self.session.muted_until.take() {
                // A throttled client: its response goes out now, its next request is read
                // once the throttle time has passed.
                if until > Instant::now() {
                    if let Err(e) = self.flush().await {
                        return Close::Io(e);
                    }
                    tokio::select! {
                        _ = tokio::time::sleep_until(until) => {}
                        _ = shutdown.wait_for(|v| *v) => return Close::Shutdown,
                    }
                    last_request = Instant::now();
                }
            }
            // Before SASL authentication, frames are bounded by Kafka's
            // sasl.server.max.receive.size: an anonymous client cannot make the broker
            // buffer a 100 MiB request.
            let max_frame = if self.session.authenticated() {
                max_request_bytes
            } else {
                max_request_bytes.min(crate::security::SASL_MAX_RECEIVE_BYTES)
            };
            match self.next_frame(max_frame) {
                Err(why) => {
                    let _ = self.flush().await;
                    return Close::Protocol(why);
                }
                Ok(Some(frame)) => {
                    last_request = Instant::now();
                    let frame_bytes = frame.len() + 4;
                    if let Some(id) = dispatch::peek_client_id(&frame) {
                        // Clients keep one id per connection: compare, and allocate only on change.
                        if self.client_id.as_deref() != Some(id) {
                            self.client_id = Some(id.to_string());
                        }
                    }
                    // A request that only waits (a long-poll Fetch, a JoinGroup or SyncGroup
                    // parked for its group) is dropped when its client closes the socket;
                    // any other runs to its end, and so do complete requests already
                    // buffered behind it, so an acks=0 Produce sent just before a close is
                    // still written, as Kafka writes it.
                    let droppable = dispatch::droppable_on_close(&frame);
                    let handled = {
                        let handling =
                            dispatch::handle(&self.ctx, self.peer, &mut self.session, frame);
                        tokio::pin!(handling);
                        loop {
                            if self.rbuf.capacity() - self.rbuf.len() < 4096 {
                                self.rbuf.reserve(4096);
                            }
                            tokio::select! {
                                out = &mut handling => break out,
                                _ = shutdown.wait_for(|v| *v) => return Close::Shutdown,
                                _ = std::future::ready(()), if peer_gone && droppable => {
                                    dropped_any = true;
                                    break Outcome::NoResponse;
                                }
                                r = self.io.read_buf(&mut self.rbuf),
                                    if !peer_gone && self.rbuf.len() < PIPELINE_READ_BYTES => match r {
                                    Ok(0) => peer_gone = true,
                                    Ok(_) => {}
                                    Err(e) => return Close::Io(e),
                                },
                            }
                        }
                    };
                    // The frame is handled: its share of queued.max.request.bytes is free.
                    self.give_back(frame_bytes.min(self.held));
                    if peer_gone {
                        // Nobody reads answers any more; finish what is buffered, then go.
                        if let Outcome::Close(why) | Outcome::RespondThenClose(_, why) = handled {
                            return Close::Protocol(why);
                        }
                        continue;
                    }
                    match handled {
                        Outcome::Respond(bytes) => self.wbuf.extend_from_slice(&bytes),
                        Outcome::NoResponse => {}
                        Outcome::Close(why) => {
                            let _ = self.flush().await;
                            return Close::Protocol(why);
                        }
                        Outcome::RespondThenClose(bytes, why) => {
                            self.wbuf.extend_from_slice(&bytes);
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
                    if peer_gone {
                        if !self.rbuf.is_empty() {
                            return Close::Protocol(format!(
                                "truncated frame: client closed with {} bytes of a frame unread",
                                self.rbuf.len()
                            ));
                        }
                        return if dropped_any {
                            Close::Abandoned
                        } else {
                            Close::PeerClosed
                        };
                    }
                    if let Err(e) = self.flush().await {
                        return Close::Io(e);
                    }
                    // Wait until the socket has bytes, then take this read's share of
                    // queued.max.request.bytes (waiting while other connections hold it
                    // all), then read: an idle connection holds none of the pool.
                    tokio::select! {
                        r = self.io.readable() => if let Err(e) = r {
                            return Close::Io(e);
                        },
                        _ = tokio::time::sleep_until(last_request + idle) => {
                            return Close::Idle(idle);
                        }
                        _ = shutdown.wait_for(|v| *v) => return Close::Shutdown,
                    }
                    let want = self.wanted_bytes().clamp(4096, READ_CHUNK_BYTES);
                    let taken = match self
                        .take_from_pool(want, &mut shutdown, last_request + idle)
                        .await
                    {
                        Ok(t) => t,
                        Err(close) => return close,
                    };
                    // Held from now on, so an early return gives it back (on drop).
                    self.held += taken;
                    let start = self.rbuf.len();
                    self.rbuf.resize(start + want, 0);
                    let n = match self.io.try_read(&mut self.rbuf[start..]) {
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            self.rbuf.truncate(start);
                            self.give_back(taken);
                            continue;
                        }
                        r => r,
                    };
                    let got = *n.as_ref().unwrap_or(&0);
                    self.rbuf.truncate(start + got);
                    self.give_back(taken - got.min(taken));
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

    /// Takes `want` bytes from the `queued.max.request.bytes` pool (0 when unbounded),
    /// waiting while other connections hold it all; an idle deadline or shutdown ends the
    /// wait.
    async fn take_from_pool(
        &mut self,
        want: usize,
        shutdown: &mut watch::Receiver<bool>,
        idle_deadline: Instant,
    ) -> Result<usize, Close> {
        let Some(pool) = self.pool.clone() else {
            return Ok(0);
        };
        let want = want.min(self.ctx.config.queued_max_request_bytes.max(1) as usize);
        let n = u32::try_from(want).unwrap_or(u32::MAX);
        // A connection part-way through a frame may go past a pool that stays exhausted:
        // when every holder is such a connection, none could otherwise finish its frame and
        // give bytes back. The bound is therefore soft, by the frames in progress.
        let mid_frame = !self.rbuf.is_empty();
        let patience = tokio::time::sleep(Duration::from_millis(200));
        tokio::select! {
            p = pool.acquire_many(n) => {
                if let Ok(p) = p {
                    p.forget();
                }
                Ok(n as usize)
            }
            _ = patience, if mid_frame => Ok(0),
            _ = tokio::time::sleep_until(idle_deadline) => Err(Close::Idle(
                Duration::from_millis(self.ctx.config.connections_max_idle_ms),
            )),
            _ = shutdown.wait_for(|v| *v) => Err(Close::Shutdown),
        }
    }

    /// Returns `n` of the bytes this connection holds to the pool.
    fn give_back(&mut self, n: usize) {
        if let Some(pool) = &self.pool {
            if n > 0 {
                pool.add_permits(n);
            }
        }
        self.held = self.held.saturating_sub(n);
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
            self.io.write_all(&self.wbuf).await?;
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
