//! A real third-party Rust client (rskafka, InfluxDB's Kafka client) against the broker:
//! admin, produce with every codec, fetch byte-exact, offsets by time, restart.

use crate::common;

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use rskafka::client::partition::{Compression, OffsetAt, UnknownTopicHandling};
use rskafka::client::ClientBuilder;
use rskafka::record::Record;

fn records(n: usize, tag: &str, base_ts_ms: i64) -> Vec<Record> {
    (0..n)
        .map(|i| Record {
            key: if i % 2 == 0 {
                Some(format!("{tag}-k{i}").into_bytes())
            } else {
                None
            },
            value: Some([tag.as_bytes(), &[0u8, 1, 2, 255], &i.to_be_bytes()].concat()),
            headers: BTreeMap::from([(format!("h-{i}"), vec![i as u8; 3])]),
            timestamp: Utc.timestamp_millis_opt(base_ts_ms + i as i64).unwrap(),
        })
        .collect()
}

#[tokio::test]
async fn rskafka_roundtrip_every_codec_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut expected = Vec::new();
    {
        let broker = common::start_with(common::config_in(dir.path())).await;
        let client = ClientBuilder::new(vec![broker.bootstrap()])
            .build()
            .await
            .unwrap();
        client
            .controller_client()
            .unwrap()
            .create_topic("rs", 2, 1, 5_000)
            .await
            .unwrap();
        let topics = client.list_topics().await.unwrap();
        let rs = topics
            .iter()
            .find(|t| t.name == "rs")
            .expect("topic listed");
        assert_eq!(rs.partitions.len(), 2);

        let pc = client
            .partition_client("rs", 1, UnknownTopicHandling::Error)
            .await
            .unwrap();
        let codecs = [
            Compression::NoCompression,
            Compression::Gzip,
            Compression::Lz4,
            Compression::Snappy,
            Compression::Zstd,
        ];
        for (i, codec) in codecs.into_iter().enumerate() {
            let recs = records(4, &format!("c{i}"), 1_000_000 + (i as i64) * 100);
            let offsets = pc.produce(recs.clone(), codec).await.unwrap();
            assert_eq!(
                offsets,
                ((i as i64 * 4)..(i as i64 * 4 + 4)).collect::<Vec<_>>()
            );
            expected.extend(recs);
        }
        let (got, hw) = pc.fetch_records(0, 1..1_000_000, 100).await.unwrap();
        assert_eq!(hw, 20);
        let got: Vec<Record> = got.into_iter().map(|r| r.record).collect();
        assert_eq!(got, expected);
        assert_eq!(pc.get_offset(OffsetAt::Earliest).await.unwrap(), 0);
        assert_eq!(pc.get_offset(OffsetAt::Latest).await.unwrap(), 20);
        let at = Utc.timestamp_millis_opt(1_000_201).unwrap();
        assert_eq!(pc.get_offset(OffsetAt::Timestamp(at)).await.unwrap(), 9);
        broker.shutdown().await;
    }
    let broker = common::start_with(common::config_in(dir.path())).await;
    let client = ClientBuilder::new(vec![broker.bootstrap()])
        .build()
        .await
        .unwrap();
    let pc = client
        .partition_client("rs", 1, UnknownTopicHandling::Error)
        .await
        .unwrap();
    let (got, hw) = pc.fetch_records(0, 1..1_000_000, 100).await.unwrap();
    assert_eq!(hw, 20);
    let got: Vec<Record> = got.into_iter().map(|r| r.record).collect();
    assert_eq!(got, expected, "byte-exact after restart");
}
