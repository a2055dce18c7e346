//! SQLite implementation of [`Store`]: one writer connection, a pool of WAL reader connections.
//!
//! The schema is in `migrations/0001_init.sql` and `0002_views_and_cab_index.sql` (which
//! renames the tables fs-core works on to `*_rows` and puts the documented views for SQL
//! users in their place: docs/sql.md). Every mutating method runs in one `BEGIN IMMEDIATE`
//! transaction on the writer; every read runs in one (deferred) read transaction on a pooled
//! reader, so it sees one consistent snapshot that includes everything committed before it
//! began, and never blocks or waits for the writer.

mod checkpointer;
mod pool;
pub(crate) mod schema;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::config::DbConfig;
use rusqlite::types::Type;
use rusqlite::{
    params, Connection, ErrorCode, OpenFlags, OptionalExtension, Row, TransactionBehavior,
};

use self::checkpointer::Checkpointer;
use self::pool::{lock, ReaderPool};
use crate::store::{
    AttrChange, BucketId, BucketKey, CabState, Counts, Ino, LogFields, LogId, LogLine, NewNode,
    Node, NodeRole, Result, SettingsScope, Store, ROOT_INO,
};
use crate::StoreError;

/// Size of the chunks that hold the bytes of `File` and `Cab` nodes (part of the on-disk
/// format: the schema checks it).
pub const CHUNK_SIZE: usize = 64 * 1024;
const CHUNK: u64 = CHUNK_SIZE as u64;

/// How long a connection waits for a lock held by another connection (another process, e.g.
/// an admin's `sqlite3` shell, or the WAL checkpointer) before failing with SQLITE_BUSY.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Prepared statements cached per connection (the store uses a few dozen distinct ones).
const STATEMENT_CACHE: usize = 64;

/// Largest byte offset / size a file may reach (SQLite integers are signed 64-bit).
const MAX_FILE_SIZE: u64 = i64::MAX as u64;

/// The current time in SQLite, as stored in every `*_at` / `*_seen` column (a literal, for
/// `concat!`).
macro_rules! sql_now {
    () => {
        "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
    };
}

/// A cab upload found unfinished (state `writing`) when the store was opened, and deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgedCab {
    /// Inode the cab had.
    pub ino: Ino,
    /// Subpath of its bucket.
    pub subpath: String,
    /// Its file name.
    pub name: String,
    /// How many bytes had been received.
    pub bytes: u64,
}

/// Who opens the store: the one server process, or an admin's command beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpenMode {
    /// Creates the file if missing; purges unfinished uploads of a previous process.
    Server,
    /// Requires the file; touches no upload.
    Admin,
}

/// The SQLite store: one database file in WAL mode.
pub struct SqliteStore {
    path: PathBuf,
    /// The server's background checkpointer (none for admin commands). Declared before
    /// `writer`: it stops before the writer closes (which checkpoints one last time).
    checkpointer: Option<Checkpointer>,
    writer: Mutex<Connection>,
    readers: ReaderPool,
    purged: Vec<PurgedCab>,
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
    /// Refuses a database written by a newer cerfs ([`StoreError::TooNew`]). Cab uploads left
    /// in state `writing` by a previous process (which died before their writer closed them)
    /// are deleted, each logged with a warning; see [`SqliteStore::purged_cabs`].
    ///
    /// Only one server process may use a database at a time (that purge would otherwise
    /// delete another process's uploads in progress); admin commands use
    /// [`SqliteStore::open_for_admin`] beside it, SQL users [`crate::QueryDb`].
    pub fn open(path: &Path) -> Result<SqliteStore> {
        finish(Self::open_inner(path, OpenMode::Server))
    }

    /// Opens an existing database for an administrator's command (the `cerfs` admin
    /// subcommands), safely beside a running server (`cerfs mount` / `cerfs serve`) on the
    /// same file.
    ///
    /// Unlike [`SqliteStore::open`] it never creates the file ([`StoreError::NoDatabase`])
    /// and it skips the start-up recovery: cab rows in state `writing` are left alone,
    /// since they may be uploads in progress of the running server. Nor does it migrate: a
    /// file of an older schema is refused ([`StoreError::SchemaTooOld`]: the server that
    /// may be running on it would not know the new schema; starting the server of this
    /// version upgrades it), a newer one too ([`StoreError::TooNew`]). Changes made through
    /// it are seen by the server's next read: the share renders from the database.
    pub fn open_for_admin(path: &Path) -> Result<SqliteStore> {
        finish(Self::open_inner(path, OpenMode::Admin))
    }

    fn open_inner(path: &Path, mode: OpenMode) -> Result<SqliteStore> {
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        match mode {
            OpenMode::Server => flags |= OpenFlags::SQLITE_OPEN_CREATE,
            OpenMode::Admin => {
                if !path.is_file() {
                    return Err(StoreError::NoDatabase(path.to_path_buf()));
                }
            }
        }
        let mut conn = open_writer(path, flags, mode == OpenMode::Server)?;
        let purged = match mode {
            OpenMode::Server => purge_incomplete_cabs(&mut conn)?,
            OpenMode::Admin => Vec::new(),
        };
        // Absolute, so that readers opened later still find it if the process changes its
        // working directory (a daemon does).
        let path = std::fs::canonicalize(path)
            .map_err(|e| StoreError::Invalid(format!("cannot resolve {}: {e}", path.display())))?;
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
            OpenMode::Admin => None,
        };
        Ok(SqliteStore {
            readers: ReaderPool::new(path.clone()),
            checkpointer,
            path,
            writer: Mutex::new(conn),
            purged,
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
    /// it returns `Ok`, rolls back otherwise.
    pub(crate) fn write<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = lock(&self.writer);
        let out = in_transaction(&conn, "BEGIN IMMEDIATE", f)?;
        if let Some(checkpointer) = &self.checkpointer {
            checkpointer.note_commit();
        }
        Ok(out)
    }

    /// Runs `f` in one read transaction on a pooled reader connection.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = self.readers.get()?;
        in_transaction(&conn, "BEGIN", f)
    }
}

