//! Kafka's ACL model and the authorizer that applies it.
//!
//! The rules are those of Kafka's `StandardAuthorizer`: super users may do anything; an ACL
//! applies to a resource when its LITERAL name equals the resource's, is the `*` wildcard,
//! or its PREFIXED name starts the resource's; among the ACLs that apply to the principal
//! (or `User:*`) and the client's host (or `*`), one DENY wins over every ALLOW; an ALLOW
//! of READ, WRITE, DELETE or ALTER implies DESCRIBE and one of ALTER_CONFIGS implies
//! DESCRIBE_CONFIGS (a DENY implies nothing); a resource no ACL applies to at all is
//! allowed only under `allow.everyone.if.no.acl.found`.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use super::records::{Change, Record, RecordError, Records, Value};

/// The one name Kafka gives the CLUSTER resource.
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// The wildcard resource name, principal and host.
pub const WILDCARD: &str = "*";

macro_rules! kafka_enum {
    ($(#[$doc:meta])* $name:ident { $($v:ident = $code:expr, $text:expr;)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name { $($v),* }

        impl $name {
            pub const ALL_VALUES: &'static [$name] = &[$($name::$v),*];

            /// The wire code.
            pub fn code(self) -> i8 {
                match self { $($name::$v => $code),* }
            }

            /// From a wire code; codes Kafka does not define are UNKNOWN.
            pub fn from_code(code: i8) -> $name {
                match code { $($code => $name::$v,)* _ => $name::Unknown }
            }

            /// Kafka's name (`TOPIC`, `PREFIXED`, `DESCRIBE_CONFIGS`, ...).
            pub fn name(self) -> &'static str {
                match self { $($name::$v => $text),* }
            }

            /// From Kafka's name, in any case; also accepts it without underscores
            /// (`DescribeConfigs`, as Kafka's CLI tools write operations).
            pub fn parse(s: &str) -> Option<$name> {
                let want: String = s.chars().filter(|c| *c != '_' && *c != '-').collect();
                Self::ALL_VALUES.iter().copied().find(|v| {
                    let n: String = v.name().chars().filter(|c| *c != '_').collect();
                    n.eq_ignore_ascii_case(&want)
                })
            }
        }
    };
}

kafka_enum!(
    /// What kind of thing an ACL protects.
    ResourceType {
        Unknown = 0, "UNKNOWN";
        Any = 1, "ANY";
        Topic = 2, "TOPIC";
        Group = 3, "GROUP";
        Cluster = 4, "CLUSTER";
        TransactionalId = 5, "TRANSACTIONAL_ID";
        DelegationToken = 6, "DELEGATION_TOKEN";
        User = 7, "USER";
    }
);

kafka_enum!(
    /// How an ACL's resource name is matched.
    PatternType {
        Unknown = 0, "UNKNOWN";
        Any = 1, "ANY";
        Match = 2, "MATCH";
        Literal = 3, "LITERAL";
        Prefixed = 4, "PREFIXED";
    }
);

kafka_enum!(
    /// What a principal does to a resource.
    Operation {
        Unknown = 0, "UNKNOWN";
        Any = 1, "ANY";
        All = 2, "ALL";
        Read = 3, "READ";
        Write = 4, "WRITE";
        Create = 5, "CREATE";
        Delete = 6, "DELETE";
        Alter = 7, "ALTER";
        Describe = 8, "DESCRIBE";
        ClusterAction = 9, "CLUSTER_ACTION";
        DescribeConfigs = 10, "DESCRIBE_CONFIGS";
        AlterConfigs = 11, "ALTER_CONFIGS";
        IdempotentWrite = 12, "IDEMPOTENT_WRITE";
        CreateTokens = 13, "CREATE_TOKENS";
        DescribeTokens = 14, "DESCRIBE_TOKENS";
    }
);

kafka_enum!(
    /// Whether an ACL grants or refuses.
    Permission {
        Unknown = 0, "UNKNOWN";
        Any = 1, "ANY";
        Deny = 2, "DENY";
        Allow = 3, "ALLOW";
    }
);

