//! Topic and broker configs over the wire: CreateTopics validation, DescribeConfigs,
//! AlterConfigs, IncrementalAlterConfigs, persistence across a restart, and per-topic
//! max.message.bytes acting on Produce.

use crate::common;

use common::*;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;
const SRC_TOPIC: i8 = 1;
const SRC_DYNAMIC_DEFAULT_BROKER: i8 = 3;
const SRC_DEFAULT: i8 = 5;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn create(name: &str, configs: &[(&str, &str)]) -> CreateTopicsRequest {
    common::wire::create_with_configs(name, configs)
}

async fn describe(c: &mut Client, kind: i8, name: &str, synonyms: bool) -> DescribeConfigsResult {
    let req = DescribeConfigsRequest::default()
        .with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(kind)
            .with_resource_name(s(name))
            .with_configuration_keys(None)])
        .with_include_synonyms(synonyms)
        .with_include_documentation(true);
    c.send(&req, 4).await.results.remove(0)
}

/// (value, source, read_only) of one config in a DescribeConfigs result.
fn get(r: &DescribeConfigsResult, name: &str) -> (String, i8, bool) {
    let c = r
        .configs
        .iter()
        .find(|c| c.name.as_str() == name)
        .unwrap_or_else(|| panic!("{name} not described"));
    (
        c.value.as_ref().map(|v| v.to_string()).unwrap_or_default(),
        c.config_source,
        c.read_only,
    )
}

fn incremental(
    kind: i8,
    name: &str,
    ops: &[(&str, i8, Option<&str>)],
) -> IncrementalAlterConfigsRequest {
    use incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
    IncrementalAlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
        .with_resource_type(kind)
        .with_resource_name(s(name))
        .with_configs(
            ops.iter()
                .map(|(k, op, v)| {
                    AlterableConfig::default()
                        .with_name(s(k))
                        .with_config_operation(*op)
                        .with_value(v.map(s))
                })
                .collect(),
        )])
}

fn legacy_alter(kind: i8, name: &str, configs: &[(&str, &str)]) -> AlterConfigsRequest {
    use alter_configs_request::{AlterConfigsResource, AlterableConfig};
    AlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
        .with_resource_type(kind)
        .with_resource_name(s(name))
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    AlterableConfig::default()
                        .with_name(s(k))
                        .with_value(Some(s(v)))
                })
                .collect(),
        )])
}

#[tokio::test]
async fn create_topics_validates_configs_and_reports_them() {
    let broker = start().await;
    let mut c = Client::connect(broker.addr()).await;
    for (configs, needle) in [
        (
            vec![("dummy.doesntexist", "1")],
            "Unknown topic config name",
        ),
        (vec![("retention.ms", "abc")], "LONG"),
        (vec![("retention.ms", "-2")], "at least -1"),
        (vec![("cleanup.policy", "shred")], "cleanup.policy"),
    ] {
        let r = c.send(&create("bad", &configs), 7).await.topics.remove(0);
        assert_eq!(
            r.error_code,
            ResponseError::InvalidConfig.code(),
            "{configs:?}"
        );
        assert!(r.error_message.unwrap().contains(needle));
    }
    assert_eq!(
        describe(&mut c, TOPIC, "bad", false).await.error_code,
        ResponseError::UnknownTopicOrPartition.code(),
        "a refused topic must not exist"
    );

    let r = c
        .send(
            &create(
                "t",
                &[
                    ("retention.ms", "60000"),
                    ("cleanup.policy", "compact,delete"),
                ],
            ),
            7,
        )
        .await
        .topics
        .remove(0);
    assert_eq!(r.error_code, 0);
    let configs = r.configs.unwrap();
    let find = |n: &str| configs.iter().find(|c| c.name.as_str() == n).unwrap();
    assert_eq!(
        find("retention.ms").value.as_ref().unwrap().to_string(),
        "60000"
    );
    assert_eq!(find("retention.ms").config_source, SRC_TOPIC);
    assert_eq!(find("segment.bytes").config_source, SRC_DEFAULT);
    let d = describe(&mut c, TOPIC, "t", true).await;
    assert_eq!(
        get(&d, "cleanup.policy"),
        ("compact,delete".into(), SRC_TOPIC, false)
    );
    assert_eq!(
        get(&d, "max.message.bytes"),
        ("1048588".into(), SRC_DEFAULT, false)
    );
    let rm = d
        .configs
        .iter()
        .find(|c| c.name.as_str() == "retention.ms")
        .unwrap();
    let syn: Vec<_> = rm
        .synonyms
        .iter()
        .map(|s| (s.name.to_string(), s.source))
        .collect();
    // log.retention.ms has no default of its own in Kafka, so no DEFAULT_CONFIG synonym.
    assert_eq!(syn, vec![("retention.ms".to_string(), SRC_TOPIC)]);
    let cp = d
        .configs
        .iter()
        .find(|c| c.name.as_str() == "cleanup.policy")
        .unwrap();
    let syn: Vec<_> = cp
        .synonyms
        .iter()
        .map(|s| {
            (
                s.name.to_string(),
                s.value.as_ref().map(|v| v.to_string()),
                s.source,
            )
        })
        .collect();
    assert_eq!(
        syn,
        vec![
            (
                "cleanup.policy".to_string(),
                Some("compact,delete".to_string()),
                SRC_TOPIC
            ),
            (
                "log.cleanup.policy".to_string(),
                Some("delete".to_string()),
                SRC_DEFAULT
            )
        ]
    );
    assert!(rm.documentation.is_some());
    assert_eq!(rm.config_type, 5, "LONG");
}

