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
    /// In cluster mode blocks come from ZooKeeper, so that no two brokers hand out the same
    /// id; a spare block is fetched ahead, before the current one runs out.
    cluster: Option<Arc<crate::cluster::Cluster>>,
    spare: Mutex<Option<(i64, i64)>>,
    refill: tokio::sync::Mutex<()>,
}

impl ProducerIds {
    pub fn load(
        store: Arc<Store>,
        cluster: Option<Arc<crate::cluster::Cluster>>,
    ) -> Result<ProducerIds, StoreError> {
        let next = if cluster.is_some() {
            0
        } else {
            store.producer_id_block_end()?
        };
        Ok(ProducerIds {
            store,
            next: Mutex::new((next, next)),
            cluster,
            spare: Mutex::new(None),
            refill: tokio::sync::Mutex::new(()),
        })
    }

    /// In cluster mode, makes sure ids are at hand: fetches a block from ZooKeeper when the
    /// current one is half used and no spare is waiting. A no-op on a single node.
    pub async fn prepare(&self) {
        let Some(cluster) = &self.cluster else { return };
        let low = || {
            let (next, end) = *self.next.lock().unwrap_or_else(|e| e.into_inner());
            end - next < ID_BLOCK / 2
                && self
                    .spare
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .is_none()
        };
        if !low() {
            return;
        }
        let _one_at_a_time = self.refill.lock().await;
        if !low() {
            return;
        }
        match cluster.allocate_producer_id_block(ID_BLOCK).await {
            Ok(block) => {
                let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
                if next.0 >= next.1 {
                    *next = block;
                } else {
                    *self.spare.lock().unwrap_or_else(|e| e.into_inner()) = Some(block);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot claim a producer id block from ZooKeeper"),
        }
    }

    /// A fresh producer id.
    pub fn allocate(&self) -> Result<i64, ResponseError> {
        let mut guard = self.next.lock().unwrap_or_else(|e| e.into_inner());
        let (next, end) = *guard;
        if next >= end {
            if self.cluster.is_some() {
                // Kafka answers so while its next block is still on the way: retriable.
                let spare = self.spare.lock().unwrap_or_else(|e| e.into_inner()).take();
                *guard = spare.ok_or(ResponseError::CoordinatorLoadInProgress)?;
                let id = guard.0;
                guard.0 += 1;
                return Ok(id);
            }
            self.store
                .reserve_producer_ids(end + ID_BLOCK)
                .map_err(|_| ResponseError::KafkaStorageError)?;
            *guard = (next, end + ID_BLOCK);
        }
        guard.0 += 1;
        Ok(next)
    }
}
