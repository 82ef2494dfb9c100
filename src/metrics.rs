//! Prometheus metrics: counters the request path updates as it goes, and gauges computed
//! when `/metrics` is scraped (topics, partitions, offsets, groups and their lag). It exists
//! so CI and operators can see what the broker does without attaching a client.

use std::fmt::Write as _;
use std::time::Duration;

use dashmap::DashMap;
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::group::GroupCoordinator;
use crate::metadata::Metadata;

type Labels = Vec<(&'static str, String)>;

// The per-request label sets are made of static strings and integers, so recording a
// request hashes and looks up without allocating.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiVersionLabels {
    api: &'static str,
    version: i16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiLabels {
    api: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FetchContextLabels {
    context: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    api: &'static str,
    error: &'static str,
}

/// Kafka's names for API keys and error codes, as static strings (made once).
fn static_name<T: std::fmt::Debug>(
    table: &'static std::sync::OnceLock<DashMap<i16, &'static str>>,
    code: i16,
    value: impl FnOnce() -> Option<T>,
) -> &'static str {
    let names = table.get_or_init(DashMap::new);
    if let Some(n) = names.get(&code) {
        return *n;
    }
    let name = match value() {
        Some(v) => format!("{v:?}"),
        None => code.to_string(),
    };
    *names
        .entry(code)
        .or_insert_with(|| Box::leak(name.into_boxed_str()))
}

/// The name an API key is reported under (`Produce`, `Fetch`, ...).
pub fn api_name(key: kafka_protocol::messages::ApiKey) -> &'static str {
    static NAMES: std::sync::OnceLock<DashMap<i16, &'static str>> = std::sync::OnceLock::new();
    static_name(&NAMES, key as i16, || Some(key))
}

fn error_name(code: i16) -> &'static str {
    static NAMES: std::sync::OnceLock<DashMap<i16, &'static str>> = std::sync::OnceLock::new();
    static_name(&NAMES, code, || {
        kafka_protocol::ResponseError::try_from_code(code)
    })
}

