//! Client quotas (KIPs 13, 55, 257 and 546): what each user, client id and IP address may
//! use of the broker, kept where Kafka keeps them and enforced as Kafka enforces them.
//!
//! - Quotas are set per entity: a user, a client id, a (user, client id) pair, or an IP
//!   address, each by name or as the default for its kind. They live with the security
//!   records (`crate::security::records`), in ZooKeeper-mode Kafka's layout in a cluster:
//!   `/config/users/<user>` (beside the user's SCRAM credentials), `/config/users/<user>/
//!   clients/<client-id>`, `/config/clients/<client-id>` and `/config/ips/<ip>`, with
//!   `<default>` naming a default.
//! - A request is checked against the most specific quota that applies to it, by Kafka's
//!   order (KIP-55): user and client id, user and default client id, user, default user and
//!   client id, default user and default client id, default user, client id, default client
//!   id. Every client the matching entity covers shares one rate: a quota set on a user
//!   bounds all of that user's client ids together.
//! - Rates are Kafka's ([`rate::Rate`]); a client over its quota is told how long to wait
//!   (`throttle_time_ms`) and its connection is muted for that long, so a client that does
//!   not wait is slowed all the same.
//!
//! Quotas are per broker, as in Kafka: each broker of a cluster enforces the whole quota on
//! what it serves.

pub mod rate;
pub mod throttle;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use kafka_protocol::ResponseError;
use serde::{Deserialize, Serialize};

use crate::security::records::{
    sanitize_name, unsanitize_name, Change, Record, RecordError, Records,
};
use rate::Rate;

/// Entity type names, as the protocol and `kafka-configs` spell them.
pub const USER: &str = "user";
pub const CLIENT_ID: &str = "client-id";
pub const IP: &str = "ip";
/// How ZooKeeper-mode Kafka names a default entity in a path.
pub const DEFAULT_NAME: &str = "<default>";

/// The quota kinds a request is checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `producer_byte_rate`: bytes of Produce requests per second.
    Produce,
    /// `consumer_byte_rate`: bytes of Fetch responses per second.
    Fetch,
    /// `request_percentage`: percent of one request thread's time.
    Request,
    /// `controller_mutation_rate`: partitions created or deleted per second.
    ControllerMutation,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::Produce,
        Kind::Fetch,
        Kind::Request,
        Kind::ControllerMutation,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Kind::Produce => "producer_byte_rate",
            Kind::Fetch => "consumer_byte_rate",
            Kind::Request => "request_percentage",
            Kind::ControllerMutation => "controller_mutation_rate",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Kafka's message for THROTTLING_QUOTA_EXCEEDED.
pub const THROTTLING_QUOTA_EXCEEDED: &str = "The throttling quota has been exceeded.";

/// `connection_creation_rate`, the one quota of an IP entity.
pub const CONNECTION_CREATION_RATE: &str = "connection_creation_rate";

/// How a quota's value must look (Kafka's `QuotaConfig` types).
#[derive(Clone, Copy)]
enum ValueType {
    Long,
    Int,
    Double,
}

const CLIENT_KEYS: &[(&str, ValueType)] = &[
    ("producer_byte_rate", ValueType::Long),
    ("consumer_byte_rate", ValueType::Long),
    ("request_percentage", ValueType::Double),
    ("controller_mutation_rate", ValueType::Double),
];
const IP_KEYS: &[(&str, ValueType)] = &[(CONNECTION_CREATION_RATE, ValueType::Int)];

fn is_quota_key(key: &str) -> bool {
    CLIENT_KEYS.iter().chain(IP_KEYS).any(|(k, _)| *k == key)
}

/// A quota entity: which of user, client id and IP it names, each by name or (None) as the
/// default. Kafka's `ClientQuotaEntity`, a map from entity type to a nullable name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Entity {
    pub user: Option<Option<String>>,
    pub client_id: Option<Option<String>>,
    pub ip: Option<Option<String>>,
}

impl Entity {
    /// The (type, name) pairs the protocol carries, in a fixed order.
    pub fn entries(&self) -> Vec<(&'static str, Option<String>)> {
        let mut out = Vec::with_capacity(2);
        if let Some(n) = &self.user {
            out.push((USER, n.clone()));
        }
        if let Some(n) = &self.client_id {
            out.push((CLIENT_ID, n.clone()));
        }
        if let Some(n) = &self.ip {
            out.push((IP, n.clone()));
        }
        out
    }

    fn user(name: Option<&str>) -> Entity {
        Entity {
            user: Some(name.map(str::to_string)),
            ..Entity::default()
        }
    }

