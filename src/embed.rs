//! A broker to embed in a test process: a free loopback port, a temporary data dir, topics
//! created without a client, and everything gone when it is dropped. It exists so a Rust
//! test suite gets a real Kafka-protocol broker in a few milliseconds, without a JVM or a
//! container.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context as _;

use crate::broker::{Broker, BrokerHandle, Context};
use crate::config::BrokerConfig;
use crate::topic_config;

/// A running broker owned by a test. Dropping it stops the broker and removes its data dir.
///
/// ```no_run
/// # async fn example() -> anyhow::Result<()> {
/// let broker = klamm::TestBroker::start().await?;
/// broker.create_topic("orders", 3)?;
/// let bootstrap = broker.bootstrap(); // "127.0.0.1:PORT" for any Kafka client
/// # let _ = bootstrap;
/// # Ok(()) }
/// ```
pub struct TestBroker {
    handle: Option<BrokerHandle>,
    ctx: Arc<Context>,
    /// Only for [`TestBroker::start_blocking`]: the runtime the broker runs on, dropped last.
    runtime: Option<tokio::runtime::Runtime>,
}

impl TestBroker {
    /// Starts a broker on the current tokio runtime, with [`BrokerConfig::ephemeral`].
    pub async fn start() -> anyhow::Result<TestBroker> {
        TestBroker::start_with(BrokerConfig::ephemeral()).await
    }

    /// Starts a broker on the current tokio runtime with `config` (e.g. an ephemeral config
    /// with `num_partitions` or `auto_create_topics_enable` changed).
    pub async fn start_with(config: BrokerConfig) -> anyhow::Result<TestBroker> {
        let broker = Broker::bind(config).await?;
        let ctx = broker.context();
        Ok(TestBroker {
            handle: Some(broker.spawn()),
            ctx,
            runtime: None,
        })
    }

    /// Starts a broker on a runtime of its own, for tests that are not async (synchronous
    /// clients). Do not call it from inside a tokio runtime.
    pub fn start_blocking(config: BrokerConfig) -> anyhow::Result<TestBroker> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("building the broker's runtime")?;
        let mut broker = runtime.block_on(TestBroker::start_with(config))?;
        broker.runtime = Some(runtime);
        Ok(broker)
    }

    /// `HOST:PORT` for a client's `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        self.handle
            .as_ref()
            .map(|h| h.bootstrap())
            .unwrap_or_default()
    }

    /// The broker's shared state, for assertions that look inside.
    pub fn context(&self) -> &Arc<Context> {
        &self.ctx
    }

    /// Creates a topic with `partitions` partitions (replication factor 1).
    pub fn create_topic(&self, name: &str, partitions: i32) -> anyhow::Result<()> {
        self.create_topic_with(name, partitions, &[])
    }

    /// Creates a topic with topic configs (`("cleanup.policy", "compact")`, ...), validated
    /// as CreateTopics validates them.
    pub fn create_topic_with(
        &self,
        name: &str,
        partitions: i32,
        configs: &[(&str, &str)],
    ) -> anyhow::Result<()> {
        let mut set = BTreeMap::new();
        for (k, v) in configs {
            let v = topic_config::validate(k, v).map_err(|e| anyhow::anyhow!(e.0))?;
            set.insert(k.to_string(), v);
        }
        topic_config::validate_set(&set).map_err(|e| anyhow::anyhow!(e.0))?;
        self.ctx
            .metadata
            .create_topic(name, partitions, set, false)
            .map(|_| ())
            .map_err(|(code, message)| anyhow::anyhow!("{code:?}: {message}"))
    }

    /// Stops the broker and waits until its connections are closed and its store flushed.
    pub async fn shutdown(mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown().await;
        }
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        let handle = self.handle.take();
        match self.runtime.take() {
            Some(rt) => {
                if let Some(h) = handle {
                    rt.block_on(h.shutdown());
                }
                rt.shutdown_background();
            }
            // On the caller's runtime: ask the broker to stop; it finishes on its own.
            None => drop(handle),
        }
    }
}
