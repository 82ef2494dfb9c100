//! Fault injection: rules, set over the admin HTTP port, that make the broker answer chosen
//! requests with a Kafka error, delay them, close the connection before answering, or
//! handle them and then drop the response. It exists so users can test their clients'
//! retry logic against a real broker, which no other Kafka broker offers.
//!
//! The request path asks [`Faults::armed`] (one relaxed atomic load) and does nothing more
//! while no rule is set.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kafka_protocol::messages::*;
use kafka_protocol::protocol::Request;
use kafka_protocol::ResponseError;
use serde::{Deserialize, Serialize};

/// What a matching rule does to the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Answer with this error code (in every partition, or the top-level error).
    Error(i16),
    /// Handle the request after this delay.
    Delay(Duration),
    /// Close the connection without handling or answering.
    Close,
    /// Handle the request, then close the connection instead of answering (a lost ack).
    DropResponse,
    /// The request's storage work blocks its thread this long first, as a slow or stuck
    /// disk would (only APIs that call storage): other clients must be served meanwhile.
    Stall(Duration),
}

/// A rule as the HTTP API takes and lists it (JSON).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Kafka's API name: `Produce`, `Fetch`, `JoinGroup`, ...
    pub api: String,
    /// Only requests that name this topic (APIs that carry topics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// `error`, `delay`, `stall`, `close` or `drop_response`.
    pub action: String,
    /// For `error`: Kafka's error name (`NOT_LEADER_OR_FOLLOWER`) or code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<serde_json::Value>,
    /// For `delay`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// The next `count` matching requests, then the rule goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// For this long from now, then the rule goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

/// A rule as listed: its spec, its id, and how often it fired.
#[derive(Debug, Clone, Serialize)]
pub struct RuleView {
    pub id: u64,
    #[serde(flatten)]
    pub spec: RuleSpec,
    pub matched: u64,
    /// Matches left (rules with a count).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining: Option<u64>,
}

struct Rule {
    id: u64,
    api: ApiKey,
    topic: Option<String>,
    action: Action,
    remaining: Option<u64>,
    expires: Option<Instant>,
    matched: u64,
    spec: RuleSpec,
}

/// The broker's fault rules.
///
/// It exists so the request path can consult user-set rules at no cost when there are none.
#[derive(Default)]
pub struct Faults {
    armed: AtomicBool,
    rules: Mutex<Vec<Rule>>,
    next_id: AtomicU64,
}

/// The API key for Kafka's name of it (`Produce`, `FindCoordinator`, ...).
fn api_by_name(name: &str) -> Option<ApiKey> {
    (0..i16::MAX)
        .take(200)
        .filter_map(|k| ApiKey::try_from(k).ok())
        .find(|k| crate::metrics::api_name(*k) == name)
}

/// Kafka's error for a name in either spelling (`NOT_LEADER_OR_FOLLOWER`,
/// `NotLeaderOrFollower`) or a number.
fn error_code(v: &serde_json::Value) -> Option<i16> {
    if let Some(n) = v.as_i64() {
        let code = i16::try_from(n).ok()?;
        return ResponseError::try_from_code(code).map(|_| code);
    }
    let name = v.as_str()?;
    let camel: String = if name.contains('_') || name.chars().all(|c| !c.is_lowercase()) {
        name.split('_')
            .map(|w| {
                let w = w.to_lowercase();
                let mut cs = w.chars();
                cs.next()
                    .map(|c| c.to_uppercase().chain(cs).collect::<String>())
                    .unwrap_or_default()
            })
            .collect()
    } else {
        name.to_string()
    };
    (1..i16::MAX)
        .take(200)
        .find(|c| ResponseError::try_from_code(*c).is_some_and(|e| format!("{e:?}") == camel))
}

