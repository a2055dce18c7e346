//! A supervised Samba: `smbd` and `samba-dcerpcd` in the foreground, in one process group
//! of their own (smbd's per-client processes join it), their logs forwarded to tracing.
//!
//! Both are started with a pipe as standard input whose other end only this process holds:
//! in the foreground, Samba exits when its standard input closes, so even if this process is
//! killed outright no smbd outlives it. [`Samba::stop`] sends SIGTERM to the whole group,
//! waits until no member is left (SIGKILL after a grace period) and returns only then.

use std::collections::VecDeque;
use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::{Result, SambaError, SambaTools};

/// How many of Samba's last log lines are kept for error messages.
const LOG_LINES_KEPT: usize = 40;
/// How often group membership and ports are polled while waiting on them.
const POLL: Duration = Duration::from_millis(20);
/// How long processes get after SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(5);
/// How long one readiness connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(250);

/// A running Samba. Dropping it stops it (see [`Samba::stop`]), errors only logged.
#[derive(Debug)]
pub struct Samba {
    /// Process group of smbd and everything it started (smbd's pid).
    pgid: u32,
    exit: ExitWatch,
    log: Arc<Mutex<VecDeque<String>>>,
    /// The write ends of the supervised processes' stdin: closing them stops Samba too.
    stdin: Vec<ChildStdin>,
    stopped: bool,
}

impl Samba {
    /// Starts `smbd` (and `samba-dcerpcd` where Samba has it) with the configuration file
    /// `conf`, which must be an absolute path (samba-dcerpcd is given it again and runs
    /// from another directory). Returns at once: see [`Samba::wait_ready`].
    ///
    /// # Errors
    /// A program cannot be started.
    pub fn start(tools: &SambaTools, conf: &Path) -> Result<Samba> {
        if !conf.is_absolute() {
            return Err(SambaError::Invalid(format!(
                "the smb.conf path {} must be absolute",
                conf.display()
            )));
        }
        let log = Arc::new(Mutex::new(VecDeque::with_capacity(LOG_LINES_KEPT)));
        let exit = ExitWatch::default();
        let mut smbd = Command::new(&tools.smbd);
        smbd.args(["--foreground", "--no-process-group", "--debug-stdout"])
            .arg("--configfile")
            .arg(conf)
            .process_group(0);
        let (pid, stdin) = spawn_supervised("smbd", smbd, &log, &exit)?;
        let mut samba = Samba {
            pgid: pid,
            exit,
            log,
            stdin: vec![stdin],
            stopped: false,
        };
        if let Some(dcerpcd) = &tools.dcerpcd {
            let mut rpc = Command::new(dcerpcd);
            rpc.args([
                "--foreground",
                "--no-process-group",
                "--libexec-rpcds",
                "--debug-stdout",
            ])
            .arg("--configfile")
            .arg(conf)
            .process_group(i32::try_from(pid).unwrap_or(0));
            // On failure `samba` is dropped, which stops smbd.
            let (_, stdin) = spawn_supervised("samba-dcerpcd", rpc, &samba.log, &samba.exit)?;
            samba.stdin.push(stdin);
        } else {
            tracing::warn!("samba-dcerpcd not found: share listing may not work (Samba < 4.16?)");
        }
        Ok(samba)
    }

    /// The process group of smbd and everything it started (smbd's pid).
    pub fn pgid(&self) -> u32 {
        self.pgid
    }

    /// A handle that tells when a supervised process has exited.
    pub fn exit_watch(&self) -> ExitWatch {
        self.exit.clone()
    }

    /// Samba's last log lines, oldest first.
    pub fn recent_log(&self) -> Vec<String> {
        lock(&self.log).iter().cloned().collect()
    }

