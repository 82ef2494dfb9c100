//! The metadata service in cluster mode: ZooKeeper holds the topics, and each broker keeps a
//! local mirror of them (their partitions' logs, configs and placements). Admin requests
//! write ZooKeeper, then wait until the mirror has caught up, so that a client that created
//! a topic through this broker can use it here at once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::{
    decode_uuid, encode_uuid, validate_topic_name, Metadata, Placement, Topic, TopicRecord,
    MAX_PARTITIONS_PER_TOPIC,
};
use crate::cluster::topics::{ClusterTopic, CreateTopicError};
use crate::cluster::ClusterView;
use crate::log::Partition;

/// A topic to create, as CreateTopics, auto-creation and the admin API ask for it.
pub struct NewTopic {
    pub name: String,
    /// Ignored when `assignment` is given.
    pub partitions: i32,
    /// Already resolved: -1 (the broker's default) is the caller's to replace.
    pub replication_factor: i32,
    /// Replicas given per partition (CreateTopics' manual assignment).
    pub assignment: Option<BTreeMap<i32, Vec<i32>>>,
    pub configs: BTreeMap<String, String>,
    pub validate_only: bool,
    /// How long to wait for the topic to arrive in this broker's mirror (cluster mode).
    pub wait: Duration,
}

/// What CreateTopics reports about a created (or validated) topic.
pub struct CreatedTopic {
    pub id: Uuid,
    pub partitions: i32,
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
}

type AdminError = (ResponseError, String);

fn zk_error(e: impl std::fmt::Display) -> AdminError {
    tracing::warn!(error = %e, "ZooKeeper write failed");
    (
        ResponseError::UnknownServerError,
        format!("The cluster's metadata could not be written: {e}"),
    )
}

/// A partition's placement from the cluster's view; a leader that is not live is none.
fn placements_of(ct: &ClusterTopic) -> Vec<Placement> {
    // Partitions are numbered from 0 without gaps; stop at the first gap.
    (0..)
        .map_while(|i| ct.partitions.get(&i))
        .map(|p| Placement {
            replicas: p.replicas.clone(),
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            isr: p.isr.clone(),
        })
        .collect()
}

impl Metadata {
    /// The cluster this broker is a member of, if any.
    pub fn cluster(&self) -> Option<&Arc<crate::cluster::Cluster>> {
        self.cluster.as_ref()
    }

    /// A receiver that wakes whenever the topics or their placements change.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// This broker's node id.
    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    /// Whether this broker leads partition `index` of `topic`.
    pub fn leads(&self, topic: &Topic, index: i32) -> bool {
        topic
            .placement(index)
            .is_some_and(|p| p.leader == self.node_id)
    }

