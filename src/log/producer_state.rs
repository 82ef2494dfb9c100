//! An idempotent producer's state on one partition: its epoch, the sequence ranges and
//! offsets of its last batches (for duplicate detection and ordering), and its open
//! transaction's first offset. It lives with the log, which writes it with every batch; the
//! transaction coordinator only reaches it through `Partition`.

use kafka_protocol::ResponseError;

/// How many recent batches per producer and partition are remembered for duplicate
/// detection: Kafka's limit of in-flight requests for an idempotent producer.
pub const MAX_CACHED_BATCHES: usize = 5;

/// Sequence range and offset of one appended batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMeta {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: i64,
}

/// What a partition remembers about one idempotent producer.
///
/// It exists so a retried batch is answered with its original offset instead of being
/// appended twice, and so a gap or a stale epoch is refused with Kafka's error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    pub epoch: i16,
    pub batches: std::collections::VecDeque<BatchMeta>,
    /// First offset of this producer's open transaction on the partition: the last stable
    /// offset cannot pass it until the transaction's marker is written.
    pub txn_first_offset: Option<i64>,
    /// Max timestamp of the producer's last batch (DescribeProducers).
    pub last_timestamp: i64,
    /// Epoch of the coordinator that wrote this producer's last transaction marker here, -1
    /// before any (DescribeProducers reports it, as Kafka does).
    pub coordinator_epoch: i32,
}

/// The verdict on a batch from an idempotent producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    Append,
    /// Already appended at this base offset: answer success without appending.
    Duplicate(i64),
}

/// Kafka's sequence arithmetic: sequences wrap from i32::MAX to 0.
pub fn increment_sequence(seq: i32, by: i32) -> i32 {
    if seq > i32::MAX - by {
        by - (i32::MAX - seq) - 1
    } else {
        seq + by
    }
}

/// Checks a batch's producer epoch and sequence against what the partition has seen, as
/// Kafka's ProducerStateManager does. An unknown producer may start at any sequence (its
/// state may have been lost to retention), as in Kafka since KIP-360.
pub fn check_sequence(
    entry: Option<&ProducerEntry>,
    epoch: i16,
    first_seq: i32,
    last_seq: i32,
) -> Result<SequenceCheck, ResponseError> {
    let Some(entry) = entry else {
        return Ok(SequenceCheck::Append);
    };
    if epoch < entry.epoch {
        return Err(ResponseError::InvalidProducerEpoch);
    }
    if epoch > entry.epoch {
        return if first_seq == 0 {
            Ok(SequenceCheck::Append)
        } else {
            Err(ResponseError::OutOfOrderSequenceNumber)
        };
    }
    if let Some(b) = entry
        .batches
        .iter()
        .find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
    {
        return Ok(SequenceCheck::Duplicate(b.base_offset));
    }
    match entry.batches.back() {
        Some(last) if increment_sequence(last.last_seq, 1) != first_seq => {
            Err(ResponseError::OutOfOrderSequenceNumber)
        }
        _ => Ok(SequenceCheck::Append),
    }
}

/// Records an appended batch in the producer's entry (creating or re-epoching it).
pub fn record_batch(entry: &mut Option<ProducerEntry>, epoch: i16, meta: BatchMeta) {
    let e = entry.get_or_insert_with(|| ProducerEntry::new(epoch));
    if epoch != e.epoch {
        e.epoch = epoch;
        e.batches.clear();
    }
    e.batches.push_back(meta);
    while e.batches.len() > MAX_CACHED_BATCHES {
        e.batches.pop_front();
    }
}

impl ProducerEntry {
    pub fn new(epoch: i16) -> ProducerEntry {
        ProducerEntry {
            epoch,
            batches: Default::default(),
            txn_first_offset: None,
            last_timestamp: -1,
            coordinator_epoch: -1,
        }
    }