#[tokio::test]
async fn alter_configs_persist_across_restart_and_act() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = start_with(config_in(dir.path())).await;
        let mut c = Client::connect(broker.addr()).await;
        assert_eq!(c.send(&create("t", &[]), 7).await.topics[0].error_code, 0);

        // Incremental: SET, APPEND to a list, SUBTRACT, DELETE.
        let r = c
            .send(
                &incremental(
                    TOPIC,
                    "t",
                    &[
                        ("retention.ms", SET, Some("1000")),
                        ("max.message.bytes", SET, Some("200")),
                        ("cleanup.policy", APPEND, Some("compact")),
                    ],
                ),
                1,
            )
            .await;
        assert_eq!(
            r.responses[0].error_code, 0,
            "{:?}",
            r.responses[0].error_message
        );
        let d = describe(&mut c, TOPIC, "t", false).await;
        assert_eq!(
            get(&d, "cleanup.policy").0,
            "delete,compact",
            "APPEND starts from the default"
        );
        let r = c
            .send(
                &incremental(TOPIC, "t", &[("cleanup.policy", SUBTRACT, Some("delete"))]),
                1,
            )
            .await;
        assert_eq!(r.responses[0].error_code, 0);
        let r = c
            .send(
                &incremental(TOPIC, "t", &[("retention.ms", DELETE, None)]),
                1,
            )
            .await;
        assert_eq!(r.responses[0].error_code, 0);

        // Refusals change nothing, and say why.
        for (ops, code) in [
            (
                vec![("retention.ms", APPEND, Some("5"))],
                ResponseError::InvalidConfig,
            ),
            (
                vec![("no.such.config", SET, Some("5"))],
                ResponseError::InvalidConfig,
            ),
            (
                vec![("retention.ms", SET, Some("-7"))],
                ResponseError::InvalidConfig,
            ),
            (
                vec![("retention.ms", 9, Some("5"))],
                ResponseError::InvalidRequest,
            ),
            (
                vec![
                    ("retention.ms", SET, Some("5")),
                    ("retention.ms", SET, Some("6")),
                ],
                ResponseError::InvalidRequest,
            ),
        ] {
            let r = c.send(&incremental(TOPIC, "t", &ops), 1).await;
            assert_eq!(r.responses[0].error_code, code.code(), "{ops:?}");
            assert!(r.responses[0].error_message.is_some());
        }
        let r = c
            .send(
                &incremental(TOPIC, "nope", &[("retention.ms", SET, Some("5"))]),
                1,
            )
            .await;
        assert_eq!(
            r.responses[0].error_code,
            ResponseError::UnknownTopicOrPartition.code()
        );
        let r = c
            .send(
                &incremental(BROKER, "1", &[("num.partitions", SET, Some("5"))]),
                1,
            )
            .await;
        assert_eq!(
            r.responses[0].error_code,
            ResponseError::InvalidRequest.code(),
            "static flag"
        );
        let mut validate_only = legacy_alter(TOPIC, "t", &[("retention.ms", "5")]);
        validate_only.validate_only = true;
        assert_eq!(c.send(&validate_only, 2).await.responses[0].error_code, 0);

        // A cluster-wide dynamic default reaches topics that do not set the config.
        let r = c
            .send(
                &incremental(BROKER, "", &[("log.retention.ms", SET, Some("7200000"))]),
                1,
            )
            .await;
        assert_eq!(r.responses[0].error_code, 0);

        // Per-topic max.message.bytes acts on Produce without a restart.
        let mut large = record(1, 0);
        large.value = Some(bytes::Bytes::from(vec![7u8; 400]));
        let big = batch(&[large], kafka_protocol::records::Compression::None);
        let produce = |records: bytes::Bytes| {
            ProduceRequest::default()
                .with_acks(1)
                .with_timeout_ms(5000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(TopicName(s("t")))
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(records))])])
        };
        let r = c.send(&produce(big), 9).await;
        assert_eq!(
            r.responses[0].partition_responses[0].error_code,
            ResponseError::MessageTooLarge.code()
        );
        let small = batch(&[record(2, 0)], kafka_protocol::records::Compression::None);
        let r = c.send(&produce(small), 9).await;
        assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
        broker.shutdown().await;
    }
    let broker = start_with(config_in(dir.path())).await;
    let mut c = Client::connect(broker.addr()).await;
    let d = describe(&mut c, TOPIC, "t", false).await;
    assert_eq!(
        get(&d, "cleanup.policy"),
        ("compact".into(), SRC_TOPIC, false)
    );
    assert_eq!(
        get(&d, "max.message.bytes"),
        ("200".into(), SRC_TOPIC, false)
    );
    assert_eq!(
        get(&d, "retention.ms"),
        ("7200000".into(), SRC_DYNAMIC_DEFAULT_BROKER, false),
        "deleted topic value falls back to the dynamic broker default"
    );
    let b = describe(&mut c, BROKER, "1", false).await;
    assert_eq!(b.error_code, 0);
    assert_eq!(get(&b, "log.retention.ms").0, "7200000");
    assert!(get(&b, "num.partitions").2, "flags are read-only");
    let other = describe(&mut c, BROKER, "7", false).await;
    assert_eq!(other.error_code, ResponseError::InvalidRequest.code());

    // Legacy AlterConfigs replaces the whole set.
    let r = c
        .send(&legacy_alter(TOPIC, "t", &[("segment.ms", "100000")]), 2)
        .await;
    assert_eq!(r.responses[0].error_code, 0);
    let d = describe(&mut c, TOPIC, "t", false).await;
    assert_eq!(get(&d, "segment.ms").1, SRC_TOPIC);
    assert_eq!(
        get(&d, "cleanup.policy"),
        ("delete".into(), SRC_DEFAULT, false)
    );
}