    /// Partition `index` of `topic` if this broker leads it: UNKNOWN_TOPIC_OR_PARTITION if
    /// there is no such partition, NOT_LEADER_OR_FOLLOWER if another broker leads it (the
    /// client refreshes its metadata and goes there).
    pub fn led_partition<'a>(
        &self,
        topic: &'a Topic,
        index: i32,
    ) -> Result<&'a Arc<Partition>, ResponseError> {
        let p = topic
            .partition(index)
            .ok_or(ResponseError::UnknownTopicOrPartition)?;
        if self.leads(topic, index) {
            Ok(p)
        } else {
            Err(ResponseError::NotLeaderOrFollower)
        }
    }

    /// Writes an ISR change the partition's leader (this broker) asked for; on failure the
    /// partition may ask again later. The write runs as a task of its own: a follower's
    /// fetch asks for its expansion, and a connection closed meanwhile (a broker restarting
    /// right after its controlled shutdown) must not drop the write and leave the change
    /// pending until the partition gives up on it.
    pub fn change_isr(&self, p: &Arc<Partition>, change: crate::log::partition::IsrChange) {
        use crate::log::partition::IsrChange;
        let (Some(cluster), Some(topic)) = (&self.cluster, self.topic(&p.topic)) else {
            p.isr_change_failed();
            return;
        };
        let Some(placement) = topic.placement(p.index) else {
            p.isr_change_failed();
            return;
        };
        let mut isr = placement.isr.clone();
        let view = cluster.view();
        if let IsrChange::Expand(f) = &change {
            // A broker in controlled shutdown (or gone) does not join the ISR (KIP-841).
            if view.shutting_down.contains(f) || !view.brokers.contains_key(f) {
                tracing::debug!(topic = %p.topic, partition = p.index, follower = f, shutting_down = ?view.shutting_down, "ISR expansion refused: the follower is shutting down or not registered");
                p.isr_change_failed();
                return;
            }
        }
        match &change {
            IsrChange::Expand(f) => {
                if !isr.contains(f) {
                    isr.push(*f);
                }
            }
            IsrChange::Shrink(gone) => isr.retain(|r| !gone.contains(r)),
        }
        // Kafka keeps the ISR in replica order.
        isr.sort_by_key(|r| placement.replicas.iter().position(|x| x == r));
        if isr == placement.isr {
            // Already so (the controller got there first): nothing to write, and nothing
            // will come back from the metadata to clear the pending change.
            tracing::debug!(topic = %p.topic, partition = p.index, ?change, ?isr, "ISR change already made");
            p.isr_change_failed();
            return;
        }
        let (cluster, p, leader_epoch) = (cluster.clone(), p.clone(), placement.leader_epoch);
        tokio::spawn(async move {
            match cluster.set_isr(&p.topic, p.index, leader_epoch, &isr).await {
                Ok(true) => {
                    tracing::info!(topic = %p.topic, partition = p.index, ?change, ?isr, "ISR changed")
                }
                Ok(false) => {
                    tracing::info!(topic = %p.topic, partition = p.index, ?change, "ISR change refused: leadership moved");
                    p.isr_change_failed();
                }
                Err(e) => {
                    tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "ISR change not written");
                    p.isr_change_failed();
                }
            }
        });
    }

    /// Partitions this broker leads that another live in-sync replica (not itself shutting
    /// down) could lead instead.
    fn movable_leaderships(&self) -> usize {
        let Some(cluster) = &self.cluster else {
            return 0;
        };
        let view = cluster.view();
        let me = self.node_id;
        self.topics()
            .iter()
            .flat_map(|t| t.placements.iter())
            .filter(|p| {
                p.leader == me
                    && p.isr.iter().any(|r| {
                        *r != me && view.brokers.contains_key(r) && !view.shutting_down.contains(r)
                    })
            })
            .count()
    }

    /// Waits (bounded) until this broker's mirror shows `leader` leading the partition.
    pub async fn wait_for_leader(&self, topic: &str, partition: i32, leader: i32, wait: Duration) {
        self.wait_for(wait, |md| {
            md.topic(topic)
                .and_then(|t| t.placement(partition).map(|p| p.leader == leader))
                .unwrap_or(true)
        })
        .await;
    }

    /// Kafka's controlled shutdown: asks the controller to move this broker's leaderships
    /// to other in-sync replicas and waits (bounded) until the metadata shows it done.
    pub async fn controlled_shutdown(&self, wait: Duration) {
        let Some(cluster) = &self.cluster else { return };
        let before = self.movable_leaderships();
        if let Err(e) = cluster.request_controlled_shutdown().await {
            tracing::warn!(error = %e, "controlled shutdown not requested; leaderships move when the session ends");
            return;
        }
        let started = std::time::Instant::now();
        let done = self
            .wait_for(wait, |md| md.movable_leaderships() == 0)
            .await;
        tracing::info!(
            leaderships = before,
            moved = done,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "controlled shutdown"
        );
    }

    /// Makes the local mirror match the cluster's topics: creates what is new (with the
    /// cluster's topic id), grows partitions, takes configs and placements, and drops topics
    /// the cluster deleted (or re-created under a new id). A topic this broker had before it
    /// joined a cluster is kept until it has been adopted (see [`Metadata::adopt_local_topics`]).
    /// Returns the ids of the topics it dropped, whose other state (share partitions') goes too.
    pub fn sync_from_cluster(&self, view: &ClusterView) -> Vec<Uuid> {
        let _guard = self.admin_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut changed = false;
        let mut removed = Vec::new();
        for (name, ct) in &view.topics {
            let Some(id) = decode_uuid(&ct.topic_id) else {
                tracing::warn!(topic = %name, topic_id = %ct.topic_id, "topic with an unreadable id in ZooKeeper skipped");
                continue;
            };
            match self.sync_topic(name, id, ct) {
                Ok(c) => changed |= c,
                Err(e) => {
                    tracing::error!(topic = %name, error = ?e, "cannot mirror the cluster's topic locally")
                }
            }
        }
        for t in self.topics() {
            if t.from_cluster && !view.topics.contains_key(&*t.name) {
                match self.remove_topic_locked(&t) {
                    Ok(_) => {
                        changed = true;
                        removed.push(t.id);
                    }
                    Err(e) => {
                        tracing::error!(topic = %t.name, error = ?e, "cannot delete a topic the cluster deleted")
                    }
                }
            }
        }
        if changed {
            self.generation.send_modify(|g| *g += 1);
        }
        removed
    }

    /// Mirrors one topic; true if anything changed. The caller holds the admin lock.
    fn sync_topic(&self, name: &str, id: Uuid, ct: &ClusterTopic) -> Result<bool, ResponseError> {
        let placements = placements_of(ct);
        let existing = self.topic(name);
        if let Some(t) = &existing {
            if t.id != id {
                tracing::warn!(
                    topic = name,
                    "the cluster has this topic under another id: dropping the local one"
                );
                self.remove_topic_locked(t)?;
            }
        }
        let existing = existing.filter(|t| t.id == id);
        let mut partitions = existing
            .as_ref()
            .map(|t| t.partitions.clone())
            .unwrap_or_default();
        let unchanged = existing.as_ref().is_some_and(|t| {
            t.from_cluster
                && t.partitions.len() >= placements.len()
                && t.configs == ct.configs
                && t.placements == placements
        });
        if unchanged {
            return Ok(false);
        }
        let mut wb = self.store.batch();
        let missing = placements.len().saturating_sub(partitions.len());
        let uids = self.next_uids(&mut wb, missing)?;
        let name_arc: Arc<str> = existing
            .as_ref()
            .map(|t| t.name.clone())
            .unwrap_or_else(|| Arc::from(name));
        for uid in uids {
            let index = partitions.len() as i32;
            partitions.push(Arc::new(Partition::new_empty(
                self.store.clone(),
                name_arc.clone(),
                index,
                uid,
            )));
        }
        let rec = TopicRecord {
            version: 1,
            id,
            partition_uids: partitions.iter().map(|p| p.uid).collect(),
            configs: ct.configs.clone(),
            from_cluster: true,
        };
        self.persist(&mut wb, name, &rec);
        self.store
            .write_synced(wb)
            .map_err(|_| ResponseError::KafkaStorageError)?;
        let mut placements = placements;
        // A partition the cluster has not placed yet (a half-read topic) has no leader.
        while placements.len() < partitions.len() {
            placements.push(Placement {
                replicas: Vec::new(),
                leader: -1,
                leader_epoch: 0,
                isr: Vec::new(),
            });
        }
        if existing.is_none() {
            tracing::info!(
                topic = name,
                partitions = partitions.len(),
                "topic from the cluster"
            );
        }
        for (p, placement) in partitions.iter().zip(&placements) {
            let leading = placement.leader == self.node_id;
            let followers = if leading {
                placement
                    .isr
                    .iter()
                    .copied()
                    .filter(|r| *r != self.node_id)
                    .collect()
            } else {
                Vec::new()
            };
            p.set_role(leading, followers, placement.leader_epoch);
        }
        self.topic_names_by_id.insert(id, name.to_string());
        self.topics.insert(
            name.to_string(),
            Arc::new(Topic {
                name: name_arc,
                id,
                partitions,
                configs: ct.configs.clone(),
                placements,
                from_cluster: true,
            }),
        );
        Ok(true)
    }

    /// Puts the topics this data dir had before it joined a cluster into the cluster's
    /// metadata, with this broker as their only replica, so that joining keeps them.
    /// A name the cluster already uses is left to the cluster (the next sync drops ours).
    pub async fn adopt_local_topics(&self) {
        let Some(cluster) = &self.cluster else { return };
        let view = cluster.view();
        for t in self.topics() {
            if t.from_cluster || view.topics.contains_key(&*t.name) {
                continue;
            }
            let assignment = (0..t.partitions.len() as i32)
                .map(|p| (p, vec![self.node_id]))
                .collect();
            match cluster
                .create_topic_assigned(&t.name, &encode_uuid(t.id), &assignment, &t.configs)
                .await
            {
                Ok(()) => tracing::info!(topic = %t.name, "local topic adopted into the cluster"),
                Err(e) => tracing::warn!(topic = %t.name, error = %e, "local topic not adopted"),
            }
        }
    }

    /// Waits (bounded) until `done` holds for this mirror; false if it did not in time.
    async fn wait_for(&self, wait: Duration, done: impl Fn(&Metadata) -> bool) -> bool {
        let mut rx = self.generation.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if done(self) {
                return true;
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                _ => return done(self),
            }
        }
    }

    /// The topic, waiting (bounded) for it to arrive in this broker's mirror when the
    /// cluster has it already (created through another broker a moment ago).
    pub async fn topic_arriving(&self, name: &str, wait: Duration) -> Option<Arc<Topic>> {
        if let Some(t) = self.topic(name) {
            return Some(t);
        }
        let cluster = self.cluster.as_ref()?;
        if !cluster.view().topics.contains_key(name) {
            return None;
        }
        self.wait_for(wait, |md| md.topic(name).is_some()).await;
        self.topic(name)
    }

    /// Creates a topic: locally on a single node, in ZooKeeper in a cluster.
    pub async fn create(&self, t: NewTopic) -> Result<CreatedTopic, AdminError> {
        let Some(cluster) = &self.cluster else {
            let topic = self.create_topic(&t.name, t.partitions, t.configs, t.validate_only)?;
            return Ok(CreatedTopic {
                id: topic.id,
                partitions: topic.partitions.len() as i32,
                replication_factor: topic.replication_factor(),
                configs: topic.configs.clone(),
            });
        };
        validate_topic_name(&t.name).map_err(|m| (ResponseError::InvalidTopicException, m))?;
        if self.topics.contains_key(&t.name) || cluster.view().topics.contains_key(&t.name) {
            return Err((
                ResponseError::TopicAlreadyExists,
                format!("Topic '{}' already exists.", t.name),
            ));
        }
        let live: Vec<i32> = cluster.view().brokers.keys().copied().collect();
        let assignment = match t.assignment {
            Some(a) => {
                check_assignment(&a, &live)?;
                a
            }
            None => {
                if !(1..=MAX_PARTITIONS_PER_TOPIC).contains(&t.partitions) {
                    return Err((
                        ResponseError::InvalidPartitions,
                        format!("Number of partitions must be between 1 and {MAX_PARTITIONS_PER_TOPIC}."),
                    ));
                }
                if t.replication_factor <= 0 || t.replication_factor as usize > live.len() {
                    return Err((
                        ResponseError::InvalidReplicationFactor,
                        format!(
                            "Unable to replicate the partition {} time(s): The target replication factor of {} cannot be reached because only {} broker(s) are registered.",
                            t.replication_factor, t.replication_factor, live.len()
                        ),
                    ));
                }
                // Placed by the cluster below; a validation needs only the shape.
                BTreeMap::new()
            }
        };
        let partitions = if assignment.is_empty() {
            t.partitions
        } else {
            assignment.len() as i32
        };
        let rf = if assignment.is_empty() {
            t.replication_factor
        } else {
            assignment.get(&0).map_or(1, |r| r.len() as i32)
        };
        self.check_total_partitions(partitions as usize)?;
        let id = Uuid::new_v4();
        let created = CreatedTopic {
            id,
            partitions,
            replication_factor: i16::try_from(rf).unwrap_or(i16::MAX),
            configs: t.configs.clone(),
        };
        if t.validate_only {
            return Ok(created);
        }
        let result = if assignment.is_empty() {
            cluster
                .create_topic(&t.name, &encode_uuid(id), partitions, rf, &t.configs)
                .await
                .map(|_| ())
        } else {
            cluster
                .create_topic_assigned(&t.name, &encode_uuid(id), &assignment, &t.configs)
                .await
        };
        match result {
            Ok(()) => {}
            Err(CreateTopicError::Exists(_)) => {
                return Err((
                    ResponseError::TopicAlreadyExists,
                    format!("Topic '{}' already exists.", t.name),
                ))
            }
            Err(CreateTopicError::Assign(e)) => {
                return Err((ResponseError::InvalidReplicationFactor, e.to_string()))
            }
            Err(CreateTopicError::Zk(e)) => return Err(zk_error(e)),
        }
        tracing::info!(topic = %t.name, partitions, replication_factor = rf, "created topic in the cluster");
        let name = t.name.clone();
        self.wait_for(t.wait, |md| md.topic(&name).is_some_and(|x| x.id == id))
            .await;
        Ok(created)
    }

    /// Deletes a topic: locally on a single node, from ZooKeeper in a cluster.
    pub async fn delete(&self, name: &str, wait: Duration) -> Result<Uuid, ResponseError> {
        let Some(cluster) = &self.cluster else {
            return self.delete_topic(name);
        };
        let id = self
            .topic(name)
            .map(|t| t.id)
            .ok_or(ResponseError::UnknownTopicOrPartition)?;
        match cluster.delete_topic(name).await {
            Ok(true) => {}
            Ok(false) => return Err(ResponseError::UnknownTopicOrPartition),
            Err(e) => return Err(zk_error(e).0),
        }
        tracing::info!(topic = name, "deleted topic from the cluster");
        self.wait_for(wait, |md| md.topic(name).is_none_or(|t| t.id != id))
            .await;
        Ok(id)
    }

    /// Grows a topic to `total` partitions: locally on a single node, in ZooKeeper in a
    /// cluster.
    /// `manual`: the replicas of each new partition (CreatePartitions' assignments), as
    /// Kafka checks them; None lets the cluster spread them.
    pub async fn grow(
        &self,
        name: &str,
        total: i32,
        manual: Option<Vec<Vec<i32>>>,
        validate_only: bool,
        wait: Duration,
    ) -> Result<(), AdminError> {
        let Some(cluster) = &self.cluster else {
            return self.create_partitions(name, total, validate_only);
        };
        let Some(topic) = self.topic(name) else {
            return Err((
                ResponseError::UnknownTopicOrPartition,
                format!("Topic '{name}' does not exist."),
            ));
        };
        let current = topic.placements.len() as i32;
        if total <= current {
            return Err((
                ResponseError::InvalidPartitions,
                format!("Topic currently has {current} partitions, which is higher than the requested {total}."),
            ));
        }
        if total > MAX_PARTITIONS_PER_TOPIC {
            return Err((
                ResponseError::InvalidPartitions,
                format!("number of partitions must be at most {MAX_PARTITIONS_PER_TOPIC}"),
            ));
        }
        self.check_total_partitions((total - current) as usize)?;
        if let Some(m) = &manual {
            let rf = topic.placements.first().map_or(0, |p| p.replicas.len());
            let live: Vec<i32> = cluster.view().brokers.keys().copied().collect();
            check_new_partitions(m, total - current, rf, &live)?;
        }
        if validate_only {
            return Ok(());
        }
        match cluster.add_partitions(name, total, manual).await {
            Ok(_) => {}
            Err(CreateTopicError::Assign(e)) => {
                return Err((ResponseError::InvalidReplicationFactor, e.to_string()))
            }
            Err(e) => return Err(zk_error(e)),
        }
        tracing::info!(
            topic = name,
            partitions = total,
            "added partitions in the cluster"
        );
        self.wait_for(wait, |md| {
            md.topic(name)
                .is_some_and(|t| t.placements.len() as i32 >= total)
        })
        .await;
        Ok(())
    }

    /// Replaces a topic's explicit configs: locally on a single node, in ZooKeeper in a
    /// cluster.
    pub async fn configure(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
        wait: Duration,
    ) -> Result<(), ResponseError> {
        let Some(cluster) = &self.cluster else {
            return self.set_topic_configs(name, configs);
        };
        if self.topic(name).is_none() {
            return Err(ResponseError::UnknownTopicOrPartition);
        }
        cluster
            .set_topic_configs(name, &configs)
            .await
            .map_err(|e| zk_error(e).0)?;
        tracing::info!(topic = name, "altered topic configs in the cluster");
        self.wait_for(wait, |md| {
            md.topic(name).is_some_and(|t| t.configs == configs)
        })
        .await;
        Ok(())
    }
}

