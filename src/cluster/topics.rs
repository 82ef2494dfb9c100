//! Topics in ZooKeeper, in Kafka's layout: the replica assignment under
//! `/brokers/topics/<t>`, each partition's state under `.../partitions/<p>/state`, the
//! topic's configs under `/config/topics/<t>`; and the placement of new replicas over the
//! live brokers, as Kafka places them without racks.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `/brokers/topics/<t>` (version 3): partition -> replicas, and the topic id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicZnode {
    pub version: i32,
    /// The topic id as Kafka prints a Uuid: URL-safe base64 without padding.
    pub topic_id: String,
    pub partitions: BTreeMap<String, Vec<i32>>,
    #[serde(default)]
    pub adding_replicas: BTreeMap<String, Vec<i32>>,
    #[serde(default)]
    pub removing_replicas: BTreeMap<String, Vec<i32>>,
}

/// `/brokers/topics/<t>/partitions/<p>/state` (version 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionStateZnode {
    pub controller_epoch: i32,
    pub leader: i32,
    pub version: i32,
    pub leader_epoch: i32,
    pub isr: Vec<i32>,
}

/// `/config/topics/<t>` (version 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicConfigZnode {
    pub version: i32,
    pub config: BTreeMap<String, String>,
}

/// Why replicas cannot be placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssignError {
    #[error("replication factor must be larger than 0")]
    ReplicationFactorTooSmall,
    #[error("replication factor: {rf} larger than available brokers: {brokers}")]
    NotEnoughBrokers { rf: i32, brokers: usize },
    #[error("number of partitions must be larger than 0")]
    NoPartitions,
}

/// Places `partitions` partitions of `rf` replicas over `brokers` (sorted ids), Kafka's
/// rack-unaware way: the first replicas round-robin from `start_index`, the others shifted by
/// a per-round amount starting at `shift`, so that leaders and followers both spread. Kafka
/// picks `start_index` and `shift` at random; tests fix them. `first_partition` is where
/// CreatePartitions continues.
pub fn assign_replicas(
    partitions: i32,
    rf: i32,
    brokers: &[i32],
    start_index: usize,
    shift: usize,
    first_partition: i32,
) -> Result<BTreeMap<i32, Vec<i32>>, AssignError> {
    if partitions <= 0 {
        return Err(AssignError::NoPartitions);
    }
    if rf <= 0 {
        return Err(AssignError::ReplicationFactorTooSmall);
    }
    let n = brokers.len();
    if rf as usize > n {
        return Err(AssignError::NotEnoughBrokers { rf, brokers: n });
    }
    let mut out = BTreeMap::new();
    let start = start_index % n;
    let mut next_shift = shift % n;
    let first_partition = first_partition.max(0) as usize;
    for current in first_partition..first_partition + partitions as usize {
        if current > 0 && current % n == 0 {
            next_shift += 1;
        }
        let first = (current + start) % n;
        let mut replicas = Vec::with_capacity(rf as usize);
        replicas.push(brokers[first]);
        for j in 0..(rf as usize - 1) {
            let step = 1 + (next_shift + j) % (n - 1);
            replicas.push(brokers[(first + step) % n]);
        }
        out.insert(current as i32, replicas);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example in Kafka's AdminUtils: 5 brokers, 10 partitions, 3 replicas, start 0.
    #[test]
    fn places_replicas_as_kafka_does() {
        let a = assign_replicas(10, 3, &[0, 1, 2, 3, 4], 0, 0, 0).unwrap();
        assert_eq!(a[&0], vec![0, 1, 2]);
        assert_eq!(a[&1], vec![1, 2, 3]);
        assert_eq!(a[&4], vec![4, 0, 1]);
        assert_eq!(a[&5], vec![0, 2, 3]);
        assert_eq!(a[&9], vec![4, 1, 2]);
        // Leaders spread evenly, and no partition has a broker twice.
        let mut leaders = [0; 5];
        for r in a.values() {
            leaders[r[0] as usize] += 1;
            let mut s = r.clone();
            s.sort();
            s.dedup();
            assert_eq!(s.len(), 3);
        }
        assert_eq!(leaders, [2; 5]);
    }

    #[test]
    fn refuses_what_cannot_be_placed() {
        assert_eq!(
            assign_replicas(1, 4, &[1, 2, 3], 0, 0, 0),
            Err(AssignError::NotEnoughBrokers { rf: 4, brokers: 3 })
        );
        assert_eq!(
            assign_replicas(1, 0, &[1], 0, 0, 0),
            Err(AssignError::ReplicationFactorTooSmall)
        );
        assert_eq!(
            assign_replicas(0, 1, &[1], 0, 0, 0),
            Err(AssignError::NoPartitions)
        );
        // One broker, one replica: every partition there.
        assert_eq!(
            assign_replicas(3, 1, &[7], 5, 9, 0).unwrap(),
            BTreeMap::from([(0, vec![7]), (1, vec![7]), (2, vec![7])])
        );
    }

    #[test]
    fn znodes_read_and_write_kafkas_json() {
        let t: TopicZnode = serde_json::from_str(
            r#"{"version":3,"topic_id":"Qp8pCfbgRxW5R8nMhTRrzw","partitions":{"0":[1,2],"1":[2,3]},"adding_replicas":{},"removing_replicas":{}}"#,
        )
        .unwrap();
        assert_eq!(t.partitions["1"], vec![2, 3]);
        let s: PartitionStateZnode = serde_json::from_str(
            r#"{"controller_epoch":4,"leader":2,"version":1,"leader_epoch":7,"isr":[2,3]}"#,
        )
        .unwrap();
        assert_eq!(
            (s.leader, s.leader_epoch, s.isr.clone()),
            (2, 7, vec![2, 3])
        );
        let back: PartitionStateZnode =
            serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }
}

/// A topic as the cluster knows it: its id and each partition's replicas and state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterTopic {
    pub topic_id: String,
    pub partitions: BTreeMap<i32, PartitionInfo>,
    /// What `/config/topics/<t>` sets explicitly.
    pub configs: BTreeMap<String, String>,
}

