//! The admin CLI (`klamm topics|groups|produce|consume`) as a user runs it, against a broker
//! embedded in the test: output, exit codes and Kafka's error names.

use crate::common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::*;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

fn klamm(bootstrap: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_klamm"))
        .args(args)
        .args(["--bootstrap-server", bootstrap])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_produce_consume_and_groups_from_the_command_line() {
    let broker = klamm::TestBroker::start().await.unwrap();
    let bs = broker.bootstrap();
    let b = bs.clone();
    let run = move |args: Vec<&'static str>, stdin: Option<&'static str>| {
        let b = b.clone();
        tokio::task::spawn_blocking(move || klamm(&b, &args, stdin))
    };

    let out = run(
        vec![
            "topics",
            "create",
            "--topic",
            "orders",
            "--partitions",
            "3",
            "--config",
            "retention.ms=60000",
        ],
        None,
    )
    .await
    .unwrap();
    assert_eq!(ok(&out), "Created topic orders.\n");
    let dup = run(vec!["topics", "create", "--topic", "orders"], None)
        .await
        .unwrap();
    assert_eq!(dup.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&dup.stderr).contains("TopicAlreadyExists"));
    let bad = run(
        vec!["topics", "create", "--topic", "x", "--config", "no.such=1"],
        None,
    )
    .await
    .unwrap();
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("InvalidConfig"),
        "{bad:?}"
    );

    let lines = "k1:first\nk2:second\nno key here\n";
    ok(&run(
        vec![
            "produce",
            "--topic",
            "orders",
            "--partition",
            "2",
            "--key-separator",
            ":",
        ],
        Some(lines),
    )
    .await
    .unwrap());
    let got = ok(&run(
        vec![
            "consume",
            "--topic",
            "orders",
            "--partition",
            "2",
            "--from-beginning",
            "--max-messages",
            "3",
            "--print-key",
            "--key-separator",
            "=",
        ],
        None,
    )
    .await
    .unwrap());
    assert_eq!(got, "k1=first\nk2=second\nnull=no key here\n");

    assert_eq!(
        ok(&run(vec!["topics", "list"], None).await.unwrap()),
        "orders\n"
    );
    let described = ok(&run(vec!["topics", "describe", "--topic", "orders"], None)
        .await
        .unwrap());
    assert!(
        described.contains("PartitionCount: 3\tReplicationFactor: 1\tConfigs: retention.ms=60000"),
        "{described}"
    );
    assert_eq!(
        described.matches("Leader: 1\tReplicas: 1\tIsr: 1").count(),
        3
    );

    // A group with a committed offset (a simple, member-less commit).
    let mut c = Client::connect(bs.parse().unwrap()).await;
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("billing")))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("orders")))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(2)
                .with_committed_offset(1)])]);
    assert_eq!(
        c.send(&commit, 8).await.topics[0].partitions[0].error_code,
        0
    );
    assert_eq!(
        ok(&run(vec!["groups", "list"], None).await.unwrap()),
        "billing\n"
    );
    let g = ok(&run(vec!["groups", "describe", "--group", "billing"], None)
        .await
        .unwrap());
    assert!(g.contains("billing\torders\t2\t1\t3\t2\t-\t-\t-"), "{g}");

    assert_eq!(
        ok(&run(vec!["topics", "delete", "--topic", "orders"], None)
            .await
            .unwrap()),
        "Deleted topic orders.\n"
    );
    assert_eq!(ok(&run(vec!["topics", "list"], None).await.unwrap()), "");
    broker.shutdown().await;

    // Nothing listening: a clear error and exit code 1.
    let gone = klamm(
        &bs,
        &["topics", "list", "--request-timeout-ms", "2000"],
        None,
    );
    assert_eq!(gone.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&gone.stderr).contains("connecting to"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_created_listed_and_deleted_from_the_command_line() {
    let broker = common::start_with(klamm::BrokerConfig {
        listeners: Some("PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0".into()),
        ..klamm::BrokerConfig::ephemeral()
    })
    .await;
    let bs = broker.bootstrap();
    let run = |args: Vec<&'static str>| {
        let b = bs.clone();
        tokio::task::spawn_blocking(move || klamm(&b, &args, None))
    };
    let out = run(vec!["users", "create", "erin", "--password", "erin-pw"])
        .await
        .unwrap();
    assert_eq!(ok(&out), "created erin\n");
    let out = run(vec![
        "users",
        "create",
        "frank",
        "--password",
        "f",
        "--mechanism",
        "scram-sha-512",
        "--iterations",
        "8192",
    ])
    .await
    .unwrap();
    ok(&out);
    let out = run(vec!["users", "list"]).await.unwrap();
    assert_eq!(
        ok(&out),
        "erin\tSCRAM-SHA-256(iterations=4096),SCRAM-SHA-512(iterations=4096)\nfrank\tSCRAM-SHA-512(iterations=8192)\n"
    );
    // The password works for SASL/PLAIN on the SASL listener.
    let mut c = Client::connect(broker.listener_addr("SASL_PLAINTEXT").unwrap()).await;
    let hs = c
        .send(
            &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
            1,
        )
        .await;
    assert_eq!(hs.error_code, 0);
    let a = c
        .send(
            &SaslAuthenticateRequest::default().with_auth_bytes(b"\0erin\0erin-pw".to_vec().into()),
            2,
        )
        .await;
    assert_eq!(a.error_code, 0);
    // Errors carry Kafka's names and fail the command.
    let out = run(vec![
        "users",
        "create",
        "gina",
        "--password",
        "g",
        "--iterations",
        "10",
    ])
    .await
    .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("UnacceptableCredential: Too few iterations")
    );
    let out = run(vec!["users", "delete", "erin"]).await.unwrap();
    assert_eq!(ok(&out), "deleted erin\n");
    let out = run(vec!["users", "delete", "erin"]).await.unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ResourceNotFound"),
        "{out:?}"
    );
    let out = run(vec!["users", "list"]).await.unwrap();
    assert_eq!(ok(&out), "frank\tSCRAM-SHA-512(iterations=8192)\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acls_are_added_listed_and_removed_from_the_command_line() {
    let broker = common::start_with(klamm::BrokerConfig {
        listeners: Some("SASL_PLAINTEXT://127.0.0.1:0,PLAINTEXT://127.0.0.1:0".into()),
        bootstrap_users: Some("admin:admin-pw".into()),
        authorizer: true,
        super_users: Some("User:admin".into()),
        ..klamm::BrokerConfig::ephemeral()
    })
    .await;
    let bs = broker.listener_addr("SASL_PLAINTEXT").unwrap().to_string();
    let run = |args: Vec<&'static str>, login: bool| {
        let b = bs.clone();
        tokio::task::spawn_blocking(move || {
            let mut args = args;
            if login {
                args.extend(["--sasl-user", "admin", "--sasl-password", "admin-pw"]);
            }
            klamm(&b, &args, None)
        })
    };
    let add = |op: &'static str, pattern: &'static str, name: &'static str| {
        vec![
            "acls",
            "add",
            "--resource-type",
            "topic",
            "--resource-name",
            name,
            "--resource-pattern-type",
            pattern,
            "--principal",
            "User:alice",
            "--operation",
            op,
        ]
    };
    let out = run(add("read", "literal", "orders"), true).await.unwrap();
    assert_eq!(
        ok(&out),
        "added TOPIC:LITERAL:orders\tUser:alice\t*\tREAD\tALLOW\n"
    );
    ok(&run(add("write", "prefixed", "pay-"), true).await.unwrap());
    let out = run(vec!["acls", "list", "--principal", "User:alice"], true)
        .await
        .unwrap();
    assert_eq!(
        ok(&out),
        "TOPIC:LITERAL:orders\tUser:alice\t*\tREAD\tALLOW\nTOPIC:PREFIXED:pay-\tUser:alice\t*\tWRITE\tALLOW\n"
    );
    // Without logging in, the SASL listener serves nothing but the exchange.
    let out = run(vec!["acls", "list"], false).await.unwrap();
    assert!(!out.status.success());
    let out = run(
        vec!["acls", "remove", "--resource-pattern-type", "prefixed"],
        true,
    )
    .await
    .unwrap();
    assert_eq!(
        ok(&out),
        "removed TOPIC:PREFIXED:pay-\tUser:alice\t*\tWRITE\tALLOW\n"
    );
    let out = run(vec!["acls", "list"], true).await.unwrap();
    assert_eq!(
        ok(&out),
        "TOPIC:LITERAL:orders\tUser:alice\t*\tREAD\tALLOW\n"
    );
}