/// Runs `f` between `begin` and COMMIT (ROLLBACK when it fails or panics), with cached
/// statements: rusqlite's `Transaction` parses its BEGIN and COMMIT again at every call,
/// which showed in profiles of the file system's many small requests.
pub(crate) fn in_transaction<T>(
    conn: &Connection,
    begin: &str,
    f: impl FnOnce(&Connection) -> Result<T>,
) -> Result<T> {
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

/// A connection that may write: common pragmas, WAL, `synchronous=NORMAL`; the schema
/// brought up to date when `migrate`, else required to be up to date. Used by the store's
/// writer and by the cab indexer's own writer.
pub(crate) fn open_writer(path: &Path, flags: OpenFlags, migrate: bool) -> Result<Connection> {
    let mut conn = Connection::open_with_flags(path, flags)?;
    configure_common(&conn)?;
    // WAL: readers work on a snapshot and never block the single writer (nor it them).
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Invalid(format!(
            "{} cannot be put in WAL mode (journal_mode is {mode})",
            path.display()
        )));
    }
    // synchronous=NORMAL in WAL mode: a commit appends its pages to the -wal file with
    // write(2) but does not fsync it (fsync happens at checkpoints). Once commit returns,
    // the data is in the kernel's page cache, so killing the process (kill -9, a crash)
    // loses nothing: the next open replays the WAL. Only an OS crash or power loss can
    // lose the last transactions before a checkpoint, and even then the database stays
    // consistent (WAL frames are checksummed; a torn tail is ignored). FULL would fsync
    // on every commit, which costs a lot for a file system's many small transactions.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    if migrate {
        schema::migrate(&mut conn)?;
    } else {
        schema::require_current(&conn)?;
    }
    Ok(conn)
}

/// Settings shared by the writer and the readers (per-connection pragmas).
pub(crate) fn configure_common(conn: &Connection) -> Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // Plans never depend on bound values: without this, a statement whose plan looked at a
    // parameter (a partial index's WHERE, a LIKE prefix) is prepared again at every step
    // with new values, which made a count.txt lookup cost 200 µs of parsing.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(())
}

/// The single exit of every public method: a full disk (or a reached size cap) is
/// `StoreError::Full`, whichever statement ran into it.
pub(crate) fn finish<T>(r: Result<T>) -> Result<T> {
    r.map_err(|e| match e {
        StoreError::Sqlite(ref err) if err.sqlite_error_code() == Some(ErrorCode::DiskFull) => {
            StoreError::Full
        }
        other => other,
    })
}

/// Deletes the cabs still in state `writing` (node, chunks and cabs row), in one transaction.
fn purge_incomplete_cabs(conn: &mut Connection) -> Result<Vec<PurgedCab>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let purged = {
        let mut stmt = tx.prepare(
            "SELECT c.ino, b.subpath, n.name, n.size FROM cab_rows c \
             JOIN nodes n ON n.ino = c.ino JOIN bucket_rows b ON b.bucket_id = c.bucket_id \
             WHERE c.state = 'writing' ORDER BY c.ino",
        )?;
        let rows = stmt.query_map([], |row| {
            Ok(PurgedCab {
                ino: get_u64(row, 0)?,
                subpath: row.get(1)?,
                name: row.get(2)?,
                bytes: get_u64(row, 3)?,
            })
        })?;
        rows.collect::<rusqlite::Result<Vec<_>>>()?
    };
    for cab in &purged {
        let ino = ino_param(cab.ino);
        tx.execute("DELETE FROM chunks WHERE ino = ?1", [ino])?;
        tx.execute("DELETE FROM cab_rows WHERE ino = ?1", [ino])?;
        tx.execute("DELETE FROM nodes WHERE ino = ?1", [ino])?;
        tracing::warn!(
            subpath = %cab.subpath,
            name = %cab.name,
            bytes = cab.bytes,
            "deleted an unfinished cab upload (its writer never closed it)"
        );
    }
    tx.commit()?;
    Ok(purged)
}

// ---------------------------------------------------------------------------------------
// conversions

/// An inode number as an SQL parameter. Numbers above `i64::MAX` cannot exist; they become
/// -1, which matches no row.
fn ino_param(ino: Ino) -> i64 {
    i64::try_from(ino).unwrap_or(-1)
}

/// A byte offset or size as an SQL value, or `Invalid` past `i64::MAX`.
fn size_param(v: u64, what: &str) -> Result<i64> {
    i64::try_from(v).map_err(|_| StoreError::Invalid(format!("{what} {v} is beyond 2^63 - 1")))
}

/// A column holding a non-negative integer.
pub(crate) fn get_u64(row: &Row<'_>, idx: usize) -> rusqlite::Result<u64> {
    let v: i64 = row.get(idx)?;
    u64::try_from(v)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, Type::Integer, e.into()))
}

