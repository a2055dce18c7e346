//! Shared by the `serve_*`, `smb_*` and `fault_*smb*` tests: run the real `cerfs serve`,
//! talk to it with real SMB clients (smbclient, and tests/smb/cer_smb_client.py on
//! smbprotocol), and check that everything was cleaned up.
//!
//! Where FUSE, Samba or the Python client cannot be used, a test skips by the testkit's one
//! rule (it fails under CERFS_REQUIRE_FUSE=1). Ports come from the testkit's allocator.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

pub use cerfs_testkit::process::detach_mount;
pub use cerfs_testkit::skip::unavailable;
use cerfs_testkit::StderrLog;
pub use cerfs_testkit::{
    is_alive, is_mounted, live_group_members, reserve_port, send_signal, Port,
};

/// The binary under test.
pub const CERFS: &str = env!("CARGO_BIN_EXE_cerfs");
/// How long `cerfs serve` may take to become ready or to exit.
pub const DEADLINE: Duration = Duration::from_secs(60);
/// The admin account's password in every test.
pub const ADMIN_PASSWORD: &str = "cer-admin-test-pw";
/// The admin account name in every test.
pub const ADMIN_USER: &str = "ceradmin";
/// The share the admin changes things through (encrypted).
pub const ADMIN_SHARE: &str = "cer-admin";
/// The Python SMB client.
pub const PY_CLIENT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/smb/cer_smb_client.py"
);

/// The path of a real cabinet (libmspack's test files), as clients take it.
pub fn cab_file() -> String {
    let path = cerfs_testkit::testdata().join("cabs/normal_2files_1folder.cab");
    path.to_str().expect("UTF-8 path").to_owned()
}

/// Whether a test can run at all: FUSE, smbd, smbclient and (if `python`) the Python
/// client with smbprotocol. Returns false after [`unavailable`] when not.
pub fn can_run(python: bool) -> bool {
    use cerfs_testkit::skip::{fuse_usable, python_module_usable, tool_usable};
    fuse_usable()
        && tool_usable("smbd", "samba")
        && tool_usable("smbclient", "smbclient")
        && (!python || python_module_usable("smbprotocol", "smbprotocol==1.17.0"))
}

/// A fresh directory that smbd acting as nobody can traverse (tempdir makes 0700 ones).
pub fn open_tempdir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().canonicalize().expect("canonical temp dir");
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).expect("chmod 755");
    (dir, root)
}

/// After `cerfs serve` was killed outright: waits up to `grace` for Samba's process group
/// `pgid` (smbd, samba-dcerpcd and their children) to exit by itself (its standard input,
/// held by cerfs, closed), then SIGKILLs what is left of the group and waits for that.
/// Returns whether SIGKILL was needed; panics if members survive it.
pub fn stop_orphaned_samba(pgid: u32, grace: Duration) -> bool {
    let gone_within = |deadline: Duration| {
        let start = Instant::now();
        loop {
            if live_group_members(pgid).is_empty() {
                return true;
            }
            if start.elapsed() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(20));
        }
    };
    if gone_within(grace) {
        return false;
    }
    // The group still has live members, so its id cannot have been reused.
    let group = i32::try_from(pgid).expect("pgid");
    let _ = cerfs_testkit::process::signal(-group, libc::SIGKILL);
    assert!(
        gone_within(DEADLINE),
        "Samba processes survived SIGKILL: {:?}",
        live_group_members(pgid)
    );
    true
}

/// Options of one `cerfs serve` under test.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Port on 127.0.0.1, reserved for this test while the options (or a server started
    /// with them) live.
    pub port: Arc<Port>,
    /// Give the admin account a password (through a file).
    pub admin: bool,
    /// Extra arguments.
    pub extra: Vec<String>,
    /// Serve this PostgreSQL database instead of `root`/cer.db.
    pub db_url: Option<String>,
}

impl ServeOptions {
    /// Guests and an admin account, on a port of the test range.
    pub fn new() -> Self {
        ServeOptions::on_port(Arc::new(reserve_port()))
    }

    /// The same on a port the test reserved itself (to serve again on the same port).
    pub fn on_port(port: Arc<Port>) -> Self {
        ServeOptions {
            port,
            admin: true,
            extra: Vec::new(),
            db_url: None,
        }
    }
}

