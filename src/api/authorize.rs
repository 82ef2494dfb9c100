//! The one place requests are authorized. The request router calls [`Authorize::authorize`]
//! on every decoded request before its handler runs, and requires an implementation for
//! every request type it routes, so a new API cannot be served unchecked: it does not
//! compile until it says what it checks.
//!
//! Each implementation asks for the operations Kafka's `KafkaApis` asks for, on the same
//! resources, and answers with Kafka's errors: a request refused as a whole gets its error
//! response at once; a request refused in part is served for what is allowed, and the
//! refused topics, groups or ids are put back into the response with their error
//! afterwards. Listings (Metadata, ListGroups, ListTransactions, DescribeTopicPartitions)
//! leave out what the principal may not describe, and `authorized_operations` is filled
//! from the ACLs.

use std::net::IpAddr;
use std::sync::Arc;

use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Request, StrBytes};
use kafka_protocol::ResponseError;

use crate::context::Context;
use crate::fault::Faultable;
use crate::security::acl::{Authorizer, Operation, ResourceType, CLUSTER_NAME};

const TOPIC_DENIED: i16 = 29;
const GROUP_DENIED: i16 = 30;
const CLUSTER_DENIED: i16 = 31;
const TXN_DENIED: i16 = 53;

/// Who is asking, from where, and the ACLs that decide.
#[derive(Clone)]
pub struct Authz {
    authorizer: Arc<Authorizer>,
    principal: Arc<str>,
    host: IpAddr,
}

impl Authz {
    /// The checker for one request, or `None` when `--authorizer` is off.
    pub fn for_request(ctx: &Context, rc: &super::RequestContext) -> Option<Authz> {
        ctx.authorizer.enabled().then(|| Authz {
            authorizer: ctx.authorizer.clone(),
            principal: rc.principal.clone(),
            host: rc.peer.ip(),
        })
    }

    pub fn allows(&self, op: Operation, rt: ResourceType, name: &str) -> bool {
        let ok = self
            .authorizer
            .authorize(&self.principal, self.host, op, rt, name);
        if !ok {
            tracing::debug!(principal = %self.principal, host = %self.host, operation = op.name(), resource_type = rt.name(), resource = name, "denied");
        }
        ok
    }

    pub fn topic(&self, op: Operation, name: &str) -> bool {
        self.allows(op, ResourceType::Topic, name)
    }

    pub fn group(&self, op: Operation, name: &str) -> bool {
        self.allows(op, ResourceType::Group, name)
    }

    pub fn txn(&self, op: Operation, id: &str) -> bool {
        self.allows(op, ResourceType::TransactionalId, id)
    }

    pub fn cluster(&self, op: Operation) -> bool {
        self.allows(op, ResourceType::Cluster, CLUSTER_NAME)
    }

    /// Kafka's `authorized_operations` bits for one resource.
    pub fn bits(&self, rt: ResourceType, name: &str) -> i32 {
        self.authorizer
            .operations_bits(&self.principal, self.host, rt, name)
    }
}

/// A fix-up applied to the handler's response: puts back what was refused.
pub type Fix<T> = Box<dyn FnOnce(&mut T) + Send>;

/// What the authorizer decided about one request.
pub enum Gate<R: Request> {
    /// Serve it as it is.
    Pass(R),
    /// Answer with this, without serving it.
    Refuse(R::Response),
    /// Serve what is left of it, then apply the fix-up to the response.
    Partial(R, Fix<R::Response>),
    /// Close the connection (a refused acks=0 produce has no response to carry an error).
    Close(String),
}

/// What a request type is authorized for; see the module documentation.
pub trait Authorize: Request + Sized {
    fn authorize(self, az: &Authz, version: i16, ctx: &Context) -> Gate<Self>;
}

/// Serve as is, or fix the response afterwards.
fn pass_or_fix<R: Request>(req: R, fix: Option<Fix<R::Response>>) -> Gate<R> {
    match fix {
        None => Gate::Pass(req),
        Some(f) => Gate::Partial(req, f),
    }
}

/// The answer to a request (or to the refused part of one) that fails with `code` in every
/// partition: the same answer fault injection gives, so the two cannot drift apart.
fn answered_with<R: Faultable>(req: &R, version: i16, code: i16) -> R::Response
where
    R::Response: Default,
{
    req.error_response(version, code).unwrap_or_default()
}

/// Splits `items` into the allowed and the refused.
fn split<T>(items: Vec<T>, allowed: impl Fn(&T) -> bool) -> (Vec<T>, Vec<T>) {
    items.into_iter().partition(|t| allowed(t))
}

/// A topic's name in a request that may carry only its id (newer versions); `None` for an
/// id no topic has, which the handler answers UNKNOWN_TOPIC_ID without revealing anything.
fn topic_name(ctx: &Context, name: &str, id: &uuid::Uuid) -> Option<String> {
    if name.is_empty() && !id.is_nil() {
        ctx.metadata.topic_by_id(id).map(|t| t.name.to_string())
    } else {
        Some(name.to_string())
    }
}

