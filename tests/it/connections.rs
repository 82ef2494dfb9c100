//! Connection limits: an abandoned long poll frees its slot at once, idle connections are
//! closed after `connections.max.idle.ms`, and `queued.max.request.bytes` holds back reading
//! without losing requests.

use crate::common;

use std::time::Duration;

use common::wire::{create_topic, fetch_req};
use common::*;
use kafka_protocol::messages::*;
use klamm::BrokerConfig;
use uuid::Uuid;

async fn api_versions_answered(c: &mut Client) -> bool {
    let req = ApiVersionsRequest::default();
    c.send(&req, 2).await.error_code == 0
}

/// Measured before: a client that sent a Fetch with a long max.wait.ms and closed its socket
/// kept its `--max-connections` slot (the socket in CLOSE_WAIT) until the wait ran out, so
/// abandoned long polls could lock every new client out.
#[tokio::test]
async fn an_abandoned_long_poll_frees_its_connection_slot_at_once() {
    let config = BrokerConfig {
        max_connections: 1,
        ..BrokerConfig::ephemeral()
    };
    let broker = start_with(config).await;
    let mut c = Client::connect(broker.addr()).await;
    create_topic(&mut c, "lp", 1).await;
    let poll = fetch_req("lp", Uuid::nil(), 0, 0)
        .with_max_wait_ms(120_000)
        .with_min_bytes(1);
    c.send_only(&poll, 12).await;
    drop(c);
    // The only slot must be free long before the 120 s poll would end; recv_frame gives up
    // (and fails the test) after 20 s.
    let mut next = Client::connect(broker.addr()).await;
    assert!(api_versions_answered(&mut next).await);
    broker.shutdown().await;
}

#[tokio::test]
async fn idle_connections_are_closed_after_connections_max_idle_ms() {
    let config = BrokerConfig {
        connections_max_idle_ms: 300,
        ..BrokerConfig::ephemeral()
    };
    let broker = start_with(config).await;
    let mut busy = Client::connect(broker.addr()).await;
    let mut idle = Client::connect(broker.addr()).await;
    // A connection that keeps asking stays open well past the idle time.
    for _ in 0..12 {
        assert!(api_versions_answered(&mut busy).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The silent one was closed by the broker: its read ends (is_closed waits up to 5 s).
    assert!(idle.is_closed().await, "idle connection still open");
    assert!(api_versions_answered(&mut busy).await);
    broker.shutdown().await;
}

/// With `queued.max.request.bytes` smaller than two frames in flight, connections take turns
/// instead of failing: every request is still answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_max_request_bytes_makes_large_requests_wait_not_fail() {
    let config = BrokerConfig {
        queued_max_request_bytes: 64 * 1024,
        ..BrokerConfig::ephemeral()
    };
    let broker = start_with(config).await;
    let mut admin = Client::connect(broker.addr()).await;
    create_topic(&mut admin, "q", 1).await;
    let addr = broker.addr();
    let mut tasks = Vec::new();
    for i in 0..8 {
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await;
            // ~100 KB per batch: larger than the whole pool, so each takes it all in turn.
            let value = vec![i as u8; 100_000];
            let mut r = record(i, 1_700_000_000_000);
            r.value = Some(bytes::Bytes::from(value));
            let b = batch(&[r], kafka_protocol::records::Compression::None);
            let (err, _) = common::wire::produce(&mut c, "q", 0, b, 9).await;
            err
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 0);
    }
    let end = common::wire::list_offset(&mut admin, "q", 0, -1, 7).await.1;
    assert_eq!(end, 8);
    broker.shutdown().await;
}

/// Measured before (reliability battery): the pool was taken by a frame's announced size as
/// soon as its length prefix arrived, so six connections that announced 100 MiB and sent
/// nothing more held all 512 MiB, and no request larger than one read was ever read again.
/// Bytes are now counted as they arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announced_but_unsent_frames_do_not_hold_the_request_pool() {
    let config = BrokerConfig {
        queued_max_request_bytes: 1 << 20,
        ..BrokerConfig::ephemeral()
    };
    let broker = start_with(config).await;
    let mut stalled = Vec::new();
    for _ in 0..6 {
        let mut s = Client::connect(broker.addr()).await;
        s.send_raw(&(100i32 << 20).to_be_bytes()).await;
        stalled.push(s);
    }
    let mut c = Client::connect(broker.addr()).await;
    create_topic(&mut c, "big", 1).await;
    let mut r = record(1, 1_700_000_000_000);
    r.value = Some(bytes::Bytes::from(vec![9u8; 300_000]));
    let b = batch(&[r], kafka_protocol::records::Compression::None);
    // recv_frame fails the test after 20 s without an answer.
    assert_eq!(common::wire::produce(&mut c, "big", 0, b, 9).await.0, 0);
    drop(stalled);
    broker.shutdown().await;
}
