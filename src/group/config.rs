//! Per-group configs (Kafka's GROUP config resource, type 32; KIP-848, KIP-932, KIP-1071,
//! KIP-1240): `share.auto.offset.reset`, `share.delivery.count.limit`,
//! `consumer.session.timeout.ms` and the rest, set with IncrementalAlterConfigs on a group
//! name (`kafka-configs --entity-type groups`) whether the group exists or not.
//!
//! They are validated as Kafka 4.4's `GroupConfig` validates them: a type and a static
//! bound per config, then the broker's min/max bounds for the configs that have them
//! (`share.record.lock.duration.ms` between 15000 and 60000, and so on), with Kafka's
//! messages. Values are stored as Kafka normalises them (`+4` is `4`, `TRUE` is `true`).
//!
//! Storage: the security records' backing ([`Records`]): this broker's store on a single
//! node; in a cluster `/config/groups/<group>` in ZooKeeper, in Kafka's config-znode format
//! (`{"version":1,"config":{...}}`). ZooKeeper-mode Kafka never had group configs; the path
//! follows its `/config/<entity-type>/<name>` layout so that every broker follows them.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use kafka_protocol::ResponseError;

use crate::config::BrokerConfig;
use crate::security::records::{sanitize_name, unsanitize_name, Change, Record, Records};
use crate::share::partition::AutoOffsetReset;
use crate::topic_config::ConfigType;

/// Why a change was refused: Kafka's error and message.
pub type Failure = (ResponseError, String);

/// Where a described value comes from (Kafka's DescribeConfigs ConfigSource ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Set on the group (Kafka's DYNAMIC_GROUP_CONFIG).
    Group = 8,
    /// The broker's value (Kafka lists it as DEFAULT_CONFIG under the broker synonym).
    Default = 5,
}

/// How a value is checked.
#[derive(Debug, Clone, Copy)]
enum Check {
    /// An int (or long) at least `min`, and within the broker's bounds if any.
    Number {
        min: i64,
        bounds: Option<(i64, i64)>,
    },
    /// An int at least 0 and at most the broker's maximum ("must be less than or equal to").
    AtMost(i64),
    Bool,
    OneOf(&'static [&'static str]),
    /// `earliest`, `latest` or `by_duration:<ISO-8601 duration, not negative>`.
    OffsetReset,
    /// The dead-letter topic: any name not starting with `__`.
    DlqTopic,
    /// A registered streams task assignor.
    StreamsAssignor,
    /// A comma-separated list, free-form.
    List,
}

/// One group config: its name, type, Kafka default, the broker config Kafka lists as its
/// synonym, its check, whether Kafka hides it from a full listing, and its doc.
#[derive(Debug)]
struct Def {
    name: &'static str,
    ty: ConfigType,
    default: &'static str,
    synonym: &'static str,
    check: Check,
    internal: bool,
    doc: &'static str,
}

const fn def(
    name: &'static str,
    ty: ConfigType,
    default: &'static str,
    synonym: &'static str,
    check: Check,
    doc: &'static str,
) -> Def {
    Def {
        name,
        ty,
        default,
        synonym,
        check,
        internal: false,
        doc,
    }
}

const fn internal(
    name: &'static str,
    ty: ConfigType,
    default: &'static str,
    synonym: &'static str,
    check: Check,
) -> Def {
    Def {
        name,
        ty,
        default,
        synonym,
        check,
        internal: true,
        doc: "",
    }
}

const fn int(min: i64, lo: i64, hi: i64) -> Check {
    Check::Number {
        min,
        bounds: Some((lo, hi)),
    }
}