    fn user_client(user: Option<&str>, client: Option<&str>) -> Entity {
        Entity {
            user: Some(user.map(str::to_string)),
            client_id: Some(client.map(str::to_string)),
            ip: None,
        }
    }

    fn client(name: Option<&str>) -> Entity {
        Entity {
            client_id: Some(name.map(str::to_string)),
            ..Entity::default()
        }
    }

    /// Where the entity's quotas are kept: a named user's sit in the user's own record
    /// (beside its SCRAM credentials), every other entity has a config record of its own.
    fn record(&self) -> Record {
        fn seg(n: &Option<String>) -> String {
            match n {
                None => DEFAULT_NAME.to_string(),
                Some(n) => sanitize_name(n),
            }
        }
        match (&self.user, &self.client_id, &self.ip) {
            (Some(Some(u)), None, None) => Record::User(u.clone()),
            (Some(u), None, None) => Record::Config(format!("users/{}", seg(u))),
            (Some(u), Some(c), None) => {
                Record::Config(format!("users/{}/clients/{}", seg(u), seg(c)))
            }
            (None, Some(c), None) => Record::Config(format!("clients/{}", seg(c))),
            (None, None, Some(ip)) => {
                Record::Config(format!("ips/{}", ip.as_deref().unwrap_or(DEFAULT_NAME)))
            }
            // Validation refuses every other combination before a record is needed.
            _ => Record::Config(String::new()),
        }
    }

    /// The entity a config record (its path under `/config`) holds quotas of.
    fn of_config_path(rel: &str) -> Option<Entity> {
        fn name(seg: &str) -> Option<Option<String>> {
            if seg.is_empty() {
                return None;
            }
            Some((seg != DEFAULT_NAME).then(|| unsanitize_name(seg)))
        }
        let parts: Vec<&str> = rel.split('/').collect();
        match parts.as_slice() {
            ["users", u] => Some(Entity {
                user: Some(name(u)?),
                ..Entity::default()
            }),
            ["users", u, "clients", c] => Some(Entity {
                user: Some(name(u)?),
                client_id: Some(name(c)?),
                ip: None,
            }),
            ["clients", c] => Some(Entity {
                client_id: Some(name(c)?),
                ..Entity::default()
            }),
            ["ips", ip] if !ip.is_empty() => Some(Entity {
                ip: Some((*ip != DEFAULT_NAME).then(|| ip.to_string())),
                ..Entity::default()
            }),
            _ => None,
        }
    }
}

/// A config record as ZooKeeper-mode Kafka writes it: `{"version":1,"config":{...}}`, the
/// values strings.
#[derive(Serialize, Deserialize, Default)]
struct ConfigRecord {
    #[serde(default)]
    version: i32,
    #[serde(default)]
    config: BTreeMap<String, String>,
}

/// The quota values of a record (its other configs, such as SCRAM credentials, left out).
fn quotas_of(bytes: &[u8]) -> BTreeMap<String, f64> {
    let Ok(rec) = serde_json::from_slice::<ConfigRecord>(bytes) else {
        return BTreeMap::new();
    };
    rec.config
        .into_iter()
        .filter(|(k, _)| is_quota_key(k))
        .filter_map(|(k, v)| v.trim().parse::<f64>().ok().map(|v| (k, v)))
        .collect()
}

/// `old` with its quota values replaced by `quotas`, other configs kept; None when nothing
/// is left.
fn merge_quotas(old: Option<&[u8]>, quotas: &BTreeMap<String, f64>) -> Option<Vec<u8>> {
    let mut config = old
        .and_then(|b| serde_json::from_slice::<ConfigRecord>(b).ok())
        .map(|r| r.config)
        .unwrap_or_default();
    config.retain(|k, _| !is_quota_key(k));
    for (k, v) in quotas {
        config.insert(k.clone(), v.to_string());
    }
    (!config.is_empty())
        .then(|| serde_json::to_vec(&ConfigRecord { version: 1, config }).unwrap_or_default())
}

/// One entity's change, as AlterClientQuotas carries it: values to set, or (None) remove.
pub struct Alteration {
    pub entity: Vec<(String, Option<String>)>,
    pub ops: Vec<(String, Option<f64>)>,
}

/// Why a request about quotas was refused, with Kafka's code and message.
pub type QuotaError = (ResponseError, String);
/// An entity's quota values by key.
pub type Values = BTreeMap<String, f64>;
/// An entity as the protocol names it: (type, name or None for the default) pairs.
pub type EntityNames = Vec<(String, Option<String>)>;
/// Changes to an entity's values: set, or (None) remove.
pub type Ops = Vec<(String, Option<f64>)>;
/// What AlterClientQuotas answers for one entity.
pub type AlterResult = (EntityNames, Result<(), QuotaError>);

