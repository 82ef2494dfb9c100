//! The `klamm` binary as users run it: the ready line, flags, SIGTERM, and SIGKILL in the
//! middle of a produce stream losing nothing that was acknowledged.

use crate::common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, Record};

use crate::cluster::free_port;

/// Starts the binary and waits (bounded) for its `klamm ready on` line.
fn spawn(args: &[&str], envs: &[(&str, &str)]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_klamm"))
        .args(args)
        .envs(envs.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("klamm starts");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("klamm ready on ").nth(1) {
                let _ = tx.send(rest.trim().to_string());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("ready line within 20 s");
    (child, addr)
}

fn tn(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn produce(topic: &str, records: bytes::Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(tn(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])])
}

async fn fetch_all(c: &mut Client, topic: &str) -> (i64, Vec<Record>) {
    let mut out = Vec::new();
    let mut offset = 0;
    let mut hw;
    loop {
        let req = FetchRequest::default()
            .with_max_bytes(8 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(tn(topic))
                .with_partitions(vec![FetchPartition::default()
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(8 << 20)])]);
        let resp = c.send(&req, 12).await;
        let p = &resp.responses[0].partitions[0];
        assert_eq!(p.error_code, 0);
        hw = p.high_watermark;
        let recs = decode_records(p.records.clone().unwrap());
        let Some(last) = recs.last() else { break };
        offset = last.offset + 1;
        let have = out.len() as i64;
        out.extend(recs.into_iter().filter(|r| r.offset >= have));
        if offset >= hw {
            break;
        }
    }
    (hw, out)
}

#[tokio::test]
async fn sigkill_mid_stream_loses_no_acknowledged_message() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let port = free_port().to_string();
    let listen = format!("127.0.0.1:{port}");
    let (mut child, addr) = spawn(&["--listen", &listen, "--data-dir", data], &[]);
    let addr: SocketAddr = addr.parse().unwrap();
    let mut c = Client::connect(addr).await;

    // Producer task acknowledges batches while the broker is killed under it.
    let mut acked: Vec<Record> = Vec::new();
    let started = Instant::now();
    let mut killed = false;
    for i in 0i64.. {
        let recs: Vec<Record> = (0..5).map(|j| record(i * 5 + j, i)).collect();
        c.send_only(&produce("killed", batch(&recs, Compression::Lz4)), 9)
            .await;
        if i == 300 {
            child.kill().unwrap(); // SIGKILL
            killed = true;
        }
        match tokio::time::timeout(Duration::from_secs(5), c.recv_frame()).await {
            Ok(Some(mut frame)) => {
                use kafka_protocol::protocol::{Decodable, HeaderVersion};
                ResponseHeader::decode(&mut frame, ProduceResponse::header_version(9)).unwrap();
                let resp = ProduceResponse::decode(&mut frame, 9).unwrap();
                let p = &resp.responses[0].partition_responses[0];
                assert_eq!(p.error_code, 0);
                assert_eq!(p.base_offset, acked.len() as i64);
                acked.extend(recs);
            }
            _ => break,
        }
        assert!(started.elapsed() < Duration::from_secs(60), "bounded");
    }
    assert!(killed, "the broker was killed mid-stream");
    child.wait().unwrap();
    assert!(acked.len() >= 5 * 300);

    let (mut child, addr) = spawn(&["--listen", &listen, "--data-dir", data], &[]);
    let mut c = Client::connect(addr.parse().unwrap()).await;
    let (hw, got) = fetch_all(&mut c, "killed").await;
    assert!(
        hw >= acked.len() as i64,
        "every acknowledged offset is there"
    );
    for (i, want) in acked.iter().enumerate() {
        let g = &got[i];
        assert_eq!(g.offset, i as i64);
        assert_eq!(
            (&g.key, &g.value, &g.headers),
            (&want.key, &want.value, &want.headers)
        );
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn sigterm_stops_cleanly_and_flags_and_env_apply() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let (child, addr) = spawn(
        &[
            "--listen",
            &listen,
            "--advertise",
            "broker.example:19092",
            "--data-dir",
            data,
        ],
        &[
            ("KLAMM_NUM_PARTITIONS", "3"),
            ("KLAMM_AUTO_CREATE_TOPICS_ENABLE", "true"),
        ],
    );
    assert_eq!(addr, listen);
    let mut c = Client::connect(addr.parse().unwrap()).await;
    let req = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(tn("envy")))
        ]))
        .with_allow_auto_topic_creation(true);
    let md = c.send(&req, 9).await;
    assert_eq!(md.brokers[0].host.as_str(), "broker.example");
    assert_eq!(md.brokers[0].port, 19092);
    assert_eq!(
        md.topics[0].partitions.len(),
        3,
        "KLAMM_NUM_PARTITIONS applied"
    );
    let r = c
        .send(
            &produce("envy", batch(&[record(1, 1)], Compression::None)),
            9,
        )
        .await;
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);

    // SIGTERM: exits 0 promptly, the data is kept.
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let mut child = child;
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "stopped within 20 s");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");

    let (mut child, addr) = spawn(
        &[
            "--listen",
            &listen,
            "--data-dir",
            data,
            "--auto-create-topics-enable",
            "false",
        ],
        &[],
    );
    let mut c = Client::connect(addr.parse().unwrap()).await;
    let (hw, got) = fetch_all(&mut c, "envy").await;
    assert_eq!((hw, got.len()), (1, 1));
    let req = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(tn("other")))
        ]))
        .with_allow_auto_topic_creation(true);
    let md = c.send(&req, 9).await;
    assert_eq!(md.topics[0].error_code, 3, "auto-creation disabled by flag");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn bad_flags_are_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_klamm"))
        .args(["--num-partitions", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let out = Command::new(env!("CARGO_BIN_EXE_klamm"))
        .args(["--listen", "not-an-address"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn json_log_lines_for_collectors() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_klamm"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--ephemeral",
            "--log-format",
            "json",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("klamm starts");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut ready = None;
    while ready.is_none() && Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(1)) else {
            continue;
        };
        let v: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(
            v["timestamp"].is_string() && v["level"].is_string(),
            "{line}"
        );
        let msg = v["fields"]["message"].as_str().unwrap_or_default();
        if let Some(addr) = msg.strip_prefix("klamm ready on ") {
            ready = Some(addr.to_string());
        }
    }
    let addr = ready.expect("a JSON ready line");
    assert!(std::net::TcpStream::connect(&addr).is_ok());
    child.kill().unwrap();
    child.wait().unwrap();
}
