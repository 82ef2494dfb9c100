//! The dead-letter-queue side of the state machine (KIP-1191, share.version 2): which
//! records go ARCHIVING, with which cause, and how the writer takes and finishes the work.

use kafka_protocol::ResponseError;

use super::tests::{ack, error_of, fetch, partition, range, A, B};
use super::*;

fn dlq(limit: i16) -> SharePartitionConfig {
    SharePartitionConfig {
        delivery_count_limit: limit,
        dlq_enabled: true,
        ..Default::default()
    }
}

fn work(first: i64, last: i64, delivery_count: i16, cause: DlqCause) -> DlqWork {
    DlqWork {
        first_offset: first,
        last_offset: last,
        delivery_count,
        cause,
    }
}

#[test]
fn a_reject_goes_archiving_holds_the_start_and_is_finished_by_the_writer() {
    let mut sp = partition(dlq(5));
    assert_eq!(fetch(&mut sp, A, 10, 3, 0), vec![range(0, 2, 1)]);
    sp.acknowledge(A, &[ack(0, 0, 3), ack(1, 2, 1)], 1).unwrap();
    assert_eq!(sp.start_offset(), 0, "ARCHIVING is not terminal");
    assert_eq!(sp.delivery_complete_count(), 2, "only 1 and 2 are done");
    assert!(sp.has_dlq_work());
    assert_eq!(
        sp.take_dlq_work(),
        vec![work(0, 0, 1, DlqCause::ClientReject)]
    );
    assert!(!sp.has_dlq_work(), "handed over once");
    assert_eq!(sp.take_dlq_work(), vec![]);
    // Nobody can take or acknowledge it meanwhile.
    assert_eq!(fetch(&mut sp, B, 10, 3, 2), vec![]);
    let err = error_of(sp.acknowledge(A, &[ack(0, 0, 1)], 2));
    assert_eq!(err.0, ResponseError::InvalidRecordState);
    assert_eq!(sp.snapshot().batches[0].delivery_state, 3);

    assert_eq!(sp.finish_dlq(0, 0), 1);
    assert_eq!(sp.start_offset(), 3);
    assert_eq!(
        sp.finish_dlq(0, 0),
        0,
        "a second completion changes nothing"
    );
    assert_eq!(sp.in_flight_count(), 0);
}

#[test]
fn a_gap_is_archived_at_once_even_with_a_dlq() {
    let mut sp = partition(dlq(5));
    fetch(&mut sp, A, 10, 2, 0);
    sp.acknowledge(A, &[ack(0, 1, 0)], 1).unwrap();
    assert!(!sp.has_dlq_work());
    assert_eq!(sp.start_offset(), 2);
}

#[test]
fn without_a_dlq_reject_and_the_limit_archive_as_before() {
    let mut sp = partition(SharePartitionConfig {
        delivery_count_limit: 2,
        ..Default::default()
    });
    fetch(&mut sp, A, 10, 2, 0);
    sp.acknowledge(A, &[ack(0, 0, 3), ack(1, 1, 2)], 1).unwrap();
    fetch(&mut sp, A, 10, 2, 2);
    sp.acknowledge(A, &[ack(1, 1, 2)], 3).unwrap();
    assert!(!sp.has_dlq_work());
    assert_eq!(sp.start_offset(), 2);
}

#[test]
fn every_release_at_the_limit_goes_archiving_as_delivery_count_exceeded() {
    // By the member's RELEASE.
    let mut sp = partition(dlq(2));
    fetch(&mut sp, A, 10, 1, 0);
    sp.acknowledge(A, &[ack(0, 0, 2)], 1).unwrap();
    assert!(!sp.has_dlq_work(), "one delivery of two: available again");
    assert_eq!(fetch(&mut sp, A, 10, 1, 2), vec![range(0, 0, 2)]);
    sp.acknowledge(A, &[ack(0, 0, 2)], 3).unwrap();
    assert_eq!(
        sp.take_dlq_work(),
        vec![work(0, 0, 2, DlqCause::DeliveryCountExceeded)]
    );

    // By the lock's expiry.
    let mut sp = partition(dlq(2));
    fetch(&mut sp, A, 10, 2, 0);
    sp.expire_locks(30_000);
    fetch(&mut sp, A, 10, 2, 30_001);
    let released = sp.expire_locks(60_001);
    assert_eq!(
        released,
        Released {
            available: 0,
            archived: 0,
            archiving: 2
        }
    );
    assert_eq!(
        sp.take_dlq_work(),
        vec![work(0, 1, 2, DlqCause::DeliveryCountExceeded)]
    );
    assert_eq!((sp.start_offset(), sp.next_lock_deadline()), (0, None));

    // By the member's session closing.
    let mut sp = partition(dlq(2));
    fetch(&mut sp, A, 10, 1, 0);
    sp.release_member(A);
    fetch(&mut sp, A, 10, 1, 1);
    assert_eq!(sp.release_member(A).archiving, 1);
    assert_eq!(
        sp.take_dlq_work(),
        vec![work(0, 0, 2, DlqCause::DeliveryCountExceeded)]
    );
}

