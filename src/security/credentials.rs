//! The SASL users: each user's salted SCRAM credentials, the one place SCRAM and PLAIN
//! check passwords against, persisted so that a user created once survives restarts.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use super::records::{Change, Record, RecordError, Records, Value};
use super::scram::{ScramCredential, ScramMechanism, DEFAULT_ITERATIONS};

/// Longest user name accepted (Kafka sets none; this keeps keys and log lines bounded).
pub const MAX_USER_NAME_BYTES: usize = 1024;

/// One user's credentials by mechanism.
pub type UserCredentials = BTreeMap<ScramMechanism, ScramCredential>;

/// Kafka's record of a user's configs, as ZooKeeper-mode Kafka wrote it under
/// `/config/users/<name>`: `{"version":1,"config":{"SCRAM-SHA-256":"salt=..,..."}}`. Other
/// configs in it (a user's quotas) are kept as they are when the credentials change.
#[derive(Serialize, Deserialize)]
struct UserRecord {
    version: i32,
    config: BTreeMap<String, String>,
}

/// Every SASL user and its credentials.
///
/// It exists so that one owner holds the users: the SASL exchanges read it, and the admin
/// APIs, the CLI and `--bootstrap-users` change it through the same methods, which write
/// the records (the store, or ZooKeeper in a cluster) before the change is visible here;
/// other brokers apply what ZooKeeper tells them through [`Credentials::apply`].
pub struct Credentials {
    users: RwLock<BTreeMap<String, UserCredentials>>,
    records: Arc<Records>,
}

/// Why a change to the users was refused.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("{0}")]
    Unacceptable(String),
    #[error("attempt to delete a user credential that does not exist")]
    NotFound,
    #[error(transparent)]
    Records(#[from] RecordError),
}

/// A user's record with its credentials replaced by `creds`, keeping its other configs;
/// None when nothing is left (the record goes).
fn merge_record(old: Option<&[u8]>, creds: &UserCredentials) -> Value {
    let mut config = old
        .and_then(|b| serde_json::from_slice::<UserRecord>(b).ok())
        .map(|r| r.config)
        .unwrap_or_default();
    config.retain(|k, _| ScramMechanism::from_name(k).is_none());
    for (m, c) in creds {
        config.insert(m.name().to_string(), c.to_kafka_string());
    }
    (!config.is_empty())
        .then(|| serde_json::to_vec(&UserRecord { version: 1, config }).unwrap_or_default())
}

/// Decodes a user's record; mechanisms it does not know are skipped.
pub fn decode_record(bytes: &[u8]) -> Option<UserCredentials> {
    let record: UserRecord = serde_json::from_slice(bytes).ok()?;
    Some(
        record
            .config
            .iter()
            .filter_map(|(m, c)| {
                Some((
                    ScramMechanism::from_name(m)?,
                    ScramCredential::from_kafka_string(c)?,
                ))
            })
            .collect(),
    )
}

/// A user's credentials from its record; an unreadable one counts as none, with a warning.
fn decode_or_warn(user: &str, bytes: Option<&[u8]>) -> UserCredentials {
    let Some(bytes) = bytes else {
        return UserCredentials::new();
    };
    decode_record(bytes).unwrap_or_else(|| {
        tracing::warn!(user = %user, "unreadable SASL user record skipped");
        UserCredentials::new()
    })
}

/// Checks a user name as Kafka's AlterUserScramCredentials does (non-empty), plus a length
/// bound.
pub fn validate_user_name(name: &str) -> Result<(), CredentialError> {
    if name.is_empty() {
        return Err(CredentialError::Unacceptable(
            "Username must not be empty".into(),
        ));
    }
    if name.len() > MAX_USER_NAME_BYTES {
        return Err(CredentialError::Unacceptable(format!(
            "Username is longer than {MAX_USER_NAME_BYTES} bytes"
        )));
    }
    Ok(())
}