fn time_to_ns(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_nanos())
            .map(|n| -n)
            .unwrap_or(i64::MIN),
    }
}

fn ns_to_time(ns: i64) -> SystemTime {
    let d = Duration::from_nanos(ns.unsigned_abs());
    let t = if ns >= 0 {
        UNIX_EPOCH.checked_add(d)
    } else {
        UNIX_EPOCH.checked_sub(d)
    };
    t.unwrap_or(UNIX_EPOCH)
}

fn now_ns() -> i64 {
    time_to_ns(SystemTime::now())
}

fn role_str(role: NodeRole) -> &'static str {
    match role {
        NodeRole::Dir => "dir",
        NodeRole::File => "file",
        NodeRole::Cab => "cab",
        NodeRole::Count => "count",
        NodeRole::Status => "status",
        NodeRole::Policy => "policy",
        NodeRole::CrashLog => "crashlog",
        NodeRole::HitsLog => "hitslog",
    }
}

fn role_from_str(s: &str) -> Option<NodeRole> {
    Some(match s {
        "dir" => NodeRole::Dir,
        "file" => NodeRole::File,
        "cab" => NodeRole::Cab,
        "count" => NodeRole::Count,
        "status" => NodeRole::Status,
        "policy" => NodeRole::Policy,
        "crashlog" => NodeRole::CrashLog,
        "hitslog" => NodeRole::HitsLog,
        _ => return None,
    })
}

fn bad_text(idx: usize, what: &str, value: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        idx,
        Type::Text,
        format!("unknown {what} {value:?}").into(),
    )
}

/// `SELECT` of a full [`Node`] (read by [`node_from_row`]) followed by `$tail`.
macro_rules! select_node {
    ($tail:literal) => {
        concat!(
            "SELECT n.ino, n.parent, n.name, n.role, n.size, n.mode, n.uid, n.gid, ",
            "n.mtime_ns, n.ctime_ns, n.crtime_ns, n.bucket_id, c.state ",
            "FROM nodes n LEFT JOIN cab_rows c ON c.ino = n.ino ",
            $tail
        )
    };
}

fn node_from_row(row: &Row<'_>) -> rusqlite::Result<Node> {
    let role: String = row.get(3)?;
    let role = role_from_str(&role).ok_or_else(|| bad_text(3, "role", &role))?;
    let state: Option<String> = row.get(12)?;
    let cab_state = match state.as_deref() {
        None => None,
        Some("writing") => Some(CabState::Writing),
        Some("complete") => Some(CabState::Complete),
        Some(other) => return Err(bad_text(12, "cab state", other)),
    };
    Ok(Node {
        ino: get_u64(row, 0)?,
        parent: get_u64(row, 1)?,
        name: row.get(2)?,
        role,
        size: get_u64(row, 4)?,
        mode: row.get(5)?,
        uid: row.get(6)?,
        gid: row.get(7)?,
        mtime: ns_to_time(row.get(8)?),
        ctime: ns_to_time(row.get(9)?),
        crtime: ns_to_time(row.get(10)?),
        bucket: row.get(11)?,
        cab_state,
    })
}

/// A name a node may have: not empty (that is the root's), no `/`, no NUL.
fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.contains(['/', '\0']) {
        return Err(StoreError::Invalid(format!("bad node name {name:?}")));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// queries shared by several methods (on either kind of connection)

fn get_node(conn: &Connection, ino: Ino) -> Result<Option<Node>> {
    let mut stmt = conn.prepare_cached(select_node!("WHERE n.ino = ?1"))?;
    Ok(stmt.query_row([ino_param(ino)], node_from_row).optional()?)
}

fn require_node(conn: &Connection, ino: Ino) -> Result<Node> {
    get_node(conn, ino)?.ok_or(StoreError::NotFound(ino))
}

fn lookup_in(conn: &Connection, parent: Ino, name: &str) -> Result<Option<Node>> {
    // `n.ino <> n.parent`: the root is not its own child named ''.
    let mut stmt = conn.prepare_cached(select_node!(
        "WHERE n.parent = ?1 AND n.name = ?2 AND n.ino <> n.parent"
    ))?;
    Ok(stmt
        .query_row(params![ino_param(parent), name], node_from_row)
        .optional()?)
}

/// The directory `ino`: `NotFound` if missing, `NotDir` if it is something else.
fn require_dir(conn: &Connection, ino: Ino) -> Result<Node> {
    let node = require_node(conn, ino)?;
    if node.role != NodeRole::Dir {
        return Err(StoreError::NotDir(ino));
    }
    Ok(node)
}

fn has_children(conn: &Connection, ino: Ino) -> Result<bool> {
    let mut stmt =
        conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM nodes WHERE parent = ?1 AND ino <> ?1)")?;
    Ok(stmt.query_row([ino_param(ino)], |row| row.get(0))?)
}

/// Sets mtime and ctime of a directory whose entries changed.
fn touch_dir(conn: &Connection, ino: Ino, now: i64) -> Result<()> {
    let mut stmt =
        conn.prepare_cached("UPDATE nodes SET mtime_ns = ?2, ctime_ns = ?2 WHERE ino = ?1")?;
    stmt.execute(params![ino_param(ino), now])?;
    Ok(())
}

fn bucket_exists(conn: &Connection, bucket: BucketId) -> Result<bool> {
    let mut stmt =
        conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM bucket_rows WHERE bucket_id = ?1)")?;
    Ok(stmt.query_row([bucket], |row| row.get(0))?)
}

