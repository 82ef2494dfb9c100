//! Delegation tokens (KIP-48) over the wire: the four APIs with Kafka 4.4's checks and
//! error codes, SCRAM logins with a token (`tokenauth=true`) as its owner, expiry, the
//! sweep and a restart.

use crate::common;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use common::*;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_delegation_token_request::CreatableRenewers;
use kafka_protocol::messages::describe_delegation_token_request::DescribeDelegationTokenOwner;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use klamm::security::scram::{ScramClient, ScramMechanism};
use klamm::BrokerConfig;

const AUTH_DISABLED: i16 = 61;
const NOT_FOUND: i16 = 62;
const OWNER_MISMATCH: i16 = 63;
const REQUEST_NOT_ALLOWED: i16 = 64;
const AUTHORIZATION_FAILED: i16 = 65;
const EXPIRED: i16 = 66;
const INVALID_PRINCIPAL_TYPE: i16 = 67;
const SASL_AUTHENTICATION_FAILED: i16 = 58;

pub(crate) const SECRET: &str = "s3cret";

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.into())
}

fn config(dir: &std::path::Path, secret: Option<&str>) -> BrokerConfig {
    BrokerConfig {
        listeners: Some("PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0".into()),
        bootstrap_users: Some("admin:admin-pw,alice:alice-pw,bob:bob-pw,carol:carol-pw".into()),
        connection_failed_authentication_delay_ms: 10,
        delegation_token_secret_key: secret.map(Into::into),
        ..config_in(dir)
    }
}

/// A SCRAM login on a new connection; with `token`, `user` is a token id and `password`
/// its HMAC in base64. Returns the connection, or the SaslAuthenticate error.
async fn scram(
    broker: &klamm::BrokerHandle,
    m: ScramMechanism,
    user: &str,
    password: &str,
    token: bool,
) -> Result<Client, (i16, String)> {
    scram_at(
        broker.listener_addr("SASL_PLAINTEXT").unwrap(),
        m,
        user,
        password,
        token,
    )
    .await
}

/// [`scram`] on a listener's address.
pub(crate) async fn scram_at(
    addr: std::net::SocketAddr,
    m: ScramMechanism,
    user: &str,
    password: &str,
    token: bool,
) -> Result<Client, (i16, String)> {
    let mut c = Client::connect(addr).await;
    let hs: SaslHandshakeResponse = c
        .send(
            &SaslHandshakeRequest::default().with_mechanism(s(m.name())),
            1,
        )
        .await;
    assert_eq!(hs.error_code, 0);
    let ext = if token { "tokenauth=true" } else { "" };
    let (mut client, first) = ScramClient::start_with_extensions(m, user, password, ext);
    let step = |bytes: Vec<u8>| SaslAuthenticateRequest::default().with_auth_bytes(bytes.into());
    let a: SaslAuthenticateResponse = c.send(&step(first), 2).await;
    if a.error_code != 0 {
        return Err((
            a.error_code,
            a.error_message.unwrap_or_default().to_string(),
        ));
    }
    let last = client
        .answer(&a.auth_bytes)
        .expect("a server-first message");
    let b: SaslAuthenticateResponse = c.send(&step(last), 2).await;
    if b.error_code != 0 {
        return Err((
            b.error_code,
            b.error_message.unwrap_or_default().to_string(),
        ));
    }
    client
        .verify(&b.auth_bytes)
        .expect("the server knows the credential");
    Ok(c)
}

async fn user(broker: &klamm::BrokerHandle, name: &str) -> Client {
    scram(
        broker,
        ScramMechanism::Sha256,
        name,
        &format!("{name}-pw"),
        false,
    )
    .await
    .unwrap_or_else(|e| panic!("{name} logs in: {e:?}"))
}

async fn token_login(
    broker: &klamm::BrokerHandle,
    m: ScramMechanism,
    id: &str,
    hmac: &[u8],
) -> Result<Client, (i16, String)> {
    scram(broker, m, id, &B64.encode(hmac), true).await
}

pub(crate) fn create_req(
    renewers: &[(&str, &str)],
    max_lifetime_ms: i64,
) -> CreateDelegationTokenRequest {
    CreateDelegationTokenRequest::default()
        .with_renewers(
            renewers
                .iter()
                .map(|(t, n)| {
                    CreatableRenewers::default()
                        .with_principal_type(s(t))
                        .with_principal_name(s(n))
                })
                .collect(),
        )
        .with_max_lifetime_ms(max_lifetime_ms)
}

