//! Hostile and broken bytes over a raw socket: each gets Kafka's error or a closed
//! connection, and the broker keeps serving everyone else with nothing stored damaged.

use crate::common;

use bytes::{BufMut, BytesMut};
use common::*;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;

fn tn(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// Creates a topic with three stored records and returns their batch bytes as fetched.
async fn seed(c: &mut Client) -> bytes::Bytes {
    let req = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(tn("safe"))
        .with_num_partitions(1)
        .with_replication_factor(1)]);
    c.send(&req, 7).await;
    let recs = vec![record(1, 1), record(2, 2), record(3, 3)];
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(1000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(tn("safe"))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch(&recs, Compression::Lz4)))])]);
    let r = c.send(&req, 9).await;
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    stored(c).await
}

async fn stored(c: &mut Client) -> bytes::Bytes {
    let req = FetchRequest::default()
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(tn("safe"))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_partition_max_bytes(1 << 20)])]);
    let r = c.send(&req, 12).await;
    r.responses[0].partitions[0].records.clone().unwrap()
}

fn header(api_key: i16, version: i16, correlation_id: i32) -> BytesMut {
    let mut b = BytesMut::new();
    b.put_i16(api_key);
    b.put_i16(version);
    b.put_i32(correlation_id);
    b.put_i16(-1); // null client id
    b
}

#[tokio::test]
async fn broken_frames_close_only_their_connection() {
    let broker = start().await;
    let mut good = Client::connect(broker.addr()).await;
    let before = seed(&mut good).await;

    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    cases.push(("negative length", (-5i32).to_be_bytes().to_vec()));
    cases.push((
        "oversized length",
        (200 * 1024 * 1024i32).to_be_bytes().to_vec(),
    ));
    let mut unknown_key = BytesMut::new();
    unknown_key.put_i32(10);
    unknown_key.extend_from_slice(&header(999, 0, 1));
    cases.push(("unknown api key", unknown_key.to_vec()));
    let mut unsupported = BytesMut::new();
    unsupported.put_i32(10);
    unsupported.extend_from_slice(&header(0, 99, 1));
    cases.push(("unsupported produce version", unsupported.to_vec()));
    let mut unhandled = BytesMut::new();
    unhandled.put_i32(10);
    unhandled.extend_from_slice(&header(ApiKey::Vote as i16, 0, 1));
    cases.push(("api the broker does not serve", unhandled.to_vec()));
    let mut tiny = BytesMut::new();
    tiny.put_i32(3);
    tiny.extend_from_slice(&[0, 1, 2]);
    cases.push(("frame shorter than a header", tiny.to_vec()));
    let mut garbage = BytesMut::new();
    garbage.put_i32(64);
    garbage.extend_from_slice(&header(3, 12, 1)[..]);
    garbage.extend_from_slice(&[0xff; 54]);
    cases.push(("undecodable metadata body", garbage.to_vec()));
    // A 20-byte CreateTopics claiming 2^31-1 topics must not make the broker allocate them.
    let mut absurd = header(ApiKey::CreateTopics as i16, 4, 1);
    absurd.put_i32(i32::MAX);
    absurd.put_i32(0);
    let mut framed = BytesMut::new();
    framed.put_i32(absurd.len() as i32);
    framed.extend_from_slice(&absurd);
    cases.push(("absurd array count", framed.to_vec()));
    let mut absurd_flex = header(ApiKey::Metadata as i16, 12, 1);
    absurd_flex.put_u8(0); // header tagged fields
    absurd_flex.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x07]); // compact array ~2^31
    let mut framed = BytesMut::new();
    framed.put_i32(absurd_flex.len() as i32);
    framed.extend_from_slice(&absurd_flex);
    cases.push(("absurd compact array count", framed.to_vec()));
    let mut noise = BytesMut::new();
    noise.put_i32(93);
    noise.extend((0..93u32).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8 | 0x80));
    cases.push(("a frame of random bytes", noise.to_vec()));

    for (what, bytes) in cases {
        let mut c = Client::connect(broker.addr()).await;
        c.send_raw(&bytes).await;
        assert!(c.is_closed().await, "{what}: connection closed");
        // Everyone else is unaffected and nothing stored changed.
        assert_eq!(
            stored(&mut good).await,
            before,
            "{what}: stored data intact"
        );
    }

    // A truncated frame followed by the client hanging up.
    let mut c = Client::connect(broker.addr()).await;
    let mut partial = BytesMut::new();
    partial.put_i32(100);
    partial.extend_from_slice(&header(3, 1, 1));
    c.send_raw(&partial).await;
    drop(c);
    assert_eq!(stored(&mut good).await, before);

    // A new client still gets served.
    let mut fresh = Client::connect(broker.addr()).await;
    assert_eq!(stored(&mut fresh).await, before);
}

#[tokio::test]
async fn corrupt_batches_are_refused_with_error_codes_and_connection_stays_open() {
    let broker = start().await;
    let mut c = Client::connect(broker.addr()).await;
    let before = seed(&mut c).await;
    let good = batch(&[record(9, 9)], Compression::None);
    let mut cases: Vec<(&str, Vec<u8>, i16)> = Vec::new();
    let mut crc = good.to_vec();
    crc[30] ^= 1;
    cases.push(("bad crc", crc, 2));
    cases.push(("truncated batch", good[..good.len() - 5].to_vec(), 2));
    let mut long = good.to_vec();
    long[8..12].copy_from_slice(&(10_000i32).to_be_bytes());
    cases.push(("batch length past the end", long, 2));
    let mut neg = good.to_vec();
    neg[8..12].copy_from_slice(&(-1i32).to_be_bytes());
    cases.push(("negative batch length", neg, 2));
    cases.push(("too short for a header", good[..20].to_vec(), 2));
    cases.push(("empty record set", Vec::new(), 87));
    for (what, bytes, code) in cases {
        let req = ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(1000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(tn("safe"))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(bytes.into()))])]);
        let r = c.send(&req, 9).await;
        assert_eq!(
            r.responses[0].partition_responses[0].error_code, code,
            "{what}"
        );
        assert_eq!(stored(&mut c).await, before, "{what}");
    }
}

/// The coordinators' topics are Kafka's internal topics: a client's Produce to them is
/// refused with INVALID_TOPIC_EXCEPTION whether they exist or not (nothing is created),
/// and the connection keeps serving.
#[tokio::test]
async fn produce_to_internal_topics_is_refused() {
    let broker = start().await;
    let mut c = Client::connect(broker.addr()).await;
    for topic in ["__consumer_offsets", "__transaction_state"] {
        let (code, _) = common::wire::produce(
            &mut c,
            topic,
            0,
            batch(&[record(1, 1)], Compression::None),
            9,
        )
        .await;
        assert_eq!(code, 17, "{topic}: INVALID_TOPIC_EXCEPTION");
        let md = c
            .send(
                &MetadataRequest::default()
                    .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
                    )
                    .with_name(Some(tn(topic)))]))
                    .with_allow_auto_topic_creation(false),
                12,
            )
            .await;
        assert_eq!(md.topics[0].error_code, 3, "{topic} was not created");
    }
    let before = seed(&mut c).await;
    assert!(!before.is_empty(), "the connection still serves");
}
