//! Read-only SQL for people (`cerfs query`, `cerfs buckets`): one statement at a time on a
//! read-only connection, safe beside a running server on the same file. On a PostgreSQL
//! store the same, through [`crate::pg::query`].
//!
//! The SQLite connection is opened read-only at the file level and `query_only`, and every
//! statement is checked with `sqlite3_stmt_readonly` before it runs, so that nothing typed
//! here can change the database (nor create another file through `ATTACH`). It is a WAL
//! reader: it sees the last committed state and never blocks the server's writer.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ToSql};

use crate::sqlite::connection::open_read_only;
use crate::sqlite::schema::VIEWS_VERSION;
use crate::{OpenError, QueryError};

/// One SQL value, as a query returns it or as a parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// A 64-bit signed integer.
    Integer(i64),
    /// A double.
    Real(f64),
    /// UTF-8 text (invalid UTF-8 in the file is replaced, lossy).
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

impl Value {
    /// The value as text: `NULL` for a null, numbers in decimal, blobs in lowercase hex.
    pub fn as_text(&self) -> String {
        match self {
            Value::Null => "NULL".to_owned(),
            Value::Integer(n) => n.to_string(),
            Value::Real(f) => f.to_string(),
            Value::Text(t) => t.clone(),
            Value::Blob(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
        }
    }
}

impl From<ValueRef<'_>> for Value {
    fn from(v: ValueRef<'_>) -> Self {
        match v {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(i) => Value::Integer(i),
            ValueRef::Real(f) => Value::Real(f),
            ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
            ValueRef::Blob(b) => Value::Blob(b.to_vec()),
        }
    }
}

impl ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Integer(i) => ValueRef::Integer(*i),
            Value::Real(f) => ValueRef::Real(*f),
            Value::Text(t) => ValueRef::Text(t.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

/// Receives a query's result: the column names once, then each row.
pub trait RowSink {
    /// The result's column names, before any row.
    fn columns(&mut self, names: &[String]) -> std::io::Result<()>;
    /// One row, with one value per column.
    fn row(&mut self, values: &[Value]) -> std::io::Result<()>;
}

/// A read-only connection to a cerfs database for SQL users.
pub struct QueryDb {
    source: Source,
    /// How long one statement may run before it is interrupted.
    time_limit: Option<Duration>,
}

enum Source {
    Sqlite { path: PathBuf, conn: Connection },
    Postgres(crate::pg::query::PgReader),
}

impl std::fmt::Debug for QueryDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("QueryDb");
        match &self.source {
            Source::Sqlite { path, .. } => d.field("path", path),
            Source::Postgres(reader) => d.field("db", &reader.shown()),
        };
        d.finish_non_exhaustive()
    }
}

impl QueryDb {
    /// Opens the existing database at `path` read-only. Refuses a missing file
    /// ([`OpenError::NoDatabase`]) and a database older than the views
    /// ([`OpenError::SchemaTooOld`]: this connection never migrates).
    pub fn open(path: &Path) -> Result<QueryDb, OpenError> {
        Ok(QueryDb {
            source: Source::Sqlite {
                path: path.to_path_buf(),
                conn: open_read_only(path, VIEWS_VERSION)?,
            },
            time_limit: None,
        })
    }

    /// Connects to the PostgreSQL store at `url` (`postgres://USER@HOST:PORT/DBNAME`) for
    /// reading; every statement runs in a READ ONLY transaction. Refuses a database that
    /// holds no cerfs store, or one older than the views.
    pub fn open_postgres(url: &str) -> Result<QueryDb, OpenError> {
        Ok(QueryDb {
            source: Source::Postgres(crate::pg::query::PgReader::connect(url)?),
            time_limit: None,
        })
    }

    /// Opens the store at `location` for reading ([`QueryDb::open`],
    /// [`QueryDb::open_postgres`]).
    pub fn open_at(location: &crate::StoreLocation) -> Result<QueryDb, OpenError> {
        match location {
            crate::StoreLocation::Sqlite(path) => QueryDb::open(path),
            crate::StoreLocation::Postgres(url) => QueryDb::open_postgres(url),
        }
    }

    /// Every row of `sql`, each value as text (`NULL` for a null, blobs in hex): for small
    /// answers that a script or a test compares.
    pub fn text_rows(&self, sql: &str, params: &[Value]) -> Result<Vec<Vec<String>>, QueryError> {
        struct Texts(Vec<Vec<String>>);
        impl RowSink for Texts {
            fn columns(&mut self, _: &[String]) -> std::io::Result<()> {
                Ok(())
            }
            fn row(&mut self, values: &[Value]) -> std::io::Result<()> {
                self.0.push(values.iter().map(Value::as_text).collect());
                Ok(())
            }
        }
        let mut out = Texts(Vec::new());
        self.query(sql, params, &mut out)?;
        Ok(out.0)
    }

