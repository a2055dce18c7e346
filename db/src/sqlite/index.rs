//! The cab index on a SQLite store: the indexer's own writer connection to the database
//! file (never the file system's store; its writes are short transactions of their own),
//! and where a cab's bytes are for [`crate::CabReader`] (64 KiB chunks, then 1 MiB chunks
//! of the cab database from `bytes_from`).

use std::io;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use super::cab_db::{cab_db_path, CAB_CHUNK};
use super::connection::{open_read_only, open_writer};
use super::rows::get_u64;
use super::schema::VIEWS_VERSION;
use super::{finish, in_transaction};
use crate::index_rows::{CabIndex, CabRef, IndexStatus, Piece, ReindexFilter};
use crate::store::Result;
use crate::{OpenError, StoreError, CHUNK_SIZE};

/// The current time as stored in every `*_at` column.
const SQL_NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

/// The indexer's writer connection to one database file.
pub(crate) struct SqliteIndex {
    path: PathBuf,
    writer: Connection,
}

impl SqliteIndex {
    pub(crate) fn open(path: &Path) -> std::result::Result<SqliteIndex, OpenError> {
        if !path.is_file() {
            return Err(OpenError::NoDatabase(path.to_path_buf()));
        }
        let writer = open_writer(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            false,
        )?;
        Ok(SqliteIndex {
            path: path.to_path_buf(),
            writer,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn pending(&self, limit: usize) -> Result<Vec<CabRef>> {
        finish((|| {
            let mut stmt = self.writer.prepare_cached(
                "SELECT c.ino, b.subpath, c.name, c.size FROM cab_rows c \
                 JOIN bucket_rows b ON b.bucket_id = c.bucket_id \
                 WHERE c.state = 'complete' AND c.index_status IS NULL AND c.removal IS NULL \
                 ORDER BY c.ino LIMIT ?1",
            )?;
            let rows = stmt.query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |row| {
                Ok(CabRef {
                    cab_id: row.get(0)?,
                    subpath: row.get(1)?,
                    name: row.get(2)?,
                    size: get_u64(row, 3)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })())
    }

    pub(crate) fn server_setting(&self, key: &str) -> Result<Option<String>> {
        finish(super::retention_setting(&self.writer, key))
    }

    pub(crate) fn cab(&self, cab_id: i64) -> Result<Option<CabRef>> {
        finish(cab_ref(&self.writer, cab_id))
    }

    pub(crate) fn store_index(&self, cab_id: i64, index: &CabIndex) -> Result<Option<IndexStatus>> {
        let status = index.status();
        let problem = index.problem();
        finish(self.write(|tx| {
            if !is_complete(tx, cab_id)? {
                return Ok(None);
            }
            clear_rows(tx, cab_id)?;
            let mut member = tx.prepare_cached(
                "INSERT INTO cab_member_rows (cab_id, position, name, size, compression, \
                 folder, modified, kind, error) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            for (position, m) in (0i64..).zip(&index.members) {
                member.execute(params![
                    cab_id,
                    position,
                    m.name,
                    i64::try_from(m.size).unwrap_or(i64::MAX),
                    m.compression,
                    m.folder,
                    m.modified,
                    m.kind,
                    m.error
                ])?;
            }
            let mut dump = tx.prepare_cached(
                "INSERT OR REPLACE INTO minidump_rows (cab_id, member, dump_time, \
                 exception_code, crash_reason, crash_address, crash_thread, crash_module, \
                 crash_module_version, crash_offset, os, os_version, cpu, process_name, \
                 thread_count, module_count, error) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
            )?;
            for d in &index.minidumps {
                dump.execute(params![
                    cab_id,
                    d.member,
                    d.dump_time,
                    d.exception_code,
                    d.crash_reason,
                    d.crash_address,
                    d.crash_thread,
                    d.crash_module,
                    d.crash_module_version,
                    d.crash_offset,
                    d.os,
                    d.os_version,
                    d.cpu,
                    d.process_name,
                    d.thread_count,
                    d.module_count,
                    d.error
                ])?;
            }
            let mut text = tx.prepare_cached(
                "INSERT INTO cab_text_rows (cab_id, member, text, truncated) \
                 VALUES (?1, ?2, ?3, ?4)",
            )?;
            for t in &index.texts {
                text.execute(params![cab_id, t.member, t.text, t.truncated])?;
            }
            let mut fact = tx.prepare_cached(
                "INSERT INTO cab_fact_rows (cab_id, member, key, value) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for f in &index.facts {
                fact.execute(params![cab_id, f.member, f.key, f.value])?;
            }
            crate::stack_rows::insert(tx, cab_id, &index.stacks)?;
            crate::stack_rows::record_fetches(tx, &index.symbol_fetches)?;
            set_status(tx, cab_id, status, problem.as_deref())?;
            Ok(Some(status))
        }))
    }

    pub(crate) fn store_failure(&self, cab_id: i64, reason: &str) -> Result<bool> {
        finish(self.write(|tx| {
            if !is_complete(tx, cab_id)? {
                return Ok(false);
            }
            clear_rows(tx, cab_id)?;
            set_status(tx, cab_id, IndexStatus::Failed, Some(reason))?;
            Ok(true)
        }))
    }

    pub(crate) fn request_reindex(&self, filter: &ReindexFilter) -> Result<usize> {
        finish(self.write(|tx| {
            if let Some(sub) = &filter.bucket {
                let exists: bool = tx
                    .prepare_cached("SELECT EXISTS (SELECT 1 FROM bucket_rows WHERE subpath = ?1)")?
                    .query_row([sub], |row| row.get(0))?;
                if !exists {
                    return Err(crate::index_rows::no_bucket(sub));
                }
            }
            let n = tx
                .prepare_cached(
                    "UPDATE cab_rows SET index_status = NULL \
                     WHERE state = 'complete' AND index_status IS NOT NULL \
                     AND (?1 IS NULL OR bucket_id = \
                          (SELECT bucket_id FROM bucket_rows WHERE subpath = ?1)) \
                     AND (?2 = 0 OR index_status IN ('failed', 'partial')) \
                     AND (?3 = 0 OR EXISTS (SELECT 1 FROM minidump_rows m WHERE m.cab_id = ino)) \
                     AND (?4 IS NULL OR EXISTS (SELECT 1 FROM stack_rows s \
                                                WHERE s.cab_id = ino AND s.signature = ?4)) \
                     AND removal IS NULL",
                )?
                .execute(params![
                    filter.bucket,
                    filter.failed_only,
                    filter.stacks,
                    filter.signature
                ])?;
            Ok(n)
        }))
    }

    fn write<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        in_transaction(&self.writer, "BEGIN IMMEDIATE", f)
    }
}

fn cab_ref(conn: &Connection, cab_id: i64) -> Result<Option<CabRef>> {
    let mut stmt = conn.prepare_cached(
        "SELECT c.ino, b.subpath, c.name, c.size FROM cab_rows c \
         JOIN bucket_rows b ON b.bucket_id = c.bucket_id \
         WHERE c.ino = ?1 AND c.state = 'complete'",
    )?;
    Ok(stmt
        .query_row([cab_id], |row| {
            Ok(CabRef {
                cab_id: row.get(0)?,
                subpath: row.get(1)?,
                name: row.get(2)?,
                size: get_u64(row, 3)?,
            })
        })
        .optional()?)
}

fn is_complete(conn: &Connection, cab_id: i64) -> Result<bool> {
    let mut stmt = conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM cab_rows WHERE ino = ?1 AND state = 'complete')",
    )?;
    Ok(stmt.query_row([cab_id], |row| row.get(0))?)
}

fn clear_rows(conn: &Connection, cab_id: i64) -> Result<()> {
    crate::stack_rows::clear(conn, cab_id)?;
    for table in [
        "cab_member_rows",
        "minidump_rows",
        "cab_text_rows",
        "cab_fact_rows",
    ] {
        conn.prepare_cached(&format!("DELETE FROM {table} WHERE cab_id = ?1"))?
            .execute([cab_id])?;
    }
    Ok(())
}

fn set_status(
    conn: &Connection,
    cab_id: i64,
    status: IndexStatus,
    error: Option<&str>,
) -> Result<()> {
    conn.prepare_cached(&format!(
        "UPDATE cab_rows SET index_status = ?2, index_error = ?3, indexed_at = {SQL_NOW} \
         WHERE ino = ?1"
    ))?
    .execute(params![cab_id, status.as_str(), error])?;
    Ok(())
}

/// Where a complete cab's bytes are: a read-only connection to the database file, and
/// one to its cab database when the cab continues there.
pub(crate) struct SqliteCabSource {
    conn: Connection,
    /// Where the cab's bytes continue in the cab database.
    split: Option<u64>,
    cab_db: Option<Connection>,
    path: PathBuf,
}

impl SqliteCabSource {
    pub(crate) fn open(path: &Path) -> Result<SqliteCabSource> {
        let conn = finish(open_read_only(path, VIEWS_VERSION).map_err(StoreError::from))?;
        Ok(SqliteCabSource {
            conn,
            split: None,
            cab_db: None,
            path: path.to_path_buf(),
        })
    }

    /// The complete cab `cab_id`, now the one read ([`StoreError::NotFound`] if none).
    pub(crate) fn select(&mut self, cab_id: i64) -> Result<CabRef> {
        finish((|| {
            let cab = cab_ref(&self.conn, cab_id)?
                .ok_or_else(|| StoreError::NotFound(u64::try_from(cab_id).unwrap_or(0)))?;
            let split: Option<i64> = self
                .conn
                .prepare_cached("SELECT bytes_from FROM cab_rows WHERE ino = ?1")?
                .query_row([cab_id], |r| r.get(0))?;
            self.split = split.and_then(|b| u64::try_from(b).ok());
            Ok(cab)
        })())
    }

    /// Where the piece holding `pos` starts, its size, and which it is.
    pub(crate) fn locate(&self, pos: u64) -> (u64, u64, Piece) {
        match self.split {
            Some(split) if pos >= split => {
                let idx = (pos - split) / CAB_CHUNK;
                (split + idx * CAB_CHUNK, CAB_CHUNK, Piece::CabDb(idx))
            }
            _ => {
                let size = CHUNK_SIZE as u64;
                let idx = pos / size;
                (idx * size, size, Piece::Chunk(idx))
            }
        }
    }

    /// The stored bytes of `piece` of cab `cab_id` (`None`: a sparse gap).
    pub(crate) fn fetch(&mut self, cab_id: i64, piece: Piece) -> io::Result<Option<Vec<u8>>> {
        let (conn, sql, idx) = match piece {
            Piece::Chunk(idx) => (
                &self.conn,
                "SELECT data FROM chunks WHERE ino = ?1 AND idx = ?2",
                idx,
            ),
            Piece::CabDb(idx) => {
                if self.cab_db.is_none() {
                    let conn = Connection::open_with_flags(
                        cab_db_path(&self.path),
                        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                    )
                    .map_err(io::Error::other)?;
                    conn.busy_timeout(std::time::Duration::from_secs(10))
                        .map_err(io::Error::other)?;
                    self.cab_db = Some(conn);
                }
                let Some(conn) = self.cab_db.as_ref() else {
                    return Err(io::Error::other("the cab database is not open"));
                };
                (
                    conn,
                    "SELECT data FROM cab_chunks WHERE ino = ?1 AND idx = ?2",
                    idx,
                )
            }
        };
        conn.prepare_cached(sql)
            .and_then(|mut stmt| {
                stmt.query_row(
                    params![cab_id, i64::try_from(idx).unwrap_or(i64::MAX)],
                    |row| row.get(0),
                )
                .optional()
            })
            .map_err(io::Error::other)
    }
}
