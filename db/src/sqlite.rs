//! SQLite implementation of [`Store`](crate::Store): one writer connection, a pool of WAL
//! reader connections.
//!
//! The schema is in `migrations/` (0002 renames the tables fs-core works on to `*_rows` and
//! puts the documented views for SQL users in their place: docs/sql.md). Every mutating
//! method runs in one `BEGIN IMMEDIATE` transaction on the writer; every read runs in one
//! (deferred) read transaction on a pooled reader, so it sees one consistent snapshot that
//! includes everything committed before it began, and never blocks or waits for the writer.
//!
//! This file opens the store and runs transactions; each family of store methods is in a
//! file of its own (`namespace.rs`, `content.rs`, `counters.rs`, `settings.rs`, `logs.rs`),
//! over the row helpers of `rows.rs`.

mod alerts;
pub(crate) mod cab_db;
mod change_mark;
mod checkpointer;
pub(crate) mod connection;
pub(crate) mod console;
mod console_detail;
mod content;
mod counters;
mod file_identity;
pub(crate) mod index;
mod logs;
mod maintenance;
mod namespace;
mod pool;
mod recovery;
mod removal;
mod retention;
pub(crate) mod rows;
pub(crate) mod schema;
mod server_lock;
mod settings;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, ErrorCode, OpenFlags};

use self::checkpointer::Checkpointer;
use self::file_identity::FileIdentity;
pub use self::maintenance::partial_path as backup_partial_path;
use self::pool::{lock, ReaderPool};
pub use self::recovery::PurgedCab;
pub(crate) use self::retention::setting as retention_setting;
use self::server_lock::ServerLock;
use crate::store::Result;
use crate::{OpenError, StoreError};

/// Size of the chunks that hold the bytes of `File` and `Cab` nodes (part of the on-disk
/// format: the schema checks it).
pub const CHUNK_SIZE: usize = 64 * 1024;
pub(crate) const CHUNK: u64 = CHUNK_SIZE as u64;

pub(crate) use crate::store_rules::MAX_FILE_SIZE;

/// The current time in SQLite, as stored in every `*_at` / `*_seen` column (a literal, for
/// `concat!`).
macro_rules! sql_now {
    () => {
        "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
    };
}
pub(crate) use sql_now;

/// Who opens the store: the one server process, or an admin's command beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpenMode {
    /// Creates the file if missing; purges unfinished uploads of a previous process.
    Server,
    /// Requires the file; touches no upload.
    Admin,
    /// An admin's command that needs the database alone: requires the file, takes the
    /// server lock, touches no upload.
    Exclusive,
}

/// The SQLite store: one database file in WAL mode, and beside it the cab database
/// (`<db>-cabs`, [`cab_db`]) for the bytes of cabs.
pub struct SqliteStore {
    path: PathBuf,
    /// The file opened: writes and new readers check that `path` still names it.
    pub(crate) identity: FileIdentity,
    /// The server's background checkpointer (none for admin commands). Declared before
    /// `writer`: it stops before the writer closes (which checkpoints one last time).
    checkpointer: Option<Checkpointer>,
    writer: Mutex<Connection>,
    readers: ReaderPool,
    /// The bytes of cabs (from their split, `cab_db::CAB_DB_FROM` for new ones).
    pub(crate) cab_db: cab_db::CabDb,
    purged: Vec<PurgedCab>,
    /// How a server hears of an admin's commits (`<db>.changes`).
    pub(crate) change_mark: change_mark::ChangeMark,
    /// A server's hold on the database (declared last: released after the writer closed).
    _lock: Option<ServerLock>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens the database at `path`, creating it if missing, and brings its schema up to date.
    ///
    /// Refuses a database written by a newer cerfs ([`OpenError::TooNew`]). Cab uploads left
    /// in state `writing` by a previous process (which died before their writer closed them)
    /// are deleted, each logged with a warning; see [`SqliteStore::purged_cabs`].
    ///
    /// Only one server process may use a database at a time (that purge would otherwise
    /// delete another process's uploads in progress); admin commands use
    /// [`SqliteStore::open_for_admin`] beside it, SQL users [`crate::QueryDb`].
    pub fn open(path: &Path) -> std::result::Result<SqliteStore, OpenError> {
        Self::open_inner(path, OpenMode::Server).map_err(open_failed)
    }

