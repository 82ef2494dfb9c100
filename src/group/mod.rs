//! The group coordinator for classic consumer groups: membership, rebalances, and offsets.
//!
//! Membership lives in memory (members rejoin after a broker restart, as they do after a
//! coordinator failover in Kafka); committed offsets are durable in RocksDB.

pub mod config;
pub mod consumer;
pub mod consumer_journal;
pub mod journal;
pub mod offsets;
pub mod state;
pub mod streams;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use tokio::sync::oneshot;
use tokio::time::Instant;

pub use offsets::{CommittedOffset, OffsetStore};
use state::{Group, Member};
pub use state::{GroupState, JoinOutcome, SyncOutcome};

use crate::storage::Store;
use crate::storage::StoreError;

/// How often session timeouts and rebalance deadlines are checked.
const TICK: Duration = Duration::from_millis(100);
/// Never wake more often than this, even if a deadline stays in the past.
const MIN_TICK: Duration = Duration::from_millis(5);
/// Longest committed metadata string (Kafka's `offset.metadata.max.bytes`).
pub const OFFSET_METADATA_MAX_BYTES: usize = 4096;
/// Upper bound on members per group (Kafka's `group.max.size` default is unbounded; a limit).
pub const GROUP_MAX_SIZE: usize = 10_000;

/// Group coordinator settings, with Kafka's names.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    pub initial_rebalance_delay_ms: u64,
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
}

/// A JoinGroup as the coordinator needs it.
pub struct JoinRequest {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: unknown members first get MEMBER_ID_REQUIRED (KIP-394).
    pub require_known_member_id: bool,
}

/// A member as DescribeGroups reports it.
#[derive(Debug, Clone)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// A group as DescribeGroups and ListGroups report it.
#[derive(Debug, Clone)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol_name: String,
    pub members: Vec<MemberDescription>,
}

/// The coordinator of every classic group on this broker.
///
/// One mutex guards all groups: group operations are rare next to produce and fetch, and a
/// single lock keeps ListGroups, timers and joins trivially consistent. Nothing awaits while
/// holding it; JoinGroup and SyncGroup wait on oneshot channels after releasing it.
pub struct GroupCoordinator {
    groups: Mutex<HashMap<String, Group>>,
    pub offsets: OffsetStore,
    config: GroupConfig,
}

fn fence_static(
    group: &Group,
    instance: &Option<String>,
    member_id: &str,
) -> Result<(), ResponseError> {
    if let Some(instance) = instance {
        if let Some(current) = group.static_members.get(instance) {
            if current != member_id {
                return Err(ResponseError::FencedInstanceId);
            }
        }
    }
    Ok(())
}

/// The member fields of one OffsetCommit or TxnOffsetCommit, as the group's owner checks
/// them: a KIP-848 group the member epoch, a classic group its generation. Both commit paths
/// go through `commit_checked`, so a group id is judged by one owner whatever protocol its
/// members speak.
pub struct CommitCheck<'a> {
    pub group_id: &'a str,
    /// A classic group's generation, or a KIP-848 member's epoch.
    pub generation_or_epoch: i32,
    pub member_id: &'a str,
    pub instance_id: &'a Option<String>,
    /// The (topic id, partition) pairs committed, for KIP-848's older-epoch rule.
    pub partitions: &'a [consumer::Tp],
    /// A topic id's name, for a streams group's older-epoch rule (its tasks are by name).
    pub topic_name: &'a (dyn Fn(&uuid::Uuid) -> Option<String> + Sync),
    pub transactional: bool,
    pub version: i16,
}

/// Checks a commit's member fields and, if they pass, runs `write` before the group can
/// change: both coordinators' maps are held across the check and the write, so no rebalance,
/// expiry or deletion slips between them. The outer error is the group's (every partition
/// gets it), the inner one the write's. Lock order: classic groups, consumer groups, then
/// whatever `write` takes (the offset store's writes, the transaction coordinator).
pub fn commit_checked<T>(
    classic: &GroupCoordinator,
    consumer: &consumer::ConsumerGroups,
    streams: &streams::group::StreamsGroups,
    c: &CommitCheck,
    write: impl FnOnce() -> Result<T, ResponseError>,
) -> Result<Result<T, ResponseError>, ResponseError> {
    validate_group_id(c.group_id)?;
    // A streams group's member (Kafka Streams commits with its member epoch).
    if let Some(result) = streams.check_commit(c) {
        result?;
        return Ok(write());
    }
    let mut classic_groups = classic.lock();
    let consumer_groups = consumer.lock();
    match consumer::check_commit_in(&consumer_groups, c) {
        Some(result) => result?,
        None => check_classic_commit(&mut classic_groups, c)?,
    }
    Ok(write())
}