/// Kafka 4.4's group configs, in alphabetical order. The bounds are Kafka's default
/// broker bounds (`group.share.min.record.lock.duration.ms` and so on); where Klamm has a
/// flag for the broker value it widens them to include that value.
static DEFS: &[Def] = &[
    def("consumer.assignment.interval.ms", ConfigType::Int, "1000", "group.consumer.assignment.interval.ms", int(0, 0, 15000),
        "The interval between assignment updates for a consumer group."),
    internal("consumer.assignor.offload.enable", ConfigType::Boolean, "true", "group.consumer.assignor.offload.enable", Check::Bool),
    def("consumer.heartbeat.interval.ms", ConfigType::Int, "5000", "group.consumer.heartbeat.interval.ms", int(1, 5000, 15000),
        "The heartbeat interval given to the members of a consumer group."),
    def("consumer.session.timeout.ms", ConfigType::Int, "45000", "group.consumer.session.timeout.ms", int(1, 45000, 60000),
        "The timeout to detect client failures when using the consumer group protocol."),
    def("errors.deadletterqueue.copy.record.enable", ConfigType::Boolean, "false", "errors.deadletterqueue.copy.record.enable", Check::Bool,
        "When writing onto the dead-letter queue topic, whether to copy the original record onto the DLQ topic, or just write a record containing the context information headers."),
    def("errors.deadletterqueue.topic.name", ConfigType::String, "", "errors.deadletterqueue.topic.name", Check::DlqTopic,
        "The name of the topic to be used as the dead-letter queue (DLQ) topic for this share group. If blank (the default), the group does not have a DLQ topic."),
    def("share.assignment.interval.ms", ConfigType::Int, "1000", "group.share.assignment.interval.ms", int(0, 0, 15000),
        "The interval between assignment updates for a share group."),
    internal("share.assignor.offload.enable", ConfigType::Boolean, "true", "group.share.assignor.offload.enable", Check::Bool),
    def("share.auto.offset.reset", ConfigType::String, "latest", "share.auto.offset.reset", Check::OffsetReset,
        "The strategy to initialize the share-partition start offset: earliest, latest, or by_duration:<PnDTnHnMn.nS>."),
    def("share.delivery.count.limit", ConfigType::Int, "5", "group.share.delivery.count.limit", int(2, 2, 10),
        "The maximum number of delivery attempts for a record delivered to a share group."),
    def("share.heartbeat.interval.ms", ConfigType::Int, "5000", "group.share.heartbeat.interval.ms", int(1, 5000, 15000),
        "The heartbeat interval given to the members of a share group."),
    def("share.isolation.level", ConfigType::String, "read_uncommitted", "share.isolation.level",
        Check::OneOf(&["read_committed", "read_uncommitted"]),
        "Controls how to read records written transactionally: read_committed delivers only committed transactional records."),
    def("share.partition.max.record.locks", ConfigType::Int, "2000", "group.share.partition.max.record.locks", int(100, 100, 4000),
        "Share-group record lock limit per share-partition."),
    def("share.record.lock.duration.ms", ConfigType::Int, "30000", "group.share.record.lock.duration.ms", int(1000, 15000, 60000),
        "The record acquisition lock duration in milliseconds for share groups."),
    def("share.renew.acknowledge.enable", ConfigType::Boolean, "true", "share.renew.acknowledge.enable", Check::Bool,
        "Whether the renew acknowledge type is enabled for the share group."),
    def("share.session.timeout.ms", ConfigType::Int, "45000", "group.share.session.timeout.ms", int(1, 45000, 60000),
        "The timeout to detect client failures when using the share group protocol."),
    internal("streams.acceptable.recovery.lag", ConfigType::Long, "10000", "group.streams.acceptable.recovery.lag",
        Check::Number { min: 0, bounds: None }),
    def("streams.assignment.interval.ms", ConfigType::Int, "1000", "group.streams.assignment.interval.ms", int(0, 0, 15000),
        "The interval between assignment updates for a streams group."),
    def("streams.assignor.name", ConfigType::String, "sticky", "group.streams.assignors", Check::StreamsAssignor,
        "The task assignor to use for this streams group, selected by short name from the assignors registered via the broker configuration group.streams.assignors."),
    internal("streams.assignor.offload.enable", ConfigType::Boolean, "true", "group.streams.assignor.offload.enable", Check::Bool),
    def("streams.heartbeat.interval.ms", ConfigType::Int, "5000", "group.streams.heartbeat.interval.ms", int(1, 5000, 15000),
        "The heartbeat interval given to the members."),
    def("streams.initial.rebalance.delay.ms", ConfigType::Int, "3000", "group.streams.initial.rebalance.delay.ms",
        Check::Number { min: 0, bounds: None },
        "The amount of time the group coordinator will wait for more streams clients to join a new group before performing the first rebalance."),
    def("streams.num.standby.replicas", ConfigType::Int, "0", "group.streams.num.standby.replicas", Check::AtMost(2),
        "The number of standby replicas for each task."),
    internal("streams.num.warmup.replicas", ConfigType::Int, "2", "group.streams.num.warmup.replicas", Check::AtMost(20)),
    def("streams.rack.aware.assignment.tags", ConfigType::List, "", "group.streams.rack.aware.assignment.tags", Check::List,
        "List of client tag keys used to distribute standby replicas across Kafka Streams instances."),
    def("streams.session.timeout.ms", ConfigType::Int, "45000", "group.streams.session.timeout.ms", int(1, 45000, 60000),
        "The timeout to detect client failures when using the streams group protocol."),
    internal("streams.task.offset.interval.ms", ConfigType::Int, "60000", "group.streams.task.offset.interval.ms",
        Check::Number { min: 1, bounds: None }),
];

