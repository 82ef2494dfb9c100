//! CreateAcls, DescribeAcls and DeleteAcls: how Kafka's admin clients, `kafka-acls` and
//! `klamm acls` manage the ACLs. Without `--authorizer` they answer SECURITY_DISABLED, as
//! Kafka does with no authorizer configured.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::ResponseError;

use super::{sb, RequestContext};
use crate::context::Context;
use crate::security::acl::{
    validate_new, Acl, AclFilter, Operation, PatternType, Permission, ResourceType,
};

/// The largest number of ACLs one CreateAcls or DeleteAcls may carry (Kafka bounds a
/// controller operation at 10,000 records).
const MAX_ACLS_PER_REQUEST: usize = 10_000;

fn security_disabled() -> (i16, Option<kafka_protocol::protocol::StrBytes>) {
    (
        ResponseError::SecurityDisabled.code(),
        Some(sb("No Authorizer is configured.")),
    )
}

fn filter_from(
    rt: i8,
    name: Option<&str>,
    pattern: i8,
    principal: Option<&str>,
    host: Option<&str>,
    op: i8,
    perm: i8,
) -> AclFilter {
    AclFilter {
        resource_type: ResourceType::from_code(rt),
        name: name.map(str::to_string),
        pattern: PatternType::from_code(pattern),
        principal: principal.map(str::to_string),
        host: host.map(str::to_string),
        operation: Operation::from_code(op),
        permission: Permission::from_code(perm),
    }
}

pub async fn create(
    ctx: &Context,
    rc: &RequestContext,
    version: i16,
    req: CreateAclsRequest,
) -> Option<CreateAclsResponse> {
    let mut results = Vec::with_capacity(req.creations.len().min(MAX_ACLS_PER_REQUEST));
    if !ctx.authorizer.enabled() {
        let (code, msg) = security_disabled();
        for _ in &req.creations {
            results.push(
                AclCreationResult::default()
                    .with_error_code(code)
                    .with_error_message(msg.clone()),
            );
        }
        return Some(CreateAclsResponse::default().with_results(results));
    }
    if req.creations.len() > MAX_ACLS_PER_REQUEST {
        rc.close_connection(format!(
            "CreateAcls with {} creations (at most {MAX_ACLS_PER_REQUEST})",
            req.creations.len()
        ));
        return None;
    }
    let mut valid = Vec::new();
    let mut outcome: Vec<Result<(), String>> = Vec::new();
    for c in &req.creations {
        let acl = Acl {
            resource_type: ResourceType::from_code(c.resource_type),
            name: c.resource_name.to_string(),
            // v0 has no pattern type: every ACL is LITERAL.
            pattern: if version == 0 {
                PatternType::Literal
            } else {
                PatternType::from_code(c.resource_pattern_type)
            },
            principal: c.principal.to_string(),
            host: c.host.to_string(),
            operation: Operation::from_code(c.operation),
            permission: Permission::from_code(c.permission_type),
        };
        match validate_new(&acl) {
            Ok(()) => {
                valid.push(acl);
                outcome.push(Ok(()));
            }
            Err(e) => outcome.push(Err(e)),
        }
    }
    let stored = ctx.authorizer.create(&valid).await;
    if let Err(e) = &stored {
        tracing::warn!(error = %e, "CreateAcls: store write failed");
    }
    for o in outcome {
        let r = match (o, &stored) {
            (Err(msg), _) => AclCreationResult::default()
                .with_error_code(ResponseError::InvalidRequest.code())
                .with_error_message(Some(sb(msg))),
            (Ok(()), Err(e)) => AclCreationResult::default()
                .with_error_code(ResponseError::UnknownServerError.code())
                .with_error_message(Some(sb(e.to_string()))),
            (Ok(()), Ok(())) => AclCreationResult::default(),
        };
        results.push(r);
    }
    if !valid.is_empty() && stored.is_ok() {
        tracing::info!(principal = %rc.principal, acls = valid.len(), "ACLs created");
    }
    Some(CreateAclsResponse::default().with_results(results))
}

