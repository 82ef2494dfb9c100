//! The APIs this broker serves: the supported-version table that ApiVersions advertises
//! and the framing checks every request against, and which of them work on storage. Plain
//! data over the protocol crate, at the bottom of the broker, so the framing, the handlers,
//! fault injection and the fuzz targets all read the one table.

use kafka_protocol::messages::ApiKey;

/// One row of the supported-version table.
#[derive(Debug, Clone, Copy)]
pub struct ApiSupport {
    pub key: ApiKey,
    pub min_version: i16,
    pub max_version: i16,
}

const fn api(key: ApiKey, min_version: i16, max_version: i16) -> ApiSupport {
    ApiSupport {
        key,
        min_version,
        max_version,
    }
}

/// Every API this broker handles, from the oldest version current clients send (and the
/// kafka-protocol crate still decodes) to the newest the crate supports.
pub const SUPPORTED_APIS: &[ApiSupport] = &[
    api(ApiKey::Produce, 3, 13),
    api(ApiKey::Fetch, 4, 18),
    api(ApiKey::ListOffsets, 1, 11),
    api(ApiKey::Metadata, 0, 13),
    api(ApiKey::ApiVersions, 0, 5),
    api(ApiKey::CreateTopics, 2, 7),
    api(ApiKey::DeleteTopics, 1, 6),
    api(ApiKey::CreatePartitions, 0, 3),
    api(ApiKey::DeleteRecords, 0, 2),
    api(ApiKey::OffsetForLeaderEpoch, 2, 4),
    api(ApiKey::DescribeLogDirs, 1, 5),
    api(ApiKey::ElectLeaders, 0, 2),
    api(ApiKey::AlterPartitionReassignments, 0, 1),
    api(ApiKey::ListPartitionReassignments, 0, 0),
    api(ApiKey::DescribeTopicPartitions, 0, 0),
    api(ApiKey::DescribeCluster, 0, 2),
    // `kafka-metadata-quorum`: the controller quorum as Klamm has one (see api::cluster).
    api(ApiKey::DescribeQuorum, 0, 2),
    // `kafka-features`: the feature levels are fixed by the binary; changes are refused.
    api(ApiKey::UpdateFeatures, 0, 2),
    api(ApiKey::DescribeConfigs, 1, 4),
    api(ApiKey::AlterConfigs, 0, 2),
    api(ApiKey::IncrementalAlterConfigs, 0, 1),
    api(ApiKey::ListConfigResources, 0, 1),
    // v6 (two-phase commit, KIP-939) is unstable in Kafka 4.4, which advertises 0-5.
    api(ApiKey::InitProducerId, 0, 5),
    // Transactions at every transaction.version: 0/1 clients (Kafka 2.x-3.x, librdkafka)
    // add partitions and groups explicitly; version 2 clients (KIP-890 part 2, negotiated
    // through the finalized feature below) add them implicitly with Produce v12+ and
    // TxnOffsetCommit v5+, and EndTxn v5 bumps their epoch on every end. AddPartitionsToTxn
    // v5 and AddOffsetsToTxn v4 only allow TRANSACTION_ABORTABLE in answers.
    api(ApiKey::AddPartitionsToTxn, 0, 5),
    api(ApiKey::AddOffsetsToTxn, 0, 4),
    api(ApiKey::EndTxn, 0, 5),
    api(ApiKey::TxnOffsetCommit, 0, 6),
    // Inter-broker (cluster mode): another broker's transaction coordinator ends a
    // transaction on this broker's partitions; v2 (KIP-1228) says whether the marker's
    // epoch was bumped (transaction.version 2), which the partition checks strictly.
    api(ApiKey::WriteTxnMarkers, 1, 2),
    api(ApiKey::DescribeProducers, 0, 0),
    api(ApiKey::DescribeTransactions, 0, 0),
    api(ApiKey::ListTransactions, 0, 2),
    api(ApiKey::FindCoordinator, 0, 6),
    api(ApiKey::JoinGroup, 0, 9),
    api(ApiKey::SyncGroup, 0, 5),
    api(ApiKey::Heartbeat, 0, 4),
    api(ApiKey::LeaveGroup, 0, 5),
    api(ApiKey::OffsetCommit, 2, 10),
    api(ApiKey::OffsetFetch, 1, 10),
    api(ApiKey::OffsetDelete, 0, 0),
    api(ApiKey::ListGroups, 0, 5),
    api(ApiKey::DescribeGroups, 0, 6),
    api(ApiKey::DeleteGroups, 0, 3),
    api(ApiKey::ConsumerGroupHeartbeat, 0, 1),
    api(ApiKey::ConsumerGroupDescribe, 0, 1),
    // KIP-932 share groups. v0 was Kafka's early access; 4.4 serves v1 (v2 of ShareFetch
    // and ShareAcknowledge: acquire modes and lock renewal, KIP-1206/KIP-1222).
    // KIP-1071: streams groups. TopologyDescriptionUpdate answers as Kafka with no topology
    // description plugin.
    api(ApiKey::StreamsGroupHeartbeat, 0, 1),
    api(ApiKey::StreamsGroupDescribe, 0, 1),
    api(ApiKey::StreamsGroupTopologyDescriptionUpdate, 0, 0),
    api(ApiKey::ShareGroupHeartbeat, 1, 1),
    api(ApiKey::ShareGroupDescribe, 1, 1),
    api(ApiKey::ShareFetch, 1, 2),
    api(ApiKey::ShareAcknowledge, 1, 2),
    // `kafka-share-groups --describe`, `--reset-offsets`, `--delete-offsets`; v1 of
    // DescribeShareGroupOffsets adds the lag (KIP-1226).
    api(ApiKey::DescribeShareGroupOffsets, 0, 1),
    api(ApiKey::AlterShareGroupOffsets, 0, 0),
    api(ApiKey::DeleteShareGroupOffsets, 0, 0),
    // The share coordinator's (cluster mode: a share partition's leader keeps its state on
    // the replicated `__share_group_state` through them; see share::coordinator).
    api(ApiKey::InitializeShareGroupState, 0, 0),
    api(ApiKey::ReadShareGroupState, 0, 0),
    api(ApiKey::WriteShareGroupState, 0, 1),
    api(ApiKey::DeleteShareGroupState, 0, 0),
    api(ApiKey::ReadShareGroupStateSummary, 0, 1),
    // SASL (SASL_PLAINTEXT and SASL_SSL listeners); elsewhere ILLEGAL_SASL_STATE.
    api(ApiKey::SaslHandshake, 0, 1),
    api(ApiKey::SaslAuthenticate, 0, 2),
    // KIP-554: SCRAM users for admin clients and kafka-configs.
    api(ApiKey::DescribeUserScramCredentials, 0, 0),
    api(ApiKey::AlterUserScramCredentials, 0, 0),
    // KIP-48: delegation tokens, advertised whether or not they are enabled, as Kafka does.
    api(ApiKey::CreateDelegationToken, 1, 3),
    api(ApiKey::RenewDelegationToken, 1, 2),
    api(ApiKey::ExpireDelegationToken, 1, 2),
    api(ApiKey::DescribeDelegationToken, 1, 3),
    // Client quotas (KIP-546): `kafka-configs --entity-type users|clients|ips`.
    api(ApiKey::DescribeClientQuotas, 0, 1),
    api(ApiKey::AlterClientQuotas, 0, 1),
    // ACLs (`--authorizer`; SECURITY_DISABLED without it, as Kafka).
    api(ApiKey::CreateAcls, 0, 3),
    api(ApiKey::DescribeAcls, 0, 3),
    api(ApiKey::DeleteAcls, 0, 3),
    // KIP-714 client telemetry, as a broker with no metrics subscription (api::telemetry).
    api(ApiKey::GetTelemetrySubscriptions, 0, 0),
    api(ApiKey::PushTelemetry, 0, 0),
];

