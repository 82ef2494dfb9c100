//! Fetch sessions (KIP-227) on the wire: the (session id, epoch) table, incremental fetches
//! that carry only what changed, forgotten partitions, long polls over a session, a full
//! cache, eviction, and ACLs applied to a session's partitions on every request.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::*;
use kafka_protocol::records::{Compression, Record};
use kafka_protocol::ResponseError;
use klamm::BrokerConfig;
use uuid::Uuid;

use crate::common::wire::{create_topic, produce, tn};
use crate::common::*;

const NOT_FOUND: i16 = 70; // FETCH_SESSION_ID_NOT_FOUND
const INVALID_EPOCH: i16 = 71; // INVALID_FETCH_SESSION_EPOCH
const TOPIC_ID_ERROR: i16 = 106; // FETCH_SESSION_TOPIC_ID_ERROR

#[test]
fn error_codes_are_kafkas() {
    assert_eq!(ResponseError::FetchSessionIdNotFound.code(), NOT_FOUND);
    assert_eq!(
        ResponseError::InvalidFetchSessionEpoch.code(),
        INVALID_EPOCH
    );
    assert_eq!(
        ResponseError::FetchSessionTopicIdError.code(),
        TOPIC_ID_ERROR
    );
}

/// A topic of the request: its name and id (the version decides which goes on the wire) and
/// (partition, fetch offset) pairs.
fn topic(name: &str, id: Uuid, parts: &[(i32, i64)]) -> FetchTopic {
    FetchTopic::default()
        .with_topic(tn(name))
        .with_topic_id(id)
        .with_partitions(
            parts
                .iter()
                .map(|&(p, offset)| {
                    FetchPartition::default()
                        .with_partition(p)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(1 << 20)
                })
                .collect(),
        )
}

fn forget(name: &str, id: Uuid, parts: &[i32]) -> ForgottenTopic {
    ForgottenTopic::default()
        .with_topic(tn(name))
        .with_topic_id(id)
        .with_partitions(parts.to_vec())
}

/// A fetch in session `id` at `epoch` that returns at once.
fn req(id: i32, epoch: i32, topics: Vec<FetchTopic>) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(50 << 20)
        .with_session_id(id)
        .with_session_epoch(epoch)
        .with_topics(topics)
}

/// (partition, error, high watermark, records) of every partition answered, in order.
fn answered(r: &FetchResponse) -> Vec<(i32, i16, i64, Bytes)> {
    r.responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| {
            (
                p.partition_index,
                p.error_code,
                p.high_watermark,
                p.records.clone().unwrap_or_default(),
            )
        })
        .collect()
}

fn partitions_of(r: &FetchResponse) -> Vec<i32> {
    answered(r).into_iter().map(|a| a.0).collect()
}

/// The top-level error answer of a session error: no partitions, Kafka's shape.
fn assert_session_error(r: &FetchResponse, code: i16, session_id: i32, what: &str) {
    assert_eq!(r.error_code, code, "{what}");
    assert_eq!(r.session_id, session_id, "{what}: session id");
    assert_eq!(r.throttle_time_ms, 0, "{what}");
    assert!(r.responses.is_empty(), "{what}: no partitions");
}

fn records(n: i64, tag: &str) -> Vec<Record> {
    (0..n)
        .map(|i| {
            let mut r = record(i, 1_700_000_000_000 + i);
            r.value = Some(Bytes::from(format!("{tag}-{i}")));
            r
        })
        .collect()
}

/// `produced` as the broker stores and serves it: base offset `base`, leader epoch 0.
fn as_stored(produced: &Bytes, base: i64) -> Bytes {
    let mut b = produced.to_vec();
    b[0..8].copy_from_slice(&base.to_be_bytes());
    b[12..16].copy_from_slice(&0i32.to_be_bytes());
    b.into()
}

async fn setup(c: &mut Client, name: &str, partitions: i32) -> Uuid {
    let created = create_topic(c, name, partitions).await;
    assert_eq!(created.topics[0].error_code, 0);
    created.topics[0].topic_id
}

