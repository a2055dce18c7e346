//! A running `cerfs mount` for the binary's tests: start, wait for the mount, signal,
//! wait for exit; dropping it kills and unmounts so a failing test leaves nothing behind.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub use cerfs_testkit::skip::unavailable;
use cerfs_testkit::StderrLog;
pub use cerfs_testkit::{is_mounted, send_signal};

pub const CERFS: &str = env!("CARGO_BIN_EXE_cerfs");
/// How long the binary may take to mount or to exit.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A running `cerfs mount`, its stderr lines collected. Dropping it kills the process and
/// unmounts, so that a failing test leaves nothing behind.
pub struct Running {
    pub child: Child,
    pub mountpoint: PathBuf,
    stderr: StderrLog,
    done: bool,
}

impl Running {
    /// Starts `cerfs mount --db DB MOUNTPOINT`; returns it with a receiver that gets
    /// `Some(())` when the "mounted" line was logged, `None` if the stream ended first.
    pub fn start(
        db: impl AsRef<OsStr>,
        mountpoint: &Path,
    ) -> (Running, mpsc::Receiver<Option<()>>) {
        let mut child = Command::new(CERFS)
            .args(["mount", "--threads", "4", "--db"])
            .arg(db)
            .arg(mountpoint)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn cerfs");
        let (lines, rx) = StderrLog::collect(&mut child, "cerfs: ".into(), |line| {
            (line.contains("mounted ") && !line.contains("unmounted")).then_some(())
        });
        let running = Running {
            child,
            mountpoint: mountpoint.to_path_buf(),
            stderr: lines,
            done: false,
        };
        (running, rx)
    }

    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// Waits until it has logged a line containing `text`.
    #[allow(dead_code)] // not every test that shares this module waits for a line
    #[track_caller]
    pub fn logged(&self, text: &str) {
        self.stderr.wait_for(text);
    }

    /// Waits for the process to exit, within the deadline.
    pub fn wait(&mut self) -> ExitStatus {
        let status = cerfs_testkit::wait_exit(&mut self.child, DEADLINE, "cerfs exiting");
        self.done = true;
        status
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if is_mounted(&self.mountpoint) {
            cerfs_testkit::process::detach_mount(&self.mountpoint);
        }
    }
}

impl Running {
    /// Starts `cerfs mount` and waits until it is mounted; `None` when the test must skip.
    pub fn mounted(db: impl AsRef<OsStr>, mountpoint: &Path) -> Option<Running> {
        if !cerfs_testkit::skip::fuse_usable() {
            return None;
        }
        let (mut running, mounted) = Running::start(db, mountpoint);
        if mounted.recv_timeout(DEADLINE).ok().flatten().is_none() {
            let status = running.wait();
            let stderr = running.stderr();
            if stderr.contains("not permitted to mount")
                && unavailable(&format!("cannot mount: {stderr}"))
            {
                return None;
            }
            panic!("cerfs did not mount ({status}):\n{stderr}");
        }
        Some(running)
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: i32) {
        send_signal(self.child.id(), signal);
    }

    /// The process's peak resident set size in KiB (VmHWM).
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc/<pid>/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/<pid>/status")
    }
}
