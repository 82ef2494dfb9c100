//! Shared test helpers: an in-process broker and a minimal Kafka client built on the
//! kafka-protocol crate, so tests speak the real wire protocol.
#![allow(dead_code)]

pub mod wire;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use klamm::{Broker, BrokerConfig, BrokerHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Starts a broker on a free loopback port with a temporary data dir.
pub async fn start() -> BrokerHandle {
    start_with(BrokerConfig::ephemeral()).await
}

pub async fn start_with(config: BrokerConfig) -> BrokerHandle {
    Broker::bind(config).await.expect("broker binds").spawn()
}

/// A config on a fixed data dir (for restart tests) and a free port.
pub fn config_in(dir: &std::path::Path) -> BrokerConfig {
    BrokerConfig {
        data_dir: dir.to_path_buf(),
        ephemeral: false,
        ..BrokerConfig::ephemeral()
    }
}

/// One client connection speaking the Kafka protocol.
pub struct Client {
    stream: TcpStream,
    correlation_id: i32,
    client_id: StrBytes,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            correlation_id: 0,
            client_id: StrBytes::from_static_str("klamm-tests"),
        }
    }

    /// A connection from the local address `from` (another loopback address than
    /// 127.0.0.1, for tests of per-IP rules).
    pub async fn connect_from(addr: SocketAddr, from: std::net::IpAddr) -> std::io::Result<Client> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(from, 0))?;
        let stream = socket.connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Client {
            stream,
            correlation_id: 0,
            client_id: StrBytes::from_static_str("klamm-tests"),
        })
    }

    /// A connection whose requests carry `client_id` (quotas are kept per client id).
    pub async fn connect_as(addr: SocketAddr, client_id: &str) -> Client {
        let mut c = Client::connect(addr).await;
        c.client_id = StrBytes::from_string(client_id.to_string());
        c
    }

    /// Sends `req` at `version` and returns the decoded response.
    pub async fn send<R: Request>(&mut self, req: &R, version: i16) -> R::Response {
        self.send_only(req, version).await;
        self.recv::<R>(version).await
    }

    /// Sends without reading a response (acks=0, pipelining).
    pub async fn send_only<R: Request>(&mut self, req: &R, version: i16) {
        self.correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, R::header_version(version))
            .unwrap();
        req.encode(&mut body, version).unwrap();
        self.send_raw_frame(&body).await;
    }

    pub async fn send_raw_frame(&mut self, body: &[u8]) {
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        frame.put_i32(body.len() as i32);
        frame.extend_from_slice(body);
        self.stream.write_all(&frame).await.unwrap();
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Reads one response frame; `None` if the broker closed the connection.
    pub async fn recv_frame(&mut self) -> Option<Bytes> {
        let mut len = [0u8; 4];
        match tokio::time::timeout(Duration::from_secs(20), self.stream.read_exact(&mut len)).await
        {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return None,
            Err(_) => panic!("no response within 20 s"),
        }
        let len = i32::from_be_bytes(len) as usize;
        let mut buf = vec![0u8; len];
        self.stream.read_exact(&mut buf).await.ok()?;
        Some(Bytes::from(buf))
    }

    pub async fn recv<R: Request>(&mut self, version: i16) -> R::Response {
        let mut frame = self.recv_frame().await.expect("broker answered");
        let header =
            ResponseHeader::decode(&mut frame, R::Response::header_version(version)).unwrap();
        assert_eq!(header.correlation_id, self.correlation_id);
        R::Response::decode(&mut frame, version).unwrap()
    }

    /// True when the broker closes this connection within 5 s, whatever it writes first
    /// (a TLS alert, say).
    pub async fn closes(&mut self) -> bool {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let mut buf = [0u8; 4096];
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }

    /// True when the broker has closed this connection (read returns EOF within 5 s).
    pub async fn is_closed(&mut self) -> bool {
        let mut buf = [0u8; 1];
        matches!(
            tokio::time::timeout(Duration::from_secs(5), self.stream.read(&mut buf)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}

/// A test record with a key, value and headers derived from `i`.
pub fn record(i: i64, ts: i64) -> Record {
    let mut headers = kafka_protocol::indexmap::IndexMap::new();
    headers.insert(
        StrBytes::from_string(format!("h{i}")),
        Some(Bytes::from(vec![i as u8, 0, 255])),
    );
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: ts,
        key: if i % 3 == 0 {
            None
        } else {
            Some(Bytes::from(format!("key-{i}")))
        },
        value: if i % 5 == 4 {
            None
        } else {
            Some(Bytes::from(format!("value-{i}-\u{0}\u{1}binary")))
        },
        headers,
    }
}

/// Encodes records as one v2 batch with relative offsets 0..n.
pub fn batch(records: &[Record], compression: Compression) -> Bytes {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| Record {
            offset: i as i64,
            // The encoder starts a new batch unless offset - sequence stays constant; -1 first
            // gives the non-idempotent base sequence.
            sequence: i as i32 - 1,
            ..r.clone()
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .unwrap();
    buf.freeze()
}

/// Decodes every record of every batch in a fetch response's record set.
pub fn decode_records(mut records: Bytes) -> Vec<Record> {
    let mut out = Vec::new();
    while records.has_remaining() {
        let set = RecordBatchDecoder::decode(&mut records).expect("valid batches");
        out.extend(set.records);
    }
    out
}

pub fn api_key_of<R: Request>() -> ApiKey {
    ApiKey::try_from(R::KEY).unwrap()
}

/// Polls `cond` until it holds; panics naming `what` after 20 s. The positive signal tests
/// wait on instead of concluding anything from a fixed sleep.
#[allow(dead_code)]
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until a whole background pass (the cleaner's or retention's, as `passes` counts
/// them) has run after this call: the count must grow by two, since the pass running at the
/// call may have started before it.
#[allow(dead_code)]
pub async fn wait_for_pass(
    broker: &klamm::BrokerHandle,
    passes: impl Fn(&klamm::metrics::Metrics) -> u64,
) {
    let ctx = broker.context().expect("broker running");
    let start = passes(&ctx.metrics);
    wait_until("a background pass", || passes(&ctx.metrics) >= start + 2).await;
}

/// Waits until `n` requests of `api` (Kafka's name) are being handled, e.g. parked in a long
/// poll.
#[allow(dead_code)]
pub async fn wait_for_in_flight(broker: &klamm::BrokerHandle, api: &'static str, n: i64) {
    let ctx = broker.context().expect("broker running");
    wait_until(api, || ctx.metrics.in_flight(api) >= n).await;
}
