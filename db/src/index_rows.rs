//! What the cab indexer (crate `cerfs-index`) reads and writes: the queue of complete cabs
//! not indexed yet, a streaming reader over a cab's stored bytes, and the rows describing
//! what a cab holds (`cab_member_rows`, `minidump_rows`, `cab_text_rows`, `cab_fact_rows`,
//! and the `index_*` columns of `cab_rows`; schema version 2).
//!
//! The same on a PostgreSQL store (schema version 6). Each backend's half lives with it
//! (`sqlite/index.rs`, `pg/index.rs`); this file holds what both share.
//!
//! The indexer has its own connections to the database: it never goes through the file
//! system's store, and its writes are short transactions of their own.

use std::io::{self, Read, Seek, SeekFrom};

use crate::pg::index::{PgCabSource, PgIndex};
use crate::sqlite::index::{SqliteCabSource, SqliteIndex};
use crate::store::Result;
use crate::{OpenError, StoreError, StoreLocation};

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

/// The indexer's connections to one store: a writer of its own (SQLite), or a connection
/// of its own that also holds the indexer's lock (PostgreSQL: one indexer at a time across
/// heads).
pub struct IndexDb {
    location: StoreLocation,
    backend: IndexBackend,
}

enum IndexBackend {
    Sqlite(SqliteIndex),
    Postgres(Box<PgIndex>),
}

impl std::fmt::Debug for IndexDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexDb")
            .field("location", &self.location.to_string())
            .finish_non_exhaustive()
    }
}

impl IndexDb {
    /// Opens the existing SQLite database at `path`; see [`IndexDb::open_at`].
    pub fn open(path: &std::path::Path) -> std::result::Result<IndexDb, OpenError> {
        IndexDb::open_at(&StoreLocation::Sqlite(path.to_path_buf()))
    }

    /// Opens the existing store at `location`: never creates it, never purges uploads in
    /// progress, never migrates (its schema must be this version's, as after the server of
    /// this version opened it).
    pub fn open_at(location: &StoreLocation) -> std::result::Result<IndexDb, OpenError> {
        let backend = match location {
            StoreLocation::Sqlite(path) => IndexBackend::Sqlite(SqliteIndex::open(path)?),
            StoreLocation::Postgres(url) => IndexBackend::Postgres(Box::new(PgIndex::open(url)?)),
        };
        Ok(IndexDb {
            location: location.clone(),
            backend,
        })
    }

    /// Where the store is.
    pub fn location(&self) -> &StoreLocation {
        &self.location
    }

    /// The path of a SQLite store's database file (`None` on PostgreSQL).
    pub fn path(&self) -> Option<&std::path::Path> {
        match &self.backend {
            IndexBackend::Sqlite(db) => Some(db.path()),
            IndexBackend::Postgres(_) => None,
        }
    }

    /// Whether this indexer may index now. Always on SQLite (one server per file); on
    /// PostgreSQL, while it holds the indexer's advisory lock, which it tries to take when
    /// it does not: another head's indexer holds it otherwise, and the queue is its to do.
    pub fn lead(&mut self) -> Result<bool> {
        match &mut self.backend {
            IndexBackend::Sqlite(_) => Ok(true),
            IndexBackend::Postgres(db) => db.lead(),
        }
    }

    /// Up to `limit` complete cabs not indexed yet, oldest first (an index seek on the
    /// partial index `cab_rows_unindexed`).
    pub fn pending(&mut self, limit: usize) -> Result<Vec<CabRef>> {
        match &mut self.backend {
            IndexBackend::Sqlite(db) => db.pending(limit),
            IndexBackend::Postgres(db) => db.pending(limit),
        }
    }

    /// A stored server setting (`server_setting_rows`), e.g. the symbol sources.
    pub fn server_setting(&mut self, key: &str) -> Result<Option<String>> {
        match &mut self.backend {
            IndexBackend::Sqlite(db) => db.server_setting(key),
            IndexBackend::Postgres(db) => db.server_setting(key),
        }
    }

    /// The complete cab `cab_id`, if it exists.
    pub fn cab(&mut self, cab_id: i64) -> Result<Option<CabRef>> {
        match &mut self.backend {
            IndexBackend::Sqlite(db) => db.cab(cab_id),
            IndexBackend::Postgres(db) => db.cab(cab_id),
        }
    }

    /// Records what the indexer found, replacing an earlier result, in one transaction;
    /// returns the status recorded. A cab removed meanwhile is skipped (`None`).
    pub fn store_index(&mut self, cab_id: i64, index: &CabIndex) -> Result<Option<IndexStatus>> {
        match &mut self.backend {
            IndexBackend::Sqlite(db) => db.store_index(cab_id, index),
            IndexBackend::Postgres(db) => db.store_index(cab_id, index),
        }
    }