fn sb(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// Requests Kafka serves to anyone (before or beside authorization).
macro_rules! unchecked {
    ($($t:ty),* $(,)?) => {$(
        impl Authorize for $t {
            fn authorize(self, _: &Authz, _: i16, _: &Context) -> Gate<Self> {
                Gate::Pass(self)
            }
        }
    )*};
}

unchecked!(
    ApiVersionsRequest,
    SaslHandshakeRequest,
    SaslAuthenticateRequest,
    GetTelemetrySubscriptionsRequest,
    PushTelemetryRequest,
    // The token requests authorize in their handlers (`super::delegation_tokens`): Kafka
    // checks the channel before any ACL, and filters described tokens one by one.
    CreateDelegationTokenRequest,
    RenewDelegationTokenRequest,
    ExpireDelegationTokenRequest,
    DescribeDelegationTokenRequest
);

/// Requests that need one operation on the cluster, refused whole with a response that
/// carries CLUSTER_AUTHORIZATION_FAILED at the top.
macro_rules! cluster_op {
    ($($t:ty => $op:ident, |$req:ident| $refusal:expr;)*) => {$(
        impl Authorize for $t {
            fn authorize(self, az: &Authz, _: i16, _: &Context) -> Gate<Self> {
                if az.cluster(Operation::$op) {
                    Gate::Pass(self)
                } else {
                    let $req = self;
                    Gate::Refuse($refusal)
                }
            }
        }
    )*};
}

cluster_op! {
    DescribeLogDirsRequest => Describe, |_r| DescribeLogDirsResponse::default().with_error_code(CLUSTER_DENIED);
    DescribeClientQuotasRequest => DescribeConfigs, |_r| DescribeClientQuotasResponse::default().with_error_code(CLUSTER_DENIED).with_error_message(Some(sb("Cluster authorization failed."))).with_entries(None);
    AlterClientQuotasRequest => AlterConfigs, |r| AlterClientQuotasResponse::default().with_entries(r.entries.into_iter().map(|e| {
        alter_client_quotas_response::EntryData::default().with_error_code(CLUSTER_DENIED)
            .with_error_message(Some(sb("Cluster authorization failed.")))
            .with_entity(e.entity.into_iter().map(|d| alter_client_quotas_response::EntityData::default()
                .with_entity_type(d.entity_type).with_entity_name(d.entity_name)).collect())
    }).collect());
    ListConfigResourcesRequest => DescribeConfigs, |_r| ListConfigResourcesResponse::default().with_error_code(CLUSTER_DENIED);
    DescribeQuorumRequest => Describe, |_r| DescribeQuorumResponse::default().with_error_code(CLUSTER_DENIED).with_error_message(Some(sb("Cluster authorization failed.")));
    UpdateFeaturesRequest => Alter, |_r| UpdateFeaturesResponse::default().with_error_code(CLUSTER_DENIED).with_error_message(Some(sb("Cluster authorization failed.")));
    AlterPartitionReassignmentsRequest => Alter, |_r| AlterPartitionReassignmentsResponse::default().with_error_code(CLUSTER_DENIED);
    ListPartitionReassignmentsRequest => Describe, |_r| ListPartitionReassignmentsResponse::default().with_error_code(CLUSTER_DENIED);
    DescribeUserScramCredentialsRequest => Describe, |_r| DescribeUserScramCredentialsResponse::default().with_error_code(CLUSTER_DENIED).with_error_message(Some(sb("Cluster authorization failed.")));
    DescribeAclsRequest => Describe, |_r| DescribeAclsResponse::default().with_error_code(CLUSTER_DENIED).with_error_message(Some(sb("Cluster authorization failed.")));
    AlterUserScramCredentialsRequest => Alter, |r| {
        let users: std::collections::BTreeSet<String> = r.deletions.iter().map(|d| d.name.to_string())
            .chain(r.upsertions.iter().map(|u| u.name.to_string())).collect();
        AlterUserScramCredentialsResponse::default().with_results(users.into_iter().map(|u| {
            alter_user_scram_credentials_response::AlterUserScramCredentialsResult::default()
                .with_user(sb(u)).with_error_code(CLUSTER_DENIED)
        }).collect())
    };
    CreateAclsRequest => Alter, |r| CreateAclsResponse::default().with_results(r.creations.iter().map(|_| {
        create_acls_response::AclCreationResult::default().with_error_code(CLUSTER_DENIED)
            .with_error_message(Some(sb("Cluster authorization failed.")))
    }).collect());
    DeleteAclsRequest => Alter, |r| DeleteAclsResponse::default().with_filter_results(r.filters.iter().map(|_| {
        delete_acls_response::DeleteAclsFilterResult::default().with_error_code(CLUSTER_DENIED)
            .with_error_message(Some(sb("Cluster authorization failed.")))
    }).collect());
    ElectLeadersRequest => Alter, |r| ElectLeadersResponse::default().with_error_code(CLUSTER_DENIED)
        .with_replica_election_results(r.topic_partitions.unwrap_or_default().into_iter().map(|t| {
            elect_leaders_response::ReplicaElectionResult::default().with_topic(t.topic)
                .with_partition_result(t.partitions.into_iter().map(|p| {
                    elect_leaders_response::PartitionResult::default().with_partition_id(p).with_error_code(CLUSTER_DENIED)
                }).collect())
        }).collect());
    ReadShareGroupStateRequest => ClusterAction, |r| super::share_state::refused::read(r);
    WriteShareGroupStateRequest => ClusterAction, |r| super::share_state::refused::write(r);
    InitializeShareGroupStateRequest => ClusterAction, |r| super::share_state::refused::initialize(r);
    DeleteShareGroupStateRequest => ClusterAction, |r| super::share_state::refused::delete(r);
    ReadShareGroupStateSummaryRequest => ClusterAction, |r| super::share_state::refused::summary(r);
    WriteTxnMarkersRequest => ClusterAction, |r| WriteTxnMarkersResponse::default().with_markers(r.markers.into_iter().map(|m| {
        write_txn_markers_response::WritableTxnMarkerResult::default().with_producer_id(m.producer_id)
            .with_topics(m.topics.into_iter().map(|t| {
                write_txn_markers_response::WritableTxnMarkerTopicResult::default().with_name(t.name)
                    .with_partitions(t.partition_indexes.into_iter().map(|p| {
                        write_txn_markers_response::WritableTxnMarkerPartitionResult::default().with_partition_index(p).with_error_code(CLUSTER_DENIED)
                    }).collect())
            }).collect())
    }).collect());
}

impl Authorize for DescribeClusterRequest {
    fn authorize(self, az: &Authz, _: i16, _: &Context) -> Gate<Self> {
        if !self.include_cluster_authorized_operations {
            return Gate::Pass(self);
        }
        let az = az.clone();
        Gate::Partial(
            self,
            Box::new(move |r: &mut DescribeClusterResponse| {
                r.cluster_authorized_operations = az.bits(ResourceType::Cluster, CLUSTER_NAME);
            }),
        )
    }
}

impl Authorize for ProduceRequest {
    fn authorize(mut self, az: &Authz, version: i16, ctx: &Context) -> Gate<Self> {
        if let Some(id) = &self.transactional_id {
            if !az.txn(Operation::Write, id) {
                if self.acks == 0 {
                    return Gate::Close(format!(
                        "acks=0 produce refused: no WRITE on transactional id {:?}",
                        id.as_str()
                    ));
                }
                return Gate::Refuse(answered_with(&self, version, TXN_DENIED));
            }
        }
        let (allowed, denied) = split(std::mem::take(&mut self.topic_data), |t| {
            topic_name(ctx, &t.name, &t.topic_id).is_none_or(|n| az.topic(Operation::Write, &n))
        });
        self.topic_data = allowed;
        if denied.is_empty() {
            return Gate::Pass(self);
        }
        if self.acks == 0 {
            return Gate::Close("acks=0 produce refused: no WRITE on a topic".into());
        }
        let refused = ProduceRequest::default().with_topic_data(denied);
        let extra = answered_with(&refused, version, TOPIC_DENIED).responses;
        Gate::Partial(
            self,
            Box::new(move |r: &mut ProduceResponse| r.responses.extend(extra)),
        )
    }
}

/// A follower's fetch needs CLUSTER_ACTION, checked here for the whole request. A consumer's
/// needs READ on each topic it reads, and those are the fetch session's partitions, not the
/// request's: an incremental fetch names only what changed. So, as Kafka's `KafkaApis` does
/// after the session is resolved, the Fetch handler asks [`fetch_readable`] for every
/// partition it is about to read, on every request, and answers TOPIC_AUTHORIZATION_FAILED
/// for the others; a session therefore never reads a topic its current user may not, and
/// ACLs removed after a partition joined a session apply to the next fetch.
impl Authorize for FetchRequest {
    fn authorize(self, az: &Authz, version: i16, _: &Context) -> Gate<Self> {
        let replica = if version >= 15 {
            self.replica_state.replica_id.0
        } else {
            self.replica_id.0
        };
        if replica < 0 || az.cluster(Operation::ClusterAction) {
            return Gate::Pass(self);
        }
        Gate::Refuse(answered_with(&self, version, CLUSTER_DENIED).with_error_code(CLUSTER_DENIED))
    }
}

/// Whether the principal behind `az` may read `topic` with Fetch (`None`: no authorizer).
/// Called by the Fetch handler for each topic of the partitions it reads, see above.
pub fn fetch_readable(az: Option<&Authz>, topic: &str) -> bool {
    az.is_none_or(|az| az.topic(Operation::Read, topic))
}

impl Authorize for ListOffsetsRequest {
    fn authorize(mut self, az: &Authz, version: i16, _: &Context) -> Gate<Self> {
        let (allowed, denied) = split(std::mem::take(&mut self.topics), |t| {
            az.topic(Operation::Describe, &t.name)
        });
        self.topics = allowed;
        if denied.is_empty() {
            return Gate::Pass(self);
        }
        let refused = ListOffsetsRequest::default().with_topics(denied);
        let extra = answered_with(&refused, version, TOPIC_DENIED).topics;
        Gate::Partial(
            self,
            Box::new(move |r: &mut ListOffsetsResponse| r.topics.extend(extra)),
        )
    }
}

impl Authorize for OffsetForLeaderEpochRequest {
    fn authorize(mut self, az: &Authz, version: i16, _: &Context) -> Gate<Self> {
        use offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderTopicResult};
        let replica = version >= 3 && self.replica_id.0 >= 0;
        let (allowed, denied, code) = if replica {
            if az.cluster(Operation::ClusterAction) {
                return Gate::Pass(self);
            }
            (Vec::new(), std::mem::take(&mut self.topics), CLUSTER_DENIED)
        } else {
            let (a, d) = split(std::mem::take(&mut self.topics), |t| {
                az.topic(Operation::Describe, &t.topic)
            });
            (a, d, TOPIC_DENIED)
        };
        self.topics = allowed;
        if denied.is_empty() {
            return Gate::Pass(self);
        }
        let extra: Vec<_> = denied
            .into_iter()
            .map(|t| {
                OffsetForLeaderTopicResult::default()
                    .with_topic(t.topic)
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                EpochEndOffset::default()
                                    .with_partition(p.partition)
                                    .with_error_code(code)
                                    .with_leader_epoch(-1)
                                    .with_end_offset(-1)
                            })
                            .collect(),
                    )
            })
            .collect();
        Gate::Partial(
            self,
            Box::new(move |r: &mut OffsetForLeaderEpochResponse| r.topics.extend(extra)),
        )
    }
}

