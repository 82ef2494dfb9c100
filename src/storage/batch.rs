//! Typed writes, applied together.
//!
//! An append and the state that goes with it (producer sequences, the time index), or a
//! topic and the partition uids it consumed, must reach the disk in one atomic write. A
//! service collects them in a [`Batch`] by name and hands it to [`Store::write`]; it never
//! sees a key or a RocksDB `WriteBatch`.

use rocksdb::WriteBatch;

use super::keys::*;
use super::{Store, StoreError};

/// Writes to be applied atomically by [`Store::write`] or [`Store::write_synced`].
///
/// It borrows the store because RocksDB needs the column family of each write when it is
/// added, and only the store knows which family holds which table.
pub struct Batch<'a> {
    store: &'a Store,
    pub(super) wb: WriteBatch,
}

impl<'a> Batch<'a> {
    pub(super) fn new(store: &'a Store) -> Batch<'a> {
        Batch {
            store,
            wb: WriteBatch::default(),
        }
    }

    /// A record batch stored whole under its base offset.
    pub fn put_log(&mut self, uid: u64, base_offset: i64, batch: &[u8]) {
        self.wb
            .put_cf(self.store.log(), log_key(uid, base_offset), batch);
    }

    pub fn delete_log(&mut self, uid: u64, base_offset: i64) {
        self.wb
            .delete_cf(self.store.log(), log_key(uid, base_offset));
    }

    /// A time-index entry: the batch at `base_offset` raised the partition's largest
    /// timestamp so far to `max_ts`.
    pub fn put_time_index(&mut self, uid: u64, max_ts: i64, base_offset: i64) {
        self.wb
            .put_cf(self.store.meta(), time_key(uid, max_ts, base_offset), []);
    }

    /// Producer state of one partition, written with the batch it describes.
    pub fn put_producer(&mut self, uid: u64, producer_id: i64, value: &[u8]) {
        self.wb
            .put_cf(self.store.meta(), producer_key(uid, producer_id), value);
    }

    /// Forgets one producer of a partition (producer.id.expiration.ms).
    pub fn delete_producer(&mut self, uid: u64, producer_id: i64) {
        self.wb
            .delete_cf(self.store.meta(), producer_key(uid, producer_id));
    }

    /// Records an aborted transaction: producer `producer_id`'s records from `first_offset`
    /// up to the abort marker at `marker_offset` are to be skipped by read_committed readers.
    pub fn put_aborted(&mut self, uid: u64, marker_offset: i64, producer_id: i64, first: i64) {
        self.wb.put_cf(
            self.store.meta(),
            aborted_key(uid, marker_offset, producer_id),
            first.to_be_bytes(),
        );
    }

    /// Forgets the aborted transactions whose marker is below `offset` (the new log start):
    /// no fetch can reach their records any more, so the index shrinks with the log.
    pub fn delete_aborted_before(&mut self, uid: u64, offset: i64) {
        let key = |marker: i64| {
            let mut k = prefixed(T_ABORTED, &uid.to_be_bytes());
            k.extend_from_slice(&marker.max(0).to_be_bytes());
            k
        };
        self.wb
            .delete_range_cf(self.store.meta(), key(0), key(offset));
    }

    /// Stores (or, with `None`, removes) one transactional id's coordinator state.
    pub fn put_txn(&mut self, transactional_id: &str, value: Option<&[u8]>) {
        let k = prefixed(T_TXN, transactional_id.as_bytes());
        match value {
            Some(v) => self.wb.put_cf(self.store.meta(), k, v),
            None => self.wb.delete_cf(self.store.meta(), k),
        }
    }

    /// Removes every batch and every per-partition table entry of a partition.
    pub fn delete_partition(&mut self, uid: u64) {
        let end = uid.checked_add(1);
        let (from, to) = (log_key(uid, 0), end.map(|e| log_key(e, 0)));
        let to = to.unwrap_or([0xff; 16]);
        self.wb.delete_range_cf(self.store.log(), from, to);
        for table in [T_TIME, T_PRODUCERS, T_LOG_START, T_ABORTED] {
            let (from, to) = partition_range(table, uid);
            self.wb.delete_range_cf(self.store.meta(), from, to);
        }
    }

    /// Deletes every batch of a partition whose base offset is below `first_kept`, with
    /// the time-index entries that point at them, and records `log_start`.
    pub fn delete_log_before(
        &mut self,
        uid: u64,
        first_kept: i64,
        log_start: i64,
    ) -> Result<(), StoreError> {
        self.wb
            .delete_range_cf(self.store.log(), log_key(uid, 0), log_key(uid, first_kept));
        for (k, _) in self.store.scan_table(T_TIME, &uid.to_be_bytes())? {
            if k.len() == 24 && be_i64(&k[16..24]) < first_kept {
                self.wb.delete_cf(self.store.meta(), prefixed(T_TIME, &k));
            }
        }
        self.put_log_start(uid, log_start);
        Ok(())
    }

    /// Deletes every batch of a partition at or past `first_gone` (a follower truncating to
    /// its new leader's log), with the time-index entries and aborted transactions that
    /// point there.
    pub fn delete_log_from(&mut self, uid: u64, first_gone: i64) -> Result<(), StoreError> {
        let end = uid
            .checked_add(1)
            .map(|e| log_key(e, 0))
            .unwrap_or([0xff; 16]);
        self.wb
            .delete_range_cf(self.store.log(), log_key(uid, first_gone), end);
        for (k, _) in self.store.scan_table(T_TIME, &uid.to_be_bytes())? {
            if k.len() == 24 && be_i64(&k[16..24]) >= first_gone {
                self.wb.delete_cf(self.store.meta(), prefixed(T_TIME, &k));
            }
        }
        let (_, aborted_end) = partition_range(T_ABORTED, uid);
        self.wb.delete_range_cf(
            self.store.meta(),
            aborted_key(uid, first_gone.max(0), 0),
            aborted_end,
        );
        Ok(())
    }

    /// Records a partition's log start offset.
    pub fn put_log_start(&mut self, uid: u64, log_start: i64) {
        self.wb.put_cf(
            self.store.meta(),
            prefixed(T_LOG_START, &uid.to_be_bytes()),
            log_start.to_be_bytes(),
        );
    }

    /// The cluster id, chosen once on a new data dir.
    pub fn put_cluster_id(&mut self, id: &str) {
        self.put_meta(META_CLUSTER_ID, id.as_bytes());
    }

    /// The next partition uid to hand out (uids are never reused).
    pub fn put_next_partition_uid(&mut self, next: u64) {
        self.put_meta(META_NEXT_UID, &next.to_be_bytes());
    }

    /// A topic's serialized record.
    pub fn put_topic(&mut self, name: &str, record: &[u8]) {
        self.wb.put_cf(self.store.meta(), topic_key(name), record);
    }

    pub fn delete_topic(&mut self, name: &str) {
        self.wb.delete_cf(self.store.meta(), topic_key(name));
    }

    /// A SASL user's credentials record.
    pub fn put_user(&mut self, name: &str, record: &[u8]) {
        self.put_meta(&[META_USER, name.as_bytes()].concat(), record);
    }

    pub fn delete_user(&mut self, name: &str) {
        self.wb.delete_cf(
            self.store.meta(),
            meta_key(&[META_USER, name.as_bytes()].concat()),
        );
    }

    /// A client-quota entity's config record.
    pub fn put_entity_config(&mut self, rel: &str, record: &[u8]) {
        self.put_meta(&[META_ENTITY_CONFIG, rel.as_bytes()].concat(), record);
    }

    pub fn delete_entity_config(&mut self, rel: &str) {
        self.wb.delete_cf(
            self.store.meta(),
            meta_key(&[META_ENTITY_CONFIG, rel.as_bytes()].concat()),
        );
    }

    /// A delegation token's record.
    pub fn put_token(&mut self, id: &str, record: &[u8]) {
        self.put_meta(&[META_TOKEN, id.as_bytes()].concat(), record);
    }

    pub fn delete_token(&mut self, id: &str) {
        self.wb.delete_cf(
            self.store.meta(),
            meta_key(&[META_TOKEN, id.as_bytes()].concat()),
        );
    }

    /// A share partition's persisted state (see `Store::share_states`).
    pub fn put_share_state(&mut self, key: &str, record: &[u8]) {
        self.put_meta(&[META_SHARE_STATE, key.as_bytes()].concat(), record);
    }

    pub fn delete_share_state(&mut self, key: &str) {
        self.wb.delete_cf(
            self.store.meta(),
            meta_key(&[META_SHARE_STATE, key.as_bytes()].concat()),
        );
    }

    /// The ACLs of one resource pattern, in Kafka's record form.
    pub fn put_acls(&mut self, key: &str, record: &[u8]) {
        self.put_meta(&[META_ACL, key.as_bytes()].concat(), record);
    }

    pub fn delete_acls(&mut self, key: &str) {
        self.wb.delete_cf(
            self.store.meta(),
            meta_key(&[META_ACL, key.as_bytes()].concat()),
        );
    }

    /// The dynamic broker configs, serialized.
    pub fn put_broker_configs(&mut self, value: &[u8]) {
        self.put_meta(META_BROKER_CONFIGS, value);
    }

    pub(super) fn put_next_producer_id(&mut self, end: i64) {
        self.put_meta(META_NEXT_PRODUCER_ID, &end.to_be_bytes());
    }

    /// One group's committed offset for a partition; `KeyTooLong` for ids past the key's
    /// length fields (ids are validated before they get here).
    pub fn put_offset(
        &mut self,
        group: &str,
        topic: &str,
        partition: i32,
        value: &[u8],
    ) -> Result<(), StoreError> {
        let k = offset_key(group, topic, partition).ok_or(StoreError::KeyTooLong("group"))?;
        self.wb
            .put_cf(self.store.meta(), prefixed(T_GROUPS, &k), value);
        Ok(())
    }

    pub fn delete_offset(&mut self, group: &str, topic: &str, partition: i32) {
        if let Some(k) = offset_key(group, topic, partition) {
            self.wb.delete_cf(self.store.meta(), prefixed(T_GROUPS, &k));
        }
    }

    fn put_meta(&mut self, name: &[u8], value: &[u8]) {
        self.wb.put_cf(self.store.meta(), meta_key(name), value);
    }

    /// Test support: a raw meta entry, as an older version might have left it.
    #[cfg(test)]
    pub(super) fn put_meta_raw(&mut self, name: &[u8], value: &[u8]) {
        self.put_meta(name, value);
    }
}