/// KIP-227's table, at versions that key sessions by name (7, 12) and by topic id (13+).
#[tokio::test]
async fn session_id_and_epoch_follow_kip227() {
    let broker = start().await;
    let mut c = Client::connect(broker.addr()).await;
    let id = setup(&mut c, "table", 1).await;
    let recs = records(3, "t");
    produce(&mut c, "table", 0, batch(&recs, Compression::None), 9).await;
    let full = || vec![topic("table", id, &[(0, 0)])];
    for version in [7, 12, 13, 16, 18] {
        let what = |s: &str| format!("v{version}: {s}");
        // Epoch -1, no session: served in full, no session created.
        let r = c.send(&req(0, -1, full()), version).await;
        assert_eq!((r.error_code, r.session_id), (0, 0), "{}", what("(0, -1)"));
        assert_eq!(decode_records(answered(&r)[0].3.clone()).len(), 3);
        // Epoch 0: served in full, a session created.
        let r = c.send(&req(0, 0, full()), version).await;
        assert_eq!(r.error_code, 0);
        let s1 = r.session_id;
        assert!(s1 > 0, "{}", what("(0, 0) opens a session"));
        assert_eq!(decode_records(answered(&r)[0].3.clone()).len(), 3);
        // Epoch 1 continues it, the offset moved past what was read: nothing is answered.
        let r = c
            .send(&req(s1, 1, vec![topic("table", id, &[(0, 3)])]), version)
            .await;
        assert_eq!((r.error_code, r.session_id), (0, s1), "{}", what("(s1, 1)"));
        assert!(r.responses.is_empty(), "{}", what("nothing new"));
        // Epoch 1 again: used up.
        let r = c.send(&req(s1, 1, vec![]), version).await;
        assert_session_error(&r, INVALID_EPOCH, 0, &what("(s1, 1) twice"));
        // A wrong epoch changes nothing: 2 is still next.
        let r = c.send(&req(s1, 2, vec![]), version).await;
        assert_eq!((r.error_code, r.session_id), (0, s1), "{}", what("(s1, 2)"));
        // An id nobody has, and id 0 with an incremental epoch.
        for (bad, epoch) in [
            (s1 ^ 1, 1),
            (0, 1),
            (0, 5),
            (-1, 1),
            (i32::MAX, 3),
            (s1, -2),
        ] {
            let r = c.send(&req(bad, epoch, full()), version).await;
            let code = if bad == s1 { INVALID_EPOCH } else { NOT_FOUND };
            assert_session_error(&r, code, 0, &what(&format!("({bad}, {epoch})")));
        }
        // Epoch 0 with an id closes that session and opens another.
        let r = c.send(&req(s1, 0, full()), version).await;
        let s2 = r.session_id;
        assert!(
            s2 > 0 && s2 != s1,
            "{}",
            what("(s1, 0) opens a new session")
        );
        assert_eq!(decode_records(answered(&r)[0].3.clone()).len(), 3);
        let r = c.send(&req(s1, 3, vec![]), version).await;
        assert_session_error(&r, NOT_FOUND, 0, &what("s1 was closed"));
        // Epoch -1 with an id closes it and is served sessionless.
        let r = c.send(&req(s2, -1, full()), version).await;
        assert_eq!((r.error_code, r.session_id), (0, 0), "{}", what("(s2, -1)"));
        assert_eq!(decode_records(answered(&r)[0].3.clone()).len(), 3);
        let r = c.send(&req(s2, 1, vec![]), version).await;
        assert_session_error(&r, NOT_FOUND, 0, &what("s2 was closed"));
    }
    assert_eq!(broker.context().unwrap().fetch_sessions.len(), 0);
}

/// A session opened at v13+ (topic ids) cannot be continued at v12 (names), and the reverse.
#[tokio::test]
async fn a_version_keying_topics_the_other_way_is_fetch_session_topic_id_error() {
    let broker = start().await;
    let mut c = Client::connect(broker.addr()).await;
    let id = setup(&mut c, "keys", 1).await;
    for (open, next) in [(13, 12), (16, 7), (12, 13), (7, 18)] {
        let r = c
            .send(&req(0, 0, vec![topic("keys", id, &[(0, 0)])]), open)
            .await;
        let s = r.session_id;
        assert!(s > 0);
        let r = c.send(&req(s, 1, vec![]), next).await;
        assert_session_error(&r, TOPIC_ID_ERROR, 0, &format!("v{open} then v{next}"));
        // The session is still there, at the same epoch.
        let r = c.send(&req(s, 1, vec![]), open).await;
        assert_eq!((r.error_code, r.session_id), (0, s));
    }
}

