//! Client quotas over the wire: DescribeClientQuotas and AlterClientQuotas with Kafka's
//! filters, validation and messages, kept across a restart; Produce and Fetch throttled as
//! Kafka throttles them (the throttle time Kafka's formula gives, the connection muted for
//! it, the fetch that would have gone over answered empty), other clients untouched.

use crate::common::wire::*;
use crate::common::*;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, HeaderVersion, StrBytes};
use kafka_protocol::records::Compression;

const INVALID_REQUEST: i16 = 42;
const UNSUPPORTED_VERSION: i16 = 35;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

pub(crate) type Entity = Vec<(&'static str, Option<&'static str>)>;

pub(crate) fn entry(entity: &Entity, ops: &[(&str, Option<f64>)]) -> EntryData {
    EntryData::default()
        .with_entity(
            entity
                .iter()
                .map(|(t, n)| {
                    EntityData::default()
                        .with_entity_type(s(t))
                        .with_entity_name(n.map(s))
                })
                .collect(),
        )
        .with_ops(
            ops.iter()
                .map(|(k, v)| {
                    OpData::default()
                        .with_key(s(k))
                        .with_value(v.unwrap_or(0.0))
                        .with_remove(v.is_none())
                })
                .collect(),
        )
}

pub(crate) async fn alter(
    c: &mut Client,
    entries: Vec<EntryData>,
    validate_only: bool,
) -> Vec<(i16, String)> {
    let resp = c
        .send(
            &AlterClientQuotasRequest::default()
                .with_entries(entries)
                .with_validate_only(validate_only),
            1,
        )
        .await;
    resp.entries
        .iter()
        .map(|e| {
            (
                e.error_code,
                e.error_message
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
            )
        })
        .collect()
}

/// What DescribeClientQuotas answers: each entity as (type, name) pairs with its values, or
/// the request's error.
pub(crate) type Described =
    Result<BTreeMap<Vec<(String, Option<String>)>, BTreeMap<String, f64>>, (i16, String)>;

pub(crate) async fn describe(
    c: &mut Client,
    components: &[(&str, i8, Option<&str>)],
    strict: bool,
) -> Described {
    let resp = c
        .send(
            &DescribeClientQuotasRequest::default()
                .with_components(
                    components
                        .iter()
                        .map(|(t, m, name)| {
                            ComponentData::default()
                                .with_entity_type(s(t))
                                .with_match_type(*m)
                                .with_match(name.map(s))
                        })
                        .collect(),
                )
                .with_strict(strict),
            1,
        )
        .await;
    if resp.error_code != 0 {
        assert!(resp.entries.is_none(), "{resp:?}");
        return Err((
            resp.error_code,
            resp.error_message
                .map(|m| m.to_string())
                .unwrap_or_default(),
        ));
    }
    Ok(resp
        .entries
        .unwrap_or_default()
        .into_iter()
        .map(|e| {
            (
                e.entity
                    .iter()
                    .map(|d| {
                        (
                            d.entity_type.to_string(),
                            d.entity_name.as_ref().map(|n| n.to_string()),
                        )
                    })
                    .collect(),
                e.values
                    .iter()
                    .map(|v| (v.key.to_string(), v.value))
                    .collect(),
            )
        })
        .collect())
}

pub(crate) fn key(e: &Entity) -> Vec<(String, Option<String>)> {
    e.iter()
        .map(|(t, n)| (t.to_string(), n.map(str::to_string)))
        .collect()
}

const EXACT: i8 = 0;
const DEFAULT: i8 = 1;
const SPECIFIED: i8 = 2;

