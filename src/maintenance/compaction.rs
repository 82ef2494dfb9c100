//! Log compaction for topics whose `cleanup.policy` includes `compact`: the latest record
//! of each key survives, older ones disappear, offsets of survivors never change, and
//! tombstones (null values) go once they are older than `delete.retention.ms`.
//!
//! It works per batch rather than per segment: a batch whose records all survive is left
//! alone; a batch that loses some is rebuilt, as Kafka's cleaner rebuilds v2 batches, with
//! the same base and last offset, producer fields and codec, its surviving records copied
//! byte for byte (headers included); a batch that loses all is deleted. Only batches
//! whose newest record is older than `min.compaction.lag.ms` are cleaned. The cleaner runs
//! every `log.cleaner.backoff.ms` and cleans a partition when the share of bytes written
//! since its last cleaning reaches `min.cleanable.dirty.ratio`, or a tombstone is due.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use kafka_protocol::ResponseError;

use crate::clock::now_ms;
use crate::config::BrokerConfig;
use crate::log::batch::{self, BatchHeader};
use crate::log::records::{self, codec, Check, Hold};
use crate::log::Partition;
use crate::metadata::Metadata;
use crate::topic_config;

/// The compaction settings of one topic.
#[derive(Debug, Clone, Copy)]
pub struct CompactionConfig {
    pub delete_retention_ms: i64,
    pub min_compaction_lag_ms: i64,
    pub min_cleanable_dirty_ratio: f64,
}

/// The compaction settings of a topic, or None when its policy does not include `compact`.
pub fn compaction_of(
    metadata: &Metadata,
    config: &BrokerConfig,
    configs: &std::collections::BTreeMap<String, String>,
) -> Option<CompactionConfig> {
    let dynamic = metadata.broker_configs();
    let value = |name: &str| topic_config::value_of(configs, name, config, &dynamic);
    if !topic_config::split_list(&value("cleanup.policy"))
        .iter()
        .any(|p| p == "compact")
    {
        return None;
    }
    Some(CompactionConfig {
        delete_retention_ms: value("delete.retention.ms").parse().unwrap_or(86_400_000),
        min_compaction_lag_ms: value("min.compaction.lag.ms").parse().unwrap_or(0),
        min_cleanable_dirty_ratio: value("min.cleanable.dirty.ratio").parse().unwrap_or(0.5),
    })
}

/// What one cleaning of one partition did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CleanStats {
    /// Bytes of the batches that were read (the cleanable part of the log).
    pub bytes_read: u64,
    /// Bytes removed from the log.
    pub bytes_freed: u64,
    pub records_removed: u64,
    pub batches_rewritten: u64,
    pub batches_deleted: u64,
}

/// The cleaner's memory of a partition between runs.
#[derive(Debug, Default, Clone)]
pub struct CleanerMark {
    /// Everything below this offset was cleaned.
    pub cleaned_up_to: i64,
    /// Each kept tombstone's offset and when a cleaning first kept it. As with Kafka's
    /// delete horizon (KIP-534), a tombstone stays for `delete.retention.ms` after the
    /// cleaner first saw it, so consumers catching up can still observe the delete. (In
    /// memory: after a restart the wait starts over, which only keeps tombstones longer.)
    pub tombstones: HashMap<i64, i64>,
}

/// True for a data batch of a transaction its producer aborted.
fn in_aborted_txn(p: &Partition, h: &BatchHeader) -> bool {
    h.is_transactional()
        && !h.is_control()
        && p.aborted_between(h.base_offset, h.base_offset + 1)
            .iter()
            .any(|a| a.producer_id == h.producer_id && a.first_offset <= h.base_offset)
}

