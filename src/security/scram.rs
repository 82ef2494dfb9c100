//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as Kafka runs them: salted
//! credentials computed once when a user is created, and the server's side of the
//! three-message exchange.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

/// Kafka's bounds on `iterations` (ScramMechanism's minIterations and maxIterations).
pub const MIN_ITERATIONS: u32 = 4096;
pub const MAX_ITERATIONS: u32 = 16384;
/// What `--bootstrap-users` and `klamm users create` use, as Kafka's tools do.
pub const DEFAULT_ITERATIONS: u32 = 4096;
/// Longest client message accepted in an exchange: user names and nonces are short, and
/// nothing a client sends is allowed to size an allocation.
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// The two SCRAM mechanisms Kafka has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ScramMechanism {
    Sha256,
    Sha512,
}

impl ScramMechanism {
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    /// The SASL mechanism name.
    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn from_name(s: &str) -> Option<ScramMechanism> {
        Self::ALL.into_iter().find(|m| m.name() == s)
    }

    /// Kafka's ScramMechanism type byte (KIP-554): 1 for SHA-256, 2 for SHA-512.
    pub fn kafka_type(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    pub fn from_kafka_type(t: i8) -> Option<ScramMechanism> {
        Self::ALL.into_iter().find(|m| m.kafka_type() == t)
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => Sha256::digest(data).to_vec(),
            ScramMechanism::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => {
                let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key)
                    .expect("HMAC takes a key of any length");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
            ScramMechanism::Sha512 => {
                let mut m = <Hmac<Sha512> as Mac>::new_from_slice(key)
                    .expect("HMAC takes a key of any length");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
        }
    }

    /// RFC 5802's Hi(): PBKDF2 with this mechanism's HMAC.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => {
                pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(password, salt, iterations).to_vec()
            }
            ScramMechanism::Sha512 => {
                pbkdf2::pbkdf2_hmac_array::<Sha512, 64>(password, salt, iterations).to_vec()
            }
        }
    }
}

/// What the broker keeps of a user's password for one mechanism: never the password, only
/// the keys derived from it (RFC 5802's StoredKey and ServerKey), as Kafka stores them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: u32,
}

impl ScramCredential {
    /// Derives a credential from a password with a fresh random salt.
    pub fn new(mechanism: ScramMechanism, password: &[u8], iterations: u32) -> ScramCredential {
        let mut salt = vec![0u8; 32];
        getrandom::getrandom(&mut salt).expect("the OS random source works");
        Self::from_salted(
            mechanism,
            &mechanism.salted_password(password, &salt, iterations),
            salt,
            iterations,
        )
    }

    /// A credential from an already salted password (AlterUserScramCredentials sends one).
    pub fn from_salted(
        mechanism: ScramMechanism,
        salted_password: &[u8],
        salt: Vec<u8>,
        iterations: u32,
    ) -> ScramCredential {
        let client_key = mechanism.hmac(salted_password, b"Client Key");
        ScramCredential {
            salt,
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(salted_password, b"Server Key"),
            iterations,
        }
    }

    /// Whether `password` is the one this credential was made from (SASL/PLAIN checks
    /// passwords against the SCRAM credentials, so no password is kept anywhere).
    pub fn matches_password(&self, mechanism: ScramMechanism, password: &[u8]) -> bool {
        let salted = mechanism.salted_password(password, &self.salt, self.iterations);
        let stored = mechanism.hash(&mechanism.hmac(&salted, b"Client Key"));
        bool::from(stored.ct_eq(&self.stored_key))
    }

    /// Kafka's text form (as in ZooKeeper's `/config/users`):
    /// `salt=..,stored_key=..,server_key=..,iterations=N`.
    pub fn to_kafka_string(&self) -> String {
        format!(
            "salt={},stored_key={},server_key={},iterations={}",
            B64.encode(&self.salt),
            B64.encode(&self.stored_key),
            B64.encode(&self.server_key),
            self.iterations
        )
    }

    pub fn from_kafka_string(s: &str) -> Option<ScramCredential> {
        let mut salt = None;
        let mut stored_key = None;
        let mut server_key = None;
        let mut iterations = None;
        for part in s.split(',') {
            let (k, v) = part.split_once('=')?;
            match k {
                "salt" => salt = Some(B64.decode(v).ok()?),
                "stored_key" => stored_key = Some(B64.decode(v).ok()?),
                "server_key" => server_key = Some(B64.decode(v).ok()?),
                "iterations" => iterations = Some(v.parse().ok()?),
                _ => {}
            }
        }
        Some(ScramCredential {
            salt: salt?,
            stored_key: stored_key?,
            server_key: server_key?,
            iterations: iterations?,
        })
    }
}