impl Authorize for MetadataRequest {
    fn authorize(mut self, az: &Authz, version: i16, ctx: &Context) -> Gate<Self> {
        use metadata_response::MetadataResponseTopic;
        let topic_ops = self.include_topic_authorized_operations && version >= 8;
        let cluster_ops = self.include_cluster_authorized_operations && (8..=10).contains(&version);
        // Refused topics as they were asked for: by name, or by id (v10+).
        let mut refused: Vec<(Option<TopicName>, uuid::Uuid)> = Vec::new();
        let auto_create =
            ctx.config.auto_create_topics_enable && (version < 4 || self.allow_auto_topic_creation);
        if let Some(topics) = self.topics.take() {
            let may_create_any = az.cluster(Operation::Create);
            let (allowed, denied) = split(topics, |t| match &t.name {
                // By id: the topic's name decides; an id no topic has is answered
                // UNKNOWN_TOPIC_ID by the handler.
                None => topic_name(ctx, "", &t.topic_id)
                    .is_none_or(|n| az.topic(Operation::Describe, &n)),
                Some(n) => {
                    az.topic(Operation::Describe, n)
                        // A topic that would be auto-created needs CREATE as well.
                        && (!auto_create
                            || ctx.metadata.topic(n).is_some()
                            || may_create_any
                            || az.topic(Operation::Create, n))
                }
            });
            refused = denied.into_iter().map(|t| (t.name, t.topic_id)).collect();
            self.topics = Some(allowed);
        }
        let az = az.clone();
        Gate::Partial(
            self,
            Box::new(move |r: &mut MetadataResponse| {
                // Listing or not, nothing the principal may not describe goes out.
                r.topics.retain(|t| {
                    t.name
                        .as_ref()
                        .is_none_or(|n| az.topic(Operation::Describe, n))
                });
                if topic_ops {
                    for t in &mut r.topics {
                        if let Some(n) = &t.name {
                            t.topic_authorized_operations = az.bits(ResourceType::Topic, n);
                        }
                    }
                }
                if cluster_ops {
                    r.cluster_authorized_operations = az.bits(ResourceType::Cluster, CLUSTER_NAME);
                }
                r.topics.extend(refused.into_iter().map(|(name, id)| {
                    MetadataResponseTopic::default()
                        .with_name(name)
                        .with_topic_id(if version >= 10 { id } else { uuid::Uuid::nil() })
                        .with_error_code(TOPIC_DENIED)
                }));
            }),
        )
    }
}

impl Authorize for DescribeTopicPartitionsRequest {
    fn authorize(mut self, az: &Authz, _: i16, _: &Context) -> Gate<Self> {
        use describe_topic_partitions_response::DescribeTopicPartitionsResponseTopic;
        let listing = self.topics.is_empty();
        let (allowed, denied) = split(std::mem::take(&mut self.topics), |t| {
            az.topic(Operation::Describe, &t.name)
        });
        if !listing && allowed.is_empty() {
            // An empty list would mean "every topic" to the handler.
            let topics = denied
                .into_iter()
                .map(|t| {
                    DescribeTopicPartitionsResponseTopic::default()
                        .with_name(Some(t.name))
                        .with_error_code(TOPIC_DENIED)
                })
                .collect();
            return Gate::Refuse(DescribeTopicPartitionsResponse::default().with_topics(topics));
        }
        self.topics = allowed;
        let az = az.clone();
        Gate::Partial(
            self,
            Box::new(move |r: &mut DescribeTopicPartitionsResponse| {
                if listing {
                    r.topics.retain(|t| {
                        t.name
                            .as_ref()
                            .is_none_or(|n| az.topic(Operation::Describe, n))
                    });
                }
                for t in &mut r.topics {
                    if let Some(n) = &t.name {
                        t.topic_authorized_operations = az.bits(ResourceType::Topic, n);
                    }
                }
                r.topics.extend(denied.into_iter().map(|t| {
                    DescribeTopicPartitionsResponseTopic::default()
                        .with_name(Some(t.name))
                        .with_error_code(TOPIC_DENIED)
                }));
                r.topics.sort_by(|a, b| a.name.cmp(&b.name));
            }),
        )
    }
}

impl Authorize for CreateTopicsRequest {
    fn authorize(mut self, az: &Authz, _: i16, _: &Context) -> Gate<Self> {
        use create_topics_response::CreatableTopicResult;
        if az.cluster(Operation::Create) {
            return Gate::Pass(self);
        }
        let (allowed, denied) = split(std::mem::take(&mut self.topics), |t| {
            az.topic(Operation::Create, &t.name)
        });
        self.topics = allowed;
        if denied.is_empty() {
            return Gate::Pass(self);
        }
        let extra: Vec<_> = denied
            .into_iter()
            .map(|t| {
                CreatableTopicResult::default()
                    .with_name(t.name)
                    .with_error_code(TOPIC_DENIED)
                    .with_error_message(Some(sb("Authorization failed.")))
                    .with_topic_config_error_code(TOPIC_DENIED)
                    .with_num_partitions(-1)
                    .with_replication_factor(-1)
            })
            .collect();
        Gate::Partial(
            self,
            Box::new(move |r: &mut CreateTopicsResponse| r.topics.extend(extra)),
        )
    }
}

