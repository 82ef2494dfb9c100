//! ACLs over the wire: CreateAcls/DescribeAcls/DeleteAcls, and requests of SASL users
//! allowed and refused by them, with Kafka's error codes.

use crate::common;

use common::wire::{create_topic, fetch, produce, tn};
use common::*;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use klamm::BrokerConfig;

const TOPIC_DENIED: i16 = 29;
const GROUP_DENIED: i16 = 30;
const CLUSTER_DENIED: i16 = 31;
const TXN_DENIED: i16 = 53;
const SECURITY_DISABLED: i16 = 54;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.into())
}

fn secured(dir: &std::path::Path) -> BrokerConfig {
    BrokerConfig {
        listeners: Some("PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0".into()),
        bootstrap_users: Some("admin:admin-pw,alice:alice-pw,bob:bob-pw".into()),
        authorizer: true,
        super_users: Some("User:admin".into()),
        connection_failed_authentication_delay_ms: 10,
        ..config_in(dir)
    }
}

/// A connection authenticated with SASL/PLAIN.
async fn login(broker: &klamm::BrokerHandle, user: &str, password: &str) -> Client {
    let mut c = Client::connect(broker.listener_addr("SASL_PLAINTEXT").unwrap()).await;
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
    assert_eq!(a.error_code, 0, "{user} logs in");
    c
}

fn acl(rt: i8, name: &str, pattern: i8, principal: &str, op: i8, perm: i8) -> AclCreation {
    AclCreation::default()
        .with_resource_type(rt)
        .with_resource_name(s(name))
        .with_resource_pattern_type(pattern)
        .with_principal(s(principal))
        .with_host(s("*"))
        .with_operation(op)
        .with_permission_type(perm)
}

// Kafka's codes: resource TOPIC 2, GROUP 3, CLUSTER 4, TRANSACTIONAL_ID 5; pattern ANY 1,
// MATCH 2, LITERAL 3, PREFIXED 4; operation ANY 1, ALL 2, READ 3, WRITE 4, CREATE 5,
// DESCRIBE 8; permission ANY 1, DENY 2, ALLOW 3.
const TOPIC: i8 = 2;
const GROUP: i8 = 3;
const LITERAL: i8 = 3;
const PREFIXED: i8 = 4;
const READ: i8 = 3;
const WRITE: i8 = 4;
const ALLOW: i8 = 3;
const DENY: i8 = 2;

fn describe_all() -> DescribeAclsRequest {
    // Null filters, as clients send them (the codec's defaults are empty strings).
    DescribeAclsRequest::default()
        .with_resource_name_filter(None)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_resource_type_filter(1)
        .with_pattern_type_filter(1)
        .with_operation(1)
        .with_permission_type(1)
}

fn one_record(value: &[u8]) -> bytes::Bytes {
    let mut r = record(0, 1_700_000_000_000);
    r.value = Some(value.to_vec().into());
    batch(&[r], kafka_protocol::records::Compression::None)
}

#[tokio::test]
async fn without_the_authorizer_the_acl_apis_answer_security_disabled() {
    let broker = start().await;
    let mut c = Client::connect(broker.addr()).await;
    let created = c
        .send(
            &CreateAclsRequest::default()
                .with_creations(vec![acl(TOPIC, "t", LITERAL, "User:a", READ, ALLOW)]),
            3,
        )
        .await;
    assert_eq!(created.results[0].error_code, SECURITY_DISABLED);
    assert_eq!(
        c.send(&describe_all(), 3).await.error_code,
        SECURITY_DISABLED
    );
    // And everything is served as before.
    assert_eq!(
        create_topic(&mut c, "open", 1).await.topics[0].error_code,
        0
    );
}

