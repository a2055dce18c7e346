//! The cab-bytes database: `<db>-cabs` beside the metadata database, a rollback-journal
//! SQLite file with 64 KiB pages holding the bytes of cabs (from their split,
//! [`CAB_DB_FROM`] for new cabs) in 1 MiB chunks. Pages appended past the end of a
//! rollback-journal file are not journaled, so appended cab bytes are written once (the
//! metadata database's WAL writes every byte twice). Writes gather in one open transaction ("group"), committed
//! every [`GROUP_BYTES`] and, synced, before a cab's row turns complete.
//!
//! Whole chunks are stored by the file's own writer thread, fed through a short bounded
//! queue: the client's next megabyte arrives (and is hashed) while the last one is stored
//! and groups are committed. Everything else waits for the queue to drain first.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OptionalExtension};

use crate::store::Result;
use crate::StoreError;

/// Where a new cab's bytes split between `chunks` (below) and the cab database (from here
/// on): nowhere, all of them go to the cab database. Each cab keeps its own split in
/// `cab_rows.bytes_from` and reads follow it: 4 MiB for cabs stored by the first releases
/// with a cab database, none (all bytes in `chunks`) for cabs from before schema version 12.
pub(crate) const CAB_DB_FROM: u64 = 0;
/// Page size of the cab database.
pub(crate) const CAB_DB_PAGE: u64 = 64 << 10;
/// Chunk size of the cab database.
pub(crate) const CAB_CHUNK: u64 = 1 << 20;
/// A group is committed once it holds this many bytes.
const GROUP_BYTES: u64 = 16 << 20;
/// ... or once it has been open this long: an open group holds the file's write lock, which
/// an admin's command (a prune's sweep) may be waiting for.
const GROUP_TIME: Duration = Duration::from_millis(200);
/// Whole chunks waiting for the writer thread: bounds the memory an upload takes beyond
/// the page cache (a chunk each), and is enough to cover a group commit on a fast disk.
const QUEUE_CHUNKS: usize = 4;
/// How long a cab's close lets the closes queued behind it store their bytes before it
/// commits, so that one sync makes them all durable (group commit).
const GATHER_MAX: Duration = Duration::from_millis(2);

/// The cab database's path for the metadata database at `meta`.
pub fn cab_db_path(meta: &Path) -> PathBuf {
    let mut p = meta.as_os_str().to_owned();
    p.push("-cabs");
    PathBuf::from(p)
}

struct Writer {
    conn: Connection,
    /// A transaction is open.
    open: bool,
    /// Bytes written in it.
    pending: u64,
    /// When it was opened.
    opened_at: Instant,
    /// The cabs with bytes in it.
    in_group: std::collections::HashSet<u64>,
    /// Cabs whose bytes a failed commit or write lost (true: to a full disk): their writes
    /// and commit fail, with ENOSPC for a full disk.
    broken: Broken,
    /// The file itself, to start writing back what SQLite wrote early (see [`write_back`]).
    file: std::fs::File,
}

