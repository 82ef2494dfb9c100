//! Where the security records live: the ACLs of each resource pattern and each SASL user's
//! credentials. A single node keeps them in its own store; in a cluster they live in
//! ZooKeeper, in ZooKeeper-mode Kafka's layout, so that every broker enforces the same
//! ACLs and accepts the same users, and a broker that joins or comes back reads them all.
//!
//! - ACLs, LITERAL: `/kafka-acl/<Type>/<name>`; PREFIXED:
//!   `/kafka-acl-extended/prefixed/<Type>/<name>`, each holding Kafka's JSON record of the
//!   entries on that pattern.
//! - Users: `/config/users/<name, URL-encoded as Kafka's Sanitizer does>`, holding Kafka's
//!   `{"version":1,"config":{"SCRAM-SHA-256":"salt=...,..."}}` (and the user's quotas).
//! - Other client-quota entities (`crate::quota`): `/config/users/<default>`,
//!   `/config/users/<user>/clients/<client-id>`, `/config/clients/<client-id>`,
//!   `/config/ips/<ip>`, in the same format.
//! - Group configs (`crate::group::config`): `/config/groups/<group, sanitized>`, same format.
//! - Delegation tokens (`super::tokens`): `/delegation_token/tokens/<token id>`, holding
//!   Kafka's JSON of the token's information (never its HMAC, which each broker derives).
//!
//! Brokers follow those trees with persistent recursive watches and re-read only the znode
//! an event names; after a lost session they read everything again. Kafka's change
//! notification znodes (`/kafka-acl-changes`, `/config/changes`,
//! `/delegation_token/token_changes`) are not written: no broker
//! here reads them, and writing them would need Kafka's purging as well.

use std::sync::Arc;
use std::time::Duration;

use zookeeper_client as zk;

use crate::cluster::Cluster;
use crate::storage::{Store, StoreError};

/// One security record's address, the same in both backings.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Record {
    /// The ACLs of one resource pattern, by the authorizer's key `TYPE\0PATTERN\0NAME`.
    Acls(String),
    /// One user's record, by user name: its credentials and its quotas.
    User(String),
    /// Another entity's config record (client quotas), by its path under `/config` with
    /// names sanitized: `users/<default>`, `users/U/clients/C`, `clients/C`, `ips/IP`,
    /// and group configs: `groups/G`.
    Config(String),
    /// One delegation token's information, by token id.
    Token(String),
}

/// A record as read: its bytes, or None if it does not exist.
pub type Value = Option<Vec<u8>>;

/// What a follower of the records is told.
pub enum Change {
    /// Every record, after a (re)connection: replace all that is held.
    Reset(Vec<(Record, Vec<u8>)>),
    /// One record changed or (None) went away.
    One(Record, Value),
}

/// Why reading or writing the records failed.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("ZooKeeper: {0}")]
    Zk(#[from] zk::Error),
    #[error("the records kept changing under the write; gave up after {0} attempts")]
    Contended(usize),
}

/// Where the records are kept.
enum Backing {
    Local(Arc<Store>),
    Zk(Arc<Cluster>),
}

/// The security records of this broker: its store on a single node, ZooKeeper in a cluster.
///
/// It exists so that the authorizer and the credentials write through one read-modify-write
/// that is safe against concurrent writers (other requests here, other brokers in a
/// cluster), without knowing which backing they have.
pub struct Records {
    backing: Backing,
    /// One writer at a time on this broker: the in-memory view is updated under it, so it
    /// never goes back to an older record than the store holds.
    writing: tokio::sync::Mutex<()>,
}

/// How many times a write is retried when another broker changed a record between the
/// read and the conditional write.
const MAX_ATTEMPTS: usize = 50;

/// Kafka's names of the resource types in ZooKeeper paths, by the authorizer's names.
const ZK_TYPES: &[(&str, &str)] = &[
    ("TOPIC", "Topic"),
    ("GROUP", "Group"),
    ("CLUSTER", "Cluster"),
    ("TRANSACTIONAL_ID", "TransactionalId"),
    ("DELEGATION_TOKEN", "DelegationToken"),
    ("USER", "User"),
];
const LITERAL_ROOT: &str = "/kafka-acl";
const EXTENDED_ROOT: &str = "/kafka-acl-extended";
const PREFIXED_ROOT: &str = "/kafka-acl-extended/prefixed";
const USERS_ROOT: &str = "/config/users";
const CONFIG_ROOT: &str = "/config";
const CLIENTS_ROOT: &str = "/config/clients";
const IPS_ROOT: &str = "/config/ips";
/// Group configs (`crate::group::config`), which ZooKeeper-mode Kafka never had.
const GROUPS_ROOT: &str = "/config/groups";
/// Delegation tokens, and the change notifications ZooKeeper-mode Kafka wrote beside them
/// (created as Kafka creates them, never written here).
const TOKENS_ROOT: &str = "/delegation_token/tokens";
const TOKEN_CHANGES_ROOT: &str = "/delegation_token/token_changes";
/// How ZooKeeper-mode Kafka names a default quota entity.
const DEFAULT_ENTITY: &str = "<default>";