    /// Waits until smbd accepts TCP connections on every address of `addrs`.
    ///
    /// # Errors
    /// A supervised process exited, `timeout` passed ([`SambaError::Failed`] with Samba's
    /// last log lines), or `cancelled` returned true ([`SambaError::Cancelled`]).
    pub fn wait_ready(
        &self,
        addrs: &[SocketAddr],
        timeout: Duration,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if cancelled() {
                return Err(SambaError::Cancelled);
            }
            if let Some(why) = self.exit.first_exit() {
                return Err(self.failed(format!("Samba stopped while starting: {why}")));
            }
            if addrs
                .iter()
                .all(|addr| TcpStream::connect_timeout(addr, CONNECT_TIMEOUT).is_ok())
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.failed(format!(
                    "smbd did not accept connections on {addrs:?} within {timeout:?}"
                )));
            }
            thread::sleep(POLL);
        }
    }

    /// A [`SambaError::Failed`] carrying the last log lines.
    pub fn failed(&self, what: String) -> SambaError {
        SambaError::Failed {
            what,
            log: self.recent_log().join("\n"),
        }
    }

    /// Stops Samba: SIGTERM to its process group and end of its standard input, then waits
    /// until no process of the group is alive (zombies aside); after `grace`, SIGKILL.
    ///
    /// # Errors
    /// [`SambaError::StillRunning`]: processes survived SIGKILL.
    pub fn stop(mut self, grace: Duration) -> Result<()> {
        self.stop_inner(grace)
    }

    fn stop_inner(&mut self, grace: Duration) -> Result<()> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        self.signal_group(libc::SIGTERM);
        self.stdin.clear();
        if self.wait_group_gone(grace) {
            return Ok(());
        }
        let left = group_members(self.pgid);
        tracing::warn!(
            pids = ?left,
            "Samba did not stop within {grace:?} of SIGTERM: sending SIGKILL"
        );
        self.signal_group(libc::SIGKILL);
        if self.wait_group_gone(KILL_GRACE) {
            Ok(())
        } else {
            Err(SambaError::StillRunning(group_members(self.pgid)))
        }
    }

    /// Signals the group, but only while it has live members: a group with members keeps
    /// its id, so the signal cannot reach an unrelated group that reused the number.
    fn signal_group(&self, signal: i32) {
        if group_members(self.pgid).is_empty() {
            return;
        }
        if let Err(e) = kill_group(self.pgid, signal) {
            if e.raw_os_error() != Some(libc::ESRCH) {
                tracing::warn!("cannot signal Samba's process group {}: {e}", self.pgid);
            }
        }
    }

    fn wait_group_gone(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.exit.all_exited() && group_members(self.pgid).is_empty() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(POLL);
        }
    }
}

impl Drop for Samba {
    fn drop(&mut self) {
        if let Err(e) = self.stop_inner(Duration::from_secs(10)) {
            tracing::error!("{e}");
        }
    }
}

/// Whether `addr` is free to listen on (nothing else listens there).
///
/// # Errors
/// The bind error (`AddrInUse` when another server holds the port).
pub fn port_available(addr: SocketAddr) -> io::Result<()> {
    TcpListener::bind(addr).map(drop)
}

/// Tells when one of the supervised processes has exited. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct ExitWatch {
    state: Arc<(Mutex<ExitState>, Condvar)>,
}

#[derive(Debug, Default)]
struct ExitState {
    running: usize,
    exited: Vec<String>,
}

impl ExitWatch {
    /// Blocks until a supervised process exits; returns which, and how.
    pub fn wait(&self) -> String {
        let (lock_, cvar) = &*self.state;
        let state = lock(lock_);
        let state = cvar
            .wait_while(state, |s| s.exited.is_empty())
            .unwrap_or_else(PoisonError::into_inner);
        state.exited[0].clone()
    }

    /// The first process that exited, if one has.
    pub fn first_exit(&self) -> Option<String> {
        lock(&self.state.0).exited.first().cloned()
    }

    fn all_exited(&self) -> bool {
        lock(&self.state.0).running == 0
    }

