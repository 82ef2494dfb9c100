//! Cluster mode: how a share partition's leader reads and writes its state at the share
//! coordinator (Kafka's `DefaultStatePersister`): directly when this broker leads the
//! key's partition of `__share_group_state`, else with ReadShareGroupState and
//! WriteShareGroupState to the broker that does. A coordinator that is moving
//! (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, or no
//! connection) is asked again for a bounded time, as Kafka's persister retries.

use std::collections::HashMap;
use std::sync::{Mutex, Weak};
use std::time::Duration;

use kafka_protocol::messages::{
    delete_share_group_state_request, initialize_share_group_state_request,
    read_share_group_state_request, read_share_group_state_summary_request,
    write_share_group_state_request, DeleteShareGroupStateRequest,
    InitializeShareGroupStateRequest, ReadShareGroupStateRequest,
    ReadShareGroupStateSummaryRequest, WriteShareGroupStateRequest,
};
use kafka_protocol::protocol::{Request, StrBytes};
use kafka_protocol::ResponseError;

use super::coordinator::KEY_TYPE;
use super::partition::{PersistedBatch, ShareSnapshot};
use super::records::{coordinator_key, StateKey};
use crate::client::Client;
use crate::context::Context;

/// How long one read or write keeps looking for a coordinator that is moving.
const RETRY_FOR: Duration = Duration::from_secs(8);
const BACKOFF: Duration = Duration::from_millis(100);
/// Bound on one request to another broker.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The share partitions' link to their share coordinators in a cluster.
///
/// It exists so the share partition manager needs no knowledge of where a coordinator is:
/// it reads and writes a state, and this finds the coordinator and rides out its moves.
pub struct RemotePersister {
    ctx: Weak<Context>,
    /// Connections to other brokers' share coordinators, kept for the next request: every
    /// acknowledgement is a write, and a fresh connection (with its TLS and SASL
    /// handshakes) for each would cost more than the write.
    idle: Mutex<HashMap<String, Vec<Client>>>,
}

/// Idle connections kept per broker.
const IDLE_PER_BROKER: usize = 4;

enum Route {
    Here,
    Broker(String),
}

fn retriable(e: ResponseError) -> bool {
    matches!(
        e,
        ResponseError::NotCoordinator
            | ResponseError::CoordinatorLoadInProgress
            | ResponseError::CoordinatorNotAvailable
    )
}

/// Ok for error code 0, else the error.
fn check(code: i16) -> Result<(), ResponseError> {
    match code {
        0 => Ok(()),
        code => {
            Err(ResponseError::try_from_code(code).unwrap_or(ResponseError::UnknownServerError))
        }
    }
}

/// The one partition's result of a one-partition answer.
fn first<T>(partitions: Option<&[T]>) -> Result<&T, ResponseError> {
    partitions
        .and_then(|p| p.first())
        .ok_or(ResponseError::UnknownServerError)
}

