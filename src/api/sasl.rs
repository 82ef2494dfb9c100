//! SaslHandshake and SaslAuthenticate outside an exchange: on a listener without SASL, or
//! after the client has authenticated. Kafka answers ILLEGAL_SASL_STATE; the exchange
//! itself runs in the connection layer (`server::sasl`) before any handler is reached.

use kafka_protocol::messages::{
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::context::Context;

pub async fn handshake(
    ctx: &Context,
    _rc: &RequestContext,
    _version: i16,
    _req: SaslHandshakeRequest,
) -> Option<SaslHandshakeResponse> {
    Some(
        SaslHandshakeResponse::default()
            .with_error_code(ResponseError::IllegalSaslState.code())
            .with_mechanisms(
                ctx.sasl_mechanisms
                    .iter()
                    .map(|m| StrBytes::from_static_str(m.name()))
                    .collect(),
            ),
    )
}

pub async fn authenticate(
    _ctx: &Context,
    _rc: &RequestContext,
    _version: i16,
    _req: SaslAuthenticateRequest,
) -> Option<SaslAuthenticateResponse> {
    Some(
        SaslAuthenticateResponse::default()
            .with_error_code(ResponseError::IllegalSaslState.code())
            .with_error_message(Some(StrBytes::from_static_str(
                "SaslAuthenticate outside a SASL exchange (no SASL on this listener, or already authenticated)",
            ))),
    )
}