fn new_histogram() -> Histogram {
    // 50 µs .. ~1.6 s
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

/// The broker's live counters.
pub struct Metrics {
    registry: Registry,
    requests: Family<ApiVersionLabels, Counter>,
    latency: Family<ApiLabels, Histogram, fn() -> Histogram>,
    errors: Family<ErrorLabels, Counter>,
    bytes_in: Family<Labels, Counter>,
    bytes_out: Family<Labels, Counter>,
    /// The bytes counters by topic name, so the hot path finds them by `&str`.
    bytes_in_by_topic: DashMap<String, Counter>,
    bytes_out_by_topic: DashMap<String, Counter>,
    connections: Gauge,
    connections_total: Counter,
    /// Requests being handled now, by API (a long-poll Fetch or a SyncGroup waiting for its
    /// leader stays counted while it waits).
    in_flight: Family<ApiLabels, Gauge>,
    /// Completed passes of the log cleaner and of retention over every partition; also what
    /// tests wait on to know a background pass ran after some point.
    pub cleaner_passes: Counter,
    pub retention_passes: Counter,
    /// SASL exchanges that succeeded and that failed (wrong passwords, unknown users, bad
    /// tokens, malformed messages).
    pub authentications: Counter,
    pub authentication_failures: Counter,
    /// KIP-368 re-authentications that succeeded, and connections closed because their
    /// SASL session ended without one.
    pub reauthentications: Counter,
    pub expired_sessions_closed: Counter,
    /// TLS handshakes that failed (plaintext on a TLS port, untrusted client certificates).
    pub tls_handshake_failures: Counter,
    /// Completed passes of group metadata expiration (`offsets.retention.minutes`), and
    /// what they removed.
    pub offsets_expiration_passes: Counter,
    pub offsets_expired: Counter,
    pub groups_expired: Counter,
    /// Passes of transactional id expiration, and the ids they forgot.
    pub transactional_id_expiration_passes: Counter,
    pub transactional_ids_expired: Counter,
    /// Request and response frame bytes by API: what a fetch session saves on the wire.
    request_bytes: Family<ApiLabels, Counter>,
    /// Requests whose client was over a quota and got a throttle time.
    throttled: Family<ApiLabels, Counter>,
    response_bytes: Family<ApiLabels, Counter>,
    /// Fetch requests by the fetch session context Kafka would give them (`full`,
    /// `incremental`, `sessionless`, `session_error`).
    fetch_contexts: Family<FetchContextLabels, Counter>,
    /// Fetch sessions evicted to make room (Kafka's `IncrementalFetchSessionEvictionsPerSec`).
    pub fetch_session_evictions: Counter,
    /// Runs of share-group records written to a dead-letter topic, and those given up
    /// (Kafka's `DeadLetterQueueTotalProduceRequestsPerSec` / `...FailedProduceRequestsPerSec`).
    pub share_dlq_writes: Counter,
    pub share_dlq_failed_writes: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("klamm");
        let requests = Family::<ApiVersionLabels, Counter>::default();
        let latency =
            Family::<ApiLabels, Histogram, fn() -> Histogram>::new_with_constructor(new_histogram);
        let errors = Family::<ErrorLabels, Counter>::default();
        let bytes_in = Family::<Labels, Counter>::default();
        let bytes_out = Family::<Labels, Counter>::default();
        let connections = Gauge::default();
        let connections_total = Counter::default();
        let in_flight = Family::<ApiLabels, Gauge>::default();
        registry.register(
            "requests_in_flight",
            "Requests being handled now, by API (long polls and parked group requests included)",
            in_flight.clone(),
        );
        let cleaner_passes = Counter::default();
        let retention_passes = Counter::default();
        let authentications = Counter::default();
        let authentication_failures = Counter::default();
        let reauthentications = Counter::default();
        let expired_sessions_closed = Counter::default();
        registry.register(
            "sasl_reauthentications",
            "SASL re-authentications (KIP-368) that succeeded",
            reauthentications.clone(),
        );
        registry.register(
            "sasl_expired_sessions_closed",
            "Connections closed because their SASL session ended without a re-authentication",
            expired_sessions_closed.clone(),
        );
        let tls_handshake_failures = Counter::default();
        registry.register(
            "tls_handshake_failures",
            "TLS handshakes that failed",
            tls_handshake_failures.clone(),
        );
        registry.register(
            "sasl_authentications",
            "SASL authentications that succeeded",
            authentications.clone(),
        );
        registry.register(
            "sasl_authentication_failures",
            "SASL authentications that failed",
            authentication_failures.clone(),
        );
        let offsets_expiration_passes = Counter::default();
        let offsets_expired = Counter::default();
        let groups_expired = Counter::default();
        let transactional_id_expiration_passes = Counter::default();
        let transactional_ids_expired = Counter::default();
        let request_bytes = Family::<ApiLabels, Counter>::default();
        let throttled = Family::<ApiLabels, Counter>::default();
        registry.register(
            "throttled_requests",
            "Requests whose client was over a client quota: answered with a throttle time, then its connection muted for it, by API",
            throttled.clone(),
        );
        let response_bytes = Family::<ApiLabels, Counter>::default();
        let fetch_contexts = Family::<FetchContextLabels, Counter>::default();
        let fetch_session_evictions = Counter::default();
        let share_dlq_writes = Counter::default();
        let share_dlq_failed_writes = Counter::default();
        registry.register(
            "share_dlq_writes",
            "Runs of share-group records written to their group's dead-letter topic (KIP-1191)",
            share_dlq_writes.clone(),
        );
        registry.register(
            "share_dlq_failed_writes",
            "Runs of share-group records archived without their dead-letter write (the topic was not usable or the write failed)",
            share_dlq_failed_writes.clone(),
        );
        registry.register(
            "request_bytes",
            "Request frame bytes received (size prefix excluded), by API",
            request_bytes.clone(),
        );
        registry.register(
            "response_bytes",
            "Response frame bytes sent (size prefix excluded), by API",
            response_bytes.clone(),
        );
        registry.register(
            "fetch_requests",
            "Fetch requests by fetch session context: full (opens a session), incremental, sessionless, session_error",
            fetch_contexts.clone(),
        );
        registry.register(
            "fetch_session_evictions",
            "Fetch sessions evicted to make room for new ones (Kafka's IncrementalFetchSessionEvictionsPerSec)",
            fetch_session_evictions.clone(),
        );
        registry.register(
            "transactional_id_expiration_passes",
            "Completed passes of transactional id expiration (transactional.id.expiration.ms)",
            transactional_id_expiration_passes.clone(),
        );
        registry.register(
            "transactional_ids_expired",
            "Transactional ids forgotten after transactional.id.expiration.ms without use",
            transactional_ids_expired.clone(),
        );
        registry.register(
            "offsets_expiration_passes",
            "Completed passes of group metadata expiration (offsets.retention.minutes)",
            offsets_expiration_passes.clone(),
        );
        registry.register(
            "offsets_expired",
            "Committed offsets deleted because their retention ran out",
            offsets_expired.clone(),
        );
        registry.register(
            "groups_expired",
            "Groups deleted for having no members and no offsets left",
            groups_expired.clone(),
        );
        registry.register(
            "log_cleaner_passes",
            "Completed passes of the log cleaner over every compacted partition",
            cleaner_passes.clone(),
        );
        registry.register(
            "retention_passes",
            "Completed passes of retention over every partition",
            retention_passes.clone(),
        );
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
            bytes_in_by_topic: DashMap::new(),
            bytes_out_by_topic: DashMap::new(),
            connections,
            connections_total,
            in_flight,
            cleaner_passes,
            retention_passes,
            authentications,
            authentication_failures,
            reauthentications,
            expired_sessions_closed,
            tls_handshake_failures,
            offsets_expiration_passes,
            offsets_expired,
            groups_expired,
            transactional_id_expiration_passes,
            transactional_ids_expired,
            request_bytes,
            throttled,
            response_bytes,
            fetch_contexts,
            fetch_session_evictions,
            share_dlq_writes,
            share_dlq_failed_writes,
        }
    }

    /// The frame sizes of one request of `api` and of its response (0 when none is sent).
    pub fn frame_bytes(&self, api: &'static str, request: usize, response: usize) {
        self.request_bytes
            .get_or_create(&ApiLabels { api })
            .inc_by(request as u64);
        if response > 0 {
            self.response_bytes
                .get_or_create(&ApiLabels { api })
                .inc_by(response as u64);
        }
    }

    /// A request of `api` was throttled by a client quota.
    pub fn throttled(&self, api: &'static str) {
        self.throttled.get_or_create(&ApiLabels { api }).inc();
    }

    /// A Fetch request got a fetch session context of this kind.
    pub fn fetch_context(&self, context: &'static str) {
        self.fetch_contexts
            .get_or_create(&FetchContextLabels { context })
            .inc();
    }

    pub fn request(&self, api: &'static str, version: i16, took: Duration) {
        self.requests
            .get_or_create(&ApiVersionLabels { api, version })
            .inc();
        self.latency
            .get_or_create(&ApiLabels { api })
            .observe(took.as_secs_f64());
    }

    /// A request of `api` starts (+1) or ends (-1) being handled.
    pub fn in_flight_add(&self, api: &'static str, delta: i64) {
        self.in_flight
            .get_or_create(&ApiLabels { api })
            .inc_by(delta);
    }

    /// How many requests of `api` are being handled now.
    pub fn in_flight(&self, api: &'static str) -> i64 {
        self.in_flight.get_or_create(&ApiLabels { api }).get()
    }

    pub fn partition_error(&self, api: &'static str, code: i16) {
        self.errors
            .get_or_create(&ErrorLabels {
                api,
                error: error_name(code),
            })
            .inc();
    }

    pub fn bytes_in(&self, topic: &str, n: usize) {
        topic_counter(&self.bytes_in, &self.bytes_in_by_topic, topic).inc_by(n as u64);
    }

    pub fn bytes_out(&self, topic: &str, n: usize) {
        topic_counter(&self.bytes_out, &self.bytes_out_by_topic, topic).inc_by(n as u64);
    }

    pub fn connection_opened(&self) {
        self.connections.inc();
        self.connections_total.inc();
    }

    pub fn connection_closed(&self) {
        self.connections.dec();
    }
}