/// A DescribeClientQuotas filter component: an entity type and what its name must be.
pub enum Match {
    /// Exactly this name.
    Exact(String),
    /// The default entity of the type.
    Default,
    /// Any entity that has the type.
    Specified,
}

/// Which quota applies to a request: the rate's identity (Kafka's metric tags) and bound.
struct Applied {
    user_tag: String,
    client_tag: String,
    bound: f64,
}

/// The broker's client quotas: the configured values, and the rates of the clients they
/// apply to.
///
/// It exists so that one owner holds the quotas: AlterClientQuotas writes through it (the
/// store, or ZooKeeper in a cluster) before a change applies, other brokers' changes come
/// in through [`Quotas::apply`], and Produce, Fetch and the connection read it on every
/// request, cheaply when no quota is set.
pub struct Quotas {
    configured: RwLock<HashMap<Entity, BTreeMap<String, f64>>>,
    /// Whether any user or client-id entity has a quota of each kind: without one, a request
    /// costs one atomic load.
    any: [AtomicBool; 4],
    /// Whether any IP has a connection_creation_rate (named or the default).
    any_ip: AtomicBool,
    /// The token buckets of controller_mutation_rate, by (user, client id) tags.
    buckets: Mutex<HashMap<(String, String), Bucket>>,
    /// The connection rates of IPs with a quota.
    ip_rates: Mutex<HashMap<std::net::IpAddr, Rate>>,
    rates: Mutex<HashMap<(Kind, String, String), Rate>>,
    records_since_sweep: AtomicU64,
    records: Arc<Records>,
}

/// Kafka's `TokenBucket`, the measure of controller_mutation_rate (KIP-599): it refills at
/// the quota per second up to a burst of all the windows' worth, and a mutation takes its
/// partitions out of it.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    last_ms: u64,
}

impl Bucket {
    fn refill(&mut self, bound: f64, now: u64) {
        let burst = rate::SAMPLES as f64 * rate::WINDOW_MS as f64 / 1000.0 * bound;
        let elapsed = now.saturating_sub(self.last_ms) as f64 / 1000.0;
        self.tokens = (self.tokens + bound * elapsed).min(burst);
        self.last_ms = now;
    }

    /// The time to bring a bucket below zero back to zero.
    fn throttle_ms(&self, bound: f64) -> u64 {
        if self.tokens >= 0.0 {
            0
        } else {
            (-self.tokens / bound * 1000.0).round().min(u32::MAX as f64) as u64
        }
    }
}

/// One admin request's controller_mutation_rate: Kafka's Strict (CreateTopics v6+,
/// CreatePartitions v3+, DeleteTopics v5+: a topic is refused with THROTTLING_QUOTA_EXCEEDED
/// while the quota is exhausted, but one that exhausts it passes) or Permissive (older
/// versions: everything passes, and the client is throttled) ControllerMutationQuota.
pub struct MutationQuota<'a> {
    quotas: &'a Quotas,
    strict: bool,
    /// The bucket's tags and the quota, when one applies.
    applied: Option<((String, String), f64)>,
    throttle_ms: u64,
}

impl MutationQuota<'_> {
    /// Takes `partitions` (created or deleted) out of the quota; Err with the throttle time
    /// if a strict quota is already exhausted (nothing is taken then).
    pub fn record(&mut self, partitions: f64) -> Result<(), u64> {
        let Some((tags, bound)) = &self.applied else {
            return Ok(());
        };
        let now = now_ms();
        let mut buckets = self
            .quotas
            .buckets
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let bucket = buckets.entry(tags.clone()).or_insert(Bucket {
            tokens: 0.0,
            last_ms: 0,
        });
        bucket.refill(*bound, now);
        if self.strict {
            let throttle = bucket.throttle_ms(*bound);
            if throttle > 0 {
                self.throttle_ms = throttle;
                return Err(throttle);
            }
            bucket.tokens -= partitions;
        } else {
            bucket.tokens -= partitions;
            self.throttle_ms = self.throttle_ms.max(bucket.throttle_ms(*bound));
        }
        Ok(())
    }

    /// How long the client must wait after this request.
    pub fn throttle_ms(&self) -> u64 {
        self.throttle_ms
    }
}