/// One partition: its replicas (the first is the preferred leader) and its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    pub replicas: Vec<i32>,
    /// -1 while the partition has no state znode yet (or no leader).
    pub leader: i32,
    pub leader_epoch: i32,
    pub isr: Vec<i32>,
}

/// Why a topic cannot be created in ZooKeeper.
#[derive(Debug, thiserror::Error)]
pub enum CreateTopicError {
    #[error("topic '{0}' already exists")]
    Exists(String),
    #[error("{0}")]
    Assign(#[from] AssignError),
    #[error("ZooKeeper: {0}")]
    Zk(#[from] zookeeper_client::Error),
}

fn persistent() -> zookeeper_client::CreateOptions<'static> {
    zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all())
}

/// Writes a new topic in one multi-op: its assignment, a state znode per partition (the
/// first replica leads, every replica in the ISR, leader epoch 0) and its configs.
pub(super) async fn create(
    client: &zookeeper_client::Client,
    name: &str,
    topic_id: &str,
    assignment: &BTreeMap<i32, Vec<i32>>,
    configs: &BTreeMap<String, String>,
    controller_epoch: i32,
) -> Result<(), CreateTopicError> {
    let topic = TopicZnode {
        version: 3,
        topic_id: topic_id.to_string(),
        partitions: assignment
            .iter()
            .map(|(p, r)| (p.to_string(), r.clone()))
            .collect(),
        adding_replicas: BTreeMap::new(),
        removing_replicas: BTreeMap::new(),
    };
    let base = format!("/brokers/topics/{name}");
    let mut multi = client.new_multi_writer();
    multi.add_create(&base, &to_json(&topic), &persistent())?;
    multi.add_create(&format!("{base}/partitions"), b"", &persistent())?;
    add_new_partitions(&mut multi, &base, assignment, controller_epoch)?;
    let config = TopicConfigZnode {
        version: 1,
        config: configs.clone(),
    };
    match client.get_data(&format!("/config/topics/{name}")).await {
        Ok(_) => multi.add_set_data(&format!("/config/topics/{name}"), &to_json(&config), None)?,
        Err(zookeeper_client::Error::NoNode) => multi.add_create(
            &format!("/config/topics/{name}"),
            &to_json(&config),
            &persistent(),
        )?,
        Err(e) => return Err(e.into()),
    }
    match multi.commit().await {
        Ok(_) => Ok(()),
        Err(zookeeper_client::MultiWriteError::OperationFailed {
            index: 0,
            source: zookeeper_client::Error::NodeExists,
        }) => Err(CreateTopicError::Exists(name.to_string())),
        Err(e) => Err(zookeeper_client::Error::from(e).into()),
    }
}

