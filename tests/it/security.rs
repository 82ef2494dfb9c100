//! Listeners and security: several listeners with Kafka's syntax, each client told the
//! endpoints of the listener it came in on.

use crate::common;

use common::*;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use klamm::BrokerConfig;

fn listeners_config(listeners: &str, map: Option<&str>, advertised: Option<&str>) -> BrokerConfig {
    BrokerConfig {
        listeners: Some(listeners.into()),
        listener_security_protocol_map: map.map(Into::into),
        advertised_listeners: advertised.map(Into::into),
        ..BrokerConfig::ephemeral()
    }
}

async fn brokers_seen_on(addr: std::net::SocketAddr) -> Vec<(String, i32)> {
    let mut c = Client::connect(addr).await;
    let resp = c.send(&MetadataRequest::default(), 12).await;
    resp.brokers
        .iter()
        .map(|b| (b.host.to_string(), b.port))
        .collect()
}

#[tokio::test]
async fn each_listener_advertises_its_own_endpoint() {
    let broker = start_with(listeners_config(
        "PLAINTEXT://127.0.0.1:0,INTERNAL://127.0.0.1:0",
        Some("INTERNAL:PLAINTEXT"),
        Some("INTERNAL://internal.example:19093"),
    ))
    .await;
    let plain = broker.listener_addr("PLAINTEXT").expect("PLAINTEXT bound");
    let internal = broker.listener_addr("internal").expect("INTERNAL bound");
    assert_ne!(plain, internal);
    assert_eq!(
        broker.addr(),
        plain,
        "the first listener is the broker's address"
    );

    assert_eq!(
        brokers_seen_on(plain).await,
        vec![("127.0.0.1".to_string(), i32::from(plain.port()))],
        "a port-0 listener advertises the port it got"
    );
    assert_eq!(
        brokers_seen_on(internal).await,
        vec![("internal.example".to_string(), 19093)]
    );

    // FindCoordinator and DescribeCluster answer with the same listener's endpoint.
    for (addr, host, port) in [
        (plain, "127.0.0.1", i32::from(plain.port())),
        (internal, "internal.example", 19093),
    ] {
        let mut c = Client::connect(addr).await;
        let found = c
            .send(
                &FindCoordinatorRequest::default()
                    .with_key_type(0)
                    .with_coordinator_keys(vec![StrBytes::from_static_str("g")]),
                4,
            )
            .await;
        assert_eq!(found.coordinators[0].error_code, 0);
        assert_eq!(found.coordinators[0].host.as_str(), host);
        assert_eq!(found.coordinators[0].port, port);
        let cluster = c.send(&DescribeClusterRequest::default(), 0).await;
        assert_eq!(cluster.brokers[0].host.as_str(), host);
        assert_eq!(cluster.brokers[0].port, port);
    }
}

#[tokio::test]
async fn listener_settings_kafka_refuses_are_refused_at_start() {
    for (listeners, map, advertised, why) in [
        (
            "PLAINTEXT://127.0.0.1:0,PLAINTEXT://127.0.0.1:0",
            None,
            None,
            "twice",
        ),
        ("CUSTOM://127.0.0.1:0", None, None, "no security protocol"),
        (
            "PLAINTEXT://127.0.0.1:0",
            None,
            Some("SSL://h:1"),
            "not one of the listeners",
        ),
        ("PLAINTEXT://127.0.0.1:0", Some("X:TLS"), None, "unknown"),
    ] {
        let err = match klamm::Broker::bind(listeners_config(listeners, map, advertised)).await {
            Ok(_) => panic!("{listeners} {map:?} {advertised:?} was accepted"),
            Err(e) => format!("{e:#}"),
        };
        assert!(err.contains(why), "{listeners}: {err}");
    }
}

/// An inter-broker listener with SASL needs the login, with TLS the CA to verify the other
/// brokers by; OAUTHBEARER is no inter-broker mechanism. Refused at start, before joining.
#[tokio::test]
async fn inter_broker_security_without_what_it_needs_is_refused_at_start() {
    let pki = Pki::new();
    let base = |protocol: &str| BrokerConfig {
        listeners: Some("PLAINTEXT://127.0.0.1:0,INTERNAL://127.0.0.1:0".into()),
        listener_security_protocol_map: Some(format!("PLAINTEXT:PLAINTEXT,INTERNAL:{protocol}")),
        inter_broker_listener_name: Some("INTERNAL".into()),
        ssl_certificate: Some(pki.path("broker.pem")),
        ssl_key: Some(pki.path("broker.key")),
        zookeeper_connect: Some("127.0.0.1:1".into()),
        zookeeper_session_timeout_ms: 1000,
        ..BrokerConfig::ephemeral()
    };
    let cases = [
        (base("SASL_PLAINTEXT"), "needs --inter-broker-sasl-user"),
        (base("SSL"), "needs --ssl-ca"),
        (
            BrokerConfig {
                inter_broker_sasl_mechanism: "OAUTHBEARER".into(),
                inter_broker_sasl_user: Some("b".into()),
                inter_broker_sasl_password: Some("p".into()),
                ..base("SASL_PLAINTEXT")
            },
            "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
        ),
        (
            BrokerConfig {
                inter_broker_sasl_user: Some("broker".into()),
                inter_broker_sasl_password: Some("p".into()),
                authorizer: true,
                super_users: Some("User:ANONYMOUS".into()),
                ..base("SASL_PLAINTEXT")
            },
            "needs User:broker in --super-users",
        ),
    ];
    for (config, why) in cases {
        let err = match klamm::Broker::bind(config).await {
            Ok(_) => panic!("started without {why}"),
            Err(e) => format!("{e:#}"),
        };
        assert!(err.contains(why), "{why}: {err}");
    }
}

