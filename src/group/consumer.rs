//! KIP-848 consumer groups (`group.protocol=consumer`): the broker computes the assignment
//! and hands each member its partitions through ConsumerGroupHeartbeat, revoking before it
//! reassigns, so no partition is ever owned by two members.
//!
//! Per group: a group epoch that moves when membership, subscriptions or the subscribed
//! topics' partitions change; a target assignment computed by a server-side assignor
//! (`uniform`, sticky and balanced, or `range`) for that epoch; and per member the
//! partitions it was given, those it still has to give up, and its member epoch, which
//! reaches the group's epoch once the member has revoked what it no longer owns. State is
//! in memory; in cluster mode every change is also written to the group's partition of
//! `__consumer_offsets` in Kafka's records (see [`super::consumer_journal`]), and a
//! heartbeat is answered once the in-sync replicas have it, so a new coordinator takes the
//! group over as it was. On a single node members rejoin after a restart.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::consumer_journal::{self, ConsumerRecord, CurrentAssignment, MemberMeta};
use super::journal::{JournalWrite, OffsetJournal};
use crate::metadata::Metadata;

/// A partition by topic id, as the consumer protocol names them.
pub type Tp = (Uuid, i32);

/// The server-side assignors, under Kafka's names; `uniform` is the default.
pub const ASSIGNORS: [&str; 2] = ["uniform", "range"];

/// Timeouts of consumer groups (Kafka's `group.consumer.*` broker configs).
#[derive(Debug, Clone, Copy)]
pub struct ConsumerGroupConfig {
    pub heartbeat_interval_ms: i32,
    pub session_timeout_ms: i32,
    /// Kafka's `group.consumer.max.size`: members one group may hold.
    pub max_size: usize,
}

/// One member as the heartbeat left it.
#[derive(Debug, Clone)]
pub struct Member {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub member_epoch: i32,
    previous_epoch: i32,
    /// Every topic the member subscribes to: its names plus what its regex matches.
    pub topics: BTreeSet<String>,
    /// The topic names the member itself sent, as ConsumerGroupDescribe reports them (a
    /// regex-only member has none; Kafka does not list what the regex resolved to).
    pub subscribed_names: BTreeSet<String>,
    pub regex: Option<String>,
    pub server_assignor: Option<String>,
    rebalance_timeout_ms: i32,
    /// The partitions the member was given and has not given back.
    pub assigned: BTreeSet<Tp>,
    /// Partitions taken from it that it has not confirmed giving up.
    revoking: BTreeSet<Tp>,
    /// The assignment last sent, so unchanged assignments are not sent again.
    last_sent: Option<BTreeSet<Tp>>,
    last_heartbeat: Instant,
    revoke_deadline: Option<Instant>,
    /// A static member that left with epoch -2: its partitions stay reserved for its
    /// instance id until the session timeout.
    left_static: bool,
}

/// One consumer group.
#[derive(Debug, Default)]
pub struct ConsumerGroup {
    pub group_id: String,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: String,
    pub members: BTreeMap<String, Member>,
    /// Target assignment of `assignment_epoch`, by member id.
    pub target: HashMap<String, BTreeSet<Tp>>,
    /// Hash of what the target depends on (members, subscriptions, partition counts).
    fingerprint: u64,
    /// What the journal was last told about the group (cluster mode).
    journaled: Image,
}

/// A group as its KIP-848 records describe it: compared with the group after a change, it
/// gives the records to write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Image {
    epoch: i32,
    target_epoch: i32,
    members: BTreeMap<String, MemberImage>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct MemberImage {
    meta: MemberMeta,
    target: BTreeSet<Tp>,
    current: CurrentAssignment,
}

impl Image {
    fn of(g: &ConsumerGroup) -> Image {
        let members = g
            .members
            .values()
            .map(|m| {
                let target = g.target.get(&m.member_id).cloned().unwrap_or_default();
                // Kafka's MemberState: 1 while it holds partitions to give up, 2 while it
                // waits for partitions others still hold, else 0 (stable).
                let state = if !m.revoking.is_empty() {
                    1
                } else if m.assigned != target {
                    2
                } else {
                    0
                };
                let image = MemberImage {
                    meta: MemberMeta {
                        instance_id: m.instance_id.clone(),
                        rack_id: m.rack_id.clone(),
                        client_id: m.client_id.clone(),
                        client_host: m.client_host.clone(),
                        topic_names: m.subscribed_names.clone(),
                        regex: m.regex.clone(),
                        rebalance_timeout_ms: m.rebalance_timeout_ms,
                        server_assignor: m.server_assignor.clone(),
                    },
                    target,
                    current: CurrentAssignment {
                        member_epoch: m.member_epoch,
                        previous_epoch: m.previous_epoch,
                        state,
                        assigned: m.assigned.clone(),
                        revoking: m.revoking.clone(),
                    },
                };
                (m.member_id.clone(), image)
            })
            .collect();
        Image {
            epoch: g.group_epoch,
            target_epoch: g.assignment_epoch,
            members,
        }
    }