impl Operation {
    /// The operations a resource type has, for the `authorized_operations` bit sets
    /// (Kafka's `AclEntry.supportedOperations`).
    pub fn supported_by(rt: ResourceType) -> &'static [Operation] {
        use Operation::*;
        match rt {
            ResourceType::Topic => &[
                Read,
                Write,
                Create,
                Describe,
                Delete,
                Alter,
                DescribeConfigs,
                AlterConfigs,
            ],
            // Kafka 4.x: DESCRIBE_CONFIGS and ALTER_CONFIGS too, for group configs.
            ResourceType::Group => &[Read, Describe, Delete, DescribeConfigs, AlterConfigs],
            ResourceType::Cluster => &[
                Create,
                ClusterAction,
                DescribeConfigs,
                AlterConfigs,
                IdempotentWrite,
                Alter,
                Describe,
            ],
            ResourceType::TransactionalId => &[Describe, Write],
            ResourceType::DelegationToken => &[Describe],
            ResourceType::User => &[CreateTokens, DescribeTokens],
            _ => &[],
        }
    }
}

/// One ACL: a resource pattern and an access-control entry, as Kafka's `AclBinding`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Acl {
    pub resource_type: ResourceType,
    pub name: String,
    pub pattern: PatternType,
    pub principal: String,
    pub host: String,
    pub operation: Operation,
    pub permission: Permission,
}

/// A pattern that selects ACLs, as Kafka's `AclBindingFilter` (DescribeAcls, DeleteAcls).
#[derive(Debug, Clone)]
pub struct AclFilter {
    pub resource_type: ResourceType,
    pub name: Option<String>,
    pub pattern: PatternType,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Operation,
    pub permission: Permission,
}

impl AclFilter {
    /// A filter that matches every ACL.
    pub fn any() -> AclFilter {
        AclFilter {
            resource_type: ResourceType::Any,
            name: None,
            pattern: PatternType::Any,
            principal: None,
            host: None,
            operation: Operation::Any,
            permission: Permission::Any,
        }
    }

    /// Why Kafka refuses this filter (an UNKNOWN element), if it does.
    pub fn invalid(&self) -> Option<&'static str> {
        if self.resource_type == ResourceType::Unknown || self.pattern == PatternType::Unknown {
            Some("Unknown patternFilter.")
        } else if self.operation == Operation::Unknown || self.permission == Permission::Unknown {
            Some("Unknown entryFilter.")
        } else {
            None
        }
    }

    /// Kafka's `AclBindingFilter.matches`.
    pub fn matches(&self, acl: &Acl) -> bool {
        if self.resource_type != ResourceType::Any && self.resource_type != acl.resource_type {
            return false;
        }
        if !matches!(self.pattern, PatternType::Any | PatternType::Match)
            && self.pattern != acl.pattern
        {
            return false;
        }
        let name_ok = match &self.name {
            None => true,
            Some(n) if self.pattern == PatternType::Match => match acl.pattern {
                PatternType::Literal => *n == acl.name || acl.name == WILDCARD,
                PatternType::Prefixed => n.starts_with(&acl.name),
                _ => false,
            },
            Some(n) => *n == acl.name,
        };
        name_ok
            && self.principal.as_ref().is_none_or(|p| *p == acl.principal)
            && self.host.as_ref().is_none_or(|h| *h == acl.host)
            && (self.operation == Operation::Any || self.operation == acl.operation)
            && (self.permission == Permission::Any || self.permission == acl.permission)
    }
}

