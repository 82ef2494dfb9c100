//! Share sessions (KIP-932): what each share consumer fetches from this broker, so that a
//! ShareFetch after the first names only the partitions that changed. Kafka 4.4's
//! `ShareSessionCache` and `SharePartitionManager.newContext` / `acknowledgeSessionUpdate`,
//! with their rules on the session epoch:
//!
//! - epoch 0 opens a session (replacing one the member had), and may carry no
//!   acknowledgements (INVALID_REQUEST);
//! - epoch -1 closes it (SHARE_SESSION_NOT_FOUND if there is none): the request may still
//!   acknowledge, fetches nothing, and the member's acquired records are released;
//! - any other epoch must be the session's next one (INVALID_SHARE_SESSION_EPOCH), and
//!   SHARE_SESSION_NOT_FOUND if the session is gone.
//!
//! A session belongs to the connection that opened it: when that connection closes, the
//! session goes and the member's records are released, as Kafka's disconnect listener does.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use kafka_protocol::ResponseError;
use uuid::Uuid;

/// A share partition as a session names it.
pub type TopicIdPartition = (Uuid, i32);

/// The connection a session was opened on: its listener and the client's address, unique
/// among this broker's open connections.
pub type ConnectionKey = (Arc<str>, SocketAddr);

/// A session's key: group id and member id.
type SessionKey = (Arc<str>, Arc<str>);

/// What a ShareFetch asks of its session: partitions to add (or to fetch, in a new
/// session), partitions to drop, and whether it carries acknowledgements.
pub struct SessionChanges<'a> {
    pub requested: &'a [TopicIdPartition],
    pub forgotten: &'a [TopicIdPartition],
    pub acknowledgements_present: bool,
}

/// Kafka's `ShareRequestMetadata.INITIAL_EPOCH` and `FINAL_EPOCH`.
pub const INITIAL_EPOCH: i32 = 0;
pub const FINAL_EPOCH: i32 = -1;

/// Kafka's `nextEpoch`: wraps from `i32::MAX` to 1, never to 0 or -1.
fn next_epoch(epoch: i32) -> i32 {
    if epoch < 0 {
        return FINAL_EPOCH;
    }
    if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}

#[derive(Debug)]
struct ShareSession {
    /// The epoch the next request must carry.
    epoch: i32,
    /// In the order they were added, each once.
    partitions: Vec<TopicIdPartition>,
    connection: ConnectionKey,
}

/// What a ShareFetch is to do, once its epoch was checked.
#[derive(Debug, PartialEq, Eq)]
pub enum ShareFetchContext {
    /// A new session (epoch 0): fetch these, and answer every one of them.
    Full(Vec<TopicIdPartition>),
    /// The session's next request: fetch every partition of the session; answer only those
    /// with records, errors or acknowledgement results.
    Subsequent(Vec<TopicIdPartition>),
    /// Epoch -1: fetch nothing; close the session once the acknowledgements are applied.
    Final,
}

/// The share sessions of this broker (`group.share.max.share.sessions` of them at most).
///
/// It exists so each share consumer's partition list has one owner, checked and moved on
/// by every ShareFetch and ShareAcknowledge, and dropped with the consumer's connection.
pub struct ShareSessionCache {
    max_sessions: usize,
    sessions: Mutex<HashMap<SessionKey, ShareSession>>,
}