    /// The records that turn `self` (what the journal holds) into `new`, in Kafka's order:
    /// subscriptions and the group epoch, then the target, then current assignments.
    fn changes(&self, new: &Image) -> Vec<ConsumerRecord> {
        let mut out = Vec::new();
        for (id, m) in &self.members {
            if !new.members.contains_key(id) {
                out.push(ConsumerRecord::Current(id.clone(), None));
                out.push(ConsumerRecord::Target(id.clone(), None));
                out.push(ConsumerRecord::Member(id.clone(), None));
            } else if !m.target.is_empty() && new.members[id].target.is_empty() {
                out.push(ConsumerRecord::Target(id.clone(), None));
            }
        }
        for (id, m) in &new.members {
            if self.members.get(id).map(|o| &o.meta) != Some(&m.meta) {
                out.push(ConsumerRecord::Member(id.clone(), Some(m.meta.clone())));
            }
        }
        if self.epoch != new.epoch {
            out.push(ConsumerRecord::GroupEpoch(Some(new.epoch)));
        }
        for (id, m) in &new.members {
            let old = self.members.get(id).map(|o| &o.target);
            if !m.target.is_empty() && old != Some(&m.target) {
                out.push(ConsumerRecord::Target(id.clone(), Some(m.target.clone())));
            }
        }
        if self.target_epoch != new.target_epoch {
            out.push(ConsumerRecord::TargetEpoch(Some(new.target_epoch)));
        }
        for (id, m) in &new.members {
            if self.members.get(id).map(|o| &o.current) != Some(&m.current) {
                out.push(ConsumerRecord::Current(id.clone(), Some(m.current.clone())));
            }
        }
        out
    }
}

impl ConsumerGroup {
    /// Kafka's consumer group states.
    pub fn state(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.group_epoch > self.assignment_epoch {
            "Assigning"
        } else if self.members.values().any(|m| {
            m.member_epoch != self.assignment_epoch
                || !m.revoking.is_empty()
                || self.target.get(&m.member_id) != Some(&m.assigned)
        }) {
            "Reconciling"
        } else {
            "Stable"
        }
    }
}

/// What a heartbeat asked for.
pub struct Heartbeat {
    pub group_id: String,
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub topics: Option<Vec<String>>,
    pub regex: Option<String>,
    pub server_assignor: Option<String>,
    /// The partitions the client says it owns (sent when they changed).
    pub owned: Option<BTreeSet<Tp>>,
    pub client_id: String,
    pub client_host: String,
}

/// The heartbeat's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatReply {
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// None: unchanged since the last answer.
    pub assignment: Option<BTreeSet<Tp>>,
}

/// The consumer groups of this broker.
///
/// It exists so KIP-848 clients get server-side assignment with Kafka's reconciliation
/// rules, next to (and exclusive with) the classic groups of `GroupCoordinator`.
pub struct ConsumerGroups {
    config: ConsumerGroupConfig,
    groups: Mutex<HashMap<String, ConsumerGroup>>,
    /// Cluster mode: where the groups' records go (the groups' partitions).
    journal: OnceLock<Arc<dyn OffsetJournal>>,
    /// Per-group `consumer.session.timeout.ms` and `consumer.heartbeat.interval.ms`.
    group_configs: OnceLock<Arc<super::config::GroupConfigs>>,
}

fn fail(e: ResponseError, message: impl Into<String>) -> (ResponseError, Option<String>) {
    (e, Some(message.into()))
}

impl ConsumerGroups {
    pub fn new(config: ConsumerGroupConfig) -> ConsumerGroups {
        ConsumerGroups {
            config,
            groups: Mutex::new(HashMap::new()),
            journal: OnceLock::new(),
            group_configs: OnceLock::new(),
        }
    }

    /// From now on a group's own session timeout and heartbeat interval, where set, win
    /// over the broker's.
    pub fn set_group_configs(&self, c: Arc<super::config::GroupConfigs>) {
        let _ = self.group_configs.set(c);
    }

    /// A group's (session timeout, heartbeat interval) in milliseconds.
    fn timeouts(&self, group_id: &str) -> (i32, i32) {
        match self.group_configs.get() {
            Some(c) => {
                let e = c.effective(group_id);
                (
                    e.consumer_session_timeout_ms,
                    e.consumer_heartbeat_interval_ms,
                )
            }
            None => (
                self.config.session_timeout_ms,
                self.config.heartbeat_interval_ms,
            ),
        }
    }

    /// Cluster mode: changes are appended to the groups' partitions from now on.
    pub fn set_journal(&self, j: Arc<dyn OffsetJournal>) {
        let _ = self.journal.set(j);
    }

    /// Appends what changed in `g` since its last write; None when nothing did or there
    /// is no journal. Called with the groups locked, so appends follow the changes' order.
    fn journal(&self, g: &mut ConsumerGroup) -> Option<JournalWrite> {
        let j = self.journal.get()?;
        let now = Image::of(g);
        let records = g.journaled.changes(&now);
        if records.is_empty() {
            return None;
        }
        g.journaled = now;
        self.append(j.as_ref(), &g.group_id, &records)
    }

