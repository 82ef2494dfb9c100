//! Every key layout of the database, in one place.
//!
//! Keys are big-endian so that RocksDB's byte order is numeric order: all batches of a
//! partition are contiguous and sorted by base offset, which makes "the batch containing
//! offset N" a single `seek_for_prev`. Nothing outside `storage/` builds or parses a key.

/// Partition uids stay below this so a batch key can never sort among the table keys of the
/// shared column family (their first byte is a letter, 0x61 and above).
pub const MAX_PARTITION_UID: u64 = 1 << 56;

/// Cluster metadata: 'm' ‖ typed name -> serialized record.
pub(super) const T_META: u8 = b'm';
/// ListOffsets by time: 't' ‖ uid ‖ max-timestamp-so-far ‖ base offset -> "".
pub(super) const T_TIME: u8 = b't';
/// Committed offsets: 'g' ‖ group ‖ topic ‖ partition -> offset, epoch, metadata.
pub(super) const T_GROUPS: u8 = b'g';
/// Idempotent producer state: 'p' ‖ partition uid ‖ producer id -> entry.
pub(super) const T_PRODUCERS: u8 = b'p';
/// Log start offset moved by DeleteRecords or retention: 'l' ‖ partition uid -> i64.
/// Without it a log whose batches were all deleted would restart at offset 0.
pub(super) const T_LOG_START: u8 = b'l';
/// Aborted transactions of a partition, for read_committed fetches:
/// 'a' ‖ partition uid ‖ abort marker offset ‖ producer id -> first offset of the transaction.
pub(super) const T_ABORTED: u8 = b'a';
/// Transaction coordinator state: 'x' ‖ transactional id -> serialized state.
pub(super) const T_TXN: u8 = b'x';

/// Names in the meta table (after `T_META`).
pub(super) const META_CLUSTER_ID: &[u8] = b"cluster_id";
/// The next partition uid to hand out.
pub(super) const META_NEXT_UID: &[u8] = b"next_partition_uid";
/// The end of the last reserved block of producer ids.
pub(super) const META_NEXT_PRODUCER_ID: &[u8] = b"next_producer_id";
/// Dynamic broker configs (AlterConfigs on a BROKER resource).
pub(super) const META_BROKER_CONFIGS: &[u8] = b"broker-configs";
/// One record per topic: prefix ‖ topic name.
pub(super) const META_TOPIC: &[u8] = b"topic\0";
/// One record per SASL user (its salted SCRAM credentials): prefix ‖ user name.
pub(super) const META_USER: &[u8] = b"user\0";
/// A client-quota entity's config record (other than a named user's): prefix ‖ its path
/// under ZooKeeper's `/config` (`clients/C`, `users/U/clients/C`, `ips/IP`, ...).
pub(super) const META_ENTITY_CONFIG: &[u8] = b"entity-config\0";
/// A delegation token's record (Kafka's ZooKeeper JSON, no HMAC): prefix ‖ token id.
pub(super) const META_TOKEN: &[u8] = b"token\0";
/// The ACLs of one resource pattern: prefix ‖ type NUL pattern NUL name.
pub(super) const META_ACL: &[u8] = b"acl\0";
/// Meta entries `share-state\0<topic id>\0<partition>\0<group>`: a share partition's
/// persisted delivery state (KIP-932), what a restarted broker resumes from.
pub(super) const META_SHARE_STATE: &[u8] = b"share-state\0";

pub(super) fn prefixed(table: u8, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + key.len());
    k.push(table);
    k.extend_from_slice(key);
    k
}

/// The full key of a meta-table name.
pub(super) fn meta_key(name: &[u8]) -> Vec<u8> {
    prefixed(T_META, name)
}

/// The meta key of a topic's record.
pub(super) fn topic_key(name: &str) -> Vec<u8> {
    meta_key(&[META_TOPIC, name.as_bytes()].concat())
}

/// The key prefix of a group's offsets: group length (u16 BE) ‖ group, so all offsets of a
/// group are contiguous. None for an id whose length does not fit the two length bytes.
pub(super) fn group_prefix(group: &str) -> Option<Vec<u8>> {
    let len = u16::try_from(group.len()).ok()?;
    let mut k = Vec::with_capacity(2 + group.len());
    k.extend_from_slice(&len.to_be_bytes());
    k.extend_from_slice(group.as_bytes());
    Some(k)
}