impl ShareSessionCache {
    pub fn new(max_sessions: usize) -> ShareSessionCache {
        ShareSessionCache {
            max_sessions,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<SessionKey, ShareSession>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many sessions are open (a metric, and tests).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Kafka's `newContext`: checks a ShareFetch's epoch against the member's session and
    /// moves the session on. `requested` are the partitions the request names (to add, or
    /// to fetch in a new session), `forgotten` those it drops. Errors are the request's
    /// top-level error: nothing is fetched or acknowledged then.
    pub fn new_context(
        &self,
        group: &str,
        member: &str,
        epoch: i32,
        changes: &SessionChanges<'_>,
        connection: &ConnectionKey,
    ) -> Result<ShareFetchContext, ResponseError> {
        let SessionChanges {
            requested,
            forgotten,
            acknowledgements_present,
        } = *changes;
        let key: SessionKey = (Arc::from(group), Arc::from(member));
        let mut sessions = self.lock();
        match epoch {
            FINAL_EPOCH => {
                if !sessions.contains_key(&key) {
                    return Err(ResponseError::ShareSessionNotFound);
                }
                Ok(ShareFetchContext::Final)
            }
            INITIAL_EPOCH => {
                if acknowledgements_present {
                    return Err(ResponseError::InvalidRequest);
                }
                sessions.remove(&key);
                if sessions.len() >= self.max_sessions {
                    return Err(ResponseError::ShareSessionLimitReached);
                }
                let mut partitions: Vec<TopicIdPartition> = Vec::with_capacity(requested.len());
                for tp in requested {
                    if !partitions.contains(tp) {
                        partitions.push(*tp);
                    }
                }
                sessions.insert(
                    key,
                    ShareSession {
                        epoch: 1,
                        partitions: partitions.clone(),
                        connection: connection.clone(),
                    },
                );
                Ok(ShareFetchContext::Full(partitions))
            }
            _ => {
                let Some(session) = sessions.get_mut(&key) else {
                    return Err(ResponseError::ShareSessionNotFound);
                };
                if session.epoch != epoch {
                    tracing::debug!(
                        group,
                        member,
                        expected = session.epoch,
                        got = epoch,
                        "share session epoch mismatch"
                    );
                    return Err(ResponseError::InvalidShareSessionEpoch);
                }
                session.partitions.retain(|tp| !forgotten.contains(tp));
                for tp in requested {
                    if !session.partitions.contains(tp) {
                        session.partitions.push(*tp);
                    }
                }
                session.epoch = next_epoch(session.epoch);
                session.connection = connection.clone();
                Ok(ShareFetchContext::Subsequent(session.partitions.clone()))
            }
        }
    }

    /// Kafka's `acknowledgeSessionUpdate`: a ShareAcknowledge needs an open session (epoch
    /// 0 is INVALID_SHARE_SESSION_EPOCH), at its next epoch unless it closes it (-1).
    pub fn acknowledge_update(
        &self,
        group: &str,
        member: &str,
        epoch: i32,
    ) -> Result<(), ResponseError> {
        if epoch == INITIAL_EPOCH {
            return Err(ResponseError::InvalidShareSessionEpoch);
        }
        let key: SessionKey = (Arc::from(group), Arc::from(member));
        let mut sessions = self.lock();
        let Some(session) = sessions.get_mut(&key) else {
            return Err(ResponseError::ShareSessionNotFound);
        };
        if epoch == FINAL_EPOCH {
            return Ok(());
        }
        if session.epoch != epoch {
            return Err(ResponseError::InvalidShareSessionEpoch);
        }
        session.epoch = next_epoch(session.epoch);
        Ok(())
    }

    /// Closes the member's session (epoch -1 handled); true if there was one.
    pub fn remove(&self, group: &str, member: &str) -> bool {
        let key: SessionKey = (Arc::from(group), Arc::from(member));
        self.lock().remove(&key).is_some()
    }

    /// Whether any member of `group` has a share session here.
    pub fn has_group(&self, group: &str) -> bool {
        self.lock().keys().any(|(g, _)| &**g == group)
    }

    /// Drops every session opened on `connection` and returns their (group, member), whose
    /// acquired records the caller releases.
    pub fn connection_closed(&self, connection: &ConnectionKey) -> Vec<SessionKey> {
        let mut sessions = self.lock();
        let gone: Vec<SessionKey> = sessions
            .iter()
            .filter(|(_, s)| &s.connection == connection)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &gone {
            sessions.remove(k);
        }
        gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(port: u16) -> ConnectionKey {
        (
            Arc::from("PLAINTEXT"),
            SocketAddr::from(([127, 0, 0, 1], port)),
        )
    }

    const T: Uuid = Uuid::from_u128(7);

    fn ch<'a>(
        requested: &'a [TopicIdPartition],
        forgotten: &'a [TopicIdPartition],
        acknowledgements_present: bool,
    ) -> SessionChanges<'a> {
        SessionChanges {
            requested,
            forgotten,
            acknowledgements_present,
        }
    }

    #[test]
    fn kip_932_epoch_rules() {
        let c = ShareSessionCache::new(10);
        let (a, b) = ((T, 0), (T, 1));
        // No session yet: only epoch 0 opens one.
        assert_eq!(
            c.new_context("g", "m", 1, &ch(&[a], &[], false), &conn(1)),
            Err(ResponseError::ShareSessionNotFound)
        );
        assert_eq!(
            c.new_context("g", "m", FINAL_EPOCH, &ch(&[], &[], true), &conn(1)),
            Err(ResponseError::ShareSessionNotFound)
        );
        assert_eq!(
            c.new_context("g", "m", 0, &ch(&[a], &[], true), &conn(1)),
            Err(ResponseError::InvalidRequest)
        );
        assert_eq!(
            c.new_context("g", "m", 0, &ch(&[a, a], &[], false), &conn(1)),
            Ok(ShareFetchContext::Full(vec![a]))
        );
        // The next epoch is 1; a stale or future one is refused and changes nothing.
        assert_eq!(
            c.new_context("g", "m", 2, &ch(&[b], &[], false), &conn(1)),
            Err(ResponseError::InvalidShareSessionEpoch)
        );
        assert_eq!(
            c.new_context("g", "m", 1, &ch(&[b], &[], false), &conn(1)),
            Ok(ShareFetchContext::Subsequent(vec![a, b]))
        );
        assert_eq!(
            c.new_context("g", "m", 2, &ch(&[], &[a], false), &conn(1)),
            Ok(ShareFetchContext::Subsequent(vec![b]))
        );
        // ShareAcknowledge moves the same epoch on.
        assert_eq!(
            c.acknowledge_update("g", "m", 0),
            Err(ResponseError::InvalidShareSessionEpoch)
        );
        assert_eq!(
            c.acknowledge_update("g", "m", 4),
            Err(ResponseError::InvalidShareSessionEpoch)
        );
        assert_eq!(c.acknowledge_update("g", "m", 3), Ok(()));
        assert_eq!(
            c.new_context("g", "m", 3, &ch(&[], &[], false), &conn(1)),
            Err(ResponseError::InvalidShareSessionEpoch)
        );
        assert_eq!(
            c.new_context("g", "m", FINAL_EPOCH, &ch(&[], &[], true), &conn(1)),
            Ok(ShareFetchContext::Final)
        );
        assert!(c.remove("g", "m"));
        assert_eq!(
            c.acknowledge_update("g", "m", FINAL_EPOCH),
            Err(ResponseError::ShareSessionNotFound)
        );
    }

    #[test]
    fn limit_and_connection_close() {
        let c = ShareSessionCache::new(2);
        for m in ["m1", "m2"] {
            assert!(c
                .new_context("g", m, 0, &ch(&[], &[], false), &conn(1))
                .is_ok());
        }
        assert_eq!(
            c.new_context("g", "m3", 0, &ch(&[], &[], false), &conn(2)),
            Err(ResponseError::ShareSessionLimitReached)
        );
        // Re-opening one's own session is not a new one.
        assert!(c
            .new_context("g", "m1", 0, &ch(&[], &[], false), &conn(1))
            .is_ok());
        let mut gone = c.connection_closed(&conn(1));
        gone.sort();
        assert_eq!(
            gone,
            vec![
                (Arc::from("g"), Arc::from("m1")),
                (Arc::from("g"), Arc::from("m2"))
            ]
        );
        assert!(c.is_empty());
        assert_eq!(next_epoch(i32::MAX), 1);
    }
}
