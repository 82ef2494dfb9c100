//! KIP-227's table and Kafka's eviction rules, one case at a time, on the cache alone.

use super::*;

const V: i16 = 16;
const EVICTION_MS: u64 = 1000;

fn cache(slots: usize) -> FetchSessionCache {
    FetchSessionCache::new(slots, EVICTION_MS, Counter::default())
}

fn id_key(topic: u128, partition: i32) -> PartitionKey {
    PartitionKey {
        topic: TopicKey::Id(Uuid::from_u128(topic)),
        partition,
    }
}

fn name_key(topic: &str, partition: i32) -> PartitionKey {
    PartitionKey {
        topic: TopicKey::Name(topic.into()),
        partition,
    }
}

fn req(fetch_offset: i64) -> PartitionRequest {
    PartitionRequest {
        fetch_offset,
        log_start_offset: -1,
        partition_max_bytes: 1 << 20,
        current_leader_epoch: -1,
        last_fetched_epoch: -1,
    }
}

fn parts(n: i32) -> Vec<(PartitionKey, PartitionRequest)> {
    (0..n).map(|p| (id_key(1, p), req(0))).collect()
}

fn answered(
    p: &[(PartitionKey, PartitionRequest)],
) -> Vec<(PartitionKey, PartitionRequest, i64, i64)> {
    p.iter().map(|(k, r)| (k.clone(), *r, 10, 0)).collect()
}

/// A full fetch of `n` partitions at time `now` that opens a session; its id.
fn open(c: &FetchSessionCache, n: i32, privileged: bool, now: u64) -> i32 {
    let p = parts(n);
    match c.new_context(V, (0, INITIAL_EPOCH), privileged, &p, &[], now) {
        FetchContext::Full {
            privileged,
            uses_topic_ids,
        } => c.create_session(privileged, uses_topic_ids, answered(&p), now),
        other => panic!("not a full fetch: {}", other.kind()),
    }
}

fn error_of(ctx: FetchContext) -> Option<ResponseError> {
    match ctx {
        FetchContext::SessionError(e) => Some(e),
        _ => None,
    }
}

fn incremental(ctx: FetchContext) -> Incremental {
    match ctx {
        FetchContext::Incremental(i) => i,
        other => panic!("not incremental: {}", other.kind()),
    }
}

/// Finishes an incremental fetch of `answers` (no position hints, so each is looked up), and
/// keeps only those to be sent.
fn finish(
    c: &FetchSessionCache,
    inc: Incremental,
    answers: &mut Vec<(PartitionKey, PartitionData)>,
) -> Result<i32, (ResponseError, i32)> {
    let result = c.finish_incremental(inc, answers.iter().map(|(k, p)| (usize::MAX, k, p)));
    match result {
        Ok((id, keep)) => {
            assert_eq!(keep.len(), answers.len());
            let mut keep = keep.into_iter();
            answers.retain(|_| keep.next().unwrap_or(false));
            Ok(id)
        }
        Err(e) => {
            answers.clear();
            Err(e)
        }
    }
}

fn pd(hw: i64, log_start: i64, records: usize, error: i16) -> PartitionData {
    PartitionData::default()
        .with_high_watermark(hw)
        .with_log_start_offset(log_start)
        .with_error_code(error)
        .with_records(Some(bytes::Bytes::from(vec![0u8; records])))
}

#[test]
fn epoch_0_with_id_0_opens_a_session_at_epoch_1() {
    let c = cache(1000);
    let id = open(&c, 3, false, 0);
    assert_ne!(id, INVALID_SESSION_ID);
    assert_eq!(c.len(), 1);
    assert_eq!(c.partitions_cached(), 3);
    // The next fetch is epoch 1.
    let inc = incremental(c.new_context(V, (id, 1), false, &[], &[], 1));
    assert_eq!(inc.session_id(), id);
    assert_eq!(inc.partitions.len(), 3);
}

#[test]
fn epoch_0_with_an_id_closes_that_session_and_opens_another() {
    let c = cache(1000);
    let old = open(&c, 2, false, 0);
    let p = parts(2);
    let ctx = c.new_context(V, (old, INITIAL_EPOCH), false, &p, &[], 1);
    assert!(matches!(ctx, FetchContext::Full { .. }));
    assert_eq!(c.len(), 0, "the named session is closed first");
    let new = c.create_session(false, true, answered(&p), 1);
    assert_ne!(new, old);
    assert_eq!(
        error_of(c.new_context(V, (old, 1), false, &[], &[], 2)),
        Some(ResponseError::FetchSessionIdNotFound)
    );
}

