//! Fetch sessions (KIP-227): a bounded cache of what each fetcher last asked for, so that a
//! consumer of a thousand partitions sends and receives only what changed instead of the
//! whole list on every fetch.
//!
//! The rules are Kafka 4.4's (`FetchManager`, `FetchSessionCache`, `FetchSessionCacheShard`
//! and the four `FetchContext`s), re-implemented:
//!
//! - A request's `(session id, epoch)` picks its context: epoch 0 is a full fetch that opens a
//!   session (closing the given id, if any); epoch -1 is a sessionless full fetch (closing the
//!   given id); any other epoch continues session `id`, which must exist
//!   (FETCH_SESSION_ID_NOT_FOUND), be at that epoch (INVALID_FETCH_SESSION_EPOCH) and key its
//!   partitions the way the request's version does, by topic id from v13 on and by name
//!   before (FETCH_SESSION_TOPIC_ID_ERROR). A continued session moves to the next epoch at
//!   once; one left with no partition is closed and the request served sessionless.
//! - The cache is 8 shards of `max.incremental.fetch.session.cache.slots / 8` sessions each;
//!   new sessions go to the shards in turn, and each shard owns a range of session ids. A
//!   full shard makes room by evicting, in this order: the session unused the longest if it
//!   has been idle for more than `min.incremental.fetch.session.eviction.ms`; else the
//!   smallest session the newcomer outranks (a follower's session outranks a consumer's, then
//!   more partitions outrank fewer; equal sizes do not), among consumer sessions of any age
//!   and follower sessions older than the eviction time if the newcomer is a follower's, and
//!   among sessions older than the eviction time if it is a consumer's. With no room the full
//!   fetch is answered with session id 0, which clients take as "no session".
//! - Sessions are not tied to a connection or a principal: Kafka checks neither, and each
//!   request is authorized for every partition it reads, whoever's session it uses.
//!
//! Klamm adds one bound Kafka lacks: the cache never holds more than [`MAX_CACHED_BYTES`] of
//! session state, so however many partitions clients name, in one request or over many, the
//! memory it takes is bounded. A new session past the bound is not created (session id 0, as
//! when there is no slot), and a session an incremental fetch would grow past it is closed
//! (FETCH_SESSION_ID_NOT_FOUND, after which a client starts again with a full fetch).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::ResponseError;
use prometheus_client::metrics::counter::Counter;
use uuid::Uuid;

mod order;
use order::OrderedPartitions;

/// Kafka's `NumFetchSessionCacheShards`.
pub const NUM_SHARDS: usize = 8;
/// The session ids each shard hands out: shard `n` owns `[max(1, n * R), (n + 1) * R)`.
const SESSION_ID_RANGE: i32 = i32::MAX / NUM_SHARDS as i32;
/// The session id that means "no session".
pub const INVALID_SESSION_ID: i32 = 0;
/// The epoch of a full fetch that opens a session.
pub const INITIAL_EPOCH: i32 = 0;
/// The epoch of a sessionless full fetch (and of a client closing its session).
pub const FINAL_EPOCH: i32 = -1;

/// The most session state the whole cache holds (Klamm's bound; Kafka has none): about a
/// million partitions, more than a broker's `--max-partitions` allows, so only clients naming
/// partitions that do not exist, or very many sessions of very many partitions, reach it.
pub const MAX_CACHED_BYTES: usize = 128 << 20;
/// What one cached partition is counted as: its key, its state and the map's entry, rounded
/// up (a name-keyed partition adds its name's length).
const PARTITION_COST_BYTES: usize = 128;
/// What a session is counted as besides its partitions.
const SESSION_COST_BYTES: usize = 512;

/// Kafka's `FetchMetadata.nextEpoch`: -1 stays -1, and the epoch after `i32::MAX` is 1 (0 is
/// the epoch that opens a session, never one a session is at).
pub fn next_epoch(epoch: i32) -> i32 {
    if epoch < 0 {
        FINAL_EPOCH
    } else if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}

/// How a session names a topic: by id from Fetch v13 on, by name before (Kafka's
/// `usesTopicIds`). A session holds one kind only.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TopicKey {
    Id(Uuid),
    Name(Arc<str>),
}

/// One partition of a session, as the request names it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PartitionKey {
    pub topic: TopicKey,
    pub partition: i32,
}

