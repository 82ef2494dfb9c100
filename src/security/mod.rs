//! Authentication: the SASL mechanisms, the users' credentials, and the exchange one
//! connection goes through before it is served. Pure logic with no sockets, so the
//! connection layer drives it and the fuzz targets and unit tests can too.

pub mod acl;
pub mod credentials;
pub mod oauthbearer;
pub mod plain;
pub mod records;
pub mod scram;
pub mod tls;
pub mod tokens;

use std::sync::Arc;

use credentials::Credentials;
use scram::{ScramMechanism, ScramServer};
use tokens::DelegationTokens;

/// Kafka's `sasl.server.max.receive.size` default: the largest frame a client may send
/// before it has authenticated.
pub const SASL_MAX_RECEIVE_BYTES: usize = 524_288;

/// The principal of a client that has not authenticated (PLAINTEXT and SSL without a
/// client certificate), as Kafka names it.
pub const ANONYMOUS: &str = "User:ANONYMOUS";

/// A SASL mechanism this broker can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Scram(ScramMechanism),
    OAuthBearer,
}

impl Mechanism {
    pub const ALL: [Mechanism; 4] = [
        Mechanism::Plain,
        Mechanism::Scram(ScramMechanism::Sha256),
        Mechanism::Scram(ScramMechanism::Sha512),
        Mechanism::OAuthBearer,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Scram(m) => m.name(),
            Mechanism::OAuthBearer => "OAUTHBEARER",
        }
    }

    pub fn from_name(s: &str) -> Option<Mechanism> {
        Self::ALL.into_iter().find(|m| m.name() == s)
    }
}

/// `--sasl-enabled-mechanisms`: a comma-separated list of mechanism names.
pub fn parse_mechanisms(s: &str) -> Result<Vec<Mechanism>, String> {
    let mut out = Vec::new();
    for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let m = Mechanism::from_name(&name.to_ascii_uppercase()).ok_or_else(|| {
            format!("unknown SASL mechanism {name:?} (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER)")
        })?;
        if !out.contains(&m) {
            out.push(m);
        }
    }
    if out.is_empty() {
        return Err("no SASL mechanism enabled".into());
    }
    Ok(out)
}

/// Where one connection's SASL exchange stands.
#[derive(Debug)]
pub enum SaslState {
    /// Before SaslHandshake: ApiVersions and SaslHandshake are served.
    Initial,
    /// SaslHandshake chose `mechanism`; v0 means the tokens that follow come as raw
    /// size-prefixed frames, v1 as SaslAuthenticate requests.
    Handshaken { mechanism: Mechanism, raw: bool },
    /// SCRAM after the server's first message; `token` when the client logs in with a
    /// delegation token (whose owner the session will be).
    Scram {
        server: Box<ScramServer>,
        raw: bool,
        token: Option<TokenSession>,
    },
    /// OAUTHBEARER refused the token and sent its error challenge; the client's next
    /// message (a lone 0x01) ends the exchange as a failure.
    OAuthRefused { raw: bool, why: String },
}

impl SaslState {
    /// The mechanism the exchange runs, once the handshake chose it.
    pub fn mechanism(&self) -> Option<Mechanism> {
        match self {
            SaslState::Initial => None,
            SaslState::Handshaken { mechanism, .. } => Some(*mechanism),
            SaslState::Scram { server, .. } => Some(Mechanism::Scram(server.mechanism())),
            SaslState::OAuthRefused { .. } => Some(Mechanism::OAuthBearer),
        }
    }

    /// Whether the next frame is a raw token (after SaslHandshake v0).
    pub fn raw_tokens(&self) -> bool {
        match self {
            SaslState::Initial => false,
            SaslState::Handshaken { raw, .. }
            | SaslState::Scram { raw, .. }
            | SaslState::OAuthRefused { raw, .. } => *raw,
        }
    }
}

/// A SCRAM login with a delegation token, between the two messages of the exchange.
#[derive(Debug)]
pub struct TokenSession {
    /// The token's id (the SCRAM user name).
    pub id: String,
    /// The name of the token's owner: the session's principal is `User:<owner_name>`.
    pub owner_name: String,
    /// When the token expires: the session's credential lifetime (Kafka's
    /// CREDENTIAL.LIFETIME.MS negotiated property).
    pub expiry_ms: i64,
}