#[tokio::test]
async fn acls_decide_who_reads_and_writes_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_with(secured(dir.path())).await;
    let mut admin = login(&broker, "admin", "admin-pw").await;
    for t in ["orders", "pay-in", "pay-secret", "hidden"] {
        assert_eq!(create_topic(&mut admin, t, 1).await.topics[0].error_code, 0);
    }
    let created = admin
        .send(
            &CreateAclsRequest::default().with_creations(vec![
                acl(TOPIC, "orders", LITERAL, "User:alice", READ, ALLOW),
                acl(TOPIC, "orders", LITERAL, "User:alice", WRITE, ALLOW),
                acl(TOPIC, "pay-", PREFIXED, "User:alice", WRITE, ALLOW),
                acl(TOPIC, "pay-secret", LITERAL, "User:alice", WRITE, DENY),
                acl(GROUP, "app", LITERAL, "User:alice", READ, ALLOW),
                // Refused: a CLUSTER resource must be named kafka-cluster.
                acl(4, "other", LITERAL, "User:alice", 8, ALLOW),
            ]),
            3,
        )
        .await;
    let codes: Vec<i16> = created.results.iter().map(|r| r.error_code).collect();
    assert_eq!(codes, [0, 0, 0, 0, 0, 42], "INVALID_REQUEST for the last");

    let mut alice = login(&broker, "alice", "alice-pw").await;
    let mut bob = login(&broker, "bob", "bob-pw").await;
    let (code, offset) = produce(&mut alice, "orders", 0, one_record(b"v1"), 9).await;
    assert_eq!((code, offset), (0, 0));
    assert_eq!(
        produce(&mut alice, "pay-in", 0, one_record(b"p"), 9)
            .await
            .0,
        0
    );
    assert_eq!(
        produce(&mut alice, "pay-secret", 0, one_record(b"x"), 9)
            .await
            .0,
        TOPIC_DENIED,
        "DENY wins over the prefixed ALLOW"
    );
    assert_eq!(
        produce(&mut bob, "orders", 0, one_record(b"x"), 9).await.0,
        TOPIC_DENIED
    );
    let read = fetch(&mut alice, "orders", 0, 0, 12).await;
    assert_eq!(read.error_code, 0);
    assert_eq!(
        decode_records(read.records.unwrap())[0].value.as_deref(),
        Some(&b"v1"[..])
    );
    assert_eq!(
        fetch(&mut bob, "orders", 0, 0, 12).await.error_code,
        TOPIC_DENIED
    );

    // Metadata: a listing leaves out what bob may not describe; a named topic is refused.
    let all = bob
        .send(&MetadataRequest::default().with_topics(None), 12)
        .await;
    assert!(all.topics.is_empty(), "{:?}", all.topics);
    let listed = alice
        .send(&MetadataRequest::default().with_topics(None), 12)
        .await;
    let mut names: Vec<String> = listed
        .topics
        .iter()
        .map(|t| t.name.as_ref().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["orders", "pay-in", "pay-secret"],
        "WRITE implies DESCRIBE"
    );
    let named = bob
        .send(
            &MetadataRequest::default()
                .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
                )
                .with_name(Some(tn("orders")))]))
                .with_include_topic_authorized_operations(true),
            12,
        )
        .await;
    assert_eq!(named.topics[0].error_code, TOPIC_DENIED);
    let ops = alice
        .send(
            &MetadataRequest::default()
                .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
                )
                .with_name(Some(tn("orders")))]))
                .with_include_topic_authorized_operations(true),
            12,
        )
        .await;
    // READ (3), WRITE (4) and the DESCRIBE (8) they imply.
    assert_eq!(
        ops.topics[0].topic_authorized_operations,
        (1 << 3) | (1 << 4) | (1 << 8)
    );
    // Asking by topic id reveals nothing either: refused, with no name.
    let orders_id = ops.topics[0].topic_id;
    assert!(!orders_id.is_nil());
    let by_id = |id| {
        MetadataRequest::default().with_topics(Some(vec![
            metadata_request::MetadataRequestTopic::default()
                .with_name(None)
                .with_topic_id(id),
        ]))
    };
    let hidden = bob.send(&by_id(orders_id), 12).await;
    assert_eq!(hidden.topics.len(), 1);
    assert_eq!(hidden.topics[0].error_code, TOPIC_DENIED);
    assert_eq!(hidden.topics[0].name, None);
    assert!(hidden.topics[0].partitions.is_empty());
    let shown = alice.send(&by_id(orders_id), 12).await;
    assert_eq!(shown.topics[0].error_code, 0);
    assert_eq!(shown.topics[0].name, Some(tn("orders")));

    // Groups: alice may use "app", bob may not; nobody but admin changes ACLs.
    let find = |g: &str| {
        FindCoordinatorRequest::default()
            .with_key_type(0)
            .with_coordinator_keys(vec![s(g)])
    };
    assert_eq!(
        alice.send(&find("app"), 4).await.coordinators[0].error_code,
        0
    );
    assert_eq!(
        bob.send(&find("app"), 4).await.coordinators[0].error_code,
        GROUP_DENIED
    );
    let join = JoinGroupRequest::default()
        .with_group_id(GroupId(s("app")))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(s("consumer"));
    assert_eq!(bob.send(&join, 9).await.error_code, GROUP_DENIED);
    let denied = bob
        .send(
            &CreateAclsRequest::default()
                .with_creations(vec![acl(TOPIC, "orders", LITERAL, "User:bob", READ, ALLOW)]),
            3,
        )
        .await;
    assert_eq!(denied.results[0].error_code, CLUSTER_DENIED);
    assert_eq!(
        bob.send(&describe_all(), 3).await.error_code,
        CLUSTER_DENIED
    );
    let txn = bob
        .send(
            &InitProducerIdRequest::default()
                .with_transactional_id(Some(TransactionalId(s("tx-1"))))
                .with_transaction_timeout_ms(10_000),
            4,
        )
        .await;
    assert_eq!(txn.error_code, TXN_DENIED);
    let idempotent_req = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(-1);
    let idempotent = bob.send(&idempotent_req, 4).await;
    assert_eq!(
        idempotent.error_code, CLUSTER_DENIED,
        "bob may write nowhere"
    );
    assert_eq!(alice.send(&idempotent_req, 4).await.error_code, 0);

    // DescribeAcls with a MATCH filter finds the literal and the prefixed ACL on pay-secret.
    let matched = admin
        .send(
            &describe_all()
                .with_resource_type_filter(TOPIC)
                .with_resource_name_filter(Some(s("pay-secret")))
                .with_pattern_type_filter(2)
                .with_operation(1)
                .with_permission_type(1),
            3,
        )
        .await;
    assert_eq!(matched.error_code, 0);
    let mut found: Vec<(String, i8, i8)> = matched
        .resources
        .iter()
        .flat_map(|r| {
            r.acls.iter().map(move |a| {
                (
                    r.resource_name.to_string(),
                    r.pattern_type,
                    a.permission_type,
                )
            })
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            ("pay-".into(), PREFIXED, ALLOW),
            ("pay-secret".into(), LITERAL, DENY)
        ]
    );
    drop((admin, alice, bob));
    broker.shutdown().await;

    // After a restart the ACLs are in force as before; deleting one takes effect at once.
    let broker = start_with(secured(dir.path())).await;
    let mut alice = login(&broker, "alice", "alice-pw").await;
    assert_eq!(
        produce(&mut alice, "orders", 0, one_record(b"v2"), 9).await,
        (0, 1)
    );
    assert_eq!(
        produce(&mut alice, "pay-secret", 0, one_record(b"x"), 9)
            .await
            .0,
        TOPIC_DENIED
    );
    let mut admin = login(&broker, "admin", "admin-pw").await;
    let deleted = admin
        .send(
            &DeleteAclsRequest::default().with_filters(vec![DeleteAclsFilter::default()
                .with_resource_type_filter(TOPIC)
                .with_resource_name_filter(Some(s("orders")))
                .with_pattern_type_filter(LITERAL)
                .with_principal_filter(Some(s("User:alice")))
                .with_host_filter(None)
                .with_operation(WRITE)
                .with_permission_type(1)]),
            3,
        )
        .await;
    assert_eq!(deleted.filter_results[0].error_code, 0);
    assert_eq!(deleted.filter_results[0].matching_acls.len(), 1);
    assert_eq!(
        produce(&mut alice, "orders", 0, one_record(b"v3"), 9)
            .await
            .0,
        TOPIC_DENIED
    );
    assert_eq!(
        fetch(&mut alice, "orders", 0, 0, 12).await.error_code,
        0,
        "READ stays"
    );
    // PLAINTEXT clients are User:ANONYMOUS, which no ACL names.
    let mut anon = Client::connect(broker.listener_addr("PLAINTEXT").unwrap()).await;
    assert_eq!(
        fetch(&mut anon, "orders", 0, 0, 12).await.error_code,
        TOPIC_DENIED
    );
}