impl PartitionKey {
    /// What the cache counts this partition as.
    fn cost_bytes(&self) -> usize {
        PARTITION_COST_BYTES
            + match &self.topic {
                TopicKey::Id(_) => 0,
                TopicKey::Name(n) => n.len(),
            }
    }
}

/// What a fetcher asks of one partition: kept by the session, so an incremental fetch that
/// does not name the partition reads it as last asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionRequest {
    pub fetch_offset: i64,
    /// A follower's own log start offset (consumers send -1).
    pub log_start_offset: i64,
    pub partition_max_bytes: i32,
    pub current_leader_epoch: i32,
    pub last_fetched_epoch: i32,
}

/// A session's state for one partition: the request to repeat and what the fetcher was last
/// told, so that an unchanged partition can be left out of the next response.
#[derive(Clone, Copy, Debug)]
struct CachedPartition {
    request: PartitionRequest,
    high_watermark: i64,
    /// The partition's log start offset on this broker, as last answered.
    log_start_offset: i64,
}

impl CachedPartition {
    fn new(request: PartitionRequest) -> CachedPartition {
        CachedPartition {
            request,
            high_watermark: -1,
            log_start_offset: -1,
        }
    }

    /// Kafka's `maybeUpdateResponseData`: whether `pd` must go to the fetcher (records, a
    /// changed high watermark or log start offset, an error, a preferred replica or a
    /// diverging epoch); with `update`, remembers what it was told. An error resets the
    /// remembered high watermark, so the partition is sent again once the error is gone.
    fn must_respond(&mut self, pd: &PartitionData, update: bool) -> bool {
        let mut must = pd.records.as_ref().is_some_and(|r| !r.is_empty());
        if self.high_watermark != pd.high_watermark {
            must = true;
            if update {
                self.high_watermark = pd.high_watermark;
            }
        }
        if self.log_start_offset != pd.log_start_offset {
            must = true;
            if update {
                self.log_start_offset = pd.log_start_offset;
            }
        }
        if pd.preferred_read_replica.0 >= 0 {
            must = true;
        }
        if pd.error_code != 0 {
            if update {
                self.high_watermark = -1;
            }
            must = true;
        }
        if pd.diverging_epoch.epoch >= 0 {
            must = true;
        }
        must
    }
}

/// One fetch session: its partitions in the order they are read, and where it stands.
#[derive(Debug)]
pub struct Session {
    id: i32,
    /// Created by a follower (a request with a replica id): followers' sessions outrank
    /// consumers' when the cache is full.
    privileged: bool,
    uses_topic_ids: bool,
    creation_ms: u64,
    last_used_ms: u64,
    /// The epoch the next incremental fetch must carry.
    epoch: i32,
    /// The size the shard last filed this session under (partitions and cost), `None` while
    /// it is not filed: the shard's trees are keyed by it, so it changes only under the
    /// shard's lock.
    filed: Option<(usize, usize)>,
    partitions: OrderedPartitions,
    /// What the partitions are counted as against [`MAX_CACHED_BYTES`].
    partitions_cost: usize,
}

impl Session {
    fn cost_bytes(&self) -> usize {
        SESSION_COST_BYTES + self.partitions_cost
    }

    fn last_used_key(&self) -> (u64, i32) {
        (self.last_used_ms, self.id)
    }

    fn evictable_key(&self) -> EvictableKey {
        EvictableKey {
            privileged: self.privileged,
            size: self.filed.map_or(0, |(n, _)| n),
            id: self.id,
        }
    }

    /// Adds or updates the request's partitions, then drops the forgotten ones (in Kafka's
    /// order: a partition both named and forgotten is gone). Returns (added, updated,
    /// removed) counts for the log.
    fn update(
        &mut self,
        fetch_data: &[(PartitionKey, PartitionRequest)],
        forgotten: &[PartitionKey],
    ) -> (usize, usize, usize) {
        let (mut added, mut updated) = (0, 0);
        for (key, request) in fetch_data {
            match self.partitions.get_mut(key) {
                Some(cached) => {
                    cached.request = *request;
                    updated += 1;
                }
                None => {
                    self.partitions_cost += key.cost_bytes();
                    self.partitions
                        .push_back(key.clone(), CachedPartition::new(*request));
                    added += 1;
                }
            }
        }
        let mut removed = 0;
        for key in forgotten {
            if self.partitions.remove(key) {
                self.partitions_cost -= key.cost_bytes();
                removed += 1;
            }
        }
        (added, updated, removed)
    }
}

