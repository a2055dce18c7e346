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

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use cerfs_db::{CabIndex, CabReader, CabRef, StoreError};
use serde::{Deserialize, Serialize};

use crate::{index_cab, Limits, Worker};

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
    db: PathBuf,
    /// The cabs, in the order they are to be indexed.
    cab_ids: Vec<i64>,
    limits: Limits,
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

/// The worker's side: reads a job from stdin, sets the resource limits, indexes the cabs
/// and prints its progress. Returns the process exit status. Call it from the host binary
/// when it is run as `<binary> index-one` (nothing else may be printed on stdout).
pub fn worker_main() -> i32 {
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().take(MAX_JOB).read_to_end(&mut input) {
        eprintln!("cerfs index-one: cannot read the job from stdin: {e}");
        return EXIT_UNAVAILABLE;
    }
    let job: Job = match serde_json::from_slice(&input) {
        Ok(job) => job,
        Err(e) => {
            eprintln!(
                "cerfs index-one: bad job on stdin ({e}); this command is run by the cab \
                 indexer of `cerfs mount` / `cerfs serve`, not by hand"
            );
            return EXIT_UNAVAILABLE;
        }
    };
    if let Err(e) = set_limits(&job.limits) {
        eprintln!("cerfs index-one: cannot set resource limits: {e}");
        return EXIT_UNAVAILABLE;
    }
    yield_to_clients();
    let mut out = std::io::stdout().lock();
    for &cab_id in &job.cab_ids {
        if let Err(e) = send(&mut out, &Progress::Start(cab_id)) {
            eprintln!("cerfs index-one: cannot write to stdout: {e}");
            return EXIT_UNAVAILABLE;
        }
        let answer = match CabReader::open(&job.db, cab_id) {
            Ok(reader) => Progress::Indexed {
                cab_id,
                index: index_cab(reader, &job.limits),
            },
            Err(StoreError::NotFound(_)) => Progress::Gone { cab_id },
            Err(e) => {
                eprintln!(
                    "cerfs index-one: cannot read cab {cab_id} of {}: {e}",
                    job.db.display()
                );
                return EXIT_UNAVAILABLE;
            }
        };
        if let Err(e) = send(&mut out, &answer) {
            eprintln!("cerfs index-one: cannot write the answer: {e}");
            return EXIT_UNAVAILABLE;
        }
    }
    0
}

/// Prints one line of progress and flushes it: the parent times each cab from the lines.
fn send(out: &mut impl Write, progress: &Progress) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(progress)?;
    line.push(b'\n');
    out.write_all(&line)?;
    out.flush()
}

#[cfg(unix)]
fn set_limits(limits: &Limits) -> std::io::Result<()> {
    use rlimit::Resource;
    // Never above a hard limit the service manager already set (that would fail).
    let lower = |resource: Resource, soft: u64, hard: u64| -> std::io::Result<()> {
        let (_, current_hard) = resource.get()?;
        resource.set(soft.min(current_hard), hard.min(current_hard))
    };
    // No core dump of a crash on a hostile cab.
    lower(Resource::CORE, 0, 0)?;
    lower(Resource::AS, limits.memory_bytes, limits.memory_bytes)?;
    // The CPU limit of one cab, for the whole batch: not scaled by the batch size, which
    // would let one cab burn the batch's total (the wall-clock kill would then be its only
    // bound). A cab that meets the limit after others is tried again first in a new worker
    // (BatchEnd::Retry), and only failed for it when it alone used it all. That redoes at
    // most one cab per worker, and only after a minute of work.
    let cpu = limits.cpu_time.as_secs().max(1);
    // SIGXCPU at the soft limit; SIGKILL at the hard one if SIGXCPU is ignored.
    lower(Resource::CPU, cpu, cpu + 5)?;
    Ok(())
}