/// An incremental fetch answers only partitions with something new: first the records of
/// all, then nothing, then exactly the new records of the one partition written to, and a
/// partition whose log start moved.
#[tokio::test]
async fn incremental_fetches_return_only_what_changed() {
    let broker = start().await;
    let mut c = Client::connect(broker.addr()).await;
    for version in [12, 16] {
        let name = format!("inc-{version}");
        let (name, id) = (name.as_str(), setup(&mut c, &name, 4).await);
        let mut produced = Vec::new();
        for p in 0..4 {
            let b = batch(&records(2 + p as i64, &format!("p{p}")), Compression::None);
            assert_eq!(produce(&mut c, name, p, b.clone(), 9).await, (0, 0));
            produced.push(b);
        }
        let all = [(0, 0), (1, 0), (2, 0), (3, 0)];
        let r = c
            .send(&req(0, 0, vec![topic(name, id, &all)]), version)
            .await;
        let s = r.session_id;
        assert!(s > 0);
        let got = answered(&r);
        assert_eq!(got.len(), 4);
        let mut ends = Vec::new();
        for (p, error, hw, recs) in &got {
            assert_eq!(*error, 0);
            assert_eq!(
                recs,
                &as_stored(&produced[*p as usize], 0),
                "p{p} byte for byte"
            );
            ends.push(*hw);
        }
        // The client moves its offsets to the ends: the partitions are sent (their offsets
        // changed) but have nothing new to say.
        let at_end: Vec<(i32, i64)> = (0..4).map(|p| (p, ends[p as usize])).collect();
        let r = c
            .send(&req(s, 1, vec![topic(name, id, &at_end)]), version)
            .await;
        assert_eq!(r.session_id, s);
        assert!(r.responses.is_empty(), "v{version}: {:?}", answered(&r));
        // Nothing named at all: still nothing.
        let r = c.send(&req(s, 2, vec![]), version).await;
        assert!(r.responses.is_empty());
        // New records on partition 2 only.
        let more = batch(&records(3, &format!("more-v{version}")), Compression::None);
        let base = ends[2];
        assert_eq!(produce(&mut c, name, 2, more.clone(), 9).await, (0, base));
        let r = c.send(&req(s, 3, vec![]), version).await;
        let got = answered(&r);
        assert_eq!(got.len(), 1, "only partition 2");
        assert_eq!(got[0].0, 2);
        assert_eq!(got[0].2, base + 3, "its new high watermark");
        assert_eq!(
            got[0].3,
            as_stored(&more, base),
            "the new batch, byte for byte"
        );
        // The records are the ones produced, at their offsets.
        let decoded = decode_records(got[0].3.clone());
        assert_eq!(decoded.len(), 3);
        for (i, d) in decoded.iter().enumerate() {
            assert_eq!(d.offset, base + i as i64);
            assert_eq!(
                d.value.as_deref(),
                Some(format!("more-v{version}-{i}").as_bytes())
            );
        }
        // The client has read them: at its new offset there is nothing new.
        let r = c
            .send(&req(s, 4, vec![topic(name, id, &[(2, base + 3)])]), version)
            .await;
        assert!(r.responses.is_empty(), "{:?}", answered(&r));
        ends[2] = base + 3;
        // A moved log start is news even without records.
        let deleted = c
            .send(
                &DeleteRecordsRequest::default()
                    .with_timeout_ms(5000)
                    .with_topics(vec![delete_records_request::DeleteRecordsTopic::default()
                        .with_name(tn(name))
                        .with_partitions(vec![
                            delete_records_request::DeleteRecordsPartition::default()
                                .with_partition_index(1)
                                .with_offset(1),
                        ])]),
                2,
            )
            .await;
        assert_eq!(deleted.topics[0].partitions[0].error_code, 0);
        let r = c.send(&req(s, 5, vec![]), version).await;
        let got = answered(&r);
        assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), vec![1]);
        assert!(got[0].3.is_empty(), "no records, only the log start offset");
        let p = &r.responses[0].partitions[0];
        assert_eq!(p.log_start_offset, 1);
        // Close the session.
        let r = c.send(&req(s, -1, vec![]), version).await;
        assert_eq!((r.error_code, r.session_id), (0, 0));
    }
}