#[test]
fn epoch_minus_1_is_sessionless_and_closes_the_named_session() {
    let c = cache(1000);
    assert!(matches!(
        c.new_context(V, (0, FINAL_EPOCH), false, &parts(1), &[], 0),
        FetchContext::Sessionless
    ));
    let id = open(&c, 1, false, 0);
    assert!(matches!(
        c.new_context(V, (id, FINAL_EPOCH), false, &parts(1), &[], 1),
        FetchContext::Sessionless
    ));
    assert_eq!(c.len(), 0);
    assert_eq!(c.partitions_cached(), 0);
}

#[test]
fn incremental_with_an_unknown_id_is_fetch_session_id_not_found() {
    let c = cache(1000);
    for id in [0, 1, 12345, -7, i32::MIN, i32::MAX, SESSION_ID_RANGE * 8] {
        for epoch in [1, 5, -2, i32::MIN] {
            assert_eq!(
                error_of(c.new_context(V, (id, epoch), false, &parts(1), &[], 0)),
                Some(ResponseError::FetchSessionIdNotFound),
                "id {id} epoch {epoch}"
            );
        }
    }
}

#[test]
fn incremental_with_a_wrong_epoch_is_invalid_fetch_session_epoch() {
    let c = cache(1000);
    let id = open(&c, 1, false, 0);
    for epoch in [2, 7, -2, i32::MAX] {
        assert_eq!(
            error_of(c.new_context(V, (id, epoch), false, &[], &[], 1)),
            Some(ResponseError::InvalidFetchSessionEpoch),
            "epoch {epoch}"
        );
    }
    // A wrong epoch changes nothing: epoch 1 still continues it.
    incremental(c.new_context(V, (id, 1), false, &[], &[], 1));
}

#[test]
fn the_epoch_advances_after_each_incremental_fetch() {
    let c = cache(1000);
    let id = open(&c, 1, false, 0);
    for epoch in 1..5 {
        let inc = incremental(c.new_context(V, (id, epoch), false, &[], &[], 1));
        let mut none: Vec<(PartitionKey, PartitionData)> = Vec::new();
        assert_eq!(finish(&c, inc, &mut none), Ok(id));
        assert_eq!(
            error_of(c.new_context(V, (id, epoch), false, &[], &[], 1)),
            Some(ResponseError::InvalidFetchSessionEpoch),
            "epoch {epoch} is used up"
        );
    }
}

#[test]
fn the_epoch_after_i32_max_is_1() {
    assert_eq!(next_epoch(0), 1);
    assert_eq!(next_epoch(41), 42);
    assert_eq!(next_epoch(i32::MAX), 1);
    assert_eq!(next_epoch(-1), -1);
    assert_eq!(next_epoch(-5), -1);
}

#[test]
fn a_session_keyed_one_way_refuses_requests_keyed_the_other_way() {
    let c = cache(1000);
    // Opened at v13+ (topic ids), continued at v12 (names).
    let id = open(&c, 1, false, 0);
    assert_eq!(
        error_of(c.new_context(12, (id, 1), false, &[], &[], 1)),
        Some(ResponseError::FetchSessionTopicIdError)
    );
    // Opened at v12, continued at v13.
    let p = vec![(name_key("t", 0), req(0))];
    let FetchContext::Full { uses_topic_ids, .. } = c.new_context(12, (0, 0), false, &p, &[], 0)
    else {
        panic!("full")
    };
    assert!(!uses_topic_ids);
    let id = c.create_session(false, uses_topic_ids, answered(&p), 0);
    assert_eq!(
        error_of(c.new_context(13, (id, 1), false, &[], &[], 1)),
        Some(ResponseError::FetchSessionTopicIdError)
    );
    incremental(c.new_context(12, (id, 1), false, &[], &[], 1));
}

#[test]
fn forgetting_every_partition_closes_the_session_and_serves_sessionless() {
    let c = cache(1000);
    let id = open(&c, 2, false, 0);
    let forget = vec![id_key(1, 0), id_key(1, 1)];
    assert!(matches!(
        c.new_context(V, (id, 1), false, &[], &forget, 1),
        FetchContext::Sessionless
    ));
    assert_eq!(c.len(), 0);
    assert_eq!(c.partitions_cached(), 0);
}

