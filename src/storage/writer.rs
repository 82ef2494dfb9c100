//! The store's one writer thread under `--fsync`: group commit.
//!
//! With `--fsync`, every write of the partition logs and the metadata goes through one
//! queue to one thread. The thread takes what
//! has queued up, applies each batch in queue order, then syncs the WAL once for all of
//! them when any asked for it. With `--fsync`, concurrent producers thus share a sync
//! (group commit) without parking a thread each inside RocksDB's own write group, and an
//! append enqueued under its partition's lock reaches the disk in the order offsets were
//! assigned. A caller either waits (the blocking `Store::write`) or awaits a [`Pending`].
//!
//! A failed write or sync leaves the database in a state the broker's memory no longer
//! matches, so the writer refuses every later write, as Kafka takes a failed log dir
//! offline: the error reaches each producer as KAFKA_STORAGE_ERROR and a restart reloads
//! the state from what is on disk.

use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc;
use std::sync::Arc;
use std::task::{Context, Poll};

use rocksdb::{WriteBatch, WriteOptions, DB};

use super::StoreError;

/// Batches taken from the queue per pass, at most: bounds how long the first of them waits
/// for the rest when producers keep the queue full.
const MAX_GROUP: usize = 512;

/// How a finished write reaches its caller.
enum Done {
    Wait(mpsc::SyncSender<Result<(), String>>),
    Notify(tokio::sync::oneshot::Sender<Result<(), String>>),
}

impl Done {
    fn send(self, result: Result<(), String>) {
        // A caller that gave up (its request was dropped) needs no answer.
        let _ = match self {
            Done::Wait(tx) => tx.send(result).map_err(|_| ()),
            Done::Notify(tx) => tx.send(result).map_err(|_| ()),
        };
    }
}

struct Job {
    batch: WriteBatch,
    sync: bool,
    done: Done,
}

/// The queue's sending side, owned by the store; dropping it ends the thread.
pub(super) struct Writer {
    tx: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A write queued with [`Writer::submit`]: resolves once it is applied (and synced, if it
/// asked to be).
pub struct Pending(PendingState);

enum PendingState {
    Queued(tokio::sync::oneshot::Receiver<Result<(), String>>),
    Failed(Option<String>),
    Done(Option<Result<(), StoreError>>),
}

impl Future for Pending {
    type Output = Result<(), StoreError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.0 {
            PendingState::Queued(rx) => Pin::new(rx).poll(cx).map(|r| match r {
                Ok(result) => result.map_err(StoreError::Failed),
                Err(_) => Err(StoreError::Failed("the store's writer stopped".into())),
            }),
            PendingState::Failed(e) => {
                Poll::Ready(Err(StoreError::Failed(e.take().unwrap_or_default())))
            }
            PendingState::Done(r) => Poll::Ready(r.take().unwrap_or(Ok(()))),
        }
    }
}

impl Pending {
    /// A write already applied on the caller's thread.
    pub(super) fn done(result: Result<(), StoreError>) -> Pending {
        Pending(PendingState::Done(Some(result)))
    }

    /// The error of a write that has already failed (applied at once, or refused by a
    /// writer that stopped), so the caller can answer before changing any state.
    pub fn failed_now(&mut self) -> Option<StoreError> {
        match &mut self.0 {
            PendingState::Done(r @ Some(Err(_))) => r.take().and_then(Result::err),
            PendingState::Failed(e) => Some(StoreError::Failed(e.take().unwrap_or_default())),
            _ => None,
        }
    }
}

impl Writer {
    pub(super) fn start(db: Arc<DB>) -> Result<Writer, StoreError> {
        let (tx, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("klamm-store-writer".into())
            .spawn(move || run(&db, rx))
            .map_err(|e| StoreError::Failed(format!("cannot start the writer thread: {e}")))?;
        Ok(Writer {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    fn enqueue(&self, batch: WriteBatch, sync: bool, done: Done) -> Result<(), String> {
        let job = Job { batch, sync, done };
        match &self.tx {
            Some(tx) => tx
                .send(job)
                .map_err(|_| "the store's writer stopped".to_string()),
            None => Err("the store is closed".into()),
        }
    }

    /// Applies `batch` and waits for it, blocking the calling thread.
    pub(super) fn write(&self, batch: WriteBatch, sync: bool) -> Result<(), StoreError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.enqueue(batch, sync, Done::Wait(tx))
            .map_err(StoreError::Failed)?;
        rx.recv()
            .map_err(|_| StoreError::Failed("the store's writer stopped".into()))?
            .map_err(StoreError::Failed)
    }

    /// Queues `batch` now (so it is ordered after every write queued before this call) and
    /// returns what to await for its completion.
    pub(super) fn submit(&self, batch: WriteBatch, sync: bool) -> Pending {
        let (tx, rx) = tokio::sync::oneshot::channel();
        match self.enqueue(batch, sync, Done::Notify(tx)) {
            Ok(()) => Pending(PendingState::Queued(rx)),
            Err(e) => Pending(PendingState::Failed(Some(e))),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the queue lets the thread finish what is queued and exit; joining it
        // releases its handle on the database before the store's own goes.
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(db: &DB, rx: mpsc::Receiver<Job>) {
    let no_sync = WriteOptions::default();
    let mut failed: Option<String> = None;
    let mut jobs = Vec::with_capacity(64);
    while let Ok(first) = rx.recv() {
        jobs.push(first);
        while jobs.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let mut sync = false;
        let mut results = Vec::with_capacity(jobs.len());
        for job in jobs.iter_mut() {
            sync |= job.sync;
            let batch = std::mem::take(&mut job.batch);
            let result = match &failed {
                Some(e) => Err(format!("an earlier write failed: {e}")),
                None if batch.is_empty() => Ok(()),
                None => db.write_opt(batch, &no_sync).map_err(|e| e.to_string()),
            };
            if let Err(e) = &result {
                if failed.is_none() {
                    tracing::error!(error = %e, "store write failed; refusing every later write");
                    failed = Some(e.clone());
                }
            }
            results.push(result);
        }
        if sync && failed.is_none() {
            // One sync makes every write above durable: the WAL is written in queue order.
            if let Err(e) = db.flush_wal(true) {
                tracing::error!(error = %e, "WAL sync failed; refusing every later write");
                let e = e.to_string();
                for r in results.iter_mut().filter(|r| r.is_ok()) {
                    *r = Err(e.clone());
                }
                failed = Some(e);
            }
        }
        for (job, result) in jobs.drain(..).zip(results) {
            job.done.send(result);
        }
    }
}
