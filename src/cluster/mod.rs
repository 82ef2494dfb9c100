//! Cluster mode, first stage: membership and the controller, on ZooKeeper, in Kafka's own
//! layout.
//!
//! With `--zookeeper-connect`, a broker registers itself under `/brokers/ids/<id>` (an
//! ephemeral znode holding its endpoints as Kafka writes them, so ZooKeeper's session is the
//! failure detector), takes part in the controller election (`/controller`, created in the
//! same multi-op that bumps `/controller_epoch`), and keeps a [`ClusterView`] of the live
//! brokers and the controller current from watches. Metadata and DescribeCluster answer
//! from that view. Topics, replication and failover of partitions are later stages (see
//! README, "Cluster mode"). Without the flag none of this exists.

mod controller;
pub use controller::Elected;
pub mod topics;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use std::time::Duration;

use serde::{Deserialize, Serialize};
use zookeeper_client as zk;

/// Why joining the cluster failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("ZooKeeper at {connect}: {source}")]
    Connect { connect: String, source: zk::Error },
    #[error("ZooKeeper: {0}")]
    Zk(#[from] zk::Error),
    /// Another live broker holds this node id: Kafka refuses to start the second one.
    #[error("node id {0} is already registered in ZooKeeper by another live broker")]
    NodeIdInUse(i32),
    /// The data dir belongs to another cluster (Kafka's InconsistentClusterIdException).
    #[error("the data dir belongs to cluster {local}, but ZooKeeper's cluster is {zk}")]
    InconsistentClusterId { local: String, zk: String },
    #[error("bad --zookeeper-connect {0:?}: {1}")]
    BadConnect(String, &'static str),
}

/// Where clients reach a broker on one listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerEndpoint {
    pub host: String,
    pub port: i32,
}

/// A live broker's endpoints by listener name, as its registration lists them: Metadata
/// answers a client with the endpoints of the listener the client came in on, and brokers
/// dial each other on the inter-broker listener.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrokerEndpoints {
    pub by_listener: BTreeMap<String, BrokerEndpoint>,
}

/// The live brokers and the controller, as ZooKeeper last said.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    pub brokers: BTreeMap<i32, BrokerEndpoints>,
    pub controller_id: Option<i32>,
    /// Every topic in `/brokers/topics`, with its partitions' replicas and state.
    pub topics: BTreeMap<String, topics::ClusterTopic>,
    /// Brokers in controlled shutdown (`/controlled_shutdown/<id>`): the controller moves
    /// their leaderships away and drops them from ISRs before they go.
    pub shutting_down: std::collections::BTreeSet<i32>,
}

impl ClusterView {
    /// A live broker's endpoint on `listener`.
    pub fn endpoint(&self, id: i32, listener: &str) -> Option<&BrokerEndpoint> {
        self.brokers.get(&id)?.by_listener.get(listener)
    }

    /// HOST:PORT of a live broker on `listener` (the inter-broker listener when brokers
    /// dial each other).
    pub fn address(&self, id: i32, listener: &str) -> Option<String> {
        self.endpoint(id, listener).map(|e| {
            if e.host.contains(':') {
                format!("[{}]:{}", e.host, e.port)
            } else {
                format!("{}:{}", e.host, e.port)
            }
        })
    }
}

/// What a broker needs to join.
pub struct JoinConfig {
    /// HOST:PORT[,HOST:PORT...][/chroot], Kafka's `zookeeper.connect`.
    pub connect: String,
    pub session_timeout: Duration,
    pub node_id: i32,
    /// The advertised listeners, registered in `/brokers/ids/<id>`.
    pub endpoints: Vec<crate::listeners::Listener>,
    /// The data dir's cluster id if it has one, else a new one: what a first broker writes
    /// to `/cluster/id`.
    pub local_cluster_id: Option<String>,
    pub new_cluster_id: String,
    /// Kafka's `unclean.leader.election.enable` broker default (topics may override it).
    pub unclean_leader_election: bool,
}