/// The family's counter for `topic`, found through `cache` without allocating once known
/// (a family's counters are shared handles, so the cached clone counts into the family).
fn topic_counter(
    family: &Family<Labels, Counter>,
    cache: &DashMap<String, Counter>,
    topic: &str,
) -> Counter {
    if let Some(c) = cache.get(topic) {
        return c.clone();
    }
    let c = family
        .get_or_create(&vec![("topic", topic.to_string())])
        .clone();
    cache.insert(topic.to_string(), c.clone());
    c
}

/// The Prometheus text exposition of everything: live counters, then gauges computed now
/// from the topics and the groups.
pub fn render(
    metrics: &Metrics,
    metadata: &Metadata,
    groups_coordinator: &GroupCoordinator,
    fetch_sessions: &crate::fetch_session::FetchSessionCache,
) -> String {
    let mut snapshot = Registry::with_prefix("klamm");
    let sessions = Gauge::<i64>::default();
    let sessions_partitions = Gauge::<i64>::default();
    snapshot.register(
        "fetch_sessions",
        "Fetch sessions held (Kafka's NumIncrementalFetchSessions)",
        sessions.clone(),
    );
    snapshot.register(
        "fetch_session_partitions_cached",
        "Partitions held by all fetch sessions (Kafka's NumIncrementalFetchPartitionsCached)",
        sessions_partitions.clone(),
    );
    sessions.set(fetch_sessions.len() as i64);
    sessions_partitions.set(fetch_sessions.partitions_cached() as i64);
    let topics = Gauge::<i64>::default();
    let partitions = Gauge::<i64>::default();
    let log_end = Family::<Labels, Gauge>::default();
    let log_start = Family::<Labels, Gauge>::default();
    let log_size = Family::<Labels, Gauge>::default();
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
        "log_size_bytes",
        "Bytes of record batches stored, by partition",
        log_size.clone(),
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
    let all = metadata.topics();
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
            if let Ok(size) = p.size_bytes() {
                log_size.get_or_create(&labels).set(size as i64);
            }
        }
    }
    let committed = groups_coordinator.committed_offsets();
    groups.set(groups_coordinator.group_count() as i64);
    for (group, topic, partition, offset) in committed {
        let Some(p) = metadata
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
    let _ = encode_registry(&mut out, &metrics.registry);
    let _ = encode_registry(&mut out, &snapshot);
    let _ = encode_eof(&mut out);
    if out.is_empty() {
        let _ = writeln!(out, "# EOF");
    }
    out
}