    /// Opens an existing database for an administrator's command (the `cerfs` admin
    /// subcommands), safely beside a running server (`cerfs mount` / `cerfs serve`) on the
    /// same file.
    ///
    /// Unlike [`SqliteStore::open`] it never creates the file ([`OpenError::NoDatabase`])
    /// and it skips the start-up recovery: cab rows in state `writing` are left alone,
    /// since they may be uploads in progress of the running server. Nor does it migrate: a
    /// file of an older schema is refused ([`OpenError::SchemaTooOld`]: the server that
    /// may be running on it would not know the new schema; starting the server of this
    /// version upgrades it), a newer one too ([`OpenError::TooNew`]). Changes made through
    /// it are seen by the server's next read: the share renders from the database.
    pub fn open_for_admin(path: &Path) -> std::result::Result<SqliteStore, OpenError> {
        Self::open_inner(path, OpenMode::Admin).map_err(open_failed)
    }

    fn open_locked_admin(path: &Path) -> std::result::Result<SqliteStore, OpenError> {
        Self::open_inner(path, OpenMode::Exclusive).map_err(open_failed)
    }

    fn open_inner(path: &Path, mode: OpenMode) -> std::result::Result<SqliteStore, OpenError> {
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut lock = None;
        match mode {
            OpenMode::Server => {
                flags |= OpenFlags::SQLITE_OPEN_CREATE;
                // Before anything is touched: the recovery below would delete another
                // server's uploads in progress.
                lock = Some(ServerLock::acquire(path)?);
                // Cab dumps and logs can hold secrets: the server's alone.
                file_identity::make_private(path, true)?;
            }
            OpenMode::Admin | OpenMode::Exclusive => {
                if !path.is_file() {
                    return Err(OpenError::NoDatabase(path.to_path_buf()));
                }
                if mode == OpenMode::Exclusive {
                    lock = Some(ServerLock::acquire(path)?);
                }
            }
        }
        let mut conn = connection::open_writer(path, flags, mode == OpenMode::Server)?;
        let cab_db = cab_db::CabDb::open(path).map_err(|e| OpenError::Unusable(e.to_string()))?;
        recovery::pair_cab_db(&conn, path, &cab_db, mode == OpenMode::Server)?;
        let purged = match mode {
            OpenMode::Server => {
                let purged = recovery::purge_incomplete_cabs(&mut conn)?;
                recovery::drop_orphan_cab_bytes(&conn, &cab_db)
                    .map_err(|e| OpenError::Unusable(e.to_string()))?;
                purged
            }
            OpenMode::Admin | OpenMode::Exclusive => Vec::new(),
        };
        // Absolute, so that readers opened later still find it if the process changes its
        // working directory (a daemon does).
        let path = std::fs::canonicalize(path)
            .map_err(|e| OpenError::Unusable(format!("cannot resolve {}: {e}", path.display())))?;
        let identity = FileIdentity::of(&path)?;
        let checkpointer = match mode {
            OpenMode::Server => {
                conn.pragma_update(
                    None,
                    "wal_autocheckpoint",
                    checkpointer::WRITER_BACKSTOP_PAGES,
                )?;
                conn.pragma_update(None, "journal_size_limit", checkpointer::WAL_SIZE_LIMIT)?;
                Some(Checkpointer::start(&path)?)
            }
            OpenMode::Admin | OpenMode::Exclusive => None,
        };
        let change_mark = change_mark::ChangeMark::new(&path, mode != OpenMode::Server);
        Ok(SqliteStore {
            change_mark,
            cab_db,
            readers: ReaderPool::new(path.clone(), identity),
            checkpointer,
            path,
            identity,
            writer: Mutex::new(conn),
            purged,
            _lock: lock,
        })
    }

