//! Runs the real `cerfs` binary: mount a fresh database, list the share, stop it with
//! SIGTERM, and check that it unmounted cleanly and left a sound database.
//!
//! Where FUSE cannot be used (no /dev/fuse, mounting not permitted) the mount test prints
//! "skipping: ..." and passes, unless CERFS_REQUIRE_FUSE=1, where it fails.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use cerfs_db::SqliteStore;

const CERFS: &str = env!("CARGO_BIN_EXE_cerfs");
/// How long the binary may take to mount or to exit.
const DEADLINE: Duration = Duration::from_secs(30);

/// Skips (returns true after saying why) or, with CERFS_REQUIRE_FUSE=1, fails.
fn skip(why: &str) -> bool {
    if std::env::var_os("CERFS_REQUIRE_FUSE").is_some_and(|v| v == "1") {
        panic!("CERFS_REQUIRE_FUSE=1 but FUSE is not usable: {why}");
    }
    eprintln!("skipping: {why}");
    true
}

/// Whether `mountpoint` is a mount point of this process's mount namespace.
fn is_mounted(mountpoint: &Path) -> bool {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo");
    let wanted = mountpoint.to_str().expect("UTF-8 temp path");
    mountinfo
        .lines()
        .any(|line| line.split(' ').nth(4) == Some(wanted))
}

/// A running `cerfs mount`, its stderr lines collected. Dropping it kills the process and
/// unmounts, so that a failing test leaves nothing behind.
struct Running {
    child: Child,
    mountpoint: PathBuf,
    stderr: Arc<Mutex<Vec<String>>>,
    done: bool,
}

impl Running {
    /// Starts `cerfs mount --db DB MOUNTPOINT`; returns it with a receiver that gets one
    /// message when the "mounted" line was logged (or the stream ended).
    fn start(db: &Path, mountpoint: &Path) -> (Running, mpsc::Receiver<bool>) {
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
        let stderr = child.stderr.take().expect("piped stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let collected = Arc::clone(&lines);
        thread::spawn(move || {
            let mut told = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("cerfs: {line}");
                let mounted = line.contains("mounted ") && !line.contains("unmounted");
                collected.lock().expect("lines").push(line);
                if mounted && !told {
                    told = tx.send(true).is_ok();
                }
            }
            if !told {
                let _ = tx.send(false);
            }
        });
        let running = Running {
            child,
            mountpoint: mountpoint.to_path_buf(),
            stderr: lines,
            done: false,
        };
        (running, rx)
    }

    fn stderr(&self) -> String {
        self.stderr.lock().expect("lines").join("\n")
    }

    /// Waits for the process to exit, within the deadline.
    fn wait(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                self.done = true;
                return status;
            }
            assert!(start.elapsed() < DEADLINE, "cerfs did not exit in time");
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if is_mounted(&self.mountpoint) {
            let _ = Command::new("fusermount3")
                .arg("-u")
                .arg(&self.mountpoint)
                .status();
        }
    }
}

#[test]
fn mount_list_sigterm_unmounts_cleanly() {
    if !Path::new("/dev/fuse").exists() && skip("/dev/fuse does not exist") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().canonicalize().expect("canonical temp dir");
    let db = root.join("cer.db");
    let mountpoint = root.join("mnt");
    std::fs::create_dir(&mountpoint).expect("mkdir mountpoint");

    let (mut running, mounted) = Running::start(&db, &mountpoint);
    let became_mounted = mounted.recv_timeout(DEADLINE).unwrap_or(false);
    if !became_mounted {
        let status = running.wait();
        let stderr = running.stderr();
        if stderr.contains("not permitted to mount") && skip(&format!("cannot mount: {stderr}")) {
            return;
        }
        panic!("cerfs did not mount ({status}):\n{stderr}");
    }
    assert!(
        is_mounted(&mountpoint),
        "{} not in mountinfo",
        mountpoint.display()
    );

    let mut names: Vec<String> = std::fs::read_dir(&mountpoint)
        .expect("read_dir on the mount")
        .map(|entry| {
            entry
                .expect("dir entry")
                .file_name()
                .into_string()
                .expect("ASCII")
        })
        .collect();
    names.sort();
    for wanted in ["cabs", "counts", "status"] {
        assert!(
            names.iter().any(|n| n == wanted),
            "{wanted} missing in {names:?}"
        );
    }

    let pid = i32::try_from(running.child.id()).expect("pid");
    // SAFETY: kill(2) on the pid of our own child, which has not been reaped yet.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
    assert_eq!(rc, 0, "kill SIGTERM");
    let status = running.wait();
    assert_eq!(
        status.code(),
        Some(0),
        "exit status; stderr:\n{}",
        running.stderr()
    );
    assert!(!is_mounted(&mountpoint), "still mounted after SIGTERM");
    assert!(
        running.stderr().contains("received SIGTERM"),
        "{}",
        running.stderr()
    );

    let store = SqliteStore::open(&db).expect("reopen the database");
    assert_eq!(store.integrity_check().expect("integrity_check"), "ok");
}

#[test]
fn missing_mountpoint_exits_1_with_advice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mountpoint = dir.path().join("nowhere");
    let out = Command::new(CERFS)
        .args(["mount", "--db"])
        .arg(dir.path().join("cer.db"))
        .arg(&mountpoint)
        .output()
        .expect("run cerfs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("does not exist: create it"), "{stderr}");
    assert!(stderr.contains(&*mountpoint.to_string_lossy()), "{stderr}");
    assert!(
        !dir.path().join("cer.db").exists(),
        "no database created on failure"
    );
}

#[test]
fn bad_flag_exits_2() {
    let out = Command::new(CERFS)
        .args(["mount", "--no-such-flag"])
        .output()
        .expect("run cerfs");
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(CERFS).output().expect("run cerfs");
    assert_eq!(out.status.code(), Some(2), "a subcommand is required");
}

#[test]
fn help_exits_0() {
    for args in [&["--help"][..], &["mount", "--help"][..]] {
        let out = Command::new(CERFS).args(args).output().expect("run cerfs");
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("Usage: cerfs"), "{stdout}");
    }
}