/// A partition added to a session by an incremental fetch is answered at once and then read
/// with the session; forgotten partitions are no longer answered.
#[tokio::test]
async fn added_partitions_join_and_forgotten_ones_leave_the_session() {
    let broker = start().await;
    let mut c = Client::connect(broker.addr()).await;
    for version in [12, 18] {
        let (an, bn) = (format!("a{version}"), format!("b{version}"));
        let a = setup(&mut c, &an, 2).await;
        let b = setup(&mut c, &bn, 1).await;
        let (an, bn) = (an.as_str(), bn.as_str());
        let r = c
            .send(&req(0, 0, vec![topic(an, a, &[(0, 0), (1, 0)])]), version)
            .await;
        let s = r.session_id;
        assert_eq!(partitions_of(&r), vec![0, 1]);
        // Add b-0: answered though empty (new to the session).
        let r = c
            .send(&req(s, 1, vec![topic(bn, b, &[(0, 0)])]), version)
            .await;
        assert_eq!(r.responses.len(), 1);
        assert_eq!(r.responses[0].partitions[0].partition_index, 0);
        if version >= 13 {
            assert_eq!(r.responses[0].topic_id, b);
        } else {
            assert_eq!(r.responses[0].topic.0.as_str(), bn);
        }
        // Forget a-0; then every partition gets a record: a-0 is not answered.
        let mut forget_req = req(s, 2, vec![]);
        forget_req.forgotten_topics_data = vec![forget(an, a, &[0])];
        let r = c.send(&forget_req, version).await;
        assert!(r.responses.is_empty());
        for (t, p) in [(an, 0), (an, 1), (bn, 0)] {
            let (code, _) =
                produce(&mut c, t, p, batch(&records(1, t), Compression::None), 9).await;
            assert_eq!(code, 0);
        }
        let r = c.send(&req(s, 3, vec![]), version).await;
        let mut got: Vec<(String, i32)> = r
            .responses
            .iter()
            .flat_map(|t| {
                let name = if t.topic_id == a || t.topic.0.as_str() == an {
                    "a"
                } else {
                    "b"
                };
                t.partitions
                    .iter()
                    .map(move |p| (name.to_string(), p.partition_index))
            })
            .collect();
        got.sort();
        assert_eq!(got, vec![("a".to_string(), 1), ("b".to_string(), 0)]);
        // Forgetting the rest closes the session: served sessionless, session id 0.
        let mut last = req(s, 4, vec![]);
        last.forgotten_topics_data = vec![forget(an, a, &[1]), forget(bn, b, &[0])];
        let r = c.send(&last, version).await;
        assert_eq!((r.error_code, r.session_id), (0, 0));
        assert!(r.responses.is_empty());
        let r = c.send(&req(s, 5, vec![]), version).await;
        assert_session_error(&r, NOT_FOUND, 0, "closed when emptied");
    }
}

/// An incremental fetch that names no partition still long-polls every partition of its
/// session, and wakes when any of them is written to.
#[tokio::test]
async fn an_incremental_long_poll_wakes_on_any_session_partition() {
    let broker = start().await;
    let mut c = Client::connect(broker.addr()).await;
    let id = setup(&mut c, "poll", 3).await;
    let r = c
        .send(
            &req(0, 0, vec![topic("poll", id, &[(0, 0), (1, 0), (2, 0)])]),
            16,
        )
        .await;
    let s = r.session_id;
    assert!(s > 0);
    // Waits (nothing new), and is not woken by nothing.
    let mut waiting = req(s, 1, vec![]);
    waiting.max_wait_ms = 30_000;
    waiting.min_bytes = 1;
    let started = std::time::Instant::now();
    let addr = broker.addr();
    let producer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut p = Client::connect(addr).await;
        produce(
            &mut p,
            "poll",
            2,
            batch(&records(4, "late"), Compression::None),
            9,
        )
        .await
    });
    let r = c.send(&waiting, 16).await;
    let took = started.elapsed();
    assert_eq!(producer.await.unwrap(), (0, 0));
    assert!(took >= Duration::from_millis(250), "it waited: {took:?}");
    assert!(
        took < Duration::from_secs(10),
        "woken by the append: {took:?}"
    );
    let got = answered(&r);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, 2);
    assert_eq!(decode_records(got[0].3.clone()).len(), 4);
    // With nothing new, the long poll runs to max_wait_ms and answers nothing.
    let mut idle = req(s, 2, vec![topic("poll", id, &[(2, 4)])]);
    idle.max_wait_ms = 300;
    idle.min_bytes = 1;
    let started = std::time::Instant::now();
    let r = c.send(&idle, 16).await;
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert_eq!((r.error_code, r.session_id), (0, s));
    assert!(r.responses.is_empty());
}