/// Why an ACL cannot be created (Kafka answers INVALID_REQUEST with this text).
pub fn validate_new(acl: &Acl) -> Result<(), String> {
    if matches!(acl.resource_type, ResourceType::Unknown | ResourceType::Any) {
        return Err(format!("Invalid resourceType {}", acl.resource_type.name()));
    }
    if !matches!(acl.pattern, PatternType::Literal | PatternType::Prefixed) {
        return Err(format!("Invalid patternType {}", acl.pattern.name()));
    }
    if matches!(acl.operation, Operation::Unknown | Operation::Any) {
        return Err(format!("Invalid operation {}", acl.operation.name()));
    }
    if !matches!(acl.permission, Permission::Allow | Permission::Deny) {
        return Err(format!("Invalid permissionType {}", acl.permission.name()));
    }
    if acl.resource_type == ResourceType::Cluster && acl.name != CLUSTER_NAME {
        return Err(format!(
            "The only valid name for the CLUSTER resource is {CLUSTER_NAME}"
        ));
    }
    if acl.name.is_empty() {
        return Err("Invalid empty resource name".into());
    }
    match acl.principal.split_once(':') {
        Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {}
        _ => {
            return Err(format!(
                "Could not parse principal from `{}` (no colon is present separating the principal type from the principal name)",
                acl.principal
            ))
        }
    }
    if acl.host.is_empty() {
        return Err("Invalid empty host".into());
    }
    Ok(())
}

/// Kafka's ZooKeeper form of the ACLs on one resource pattern, as ZooKeeper-mode Kafka
/// wrote them under `/kafka-acl/<type>/<name>`; the stored form here too.
#[derive(Serialize, Deserialize)]
struct AclRecord {
    version: i32,
    acls: Vec<AclEntryRecord>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AclEntryRecord {
    principal: String,
    permission_type: String,
    operation: String,
    host: String,
}

/// The store key of a resource pattern: `TYPE\0PATTERN\0NAME`.
fn pattern_key(rt: ResourceType, pattern: PatternType, name: &str) -> String {
    format!("{}\0{}\0{}", rt.name(), pattern.name(), name)
}

/// The resource pattern a record key names.
fn parse_key(key: &str) -> Option<(ResourceType, PatternType, &str)> {
    let mut parts = key.splitn(3, '\0');
    let rt = ResourceType::parse(parts.next()?)?;
    let pattern = PatternType::parse(parts.next()?)?;
    Some((rt, pattern, parts.next()?))
}

fn decode_record(key: &str, bytes: &[u8]) -> Option<Vec<Acl>> {
    let (rt, pattern, name) = parse_key(key)?;
    let name = name.to_string();
    let record: AclRecord = serde_json::from_slice(bytes).ok()?;
    record
        .acls
        .into_iter()
        .map(|e| {
            Some(Acl {
                resource_type: rt,
                name: name.clone(),
                pattern,
                principal: e.principal,
                host: e.host,
                operation: Operation::parse(&e.operation)?,
                permission: Permission::parse(&e.permission_type)?,
            })
        })
        .collect()
}

fn encode_record(acls: &[&Acl]) -> Vec<u8> {
    let record = AclRecord {
        version: 1,
        acls: acls
            .iter()
            .map(|a| AclEntryRecord {
                principal: a.principal.clone(),
                permission_type: title_case(a.permission.name()),
                operation: title_case(a.operation.name()),
                host: a.host.clone(),
            })
            .collect(),
    };
    serde_json::to_vec(&record).unwrap_or_default()
}

/// `DESCRIBE_CONFIGS` -> `DescribeConfigs`, as Kafka's ZooKeeper records spell them.
fn title_case(s: &str) -> String {
    s.split('_')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + &c.as_str().to_ascii_lowercase(),
                None => String::new(),
            }
        })
        .collect()
}

/// What the authorizer is configured with (`--authorizer`, `--super-users`,
/// `--allow-everyone-if-no-acl-found`).
#[derive(Debug, Clone, Default)]
pub struct AuthorizerConfig {
    pub enabled: bool,
    pub super_users: Vec<String>,
    pub allow_everyone_if_no_acl_found: bool,
}

