//! Storage work runs off the async workers: on a multi-threaded runtime like the binary's,
//! heartbeats and ApiVersions keep answering while every Produce is stuck in a slow disk
//! (the `stall` fault blocks the storage thread), `--fsync` producers, a compaction and large
//! fetches run.

use crate::common;

use std::time::{Duration, Instant};

use common::wire::{create_with_configs, fetch, fetch_req, produce};
use common::*;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;

const STALL_MS: u64 = 1000;
const BOUND: Duration = Duration::from_millis(400);

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_and_api_versions_answer_while_storage_is_slow() {
    let mut config = klamm::BrokerConfig::ephemeral();
    config.fsync = true;
    config.log_cleaner_backoff_ms = 50;
    config.num_partitions = 8;
    let broker = klamm::TestBroker::start_with(config).await.unwrap();
    let addr: std::net::SocketAddr = broker.bootstrap().parse().unwrap();
    let mut admin = Client::connect(addr).await;

    // A log to fetch in large chunks, and a compacted topic with work for the cleaner.
    let value = bytes::Bytes::from(vec![3u8; 100_000]);
    for _ in 0..40 {
        let recs: Vec<_> = (0..8)
            .map(|i| {
                let mut r = record(i, 1_700_000_000_000);
                r.value = Some(value.clone());
                r
            })
            .collect();
        let (err, _) = produce(&mut admin, "big", 0, batch(&recs, Compression::None), 9).await;
        assert_eq!(err, 0);
    }
    let req = create_with_configs("cc", &[("cleanup.policy", "compact")]);
    assert_eq!(admin.send(&req, 7).await.topics[0].error_code, 0);
    for round in 0..50 {
        let recs: Vec<_> = (0..20)
            .map(|i| {
                let mut r = record(i, 1);
                r.key = Some(bytes::Bytes::from(format!("k{}", (i + round) % 7)));
                r
            })
            .collect();
        let (err, _) = produce(&mut admin, "cc", 0, batch(&recs, Compression::Lz4), 9).await;
        assert_eq!(err, 0);
    }

    // A classic group member, to heartbeat.
    let join = JoinGroupRequest::default()
        .with_group_id(GroupId(s("hb")))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(bytes::Bytes::from_static(b"m"))]);
    let mut member = Client::connect(addr).await;
    let mut j = member.send(&join, 9).await;
    if j.error_code == kafka_protocol::ResponseError::MemberIdRequired.code() {
        j = member
            .send(&join.clone().with_member_id(j.member_id.clone()), 9)
            .await;
    }
    assert_eq!(j.error_code, 0);
    let sync = SyncGroupRequest::default()
        .with_group_id(GroupId(s("hb")))
        .with_generation_id(j.generation_id)
        .with_member_id(j.member_id.clone())
        .with_assignments(vec![SyncGroupRequestAssignment::default()
            .with_member_id(j.member_id.clone())
            .with_assignment(bytes::Bytes::from_static(b"a"))]);
    assert_eq!(member.send(&sync, 5).await.error_code, 0);

    // From now on every Produce sits in a "slow disk" for a second.
    let spec = format!(r#"{{"api":"Produce","action":"stall","delay_ms":{STALL_MS}}}"#);
    broker
        .context()
        .faults
        .add(serde_json::from_str(&spec).unwrap())
        .unwrap();

    let end = Instant::now() + Duration::from_secs(3);
    let mut load = Vec::new();
    for p in 0..8 {
        load.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await;
            let mut done = 0u32;
            while Instant::now() < end {
                let b = batch(&[record(1, 1_700_000_000_000)], Compression::None);
                assert_eq!(produce(&mut c, "load", p, b, 9).await.0, 0);
                done += 1;
            }
            done
        }));
    }
    let fetcher = tokio::spawn(async move {
        let mut c = Client::connect(addr).await;
        let mut bytes = 0usize;
        while Instant::now() < end {
            let r = c.send(&fetch_req("big", uuid::Uuid::nil(), 0, 0), 12).await;
            bytes += r.responses[0].partitions[0]
                .records
                .as_ref()
                .map_or(0, |b| b.len());
        }
        bytes
    });

    let mut probe = Client::connect(addr).await;
    let mut worst_api = Duration::ZERO;
    let mut worst_heartbeat = Duration::ZERO;
    let mut rounds = 0;
    while Instant::now() < end {
        let t = Instant::now();
        assert_eq!(
            probe
                .send(&ApiVersionsRequest::default(), 2)
                .await
                .error_code,
            0
        );
        worst_api = worst_api.max(t.elapsed());
        let hb = HeartbeatRequest::default()
            .with_group_id(GroupId(s("hb")))
            .with_generation_id(j.generation_id)
            .with_member_id(j.member_id.clone());
        let t = Instant::now();
        assert_eq!(member.send(&hb, 4).await.error_code, 0);
        worst_heartbeat = worst_heartbeat.max(t.elapsed());
        rounds += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The load really ran: every producer was answered (each answer waited out a stall) and
    // the fetcher read the large log.
    for l in load {
        let done = l.await.unwrap();
        assert!(
            (1..=4).contains(&done),
            "{done} produces of a second each in 3 s"
        );
    }
    assert!(fetcher.await.unwrap() > 10_000_000);
    println!(
        "{rounds} rounds: ApiVersions worst {worst_api:?}, Heartbeat worst {worst_heartbeat:?}"
    );
    assert!(worst_api < BOUND, "ApiVersions took {worst_api:?}");
    assert!(
        worst_heartbeat < BOUND,
        "Heartbeat took {worst_heartbeat:?}"
    );
    broker.shutdown().await;
}

