//! Log compaction over the wire: the latest record per key survives at its original offset,
//! compressed batches keep their codec, tombstones go after delete.retention.ms, keyless
//! records are refused, and the result survives a restart.

use crate::common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::wire::*;
use common::*;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, Record};
use kafka_protocol::ResponseError;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn kv(key: Option<&str>, value: Option<&str>, ts: i64) -> Record {
    let mut r = record(1, ts);
    r.key = key.map(|k| Bytes::from(k.to_string()));
    r.value = value.map(|v| Bytes::from(v.to_string()));
    r
}

async fn create_compacted(c: &mut Client, topic: &str, extra: &[(&str, &str)]) {
    let mut configs = vec![("cleanup.policy", "compact")];
    configs.extend_from_slice(extra);
    let req = create_with_configs(topic, &configs);
    assert_eq!(c.send(&req, 7).await.topics[0].error_code, 0);
}

/// offset -> (key, value) of everything the log holds now, and the codec of each batch.
async fn log_contents(
    c: &mut Client,
    topic: &str,
) -> (BTreeMap<i64, (String, Option<String>)>, Vec<u8>) {
    let raw = fetch(c, topic, 0, 0, 12).await.records.unwrap_or_default();
    let mut codecs = Vec::new();
    let mut pos = 0;
    while pos + 61 <= raw.len() {
        let len = i32::from_be_bytes(raw[pos + 8..pos + 12].try_into().unwrap()) as usize;
        codecs.push(raw[pos + 22] & 0x07);
        pos += 12 + len;
    }
    let records = decode_records(raw)
        .into_iter()
        .map(|r| {
            let key = String::from_utf8(r.key.unwrap().to_vec()).unwrap();
            let value = r.value.map(|v| String::from_utf8(v.to_vec()).unwrap());
            (r.offset, (key, value))
        })
        .collect();
    (records, codecs)
}

async fn wait_until_compacted(
    c: &mut Client,
    topic: &str,
    want_records: usize,
) -> (BTreeMap<i64, (String, Option<String>)>, Vec<u8>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = log_contents(c, topic).await;
        if got.0.len() == want_records || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn compaction_keeps_the_latest_value_per_key_at_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_in(dir.path());
    config.log_cleaner_backoff_ms = 50;
    let broker = start_with(config.clone()).await;
    let mut c = Client::connect(broker.addr()).await;
    create_compacted(&mut c, "c", &[]).await;
    let now = 1_700_000_000_000;

    // Offsets 0-2 (gzip), 3-5 (lz4), 6-7 (none).
    let b1 = [
        kv(Some("a"), Some("a1"), now),
        kv(Some("b"), Some("b1"), now),
        kv(Some("c"), Some("c1"), now),
    ];
    let b2 = [
        kv(Some("a"), Some("a2"), now),
        kv(Some("d"), Some("d1"), now),
        kv(Some("b"), None, now),
    ];
    let b3 = [
        kv(Some("a"), Some("a3"), now),
        kv(Some("e"), Some("e1"), now),
    ];
    for (records, codec) in [
        (&b1[..], Compression::Gzip),
        (&b2[..], Compression::Lz4),
        (&b3[..], Compression::None),
    ] {
        let (err, _) = produce(&mut c, "c", 0, batch(records, codec), 9).await;
        assert_eq!(err, 0);
    }
    let (after, codecs) = wait_until_compacted(&mut c, "c", 5).await;
    let want: BTreeMap<i64, (String, Option<String>)> = [
        (2, ("c", Some("c1"))),
        (4, ("d", Some("d1"))),
        (5, ("b", None)), // a tombstone stays for delete.retention.ms (a day by default)
        (6, ("a", Some("a3"))),
        (7, ("e", Some("e1"))),
    ]
    .into_iter()
    .map(|(o, (k, v))| (o, (k.to_string(), v.map(str::to_string))))
    .collect();
    assert_eq!(after, want);
    assert_eq!(
        codecs,
        vec![1, 3, 0],
        "rewritten batches keep their codec (gzip, lz4, none)"
    );
    assert_eq!(
        list_offset(&mut c, "c", 0, -1, 7).await.1,
        8,
        "the end offset never moves"
    );

    // Keyless records are refused on a compacted topic.
    let (err, _) = produce(
        &mut c,
        "c",
        0,
        batch(&[kv(None, Some("x"), now)], Compression::None),
        9,
    )
    .await;
    assert_eq!(err, ResponseError::InvalidRecord.code());

    // Tombstones go once delete.retention.ms has passed.
    let alter = IncrementalAlterConfigsRequest::default().with_resources(vec![
        incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("c"))
            .with_configs(vec![
                incremental_alter_configs_request::AlterableConfig::default()
                    .with_name(s("delete.retention.ms"))
                    .with_config_operation(0)
                    .with_value(Some(s("1000"))),
            ]),
    ]);
    assert_eq!(c.send(&alter, 1).await.responses[0].error_code, 0);
    let (after, _) = wait_until_compacted(&mut c, "c", 4).await;
    assert_eq!(after.keys().copied().collect::<Vec<_>>(), vec![2, 4, 6, 7]);
    broker.shutdown().await;

    let broker = start_with(config).await;
    let mut c = Client::connect(broker.addr()).await;
    let (again, _) = log_contents(&mut c, "c").await;
    assert_eq!(again, after, "compacted log survives a restart");
    let (err, base) = produce(
        &mut c,
        "c",
        0,
        batch(&[kv(Some("a"), Some("a4"), now)], Compression::Zstd),
        9,
    )
    .await;
    assert_eq!((err, base), (0, 8));
}

