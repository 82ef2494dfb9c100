//! Delegation tokens in a cluster, on a real ZooKeeper: a token made through one broker
//! logs in on every broker, renewals and expiries made through any broker bind them all,
//! the token sits in ZooKeeper in ZooKeeper-mode Kafka's format (a token written there by
//! other tooling is followed too), and expired tokens are swept away.

use crate::cluster::{
    addr, converge, free_port, start_broker_with, start_zookeeper, test_dir, Proc,
};
use crate::common::*;
use crate::delegation_tokens::{create_req, expire, hmac_of, owners, renew, scram_at, SECRET};

use std::path::Path;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use kafka_protocol::messages::*;
use klamm::security::scram::ScramMechanism;

fn start(id: i32, plain: u16, sasl: u16, zk: u16, dir: &Path) -> Proc {
    let listeners = format!("PLAINTEXT://127.0.0.1:{plain},SASL_PLAINTEXT://127.0.0.1:{sasl}");
    start_broker_with(
        id,
        plain,
        zk,
        &dir.join(format!("broker-{id}")),
        &[
            "--listeners",
            &listeners,
            "--bootstrap-users",
            "alice:alice-pw,bob:bob-pw",
            "--connection-failed-authentication-delay-ms",
            "10",
            "--delegation-token-secret-key",
            SECRET,
            "--delegation-token-expiry-check-interval-ms",
            "200",
        ],
    )
    .unwrap_or_else(|log| panic!("broker {id} exited:\n{log}"))
}

async fn user(port: u16, name: &str) -> Client {
    scram_at(
        addr(port),
        ScramMechanism::Sha512,
        name,
        &format!("{name}-pw"),
        false,
    )
    .await
    .unwrap_or_else(|e| panic!("{name} logs in on :{port}: {e:?}"))
}

/// Waits (bounded) until the token logs in on `port` (`want`), or is refused.
async fn wait_token_login(port: u16, id: &str, hmac: &[u8], want: bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = scram_at(
            addr(port),
            ScramMechanism::Sha256,
            id,
            &B64.encode(hmac),
            true,
        )
        .await;
        if got.is_ok() == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "token {id} on :{port}: login still {} after 15 s",
            if want { "refused" } else { "accepted" }
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The expiry time of a token as `port` describes it (None: not listed).
async fn described_expiry(port: u16, id: &str) -> Option<i64> {
    let mut c = user(port, "bob").await;
    let d: DescribeDelegationTokenResponse = c.send(&owners(None), 3).await;
    assert_eq!(d.error_code, 0);
    d.tokens
        .iter()
        .find(|t| t.token_id.as_str() == id)
        .map(|t| t.expiry_timestamp)
}

#[tokio::test]
async fn tokens_live_in_zookeeper_and_bind_every_broker() {
    let dir = test_dir();
    let (_zk, zk_port) = start_zookeeper(dir.path());
    let plain: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let sasl: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let _brokers: Vec<Proc> = (0..3)
        .map(|i| start(i as i32 + 1, plain[i], sasl[i], zk_port, dir.path()))
        .collect();
    converge(&plain, &[1, 2, 3], Duration::from_secs(10)).await;

    // Made through broker 1 (alice, renewer bob), it logs in on brokers 2 and 3.
    let mut alice = user(sasl[0], "alice").await;
    let c: CreateDelegationTokenResponse = alice.send(&create_req(&[("User", "bob")], -1), 3).await;
    assert_eq!(c.error_code, 0);
    let (id, hmac) = (c.token_id.to_string(), c.hmac.to_vec());
    wait_token_login(sasl[1], &id, &hmac, true).await;
    wait_token_login(sasl[2], &id, &hmac, true).await;

    // Kafka's znode: its information, never the HMAC.
    let zk = zookeeper_client::Client::connect(&format!("127.0.0.1:{zk_port}/klamm-test"))
        .await
        .unwrap();
    let (data, _) = zk
        .get_data(&format!("/delegation_token/tokens/{id}"))
        .await
        .unwrap();
    let record: serde_json::Value = serde_json::from_slice(&data).unwrap();
    assert_eq!(
        record,
        serde_json::json!({"version": 3, "owner": "User%3Aalice",
            "tokenRequester": "User%3Aalice", "renewers": ["User%3Abob"],
            "issueTimestamp": c.issue_timestamp_ms, "maxTimestamp": c.max_timestamp_ms,
            "expiryTimestamp": c.expiry_timestamp_ms, "tokenId": id})
    );
    assert!(
        zk.get_children("/delegation_token/token_changes")
            .await
            .is_ok(),
        "Kafka's directories are made"
    );

    // Renewed through broker 2 (by bob): broker 3 describes the new expiry.
    let mut bob = user(sasl[1], "bob").await;
    let r: RenewDelegationTokenResponse = bob.send(&renew(&hmac, 30_000), 2).await;
    assert_eq!(r.error_code, 0);
    let deadline = Instant::now() + Duration::from_secs(15);
    while described_expiry(sasl[2], &id).await != Some(r.expiry_timestamp_ms) {
        assert!(Instant::now() < deadline, "broker 3 never saw the renewal");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Expired through broker 3: broker 1 refuses it and the znode is gone.
    let mut bob3 = user(sasl[2], "bob").await;
    let e: ExpireDelegationTokenResponse = bob3.send(&expire(&hmac, -1), 2).await;
    assert_eq!(e.error_code, 0);
    wait_token_login(sasl[0], &id, &hmac, false).await;
    assert!(matches!(
        zk.get_data(&format!("/delegation_token/tokens/{id}")).await,
        Err(zookeeper_client::Error::NoNode)
    ));

    // A token written into ZooKeeper by other tooling, in Kafka's format (version 2, with
    // no requester): every broker with the secret derives its HMAC and accepts it.
    let now = klamm::clock::now_ms();
    let foreign = "Zm9yZWlnbi10b2tlbi0x";
    zk.create(
        &format!("/delegation_token/tokens/{foreign}"),
        format!(
            r#"{{"version":2,"owner":"User%3Abob","renewers":[],"issueTimestamp":{now},"maxTimestamp":{},"expiryTimestamp":{},"tokenId":"{foreign}"}}"#,
            now + 600_000,
            now + 600_000
        )
        .as_bytes(),
        &zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all()),
    )
    .await
    .unwrap();
    for port in &sasl {
        wait_token_login(*port, foreign, &hmac_of(foreign), true).await;
    }

    // A token with a 1 s lifetime is swept (by the controller) once it expires: its znode
    // goes, and every broker forgets it.
    let short: CreateDelegationTokenResponse = alice.send(&create_req(&[], 1_000), 3).await;
    assert_eq!(short.error_code, 0);
    let path = format!("/delegation_token/tokens/{}", short.token_id.as_str());
    let deadline = Instant::now() + Duration::from_secs(15);
    while zk.get_data(&path).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "the expired token was never swept"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for port in &sasl {
        let deadline = Instant::now() + Duration::from_secs(15);
        while described_expiry(*port, short.token_id.as_str())
            .await
            .is_some()
        {
            assert!(
                Instant::now() < deadline,
                ":{port} still lists the swept token"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // The foreign token, still valid, was not swept.
    assert!(described_expiry(sasl[0], foreign).await.is_some());
}