/// Parses Kafka's `super.users`: principals separated by `;`.
pub fn parse_super_users(s: &str) -> Result<Vec<String>, String> {
    s.split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once(':') {
            Some((k, n)) if !k.is_empty() && !n.is_empty() => Ok(p.to_string()),
            _ => Err(format!(
                "super user {p:?} is not a principal (expected Type:name, e.g. User:admin)"
            )),
        })
        .collect()
}

/// Every ACL and the rules that apply them.
///
/// It exists so that one owner holds the ACLs: the request gate asks it, and CreateAcls,
/// DeleteAcls and the CLI change it through methods that write the records (the store, or
/// ZooKeeper in a cluster) before the change is in force here; other brokers apply what
/// ZooKeeper tells them through [`Authorizer::apply`].
pub struct Authorizer {
    config: AuthorizerConfig,
    acls: RwLock<AclSet>,
    records: Arc<Records>,
}

/// The ACLs, and the same ACLs by resource type and name: a check looks up the resource's
/// name, `*` and each of the name's prefixes instead of scanning every ACL.
#[derive(Default)]
struct AclSet {
    all: BTreeSet<Acl>,
    by_name: HashMap<ResourceType, HashMap<String, Vec<Acl>>>,
}

impl AclSet {
    fn new(all: BTreeSet<Acl>) -> AclSet {
        let mut by_name: HashMap<ResourceType, HashMap<String, Vec<Acl>>> = HashMap::new();
        for a in &all {
            by_name
                .entry(a.resource_type)
                .or_default()
                .entry(a.name.clone())
                .or_default()
                .push(a.clone());
        }
        AclSet { all, by_name }
    }

    /// The ACLs whose pattern covers the resource.
    fn applying(&self, rt: ResourceType, name: &str) -> Vec<&Acl> {
        let Some(names) = self.by_name.get(&rt) else {
            return Vec::new();
        };
        let mut out: Vec<&Acl> = Vec::new();
        if name != WILDCARD {
            if let Some(list) = names.get(WILDCARD) {
                out.extend(list.iter().filter(|a| a.pattern == PatternType::Literal));
            }
        }
        if let Some(list) = names.get(name) {
            out.extend(list.iter());
        }
        for (i, _) in name.char_indices().skip(1) {
            if let Some(list) = names.get(&name[..i]) {
                out.extend(list.iter().filter(|a| a.pattern == PatternType::Prefixed));
            }
        }
        out
    }
}

/// Why a change to the ACLs failed.
#[derive(Debug, thiserror::Error)]
pub enum AclError {
    #[error(transparent)]
    Records(#[from] RecordError),
}

impl Authorizer {
    /// The authorizer over `loaded` (every record, as [`Records::load_all`] read them); a
    /// record that does not decode is skipped with a warning rather than stopping the
    /// broker.
    pub fn new(
        records: Arc<Records>,
        config: AuthorizerConfig,
        loaded: &[(Record, Vec<u8>)],
    ) -> Authorizer {
        let mut acls = BTreeSet::new();
        for (record, bytes) in loaded {
            if let Record::Acls(key) = record {
                acls.extend(decode_or_warn(key, bytes));
            }
        }
        Authorizer {
            config,
            acls: RwLock::new(AclSet::new(acls)),
            records,
        }
    }

    /// Applies what a follower of the records (another broker's write, in a cluster) says.
    pub fn apply(&self, change: &Change) {
        let mut acls = self.acls.write().unwrap_or_else(|e| e.into_inner());
        let next = match change {
            Change::Reset(all) => all
                .iter()
                .filter_map(|(r, v)| match r {
                    Record::Acls(key) => Some(decode_or_warn(key, v)),
                    Record::User(_) | Record::Config(_) | Record::Token(_) => None,
                })
                .flatten()
                .collect(),
            Change::One(Record::Acls(key), value) => {
                let mut next = acls.all.clone();
                replace_pattern(&mut next, key, value.as_deref());
                next
            }
            Change::One(Record::User(_) | Record::Config(_) | Record::Token(_), _) => return,
        };
        *acls = AclSet::new(next);
    }

