//! Broker start-up and shutdown: open the store, load metadata, accept connections.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::BrokerConfig;
use crate::group::{GroupConfig, GroupCoordinator};
use crate::metadata::Metadata;
use crate::server::listener;
use crate::storage::Store;
use crate::txn::ProducerIds;

pub use crate::context::Context;

/// Keeps the local metadata in step with the cluster's until the broker is gone.
async fn mirror_cluster(
    ctx: std::sync::Weak<Context>,
    mut view: watch::Receiver<Arc<crate::cluster::ClusterView>>,
) {
    loop {
        let current = view.borrow_and_update().clone();
        let Some(ctx) = ctx.upgrade() else { return };
        // The sync writes the store: off the async workers.
        let synced = {
            let ctx = ctx.clone();
            tokio::task::spawn_blocking(move || ctx.metadata.sync_from_cluster(&current))
        };
        match synced.await {
            Ok(removed) if !removed.is_empty() => {
                // A deleted topic's share partitions go with it: their leaders forget them,
                // and each share coordinator removes the states it keeps (Kafka's
                // `onTopicsDeleted`).
                tokio::spawn(async move {
                    for id in &removed {
                        crate::storage::offload::blocking(|| {
                            ctx.share_partitions.remove_topic(*id)
                        });
                    }
                    ctx.share_coordinator.forget_topics(&ctx, &removed).await;
                });
            }
            Ok(_) => {}
            Err(_) => tracing::error!("mirroring the cluster's metadata failed"),
        }
        if view.changed().await.is_err() {
            return;
        }
    }
}

/// A bound, ready broker: the listening socket is open, the store is loaded.
///
/// Binding and serving are separate steps so that callers (tests, the CLI) learn the real
/// address (port 0 becomes a free port) before any client connects.
pub struct Broker {
    ctx: Arc<Context>,
    listeners: Vec<listener::Bound>,
    http_listener: Option<TcpListener>,
    local_addr: SocketAddr,
    // Dropped last: removes an ephemeral data dir after the store is closed.
    _temp_dir: Option<tempfile::TempDir>,
}

/// A broker serving on a background task; shuts down when dropped or on [`BrokerHandle::shutdown`].
pub struct BrokerHandle {
    addr: SocketAddr,
    listener_addrs: Vec<(String, SocketAddr)>,
    /// Weak, so a handle kept around does not keep a stopped broker's store open.
    ctx: std::sync::Weak<Context>,
    shutdown: Option<watch::Sender<bool>>,
    task: Option<JoinHandle<()>>,
}