impl Writer {
    fn begin(&mut self) -> Result<()> {
        if !self.open {
            self.conn.execute_batch("BEGIN IMMEDIATE").map_err(sqlite)?;
            self.open = true;
            self.opened_at = Instant::now();
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<()> {
        if !self.open {
            return Ok(());
        }
        let done = self.conn.execute_batch("COMMIT");
        if done.is_err() && !self.conn.is_autocommit() {
            // Disk full and the like: the group is lost, and so are its cabs.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        self.open = !self.conn.is_autocommit();
        self.pending = 0;
        let in_group = std::mem::take(&mut self.in_group);
        if let Err(e) = done {
            tracing::error!(
                cabs = in_group.len(),
                "a group of cab bytes was not stored: {e}"
            );
            let full = super::is_disk_full(&e);
            guard(&self.broken).extend(in_group.into_iter().map(|ino| (ino, full)));
            return Err(sqlite(e));
        }
        Ok(())
    }

    fn check(&self, ino: u64) -> Result<()> {
        check(&self.broken, ino)
    }

    /// After a failed statement: SQLite rolls the whole transaction back by itself on some
    /// errors (a full disk while pages spill), taking every cab's bytes in the group.
    fn after_error(&mut self, full: bool) {
        if self.open && self.conn.is_autocommit() {
            self.open = false;
            self.pending = 0;
            let in_group = std::mem::take(&mut self.in_group);
            tracing::error!(
                cabs = in_group.len(),
                "a group of cab bytes was rolled back by a failed write"
            );
            guard(&self.broken).extend(in_group.into_iter().map(|ino| (ino, full)));
        }
    }

    /// Stores `data` at `offset` of cab `ino` in the group; commits a full group.
    fn write(&mut self, ino: u64, offset: u64, data: &[u8]) -> Result<()> {
        let written = self.write_chunks(ino, offset, data);
        if let Err(e) = &written {
            self.after_error(matches!(e, StoreError::Full));
        }
        written
    }

    fn write_chunks(&mut self, ino: u64, offset: u64, data: &[u8]) -> Result<()> {
        self.check(ino)?;
        self.begin()?;
        self.in_group.insert(ino);
        let key = i64::try_from(ino).unwrap_or(i64::MAX);
        let end = offset + data.len() as u64;
        let mut pos = offset;
        while pos < end {
            let idx = pos / CAB_CHUNK;
            let in_chunk = (pos - idx * CAB_CHUNK) as usize;
            let take = ((CAB_CHUNK - (pos - idx * CAB_CHUNK)).min(end - pos)) as usize;
            let src = &data[(pos - offset) as usize..(pos - offset) as usize + take];
            let idx_sql = i64::try_from(idx).unwrap_or(i64::MAX);
            // A whole chunk is written as it comes; part of one over what is stored.
            let row: std::borrow::Cow<'_, [u8]> = if in_chunk == 0 && take == CAB_CHUNK as usize {
                std::borrow::Cow::Borrowed(src)
            } else {
                let stored: Option<Vec<u8>> = self
                    .conn
                    .prepare_cached("SELECT data FROM cab_chunks WHERE ino = ?1 AND idx = ?2")
                    .and_then(|mut s| s.query_row(params![key, idx_sql], |r| r.get(0)).optional())
                    .map_err(sqlite)?;
                match stored {
                    // A new chunk's first bytes (a small cab at its close) go as they are.
                    None if in_chunk == 0 => std::borrow::Cow::Borrowed(src),
                    stored => {
                        let mut buf = stored.unwrap_or_default();
                        if buf.len() < in_chunk + take {
                            buf.resize(in_chunk + take, 0);
                        }
                        buf[in_chunk..in_chunk + take].copy_from_slice(src);
                        std::borrow::Cow::Owned(buf)
                    }
                }
            };
            self.conn
                .prepare_cached(
                    "INSERT INTO cab_chunks (ino, idx, data) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (ino, idx) DO UPDATE SET data = excluded.data",
                )
                .and_then(|mut s| s.execute(params![key, idx_sql, row.as_ref()]))
                .map_err(sqlite)?;
            pos += take as u64;
        }
        self.pending += data.len() as u64;
        if self.pending >= GROUP_BYTES {
            self.commit()?;
        } else {
            write_back(&self.file);
        }
        Ok(())
    }
}

/// Starts writing to disk what SQLite has written to the file so far (pages spilled from
/// its small cache) without waiting: the group's commit then waits for the last pages
/// only, rather than for the whole group while the client waits for its writes.
#[cfg(target_os = "linux")]
fn write_back(file: &std::fs::File) {
    use std::os::fd::AsRawFd;
    // SAFETY: a plain syscall on a descriptor the writer owns; no memory is passed.
    #[allow(unsafe_code)]
    let done =
        unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
    if done != 0 {
        tracing::debug!(
            "early write-back of the cab database: {}",
            std::io::Error::last_os_error()
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn write_back(_file: &std::fs::File) {}

fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Cabs that lost bytes, and whether to a full disk.
type Broken = Arc<Mutex<HashMap<u64, bool>>>;

fn check(broken: &Mutex<HashMap<u64, bool>>, ino: u64) -> Result<()> {
    match guard(broken).get(&ino) {
        None => Ok(()),
        // The client is told its disk is full (ENOSPC), as for a write that failed at once.
        Some(true) => Err(StoreError::Full),
        Some(false) => Err(StoreError::Invalid(format!(
            "cab inode {ino} lost bytes in a failed write or commit of the cab database"
        ))),
    }
}

/// Whole chunks of a cab, for the writer thread.
struct Job {
    ino: u64,
    offset: u64,
    data: Vec<u8>,
}

/// Jobs sent and not yet stored, and the signal that they are all stored.
#[derive(Default)]
struct Queued {
    count: Mutex<usize>,
    drained: Condvar,
}

/// Threads waiting for the connection, and the signal that none is.
#[derive(Default)]
struct Waiting {
    count: Mutex<usize>,
    none: Condvar,
}

/// The cab database's one connection, and its writer thread: it stores queued chunks and
/// commits groups left open.
pub(crate) struct CabDb {
    writer: Arc<Mutex<Writer>>,
    broken: Broken,
    queued: Arc<Queued>,
    waiting: Waiting,
    /// Held by the close that commits: the closes behind it find their bytes committed.
    committer: Mutex<()>,
    thread: Option<(SyncSender<Job>, std::thread::JoinHandle<()>)>,
}

impl Drop for CabDb {
    fn drop(&mut self) {
        // Closing the queue lets the thread store what is queued, then stop.
        if let Some((queue, thread)) = self.thread.take() {
            drop(queue);
            let _ = thread.join();
        }
        if let Err(e) = guard(&self.writer).commit() {
            tracing::error!("committing the last group of the cab database: {e}");
        }
    }
}

/// The writer thread: stores queued chunks in order, and commits a group once it is older
/// than [`GROUP_TIME`]; stops when the queue is closed and empty.
fn store_queued(writer: Arc<Mutex<Writer>>, jobs: Receiver<Job>, queued: Arc<Queued>) {
    loop {
        match jobs.recv_timeout(GROUP_TIME / 2) {
            Ok(job) => {
                // A panic here must not leave the queue undrained (every cab operation waits
                // for it): it fails the cab, like an error.
                let stored = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    guard(&writer).write(job.ino, job.offset, &job.data)
                }));
                let failed = match stored {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some((e.to_string(), matches!(e, StoreError::Full))),
                    Err(_) => {
                        let mut w = guard(&writer);
                        w.after_error(false);
                        Some(("the writer thread panicked (a bug)".to_owned(), false))
                    }
                };
                if let Some((why, full)) = failed {
                    // The cab's next write or its commit reports it to its client.
                    tracing::warn!(ino = job.ino, "storing cab bytes failed: {why}");
                    let w = guard(&writer);
                    guard(&w.broken).insert(job.ino, full);
                }
                let mut count = guard(&queued.count);
                *count -= 1;
                if *count == 0 {
                    queued.drained.notify_all();
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                let mut w = guard(&writer);
                if w.open && w.opened_at.elapsed() >= GROUP_TIME {
                    if let Err(e) = w.commit() {
                        // The next write or the cab's commit reports it to its client.
                        tracing::warn!("committing a group of the cab database: {e}");
                    }
                }
            }
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

impl std::fmt::Debug for CabDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CabDb").finish_non_exhaustive()
    }
}

/// A full disk is `StoreError::Full` (ENOSPC to the client), as in the metadata database.
fn sqlite(e: rusqlite::Error) -> StoreError {
    if super::is_disk_full(&e) {
        StoreError::Full
    } else {
        StoreError::from(e)
    }
}

impl CabDb {
    /// Opens (creating) the cab database beside `meta`.
    pub(crate) fn open(meta: &Path) -> Result<CabDb> {
        let path = cab_db_path(meta);
        // Cab dumps can hold secrets: the server's alone, like the metadata database.
        super::file_identity::make_private(&path, true)
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        let path = std::fs::canonicalize(&path)
            .map_err(|e| StoreError::Invalid(format!("cannot resolve {}: {e}", path.display())))?;
        let conn = Connection::open(&path).map_err(sqlite)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(sqlite)?;
        // Before the first table: the page size and vacuum mode are fixed by then.
        conn.pragma_update(None, "page_size", CAB_DB_PAGE as i64)
            .map_err(sqlite)?;
        // Removed cabs' pages can go back to the filesystem in steps (`cerfs compact`).
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")
            .map_err(sqlite)?;
        conn.pragma_update(None, "journal_mode", "TRUNCATE")
            .map_err(sqlite)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(sqlite)?;
        // A small cache: a group's pages spill to the file as they come and are written
        // back while the group fills (appended pages need no journal), not all at commit.
        conn.pragma_update(None, "cache_size", -(4 * 1024))
            .map_err(sqlite)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS cab_chunks (
                 ino  INTEGER NOT NULL,
                 idx  INTEGER NOT NULL CHECK (idx >= 0),
                 data BLOB    NOT NULL CHECK (length(data) <= 1048576),
                 PRIMARY KEY (ino, idx)
             );
             -- The store this file belongs to (server_setting_rows 'store.id' of the database).
             CREATE TABLE IF NOT EXISTS cab_store (
                 key   TEXT PRIMARY KEY,
                 value TEXT NOT NULL
             );",
        )
        .map_err(sqlite)?;
        let broken: Broken = Arc::default();
        let writer = Arc::new(Mutex::new(Writer {
            conn,
            open: false,
            pending: 0,
            opened_at: Instant::now(),
            in_group: Default::default(),
            broken: Arc::clone(&broken),
            file: std::fs::File::open(&path)
                .map_err(|e| StoreError::Invalid(format!("cannot open {}: {e}", path.display())))?,
        }));
        let queued = Arc::new(Queued::default());
        let (queue, jobs) = std::sync::mpsc::sync_channel(QUEUE_CHUNKS);
        let thread = {
            let (writer, queued) = (Arc::clone(&writer), Arc::clone(&queued));
            std::thread::Builder::new()
                .name("cerfs-cab-writer".into())
                .spawn(move || store_queued(writer, jobs, queued))
                .map_err(|e| StoreError::Invalid(format!("cannot start a thread: {e}")))?
        };
        Ok(CabDb {
            writer,
            broken,
            queued,
            waiting: Waiting::default(),
            committer: Mutex::new(()),
            thread: Some((queue, thread)),
        })
    }

    /// The connection, once every queued chunk is stored (what is read, committed or
    /// deleted then includes them).
    fn lock(&self) -> MutexGuard<'_, Writer> {
        *guard(&self.waiting.count) += 1;
        let mut count = guard(&self.queued.count);
        while *count > 0 {
            count = self
                .queued
                .drained
                .wait(count)
                .unwrap_or_else(PoisonError::into_inner);
        }
        drop(count);
        let w = guard(&self.writer);
        let mut waiting = guard(&self.waiting.count);
        *waiting -= 1;
        if *waiting == 0 {
            self.waiting.none.notify_all();
        }
        w
    }

    /// Before a commit: lets the threads already waiting for the connection (other closes
    /// storing their last bytes) in first, so that one sync covers their cabs too; at most
    /// [`GATHER_MAX`], so that a stream of writers does not hold a close back.
    fn let_waiting_in(&self) {
        let deadline = Instant::now() + GATHER_MAX;
        let mut waiting = guard(&self.waiting.count);
        while *waiting > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            waiting = self
                .waiting
                .none
                .wait_timeout(waiting, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Writes `data` at `offset` (counted from [`CAB_DB_FROM`]) of cab `ino`, in the group.
    /// Whole chunks go through the writer thread's queue: a failure to store them fails
    /// the cab's next write or its commit.
    pub(crate) fn write(&self, ino: u64, offset: u64, data: &[u8]) -> Result<()> {
        check(&self.broken, ino)?;
        let whole = offset.is_multiple_of(CAB_CHUNK)
            && !data.is_empty()
            && (data.len() as u64).is_multiple_of(CAB_CHUNK);
        let Some((queue, _)) = self.thread.as_ref().filter(|_| whole) else {
            return self.lock().write(ino, offset, data);
        };
        *guard(&self.queued.count) += 1;
        let job = Job {
            ino,
            offset,
            data: data.to_vec(),
        };
        if queue.send(job).is_err() {
            // The thread is gone (it panicked): nothing queued is stored any more.
            *guard(&self.queued.count) -= 1;
            return Err(StoreError::Invalid(
                "the cab database's writer stopped".into(),
            ));
        }
        Ok(())
    }

    /// Reads up to `len` bytes at `offset` (from [`CAB_DB_FROM`]) of cab `ino` into `out`
    /// (zeros where nothing is stored), through the writer (it sees its open group).
    pub(crate) fn read_into(&self, ino: u64, offset: u64, out: &mut [u8]) -> Result<()> {
        if out.is_empty() {
            return Ok(());
        }
        let w = self.lock();
        let key = i64::try_from(ino).unwrap_or(i64::MAX);
        let end = offset + out.len() as u64;
        let mut stmt = w
            .conn
            .prepare_cached(
                "SELECT idx, data FROM cab_chunks WHERE ino = ?1 AND idx BETWEEN ?2 AND ?3 \
                 ORDER BY idx",
            )
            .map_err(sqlite)?;
        let mut rows = stmt
            .query(params![
                key,
                i64::try_from(offset / CAB_CHUNK).unwrap_or(i64::MAX),
                i64::try_from((end - 1) / CAB_CHUNK).unwrap_or(i64::MAX)
            ])
            .map_err(sqlite)?;
        while let Some(row) = rows.next().map_err(sqlite)? {
            let idx = u64::try_from(row.get::<_, i64>(0).map_err(sqlite)?).unwrap_or(0);
            let data = row
                .get_ref(1)
                .and_then(|v| v.as_blob().map_err(rusqlite::Error::from))
                .map_err(sqlite)?;
            super::rows::copy_overlap(out, offset, data, idx * CAB_CHUNK);
        }
        Ok(())
    }

    /// Commits the open group (synchronous=FULL: durable when it returns).
    pub(crate) fn commit(&self) -> Result<()> {
        self.lock().commit()
    }

    /// Makes cab `ino`'s bytes durable: commits the group, or says the cab lost bytes.
    /// Closes commit one at a time, and a close whose bytes the one before it committed
    /// (they were in its group) returns without a sync of its own: a group commit.
    pub(crate) fn commit_cab(&self, ino: u64) -> Result<()> {
        if !self.in_open_group(ino)? {
            return Ok(());
        }
        let _turn = guard(&self.committer);
        if !self.in_open_group(ino)? {
            return Ok(());
        }
        self.let_waiting_in();
        let mut w = self.lock();
        w.check(ino)?;
        if w.in_group.contains(&ino) {
            w.commit()?;
        }
        w.check(ino)
    }

    /// Whether cab `ino` has bytes in the open group (not yet committed); an error if it
    /// lost bytes.
    fn in_open_group(&self, ino: u64) -> Result<bool> {
        let w = self.lock();
        w.check(ino)?;
        Ok(w.in_group.contains(&ino))
    }

    /// Runs `f` in the open group (opening one if none is).
    fn in_group<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let mut w = self.lock();
        w.begin()?;
        let done = f(&w.conn).map_err(sqlite);
        if let Err(e) = &done {
            w.after_error(matches!(e, StoreError::Full));
        }
        done
    }

    /// Drops the bytes of cabs `inos` (in the group: gone for good at its commit).
    pub(crate) fn delete(&self, inos: &[u64]) -> Result<()> {
        if inos.is_empty() {
            return Ok(());
        }
        self.in_group(|conn| {
            let mut stmt = conn.prepare_cached("DELETE FROM cab_chunks WHERE ino = ?1")?;
            for ino in inos {
                stmt.execute([i64::try_from(*ino).unwrap_or(i64::MAX)])?;
            }
            Ok(())
        })?;
        let mut broken = guard(&self.broken);
        for ino in inos {
            broken.remove(ino);
        }
        Ok(())
    }

    /// Keeps cab `ino`'s first `len` bytes (counted from [`CAB_DB_FROM`]), in the group.
    pub(crate) fn truncate(&self, ino: u64, len: u64) -> Result<()> {
        let key = i64::try_from(ino).unwrap_or(i64::MAX);
        let keep = i64::try_from(len.div_ceil(CAB_CHUNK)).unwrap_or(i64::MAX);
        let tail = len % CAB_CHUNK;
        // The cab's close commits the group that holds its truncation.
        self.lock().in_group.insert(ino);
        self.in_group(|conn| {
            conn.prepare_cached("DELETE FROM cab_chunks WHERE ino = ?1 AND idx >= ?2")?
                .execute(params![key, keep])?;
            if tail != 0 {
                conn.prepare_cached(
                    "UPDATE cab_chunks SET data = substr(data, 1, ?3) \
                     WHERE ino = ?1 AND idx = ?2 AND length(data) > ?3",
                )?
                .execute(params![
                    key,
                    i64::try_from(len / CAB_CHUNK).unwrap_or(i64::MAX),
                    tail as i64
                ])?;
            }
            Ok(())
        })
    }
}

mod upkeep;

#[cfg(test)]
mod tests;
