//! DescribeClientQuotas and AlterClientQuotas (KIP-546): how Kafka's admin clients and
//! `kafka-configs --entity-type users|clients|ips` read and set client quotas. The rules
//! (filters, validation, messages) are in `crate::quota`.

use kafka_protocol::messages::describe_client_quotas_response::{EntityData, EntryData, ValueData};
use kafka_protocol::messages::{
    alter_client_quotas_response, AlterClientQuotasRequest, AlterClientQuotasResponse,
    DescribeClientQuotasRequest, DescribeClientQuotasResponse,
};
use kafka_protocol::ResponseError;

use super::{sb, RequestContext};
use crate::context::Context;
use crate::quota::{Alteration, Match};

/// Kafka's match types in a DescribeClientQuotas filter component.
const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_SPECIFIED: i8 = 2;

pub async fn describe(
    ctx: &Context,
    _rc: &RequestContext,
    _version: i16,
    req: DescribeClientQuotasRequest,
) -> Option<DescribeClientQuotasResponse> {
    let refuse = |code: ResponseError, msg: String| {
        Some(
            DescribeClientQuotasResponse::default()
                .with_error_code(code.code())
                .with_error_message(Some(sb(msg)))
                .with_entries(None),
        )
    };
    let mut components = Vec::with_capacity(req.components.len());
    for c in req.components {
        let m = match (c.match_type, c._match) {
            (MATCH_EXACT, Some(name)) => Match::Exact(name.to_string()),
            (MATCH_EXACT, None) => {
                return refuse(
                    ResponseError::InvalidRequest,
                    "Request specified MATCH_TYPE_EXACT, but set match string to null.".into(),
                )
            }
            (MATCH_DEFAULT, None) => Match::Default,
            (MATCH_SPECIFIED, None) => Match::Specified,
            (MATCH_DEFAULT | MATCH_SPECIFIED, Some(_)) => {
                let name = if c.match_type == MATCH_DEFAULT {
                    "MATCH_TYPE_DEFAULT"
                } else {
                    "MATCH_TYPE_SPECIFIED"
                };
                return refuse(
                    ResponseError::InvalidRequest,
                    format!("Request specified {name}, but also specified a match string."),
                );
            }
            (other, _) => {
                return refuse(
                    ResponseError::InvalidRequest,
                    format!("Unknown match type {other}"),
                )
            }
        };
        components.push((c.entity_type.to_string(), m));
    }
    match ctx.quotas.describe(&components, req.strict) {
        Err((code, msg)) => {
            tracing::debug!(error = %msg, "DescribeClientQuotas refused");
            refuse(code, msg)
        }
        Ok(found) => Some(
            DescribeClientQuotasResponse::default().with_entries(Some(
                found
                    .into_iter()
                    .map(|(entity, values)| {
                        EntryData::default()
                            .with_entity(
                                entity
                                    .entries()
                                    .into_iter()
                                    .map(|(t, n)| {
                                        EntityData::default()
                                            .with_entity_type(sb(t))
                                            .with_entity_name(n.map(sb))
                                    })
                                    .collect(),
                            )
                            .with_values(
                                values
                                    .into_iter()
                                    .map(|(k, v)| {
                                        ValueData::default().with_key(sb(k)).with_value(v)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            )),
        ),
    }
}

pub async fn alter(
    ctx: &Context,
    _rc: &RequestContext,
    _version: i16,
    req: AlterClientQuotasRequest,
) -> Option<AlterClientQuotasResponse> {
    let entity_data = |entity: &[(String, Option<String>)]| {
        entity
            .iter()
            .map(|(t, n)| {
                alter_client_quotas_response::EntityData::default()
                    .with_entity_type(sb(t.clone()))
                    .with_entity_name(n.clone().map(sb))
            })
            .collect::<Vec<_>>()
    };
    let alterations: Vec<Alteration> = req
        .entries
        .into_iter()
        .map(|e| Alteration {
            entity: e
                .entity
                .into_iter()
                .map(|d| {
                    (
                        d.entity_type.to_string(),
                        d.entity_name.map(|n| n.to_string()),
                    )
                })
                .collect(),
            ops: e
                .ops
                .into_iter()
                .map(|o| (o.key.to_string(), (!o.remove).then_some(o.value)))
                .collect(),
        })
        .collect();
    let entities: Vec<Vec<(String, Option<String>)>> =
        alterations.iter().map(|a| a.entity.clone()).collect();
    let entries = match ctx.quotas.alter(alterations, req.validate_only).await {
        Ok(results) => results
            .into_iter()
            .map(|(entity, r)| {
                let (code, msg) = match r {
                    Ok(()) => (0, None),
                    Err((e, m)) => {
                        tracing::debug!(entity = ?entity, error = %m, "client quota change refused");
                        (e.code(), Some(sb(m)))
                    }
                };
                alter_client_quotas_response::EntryData::default()
                    .with_error_code(code)
                    .with_error_message(msg)
                    .with_entity(entity_data(&entity))
            })
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "client quotas could not be written");
            let mut seen: Vec<&Vec<(String, Option<String>)>> = Vec::new();
            entities
                .iter()
                .filter(|e| {
                    let new = !seen.contains(e);
                    seen.push(e);
                    new
                })
                .map(|entity| {
                    alter_client_quotas_response::EntryData::default()
                        .with_error_code(ResponseError::UnknownServerError.code())
                        .with_error_message(Some(sb(e.to_string())))
                        .with_entity(entity_data(entity))
                })
                .collect()
        }
    };
    Some(AlterClientQuotasResponse::default().with_entries(entries))
}
