//! The background indexer thread and the foreground run of `cerfs reindex`.

use std::cell::RefCell;
use std::collections::HashSet;
use std::ffi::OsString;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use cerfs_db::{CabRef, IndexDb, IndexStatus, StoreError, StoreLocation};

use crate::isolate::{index_batch, BatchEnd};
use crate::{Limits, Outcome, WORKER_ARG};

/// How a cab is indexed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Worker {
    /// In child processes, a batch of cabs each: `program` with `args` (the host binary and
    /// [`WORKER_ARG`]), which must call [`crate::worker_main`]. Bounded in memory, CPU and
    /// wall time (see [`Limits`]).
    Command {
        /// The executable.
        program: PathBuf,
        /// Its arguments.
        args: Vec<OsString>,
    },
    /// In the indexer's own thread, without any bound: for tests and trusted cabs only.
    InProcess,
}

impl Worker {
    /// The running executable with [`WORKER_ARG`] (`cerfs index-one`).
    pub fn current_exe() -> io::Result<Worker> {
        Ok(Worker::Command {
            program: std::env::current_exe()?,
            args: vec![OsString::from(WORKER_ARG)],
        })
    }
}

/// How the indexer works.
#[derive(Debug, Clone)]
pub struct IndexerConfig {
    /// Where each cab is indexed.
    pub worker: Worker,
    /// Bounds per cab.
    pub limits: Limits,
    /// How often the background indexer looks for new cabs.
    pub poll_interval: Duration,
    /// Cabs fetched from the queue at a time, and indexed by one worker process (the
    /// bounds stay those of one cab: see [`Limits`]).
    pub batch: usize,
    /// Whether and how minidumps' stacks are walked and signed.
    pub analysis: Analysis,
}

/// Stack walking in the indexer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Analysis {
    /// Minidumps are parsed for their facts only.
    Off,
    /// Walked and signed with these settings, completed before every batch from the
    /// database's stored ones (`cerfs symbols`, `cerfs signature-rules`; see
    /// [`cerfs_analysis::AnalysisSettings::completed_from`]): a change by the admin
    /// applies to the next batch without a restart.
    On(cerfs_analysis::AnalysisSettings),
}

impl Analysis {
    /// The settings for the next batch over `db`.
    fn resolve(&self, db: &mut IndexDb) -> Option<cerfs_analysis::AnalysisSettings> {
        let Analysis::On(base) = self else {
            return None;
        };
        let cache = db.location().default_symbol_cache();
        let db = RefCell::new(db);
        let get = |key: &str| db.borrow_mut().server_setting(key).ok().flatten();
        Some(base.completed_from(&get, cache))
    }
}

impl IndexerConfig {
    /// Default limits, a poll every second, batches of 64: a worker's start (a process, its
    /// connections, its walker and rules) is paid once for what a busy second brings.
    pub fn new(worker: Worker) -> Self {
        IndexerConfig {
            worker,
            limits: Limits::default(),
            poll_interval: Duration::from_secs(1),
            batch: 64,
            analysis: Analysis::Off,
        }
    }
}

/// Why a run of the indexer stopped before the queue was empty.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The database failed.
    #[error("database: {0}")]
    Store(#[from] StoreError),
    /// The worker could not run; the cab stays queued.
    #[error("the indexer worker could not run: {0}")]
    Unavailable(String),
}

/// What a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Cabs whose every member was read.
    pub indexed: usize,
    /// Cabs read with some member unreadable.
    pub partial: usize,
    /// Cabs that could not be read at all.
    pub failed: usize,
    /// Whether the run left the queue to another head's indexer, which holds the indexer's
    /// lock of a PostgreSQL store (one indexer at a time across heads).
    pub led_elsewhere: bool,
}

impl Summary {
    /// All cabs recorded.
    pub fn total(&self) -> usize {
        self.indexed + self.partial + self.failed
    }
}