#[tokio::test]
async fn message_timestamp_type_and_bounds_act_on_produce() {
    use common::wire::{fetch, produce};
    let broker = start().await;
    let mut c = Client::connect(broker.addr()).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let req = create("lat", &[("message.timestamp.type", "LogAppendTime")]);
    assert_eq!(c.send(&req, 7).await.topics[0].error_code, 0);
    let records = batch(
        &[record(1, 1000), record(2, 2000)],
        kafka_protocol::records::Compression::Snappy,
    );
    let resp = c
        .send(
            &ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(5000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(TopicName(s("lat")))
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(records))])]),
            9,
        )
        .await;
    let p = &resp.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 0);
    let appended = p.log_append_time_ms;
    assert!(
        appended >= now && appended < now + 60_000,
        "{appended} vs {now}"
    );
    let raw = fetch(&mut c, "lat", 0, 0, 12).await.records.unwrap();
    // Batch header: attributes at byte 21 (timestamp type bit 0x08), max timestamp at 35,
    // which clients report as every record's timestamp for LogAppendTime.
    assert_eq!(raw[22] & 0x08, 0x08, "timestamp type is LogAppendTime");
    assert_eq!(
        i64::from_be_bytes(raw[35..43].try_into().unwrap()),
        appended
    );
    let got = decode_records(raw);
    assert_eq!(got.len(), 2);
    for r in &got {
        assert_eq!(
            r.timestamp_type,
            kafka_protocol::records::TimestampType::LogAppend
        );
    }
    assert_eq!(got[1].key, record(2, 0).key, "payload untouched");

    // CreateTime: Kafka 4's message.timestamp.after.max.ms (1 h) refuses far-future stamps.
    assert_eq!(c.send(&create("ct", &[]), 7).await.topics[0].error_code, 0);
    let future = batch(
        &[record(1, now + 7_200_000)],
        kafka_protocol::records::Compression::None,
    );
    let (err, _) = produce(&mut c, "ct", 0, future.clone(), 9).await;
    assert_eq!(err, ResponseError::InvalidTimestamp.code());
    let (err, _) = produce(
        &mut c,
        "ct",
        0,
        batch(&[record(1, 5)], kafka_protocol::records::Compression::None),
        9,
    )
    .await;
    assert_eq!(err, 0, "no lower bound by default");
    let r = c
        .send(
            &incremental(
                TOPIC,
                "ct",
                &[("message.timestamp.after.max.ms", SET, Some("86400000"))],
            ),
            1,
        )
        .await;
    assert_eq!(r.responses[0].error_code, 0);
    let (err, base) = produce(&mut c, "ct", 0, future, 9).await;
    assert_eq!((err, base), (0, 1), "accepted once the bound allows it");
}

