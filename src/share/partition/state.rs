//! The per-record bookkeeping of a share partition: Kafka's `RecordState`, `InFlightState` and
//! `InFlightBatch`, with the transition rules of `InFlightState.validateTransition`.

use std::sync::Arc;

/// Why a record goes to the dead-letter queue; the `__dlq.errors.message` header carries
/// Kafka's text for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DlqCause {
    /// The member acknowledged it with REJECT.
    ClientReject,
    /// It was released (by the member, its session's end or its lock's expiry) after its
    /// last allowed delivery.
    DeliveryCountExceeded,
}

impl DlqCause {
    /// Kafka's `ShareGroupDLQManager` message, word for word.
    pub fn message(self) -> &'static str {
        match self {
            DlqCause::ClientReject => "Offset rejected by client.",
            DlqCause::DeliveryCountExceeded => "Offset delivery count exceeded the threshold.",
        }
    }
}

/// The delivery state of one record of a share partition, with Kafka's wire ids (the
/// `DeliveryState` of persisted state batches).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordState {
    /// Can be acquired by the next fetch.
    Available,
    /// Locked by one member until it acknowledges or the lock expires.
    Acquired,
    /// Terminal: the member accepted it.
    Acknowledged,
    /// On its way to the group's dead-letter queue (KIP-1191, share.version 2): rejected, or
    /// out of deliveries. Not terminal, so it holds the start offset until the DLQ write is
    /// done (or given up) and the record becomes ARCHIVED; nobody can acquire or acknowledge
    /// it meanwhile.
    Archiving,
    /// Terminal: rejected, a gap, past the delivery limit or below the log start.
    Archived,
}

impl RecordState {
    /// Kafka's id of this state (`RecordState.id`).
    pub fn id(self) -> i8 {
        match self {
            RecordState::Available => 0,
            RecordState::Acquired => 1,
            RecordState::Acknowledged => 2,
            RecordState::Archiving => 3,
            RecordState::Archived => 4,
        }
    }

    /// The state for a Kafka id; `None` for unknown ids.
    pub fn from_id(id: i8) -> Option<RecordState> {
        match id {
            0 => Some(RecordState::Available),
            1 => Some(RecordState::Acquired),
            2 => Some(RecordState::Acknowledged),
            3 => Some(RecordState::Archiving),
            4 => Some(RecordState::Archived),
            _ => None,
        }
    }

    /// Nothing leaves a terminal state; the start offset may pass terminal records.
    pub fn is_terminal(self) -> bool {
        matches!(self, RecordState::Acknowledged | RecordState::Archived)
    }

    /// Kafka's `validateTransition`: moving to the same state is illegal, terminal states
    /// are final, AVAILABLE only goes to ACQUIRED, ARCHIVING only to ARCHIVED, ACQUIRED goes
    /// anywhere else.
    pub fn can_move_to(self, next: RecordState) -> bool {
        match self {
            _ if self == next => false,
            RecordState::Acknowledged | RecordState::Archived => false,
            RecordState::Available => next == RecordState::Acquired,
            RecordState::Archiving => next == RecordState::Archived,
            RecordState::Acquired => true,
        }
    }
}

/// The state of one record, or of a whole batch while it is tracked as one: the state, how
/// many times it was acquired, the member holding it, and when that member's lock expires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct InFlightState {
    pub state: RecordState,
    pub delivery_count: i16,
    /// The acquiring member; kept after an acknowledgement so that a second ack by another
    /// member is reported as "not the owner", as Kafka does. Cleared on release.
    pub member_id: Option<Arc<str>>,
    /// Set exactly while the state is ACQUIRED.
    pub lock_deadline_ms: Option<i64>,
    /// Set exactly while the state is ARCHIVING.
    pub dlq_cause: Option<DlqCause>,
}

impl InFlightState {
    pub fn acquired(member: &Arc<str>, deadline_ms: i64) -> Self {
        InFlightState {
            state: RecordState::Acquired,
            delivery_count: 1,
            member_id: Some(member.clone()),
            lock_deadline_ms: Some(deadline_ms),
            dlq_cause: None,
        }
    }

    /// A record no one has been given yet (count 0): the unacquired tail of a record_limit
    /// fetch, or a gap between persisted batches.
    pub fn fresh() -> Self {
        InFlightState {
            state: RecordState::Available,
            delivery_count: 0,
            member_id: None,
            lock_deadline_ms: None,
            dlq_cause: None,
        }
    }

    pub fn is_owned_by(&self, member: &str) -> bool {
        self.member_id.as_deref() == Some(member)
    }

    /// AVAILABLE -> ACQUIRED, delivery count +1 (Kafka's DeliveryCountOps.INCREASE).
    pub fn acquire(&mut self, member: &Arc<str>, deadline_ms: i64) -> bool {
        if !self.state.can_move_to(RecordState::Acquired) {
            return false;
        }
        self.state = RecordState::Acquired;
        self.delivery_count = self.delivery_count.saturating_add(1);
        self.member_id = Some(member.clone());
        self.lock_deadline_ms = Some(deadline_ms);
        true
    }

