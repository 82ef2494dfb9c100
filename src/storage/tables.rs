//! Typed reads of the small tables: metadata, committed offsets, producer state, aborted
//! transactions and transaction coordinator state.

use rocksdb::{Direction, IteratorMode};

use super::keys::*;
use super::{OffsetRecord, Store, StoreError};

/// A stored key (without its table byte) and its value.
type KeyValue = (Vec<u8>, Vec<u8>);

impl Store {
    fn get_meta(&self, name: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get_cf(self.meta(), meta_key(name))?)
    }

    /// The cluster id, if one was chosen.
    pub fn cluster_id(&self) -> Result<Option<String>, StoreError> {
        Ok(self
            .get_meta(META_CLUSTER_ID)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// The next partition uid to hand out, if any was handed out before.
    pub fn next_partition_uid(&self) -> Result<Option<u64>, StoreError> {
        Ok(self
            .get_meta(META_NEXT_UID)?
            .and_then(|v| v.try_into().ok().map(u64::from_be_bytes)))
    }

    /// The serialized dynamic broker configs, if any were set.
    pub fn broker_configs(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.get_meta(META_BROKER_CONFIGS)
    }

    /// Every topic's record, by name.
    pub fn topics(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        Ok(self
            .scan_table(T_META, META_TOPIC)?
            .into_iter()
            .map(|(k, v)| {
                let name = &k[META_TOPIC.len()..];
                (String::from_utf8_lossy(name).into_owned(), v)
            })
            .collect())
    }

    /// Every metadata record under `prefix`, by the name after it.
    fn named_records(&self, prefix: &[u8]) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        Ok(self
            .scan_table(T_META, prefix)?
            .into_iter()
            .map(|(k, v)| {
                let name = &k[prefix.len()..];
                (String::from_utf8_lossy(name).into_owned(), v)
            })
            .collect())
    }

    /// Every SASL user's credentials record, by name.
    pub fn users(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.named_records(META_USER)
    }

    /// Every delegation token's record, by token id.
    pub fn tokens(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.named_records(META_TOKEN)
    }

    /// One delegation token's record.
    pub fn token_record(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.get_meta(&[META_TOKEN, id.as_bytes()].concat())
    }

    /// One SASL user's credentials record.
    pub fn user_record(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.get_meta(&[META_USER, name.as_bytes()].concat())
    }

    /// Every client-quota entity's config record (other than named users'), by its path.
    pub fn entity_configs(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.named_records(META_ENTITY_CONFIG)
    }

    /// One client-quota entity's config record.
    pub fn entity_config(&self, rel: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.get_meta(&[META_ENTITY_CONFIG, rel.as_bytes()].concat())
    }

    /// One share partition's persisted state record.
    pub fn share_state(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.get_meta(&[META_SHARE_STATE, key.as_bytes()].concat())
    }

    /// Every share partition's persisted state record, by its key.
    pub fn share_states(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.named_records(META_SHARE_STATE)
    }

    /// One resource pattern's ACL record.
    pub fn acl_record(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.get_meta(&[META_ACL, key.as_bytes()].concat())
    }

    /// Every resource pattern's ACL record, by its key.
    pub fn acls(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.named_records(META_ACL)
    }

    /// The end of the last block of producer ids reserved (0 on a new store): ids below it
    /// may have been handed out before a restart, so allocation resumes from it.
    pub fn producer_id_block_end(&self) -> Result<i64, StoreError> {
        Ok(self
            .get_meta(META_NEXT_PRODUCER_ID)?
            .and_then(|v| v.try_into().ok().map(i64::from_be_bytes))
            .unwrap_or(0))
    }

    /// Records, synced, that producer ids below `end` may be handed out.
    pub fn reserve_producer_ids(&self, end: i64) -> Result<(), StoreError> {
        let mut wb = self.batch();
        wb.put_next_producer_id(end);
        self.write_synced(wb)
    }

    /// Entries of one table under `prefix`, keys returned without the table byte.
    pub(super) fn scan_table(&self, table: u8, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
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
        let mut wb = self.batch();
        for (topic, partition, value) in puts {
            wb.put_offset(group, topic, *partition, value)?;
        }
        for (topic, partition) in deletes {
            wb.delete_offset(group, topic, *partition);
        }
        self.write_direct(wb)
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

    /// Every transactional id's stored state: (transactional id, state).
    pub fn scan_txns(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        Ok(self
            .scan_table(T_TXN, &[])?
            .into_iter()
            .map(|(k, v)| (String::from_utf8_lossy(&k).into_owned(), v))
            .collect())
    }

    /// The log start offset recorded by [`super::Batch::delete_log_before`], if any.
    pub fn log_start(&self, uid: u64) -> Result<Option<i64>, StoreError> {
        Ok(self
            .db
            .get_cf(self.meta(), prefixed(T_LOG_START, &uid.to_be_bytes()))?
            .filter(|v| v.len() == 8)
            .map(|v| be_i64(&v)))
    }
}
