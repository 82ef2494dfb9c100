//! One test per rule of the share-partition state machine, with a fake clock (plain `now_ms`).

use kafka_protocol::ResponseError;

use super::*;

pub(super) const A: &str = "member-a";
pub(super) const B: &str = "member-b";
pub(super) const BATCH: AcquireMode = AcquireMode::BatchOptimized;
pub(super) const LIMIT: AcquireMode = AcquireMode::RecordLimit;

pub(super) fn partition(config: SharePartitionConfig) -> SharePartition {
    SharePartition::initialize(config, AutoOffsetReset::Earliest, 0, 0, |_| None, 0)
}

pub(super) fn default_partition() -> SharePartition {
    partition(SharePartitionConfig::default())
}

/// Log batches of `size` records covering `first..=last`.
pub(super) fn log(first: i64, last: i64, size: i64) -> Vec<(i64, i64)> {
    (first..=last)
        .step_by(size as usize)
        .map(|base| (base, (base + size - 1).min(last)))
        .collect()
}

pub(super) fn range(first: i64, last: i64, delivery_count: i16) -> AcquiredRange {
    AcquiredRange {
        first_offset: first,
        last_offset: last,
        delivery_count,
    }
}

pub(super) fn ack(first: i64, last: i64, ack_type: i8) -> AcknowledgementBatch {
    AcknowledgementBatch {
        first_offset: first,
        last_offset: last,
        acknowledge_types: vec![ack_type],
    }
}

/// Fetches what the partition says to fetch from a log of `log_end` records.
pub(super) fn fetch(
    sp: &mut SharePartition,
    member: &str,
    max: i32,
    log_end: i64,
    now: i64,
) -> Vec<AcquiredRange> {
    let from = sp.next_fetch_offset();
    if from >= log_end {
        return Vec::new();
    }
    sp.acquire(member, BATCH, 500, max, &log(from, log_end - 1, 1), now)
}

pub(super) fn error_of(result: Result<(), AcknowledgeError>) -> (ResponseError, String) {
    result.expect_err("acknowledgement should fail")
}

#[test]
fn transitions_follow_kafka_validate_transition() {
    use RecordState::*;
    assert!(Available.can_move_to(Acquired));
    assert!(!Available.can_move_to(Acknowledged) && !Available.can_move_to(Archived));
    assert!(!Available.can_move_to(Available));
    for to in [Available, Acknowledged, Archived] {
        assert!(Acquired.can_move_to(to));
    }
    assert!(!Acquired.can_move_to(Acquired));
    for from in [Acknowledged, Archived] {
        for to in [Available, Acquired, Acknowledged, Archiving, Archived] {
            assert!(!from.can_move_to(to), "{from:?} is terminal");
        }
    }
    assert!(Acquired.can_move_to(Archiving));
    assert!(Archiving.can_move_to(Archived));
    for to in [Available, Acquired, Acknowledged, Archiving] {
        assert!(
            !Archiving.can_move_to(to),
            "ARCHIVING only goes to ARCHIVED"
        );
    }
    assert!(!Archiving.is_terminal(), "ARCHIVING holds the start offset");
    for state in [Available, Acquired, Acknowledged, Archiving, Archived] {
        assert_eq!(RecordState::from_id(state.id()), Some(state));
    }
    assert_eq!(Archiving.id(), 3);
    assert_eq!(RecordState::from_id(5), None);
}

#[test]
fn new_records_are_acquired_with_delivery_count_one_and_accept_moves_the_start() {
    let mut sp = default_partition();
    let got = sp.acquire(A, BATCH, 500, 100, &log(0, 9, 5), 1000);
    assert_eq!(got, vec![range(0, 9, 1)]);
    assert_eq!(
        (sp.start_offset(), sp.end_offset(), sp.in_flight_count()),
        (0, 9, 10)
    );
    assert_eq!(sp.acquired_count(), 10);
    assert_eq!(sp.next_fetch_offset(), 10);
    sp.acknowledge(A, &[ack(0, 9, 1)], 1001).unwrap();
    assert_eq!((sp.start_offset(), sp.in_flight_count()), (10, 0));
    assert!(sp.cache.is_empty(), "fully passed batches leave the cache");
    assert_eq!(
        fetch(&mut sp, B, 100, 10, 1002),
        vec![],
        "accepted records are never redelivered"
    );
}