/// The nice value a worker runs at: indexing can wait, clients of the share should not. On a
/// busy machine it gets about a tenth of a CPU next to each busy server thread at nice 0
/// (CFS weights 110 against 1024), and all the idle time.
#[cfg(unix)]
pub const WORKER_NICE: i32 = 10;

/// Sets this process's nice value to [`WORKER_NICE`]. Best effort: a worker already nicer
/// than that (a server run at nice 15) may not lower it, and stays as it is.
#[cfg(unix)]
fn yield_to_clients() {
    #[allow(unsafe_code)]
    // SAFETY: setpriority(2) takes integers and touches no memory of ours.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, WORKER_NICE) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::PermissionDenied {
            eprintln!("cerfs index-one: cannot lower the priority: {e}");
        }
    }
}

#[cfg(not(unix))]
fn yield_to_clients() {}

#[cfg(not(unix))]
fn set_limits(_limits: &Limits) -> std::io::Result<()> {
    // Only the wall-clock kill applies.
    Ok(())
}

/// Indexes cab `cab` of the database at `db` with `worker`, within `limits`; `stop` ends it
/// early (the worker is killed, nothing is recorded).
pub fn index_isolated(
    worker: &Worker,
    db: &Path,
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
    db: &Path,
    cabs: &[CabRef],
    limits: &Limits,
    stop: &AtomicBool,
    each: &mut dyn FnMut(&CabRef, Outcome) -> Result<(), E>,
) -> Result<BatchEnd, E> {
    match worker {
        Worker::InProcess => {
            for (at, cab) in cabs.iter().enumerate() {
                if stop.load(Ordering::Relaxed) {
                    let outcome = Outcome::Stopped;
                    return Ok(BatchEnd::Ended { at, outcome });
                }
                let outcome = match CabReader::open(db, cab.cab_id) {
                    Ok(reader) => Outcome::Indexed(index_cab(reader, limits)),
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
            run_child(command, db, cabs, limits, stop, each)
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
    db: &Path,
    cabs: &[CabRef],
    limits: &Limits,
    stop: &AtomicBool,
    each: &mut dyn FnMut(&CabRef, Outcome) -> Result<(), E>,
) -> Result<BatchEnd, E> {
    let unavailable = |why: String| {
        let outcome = Outcome::Unavailable(why);
        Ok(ended(cabs, 0, outcome))
    };
    let job = Job {
        db: db.to_path_buf(),
        cab_ids: cabs.iter().map(|cab| cab.cab_id).collect(),
        limits: limits.clone(),
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

/// Whether the worker ran out of a bound of the whole process rather than of one cab: its
/// CPU time (SIGXCPU; SIGKILL at the hard limit) or its memory.
fn spent_process_limit(status: ExitStatus, err: &str) -> bool {
    if err.contains("memory allocation of") {
        return true;
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        matches!(status.signal(), Some(9 | 24))
    }
    #[cfg(not(unix))]
    {
        let _ = status;
        false
    }
}

/// Whether the worker died of SIGHUP, SIGINT or SIGTERM (on Windows: of Ctrl-C or
/// Ctrl-Break, which reach every process of the console, the worker included).
fn interrupted(status: ExitStatus) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        matches!(status.signal(), Some(1 | 2 | 15))
    }
    #[cfg(windows)]
    {
        // STATUS_CONTROL_C_EXIT: how a process without a Ctrl-C handler ends on one.
        // Unverified (no Windows build here): README.md, "Windows".
        const STATUS_CONTROL_C_EXIT: u32 = 0xC000_013A;
        status.code().map(|code| code as u32) == Some(STATUS_CONTROL_C_EXIT)
    }
    #[cfg(not(any(unix, windows)))]
    {
        let _ = status;
        false
    }
}

/// Why a worker ended badly, for the cab's `index_error`.
fn describe_failure(status: ExitStatus, err: &str, last_err: &str, limits: &Limits) -> String {
    if err.contains("memory allocation of") {
        return format!(
            "the indexer ran out of its memory limit ({} MiB): {last_err}",
            limits.memory_bytes >> 20
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return match signal {
                24 => format!(
                    "the indexer used more than {} s of CPU time and was stopped",
                    limits.cpu_time.as_secs()
                ),
                9 => "the indexer was killed (SIGKILL), probably for using too much memory or \
                      CPU time"
                    .to_owned(),
                6 => format!("the indexer aborted (SIGABRT): {last_err}"),
                11 => "the indexer crashed (SIGSEGV)".to_owned(),
                other => format!("the indexer ended with signal {other}"),
            };
        }
    }
    match status.code() {
        Some(code) if last_err.is_empty() => format!("the indexer failed with exit status {code}"),
        Some(code) => format!("the indexer failed (exit status {code}): {last_err}"),
        None => format!("the indexer ended abnormally: {last_err}"),
    }
}

enum Waited {
    Exited(ExitStatus),
    Late,
    Stopped,
    Error(std::io::Error),
}

/// The wall-clock budget of the cab a worker is on. Time the worker spent waiting for a CPU
/// does not count: it runs at nice 10, and a busy server must not turn a slow cab into a
/// "hung" one.
struct CabClock {
    pid: u32,
    limit: Duration,
    started: Instant,
    waited_at_start: Option<Duration>,
}

impl CabClock {
    fn start(pid: u32, limit: Duration) -> Self {
        CabClock {
            pid,
            limit,
            started: Instant::now(),
            waited_at_start: cpu_wait(pid),
        }
    }

    fn restart(&mut self) {
        *self = CabClock::start(self.pid, self.limit);
    }

    /// When the cab is late. The kernel is asked only once the plain limit has passed.
    fn deadline(&self) -> Instant {
        let plain = self.started + self.limit;
        if Instant::now() < plain {
            return plain;
        }
        self.deadline_after_waiting(cpu_wait(self.pid))
    }

    /// The limit after the start, plus the time waited for a CPU since (`waited_now`: the
    /// worker's total so far; unknown either time: nothing is added).
    fn deadline_after_waiting(&self, waited_now: Option<Duration>) -> Instant {
        let waited = match (self.waited_at_start, waited_now) {
            (Some(then), Some(now)) => now.saturating_sub(then),
            _ => Duration::ZERO,
        };
        self.started + self.limit + waited
    }
}

/// How long process `pid` has been runnable but waiting for a CPU, in total; `None` where
/// the kernel does not say (not Linux, no schedstat, the process is gone).
fn cpu_wait(pid: u32) -> Option<Duration> {
    #[cfg(target_os = "linux")]
    {
        let text = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).ok()?;
        parse_schedstat(&text)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pid;
        None
    }
}

/// `/proc/PID/schedstat`: time on the CPU, time waiting on a run queue (both ns), slices.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_schedstat(text: &str) -> Option<Duration> {
    let waited: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
    Some(Duration::from_nanos(waited))
}

/// Waits for the child until `deadline` or `stop`, polling its state (a child cannot be
/// waited for with a timeout otherwise without an extra thread per worker). Called once
/// the worker closed its stdout, when its exit is near.
fn wait_until(child: &mut Child, deadline: Instant, stop: &AtomicBool) -> Waited {
    let mut pause = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Waited::Exited(status),
            Ok(None) => {}
            Err(e) => return Waited::Error(e),
        }
        if stop.load(Ordering::Relaxed) {
            return Waited::Stopped;
        }
        let now = Instant::now();
        if now >= deadline {
            return Waited::Late;
        }
        thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(TICK);
    }
}

