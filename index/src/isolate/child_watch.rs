//! Watching a worker process from the parent: the per-cab clock (which leaves out time the
//! worker waited for a CPU), waiting with a deadline, reading its pipes in bounded memory,
//! and how its end is described.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use super::TICK;
use crate::Limits;

/// Whether the worker ran out of a bound of the whole process rather than of one cab: its
/// CPU time (SIGXCPU; SIGKILL at the hard limit) or its memory.
pub(super) fn spent_process_limit(status: ExitStatus, err: &str) -> bool {
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
pub(super) fn interrupted(status: ExitStatus) -> bool {
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
pub(super) fn describe_failure(
    status: ExitStatus,
    err: &str,
    last_err: &str,
    limits: &Limits,
) -> String {
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

pub(super) enum Waited {
    Exited(ExitStatus),
    Late,
    Stopped,
    Error(std::io::Error),
}

/// The wall-clock budget of the cab a worker is on. Time the worker spent waiting for a CPU
/// does not count: it runs at nice 10, and a busy server must not turn a slow cab into a
/// "hung" one.
pub(super) struct CabClock {
    pid: u32,
    limit: Duration,
    started: Instant,
    waited_at_start: Option<Duration>,
}

impl CabClock {
    pub(super) fn start(pid: u32, limit: Duration) -> Self {
        CabClock {
            pid,
            limit,
            started: Instant::now(),
            waited_at_start: cpu_wait(pid),
        }
    }

    pub(super) fn restart(&mut self) {
        *self = CabClock::start(self.pid, self.limit);
    }

    /// When the cab is late. The kernel is asked only once the plain limit has passed.
    pub(super) fn deadline(&self) -> Instant {
        let plain = self.started + self.limit;
        if Instant::now() < plain {
            return plain;
        }
        self.deadline_after_waiting(cpu_wait(self.pid))
    }

    /// The limit after the start, plus the time waited for a CPU since (`waited_now`: the
    /// worker's total so far; unknown either time: nothing is added).
    pub(super) fn deadline_after_waiting(&self, waited_now: Option<Duration>) -> Instant {
        let waited = match (self.waited_at_start, waited_now) {
            (Some(then), Some(now)) => now.saturating_sub(then),
            _ => Duration::ZERO,
        };
        self.started + self.limit + waited
    }
}

/// How long process `pid` has been runnable but waiting for a CPU, in total; `None` where
/// the kernel does not say (not Linux, no schedstat, the process is gone).
pub(super) fn cpu_wait(pid: u32) -> Option<Duration> {
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
pub(super) fn parse_schedstat(text: &str) -> Option<Duration> {
    let waited: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
    Some(Duration::from_nanos(waited))
}

/// Waits for the child until `deadline` or `stop`, polling its state (a child cannot be
/// waited for with a timeout otherwise without an extra thread per worker). Called once
/// the worker closed its stdout, when its exit is near.
pub(super) fn wait_until(child: &mut Child, deadline: Instant, stop: &AtomicBool) -> Waited {
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

pub(super) fn kill(child: &mut Child) {
    let _already_gone = child.kill();
    let _reaped = child.wait();
}

/// A line of the worker's stdout.
pub(super) enum Line {
    /// A whole line, without its end.
    Whole(Vec<u8>),
    /// A line longer than the cap (dropped).
    TooLong,
}

/// Reads a pipe line by line in a thread, sending each line as it comes; a line over `cap`
/// bytes is drained and sent as [`Line::TooLong`]. An unfinished last line is dropped: the
/// exit status says why the worker stopped. Ends at the end of the pipe (the receiver then
/// sees the channel closed) or when the receiver is gone.
pub(super) fn spawn_line_reader<R: Read + Send + 'static>(
    pipe: R,
    cap: usize,
) -> mpsc::Receiver<Line> {
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
pub(super) fn spawn_tail_reader<R: Read + Send + 'static>(
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

pub(super) fn join_tail(handle: thread::JoinHandle<Vec<u8>>) -> Vec<u8> {
    handle.join().unwrap_or_default()
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    #[test]
    pub(super) fn time_waiting_for_a_cpu_moves_the_deadline() {
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
    pub(super) fn schedstat_is_read_and_nonsense_is_not() {
        assert_eq!(
            super::parse_schedstat("123 4500000000 7\n"),
            Some(Duration::from_millis(4500))
        );
        assert_eq!(super::parse_schedstat("123\n"), None);
        assert_eq!(super::parse_schedstat("1 x 2"), None);
    }
}
