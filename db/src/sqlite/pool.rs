//! A small pool of read-only connections, opened lazily and handed back on drop.

use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use rusqlite::Connection;

use super::file_identity::FileIdentity;
use crate::store::Result;

/// How many idle reader connections are kept; more are opened under load and closed when
/// handed back to a full pool.
pub(crate) const MAX_IDLE_READERS: usize = 8;

/// Locks a mutex, recovering the value if a panicking thread poisoned it: a connection stays
/// usable (an unfinished transaction is rolled back when its guard drops).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Reader connections to one database file.
pub(crate) struct ReaderPool {
    path: PathBuf,
    /// New connections are opened only on the file the store opened.
    identity: FileIdentity,
    idle: Mutex<Vec<Connection>>,
}

impl ReaderPool {
    /// A pool for the database at `path` (which must exist and be in WAL mode).
    pub(crate) fn new(path: PathBuf, identity: FileIdentity) -> Self {
        ReaderPool {
            path,
            identity,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// An idle connection, or a new one.
    pub(crate) fn get(&self) -> Result<Reader<'_>> {
        let idle = lock(&self.idle).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => {
                self.identity.check(&self.path)?;
                super::connection::open_pooled_reader(&self.path)?
            }
        };
        Ok(Reader {
            pool: self,
            conn: Some(conn),
        })
    }

    fn put(&self, conn: Connection) {
        let mut idle = lock(&self.idle);
        // A connection left inside a transaction (cannot happen through Reader's users, who
        // use scoped transactions) is not worth keeping.
        if idle.len() < MAX_IDLE_READERS && conn.is_autocommit() {
            idle.push(conn);
        }
    }
}

/// A reader connection borrowed from the pool; returned to it on drop.
pub(crate) struct Reader<'a> {
    pool: &'a ReaderPool,
    conn: Option<Connection>,
}

impl Deref for Reader<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        // `conn` is only taken in `drop`.
        self.conn.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl DerefMut for Reader<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        self.conn.as_mut().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.put(conn);
        }
    }
}