    /// Records that a cab could not be indexed at all (the indexer crashed, ran out of time
    /// or memory), dropping any earlier result. The cab itself is untouched.
    pub fn store_failure(&mut self, cab_id: i64, reason: &str) -> Result<bool> {
        match &mut self.backend {
            IndexBackend::Sqlite(db) => db.store_failure(cab_id, reason),
            IndexBackend::Postgres(db) => db.store_failure(cab_id, reason),
        }
    }

    /// Sends the cabs that `filter` selects back to the indexer's queue; returns how many.
    /// Their earlier results stay visible until the new ones replace them.
    pub fn request_reindex(&mut self, filter: &ReindexFilter) -> Result<usize> {
        match &mut self.backend {
            IndexBackend::Sqlite(db) => db.request_reindex(filter),
            IndexBackend::Postgres(db) => db.request_reindex(filter),
        }
    }
}

/// What `cerfs reindex --bucket` says of a bucket that does not exist.
pub(crate) fn no_bucket(subpath: &str) -> StoreError {
    StoreError::Invalid(format!(
        "no bucket {subpath:?}: list them with `cerfs buckets`"
    ))
}

/// A stored piece of a cab: a chunk of the store (64 KiB on SQLite, 256 KiB on
/// PostgreSQL), or a 1 MiB chunk of a SQLite store's cab database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Piece {
    Chunk(u64),
    CabDb(u64),
}

/// Where a reader's cab bytes come from.
enum Source {
    Sqlite(SqliteCabSource),
    Postgres(PgCabSource),
}

impl Source {
    fn select(&mut self, cab_id: i64) -> Result<CabRef> {
        match self {
            Source::Sqlite(s) => s.select(cab_id),
            Source::Postgres(s) => s.select(cab_id),
        }
    }

    fn locate(&self, pos: u64) -> (u64, u64, Piece) {
        match self {
            Source::Sqlite(s) => s.locate(pos),
            Source::Postgres(s) => s.locate(pos),
        }
    }

    fn fetch(&mut self, cab_id: i64, piece: Piece) -> io::Result<Option<Vec<u8>>> {
        match self {
            Source::Sqlite(s) => s.fetch(cab_id, piece),
            Source::Postgres(s) => s.fetch(cab_id, piece),
        }
    }
}

/// The stored bytes of one complete cab, read chunk by chunk through a read-only
/// connection: `Read + Seek` with one chunk in memory, whatever the cab's size.
pub struct CabReader {
    source: Source,
    cab: CabRef,
    pos: u64,
    /// The piece in memory and its bytes.
    chunk: Option<(Piece, Vec<u8>)>,
    /// The last failure to read the store (not the cab's doing), see [`Self::storage_error`].
    storage_error: Option<String>,
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
    /// Opens the complete cab `cab_id` of the SQLite database at `path`, read-only.
    /// [`StoreError::NotFound`] if there is no complete cab with that id.
    pub fn open(path: &std::path::Path, cab_id: i64) -> Result<CabReader> {
        CabReader::open_at(&StoreLocation::Sqlite(path.to_path_buf()), cab_id)
    }

    /// Opens the complete cab `cab_id` of the store at `location`, read-only.
    /// [`StoreError::NotFound`] if there is no complete cab with that id.
    pub fn open_at(location: &StoreLocation, cab_id: i64) -> Result<CabReader> {
        let source = match location {
            StoreLocation::Sqlite(path) => Source::Sqlite(SqliteCabSource::open(path)?),
            StoreLocation::Postgres(url) => Source::Postgres(PgCabSource::open(url)?),
        };
        CabReader::on(source, cab_id)
    }

    /// The same reader on another complete cab of its store: its connections are kept,
    /// where opening one per cab read the whole schema again each time (a quarter of an
    /// index worker's CPU, perf, with cabs of report cycles). No transaction stays open
    /// between cabs: each read is a statement of its own.
    pub fn reopen(self, cab_id: i64) -> Result<CabReader> {
        CabReader::on(self.source, cab_id)
    }

    fn on(mut source: Source, cab_id: i64) -> Result<CabReader> {
        let cab = source.select(cab_id)?;
        Ok(CabReader {
            source,
            cab,
            pos: 0,
            chunk: None,
            storage_error: None,
        })
    }

    /// The cab being read.
    pub fn cab(&self) -> &CabRef {
        &self.cab
    }

    /// Why the store could not be read, if a read failed so since the reader was opened:
    /// then what a parser made of the bytes says nothing about the cab (a full disk's hot
    /// journal, a locked or damaged file, a lost connection), and the cab should be tried
    /// again later.
    pub fn storage_error(&self) -> Option<&str> {
        self.storage_error.as_deref()
    }

    fn load(&mut self, piece: Piece) -> io::Result<&[u8]> {
        if self.chunk.as_ref().map(|(p, _)| *p) != Some(piece) {
            let data = self.source.fetch(self.cab.cab_id, piece)?;
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
        let (start, chunk, piece) = self.source.locate(self.pos);
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
