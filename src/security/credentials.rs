//! The SASL users: each user's salted SCRAM credentials, the one place SCRAM and PLAIN
//! check passwords against, persisted so that a user created once survives restarts.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use super::scram::{ScramCredential, ScramMechanism, DEFAULT_ITERATIONS};
use crate::storage::{Store, StoreError};

/// Longest user name accepted (Kafka sets none; this keeps keys and log lines bounded).
pub const MAX_USER_NAME_BYTES: usize = 1024;

/// One user's credentials by mechanism.
pub type UserCredentials = BTreeMap<ScramMechanism, ScramCredential>;

/// Kafka's record of a user's SCRAM credentials, as ZooKeeper-mode Kafka wrote it under
/// `/config/users/<name>`: `{"version":1,"config":{"SCRAM-SHA-256":"salt=..,..."}}`.
#[derive(Serialize, Deserialize)]
struct UserRecord {
    version: i32,
    config: BTreeMap<String, String>,
}

/// Every SASL user and its credentials.
///
/// It exists so that one owner holds the users: the SASL exchanges read it, and the admin
/// APIs, the CLI and `--bootstrap-users` change it through the same methods, which write
/// the store before the change is visible.
pub struct Credentials {
    users: RwLock<BTreeMap<String, UserCredentials>>,
    store: Arc<Store>,
}

/// Why a change to the users was refused.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("{0}")]
    Unacceptable(String),
    #[error("attempt to delete a user credential that does not exist")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Encodes a user's credentials in Kafka's record form.
