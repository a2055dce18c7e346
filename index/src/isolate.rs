//! Indexing cabs in bounded child processes, a batch of cabs per process.
//!
//! Protocol: the parent starts the worker command (the host binary with [`WORKER_ARG`]) and
//! writes one JSON [`Job`] to its stdin: the database, the ids of a batch of cabs, the
//! limits. The worker sets its resource limits and lowers its CPU priority first (it runs at
//! nice [`WORKER_NICE`]), then indexes the cabs in the job's
//! order, each read from the database (read-only), and prints one JSON [`Progress`] line on
//! stdout when it starts a cab (`{"Start":ID}`) and one when it has its answer
//! (`{"Indexed":{"cab_id":ID,"index":{..}}}` or `{"Gone":{"cab_id":ID}}`), each flushed at
//! once; then exit status 0. So the parent always knows which cab the worker is on (the
//! first one not answered), and every answer it received stands whatever happens next.
//!
//! If the worker ends before answering every cab, exit status [`EXIT_UNAVAILABLE`] means it
//! could not work for a reason that is not the cab's (no database, bad job), and so does
//! Ctrl-C or a service stop: the cab and the rest are left for a later try. Any other end (a
//! signal, a crash, the wall-clock kill, a line out of protocol) is the current cab's doing
//! and is recorded as its failure; the rest of the batch goes to a new worker. The one
//! exception is a worker that runs out of its CPU time or memory after it indexed other
//! cabs: see [`BatchEnd::Retry`].

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::thread;
use std::time::{Duration, Instant};

use cerfs_db::{CabIndex, CabReader, CabRef, StoreError, StoreLocation};
use serde::{Deserialize, Serialize};

use crate::{index_cab_with, Limits, Worker};

/// A walker for `settings`; with rules that do not compile, the default rules (said once).
pub(crate) fn walker_for(
    settings: &cerfs_analysis::AnalysisSettings,
) -> Option<cerfs_analysis::Walker> {
    match cerfs_analysis::Walker::new(settings) {
        Ok(walker) => Some(walker),
        Err(e) => {
            tracing::error!("signature rules: {e}; signing with the default rules");
            let defaults = cerfs_analysis::AnalysisSettings {
                rules: cerfs_analysis::SignatureRules::default(),
                ..settings.clone()
            };
            cerfs_analysis::Walker::new(&defaults).ok()
        }
    }
}

mod child_watch;
mod worker;

use self::child_watch::{
    describe_failure, interrupted, join_tail, kill, spawn_line_reader, spawn_tail_reader,
    spent_process_limit, wait_until, CabClock, Line, Waited,
};
pub use self::worker::worker_main;
#[cfg(unix)]
pub use self::worker::WORKER_NICE;

/// The argument that makes the host binary run [`worker_main`] (`cerfs index-one`).
pub const WORKER_ARG: &str = "index-one";

/// Exit status of a worker that could not work for a reason that is not the cab's.
const EXIT_UNAVAILABLE: i32 = 3;

/// Longest job accepted on the worker's stdin.
const MAX_JOB: u64 = 1 << 20;
/// Stderr kept from a worker (its last bytes), for the failure reason.
const MAX_STDERR: usize = 16 << 10;
/// How often a wait for the worker looks at the stop flag.
const TICK: Duration = Duration::from_millis(50);

/// What the parent asks the worker.
#[derive(Debug, Serialize, Deserialize)]
struct Job {
    db: StoreLocation,
    /// The cabs, in the order they are to be indexed.
    cab_ids: Vec<i64>,
    limits: Limits,
    /// Walk and sign minidumps with these settings (`None`: facts only).
    analysis: Option<cerfs_analysis::AnalysisSettings>,
}

/// One line of the worker's stdout.
#[derive(Debug, Serialize, Deserialize)]
enum Progress {
    /// The worker begins this cab.
    Start(i64),
    /// What the cab holds (possibly with its own errors).
    Indexed { cab_id: i64, index: CabIndex },
    /// No complete cab with that id (removed meanwhile).
    Gone { cab_id: i64 },
}

/// The end of one cab's indexing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// What the cab holds (see [`CabIndex::status`]).
    Indexed(CabIndex),
    /// The cab no longer exists.
    Gone,
    /// The cab could not be indexed: it made the worker crash, overrun its bounds, or
    /// answer nonsense. The reason is recorded.
    Failed(String),
    /// The worker could not run (missing binary, unreadable database): retry later.
    Unavailable(String),
    /// Stopped by the caller before the end.
    Stopped,
}