fn find(name: &str) -> Option<&'static Def> {
    DEFS.iter().find(|d| d.name == name)
}

/// A requested change to one group config.
#[derive(Debug, Clone)]
pub enum Op {
    Set(String),
    Delete,
    Append(String),
    Subtract(String),
}

/// One config as DescribeConfigs reports it for a group.
#[derive(Debug, Clone)]
pub struct Described {
    pub name: &'static str,
    pub value: String,
    pub source: Source,
    pub ty: ConfigType,
    pub doc: &'static str,
    /// (name, value, source) from the group's own value down to the broker's.
    pub synonyms: Vec<(String, String, Source)>,
}

/// The values a group's coordinator and share partitions run with: the group's own
/// settings, else the broker's, each capped to the broker's bounds as Kafka's
/// `GroupConfig` caps a stored value when the broker's bounds moved after it was set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Effective {
    pub consumer_session_timeout_ms: i32,
    pub consumer_heartbeat_interval_ms: i32,
    pub share_session_timeout_ms: i32,
    pub share_heartbeat_interval_ms: i32,
    pub share_record_lock_duration_ms: i32,
    pub share_delivery_count_limit: i32,
    pub share_partition_max_record_locks: i32,
    pub share_auto_offset_reset: AutoOffsetReset,
    pub share_read_committed: bool,
    pub share_renew_acknowledge_enable: bool,
    /// `errors.deadletterqueue.topic.name` is set (not blank): the group has a DLQ.
    pub share_dlq_named: bool,
    pub share_dlq_copy_record: bool,
    pub streams_session_timeout_ms: i32,
    pub streams_heartbeat_interval_ms: i32,
    pub streams_initial_rebalance_delay_ms: i32,
    pub streams_num_standby_replicas: i32,
}

/// The group configs of the cluster, one owner for all of them.
///
/// It exists so that the config handlers, the KIP-848 and share-group coordinators and the
/// share partitions read the same per-group values, and so that a write is validated once
/// and reaches every broker through the security records' backing.
pub struct GroupConfigs {
    records: Arc<Records>,
    /// Each group's explicitly set configs, as stored.
    set: RwLock<HashMap<String, BTreeMap<String, String>>>,
    /// The broker's own values for the synonyms Klamm has flags for.
    broker: HashMap<&'static str, String>,
}

/// The record path of a group's configs.
fn rel_of(group: &str) -> String {
    format!("groups/{}", sanitize_name(group))
}

/// The group a record path names, if it names one.
fn group_of(rel: &str) -> Option<String> {
    let name = rel.strip_prefix("groups/")?;
    (!name.is_empty() && !name.contains('/')).then(|| unsanitize_name(name))
}

fn configs_of(bytes: &[u8]) -> BTreeMap<String, String> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        tracing::warn!("a group config record that is not JSON ignored");
        return BTreeMap::new();
    };
    v.get("config")
        .and_then(|c| c.as_object())
        .map(|c| {
            c.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

fn record_bytes(configs: &BTreeMap<String, String>) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"version": 1, "config": configs}))
        .unwrap_or_else(|_| br#"{"version":1,"config":{}}"#.to_vec())
}