#[tokio::test]
async fn compression_type_recompresses_on_the_broker() {
    use common::wire::{fetch, produce};
    let broker = start().await;
    let mut c = Client::connect(broker.addr()).await;
    for (topic, setting, codec) in [
        ("z", "zstd", 4u8),
        ("u", "uncompressed", 0),
        ("p", "producer", 1),
    ] {
        let req = create(topic, &[("compression.type", setting)]);
        assert_eq!(c.send(&req, 7).await.topics[0].error_code, 0);
        let records: Vec<_> = (0..4).map(|i| record(i, 1000 + i)).collect();
        let (err, base) = produce(
            &mut c,
            topic,
            0,
            batch(&records, kafka_protocol::records::Compression::Gzip),
            9,
        )
        .await;
        assert_eq!((err, base), (0, 0));
        let raw = fetch(&mut c, topic, 0, 0, 12).await.records.unwrap();
        assert_eq!(raw[22] & 0x07, codec, "{topic}: stored with {setting}");
        let got = decode_records(raw);
        assert_eq!(got.len(), 4);
        for (g, w) in got.iter().zip(&records) {
            assert_eq!(
                (&g.key, &g.value, &g.headers, g.timestamp),
                (&w.key, &w.value, &w.headers, w.timestamp)
            );
        }
    }
}

/// `compression.type` changes only the codec of the records section: a record whose headers
/// repeat a key (which the protocol crate's record type cannot represent) comes back byte for
/// byte, in every codec the broker converts to.
#[tokio::test]
async fn recompression_keeps_records_byte_for_byte_with_duplicate_header_keys() {
    use common::wire::{fetch, produce};
    use kafka_protocol::records::Compression;
    let mut r = record(1, 1000);
    let mut headers = kafka_protocol::indexmap::IndexMap::new();
    for (k, v) in [("hA", "first"), ("hB", "second"), ("hC", "third")] {
        headers.insert(
            kafka_protocol::protocol::StrBytes::from_static_str(k),
            Some(bytes::Bytes::from_static(v.as_bytes())),
        );
    }
    r.headers = headers;
    // Encode uncompressed, rename header "hB" to "hA" in place and fix the CRC: the record
    // now carries hA twice, as Java and Go clients can send it.
    let mut raw = bytes::BytesMut::from(&batch(&[r], Compression::None)[..]);
    let at = raw.windows(2).position(|w| w == b"hB").unwrap();
    raw[at + 1] = b'A';
    let crc = crc32c::crc32c(&raw[21..]);
    raw[17..21].copy_from_slice(&crc.to_be_bytes());
    let raw = raw.freeze();
    let records_section = raw[61..].to_vec();

    let broker = start().await;
    let mut c = Client::connect(broker.addr()).await;
    for (topic, setting, codec) in [
        ("dz", "zstd", 4u8),
        ("dg", "gzip", 1),
        ("ds", "snappy", 2),
        ("dl", "lz4", 3),
        ("du", "uncompressed", 0),
    ] {
        let req = create(topic, &[("compression.type", setting)]);
        assert_eq!(c.send(&req, 7).await.topics[0].error_code, 0);
        assert_eq!(produce(&mut c, topic, 0, raw.clone(), 9).await, (0, 0));
        let stored = fetch(&mut c, topic, 0, 0, 12).await.records.unwrap();
        assert_eq!(stored[22] & 0x07, codec, "{topic}: stored with {setting}");
        // Back to uncompressed through the broker itself: the records section is the
        // producer's, byte for byte.
        let back = format!("{topic}-back");
        let req = create(&back, &[("compression.type", "uncompressed")]);
        assert_eq!(c.send(&req, 7).await.topics[0].error_code, 0);
        let mut again = bytes::BytesMut::from(&stored[..]);
        again[0..8].copy_from_slice(&0i64.to_be_bytes());
        assert_eq!(produce(&mut c, &back, 0, again.freeze(), 9).await, (0, 0));
        let plain = fetch(&mut c, &back, 0, 0, 12).await.records.unwrap();
        assert_eq!(&plain[61..], &records_section[..], "{setting}");
    }
}