#[test]
fn records_that_join_an_archiving_run_are_handed_over_on_their_own() {
    let mut sp = partition(dlq(5));
    fetch(&mut sp, A, 10, 3, 0);
    sp.acknowledge(A, &[ack(0, 0, 3)], 1).unwrap();
    assert_eq!(
        sp.take_dlq_work(),
        vec![work(0, 0, 1, DlqCause::ClientReject)]
    );
    sp.acknowledge(A, &[ack(1, 1, 3)], 2).unwrap();
    assert_eq!(
        sp.take_dlq_work(),
        vec![work(1, 1, 1, DlqCause::ClientReject)]
    );
    sp.acknowledge(A, &[ack(2, 2, 1)], 3).unwrap();
    assert_eq!(sp.finish_dlq(1, 1), 1);
    assert_eq!(sp.start_offset(), 0, "0 still waits for its write");
    assert_eq!(sp.finish_dlq(0, 0), 1);
    assert_eq!(sp.start_offset(), 3);
}

#[test]
fn a_failed_acknowledgement_leaves_no_dlq_work() {
    let mut sp = partition(dlq(5));
    fetch(&mut sp, A, 10, 2, 0);
    let err = error_of(sp.acknowledge(A, &[ack(0, 0, 3), ack(5, 5, 1)], 1));
    assert_eq!(err.0, ResponseError::InvalidRequest);
    assert!(!sp.has_dlq_work());
    assert_eq!(sp.acquired_count(), 2);
}

#[test]
fn redispatch_hands_unfinished_work_over_again() {
    let mut sp = partition(dlq(5));
    fetch(&mut sp, A, 10, 2, 0);
    sp.acknowledge(A, &[ack(0, 1, 3)], 1).unwrap();
    let taken = sp.take_dlq_work();
    assert_eq!(taken, vec![work(0, 1, 1, DlqCause::ClientReject)]);
    sp.redispatch_dlq();
    assert_eq!(sp.take_dlq_work(), taken);
}

#[test]
fn a_reload_redoes_archiving_with_kafkas_guess_at_the_cause() {
    let mut sp = partition(dlq(3));
    fetch(&mut sp, A, 10, 4, 0);
    sp.acknowledge(A, &[ack(0, 0, 3), ack(1, 1, 2), ack(2, 3, 1)], 1)
        .unwrap();
    fetch(&mut sp, A, 10, 4, 2);
    sp.acknowledge(A, &[ack(1, 1, 2)], 3).unwrap();
    fetch(&mut sp, A, 10, 4, 4);
    sp.acknowledge(A, &[ack(1, 1, 2)], 5).unwrap();
    sp.take_dlq_work();
    let snapshot = sp.snapshot();
    let states: Vec<(i64, i64, i8, i16)> = snapshot
        .batches
        .iter()
        .map(|b| {
            (
                b.first_offset,
                b.last_offset,
                b.delivery_state,
                b.delivery_count,
            )
        })
        .collect();
    assert_eq!(states, vec![(0, 0, 3, 1), (1, 1, 3, 3), (2, 3, 2, 1)]);

    let mut reloaded = SharePartition::from_snapshot(dlq(3), &snapshot).unwrap();
    assert_eq!(reloaded.start_offset(), 0);
    assert_eq!(
        reloaded.take_dlq_work(),
        vec![
            work(0, 0, 1, DlqCause::ClientReject),
            work(1, 1, 3, DlqCause::DeliveryCountExceeded)
        ]
    );
    reloaded.finish_dlq(0, 1);
    assert_eq!(reloaded.start_offset(), 4);

    // An acquisition persisted at its last delivery (Klamm persists them as AVAILABLE)
    // goes to the DLQ on a reload when the group has one, else straight to ARCHIVED.
    let at_limit = ShareSnapshot {
        start_offset: 0,
        batches: vec![PersistedBatch {
            first_offset: 0,
            last_offset: 1,
            delivery_state: 0,
            delivery_count: 3,
        }],
        ..Default::default()
    };
    let mut with = SharePartition::from_snapshot(dlq(3), &at_limit).unwrap();
    assert_eq!(
        with.take_dlq_work(),
        vec![work(0, 1, 3, DlqCause::DeliveryCountExceeded)]
    );
    let without = SharePartition::from_snapshot(
        SharePartitionConfig {
            delivery_count_limit: 3,
            ..Default::default()
        },
        &at_limit,
    )
    .unwrap();
    assert_eq!((without.start_offset(), without.has_dlq_work()), (2, false));
}

#[test]
fn causes_carry_kafkas_messages() {
    assert_eq!(
        DlqCause::ClientReject.message(),
        "Offset rejected by client."
    );
    assert_eq!(
        DlqCause::DeliveryCountExceeded.message(),
        "Offset delivery count exceeded the threshold."
    );
}

#[test]
fn records_archiving_when_the_dlq_is_unset_are_still_handed_over() {
    // The writer then gives up on them and archives them, so the start offset moves on.
    let mut sp = partition(dlq(5));
    fetch(&mut sp, A, 10, 2, 0);
    sp.acknowledge(A, &[ack(0, 0, 3)], 1).unwrap();
    sp.set_config(SharePartitionConfig {
        delivery_count_limit: 5,
        ..Default::default()
    });
    assert!(sp.has_dlq_work());
    assert_eq!(
        sp.take_dlq_work(),
        vec![work(0, 0, 1, DlqCause::ClientReject)]
    );
}
