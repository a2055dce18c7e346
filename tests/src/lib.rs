//! End-to-end test harness of cerfs: real FUSE mounts of a fresh database, driven with
//! plain file operations by the tests and by `cer-client` processes (a [MS-CER] 1.0 client
//! simulator, see [`client`]).
//!
//! [`MountedShare::start`] mounts cerfs in-process over SQLite; [`MountedShare::each`]
//! gives one share per backend (SQLite, and PostgreSQL on the test server,
//! `CERFS_TEST_POSTGRES`), for the tests that hold on both. Where FUSE is unusable (no
//! `/dev/fuse`, mounting not permitted) it skips by the testkit's one rule: `None` after
//! printing `skipping: <reason>`, or a panic under `CERFS_REQUIRE_FUSE=1` (CI).
//! With `CERFS_E2E_PLAIN=1` it returns a plain directory instead of a mount (a development
//! aid: the tests' cerfs-only guarantees then fail, the rest shows the tests' own logic).

pub mod client;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tempfile::TempDir;

use crate::client::Subpath;

/// A cerfs share mounted in this process on a temporary directory, over a fresh SQLite
/// database in the same temporary directory or a fresh PostgreSQL database. Dropping it
/// unmounts (lazily if something still holds the mount) and deletes the temporary
/// directory (and the database).
pub struct MountedShare {
    /// The share root: the mountpoint (or, for [`MountedShare::plain_dir`], a plain
    /// directory).
    pub root: PathBuf,
    /// The database file behind the mount.
    pub db_path: PathBuf,
    /// The core the mount serves (let go before unmounting: the store closes with it).
    fs: Option<Arc<cerfs_fs_core::CerFs>>,
    mount: Option<cerfs_fuse::Mount>,
    // Last: deleted after the unmount in Drop.
    dir: TempDir,
    /// The PostgreSQL database, when on PostgreSQL (dropped after the store closed).
    pg: Option<cerfs_testkit::TestDatabase>,
}

impl std::fmt::Debug for MountedShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MountedShare")
            .field("root", &self.root)
            .field("db_path", &self.db_path)
            .field("postgres", &self.pg.as_ref().map(|db| db.url.clone()))
            .field("mounted", &self.mount.is_some())
            .finish()
    }
}

impl MountedShare {
    /// Mounts a fresh cerfs (8 worker threads, `allow_other`) and returns it ready for use.
    ///
    /// `None` (after printing `skipping: <reason>`) when FUSE cannot be used here.
    ///
    /// # Panics
    /// With `CERFS_REQUIRE_FUSE=1`, when the mount cannot be made; always when the temp
    /// directory or the database cannot be created.
    pub fn start() -> Option<MountedShare> {
        if std::env::var_os("CERFS_E2E_PLAIN").is_some_and(|v| v == "1") {
            return Some(MountedShare::plain_dir());
        }
        MountedShare::start_on(None)
    }

    /// A share per backend: over SQLite, and over PostgreSQL when the test server is set
    /// up (otherwise that one skips by the one skip rule). Only the plain directory with
    /// `CERFS_E2E_PLAIN=1`.
    pub fn each() -> Vec<MountedShare> {
        let mut all: Vec<MountedShare> = MountedShare::start().into_iter().collect();
        if all.first().is_some_and(MountedShare::is_mounted) {
            if let Some(db) = cerfs_testkit::TestDatabase::create() {
                all.extend(MountedShare::start_on(Some(db)));
            }
        }
        all
    }

    fn start_on(pg: Option<cerfs_testkit::TestDatabase>) -> Option<MountedShare> {
        init_tracing();
        let dir = tempfile::Builder::new()
            .prefix("cerfs-e2e-")
            .tempdir()
            .expect("create temp dir");
        let db_path = dir.path().join("cerfs.db");
        let root = dir.path().join("mnt");
        std::fs::create_dir(&root).expect("create mountpoint");
        let mut share = MountedShare {
            root,
            db_path,
            fs: None,
            mount: None,
            dir,
            pg,
        };
        eprintln!("e2e share on {}", share.backend());
        match mount_at(&share.open_store(), &share.root) {
            Ok((mount, fs)) => {
                share.fs = Some(fs);
                share.mount = Some(mount);
                Some(share)
            }
            Err(e) => {
                cerfs_testkit::unavailable(&format!(
                    "cannot mount cerfs on {}: {e}",
                    share.root.display()
                ));
                None
            }
        }
    }