#[tokio::test]
async fn client_quotas_are_altered_described_and_kept_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_with(config_in(dir.path())).await;
    let mut c = Client::connect(broker.addr()).await;

    let alice: Entity = vec![("user", Some("alice"))];
    let alice_app: Entity = vec![("user", Some("alice")), ("client-id", Some("app"))];
    let default_user: Entity = vec![("user", None)];
    let default_client: Entity = vec![("client-id", None)];
    let local_ip: Entity = vec![("ip", Some("127.0.0.1"))];
    let default_ip: Entity = vec![("ip", None)];

    // alice also has SCRAM credentials: her quotas share her record and must keep them.
    let upsert = AlterUserScramCredentialsRequest::default().with_upsertions(vec![
        alter_user_scram_credentials_request::ScramCredentialUpsertion::default()
            .with_name(s("alice"))
            .with_mechanism(1)
            .with_iterations(4096)
            .with_salt(Bytes::from_static(b"salt"))
            .with_salted_password(Bytes::from_static(&[7; 32])),
    ]);
    let r = c.send(&upsert, 0).await;
    assert_eq!(r.results[0].error_code, 0, "{r:?}");

    let results = alter(
        &mut c,
        vec![
            entry(
                &alice,
                &[
                    ("producer_byte_rate", Some(1024.0)),
                    ("consumer_byte_rate", Some(2048.0)),
                ],
            ),
            entry(&alice_app, &[("producer_byte_rate", Some(4096.0))]),
            entry(&default_user, &[("request_percentage", Some(50.5))]),
            entry(&default_client, &[("consumer_byte_rate", Some(100.0))]),
            entry(&local_ip, &[("connection_creation_rate", Some(10.0))]),
            entry(&default_ip, &[("connection_creation_rate", Some(20.0))]),
        ],
        false,
    )
    .await;
    assert_eq!(results, vec![(0, String::new()); 6]);

    let all = describe(&mut c, &[], false).await.unwrap();
    assert_eq!(all.len(), 6, "{all:?}");
    assert_eq!(
        all[&key(&alice)],
        BTreeMap::from([
            ("consumer_byte_rate".into(), 2048.0),
            ("producer_byte_rate".into(), 1024.0)
        ])
    );
    assert_eq!(all[&key(&default_user)]["request_percentage"], 50.5);
    assert_eq!(all[&key(&default_ip)]["connection_creation_rate"], 20.0);

    // Kafka's filters: exact (non-strict also matches entities with more types), strict,
    // default, specified.
    let users = |d: Described| d.unwrap().into_keys().collect::<Vec<_>>();
    assert_eq!(
        users(describe(&mut c, &[("user", EXACT, Some("alice"))], false).await),
        vec![key(&alice), key(&alice_app)]
    );
    assert_eq!(
        users(describe(&mut c, &[("user", EXACT, Some("alice"))], true).await),
        vec![key(&alice)]
    );
    assert_eq!(
        users(describe(&mut c, &[("user", DEFAULT, None)], false).await),
        vec![key(&default_user)]
    );
    assert_eq!(
        users(
            describe(
                &mut c,
                &[("user", SPECIFIED, None), ("client-id", SPECIFIED, None)],
                false
            )
            .await
        ),
        vec![key(&alice_app)]
    );
    assert_eq!(
        users(describe(&mut c, &[("ip", SPECIFIED, None)], true).await).len(),
        2
    );
    // Kafka's refusals of a filter.
    for (components, code, says) in [
        (
            vec![("ip", SPECIFIED, None), ("user", SPECIFIED, None)],
            INVALID_REQUEST,
            "IP filter component should not be used",
        ),
        (
            vec![("user", EXACT, None)],
            INVALID_REQUEST,
            "MATCH_TYPE_EXACT",
        ),
        (
            vec![("user", DEFAULT, Some("x"))],
            INVALID_REQUEST,
            "MATCH_TYPE_DEFAULT",
        ),
        (
            vec![("user", SPECIFIED, None), ("user", DEFAULT, None)],
            INVALID_REQUEST,
            "more than once",
        ),
        (
            vec![("group", SPECIFIED, None)],
            UNSUPPORTED_VERSION,
            "Unsupported entity type group",
        ),
        (
            vec![("user", 7, None)],
            INVALID_REQUEST,
            "Unknown match type 7",
        ),
    ] {
        let (got, msg) = describe(&mut c, &components, false).await.unwrap_err();
        assert_eq!(got, code, "{msg}");
        assert!(msg.contains(says), "{msg} does not say {says}");
    }

    // Kafka's refusals of a change, per entity; the others in the request still apply.
    let results = alter(
        &mut c,
        vec![
            entry(
                &vec![("user", Some("bob"))],
                &[("producer_byte_rate", Some(1.5))],
            ),
            entry(&local_ip, &[("producer_byte_rate", Some(1.0))]),
            entry(
                &vec![("ip", Some("nowhere"))],
                &[("connection_creation_rate", Some(1.0))],
            ),
            entry(&vec![("user", Some("carol")), ("ip", Some("::1"))], &[]),
            entry(
                &vec![("user", Some("dave"))],
                &[("consumer_byte_rate", Some(-1.0))],
            ),
            entry(&vec![("group", Some("g"))], &[]),
            entry(
                &vec![("user", Some("erin"))],
                &[("producer_byte_rate", Some(77.0))],
            ),
        ],
        false,
    )
    .await;
    let says = [
        "cannot be a fractional value",
        "Invalid configuration key producer_byte_rate",
        "is not a valid IP",
        "IP entity should not be combined",
        "must be greater than 0",
        "Unhandled client quota entity type: group",
    ];
    for ((code, msg), want) in results.iter().zip(says) {
        assert_eq!(*code, INVALID_REQUEST, "{msg}");
        assert!(msg.contains(want), "{msg} does not say {want}");
    }
    assert_eq!(results[6], (0, String::new()));
    // validate_only checks and changes nothing.
    let checked = alter(
        &mut c,
        vec![entry(
            &vec![("client-id", Some("x"))],
            &[("producer_byte_rate", Some(5.0))],
        )],
        true,
    )
    .await;
    assert_eq!(checked, vec![(0, String::new())]);
    let all = describe(&mut c, &[], false).await.unwrap();
    assert_eq!(all.len(), 7, "erin added, nothing else: {all:?}");

    // Removing a value; removing the last one removes the entity.
    let results = alter(
        &mut c,
        vec![
            entry(&alice, &[("consumer_byte_rate", None)]),
            entry(&default_ip, &[("connection_creation_rate", None)]),
            entry(
                &vec![("user", Some("erin"))],
                &[("producer_byte_rate", None)],
            ),
        ],
        false,
    )
    .await;
    assert!(results.iter().all(|(c, _)| *c == 0), "{results:?}");
    let before = describe(&mut c, &[], false).await.unwrap();
    assert_eq!(before.len(), 5, "{before:?}");
    assert_eq!(
        before[&key(&alice)],
        BTreeMap::from([("producer_byte_rate".into(), 1024.0)])
    );

    // A restart keeps every quota, and alice's credentials beside hers.
    drop(c);
    broker.shutdown().await;
    let broker = start_with(config_in(dir.path())).await;
    let mut c = Client::connect(broker.addr()).await;
    assert_eq!(describe(&mut c, &[], false).await.unwrap(), before);
    let creds = c
        .send(
            &DescribeUserScramCredentialsRequest::default().with_users(None),
            0,
        )
        .await;
    assert_eq!(creds.results.len(), 1, "{creds:?}");
    assert_eq!(creds.results[0].user.as_str(), "alice");
    broker.shutdown().await;
}