impl Broker {
    /// Opens the data dir, loads metadata and binds the listener.
    pub async fn bind(mut config: BrokerConfig) -> anyhow::Result<Broker> {
        let temp_dir = if config.ephemeral {
            let dir = tempfile::Builder::new()
                .prefix("klamm-")
                .tempdir()
                .context("creating the ephemeral data dir")?;
            config.data_dir = dir.path().to_path_buf();
            Some(dir)
        } else {
            None
        };
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
        let started = std::time::Instant::now();
        let store = Store::open(&config.data_dir, config.fsync)
            .with_context(|| format!("opening RocksDB in {}", config.data_dir.display()))?;
        // The listeners first: a cluster member registers the ports it advertises.
        let plan = crate::listeners::plan(&config).map_err(anyhow::Error::msg)?;
        let tls = if plan.listeners.iter().any(|l| l.protocol.tls()) {
            let (Some(certificate), Some(key)) = (&config.ssl_certificate, &config.ssl_key) else {
                anyhow::bail!("an SSL or SASL_SSL listener needs --ssl-certificate and --ssl-key");
            };
            let make = |client_auth| {
                crate::security::tls::server_config(&crate::security::tls::TlsSettings {
                    certificate,
                    key,
                    client_auth,
                    ca: config.ssl_ca.as_deref(),
                })
                .map_err(anyhow::Error::msg)
            };
            // As in Kafka (KIP-684), ssl.client.auth applies to SSL listeners: a SASL_SSL
            // client authenticates with SASL and is not asked for a certificate.
            Some(TlsConfigs {
                ssl: make(config.ssl_client_auth)?,
                sasl_ssl: make(crate::security::tls::ClientAuth::None)?,
            })
        } else {
            None
        };
        let (listeners, advertised) =
            bind_listeners(&plan, config.socket_listen_backlog_size, tls)?;
        let local_addr = listeners[0].socket.local_addr()?;
        let inter_protocol = plan
            .listeners
            .iter()
            .find(|l| l.name == plan.inter_broker)
            .map_or(crate::listeners::SecurityProtocol::Plaintext, |l| {
                l.protocol
            });
        let (inter_broker, inter_principal) = inter_broker_security(&config, inter_protocol)?;
        let super_users = match &config.super_users {
            Some(s) => crate::security::acl::parse_super_users(s)
                .map_err(|e| anyhow::anyhow!("--super-users: {e}"))?,
            None => Vec::new(),
        };
        // With ACLs on, the principal brokers have on the inter-broker listener must be a
        // super user, or replication and transaction markers are refused (Kafka's
        // inter-broker principal needs the same rights).
        if config.authorizer
            && config.zookeeper_connect.is_some()
            && !super_users.contains(&inter_principal)
        {
            let hint = if inter_principal == crate::security::ANONYMOUS {
                " (keep that listener on a private address and give clients SASL listeners, or make the inter-broker listener SASL with --inter-broker-sasl-user)"
            } else {
                ""
            };
            anyhow::bail!(
                "--authorizer in cluster mode needs {inter_principal} in --super-users: brokers reach each other on the {} listener {} as {inter_principal}{hint}",
                inter_protocol.name(),
                plan.inter_broker
            );
        }
        let cluster = match &config.zookeeper_connect {
            Some(connect) => Some(
                crate::cluster::Cluster::join(crate::cluster::JoinConfig {
                    connect: connect.clone(),
                    session_timeout: std::time::Duration::from_millis(
                        config.zookeeper_session_timeout_ms,
                    ),
                    node_id: config.node_id,
                    endpoints: advertised.clone(),
                    local_cluster_id: store.cluster_id().context("reading the cluster id")?,
                    new_cluster_id: crate::metadata::new_cluster_id(),
                    unclean_leader_election: config.unclean_leader_election_enable,
                })
                .await
                .context("joining the cluster")?,
            ),
            None => None,
        };
        let metadata = Metadata::load(
            store.clone(),
            config.max_partitions as usize,
            config.node_id,
            cluster.clone(),
        )
        .context("loading metadata")?;
        if let Some(c) = &cluster {
            // The cluster's topics before the first client, and this data dir's own
            // topics into the cluster if it had some before joining.
            // Nothing of a topic dropped here was served yet: no share state to forget.
            metadata.sync_from_cluster(&c.view());
            metadata.adopt_local_topics().await;
        }
        let producer_ids =
            ProducerIds::load(store.clone(), cluster.clone()).context("loading producer ids")?;
        let groups = Arc::new(
            GroupCoordinator::load(
                store.clone(),
                GroupConfig {
                    initial_rebalance_delay_ms: config.group_initial_rebalance_delay_ms,
                    min_session_timeout_ms: config.group_min_session_timeout_ms,
                    max_session_timeout_ms: config.group_max_session_timeout_ms,
                },
            )
            .context("loading consumer groups")?,
        );
        groups.start_timers();
        let txns = crate::txn::coordinator::TxnCoordinator::load(
            store.clone(),
            crate::txn::coordinator::TxnConfig {
                max_timeout_ms: config.transaction_max_timeout_ms,
                id_expiration_ms: i64::try_from(config.transactional_id_expiration_ms)
                    .unwrap_or(i64::MAX),
            },
        )
        .context("loading transactions")?;
        tracing::debug!(
            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
            topics = metadata.topics().len(),
            "store opened and metadata loaded"
        );
        let http_listener = match config.http {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding the HTTP port {addr}"))?,
            ),
            None => None,
        };
        let consumer_groups = crate::group::consumer::ConsumerGroups::new(
            crate::group::consumer::ConsumerGroupConfig {
                heartbeat_interval_ms: config.group_consumer_heartbeat_interval_ms,
                session_timeout_ms: config.group_consumer_session_timeout_ms,
                max_size: config.group_consumer_max_size as usize,
            },
        );
        let share_groups = crate::share::ShareGroups::new(crate::share::ShareGroupConfig {
            session_timeout_ms: config.group_share_session_timeout_ms,
            heartbeat_interval_ms: config.group_share_heartbeat_interval_ms,
            max_size: config.group_share_max_size as usize,
        });
        let sasl_mechanisms = crate::security::parse_mechanisms(&config.sasl_enabled_mechanisms)
            .map_err(anyhow::Error::msg)?;
        // ACLs and users: in the store on a single node, in ZooKeeper in a cluster, so
        // that every broker enforces the same ones.
        let records = Arc::new(match &cluster {
            Some(c) => crate::security::records::Records::zookeeper(c.clone()),
            None => crate::security::records::Records::local(store.clone()),
        });
        let loaded = records
            .load_all()
            .await
            .context("loading SASL users and ACLs")?;
        let users = Arc::new(crate::security::credentials::Credentials::new(
            records.clone(),
            &loaded,
        ));
        if let Some(spec) = &config.bootstrap_users {
            let created = users
                .bootstrap(spec)
                .await
                .map_err(|e| anyhow::anyhow!("--bootstrap-users: {e}"))?;
            if !created.is_empty() {
                tracing::info!(users = ?created, "SASL users created (--bootstrap-users)");
            }
        }
        if plan.listeners.iter().any(|l| l.protocol.sasl())
            && users.is_empty()
            && !sasl_mechanisms.contains(&crate::security::Mechanism::OAuthBearer)
        {
            tracing::warn!("a SASL listener is configured but there are no SASL users: every client will be refused (add some with --bootstrap-users or `klamm users create`)");
        }
        let authorizer = Arc::new(crate::security::acl::Authorizer::new(
            records.clone(),
            crate::security::acl::AuthorizerConfig {
                enabled: config.authorizer,
                super_users,
                allow_everyone_if_no_acl_found: config.allow_everyone_if_no_acl_found,
            },
            &loaded,
        ));
        let quotas = Arc::new(crate::quota::Quotas::new(records.clone(), &loaded));
        let tokens = Arc::new(crate::security::tokens::DelegationTokens::new(
            records.clone(),
            config.delegation_token_secret_key.as_deref(),
            crate::security::tokens::TokenLifetimes {
                max_lifetime_ms: config.delegation_token_max_lifetime_ms,
                expiry_time_ms: config.delegation_token_expiry_time_ms,
            },
            &loaded,
        ));
        let group_configs = Arc::new(crate::group::config::GroupConfigs::new(
            records.clone(),
            &loaded,
            &config,
        ));
        consumer_groups.set_group_configs(group_configs.clone());
        share_groups.set_group_configs(group_configs.clone());
        let share_partitions = crate::share::manager::SharePartitions::default();
        let share_sessions = crate::share::session::ShareSessionCache::new(
            config.group_share_max_share_sessions as usize,
        );
        share_partitions.set_group_configs(group_configs.clone());
        share_partitions.set_store(store.clone());
        {
            let (users, authorizer, quotas, group_configs, tokens) = (
                users.clone(),
                authorizer.clone(),
                quotas.clone(),
                group_configs.clone(),
                tokens.clone(),
            );
            records.follow(move |change| {
                users.apply(&change);
                tokens.apply(&change);
                authorizer.apply(&change);
                quotas.apply(&change);
                group_configs.apply(&change);
            });
        }
        let metrics = crate::metrics::Metrics::new();
        let fetch_sessions = crate::fetch_session::FetchSessionCache::new(
            config.max_incremental_fetch_session_cache_slots as usize,
            config.min_incremental_fetch_session_eviction_ms,
            metrics.fetch_session_evictions.clone(),
        );
        let ctx = Arc::new(Context {
            inter_broker,
            streams_groups: crate::group::streams::group::StreamsGroups::new(
                crate::group::streams::group::StreamsGroupConfig {
                    session_timeout_ms: config.group_streams_session_timeout_ms,
                    heartbeat_interval_ms: config.group_streams_heartbeat_interval_ms,
                    initial_rebalance_delay_ms: config.group_streams_initial_rebalance_delay_ms,
                    num_standby_replicas: config.group_streams_num_standby_replicas as u32,
                    max_size: config.group_streams_max_size as usize,
                    ..Default::default()
                },
            ),
            users,
            tokens,
            quotas,
            authorizer,
            sasl_mechanisms,
            config,
            metadata,
            producer_ids,
            groups,
            txns,
            consumer_groups,
            group_configs,
            share_groups,
            share_partitions,
            share_coordinator: Default::default(),
            share_sessions,
            store,
            listeners: advertised,
            inter_broker_listener: plan.inter_broker.clone(),
            metrics,
            fetch_sessions,
            faults: Default::default(),
            ready: std::sync::atomic::AtomicBool::new(false),
            stopping: std::sync::atomic::AtomicBool::new(false),
            cluster,
            http_addr: std::sync::OnceLock::new(),
            coordinator_loads: Default::default(),
            txn_journal: std::sync::OnceLock::new(),
        });
        ctx.streams_groups
            .set_group_configs(ctx.group_configs.clone());
        if let Some(h) = &http_listener {
            let _ = ctx.http_addr.set(h.local_addr()?);
        }
        if let Some(c) = &ctx.cluster {
            tokio::spawn(mirror_cluster(Arc::downgrade(&ctx), c.subscribe()));
            tokio::spawn(crate::replication::run(Arc::downgrade(&ctx)));
            tokio::spawn(crate::replication::shrink_isr(Arc::downgrade(&ctx)));
            let offsets_journal = Arc::new(crate::coordinator_log::OffsetsTopicJournal::new(
                Arc::downgrade(&ctx),
            ));
            ctx.groups.offsets.set_journal(offsets_journal.clone());
            ctx.consumer_groups.set_journal(offsets_journal.clone());
            ctx.streams_groups.set_journal(offsets_journal);
            let txn_journal = Arc::new(crate::coordinator_log::TxnLogJournal::new(Arc::downgrade(
                &ctx,
            )));
            let _ = ctx.txn_journal.set(txn_journal.clone());
            ctx.txns.set_journal(txn_journal);
            ctx.share_partitions.set_remote(Arc::new(
                crate::share::persister::RemotePersister::new(Arc::downgrade(&ctx)),
            ));
            tokio::spawn(crate::coordinator_log::run(Arc::downgrade(&ctx)));
            tokio::spawn(crate::txn_markers::run(Arc::downgrade(&ctx)));
        }
        tokio::spawn(crate::share::dlq::run(Arc::downgrade(&ctx)));
        // A single node finishes what a stop left half-written; in a cluster the marker
        // sender does, for the transactions this broker coordinates once loaded.
        ctx.txns.recover(&ctx.txn_env());
        Ok(Broker {
            ctx,
            listeners,
            http_listener,
            local_addr,
            _temp_dir: temp_dir,
        })
    }

    /// The address the first listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Every listener's name and bound address, in the order configured.
    pub fn listener_addrs(&self) -> Vec<(String, SocketAddr)> {
        self.listeners
            .iter()
            .filter_map(|l| Some((l.name.to_string(), l.socket.local_addr().ok()?)))
            .collect()
    }

    /// The shared state, for embedding code that wants to look inside.
    pub fn context(&self) -> Arc<Context> {
        self.ctx.clone()
    }

    /// The broker's background work, each on its own timer and off the async workers:
    /// retention, the cleaner, offsets and transactional id expiration, transaction
    /// timeouts and marker retries, KIP-848 session expiry. The work itself lives with what
    /// it works on; only the scheduling is here, so those modules need no broker.
    fn start_timers(&self) {
        use std::time::Duration;
        let c = &self.ctx.config;
        let ms = Duration::from_millis;
        every(&self.ctx, ms(c.log_retention_check_interval_ms), |ctx| {
            crate::maintenance::retention::run_once(&ctx.metadata, &ctx.config);
            ctx.metrics.retention_passes.inc();
        });
        let marks = std::sync::Mutex::new(std::collections::HashMap::new());
        every(&self.ctx, ms(c.log_cleaner_backoff_ms), move |ctx| {
            let mut marks = marks.lock().unwrap_or_else(|e| e.into_inner());
            crate::maintenance::compaction::run_once(&ctx.metadata, &ctx.config, &mut marks);
            ctx.metrics.cleaner_passes.inc();
        });
        every(
            &self.ctx,
            ms(c.offsets_retention_check_interval_ms),
            |ctx| {
                let mut pending = ctx.txns.groups_in_open_transactions();
                for (g, held) in ctx.groups.offsets.groups_in_open_txns() {
                    pending.entry(g).or_default().extend(held);
                }
                let retention =
                    i64::try_from(ctx.config.offsets_retention_ms()).unwrap_or(i64::MAX);
                match ctx.groups.expire_offsets(
                    &ctx.consumer_groups,
                    &ctx.streams_groups,
                    &pending,
                    crate::clock::now_ms(),
                    retention,
                ) {
                    Ok(stats) => {
                        ctx.metrics.offsets_expired.inc_by(stats.offsets as u64);
                        ctx.metrics.groups_expired.inc_by(stats.groups as u64);
                    }
                    Err(e) => tracing::warn!(error = %e, "offsets expiration pass failed"),
                }
                ctx.metrics.offsets_expiration_passes.inc();
            },
        );
        every(
            &self.ctx,
            ms(c.transaction_remove_expired_transaction_cleanup_interval_ms),
            |ctx| {
                match ctx.txns.expire_transactional_ids(crate::clock::now_ms()) {
                    Ok(n) => {
                        ctx.metrics.transactional_ids_expired.inc_by(n as u64);
                    }
                    Err(e) => tracing::warn!(error = %e, "transactional id expiration failed"),
                }
                ctx.metrics.transactional_id_expiration_passes.inc();
            },
        );
        every(
            &self.ctx,
            ms(c.transaction_abort_timed_out_transaction_cleanup_interval_ms),
            |ctx| {
                let env = ctx.txn_env();
                ctx.txns.abort_timed_out(&env);
                ctx.txns
                    .finish_prepared(&env, "retrying the markers of a prepared transaction");
            },
        );
        // Expired delegation tokens: removed by one broker (the controller, in a cluster, as
        // ZooKeeper-mode Kafka did) through the records every broker follows.
        if self.ctx.tokens.enabled() {
            let weak = Arc::downgrade(&self.ctx);
            let interval = ms(c.delegation_token_expiry_check_interval_ms);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let Some(ctx) = weak.upgrade() else { return };
                    let sweeps = ctx
                        .cluster
                        .as_ref()
                        .is_none_or(|c| c.view().controller_id == Some(c.node_id()));
                    if !sweeps {
                        continue;
                    }
                    match ctx.tokens.sweep(crate::clock::now_ms()).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(tokens = n, "expired delegation tokens removed"),
                        Err(e) => {
                            tracing::warn!(error = %e, "expired delegation tokens could not be removed; retrying at the next check")
                        }
                    }
                }
            });
        }
        // KIP-848 and share group session (and revocation) timeouts: in memory only, on the async worker.
        let weak = Arc::downgrade(&self.ctx);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(ms(250));
            loop {
                tick.tick().await;
                let Some(ctx) = weak.upgrade() else { return };
                ctx.consumer_groups.expire(std::time::Instant::now());
                ctx.share_groups
                    .expire(&ctx.metadata, std::time::Instant::now());
                ctx.streams_groups.expire(std::time::Instant::now());
            }
        });
    }

    /// Serves clients until `shutdown` completes, then closes connections and flushes.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let (tx, rx) = watch::channel(false);
        self.start_timers();
        if let Some(http) = self.http_listener {
            crate::http::spawn(self.ctx.clone(), http, rx.clone())
                .context("starting the HTTP port")?;
        }
        self.ctx
            .ready
            .store(true, std::sync::atomic::Ordering::Release);
        for l in self.listeners.iter().skip(1) {
            if let Ok(a) = l.socket.local_addr() {
                tracing::info!(listener = %l.name, protocol = %l.protocol, "also listening on {a}");
            }
        }
        tracing::info!("klamm ready on {}", self.local_addr);
        let serve = listener::serve(self.listeners, self.ctx.clone(), rx);
        tokio::pin!(serve);
        tokio::select! {
            _ = &mut serve => {}
            _ = shutdown => {
                // Controlled shutdown: leaderships move to other in-sync replicas while this
                // broker still answers (NOT_LEADER_OR_FOLLOWER sends clients there).
                if self.ctx.cluster.is_some() {
                    tokio::select! {
                        _ = self.ctx.metadata.controlled_shutdown(std::time::Duration::from_secs(30)) => {}
                        _ = &mut serve => {}
                    }
                }
                self.ctx.ready.store(false, std::sync::atomic::Ordering::Release);
                let _ = tx.send(true);
                serve.await;
            }
        }
        self.ctx
            .stopping
            .store(true, std::sync::atomic::Ordering::Release);
        if let Some(c) = &self.ctx.cluster {
            c.leave().await;
        }
        self.ctx.store.flush().context("flushing the store")?;
        tracing::info!("klamm stopped");
        Ok(())
    }

    /// Serves on a background task; the returned handle stops the broker when dropped.
    pub fn spawn(self) -> BrokerHandle {
        let addr = self.local_addr;
        let listener_addrs = self.listener_addrs();
        let ctx_for_handle = Arc::downgrade(&self.ctx);
        let (tx, mut rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            let stop = async move {
                let _ = rx.wait_for(|v| *v).await;
            };
            if let Err(e) = self.run_until(stop).await {
                tracing::error!(error = %e, "broker stopped with an error");
            }
        });
        BrokerHandle {
            addr,
            listener_addrs,
            ctx: ctx_for_handle,
            shutdown: Some(tx),
            task: Some(task),
        }
    }
}