fn kill(child: &mut Child) {
    let _already_gone = child.kill();
    let _reaped = child.wait();
}

/// A line of the worker's stdout.
enum Line {
    /// A whole line, without its end.
    Whole(Vec<u8>),
    /// A line longer than the cap (dropped).
    TooLong,
}

/// Reads a pipe line by line in a thread, sending each line as it comes; a line over `cap`
/// bytes is drained and sent as [`Line::TooLong`]. An unfinished last line is dropped: the
/// exit status says why the worker stopped. Ends at the end of the pipe (the receiver then
/// sees the channel closed) or when the receiver is gone.
fn spawn_line_reader<R: Read + Send + 'static>(pipe: R, cap: usize) -> mpsc::Receiver<Line> {
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        let mut reader = BufReader::with_capacity(64 << 10, pipe);
        let mut line = Vec::new();
        let mut too_long = false;
        loop {
            let (used, complete) = match reader.fill_buf() {
                Ok([]) => return,
                Ok(buf) => {
                    let end = buf.iter().position(|&b| b == b'\n');
                    let part = buf.get(..end.unwrap_or(buf.len())).unwrap_or_default();
                    if too_long || part.len() > cap.saturating_sub(line.len()) {
                        too_long = true;
                        line.clear();
                    } else {
                        line.extend_from_slice(part);
                    }
                    (end.map_or(buf.len(), |i| i + 1), end.is_some())
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            reader.consume(used);
            if complete {
                let sent = if too_long {
                    Line::TooLong
                } else {
                    Line::Whole(std::mem::take(&mut line))
                };
                too_long = false;
                if sender.send(sent).is_err() {
                    return;
                }
            }
        }
    });
    receiver
}