/// How a worker ended its batch.
#[derive(Debug)]
pub(crate) enum BatchEnd {
    /// Every cab of the batch was answered.
    Done,
    /// The worker ended at cab `at` of the batch (the cabs before it were answered), which
    /// gets `outcome`: [`Outcome::Failed`] (the cabs after it may go to a new worker),
    /// [`Outcome::Unavailable`] or [`Outcome::Stopped`] (it and the rest stay queued).
    Ended { at: usize, outcome: Outcome },
    /// The worker ran out of its CPU time or memory on cab `at` after it had indexed the
    /// cabs before it. Those bounds count the whole process, so the cab may owe that to
    /// them: it goes first into a new worker, where the same end is its own. Comes only
    /// with `at > 0`, so every worker makes progress.
    Retry { at: usize, reason: String },
}

/// Indexes cab `cab` of the database at `db` with `worker`, within `limits`; `stop` ends it
/// early (the worker is killed, nothing is recorded).
pub fn index_isolated(
    worker: &Worker,
    db: &StoreLocation,
    cab: &CabRef,
    limits: &Limits,
    stop: &AtomicBool,
) -> Outcome {
    let mut answer = None;
    let end = index_batch(
        worker,
        db,
        std::slice::from_ref(cab),
        limits,
        None,
        stop,
        &mut |_, outcome| {
            answer = Some(outcome);
            Ok::<(), std::convert::Infallible>(())
        },
    );
    match end {
        Ok(BatchEnd::Done) => answer
            .unwrap_or_else(|| Outcome::Failed("the indexer ended without answering".to_owned())),
        Ok(BatchEnd::Ended { outcome, .. }) => outcome,
        // Not for the first cab of a worker; kept as a failure all the same.
        Ok(BatchEnd::Retry { reason, .. }) => Outcome::Failed(reason),
        Err(never) => match never {},
    }
}

/// Indexes `cabs` in order with one worker process (or in process), giving `each` every
/// answer as it comes ([`Outcome::Indexed`] or [`Outcome::Gone`]); says where the worker
/// stopped if it did not answer them all. An error of `each` kills the worker and is
/// returned.
pub(crate) fn index_batch<E>(
    worker: &Worker,
    db: &StoreLocation,
    cabs: &[CabRef],
    limits: &Limits,
    analysis: Option<&cerfs_analysis::AnalysisSettings>,
    stop: &AtomicBool,
    each: &mut dyn FnMut(&CabRef, Outcome) -> Result<(), E>,
) -> Result<BatchEnd, E> {
    match worker {
        Worker::InProcess => {
            let walker = analysis.and_then(crate::isolate::walker_for);
            // One reader (its connections) for the batch, unless a cab's reading failed.
            let mut kept: Option<CabReader> = None;
            for (at, cab) in cabs.iter().enumerate() {
                if stop.load(Ordering::Relaxed) {
                    let outcome = Outcome::Stopped;
                    return Ok(BatchEnd::Ended { at, outcome });
                }
                let opened = match kept.take() {
                    Some(reader) => reader.reopen(cab.cab_id),
                    None => CabReader::open_at(db, cab.cab_id),
                };
                let outcome = match opened {
                    Ok(mut reader) => {
                        let index = index_cab_with(&mut reader, limits, walker.as_ref());
                        if let Some(e) = reader.storage_error() {
                            let why = format!("cannot read the cab: {e}");
                            let outcome = Outcome::Unavailable(why);
                            return Ok(BatchEnd::Ended { at, outcome });
                        }
                        if index.error.is_none() {
                            kept = Some(reader);
                        }
                        Outcome::Indexed(index)
                    }
                    Err(StoreError::NotFound(_)) => Outcome::Gone,
                    Err(e) => {
                        let outcome = Outcome::Unavailable(format!("cannot read the cab: {e}"));
                        return Ok(BatchEnd::Ended { at, outcome });
                    }
                };
                each(cab, outcome)?;
            }
            Ok(BatchEnd::Done)
        }
        Worker::Command { program, args } => {
            let mut command = Command::new(program);
            command.args(args);
            run_child(command, db, cabs, limits, analysis, stop, each)
        }
    }
}

/// The worker process, killed and reaped when dropped (by every early return).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        kill(&mut self.0);
    }
}

/// [`BatchEnd::Ended`] at `at`, or [`BatchEnd::Done`] when every cab was answered (what the
/// worker does after its last answer is no cab's doing).
fn ended(cabs: &[CabRef], at: usize, outcome: Outcome) -> BatchEnd {
    if at < cabs.len() {
        BatchEnd::Ended { at, outcome }
    } else {
        BatchEnd::Done
    }
}