impl GroupConfigs {
    /// The group configs in `loaded` (every record `Records::load_all` read).
    pub fn new(
        records: Arc<Records>,
        loaded: &[(Record, Vec<u8>)],
        config: &BrokerConfig,
    ) -> GroupConfigs {
        let broker = HashMap::from([
            (
                "group.consumer.session.timeout.ms",
                config.group_consumer_session_timeout_ms.to_string(),
            ),
            (
                "group.consumer.heartbeat.interval.ms",
                config.group_consumer_heartbeat_interval_ms.to_string(),
            ),
            (
                "group.share.session.timeout.ms",
                config.group_share_session_timeout_ms.to_string(),
            ),
            (
                "group.share.heartbeat.interval.ms",
                config.group_share_heartbeat_interval_ms.to_string(),
            ),
            (
                "group.share.min.record.lock.duration.ms",
                config.group_share_min_record_lock_duration_ms.to_string(),
            ),
            (
                "group.streams.session.timeout.ms",
                config.group_streams_session_timeout_ms.to_string(),
            ),
            (
                "group.streams.heartbeat.interval.ms",
                config.group_streams_heartbeat_interval_ms.to_string(),
            ),
            (
                "group.streams.initial.rebalance.delay.ms",
                config.group_streams_initial_rebalance_delay_ms.to_string(),
            ),
            (
                "group.streams.num.standby.replicas",
                config.group_streams_num_standby_replicas.to_string(),
            ),
        ]);
        let g = GroupConfigs {
            records,
            set: RwLock::new(HashMap::new()),
            broker,
        };
        g.apply(&Change::Reset(loaded.to_vec()));
        g
    }

    /// Applies a change of the records: at start, after another broker's write, after one
    /// of ours.
    pub fn apply(&self, change: &Change) {
        let mut set = self.set.write().unwrap_or_else(|e| e.into_inner());
        match change {
            Change::Reset(all) => {
                set.clear();
                for (r, v) in all {
                    if let Some(group) = Self::group_of_record(r) {
                        let c = configs_of(v);
                        if !c.is_empty() {
                            set.insert(group, c);
                        }
                    }
                }
            }
            Change::One(r, v) => {
                if let Some(group) = Self::group_of_record(r) {
                    match v.as_deref().map(configs_of).filter(|c| !c.is_empty()) {
                        Some(c) => set.insert(group, c),
                        None => set.remove(&group),
                    };
                }
            }
        }
    }

    fn group_of_record(r: &Record) -> Option<String> {
        match r {
            Record::Config(rel) => group_of(rel),
            _ => None,
        }
    }

    /// The groups that have configs set, sorted.
    pub fn groups(&self) -> Vec<String> {
        let set = self.set.read().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<String> = set.keys().cloned().collect();
        out.sort();
        out
    }

    /// A group's explicitly set configs.
    pub fn configured(&self, group: &str) -> BTreeMap<String, String> {
        let set = self.set.read().unwrap_or_else(|e| e.into_inner());
        set.get(group).cloned().unwrap_or_default()
    }

    /// The broker's value of a config's synonym.
    fn broker_value(&self, d: &Def) -> String {
        self.broker
            .get(d.synonym)
            .cloned()
            .unwrap_or_else(|| d.default.to_string())
    }

    /// The broker bounds of a config, widened to hold the broker's own value (a broker run
    /// with a 10 s consumer session timeout accepts 10 s for a group too).
    fn bounds(&self, d: &Def) -> Option<(i64, i64)> {
        let Check::Number {
            bounds: Some((lo, hi)),
            ..
        } = d.check
        else {
            return None;
        };
        let own: i64 = self.broker_value(d).parse().unwrap_or(lo);
        // Kafka's lower bound of the lock duration is a broker config of its own.
        let lo = match d.name {
            "share.record.lock.duration.ms" => self
                .broker
                .get("group.share.min.record.lock.duration.ms")
                .and_then(|v| v.parse().ok())
                .unwrap_or(lo),
            _ => lo,
        };
        Some((lo.min(own), hi.max(own)))
    }

    /// Every config of a group as DescribeConfigs lists it: those Kafka lists always, plus
    /// internal ones the group has set.
    pub fn describe(&self, group: &str) -> Vec<Described> {
        let set = self.configured(group);
        DEFS.iter()
            .filter(|d| !d.internal || set.contains_key(d.name))
            .map(|d| {
                let broker = (d.synonym.to_string(), self.broker_value(d), Source::Default);
                match set.get(d.name) {
                    Some(v) => Described {
                        name: d.name,
                        value: v.clone(),
                        source: Source::Group,
                        ty: d.ty,
                        doc: d.doc,
                        synonyms: vec![(d.name.to_string(), v.clone(), Source::Group), broker],
                    },
                    None => Described {
                        name: d.name,
                        value: broker.1.clone(),
                        source: Source::Default,
                        ty: d.ty,
                        doc: d.doc,
                        synonyms: vec![broker],
                    },
                }
            })
            .collect()
    }

