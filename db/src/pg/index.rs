//! The cab index on a PostgreSQL store (schema version 6): the indexer's connection of
//! its own, which also holds the indexer's session advisory lock so that one head indexes
//! at a time (the others wait; when the indexing head goes, its session ends, the lock is
//! free and the next head to poll takes the queue over), and where a cab's bytes are for
//! [`crate::CabReader`] (256 KiB chunks).

use std::collections::HashMap;
use std::io;

use postgres::NoTls;

use super::pool::{Conn, Tx};
use super::rows::get_u64;
use super::schema::{require, PG_SCHEMA_VERSION};
use super::{connect_error, lock_key, parse_config, shown_url, PG_CHUNK};
use crate::index_rows::{no_bucket, CabIndex, CabRef, IndexStatus, Piece, ReindexFilter};
use crate::store::Result;
use crate::{OpenError, StoreError};

/// A connection to the store of `url`, whose schema is this build's.
fn connect(url: &str) -> std::result::Result<Conn, OpenError> {
    let config = parse_config(url)?;
    let shown = shown_url(url);
    let mut client = super::lock_holder(&config)
        .connect(NoTls)
        .map_err(|e| connect_error(&shown, &e))?;
    require(&mut client, &shown, PG_SCHEMA_VERSION)?;
    Ok(Conn {
        client: client.into(),
        stmts: HashMap::new(),
    })
}

/// The indexer's connection; see the module documentation.
pub(crate) struct PgIndex {
    conn: Conn,
    /// Whether this connection's session holds the indexer's lock.
    leading: bool,
}

impl PgIndex {
    pub(crate) fn open(url: &str) -> std::result::Result<PgIndex, OpenError> {
        Ok(PgIndex {
            conn: connect(url)?,
            leading: false,
        })
    }