    /// Whether requests are checked at all (`--authorizer`).
    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    pub fn is_super_user(&self, principal: &str) -> bool {
        self.config.super_users.iter().any(|s| s == principal)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, AclSet> {
        self.acls.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `principal` connecting from `host` may do `op` on the named resource.
    pub fn authorize(
        &self,
        principal: &str,
        host: IpAddr,
        op: Operation,
        rt: ResourceType,
        name: &str,
    ) -> bool {
        if self.is_super_user(principal) {
            return true;
        }
        let host = host.to_string();
        let acls = self.read();
        let applying = acls.applying(rt, name);
        let any_for_resource = !applying.is_empty();
        let mut allowed = false;
        for acl in applying {
            match entry_result(acl, principal, &host, op) {
                Some(Permission::Deny) => return false,
                Some(Permission::Allow) => allowed = true,
                _ => {}
            }
        }
        allowed || (!any_for_resource && self.config.allow_everyone_if_no_acl_found)
    }

    /// Kafka's `authorizeByResourceType`: whether some resource of the type may be
    /// operated on — an ALLOW for the principal that no DENY on a covering pattern cancels
    /// (an idempotent producer may write if it may write to any topic).
    pub fn authorize_any(
        &self,
        principal: &str,
        host: IpAddr,
        op: Operation,
        rt: ResourceType,
    ) -> bool {
        if self.is_super_user(principal) {
            return true;
        }
        let host = host.to_string();
        let acls = self.read();
        let of_type: Vec<&Acl> = acls.all.iter().filter(|a| a.resource_type == rt).collect();
        let denied = |allow: &Acl| {
            of_type.iter().any(|d| {
                entry_result(d, principal, &host, op) == Some(Permission::Deny)
                    && match (d.pattern, allow.pattern) {
                        _ if d.name == WILDCARD && d.pattern == PatternType::Literal => true,
                        (PatternType::Literal, PatternType::Literal) => d.name == allow.name,
                        (PatternType::Prefixed, _) => allow.name.starts_with(&d.name),
                        _ => false,
                    }
            })
        };
        let any_allow = of_type.iter().any(|a| {
            entry_result(a, principal, &host, op) == Some(Permission::Allow) && !denied(a)
        });
        any_allow || (of_type.is_empty() && self.config.allow_everyone_if_no_acl_found)
    }

    /// Kafka's `authorized_operations` bit set for one resource.
    pub fn operations_bits(
        &self,
        principal: &str,
        host: IpAddr,
        rt: ResourceType,
        name: &str,
    ) -> i32 {
        Operation::supported_by(rt)
            .iter()
            .filter(|op| self.authorize(principal, host, **op, rt, name))
            .fold(0, |bits, op| bits | (1 << op.code()))
    }

    /// The ACLs a filter selects, in a stable order.
    pub fn list(&self, filter: &AclFilter) -> Vec<Acl> {
        self.read()
            .all
            .iter()
            .filter(|a| filter.matches(a))
            .cloned()
            .collect()
    }

    /// Adds ACLs (already validated), written before they are in force; adding one that
    /// exists changes nothing.
    pub async fn create(&self, new: &[Acl]) -> Result<(), AclError> {
        let keys: BTreeSet<String> = new.iter().map(key_of).collect();
        self.change_patterns(
            keys,
            |key, on| on.extend(new.iter().filter(|a| key_of(a) == key).cloned()),
            |_| (),
        )
        .await
    }

    /// Removes the ACLs each filter selects, in one write; returns them per filter.
    pub async fn delete(&self, filters: &[AclFilter]) -> Result<Vec<Vec<Acl>>, AclError> {
        let keys: BTreeSet<String> = self
            .read()
            .all
            .iter()
            .filter(|a| filters.iter().any(|f| f.matches(a)))
            .map(key_of)
            .collect();
        self.change_patterns(
            keys,
            |_, on| on.retain(|a| !filters.iter().any(|f| f.matches(a))),
            |written| {
                let mut removed = vec![Vec::new(); filters.len()];
                for (r, old, new) in written {
                    let Record::Acls(key) = r else { continue };
                    let decode = |v: &Value| v.as_deref().map(|b| decode_or_warn(key, b));
                    let before = decode(old).unwrap_or_default();
                    let after = decode(new).unwrap_or_default();
                    for a in before.difference(&after) {
                        for (i, f) in filters.iter().enumerate() {
                            if f.matches(a) {
                                removed[i].push(a.clone());
                            }
                        }
                    }
                }
                removed
            },
        )
        .await
    }

    /// Rewrites the records of the resource patterns `keys` with `edit` (from their
    /// current ACLs, as the records hold them), puts the result in force here, and returns
    /// what `summary` makes of the records' (old, new) values.
    async fn change_patterns<T>(
        &self,
        keys: BTreeSet<String>,
        mut edit: impl FnMut(&str, &mut BTreeSet<Acl>),
        summary: impl FnOnce(&[(Record, Value, Value)]) -> T,
    ) -> Result<T, AclError> {
        let records: Vec<Record> = keys.into_iter().map(Record::Acls).collect();
        let out = self
            .records
            .update(
                &records,
                |r, old| {
                    let Record::Acls(key) = r else {
                        return old.map(<[u8]>::to_vec);
                    };
                    let mut on = old.map(|b| decode_or_warn(key, b)).unwrap_or_default();
                    edit(key, &mut on);
                    encode_pattern(&on)
                },
                |written| {
                    self.apply_written(written);
                    summary(written)
                },
            )
            .await?;
        Ok(out)
    }

    /// Puts what was just written in force here.
    fn apply_written(&self, written: &[(Record, Value, Value)]) {
        let mut acls = self.acls.write().unwrap_or_else(|e| e.into_inner());
        let mut next = acls.all.clone();
        for (r, _, new) in written {
            if let Record::Acls(key) = r {
                replace_pattern(&mut next, key, new.as_deref());
            }
        }
        *acls = AclSet::new(next);
    }
}

/// The record key of an ACL's resource pattern.
fn key_of(a: &Acl) -> String {
    pattern_key(a.resource_type, a.pattern, &a.name)
}

/// A pattern's record, or None when no ACL is left on it (its record goes).
fn encode_pattern(on: &BTreeSet<Acl>) -> Value {
    (!on.is_empty()).then(|| encode_record(&on.iter().collect::<Vec<_>>()))
}

/// The ACLs of a record; an unreadable one counts as none, with a warning.
fn decode_or_warn(key: &str, bytes: &[u8]) -> BTreeSet<Acl> {
    match decode_record(key, bytes) {
        Some(list) => list.into_iter().collect(),
        None => {
            tracing::warn!(resource = %key.replace('\0', "/"), "unreadable ACL record skipped");
            BTreeSet::new()
        }
    }
}

/// Replaces every ACL on one resource pattern with those of its record.
fn replace_pattern(all: &mut BTreeSet<Acl>, key: &str, value: Option<&[u8]>) {
    if let Some((rt, pattern, name)) = parse_key(key) {
        all.retain(|a| !(a.resource_type == rt && a.pattern == pattern && a.name == name));
    }
    if let Some(bytes) = value {
        all.extend(decode_or_warn(key, bytes));
    }
}

/// What one ACL entry says about `op` for this principal and host, if it applies to them.
fn entry_result(acl: &Acl, principal: &str, host: &str, op: Operation) -> Option<Permission> {
    if acl.principal != principal && acl.principal != "User:*" {
        return None;
    }
    if acl.host != WILDCARD && acl.host != host {
        return None;
    }
    if acl.operation != Operation::All {
        let applies = if acl.permission == Permission::Allow {
            match op {
                Operation::Describe => matches!(
                    acl.operation,
                    Operation::Describe
                        | Operation::Read
                        | Operation::Write
                        | Operation::Delete
                        | Operation::Alter
                ),
                Operation::DescribeConfigs => matches!(
                    acl.operation,
                    Operation::DescribeConfigs | Operation::AlterConfigs
                ),
                _ => acl.operation == op,
            }
        } else {
            acl.operation == op
        };
        if !applies {
            return None;
        }
    }
    Some(acl.permission)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Store;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    fn load(store: Arc<Store>, config: AuthorizerConfig) -> Authorizer {
        let records = Arc::new(Records::local(store));
        let loaded = block_on(records.load_all()).unwrap();
        Authorizer::new(records, config, &loaded)
    }

    fn acl(
        rt: ResourceType,
        name: &str,
        pattern: PatternType,
        principal: &str,
        op: Operation,
        perm: Permission,
    ) -> Acl {
        Acl {
            resource_type: rt,
            name: name.into(),
            pattern,
            principal: principal.into(),
            host: WILDCARD.into(),
            operation: op,
            permission: perm,
        }
    }

    fn authorizer(acls: Vec<Acl>, allow_if_none: bool) -> Authorizer {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), false).unwrap();
        let az = load(
            store,
            AuthorizerConfig {
                enabled: true,
                super_users: vec!["User:admin".into()],
                allow_everyone_if_no_acl_found: allow_if_none,
            },
        );
        block_on(az.create(&acls)).unwrap();
        std::mem::forget(dir);
        az
    }

