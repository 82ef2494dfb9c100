//! The RocksDB handle: column families, tables and key encoding.
//!
//! One database holds everything (see DESIGN.md). Keys are big-endian so that RocksDB's
//! byte order is numeric order: all batches of a partition are contiguous and sorted by
//! base offset, which makes "the batch containing offset N" a single `seek_for_prev`.

use std::path::Path;
use std::sync::Arc;

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, Direction, IteratorMode,
    Options, ReadOptions, WriteBatch, WriteOptions, DB,
};

/// The one column family of a data dir created by this version: record batches under
/// uid ‖ base offset, every small table under its one-byte prefix.
///
/// DESIGN.md gives each table its own column family. Each one RocksDB has to create costs
/// start-up time on an empty data dir (a synced MANIFEST record, its section of the OPTIONS
/// file, which RocksDB writes, syncs and parses back), and the broker's exec-to-ready budget
/// is 10 ms. Batch keys begin with a partition uid, whose first byte is 0 for any uid below
/// 2^56 ([`MAX_PARTITION_UID`]), and table keys begin with a letter, so the key spaces never
/// meet; record batches of 4 KiB and more go to blob files, small values stay in the tables.
const CF_SINGLE: &str = rocksdb::DEFAULT_COLUMN_FAMILY_NAME;
/// Data dirs created before the single column family kept batches in `log` and the tables
/// in `meta`; they are opened as they are.
const CF_LEGACY_LOG: &str = "log";
const CF_LEGACY_META: &str = "meta";

/// Partition uids stay below this so a batch key can never sort among the table keys of the
/// shared column family (their first byte is a letter, 0x61 and above).
pub const MAX_PARTITION_UID: u64 = 1 << 56;

/// Cluster metadata: 'm' ‖ typed name -> serialized record.
const T_META: u8 = b'm';
/// ListOffsets by time: 't' ‖ uid ‖ max-timestamp-so-far ‖ base offset -> "".
const T_TIME: u8 = b't';
/// Committed offsets: 'g' ‖ group ‖ topic ‖ partition -> offset, epoch, metadata.
const T_GROUPS: u8 = b'g';
/// Idempotent producer state: 'p' ‖ partition uid ‖ producer id -> entry.
const T_PRODUCERS: u8 = b'p';
/// Log start offset moved by DeleteRecords or retention: 'l' ‖ partition uid -> i64.
/// Without it a log whose batches were all deleted would restart at offset 0.
const T_LOG_START: u8 = b'l';
/// Aborted transactions of a partition, for read_committed fetches:
/// 'a' ‖ partition uid ‖ abort marker offset ‖ producer id -> first offset of the transaction.
/// The meta key of the producer id block end.
const KEY_NEXT_PRODUCER_ID: &[u8] = b"next_producer_id";
const T_ABORTED: u8 = b'a';
/// Transaction coordinator state: 'x' ‖ transactional id -> serialized state.
const T_TXN: u8 = b'x';

fn prefixed(table: u8, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + key.len());
    k.push(table);
    k.extend_from_slice(key);
    k
}

/// Errors from the storage layer. RocksDB errors are rare and fatal to the request, not to
/// the broker: handlers turn them into KAFKA_STORAGE_ERROR.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// A name too long for its key's length field (ids are validated before they get here).
    #[error("a name is too long for its key: {0}")]
    KeyTooLong(&'static str),
}

/// A stored key and its value.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// A committed offset as stored: group, topic, partition and its encoded value.
pub type OffsetRecord = (String, String, i32, Vec<u8>);

/// The key prefix of a group's offsets: group length (u16 BE) ‖ group, so all offsets of a
/// group are contiguous. None for an id whose length does not fit the two length bytes.
fn group_prefix(group: &str) -> Option<Vec<u8>> {
    let len = u16::try_from(group.len()).ok()?;
    let mut k = Vec::with_capacity(2 + group.len());
    k.extend_from_slice(&len.to_be_bytes());
    k.extend_from_slice(group.as_bytes());
    Some(k)
}