/// Indexes queued cabs, batch by batch, until a batch comes back short of full (the queue
/// was empty then) or `stop` is set; `each` sees every cab and
/// the status recorded for it with the reason of a failure. On a PostgreSQL store whose
/// indexer's lock another head holds, it indexes nothing ([`Summary::led_elsewhere`]).
///
/// Each batch fetched from the queue goes to one worker process, which answers cab by cab:
/// when it dies on a cab, that cab is recorded as failed (the cabs it answered before keep
/// their results) and the rest of the batch goes to a new worker.
pub fn index_pending(
    db: &mut IndexDb,
    config: &IndexerConfig,
    stop: &AtomicBool,
    each: &mut dyn FnMut(&CabRef, IndexStatus, Option<&str>),
) -> Result<Summary, IndexError> {
    let mut summary = Summary::default();
    // A cab tried in this run and still queued (cannot happen unless a write was lost) is
    // not tried again: the run always ends.
    let mut tried = HashSet::new();
    let location = db.location().clone();
    loop {
        if !db.lead()? {
            summary.led_elsewhere = true;
            return Ok(summary);
        }
        let batch = db.pending(config.batch.max(1))?;
        // A batch short of full emptied the queue: cabs queued since wait for the next
        // poll, so that a steady trickle of reports gathers into one worker per poll rather
        // than a worker process per cab or two.
        let last = batch.len() < config.batch.max(1);
        let fresh: Vec<CabRef> = batch
            .into_iter()
            .filter(|cab| tried.insert(cab.cab_id))
            .collect();
        if fresh.is_empty() {
            return Ok(summary);
        }
        let analysis = config.analysis.resolve(db);
        let mut rest = fresh.as_slice();
        while !rest.is_empty() {
            if stop.load(Ordering::Relaxed) {
                return Ok(summary);
            }
            let end = index_batch(
                &config.worker,
                &location,
                rest,
                &config.limits,
                analysis.as_ref(),
                stop,
                &mut |cab, outcome| record(db, cab, outcome, &mut summary, each),
            )?;
            rest = match end {
                BatchEnd::Done => &[],
                BatchEnd::Ended { at, outcome } => {
                    match outcome {
                        Outcome::Stopped => return Ok(summary),
                        Outcome::Unavailable(why) => return Err(IndexError::Unavailable(why)),
                        outcome => {
                            if let Some(cab) = rest.get(at) {
                                record(db, cab, outcome, &mut summary, each)?;
                            }
                        }
                    }
                    rest.get(at + 1..).unwrap_or_default()
                }
                BatchEnd::Retry { at, reason } => {
                    if let Some(cab) = rest.get(at) {
                        tracing::info!(subpath = %cab.subpath, cab = %cab.name, reason = %reason,
                            "the indexer worker ran out of its CPU time or memory after other cabs; \
                             trying this cab again first in a new worker");
                    }
                    rest.get(at..).unwrap_or_default()
                }
            };
        }
        if last {
            return Ok(summary);
        }
    }
}

/// Records the outcome of one cab, counts it and tells `each`.
fn record(
    db: &mut IndexDb,
    cab: &CabRef,
    outcome: Outcome,
    summary: &mut Summary,
    each: &mut dyn FnMut(&CabRef, IndexStatus, Option<&str>),
) -> Result<(), IndexError> {
    let recorded = match outcome {
        Outcome::Indexed(index) => {
            let problem = index.problem();
            db.store_index(cab.cab_id, &index)?
                .map(|status| (status, problem))
        }
        Outcome::Failed(reason) => db
            .store_failure(cab.cab_id, &reason)?
            .then_some((IndexStatus::Failed, Some(reason))),
        // Nothing to record: the cab is gone, or stays queued.
        Outcome::Gone | Outcome::Stopped | Outcome::Unavailable(_) => None,
    };
    let Some((status, problem)) = recorded else {
        return Ok(());
    };
    match status {
        IndexStatus::Indexed => {
            summary.indexed += 1;
            tracing::info!(subpath = %cab.subpath, cab = %cab.name, "cab indexed");
        }
        IndexStatus::Partial => {
            summary.partial += 1;
            tracing::warn!(subpath = %cab.subpath, cab = %cab.name,
                problem = problem.as_deref().unwrap_or(""),
                "cab indexed in part: some members could not be read");
        }
        IndexStatus::Failed => {
            summary.failed += 1;
            tracing::warn!(subpath = %cab.subpath, cab = %cab.name,
                reason = problem.as_deref().unwrap_or(""),
                "cab could not be indexed (it stays stored intact)");
        }
    }
    each(cab, status, problem.as_deref());
    Ok(())
}