#[tokio::test]
async fn recent_records_wait_for_min_compaction_lag() {
    let mut config = klamm::BrokerConfig::ephemeral();
    config.log_cleaner_backoff_ms = 50;
    let broker = start_with(config).await;
    let mut c = Client::connect(broker.addr()).await;
    create_compacted(&mut c, "lag", &[("min.compaction.lag.ms", "3600000")]).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let old = [
        kv(Some("k"), Some("old-1"), now - 7_200_000),
        kv(Some("k"), Some("old-2"), now - 7_200_000),
    ];
    produce(&mut c, "lag", 0, batch(&old, Compression::Snappy), 9).await;
    let recent = [
        kv(Some("k"), Some("new-1"), now),
        kv(Some("k"), Some("new-2"), now),
    ];
    produce(&mut c, "lag", 0, batch(&recent, Compression::None), 9).await;
    // Only the old batch is cleanable: its older record goes, the recent batch is untouched.
    let (after, _) = wait_until_compacted(&mut c, "lag", 3).await;
    assert_eq!(after.keys().copied().collect::<Vec<_>>(), vec![1, 2, 3]);
    // A whole cleaner pass after that still leaves the recent batch alone.
    wait_for_pass(&broker, |m| m.cleaner_passes.get()).await;
    assert_eq!(log_contents(&mut c, "lag").await.0.len(), 3);
}

#[tokio::test]
async fn delete_records_on_a_compact_only_topic_is_a_policy_violation() {
    let broker = start().await;
    let mut c = Client::connect(broker.addr()).await;
    create_compacted(&mut c, "c", &[]).await;
    create_compacted(&mut c, "cd", &[]).await;
    let alter = IncrementalAlterConfigsRequest::default().with_resources(vec![
        incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("cd"))
            .with_configs(vec![
                incremental_alter_configs_request::AlterableConfig::default()
                    .with_name(s("cleanup.policy"))
                    .with_config_operation(0)
                    .with_value(Some(s("compact,delete"))),
            ]),
    ]);
    assert_eq!(c.send(&alter, 1).await.responses[0].error_code, 0);
    for (topic, want) in [("c", ResponseError::PolicyViolation.code()), ("cd", 0)] {
        let recs = [kv(Some("a"), Some("1"), 5), kv(Some("b"), Some("2"), 5)];
        produce(&mut c, topic, 0, batch(&recs, Compression::None), 9).await;
        let req = DeleteRecordsRequest::default().with_topics(vec![
            delete_records_request::DeleteRecordsTopic::default()
                .with_name(tn(topic))
                .with_partitions(vec![
                    delete_records_request::DeleteRecordsPartition::default()
                        .with_partition_index(0)
                        .with_offset(1),
                ]),
        ]);
        let r = c.send(&req, 2).await;
        assert_eq!(r.topics[0].partitions[0].error_code, want, "{topic}");
        let start = list_offset(&mut c, topic, 0, -2, 7).await.1;
        assert_eq!(start, if want == 0 { 1 } else { 0 }, "{topic}");
    }
}
