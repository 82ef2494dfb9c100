//! The admin HTTP port: `/health`, `/ready` and Prometheus `/metrics` reflecting what the
//! broker did (requests by API, bytes by topic, errors by code, offsets, group lag).

use crate::common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::wire::*;
use common::*;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;

/// GET `path`: (status, body).
fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
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

fn metric(body: &str, line_start: &str) -> Option<f64> {
    body.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_ready_and_metrics() {
    let mut config = klamm::BrokerConfig::ephemeral();
    config.http = Some("127.0.0.1:0".parse().unwrap());
    let broker = klamm::TestBroker::start_with(config).await.unwrap();
    let http = *broker.context().http_addr.get().expect("HTTP port bound");
    // /ready turns 200 once the Kafka listener serves (a health check polls it).
    let (h, r) = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut r = get(http, "/ready");
        while r.0 != 200 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            r = get(http, "/ready");
        }
        (get(http, "/health"), r)
    })
    .await
    .unwrap();
    assert_eq!(h, (200, "ok\n".to_string()));
    assert_eq!(r, (200, "ready\n".to_string()));

    let mut c = Client::connect(broker.bootstrap().parse().unwrap()).await;
    assert_eq!(create_topic(&mut c, "t", 1).await.topics[0].error_code, 0);
    let records: Vec<_> = (0..10).map(|i| record(i, 1000)).collect();
    let payload = batch(&records, Compression::None);
    let size = payload.len() as f64;
    assert_eq!(produce(&mut c, "t", 0, payload, 9).await.0, 0);
    assert_eq!(fetch(&mut c, "t", 0, 0, 12).await.error_code, 0);
    assert_ne!(
        fetch(&mut c, "t", 0, 99, 12).await.error_code,
        0,
        "out of range"
    );
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("g")))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(tn("t"))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(4)])]);
    assert_eq!(
        c.send(&commit, 8).await.topics[0].partitions[0].error_code,
        0
    );

    let (status, body) = tokio::task::spawn_blocking(move || get(http, "/metrics"))
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(body.ends_with("# EOF\n"), "OpenMetrics text");
    let want = [
        ("klamm_requests_total{api=\"Produce\",version=\"9\"}", 1.0),
        ("klamm_requests_total{api=\"Fetch\",version=\"12\"}", 2.0),
        ("klamm_bytes_in_total{topic=\"t\"}", size),
        ("klamm_bytes_out_total{topic=\"t\"}", size),
        (
            "klamm_partition_errors_total{api=\"Fetch\",error=\"OffsetOutOfRange\"}",
            1.0,
        ),
        ("klamm_topics ", 1.0),
        ("klamm_partitions ", 1.0),
        ("klamm_log_end_offset{topic=\"t\",partition=\"0\"}", 10.0),
        ("klamm_log_size_bytes{topic=\"t\",partition=\"0\"}", size),
        ("klamm_consumer_groups ", 1.0),
        (
            "klamm_consumer_group_lag{group=\"g\",topic=\"t\",partition=\"0\"}",
            6.0,
        ),
        ("klamm_connections ", 1.0),
    ];
    for (line, value) in want {
        assert_eq!(metric(&body, line), Some(value), "{line} in:\n{body}");
    }
    assert_eq!(
        metric(
            &body,
            "klamm_request_duration_seconds_count{api=\"Produce\"}"
        ),
        Some(1.0),
        "{body}"
    );

    // The log size, counted once by a scan, follows later appends.
    let more = batch(&records, Compression::None);
    assert_eq!(produce(&mut c, "t", 0, more, 9).await.0, 0);
    let (_, body) = tokio::task::spawn_blocking(move || get(http, "/metrics"))
        .await
        .unwrap();
    assert_eq!(
        metric(&body, "klamm_log_size_bytes{topic=\"t\",partition=\"0\"}"),
        Some(2.0 * size),
        "{body}"
    );

    // Shutting down: the HTTP port goes away with the broker.
    broker.shutdown().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(http).is_ok() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(std::net::TcpStream::connect(http).is_err());
}
