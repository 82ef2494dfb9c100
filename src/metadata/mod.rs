//! The role ZooKeeper played: cluster id, this broker, topics, partitions and their configs,
//! persisted in the `meta` column family.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use dashmap::DashMap;
use kafka_protocol::ResponseError;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::log::Partition;
use crate::storage::StoreError;
use crate::storage::{Batch, Store};

mod cluster;
pub use cluster::{CreatedTopic, NewTopic};

/// Longest legal topic name (Kafka's limit).
pub const MAX_TOPIC_NAME_LEN: usize = 249;
/// Upper bound on partitions per topic: a limit so one request cannot exhaust memory.
pub const MAX_PARTITIONS_PER_TOPIC: i32 = 100_000;

/// Kafka's controller writes one admin request as at most 10,000 metadata records (one per
/// topic, partition and config) and answers a larger one with POLICY_VIOLATION; the handlers
/// apply the same bound to what a request creates.
pub const MAX_RECORDS_PER_ADMIN_REQUEST: usize = 10_000;

/// Kafka's message for a request past `MAX_RECORDS_PER_ADMIN_REQUEST`.
pub const EXCESSIVE_BATCH: &str = "Unable to perform excessively large batch operation.";

/// A topic as persisted: its id, the uid of each partition (index = position), its configs.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TopicRecord {
    version: u32,
    id: Uuid,
    partition_uids: Vec<u64>,
    #[serde(default)]
    configs: BTreeMap<String, String>,
    /// Made from the cluster's metadata (ZooKeeper) rather than by this broker alone: such a
    /// topic is dropped when the cluster no longer has it.
    #[serde(default)]
    from_cluster: bool,
}

/// A live topic: its identity and the shared state of each partition.
///
/// It is immutable once built; adding partitions replaces the whole `Arc<Topic>`, so readers
/// never see a half-updated partition list.
pub struct Topic {
    pub name: Arc<str>,
    pub id: Uuid,
    pub partitions: Vec<Arc<Partition>>,
    pub configs: BTreeMap<String, String>,
    /// Where each partition lives (index = partition): this broker alone on a single node,
    /// else what the cluster's metadata says.
    pub placements: Vec<Placement>,
    from_cluster: bool,
}

/// A partition's replicas, leader, leader epoch and in-sync replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub replicas: Vec<i32>,
    /// -1 when the partition has no leader.
    pub leader: i32,
    pub leader_epoch: i32,
    pub isr: Vec<i32>,
}

impl Placement {
    /// A partition of a single-node broker: this broker is everything.
    fn local(node_id: i32) -> Placement {
        Placement {
            replicas: vec![node_id],
            leader: node_id,
            leader_epoch: crate::log::partition::LEADER_EPOCH,
            isr: vec![node_id],
        }
    }
}

impl Topic {
    pub fn partition(&self, index: i32) -> Option<&Arc<Partition>> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions.get(i))
    }

    pub fn placement(&self, index: i32) -> Option<&Placement> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.placements.get(i))
    }

    /// The replication factor: the first partition's replica count, as Kafka reports it.
    pub fn replication_factor(&self) -> i16 {
        self.placements
            .first()
            .map_or(1, |p| i16::try_from(p.replicas.len()).unwrap_or(i16::MAX))
    }
}

/// The cluster metadata service of a single-node cluster.
///
/// Everything that needs to know which topics exist asks this service. It is the narrow
/// interface a multi-broker deployment would back with a real coordination service.
pub struct Metadata {
    store: Arc<Store>,
    cluster_id: String,
    topics: DashMap<String, Arc<Topic>>,
    topic_names_by_id: DashMap<Uuid, String>,
    /// Serializes topic creation, deletion and partition changes (rare, and need uid order).
    admin_lock: Mutex<()>,
    broker_configs: std::sync::RwLock<BrokerConfigs>,
    /// `--max-partitions`: the most partitions over all topics.
    max_partitions: usize,
    node_id: i32,
    /// In cluster mode, ZooKeeper holds the topics; this service mirrors them locally.
    cluster: Option<Arc<crate::cluster::Cluster>>,
    /// Bumped whenever the topics change, for requests that wait for a change to arrive.
    generation: tokio::sync::watch::Sender<u64>,
}