#[test]
fn release_is_redelivered_with_delivery_count_two() {
    let mut sp = default_partition();
    assert_eq!(fetch(&mut sp, A, 10, 3, 0), vec![range(0, 2, 1)]);
    sp.acknowledge(A, &[ack(1, 1, 2)], 1).unwrap();
    assert_eq!(sp.next_fetch_offset(), 1);
    assert_eq!(fetch(&mut sp, B, 10, 3, 2), vec![range(1, 1, 2)]);
}

#[test]
fn reject_and_gap_are_never_delivered_again() {
    let mut sp = default_partition();
    fetch(&mut sp, A, 10, 3, 0);
    sp.acknowledge(A, &[ack(0, 0, 3), ack(1, 1, 0), ack(2, 2, 1)], 1)
        .unwrap();
    assert_eq!(sp.start_offset(), 3);
    assert_eq!(sp.delivery_complete_count(), 0, "all passed");
    assert_eq!(fetch(&mut sp, A, 10, 3, 2), vec![]);
}

#[test]
fn delivery_limit_two_archives_after_the_second_release() {
    let config = SharePartitionConfig {
        delivery_count_limit: 2,
        ..Default::default()
    };
    let mut sp = partition(config);
    assert_eq!(fetch(&mut sp, A, 10, 1, 0), vec![range(0, 0, 1)]);
    sp.acknowledge(A, &[ack(0, 0, 2)], 1).unwrap();
    assert_eq!(fetch(&mut sp, A, 10, 1, 2), vec![range(0, 0, 2)]);
    sp.acknowledge(A, &[ack(0, 0, 2)], 3).unwrap();
    assert_eq!(
        sp.start_offset(),
        1,
        "archived at the limit, so the start passes it"
    );
    assert_eq!(
        fetch(&mut sp, B, 10, 1, 4),
        vec![],
        "never acquired a third time"
    );
}

#[test]
fn expired_lock_makes_records_available_again() {
    let mut sp = default_partition();
    fetch(&mut sp, A, 10, 4, 1_000);
    assert_eq!(sp.next_lock_deadline(), Some(31_000));
    assert_eq!(sp.expire_locks(30_999), Released::default());
    let released = sp.expire_locks(31_000);
    assert_eq!(
        released,
        Released {
            available: 4,
            archived: 0,
            archiving: 0
        }
    );
    assert_eq!(sp.next_lock_deadline(), None);
    assert_eq!(fetch(&mut sp, B, 10, 4, 31_001), vec![range(0, 3, 2)]);
    let err = error_of(sp.acknowledge(A, &[ack(0, 3, 1)], 31_002));
    assert_eq!(
        err,
        (
            ResponseError::InvalidRecordState,
            "Member is not the owner of batch record".into()
        )
    );
}

#[test]
fn expired_lock_at_the_delivery_limit_archives() {
    let config = SharePartitionConfig {
        delivery_count_limit: 2,
        ..Default::default()
    };
    let mut sp = partition(config);
    fetch(&mut sp, A, 10, 2, 0);
    sp.expire_locks(30_000);
    fetch(&mut sp, A, 10, 2, 30_001);
    let released = sp.expire_locks(60_001);
    assert_eq!(
        released,
        Released {
            available: 0,
            archived: 2,
            archiving: 0
        }
    );
    assert_eq!((sp.start_offset(), sp.in_flight_count()), (2, 0));
}

#[test]
fn renew_pushes_the_deadline_and_can_be_disabled() {
    let mut sp = default_partition();
    fetch(&mut sp, A, 10, 2, 0);
    sp.acknowledge(A, &[ack(0, 0, 4)], 20_000).unwrap();
    assert_eq!(
        sp.next_lock_deadline(),
        Some(30_000),
        "offset 1 still expires first"
    );
    assert_eq!(
        sp.expire_locks(30_000),
        Released {
            available: 1,
            archived: 0,
            archiving: 0
        }
    );
    assert_eq!(sp.next_lock_deadline(), Some(50_000));
    sp.acknowledge(A, &[ack(0, 0, 1)], 30_001).unwrap();

    sp.set_config(SharePartitionConfig {
        renew_acknowledge_enable: false,
        ..Default::default()
    });
    fetch(&mut sp, A, 10, 2, 40_000);
    let err = error_of(sp.acknowledge(A, &[ack(1, 1, 4)], 40_001));
    assert_eq!(
        err,
        (
            ResponseError::InvalidRecordState,
            "Renewing acquisition locks is not enabled for the group.".into()
        )
    );
}