/// A rate nobody recorded into for this long is dropped (Kafka's sensor expiry).
const RATE_EXPIRY_MS: u64 = 3_600_000;
/// Rates are swept for expiry after this many records.
const SWEEP_EVERY: u64 = 4096;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The user a principal's quotas are kept under: its name without the `User:` type.
pub fn quota_user(principal: &str) -> &str {
    principal.strip_prefix("User:").unwrap_or(principal)
}

impl Quotas {
    /// The quotas in `loaded` (every security record, as `Records::load_all` read them).
    pub fn new(records: Arc<Records>, loaded: &[(Record, Vec<u8>)]) -> Quotas {
        let q = Quotas {
            configured: RwLock::new(HashMap::new()),
            any: Default::default(),
            any_ip: AtomicBool::new(false),
            ip_rates: Mutex::new(HashMap::new()),
            buckets: Mutex::new(HashMap::new()),
            rates: Mutex::new(HashMap::new()),
            records_since_sweep: AtomicU64::new(0),
            records,
        };
        q.apply(&Change::Reset(loaded.to_vec()));
        q
    }

    fn entity_of(record: &Record) -> Option<Entity> {
        match record {
            Record::User(name) => Some(Entity::user(Some(name))),
            Record::Config(rel) => Entity::of_config_path(rel),
            Record::Acls(_) | Record::Token(_) => None,
        }
    }

    /// Applies a change of the records: at start, after another broker's write, after one
    /// of ours.
    pub fn apply(&self, change: &Change) {
        let mut configured = self.configured.write().unwrap_or_else(|e| e.into_inner());
        match change {
            Change::Reset(all) => {
                configured.clear();
                for (r, v) in all {
                    if let Some(e) = Self::entity_of(r) {
                        let q = quotas_of(v);
                        if !q.is_empty() {
                            configured.insert(e, q);
                        }
                    }
                }
            }
            Change::One(r, v) => {
                if let Some(e) = Self::entity_of(r) {
                    let q = v.as_deref().map(quotas_of).unwrap_or_default();
                    if q.is_empty() {
                        configured.remove(&e);
                    } else {
                        configured.insert(e, q);
                    }
                }
            }
        }
        for kind in Kind::ALL {
            let any = configured
                .iter()
                .any(|(e, q)| e.ip.is_none() && q.contains_key(kind.key()));
            self.any[kind.index()].store(any, Ordering::Relaxed);
        }
        let any_ip = configured
            .iter()
            .any(|(e, q)| e.ip.is_some() && q.contains_key(CONNECTION_CREATION_RATE));
        self.any_ip.store(any_ip, Ordering::Relaxed);
    }

