//! Connections of the PostgreSQL store: a small pool (one connection per concurrent
//! request, kept for the next), each with the statements it has prepared, and the
//! transaction type the method families run their statements through.

use std::collections::HashMap;
use std::sync::Mutex;

use postgres::types::ToSql;
use postgres::{Client, NoTls, Row, Statement, Transaction};

use crate::Result;

/// Idle connections kept for later requests; more may be open while busy.
const MAX_IDLE: usize = 16;

/// A client that is closed on a thread of its own when dropped. The sync client's drop
/// runs a small runtime to say goodbye to the server, which panics on a thread that drives
/// an async runtime: where the HTTP server drops the last handle of the store.
pub(crate) struct OwnedClient(Option<Client>);

impl From<Client> for OwnedClient {
    fn from(client: Client) -> Self {
        OwnedClient(Some(client))
    }
}

impl std::ops::Deref for OwnedClient {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.0.as_ref().expect("a client is present until dropped")
    }
}

impl std::ops::DerefMut for OwnedClient {
    fn deref_mut(&mut self) -> &mut Client {
        self.0.as_mut().expect("a client is present until dropped")
    }
}

impl Drop for OwnedClient {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            // A scoped thread runs in no runtime; joined before the drop returns.
            std::thread::scope(|s| {
                s.spawn(move || drop(client));
            });
        }
    }
}

/// One connection and its prepared statements (keyed by their text).
pub(crate) struct Conn {
    pub(crate) client: OwnedClient,
    pub(crate) stmts: HashMap<&'static str, Statement>,
}

pub(crate) struct Pool {
    config: postgres::Config,
    idle: Mutex<Vec<Conn>>,
}

impl Pool {
    pub(crate) fn new(config: postgres::Config) -> Pool {
        Pool {
            config,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// An idle connection, or a new one.
    pub(crate) fn get(&self) -> Result<Pooled<'_>> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        let conn = match idle {
            Some(conn) if !conn.client.is_closed() => conn,
            _ => Conn {
                // TLS: the production layout keeps PostgreSQL on a private network
                // (docs/scale-out.md); connections are plain.
                client: self.config.connect(NoTls)?.into(),
                stmts: HashMap::new(),
            },
        };
        Ok(Pooled {
            pool: self,
            conn: Some(conn),
        })
    }
}

/// A connection lent by the pool; back to it when dropped (unless it broke).
pub(crate) struct Pooled<'a> {
    pool: &'a Pool,
    conn: Option<Conn>,
}

impl std::ops::Deref for Pooled<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn
            .as_ref()
            .expect("a pooled connection is present until dropped")
    }
}

impl std::ops::DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Conn {
        self.conn
            .as_mut()
            .expect("a pooled connection is present until dropped")
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            if conn.client.is_closed() {
                return;
            }
            let mut idle = self
                .pool
                .idle
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if idle.len() < MAX_IDLE {
                idle.push(conn);
            }
        }
    }
}

/// A transaction whose statements are prepared once per connection.
pub(crate) struct Tx<'a> {
    inner: Transaction<'a>,
    stmts: &'a mut HashMap<&'static str, Statement>,
}

pub(crate) type Params<'p> = [&'p (dyn ToSql + Sync)];

impl<'a> Tx<'a> {
    pub(crate) fn new(
        inner: Transaction<'a>,
        stmts: &'a mut HashMap<&'static str, Statement>,
    ) -> Tx<'a> {
        Tx { inner, stmts }
    }

    fn stmt(&mut self, sql: &'static str) -> Result<Statement> {
        if let Some(s) = self.stmts.get(sql) {
            return Ok(s.clone());
        }
        let s = self.inner.prepare(sql)?;
        self.stmts.insert(sql, s.clone());
        Ok(s)
    }

    pub(crate) fn query(&mut self, sql: &'static str, params: &Params<'_>) -> Result<Vec<Row>> {
        let s = self.stmt(sql)?;
        Ok(self.inner.query(&s, params)?)
    }

    pub(crate) fn query_opt(
        &mut self,
        sql: &'static str,
        params: &Params<'_>,
    ) -> Result<Option<Row>> {
        let s = self.stmt(sql)?;
        Ok(self.inner.query_opt(&s, params)?)
    }

    pub(crate) fn query_one(&mut self, sql: &'static str, params: &Params<'_>) -> Result<Row> {
        let s = self.stmt(sql)?;
        Ok(self.inner.query_one(&s, params)?)
    }

    pub(crate) fn execute(&mut self, sql: &'static str, params: &Params<'_>) -> Result<u64> {
        let s = self.stmt(sql)?;
        Ok(self.inner.execute(&s, params)?)
    }

    /// Takes a transaction-scoped advisory lock (released at commit or rollback).
    pub(crate) fn lock(&mut self, key: i64) -> Result<()> {
        self.execute("SELECT pg_advisory_xact_lock($1)", &[&key])?;
        Ok(())
    }

    pub(crate) fn commit(self) -> Result<()> {
        Ok(self.inner.commit()?)
    }
}