impl BrokerHandle {
    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bound address of the listener called `name` (Kafka's upper-case listener name).
    pub fn listener_addr(&self, name: &str) -> Option<SocketAddr> {
        self.listener_addrs
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, a)| *a)
    }

    /// `HOST:PORT` for a client's bootstrap.servers.
    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    /// The running broker's state, for tests and embedders (e.g. its metrics); None once
    /// the broker has stopped.
    pub fn context(&self) -> Option<Arc<Context>> {
        self.ctx.upgrade()
    }

    /// Stops accepting, closes connections, flushes the store and waits for all of it.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(true);
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for BrokerHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(true);
        }
    }
}

/// The TLS configurations of SSL and SASL_SSL listeners (they differ in client auth).
struct TlsConfigs {
    ssl: Arc<rustls::ServerConfig>,
    sasl_ssl: Arc<rustls::ServerConfig>,
}

/// Binds every listener of the plan and returns them with their advertised endpoints, in
/// which a port 0 becomes the bound port and an every-interface host this machine's name
/// (Kafka advertises the canonical host name there).
fn bind_listeners(
    plan: &crate::listeners::ListenerPlan,
    backlog: u32,
    tls: Option<TlsConfigs>,
) -> anyhow::Result<(Vec<listener::Bound>, Vec<crate::listeners::Listener>)> {
    use std::net::ToSocketAddrs;
    let mut bound = Vec::with_capacity(plan.listeners.len());
    let mut advertised = Vec::with_capacity(plan.listeners.len());
    for (l, a) in plan.listeners.iter().zip(&plan.advertised) {
        let host = crate::listeners::bind_host(l);
        let addr = (host, l.port)
            .to_socket_addrs()
            .with_context(|| format!("resolving listener {l}"))?
            .next()
            .with_context(|| format!("listener {l}: {host} has no address"))?;
        let socket =
            bind_with_backlog(addr, backlog).with_context(|| format!("binding listener {l}"))?;
        let local = socket.local_addr()?;
        let mut a = a.clone();
        if a.port == 0 {
            a.port = local.port();
        }
        if a.host.is_empty() || a.host == "0.0.0.0" || a.host == "::" {
            a.host = crate::listeners::local_host_name().unwrap_or_else(|| "localhost".into());
        }
        bound.push(listener::Bound {
            socket,
            name: Arc::from(l.name.as_str()),
            protocol: l.protocol,
            tls: match (&tls, l.protocol) {
                (Some(t), crate::listeners::SecurityProtocol::Ssl) => Some(t.ssl.clone()),
                (Some(t), crate::listeners::SecurityProtocol::SaslSsl) => Some(t.sasl_ssl.clone()),
                _ => None,
            },
        });
        advertised.push(a);
    }
    Ok((bound, advertised))
}