pub fn encode_record(creds: &UserCredentials) -> Vec<u8> {
    let record = UserRecord {
        version: 1,
        config: creds
            .iter()
            .map(|(m, c)| (m.name().to_string(), c.to_kafka_string()))
            .collect(),
    };
    serde_json::to_vec(&record).unwrap_or_default()
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
    /// Loads every user from the store; a record that does not decode is skipped with a
    /// warning rather than stopping the broker.
    pub fn load(store: Arc<Store>) -> Result<Credentials, StoreError> {
        let mut users = BTreeMap::new();
        for (name, bytes) in store.users()? {
            match decode_record(&bytes) {
                Some(c) if !c.is_empty() => {
                    users.insert(name, c);
                }
                Some(_) => {}
                None => tracing::warn!(user = %name, "unreadable SASL user record skipped"),
            }
        }
        Ok(Credentials {
            users: RwLock::new(users),
            store,
        })
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

    /// Sets (creates or replaces) a user's credential for one mechanism, written to the
    /// store before it is used.
    pub fn upsert(
        &self,
        user: &str,
        mechanism: ScramMechanism,
        credential: ScramCredential,
    ) -> Result<(), CredentialError> {
        validate_user_name(user)?;
        let mut users = self.users.write().unwrap_or_else(|e| e.into_inner());
        let mut next = users.get(user).cloned().unwrap_or_default();
        next.insert(mechanism, credential);
        let mut wb = self.store.batch();
        wb.put_user(user, &encode_record(&next));
        self.store.write_synced(wb)?;
        users.insert(user.to_string(), next);
        Ok(())
    }

    /// Removes a user's credential for one mechanism (the user goes with its last one).
    pub fn delete(&self, user: &str, mechanism: ScramMechanism) -> Result<(), CredentialError> {
        let mut users = self.users.write().unwrap_or_else(|e| e.into_inner());
        let mut next = users.get(user).cloned().ok_or(CredentialError::NotFound)?;
        if next.remove(&mechanism).is_none() {
            return Err(CredentialError::NotFound);
        }
        let mut wb = self.store.batch();
        if next.is_empty() {
            wb.delete_user(user);
        } else {
            wb.put_user(user, &encode_record(&next));
        }
        self.store.write_synced(wb)?;
        if next.is_empty() {
            users.remove(user);
        } else {
            users.insert(user.to_string(), next);
        }
        Ok(())
    }

    /// Applies deletions and upsertions (already validated) in one synced write, as
    /// AlterUserScramCredentials does: all of them or none.
    pub fn alter(
        &self,
        deletions: &[(String, ScramMechanism)],
        upsertions: Vec<(String, ScramMechanism, ScramCredential)>,
    ) -> Result<(), CredentialError> {
        let mut users = self.users.write().unwrap_or_else(|e| e.into_inner());
        let mut changed: BTreeMap<String, UserCredentials> = BTreeMap::new();
        for (user, m) in deletions {
            let entry = changed
                .entry(user.clone())
                .or_insert_with(|| users.get(user).cloned().unwrap_or_default());
            entry.remove(m);
        }
        for (user, m, c) in upsertions {
            validate_user_name(&user)?;
            let entry = changed
                .entry(user.clone())
                .or_insert_with(|| users.get(&user).cloned().unwrap_or_default());
            entry.insert(m, c);
        }
        let mut wb = self.store.batch();
        for (user, creds) in &changed {
            if creds.is_empty() {
                wb.delete_user(user);
            } else {
                wb.put_user(user, &encode_record(creds));
            }
        }
        self.store.write_synced(wb)?;
        for (user, creds) in changed {
            if creds.is_empty() {
                users.remove(&user);
            } else {
                users.insert(user, creds);
            }
        }
        Ok(())
    }

    /// Creates a user with both SCRAM mechanisms from a password.
    pub fn create_with_password(&self, user: &str, password: &str) -> Result<(), CredentialError> {
        if password.is_empty() {
            return Err(CredentialError::Unacceptable(
                "Password must not be empty".into(),
            ));
        }
        for m in ScramMechanism::ALL {
            self.upsert(
                user,
                m,
                ScramCredential::new(m, password.as_bytes(), DEFAULT_ITERATIONS),
            )?;
        }
        Ok(())
    }

    /// Removes a user and all its credentials; false if there was none.
    pub fn remove_user(&self, user: &str) -> Result<bool, CredentialError> {
        let mut users = self.users.write().unwrap_or_else(|e| e.into_inner());
        if !users.contains_key(user) {
            return Ok(false);
        }
        let mut wb = self.store.batch();
        wb.delete_user(user);
        self.store.write_synced(wb)?;
        users.remove(user);
        Ok(true)
    }

    /// `--bootstrap-users name:password,...`: creates each user that does not exist yet,
    /// with SCRAM-SHA-256 and SCRAM-SHA-512 credentials; existing users are left as they
    /// are, so a password changed since is not reset by a restart.
    pub fn bootstrap(&self, spec: &str) -> Result<Vec<String>, CredentialError> {
        let mut created = Vec::new();
        for entry in parse_bootstrap_users(spec).map_err(CredentialError::Unacceptable)? {
            let (user, password) = entry;
            if self.read().contains_key(&user) {
                continue;
            }
            self.create_with_password(&user, &password)?;
            created.push(user);
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

    #[test]
    fn users_persist_salted_and_check_passwords() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path(), false).unwrap();
            let c = Credentials::load(store.clone()).unwrap();
            assert_eq!(c.bootstrap("alice:pw1, bob:p:w").unwrap(), ["alice", "bob"]);
            assert!(c.check_password("bob", b"p:w"));
            assert!(!c.check_password("bob", b"p"));
            assert!(!c.check_password("carol", b"p"));
            // An existing user keeps its password across a second bootstrap.
            c.create_with_password("alice", "changed").unwrap();
            assert!(c.bootstrap("alice:pw1").unwrap().is_empty());
            assert!(c.check_password("alice", b"changed"));
            c.delete("bob", ScramMechanism::Sha256).unwrap();
            assert!(matches!(
                c.delete("bob", ScramMechanism::Sha256),
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
        let c = Credentials::load(store).unwrap();
        assert!(c.check_password("alice", b"changed"));
        assert!(c.check_password("bob", b"p:w"), "bob keeps SCRAM-SHA-512");
        assert!(c.get("bob", ScramMechanism::Sha256).is_none());
        assert!(c.remove_user("bob").unwrap());
        assert!(!c.remove_user("bob").unwrap());
    }

    #[test]
    fn bad_bootstrap_specs_are_refused() {
        for bad in ["alice", ":pw", "alice:"] {
            assert!(parse_bootstrap_users(bad).is_err(), "{bad}");
        }
    }
}