fn run_child<E>(
    mut command: Command,
    db: &StoreLocation,
    cabs: &[CabRef],
    limits: &Limits,
    analysis: Option<&cerfs_analysis::AnalysisSettings>,
    stop: &AtomicBool,
    each: &mut dyn FnMut(&CabRef, Outcome) -> Result<(), E>,
) -> Result<BatchEnd, E> {
    let unavailable = |why: String| {
        let outcome = Outcome::Unavailable(why);
        Ok(ended(cabs, 0, outcome))
    };
    let job = Job {
        db: db.clone(),
        cab_ids: cabs.iter().map(|cab| cab.cab_id).collect(),
        limits: limits.clone(),
        analysis: analysis.cloned(),
    };
    let job = match serde_json::to_vec(&job) {
        Ok(job) => job,
        Err(e) => return unavailable(format!("cannot encode the job: {e}")),
    };
    let program = command.get_program().to_string_lossy().into_owned();
    let mut child = match command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => Running(child),
        Err(e) => {
            return unavailable(format!(
                "cannot start the indexer worker `{program} {WORKER_ARG}`: {e}"
            ))
        }
    };
    tracing::debug!(cabs = cabs.len(), "indexer worker started");
    // From a thread: a big job may not fit in the pipe, and a worker that does not read it
    // must not block the parent (the write fails once the worker is killed).
    if let Some(mut stdin) = child.0.stdin.take() {
        thread::spawn(move || {
            let _ignored = stdin.write_all(&job);
        });
    }
    let Some(stdout) = child.0.stdout.take() else {
        return unavailable("the indexer worker has no stdout".to_owned());
    };
    let lines = spawn_line_reader(stdout, limits.max_output);
    let stderr = child
        .0
        .stderr
        .take()
        .map(|err| spawn_tail_reader(err, MAX_STDERR));

    let late = || {
        Outcome::Failed(format!(
            "indexing took longer than {} s and was stopped (a cab that hangs its reader?)",
            limits.wall_time.as_secs()
        ))
    };
    // The cab the worker is on: the first one not answered.
    let mut at = 0;
    let mut started = false;
    // The wall-clock limit is per cab, not per batch: every line restarts the clock.
    let mut clock = CabClock::start(child.0.id(), limits.wall_time);
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(ended(cabs, at, Outcome::Stopped));
        }
        let deadline = clock.deadline();
        let now = Instant::now();
        if now >= deadline {
            return Ok(ended(cabs, at, late()));
        }
        let line = match lines.recv_timeout((deadline - now).min(TICK)) {
            Ok(Line::Whole(line)) => line,
            Ok(Line::TooLong) => {
                let outcome = Outcome::Failed(format!(
                    "the indexer's answer is over {} bytes",
                    limits.max_output
                ));
                return Ok(ended(cabs, at, outcome));
            }
            Err(RecvTimeoutError::Timeout) => continue,
            // Stdout is closed: the worker has ended, or is about to.
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let progress = match serde_json::from_slice::<Progress>(&line) {
            Ok(progress) => progress,
            Err(e) => {
                let outcome = Outcome::Failed(format!("the indexer's answer is unreadable: {e}"));
                return Ok(ended(cabs, at, outcome));
            }
        };
        let Some(cab) = cabs.get(at) else {
            let outcome = Outcome::Failed("the indexer said more than it was asked".to_owned());
            return Ok(ended(cabs, at, outcome));
        };
        let answer = match progress {
            Progress::Start(id) if !started && id == cab.cab_id => None,
            Progress::Indexed { cab_id, index } if started && cab_id == cab.cab_id => {
                Some(Outcome::Indexed(index))
            }
            Progress::Gone { cab_id } if started && cab_id == cab.cab_id => Some(Outcome::Gone),
            _ => {
                let outcome = Outcome::Failed(format!(
                    "the indexer answered out of turn (on cab {})",
                    cab.cab_id
                ));
                return Ok(ended(cabs, at, outcome));
            }
        };
        clock.restart();
        match answer {
            None => started = true,
            Some(outcome) => {
                each(cab, outcome)?;
                at += 1;
                started = false;
            }
        }
    }

    let status = match wait_until(&mut child.0, clock.deadline(), stop) {
        Waited::Exited(status) => status,
        Waited::Late => return Ok(ended(cabs, at, late())),
        Waited::Stopped => return Ok(ended(cabs, at, Outcome::Stopped)),
        Waited::Error(e) => {
            let outcome = Outcome::Unavailable(format!("cannot wait for the indexer worker: {e}"));
            return Ok(ended(cabs, at, outcome));
        }
    };
    if at >= cabs.len() {
        return Ok(BatchEnd::Done);
    }
    let err = stderr.map(join_tail).unwrap_or_default();
    let err = String::from_utf8_lossy(&err);
    let last_err = err
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    let outcome = if status.success() {
        Outcome::Failed("the indexer ended without answering".to_owned())
    } else if status.code() == Some(EXIT_UNAVAILABLE) {
        Outcome::Unavailable(last_err.to_owned())
    } else if interrupted(status) {
        // Ctrl-C or a service stop reaches the whole process group: not the cab's doing.
        Outcome::Unavailable("the indexer worker was interrupted".to_owned())
    } else {
        let reason = describe_failure(status, &err, last_err, limits);
        if at > 0 && spent_process_limit(status, &err) {
            return Ok(BatchEnd::Retry { at, reason });
        }
        Outcome::Failed(reason)
    };
    Ok(BatchEnd::Ended { at, outcome })
}