/// The order in which sessions are evicted to make room: consumers' before followers', then
/// the smallest first (Kafka's `EvictableKey`; the derived order compares the fields in this
/// order, and `false < true`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct EvictableKey {
    privileged: bool,
    size: usize,
    id: i32,
}

type SessionRef = Arc<Mutex<Session>>;

fn lock(s: &SessionRef) -> MutexGuard<'_, Session> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

/// One shard: its sessions and the orders it evicts them in. Locked before any of its
/// sessions, never while one is held.
struct Shard {
    num: usize,
    max_entries: usize,
    max_cost_bytes: usize,
    eviction_ms: u64,
    sessions: HashMap<i32, SessionRef>,
    /// (last used, id): the first is the least recently used.
    last_used: BTreeSet<(u64, i32)>,
    /// Sessions any newcomer may evict if it outranks them: those older than the eviction
    /// time.
    evictable_by_all: BTreeSet<EvictableKey>,
    /// Sessions a follower's newcomer may evict: consumers' sessions of any age and followers'
    /// older than the eviction time.
    evictable_by_privileged: BTreeSet<EvictableKey>,
    num_partitions: usize,
    cost_bytes: usize,
    /// State of the generator of session ids (splitmix64).
    rng: u64,
    evictions: Counter,
}

impl Shard {
    fn new(
        num: usize,
        max_entries: usize,
        max_cost_bytes: usize,
        eviction_ms: u64,
        evictions: Counter,
    ) -> Shard {
        let mut seed = [0u8; 8];
        if getrandom::getrandom(&mut seed).is_err() {
            // Session ids need not be secret (Kafka's come from ThreadLocalRandom), only
            // spread out; the clock will do.
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            seed = (nanos ^ num as u64).to_le_bytes();
        }
        Shard {
            num,
            max_entries,
            max_cost_bytes,
            eviction_ms,
            sessions: HashMap::new(),
            last_used: BTreeSet::new(),
            evictable_by_all: BTreeSet::new(),
            evictable_by_privileged: BTreeSet::new(),
            num_partitions: 0,
            cost_bytes: 0,
            rng: u64::from_le_bytes(seed),
            evictions,
        }
    }

    fn next_random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A fresh session id in this shard's range.
    fn new_session_id(&mut self) -> i32 {
        let low = (self.num as i64 * SESSION_ID_RANGE as i64).max(1);
        let high = (self.num as i64 + 1) * SESSION_ID_RANGE as i64;
        loop {
            let id = (low + (self.next_random() % (high - low) as u64) as i64) as i32;
            if id != INVALID_SESSION_ID && !self.sessions.contains_key(&id) {
                return id;
            }
        }
    }

    /// Files `s` as used at `now_ms`, with its current size (Kafka's `touch`). The caller
    /// holds the session's lock, taken after this shard's.
    fn touch(&mut self, s: &mut Session, now_ms: u64) {
        self.last_used.remove(&s.last_used_key());
        s.last_used_ms = now_ms;
        self.last_used.insert(s.last_used_key());
        if let Some((size, cost)) = s.filed {
            let old = s.evictable_key();
            self.evictable_by_all.remove(&old);
            self.evictable_by_privileged.remove(&old);
            self.num_partitions -= size;
            self.cost_bytes -= cost;
        }
        s.filed = Some((s.partitions.len(), s.cost_bytes()));
        let key = s.evictable_key();
        let old_enough = now_ms.saturating_sub(s.creation_ms) > self.eviction_ms;
        if !s.privileged || old_enough {
            self.evictable_by_privileged.insert(key);
        }
        if old_enough {
            self.evictable_by_all.insert(key);
        }
        self.num_partitions += s.partitions.len();
        self.cost_bytes += s.cost_bytes();
    }

    fn remove(&mut self, id: i32) -> Option<SessionRef> {
        let session = self.sessions.remove(&id)?;
        let s = lock(&session);
        self.last_used.remove(&s.last_used_key());
        let key = s.evictable_key();
        self.evictable_by_all.remove(&key);
        self.evictable_by_privileged.remove(&key);
        if let Some((size, cost)) = s.filed {
            self.num_partitions -= size;
            self.cost_bytes -= cost;
        }
        drop(s);
        Some(session)
    }

