//! Kafka's topic-level configs: names, types, defaults, validation, and the broker config
//! each falls back to (its synonym). One table serves CreateTopics, DescribeConfigs,
//! AlterConfigs and IncrementalAlterConfigs, so all of them agree on what exists and what
//! a value may be, with Kafka's names and error texts.

use crate::config::BrokerConfig;
use crate::metadata::BrokerConfigs;

/// A config's type as DescribeConfigs v3+ reports it (Kafka's `ConfigType` ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
    Double = 6,
    List = 7,
}

impl ConfigType {
    fn kafka_name(self) -> &'static str {
        match self {
            ConfigType::Boolean => "BOOLEAN",
            ConfigType::String => "STRING",
            ConfigType::Int => "INT",
            ConfigType::Long => "LONG",
            ConfigType::Double => "DOUBLE",
            ConfigType::List => "LIST",
        }
    }
}

/// The validator Kafka attaches to a config.
#[derive(Debug, Clone, Copy)]
pub enum Check {
    Any,
    AtLeast(i64),
    Between(f64, f64),
    /// One of these strings (Kafka's `ValidString`; case-sensitive except where noted).
    OneOf(&'static [&'static str]),
    /// A list whose every element is one of these (Kafka's `ValidList`).
    ListOf(&'static [&'static str]),
    /// An integer within one of these inclusive ranges (compression levels).
    Ranges(&'static [(i64, i64)]),
    /// `*`, or a list of `partition:broker` pairs (Kafka's ThrottledReplicaListValidator).
    ThrottledReplicas,
    /// Only `false`: tiered storage is not available on this broker.
    RemoteStorage,
}

/// Where a config's effective value comes from (Kafka's `ConfigSource` ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    TopicConfig = 1,
    DynamicBrokerConfig = 2,
    DynamicDefaultBrokerConfig = 3,
    StaticBrokerConfig = 4,
    DefaultConfig = 5,
    /// Set on a group (the GROUP config resource).
    GroupConfig = 8,
}

/// One topic-level config.
#[derive(Debug)]
pub struct TopicConfigDef {
    pub name: &'static str,
    pub ty: ConfigType,
    /// Kafka's default when the broker config it falls back to is not set either.
    pub default: &'static str,
    pub check: Check,
    /// The broker config that supplies the default (Kafka's synonym), if any.
    pub broker_synonym: Option<&'static str>,
    pub doc: &'static str,
}

const MAX_LONG: &str = "9223372036854775807";

