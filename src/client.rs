//! A minimal Kafka client: one connection, one request at a time. The admin CLI talks to
//! brokers with it (in the versions every Kafka from 3.x on and Klamm understand), and
//! brokers talk to each other with it (a follower fetching from its leader, transaction
//! markers, transaction verification), over TLS and SASL when the inter-broker listener
//! asks for them.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    RequestHeader, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::net::TcpStream;

use crate::security::scram::ScramClient;
use crate::security::Mechanism;
use crate::transport::Transport;

/// Largest response the CLI accepts (a guard against talking to something that is not Kafka).
const MAX_RESPONSE: usize = 256 << 20;

/// One connection to a broker.
pub struct Client {
    transport: Transport,
    /// Bytes read and not yet taken by a response.
    inbuf: BytesMut,
    correlation_id: i32,
    timeout: Duration,
    client_id: StrBytes,
}

/// How to reach a listener whose security protocol needs TLS, SASL or both: what brokers
/// use to dial each other on the inter-broker listener.
#[derive(Clone, Default)]
pub struct Security {
    /// TLS with this configuration (the CA that signs the brokers' certificates, and this
    /// broker's own certificate for listeners that ask for one).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// SASL login after connecting.
    pub sasl: Option<SaslLogin>,
}

/// A SASL login: mechanism, user and password.
#[derive(Clone)]
pub struct SaslLogin {
    pub mechanism: Mechanism,
    pub user: String,
    pub password: String,
}

impl Client {
    /// Connects to `bootstrap` (`HOST:PORT`; the first of a comma-separated list).
    pub async fn connect(bootstrap: &str, timeout: Duration) -> anyhow::Result<Client> {
        Self::connect_with(bootstrap, timeout, &Security::default()).await
    }

    /// Connects with TLS and logs in with SASL as `security` says.
    pub async fn connect_with(
        bootstrap: &str,
        timeout: Duration,
        security: &Security,
    ) -> anyhow::Result<Client> {
        let addr = bootstrap.split(',').next().unwrap_or_default().trim();
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .with_context(|| format!("connecting to {addr}: timed out"))?
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        let transport = match &security.tls {
            None => Transport::plain(stream),
            Some(config) => {
                let host = match addr.rsplit_once(':') {
                    Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']'),
                    None => addr,
                };
                let name = rustls_pki_types::ServerName::try_from(host.to_string())
                    .with_context(|| format!("{host:?} is not a TLS server name"))?;
                Transport::tls_client(stream, config.clone(), name, timeout)
                    .await
                    .with_context(|| format!("TLS with {addr}"))?
            }
        };
        let mut client = Client {
            transport,
            inbuf: BytesMut::new(),
            correlation_id: 0,
            timeout,
            client_id: StrBytes::from_static_str("klamm-cli"),
        };
        if let Some(login) = &security.sasl {
            client
                .login(login)
                .await
                .with_context(|| format!("SASL login to {addr} as {}", login.user))?;
        }
        Ok(client)
    }

    /// Authenticates with SaslHandshake v1 and SaslAuthenticate v2, as Kafka's clients do.
    pub async fn login(&mut self, login: &SaslLogin) -> anyhow::Result<()> {
        let hs = self
            .send(
                &SaslHandshakeRequest::default()
                    .with_mechanism(StrBytes::from_static_str(login.mechanism.name())),
                1,
            )
            .await?;
        if hs.error_code != 0 {
            bail!(
                "the broker refused mechanism {} (error {}; it offers {:?})",
                login.mechanism.name(),
                hs.error_code,
                hs.mechanisms.iter().map(|m| m.as_str()).collect::<Vec<_>>()
            );
        }
        match login.mechanism {
            Mechanism::Plain => {
                let token = format!("\0{}\0{}", login.user, login.password);
                self.authenticate(token.into_bytes()).await?;
            }
            Mechanism::Scram(m) => {
                let (mut scram, first) = ScramClient::start(m, &login.user, &login.password);
                let server_first = self.authenticate(first).await?;
                let last = scram
                    .answer(&server_first)
                    .map_err(|e| anyhow::anyhow!("SCRAM: {e:?}"))?;
                let server_final = self.authenticate(last).await?;
                scram
                    .verify(&server_final)
                    .map_err(|e| anyhow::anyhow!("SCRAM: {e:?}"))?;
            }
            Mechanism::OAuthBearer => bail!("OAUTHBEARER logins are not supported here"),
        }
        Ok(())
    }

    /// One SaslAuthenticate round: sends `bytes`, returns the broker's.
    async fn authenticate(&mut self, bytes: Vec<u8>) -> anyhow::Result<Bytes> {
        let resp: SaslAuthenticateResponse = self
            .send(
                &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(bytes)),
                2,
            )
            .await?;
        if resp.error_code != 0 {
            bail!(
                "authentication failed (error {}): {}",
                resp.error_code,
                resp.error_message.as_deref().unwrap_or("")
            );
        }
        Ok(resp.auth_bytes)
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

    /// Reads until `n` bytes are buffered, in reads as large as what is missing (a
    /// follower's fetch response is megabytes). Cancel-safe.
    async fn fill(&mut self, n: usize) -> anyhow::Result<()> {
        while self.inbuf.len() < n {
            // No await between the resize and the truncation: a timeout that drops this
            // future leaves no zeros in the buffer.
            self.transport.readable().await?;
            let start = self.inbuf.len();
            self.inbuf.resize(n, 0);
            match self.transport.try_read(&mut self.inbuf[start..]) {
                Ok(0) => {
                    self.inbuf.truncate(start);
                    bail!("the broker closed the connection");
                }
                Ok(got) => self.inbuf.truncate(start + got),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => self.inbuf.truncate(start),
                Err(e) => {
                    self.inbuf.truncate(start);
                    return Err(e.into());
                }
            }
        }
        Ok(())
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
        self.transport.write_all(&frame).await?;

        let timeout = self.timeout;
        tokio::time::timeout(timeout, self.fill(4))
            .await
            .context("no response from the broker in time")??;
        let len = i32::from_be_bytes([self.inbuf[0], self.inbuf[1], self.inbuf[2], self.inbuf[3]]);
        if len < 4 || len as usize > MAX_RESPONSE {
            bail!("response frame of {len} bytes: is this a Kafka broker?");
        }
        tokio::time::timeout(timeout, self.fill(4 + len as usize))
            .await
            .context("no complete response from the broker in time")??;
        self.inbuf.advance(4);
        let mut buf = self.inbuf.split_to(len as usize).freeze();
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