/// group prefix ‖ topic length (u16 BE) ‖ topic ‖ partition (i32 BE), without the table byte.
pub(super) fn offset_key(group: &str, topic: &str, partition: i32) -> Option<Vec<u8>> {
    let mut k = group_prefix(group)?;
    k.extend_from_slice(&u16::try_from(topic.len()).ok()?.to_be_bytes());
    k.extend_from_slice(topic.as_bytes());
    k.extend_from_slice(&partition.to_be_bytes());
    Some(k)
}

/// Splits an offset key (without the table byte) back into (group, topic, partition).
pub(super) fn parse_offset_key(k: &[u8]) -> Option<(String, String, i32)> {
    let glen = u16::from_be_bytes(k.get(..2)?.try_into().ok()?) as usize;
    let group = std::str::from_utf8(k.get(2..2 + glen)?).ok()?;
    let rest = &k[2 + glen..];
    let tlen = u16::from_be_bytes(rest.get(..2)?.try_into().ok()?) as usize;
    let topic = std::str::from_utf8(rest.get(2..2 + tlen)?).ok()?;
    let p = i32::from_be_bytes(rest.get(2 + tlen..6 + tlen)?.try_into().ok()?);
    Some((group.to_string(), topic.to_string(), p))
}

/// Key of a batch: uid ‖ base offset.
pub(super) fn log_key(uid: u64, base_offset: i64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&uid.to_be_bytes());
    k[8..].copy_from_slice(&(base_offset as u64).to_be_bytes());
    k
}

/// Timestamps are signed; flipping the sign bit makes their big-endian bytes sort numerically.
fn ts_bytes(ts: i64) -> [u8; 8] {
    ((ts as u64) ^ (1u64 << 63)).to_be_bytes()
}

/// The inverse of [`ts_bytes`].
pub(super) fn ts_from(b: &[u8]) -> i64 {
    (be_i64(b) as u64 ^ (1u64 << 63)) as i64
}

/// Key of a time-index entry.
pub(super) fn time_key(uid: u64, max_ts_so_far: i64, base_offset: i64) -> [u8; 25] {
    let mut k = [0u8; 25];
    k[0] = T_TIME;
    k[1..9].copy_from_slice(&uid.to_be_bytes());
    k[9..17].copy_from_slice(&ts_bytes(max_ts_so_far));
    k[17..].copy_from_slice(&(base_offset as u64).to_be_bytes());
    k
}

/// table ‖ uid ‖ producer id: a producer's entry in a partition's producer table.
pub(super) fn producer_key(uid: u64, producer_id: i64) -> Vec<u8> {
    let mut k = prefixed(T_PRODUCERS, &uid.to_be_bytes());
    k.extend_from_slice(&producer_id.to_be_bytes());
    k
}

/// table ‖ uid ‖ marker offset ‖ producer id: one aborted transaction of a partition.
pub(super) fn aborted_key(uid: u64, marker_offset: i64, producer_id: i64) -> Vec<u8> {
    let mut k = prefixed(T_ABORTED, &uid.to_be_bytes());
    k.extend_from_slice(&marker_offset.to_be_bytes());
    k.extend_from_slice(&producer_id.to_be_bytes());
    k
}

/// [table ‖ uid, table ‖ uid+1): every key of one partition in a per-partition table.
pub(super) fn partition_range(table: u8, uid: u64) -> (Vec<u8>, Vec<u8>) {
    let from = prefixed(table, &uid.to_be_bytes());
    let to = match uid.checked_add(1) {
        Some(next) => prefixed(table, &next.to_be_bytes()),
        None => vec![table + 1],
    };
    (from, to)
}

pub(super) fn be_i64(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    i64::from_be_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_keys_round_trip_and_never_wrap() {
        let k = offset_key("grp", "topic-a", 7).unwrap();
        assert_eq!(
            parse_offset_key(&k),
            Some(("grp".into(), "topic-a".into(), 7))
        );
        // A group whose name is a prefix of another's does not capture its keys.
        assert!(!offset_key("ab", "t", 0)
            .unwrap()
            .starts_with(&group_prefix("a").unwrap()));
        // An id too long for the two length bytes has no key, rather than a wrapped one.
        assert_eq!(group_prefix(&"g".repeat(65_537)), None);
    }

    #[test]
    fn time_keys_sort_by_timestamp_including_negative_ones() {
        let a = time_key(1, -5, 0);
        let b = time_key(1, 3, 0);
        assert!(a < b);
        assert_eq!(ts_from(&a[9..17]), -5);
        assert_eq!(ts_from(&b[9..17]), 3);
    }
}