/// This broker's membership of a cluster: its ZooKeeper session and the view it keeps.
///
/// It exists so that the rest of the broker asks one place who the live brokers and the
/// controller are, while the session, its watches and re-registration after an expired
/// session stay in here.
pub struct Cluster {
    cluster_id: String,
    node_id: i32,
    /// The view, and whoever follows it (the metadata service materializes topics from it).
    view: tokio::sync::watch::Sender<Arc<ClusterView>>,
    /// The current session, for writes made on a client's behalf (CreateTopics).
    client: RwLock<Option<zk::Client>>,
    stop: tokio::sync::watch::Sender<bool>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// While this broker is the controller: its epoch and the `/controller_epoch` version
    /// it wrote, which fences every controller write.
    controller_epoch: std::sync::Mutex<Option<(i32, i32)>>,
    unclean_default: bool,
}

/// `/brokers/ids/<id>`, as Kafka's ZooKeeper-mode brokers wrote it (version 5).
#[derive(Serialize, Deserialize)]
struct BrokerRegistration {
    #[serde(default)]
    features: BTreeMap<String, serde_json::Value>,
    listener_security_protocol_map: BTreeMap<String, String>,
    endpoints: Vec<String>,
    jmx_port: i32,
    /// The PLAINTEXT endpoint's host and port, null and -1 without one (as Kafka writes).
    host: Option<String>,
    port: i32,
    version: i32,
    timestamp: String,
}

impl BrokerRegistration {
    /// The endpoints by listener name; an entry that does not parse is skipped with a
    /// warning, and a registration with no endpoints falls back on host and port.
    fn endpoints(&self) -> BrokerEndpoints {
        let mut map = crate::listeners::default_protocol_map();
        for (name, protocol) in &self.listener_security_protocol_map {
            if let Ok(m) = crate::listeners::parse_protocol_map(&format!("{name}:{protocol}")) {
                map.extend(m);
            }
        }
        let mut out = BrokerEndpoints::default();
        for e in &self.endpoints {
            match crate::listeners::parse_listeners(e, &map) {
                Ok(ls) => {
                    for l in ls {
                        out.by_listener.insert(
                            l.name,
                            BrokerEndpoint {
                                host: l.host,
                                port: i32::from(l.port),
                            },
                        );
                    }
                }
                Err(why) => tracing::warn!(endpoint = %e, "unreadable broker endpoint: {why}"),
            }
        }
        if out.by_listener.is_empty() {
            if let Some(host) = &self.host {
                out.by_listener.insert(
                    "PLAINTEXT".into(),
                    BrokerEndpoint {
                        host: host.clone(),
                        port: self.port,
                    },
                );
            }
        }
        out
    }
}

/// `/controller`.
#[derive(Serialize, Deserialize)]
struct ControllerRecord {
    version: i32,
    brokerid: i32,
    timestamp: String,
}

/// `/latest_producer_id_block`, as Kafka's ZooKeeper-mode brokers wrote it.
#[derive(Serialize, Deserialize)]
struct ProducerIdBlock {
    version: i32,
    broker: i32,
    block_start: String,
    block_end: String,
}

/// `/cluster/id`.
#[derive(Serialize, Deserialize)]
struct ClusterIdRecord {
    version: String,
    id: String,
}

const PERSISTENT_PATHS: &[&str] = &[
    "/brokers/ids",
    "/brokers/topics",
    "/config/topics",
    "/admin/delete_topics",
    "/cluster",
    "/controlled_shutdown",
];

/// A random index below `n`, for where replica placement starts (Kafka picks it at random
/// so that many topics do not all lead on the same broker).
fn fastrand_index(n: usize) -> usize {
    (uuid::Uuid::new_v4().as_u128() % n as u128) as usize
}

fn now_ms_string() -> String {
    crate::clock::now_ms().to_string()
}

fn persistent() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

fn ephemeral() -> zk::CreateOptions<'static> {
    zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all())
}

/// Connects to the ensemble, creating the chroot if it is missing, as Kafka does.
async fn connect(cfg: &JoinConfig) -> Result<zk::Client, ClusterError> {
    let (hosts, chroot) = match cfg.connect.find('/') {
        Some(i) => (&cfg.connect[..i], Some(&cfg.connect[i..])),
        None => (cfg.connect.as_str(), None),
    };
    if hosts.is_empty() {
        return Err(ClusterError::BadConnect(cfg.connect.clone(), "no host"));
    }
    let client = zk::Client::connector()
        .with_session_timeout(cfg.session_timeout)
        .connect(hosts)
        .await
        .map_err(|source| ClusterError::Connect {
            connect: cfg.connect.clone(),
            source,
        })?;
    let Some(root) = chroot.filter(|r| *r != "/") else {
        return Ok(client);
    };
    let root = root.trim_end_matches('/');
    match client.mkdir(root, &persistent()).await {
        Ok(()) | Err(zk::Error::NodeExists) => {}
        Err(e) => return Err(e.into()),
    }
    client
        .chroot(root.to_string())
        .map_err(|_| ClusterError::BadConnect(cfg.connect.clone(), "bad chroot path"))
}

