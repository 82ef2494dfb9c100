//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics (from the table in
//! `topic_config`), the broker's dynamic settings, and groups (`crate::group::config`).

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_response, AlterConfigsRequest,
    AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, ListConfigResourcesRequest,
    ListConfigResourcesResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::sb;
use super::RequestContext;
use crate::config::BrokerConfig;
use crate::context::Context;
use crate::metadata::BrokerConfigs;
use crate::topic_config::{self, ConfigSource, ConfigType};

/// Kafka's ConfigResource.Type ids.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const RESOURCE_BROKER_LOGGER: i8 = 8;
const RESOURCE_GROUP: i8 = 32;

/// IncrementalAlterConfigs operations (Kafka's AlterConfigOp.OpType ids).
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

type Failure = (ResponseError, String);

/// Broker synonyms whose Kafka default is null (Kafka derives the value from another
/// config, e.g. log.retention.hours): Kafka lists no DEFAULT_CONFIG synonym for them.
const NULL_BROKER_DEFAULTS: &[&str] = &[
    "log.retention.ms",
    "log.roll.ms",
    "log.roll.jitter.ms",
    "log.flush.interval.ms",
    "leader.replication.throttled.replicas",
    "follower.replication.throttled.replicas",
];

/// Where Kafka derives a broker config's default from another config (its Kafka default is
/// null), the synonym that carries the DEFAULT_CONFIG value, as Kafka lists it.
const DERIVED_BROKER_DEFAULTS: &[(&str, &str, &str)] = &[
    ("log.retention.ms", "log.retention.hours", "168"),
    ("log.roll.ms", "log.roll.hours", "168"),
    ("log.roll.jitter.ms", "log.roll.jitter.hours", "0"),
    (
        "log.flush.interval.ms",
        "log.flush.scheduler.interval.ms",
        "9223372036854775807",
    ),
];

/// One config as DescribeConfigs reports it.
struct Entry {
    name: String,
    value: String,
    read_only: bool,
    source: ConfigSource,
    ty: ConfigType,
    doc: &'static str,
    synonyms: Vec<(String, String, ConfigSource)>,
}

