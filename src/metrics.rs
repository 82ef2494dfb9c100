//! Prometheus metrics: counters the request path updates as it goes, and gauges computed
//! when `/metrics` is scraped (topics, partitions, offsets, groups and their lag). It exists
//! so CI and operators can see what the broker does without attaching a client.

use std::fmt::Write as _;
use std::time::Duration;

use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::broker::Context;

type Labels = Vec<(&'static str, String)>;

fn new_histogram() -> Histogram {
    // 50 µs .. ~1.6 s
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

/// The broker's live counters.
pub struct Metrics {
    registry: Registry,
    requests: Family<Labels, Counter>,
    latency: Family<Labels, Histogram, fn() -> Histogram>,
    errors: Family<Labels, Counter>,
    bytes_in: Family<Labels, Counter>,
    bytes_out: Family<Labels, Counter>,
    connections: Gauge,
    connections_total: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("klamm");
        let requests = Family::<Labels, Counter>::default();
        let latency =
            Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(new_histogram);
        let errors = Family::<Labels, Counter>::default();
        let bytes_in = Family::<Labels, Counter>::default();
        let bytes_out = Family::<Labels, Counter>::default();
        let connections = Gauge::default();
        let connections_total = Counter::default();
        registry.register(
            "requests",
            "Requests handled, by API and version",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from a decoded request to its encoded response, by API",
            latency.clone(),
        );
        registry.register(
            "partition_errors",
            "Produce and Fetch partition results with an error, by API and Kafka error name",
            errors.clone(),
        );
        registry.register(
            "bytes_in",
            "Record batch bytes produced, by topic",
            bytes_in.clone(),
        );
        registry.register(
            "bytes_out",
            "Record batch bytes fetched, by topic",
            bytes_out.clone(),
        );
        registry.register(
            "connections",
            "Open client connections",
            connections.clone(),
        );
        registry.register(
            "connections_accepted",
            "Client connections accepted",
            connections_total.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            errors,
            bytes_in,
            bytes_out,
            connections,
            connections_total,
        }
    }

    pub fn request(&self, api: &str, version: i16, took: Duration) {
        self.requests
            .get_or_create(&vec![
                ("api", api.to_string()),
                ("version", version.to_string()),
            ])
            .inc();
        self.latency
            .get_or_create(&vec![("api", api.to_string())])
            .observe(took.as_secs_f64());
    }

    pub fn partition_error(&self, api: &str, code: i16) {
        let name = kafka_protocol::ResponseError::try_from_code(code)
            .map(|e| format!("{e:?}"))
            .unwrap_or_else(|| code.to_string());
        self.errors
            .get_or_create(&vec![("api", api.to_string()), ("error", name)])
            .inc();
    }

    pub fn bytes_in(&self, topic: &str, n: usize) {
        self.bytes_in
            .get_or_create(&vec![("topic", topic.to_string())])
            .inc_by(n as u64);
    }

    pub fn bytes_out(&self, topic: &str, n: usize) {
        self.bytes_out
            .get_or_create(&vec![("topic", topic.to_string())])
            .inc_by(n as u64);
    }

    pub fn connection_opened(&self) {
        self.connections.inc();
        self.connections_total.inc();
    }

    pub fn connection_closed(&self) {
        self.connections.dec();
    }
}

/// The Prometheus text exposition of everything: live counters, then gauges computed now.
pub fn render(ctx: &Context) -> String {
    let mut snapshot = Registry::with_prefix("klamm");
    let topics = Gauge::<i64>::default();
    let partitions = Gauge::<i64>::default();
    let log_end = Family::<Labels, Gauge>::default();
    let log_start = Family::<Labels, Gauge>::default();
    let groups = Gauge::<i64>::default();
    let lag = Family::<Labels, Gauge>::default();
    snapshot.register("topics", "Topics", topics.clone());
    snapshot.register("partitions", "Partitions of all topics", partitions.clone());
    snapshot.register(
        "log_end_offset",
        "Next offset to be written, by partition",
        log_end.clone(),
    );
    snapshot.register(
        "log_start_offset",
        "First offset kept, by partition",
        log_start.clone(),
    );
    snapshot.register(
        "consumer_groups",
        "Consumer groups (with members or committed offsets)",
        groups.clone(),
    );
    snapshot.register(
        "consumer_group_lag",
        "Log end offset minus the group's committed offset, by group and partition",
        lag.clone(),
    );
    let all = ctx.metadata.topics();
    topics.set(all.len() as i64);
    for t in &all {
        partitions.inc_by(t.partitions.len() as i64);
        for p in &t.partitions {
            let labels = vec![
                ("topic", t.name.to_string()),
                ("partition", p.index.to_string()),
            ];
            log_end.get_or_create(&labels).set(p.high_watermark());
            log_start.get_or_create(&labels).set(p.log_start_offset());
        }
    }
    let committed = ctx.groups.committed_offsets();
    groups.set(ctx.groups.group_count() as i64);
    for (group, topic, partition, offset) in committed {
        let Some(p) = ctx
            .metadata
            .topic(&topic)
            .and_then(|t| t.partition(partition).cloned())
        else {
            continue;
        };
        lag.get_or_create(&vec![
            ("group", group),
            ("topic", topic),
            ("partition", partition.to_string()),
        ])
        .set((p.high_watermark() - offset).max(0));
    }
    let mut out = String::new();
    let _ = encode_registry(&mut out, &ctx.metrics.registry);
    let _ = encode_registry(&mut out, &snapshot);
    let _ = encode_eof(&mut out);
    if out.is_empty() {
        let _ = writeln!(out, "# EOF");
    }
    out
}
