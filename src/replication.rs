//! Followers (cluster mode): for every partition this broker holds a replica of and does not
//! lead, fetch from the leader over Kafka's own replication protocol (Fetch with this
//! broker's id as the replica id) and append what comes back exactly as the leader stored
//! it. One task per leader broker fetches all the partitions followed from it, as Kafka's
//! replica fetcher threads do; the set follows the metadata.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Weak};
use std::time::Duration;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use tokio::sync::watch;

use crate::client::Client;
use crate::context::Context;
use crate::log::Partition;

/// The Fetch version followers send: topics by name, replica id in the request.
const FETCH_VERSION: i16 = 12;

/// A partition followed from one leader.
#[derive(Clone)]
struct Followed {
    topic: Arc<str>,
    partition: Arc<Partition>,
    leader_epoch: i32,
}

/// The partitions to follow, by leader, from the metadata as it is now.
fn followed_by_leader(ctx: &Context) -> BTreeMap<i32, Vec<Followed>> {
    let me = ctx.config.node_id;
    let mut out: BTreeMap<i32, Vec<Followed>> = BTreeMap::new();
    for t in ctx.metadata.topics() {
        for (p, placement) in t.partitions.iter().zip(&t.placements) {
            if placement.leader >= 0 && placement.leader != me && placement.replicas.contains(&me) {
                out.entry(placement.leader).or_default().push(Followed {
                    topic: t.name.clone(),
                    partition: p.clone(),
                    leader_epoch: placement.leader_epoch,
                });
            }
        }
    }
    out
}

/// Runs the followers until the broker is gone: one fetcher per leader, each told of its
/// partitions whenever the metadata changes.
pub async fn run(ctx: Weak<Context>) {
    let Some(mut changes) = ctx.upgrade().map(|c| c.metadata.changes()) else {
        return;
    };
    let mut fetchers: HashMap<i32, watch::Sender<Vec<Followed>>> = HashMap::new();
    loop {
        {
            let Some(ctx_now) = ctx.upgrade() else { return };
            let mut wanted = followed_by_leader(&ctx_now);
            fetchers.retain(|leader, tx| match wanted.remove(leader) {
                Some(set) => tx.send(set).is_ok(),
                None => false, // dropping the sender ends that fetcher
            });
            for (leader, set) in wanted {
                let (tx, rx) = watch::channel(set);
                tokio::spawn(fetch_from(ctx.clone(), leader, rx));
                fetchers.insert(leader, tx);
            }
        }
        if changes.changed().await.is_err() {
            return;
        }
    }
}

/// Fetches from one leader until its set of partitions is dropped.
/// Whether the broker is gone or stopping: a fetcher then returns before it arms a timer.
fn stopping(ctx: &Weak<Context>) -> bool {
    ctx.upgrade()
        .is_none_or(|c| c.stopping.load(std::sync::atomic::Ordering::Acquire))
}