impl RemotePersister {
    pub fn new(ctx: Weak<Context>) -> RemotePersister {
        RemotePersister {
            ctx,
            idle: Mutex::new(HashMap::new()),
        }
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Client>>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Where `key`'s coordinator is; makes `__share_group_state` on first use.
    async fn route(ctx: &Context, key: &StateKey) -> Result<Route, ResponseError> {
        let ckey = coordinator_key(&key.0, key.1, key.2);
        let (leader, _, _) = ctx
            .coordinator(KEY_TYPE, &ckey, &ctx.inter_broker_listener)
            .await?;
        if leader == ctx.config.node_id {
            return Ok(Route::Here);
        }
        ctx.broker_address(leader)
            .map(Route::Broker)
            .ok_or(ResponseError::CoordinatorNotAvailable)
    }

    /// Sends `req` to the coordinator at `addr`; an unreachable one is
    /// COORDINATOR_NOT_AVAILABLE (retried).
    async fn call<R: Request>(
        &self,
        ctx: &Context,
        addr: &str,
        req: &R,
        version: i16,
    ) -> Result<R::Response, ResponseError> {
        self.send_pooled(ctx, addr, req, version, REQUEST_TIMEOUT)
            .await
            .map_err(|e| {
                tracing::debug!(broker = addr, error = %e, "share coordinator unreachable");
                ResponseError::CoordinatorNotAvailable
            })
    }

    /// Sends `req` to the broker at `addr` over one of the inter-broker connections kept
    /// for it (the share-state calls and the dead-letter-queue writer share them), waiting
    /// `timeout` for the answer. A kept connection that fails (the broker restarted) is
    /// dropped and the request sent once more on a new one.
    pub(crate) async fn send_pooled<R: Request>(
        &self,
        ctx: &Context,
        addr: &str,
        req: &R,
        version: i16,
        timeout: Duration,
    ) -> anyhow::Result<R::Response> {
        let kept = self.idle().get_mut(addr).and_then(Vec::pop);
        let fresh = || async {
            let mut client = Self::connect(ctx, addr).await?;
            client.set_timeout(timeout);
            let resp = client.send(req, version).await?;
            anyhow::Ok((client, resp))
        };
        let (client, resp) = match kept {
            Some(mut client) => {
                client.set_timeout(timeout);
                match client.send(req, version).await {
                    Ok(resp) => (client, resp),
                    Err(_) => fresh().await?,
                }
            }
            None => fresh().await?,
        };
        let mut idle = self.idle();
        let kept = idle.entry(addr.to_string()).or_default();
        if kept.len() < IDLE_PER_BROKER {
            kept.push(client);
        }
        Ok(resp)
    }

    async fn connect(ctx: &Context, addr: &str) -> anyhow::Result<Client> {
        let mut client =
            Client::connect_with(addr, Duration::from_secs(5), &ctx.inter_broker).await?;
        client.set_timeout(REQUEST_TIMEOUT);
        Ok(client)
    }

    /// The share partition's state (None: it has none), read by its leader in
    /// `leader_epoch`.
    pub async fn read(
        &self,
        key: &StateKey,
        leader_epoch: i32,
    ) -> Result<Option<ShareSnapshot>, ResponseError> {
        self.retrying(|ctx| async move {
            match Self::route(&ctx, key).await? {
                Route::Here => ctx.share_coordinator.read(&ctx, key, leader_epoch),
                Route::Broker(addr) => {
                    let req = ReadShareGroupStateRequest::default()
                        .with_group_id(StrBytes::from_string(key.0.clone()))
                        .with_topics(vec![
                            read_share_group_state_request::ReadStateData::default()
                                .with_topic_id(key.1)
                                .with_partitions(vec![
                                    read_share_group_state_request::PartitionData::default()
                                        .with_partition(key.2)
                                        .with_leader_epoch(leader_epoch),
                                ]),
                        ]);
                    let resp = self.call(&ctx, &addr, &req, 0).await?;
                    let p = first(resp.results.first().map(|t| &t.partitions[..]))?;
                    check(p.error_code)?;
                    if p.start_offset < 0 {
                        return Ok(None);
                    }
                    Ok(Some(ShareSnapshot {
                        state_epoch: p.state_epoch,
                        start_offset: p.start_offset,
                        delivery_complete_count: -1,
                        batches: p
                            .state_batches
                            .iter()
                            .map(|b| PersistedBatch {
                                first_offset: b.first_offset,
                                last_offset: b.last_offset,
                                delivery_state: b.delivery_state,
                                delivery_count: b.delivery_count,
                            })
                            .collect(),
                    }))
                }
            }
        })
        .await
    }

    /// Writes the share partition's state from its leader in `leader_epoch`; Ok once the
    /// coordinator's in-sync replicas have it.
    pub async fn write(
        &self,
        key: &StateKey,
        leader_epoch: i32,
        snapshot: &ShareSnapshot,
    ) -> Result<(), ResponseError> {
        self.retrying(|ctx| async move {
            match Self::route(&ctx, key).await? {
                Route::Here => {
                    ctx.share_coordinator
                        .write(&ctx, key, leader_epoch, snapshot.clone())
                        .await
                }
                Route::Broker(addr) => {
                    let batches = snapshot
                        .batches
                        .iter()
                        .map(|b| {
                            write_share_group_state_request::StateBatch::default()
                                .with_first_offset(b.first_offset)
                                .with_last_offset(b.last_offset)
                                .with_delivery_state(b.delivery_state)
                                .with_delivery_count(b.delivery_count)
                        })
                        .collect();
                    let req = WriteShareGroupStateRequest::default()
                        .with_group_id(StrBytes::from_string(key.0.clone()))
                        .with_topics(vec![
                            write_share_group_state_request::WriteStateData::default()
                                .with_topic_id(key.1)
                                .with_partitions(vec![
                                    write_share_group_state_request::PartitionData::default()
                                        .with_partition(key.2)
                                        .with_state_epoch(snapshot.state_epoch)
                                        .with_leader_epoch(leader_epoch)
                                        .with_start_offset(snapshot.start_offset)
                                        .with_delivery_complete_count(
                                            snapshot.delivery_complete_count,
                                        )
                                        .with_state_batches(batches),
                                ]),
                        ]);
                    let resp = self.call(&ctx, &addr, &req, 1).await?;
                    check(first(resp.results.first().map(|t| &t.partitions[..]))?.error_code)
                }
            }
        })
        .await
    }

    /// AlterShareGroupOffsets: the share partition starts over at `start_offset` in state
    /// epoch `state_epoch`, which fences its leader's writes of the old state.
    pub async fn initialize(
        &self,
        key: &StateKey,
        state_epoch: i32,
        start_offset: i64,
    ) -> Result<(), ResponseError> {
        self.retrying(|ctx| async move {
            match Self::route(&ctx, key).await? {
                Route::Here => {
                    ctx.share_coordinator
                        .initialize(&ctx, key, state_epoch, start_offset)
                        .await
                }
                Route::Broker(addr) => {
                    use initialize_share_group_state_request::{
                        InitializeStateData, PartitionData,
                    };
                    let req = InitializeShareGroupStateRequest::default()
                        .with_group_id(StrBytes::from_string(key.0.clone()))
                        .with_topics(vec![InitializeStateData::default()
                            .with_topic_id(key.1)
                            .with_partitions(vec![PartitionData::default()
                                .with_partition(key.2)
                                .with_state_epoch(state_epoch)
                                .with_start_offset(start_offset)])]);
                    let resp = self.call(&ctx, &addr, &req, 0).await?;
                    check(first(resp.results.first().map(|t| &t.partitions[..]))?.error_code)
                }
            }
        })
        .await
    }

    /// DeleteShareGroupOffsets, DeleteGroups: the share partition has no state any more.
    pub async fn delete(&self, key: &StateKey) -> Result<(), ResponseError> {
        self.retrying(|ctx| async move {
            match Self::route(&ctx, key).await? {
                Route::Here => ctx.share_coordinator.delete(&ctx, key).await,
                Route::Broker(addr) => {
                    use delete_share_group_state_request::{DeleteStateData, PartitionData};
                    let req = DeleteShareGroupStateRequest::default()
                        .with_group_id(StrBytes::from_string(key.0.clone()))
                        .with_topics(vec![DeleteStateData::default()
                            .with_topic_id(key.1)
                            .with_partitions(vec![
                                PartitionData::default().with_partition(key.2)
                            ])]);
                    let resp = self.call(&ctx, &addr, &req, 0).await?;
                    check(first(resp.results.first().map(|t| &t.partitions[..]))?.error_code)
                }
            }
        })
        .await
    }

    /// DescribeShareGroupOffsets: (state epoch, start offset, records done from it on) of
    /// the share partition, None if it has no state.
    pub async fn summary(&self, key: &StateKey) -> Result<Option<(i32, i64, i32)>, ResponseError> {
        self.retrying(|ctx| async move {
            match Self::route(&ctx, key).await? {
                Route::Here => Ok(ctx.share_coordinator.summary(&ctx, key)?.map(|s| {
                    (
                        s.snapshot.state_epoch,
                        s.snapshot.start_offset,
                        s.snapshot.delivery_complete_count,
                    )
                })),
                Route::Broker(addr) => {
                    use read_share_group_state_summary_request::{
                        PartitionData, ReadStateSummaryData,
                    };
                    let req = ReadShareGroupStateSummaryRequest::default()
                        .with_group_id(StrBytes::from_string(key.0.clone()))
                        .with_topics(vec![ReadStateSummaryData::default()
                            .with_topic_id(key.1)
                            .with_partitions(vec![PartitionData::default()
                                .with_partition(key.2)
                                .with_leader_epoch(-1)])]);
                    let resp = self.call(&ctx, &addr, &req, 1).await?;
                    let p = first(resp.results.first().map(|t| &t.partitions[..]))?;
                    check(p.error_code)?;
                    Ok((p.start_offset >= 0).then_some((
                        p.state_epoch,
                        p.start_offset,
                        p.delivery_complete_count,
                    )))
                }
            }
        })
        .await
    }

    async fn retrying<'a, T, F, Fut>(&self, mut attempt: F) -> Result<T, ResponseError>
    where
        F: FnMut(std::sync::Arc<Context>) -> Fut,
        Fut: std::future::Future<Output = Result<T, ResponseError>> + 'a,
    {
        let deadline = tokio::time::Instant::now() + RETRY_FOR;
        loop {
            let ctx = self.ctx.upgrade().ok_or(ResponseError::NotCoordinator)?;
            match attempt(ctx).await {
                Err(e) if retriable(e) && tokio::time::Instant::now() + BACKOFF < deadline => {
                    tokio::time::sleep(BACKOFF).await;
                }
                other => return other,
            }
        }
    }
}