/// Checks CreatePartitions' assignments as Kafka does: one per new partition, each with
/// the topic's replication factor, no broker twice, every broker registered.
fn check_new_partitions(
    manual: &[Vec<i32>],
    added: i32,
    rf: usize,
    live: &[i32],
) -> Result<(), AdminError> {
    let bad = |m: String| Err((ResponseError::InvalidReplicaAssignment, m));
    if manual.len() as i64 != i64::from(added) {
        return bad(format!(
            "Increasing the number of partitions by {added} but {} assignments provided.",
            manual.len()
        ));
    }
    for replicas in manual {
        if replicas.len() != rf {
            return bad(format!("Inconsistent replication factor between partitions, partition 0 has {rf} while the new partitions have {}.", replicas.len()));
        }
        match replicas_problem(replicas, live) {
            Some(ReplicasProblem::Duplicate) => {
                return bad(format!(
                    "Duplicate brokers not allowed in replica assignment: {replicas:?}."
                ))
            }
            Some(ReplicasProblem::Unknown(b)) => {
                return bad(format!("Unknown broker(s) in replica assignment: {b}."))
            }
            None => {}
        }
    }
    Ok(())
}

/// Checks a manual replica assignment as Kafka does: partitions numbered from 0, the same
/// number of replicas for each, no broker twice, every broker registered.
fn check_assignment(a: &BTreeMap<i32, Vec<i32>>, live: &[i32]) -> Result<(), AdminError> {
    let bad = |m: String| Err((ResponseError::InvalidReplicaAssignment, m));
    let rf = a.values().next().map_or(0, Vec::len);
    for (i, (p, replicas)) in a.iter().enumerate() {
        if *p != i as i32 {
            return bad("Partitions should be a consecutive 0-based integer sequence".into());
        }
        if replicas.is_empty() || replicas.len() != rf {
            return bad("All partitions should have the same number of replicas".into());
        }
        match replicas_problem(replicas, live) {
            Some(ReplicasProblem::Duplicate) => {
                return bad(format!("Duplicate brokers not allowed in replica assignment: {replicas:?} for partition id {p}."))
            }
            Some(ReplicasProblem::Unknown(b)) => {
                return bad(format!(
                    "Unknown broker {b} in the replica assignment of partition {p}."
                ))
            }
            None => {}
        }
    }
    Ok(())
}

/// What is wrong with one partition's replica list in a manual assignment; each admin
/// request words it in Kafka's own message for that request.
enum ReplicasProblem {
    Duplicate,
    Unknown(i32),
}

fn replicas_problem(replicas: &[i32], live: &[i32]) -> Option<ReplicasProblem> {
    let mut sorted = replicas.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.len() != replicas.len() {
        return Some(ReplicasProblem::Duplicate);
    }
    replicas
        .iter()
        .find(|b| !live.contains(b))
        .map(|b| ReplicasProblem::Unknown(*b))
}
