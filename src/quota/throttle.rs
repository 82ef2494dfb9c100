//! What the request quota (`request_percentage`) needs around every handler: the time the
//! handler itself spends working, and a way to put a throttle time into any response.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use kafka_protocol::messages::*;

/// A handler's future, timed: it answers its output with the nanoseconds spent inside its
/// polls. That is the request's share of a thread, as Kafka's request quota counts the time
/// a request spends on a request handler thread: waiting (a long-poll Fetch, a parked
/// JoinGroup, a replication wait) costs nothing, and storage work that runs on the offload
/// pool counts, because the future runs there.
pub struct Timed<F> {
    inner: Pin<Box<F>>,
    busy_nanos: u64,
}

impl<F: Future> Timed<F> {
    pub fn new(inner: F) -> Timed<F> {
        Timed {
            inner: Box::pin(inner),
            busy_nanos: 0,
        }
    }
}

impl<F: Future> Future for Timed<F> {
    type Output = (F::Output, u64);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let start = Instant::now();
        let polled = self.inner.as_mut().poll(cx);
        self.busy_nanos += start.elapsed().as_nanos() as u64;
        match polled {
            Poll::Ready(out) => Poll::Ready((out, self.busy_nanos)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The request quota's measure of `nanos` of handler time: percent of one thread for one
/// second (Kafka's `nanosToPercentage`).
pub fn nanos_to_percentage(nanos: u64) -> f64 {
    nanos as f64 * 100.0 / 1e9
}

/// A response that can tell its client to wait. Every response type a handler returns
/// implements it; those without a `throttle_time_ms` field do nothing.
pub trait ThrottleTime {
    /// Raises the response's throttle time to `ms` if it is below.
    fn raise_throttle_time(&mut self, _ms: i32) {}
}

macro_rules! with_throttle_time {
    ($($t:ty),* $(,)?) => {$(
        impl ThrottleTime for $t {
            fn raise_throttle_time(&mut self, ms: i32) {
                self.throttle_time_ms = self.throttle_time_ms.max(ms);
            }
        }
    )*};
}

with_throttle_time!(
    ProduceResponse,
    FetchResponse,
    ListOffsetsResponse,
    MetadataResponse,
    ApiVersionsResponse,
    CreateTopicsResponse,
    DeleteTopicsResponse,
    CreatePartitionsResponse,
    DeleteRecordsResponse,
    OffsetForLeaderEpochResponse,
    DescribeLogDirsResponse,
    ElectLeadersResponse,
    AlterPartitionReassignmentsResponse,
    ListPartitionReassignmentsResponse,
    DescribeTopicPartitionsResponse,
    DescribeClusterResponse,
    UpdateFeaturesResponse,
    DescribeConfigsResponse,
    AlterConfigsResponse,
    IncrementalAlterConfigsResponse,
    ListConfigResourcesResponse,
    InitProducerIdResponse,
    AddPartitionsToTxnResponse,
    AddOffsetsToTxnResponse,
    EndTxnResponse,
    TxnOffsetCommitResponse,
    DescribeProducersResponse,
    DescribeTransactionsResponse,
    ListTransactionsResponse,
    FindCoordinatorResponse,
    JoinGroupResponse,
    SyncGroupResponse,
    HeartbeatResponse,
    LeaveGroupResponse,
    OffsetCommitResponse,
    OffsetFetchResponse,
    OffsetDeleteResponse,
    ListGroupsResponse,
    DescribeGroupsResponse,
    DeleteGroupsResponse,
    ConsumerGroupHeartbeatResponse,
    ConsumerGroupDescribeResponse,
    ShareGroupHeartbeatResponse,
    StreamsGroupHeartbeatResponse,
    StreamsGroupDescribeResponse,
    StreamsGroupTopologyDescriptionUpdateResponse,
    ShareGroupDescribeResponse,
    ShareFetchResponse,
    ShareAcknowledgeResponse,
    DescribeShareGroupOffsetsResponse,
    AlterShareGroupOffsetsResponse,
    DeleteShareGroupOffsetsResponse,
    DescribeUserScramCredentialsResponse,
    AlterUserScramCredentialsResponse,
    CreateDelegationTokenResponse,
    RenewDelegationTokenResponse,
    ExpireDelegationTokenResponse,
    DescribeDelegationTokenResponse,
    DescribeClientQuotasResponse,
    AlterClientQuotasResponse,
    CreateAclsResponse,
    DescribeAclsResponse,
    DeleteAclsResponse,
    GetTelemetrySubscriptionsResponse,
    PushTelemetryResponse,
);

impl ThrottleTime for DescribeQuorumResponse {}
impl ThrottleTime for WriteTxnMarkersResponse {}
impl ThrottleTime for InitializeShareGroupStateResponse {}
impl ThrottleTime for ReadShareGroupStateResponse {}
impl ThrottleTime for WriteShareGroupStateResponse {}
impl ThrottleTime for DeleteShareGroupStateResponse {}
impl ThrottleTime for ReadShareGroupStateSummaryResponse {}
impl ThrottleTime for SaslHandshakeResponse {}
impl ThrottleTime for SaslAuthenticateResponse {}