#[test]
fn batch_optimized_rounds_up_to_the_log_batch_and_record_limit_is_exact() {
    let batches = log(0, 29, 10);
    let mut sp = default_partition();
    assert_eq!(
        sp.acquire(A, BATCH, 500, 5, &batches, 0),
        vec![range(0, 9, 1)]
    );
    assert_eq!(
        sp.acquire(A, BATCH, 500, 11, &log(10, 29, 10), 0),
        vec![range(10, 29, 1)]
    );

    let mut sp = default_partition();
    assert_eq!(
        sp.acquire(A, LIMIT, 500, 5, &batches, 0),
        vec![range(0, 4, 1)]
    );
    assert_eq!(
        sp.end_offset(),
        9,
        "the rest of the log batch is in flight, AVAILABLE"
    );
    assert_eq!(sp.next_fetch_offset(), 5);
    assert_eq!(
        sp.acquire(B, LIMIT, 500, 3, &batches, 0),
        vec![range(5, 7, 1)]
    );
    assert_eq!(
        sp.acquire(B, LIMIT, 500, 4, &batches, 0),
        vec![range(8, 11, 1)]
    );
    assert_eq!(sp.acquired_count(), 12);
}

#[test]
fn batch_size_cuts_new_records_at_log_batch_boundaries() {
    let mut sp = default_partition();
    let got = sp.acquire(A, BATCH, 10, 100, &log(0, 29, 5), 0);
    assert_eq!(
        got,
        vec![range(0, 29, 1)],
        "touching ranges are merged in the response"
    );
    let keys: Vec<i64> = sp.cache.keys().copied().collect();
    assert_eq!(
        keys,
        vec![0, 10, 20],
        "but the cache holds one entry per ~BatchSize records"
    );
}

#[test]
fn in_flight_cap_stops_new_records_but_not_reacquisition() {
    let config = SharePartitionConfig {
        max_record_locks: 100,
        ..Default::default()
    };
    let mut sp = partition(config);
    let all = log(0, 199, 10);
    assert_eq!(
        sp.acquire(A, BATCH, 500, 500, &all, 0),
        vec![range(0, 99, 1)]
    );
    assert!(!sp.can_acquire_records());
    assert_eq!(sp.acquire(B, BATCH, 500, 500, &all, 1), vec![]);
    // Released records inside the window can be taken again at the cap.
    sp.acknowledge(A, &[ack(50, 59, 2)], 2).unwrap();
    assert!(sp.can_acquire_records());
    assert_eq!(
        sp.acquire(B, BATCH, 500, 500, &log(50, 199, 10), 3),
        vec![range(50, 59, 2)]
    );
    // Accepting the head moves the start, which opens the window.
    sp.acknowledge(A, &[ack(0, 19, 1)], 4).unwrap();
    assert_eq!(sp.start_offset(), 20);
    assert_eq!(
        sp.acquire(B, BATCH, 500, 500, &log(100, 199, 10), 5),
        vec![range(100, 119, 1)]
    );
    assert_eq!(sp.in_flight_count(), 100);
}

#[test]
fn start_offset_moves_only_over_terminal_records() {
    let mut sp = default_partition();
    sp.acquire(A, BATCH, 5, 100, &log(0, 9, 5), 0);
    sp.acknowledge(A, &[ack(1, 4, 1)], 1).unwrap();
    assert_eq!(sp.start_offset(), 0, "offset 0 is still acquired");
    assert_eq!(sp.delivery_complete_count(), 4);
    sp.acknowledge(A, &[ack(0, 0, 3)], 2).unwrap();
    assert_eq!(sp.start_offset(), 5);
    assert_eq!(
        sp.cache.keys().copied().collect::<Vec<_>>(),
        vec![5],
        "batch 0..=4 dropped"
    );
    assert_eq!(sp.delivery_complete_count(), 0);
    sp.acknowledge(A, &[ack(5, 9, 1)], 3).unwrap();
    assert_eq!(
        (sp.start_offset(), sp.end_offset(), sp.in_flight_count()),
        (10, 10, 0)
    );
}