/// Cleans one partition if it is due. `mark` is updated to what was cleaned.
pub fn clean_partition(
    p: &Partition,
    cfg: &CompactionConfig,
    mark: &mut CleanerMark,
    now: i64,
) -> Result<CleanStats, ResponseError> {
    let start = p.log_start_offset();
    let hw = p.high_watermark();
    let tombstone_due = mark
        .tombstones
        .values()
        .min()
        .is_some_and(|t| now >= t.saturating_add(cfg.delete_retention_ms));
    if hw <= mark.cleaned_up_to && !tombstone_due {
        return Ok(CleanStats::default()); // nothing written since the last cleaning
    }
    // Pass 1: the cleanable range (batches whose newest record has aged past the lag),
    // the dirty share, and the offset of each key's latest record in the range.
    let mut latest: HashMap<Bytes, i64> = HashMap::new();
    let (mut total, mut dirty) = (0u64, 0u64);
    let mut end = start;
    let mut failed = None;
    // Open transactions are not cleaned: the cleanable range ends at the last stable offset.
    let stable = p.last_stable_offset();
    p.scan_batches(|_, bytes| {
        let Some(h) = BatchHeader::parse(bytes) else {
            return false;
        };
        if now.saturating_sub(h.max_timestamp) < cfg.min_compaction_lag_ms
            || h.last_offset() >= stable
        {
            return false;
        }
        total += bytes.len() as u64;
        if h.last_offset() >= mark.cleaned_up_to {
            dirty += bytes.len() as u64;
        }
        end = h.last_offset() + 1;
        // Aborted records never count as a key's latest value.
        if h.is_control() || in_aborted_txn(p, &h) {
            return true;
        }
        let walked = records::walk(bytes, records::STORED_BATCH_CAP, Check::Stored, Hold::Record, |r| {
            if let Some(k) = r.key {
                latest.insert(Bytes::copy_from_slice(k), h.base_offset + i64::from(r.offset_delta));
            }
            true
        });
        match walked {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(topic = %p.topic, partition = p.index, offset = h.base_offset, error = %e, "the cleaner cannot read a batch");
                failed = Some(e.error());
                false
            }
        }
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    let dirty_enough = total > 0 && dirty as f64 / total as f64 >= cfg.min_cleanable_dirty_ratio;
    if total == 0 || !(dirty_enough || tombstone_due) {
        return Ok(CleanStats::default());
    }

    // Pass 2: decide each batch's fate.
    let mut stats = CleanStats::default();
    let mut removed = Vec::new();
    let mut removed_bytes = 0u64;
    let mut rewritten = Vec::new();
    let mut tombstones = HashMap::new();
    p.scan_batches(|base, bytes| {
        let Some(h) = BatchHeader::parse(bytes) else {
            return false;
        };
        if h.base_offset >= end {
            return false;
        }
        stats.bytes_read += bytes.len() as u64;
        if h.is_control() {
            return true;
        }
        if in_aborted_txn(p, &h) {
            // As Kafka's cleaner: records of aborted transactions go entirely.
            removed.push(base);
            removed_bytes += bytes.len() as u64;
            stats.records_removed += h.records_count.max(0) as u64;
            stats.batches_deleted += 1;
            stats.bytes_freed += bytes.len() as u64;
            return true;
        }
        // The survivors' records, uncompressed and byte for byte, and the newest timestamp
        // among them (the rebuilt batch's max timestamp, as Kafka's cleaner sets it).
        let mut kept = Vec::new();
        let (mut count, mut survivors) = (0i32, 0i32);
        let mut max_ts = i64::MIN;
        let walked = records::walk(bytes, records::STORED_BATCH_CAP, Check::Stored, Hold::Record, |r| {
            count += 1;
            let offset = h.base_offset + i64::from(r.offset_delta);
            let Some(k) = r.key else { return true };
            if latest.get(k) != Some(&offset) {
                return true;
            }
            if r.value.is_none() {
                let seen = mark.tombstones.get(&offset).copied().unwrap_or(now);
                if now >= seen.saturating_add(cfg.delete_retention_ms) {
                    return true;
                }
                tombstones.insert(offset, seen);
            }
            survivors += 1;
            max_ts = max_ts.max(h.base_timestamp.saturating_add(r.timestamp_delta));
            kept.extend_from_slice(r.raw);
            true
        });
        if let Err(e) = walked {
            tracing::warn!(topic = %p.topic, partition = p.index, offset = h.base_offset, error = %e, "the cleaner cannot read a batch");
            failed = Some(e.error());
            return false;
        }
        stats.records_removed += (count - survivors) as u64;
        if survivors == count {
            return true;
        }
        removed.push(base);
        removed_bytes += bytes.len() as u64;
        if survivors == 0 {
            stats.batches_deleted += 1;
            stats.bytes_freed += bytes.len() as u64;
            return true;
        }
        let max_ts = if h.is_log_append_time() { h.max_timestamp } else { max_ts };
        match records::compress(codec(&h), &mut &kept[..]) {
            Ok(section) => {
                let new = batch::rebuild(bytes, codec(&h), survivors, max_ts, &section);
                stats.batches_rewritten += 1;
                stats.bytes_freed += (bytes.len() as u64).saturating_sub(new.len() as u64);
                rewritten.push((base, new));
                true
            }
            Err(e) => {
                tracing::error!(topic = %p.topic, partition = p.index, error = %e, "the cleaner could not compress a rebuilt batch");
                failed = Some(ResponseError::UnknownServerError);
                false
            }
        }
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    if (!removed.is_empty() || !rewritten.is_empty())
        && !p.replace_batches(start, &removed, removed_bytes, &rewritten)?
    {
        return Ok(CleanStats::default()); // the log start moved meanwhile: next round
    }
    mark.cleaned_up_to = end.min(hw);
    mark.tombstones = tombstones;
    Ok(stats)
}

/// One pass of the cleaner over every compacted topic. Returns the totals.
pub fn run_once(
    metadata: &Metadata,
    config: &BrokerConfig,
    marks: &mut HashMap<u64, CleanerMark>,
) -> CleanStats {
    let now = now_ms();
    let mut total = CleanStats::default();
    let mut live = HashSet::new();
    for topic in metadata.topics() {
        let Some(cfg) = compaction_of(metadata, config, &topic.configs) else {
            continue;
        };
        for p in &topic.partitions {
            live.insert(p.uid);
            let mark = marks.entry(p.uid).or_default();
            let started = std::time::Instant::now();
            match clean_partition(p, &cfg, mark, now) {
                Ok(s) if s.records_removed > 0 => {
                    tracing::info!(
                        topic = %topic.name,
                        partition = p.index,
                        bytes_read = s.bytes_read,
                        elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
                        records_removed = s.records_removed,
                        batches_rewritten = s.batches_rewritten,
                        batches_deleted = s.batches_deleted,
                        bytes_freed = s.bytes_freed,
                        "compacted"
                    );
                    total.bytes_read += s.bytes_read;
                    total.bytes_freed += s.bytes_freed;
                    total.records_removed += s.records_removed;
                    total.batches_rewritten += s.batches_rewritten;
                    total.batches_deleted += s.batches_deleted;
                }
                Ok(s) => total.bytes_read += s.bytes_read,
                Err(e) => {
                    tracing::warn!(topic = %topic.name, partition = p.index, error = ?e, "compaction failed")
                }
            }
        }
    }
    marks.retain(|uid, _| live.contains(uid));
    total
}
