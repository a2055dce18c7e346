//! Child processes and mounts: signals, liveness, process groups, mount points, and waiting
//! for a condition within a deadline.

use std::path::Path;
use std::process::{Child, Command};
use std::thread;
use std::time::{Duration, Instant};

/// Sends `signal` to `pid` (a negative `pid` names a process group), as kill(2) does.
pub fn signal(pid: i32, signal: i32) -> std::io::Result<()> {
    // SAFETY: kill(2) on a process (or group) the caller started, directly or through a
    // server it runs.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::kill(pid, signal) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Sends `signal` to `pid`, which must exist.
///
/// # Panics
/// When kill(2) fails (the process is gone or not ours).
pub fn send_signal(pid: u32, sig: i32) {
    let id = i32::try_from(pid).expect("pid fits in pid_t");
    if let Err(e) = signal(id, sig) {
        panic!("kill({pid}, {sig}): {e}");
    }
}

/// A child process that is killed (SIGKILL) and reaped when dropped, so that a test that
/// fails before it stops its server leaves nothing running. [`ChildGuard::stop`] stops it
/// the way a user would and returns how it exited.
#[derive(Debug)]
pub struct ChildGuard(pub Child);

impl ChildGuard {
    /// Sends `sig` and waits for the child to exit.
    ///
    /// # Panics
    /// When the signal cannot be sent or the wait fails.
    pub fn stop(mut self, sig: i32) -> std::process::ExitStatus {
        send_signal(self.0.id(), sig);
        self.0.wait().expect("wait for the child")
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Whether process `pid` exists and is not a zombie.
pub fn is_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z")
    })
}

/// The live (not zombie) processes whose process group is `pgid`.
pub fn live_group_members(pgid: u32) -> Vec<u32> {
    let mut pids = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        if fields.len() > 2 && fields[2] == pgid.to_string() && fields[0] != "Z" {
            pids.push(pid);
        }
    }
    pids
}

/// Whether `mountpoint` is a mount point of this process's mount namespace.
pub fn is_mounted(mountpoint: &Path) -> bool {
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let wanted = mountpoint.to_string_lossy().replace(' ', "\\040");
    mountinfo
        .lines()
        .any(|line| line.split(' ').nth(4) == Some(wanted.as_str()))
}

/// Detaches a mount that cannot be unmounted normally (busy, or its server died), as
/// `umount -l` does; best effort.
pub fn detach_mount(mountpoint: &Path) {
    let detached = Command::new("fusermount3")
        .arg("-uz")
        .arg(mountpoint)
        .status()
        .is_ok_and(|s| s.success());
    if !detached {
        let _ = Command::new("umount").arg("-l").arg(mountpoint).status();
    }
}

/// Checks `done` every 20 ms until it returns `Some`, and returns that; panics with `what`
/// once `deadline` has passed. For waiting on another process (a server's log line, a
/// process exit), where no notification exists.
#[track_caller]
pub fn poll_until<T>(deadline: Duration, what: &str, mut done: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = done() {
            return v;
        }
        assert!(
            start.elapsed() < deadline,
            "{what}: not done after {deadline:?}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for `child` to exit and returns how it did; panics with `what` after `deadline`.
#[track_caller]
pub fn wait_exit(child: &mut Child, deadline: Duration, what: &str) -> std::process::ExitStatus {
    poll_until(deadline, what, || child.try_wait().expect("try_wait"))
}

/// Waits until a line collected from a server's stderr (by a reader thread, into `lines`)
/// contains `text`: a line the server wrote before answering may not have been read yet
/// when the answer arrives. Panics after 30 s.
#[track_caller]
pub fn wait_for_log(lines: &std::sync::Mutex<Vec<String>>, text: &str) {
    poll_until(
        Duration::from_secs(30),
        &format!("a log line with {text:?}"),
        || {
            lines
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .iter()
                .any(|line| line.contains(text))
                .then_some(())
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_is_alive_until_reaped_and_killed_by_signal() {
        let _turn = crate::spawn_or_bind_turn();
        let mut child = Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        assert!(is_alive(child.id()));
        send_signal(child.id(), libc::SIGKILL);
        let status = child.wait().expect("wait");
        assert!(!status.success());
        assert!(!is_alive(child.id()));
        assert!(is_mounted(Path::new("/")));
        assert!(!is_mounted(Path::new("/definitely/not/a/mount")));
        assert_eq!(
            poll_until(Duration::from_secs(1), "immediate", || Some(7)),
            7
        );
    }
}