    /// "SQLite" or "PostgreSQL".
    pub fn backend(&self) -> &'static str {
        if self.pg.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    }

    /// A new store over this share's content: a server's (the database is created or
    /// opened; on PostgreSQL, a head of its own).
    fn open_store(&self) -> Arc<dyn cerfs_db::Store> {
        match &self.pg {
            None => {
                Arc::new(cerfs_db::SqliteStore::open(&self.db_path).expect("open the database"))
            }
            Some(db) => {
                Arc::new(cerfs_db::PgStore::open(&db.url).expect("open the PostgreSQL store"))
            }
        }
    }

    /// Unmounts and mounts the same database again on the same mountpoint (a restart of
    /// cerfs). Nothing happens for a [`MountedShare::plain_dir`].
    ///
    /// # Panics
    /// When the unmount or the new mount fails.
    pub fn remount(&mut self) {
        if self.mount.is_none() {
            return;
        }
        self.unmount().expect("unmount before remount");
        let (mount, fs) = mount_at(&self.open_store(), &self.root).expect("mount again");
        self.fs = Some(fs);
        self.mount = Some(mount);
    }

    /// A plain directory with `cabs/`, `status/`, `counts/`: no cerfs, no lossless
    /// guarantees. For checking the client simulator and the tests' own expectations.
    ///
    /// # Panics
    /// When the temp directory cannot be created.
    pub fn plain_dir() -> MountedShare {
        let dir = tempfile::Builder::new()
            .prefix("cerfs-e2e-plain-")
            .tempdir()
            .expect("create temp dir");
        let root = dir.path().join("share");
        for top in ["cabs", "status", "counts"] {
            std::fs::create_dir_all(root.join(top)).expect("create share folders");
        }
        MountedShare {
            db_path: dir.path().join("none.db"),
            root,
            fs: None,
            mount: None,
            dir,
            pg: None,
        }
    }

    /// Whether this is a cerfs mount (not [`MountedShare::plain_dir`]), still mounted.
    pub fn is_mounted(&self) -> bool {
        self.mount.is_some()
    }

    /// Gives bucket `sub` (its count.txt must exist) the counters `counts`, as an admin's
    /// `cerfs counts set` does beside the running mount (clients add one report per
    /// write, so a test that starts from other counters sets them this way). Nothing
    /// happens for a [`MountedShare::plain_dir`]: the caller writes the file there.
    ///
    /// # Panics
    /// When the admin store cannot be opened or the bucket has no count.txt.
    pub fn set_counts(&self, sub: &client::Subpath, counts: client::Counts) {
        if self.mount.is_none() {
            return;
        }
        // An admin beside the server: on SQLite the admin opening, on PostgreSQL a head.
        let store: Arc<dyn cerfs_db::Store> = match &self.pg {
            None => {
                Arc::new(cerfs_db::SqliteStore::open_for_admin(&self.db_path).expect("admin store"))
            }
            Some(db) => Arc::new(cerfs_db::PgStore::open(&db.url).expect("admin store")),
        };
        let fs = cerfs_fs_core::CerFs::new(store);
        let counts = cerfs_db::Counts {
            cabs_gathered: counts.cabs_gathered,
            total_hits: counts.total_hits,
        };
        fs.set_counts(&sub.backslashed(), counts)
            .expect("an admin sets the counters");
    }

    /// The `CerFs` the mount serves, as `cerfs serve` shares it with its HTTP side: changes
    /// made through it are this process's own. `None` for a [`MountedShare::plain_dir`] or
    /// once unmounted.
    pub fn fs(&self) -> Option<&cerfs_fs_core::CerFs> {
        self.fs.as_deref()
    }

    /// `root` joined with a share path written with `/`.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// The temporary directory holding the mountpoint and the database (kept until drop).
    pub fn temp_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Unmounts and waits until the filesystem and its store are dropped, so the database
    /// may be opened by someone else. Nothing happens if already unmounted.
    ///
    /// # Errors
    /// The unmount failed (e.g. `EBUSY` while a file is open); the mount is then detached
    /// lazily so that nothing is left behind, and the error is returned.
    pub fn unmount(&mut self) -> io::Result<()> {
        self.fs = None;
        let Some(mount) = self.mount.take() else {
            return Ok(());
        };
        mount
            .unmount()
            .inspect_err(|_| cerfs_testkit::process::detach_mount(&self.root))
    }
}