const GROUP: i8 = 32;
const SRC_GROUP: i8 = 8;

/// The error of the one resource of an IncrementalAlterConfigs answer.
async fn alter_group(
    c: &mut Client,
    group: &str,
    ops: &[(&str, i8, Option<&str>)],
) -> (i16, String) {
    let r = c.send(&incremental(GROUP, group, ops), 1).await;
    let r = &r.responses[0];
    (
        r.error_code,
        r.error_message
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default(),
    )
}

#[tokio::test]
async fn group_configs_are_validated_listed_and_kept_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let invalid_config = ResponseError::InvalidConfig.code();
    {
        let broker = start_with(config_in(dir.path())).await;
        let mut c = Client::connect(broker.addr()).await;

        // Every group config of Kafka 4.4, with the broker's value, before anything is set
        // (the group need not exist).
        let d = describe(&mut c, GROUP, "share-g", true).await;
        assert_eq!(d.error_code, 0, "{:?}", d.error_message);
        assert_eq!(d.configs.len(), 21, "Kafka 4.4 lists 21 group configs");
        assert_eq!(
            get(&d, "share.auto.offset.reset"),
            ("latest".into(), SRC_DEFAULT, false)
        );
        assert_eq!(get(&d, "share.record.lock.duration.ms").0, "30000");
        let lock = d
            .configs
            .iter()
            .find(|c| c.name.as_str() == "share.delivery.count.limit")
            .unwrap();
        assert_eq!(lock.synonyms.len(), 1);
        assert_eq!(
            lock.synonyms[0].name.as_str(),
            "group.share.delivery.count.limit"
        );
        assert_eq!(lock.config_type, 3, "INT");

        // Kafka's refusals, each with Kafka's message; nothing is stored by a refused one.
        for (name, value, message) in [
            ("share.auto.offset.reset", "foo", "Invalid value foo for configuration share.auto.offset.reset: Invalid value `foo` for configuration share.auto.offset.reset. The value must be either 'earliest', 'latest' or of the format 'by_duration:<PnDTnHnMn.nS>'."),
            ("share.auto.offset.reset", "by_duration:-PT1H", "Invalid value by_duration:-PT1H for configuration share.auto.offset.reset"),
            ("share.delivery.count.limit", "11", "share.delivery.count.limit must be in the range 2 to 10 inclusive."),
            ("share.delivery.count.limit", "1", "Invalid value 1 for configuration share.delivery.count.limit: Value must be at least 2"),
            ("share.record.lock.duration.ms", "1000", "share.record.lock.duration.ms must be in the range 15000 to 60000 inclusive."),
            ("share.isolation.level", "READ_COMMITTED", "String must be one of: read_committed, read_uncommitted"),
            ("share.renew.acknowledge.enable", "yes", "Expected value to be either true or false"),
            ("share.session.timeout.ms", "abc", "Not a number of type INT"),
            ("streams.num.standby.replicas", "3", "streams.num.standby.replicas must be less than or equal to 2"),
            ("errors.deadletterqueue.topic.name", "__x", "DLQ topic name must not start with '__'"),
            ("foo.bar", "1", "Unknown group config name: foo.bar"),
        ] {
            let (code, msg) = alter_group(
                &mut c,
                "share-g",
                &[("share.heartbeat.interval.ms", SET, Some("6000")), (name, SET, Some(value))],
            )
            .await;
            assert_eq!(code, invalid_config, "{name}={value}: {msg}");
            assert!(msg.contains(message), "{name}={value}: {msg}");
        }
        let (code, msg) = alter_group(
            &mut c,
            "share-g",
            &[("streams.rack.aware.assignment.tags", APPEND, Some("a"))],
        )
        .await;
        assert_eq!((code, msg.as_str()), (invalid_config, "Can't APPEND to key streams.rack.aware.assignment.tags because its type is not LIST."));
        let (code, msg) = alter_group(
            &mut c,
            "",
            &[("share.delivery.count.limit", SET, Some("3"))],
        )
        .await;
        assert_eq!(
            (code, msg.as_str()),
            (
                ResponseError::InvalidRequest.code(),
                "Default group resources are not allowed."
            )
        );
        let d = describe(&mut c, GROUP, "", false).await;
        assert_eq!(d.error_code, ResponseError::InvalidRequest.code());
        let d = describe(&mut c, GROUP, "share-g", false).await;
        assert!(
            d.configs.iter().all(|c| c.config_source == SRC_DEFAULT),
            "nothing stored"
        );

        // Set, stored as Kafka normalises it; validate_only stores nothing.
        let mut only = incremental(
            GROUP,
            "other",
            &[("share.delivery.count.limit", SET, Some("3"))],
        );
        only.validate_only = true;
        assert_eq!(c.send(&only, 1).await.responses[0].error_code, 0);
        let (code, msg) = alter_group(
            &mut c,
            "share-g",
            &[
                ("share.auto.offset.reset", SET, Some("earliest")),
                ("share.delivery.count.limit", SET, Some("+3")),
                ("share.renew.acknowledge.enable", SET, Some("FALSE")),
                ("share.record.lock.duration.ms", SET, Some("15000")),
                ("streams.num.warmup.replicas", SET, Some("1")),
            ],
        )
        .await;
        assert_eq!(code, 0, "{msg}");
        let d = describe(&mut c, GROUP, "share-g", true).await;
        assert_eq!(
            get(&d, "share.auto.offset.reset"),
            ("earliest".into(), SRC_GROUP, false)
        );
        assert_eq!(
            get(&d, "share.delivery.count.limit"),
            ("3".into(), SRC_GROUP, false)
        );
        assert_eq!(get(&d, "share.renew.acknowledge.enable").0, "false");
        assert_eq!(
            get(&d, "streams.num.warmup.replicas").0,
            "1",
            "an internal config shows once set"
        );
        assert_eq!(d.configs.len(), 22);
        let limit = d
            .configs
            .iter()
            .find(|c| c.name.as_str() == "share.delivery.count.limit")
            .unwrap();
        let synonyms: Vec<(String, String, i8)> = limit
            .synonyms
            .iter()
            .map(|s| {
                (
                    s.name.to_string(),
                    s.value.as_ref().unwrap().to_string(),
                    s.source,
                )
            })
            .collect();
        assert_eq!(
            synonyms,
            vec![
                ("share.delivery.count.limit".into(), "3".into(), SRC_GROUP),
                (
                    "group.share.delivery.count.limit".into(),
                    "5".into(),
                    SRC_DEFAULT
                ),
            ]
        );
        // DELETE goes back to the broker's value; the legacy AlterConfigs replaces the set.
        let (code, _) = alter_group(
            &mut c,
            "share-g",
            &[("streams.num.warmup.replicas", DELETE, None)],
        )
        .await;
        assert_eq!(code, 0);
        assert_eq!(
            c.send(
                &legacy_alter(
                    GROUP,
                    "legacy-g",
                    &[("share.isolation.level", "read_committed")]
                ),
                1
            )
            .await
            .responses[0]
                .error_code,
            0
        );
        assert_eq!(
            c.send(
                &legacy_alter(GROUP, "legacy-g", &[("share.session.timeout.ms", "50000")]),
                1
            )
            .await
            .responses[0]
                .error_code,
            0
        );
        let d = describe(&mut c, GROUP, "legacy-g", false).await;
        assert_eq!(get(&d, "share.isolation.level").1, SRC_DEFAULT);
        assert_eq!(
            get(&d, "share.session.timeout.ms"),
            ("50000".into(), SRC_GROUP, false)
        );

        // ListConfigResources lists the groups with configs (not the validate-only one).
        let listed = c
            .send(
                &ListConfigResourcesRequest::default().with_resource_types(vec![GROUP]),
                1,
            )
            .await;
        let names: Vec<String> = listed
            .config_resources
            .iter()
            .map(|r| r.resource_name.to_string())
            .collect();
        assert_eq!(names, vec!["legacy-g".to_string(), "share-g".to_string()]);
        broker.shutdown().await;
    }
    let broker = start_with(config_in(dir.path())).await;
    let mut c = Client::connect(broker.addr()).await;
    let d = describe(&mut c, GROUP, "share-g", false).await;
    assert_eq!(
        get(&d, "share.auto.offset.reset"),
        ("earliest".into(), SRC_GROUP, false),
        "kept across a restart"
    );
    assert_eq!(get(&d, "share.record.lock.duration.ms").0, "15000");
    assert!(
        d.configs
            .iter()
            .all(|c| c.name.as_str() != "streams.num.warmup.replicas"),
        "deleted stays deleted"
    );
}