/// A broker with a PLAINTEXT and a SASL_PLAINTEXT listener and two users.
async fn sasl_broker(mechanisms: &str) -> klamm::BrokerHandle {
    start_with(BrokerConfig {
        listeners: Some("PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0".into()),
        bootstrap_users: Some("alice:alice-secret,bob:bob-secret".into()),
        sasl_enabled_mechanisms: mechanisms.into(),
        connection_failed_authentication_delay_ms: 10,
        ..BrokerConfig::ephemeral()
    })
    .await
}

async fn handshake(c: &mut Client, mechanism: &str, version: i16) -> SaslHandshakeResponse {
    c.send(
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_string(mechanism.into())),
        version,
    )
    .await
}

async fn authenticate(c: &mut Client, bytes: &[u8]) -> SaslAuthenticateResponse {
    c.send(
        &SaslAuthenticateRequest::default().with_auth_bytes(bytes.to_vec().into()),
        2,
    )
    .await
}

/// A whole SCRAM exchange on a new connection (SHA-512 or SHA-256): the server's first and
/// final answers.
async fn scram_login(
    addr: std::net::SocketAddr,
    sha512: bool,
    user: &str,
    password: &str,
) -> (SaslAuthenticateResponse, SaslAuthenticateResponse) {
    let mut c = Client::connect(addr).await;
    let mechanism = if sha512 {
        "SCRAM-SHA-512"
    } else {
        "SCRAM-SHA-256"
    };
    assert_eq!(handshake(&mut c, mechanism, 1).await.error_code, 0);
    let mut s = scram_client::Client::new(sha512, user, password);
    let first = authenticate(&mut c, &s.first()).await;
    let last = authenticate(
        &mut c,
        &s.last(&first.auth_bytes, scram_client::Nonce::Echo),
    )
    .await;
    (first, last)
}

async fn metadata_works(c: &mut Client) {
    let resp = c.send(&MetadataRequest::default(), 12).await;
    assert_eq!(resp.brokers.len(), 1);
}

#[tokio::test]
async fn sasl_plain_authenticates_known_users_and_refuses_the_rest() {
    let broker = sasl_broker("PLAIN,SCRAM-SHA-256,SCRAM-SHA-512").await;
    let sasl = broker.listener_addr("SASL_PLAINTEXT").unwrap();

    // ApiVersions is served before authentication; the handshake lists the mechanisms.
    let mut c = Client::connect(sasl).await;
    let versions = c
        .send(
            &ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("klamm-tests"))
                .with_client_software_version(StrBytes::from_static_str("1")),
            3,
        )
        .await;
    assert_eq!(versions.error_code, 0);
    assert!(versions
        .api_keys
        .iter()
        .any(|k| k.api_key == ApiKey::SaslAuthenticate as i16 && k.max_version == 2));
    let hs = handshake(&mut c, "PLAIN", 1).await;
    assert_eq!(hs.error_code, 0);
    let names: Vec<&str> = hs.mechanisms.iter().map(|m| m.as_str()).collect();
    assert_eq!(names, ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]);
    let ok = authenticate(&mut c, b"\0alice\0alice-secret").await;
    assert_eq!(ok.error_code, 0, "{:?}", ok.error_message);
    assert_eq!(
        ok.session_lifetime_ms, 0,
        "no connections.max.reauth.ms: no end"
    );
    metadata_works(&mut c).await;
    // A second handshake on an authenticated connection is out of place.
    assert_eq!(handshake(&mut c, "PLAIN", 1).await.error_code, 34);
    metadata_works(&mut c).await;

    // A wrong password and an unknown user get SASL_AUTHENTICATION_FAILED, then a close.
    for token in [&b"\0alice\0bob-secret"[..], b"\0mallory\0alice-secret"] {
        let mut c = Client::connect(sasl).await;
        assert_eq!(handshake(&mut c, "PLAIN", 1).await.error_code, 0);
        let refused = authenticate(&mut c, token).await;
        assert_eq!(refused.error_code, 58, "SASL_AUTHENTICATION_FAILED");
        assert!(refused
            .error_message
            .as_deref()
            .is_some_and(|m| m.contains("Invalid username or password")));
        assert!(c.is_closed().await);
    }

    // An unknown or disabled mechanism: UNSUPPORTED_SASL_MECHANISM with the list, a close.
    let mut c = Client::connect(sasl).await;
    let hs = handshake(&mut c, "GSSAPI", 1).await;
    assert_eq!(hs.error_code, 33);
    assert_eq!(hs.mechanisms.len(), 3);
    assert!(c.is_closed().await);

    // Anything but ApiVersions and the exchange before authentication closes the connection.
    let mut c = Client::connect(sasl).await;
    c.send_only(&MetadataRequest::default(), 12).await;
    assert!(
        c.recv_frame().await.is_none(),
        "Metadata before SASL was answered"
    );
    let mut c = Client::connect(sasl).await;
    assert_eq!(handshake(&mut c, "PLAIN", 1).await.error_code, 0);
    c.send_only(&MetadataRequest::default(), 12).await;
    assert!(
        c.recv_frame().await.is_none(),
        "Metadata mid-exchange was answered"
    );

    // A frame past sasl.server.max.receive.size before authentication closes at once.
    let mut c = Client::connect(sasl).await;
    c.send_raw(&(10_000_000i32).to_be_bytes()).await;
    assert!(c.is_closed().await);

    // The PLAINTEXT listener needs no authentication and knows no exchange.
    let mut c = Client::connect(broker.listener_addr("PLAINTEXT").unwrap()).await;
    metadata_works(&mut c).await;
    assert_eq!(
        handshake(&mut c, "PLAIN", 1).await.error_code,
        34,
        "ILLEGAL_SASL_STATE"
    );
    let a = authenticate(&mut c, b"\0alice\0alice-secret").await;
    assert_eq!(a.error_code, 34);
    metadata_works(&mut c).await;

    // The SASL listener still serves after all of that.
    let mut c = Client::connect(sasl).await;
    assert_eq!(handshake(&mut c, "PLAIN", 1).await.error_code, 0);
    assert_eq!(
        authenticate(&mut c, b"\0bob\0bob-secret").await.error_code,
        0
    );
    metadata_works(&mut c).await;
    let ctx = broker.context().unwrap();
    assert_eq!(ctx.metrics.authentications.get(), 2);
    assert_eq!(ctx.metrics.authentication_failures.get(), 2);
}