impl Credentials {
    /// The users in `loaded` (every record, as [`Records::load_all`] read them).
    pub fn new(records: Arc<Records>, loaded: &[(Record, Vec<u8>)]) -> Credentials {
        let c = Credentials {
            users: RwLock::new(BTreeMap::new()),
            records,
        };
        c.apply(&Change::Reset(loaded.to_vec()));
        c
    }

    /// Applies what a follower of the records (another broker's write, in a cluster) says.
    pub fn apply(&self, change: &Change) {
        let mut users = self.users.write().unwrap_or_else(|e| e.into_inner());
        match change {
            Change::Reset(all) => {
                *users = all
                    .iter()
                    .filter_map(|(r, v)| match r {
                        Record::User(name) => Some((name.clone(), decode_or_warn(name, Some(v)))),
                        Record::Acls(_) | Record::Config(_) | Record::Token(_) => None,
                    })
                    .filter(|(_, c)| !c.is_empty())
                    .collect();
            }
            Change::One(Record::User(name), value) => {
                let creds = decode_or_warn(name, value.as_deref());
                if creds.is_empty() {
                    users.remove(name);
                } else {
                    users.insert(name.clone(), creds);
                }
            }
            Change::One(Record::Acls(_) | Record::Config(_) | Record::Token(_), _) => {}
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, UserCredentials>> {
        self.users.read().unwrap_or_else(|e| e.into_inner())
    }

    /// A user's credential for one mechanism.
    pub fn get(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential> {
        self.read().get(user)?.get(&mechanism).cloned()
    }

    /// Every user with the mechanisms and iterations of its credentials, by name.
    pub fn list(&self) -> Vec<(String, Vec<(ScramMechanism, u32)>)> {
        self.read()
            .iter()
            .map(|(u, c)| {
                (
                    u.clone(),
                    c.iter().map(|(m, c)| (*m, c.iterations)).collect(),
                )
            })
            .collect()
    }

    /// Whether any user exists (SASL/PLAIN with no users refuses everyone).
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// SASL/PLAIN: whether `password` is the user's, checked against its SCRAM credentials
    /// (SHA-512 when it has one). CPU work of `iterations` hashes: call it off the async
    /// workers.
    pub fn check_password(&self, user: &str, password: &[u8]) -> bool {
        let creds = self.read().get(user).cloned();
        let Some(creds) = creds else { return false };
        for m in [ScramMechanism::Sha512, ScramMechanism::Sha256] {
            if let Some(c) = creds.get(&m) {
                return c.matches_password(m, password);
            }
        }
        false
    }

    /// Changes the named users' credentials with `change` (from their current ones, as the
    /// records hold them) in one write, and puts the result in force here. Returns each
    /// user's credentials before and after.
    async fn change_users(
        &self,
        names: &[String],
        mut change: impl FnMut(&str, &mut UserCredentials),
    ) -> Result<Vec<(String, UserCredentials, UserCredentials)>, CredentialError> {
        let records: Vec<Record> = names.iter().cloned().map(Record::User).collect();
        let out = self
            .records
            .update(
                &records,
                |r, old| {
                    let Record::User(name) = r else {
                        return old.map(<[u8]>::to_vec);
                    };
                    let mut creds = decode_or_warn(name, old);
                    change(name, &mut creds);
                    merge_record(old, &creds)
                },
                |written| {
                    let mut out = Vec::with_capacity(written.len());
                    for (r, old, new) in written {
                        let Record::User(name) = r else { continue };
                        self.apply(&Change::One(r.clone(), new.clone()));
                        out.push((
                            name.clone(),
                            decode_or_warn(name, old.as_deref()),
                            decode_or_warn(name, new.as_deref()),
                        ));
                    }
                    out
                },
            )
            .await?;
        Ok(out)
    }

    /// Sets (creates or replaces) a user's credential for one mechanism, written before it
    /// is used.
    pub async fn upsert(
        &self,
        user: &str,
        mechanism: ScramMechanism,
        credential: ScramCredential,
    ) -> Result<(), CredentialError> {
        validate_user_name(user)?;
        self.change_users(&[user.to_string()], |_, c| {
            c.insert(mechanism, credential.clone());
        })
        .await?;
        Ok(())
    }

    /// Removes a user's credential for one mechanism (the user goes with its last one).
    pub async fn delete(
        &self,
        user: &str,
        mechanism: ScramMechanism,
    ) -> Result<(), CredentialError> {
        let changed = self
            .change_users(&[user.to_string()], |_, c| {
                c.remove(&mechanism);
            })
            .await?;
        match changed.first() {
            Some((_, before, _)) if before.contains_key(&mechanism) => Ok(()),
            _ => Err(CredentialError::NotFound),
        }
    }

    /// Applies deletions and upsertions (already validated) in one write, as
    /// AlterUserScramCredentials does: all of them or none.
    pub async fn alter(
        &self,
        deletions: &[(String, ScramMechanism)],
        upsertions: Vec<(String, ScramMechanism, ScramCredential)>,
    ) -> Result<(), CredentialError> {
        for (user, _, _) in &upsertions {
            validate_user_name(user)?;
        }
        let names: std::collections::BTreeSet<String> = deletions
            .iter()
            .map(|(u, _)| u.clone())
            .chain(upsertions.iter().map(|(u, _, _)| u.clone()))
            .collect();
        let names: Vec<String> = names.into_iter().collect();
        self.change_users(&names, |name, c| {
            for (_, m) in deletions.iter().filter(|(u, _)| u == name) {
                c.remove(m);
            }
            for (_, m, cred) in upsertions.iter().filter(|(u, _, _)| u == name) {
                c.insert(*m, cred.clone());
            }
        })
        .await?;
        Ok(())
    }

    /// Both SCRAM credentials of a password (CPU work: `iterations` hashes each).
    fn credentials_of(password: &str) -> Result<UserCredentials, CredentialError> {
        if password.is_empty() {
            return Err(CredentialError::Unacceptable(
                "Password must not be empty".into(),
            ));
        }
        Ok(ScramMechanism::ALL
            .into_iter()
            .map(|m| {
                (
                    m,
                    ScramCredential::new(m, password.as_bytes(), DEFAULT_ITERATIONS),
                )
            })
            .collect())
    }

    /// Creates (or replaces) a user with both SCRAM mechanisms from a password.
    pub async fn create_with_password(
        &self,
        user: &str,
        password: &str,
    ) -> Result<(), CredentialError> {
        validate_user_name(user)?;
        let creds = Self::credentials_of(password)?;
        self.change_users(&[user.to_string()], |_, c| c.extend(creds.clone()))
            .await?;
        Ok(())
    }

    /// Removes a user and all its credentials; false if there was none.
    pub async fn remove_user(&self, user: &str) -> Result<bool, CredentialError> {
        let changed = self
            .change_users(&[user.to_string()], |_, c| c.clear())
            .await?;
        Ok(changed
            .first()
            .is_some_and(|(_, before, _)| !before.is_empty()))
    }

    /// `--bootstrap-users name:password,...`: creates each user that does not exist yet,
    /// with SCRAM-SHA-256 and SCRAM-SHA-512 credentials; existing users are left as they
    /// are, so a password changed since is not reset by a restart (nor, in a cluster, by
    /// another broker starting with the same flag).
    pub async fn bootstrap(&self, spec: &str) -> Result<Vec<String>, CredentialError> {
        let mut created = Vec::new();
        for (user, password) in
            parse_bootstrap_users(spec).map_err(CredentialError::Unacceptable)?
        {
            if self.read().contains_key(&user) {
                continue;
            }
            validate_user_name(&user)?;
            let creds = Self::credentials_of(&password)?;
            let changed = self
                .change_users(std::slice::from_ref(&user), |_, c| {
                    if c.is_empty() {
                        c.extend(creds.clone());
                    }
                })
                .await?;
            if changed
                .first()
                .is_some_and(|(_, before, _)| before.is_empty())
            {
                created.push(user);
            }
        }
        Ok(created)
    }
}

/// `name:password,...`; a password may contain ':' (split at the first one).
pub fn parse_bootstrap_users(spec: &str) -> Result<Vec<(String, String)>, String> {
    spec.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|e| {
            let (u, p) = e.split_once(':').ok_or_else(|| {
                format!(
                    "--bootstrap-users entry {u:?}: expected NAME:PASSWORD",
                    u = e.split(':').next().unwrap_or("")
                )
            })?;
            if u.is_empty() || p.is_empty() {
                return Err("--bootstrap-users: empty user name or password".to_string());
            }
            Ok((u.to_string(), p.to_string()))
        })
        .collect()
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

    fn load(store: Arc<Store>) -> Credentials {
        let records = Arc::new(Records::local(store));
        let loaded = block_on(records.load_all()).unwrap();
        Credentials::new(records, &loaded)
    }

    #[test]
    fn users_persist_salted_and_check_passwords() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path(), false).unwrap();
            let c = load(store.clone());
            assert_eq!(
                block_on(c.bootstrap("alice:pw1, bob:p:w")).unwrap(),
                ["alice", "bob"]
            );
            assert!(c.check_password("bob", b"p:w"));
            assert!(!c.check_password("bob", b"p"));
            assert!(!c.check_password("carol", b"p"));
            // An existing user keeps its password across a second bootstrap.
            block_on(c.create_with_password("alice", "changed")).unwrap();
            assert!(block_on(c.bootstrap("alice:pw1")).unwrap().is_empty());
            assert!(c.check_password("alice", b"changed"));
            block_on(c.delete("bob", ScramMechanism::Sha256)).unwrap();
            assert!(matches!(
                block_on(c.delete("bob", ScramMechanism::Sha256)),
                Err(CredentialError::NotFound)
            ));
            // No password in the stored record.
            for (_, bytes) in store.users().unwrap() {
                let text = String::from_utf8(bytes).unwrap();
                assert!(!text.contains("changed") && !text.contains("p:w"), "{text}");
            }
            store.flush().unwrap();
        }
        let store = Store::open(dir.path(), false).unwrap();
        let c = load(store);
        assert!(c.check_password("alice", b"changed"));
        assert!(c.check_password("bob", b"p:w"), "bob keeps SCRAM-SHA-512");
        assert!(c.get("bob", ScramMechanism::Sha256).is_none());
        assert!(block_on(c.remove_user("bob")).unwrap());
        assert!(!block_on(c.remove_user("bob")).unwrap());
    }

    #[test]
    fn other_configs_in_a_user_record_are_kept() {
        let quota = br#"{"version":1,"config":{"producer_byte_rate":"1024"}}"#;
        let creds: UserCredentials = [(
            ScramMechanism::Sha256,
            ScramCredential::new(ScramMechanism::Sha256, b"pw", 4096),
        )]
        .into_iter()
        .collect();
        let merged = merge_record(Some(quota), &creds).unwrap();
        let text = String::from_utf8(merged.clone()).unwrap();
        assert!(
            text.contains("producer_byte_rate") && text.contains("SCRAM-SHA-256"),
            "{text}"
        );
        let emptied = merge_record(Some(&merged), &UserCredentials::new()).unwrap();
        assert_eq!(
            emptied,
            merge_record(Some(quota), &UserCredentials::new()).unwrap()
        );
        assert_eq!(merge_record(None, &UserCredentials::new()), None);
    }

    #[test]
    fn bad_bootstrap_specs_are_refused() {
        for bad in ["alice", ":pw", "alice:"] {
            assert!(parse_bootstrap_users(bad).is_err(), "{bad}");
        }
    }
}