impl Drop for MountedShare {
    fn drop(&mut self) {
        if let Err(e) = self.unmount() {
            eprintln!("unmounting {} failed: {e}", self.root.display());
        }
    }
}

/// Mounts cerfs over `store` on `root` (8 threads,
/// `allow_other`).
fn mount_at(
    store: &Arc<dyn cerfs_db::Store>,
    root: &Path,
) -> io::Result<(cerfs_fuse::Mount, Arc<cerfs_fs_core::CerFs>)> {
    let store = Arc::clone(store);
    let fs = Arc::new(cerfs_fs_core::CerFs::new(store).with_process_of(cerfs_fuse::process_of));
    let opts = cerfs_fuse::MountOptions {
        threads: 8,
        allow_other: true,
        fsname: "cerfs".into(),
    };
    cerfs_fuse::spawn_mount(Arc::clone(&fs), root, &opts).map(|mount| (mount, fs))
}

/// Logs of cerfs (fs-core, db, fuse) to stderr, filtered by `RUST_LOG` (default `warn`).
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _already = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// What one `cer-client` run reported on stdout (see the binary's documentation).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Cycles run.
    pub cycles: u64,
    /// Cabs written.
    pub cabs: u64,
    /// count.txt updates that succeeded.
    pub hits: u64,
    /// Errors met.
    pub errors: u64,
    /// Per bucket: what the client did to it.
    pub buckets: BTreeMap<Subpath, BucketSummary>,
    /// Every cab written.
    pub cab_list: Vec<client::CabWritten>,
}

/// What one `cer-client` run did to one bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BucketSummary {
    /// count.txt updates that succeeded (hits added).
    pub hits: u64,
    /// Cabs written (and counted in the count.txt updates).
    pub cabs: u64,
    /// Reports whose crash.log and hits.log lines were both appended.
    pub logged: u64,
}

impl Summary {
    /// Parses the stdout of `cer-client`.
    ///
    /// # Errors
    /// A line that does not follow the format, or no final `cycles=` line.
    pub fn parse(stdout: &str) -> Result<Summary, String> {
        let mut s = Summary::default();
        let mut seen_total = false;
        for line in stdout.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            match fields.as_slice() {
                ["cab", sub, name, sha, len] => s.cab_list.push(client::CabWritten {
                    sub: Subpath::parse(sub),
                    name: (*name).to_owned(),
                    sha256: (*sha).to_owned(),
                    len: len.parse().map_err(|_| format!("bad cab line {line:?}"))?,
                }),
                ["bucket", sub, hits, cabs, logged] => {
                    let b = BucketSummary {
                        hits: kv(hits, "hits")?,
                        cabs: kv(cabs, "cabs")?,
                        logged: kv(logged, "logged")?,
                    };
                    s.buckets.insert(Subpath::parse(sub), b);
                }
                [cycles, cabs, hits, errors] => {
                    s.cycles = kv(cycles, "cycles")?;
                    s.cabs = kv(cabs, "cabs")?;
                    s.hits = kv(hits, "hits")?;
                    s.errors = kv(errors, "errors")?;
                    seen_total = true;
                }
                _ => return Err(format!("unexpected line {line:?}")),
            }
        }
        if seen_total {
            Ok(s)
        } else {
            Err("no summary line".into())
        }
    }
}

/// `name=<u64>` → the number.
fn kv(field: &str, name: &str) -> Result<u64, String> {
    field
        .strip_prefix(name)
        .and_then(|r| r.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("expected {name}=<n>, got {field:?}"))
}

/// One parsed crash.log / hits.log entry (MS-CER 2.2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// `HH:MM:SS`.
    pub time: String,
    /// `MM-DD-YYYY`.
    pub date: String,
    /// Machine name.
    pub machine: String,
    /// User name.
    pub user: String,
    /// The subpath or bucket id (crash.log), the cab name or `No CAB` (hits.log).
    pub item: String,
}