fn require_bucket(conn: &Connection, bucket: BucketId) -> Result<()> {
    if bucket_exists(conn, bucket)? {
        Ok(())
    } else {
        Err(StoreError::NoBucket(bucket))
    }
}

fn find_bucket(conn: &Connection, subpath: &str) -> Result<Option<BucketId>> {
    let mut stmt = conn.prepare_cached("SELECT bucket_id FROM bucket_rows WHERE subpath = ?1")?;
    Ok(stmt.query_row([subpath], |row| row.get(0)).optional()?)
}

fn ensure_bucket_in(conn: &Connection, key: &BucketKey) -> Result<BucketId> {
    if key.subpath.is_empty() {
        return Err(StoreError::Invalid("empty bucket subpath".into()));
    }
    if (key.kind == "app") != key.app.is_some() {
        return Err(StoreError::Invalid(format!(
            "bucket {:?} of kind {:?}: the five app fields are required for kind \"app\" \
             and only for it",
            key.subpath, key.kind
        )));
    }
    if let Some(id) = find_bucket(conn, &key.subpath)? {
        return Ok(id);
    }
    let [app, app_ver, module, mod_ver, offset] = match &key.app {
        Some([a, b, c, d, e]) => [Some(a), Some(b), Some(c), Some(d), Some(e)],
        None => [None; 5],
    };
    let mut stmt = conn.prepare_cached(
        "INSERT INTO bucket_rows (subpath, kind, app, app_ver, module, mod_ver, fault_offset) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    stmt.execute(params![
        key.subpath,
        key.kind,
        app,
        app_ver,
        module,
        mod_ver,
        offset
    ])?;
    Ok(conn.last_insert_rowid())
}

/// Removes `node` and what it owns (see [`Store::remove_node`]); the caller touches the parent.
fn remove_in(conn: &Connection, node: &Node) -> Result<()> {
    if node.ino == ROOT_INO {
        return Err(StoreError::Invalid("the root cannot be removed".into()));
    }
    if node.role == NodeRole::Dir && has_children(conn, node.ino)? {
        return Err(StoreError::NotEmpty(node.ino));
    }
    match (node.role, node.bucket) {
        (NodeRole::Status, Some(bucket)) => {
            let mut stmt = conn.prepare_cached("DELETE FROM setting_rows WHERE bucket_id = ?1")?;
            stmt.execute([bucket])?;
        }
        (NodeRole::Policy, _) => {
            let mut stmt =
                conn.prepare_cached("DELETE FROM setting_rows WHERE bucket_id IS NULL")?;
            stmt.execute([])?;
        }
        _ => {}
    }
    let ino = ino_param(node.ino);
    // ON DELETE CASCADE does the same; explicit, so that it holds whatever the pragma says.
    conn.prepare_cached("DELETE FROM chunks WHERE ino = ?1")?
        .execute([ino])?;
    conn.prepare_cached("DELETE FROM cab_rows WHERE ino = ?1")?
        .execute([ino])?;
    conn.prepare_cached("DELETE FROM nodes WHERE ino = ?1")?
        .execute([ino])?;
    Ok(())
}

/// A node whose bytes live in `chunks` (`File` or `Cab`), for reading.
fn content_node(conn: &Connection, ino: Ino) -> Result<Node> {
    let node = require_node(conn, ino)?;
    match node.role {
        NodeRole::File | NodeRole::Cab => Ok(node),
        NodeRole::Dir => Err(StoreError::IsDir(ino)),
        other => Err(StoreError::Invalid(format!(
            "inode {ino} ({}) has no stored bytes",
            role_str(other)
        ))),
    }
}

/// A node whose bytes may change: a `File`, or a `Cab` still being written.
fn writable_node(conn: &Connection, ino: Ino) -> Result<Node> {
    let node = content_node(conn, ino)?;
    if node.cab_state == Some(CabState::Complete) {
        return Err(StoreError::CabComplete(ino));
    }
    Ok(node)
}

fn set_size(conn: &Connection, ino: Ino, size: i64, now: i64) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "UPDATE nodes SET size = ?2, mtime_ns = ?3, ctime_ns = ?3 WHERE ino = ?1",
    )?;
    stmt.execute(params![ino_param(ino), size, now])?;
    Ok(())
}

/// `log_id` of a log: 0 for crash.log, the bucket id for a hits.log.
fn log_key(log: LogId) -> i64 {
    match log {
        LogId::Crash => 0,
        LogId::Hits(bucket) => bucket,
    }
}

/// Checks that a hits.log's bucket exists.
fn require_log(conn: &Connection, log: LogId) -> Result<()> {
    match log {
        LogId::Crash => Ok(()),
        LogId::Hits(bucket) if bucket > 0 => require_bucket(conn, bucket),
        LogId::Hits(bucket) => Err(StoreError::NoBucket(bucket)),
    }
}

fn log_length(conn: &Connection, log: LogId) -> Result<u64> {
    let mut stmt = conn.prepare_cached("SELECT length FROM logs WHERE log_id = ?1")?;
    Ok(stmt
        .query_row([log_key(log)], |row| get_u64(row, 0))
        .optional()?
        .unwrap_or(0))
}