    /// Kafka's `tryEvict`: frees one slot for a newcomer of `size` partitions, if the rules
    /// allow one to be freed.
    fn try_evict(&mut self, privileged: bool, size: usize, now_ms: u64) -> bool {
        let Some(&(last_used_ms, id)) = self.last_used.first() else {
            tracing::trace!(shard = self.num, "no fetch session to evict");
            return false;
        };
        if now_ms.saturating_sub(last_used_ms) > self.eviction_ms {
            tracing::trace!(
                shard = self.num,
                session_id = id,
                "evicting stale fetch session"
            );
            self.remove(id);
            self.evictions.inc();
            return true;
        }
        let candidates = if privileged {
            &self.evictable_by_privileged
        } else {
            &self.evictable_by_all
        };
        let Some(&victim) = candidates.first() else {
            tracing::trace!(shard = self.num, "no evictable fetch session");
            return false;
        };
        let newcomer = EvictableKey {
            privileged,
            size,
            id: 0,
        };
        if newcomer < victim {
            tracing::trace!(shard = self.num, ?victim, ?newcomer, "cannot evict");
            return false;
        }
        tracing::trace!(
            shard = self.num,
            ?victim,
            ?newcomer,
            "evicting fetch session"
        );
        self.remove(victim.id);
        self.evictions.inc();
        true
    }

    /// Kafka's `maybeCreateSession`, with the cache's byte bound beside the slots.
    fn maybe_create(
        &mut self,
        now_ms: u64,
        privileged: bool,
        uses_topic_ids: bool,
        partitions: OrderedPartitions,
        partitions_cost: usize,
    ) -> i32 {
        let size = partitions.len();
        let cost = SESSION_COST_BYTES + partitions_cost;
        let room = cost <= self.max_cost_bytes
            && (self.sessions.len() < self.max_entries || self.try_evict(privileged, size, now_ms));
        let room = room
            && loop {
                if self.cost_bytes + cost <= self.max_cost_bytes {
                    break true;
                }
                if !self.try_evict(privileged, size, now_ms) {
                    break false;
                }
            };
        if !room {
            tracing::debug!(
                shard = self.num,
                privileged,
                size,
                "no fetch session created"
            );
            return INVALID_SESSION_ID;
        }
        let id = self.new_session_id();
        let mut session = Session {
            id,
            privileged,
            uses_topic_ids,
            creation_ms: now_ms,
            last_used_ms: now_ms,
            epoch: next_epoch(INITIAL_EPOCH),
            filed: None,
            partitions,
            partitions_cost,
        };
        self.touch(&mut session, now_ms);
        tracing::debug!(
            shard = self.num,
            session_id = id,
            privileged,
            uses_topic_ids,
            partitions = size,
            "created fetch session"
        );
        self.sessions.insert(id, Arc::new(Mutex::new(session)));
        id
    }
}

/// Kafka's `FetchContext`: how one Fetch request relates to the session cache, decided before
/// any partition is read.
pub enum FetchContext {
    /// The request's session cannot be used: it is answered with this top-level error, session
    /// id 0 and no partitions, at once.
    SessionError(ResponseError),
    /// A full fetch answered with session id 0 (epoch -1, or a session emptied by this very
    /// request).
    Sessionless,
    /// A full fetch that opens a session once it is answered, if the cache has room.
    Full {
        privileged: bool,
        uses_topic_ids: bool,
    },
    /// A fetch in an existing session: the partitions to read are the session's.
    Incremental(Incremental),
}

impl FetchContext {
    /// The name Kafka gives this kind of context, for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            FetchContext::SessionError(_) => "session_error",
            FetchContext::Sessionless => "sessionless",
            FetchContext::Full { .. } => "full",
            FetchContext::Incremental(_) => "incremental",
        }
    }
}

/// An incremental fetch under way: the session (still answerable if it is evicted meanwhile,
/// as in Kafka) and what to read.
pub struct Incremental {
    session: SessionRef,
    id: i32,
    /// The epoch the request carried; the session is at the next one unless another request
    /// of the same session came in meanwhile.
    request_epoch: i32,
    /// The session's partitions, in the session's order, with what to read of each and
    /// where the session keeps it (for [`FetchSessionCache::finish_incremental`]).
    pub partitions: Vec<(PartitionKey, PartitionRequest, usize)>,
}

impl Incremental {
    pub fn session_id(&self) -> i32 {
        self.id
    }
}

/// The broker's fetch sessions: Kafka's `FetchManager` and `FetchSessionCache`.
pub struct FetchSessionCache {
    shards: Vec<Mutex<Shard>>,
    next_shard: AtomicUsize,
    started: Instant,
}