/// With `--fsync`, appends of many connections to one partition go through the store's
/// writer queue and are awaited without the partition's lock (group commit): every answer
/// must still carry a distinct offset, the offsets must tile the log with no gap, every
/// record must read back byte-exact at the offset its producer was told, and all of it
/// must be there after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsync_appends_from_many_connections_keep_order_and_survive_restart() {
    const CONNECTIONS: usize = 12;
    const PER_CONNECTION: usize = 40;
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_in(dir.path());
    config.fsync = true;
    let broker = start_with(config.clone()).await;
    let addr: std::net::SocketAddr = broker.bootstrap().parse().unwrap();
    let mut admin = Client::connect(addr).await;
    let req = create_with_configs("gc", &[]);
    assert_eq!(admin.send(&req, 7).await.topics[0].error_code, 0);

    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|c| {
            tokio::spawn(async move {
                let mut client = Client::connect(addr).await;
                let mut acked = Vec::new();
                for i in 0..PER_CONNECTION {
                    let n = 1 + (c + i) % 3;
                    let recs: Vec<_> = (0..n)
                        .map(|k| {
                            let mut r = record(k as i64, 1_700_000_000_000);
                            r.value = Some(bytes::Bytes::from(format!("c{c}-m{i}-r{k}")));
                            r
                        })
                        .collect();
                    let (err, base) =
                        produce(&mut client, "gc", 0, batch(&recs, Compression::None), 9).await;
                    assert_eq!(err, 0);
                    acked.push((base, n, format!("c{c}-m{i}")));
                }
                acked
            })
        })
        .collect();
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    acked.sort();
    let mut expected_next = 0;
    for (base, n, _) in &acked {
        assert_eq!(*base, expected_next, "offsets must tile the log: {acked:?}");
        expected_next += *n as i64;
    }

    let read_all = |records: Vec<kafka_protocol::records::Record>| {
        records
            .into_iter()
            .map(|r| {
                (
                    r.offset,
                    String::from_utf8(r.value.unwrap().to_vec()).unwrap(),
                )
            })
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let check = |got: &std::collections::BTreeMap<i64, String>| {
        assert_eq!(got.len() as i64, expected_next);
        for (base, n, prefix) in &acked {
            for k in 0..*n {
                assert_eq!(got[&(base + k as i64)], format!("{prefix}-r{k}"));
            }
        }
    };
    let p = fetch(&mut admin, "gc", 0, 0, 12).await;
    assert_eq!(p.high_watermark, expected_next);
    check(&read_all(decode_records(p.records.unwrap())));
    drop(admin);
    broker.shutdown().await;

    let broker = start_with(config).await;
    let addr: std::net::SocketAddr = broker.bootstrap().parse().unwrap();
    let mut client = Client::connect(addr).await;
    let p = fetch(&mut client, "gc", 0, 0, 12).await;
    assert_eq!(p.high_watermark, expected_next);
    check(&read_all(decode_records(p.records.unwrap())));
    broker.shutdown().await;
}