    /// Validates `ops` on `group` and (unless `validate_only`) stores the result. With
    /// `replace_all` (the old AlterConfigs) the group's configs become exactly the ones set.
    pub async fn alter(
        &self,
        group: &str,
        ops: Vec<(String, Op)>,
        replace_all: bool,
        validate_only: bool,
    ) -> Result<(), Failure> {
        if group.is_empty() {
            return Err((
                ResponseError::InvalidRequest,
                "Default group resources are not allowed.".to_string(),
            ));
        }
        let current = self.configured(group);
        let next = self.validated(&current, ops, replace_all)?;
        if validate_only || next == current {
            return Ok(());
        }
        let record = Record::Config(rel_of(group));
        let records = self.records.clone();
        let ops_again = next.clone();
        let outcome = records
            .update(
                std::slice::from_ref(&record),
                |_, _| (!ops_again.is_empty()).then(|| record_bytes(&ops_again)),
                |written| {
                    for (r, _, new) in written {
                        self.apply(&Change::One(r.clone(), new.clone()));
                    }
                },
            )
            .await;
        outcome.map_err(|e| {
            tracing::warn!(group, error = %e, "could not store a group's configs");
            (
                ResponseError::UnknownServerError,
                format!("could not store the configs of group '{group}'"),
            )
        })?;
        tracing::info!(group, configs = ?next, "altered group configs");
        Ok(())
    }

    /// The configs `ops` leave, each validated; nothing if any is invalid.
    fn validated(
        &self,
        current: &BTreeMap<String, String>,
        ops: Vec<(String, Op)>,
        replace_all: bool,
    ) -> Result<BTreeMap<String, String>, Failure> {
        let mut out = if replace_all {
            BTreeMap::new()
        } else {
            current.clone()
        };
        let mut seen = std::collections::HashSet::new();
        for (name, op) in ops {
            if !seen.insert(name.clone()) {
                return Err((
                    ResponseError::InvalidRequest,
                    format!("Error due to duplicate config keys: {name}"),
                ));
            }
            let Some(d) = find(&name) else {
                return Err((
                    ResponseError::InvalidConfig,
                    format!("Unknown group config name: {name}"),
                ));
            };
            match op {
                Op::Set(v) => {
                    let v = self.check(d, &v)?;
                    out.insert(name, v);
                }
                Op::Delete => {
                    out.remove(&name);
                }
                // Kafka 4.4 refuses list operations on every group config, its one list
                // config included.
                Op::Append(_) => {
                    return Err((
                        ResponseError::InvalidConfig,
                        format!("Can't APPEND to key {name} because its type is not LIST."),
                    ))
                }
                Op::Subtract(_) => {
                    return Err((
                        ResponseError::InvalidConfig,
                        format!("Can't SUBTRACT to key {name} because its type is not LIST."),
                    ))
                }
            }
        }
        Ok(out)
    }