#[test]
fn a_request_adds_updates_and_forgets_partitions() {
    let c = cache(1000);
    let id = open(&c, 3, false, 0);
    let add = vec![(id_key(2, 0), req(5)), (id_key(1, 1), req(42))];
    let inc = incremental(c.new_context(V, (id, 1), false, &add, &[id_key(1, 2)], 1));
    let got: Vec<(PartitionKey, i64)> = inc
        .partitions
        .iter()
        .map(|(k, r, _)| (k.clone(), r.fetch_offset))
        .collect();
    assert_eq!(
        got,
        vec![(id_key(1, 0), 0), (id_key(1, 1), 42), (id_key(2, 0), 5)]
    );
    assert_eq!(c.partitions_cached(), 3);
    // Named and forgotten in one request: forgotten.
    let inc = incremental(c.new_context(
        V,
        (id, 2),
        false,
        &[(id_key(3, 0), req(0))],
        &[id_key(3, 0)],
        2,
    ));
    assert_eq!(inc.partitions.len(), 3);
}

#[test]
fn only_partitions_with_something_to_say_are_answered() {
    let c = cache(1000);
    let p = parts(8);
    // Opened with high watermark 10 and log start 0 everywhere.
    let id = open(&c, 8, false, 0);
    let inc = incremental(c.new_context(V, (id, 1), false, &[], &[], 1));
    let mut diverging = pd(10, 0, 0, 0);
    diverging.diverging_epoch.epoch = 3;
    let mut preferred = pd(10, 0, 0, 0);
    preferred.preferred_read_replica = kafka_protocol::messages::BrokerId(2);
    let mut answers: Vec<(PartitionKey, PartitionData)> = vec![
        (p[0].0.clone(), pd(10, 0, 0, 0)),  // nothing new
        (p[1].0.clone(), pd(10, 0, 70, 0)), // records
        (p[2].0.clone(), pd(11, 0, 0, 0)),  // high watermark moved
        (p[3].0.clone(), pd(10, 4, 0, 0)),  // log start moved
        (p[4].0.clone(), pd(-1, -1, 0, 6)), // an error
        (p[5].0.clone(), diverging),
        (p[6].0.clone(), preferred),
        (p[7].0.clone(), {
            let mut lso = pd(10, 0, 0, 0);
            lso.last_stable_offset = 3; // Kafka does not look at the last stable offset
            lso
        }),
    ];
    finish(&c, inc, &mut answers).unwrap();
    let kept: Vec<i32> = answers.iter().map(|(k, _)| k.partition).collect();
    assert_eq!(kept, vec![1, 2, 3, 4, 5, 6]);
    // What was said is remembered: the same answers again say nothing new, except the error
    // (always said) and the diverging epoch and preferred replica (always said).
    let inc = incremental(c.new_context(V, (id, 2), false, &[], &[], 2));
    let mut answers: Vec<(PartitionKey, PartitionData)> = vec![
        (p[2].0.clone(), pd(11, 0, 0, 0)),
        (p[3].0.clone(), pd(10, 4, 0, 0)),
        (p[4].0.clone(), pd(-1, -1, 0, 6)),
    ];
    finish(&c, inc, &mut answers).unwrap();
    let kept: Vec<i32> = answers.iter().map(|(k, _)| k.partition).collect();
    assert_eq!(kept, vec![4]);
    // Once the error is gone the partition is sent again (its high watermark was reset).
    let inc = incremental(c.new_context(V, (id, 3), false, &[], &[], 3));
    let mut answers = vec![(p[4].0.clone(), pd(10, 0, 0, 0))];
    finish(&c, inc, &mut answers).unwrap();
    assert_eq!(answers.len(), 1);
}

#[test]
fn newly_added_partitions_are_answered() {
    let c = cache(1000);
    let id = open(&c, 1, false, 0);
    let add = vec![(id_key(9, 0), req(0))];
    let inc = incremental(c.new_context(V, (id, 1), false, &add, &[], 1));
    let mut answers = vec![(id_key(9, 0), pd(0, 0, 0, 0))];
    finish(&c, inc, &mut answers).unwrap();
    assert_eq!(answers.len(), 1, "a new partition's high watermark is news");
}