pub(crate) fn renew(hmac: &[u8], period: i64) -> RenewDelegationTokenRequest {
    RenewDelegationTokenRequest::default()
        .with_hmac(hmac.to_vec().into())
        .with_renew_period_ms(period)
}

pub(crate) fn expire(hmac: &[u8], period: i64) -> ExpireDelegationTokenRequest {
    ExpireDelegationTokenRequest::default()
        .with_hmac(hmac.to_vec().into())
        .with_expiry_time_period_ms(period)
}

pub(crate) fn owners(list: Option<&[&str]>) -> DescribeDelegationTokenRequest {
    DescribeDelegationTokenRequest::default().with_owners(list.map(|l| {
        l.iter()
            .map(|p| {
                let (t, n) = p.split_once(':').unwrap();
                DescribeDelegationTokenOwner::default()
                    .with_principal_type(s(t))
                    .with_principal_name(s(n))
            })
            .collect()
    }))
}

/// A token's HMAC under [`SECRET`], computed here as Kafka's brokers compute it.
pub(crate) fn hmac_of(id: &str) -> Vec<u8> {
    use hmac::{Hmac, Mac};
    let mut m = Hmac::<sha2::Sha512>::new_from_slice(SECRET.as_bytes()).unwrap();
    m.update(id.as_bytes());
    m.finalize().into_bytes().to_vec()
}

#[tokio::test]
async fn tokens_are_refused_without_a_secret_and_on_unauthenticated_channels() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_with(config(dir.path(), None)).await;
    let mut alice = user(&broker, "alice").await;
    let c: CreateDelegationTokenResponse = alice.send(&create_req(&[], -1), 3).await;
    assert_eq!(c.error_code, AUTH_DISABLED);
    assert_eq!(
        (
            c.principal_name.as_str(),
            c.token_requester_principal_name.as_str()
        ),
        ("alice", "alice")
    );
    let r: RenewDelegationTokenResponse = alice.send(&renew(&[1; 64], -1), 2).await;
    assert_eq!(r.error_code, AUTH_DISABLED);
    let e: ExpireDelegationTokenResponse = alice.send(&expire(&[1; 64], -1), 2).await;
    assert_eq!(e.error_code, AUTH_DISABLED);
    let d: DescribeDelegationTokenResponse = alice.send(&owners(None), 3).await;
    assert_eq!(d.error_code, AUTH_DISABLED);
    broker.shutdown().await;

    // With a secret, the PLAINTEXT listener still may not manage tokens (channel first).
    let broker = start_with(config(dir.path(), Some(SECRET))).await;
    let mut plain = Client::connect(broker.listener_addr("PLAINTEXT").unwrap()).await;
    let c: CreateDelegationTokenResponse = plain.send(&create_req(&[], -1), 1).await;
    assert_eq!(c.error_code, REQUEST_NOT_ALLOWED);
    assert_eq!(
        (
            c.issue_timestamp_ms,
            c.expiry_timestamp_ms,
            c.max_timestamp_ms
        ),
        (-1, -1, -1)
    );
    assert_eq!(
        (c.principal_name.as_str(), c.token_id.as_str()),
        ("ANONYMOUS", "")
    );
    let r: RenewDelegationTokenResponse = plain.send(&renew(&[1; 64], -1), 1).await;
    assert_eq!(
        (r.error_code, r.expiry_timestamp_ms),
        (REQUEST_NOT_ALLOWED, -1)
    );
    let e: ExpireDelegationTokenResponse = plain.send(&expire(&[1; 64], -1), 1).await;
    assert_eq!(
        (e.error_code, e.expiry_timestamp_ms),
        (REQUEST_NOT_ALLOWED, -1)
    );
    let d: DescribeDelegationTokenResponse = plain.send(&owners(None), 1).await;
    assert_eq!(d.error_code, REQUEST_NOT_ALLOWED);
    // The broker keeps serving the connection.
    let m: MetadataResponse = plain.send(&MetadataRequest::default(), 12).await;
    assert_eq!(m.brokers.len(), 1);
}