    /// One value checked as Kafka checks it; the value as Kafka stores it.
    fn check(&self, d: &Def, raw: &str) -> Result<String, Failure> {
        let invalid = |why: String| {
            (
                ResponseError::InvalidConfig,
                format!("Invalid value {raw} for configuration {}: {why}", d.name),
            )
        };
        let number = |v: &str| -> Result<i64, Failure> {
            let parsed = match d.ty {
                ConfigType::Long => v.trim().parse::<i64>().ok(),
                _ => v.trim().parse::<i32>().ok().map(i64::from),
            };
            parsed.ok_or_else(|| {
                let ty = if d.ty == ConfigType::Long {
                    "LONG"
                } else {
                    "INT"
                };
                invalid(format!("Not a number of type {ty}"))
            })
        };
        match d.check {
            Check::Number { min, .. } => {
                let n = number(raw)?;
                if n < min {
                    return Err(invalid(format!("Value must be at least {min}")));
                }
                if let Some((lo, hi)) = self.bounds(d) {
                    if n < lo || n > hi {
                        return Err((
                            ResponseError::InvalidConfig,
                            format!("{} must be in the range {lo} to {hi} inclusive.", d.name),
                        ));
                    }
                }
                Ok(n.to_string())
            }
            Check::AtMost(max) => {
                let n = number(raw)?;
                if n < 0 {
                    return Err(invalid("Value must be at least 0".to_string()));
                }
                if n > max {
                    return Err((
                        ResponseError::InvalidConfig,
                        format!("{} must be less than or equal to {max}", d.name),
                    ));
                }
                Ok(n.to_string())
            }
            Check::Bool => match raw.trim().to_ascii_lowercase().as_str() {
                v @ ("true" | "false") => Ok(v.to_string()),
                _ => Err(invalid(
                    "Expected value to be either true or false".to_string(),
                )),
            },
            Check::OneOf(allowed) => {
                if allowed.contains(&raw) {
                    Ok(raw.to_string())
                } else {
                    Err(invalid(format!(
                        "String must be one of: {}",
                        allowed.join(", ")
                    )))
                }
            }
            Check::OffsetReset => match parse_offset_reset(raw) {
                Some(_) => Ok(raw.to_string()),
                None => Err(invalid(format!(
                    "Invalid value `{raw}` for configuration {}. The value must be either 'earliest', 'latest' or of the format 'by_duration:<PnDTnHnMn.nS>'.",
                    d.name
                ))),
            },
            Check::DlqTopic => {
                if raw.starts_with("__") {
                    Err((
                        ResponseError::InvalidConfig,
                        format!("{}: DLQ topic name must not start with '__'", d.name),
                    ))
                } else {
                    Ok(raw.to_string())
                }
            }
            Check::StreamsAssignor => {
                if raw == "sticky" {
                    Ok(raw.to_string())
                } else {
                    Err((
                        ResponseError::InvalidConfig,
                        format!("{} '{raw}' is not a registered task assignor. Registered assignors are: [sticky].", d.name),
                    ))
                }
            }
            Check::List => Ok(crate::topic_config::split_list(raw).join(",")),
        }
    }

    /// The values `group` runs with.
    pub fn effective(&self, group: &str) -> Effective {
        let set = self.configured(group);
        let int = |name: &str| -> i32 {
            let Some(d) = find(name) else { return 0 };
            let broker: i64 = self.broker_value(d).parse().unwrap_or(0);
            let Some(v) = set.get(name).and_then(|v| v.parse::<i64>().ok()) else {
                return broker as i32;
            };
            let capped = match self.bounds(d) {
                Some((lo, hi)) if v < lo || v > hi => {
                    let c = v.clamp(lo, hi);
                    tracing::debug!(group, config = name, value = v, effective = c, "a group config is outside the broker's bounds; the effective value is capped");
                    c
                }
                _ => v,
            };
            capped as i32
        };
        let text = |name: &str| -> String {
            set.get(name)
                .cloned()
                .or_else(|| find(name).map(|d| self.broker_value(d)))
                .unwrap_or_default()
        };
        Effective {
            consumer_session_timeout_ms: int("consumer.session.timeout.ms"),
            consumer_heartbeat_interval_ms: int("consumer.heartbeat.interval.ms"),
            share_session_timeout_ms: int("share.session.timeout.ms"),
            share_heartbeat_interval_ms: int("share.heartbeat.interval.ms"),
            share_record_lock_duration_ms: int("share.record.lock.duration.ms"),
            share_delivery_count_limit: int("share.delivery.count.limit"),
            share_partition_max_record_locks: int("share.partition.max.record.locks"),
            share_auto_offset_reset: parse_offset_reset(&text("share.auto.offset.reset"))
                .unwrap_or(AutoOffsetReset::Latest),
            share_read_committed: text("share.isolation.level") == "read_committed",
            share_renew_acknowledge_enable: text("share.renew.acknowledge.enable") != "false",
            share_dlq_named: !text("errors.deadletterqueue.topic.name").trim().is_empty(),
            share_dlq_copy_record: text("errors.deadletterqueue.copy.record.enable") == "true",
            streams_session_timeout_ms: int("streams.session.timeout.ms"),
            streams_heartbeat_interval_ms: int("streams.heartbeat.interval.ms"),
            streams_initial_rebalance_delay_ms: int("streams.initial.rebalance.delay.ms"),
            streams_num_standby_replicas: int("streams.num.standby.replicas"),
        }
    }
}