/// The size Kafka's byte-rate quota counts for a request: its header and body.
fn request_size(req: &ProduceRequest, version: i16, client_id: &str) -> usize {
    let header = RequestHeader::default()
        .with_request_api_key(0)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(s(client_id)));
    let mut buf = bytes::BytesMut::new();
    header
        .encode(&mut buf, ProduceRequest::header_version(version))
        .unwrap();
    req.encode(&mut buf, version).unwrap();
    buf.len()
}

/// A batch of `n` records of `size` bytes each (incompressible enough to keep its size).
fn big_batch(n: i64, size: usize) -> Bytes {
    let records: Vec<_> = (0..n)
        .map(|i| {
            let mut r = record(i, 1_700_000_000_000);
            r.value = Some(Bytes::from(
                (0..size)
                    .map(|j| ((j * 31 + i as usize * 7) % 251) as u8)
                    .collect::<Vec<u8>>(),
            ));
            r
        })
        .collect();
    batch(&records, Compression::None)
}

#[tokio::test]
async fn a_client_over_its_produce_quota_is_throttled_and_muted_others_are_not() {
    let broker = start().await;
    let mut admin = Client::connect(broker.addr()).await;
    create_topic(&mut admin, "q", 1).await;
    const QUOTA: f64 = 10_000.0;
    let r = alter(
        &mut admin,
        vec![entry(
            &vec![("client-id", Some("slow"))],
            &[("producer_byte_rate", Some(QUOTA))],
        )],
        false,
    )
    .await;
    assert_eq!(r, vec![(0, String::new())]);

    // One request of ~11.5 quota-seconds: the rate over Kafka's minimum window of 10 s is
    // 1.15 times the quota, so Kafka's throttle is (1.15 - 1) * 10 s.
    let req = produce_req("q", uuid::Uuid::nil(), 0, big_batch(23, 5000), 1);
    let version = 9;
    let size = request_size(&req, version, "slow") as f64;
    let expected = ((size / 10.0 - QUOTA) / QUOTA * 10_000.0).round() as i32;
    assert!((1000..3000).contains(&expected), "{expected}");

    let mut slow = Client::connect_as(broker.addr(), "slow").await;
    let first = slow.send(&req, version).await;
    let answered = Instant::now();
    assert_eq!(first.responses[0].partition_responses[0].error_code, 0);
    assert_eq!(first.throttle_time_ms, expected, "size {size}");
    // The connection is muted: the next request is not even read before the throttle
    // time has passed (a client that ignores throttle_time_ms is slowed all the same).
    let md = slow
        .send(&MetadataRequest::default().with_topics(Some(vec![])), 9)
        .await;
    assert!(md.brokers.len() == 1);
    let waited = answered.elapsed();
    assert!(
        waited >= Duration::from_millis(expected as u64 - 20),
        "answered after {waited:?}, throttle {expected} ms"
    );

    // Another client id, the same request: no quota, no throttle, no wait.
    let mut fast = Client::connect_as(broker.addr(), "fast").await;
    for _ in 0..3 {
        let r = fast.send(&req, version).await;
        assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
        assert_eq!(r.throttle_time_ms, 0);
    }
    // The quota went away: the slow client is no longer throttled.
    let r = alter(
        &mut admin,
        vec![entry(
            &vec![("client-id", Some("slow"))],
            &[("producer_byte_rate", None)],
        )],
        false,
    )
    .await;
    assert_eq!(r, vec![(0, String::new())]);
    let again = slow.send(&req, version).await;
    assert_eq!(again.throttle_time_ms, 0);
    broker.shutdown().await;
}

