//! InitProducerId: ids for idempotent producers here, and for transactional ones from the
//! transaction coordinator.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::RequestContext;
use crate::context::Context;

pub async fn init_producer_id(
    ctx: &Context,
    rc: &RequestContext,
    version: i16,
    req: InitProducerIdRequest,
) -> Option<InitProducerIdResponse> {
    let mut resp = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    ctx.producer_ids.prepare().await;
    if let Some(id) = req.transactional_id.as_ref().filter(|id| !id.is_empty()) {
        if let Some(e) = ctx.coordinator_error(1, id.as_str()) {
            resp.error_code = e.code();
            return Some(resp);
        }
        let expected = (req.producer_id.0 >= 0).then_some((req.producer_id.0, req.producer_epoch));
        match ctx.txns.init_producer_id(
            &ctx.txn_env(),
            id.as_str(),
            req.transaction_timeout_ms,
            expected,
        ) {
            // Cluster mode: answered once the new epoch is replicated, so a new
            // coordinator fences the old producer too.
            Ok((pid, epoch)) => match ctx.txn_durable(id.as_str()).await {
                Ok(()) => {
                    resp.producer_id = ProducerId(pid);
                    resp.producer_epoch = epoch;
                }
                Err(e) => resp.error_code = e.code(),
            },
            Err(e) => {
                let e = crate::api::transactions::fenced_for(e, version, 4);
                tracing::warn!(peer = %rc.peer, client_id = rc.client_id(), transactional_id = %id.as_str(), error = ?e, "InitProducerId refused");
                resp.error_code = e.code();
            }
        }
        return Some(resp);
    }
    // KIP-360: a producer that already has an id may ask for an epoch bump to reset its
    // sequences; past the last epoch it gets a new id.
    if req.producer_id.0 >= 0 && req.producer_epoch >= 0 && req.producer_epoch < i16::MAX - 1 {
        resp.producer_id = req.producer_id;
        resp.producer_epoch = req.producer_epoch + 1;
        return Some(resp);
    }
    match ctx.producer_ids.allocate() {
        Ok(id) => {
            resp.producer_id = ProducerId(id);
            resp.producer_epoch = 0;
        }
        Err(code) => resp.error_code = code.code(),
    }
    Some(resp)
}
