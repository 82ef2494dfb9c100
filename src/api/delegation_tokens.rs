//! CreateDelegationToken, RenewDelegationToken, ExpireDelegationToken and
//! DescribeDelegationToken (KIP-48), as Kafka 4.4 answers them: the same checks in the same
//! order, the same error codes and the same field values beside an error. The tokens
//! themselves live in `crate::security::tokens`.
//!
//! These requests are authorized here rather than in `authorize.rs`: Kafka checks the
//! channel before any ACL, and DescribeDelegationToken filters token by token.

use kafka_protocol::messages::describe_delegation_token_response::{
    DescribedDelegationToken, DescribedDelegationTokenRenewer,
};
use kafka_protocol::messages::{
    CreateDelegationTokenRequest, CreateDelegationTokenResponse, DescribeDelegationTokenRequest,
    DescribeDelegationTokenResponse, ExpireDelegationTokenRequest, ExpireDelegationTokenResponse,
    RenewDelegationTokenRequest, RenewDelegationTokenResponse,
};
use kafka_protocol::ResponseError;

use super::authorize::Authz;
use super::{sb, RequestContext};
use crate::context::Context;
use crate::listeners::SecurityProtocol;
use crate::security::acl::{Operation, ResourceType};
use crate::security::tokens::{parse_principal, TokenError, TokenInfo};
use crate::security::ANONYMOUS;

/// Kafka's `allowTokenRequests`: tokens are managed only over an authenticated channel
/// (SASL, or TLS with a client certificate), and never by a session that logged in with a
/// token itself.
fn channel_allows_tokens(rc: &RequestContext) -> bool {
    if rc.token_authenticated() {
        return false;
    }
    match rc.protocol() {
        Some(SecurityProtocol::Plaintext) => false,
        Some(SecurityProtocol::Ssl) => &*rc.principal != ANONYMOUS,
        _ => true,
    }
}

fn refused_channel(api: &str, rc: &RequestContext) {
    tracing::debug!(peer = %rc.peer, principal = %rc.principal, "{api} refused: tokens are managed only over an authenticated channel, not with a token");
}

/// `Type` and `Name` of a principal string.
fn split(p: &str) -> (String, String) {
    match parse_principal(p) {
        Some((t, n)) => (t.to_string(), n.to_string()),
        None => (String::new(), p.to_string()),
    }
}

pub async fn create(
    ctx: &Context,
    rc: &RequestContext,
    version: i16,
    req: CreateDelegationTokenRequest,
) -> Option<CreateDelegationTokenResponse> {
    let requester = rc.principal.to_string();
    let owner = match req
        .owner_principal_name
        .as_deref()
        .filter(|n| !n.is_empty())
    {
        Some(name) => format!(
            "{}:{name}",
            req.owner_principal_type.as_deref().unwrap_or("User")
        ),
        None => requester.clone(),
    };
    let respond = |code: i16, timestamps: i64| {
        let (owner_type, owner_name) = split(&owner);
        let mut resp = CreateDelegationTokenResponse::default()
            .with_error_code(code)
            .with_principal_type(sb(owner_type))
            .with_principal_name(sb(owner_name))
            .with_issue_timestamp_ms(timestamps)
            .with_expiry_timestamp_ms(timestamps)
            .with_max_timestamp_ms(timestamps);
        if version >= 3 {
            let (t, n) = split(&requester);
            resp = resp
                .with_token_requester_principal_type(sb(t))
                .with_token_requester_principal_name(sb(n));
        }
        resp
    };
    if !channel_allows_tokens(rc) {
        refused_channel("CreateDelegationToken", rc);
        return Some(respond(
            ResponseError::DelegationTokenRequestNotAllowed.code(),
            -1,
        ));
    }
    if owner != requester {
        if let Some(az) = Authz::for_request(ctx, rc) {
            if !az.allows(Operation::CreateTokens, ResourceType::User, &owner) {
                return Some(respond(
                    ResponseError::DelegationTokenAuthorizationFailed.code(),
                    -1,
                ));
            }
        }
    }
    let renewers = req
        .renewers
        .iter()
        .map(|r| {
            format!(
                "{}:{}",
                r.principal_type.as_str(),
                r.principal_name.as_str()
            )
        })
        .collect();
    let now = crate::clock::now_ms();
    match ctx
        .tokens
        .create(&owner, &requester, renewers, req.max_lifetime_ms, now)
        .await
    {
        Ok((info, hmac)) => Some(
            respond(0, 0)
                .with_issue_timestamp_ms(info.issue_ms)
                .with_expiry_timestamp_ms(info.expiry_ms)
                .with_max_timestamp_ms(info.max_ms)
                .with_token_id(sb(info.id))
                .with_hmac(bytes::Bytes::copy_from_slice(&hmac)),
        ),
        Err(e) => {
            log_refusal("CreateDelegationToken", rc, &e);
            // Kafka's broker-side refusal carries -1 timestamps, the controller's 0.
            let timestamps = if matches!(e, TokenError::InvalidPrincipalType) {
                -1
            } else {
                0
            };
            Some(respond(e.code(), timestamps))
        }
    }
}