/// Broker configs set at runtime with AlterConfigs, as Kafka keeps them in its metadata:
/// the cluster-wide defaults (resource name "") and this broker's own (its node id).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct BrokerConfigs {
    pub cluster_default: BTreeMap<String, String>,
    pub this_broker: BTreeMap<String, String>,
}

/// Kafka's internal topics: the coordinators' logs. Clients may read them but not
/// produce to them (INVALID_TOPIC_EXCEPTION, as Kafka answers), since the coordinators
/// rebuild their state from what is there.
pub fn is_internal_topic(name: &str) -> bool {
    matches!(
        name,
        "__consumer_offsets" | "__transaction_state" | "__share_group_state"
    )
}

/// Checks a topic name the way Kafka does: 1..=249 chars of [a-zA-Z0-9._-], not "." or "..".
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("topic name is empty".into());
    }
    if name == "." || name == ".." {
        return Err(format!("topic name cannot be \"{name}\""));
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return Err(format!(
            "topic name is longer than {MAX_TOPIC_NAME_LEN} characters"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '.' || *c == '_' || *c == '-'))
    {
        return Err(format!(
            "topic name \"{name}\" contains '{c}': only ASCII alphanumerics, '.', '_' and '-' are legal"
        ));
    }
    Ok(())
}

impl Metadata {
    /// Loads the cluster id and every topic from the store, opening each partition.
    /// In cluster mode `cluster_id` is the cluster's (from ZooKeeper), recorded in the data
    /// dir the first time.
    pub fn load(
        store: Arc<Store>,
        max_partitions: usize,
        node_id: i32,
        cluster: Option<Arc<crate::cluster::Cluster>>,
    ) -> Result<Metadata, StoreError> {
        let cluster_id = cluster.as_ref().map(|c| c.cluster_id().to_string());
        let cluster_id = match (store.cluster_id()?, cluster_id) {
            (Some(id), _) => id,
            (None, given) => {
                let id = given.unwrap_or_else(new_cluster_id);
                let mut wb = store.batch();
                wb.put_cluster_id(&id);
                // Not synced: it reaches the disk with the first synced write (topic creation)
                // at the latest, and until something is stored a lost id loses nothing.
                store.write(wb)?;
                id
            }
        };
        let md = Metadata {
            store: store.clone(),
            cluster_id,
            topics: DashMap::new(),
            topic_names_by_id: DashMap::new(),
            admin_lock: Mutex::new(()),
            broker_configs: Default::default(),
            max_partitions,
            node_id,
            cluster,
            generation: tokio::sync::watch::Sender::new(0),
        };
        if let Some(v) = store.broker_configs()? {
            let bc: BrokerConfigs = serde_json::from_slice(&v)
                .map_err(|e| StoreError::Corrupt(format!("broker configs: {e}")))?;
            *md.broker_configs.write().unwrap_or_else(|e| e.into_inner()) = bc;
        }
        for (name, v) in store.topics()? {
            let rec: TopicRecord = serde_json::from_slice(&v)
                .map_err(|e| StoreError::Corrupt(format!("topic record {name}: {e}")))?;
            let topic = md.build_topic(&name, &rec)?;
            md.topic_names_by_id.insert(rec.id, name.clone());
            md.topics.insert(name, Arc::new(topic));
        }
        Ok(md)
    }

    /// A stored topic, its partitions' state loaded from the store.
    fn build_topic(&self, name: &str, rec: &TopicRecord) -> Result<Topic, StoreError> {
        self.assemble_topic(name, rec, |store, name, i, uid| {
            Partition::open(store, name, i, uid)
        })
    }