#[tokio::test]
async fn a_consumer_over_its_fetch_quota_gets_an_empty_throttled_answer() {
    let broker = start().await;
    let mut admin = Client::connect(broker.addr()).await;
    create_topic(&mut admin, "f", 1).await;
    // Five batches of ~30 KB.
    for i in 0..5 {
        let (err, base) = produce(&mut admin, "f", 0, big_batch(6, 5000), 9).await;
        assert_eq!((err, base), (0, i * 6));
    }
    const QUOTA: f64 = 10_000.0;
    let r = alter(
        &mut admin,
        vec![entry(
            &vec![("client-id", Some("reader"))],
            &[("consumer_byte_rate", Some(QUOTA))],
        )],
        false,
    )
    .await;
    assert_eq!(r, vec![(0, String::new())]);

    let mut reader = Client::connect_as(broker.addr(), "reader").await;
    // The first fetch is capped at what the quota allows over the window (10 s x 10 KB/s,
    // Kafka's getMaxValueInQuotaWindow): three batches, under the quota.
    let first = reader
        .send(&fetch_req("f", uuid::Uuid::nil(), 0, 0), 12)
        .await;
    assert_eq!(first.throttle_time_ms, 0);
    let got = decode_records(first.responses[0].partitions[0].records.clone().unwrap());
    assert_eq!(got.len(), 18, "three batches of six");
    // The rest would take it over: the answer is empty and says how long to wait.
    let second = reader
        .send(&fetch_req("f", uuid::Uuid::nil(), 0, 18), 12)
        .await;
    assert!(second.throttle_time_ms > 0, "{second:?}");
    assert!(
        second.responses.is_empty(),
        "a throttled fetch sends nothing"
    );
    assert_eq!(second.error_code, 0);

    // Another consumer reads everything at once, unthrottled.
    let mut other = Client::connect_as(broker.addr(), "other").await;
    let all = other
        .send(&fetch_req("f", uuid::Uuid::nil(), 0, 0), 12)
        .await;
    assert_eq!(all.throttle_time_ms, 0);
    let got = decode_records(all.responses[0].partitions[0].records.clone().unwrap());
    assert_eq!(got.len(), 30);
    broker.shutdown().await;
}