impl Records {
    /// The records in this broker's own store.
    pub fn local(store: Arc<Store>) -> Records {
        Records {
            backing: Backing::Local(store),
            writing: tokio::sync::Mutex::new(()),
        }
    }

    /// The records in the cluster's ZooKeeper.
    pub fn zookeeper(cluster: Arc<Cluster>) -> Records {
        Records {
            backing: Backing::Zk(cluster),
            writing: tokio::sync::Mutex::new(()),
        }
    }

    /// Every record, as the owners load them at start.
    pub async fn load_all(&self) -> Result<Vec<(Record, Vec<u8>)>, RecordError> {
        match &self.backing {
            Backing::Local(store) => {
                let mut out: Vec<(Record, Vec<u8>)> = store
                    .acls()?
                    .into_iter()
                    .map(|(k, v)| (Record::Acls(k), v))
                    .collect();
                out.extend(
                    store
                        .users()?
                        .into_iter()
                        .map(|(k, v)| (Record::User(k), v)),
                );
                out.extend(
                    store
                        .entity_configs()?
                        .into_iter()
                        .map(|(k, v)| (Record::Config(k), v)),
                );
                out.extend(
                    store
                        .tokens()?
                        .into_iter()
                        .map(|(k, v)| (Record::Token(k), v)),
                );
                Ok(out)
            }
            Backing::Zk(cluster) => Ok(zk_load_all(&cluster.session()?).await?),
        }
    }

    /// Reads `records`, lets `change` compute each one's new value from its current one
    /// (None: delete it), writes all that changed at once, then calls `written` with every
    /// record's (old, new) value before another writer on this broker may start. In
    /// ZooKeeper the write is conditional on the versions read and is retried (bounded)
    /// when another broker wrote in between, so `change` may be called more than once.
    pub async fn update<T>(
        &self,
        records: &[Record],
        mut change: impl FnMut(&Record, Option<&[u8]>) -> Value,
        written: impl FnOnce(&[(Record, Value, Value)]) -> T,
    ) -> Result<T, RecordError> {
        let _writer = self.writing.lock().await;
        let result = match &self.backing {
            Backing::Local(store) => {
                let mut out = Vec::with_capacity(records.len());
                let mut wb = store.batch();
                let mut dirty = false;
                for r in records {
                    let old = match r {
                        Record::Acls(key) => store.acl_record(key)?,
                        Record::User(name) => store.user_record(name)?,
                        Record::Config(rel) => store.entity_config(rel)?,
                        Record::Token(id) => store.token_record(id)?,
                    };
                    let new = change(r, old.as_deref());
                    if new != old {
                        dirty = true;
                        match (r, &new) {
                            (Record::Acls(key), Some(v)) => wb.put_acls(key, v),
                            (Record::Acls(key), None) => wb.delete_acls(key),
                            (Record::User(name), Some(v)) => wb.put_user(name, v),
                            (Record::User(name), None) => wb.delete_user(name),
                            (Record::Config(rel), Some(v)) => wb.put_entity_config(rel, v),
                            (Record::Config(rel), None) => wb.delete_entity_config(rel),
                            (Record::Token(id), Some(v)) => wb.put_token(id, v),
                            (Record::Token(id), None) => wb.delete_token(id),
                        }
                    }
                    out.push((r.clone(), old, new));
                }
                if dirty {
                    store.write_synced(wb)?;
                }
                out
            }
            Backing::Zk(cluster) => zk_update(cluster, records, &mut change).await?,
        };
        Ok(written(&result))
    }

    /// In a cluster, follows the records in ZooKeeper until the broker stops, telling
    /// `sink` of every change; on a single node there is nothing to follow.
    pub fn follow(&self, sink: impl Fn(Change) + Send + Sync + 'static) {
        if let Backing::Zk(cluster) = &self.backing {
            tokio::spawn(follow(cluster.clone(), sink));
        }
    }
}