/// The dead-letter-queue configs of KIP-1191: the topic's opt-in, the broker's auto-create
/// and prefix, and the broker's lower bound of the lock duration that share groups may set.
#[tokio::test]
async fn dead_letter_queue_configs_are_listed_and_bounded() {
    let mut config = klamm::config::BrokerConfig::ephemeral();
    config.group_share_min_record_lock_duration_ms = 1000;
    config.errors_deadletterqueue_auto_create_topics_enable = true;
    let broker = start_with(config).await;
    let mut c = Client::connect(broker.addr()).await;

    let r = c
        .send(
            &create("dlq.t", &[("errors.deadletterqueue.group.enable", "true")]),
            5,
        )
        .await;
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
    let d = describe(&mut c, TOPIC, "dlq.t", false).await;
    assert_eq!(
        get(&d, "errors.deadletterqueue.group.enable"),
        ("true".into(), SRC_TOPIC, false)
    );
    c.send(&create("plain", &[]), 5).await;
    let d = describe(&mut c, TOPIC, "plain", false).await;
    assert_eq!(
        get(&d, "errors.deadletterqueue.group.enable"),
        ("false".into(), SRC_DEFAULT, false)
    );
    let r = c
        .send(
            &incremental(
                TOPIC,
                "plain",
                &[("errors.deadletterqueue.group.enable", SET, Some("maybe"))],
            ),
            1,
        )
        .await;
    assert_eq!(
        r.responses[0].error_code,
        ResponseError::InvalidConfig.code()
    );

    let d = describe(&mut c, BROKER, "1", false).await;
    assert_eq!(
        get(&d, "errors.deadletterqueue.auto.create.topics.enable").0,
        "true"
    );
    assert_eq!(
        get(&d, "errors.deadletterqueue.topic.name.prefix"),
        ("dlq.".into(), SRC_DEFAULT, true)
    );
    assert_eq!(get(&d, "group.share.min.record.lock.duration.ms").0, "1000");

    // The broker's bound moves the group config's range, with Kafka's message.
    let (code, msg) = alter_group(
        &mut c,
        "g",
        &[("share.record.lock.duration.ms", SET, Some("1000"))],
    )
    .await;
    assert_eq!(code, 0, "{msg}");
    let (code, msg) = alter_group(
        &mut c,
        "g",
        &[("share.record.lock.duration.ms", SET, Some("60001"))],
    )
    .await;
    assert_eq!(
        (code, msg.as_str()),
        (
            ResponseError::InvalidConfig.code(),
            "share.record.lock.duration.ms must be in the range 1000 to 60000 inclusive."
        )
    );
}