#[test]
fn partitions_that_returned_records_move_to_the_end() {
    let c = cache(1000);
    let p = parts(4);
    let id = open(&c, 4, false, 0);
    let inc = incremental(c.new_context(V, (id, 1), false, &[], &[], 1));
    let mut answers: Vec<(PartitionKey, PartitionData)> = vec![
        (p[0].0.clone(), pd(10, 0, 5, 0)),
        (p[1].0.clone(), pd(10, 0, 0, 0)),
        (p[2].0.clone(), pd(10, 0, 5, 0)),
        (p[3].0.clone(), pd(10, 0, 0, 0)),
    ];
    finish(&c, inc, &mut answers).unwrap();
    let inc = incremental(c.new_context(V, (id, 2), false, &[], &[], 2));
    let order: Vec<i32> = inc.partitions.iter().map(|(k, _, _)| k.partition).collect();
    assert_eq!(order, vec![1, 3, 0, 2]);
}

#[test]
fn position_hints_are_checked_against_the_key() {
    let c = cache(1000);
    let p = parts(3);
    let id = open(&c, 3, false, 0);
    let inc = incremental(c.new_context(V, (id, 1), false, &[], &[], 1));
    let answers = [pd(10, 0, 0, 0), pd(10, 0, 5, 0), pd(11, 0, 0, 0)];
    // Right hints, a wrong one (falls back to the key) and one past the end.
    let hints = [0, 0, 99];
    let (got, keep) = c
        .finish_incremental(inc, (0..3).map(|i| (hints[i], &p[i].0, &answers[i])))
        .unwrap();
    assert_eq!(got, id);
    assert_eq!(keep, vec![false, true, true]);
}

#[test]
fn a_request_overtaken_by_another_of_its_session_gets_invalid_epoch() {
    let c = cache(1000);
    let id = open(&c, 1, false, 0);
    let first = incremental(c.new_context(V, (id, 1), false, &[], &[], 1));
    let _second = incremental(c.new_context(V, (id, 2), false, &[], &[], 1));
    let mut answers = vec![(id_key(1, 0), pd(10, 0, 5, 0))];
    assert_eq!(
        finish(&c, first, &mut answers),
        Err((ResponseError::InvalidFetchSessionEpoch, id))
    );
    assert!(answers.is_empty());
}

#[test]
fn session_ids_come_from_each_shard_in_turn() {
    let c = cache(1000);
    let ids: Vec<i32> = (0..16).map(|_| open(&c, 1, false, 0)).collect();
    for (i, id) in ids.iter().enumerate() {
        assert!(*id > 0);
        assert_eq!(c.shard_of(*id), Some(i % NUM_SHARDS), "id {id}");
    }
}

#[test]
fn zero_slots_never_open_a_session() {
    let c = cache(0);
    assert_eq!(open(&c, 1, false, 0), INVALID_SESSION_ID);
    assert_eq!(open(&c, 1, true, 0), INVALID_SESSION_ID);
    // Fewer slots than shards: Kafka divides them, so each shard has none.
    let c = cache(7);
    assert_eq!(open(&c, 1, false, 0), INVALID_SESSION_ID);
    assert!(c.is_empty());
}

/// Slots 8: one session per shard, so the ninth session lands in a full shard.
#[test]
fn a_full_shard_answers_session_id_0_while_nothing_may_be_evicted() {
    let c = cache(8);
    for _ in 0..8 {
        assert_ne!(open(&c, 5, false, 0), INVALID_SESSION_ID);
    }
    // Same size, young: not evictable.
    assert_eq!(open(&c, 5, false, 10), INVALID_SESSION_ID);
    // Larger, but the residents are younger than the eviction time.
    assert_eq!(open(&c, 50, false, 10), INVALID_SESSION_ID);
    assert_eq!(c.len(), 8);
}

#[test]
fn a_stale_session_is_evicted() {
    let evictions = Counter::default();
    let c = FetchSessionCache::new(8, EVICTION_MS, evictions.clone());
    let ids: Vec<i32> = (0..8).map(|_| open(&c, 5, false, 0)).collect();
    // Idle for exactly the eviction time: not yet stale.
    assert_eq!(open(&c, 1, false, EVICTION_MS), INVALID_SESSION_ID);
    let new = open(&c, 1, false, EVICTION_MS + 1);
    assert_ne!(new, INVALID_SESSION_ID);
    assert_eq!(evictions.get(), 1);
    // The shard's resident (the tenth open lands on shard 1) is gone.
    assert_eq!(
        error_of(c.new_context(V, (ids[1], 1), false, &[], &[], EVICTION_MS + 2)),
        Some(ResponseError::FetchSessionIdNotFound)
    );
}