/// Slots 8 make one session per shard: the ninth full fetch finds its shard full and is
/// served in full with session id 0, as are sessionless fetches; slots 0 turn sessions off.
#[tokio::test]
async fn a_full_cache_answers_session_id_0_and_still_serves() {
    for (slots, sessions) in [(8, 8), (0, 0)] {
        let broker = start_with(BrokerConfig {
            max_incremental_fetch_session_cache_slots: slots,
            ..BrokerConfig::ephemeral()
        })
        .await;
        let mut c = Client::connect(broker.addr()).await;
        let id = setup(&mut c, "full", 1).await;
        let recs = records(2, "f");
        produce(&mut c, "full", 0, batch(&recs, Compression::None), 9).await;
        let mut ids = Vec::new();
        for _ in 0..sessions {
            let r = c
                .send(&req(0, 0, vec![topic("full", id, &[(0, 0)])]), 16)
                .await;
            assert!(r.session_id > 0);
            ids.push(r.session_id);
        }
        for epoch in [0, -1] {
            let r = c
                .send(&req(0, epoch, vec![topic("full", id, &[(0, 0)])]), 16)
                .await;
            assert_eq!(
                (r.error_code, r.session_id),
                (0, 0),
                "slots {slots}, epoch {epoch}"
            );
            assert_eq!(decode_records(answered(&r)[0].3.clone()).len(), 2);
        }
        let ctx = broker.context().unwrap();
        assert_eq!(ctx.fetch_sessions.len(), sessions);
        assert_eq!(ctx.metrics.fetch_session_evictions.get(), 0);
        // The sessions still work.
        for s in ids {
            let r = c.send(&req(s, 1, vec![]), 16).await;
            assert_eq!((r.error_code, r.session_id), (0, s));
        }
    }
}

/// A session idle past the eviction time gives its slot to a newcomer, and its client is
/// told FETCH_SESSION_ID_NOT_FOUND.
#[tokio::test]
async fn an_evicted_session_is_fetch_session_id_not_found() {
    let broker = start_with(BrokerConfig {
        max_incremental_fetch_session_cache_slots: 8,
        min_incremental_fetch_session_eviction_ms: 200,
        ..BrokerConfig::ephemeral()
    })
    .await;
    let mut c = Client::connect(broker.addr()).await;
    let id = setup(&mut c, "evict", 1).await;
    let open = || req(0, 0, vec![topic("evict", id, &[(0, 0)])]);
    let mut old = Vec::new();
    for _ in 0..8 {
        old.push(c.send(&open(), 16).await.session_id);
    }
    // Young: nothing may be evicted yet.
    assert_eq!(c.send(&open(), 16).await.session_id, 0);
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Keep one in use; the other seven go stale.
    let kept = old[1];
    let r = c.send(&req(kept, 1, vec![]), 16).await;
    assert_eq!(r.session_id, kept);
    let mut new = Vec::new();
    for _ in 0..8 {
        new.push(c.send(&open(), 16).await.session_id);
    }
    let ctx = broker.context().unwrap();
    // Each newcomer evicted the stale session of its shard, except in the shard of the one
    // kept in use: there the newcomer found no room.
    assert_eq!(ctx.metrics.fetch_session_evictions.get(), 7);
    assert_eq!(new.iter().filter(|s| **s == 0).count(), 1);
    assert_eq!(ctx.fetch_sessions.len(), 8);
    for s in old {
        let r = c
            .send(&req(s, if s == kept { 2 } else { 1 }, vec![]), 16)
            .await;
        if s == kept {
            assert_eq!((r.error_code, r.session_id), (0, kept));
        } else {
            assert_session_error(&r, NOT_FOUND, 0, "evicted");
        }
    }
}