/// `share.auto.offset.reset` as Kafka reads it (case-sensitive, as Kafka's validator is).
pub fn parse_offset_reset(v: &str) -> Option<AutoOffsetReset> {
    match v {
        "earliest" => Some(AutoOffsetReset::Earliest),
        "latest" => Some(AutoOffsetReset::Latest),
        _ => {
            let duration_ms = parse_iso_duration_ms(v.strip_prefix("by_duration:")?)?;
            (duration_ms >= 0).then_some(AutoOffsetReset::ByDuration { duration_ms })
        }
    }
}

/// An ISO-8601 duration as Java's `Duration.parse` reads it (`PnDTnHnMn.nS`, each part
/// optionally signed, a leading sign for the whole), in milliseconds; None if malformed
/// or beyond range.
pub fn parse_iso_duration_ms(s: &str) -> Option<i64> {
    let (negate, rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let rest = rest.strip_prefix(['P', 'p'])?;
    let (days, time) = match rest.find(['T', 't']) {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let mut total: i128 = 0;
    let mut parts = 0;
    // A signed integer followed by its unit letter, each unit at most once, in order.
    let mut take = |text: &str,
                    units: &[(char, i128)],
                    fraction_unit: Option<char>|
     -> Option<()> {
        let mut rest = text;
        let mut next_unit = 0;
        while !rest.is_empty() {
            let end = rest.find(|c: char| c.is_ascii_alphabetic())?;
            let (number, unit) = (&rest[..end], rest[end..].chars().next()?);
            let unit = unit.to_ascii_uppercase();
            let idx = units[next_unit..].iter().position(|(u, _)| *u == unit)? + next_unit;
            next_unit = idx + 1;
            let scale = units[idx].1;
            let (whole, frac) = match number.split_once(['.', ',']) {
                Some((w, f)) if fraction_unit == Some(unit) => (w, Some(f)),
                Some(_) => return None,
                None => (number, None),
            };
            let digits = whole.strip_prefix(['+', '-']).unwrap_or(whole);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 19
            {
                return None;
            }
            let sign: i128 = if whole.starts_with('-') { -1 } else { 1 };
            let mut value = digits.parse::<i128>().ok()? * scale;
            if let Some(f) = frac {
                // Java takes 0 to 9 fraction digits ("PT1.S" is one second).
                if f.len() > 9 || !f.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                let nanos = format!("{f:0<9}").parse::<i128>().ok()?;
                value += nanos / 1_000_000;
            }
            total += sign * value;
            parts += 1;
            rest = &rest[end + 1..];
        }
        Some(())
    };
    take(days, &[('D', 86_400_000)], None)?;
    if let Some(t) = time {
        if t.is_empty() {
            return None;
        }
        take(
            t,
            &[('H', 3_600_000), ('M', 60_000), ('S', 1000)],
            Some('S'),
        )?;
    }
    if parts == 0 {
        return None;
    }
    let total = if negate { -total } else { total };
    i64::try_from(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_java_reads_them() {
        assert_eq!(parse_iso_duration_ms("PT1H"), Some(3_600_000));
        assert_eq!(parse_iso_duration_ms("P1D"), Some(86_400_000));
        assert_eq!(
            parse_iso_duration_ms("P1DT2H3M4.5S"),
            Some(86_400_000 + 7_200_000 + 180_000 + 4_500)
        );
        assert_eq!(parse_iso_duration_ms("PT-1H"), Some(-3_600_000));
        assert_eq!(parse_iso_duration_ms("PT1.S"), Some(1000));
        assert_eq!(parse_iso_duration_ms("-PT1H"), Some(-3_600_000));
        for bad in [
            "PT",
            "P",
            "",
            "1H",
            "PT1.5H",
            "PT1S2M",
            "P1H",
            "PTS",
            "PT1.1234567891S",
        ] {
            assert_eq!(parse_iso_duration_ms(bad), None, "{bad}");
        }
        assert_eq!(
            parse_offset_reset("by_duration:PT-1H"),
            None,
            "negative refused"
        );
        assert_eq!(parse_offset_reset("BY_DURATION:PT1H"), None);
        assert_eq!(parse_offset_reset("EARLIEST"), None);
        assert_eq!(
            parse_offset_reset("by_duration:P1D"),
            Some(AutoOffsetReset::ByDuration {
                duration_ms: 86_400_000
            })
        );
    }
}