    /// epoch (i16) ‖ count (u8) ‖ count × (first seq i32, last seq i32, base offset i64)
    /// ‖ open transaction's first offset (i64, -1 for none) ‖ last timestamp (i64) ‖
    /// coordinator epoch (i32). The trailing fields came later, one by one; entries stored
    /// before them decode without (-1).
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(19 + self.batches.len() * 16);
        v.extend_from_slice(&self.epoch.to_be_bytes());
        v.push(self.batches.len() as u8);
        for b in &self.batches {
            v.extend_from_slice(&b.first_seq.to_be_bytes());
            v.extend_from_slice(&b.last_seq.to_be_bytes());
            v.extend_from_slice(&b.base_offset.to_be_bytes());
        }
        v.extend_from_slice(&self.txn_first_offset.unwrap_or(-1).to_be_bytes());
        v.extend_from_slice(&self.last_timestamp.to_be_bytes());
        v.extend_from_slice(&self.coordinator_epoch.to_be_bytes());
        v
    }

    pub fn decode(v: &[u8]) -> Option<ProducerEntry> {
        let epoch = i16::from_be_bytes(v.get(..2)?.try_into().ok()?);
        let n = *v.get(2)? as usize;
        let mut batches = std::collections::VecDeque::with_capacity(n);
        for i in 0..n {
            let b = v.get(3 + i * 16..3 + (i + 1) * 16)?;
            batches.push_back(BatchMeta {
                first_seq: i32::from_be_bytes(b[..4].try_into().ok()?),
                last_seq: i32::from_be_bytes(b[4..8].try_into().ok()?),
                base_offset: i64::from_be_bytes(b[8..].try_into().ok()?),
            });
        }
        let tail = 3 + n * 16;
        let long_at = |at: usize| {
            v.get(at..at + 8)
                .and_then(|b| b.try_into().ok())
                .map(i64::from_be_bytes)
        };
        Some(ProducerEntry {
            epoch,
            batches,
            txn_first_offset: long_at(tail).filter(|o| *o >= 0),
            last_timestamp: long_at(tail + 8).unwrap_or(-1),
            coordinator_epoch: v
                .get(tail + 16..tail + 20)
                .and_then(|b| b.try_into().ok())
                .map(i32::from_be_bytes)
                .unwrap_or(-1),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(epoch: i16, seqs: &[(i32, i32, i64)]) -> ProducerEntry {
        ProducerEntry {
            txn_first_offset: None,
            last_timestamp: -1,
            coordinator_epoch: -1,
            epoch,
            batches: seqs
                .iter()
                .map(|&(first_seq, last_seq, base_offset)| BatchMeta {
                    first_seq,
                    last_seq,
                    base_offset,
                })
                .collect(),
        }
    }

    #[test]
    fn sequences_duplicates_gaps_and_epochs() {
        let e = entry(3, &[(0, 4, 100), (5, 9, 105)]);
        assert_eq!(
            check_sequence(Some(&e), 3, 10, 14),
            Ok(SequenceCheck::Append)
        );
        assert_eq!(
            check_sequence(Some(&e), 3, 5, 9),
            Ok(SequenceCheck::Duplicate(105))
        );
        assert_eq!(
            check_sequence(Some(&e), 3, 12, 14),
            Err(ResponseError::OutOfOrderSequenceNumber)
        );
        assert_eq!(
            check_sequence(Some(&e), 2, 10, 14),
            Err(ResponseError::InvalidProducerEpoch)
        );
        assert_eq!(check_sequence(Some(&e), 4, 0, 3), Ok(SequenceCheck::Append));
        assert_eq!(
            check_sequence(Some(&e), 4, 7, 9),
            Err(ResponseError::OutOfOrderSequenceNumber)
        );
        assert_eq!(check_sequence(None, 0, 77, 80), Ok(SequenceCheck::Append));
        let wrap = entry(0, &[(i32::MAX - 1, i32::MAX, 5)]);
        assert_eq!(
            check_sequence(Some(&wrap), 0, 0, 3),
            Ok(SequenceCheck::Append)
        );
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
    }

    #[test]
    fn entry_keeps_five_batches_and_round_trips() {
        let mut e = None;
        for i in 0..8 {
            record_batch(
                &mut e,
                1,
                BatchMeta {
                    first_seq: i * 2,
                    last_seq: i * 2 + 1,
                    base_offset: i as i64 * 2,
                },
            );
        }
        let mut e = e.unwrap();
        assert_eq!(e.batches.len(), MAX_CACHED_BATCHES);
        assert_eq!(e.batches[0].first_seq, 6);
        assert_eq!(ProducerEntry::decode(&e.encode()), Some(e.clone()));
        e.txn_first_offset = Some(77);
        e.last_timestamp = 1234;
        e.coordinator_epoch = 3;
        assert_eq!(ProducerEntry::decode(&e.encode()), Some(e.clone()));
        // An entry stored before the coordinator epoch was kept: -1.
        let before = &e.encode()[..3 + 5 * 16 + 16];
        let decoded = ProducerEntry::decode(before).unwrap();
        assert_eq!(
            (decoded.last_timestamp, decoded.coordinator_epoch),
            (1234, -1)
        );
        // An entry stored before transactions existed has no trailing fields.
        let old = &e.encode()[..3 + 5 * 16];
        let decoded = ProducerEntry::decode(old).unwrap();
        assert_eq!(
            (decoded.txn_first_offset, decoded.last_timestamp),
            (None, -1)
        );
        assert_eq!(decoded.batches, e.batches);
    }
}