struct Shared {
    stop: AtomicBool,
    woken: Mutex<bool>,
    bell: Condvar,
}

impl Shared {
    fn woken(&self) -> MutexGuard<'_, bool> {
        self.woken.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The background indexer of a server; stops (and joins its thread) on [`stop`] or drop.
///
/// [`stop`]: IndexerHandle::stop
pub struct IndexerHandle {
    shared: Arc<Shared>,
    thread: Option<thread::JoinHandle<()>>,
}

impl std::fmt::Debug for IndexerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexerHandle").finish_non_exhaustive()
    }
}

impl IndexerHandle {
    /// Makes the indexer look for new cabs now rather than at its next poll.
    pub fn wake(&self) {
        *self.shared.woken() = true;
        self.shared.bell.notify_all();
    }

    /// Stops the indexer: a worker in progress is killed (its cab stays queued) and the
    /// thread is joined.
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.wake();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the cab indexer thread panicked");
            }
        }
    }
}

impl Drop for IndexerHandle {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

/// Starts the background indexer of the store at `db` with the default configuration:
/// cabs in child processes of the running executable (`<current exe> index-one`, see
/// [`crate::worker_main`]), a poll every second. For `cerfs mount` and `cerfs serve`.
pub fn spawn_indexer(db: &StoreLocation) -> io::Result<IndexerHandle> {
    spawn_indexer_with(db, IndexerConfig::new(Worker::current_exe()?))
}

/// Starts the background indexer with `config`.
pub fn spawn_indexer_with(db: &StoreLocation, config: IndexerConfig) -> io::Result<IndexerHandle> {
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        woken: Mutex::new(false),
        bell: Condvar::new(),
    });
    let location = db.clone();
    let thread = thread::Builder::new()
        .name("cerfs-indexer".to_owned())
        .spawn({
            let shared = Arc::clone(&shared);
            move || run(&location, &config, &shared)
        })?;
    Ok(IndexerHandle {
        shared,
        thread: Some(thread),
    })
}

fn run(location: &StoreLocation, config: &IndexerConfig, shared: &Shared) {
    tracing::info!(db = %location, "cab indexer started");
    let mut db: Option<IndexDb> = None;
    // Back off (up to a minute) while the database or the worker is unavailable.
    let mut backoff = config.poll_interval;
    let mut last_problem = String::new();
    while !shared.stop.load(Ordering::Relaxed) {
        let result = match &mut db {
            Some(db) => index_pending(db, config, &shared.stop, &mut |_, _, _| {}),
            None => match IndexDb::open_at(location) {
                Ok(opened) => {
                    db = Some(opened);
                    continue;
                }
                Err(e) => Err(IndexError::Store(e.into())),
            },
        };
        let pause = match result {
            Ok(_) => {
                backoff = config.poll_interval;
                last_problem.clear();
                config.poll_interval
            }
            Err(_) if shared.stop.load(Ordering::Relaxed) => break,
            Err(e) => {
                let text = e.to_string();
                if text != last_problem {
                    tracing::error!("cab indexer: {text}; retrying");
                    last_problem = text;
                }
                if matches!(e, IndexError::Store(_)) {
                    // Reopen: the file may have been replaced, the connection lost.
                    db = None;
                }
                backoff = (backoff * 2).min(Duration::from_secs(60));
                backoff
            }
        };
        let mut woken = shared.woken();
        if !*woken && !shared.stop.load(Ordering::Relaxed) {
            woken = shared
                .bell
                .wait_timeout(woken, pause)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        *woken = false;
    }
    tracing::info!("cab indexer stopped");
}