    /// ACQUIRED -> AVAILABLE, or, once the record has been delivered `limit` times so that
    /// it is never delivered again, ARCHIVED (ARCHIVING on its way to the dead-letter queue
    /// when `dlq` is on). Returns the state reached.
    pub fn release(&mut self, delivery_count_limit: i16, dlq: bool) -> Option<RecordState> {
        if self.state != RecordState::Acquired {
            return None;
        }
        self.member_id = None;
        self.lock_deadline_ms = None;
        if self.delivery_count < delivery_count_limit {
            self.state = RecordState::Available;
        } else if dlq {
            self.begin_archiving(DlqCause::DeliveryCountExceeded);
        } else {
            self.state = RecordState::Archived;
        }
        Some(self.state)
    }

    /// ACQUIRED (or AVAILABLE, on a reload) -> ARCHIVING: the record waits for its
    /// dead-letter-queue write.
    pub fn begin_archiving(&mut self, cause: DlqCause) {
        self.state = RecordState::Archiving;
        self.lock_deadline_ms = None;
        self.dlq_cause = Some(cause);
    }

    /// ARCHIVING -> ARCHIVED once its dead-letter-queue write is done or given up.
    pub fn finish_archiving(&mut self) -> bool {
        if self.state != RecordState::Archiving {
            return false;
        }
        self.state = RecordState::Archived;
        self.dlq_cause = None;
        true
    }

    /// ACQUIRED -> ACKNOWLEDGED or ARCHIVED; the owner stays recorded.
    pub fn complete(&mut self, terminal: RecordState) -> bool {
        debug_assert!(terminal.is_terminal());
        if !self.state.can_move_to(terminal) {
            return false;
        }
        self.state = terminal;
        self.lock_deadline_ms = None;
        true
    }

    /// AVAILABLE -> ARCHIVED, for records the log no longer holds. Kafka's transition table
    /// has no such edge; it archives them directly (`archiveRecords`), and so does this.
    pub fn archive_if_available(&mut self) -> bool {
        if self.state != RecordState::Available {
            return false;
        }
        self.state = RecordState::Archived;
        true
    }

    /// Whether the lock is held and has run out at `now_ms`.
    pub fn lock_expired(&self, now_ms: i64) -> bool {
        self.state == RecordState::Acquired && self.lock_deadline_ms.is_some_and(|d| d <= now_ms)
    }
}

/// A run of offsets `first..=last` in the cache. It carries one state for the whole run
/// until an operation touches only part of it; then `offsets` holds one state per offset
/// (Kafka's `maybeInitializeOffsetStateUpdate`). Every batch is at most
/// [`super::MAX_BATCH_RECORDS`] long, so that switch allocates a bounded vector.
#[derive(Clone, Debug)]
pub(crate) struct InFlightBatch {
    pub first: i64,
    pub last: i64,
    pub batch: InFlightState,
    /// Index `i` is offset `first + i`.
    pub offsets: Option<Vec<InFlightState>>,
}

impl InFlightBatch {
    pub fn new(first: i64, last: i64, batch: InFlightState) -> Self {
        debug_assert!(first <= last && last - first < super::MAX_BATCH_RECORDS);
        InFlightBatch {
            first,
            last,
            batch,
            offsets: None,
        }
    }

    pub fn len(&self) -> i64 {
        self.last - self.first + 1
    }

    /// How many records each state of [`Self::states_mut`] stands for.
    pub fn records_per_state(&self) -> u64 {
        match self.offsets {
            Some(_) => 1,
            None => u64::try_from(self.len()).unwrap_or(0),
        }
    }

    /// Switch to per-offset tracking (idempotent).
    pub fn split(&mut self) -> &mut Vec<InFlightState> {
        let (batch, len) = (&self.batch, self.len());
        self.offsets.get_or_insert_with(|| {
            // Bounded: new() asserts len <= MAX_BATCH_RECORDS.
            vec![batch.clone(); usize::try_from(len).unwrap_or(0)]
        })
    }

    /// Every state in the batch, with the first offset it applies to and its last.
    pub fn runs(&self) -> Vec<(i64, i64, &InFlightState)> {
        match &self.offsets {
            None => vec![(self.first, self.last, &self.batch)],
            Some(states) => {
                let mut runs: Vec<(i64, i64, &InFlightState)> = Vec::new();
                for (offset, state) in (self.first..).zip(states.iter()) {
                    match runs.last_mut() {
                        Some(run) if run.2 == state => run.1 = offset,
                        _ => runs.push((offset, offset, state)),
                    }
                }
                runs
            }
        }
    }

    pub fn states_mut(&mut self) -> Box<dyn Iterator<Item = (i64, &mut InFlightState)> + '_> {
        match &mut self.offsets {
            None => Box::new(std::iter::once((self.first, &mut self.batch))),
            Some(states) => Box::new((self.first..).zip(states.iter_mut())),
        }
    }

    pub fn any(&self, pred: impl Fn(&InFlightState) -> bool) -> bool {
        match &self.offsets {
            None => pred(&self.batch),
            Some(states) => states.iter().any(pred),
        }
    }
}