/// The broker's settings: its flags (read-only), then the topic-config synonyms and
/// Kafka's other dynamic configs, which AlterConfigs may set.
fn broker_entries(c: &BrokerConfig, dynamic: &BrokerConfigs, per_broker: bool) -> Vec<Entry> {
    let mut out = static_broker_entries(c);
    let dynamic_source = |name: &str| {
        if per_broker {
            if let Some(v) = dynamic.this_broker.get(name) {
                return Some((v.clone(), ConfigSource::DynamicBrokerConfig));
            }
        }
        dynamic
            .cluster_default
            .get(name)
            .map(|v| (v.clone(), ConfigSource::DynamicDefaultBrokerConfig))
    };
    for def in topic_config::TOPIC_CONFIGS {
        let Some(name) = def.broker_synonym else {
            continue;
        };
        if out.iter().any(|e| e.name == name) {
            continue;
        }
        let (value, source) = dynamic_source(name)
            .unwrap_or_else(|| topic_config::default_value(def, c, &BrokerConfigs::default()));
        // Every level that has a value, in precedence order, as Kafka lists synonyms.
        let mut synonyms = Vec::new();
        if per_broker {
            if let Some(v) = dynamic.this_broker.get(name) {
                synonyms.push((
                    name.to_string(),
                    v.clone(),
                    ConfigSource::DynamicBrokerConfig,
                ));
            }
        }
        if let Some(v) = dynamic.cluster_default.get(name) {
            synonyms.push((
                name.to_string(),
                v.clone(),
                ConfigSource::DynamicDefaultBrokerConfig,
            ));
        }
        let (default, default_source) =
            topic_config::default_value(def, c, &BrokerConfigs::default());
        match DERIVED_BROKER_DEFAULTS.iter().find(|(n, _, _)| *n == name) {
            Some((_, from, v)) if default_source == ConfigSource::DefaultConfig => {
                synonyms.push((from.to_string(), v.to_string(), ConfigSource::DefaultConfig))
            }
            _ => synonyms.push((name.to_string(), default, default_source)),
        }
        out.push(Entry {
            name: name.to_string(),
            value,
            read_only: false,
            source,
            ty: def.ty,
            doc: def.doc,
            synonyms,
        });
    }
    for name in topic_config::OTHER_DYNAMIC_BROKER_CONFIGS {
        if out.iter().any(|e| e.name == *name) {
            continue;
        }
        if let Some((value, source)) = dynamic_source(name) {
            out.push(Entry {
                name: name.to_string(),
                value: value.clone(),
                read_only: false,
                source,
                ty: ConfigType::String,
                doc: "Stored and reported; it does not change Klamm's behaviour.",
                synonyms: vec![(name.to_string(), value, source)],
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The broker's command-line settings, under their Kafka names.
fn static_broker_entries(c: &BrokerConfig) -> Vec<Entry> {
    let advertised = match &c.advertise {
        Some(a) => format!("PLAINTEXT://{a}"),
        None => format!("PLAINTEXT://{}", c.listen),
    };
    // Each row: name, value, Kafka 4.4's default (None where Kafka has none), type, doc. A
    // value other than Kafka's default is a static setting, as Klamm's own defaults are
    // where they differ from Kafka's (group.initial.rebalance.delay.ms 0, ...).
    let rows: Vec<(&str, String, Option<&str>, ConfigType, &'static str)> = vec![
        ("advertised.listeners", advertised, None, ConfigType::String, "Addresses clients are told to connect to (--advertise)."),
        ("auto.create.topics.enable", c.auto_create_topics_enable.to_string(), Some("true"), ConfigType::Boolean, "Create topics on first Metadata or Produce (--auto-create-topics-enable)."),
        ("broker.id", c.node_id.to_string(), Some("-1"), ConfigType::Int, "This broker's id (--node-id)."),
        ("socket.listen.backlog.size", c.socket_listen_backlog_size.to_string(), Some("50"), ConfigType::Int, "Completed connections the kernel queues before the broker accepts them (--socket-listen-backlog-size)."),
        ("connections.max.reauth.ms", c.connections_max_reauth_ms.to_string(), Some("0"), ConfigType::Long, "Longest life of a SASL session before the client must re-authenticate, KIP-368 (--connections-max-reauth-ms)."),
        ("connections.max.idle.ms", c.connections_max_idle_ms.to_string(), Some("600000"), ConfigType::Long, "Idle connections are closed after this long (--connections-max-idle-ms)."),
        ("fetch.max.bytes", c.fetch_max_bytes.to_string(), Some("57671680"), ConfigType::Int, "Most record bytes in one Fetch response, whatever the client asks (--fetch-max-bytes)."),
        ("transactional.id.expiration.ms", c.transactional_id_expiration_ms.to_string(), Some("604800000"), ConfigType::Int, "A transactional id unused this long, with no transaction open, is forgotten (--transactional-id-expiration-ms)."),
        ("offsets.retention.minutes", c.offsets_retention_minutes.to_string(), Some("10080"), ConfigType::Int, "Committed offsets of an empty group expire this long after it became empty (--offsets-retention-minutes)."),
        ("offsets.retention.check.interval.ms", c.offsets_retention_check_interval_ms.to_string(), Some("600000"), ConfigType::Long, "How often expired offsets and empty groups are looked for (--offsets-retention-check-interval-ms)."),
        ("errors.deadletterqueue.auto.create.topics.enable", c.errors_deadletterqueue_auto_create_topics_enable.to_string(), Some("false"), ConfigType::Boolean, "Create a share group's missing dead-letter topic on its first record (--errors-deadletterqueue-auto-create-topics-enable)."),
        ("errors.deadletterqueue.topic.name.prefix", c.errors_deadletterqueue_topic_name_prefix.clone(), Some("dlq."), ConfigType::String, "The prefix a share group's dead-letter topic must have (--errors-deadletterqueue-topic-name-prefix)."),
        ("group.share.min.record.lock.duration.ms", c.group_share_min_record_lock_duration_ms.to_string(), Some("15000"), ConfigType::Int, "The smallest share.record.lock.duration.ms a share group may set (--group-share-min-record-lock-duration-ms)."),
        ("group.initial.rebalance.delay.ms", c.group_initial_rebalance_delay_ms.to_string(), Some("3000"), ConfigType::Int, "Wait for more members before an empty group's first rebalance (Klamm default 0; Kafka's 3000)."),
        ("group.max.session.timeout.ms", c.group_max_session_timeout_ms.to_string(), Some("1800000"), ConfigType::Int, "Largest session timeout a member may ask for."),
        ("group.min.session.timeout.ms", c.group_min_session_timeout_ms.to_string(), Some("6000"), ConfigType::Int, "Smallest session timeout a member may ask for."),
        ("listeners", format!("PLAINTEXT://{}", c.listen), Some("PLAINTEXT://:9092"), ConfigType::String, "Address the broker listens on (--listen)."),
        ("log.dirs", c.data_dir.display().to_string(), None, ConfigType::String, "The RocksDB data directory (--data-dir)."),
        ("max.connections", c.max_connections.to_string(), Some("2147483647"), ConfigType::Int, "Most client connections at once (--max-connections)."),
        ("message.max.bytes", c.message_max_bytes.to_string(), Some("1048588"), ConfigType::Int, "Largest record batch, unless the topic's max.message.bytes says otherwise."),
        ("node.id", c.node_id.to_string(), Some("-1"), ConfigType::Int, "This broker's id (--node-id)."),
        ("num.partitions", c.num_partitions.to_string(), Some("1"), ConfigType::Int, "Partitions of an auto-created topic (--num-partitions)."),
        ("queued.max.request.bytes", c.queued_max_request_bytes.to_string(), Some("-1"), ConfigType::Long, "Request bytes all connections may hold at once (Klamm default 512 MiB; Kafka's -1)."),
        ("socket.request.max.bytes", c.socket_request_max_bytes.to_string(), Some("104857600"), ConfigType::Int, "Largest request frame (--socket-request-max-bytes)."),
    ];
    rows.into_iter()
        .map(|(name, value, kafka_default, ty, doc)| {
            let source = if kafka_default == Some(value.as_str()) {
                ConfigSource::DefaultConfig
            } else {
                ConfigSource::StaticBrokerConfig
            };
            // As Kafka: the static setting, then the default it overrides.
            let mut synonyms = vec![(name.to_string(), value.clone(), source)];
            if let Some(d) = kafka_default.filter(|_| source == ConfigSource::StaticBrokerConfig) {
                synonyms.push((name.to_string(), d.to_string(), ConfigSource::DefaultConfig));
            }
            Entry {
                name: name.to_string(),
                value,
                read_only: true,
                source,
                ty,
                doc,
                synonyms,
            }
        })
        .collect()
}

fn topic_entries(ctx: &Context, set: &BTreeMap<String, String>) -> Vec<Entry> {
    let dynamic = ctx.metadata.broker_configs();
    topic_config::effective(set, &ctx.config, &dynamic)
        .into_iter()
        .map(|e| {
            let mut synonyms = Vec::new();
            if let Some(v) = set.get(e.def.name) {
                synonyms.push((e.def.name.to_string(), v.clone(), ConfigSource::TopicConfig));
            }
            if let Some(broker_name) = e.def.broker_synonym {
                // Every level below the topic that has a value, in precedence order.
                let levels = [
                    dynamic
                        .this_broker
                        .get(broker_name)
                        .map(|v| (v.clone(), ConfigSource::DynamicBrokerConfig)),
                    dynamic
                        .cluster_default
                        .get(broker_name)
                        .map(|v| (v.clone(), ConfigSource::DynamicDefaultBrokerConfig)),
                    Some(topic_config::default_value(
                        e.def,
                        &ctx.config,
                        &BrokerConfigs::default(),
                    ))
                    .filter(|(_, s)| *s == ConfigSource::StaticBrokerConfig),
                    Some((e.def.default.to_string(), ConfigSource::DefaultConfig))
                        .filter(|_| !NULL_BROKER_DEFAULTS.contains(&broker_name)),
                ];
                for (v, s) in levels.into_iter().flatten() {
                    synonyms.push((broker_name.to_string(), v, s));
                }
            }
            Entry {
                name: e.def.name.to_string(),
                value: e.value,
                read_only: false,
                source: e.source,
                ty: e.def.ty,
                doc: e.def.doc,
                synonyms,
            }
        })
        .collect()
}

/// A group's configs, set or not, as Kafka 4.4 lists them.
fn group_entries(ctx: &Context, group: &str) -> Vec<Entry> {
    use crate::group::config::Source;
    let source = |s: Source| match s {
        Source::Group => ConfigSource::GroupConfig,
        Source::Default => ConfigSource::DefaultConfig,
    };
    ctx.group_configs
        .describe(group)
        .into_iter()
        .map(|d| Entry {
            name: d.name.to_string(),
            value: d.value,
            read_only: false,
            source: source(d.source),
            ty: d.ty,
            doc: d.doc,
            synonyms: d
                .synonyms
                .into_iter()
                .map(|(n, v, s)| (n, v, source(s)))
                .collect(),
        })
        .collect()
}

/// Checks a broker resource name: this broker's id, or "" for the cluster default.
fn check_broker_name(ctx: &Context, name: &str) -> Result<(), Failure> {
    if name.is_empty() || name == ctx.config.node_id.to_string() {
        return Ok(());
    }
    Err((
        ResponseError::InvalidRequest,
        format!(
            "Unexpected broker id, expected {} or empty string, but received {name}",
            ctx.config.node_id
        ),
    ))
}

pub async fn describe_configs(
    ctx: &Context,
    _rc: &RequestContext,
    version: i16,
    req: DescribeConfigsRequest,
) -> Option<DescribeConfigsResponse> {
    let results = req
        .resources
        .into_iter()
        .map(|r| {
            let mut result = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let name = r.resource_name.to_string();
            let entries = match r.resource_type {
                RESOURCE_TOPIC => match ctx.metadata.topic(&name) {
                    Some(t) => Ok(topic_entries(ctx, &t.configs)),
                    None => Err((
                        ResponseError::UnknownTopicOrPartition,
                        format!("The topic '{name}' does not exist."),
                    )),
                },
                RESOURCE_BROKER => check_broker_name(ctx, &name).map(|_| {
                    broker_entries(
                        &ctx.config,
                        &ctx.metadata.broker_configs(),
                        !name.is_empty(),
                    )
                }),
                RESOURCE_BROKER_LOGGER => check_broker_name(ctx, &name).map(|_| Vec::new()),
                RESOURCE_GROUP if name.is_empty() => Err((
                    ResponseError::InvalidRequest,
                    "Group name must not be empty".to_string(),
                )),
                RESOURCE_GROUP => Ok(group_entries(ctx, &name)),
                other => Err((
                    ResponseError::InvalidRequest,
                    format!("Unsupported resource type {other}"),
                )),
            };
            match entries {
                Ok(entries) => {
                    let keys: Option<HashSet<String>> = r
                        .configuration_keys
                        .map(|ks| ks.iter().map(|k| k.to_string()).collect());
                    result.configs = entries
                        .into_iter()
                        .filter(|e| keys.as_ref().is_none_or(|ks| ks.contains(&e.name)))
                        .map(|e| {
                            let mut c = DescribeConfigsResourceResult::default()
                                .with_name(sb(e.name))
                                .with_value(Some(sb(e.value)))
                                .with_read_only(e.read_only)
                                .with_config_source(e.source as i8)
                                .with_is_sensitive(false);
                            if req.include_synonyms {
                                c.synonyms = e
                                    .synonyms
                                    .into_iter()
                                    .map(|(n, v, s)| {
                                        DescribeConfigsSynonym::default()
                                            .with_name(sb(n))
                                            .with_value(Some(sb(v)))
                                            .with_source(s as i8)
                                    })
                                    .collect();
                            }
                            c.documentation = None;
                            if version >= 3 {
                                c.config_type = e.ty as i8;
                                if req.include_documentation {
                                    c.documentation = Some(sb(e.doc));
                                }
                            }
                            c
                        })
                        .collect();
                }
                Err((code, message)) => {
                    result.error_code = code.code();
                    result.error_message = Some(sb(message));
                }
            }
            result
        })
        .collect();
    Some(DescribeConfigsResponse::default().with_results(results))
}

/// Which table a change is checked against.
#[derive(Clone, Copy)]
enum Kind {
    Topic,
    Broker,
}

/// One requested change to a topic config.
enum Change {
    Set(String),
    Delete,
    Append(String),
    Subtract(String),
}

/// Applies `changes` to a topic's configs, validating every name and value; nothing is
/// changed unless all are valid.
fn apply(
    current: &BTreeMap<String, String>,
    changes: Vec<(String, Change)>,
    replace_all: bool,
    kind: Kind,
) -> Result<BTreeMap<String, String>, Failure> {
    let mut seen = HashSet::new();
    for (name, _) in &changes {
        if !seen.insert(name.clone()) {
            return Err((
                ResponseError::InvalidRequest,
                format!("Error due to duplicate config keys: {name}"),
            ));
        }
    }
    let invalid = |e: topic_config::InvalidConfig| (ResponseError::InvalidConfig, e.0);
    let mut out = if replace_all {
        BTreeMap::new()
    } else {
        current.clone()
    };
    for (name, change) in changes {
        let (ty, default) = match kind {
            Kind::Topic => match topic_config::find(&name) {
                Some(def) => (def.ty, def.default),
                None => {
                    return Err((
                        ResponseError::InvalidConfig,
                        format!("Unknown topic config name: {name}"),
                    ))
                }
            },
            Kind::Broker => {
                match topic_config::TOPIC_CONFIGS
                    .iter()
                    .find(|d| d.broker_synonym == Some(name.as_str()))
                {
                    Some(def) => (def.ty, def.default),
                    None if topic_config::OTHER_DYNAMIC_BROKER_CONFIGS.contains(&name.as_str()) => {
                        (ConfigType::String, "")
                    }
                    None => {
                        return Err((
                            ResponseError::InvalidRequest,
                            format!("Cannot update these configs dynamically: {name}"),
                        ))
                    }
                }
            }
        };
        let validate = |v: &str| match kind {
            Kind::Topic => topic_config::validate(&name, v),
            Kind::Broker => topic_config::validate_broker(&name, v),
        };
        let list_op = |verb: &str| -> Result<Vec<String>, Failure> {
            if ty != ConfigType::List {
                return Err((
                    ResponseError::InvalidConfig,
                    format!("Config value {verb} is not allowed for config key: {name}"),
                ));
            }
            let base = current.get(&name).map(String::as_str).unwrap_or(default);
            Ok(topic_config::split_list(base))
        };
        match change {
            Change::Set(v) => {
                let v = validate(&v).map_err(invalid)?;
                out.insert(name, v);
            }
            Change::Delete => {
                out.remove(&name);
            }
            Change::Append(v) => {
                let mut items = list_op("append")?;
                for item in topic_config::split_list(&v) {
                    if !items.contains(&item) {
                        items.push(item);
                    }
                }
                let v = validate(&items.join(",")).map_err(invalid)?;
                out.insert(name, v);
            }
            Change::Subtract(v) => {
                let remove = topic_config::split_list(&v);
                let items: Vec<String> = list_op("subtract")?
                    .into_iter()
                    .filter(|i| !remove.contains(i))
                    .collect();
                let v = validate(&items.join(",")).map_err(invalid)?;
                out.insert(name, v);
            }
        }
    }
    if let Kind::Topic = kind {
        topic_config::validate_set(&out).map_err(invalid)?;
    }
    Ok(out)
}

/// Validates and (unless `validate_only`) applies changes to one resource.
async fn alter_resource(
    ctx: &Context,
    resource_type: i8,
    name: &str,
    changes: Result<Vec<(String, Change)>, Failure>,
    replace_all: bool,
    validate_only: bool,
) -> Result<(), Failure> {
    match resource_type {
        RESOURCE_TOPIC => {
            let Some(topic) = ctx.metadata.topic(name) else {
                return Err((
                    ResponseError::UnknownTopicOrPartition,
                    format!("The topic '{name}' does not exist."),
                ));
            };
            let configs = apply(&topic.configs, changes?, replace_all, Kind::Topic)?;
            if validate_only {
                return Ok(());
            }
            ctx.metadata
                .configure(name, configs, std::time::Duration::from_secs(30))
                .await
                .map_err(|e| (e, format!("could not alter the configs of topic '{name}'")))
        }
        RESOURCE_BROKER => {
            check_broker_name(ctx, name)?;
            let mut all = ctx.metadata.broker_configs();
            let scope = if name.is_empty() {
                &mut all.cluster_default
            } else {
                &mut all.this_broker
            };
            *scope = apply(scope, changes?, replace_all, Kind::Broker)?;
            if validate_only {
                return Ok(());
            }
            ctx.metadata
                .set_broker_configs(all)
                .map_err(|e| (e, "could not alter the broker configs".to_string()))
        }
        RESOURCE_GROUP => {
            use crate::group::config::Op;
            let ops = changes?
                .into_iter()
                .map(|(k, c)| {
                    let op = match c {
                        Change::Set(v) => Op::Set(v),
                        Change::Delete => Op::Delete,
                        Change::Append(v) => Op::Append(v),
                        Change::Subtract(v) => Op::Subtract(v),
                    };
                    (k, op)
                })
                .collect();
            ctx.group_configs
                .alter(name, ops, replace_all, validate_only)
                .await
        }
        RESOURCE_BROKER_LOGGER => {
            check_broker_name(ctx, name)?;
            let changes = changes?;
            if changes.is_empty() {
                return Ok(());
            }
            Err((
                ResponseError::InvalidRequest,
                "Klamm's log levels are set with --log-level".to_string(),
            ))
        }
        other => Err((
            ResponseError::InvalidRequest,
            format!("Unsupported resource type {other}"),
        )),
    }
}

/// One resource of an alter request: its type, name, and the parsed changes.
type AlterItem = (i8, StrBytes, Result<Vec<(String, Change)>, Failure>);

/// Runs every resource of an AlterConfigs or IncrementalAlterConfigs request: resources
/// named twice are refused (as Kafka does), the rest applied one by one. Returns each
/// resource with its error, if any.
async fn alter_all(
    ctx: &Context,
    rc: &RequestContext,
    api: &str,
    items: Vec<AlterItem>,
    replace_all: bool,
    validate_only: bool,
) -> Vec<(i8, StrBytes, Option<Failure>)> {
    let mut seen = HashSet::new();
    let dups: HashSet<(i8, String)> = items
        .iter()
        .map(|(t, n, _)| (*t, n.to_string()))
        .filter(|r| !seen.insert(r.clone()))
        .collect();
    let mut out = Vec::with_capacity(items.len());
    for (kind, name, changes) in items {
        out.push({
            let n = name.to_string();
            let outcome = if dups.contains(&(kind, n.clone())) {
                Err((
                    ResponseError::InvalidRequest,
                    format!("Error due to duplicate config resource: {n}"),
                ))
            } else {
                alter_resource(ctx, kind, &n, changes, replace_all, validate_only).await
            };
            if let Err((code, message)) = &outcome {
                tracing::warn!(
                    peer = %rc.peer,
                    client_id = rc.client_id(),
                    resource = %n,
                    error = ?code,
                    %message,
                    "{api} refused"
                );
            }
            (kind, name, outcome.err())
        });
    }
    out
}

pub async fn alter_configs(
    ctx: &Context,
    rc: &RequestContext,
    _version: i16,
    req: AlterConfigsRequest,
) -> Option<AlterConfigsResponse> {
    let items = req
        .resources
        .into_iter()
        .map(|r| {
            let changes = r
                .configs
                .into_iter()
                .map(|c| match c.value {
                    Some(v) => Ok((c.name.to_string(), Change::Set(v.to_string()))),
                    None => Err((
                        ResponseError::InvalidRequest,
                        format!("Null value not supported for : {}", c.name),
                    )),
                })
                .collect();
            (r.resource_type, r.resource_name, changes)
        })
        .collect();
    let responses = alter_all(ctx, rc, "AlterConfigs", items, true, req.validate_only)
        .await
        .into_iter()
        .map(|(kind, name, err)| {
            let mut resp = alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(kind)
                .with_resource_name(name);
            if let Some((code, message)) = err {
                resp.error_code = code.code();
                resp.error_message = Some(sb(message));
            }
            resp
        })
        .collect();
    Some(AlterConfigsResponse::default().with_responses(responses))
}

pub async fn incremental_alter_configs(
    ctx: &Context,
    rc: &RequestContext,
    _version: i16,
    req: IncrementalAlterConfigsRequest,
) -> Option<IncrementalAlterConfigsResponse> {
    let items = req
        .resources
        .into_iter()
        .map(|r| {
            let changes = r
                .configs
                .into_iter()
                .map(|c| {
                    let key = c.name.to_string();
                    let value = c.value.map(|v| v.to_string());
                    let need = |v: Option<String>| {
                        v.ok_or_else(|| {
                            (
                                ResponseError::InvalidRequest,
                                format!("Null value not supported for : {key}"),
                            )
                        })
                    };
                    let change = match c.config_operation {
                        OP_SET => Change::Set(need(value)?),
                        OP_DELETE => Change::Delete,
                        OP_APPEND => Change::Append(need(value)?),
                        OP_SUBTRACT => Change::Subtract(need(value)?),
                        op => {
                            return Err((
                                ResponseError::InvalidRequest,
                                format!("Unknown alter config operation {op} for {key}"),
                            ))
                        }
                    };
                    Ok((key, change))
                })
                .collect();
            (r.resource_type, r.resource_name, changes)
        })
        .collect();
    let responses = alter_all(
        ctx,
        rc,
        "IncrementalAlterConfigs",
        items,
        false,
        req.validate_only,
    )
    .await
    .into_iter()
    .map(|(kind, name, err)| {
        let mut resp = incremental_alter_configs_response::AlterConfigsResourceResponse::default()
            .with_resource_type(kind)
            .with_resource_name(name);
        if let Some((code, message)) = err {
            resp.error_code = code.code();
            resp.error_message = Some(sb(message));
        }
        resp
    })
    .collect();
    Some(IncrementalAlterConfigsResponse::default().with_responses(responses))
}

/// ListConfigResources (KIP-1142, `kafka-configs --describe --all` style listings): the
/// resources that have configs, by type, as Kafka 4.4 lists them: every topic, every live
/// broker (as BROKER and BROKER_LOGGER), every group with configs set, and no
/// client-metrics resources (Klamm has no client-metrics configs). An empty type list means every supported
/// type (v0: client metrics only); an unsupported type is UNSUPPORTED_VERSION, as in Kafka.
pub async fn list_config_resources(
    ctx: &Context,
    rc: &RequestContext,
    version: i16,
    req: ListConfigResourcesRequest,
) -> Option<ListConfigResourcesResponse> {
    use kafka_protocol::messages::list_config_resources_response::ConfigResource;
    const TOPIC: i8 = 2;
    const BROKER: i8 = 4;
    const BROKER_LOGGER: i8 = 8;
    const CLIENT_METRICS: i8 = 16;
    const GROUP: i8 = 32;
    let supported: &[i8] = if version >= 1 {
        &[TOPIC, BROKER, BROKER_LOGGER, CLIENT_METRICS, GROUP]
    } else {
        &[CLIENT_METRICS]
    };
    let wanted: Vec<i8> = if req.resource_types.is_empty() {
        supported.to_vec()
    } else {
        req.resource_types.clone()
    };
    if let Some(bad) = wanted.iter().find(|t| !supported.contains(t)) {
        tracing::warn!(peer = %rc.peer, client_id = rc.client_id(), resource_type = bad, "ListConfigResources for an unsupported resource type");
        return Some(
            ListConfigResourcesResponse::default()
                .with_error_code(ResponseError::UnsupportedVersion.code()),
        );
    }
    let resource = |name: String, t: i8| {
        ConfigResource::default()
            .with_resource_name(StrBytes::from_string(name))
            .with_resource_type(t)
    };
    let mut out = Vec::new();
    let (brokers, _) = ctx.brokers_and_controller(&rc.listener);
    for t in [BROKER_LOGGER, BROKER] {
        if wanted.contains(&t) {
            out.extend(brokers.iter().map(|(id, _, _)| resource(id.to_string(), t)));
        }
    }
    if wanted.contains(&GROUP) {
        out.extend(
            ctx.group_configs
                .groups()
                .into_iter()
                .map(|g| resource(g, GROUP)),
        );
    }
    if wanted.contains(&TOPIC) {
        out.extend(
            ctx.metadata
                .topics()
                .iter()
                .map(|topic| resource(topic.name.to_string(), TOPIC)),
        );
    }
    Some(ListConfigResourcesResponse::default().with_config_resources(out))
}
