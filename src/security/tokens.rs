//! Delegation tokens (KIP-48): short-lived credentials a user authenticated some other way
//! hands to a job, which logs in with SCRAM as that user. A token's password is its HMAC,
//! HMAC-SHA512 of its id under `delegation.token.secret.key`, so only its information is
//! stored (Kafka's JSON, in the store or in ZooKeeper as `/delegation_token/tokens/<id>`)
//! and every broker with the same secret derives the same password and accepts the token.
//!
//! The rules (who may renew, the lifetimes, the order of the checks and their error codes)
//! are Kafka 4.4's: the handlers in `crate::api::delegation_tokens` check the channel and
//! the ACLs, this module everything that needs the tokens.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock, RwLock};

use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha512;

use super::records::{sanitize_name, unsanitize_name, Change, Record, RecordError, Records};
use super::scram::{ScramCredential, ScramMechanism, MIN_ITERATIONS};

/// The length of a token's HMAC (SHA-512).
pub const HMAC_BYTES: usize = 64;

/// A token's HMAC, which is also its password (base64-encoded).
pub type TokenHmac = [u8; HMAC_BYTES];

/// What is known of a token, as Kafka's `TokenInformation` holds it. Principals are
/// `Type:Name` strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub id: String,
    pub owner: String,
    pub requester: String,
    pub renewers: Vec<String>,
    pub issue_ms: i64,
    pub max_ms: i64,
    pub expiry_ms: i64,
}

impl TokenInfo {
    /// Expired (or past its maximum lifetime) but perhaps not yet swept away.
    pub fn expired(&self, now_ms: i64) -> bool {
        self.max_ms < now_ms || self.expiry_ms < now_ms
    }

    /// Whether `principal` may renew or expire the token.
    fn owner_or_renewer(&self, principal: &str) -> bool {
        self.owner == principal || self.renewers.iter().any(|r| r == principal)
    }

    /// Whether the token concerns `principal` (Kafka's `ownerOrRenewer`, which counts the
    /// requester too): DescribeDelegationToken's filter and its implicit permission.
    pub fn concerns(&self, principal: &str) -> bool {
        self.requester == principal || self.owner_or_renewer(principal)
    }

    /// Kafka's ZooKeeper JSON of a token (version 3, principals sanitized).
    pub fn to_json(&self) -> Vec<u8> {
        let record = TokenJson {
            version: 3,
            owner: sanitize_name(&self.owner),
            token_requester: Some(sanitize_name(&self.requester)),
            renewers: self.renewers.iter().map(|r| sanitize_name(r)).collect(),
            issue_timestamp: self.issue_ms,
            max_timestamp: self.max_ms,
            expiry_timestamp: self.expiry_ms,
            token_id: self.id.clone(),
        };
        serde_json::to_vec(&record).unwrap_or_default()
    }