    fn append(
        &self,
        j: &dyn OffsetJournal,
        group: &str,
        records: &[ConsumerRecord],
    ) -> Option<JournalWrite> {
        let encoded = records
            .iter()
            .map(|r| consumer_journal::encode(group, r))
            .collect();
        match j.append(group, None, encoded) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::debug!(group, error = ?e, "consumer group change not journaled");
                None
            }
        }
    }

    /// A removed group's tombstones: every record it had, then its epochs.
    fn journal_removal(&self, g: &ConsumerGroup) {
        let Some(j) = self.journal.get() else { return };
        let mut records = g.journaled.changes(&Image::default());
        records.retain(|r| {
            !matches!(
                r,
                ConsumerRecord::GroupEpoch(_) | ConsumerRecord::TargetEpoch(_)
            )
        });
        records.push(ConsumerRecord::TargetEpoch(None));
        records.push(ConsumerRecord::GroupEpoch(None));
        drop(self.append(j.as_ref(), &g.group_id, &records));
    }

    /// Cluster mode, a new term's load: the consumer groups `pick` selects become what
    /// their records say, members with fresh sessions keeping their epochs and partitions.
    pub fn load(
        &self,
        metadata: &Metadata,
        pick: impl Fn(&str) -> bool,
        records: BTreeMap<String, Vec<ConsumerRecord>>,
    ) -> usize {
        let now = Instant::now();
        let mut groups = self.lock();
        groups.retain(|id, _| !pick(id));
        let mut n = 0;
        for (id, recs) in records {
            let Some(mut g) = restore(&id, recs, metadata, now) else {
                continue;
            };
            g.journaled = Image::of(&g);
            groups.insert(id, g);
            n += 1;
        }
        n
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, HashMap<String, ConsumerGroup>> {
        self.groups.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Kafka's `ConsumerGroup.validateOffsetFetch`: an OffsetFetch naming no member with a
    /// negative epoch (an admin, or a consumer outside group management) passes; otherwise
    /// the member must exist (UNKNOWN_MEMBER_ID) and fetch with its current epoch
    /// (STALE_MEMBER_EPOCH). None when no such group exists.
    pub fn check_fetch(
        &self,
        group_id: &str,
        member_id: Option<&str>,
        epoch: i32,
    ) -> Option<Result<(), ResponseError>> {
        let groups = self.lock();
        let g = groups.get(group_id)?;
        Some(crate::group::check_member_fetch(member_id, epoch, |id| {
            g.members.get(id).map(|m| m.member_epoch)
        }))
    }

    /// True when `group_id` is a consumer group with members (classic joins are refused).
    pub fn has_members(&self, group_id: &str) -> bool {
        self.lock()
            .get(group_id)
            .is_some_and(|g| !g.members.is_empty())
    }

    /// Drops the groups `pick` selects (see `GroupCoordinator::unload`); members rejoin
    /// with epoch 0 after UNKNOWN_MEMBER_ID, as after a restart.
    pub fn unload(&self, pick: impl Fn(&str) -> bool) -> usize {
        let mut groups = self.lock();
        let before = groups.len();
        groups.retain(|id, _| !pick(id));
        before - groups.len()
    }

    pub fn exists(&self, group_id: &str) -> bool {
        self.lock().contains_key(group_id)
    }

    pub fn describe(&self, group_id: &str) -> Option<ConsumerGroupView> {
        self.lock().get(group_id).map(view)
    }

    pub fn list(&self) -> Vec<ConsumerGroupView> {
        let mut out: Vec<_> = self.lock().values().map(view).collect();
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    /// Every topic a consumer group's members subscribe to, None when no such group
    /// exists: offsets of other topics expire with `offsets.retention.minutes`.
    pub fn subscribed_topics(&self, group_id: &str) -> Option<std::collections::HashSet<String>> {
        let groups = self.lock();
        let g = groups.get(group_id)?;
        Some(
            g.members
                .values()
                .flat_map(|m| m.topics.iter().cloned())
                .collect(),
        )
    }

    /// Removes a consumer group with no members if `also` holds, both decided with the
    /// groups held (the expiry of an empty group whose offsets are gone); false when it has
    /// members, does not exist, or `also` says no.
    pub fn remove_if_empty_and(&self, group_id: &str, also: impl FnOnce() -> bool) -> bool {
        let mut groups = self.lock();
        if groups.get(group_id).is_some_and(|g| g.members.is_empty()) && also() {
            if let Some(g) = groups.remove(group_id) {
                self.journal_removal(&g);
            }
            return true;
        }
        false
    }

    /// Ids of consumer groups with no members.
    pub fn empty_group_ids(&self) -> Vec<String> {
        self.lock()
            .values()
            .filter(|g| g.members.is_empty())
            .map(|g| g.group_id.clone())
            .collect()
    }

    /// Deletes an empty group (NON_EMPTY_GROUP while it has members).
    pub fn delete(&self, group_id: &str) -> Option<Result<(), ResponseError>> {
        let mut groups = self.lock();
        let g = groups.get(group_id)?;
        if !g.members.is_empty() {
            return Some(Err(ResponseError::NonEmptyGroup));
        }
        if let Some(g) = groups.remove(group_id) {
            self.journal_removal(&g);
        }
        Some(Ok(()))
    }

    /// Removes members whose session expired or who did not revoke in time; their
    /// partitions go to the others at their next heartbeat.
    pub fn expire(&self, now: Instant) {
        let mut groups = self.lock();
        for g in groups.values_mut() {
            let session = Duration::from_millis(self.timeouts(&g.group_id).0.max(0) as u64);
            let gone: Vec<String> = g
                .members
                .values()
                .filter(|m| {
                    now.duration_since(m.last_heartbeat) > session
                        || m.revoke_deadline.is_some_and(|d| now > d)
                })
                .map(|m| m.member_id.clone())
                .collect();
            let any = !gone.is_empty();
            for id in gone {
                tracing::info!(group = %g.group_id, member = %id, "consumer group member expired");
                g.members.remove(&id);
                g.target.remove(&id);
            }
            if any {
                drop(self.journal(g));
            }
        }
    }

    /// ConsumerGroupHeartbeat. In cluster mode the reply comes with the journal write of
    /// what the heartbeat changed: the caller answers once it is replicated.
    pub fn heartbeat(
        &self,
        metadata: &Metadata,
        hb: Heartbeat,
    ) -> Result<(HeartbeatReply, Option<JournalWrite>), (ResponseError, Option<String>)> {
        let group_id = hb.group_id.clone();
        let mut groups = self.lock();
        let existed = groups.contains_key(&group_id);
        match self.heartbeat_inner(&mut groups, metadata, hb) {
            Ok(reply) => {
                let write = groups.get_mut(&group_id).and_then(|g| self.journal(g));
                Ok((reply, write))
            }
            Err(e) => {
                // A refused request leaves no group behind (it would show in ListGroups).
                if !existed && groups.get(&group_id).is_some_and(|g| g.members.is_empty()) {
                    groups.remove(&group_id);
                }
                Err(e)
            }
        }
    }

    fn heartbeat_inner(
        &self,
        groups: &mut HashMap<String, ConsumerGroup>,
        metadata: &Metadata,
        hb: Heartbeat,
    ) -> Result<HeartbeatReply, (ResponseError, Option<String>)> {
        if hb.group_id.is_empty() {
            return Err(fail(
                ResponseError::InvalidRequest,
                "GroupId can't be empty.",
            ));
        }
        if hb.group_id.len() > super::GROUP_ID_MAX_BYTES {
            return Err(fail(
                ResponseError::InvalidGroupId,
                "GroupId is longer than 32767 bytes.",
            ));
        }
        // Ids the group keeps per member: bounded as Kafka's records bound them (an i16
        // length), so one member cannot make the broker hold a 100 MB id.
        for (name, value) in [
            ("MemberId", Some(&hb.member_id)),
            ("InstanceId", hb.instance_id.as_ref()),
            ("RackId", hb.rack_id.as_ref()),
            ("SubscribedTopicRegex", hb.regex.as_ref()),
        ] {
            if value.is_some_and(|v| v.len() > super::GROUP_ID_MAX_BYTES) {
                return Err(fail(
                    ResponseError::InvalidRequest,
                    format!("{name} is longer than 32767 bytes."),
                ));
            }
        }
        if let Some(a) = &hb.server_assignor {
            if !ASSIGNORS.contains(&a.as_str()) {
                return Err(fail(
                    ResponseError::UnsupportedAssignor,
                    format!(
                        "ServerAssignor {a} is not supported. Supported assignors: uniform, range."
                    ),
                ));
            }
        }
        if let Some(r) = hb.regex.as_deref().filter(|r| !r.is_empty()) {
            regex::Regex::new(&format!("^(?:{r})$")).map_err(|e| {
                fail(
                    ResponseError::InvalidRegularExpression,
                    format!("SubscribedTopicRegex {r} is invalid: {e}"),
                )
            })?;
        }
        let now = Instant::now();
        let g = groups
            .entry(hb.group_id.clone())
            .or_insert_with(|| ConsumerGroup {
                group_id: hb.group_id.clone(),
                assignor: ASSIGNORS[0].to_string(),
                ..Default::default()
            });

        // Leaving (-1): its partitions are freed. A static member leaving for now (-2) keeps
        // them reserved for its instance id until its session times out.
        if hb.member_epoch < 0 {
            if hb.member_epoch != -1 && hb.member_epoch != -2 {
                return Err(fail(
                    ResponseError::InvalidRequest,
                    "MemberEpoch is invalid.",
                ));
            }
            let Some(m) = g.members.get_mut(&hb.member_id) else {
                return Err(fail(ResponseError::UnknownMemberId, "unknown member"));
            };
            if hb.member_epoch == -2 && m.instance_id.is_some() {
                m.left_static = true;
            } else {
                g.members.remove(&hb.member_id);
                g.target.remove(&hb.member_id);
            }
            return Ok(HeartbeatReply {
                member_id: hb.member_id,
                member_epoch: hb.member_epoch,
                heartbeat_interval_ms: 0,
                assignment: None,
            });
        }

        let member_id = if hb.member_epoch == 0 {
            if hb.rebalance_timeout_ms < 0 && hb.rebalance_timeout_ms != -1 {
                return Err(fail(
                    ResponseError::InvalidRequest,
                    "RebalanceTimeoutMs is invalid.",
                ));
            }
            if hb.topics.is_none() && hb.regex.is_none() {
                return Err(fail(
                    ResponseError::InvalidRequest,
                    "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.",
                ));
            }
            let id = if hb.member_id.is_empty() {
                Uuid::new_v4().to_string()
            } else {
                hb.member_id.clone()
            };
            // A static member coming back takes over its previous incarnation's partitions
            // (no rebalance) once that one left with -2; while it is active, the instance id
            // is not released (UNRELEASED_INSTANCE_ID, as Kafka answers).
            let mut inherited = None;
            if let Some(inst) = &hb.instance_id {
                let old = g
                    .members
                    .values()
                    .find(|m| m.instance_id.as_ref() == Some(inst) && m.member_id != id)
                    .map(|m| (m.member_id.clone(), m.left_static));
                match old {
                    Some((_, false)) => {
                        return Err(fail(
                            ResponseError::UnreleasedInstanceId,
                            format!("Static member with instance id {inst} is not released yet."),
                        ))
                    }
                    Some((o, true)) => {
                        let m = g.members.remove(&o).expect("found above");
                        if let Some(t) = g.target.remove(&o) {
                            g.target.insert(id.clone(), t);
                        }
                        inherited = Some((m.assigned, m.member_epoch));
                    }
                    None => {}
                }
            }
            if inherited.is_none()
                && !g.members.contains_key(&id)
                && g.members.len() >= self.config.max_size
            {
                return Err(fail(
                    ResponseError::GroupMaxSizeReached,
                    format!(
                        "The consumer group has reached its maximum capacity of {} members.",
                        self.config.max_size
                    ),
                ));
            }
            let rejoining = g.members.remove(&id);
            g.members.insert(
                id.clone(),
                Member {
                    member_id: id.clone(),
                    instance_id: hb.instance_id.clone(),
                    rack_id: hb.rack_id.clone(),
                    client_id: hb.client_id.clone(),
                    client_host: hb.client_host.clone(),
                    member_epoch: inherited.as_ref().map_or(0, |i| i.1),
                    previous_epoch: -1,
                    topics: BTreeSet::new(),
                    subscribed_names: BTreeSet::new(),
                    regex: None,
                    server_assignor: None,
                    rebalance_timeout_ms: if hb.rebalance_timeout_ms > 0 {
                        hb.rebalance_timeout_ms
                    } else {
                        300_000
                    },
                    // A member rejoining with epoch 0 owns nothing any more, unless it is a
                    // static member taking its partitions back.
                    assigned: inherited.map(|i| i.0).unwrap_or_default(),
                    revoking: BTreeSet::new(),
                    last_sent: None,
                    last_heartbeat: now,
                    revoke_deadline: None,
                    left_static: false,
                },
            );
            drop(rejoining);
            id
        } else {
            let Some(m) = g.members.get(&hb.member_id) else {
                return Err(fail(
                    ResponseError::UnknownMemberId,
                    format!(
                        "Member {} is not a member of group {}.",
                        hb.member_id, hb.group_id
                    ),
                ));
            };
            if hb.member_epoch != m.member_epoch && hb.member_epoch != m.previous_epoch {
                return Err(fail(
                    ResponseError::FencedMemberEpoch,
                    format!(
                        "The member epoch {} does not match the expected epoch {}.",
                        hb.member_epoch, m.member_epoch
                    ),
                ));
            }
            hb.member_id.clone()
        };

        {
            let m = g
                .members
                .get_mut(&member_id)
                .expect("member just found or added");
            m.last_heartbeat = now;
            m.client_id = hb.client_id.clone();
            if let Some(t) = &hb.topics {
                m.subscribed_names = t.iter().cloned().collect();
            }
            if hb.regex.is_some() {
                m.regex = hb.regex.clone().filter(|r| !r.is_empty());
            }
            if hb.server_assignor.is_some() {
                m.server_assignor = hb.server_assignor.clone();
            }
            if hb.rebalance_timeout_ms > 0 {
                m.rebalance_timeout_ms = hb.rebalance_timeout_ms;
            }
            if hb.member_epoch != 0 && hb.member_epoch == m.previous_epoch {
                m.last_sent = None; // the last answer was lost: send it again
            }
            // The client owns what it reports: revocations it completed are confirmed.
            if let Some(owned) = &hb.owned {
                if !m.revoking.is_empty() && m.revoking.is_disjoint(owned) {
                    m.revoking.clear();
                    m.revoke_deadline = None;
                }
                if owned != &m.assigned && m.revoking.is_empty() {
                    m.last_sent = None;
                }
            }
            // As Kafka: the names (kept when a heartbeat leaves them out) and what the
            // regex matches now, so topics created or deleted since move in or out.
            m.topics = resolve_topics(&m.subscribed_names, m.regex.as_deref(), metadata);
        }

        refresh_target(g, metadata);
        let interval = self.timeouts(&g.group_id).1;
        let reply = reconcile(g, &member_id, now, interval);
        Ok(reply)
    }
}

/// Recomputes the target assignment when what it depends on changed (a new group epoch).
fn refresh_target(g: &mut ConsumerGroup, metadata: &Metadata) {
    let (topics, fingerprint) = subscribed(g, metadata);
    if fingerprint == g.fingerprint && g.assignment_epoch == g.group_epoch && g.group_epoch > 0 {
        return;
    }
    g.fingerprint = fingerprint;
    g.group_epoch += 1;
    g.assignor = vote_assignor(g);
    let subs: BTreeMap<String, BTreeSet<String>> = g
        .members
        .values()
        .map(|m| (m.member_id.clone(), m.topics.clone()))
        .collect();
    g.target = if g.assignor == "range" {
        range_assign(&subs, &topics)
    } else {
        uniform_assign(&subs, &topics, &g.target)
    };
    g.assignment_epoch = g.group_epoch;
}

/// The subscribed topics that exist (id, partition count) and a hash of everything the
/// target assignment depends on: members, subscriptions, assignors, partition counts.
fn subscribed(g: &ConsumerGroup, metadata: &Metadata) -> (BTreeMap<String, (Uuid, i32)>, u64) {
    let mut topics: BTreeMap<String, (Uuid, i32)> = BTreeMap::new();
    for m in g.members.values() {
        for t in &m.topics {
            if let Some(tp) = metadata.topic(t) {
                topics.insert(t.clone(), (tp.id, tp.partitions.len() as i32));
            }
        }
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for m in g.members.values() {
        m.member_id.hash(&mut h);
        m.topics.hash(&mut h);
        m.server_assignor.hash(&mut h);
    }
    topics.hash(&mut h);
    (topics, h.finish())
}

/// The topics a member subscribes to: the names it sent plus what its regex matches now.
fn resolve_topics(
    names: &BTreeSet<String>,
    regex: Option<&str>,
    metadata: &Metadata,
) -> BTreeSet<String> {
    let mut topics = names.clone();
    if let Some(Ok(re)) = regex.map(|r| regex::Regex::new(&format!("^(?:{r})$"))) {
        topics.extend(
            metadata
                .topics()
                .iter()
                .map(|t| t.name.to_string())
                .filter(|n| re.is_match(n)),
        );
    }
    topics
}

/// A group rebuilt from its records in log order; None when the last word was its
/// deletion (or it never had an epoch).
fn restore(
    id: &str,
    records: Vec<ConsumerRecord>,
    metadata: &Metadata,
    now: Instant,
) -> Option<ConsumerGroup> {
    let mut epoch = None;
    let mut target_epoch = 0;
    let mut metas: BTreeMap<String, MemberMeta> = BTreeMap::new();
    let mut targets: HashMap<String, BTreeSet<Tp>> = HashMap::new();
    let mut currents: BTreeMap<String, CurrentAssignment> = BTreeMap::new();
    for r in records {
        match r {
            ConsumerRecord::GroupEpoch(None) => {
                epoch = None;
                target_epoch = 0;
                metas.clear();
                targets.clear();
                currents.clear();
            }
            ConsumerRecord::GroupEpoch(Some(e)) => epoch = Some(e),
            ConsumerRecord::TargetEpoch(e) => target_epoch = e.unwrap_or(0),
            ConsumerRecord::Member(m, Some(meta)) => {
                metas.insert(m, meta);
            }
            ConsumerRecord::Member(m, None) => {
                metas.remove(&m);
            }
            ConsumerRecord::Target(m, Some(t)) => {
                targets.insert(m, t);
            }
            ConsumerRecord::Target(m, None) => {
                targets.remove(&m);
            }
            ConsumerRecord::Current(m, Some(c)) => {
                currents.insert(m, c);
            }
            ConsumerRecord::Current(m, None) => {
                currents.remove(&m);
            }
        }
    }
    let mut g = ConsumerGroup {
        group_id: id.to_string(),
        group_epoch: epoch?,
        assignment_epoch: target_epoch,
        assignor: ASSIGNORS[0].to_string(),
        ..Default::default()
    };
    targets.retain(|m, _| metas.contains_key(m));
    g.target = targets;
    for (member_id, meta) in metas {
        let current = currents.remove(&member_id).unwrap_or_default();
        let revoke_deadline = (!current.revoking.is_empty())
            .then(|| now + Duration::from_millis(meta.rebalance_timeout_ms.max(0) as u64));
        let m = Member {
            member_id: member_id.clone(),
            topics: resolve_topics(&meta.topic_names, meta.regex.as_deref(), metadata),
            subscribed_names: meta.topic_names,
            instance_id: meta.instance_id,
            rack_id: meta.rack_id,
            client_id: meta.client_id,
            client_host: meta.client_host,
            member_epoch: current.member_epoch,
            previous_epoch: current.previous_epoch,
            regex: meta.regex,
            server_assignor: meta.server_assignor,
            rebalance_timeout_ms: meta.rebalance_timeout_ms,
            assigned: current.assigned,
            revoking: current.revoking,
            last_sent: None,
            last_heartbeat: now,
            revoke_deadline,
            left_static: false,
        };
        g.members.insert(member_id, m);
    }
    g.assignor = vote_assignor(&g);
    g.fingerprint = subscribed(&g, metadata).1;
    Some(g)
}

/// The assignor most members ask for, else the default.
fn vote_assignor(g: &ConsumerGroup) -> String {
    let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
    for m in g.members.values() {
        if let Some(a) = &m.server_assignor {
            *votes.entry(a.as_str()).or_default() += 1;
        }
    }
    votes
        .iter()
        .max_by_key(|(name, n)| (**n, std::cmp::Reverse(**name)))
        .map_or(ASSIGNORS[0], |(name, _)| name)
        .to_string()
}

/// Moves one member towards its target: first it gives up what it must (keeping its
/// epoch), then it reaches the assignment epoch and gets every target partition no other
/// member still holds.
fn reconcile(
    g: &mut ConsumerGroup,
    member_id: &str,
    now: Instant,
    interval: i32,
) -> HeartbeatReply {
    let target = g.target.get(member_id).cloned().unwrap_or_default();
    let held_by_others: BTreeSet<Tp> = g
        .members
        .values()
        .filter(|o| o.member_id != member_id)
        .flat_map(|o| o.assigned.iter().chain(o.revoking.iter()).copied())
        .collect();
    let assignment_epoch = g.assignment_epoch;
    let m = g.members.get_mut(member_id).expect("member exists");
    if m.revoking.is_empty() {
        let to_revoke: BTreeSet<Tp> = m.assigned.difference(&target).copied().collect();
        if !to_revoke.is_empty() {
            m.assigned = m.assigned.intersection(&target).copied().collect();
            m.revoking = to_revoke;
            m.revoke_deadline =
                Some(now + Duration::from_millis(m.rebalance_timeout_ms.max(0) as u64));
        } else {
            if m.member_epoch != assignment_epoch {
                m.previous_epoch = m.member_epoch;
                m.member_epoch = assignment_epoch;
            }
            m.assigned = target.difference(&held_by_others).copied().collect();
        }
    }
    let assignment = if m.last_sent.as_ref() != Some(&m.assigned) {
        m.last_sent = Some(m.assigned.clone());
        Some(m.assigned.clone())
    } else {
        None
    };
    HeartbeatReply {
        member_id: member_id.to_string(),
        member_epoch: m.member_epoch,
        heartbeat_interval_ms: interval,
        assignment,
    }
}

fn partitions_of(topics: &BTreeMap<String, (Uuid, i32)>, topic: &str) -> Vec<Tp> {
    topics
        .get(topic)
        .map(|(id, n)| (0..*n).map(|p| (*id, p)).collect())
        .unwrap_or_default()
}

/// Kafka's range assignor, server side: per topic, contiguous ranges to the subscribed
/// members in member-id order, the first ones one partition more.
fn range_assign(
    subs: &BTreeMap<String, BTreeSet<String>>,
    topics: &BTreeMap<String, (Uuid, i32)>,
) -> HashMap<String, BTreeSet<Tp>> {
    let mut out: HashMap<String, BTreeSet<Tp>> =
        subs.keys().map(|m| (m.clone(), BTreeSet::new())).collect();
    for topic in topics.keys() {
        let members: Vec<&String> = subs
            .iter()
            .filter(|(_, ts)| ts.contains(topic))
            .map(|(m, _)| m)
            .collect();
        if members.is_empty() {
            continue;
        }
        let parts = partitions_of(topics, topic);
        let (base, extra) = (parts.len() / members.len(), parts.len() % members.len());
        let mut at = 0;
        for (i, m) in members.iter().enumerate() {
            let n = base + usize::from(i < extra);
            out.entry((*m).clone())
                .or_default()
                .extend(parts[at..at + n].iter().copied());
            at += n;
        }
    }
    out
}

/// The uniform assignor: balanced (counts differ by at most one among members with the
/// same subscription) and sticky (a member keeps what it had while within its share).
fn uniform_assign(
    subs: &BTreeMap<String, BTreeSet<String>>,
    topics: &BTreeMap<String, (Uuid, i32)>,
    previous: &HashMap<String, BTreeSet<Tp>>,
) -> HashMap<String, BTreeSet<Tp>> {
    let mut out: HashMap<String, BTreeSet<Tp>> =
        subs.keys().map(|m| (m.clone(), BTreeSet::new())).collect();
    let topic_of: HashMap<Uuid, &String> = topics.iter().map(|(n, (id, _))| (*id, n)).collect();
    let all: Vec<Tp> = topics
        .keys()
        .flat_map(|t| partitions_of(topics, t))
        .collect();
    let members = subs.len().max(1);
    let (floor, mut extra) = (all.len() / members, all.len() % members);
    let mut taken: BTreeSet<Tp> = BTreeSet::new();
    for (m, ts) in subs {
        let mut keep: Vec<Tp> = previous
            .get(m)
            .into_iter()
            .flatten()
            .filter(|tp| {
                topic_of.get(&tp.0).is_some_and(|t| ts.contains(*t))
                    && topics.get(topic_of[&tp.0]).is_some_and(|(_, n)| tp.1 < *n)
            })
            .copied()
            .collect();
        let mut allowed = floor;
        if keep.len() > floor && extra > 0 {
            allowed += 1;
            extra -= 1;
        }
        keep.truncate(allowed);
        for tp in keep {
            if taken.insert(tp) {
                out.get_mut(m).expect("member").insert(tp);
            }
        }
    }
    for tp in all {
        if taken.contains(&tp) {
            continue;
        }
        let topic = topic_of[&tp.0];
        if let Some(m) = subs
            .iter()
            .filter(|(_, ts)| ts.contains(topic))
            .map(|(m, _)| m)
            .min_by_key(|m| (out[*m].len(), (*m).clone()))
        {
            out.get_mut(m).expect("member").insert(tp);
            taken.insert(tp);
        }
    }
    out
}

/// A group as ConsumerGroupDescribe and ListGroups report it.
#[derive(Debug, Clone)]
pub struct ConsumerGroupView {
    pub group_id: String,
    pub state: &'static str,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: String,
    pub members: Vec<Member>,
    pub target: HashMap<String, BTreeSet<Tp>>,
}

fn view(g: &ConsumerGroup) -> ConsumerGroupView {
    ConsumerGroupView {
        group_id: g.group_id.clone(),
        state: g.state(),
        group_epoch: g.group_epoch,
        assignment_epoch: g.assignment_epoch,
        assignor: g.assignor.clone(),
        members: g.members.values().cloned().collect(),
        target: g.target.clone(),
    }
}

/// A consumer group's checks of a commit's member fields (Kafka's
/// `ConsumerGroup.validateOffsetCommit`), with the groups map held by the caller; None when
/// no such group exists. The member must exist and commit with its current epoch, or with an
/// older one for partitions it still owns (a commit sent while a rebalance gave it a new
/// epoch, as Kafka 4.4 accepts); STALE_MEMBER_EPOCH otherwise.
pub(super) fn check_commit_in(
    groups: &HashMap<String, ConsumerGroup>,
    c: &super::CommitCheck,
) -> Option<Result<(), ResponseError>> {
    let (group_id, member_id, epoch) = (c.group_id, c.member_id, c.generation_or_epoch);
    let (instance_id, partitions) = (c.instance_id, c.partitions);
    let (transactional, version) = (c.transactional, c.version);
    let g = groups.get(group_id)?;
    // An admin's (or assign()-only consumer's) commit to a group with no members.
    if epoch < 0 && g.members.is_empty() {
        return Some(Ok(()));
    }
    // TxnOffsetCommit's member fields are optional: validated only when given.
    if transactional && epoch == -1 && member_id.is_empty() && instance_id.is_none() {
        return Some(Ok(()));
    }
    let Some(m) = g.members.get(member_id) else {
        return Some(Err(ResponseError::UnknownMemberId));
    };
    if !transactional && version < 9 {
        // Kafka: "OffsetCommit version 9 or above must be used by members using the
        // modern group protocol".
        return Some(Err(ResponseError::UnsupportedVersion));
    }
    let owned = !partitions.is_empty() && partitions.iter().all(|tp| m.assigned.contains(tp));
    Some(
        if m.member_epoch == epoch || (epoch > 0 && epoch < m.member_epoch && owned) {
            Ok(())
        } else if transactional && version < 6 {
            // Kafka's validateTransactionalOffsetCommit: STALE_MEMBER_EPOCH only from
            // TxnOffsetCommit v6 (KIP-1319), ILLEGAL_GENERATION before.
            Err(ResponseError::IllegalGeneration)
        } else {
            Err(ResponseError::StaleMemberEpoch)
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics(spec: &[(&str, i32)]) -> BTreeMap<String, (Uuid, i32)> {
        spec.iter()
            .map(|(n, p)| (n.to_string(), (Uuid::new_v4(), *p)))
            .collect()
    }

    fn subs(members: &[&str], t: &[&str]) -> BTreeMap<String, BTreeSet<String>> {
        members
            .iter()
            .map(|m| (m.to_string(), t.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    fn sizes(a: &HashMap<String, BTreeSet<Tp>>) -> Vec<usize> {
        let mut v: Vec<usize> = a.values().map(|s| s.len()).collect();
        v.sort();
        v
    }

    fn exact_cover(a: &HashMap<String, BTreeSet<Tp>>, total: usize) {
        let mut seen = BTreeSet::new();
        for s in a.values() {
            for tp in s {
                assert!(seen.insert(*tp), "{tp:?} owned twice");
            }
        }
        assert_eq!(seen.len(), total);
    }

    #[test]
    fn uniform_is_balanced_and_sticky() {
        let t = topics(&[("a", 4), ("b", 3)]);
        let one = uniform_assign(&subs(&["m1"], &["a", "b"]), &t, &HashMap::new());
        exact_cover(&one, 7);
        let three = uniform_assign(&subs(&["m1", "m2", "m3"], &["a", "b"]), &t, &one);
        exact_cover(&three, 7);
        assert_eq!(sizes(&three), vec![2, 2, 3]);
        assert!(
            three["m1"].is_subset(&one["m1"]),
            "m1 keeps part of what it had"
        );
        let two = uniform_assign(&subs(&["m1", "m3"], &["a", "b"]), &t, &three);
        exact_cover(&two, 7);
        assert!(
            three["m3"].is_subset(&two["m3"]),
            "a survivor keeps everything it had"
        );
        // 4 partitions over 3 members that each had 2 before.
        let t4 = topics(&[("c", 4)]);
        let prev = uniform_assign(&subs(&["x", "y"], &["c"]), &t4, &HashMap::new());
        let next = uniform_assign(&subs(&["x", "y", "z"], &["c"]), &t4, &prev);
        assert_eq!(sizes(&next), vec![1, 1, 2]);
    }

    #[test]
    fn range_gives_contiguous_ranges_per_topic() {
        let t = topics(&[("a", 5)]);
        let r = range_assign(&subs(&["m1", "m2"], &["a"]), &t);
        let id = t["a"].0;
        assert_eq!(r["m1"], [0, 1, 2].iter().map(|p| (id, *p)).collect());
        assert_eq!(r["m2"], [3, 4].iter().map(|p| (id, *p)).collect());
    }
}