/// `YYYY-MM-DDTHH:MM:SS` from `MM-DD-YYYY` and `HH:MM:SS`, if both have that shape.
fn client_time(fields: &LogFields) -> Option<String> {
    fn shaped(s: &str, pattern: &str) -> bool {
        s.len() == pattern.len()
            && s.bytes().zip(pattern.bytes()).all(|(c, p)| match p {
                b'9' => c.is_ascii_digit(),
                _ => c == p,
            })
    }
    if !shaped(&fields.date, "99-99-9999") || !shaped(&fields.time, "99:99:99") {
        return None;
    }
    let d = &fields.date;
    Some(format!(
        "{}-{}-{}T{}",
        &d[6..10],
        &d[0..2],
        &d[3..5],
        fields.time
    ))
}

/// Copies the part of `src` (which holds bytes `[src_start, src_start + src.len())` of a
/// file or log) that falls inside `out` (bytes `[out_start, out_start + out.len())`).
fn copy_overlap(out: &mut [u8], out_start: u64, src: &[u8], src_start: u64) {
    let out_end = out_start + out.len() as u64;
    let src_end = src_start + src.len() as u64;
    let lo = out_start.max(src_start);
    let hi = out_end.min(src_end);
    if lo >= hi {
        return;
    }
    // All four differences are below out.len() or src.len(), so they fit in usize.
    let (o, s, n) = (
        (lo - out_start) as usize,
        (lo - src_start) as usize,
        (hi - lo) as usize,
    );
    if let (Some(dst), Some(src)) = (out.get_mut(o..o + n), src.get(s..s + n)) {
        dst.copy_from_slice(src);
    }
}

// ---------------------------------------------------------------------------------------
// the trait

impl Store for SqliteStore {
    fn lookup(&self, parent: Ino, name: &str) -> Result<Option<Node>> {
        finish(self.read(|tx| lookup_in(tx, parent, name)))
    }

    fn node(&self, ino: Ino) -> Result<Option<Node>> {
        finish(self.read(|tx| get_node(tx, ino)))
    }

