//! The SASL exchange of a connection on a SASL_PLAINTEXT or SASL_SSL listener, before any
//! other request is served: SaslHandshake picks the mechanism, then the client's tokens
//! come in SaslAuthenticate requests (handshake v1) or as raw size-prefixed frames
//! (handshake v0), as Kafka's SaslServerAuthenticator takes them.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::wire::{decode_guarded, encode_response, Outcome};
use crate::context::Context;
use crate::listeners::SecurityProtocol;
use crate::security::{self, Mechanism, SaslState, Step};

/// Who is on the other end of a connection and how far its authentication has got.
///
/// It exists so that the connection layer, not a handler, decides what a client may send:
/// until `sasl` is None on a SASL listener, nothing but the exchange is served.
pub struct Session {
    pub listener: Arc<str>,
    pub protocol: SecurityProtocol,
    /// `User:NAME` once authenticated, `User:ANONYMOUS` on listeners without SASL.
    pub principal: Arc<str>,
    /// Some while a SASL listener's client has not yet authenticated.
    pub sasl: Option<SaslState>,
    /// Until when the connection is muted: a client over a quota is not read from until
    /// its throttle time has passed (Kafka's muted channel).
    pub muted_until: Option<tokio::time::Instant>,
    /// The delegation token the client logged in with: such a session may not manage
    /// tokens, and ends when its token expires or is expired.
    pub token: Option<String>,
}

impl Session {
    pub fn new(listener: Arc<str>, protocol: SecurityProtocol) -> Session {
        Session {
            listener,
            protocol,
            principal: Arc::from(security::ANONYMOUS),
            sasl: protocol.sasl().then_some(SaslState::Initial),
            muted_until: None,
            token: None,
        }
    }

    fn authenticated_as(
        &mut self,
        ctx: &Context,
        peer: SocketAddr,
        principal: String,
        token: Option<String>,
    ) {
        tracing::debug!(peer = %peer, principal = %principal, token = ?token, "SASL authentication succeeded");
        ctx.metrics.authentications.inc();
        self.principal = Arc::from(principal);
        self.token = token;
    }

    /// Whether the client may send any request (it has authenticated, or needs not).
    pub fn authenticated(&self) -> bool {
        self.sasl.is_none()
    }
}

/// Decodes an exchange request; one that does not decode closes the connection.
fn decode_or_close<R: kafka_protocol::protocol::Decodable>(
    api: &str,
    version: i16,
    body: &mut Bytes,
) -> Result<R, Outcome> {
    decode_guarded(|| R::decode(body, version))
        .map_err(|e| Outcome::Close(format!("undecodable {api} v{version}: {e}")))
}

/// SaslHandshake before authentication: records the mechanism, or refuses one that is not
/// enabled with UNSUPPORTED_SASL_MECHANISM and the list, then closes (as Kafka does).
pub fn handshake(
    ctx: &Context,
    session: &mut Session,
    peer: SocketAddr,
    version: i16,
    correlation_id: i32,
    mut body: Bytes,
) -> Outcome {
    let req: SaslHandshakeRequest = match decode_or_close("SaslHandshake", version, &mut body) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let enabled = &ctx.sasl_mechanisms;
    let mut resp = SaslHandshakeResponse::default().with_mechanisms(
        enabled
            .iter()
            .map(|m| StrBytes::from_static_str(m.name()))
            .collect(),
    );
    let chosen = Mechanism::from_name(req.mechanism.as_str()).filter(|m| enabled.contains(m));
    let Some(mechanism) = chosen else {
        resp.error_code = ResponseError::UnsupportedSaslMechanism.code();
        let why = format!(
            "client asked for SASL mechanism {:?}, which is not enabled",
            truncated(req.mechanism.as_str())
        );
        return respond_then_close(correlation_id, version, &resp, why);
    };
    tracing::debug!(peer = %peer, mechanism = mechanism.name(), "SASL handshake");
    session.sasl = Some(SaslState::Handshaken {
        mechanism,
        raw: version == 0,
    });
    encode_response(correlation_id, version, &resp)
}