/// A running `cerfs serve`. Dropping it kills it and cleans up whatever is left.
pub struct Serve {
    pub child: Child,
    pub port: u16,
    _port: Arc<Port>,
    pub root: PathBuf,
    pub db: PathBuf,
    /// The PostgreSQL store served instead of `db`.
    pub db_url: Option<String>,
    pub mountpoint: PathBuf,
    pub state_dir: PathBuf,
    /// smbd's pid (and process group), from the "ready:" line.
    pub samba_pid: u32,
    stderr: StderrLog,
    done: bool,
    /// The fresh directory of [`Serve::start`]; `None` when the caller keeps `root`.
    _dir: Option<tempfile::TempDir>,
}

impl Serve {
    /// The `--db` of the admin commands beside this server: its SQLite file or its
    /// PostgreSQL URL.
    pub fn db_arg(&self) -> std::ffi::OsString {
        match &self.db_url {
            Some(url) => url.into(),
            None => self.db.clone().into_os_string(),
        }
    }
}

/// The stores a test runs on: SQLite (`None`) and, when the test server is set up, a
/// fresh PostgreSQL database (otherwise skipped by the one skip rule).
pub fn each_store() -> Vec<Option<cerfs_testkit::TestDatabase>> {
    let mut all = vec![None];
    if let Some(db) = cerfs_testkit::TestDatabase::create() {
        all.push(Some(db));
    }
    all
}

/// Options of a server on `store` (see [`each_store`]).
pub fn options_on(store: &Option<cerfs_testkit::TestDatabase>) -> ServeOptions {
    let mut opts = ServeOptions::new();
    opts.db_url = store.as_ref().map(|db| db.url.clone());
    if let Some(db) = store {
        eprintln!("serving PostgreSQL database {}", db.url);
    }
    opts
}

/// What happened to a `cerfs serve` that did not become ready.
pub enum Started {
    Ready(Serve),
    /// It exited first: status and stderr.
    Exited(ExitStatus, String),
}

impl Serve {
    /// Starts `cerfs serve` in a fresh directory and waits for its "ready:" line.
    pub fn start(opts: &ServeOptions) -> Started {
        let (dir, root) = open_tempdir();
        Serve::launch(opts, root, Some(dir))
    }

    /// Starts `cerfs serve` on `root`/cer.db (mountpoint `root`/mnt, Samba's state in
    /// `root`/samba) in a directory the caller keeps, e.g. to serve the same database again
    /// after a crash; waits for its "ready:" line. `root` must be traversable by smbd
    /// acting as nobody ([`open_tempdir`] makes such a directory).
    pub fn start_in(opts: &ServeOptions, root: &Path) -> Started {
        Serve::launch(opts, root.to_path_buf(), None)
    }

    fn launch(opts: &ServeOptions, root: PathBuf, dir: Option<tempfile::TempDir>) -> Started {
        let db = root.join("cer.db");
        let mountpoint = root.join("mnt");
        let state_dir = root.join("samba");
        let mut cmd = Command::new(CERFS);
        cmd.arg("serve")
            .arg("--db")
            .arg(
                opts.db_url
                    .as_deref()
                    .map_or(db.as_os_str(), std::ffi::OsStr::new),
            )
            .arg("--mountpoint")
            .arg(&mountpoint)
            .arg("--state-dir")
            .arg(&state_dir)
            .args([
                "--listen",
                "127.0.0.1",
                "--port",
                &opts.port.get().to_string(),
            ])
            .args(["--threads", "8"])
            .args(&opts.extra)
            .env("RUST_LOG", "info")
            .env_remove("CERFS_ADMIN_PASSWORD")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if opts.admin {
            let pw = root.join("admin.pw");
            std::fs::write(&pw, format!("{ADMIN_PASSWORD}\n")).expect("write password file");
            cmd.arg("--admin-password-file").arg(pw);
        }
        let mut child = cmd.spawn().expect("spawn cerfs serve");
        let port = opts.port.get();
        let (lines, rx) =
            StderrLog::collect(&mut child, format!("cerfs serve :{port}: "), |line| {
                line.split_once("ready: Samba pid ")
                    .and_then(|(_, rest)| rest.split(',').next())
                    .and_then(|pid| pid.trim().parse::<u32>().ok())
            });
        let mut serve = Serve {
            child,
            port,
            _port: Arc::clone(&opts.port),
            root,
            db,
            db_url: opts.db_url.clone(),
            mountpoint,
            state_dir,
            samba_pid: 0,
            stderr: lines,
            done: false,
            _dir: dir,
        };
        match rx.recv_timeout(DEADLINE) {
            Ok(Some(pid)) => {
                serve.samba_pid = pid;
                Started::Ready(serve)
            }
            _ => {
                let status = serve.wait();
                Started::Exited(status, serve.stderr())
            }
        }
    }