/// Kafka 4.4's `max.decompressed.message.bytes`: a record of a compressed batch whose
/// decompressed size passes it is refused with INVALID_RECORD and Kafka's message; the same
/// record uncompressed is not decompressed, so not checked; the config is listed with
/// Kafka's default and bounds, beside the tiered-storage configs Klamm lists but has no use for.
#[tokio::test]
async fn max_decompressed_message_bytes_bounds_records_of_compressed_batches() {
    use common::wire::{fetch, produce_req};
    use kafka_protocol::records::Compression;
    let broker = start().await;
    let mut c = Client::connect(broker.addr()).await;
    let r = c
        .send(
            &create("dm", &[("max.decompressed.message.bytes", "1000")]),
            7,
        )
        .await;
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
    let mut big = record(0, 1000);
    big.value = Some(bytes::Bytes::from(vec![b'a'; 5_000]));
    let small = record(1, 1001);

    let send = |records: bytes::Bytes| produce_req("dm", uuid::Uuid::nil(), 0, records, -1);
    let r = c
        .send(
            &send(batch(std::slice::from_ref(&big), Compression::Gzip)),
            9,
        )
        .await;
    let p = &r.responses[0].partition_responses[0];
    assert_eq!(p.error_code, ResponseError::InvalidRecord.code());
    let msg = p.error_message.as_deref().unwrap_or_default().to_string();
    assert!(
        msg.starts_with("Invalid record size: ")
            && msg.ends_with(" exceeds the configured maximum record size of 1000."),
        "{msg}"
    );
    for (records, offset) in [
        (batch(std::slice::from_ref(&small), Compression::Lz4), 0),
        (batch(std::slice::from_ref(&big), Compression::None), 1),
    ] {
        let r = c.send(&send(records), 9).await;
        let p = &r.responses[0].partition_responses[0];
        assert_eq!(
            (p.error_code, p.base_offset),
            (0, offset),
            "{:?}",
            p.error_message
        );
    }
    let got = decode_records(fetch(&mut c, "dm", 0, 0, 12).await.records.unwrap());
    assert_eq!(
        got.iter().map(|r| r.value.clone()).collect::<Vec<_>>(),
        vec![small.value, big.value]
    );

    let d = describe(&mut c, TOPIC, "dm", false).await;
    assert_eq!(
        get(&d, "max.decompressed.message.bytes"),
        ("1000".into(), SRC_TOPIC, false)
    );
    c.send(&create("plain", &[]), 7).await;
    let d = describe(&mut c, TOPIC, "plain", false).await;
    for (name, default) in [
        ("max.decompressed.message.bytes", "2147483639"),
        ("remote.copy.lag.bytes", "-1"),
        ("remote.copy.lag.ms", "0"),
        ("remote.log.copy.disable", "false"),
        ("remote.log.delete.on.disable", "false"),
    ] {
        assert_eq!(
            get(&d, name),
            (default.into(), SRC_DEFAULT, false),
            "{name}"
        );
    }
    for (value, why) in [
        ("0", "Value must be at least 1"),
        ("2147483640", "Value must be no more than 2147483639"),
    ] {
        let r = c
            .send(
                &incremental(
                    TOPIC,
                    "plain",
                    &[("max.decompressed.message.bytes", SET, Some(value))],
                ),
                1,
            )
            .await;
        assert_eq!(
            r.responses[0]
                .error_message
                .as_deref()
                .map(|m| m.to_string()),
            Some(format!(
                "Invalid value {value} for configuration max.decompressed.message.bytes: {why}"
            ))
        );
    }
}