#[tokio::test]
async fn a_token_logs_in_as_its_owner_and_is_renewed_expired_and_described_as_kafka_does() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_with(BrokerConfig {
        delegation_token_expiry_time_ms: 60_000,
        delegation_token_max_lifetime_ms: 600_000,
        ..config(dir.path(), Some(SECRET))
    })
    .await;
    let mut alice = user(&broker, "alice").await;
    let before = klamm::clock::now_ms();
    let c: CreateDelegationTokenResponse = alice.send(&create_req(&[("User", "bob")], -1), 3).await;
    let after = klamm::clock::now_ms();
    assert_eq!(c.error_code, 0);
    assert_eq!(
        (c.principal_type.as_str(), c.principal_name.as_str()),
        ("User", "alice")
    );
    assert_eq!(c.token_requester_principal_name.as_str(), "alice");
    assert!((before..=after).contains(&c.issue_timestamp_ms));
    assert_eq!(c.expiry_timestamp_ms - c.issue_timestamp_ms, 60_000);
    assert_eq!(c.max_timestamp_ms - c.issue_timestamp_ms, 600_000);
    assert_eq!(c.token_id.len(), 22);
    assert_eq!(
        c.hmac.to_vec(),
        hmac_of(&c.token_id),
        "HMAC-SHA512(secret, token id)"
    );
    let (id, hmac) = (c.token_id.to_string(), c.hmac.to_vec());

    // v1 has no requester; a shorter max lifetime is honoured.
    let c1: CreateDelegationTokenResponse = alice.send(&create_req(&[], 5_000), 1).await;
    assert_eq!(c1.error_code, 0);
    assert_eq!(c1.max_timestamp_ms - c1.issue_timestamp_ms, 5_000);
    assert_eq!(c1.expiry_timestamp_ms, c1.max_timestamp_ms);
    assert_eq!(c1.token_requester_principal_name.as_str(), "");
    // A renewer that is not a User.
    let bad: CreateDelegationTokenResponse =
        alice.send(&create_req(&[("Group", "g")], -1), 3).await;
    assert_eq!(bad.error_code, INVALID_PRINCIPAL_TYPE);

    // Both SCRAM mechanisms accept the token, as alice; a token session may not manage tokens.
    for m in ScramMechanism::ALL {
        let mut t = token_login(&broker, m, &id, &hmac)
            .await
            .expect("token login");
        let c: CreateDelegationTokenResponse = t.send(&create_req(&[], -1), 3).await;
        assert_eq!(c.error_code, REQUEST_NOT_ALLOWED, "{m:?}");
        assert_eq!(c.principal_name.as_str(), "alice", "the session is alice's");
        let d: DescribeDelegationTokenResponse = t.send(&owners(None), 3).await;
        assert_eq!(d.error_code, REQUEST_NOT_ALLOWED);
    }
    // A wrong HMAC, a token id without tokenauth, a user name with tokenauth: refused alike.
    let generic = "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256";
    for (user, password, token) in [
        (id.as_str(), B64.encode([7u8; 64]), true),
        (id.as_str(), B64.encode(&hmac), false),
        ("alice", "alice-pw".to_string(), true),
    ] {
        let e = scram(&broker, ScramMechanism::Sha256, user, &password, token)
            .await
            .err()
            .expect("refused");
        assert_eq!(
            e,
            (SASL_AUTHENTICATION_FAILED, generic.to_string()),
            "{user} token={token}"
        );
    }

    // Renewals: bob (a renewer) and alice may; carol may not; the period is capped.
    let mut bob = user(&broker, "bob").await;
    let r: RenewDelegationTokenResponse = bob.send(&renew(&hmac, 10_000), 2).await;
    assert_eq!(r.error_code, 0);
    let now = klamm::clock::now_ms();
    assert!((r.expiry_timestamp_ms - now - 10_000).abs() < 2_000);
    let r: RenewDelegationTokenResponse = alice.send(&renew(&hmac, 10_000_000), 2).await;
    assert!(
        r.expiry_timestamp_ms - klamm::clock::now_ms() <= 60_000,
        "capped at the default"
    );
    let mut carol = user(&broker, "carol").await;
    let r: RenewDelegationTokenResponse = carol.send(&renew(&hmac, -1), 2).await;
    assert_eq!(r.error_code, OWNER_MISMATCH);
    let r: RenewDelegationTokenResponse = alice.send(&renew(&[9; 64], -1), 2).await;
    assert_eq!(r.error_code, NOT_FOUND);
    let r: RenewDelegationTokenResponse = alice.send(&renew(&[9; 3], -1), 2).await;
    assert_eq!(
        r.error_code, NOT_FOUND,
        "an HMAC of the wrong length is just not found"
    );

    // Describe: null owners is every token; [] none; a filter by owner, renewer, requester.
    let d: DescribeDelegationTokenResponse = carol.send(&owners(None), 3).await;
    assert_eq!(
        d.tokens.len(),
        2,
        "no authorizer: everyone sees every token"
    );
    let mine = d.tokens.iter().find(|t| t.token_id.as_str() == id).unwrap();
    assert_eq!(mine.hmac.to_vec(), hmac);
    assert_eq!(mine.renewers.len(), 1);
    assert_eq!(mine.renewers[0].principal_name.as_str(), "bob");
    assert_eq!(mine.token_requester_principal_name.as_str(), "alice");
    let d: DescribeDelegationTokenResponse = carol.send(&owners(Some(&[])), 3).await;
    assert_eq!((d.error_code, d.tokens.len()), (0, 0));
    let d: DescribeDelegationTokenResponse = carol.send(&owners(Some(&["User:bob"])), 3).await;
    assert_eq!(d.tokens.len(), 1, "bob renews one token");
    let d: DescribeDelegationTokenResponse = carol.send(&owners(Some(&["User:carol"])), 1).await;
    assert_eq!(d.tokens.len(), 0);
    // v3 create for another owner: owner bob, requester alice (no authorizer: allowed).
    let for_bob = create_req(&[], -1)
        .with_owner_principal_type(Some(s("User")))
        .with_owner_principal_name(Some(s("bob")));
    let c: CreateDelegationTokenResponse = alice.send(&for_bob, 3).await;
    assert_eq!(c.error_code, 0);
    assert_eq!(
        (
            c.principal_name.as_str(),
            c.token_requester_principal_name.as_str()
        ),
        ("bob", "alice")
    );
    let bobs_token = (c.token_id.to_string(), c.hmac.to_vec());
    let mut as_bob = token_login(
        &broker,
        ScramMechanism::Sha512,
        &bobs_token.0,
        &bobs_token.1,
    )
    .await
    .expect("bob's token logs in");
    let d: DescribeDelegationTokenResponse = carol.send(&owners(Some(&["User:alice"])), 3).await;
    assert_eq!(d.tokens.len(), 3, "alice owns two and requested bob's");

    // Expire: a positive period moves the expiry; -1 removes the token, and a connection
    // that logged in with it is closed at its next request.
    let mut t = token_login(&broker, ScramMechanism::Sha256, &id, &hmac)
        .await
        .unwrap();
    let e: ExpireDelegationTokenResponse = carol.send(&expire(&hmac, -1), 2).await;
    assert_eq!(e.error_code, OWNER_MISMATCH);
    let e: ExpireDelegationTokenResponse = bob.send(&expire(&hmac, 30_000), 2).await;
    assert_eq!(e.error_code, 0);
    assert!((e.expiry_timestamp_ms - klamm::clock::now_ms() - 30_000).abs() < 2_000);
    let m: MetadataResponse = t.send(&MetadataRequest::default(), 12).await;
    assert_eq!(m.brokers.len(), 1, "still valid");
    let e: ExpireDelegationTokenResponse = alice.send(&expire(&hmac, -1), 2).await;
    assert_eq!(e.error_code, 0);
    assert!((e.expiry_timestamp_ms - klamm::clock::now_ms()).abs() < 2_000);
    t.send_only(&MetadataRequest::default(), 12).await;
    assert!(t.is_closed().await, "the expired token's session ends");
    assert!(token_login(&broker, ScramMechanism::Sha256, &id, &hmac)
        .await
        .is_err());
    let r: RenewDelegationTokenResponse = alice.send(&renew(&hmac, -1), 2).await;
    assert_eq!(r.error_code, NOT_FOUND);
    let m: MetadataResponse = as_bob.send(&MetadataRequest::default(), 12).await;
    assert_eq!(m.brokers.len(), 1, "another token's session goes on");

    // A restart keeps the tokens; another secret makes their HMACs unknown.
    drop((alice, bob, carol, as_bob));
    broker.shutdown().await;
    let broker = start_with(config(dir.path(), Some(SECRET))).await;
    assert!(token_login(
        &broker,
        ScramMechanism::Sha512,
        &bobs_token.0,
        &bobs_token.1
    )
    .await
    .is_ok());
    broker.shutdown().await;
    let broker = start_with(config(dir.path(), Some("another"))).await;
    assert!(token_login(
        &broker,
        ScramMechanism::Sha512,
        &bobs_token.0,
        &bobs_token.1
    )
    .await
    .is_err());
    let mut bob = user(&broker, "bob").await;
    let r: RenewDelegationTokenResponse = bob.send(&renew(&bobs_token.1, -1), 2).await;
    assert_eq!(r.error_code, NOT_FOUND);
}