#[test]
fn log_start_moving_archives_available_records_below_it() {
    let mut sp = default_partition();
    sp.acquire(A, BATCH, 500, 100, &log(0, 9, 10), 0);
    sp.acknowledge(A, &[ack(0, 5, 2)], 1).unwrap();
    assert!(sp.update_log_start(4));
    assert_eq!(sp.start_offset(), 4);
    assert_eq!(sp.next_fetch_offset(), 4, "4 and 5 are still in the log");
    assert_eq!(
        sp.acquire(B, BATCH, 500, 100, &log(4, 9, 10), 2),
        vec![range(4, 5, 2)]
    );
    assert!(!sp.update_log_start(3), "never backwards");
    // Past everything in flight: acquired records keep their lock, the window restarts.
    assert!(sp.update_log_start(20));
    assert_eq!((sp.start_offset(), sp.in_flight_count()), (20, 0));
    sp.acknowledge(A, &[ack(6, 9, 1)], 3).unwrap();
    assert!(
        !sp.cache.is_empty(),
        "acknowledgements below the start are ignored"
    );
    sp.expire_locks(i64::MAX);
    assert!(
        sp.cache.is_empty(),
        "expired locks below the start leave the cache"
    );
    assert_eq!(
        sp.acquire(B, BATCH, 500, 100, &log(20, 24, 5), 4),
        vec![range(20, 24, 1)]
    );
}

#[test]
fn two_members_get_disjoint_records() {
    let mut sp = default_partition();
    let a = fetch(&mut sp, A, 5, 10, 0);
    let b = fetch(&mut sp, B, 5, 10, 0);
    assert_eq!(a, vec![range(0, 4, 1)]);
    assert_eq!(b, vec![range(5, 9, 1)]);
    assert_eq!(fetch(&mut sp, A, 5, 10, 0), vec![]);
    sp.acknowledge(A, &[ack(0, 4, 1)], 1).unwrap();
    sp.acknowledge(B, &[ack(5, 9, 1)], 1).unwrap();
    assert_eq!(sp.start_offset(), 10);
}

#[test]
fn release_member_frees_only_its_records() {
    let mut sp = default_partition();
    fetch(&mut sp, A, 3, 6, 0);
    fetch(&mut sp, B, 3, 6, 0);
    assert_eq!(
        sp.release_member(A),
        Released {
            available: 3,
            archived: 0,
            archiving: 0
        }
    );
    assert_eq!(sp.acquired_count(), 3);
    assert_eq!(fetch(&mut sp, B, 10, 6, 1), vec![range(0, 2, 2)]);
    assert_eq!(sp.release_member("nobody"), Released::default());
}

#[test]
fn per_offset_acknowledge_types_switch_a_batch_to_offset_tracking() {
    let mut sp = default_partition();
    sp.acquire(A, BATCH, 500, 100, &log(0, 3, 4), 0);
    let mixed = AcknowledgementBatch {
        first_offset: 0,
        last_offset: 3,
        acknowledge_types: vec![1, 2, 3, 0],
    };
    sp.acknowledge(A, &[mixed], 1).unwrap();
    assert!(sp.cache[&0].offsets.is_some());
    assert_eq!(sp.start_offset(), 1);
    assert_eq!(sp.next_fetch_offset(), 1);
    assert_eq!(
        sp.acquire(B, BATCH, 500, 100, &log(0, 3, 4), 2),
        vec![range(1, 1, 2)]
    );
}

#[test]
fn unknown_offsets_give_kafkas_errors() {
    let mut sp = SharePartition::initialize(
        SharePartitionConfig::default(),
        AutoOffsetReset::Earliest,
        10,
        10,
        |_| None,
        0,
    );
    sp.acquire(A, BATCH, 500, 100, &log(10, 19, 10), 0);
    sp.acknowledge(A, &[ack(5, 8, 1)], 1).unwrap(); // before the start: skipped
    let mut nothing_acquired = default_partition();
    let below = error_of(nothing_acquired.acknowledge(A, &[ack(0, 0, 1)], 1));
    assert_eq!(below.0, ResponseError::InvalidRecordState);
    assert_eq!(
        below.1,
        "Batch record not found. The request batch offsets are not found in the cache."
    );
    let past_first = error_of(sp.acknowledge(A, &[ack(25, 26, 1)], 1));
    assert_eq!(
        past_first,
        (
            ResponseError::InvalidRequest,
            "Batch record not found. The first offset in request is past acquired records.".into()
        )
    );
    let past_last = error_of(sp.acknowledge(A, &[ack(15, 26, 1)], 1));
    assert_eq!(
        past_last,
        (
            ResponseError::InvalidRequest,
            "Batch record not found. The last offset in request is past acquired records.".into()
        )
    );
    let bad_type = error_of(sp.acknowledge(A, &[ack(10, 10, 5)], 1));
    assert_eq!(
        bad_type,
        (
            ResponseError::InvalidRequest,
            "Invalid acknowledge type: [5]".into()
        )
    );
    assert_eq!(sp.acquired_count(), 10, "nothing changed");
}