impl FetchSessionCache {
    /// A cache of `slots` sessions (`max.incremental.fetch.session.cache.slots`, divided among
    /// the shards as Kafka divides it) that may evict sessions idle or created more than
    /// `eviction_ms` ago; evictions are counted in `evictions`.
    pub fn new(slots: usize, eviction_ms: u64, evictions: Counter) -> FetchSessionCache {
        FetchSessionCache::with_max_bytes(slots, eviction_ms, MAX_CACHED_BYTES, evictions)
    }

    fn with_max_bytes(
        slots: usize,
        eviction_ms: u64,
        max_bytes: usize,
        evictions: Counter,
    ) -> FetchSessionCache {
        FetchSessionCache {
            shards: (0..NUM_SHARDS)
                .map(|n| {
                    Mutex::new(Shard::new(
                        n,
                        slots / NUM_SHARDS,
                        max_bytes / NUM_SHARDS,
                        eviction_ms,
                        evictions.clone(),
                    ))
                })
                .collect(),
            next_shard: AtomicUsize::new(0),
            started: Instant::now(),
        }
    }

    /// The cache's clock: milliseconds since it was made (monotonic, unlike Kafka's wall
    /// clock, so a clock step cannot evict every session at once).
    pub fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn shard(&self, n: usize) -> MutexGuard<'_, Shard> {
        self.shards[n].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The shard that owns `session_id`, or `None` for an id no shard hands out (negative,
    /// or past the last shard's range: Kafka fails such requests with an exception).
    fn shard_of(&self, session_id: i32) -> Option<usize> {
        if session_id <= 0 {
            return None;
        }
        let n = (session_id / SESSION_ID_RANGE) as usize;
        (n < NUM_SHARDS).then_some(n)
    }

    /// Sessions held now (Kafka's `NumIncrementalFetchSessions`).
    pub fn len(&self) -> usize {
        (0..NUM_SHARDS).map(|n| self.shard(n).sessions.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Partitions held by all sessions (Kafka's `NumIncrementalFetchPartitionsCached`).
    pub fn partitions_cached(&self) -> usize {
        (0..NUM_SHARDS).map(|n| self.shard(n).num_partitions).sum()
    }

    /// Kafka's `FetchManager.newContext`: what a request with this version and `(session id,
    /// epoch)` is, and for an incremental fetch the session's partitions after the request's
    /// additions and removals.
    pub fn new_context(
        &self,
        version: i16,
        (session_id, epoch): (i32, i32),
        privileged: bool,
        fetch_data: &[(PartitionKey, PartitionRequest)],
        forgotten: &[PartitionKey],
        now_ms: u64,
    ) -> FetchContext {
        let uses_topic_ids = version >= 13;
        if epoch == INITIAL_EPOCH || epoch == FINAL_EPOCH {
            if session_id != INVALID_SESSION_ID {
                // A full fetch closes the session it names.
                if let Some(n) = self.shard_of(session_id) {
                    if self.shard(n).remove(session_id).is_some() {
                        tracing::debug!(session_id, "full fetch closed its fetch session");
                    }
                }
            }
            return if epoch == FINAL_EPOCH {
                FetchContext::Sessionless
            } else {
                FetchContext::Full {
                    privileged,
                    uses_topic_ids,
                }
            };
        }
        let Some(n) = self.shard_of(session_id) else {
            tracing::debug!(session_id, "fetch session error: no such session id");
            return FetchContext::SessionError(ResponseError::FetchSessionIdNotFound);
        };
        let mut shard = self.shard(n);
        let Some(session) = shard.sessions.get(&session_id).cloned() else {
            tracing::debug!(session_id, "fetch session error: no such session id");
            return FetchContext::SessionError(ResponseError::FetchSessionIdNotFound);
        };
        let mut s = lock(&session);
        if s.epoch != epoch {
            tracing::debug!(
                session_id,
                expected = s.epoch,
                got = epoch,
                "fetch session error: wrong epoch"
            );
            return FetchContext::SessionError(ResponseError::InvalidFetchSessionEpoch);
        }
        if s.uses_topic_ids != uses_topic_ids {
            tracing::debug!(
                session_id,
                session_uses_topic_ids = s.uses_topic_ids,
                version,
                "fetch session error: the request's version keys topics the other way"
            );
            return FetchContext::SessionError(ResponseError::FetchSessionTopicIdError);
        }
        let (added, updated, removed) = s.update(fetch_data, forgotten);
        if s.partitions.is_empty() {
            tracing::debug!(
                session_id,
                epoch = s.epoch,
                removed,
                "fetch session closed: no partitions left; served sessionless"
            );
            drop(s);
            shard.remove(session_id);
            return FetchContext::Sessionless;
        }
        let grown_cost = s.cost_bytes() - s.filed.map_or(0, |(_, c)| c).min(s.cost_bytes());
        if shard.cost_bytes + grown_cost > shard.max_cost_bytes {
            tracing::warn!(
                session_id,
                partitions = s.partitions.len(),
                max_cached_bytes = MAX_CACHED_BYTES,
                "fetch session closed: it would grow past the session cache's bound"
            );
            drop(s);
            shard.remove(session_id);
            return FetchContext::SessionError(ResponseError::FetchSessionIdNotFound);
        }
        let partitions = s
            .partitions
            .iter()
            .map(|(slot, k, c)| (k.clone(), c.request, slot))
            .collect();
        shard.touch(&mut s, now_ms);
        s.epoch = next_epoch(s.epoch);
        tracing::debug!(
            session_id,
            epoch = s.epoch,
            added,
            updated,
            removed,
            "incremental fetch"
        );
        drop(s);
        FetchContext::Incremental(Incremental {
            session,
            id: session_id,
            request_epoch: epoch,
            partitions,
        })
    }

    /// The end of a full fetch: opens a session of the answered partitions, in the order they
    /// were answered, with the requests that asked for them. Returns the session id for the
    /// response (0 when there was no room).
    pub fn create_session(
        &self,
        privileged: bool,
        uses_topic_ids: bool,
        answered: impl IntoIterator<Item = (PartitionKey, PartitionRequest, i64, i64)>,
        now_ms: u64,
    ) -> i32 {
        let mut partitions = OrderedPartitions::new();
        for (key, request, high_watermark, log_start_offset) in answered {
            partitions.push_back(
                key,
                CachedPartition {
                    request,
                    high_watermark,
                    log_start_offset,
                },
            );
        }
        let cost = partitions.iter().map(|(_, k, _)| k.cost_bytes()).sum();
        let n = self.next_shard.fetch_add(1, Ordering::Relaxed) % NUM_SHARDS;
        self.shard(n)
            .maybe_create(now_ms, privileged, uses_topic_ids, partitions, cost)
    }

    /// The end of an incremental fetch (Kafka's `IncrementalFetchContext`): which of the
    /// `answered` partitions the fetcher must hear about (in their order), remembering what it
    /// is told, and moving the partitions that returned records to the end of the session's
    /// order, so that the next fetch gives the others the first share of `max_bytes`. Each
    /// answer comes with where its partition stood in [`Incremental::partitions`], which
    /// spares a lookup. Fails with INVALID_FETCH_SESSION_EPOCH (and the session id) when
    /// another request of the session came in meanwhile.
    pub fn finish_incremental<'a>(
        &self,
        inc: Incremental,
        answered: impl Iterator<Item = (usize, &'a PartitionKey, &'a PartitionData)>,
    ) -> Result<(i32, Vec<bool>), (ResponseError, i32)> {
        let mut s = lock(&inc.session);
        let expected = next_epoch(inc.request_epoch);
        if s.epoch != expected {
            tracing::info!(
                session_id = inc.id,
                expected,
                got = s.epoch,
                "incremental fetch session moved on meanwhile; possible duplicate request"
            );
            return Err((ResponseError::InvalidFetchSessionEpoch, inc.id));
        }
        let mut keep = Vec::new();
        for (hint, key, pd) in answered {
            let slot = s.partitions.slot_of(hint, key);
            let Some(cached) = slot.and_then(|i| s.partitions.at_mut(i)) else {
                // Not in the session (Kafka 4.4 leaves such a partition out).
                keep.push(false);
                continue;
            };
            let must = cached.must_respond(pd, true);
            if must && pd.records.as_ref().is_some_and(|r| !r.is_empty()) {
                if let Some(slot) = slot {
                    s.partitions.move_to_back(slot);
                }
            }
            keep.push(must);
        }
        tracing::debug!(
            session_id = inc.id,
            returning = keep.iter().filter(|k| **k).count(),
            "incremental fetch answered"
        );
        Ok((inc.id, keep))
    }
}

#[cfg(test)]
mod tests;
