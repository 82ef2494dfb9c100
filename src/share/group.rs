//! KIP-932 share groups: membership. Members join and heartbeat with
//! ShareGroupHeartbeat; the coordinator computes a target assignment with the `simple`
//! assignor and each member takes its part of it at its next heartbeat. Unlike KIP-848
//! there is no revocation phase: a share partition may be held by several members at
//! once (records, not partitions, are what the broker hands out exclusively), so a member
//! goes straight to the new assignment epoch.
//!
//! Per group: a group epoch that moves when members, subscriptions or the subscribed
//! topics' partitions change; the target of that epoch; per member its epoch, its
//! previous epoch (accepted once more, for a response that was lost) and its partitions.
//! State is in memory only: members rejoin after a restart or a coordinator move.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::assignor::{self, Tp, SIMPLE_ASSIGNOR_NAME};
use crate::metadata::Metadata;

/// Kafka's `isMemberIdValid` (in UTF-16 units, as Java counts): share members make their
/// own ids (a UUID); longer ones are refused, which also bounds what a group keeps per member.
pub const MEMBER_ID_MAX_CHARS: usize = 36;

/// The broker-wide share group settings (Kafka's `group.share.*` broker configs).
///
/// It exists so the coordinator takes its limits from one value built from
/// `BrokerConfig`, and so a group's own configs can override the timeouts in one place
/// ([`ShareGroups::group_config`]).
#[derive(Debug, Clone, Copy)]
pub struct ShareGroupConfig {
    /// `group.share.session.timeout.ms`: a member silent this long is fenced.
    pub session_timeout_ms: i32,
    /// `group.share.heartbeat.interval.ms`: what heartbeat responses tell members.
    pub heartbeat_interval_ms: i32,
    /// `group.share.max.size`: members one group may hold.
    pub max_size: usize,
}

impl Default for ShareGroupConfig {
    fn default() -> Self {
        ShareGroupConfig {
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 5_000,
            max_size: 200,
        }
    }
}

/// One member as its last heartbeat left it.
#[derive(Debug, Clone)]
pub struct ShareMember {
    pub member_id: String,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub member_epoch: i32,
    previous_epoch: i32,
    pub subscribed_topics: BTreeSet<String>,
    /// The partitions this member may fetch from (shared with others possibly).
    pub assigned: BTreeSet<Tp>,
    session_deadline: Instant,
}

/// One share group.
#[derive(Debug, Default)]
struct ShareGroup {
    group_id: String,
    group_epoch: i32,
    assignment_epoch: i32,
    members: BTreeMap<String, ShareMember>,
    /// Target assignment of `assignment_epoch`, by member id.
    target: HashMap<String, BTreeSet<Tp>>,
    /// Hash of what the target depends on (members, subscriptions, partition counts).
    fingerprint: u64,
    /// Every topic the group was assigned while this broker coordinated it: in a cluster,
    /// where its share partitions' states are (Kafka keeps them in its group records).
    topics: BTreeSet<String>,
}

impl ShareGroup {
    /// Kafka's `ShareGroupState`: no assigning or reconciling states for share groups.
    fn state(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else {
            "Stable"
        }
    }

    /// Recomputes the target when what it depends on changed, or when `force` (a member
    /// came or went), bumping the group epoch as Kafka does for a new target.
    fn refresh_target(&mut self, metadata: &Metadata, force: bool) {
        let (topics, fingerprint) = subscribed(self, metadata);
        if !force && fingerprint == self.fingerprint && self.group_epoch > 0 {
            return;
        }
        self.fingerprint = fingerprint;
        self.group_epoch += 1;
        let subs: BTreeMap<String, BTreeSet<String>> = self
            .members
            .values()
            .map(|m| (m.member_id.clone(), m.subscribed_topics.clone()))
            .collect();
        self.topics.extend(topics.keys().cloned());
        self.target = assignor::assign(&subs, &topics, &self.target);
        self.assignment_epoch = self.group_epoch;
    }
}