    /// Interrupts a statement that runs longer than `limit` ([`QueryError::Timeout`]):
    /// a recursive CTE without end, or a join that would take hours, cannot hold the
    /// database's readers (nor the terminal) forever. `None`: no limit.
    pub fn set_time_limit(&mut self, limit: Option<Duration>) {
        self.time_limit = limit;
    }

    /// The path the database was opened with; `None` for a PostgreSQL store.
    pub fn path(&self) -> Option<&Path> {
        match &self.source {
            Source::Sqlite { path, .. } => Some(path),
            Source::Postgres(_) => None,
        }
    }

    /// Runs one read-only SQL statement with positional parameters (`?1`, `?2`, ...) and
    /// hands its columns and rows to `sink`; returns the number of rows.
    ///
    /// Refuses ([`QueryError::WriteRefused`]) a statement that could change the database
    /// (INSERT, UPDATE, DELETE, CREATE, DROP, a writing PRAGMA, ...) before running it, and
    /// ([`QueryError::NotAQuery`]) an empty string, more than one statement, or one that
    /// returns no rows. A failing sink (a closed pipe) stops the query with
    /// [`QueryError::Output`].
    pub fn query(
        &self,
        sql: &str,
        params: &[Value],
        sink: &mut dyn RowSink,
    ) -> Result<u64, QueryError> {
        let conn = match &self.source {
            Source::Sqlite { conn, .. } => conn,
            Source::Postgres(reader) => return reader.query(sql, params, sink, self.time_limit),
        };
        let mut stmt = match conn.prepare(sql) {
            Ok(stmt) => stmt,
            Err(rusqlite::Error::MultipleStatement) => {
                return Err(QueryError::NotAQuery(
                    "more than one SQL statement: give one statement at a time".into(),
                ))
            }
            Err(e) => return Err(e.into()),
        };
        if !stmt.readonly() {
            return Err(refusal(sql));
        }
        if stmt.column_count() == 0 {
            tracing::warn!("refused a query that returns no columns");
            return Err(QueryError::NotAQuery(
                "no statement that returns rows: give a SELECT (or a PRAGMA that reads)".into(),
            ));
        }
        let names: Vec<String> = stmt.column_names().map(str::to_owned).collect();
        let _watchdog = self.time_limit.map(|limit| Watchdog::arm(conn, limit));
        sink.columns(&names).map_err(QueryError::Output)?;
        let interrupted = |e: rusqlite::Error| match (e.sqlite_error_code(), self.time_limit) {
            (Some(rusqlite::ErrorCode::OperationInterrupted), Some(limit)) => {
                tracing::warn!(?limit, "interrupted a query that ran past its time limit");
                QueryError::Timeout(limit)
            }
            _ => QueryError::Sqlite(e),
        };
        let mut rows = stmt
            .query(rusqlite::params_from_iter(params.iter()))
            .map_err(interrupted)?;
        let mut count = 0u64;
        let mut values = Vec::with_capacity(names.len());
        while let Some(row) = rows.next().map_err(interrupted)? {
            values.clear();
            for i in 0..names.len() {
                values.push(Value::from(row.get_ref(i)?));
            }
            sink.row(&values).map_err(QueryError::Output)?;
            count += 1;
        }
        Ok(count)
    }
}

/// Interrupts the connection's statement when its time is up, unless dropped first (a
/// thread waiting on a channel that the drop closes).
struct Watchdog {
    done: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    fn arm(conn: &Connection, limit: Duration) -> Watchdog {
        let interrupt = conn.get_interrupt_handle();
        let (done, finished) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("cerfs-query-timeout".into())
            .spawn(move || {
                if let Err(mpsc::RecvTimeoutError::Timeout) = finished.recv_timeout(limit) {
                    interrupt.interrupt();
                }
            })
            .ok();
        Watchdog {
            done: Some(done),
            thread,
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.done.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Why a statement is refused, naming the statement's first word.
pub(crate) fn refusal(sql: &str) -> QueryError {
    let verb: String = sql
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .chars()
        .take(20)
        .collect();
    tracing::warn!(verb = %verb.to_ascii_uppercase(), "refused a statement that would write");
    QueryError::WriteRefused(format!(
        "`{}` would change the database, and queries only read it: change settings with \
         `cerfs policy set` / `cerfs status set`, counters with `cerfs counts reset`",
        verb.to_ascii_uppercase()
    ))
}