/// A classic group's checks of a commit's member fields (Kafka's `validateOffsetCommit`),
/// with the groups map held by the caller. A commit with generation -1 to an unknown group
/// creates a "simple" group (an admin's or an assign()-only consumer's); any other commit to
/// an unknown group is refused and creates nothing.
fn check_classic_commit(
    groups: &mut HashMap<String, Group>,
    c: &CommitCheck,
) -> Result<(), ResponseError> {
    let (group_id, generation_id, member_id) = (c.group_id, c.generation_or_epoch, c.member_id);
    let (group_instance_id, transactional, version) = (c.instance_id, c.transactional, c.version);
    let Some(group) = groups.get_mut(group_id) else {
        if generation_id < 0 {
            groups.insert(group_id.to_string(), Group::new(group_id));
            return Ok(());
        }
        // GROUP_ID_NOT_FOUND from OffsetCommit v9 and TxnOffsetCommit v6 (KIP-1319).
        return Err(
            if (!transactional && version >= 9) || (transactional && version >= 6) {
                ResponseError::GroupIdNotFound
            } else {
                ResponseError::IllegalGeneration
            },
        );
    };
    let empty = group.state == GroupState::Empty;
    if generation_id < 0 && empty {
        return Ok(());
    }
    if generation_id >= 0 || !member_id.is_empty() || group_instance_id.is_some() {
        fence_static(group, group_instance_id, member_id)?;
        if !group.members.contains_key(member_id) {
            return Err(ResponseError::UnknownMemberId);
        }
        if generation_id != group.generation_id {
            return Err(ResponseError::IllegalGeneration);
        }
    } else if !transactional && !empty {
        // A commit from no member of a group that has members.
        return Err(ResponseError::UnknownMemberId);
    }
    // During PreparingRebalance the generation is still current and members commit what
    // they consumed before giving partitions up (as librdkafka does on revoke); only
    // between the join and the leader's assignment is there nothing valid to commit.
    if !transactional && group.state == GroupState::CompletingRebalance {
        return Err(ResponseError::RebalanceInProgress);
    }
    if let Some(m) = group.members.get_mut(member_id) {
        m.last_heartbeat = Instant::now();
    }
    Ok(())
}

/// The longest group id the broker accepts: Kafka writes group ids as an i16-length string
/// in its offsets topic, so a longer one cannot exist there either, and the offsets key here
/// stores the length in two bytes.
pub const GROUP_ID_MAX_BYTES: usize = i16::MAX as usize;

/// INVALID_GROUP_ID for an empty group id or one past `GROUP_ID_MAX_BYTES`.
/// Kafka's `validateOffsetFetch` for a KIP-848 or streams group: no member id with a
/// negative epoch (an admin, or a consumer outside group management) passes; otherwise the
/// member must exist (`current_epoch` is its epoch, None when it does not) and fetch with
/// its current epoch.
pub fn check_member_fetch(
    member_id: Option<&str>,
    epoch: i32,
    current_epoch: impl FnOnce(&str) -> Option<i32>,
) -> Result<(), ResponseError> {
    if member_id.is_none() && epoch < 0 {
        return Ok(());
    }
    match current_epoch(member_id.unwrap_or_default()) {
        None => Err(ResponseError::UnknownMemberId),
        Some(current) if current != epoch => Err(ResponseError::StaleMemberEpoch),
        Some(_) => Ok(()),
    }
}

pub fn validate_group_id(group_id: &str) -> Result<(), ResponseError> {
    if group_id.is_empty() || group_id.len() > GROUP_ID_MAX_BYTES {
        return Err(ResponseError::InvalidGroupId);
    }
    Ok(())
}

