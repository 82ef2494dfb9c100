//! ACLs and SASL users in a cluster, on a real ZooKeeper: they live there in ZooKeeper-mode
//! Kafka's layout, so an ACL or a user created through one broker is enforced by every
//! broker, a broker that restarts has them before its first client, and a record written
//! into ZooKeeper by other tooling in Kafka's format is followed too.

use crate::cluster::{
    addr, converge, free_port, run_kcat, start_broker_with, start_zookeeper, test_dir, Proc,
};
use crate::common::*;

use std::path::Path;
use std::time::{Duration, Instant};

use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

const TOPIC: i8 = 2;
const GROUP: i8 = 3;
const LITERAL: i8 = 3;
const PREFIXED: i8 = 4;
const READ: i8 = 3;
const WRITE: i8 = 4;
const DELETE: i8 = 6;
const DESCRIBE: i8 = 8;
const DENY: i8 = 2;
const ALLOW: i8 = 3;
const TOPIC_DENIED: i16 = 29;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.into())
}

/// One broker of the secured cluster: PLAINTEXT for brokers (and, as User:ANONYMOUS, a
/// super user, for the test's admin requests) and SASL_PLAINTEXT for the users.
fn start_secured(id: i32, plain: u16, sasl: u16, zk: u16, dir: &Path) -> Proc {
    let listeners = format!("PLAINTEXT://127.0.0.1:{plain},SASL_PLAINTEXT://127.0.0.1:{sasl}");
    start_broker_with(
        id,
        plain,
        zk,
        &dir.join(format!("broker-{id}")),
        &[
            "--listeners",
            &listeners,
            "--authorizer",
            "--super-users",
            "User:ANONYMOUS;User:admin",
            "--connection-failed-authentication-delay-ms",
            "10",
            "--bootstrap-users",
            "admin:admin-pw",
        ],
    )
    .unwrap_or_else(|log| panic!("broker {id} exited:\n{log}"))
}

/// Logs in with SASL/PLAIN; the error code if the broker refuses.
async fn plain_login(port: u16, user: &str, password: &str) -> Result<Client, i16> {
    let mut c = Client::connect(addr(port)).await;
    let hs: SaslHandshakeResponse = c
        .send(
            &SaslHandshakeRequest::default().with_mechanism(s("PLAIN")),
            1,
        )
        .await;
    assert_eq!(hs.error_code, 0);
    let a: SaslAuthenticateResponse = c
        .send(
            &SaslAuthenticateRequest::default()
                .with_auth_bytes(format!("\0{user}\0{password}").into_bytes().into()),
            2,
        )
        .await;
    if a.error_code == 0 {
        Ok(c)
    } else {
        Err(a.error_code)
    }
}

/// Waits (bounded) until `user` can log in on `port`, or (`want` false) is refused.
async fn wait_login(port: u16, user: &str, password: &str, want: bool) -> Option<Client> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = plain_login(port, user, password).await;
        if got.is_ok() == want {
            return got.ok();
        }
        assert!(
            Instant::now() < deadline,
            "{user} on :{port}: login still {} after 15 s",
            if want { "refused" } else { "accepted" }
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The error code of a Metadata request for one topic.
async fn metadata_error(c: &mut Client, topic: &str) -> i16 {
    let resp = c
        .send(
            &MetadataRequest::default()
                .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
                )
                .with_name(Some(TopicName(s(topic))))])),
            12,
        )
        .await;
    resp.topics[0].error_code
}

