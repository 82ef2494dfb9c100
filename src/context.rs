//! The broker's shared state as request handlers and background passes see it: the
//! configuration and the services, each the one owner of its piece of state. Defined
//! below the frontends (`server`, `http`) and the start-up code (`broker`), so handlers
//! depend on it without depending on what starts them.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::config::BrokerConfig;
use crate::group::GroupCoordinator;
use crate::metadata::Metadata;
use crate::storage::Store;
use crate::txn::ProducerIds;

/// What every request handler may use: the configuration and the services.
///
/// It exists so handlers take one argument for the broker's shared state, and so that no
/// handler reaches RocksDB except through a service.
pub struct Context {
    pub config: BrokerConfig,
    pub metadata: Metadata,
    pub producer_ids: ProducerIds,
    pub groups: Arc<GroupCoordinator>,
    pub txns: crate::txn::coordinator::TxnCoordinator,
    /// KIP-848 consumer groups (ConsumerGroupHeartbeat).
    pub consumer_groups: crate::group::consumer::ConsumerGroups,
    /// Per-group configs (the GROUP config resource).
    pub group_configs: Arc<crate::group::config::GroupConfigs>,
    /// KIP-932 share groups (ShareGroupHeartbeat): membership and assignments.
    pub share_groups: crate::share::ShareGroups,
    /// KIP-932 share partitions this broker leads: the records' delivery state.
    pub share_partitions: crate::share::manager::SharePartitions,
    /// Cluster mode: the share partitions' states on the `__share_group_state` partitions
    /// this broker leads.
    pub share_coordinator: crate::share::coordinator::ShareCoordinator,
    /// KIP-932 share sessions: what each share consumer fetches here.
    pub share_sessions: crate::share::session::ShareSessionCache,
    /// The store, for start-up, shutdown (flush) and tests. Services hold their own handle
    /// and handlers go through them, never through this.
    pub store: Arc<Store>,
    /// This broker's advertised listeners (with real ports once bound): what Metadata,
    /// FindCoordinator and DescribeCluster report to a client of each listener.
    pub listeners: Vec<crate::listeners::Listener>,
    /// The listener brokers of a cluster dial each other on.
    pub inter_broker_listener: String,
    /// How this broker dials the others on the inter-broker listener (TLS, SASL).
    pub inter_broker: crate::client::Security,
    /// SASL users and their salted credentials.
    /// Streams groups (KIP-1071): Kafka Streams' `group.protocol=streams`.
    pub streams_groups: crate::group::streams::group::StreamsGroups,
    pub users: Arc<crate::security::credentials::Credentials>,
    /// Delegation tokens (KIP-48): made, renewed and expired by any broker, accepted by
    /// every broker's SCRAM.
    pub tokens: Arc<crate::security::tokens::DelegationTokens>,
    /// The ACLs and the rules that apply them (`--authorizer`).
    pub authorizer: Arc<crate::security::acl::Authorizer>,
    /// Client quotas (user, client id, IP), enforced on Produce, Fetch and connections.
    pub quotas: Arc<crate::quota::Quotas>,
    /// `--sasl-enabled-mechanisms`.
    pub sasl_mechanisms: Vec<crate::security::Mechanism>,
    pub metrics: crate::metrics::Metrics,
    /// Fetch sessions (KIP-227): what each fetcher last asked for, so it can send only what
    /// changed (`--max-incremental-fetch-session-cache-slots`).
    pub fetch_sessions: crate::fetch_session::FetchSessionCache,
    /// Fault-injection rules set over the HTTP port (none unless a user adds some).
    pub faults: crate::fault::Faults,
    /// True while the listener accepts clients (the HTTP port's `/ready`).
    pub ready: std::sync::atomic::AtomicBool,
    /// Set once the broker has stopped serving: background loops return instead of
    /// arming timers, since a task still running when the runtime is dropped (one that was
    /// inside `block_in_place`) panics on any timer it polls.
    pub stopping: std::sync::atomic::AtomicBool,
    /// Cluster membership (`--zookeeper-connect`); None for a single broker.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// Where the admin HTTP port listens, once bound (`--http`).
    pub http_addr: std::sync::OnceLock<SocketAddr>,
    /// Cluster mode: which coordinators' partitions this broker has loaded.
    pub coordinator_loads: crate::coordinator_log::CoordinatorLoads,
    /// Cluster mode: the transaction coordinator's journal on `__transaction_state`.
    pub txn_journal: std::sync::OnceLock<Arc<crate::coordinator_log::TxnLogJournal>>,
}