    /// Starts it, or skips/fails the test when it cannot start.
    pub fn start_or_skip(opts: &ServeOptions) -> Option<Serve> {
        Serve::ready_or_skip(Serve::start(opts))
    }

    /// [`Serve::start_in`], or skips/fails the test when it cannot start.
    pub fn start_in_or_skip(opts: &ServeOptions, root: &Path) -> Option<Serve> {
        Serve::ready_or_skip(Serve::start_in(opts, root))
    }

    fn ready_or_skip(started: Started) -> Option<Serve> {
        match started {
            Started::Ready(serve) => Some(serve),
            Started::Exited(status, stderr) => {
                if stderr.contains("not permitted to mount")
                    && unavailable(&format!("cannot mount: {stderr}"))
                {
                    return None;
                }
                panic!("cerfs serve did not become ready ({status}):\n{stderr}");
            }
        }
    }

    /// Everything it logged so far.
    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// Waits until it has logged a line containing `text`.
    #[allow(dead_code)] // not every test that shares this module waits for a line
    #[track_caller]
    pub fn logged(&self, text: &str) {
        self.stderr.wait_for(text);
    }

    /// Waits for it to exit, within [`DEADLINE`].
    pub fn wait(&mut self) -> ExitStatus {
        let status = cerfs_testkit::wait_exit(&mut self.child, DEADLINE, "cerfs serve exiting");
        self.done = true;
        status
    }

    /// SIGTERM, then waits for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        send_signal(self.child.id(), libc::SIGTERM);
        self.wait()
    }

    /// Asserts a clean stop: exit 0, no mount, no Samba process, a sound database.
    pub fn assert_clean_stop(&mut self, status: ExitStatus) {
        assert_eq!(
            status.code(),
            Some(0),
            "exit status; stderr:\n{}",
            self.stderr()
        );
        self.assert_cleaned_up();
        let store = cerfs_db::SqliteStore::open(&self.db).expect("reopen the database");
        assert_eq!(store.integrity_check().expect("integrity_check"), "ok");
    }

    /// No mount left, no Samba process left (smbd's pid and its whole process group).
    pub fn assert_cleaned_up(&self) {
        assert!(
            !is_mounted(&self.mountpoint),
            "{} still mounted",
            self.mountpoint.display()
        );
        assert!(
            !is_alive(self.samba_pid),
            "smbd {} still running",
            self.samba_pid
        );
        let left = live_group_members(self.samba_pid);
        assert!(left.is_empty(), "Samba processes left: {left:?}");
    }

    /// Runs the Python client against this server as the guest.
    pub fn py(&self, args: &[&str]) -> serde_json::Value {
        py_client(self.port, None, args)
    }

    /// Runs the Python client against this server as the admin account.
    pub fn py_admin(&self, args: &[&str]) -> serde_json::Value {
        let mut argv = vec!["--share", ADMIN_SHARE];
        argv.extend_from_slice(args);
        py_client(self.port, Some((ADMIN_USER, ADMIN_PASSWORD)), &argv)
    }

    /// Runs many client operations in one process (see [`py_batch`]).
    pub fn batch(&self, ops: &[Op]) -> Vec<serde_json::Value> {
        py_batch(self.port, ops)
    }

    /// Runs smbclient against this server as the guest (`-N`) with commands `cmds`.
    pub fn smbclient(&self, cmds: &str) -> Output {
        smbclient(self.port, "cer", None, cmds)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if !self.done {
            // SIGKILL: Samba exits by itself when its stdin (held by cerfs) closes.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if is_mounted(&self.mountpoint) {
            detach_mount(&self.mountpoint);
        }
    }
}