pub async fn describe(
    ctx: &Context,
    _rc: &RequestContext,
    version: i16,
    req: DescribeAclsRequest,
) -> Option<DescribeAclsResponse> {
    if !ctx.authorizer.enabled() {
        return Some(
            DescribeAclsResponse::default()
                .with_error_code(ResponseError::SecurityDisabled.code())
                .with_error_message(Some(sb("No Authorizer is configured on the broker"))),
        );
    }
    let filter = filter_from(
        req.resource_type_filter,
        req.resource_name_filter.as_deref(),
        if version == 0 {
            PatternType::Literal.code()
        } else {
            req.pattern_type_filter
        },
        req.principal_filter.as_deref(),
        req.host_filter.as_deref(),
        req.operation,
        req.permission_type,
    );
    if let Some(why) = filter.invalid() {
        return Some(
            DescribeAclsResponse::default()
                .with_error_code(ResponseError::InvalidRequest.code())
                .with_error_message(Some(sb(why))),
        );
    }
    let mut by_resource: BTreeMap<(ResourceType, PatternType, String), Vec<AclDescription>> =
        BTreeMap::new();
    for a in ctx.authorizer.list(&filter) {
        by_resource
            .entry((a.resource_type, a.pattern, a.name.clone()))
            .or_default()
            .push(
                AclDescription::default()
                    .with_principal(sb(a.principal))
                    .with_host(sb(a.host))
                    .with_operation(a.operation.code())
                    .with_permission_type(a.permission.code()),
            );
    }
    let resources = by_resource
        .into_iter()
        .map(|((rt, pattern, name), acls)| {
            DescribeAclsResource::default()
                .with_resource_type(rt.code())
                .with_resource_name(sb(name))
                .with_pattern_type(pattern.code())
                .with_acls(acls)
        })
        .collect();
    Some(DescribeAclsResponse::default().with_resources(resources))
}

pub async fn delete(
    ctx: &Context,
    rc: &RequestContext,
    version: i16,
    req: DeleteAclsRequest,
) -> Option<DeleteAclsResponse> {
    if !ctx.authorizer.enabled() {
        let (code, msg) = security_disabled();
        let results = req
            .filters
            .iter()
            .map(|_| {
                DeleteAclsFilterResult::default()
                    .with_error_code(code)
                    .with_error_message(msg.clone())
            })
            .collect();
        return Some(DeleteAclsResponse::default().with_filter_results(results));
    }
    if req.filters.len() > MAX_ACLS_PER_REQUEST {
        rc.close_connection(format!(
            "DeleteAcls with {} filters (at most {MAX_ACLS_PER_REQUEST})",
            req.filters.len()
        ));
        return None;
    }
    let filters: Vec<AclFilter> = req
        .filters
        .iter()
        .map(|f| {
            filter_from(
                f.resource_type_filter,
                f.resource_name_filter.as_deref(),
                if version == 0 {
                    PatternType::Literal.code()
                } else {
                    f.pattern_type_filter
                },
                f.principal_filter.as_deref(),
                f.host_filter.as_deref(),
                f.operation,
                f.permission_type,
            )
        })
        .collect();
    let valid: Vec<AclFilter> = filters
        .iter()
        .filter(|f| f.invalid().is_none())
        .cloned()
        .collect();
    let removed = ctx.authorizer.delete(&valid).await;
    let mut removed = match removed {
        Ok(r) => r.into_iter(),
        Err(e) => {
            tracing::warn!(error = %e, "DeleteAcls: store write failed");
            let results = filters
                .iter()
                .map(|_| {
                    DeleteAclsFilterResult::default()
                        .with_error_code(ResponseError::UnknownServerError.code())
                        .with_error_message(Some(sb(e.to_string())))
                })
                .collect();
            return Some(DeleteAclsResponse::default().with_filter_results(results));
        }
    };
    let mut count = 0;
    let results = filters
        .iter()
        .map(|f| match f.invalid() {
            Some(why) => DeleteAclsFilterResult::default()
                .with_error_code(ResponseError::InvalidRequest.code())
                .with_error_message(Some(sb(why))),
            None => {
                let gone = removed.next().unwrap_or_default();
                count += gone.len();
                // Kafka leaves a success's messages null (the codec's default is "").
                DeleteAclsFilterResult::default()
                    .with_error_message(None)
                    .with_matching_acls(
                        gone.into_iter()
                            .map(|a| {
                                DeleteAclsMatchingAcl::default()
                                    .with_error_message(None)
                                    .with_resource_type(a.resource_type.code())
                                    .with_resource_name(sb(a.name))
                                    .with_pattern_type(a.pattern.code())
                                    .with_principal(sb(a.principal))
                                    .with_host(sb(a.host))
                                    .with_operation(a.operation.code())
                                    .with_permission_type(a.permission.code())
                            })
                            .collect(),
                    )
            }
        })
        .collect();
    if count > 0 {
        tracing::info!(principal = %rc.principal, acls = count, "ACLs deleted");
    }
    Some(DeleteAclsResponse::default().with_filter_results(results))
}