#[test]
fn a_used_session_is_not_stale() {
    let c = cache(8);
    let ids: Vec<i32> = (0..8).map(|_| open(&c, 5, false, 0)).collect();
    for (i, id) in ids.iter().enumerate() {
        let inc = incremental(c.new_context(V, (*id, 1), false, &[], &[], 900 + i as u64));
        let mut none: Vec<(PartitionKey, PartitionData)> = Vec::new();
        finish(&c, inc, &mut none).unwrap();
    }
    // Used 600 ms ago: not stale. Kafka files a session as evictable by size only when it is
    // touched past the eviction time, and these were last touched younger than that, so not
    // even a larger newcomer may evict them.
    assert_eq!(open(&c, 5, false, 1500), INVALID_SESSION_ID);
    assert_eq!(open(&c, 60, false, 1500), INVALID_SESSION_ID);
    assert_eq!(c.len(), 8);
}

#[test]
fn a_larger_session_evicts_an_old_enough_smaller_one_never_an_equal() {
    let c = cache(8);
    for _ in 0..8 {
        open(&c, 5, false, 0);
    }
    let now = EVICTION_MS + 1;
    // Keep every resident fresh, so none is stale; they are old enough to be evicted.
    touch_all(&c, now);
    assert_eq!(open(&c, 5, false, now), INVALID_SESSION_ID, "equal size");
    assert_eq!(open(&c, 4, false, now), INVALID_SESSION_ID, "smaller");
    assert_ne!(open(&c, 6, false, now), INVALID_SESSION_ID, "larger");
    assert_eq!(c.len(), 8);
}

#[test]
fn a_follower_evicts_a_young_consumer_session_and_not_the_reverse() {
    let c = cache(8);
    for _ in 0..8 {
        open(&c, 50, false, 0);
    }
    // A follower's session of 1 partition outranks a consumer's of 50, however young.
    assert_ne!(open(&c, 1, true, 10), INVALID_SESSION_ID);
    let c = cache(8);
    for _ in 0..8 {
        open(&c, 1, true, 0);
    }
    // A consumer never outranks a follower, even when larger and the follower old enough.
    let now = EVICTION_MS + 1;
    touch_all(&c, now);
    assert_eq!(open(&c, 500, false, now), INVALID_SESSION_ID);
    // A young follower's session is safe from another follower's, an old enough one is not.
    let c = cache(8);
    for _ in 0..8 {
        open(&c, 1, true, 0);
    }
    assert_eq!(open(&c, 9, true, 10), INVALID_SESSION_ID);
    touch_all(&c, now);
    assert_ne!(open(&c, 9, true, now), INVALID_SESSION_ID);
}

/// Files every session as used at `now` (as an incremental fetch would).
fn touch_all(c: &FetchSessionCache, now: u64) {
    for n in 0..NUM_SHARDS {
        let mut shard = c.shard(n);
        let sessions: Vec<SessionRef> = shard.sessions.values().cloned().collect();
        for s in sessions {
            let mut g = lock(&s);
            shard.touch(&mut g, now);
        }
    }
}

#[test]
fn the_cache_never_holds_more_than_its_byte_bound() {
    let max = NUM_SHARDS * (SESSION_COST_BYTES + 10 * PARTITION_COST_BYTES);
    let c = FetchSessionCache::with_max_bytes(1000, EVICTION_MS, max, Counter::default());
    // 11 partitions do not fit in a shard's share.
    assert_eq!(open(&c, 11, false, 0), INVALID_SESSION_ID);
    let id = open(&c, 10, false, 0);
    assert_ne!(id, INVALID_SESSION_ID);
    // Growing it past the bound closes it; the client starts again with a full fetch.
    let add = vec![(id_key(7, 0), req(0))];
    assert_eq!(
        error_of(c.new_context(V, (id, 1), false, &add, &[], 1)),
        Some(ResponseError::FetchSessionIdNotFound)
    );
    assert!(c.is_empty());
    assert_eq!(c.partitions_cached(), 0);
}

#[test]
fn long_names_count_against_the_bound() {
    let max = NUM_SHARDS * (SESSION_COST_BYTES + 10 * PARTITION_COST_BYTES);
    let c = FetchSessionCache::with_max_bytes(1000, EVICTION_MS, max, Counter::default());
    let long = "x".repeat(30_000);
    let p = vec![(name_key(&long, 0), req(0))];
    assert_eq!(
        c.create_session(false, false, answered(&p), 0),
        INVALID_SESSION_ID
    );
}
