//! Blocking storage work kept off the async workers.
//!
//! RocksDB calls block: a write waits for its WAL sync under `--fsync`, a read may wait for
//! the disk, a cleaner pass reads a whole log. On the two async workers of a two-core
//! machine, one such call would stall every other connection's heartbeats and polls. Every
//! handler runs its storage work through [`blocking`], which hands the worker's other tasks
//! to a fresh worker for as long as the call lasts (tokio's `block_in_place`). The work
//! itself runs where it is, so it may borrow the request; concurrent appends of many
//! connections thereby reach RocksDB on as many threads at once, and RocksDB commits them
//! together (one WAL write and, with `--fsync`, one sync per write group).

/// Runs `f`, a call that may block on storage, without stalling the async workers. On a
/// current-thread runtime (the test harness, the CLI) there is no other worker to hand
/// tasks to, and `f` simply runs.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// How many storage handlers run at once; the rest wait their turn without holding a
/// thread. Enough for RocksDB to group many producers' syncs, few enough that what each
/// holds (a record being checked, a batch being converted) stays a bounded sum.
pub const MAX_CONCURRENT: usize = 32;

static PERMITS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_CONCURRENT);

/// Drives `fut`, a handler that calls storage but never waits on anything else, the same
/// way: on a worker of its own for as long as it runs, at most `MAX_CONCURRENT` at once.
pub async fn run<F: std::future::Future>(fut: F) -> F::Output {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            let _permit = PERMITS.acquire().await;
            tokio::task::block_in_place(|| h.block_on(fut))
        }
        _ => fut.await,
    }
}