impl Authorize for DeleteTopicsRequest {
    fn authorize(mut self, az: &Authz, _: i16, ctx: &Context) -> Gate<Self> {
        use delete_topics_response::DeletableTopicResult;
        let (names, denied_names) = split(std::mem::take(&mut self.topic_names), |n| {
            az.topic(Operation::Delete, n)
        });
        self.topic_names = names;
        let (states, denied_states) = split(std::mem::take(&mut self.topics), |t| {
            let name = t.name.as_ref().map(|n| n.to_string()).unwrap_or_default();
            topic_name(ctx, &name, &t.topic_id).is_none_or(|n| az.topic(Operation::Delete, &n))
        });
        self.topics = states;
        if denied_names.is_empty() && denied_states.is_empty() {
            return Gate::Pass(self);
        }
        let extra: Vec<_> = denied_names
            .into_iter()
            .map(|n| {
                DeletableTopicResult::default()
                    .with_name(Some(n))
                    .with_error_code(TOPIC_DENIED)
            })
            .chain(denied_states.into_iter().map(|t| {
                DeletableTopicResult::default()
                    .with_name(t.name)
                    .with_topic_id(t.topic_id)
                    .with_error_code(TOPIC_DENIED)
            }))
            .collect();
        Gate::Partial(
            self,
            Box::new(move |r: &mut DeleteTopicsResponse| r.responses.extend(extra)),
        )
    }
}

impl Authorize for CreatePartitionsRequest {
    fn authorize(mut self, az: &Authz, _: i16, _: &Context) -> Gate<Self> {
        use create_partitions_response::CreatePartitionsTopicResult;
        let (allowed, denied) = split(std::mem::take(&mut self.topics), |t| {
            az.topic(Operation::Alter, &t.name)
        });
        self.topics = allowed;
        if denied.is_empty() {
            return Gate::Pass(self);
        }
        let extra: Vec<_> = denied
            .into_iter()
            .map(|t| {
                CreatePartitionsTopicResult::default()
                    .with_name(t.name)
                    .with_error_code(TOPIC_DENIED)
                    .with_error_message(Some(sb("Topic authorization failed.")))
            })
            .collect();
        Gate::Partial(
            self,
            Box::new(move |r: &mut CreatePartitionsResponse| r.results.extend(extra)),
        )
    }
}

impl Authorize for DeleteRecordsRequest {
    fn authorize(mut self, az: &Authz, _: i16, _: &Context) -> Gate<Self> {
        use delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
        let (allowed, denied) = split(std::mem::take(&mut self.topics), |t| {
            az.topic(Operation::Delete, &t.name)
        });
        self.topics = allowed;
        if denied.is_empty() {
            return Gate::Pass(self);
        }
        let extra: Vec<_> = denied
            .into_iter()
            .map(|t| {
                DeleteRecordsTopicResult::default()
                    .with_name(t.name)
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                DeleteRecordsPartitionResult::default()
                                    .with_partition_index(p.partition_index)
                                    .with_low_watermark(-1)
                                    .with_error_code(TOPIC_DENIED)
                            })
                            .collect(),
                    )
            })
            .collect();
        Gate::Partial(
            self,
            Box::new(move |r: &mut DeleteRecordsResponse| r.topics.extend(extra)),
        )
    }
}

/// The operation, resource and error of a config resource (DescribeConfigs, AlterConfigs):
/// topics and groups are checked by name, the broker and its loggers on the cluster.
fn config_resource(
    az: &Authz,
    op: Operation,
    resource_type: i8,
    name: &str,
) -> Option<(i16, &'static str)> {
    let (rt, code, name) = match resource_type {
        2 => (
            ResourceType::Topic,
            (TOPIC_DENIED, "Topic authorization failed."),
            name,
        ),
        32 => (
            ResourceType::Group,
            (GROUP_DENIED, "Group authorization failed."),
            name,
        ),
        _ => (
            ResourceType::Cluster,
            (CLUSTER_DENIED, "Cluster authorization failed."),
            CLUSTER_NAME,
        ),
    };
    (!az.allows(op, rt, name)).then_some(code)
}

impl Authorize for DescribeConfigsRequest {
    fn authorize(mut self, az: &Authz, _: i16, _: &Context) -> Gate<Self> {
        use describe_configs_response::DescribeConfigsResult;
        let mut extra = Vec::new();
        self.resources.retain(|r| {
            match config_resource(
                az,
                Operation::DescribeConfigs,
                r.resource_type,
                &r.resource_name,
            ) {
                None => true,
                Some((code, message)) => {
                    extra.push(
                        DescribeConfigsResult::default()
                            .with_error_code(code)
                            .with_error_message(Some(sb(message)))
                            .with_resource_type(r.resource_type)
                            .with_resource_name(r.resource_name.clone()),
                    );
                    false
                }
            }
        });
        if extra.is_empty() {
            return Gate::Pass(self);
        }
        Gate::Partial(
            self,
            Box::new(move |r: &mut DescribeConfigsResponse| r.results.extend(extra)),
        )
    }
}

macro_rules! alter_configs {
    ($req:ty, $resp:ty, $item:path) => {
        impl Authorize for $req {
            fn authorize(mut self, az: &Authz, _: i16, _: &Context) -> Gate<Self> {
                let mut extra = Vec::new();
                self.resources.retain(|r| {
                    match config_resource(
                        az,
                        Operation::AlterConfigs,
                        r.resource_type,
                        &r.resource_name,
                    ) {
                        None => true,
                        Some((code, message)) => {
                            extra.push(
                                <$item>::default()
                                    .with_error_code(code)
                                    .with_error_message(Some(sb(message)))
                                    .with_resource_type(r.resource_type)
                                    .with_resource_name(r.resource_name.clone()),
                            );
                            false
                        }
                    }
                });
                if extra.is_empty() {
                    return Gate::Pass(self);
                }
                Gate::Partial(
                    self,
                    Box::new(move |r: &mut $resp| r.responses.extend(extra)),
                )
            }
        }
    };
}

alter_configs!(
    AlterConfigsRequest,
    AlterConfigsResponse,
    alter_configs_response::AlterConfigsResourceResponse
);
alter_configs!(
    IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
    incremental_alter_configs_response::AlterConfigsResourceResponse
);

/// A FindCoordinator key refused with `code`.
fn refused_coordinator(key: StrBytes, code: i16) -> find_coordinator_response::Coordinator {
    find_coordinator_response::Coordinator::default()
        .with_key(key)
        .with_node_id(BrokerId(-1))
        .with_port(-1)
        .with_error_code(code)
}

