//! The streams groups of one group coordinator: members, the stored topology, the group
//! and assignment epochs, the target assignment and each member's reconciliation, in
//! Kafka 4.4's order of checks (KIP-1071). In cluster mode every change is written to the
//! group's partition of `__consumer_offsets` as Kafka's records ([`super::journal`]) before
//! the member hears of it, so the next coordinator takes the group over; a single node
//! keeps them in memory, and a restarted one's members rejoin, as its consumer groups do.
//!
//! The heartbeat is a pure function of the group, the request, the cluster's partition
//! counts (a closure) and the time, so it is tested without a broker; the API handler
//! turns wire messages into [`Heartbeat`] and creates the internal topics the reply names.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;

use super::super::journal::{JournalWrite, OffsetJournal};
use super::assignor::{self, MemberSpec};
use super::journal::{self as records, GroupMeta, MemberMeta, StreamsRecord};
use super::reconcile::{reconcile, Current, Held, MemberState, TaskSets};
use super::topology::{configure, Configured, InternalTopic, StatusCode, Topology};

/// The broker's `group.streams.*` settings a group uses.
#[derive(Debug, Clone)]
pub struct StreamsGroupConfig {
    pub session_timeout_ms: i32,
    pub heartbeat_interval_ms: i32,
    pub initial_rebalance_delay_ms: i32,
    pub num_standby_replicas: u32,
    pub max_size: usize,
    pub task_offset_interval_ms: i32,
    pub acceptable_recovery_lag: i64,
}

impl Default for StreamsGroupConfig {
    /// Kafka 4.4's defaults.
    fn default() -> Self {
        StreamsGroupConfig {
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 5_000,
            initial_rebalance_delay_ms: 3_000,
            num_standby_replicas: 0,
            max_size: i32::MAX as usize,
            task_offset_interval_ms: 60_000,
            acceptable_recovery_lag: 10_000,
        }
    }
}

/// An application server endpoint (`application.server`) for interactive queries.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

/// One member: a stream thread of a KafkaStreams instance (its process).
#[derive(Debug, Clone)]
pub struct Member {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub topology_epoch: i32,
    pub process_id: String,
    pub user_endpoint: Option<Endpoint>,
    pub client_tags: BTreeMap<String, String>,
    pub current: Current,
    last_heartbeat: Instant,
    revoke_deadline: Option<Instant>,
    /// The tasks last sent, so unchanged ones are not sent again.
    last_sent: Option<TaskSets>,
}

/// One streams group.
#[derive(Debug)]
pub struct StreamsGroup {
    pub group_id: String,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub topology: Option<Topology>,
    pub configured: Option<Configured>,
    pub members: BTreeMap<String, Member>,
    pub target: BTreeMap<String, TaskSets>,
    fingerprint: u64,
    delay_until: Option<Instant>,
    endpoint_epoch: i32,
    shutdown_requested: bool,
    /// What the journal was last told about the group (cluster mode).
    journaled: Image,
}

/// A group as its records describe it: compared with the group after a change, it gives
/// the records to write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Image {
    meta: Option<GroupMeta>,
    topology: Option<Topology>,
    target_epoch: Option<i32>,
    members: BTreeMap<String, MemberImage>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct MemberImage {
    meta: MemberMeta,
    target: TaskSets,
    current: Current,
}

impl Image {
    fn of(g: &StreamsGroup) -> Image {
        let members = g
            .members
            .values()
            .map(|m| {
                let image = MemberImage {
                    meta: MemberMeta {
                        instance_id: m.instance_id.clone(),
                        rack_id: m.rack_id.clone(),
                        client_id: m.client_id.clone(),
                        client_host: m.client_host.clone(),
                        rebalance_timeout_ms: m.rebalance_timeout_ms,
                        topology_epoch: m.topology_epoch,
                        process_id: m.process_id.clone(),
                        user_endpoint: m.user_endpoint.clone(),
                        client_tags: m.client_tags.clone(),
                    },
                    target: g.target.get(&m.member_id).cloned().unwrap_or_default(),
                    current: m.current.clone(),
                };
                (m.member_id.clone(), image)
            })
            .collect();
        Image {
            meta: Some(GroupMeta {
                epoch: g.group_epoch,
                metadata_hash: g.fingerprint as i64,
            }),
            topology: g.topology.clone(),
            target_epoch: Some(g.assignment_epoch),
            members,
        }
    }

    /// The records that turn `self` (what the journal holds) into `new`, in Kafka's order:
    /// members and the group epoch, the topology, the target, then current assignments.
    /// Towards an empty image: each member's tombstones, then the group's.
    fn changes(&self, new: &Image) -> Vec<StreamsRecord> {
        let mut out = Vec::new();
        for (id, m) in &self.members {
            if !new.members.contains_key(id) {
                out.push(StreamsRecord::Current(id.clone(), None));
                out.push(StreamsRecord::Target(id.clone(), None));
                out.push(StreamsRecord::Member(id.clone(), None));
            } else if !m.target.is_empty() && new.members[id].target.is_empty() {
                out.push(StreamsRecord::Target(id.clone(), None));
            }
        }
        for (id, m) in &new.members {
            if self.members.get(id).map(|o| &o.meta) != Some(&m.meta) {
                out.push(StreamsRecord::Member(id.clone(), Some(m.meta.clone())));
            }
        }
        if self.meta != new.meta && new.meta.is_some() {
            out.push(StreamsRecord::Metadata(new.meta));
        }
        if self.topology != new.topology && new.topology.is_some() {
            out.push(StreamsRecord::Topology(new.topology.clone()));
        }
        for (id, m) in &new.members {
            let old = self.members.get(id).map(|o| &o.target);
            if !m.target.is_empty() && old != Some(&m.target) {
                out.push(StreamsRecord::Target(id.clone(), Some(m.target.clone())));
            }
        }
        if self.target_epoch != new.target_epoch && new.target_epoch.is_some() {
            out.push(StreamsRecord::TargetEpoch(new.target_epoch));
        }
        for (id, m) in &new.members {
            if self.members.get(id).map(|o| &o.current) != Some(&m.current) {
                out.push(StreamsRecord::Current(id.clone(), Some(m.current.clone())));
            }
        }
        if new.meta.is_none() && self.meta.is_some() {
            out.push(StreamsRecord::TargetEpoch(None));
            out.push(StreamsRecord::Metadata(None));
            out.push(StreamsRecord::Topology(None));
        }
        out
    }
}

impl StreamsGroup {
    fn new(group_id: &str) -> StreamsGroup {
        // Kafka starts both epochs at 1: a first member reconciles to 1 while the initial
        // delay holds the assignment back, never to 0 (which would read as a rejoin).
        StreamsGroup {
            group_id: group_id.to_string(),
            group_epoch: 1,
            assignment_epoch: 1,
            topology: None,
            configured: None,
            members: BTreeMap::new(),
            target: BTreeMap::new(),
            fingerprint: 0,
            delay_until: None,
            endpoint_epoch: 0,
            shutdown_requested: false,
            journaled: Image::default(),
        }
    }

    /// Kafka's state names: Empty, NotReady, Assigning, Reconciling, Stable.
    pub fn state(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if !self.configured.as_ref().is_some_and(Configured::ready) {
            "NotReady"
        } else if self.assignment_epoch < self.group_epoch {
            "Assigning"
        } else if self.members.values().any(|m| {
            m.current.epoch != self.assignment_epoch || m.current.state != MemberState::Stable
        }) {
            "Reconciling"
        } else {
            "Stable"
        }
    }
}