fn log_refusal(api: &str, rc: &RequestContext, e: &TokenError) {
    match e {
        TokenError::Records(_) => {
            tracing::warn!(peer = %rc.peer, principal = %rc.principal, error = %e, "{api} failed")
        }
        _ => {
            tracing::debug!(peer = %rc.peer, principal = %rc.principal, error = %e, "{api} refused")
        }
    }
}

/// Renew and Expire: the same channel gate, the same answer shape (an error code and the
/// new expiry time, -1 beside a refused channel, 0 beside a refused token).
async fn change_expiry<R>(
    api: &str,
    rc: &RequestContext,
    change: impl std::future::Future<Output = Result<i64, TokenError>>,
    answer: impl Fn(i16, i64) -> R,
) -> R {
    if !channel_allows_tokens(rc) {
        refused_channel(api, rc);
        return answer(ResponseError::DelegationTokenRequestNotAllowed.code(), -1);
    }
    match change.await {
        Ok(expiry) => answer(0, expiry),
        Err(e) => {
            log_refusal(api, rc, &e);
            answer(e.code(), 0)
        }
    }
}

pub async fn renew(
    ctx: &Context,
    rc: &RequestContext,
    _version: i16,
    req: RenewDelegationTokenRequest,
) -> Option<RenewDelegationTokenResponse> {
    let now = crate::clock::now_ms();
    let change = ctx
        .tokens
        .renew(&req.hmac, &rc.principal, req.renew_period_ms, now);
    Some(
        change_expiry("RenewDelegationToken", rc, change, |code, expiry| {
            RenewDelegationTokenResponse::default()
                .with_error_code(code)
                .with_expiry_timestamp_ms(expiry)
        })
        .await,
    )
}

pub async fn expire(
    ctx: &Context,
    rc: &RequestContext,
    _version: i16,
    req: ExpireDelegationTokenRequest,
) -> Option<ExpireDelegationTokenResponse> {
    let now = crate::clock::now_ms();
    let change = ctx
        .tokens
        .expire(&req.hmac, &rc.principal, req.expiry_time_period_ms, now);
    Some(
        change_expiry("ExpireDelegationToken", rc, change, |code, expiry| {
            ExpireDelegationTokenResponse::default()
                .with_error_code(code)
                .with_expiry_timestamp_ms(expiry)
        })
        .await,
    )
}

pub async fn describe(
    ctx: &Context,
    rc: &RequestContext,
    version: i16,
    req: DescribeDelegationTokenRequest,
) -> Option<DescribeDelegationTokenResponse> {
    let error = |code: i16| Some(DescribeDelegationTokenResponse::default().with_error_code(code));
    if !channel_allows_tokens(rc) {
        refused_channel("DescribeDelegationToken", rc);
        return error(ResponseError::DelegationTokenRequestNotAllowed.code());
    }
    let all = match ctx.tokens.list() {
        Ok(all) => all,
        Err(e) => return error(e.code()),
    };
    // Null owners: every token; an empty list: none.
    let owners: Option<Vec<String>> = req.owners.map(|o| {
        o.iter()
            .map(|p| {
                format!(
                    "{}:{}",
                    p.principal_type.as_str(),
                    p.principal_name.as_str()
                )
            })
            .collect()
    });
    if owners.as_ref().is_some_and(Vec::is_empty) {
        return error(0);
    }
    let az = Authz::for_request(ctx, rc);
    let may_see = |info: &TokenInfo| match &az {
        None => true,
        Some(az) => {
            info.concerns(&rc.principal)
                || az.allows(Operation::Describe, ResourceType::DelegationToken, &info.id)
                || az.allows(Operation::DescribeTokens, ResourceType::User, &info.owner)
        }
    };
    let tokens = all
        .into_iter()
        .filter(|(info, _)| {
            owners
                .as_ref()
                .is_none_or(|o| o.iter().any(|p| info.concerns(p)))
        })
        .filter(|(info, _)| may_see(info))
        .map(|(info, hmac)| {
            let (owner_type, owner_name) = split(&info.owner);
            let mut t = DescribedDelegationToken::default()
                .with_principal_type(sb(owner_type))
                .with_principal_name(sb(owner_name))
                .with_issue_timestamp(info.issue_ms)
                .with_expiry_timestamp(info.expiry_ms)
                .with_max_timestamp(info.max_ms)
                .with_hmac(bytes::Bytes::copy_from_slice(&hmac))
                .with_renewers(
                    info.renewers
                        .iter()
                        .map(|r| {
                            let (t, n) = split(r);
                            DescribedDelegationTokenRenewer::default()
                                .with_principal_type(sb(t))
                                .with_principal_name(sb(n))
                        })
                        .collect(),
                );
            if version >= 3 {
                let (rt, rn) = split(&info.requester);
                t = t
                    .with_token_requester_principal_type(sb(rt))
                    .with_token_requester_principal_name(sb(rn));
            }
            t.with_token_id(sb(info.id))
        })
        .collect();
    Some(DescribeDelegationTokenResponse::default().with_tokens(tokens))
}