#[test]
fn records_not_acquired_or_owned_by_another_give_invalid_record_state() {
    let state = |m: &str| (ResponseError::InvalidRecordState, m.to_owned());
    let mut sp = default_partition();
    sp.acquire(A, BATCH, 500, 100, &log(0, 9, 10), 0);
    assert_eq!(
        error_of(sp.acknowledge(B, &[ack(0, 9, 1)], 1)),
        state("Member is not the owner of batch record")
    );
    sp.acknowledge(A, &[ack(0, 0, 1)], 1).unwrap();
    assert_eq!(
        error_of(sp.acknowledge(B, &[ack(1, 1, 1)], 1)),
        state("Member is not the owner of offset")
    );
    sp.acknowledge(A, &[ack(2, 5, 2)], 1).unwrap();
    assert_eq!(
        error_of(sp.acknowledge(A, &[ack(2, 2, 1)], 1)),
        state("The offset cannot be acknowledged. The offset is not acquired.")
    );
    sp.acknowledge(A, &[ack(0, 0, 1)], 1).unwrap();

    let mut sp = default_partition();
    sp.acquire(A, BATCH, 500, 100, &log(0, 9, 10), 0);
    sp.acknowledge(A, &[ack(0, 9, 2)], 1).unwrap();
    assert_eq!(
        error_of(sp.acknowledge(A, &[ack(0, 9, 1)], 1)),
        state("The batch cannot be acknowledged. The batch is not in the acquired state.")
    );
}

#[test]
fn a_subset_of_a_batch_not_acquired_is_refused() {
    let state = |m: &str| (ResponseError::InvalidRecordState, m.to_owned());
    let mut sp = default_partition();
    sp.acquire(A, BATCH, 500, 100, &log(0, 9, 10), 0);
    sp.acquire(A, BATCH, 500, 100, &log(10, 19, 10), 0);
    // 10..=19 acknowledged as a whole; the start stays at 0, 0..=9 being still acquired.
    sp.acknowledge(A, &[ack(10, 19, 1)], 1).unwrap();
    assert_eq!(sp.start_offset(), 0);
    assert_eq!(
        error_of(sp.acknowledge(A, &[ack(10, 11, 1)], 2)),
        state("The batch cannot be acknowledged. The subset batch is not in the acquired state.")
    );
    assert_eq!(
        error_of(sp.acknowledge(A, &[ack(10, 19, 1)], 2)),
        state("The batch cannot be acknowledged. The batch is not in the acquired state.")
    );
    assert_eq!(
        error_of(sp.acknowledge(B, &[ack(10, 19, 1)], 2)),
        state("Member is not the owner of batch record")
    );
}

#[test]
fn an_acknowledgement_applies_all_or_nothing() {
    let mut sp = default_partition();
    fetch(&mut sp, A, 4, 4, 0);
    fetch(&mut sp, B, 4, 8, 0);
    // A's first batch is fine, its second touches B's records: nothing may change.
    let err = error_of(sp.acknowledge(A, &[ack(0, 1, 1), ack(2, 5, 1)], 1));
    assert_eq!(err.0, ResponseError::InvalidRecordState);
    assert_eq!(sp.start_offset(), 0);
    assert_eq!(sp.acquired_count(), 8);
    assert!(
        sp.cache.values().all(|b| b.offsets.is_none()),
        "split undone too"
    );
    // The same offsets twice in one call count as a transition in progress.
    let err = error_of(sp.acknowledge(A, &[ack(0, 1, 1), ack(1, 1, 3)], 1));
    assert_eq!(
        err.1,
        "The record state is invalid. The acknowledgement of delivery could not be completed."
    );
    sp.acknowledge(A, &[ack(0, 3, 1)], 2).unwrap();
    assert_eq!(sp.start_offset(), 4);
}