/// What a StreamsGroupHeartbeat asked for (`None`: unchanged since the last one).
#[derive(Debug, Clone, Default)]
pub struct Heartbeat {
    pub group_id: String,
    pub member_id: String,
    pub member_epoch: i32,
    pub endpoint_information_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub topology: Option<Topology>,
    pub owned: Option<TaskSets>,
    pub process_id: Option<String>,
    pub user_endpoint: Option<Endpoint>,
    pub client_tags: Option<BTreeMap<String, String>>,
    pub shutdown_application: bool,
    pub client_id: String,
    pub client_host: String,
}

/// A member's partitions by its endpoint, for interactive queries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointPartitions {
    pub endpoint: Endpoint,
    pub active: BTreeMap<String, Vec<i32>>,
    pub standby: BTreeMap<String, Vec<i32>>,
}

/// The heartbeat's answer.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    pub task_offset_interval_ms: i32,
    pub acceptable_recovery_lag: i64,
    pub statuses: Vec<(StatusCode, String)>,
    /// None: unchanged.
    pub tasks: Option<TaskSets>,
    pub endpoint_information_epoch: i32,
    pub partitions_by_endpoint: Option<Vec<EndpointPartitions>>,
    /// Internal topics the broker should create now (not a wire field).
    pub to_create: Vec<InternalTopic>,
}

type Refusal = (ResponseError, Option<String>);

/// The most tasks one group may have: a topology is the client's, and every task costs
/// the assignor and the group memory, so its size is bounded (Kafka's is by its topics).
const MAX_TASKS: i64 = 100_000;

fn fail(e: ResponseError, message: impl Into<String>) -> Refusal {
    (e, Some(message.into()))
}

/// The streams groups of this broker.
///
/// It exists so that Kafka Streams applications with `group.protocol=streams` get their
/// tasks from the broker, with one owner of every group's epochs and assignment.
pub struct StreamsGroups {
    config: StreamsGroupConfig,
    groups: Mutex<HashMap<String, StreamsGroup>>,
    journal: OnceLock<Arc<dyn OffsetJournal>>,
    group_configs: OnceLock<Arc<crate::group::config::GroupConfigs>>,
}

/// A heartbeat's field checks, in Kafka's order and words (all INVALID_REQUEST).
fn validate(hb: &Heartbeat) -> Result<(), Refusal> {
    let invalid = |m: &str| Err(fail(ResponseError::InvalidRequest, m));
    if hb.member_id.is_empty() {
        return invalid("MemberId can't be empty.");
    }
    if hb.group_id.is_empty() {
        return invalid("GroupId can't be empty.");
    }
    if hb.instance_id.as_deref() == Some("") {
        return invalid("InstanceId can't be empty.");
    }
    if hb.rack_id.as_deref() == Some("") {
        return invalid("RackId can't be empty.");
    }
    for (name, v) in [
        ("MemberId", Some(&hb.member_id)),
        ("GroupId", Some(&hb.group_id)),
        ("InstanceId", hb.instance_id.as_ref()),
        ("RackId", hb.rack_id.as_ref()),
    ] {
        if v.is_some_and(|v| v.len() > crate::group::GROUP_ID_MAX_BYTES) {
            return Err(fail(
                ResponseError::InvalidRequest,
                format!("{name} is longer than 32767 bytes."),
            ));
        }
    }
    if hb.member_epoch == 0 {
        if hb.rebalance_timeout_ms == -1 {
            return invalid("RebalanceTimeoutMs must be provided in first request.");
        }
        if let Some(owned) = &hb.owned {
            if !owned.active.is_empty() {
                return invalid("ActiveTasks must be empty when (re-)joining.");
            }
            if !owned.standby.is_empty() {
                return invalid("StandbyTasks must be empty when (re-)joining.");
            }
            if !owned.warmup.is_empty() {
                return invalid("WarmupTasks must be empty when (re-)joining.");
            }
        }
        if hb.topology.is_none() {
            return invalid("Topology must be non-null when (re-)joining.");
        }
    } else if hb.member_epoch == -2 && hb.instance_id.is_none() {
        return invalid("InstanceId can't be null.");
    } else if hb.member_epoch < -2 {
        return Err(fail(
            ResponseError::InvalidRequest,
            format!(
                "MemberEpoch is {}, but must be greater than or equal to -2.",
                hb.member_epoch
            ),
        ));
    }
    if hb.member_epoch != 0 && hb.topology.is_some() {
        return invalid("Topology can only be provided when (re-)joining.");
    }
    Ok(())
}

/// The part of a group that decides its assignment: when it changes, the group epoch
/// goes up and a new target is computed (Kafka's RECOMPUTE and metadata hash).
fn fingerprint(g: &StreamsGroup, standbys: u32) -> u64 {
    let mut h = DefaultHasher::new();
    let mut members: Vec<_> = g
        .members
        .values()
        .map(|m| (m.instance_id.as_ref().unwrap_or(&m.member_id), m))
        .collect();
    members.sort_by_key(|(id, _)| *id);
    for (id, m) in members {
        (
            id,
            &m.process_id,
            m.topology_epoch,
            &m.rack_id,
            &m.client_tags,
        )
            .hash(&mut h);
    }
    if let Some(c) = &g.configured {
        c.tasks.hash(&mut h);
        c.stateful.hash(&mut h);
        c.ready().hash(&mut h);
    }
    g.topology.as_ref().map(|t| t.epoch).hash(&mut h);
    standbys.hash(&mut h);
    h.finish()
}

impl StreamsGroups {
    pub fn new(config: StreamsGroupConfig) -> StreamsGroups {
        StreamsGroups {
            config,
            groups: Mutex::new(HashMap::new()),
            journal: OnceLock::new(),
            group_configs: OnceLock::new(),
        }
    }

    /// From now on a group's own `streams.*` configs (IncrementalAlterConfigs on the
    /// GROUP resource), where set, win over the broker's.
    pub fn set_group_configs(&self, c: Arc<crate::group::config::GroupConfigs>) {
        let _ = self.group_configs.set(c);
    }

    /// The settings in force for one group: the broker's, with the group's configs over
    /// them (already held within the broker's bounds).
    fn settings(&self, group_id: &str) -> StreamsGroupConfig {
        let mut c = self.config.clone();
        if let Some(configs) = self.group_configs.get() {
            let e = configs.effective(group_id);
            c.session_timeout_ms = e.streams_session_timeout_ms;
            c.heartbeat_interval_ms = e.streams_heartbeat_interval_ms;
            c.initial_rebalance_delay_ms = e.streams_initial_rebalance_delay_ms;
            c.num_standby_replicas = u32::try_from(e.streams_num_standby_replicas).unwrap_or(0);
        }
        c
    }

    /// Cluster mode: changes are appended to the groups' partitions from now on.
    pub fn set_journal(&self, j: Arc<dyn OffsetJournal>) {
        let _ = self.journal.set(j);
    }