/// Waits (bounded) until the user's Metadata for `topic` answers `code`.
async fn wait_metadata(c: &mut Client, topic: &str, code: i16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = metadata_error(c, topic).await;
        if got == code {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: Metadata still answers {got}, not {code}, after 15 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn acl(rt: i8, name: &str, pattern: i8, op: i8, perm: i8) -> AclCreation {
    AclCreation::default()
        .with_resource_type(rt)
        .with_resource_name(s(name))
        .with_resource_pattern_type(pattern)
        .with_principal(s("User:alice"))
        .with_host(s("*"))
        .with_operation(op)
        .with_permission_type(perm)
}

async fn create_acl(port: u16, a: AclCreation) {
    let mut c = Client::connect(addr(port)).await;
    let resp = c
        .send(&CreateAclsRequest::default().with_creations(vec![a]), 3)
        .await;
    assert_eq!(resp.results[0].error_code, 0, "{resp:?}");
}

/// The ACLs of User:alice as one broker describes them: (type, name, pattern, op, perm).
async fn described(port: u16) -> Vec<(i8, String, i8, i8, i8)> {
    let mut c = Client::connect(addr(port)).await;
    let resp = c
        .send(
            &DescribeAclsRequest::default()
                .with_resource_name_filter(None)
                .with_host_filter(None)
                .with_resource_type_filter(1)
                .with_pattern_type_filter(1)
                .with_principal_filter(Some(s("User:alice")))
                .with_operation(1)
                .with_permission_type(1),
            3,
        )
        .await;
    assert_eq!(resp.error_code, 0, "{resp:?}");
    let mut out = Vec::new();
    for r in &resp.resources {
        for a in &r.acls {
            out.push((
                r.resource_type,
                r.resource_name.to_string(),
                r.pattern_type,
                a.operation,
                a.permission_type,
            ));
        }
    }
    out.sort();
    out
}

/// Waits (bounded) until one broker's description of alice's ACLs satisfies `ok`.
async fn wait_described(port: u16, what: &str, ok: impl Fn(&[(i8, String, i8, i8, i8)]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = described(port).await;
        if ok(&got) {
            return;
        }
        assert!(Instant::now() < deadline, ":{port} {what}: {got:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn alter_alice(port: u16, upsert: bool) {
    let mut c = Client::connect(addr(port)).await;
    let req = if upsert {
        let salt = b"alice-salt-0123456789".to_vec();
        let salted = pbkdf2::pbkdf2_hmac_array::<sha2::Sha256, 32>(b"alice-pw", &salt, 4096);
        AlterUserScramCredentialsRequest::default().with_upsertions(vec![
            ScramCredentialUpsertion::default()
                .with_name(s("alice"))
                .with_mechanism(1)
                .with_iterations(4096)
                .with_salt(salt.into())
                .with_salted_password(salted.to_vec().into()),
        ])
    } else {
        AlterUserScramCredentialsRequest::default().with_deletions(vec![
            ScramCredentialDeletion::default()
                .with_name(s("alice"))
                .with_mechanism(1),
        ])
    };
    let resp = c.send(&req, 0).await;
    assert_eq!(resp.results[0].error_code, 0, "{resp:?}");
}

#[tokio::test]
async fn acls_and_users_live_in_zookeeper_and_bind_every_broker() {
    let dir = test_dir();
    let (_zk, zk_port) = start_zookeeper(dir.path());

    // Brokers are User:ANONYMOUS to each other: ACLs without it as a super user would
    // refuse replication, so the start is refused, before the broker registers.
    let refused = start_broker_with(
        9,
        free_port(),
        zk_port,
        &dir.path().join("broker-9"),
        &["--authorizer", "--super-users", "User:admin"],
    )
    .err()
    .expect("--authorizer without User:ANONYMOUS is refused in a cluster");
    assert!(refused.contains("User:ANONYMOUS"), "{refused}");

    let plain: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let sasl: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut brokers: Vec<Option<Proc>> = (0..3)
        .map(|i| {
            Some(start_secured(
                i as i32 + 1,
                plain[i],
                sasl[i],
                zk_port,
                dir.path(),
            ))
        })
        .collect();
    converge(&plain, &[1, 2, 3], Duration::from_secs(10)).await;
    // Every broker bootstrapped the same user; it exists once and logs in everywhere.
    for port in &sasl {
        plain_login(*port, "admin", "admin-pw")
            .await
            .expect("the bootstrapped admin logs in on every broker");
    }
    let mut admin = Client::connect(addr(plain[0])).await;
    let created = crate::common::wire::create_topic(&mut admin, "orders", 1).await;
    assert_eq!(created.topics[0].error_code, 0, "{created:?}");

    // A user created through broker 2 logs in on broker 3.
    assert!(plain_login(sasl[2], "alice", "alice-pw").await.is_err());
    alter_alice(plain[1], true).await;
    let mut alice = wait_login(sasl[2], "alice", "alice-pw", true)
        .await
        .unwrap();
    assert_eq!(metadata_error(&mut alice, "orders").await, TOPIC_DENIED);

    // An ACL created through broker 1 lets her in on broker 3; a PREFIXED DENY created
    // through broker 2 shuts her out again; deleting it through broker 1 lets her back.
    create_acl(plain[0], acl(TOPIC, "orders", LITERAL, READ, ALLOW)).await;
    wait_metadata(&mut alice, "orders", 0, "the READ ACL from broker 1").await;
    create_acl(plain[1], acl(TOPIC, "ord", PREFIXED, DESCRIBE, DENY)).await;
    wait_metadata(&mut alice, "orders", TOPIC_DENIED, "the DENY from broker 2").await;
    wait_described(plain[2], "never described both ACLs", |d| d.len() == 2).await;
    assert_eq!(
        described(plain[2]).await,
        vec![
            (TOPIC, "ord".into(), PREFIXED, DESCRIBE, DENY),
            (TOPIC, "orders".into(), LITERAL, READ, ALLOW),
        ]
    );
    let mut c = Client::connect(addr(plain[0])).await;
    let deleted = c
        .send(
            &DeleteAclsRequest::default().with_filters(vec![DeleteAclsFilter::default()
                .with_resource_type_filter(TOPIC)
                .with_resource_name_filter(Some(s("ord")))
                .with_principal_filter(None)
                .with_host_filter(None)
                .with_pattern_type_filter(PREFIXED)
                .with_operation(1)
                .with_permission_type(1)]),
            3,
        )
        .await;
    assert_eq!(
        deleted.filter_results[0].matching_acls.len(),
        1,
        "{deleted:?}"
    );
    wait_metadata(&mut alice, "orders", 0, "the DENY deleted through broker 1").await;

    // Two brokers adding ACLs to the same resource at once: the conditional writes keep
    // both (a lost update would drop one).
    tokio::join!(
        create_acl(plain[0], acl(TOPIC, "orders", LITERAL, WRITE, ALLOW)),
        create_acl(plain[1], acl(TOPIC, "orders", LITERAL, DESCRIBE, ALLOW)),
        create_acl(plain[2], acl(TOPIC, "orders", LITERAL, DELETE, ALLOW)),
    );
    let mut want: Vec<(i8, String, i8, i8, i8)> = vec![
        (TOPIC, "orders".into(), LITERAL, READ, ALLOW),
        (TOPIC, "orders".into(), LITERAL, WRITE, ALLOW),
        (TOPIC, "orders".into(), LITERAL, DELETE, ALLOW),
        (TOPIC, "orders".into(), LITERAL, DESCRIBE, ALLOW),
    ];
    want.sort();
    for port in &plain {
        wait_described(*port, "lost a concurrent ACL", |d| d == want.as_slice()).await;
    }
    let mut c = Client::connect(addr(plain[2])).await;
    let deleted = c
        .send(
            &DeleteAclsRequest::default().with_filters(vec![DeleteAclsFilter::default()
                .with_resource_type_filter(TOPIC)
                .with_resource_name_filter(Some(s("orders")))
                .with_principal_filter(None)
                .with_host_filter(None)
                .with_pattern_type_filter(LITERAL)
                .with_operation(1)
                .with_permission_type(1)]),
            3,
        )
        .await;
    assert_eq!(
        deleted.filter_results[0].matching_acls.len(),
        4,
        "{deleted:?}"
    );
    create_acl(plain[2], acl(TOPIC, "orders", LITERAL, READ, ALLOW)).await;

    // Kafka's own layout, as ZooKeeper-mode Kafka and its tools wrote it.
    let zk = zookeeper_client::Client::connect(&format!("127.0.0.1:{zk_port}"))
        .await
        .unwrap();
    let (record, _) = zk
        .get_data("/klamm-test/kafka-acl/Topic/orders")
        .await
        .unwrap();
    let record: serde_json::Value = serde_json::from_slice(&record).unwrap();
    assert_eq!(
        record,
        serde_json::json!({"version": 1, "acls": [{"principal": "User:alice",
            "permissionType": "Allow", "operation": "Read", "host": "*"}]})
    );
    assert!(matches!(
        zk.get_data("/klamm-test/kafka-acl-extended/prefixed/Topic/ord")
            .await,
        Err(zookeeper_client::Error::NoNode)
    ));
    let (user, _) = zk.get_data("/klamm-test/config/users/alice").await.unwrap();
    let user = String::from_utf8(user).unwrap();
    assert!(
        user.contains("\"SCRAM-SHA-256\":\"salt=") && !user.contains("alice-pw"),
        "{user}"
    );
    // A record written there by other tooling is followed by every broker.
    zk.create(
        "/klamm-test/kafka-acl/Group/billing",
        br#"{"version":1,"acls":[{"principal":"User:alice","permissionType":"Allow","operation":"Read","host":"*"}]}"#,
        &zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all()),
    )
    .await
    .unwrap();
    wait_described(plain[1], "never saw the ACL written into ZooKeeper", |d| {
        d.contains(&(GROUP, "billing".into(), LITERAL, READ, ALLOW))
    })
    .await;

    // A real client as alice, with SCRAM-SHA-256, on a topic replicated over all three
    // brokers: acks=all needs the followers' fetches, which pass as User:ANONYMOUS (a super
    // user here) on the PLAINTEXT inter-broker listener; what kcat wrote through broker 2 it reads back through broker 3.
    let mut c = Client::connect(addr(plain[0])).await;
    let created = c
        .send(
            &CreateTopicsRequest::default()
                .with_topics(vec![create_topics_request::CreatableTopic::default()
                    .with_name(TopicName(s("payments")))
                    .with_num_partitions(3)
                    .with_replication_factor(3)])
                .with_timeout_ms(10_000),
            5,
        )
        .await;
    assert_eq!(created.topics[0].error_code, 0, "{created:?}");
    create_acl(plain[0], acl(TOPIC, "payments", LITERAL, WRITE, ALLOW)).await;
    create_acl(plain[0], acl(TOPIC, "payments", LITERAL, READ, ALLOW)).await;
    for port in &plain {
        wait_described(*port, "never saw the payments ACLs", |d| {
            d.iter().filter(|a| a.1 == "payments").count() == 2
        })
        .await;
    }
    let sasl_args = |port: u16| {
        vec![
            "-b".to_string(),
            format!("127.0.0.1:{port}"),
            "-X".into(),
            "security.protocol=SASL_PLAINTEXT".into(),
            "-X".into(),
            "sasl.mechanisms=SCRAM-SHA-256".into(),
            "-X".into(),
            "sasl.username=alice".into(),
            "-X".into(),
            "sasl.password=alice-pw".into(),
            "-t".into(),
            "payments".into(),
        ]
    };
    let lines: Vec<String> = (0..30).map(|i| format!("k{i}:paid {i} \u{e9}")).collect();
    let mut produce = sasl_args(sasl[1]);
    produce.extend(
        [
            "-P",
            "-K:",
            "-X",
            "acks=all",
            "-X",
            "message.timeout.ms=20000",
        ]
        .map(String::from),
    );
    let produce: Vec<&str> = produce.iter().map(String::as_str).collect();
    run_kcat(&produce, Some(&(lines.join("\n") + "\n")));
    let mut consume = sasl_args(sasl[2]);
    consume.extend(["-C", "-o", "beginning", "-e", "-q", "-f", "%k:%s\n"].map(String::from));
    let consume: Vec<&str> = consume.iter().map(String::as_str).collect();
    let mut got: Vec<String> = run_kcat(&consume, None)
        .lines()
        .map(str::to_string)
        .collect();
    got.sort();
    let mut want = lines.clone();
    want.sort();
    assert_eq!(got, want, "alice reads back what she wrote, byte-exact");

    // Client quotas set through broker 1 sit in ZooKeeper at Kafka's paths, in Kafka's
    // format (alice's beside her credentials), and every broker has them. Their values are
    // far above what this test does: they bind every later connection and request here (Kafka
    // applies an IP's connection rate on every listener, the inter-broker one too).
    use crate::quotas::{alter as alter_quotas, describe as describe_quotas, entry, key};
    let mut admin1 = Client::connect(addr(plain[0])).await;
    let quota_entities: Vec<crate::quotas::Entity> = vec![
        vec![("user", Some("alice"))],
        vec![("user", Some("alice")), ("client-id", Some("app"))],
        vec![("client-id", None)],
        vec![("ip", Some("127.0.0.1"))],
    ];
    let results = alter_quotas(
        &mut admin1,
        vec![
            entry(
                &quota_entities[0],
                &[("producer_byte_rate", Some(1048576.0))],
            ),
            entry(&quota_entities[1], &[("consumer_byte_rate", Some(2048.0))]),
            entry(&quota_entities[2], &[("request_percentage", Some(200.0))]),
            entry(
                &quota_entities[3],
                &[("connection_creation_rate", Some(10000.0))],
            ),
        ],
        false,
    )
    .await;
    assert!(results.iter().all(|(c, _)| *c == 0), "{results:?}");
    let (user, _) = zk.get_data("/klamm-test/config/users/alice").await.unwrap();
    let user: serde_json::Value = serde_json::from_slice(&user).unwrap();
    assert_eq!(user["config"]["producer_byte_rate"], "1048576", "{user}");
    assert!(user["config"]["SCRAM-SHA-256"].is_string(), "{user}");
    for (path, key_name, value) in [
        (
            "/klamm-test/config/users/alice/clients/app",
            "consumer_byte_rate",
            "2048",
        ),
        (
            "/klamm-test/config/clients/<default>",
            "request_percentage",
            "200",
        ),
        (
            "/klamm-test/config/ips/127.0.0.1",
            "connection_creation_rate",
            "10000",
        ),
    ] {
        let (data, _) = zk.get_data(path).await.unwrap();
        let data: serde_json::Value = serde_json::from_slice(&data).unwrap();
        assert_eq!(
            data,
            serde_json::json!({"version": 1, "config": {key_name: value}}),
            "{path}"
        );
    }
    // One written by other tooling is followed too.
    zk.create(
        "/klamm-test/config/clients/tool-client",
        br#"{"version":1,"config":{"producer_byte_rate":"777"}}"#,
        &zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all()),
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut admin3 = Client::connect(addr(plain[2])).await;
    loop {
        let all = describe_quotas(&mut admin3, &[], false).await.unwrap();
        if all.len() == 5 {
            assert_eq!(all[&key(&quota_entities[1])]["consumer_byte_rate"], 2048.0);
            assert_eq!(
                all[&key(&vec![("client-id", Some("tool-client"))])]["producer_byte_rate"],
                777.0
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "broker 3 never had the quotas: {all:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A group config set through broker 1 is at /config/groups/<group> in ZooKeeper and
    // every broker describes it.
    {
        use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
        use kafka_protocol::messages::incremental_alter_configs_request::{
            AlterConfigsResource, AlterableConfig,
        };
        let sb = |v: &str| StrBytes::from_string(v.to_string());
        let alter = IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(32)
                .with_resource_name(sb("share group"))
                .with_configs(vec![AlterableConfig::default()
                    .with_name(sb("share.auto.offset.reset"))
                    .with_value(Some(sb("earliest")))]),
        ]);
        let r = admin1.send(&alter, 1).await;
        assert_eq!(
            r.responses[0].error_code, 0,
            "{:?}",
            r.responses[0].error_message
        );
        let (data, _) = zk
            .get_data("/klamm-test/config/groups/share%20group")
            .await
            .unwrap();
        let data: serde_json::Value = serde_json::from_slice(&data).unwrap();
        assert_eq!(
            data,
            serde_json::json!({"version": 1, "config": {"share.auto.offset.reset": "earliest"}})
        );
        let describe = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(32)
                .with_resource_name(sb("share group"))
                .with_configuration_keys(Some(vec![sb("share.auto.offset.reset")])),
        ]);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = admin3.send(&describe, 4).await;
            let value = r.results[0].configs[0]
                .value
                .as_ref()
                .map(|v| v.to_string());
            if value.as_deref() == Some("earliest") {
                assert_eq!(
                    r.results[0].configs[0].config_source, 8,
                    "DYNAMIC_GROUP_CONFIG"
                );
                break;
            }
            assert!(
                Instant::now() < deadline,
                "broker 3 never had the group config: {value:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // Broker 3 killed and started again has users and ACLs before its first client.
    drop(brokers[2].take());
    // Its id is free once its session has expired, as in Kafka.
    converge(&plain[..2], &[1, 2], Duration::from_secs(10)).await;
    brokers[2] = Some(start_secured(3, plain[2], sasl[2], zk_port, dir.path()));
    let mut alice = plain_login(sasl[2], "alice", "alice-pw")
        .await
        .expect("alice logs in on the restarted broker at once");
    assert_eq!(metadata_error(&mut alice, "orders").await, 0);
    // ... and the quotas.
    let mut admin3 = Client::connect(addr(plain[2])).await;
    assert_eq!(
        describe_quotas(&mut admin3, &[], false)
            .await
            .unwrap()
            .len(),
        5
    );

    // The user deleted through broker 1 is refused by broker 3; her quotas stay.
    alter_alice(plain[0], false).await;
    wait_login(sasl[2], "alice", "alice-pw", false).await;
    let left = describe_quotas(&mut admin3, &[("user", 0, Some("alice"))], true)
        .await
        .unwrap();
    assert_eq!(
        left[&key(&quota_entities[0])]["producer_byte_rate"],
        1048576.0
    );
    drop(brokers);
}

/// Brokers dial each other on a SASL_SSL inter-broker listener: TLS verified against the
/// CA, then a SCRAM-SHA-512 login as `User:broker`, the only principal that may replicate
/// (User:ANONYMOUS, the plaintext clients here, is denied CLUSTER_ACTION). A topic
/// replicated over all three brokers takes acks=all writes and keeps every follower in sync.
#[tokio::test]
async fn brokers_log_in_to_each_other_over_sasl_ssl() {
    let pki = crate::security::Pki::new();
    let dir = test_dir();
    let (_zk, zk_port) = start_zookeeper(dir.path());
    let plain: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let internal: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let (cert, key, ca) = (
        pki.path("broker.pem"),
        pki.path("broker.key"),
        pki.path("ca.pem"),
    );
    let start = |i: usize| {
        let listeners = format!(
            "PLAINTEXT://127.0.0.1:{},INTERNAL://127.0.0.1:{}",
            plain[i], internal[i]
        );
        start_broker_with(
            i as i32 + 1,
            plain[i],
            zk_port,
            &dir.path().join(format!("broker-{}", i + 1)),
            &[
                "--listeners",
                &listeners,
                "--listener-security-protocol-map",
                "PLAINTEXT:PLAINTEXT,INTERNAL:SASL_SSL",
                "--inter-broker-listener-name",
                "INTERNAL",
                "--ssl-certificate",
                cert.to_str().unwrap(),
                "--ssl-key",
                key.to_str().unwrap(),
                "--ssl-ca",
                ca.to_str().unwrap(),
                "--bootstrap-users",
                "broker:broker-pw",
                "--inter-broker-sasl-mechanism",
                "SCRAM-SHA-512",
                "--inter-broker-sasl-user",
                "broker",
                "--inter-broker-sasl-password",
                "broker-pw",
                "--authorizer",
                "--super-users",
                "User:broker",
                "--allow-everyone-if-no-acl-found",
            ],
        )
        .unwrap_or_else(|log| panic!("broker {} exited:\n{log}", i + 1))
    };
    let _brokers: Vec<Proc> = (0..3).map(start).collect();
    converge(&plain, &[1, 2, 3], Duration::from_secs(10)).await;

    // Plaintext clients may do anything on the cluster but replicate.
    let mut c = Client::connect(addr(plain[0])).await;
    let cluster_acl = |op: i8, perm: i8| {
        AclCreation::default()
            .with_resource_type(4)
            .with_resource_name(s("kafka-cluster"))
            .with_resource_pattern_type(LITERAL)
            .with_principal(s("User:ANONYMOUS"))
            .with_host(s("*"))
            .with_operation(op)
            .with_permission_type(perm)
    };
    let created = c
        .send(
            &CreateAclsRequest::default()
                .with_creations(vec![cluster_acl(2, ALLOW), cluster_acl(9, DENY)]),
            3,
        )
        .await;
    assert!(
        created.results.iter().all(|r| r.error_code == 0),
        "{created:?}"
    );
    let created = c
        .send(
            &CreateTopicsRequest::default()
                .with_topics(vec![create_topics_request::CreatableTopic::default()
                    .with_name(TopicName(s("replicated")))
                    .with_num_partitions(3)
                    .with_replication_factor(3)])
                .with_timeout_ms(10_000),
            5,
        )
        .await;
    assert_eq!(created.topics[0].error_code, 0, "{created:?}");
    let topic_id = created.topics[0].topic_id;

    // The DENY is in force on every broker: a plaintext client posing as a follower is
    // refused, so the followers below can only be replicating as User:broker.
    for port in &plain {
        let mut c = Client::connect(addr(*port)).await;
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let mut req = crate::common::wire::fetch_req("replicated", topic_id, 0, 0);
            req.replica_id = BrokerId(2);
            let resp = c.send(&req, 12).await;
            if resp.error_code == 31 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                ":{port} lets User:ANONYMOUS fetch as a follower: {}",
                resp.error_code
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    let lines: Vec<String> = (0..30).map(|i| format!("k{i}:v{i}")).collect();
    let bootstrap = format!("127.0.0.1:{}", plain[1]);
    run_kcat(
        &[
            "-b",
            &bootstrap,
            "-t",
            "replicated",
            "-P",
            "-K:",
            "-X",
            "acks=all",
            "-X",
            "message.timeout.ms=20000",
        ],
        Some(&(lines.join("\n") + "\n")),
    );
    let bootstrap = format!("127.0.0.1:{}", plain[2]);
    let mut got: Vec<String> = run_kcat(
        &[
            "-b",
            &bootstrap,
            "-t",
            "replicated",
            "-C",
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            "%k:%s\n",
        ],
        None,
    )
    .lines()
    .map(str::to_string)
    .collect();
    got.sort();
    let mut want = lines;
    want.sort();
    assert_eq!(got, want);
    // Every follower keeps up over SASL_SSL: all three replicas stay in sync.
    let isr = crate::cluster::isr_of(plain[0], "replicated").await;
    assert_eq!(isr.len(), 3);
    for (p, in_sync) in isr {
        let mut in_sync = in_sync;
        in_sync.sort();
        assert_eq!(in_sync, vec![1, 2, 3], "partition {p}");
    }
}
