//! The storage layer: the one RocksDB database of a broker, its key layouts, typed reads
//! and writes, and the threads storage work runs on.
//!
//! One database holds everything (see DESIGN.md). Services (the partition log, the metadata
//! service, the coordinators) call typed methods here and collect atomic writes in a
//! [`Batch`]; none of them sees a key, a column family or a RocksDB type, so the physical
//! layout can change behind this one interface. Request handlers never hold the store.

mod batch;
mod keys;
mod log;
pub mod offload;
mod tables;
mod writer;

use std::path::Path;
use std::sync::Arc;

use rocksdb::{BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, Options, DB};

pub use batch::Batch;
pub use keys::MAX_PARTITION_UID;

/// Whether the offsets table can key a commit of `group` for `topic`: ids past the key's
/// length fields are refused before anything is journaled, so the log never holds a commit
/// the table would refuse.
pub fn offset_key_fits(group: &str, topic: &str) -> bool {
    keys::offset_key(group, topic, 0).is_some()
}
pub use log::LogScan;
pub use writer::Pending;

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
    /// A write failed, or one before it did and the store refuses writes since.
    #[error("store write failed: {0}")]
    Failed(String),
}

/// A committed offset as stored: group, topic, partition and its encoded value.
pub type OffsetRecord = (String, String, i32, Vec<u8>);

/// The one RocksDB database of a broker.
///
/// It exists so that the rest of the broker never sees RocksDB types or key layouts: the
/// partition log, the metadata service and the coordinators each call typed methods here.
pub struct Store {
    db: Arc<DB>,
    /// With `--fsync` only: the thread that commits queued writes with one sync per group.
    /// Without it no write waits on the disk, so writes run where they are made, in the
    /// order their callers' locks give them.
    writer: Option<writer::Writer>,
    /// Column family of record batches, and of the small tables: the same one unless the
    /// data dir predates the single-column-family layout.
    log_cf: &'static str,
    meta_cf: &'static str,
    fsync: bool,
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
        let db = Arc::new(db);
        Ok(Arc::new(Store {
            writer: if fsync {
                Some(writer::Writer::start(db.clone())?)
            } else {
                None
            },
            db,
            log_cf,
            meta_cf,
            fsync,
        }))
    }

    /// Whether this data dir keeps batches and tables in separate column families (made by
    /// an earlier version).
    pub fn is_legacy_layout(&self) -> bool {
        self.log_cf != self.meta_cf
    }

    pub(super) fn log(&self) -> &ColumnFamily {
        self.cf(self.log_cf)
    }

    pub(super) fn meta(&self) -> &ColumnFamily {
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

    /// A new, empty set of writes for [`Store::write`].
    pub fn batch(&self) -> Batch<'_> {
        Batch::new(self)
    }

    /// Applies a batch atomically with the configured durability, blocking until it is
    /// done. It is ordered after every write queued before it.
    pub fn write(&self, batch: Batch<'_>) -> Result<(), StoreError> {
        match &self.writer {
            Some(w) => w.write(batch.wb, true),
            None => self.apply(batch.wb, false),
        }
    }

    /// Applies a batch and syncs the WAL, whatever `--fsync` says (metadata changes).
    pub fn write_synced(&self, batch: Batch<'_>) -> Result<(), StoreError> {
        match &self.writer {
            Some(w) => w.write(batch.wb, true),
            None => self.apply(batch.wb, true),
        }
    }

    /// Applies a batch on the calling thread, outside the writer's queue, with the
    /// configured durability: for the coordinators' tables (committed offsets, transaction
    /// state), which no queued append depends on and which would otherwise pay two thread
    /// hops per write. Never for a partition's log or state, whose writes must stay in
    /// queue order.
    pub fn write_direct(&self, batch: Batch<'_>) -> Result<(), StoreError> {
        self.apply(batch.wb, self.fsync)
    }

    fn apply(&self, wb: rocksdb::WriteBatch, sync: bool) -> Result<(), StoreError> {
        let mut opts = rocksdb::WriteOptions::default();
        opts.set_sync(sync);
        self.db.write_opt(wb, &opts)?;
        Ok(())
    }

    /// Queues a batch now, with the configured durability, and returns what to await for
    /// it: appends are queued under their partition's lock, so the disk sees them in
    /// offset order, and awaited without it, so concurrent producers share one sync.
    /// Without `--fsync` the write is applied at once and the result is ready.
    pub fn submit(&self, batch: Batch<'_>) -> Pending {
        match &self.writer {
            Some(w) => w.submit(batch.wb, true),
            None => Pending::done(self.apply(batch.wb, false)),
        }
    }

    /// Flushes memtables so that a graceful shutdown leaves nothing to replay.
    pub fn flush(&self) -> Result<(), StoreError> {
        // Whatever is queued lands first.
        if let Some(w) = &self.writer {
            w.write(Default::default(), true)?;
        }
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
    use super::keys::{log_key, prefixed, T_META};
    use super::*;

    fn put_both(store: &Store, uid: u64) {
        let mut wb = store.batch();
        wb.put_log(uid, 0, b"batch-0");
        wb.put_log(uid, 5, b"batch-5");
        wb.put_topic("topic", b"record");
        wb.put_log_start(uid, 0);
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
        let mut wb = store.batch();
        wb.delete_partition(7);
        store.write_synced(wb).unwrap();
        assert!(batches(&store, 7).is_empty());
        assert_eq!(batches(&store, 8).len(), 2);
        assert_eq!(
            store.topics().unwrap(),
            vec![("topic".to_string(), b"record".to_vec())]
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
        assert_eq!(store.topics().unwrap().len(), 1);
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
            db.put_cf(meta, prefixed(T_META, b"cluster_id"), b"old-id")
                .unwrap();
        }
        let store = Store::open(dir.path(), false).unwrap();
        assert!(store.is_legacy_layout());
        assert_eq!(batches(&store, 3), vec![(0, b"old-batch".to_vec())]);
        assert_eq!(store.cluster_id().unwrap().as_deref(), Some("old-id"));
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

    #[test]
    fn stored_meta_names_are_read_back_by_type() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), false).unwrap();
        assert_eq!(store.cluster_id().unwrap(), None);
        assert_eq!(store.next_partition_uid().unwrap(), None);
        let mut wb = store.batch();
        wb.put_cluster_id("abc");
        wb.put_next_partition_uid(42);
        wb.put_broker_configs(b"{}");
        wb.put_topic("b", b"2");
        wb.put_topic("a", b"1");
        store.write(wb).unwrap();
        store.reserve_producer_ids(1000).unwrap();
        assert_eq!(store.cluster_id().unwrap().as_deref(), Some("abc"));
        assert_eq!(store.next_partition_uid().unwrap(), Some(42));
        assert_eq!(store.broker_configs().unwrap().as_deref(), Some(&b"{}"[..]));
        assert_eq!(store.producer_id_block_end().unwrap(), 1000);
        // Only topic records are topics, whatever else the meta table holds.
        assert_eq!(
            store.topics().unwrap(),
            vec![("a".into(), b"1".to_vec()), ("b".into(), b"2".to_vec())]
        );
        let mut wb = store.batch();
        wb.delete_topic("a");
        wb.put_meta_raw(b"topic-like", b"x");
        store.write(wb).unwrap();
        assert_eq!(store.topics().unwrap(), vec![("b".into(), b"2".to_vec())]);
    }
}