/// The supported range of `key`, if it is handled at all.
pub fn supported(key: ApiKey) -> Option<ApiSupport> {
    SUPPORTED_APIS.iter().copied().find(|a| a.key == key)
}

/// APIs whose handlers call RocksDB without waiting on anything else: they run off the async
/// workers (see `offload`). Fetch and the group APIs wait (long polls, rebalances) and are not
/// here; Fetch offloads its reads itself.
pub fn touches_storage(key: ApiKey) -> bool {
    use ApiKey::*;
    matches!(
        key,
        Produce
            | ListOffsets
            | Metadata
            | CreateTopics
            | DeleteTopics
            | CreatePartitions
            | AlterConfigs
            | IncrementalAlterConfigs
            | InitProducerId
            | AddPartitionsToTxn
            | AddOffsetsToTxn
            | EndTxn
            | TxnOffsetCommit
            | OffsetCommit
            | OffsetFetch
            | OffsetDelete
            | DeleteGroups
            | CreateAcls
            | DeleteAcls
            | AlterClientQuotas
    )
}

/// The ApiVersions table as the response carries it.
pub fn api_versions_table() -> Vec<kafka_protocol::messages::api_versions_response::ApiVersion> {
    SUPPORTED_APIS
        .iter()
        .map(|a| {
            kafka_protocol::messages::api_versions_response::ApiVersion::default()
                .with_api_key(a.key as i16)
                .with_min_version(a.min_version)
                .with_max_version(a.max_version)
        })
        .collect()
}

/// One KIP-584 feature: the levels this binary supports and the one it runs at.
#[derive(Debug, Clone, Copy)]
pub struct Feature {
    pub name: &'static str,
    pub min: i16,
    pub max: i16,
    pub finalized: i16,
}

/// The level `name` is finalized at, 0 for a feature Klamm does not have.
pub fn finalized_level(name: &str) -> i16 {
    FEATURES
        .iter()
        .find(|f| f.name == name)
        .map_or(0, |f| f.finalized)
}

/// The features ApiVersions advertises (supported and finalized) and UpdateFeatures
/// answers for. Fixed by the binary: a Klamm version runs at one level of each.
/// group.version 1 turns on the KIP-848 consumer protocol in clients that check it (Java
/// 4.x). transaction.version 2 turns on KIP-890 part 2 in clients that check it (Java 4.x,
/// franz-go): implicit adds and an epoch bump per transaction. Clients that do not look
/// (librdkafka, Java 3.x) keep the version 0/1 protocol, which stays served.
pub const FEATURES: &[Feature] = &[
    Feature {
        name: "group.version",
        min: 0,
        max: 1,
        finalized: 1,
    },
    Feature {
        name: "transaction.version",
        min: 0,
        max: 2,
        finalized: 2,
    },
    // KIP-932: share consumers look for it before they use share groups. Level 2 is
    // KIP-1191's dead-letter queue (no wire change: the ARCHIVING state and the writer).
    Feature {
        name: "share.version",
        min: 0,
        max: 2,
        finalized: 2,
    },
    // KIP-1071: streams groups (Kafka Streams' group.protocol=streams).
    Feature {
        name: "streams.version",
        min: 0,
        max: 1,
        finalized: 1,
    },
];
