//! `<database>.changes`: how a server hears that another process (an admin's
//! `cerfs status set`, `cerfs counts set`) committed a change, so that it can take back what
//! it let the kernel cache. Every write transaction of an admin's store rewrites the file
//! with a token no other write used (pid, time, sequence); the server compares the token it
//! reads now with the last one. The file holds no data: losing it loses nothing.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The change mark of one database.
#[derive(Debug)]
pub(crate) struct ChangeMark {
    path: PathBuf,
    /// Whether this store's commits move the mark (an admin's store, not the server's).
    marks: bool,
    sequence: AtomicU64,
}

/// `<database>.changes`.
fn mark_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".changes");
    PathBuf::from(name)
}

impl ChangeMark {
    /// The mark of the database at `db`; `marks`: this store's commits move it.
    pub(crate) fn new(db: &Path, marks: bool) -> Self {
        ChangeMark {
            path: mark_path(db),
            marks,
            sequence: AtomicU64::new(0),
        }
    }

    /// After a commit: moves the mark if this store is an admin's. A failure is logged and
    /// otherwise ignored: the server's cache then expires on its own (1 s).
    pub(crate) fn note_commit(&self) {
        if !self.marks {
            return;
        }
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let token = format!(
            "{} {nanos} {}\n",
            std::process::id(),
            self.sequence.fetch_add(1, Ordering::Relaxed)
        );
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        if let Err(e) = options
            .open(&self.path)
            .and_then(|mut f| f.write_all(token.as_bytes()))
        {
            tracing::warn!(path = %self.path.display(), "cannot mark a change for the server: {e}");
        }
    }

    /// A number that moves whenever another process's commit moved the mark (0: never
    /// marked). Reading costs one small file read.
    pub(crate) fn read(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        match std::fs::read(&self.path) {
            Ok(token) if !token.is_empty() => {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                token.hash(&mut h);
                h.finish() | 1
            }
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_admin_commit_moves_the_mark_and_a_server_commit_does_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("cerfs.db");
        let server = ChangeMark::new(&db, false);
        let admin = ChangeMark::new(&db, true);
        assert_eq!(server.read(), 0, "never marked");
        server.note_commit();
        assert_eq!(
            server.read(),
            0,
            "the server's own commits are not outside changes"
        );
        admin.note_commit();
        let first = server.read();
        assert_ne!(first, 0);
        admin.note_commit();
        assert_ne!(server.read(), first, "every admin commit moves the mark");
    }
}
