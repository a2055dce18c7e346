//! What the cab indexer (crate `cerfs-index`) reads and writes: the queue of complete cabs
//! not indexed yet, a streaming reader over a cab's stored bytes, and the rows describing
//! what a cab holds (`cab_member_rows`, `minidump_rows`, `cab_text_rows`, `cab_fact_rows`,
//! and the `index_*` columns of `cab_rows`; schema version 2).
//!
//! The indexer has its own connections to the database file: it never goes through the
//! file system's store, and its writes are short transactions of their own.

use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use crate::sqlite::connection::{open_read_only, open_writer};
use crate::sqlite::rows::get_u64;
use crate::sqlite::schema::VIEWS_VERSION;
use crate::sqlite::{finish, in_transaction};
use crate::store::Result;
use crate::{OpenError, StoreError, CHUNK_SIZE};

/// The current time as stored in every `*_at` column.
const SQL_NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

/// A complete cab, as the indexer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CabRef {
    /// Its id (the inode number of its node; `cabs.cab_id`).
    pub cab_id: i64,
    /// Subpath of its bucket.
    pub subpath: String,
    /// Its file name.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
}

/// The outcome recorded for a cab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexStatus {
    /// Every member was read.
    Indexed,
    /// The cab's directory was read, but some member could not be read or parsed.
    Partial,
    /// Nothing could be read.
    Failed,
}

impl IndexStatus {
    /// The value stored in `cab_rows.index_status`.
    pub fn as_str(self) -> &'static str {
        match self {
            IndexStatus::Indexed => "indexed",
            IndexStatus::Partial => "partial",
            IndexStatus::Failed => "failed",
        }
    }
}

/// One member (file) of a cab.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MemberRow {
    /// File name as the cab stores it.
    pub name: String,
    /// Uncompressed size in bytes.
    pub size: u64,
    /// `none`, `mszip`, `lzx` or `quantum`.
    pub compression: String,
    /// Index of its folder in the cab.
    pub folder: u32,
    /// Date and time as the cab stores them (`YYYY-MM-DDTHH:MM:SS`, no time zone).
    pub modified: Option<String>,
    /// `minidump`, `text` or `other`.
    pub kind: String,
    /// Why it could not be read or parsed.
    pub error: Option<String>,
}

/// What a minidump member says about the crash.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MinidumpRow {
    /// Member name.
    pub member: String,
    /// Header time stamp, ISO-8601 UTC.
    pub dump_time: Option<String>,
    /// Exception code, `0x` and 8 hex digits.
    pub exception_code: Option<String>,
    /// The exception as a name (`EXCEPTION_ACCESS_VIOLATION_READ`, `SIGSEGV`, ...).
    pub crash_reason: Option<String>,
    /// Address of the crash, `0x` and hex.
    pub crash_address: Option<String>,
    /// Id of the thread that crashed.
    pub crash_thread: Option<u32>,
    /// File name of the module holding the instruction pointer.
    pub crash_module: Option<String>,
    /// Its version.
    pub crash_module_version: Option<String>,
    /// Offset inside that module, hex like an R1 Offset (8 or 16 digits, no `0x`).
    pub crash_offset: Option<String>,
    /// Operating system (`Windows NT`, `Linux`, ...).
    pub os: Option<String>,
    /// Its version (`5.1.2600 Service Pack 2`).
    pub os_version: Option<String>,
    /// CPU architecture (`x86`, `amd64`, `arm64`, ...).
    pub cpu: Option<String>,
    /// The process's executable name (its main module).
    pub process_name: Option<String>,
    /// Number of threads.
    pub thread_count: Option<u32>,
    /// Number of loaded modules.
    pub module_count: Option<u32>,
    /// Why the dump, or a part of it, could not be parsed.
    pub error: Option<String>,
}

/// The text of a text member.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TextRow {
    /// Member name.
    pub member: String,
    /// Decoded text.
    pub text: String,
    /// Whether the member was longer than what is kept.
    pub truncated: bool,
}

/// A field found in a known text member.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct FactRow {
    /// Member name.
    pub member: String,
    /// Field name (`OS Version`, `SYSTEMINFO/SYSTEM/OSVER`, `DATABASE/EXE@NAME`).
    pub key: String,
    /// Its value.
    pub value: String,
}

/// Everything the indexer found in one cab.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct CabIndex {
    /// Why the cab could not be read at all (`None` when its directory was read).
    pub error: Option<String>,
    /// Members in directory order.
    pub members: Vec<MemberRow>,
    /// Minidump members.
    pub minidumps: Vec<MinidumpRow>,
    /// Text members.
    pub texts: Vec<TextRow>,
    /// Fields of known text members.
    pub facts: Vec<FactRow>,
    /// Walked stacks and signatures of the minidump members.
    #[cfg_attr(feature = "serde", serde(default))]
    pub stacks: Vec<crate::StackRow>,
    /// Problems the symbol sources gave while walking.
    #[cfg_attr(feature = "serde", serde(default))]
    pub symbol_fetches: Vec<crate::SymbolFetch>,
}

