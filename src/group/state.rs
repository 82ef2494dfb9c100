//! The classic group membership state machine (Kafka's GroupMetadata), without I/O.

use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// Kafka's classic group states, named as DescribeGroups and ListGroups report them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// What a JoinGroup caller gets back once the join completes.
#[derive(Debug, Clone, Default)]
pub struct JoinOutcome {
    pub error: Option<ResponseError>,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Only for the leader: every member with its metadata for the chosen protocol.
    pub members: Vec<(String, Option<String>, Bytes)>,
    /// KIP-814: a static leader rejoining a Stable group must not compute a new assignment.
    pub skip_assignment: bool,
}

impl JoinOutcome {
    pub fn error(e: ResponseError, member_id: &str) -> JoinOutcome {
        JoinOutcome {
            error: Some(e),
            generation_id: -1,
            member_id: member_id.to_string(),
            ..Default::default()
        }
    }
}

/// What a SyncGroup caller gets back.
#[derive(Debug, Clone, Default)]
pub struct SyncOutcome {
    pub error: Option<ResponseError>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

/// One member of a classic group.
pub struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    pub last_heartbeat: Instant,
    pub join_waiter: Option<oneshot::Sender<JoinOutcome>>,
    pub sync_waiter: Option<oneshot::Sender<SyncOutcome>>,
}

impl Member {
    /// A member as its group's last metadata record holds it, taken over by a new
    /// coordinator: its session starts afresh at `now`, nobody is waiting on it.
    pub fn restored(m: super::journal::MemberRecord, protocol: &str, now: Instant) -> Member {
        Member {
            member_id: m.member_id,
            group_instance_id: m.group_instance_id,
            client_id: m.client_id,
            client_host: m.client_host,
            session_timeout_ms: m.session_timeout_ms,
            rebalance_timeout_ms: m.rebalance_timeout_ms,
            protocols: vec![(protocol.to_string(), m.subscription)],
            assignment: m.assignment,
            last_heartbeat: now,
            join_waiter: None,
            sync_waiter: None,
        }
    }

    pub fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

/// A classic consumer group: its members, generation and current assignment.
///
/// It exists to hold the rebalance state machine in one place: joins wait here until every
/// member has rejoined (or the rebalance timeout passes), the leader's assignment is handed
/// out here, and sessions expire here.
pub struct Group {
    pub group_id: String,
    pub state: GroupState,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader_id: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED (KIP-394) that have not joined yet.
    pub pending_members: HashMap<String, Instant>,
    /// group.instance.id -> member id, for static members (KIP-345).
    pub static_members: HashMap<String, String>,
    /// When the current rebalance must complete even if some members have not rejoined.
    pub rebalance_deadline: Option<Instant>,
    /// Earliest completion of the first rebalance of an empty group (initial delay).
    pub initial_delay_until: Option<Instant>,
    /// Members in join order, to pick the first joiner as leader.
    pub join_order: Vec<String>,
    /// When the group last became Empty (ms since the epoch): its offsets expire
    /// `offsets.retention.minutes` after it. None for a group that never had members.
    pub empty_since_ms: Option<i64>,
    /// Cluster mode: the (generation, state) last written to `__consumer_offsets`, so each
    /// completed rebalance and each return to Empty is written once.
    pub journaled: Option<(i32, GroupState)>,
}

impl Group {
    pub fn new(group_id: &str) -> Group {
        Group {
            group_id: group_id.to_string(),
            state: GroupState::Empty,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader_id: None,
            members: BTreeMap::new(),
            pending_members: HashMap::new(),
            static_members: HashMap::new(),
            rebalance_deadline: None,
            initial_delay_until: None,
            join_order: Vec::new(),
            empty_since_ms: None,
            journaled: None,
        }
    }

    /// Protocols every member supports, in the order the candidate supports them.
    pub fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        let candidate: HashSet<&str> = protocols.iter().map(|(n, _)| n.as_str()).collect();
        self.common_protocols()
            .iter()
            .any(|p| candidate.contains(p.as_str()))
    }

