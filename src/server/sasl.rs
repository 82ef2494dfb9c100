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
    /// The mechanism the client authenticated with: a re-authentication must use it too.
    pub mechanism: Option<Mechanism>,
    /// When the SASL session ends (KIP-368), in ms since the epoch; None: never. Past it,
    /// the connection is closed at its next request unless it re-authenticated.
    pub expires_at_ms: Option<i64>,
    /// A re-authentication is under way: SaslHandshake came on an authenticated session.
    reauthenticating: bool,
    /// When the last re-authentication began: Kafka allows one a second.
    last_reauth_ms: Option<i64>,
    /// The client asked to re-authenticate with another mechanism: its SaslAuthenticate
    /// gets this message, as Kafka's REAUTH_BAD_MECHANISM state answers.
    bad_reauth_mechanism: Option<String>,
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
            mechanism: None,
            expires_at_ms: None,
            reauthenticating: false,
            last_reauth_ms: None,
            bad_reauth_mechanism: None,
        }
    }

    /// Records a completed (re-)authentication and returns the session lifetime to tell
    /// the client, as Kafka's `calcCompletionTimesAndReturnSessionLifetimeMs`: the smaller
    /// of the credential's remaining life and `connections.max.reauth.ms` (where either is
    /// set), 0 when neither is (the session never ends).
    fn authenticated_as(
        &mut self,
        ctx: &Context,
        peer: SocketAddr,
        done: Authenticated,
    ) -> Result<i64, String> {
        if self.reauthenticating && *self.principal != *done.principal {
            // Kafka's ensurePrincipalUnchanged, with its message.
            let split = |p: &str| -> (String, String) {
                let (t, n) = p.split_once(':').unwrap_or(("User", p));
                (t.to_string(), n.to_string())
            };
            let (ot, on) = split(&self.principal);
            let (nt, nn) = split(&done.principal);
            return Err(format!(
                "Cannot change principals during re-authentication from {ot}.{on}: {nt}.{nn}"
            ));
        }
        let now = crate::clock::now_ms();
        let max = i64::try_from(ctx.config.connections_max_reauth_ms).unwrap_or(i64::MAX);
        let lifetime = match (done.expires_ms, max > 0) {
            (None, false) => None,
            (None, true) => Some(max),
            (Some(exp), false) => Some((exp - now).max(0)),
            (Some(exp), true) => Some((exp - now).min(max).max(0)),
        };
        tracing::debug!(peer = %peer, principal = %done.principal, token = ?done.token, session_lifetime_ms = ?lifetime, reauthentication = self.reauthenticating, "SASL authentication succeeded");
        if self.reauthenticating {
            ctx.metrics.reauthentications.inc();
        } else {
            ctx.metrics.authentications.inc();
        }
        self.reauthenticating = false;
        self.principal = Arc::from(done.principal);
        self.token = done.token;
        self.mechanism = Some(done.mechanism);
        self.expires_at_ms = lifetime.map(|l| now.saturating_add(l));
        Ok(lifetime.unwrap_or(0))
    }

    /// Whether the session has ended (KIP-368): its connection is closed at the next
    /// request, as Kafka's "Disconnecting expired channel".
    pub fn expired(&self, now_ms: i64) -> bool {
        self.sasl.is_none() && self.expires_at_ms.is_some_and(|e| now_ms >= e)
    }

    /// Kafka's `maybeBeginServerReauthentication`: a SaslHandshake on an authenticated
    /// session starts a re-authentication only when the session has an end and the last
    /// one began at least a second ago; otherwise it is an ordinary request (answered
    /// ILLEGAL_SASL_STATE).
    pub fn begin_reauthentication(&mut self, now_ms: i64) -> bool {
        if self.sasl.is_some() || self.expires_at_ms.is_none() {
            return false;
        }
        if self.last_reauth_ms.is_some_and(|t| now_ms - t < 1000) {
            return false;
        }
        self.last_reauth_ms = Some(now_ms);
        self.reauthenticating = true;
        self.sasl = Some(SaslState::Initial);
        true
    }

    /// Whether the client may send any request (it has authenticated, or needs not).
    pub fn authenticated(&self) -> bool {
        self.sasl.is_none()
    }
}