/// The outcome of one client message in an exchange.
#[derive(Debug)]
pub enum Step {
    /// Send these bytes and wait for the client's next message.
    Challenge(Vec<u8>, SaslState),
    /// Authenticated as `principal`; send `response` (possibly empty). `expires_ms` is
    /// when the credential stops being valid, if it does (an OAUTHBEARER token's `exp`).
    /// `token` is the delegation token's id when the client logged in with one.
    Done {
        principal: String,
        response: Vec<u8>,
        expires_ms: Option<i64>,
        token: Option<String>,
    },
    /// Refused: `client_message` goes to the client, `log` to the broker's log only.
    Failed { client_message: String, log: String },
}

fn invalid_credentials(m: Mechanism, log: String) -> Step {
    Step::Failed {
        client_message: format!(
            "Authentication failed during authentication due to invalid credentials with SASL mechanism {}",
            m.name()
        ),
        log,
    }
}

/// The credentials an exchange checks against: the SASL users and the delegation tokens.
#[derive(Clone)]
pub struct Verifiers {
    pub users: Arc<Credentials>,
    pub tokens: Arc<DelegationTokens>,
}

/// Runs one client message of an exchange in `state`. PLAIN hashes the password
/// `iterations` times (and a token's first login derives its credentials): call this off
/// the async workers.
pub fn step(state: SaslState, msg: &[u8], verifiers: &Verifiers, now_ms: i64) -> Step {
    let users = &verifiers.users;
    match state {
        SaslState::Initial => Step::Failed {
            client_message: "SASL token received before SaslHandshake".into(),
            log: "SASL token before SaslHandshake".into(),
        },
        SaslState::Handshaken {
            mechanism: Mechanism::Plain,
            ..
        } => match plain::parse(msg) {
            Ok(p) if users.check_password(p.user, p.password) => Step::Done {
                principal: format!("User:{}", p.user),
                response: Vec::new(),
                expires_ms: None,
                token: None,
            },
            Ok(p) => Step::Failed {
                client_message: "Authentication failed: Invalid username or password".into(),
                log: format!("PLAIN: wrong password or unknown user {:?}", p.user),
            },
            Err(why) => Step::Failed {
                client_message: format!("Authentication failed: {why}"),
                log: format!("malformed PLAIN message: {why}"),
            },
        },
        SaslState::Handshaken {
            mechanism: Mechanism::Scram(m),
            raw,
        } => match scram::parse_client_first(msg) {
            Ok(first) => {
                // An unknown or expired token, like an unknown user, gets a made-up salt
                // and fails at the proof with the same message.
                let (credential, token) = if first.token_auth {
                    match verifiers.tokens.scram_login(&first.user, m, now_ms) {
                        Some(login) => (
                            Some(login.credential),
                            Some(TokenSession {
                                id: first.user.clone(),
                                owner_name: login.owner_name,
                                expiry_ms: login.expiry_ms,
                            }),
                        ),
                        None => (None, None),
                    }
                } else {
                    (users.get(&first.user, m), None)
                };
                let (server, answer) = ScramServer::start(m, first, credential);
                Step::Challenge(
                    answer,
                    SaslState::Scram {
                        server: Box::new(server),
                        raw,
                        token,
                    },
                )
            }
            Err(e) => invalid_credentials(Mechanism::Scram(m), format!("{}: {e:?}", m.name())),
        },
        SaslState::Scram { server, token, .. } => {
            let m = Mechanism::Scram(server.mechanism());
            match server.finish(msg) {
                Ok(answer) => Step::Done {
                    principal: format!(
                        "User:{}",
                        token
                            .as_ref()
                            .map_or(server.user(), |t| t.owner_name.as_str())
                    ),
                    response: answer,
                    expires_ms: token.as_ref().map(|t| t.expiry_ms),
                    token: token.map(|t| t.id),
                },
                Err(e) => invalid_credentials(m, format!("user {:?}: {e:?}", server.user())),
            }
        }
        SaslState::Handshaken {
            mechanism: Mechanism::OAuthBearer,
            raw,
        } => match oauthbearer::validate(msg, now_ms) {
            Ok(t) => Step::Done {
                principal: format!("User:{}", t.principal),
                response: Vec::new(),
                expires_ms: Some(t.expires_ms),
                token: None,
            },
            Err(why) => Step::Challenge(
                oauthbearer::INVALID_TOKEN_CHALLENGE.to_vec(),
                SaslState::OAuthRefused { raw, why },
            ),
        },
        SaslState::OAuthRefused { why, .. } => Step::Failed {
            client_message: format!(
                "Authentication failed during authentication due to invalid credentials with SASL mechanism OAUTHBEARER: {why}"
            ),
            log: format!("OAUTHBEARER token refused: {why}"),
        },
    }
}

/// The users and settings every connection's exchange needs.
pub struct SaslConfig {
    pub mechanisms: Vec<Mechanism>,
    pub users: Arc<Credentials>,
}
