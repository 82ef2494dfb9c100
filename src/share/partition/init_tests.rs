//! Tests of where a share partition begins: reset strategies and persisted snapshots.

use super::tests::{ack, log, partition, range, A, B, BATCH};
use super::*;
use crate::group::config::parse_iso_duration_ms as parse_iso8601_duration_ms;

#[test]
fn snapshot_round_trips() {
    let config = SharePartitionConfig {
        delivery_count_limit: 3,
        ..Default::default()
    };
    let mut sp = partition(config.clone());
    sp.acquire(A, BATCH, 500, 100, &log(0, 19, 10), 0);
    sp.acknowledge(A, &[ack(0, 2, 1), ack(5, 6, 2), ack(7, 7, 3)], 1)
        .unwrap();
    let snapshot = sp.snapshot();
    assert_eq!(snapshot.start_offset, 3);
    assert_eq!(
        snapshot.batches,
        vec![
            PersistedBatch {
                first_offset: 3,
                last_offset: 6,
                delivery_state: 0,
                delivery_count: 1
            },
            PersistedBatch {
                first_offset: 7,
                last_offset: 7,
                delivery_state: 4,
                delivery_count: 1
            },
            PersistedBatch {
                first_offset: 8,
                last_offset: 19,
                delivery_state: 0,
                delivery_count: 1
            },
        ],
        "acquired records persist as AVAILABLE with their count"
    );
    assert_eq!(snapshot.delivery_complete_count, 1);
    let mut restored = SharePartition::from_snapshot(config, &snapshot).unwrap();
    assert_eq!(restored.snapshot(), snapshot);
    assert_eq!((restored.start_offset(), restored.end_offset()), (3, 19));
    let got = restored.acquire(B, BATCH, 500, 100, &log(0, 19, 10), 2);
    assert_eq!(got, vec![range(3, 6, 2), range(8, 19, 2)]);
    assert_eq!(restored.acquired_count(), 16);
}

#[test]
fn snapshot_gaps_are_fresh_and_limits_and_garbage_are_handled() {
    let persisted = |first, last, delivery_state, delivery_count| PersistedBatch {
        first_offset: first,
        last_offset: last,
        delivery_state,
        delivery_count,
    };
    let snapshot = ShareSnapshot {
        state_epoch: 7,
        start_offset: 10,
        delivery_complete_count: 0,
        batches: vec![
            persisted(0, 11, 2, 1),
            persisted(13, 13, 0, 5),
            persisted(15, 16, 0, 2),
        ],
    };
    let mut sp = SharePartition::from_snapshot(SharePartitionConfig::default(), &snapshot).unwrap();
    assert_eq!(sp.state_epoch(), 7);
    assert_eq!(sp.start_offset(), 12, "10 and 11 were acknowledged");
    let got = sp.acquire(A, BATCH, 500, 100, &log(12, 20, 1), 0);
    // 12 and 14 were never delivered; 13 reached the limit of 5 and is archived.
    assert_eq!(
        got,
        vec![
            range(12, 12, 1),
            range(14, 14, 1),
            range(15, 16, 3),
            range(17, 20, 1)
        ]
    );

    let uninitialized = ShareSnapshot {
        start_offset: -1,
        ..Default::default()
    };
    let config = SharePartitionConfig::default();
    assert_eq!(
        SharePartition::from_snapshot(config.clone(), &uninitialized).unwrap_err(),
        SnapshotError::Uninitialized(-1)
    );
    let overlapping = ShareSnapshot {
        batches: vec![persisted(0, 5, 0, 1), persisted(5, 6, 0, 1)],
        ..Default::default()
    };
    assert!(matches!(
        SharePartition::from_snapshot(config.clone(), &overlapping),
        Err(SnapshotError::BadBatch { .. })
    ));
    let bad_state = ShareSnapshot {
        batches: vec![persisted(0, 5, 5, 1)],
        ..Default::default()
    };
    assert_eq!(
        SharePartition::from_snapshot(config.clone(), &bad_state).unwrap_err(),
        SnapshotError::BadState(5)
    );
    let huge = ShareSnapshot {
        batches: vec![persisted(0, 1 << 40, 0, 1)],
        ..Default::default()
    };
    assert!(matches!(
        SharePartition::from_snapshot(config, &huge),
        Err(SnapshotError::TooLong(_))
    ));
}

#[test]
fn reset_strategies_pick_the_start_offset() {
    let config = SharePartitionConfig::default();
    let earliest = SharePartition::initialize(
        config.clone(),
        AutoOffsetReset::Earliest,
        5,
        50,
        |_| None,
        0,
    );
    assert_eq!(earliest.start_offset(), 5);
    let latest =
        SharePartition::initialize(config.clone(), AutoOffsetReset::Latest, 5, 50, |_| None, 0);
    assert_eq!(
        (latest.start_offset(), latest.next_fetch_offset()),
        (50, 50)
    );
    let reset = AutoOffsetReset::parse("by_duration:PT1H").unwrap();
    let mut asked = None;
    let by_time = SharePartition::initialize(
        config.clone(),
        reset,
        5,
        50,
        |ts| {
            asked = Some(ts);
            Some(20)
        },
        10_000_000,
    );
    assert_eq!(
        (asked, by_time.start_offset()),
        (Some(10_000_000 - 3_600_000), 20)
    );
    let none_found = SharePartition::initialize(config, reset, 5, 50, |_| None, 10_000_000);
    assert_eq!(none_found.start_offset(), 50, "falls back to latest");
}

#[test]
fn reset_strategy_values_are_validated() {
    assert_eq!(
        AutoOffsetReset::parse("earliest"),
        Some(AutoOffsetReset::Earliest)
    );
    assert_eq!(
        AutoOffsetReset::parse("EARLIEST"),
        None,
        "Kafka 4.4 refuses it"
    );
    assert_eq!(AutoOffsetReset::parse("by_duration:P-1D"), None, "negative");
    assert_eq!(
        AutoOffsetReset::parse("latest"),
        Some(AutoOffsetReset::Latest)
    );
    assert_eq!(AutoOffsetReset::parse("none"), None);
    assert_eq!(AutoOffsetReset::parse("by_duration:"), None);
    assert_eq!(AutoOffsetReset::parse("by_duration:-PT1H"), None);
    assert_eq!(
        parse_iso8601_duration_ms("P1DT2H3M4.5S"),
        Some(86_400_000 + 7_200_000 + 180_000 + 4_500)
    );
    assert_eq!(parse_iso8601_duration_ms("pt0.25s"), Some(250));
    assert_eq!(parse_iso8601_duration_ms("P2D"), Some(172_800_000));
    for bad in [
        "P",
        "PT",
        "P1H",
        "PT1S2M",
        "PT1H1H",
        "PT1.5H",
        "1D",
        "P99999999999999D",
    ] {
        assert_eq!(parse_iso8601_duration_ms(bad), None, "{bad}");
    }
}