/// What a completed SASL exchange established.
struct Authenticated {
    principal: String,
    mechanism: Mechanism,
    expires_ms: Option<i64>,
    token: Option<String>,
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
    tracing::debug!(peer = %peer, mechanism = mechanism.name(), reauthentication = session.reauthenticating, "SASL handshake");
    if session.reauthenticating {
        if let Some(previous) = session.mechanism.filter(|m| *m != mechanism) {
            // Kafka answers the handshake and fails the SaslAuthenticate that follows.
            session.bad_reauth_mechanism = Some(format!(
                "SASL mechanism '{}' requested by client is not supported for re-authentication of mechanism '{}'",
                mechanism.name(),
                previous.name()
            ));
        }
    }
    session.sasl = Some(SaslState::Handshaken {
        mechanism,
        raw: version == 0,
    });
    encode_response(correlation_id, version, &resp)
}

/// Where one client message leaves an exchange.
enum Exchange {
    Challenge(Vec<u8>),
    Done(Authenticated, Vec<u8>),
    /// (message for the client, line for the broker's log)
    Failed(String, String),
}

/// Runs one step of the exchange in `session` on `msg`: a re-authentication that asked for
/// another mechanism fails here, as Kafka's REAUTH_BAD_MECHANISM state does.
async fn exchange_step(
    ctx: &Context,
    session: &mut Session,
    msg: Bytes,
) -> Result<Exchange, Outcome> {
    let Some(state) = session.sasl.take() else {
        return Err(Outcome::Close("a SASL token outside an exchange".into()));
    };
    if let Some(why) = session.bad_reauth_mechanism.take() {
        return Ok(Exchange::Failed(why.clone(), why));
    }
    let mechanism = state.mechanism();
    Ok(match run_step(ctx, state, msg).await {
        Step::Challenge(bytes, next) => {
            session.sasl = Some(next);
            Exchange::Challenge(bytes)
        }
        Step::Done {
            principal,
            response,
            token,
            expires_ms,
        } => match mechanism {
            Some(mechanism) => Exchange::Done(
                Authenticated {
                    principal,
                    mechanism,
                    expires_ms,
                    token,
                },
                response,
            ),
            None => {
                let why = "an exchange finished without a mechanism".to_string();
                Exchange::Failed(why.clone(), why)
            }
        },
        Step::Failed {
            client_message,
            log,
        } => Exchange::Failed(client_message, log),
    })
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
    let (client_message, log) = match exchange_step(ctx, session, req.auth_bytes).await {
        Err(close) => return close,
        Ok(Exchange::Challenge(bytes)) => {
            let resp = SaslAuthenticateResponse::default().with_auth_bytes(bytes.into());
            return encode_response(correlation_id, version, &resp);
        }
        Ok(Exchange::Done(done, response)) => match session.authenticated_as(ctx, peer, done) {
            Ok(lifetime) => {
                let resp = SaslAuthenticateResponse::default()
                    .with_auth_bytes(response.into())
                    .with_session_lifetime_ms(lifetime);
                return encode_response(correlation_id, version, &resp);
            }
            Err(why) => (why.clone(), why),
        },
        Ok(Exchange::Failed(client_message, log)) => (client_message, log),
    };
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

/// A raw token after a v0 handshake: the answer goes back size-prefixed with no Kafka
/// header; a failure can only close the connection. A v0 client cannot be told the
/// session's lifetime; the session still ends.
pub async fn raw_token(
    ctx: &Context,
    session: &mut Session,
    peer: SocketAddr,
    frame: Bytes,
) -> Outcome {
    let why = match exchange_step(ctx, session, frame).await {
        Err(close) => return close,
        Ok(Exchange::Challenge(bytes)) => return Outcome::Respond(size_prefixed(&bytes)),
        Ok(Exchange::Done(done, response)) => match session.authenticated_as(ctx, peer, done) {
            Ok(_) => return Outcome::Respond(size_prefixed(&response)),
            Err(why) => why,
        },
        Ok(Exchange::Failed(_, log)) => log,
    };
    fail_delay(ctx).await;
    Outcome::Close(format!("SASL authentication failed: {why}"))
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