    const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn kafkas_rules() {
        use Operation::*;
        use PatternType::*;
        use Permission::*;
        use ResourceType::*;
        let az = authorizer(
            vec![
                acl(Topic, "orders", Literal, "User:alice", Read, Allow),
                acl(Topic, "pay-", Prefixed, "User:bob", Write, Allow),
                acl(Topic, "pay-secret", Literal, "User:bob", Write, Deny),
                acl(Topic, "*", Literal, "User:*", Describe, Allow),
                acl(Group, "g", Literal, "User:alice", All, Allow),
                acl(Topic, "logs", Literal, "User:carol", Read, Deny),
            ],
            false,
        );
        assert!(az.authorize("User:alice", LOCAL, Read, Topic, "orders"));
        assert!(!az.authorize("User:alice", LOCAL, Write, Topic, "orders"));
        assert!(az.authorize("User:bob", LOCAL, Write, Topic, "pay-in"));
        assert!(
            !az.authorize("User:bob", LOCAL, Write, Topic, "pay-secret"),
            "DENY wins"
        );
        assert!(!az.authorize("User:bob", LOCAL, Write, Topic, "orders"));
        // WRITE implies DESCRIBE; the wildcard gives DESCRIBE on every topic to everyone.
        assert!(az.authorize("User:bob", LOCAL, Describe, Topic, "pay-in"));
        assert!(az.authorize("User:nobody", LOCAL, Describe, Topic, "anything"));
        // A DENY of READ does not deny DESCRIBE.
        assert!(az.authorize("User:carol", LOCAL, Describe, Topic, "logs"));
        assert!(az.authorize("User:alice", LOCAL, Delete, Group, "g"));
        assert!(az.authorize("User:admin", LOCAL, Alter, Cluster, CLUSTER_NAME));
        // No ACL for the resource at all: denied unless allow.everyone.if.no.acl.found.
        assert!(!az.authorize("User:alice", LOCAL, Read, Group, "other"));
        let open = authorizer(
            vec![acl(Group, "g", Literal, "User:alice", Read, Allow)],
            true,
        );
        assert!(open.authorize("User:x", LOCAL, Read, Group, "other"));
        assert!(!open.authorize("User:x", LOCAL, Read, Group, "g"));
        // Any topic writable?
        assert!(az.authorize_any("User:bob", LOCAL, Write, Topic));
        assert!(!az.authorize_any("User:alice", LOCAL, Write, Topic));
        assert_eq!(
            az.operations_bits("User:alice", LOCAL, Topic, "orders"),
            (1 << Read.code()) | (1 << Describe.code())
        );
    }

