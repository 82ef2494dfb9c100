//! A minimal Kafka client: one connection, one request at a time. The admin CLI talks to
//! brokers with it (in the versions every Kafka from 3.x on and Klamm understand), and a
//! follower replicates its leader with it.

use std::time::Duration;

use anyhow::{bail, Context as _};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::RequestHeader;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response the CLI accepts (a guard against talking to something that is not Kafka).
const MAX_RESPONSE: usize = 256 << 20;

/// One connection to a broker.
pub struct Client {
    stream: TcpStream,
    correlation_id: i32,
    timeout: Duration,
    client_id: StrBytes,
}

impl Client {
    /// Connects to `bootstrap` (`HOST:PORT`; the first of a comma-separated list).
    pub async fn connect(bootstrap: &str, timeout: Duration) -> anyhow::Result<Client> {
        let addr = bootstrap.split(',').next().unwrap_or_default().trim();
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .with_context(|| format!("connecting to {addr}: timed out"))?
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Client {
            stream,
            correlation_id: 0,
            timeout,
            client_id: StrBytes::from_static_str("klamm-cli"),
        })
    }

    /// Names this client in its requests' headers (brokers log it).
    pub fn with_client_id(mut self, id: String) -> Client {
        self.client_id = StrBytes::from_string(id);
        self
    }

    /// How long each request waits for its response.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Sends `req` at `version` and waits for its response.
    pub async fn send<R: Request>(&mut self, req: &R, version: i16) -> anyhow::Result<R::Response> {
        self.correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let mut body = BytesMut::new();
        header.encode(&mut body, R::header_version(version))?;
        req.encode(&mut body, version)?;
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        frame.put_i32(body.len() as i32);
        frame.extend_from_slice(&body);
        self.stream.write_all(&frame).await?;

        let mut len = [0u8; 4];
        tokio::time::timeout(self.timeout, self.stream.read_exact(&mut len))
            .await
            .context("no response from the broker in time")?
            .context("the broker closed the connection")?;
        let len = i32::from_be_bytes(len);
        if len < 4 || len as usize > MAX_RESPONSE {
            bail!("response frame of {len} bytes: is this a Kafka broker?");
        }
        let mut buf = vec![0u8; len as usize];
        self.stream.read_exact(&mut buf).await?;
        let mut buf = Bytes::from(buf);
        let header = kafka_protocol::messages::ResponseHeader::decode(
            &mut buf,
            R::Response::header_version(version),
        )?;
        if header.correlation_id != self.correlation_id {
            bail!(
                "response for request {} while waiting for {}",
                header.correlation_id,
                self.correlation_id
            );
        }
        let resp = R::Response::decode(&mut buf, version)?;
        if buf.has_remaining() {
            tracing::debug!(left = buf.remaining(), "response had trailing bytes");
        }
        Ok(resp)
    }
}