    /// Reads Kafka's JSON (versions 1 to 3; before 3 the requester is the owner).
    pub fn from_json(bytes: &[u8]) -> Option<TokenInfo> {
        let r: TokenJson = serde_json::from_slice(bytes).ok()?;
        if !(1..=3).contains(&r.version) {
            return None;
        }
        let owner = unsanitize_name(&r.owner);
        parse_principal(&owner)?;
        Some(TokenInfo {
            id: r.token_id,
            requester: r
                .token_requester
                .map(|p| unsanitize_name(&p))
                .unwrap_or_else(|| owner.clone()),
            owner,
            renewers: r.renewers.iter().map(|p| unsanitize_name(p)).collect(),
            issue_ms: r.issue_timestamp,
            max_ms: r.max_timestamp,
            expiry_ms: r.expiry_timestamp,
        })
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenJson {
    version: i32,
    owner: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token_requester: Option<String>,
    #[serde(default)]
    renewers: Vec<String>,
    issue_timestamp: i64,
    max_timestamp: i64,
    expiry_timestamp: i64,
    token_id: String,
}

/// `Type:Name` split at the first colon, as Kafka's `SecurityUtils.parseKafkaPrincipal`.
pub fn parse_principal(p: &str) -> Option<(&str, &str)> {
    p.split_once(':')
}

/// Why a token operation was refused; each is one of Kafka's error codes.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("Delegation Token feature is not enabled")]
    Disabled,
    #[error("Delegation Token is not found on server.")]
    NotFound,
    #[error("Specified Principal is not valid Owner/Renewer.")]
    OwnerMismatch,
    #[error("Delegation Token is expired.")]
    Expired,
    #[error("Renewer principal type must be User")]
    InvalidPrincipalType,
    #[error("the token records cannot be written: {0}")]
    Records(#[from] RecordError),
}

impl TokenError {
    pub fn code(&self) -> i16 {
        use kafka_protocol::ResponseError as E;
        match self {
            TokenError::Disabled => E::DelegationTokenAuthDisabled.code(),
            TokenError::NotFound => E::DelegationTokenNotFound.code(),
            TokenError::OwnerMismatch => E::DelegationTokenOwnerMismatch.code(),
            TokenError::Expired => E::DelegationTokenExpired.code(),
            TokenError::InvalidPrincipalType => E::InvalidPrincipalType.code(),
            // A write that did not reach the records: the client may retry.
            TokenError::Records(_) => E::KafkaStorageError.code(),
        }
    }
}

/// A token as this broker holds it: its information, its HMAC under this broker's secret,
/// and (made at its first login) its SCRAM credentials.
struct Held {
    info: TokenInfo,
    hmac: TokenHmac,
    /// One credential per mechanism (SHA-256, SHA-512), each PBKDF2 of 4096 rounds: made
    /// once, off the async workers, by the first login that needs it.
    credentials: OnceLock<[ScramCredential; 2]>,
}

#[derive(Default)]
struct Table {
    by_id: BTreeMap<String, Arc<Held>>,
    by_hmac: HashMap<TokenHmac, String>,
}

impl Table {
    fn insert(&mut self, held: Held) {
        self.remove(&held.info.id);
        self.by_hmac.insert(held.hmac, held.info.id.clone());
        self.by_id.insert(held.info.id.clone(), Arc::new(held));
    }

    fn remove(&mut self, id: &str) {
        if let Some(old) = self.by_id.remove(id) {
            self.by_hmac.remove(&old.hmac);
        }
    }
}

/// The lifetimes `delegation.token.*` set.
#[derive(Debug, Clone, Copy)]
pub struct TokenLifetimes {
    pub max_lifetime_ms: i64,
    pub expiry_time_ms: i64,
}

/// A SCRAM login with a token: who it authenticates and until when.
pub struct TokenLogin {
    /// The owner's name (the principal type is dropped: the session is `User:<name>`).
    pub owner_name: String,
    pub credential: ScramCredential,
    pub expiry_ms: i64,
}

/// The delegation tokens of this broker (or, in a cluster, of every broker).
///
/// It exists so that one owner keeps the tokens, writes them through the security records
/// (read-modify-write, safe against other brokers) and derives their passwords; the
/// handlers, the SASL exchange and the expiry sweep all ask it.
pub struct DelegationTokens {
    records: Arc<Records>,
    /// None: tokens are disabled (`delegation.token.secret.key` unset or empty).
    secret: Option<Vec<u8>>,
    lifetimes: TokenLifetimes,
    table: RwLock<Table>,
}

/// HMAC-SHA512 of the token id under the secret, as Kafka's `DelegationTokenManager`.
pub fn token_hmac(secret: &[u8], token_id: &str) -> TokenHmac {
    let mut mac =
        <Hmac<Sha512> as Mac>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(token_id.as_bytes());
    mac.finalize().into_bytes().into()
}

/// A new token id: 16 random bytes in URL-safe base64 without padding, never starting
/// with '-', as Kafka's `Uuid.randomUuid().toString()`.
fn new_token_id() -> String {
    loop {
        let mut bytes = [0u8; 16];
        getrandom::getrandom(&mut bytes).expect("the OS random source works");
        let id = URL_SAFE_NO_PAD.encode(bytes);
        if !id.starts_with('-') {
            return id;
        }
    }
}

/// The token's expiry after a renewal or expiry request asking for `period` (Kafka 4.4:
/// non-positive means the default, and no request gets more than the default).
fn renewed_expiry(info: &TokenInfo, now: i64, period: i64, default: i64) -> i64 {
    let period = if period > 0 {
        period.min(default)
    } else {
        default
    };
    info.max_ms.min(now.saturating_add(period))
}

impl DelegationTokens {
    /// The tokens in `loaded` (every security record, as [`Records::load_all`] read them).
    pub fn new(
        records: Arc<Records>,
        secret: Option<&str>,
        lifetimes: TokenLifetimes,
        loaded: &[(Record, Vec<u8>)],
    ) -> DelegationTokens {
        let tokens = DelegationTokens {
            records,
            secret: secret
                .filter(|s| !s.is_empty())
                .map(|s| s.as_bytes().to_vec()),
            lifetimes,
            table: RwLock::new(Table::default()),
        };
        tokens.apply(&Change::Reset(loaded.to_vec()));
        tokens
    }

    /// Whether tokens are enabled on this broker.
    pub fn enabled(&self) -> bool {
        self.secret.is_some()
    }

    fn held(&self, info: TokenInfo) -> Option<Held> {
        let secret = self.secret.as_deref()?;
        Some(Held {
            hmac: token_hmac(secret, &info.id),
            info,
            credentials: OnceLock::new(),
        })
    }

    fn write_table(&self) -> std::sync::RwLockWriteGuard<'_, Table> {
        self.table.write().unwrap_or_else(|e| e.into_inner())
    }

    fn read_table(&self) -> std::sync::RwLockReadGuard<'_, Table> {
        self.table.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies what a follower of the records (another broker's write) or a write here says.
    pub fn apply(&self, change: &Change) {
        let mut table = self.write_table();
        match change {
            Change::Reset(all) => {
                *table = Table::default();
                for (r, v) in all {
                    if let Record::Token(id) = r {
                        if let Some(held) = self.decode(id, v).and_then(|i| self.held(i)) {
                            table.insert(held);
                        }
                    }
                }
            }
            Change::One(Record::Token(id), value) => {
                match value
                    .as_deref()
                    .and_then(|v| self.decode(id, v))
                    .and_then(|i| self.held(i))
                {
                    Some(held) => table.insert(held),
                    None => table.remove(id),
                }
            }
            Change::One(Record::Acls(_) | Record::User(_) | Record::Config(_), _) => {}
        }
    }

    fn decode(&self, id: &str, bytes: &[u8]) -> Option<TokenInfo> {
        let info = TokenInfo::from_json(bytes).filter(|i| i.id == id);
        if info.is_none() {
            tracing::warn!(token = %id, "unreadable delegation token record skipped");
        }
        info
    }

    /// CreateDelegationToken once the channel, the ACLs and the renewers' types passed:
    /// the new token and its HMAC.
    pub async fn create(
        &self,
        owner: &str,
        requester: &str,
        renewers: Vec<String>,
        max_lifetime_ms: i64,
        now: i64,
    ) -> Result<(TokenInfo, TokenHmac), TokenError> {
        if renewers
            .iter()
            .any(|r| parse_principal(r).map(|(t, _)| t) != Some("User"))
        {
            return Err(TokenError::InvalidPrincipalType);
        }
        if !self.enabled() {
            return Err(TokenError::Disabled);
        }
        let max_life = if max_lifetime_ms > 0 {
            self.lifetimes.max_lifetime_ms.min(max_lifetime_ms)
        } else {
            self.lifetimes.max_lifetime_ms
        };
        let max_ms = now.saturating_add(max_life);
        let mut info = TokenInfo {
            id: new_token_id(),
            owner: owner.to_string(),
            requester: requester.to_string(),
            renewers,
            issue_ms: now,
            max_ms,
            expiry_ms: max_ms.min(now.saturating_add(self.lifetimes.expiry_time_ms)),
        };
        while self.read_table().by_id.contains_key(&info.id) {
            info.id = new_token_id();
        }
        let json = info.to_json();
        let id = info.id.clone();
        self.records
            .update(
                &[Record::Token(id.clone())],
                // A fresh random id: whatever is there (nothing, unless ids collide
                // across brokers) is replaced.
                |_, _| Some(json.clone()),
                |written| {
                    for (r, _, new) in written {
                        self.apply(&Change::One(r.clone(), new.clone()));
                    }
                },
            )
            .await?;
        let hmac = self
            .read_table()
            .by_id
            .get(&id)
            .map(|h| h.hmac)
            .ok_or(TokenError::NotFound)?;
        Ok((info, hmac))
    }

    /// The token an HMAC belongs to.
    fn id_of(&self, hmac: &[u8]) -> Result<String, TokenError> {
        if !self.enabled() {
            return Err(TokenError::Disabled);
        }
        let hmac: TokenHmac = hmac.try_into().map_err(|_| TokenError::NotFound)?;
        self.read_table()
            .by_hmac
            .get(&hmac)
            .cloned()
            .ok_or(TokenError::NotFound)
    }

    /// Changes one token's record with `decide`, which sees its current information and
    /// returns the outcome and the new information (None: remove it). The check runs on
    /// the record as stored, so two brokers renewing at once cannot lose either write.
    async fn change(
        &self,
        id: String,
        mut decide: impl FnMut(&TokenInfo) -> Result<(i64, Option<TokenInfo>), TokenError>,
    ) -> Result<i64, TokenError> {
        let mut outcome: Result<i64, TokenError> = Err(TokenError::NotFound);
        self.records
            .update(
                &[Record::Token(id.clone())],
                |_, old| {
                    let current = old.and_then(TokenInfo::from_json);
                    let Some(current) = current else {
                        outcome = Err(TokenError::NotFound);
                        return old.map(<[u8]>::to_vec);
                    };
                    match decide(&current) {
                        Ok((expiry, new)) => {
                            outcome = Ok(expiry);
                            new.map(|i| i.to_json())
                        }
                        Err(e) => {
                            outcome = Err(e);
                            old.map(<[u8]>::to_vec)
                        }
                    }
                },
                |written| {
                    for (r, _, new) in written {
                        self.apply(&Change::One(r.clone(), new.clone()));
                    }
                },
            )
            .await?;
        outcome
    }

    /// RenewDelegationToken: the new expiry time.
    pub async fn renew(
        &self,
        hmac: &[u8],
        principal: &str,
        period_ms: i64,
        now: i64,
    ) -> Result<i64, TokenError> {
        let id = self.id_of(hmac)?;
        let default = self.lifetimes.expiry_time_ms;
        self.change(id, |info| {
            if info.expired(now) {
                return Err(TokenError::Expired);
            }
            if !info.owner_or_renewer(principal) {
                return Err(TokenError::OwnerMismatch);
            }
            let expiry = renewed_expiry(info, now, period_ms, default);
            let mut new = info.clone();
            new.expiry_ms = expiry;
            Ok((expiry, Some(new)))
        })
        .await
    }

    /// ExpireDelegationToken: the new expiry time (now, for a negative period, which
    /// removes the token at once).
    pub async fn expire(
        &self,
        hmac: &[u8],
        principal: &str,
        period_ms: i64,
        now: i64,
    ) -> Result<i64, TokenError> {
        let id = self.id_of(hmac)?;
        self.change(id, |info| {
            if !info.owner_or_renewer(principal) {
                return Err(TokenError::OwnerMismatch);
            }
            if period_ms < 0 {
                return Ok((now, None));
            }
            if info.expired(now) {
                return Err(TokenError::Expired);
            }
            let expiry = info.max_ms.min(now.saturating_add(period_ms));
            let mut new = info.clone();
            new.expiry_ms = expiry;
            Ok((expiry, Some(new)))
        })
        .await
    }

    /// Every token held (expired ones until the sweep removes them), with its HMAC.
    pub fn list(&self) -> Result<Vec<(TokenInfo, TokenHmac)>, TokenError> {
        if !self.enabled() {
            return Err(TokenError::Disabled);
        }
        Ok(self
            .read_table()
            .by_id
            .values()
            .map(|h| (h.info.clone(), h.hmac))
            .collect())
    }

    /// A SCRAM login as token `id`: None if tokens are off, the token is unknown or it has
    /// expired. The first login of a token derives its credentials (CPU work): call this off
    /// the async workers.
    pub fn scram_login(&self, id: &str, mechanism: ScramMechanism, now: i64) -> Option<TokenLogin> {
        let held = self.read_table().by_id.get(id).cloned()?;
        if held.info.expired(now) {
            return None;
        }
        let credentials = held.credentials.get_or_init(|| {
            // Kafka's password for a token is the standard base64 of its HMAC.
            let password = B64.encode(held.hmac);
            ScramMechanism::ALL
                .map(|m| ScramCredential::new(m, password.as_bytes(), MIN_ITERATIONS))
        });
        let credential = match mechanism {
            ScramMechanism::Sha256 => credentials[0].clone(),
            ScramMechanism::Sha512 => credentials[1].clone(),
        };
        let (_, owner_name) = parse_principal(&held.info.owner)?;
        Some(TokenLogin {
            owner_name: owner_name.to_string(),
            credential,
            expiry_ms: held.info.expiry_ms,
        })
    }

    /// Whether a connection authenticated with token `id` may go on: the token still
    /// exists and has not expired (a renewal keeps it going, an expiry ends it).
    pub fn still_valid(&self, id: &str, now: i64) -> bool {
        self.read_table()
            .by_id
            .get(id)
            .is_some_and(|h| !h.info.expired(now))
    }

    /// Removes every expired token (Kafka's expiry sweep); returns how many went.
    pub async fn sweep(&self, now: i64) -> Result<usize, RecordError> {
        let expired: Vec<Record> = self
            .read_table()
            .by_id
            .values()
            .filter(|h| h.info.expired(now))
            .map(|h| Record::Token(h.info.id.clone()))
            .collect();
        if expired.is_empty() {
            return Ok(0);
        }
        self.records
            .update(
                &expired,
                |_, old| {
                    // Renewed by another broker since it was read: kept.
                    let info = old.and_then(TokenInfo::from_json);
                    match info {
                        Some(i) if !i.expired(now) => old.map(<[u8]>::to_vec),
                        _ => None,
                    }
                },
                |written| {
                    let mut removed = 0;
                    for (r, old, new) in written {
                        if old.is_some() && new.is_none() {
                            removed += 1;
                        }
                        self.apply(&Change::One(r.clone(), new.clone()));
                    }
                    removed
                },
            )
            .await
    }
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

    const LIFETIMES: TokenLifetimes = TokenLifetimes {
        max_lifetime_ms: 10_000,
        expiry_time_ms: 1_000,
    };

    fn tokens(store: Arc<Store>, secret: Option<&str>) -> DelegationTokens {
        let records = Arc::new(Records::local(store));
        let loaded = block_on(records.load_all()).unwrap();
        DelegationTokens::new(records, secret, LIFETIMES, &loaded)
    }

    /// Printed once by Kafka 4.4's `DelegationTokenManager.createHmac("c2FtcGxlLXRva2VuLWlk",
    /// SecretKeySpec("s3cret", "HmacSHA512"))`, and by `openssl dgst -sha512 -hmac s3cret`.
    #[test]
    fn hmac_is_kafkas() {
        let hmac = token_hmac(b"s3cret", "c2FtcGxlLXRva2VuLWlk");
        assert_eq!(
            B64.encode(hmac),
            "0zcvW1irirmEWQBKY0v11VNFJn9Y4cylXXueiU5O/6H3KGNCTHEOXEezM7OMVdp+h1mbyjKtjqAl7hbyy87HqA=="
        );
    }

    #[test]
    fn json_is_kafkas_and_reads_older_versions() {
        let info = TokenInfo {
            id: "abc".into(),
            owner: "User:alice".into(),
            requester: "User:bob".into(),
            renewers: vec!["User:carol d".into()],
            issue_ms: 1,
            max_ms: 3,
            expiry_ms: 2,
        };
        let json = String::from_utf8(info.to_json()).unwrap();
        assert_eq!(
            json,
            r#"{"version":3,"owner":"User%3Aalice","tokenRequester":"User%3Abob","renewers":["User%3Acarol%20d"],"issueTimestamp":1,"maxTimestamp":3,"expiryTimestamp":2,"tokenId":"abc"}"#
        );
        assert_eq!(TokenInfo::from_json(json.as_bytes()), Some(info));
        let v2 = br#"{"version":2,"owner":"User%3Aalice","renewers":[],"issueTimestamp":1,"maxTimestamp":3,"expiryTimestamp":2,"tokenId":"abc"}"#;
        let old = TokenInfo::from_json(v2).unwrap();
        assert_eq!(old.requester, "User:alice");
        assert_eq!(TokenInfo::from_json(b"{}"), None);
        assert_eq!(TokenInfo::from_json(&v2.replace(b"2,", b"9,")), None);
    }

    trait Replace {
        fn replace(&self, from: &[u8], to: &[u8]) -> Vec<u8>;
    }
    impl Replace for [u8] {
        fn replace(&self, from: &[u8], to: &[u8]) -> Vec<u8> {
            String::from_utf8_lossy(self)
                .replacen(
                    std::str::from_utf8(from).unwrap(),
                    std::str::from_utf8(to).unwrap(),
                    1,
                )
                .into_bytes()
        }
    }

    #[test]
    fn ids_are_kafka_uuids() {
        for _ in 0..200 {
            let id = new_token_id();
            assert_eq!(id.len(), 22, "{id}");
            assert!(!id.starts_with('-'));
            assert_eq!(URL_SAFE_NO_PAD.decode(&id).unwrap().len(), 16);
        }
    }

    #[test]
    fn lifetimes_renewals_and_expiry_follow_kafka() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), false).unwrap();
        let t = tokens(store.clone(), Some("s3cret"));
        let renewers = vec!["User:bob".to_string()];
        let (info, hmac) =
            block_on(t.create("User:alice", "User:alice", renewers, -1, 100)).unwrap();
        assert_eq!(
            (info.issue_ms, info.expiry_ms, info.max_ms),
            (100, 1_100, 10_100)
        );
        assert_eq!(hmac, token_hmac(b"s3cret", &info.id));
        // A shorter maximum is honoured; a longer one is cut to the broker's.
        let (short, _) = block_on(t.create("User:a", "User:a", vec![], 500, 100)).unwrap();
        assert_eq!((short.expiry_ms, short.max_ms), (600, 600));
        let (long, _) = block_on(t.create("User:a", "User:a", vec![], i64::MAX, 100)).unwrap();
        assert_eq!(long.max_ms, 10_100);
        assert!(matches!(
            block_on(t.create("User:a", "User:a", vec!["Group:g".into()], -1, 0)),
            Err(TokenError::InvalidPrincipalType)
        ));

