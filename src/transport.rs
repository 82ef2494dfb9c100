//! A connection's bytes: the TCP socket as is, or TLS through rustls's sans-I/O API. The
//! broker's listeners use it as the server side, and brokers dialing each other on an SSL
//! or SASL_SSL inter-broker listener as the client side.
//!
//! The connection reads in two ways, and both must work the same over TLS: "wait until
//! readable, then take a share of `queued.max.request.bytes`, then read without waiting"
//! (so an idle connection holds none of the pool), and a plain read while a request is
//! being handled. rustls's own connection object does the cryptography; this type only
//! moves ciphertext between it and the socket, so no TLS stream wrapper hides readiness.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// Ciphertext read from the socket at a time (four full TLS records).
const CIPHERTEXT_READ_BYTES: usize = 4 * (16 * 1024 + 512);

/// The socket, with TLS state when the listener is SSL or SASL_SSL.
pub struct Transport {
    reader: OwnedReadHalf,
    writer: OwnedWriteHalf,
    tls: Option<Box<Tls>>,
}

struct Tls {
    conn: rustls::Connection,
    /// Decrypted bytes not yet taken by the connection. Ciphertext is read only when this
    /// is empty, so it holds at most one read's worth.
    plaintext: BytesMut,
    /// The peer closed (TCP end of stream or TLS close_notify).
    eof: bool,
    scratch: Vec<u8>,
    /// Ciphertext rustls produced outside a write (a key update's answer), sent with the
    /// next write.
    outgoing: Vec<u8>,
}

