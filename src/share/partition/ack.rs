//! Acknowledgement: a member's verdict on records it holds (Kafka's `SharePartition.acknowledge`,
//! `fetchSubMapForAcknowledgementBatch`, `acknowledgeBatchRecords`,
//! `acknowledgePerOffsetBatchRecords` and `acknowledgeCompleteBatch`, with their messages).

use std::collections::BTreeMap;

use kafka_protocol::ResponseError;

use super::{
    AcknowledgeError, AcknowledgementBatch, DlqCause, InFlightBatch, InFlightState, RecordState,
    SharePartition,
};

const NOT_IN_CACHE: &str =
    "Batch record not found. The request batch offsets are not found in the cache.";
const FIRST_PAST_ACQUIRED: &str =
    "Batch record not found. The first offset in request is past acquired records.";
const LAST_PAST_ACQUIRED: &str =
    "Batch record not found. The last offset in request is past acquired records.";
const BATCH_NOT_ACQUIRED: &str =
    "The batch cannot be acknowledged. The batch is not in the acquired state.";
const SUBSET_NOT_ACQUIRED: &str =
    "The batch cannot be acknowledged. The subset batch is not in the acquired state.";
const OFFSET_NOT_ACQUIRED: &str = "The offset cannot be acknowledged. The offset is not acquired.";
const NOT_BATCH_OWNER: &str = "Member is not the owner of batch record";
const NOT_OFFSET_OWNER: &str = "Member is not the owner of offset";
const RENEW_DISABLED: &str = "Renewing acquisition locks is not enabled for the group.";
/// Kafka's message for records already in a transition; here, records that an earlier
/// batch of the same call already acknowledged.
const IN_TRANSITION: &str =
    "The record state is invalid. The acknowledgement of delivery could not be completed.";

fn invalid_state(message: &str) -> AcknowledgeError {
    (ResponseError::InvalidRecordState, message.to_owned())
}

fn invalid_request(message: String) -> AcknowledgeError {
    (ResponseError::InvalidRequest, message)
}

impl SharePartition {
    /// Applies a member's acknowledgements for this partition, all or nothing: if any batch
    /// fails, no record changes and the first failure is returned. Types: 0 Gap and 3 Reject
    /// archive, 1 Accept acknowledges, 2 Release makes the record AVAILABLE again (ARCHIVED at
    /// the delivery limit), 4 Renew keeps it ACQUIRED with the lock restarted at `now_ms`.
    /// With a dead-letter queue, Reject and a Release at the limit give ARCHIVING instead.
    /// Batches wholly before the start offset are skipped, as Kafka skips them.
    pub fn acknowledge(
        &mut self,
        member_id: &str,
        batches: &[AcknowledgementBatch],
        now_ms: i64,
    ) -> Result<(), AcknowledgeError> {
        // The original of every cache entry touched, to put back on failure. Bounded by the
        // cache: each entry is saved once.
        let mut originals: BTreeMap<i64, InFlightBatch> = BTreeMap::new();
        let result = self.apply_acknowledgements(member_id, batches, now_ms, &mut originals);
        match result {
            Ok(()) => {
                self.advance_start_offset();
                Ok(())
            }
            Err(error) => {
                self.cache.extend(originals);
                Err(error)
            }
        }
    }

    fn apply_acknowledgements(
        &mut self,
        member_id: &str,
        batches: &[AcknowledgementBatch],
        now_ms: i64,
        originals: &mut BTreeMap<i64, InFlightBatch>,
    ) -> Result<(), AcknowledgeError> {
        for (index, ack) in batches.iter().enumerate() {
            validate_shape(ack)?;
            if ack.last_offset < self.start_offset {
                continue;
            }
            let overlaps_earlier = batches[..index].iter().any(|earlier| {
                earlier.first_offset <= ack.last_offset && ack.first_offset <= earlier.last_offset
            });
            if overlaps_earlier {
                return Err(invalid_state(IN_TRANSITION));
            }
            for key in self.cache_keys_for(ack)? {
                let Some(batch) = self.cache.get_mut(&key) else {
                    continue;
                };
                // Entries wholly before the start offset are done with (Kafka: "All offsets
                // in the inflight batch … are already archived"), and one that ends before
                // the acknowledged range (a hole in the log precedes it) is not in it.
                if batch.last < self.start_offset || batch.last < ack.first_offset {
                    continue;
                }
                originals.entry(key).or_insert_with(|| batch.clone());
                let rules = AckRules {
                    member_id,
                    start_offset: self.start_offset,
                    delivery_count_limit: self.config.delivery_count_limit,
                    renew_enabled: self.config.renew_acknowledge_enable,
                    deadline_ms: now_ms.saturating_add(self.config.record_lock_duration_ms),
                    dlq: self.config.dlq_enabled,
                };
                acknowledge_batch(batch, ack, &rules)?;
            }
        }
        Ok(())
    }

