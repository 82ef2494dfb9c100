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
    /// The store, for start-up, shutdown (flush) and tests. Services hold their own handle
    /// and handlers go through them, never through this.
    pub store: Arc<Store>,
    /// Host and port that Metadata and DescribeCluster report for this broker.
    pub advertised_host: String,
    pub advertised_port: i32,
    pub metrics: crate::metrics::Metrics,
    /// Fault-injection rules set over the HTTP port (none unless a user adds some).
    pub faults: crate::fault::Faults,
    /// True while the listener accepts clients (the HTTP port's `/ready`).
    pub ready: std::sync::atomic::AtomicBool,
    /// Cluster membership (`--zookeeper-connect`); None for a single broker.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// Where the admin HTTP port listens, once bound (`--http`).
    pub http_addr: std::sync::OnceLock<SocketAddr>,
}

impl Context {
    /// The brokers clients may connect to, by node id, and the controller's id: this broker
    /// alone when it is not in a cluster, else what ZooKeeper last said.
    pub fn brokers_and_controller(&self) -> (Vec<(i32, String, i32)>, i32) {
        match &self.cluster {
            Some(c) => {
                let view = c.view();
                let brokers = view
                    .brokers
                    .iter()
                    .map(|(id, e)| (*id, e.host.clone(), e.port))
                    .collect();
                // Kafka answers -1 while no controller is known.
                (brokers, view.controller_id.unwrap_or(-1))
            }
            None => (
                vec![(
                    self.config.node_id,
                    self.advertised_host.clone(),
                    self.advertised_port,
                )],
                self.config.node_id,
            ),
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