/// Unknown topics and partitions stay in the session and are answered with their error on
/// every fetch, without ending a long poll.
#[tokio::test]
async fn unknown_partitions_are_answered_every_time() {
    let broker = start().await;
    let mut c = Client::connect(broker.addr()).await;
    let id = setup(&mut c, "known", 1).await;
    let ghost = Uuid::from_u128(0xfeed);
    let r = c
        .send(
            &req(
                0,
                0,
                vec![
                    topic("known", id, &[(0, 0), (5, 0)]),
                    topic("ghost", ghost, &[(0, 0)]),
                ],
            ),
            16,
        )
        .await;
    let s = r.session_id;
    let codes: Vec<(i32, i16)> = answered(&r).iter().map(|a| (a.0, a.1)).collect();
    assert_eq!(
        codes,
        vec![(0, 0), (5, 3), (0, 100)],
        "known, UNKNOWN_TOPIC_OR_PARTITION, UNKNOWN_TOPIC_ID"
    );
    let mut waiting = req(s, 1, vec![]);
    waiting.max_wait_ms = 300;
    waiting.min_bytes = 1;
    let started = std::time::Instant::now();
    let r = c.send(&waiting, 16).await;
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "errors do not end the wait"
    );
    let codes: Vec<(i32, i16)> = answered(&r).iter().map(|a| (a.0, a.1)).collect();
    assert_eq!(codes, vec![(5, 3), (0, 100)]);
}

fn secured(dir: &std::path::Path) -> BrokerConfig {
    BrokerConfig {
        listeners: Some("PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0".into()),
        bootstrap_users: Some("admin:admin-pw,alice:alice-pw,bob:bob-pw".into()),
        authorizer: true,
        super_users: Some("User:admin".into()),
        connection_failed_authentication_delay_ms: 10,
        ..config_in(dir)
    }
}

async fn login(broker: &klamm::BrokerHandle, user: &str) -> Client {
    let s = |v: &str| kafka_protocol::protocol::StrBytes::from_string(v.into());
    let mut c = Client::connect(broker.listener_addr("SASL_PLAINTEXT").unwrap()).await;
    let hs = c
        .send(
            &SaslHandshakeRequest::default().with_mechanism(s("PLAIN")),
            1,
        )
        .await;
    assert_eq!(hs.error_code, 0);
    let a = c
        .send(
            &SaslAuthenticateRequest::default()
                .with_auth_bytes(format!("\0{user}\0{user}-pw").into_bytes().into()),
            2,
        )
        .await;
    assert_eq!(a.error_code, 0, "{user} logs in");
    c
}

/// READ on `topic` for `user`: created, or deleted.
async fn read_acl(admin: &mut Client, topic: &str, user: &str, grant: bool) {
    let s = |v: &str| kafka_protocol::protocol::StrBytes::from_string(v.into());
    if grant {
        let r = admin
            .send(
                &CreateAclsRequest::default().with_creations(vec![
                    create_acls_request::AclCreation::default()
                        .with_resource_type(2)
                        .with_resource_name(s(topic))
                        .with_resource_pattern_type(3)
                        .with_principal(s(&format!("User:{user}")))
                        .with_host(s("*"))
                        .with_operation(3)
                        .with_permission_type(3),
                ]),
                3,
            )
            .await;
        assert_eq!(r.results[0].error_code, 0);
    } else {
        let r = admin
            .send(
                &DeleteAclsRequest::default().with_filters(vec![
                    delete_acls_request::DeleteAclsFilter::default()
                        .with_resource_type_filter(2)
                        .with_resource_name_filter(Some(s(topic)))
                        .with_pattern_type_filter(3)
                        .with_principal_filter(Some(s(&format!("User:{user}"))))
                        .with_host_filter(None)
                        .with_operation(3)
                        .with_permission_type(3),
                ]),
                3,
            )
            .await;
        assert_eq!(r.filter_results[0].matching_acls.len(), 1);
    }
}