impl Authorize for FindCoordinatorRequest {
    fn authorize(mut self, az: &Authz, version: i16, _: &Context) -> Gate<Self> {
        if self.key_type == crate::share::coordinator::KEY_TYPE {
            // Share coordinators are the brokers' business: CLUSTER_ACTION, as Kafka.
            if az.cluster(Operation::ClusterAction) {
                return Gate::Pass(self);
            }
            let refused = std::mem::take(&mut self.coordinator_keys)
                .into_iter()
                .map(|k| refused_coordinator(k, CLUSTER_DENIED))
                .collect();
            return Gate::Refuse(FindCoordinatorResponse::default().with_coordinators(refused));
        }
        let (rt, code) = if self.key_type == 1 {
            (ResourceType::TransactionalId, TXN_DENIED)
        } else {
            (ResourceType::Group, GROUP_DENIED)
        };
        if version < 4 {
            if az.allows(Operation::Describe, rt, &self.key) {
                return Gate::Pass(self);
            }
            return Gate::Refuse(
                FindCoordinatorResponse::default()
                    .with_error_code(code)
                    .with_node_id(BrokerId(-1))
                    .with_port(-1),
            );
        }
        let (allowed, denied) = split(std::mem::take(&mut self.coordinator_keys), |k| {
            az.allows(Operation::Describe, rt, k)
        });
        if denied.is_empty() {
            self.coordinator_keys = allowed;
            return Gate::Pass(self);
        }
        let extra: Vec<_> = denied
            .into_iter()
            .map(|k| refused_coordinator(k, code))
            .collect();
        if allowed.is_empty() {
            return Gate::Refuse(FindCoordinatorResponse::default().with_coordinators(extra));
        }
        self.coordinator_keys = allowed;
        Gate::Partial(
            self,
            Box::new(move |r: &mut FindCoordinatorResponse| r.coordinators.extend(extra)),
        )
    }
}

/// Group requests that need READ on their one group, refused whole.
macro_rules! group_read {
    ($($t:ty => |$req:ident| $refusal:expr;)*) => {$(
        impl Authorize for $t {
            fn authorize(self, az: &Authz, _: i16, _: &Context) -> Gate<Self> {
                if az.group(Operation::Read, &self.group_id) {
                    Gate::Pass(self)
                } else {
                    let $req = self;
                    Gate::Refuse($refusal)
                }
            }
        }
    )*};
}

group_read! {
    JoinGroupRequest => |r| {
        let _ = r;
        JoinGroupResponse::default().with_error_code(GROUP_DENIED).with_generation_id(-1)
    };
    SyncGroupRequest => |_r| SyncGroupResponse::default().with_error_code(GROUP_DENIED);
    HeartbeatRequest => |_r| HeartbeatResponse::default().with_error_code(GROUP_DENIED);
    LeaveGroupRequest => |_r| LeaveGroupResponse::default().with_error_code(GROUP_DENIED);
}

impl Authorize for ConsumerGroupHeartbeatRequest {
    fn authorize(self, az: &Authz, _: i16, _: &Context) -> Gate<Self> {
        if !az.group(Operation::Read, &self.group_id) {
            return Gate::Refuse(
                ConsumerGroupHeartbeatResponse::default().with_error_code(GROUP_DENIED),
            );
        }
        if let Some(topics) = &self.subscribed_topic_names {
            let denied: Vec<&str> = topics
                .iter()
                .map(|t| t.as_str())
                .filter(|t| !az.topic(Operation::Describe, t))
                .collect();
            if !denied.is_empty() {
                return Gate::Refuse(
                    ConsumerGroupHeartbeatResponse::default()
                        .with_error_code(TOPIC_DENIED)
                        .with_error_message(Some(sb(format!(
                            "The following topics are not authorized: {}",
                            denied.join(", ")
                        )))),
                );
            }
        }
        Gate::Pass(self)
    }
}

/// ShareGroupHeartbeat: READ on the group, then (as Kafka's KafkaApis, after its member id
/// check, which the handler repeats) DESCRIBE on every subscribed topic, refused with a
/// bare TOPIC_AUTHORIZATION_FAILED.
impl Authorize for ShareGroupHeartbeatRequest {
    fn authorize(self, az: &Authz, _: i16, _: &Context) -> Gate<Self> {
        if !az.group(Operation::Read, &self.group_id) {
            return Gate::Refuse(
                ShareGroupHeartbeatResponse::default().with_error_code(GROUP_DENIED),
            );
        }
        let member_id_valid = !self.member_id.is_empty()
            && self.member_id.encode_utf16().count() <= crate::share::group::MEMBER_ID_MAX_CHARS;
        if let Some(topics) = self
            .subscribed_topic_names
            .as_ref()
            .filter(|_| member_id_valid)
        {
            if topics.iter().any(|t| !az.topic(Operation::Describe, t)) {
                return Gate::Refuse(
                    ShareGroupHeartbeatResponse::default().with_error_code(TOPIC_DENIED),
                );
            }
        }
        Gate::Pass(self)
    }
}

/// StreamsGroupHeartbeat: READ on the group, then DESCRIBE on every topic of a topology
/// (bare TOPIC_AUTHORIZATION_FAILED), as Kafka's KafkaApis.
impl Authorize for StreamsGroupHeartbeatRequest {
    fn authorize(self, az: &Authz, _: i16, _: &Context) -> Gate<Self> {
        if !az.group(Operation::Read, &self.group_id) {
            return Gate::Refuse(
                StreamsGroupHeartbeatResponse::default().with_error_code(GROUP_DENIED),
            );
        }
        if let Some(t) = &self.topology {
            let denied = t.subtopologies.iter().any(|s| {
                s.source_topics
                    .iter()
                    .chain(s.repartition_sink_topics.iter())
                    .chain(s.repartition_source_topics.iter().map(|i| &i.name))
                    .chain(s.state_changelog_topics.iter().map(|i| &i.name))
                    .any(|n| !az.topic(Operation::Describe, n))
            });
            if denied {
                return Gate::Refuse(
                    StreamsGroupHeartbeatResponse::default().with_error_code(TOPIC_DENIED),
                );
            }
        }
        Gate::Pass(self)
    }
}

/// StreamsGroupDescribe: DESCRIBE on each group (the refused answer
/// GROUP_AUTHORIZATION_FAILED).
impl Authorize for StreamsGroupDescribeRequest {
    fn authorize(mut self, az: &Authz, _: i16, _: &Context) -> Gate<Self> {
        use streams_group_describe_response::DescribedGroup;
        let (allowed, denied) = split(std::mem::take(&mut self.group_ids), |g| {
            az.group(Operation::Describe, g)
        });
        self.group_ids = allowed;
        Gate::Partial(
            self,
            Box::new(move |r: &mut StreamsGroupDescribeResponse| {
                r.groups.extend(denied.into_iter().map(|g| {
                    DescribedGroup::default()
                        .with_group_id(g)
                        .with_error_code(GROUP_DENIED)
                }));
            }),
        )
    }
}

/// StreamsGroupTopologyDescriptionUpdate: READ on the group.
impl Authorize for StreamsGroupTopologyDescriptionUpdateRequest {
    fn authorize(self, az: &Authz, _: i16, _: &Context) -> Gate<Self> {
        if az.group(Operation::Read, &self.group_id) {
            Gate::Pass(self)
        } else {
            Gate::Refuse(
                StreamsGroupTopologyDescriptionUpdateResponse::default()
                    .with_error_code(GROUP_DENIED),
            )
        }
    }
}