/// Reads a pipe to its end in a thread, keeping its last `cap` bytes (a worker that indexed
/// several cabs may have written about the earlier ones; the last lines tell how it ended).
fn spawn_tail_reader<R: Read + Send + 'static>(
    mut pipe: R,
    cap: usize,
) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = vec![0u8; 16 << 10];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    kept.extend_from_slice(buf.get(..n).unwrap_or_default());
                    let excess = kept.len().saturating_sub(cap);
                    kept.drain(..excess);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        kept
    })
}

fn join_tail(handle: thread::JoinHandle<Vec<u8>>) -> Vec<u8> {
    handle.join().unwrap_or_default()
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    /// The nice value of the calling thread (Linux keeps one per thread).
    fn own_nice() -> i32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        // Fields after the command name, which is in parentheses and may hold spaces.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        rest.split(' ').nth(16).unwrap().parse().unwrap()
    }

    #[test]
    fn time_waiting_for_a_cpu_moves_the_deadline() {
        let clock = super::CabClock::start(std::process::id(), Duration::from_secs(10));
        // This process is there: the kernel tells how long it has waited.
        let waited = super::cpu_wait(std::process::id()).unwrap();
        let then = clock.waited_at_start.unwrap();
        assert!(waited >= then);
        let plain = clock.started + Duration::from_secs(10);
        assert_eq!(clock.deadline_after_waiting(Some(then)), plain);
        assert_eq!(
            clock.deadline_after_waiting(Some(then + Duration::from_secs(7))),
            plain + Duration::from_secs(7)
        );
        // Unknown now (the worker is gone): the plain limit.
        assert_eq!(clock.deadline_after_waiting(None), plain);
        // Before the plain limit the deadline is the plain one.
        assert_eq!(clock.deadline(), plain);
    }

    #[test]
    fn schedstat_is_read_and_nonsense_is_not() {
        assert_eq!(
            super::parse_schedstat("123 4500000000 7\n"),
            Some(Duration::from_millis(4500))
        );
        assert_eq!(super::parse_schedstat("123\n"), None);
        assert_eq!(super::parse_schedstat("1 x 2"), None);
    }

    #[test]
    fn a_worker_lowers_its_priority_to_worker_nice() {
        // On a thread of its own: the nice value set is that thread's only.
        std::thread::spawn(|| {
            let before = own_nice();
            super::yield_to_clients();
            // A test run already nicer than that stays as nice.
            assert_eq!(own_nice(), super::WORKER_NICE.max(before));
        })
        .join()
        .unwrap();
    }
}