/// SaslAuthenticate after a v1 handshake: runs one step of the exchange.
pub async fn authenticate(
    ctx: &Context,
    session: &mut Session,
    peer: SocketAddr,
    version: i16,
    correlation_id: i32,
    mut body: Bytes,
) -> Outcome {
    let req: SaslAuthenticateRequest = match decode_or_close("SaslAuthenticate", version, &mut body)
    {
        Ok(r) => r,
        Err(close) => return close,
    };
    let Some(state) = session.sasl.take() else {
        return Outcome::Close("SaslAuthenticate outside an exchange".into());
    };
    match run_step(ctx, state, req.auth_bytes).await {
        Step::Challenge(bytes, next) => {
            session.sasl = Some(next);
            let resp = SaslAuthenticateResponse::default().with_auth_bytes(bytes.into());
            encode_response(correlation_id, version, &resp)
        }
        Step::Done {
            principal,
            response,
            token,
            ..
        } => {
            session.authenticated_as(ctx, peer, principal, token);
            let resp = SaslAuthenticateResponse::default().with_auth_bytes(response.into());
            encode_response(correlation_id, version, &resp)
        }
        Step::Failed {
            client_message,
            log,
        } => {
            fail_delay(ctx).await;
            let resp = SaslAuthenticateResponse::default()
                .with_error_code(ResponseError::SaslAuthenticationFailed.code())
                .with_error_message(Some(StrBytes::from_string(client_message)));
            respond_then_close(
                correlation_id,
                version,
                &resp,
                format!("SASL authentication failed: {log}"),
            )
        }
    }
}

/// A raw token after a v0 handshake: the answer goes back size-prefixed with no Kafka
/// header; a failure can only close the connection.
pub async fn raw_token(
    ctx: &Context,
    session: &mut Session,
    peer: SocketAddr,
    frame: Bytes,
) -> Outcome {
    let Some(state) = session.sasl.take() else {
        return Outcome::Close("raw SASL token outside an exchange".into());
    };
    match run_step(ctx, state, frame).await {
        Step::Challenge(bytes, next) => {
            session.sasl = Some(next);
            Outcome::Respond(size_prefixed(&bytes))
        }
        Step::Done {
            principal,
            response,
            token,
            ..
        } => {
            session.authenticated_as(ctx, peer, principal, token);
            Outcome::Respond(size_prefixed(&response))
        }
        Step::Failed { log, .. } => {
            fail_delay(ctx).await;
            Outcome::Close(format!("SASL authentication failed: {log}"))
        }
    }
}

async fn run_step(ctx: &Context, state: SaslState, msg: Bytes) -> Step {
    let verifiers = security::Verifiers {
        users: ctx.users.clone(),
        tokens: ctx.tokens.clone(),
    };
    let now = crate::clock::now_ms();
    // PLAIN hashes the password thousands of times: off the async workers.
    match tokio::task::spawn_blocking(move || security::step(state, &msg, &verifiers, now)).await {
        Ok(step) => step,
        Err(_) => Step::Failed {
            client_message: "Authentication failed".into(),
            log: "the SASL step did not finish".into(),
        },
    }
}

async fn fail_delay(ctx: &Context) {
    ctx.metrics.authentication_failures.inc();
    let ms = ctx.config.connection_failed_authentication_delay_ms;
    if ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
}

fn respond_then_close<R>(correlation_id: i32, version: i16, resp: &R, why: String) -> Outcome
where
    R: kafka_protocol::protocol::Encodable + kafka_protocol::protocol::HeaderVersion,
{
    match encode_response(correlation_id, version, resp) {
        Outcome::Respond(bytes) => Outcome::RespondThenClose(bytes, why),
        other => other,
    }
}

fn size_prefixed(bytes: &[u8]) -> BytesMut {
    let mut out = BytesMut::with_capacity(4 + bytes.len());
    out.put_i32(bytes.len() as i32);
    out.put_slice(bytes);
    out
}

/// A client-chosen string cut short for a log line.
fn truncated(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
