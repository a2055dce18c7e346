//! Opening connections: the writers (the store's and the indexer's), the server's pooled
//! readers, and the one read-only path for everyone else (SQL users, cab readers), each
//! with the same per-connection settings.

use std::path::Path;
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};

use super::schema;
use crate::OpenError;

/// How long a connection waits for a lock held by another connection (another process, e.g.
/// an admin's `sqlite3` shell, or the WAL checkpointer) before failing with SQLITE_BUSY.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Prepared statements cached per connection (the store uses a few dozen distinct ones).
const STATEMENT_CACHE: usize = 64;

/// A connection that may write: common pragmas, WAL, `synchronous=NORMAL`; the schema
/// brought up to date when `migrate`, else required to be up to date. Used by the store's
/// writer and by the cab indexer's own writer.
pub(crate) fn open_writer(
    path: &Path,
    flags: OpenFlags,
    migrate: bool,
) -> Result<Connection, OpenError> {
    let mut conn = Connection::open_with_flags(path, flags)?;
    configure_common(&conn)?;
    if migrate {
        let pages: i64 = conn.pragma_query_value(None, "page_count", |row| row.get(0))?;
        if pages == 0 {
            // A new file: freed pages can then be given back to the filesystem in small
            // steps while serving (`cerfs compact`). Only before anything is written,
            // WAL mode's header included.
            conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
        }
    }
    // WAL: readers work on a snapshot and never block the single writer (nor it them).
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(OpenError::Unusable(format!(
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

/// A reader of the server's pool: read-write at the file level (a WAL reader may need to
/// create the -shm file), but `query_only`, so that no statement through it can change
/// the database.
pub(crate) fn open_pooled_reader(path: &Path) -> Result<Connection, OpenError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    configure_common(&conn)?;
    conn.pragma_update(None, "query_only", true)?;
    Ok(conn)
}

/// The read-only connection of everyone beside the server (`cerfs query`, the indexer's
/// cab reader): the file must exist, is opened read-only and `query_only`, and its schema
/// must be at least `needed` (such a connection never migrates).
pub(crate) fn open_read_only(path: &Path, needed: i64) -> Result<Connection, OpenError> {
    if !path.is_file() {
        return Err(OpenError::NoDatabase(path.to_path_buf()));
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    configure_common(&conn)?;
    conn.pragma_update(None, "query_only", true)?;
    let found = schema::version(&conn)?;
    if found < needed {
        return Err(OpenError::SchemaTooOld { found, needed });
    }
    Ok(conn)
}

/// Settings shared by every connection (per-connection pragmas).
pub(crate) fn configure_common(conn: &Connection) -> Result<(), OpenError> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // Plans never depend on bound values: without this, a statement whose plan looked at a
    // parameter (a partial index's WHERE, a LIKE prefix) is prepared again at every step
    // with new values, which made a count.txt lookup cost 200 µs of parsing.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(())
}