/// Why an exchange failed. The message is for the broker's log; the client gets Kafka's
/// generic "invalid credentials" text so a probe learns nothing about which users exist.
#[derive(Debug, PartialEq, Eq)]
pub enum ScramError {
    /// The client's message does not follow RFC 5802's grammar.
    Malformed(&'static str),
    /// Unknown user, wrong password or a nonce that is not the server's.
    BadCredentials(&'static str),
}

/// The server side of one exchange after the client's first message.
#[derive(Debug)]
pub struct ScramServer {
    mechanism: ScramMechanism,
    user: String,
    /// The client's first message without its GS2 header, and the server's answer: both
    /// are part of the AuthMessage the proofs sign.
    client_first_bare: String,
    server_first: String,
    gs2_header: String,
    nonce: String,
    credential: Option<ScramCredential>,
}

/// The user name and nonce of a client-first-message, before the user's credential is
/// looked up.
pub struct ClientFirst {
    pub user: String,
    /// Kafka's `tokenauth=true` extension: `user` is a delegation token's id and the
    /// password its HMAC.
    pub token_auth: bool,
    gs2_header: String,
    client_first_bare: String,
    client_nonce: String,
}

/// Parses `gs2-header client-first-bare` (RFC 5802 section 7). Channel binding is refused
/// ("p="), as Kafka refuses it; an authzid must name the user itself.
pub fn parse_client_first(msg: &[u8]) -> Result<ClientFirst, ScramError> {
    if msg.len() > MAX_MESSAGE_BYTES {
        return Err(ScramError::Malformed("client-first-message too long"));
    }
    let msg = std::str::from_utf8(msg).map_err(|_| ScramError::Malformed("not UTF-8"))?;
    let (cbind, rest) = msg
        .split_once(',')
        .ok_or(ScramError::Malformed("no GS2 header"))?;
    if cbind != "n" && cbind != "y" {
        return Err(ScramError::Malformed("channel binding is not supported"));
    }
    let (authzid, bare) = rest
        .split_once(',')
        .ok_or(ScramError::Malformed("no GS2 header"))?;
    let gs2_header = format!("{cbind},{authzid},");
    let mut user = None;
    let mut nonce = None;
    let mut token_auth = false;
    for (i, attr) in bare.split(',').enumerate() {
        let (k, v) = attr
            .split_once('=')
            .ok_or(ScramError::Malformed("attribute without '='"))?;
        match (i, k) {
            (0, "m") => return Err(ScramError::Malformed("mandatory extension")),
            (0, "n") => user = Some(decode_saslname(v)?),
            (1, "r") => nonce = Some(v.to_string()),
            (0 | 1, _) => return Err(ScramError::Malformed("expected n= then r=")),
            // Kafka's extensions: `tokenauth` (Java's Boolean.parseBoolean) marks a
            // delegation token login; others are ignored, as Kafka ignores them.
            (_, "tokenauth") => token_auth = v.eq_ignore_ascii_case("true"),
            _ => {}
        }
    }
    let user = user.ok_or(ScramError::Malformed("no user name"))?;
    let client_nonce = nonce.ok_or(ScramError::Malformed("no nonce"))?;
    if client_nonce.is_empty()
        || !client_nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
    {
        return Err(ScramError::Malformed("bad nonce"));
    }
    if !authzid.is_empty() {
        let id = authzid
            .strip_prefix("a=")
            .ok_or(ScramError::Malformed("bad authzid"))?;
        if decode_saslname(id)? != user {
            return Err(ScramError::BadCredentials(
                "authzid differs from the user name",
            ));
        }
    }
    Ok(ClientFirst {
        user,
        token_auth,
        gs2_header,
        client_first_bare: bare.to_string(),
        client_nonce,
    })
}

/// RFC 5802's saslname: `=2C` is ',' and `=3D` is '='; any other '=' is an error.
fn decode_saslname(s: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(ScramError::Malformed("bad escape in user name")),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

impl ScramServer {
    /// Answers a client's first message. An unknown user gets a made-up salt, so the
    /// exchange fails at the proof as a wrong password does.
    pub fn start(
        mechanism: ScramMechanism,
        first: ClientFirst,
        credential: Option<ScramCredential>,
    ) -> (ScramServer, Vec<u8>) {
        let mut random = [0u8; 24];
        getrandom::getrandom(&mut random).expect("the OS random source works");
        let nonce = format!(
            "{}{}",
            first.client_nonce,
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random)
        );
        let (salt, iterations) = match &credential {
            Some(c) => (c.salt.clone(), c.iterations),
            None => (mechanism.hash(first.user.as_bytes()), DEFAULT_ITERATIONS),
        };
        let server_first = format!("r={nonce},s={},i={iterations}", B64.encode(salt));
        let answer = server_first.clone().into_bytes();
        (
            ScramServer {
                mechanism,
                user: first.user,
                client_first_bare: first.client_first_bare,
                server_first,
                gs2_header: first.gs2_header,
                nonce,
                credential,
            },
            answer,
        )
    }

    pub fn mechanism(&self) -> ScramMechanism {
        self.mechanism
    }

    /// The user this exchange authenticates.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Checks the client's final message (`c=..,r=..,p=..`) and returns the server's
    /// (`v=..`), which proves to the client that the broker knows its credential.
    pub fn finish(&self, msg: &[u8]) -> Result<Vec<u8>, ScramError> {
        if msg.len() > MAX_MESSAGE_BYTES {
            return Err(ScramError::Malformed("client-final-message too long"));
        }
        let msg = std::str::from_utf8(msg).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        let (without_proof, proof) = msg
            .rsplit_once(",p=")
            .ok_or(ScramError::Malformed("no proof"))?;
        let mut attrs = without_proof.split(',');
        let binding = attrs
            .next()
            .and_then(|a| a.strip_prefix("c="))
            .ok_or(ScramError::Malformed("no channel binding"))?;
        let nonce = attrs
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .ok_or(ScramError::Malformed("no nonce"))?;
        let binding = B64
            .decode(binding)
            .map_err(|_| ScramError::Malformed("channel binding is not base64"))?;
        if binding != self.gs2_header.as_bytes() {
            return Err(ScramError::Malformed(
                "channel binding differs from the GS2 header",
            ));
        }
        // Kafka accepts a nonce that ends with the server's (ScramSaslServer checks
        // endsWith): librdkafka sends its own nonce again in front of the combined one.
        if !nonce.ends_with(&self.nonce) {
            return Err(ScramError::BadCredentials("nonce is not the server's"));
        }
        let proof = B64
            .decode(proof)
            .map_err(|_| ScramError::Malformed("proof is not base64"))?;
        let credential = self
            .credential
            .as_ref()
            .ok_or(ScramError::BadCredentials("unknown user"))?;
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, self.server_first, without_proof
        );
        let signature = self
            .mechanism
            .hmac(&credential.stored_key, auth_message.as_bytes());
        if proof.len() != signature.len() {
            return Err(ScramError::BadCredentials("proof of the wrong length"));
        }
        let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
        if !bool::from(
            self.mechanism
                .hash(&client_key)
                .ct_eq(&credential.stored_key),
        ) {
            return Err(ScramError::BadCredentials("wrong password"));
        }
        let server_signature = self
            .mechanism
            .hmac(&credential.server_key, auth_message.as_bytes());
        Ok(format!("v={}", B64.encode(server_signature)).into_bytes())
    }
}

/// The client side of an exchange: how a broker logs in to another on a SASL inter-broker
/// listener with SCRAM.
pub struct ScramClient {
    mechanism: ScramMechanism,
    password: Vec<u8>,
    client_first_bare: String,
    client_nonce: String,
    /// The ServerSignature the server must send back, once the proof is sent.
    expected: Option<Vec<u8>>,
}

impl ScramClient {
    /// Starts an exchange; returns the client's first message.
    pub fn start(mechanism: ScramMechanism, user: &str, password: &str) -> (ScramClient, Vec<u8>) {
        Self::start_with_extensions(mechanism, user, password, "")
    }