impl CabIndex {
    /// The status this result is recorded with.
    pub fn status(&self) -> IndexStatus {
        if self.error.is_some() {
            IndexStatus::Failed
        } else if self.members.iter().any(|m| m.error.is_some())
            || self.minidumps.iter().any(|d| d.error.is_some())
        {
            IndexStatus::Partial
        } else {
            IndexStatus::Indexed
        }
    }

    /// A one-line summary of what went wrong, `None` when nothing did.
    pub fn problem(&self) -> Option<String> {
        if let Some(e) = &self.error {
            return Some(e.clone());
        }
        let bad: Vec<String> = self
            .members
            .iter()
            .filter_map(|m| m.error.as_ref().map(|e| format!("{}: {e}", m.name)))
            .chain(self.minidumps.iter().filter_map(|d| {
                d.error
                    .as_ref()
                    .filter(|_| {
                        // Already reported through its member.
                        !self
                            .members
                            .iter()
                            .any(|m| m.name == d.member && m.error.is_some())
                    })
                    .map(|e| format!("{}: {e}", d.member))
            }))
            .collect();
        if bad.is_empty() {
            None
        } else {
            Some(bad.join("; "))
        }
    }
}

/// Which cabs `cerfs reindex` sends back to the indexer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReindexFilter {
    /// Only the cabs of this bucket (subpath with backslashes).
    pub bucket: Option<String>,
    /// Only the cabs whose last indexing failed or was partial.
    pub failed_only: bool,
    /// Only the cabs holding a minidump (to walk and sign them again).
    pub stacks: bool,
    /// Only the cabs with a minidump of this signature.
    pub signature: Option<String>,
}

/// The indexer's connections to one database: a writer of its own and a reader.
pub struct IndexDb {
    path: PathBuf,
    writer: Connection,
}