impl Context {
    /// Connects to another broker at `addr` on the inter-broker listener, with its TLS and
    /// SASL login when the listener has them.
    pub async fn dial(
        &self,
        addr: &str,
        timeout: std::time::Duration,
    ) -> anyhow::Result<crate::client::Client> {
        crate::client::Client::connect_with(addr, timeout, &self.inter_broker).await
    }

    /// The brokers clients may connect to, by node id, and the controller's id: this broker
    /// alone when it is not in a cluster, else what ZooKeeper last said.
    pub fn brokers_and_controller(&self, listener: &str) -> (Vec<(i32, String, i32)>, i32) {
        match &self.cluster {
            Some(c) => {
                let view = c.view();
                let brokers = view
                    .brokers
                    .iter()
                    // Kafka leaves out brokers that lack the client's listener.
                    .filter_map(|(id, e)| {
                        let e = e.by_listener.get(listener)?;
                        Some((*id, e.host.clone(), e.port))
                    })
                    .collect();
                // Kafka answers -1 while no controller is known.
                (brokers, view.controller_id.unwrap_or(-1))
            }
            None => (
                self.own_endpoint(listener)
                    .map(|(host, port)| (self.config.node_id, host, port))
                    .into_iter()
                    .collect(),
                self.config.node_id,
            ),
        }
    }

    /// The broker that coordinates a group (`key_type` 0) or a transactional id (1), with
    /// its host and port. On a single node that is this broker. In a cluster it is the
    /// leader of the key's partition of `__consumer_offsets` or `__transaction_state`, as in
    /// Kafka; the topic is created on first use.
    pub async fn coordinator(
        &self,
        key_type: i8,
        key: &str,
        listener: &str,
    ) -> Result<(i32, String, i32), kafka_protocol::ResponseError> {
        use kafka_protocol::ResponseError::CoordinatorNotAvailable;
        let Some(cluster) = &self.cluster else {
            let (host, port) = self.own_endpoint(listener).ok_or(CoordinatorNotAvailable)?;
            return Ok((self.config.node_id, host, port));
        };
        let (name, partitions, rf) = self.coordinator_topic(key_type);
        let topic = match self.metadata.topic(name) {
            Some(t) => t,
            None => {
                let created = self
                    .metadata
                    .create(crate::metadata::NewTopic {
                        name: name.to_string(),
                        partitions,
                        replication_factor: rf,
                        assignment: None,
                        configs: [("cleanup.policy".to_string(), "compact".to_string())].into(),
                        validate_only: false,
                        wait: std::time::Duration::from_secs(5),
                    })
                    .await;
                if let Err((code, message)) = created {
                    if code != kafka_protocol::ResponseError::TopicAlreadyExists {
                        tracing::warn!(topic = name, error = ?code, %message, "cannot create the coordinators' topic yet");
                    }
                }
                self.metadata
                    .topic_arriving(name, std::time::Duration::from_secs(5))
                    .await
                    .ok_or(CoordinatorNotAvailable)?
            }
        };
        let index = coordinator_partition(key, topic.placements.len());
        let leader = topic
            .placement(index)
            .map(|p| p.leader)
            .ok_or(CoordinatorNotAvailable)?;
        let view = cluster.view();
        let endpoint = view
            .endpoint(leader, listener)
            .ok_or(CoordinatorNotAvailable)?;
        Ok((leader, endpoint.host.clone(), endpoint.port))
    }

    /// This broker's advertised host and port on `listener`.
    pub fn own_endpoint(&self, listener: &str) -> Option<(String, i32)> {
        self.listeners
            .iter()
            .find(|l| l.name == listener)
            .map(|l| (l.host.clone(), i32::from(l.port)))
    }