    /// Starts an exchange whose first message carries SCRAM extensions after the nonce
    /// (`tokenauth=true` for a delegation token: `user` is its id, `password` its HMAC).
    pub fn start_with_extensions(
        mechanism: ScramMechanism,
        user: &str,
        password: &str,
        extensions: &str,
    ) -> (ScramClient, Vec<u8>) {
        let mut random = [0u8; 24];
        getrandom::getrandom(&mut random).expect("the OS random source works");
        let nonce = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random);
        Self::with_nonce(mechanism, user, password, &nonce, extensions)
    }

    fn with_nonce(
        mechanism: ScramMechanism,
        user: &str,
        password: &str,
        nonce: &str,
        extensions: &str,
    ) -> (ScramClient, Vec<u8>) {
        let name = user.replace('=', "=3D").replace(',', "=2C");
        let mut client_first_bare = format!("n={name},r={nonce}");
        if !extensions.is_empty() {
            // The extensions follow the nonce in client-first-bare, which both sides sign.
            client_first_bare.push(',');
            client_first_bare.push_str(extensions);
        }
        let first = format!("n,,{client_first_bare}").into_bytes();
        (
            ScramClient {
                mechanism,
                password: password.as_bytes().to_vec(),
                client_first_bare,
                client_nonce: nonce.to_string(),
                expected: None,
            },
            first,
        )
    }

