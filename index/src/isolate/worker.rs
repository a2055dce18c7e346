//! The worker's side of the protocol (see `isolate.rs`): a child process that sets its
//! bounds, lowers its priority, indexes its batch of cabs and reports cab by cab.

use std::io::{Read, Write};

use cerfs_db::{CabReader, StoreError};

use super::{Job, Progress, EXIT_UNAVAILABLE, MAX_JOB};
use crate::{index_cab_with, Limits};

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
    // One walker for the batch: symbols parsed for one dump serve the next ones.
    let walker = job.analysis.as_ref().and_then(super::walker_for);
    let mut out = std::io::stdout().lock();
    // One reader (its connections) for the batch, unless a cab's reading failed.
    let mut kept: Option<CabReader> = None;
    for &cab_id in &job.cab_ids {
        if let Err(e) = send(&mut out, &Progress::Start(cab_id)) {
            eprintln!("cerfs index-one: cannot write to stdout: {e}");
            return EXIT_UNAVAILABLE;
        }
        let opened = match kept.take() {
            Some(reader) => reader.reopen(cab_id),
            None => CabReader::open_at(&job.db, cab_id),
        };
        let answer = match opened {
            Ok(mut reader) => {
                let index = index_cab_with(&mut reader, &job.limits, walker.as_ref());
                if let Some(e) = reader.storage_error() {
                    // The store's failure, not the cab's: it stays queued.
                    eprintln!(
                        "cerfs index-one: cannot read cab {cab_id} of {}: {e}",
                        job.db
                    );
                    return EXIT_UNAVAILABLE;
                }
                if index.error.is_none() {
                    kept = Some(reader);
                }
                Progress::Indexed { cab_id, index }
            }
            Err(StoreError::NotFound(_)) => Progress::Gone { cab_id },
            Err(e) => {
                eprintln!(
                    "cerfs index-one: cannot read cab {cab_id} of {}: {e}",
                    job.db
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

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #![allow(clippy::unwrap_used)]

    /// The nice value of the calling thread (Linux keeps one per thread).
    fn own_nice() -> i32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        // Fields after the command name, which is in parentheses and may hold spaces.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        rest.split(' ').nth(16).unwrap().parse().unwrap()
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