/// Adds to `multi` the znodes of new partitions: each one's directory and its first state
/// (the first replica leads, every replica in the ISR, leader epoch 0).
fn add_new_partitions(
    multi: &mut zookeeper_client::MultiWriter<'_>,
    base: &str,
    assignment: &BTreeMap<i32, Vec<i32>>,
    controller_epoch: i32,
) -> Result<(), zookeeper_client::Error> {
    for (p, replicas) in assignment {
        let state = PartitionStateZnode {
            controller_epoch,
            leader: replicas[0],
            version: 1,
            leader_epoch: 0,
            isr: replicas.clone(),
        };
        multi.add_create(&format!("{base}/partitions/{p}"), b"", &persistent())?;
        multi.add_create(
            &format!("{base}/partitions/{p}/state"),
            &to_json(&state),
            &persistent(),
        )?;
    }
    Ok(())
}

/// A znode record as JSON (plain records of strings and numbers always serialize).
fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

/// Reads one topic with its partitions' states and its configs; None if it does not exist
/// (or is half-written: a topic appears whole, in one multi-op).
pub(super) async fn read_topic(
    client: &zookeeper_client::Client,
    name: &str,
) -> Result<Option<ClusterTopic>, zookeeper_client::Error> {
    use zookeeper_client::Error::NoNode;
    let data = match client.get_data(&format!("/brokers/topics/{name}")).await {
        Ok((d, _)) => d,
        Err(NoNode) => return Ok(None),
        Err(e) => return Err(e),
    };
    let Ok(znode) = serde_json::from_slice::<TopicZnode>(&data) else {
        tracing::warn!(topic = %name, "unreadable topic znode skipped");
        return Ok(None);
    };
    // The client pipelines these: one round trip for all partitions' states.
    let paths: Vec<(i32, Vec<i32>, String)> = znode
        .partitions
        .into_iter()
        .filter_map(|(p, replicas)| {
            let index = p.parse::<i32>().ok()?;
            Some((
                index,
                replicas,
                format!("/brokers/topics/{name}/partitions/{p}/state"),
            ))
        })
        .collect();
    let states =
        futures_util::future::join_all(paths.iter().map(|(_, _, path)| client.get_data(path)))
            .await;
    let mut partitions = BTreeMap::new();
    for ((index, replicas, _), state) in paths.into_iter().zip(states) {
        let state = match state {
            Ok((d, _)) => serde_json::from_slice::<PartitionStateZnode>(&d).ok(),
            Err(NoNode) => None,
            Err(e) => return Err(e),
        };
        partitions.insert(
            index,
            PartitionInfo {
                replicas,
                leader: state.as_ref().map_or(-1, |s| s.leader),
                leader_epoch: state.as_ref().map_or(0, |s| s.leader_epoch),
                isr: state.map(|s| s.isr).unwrap_or_default(),
            },
        );
    }
    let configs = match client.get_data(&format!("/config/topics/{name}")).await {
        Ok((d, _)) => serde_json::from_slice::<TopicConfigZnode>(&d)
            .map(|c| c.config)
            .unwrap_or_default(),
        Err(NoNode) => BTreeMap::new(),
        Err(e) => return Err(e),
    };
    Ok(Some(ClusterTopic {
        topic_id: znode.topic_id,
        partitions,
        configs,
    }))
}

/// Reads every topic.
pub(super) async fn read_all(
    client: &zookeeper_client::Client,
) -> Result<BTreeMap<String, ClusterTopic>, zookeeper_client::Error> {
    let names = client.list_children("/brokers/topics").await?;
    let mut topics = BTreeMap::new();
    for name in names {
        if let Some(t) = read_topic(client, &name).await? {
            topics.insert(name, t);
        }
    }
    Ok(topics)
}

/// The topic a watched path belongs to: `/brokers/topics/<t>[/...]` or `/config/topics/<t>`.
pub(super) fn topic_of_path(path: &str) -> Option<&str> {
    let rest = path
        .strip_prefix("/brokers/topics/")
        .or_else(|| path.strip_prefix("/config/topics/"))?;
    let name = rest.split('/').next()?;
    (!name.is_empty()).then_some(name)
}