/// What a ShareGroupHeartbeat asked for.
pub struct ShareHeartbeat {
    pub group_id: String,
    pub member_id: String,
    pub member_epoch: i32,
    /// None: unchanged.
    pub rack_id: Option<String>,
    /// None: unchanged.
    pub topics: Option<Vec<String>>,
    pub client_id: String,
    pub client_host: String,
}

/// The heartbeat's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareHeartbeatReply {
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// None: unchanged since the member last heard.
    pub assignment: Option<BTreeSet<Tp>>,
}

/// A refusal: Kafka's error and its message.
pub type Refusal = (ResponseError, Option<String>);

fn fail(e: ResponseError, message: impl Into<String>) -> Refusal {
    (e, Some(message.into()))
}

/// The share groups this broker coordinates.
///
/// It exists so share groups have one owner, next to (and exclusive with) the classic
/// groups of `GroupCoordinator` and the KIP-848 groups of `ConsumerGroups`, and so that
/// ShareFetch can ask who belongs to a group and what each member is assigned.
pub struct ShareGroups {
    config: ShareGroupConfig,
    groups: Mutex<HashMap<String, ShareGroup>>,
    /// Per-group `share.session.timeout.ms` and `share.heartbeat.interval.ms`.
    group_configs: std::sync::OnceLock<std::sync::Arc<crate::group::config::GroupConfigs>>,
}

impl ShareGroups {
    pub fn new(config: ShareGroupConfig) -> ShareGroups {
        ShareGroups {
            config,
            groups: Mutex::new(HashMap::new()),
            group_configs: std::sync::OnceLock::new(),
        }
    }

    /// From now on a group's own session timeout and heartbeat interval, where set, win
    /// over the broker's.
    pub fn set_group_configs(&self, c: std::sync::Arc<crate::group::config::GroupConfigs>) {
        let _ = self.group_configs.set(c);
    }