    /// Appends what changed in `g` since its last write; None when nothing did or there
    /// is no journal. Called with the groups locked, so appends follow the changes' order.
    fn journal(&self, g: &mut StreamsGroup) -> Option<JournalWrite> {
        let j = self.journal.get()?;
        let now = Image::of(g);
        let changes = g.journaled.changes(&now);
        if changes.is_empty() {
            return None;
        }
        g.journaled = now;
        let encoded = changes
            .iter()
            .map(|r| records::encode(&g.group_id, r))
            .collect();
        match j.append(&g.group_id, None, encoded) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::debug!(group = %g.group_id, error = ?e, "streams group change not journaled");
                None
            }
        }
    }

    /// A removed group's tombstones.
    fn journal_removal(&self, g: &mut StreamsGroup) {
        let Some(j) = self.journal.get() else { return };
        let changes = g.journaled.changes(&Image::default());
        g.journaled = Image::default();
        let encoded = changes
            .iter()
            .map(|r| records::encode(&g.group_id, r))
            .collect();
        if let Err(e) = j.append(&g.group_id, None, encoded) {
            tracing::debug!(group = %g.group_id, error = ?e, "streams group removal not journaled");
        }
    }

    /// Cluster mode, a new term's load: the streams groups `pick` selects become what
    /// their records say, members with fresh sessions keeping their epochs and tasks.
    pub fn load(
        &self,
        partitions_of: &dyn Fn(&str) -> Option<i32>,
        pick: impl Fn(&str) -> bool,
        by_group: BTreeMap<String, Vec<StreamsRecord>>,
    ) -> usize {
        let now = Instant::now();
        let mut groups = self.lock();
        groups.retain(|id, _| !pick(id));
        let mut n = 0;
        for (id, recs) in by_group {
            let Some(mut g) = restore(&id, recs, partitions_of, now) else {
                continue;
            };
            g.journaled = Image::of(&g);
            groups.insert(id, g);
            n += 1;
        }
        n
    }

    /// Forgets the groups `pick` selects (this broker no longer coordinates them).
    pub fn unload(&self, pick: impl Fn(&str) -> bool) -> usize {
        let mut groups = self.lock();
        let before = groups.len();
        groups.retain(|id, _| !pick(id));
        before - groups.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, StreamsGroup>> {
        self.groups.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a streams group of this id exists.
    pub fn exists(&self, group_id: &str) -> bool {
        self.lock().contains_key(group_id)
    }

    /// Runs `f` on a group, if it exists (Describe, ListGroups).
    pub fn with<R>(&self, group_id: &str, f: impl FnOnce(&StreamsGroup) -> R) -> Option<R> {
        self.lock().get(group_id).map(f)
    }

    /// Every group's id and state.
    pub fn list(&self) -> Vec<(String, &'static str)> {
        let mut out: Vec<_> = self
            .lock()
            .values()
            .map(|g| (g.group_id.clone(), g.state()))
            .collect();
        out.sort();
        out
    }

    /// DeleteGroups: NON_EMPTY_GROUP while members remain; None if there is no such group.
    pub fn delete(&self, group_id: &str) -> Option<Result<(), ResponseError>> {
        let mut groups = self.lock();
        let g = groups.get(group_id)?;
        if !g.members.is_empty() {
            return Some(Err(ResponseError::NonEmptyGroup));
        }
        if let Some(mut g) = groups.remove(group_id) {
            self.journal_removal(&mut g);
        }
        Some(Ok(()))
    }

    /// The topics whose offsets a running group holds (its topology's source and
    /// repartition source topics; none while it has no members), None when no such group
    /// exists: OffsetDelete refuses them with GROUP_SUBSCRIBED_TO_TOPIC.
    pub fn subscribed_topics(&self, group_id: &str) -> Option<std::collections::HashSet<String>> {
        self.with(group_id, |g| {
            let mut out = std::collections::HashSet::new();
            if let (false, Some(t)) = (g.members.is_empty(), &g.topology) {
                for s in &t.subtopologies {
                    out.extend(s.source_topics.iter().cloned());
                    out.extend(s.repartition_source_topics.iter().map(|t| t.name.clone()));
                }
            }
            out
        })
    }

    /// The groups with no members (candidates for deletion once their offsets are gone).
    pub fn empty_group_ids(&self) -> Vec<String> {
        self.lock()
            .values()
            .filter(|g| g.members.is_empty())
            .map(|g| g.group_id.clone())
            .collect()
    }

    /// Removes a group with no members if `also` holds, both decided with the groups held
    /// (the expiry of an empty group whose offsets are gone).
    pub fn remove_if_empty_and(&self, group_id: &str, also: impl FnOnce() -> bool) -> bool {
        let mut groups = self.lock();
        if !groups.get(group_id).is_some_and(|g| g.members.is_empty()) || !also() {
            return false;
        }
        if let Some(mut g) = groups.remove(group_id) {
            self.journal_removal(&mut g);
        }
        true
    }

    /// Removes members whose session expired or who did not revoke in time.
    pub fn expire(&self, now: Instant) {
        for g in self.lock().values_mut() {
            let cfg = self.settings(&g.group_id);
            let session = Duration::from_millis(cfg.session_timeout_ms.max(0) as u64);
            let gone: Vec<String> = g
                .members
                .values()
                .filter(|m| {
                    now.duration_since(m.last_heartbeat) > session
                        || m.revoke_deadline.is_some_and(|d| now > d)
                })
                .map(|m| m.member_id.clone())
                .collect();
            if gone.is_empty() {
                continue;
            }
            for id in gone {
                tracing::info!(group = %g.group_id, member = %id, "streams group member expired");
                remove_member(g, &id, cfg.num_standby_replicas);
            }
            drop(self.journal(g));
        }
    }

    /// StreamsGroupHeartbeat, given the cluster's partition counts. In cluster mode the
    /// reply comes with the journal write of what it changed, to be awaited before the
    /// member is told.
    pub fn heartbeat(
        &self,
        hb: Heartbeat,
        partitions_of: &dyn Fn(&str) -> Option<i32>,
        now: Instant,
    ) -> Result<(Reply, Option<JournalWrite>), Refusal> {
        validate(&hb)?;
        let mut groups = self.lock();
        let group_id = hb.group_id.clone();
        let result = if hb.member_epoch < 0 {
            self.leave(&mut groups, hb)
        } else {
            let created = !groups.contains_key(&hb.group_id);
            if created && hb.member_epoch > 0 {
                return Err(fail(
                    ResponseError::GroupIdNotFound,
                    format!("Streams group {} not found.", hb.group_id),
                ));
            }
            let result = self.join_or_heartbeat(&mut groups, hb, partitions_of, now);
            if result.is_err() && created {
                groups.remove(&group_id);
            }
            result
        };
        let reply = result?;
        let write = groups.get_mut(&group_id).and_then(|g| self.journal(g));
        Ok((reply, write))
    }

    fn leave(
        &self,
        groups: &mut HashMap<String, StreamsGroup>,
        hb: Heartbeat,
    ) -> Result<Reply, Refusal> {
        let Some(g) = groups.get_mut(&hb.group_id) else {
            return Err(fail(
                ResponseError::GroupIdNotFound,
                format!("Group {} not found.", hb.group_id),
            ));
        };
        if let Some(inst) = &hb.instance_id {
            check_static(g, &hb.member_id, inst)?;
        } else if !g.members.contains_key(&hb.member_id) {
            return Err(fail(
                ResponseError::UnknownMemberId,
                format!(
                    "Member {} is not a member of group {}.",
                    hb.member_id, hb.group_id
                ),
            ));
        }
        if hb.shutdown_application {
            g.shutdown_requested = true;
        }
        if hb.member_epoch == LEFT_STATIC {
            // A static member leaving for now (a rolling restart): it stays with its tasks,
            // which no one else gets, until its instance comes back or its session ends.
            let m = g.members.get_mut(&hb.member_id).expect("checked above");
            tracing::info!(group = %hb.group_id, member = %hb.member_id, "static member temporarily left the streams group");
            m.current.epoch = LEFT_STATIC;
            m.current.pending_revocation = TaskSets::default();
            m.current.state = MemberState::Stable;
            for e in m.current.active_epochs.values_mut() {
                *e = 0;
            }
            m.last_sent = None;
        } else {
            remove_member(
                g,
                &hb.member_id,
                self.settings(&hb.group_id).num_standby_replicas,
            );
        }
        Ok(Reply {
            member_id: hb.member_id,
            member_epoch: hb.member_epoch,
            ..Default::default()
        })
    }

    fn join_or_heartbeat(
        &self,
        groups: &mut HashMap<String, StreamsGroup>,
        hb: Heartbeat,
        partitions_of: &dyn Fn(&str) -> Option<i32>,
        now: Instant,
    ) -> Result<Reply, Refusal> {
        let cfg = &self.settings(&hb.group_id);
        let g = groups
            .entry(hb.group_id.clone())
            .or_insert_with(|| StreamsGroup::new(&hb.group_id));
        let was_empty = g.members.is_empty();
        if was_empty {
            g.shutdown_requested = false;
        }

        if hb.member_epoch == 0 {
            // A static member coming back takes over its previous incarnation (its target and
            // tasks) once that one left with -2; while it is active the instance id is not
            // released.
            let mut inherited = None;
            if let Some(inst) = &hb.instance_id {
                let old = g
                    .members
                    .values()
                    .find(|m| m.instance_id.as_ref() == Some(inst) && m.member_id != hb.member_id);
                if let Some(old) = old {
                    if old.current.epoch != LEFT_STATIC {
                        return Err(fail(
                            ResponseError::UnreleasedInstanceId,
                            format!(
                                "Static member {} with instance id {inst} cannot join the group because the instance id is owned by {} member.",
                                hb.member_id, old.member_id
                            ),
                        ));
                    }
                    let old_id = old.member_id.clone();
                    tracing::info!(group = %hb.group_id, member = %hb.member_id, replaced = %old_id, "static member re-joins the streams group");
                    let old = g.members.remove(&old_id).expect("found above");
                    if let Some(t) = g.target.remove(&old_id) {
                        g.target.insert(hb.member_id.clone(), t);
                    }
                    inherited = Some(old.current);
                }
            }
            if inherited.is_none()
                && !g.members.contains_key(&hb.member_id)
                && g.members.len() >= cfg.max_size
            {
                return Err(fail(
                    ResponseError::GroupMaxSizeReached,
                    format!(
                        "The streams group has reached its maximum capacity of {} members.",
                        cfg.max_size
                    ),
                ));
            }
            let topology = hb.topology.clone().expect("validated").canonical();
            match &g.topology {
                None => g.topology = Some(topology.clone()),
                Some(stored) if stored.epoch > topology.epoch => {}
                Some(stored) if *stored != topology => {
                    return Err(fail(
                        ResponseError::InvalidRequest,
                        "Topology updates are not supported yet.",
                    ))
                }
                Some(_) => {}
            }
            // A member rejoining with epoch 0 owns nothing any more, unless it is a static
            // member taking its tasks back (at epoch 0, reconciled below).
            let current = inherited.map_or_else(Current::default, |c| Current {
                epoch: 0,
                previous_epoch: 0,
                state: MemberState::Stable,
                assigned: c.assigned,
                pending_revocation: TaskSets::default(),
                active_epochs: c.active_epochs,
            });
            g.members.insert(
                hb.member_id.clone(),
                Member {
                    member_id: hb.member_id.clone(),
                    instance_id: hb.instance_id.clone(),
                    rack_id: hb.rack_id.clone(),
                    client_id: hb.client_id.clone(),
                    client_host: hb.client_host.clone(),
                    rebalance_timeout_ms: hb.rebalance_timeout_ms,
                    topology_epoch: topology.epoch,
                    process_id: hb.process_id.clone().unwrap_or_default(),
                    user_endpoint: hb.user_endpoint.clone(),
                    client_tags: hb.client_tags.clone().unwrap_or_default(),
                    current,
                    last_heartbeat: now,
                    revoke_deadline: None,
                    last_sent: None,
                },
            );
            if was_empty && cfg.initial_rebalance_delay_ms > 0 {
                g.delay_until =
                    Some(now + Duration::from_millis(cfg.initial_rebalance_delay_ms as u64));
            }
        } else {
            if let Some(inst) = &hb.instance_id {
                check_static(g, &hb.member_id, inst)?;
            }
            let Some(m) = g.members.get(&hb.member_id) else {
                return Err(fail(
                    ResponseError::UnknownMemberId,
                    format!(
                        "Member {} is not a member of group {}.",
                        hb.member_id, hb.group_id
                    ),
                ));
            };
            let c = &m.current;
            let lost_reply = hb.member_epoch == c.previous_epoch
                && hb.owned.as_ref().is_some_and(|o| o.within(&c.assigned));
            if hb.member_epoch > c.epoch || (hb.member_epoch < c.epoch && !lost_reply) {
                return Err(fail(
                    ResponseError::FencedMemberEpoch,
                    format!(
                        "The streams group member has a smaller member epoch ({}) than the one known by the group coordinator ({}). The member must abandon all its partitions and rejoin.",
                        hb.member_epoch, c.epoch
                    ),
                ));
            }
            let m = g.members.get_mut(&hb.member_id).expect("found above");
            m.last_heartbeat = now;
            m.client_id = hb.client_id.clone();
            if hb.rack_id.is_some() {
                m.rack_id = hb.rack_id.clone();
            }
            if let Some(p) = &hb.process_id {
                m.process_id = p.clone();
            }
            if hb.user_endpoint.is_some() {
                m.user_endpoint = hb.user_endpoint.clone();
            }
            if let Some(t) = &hb.client_tags {
                m.client_tags = t.clone();
            }
            if hb.rebalance_timeout_ms > 0 {
                m.rebalance_timeout_ms = hb.rebalance_timeout_ms;
            }
            if hb.member_epoch < m.current.epoch {
                m.last_sent = None; // the last answer was lost: send it again
            }
        }
        if hb.shutdown_application {
            g.shutdown_requested = true;
        }

        // The topology against the cluster's topics; a change of either moves the epoch.
        let topology = g.topology.clone().expect("stored at the first join");
        let configured = configure(&topology, partitions_of)
            .map_err(|e| fail(ResponseError::StreamsInvalidTopology, e.0))?;
        let tasks: i64 = configured.tasks.values().map(|n| i64::from(*n)).sum();
        if tasks > MAX_TASKS {
            return Err(fail(
                ResponseError::StreamsInvalidTopology,
                format!(
                    "The topology has {tasks} tasks; a streams group may have at most {MAX_TASKS}."
                ),
            ));
        }
        let to_create = configured.to_create.clone();
        g.configured = Some(configured);
        let fp = fingerprint(g, cfg.num_standby_replicas);
        if fp != g.fingerprint {
            g.fingerprint = fp;
            g.group_epoch += 1;
        }
        let delayed = g.delay_until.is_some_and(|d| now < d);
        if !delayed {
            g.delay_until = None;
            if g.assignment_epoch < g.group_epoch {
                compute_target(g, cfg.num_standby_replicas);
            }
        }

        // This member towards its target.
        let (reply_tasks, member_epoch) = {
            let held = Held::for_member(
                &hb.member_id,
                &g.members[&hb.member_id].process_id,
                g.members.values().map(|m| {
                    (
                        m.member_id.as_str(),
                        m.process_id.as_str(),
                        &m.current.assigned,
                        &m.current.pending_revocation,
                    )
                }),
            );
            let target = g.target.get(&hb.member_id).cloned().unwrap_or_default();
            let epoch = g.assignment_epoch;
            let m = g.members.get_mut(&hb.member_id).expect("member exists");
            let next = reconcile(&m.current, &target, epoch, hb.owned.as_ref(), &held);
            if next.state == MemberState::UnrevokedTasks
                && m.current.state != MemberState::UnrevokedTasks
            {
                m.revoke_deadline =
                    Some(now + Duration::from_millis(m.rebalance_timeout_ms.max(0) as u64));
            } else if next.state != MemberState::UnrevokedTasks {
                m.revoke_deadline = None;
            }
            m.current = next;
            let tasks = if m.last_sent.as_ref() != Some(&m.current.assigned) {
                m.last_sent = Some(m.current.assigned.clone());
                if m.user_endpoint.is_some() {
                    g.endpoint_epoch += 1;
                }
                Some(m.current.assigned.clone())
            } else {
                None
            };
            (tasks, m.current.epoch)
        };

        let mut statuses = Vec::new();
        let member_topology_epoch = g.members[&hb.member_id].topology_epoch;
        if let Some(t) = &g.topology {
            if member_topology_epoch < t.epoch {
                statuses.push((
                    StatusCode::StaleTopology,
                    format!(
                        "The member's topology epoch {member_topology_epoch} is behind the group's topology epoch {}.",
                        t.epoch
                    ),
                ));
            }
        }
        if delayed {
            statuses.push((
                StatusCode::AssignmentDelayed,
                "Assignment delayed due to the configured initial rebalance delay.".into(),
            ));
        }
        if let Some((code, detail)) = g.configured.as_ref().and_then(|c| c.status.clone()) {
            statuses.push((code, detail));
        }
        if g.shutdown_requested {
            statuses.push((
                StatusCode::ShutdownApplication,
                format!(
                    "Streams group member {} encountered a fatal error and requested a shutdown for the entire application.",
                    hb.member_id
                ),
            ));
        }
        let partitions_by_endpoint = (hb.endpoint_information_epoch != g.endpoint_epoch)
            .then(|| endpoints(g, partitions_of));
        Ok(Reply {
            member_id: hb.member_id,
            member_epoch,
            heartbeat_interval_ms: cfg.heartbeat_interval_ms,
            task_offset_interval_ms: cfg.task_offset_interval_ms,
            acceptable_recovery_lag: cfg.acceptable_recovery_lag,
            statuses,
            tasks: reply_tasks,
            endpoint_information_epoch: g.endpoint_epoch,
            partitions_by_endpoint,
            to_create,
        })
    }
}

impl StreamsGroups {
    /// Kafka's `StreamsGroup.validateOffsetFetch`, as the consumer groups' check: no member
    /// and a negative epoch pass; else UNKNOWN_MEMBER_ID or STALE_MEMBER_EPOCH. None when
    /// no such group exists.
    pub fn check_fetch(
        &self,
        group_id: &str,
        member_id: Option<&str>,
        epoch: i32,
    ) -> Option<Result<(), ResponseError>> {
        let groups = self.lock();
        let g = groups.get(group_id)?;
        Some(crate::group::check_member_fetch(member_id, epoch, |id| {
            g.members.get(id).map(|m| m.current.epoch)
        }))
    }

    /// A streams group's checks of a commit's member fields (Kafka's
    /// `StreamsGroup.validateOffsetCommit`); None when no such group exists. The member
    /// commits with its epoch; an older epoch (a commit sent while a rebalance moved it on)
    /// only for partitions of tasks it still holds, given to it at or before that epoch, so
    /// a zombie cannot commit for a task that moved. STALE_MEMBER_EPOCH otherwise.
    pub fn check_commit(&self, c: &crate::group::CommitCheck) -> Option<Result<(), ResponseError>> {
        let (epoch, member_id) = (c.generation_or_epoch, c.member_id);
        let groups = self.lock();
        let g = groups.get(c.group_id)?;
        if epoch < 0 && g.members.is_empty() {
            return Some(Ok(()));
        }
        if c.transactional && epoch == -1 && member_id.is_empty() && c.instance_id.is_none() {
            return Some(Ok(()));
        }
        let Some(m) = g.members.get(member_id) else {
            return Some(Err(ResponseError::UnknownMemberId));
        };
        if !c.transactional && c.version < 9 {
            // Kafka: OffsetCommit v9+ for members of the modern protocols.
            return Some(Err(ResponseError::UnsupportedVersion));
        }
        let stale = if c.transactional && c.version < 6 {
            ResponseError::IllegalGeneration
        } else {
            ResponseError::StaleMemberEpoch
        };
        if epoch == m.current.epoch {
            return Some(Ok(()));
        }
        if epoch < 0 || epoch > m.current.epoch {
            return Some(Err(stale));
        }
        let cur = &m.current;
        let held_since = |task: (String, i32)| -> bool {
            let held = cur.assigned.active.contains(&task)
                || cur.pending_revocation.active.contains(&task);
            held && cur.active_epochs.get(&task).is_some_and(|e| *e <= epoch)
        };
        let topology = g.topology.as_ref();
        let ok = c.partitions.iter().all(|(id, p)| {
            let Some(name) = (c.topic_name)(id) else {
                return false;
            };
            topology.is_some_and(|t| {
                t.subtopologies.iter().any(|s| {
                    let reads = s.source_topics.contains(&name)
                        || s.repartition_source_topics.iter().any(|r| r.name == name);
                    reads && held_since((s.id.clone(), *p))
                })
            })
        });
        Some(if ok { Ok(()) } else { Err(stale) })
    }
}

/// The member epoch of a static member that left for now (Kafka's
/// LEAVE_GROUP_STATIC_MEMBER_EPOCH).
const LEFT_STATIC: i32 = -2;

/// A static member's heartbeat must come from the member that holds its instance id
/// (Kafka's throwIfStaticMemberIsUnknown and throwIfInstanceIdIsFenced).
fn check_static(g: &StreamsGroup, member_id: &str, inst: &str) -> Result<(), Refusal> {
    let Some(holder) = g
        .members
        .values()
        .find(|m| m.instance_id.as_deref() == Some(inst))
    else {
        return Err(fail(
            ResponseError::UnknownMemberId,
            format!("Instance id {inst} is unknown."),
        ));
    };
    if holder.member_id != member_id {
        return Err(fail(
            ResponseError::FencedInstanceId,
            format!(
                "Static member {member_id} with instance id {inst} was fenced by member {}.",
                holder.member_id
            ),
        ));
    }
    Ok(())
}

/// A member leaves (or is fenced): its tasks go back to the pool at a new group epoch.
/// The fingerprint is taken here too, so the next heartbeat does not count the same
/// change twice.
fn remove_member(g: &mut StreamsGroup, member_id: &str, standbys: u32) {
    g.members.remove(member_id);
    g.target.remove(member_id);
    g.group_epoch += 1;
    g.fingerprint = fingerprint(g, standbys);
    if g.members.is_empty() {
        g.assignment_epoch = g.group_epoch;
        g.target.clear();
    }
}

/// A group rebuilt from its records in log order; None when the last word was its
/// deletion (or it never had an epoch). Its topology is configured against the topics as
/// they are now, so it reads as it did before the failover.
fn restore(
    id: &str,
    recs: Vec<StreamsRecord>,
    partitions_of: &dyn Fn(&str) -> Option<i32>,
    now: Instant,
) -> Option<StreamsGroup> {
    let mut meta = None;
    let mut topology = None;
    let mut target_epoch = None;
    let mut metas: BTreeMap<String, MemberMeta> = BTreeMap::new();
    let mut targets: BTreeMap<String, TaskSets> = BTreeMap::new();
    let mut currents: BTreeMap<String, Current> = BTreeMap::new();
    for r in recs {
        match r {
            StreamsRecord::Metadata(None) => {
                meta = None;
                topology = None;
                target_epoch = None;
                metas.clear();
                targets.clear();
                currents.clear();
            }
            StreamsRecord::Metadata(m) => meta = m,
            StreamsRecord::Topology(t) => topology = t,
            StreamsRecord::TargetEpoch(e) => target_epoch = e,
            StreamsRecord::Member(m, Some(v)) => {
                metas.insert(m, v);
            }
            StreamsRecord::Member(m, None) => {
                metas.remove(&m);
            }
            StreamsRecord::Target(m, Some(t)) => {
                targets.insert(m, t);
            }
            StreamsRecord::Target(m, None) => {
                targets.remove(&m);
            }
            StreamsRecord::Current(m, Some(c)) => {
                currents.insert(m, c);
            }
            StreamsRecord::Current(m, None) => {
                currents.remove(&m);
            }
        }
    }
    let meta = meta?;
    let mut g = StreamsGroup::new(id);
    g.group_epoch = meta.epoch;
    g.fingerprint = meta.metadata_hash as u64;
    g.assignment_epoch = target_epoch.unwrap_or(meta.epoch);
    g.configured = topology
        .as_ref()
        .and_then(|t| configure(t, partitions_of).ok());
    g.topology = topology;
    targets.retain(|m, _| metas.contains_key(m));
    g.target = targets;
    for (member_id, m) in metas {
        let current = currents.remove(&member_id).unwrap_or_default();
        let revoke_deadline = (current.state == MemberState::UnrevokedTasks)
            .then(|| now + Duration::from_millis(m.rebalance_timeout_ms.max(0) as u64));
        let member = Member {
            member_id: member_id.clone(),
            instance_id: m.instance_id,
            rack_id: m.rack_id,
            client_id: m.client_id,
            client_host: m.client_host,
            rebalance_timeout_ms: m.rebalance_timeout_ms,
            topology_epoch: m.topology_epoch,
            process_id: m.process_id,
            user_endpoint: m.user_endpoint,
            client_tags: m.client_tags,
            current,
            last_heartbeat: now,
            revoke_deadline,
            last_sent: None,
        };
        g.members.insert(member_id, member);
    }
    Some(g)
}

/// Runs the assignor for the group epoch: a topology that is not ready gives no tasks.
fn compute_target(g: &mut StreamsGroup, standbys: u32) {
    let (tasks, stateful) = match &g.configured {
        Some(c) if c.ready() => (c.tasks.clone(), c.stateful.clone()),
        _ => (BTreeMap::new(), Default::default()),
    };
    let specs: Vec<MemberSpec> = g
        .members
        .values()
        .map(|m| MemberSpec {
            member_id: m.member_id.clone(),
            process_id: m.process_id.clone(),
            active: m.current.assigned.active.clone(),
            standby: m.current.assigned.standby.clone(),
        })
        .collect();
    g.target = assignor::assign(&specs, &tasks, &stateful, standbys)
        .into_iter()
        .map(|(id, a)| {
            (
                id,
                TaskSets {
                    active: a.active,
                    standby: a.standby,
                    warmup: Default::default(),
                },
            )
        })
        .collect();
    g.assignment_epoch = g.group_epoch;
}

/// Each member with an endpoint: the partitions of its active and standby tasks' source
/// and repartition source topics.
fn endpoints(
    g: &StreamsGroup,
    partitions_of: &dyn Fn(&str) -> Option<i32>,
) -> Vec<EndpointPartitions> {
    let Some(topology) = &g.topology else {
        return Vec::new();
    };
    let topics_of = |subtopology: &str| -> Vec<String> {
        topology
            .subtopologies
            .iter()
            .filter(|s| s.id == subtopology)
            .flat_map(|s| {
                s.source_topics
                    .iter()
                    .cloned()
                    .chain(s.repartition_source_topics.iter().map(|t| t.name.clone()))
            })
            .collect()
    };
    let map = |tasks: &std::collections::BTreeSet<(String, i32)>| {
        let mut out: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for (s, p) in tasks {
            for t in topics_of(s) {
                if partitions_of(&t).is_some_and(|n| *p < n) {
                    out.entry(t).or_default().push(*p);
                }
            }
        }
        out
    };
    g.members
        .values()
        .filter_map(|m| {
            let endpoint = m.user_endpoint.clone()?;
            let standby: std::collections::BTreeSet<_> = m
                .current
                .assigned
                .standby
                .union(&m.current.assigned.warmup)
                .cloned()
                .collect();
            Some(EndpointPartitions {
                endpoint,
                active: map(&m.current.assigned.active),
                standby: map(&standby),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::topology::{Subtopology, TopicInfo};
    use super::*;

    fn info(name: &str) -> TopicInfo {
        TopicInfo {
            name: name.into(),
            partitions: 0,
            replication_factor: -1,
            configs: BTreeMap::new(),
        }
    }

    fn word_count() -> Topology {
        Topology {
            epoch: 0,
            subtopologies: vec![
                Subtopology {
                    id: "0".into(),
                    source_topics: vec!["in".into()],
                    repartition_sink_topics: vec!["app-words-repartition".into()],
                    state_changelog_topics: vec![],
                    repartition_source_topics: vec![],
                    copartition_groups: vec![],
                },
                Subtopology {
                    id: "1".into(),
                    source_topics: vec![],
                    repartition_sink_topics: vec![],
                    state_changelog_topics: vec![info("app-counts-changelog")],
                    repartition_source_topics: vec![info("app-words-repartition")],
                    copartition_groups: vec![],
                },
            ],
        }
    }

    fn join(member: &str, process: &str) -> Heartbeat {
        Heartbeat {
            group_id: "app".into(),
            member_id: member.into(),
            member_epoch: 0,
            endpoint_information_epoch: -1,
            rebalance_timeout_ms: 300_000,
            topology: Some(word_count()),
            owned: Some(TaskSets::default()),
            process_id: Some(process.into()),
            ..Default::default()
        }
    }

    impl StreamsGroups {
        /// The heartbeat's reply alone (no journal in these tests).
        fn reply(
            &self,
            hb: Heartbeat,
            partitions_of: &dyn Fn(&str) -> Option<i32>,
            now: Instant,
        ) -> Result<Reply, Refusal> {
            self.heartbeat(hb, partitions_of, now).map(|(r, _)| r)
        }
    }

    fn beat(member: &str, epoch: i32, owned: Option<TaskSets>) -> Heartbeat {
        Heartbeat {
            group_id: "app".into(),
            member_id: member.into(),
            member_epoch: epoch,
            endpoint_information_epoch: -1,
            rebalance_timeout_ms: -1,
            owned,
            ..Default::default()
        }
    }

    fn cluster(topics: &[(&str, i32)]) -> impl Fn(&str) -> Option<i32> {
        let m: BTreeMap<String, i32> = topics.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        move |t| m.get(t).copied()
    }

    fn no_delay() -> StreamsGroups {
        StreamsGroups::new(StreamsGroupConfig {
            initial_rebalance_delay_ms: 0,
            ..Default::default()
        })
    }

    #[test]
    fn a_member_goes_from_missing_topics_to_its_tasks() {
        let groups = no_delay();
        let now = Instant::now();
        let r = groups.reply(join("a", "p1"), &cluster(&[]), now).unwrap();
        assert_eq!(r.member_epoch, 2, "a first join is group epoch 2");
        assert_eq!(r.statuses[0].0, StatusCode::MissingSourceTopics);
        assert!(r.tasks.unwrap().is_empty());
        assert_eq!(groups.with("app", |g| g.state()), Some("NotReady"));
        let r = groups
            .reply(
                beat("a", 2, Some(TaskSets::default())),
                &cluster(&[("in", 3)]),
                now,
            )
            .unwrap();
        assert_eq!(r.statuses[0].0, StatusCode::MissingInternalTopics);
        assert_eq!(r.to_create.len(), 2);
        let all = cluster(&[
            ("in", 3),
            ("app-words-repartition", 3),
            ("app-counts-changelog", 3),
        ]);
        let r = groups
            .reply(
                beat("a", r.member_epoch, Some(TaskSets::default())),
                &all,
                now,
            )
            .unwrap();
        assert!(r.statuses.is_empty(), "{:?}", r.statuses);
        assert_eq!(r.member_epoch, 4);
        assert_eq!(r.tasks.unwrap().active.len(), 6);
        assert_eq!(groups.with("app", |g| g.state()), Some("Stable"));
    }

    #[test]
    fn the_initial_delay_answers_epoch_one_then_assigns() {
        let groups = StreamsGroups::new(StreamsGroupConfig {
            initial_rebalance_delay_ms: 1_000,
            ..Default::default()
        });
        let all = cluster(&[
            ("in", 3),
            ("app-words-repartition", 3),
            ("app-counts-changelog", 3),
        ]);
        let t0 = Instant::now();
        let r = groups.reply(join("a", "p1"), &all, t0).unwrap();
        assert_eq!(r.member_epoch, 1, "never 0 while delayed");
        assert_eq!(r.statuses[0].0, StatusCode::AssignmentDelayed);
        let r = groups
            .reply(
                beat("a", 1, Some(TaskSets::default())),
                &all,
                t0 + Duration::from_millis(1_100),
            )
            .unwrap();
        assert!(r.statuses.is_empty());
        assert_eq!((r.member_epoch, r.tasks.unwrap().active.len()), (2, 6));
    }

    #[test]
    fn a_second_member_gets_tasks_only_once_the_first_gave_them_up() {
        let groups = no_delay();
        let all = cluster(&[
            ("in", 3),
            ("app-words-repartition", 3),
            ("app-counts-changelog", 3),
        ]);
        let now = Instant::now();
        let a = groups.reply(join("a", "p1"), &all, now).unwrap();
        let a_tasks = a.tasks.unwrap();
        assert_eq!(a_tasks.active.len(), 6);
        let b = groups.reply(join("b", "p2"), &all, now).unwrap();
        assert!(b.tasks.unwrap().is_empty(), "a still runs them all");
        // a is told to give three up, keeping its epoch.
        let a2 = groups
            .reply(beat("a", a.member_epoch, Some(a_tasks.clone())), &all, now)
            .unwrap();
        assert_eq!(a2.member_epoch, a.member_epoch);
        let kept = a2.tasks.unwrap();
        assert_eq!(kept.active.len(), 3);
        // Until a reports them gone, b gets nothing; then b gets the three.
        let b2 = groups
            .reply(
                beat("b", b.member_epoch, Some(TaskSets::default())),
                &all,
                now,
            )
            .unwrap();
        assert!(b2.tasks.is_none() || b2.tasks.as_ref().unwrap().is_empty());
        let a3 = groups
            .reply(beat("a", a2.member_epoch, Some(kept.clone())), &all, now)
            .unwrap();
        assert!(a3.member_epoch > a.member_epoch);
        let b3 = groups
            .reply(
                beat("b", b2.member_epoch, Some(TaskSets::default())),
                &all,
                now,
            )
            .unwrap();
        let got = b3.tasks.unwrap();
        assert_eq!(got.active.len(), 3);
        assert!(got.active.is_disjoint(&kept.active));
        assert_eq!(groups.with("app", |g| g.state()), Some("Stable"));
        // b leaves: its tasks return to a at a new epoch.
        groups.reply(beat("b", -1, None), &all, now).unwrap();
        let a4 = groups
            .reply(beat("a", a3.member_epoch, Some(kept)), &all, now)
            .unwrap();
        assert_eq!(a4.tasks.unwrap().active.len(), 6);
    }

    #[test]
    fn a_static_member_leaves_for_now_and_its_next_incarnation_takes_its_tasks_back() {
        let groups = no_delay();
        let all = cluster(&[("in", 2)]);
        let now = Instant::now();
        let stat = |member: &str, epoch: i32| {
            let mut hb = if epoch == 0 {
                join(member, "p1")
            } else {
                beat(member, epoch, Some(TaskSets::default()))
            };
            hb.instance_id = Some("instance-1".into());
            hb
        };
        let topology = Topology {
            epoch: 0,
            subtopologies: vec![Subtopology {
                id: "0".into(),
                source_topics: vec!["in".into()],
                ..Default::default()
            }],
        };
        let mut first = stat("a", 0);
        first.topology = Some(topology.clone());
        let a = groups.reply(first, &all, now).unwrap();
        let tasks = a.tasks.clone().unwrap();
        assert_eq!(tasks.active.len(), 2);
        let epoch = groups.with("app", |g| g.group_epoch).unwrap();

        // Leaving with -2 keeps the member and its tasks.
        let left = groups.reply(stat("a", -2), &all, now).unwrap();
        assert_eq!(left.member_epoch, -2);
        assert_eq!(
            groups.with("app", |g| g.members["a"].current.assigned.clone()),
            Some(tasks.clone())
        );
        // The old incarnation can no longer heartbeat; an unknown instance is refused.
        let err = groups
            .reply(stat("a", a.member_epoch), &all, now)
            .unwrap_err();
        assert_eq!(err.0, ResponseError::FencedMemberEpoch);
        let mut stranger = beat("z", 1, None);
        stranger.instance_id = Some("instance-9".into());
        let err = groups.reply(stranger, &all, now).unwrap_err();
        assert_eq!(
            err,
            (
                ResponseError::UnknownMemberId,
                Some("Instance id instance-9 is unknown.".into())
            )
        );

        // The next incarnation joins with a new member id: same tasks, no new group epoch.
        let mut again = stat("a2", 0);
        again.topology = Some(topology.clone());
        let a2 = groups.reply(again, &all, now).unwrap();
        assert_eq!(a2.tasks, Some(tasks));
        assert_eq!(groups.with("app", |g| g.group_epoch), Some(epoch));
        assert_eq!(groups.with("app", |g| g.members.len()), Some(1));
        // While it runs, the instance id is not released, and the replaced member id is
        // fenced.
        let mut third = stat("a3", 0);
        third.topology = Some(topology);
        let err = groups.reply(third, &all, now).unwrap_err();
        assert_eq!(err.0, ResponseError::UnreleasedInstanceId);
        let err = groups
            .reply(stat("a", a.member_epoch), &all, now)
            .unwrap_err();
        assert_eq!(
            err,
            (
                ResponseError::FencedInstanceId,
                Some("Static member a with instance id instance-1 was fenced by member a2.".into())
            )
        );
        // Leaving with -1 removes it for good.
        groups.reply(stat("a2", -1), &all, now).unwrap();
        assert_eq!(groups.with("app", |g| g.members.len()), Some(0));
    }

    #[test]
    fn an_older_epoch_commits_only_for_tasks_the_member_had_then() {
        let groups = no_delay();
        let all = cluster(&[("in", 2)]);
        let now = Instant::now();
        let topology = Topology {
            epoch: 0,
            subtopologies: vec![Subtopology {
                id: "0".into(),
                source_topics: vec!["in".into()],
                ..Default::default()
            }],
        };
        let joining = |m: &str, p: &str| Heartbeat {
            topology: Some(topology.clone()),
            ..join(m, p)
        };
        let a = groups.reply(joining("a", "p1"), &all, now).unwrap();
        let a_tasks = a.tasks.unwrap();
        assert_eq!(a_tasks.active.len(), 2);
        let b = groups.reply(joining("b", "p2"), &all, now).unwrap();
        // a gives one task up, then moves to the new epoch with the other.
        let a2 = groups
            .reply(beat("a", a.member_epoch, Some(a_tasks)), &all, now)
            .unwrap();
        let kept = a2.tasks.unwrap();
        let a3 = groups
            .reply(beat("a", a2.member_epoch, Some(kept.clone())), &all, now)
            .unwrap();
        assert!(a3.member_epoch > a.member_epoch);
        groups
            .reply(
                beat("b", b.member_epoch, Some(TaskSets::default())),
                &all,
                now,
            )
            .unwrap();
        let topic = uuid::Uuid::from_u128(1);
        let commit = |member: &str, epoch: i32, partition: i32, version: i16| {
            let parts = [(topic, partition)];
            let check = crate::group::CommitCheck {
                group_id: "app",
                generation_or_epoch: epoch,
                member_id: member,
                instance_id: &None,
                partitions: &parts,
                topic_name: &|_| Some("in".to_string()),
                transactional: false,
                version,
            };
            groups.check_commit(&check).unwrap()
        };
        let kept_p = kept.active.iter().next().unwrap().1;
        let moved_p = 1 - kept_p;
        // The current epoch is the member's, whatever the partition (as Kafka).
        assert_eq!(commit("a", a3.member_epoch, kept_p, 9), Ok(()));
        // The epoch a had the kept task at: accepted for it, not for the moved one.
        assert_eq!(commit("a", a.member_epoch, kept_p, 9), Ok(()));
        assert_eq!(
            commit("a", a.member_epoch, moved_p, 9),
            Err(ResponseError::StaleMemberEpoch)
        );
        assert_eq!(
            commit("a", a3.member_epoch + 1, kept_p, 9),
            Err(ResponseError::StaleMemberEpoch)
        );
        assert_eq!(
            commit("a", a3.member_epoch, kept_p, 8),
            Err(ResponseError::UnsupportedVersion)
        );
        assert_eq!(
            commit("z", a3.member_epoch, kept_p, 9),
            Err(ResponseError::UnknownMemberId)
        );
    }

    #[test]
    fn kafkas_refusals() {
        let groups = no_delay();
        let all = cluster(&[("in", 3)]);
        let now = Instant::now();
        let err = |hb: Heartbeat| groups.reply(hb, &all, now).unwrap_err();
        let mut no_timeout = join("a", "p");
        no_timeout.rebalance_timeout_ms = -1;
        assert_eq!(
            err(no_timeout).1.unwrap(),
            "RebalanceTimeoutMs must be provided in first request."
        );
        let mut no_topology = join("a", "p");
        no_topology.topology = None;
        assert_eq!(err(no_topology).0, ResponseError::InvalidRequest);
        assert_eq!(err(beat("a", 3, None)).0, ResponseError::GroupIdNotFound);
        assert!(!groups.exists("app"), "a refused request leaves no group");
        groups.reply(join("a", "p"), &all, now).unwrap();
        assert_eq!(err(beat("x", 2, None)).0, ResponseError::UnknownMemberId);
        assert_eq!(err(beat("a", 9, None)).0, ResponseError::FencedMemberEpoch);
        let mut other = join("b", "p");
        other.topology.as_mut().unwrap().subtopologies.pop();
        assert_eq!(
            err(other).1.unwrap(),
            "Topology updates are not supported yet."
        );
        assert_eq!(
            groups.delete("app"),
            Some(Err(ResponseError::NonEmptyGroup))
        );
    }
}

#[cfg(test)]
mod journal_tests {
    use std::sync::{Arc, Mutex};

    use bytes::Bytes;

    use super::super::super::journal::{parse, JournalRecord, JournalWrite, OffsetJournal};
    use super::super::topology::{Subtopology, TopicInfo};
    use super::*;

    /// Keeps what the coordinator appends, as `__consumer_offsets` would.
    #[derive(Default)]
    struct Log(Mutex<Vec<(Bytes, Option<Bytes>)>>);

    impl OffsetJournal for Log {
        fn append(
            &self,
            _group: &str,
            _producer: Option<(i64, i16)>,
            records: Vec<(Bytes, Option<Bytes>)>,
        ) -> Result<JournalWrite, ResponseError> {
            self.0.lock().unwrap().extend(records);
            Ok(tokio::spawn(async { Ok(()) }))
        }
    }

    impl Log {
        /// The streams records read back through the coordinator's own parser.
        fn read(&self) -> BTreeMap<String, Vec<StreamsRecord>> {
            let mut out: BTreeMap<String, Vec<StreamsRecord>> = BTreeMap::new();
            for (k, v) in self.0.lock().unwrap().iter() {
                match parse(k, v.as_deref()) {
                    Some(JournalRecord::Streams { group, record }) => {
                        out.entry(group).or_default().push(record)
                    }
                    other => panic!("not a streams record: {other:?}"),
                }
            }
            out
        }
    }

    fn topology() -> Topology {
        Topology {
            epoch: 0,
            subtopologies: vec![Subtopology {
                id: "0".into(),
                source_topics: vec!["in".into()],
                state_changelog_topics: vec![TopicInfo {
                    name: "app-store-changelog".into(),
                    partitions: 0,
                    replication_factor: -1,
                    configs: BTreeMap::new(),
                }],
                ..Default::default()
            }],
        }
    }

    fn hb(member: &str, process: &str, epoch: i32, owned: TaskSets) -> Heartbeat {
        Heartbeat {
            group_id: "app".into(),
            member_id: member.into(),
            member_epoch: epoch,
            endpoint_information_epoch: -1,
            rebalance_timeout_ms: if epoch == 0 { 300_000 } else { -1 },
            topology: (epoch == 0).then(topology),
            owned: Some(owned),
            process_id: Some(process.into()),
            ..Default::default()
        }
    }

    /// What a member would see as its state in Describe.
    fn snapshot(groups: &StreamsGroups) -> (i32, i32, &'static str, Vec<(String, Current)>) {
        groups
            .with("app", |g| {
                (
                    g.group_epoch,
                    g.assignment_epoch,
                    g.state(),
                    g.members
                        .values()
                        .map(|m| (m.member_id.clone(), m.current.clone()))
                        .collect(),
                )
            })
            .unwrap()
    }

    #[tokio::test]
    async fn a_new_coordinator_takes_the_group_over_from_its_records() {
        let log = Arc::new(Log::default());
        let groups = StreamsGroups::new(StreamsGroupConfig {
            initial_rebalance_delay_ms: 0,
            ..Default::default()
        });
        groups.set_journal(log.clone());
        let all = |t: &str| ["in", "app-store-changelog"].contains(&t).then_some(4);
        let now = Instant::now();
        // Two members of two processes join and reconcile until the group is stable.
        let mut owned: BTreeMap<&str, (i32, TaskSets)> = BTreeMap::new();
        for m in ["a", "b"] {
            let (r, w) = groups
                .heartbeat(hb(m, m, 0, TaskSets::default()), &all, now)
                .unwrap();
            assert!(w.is_some(), "a join is journaled");
            owned.insert(m, (r.member_epoch, r.tasks.unwrap_or_default()));
        }
        for _ in 0..4 {
            for m in ["a", "b"] {
                let (epoch, tasks) = owned[m].clone();
                let (r, _) = groups
                    .heartbeat(hb(m, m, epoch, tasks.clone()), &all, now)
                    .unwrap();
                owned.insert(m, (r.member_epoch, r.tasks.unwrap_or(tasks)));
            }
        }
        let before = snapshot(&groups);
        assert_eq!(before.2, "Stable", "{before:?}");
        assert_eq!(owned["a"].1.active.len() + owned["b"].1.active.len(), 4);

        // Another coordinator reads the records and knows the same group.
        let next = StreamsGroups::new(StreamsGroupConfig::default());
        next.set_journal(log.clone());
        assert_eq!(next.load(&all, |_| true, log.read()), 1);
        assert_eq!(snapshot(&next), before);
        assert_eq!(
            next.with("app", |g| g.topology.clone()).unwrap(),
            Some(topology().canonical())
        );
        // Each member carries on with the epoch and tasks it has: no rejoin, no new epoch.
        for m in ["a", "b"] {
            let (epoch, tasks) = owned[m].clone();
            let (r, _) = next
                .heartbeat(hb(m, m, epoch, tasks.clone()), &all, now)
                .unwrap();
            assert_eq!(r.member_epoch, epoch);
            assert_eq!(r.tasks, Some(tasks), "the full assignment is sent again");
        }
        assert_eq!(snapshot(&next).0, before.0, "the group epoch did not move");

        // Both leave and the group is deleted: its tombstones leave nothing to load.
        for m in ["a", "b"] {
            next.heartbeat(hb(m, m, -1, TaskSets::default()), &all, now)
                .unwrap();
        }
        assert_eq!(next.delete("app"), Some(Ok(())));
        let third = StreamsGroups::new(StreamsGroupConfig::default());
        assert_eq!(third.load(&all, |_| true, log.read()), 0);
        assert!(!third.exists("app"));
    }
}
