//! The embedding API exactly as README.md shows it: a broker inside the test process, a topic
//! created without a client, a real client producing and fetching, and the broker gone after
//! drop.

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use rskafka::client::partition::{Compression, UnknownTopicHandling};
use rskafka::client::ClientBuilder;
use rskafka::record::Record;

// --- README example, verbatim from here ---
#[tokio::test]
async fn orders_round_trip() {
    let broker = klamm::TestBroker::start().await.unwrap();
    broker.create_topic("orders", 3).unwrap();

    // Any Kafka client works; this one is rskafka.
    let client = ClientBuilder::new(vec![broker.bootstrap()])
        .build()
        .await
        .unwrap();
    let partition = client
        .partition_client("orders", 2, UnknownTopicHandling::Error)
        .await
        .unwrap();
    let record = Record {
        key: Some(b"order-1".to_vec()),
        value: Some(b"{\"qty\": 3}".to_vec()),
        headers: BTreeMap::new(),
        timestamp: Utc.timestamp_millis_opt(1_700_000_000_000).unwrap(),
    };
    partition
        .produce(vec![record.clone()], Compression::NoCompression)
        .await
        .unwrap();
    let (fetched, high_watermark) = partition
        .fetch_records(0, 1..1_000_000, 1_000)
        .await
        .unwrap();
    assert_eq!(high_watermark, 1);
    assert_eq!(fetched[0].record, record);
} // the broker stops here, and its temporary data dir is removed
  // --- end of README example ---

#[tokio::test]
async fn topics_with_configs_and_their_errors() {
    let broker = klamm::TestBroker::start().await.unwrap();
    broker
        .create_topic_with(
            "events",
            1,
            &[("cleanup.policy", "compact"), ("retention.ms", "60000")],
        )
        .unwrap();
    let topic = broker.context().metadata.topic("events").unwrap();
    assert_eq!(
        topic.configs.get("cleanup.policy").map(String::as_str),
        Some("compact")
    );
    let err = broker.create_topic("events", 1).unwrap_err().to_string();
    assert!(err.contains("TopicAlreadyExists"), "{err}");
    let err = broker
        .create_topic_with("bad", 1, &[("retention.ms", "soon")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("retention.ms"), "{err}");
    assert!(broker.context().metadata.topic("bad").is_none());
}

#[test]
fn blocking_start_for_synchronous_tests_stops_on_drop() {
    let broker = klamm::TestBroker::start_blocking(klamm::BrokerConfig::ephemeral()).unwrap();
    let addr = broker.bootstrap();
    broker.create_topic("sync", 2).unwrap();
    // A plain blocking socket: ApiVersions v0 by hand.
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    let body = [0u8, 18, 0, 0, 0, 0, 0, 7, 0, 0]; // key 18, v0, correlation 7, no client id
    s.write_all(&(body.len() as i32).to_be_bytes()).unwrap();
    s.write_all(&body).unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut resp = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut resp).unwrap();
    assert_eq!(&resp[..4], &7i32.to_be_bytes(), "correlation id");
    assert_eq!(&resp[4..6], &[0, 0], "no error");
    let dir = broker.context().config.data_dir.clone();
    drop(s);
    drop(broker);
    assert!(
        std::net::TcpStream::connect(&addr).is_err(),
        "stopped on drop"
    );
    assert!(!dir.exists(), "temporary data dir removed");
}