/// The client side of SCRAM, written from RFC 5802 with the hmac and sha2 crates.
mod scram_client {
    use base64::engine::general_purpose::STANDARD as B64;
    use base64::Engine as _;
    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha256, Sha512};

    /// What the client puts in its final message's nonce.
    #[derive(Clone, Copy, Debug)]
    pub enum Nonce {
        /// The server's combined nonce, as RFC 5802 says.
        Echo,
        /// Its own nonce again in front of the combined one, as librdkafka sends it.
        Librdkafka,
        Forged(&'static str),
    }

    pub struct Client {
        pub sha512: bool,
        pub user: String,
        pub password: String,
        pub nonce: String,
        first_bare: String,
        expected_server_signature: Vec<u8>,
    }

    fn hmac(sha512: bool, key: &[u8], data: &[u8]) -> Vec<u8> {
        if sha512 {
            let mut m = Hmac::<Sha512>::new_from_slice(key).unwrap();
            m.update(data);
            m.finalize().into_bytes().to_vec()
        } else {
            let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
    }

    impl Client {
        pub fn new(sha512: bool, user: &str, password: &str) -> Client {
            Client {
                sha512,
                user: user.into(),
                password: password.into(),
                nonce: "rOprNGfwEbeRWgbNEkqO".into(),
                first_bare: String::new(),
                expected_server_signature: Vec::new(),
            }
        }

        pub fn first(&mut self) -> Vec<u8> {
            self.first_bare = format!("n={},r={}", self.user, self.nonce);
            format!("n,,{}", self.first_bare).into_bytes()
        }

        /// The final message for the server's first; `nonce` overrides the echoed nonce.
        pub fn last(&mut self, server_first: &[u8], nonce: Nonce) -> Vec<u8> {
            let server_first = std::str::from_utf8(server_first).unwrap();
            let mut parts = server_first.split(',');
            let r = parts.next().unwrap().strip_prefix("r=").unwrap();
            assert!(
                r.starts_with(&self.nonce),
                "the server's nonce extends ours"
            );
            let salt = B64
                .decode(parts.next().unwrap().strip_prefix("s=").unwrap())
                .unwrap();
            let i: u32 = parts
                .next()
                .unwrap()
                .strip_prefix("i=")
                .unwrap()
                .parse()
                .unwrap();
            let salted = if self.sha512 {
                pbkdf2::pbkdf2_hmac_array::<Sha512, 64>(self.password.as_bytes(), &salt, i).to_vec()
            } else {
                pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(self.password.as_bytes(), &salt, i).to_vec()
            };
            let client_key = hmac(self.sha512, &salted, b"Client Key");
            let stored_key = if self.sha512 {
                Sha512::digest(&client_key).to_vec()
            } else {
                Sha256::digest(&client_key).to_vec()
            };
            let nonce = match nonce {
                Nonce::Echo => r.to_string(),
                Nonce::Librdkafka => format!("{}{r}", self.nonce),
                Nonce::Forged(n) => n.to_string(),
            };
            let without_proof = format!("c=biws,r={nonce}");
            let auth = format!("{},{server_first},{without_proof}", self.first_bare);
            let sig = hmac(self.sha512, &stored_key, auth.as_bytes());
            let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
            let server_key = hmac(self.sha512, &salted, b"Server Key");
            self.expected_server_signature = hmac(self.sha512, &server_key, auth.as_bytes());
            format!("{without_proof},p={}", B64.encode(proof)).into_bytes()
        }

        pub fn server_final_ok(&self, server_final: &[u8]) -> bool {
            server_final == format!("v={}", B64.encode(&self.expected_server_signature)).as_bytes()
        }
    }
}

#[tokio::test]
async fn sasl_scram_runs_rfc_5802_with_both_hashes() {
    let broker = sasl_broker("SCRAM-SHA-512,SCRAM-SHA-256").await;
    let sasl = broker.listener_addr("SASL_PLAINTEXT").unwrap();
    use scram_client::Nonce;
    for (sha512, mechanism) in [(false, "SCRAM-SHA-256"), (true, "SCRAM-SHA-512")] {
        // The right password: the server's final message proves it knows the credential.
        // Kafka takes librdkafka's form of the final nonce too.
        for nonce in [Nonce::Echo, Nonce::Librdkafka] {
            let mut c = Client::connect(sasl).await;
            assert_eq!(handshake(&mut c, mechanism, 1).await.error_code, 0);
            let mut s = scram_client::Client::new(sha512, "alice", "alice-secret");
            let first = authenticate(&mut c, &s.first()).await;
            assert_eq!(first.error_code, 0);
            let last = authenticate(&mut c, &s.last(&first.auth_bytes, nonce)).await;
            assert_eq!(last.error_code, 0, "{nonce:?}: {:?}", last.error_message);
            assert!(
                s.server_final_ok(&last.auth_bytes),
                "{mechanism}: server signature"
            );
            metadata_works(&mut c).await;
        }

        // A wrong password, an unknown user and a nonce that is not the server's.
        for (user, password, nonce) in [
            ("alice", "bob-secret", Nonce::Echo),
            ("nobody", "alice-secret", Nonce::Echo),
            (
                "alice",
                "alice-secret",
                Nonce::Forged("rOprNGfwEbeRWgbNEkqOforged"),
            ),
        ] {
            let mut c = Client::connect(sasl).await;
            assert_eq!(handshake(&mut c, mechanism, 1).await.error_code, 0);
            let mut s = scram_client::Client::new(sha512, user, password);
            let first = authenticate(&mut c, &s.first()).await;
            assert_eq!(
                first.error_code, 0,
                "the first message does not reveal whether {user} exists"
            );
            let last = authenticate(&mut c, &s.last(&first.auth_bytes, nonce)).await;
            assert_eq!(
                last.error_code, 58,
                "{mechanism} {user} {password} {nonce:?}"
            );
            assert!(last.error_message.as_deref().unwrap().contains(mechanism));
            assert!(c.is_closed().await);
        }

        // Malformed first messages are refused, and the broker goes on serving.
        for bad in [
            &b"garbage"[..],
            b"p=tls-unique,,n=alice,r=x",
            b"n,,r=x",
            b"\xff",
        ] {
            let mut c = Client::connect(sasl).await;
            assert_eq!(handshake(&mut c, mechanism, 1).await.error_code, 0);
            assert_eq!(authenticate(&mut c, bad).await.error_code, 58, "{bad:?}");
            assert!(c.is_closed().await);
        }
    }
}

#[tokio::test]
async fn sasl_handshake_v0_takes_raw_tokens() {
    let broker = sasl_broker("PLAIN,SCRAM-SHA-256").await;
    let sasl = broker.listener_addr("SASL_PLAINTEXT").unwrap();
    // SCRAM with the tokens as bare size-prefixed frames, then ordinary requests.
    let mut c = Client::connect(sasl).await;
    assert_eq!(handshake(&mut c, "SCRAM-SHA-256", 0).await.error_code, 0);
    let mut s = scram_client::Client::new(false, "bob", "bob-secret");
    c.send_raw_frame(&s.first()).await;
    let server_first = c.recv_frame().await.expect("server-first-message");
    c.send_raw_frame(&s.last(&server_first, scram_client::Nonce::Echo))
        .await;
    let server_final = c.recv_frame().await.expect("server-final-message");
    assert!(s.server_final_ok(&server_final));
    metadata_works(&mut c).await;
    // A wrong PLAIN password as a raw token: the connection closes.
    let mut c = Client::connect(sasl).await;
    assert_eq!(handshake(&mut c, "PLAIN", 0).await.error_code, 0);
    c.send_raw_frame(b"\0bob\0wrong").await;
    assert!(c.recv_frame().await.is_none());
}

#[tokio::test]
async fn sasl_oauthbearer_takes_unsecured_tokens_when_enabled() {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let broker = sasl_broker("OAUTHBEARER").await;
    let sasl = broker.listener_addr("SASL_PLAINTEXT").unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = |exp: u64| {
        format!(
            "n,,\x01auth=Bearer {}.{}.\x01\x01",
            b64(r#"{"alg":"none"}"#),
            b64(&format!(r#"{{"sub":"carol","exp":{exp},"iat":{now}}}"#))
        )
    };
    let mut c = Client::connect(sasl).await;
    assert_eq!(handshake(&mut c, "OAUTHBEARER", 1).await.error_code, 0);
    let ok = authenticate(&mut c, token(now + 600).as_bytes()).await;
    assert_eq!(ok.error_code, 0, "{:?}", ok.error_message);
    // The session lasts as long as the token (KIP-368's credential lifetime).
    assert!(
        (590_000..=600_000).contains(&ok.session_lifetime_ms),
        "{}",
        ok.session_lifetime_ms
    );
    metadata_works(&mut c).await;
    // An expired token: the error challenge, the client's 0x01, then the failure.
    let mut c = Client::connect(sasl).await;
    assert_eq!(handshake(&mut c, "OAUTHBEARER", 1).await.error_code, 0);
    let challenge = authenticate(&mut c, token(now - 600).as_bytes()).await;
    assert_eq!(challenge.error_code, 0);
    assert_eq!(&challenge.auth_bytes[..], br#"{"status":"invalid_token"}"#);
    let failed = authenticate(&mut c, b"\x01").await;
    assert_eq!(failed.error_code, 58);
    assert!(failed.error_message.as_deref().unwrap().contains("expired"));
    assert!(c.is_closed().await);
    // PLAIN is not enabled on this broker.
    let mut c = Client::connect(sasl).await;
    assert_eq!(handshake(&mut c, "PLAIN", 1).await.error_code, 33);
}

/// KIP-368 with `connections.max.reauth.ms`: the client is told its session's lifetime,
/// re-authenticates on the same connection (SaslHandshake then SaslAuthenticate) as the same
/// principal with the same mechanism, at most once a second; a session that ends without
/// one is closed at its next request.
#[tokio::test]
async fn sasl_sessions_end_unless_the_client_reauthenticates() {
    let broker = start_with(BrokerConfig {
        listeners: Some("SASL_PLAINTEXT://127.0.0.1:0".into()),
        bootstrap_users: Some("alice:alice-secret,bob:bob-secret".into()),
        sasl_enabled_mechanisms: "PLAIN,SCRAM-SHA-256".into(),
        connection_failed_authentication_delay_ms: 10,
        connections_max_reauth_ms: 1500,
        ..BrokerConfig::ephemeral()
    })
    .await;
    let sasl = broker.listener_addr("SASL_PLAINTEXT").unwrap();
    let login = |user: &'static str| async move {
        let mut c = Client::connect(sasl).await;
        assert_eq!(handshake(&mut c, "PLAIN", 1).await.error_code, 0);
        let token = format!("\0{user}\0{user}-secret");
        let ok = authenticate(&mut c, token.as_bytes()).await;
        assert_eq!(ok.error_code, 0, "{:?}", ok.error_message);
        assert_eq!(ok.session_lifetime_ms, 1500);
        c
    };

    // Re-authentication as the same user renews the session.
    let mut c = login("alice").await;
    metadata_works(&mut c).await;
    assert_eq!(handshake(&mut c, "PLAIN", 1).await.error_code, 0);
    let again = authenticate(&mut c, b"\0alice\0alice-secret").await;
    assert_eq!(again.error_code, 0, "{:?}", again.error_message);
    assert_eq!(again.session_lifetime_ms, 1500);
    metadata_works(&mut c).await;
    // Within a second of the last one, a handshake is an ordinary request again.
    assert_eq!(handshake(&mut c, "PLAIN", 1).await.error_code, 34);
    metadata_works(&mut c).await;

    // Another principal, or another mechanism, fails the re-authentication and closes.
    let mut c = login("alice").await;
    assert_eq!(handshake(&mut c, "PLAIN", 1).await.error_code, 0);
    let refused = authenticate(&mut c, b"\0bob\0bob-secret").await;
    assert_eq!(refused.error_code, 58);
    assert_eq!(
        refused.error_message.as_deref().map(|m| m.to_string()),
        Some("Cannot change principals during re-authentication from User.alice: User.bob".into())
    );
    assert!(c.is_closed().await);
    let mut c = login("alice").await;
    assert_eq!(handshake(&mut c, "SCRAM-SHA-256", 1).await.error_code, 0);
    let mut scram = scram_client::Client::new(false, "alice", "alice-secret");
    let refused = authenticate(&mut c, &scram.first()).await;
    assert_eq!(refused.error_code, 58);
    assert_eq!(
        refused.error_message.as_deref().map(|m| m.to_string()),
        Some("SASL mechanism 'SCRAM-SHA-256' requested by client is not supported for re-authentication of mechanism 'PLAIN'".into())
    );
    assert!(c.is_closed().await);

    // A re-authentication that comes after the session ended is still taken (Kafka's
    // order: an idle client re-authenticates only when it next sends).
    let mut late = login("alice").await;
    tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
    assert_eq!(handshake(&mut late, "PLAIN", 1).await.error_code, 0);
    let again = authenticate(&mut late, b"\0alice\0alice-secret").await;
    assert_eq!(again.error_code, 0, "{:?}", again.error_message);
    metadata_works(&mut late).await;

    // A session past its end: any other request closes the connection.
    let mut c = login("bob").await;
    metadata_works(&mut c).await;
    tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
    c.send_only(&MetadataRequest::default(), 12).await;
    assert!(c.recv_frame().await.is_none(), "closed, not answered");
    let ctx = broker.context().unwrap();
    assert_eq!(ctx.metrics.expired_sessions_closed.get(), 1);
    assert_eq!(ctx.metrics.reauthentications.get(), 2);
}

#[tokio::test]
async fn users_survive_a_restart_and_bootstrap_does_not_reset_them() {
    let dir = tempfile::tempdir().unwrap();
    let config = |users: &str| BrokerConfig {
        listeners: Some("SASL_PLAINTEXT://127.0.0.1:0".into()),
        bootstrap_users: Some(users.into()),
        ..config_in(dir.path())
    };
    let broker = start_with(config("dave:first")).await;
    let ctx = broker.context().unwrap();
    ctx.users
        .create_with_password("dave", "second")
        .await
        .unwrap();
    drop(ctx);
    broker.shutdown().await;
    let broker = start_with(config("dave:first")).await;
    let mut c = Client::connect(broker.addr()).await;
    assert_eq!(handshake(&mut c, "PLAIN", 1).await.error_code, 0);
    let a = authenticate(&mut c, b"\0dave\0second").await;
    assert_eq!(
        a.error_code, 0,
        "the password set after bootstrap survives the restart"
    );
}

/// Certificates made with the openssl CLI, as the README's example makes them: a CA, the
/// broker's certificate for 127.0.0.1/localhost, and a client certificate.
pub(crate) struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    pub(crate) fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let run = |args: &[&str]| {
            let out = std::process::Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .output()
                .expect("openssl runs");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=Klamm Test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ]);
        std::fs::write(
            dir.path().join("san.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .unwrap();
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "broker.key",
            "-out",
            "broker.csr",
        ]);
        run(&[
            "x509",
            "-req",
            "-in",
            "broker.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "broker.pem",
        ]);
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/C=DE/O=Acme, Inc./OU=payments/CN=app",
            "-keyout",
            "client.key",
            "-out",
            "client.csr",
        ]);
        // With an extension, so it is an X.509 v3 certificate: rustls refuses v1 ones.
        std::fs::write(
            dir.path().join("client.ext"),
            "extendedKeyUsage=clientAuth\n",
        )
        .unwrap();
        run(&[
            "x509",
            "-req",
            "-in",
            "client.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "client.ext",
            "-out",
            "client.pem",
        ]);
        // A client certificate from a CA the broker does not trust.
        run(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=stranger",
            "-keyout",
            "stranger.key",
            "-out",
            "stranger.pem",
        ]);
        Pki { dir }
    }

    pub(crate) fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    fn tls_config(&self, listeners: &str, auth: klamm::security::tls::ClientAuth) -> BrokerConfig {
        BrokerConfig {
            listeners: Some(listeners.into()),
            ssl_certificate: Some(self.path("broker.pem")),
            ssl_key: Some(self.path("broker.key")),
            ssl_client_auth: auth,
            ssl_ca: Some(self.path("ca.pem")),
            bootstrap_users: Some("alice:alice-secret".into()),
            connection_failed_authentication_delay_ms: 10,
            ..BrokerConfig::ephemeral()
        }
    }

    /// A rustls client trusting the test CA, with a client certificate if named.
    fn client(&self, cert: Option<&str>) -> std::sync::Arc<rustls::ClientConfig> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(self.path("ca.pem")).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        #[allow(deprecated)]
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let b = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = match cert {
            None => b.with_no_client_auth(),
            Some(name) => b
                .with_client_auth_cert(
                    CertificateDer::pem_file_iter(self.path(&format!("{name}.pem")))
                        .unwrap()
                        .map(Result::unwrap)
                        .collect(),
                    PrivateKeyDer::from_pem_file(self.path(&format!("{name}.key"))).unwrap(),
                )
                .unwrap(),
        };
        std::sync::Arc::new(config)
    }
}

