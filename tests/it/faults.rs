//! Fault injection over the admin HTTP port, as a user would drive it from a test suite:
//! add a rule with `POST /faults`, watch a client meet it, list and clear the rules.

use crate::common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::wire::*;
use common::*;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions};
use kafka_protocol::ResponseError;

/// One HTTP/1.1 request; returns (status, body).
fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let status = raw[9..12].parse().unwrap();
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

async fn call(
    addr: SocketAddr,
    method: &'static str,
    path: &'static str,
    body: &'static str,
) -> (u16, serde_json::Value) {
    let (status, text) = tokio::task::spawn_blocking(move || http(addr, method, path, body))
        .await
        .unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

async fn broker_with_http() -> (klamm::TestBroker, SocketAddr) {
    let mut config = klamm::BrokerConfig::ephemeral();
    config.http = Some("127.0.0.1:0".parse().unwrap());
    let broker = klamm::TestBroker::start_with(config).await.unwrap();
    let http = *broker.context().http_addr.get().unwrap();
    (broker, http)
}

fn idempotent_batch(pid: i64, n: i32) -> Bytes {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            producer_id: pid,
            producer_epoch: 0,
            offset: i64::from(i),
            sequence: i,
            ..record(i64::from(i), 1)
        })
        .collect();
    let mut buf = bytes::BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.freeze()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_errors_and_lost_responses_reach_the_client() {
    let (broker, http) = broker_with_http().await;
    let addr: SocketAddr = broker.bootstrap().parse().unwrap();
    let mut c = Client::connect(addr).await;
    create_topic(&mut c, "t", 1).await;
    create_topic(&mut c, "other", 1).await;

    // "The next 2 Produce requests for topic t answer NOT_LEADER_OR_FOLLOWER".
    let (status, rule) = call(
        http,
        "POST",
        "/faults",
        r#"{"api":"Produce","topic":"t","action":"error","error":"NOT_LEADER_OR_FOLLOWER","count":2}"#,
    )
    .await;
    assert_eq!(status, 201, "{rule}");
    assert_eq!(rule["remaining"], 2);
    let one = || batch(&[record(0, 1)], Compression::None);
    let not_leader = ResponseError::NotLeaderOrFollower.code();
    assert_eq!(
        produce(&mut c, "other", 0, one(), 9).await,
        (0, 0),
        "other topics pass"
    );
    assert_eq!(produce(&mut c, "t", 0, one(), 9).await, (not_leader, -1));
    let (_, listed) = call(http, "GET", "/faults", "").await;
    assert_eq!(
        (listed[0]["matched"].clone(), listed[0]["remaining"].clone()),
        (1.into(), 1.into())
    );
    assert_eq!(produce(&mut c, "t", 0, one(), 9).await, (not_leader, -1));
    // Used up: the retry succeeds, and nothing was stored by the refused requests.
    assert_eq!(produce(&mut c, "t", 0, one(), 9).await, (0, 0));
    assert_eq!(
        call(http, "GET", "/faults", "").await.1,
        serde_json::json!([])
    );

    // A lost acknowledgement: the batch is appended but the connection closes instead of
    // answering. The idempotent producer's retry is recognised, not appended again.
    let pid = c
        .send(
            &InitProducerIdRequest::default().with_transactional_id(None),
            4,
        )
        .await
        .producer_id
        .0;
    call(
        http,
        "POST",
        "/faults",
        r#"{"api":"Produce","action":"drop_response","count":1}"#,
    )
    .await;
    c.send_only(
        &produce_req("t", uuid::Uuid::nil(), 0, idempotent_batch(pid, 5), -1),
        9,
    )
    .await;
    assert!(
        c.recv_frame().await.is_none(),
        "connection closed without a response"
    );
    let mut c = Client::connect(addr).await;
    assert_eq!(
        produce(&mut c, "t", 0, idempotent_batch(pid, 5), 9).await,
        (0, 1)
    );
    assert_eq!(
        fetch(&mut c, "t", 0, 0, 12).await.high_watermark,
        6,
        "stored once"
    );

    // "Close the connection on the next JoinGroup".
    call(
        http,
        "POST",
        "/faults",
        r#"{"api":"JoinGroup","action":"close","count":1}"#,
    )
    .await;
    let join = JoinGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("g")))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(StrBytes::from_static_str("consumer"));
    c.send_only(&join, 5).await;
    assert!(c.recv_frame().await.is_none());

    // "Delay Fetch by 300 ms".
    let mut c = Client::connect(addr).await;
    call(
        http,
        "POST",
        "/faults",
        r#"{"api":"Fetch","action":"delay","delay_ms":300,"count":1}"#,
    )
    .await;
    let started = Instant::now();
    assert_eq!(fetch(&mut c, "t", 0, 0, 12).await.error_code, 0);
    assert!(started.elapsed() >= Duration::from_millis(300));

    // Fetch v13+ names topics by id only: a topic rule still matches it.
    let id = broker.context().metadata.topic("t").unwrap().id;
    call(
        http,
        "POST",
        "/faults",
        r#"{"api":"Fetch","topic":"t","action":"error","error":"NOT_LEADER_OR_FOLLOWER","count":1}"#,
    )
    .await;
    let by_id = fetch_req("", id, 0, 0);
    let r = c.send(&by_id, 16).await;
    assert_eq!(r.responses[0].partitions[0].error_code, not_leader);
    assert_eq!(r.responses[0].topic_id, id);
    let r = c.send(&by_id, 16).await;
    assert_eq!(r.responses[0].partitions[0].error_code, 0, "used up");

    // "Answer COORDINATOR_LOAD_IN_PROGRESS for 300 ms" (here: until cleared by time).
    call(
        http,
        "POST",
        "/faults",
        r#"{"api":"FindCoordinator","action":"error","error":"COORDINATOR_LOAD_IN_PROGRESS","duration_ms":300}"#,
    )
    .await;
    let find_v4 = FindCoordinatorRequest::default()
        .with_coordinator_keys(vec![StrBytes::from_static_str("g")]);
    let find = FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("g"));
    let r = c.send(&find_v4, 4).await;
    assert_eq!(
        r.coordinators[0].error_code,
        ResponseError::CoordinatorLoadInProgress.code()
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut r = c.send(&find, 2).await;
    while r.error_code != 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        r = c.send(&find, 2).await;
    }
    assert_eq!(r.error_code, 0, "the rule expires");
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_are_validated_listed_and_cleared() {
    let (broker, http) = broker_with_http().await;
    for bad in [
        "not json",
        r#"{"api":"Produce","action":"error","error":"NO_SUCH_ERROR"}"#,
        r#"{"api":"Bogus","action":"close"}"#,
        r#"{"api":"Produce","action":"explode"}"#,
        r#"{"api":"Metadata","action":"error","error":"UNKNOWN_SERVER_ERROR"}"#,
        r#"{"api":"Produce","action":"close","colour":"red"}"#,
    ] {
        let bad: &'static str = Box::leak(bad.to_string().into_boxed_str());
        let (status, body) = call(http, "POST", "/faults", bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["error"].is_string());
    }
    let (_, a) = call(
        http,
        "POST",
        "/faults",
        r#"{"api":"Fetch","action":"delay","delay_ms":1}"#,
    )
    .await;
    call(
        http,
        "POST",
        "/faults",
        r#"{"api":"Heartbeat","action":"error","error":27}"#,
    )
    .await;
    let (_, listed) = call(http, "GET", "/faults", "").await;
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert_eq!(listed[1]["error"], 27);
    let path: &'static str = Box::leak(format!("/faults/{}", a["id"]).into_boxed_str());
    assert_eq!(call(http, "DELETE", path, "").await.0, 200);
    assert_eq!(call(http, "DELETE", path, "").await.0, 404);
    assert_eq!(call(http, "DELETE", "/faults", "").await.1["removed"], 1);
    assert!(!broker.context().faults.armed(), "no rules, no cost");
    broker.shutdown().await;
}