/// The znode of a record.
fn zk_path(record: &Record) -> Option<String> {
    match record {
        Record::User(name) => Some(format!("{USERS_ROOT}/{}", sanitize_name(name))),
        Record::Config(rel) => (!rel.is_empty()).then(|| format!("{CONFIG_ROOT}/{rel}")),
        Record::Token(id) => valid_token_id(id).then(|| format!("{TOKENS_ROOT}/{id}")),
        Record::Acls(key) => {
            let mut parts = key.splitn(3, '\0');
            let rt = parts.next()?;
            let pattern = parts.next()?;
            let name = parts.next()?;
            let (_, dir) = ZK_TYPES.iter().find(|(t, _)| *t == rt)?;
            let root = match pattern {
                "LITERAL" => LITERAL_ROOT,
                "PREFIXED" => PREFIXED_ROOT,
                _ => return None,
            };
            Some(format!("{root}/{dir}/{}", encode_acl_name(name)))
        }
    }
}

/// Whether a token id can name a znode as it is: Kafka's ids are URL-safe base64, and
/// anything else (a hand-made znode) is not a token of ours.
fn valid_token_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The record a znode holds, if it is one (not a directory or something else).
fn record_of_path(path: &str) -> Option<Record> {
    if let Some(id) = path
        .strip_prefix(TOKENS_ROOT)
        .and_then(|p| p.strip_prefix('/'))
    {
        return valid_token_id(id).then(|| Record::Token(id.to_string()));
    }
    if let Some(rest) = path
        .strip_prefix(USERS_ROOT)
        .and_then(|p| p.strip_prefix('/'))
    {
        let parts: Vec<&str> = rest.split('/').collect();
        return match parts.as_slice() {
            [name] if *name == DEFAULT_ENTITY => Some(Record::Config(format!("users/{name}"))),
            [name] if !name.is_empty() => Some(Record::User(unsanitize_name(name))),
            [u, "clients", c] if !u.is_empty() && !c.is_empty() => {
                Some(Record::Config(format!("users/{u}/clients/{c}")))
            }
            _ => None,
        };
    }
    for root in [CLIENTS_ROOT, IPS_ROOT, GROUPS_ROOT] {
        if let Some(name) = path.strip_prefix(root).and_then(|p| p.strip_prefix('/')) {
            return (!name.is_empty() && !name.contains('/'))
                .then(|| Record::Config(format!("{}/{name}", &root[CONFIG_ROOT.len() + 1..])));
        }
    }
    let (pattern, rest) = if let Some(rest) = path.strip_prefix(PREFIXED_ROOT) {
        ("PREFIXED", rest)
    } else if let Some(rest) = path.strip_prefix(LITERAL_ROOT) {
        ("LITERAL", rest)
    } else {
        return None;
    };
    let (dir, name) = rest.strip_prefix('/')?.split_once('/')?;
    if name.is_empty() || name.contains('/') {
        return None;
    }
    let (rt, _) = ZK_TYPES.iter().find(|(_, d)| *d == dir)?;
    Some(Record::Acls(format!(
        "{rt}\0{pattern}\0{}",
        decode_acl_name(name)
    )))
}

/// Kafka's `Sanitizer.sanitize` for user names and client ids in config paths: URL encoding
/// of every byte but ASCII letters, digits and `.-_~`.
pub fn sanitize_name(name: &str) -> String {
    percent_encode(name, |c| {
        c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '~')
    })
}

/// Undoes [`sanitize_name`].
pub fn unsanitize_name(s: &str) -> String {
    percent_decode(s).unwrap_or_else(|| s.to_string())
}

/// ACL resource names go into paths as Kafka wrote them (raw, so `*` stays `*`), except
/// what cannot be in a znode name: `/`, the characters ZooKeeper refuses, and `.`/`..`;
/// `%` is escaped too so that decoding is unambiguous.
fn encode_acl_name(name: &str) -> String {
    if name == "." || name == ".." {
        return name.replace('.', "%2E");
    }
    percent_encode(name, |c| {
        !(c == '/'
            || c == '%'
            || c < ' '
            || ('\u{7f}'..='\u{9f}').contains(&c)
            || ('\u{e000}'..='\u{f8ff}').contains(&c)
            || ('\u{fff0}'..='\u{ffff}').contains(&c))
    })
}

fn decode_acl_name(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    percent_decode(s).unwrap_or_else(|| s.to_string())
}