/// group prefix ‖ topic length (u16 BE) ‖ topic ‖ partition (i32 BE).
fn offset_key(group: &str, topic: &str, partition: i32) -> Option<Vec<u8>> {
    let mut k = group_prefix(group)?;
    k.extend_from_slice(&u16::try_from(topic.len()).ok()?.to_be_bytes());
    k.extend_from_slice(topic.as_bytes());
    k.extend_from_slice(&partition.to_be_bytes());
    Some(k)
}

/// Splits an offset key back into (group, topic, partition).
fn parse_offset_key(k: &[u8]) -> Option<(String, String, i32)> {
    let glen = u16::from_be_bytes(k.get(..2)?.try_into().ok()?) as usize;
    let group = std::str::from_utf8(k.get(2..2 + glen)?).ok()?;
    let rest = &k[2 + glen..];
    let tlen = u16::from_be_bytes(rest.get(..2)?.try_into().ok()?) as usize;
    let topic = std::str::from_utf8(rest.get(2..2 + tlen)?).ok()?;
    let p = i32::from_be_bytes(rest.get(2 + tlen..6 + tlen)?.try_into().ok()?);
    Some((group.to_string(), topic.to_string(), p))
}

/// The one RocksDB database of a broker.
///
/// It exists so that the rest of the broker never sees RocksDB types or key layouts: the
/// partition log, the metadata service and the coordinators each call typed methods here.
pub struct Store {
    db: DB,
    /// Column family of record batches, and of the small tables: the same one unless the
    /// data dir predates the single-column-family layout.
    log_cf: &'static str,
    meta_cf: &'static str,
    write_sync: WriteOptions,
    write_nosync: WriteOptions,
    fsync: bool,
}

/// A positioned scan over one partition's batches (see [`Store::log_scan`]).
pub struct LogScan<'a> {
    iter: rocksdb::DBRawIteratorWithThreadMode<'a, DB>,
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

/// Key of a batch in the `log` CF.
pub fn log_key(uid: u64, base_offset: i64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&uid.to_be_bytes());
    k[8..].copy_from_slice(&(base_offset as u64).to_be_bytes());
    k
}

/// Timestamps are signed; flipping the sign bit makes their big-endian bytes sort numerically.
fn ts_bytes(ts: i64) -> [u8; 8] {
    ((ts as u64) ^ (1u64 << 63)).to_be_bytes()
}

/// Key of a time-index entry.
pub fn time_key(uid: u64, max_ts_so_far: i64, base_offset: i64) -> [u8; 25] {
    let mut k = [0u8; 25];
    k[0] = T_TIME;
    k[1..9].copy_from_slice(&uid.to_be_bytes());
    k[9..17].copy_from_slice(&ts_bytes(max_ts_so_far));
    k[17..].copy_from_slice(&(base_offset as u64).to_be_bytes());
    k
}

/// [table ‖ uid, table ‖ uid+1): every key of one partition in a per-partition table.
fn partition_range(table: u8, uid: u64) -> (Vec<u8>, Vec<u8>) {
    let from = prefixed(table, &uid.to_be_bytes());
    let to = match uid.checked_add(1) {
        Some(next) => prefixed(table, &next.to_be_bytes()),
        None => vec![table + 1],
    };
    (from, to)
}

fn be_i64(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    i64::from_be_bytes(a)
}