impl std::fmt::Debug for IndexDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexDb")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl IndexDb {
    /// Opens the existing database at `path`: never creates it, never purges uploads in
    /// progress, never migrates (its schema must be this version's, as after the server of
    /// this version opened it).
    pub fn open(path: &Path) -> std::result::Result<IndexDb, OpenError> {
        if !path.is_file() {
            return Err(OpenError::NoDatabase(path.to_path_buf()));
        }
        let writer = open_writer(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            false,
        )?;
        Ok(IndexDb {
            path: path.to_path_buf(),
            writer,
        })
    }

    /// The path the database was opened with.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Up to `limit` complete cabs not indexed yet, oldest first (an index seek on the
    /// partial index `cab_rows_unindexed`).
    pub fn pending(&self, limit: usize) -> Result<Vec<CabRef>> {
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

    /// A stored server setting (`server_setting_rows`), e.g. the symbol sources.
    pub fn server_setting(&self, key: &str) -> Result<Option<String>> {
        finish(crate::sqlite::retention_setting(&self.writer, key))
    }

    /// The complete cab `cab_id`, if it exists.
    pub fn cab(&self, cab_id: i64) -> Result<Option<CabRef>> {
        finish(cab_ref(&self.writer, cab_id))
    }

    /// Records what the indexer found, replacing an earlier result, in one transaction;
    /// returns the status recorded. A cab removed meanwhile is skipped (`None`).
    pub fn store_index(&self, cab_id: i64, index: &CabIndex) -> Result<Option<IndexStatus>> {
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

    /// Records that a cab could not be indexed at all (the indexer crashed, ran out of time
    /// or memory), dropping any earlier result. The cab itself is untouched.
    pub fn store_failure(&self, cab_id: i64, reason: &str) -> Result<bool> {
        finish(self.write(|tx| {
            if !is_complete(tx, cab_id)? {
                return Ok(false);
            }
            clear_rows(tx, cab_id)?;
            set_status(tx, cab_id, IndexStatus::Failed, Some(reason))?;
            Ok(true)
        }))
    }

    /// Sends the cabs that `filter` selects back to the indexer's queue; returns how many.
    /// Their earlier results stay visible until the new ones replace them.
    pub fn request_reindex(&self, filter: &ReindexFilter) -> Result<usize> {
        finish(self.write(|tx| {
            if let Some(sub) = &filter.bucket {
                let exists: bool = tx
                    .prepare_cached("SELECT EXISTS (SELECT 1 FROM bucket_rows WHERE subpath = ?1)")?
                    .query_row([sub], |row| row.get(0))?;
                if !exists {
                    return Err(StoreError::Invalid(format!(
                        "no bucket {sub:?}: list them with `cerfs buckets`"
                    )));
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

/// The stored bytes of one complete cab, read chunk by chunk through a read-only
/// connection: `Read + Seek` with one chunk (64 KiB, or 1 MiB of the cab database) in
/// memory, whatever the cab's size.
pub struct CabReader {
    conn: Connection,
    cab: CabRef,
    pos: u64,
    /// Index and bytes of the chunk in memory (`chunks`, or the cab database's from
    /// `split`).
    chunk: Option<(Piece, Vec<u8>)>,
    /// Where the cab's bytes continue in the cab database, and that database (opened
    /// when first needed).
    split: Option<u64>,
    cab_db: Option<Connection>,
    path: std::path::PathBuf,
    /// The last failure to read the store (not the cab's doing), see [`Self::storage_error`].
    storage_error: Option<String>,
}

/// A stored piece of a cab: a 64 KiB chunk, or a 1 MiB chunk of the cab database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece {
    Chunk(u64),
    CabDb(u64),
}

impl std::fmt::Debug for CabReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CabReader")
            .field("cab", &self.cab)
            .field("pos", &self.pos)
            .finish_non_exhaustive()
    }
}

impl CabReader {
    /// Opens the complete cab `cab_id` of the database at `path`, read-only.
    /// [`StoreError::NotFound`] if there is no complete cab with that id.
    pub fn open(path: &Path, cab_id: i64) -> Result<CabReader> {
        let conn = finish(open_read_only(path, VIEWS_VERSION).map_err(StoreError::from))?;
        Self::on(conn, None, path, cab_id)
    }

    /// The same reader on another complete cab of its database: its connections are kept,
    /// where opening one per cab read the whole schema again each time (a quarter of an
    /// index worker's CPU, perf, with cabs of report cycles). No transaction stays open
    /// between cabs: each read is a statement of its own.
    pub fn reopen(self, cab_id: i64) -> Result<CabReader> {
        let CabReader {
            conn, cab_db, path, ..
        } = self;
        Self::on(conn, cab_db, &path, cab_id)
    }

    fn on(
        conn: Connection,
        cab_db: Option<Connection>,
        path: &Path,
        cab_id: i64,
    ) -> Result<CabReader> {
        finish((|| {
            let cab = cab_ref(&conn, cab_id)?
                .ok_or_else(|| StoreError::NotFound(u64::try_from(cab_id).unwrap_or(0)))?;
            let split: Option<i64> = conn
                .prepare_cached("SELECT bytes_from FROM cab_rows WHERE ino = ?1")?
                .query_row([cab_id], |r| r.get(0))?;
            Ok(CabReader {
                conn,
                cab,
                pos: 0,
                chunk: None,
                split: split.and_then(|b| u64::try_from(b).ok()),
                cab_db,
                path: path.to_path_buf(),
                storage_error: None,
            })
        })())
    }

    /// The cab being read.
    pub fn cab(&self) -> &CabRef {
        &self.cab
    }

    /// Why the store could not be read, if a read failed so since the reader was opened:
    /// then what a parser made of the bytes says nothing about the cab (a full disk's hot
    /// journal, a locked or damaged file), and the cab should be tried again later.
    pub fn storage_error(&self) -> Option<&str> {
        self.storage_error.as_deref()
    }

    fn load(&mut self, piece: Piece) -> io::Result<&[u8]> {
        if self.chunk.as_ref().map(|(p, _)| *p) != Some(piece) {
            let (conn, sql, idx) = match piece {
                Piece::Chunk(idx) => (
                    &self.conn,
                    "SELECT data FROM chunks WHERE ino = ?1 AND idx = ?2",
                    idx,
                ),
                Piece::CabDb(idx) => {
                    if self.cab_db.is_none() {
                        let path = crate::sqlite::cab_db::cab_db_path(&self.path);
                        let conn = Connection::open_with_flags(
                            &path,
                            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                                | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
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
            let data: Option<Vec<u8>> = conn
                .prepare_cached(sql)
                .and_then(|mut stmt| {
                    stmt.query_row(
                        params![self.cab.cab_id, i64::try_from(idx).unwrap_or(i64::MAX)],
                        |row| row.get(0),
                    )
                    .optional()
                })
                .map_err(io::Error::other)?;
            // A missing chunk (a sparse gap) reads as zeros.
            self.chunk = Some((piece, data.unwrap_or_default()));
        }
        Ok(self
            .chunk
            .as_ref()
            .map(|(_, d)| d.as_slice())
            .unwrap_or_default())
    }
}

impl Read for CabReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.cab.size || buf.is_empty() {
            return Ok(0);
        }
        // Where the piece holding `pos` starts, its size, and which it is.
        let (start, chunk, piece) = match self.split {
            Some(split) if self.pos >= split => {
                let size = crate::sqlite::cab_db::CAB_CHUNK;
                let idx = (self.pos - split) / size;
                (split + idx * size, size, Piece::CabDb(idx))
            }
            _ => {
                let size = CHUNK_SIZE as u64;
                let idx = self.pos / size;
                (idx * size, size, Piece::Chunk(idx))
            }
        };
        let at = (self.pos - start) as usize;
        let left_in_chunk = (chunk - at as u64).min(self.cab.size - self.pos);
        let n = (buf.len() as u64).min(left_in_chunk) as usize;
        let data = match self.load(piece) {
            Ok(data) => data,
            Err(e) => {
                self.storage_error = Some(e.to_string());
                return Err(e);
            }
        };
        let out = buf.get_mut(..n).unwrap_or_default();
        // Bytes past the end of a short chunk are zeros.
        for (i, b) in out.iter_mut().enumerate() {
            *b = data.get(at + i).copied().unwrap_or(0);
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for CabReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.cab.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        let target = target.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start of the cab",
            )
        })?;
        self.pos = target;
        Ok(target)
    }
}
