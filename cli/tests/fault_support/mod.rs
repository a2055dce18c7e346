//! Shared by the `fault_*` tests: deterministic data, a tmpfs that is unmounted when
//! dropped, read-only SQL on the store, the ledger checks; and, from the testkit, checked
//! closes, hashes, dead-mount cleanup and bounded polling.

#![allow(dead_code, unused_imports)] // each test binary uses a different part of this module

pub use cerfs_testkit::process::detach_mount;
pub use cerfs_testkit::{close_checked, poll_until, sha256_file, sha256_hex};

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A small seeded generator (xorshift64*): every random choice of a test derives from it.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (0 is mapped to a fixed non-zero state).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1) ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `lo..hi` (`hi > lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(len);
        out
    }
}

/// The seed of a randomized test: `CERFS_FAULT_SEED` if set, else the clock. Printed, so
/// that a failure can be replayed.
pub fn seed(test: &str) -> u64 {
    let seed = std::env::var("CERFS_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    eprintln!("{test}: seed {seed} (replay with CERFS_FAULT_SEED={seed})");
    seed
}

/// A fresh temp directory: `(guard, canonical root)`.
pub fn tempdir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().canonicalize().expect("canonical temp dir");
    (dir, root)
}

/// A read-only SQL connection to the store (safe beside the running server: WAL).
pub fn sql(db: &Path) -> rusqlite::Connection {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open the store read-only");
    conn.busy_timeout(Duration::from_secs(10))
        .expect("busy timeout");
    conn
}

/// A tmpfs mounted for the length of a test; unmounted (lazily) when dropped.
pub struct Tmpfs {
    /// Where it is mounted.
    pub path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=` takes it, e.g. `64m`) on `path`;
    /// `Err` with mount's message when that is not possible (not root, no mount(8)).
    pub fn mount(path: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(path).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(path)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(Tmpfs {
            path: path.to_path_buf(),
        })
    }

    /// Changes its size (`mount -o remount,size=`).
    pub fn resize(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.path)
            .status()
            .expect("run mount -o remount");
        assert!(status.success(), "remount tmpfs with size={size}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: on a panic path the server may still hold the database open; the tmpfs
        // then goes away as soon as it exits.
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// The `(name, state, size, sha256)` of every cab of `subpath` in the store.
pub fn cab_rows(db: &Path, subpath: &str) -> Vec<(String, String, Option<i64>, Option<String>)> {
    let conn = sql(db);
    let mut stmt = conn
        .prepare("SELECT name, state, size, sha256 FROM cabs WHERE subpath = ?1 ORDER BY name")
        .expect("prepare");
    let rows = stmt
        .query_map([subpath], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .expect("query cabs")
        .collect::<Result<Vec<_>, _>>()
        .expect("read cabs");
    rows
}

/// The names listed in a directory, sorted.
pub fn list(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
        .map(|e| {
            e.expect("entry")
                .file_name()
                .into_string()
                .expect("UTF-8 name")
        })
        .collect();
    names.sort();
    names
}

/// The items (last field) of the hits.log text `log`, checked against a client ledger:
/// every acknowledged line is present and every present line was attempted.
pub fn check_log_items(
    round: u32,
    log: &str,
    acked: &std::collections::BTreeSet<String>,
    attempted: &std::collections::BTreeSet<String>,
) -> std::collections::BTreeSet<String> {
    let items: std::collections::BTreeSet<String> = log
        .lines()
        .filter_map(|line| line.rsplit('\t').next())
        .map(|i| i.trim_end_matches('\r').to_owned())
        .collect();
    for item in acked {
        assert!(
            items.contains(item),
            "round {round}: acknowledged hits.log line {item} is missing"
        );
    }
    for item in &items {
        assert!(
            attempted.contains(item),
            "round {round}: hits.log has a line nobody sent: {item}"
        );
    }
    items
}