/// Who runs an operation of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// The guest (an unknown user name, mapped to nobody).
    Guest,
    /// The admin account (mapped to root).
    Admin,
}

/// One operation of a batch: who, and the client's subcommand with its arguments.
pub type Op = (Who, Vec<String>);

/// An operation from string slices.
pub fn op(who: Who, argv: &[&str]) -> Op {
    (who, argv.iter().map(|a| (*a).to_owned()).collect())
}

/// Runs many client operations in one Python process (one connection per account);
/// returns one JSON answer per operation.
pub fn py_batch(port: u16, ops: &[Op]) -> Vec<serde_json::Value> {
    use std::io::Write;
    let list: Vec<serde_json::Value> = ops
        .iter()
        .map(|(who, argv)| {
            serde_json::json!({
                "as": if *who == Who::Admin { "user" } else { "guest" },
                "argv": argv,
            })
        })
        .collect();
    let mut child = Command::new("python3")
        .arg(PY_CLIENT)
        .args([
            "--port",
            &port.to_string(),
            "--user",
            ADMIN_USER,
            "--user-share",
            ADMIN_SHARE,
            "--password-env",
            "CER_TEST_PW",
        ])
        .arg("batch")
        .env("CER_TEST_PW", ADMIN_PASSWORD)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the Python SMB client");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(serde_json::Value::Array(list).to_string().as_bytes())
        .expect("feed the batch");
    let out = child.wait_with_output().expect("wait for the client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    match serde_json::from_str(stdout.trim()) {
        Ok(serde_json::Value::Array(answers)) if answers.len() == ops.len() => answers,
        _ => panic!(
            "batch printed no list of {} answers ({}):\n{stdout}\n{}",
            ops.len(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// Runs tests/smb/cer_smb_client.py with `args` against 127.0.0.1:`port`, share `cer`;
/// returns its JSON answer.
pub fn py_client(port: u16, account: Option<(&str, &str)>, args: &[&str]) -> serde_json::Value {
    let mut cmd = Command::new("python3");
    cmd.arg(PY_CLIENT).args(["--port", &port.to_string()]);
    if let Some((user, password)) = account {
        cmd.args(["--user", user, "--password-env", "CER_TEST_PW"])
            .env("CER_TEST_PW", password);
    }
    let out = cmd.args(args).output().expect("run the Python SMB client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "client {args:?} printed no JSON ({e}, {}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Runs `smbclient //127.0.0.1/<share> -p <port>` with `cmds`, as the guest or an account.
pub fn smbclient(port: u16, share: &str, account: Option<(&str, &str)>, cmds: &str) -> Output {
    let mut cmd = Command::new("smbclient");
    cmd.arg(format!("//127.0.0.1/{share}"))
        .args(["-p", &port.to_string()]);
    match account {
        Some((user, password)) => cmd.args(["-U", &format!("{user}%{password}")]),
        None => cmd.arg("-N"),
    };
    cmd.args(["-c", cmds]).output().expect("run smbclient")
}

/// The bytes of a client answer (`get`).
pub fn data(answer: &serde_json::Value) -> Vec<u8> {
    let text = answer["data_hex"]
        .as_str()
        .unwrap_or_else(|| panic!("no data in {answer}"));
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

/// The NTSTATUS name of a failed client answer (`"absent"` for a missing file).
pub fn status(answer: &serde_json::Value) -> String {
    answer["status"].as_str().unwrap_or("").to_owned()
}

/// Asserts that the client answer is a success.
pub fn assert_ok(answer: &serde_json::Value, what: &str) {
    assert_eq!(
        answer["ok"],
        serde_json::Value::Bool(true),
        "{what}: {answer}"
    );
}

/// Asserts that the client answer is an SMB error; returns its status name.
pub fn assert_refused(answer: &serde_json::Value, what: &str) -> String {
    assert_eq!(
        answer["ok"],
        serde_json::Value::Bool(false),
        "{what} was accepted: {answer}"
    );
    let status = status(answer);
    assert!(
        status.starts_with("STATUS_") || status.starts_with("0x"),
        "{what}: {answer}"
    );
    status
}