    /// A topic whose partitions were just given fresh uids: nothing to read from the store.
    fn new_topic(&self, name: &str, rec: &TopicRecord) -> Topic {
        let built = self.assemble_topic(name, rec, |store, name, i, uid| {
            Ok::<_, StoreError>(Partition::new_empty(store, name, i, uid))
        });
        built.expect("building empty partitions cannot fail")
    }

    fn assemble_topic(
        &self,
        name: &str,
        rec: &TopicRecord,
        partition: impl Fn(Arc<Store>, Arc<str>, i32, u64) -> Result<Partition, StoreError>,
    ) -> Result<Topic, StoreError> {
        let name: Arc<str> = Arc::from(name);
        let partitions = rec
            .partition_uids
            .iter()
            .enumerate()
            .map(|(i, uid)| {
                partition(self.store.clone(), name.clone(), i as i32, *uid).map(Arc::new)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let placements = vec![Placement::local(self.node_id); partitions.len()];
        Ok(Topic {
            name,
            id: rec.id,
            partitions,
            configs: rec.configs.clone(),
            placements,
            from_cluster: rec.from_cluster,
        })
    }

    /// POLICY_VIOLATION when `adding` more partitions would pass `--max-partitions`.
    fn check_total_partitions(&self, adding: usize) -> Result<(), (ResponseError, String)> {
        let have: usize = self.topics.iter().map(|t| t.partitions.len()).sum();
        if have + adding > self.max_partitions {
            return Err((
                ResponseError::PolicyViolation,
                format!(
                    "The broker holds {have} partitions; {adding} more would pass its limit of {} (--max-partitions).",
                    self.max_partitions
                ),
            ));
        }
        Ok(())
    }

    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.get(name).map(|t| t.value().clone())
    }

    /// The placement of the partition of a coordinators' topic (`__consumer_offsets`,
    /// `__transaction_state`) that owns `key`: its leader is the key's coordinator.
    pub fn coordinator_placement(&self, topic: &str, key: &str) -> Option<Placement> {
        let t = self.topic(topic)?;
        let index = crate::context::coordinator_partition(key, t.placements.len());
        t.placements.get(index as usize).cloned()
    }

    pub fn topic_by_id(&self, id: &Uuid) -> Option<Arc<Topic>> {
        let name = self.topic_names_by_id.get(id)?.value().clone();
        self.topic(&name)
    }

    /// Every topic, sorted by name.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        let mut all: Vec<_> = self.topics.iter().map(|e| e.value().clone()).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    fn next_uids(&self, wb: &mut Batch<'_>, n: usize) -> Result<Vec<u64>, ResponseError> {
        let current = self
            .store
            .next_partition_uid()
            .map_err(|_| ResponseError::KafkaStorageError)?
            .unwrap_or(1);
        let next = current + n as u64;
        if next >= crate::storage::MAX_PARTITION_UID {
            // 2^56 partitions ever created: unreachable in practice, refused rather than let a
            // batch key sort among the tables' keys.
            return Err(ResponseError::KafkaStorageError);
        }
        wb.put_next_partition_uid(next);
        Ok((current..next).collect())
    }

    fn persist(&self, wb: &mut Batch<'_>, name: &str, rec: &TopicRecord) {
        // Serializing plain structs of strings and numbers cannot fail.
        let value = serde_json::to_vec(rec).unwrap_or_default();
        wb.put_topic(name, &value);
    }