        // Renewals: the owner or a renewer; the period is capped at the default.
        assert_eq!(
            block_on(t.renew(&hmac, "User:bob", 100_000, 200)).unwrap(),
            1_200
        );
        assert_eq!(
            block_on(t.renew(&hmac, "User:alice", 300, 200)).unwrap(),
            500
        );
        assert!(matches!(
            block_on(t.renew(&hmac, "User:carol", -1, 200)),
            Err(TokenError::OwnerMismatch)
        ));
        assert!(matches!(
            block_on(t.renew(&[0; 64], "User:alice", -1, 200)),
            Err(TokenError::NotFound)
        ));
        assert!(matches!(
            block_on(t.renew(&hmac, "User:alice", -1, 501)),
            Err(TokenError::Expired)
        ));
        // An expired token can still be expired at once, not pushed forward.
        assert!(matches!(
            block_on(t.expire(&hmac, "User:alice", 5, 501)),
            Err(TokenError::Expired)
        ));
        assert!(t
            .scram_login(&info.id, ScramMechanism::Sha256, 501)
            .is_none());
        let login = t
            .scram_login(&short.id, ScramMechanism::Sha512, 200)
            .unwrap();
        assert_eq!(login.owner_name, "a");
        assert!(login.credential.matches_password(
            ScramMechanism::Sha512,
            B64.encode(token_hmac(b"s3cret", &short.id)).as_bytes()
        ));

        // The sweep removes what expired, and a restart keeps the rest.
        assert_eq!(block_on(t.sweep(700)).unwrap(), 2);
        assert_eq!(t.list().unwrap().len(), 1);
        store.flush().unwrap();
        drop(t);
        let again = tokens(store.clone(), Some("s3cret"));
        let listed = again.list().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].0, long);
        let long_hmac = listed[0].1;
        assert_eq!(
            block_on(again.expire(&long_hmac, "User:a", -1, 800)).unwrap(),
            800
        );
        assert!(again.list().unwrap().is_empty());
        assert!(matches!(
            block_on(again.expire(&long_hmac, "User:a", -1, 800)),
            Err(TokenError::NotFound)
        ));

        // Without a secret, tokens are off.
        let off = tokens(store, None);
        assert!(matches!(off.list(), Err(TokenError::Disabled)));
        assert!(matches!(
            block_on(off.create("User:a", "User:a", vec![], -1, 0)),
            Err(TokenError::Disabled)
        ));
    }
}