    /// Kafka's `fetchSubMapForAcknowledgementBatch`: the cache entries from the one holding
    /// the first offset to the last offset, with Kafka's errors when the range is not there.
    fn cache_keys_for(&self, ack: &AcknowledgementBatch) -> Result<Vec<i64>, AcknowledgeError> {
        let floor = self
            .cache
            .range(..=ack.first_offset)
            .next_back()
            .or_else(|| {
                let start_inside =
                    ack.first_offset < self.start_offset && ack.last_offset >= self.start_offset;
                if start_inside {
                    self.cache.range(..=self.start_offset).next_back()
                } else {
                    None
                }
            });
        let Some((&floor_key, _)) = floor else {
            return Err(invalid_state(NOT_IN_CACHE));
        };
        let range = self.cache.range(floor_key..=ack.last_offset);
        let last_cached = range.clone().next_back().map_or(i64::MIN, |(_, b)| b.last);
        if last_cached < ack.first_offset {
            return Err(invalid_request(FIRST_PAST_ACQUIRED.to_owned()));
        }
        if ack.last_offset > last_cached {
            return Err(invalid_request(LAST_PAST_ACQUIRED.to_owned()));
        }
        Ok(range.map(|(k, _)| *k).collect())
    }
}

/// What an acknowledgement needs to know about the partition, copied out so the cache entry
/// can be borrowed mutably.
struct AckRules<'a> {
    member_id: &'a str,
    start_offset: i64,
    delivery_count_limit: i16,
    renew_enabled: bool,
    deadline_ms: i64,
    dlq: bool,
}

/// Shape checks Kafka makes before any state is touched (types 0..=4; one type, or one per
/// offset). The request layer validates these too; here they keep indexing safe.
fn validate_shape(ack: &AcknowledgementBatch) -> Result<(), AcknowledgeError> {
    let types = &ack.acknowledge_types;
    if ack.first_offset > ack.last_offset {
        return Err(invalid_request(format!(
            "First offset {} is greater than last offset {}.",
            ack.first_offset, ack.last_offset
        )));
    }
    if types.iter().any(|t| !(0..=4).contains(t)) {
        return Err(invalid_request(format!(
            "Invalid acknowledge type: {types:?}"
        )));
    }
    let span = ack
        .last_offset
        .saturating_sub(ack.first_offset)
        .saturating_add(1);
    if types.is_empty() || (types.len() > 1 && i64::try_from(types.len()) != Ok(span)) {
        return Err(invalid_request(format!(
            "Acknowledge types count {} does not match the batch of {span} records.",
            types.len()
        )));
    }
    Ok(())
}

/// Kafka's `acknowledgeBatchRecords` for one cache entry.
fn acknowledge_batch(
    batch: &mut InFlightBatch,
    ack: &AcknowledgementBatch,
    rules: &AckRules<'_>,
) -> Result<(), AcknowledgeError> {
    let types = &ack.acknowledge_types;
    if batch.offsets.is_none() {
        match &batch.batch.member_id {
            None => return Err(invalid_state(BATCH_NOT_ACQUIRED)),
            Some(owner) if &**owner != rules.member_id => {
                return Err(invalid_state(NOT_BATCH_OWNER))
            }
            Some(_) => {}
        }
    }
    let full_match = batch.first >= ack.first_offset && batch.last <= ack.last_offset;
    if full_match && batch.offsets.is_none() && types.len() == 1 {
        if batch.batch.state != RecordState::Acquired {
            return Err(invalid_state(BATCH_NOT_ACQUIRED));
        }
        return apply_type(&mut batch.batch, types[0], rules);
    }
    if batch.offsets.is_none() && batch.batch.state != RecordState::Acquired {
        return Err(invalid_state(SUBSET_NOT_ACQUIRED));
    }
    let first = batch.first;
    for (offset, state) in (first..).zip(batch.split().iter_mut()) {
        if offset < ack.first_offset || offset < rules.start_offset {
            continue;
        }
        if offset > ack.last_offset {
            break;
        }
        if state.state != RecordState::Acquired {
            return Err(invalid_state(OFFSET_NOT_ACQUIRED));
        }
        if !state.is_owned_by(rules.member_id) {
            return Err(invalid_state(NOT_OFFSET_OWNER));
        }
        let ack_type = if types.len() > 1 {
            usize::try_from(offset - ack.first_offset)
                .ok()
                .and_then(|i| types.get(i))
                .copied()
                .unwrap_or(types[0])
        } else {
            types[0]
        };
        apply_type(state, ack_type, rules)?;
    }
    Ok(())
}

/// One acknowledge type applied to an ACQUIRED state (Kafka's ACK_TYPE_TO_RECORD_STATE).
fn apply_type(
    state: &mut InFlightState,
    ack_type: i8,
    rules: &AckRules<'_>,
) -> Result<(), AcknowledgeError> {
    match ack_type {
        3 if rules.dlq => {
            state.begin_archiving(DlqCause::ClientReject);
        }
        0 | 3 => {
            state.complete(RecordState::Archived);
        }
        1 => {
            state.complete(RecordState::Acknowledged);
        }
        2 => {
            state.release(rules.delivery_count_limit, rules.dlq);
        }
        4 => {
            if !rules.renew_enabled {
                return Err(invalid_state(RENEW_DISABLED));
            }
            state.lock_deadline_ms = Some(rules.deadline_ms);
        }
        other => {
            return Err(invalid_request(format!(
                "Invalid acknowledge type: [{other}]"
            )))
        }
    }
    Ok(())
}