    /// HOST:PORT of another live broker on the inter-broker listener.
    pub fn broker_address(&self, id: i32) -> Option<String> {
        self.cluster
            .as_ref()?
            .view()
            .address(id, &self.inter_broker_listener)
    }

    /// Why this broker cannot answer for the key (see [`Context::coordinator`]), or None
    /// when it can: NOT_COORDINATOR when another broker coordinates it (the client asks
    /// FindCoordinator again), COORDINATOR_LOAD_IN_PROGRESS while the key's partition of
    /// `__consumer_offsets` or `__transaction_state` is being loaded in a new term (the
    /// client retries).
    pub fn coordinator_error(
        &self,
        key_type: i8,
        key: &str,
    ) -> Option<kafka_protocol::ResponseError> {
        use kafka_protocol::ResponseError::{CoordinatorLoadInProgress, NotCoordinator};
        self.cluster.as_ref()?;
        let (name, _, _) = self.coordinator_topic(key_type);
        let Some(t) = self.metadata.topic(name) else {
            return Some(NotCoordinator);
        };
        let index = coordinator_partition(key, t.placements.len());
        let Some(p) = t
            .placement(index)
            .filter(|_| self.metadata.leads(&t, index))
        else {
            return Some(NotCoordinator);
        };
        (!self
            .coordinator_loads
            .ready(key_type, index, p.leader_epoch))
        .then_some(CoordinatorLoadInProgress)
    }

    /// Waits until the transactional id's last state change is replicated (cluster mode;
    /// at once on a single node, whose store write was durable already).
    pub async fn txn_durable(
        &self,
        transactional_id: &str,
    ) -> Result<(), kafka_protocol::ResponseError> {
        match self.txn_journal.get() {
            Some(j) => j.durable(transactional_id).await,
            None => Ok(()),
        }
    }

    fn coordinator_topic(&self, key_type: i8) -> (&'static str, i32, i32) {
        if key_type == crate::share::coordinator::KEY_TYPE {
            (
                crate::share::coordinator::SHARE_STATE_TOPIC,
                self.config.share_coordinator_state_topic_num_partitions,
                self.config.share_coordinator_state_topic_replication_factor,
            )
        } else if key_type == 1 {
            (
                "__transaction_state",
                self.config.transaction_state_log_num_partitions,
                self.config.transaction_state_log_replication_factor,
            )
        } else {
            (
                "__consumer_offsets",
                self.config.offsets_topic_num_partitions,
                self.config.offsets_topic_replication_factor,
            )
        }
    }

    /// The handles the transaction coordinator works with, lent for one call.
    pub fn txn_env(&self) -> crate::txn::coordinator::TxnEnv<'_> {
        crate::txn::coordinator::TxnEnv {
            metadata: &self.metadata,
            groups: &self.groups,
            consumer_groups: &self.consumer_groups,
            producer_ids: &self.producer_ids,
            faults: &self.faults,
        }
    }
}

/// The partition of the coordinators' topic that owns `key`: Kafka's
/// `Utils.abs(key.hashCode()) % partitions`, with Java's String hash over UTF-16 units, so
/// a group lands where Kafka would put it.
pub fn coordinator_partition(key: &str, partitions: usize) -> i32 {
    let hash = key
        .encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)));
    ((hash & 0x7fff_ffff) as usize % partitions.max(1)) as i32
}

#[cfg(test)]
mod tests {
    /// Values from Java: `"my-group".hashCode()` is -1_906_497_762 -> partition 36 of 50;
    /// `"".hashCode()` is 0; a negative hash is masked, not negated, as Kafka's Utils.abs.
    #[test]
    fn coordinator_partition_matches_kafka() {
        assert_eq!(super::coordinator_partition("", 50), 0);
        let h = "my-group"
            .encode_utf16()
            .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)));
        assert_eq!(h, -1_906_497_762);
        assert_eq!(super::coordinator_partition("my-group", 50), 36);
        // "polygenelubricants".hashCode() == Integer.MIN_VALUE in Java.
        assert_eq!(super::coordinator_partition("polygenelubricants", 50), 0);
    }
}