    /// The absolute path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `PRAGMA integrity_check`: `"ok"` when the database is sound, else SQLite's
    /// findings, one per line.
    pub fn integrity_check(&self) -> Result<String> {
        finish(self.read(|tx| {
            let mut stmt = tx.prepare("PRAGMA integrity_check")?;
            let lines = stmt
                .query_map([], |row| row.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(lines.join("\n"))
        }))
    }

    /// Whether this store holds the database's server lock (a server's, or an exclusive
    /// admin command's).
    pub(crate) fn holds_server_lock(&self) -> bool {
        self._lock.is_some()
    }

    /// How many unfinished cab uploads [`SqliteStore::open`] deleted.
    pub fn purged_at_open(&self) -> usize {
        self.purged.len()
    }

    /// The unfinished cab uploads [`SqliteStore::open`] deleted.
    pub fn purged_cabs(&self) -> &[PurgedCab] {
        &self.purged
    }

    /// Caps the size of the database file at about `bytes` (rounded down to whole pages,
    /// never below its current size): writes that would grow it further fail with
    /// [`StoreError::Full`]. Lasts until the store is closed. Returns the effective cap.
    pub fn set_size_limit(&self, bytes: u64) -> Result<u64> {
        finish((|| {
            let conn = lock(&self.writer);
            let page_size: i64 = conn.pragma_query_value(None, "page_size", |row| row.get(0))?;
            let page_size = page_size.max(1);
            let pages = i64::try_from(bytes).unwrap_or(i64::MAX) / page_size;
            let set: i64 =
                conn.pragma_update_and_check(None, "max_page_count", pages.max(1), |row| {
                    row.get(0)
                })?;
            Ok(u64::try_from(set.saturating_mul(page_size)).unwrap_or(0))
        })())
    }

    /// Runs `f` in one immediate write transaction on the writer connection; commits when
    /// it returns `Ok`, rolls back otherwise. A full disk is [`StoreError::Full`].
    pub(crate) fn write<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = lock(&self.writer);
        // One stat per transaction: a write into a replaced file would be lost.
        self.identity.check(&self.path)?;
        let out = finish(in_transaction(&conn, "BEGIN IMMEDIATE", f))?;
        if let Some(checkpointer) = &self.checkpointer {
            checkpointer.note_commit();
        }
        self.change_mark.note_commit();
        Ok(out)
    }

    /// Runs `f` in one read transaction on a pooled reader connection.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = self.readers.get()?;
        finish(in_transaction(&conn, "BEGIN", f))
    }
}

/// Runs `f` between `begin` and COMMIT (ROLLBACK when it fails or panics), with cached
/// statements: rusqlite's `Transaction` parses its BEGIN and COMMIT again at every call,
/// which showed in profiles of the file system's many small requests.
pub(crate) fn in_transaction<T, E: From<rusqlite::Error>>(
    conn: &Connection,
    begin: &str,
    f: impl FnOnce(&Connection) -> std::result::Result<T, E>,
) -> std::result::Result<T, E> {
    /// Rolls back unless disarmed, so that a failed or panicking `f` leaves no transaction.
    struct Open<'c>(Option<&'c Connection>);
    impl Drop for Open<'_> {
        fn drop(&mut self) {
            if let Some(conn) = self.0.take() {
                if !conn.is_autocommit() {
                    if let Err(e) = conn
                        .prepare_cached("ROLLBACK")
                        .and_then(|mut s| s.execute([]))
                    {
                        tracing::warn!("rollback failed: {e}");
                    }
                }
            }
        }
    }
    conn.prepare_cached(begin)?.execute([])?;
    let mut open = Open(Some(conn));
    let out = f(conn)?;
    conn.prepare_cached("COMMIT")?.execute([])?;
    open.0 = None;
    Ok(out)
}

/// Whether an SQLite error says the disk (or the size cap) is full.
pub(crate) fn is_disk_full(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(ErrorCode::DiskFull)
}

/// The single exit of every operation: a full disk (or a reached size cap) is
/// `StoreError::Full`, whichever statement ran into it.
pub(crate) fn finish<T>(r: Result<T>) -> Result<T> {
    r.map_err(|e| match e {
        StoreError::Sqlite(ref err) if is_disk_full(err) => StoreError::Full,
        other => other,
    })
}

/// The same for opening: a full disk during migration or recovery is `OpenError::Full`.
fn open_failed(e: OpenError) -> OpenError {
    match e {
        OpenError::Sqlite(ref err) if is_disk_full(err) => OpenError::Full,
        other => other,
    }
}
