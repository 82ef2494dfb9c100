//! Retention: deletes whole batches from the front of each partition once they are older
//! than the topic's `retention.ms` or the partition is larger than `retention.bytes`, on
//! topics whose `cleanup.policy` includes `delete`. Runs every
//! `log.retention.check.interval.ms`, as Kafka's log manager does.

use crate::clock::now_ms;
use crate::config::BrokerConfig;
use crate::metadata::Metadata;
use crate::topic_config;

/// The retention settings in force for one topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Batches whose newest timestamp is older than this many ms are deleted (None: never).
    pub ms: Option<i64>,
    /// A partition is trimmed from the front to at most this many bytes (None: no limit).
    pub bytes: Option<i64>,
}

/// The retention of a topic from its configs and the broker's, or None when its cleanup
/// policy does not include `delete` (compact-only topics are never trimmed by age or size).
pub fn retention_of(
    metadata: &Metadata,
    config: &BrokerConfig,
    configs: &std::collections::BTreeMap<String, String>,
) -> Option<Retention> {
    let dynamic = metadata.broker_configs();
    let value = |name: &str| topic_config::value_of(configs, name, config, &dynamic);
    if !topic_config::split_list(&value("cleanup.policy"))
        .iter()
        .any(|p| p == "delete")
    {
        return None;
    }
    let ms = value("retention.ms")
        .parse::<i64>()
        .ok()
        .filter(|v| *v >= 0);
    let bytes = value("retention.bytes")
        .parse::<i64>()
        .ok()
        .filter(|v| *v >= 0);
    Some(Retention { ms, bytes })
}

/// One pass over every partition. Returns the bytes freed.
pub fn run_once(metadata: &Metadata, config: &BrokerConfig) -> u64 {
    let now = now_ms();
    let mut freed = 0;
    // Producer state is pruned with the log: producers idle past producer.id.expiration.ms
    // are forgotten on every partition, whatever its cleanup policy.
    let expiration = config.producer_id_expiration_ms;
    for topic in metadata.topics() {
        for p in &topic.partitions {
            match p.expire_producers(now, expiration) {
                Ok(0) => {}
                Ok(n) => {
                    tracing::debug!(topic = %topic.name, partition = p.index, expired = n, "expired idle producer ids")
                }
                Err(e) => {
                    tracing::warn!(topic = %topic.name, partition = p.index, error = ?e, "producer expiration failed")
                }
            }
        }
    }
    for topic in metadata.topics() {
        let Some(r) = retention_of(metadata, config, &topic.configs) else {
            continue;
        };
        if r.ms.is_none() && r.bytes.is_none() {
            continue;
        }
        for p in &topic.partitions {
            let mut excess = match r.bytes {
                Some(limit) => match p.size_bytes() {
                    Ok(size) => size as i64 - limit,
                    Err(_) => continue,
                },
                None => 0,
            };
            let result = p.apply_retention(|h, size| {
                // Kafka deletes a segment when the log stays at or above retention.bytes
                // without it, or when its newest record is older than retention.ms.
                let by_size = excess >= size as i64;
                let by_time =
                    r.ms.is_some_and(|ms| now.saturating_sub(h.max_timestamp) > ms);
                if by_size || by_time {
                    excess -= size as i64;
                    true
                } else {
                    false
                }
            });
            match result {
                Ok(0) => {}
                Ok(n) => {
                    freed += n;
                    tracing::info!(
                        topic = %topic.name,
                        partition = p.index,
                        freed_bytes = n,
                        log_start_offset = p.log_start_offset(),
                        "retention deleted batches"
                    );
                }
                Err(e) => {
                    tracing::warn!(topic = %topic.name, partition = p.index, error = ?e, "retention failed")
                }
            }
        }
    }
    freed
}
