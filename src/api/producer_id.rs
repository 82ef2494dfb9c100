//! InitProducerId for idempotent (non-transactional) producers.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::ResponseError;

use crate::broker::Context;
use crate::server::dispatch::RequestContext;

pub async fn init_producer_id(
    ctx: &Context,
    rc: &RequestContext,
    _version: i16,
    req: InitProducerIdRequest,
) -> Option<InitProducerIdResponse> {
    let mut resp = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if req.transactional_id.is_some() {
        // Transactions are not implemented yet (issue 5): refuse rather than pretend.
        tracing::warn!(peer = %rc.peer, client_id = rc.client_id(), "InitProducerId with a transactional.id: transactions are not supported yet");
        resp.error_code = ResponseError::InvalidRequest.code();
        return Some(resp);
    }
    // KIP-360: a producer that already has an id may ask for an epoch bump to reset its
    // sequences; past the last epoch it gets a new id.
    if req.producer_id.0 >= 0 && req.producer_epoch >= 0 && req.producer_epoch < i16::MAX - 1 {
        resp.producer_id = req.producer_id;
        resp.producer_epoch = req.producer_epoch + 1;
        return Some(resp);
    }
    match ctx.producer_ids.allocate(&ctx.store) {
        Ok(id) => {
            resp.producer_id = ProducerId(id);
            resp.producer_epoch = 0;
        }
        Err(code) => resp.error_code = code.code(),
    }
    Some(resp)
}