/// ShareFetch: READ on the group (after the handler's own null group check, as Kafka);
/// READ on each topic is the handler's, per partition.
impl Authorize for ShareFetchRequest {
    fn authorize(self, az: &Authz, _: i16, _: &Context) -> Gate<Self> {
        match &self.group_id {
            Some(g) if !az.group(Operation::Read, g) => {
                Gate::Refuse(ShareFetchResponse::default().with_error_code(GROUP_DENIED))
            }
            _ => Gate::Pass(self),
        }
    }
}

/// ShareAcknowledge: READ on the group; READ on each topic is the handler's.
impl Authorize for ShareAcknowledgeRequest {
    fn authorize(self, az: &Authz, _: i16, _: &Context) -> Gate<Self> {
        match &self.group_id {
            Some(g) if !az.group(Operation::Read, g) => {
                Gate::Refuse(ShareAcknowledgeResponse::default().with_error_code(GROUP_DENIED))
            }
            _ => Gate::Pass(self),
        }
    }
}

/// DescribeShareGroupOffsets: DESCRIBE on each group (refused groups answer
/// GROUP_AUTHORIZATION_FAILED); DESCRIBE on topics is the handler's.
impl Authorize for DescribeShareGroupOffsetsRequest {
    fn authorize(mut self, az: &Authz, _: i16, _: &Context) -> Gate<Self> {
        use describe_share_group_offsets_response::DescribeShareGroupOffsetsResponseGroup;
        let (allowed, denied) = split(std::mem::take(&mut self.groups), |g| {
            az.group(Operation::Describe, &g.group_id)
        });
        self.groups = allowed;
        Gate::Partial(
            self,
            Box::new(move |r: &mut DescribeShareGroupOffsetsResponse| {
                r.groups.extend(denied.into_iter().map(|g| {
                    DescribeShareGroupOffsetsResponseGroup::default()
                        .with_group_id(g.group_id)
                        .with_error_code(GROUP_DENIED)
                }));
            }),
        )
    }
}

/// AlterShareGroupOffsets: READ on the group, as Kafka.
impl Authorize for AlterShareGroupOffsetsRequest {
    fn authorize(self, az: &Authz, _: i16, _: &Context) -> Gate<Self> {
        if az.group(Operation::Read, &self.group_id) {
            Gate::Pass(self)
        } else {
            Gate::Refuse(AlterShareGroupOffsetsResponse::default().with_error_code(GROUP_DENIED))
        }
    }
}

/// DeleteShareGroupOffsets: DELETE on the group, as Kafka.
impl Authorize for DeleteShareGroupOffsetsRequest {
    fn authorize(self, az: &Authz, _: i16, _: &Context) -> Gate<Self> {
        if az.group(Operation::Delete, &self.group_id) {
            Gate::Pass(self)
        } else {
            Gate::Refuse(DeleteShareGroupOffsetsResponse::default().with_error_code(GROUP_DENIED))
        }
    }
}

/// ShareGroupDescribe: DESCRIBE on each group (the refused come back with
/// GROUP_AUTHORIZATION_FAILED), and a described group whose members are assigned a topic
/// the principal may not describe is replaced by TOPIC_AUTHORIZATION_FAILED, as Kafka does.
impl Authorize for ShareGroupDescribeRequest {
    fn authorize(mut self, az: &Authz, _: i16, _: &Context) -> Gate<Self> {
        use share_group_describe_response::DescribedGroup;
        let (allowed, denied) = split(std::mem::take(&mut self.group_ids), |g| {
            az.group(Operation::Describe, g)
        });
        self.group_ids = allowed;
        let ops = self.include_authorized_operations;
        let az = az.clone();
        Gate::Partial(
            self,
            Box::new(move |r: &mut ShareGroupDescribeResponse| {
                for g in &mut r.groups {
                    let hidden = g.members.iter().any(|m| {
                        m.assignment
                            .topic_partitions
                            .iter()
                            .any(|t| !az.topic(Operation::Describe, &t.topic_name))
                    });
                    if hidden {
                        *g = DescribedGroup::default()
                            .with_group_id(g.group_id.clone())
                            .with_error_code(TOPIC_DENIED)
                            .with_error_message(Some(sb(
                                "The group has described topic(s) that the client is not authorized to describe.",
                            )))
                            .with_authorized_operations(i32::MIN);
                    } else if ops && g.error_code == 0 {
                        g.authorized_operations = az.bits(ResourceType::Group, &g.group_id);
                    }
                }
                r.groups.extend(denied.into_iter().map(|g| {
                    DescribedGroup::default()
                        .with_group_id(g)
                        .with_error_code(GROUP_DENIED)
                        .with_authorized_operations(i32::MIN)
                }));
            }),
        )
    }
}

impl Authorize for OffsetCommitRequest {
    fn authorize(mut self, az: &Authz, version: i16, ctx: &Context) -> Gate<Self> {
        if !az.group(Operation::Read, &self.group_id) {
            return Gate::Refuse(answered_with(&self, version, GROUP_DENIED));
        }
        let (allowed, denied) = split(std::mem::take(&mut self.topics), |t| {
            topic_name(ctx, &t.name, &t.topic_id).is_none_or(|n| az.topic(Operation::Read, &n))
        });
        self.topics = allowed;
        if denied.is_empty() {
            return Gate::Pass(self);
        }
        let refused = OffsetCommitRequest::default().with_topics(denied);
        let extra = answered_with(&refused, version, TOPIC_DENIED).topics;
        Gate::Partial(
            self,
            Box::new(move |r: &mut OffsetCommitResponse| r.topics.extend(extra)),
        )
    }
}