/// A blocking Kafka client over TLS (rustls), enough for a few requests.
struct TlsClient {
    stream: rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>,
    correlation_id: i32,
}

impl TlsClient {
    fn connect(
        addr: std::net::SocketAddr,
        config: std::sync::Arc<rustls::ClientConfig>,
    ) -> std::io::Result<TlsClient> {
        let tcp = std::net::TcpStream::connect(addr)?;
        tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
        let conn = rustls::ClientConnection::new(config, "localhost".try_into().unwrap()).unwrap();
        let mut stream = rustls::StreamOwned::new(conn, tcp);
        // Complete the handshake now, so a refusal shows here.
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock)?;
        }
        Ok(TlsClient {
            stream,
            correlation_id: 0,
        })
    }

    fn send<R: kafka_protocol::protocol::Request>(
        &mut self,
        req: &R,
        version: i16,
    ) -> std::io::Result<R::Response> {
        use bytes::BufMut;
        use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};
        use std::io::{Read, Write};
        self.correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("klamm-tls-tests")));
        let mut body = bytes::BytesMut::new();
        header
            .encode(&mut body, R::header_version(version))
            .unwrap();
        req.encode(&mut body, version).unwrap();
        let mut frame = bytes::BytesMut::new();
        frame.put_i32(body.len() as i32);
        frame.extend_from_slice(&body);
        self.stream.write_all(&frame)?;
        self.stream.flush()?;
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len)?;
        let mut buf = vec![0u8; i32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut buf)?;
        let mut buf = bytes::Bytes::from(buf);
        let h = ResponseHeader::decode(&mut buf, R::Response::header_version(version)).unwrap();
        assert_eq!(h.correlation_id, self.correlation_id);
        Ok(R::Response::decode(&mut buf, version).unwrap())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ssl_and_sasl_ssl_listeners_serve_over_tls() {
    use klamm::security::tls::ClientAuth;
    let pki = Pki::new();
    let broker = start_with(pki.tls_config(
        "SSL://127.0.0.1:0,SASL_SSL://127.0.0.1:0,PLAINTEXT://127.0.0.1:0",
        ClientAuth::None,
    ))
    .await;
    let ssl = broker.listener_addr("SSL").unwrap();
    let sasl_ssl = broker.listener_addr("SASL_SSL").unwrap();
    let client = pki.client(None);
    let produced = tokio::task::spawn_blocking(move || {
        // SSL: served at once, and Metadata names the SSL listener's endpoint.
        let mut c = TlsClient::connect(ssl, client.clone()).unwrap();
        let md = c.send(&MetadataRequest::default(), 12).unwrap();
        assert_eq!(md.brokers[0].port, i32::from(ssl.port()));
        // Large requests and responses cross many TLS records.
        let big = vec![b'x'; 300_000];
        let created = c
            .send(
                &CreateTopicsRequest::default().with_topics(vec![
                    create_topics_request::CreatableTopic::default()
                        .with_name(TopicName(StrBytes::from_static_str("tls-topic")))
                        .with_num_partitions(1)
                        .with_replication_factor(1),
                ]),
                5,
            )
            .unwrap();
        assert_eq!(created.topics[0].error_code, 0);
        let records = batch(
            &[kafka_protocol::records::Record {
                value: Some(big.clone().into()),
                ..record(0, 1)
            }],
            kafka_protocol::records::Compression::None,
        );
        let resp = c
            .send(
                &common::wire::produce_req("tls-topic", uuid::Uuid::nil(), 0, records, -1),
                9,
            )
            .unwrap();
        assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
        // SASL_SSL: TLS, then SASL.
        let mut c = TlsClient::connect(sasl_ssl, client).unwrap();
        let hs = c
            .send(
                &SaslHandshakeRequest::default()
                    .with_mechanism(StrBytes::from_static_str("SCRAM-SHA-512")),
                1,
            )
            .unwrap();
        assert_eq!(hs.error_code, 0);
        let mut s = scram_client::Client::new(true, "alice", "alice-secret");
        let first = c
            .send(
                &SaslAuthenticateRequest::default().with_auth_bytes(s.first().into()),
                2,
            )
            .unwrap();
        let last = c
            .send(
                &SaslAuthenticateRequest::default()
                    .with_auth_bytes(s.last(&first.auth_bytes, scram_client::Nonce::Echo).into()),
                2,
            )
            .unwrap();
        assert_eq!(last.error_code, 0);
        let md = c.send(&MetadataRequest::default(), 12).unwrap();
        assert_eq!(md.brokers[0].port, i32::from(sasl_ssl.port()));
        big
    })
    .await
    .unwrap();

    // Read back over plaintext: the same bytes.
    let mut c = Client::connect(broker.listener_addr("PLAINTEXT").unwrap()).await;
    let fetched = common::wire::fetch(&mut c, "tls-topic", 0, 0, 11).await;
    let got = decode_records(fetched.records.clone().unwrap());
    assert_eq!(got[0].value.as_deref(), Some(&produced[..]));

    // Plaintext on a TLS port fails the handshake and closes; the broker goes on.
    let mut raw = Client::connect(ssl).await;
    raw.send_only(&ApiVersionsRequest::default(), 0).await;
    // The broker may answer with a TLS alert before it closes.
    assert!(
        raw.closes().await,
        "plaintext on the TLS port left the connection open"
    );
    let ctx = broker.context().unwrap();
    wait_until("a counted TLS handshake failure", || {
        ctx.metrics.tls_handshake_failures.get() >= 1
    })
    .await;
    assert_eq!(ctx.metrics.tls_handshake_failures.get(), 1);
    let client = pki.client(None);
    tokio::task::spawn_blocking(move || {
        let mut c = TlsClient::connect(ssl, client).unwrap();
        c.send(&MetadataRequest::default(), 12).unwrap();
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn mutual_tls_refuses_untrusted_clients_and_names_the_others_by_subject() {
    use klamm::security::tls::ClientAuth;
    let pki = Pki::new();
    let broker = start_with(pki.tls_config(
        "SSL://127.0.0.1:0,SASL_SSL://127.0.0.1:0",
        ClientAuth::Required,
    ))
    .await;
    let ssl = broker.addr();
    let sasl_ssl = broker.listener_addr("SASL_SSL").unwrap();
    let (trusted, none, stranger) = (
        pki.client(Some("client")),
        pki.client(None),
        pki.client(Some("stranger")),
    );
    tokio::task::spawn_blocking(move || {
        let mut c = TlsClient::connect(ssl, trusted).unwrap();
        c.send(&MetadataRequest::default(), 12).unwrap();
        // As in Kafka, --ssl-client-auth is for SSL listeners: SASL_SSL clients
        // authenticate with SASL and need no certificate.
        let mut c = TlsClient::connect(sasl_ssl, none.clone()).unwrap();
        let hs = c
            .send(
                &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
                1,
            )
            .unwrap();
        assert_eq!(hs.error_code, 0);
        let a = c
            .send(
                &SaslAuthenticateRequest::default()
                    .with_auth_bytes(b"\0alice\0alice-secret".to_vec().into()),
                2,
            )
            .unwrap();
        assert_eq!(a.error_code, 0);
        // TLS 1.3 clients learn of a refused certificate on their first read.
        for config in [none, stranger] {
            let refused = TlsClient::connect(ssl, config)
                .and_then(|mut c| c.send(&MetadataRequest::default(), 12).map(|_| ()));
            assert!(
                refused.is_err(),
                "a client without a trusted certificate was served"
            );
        }
    })
    .await
    .unwrap();
    // The client reads the alert before the server has counted the failure: wait for it.
    let ctx = broker.context().unwrap();
    wait_until("two counted TLS handshake failures", || {
        ctx.metrics.tls_handshake_failures.get() >= 2
    })
    .await;
    assert_eq!(ctx.metrics.tls_handshake_failures.get(), 2);

    // The principal Kafka's default mapping gives: the subject, last RDN first.
    use rustls::pki_types::pem::PemObject;
    let der = rustls::pki_types::CertificateDer::from_pem_file(pki.path("client.pem")).unwrap();
    assert_eq!(
        klamm::security::tls::certificate_principal(&der).as_deref(),
        Some("User:CN=app,OU=payments,O=Acme\\, Inc.,C=DE")
    );
}

#[tokio::test]
async fn a_tls_listener_without_a_certificate_is_refused_at_start() {
    let err = match klamm::Broker::bind(BrokerConfig {
        listeners: Some("SSL://127.0.0.1:0".into()),
        ..BrokerConfig::ephemeral()
    })
    .await
    {
        Ok(_) => panic!("an SSL listener without a certificate started"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("--ssl-certificate"), "{err}");
}

#[tokio::test]
async fn scram_users_are_managed_with_kafkas_admin_apis() {
    use alter_user_scram_credentials_request::{ScramCredentialDeletion, ScramCredentialUpsertion};
    let broker = sasl_broker("PLAIN,SCRAM-SHA-256,SCRAM-SHA-512").await;
    let mut admin = Client::connect(broker.listener_addr("PLAINTEXT").unwrap()).await;
    let salt = b"carol-salt-0123456789".to_vec();
    let salted = pbkdf2::pbkdf2_hmac_array::<sha2::Sha256, 32>(b"carol-pw", &salt, 8192);
    let upsert = |name: &str, mechanism: i8, iterations: i32| {
        ScramCredentialUpsertion::default()
            .with_name(StrBytes::from_string(name.into()))
            .with_mechanism(mechanism)
            .with_iterations(iterations)
            .with_salt(salt.clone().into())
            .with_salted_password(salted.to_vec().into())
    };
    let delete = |name: &str, mechanism: i8| {
        ScramCredentialDeletion::default()
            .with_name(StrBytes::from_string(name.into()))
            .with_mechanism(mechanism)
    };
    let resp = admin
        .send(
            &AlterUserScramCredentialsRequest::default()
                .with_upsertions(vec![
                    upsert("carol", 1, 8192),
                    upsert("few", 1, 1000),
                    upsert("many", 1, 20000),
                    upsert("", 1, 4096),
                    upsert("odd", 9, 4096),
                    upsert("twice", 1, 4096),
                    upsert("twice", 2, 4096),
                ])
                .with_deletions(vec![delete("ghost", 1), delete("bob", 2)]),
            0,
        )
        .await;
    let mut got: Vec<(String, i16, String)> = resp
        .results
        .iter()
        .map(|r| {
            (
                r.user.to_string(),
                r.error_code,
                r.error_message.as_deref().unwrap_or("").to_string(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("".into(), 93, "Username must not be empty".into()),
            ("bob".into(), 0, "".into()),
            ("carol".into(), 0, "".into()),
            ("few".into(), 93, "Too few iterations".into()),
            (
                "ghost".into(),
                91,
                "Attempt to delete a user credential that does not exist".into()
            ),
            ("many".into(), 93, "Too many iterations".into()),
            ("odd".into(), 33, "Unknown SCRAM mechanism".into()),
            (
                "twice".into(),
                92,
                "A user credential cannot be altered twice in the same request".into()
            ),
        ]
    );

    // Carol signs in with SCRAM-SHA-256 (the credential the admin client sent) and PLAIN.
    let sasl = broker.listener_addr("SASL_PLAINTEXT").unwrap();
    let (first, last) = scram_login(sasl, false, "carol", "carol-pw").await;
    assert!(std::str::from_utf8(&first.auth_bytes)
        .unwrap()
        .ends_with(",i=8192"));
    assert_eq!(last.error_code, 0);
    let mut c = Client::connect(sasl).await;
    assert_eq!(handshake(&mut c, "PLAIN", 1).await.error_code, 0);
    assert_eq!(
        authenticate(&mut c, b"\0carol\0carol-pw").await.error_code,
        0
    );
    // Bob lost SCRAM-SHA-512 but keeps SCRAM-SHA-256.
    let (_, last) = scram_login(sasl, true, "bob", "bob-secret").await;
    assert_eq!(last.error_code, 58);

    // Describe: every user, named users, unknown and duplicate names.
    let all = admin
        .send(&DescribeUserScramCredentialsRequest::default(), 0)
        .await;
    let mut users: Vec<(String, Vec<(i8, i32)>)> = all
        .results
        .iter()
        .map(|r| {
            (
                r.user.to_string(),
                r.credential_infos
                    .iter()
                    .map(|c| (c.mechanism, c.iterations))
                    .collect(),
            )
        })
        .collect();
    users.sort();
    assert_eq!(
        users,
        vec![
            ("alice".into(), vec![(1, 4096), (2, 4096)]),
            ("bob".into(), vec![(1, 4096)]),
            ("carol".into(), vec![(1, 8192)]),
        ]
    );
    let name = |n: &str| {
        describe_user_scram_credentials_request::UserName::default()
            .with_name(StrBytes::from_string(n.into()))
    };
    let some = admin
        .send(
            &DescribeUserScramCredentialsRequest::default().with_users(Some(vec![
                name("carol"),
                name("nobody"),
                name("bob"),
                name("bob"),
            ])),
            0,
        )
        .await;
    let mut codes: Vec<(String, i16)> = some
        .results
        .iter()
        .map(|r| (r.user.to_string(), r.error_code))
        .collect();
    codes.sort();
    assert_eq!(
        codes,
        vec![
            ("bob".into(), 92),
            ("carol".into(), 0),
            ("nobody".into(), 91)
        ]
    );
}