#[tokio::test]
async fn expired_tokens_are_refused_then_swept() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_with(BrokerConfig {
        delegation_token_expiry_time_ms: 300,
        delegation_token_expiry_check_interval_ms: 100,
        ..config(dir.path(), Some(SECRET))
    })
    .await;
    let mut alice = user(&broker, "alice").await;
    let c: CreateDelegationTokenResponse = alice.send(&create_req(&[], -1), 3).await;
    assert_eq!(c.error_code, 0);
    // Renewing after the expiry but before a sweep: EXPIRED; then the sweep removes it.
    let mut saw_expired = false;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let r: RenewDelegationTokenResponse = alice.send(&renew(&c.hmac, 1), 2).await;
        match r.error_code {
            0 => {}
            EXPIRED => saw_expired = true,
            NOT_FOUND => break,
            other => panic!("renew answered {other}"),
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the token was never swept"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // A renewal of 1 ms keeps pushing the expiry just past now, so EXPIRED shows between
    // renewals; the sweep removes the token from describe too.
    assert!(saw_expired, "EXPIRED before the sweep");
    let d: DescribeDelegationTokenResponse = alice.send(&owners(None), 3).await;
    assert!(d.tokens.is_empty());
    assert!(
        token_login(&broker, ScramMechanism::Sha256, &c.token_id, &c.hmac)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn acls_decide_who_creates_for_others_and_who_sees_which_token() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_with(BrokerConfig {
        authorizer: true,
        super_users: Some("User:admin".into()),
        ..config(dir.path(), Some(SECRET))
    })
    .await;
    let mut alice = user(&broker, "alice").await;
    let mut carol = user(&broker, "carol").await;
    let for_bob = create_req(&[], -1)
        .with_owner_principal_type(Some(s("User")))
        .with_owner_principal_name(Some(s("bob")));
    let c: CreateDelegationTokenResponse = alice.send(&for_bob, 3).await;
    assert_eq!(c.error_code, AUTHORIZATION_FAILED);
    assert_eq!((c.issue_timestamp_ms, c.token_id.as_str()), (-1, ""));
    // Her own token needs no ACL.
    let own: CreateDelegationTokenResponse = alice.send(&create_req(&[], -1), 3).await;
    assert_eq!(own.error_code, 0);

    // CREATE_TOKENS on User:bob lets alice create bob's token; carol sees none of them.
    let mut admin = user(&broker, "admin").await;
    let acl = |rt: i8, name: &str, principal: &str, op: i8| {
        AclCreation::default()
            .with_resource_type(rt)
            .with_resource_name(s(name))
            .with_resource_pattern_type(3)
            .with_principal(s(principal))
            .with_host(s("*"))
            .with_operation(op)
            .with_permission_type(3)
    };
    // Kafka's codes: resource DELEGATION_TOKEN 6, USER 7; operation DESCRIBE 8,
    // CREATE_TOKENS 13, DESCRIBE_TOKENS 14.
    let r: CreateAclsResponse = admin
        .send(
            &CreateAclsRequest::default().with_creations(vec![acl(
                7,
                "User:bob",
                "User:alice",
                13,
            )]),
            3,
        )
        .await;
    assert_eq!(r.results[0].error_code, 0);
    let c: CreateDelegationTokenResponse = alice.send(&for_bob, 3).await;
    assert_eq!(c.error_code, 0);
    let d: DescribeDelegationTokenResponse = carol.send(&owners(None), 3).await;
    assert!(d.tokens.is_empty(), "carol has no ACL and no token");
    let d: DescribeDelegationTokenResponse = alice.send(&owners(None), 3).await;
    assert_eq!(d.tokens.len(), 2, "alice owns one and requested the other");
    let d: DescribeDelegationTokenResponse = admin.send(&owners(None), 3).await;
    assert_eq!(d.tokens.len(), 2, "a super user sees all");

    // DESCRIBE on one token, DESCRIBE_TOKENS on a user: carol sees exactly those.
    let r: CreateAclsResponse = admin
        .send(
            &CreateAclsRequest::default().with_creations(vec![acl(
                6,
                own.token_id.as_str(),
                "User:carol",
                8,
            )]),
            3,
        )
        .await;
    assert_eq!(r.results[0].error_code, 0);
    let d: DescribeDelegationTokenResponse = carol.send(&owners(None), 3).await;
    let seen: Vec<&str> = d.tokens.iter().map(|t| t.token_id.as_str()).collect();
    assert_eq!(seen, [own.token_id.as_str()]);
    let r: CreateAclsResponse = admin
        .send(
            &CreateAclsRequest::default().with_creations(vec![acl(
                7,
                "User:bob",
                "User:carol",
                14,
            )]),
            3,
        )
        .await;
    assert_eq!(r.results[0].error_code, 0);
    let d: DescribeDelegationTokenResponse = carol.send(&owners(None), 3).await;
    assert_eq!(d.tokens.len(), 2);
}