    pub(crate) fn lead(&mut self) -> Result<bool> {
        if self.conn.client.is_closed() {
            // The session, and the lock with it, are gone: open again.
            return Err(StoreError::Invalid(
                "the indexer's connection to PostgreSQL was closed".to_owned(),
            ));
        }
        if !self.leading {
            self.leading = self
                .conn
                .client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&lock_key::INDEXER])?
                .get(0);
            if self.leading {
                tracing::info!("this head's indexer now indexes the store's cabs");
            }
        }
        Ok(self.leading)
    }

    fn tx<T>(&mut self, f: impl FnOnce(&mut Tx<'_>) -> Result<T>) -> Result<T> {
        let Conn { client, stmts } = &mut self.conn;
        let mut tx = Tx::new(client.transaction()?, stmts);
        let v = f(&mut tx)?;
        tx.commit()?;
        Ok(v)
    }

    pub(crate) fn pending(&mut self, limit: usize) -> Result<Vec<CabRef>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.tx(|tx| {
            tx.query(
                "SELECT c.ino, b.subpath, c.name, c.size FROM cab_rows c \
                 JOIN bucket_rows b ON b.bucket_id = c.bucket_id \
                 WHERE c.state = 'complete' AND c.index_status IS NULL AND c.removal IS NULL \
                 ORDER BY c.ino LIMIT $1",
                &[&limit],
            )?
            .iter()
            .map(cab_from_row)
            .collect()
        })
    }

    pub(crate) fn server_setting(&mut self, key: &str) -> Result<Option<String>> {
        self.tx(|tx| {
            Ok(tx
                .query_opt(
                    "SELECT value FROM server_setting_rows WHERE key = $1",
                    &[&key],
                )?
                .map(|row| row.get(0)))
        })
    }

    pub(crate) fn cab(&mut self, cab_id: i64) -> Result<Option<CabRef>> {
        self.tx(|tx| cab_ref(tx, cab_id))
    }

    pub(crate) fn store_index(
        &mut self,
        cab_id: i64,
        index: &CabIndex,
    ) -> Result<Option<IndexStatus>> {
        let status = index.status();
        let problem = index.problem();
        self.tx(|tx| {
            if !is_complete(tx, cab_id)? {
                return Ok(None);
            }
            clear_rows(tx, cab_id)?;
            insert_rows(tx, cab_id, index)?;
            set_status(tx, cab_id, status, problem.as_deref())?;
            Ok(Some(status))
        })
    }

    pub(crate) fn store_failure(&mut self, cab_id: i64, reason: &str) -> Result<bool> {
        self.tx(|tx| {
            if !is_complete(tx, cab_id)? {
                return Ok(false);
            }
            clear_rows(tx, cab_id)?;
            set_status(tx, cab_id, IndexStatus::Failed, Some(reason))?;
            Ok(true)
        })
    }

    pub(crate) fn request_reindex(&mut self, filter: &ReindexFilter) -> Result<usize> {
        self.tx(|tx| {
            if let Some(sub) = &filter.bucket {
                let exists: bool = tx
                    .query_one(
                        "SELECT EXISTS (SELECT 1 FROM bucket_rows WHERE subpath = $1)",
                        &[sub],
                    )?
                    .get(0);
                if !exists {
                    return Err(no_bucket(sub));
                }
            }
            let n = tx.execute(
                "UPDATE cab_rows c SET index_status = NULL \
                 WHERE c.state = 'complete' AND c.index_status IS NOT NULL \
                 AND c.removal IS NULL \
                 AND ($1::text IS NULL OR c.bucket_id = \
                      (SELECT bucket_id FROM bucket_rows WHERE subpath = $1)) \
                 AND (NOT $2 OR c.index_status IN ('failed', 'partial')) \
                 AND (NOT $3 OR EXISTS (SELECT 1 FROM minidump_rows m WHERE m.cab_id = c.ino)) \
                 AND ($4::text IS NULL OR EXISTS (SELECT 1 FROM stack_rows s \
                                                  WHERE s.cab_id = c.ino AND s.signature = $4))",
                &[
                    &filter.bucket,
                    &filter.failed_only,
                    &filter.stacks,
                    &filter.signature,
                ],
            )?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
    }
}

fn cab_from_row(row: &postgres::Row) -> Result<CabRef> {
    Ok(CabRef {
        cab_id: row.try_get(0)?,
        subpath: row.try_get(1)?,
        name: row.try_get(2)?,
        size: get_u64(row, 3)?,
    })
}

fn cab_ref(tx: &mut Tx<'_>, cab_id: i64) -> Result<Option<CabRef>> {
    tx.query_opt(
        "SELECT c.ino, b.subpath, c.name, c.size FROM cab_rows c \
         JOIN bucket_rows b ON b.bucket_id = c.bucket_id \
         WHERE c.ino = $1 AND c.state = 'complete' AND c.removal IS NULL",
        &[&cab_id],
    )?
    .as_ref()
    .map(cab_from_row)
    .transpose()
}

/// Whether `cab_id` is a complete cab still stored; its row is locked against a removal
/// until the transaction ends, so that no index rows land on a cab being removed.
fn is_complete(tx: &mut Tx<'_>, cab_id: i64) -> Result<bool> {
    Ok(tx
        .query_opt(
            "SELECT 1 FROM cab_rows WHERE ino = $1 AND state = 'complete' AND removal IS NULL \
             FOR SHARE",
            &[&cab_id],
        )?
        .is_some())
}

fn clear_rows(tx: &mut Tx<'_>, cab_id: i64) -> Result<()> {
    // Frames and missing symbols go with their stacks (ON DELETE CASCADE).
    tx.execute("DELETE FROM stack_rows WHERE cab_id = $1", &[&cab_id])?;
    tx.execute("DELETE FROM cab_member_rows WHERE cab_id = $1", &[&cab_id])?;
    tx.execute("DELETE FROM minidump_rows WHERE cab_id = $1", &[&cab_id])?;
    tx.execute("DELETE FROM cab_text_rows WHERE cab_id = $1", &[&cab_id])?;
    tx.execute("DELETE FROM cab_fact_rows WHERE cab_id = $1", &[&cab_id])?;
    Ok(())
}

fn big(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn insert_rows(tx: &mut Tx<'_>, cab_id: i64, index: &CabIndex) -> Result<()> {
    for (position, m) in (0i64..).zip(&index.members) {
        tx.execute(
            "INSERT INTO cab_member_rows (cab_id, position, name, size, compression, folder, \
             modified, kind, error) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &cab_id,
                &position,
                &m.name,
                &big(m.size),
                &m.compression,
                &i64::from(m.folder),
                &m.modified,
                &m.kind,
                &m.error,
            ],
        )?;
    }
    for d in &index.minidumps {
        tx.execute(
            "INSERT INTO minidump_rows (cab_id, member, dump_time, exception_code, \
             crash_reason, crash_address, crash_thread, crash_module, crash_module_version, \
             crash_offset, os, os_version, cpu, process_name, thread_count, module_count, \
             error) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
             $15, $16, $17) \
             ON CONFLICT (cab_id, member) DO NOTHING",
            &[
                &cab_id,
                &d.member,
                &d.dump_time,
                &d.exception_code,
                &d.crash_reason,
                &d.crash_address,
                &d.crash_thread.map(i64::from),
                &d.crash_module,
                &d.crash_module_version,
                &d.crash_offset,
                &d.os,
                &d.os_version,
                &d.cpu,
                &d.process_name,
                &d.thread_count.map(i64::from),
                &d.module_count.map(i64::from),
                &d.error,
            ],
        )?;
    }
    for t in &index.texts {
        tx.execute(
            "INSERT INTO cab_text_rows (cab_id, member, text, truncated) \
             VALUES ($1, $2, $3, $4)",
            &[&cab_id, &t.member, &t.text, &i32::from(t.truncated)],
        )?;
    }
    for f in &index.facts {
        tx.execute(
            "INSERT INTO cab_fact_rows (cab_id, member, key, value) VALUES ($1, $2, $3, $4)",
            &[&cab_id, &f.member, &f.key, &f.value],
        )?;
    }
    for s in &index.stacks {
        tx.execute(
            "INSERT INTO stack_rows (cab_id, member, crash_reason, crash_address, \
             crashing_thread, signature, error) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (cab_id, member) DO NOTHING",
            &[
                &cab_id,
                &s.member,
                &s.crash_reason,
                &s.crash_address.map(big),
                &s.crashing_thread.map(i64::from),
                &s.signature,
                &s.error,
            ],
        )?;
        for f in &s.frames {
            tx.execute(
                "INSERT INTO frame_rows (cab_id, member, thread, crashed, frame, module, \
                 module_offset, function, function_offset, file, line, trust) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                 ON CONFLICT (cab_id, member, thread, frame) DO NOTHING",
                &[
                    &cab_id,
                    &s.member,
                    &i64::from(f.thread),
                    &i32::from(f.crashed),
                    &i64::from(f.frame),
                    &f.module,
                    &f.module_offset.map(big),
                    &f.function,
                    &f.function_offset.map(big),
                    &f.file,
                    &f.line.map(i64::from),
                    &f.trust,
                ],
            )?;
        }
        for m in &s.missing_symbols {
            tx.execute(
                "INSERT INTO missing_symbol_rows (cab_id, member, module, debug_file, debug_id) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                &[&cab_id, &s.member, &m.module, &m.debug_file, &m.debug_id],
            )?;
        }
    }
    for f in &index.symbol_fetches {
        tx.execute(
            "INSERT INTO symbol_fetch_rows (url, outcome, detail) VALUES ($1, $2, $3) \
             ON CONFLICT (url) DO UPDATE SET outcome = excluded.outcome, \
             detail = excluded.detail, at = now(), times = symbol_fetch_rows.times + 1",
            &[&f.url, &f.outcome, &f.detail],
        )?;
    }
    Ok(())
}