    fn children(&self, parent: Ino) -> Result<Vec<Node>> {
        finish(self.read(|tx| {
            require_dir(tx, parent)?;
            let mut stmt = tx.prepare_cached(select_node!(
                "WHERE n.parent = ?1 AND n.ino <> n.parent ORDER BY n.name"
            ))?;
            let rows = stmt.query_map([ino_param(parent)], node_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        }))
    }

    fn create_node(&self, new: &NewNode<'_>) -> Result<Node> {
        finish(self.write(|tx| {
            check_name(new.name)?;
            require_dir(tx, new.parent)?;
            let needs_bucket = matches!(
                new.role,
                NodeRole::Cab | NodeRole::Count | NodeRole::Status | NodeRole::HitsLog
            );
            if needs_bucket && new.bucket.is_none() {
                return Err(StoreError::Invalid(format!(
                    "a {} node needs a bucket",
                    role_str(new.role)
                )));
            }
            if lookup_in(tx, new.parent, new.name)?.is_some() {
                return Err(StoreError::Exists(new.name.to_owned()));
            }
            let bucket = new
                .bucket
                .map(|key| ensure_bucket_in(tx, key))
                .transpose()?;
            let now = now_ns();
            tx.prepare_cached(
                "INSERT INTO nodes (parent, name, role, size, mode, uid, gid, \
                 mtime_ns, ctime_ns, crtime_ns, bucket_id) \
                 VALUES (?1, ?2, ?3, 0, ?4, ?5, ?6, ?7, ?7, ?7, ?8)",
            )?
            .execute(params![
                ino_param(new.parent),
                new.name,
                role_str(new.role),
                new.mode,
                new.uid,
                new.gid,
                now,
                bucket
            ])?;
            let ino = tx.last_insert_rowid();
            let mut cab_state = None;
            if let (NodeRole::Cab, Some(bucket)) = (new.role, bucket) {
                tx.prepare_cached(
                    "INSERT INTO cab_rows (ino, bucket_id, name) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![ino, bucket, new.name])?;
                cab_state = Some(CabState::Writing);
            }
            touch_dir(tx, new.parent, now)?;
            let time = ns_to_time(now);
            Ok(Node {
                ino: u64::try_from(ino)
                    .map_err(|_| StoreError::Invalid("negative rowid".into()))?,
                parent: new.parent,
                name: new.name.to_owned(),
                role: new.role,
                size: 0,
                mode: new.mode,
                uid: new.uid,
                gid: new.gid,
                mtime: time,
                ctime: time,
                crtime: time,
                bucket,
                cab_state,
            })
        }))
    }

    fn remove_node(&self, ino: Ino) -> Result<()> {
        finish(self.write(|tx| {
            let node = require_node(tx, ino)?;
            remove_in(tx, &node)?;
            touch_dir(tx, node.parent, now_ns())
        }))
    }

    fn rename_node(&self, ino: Ino, new_parent: Ino, new_name: &str, replace: bool) -> Result<()> {
        finish(self.write(|tx| {
            if ino == ROOT_INO {
                return Err(StoreError::Invalid("the root cannot be renamed".into()));
            }
            check_name(new_name)?;
            let node = require_node(tx, ino)?;
            require_dir(tx, new_parent)?;
            if node.role == NodeRole::Dir {
                // The new parent must not be the directory itself or inside it.
                let mut cur = new_parent;
                let mut depth = 0u32;
                loop {
                    if cur == ino {
                        return Err(StoreError::Invalid(format!(
                            "cannot move directory inode {ino} into itself"
                        )));
                    }
                    if cur == ROOT_INO {
                        break;
                    }
                    depth += 1;
                    if depth > 100_000 {
                        return Err(StoreError::Invalid("directory cycle".into()));
                    }
                    cur = require_node(tx, cur)?.parent;
                }
            }
            if let Some(target) = lookup_in(tx, new_parent, new_name)? {
                if target.ino == ino {
                    return Ok(()); // renamed onto itself: nothing to do
                }
                if !replace {
                    return Err(StoreError::Exists(new_name.to_owned()));
                }
                match (node.role == NodeRole::Dir, target.role == NodeRole::Dir) {
                    (true, false) => return Err(StoreError::NotDir(target.ino)),
                    (false, true) => return Err(StoreError::IsDir(target.ino)),
                    _ => {}
                }
                remove_in(tx, &target)?;
            }
            let now = now_ns();
            tx.prepare_cached(
                "UPDATE nodes SET parent = ?2, name = ?3, ctime_ns = ?4 WHERE ino = ?1",
            )?
            .execute(params![
                ino_param(ino),
                ino_param(new_parent),
                new_name,
                now
            ])?;
            if node.role == NodeRole::Cab {
                tx.prepare_cached("UPDATE cab_rows SET name = ?2 WHERE ino = ?1")?
                    .execute(params![ino_param(ino), new_name])?;
            }
            touch_dir(tx, node.parent, now)?;
            if new_parent != node.parent {
                touch_dir(tx, new_parent, now)?;
            }
            Ok(())
        }))
    }

    fn set_attr(&self, ino: Ino, change: &AttrChange) -> Result<Node> {
        finish(self.write(|tx| {
            let changed = tx
                .prepare_cached(
                    "UPDATE nodes SET mode = coalesce(?2, mode), uid = coalesce(?3, uid), \
                     gid = coalesce(?4, gid), mtime_ns = coalesce(?5, mtime_ns), \
                     ctime_ns = ?6 WHERE ino = ?1",
                )?
                .execute(params![
                    ino_param(ino),
                    change.mode,
                    change.uid,
                    change.gid,
                    change.mtime.map(time_to_ns),
                    now_ns()
                ])?;
            if changed == 0 {
                return Err(StoreError::NotFound(ino));
            }
            require_node(tx, ino)
        }))
    }

    fn read_at(&self, ino: Ino, offset: u64, len: u32) -> Result<Vec<u8>> {
        finish(self.read(|tx| {
            let node = content_node(tx, ino)?;
            if offset >= node.size || len == 0 {
                return Ok(Vec::new());
            }
            // offset < size <= i64::MAX, so no overflow.
            let end = node.size.min(offset + u64::from(len));
            let mut out = vec![0u8; (end - offset) as usize];
            let mut stmt = tx.prepare_cached(
                "SELECT idx, data FROM chunks WHERE ino = ?1 AND idx BETWEEN ?2 AND ?3 \
                 ORDER BY idx",
            )?;
            let mut rows = stmt.query(params![
                ino_param(ino),
                size_param(offset / CHUNK, "chunk")?,
                size_param((end - 1) / CHUNK, "chunk")?
            ])?;
            while let Some(row) = rows.next()? {
                let idx = get_u64(row, 0)?;
                let data = row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
                copy_overlap(&mut out, offset, data, idx * CHUNK);
            }
            Ok(out)
        }))
    }

    fn write_alignment(&self) -> u64 {
        CHUNK
    }

    fn sync(&self) -> Result<()> {
        // synchronous=NORMAL: commits reach the -wal file by write(2) alone, and every
        // checkpoint syncs the database file before the WAL is used again. So syncing the
        // WAL makes every commit so far durable, without a checkpoint (or the database file
        // if there is no WAL: the last checkpoint synced it).
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        let wal = PathBuf::from(wal);
        let path = if wal.exists() { wal } else { self.path.clone() };
        std::fs::File::open(&path)
            .and_then(|file| file.sync_data())
            .map_err(|source| StoreError::Sync { path, source })
    }

    fn write_at(&self, ino: Ino, offset: u64, data: &[u8]) -> Result<u64> {
        finish(self.write(|tx| {
            let node = writable_node(tx, ino)?;
            if data.is_empty() {
                return Ok(node.size);
            }
            let end = offset
                .checked_add(data.len() as u64)
                .filter(|end| *end <= MAX_FILE_SIZE)
                .ok_or_else(|| {
                    StoreError::Invalid(format!(
                        "write of {} bytes at {offset} goes past the largest file size",
                        data.len()
                    ))
                })?;
            let key = ino_param(ino);
            let mut read_chunk =
                tx.prepare_cached("SELECT data FROM chunks WHERE ino = ?1 AND idx = ?2")?;
            let mut put_chunk = tx.prepare_cached(
                "INSERT INTO chunks (ino, idx, data) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (ino, idx) DO UPDATE SET data = excluded.data",
            )?;
            let mut pos = offset;
            while pos < end {
                let idx = pos / CHUNK;
                let chunk_start = idx * CHUNK;
                let in_chunk = (pos - chunk_start) as usize;
                let take = (CHUNK - (pos - chunk_start)).min(end - pos) as usize;
                let src_at = (pos - offset) as usize;
                let src = data.get(src_at..src_at + take).unwrap_or_default();
                let idx_param = size_param(idx, "chunk")?;
                // The chunk can be written as is when the write starts at its beginning and
                // covers every byte it may hold (no stored byte lies at or past the old size).
                let covers_all =
                    in_chunk == 0 && (take == CHUNK_SIZE || chunk_start + take as u64 >= node.size);
                if covers_all {
                    put_chunk.execute(params![key, idx_param, src])?;
                } else {
                    let mut buf: Vec<u8> = read_chunk
                        .query_row(params![key, idx_param], |row| row.get(0))
                        .optional()?
                        .unwrap_or_default();
                    if buf.len() < in_chunk + take {
                        buf.resize(in_chunk + take, 0);
                    }
                    if let Some(dst) = buf.get_mut(in_chunk..in_chunk + take) {
                        dst.copy_from_slice(src);
                    }
                    put_chunk.execute(params![key, idx_param, buf])?;
                }
                pos += take as u64;
            }
            let size = node.size.max(end);
            set_size(tx, ino, size_param(size, "size")?, now_ns())?;
            Ok(size)
        }))
    }

    fn truncate(&self, ino: Ino, size: u64) -> Result<()> {
        finish(self.write(|tx| {
            let node = writable_node(tx, ino)?;
            let size_sql = size_param(size, "size")?;
            if size < node.size {
                let key = ino_param(ino);
                let keep = size.div_ceil(CHUNK);
                tx.prepare_cached("DELETE FROM chunks WHERE ino = ?1 AND idx >= ?2")?
                    .execute(params![key, size_param(keep, "chunk")?])?;
                let tail = size % CHUNK;
                if tail != 0 {
                    tx.prepare_cached(
                        "UPDATE chunks SET data = substr(data, 1, ?3) \
                         WHERE ino = ?1 AND idx = ?2 AND length(data) > ?3",
                    )?
                    .execute(params![
                        key,
                        size_param(size / CHUNK, "chunk")?,
                        tail as i64
                    ])?;
                }
            }
            set_size(tx, ino, size_sql, now_ns())
        }))
    }

    fn commit_cab(&self, ino: Ino, size: u64, sha256_hex: &str) -> Result<()> {
        finish(self.write(|tx| {
            let node = require_node(tx, ino)?;
            match node.cab_state {
                None => {
                    return Err(StoreError::Invalid(format!("inode {ino} is not a cab")));
                }
                Some(CabState::Complete) => return Err(StoreError::CabComplete(ino)),
                Some(CabState::Writing) => {}
            }
            if sha256_hex.len() != 64 || !sha256_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(StoreError::Invalid(format!(
                    "{sha256_hex:?} is not a hex SHA-256"
                )));
            }
            if size != node.size {
                return Err(StoreError::Invalid(format!(
                    "cab inode {ino} holds {} bytes, not {size}",
                    node.size
                )));
            }
            tx.prepare_cached(concat!(
                "UPDATE cab_rows SET state = 'complete', size = ?2, sha256 = ?3, created_at = ",
                sql_now!(),
                " WHERE ino = ?1"
            ))?
            .execute(params![
                ino_param(ino),
                size_param(size, "size")?,
                sha256_hex.to_ascii_lowercase()
            ])?;
            Ok(())
        }))
    }

    fn ensure_bucket(&self, key: &BucketKey) -> Result<BucketId> {
        // Usually it exists: look on a reader first and take the writer only to insert.
        if let Some(id) = finish(self.read(|tx| find_bucket(tx, &key.subpath)))? {
            return Ok(id);
        }
        finish(self.write(|tx| ensure_bucket_in(tx, key)))
    }

    fn counts(&self, bucket: BucketId) -> Result<Counts> {
        finish(self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT cabs_gathered, total_hits FROM bucket_rows WHERE bucket_id = ?1",
            )?;
            stmt.query_row([bucket], |row| {
                Ok(Counts {
                    cabs_gathered: get_u64(row, 0)?,
                    total_hits: get_u64(row, 1)?,
                })
            })
            .optional()?
            .ok_or(StoreError::NoBucket(bucket))
        }))
    }

    fn add_counts(&self, bucket: BucketId, cabs: u64, hits: u64) -> Result<Counts> {
        finish(self.write(|tx| {
            let old = tx
                .prepare_cached(
                    "SELECT cabs_gathered, total_hits FROM bucket_rows WHERE bucket_id = ?1",
                )?
                .query_row([bucket], |row| Ok((get_u64(row, 0)?, get_u64(row, 1)?)))
                .optional()?
                .ok_or(StoreError::NoBucket(bucket))?;
            let overflow = || StoreError::Invalid(format!("counter overflow in bucket {bucket}"));
            let new = Counts {
                cabs_gathered: old.0.checked_add(cabs).ok_or_else(overflow)?,
                total_hits: old.1.checked_add(hits).ok_or_else(overflow)?,
            };
            tx.prepare_cached(concat!(
                "UPDATE bucket_rows SET cabs_gathered = ?2, total_hits = ?3, last_seen = ",
                sql_now!(),
                ", first_seen = coalesce(first_seen, ",
                sql_now!(),
                ") WHERE bucket_id = ?1"
            ))?
            .execute(params![
                bucket,
                i64::try_from(new.cabs_gathered).map_err(|_| overflow())?,
                i64::try_from(new.total_hits).map_err(|_| overflow())?
            ])?;
            Ok(new)
        }))
    }

    fn reset_counts(&self, bucket: BucketId) -> Result<Counts> {
        finish(self.write(|tx| {
            let old = tx
                .prepare_cached(
                    "SELECT cabs_gathered, total_hits FROM bucket_rows WHERE bucket_id = ?1",
                )?
                .query_row([bucket], |row| {
                    Ok(Counts {
                        cabs_gathered: get_u64(row, 0)?,
                        total_hits: get_u64(row, 1)?,
                    })
                })
                .optional()?
                .ok_or(StoreError::NoBucket(bucket))?;
            tx.prepare_cached(
                "UPDATE bucket_rows SET cabs_gathered = 0, total_hits = 0 WHERE bucket_id = ?1",
            )?
            .execute([bucket])?;
            Ok(old)
        }))
    }

    fn settings(&self, scope: SettingsScope) -> Result<Vec<(String, String)>> {
        finish(self.read(|tx| {
            let pair = |row: &Row<'_>| Ok((row.get(0)?, row.get(1)?));
            let rows = match scope {
                SettingsScope::Policy => tx
                    .prepare_cached(
                        "SELECT key, value FROM setting_rows WHERE bucket_id IS NULL \
                         ORDER BY position",
                    )?
                    .query_map([], pair)?
                    .collect::<rusqlite::Result<Vec<_>>>()?,
                SettingsScope::Status(bucket) => {
                    require_bucket(tx, bucket)?;
                    tx.prepare_cached(
                        "SELECT key, value FROM setting_rows WHERE bucket_id = ?1 ORDER BY position",
                    )?
                    .query_map([bucket], pair)?
                    .collect::<rusqlite::Result<Vec<_>>>()?
                }
            };
            Ok(rows)
        }))
    }

    fn replace_settings(&self, scope: SettingsScope, pairs: &[(String, String)]) -> Result<()> {
        finish(self.write(|tx| {
            let bucket = match scope {
                SettingsScope::Policy => None,
                SettingsScope::Status(bucket) => {
                    require_bucket(tx, bucket)?;
                    Some(bucket)
                }
            };
            tx.prepare_cached("DELETE FROM setting_rows WHERE bucket_id IS ?1")?
                .execute([bucket])?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO setting_rows (bucket_id, position, key, value) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for (position, (key, value)) in (0i64..).zip(pairs) {
                insert.execute(params![bucket, position, key, value])?;
            }
            Ok(())
        }))
    }

    fn log_len(&self, log: LogId) -> Result<u64> {
        finish(self.read(|tx| {
            require_log(tx, log)?;
            log_length(tx, log)
        }))
    }

    fn read_log(&self, log: LogId, offset: u64, len: u32) -> Result<Vec<u8>> {
        finish(self.read(|tx| {
            require_log(tx, log)?;
            let length = log_length(tx, log)?;
            if offset >= length || len == 0 {
                return Ok(Vec::new());
            }
            let end = length.min(offset + u64::from(len));
            let mut out = vec![0u8; (end - offset) as usize];
            // The line holding `offset` (the last one starting at or before it), then every
            // line starting before `end`: one index seek and a range scan.
            let mut stmt = tx.prepare_cached(
                "SELECT start_offset, bytes FROM log_lines \
                 WHERE log_id = ?1 AND start_offset < ?3 AND start_offset >= coalesce(( \
                     SELECT start_offset FROM log_lines WHERE log_id = ?1 AND start_offset <= ?2 \
                     ORDER BY start_offset DESC LIMIT 1), 0) \
                 ORDER BY start_offset",
            )?;
            let mut rows = stmt.query(params![
                log_key(log),
                size_param(offset, "offset")?,
                size_param(end, "offset")?
            ])?;
            while let Some(row) = rows.next()? {
                let start = get_u64(row, 0)?;
                let bytes = row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
                copy_overlap(&mut out, offset, bytes, start);
            }
            Ok(out)
        }))
    }

    fn append_log(&self, log: LogId, lines: &[LogLine]) -> Result<u64> {
        finish(self.write(|tx| {
            require_log(tx, log)?;
            let key = log_key(log);
            tx.prepare_cached(
                "INSERT INTO logs (log_id, bucket_id) VALUES (?1, nullif(?1, 0)) \
                 ON CONFLICT (log_id) DO NOTHING",
            )?
            .execute([key])?;
            let (mut length, mut count) = tx
                .prepare_cached("SELECT length, line_count FROM logs WHERE log_id = ?1")?
                .query_row([key], |row| Ok((get_u64(row, 0)?, get_u64(row, 1)?)))?;
            let mut insert = tx.prepare_cached(concat!(
                "INSERT INTO log_lines (log_id, start_offset, bytes, time_text, date_text, ",
                "machine, user, item, client_time, flagged, received_at) ",
                "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ",
                sql_now!(),
                ")"
            ))?;
            for line in lines {
                // An empty line adds nothing to the rendered log: there is no row for it.
                if line.bytes.is_empty() {
                    continue;
                }
                let f = line.fields.as_ref();
                insert.execute(params![
                    key,
                    size_param(length, "log length")?,
                    line.bytes,
                    f.map(|f| &f.time),
                    f.map(|f| &f.date),
                    f.map(|f| &f.machine),
                    f.map(|f| &f.user),
                    f.map(|f| &f.item),
                    f.and_then(client_time),
                    f.is_none()
                ])?;
                length = length
                    .checked_add(line.bytes.len() as u64)
                    .filter(|l| *l <= MAX_FILE_SIZE)
                    .ok_or_else(|| StoreError::Invalid("log too long".into()))?;
                count += 1;
            }
            tx.prepare_cached("UPDATE logs SET length = ?2, line_count = ?3 WHERE log_id = ?1")?
                .execute(params![
                    key,
                    size_param(length, "log length")?,
                    size_param(count, "line count")?
                ])?;
            Ok(length)
        }))
    }
}