impl GroupCoordinator {
    /// Loads the ids of groups with committed offsets; they exist as Empty groups.
    pub fn load(store: Arc<Store>, config: GroupConfig) -> Result<GroupCoordinator, StoreError> {
        let offsets = OffsetStore::new(store);
        let groups = offsets
            .group_ids()?
            .into_iter()
            .map(|id| (id.clone(), Group::new(&id)))
            .collect();
        Ok(GroupCoordinator {
            groups: Mutex::new(groups),
            offsets,
            config,
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Group>> {
        self.groups.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs session expiry and rebalance deadlines until the coordinator is dropped.
    pub fn start_timers(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(me) = weak.upgrade() else { break };
                let now = Instant::now();
                // Sleep to the next session or rebalance deadline, so expiry is as punctual
                // as Kafka's timers (clients and librdkafka's tests time against it); the
                // tick bounds the sleep for deadlines that requests create meanwhile.
                let next = me
                    .on_tick(now)
                    .map_or(now + TICK, |d| d.clamp(now + MIN_TICK, now + TICK));
                drop(me);
                tokio::time::sleep_until(next).await;
            }
        });
    }

    /// Expires members whose session ran out and completes rebalances that are due.
    /// Returns the earliest instant at which something else falls due.
    pub fn on_tick(&self, now: Instant) -> Option<Instant> {
        let delay = self.config.initial_rebalance_delay_ms;
        let mut groups = self.lock();
        for g in groups.values_mut() {
            let expired: Vec<String> = g
                .members
                .values()
                .filter(|m| {
                    m.join_waiter.is_none()
                        && now.duration_since(m.last_heartbeat)
                            > Duration::from_millis(m.session_timeout_ms.max(0) as u64)
                })
                .map(|m| m.member_id.clone())
                .collect();
            g.pending_members.retain(|_, deadline| *deadline > now);
            for id in &expired {
                tracing::info!(group = %g.group_id, member = %id, "member session expired");
                g.remove_member(id);
            }
            if !expired.is_empty() {
                g.membership_changed(now, delay);
            }
            if g.join_can_complete(now) {
                g.complete_join();
            }
            drop(self.journal_group(g));
        }
        groups.values().filter_map(|g| g.next_deadline()).min()
    }

    /// JoinGroup. Waits (without holding the lock) until the rebalance completes.
    pub async fn join(&self, req: JoinRequest) -> JoinOutcome {
        let rx = match self.join_inner(req) {
            Ok(outcome) => return outcome,
            Err(rx) => rx,
        };
        rx.await
            .unwrap_or_else(|_| JoinOutcome::error(ResponseError::CoordinatorNotAvailable, ""))
    }

    fn join_inner(&self, req: JoinRequest) -> Result<JoinOutcome, oneshot::Receiver<JoinOutcome>> {
        let now = Instant::now();
        let delay = self.config.initial_rebalance_delay_ms;
        let err = |e| Ok(JoinOutcome::error(e, &req.member_id));
        if let Err(e) = validate_group_id(&req.group_id) {
            return err(e);
        }
        if req.session_timeout_ms < self.config.min_session_timeout_ms
            || req.session_timeout_ms > self.config.max_session_timeout_ms
        {
            return err(ResponseError::InvalidSessionTimeout);
        }
        tracing::debug!(
            group = %req.group_id,
            member = %req.member_id,
            instance = ?req.group_instance_id,
            session_timeout_ms = req.session_timeout_ms,
            rebalance_timeout_ms = req.rebalance_timeout_ms,
            "JoinGroup"
        );
        let mut groups = self.lock();
        let group = groups
            .entry(req.group_id.clone())
            .or_insert_with(|| Group::new(&req.group_id));
        if !group.supports_protocols(&req.protocol_type, &req.protocols) {
            return err(ResponseError::InconsistentGroupProtocol);
        }
        let mut member_id = req.member_id.clone();
        if member_id.is_empty() {
            if let Some(instance) = &req.group_instance_id {
                if let Some(old_id) = group.static_members.get(instance).cloned() {
                    // KIP-345: a restarted static member takes over its old identity; the old
                    // member id is fenced and no rebalance happens if nothing changed.
                    let new_id = format!("{instance}-{}", uuid::Uuid::new_v4());
                    if let Some(mut old) = group.members.remove(&old_id) {
                        if let Some(w) = old.join_waiter.take() {
                            let _ = w
                                .send(JoinOutcome::error(ResponseError::FencedInstanceId, &old_id));
                        }
                        if let Some(w) = old.sync_waiter.take() {
                            let _ = w.send(SyncOutcome {
                                error: Some(ResponseError::FencedInstanceId),
                                ..Default::default()
                            });
                        }
                        old.member_id = new_id.clone();
                        old.protocols = req.protocols.clone();
                        old.session_timeout_ms = req.session_timeout_ms;
                        old.rebalance_timeout_ms = req.rebalance_timeout_ms;
                        old.last_heartbeat = now;
                        old.client_id = req.client_id.clone();
                        old.client_host = req.client_host.clone();
                        group.members.insert(new_id.clone(), old);
                        group
                            .static_members
                            .insert(instance.clone(), new_id.clone());
                        for id in group.join_order.iter_mut() {
                            if *id == old_id {
                                *id = new_id.clone();
                            }
                        }
                        if group.leader_id.as_deref() == Some(old_id.as_str()) {
                            group.leader_id = Some(new_id.clone());
                        }
                        match group.state {
                            // Kafka rebalances a Stable group on a static rejoin only when
                            // the protocol the group would select changes; new subscription
                            // metadata alone (cooperative owned partitions) does not. A
                            // returning leader gets the member list but, per KIP-814, is
                            // told to skip the assignment.
                            GroupState::Stable
                                if group.select_protocol() == group.protocol_name =>
                            {
                                let mut out = group.current_join(&new_id);
                                out.skip_assignment =
                                    group.leader_id.as_deref() == Some(new_id.as_str());
                                return Ok(out);
                            }
                            // Mid-sync, the leader may be assigning to the old member id,
                            // which the new one would never receive: start over.
                            GroupState::Stable | GroupState::CompletingRebalance => {
                                group.prepare_rebalance(now, delay)
                            }
                            _ => {}
                        }
                        return self.join_known(group, new_id, &req, now, delay);
                    }
                }
                member_id = format!("{instance}-{}", uuid::Uuid::new_v4());
            } else {
                let client = if req.client_id.is_empty() {
                    "member"
                } else {
                    req.client_id.as_str()
                };
                member_id = format!("{client}-{}", uuid::Uuid::new_v4());
                if req.require_known_member_id {
                    // Pending members count against group.max.size too: otherwise joins that
                    // never come back could grow the pending set without bound.
                    if group.members.len() + group.pending_members.len() >= GROUP_MAX_SIZE {
                        return err(ResponseError::GroupMaxSizeReached);
                    }
                    let session = Duration::from_millis(req.session_timeout_ms.max(0) as u64);
                    group
                        .pending_members
                        .insert(member_id.clone(), now + session);
                    return Ok(JoinOutcome::error(
                        ResponseError::MemberIdRequired,
                        &member_id,
                    ));
                }
            }
            if group.members.len() >= GROUP_MAX_SIZE {
                return err(ResponseError::GroupMaxSizeReached);
            }
            return self.add_member(group, member_id, &req, now, delay);
        }
        if group.pending_members.remove(&member_id).is_some() {
            if group.members.len() >= GROUP_MAX_SIZE {
                return err(ResponseError::GroupMaxSizeReached);
            }
            return self.add_member(group, member_id, &req, now, delay);
        }
        if !group.members.contains_key(&member_id) {
            return err(ResponseError::UnknownMemberId);
        }
        if let Err(e) = fence_static(group, &req.group_instance_id, &member_id) {
            return err(e);
        }
        self.join_known(group, member_id, &req, now, delay)
    }

    fn add_member(
        &self,
        group: &mut Group,
        member_id: String,
        req: &JoinRequest,
        now: Instant,
        delay: u64,
    ) -> Result<JoinOutcome, oneshot::Receiver<JoinOutcome>> {
        let (tx, rx) = oneshot::channel();
        if group.members.is_empty() {
            group.protocol_type = Some(req.protocol_type.clone());
        }
        if let Some(instance) = &req.group_instance_id {
            group
                .static_members
                .insert(instance.clone(), member_id.clone());
        }
        group.join_order.push(member_id.clone());
        group.members.insert(
            member_id.clone(),
            Member {
                member_id: member_id.clone(),
                group_instance_id: req.group_instance_id.clone(),
                client_id: req.client_id.clone(),
                client_host: req.client_host.clone(),
                session_timeout_ms: req.session_timeout_ms,
                rebalance_timeout_ms: req.rebalance_timeout_ms,
                protocols: req.protocols.clone(),
                assignment: Bytes::new(),
                last_heartbeat: now,
                join_waiter: Some(tx),
                sync_waiter: None,
            },
        );
        match group.state {
            GroupState::PreparingRebalance => {
                // A newcomer extends the initial delay of a group that is forming (Kafka's
                // InitialDelayedJoin), up to the rebalance deadline.
                if let (Some(until), Some(deadline)) =
                    (group.initial_delay_until, group.rebalance_deadline)
                {
                    let extended = now + Duration::from_millis(delay);
                    if extended > until {
                        group.initial_delay_until = Some(extended.min(deadline));
                    }
                }
            }
            _ => group.prepare_rebalance(now, delay),
        }
        if group.join_can_complete(now) {
            group.complete_join();
            drop(self.journal_group(group));
        }
        Err(rx)
    }

    fn join_known(
        &self,
        group: &mut Group,
        member_id: String,
        req: &JoinRequest,
        now: Instant,
        delay: u64,
    ) -> Result<JoinOutcome, oneshot::Receiver<JoinOutcome>> {
        let state = group.state;
        let is_leader = group.leader_id.as_deref() == Some(member_id.as_str());
        let Some(member) = group.members.get_mut(&member_id) else {
            return Ok(JoinOutcome::error(
                ResponseError::UnknownMemberId,
                &member_id,
            ));
        };
        member.last_heartbeat = now;
        member.session_timeout_ms = req.session_timeout_ms;
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        let unchanged = member.protocols == req.protocols;
        member.protocols = req.protocols.clone();
        match state {
            GroupState::CompletingRebalance | GroupState::Stable
                if unchanged && !(state == GroupState::Stable && is_leader) =>
            {
                // A follower (or anyone mid-sync) re-sending its join: answer with the
                // current generation instead of starting over.
                Ok(group.current_join(&member_id))
            }
            _ => {
                let (tx, rx) = oneshot::channel();
                if let Some(old) = member.join_waiter.replace(tx) {
                    let _ = old.send(JoinOutcome::error(
                        ResponseError::RebalanceInProgress,
                        &member_id,
                    ));
                }
                if state != GroupState::PreparingRebalance {
                    group.prepare_rebalance(now, delay);
                }
                if group.join_can_complete(now) {
                    group.complete_join();
                    drop(self.journal_group(group));
                }
                Err(rx)
            }
        }
    }

    /// SyncGroup. The leader's call installs the assignment; followers wait for it.
    pub async fn sync(
        &self,
        group_id: &str,
        generation_id: i32,
        member_id: &str,
        group_instance_id: &Option<String>,
        assignments: Vec<(String, Bytes)>,
    ) -> SyncOutcome {
        let mut durable = None;
        let rx = {
            let mut groups = self.lock();
            let fail = |e| SyncOutcome {
                error: Some(e),
                ..Default::default()
            };
            let Some(group) = groups.get_mut(group_id) else {
                return fail(ResponseError::UnknownMemberId);
            };
            if let Err(e) = fence_static(group, group_instance_id, member_id) {
                return fail(e);
            }
            if !group.members.contains_key(member_id) {
                return fail(ResponseError::UnknownMemberId);
            }
            if generation_id != group.generation_id {
                return fail(ResponseError::IllegalGeneration);
            }
            let now = Instant::now();
            match group.state {
                GroupState::PreparingRebalance => return fail(ResponseError::RebalanceInProgress),
                GroupState::Empty | GroupState::Dead => {
                    return fail(ResponseError::UnknownMemberId)
                }
                GroupState::Stable => {
                    let m = &group.members[member_id];
                    return SyncOutcome {
                        error: None,
                        protocol_type: group.protocol_type.clone(),
                        protocol_name: group.protocol_name.clone(),
                        assignment: m.assignment.clone(),
                    };
                }
                GroupState::CompletingRebalance => {
                    let (tx, rx) = oneshot::channel();
                    if let Some(m) = group.members.get_mut(member_id) {
                        m.last_heartbeat = now;
                        m.sync_waiter = Some(tx);
                    }
                    if group.leader_id.as_deref() == Some(member_id) {
                        group.install_assignment(assignments.into_iter().collect());
                        durable = self.journal_group(group);
                    }
                    rx
                }
            }
        };
        let outcome = rx.await.unwrap_or(SyncOutcome {
            error: Some(ResponseError::RebalanceInProgress),
            ..Default::default()
        });
        // Cluster mode: the leader is answered once the group's metadata is on the in-sync
        // replicas (as Kafka answers SyncGroup after its append), so a coordinator that
        // dies right after leaves the group to its successor.
        if let (Some(w), None) = (durable, &outcome.error) {
            if let Err(e) = journal::settle(w).await {
                return SyncOutcome {
                    error: Some(e),
                    ..Default::default()
                };
            }
        }
        outcome
    }

    /// Heartbeat: keeps the session alive and tells members when to rejoin.
    pub fn heartbeat(
        &self,
        group_id: &str,
        generation_id: i32,
        member_id: &str,
        group_instance_id: &Option<String>,
    ) -> Result<(), ResponseError> {
        let mut groups = self.lock();
        let group = groups
            .get_mut(group_id)
            .ok_or(ResponseError::UnknownMemberId)?;
        fence_static(group, group_instance_id, member_id)?;
        if !group.members.contains_key(member_id) {
            return Err(ResponseError::UnknownMemberId);
        }
        if generation_id != group.generation_id {
            return Err(ResponseError::IllegalGeneration);
        }
        if let Some(m) = group.members.get_mut(member_id) {
            m.last_heartbeat = Instant::now();
        }
        match group.state {
            GroupState::PreparingRebalance => Err(ResponseError::RebalanceInProgress),
            GroupState::Empty | GroupState::Dead => Err(ResponseError::UnknownMemberId),
            GroupState::CompletingRebalance | GroupState::Stable => Ok(()),
        }
    }

    /// LeaveGroup for one member (by member id, or by instance id for static members).
    pub fn leave(
        &self,
        group_id: &str,
        member_id: &str,
        group_instance_id: &Option<String>,
    ) -> Result<(), ResponseError> {
        let mut groups = self.lock();
        let group = groups
            .get_mut(group_id)
            .ok_or(ResponseError::UnknownMemberId)?;
        let id = match group_instance_id {
            Some(instance) => {
                let current = group
                    .static_members
                    .get(instance)
                    .cloned()
                    .ok_or(ResponseError::UnknownMemberId)?;
                if !member_id.is_empty() && member_id != current {
                    return Err(ResponseError::FencedInstanceId);
                }
                current
            }
            None => member_id.to_string(),
        };
        if group.pending_members.remove(&id).is_some() {
            return Ok(());
        }
        if !group.members.contains_key(&id) {
            return Err(ResponseError::UnknownMemberId);
        }
        tracing::debug!(group = group_id, member = %id, "member left");
        group.remove_member(&id);
        group.membership_changed(Instant::now(), self.config.initial_rebalance_delay_ms);
        drop(self.journal_group(group));
        Ok(())
    }

    /// Cluster mode: writes a group's metadata to its partition of `__consumer_offsets`
    /// when a rebalance completed (Stable) or the group became Empty since the last write,
    /// as Kafka does, so that a new coordinator takes the group over with its members.
    fn journal_group(&self, g: &mut Group) -> Option<journal::JournalWrite> {
        let now = (g.generation_id, g.state);
        let due = match g.state {
            GroupState::Stable => true,
            GroupState::Empty => g.generation_id > 0,
            _ => false,
        };
        if !due || g.journaled == Some(now) {
            return None;
        }
        g.journaled = Some(now);
        let protocol = g.protocol_name.clone();
        let record = journal::GroupRecord {
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            generation: g.generation_id,
            protocol: protocol.clone(),
            leader: g.leader_id.clone(),
            state_timestamp_ms: crate::clock::now_ms(),
            members: g
                .members
                .values()
                .map(|m| journal::MemberRecord {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: m.metadata_for(protocol.as_deref().unwrap_or_default()),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        };
        self.offsets.journal_group(&g.group_id, Some(&record))
    }

    /// Cluster mode, a new term's load: the classic groups `pick` selects become what
    /// their last metadata records say (members with fresh sessions, generation, leader,
    /// assignments), as Kafka's GroupMetadataManager loads them.
    pub fn load_groups(&self, records: Vec<(String, journal::GroupRecord)>) -> usize {
        let mut groups = self.lock();
        let now = Instant::now();
        let n = records.len();
        for (id, r) in records {
            let mut g = Group::new(&id);
            g.generation_id = r.generation;
            g.protocol_type = (!r.protocol_type.is_empty()).then_some(r.protocol_type);
            let protocol = r.protocol.clone().unwrap_or_default();
            for m in r.members {
                if let Some(instance) = &m.group_instance_id {
                    g.static_members
                        .insert(instance.clone(), m.member_id.clone());
                }
                g.join_order.push(m.member_id.clone());
                g.members
                    .insert(m.member_id.clone(), Member::restored(m, &protocol, now));
            }
            if g.members.is_empty() || r.protocol.is_none() {
                g.members.clear();
                g.static_members.clear();
                g.join_order.clear();
                g.state = GroupState::Empty;
                g.empty_since_ms = (r.state_timestamp_ms >= 0).then_some(r.state_timestamp_ms);
            } else {
                g.state = GroupState::Stable;
                g.protocol_name = r.protocol;
                g.leader_id = r.leader;
            }
            g.journaled = Some((g.generation_id, g.state));
            groups.insert(id, g);
        }
        n
    }

    /// Makes a group that received offsets outside OffsetCommit (a committed transaction)
    /// known to ListGroups and DescribeGroups, as an OffsetCommit would have.
    pub fn touch(&self, group_id: &str) {
        self.lock()
            .entry(group_id.to_string())
            .or_insert_with(|| Group::new(group_id));
    }

    /// A transaction marker of `producer_id` was written to partition `index` of
    /// `__consumer_offsets` (of `partitions`): the offsets its groups there hold for the
    /// transaction become committed, or are dropped on an abort.
    pub fn txn_marker_written(
        &self,
        consumer_groups: &consumer::ConsumerGroups,
        index: i32,
        partitions: usize,
        producer_id: i64,
        commit: bool,
    ) {
        let pick = |g: &str| crate::context::coordinator_partition(g, partitions) == index;
        match self.offsets.complete_txn(producer_id, commit, pick) {
            Ok(groups) => {
                for g in groups {
                    if !consumer_groups.exists(&g) {
                        self.touch(&g);
                    }
                }
            }
            // The log holds the records and the marker: the next load of the partition
            // commits them.
            Err(e) => {
                tracing::error!(producer_id, partition = index, error = %e, "transactional offsets not written to the offsets table")
            }
        }
    }

    /// Drops the groups `pick` selects from memory, members and all (their waiting joins and
    /// syncs are answered with retriable errors): in cluster mode this broker stopped
    /// coordinating them, or starts again from what the log says.
    pub fn unload(&self, pick: impl Fn(&str) -> bool) -> usize {
        self.offsets.replace_txn_pending(&pick, HashMap::new());
        let mut groups = self.lock();
        let before = groups.len();
        groups.retain(|id, _| !pick(id));
        before - groups.len()
    }

    /// How many groups exist (with members or committed offsets).
    pub fn group_count(&self) -> usize {
        self.lock().len()
    }

    /// Every committed offset: (group, topic, partition, offset), for metrics.
    pub fn committed_offsets(&self) -> Vec<(String, String, i32, i64)> {
        self.offsets.all().unwrap_or_default()
    }

    /// Every known group, for ListGroups.
    pub fn list(&self) -> Vec<GroupDescription> {
        let groups = self.lock();
        let mut out: Vec<GroupDescription> = groups.values().map(describe).collect();
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    pub fn describe(&self, group_id: &str) -> Option<GroupDescription> {
        self.lock().get(group_id).map(describe)
    }

    /// Topics the group's members subscribe to (consumer protocol), for OffsetDelete.
    pub fn subscribed_topics(&self, group_id: &str) -> Vec<String> {
        use kafka_protocol::messages::ConsumerProtocolSubscription;
        use kafka_protocol::protocol::Decodable;
        let groups = self.lock();
        let Some(g) = groups.get(group_id) else {
            return Vec::new();
        };
        if g.protocol_type.as_deref() != Some("consumer") || g.state != GroupState::Stable {
            return Vec::new();
        }
        let protocol = g.protocol_name.clone().unwrap_or_default();
        let mut topics = Vec::new();
        for m in g.members.values() {
            let mut meta = m.metadata_for(&protocol);
            if meta.len() < 2 {
                continue;
            }
            let version = i16::from_be_bytes([meta[0], meta[1]]);
            bytes::Buf::advance(&mut meta, 2);
            if let Ok(sub) = ConsumerProtocolSubscription::decode(&mut meta, version.clamp(0, 3)) {
                topics.extend(sub.topics.iter().map(|t| t.to_string()));
            }
        }
        topics
    }

    /// DeleteGroups for one group: only an empty group (no members) can be deleted.
    pub fn delete_group(&self, group_id: &str) -> Result<(), ResponseError> {
        let mut groups = self.lock();
        let Some(group) = groups.get(group_id) else {
            return Err(ResponseError::GroupIdNotFound);
        };
        if !group.members.is_empty() || group.state != GroupState::Empty {
            return Err(ResponseError::NonEmptyGroup);
        }
        self.offsets.delete(group_id, None)?;
        if groups
            .remove(group_id)
            .is_some_and(|g| g.journaled.is_some())
        {
            drop(self.offsets.journal_group(group_id, None));
        }
        Ok(())
    }

    /// Which offsets of a group may expire: (the time their retention counts from, None for
    /// each offset's own commit time; the topics that never expire because the group
    /// subscribes to them), or None when none may, as Kafka's
    /// `offsetExpirationCondition` decides per group type and state.
    fn expiry_rule(
        &self,
        consumer: &consumer::ConsumerGroups,
        streams: &streams::group::StreamsGroups,
        group_id: &str,
    ) -> Option<(Option<i64>, HashSet<String>)> {
        if let Some(topics) = consumer.subscribed_topics(group_id) {
            return Some((None, topics));
        }
        // A streams group's offsets expire by their commit time, and only while it has no
        // members (Kafka's StreamsGroup): a running application keeps every offset.
        if let Some(members) = streams.with(group_id, |g| g.members.len()) {
            return (members == 0).then(|| (None, HashSet::new()));
        }
        let groups = self.lock();
        let Some(g) = groups.get(group_id) else {
            return Some((None, HashSet::new()));
        };
        match (g.protocol_type.as_deref(), g.state) {
            // Standalone: offsets committed by assign()-mode consumers or admins.
            (None, _) => Some((None, HashSet::new())),
            (Some(_), GroupState::Empty) => Some((g.empty_since_ms, HashSet::new())),
            (Some("consumer"), GroupState::Stable) => Some((None, classic_subscriptions(g)?)),
            _ => None,
        }
    }

    /// One pass of Kafka's group metadata expiration: deletes offsets whose retention
    /// (`offsets.retention.minutes`) ran out, then the groups left with no members and no
    /// offsets. `pending` holds the partitions of each group with offsets in an open
    /// transaction: those are kept, and so is the group.
    pub fn expire_offsets(
        &self,
        consumer: &consumer::ConsumerGroups,
        streams: &streams::group::StreamsGroups,
        pending: &HashMap<String, HashSet<(String, i32)>>,
        now_ms: i64,
        retention_ms: i64,
    ) -> Result<ExpiryStats, StoreError> {
        let mut stats = ExpiryStats::default();
        let mut by_group: BTreeMap<String, Vec<offsets::OffsetEntry>> = BTreeMap::new();
        for e in self.offsets.entries()? {
            by_group.entry(e.group.clone()).or_default().push(e);
        }
        for (group, entries) in &by_group {
            let Some((base, subscribed)) = self.expiry_rule(consumer, streams, group) else {
                continue;
            };
            let held = pending.get(group);
            let expired: Vec<(String, i32, i64)> = entries
                .iter()
                .filter(|e| {
                    let since = base.unwrap_or(e.offset.commit_timestamp_ms);
                    !subscribed.contains(&e.topic)
                        && !held.is_some_and(|h| h.contains(&(e.topic.clone(), e.partition)))
                        && now_ms.saturating_sub(since) >= retention_ms
                })
                .map(|e| (e.topic.clone(), e.partition, e.offset.commit_timestamp_ms))
                .collect();
            if expired.is_empty() {
                continue;
            }
            let n = self.offsets.expire(group, &expired)?;
            if n > 0 {
                tracing::info!(group = %group, offsets = n, "expired committed offsets (offsets.retention.minutes)");
            }
            stats.offsets += n;
        }
        // Groups with no members and no offsets are deleted. The check and the removal are
        // made with commits held off, so a commit racing the pass keeps its group.
        let empty: Vec<String> = self
            .lock()
            .values()
            .filter(|g| g.state == GroupState::Empty && g.members.is_empty())
            .map(|g| g.group_id.clone())
            .collect();
        for id in empty {
            if pending.contains_key(&id) {
                continue;
            }
            let mut groups = self.lock();
            let still_empty = groups.get(&id).is_some_and(|g| {
                g.state == GroupState::Empty && g.members.is_empty() && g.pending_members.is_empty()
            });
            if !still_empty {
                continue;
            }
            if let Some(removed) = self
                .offsets
                .if_no_offsets(&id, || groups.remove(&id))?
                .flatten()
            {
                if removed.journaled.is_some() {
                    drop(self.offsets.journal_group(&id, None));
                }
                tracing::info!(group = %id, "deleted empty group with no offsets");
                stats.groups += 1;
            }
        }
        for id in consumer.empty_group_ids() {
            if pending.contains_key(&id) {
                continue;
            }
            // Lock order as in `commit_checked`: the consumer groups, then the offset writes.
            let mut failed = None;
            let removed = consumer.remove_if_empty_and(&id, || {
                match self.offsets.if_no_offsets(&id, || ()) {
                    Ok(none) => none.is_some(),
                    Err(e) => {
                        failed = Some(e);
                        false
                    }
                }
            });
            if let Some(e) = failed {
                return Err(e);
            }
            if removed {
                tracing::info!(group = %id, "deleted empty consumer group with no offsets");
                stats.groups += 1;
            }
        }
        for id in streams.empty_group_ids() {
            if pending.contains_key(&id) {
                continue;
            }
            let mut failed = None;
            let removed =
                streams.remove_if_empty_and(&id, || match self.offsets.if_no_offsets(&id, || ()) {
                    Ok(none) => none.is_some(),
                    Err(e) => {
                        failed = Some(e);
                        false
                    }
                });
            if let Some(e) = failed {
                return Err(e);
            }
            if removed {
                tracing::info!(group = %id, "deleted empty streams group with no offsets");
                stats.groups += 1;
            }
        }
        Ok(stats)
    }

    /// Whether a group is known (has members or committed offsets).
    pub fn exists(&self, group_id: &str) -> bool {
        self.lock().contains_key(group_id)
    }

    /// True when `group_id` is a classic group with members (consumer-protocol
    /// heartbeats for it are refused).
    pub fn has_members(&self, group_id: &str) -> bool {
        self.lock()
            .get(group_id)
            .is_some_and(|g| !g.members.is_empty())
    }
}

/// What one offsets-expiry pass removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ExpiryStats {
    pub offsets: usize,
    pub groups: usize,
}

/// The topics a classic consumer-protocol group's members subscribe to, None when a
/// member's subscription cannot be read (Kafka then expires nothing).
fn classic_subscriptions(g: &Group) -> Option<HashSet<String>> {
    use kafka_protocol::messages::ConsumerProtocolSubscription;
    use kafka_protocol::protocol::Decodable;
    let protocol = g.protocol_name.clone().unwrap_or_default();
    let mut topics = HashSet::new();
    for m in g.members.values() {
        let mut meta = m.metadata_for(&protocol);
        if meta.len() < 2 {
            return None;
        }
        let version = i16::from_be_bytes([meta[0], meta[1]]);
        bytes::Buf::advance(&mut meta, 2);
        let sub = ConsumerProtocolSubscription::decode(&mut meta, version.clamp(0, 3)).ok()?;
        topics.extend(sub.topics.iter().map(|t| t.to_string()));
    }
    Some(topics)
}

fn describe(g: &Group) -> GroupDescription {
    let protocol = g.protocol_name.clone().unwrap_or_default();
    GroupDescription {
        group_id: g.group_id.clone(),
        state: g.state,
        protocol_type: g.protocol_type.clone().unwrap_or_default(),
        protocol_name: if g.state == GroupState::Stable
            || g.state == GroupState::CompletingRebalance
        {
            protocol.clone()
        } else {
            String::new()
        },
        members: g
            .members
            .values()
            .map(|m| MemberDescription {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                metadata: m.metadata_for(&protocol),
                assignment: m.assignment.clone(),
            })
            .collect(),
    }
}