#[test]
fn acknowledgements_before_the_start_offset_are_skipped() {
    let mut sp = default_partition();
    fetch(&mut sp, A, 4, 4, 0);
    sp.acknowledge(A, &[ack(0, 3, 1)], 1).unwrap();
    sp.acknowledge(A, &[ack(0, 3, 1)], 2).unwrap();
    assert_eq!(sp.start_offset(), 4);
}

#[test]
fn malformed_fetched_batches_and_zero_max_records_acquire_nothing() {
    let mut sp = default_partition();
    assert_eq!(sp.acquire(A, BATCH, 500, 0, &log(0, 9, 10), 0), vec![]);
    assert_eq!(sp.acquire(A, BATCH, 500, 10, &[(5, 4)], 0), vec![]);
    assert_eq!(
        sp.acquire(A, BATCH, 500, 10, &[(0, 4), (3, 9)], 0),
        vec![range(0, 4, 1)]
    );
    let bad_shape = AcknowledgementBatch {
        first_offset: 0,
        last_offset: 4,
        acknowledge_types: vec![1, 1],
    };
    assert_eq!(
        error_of(sp.acknowledge(A, &[bad_shape], 1)).0,
        ResponseError::InvalidRequest
    );
}

#[test]
fn huge_log_batches_are_cut_into_bounded_cache_entries() {
    let mut sp = default_partition();
    let got = sp.acquire(A, BATCH, 0, 1, &[(0, 3 * MAX_BATCH_RECORDS)], 0);
    assert_eq!(got, vec![range(0, 3 * MAX_BATCH_RECORDS, 1)]);
    assert!(sp.cache.values().all(|b| b.len() <= MAX_BATCH_RECORDS));
    sp.acknowledge(A, &[ack(1, 1, 1)], 1).unwrap();
    assert!(sp.cache.values().all(|b| b
        .offsets
        .as_ref()
        .is_none_or(|o| o.len() as i64 <= MAX_BATCH_RECORDS)));
}

#[test]
fn an_acknowledgement_straddling_the_start_applies_from_the_start() {
    let mut sp = SharePartition::initialize(
        SharePartitionConfig::default(),
        AutoOffsetReset::Earliest,
        10,
        10,
        |_| None,
        0,
    );
    sp.acquire(A, BATCH, 500, 100, &log(10, 19, 10), 0);
    sp.acknowledge(A, &[ack(5, 12, 1)], 1).unwrap();
    assert_eq!(sp.start_offset(), 13);
}

#[test]
fn an_archived_batch_after_the_start_cannot_be_acknowledged_again() {
    let mut sp = default_partition();
    sp.acquire(A, BATCH, 500, 100, &log(0, 9, 10), 0);
    sp.acquire(A, BATCH, 500, 100, &log(10, 19, 10), 0);
    sp.acknowledge(A, &[ack(10, 19, 3)], 1).unwrap();
    assert_eq!(sp.start_offset(), 0);
    let err = error_of(sp.acknowledge(A, &[ack(10, 19, 1)], 2));
    assert_eq!(
        err,
        (
            ResponseError::InvalidRecordState,
            "The batch cannot be acknowledged. The batch is not in the acquired state.".into()
        )
    );
}

#[test]
fn aborted_transactions_are_archived_at_acquisition_under_read_committed() {
    let mut sp = default_partition();
    let batches = [(0, 4), (5, 9), (10, 10), (11, 14)];
    let acquired = sp.acquire(A, BATCH, 500, 100, &batches, 0);
    assert_eq!(acquired, vec![range(0, 14, 1)]);
    // 5..=9 is an aborted transaction's batch, 10 its abort marker (a control batch the
    // client acknowledges as a gap, so it stays acquired here).
    let given = sp.archive_aborted(acquired, &[(5, 9)]);
    assert_eq!(given, vec![range(0, 4, 1), range(10, 14, 1)]);
    assert_eq!(sp.acquired_count(), 10);
    sp.acknowledge(A, &[ack(0, 4, 1), ack(10, 10, 0), ack(11, 14, 1)], 1)
        .unwrap();
    assert_eq!((sp.start_offset(), sp.in_flight_count()), (15, 0));
    assert_eq!(
        sp.archive_aborted(vec![range(20, 21, 1)], &[]),
        vec![range(20, 21, 1)]
    );
}
