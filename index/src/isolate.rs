//! Indexing one cab in a bounded child process.
//!
//! Protocol: the parent starts the worker command (the host binary with [`WORKER_ARG`]),
//! writes one JSON [`Job`] to its stdin and closes it. The worker sets its resource limits
//! first, then reads the cab from the database (read-only) and prints one JSON [`Reply`]
//! on stdout, exit status 0. Exit status [`EXIT_UNAVAILABLE`] means the worker could not do
//! its job for a reason that is not the cab's (no database, bad job): the cab is left for a
//! later try. Any other end (a signal, a crash, the wall-clock kill, an unreadable answer)
//! is the cab's doing and is recorded as its failure.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
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
/// Stderr kept from a worker, for the failure reason.
const MAX_STDERR: usize = 16 << 10;

/// What the parent asks the worker.
#[derive(Debug, Serialize, Deserialize)]
struct Job {
    db: PathBuf,
    cab_id: i64,
    limits: Limits,
}

/// What the worker answers.
#[derive(Debug, Serialize, Deserialize)]
enum Reply {
    /// What the cab holds (possibly with its own errors).
    Done(CabIndex),
    /// No complete cab with that id (removed meanwhile).
    Gone,
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

/// The worker's side: reads a job from stdin, sets the resource limits, indexes the cab and
/// prints the answer. Returns the process exit status. Call it from the host binary when
/// it is run as `<binary> index-one` (nothing else may be printed on stdout).
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
    let reply = match CabReader::open(&job.db, job.cab_id) {
        Ok(reader) => Reply::Done(index_cab(reader, &job.limits)),
        Err(StoreError::NotFound(_)) => Reply::Gone,
        Err(e) => {
            eprintln!(
                "cerfs index-one: cannot read cab {} of {}: {e}",
                job.cab_id,
                job.db.display()
            );
            return EXIT_UNAVAILABLE;
        }
    };
    let mut out = std::io::stdout().lock();
    match serde_json::to_writer(&mut out, &reply).map(|()| out.flush()) {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            eprintln!("cerfs index-one: cannot write the answer: {e}");
            EXIT_UNAVAILABLE
        }
        Err(e) => {
            eprintln!("cerfs index-one: cannot write the answer: {e}");
            EXIT_UNAVAILABLE
        }
    }
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
    let cpu = limits.cpu_time.as_secs().max(1);
    // SIGXCPU at the soft limit; SIGKILL at the hard one if SIGXCPU is ignored.
    lower(Resource::CPU, cpu, cpu + 5)?;
    Ok(())
}

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
    match worker {
        Worker::InProcess => match CabReader::open(db, cab.cab_id) {
            Ok(reader) => Outcome::Indexed(index_cab(reader, limits)),
            Err(StoreError::NotFound(_)) => Outcome::Gone,
            Err(e) => Outcome::Unavailable(format!("cannot read the cab: {e}")),
        },
        Worker::Command { program, args } => {
            let mut command = Command::new(program);
            command.args(args);
            run_child(command, db, cab, limits, stop)
        }
    }
}

fn run_child(
    mut command: Command,
    db: &Path,
    cab: &CabRef,
    limits: &Limits,
    stop: &AtomicBool,
) -> Outcome {
    let job = Job {
        db: db.to_path_buf(),
        cab_id: cab.cab_id,
        limits: limits.clone(),
    };
    let job = match serde_json::to_vec(&job) {
        Ok(job) => job,
        Err(e) => return Outcome::Unavailable(format!("cannot encode the job: {e}")),
    };
    let program = command.get_program().to_string_lossy().into_owned();
    let mut child = match command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            return Outcome::Unavailable(format!(
                "cannot start the indexer worker `{program} {WORKER_ARG}`: {e}"
            ))
        }
    };
    // The job is small: it fits in the pipe, so this cannot block on a stuck child.
    if let Some(mut stdin) = child.stdin.take() {
        let _ignored = stdin.write_all(&job);
    }
    let stdout = child
        .stdout
        .take()
        .map(|out| spawn_reader(out, limits.max_output));
    let stderr = child.stderr.take().map(|err| spawn_reader(err, MAX_STDERR));

    let deadline = Instant::now() + limits.wall_time;
    let status = match wait_until(&mut child, deadline, stop) {
        Waited::Exited(status) => status,
        Waited::Late => {
            kill(&mut child);
            return Outcome::Failed(format!(
                "indexing took longer than {} s and was stopped (a cab that hangs its reader?)",
                limits.wall_time.as_secs()
            ));
        }
        Waited::Stopped => {
            kill(&mut child);
            return Outcome::Stopped;
        }
        Waited::Error(e) => {
            kill(&mut child);
            return Outcome::Unavailable(format!("cannot wait for the indexer worker: {e}"));
        }
    };
    let (out, overflowed) = stdout.map(join_reader).unwrap_or_default();
    let (err, _) = stderr.map(join_reader).unwrap_or_default();
    let err = String::from_utf8_lossy(&err);
    let last_err = err
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    if status.success() {
        if overflowed {
            return Outcome::Failed(format!(
                "the indexer's answer is over {} bytes",
                limits.max_output
            ));
        }
        return match serde_json::from_slice::<Reply>(&out) {
            Ok(Reply::Done(index)) => Outcome::Indexed(index),
            Ok(Reply::Gone) => Outcome::Gone,
            Err(e) => Outcome::Failed(format!("the indexer's answer is unreadable: {e}")),
        };
    }
    if status.code() == Some(EXIT_UNAVAILABLE) {
        return Outcome::Unavailable(last_err.to_owned());
    }
    if interrupted(status) {
        // Ctrl-C or a service stop reaches the whole process group: not the cab's doing.
        return Outcome::Unavailable("the indexer worker was interrupted".to_owned());
    }
    Outcome::Failed(describe_failure(status, &err, last_err, limits))
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

/// Waits for the child until `deadline` or `stop`, polling its state (a child cannot be
/// waited for with a timeout otherwise without extra threads per cab).
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
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

fn kill(child: &mut Child) {
    let _already_gone = child.kill();
    let _reaped = child.wait();
}

/// Reads a pipe to its end in a thread, keeping at most `cap` bytes (the rest is drained so
/// that the child never blocks on a full pipe). Returns the bytes and whether some were
/// dropped.
fn spawn_reader<R: Read + Send + 'static>(
    mut pipe: R,
    cap: usize,
) -> thread::JoinHandle<(Vec<u8>, bool)> {
    thread::spawn(move || {
        let mut kept = Vec::new();
        let mut overflowed = false;
        let mut buf = vec![0u8; 64 << 10];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let room = cap.saturating_sub(kept.len());
                    let take = n.min(room);
                    kept.extend_from_slice(buf.get(..take).unwrap_or_default());
                    overflowed |= take < n;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        (kept, overflowed)
    })
}

fn join_reader(handle: thread::JoinHandle<(Vec<u8>, bool)>) -> (Vec<u8>, bool) {
    handle.join().unwrap_or_default()
}
