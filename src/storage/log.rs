//! Typed reads of the partition log: batches by offset and the time index.

use rocksdb::ReadOptions;

use super::keys::*;
use super::{Store, StoreError};

/// A positioned scan over one partition's batches (see [`Store::log_scan`]).
pub struct LogScan<'a> {
    iter: rocksdb::DBRawIteratorWithThreadMode<'a, rocksdb::DB>,
    uid: u64,
}

impl LogScan<'_> {
    /// Calls `visit` with each (base offset, bytes) until it returns false or the partition
    /// ends.
    pub fn visit(mut self, mut visit: impl FnMut(i64, &[u8]) -> bool) -> Result<(), StoreError> {
        let uid = self.uid.to_be_bytes();
        while self.iter.valid() {
            let (Some(k), Some(v)) = (self.iter.key(), self.iter.value()) else {
                break;
            };
            if k.len() != 16 || k[..8] != uid {
                break;
            }
            if !visit(be_i64(&k[8..]), v) {
                break;
            }
            self.iter.next();
        }
        self.iter.status()?;
        Ok(())
    }
}

impl Store {
    /// The last batch of a partition, for recovering its log end offset without a scan.
    pub fn last_batch(&self, uid: u64) -> Result<Option<(i64, Vec<u8>)>, StoreError> {
        let mut iter = self.db.raw_iterator_cf(self.log());
        iter.seek_for_prev(log_key(uid, i64::MAX));
        current_of(&iter, uid)
    }

    /// The first batch of a partition.
    pub fn first_batch(&self, uid: u64) -> Result<Option<(i64, Vec<u8>)>, StoreError> {
        let mut iter = self.db.raw_iterator_cf(self.log());
        iter.seek(log_key(uid, 0));
        current_of(&iter, uid)
    }

    /// The largest max-timestamp-so-far recorded for a partition (for recovery).
    pub fn last_time_index(&self, uid: u64) -> Result<Option<(i64, i64)>, StoreError> {
        let mut iter = self.db.raw_iterator_cf(self.meta());
        let mut upper = [0xffu8; 25];
        upper[0] = T_TIME;
        upper[1..9].copy_from_slice(&uid.to_be_bytes());
        iter.seek_for_prev(upper);
        Ok(time_entry(&iter, uid))
    }

    /// The first time-index entry whose max-timestamp-so-far is at least `ts`:
    /// (max ts so far, base offset of the batch that reached it).
    pub fn time_index_at_or_after(
        &self,
        uid: u64,
        ts: i64,
    ) -> Result<Option<(i64, i64)>, StoreError> {
        let mut iter = self.db.raw_iterator_cf(self.meta());
        iter.seek(time_key(uid, ts, 0));
        iter.status()?;
        Ok(time_entry(&iter, uid))
    }

    /// Reads batches of partition `uid` starting with the one that contains `offset`, calling
    /// `visit` with each (base offset, bytes) until it returns false or the partition ends.
    pub fn read_batches(
        &self,
        uid: u64,
        offset: i64,
        visit: impl FnMut(i64, &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        self.log_scan(uid, offset).visit(visit)
    }

    /// A scan of partition `uid`'s batches from the one that contains `offset`, positioned
    /// now: it sees the log as it is at this call (a RocksDB iterator is a point-in-time
    /// view), however long it is read later. Lets a caller take the view under a lock and
    /// read it without.
    pub fn log_scan(&self, uid: u64, offset: i64) -> LogScan<'_> {
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(log_key(uid, i64::MAX).to_vec());
        ro.fill_cache(true);
        let mut iter = self.db.raw_iterator_cf_opt(self.log(), ro);
        iter.seek_for_prev(log_key(uid, offset));
        if !iter.valid() || iter.key().is_none_or(|k| k[..8] != uid.to_be_bytes()) {
            iter.seek(log_key(uid, offset));
        }
        LogScan { iter, uid }
    }
}

fn current_of(
    iter: &rocksdb::DBRawIterator<'_>,
    uid: u64,
) -> Result<Option<(i64, Vec<u8>)>, StoreError> {
    if !iter.valid() {
        iter.status()?;
        return Ok(None);
    }
    match (iter.key(), iter.value()) {
        (Some(k), Some(v)) if k.len() == 16 && k[..8] == uid.to_be_bytes() => {
            Ok(Some((be_i64(&k[8..]), v.to_vec())))
        }
        _ => Ok(None),
    }
}

fn time_entry(iter: &rocksdb::DBRawIterator<'_>, uid: u64) -> Option<(i64, i64)> {
    if !iter.valid() {
        return None;
    }
    let k = iter.key()?;
    if k.len() != 25 || k[0] != T_TIME || k[1..9] != uid.to_be_bytes() {
        return None;
    }
    Some((ts_from(&k[9..17]), be_i64(&k[17..25])))
}