/// A broker setting that differs from Kafka's default is STATIC_BROKER_CONFIG, and its
/// synonyms name Kafka's default after it, as Kafka lists a setting from server.properties.
/// Klamm's own defaults that differ from Kafka's (group.initial.rebalance.delay.ms 0) are
/// static settings too; one equal to Kafka's is DEFAULT_CONFIG alone.
#[tokio::test]
async fn static_broker_settings_list_kafkas_default_as_their_synonym() {
    const SRC_STATIC: i8 = 4;
    let mut config = klamm::config::BrokerConfig::ephemeral();
    config.message_max_bytes = 2_000_000;
    let broker = start_with(config).await;
    let mut c = Client::connect(broker.addr()).await;
    let d = describe(&mut c, BROKER, "1", true).await;
    let synonyms = |name: &str| -> Vec<(String, String, i8)> {
        d.configs
            .iter()
            .find(|c| c.name.as_str() == name)
            .unwrap_or_else(|| panic!("{name} not described"))
            .synonyms
            .iter()
            .map(|s| {
                (
                    s.name.to_string(),
                    s.value.as_deref().unwrap_or_default().to_string(),
                    s.source,
                )
            })
            .collect()
    };
    let pair = |name: &str, set: &str, default: &str| {
        vec![
            (name.to_string(), set.to_string(), SRC_STATIC),
            (name.to_string(), default.to_string(), SRC_DEFAULT),
        ]
    };
    assert_eq!(
        get(&d, "message.max.bytes"),
        ("2000000".into(), SRC_STATIC, true)
    );
    assert_eq!(
        synonyms("message.max.bytes"),
        pair("message.max.bytes", "2000000", "1048588")
    );
    assert_eq!(
        synonyms("group.initial.rebalance.delay.ms"),
        pair("group.initial.rebalance.delay.ms", "0", "3000")
    );
    assert_eq!(
        synonyms("connections.max.idle.ms"),
        vec![(
            "connections.max.idle.ms".into(),
            "600000".into(),
            SRC_DEFAULT
        )]
    );
}