fn invalid(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl Tls {
    /// Feeds ciphertext to rustls and moves what it decrypts into `plaintext`.
    fn feed(&mut self, mut ciphertext: &[u8]) -> io::Result<()> {
        while !ciphertext.is_empty() {
            self.conn.read_tls(&mut ciphertext)?;
            let state = match self.conn.process_new_packets() {
                Ok(s) => s,
                Err(e) => {
                    // rustls queued an alert for the peer; send it with what follows.
                    let _ = self.conn.write_tls(&mut self.outgoing);
                    return Err(invalid(e));
                }
            };
            let mut n = state.plaintext_bytes_to_read();
            while n > 0 {
                let start = self.plaintext.len();
                self.plaintext.resize(start + n, 0);
                let got = self.conn.reader().read(&mut self.plaintext[start..])?;
                self.plaintext.truncate(start + got);
                n -= got.min(n);
                if got == 0 {
                    break;
                }
            }
            if state.peer_has_closed() {
                self.eof = true;
            }
        }
        while self.conn.wants_write() {
            self.conn.write_tls(&mut self.outgoing)?;
        }
        Ok(())
    }
}

impl Transport {
    pub fn plain(socket: TcpStream) -> Transport {
        let (reader, writer) = socket.into_split();
        Transport {
            reader,
            writer,
            tls: None,
        }
    }

    /// Runs the TLS handshake (bounded by `timeout`) and returns the transport with the
    /// client certificate's DER, if the client sent one. Plaintext on a TLS port, garbage,
    /// or an untrusted certificate fail here.
    pub async fn tls(
        socket: TcpStream,
        config: Arc<rustls::ServerConfig>,
        timeout: Duration,
    ) -> io::Result<(Transport, Option<Vec<u8>>)> {
        let conn = rustls::ServerConnection::new(config).map_err(invalid)?;
        let t = Transport::with_tls(socket, conn.into());
        let t = t.handshake_within(timeout).await?;
        let peer = t
            .tls
            .as_ref()
            .and_then(|t| t.conn.peer_certificates())
            .and_then(|c| c.first())
            .map(|c| c.as_ref().to_vec());
        Ok((t, peer))
    }

    /// The client side: runs the TLS handshake with a broker (bounded by `timeout`),
    /// verifying its certificate for `server_name`.
    pub async fn tls_client(
        socket: TcpStream,
        config: Arc<rustls::ClientConfig>,
        server_name: rustls_pki_types::ServerName<'static>,
        timeout: Duration,
    ) -> io::Result<Transport> {
        let conn = rustls::ClientConnection::new(config, server_name).map_err(invalid)?;
        Transport::with_tls(socket, conn.into())
            .handshake_within(timeout)
            .await
    }

    fn with_tls(socket: TcpStream, conn: rustls::Connection) -> Transport {
        let mut t = Transport::plain(socket);
        t.tls = Some(Box::new(Tls {
            conn,
            plaintext: BytesMut::new(),
            eof: false,
            scratch: vec![0; CIPHERTEXT_READ_BYTES],
            outgoing: Vec::new(),
        }));
        t
    }

    async fn handshake_within(mut self, timeout: Duration) -> io::Result<Transport> {
        let t = &mut self;
        match tokio::time::timeout(timeout, t.handshake()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                // Send the alert rustls queued, so the client reports why.
                let _ = t.flush_outgoing().await;
                return Err(e);
            }
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "TLS handshake not finished in time",
                ))
            }
        }
        Ok(self)
    }

    async fn handshake(&mut self) -> io::Result<()> {
        loop {
            self.flush_outgoing().await?;
            let tls = self.tls.as_mut().expect("handshake on a TLS transport");
            if !tls.conn.is_handshaking() {
                return Ok(());
            }
            if tls.eof {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the peer closed during the TLS handshake",
                ));
            }
            self.reader.readable().await?;
            let tls = self.tls.as_mut().expect("handshake on a TLS transport");
            let n = match self.reader.try_read(&mut tls.scratch) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the peer closed during the TLS handshake",
                    ))
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            };
            let scratch = std::mem::take(&mut tls.scratch);
            let fed = tls.feed(&scratch[..n]);
            tls.scratch = scratch;
            fed?;
        }
    }

    async fn flush_outgoing(&mut self) -> io::Result<()> {
        if let Some(tls) = &mut self.tls {
            while tls.conn.wants_write() {
                tls.conn.write_tls(&mut tls.outgoing)?;
            }
            if !tls.outgoing.is_empty() {
                self.writer.write_all(&tls.outgoing).await?;
                tls.outgoing.clear();
            }
        }
        Ok(())
    }

    /// Waits until a read may return something (data or end of stream).
    pub async fn readable(&self) -> io::Result<()> {
        if let Some(t) = &self.tls {
            if !t.plaintext.is_empty() || t.eof {
                return Ok(());
            }
        }
        self.reader.readable().await
    }

    /// Reads what is there without waiting: WouldBlock when nothing is (over TLS also when
    /// only part of a record has arrived), Ok(0) at end of stream.
    pub fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(tls) = &mut self.tls else {
            return self.reader.try_read(buf);
        };
        // Decrypt until `buf` can be filled or the socket has nothing more, so a large
        // request costs as few reads as it does in plaintext; `plaintext` stays below
        // `buf.len()` plus one read.
        while tls.plaintext.len() < buf.len() && !tls.eof {
            let n = match self.reader.try_read(&mut tls.scratch) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if tls.plaintext.is_empty() => return Err(e),
                // What was decrypted goes first; the error comes back on the next read.
                Err(_) => break,
            };
            if n == 0 {
                tls.eof = true;
                break;
            }
            let scratch = std::mem::take(&mut tls.scratch);
            let fed = tls.feed(&scratch[..n]);
            tls.scratch = scratch;
            fed?;
        }
        if !tls.plaintext.is_empty() {
            let n = buf.len().min(tls.plaintext.len());
            buf[..n].copy_from_slice(&tls.plaintext[..n]);
            tls.plaintext.advance(n);
            return Ok(n);
        }
        if tls.eof {
            return Ok(0);
        }
        Err(io::ErrorKind::WouldBlock.into())
    }

    /// Reads at least one byte into `buf` (Ok(0) at end of stream). Cancel-safe: nothing is
    /// consumed across its only await.
    pub async fn read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        loop {
            self.readable().await?;
            let start = buf.len();
            buf.resize(start + 4096, 0);
            match self.try_read(&mut buf[start..]) {
                Ok(n) => {
                    buf.truncate(start + n);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => buf.truncate(start),
                Err(e) => {
                    buf.truncate(start);
                    return Err(e);
                }
            }
        }
    }

    pub async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        let Some(tls) = &mut self.tls else {
            return self.writer.write_all(data).await;
        };
        let mut rest = data;
        while !rest.is_empty() {
            let n = tls.conn.writer().write(rest)?;
            rest = &rest[n..];
            while tls.conn.wants_write() {
                tls.conn.write_tls(&mut tls.outgoing)?;
            }
            if !tls.outgoing.is_empty() {
                self.writer.write_all(&tls.outgoing).await?;
                tls.outgoing.clear();
            }
            if n == 0 && !rest.is_empty() && !tls.conn.wants_write() {
                return Err(io::Error::other("TLS refused more plaintext"));
            }
        }
        Ok(())
    }

    /// Ends the connection: TLS close_notify first, then the TCP write side.
    pub async fn shutdown(&mut self) {
        if let Some(tls) = &mut self.tls {
            tls.conn.send_close_notify();
        }
        let _ = self.flush_outgoing().await;
        let _ = self.writer.shutdown().await;
    }
}