    /// Creates a topic. `validate_only` checks everything and changes nothing.
    pub fn create_topic(
        &self,
        name: &str,
        num_partitions: i32,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Arc<Topic>, (ResponseError, String)> {
        validate_topic_name(name).map_err(|m| (ResponseError::InvalidTopicException, m))?;
        if !(1..=MAX_PARTITIONS_PER_TOPIC).contains(&num_partitions) {
            return Err((
                ResponseError::InvalidPartitions,
                format!("number of partitions must be between 1 and {MAX_PARTITIONS_PER_TOPIC}"),
            ));
        }
        let _guard = self.admin_lock.lock().unwrap_or_else(|e| e.into_inner());
        if self.topics.contains_key(name) {
            return Err((
                ResponseError::TopicAlreadyExists,
                format!("Topic '{name}' already exists."),
            ));
        }
        self.check_total_partitions(num_partitions as usize)?;
        let storage = |_| {
            (
                ResponseError::KafkaStorageError,
                "storage error".to_string(),
            )
        };
        let mut wb = self.store.batch();
        let uids = self
            .next_uids(&mut wb, num_partitions as usize)
            .map_err(|e| (e, "storage error".to_string()))?;
        let rec = TopicRecord {
            version: 1,
            id: Uuid::new_v4(),
            partition_uids: uids,
            configs,
            from_cluster: false,
        };
        let topic = Arc::new(self.new_topic(name, &rec));
        if validate_only {
            return Ok(topic);
        }
        self.persist(&mut wb, name, &rec);
        self.store.write_synced(wb).map_err(storage)?;
        self.topic_names_by_id.insert(rec.id, name.to_string());
        self.topics.insert(name.to_string(), topic.clone());
        self.generation.send_modify(|g| *g += 1);
        tracing::info!(topic = name, partitions = num_partitions, "created topic");
        Ok(topic)
    }

    /// Deletes a topic and its data.
    pub fn delete_topic(&self, name: &str) -> Result<Uuid, ResponseError> {
        let _guard = self.admin_lock.lock().unwrap_or_else(|e| e.into_inner());
        let Some(topic) = self.topic(name) else {
            return Err(ResponseError::UnknownTopicOrPartition);
        };
        self.remove_topic_locked(&topic)
    }

    /// Deletes a topic's record and data; the caller holds the admin lock.
    fn remove_topic_locked(&self, topic: &Topic) -> Result<Uuid, ResponseError> {
        let name = &*topic.name;
        for p in &topic.partitions {
            p.mark_deleted();
        }
        let mut wb = self.store.batch();
        wb.delete_topic(name);
        for p in &topic.partitions {
            wb.delete_partition(p.uid);
        }
        self.store
            .write_synced(wb)
            .map_err(|_| ResponseError::KafkaStorageError)?;
        self.topics.remove(name);
        self.topic_names_by_id.remove(&topic.id);
        tracing::info!(topic = name, "deleted topic");
        self.generation.send_modify(|g| *g += 1);
        Ok(topic.id)
    }

    /// Grows a topic to `total` partitions.
    pub fn create_partitions(
        &self,
        name: &str,
        total: i32,
        validate_only: bool,
    ) -> Result<(), (ResponseError, String)> {
        let _guard = self.admin_lock.lock().unwrap_or_else(|e| e.into_inner());
        let Some(topic) = self.topic(name) else {
            return Err((
                ResponseError::UnknownTopicOrPartition,
                format!("Topic '{name}' does not exist."),
            ));
        };
        let current = topic.partitions.len() as i32;
        if total <= current {
            return Err((
                ResponseError::InvalidPartitions,
                format!("The topic {name} currently has {current} partition(s); {total} would not be an increase."),
            ));
        }
        if total > MAX_PARTITIONS_PER_TOPIC {
            return Err((
                ResponseError::InvalidPartitions,
                format!("number of partitions must be at most {MAX_PARTITIONS_PER_TOPIC}"),
            ));
        }
        self.check_total_partitions((total - current) as usize)?;
        if validate_only {
            return Ok(());
        }
        let storage = |_| {
            (
                ResponseError::KafkaStorageError,
                "storage error".to_string(),
            )
        };
        let mut wb = self.store.batch();
        let new_uids = self
            .next_uids(&mut wb, (total - current) as usize)
            .map_err(|e| (e, "storage error".to_string()))?;
        let mut partitions = topic.partitions.clone();
        for (i, uid) in new_uids.iter().enumerate() {
            // A fresh uid has nothing stored: no reads under the admin lock.
            partitions.push(Arc::new(Partition::new_empty(
                self.store.clone(),
                topic.name.clone(),
                current + i as i32,
                *uid,
            )));
        }
        let rec = TopicRecord {
            version: 1,
            id: topic.id,
            partition_uids: partitions.iter().map(|p| p.uid).collect(),
            configs: topic.configs.clone(),
            from_cluster: topic.from_cluster,
        };
        self.persist(&mut wb, name, &rec);
        self.store.write_synced(wb).map_err(storage)?;
        let placements = vec![Placement::local(self.node_id); partitions.len()];
        self.topics.insert(
            name.to_string(),
            Arc::new(Topic {
                name: topic.name.clone(),
                id: topic.id,
                partitions,
                configs: topic.configs.clone(),
                placements,
                from_cluster: topic.from_cluster,
            }),
        );
        tracing::info!(topic = name, partitions = total, "added partitions");
        Ok(())
    }
}

impl Metadata {
    /// The dynamic broker configs in force.
    pub fn broker_configs(&self) -> BrokerConfigs {
        self.broker_configs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the dynamic broker configs (already validated) and persists them.
    pub fn set_broker_configs(&self, configs: BrokerConfigs) -> Result<(), ResponseError> {
        let _guard = self.admin_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut wb = self.store.batch();
        let json = serde_json::to_vec(&configs).map_err(|_| ResponseError::UnknownServerError)?;
        wb.put_broker_configs(&json);
        self.store
            .write_synced(wb)
            .map_err(|_| ResponseError::KafkaStorageError)?;
        *self
            .broker_configs
            .write()
            .unwrap_or_else(|e| e.into_inner()) = configs;
        tracing::info!("altered dynamic broker configs");
        Ok(())
    }

    /// Replaces a topic's explicitly set configs (already validated) and persists them.
    pub fn set_topic_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<(), ResponseError> {
        let _guard = self.admin_lock.lock().unwrap_or_else(|e| e.into_inner());
        let Some(topic) = self.topic(name) else {
            return Err(ResponseError::UnknownTopicOrPartition);
        };
        let rec = TopicRecord {
            version: 1,
            id: topic.id,
            partition_uids: topic.partitions.iter().map(|p| p.uid).collect(),
            configs: configs.clone(),
            from_cluster: topic.from_cluster,
        };
        let mut wb = self.store.batch();
        self.persist(&mut wb, name, &rec);
        self.store
            .write_synced(wb)
            .map_err(|_| ResponseError::KafkaStorageError)?;
        self.topics.insert(
            name.to_string(),
            Arc::new(Topic {
                name: topic.name.clone(),
                id: topic.id,
                partitions: topic.partitions.clone(),
                configs,
                placements: topic.placements.clone(),
                from_cluster: topic.from_cluster,
            }),
        );
        tracing::info!(topic = name, "altered topic configs");
        Ok(())
    }
}

/// A new cluster id as Kafka makes them: a random UUID in URL-safe base64, 22 characters.
pub fn new_cluster_id() -> String {
    encode_uuid(Uuid::new_v4())
}

const BASE64_URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// A Uuid as Kafka prints one (`Uuid.toString`): URL-safe base64 without padding.
pub fn encode_uuid(id: Uuid) -> String {
    const ALPHABET: &[u8] = BASE64_URL;
    let bytes = id.into_bytes();
    let mut out = String::with_capacity(22);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            out.push(ALPHABET[((acc >> bits) & 0x3f) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (6 - bits)) & 0x3f) as usize] as char);
    }
    out
}

/// The Uuid Kafka printed as `s` (see [`encode_uuid`]); None if `s` is not one.
pub fn decode_uuid(s: &str) -> Option<Uuid> {
    if s.len() != 22 {
        return None;
    }
    let mut acc: u32 = 0;
    let mut bits = 0;
    let mut out = Vec::with_capacity(16);
    for c in s.bytes() {
        let v = BASE64_URL.iter().position(|&a| a == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // 22 characters carry 132 bits: the last 4 must be zero padding.
    if out.len() != 16 || acc != 0 {
        return None;
    }
    Some(Uuid::from_bytes(out.try_into().ok()?))
}