    /// The settings in force for `group_id`: the group's own `share.session.timeout.ms`
    /// and `share.heartbeat.interval.ms` (GROUP config resources, capped to the broker's
    /// bounds) where set, else the broker's.
    pub fn group_config(&self, group_id: &str) -> ShareGroupConfig {
        match self.group_configs.get() {
            Some(c) => {
                let e = c.effective(group_id);
                ShareGroupConfig {
                    session_timeout_ms: e.share_session_timeout_ms,
                    heartbeat_interval_ms: e.share_heartbeat_interval_ms,
                    ..self.config
                }
            }
            None => self.config,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, ShareGroup>> {
        self.groups.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn exists(&self, group_id: &str) -> bool {
        self.lock().contains_key(group_id)
    }

    pub fn has_members(&self, group_id: &str) -> bool {
        self.lock()
            .get(group_id)
            .is_some_and(|g| !g.members.is_empty())
    }

    /// True when `member_id` is a member of share group `group_id` now (ShareFetch and
    /// ShareAcknowledge check this on every request).
    pub fn is_member(&self, group_id: &str, member_id: &str) -> bool {
        self.lock()
            .get(group_id)
            .is_some_and(|g| g.members.contains_key(member_id))
    }

    /// The partitions `member_id` was last given in `group_id`, None when it is not a
    /// member: what a ShareFetch of that member may fetch from.
    pub fn assignment(&self, group_id: &str, member_id: &str) -> Option<BTreeSet<Tp>> {
        self.lock()
            .get(group_id)?
            .members
            .get(member_id)
            .map(|m| m.assigned.clone())
    }

    /// The topics `group_id` was assigned while this broker coordinated it.
    pub fn known_topics(&self, group_id: &str) -> BTreeSet<String> {
        self.lock()
            .get(group_id)
            .map(|g| g.topics.clone())
            .unwrap_or_default()
    }

    pub fn describe(&self, group_id: &str) -> Option<ShareGroupView> {
        self.lock().get(group_id).map(view)
    }

    pub fn list(&self) -> Vec<ShareGroupView> {
        let mut out: Vec<_> = self.lock().values().map(view).collect();
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    /// Deletes an empty group (NON_EMPTY_GROUP while it has members); None when no share
    /// group has that id.
    pub fn delete(&self, group_id: &str) -> Option<Result<(), ResponseError>> {
        Some(self.delete_returning_topics(group_id)?.map(|_| ()))
    }

    /// [`ShareGroups::delete`], answering the topics the group was assigned (whose share
    /// states go with it).
    pub fn delete_returning_topics(
        &self,
        group_id: &str,
    ) -> Option<Result<BTreeSet<String>, ResponseError>> {
        let mut groups = self.lock();
        if !groups.get(group_id)?.members.is_empty() {
            return Some(Err(ResponseError::NonEmptyGroup));
        }
        Some(Ok(groups.remove(group_id)?.topics))
    }

    /// Drops the groups `pick` selects: in cluster mode this broker stopped coordinating
    /// them. Members get UNKNOWN_MEMBER_ID or NOT_COORDINATOR and rejoin where FindCoordinator
    /// sends them.
    pub fn unload(&self, pick: impl Fn(&str) -> bool) -> usize {
        let mut groups = self.lock();
        let before = groups.len();
        groups.retain(|id, _| !pick(id));
        before - groups.len()
    }

    /// Fences the members whose session ran out: removed, and the group's target
    /// recomputed so the others take their partitions at their next heartbeat. Their
    /// acquired records are not released here (lock timeouts and session close do that).
    pub fn expire(&self, metadata: &Metadata, now: Instant) {
        let mut groups = self.lock();
        for g in groups.values_mut() {
            let before = g.members.len();
            g.members.retain(|id, m| {
                let alive = now <= m.session_deadline;
                if !alive {
                    tracing::info!(group = %g.group_id, member = %id, "share group member expired");
                }
                alive
            });
            if g.members.len() != before {
                g.refresh_target(metadata, true);
            }
        }
    }

    /// Kafka's request checks (`throwIfShareGroupHeartbeatRequestIsInvalid` and
    /// `KafkaApis.isMemberIdValid`), before any state is looked at.
    pub fn validate(hb: &ShareHeartbeat) -> Result<(), Refusal> {
        let invalid = |m: &str| Err(fail(ResponseError::InvalidRequest, m));
        if hb.member_id.is_empty() || hb.member_id.encode_utf16().count() > MEMBER_ID_MAX_CHARS {
            return invalid("Invalid member id in the request.");
        }
        if hb.member_id.trim().is_empty() {
            return invalid("MemberId can't be empty.");
        }
        if hb.group_id.trim().is_empty() {
            return invalid("GroupId can't be empty.");
        }
        if hb.group_id.len() > crate::group::GROUP_ID_MAX_BYTES {
            return Err(fail(
                ResponseError::InvalidGroupId,
                "GroupId is longer than 32767 bytes.",
            ));
        }
        if hb.rack_id.as_ref().is_some_and(|r| r.trim().is_empty()) {
            return invalid("RackId can't be empty.");
        }
        if hb
            .rack_id
            .as_ref()
            .is_some_and(|r| r.len() > crate::group::GROUP_ID_MAX_BYTES)
        {
            return invalid("RackId is longer than 32767 bytes.");
        }
        if hb.member_epoch == 0 && hb.topics.as_ref().is_none_or(|t| t.is_empty()) {
            return invalid("SubscribedTopicNames must be set in first request.");
        }
        if hb.member_epoch < -1 {
            return invalid("MemberEpoch is invalid.");
        }
        Ok(())
    }

    /// ShareGroupHeartbeat. `other_type` says whether the id belongs to a classic or
    /// consumer group; it is asked with the share groups held, so no share group can be
    /// created under an id another kind of group took meanwhile on this path.
    pub fn heartbeat(
        &self,
        metadata: &Metadata,
        hb: ShareHeartbeat,
        other_type: impl FnOnce(&str) -> bool,
    ) -> Result<ShareHeartbeatReply, Refusal> {
        Self::validate(&hb)?;
        let config = self.group_config(&hb.group_id);
        let mut groups = self.lock();
        if !groups.contains_key(&hb.group_id) && other_type(&hb.group_id) {
            return Err(fail(
                ResponseError::GroupIdNotFound,
                format!("Group {} is not a share group.", hb.group_id),
            ));
        }
        if hb.member_epoch == -1 {
            return leave(&mut groups, metadata, hb);
        }
        if hb.member_epoch != 0 && !groups.contains_key(&hb.group_id) {
            return Err(fail(
                ResponseError::GroupIdNotFound,
                format!("Share group {} not found.", hb.group_id),
            ));
        }
        let created = !groups.contains_key(&hb.group_id);
        let g = groups
            .entry(hb.group_id.clone())
            .or_insert_with(|| ShareGroup {
                group_id: hb.group_id.clone(),
                ..Default::default()
            });
        let result = join_or_heartbeat(g, metadata, hb, &config);
        // A refused join leaves no group behind (it would show in ListGroups).
        if result.is_err() && created {
            let id = g.group_id.clone();
            groups.remove(&id);
        }
        result
    }
}

/// Epoch -1: the member leaves and the others share its partitions from the next epoch.
fn leave(
    groups: &mut HashMap<String, ShareGroup>,
    metadata: &Metadata,
    hb: ShareHeartbeat,
) -> Result<ShareHeartbeatReply, Refusal> {
    let Some(g) = groups.get_mut(&hb.group_id) else {
        return Err(fail(
            ResponseError::GroupIdNotFound,
            format!("Group {} not found.", hb.group_id),
        ));
    };
    if g.members.remove(&hb.member_id).is_none() {
        return Err(unknown_member(&hb));
    }
    tracing::info!(group = %hb.group_id, member = %hb.member_id, "member left the share group");
    g.target.remove(&hb.member_id);
    g.refresh_target(metadata, true);
    Ok(ShareHeartbeatReply {
        member_id: hb.member_id,
        member_epoch: -1,
        heartbeat_interval_ms: 0,
        assignment: None,
    })
}

fn unknown_member(hb: &ShareHeartbeat) -> Refusal {
    fail(
        ResponseError::UnknownMemberId,
        format!(
            "Member {} is not a member of group {}.",
            hb.member_id, hb.group_id
        ),
    )
}

fn join_or_heartbeat(
    g: &mut ShareGroup,
    metadata: &Metadata,
    hb: ShareHeartbeat,
    config: &ShareGroupConfig,
) -> Result<ShareHeartbeatReply, Refusal> {
    let known = g.members.contains_key(&hb.member_id);
    if !known && g.members.len() >= config.max_size {
        return Err(fail(
            ResponseError::GroupMaxSizeReached,
            format!(
                "The share group has reached its maximum capacity of {} members.",
                config.max_size
            ),
        ));
    }
    if !known && hb.member_epoch != 0 {
        return Err(unknown_member(&hb));
    }
    let now = Instant::now();
    let session = Duration::from_millis(config.session_timeout_ms.max(0) as u64);
    if let Some(m) = g.members.get(&hb.member_id) {
        // Kafka's throwIfShareGroupMemberEpochIsInvalid; epoch 0 (a rejoin) is not checked.
        let (epoch, known_epoch) = (hb.member_epoch, m.member_epoch);
        if epoch != 0 && epoch > known_epoch {
            return Err(fail(
                ResponseError::FencedMemberEpoch,
                format!(
                    "The share group member has a greater member epoch ({epoch}) than the one known by the group coordinator ({known_epoch}). The member must abandon all its partitions and rejoin."
                ),
            ));
        }
        if epoch != 0 && epoch < known_epoch && epoch != m.previous_epoch {
            return Err(fail(
                ResponseError::FencedMemberEpoch,
                format!(
                    "The share group member has a smaller member epoch ({epoch}) than the one known by the group coordinator ({known_epoch}), and it does not match the previous member epoch ({}). The member must abandon all its partitions and rejoin.",
                    m.previous_epoch
                ),
            ));
        }
    } else {
        tracing::info!(group = %g.group_id, member = %hb.member_id, "member joins the share group");
        g.members.insert(
            hb.member_id.clone(),
            ShareMember {
                member_id: hb.member_id.clone(),
                rack_id: None,
                client_id: String::new(),
                client_host: String::new(),
                member_epoch: 0,
                previous_epoch: 0,
                subscribed_topics: BTreeSet::new(),
                assigned: BTreeSet::new(),
                session_deadline: now + session,
            },
        );
    }
    let full_request = hb.topics.is_some();
    let m = g
        .members
        .get_mut(&hb.member_id)
        .expect("found or added above");
    let before = m.assigned.clone();
    let resend = hb.member_epoch != 0 && hb.member_epoch == m.previous_epoch;
    if hb.rack_id.is_some() {
        m.rack_id = hb.rack_id;
    }
    if let Some(t) = hb.topics {
        m.subscribed_topics = t.into_iter().collect();
    }
    m.client_id = hb.client_id;
    m.client_host = hb.client_host;
    m.session_deadline = now + session;

    g.refresh_target(metadata, !known);
    let target = g.target.get(&hb.member_id).cloned().unwrap_or_default();
    let assignment_epoch = g.assignment_epoch;
    let m = g.members.get_mut(&hb.member_id).expect("still there");
    // No revocation phase: the member takes the target at once.
    if m.member_epoch != assignment_epoch {
        m.previous_epoch = m.member_epoch;
        m.member_epoch = assignment_epoch;
    }
    m.assigned = target;
    // As Kafka: the assignment goes with a join, a full request or a change. Also again
    // to a member heartbeating with its previous epoch: it lost the last answer.
    let assignment = (hb.member_epoch == 0 || full_request || resend || before != m.assigned)
        .then(|| m.assigned.clone());
    Ok(ShareHeartbeatReply {
        member_id: m.member_id.clone(),
        member_epoch: m.member_epoch,
        heartbeat_interval_ms: config.heartbeat_interval_ms,
        assignment,
    })
}

/// The subscribed topics that exist (id, partition count) and a hash of everything the
/// target depends on: members, subscriptions, topic ids and partition counts.
fn subscribed(g: &ShareGroup, metadata: &Metadata) -> (BTreeMap<String, (Uuid, i32)>, u64) {
    let mut topics: BTreeMap<String, (Uuid, i32)> = BTreeMap::new();
    for m in g.members.values() {
        for t in &m.subscribed_topics {
            if let Some(tp) = metadata.topic(t) {
                topics.insert(t.clone(), (tp.id, tp.partitions.len() as i32));
            }
        }
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for m in g.members.values() {
        m.member_id.hash(&mut h);
        m.subscribed_topics.hash(&mut h);
    }
    topics.hash(&mut h);
    (topics, h.finish())
}

/// A share group as ShareGroupDescribe and ListGroups report it.
#[derive(Debug, Clone)]
pub struct ShareGroupView {
    pub group_id: String,
    pub state: &'static str,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: &'static str,
    pub members: Vec<ShareMember>,
}

fn view(g: &ShareGroup) -> ShareGroupView {
    ShareGroupView {
        group_id: g.group_id.clone(),
        state: g.state(),
        group_epoch: g.group_epoch,
        assignment_epoch: g.assignment_epoch,
        assignor: SIMPLE_ASSIGNOR_NAME,
        members: g.members.values().cloned().collect(),
    }
}
