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

/// Where clients reach a broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerEndpoint {
    pub host: String,
    pub port: i32,
}

/// The live brokers and the controller, as ZooKeeper last said.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    pub brokers: BTreeMap<i32, BrokerEndpoint>,
    pub controller_id: Option<i32>,
    /// Every topic in `/brokers/topics`, with its partitions' replicas and state.
    pub topics: BTreeMap<String, topics::ClusterTopic>,
}

/// What a broker needs to join.
pub struct JoinConfig {
    /// HOST:PORT[,HOST:PORT...][/chroot], Kafka's `zookeeper.connect`.
    pub connect: String,
    pub session_timeout: Duration,
    pub node_id: i32,
    pub endpoint: BrokerEndpoint,
    /// The data dir's cluster id if it has one, else a new one: what a first broker writes
    /// to `/cluster/id`.
    pub local_cluster_id: Option<String>,
    pub new_cluster_id: String,
}

/// This broker's membership of a cluster: its ZooKeeper session and the view it keeps.
///
/// It exists so that the rest of the broker asks one place who the live brokers and the
/// controller are, while the session, its watches and re-registration after an expired
/// session stay in here.
pub struct Cluster {
    cluster_id: String,
    node_id: i32,
    view: RwLock<Arc<ClusterView>>,
    /// The current session, for writes made on a client's behalf (CreateTopics).
    client: RwLock<Option<zk::Client>>,
    stop: tokio::sync::watch::Sender<bool>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// `/brokers/ids/<id>`, as Kafka's ZooKeeper-mode brokers wrote it (version 5).
#[derive(Serialize, Deserialize)]
struct BrokerRegistration {
    #[serde(default)]
    features: BTreeMap<String, serde_json::Value>,
    listener_security_protocol_map: BTreeMap<String, String>,
    endpoints: Vec<String>,
    jmx_port: i32,
    host: String,
    port: i32,
    version: i32,
    timestamp: String,
}

/// `/controller`.
#[derive(Serialize, Deserialize)]
struct ControllerRecord {
    version: i32,
    brokerid: i32,
    timestamp: String,
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
    let endpoint = format!("PLAINTEXT://{}:{}", cfg.endpoint.host, cfg.endpoint.port);
    let record = serde_json::to_vec(&BrokerRegistration {
        features: BTreeMap::new(),
        listener_security_protocol_map: [("PLAINTEXT".to_string(), "PLAINTEXT".to_string())].into(),
        endpoints: vec![endpoint],
        jmx_port: -1,
        host: cfg.endpoint.host.clone(),
        port: cfg.endpoint.port,
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
async fn try_elect(client: &zk::Client, node_id: i32) -> Result<bool, ClusterError> {
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
            tracing::info!(
                node_id,
                epoch = epoch.map_or(1, |(n, _)| n + 1),
                "became the controller"
            );
            Ok(true)
        }
        Err(zk::MultiWriteError::OperationFailed {
            source: zk::Error::NodeExists | zk::Error::BadVersion,
            ..
        }) => Ok(false),
        Err(e) => Err(zk::Error::from(e).into()),
    }
}

/// Reads the live brokers and the controller, leaving watches that fire on any change.
/// Also says whether `/controller` exists (it may hold data this broker cannot read).
async fn read_view(client: &zk::Client) -> Result<(ClusterView, bool, Watches), ClusterError> {
    let (ids, _, brokers_watch) = client.get_and_watch_children("/brokers/ids").await?;
    let (controller_stat, controller_watch) = client.check_and_watch_stat("/controller").await?;
    let mut view = ClusterView::default();
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
                view.brokers.insert(
                    n,
                    BrokerEndpoint {
                        host: r.host,
                        port: r.port,
                    },
                );
            }
            Err(e) => tracing::warn!(broker = n, error = %e, "unreadable broker registration"),
        }
    }
    if controller_stat.is_some() {
        match client.get_data("/controller").await {
            Ok((data, _)) => {
                view.controller_id = serde_json::from_slice::<ControllerRecord>(&data)
                    .ok()
                    .map(|r| r.brokerid);
            }
            Err(zk::Error::NoNode) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let (topics, topics_watch) = topics::read(client).await?;
    view.topics = topics;
    Ok((
        view,
        controller_stat.is_some(),
        Watches {
            brokers: brokers_watch,
            controller: controller_watch,
            topics: topics_watch,
        },
    ))
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
            view: RwLock::new(Arc::new(ClusterView::default())),
            client: RwLock::new(Some(client.clone())),
            stop,
            task: std::sync::Mutex::new(None),
        });
        // The first view before anyone asks, so Metadata never lists an empty cluster.
        cluster.follow_once(&client).await?;
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
        let client = self
            .client
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or(topics::CreateTopicError::Zk(zk::Error::SessionExpired))?;
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
        let epoch = match client.get_data("/controller_epoch").await {
            Ok((d, _)) => std::str::from_utf8(&d)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0),
            Err(_) => 0,
        };
        topics::create(&client, name, topic_id, &assignment, configs, epoch).await?;
        Ok(assignment)
    }

    /// The live brokers and the controller.
    pub fn view(&self) -> Arc<ClusterView> {
        self.view.read().unwrap_or_else(|e| e.into_inner()).clone()
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
    async fn follow_once(&self, client: &zk::Client) -> Result<Watches, ClusterError> {
        // Bounded: after a lost race the next read sees the winner; if /controller keeps
        // vanishing, the watch set by the last read brings this back.
        let mut elections = 0;
        loop {
            let (view, exists, watches) = read_view(client).await?;
            if !exists && elections < 3 {
                elections += 1;
                try_elect(client, self.node_id).await?;
                continue;
            }
            tracing::debug!(brokers = ?view.brokers.keys().collect::<Vec<_>>(), controller = ?view.controller_id, "cluster view");
            *self.view.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(view);
            return Ok(watches);
        }
    }
}

/// The one-shot watches a read of the cluster leaves; any firing means "read again".
struct Watches {
    brokers: zk::OneshotWatcher,
    controller: zk::OneshotWatcher,
    topics: zk::OneshotWatcher,
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
        let mut state = client.state_watcher();
        let result: Result<(), ClusterError> = async {
            loop {
                let watches = cluster.follow_once(&client).await?;
                backoff = Duration::from_millis(100);
                tokio::select! {
                    _ = watches.brokers.changed() => {}
                    _ = watches.controller.changed() => {}
                    _ = watches.topics.changed() => {}
                    _ = state.changed() => {}
                    _ = stop_requested(&mut stopped) => return Ok(()),
                }
            }
        }
        .await;
        if let Err(e) = &result {
            if !*stopped.borrow() {
                tracing::warn!(error = %e, "ZooKeeper: cannot follow the cluster; retrying");
            }
        }
        if result.is_ok() || *stopped.borrow() {
            close(client).await;
            return;
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
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop_requested(&mut stopped) => return close(client).await,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
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