/// Every partition a session reads is authorized on every request, with the principal of
/// that request: refused partitions are answered TOPIC_AUTHORIZATION_FAILED and stay in the
/// session (as in Kafka), READ taken away applies to the next incremental fetch, READ given
/// makes the partition readable, and another user continuing the session (Kafka does not tie
/// sessions to principals) reads only what that user may.
#[tokio::test]
async fn a_session_reads_only_what_each_request_may() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_with(secured(dir.path())).await;
    let mut admin = login(&broker, "admin").await;
    let mut alice = login(&broker, "alice").await;
    for version in [12, 16] {
        let (on, sn) = (format!("open{version}"), format!("secret{version}"));
        let (on, sn) = (on.as_str(), sn.as_str());
        let open = setup(&mut admin, on, 1).await;
        let secret = setup(&mut admin, sn, 1).await;
        for t in [on, sn] {
            let b = batch(&records(2, "r"), Compression::None);
            assert_eq!(produce(&mut admin, t, 0, b, 9).await.0, 0);
        }
        read_acl(&mut admin, on, "alice", true).await;
        let both = || vec![topic(on, open, &[(0, 0)]), topic(sn, secret, &[(0, 0)])];
        let r = alice.send(&req(0, 0, both()), version).await;
        let s = r.session_id;
        assert!(s > 0, "a session is opened, refused partitions included");
        let got = answered(&r);
        assert_eq!((got[0].1, decode_records(got[0].3.clone()).len()), (0, 2));
        assert_eq!(
            (got[1].1, got[1].3.len()),
            (29, 0),
            "secret: TOPIC_AUTHORIZATION_FAILED"
        );
        // Read to its end, nothing new on "open"; "secret" is refused again (an error is
        // always answered).
        let r = alice
            .send(&req(s, 1, vec![topic(on, open, &[(0, 2)])]), version)
            .await;
        let got = answered(&r);
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].1, got[0].3.len()), (29, 0));
        // Bob continues alice's session: he may read neither.
        let mut bob = login(&broker, "bob").await;
        let r = bob.send(&req(s, 2, vec![]), version).await;
        assert_eq!(r.session_id, s);
        let mut codes: Vec<i16> = answered(&r).iter().map(|a| a.1).collect();
        codes.sort();
        assert_eq!(
            codes,
            vec![29, 29],
            "bob reads nothing through alice's session"
        );
        // READ on "secret" for alice: it is read from where the session left it.
        read_acl(&mut admin, sn, "alice", true).await;
        let r = alice.send(&req(s, 3, vec![]), version).await;
        let got = answered(&r);
        let secret_part = got
            .iter()
            .find(|g| g.1 == 0 && !g.3.is_empty())
            .expect("secret read");
        assert_eq!(
            decode_records(secret_part.3.clone())[0].value.as_deref(),
            Some(&b"r-0"[..])
        );
        // READ on "open" taken away, new records there: refused, not read.
        read_acl(&mut admin, on, "alice", false).await;
        let b = batch(&records(1, "after"), Compression::None);
        assert_eq!(produce(&mut admin, on, 0, b, 9).await.0, 0);
        let r = alice
            .send(&req(s, 4, vec![topic(sn, secret, &[(0, 2)])]), version)
            .await;
        let got = answered(&r);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!((got[0].1, got[0].3.len()), (29, 0));
        let r = alice.send(&req(s, -1, vec![]), version).await;
        assert_eq!((r.error_code, r.session_id), (0, 0));
    }
}

/// Sessions show in the metrics: held sessions and partitions, and fetches by context.
#[tokio::test]
async fn sessions_show_in_the_metrics() {
    let broker = start().await;
    let mut c = Client::connect(broker.addr()).await;
    let id = setup(&mut c, "m", 3).await;
    let r = c
        .send(
            &req(0, 0, vec![topic("m", id, &[(0, 0), (1, 0), (2, 0)])]),
            16,
        )
        .await;
    let s = r.session_id;
    c.send(&req(s, 1, vec![]), 16).await;
    c.send(&req(s, 2, vec![]), 16).await;
    c.send(&req(0, -1, vec![topic("m", id, &[(0, 0)])]), 16)
        .await;
    c.send(&req(12345, 1, vec![]), 16).await;
    let ctx = broker.context().unwrap();
    let text = klamm::metrics::render(
        &ctx.metrics,
        &ctx.metadata,
        &ctx.groups,
        &ctx.fetch_sessions,
    );
    for line in [
        "klamm_fetch_sessions 1",
        "klamm_fetch_session_partitions_cached 3",
        "klamm_fetch_requests_total{context=\"full\"} 1",
        "klamm_fetch_requests_total{context=\"incremental\"} 2",
        "klamm_fetch_requests_total{context=\"sessionless\"} 1",
        "klamm_fetch_requests_total{context=\"session_error\"} 1",
        "klamm_fetch_session_evictions_total 0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
    assert!(text.contains("klamm_request_bytes_total{api=\"Fetch\"}"));
}