async fn fetch_from(ctx: Weak<Context>, leader: i32, mut set: watch::Receiver<Vec<Followed>>) {
    let mut backoff = Duration::from_millis(50);
    let mut refused = HashMap::new();
    loop {
        if set.has_changed().is_err() {
            return;
        }
        let Some(c) = ctx.upgrade() else { return };
        let endpoint = c.broker_address(leader);
        let me = c.config.node_id;
        let wait_ms = c.config.replica_fetch_wait_max_ms;
        let max_bytes = c.config.replica_fetch_max_bytes;
        let security = c.inter_broker.clone();
        drop(c);
        let connected = match &endpoint {
            Some(addr) => match Client::connect_with(addr, Duration::from_secs(5), &security).await
            {
                Ok(client) => Some(client),
                Err(e) => {
                    let e = format!("{e:#}");
                    // A leader that is down is expected; a refused login or certificate
                    // is a misconfiguration the operator must see.
                    if e.contains("SASL") || e.contains("TLS") {
                        tracing::warn!(leader, error = %e, "cannot log in to the leader");
                    } else {
                        tracing::debug!(leader, error = %e, "cannot reach the leader");
                    }
                    None
                }
            },
            None => None,
        };
        let Some(client) = connected else {
            if stopping(&ctx) {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                r = set.changed() => if r.is_err() { return },
            }
            backoff = (backoff * 2).min(Duration::from_secs(2));
            continue;
        };
        let mut client = client.with_client_id(format!("klamm-replica-{me}"));
        client.set_timeout(Duration::from_millis(wait_ms) + Duration::from_secs(30));
        tracing::info!(leader, endpoint = ?endpoint, "replicating from the leader");
        loop {
            if set.has_changed().is_err() {
                return;
            }
            let followed = set.borrow_and_update().clone();
            if followed.is_empty() {
                if set.changed().await.is_err() {
                    return;
                }
                continue;
            }
            match fetch_once(&mut refused, &mut client, me, &followed, wait_ms, max_bytes).await {
                Ok(progress) => {
                    backoff = Duration::from_millis(50);
                    if !progress {
                        if stopping(&ctx) {
                            return;
                        }
                        // Only errors (the metadata is behind the leader's, or the other
                        // way round): give the metadata a moment instead of spinning.
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                            r = set.changed() => if r.is_err() { return },
                        }
                    }
                }
                Err(e) => {
                    if stopping(&ctx) {
                        return; // the broker is going: its connections are closing
                    }
                    tracing::warn!(leader, error = %e, "replica fetch failed; reconnecting");
                    break;
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// One Fetch from the leader for every followed partition; appends what came back and
/// takes the leader's high watermark. Returns whether any partition answered without error.
async fn fetch_once(
    refused: &mut HashMap<(Arc<str>, i32), i16>,
    client: &mut Client,
    me: i32,
    followed: &[Followed],
    wait_ms: u64,
    max_bytes: i32,
) -> anyhow::Result<bool> {
    let mut by_topic: BTreeMap<&str, Vec<FetchPartition>> = BTreeMap::new();
    for f in followed {
        by_topic.entry(&f.topic).or_default().push(
            FetchPartition::default()
                .with_partition(f.partition.index)
                .with_current_leader_epoch(f.leader_epoch)
                .with_fetch_offset(f.partition.log_end_offset())
                .with_last_fetched_epoch(f.partition.last_epoch())
                .with_log_start_offset(f.partition.log_start_offset())
                .with_partition_max_bytes(max_bytes),
        );
    }
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(me))
        .with_max_wait_ms(wait_ms as i32)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes.saturating_mul(16))
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(
            by_topic
                .into_iter()
                .map(|(t, parts)| {
                    FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(t.to_string())))
                        .with_partitions(parts)
                })
                .collect(),
        );
    let resp = client.send(&req, FETCH_VERSION).await?;
    if resp.error_code != 0 {
        anyhow::bail!("fetch error {}", resp.error_code);
    }
    let mut progress = false;
    for t in resp.responses {
        for pd in t.partitions {
            let Some(f) = followed.iter().find(|f| {
                *f.topic == *t.topic.0.as_str() && f.partition.index == pd.partition_index
            }) else {
                continue;
            };
            let p = f.partition.clone();
            if pd.error_code == ResponseError::OffsetOutOfRange.code()
                && p.log_end_offset() > pd.high_watermark
                && pd.high_watermark >= 0
            {
                // Ahead of the leader (it lost what only we had): back to its high watermark.
                let hw = pd.high_watermark;
                let p2 = p.clone();
                if let Err(e) = crate::storage::offload::blocking(move || p2.truncate_to(hw)) {
                    tracing::warn!(topic = %f.topic, partition = pd.partition_index, error = ?e, "truncation failed");
                }
                continue;
            }
            if pd.error_code != 0 {
                let code = ResponseError::try_from_code(pd.error_code);
                // Once per change of error, not per fetch.
                if refused.insert((f.topic.clone(), pd.partition_index), pd.error_code)
                    != Some(pd.error_code)
                {
                    tracing::warn!(topic = %f.topic, partition = pd.partition_index, error = ?code, fetch_offset = p.log_end_offset(), last_epoch = p.last_epoch(), leader_hw = pd.high_watermark, "replica fetch refused");
                }
                continue;
            }
            refused.remove(&(f.topic.clone(), pd.partition_index));
            if pd.diverging_epoch.end_offset >= 0 {
                let div = pd.diverging_epoch.clone();
                let p2 = p.clone();
                let truncated = crate::storage::offload::blocking(move || {
                    let (epoch, end) = p2.end_offset_for_epoch(div.epoch)?;
                    let target = if epoch >= 0 && end >= 0 {
                        div.end_offset.min(end)
                    } else {
                        div.end_offset
                    };
                    p2.truncate_to(target)
                });
                match truncated {
                    Ok(()) => progress = true,
                    Err(e) => {
                        tracing::warn!(topic = %f.topic, partition = pd.partition_index, error = ?e, "truncation failed")
                    }
                }
                continue;
            }
            let records = pd.records.unwrap_or_default();
            let appended = if records.is_empty() {
                Ok(p.log_end_offset())
            } else {
                let p2 = p.clone();
                crate::storage::offload::blocking(move || p2.append_replica(&records))
            };
            match appended {
                Ok(_) => {
                    progress = true;
                    p.set_follower_high_watermark(pd.high_watermark);
                }
                Err(e) => {
                    tracing::warn!(topic = %f.topic, partition = pd.partition_index, error = ?e, "replica append failed");
                }
            }
        }
    }
    Ok(progress)
}

/// On the leader: drops followers that have not caught up within
/// `replica.lag.time.max.ms` from the ISR, checked every half of that, as Kafka does.
pub async fn shrink_isr(ctx: Weak<Context>) {
    let Some(lag_ms) = ctx.upgrade().map(|c| c.config.replica_lag_time_max_ms) else {
        return;
    };
    let mut tick = tokio::time::interval(Duration::from_millis((lag_ms / 2).max(50)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(ctx) = ctx.upgrade() else { return };
        for t in ctx.metadata.topics() {
            for p in &t.partitions {
                if let Some(change) = p.lagging_followers(lag_ms as i64) {
                    ctx.metadata.change_isr(p, change);
                }
            }
        }
    }
}