    /// Answers the server's first message with the proof. Refuses a nonce that does not
    /// extend the client's and, as Kafka's client, an iteration count outside 4096..=16384
    /// (a rogue server could ask for any amount of work).
    pub fn answer(&mut self, server_first: &[u8]) -> Result<Vec<u8>, ScramError> {
        if server_first.len() > MAX_MESSAGE_BYTES {
            return Err(ScramError::Malformed("server-first-message too long"));
        }
        let text =
            std::str::from_utf8(server_first).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        let mut parts = text.split(',');
        let mut field = |name: &'static str| {
            parts
                .next()
                .and_then(|p| p.strip_prefix(name))
                .ok_or(ScramError::Malformed("unexpected server-first-message"))
        };
        let nonce = field("r=")?;
        let salt = B64
            .decode(field("s=")?)
            .map_err(|_| ScramError::Malformed("salt is not base64"))?;
        let iterations: u32 = field("i=")?
            .parse()
            .map_err(|_| ScramError::Malformed("bad iteration count"))?;
        if !nonce.starts_with(&self.client_nonce) || nonce.len() == self.client_nonce.len() {
            return Err(ScramError::BadCredentials(
                "nonce does not extend the client's",
            ));
        }
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(ScramError::Malformed("iteration count out of range"));
        }
        let m = self.mechanism;
        let salted = m.salted_password(&self.password, &salt, iterations);
        let client_key = m.hmac(&salted, b"Client Key");
        let stored_key = m.hash(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth = format!("{},{text},{without_proof}", self.client_first_bare);
        let signature = m.hmac(&stored_key, auth.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = m.hmac(&salted, b"Server Key");
        self.expected = Some(m.hmac(&server_key, auth.as_bytes()));
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    /// Checks the server's final message: it proves the server knows the credential.
    pub fn verify(&self, server_final: &[u8]) -> Result<(), ScramError> {
        let v = std::str::from_utf8(server_final)
            .ok()
            .and_then(|t| t.strip_prefix("v="))
            .and_then(|v| B64.decode(v).ok())
            .ok_or(ScramError::Malformed("unexpected server-final-message"))?;
        match &self.expected {
            Some(e) if bool::from(e.as_slice().ct_eq(&v)) => Ok(()),
            _ => Err(ScramError::BadCredentials(
                "the server's signature is wrong",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(mechanism: ScramMechanism, stored: &str, tried: &str) -> Result<(), ScramError> {
        let cred = ScramCredential::new(mechanism, stored.as_bytes(), 4096);
        let (mut client, first) =
            ScramClient::with_nonce(mechanism, "alice", tried, "fyko+d2lbbFgONRv9qkxdawL", "");
        let first = parse_client_first(&first).unwrap();
        let (server, server_first) = ScramServer::start(mechanism, first, Some(cred));
        assert!(server_first.starts_with(b"r=fyko+d2lbbFgONRv9qkxdawL"));
        let final_msg = client.answer(&server_first).unwrap();
        let v = server.finish(&final_msg)?;
        assert_eq!(
            client.verify(&v),
            Ok(()),
            "the server proves it knows the credential"
        );
        assert!(client.verify(b"v=AAAA").is_err());
        Ok(())
    }

    #[test]
    fn the_right_password_passes_and_a_wrong_one_fails() {
        for m in ScramMechanism::ALL {
            assert_eq!(exchange(m, "s3cret", "s3cret"), Ok(()));
            assert_eq!(
                exchange(m, "s3cret", "s3cret!"),
                Err(ScramError::BadCredentials("wrong password"))
            );
        }
    }

    /// RFC 7677's test vector: user "user", password "pencil", the RFC's nonces and salt.
    #[test]
    fn rfc_7677_test_vector() {
        let m = ScramMechanism::Sha256;
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let cred =
            ScramCredential::from_salted(m, &m.salted_password(b"pencil", &salt, 4096), salt, 4096);
        let server = ScramServer {
            mechanism: m,
            user: "user".into(),
            client_first_bare: "n=user,r=rOprNGfwEbeRWgbNEkqO".into(),
            server_first:
                "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
                    .into(),
            gs2_header: "n,,".into(),
            nonce: "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".into(),
            credential: Some(cred),
        };
        let v = server
            .finish(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
            .unwrap();
        assert_eq!(v, b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
    }

    #[test]
    fn the_tokenauth_extension_is_read_and_signed() {
        for (ext, token) in [
            ("tokenauth=true", true),
            ("tokenauth=TRUE", true),
            ("tokenauth=no", false),
            ("", false),
        ] {
            let m = ScramMechanism::Sha256;
            let (mut client, first) = ScramClient::start_with_extensions(m, "tid", "hmac", ext);
            let first = parse_client_first(&first).unwrap();
            assert_eq!(
                (first.user.as_str(), first.token_auth),
                ("tid", token),
                "{ext}"
            );
            let cred = ScramCredential::new(m, b"hmac", 4096);
            let (server, server_first) = ScramServer::start(m, first, Some(cred));
            let v = server
                .finish(&client.answer(&server_first).unwrap())
                .unwrap();
            assert_eq!(client.verify(&v), Ok(()));
        }
    }

    #[test]
    fn malformed_and_hostile_messages_are_refused() {
        for bad in [
            &b""[..],
            b"n",
            b"p=tls-unique,,n=a,r=x",
            b"n,,r=x,n=a",
            b"n,,n=a",
            b"n,,n=a,r=",
            b"n,,n=a=,r=x",
            b"n,,m=ext,n=a,r=x",
            b"n,a=bob,n=alice,r=x",
            b"\xff\xfe",
        ] {
            assert!(parse_client_first(bad).is_err(), "{bad:?}");
        }
        assert!(parse_client_first(&vec![b'a'; MAX_MESSAGE_BYTES + 1]).is_err());
        let m = ScramMechanism::Sha512;
        let cred = ScramCredential::new(m, b"pw", 4096);
        let first = parse_client_first(b"n,,n=a=2Cb,r=abc").unwrap();
        assert_eq!(first.user, "a,b");
        let (server, _) = ScramServer::start(m, first, Some(cred));
        for bad in [
            &b""[..],
            b"c=biws,r=abc,p=AAAA",
            b"c=biws,p=AAAA",
            b"c=eSws,r=abc,p=AAAA",
            b"c=biws,r=abc,p=!!!",
        ] {
            assert!(server.finish(bad).is_err(), "{bad:?}");
        }
        // The server's nonce, but a proof of the wrong length.
        let msg = format!("c=biws,r={},p=AAAA", server.nonce);
        assert_eq!(
            server.finish(msg.as_bytes()),
            Err(ScramError::BadCredentials("proof of the wrong length"))
        );
    }

    #[test]
    fn an_unknown_user_fails_like_a_wrong_password() {
        let m = ScramMechanism::Sha256;
        let (mut client, first) = ScramClient::with_nonce(m, "nobody", "pw", "abc", "");
        let first = parse_client_first(&first).unwrap();
        let (server, server_first) = ScramServer::start(m, first, None);
        let final_msg = client.answer(&server_first).unwrap();
        assert!(matches!(
            server.finish(&final_msg),
            Err(ScramError::BadCredentials(_))
        ));
    }

    #[test]
    fn credentials_round_trip_kafkas_text_form_and_check_passwords() {
        for m in ScramMechanism::ALL {
            let c = ScramCredential::new(m, b"pw", 4096);
            assert_eq!(
                ScramCredential::from_kafka_string(&c.to_kafka_string()),
                Some(c.clone())
            );
            assert!(c.matches_password(m, b"pw"));
            assert!(!c.matches_password(m, b"pW"));
        }
        assert_eq!(ScramCredential::from_kafka_string("salt=!!"), None);
    }
}