/// Creates the persistent paths every broker expects, and agrees on the cluster id.
async fn prepare(client: &zk::Client, cfg: &JoinConfig) -> Result<String, ClusterError> {
    for path in PERSISTENT_PATHS {
        match client.mkdir(path, &persistent()).await {
            Ok(()) | Err(zk::Error::NodeExists) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let proposed = cfg
        .local_cluster_id
        .clone()
        .unwrap_or_else(|| cfg.new_cluster_id.clone());
    let record = serde_json::to_vec(&ClusterIdRecord {
        version: "1".into(),
        id: proposed,
    })
    .unwrap_or_default();
    match client.create("/cluster/id", &record, &persistent()).await {
        Ok(_) | Err(zk::Error::NodeExists) => {}
        Err(e) => return Err(e.into()),
    }
    let (data, _) = client.get_data("/cluster/id").await?;
    let id = serde_json::from_slice::<ClusterIdRecord>(&data)
        .map(|r| r.id)
        .map_err(|_| zk::Error::UnexpectedError("unreadable /cluster/id".into()))?;
    if let Some(local) = &cfg.local_cluster_id {
        if *local != id {
            return Err(ClusterError::InconsistentClusterId {
                local: local.clone(),
                zk: id,
            });
        }
    }
    Ok(id)
}

/// Registers this broker's ephemeral znode. A znode left by this broker's own earlier
/// session (not yet expired) is replaced; one held by another live broker is refused.
async fn register(client: &zk::Client, cfg: &JoinConfig) -> Result<(), ClusterError> {
    let path = format!("/brokers/ids/{}", cfg.node_id);
    let plaintext = cfg
        .endpoints
        .iter()
        .find(|l| l.protocol == crate::listeners::SecurityProtocol::Plaintext);
    let record = serde_json::to_vec(&BrokerRegistration {
        features: BTreeMap::new(),
        listener_security_protocol_map: cfg
            .endpoints
            .iter()
            .map(|l| (l.name.clone(), l.protocol.name().to_string()))
            .collect(),
        endpoints: cfg.endpoints.iter().map(|l| l.to_string()).collect(),
        jmx_port: -1,
        host: plaintext.map(|l| l.host.clone()),
        port: plaintext.map_or(-1, |l| i32::from(l.port)),
        version: 5,
        timestamp: now_ms_string(),
    })
    .unwrap_or_default();
    match client.create(&path, &record, &ephemeral()).await {
        Ok(_) => Ok(()),
        Err(zk::Error::NodeExists) => {
            let owner = client.check_stat(&path).await?.map(|s| s.ephemeral_owner);
            if owner == Some(client.session_id().0) {
                Ok(())
            } else {
                Err(ClusterError::NodeIdInUse(cfg.node_id))
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// Tries to become the controller: `/controller` is created in the same multi-op that bumps
/// `/controller_epoch`, so each controller has an epoch of its own. Losing the race is not
/// an error.
async fn try_elect(client: &zk::Client, node_id: i32) -> Result<Option<(i32, i32)>, ClusterError> {
    let epoch = match client.get_data("/controller_epoch").await {
        Ok((data, stat)) => {
            let n = std::str::from_utf8(&data)
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok())
                .unwrap_or(0);
            Some((n, stat.version))
        }
        Err(zk::Error::NoNode) => None,
        Err(e) => return Err(e.into()),
    };
    let record = serde_json::to_vec(&ControllerRecord {
        version: 2,
        brokerid: node_id,
        timestamp: now_ms_string(),
    })
    .unwrap_or_default();
    let mut multi = client.new_multi_writer();
    multi.add_create("/controller", &record, &ephemeral())?;
    match epoch {
        Some((n, version)) => multi.add_set_data(
            "/controller_epoch",
            (n + 1).to_string().as_bytes(),
            Some(version),
        )?,
        None => multi.add_create("/controller_epoch", b"1", &persistent())?,
    }
    match multi.commit().await {
        Ok(_) => {
            let (epoch, version) = epoch.map_or((1, 0), |(n, v)| (n + 1, v + 1));
            tracing::info!(node_id, epoch, "became the controller");
            Ok(Some((epoch, version)))
        }
        Err(zk::MultiWriteError::OperationFailed {
            source: zk::Error::NodeExists | zk::Error::BadVersion,
            ..
        }) => Ok(None),
        Err(e) => Err(zk::Error::from(e).into()),
    }
}

/// Reads the live brokers and the controller, leaving watches that fire on any change.
/// Also says whether `/controller` exists (it may hold data this broker cannot read).
async fn read_members(client: &zk::Client) -> Result<(Members, bool, MemberWatches), ClusterError> {
    let (ids, _, brokers_watch) = client.get_and_watch_children("/brokers/ids").await?;
    let (controller_stat, controller_watch) = client.check_and_watch_stat("/controller").await?;
    let (shutting, _, shutdown_watch) = client
        .get_and_watch_children("/controlled_shutdown")
        .await?;
    let mut members = Members {
        shutting_down: shutting.iter().filter_map(|s| s.parse().ok()).collect(),
        ..Default::default()
    };
    for id in ids {
        let Ok(n) = id.parse::<i32>() else { continue };
        let data = match client.get_data(&format!("/brokers/ids/{id}")).await {
            Ok((data, _)) => data,
            // Gone between the listing and the read: the watch has fired already.
            Err(zk::Error::NoNode) => continue,
            Err(e) => return Err(e.into()),
        };
        match serde_json::from_slice::<BrokerRegistration>(&data) {
            Ok(r) => {
                members.brokers.insert(n, r.endpoints());
            }
            Err(e) => tracing::warn!(broker = n, error = %e, "unreadable broker registration"),
        }
    }
    if controller_stat.is_some() {
        match client.get_data("/controller").await {
            Ok((data, _)) => {
                members.controller_id = serde_json::from_slice::<ControllerRecord>(&data)
                    .ok()
                    .map(|r| r.brokerid);
            }
            Err(zk::Error::NoNode) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok((
        members,
        controller_stat.is_some(),
        MemberWatches {
            brokers: brokers_watch,
            controller: controller_watch,
            shutdown: shutdown_watch,
        },
    ))
}

/// The live brokers and the controller, read together.
#[derive(Default)]
struct Members {
    brokers: BTreeMap<i32, BrokerEndpoints>,
    controller_id: Option<i32>,
    shutting_down: std::collections::BTreeSet<i32>,
}

impl Cluster {
    /// Connects, agrees on the cluster id, registers this broker and starts following the
    /// cluster. Fails if ZooKeeper cannot be reached within the session timeout, if the node
    /// id is taken by a live broker, or if the data dir belongs to another cluster.
    pub async fn join(cfg: JoinConfig) -> Result<Arc<Cluster>, ClusterError> {
        let client = tokio::time::timeout(cfg.session_timeout, connect(&cfg))
            .await
            .map_err(|_| ClusterError::Connect {
                connect: cfg.connect.clone(),
                source: zk::Error::Timeout,
            })??;
        let cluster_id = prepare(&client, &cfg).await?;
        register(&client, &cfg).await?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let cluster = Arc::new(Cluster {
            cluster_id,
            node_id: cfg.node_id,
            view: tokio::sync::watch::Sender::new(Arc::new(ClusterView::default())),
            client: RwLock::new(Some(client.clone())),
            stop,
            task: std::sync::Mutex::new(None),
            controller_epoch: std::sync::Mutex::new(None),
            unclean_default: cfg.unclean_leader_election,
        });
        // The first view before anyone asks, so Metadata never lists an empty cluster.
        cluster.follow_once(&client).await?;
        cluster.refresh_all_topics(&client).await?;
        tokio::spawn(controller_loop(cluster.clone(), stopped.clone()));
        let task = tokio::spawn(follow(cluster.clone(), cfg, client, stopped));
        *cluster.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
        Ok(cluster)
    }

    /// The cluster id from `/cluster/id`.
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// Creates a topic in ZooKeeper with `partitions` partitions of `rf` replicas placed over
    /// the live brokers as Kafka places them; every broker learns of it from its watch.
    /// Returns the assignment.
    pub async fn create_topic(
        &self,
        name: &str,
        topic_id: &str,
        partitions: i32,
        rf: i32,
        configs: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<i32, Vec<i32>>, topics::CreateTopicError> {
        let brokers: Vec<i32> = self.view().brokers.keys().copied().collect();
        let n = brokers.len().max(1);
        let assignment = topics::assign_replicas(
            partitions,
            rf,
            &brokers,
            fastrand_index(n),
            fastrand_index(n),
            0,
        )?;
        self.create_topic_assigned(name, topic_id, &assignment, configs)
            .await?;
        Ok(assignment)
    }

    /// Creates a topic with the replicas given (CreateTopics' manual assignment).
    pub async fn create_topic_assigned(
        &self,
        name: &str,
        topic_id: &str,
        assignment: &BTreeMap<i32, Vec<i32>>,
        configs: &BTreeMap<String, String>,
    ) -> Result<(), topics::CreateTopicError> {
        let client = self.session()?;
        let epoch = Self::controller_epoch(&client).await;
        topics::create(&client, name, topic_id, assignment, configs, epoch).await
    }

    /// The live brokers, the controller and the topics, as last read.
    pub fn view(&self) -> Arc<ClusterView> {
        self.view.borrow().clone()
    }

    /// A receiver that wakes whenever the view changes.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<Arc<ClusterView>> {
        self.view.subscribe()
    }

    /// A receiver that turns true when the broker leaves the cluster, for tasks that
    /// follow ZooKeeper alongside this one.
    pub fn stop_signal(&self) -> tokio::sync::watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// This broker's node id.
    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    fn publish(&self, change: impl FnOnce(&mut ClusterView)) {
        self.view.send_modify(|v| {
            let mut next = (**v).clone();
            change(&mut next);
            *v = Arc::new(next);
        });
    }

    /// Re-reads every topic (at start, and after a reconnect, when watch events may have
    /// been lost: ZOOKEEPER-4698).
    async fn refresh_all_topics(&self, client: &zk::Client) -> Result<(), ClusterError> {
        let topics = topics::read_all(client).await?;
        self.publish(|v| v.topics = topics);
        Ok(())
    }

    /// Re-reads the named topics.
    async fn refresh_topics(
        &self,
        client: &zk::Client,
        names: &std::collections::BTreeSet<String>,
    ) -> Result<(), ClusterError> {
        let mut read = Vec::with_capacity(names.len());
        for name in names {
            read.push((name.clone(), topics::read_topic(client, name).await?));
        }
        self.publish(|v| {
            for (name, topic) in read {
                match topic {
                    Some(t) => {
                        v.topics.insert(name, t);
                    }
                    None => {
                        v.topics.remove(&name);
                    }
                }
            }
        });
        Ok(())
    }

    /// This controller's epoch and `/controller_epoch` version, while it is the controller.
    fn my_controller_epoch(&self) -> Option<(i32, i32)> {
        let view = self.view();
        if view.controller_id != Some(self.node_id) {
            return None;
        }
        *self
            .controller_epoch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The current session, for writes made on a client's behalf (and the security
    /// records, which follow their own znodes with it).
    pub fn session(&self) -> Result<zk::Client, zk::Error> {
        self.client
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or(zk::Error::SessionExpired)
    }

    /// The controller epoch, recorded in the partition states this broker writes.
    /// The epoch of the current controller, as `/controller_epoch` says (0 when unknown).
    pub async fn current_controller_epoch(&self) -> i32 {
        match self.session() {
            Ok(client) => Self::controller_epoch(&client).await,
            Err(_) => 0,
        }
    }

    async fn controller_epoch(client: &zk::Client) -> i32 {
        match client.get_data("/controller_epoch").await {
            Ok((d, _)) => std::str::from_utf8(&d)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0),
            Err(_) => 0,
        }
    }

    /// ElectLeaders for one partition, on the controller (see [`controller::elect`]).
    pub async fn elect_leader(
        self: &Arc<Self>,
        topic: &str,
        partition: i32,
        preferred: bool,
    ) -> Result<Elected, zk::Error> {
        controller::elect(self, topic, partition, preferred).await
    }

    /// Asks the controller to move this broker's leaderships away and drop it from ISRs
    /// (Kafka's controlled shutdown): an ephemeral `/controlled_shutdown/<id>`, which goes
    /// with the session if the broker dies meanwhile.
    pub async fn request_controlled_shutdown(&self) -> Result<(), zk::Error> {
        let path = format!("/controlled_shutdown/{}", self.node_id);
        match self.session()?.create(&path, b"", &ephemeral()).await {
            Ok(_) | Err(zk::Error::NodeExists) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Deletes a topic from ZooKeeper; false if it did not exist.
    pub async fn delete_topic(&self, name: &str) -> Result<bool, zk::Error> {
        topics::delete(&self.session()?, name).await
    }

    /// Grows a topic to `total` partitions, placing the new ones as Kafka does with the
    /// replication factor of partition 0.
    pub async fn add_partitions(
        &self,
        name: &str,
        total: i32,
        manual: Option<Vec<Vec<i32>>>,
    ) -> Result<BTreeMap<i32, Vec<i32>>, topics::CreateTopicError> {
        let client = self.session()?;
        let topic = topics::read_topic(&client, name)
            .await?
            .ok_or_else(|| zk::Error::NoNode)?;
        let current = topic.partitions.len() as i32;
        let rf = topic
            .partitions
            .get(&0)
            .map_or(1, |p| p.replicas.len() as i32);
        let brokers: Vec<i32> = self.view().brokers.keys().copied().collect();
        let n = brokers.len().max(1);
        let added = match manual {
            Some(m) => (current..).zip(m).collect(),
            None => topics::assign_replicas(
                total - current,
                rf,
                &brokers,
                fastrand_index(n),
                fastrand_index(n),
                current,
            )?,
        };
        let epoch = Self::controller_epoch(&client).await;
        topics::add_partitions(&client, name, &added, epoch).await?;
        Ok(added)
    }

    /// Replaces a partition's ISR as its leader (see [`topics::set_isr`]).
    pub async fn set_isr(
        &self,
        topic: &str,
        partition: i32,
        leader_epoch: i32,
        isr: &[i32],
    ) -> Result<bool, zk::Error> {
        topics::set_isr(
            &self.session()?,
            topic,
            partition,
            self.node_id,
            leader_epoch,
            isr,
        )
        .await
    }

    /// Replaces a topic's explicit configs in ZooKeeper.
    pub async fn set_topic_configs(
        &self,
        name: &str,
        configs: &BTreeMap<String, String>,
    ) -> Result<(), zk::Error> {
        topics::set_configs(&self.session()?, name, configs).await
    }

    /// The next block of `size` producer ids from `/latest_producer_id_block`, claimed with a
    /// conditional write so no two brokers get the same block (Kafka's ZooKeeper layout).
    pub async fn allocate_producer_id_block(&self, size: i64) -> Result<(i64, i64), zk::Error> {
        let client = self.session()?;
        // Bounded: each lost race means another broker took a block.
        for _ in 0..100 {
            let (start, version) = match client.get_data("/latest_producer_id_block").await {
                Ok((d, stat)) => {
                    let block: ProducerIdBlock = serde_json::from_slice(&d).map_err(|_| {
                        zk::Error::UnexpectedError("unreadable /latest_producer_id_block".into())
                    })?;
                    let end: i64 = block.block_end.parse().map_err(|_| {
                        zk::Error::UnexpectedError("unreadable /latest_producer_id_block".into())
                    })?;
                    (end + 1, Some(stat.version))
                }
                Err(zk::Error::NoNode) => (0, None),
                Err(e) => return Err(e),
            };
            let record = serde_json::to_vec(&ProducerIdBlock {
                version: 1,
                broker: self.node_id,
                block_start: start.to_string(),
                block_end: (start + size - 1).to_string(),
            })
            .unwrap_or_default();
            let written = match version {
                Some(v) => client
                    .set_data("/latest_producer_id_block", &record, Some(v))
                    .await
                    .map(|_| ()),
                None => client
                    .create("/latest_producer_id_block", &record, &persistent())
                    .await
                    .map(|_| ()),
            };
            match written {
                Ok(()) => return Ok((start, start + size)),
                Err(zk::Error::BadVersion | zk::Error::NodeExists) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(zk::Error::UnexpectedError(
            "producer id block: too many concurrent claims".into(),
        ))
    }

    /// Leaves the cluster: closing the session removes this broker's registration (and its
    /// controllership) at once instead of after the session timeout.
    pub async fn leave(&self) {
        // The session closes when its last handle goes: this one first.
        self.client
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let _ = self.stop.send(true);
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    /// Elects a controller if there is none, then reads the view once; returns the watches.
    async fn follow_once(&self, client: &zk::Client) -> Result<MemberWatches, ClusterError> {
        // Bounded: after a lost race the next read sees the winner; if /controller keeps
        // vanishing, the watch set by the last read brings this back.
        let mut elections = 0;
        loop {
            let (members, exists, watches) = read_members(client).await?;
            if !exists && elections < 3 {
                elections += 1;
                if let Some(won) = try_elect(client, self.node_id).await? {
                    *self
                        .controller_epoch
                        .lock()
                        .unwrap_or_else(|e| e.into_inner()) = Some(won);
                }
                continue;
            }
            tracing::debug!(brokers = ?members.brokers.keys().collect::<Vec<_>>(), controller = ?members.controller_id, "cluster view");
            self.publish(|v| {
                v.brokers = members.brokers;
                v.controller_id = members.controller_id;
                v.shutting_down = members.shutting_down;
            });
            return Ok(watches);
        }
    }
}

/// The one-shot watches a read of the members leaves; any firing means "read again".
struct MemberWatches {
    brokers: zk::OneshotWatcher,
    controller: zk::OneshotWatcher,
    shutdown: zk::OneshotWatcher,
}

/// Why following stopped for this connection.
enum Interrupted {
    /// The broker is shutting down.
    Stop,
    /// The session's state changed (lost, expired, closed): read everything again later.
    Session,
    Failed(ClusterError),
}

impl From<ClusterError> for Interrupted {
    fn from(e: ClusterError) -> Self {
        Interrupted::Failed(e)
    }
}

impl From<zk::Error> for Interrupted {
    fn from(e: zk::Error) -> Self {
        Interrupted::Failed(e.into())
    }
}

/// The topic an event names, or why following must restart: a session event on a
/// persistent watcher means it may have missed events (or, if terminal, will get no more,
/// and must not be polled again).
fn topic_event(event: zk::WatchedEvent) -> Result<Option<String>, Interrupted> {
    if event.event_type == zk::EventType::Session {
        return match event.session_state {
            zk::SessionState::SyncConnected | zk::SessionState::ConnectedReadOnly => Ok(None),
            _ => Err(Interrupted::Session),
        };
    }
    Ok(topics::topic_of_path(&event.path).map(str::to_string))
}

/// Follows one connection of a session: persistent watches on every topic and config
/// znode, one-shot watches on the members; re-reads only what changed.
async fn follow_connected(
    cluster: &Cluster,
    client: &zk::Client,
    stopped: &mut tokio::sync::watch::Receiver<bool>,
) -> Result<(), Interrupted> {
    use futures_util::FutureExt as _;
    let mut state = client.state_watcher();
    // Watches before the reads they guard, so that no change falls between.
    let mut topic_watch = client
        .watch("/brokers/topics", zk::AddWatchMode::PersistentRecursive)
        .await?;
    let mut config_watch = client
        .watch("/config/topics", zk::AddWatchMode::PersistentRecursive)
        .await?;
    cluster.refresh_all_topics(client).await?;
    let members = cluster.follow_once(client).await?;
    let mut brokers = Box::pin(members.brokers.changed());
    let mut controller = Box::pin(members.controller.changed());
    let mut shutdown = Box::pin(members.shutdown.changed());
    loop {
        let mut dirty = std::collections::BTreeSet::new();
        tokio::select! {
            _ = &mut brokers => {}
            _ = &mut controller => {}
            _ = &mut shutdown => {}
            e = topic_watch.changed() => dirty.extend(topic_event(e)?),
            e = config_watch.changed() => dirty.extend(topic_event(e)?),
            _ = state.changed() => return Err(Interrupted::Session),
            _ = stop_requested(stopped) => return Err(Interrupted::Stop),
        }
        if !dirty.is_empty() {
            // One multi-op arrives as many events: take all that are already here.
            tokio::time::sleep(Duration::from_millis(2)).await;
            for _ in 0..100_000 {
                let Some(e) = topic_watch
                    .changed()
                    .now_or_never()
                    .or_else(|| config_watch.changed().now_or_never())
                else {
                    break;
                };
                dirty.extend(topic_event(e)?);
            }
            cluster.refresh_topics(client, &dirty).await?;
            continue;
        }
        // A member watch fired (one-shot: set again by the read).
        let members = cluster.follow_once(client).await?;
        brokers = Box::pin(members.brokers.changed());
        controller = Box::pin(members.controller.changed());
        shutdown = Box::pin(members.shutdown.changed());
    }
}

/// While this broker is the controller, keeps partition leadership in line with the live
/// brokers: on every change of the view, and every second (a write that failed is retried).
async fn controller_loop(cluster: Arc<Cluster>, mut stopped: tokio::sync::watch::Receiver<bool>) {
    let mut views = cluster.subscribe();
    loop {
        let view = views.borrow_and_update().clone();
        if view.controller_id == Some(cluster.node_id) {
            controller::reconcile(&cluster, &view).await;
        }
        tokio::select! {
            r = views.changed() => if r.is_err() { return },
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop_requested(&mut stopped) => return,
        }
    }
}

/// Resolves when the broker asks this membership to end.
async fn stop_requested(stopped: &mut tokio::sync::watch::Receiver<bool>) {
    // The guard `wait_for` returns must not live across an await: it is not Send.
    let _ = stopped.wait_for(|v| *v).await.map(|_| ());
}

/// Closes the session and waits (bounded) until ZooKeeper confirmed it, so this broker's
/// ephemeral znodes are gone before the process exits rather than a session timeout later.
async fn close(client: zk::Client) {
    let mut state = client.state_watcher();
    drop(client);
    let closed = async {
        loop {
            if matches!(
                state.changed().await,
                zk::SessionState::Closed | zk::SessionState::Expired
            ) {
                return;
            }
        }
    };
    if tokio::time::timeout(Duration::from_secs(2), closed)
        .await
        .is_err()
    {
        tracing::warn!("ZooKeeper did not confirm the session's close within 2 s");
    }
}

/// Follows the cluster until told to stop: re-reads the view whenever a watch fires, runs
/// for controller when `/controller` goes away, waits out a lost connection (the client
/// reconnects within the session by itself), and after an expired session connects and
/// registers again.
async fn follow(
    cluster: Arc<Cluster>,
    cfg: JoinConfig,
    mut client: zk::Client,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let failed = match follow_connected(&cluster, &client, &mut stopped).await {
            Err(Interrupted::Stop) | Ok(()) => return close(client).await,
            Err(Interrupted::Failed(e)) => {
                if !*stopped.borrow() {
                    tracing::warn!(error = %e, "ZooKeeper: cannot follow the cluster; retrying");
                }
                true
            }
            Err(Interrupted::Session) => false,
        };
        if *stopped.borrow() {
            return close(client).await;
        }
        // Wait out a lost connection: the session either comes back or expires.
        let mut state = client.state_watcher();
        let mut current = state.peek_state();
        while matches!(current, zk::SessionState::Disconnected) {
            tokio::select! {
                s = state.changed() => current = s,
                _ = stop_requested(&mut stopped) => return close(client).await,
            }
        }
        if failed {
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop_requested(&mut stopped) => return close(client).await,
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        } else {
            backoff = Duration::from_millis(100);
        }
        if matches!(
            current,
            zk::SessionState::SyncConnected | zk::SessionState::ConnectedReadOnly
        ) {
            continue;
        }
        // The session is over: a new one, and this broker registers again. Its old
        // registration went with the old session.
        let joined = async {
            let c = connect(&cfg).await?;
            register(&c, &cfg).await?;
            Ok::<_, ClusterError>(c)
        }
        .await;
        match joined {
            Ok(c) => {
                tracing::info!(
                    node_id = cfg.node_id,
                    "registered again after a new ZooKeeper session"
                );
                *cluster.client.write().unwrap_or_else(|e| e.into_inner()) = Some(c.clone());
                client = c;
            }
            Err(e) => tracing::warn!(error = %e, "cannot rejoin the cluster yet"),
        }
    }
}