    #[test]
    fn the_name_index_finds_every_covering_pattern() {
        use Operation::*;
        use PatternType::*;
        use Permission::*;
        use ResourceType::*;
        let az = authorizer(
            vec![
                acl(Topic, "a", Prefixed, "User:u", Read, Allow),
                acl(Topic, "ab", Prefixed, "User:u", Read, Deny),
                acl(Topic, "ab", Literal, "User:v", Read, Allow),
                acl(Topic, "*", Prefixed, "User:w", Read, Allow),
                acl(Topic, "ü", Prefixed, "User:x", Read, Allow),
            ],
            false,
        );
        assert!(az.authorize("User:u", LOCAL, Read, Topic, "ax"));
        assert!(
            !az.authorize("User:u", LOCAL, Read, Topic, "abc"),
            "the longer DENY applies"
        );
        assert!(az.authorize("User:v", LOCAL, Read, Topic, "ab"));
        assert!(
            !az.authorize("User:v", LOCAL, Read, Topic, "abc"),
            "a literal is no prefix"
        );
        assert!(
            !az.authorize("User:w", LOCAL, Read, Topic, "x"),
            "a prefixed * is literal text"
        );
        assert!(az.authorize("User:w", LOCAL, Read, Topic, "*x"));
        assert!(az.authorize("User:x", LOCAL, Read, Topic, "ümlaut"));
    }