#[tokio::test]
async fn allow_everyone_if_no_acl_found_opens_only_unprotected_resources() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_with(BrokerConfig {
        allow_everyone_if_no_acl_found: true,
        ..secured(dir.path())
    })
    .await;
    let mut admin = login(&broker, "admin", "admin-pw").await;
    for t in ["free", "guarded"] {
        assert_eq!(create_topic(&mut admin, t, 1).await.topics[0].error_code, 0);
    }
    let created = admin
        .send(
            &CreateAclsRequest::default().with_creations(vec![acl(
                TOPIC,
                "guarded",
                LITERAL,
                "User:alice",
                WRITE,
                ALLOW,
            )]),
            3,
        )
        .await;
    assert_eq!(created.results[0].error_code, 0);
    let mut bob = login(&broker, "bob", "bob-pw").await;
    assert_eq!(produce(&mut bob, "free", 0, one_record(b"x"), 9).await.0, 0);
    assert_eq!(
        produce(&mut bob, "guarded", 0, one_record(b"x"), 9).await.0,
        TOPIC_DENIED
    );
}

/// In a cluster, brokers reach each other as User:ANONYMOUS on the PLAINTEXT inter-broker
/// listener: ACLs are refused at start unless that principal is a super user (checked
/// before joining, so no ZooKeeper is needed to see it).
#[tokio::test]
async fn the_authorizer_in_a_cluster_needs_anonymous_as_a_super_user() {
    let start = |super_users: &str| {
        klamm::Broker::bind(BrokerConfig {
            authorizer: true,
            super_users: Some(super_users.into()),
            zookeeper_connect: Some("127.0.0.1:1".into()),
            zookeeper_session_timeout_ms: 1000,
            ..BrokerConfig::ephemeral()
        })
    };
    let err = match start("User:admin").await {
        Ok(_) => panic!("--authorizer started in cluster mode without User:ANONYMOUS"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        err.contains("needs User:ANONYMOUS in --super-users"),
        "{err}"
    );
    // With it, the start goes on to ZooKeeper (none listens here).
    let err = match start("User:admin;User:ANONYMOUS").await {
        Ok(_) => panic!("joined a ZooKeeper that does not exist"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("ZooKeeper"), "{err}");
    assert!(!err.contains("--super-users"), "{err}");
}

/// DescribeTransactions: a transactional id the principal may not describe is refused with
/// TRANSACTIONAL_ID_AUTHORIZATION_FAILED, and a described transaction lists only the
/// partitions of topics the principal may describe, as Kafka filters them.
#[tokio::test]
async fn described_transactions_show_only_describable_topics() {
    const TRANSACTIONAL_ID: i8 = 5;
    const DESCRIBE: i8 = 8;
    let dir = tempfile::tempdir().unwrap();
    let broker = start_with(secured(dir.path())).await;
    let mut admin = login(&broker, "admin", "admin-pw").await;
    for t in ["visible", "secret"] {
        assert_eq!(create_topic(&mut admin, t, 1).await.topics[0].error_code, 0);
    }
    let created = admin
        .send(
            &CreateAclsRequest::default().with_creations(vec![
                acl(
                    TRANSACTIONAL_ID,
                    "tx",
                    LITERAL,
                    "User:alice",
                    DESCRIBE,
                    ALLOW,
                ),
                acl(TOPIC, "visible", LITERAL, "User:alice", DESCRIBE, ALLOW),
            ]),
            3,
        )
        .await;
    assert!(created.results.iter().all(|r| r.error_code == 0));
    let init = admin
        .send(
            &InitProducerIdRequest::default()
                .with_transactional_id(Some(TransactionalId(s("tx"))))
                .with_transaction_timeout_ms(60_000),
            4,
        )
        .await;
    assert_eq!(init.error_code, 0);
    use add_partitions_to_txn_request::AddPartitionsToTxnTopic;
    let added = admin
        .send(
            &AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(TransactionalId(s("tx")))
                .with_v3_and_below_producer_id(init.producer_id)
                .with_v3_and_below_producer_epoch(init.producer_epoch)
                .with_v3_and_below_topics(
                    ["visible", "secret"]
                        .map(|t| {
                            AddPartitionsToTxnTopic::default()
                                .with_name(tn(t))
                                .with_partitions(vec![0])
                        })
                        .to_vec(),
                ),
            3,
        )
        .await;
    assert!(added.results_by_topic_v3_and_below.iter().all(|t| t
        .results_by_partition
        .iter()
        .all(|p| p.partition_error_code == 0)));
    let describe = DescribeTransactionsRequest::default()
        .with_transactional_ids(vec![TransactionalId(s("tx")), TransactionalId(s("other"))]);
    let as_admin = admin.send(&describe, 0).await;
    let topics_of = |r: &DescribeTransactionsResponse, id: &str| {
        let t = r
            .transaction_states
            .iter()
            .find(|t| t.transactional_id.as_str() == id)
            .unwrap();
        let mut names: Vec<String> = t.topics.iter().map(|x| x.topic.to_string()).collect();
        names.sort();
        (t.error_code, names)
    };
    assert_eq!(
        topics_of(&as_admin, "tx"),
        (0, vec!["secret".to_string(), "visible".to_string()])
    );
    let mut alice = login(&broker, "alice", "alice-pw").await;
    let as_alice = alice.send(&describe, 0).await;
    assert_eq!(topics_of(&as_alice, "tx"), (0, vec!["visible".to_string()]));
    assert_eq!(topics_of(&as_alice, "other").0, TXN_DENIED);
}