/// The APIs whose error answer is built here (see [`Faultable::error_response`]).
const ERROR_APIS: &[ApiKey] = &[
    ApiKey::Produce,
    ApiKey::Fetch,
    ApiKey::ListOffsets,
    ApiKey::FindCoordinator,
    ApiKey::JoinGroup,
    ApiKey::SyncGroup,
    ApiKey::Heartbeat,
    ApiKey::LeaveGroup,
    ApiKey::OffsetCommit,
    ApiKey::OffsetFetch,
    ApiKey::InitProducerId,
    ApiKey::AddPartitionsToTxn,
    ApiKey::AddOffsetsToTxn,
    ApiKey::EndTxn,
    ApiKey::TxnOffsetCommit,
];

/// APIs the broker does not serve but calls itself, whose "error" rules fail that call:
/// WriteTxnMarkers fails the transaction coordinator's marker write to the topic's
/// partitions, as a failed WriteTxnMarkers request does in Kafka.
const INTERNAL_ERROR_APIS: &[ApiKey] = &[ApiKey::WriteTxnMarkers];

impl Faults {
    /// True when at least one rule is set: the only cost on the request path otherwise.
    #[inline]
    pub fn armed(&self) -> bool {
        self.armed.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Rule>> {
        self.rules.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Validates and adds a rule; returns it as listed, or why it was refused.
    pub fn add(&self, spec: RuleSpec) -> Result<RuleView, String> {
        let api = api_by_name(&spec.api).ok_or_else(|| {
            format!(
                "unknown api {:?}: use Kafka's name, e.g. \"Produce\"",
                spec.api
            )
        })?;
        let action = match spec.action.as_str() {
            "error" => {
                let v = spec
                    .error
                    .as_ref()
                    .ok_or("action \"error\" needs \"error\": a Kafka error name or code")?;
                let code = error_code(v).ok_or_else(|| format!("unknown Kafka error {v}"))?;
                if !ERROR_APIS.contains(&api) && !INTERNAL_ERROR_APIS.contains(&api) {
                    let names: Vec<&str> = ERROR_APIS
                        .iter()
                        .chain(INTERNAL_ERROR_APIS)
                        .map(|k| crate::metrics::api_name(*k))
                        .collect();
                    return Err(format!(
                        "action \"error\" is not supported for {}; it is for {}",
                        spec.api,
                        names.join(", ")
                    ));
                }
                Action::Error(code)
            }
            "delay" => Action::Delay(Duration::from_millis(
                spec.delay_ms.ok_or("action \"delay\" needs \"delay_ms\"")?,
            )),
            "stall" => {
                if !crate::apis::touches_storage(api) {
                    return Err(format!(
                        "action \"stall\" is for APIs that write or read storage (e.g. Produce, OffsetCommit, CreateTopics); {} is not one",
                        spec.api
                    ));
                }
                Action::Stall(Duration::from_millis(
                    spec.delay_ms.ok_or("action \"stall\" needs \"delay_ms\"")?,
                ))
            }
            "close" => Action::Close,
            "drop_response" => Action::DropResponse,
            other => {
                return Err(format!(
                    "unknown action {other:?}: error, delay, stall, close or drop_response"
                ))
            }
        };
        if spec.count == Some(0) {
            return Err("\"count\" must be at least 1".into());
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let rule = Rule {
            id,
            api,
            topic: spec.topic.clone(),
            action,
            remaining: spec.count,
            expires: spec
                .duration_ms
                .map(|ms| Instant::now() + Duration::from_millis(ms)),
            matched: 0,
            spec,
        };
        let view = view(&rule);
        let mut rules = self.lock();
        rules.push(rule);
        self.armed.store(true, Ordering::Relaxed);
        tracing::info!(id, rule = ?view.spec, "fault rule added");
        Ok(view)
    }

    pub fn list(&self) -> Vec<RuleView> {
        let mut rules = self.lock();
        self.expire(&mut rules);
        rules.iter().map(view).collect()
    }

    /// Removes one rule (by id) or all; returns how many went.
    pub fn clear(&self, id: Option<u64>) -> usize {
        let mut rules = self.lock();
        let before = rules.len();
        match id {
            Some(id) => rules.retain(|r| r.id != id),
            None => rules.clear(),
        }
        self.armed.store(!rules.is_empty(), Ordering::Relaxed);
        before - rules.len()
    }

    fn expire(&self, rules: &mut Vec<Rule>) {
        let now = Instant::now();
        rules.retain(|r| r.expires.is_none_or(|t| t > now));
        self.armed.store(!rules.is_empty(), Ordering::Relaxed);
    }

    /// The action of the first rule that matches this request, counting the match.
    pub fn check(&self, api: ApiKey, topics: &[String]) -> Option<Action> {
        let mut rules = self.lock();
        self.expire(&mut rules);
        let i = rules.iter().position(|r| {
            r.api == api
                && r.topic
                    .as_deref()
                    .is_none_or(|t| topics.iter().any(|n| n == t))
        })?;
        let rule = &mut rules[i];
        rule.matched += 1;
        let action = rule.action;
        if let Some(n) = &mut rule.remaining {
            *n -= 1;
            if *n == 0 {
                rules.remove(i);
                self.armed.store(!rules.is_empty(), Ordering::Relaxed);
            }
        }
        Some(action)
    }
}

fn view(r: &Rule) -> RuleView {
    RuleView {
        id: r.id,
        spec: r.spec.clone(),
        matched: r.matched,
        remaining: r.remaining,
    }
}

/// What fault injection needs of a request: the topics it names (for topic rules) and,
/// for the APIs in `ERROR_APIS`, the answer that carries an error everywhere it can.
pub trait Faultable: Request {
    /// Topic names the request carries; `by_id` names topics given by id (newer versions
    /// of Produce, Fetch, OffsetCommit and OffsetFetch carry ids only).
    fn topics(&self, _by_id: &dyn Fn(&uuid::Uuid) -> Option<String>) -> Vec<String> {
        Vec::new()
    }

    fn error_response(&self, _version: i16, _code: i16) -> Option<Self::Response> {
        None
    }
}

/// The topic's name, looked up by id when the request version carries only the id.
fn name_or_id(
    name: &str,
    id: &uuid::Uuid,
    by_id: &dyn Fn(&uuid::Uuid) -> Option<String>,
) -> String {
    if name.is_empty() && !id.is_nil() {
        by_id(id).unwrap_or_default()
    } else {
        name.to_string()
    }
}

macro_rules! no_error_answer {
    ($($t:ty),* $(,)?) => { $(impl Faultable for $t {})* };
}

no_error_answer!(
    MetadataRequest,
    ApiVersionsRequest,
    CreateTopicsRequest,
    DeleteTopicsRequest,
    CreatePartitionsRequest,
    DeleteRecordsRequest,
    OffsetForLeaderEpochRequest,
    DescribeLogDirsRequest,
    ElectLeadersRequest,
    AlterPartitionReassignmentsRequest,
    ListPartitionReassignmentsRequest,
    DescribeTopicPartitionsRequest,
    DescribeClusterRequest,
    DescribeQuorumRequest,
    GetTelemetrySubscriptionsRequest,
    PushTelemetryRequest,
    ListConfigResourcesRequest,
    DescribeClientQuotasRequest,
    AlterClientQuotasRequest,
    UpdateFeaturesRequest,
    DescribeConfigsRequest,
    AlterConfigsRequest,
    IncrementalAlterConfigsRequest,
    DescribeProducersRequest,
    DescribeTransactionsRequest,
    ListTransactionsRequest,
    OffsetDeleteRequest,
    ListGroupsRequest,
    DescribeGroupsRequest,
    DeleteGroupsRequest,
    ConsumerGroupHeartbeatRequest,
    ConsumerGroupDescribeRequest,
    ShareGroupHeartbeatRequest,
    ShareGroupDescribeRequest,
    StreamsGroupDescribeRequest,
    DescribeShareGroupOffsetsRequest,
    WriteTxnMarkersRequest,
    InitializeShareGroupStateRequest,
    ReadShareGroupStateRequest,
    WriteShareGroupStateRequest,
    DeleteShareGroupStateRequest,
    ReadShareGroupStateSummaryRequest,
    SaslHandshakeRequest,
    SaslAuthenticateRequest,
    DescribeUserScramCredentialsRequest,
    AlterUserScramCredentialsRequest,
    CreateAclsRequest,
    DescribeAclsRequest,
    DeleteAclsRequest,
);

impl Faultable for ProduceRequest {
    fn topics(&self, by_id: &dyn Fn(&uuid::Uuid) -> Option<String>) -> Vec<String> {
        self.topic_data
            .iter()
            .map(|t| name_or_id(&t.name.0, &t.topic_id, by_id))
            .collect()
    }

    fn error_response(&self, _version: i16, code: i16) -> Option<ProduceResponse> {
        use kafka_protocol::messages::produce_response::*;
        Some(
            ProduceResponse::default().with_responses(
                self.topic_data
                    .iter()
                    .map(|t| {
                        TopicProduceResponse::default()
                            .with_name(t.name.clone())
                            .with_topic_id(t.topic_id)
                            .with_partition_responses(
                                t.partition_data
                                    .iter()
                                    .map(|p| {
                                        PartitionProduceResponse::default()
                                            .with_index(p.index)
                                            .with_error_code(code)
                                            .with_base_offset(-1)
                                            .with_log_append_time_ms(-1)
                                            .with_log_start_offset(-1)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ),
        )
    }
}

impl Faultable for FetchRequest {
    fn topics(&self, by_id: &dyn Fn(&uuid::Uuid) -> Option<String>) -> Vec<String> {
        self.topics
            .iter()
            .map(|t| name_or_id(&t.topic.0, &t.topic_id, by_id))
            .collect()
    }

    fn error_response(&self, _version: i16, code: i16) -> Option<FetchResponse> {
        use kafka_protocol::messages::fetch_response::*;
        Some(
            FetchResponse::default().with_responses(
                self.topics
                    .iter()
                    .map(|t| {
                        FetchableTopicResponse::default()
                            .with_topic(t.topic.clone())
                            .with_topic_id(t.topic_id)
                            .with_partitions(
                                t.partitions
                                    .iter()
                                    .map(|p| {
                                        PartitionData::default()
                                            .with_partition_index(p.partition)
                                            .with_error_code(code)
                                            .with_high_watermark(-1)
                                            .with_last_stable_offset(-1)
                                            .with_log_start_offset(-1)
                                            .with_records(Some(Default::default()))
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ),
        )
    }
}

impl Faultable for ListOffsetsRequest {
    fn topics(&self, _: &dyn Fn(&uuid::Uuid) -> Option<String>) -> Vec<String> {
        self.topics.iter().map(|t| t.name.0.to_string()).collect()
    }

    fn error_response(&self, _version: i16, code: i16) -> Option<ListOffsetsResponse> {
        use kafka_protocol::messages::list_offsets_response::*;
        Some(
            ListOffsetsResponse::default().with_topics(
                self.topics
                    .iter()
                    .map(|t| {
                        ListOffsetsTopicResponse::default()
                            .with_name(t.name.clone())
                            .with_partitions(
                                t.partitions
                                    .iter()
                                    .map(|p| {
                                        ListOffsetsPartitionResponse::default()
                                            .with_partition_index(p.partition_index)
                                            .with_error_code(code)
                                            .with_timestamp(-1)
                                            .with_offset(-1)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ),
        )
    }
}

impl Faultable for FindCoordinatorRequest {
    fn error_response(&self, version: i16, code: i16) -> Option<FindCoordinatorResponse> {
        use kafka_protocol::messages::find_coordinator_response::Coordinator;
        let mut r = FindCoordinatorResponse::default();
        if version >= 4 {
            r.coordinators = self
                .coordinator_keys
                .iter()
                .map(|k| {
                    Coordinator::default()
                        .with_key(k.clone())
                        .with_node_id(BrokerId(-1))
                        .with_port(-1)
                        .with_error_code(code)
                })
                .collect();
        } else {
            r.error_code = code;
            r.node_id = BrokerId(-1);
            r.port = -1;
        }
        Some(r)
    }
}

/// Requests answered by one top-level error code.
macro_rules! top_level_error {
    ($($req:ty => $resp:ty),* $(,)?) => {$(
        impl Faultable for $req {
            fn error_response(&self, _version: i16, code: i16) -> Option<$resp> {
                Some(<$resp>::default().with_error_code(code))
            }
        }
    )*};
}

top_level_error!(
    SyncGroupRequest => SyncGroupResponse,
    HeartbeatRequest => HeartbeatResponse,
    LeaveGroupRequest => LeaveGroupResponse,
    AddOffsetsToTxnRequest => AddOffsetsToTxnResponse,
    ShareFetchRequest => ShareFetchResponse,
    ShareAcknowledgeRequest => ShareAcknowledgeResponse,
    AlterShareGroupOffsetsRequest => AlterShareGroupOffsetsResponse,
    DeleteShareGroupOffsetsRequest => DeleteShareGroupOffsetsResponse,
    CreateDelegationTokenRequest => CreateDelegationTokenResponse,
    RenewDelegationTokenRequest => RenewDelegationTokenResponse,
    ExpireDelegationTokenRequest => ExpireDelegationTokenResponse,
    DescribeDelegationTokenRequest => DescribeDelegationTokenResponse,
    StreamsGroupHeartbeatRequest => StreamsGroupHeartbeatResponse,
    StreamsGroupTopologyDescriptionUpdateRequest => StreamsGroupTopologyDescriptionUpdateResponse,
);

impl Faultable for JoinGroupRequest {
    fn error_response(&self, _version: i16, code: i16) -> Option<JoinGroupResponse> {
        Some(
            JoinGroupResponse::default()
                .with_error_code(code)
                .with_generation_id(-1)
                .with_member_id(self.member_id.clone()),
        )
    }
}

impl Faultable for InitProducerIdRequest {
    fn error_response(&self, _version: i16, code: i16) -> Option<InitProducerIdResponse> {
        Some(
            InitProducerIdResponse::default()
                .with_error_code(code)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        )
    }
}

impl Faultable for EndTxnRequest {
    fn error_response(&self, _version: i16, code: i16) -> Option<EndTxnResponse> {
        Some(
            EndTxnResponse::default()
                .with_error_code(code)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        )
    }
}

impl Faultable for OffsetCommitRequest {
    fn topics(&self, by_id: &dyn Fn(&uuid::Uuid) -> Option<String>) -> Vec<String> {
        self.topics
            .iter()
            .map(|t| name_or_id(&t.name.0, &t.topic_id, by_id))
            .collect()
    }

    fn error_response(&self, _version: i16, code: i16) -> Option<OffsetCommitResponse> {
        use kafka_protocol::messages::offset_commit_response::*;
        Some(
            OffsetCommitResponse::default().with_topics(
                self.topics
                    .iter()
                    .map(|t| {
                        OffsetCommitResponseTopic::default()
                            .with_name(t.name.clone())
                            .with_topic_id(t.topic_id)
                            .with_partitions(
                                t.partitions
                                    .iter()
                                    .map(|p| {
                                        OffsetCommitResponsePartition::default()
                                            .with_partition_index(p.partition_index)
                                            .with_error_code(code)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ),
        )
    }
}

impl Faultable for TxnOffsetCommitRequest {
    fn topics(&self, by_id: &dyn Fn(&uuid::Uuid) -> Option<String>) -> Vec<String> {
        self.topics
            .iter()
            .map(|t| name_or_id(&t.name.0, &t.topic_id, by_id))
            .collect()
    }

    fn error_response(&self, version: i16, code: i16) -> Option<TxnOffsetCommitResponse> {
        use kafka_protocol::messages::txn_offset_commit_response::*;
        Some(
            TxnOffsetCommitResponse::default().with_topics(
                self.topics
                    .iter()
                    .map(|t| {
                        // v6 answers by topic id (KIP-1319), older versions by name.
                        let topic = TxnOffsetCommitResponseTopic::default();
                        let topic = if version >= 6 {
                            topic.with_topic_id(t.topic_id)
                        } else {
                            topic.with_name(t.name.clone())
                        };
                        topic.with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    TxnOffsetCommitResponsePartition::default()
                                        .with_partition_index(p.partition_index)
                                        .with_error_code(code)
                                })
                                .collect(),
                        )
                    })
                    .collect(),
            ),
        )
    }
}

impl Faultable for AddPartitionsToTxnRequest {
    fn topics(&self, _: &dyn Fn(&uuid::Uuid) -> Option<String>) -> Vec<String> {
        self.v3_and_below_topics
            .iter()
            .chain(self.transactions.iter().flat_map(|t| t.topics.iter()))
            .map(|t| t.name.0.to_string())
            .collect()
    }

    fn error_response(&self, version: i16, code: i16) -> Option<AddPartitionsToTxnResponse> {
        if version >= 4 {
            return Some(AddPartitionsToTxnResponse::default().with_error_code(code));
        }
        use kafka_protocol::messages::add_partitions_to_txn_response::*;
        Some(
            AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(
                self.v3_and_below_topics
                    .iter()
                    .map(|t| {
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
                    .collect(),
            ),
        )
    }
}

impl Faultable for OffsetFetchRequest {
    fn topics(&self, by_id: &dyn Fn(&uuid::Uuid) -> Option<String>) -> Vec<String> {
        let mut out: Vec<String> = self
            .topics
            .iter()
            .flatten()
            .map(|t| t.name.0.to_string())
            .collect();
        for g in &self.groups {
            out.extend(
                g.topics
                    .iter()
                    .flatten()
                    .map(|t| name_or_id(&t.name.0, &t.topic_id, by_id)),
            );
        }
        out
    }

    fn error_response(&self, version: i16, code: i16) -> Option<OffsetFetchResponse> {
        use kafka_protocol::messages::offset_fetch_response::*;
        let mut r = OffsetFetchResponse::default();
        if version >= 8 {
            r.groups = self
                .groups
                .iter()
                .map(|g| {
                    OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id.clone())
                        .with_error_code(code)
                })
                .collect();
        } else {
            r.error_code = code;
        }
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes `req`'s error answer at every version the broker advertises for it: an
    /// answer with a field the version lacks would close the client's connection instead.
    fn encodes_at_every_version<R: Faultable>(req: R) {
        use kafka_protocol::protocol::Encodable;
        let key = ApiKey::try_from(R::KEY).unwrap();
        let s = crate::apis::supported(key).unwrap();
        for v in s.min_version..=s.max_version {
            let resp = req.error_response(v, 6).unwrap();
            let mut buf = bytes::BytesMut::new();
            resp.encode(&mut buf, v)
                .unwrap_or_else(|e| panic!("{key:?} v{v}: {e}"));
        }
    }

    #[test]
    fn error_answers_encode_at_every_advertised_version() {
        use kafka_protocol::protocol::StrBytes;
        let t = || TopicName(StrBytes::from_static_str("t"));
        let s = || StrBytes::from_static_str("g");
        encodes_at_every_version(ProduceRequest::default().with_topic_data(vec![
            produce_request::TopicProduceData::default()
                .with_name(t())
                .with_partition_data(vec![produce_request::PartitionProduceData::default()]),
        ]));
        encodes_at_every_version(FetchRequest::default().with_topics(vec![
            fetch_request::FetchTopic::default()
                .with_topic(t())
                .with_partitions(vec![fetch_request::FetchPartition::default()]),
        ]));
        encodes_at_every_version(ListOffsetsRequest::default().with_topics(vec![
            list_offsets_request::ListOffsetsTopic::default()
                .with_name(t())
                .with_partitions(vec![list_offsets_request::ListOffsetsPartition::default()]),
        ]));
        encodes_at_every_version(
            FindCoordinatorRequest::default().with_coordinator_keys(vec![s()]),
        );
        encodes_at_every_version(JoinGroupRequest::default());
        encodes_at_every_version(SyncGroupRequest::default());
        encodes_at_every_version(HeartbeatRequest::default());
        encodes_at_every_version(LeaveGroupRequest::default());
        encodes_at_every_version(OffsetCommitRequest::default().with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(t())
                .with_partitions(vec![Default::default()]),
        ]));
        encodes_at_every_version(OffsetFetchRequest::default().with_groups(vec![
            offset_fetch_request::OffsetFetchRequestGroup::default().with_group_id(GroupId(s())),
        ]));
        encodes_at_every_version(InitProducerIdRequest::default());
        encodes_at_every_version(
            AddPartitionsToTxnRequest::default().with_v3_and_below_topics(vec![
                add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                    .with_name(t())
                    .with_partitions(vec![0]),
            ]),
        );
        encodes_at_every_version(AddOffsetsToTxnRequest::default());
        encodes_at_every_version(EndTxnRequest::default());
        encodes_at_every_version(TxnOffsetCommitRequest::default().with_topics(vec![
            txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                .with_name(t())
                .with_partitions(vec![Default::default()]),
        ]));
        // Every API that takes an "error" rule is covered above.
        assert_eq!(ERROR_APIS.len(), 15);
    }

    fn spec(json: &str) -> RuleSpec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn rules_match_count_down_and_disarm() {
        let f = Faults::default();
        assert!(!f.armed());
        let r = f
            .add(spec(
                r#"{"api":"Produce","topic":"t","action":"error","error":"NOT_LEADER_OR_FOLLOWER","count":2}"#,
            ))
            .unwrap();
        assert_eq!(r.remaining, Some(2));
        assert!(f.armed());
        assert_eq!(f.check(ApiKey::Produce, &["other".into()]), None);
        assert_eq!(f.check(ApiKey::Fetch, &["t".into()]), None);
        let code = ResponseError::NotLeaderOrFollower.code();
        assert_eq!(
            f.check(ApiKey::Produce, &["t".into()]),
            Some(Action::Error(code))
        );
        assert_eq!(f.list()[0].matched, 1);
        assert_eq!(
            f.check(ApiKey::Produce, &["x".into(), "t".into()]),
            Some(Action::Error(code))
        );
        assert!(!f.armed(), "the rule is used up");
        assert_eq!(f.check(ApiKey::Produce, &["t".into()]), None);
    }

    #[test]
    fn specs_are_validated() {
        let f = Faults::default();
        for bad in [
            r#"{"api":"Nope","action":"close"}"#,
            r#"{"api":"Fetch","action":"explode"}"#,
            r#"{"api":"Fetch","action":"error","error":"NO_SUCH_ERROR"}"#,
            r#"{"api":"Fetch","action":"error"}"#,
            r#"{"api":"Metadata","action":"error","error":3}"#,
            r#"{"api":"Fetch","action":"delay"}"#,
            r#"{"api":"Fetch","action":"close","count":0}"#,
        ] {
            assert!(f.add(spec(bad)).is_err(), "{bad}");
        }
        assert!(!f.armed());
        f.add(spec(r#"{"api":"FindCoordinator","action":"error","error":"CoordinatorLoadInProgress","duration_ms":0}"#))
            .unwrap();
        assert_eq!(
            f.check(ApiKey::FindCoordinator, &[]),
            None,
            "expired at once"
        );
        f.add(spec(r#"{"api":"JoinGroup","action":"error","error":15}"#))
            .unwrap();
        f.add(spec(r#"{"api":"Fetch","action":"delay","delay_ms":300}"#))
            .unwrap();
        assert_eq!(
            f.check(ApiKey::Fetch, &[]),
            Some(Action::Delay(Duration::from_millis(300)))
        );
        assert_eq!(f.clear(None), 2);
        assert!(!f.armed());
    }
}
