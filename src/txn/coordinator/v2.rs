//! EndTxn for transaction.version 2 producers (KIP-890 part 2, EndTxn v5+).
//!
//! Every end of such a producer's transaction bumps its epoch: the markers are written at
//! the new epoch, so a late batch of the ended transaction (a retry still in flight, a
//! zombie) is refused by the partition instead of joining the producer's next
//! transaction. The producer learns the new epoch (or, once the epoch is exhausted, a new
//! producer id) from the EndTxn response. A response lost on the way makes the producer
//! retry with the epoch it had; the coordinator recognises that retry from the epoch being
//! exactly one behind (or from the previous producer id) and answers it with the ids it
//! already moved to, as Kafka's coordinator does.

use kafka_protocol::ResponseError;

use super::{TxnCoordinator, TxnEnv, TxnMeta, TxnState};
use crate::clock::now_ms;
use crate::log::partition::Marker;

/// How a version 2 EndTxn relates to the transactional id's state.
struct Request {
    producer_id: i64,
    epoch: i16,
    commit: bool,
}

/// What to do with a version 2 EndTxn, decided under the coordinator's lock.
enum Verdict {
    /// A retry of an end already done: answer the current ids.
    Done((i64, i16)),
    /// End the open transaction: prepare with a bump, write markers.
    EndOpen(Marker),
    /// No transaction is open: an abort still bumps the epoch (no markers to write).
    BumpOnly,
}

fn judge(meta: &TxnMeta, r: &Request) -> Result<Verdict, ResponseError> {
    use TxnState::*;
    // The client retried an end whose epoch bump it never heard of.
    let retry_on_bump = i32::from(meta.producer_epoch) == i32::from(r.epoch) + 1;
    // ... or an end that moved it to a new producer id (exhausted epoch).
    let retry_on_overflow = meta.prev_producer_id == Some(r.producer_id)
        && r.epoch == i16::MAX - 1
        && meta.producer_epoch == 0;
    let retry = retry_on_bump || retry_on_overflow;
    if meta.state.preparing() && meta.next_producer_id == Some(r.producer_id) {
        return Err(ResponseError::ConcurrentTransactions);
    }
    if meta.producer_id != r.producer_id && !retry_on_overflow {
        return Err(ResponseError::InvalidProducerIdMapping);
    }
    // The same epoch as the coordinator's is the next end, not a retry; an older epoch
    // than a retry's is a fenced producer.
    let valid_epoch = match meta.state {
        Ongoing | Empty => r.epoch == meta.producer_epoch,
        PrepareCommit | PrepareAbort => retry_on_bump,
        CompleteCommit | CompleteAbort => retry || r.epoch == meta.producer_epoch,
    };
    if !valid_epoch {
        return Err(ResponseError::ProducerFenced);
    }
    let current = (meta.producer_id, meta.producer_epoch);
    match (meta.state, r.commit) {
        (Ongoing, true) => Ok(Verdict::EndOpen(Marker::Commit)),
        (Ongoing, false) => Ok(Verdict::EndOpen(Marker::Abort)),
        (CompleteCommit, true) | (CompleteAbort, false) if retry => Ok(Verdict::Done(current)),
        (CompleteCommit, false) | (CompleteAbort, false) | (Empty, false) if !retry => {
            Ok(Verdict::BumpOnly)
        }
        (PrepareCommit, true) | (PrepareAbort, false) => Err(ResponseError::ConcurrentTransactions),
        _ => Err(ResponseError::InvalidTxnState),
    }
}