/// Deletes a topic: its state znodes, its assignment and its configs, in one multi-op, so
/// that no broker ever reads half a topic.
pub(super) async fn delete(
    client: &zookeeper_client::Client,
    name: &str,
) -> Result<bool, zookeeper_client::Error> {
    use zookeeper_client::Error::NoNode;
    let base = format!("/brokers/topics/{name}");
    let partitions = match client.list_children(&format!("{base}/partitions")).await {
        Ok(p) => p,
        Err(NoNode) => Vec::new(),
        Err(e) => return Err(e),
    };
    let mut paths = Vec::new();
    for p in &partitions {
        let dir = format!("{base}/partitions/{p}");
        for child in client.list_children(&dir).await.unwrap_or_default() {
            paths.push(format!("{dir}/{child}"));
        }
        paths.push(dir);
    }
    if client
        .check_stat(&format!("{base}/partitions"))
        .await?
        .is_some()
    {
        paths.push(format!("{base}/partitions"));
    }
    if client.check_stat(&base).await?.is_none() {
        return Ok(false);
    }
    paths.push(base);
    let mut multi = client.new_multi_writer();
    for path in &paths {
        multi.add_delete(path, None)?;
    }
    let config = format!("/config/topics/{name}");
    if client.check_stat(&config).await?.is_some() {
        multi.add_delete(&config, None)?;
    }
    match multi.commit().await {
        Ok(_) => Ok(true),
        Err(zookeeper_client::MultiWriteError::OperationFailed { source: NoNode, .. }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Adds partitions to a topic: the grown assignment (conditional on the version read, so a
/// concurrent change fails rather than being overwritten) and the new partitions' states.
pub(super) async fn add_partitions(
    client: &zookeeper_client::Client,
    name: &str,
    added: &BTreeMap<i32, Vec<i32>>,
    controller_epoch: i32,
) -> Result<(), CreateTopicError> {
    let base = format!("/brokers/topics/{name}");
    let (data, stat) = client.get_data(&base).await?;
    let mut znode: TopicZnode = serde_json::from_slice(&data)
        .map_err(|_| zookeeper_client::Error::UnexpectedError("unreadable topic znode".into()))?;
    for (p, r) in added {
        znode.partitions.insert(p.to_string(), r.clone());
    }
    let mut multi = client.new_multi_writer();
    multi.add_set_data(&base, &to_json(&znode), Some(stat.version))?;
    add_new_partitions(&mut multi, &base, added, controller_epoch)?;
    multi
        .commit()
        .await
        .map_err(|e| CreateTopicError::Zk(e.into()))?;
    Ok(())
}

/// Replaces a topic's explicit configs.
pub(super) async fn set_configs(
    client: &zookeeper_client::Client,
    name: &str,
    configs: &BTreeMap<String, String>,
) -> Result<(), zookeeper_client::Error> {
    let config = TopicConfigZnode {
        version: 1,
        config: configs.clone(),
    };
    let path = format!("/config/topics/{name}");
    match client.set_data(&path, &to_json(&config), None).await {
        Ok(_) => Ok(()),
        Err(zookeeper_client::Error::NoNode) => client
            .create(&path, &to_json(&config), &persistent())
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    }
}

/// Replaces a partition's ISR, as its leader: only if this broker still leads it in the
/// same leader epoch, and only over the state read (a conditional write), so a deposed
/// leader or a concurrent change makes it fail rather than overwrite. False if refused.
pub(super) async fn set_isr(
    client: &zookeeper_client::Client,
    name: &str,
    partition: i32,
    leader: i32,
    leader_epoch: i32,
    isr: &[i32],
) -> Result<bool, zookeeper_client::Error> {
    let path = format!("/brokers/topics/{name}/partitions/{partition}/state");
    let (data, stat) = client.get_data(&path).await?;
    let Ok(mut state) = serde_json::from_slice::<PartitionStateZnode>(&data) else {
        return Ok(false);
    };
    if state.leader != leader || state.leader_epoch != leader_epoch {
        return Ok(false);
    }
    state.isr = isr.to_vec();
    match client
        .set_data(&path, &to_json(&state), Some(stat.version))
        .await
    {
        Ok(_) => Ok(true),
        Err(zookeeper_client::Error::BadVersion) => Ok(false),
        Err(e) => Err(e),
    }
}