    fn common_protocols(&self) -> Vec<String> {
        let mut iter = self.members.values();
        let Some(first) = iter.next() else {
            return Vec::new();
        };
        let mut common: Vec<String> = first.protocols.iter().map(|(n, _)| n.clone()).collect();
        for m in iter {
            let names: HashSet<&str> = m.protocols.iter().map(|(n, _)| n.as_str()).collect();
            common.retain(|p| names.contains(p.as_str()));
        }
        common
    }

    /// Kafka's vote: each member votes for its most preferred protocol that all support.
    pub fn select_protocol(&self) -> Option<String> {
        let common: HashSet<String> = self.common_protocols().into_iter().collect();
        let mut votes: BTreeMap<String, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some((name, _)) = m.protocols.iter().find(|(n, _)| common.contains(n)) {
                *votes.entry(name.clone()).or_default() += 1;
            }
        }
        votes
            .into_iter()
            .max_by_key(|(_, n)| *n)
            .map(|(name, _)| name)
    }

    pub fn all_members_joined(&self) -> bool {
        self.members.values().all(|m| m.join_waiter.is_some()) && self.pending_members.is_empty()
    }

    /// Moves to PreparingRebalance: everyone must rejoin by the largest rebalance timeout.
    pub fn prepare_rebalance(&mut self, now: Instant, initial_delay_ms: u64) {
        if self.state == GroupState::CompletingRebalance {
            // Members waiting for an assignment will not get one from this generation.
            for m in self.members.values_mut() {
                if let Some(w) = m.sync_waiter.take() {
                    let _ = w.send(SyncOutcome {
                        error: Some(ResponseError::RebalanceInProgress),
                        ..Default::default()
                    });
                }
            }
        }
        let timeout_ms = self
            .members
            .values()
            .map(|m| m.rebalance_timeout_ms.max(0) as u64)
            .max()
            .unwrap_or(0);
        self.rebalance_deadline = Some(now + std::time::Duration::from_millis(timeout_ms));
        if self.state == GroupState::Empty && initial_delay_ms > 0 {
            let delay = std::time::Duration::from_millis(initial_delay_ms.min(timeout_ms));
            self.initial_delay_until = Some(now + delay);
        }
        self.state = GroupState::PreparingRebalance;
    }

    /// The earliest instant at which a session expires or a rebalance phase is due, just
    /// past it (expiry is strictly after the session timeout).
    pub fn next_deadline(&self) -> Option<Instant> {
        let sessions = self
            .members
            .values()
            .filter(|m| m.join_waiter.is_none())
            .map(|m| {
                m.last_heartbeat
                    + std::time::Duration::from_millis(m.session_timeout_ms.max(0) as u64)
            });
        let phases = [self.rebalance_deadline, self.initial_delay_until]
            .into_iter()
            .flatten()
            .filter(|_| self.state == GroupState::PreparingRebalance);
        sessions
            .chain(self.pending_members.values().copied())
            .chain(phases)
            .min()
            .map(|t| t + std::time::Duration::from_millis(1))
    }

    /// Whether a PreparingRebalance group can complete its join phase now.
    pub fn join_can_complete(&self, now: Instant) -> bool {
        if self.state != GroupState::PreparingRebalance {
            return false;
        }
        let delayed = self.initial_delay_until.is_some_and(|t| now < t);
        let timed_out = self.rebalance_deadline.is_some_and(|t| now >= t);
        timed_out || (self.all_members_joined() && !delayed)
    }

    /// Completes the join phase: drops members that did not rejoin, bumps the generation,
    /// picks the protocol and leader, and answers every waiting JoinGroup.
    pub fn complete_join(&mut self) {
        let gone: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| m.join_waiter.is_none())
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            self.remove_member(&id);
        }
        // A member may wait in JoinGroup longer than its session timeout (for a slow one to
        // rejoin); as in Kafka, completing the join starts every member's session afresh.
        let now = Instant::now();
        for m in self.members.values_mut() {
            m.last_heartbeat = now;
        }
        self.pending_members.clear();
        self.rebalance_deadline = None;
        self.initial_delay_until = None;
        self.generation_id += 1;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.empty_since_ms = Some(crate::clock::now_ms());
            self.protocol_name = None;
            self.leader_id = None;
            return;
        }
        self.protocol_name = self.select_protocol();
        let leader_alive = self
            .leader_id
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l));
        if !leader_alive {
            self.leader_id = self
                .join_order
                .iter()
                .find(|id| self.members.contains_key(*id))
                .cloned();
        }
        self.state = GroupState::CompletingRebalance;
        let protocol = self.protocol_name.clone().unwrap_or_default();
        let leader = self.leader_id.clone().unwrap_or_default();
        let all: Vec<(String, Option<String>, Bytes)> = self
            .members
            .values()
            .map(|m| {
                (
                    m.member_id.clone(),
                    m.group_instance_id.clone(),
                    m.metadata_for(&protocol),
                )
            })
            .collect();
        for m in self.members.values_mut() {
            m.assignment = Bytes::new();
            if let Some(w) = m.join_waiter.take() {
                let _ = w.send(JoinOutcome {
                    error: None,
                    generation_id: self.generation_id,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol_name.clone(),
                    leader: leader.clone(),
                    member_id: m.member_id.clone(),
                    skip_assignment: false,
                    members: if m.member_id == leader {
                        all.clone()
                    } else {
                        Vec::new()
                    },
                });
            }
        }
    }

    /// The join response for a member of the current generation (no rebalance needed).
    pub fn current_join(&self, member_id: &str) -> JoinOutcome {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        let leader = self.leader_id.clone().unwrap_or_default();
        JoinOutcome {
            error: None,
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: leader.clone(),
            member_id: member_id.to_string(),
            skip_assignment: false,
            members: if member_id == leader {
                self.members
                    .values()
                    .map(|m| {
                        (
                            m.member_id.clone(),
                            m.group_instance_id.clone(),
                            m.metadata_for(&protocol),
                        )
                    })
                    .collect()
            } else {
                Vec::new()
            },
        }
    }

    /// Removes a member, failing its waiters, and forgets its static mapping.
    pub fn remove_member(&mut self, member_id: &str) {
        if let Some(mut m) = self.members.remove(member_id) {
            if let Some(w) = m.join_waiter.take() {
                let _ = w.send(JoinOutcome::error(
                    ResponseError::UnknownMemberId,
                    member_id,
                ));
            }
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(SyncOutcome {
                    error: Some(ResponseError::UnknownMemberId),
                    ..Default::default()
                });
            }
            if let Some(instance) = &m.group_instance_id {
                if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                    self.static_members.remove(instance);
                }
            }
        }
        self.join_order.retain(|id| id != member_id);
        if self.leader_id.as_deref() == Some(member_id) {
            self.leader_id = None;
        }
        // An Empty group keeps its protocol type, as Kafka's does: ListGroups and
        // DescribeGroups still call it a "consumer" group once everyone has left.
    }

    /// After membership changed: rebalance if the group was settled, or become Empty.
    pub fn membership_changed(&mut self, now: Instant, initial_delay_ms: u64) {
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                if self.members.is_empty() {
                    self.prepare_rebalance(now, 0);
                    self.complete_join();
                } else {
                    self.prepare_rebalance(now, initial_delay_ms);
                }
            }
            GroupState::PreparingRebalance => {
                if self.members.is_empty() && self.pending_members.is_empty() {
                    self.complete_join();
                }
            }
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    /// Completes SyncGroup for every waiting member once the leader has sent assignments.
    pub fn install_assignment(&mut self, assignments: HashMap<String, Bytes>) {
        for m in self.members.values_mut() {
            m.assignment = assignments.get(&m.member_id).cloned().unwrap_or_default();
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(SyncOutcome {
                    error: None,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol_name.clone(),
                    assignment: m.assignment.clone(),
                });
            }
        }
        self.state = GroupState::Stable;
    }
}