impl Authorize for OffsetFetchRequest {
    fn authorize(mut self, az: &Authz, version: i16, ctx: &Context) -> Gate<Self> {
        use offset_fetch_response::*;
        if version < 8 {
            if !az.group(Operation::Describe, &self.group_id) {
                let topics = self
                    .topics
                    .iter()
                    .flatten()
                    .map(|t| {
                        OffsetFetchResponseTopic::default()
                            .with_name(t.name.clone())
                            .with_partitions(
                                t.partition_indexes
                                    .iter()
                                    .map(|p| {
                                        OffsetFetchResponsePartition::default()
                                            .with_partition_index(*p)
                                            .with_committed_offset(-1)
                                            .with_error_code(GROUP_DENIED)
                                    })
                                    .collect(),
                            )
                    })
                    .collect();
                return Gate::Refuse(
                    OffsetFetchResponse::default()
                        .with_error_code(GROUP_DENIED)
                        .with_topics(topics),
                );
            }
            let mut denied = Vec::new();
            if let Some(topics) = self.topics.take() {
                let (a, d) = split(topics, |t| az.topic(Operation::Describe, &t.name));
                self.topics = Some(a);
                denied = d;
            }
            let az = az.clone();
            return Gate::Partial(
                self,
                Box::new(move |r: &mut OffsetFetchResponse| {
                    r.topics.retain(|t| az.topic(Operation::Describe, &t.name));
                    r.topics.extend(denied.into_iter().map(|t| {
                        OffsetFetchResponseTopic::default()
                            .with_name(t.name)
                            .with_partitions(
                                t.partition_indexes
                                    .iter()
                                    .map(|p| {
                                        OffsetFetchResponsePartition::default()
                                            .with_partition_index(*p)
                                            .with_committed_offset(-1)
                                            .with_error_code(TOPIC_DENIED)
                                    })
                                    .collect(),
                            )
                    }));
                }),
            );
        }
        // v8+: many groups, each checked by itself.
        let (groups, denied_groups) = split(std::mem::take(&mut self.groups), |g| {
            az.group(Operation::Describe, &g.group_id)
        });
        let mut denied_topics: Vec<(GroupId, Vec<offset_fetch_request::OffsetFetchRequestTopics>)> =
            Vec::new();
        self.groups = groups
            .into_iter()
            .map(|mut g| {
                if let Some(topics) = g.topics.take() {
                    let (a, d) = split(topics, |t| {
                        topic_name(ctx, &t.name, &t.topic_id)
                            .is_none_or(|n| az.topic(Operation::Describe, &n))
                    });
                    g.topics = Some(a);
                    if !d.is_empty() {
                        denied_topics.push((g.group_id.clone(), d));
                    }
                }
                g
            })
            .collect();
        let az = az.clone();
        Gate::Partial(
            self,
            Box::new(move |r: &mut OffsetFetchResponse| {
                for g in &mut r.groups {
                    g.topics.retain(|t| az.topic(Operation::Describe, &t.name));
                    if let Some((_, d)) = denied_topics.iter_mut().find(|(id, _)| *id == g.group_id)
                    {
                        g.topics.extend(std::mem::take(d).into_iter().map(|t| {
                            OffsetFetchResponseTopics::default()
                                .with_name(t.name)
                                .with_topic_id(t.topic_id)
                                .with_partitions(
                                    t.partition_indexes
                                        .iter()
                                        .map(|p| {
                                            OffsetFetchResponsePartitions::default()
                                                .with_partition_index(*p)
                                                .with_committed_offset(-1)
                                                .with_error_code(TOPIC_DENIED)
                                        })
                                        .collect(),
                                )
                        }));
                    }
                }
                r.groups.extend(denied_groups.into_iter().map(|g| {
                    OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id)
                        .with_error_code(GROUP_DENIED)
                }));
            }),
        )
    }
}

impl Authorize for OffsetDeleteRequest {
    fn authorize(mut self, az: &Authz, _: i16, _: &Context) -> Gate<Self> {
        use offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
        if !az.group(Operation::Delete, &self.group_id) {
            return Gate::Refuse(OffsetDeleteResponse::default().with_error_code(GROUP_DENIED));
        }
        let (allowed, denied) = split(std::mem::take(&mut self.topics), |t| {
            az.topic(Operation::Read, &t.name)
        });
        self.topics = allowed;
        if denied.is_empty() {
            return Gate::Pass(self);
        }
        let extra: Vec<_> = denied
            .into_iter()
            .map(|t| {
                OffsetDeleteResponseTopic::default()
                    .with_name(t.name)
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                OffsetDeleteResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(TOPIC_DENIED)
                            })
                            .collect(),
                    )
            })
            .collect();
        Gate::Partial(
            self,
            Box::new(move |r: &mut OffsetDeleteResponse| r.topics.extend(extra)),
        )
    }
}

impl Authorize for ListGroupsRequest {
    fn authorize(self, az: &Authz, _: i16, _: &Context) -> Gate<Self> {
        if az.cluster(Operation::Describe) {
            return Gate::Pass(self);
        }
        let az = az.clone();
        Gate::Partial(
            self,
            Box::new(move |r: &mut ListGroupsResponse| {
                r.groups
                    .retain(|g| az.group(Operation::Describe, &g.group_id))
            }),
        )
    }
}

/// DescribeGroups and ConsumerGroupDescribe: DESCRIBE on each group; the refused ones come
/// back with GROUP_AUTHORIZATION_FAILED, the others with their `authorized_operations`.
macro_rules! describe_groups {
    ($req:ty, $field:ident, $resp:ty, $group:path, |$r:ident, $v:ident| $want_ops:expr) => {
        impl Authorize for $req {
            fn authorize(mut self, az: &Authz, $v: i16, _: &Context) -> Gate<Self> {
                let (allowed, denied) = split(std::mem::take(&mut self.$field), |g| {
                    az.group(Operation::Describe, g)
                });
                self.$field = allowed;
                let $r = &self;
                let ops = $want_ops;
                let az = az.clone();
                Gate::Partial(
                    self,
                    Box::new(move |r: &mut $resp| {
                        if ops {
                            for g in &mut r.groups {
                                g.authorized_operations = az.bits(ResourceType::Group, &g.group_id);
                            }
                        }
                        r.groups.extend(denied.into_iter().map(|g| {
                            <$group>::default()
                                .with_group_id(g)
                                .with_error_code(GROUP_DENIED)
                                .with_authorized_operations(i32::MIN)
                        }));
                    }),
                )
            }
        }
    };
}

describe_groups!(
    DescribeGroupsRequest,
    groups,
    DescribeGroupsResponse,
    describe_groups_response::DescribedGroup,
    |r, version| r.include_authorized_operations && version >= 3
);
describe_groups!(
    ConsumerGroupDescribeRequest,
    group_ids,
    ConsumerGroupDescribeResponse,
    consumer_group_describe_response::DescribedGroup,
    |r, _version| r.include_authorized_operations
);

impl Authorize for DeleteGroupsRequest {
    fn authorize(mut self, az: &Authz, _: i16, _: &Context) -> Gate<Self> {
        use delete_groups_response::DeletableGroupResult;
        let (allowed, denied) = split(std::mem::take(&mut self.groups_names), |g| {
            az.group(Operation::Delete, g)
        });
        self.groups_names = allowed;
        if denied.is_empty() {
            return Gate::Pass(self);
        }
        let extra: Vec<_> = denied
            .into_iter()
            .map(|g| {
                DeletableGroupResult::default()
                    .with_group_id(g)
                    .with_error_code(GROUP_DENIED)
            })
            .collect();
        Gate::Partial(
            self,
            Box::new(move |r: &mut DeleteGroupsResponse| r.results.extend(extra)),
        )
    }
}

impl Authorize for InitProducerIdRequest {
    fn authorize(self, az: &Authz, _: i16, _: &Context) -> Gate<Self> {
        let refusal = |code| {
            InitProducerIdResponse::default()
                .with_error_code(code)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
        };
        match &self.transactional_id {
            Some(id) if !az.txn(Operation::Write, id) => Gate::Refuse(refusal(TXN_DENIED)),
            Some(_) => Gate::Pass(self),
            // An idempotent producer: IDEMPOTENT_WRITE on the cluster, or WRITE on some topic.
            None if az.cluster(Operation::IdempotentWrite)
                || az.authorizer.authorize_any(
                    &az.principal,
                    az.host,
                    Operation::Write,
                    ResourceType::Topic,
                ) =>
            {
                Gate::Pass(self)
            }
            None => Gate::Refuse(refusal(CLUSTER_DENIED)),
        }
    }
}

