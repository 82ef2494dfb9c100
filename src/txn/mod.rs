//! Producer ids and the transaction coordinator.
//!
//! InitProducerId hands out ids and epochs from here; each partition checks every batch that
//! carries a producer id against that producer's state, which lives with the log
//! (`log::producer_state`). The transaction coordinator is in `coordinator`.

pub mod coordinator;

use std::sync::Mutex;

use kafka_protocol::ResponseError;
use rocksdb::WriteBatch;

use crate::log::store::StoreError;
use crate::log::Store;

const KEY_NEXT_PRODUCER_ID: &[u8] = b"next_producer_id";
/// Ids are reserved from the store in blocks, so an InitProducerId rarely waits for a sync.
const ID_BLOCK: i64 = 1000;

/// Allocates producer ids that are never handed out twice, across restarts.
///
/// It exists because a reused producer id would let a new producer's sequence numbers be
/// judged against an old producer's state.
pub struct ProducerIds {
    next: Mutex<(i64, i64)>, // (next id, end of the reserved block)
}

impl ProducerIds {
    pub fn load(store: &Store) -> Result<ProducerIds, StoreError> {
        let next = read_next(store)?;
        Ok(ProducerIds {
            next: Mutex::new((next, next)),
        })
    }

    /// A fresh producer id.
    pub fn allocate(&self, store: &Store) -> Result<i64, ResponseError> {
        let mut guard = self.next.lock().unwrap_or_else(|e| e.into_inner());
        let (next, end) = *guard;
        if next >= end {
            let mut wb = WriteBatch::default();
            store.put_meta(
                &mut wb,
                KEY_NEXT_PRODUCER_ID,
                &(end + ID_BLOCK).to_be_bytes(),
            );
            store
                .write_synced(wb)
                .map_err(|_| ResponseError::KafkaStorageError)?;
            *guard = (next, end + ID_BLOCK);
        }
        guard.0 += 1;
        Ok(next)
    }
}

fn read_next(store: &Store) -> Result<i64, StoreError> {
    Ok(store
        .get_meta(KEY_NEXT_PRODUCER_ID)?
        .and_then(|v| v.try_into().ok().map(i64::from_be_bytes))
        .unwrap_or(0))
}