/// Every topic config of Kafka 4.x, in Kafka's (alphabetical) order.
pub static TOPIC_CONFIGS: &[TopicConfigDef] = &[
    def("cleanup.policy", ConfigType::List, "delete", Check::ListOf(&["compact", "delete"]), Some("log.cleanup.policy"),
        "delete: old segments are discarded by retention; compact: the latest value per key is kept."),
    def("compression.gzip.level", ConfigType::Int, "-1", Check::Ranges(&[(-1, -1), (1, 9)]), Some("compression.gzip.level"),
        "The gzip level used when compression.type is gzip."),
    def("compression.lz4.level", ConfigType::Int, "9", Check::Ranges(&[(1, 17)]), Some("compression.lz4.level"),
        "The lz4 level used when compression.type is lz4."),
    def("compression.type", ConfigType::String, "producer",
        Check::OneOf(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]), Some("compression.type"),
        "The final compression type of the topic's data; producer keeps the producer's codec."),
    def("compression.zstd.level", ConfigType::Int, "3", Check::Ranges(&[(-131072, 22)]), Some("compression.zstd.level"),
        "The zstd level used when compression.type is zstd."),
    def("delete.retention.ms", ConfigType::Long, "86400000", Check::AtLeast(0), Some("log.cleaner.delete.retention.ms"),
        "How long tombstones are kept on compacted topics."),
    def("errors.deadletterqueue.group.enable", ConfigType::Boolean, "false", Check::Any, None,
        "Enable this topic to be used as a dead-letter queue for share groups. A share group's errors.deadletterqueue.topic.name only receives records if this is true."),
    def("file.delete.delay.ms", ConfigType::Long, "60000", Check::AtLeast(0), Some("log.segment.delete.delay.ms"),
        "Delay before a deleted file is removed from the filesystem."),
    def("flush.messages", ConfigType::Long, MAX_LONG, Check::AtLeast(1), Some("log.flush.interval.messages"),
        "Messages accumulated before an fsync."),
    def("flush.ms", ConfigType::Long, MAX_LONG, Check::AtLeast(0), Some("log.flush.interval.ms"),
        "Time before an fsync."),
    def("follower.replication.throttled.replicas", ConfigType::List, "", Check::ThrottledReplicas,
        Some("follower.replication.throttled.replicas"), "Replicas whose follower replication is throttled."),
    def("index.interval.bytes", ConfigType::Int, "4096", Check::AtLeast(0), Some("log.index.interval.bytes"),
        "How often an offset index entry is added."),
    def("leader.replication.throttled.replicas", ConfigType::List, "", Check::ThrottledReplicas,
        Some("leader.replication.throttled.replicas"), "Replicas whose leader replication is throttled."),
    def("local.retention.bytes", ConfigType::Long, "-2", Check::AtLeast(-2), Some("log.local.retention.bytes"),
        "Local retention with tiered storage (-2: retention.bytes)."),
    def("local.retention.ms", ConfigType::Long, "-2", Check::AtLeast(-2), Some("log.local.retention.ms"),
        "Local retention with tiered storage (-2: retention.ms)."),
    def("max.compaction.lag.ms", ConfigType::Long, MAX_LONG, Check::AtLeast(1), Some("log.cleaner.max.compaction.lag.ms"),
        "Longest time a message stays ineligible for compaction."),
    def("max.decompressed.message.bytes", ConfigType::Int, "2147483639", Check::Between(1.0, 2147483639.0),
        Some("max.decompressed.message.bytes"),
        "Largest decompressed size of one record in a compressed batch; a larger one is refused with INVALID_RECORD."),
    def("max.message.bytes", ConfigType::Int, "1048588", Check::AtLeast(0), Some("message.max.bytes"),
        "Largest record batch size allowed."),
    def("message.timestamp.after.max.ms", ConfigType::Long, "3600000", Check::AtLeast(0),
        Some("log.message.timestamp.after.max.ms"), "Largest allowed lead of a CreateTime timestamp over the broker's clock."),
    def("message.timestamp.before.max.ms", ConfigType::Long, MAX_LONG, Check::AtLeast(0),
        Some("log.message.timestamp.before.max.ms"), "Largest allowed lag of a CreateTime timestamp behind the broker's clock."),
    def("message.timestamp.type", ConfigType::String, "CreateTime", Check::OneOf(&["CreateTime", "LogAppendTime"]),
        Some("log.message.timestamp.type"), "CreateTime keeps the producer's timestamps; LogAppendTime stamps the broker's."),
    def("min.cleanable.dirty.ratio", ConfigType::Double, "0.5", Check::Between(0.0, 1.0),
        Some("log.cleaner.min.cleanable.ratio"), "Dirty ratio above which the log is compacted."),
    def("min.compaction.lag.ms", ConfigType::Long, "0", Check::AtLeast(0), Some("log.cleaner.min.compaction.lag.ms"),
        "Shortest time a message stays uncompacted."),
    def("min.insync.replicas", ConfigType::Int, "1", Check::AtLeast(1), Some("min.insync.replicas"),
        "Replicas that must acknowledge an acks=all write."),
    def("preallocate", ConfigType::Boolean, "false", Check::Any, Some("log.preallocate"),
        "Preallocate segment files."),
    def("remote.copy.lag.bytes", ConfigType::Long, "-1", Check::AtLeast(-1), Some("log.remote.copy.lag.bytes"),
        "Tiered storage upload eligibility by size; no effect here (no tiered storage)."),
    def("remote.copy.lag.ms", ConfigType::Long, "0", Check::AtLeast(-1), Some("log.remote.copy.lag.ms"),
        "Tiered storage upload eligibility by time; no effect here (no tiered storage)."),
    def("remote.log.copy.disable", ConfigType::Boolean, "false", Check::Any, None,
        "Makes tiered data read-only; no effect here (no tiered storage)."),
    def("remote.log.delete.on.disable", ConfigType::Boolean, "false", Check::Any, None,
        "Deletes tiered data when tiered storage is turned off; no effect here (no tiered storage)."),
    def("remote.storage.enable", ConfigType::Boolean, "false", Check::RemoteStorage, None,
        "Tiered storage for the topic."),
    def("retention.bytes", ConfigType::Long, "-1", Check::Any, Some("log.retention.bytes"),
        "Largest size a partition's log may grow to before old batches are deleted (-1: no limit)."),
    def("retention.ms", ConfigType::Long, "604800000", Check::AtLeast(-1), Some("log.retention.ms"),
        "Longest time a batch is kept before it is deleted (-1: no limit)."),
    // Kafka 4 raised the minimum to 1 MiB; Klamm keeps Kafka 3.x's 14 bytes, since segments
    // do not exist here and tools written for 3.x (librdkafka's own tests) set small ones.
    def("segment.bytes", ConfigType::Int, "1073741824", Check::AtLeast(14), Some("log.segment.bytes"),
        "Segment file size; retention deletes whole batches here, so it has no effect."),
    def("segment.index.bytes", ConfigType::Int, "10485760", Check::AtLeast(4), Some("log.index.size.max.bytes"),
        "Offset index size."),
    def("segment.jitter.ms", ConfigType::Long, "0", Check::AtLeast(0), Some("log.roll.jitter.ms"),
        "Jitter subtracted from segment.ms."),
    def("segment.ms", ConfigType::Long, "604800000", Check::AtLeast(1), Some("log.roll.ms"),
        "Time before a segment is rolled; retention deletes whole batches here, so it has no effect."),
    def("unclean.leader.election.enable", ConfigType::Boolean, "false", Check::Any,
        Some("unclean.leader.election.enable"), "Whether an out-of-sync replica may become leader."),
];