impl Store {
    /// Opens (or creates) the database under `path`.
    pub fn open(path: &Path, fsync: bool) -> Result<Arc<Store>, StoreError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_max_background_jobs(2);
        // RocksDB starts this many threads per column family at open just to load table
        // handles (96 short-lived threads for our 5 CFs at the default of 16): most of the
        // start-up time of an empty broker. One loads them inline.
        opts.set_max_file_opening_threads(1);
        // Keep memory flat regardless of data size: bounded memtables and one small cache.
        opts.set_write_buffer_size(16 * 1024 * 1024);
        opts.set_max_write_buffer_number(2);
        opts.set_keep_log_file_num(2);
        // RocksDB's info LOG dumps every option of every CF at open (printf-heavy, a few ms);
        // warnings and errors are all an operator needs from it.
        opts.set_log_level(rocksdb::LogLevel::Warn);
        opts.set_skip_stats_update_on_db_open(true);
        opts.set_max_total_wal_size(64 * 1024 * 1024);
        let cache = Cache::new_lru_cache(8 * 1024 * 1024);
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&cache);
        table.set_cache_index_and_filter_blocks(true);
        let cf_opts = |write_buffer_bytes: usize, blob_files: bool| {
            let mut cf_opts = Options::default();
            cf_opts.set_block_based_table_factory(&table);
            cf_opts.set_write_buffer_size(write_buffer_bytes);
            cf_opts.set_max_write_buffer_number(2);
            if blob_files {
                // Producers' batches are mostly compressed already; let large ones live in
                // blob files so compaction does not rewrite them over and over.
                cf_opts.set_enable_blob_files(true);
                cf_opts.set_min_blob_size(4096);
            }
            cf_opts
        };
        // Asking RocksDB for the column families costs a MANIFEST read, so only a data dir
        // that already holds a database is asked.
        let legacy = path.join("CURRENT").exists()
            && DB::list_cf(&opts, path)?
                .iter()
                .any(|name| name == CF_LEGACY_LOG);
        let (db, log_cf, meta_cf) = if legacy {
            let cfs = [
                ColumnFamilyDescriptor::new(CF_LEGACY_LOG, cf_opts(16 * 1024 * 1024, true)),
                ColumnFamilyDescriptor::new(CF_LEGACY_META, cf_opts(2 * 1024 * 1024, false)),
            ];
            let db = DB::open_cf_descriptors(&opts, path, cfs)?;
            (db, CF_LEGACY_LOG, CF_LEGACY_META)
        } else {
            let cfs = [ColumnFamilyDescriptor::new(
                CF_SINGLE,
                cf_opts(16 * 1024 * 1024, true),
            )];
            (
                DB::open_cf_descriptors(&opts, path, cfs)?,
                CF_SINGLE,
                CF_SINGLE,
            )
        };
        let mut write_sync = WriteOptions::default();
        write_sync.set_sync(true);
        Ok(Arc::new(Store {
            db,
            log_cf,
            meta_cf,
            write_sync,
            write_nosync: WriteOptions::default(),
            fsync,
        }))
    }

    /// Whether this data dir keeps batches and tables in separate column families (made by
    /// an earlier version).
    pub fn is_legacy_layout(&self) -> bool {
        self.log_cf != self.meta_cf
    }

    fn log(&self) -> &ColumnFamily {
        self.cf(self.log_cf)
    }

    fn meta(&self) -> &ColumnFamily {
        self.cf(self.meta_cf)
    }

    fn cf(&self, name: &str) -> &ColumnFamily {
        // The CFs are created at open; a missing one is a programming error, not input.
        self.db
            .cf_handle(name)
            .expect("column family created at open")
    }

    /// Whether produce writes sync the WAL before acknowledging.
    pub fn fsync(&self) -> bool {
        self.fsync
    }

    /// Applies a write batch with the configured durability.
    pub fn write(&self, batch: WriteBatch) -> Result<(), StoreError> {
        let opts = if self.fsync {
            &self.write_sync
        } else {
            &self.write_nosync
        };
        self.db.write_opt(batch, opts)?;
        Ok(())
    }

    /// Applies a write batch and syncs the WAL, whatever `--fsync` says (metadata changes).
    pub fn write_synced(&self, batch: WriteBatch) -> Result<(), StoreError> {
        self.db.write_opt(batch, &self.write_sync)?;
        Ok(())
    }

    pub fn put_log(&self, wb: &mut WriteBatch, uid: u64, base_offset: i64, batch: &[u8]) {
        wb.put_cf(self.log(), log_key(uid, base_offset), batch);
    }

    pub fn delete_log(&self, wb: &mut WriteBatch, uid: u64, base_offset: i64) {
        wb.delete_cf(self.log(), log_key(uid, base_offset));
    }

    pub fn put_time_index(&self, wb: &mut WriteBatch, uid: u64, max_ts: i64, base_offset: i64) {
        wb.put_cf(self.meta(), time_key(uid, max_ts, base_offset), []);
    }

    pub fn put_meta(&self, wb: &mut WriteBatch, key: &[u8], value: &[u8]) {
        wb.put_cf(self.meta(), prefixed(T_META, key), value);
    }

    pub fn delete_meta(&self, wb: &mut WriteBatch, key: &[u8]) {
        wb.delete_cf(self.meta(), prefixed(T_META, key));
    }

    pub fn get_meta(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get_cf(self.meta(), prefixed(T_META, key))?)
    }

    /// The end of the last block of producer ids reserved (0 on a new store): ids below it
    /// may have been handed out before a restart, so allocation resumes from it.
    pub fn producer_id_block_end(&self) -> Result<i64, StoreError> {
        Ok(self
            .get_meta(KEY_NEXT_PRODUCER_ID)?
            .and_then(|v| v.try_into().ok().map(i64::from_be_bytes))
            .unwrap_or(0))
    }

    /// Records, synced, that producer ids below `end` may be handed out.
    pub fn reserve_producer_ids(&self, end: i64) -> Result<(), StoreError> {
        let mut wb = WriteBatch::default();
        self.put_meta(&mut wb, KEY_NEXT_PRODUCER_ID, &end.to_be_bytes());
        self.write_synced(wb)
    }

    /// All meta entries whose key starts with `prefix`.
    pub fn scan_meta(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        self.scan_table(T_META, prefix)
    }

    /// Entries of one table under `prefix`, keys returned without the table byte.
    fn scan_table(&self, table: u8, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        let full = prefixed(table, prefix);
        let mut out = Vec::new();
        let iter = self
            .db
            .iterator_cf(self.meta(), IteratorMode::From(&full, Direction::Forward));
        for item in iter {
            let (k, v) = item?;
            if !k.starts_with(&full) {
                break;
            }
            out.push((k[1..].to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    /// One group's committed offset value for a partition (None when there is none).
    pub fn offset(
        &self,
        group: &str,
        topic: &str,
        partition: i32,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(k) = offset_key(group, topic, partition) else {
            return Ok(None);
        };
        Ok(self.db.get_cf(self.meta(), prefixed(T_GROUPS, &k))?)
    }

    /// The committed offsets of one group, or of every group: (group, topic, partition,
    /// value), sorted by group, topic and partition.
    pub fn offsets(&self, group: Option<&str>) -> Result<Vec<OffsetRecord>, StoreError> {
        let prefix = match group {
            Some(g) => match group_prefix(g) {
                Some(p) => p,
                None => return Ok(Vec::new()),
            },
            None => Vec::new(),
        };
        Ok(self
            .scan_table(T_GROUPS, &prefix)?
            .into_iter()
            .filter_map(|(k, v)| {
                let (g, t, p) = parse_offset_key(&k)?;
                group.is_none_or(|want| want == g).then_some((g, t, p, v))
            })
            .collect())
    }

    /// Writes and deletes committed offsets of one group in one atomic write.
    pub fn write_offsets(
        &self,
        group: &str,
        puts: &[(&str, i32, Vec<u8>)],
        deletes: &[(&str, i32)],
    ) -> Result<(), StoreError> {
        let mut wb = WriteBatch::default();
        for (topic, partition, value) in puts {
            let k = offset_key(group, topic, *partition).ok_or(StoreError::KeyTooLong("group"))?;
            wb.put_cf(self.meta(), prefixed(T_GROUPS, &k), value);
        }
        for (topic, partition) in deletes {
            if let Some(k) = offset_key(group, topic, *partition) {
                wb.delete_cf(self.meta(), prefixed(T_GROUPS, &k));
            }
        }
        self.write(wb)
    }

    /// Producer state of one partition is written with the batch it describes.
    pub fn put_producer(&self, wb: &mut WriteBatch, uid: u64, producer_id: i64, value: &[u8]) {
        let mut k = prefixed(T_PRODUCERS, &uid.to_be_bytes());
        k.extend_from_slice(&producer_id.to_be_bytes());
        wb.put_cf(self.meta(), k, value);
    }

    /// Forgets one producer of a partition (producer.id.expiration.ms).
    pub fn delete_producer(&self, wb: &mut WriteBatch, uid: u64, producer_id: i64) {
        let mut k = prefixed(T_PRODUCERS, &uid.to_be_bytes());
        k.extend_from_slice(&producer_id.to_be_bytes());
        wb.delete_cf(self.meta(), k);
    }

    /// Every producer entry of a partition: (producer id, encoded entry).
    pub fn scan_producers(&self, uid: u64) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
        Ok(self
            .scan_table(T_PRODUCERS, &uid.to_be_bytes())?
            .into_iter()
            .filter(|(k, _)| k.len() == 16)
            .map(|(k, v)| (be_i64(&k[8..]), v))
            .collect())
    }

    /// Records an aborted transaction: producer `producer_id`'s records from `first_offset`
    /// up to the abort marker at `marker_offset` are to be skipped by read_committed readers.
    pub fn put_aborted(
        &self,
        wb: &mut WriteBatch,
        uid: u64,
        marker_offset: i64,
        producer_id: i64,
        first_offset: i64,
    ) {
        let mut k = prefixed(T_ABORTED, &uid.to_be_bytes());
        k.extend_from_slice(&marker_offset.to_be_bytes());
        k.extend_from_slice(&producer_id.to_be_bytes());
        wb.put_cf(self.meta(), k, first_offset.to_be_bytes());
    }

    /// Forgets the aborted transactions whose marker is below `offset` (the new log start):
    /// no fetch can reach their records any more, so the index shrinks with the log.
    pub fn delete_aborted_before(&self, wb: &mut WriteBatch, uid: u64, offset: i64) {
        let key = |marker: i64| {
            let mut k = prefixed(T_ABORTED, &uid.to_be_bytes());
            k.extend_from_slice(&marker.max(0).to_be_bytes());
            k
        };
        wb.delete_range_cf(self.meta(), key(0), key(offset));
    }

    /// A partition's aborted transactions, by marker offset: (marker offset, producer id,
    /// first offset).
    pub fn scan_aborted(&self, uid: u64) -> Result<Vec<(i64, i64, i64)>, StoreError> {
        Ok(self
            .scan_table(T_ABORTED, &uid.to_be_bytes())?
            .into_iter()
            .filter(|(k, v)| k.len() == 24 && v.len() == 8)
            .map(|(k, v)| (be_i64(&k[8..]), be_i64(&k[16..]), be_i64(&v)))
            .collect())
    }

    /// Stores (or, with `None`, removes) one transactional id's coordinator state.
    pub fn put_txn(&self, wb: &mut WriteBatch, transactional_id: &str, value: Option<&[u8]>) {
        let k = prefixed(T_TXN, transactional_id.as_bytes());
        match value {
            Some(v) => wb.put_cf(self.meta(), k, v),
            None => wb.delete_cf(self.meta(), k),
        }
    }

    /// Every transactional id's stored state.
    pub fn scan_txns(&self) -> Result<Vec<KeyValue>, StoreError> {
        self.scan_table(T_TXN, &[])
    }

    /// Removes every batch and time-index entry of a partition.
    pub fn delete_partition(&self, wb: &mut WriteBatch, uid: u64) {
        let end = uid.checked_add(1);
        let (from, to) = (log_key(uid, 0), end.map(|e| log_key(e, 0)));
        let to = to.unwrap_or([0xff; 16]);
        wb.delete_range_cf(self.log(), from, to);
        for table in [T_TIME, T_PRODUCERS, T_LOG_START, T_ABORTED] {
            let (from, to) = partition_range(table, uid);
            wb.delete_range_cf(self.meta(), from, to);
        }
    }

    /// Deletes every batch of a partition whose base offset is below `first_kept`, with
    /// the time-index entries that point at them, and records `log_start`.
    pub fn delete_log_before(
        &self,
        wb: &mut WriteBatch,
        uid: u64,
        first_kept: i64,
        log_start: i64,
    ) -> Result<(), StoreError> {
        wb.delete_range_cf(self.log(), log_key(uid, 0), log_key(uid, first_kept));
        for (k, _) in self.scan_table(T_TIME, &uid.to_be_bytes())? {
            if k.len() == 24 && be_i64(&k[16..24]) < first_kept {
                let mut full = vec![T_TIME];
                full.extend_from_slice(&k);
                wb.delete_cf(self.meta(), full);
            }
        }
        self.put_log_start(wb, uid, log_start);
        Ok(())
    }

    /// Records a partition's log start offset.
    pub fn put_log_start(&self, wb: &mut WriteBatch, uid: u64, log_start: i64) {
        wb.put_cf(
            self.meta(),
            prefixed(T_LOG_START, &uid.to_be_bytes()),
            log_start.to_be_bytes(),
        );
    }

    /// The log start offset recorded by [`Store::delete_log_before`], if any.
    pub fn log_start(&self, uid: u64) -> Result<Option<i64>, StoreError> {
        Ok(self
            .db
            .get_cf(self.meta(), prefixed(T_LOG_START, &uid.to_be_bytes()))?
            .filter(|v| v.len() == 8)
            .map(|v| be_i64(&v)))
    }

    /// The last batch of a partition, for recovering its log end offset without a scan.
    pub fn last_batch(&self, uid: u64) -> Result<Option<(i64, Vec<u8>)>, StoreError> {
        let mut iter = self.db.raw_iterator_cf(self.log());
        iter.seek_for_prev(log_key(uid, i64::MAX));
        self.current_of(&iter, uid)
    }

    /// The first batch of a partition.
    pub fn first_batch(&self, uid: u64) -> Result<Option<(i64, Vec<u8>)>, StoreError> {
        let mut iter = self.db.raw_iterator_cf(self.log());
        iter.seek(log_key(uid, 0));
        self.current_of(&iter, uid)
    }

    fn current_of(
        &self,
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

    /// The largest max-timestamp-so-far recorded for a partition (for recovery).
    pub fn last_time_index(&self, uid: u64) -> Result<Option<(i64, i64)>, StoreError> {
        let mut iter = self.db.raw_iterator_cf(self.meta());
        let mut upper = [0xffu8; 25];
        upper[0] = T_TIME;
        upper[1..9].copy_from_slice(&uid.to_be_bytes());
        iter.seek_for_prev(upper);
        Ok(self.time_entry(&iter, uid))
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
        Ok(self.time_entry(&iter, uid))
    }

    fn time_entry(&self, iter: &rocksdb::DBRawIterator<'_>, uid: u64) -> Option<(i64, i64)> {
        if !iter.valid() {
            return None;
        }
        let k = iter.key()?;
        if k.len() != 25 || k[0] != T_TIME || k[1..9] != uid.to_be_bytes() {
            return None;
        }
        let ts = (be_i64(&k[9..17]) as u64 ^ (1u64 << 63)) as i64;
        Some((ts, be_i64(&k[17..25])))
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

    /// Flushes memtables so that a graceful shutdown leaves nothing to replay.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush_cf(self.log())?;
        if self.is_legacy_layout() {
            self.db.flush_cf(self.meta())?;
        }
        self.db.flush_wal(true)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {

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

    use super::*;

    fn put_both(store: &Store, uid: u64) {
        let mut wb = WriteBatch::default();
        store.put_log(&mut wb, uid, 0, b"batch-0");
        store.put_log(&mut wb, uid, 5, b"batch-5");
        store.put_meta(&mut wb, b"topic", b"record");
        store.put_log_start(&mut wb, uid, 0);
        store.write_synced(wb).unwrap();
    }

    fn batches(store: &Store, uid: u64) -> Vec<(i64, Vec<u8>)> {
        let mut out = Vec::new();
        store
            .read_batches(uid, 0, |base, bytes| {
                out.push((base, bytes.to_vec()));
                true
            })
            .unwrap();
        out
    }

    #[test]
    fn new_data_dir_uses_one_column_family_and_keeps_tables_apart() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), false).unwrap();
        assert!(!store.is_legacy_layout());
        put_both(&store, 7);
        put_both(&store, 8);
        // Deleting a partition's range must leave the tables and other partitions alone.
        let mut wb = WriteBatch::default();
        store.delete_partition(&mut wb, 7);
        store.write_synced(wb).unwrap();
        assert!(batches(&store, 7).is_empty());
        assert_eq!(batches(&store, 8).len(), 2);
        assert_eq!(
            store.get_meta(b"topic").unwrap().as_deref(),
            Some(&b"record"[..])
        );
        assert_eq!(store.last_batch(8).unwrap().map(|b| b.0), Some(5));
        store.flush().unwrap();
        drop(store);
        let names = DB::list_cf(&Options::default(), dir.path()).unwrap();
        assert_eq!(names, vec![CF_SINGLE.to_string()]);
        let store = Store::open(dir.path(), false).unwrap();
        assert_eq!(
            batches(&store, 8),
            vec![(0, b"batch-0".to_vec()), (5, b"batch-5".to_vec())]
        );
        assert_eq!(
            store.get_meta(b"topic").unwrap().as_deref(),
            Some(&b"record"[..])
        );
    }

    #[test]
    fn data_dir_with_log_and_meta_column_families_is_opened_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        {
            // The layout of earlier versions: batches in `log`, tables in `meta`.
            let mut opts = Options::default();
            opts.create_if_missing(true);
            opts.create_missing_column_families(true);
            let db = DB::open_cf(&opts, dir.path(), [CF_LEGACY_LOG, CF_LEGACY_META]).unwrap();
            let log = db.cf_handle(CF_LEGACY_LOG).unwrap();
            let meta = db.cf_handle(CF_LEGACY_META).unwrap();
            db.put_cf(log, log_key(3, 0), b"old-batch").unwrap();
            db.put_cf(meta, prefixed(T_META, b"topic"), b"old-record")
                .unwrap();
        }
        let store = Store::open(dir.path(), false).unwrap();
        assert!(store.is_legacy_layout());
        assert_eq!(batches(&store, 3), vec![(0, b"old-batch".to_vec())]);
        assert_eq!(
            store.get_meta(b"topic").unwrap().as_deref(),
            Some(&b"old-record"[..])
        );
        put_both(&store, 4);
        store.flush().unwrap();
        drop(store);
        // New writes went to the old column families, not to the default one.
        let db = DB::open_cf(
            &Options::default(),
            dir.path(),
            [CF_LEGACY_LOG, CF_LEGACY_META],
        )
        .unwrap();
        let log = db.cf_handle(CF_LEGACY_LOG).unwrap();
        assert_eq!(
            db.get_cf(log, log_key(4, 5)).unwrap().as_deref(),
            Some(&b"batch-5"[..])
        );
        assert_eq!(db.get(log_key(4, 5)).unwrap(), None);
    }
}