fn set_status(
    tx: &mut Tx<'_>,
    cab_id: i64,
    status: IndexStatus,
    error: Option<&str>,
) -> Result<()> {
    tx.execute(
        "UPDATE cab_rows SET index_status = $2, index_error = $3, indexed_at = now() \
         WHERE ino = $1",
        &[&cab_id, &status.as_str(), &error],
    )?;
    Ok(())
}

/// Where a complete cab's bytes are: a connection of the reader's own.
pub(crate) struct PgCabSource {
    conn: Conn,
}

impl PgCabSource {
    pub(crate) fn open(url: &str) -> Result<PgCabSource> {
        let conn = connect(url).map_err(|e| StoreError::Invalid(e.to_string()))?;
        Ok(PgCabSource { conn })
    }

    pub(crate) fn select(&mut self, cab_id: i64) -> Result<CabRef> {
        let Conn { client, stmts } = &mut self.conn;
        let mut tx = Tx::new(client.transaction()?, stmts);
        let cab = cab_ref(&mut tx, cab_id)?;
        tx.commit()?;
        cab.ok_or_else(|| StoreError::NotFound(u64::try_from(cab_id).unwrap_or(0)))
    }

    pub(crate) fn locate(&self, pos: u64) -> (u64, u64, Piece) {
        let idx = pos / PG_CHUNK;
        (idx * PG_CHUNK, PG_CHUNK, Piece::Chunk(idx))
    }

    pub(crate) fn fetch(&mut self, cab_id: i64, piece: Piece) -> io::Result<Option<Vec<u8>>> {
        let Piece::Chunk(idx) = piece else {
            return Err(io::Error::other(
                "a PostgreSQL store has no cab database to read",
            ));
        };
        let idx = big(idx);
        let pg = |e: postgres::Error| io::Error::other(super::describe(&e));
        const SQL: &str = "SELECT data FROM chunks WHERE ino = $1 AND idx = $2";
        let Conn { client, stmts } = &mut self.conn;
        let stmt = match stmts.get(SQL) {
            Some(stmt) => stmt.clone(),
            None => {
                let stmt = client.prepare(SQL).map_err(pg)?;
                stmts.insert(SQL, stmt.clone());
                stmt
            }
        };
        let row = client.query_opt(&stmt, &[&cab_id, &idx]).map_err(pg)?;
        Ok(row.map(|row| row.get(0)))
    }
}