#[allow(clippy::too_many_arguments)]
const fn def(
    name: &'static str,
    ty: ConfigType,
    default: &'static str,
    check: Check,
    broker_synonym: Option<&'static str>,
    doc: &'static str,
) -> TopicConfigDef {
    TopicConfigDef {
        name,
        ty,
        default,
        check,
        broker_synonym,
        doc,
    }
}

/// The definition of a topic config, if Kafka has one by that name.
pub fn find(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// Why a config change was refused, with Kafka's message text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidConfig(pub String);

/// Checks `value` for config `name` and returns it as stored (trimmed; lists without
/// blanks around commas). Unknown names and bad values give Kafka's INVALID_CONFIG text.
pub fn validate(name: &str, value: &str) -> Result<String, InvalidConfig> {
    let def =
        find(name).ok_or_else(|| InvalidConfig(format!("Unknown topic config name: {name}")))?;
    let v = value.trim();
    let bad = |why: String| {
        InvalidConfig(format!(
            "Invalid value {value} for configuration {name}: {why}"
        ))
    };
    let not_type = || bad(format!("Not a number of type {}", def.ty.kafka_name()));
    let normalized = match def.ty {
        ConfigType::Boolean => match v.to_ascii_lowercase().as_str() {
            "true" if matches!(def.check, Check::RemoteStorage) => {
                return Err(InvalidConfig(
                    "Tiered Storage functionality is disabled in the broker. Topic cannot be configured with remote log storage.".into(),
                ))
            }
            "true" => "true".to_string(),
            "false" => "false".to_string(),
            _ => return Err(bad("Expected value to be either true or false".into())),
        },
        ConfigType::Int => {
            let n: i32 = v.parse().map_err(|_| not_type())?;
            check_number(def, n as f64, value)?;
            n.to_string()
        }
        ConfigType::Long => {
            let n: i64 = v.parse().map_err(|_| not_type())?;
            check_number(def, n as f64, value)?;
            n.to_string()
        }
        ConfigType::Double => {
            let n: f64 = v.parse().map_err(|_| not_type())?;
            if !n.is_finite() {
                return Err(not_type());
            }
            check_number(def, n, value)?;
            v.to_string()
        }
        ConfigType::String => {
            if let Check::OneOf(allowed) = def.check {
                // Kafka matches compression.type and the timestamp type case-sensitively.
                if !allowed.contains(&v) {
                    return Err(bad(format!(
                        "String must be one of: {}",
                        allowed.join(", ")
                    )));
                }
            }
            v.to_string()
        }
        ConfigType::List => {
            let items = split_list(v);
            if matches!(def.check, Check::ThrottledReplicas) {
                let pair = |i: &String| {
                    i.split_once(':').is_some_and(|(p, b)| {
                        p.trim().parse::<i32>().is_ok() && b.trim().parse::<i32>().is_ok()
                    })
                };
                let star = items.len() == 1 && items[0] == "*";
                if !(star || items.iter().all(pair)) {
                    return Err(bad(
                        "must be the literal '*' or a list of replicas in the following format: [partitionId]:[brokerId],[partitionId]:[brokerId],...".into(),
                    ));
                }
            }
            if let Check::ListOf(allowed) = def.check {
                for item in &items {
                    if !allowed.contains(&item.as_str()) {
                        return Err(InvalidConfig(format!(
                            "Invalid value {item} for configuration {name}: String must be one of: {}",
                            allowed.join(", ")
                        )));
                    }
                }
                if items.is_empty() {
                    return Err(bad("Empty list".into()));
                }
            }
            items.join(",")
        }
    };
    Ok(normalized)
}

fn check_number(def: &TopicConfigDef, n: f64, raw: &str) -> Result<(), InvalidConfig> {
    let name = def.name;
    match def.check {
        Check::AtLeast(min) if n < min as f64 => Err(InvalidConfig(format!(
            "Invalid value {raw} for configuration {name}: Value must be at least {min}"
        ))),
        // Kafka's Range names the bound that was crossed.
        Check::Between(lo, _) if n < lo => Err(InvalidConfig(format!(
            "Invalid value {raw} for configuration {name}: Value must be at least {lo}"
        ))),
        Check::Between(_, hi) if n > hi => Err(InvalidConfig(format!(
            "Invalid value {raw} for configuration {name}: Value must be no more than {hi}"
        ))),
        Check::Ranges(ranges)
            if !ranges
                .iter()
                .any(|(lo, hi)| (*lo as f64..=*hi as f64).contains(&n)) =>
        {
            let allowed: Vec<String> = ranges
                .iter()
                .map(|(lo, hi)| {
                    if lo == hi {
                        lo.to_string()
                    } else {
                        format!("[{lo},...,{hi}]")
                    }
                })
                .collect();
            Err(InvalidConfig(format!(
                "Invalid value {raw} for configuration {name}: Value must be one of {}",
                allowed.join(" or ")
            )))
        }
        _ => Ok(()),
    }
}

/// Checks a topic's whole set of configs for conflicts between them, as Kafka's
/// LogConfig does after each value has passed its own validator.
pub fn validate_set(set: &std::collections::BTreeMap<String, String>) -> Result<(), InvalidConfig> {
    let long = |name: &str| -> i64 {
        set.get(name)
            .or(find(name).map(|d| d.default.to_string()).as_ref())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let (min, max) = (long("min.compaction.lag.ms"), long("max.compaction.lag.ms"));
    if min > max {
        return Err(InvalidConfig(format!(
            "conflict topic config setting min.compaction.lag.ms ({min}) > max.compaction.lag.ms ({max})"
        )));
    }
    Ok(())
}

/// Splits a Kafka list value: comma-separated, blanks around items ignored.
pub fn split_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// A topic config's value when the topic does not set it, with Kafka's precedence: this
/// broker's dynamic setting of its synonym, the cluster-wide dynamic default, the static
/// broker setting (a command-line flag), Kafka's default.
pub fn default_value(
    def: &TopicConfigDef,
    broker: &BrokerConfig,
    dynamic: &BrokerConfigs,
) -> (String, ConfigSource) {
    if let Some(syn) = def.broker_synonym {
        if let Some(v) = dynamic.this_broker.get(syn) {
            return (v.clone(), ConfigSource::DynamicBrokerConfig);
        }
        if let Some(v) = dynamic.cluster_default.get(syn) {
            return (v.clone(), ConfigSource::DynamicDefaultBrokerConfig);
        }
    }
    match def.name {
        "max.message.bytes" if broker.message_max_bytes != 1048588 => (
            broker.message_max_bytes.to_string(),
            ConfigSource::StaticBrokerConfig,
        ),
        "min.insync.replicas" if broker.min_insync_replicas != 1 => (
            broker.min_insync_replicas.to_string(),
            ConfigSource::StaticBrokerConfig,
        ),
        _ => (def.default.to_string(), ConfigSource::DefaultConfig),
    }
}

/// Kafka's dynamically updatable broker configs that are not topic-config synonyms. Klamm
/// stores and reports them (Kafka tools set them), though none changes its behaviour.
pub const OTHER_DYNAMIC_BROKER_CONFIGS: &[&str] = &[
    "background.threads",
    "log.cleaner.backoff.ms",
    "log.cleaner.dedupe.buffer.size",
    "log.cleaner.io.buffer.size",
    "log.cleaner.io.max.bytes.per.second",
    "log.cleaner.threads",
    "max.connection.creation.rate",
    "max.connections",
    "max.connections.per.ip",
    "max.connections.per.ip.overrides",
    "num.io.threads",
    "num.network.threads",
    "num.recovery.threads.per.data.dir",
    "num.replica.fetchers",
    "sasl.kerberos.min.time.before.relogin",
    "sasl.kerberos.service.name",
    "sasl.kerberos.ticket.renew.jitter",
    "sasl.kerberos.ticket.renew.window.factor",
    "sasl.login.refresh.buffer.seconds",
    "sasl.login.refresh.min.period.seconds",
    "sasl.login.refresh.window.factor",
    "sasl.login.refresh.window.jitter",
];

/// Checks a dynamic broker config: a topic-config synonym gets that config's validation;
/// other names must be one of Kafka's dynamic broker configs.
pub fn validate_broker(name: &str, value: &str) -> Result<String, InvalidConfig> {
    if let Some(def) = TOPIC_CONFIGS
        .iter()
        .find(|d| d.broker_synonym == Some(name))
    {
        return validate(def.name, value).map_err(|e| {
            InvalidConfig(e.0.replace(
                &format!("configuration {}", def.name),
                &format!("configuration {name}"),
            ))
        });
    }
    if OTHER_DYNAMIC_BROKER_CONFIGS.contains(&name) {
        return Ok(value.trim().to_string());
    }
    Err(InvalidConfig(format!(
        "Cannot update these configs dynamically: {name}"
    )))
}

/// The value in force of one topic config for a topic that sets `set`.
pub fn value_of(
    set: &std::collections::BTreeMap<String, String>,
    name: &str,
    broker: &BrokerConfig,
    dynamic: &BrokerConfigs,
) -> String {
    match set.get(name) {
        Some(v) => v.clone(),
        None => find(name)
            .map(|d| default_value(d, broker, dynamic).0)
            .unwrap_or_default(),
    }
}

/// A topic config's effective value and its source.
pub struct Effective {
    pub def: &'static TopicConfigDef,
    pub value: String,
    pub source: ConfigSource,
}

/// Every topic config with the value in force for a topic that sets `set`.
pub fn effective(
    set: &std::collections::BTreeMap<String, String>,
    broker: &BrokerConfig,
    dynamic: &BrokerConfigs,
) -> Vec<Effective> {
    TOPIC_CONFIGS
        .iter()
        .map(|def| match set.get(def.name) {
            Some(v) => Effective {
                def,
                value: v.clone(),
                source: ConfigSource::TopicConfig,
            },
            None => {
                let (value, source) = default_value(def, broker, dynamic);
                Effective { def, value, source }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_like_kafka() {
        assert_eq!(validate("retention.ms", " 1000 ").unwrap(), "1000");
        assert_eq!(validate("retention.ms", "-1").unwrap(), "-1");
        assert!(validate("retention.ms", "-2")
            .unwrap_err()
            .0
            .contains("at least -1"));
        assert!(validate("retention.ms", "abc")
            .unwrap_err()
            .0
            .contains("LONG"));
        assert!(
            validate("max.message.bytes", "99999999999").is_err(),
            "INT overflow"
        );
        assert_eq!(
            validate("cleanup.policy", "compact, delete").unwrap(),
            "compact,delete"
        );
        assert!(validate("cleanup.policy", "shred").is_err());
        assert!(validate("compression.type", "brotli").is_err());
        assert_eq!(validate("preallocate", "TRUE").unwrap(), "true");
        assert!(validate("min.cleanable.dirty.ratio", "1.5").is_err());
        assert_eq!(
            validate("dummy.doesntexist", "1").unwrap_err().0,
            "Unknown topic config name: dummy.doesntexist"
        );
    }

    #[test]
    fn table_defaults_pass_their_own_validation() {
        for d in TOPIC_CONFIGS {
            if d.ty == ConfigType::List && matches!(d.check, Check::Any) && d.default.is_empty() {
                continue;
            }
            validate(d.name, d.default).unwrap_or_else(|e| panic!("{}: {:?}", d.name, e));
        }
        let mut names: Vec<_> = TOPIC_CONFIGS.iter().map(|d| d.name).collect();
        let sorted = {
            let mut s = names.clone();
            s.sort();
            s
        };
        assert_eq!(names, sorted);
        names.dedup();
        assert_eq!(names.len(), TOPIC_CONFIGS.len());
    }
}