/// Parses one log line with its CRLF (`Time SP SP Date HTAB Machine HTAB User HTAB Item
/// CRLF`); `None` if it does not follow the grammar.
pub fn parse_log_line(line: &[u8]) -> Option<LogEntry> {
    let line = std::str::from_utf8(line.strip_suffix(b"\r\n")?).ok()?;
    let (when, rest) = line.split_once('\t')?;
    let (time, date) = when.split_once("  ")?;
    let digits = |s: &str, shape: &str| {
        s.len() == shape.len()
            && s.bytes().zip(shape.bytes()).all(|(c, p)| {
                if p == b'9' {
                    c.is_ascii_digit()
                } else {
                    c == p
                }
            })
    };
    if !digits(time, "99:99:99") || !digits(date, "99-99-9999") {
        return None;
    }
    let mut parts = rest.splitn(3, '\t');
    let (machine, user, item) = (parts.next()?, parts.next()?, parts.next()?);
    if machine.is_empty() || user.is_empty() || item.is_empty() || item.contains('\t') {
        return None;
    }
    Some(LogEntry {
        time: time.to_owned(),
        date: date.to_owned(),
        machine: machine.to_owned(),
        user: user.to_owned(),
        item: item.to_owned(),
    })
}

/// Splits log content into its lines, each with its LF; a trailing partial line last.
pub fn split_lines(content: &[u8]) -> Vec<&[u8]> {
    content.split_inclusive(|b| *b == b'\n').collect()
}

/// The errno of a failed operation.
///
/// # Panics
/// When `result` is `Ok` (the operation should have failed) or carries no errno.
#[track_caller]
pub fn errno_of<T: std::fmt::Debug>(result: io::Result<T>, what: &str) -> i32 {
    match result {
        Ok(v) => panic!("{what}: expected an error, it succeeded with {v:?}"),
        Err(e) => e
            .raw_os_error()
            .unwrap_or_else(|| panic!("{what}: error without errno: {e}")),
    }
}

/// Asserts that `result` failed with one of `expected` (errno values).
///
/// # Panics
/// When it succeeded or failed with another errno.
#[track_caller]
pub fn assert_errno<T: std::fmt::Debug>(result: io::Result<T>, expected: &[i32], what: &str) {
    let got = errno_of(result, what);
    assert!(
        expected.contains(&got),
        "{what}: expected errno {expected:?}, got {got} ({})",
        io::Error::from_raw_os_error(got)
    );
}

pub use cerfs_testkit::sha256_hex;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_parse_per_the_grammar() {
        let e = parse_log_line(b"15:32:23  04-23-2007\tTestMachine\tTestUser\td5je031w.cab\r\n")
            .expect("the example's hits.log line parses");
        assert_eq!(
            (e.time.as_str(), e.date.as_str(), e.machine.as_str()),
            ("15:32:23", "04-23-2007", "TestMachine")
        );
        assert_eq!(
            (e.user.as_str(), e.item.as_str()),
            ("TestUser", "d5je031w.cab")
        );
        for bad in [
            &b"15:32:23 04-23-2007\tM\tU\tI\r\n"[..],
            b"15:32:23  04-23-2007\tM\tU\tI\n",
            b"15:32:23  04-23-2007\tM\tU\r\n",
            b"1532:23  04-23-2007\tM\tU\tI\r\n",
        ] {
            assert!(parse_log_line(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn summaries_parse() {
        let out = "cab App0\\1\\M\\2\\0000abcd abcdefgh.cab 00ff 2048\n\
                   bucket App0\\1\\M\\2\\0000abcd hits=3 cabs=1 logged=3\n\
                   cycles=3 cabs=1 hits=3 errors=0\n";
        let s = Summary::parse(out).expect("parses");
        assert_eq!((s.cycles, s.cabs, s.hits, s.errors), (3, 1, 3, 0));
        assert_eq!(s.cab_list.len(), 1);
        assert_eq!(s.cab_list[0].sub.0.len(), 5);
        let b = s.buckets.values().next().expect("one bucket");
        assert_eq!((b.hits, b.cabs, b.logged), (3, 1, 3));
        assert!(Summary::parse("cab x\n").is_err());
        assert!(Summary::parse("").is_err(), "no summary line");
    }
}