    #[test]
    fn host_must_match_unless_wildcard() {
        let mut a = acl(
            ResourceType::Topic,
            "t",
            PatternType::Literal,
            "User:u",
            Operation::Read,
            Permission::Allow,
        );
        a.host = "10.0.0.1".into();
        let az = authorizer(vec![a], false);
        assert!(az.authorize(
            "User:u",
            "10.0.0.1".parse().unwrap(),
            Operation::Read,
            ResourceType::Topic,
            "t"
        ));
        assert!(!az.authorize("User:u", LOCAL, Operation::Read, ResourceType::Topic, "t"));
    }

    #[test]
    fn filters_match_as_kafkas() {
        let lit = acl(
            ResourceType::Topic,
            "foo",
            PatternType::Literal,
            "User:a",
            Operation::Read,
            Permission::Allow,
        );
        let pre = acl(
            ResourceType::Topic,
            "fo",
            PatternType::Prefixed,
            "User:a",
            Operation::Read,
            Permission::Allow,
        );
        let wild = acl(
            ResourceType::Topic,
            "*",
            PatternType::Literal,
            "User:a",
            Operation::Read,
            Permission::Allow,
        );
        let mut f = AclFilter::any();
        f.name = Some("foo".into());
        f.pattern = PatternType::Match;
        assert!(f.matches(&lit) && f.matches(&pre) && f.matches(&wild));
        f.pattern = PatternType::Any;
        assert!(f.matches(&lit) && !f.matches(&pre) && !f.matches(&wild));
        f.pattern = PatternType::Prefixed;
        assert!(!f.matches(&lit));
    }

    #[test]
    fn acls_survive_reload_in_kafkas_record_form() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), false).unwrap();
        let config = AuthorizerConfig {
            enabled: true,
            ..Default::default()
        };
        let az = load(store.clone(), config.clone());
        let a = acl(
            ResourceType::Group,
            "g",
            PatternType::Prefixed,
            "User:a",
            Operation::DescribeConfigs,
            Permission::Deny,
        );
        block_on(az.create(std::slice::from_ref(&a))).unwrap();
        let raw = store.acls().unwrap();
        let json = String::from_utf8(raw[0].1.clone()).unwrap();
        assert!(json.contains("\"operation\":\"DescribeConfigs\""), "{json}");
        assert!(json.contains("\"permissionType\":\"Deny\""), "{json}");
        let again = load(store.clone(), config.clone());
        assert_eq!(again.list(&AclFilter::any()), vec![a.clone()]);
        let removed = block_on(again.delete(&[AclFilter::any()])).unwrap();
        assert_eq!(removed, vec![vec![a.clone()]]);
        assert!(store.acls().unwrap().is_empty());
    }
}
