//! Producer ids and the transaction coordinator.
//!
//! InitProducerId hands out ids and epochs from here; each partition checks every batch that
//! carries a producer id against that producer's state, which lives with the log
//! (`log::producer_state`). The transaction coordinator is in `coordinator`.

pub mod coordinator;

use std::sync::{Arc, Mutex};

use kafka_protocol::ResponseError;

use crate::storage::Store;
use crate::storage::StoreError;

/// Ids are reserved from the store in blocks, so an InitProducerId rarely waits for a sync.
const ID_BLOCK: i64 = 1000;

/// Allocates producer ids that are never handed out twice, across restarts.
///
/// It exists because a reused producer id would let a new producer's sequence numbers be
/// judged against an old producer's state.
pub struct ProducerIds {
    store: Arc<Store>,
    next: Mutex<(i64, i64)>, // (next id, end of the reserved block)
}

impl ProducerIds {
    pub fn load(store: Arc<Store>) -> Result<ProducerIds, StoreError> {
        let next = store.producer_id_block_end()?;
        Ok(ProducerIds {
            store,
            next: Mutex::new((next, next)),
        })
    }

    /// A fresh producer id.
    pub fn allocate(&self) -> Result<i64, ResponseError> {
        let mut guard = self.next.lock().unwrap_or_else(|e| e.into_inner());
        let (next, end) = *guard;
        if next >= end {
            self.store
                .reserve_producer_ids(end + ID_BLOCK)
                .map_err(|_| ResponseError::KafkaStorageError)?;
            *guard = (next, end + ID_BLOCK);
        }
        guard.0 += 1;
        Ok(next)
    }
}