    fn started(&self) {
        lock(&self.state.0).running += 1;
    }

    fn exited(&self, what: String) {
        let (lock_, cvar) = &*self.state;
        let mut state = lock(lock_);
        state.running = state.running.saturating_sub(1);
        state.exited.push(what);
        cvar.notify_all();
    }
}

/// Spawns `command` with piped stdio; a thread reaps it into `exit`, two forward its output
/// into the log. Returns its pid and the write end of its stdin.
fn spawn_supervised(
    name: &'static str,
    mut command: Command,
    log: &Arc<Mutex<VecDeque<String>>>,
    exit: &ExitWatch,
) -> Result<(u32, ChildStdin)> {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| SambaError::io(format!("cannot start {name}"), e))?;
    let pid = child.id();
    exit.started();
    let stdin = child.stdin.take();
    if let Some(out) = child.stdout.take() {
        forward(name, out, log);
    }
    if let Some(err) = child.stderr.take() {
        forward(name, err, log);
    }
    reap(name, child, exit.clone());
    let stdin = stdin.ok_or_else(|| {
        SambaError::io(
            format!("{name} has no stdin pipe"),
            io::Error::from(io::ErrorKind::BrokenPipe),
        )
    })?;
    tracing::debug!(pid, "started {name}");
    Ok((pid, stdin))
}

fn reap(name: &'static str, mut child: Child, exit: ExitWatch) {
    let pid = child.id();
    let spawned = thread::Builder::new()
        .name(format!("{name}-reaper"))
        .spawn({
            let exit = exit.clone();
            move || {
                let how = match child.wait() {
                    Ok(status) => describe(status),
                    Err(e) => format!("could not be waited for: {e}"),
                };
                exit.exited(format!("{name} (pid {pid}) {how}"));
            }
        });
    if let Err(e) = spawned {
        // Without a reaper nobody would notice its exit: report it as gone.
        exit.exited(format!("{name} (pid {pid}): cannot watch it: {e}"));
    }
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        _ => format!("ended ({status})"),
    }
}

fn forward(
    name: &'static str,
    stream: impl Read + Send + 'static,
    log: &Arc<Mutex<VecDeque<String>>>,
) {
    let log = Arc::clone(log);
    let spawned = thread::Builder::new()
        .name(format!("{name}-log"))
        .spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let text = String::from_utf8_lossy(&buf);
                let line = text.trim_end();
                if line.trim().is_empty() {
                    continue;
                }
                tracing::info!(target: "samba", "{name}: {line}");
                let mut kept = lock(&log);
                if kept.len() == LOG_LINES_KEPT {
                    kept.pop_front();
                }
                kept.push_back(format!("{name}: {line}"));
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot forward the log of {name}: {e}");
    }
}

/// The live (not zombie) processes of process group `pgid`, from /proc.
fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
            let after = &stat[stat.rfind(')')? + 1..];
            let mut fields = after.split_whitespace();
            let state = fields.next()?;
            let pgrp: u32 = fields.nth(1)?.parse().ok()?;
            (pgrp == pgid && state != "Z" && state != "X").then_some(pid)
        })
        .collect()
}

#[allow(unsafe_code)]
fn kill_group(pgid: u32, signal: i32) -> io::Result<()> {
    let pgid = i32::try_from(pgid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: kill(2) takes two integers and touches no memory of this process.
    let rc = unsafe { libc::kill(-pgid, signal) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_members_sees_a_live_group_and_not_a_reaped_one() {
        let mut child = Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .expect("spawn sleep");
        let pgid = child.id();
        assert_eq!(group_members(pgid), vec![pgid]);
        kill_group(pgid, libc::SIGTERM).expect("kill");
        let _ = child.wait();
        assert!(group_members(pgid).is_empty());
    }

    #[test]
    fn port_available_sees_a_listener() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        assert!(port_available(addr).is_err());
        drop(listener);
        assert!(port_available(addr).is_ok());
    }
}