#[tokio::test]
async fn a_client_over_its_request_quota_is_throttled_others_are_not() {
    let broker = start().await;
    let mut admin = Client::connect(broker.addr()).await;
    create_topic(&mut admin, "r", 8).await;
    // A hundredth of a percent of a thread: about 1 ms of handler time in Kafka's 10 s.
    let r = alter(
        &mut admin,
        vec![entry(
            &vec![("client-id", Some("busy"))],
            &[("request_percentage", Some(0.01))],
        )],
        false,
    )
    .await;
    assert_eq!(r, vec![(0, String::new())]);

    let all_topics = MetadataRequest::default().with_topics(None);
    let mut busy = Client::connect_as(broker.addr(), "busy").await;
    let mut throttled = None;
    for _ in 0..20_000 {
        let md = busy.send(&all_topics, 12).await;
        assert_eq!(md.topics.len(), 1);
        // The first throttles are short (the rate just over); a client that goes on gets
        // longer ones.
        if md.throttle_time_ms >= 100 {
            throttled = Some((md.throttle_time_ms, Instant::now()));
            break;
        }
    }
    let (throttle, answered) = throttled.expect("the busy client was never throttled");
    // Kafka bounds a request-quota throttle by one quota window (1 s).
    assert!(throttle <= 1000, "{throttle}");
    // Any API's answer carries it, and the connection is muted for it.
    let again = busy.send(&ApiVersionsRequest::default(), 2).await;
    let waited = answered.elapsed();
    assert!(
        waited >= Duration::from_millis(throttle as u64 - 20),
        "answered after {waited:?}, throttle {throttle} ms"
    );
    assert_eq!(again.error_code, 0);
    assert!(again.throttle_time_ms > 0, "still over: {again:?}");

    // Another client id sends as much, unthrottled.
    let mut other = Client::connect_as(broker.addr(), "other").await;
    for _ in 0..500 {
        let md = other.send(&all_topics, 12).await;
        assert_eq!(md.throttle_time_ms, 0);
    }
    broker.shutdown().await;
}

#[tokio::test]
async fn connections_over_an_ips_creation_rate_are_closed_unserved() {
    let broker = start().await;
    let mut admin = Client::connect(broker.addr()).await;
    let r = alter(
        &mut admin,
        vec![entry(
            &vec![("ip", Some("127.0.0.1"))],
            &[("connection_creation_rate", Some(2.0))],
        )],
        false,
    )
    .await;
    assert_eq!(r, vec![(0, String::new())]);

    // Is a new connection from `ip` served (an ApiVersions answered) or closed unanswered?
    async fn served(addr: std::net::SocketAddr, ip: &str) -> bool {
        let mut c = Client::connect_from(addr, ip.parse().unwrap())
            .await
            .unwrap();
        c.send_only(&ApiVersionsRequest::default(), 0).await;
        c.recv_frame().await.is_some()
    }
    // 2 a second over Kafka's minimum window of 10 s: about 20 at once, then refused.
    let mut n = 0;
    while served(broker.addr(), "127.0.0.1").await {
        n += 1;
        assert!(n <= 30, "never refused");
    }
    assert!(
        (20..=22).contains(&n),
        "{n} connections served before the first refusal"
    );
    // The established connection still works, and another IP is not limited.
    let md = admin
        .send(&MetadataRequest::default().with_topics(Some(vec![])), 9)
        .await;
    assert_eq!(md.brokers.len(), 1);
    for _ in 0..30 {
        assert!(served(broker.addr(), "127.0.0.2").await);
    }
    broker.shutdown().await;
}