    /// Every configured entity and its quotas.
    pub fn all(&self) -> Vec<(Entity, BTreeMap<String, f64>)> {
        let configured = self.configured.read().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<_> = configured
            .iter()
            .map(|(e, q)| (e.clone(), q.clone()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// The quota of `kind` that applies to (user, client id), Kafka's `quotaMetricTags`
    /// and `quotaLimit` of its default callback.
    fn applied(&self, kind: Kind, user: &str, client: &str) -> Option<Applied> {
        let configured = self.configured.read().unwrap_or_else(|e| e.into_inner());
        let has = |e: &Entity| configured.get(e).and_then(|q| q.get(kind.key()).copied());
        let (u, c) = (Some(user), Some(client));
        let (user_tag, client_tag) = if has(&Entity::user_client(u, c)).is_some()
            || has(&Entity::user_client(u, None)).is_some()
        {
            (user, client)
        } else if has(&Entity::user(u)).is_some() {
            (user, "")
        } else if has(&Entity::user_client(None, c)).is_some()
            || has(&Entity::user_client(None, None)).is_some()
        {
            (user, client)
        } else if has(&Entity::user(None)).is_some() {
            (user, "")
        } else {
            ("", client)
        };
        let bound = if !user_tag.is_empty() && !client_tag.is_empty() {
            let (u, c) = (Some(user_tag), Some(client_tag));
            has(&Entity::user_client(u, c))
                .or_else(|| has(&Entity::user_client(u, None)))
                .or_else(|| has(&Entity::user_client(None, c)))
                .or_else(|| has(&Entity::user_client(None, None)))
        } else if !user_tag.is_empty() {
            has(&Entity::user(Some(user_tag))).or_else(|| has(&Entity::user(None)))
        } else if !client_tag.is_empty() {
            has(&Entity::client(Some(client_tag))).or_else(|| has(&Entity::client(None)))
        } else {
            None
        }?;
        Some(Applied {
            user_tag: user_tag.to_string(),
            client_tag: client_tag.to_string(),
            bound,
        })
    }

    /// Whether any quota of `kind` is set (if not, nothing needs recording).
    pub fn enabled(&self, kind: Kind) -> bool {
        self.any[kind.index()].load(Ordering::Relaxed)
    }

    /// Records `value` for the client and returns how long it must now wait, in ms (0:
    /// within its quota, or no quota applies). Kafka's `recordAndGetThrottleTimeMs`.
    pub fn record(&self, kind: Kind, principal: &str, client_id: &str, value: f64) -> u64 {
        self.record_at(kind, principal, client_id, value, now_ms(), false)
    }

    /// As [`Quotas::record`], but a value that would throttle is taken back: a throttled
    /// Fetch sends nothing, so what it would have sent does not count (Kafka's
    /// `unrecordQuotaSensor`).
    pub fn record_unless_throttled(
        &self,
        kind: Kind,
        principal: &str,
        client_id: &str,
        value: f64,
    ) -> u64 {
        self.record_at(kind, principal, client_id, value, now_ms(), true)
    }

    fn record_at(
        &self,
        kind: Kind,
        principal: &str,
        client_id: &str,
        value: f64,
        now: u64,
        take_back: bool,
    ) -> u64 {
        if !self.enabled(kind) {
            return 0;
        }
        let Some(applied) = self.applied(kind, quota_user(principal), client_id) else {
            return 0;
        };
        let mut rates = self.rates.lock().unwrap_or_else(|e| e.into_inner());
        if self.records_since_sweep.fetch_add(1, Ordering::Relaxed) >= SWEEP_EVERY {
            self.records_since_sweep.store(0, Ordering::Relaxed);
            rates.retain(|_, r| now.saturating_sub(r.last_record_ms) < RATE_EXPIRY_MS);
        }
        let rate = rates
            .entry((kind, applied.user_tag, applied.client_tag))
            .or_insert_with(|| Rate::new(now));
        rate.record(value, now);
        let mut throttle = rate.throttle_ms(applied.bound, now);
        if kind == Kind::Request {
            // Kafka's ClientRequestQuotaManager bounds its throttle by one window.
            throttle = throttle.min(rate::WINDOW_MS);
        }
        if throttle > 0 && take_back {
            rate.record(-value, now);
        }
        throttle
    }

    /// The controller_mutation_rate of one CreateTopics, CreatePartitions or DeleteTopics.
    pub fn controller_mutation(
        &self,
        principal: &str,
        client_id: &str,
        strict: bool,
    ) -> MutationQuota<'_> {
        let applied = self.enabled(Kind::ControllerMutation).then(|| {
            self.applied(Kind::ControllerMutation, quota_user(principal), client_id)
                .map(|a| ((a.user_tag, a.client_tag), a.bound))
        });
        MutationQuota {
            quotas: self,
            strict,
            applied: applied.flatten(),
            throttle_ms: 0,
        }
    }

    /// The connection_creation_rate that applies to `ip`: its own, else the default IP's.
    fn ip_quota(&self, ip: std::net::IpAddr) -> Option<f64> {
        let configured = self.configured.read().unwrap_or_else(|e| e.into_inner());
        let mut default = None;
        for (e, q) in configured.iter() {
            let (Some(name), Some(v)) = (&e.ip, q.get(CONNECTION_CREATION_RATE)) else {
                continue;
            };
            match name {
                // Names compare as addresses: `::1` and `0:0:0:0:0:0:0:1` are one IP.
                Some(n) if n.parse::<std::net::IpAddr>().ok() == Some(ip) => return Some(*v),
                Some(_) => {}
                None => default = Some(*v),
            }
        }
        default
    }

    /// A new connection from `ip`: 0 if its connection_creation_rate allows it, else how
    /// long to hold it before closing it unserved (Kafka's `recordIpConnectionMaybeThrottle`:
    /// a refused connection does not count, and the delay is at most one window).
    pub fn connection_throttle_ms(&self, ip: std::net::IpAddr) -> u64 {
        if !self.any_ip.load(Ordering::Relaxed) {
            return 0;
        }
        let Some(bound) = self.ip_quota(ip) else {
            return 0;
        };
        let now = now_ms();
        let mut rates = self.ip_rates.lock().unwrap_or_else(|e| e.into_inner());
        if rates.len() > 4096 {
            rates.retain(|_, r| now.saturating_sub(r.last_record_ms) < RATE_EXPIRY_MS);
        }
        let rate = rates.entry(ip).or_insert_with(|| Rate::new(now));
        rate.record(1.0, now);
        let throttle = rate.throttle_ms(bound, now).min(rate::WINDOW_MS);
        if throttle > 0 {
            rate.record(-1.0, now);
        }
        throttle
    }

    /// The most a client may fetch in one response without being throttled for certain
    /// (Kafka's `getMaxValueInQuotaWindow`): its quota over all windows but one.
    pub fn max_value_in_window(&self, kind: Kind, principal: &str, client_id: &str) -> Option<f64> {
        if !self.enabled(kind) {
            return None;
        }
        let applied = self.applied(kind, quota_user(principal), client_id)?;
        Some(applied.bound * (rate::SAMPLES as f64 - 1.0) * rate::WINDOW_MS as f64 / 1000.0)
    }

    /// DescribeClientQuotas: the entities the filter matches and their quotas, Kafka's
    /// `ClientQuotasImage.describe`.
    pub fn describe(
        &self,
        components: &[(String, Match)],
        strict: bool,
    ) -> Result<Vec<(Entity, Values)>, QuotaError> {
        let mut exact: HashMap<&str, Option<&str>> = HashMap::new();
        let mut specified: Vec<&str> = Vec::new();
        let invalid = |m: String| Err((ResponseError::InvalidRequest, m));
        for (ty, m) in components {
            if ty.is_empty() {
                return invalid("Invalid empty entity type.".into());
            }
            if exact.contains_key(ty.as_str()) || specified.contains(&ty.as_str()) {
                return invalid(format!(
                    "Entity type {ty} cannot appear more than once in the filter."
                ));
            }
            if ![USER, CLIENT_ID, IP].contains(&ty.as_str()) {
                return Err((
                    ResponseError::UnsupportedVersion,
                    format!("Unsupported entity type {ty}"),
                ));
            }
            match m {
                Match::Exact(name) => {
                    exact.insert(ty, Some(name));
                }
                Match::Default => {
                    exact.insert(ty, None);
                }
                Match::Specified => specified.push(ty),
            }
        }
        let mentions = |t: &str| exact.contains_key(t) || specified.contains(&t);
        if mentions(IP) && (mentions(USER) || mentions(CLIENT_ID)) {
            return invalid("Invalid entity filter component combination. IP filter component should not be used with user or clientId filter component.".into());
        }
        Ok(self
            .all()
            .into_iter()
            .filter(|(e, _)| {
                let entries = e.entries();
                if strict && entries.len() != exact.len() + specified.len() {
                    return false;
                }
                let get = |t: &str| entries.iter().find(|(et, _)| *et == t).map(|(_, n)| n);
                exact
                    .iter()
                    .all(|(t, want)| get(t).is_some_and(|n| n.as_deref() == *want))
                    && specified.iter().all(|t| get(t).is_some())
            })
            .collect())
    }

    /// Checks one alteration as Kafka's controller does; the entity it names if acceptable.
    fn validate(alt: &Alteration) -> Result<Entity, QuotaError> {
        let invalid = |m: String| Err((ResponseError::InvalidRequest, m));
        if alt.entity.is_empty() {
            return invalid("Invalid empty client quota entity".into());
        }
        let mut e = Entity::default();
        for (ty, name) in &alt.entity {
            let slot = match ty.as_str() {
                USER => &mut e.user,
                CLIENT_ID => &mut e.client_id,
                IP => &mut e.ip,
                other => return invalid(format!("Unhandled client quota entity type: {other}")),
            };
            if slot.is_some() {
                return invalid(format!(
                    "Invalid client quota entity, duplicate entity entry {ty}"
                ));
            }
            if name.as_deref() == Some("") {
                return invalid(format!("Empty {ty} not supported"));
            }
            *slot = Some(name.clone());
        }
        let keys = if let Some(ip) = &e.ip {
            if e.user.is_some() || e.client_id.is_some() {
                return invalid("Invalid quota entity combination, IP entity should not be combined with User or ClientId".into());
            }
            if let Some(ip) = ip {
                if ip.parse::<std::net::IpAddr>().is_err() {
                    return invalid(format!("{ip} is not a valid IP or resolvable host."));
                }
            }
            IP_KEYS
        } else {
            CLIENT_KEYS
        };
        let mut seen = std::collections::HashSet::new();
        for (key, value) in &alt.ops {
            if !seen.insert(key.as_str()) {
                return invalid(format!(
                    "Duplicate quota key {key} not updating quota for this entity"
                ));
            }
            let Some(value) = value else { continue };
            let Some((_, ty)) = keys.iter().find(|(k, _)| k == key) else {
                return invalid(format!("Invalid configuration key {key}"));
            };
            if value.is_nan() || *value <= 0.0 || value.is_infinite() {
                return invalid(format!("Quota {key} must be greater than 0"));
            }
            let (max, name) = match ty {
                ValueType::Double => continue,
                ValueType::Int => (i32::MAX as f64, "an INT"),
                ValueType::Long => (i64::MAX as f64, "a LONG"),
            };
            if *value > max {
                return invalid(format!("Proposed value for {key} is too large for {name}."));
            }
            if (value % 1.0).abs() > 1e-6 {
                return invalid(format!("{key} cannot be a fractional value."));
            }
        }
        Ok(e)
    }

    /// AlterClientQuotas: validates every alteration, then writes the accepted ones in one
    /// write (unless `validate_only`) before they apply. One result per distinct entity, in
    /// the order first named; an entity named twice is refused the second time.
    pub async fn alter(
        &self,
        alterations: Vec<Alteration>,
        validate_only: bool,
    ) -> Result<Vec<AlterResult>, RecordError> {
        let mut results: Vec<AlterResult> = Vec::new();
        let mut accepted: Vec<(Entity, Ops)> = Vec::new();
        for alt in alterations {
            let verdict = Self::validate(&alt);
            if let Some(pos) = results.iter().position(|(e, _)| *e == alt.entity) {
                let msg = "Ignoring duplicate entity".to_string();
                results[pos].1 = Err((ResponseError::InvalidRequest, msg));
                continue;
            }
            match verdict {
                Ok(e) => {
                    accepted.push((e, alt.ops));
                    results.push((alt.entity, Ok(())));
                }
                Err(err) => results.push((alt.entity, Err(err))),
            }
        }
        if validate_only || accepted.is_empty() {
            return Ok(results);
        }
        let mut records: Vec<Record> = accepted.iter().map(|(e, _)| e.record()).collect();
        records.sort();
        records.dedup();
        let changes: HashMap<Record, &Vec<(String, Option<f64>)>> =
            accepted.iter().map(|(e, ops)| (e.record(), ops)).collect();
        self.records
            .update(
                &records,
                |r, old| {
                    let mut quotas = old.map(quotas_of).unwrap_or_default();
                    if let Some(ops) = changes.get(r) {
                        for (k, v) in ops.iter() {
                            match v {
                                Some(v) => quotas.insert(k.clone(), *v),
                                None => quotas.remove(k),
                            };
                        }
                    }
                    if old.is_none() && quotas.is_empty() {
                        return None;
                    }
                    merge_quotas(old, &quotas)
                },
                |written| {
                    for (r, _, new) in written {
                        self.apply(&Change::One(r.clone(), new.clone()));
                    }
                },
            )
            .await?;
        for (e, _) in &accepted {
            tracing::info!(entity = ?e.entries(), "client quotas changed");
        }
        Ok(results)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quotas() -> (tempfile::TempDir, Quotas) {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::storage::Store::open(dir.path(), false).unwrap();
        (dir, Quotas::new(Arc::new(Records::local(store)), &[]))
    }

    fn alt(entity: &[(&str, Option<&str>)], ops: &[(&str, Option<f64>)]) -> Alteration {
        Alteration {
            entity: entity
                .iter()
                .map(|(t, n)| (t.to_string(), n.map(str::to_string)))
                .collect(),
            ops: ops.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        }
    }

    #[tokio::test]
    async fn the_most_specific_quota_applies_as_in_kip_55() {
        let (_dir, q) = quotas();
        let set = |e: &[(&str, Option<&str>)], v: f64| alt(e, &[("producer_byte_rate", Some(v))]);
        let r = q
            .alter(
                vec![
                    set(&[(CLIENT_ID, None)], 1.0),
                    set(&[(CLIENT_ID, Some("app"))], 2.0),
                    set(&[(USER, None)], 3.0),
                    set(&[(USER, None), (CLIENT_ID, None)], 4.0),
                    set(&[(USER, None), (CLIENT_ID, Some("app"))], 5.0),
                    set(&[(USER, Some("alice"))], 6.0),
                    set(&[(USER, Some("alice")), (CLIENT_ID, None)], 7.0),
                    set(&[(USER, Some("alice")), (CLIENT_ID, Some("app"))], 8.0),
                ],
                false,
            )
            .await
            .unwrap();
        assert!(r.iter().all(|(_, v)| v.is_ok()));
        let bound = |u: &str, c: &str| q.applied(Kind::Produce, u, c).map(|a| a.bound);
        assert_eq!(bound("alice", "app"), Some(8.0));
        assert_eq!(bound("alice", "other"), Some(7.0));
        assert_eq!(bound("bob", "app"), Some(5.0));
        assert_eq!(bound("bob", "other"), Some(4.0));
        assert_eq!(
            q.applied(Kind::Fetch, "alice", "app").map(|a| a.bound),
            None
        );
        // Removing the pair-level quotas leaves the user-level ones, whose rate every
        // client id of the user shares.
        q.alter(
            vec![
                alt(
                    &[(USER, Some("alice")), (CLIENT_ID, Some("app"))],
                    &[("producer_byte_rate", None)],
                ),
                alt(
                    &[(USER, Some("alice")), (CLIENT_ID, None)],
                    &[("producer_byte_rate", None)],
                ),
            ],
            false,
        )
        .await
        .unwrap();
        let a = q.applied(Kind::Produce, "alice", "app").unwrap();
        assert_eq!(
            (a.bound, a.user_tag.as_str(), a.client_tag.as_str()),
            (6.0, "alice", "")
        );
    }

    #[tokio::test]
    async fn validation_is_kafkas() {
        let (_dir, q) = quotas();
        let cases: Vec<(Alteration, &str)> = vec![
            (alt(&[], &[]), "Invalid empty client quota entity"),
            (
                alt(&[("group", Some("g"))], &[]),
                "Unhandled client quota entity type: group",
            ),
            (alt(&[(USER, Some(""))], &[]), "Empty user not supported"),
            (
                alt(&[(IP, Some("1.2.3.4")), (USER, Some("a"))], &[]),
                "IP entity should not",
            ),
            (alt(&[(IP, Some("not-an-ip"))], &[]), "not a valid IP"),
            (
                alt(
                    &[(IP, Some("1.2.3.4"))],
                    &[("producer_byte_rate", Some(1.0))],
                ),
                "Invalid configuration key",
            ),
            (
                alt(&[(USER, Some("a"))], &[("producer_byte_rate", Some(0.0))]),
                "must be greater than 0",
            ),
            (
                alt(&[(USER, Some("a"))], &[("producer_byte_rate", Some(1.5))]),
                "fractional",
            ),
            (
                alt(
                    &[(USER, Some("a"))],
                    &[
                        ("producer_byte_rate", Some(1.0)),
                        ("producer_byte_rate", Some(2.0)),
                    ],
                ),
                "Duplicate quota key",
            ),
        ];
        for (a, want) in cases {
            let r = q.alter(vec![a], false).await.unwrap();
            let err = r[0].1.as_ref().unwrap_err();
            assert_eq!(err.0, ResponseError::InvalidRequest);
            assert!(err.1.contains(want), "{} does not say {want}", err.1);
        }
        assert!(q.all().is_empty());
        let ok = alt(&[(USER, Some("a"))], &[("request_percentage", Some(12.5))]);
        assert!(q.alter(vec![ok], true).await.unwrap()[0].1.is_ok());
        assert!(q.all().is_empty(), "validate_only changed nothing");
    }

    #[test]
    fn config_paths_round_trip() {
        for e in [
            Entity::user(None),
            Entity::user_client(Some("a b"), Some("c/d")),
            Entity::user_client(None, Some("x")),
            Entity::client(None),
            Entity::client(Some("<default>")),
            Entity {
                ip: Some(Some("::1".into())),
                ..Entity::default()
            },
            Entity {
                ip: Some(None),
                ..Entity::default()
            },
        ] {
            let Record::Config(rel) = e.record() else {
                panic!("{e:?}")
            };
            assert_eq!(Entity::of_config_path(&rel), Some(e), "{rel}");
        }
        assert_eq!(
            Entity::user(Some("alice")).record(),
            Record::User("alice".into())
        );
    }

    #[test]
    fn a_users_quotas_keep_its_credentials() {
        let old = br#"{"version":1,"config":{"SCRAM-SHA-256":"salt=x","producer_byte_rate":"5"}}"#;
        let mut q = BTreeMap::new();
        q.insert("consumer_byte_rate".to_string(), 7.0);
        let merged = merge_quotas(Some(old), &q).unwrap();
        let rec: ConfigRecord = serde_json::from_slice(&merged).unwrap();
        assert_eq!(
            rec.config.get("SCRAM-SHA-256").map(String::as_str),
            Some("salt=x")
        );
        assert_eq!(
            rec.config.get("consumer_byte_rate").map(String::as_str),
            Some("7")
        );
        assert!(!rec.config.contains_key("producer_byte_rate"));
        assert_eq!(quotas_of(&merged).get("consumer_byte_rate"), Some(&7.0));
    }
}