fn percent_encode(s: &str, keep: impl Fn(char) -> bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if keep(c) {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

/// Undoes `%XX` escapes; None if an escape is malformed or the bytes are not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn persistent() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

/// The directories the records go in, as Kafka creates them at start.
async fn zk_prepare(client: &zk::Client) -> Result<(), zk::Error> {
    let mut dirs = vec![
        USERS_ROOT.to_string(),
        CLIENTS_ROOT.to_string(),
        IPS_ROOT.to_string(),
        GROUPS_ROOT.to_string(),
        EXTENDED_ROOT.to_string(),
        TOKENS_ROOT.to_string(),
        TOKEN_CHANGES_ROOT.to_string(),
    ];
    for (_, dir) in ZK_TYPES {
        dirs.push(format!("{LITERAL_ROOT}/{dir}"));
        dirs.push(format!("{PREFIXED_ROOT}/{dir}"));
    }
    for d in dirs {
        match client.mkdir(&d, &persistent()).await {
            Ok(()) | Err(zk::Error::NodeExists) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads one record's znode: its bytes and version.
async fn zk_read(client: &zk::Client, path: &str) -> Result<Option<(Vec<u8>, i32)>, zk::Error> {
    match client.get_data(path).await {
        Ok((data, stat)) => Ok(Some((data, stat.version))),
        Err(zk::Error::NoNode) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Every record in ZooKeeper.
async fn zk_load_all(client: &zk::Client) -> Result<Vec<(Record, Vec<u8>)>, zk::Error> {
    zk_prepare(client).await?;
    let mut dirs = vec![
        USERS_ROOT.to_string(),
        CLIENTS_ROOT.to_string(),
        IPS_ROOT.to_string(),
        GROUPS_ROOT.to_string(),
        TOKENS_ROOT.to_string(),
    ];
    // A user's (user, client id) quotas sit below the user's own znode.
    if let Ok((users, _)) = client.get_children(USERS_ROOT).await {
        for u in users {
            let clients = format!("{USERS_ROOT}/{u}/clients");
            match client.get_children(&clients).await {
                Ok((c, _)) if !c.is_empty() => dirs.push(clients),
                Ok(_) | Err(zk::Error::NoNode) => {}
                Err(e) => return Err(e),
            }
        }
    }
    for (_, dir) in ZK_TYPES {
        dirs.push(format!("{LITERAL_ROOT}/{dir}"));
        dirs.push(format!("{PREFIXED_ROOT}/{dir}"));
    }
    let mut out = Vec::new();
    for dir in dirs {
        let (children, _) = match client.get_children(&dir).await {
            Ok(c) => c,
            Err(zk::Error::NoNode) => continue,
            Err(e) => return Err(e),
        };
        for child in children {
            let path = format!("{dir}/{child}");
            let Some(record) = record_of_path(&path) else {
                continue;
            };
            if let Some((data, _)) = zk_read(client, &path).await? {
                out.push((record, data));
            }
        }
    }
    Ok(out)
}

/// A config record with nothing in it, as a user's znode is left when only its (user,
/// client id) quotas below it remain.
const EMPTY_CONFIG: &[u8] = br#"{"version":1,"config":{}}"#;

/// The znodes a record's znode needs above it that [`zk_prepare`] does not make: a (user,
/// client id) record sits below its user's znode.
fn parents_of(record: &Record) -> Vec<(String, &'static [u8])> {
    let Record::Config(rel) = record else {
        return Vec::new();
    };
    let parts: Vec<&str> = rel.split('/').collect();
    match parts.as_slice() {
        ["users", u, "clients", _] => vec![
            (format!("{USERS_ROOT}/{u}"), EMPTY_CONFIG),
            (format!("{USERS_ROOT}/{u}/clients"), b"" as &[u8]),
        ],
        _ => Vec::new(),
    }
}

/// The read-modify-write of [`Records::update`] in ZooKeeper: one multi-op conditional on
/// every version read.
async fn zk_update(
    cluster: &Cluster,
    records: &[Record],
    change: &mut impl FnMut(&Record, Option<&[u8]>) -> Value,
) -> Result<Vec<(Record, Value, Value)>, RecordError> {
    let mut prepared = false;
    for _ in 0..MAX_ATTEMPTS {
        let client = cluster.session()?;
        let mut out = Vec::with_capacity(records.len());
        let mut multi = client.new_multi_writer();
        let mut ops = 0;
        // Znodes this write creates, so that two records under one parent create it once.
        let mut created = std::collections::HashSet::new();
        for r in records {
            let Some(path) = zk_path(r) else {
                tracing::warn!(record = ?r, "a security record with no ZooKeeper path skipped");
                continue;
            };
            let current = zk_read(&client, &path).await?;
            let old = current.as_ref().map(|(d, _)| d.clone());
            let new = change(r, old.as_deref());
            if new != old {
                ops += 1;
                match (&current, &new) {
                    (Some((_, version)), Some(v)) => {
                        multi.add_set_data(&path, v, Some(*version))?
                    }
                    (Some((_, version)), None) => {
                        // A user's znode holds its (user, client id) quotas below it: it
                        // is emptied, not deleted, while they exist (as Kafka leaves it).
                        let (children, _) = client.get_children(&path).await?;
                        if children.is_empty() {
                            multi.add_delete(&path, Some(*version))?
                        } else {
                            multi.add_set_data(&path, EMPTY_CONFIG, Some(*version))?
                        }
                    }
                    (None, Some(v)) => {
                        for (parent, data) in parents_of(r) {
                            if !created.contains(&parent)
                                && zk_read(&client, &parent).await?.is_none()
                            {
                                multi.add_create(&parent, data, &persistent())?;
                                created.insert(parent);
                            }
                        }
                        multi.add_create(&path, v, &persistent())?;
                        created.insert(path.clone());
                    }
                    (None, None) => {}
                }
            }
            out.push((r.clone(), old, new));
        }
        if ops == 0 {
            return Ok(out);
        }
        match multi.commit().await {
            Ok(_) => return Ok(out),
            // Another broker wrote in between: read again.
            Err(zk::MultiWriteError::OperationFailed {
                source: zk::Error::BadVersion | zk::Error::NodeExists,
                ..
            }) => continue,
            // A directory is missing (a fresh ZooKeeper, or one another tool emptied).
            Err(zk::MultiWriteError::OperationFailed {
                source: zk::Error::NoNode,
                ..
            }) if !prepared => {
                prepared = true;
                zk_prepare(&client).await?;
            }
            Err(zk::MultiWriteError::OperationFailed {
                source: zk::Error::NoNode,
                ..
            }) => continue,
            Err(e) => return Err(zk::Error::from(e).into()),
        }
    }
    Err(RecordError::Contended(MAX_ATTEMPTS))
}

/// Why following stopped for one connection.
enum Stopped {
    Broker,
    Session,
    Failed(zk::Error),
}

impl From<zk::Error> for Stopped {
    fn from(e: zk::Error) -> Self {
        Stopped::Failed(e)
    }
}

/// Follows the records in ZooKeeper for as long as the broker runs: each connection starts
/// with a full read (events may have been missed while it was away), then re-reads the
/// znode each event names.
async fn follow(cluster: Arc<Cluster>, sink: impl Fn(Change) + Send + Sync) {
    let mut stopped = cluster.stop_signal();
    let mut backoff = Duration::from_millis(100);
    loop {
        if *stopped.borrow() {
            return;
        }
        if let Ok(client) = cluster.session() {
            match follow_connected(&client, &sink, &mut stopped).await {
                Stopped::Broker => return,
                Stopped::Session => backoff = Duration::from_millis(100),
                Stopped::Failed(e) => {
                    tracing::warn!(error = %e, "ZooKeeper: cannot follow the ACLs and users; retrying");
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stopped.wait_for(|v| *v) => return,
        }
    }
}

async fn follow_connected(
    client: &zk::Client,
    sink: &(impl Fn(Change) + Send + Sync),
    stopped: &mut tokio::sync::watch::Receiver<bool>,
) -> Stopped {
    match follow_events(client, sink, stopped).await {
        Ok(s) | Err(s) => s,
    }
}

async fn follow_events(
    client: &zk::Client,
    sink: &(impl Fn(Change) + Send + Sync),
    stopped: &mut tokio::sync::watch::Receiver<bool>,
) -> Result<Stopped, Stopped> {
    let mut state = client.state_watcher();
    if !matches!(
        state.peek_state(),
        zk::SessionState::SyncConnected | zk::SessionState::ConnectedReadOnly
    ) {
        return Err(Stopped::Session);
    }
    zk_prepare(client).await?;
    // Watches before the read they guard, so that no change falls between.
    let mut literal = client
        .watch(LITERAL_ROOT, zk::AddWatchMode::PersistentRecursive)
        .await?;
    let mut extended = client
        .watch(EXTENDED_ROOT, zk::AddWatchMode::PersistentRecursive)
        .await?;
    let mut users = client
        .watch(USERS_ROOT, zk::AddWatchMode::PersistentRecursive)
        .await?;
    let mut clients = client
        .watch(CLIENTS_ROOT, zk::AddWatchMode::PersistentRecursive)
        .await?;
    let mut ips = client
        .watch(IPS_ROOT, zk::AddWatchMode::PersistentRecursive)
        .await?;
    let mut groups = client
        .watch(GROUPS_ROOT, zk::AddWatchMode::PersistentRecursive)
        .await?;
    let mut tokens = client
        .watch(TOKENS_ROOT, zk::AddWatchMode::PersistentRecursive)
        .await?;
    sink(Change::Reset(zk_load_all(client).await?));
    loop {
        let event = tokio::select! {
            e = literal.changed() => e,
            e = extended.changed() => e,
            e = users.changed() => e,
            e = clients.changed() => e,
            e = ips.changed() => e,
            e = groups.changed() => e,
            e = tokens.changed() => e,
            _ = state.changed() => return Err(Stopped::Session),
            _ = stopped.wait_for(|v| *v) => return Ok(Stopped::Broker),
        };
        if event.event_type == zk::EventType::Session {
            match event.session_state {
                zk::SessionState::SyncConnected | zk::SessionState::ConnectedReadOnly => continue,
                _ => return Err(Stopped::Session),
            }
        }
        let Some(record) = record_of_path(&event.path) else {
            continue;
        };
        let Some(path) = zk_path(&record) else {
            continue;
        };
        let value = zk_read(client, &path).await?.map(|(d, _)| d);
        sink(Change::One(record, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_kafkas_and_round_trip() {
        let cases = [
            (
                Record::Acls("TOPIC\0LITERAL\0orders".into()),
                "/kafka-acl/Topic/orders",
            ),
            (
                Record::Acls("TOPIC\0LITERAL\0*".into()),
                "/kafka-acl/Topic/*",
            ),
            (
                Record::Acls("TRANSACTIONAL_ID\0PREFIXED\0tx-".into()),
                "/kafka-acl-extended/prefixed/TransactionalId/tx-",
            ),
            (
                Record::Acls("GROUP\0LITERAL\0a/b%c".into()),
                "/kafka-acl/Group/a%2Fb%25c",
            ),
            (
                Record::Acls("GROUP\0LITERAL\0..".into()),
                "/kafka-acl/Group/%2E%2E",
            ),
            (Record::User("alice".into()), "/config/users/alice"),
            (
                Record::User("CN=bob, O=x*".into()),
                "/config/users/CN%3Dbob%2C%20O%3Dx%2A",
            ),
        ];
        for (record, path) in cases {
            assert_eq!(zk_path(&record).as_deref(), Some(path));
            assert_eq!(record_of_path(path), Some(record));
        }
        assert_eq!(record_of_path("/kafka-acl/Topic"), None);
        assert_eq!(record_of_path("/kafka-acl-extended/prefixed"), None);
        assert_eq!(record_of_path("/kafka-acl/Nothing/x"), None);
        assert_eq!(record_of_path("/config/users"), None);
        for rel in [
            "users/<default>",
            "users/a%20b/clients/c",
            "users/<default>/clients/<default>",
            "clients/x",
            "ips/127.0.0.1",
            "ips/<default>",
            "groups/share%20group",
        ] {
            let r = Record::Config(rel.to_string());
            let path = zk_path(&r).unwrap();
            assert_eq!(path, format!("/config/{rel}"));
            assert_eq!(record_of_path(&path), Some(r));
        }
        assert_eq!(record_of_path("/config/users/a/clients"), None);
        assert_eq!(record_of_path("/config/topics/x"), None);
        assert_eq!(record_of_path("/config/topics/t"), None);
        let token = Record::Token("Tg4v-Zx_QqOe3lXhS0bS6w".into());
        assert_eq!(
            zk_path(&token).as_deref(),
            Some("/delegation_token/tokens/Tg4v-Zx_QqOe3lXhS0bS6w")
        );
        assert_eq!(
            record_of_path("/delegation_token/tokens/Tg4v-Zx_QqOe3lXhS0bS6w"),
            Some(token)
        );
        assert_eq!(record_of_path("/delegation_token/tokens"), None);
        assert_eq!(record_of_path("/delegation_token/tokens/a/b"), None);
        assert_eq!(zk_path(&Record::Token("../x".into())), None);
    }
}