/// Binds as `TcpListener::bind` does (SO_REUSEADDR on Unix, so a restarted broker gets its
/// port back while old connections sit in TIME_WAIT) but with the configured backlog, which
/// tokio's `bind` fixes at 1024.
fn bind_with_backlog(addr: std::net::SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Runs `pass` every `interval` (the first after one interval) on a blocking thread, since
/// background passes read and write RocksDB, until the broker is dropped.
fn every(
    ctx: &Arc<Context>,
    interval: std::time::Duration,
    pass: impl Fn(&Context) + Send + Sync + 'static,
) {
    let weak = Arc::downgrade(ctx);
    let pass = Arc::new(pass);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval.max(std::time::Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(ctx) = weak.upgrade() else { break };
            let pass = pass.clone();
            if tokio::task::spawn_blocking(move || pass(&ctx))
                .await
                .is_err()
            {
                break;
            }
        }
    });
}

/// How this broker dials the others on the inter-broker listener (TLS, SASL), and the
/// principal it has there, which ACLs must let do everything brokers do.
fn inter_broker_security(
    config: &BrokerConfig,
    protocol: crate::listeners::SecurityProtocol,
) -> anyhow::Result<(crate::client::Security, String)> {
    use crate::security::{tls, Mechanism, ANONYMOUS};
    // A single node dials no other broker: its first listener may be anything.
    if config.zookeeper_connect.is_none() {
        return Ok((crate::client::Security::default(), ANONYMOUS.to_string()));
    }
    let tls = if protocol.tls() {
        let (Some(ca), Some(cert), Some(key)) =
            (&config.ssl_ca, &config.ssl_certificate, &config.ssl_key)
        else {
            anyhow::bail!("an {} inter-broker listener needs --ssl-ca (the CA that signs the brokers' certificates, to verify them) with --ssl-certificate and --ssl-key", protocol.name());
        };
        Some(tls::client_config(ca, cert, key).map_err(anyhow::Error::msg)?)
    } else {
        None
    };
    let sasl = if protocol.sasl() {
        let name = config.inter_broker_sasl_mechanism.to_ascii_uppercase();
        let mechanism = Mechanism::from_name(&name)
            .filter(|m| *m != Mechanism::OAuthBearer)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "--inter-broker-sasl-mechanism {name:?}: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"
                )
            })?;
        let (Some(user), Some(password)) = (
            &config.inter_broker_sasl_user,
            &config.inter_broker_sasl_password,
        ) else {
            anyhow::bail!("a {} inter-broker listener needs --inter-broker-sasl-user and --inter-broker-sasl-password", protocol.name());
        };
        Some(crate::client::SaslLogin {
            mechanism,
            user: user.clone(),
            password: password.clone(),
        })
    } else {
        None
    };
    let principal = match (&sasl, &config.ssl_certificate) {
        (Some(login), _) => format!("User:{}", login.user),
        (None, Some(cert))
            if protocol == crate::listeners::SecurityProtocol::Ssl
                && config.ssl_client_auth != tls::ClientAuth::None =>
        {
            tls::own_principal(cert).unwrap_or_else(|| ANONYMOUS.to_string())
        }
        _ => ANONYMOUS.to_string(),
    };
    Ok((crate::client::Security { tls, sasl }, principal))
}