#[tokio::test]
async fn topic_mutations_over_the_controller_mutation_rate_are_refused_or_throttled() {
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    const THROTTLING_QUOTA_EXCEEDED: i16 = 89;
    let broker = start().await;
    let mut admin = Client::connect(broker.addr()).await;
    // One partition a second for each of three client ids: a burst of 11 (Kafka's token
    // bucket holds all the windows' worth).
    let rate = |id: &'static str| {
        entry(
            &vec![("client-id", Some(id))],
            &[("controller_mutation_rate", Some(1.0))],
        )
    };
    let r = alter(
        &mut admin,
        vec![rate("strict"), rate("permissive"), rate("deleter")],
        false,
    )
    .await;
    assert!(r.iter().all(|(c, _)| *c == 0), "{r:?}");
    let create = |topics: &[(&str, i32)]| {
        CreateTopicsRequest::default()
            .with_topics(
                topics
                    .iter()
                    .map(|(n, p)| {
                        CreatableTopic::default()
                            .with_name(tn(n))
                            .with_num_partitions(*p)
                            .with_replication_factor(1)
                    })
                    .collect(),
            )
            .with_timeout_ms(5000)
    };

    // Strict (v6+): 8 then 5 pass (the second exhausts the bucket), the third is refused.
    let mut strict = Client::connect_as(broker.addr(), "strict").await;
    let resp = strict
        .send(&create(&[("a", 8), ("b", 5), ("c", 1)]), 7)
        .await;
    let codes: Vec<i16> = resp.topics.iter().map(|t| t.error_code).collect();
    assert_eq!(codes, vec![0, 0, THROTTLING_QUOTA_EXCEEDED], "{resp:?}");
    assert_eq!(
        resp.topics[2].error_message.as_ref().map(|m| m.to_string()),
        Some("The throttling quota has been exceeded.".to_string())
    );
    // Two partitions below zero at one a second.
    assert!((1500..=2000).contains(&resp.throttle_time_ms), "{resp:?}");

    // Permissive (before v6): everything is created, and the client is told to wait for
    // what it took beyond the bucket.
    let mut permissive = Client::connect_as(broker.addr(), "permissive").await;
    let resp = permissive.send(&create(&[("d", 12), ("e", 3)]), 5).await;
    assert!(resp.topics.iter().all(|t| t.error_code == 0), "{resp:?}");
    assert!((3500..=4000).contains(&resp.throttle_time_ms), "{resp:?}");

    // DeleteTopics counts each topic's partitions.
    let mut deleter = Client::connect_as(broker.addr(), "deleter").await;
    let resp = deleter
        .send(
            &DeleteTopicsRequest::default()
                .with_topic_names(vec![tn("a"), tn("b"), tn("d")])
                .with_timeout_ms(5000),
            5,
        )
        .await;
    let codes: Vec<i16> = resp.responses.iter().map(|t| t.error_code).collect();
    assert_eq!(codes, vec![0, 0, THROTTLING_QUOTA_EXCEEDED], "{resp:?}");
    assert!(resp.throttle_time_ms > 0, "{resp:?}");
    // What was refused was not done.
    let md = admin
        .send(&MetadataRequest::default().with_topics(None), 9)
        .await;
    let mut names: Vec<String> = md
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.to_string()))
        .collect();
    names.sort();
    assert_eq!(names, vec!["d", "e"]);
    broker.shutdown().await;
}
