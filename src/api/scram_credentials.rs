//! DescribeUserScramCredentials and AlterUserScramCredentials (KIP-554): how Kafka's admin
//! clients and `kafka-configs --entity-type users` list and change SASL/SCRAM users. The
//! client sends a salted password, never the password; the broker keeps the derived keys.

use std::collections::{BTreeMap, HashMap};

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::ResponseError;

use super::{sb, RequestContext};
use crate::context::Context;
use crate::security::scram::{ScramCredential, ScramMechanism, MAX_ITERATIONS, MIN_ITERATIONS};

pub async fn describe(
    ctx: &Context,
    _rc: &RequestContext,
    _version: i16,
    req: DescribeUserScramCredentialsRequest,
) -> Option<DescribeUserScramCredentialsResponse> {
    let all = ctx.users.list();
    // Kafka: no users named means every user; a name given twice gets DUPLICATE_RESOURCE.
    let mut wanted: BTreeMap<String, bool> = BTreeMap::new();
    match req.users.filter(|u| !u.is_empty()) {
        None => {
            for (user, _) in &all {
                wanted.insert(user.clone(), false);
            }
        }
        Some(users) => {
            for u in users {
                let dup = wanted.contains_key(u.name.as_str());
                wanted.insert(u.name.to_string(), dup);
            }
        }
    }
    let known: HashMap<&str, &Vec<(ScramMechanism, u32)>> =
        all.iter().map(|(u, c)| (u.as_str(), c)).collect();
    let results = wanted
        .into_iter()
        .map(|(user, duplicate)| {
            let mut r = DescribeUserScramCredentialsResult::default().with_user(sb(user.clone()));
            if duplicate {
                r.error_code = ResponseError::DuplicateResource.code();
                r.error_message = Some(sb(format!(
                    "Cannot describe SCRAM credentials for the same user twice in a single request: {user}"
                )));
            } else if let Some(creds) = known.get(user.as_str()) {
                r.credential_infos = creds
                    .iter()
                    .map(|(m, iterations)| {
                        CredentialInfo::default()
                            .with_mechanism(m.kafka_type())
                            .with_iterations(*iterations as i32)
                    })
                    .collect();
            } else {
                r.error_code = ResponseError::ResourceNotFound.code();
                r.error_message = Some(sb(format!(
                    "Attempt to describe a user credential that does not exist: {user}"
                )));
            }
            r
        })
        .collect();
    Some(DescribeUserScramCredentialsResponse::default().with_results(results))
}

pub async fn alter(
    ctx: &Context,
    _rc: &RequestContext,
    _version: i16,
    req: AlterUserScramCredentialsRequest,
) -> Option<AlterUserScramCredentialsResponse> {
    // As Kafka's controller: one change per user per request, each validated on its own;
    // the valid ones are applied together.
    let mut errors: BTreeMap<String, (ResponseError, String)> = BTreeMap::new();
    let mut deletions: BTreeMap<String, ScramMechanism> = BTreeMap::new();
    let mut upsertions: BTreeMap<String, (ScramMechanism, ScramCredential)> = BTreeMap::new();
    let duplicate = || {
        (
            ResponseError::DuplicateResource,
            "A user credential cannot be altered twice in the same request".to_string(),
        )
    };
    for d in &req.deletions {
        let user = d.name.to_string();
        if errors.contains_key(&user) {
            continue;
        }
        if deletions.remove(&user).is_some() {
            errors.insert(user, duplicate());
            continue;
        }
        match validate(&user, d.mechanism) {
            Err(e) => {
                errors.insert(user, e);
            }
            Ok(m) if ctx.users.get(&user, m).is_none() => {
                errors.insert(
                    user,
                    (
                        ResponseError::ResourceNotFound,
                        "Attempt to delete a user credential that does not exist".into(),
                    ),
                );
            }
            Ok(m) => {
                deletions.insert(user, m);
            }
        }
    }
    for u in req.upsertions {
        let user = u.name.to_string();
        if errors.contains_key(&user) {
            continue;
        }
        if deletions.remove(&user).is_some() || upsertions.remove(&user).is_some() {
            errors.insert(user, duplicate());
            continue;
        }
        let m = match validate(&user, u.mechanism) {
            Ok(m) => m,
            Err(e) => {
                errors.insert(user, e);
                continue;
            }
        };
        if u.iterations < MIN_ITERATIONS as i32 {
            errors.insert(
                user,
                (
                    ResponseError::UnacceptableCredential,
                    "Too few iterations".into(),
                ),
            );
            continue;
        }
        if u.iterations > MAX_ITERATIONS as i32 {
            errors.insert(
                user,
                (
                    ResponseError::UnacceptableCredential,
                    "Too many iterations".into(),
                ),
            );
            continue;
        }
        let credential = ScramCredential::from_salted(
            m,
            &u.salted_password,
            u.salt.to_vec(),
            u.iterations as u32,
        );
        upsertions.insert(user, (m, credential));
    }
    let mut results = Vec::new();
    let deleted: Vec<(String, ScramMechanism)> = deletions.into_iter().collect();
    let upserted: Vec<(String, ScramMechanism, ScramCredential)> = upsertions
        .into_iter()
        .map(|(u, (m, c))| (u, m, c))
        .collect();
    let applied: Vec<String> = deleted
        .iter()
        .map(|(u, _)| u.clone())
        .chain(upserted.iter().map(|(u, _, _)| u.clone()))
        .collect();
    let failure = match ctx.users.alter(&deleted, upserted).await {
        Ok(()) => None,
        Err(e) => {
            tracing::warn!(error = %e, "AlterUserScramCredentials: the write failed");
            Some(e.to_string())
        }
    };
    for user in applied {
        let mut r = AlterUserScramCredentialsResult::default().with_user(sb(user));
        if let Some(why) = &failure {
            r.error_code = ResponseError::KafkaStorageError.code();
            r.error_message = Some(sb(why.clone()));
        }
        results.push(r);
    }
    for (user, (code, message)) in errors {
        results.push(
            AlterUserScramCredentialsResult::default()
                .with_user(sb(user))
                .with_error_code(code.code())
                .with_error_message(Some(sb(message))),
        );
    }
    Some(AlterUserScramCredentialsResponse::default().with_results(results))
}

fn validate(user: &str, mechanism: i8) -> Result<ScramMechanism, (ResponseError, String)> {
    if user.is_empty() {
        return Err((
            ResponseError::UnacceptableCredential,
            "Username must not be empty".into(),
        ));
    }
    if user.len() > crate::security::credentials::MAX_USER_NAME_BYTES {
        return Err((
            ResponseError::UnacceptableCredential,
            format!(
                "Username is longer than {} bytes",
                crate::security::credentials::MAX_USER_NAME_BYTES
            ),
        ));
    }
    ScramMechanism::from_kafka_type(mechanism).ok_or((
        ResponseError::UnsupportedSaslMechanism,
        "Unknown SCRAM mechanism".into(),
    ))
}