impl Authorize for AddOffsetsToTxnRequest {
    fn authorize(self, az: &Authz, _: i16, _: &Context) -> Gate<Self> {
        if !az.txn(Operation::Write, &self.transactional_id) {
            Gate::Refuse(AddOffsetsToTxnResponse::default().with_error_code(TXN_DENIED))
        } else if !az.group(Operation::Read, &self.group_id) {
            Gate::Refuse(AddOffsetsToTxnResponse::default().with_error_code(GROUP_DENIED))
        } else {
            Gate::Pass(self)
        }
    }
}

impl Authorize for EndTxnRequest {
    fn authorize(self, az: &Authz, _: i16, _: &Context) -> Gate<Self> {
        if az.txn(Operation::Write, &self.transactional_id) {
            Gate::Pass(self)
        } else {
            Gate::Refuse(EndTxnResponse::default().with_error_code(TXN_DENIED))
        }
    }
}

impl Authorize for TxnOffsetCommitRequest {
    fn authorize(mut self, az: &Authz, version: i16, ctx: &Context) -> Gate<Self> {
        let whole = if !az.txn(Operation::Write, &self.transactional_id) {
            Some(TXN_DENIED)
        } else if !az.group(Operation::Read, &self.group_id) {
            Some(GROUP_DENIED)
        } else {
            None
        };
        if let Some(code) = whole {
            return Gate::Refuse(answered_with(&self, version, code));
        }
        // v6 names topics by id: READ is checked on the name the id has here; an id this
        // broker does not know is the handler's UNKNOWN_TOPIC_ID.
        let (allowed, denied) = split(std::mem::take(&mut self.topics), |t| {
            if version >= 6 {
                ctx.metadata
                    .topic_by_id(&t.topic_id)
                    .is_none_or(|tp| az.topic(Operation::Read, &tp.name))
            } else {
                az.topic(Operation::Read, &t.name)
            }
        });
        self.topics = allowed;
        if denied.is_empty() {
            return Gate::Pass(self);
        }
        let refused = TxnOffsetCommitRequest::default().with_topics(denied);
        let extra = answered_with(&refused, version, TOPIC_DENIED).topics;
        Gate::Partial(
            self,
            Box::new(move |r: &mut TxnOffsetCommitResponse| r.topics.extend(extra)),
        )
    }
}

impl Authorize for AddPartitionsToTxnRequest {
    fn authorize(self, az: &Authz, version: i16, _: &Context) -> Gate<Self> {
        use add_partitions_to_txn_response::{
            AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
        };
        if version >= 4 {
            // v4+ is the brokers' own verification request.
            if az.cluster(Operation::ClusterAction) {
                return Gate::Pass(self);
            }
            return Gate::Refuse(
                AddPartitionsToTxnResponse::default().with_error_code(CLUSTER_DENIED),
            );
        }
        let results = |code_of: &dyn Fn(&str) -> i16| -> Vec<AddPartitionsToTxnTopicResult> {
            self.v3_and_below_topics
                .iter()
                .map(|t| {
                    let code = code_of(&t.name);
                    AddPartitionsToTxnTopicResult::default()
                        .with_name(t.name.clone())
                        .with_results_by_partition(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    AddPartitionsToTxnPartitionResult::default()
                                        .with_partition_index(*p)
                                        .with_partition_error_code(code)
                                })
                                .collect(),
                        )
                })
                .collect()
        };
        if !az.txn(Operation::Write, &self.v3_and_below_transactional_id) {
            let r = results(&|_| TXN_DENIED);
            return Gate::Refuse(
                AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(r),
            );
        }
        let denied: Vec<String> = self
            .v3_and_below_topics
            .iter()
            .filter(|t| !az.topic(Operation::Write, &t.name))
            .map(|t| t.name.to_string())
            .collect();
        if denied.is_empty() {
            return Gate::Pass(self);
        }
        // As Kafka: the refused topics get TOPIC_AUTHORIZATION_FAILED, the rest of the
        // request is not attempted.
        let not_attempted = ResponseError::OperationNotAttempted.code();
        let r = results(&|n| {
            if denied.iter().any(|d| d == n) {
                TOPIC_DENIED
            } else {
                not_attempted
            }
        });
        Gate::Refuse(AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(r))
    }
}

impl Authorize for DescribeProducersRequest {
    fn authorize(mut self, az: &Authz, _: i16, _: &Context) -> Gate<Self> {
        use describe_producers_response::{PartitionResponse, TopicResponse};
        let (allowed, denied) = split(std::mem::take(&mut self.topics), |t| {
            az.topic(Operation::Read, &t.name)
        });
        self.topics = allowed;
        if denied.is_empty() {
            return Gate::Pass(self);
        }
        let extra: Vec<_> = denied
            .into_iter()
            .map(|t| {
                TopicResponse::default().with_name(t.name).with_partitions(
                    t.partition_indexes
                        .iter()
                        .map(|p| {
                            PartitionResponse::default()
                                .with_partition_index(*p)
                                .with_error_code(TOPIC_DENIED)
                        })
                        .collect(),
                )
            })
            .collect();
        Gate::Partial(
            self,
            Box::new(move |r: &mut DescribeProducersResponse| r.topics.extend(extra)),
        )
    }
}

impl Authorize for DescribeTransactionsRequest {
    fn authorize(mut self, az: &Authz, _: i16, _: &Context) -> Gate<Self> {
        use describe_transactions_response::TransactionState;
        let (allowed, denied) = split(std::mem::take(&mut self.transactional_ids), |id| {
            az.txn(Operation::Describe, id)
        });
        self.transactional_ids = allowed;
        let extra: Vec<_> = denied
            .into_iter()
            .map(|id| {
                TransactionState::default()
                    .with_transactional_id(id)
                    .with_error_code(TXN_DENIED)
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1)
            })
            .collect();
        // As Kafka: a transaction's partitions are listed only for topics the principal
        // may describe.
        let az = az.clone();
        Gate::Partial(
            self,
            Box::new(move |r: &mut DescribeTransactionsResponse| {
                for t in &mut r.transaction_states {
                    t.topics
                        .retain(|tp| az.topic(Operation::Describe, &tp.topic));
                }
                r.transaction_states.extend(extra)
            }),
        )
    }
}

impl Authorize for ListTransactionsRequest {
    fn authorize(self, az: &Authz, _: i16, _: &Context) -> Gate<Self> {
        let az = az.clone();
        let fix: Fix<ListTransactionsResponse> =
            Box::new(move |r: &mut ListTransactionsResponse| {
                r.transaction_states
                    .retain(|t| az.txn(Operation::Describe, &t.transactional_id))
            });
        pass_or_fix(self, Some(fix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_kafkas() {
        assert_eq!(TOPIC_DENIED, ResponseError::TopicAuthorizationFailed.code());
        assert_eq!(GROUP_DENIED, ResponseError::GroupAuthorizationFailed.code());
        assert_eq!(
            CLUSTER_DENIED,
            ResponseError::ClusterAuthorizationFailed.code()
        );
        assert_eq!(
            TXN_DENIED,
            ResponseError::TransactionalIdAuthorizationFailed.code()
        );
    }
}