impl TxnCoordinator {
    /// EndTxn v5+: ends the producer's transaction (or, for an abort with none open, only
    /// bumps its epoch) and returns the producer id and epoch it continues with. Kafka's
    /// errors: PRODUCER_FENCED for an epoch that is neither current nor a retry's,
    /// CONCURRENT_TRANSACTIONS while the previous end is still being written,
    /// INVALID_TXN_STATE for a commit with nothing open.
    pub fn end_txn_v2(
        &self,
        env: &TxnEnv<'_>,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
    ) -> Result<(i64, i16), ResponseError> {
        let request = Request {
            producer_id,
            epoch,
            commit,
        };
        let marker = {
            let mut inner = self.lock();
            let meta = inner
                .txns
                .get(transactional_id)
                .ok_or(ResponseError::InvalidProducerIdMapping)?;
            match judge(meta, &request)? {
                Verdict::Done(ids) => return Ok(ids),
                Verdict::EndOpen(marker) => {
                    let mut tv2 = meta.clone();
                    if !tv2.tv2 {
                        // Begun by explicit AddPartitionsToTxn, ended by a v5 EndTxn: the
                        // end decides how markers are written.
                        tv2.tv2 = true;
                        self.persist(&tv2)?;
                        inner.txns.insert(transactional_id.to_string(), tv2);
                    }
                    marker
                }
                Verdict::BumpOnly => {
                    let mut next = meta.clone();
                    next.tv2 = true;
                    Self::bump(env, &mut next)?;
                    if let Some(pid) = next.next_producer_id.take() {
                        next.prev_producer_id = Some(next.producer_id);
                        inner.by_producer.remove(&next.producer_id);
                        inner.by_producer.insert(pid, transactional_id.to_string());
                        next.producer_id = pid;
                        next.producer_epoch = 0;
                    }
                    next.state = TxnState::CompleteAbort;
                    next.start_ms = -1;
                    next.update_ms = now_ms();
                    self.persist(&next)?;
                    let ids = (next.producer_id, next.producer_epoch);
                    inner.txns.insert(transactional_id.to_string(), next);
                    return Ok(ids);
                }
            }
        };
        self.end(env, transactional_id, marker, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    fn meta(state: TxnState, pid: i64, epoch: i16) -> TxnMeta {
        TxnMeta {
            transactional_id: "t".into(),
            producer_id: pid,
            producer_epoch: epoch,
            timeout_ms: 60_000,
            state,
            partitions: BTreeSet::new(),
            groups: BTreeMap::new(),
            start_ms: -1,
            update_ms: 0,
            tv2: true,
            next_producer_id: None,
            prev_producer_id: None,
        }
    }

    fn req(pid: i64, epoch: i16, commit: bool) -> Request {
        Request {
            producer_id: pid,
            epoch,
            commit,
        }
    }

    fn verdict(m: &TxnMeta, r: Request) -> Result<Option<(i64, i16)>, ResponseError> {
        judge(m, &r).map(|v| match v {
            Verdict::Done(ids) => Some(ids),
            _ => None,
        })
    }

    #[test]
    fn retries_current_ends_and_fenced_epochs() {
        use TxnState::*;
        // A completed commit at epoch 6: EndTxn(commit, 5) is its retry.
        let done = meta(CompleteCommit, 7, 6);
        assert_eq!(verdict(&done, req(7, 5, true)), Ok(Some((7, 6))));
        // The retry of a commit asking to abort is refused.
        assert_eq!(
            verdict(&done, req(7, 5, false)),
            Err(ResponseError::InvalidTxnState)
        );
        // At the current epoch: an abort with nothing open bumps, a commit is refused.
        assert!(matches!(
            judge(&done, &req(7, 6, false)),
            Ok(Verdict::BumpOnly)
        ));
        assert_eq!(
            verdict(&done, req(7, 6, true)),
            Err(ResponseError::InvalidTxnState)
        );
        // Two epochs behind is a fenced producer, ahead too; another id is unknown.
        assert_eq!(
            verdict(&done, req(7, 4, true)),
            Err(ResponseError::ProducerFenced)
        );
        assert_eq!(
            verdict(&done, req(7, 7, true)),
            Err(ResponseError::ProducerFenced)
        );
        assert_eq!(
            verdict(&done, req(8, 6, true)),
            Err(ResponseError::InvalidProducerIdMapping)
        );
        // An open transaction ends only at its own epoch.
        let open = meta(Ongoing, 7, 6);
        assert!(matches!(
            judge(&open, &req(7, 6, true)),
            Ok(Verdict::EndOpen(Marker::Commit))
        ));
        assert_eq!(
            verdict(&open, req(7, 5, true)),
            Err(ResponseError::ProducerFenced)
        );
        // Still being written: the retry waits.
        let prep = meta(PrepareCommit, 7, 6);
        assert_eq!(
            verdict(&prep, req(7, 5, true)),
            Err(ResponseError::ConcurrentTransactions)
        );
        assert_eq!(
            verdict(&prep, req(7, 6, true)),
            Err(ResponseError::ProducerFenced)
        );
        // Empty: only an abort.
        let empty = meta(Empty, 7, 0);
        assert!(matches!(
            judge(&empty, &req(7, 0, false)),
            Ok(Verdict::BumpOnly)
        ));
        assert_eq!(
            verdict(&empty, req(7, 0, true)),
            Err(ResponseError::InvalidTxnState)
        );
    }

    #[test]
    fn a_retry_after_the_producer_id_moved_is_recognised() {
        let mut m = meta(TxnState::CompleteCommit, 9, 0);
        m.prev_producer_id = Some(7);
        assert_eq!(verdict(&m, req(7, i16::MAX - 1, true)), Ok(Some((9, 0))));
        assert_eq!(
            verdict(&m, req(7, i16::MAX - 2, true)),
            Err(ResponseError::InvalidProducerIdMapping)
        );
    }
}
